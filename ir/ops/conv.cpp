// Sliding-window ops over NCHW images, library calls like matmul (im2col + GEMM on the CPU):
//
//   conv2d(x [N,C,H,W], w [O,C,KH,KW])                   -> [N,O,OH,OW]  (cross-correlation)
//   conv2d_backward_input(g [N,O,OH,OW], w) {input_size} -> [N,C,H,W]    (its adjoint in x)
//   conv2d_backward_weight(x, g [N,O,OH,OW]) {kernel_size} -> [O,C,KH,KW] (its adjoint in w)
//   max_pool2d(x) {kernel_size}                          -> [N,C,OH,OW]
//   max_pool2d_backward(x, g [N,C,OH,OW]) {kernel_size}  -> [N,C,H,W]
//
// Every op takes {stride, padding, dilation} as [h, w] pairs; OH = floor((H + 2 pad - dilation
// (KH - 1) - 1) / stride) + 1. Zero padding for conv; padding never wins a max. Bias is not part
// of conv2d: the frontend adds it elementwise so that it fuses with the activation after it.
//
// max_pool2d follows PyTorch's CPU rule, which its backward recomputes: a window's maximum starts
// at -inf on its first in-bounds element and moves to a later element when that is greater or
// NaN, so ties go to the first maximal element in row-major window order and a NaN propagates
// (the last NaN is the one that takes the gradient).
//
// The backward ops are linear in each operand, so their VJPs are the other convolution ops; only
// max_pool2d_backward has no VJP (its gradient in g is a gather at the argmax, an op the IR lacks).
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ir/grad_builder.h"
#include "ir/node.h"
#include "ir/op_registry.h"
#include "ir/window.h"

