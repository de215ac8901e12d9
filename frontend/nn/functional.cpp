// nn::functional: the layers as functions of their inputs and parameters. Each validates its
// arguments with a message naming the op and the shapes, then composes public ops, so autodiff
// and fusion see ordinary graphs.
#include <smelt/autograd.h>
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/eval.h>
#include <smelt/nn.h>
#include <smelt/ops.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"

namespace smelt::nn::functional {
namespace {

std::string describe(const Tensor& t) {
  return absl::StrCat(dtype_name(t.dtype()), " ", ir::shape_str(t.shape()));
}

void check_defined(const char* op, const char* what, const Tensor& t) {
  if (!t.defined()) throw Error(absl::StrCat(op, ": ", what, " is undefined"));
}

void check_floating(const char* op, const char* what, const Tensor& t) {
  check_defined(op, what, t);
  if (!t.is_floating_point()) {
    throw Error(absl::StrCat(op, ": ", what, " must be floating (f32 or f64), got ", describe(t),
                             "; convert it with .to(DType::Float32)"));
  }
}

}  // namespace

Tensor relu(const Tensor& input) { return smelt::relu(input); }
Tensor tanh(const Tensor& input) { return smelt::tanh(input); }
Tensor sigmoid(const Tensor& input) { return smelt::sigmoid(input); }
Tensor softmax(const Tensor& input, int64_t dim) { return smelt::softmax(input, dim); }
Tensor log_softmax(const Tensor& input, int64_t dim) { return smelt::log_softmax(input, dim); }

Tensor leaky_relu(const Tensor& input, double negative_slope) {
  check_floating("leaky_relu", "input", input);
  return where(input > 0.0, input, input * negative_slope);
}

namespace {

// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7): one exp and a polynomial,
// so it fuses with its neighbours like any elementwise chain, and autodiff differentiates it.
Tensor erf_approx(const Tensor& x) {
  const Tensor a = smelt::abs(x);
  const Tensor t = 1.0 / (a * 0.3275911 + 1.0);
  const Tensor poly =
      t *
      (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return smelt::sign(x) * (1.0 - poly * smelt::exp(-(a * a)));
}

}  // namespace

Tensor gelu(const Tensor& input, const std::string& approximate) {
  check_floating("gelu", "input", input);
  if (approximate == "tanh") {
    const double k = std::sqrt(2.0 / std::numbers::pi);
    return input * 0.5 * (smelt::tanh((input + input * input * input * 0.044715) * k) + 1.0);
  }
  if (approximate != "none") {
    throw Error(
        absl::StrCat("gelu: approximate must be \"none\" or \"tanh\", got \"", approximate, "\""));
  }
  return input * 0.5 * (erf_approx(input * std::numbers::sqrt2 / 2) + 1.0);
}

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  check_defined("linear", "input", input);
  check_defined("linear", "weight", weight);
  if (weight.dim() != 2) {
    throw Error(absl::StrCat("linear: weight must be 2-d [out_features, in_features], got ",
                             ir::shape_str(weight.shape())));
  }
  if (input.dim() < 1 || input.size(-1) != weight.size(1)) {
    throw Error(absl::StrCat("linear: input ", ir::shape_str(input.shape()),
                             " does not match weight ", ir::shape_str(weight.shape()),
                             ": the last dim of the input must be in_features = ", weight.size(1)));
  }
  Tensor out = matmul(input, weight.t());
  if (bias.defined()) {
    if (bias.shape() != std::vector<int64_t>{weight.size(0)}) {
      throw Error(absl::StrCat("linear: bias must be [", weight.size(0), "] for weight ",
                               ir::shape_str(weight.shape()), ", got ",
                               ir::shape_str(bias.shape())));
    }
    out = out + bias;
  }
  return out;
}

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, Size2 stride,
              Size2 padding, Size2 dilation, int64_t groups) {
  return smelt::conv2d(input, weight, bias, stride, padding, dilation, groups);
}

