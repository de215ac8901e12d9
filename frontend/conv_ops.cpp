// conv2d and max_pool2d: argument checks with the frontend's messages, then one IR op each
// (ir/ops/conv.cpp; library calls in the compiled program). The bias is added elementwise after
// the convolution, so it fuses with what follows. Average pooling (at the end) is a composite.
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/ops.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"

namespace smelt {
namespace {

struct Geometry {
  bool batched;
  int64_t out_h, out_w;
};

// The attributes every window op takes (ir/ops/conv.cpp): [h, w] pairs.
ir::Attrs window_attrs(Size2 stride, Size2 padding, Size2 dilation = 1) {
  return {{"stride", ir::IntList{stride.h, stride.w}},
          {"padding", ir::IntList{padding.h, padding.w}},
          {"dilation", ir::IntList{dilation.h, dilation.w}}};
}

std::string pair_str(Size2 v) {
  return v.h == v.w ? absl::StrCat(v.h) : absl::StrCat("[", v.h, ", ", v.w, "]");
}

// Checks a [N, C, H, W] (or unbatched [C, H, W]) input against a kh x kw kernel whose taps are
// `dilation` apart.
Geometry check_geometry(absl::string_view op, const ir::Shape& x, int64_t kh, int64_t kw,
                        Size2 stride, Size2 padding, Size2 dilation = 1) {
  if (x.size() != 3 && x.size() != 4) {
    throw Error(absl::StrCat(op, ": input must be 4-d [N, C, H, W] or 3-d [C, H, W], got ",
                             ir::shape_str(x)));
  }
  if (stride.h < 1 || stride.w < 1) {
    throw Error(absl::StrCat(op, ": stride must be >= 1, got ", pair_str(stride)));
  }
  if (padding.h < 0 || padding.w < 0) {
    throw Error(absl::StrCat(op, ": padding must be >= 0, got ", pair_str(padding)));
  }
  if (dilation.h < 1 || dilation.w < 1) {
    throw Error(absl::StrCat(op, ": dilation must be >= 1, got ", pair_str(dilation)));
  }
  const int64_t h = x[x.size() - 2] + 2 * padding.h;
  const int64_t w = x[x.size() - 1] + 2 * padding.w;
  const int64_t span_h = dilation.h * (kh - 1) + 1, span_w = dilation.w * (kw - 1) + 1;
  if (h < span_h || w < span_w) {
    throw Error(absl::StrCat(
        op, ": the ", kh, "x", kw, " kernel",
        dilation == Size2(1) ? "" : absl::StrCat(" (dilation ", pair_str(dilation), ")"),
        " is larger than the padded input ", h, "x", w, " (input ", ir::shape_str(x), ", padding ",
        pair_str(padding), ")"));
  }
  return {x.size() == 4, (h - span_h) / stride.h + 1, (w - span_w) / stride.w + 1};
}

}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, Size2 stride,
              Size2 padding, Size2 dilation, int64_t groups) {
  ir::NodePtr x = detail::node_of(input, "conv2d");
  ir::NodePtr w = detail::node_of(weight, "conv2d");
  if (w->rank() != 4) {
    throw Error(absl::StrCat("conv2d: weight must be 4-d [out_channels, in_channels / groups, kh, ",
                             "kw], got ", ir::shape_str(w->shape())));
  }
  const int64_t out_c = w->shape()[0], in_c = w->shape()[1], kh = w->shape()[2], kw = w->shape()[3];
  const Geometry g = check_geometry("conv2d", x->shape(), kh, kw, stride, padding, dilation);
  if (groups < 1) throw Error(absl::StrCat("conv2d: groups must be >= 1, got ", groups));
  const int64_t channels = x->shape()[x->rank() - 3];
  if (channels != in_c * groups) {
    throw Error(absl::StrCat(
        "conv2d: input ", ir::shape_str(x->shape()), " has ", channels, " channels but weight ",
        ir::shape_str(w->shape()), " expects ", in_c * groups,
        groups > 1 ? absl::StrCat(" (", in_c, " per group x ", groups, " groups)") : ""));
  }
  if (out_c % groups != 0) {
    throw Error(absl::StrCat("conv2d: weight ", ir::shape_str(w->shape()), " has ", out_c,
                             " output channels, not a multiple of groups = ", groups));
  }
  DType dtype = promote_types(x->dtype(), w->dtype());
  if (bias.defined()) {
    ir::NodePtr b = detail::node_of(bias, "conv2d");
    if (b->shape() != ir::Shape{out_c}) {
      throw Error(absl::StrCat("conv2d: bias must be [", out_c, "] for weight ",
                               ir::shape_str(w->shape()), ", got ", ir::shape_str(b->shape())));
    }
    dtype = promote_types(dtype, b->dtype());
  }
  if (!is_floating(dtype)) {
    throw Error(absl::StrCat("conv2d: needs a floating dtype, got ", dtype_name(dtype),
                             "; call .to(DType::Float32) first"));
  }

  Tensor xb = input.to(dtype);
  if (!g.batched) xb = xb.unsqueeze(0);
  const Tensor wd = weight.to(dtype);
  auto conv = [&](const Tensor& xs, const Tensor& ws) {
    return detail::wrap(detail::make_node(
        ir::OpCode::Conv2d, {detail::node_of(xs, "conv2d"), detail::node_of(ws, "conv2d")},
        window_attrs(stride, padding, dilation)));
  };
  Tensor out;
  if (groups == 1) {
    out = conv(xb, wd);
  } else {
    // Each group is an ordinary convolution of its slice of channels; autodiff goes through the
    // slices and the concatenation. One library call per group: fine for a few groups, slow for
    // depthwise convolutions of many channels (no depthwise kernel yet; docs/PLAN.md).
    const int64_t out_per_group = out_c / groups;
    std::vector<Tensor> parts;
    parts.reserve(static_cast<size_t>(groups));
    for (int64_t k = 0; k < groups; ++k) {
      parts.push_back(conv(xb.slice(1, k * in_c, (k + 1) * in_c),
                           wd.slice(0, k * out_per_group, (k + 1) * out_per_group)));
    }
    out = cat(parts, 1);
  }
  // Bias stays elementwise, so it fuses with the activation that usually follows.
  if (bias.defined()) out = out + bias.to(dtype).reshape({out_c, 1, 1});
  return g.batched ? out : out.squeeze(0);
}

