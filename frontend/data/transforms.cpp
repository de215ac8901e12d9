// Image transforms (torchvision.transforms), computed on the host: a data pipeline applies them
// to one small example at a time, where building and compiling a graph per call would cost far
// more than the arithmetic.
#include <smelt/data.h>
#include <smelt/error.h>

#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "frontend/data/data_random.h"
#include "frontend/data/host_tensor.h"
#include "ir/shape.h"

namespace smelt::data::transforms {
namespace {

using detail::HostData;

void check_rank(const std::vector<int64_t>& shape, int64_t min_rank, const char* op,
                const char* layout) {
  if (static_cast<int64_t>(shape.size()) < min_rank) {
    throw Error(
        absl::StrCat(op, ": needs an image of shape ", layout, ", got ", ir::shape_str(shape)));
  }
}

void check_probability(double p, const char* op) {
  if (!(p >= 0.0 && p <= 1.0)) {
    throw Error(absl::StrCat(op, ": the probability must be in [0, 1], got ", p));
  }
}

// (x - mean[c]) / std[c] over [outer, channels, plane], in T like torchvision's sub_/div_.
template <typename T>
void normalize(const T* in, T* out, int64_t outer, int64_t channels, int64_t plane,
               const std::vector<double>& mean, const std::vector<double>& std) {
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t c = 0; c < channels; ++c) {
      const T m = static_cast<T>(mean[static_cast<size_t>(c)]);
      const T s = static_cast<T>(std[static_cast<size_t>(c)]);
      const int64_t base = (o * channels + c) * plane;
      for (int64_t k = 0; k < plane; ++k) out[base + k] = (in[base + k] - m) / s;
    }
  }
}

// Reverses dim -1 (horizontal) or dim -2 (vertical) of `image`.
Tensor flip(const HostData& h, bool horizontal, const char* op) {
  const size_t rank = h.shape.size();
  const int64_t width = h.shape[rank - 1];
  const int64_t height = h.shape[rank - 2];
  const size_t es = dtype_size(h.dtype);
  const int64_t planes = height * width == 0 ? 0 : ir::numel(h.shape) / (height * width);
  base::BufferPtr out = detail::allocate_host(static_cast<size_t>(ir::numel(h.shape)) * es, op);
  auto* dst = static_cast<uint8_t*>(out->data());
  const size_t row_bytes = static_cast<size_t>(width) * es;
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t r = 0; r < height; ++r) {
      const size_t row = static_cast<size_t>(p * height + r) * row_bytes;
      if (horizontal) {
        for (int64_t c = 0; c < width; ++c) {
          std::memcpy(dst + row + static_cast<size_t>(c) * es,
                      h.data + row + static_cast<size_t>(width - 1 - c) * es, es);
        }
      } else {
        const size_t src = static_cast<size_t>(p * height + (height - 1 - r)) * row_bytes;
        std::memcpy(dst + row, h.data + src, row_bytes);
      }
    }
  }
  return detail::make_tensor(h.dtype, h.shape, std::move(out), h.device);
}

}  // namespace

void manual_seed(uint64_t seed) { detail::transform_engine().seed(seed); }

// ---- Normalize -------------------------------------------------------------------------------

Normalize::Normalize(double mean, double std) : Normalize(std::vector{mean}, std::vector{std}) {}

Normalize::Normalize(std::vector<double> mean, std::vector<double> std)
    : mean_(std::move(mean)), std_(std::move(std)) {
  if (mean_.empty() || mean_.size() != std_.size()) {
    throw Error(
        absl::StrCat("Normalize: needs as many means as stds (one, or one per channel), "
                     "got ",
                     mean_.size(), " and ", std_.size()));
  }
  for (size_t c = 0; c < std_.size(); ++c) {
    if (std_[c] == 0.0 || !std::isfinite(std_[c]) || !std::isfinite(mean_[c])) {
      throw Error(
          absl::StrCat("Normalize: means must be finite and stds finite and nonzero, got "
                       "mean ",
                       mean_[c], " and std ", std_[c], " for channel ", c));
    }
  }
}

Tensor Normalize::operator()(const Tensor& image) const {
  const HostData h = detail::host_data(image, "Normalize");
  if (!is_floating(h.dtype)) {
    throw Error(absl::StrCat("Normalize: needs a floating image (f32 or f64), got ",
                             dtype_name(h.dtype), "; convert it with .to(DType::Float32)"));
  }
  const int64_t numel = ir::numel(h.shape);
  int64_t outer = 1, channels = 1, plane = numel;
  std::vector<double> mean = mean_, std = std_;
  if (mean_.size() > 1) {
    check_rank(h.shape, 3, "Normalize", "[..., C, H, W] (one mean and std per channel)");
    const size_t rank = h.shape.size();
    channels = h.shape[rank - 3];
    if (channels != static_cast<int64_t>(mean_.size())) {
      throw Error(absl::StrCat("Normalize: the image ", ir::shape_str(h.shape), " has ", channels,
                               " channels (dim -3) but ", mean_.size(),
                               " means and stds were given"));
    }
    plane = h.shape[rank - 2] * h.shape[rank - 1];
    outer = channels * plane == 0 ? 0 : numel / (channels * plane);
  }
  base::BufferPtr out =
      detail::allocate_host(static_cast<size_t>(numel) * dtype_size(h.dtype), "Normalize");
  if (h.dtype == DType::Float32) {
    normalize(reinterpret_cast<const float*>(h.data), static_cast<float*>(out->data()), outer,
              channels, plane, mean, std);
  } else {
    normalize(reinterpret_cast<const double*>(h.data), static_cast<double*>(out->data()), outer,
              channels, plane, mean, std);
  }
  return detail::make_tensor(h.dtype, h.shape, std::move(out), h.device);
}