Tensor max_pool2d(const Tensor& input, Size2 kernel_size, std::optional<Size2> stride,
                  Size2 padding) {
  return smelt::max_pool2d(input, kernel_size, stride, padding);
}

Tensor avg_pool2d(const Tensor& input, Size2 kernel_size, std::optional<Size2> stride,
                  Size2 padding, bool count_include_pad) {
  return smelt::avg_pool2d(input, kernel_size, stride, padding, count_include_pad);
}

Tensor adaptive_avg_pool2d(const Tensor& input, Size2 output_size) {
  return smelt::adaptive_avg_pool2d(input, output_size);
}

Tensor dropout(const Tensor& input, double p, bool training) {
  check_floating("dropout", "input", input);
  if (!(p >= 0.0 && p <= 1.0)) {
    throw Error(absl::StrCat("dropout: probability p must be between 0 and 1, got ", p));
  }
  if (!training || p == 0.0) return input;
  // The uniforms are a data leaf (drawn on the host now, reproducible under manual_seed); the
  // comparison and the scaling stay lazy and fuse into the consumer. A new mask each step does
  // not change the graph's hash, so it does not recompile.
  Tensor u = rand(input.shape(), input.dtype());
  if (input.device() != u.device()) u = u.to(input.device());
  // p == 1 keeps nothing; a scale of 0 then keeps 0 * inf out of the gradient.
  const double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  return where(u >= p, input * scale, 0.0);
}

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  check_floating("batch_norm", "input", input);
  if (input.dim() < 2) {
    throw Error(
        absl::StrCat("batch_norm: input must be at least 2-d [N, C, ...], got ", describe(input)));
  }
  const int64_t c = input.size(1);
  const std::vector<int64_t> per_channel = {c};
  auto check_channels = [&](const char* what, const Tensor& t) {
    if (t.defined() && t.shape() != per_channel) {
      throw Error(absl::StrCat("batch_norm: ", what, " must be [", c, "] for input ",
                               ir::shape_str(input.shape()), " (", c, " channels), got ",
                               ir::shape_str(t.shape())));
    }
  };
  check_channels("running_mean", running_mean);
  check_channels("running_var", running_var);
  check_channels("weight", weight);
  check_channels("bias", bias);
  if (running_mean.defined() != running_var.defined()) {
    throw Error("batch_norm: give both running_mean and running_var, or neither");
  }
  // Per-channel tensors broadcast as [1, C, 1, ...].
  std::vector<int64_t> bshape(static_cast<size_t>(input.dim()), 1);
  bshape[1] = c;
  std::vector<int64_t> dims = {0};
  for (int64_t d = 2; d < input.dim(); ++d) dims.push_back(d);

  Tensor mean, var;
  if (training) {
    const int64_t count = input.numel() / (c == 0 ? 1 : c);
    if (count <= 1) {
      throw Error(absl::StrCat("batch_norm: expected more than 1 value per channel when ",
                               "training, got input ", ir::shape_str(input.shape())));
    }
    mean = input.mean(dims, /*keepdim=*/true);
    var = input.var(dims, /*unbiased=*/false, /*keepdim=*/true);
    if (running_mean.defined()) {
      NoGradGuard no_grad;
      // Keep the chain of updates one step long: a previous update still pending is computed
      // now, so the statistics never hold on to the batches of many earlier steps.
      std::vector<Tensor> pending;
      for (const Tensor& t : {running_mean, running_var}) {
        if (t.impl()->node()->buffer() == nullptr) pending.push_back(t);
      }
      if (!pending.empty()) smelt::eval(pending);
      const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
      const Tensor new_mean =
          running_mean * (1.0 - momentum) + mean.detach().reshape(per_channel) * momentum;
      const Tensor new_var =
          running_var * (1.0 - momentum) + var.detach().reshape(per_channel) * (momentum * unbias);
      running_mean.impl()->set_node(
          smelt::detail::node_of(new_mean.to(running_mean.dtype()), "batch_norm"));
      running_var.impl()->set_node(
          smelt::detail::node_of(new_var.to(running_var.dtype()), "batch_norm"));
    }
  } else {
    if (!running_mean.defined()) {
      throw Error("batch_norm: eval mode needs running_mean and running_var (or training=true)");
    }
    mean = running_mean.reshape(bshape);
    var = running_var.reshape(bshape);
  }
  Tensor out = (input - mean) * rsqrt(var + eps);
  if (weight.defined()) out = out * weight.reshape(bshape);
  if (bias.defined()) out = out + bias.reshape(bshape);
  return out.to(input.dtype());
}