Tensor max_pool2d(const Tensor& input, Size2 kernel_size, std::optional<Size2> stride,
                  Size2 padding) {
  ir::NodePtr x = detail::node_of(input, "max_pool2d");
  if (kernel_size.h < 1 || kernel_size.w < 1) {
    throw Error(absl::StrCat("max_pool2d: kernel_size must be >= 1, got ", pair_str(kernel_size)));
  }
  const Size2 s = stride.value_or(kernel_size);
  if (padding.h > kernel_size.h / 2 || padding.w > kernel_size.w / 2) {
    throw Error(absl::StrCat("max_pool2d: padding ", pair_str(padding),
                             " must be at most half the kernel size ", pair_str(kernel_size)));
  }
  const Geometry g =
      check_geometry("max_pool2d", x->shape(), kernel_size.h, kernel_size.w, s, padding);
  if (x->dtype() == DType::Bool) throw Error("max_pool2d: not supported for bool tensors");

  Tensor xb = g.batched ? input : input.unsqueeze(0);
  ir::Attrs attrs = window_attrs(s, padding);
  attrs.set("kernel_size", ir::IntList{kernel_size.h, kernel_size.w});
  Tensor out = detail::wrap(
      detail::make_node(ir::OpCode::MaxPool2d, {detail::node_of(xb, "max_pool2d")}, attrs));
  return g.batched ? out : out.squeeze(0);
}

