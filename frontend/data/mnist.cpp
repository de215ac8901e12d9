// MNIST and Fashion-MNIST from their IDX files.
#include <smelt/data.h>
#include <smelt/error.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "frontend/data/host_tensor.h"
#include "frontend/data/idx_reader.h"

namespace smelt::data {
namespace {

constexpr int64_t kSide = 28;
constexpr int64_t kNumClasses = 10;

const std::vector<std::string>& mnist_classes() {
  static const auto* names =
      new std::vector<std::string>{"0 - zero", "1 - one", "2 - two",   "3 - three", "4 - four",
                                   "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"};
  return *names;
}

const std::vector<std::string>& fashion_classes() {
  static const auto* names =
      new std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return *names;
}

// The path of `file` (raw, else ".gz") in `root` or in torchvision's `root`/name/raw.
std::string find_file(const std::string& name, const std::string& root, const std::string& file) {
  namespace fs = std::filesystem;
  const std::vector<fs::path> dirs = {fs::path(root), fs::path(root) / name / "raw"};
  std::error_code ec;
  for (const fs::path& dir : dirs) {
    for (const std::string& candidate : {file, file + ".gz"}) {
      const fs::path p = dir / candidate;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
  }
  if (!fs::is_directory(root, ec)) {
    throw Error(absl::StrCat(name, ": cannot find ", (fs::path(root) / file).string(),
                             ".gz: the directory ", root, " does not exist"));
  }
  throw Error(absl::StrCat(name, ": cannot find ", (dirs[0] / file).string(), ".gz (nor ",
                           (dirs[0] / file).string(), ", nor either in ", dirs[1].string(), ")"));
}

detail::IdxFile read(const std::string& name, const std::string& path) {
  absl::StatusOr<detail::IdxFile> idx = detail::read_idx(path);
  if (!idx.ok()) throw Error(absl::StrCat(name, ": ", idx.status().message()));
  if (idx->type != detail::kIdxUnsignedByte) {
    throw Error(
        absl::StrFormat("%s: %s holds elements of IDX type 0x%02x; expected unsigned bytes "
                        "(0x08)",
                        name, path, idx->type));
  }
  return *std::move(idx);
}

std::string dims_str(const std::vector<int64_t>& dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

// Reads and checks one split's two files, and makes the image and label tensors.
TensorDataset load_split(const std::string& name, const std::string& root, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_file(name, root, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(name, root, prefix + "-labels-idx1-ubyte");
  const detail::IdxFile images = read(name, images_path);
  const detail::IdxFile labels = read(name, labels_path);
  if (images.dims.size() != 3 || images.dims[1] != kSide || images.dims[2] != kSide) {
    throw Error(absl::StrCat(name, ": ", images_path, " holds dims ", dims_str(images.dims),
                             "; expected images [N, 28, 28]"));
  }
  if (labels.dims.size() != 1) {
    throw Error(absl::StrCat(name, ": ", labels_path, " holds dims ", dims_str(labels.dims),
                             "; expected labels [N]"));
  }
  const int64_t n = images.dims[0];
  if (labels.dims[0] != n) {
    throw Error(absl::StrCat(name, ": ", images_path, " holds ", n, " images but ", labels_path,
                             " holds ", labels.dims[0], " labels"));
  }

  base::BufferPtr label_buf = detail::allocate_host(static_cast<size_t>(n) * sizeof(int64_t), name);
  auto* label_out = static_cast<int64_t*>(label_buf->data());
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t label = labels.data[static_cast<size_t>(i)];
    if (label >= kNumClasses) {
      throw Error(absl::StrCat(name, ": ", labels_path, " is corrupted: label ", i, " is ",
                               static_cast<int>(label), ", not a class 0-9"));
    }
    label_out[i] = label;
  }
  // x / 255 like torchvision's ToTensor, once for the whole split.
  const size_t count = images.data.size();
  base::BufferPtr image_buf = detail::allocate_host(count * sizeof(float), name);
  auto* image_out = static_cast<float*>(image_buf->data());
  for (size_t k = 0; k < count; ++k) image_out[k] = static_cast<float>(images.data[k]) / 255.0f;

  return TensorDataset(detail::make_tensor(DType::Float32, {n, 1, kSide, kSide}, image_buf),
                       detail::make_tensor(DType::Int64, {n}, label_buf));
}

}  // namespace

MNIST::MNIST(const std::string& root, bool train, Transform transform, Transform target_transform)
    : MNIST("MNIST", &mnist_classes(), root, train, std::move(transform),
            std::move(target_transform)) {}

MNIST::MNIST(const std::string& name, const std::vector<std::string>* classes,
             const std::string& root, bool train, Transform transform, Transform target_transform)
    : rows_(load_split(name, root, train)),
      transform_(std::move(transform)),
      target_transform_(std::move(target_transform)),
      classes_(classes) {}

int64_t MNIST::size() const { return rows_.size(); }

Example MNIST::get(int64_t index) const {
  Example e = rows_.get(index);
  if (transform_) e.data = transform_(e.data);
  if (target_transform_) e.target = target_transform_(e.target);
  return e;
}

Example MNIST::get_batch(const std::vector<int64_t>& indices) const {
  if (!transform_ && !target_transform_) return rows_.get_batch(indices);
  return Dataset::get_batch(indices);
}

FashionMNIST::FashionMNIST(const std::string& root, bool train, Transform transform,
                           Transform target_transform)
    : MNIST("FashionMNIST", &fashion_classes(), root, train, std::move(transform),
            std::move(target_transform)) {}

}  // namespace smelt::data