Tensor layer_norm(const Tensor& input, const std::vector<int64_t>& normalized_shape,
                  const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  check_floating(op, "input", input);
  const std::vector<int64_t> shape = input.shape();
  const size_t k = normalized_shape.size();
  if (k == 0 || k > shape.size() ||
      !std::equal(normalized_shape.begin(), normalized_shape.end(), shape.end() - k)) {
    throw Error(absl::StrCat(op, ": input ", describe(input),
                             " does not end with normalized_shape ",
                             ir::shape_str(normalized_shape)));
  }
  if (!(eps > 0.0)) throw Error(absl::StrCat(op, ": eps must be positive, got ", eps));
  for (const auto& [what, t] : {std::pair{"weight", &weight}, std::pair{"bias", &bias}}) {
    if (t->defined() && t->shape() != normalized_shape) {
      throw Error(absl::StrCat(op, ": ", what, " must have normalized_shape ",
                               ir::shape_str(normalized_shape), ", got ", describe(*t)));
    }
  }
  std::vector<int64_t> dims;
  for (size_t d = shape.size() - k; d < shape.size(); ++d) dims.push_back(static_cast<int64_t>(d));
  // Two passes (mean, then the mean square of the centred values), as PyTorch: no cancellation
  // for inputs far from zero. The reductions fuse with the normalization around them.
  const Tensor centered = input - input.mean(dims, /*keepdim=*/true);
  Tensor y = centered * rsqrt((centered * centered).mean(dims, /*keepdim=*/true) + eps);
  if (weight.defined()) y = y * weight;
  if (bias.defined()) y = y + bias;
  return y;
}

Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx) {
  const char* op = "embedding";
  check_floating(op, "weight", weight);
  check_defined(op, "indices", indices);
  if (weight.dim() != 2) {
    throw Error(absl::StrCat(op, ": weight must be 2-d [num_embeddings, embedding_dim], got ",
                             describe(weight)));
  }
  if (!is_integral(indices.dtype())) {
    throw Error(absl::StrCat(op, ": indices must be Int64 or Int32, got ", describe(indices)));
  }
  const int64_t num = weight.size(0);
  // An index out of range fails when the lookup runs; when the indices are already on the host
  // it is caught here, at the call, with its position.
  if (const auto bad = smelt::detail::first_bad_index(indices, num)) {
    throw Error(absl::StrCat(op, ": index ", bad->value, " at position ", bad->position,
                             " is out of range for ", num, " embeddings (valid: 0 to ", num - 1,
                             ")"));
  }
  Tensor table = weight;
  if (padding_idx.has_value()) {
    const int64_t p = *padding_idx < 0 ? *padding_idx + num : *padding_idx;
    if (p < 0 || p >= num) {
      throw Error(absl::StrCat(op, ": padding_idx ", *padding_idx, " is out of range for ", num,
                               " embeddings"));
    }
    // The same values, but the gradient of the padding row is cut (it reads a detached copy).
    Tensor rows = arange(0, num, 1, DType::Int64);
    if (rows.device() != weight.device()) rows = rows.to(weight.device());
    table = where((rows != Scalar(p)).unsqueeze(1), weight, weight.detach());
  }
  std::vector<int64_t> out_shape = indices.shape();
  out_shape.push_back(weight.size(1));
  return table.index_select(0, indices.reshape({-1})).reshape(out_shape);
}

}  // namespace smelt::nn::functional
