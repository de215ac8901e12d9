// The normalization layers. BatchNorm1d / BatchNorm2d: batch statistics in training mode
// (updating the running statistics as a side effect), running statistics in eval mode. LayerNorm:
// each sample's own statistics over its trailing dims, in either mode.
#include <smelt/autograd.h>
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/eval.h>
#include <smelt/nn.h>
#include <smelt/ops.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"
#include "ir/shape.h"

namespace smelt::nn {

BatchNormImpl::BatchNormImpl(std::string kind, std::vector<int64_t> ranks, int64_t num_features,
                             double eps, std::optional<double> momentum, bool affine)
    : num_features(num_features),
      eps(eps),
      momentum(momentum),
      affine(affine),
      kind_(std::move(kind)),
      ranks_(std::move(ranks)) {
  if (num_features <= 0) {
    throw Error(absl::StrCat(kind_, ": num_features must be positive, got ", num_features));
  }
  if (!(eps > 0.0)) throw Error(absl::StrCat(kind_, ": eps must be positive, got ", eps));
  if (momentum.has_value() && !(*momentum >= 0.0 && *momentum <= 1.0)) {
    throw Error(absl::StrCat(kind_, ": momentum must be between 0 and 1, got ", *momentum));
  }
  // Host data (not constant views), so the parameters and buffers are realized leaves from the
  // start, like every value an optimizer writes later.
  const std::vector<float> zero(static_cast<size_t>(num_features), 0.f);
  const std::vector<float> one(static_cast<size_t>(num_features), 1.f);
  if (affine) {
    weight = register_parameter("weight", from_vector(one, {num_features}));
    bias = register_parameter("bias", from_vector(zero, {num_features}));
  }
  running_mean = register_buffer("running_mean", from_vector(zero, {num_features}));
  running_var = register_buffer("running_var", from_vector(one, {num_features}));
  num_batches_tracked =
      register_buffer("num_batches_tracked", from_vector(std::vector<int64_t>{0}, {}));
}

Tensor BatchNormImpl::forward(const Tensor& input) {
  if (!input.defined()) throw Error(absl::StrCat(kind_, ": the input is undefined"));
  if (std::find(ranks_.begin(), ranks_.end(), input.dim()) == ranks_.end()) {
    throw Error(absl::StrCat(kind_, ": expected a ", absl::StrJoin(ranks_, "-d or "),
                             "-d input with channels in dim 1, got ",
                             ir::shape_str(input.shape())));
  }
  if (input.size(1) != num_features) {
    throw Error(absl::StrCat(kind_, ": input ", ir::shape_str(input.shape()), " has ",
                             input.size(1),
                             " channels but the layer has num_features = ", num_features));
  }
  double factor = momentum.value_or(0.0);
  if (is_training()) {
    NoGradGuard no_grad;
    // The buffers' updates of the previous step, if still pending, run now as one program, so
    // their chains stay one step long (batch_norm would otherwise evaluate the statistics alone).
    std::vector<Tensor> pending;
    for (const Tensor& t : {running_mean, running_var, num_batches_tracked}) {
      if (t.impl()->node()->buffer() == nullptr) pending.push_back(t);
    }
    if (!pending.empty()) smelt::eval(pending);
    if (!momentum.has_value()) {
      // The cumulative average: this batch weighs 1 / (batches so far, this one included). The
      // count is realized by now (a load or the line above), so this reads no pending graph.
      factor = 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>() + 1);
    }
    num_batches_tracked.impl()->set_node(smelt::detail::node_of(num_batches_tracked + 1, kind_));
  }
  return functional::batch_norm(input, running_mean, running_var, weight, bias, is_training(),
                                factor, eps);
}

void BatchNormImpl::pretty_print(std::ostream& os) const {
  os << kind_ << "(" << num_features << ", eps=" << eps << ", momentum=";
  if (momentum.has_value()) {
    os << *momentum;
  } else {
    os << "None";
  }
  os << ", affine=" << (affine ? "true" : "false") << ")";
}

// ---- LayerNorm ---------------------------------------------------------------------------------

LayerNormImpl::LayerNormImpl(std::vector<int64_t> normalized_shape, double eps,
                             bool elementwise_affine)
    : normalized_shape(std::move(normalized_shape)),
      eps(eps),
      elementwise_affine(elementwise_affine) {
  if (this->normalized_shape.empty()) throw Error("LayerNorm: normalized_shape is empty");
  for (int64_t d : this->normalized_shape) {
    if (d <= 0) {
      throw Error(absl::StrCat("LayerNorm: normalized_shape ",
                               ir::shape_str(this->normalized_shape),
                               " has a dim that is not positive"));
    }
  }
  if (!(eps > 0.0)) throw Error(absl::StrCat("LayerNorm: eps must be positive, got ", eps));
  if (elementwise_affine) {
    int64_t n = 1;
    for (int64_t d : this->normalized_shape) n *= d;
    weight = register_parameter(
        "weight",
        from_vector(std::vector<float>(static_cast<size_t>(n), 1.f), this->normalized_shape));
    bias = register_parameter("bias", from_vector(std::vector<float>(static_cast<size_t>(n), 0.f),
                                                  this->normalized_shape));
  }
}

Tensor LayerNormImpl::forward(const Tensor& input) {
  return functional::layer_norm(input, normalized_shape, weight, bias, eps);
}

void LayerNormImpl::pretty_print(std::ostream& os) const {
  // PyTorch's repr: the shape as a tuple, `(64,)`.
  os << "LayerNorm((" << absl::StrJoin(normalized_shape, ", ")
     << (normalized_shape.size() == 1 ? ",)" : ")") << ", eps=" << eps
     << ", elementwise_affine=" << (elementwise_affine ? "true" : "false") << ")";
}

}  // namespace smelt::nn