namespace smelt::ir {

int64_t window_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

WindowGeometry window_geometry(OpCode op, absl::Span<const Shape> in, const Shape& out,
                               const Attrs& a) {
  WindowGeometry g;
  const IntList& s = a.get_ints("stride");
  const IntList& p = a.get_ints("padding");
  const IntList& d = a.get_ints("dilation");
  g.stride_h = s[0], g.stride_w = s[1], g.pad_h = p[0], g.pad_w = p[1];
  g.dilation_h = d[0], g.dilation_w = d[1];
  // Which shape is the image, which the kernel and which the output grid.
  const Shape* image = &in[0];
  const Shape* grid = &out;
  switch (op) {
    case OpCode::Conv2d:
      g.out_channels = in[1][0], g.kernel_h = in[1][2], g.kernel_w = in[1][3];
      break;
    case OpCode::Conv2dBackwardInput:
      image = &out, grid = &in[0];
      g.out_channels = in[1][0], g.kernel_h = in[1][2], g.kernel_w = in[1][3];
      break;
    case OpCode::Conv2dBackwardWeight:
      grid = &in[1];
      g.out_channels = out[0], g.kernel_h = out[2], g.kernel_w = out[3];
      break;
    case OpCode::MaxPool2dBackward:
      grid = &in[1];
      [[fallthrough]];
    default:  // max_pool2d
      g.out_channels = in[0][1];
      g.kernel_h = a.get_ints("kernel_size")[0], g.kernel_w = a.get_ints("kernel_size")[1];
      break;
  }
  g.batch = (*image)[0], g.channels = (*image)[1], g.in_h = (*image)[2], g.in_w = (*image)[3];
  g.out_h = (*grid)[2], g.out_w = (*grid)[3];
  return g;
}

namespace {

absl::Status invalid(absl::string_view op, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", what));
}

// The [h, w] pair `name`, each entry at least `min`.
absl::Status check_pair(absl::string_view op, const Attrs& a, absl::string_view name, int64_t min) {
  const IntList& v = a.get_ints(name);
  if (v.size() != 2 || v[0] < min || v[1] < min) {
    return invalid(op, absl::StrCat(name, " must be two numbers >= ", min, " ([h, w]), got [",
                                    absl::StrJoin(v, ", "), "]"));
  }
  return absl::OkStatus();
}

absl::Status check_attrs(absl::string_view op, const Attrs& a) {
  for (auto [name, min] :
       {std::pair<absl::string_view, int64_t>{"stride", 1}, {"padding", 0}, {"dilation", 1}}) {
    if (absl::Status s = check_pair(op, a, name, min); !s.ok()) return s;
  }
  for (absl::string_view name : {"kernel_size", "input_size"}) {
    if (a.has(name)) {
      if (absl::Status s = check_pair(op, a, name, 1); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status check_image(absl::string_view op, absl::string_view role, const TypeInfo& t) {
  if (t.shape.size() != 4) {
    return invalid(op, absl::StrCat(role, " must be 4-d, got ", shape_str(t.shape)));
  }
  return absl::OkStatus();
}

absl::Status check_floating_pair(absl::string_view op, const TypeInfo& a, const TypeInfo& b) {
  if (a.dtype != b.dtype) {
    return invalid(op, absl::StrCat("operand dtypes ", dtype_name(a.dtype), " and ",
                                    dtype_name(b.dtype), " differ (the IR needs explicit cast)"));
  }
  if (!is_floating(a.dtype)) {
    return invalid(op, absl::StrCat("needs a floating dtype, got ", dtype_name(a.dtype)));
  }
  return absl::OkStatus();
}

// The output grid of an H x W image under the attrs and a KH x KW kernel, or an error when the
// dilated kernel does not fit the padded image.
absl::StatusOr<std::pair<int64_t, int64_t>> out_grid(absl::string_view op, const Attrs& a,
                                                     int64_t h, int64_t w, int64_t kh, int64_t kw) {
  const IntList& s = a.get_ints("stride");
  const IntList& p = a.get_ints("padding");
  const IntList& d = a.get_ints("dilation");
  const int64_t oh = window_out_size(h, kh, s[0], p[0], d[0]);
  const int64_t ow = window_out_size(w, kw, s[1], p[1], d[1]);
  if (oh < 1 || ow < 1) {
    return invalid(op, absl::StrCat("the ", kh, "x", kw, " kernel (dilation [", d[0], ", ", d[1],
                                    "]) is larger than the ", h, "x", w, " input padded by [", p[0],
                                    ", ", p[1], "]"));
  }
  return std::pair<int64_t, int64_t>{oh, ow};
}

absl::StatusOr<TypeInfo> infer_conv2d(absl::Span<const TypeInfo> in, const Attrs& a) {
  const absl::string_view op = "conv2d";
  if (absl::Status s = check_attrs(op, a); !s.ok()) return s;
  if (absl::Status s = check_image(op, "input", in[0]); !s.ok()) return s;
  if (absl::Status s = check_image(op, "weight", in[1]); !s.ok()) return s;
  const Shape& x = in[0].shape;
  const Shape& w = in[1].shape;
  if (x[1] != w[1]) {
    return invalid(op, absl::StrCat("input ", shape_str(x), " has ", x[1], " channels but weight ",
                                    shape_str(w), " expects ", w[1]));
  }
  if (absl::Status s = check_floating_pair(op, in[0], in[1]); !s.ok()) return s;
  auto grid = out_grid(op, a, x[2], x[3], w[2], w[3]);
  if (!grid.ok()) return grid.status();
  return TypeInfo{in[0].dtype, {x[0], w[0], grid->first, grid->second}};
}

absl::StatusOr<TypeInfo> infer_conv2d_backward_input(absl::Span<const TypeInfo> in,
                                                     const Attrs& a) {
  const absl::string_view op = "conv2d_backward_input";
  if (absl::Status s = check_attrs(op, a); !s.ok()) return s;
  if (absl::Status s = check_image(op, "gradient", in[0]); !s.ok()) return s;
  if (absl::Status s = check_image(op, "weight", in[1]); !s.ok()) return s;
  const Shape& g = in[0].shape;
  const Shape& w = in[1].shape;
  const IntList& size = a.get_ints("input_size");
  if (g[1] != w[0]) {
    return invalid(op,
                   absl::StrCat("gradient ", shape_str(g), " has ", g[1], " channels but weight ",
                                shape_str(w), " has ", w[0], " output channels"));
  }
  if (absl::Status s = check_floating_pair(op, in[0], in[1]); !s.ok()) return s;
  auto grid = out_grid(op, a, size[0], size[1], w[2], w[3]);
  if (!grid.ok()) return grid.status();
  if (grid->first != g[2] || grid->second != g[3]) {
    return invalid(
        op, absl::StrCat("gradient ", shape_str(g), " is not the output grid ", grid->first, "x",
                         grid->second, " of a ", size[0], "x", size[1], " input"));
  }
  return TypeInfo{in[0].dtype, {g[0], w[1], size[0], size[1]}};
}

absl::StatusOr<TypeInfo> infer_conv2d_backward_weight(absl::Span<const TypeInfo> in,
                                                      const Attrs& a) {
  const absl::string_view op = "conv2d_backward_weight";
  if (absl::Status s = check_attrs(op, a); !s.ok()) return s;
  if (absl::Status s = check_image(op, "input", in[0]); !s.ok()) return s;
  if (absl::Status s = check_image(op, "gradient", in[1]); !s.ok()) return s;
  const Shape& x = in[0].shape;
  const Shape& g = in[1].shape;
  const IntList& k = a.get_ints("kernel_size");
  if (x[0] != g[0]) {
    return invalid(op, absl::StrCat("input ", shape_str(x), " and gradient ", shape_str(g),
                                    " have different batch sizes"));
  }
  if (absl::Status s = check_floating_pair(op, in[0], in[1]); !s.ok()) return s;
  auto grid = out_grid(op, a, x[2], x[3], k[0], k[1]);
  if (!grid.ok()) return grid.status();
  if (grid->first != g[2] || grid->second != g[3]) {
    return invalid(op, absl::StrCat("gradient ", shape_str(g), " is not the output grid ",
                                    grid->first, "x", grid->second, " of input ", shape_str(x)));
  }
  return TypeInfo{in[0].dtype, {g[1], x[1], k[0], k[1]}};
}

absl::StatusOr<TypeInfo> infer_max_pool2d(absl::Span<const TypeInfo> in, const Attrs& a) {
  const absl::string_view op = "max_pool2d";
  if (absl::Status s = check_attrs(op, a); !s.ok()) return s;
  if (absl::Status s = check_image(op, "input", in[0]); !s.ok()) return s;
  if (in[0].dtype == DType::Bool) return invalid(op, "not supported for bool tensors");
  const IntList& k = a.get_ints("kernel_size");
  const IntList& p = a.get_ints("padding");
  // PyTorch's rule; it also keeps every window non-empty.
  if (p[0] > k[0] / 2 || p[1] > k[1] / 2) {
    return invalid(
        op, absl::StrCat("padding [", p[0], ", ", p[1], "] must be at most half the kernel size [",
                         k[0], ", ", k[1], "]"));
  }
  const Shape& x = in[0].shape;
  auto grid = out_grid(op, a, x[2], x[3], k[0], k[1]);
  if (!grid.ok()) return grid.status();
  return TypeInfo{in[0].dtype, {x[0], x[1], grid->first, grid->second}};
}

absl::StatusOr<TypeInfo> infer_max_pool2d_backward(absl::Span<const TypeInfo> in, const Attrs& a) {
  const absl::string_view op = "max_pool2d_backward";
  absl::StatusOr<TypeInfo> pooled = infer_max_pool2d(in.first(1), a);
  if (!pooled.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(op, " of ", pooled.status().message()));
  }
  if (in[1].shape != pooled->shape) {
    return invalid(op, absl::StrCat("gradient ", shape_str(in[1].shape),
                                    " does not match the pooled shape ", shape_str(pooled->shape)));
  }
  if (absl::Status s = check_floating_pair(op, in[0], in[1]); !s.ok()) return s;
  return in[0];
}

// Calls fn(n, c, o, oh, ow, i, j, input_offset) for every in-bounds tap of the geometry: output
// position (n, o, oh, ow) reads input (n, c, ...) through kernel tap (i, j). `o` runs over the
// output channels for conv (pass `per_channel` = false) or equals c for pooling.
template <typename F>
void for_each_tap(const WindowGeometry& g, bool per_channel, F&& fn) {
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t o = 0; o < g.out_channels; ++o) {
      for (int64_t c = per_channel ? o : 0; c < (per_channel ? o + 1 : g.channels); ++c) {
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          for (int64_t ow = 0; ow < g.out_w; ++ow) {
            for (int64_t i = 0; i < g.kernel_h; ++i) {
              const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilation_h;
              if (h < 0 || h >= g.in_h) continue;
              for (int64_t j = 0; j < g.kernel_w; ++j) {
                const int64_t w = ow * g.stride_w - g.pad_w + j * g.dilation_w;
                if (w < 0 || w >= g.in_w) continue;
                fn(n, c, o, oh, ow, i, j, ((n * g.channels + c) * g.in_h + h) * g.in_w + w);
              }
            }
          }
        }
      }
    }
  }
}

WindowGeometry geometry_of(OpCode op, absl::Span<const RefTensor* const> in, const Attrs& a,
                           const TypeInfo& out) {
  std::vector<Shape> shapes;
  for (const RefTensor* t : in) shapes.push_back(t->shape);
  return window_geometry(op, shapes, out.shape, a);
}

// The three conv ops are one sum, out[n,o,oh,ow] += x[n,c,h,w] * w[o,c,i,j], read in three ways.
template <OpCode kOp>
absl::StatusOr<RefTensor> ref_conv(absl::Span<const RefTensor* const> in, const Attrs& a,
                                   const TypeInfo& out) {
  const WindowGeometry g = geometry_of(kOp, in, a, out);
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  std::vector<double> acc(r.numel(), 0.0);
  const int64_t kk = g.kernel_h * g.kernel_w;
  for_each_tap(g, false,
               [&](int64_t n, int64_t c, int64_t o, int64_t oh, int64_t ow, int64_t i, int64_t j,
                   int64_t x_at) {
                 const int64_t w_at = (o * g.channels + c) * kk + i * g.kernel_w + j;
                 const int64_t y_at = ((n * g.out_channels + o) * g.out_h + oh) * g.out_w + ow;
                 if constexpr (kOp == OpCode::Conv2d) {
                   acc[y_at] += in[0]->f[x_at] * in[1]->f[w_at];
                 } else if constexpr (kOp == OpCode::Conv2dBackwardInput) {
                   acc[x_at] += in[0]->f[y_at] * in[1]->f[w_at];
                 } else {
                   acc[w_at] += in[0]->f[x_at] * in[1]->f[y_at];
                 }
               });
  for (int64_t e = 0; e < r.numel(); ++e) r.set(e, acc[e]);
  return r;
}

// Each window's maximum and where it is (see the file comment for the tie and NaN rule).
struct PoolResult {
  std::vector<double> value;
  std::vector<int64_t> argmax;  // input offset
};

PoolResult pool(const WindowGeometry& g, const RefTensor& x) {
  const int64_t outputs = g.batch * g.channels * g.out_h * g.out_w;
  PoolResult r{std::vector<double>(outputs, -std::numeric_limits<double>::infinity()),
               std::vector<int64_t>(outputs, -1)};
  for_each_tap(
      g, true,
      [&](int64_t n, int64_t c, int64_t, int64_t oh, int64_t ow, int64_t, int64_t, int64_t x_at) {
        const int64_t y_at = ((n * g.channels + c) * g.out_h + oh) * g.out_w + ow;
        const double v = x.get(x_at);
        if (r.argmax[y_at] < 0) r.argmax[y_at] = x_at;  // a window of -inf points at its first
        if (v > r.value[y_at] || std::isnan(v)) {
          r.value[y_at] = v;
          r.argmax[y_at] = x_at;
        }
      });
  return r;
}

absl::StatusOr<RefTensor> ref_max_pool2d(absl::Span<const RefTensor* const> in, const Attrs& a,
                                         const TypeInfo& out) {
  const PoolResult p = pool(geometry_of(OpCode::MaxPool2d, in, a, out), *in[0]);
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  for (int64_t e = 0; e < r.numel(); ++e) {
    if (r.floating()) {
      r.f[e] = p.value[e];
    } else {
      r.i[e] = in[0]->i[p.argmax[e]];  // exact for int64
    }
  }
  return r;
}

absl::StatusOr<RefTensor> ref_max_pool2d_backward(absl::Span<const RefTensor* const> in,
                                                  const Attrs& a, const TypeInfo& out) {
  const PoolResult p = pool(geometry_of(OpCode::MaxPool2dBackward, in, a, out), *in[0]);
  std::vector<double> acc(numel(out.shape), 0.0);
  for (size_t e = 0; e < p.argmax.size(); ++e) acc[p.argmax[e]] += in[1]->f[e];
  RefTensor r = RefTensor::zeros(out.dtype, out.shape);
  for (size_t e = 0; e < acc.size(); ++e) r.set(static_cast<int64_t>(e), acc[e]);
  return r;
}

// The attrs every window op shares, copied from `a`.
Attrs window_attrs(const Attrs& a) {
  Attrs out;
  for (absl::string_view keep : {"stride", "padding", "dilation"}) {
    out.set(std::string(keep), a.get_ints(keep));
  }
  return out;
}

// The shared attrs of `a` plus the pair `name` = [h, w].
Attrs with(const Attrs& a, absl::string_view name, int64_t h, int64_t w) {
  return window_attrs(a).set(std::string(name), IntList{h, w});
}

// y = conv(x, w): dx = conv_backward_input(g, w), dw = conv_backward_weight(x, g).
absl::StatusOr<std::vector<NodePtr>> vjp_conv2d(const NodePtr& node, const NodePtr& g) {
  const NodePtr& x = node->grad_inputs()[0];
  const NodePtr& w = node->grad_inputs()[1];
  GradBuilder b;
  return b.finish(*node, {b.op(OpCode::Conv2dBackwardInput, {g, w},
                               with(node->attrs(), "input_size", x->shape()[2], x->shape()[3])),
                          b.op(OpCode::Conv2dBackwardWeight, {x, g},
                               with(node->attrs(), "kernel_size", w->shape()[2], w->shape()[3]))});
}

// y = conv_backward_input(g, w) is conv's adjoint: <gy, y> = <conv(gy, w), g>, and in w it is
// conv_backward_weight with gy in the input's place.
absl::StatusOr<std::vector<NodePtr>> vjp_conv2d_backward_input(const NodePtr& node,
                                                               const NodePtr& gy) {
  const NodePtr& g = node->grad_inputs()[0];
  const NodePtr& w = node->grad_inputs()[1];
  GradBuilder b;
  return b.finish(*node, {b.op(OpCode::Conv2d, {gy, w}, window_attrs(node->attrs())),
                          b.op(OpCode::Conv2dBackwardWeight, {gy, g},
                               with(node->attrs(), "kernel_size", w->shape()[2], w->shape()[3]))});
}

// y = conv_backward_weight(x, g): in x it is conv_backward_input(g, gy), in g conv(x, gy).
absl::StatusOr<std::vector<NodePtr>> vjp_conv2d_backward_weight(const NodePtr& node,
                                                                const NodePtr& gy) {
  const NodePtr& x = node->grad_inputs()[0];
  const NodePtr& g = node->grad_inputs()[1];
  GradBuilder b;
  return b.finish(*node, {b.op(OpCode::Conv2dBackwardInput, {g, gy},
                               with(node->attrs(), "input_size", x->shape()[2], x->shape()[3])),
                          b.op(OpCode::Conv2d, {x, gy}, window_attrs(node->attrs()))});
}

absl::StatusOr<std::vector<NodePtr>> vjp_max_pool2d(const NodePtr& node, const NodePtr& g) {
  GradBuilder b;
  return b.finish(*node,
                  {b.op(OpCode::MaxPool2dBackward, {node->grad_inputs()[0], g}, node->attrs())});
}

absl::StatusOr<std::vector<NodePtr>> vjp_max_pool2d_backward(const NodePtr&, const NodePtr&) {
  return absl::UnimplementedError(
      "max_pool2d_backward: double backward through max_pool2d is not supported (its gradient "
      "in the incoming gradient is a gather at each window's argmax, which the IR has no op for)");
}

}  // namespace

void register_conv_ops(OpRegistrar& r) {
  const std::vector<AttrSpec> common = {{"dilation", AttrKind::IntList},
                                        {"padding", AttrKind::IntList},
                                        {"stride", AttrKind::IntList}};
  auto def = [&](OpCode op, int inputs, const char* extra, InferFn infer, RefEvalFn ref,
                 VjpFn vjp) {
    OpDef& d = r.def(op);
    d.min_inputs = d.max_inputs = inputs;
    d.attrs = common;
    if (extra != nullptr) d.attrs.push_back({extra, AttrKind::IntList});
    d.infer = infer;
    d.ref_eval = ref;
    d.vjp = vjp;
  };
  def(OpCode::Conv2d, 2, nullptr, &infer_conv2d, &ref_conv<OpCode::Conv2d>, &vjp_conv2d);
  def(OpCode::Conv2dBackwardInput, 2, "input_size", &infer_conv2d_backward_input,
      &ref_conv<OpCode::Conv2dBackwardInput>, &vjp_conv2d_backward_input);
  def(OpCode::Conv2dBackwardWeight, 2, "kernel_size", &infer_conv2d_backward_weight,
      &ref_conv<OpCode::Conv2dBackwardWeight>, &vjp_conv2d_backward_weight);
  def(OpCode::MaxPool2d, 1, "kernel_size", &infer_max_pool2d, &ref_max_pool2d, &vjp_max_pool2d);
  def(OpCode::MaxPool2dBackward, 2, "kernel_size", &infer_max_pool2d_backward,
      &ref_max_pool2d_backward, &vjp_max_pool2d_backward);
}

}  // namespace smelt::ir