// ---- flips -------------------------------------------------------------------------------------

RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {
  check_probability(p, "RandomHorizontalFlip");
}

Tensor RandomHorizontalFlip::operator()(const Tensor& image) const {
  // Drawn before anything else, so every call advances the generator by the same amount.
  const bool flip_it = detail::uniform01(detail::transform_engine()) < p_;
  if (!image.defined()) throw Error("RandomHorizontalFlip: the image is undefined");
  check_rank(image.shape(), 2, "RandomHorizontalFlip", "[..., H, W]");
  if (!flip_it) return image;
  return flip(detail::host_data(image, "RandomHorizontalFlip"), /*horizontal=*/true,
              "RandomHorizontalFlip");
}

RandomVerticalFlip::RandomVerticalFlip(double p) : p_(p) {
  check_probability(p, "RandomVerticalFlip");
}

Tensor RandomVerticalFlip::operator()(const Tensor& image) const {
  const bool flip_it = detail::uniform01(detail::transform_engine()) < p_;
  if (!image.defined()) throw Error("RandomVerticalFlip: the image is undefined");
  check_rank(image.shape(), 2, "RandomVerticalFlip", "[..., H, W]");
  if (!flip_it) return image;
  return flip(detail::host_data(image, "RandomVerticalFlip"), /*horizontal=*/false,
              "RandomVerticalFlip");
}

// ---- RandomCrop --------------------------------------------------------------------------------

RandomCrop::RandomCrop(int64_t size, int64_t padding)
    : RandomCrop(std::vector<int64_t>{size}, padding) {}

RandomCrop::RandomCrop(const std::vector<int64_t>& size, int64_t padding) : padding_(padding) {
  if (size.size() != 1 && size.size() != 2) {
    throw Error(absl::StrCat("RandomCrop: the size is one number or {height, width}, got ",
                             size.size(), " numbers"));
  }
  height_ = size.front();
  width_ = size.back();
  if (height_ < 1 || width_ < 1 || padding_ < 0) {
    throw Error(
        absl::StrCat("RandomCrop: needs a size of at least 1 and a padding of at least 0, "
                     "got size ",
                     height_, " x ", width_, " and padding ", padding_));
  }
}

Tensor RandomCrop::operator()(const Tensor& image) const {
  const HostData h = detail::host_data(image, "RandomCrop");
  check_rank(h.shape, 2, "RandomCrop", "[..., H, W]");
  const size_t rank = h.shape.size();
  const int64_t in_h = h.shape[rank - 2], in_w = h.shape[rank - 1];
  const int64_t padded_h = in_h + 2 * padding_, padded_w = in_w + 2 * padding_;
  if (padded_h < height_ || padded_w < width_) {
    throw Error(absl::StrCat("RandomCrop: the image ", ir::shape_str(h.shape), " padded by ",
                             padding_, " is ", padded_h, " x ", padded_w,
                             ", smaller than the crop ", height_, " x ", width_));
  }
  // torchvision's order: the top edge, then the left edge.
  std::mt19937_64& engine = detail::transform_engine();
  const auto top = static_cast<int64_t>(
      detail::uniform_below(engine, static_cast<uint64_t>(padded_h - height_ + 1)));
  const auto left = static_cast<int64_t>(
      detail::uniform_below(engine, static_cast<uint64_t>(padded_w - width_ + 1)));

  std::vector<int64_t> shape = h.shape;
  shape[rank - 2] = height_;
  shape[rank - 1] = width_;
  const size_t es = dtype_size(h.dtype);
  const int64_t planes = in_h * in_w == 0 ? 0 : ir::numel(h.shape) / (in_h * in_w);
  const size_t out_bytes = static_cast<size_t>(ir::numel(shape)) * es;
  base::BufferPtr out = detail::allocate_host(out_bytes, "RandomCrop");
  auto* dst = static_cast<uint8_t*>(out->data());
  // Zero bytes are the value 0 of every dtype: the padding.
  std::memset(dst, 0, out_bytes);
  // Output column j reads input column left + j - padding; those inside [0, in_w) are copied.
  const int64_t col0 = left - padding_;
  const int64_t j_begin = std::max<int64_t>(0, -col0);
  const int64_t j_end = std::min<int64_t>(width_, in_w - col0);
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t i = 0; i < height_; ++i) {
      const int64_t r = top + i - padding_;
      if (r < 0 || r >= in_h || j_end <= j_begin) continue;
      const size_t src = static_cast<size_t>((p * in_h + r) * in_w + col0 + j_begin) * es;
      const size_t to = static_cast<size_t>((p * height_ + i) * width_ + j_begin) * es;
      std::memcpy(dst + to, h.data + src, static_cast<size_t>(j_end - j_begin) * es);
    }
  }
  return detail::make_tensor(h.dtype, std::move(shape), std::move(out), h.device);
}

// ---- Compose and Lambda ------------------------------------------------------------------------

Compose::Compose(std::vector<Transform> transforms) : transforms_(std::move(transforms)) {
  for (size_t i = 0; i < transforms_.size(); ++i) {
    if (!transforms_[i]) throw Error(absl::StrCat("Compose: transform ", i, " is empty"));
  }
}

Tensor Compose::operator()(const Tensor& image) const {
  Tensor t = image;
  for (const Transform& f : transforms_) t = f(t);
  return t;
}

Lambda::Lambda(Transform fn) : fn_(std::move(fn)) {
  if (!fn_) throw Error("Lambda: the function is empty");
}

Tensor Lambda::operator()(const Tensor& image) const { return fn_(image); }

}  // namespace smelt::data::transforms
