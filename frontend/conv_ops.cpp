// conv2d and max_pool2d: argument checks with the frontend's messages, then one IR op each
// (ir/ops/conv.cpp; library calls in the compiled program). The bias is added elementwise after
// the convolution, so it fuses with what follows.
#include <smelt/error.h>
#include <smelt/ops.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"

namespace smelt {
namespace {

struct Geometry {
  bool batched;
  int64_t out_h, out_w;
};

// The attributes every window op takes (ir/ops/conv.cpp), square and undilated here.
ir::Attrs window_attrs(int64_t stride, int64_t padding) {
  return {{"stride", ir::IntList{stride, stride}},
          {"padding", ir::IntList{padding, padding}},
          {"dilation", ir::IntList{1, 1}}};
}

// Checks a [N, C, H, W] (or unbatched [C, H, W]) input against a kh x kw kernel.
Geometry check_geometry(absl::string_view op, const ir::Shape& x, int64_t kh, int64_t kw,
                        int64_t stride, int64_t padding) {
  if (x.size() != 3 && x.size() != 4) {
    throw Error(absl::StrCat(op, ": input must be 4-d [N, C, H, W] or 3-d [C, H, W], got ",
                             ir::shape_str(x)));
  }
  if (stride < 1) throw Error(absl::StrCat(op, ": stride must be >= 1, got ", stride));
  if (padding < 0) throw Error(absl::StrCat(op, ": padding must be >= 0, got ", padding));
  const int64_t h = x[x.size() - 2] + 2 * padding;
  const int64_t w = x[x.size() - 1] + 2 * padding;
  if (h < kh || w < kw) {
    throw Error(absl::StrCat(op, ": the ", kh, "x", kw, " kernel is larger than the padded input ",
                             h, "x", w, " (input ", ir::shape_str(x), ", padding ", padding, ")"));
  }
  return {x.size() == 4, (h - kh) / stride + 1, (w - kw) / stride + 1};
}

}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, int64_t stride,
              int64_t padding) {
  ir::NodePtr x = detail::node_of(input, "conv2d");
  ir::NodePtr w = detail::node_of(weight, "conv2d");
  if (w->rank() != 4) {
    throw Error(absl::StrCat("conv2d: weight must be 4-d [out_channels, in_channels, kh, kw], got ",
                             ir::shape_str(w->shape())));
  }
  const int64_t out_c = w->shape()[0], in_c = w->shape()[1], kh = w->shape()[2], kw = w->shape()[3];
  const Geometry g = check_geometry("conv2d", x->shape(), kh, kw, stride, padding);
  const int64_t channels = x->shape()[x->rank() - 3];
  if (channels != in_c) {
    throw Error(absl::StrCat("conv2d: input ", ir::shape_str(x->shape()), " has ", channels,
                             " channels but weight ", ir::shape_str(w->shape()), " expects ",
                             in_c));
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
  Tensor out = detail::wrap(detail::make_node(
      ir::OpCode::Conv2d,
      {detail::node_of(xb, "conv2d"), detail::node_of(weight.to(dtype), "conv2d")},
      window_attrs(stride, padding)));
  // Bias stays elementwise, so it fuses with the activation that usually follows.
  if (bias.defined()) out = out + bias.to(dtype).reshape({out_c, 1, 1});
  return g.batched ? out : out.squeeze(0);
}

Tensor max_pool2d(const Tensor& input, int64_t kernel_size, std::optional<int64_t> stride,
                  int64_t padding) {
  ir::NodePtr x = detail::node_of(input, "max_pool2d");
  if (kernel_size < 1) {
    throw Error(absl::StrCat("max_pool2d: kernel_size must be >= 1, got ", kernel_size));
  }
  const int64_t s = stride.value_or(kernel_size);
  if (padding > kernel_size / 2) {
    throw Error(absl::StrCat("max_pool2d: padding ", padding,
                             " must be at most half the kernel size ", kernel_size));
  }
  const Geometry g = check_geometry("max_pool2d", x->shape(), kernel_size, kernel_size, s, padding);
  if (x->dtype() == DType::Bool) throw Error("max_pool2d: not supported for bool tensors");

  Tensor xb = g.batched ? input : input.unsqueeze(0);
  ir::Attrs attrs = window_attrs(s, padding);
  attrs.set("kernel_size", ir::IntList{kernel_size, kernel_size});
  Tensor out = detail::wrap(
      detail::make_node(ir::OpCode::MaxPool2d, {detail::node_of(xb, "max_pool2d")}, attrs));
  return g.batched ? out : out.squeeze(0);
}

}  // namespace smelt