// Average pooling is a composite: the sum of the kernel's kh * kw strided views of the (zero
// padded) input, divided by the window size, so the forward pass is one fused elementwise kernel
// and its gradient (kh * kw padded views of the output gradient, summed) another.
Tensor avg_pool2d(const Tensor& input, Size2 kernel_size, std::optional<Size2> stride,
                  Size2 padding, bool count_include_pad) {
  const char* op = "avg_pool2d";
  ir::NodePtr x = detail::node_of(input, op);
  if (kernel_size.h < 1 || kernel_size.w < 1) {
    throw Error(absl::StrCat(op, ": kernel_size must be >= 1, got ", pair_str(kernel_size)));
  }
  const Size2 s = stride.value_or(kernel_size);
  if (padding.h > kernel_size.h / 2 || padding.w > kernel_size.w / 2) {
    throw Error(absl::StrCat(op, ": padding ", pair_str(padding),
                             " must be at most half the kernel size ", pair_str(kernel_size)));
  }
  const Geometry g = check_geometry(op, x->shape(), kernel_size.h, kernel_size.w, s, padding);
  if (!is_floating(x->dtype())) {
    throw Error(absl::StrCat(op, ": needs a floating input, got ", dtype_name(x->dtype()),
                             "; convert it with .to(DType::Float32)"));
  }
  Tensor xb = g.batched ? input : input.unsqueeze(0);
  if (padding != Size2(0)) {
    xb = detail::wrap(detail::make_node(ir::OpCode::Pad, {detail::node_of(xb, op)},
                                        {{"before", ir::IntList{0, 0, padding.h, padding.w}},
                                         {"after", ir::IntList{0, 0, padding.h, padding.w}},
                                         {"value", 0.0}}));
  }
  Tensor sum;
  for (int64_t a = 0; a < kernel_size.h; ++a) {
    for (int64_t b = 0; b < kernel_size.w; ++b) {
      Tensor tap = xb.slice(2, a, a + s.h * (g.out_h - 1) + 1, s.h)
                       .slice(3, b, b + s.w * (g.out_w - 1) + 1, s.w);
      sum = sum.defined() ? sum + tap : tap;
    }
  }
  Tensor out;
  if (count_include_pad || padding == Size2(0)) {
    out = sum / static_cast<double>(kernel_size.h * kernel_size.w);
  } else {
    // Each window's count of input (not padding) cells: rows in range times columns in range.
    const int64_t h = x->shape()[x->rank() - 2], w = x->shape()[x->rank() - 1];
    auto in_range = [](int64_t start, int64_t k, int64_t n) {
      return std::min(start + k, n) - std::max<int64_t>(start, 0);
    };
    std::vector<double> counts(static_cast<size_t>(g.out_h * g.out_w));
    for (int64_t i = 0; i < g.out_h; ++i) {
      for (int64_t j = 0; j < g.out_w; ++j) {
        counts[i * g.out_w + j] =
            static_cast<double>(in_range(i * s.h - padding.h, kernel_size.h, h) *
                                in_range(j * s.w - padding.w, kernel_size.w, w));
      }
    }
    Tensor divisor = from_vector(counts, {g.out_h, g.out_w}).to(x->dtype());
    if (divisor.device() != input.device()) divisor = divisor.to(input.device());
    out = sum / divisor;
  }
  return g.batched ? out : out.squeeze(0);
}

Tensor adaptive_avg_pool2d(const Tensor& input, Size2 output_size) {
  const char* op = "adaptive_avg_pool2d";
  ir::NodePtr x = detail::node_of(input, op);
  if (x->rank() != 3 && x->rank() != 4) {
    throw Error(absl::StrCat(op, ": input must be 4-d [N, C, H, W] or 3-d [C, H, W], got ",
                             ir::shape_str(x->shape())));
  }
  if (output_size.h < 1 || output_size.w < 1) {
    throw Error(absl::StrCat(op, ": output_size must be >= 1, got ", pair_str(output_size)));
  }
  if (!is_floating(x->dtype())) {
    throw Error(absl::StrCat(op, ": needs a floating input, got ", dtype_name(x->dtype()),
                             "; convert it with .to(DType::Float32)"));
  }
  const int64_t rank = x->rank();
  const int64_t h = x->shape()[rank - 2], w = x->shape()[rank - 1];
  if (h < output_size.h || w < output_size.w) {
    throw Error(absl::StrCat(op, ": output_size ", pair_str(output_size),
                             " is larger than the input ", ir::shape_str(x->shape())));
  }
  if (h % output_size.h == 0 && w % output_size.w == 0) {
    return avg_pool2d(input, {h / output_size.h, w / output_size.w});
  }
  // PyTorch's windows: cell i covers [floor(i * n / out), ceil((i + 1) * n / out)). They are a
  // product of a row range and a column range, so rows then columns are averaged.
  auto pool = [](const Tensor& t, int64_t dim, int64_t n, int64_t out) {
    if (n == out) return t;
    std::vector<Tensor> cells;
    for (int64_t i = 0; i < out; ++i) {
      const int64_t start = i * n / out, end = ((i + 1) * n + out - 1) / out;
      cells.push_back(t.slice(dim, start, end).mean(dim, /*keepdim=*/true));
    }
    return cat(cells, dim);
  };
  return pool(pool(input, rank - 2, h, output_size.h), rank - 1, w, output_size.w);
}

}  // namespace smelt
