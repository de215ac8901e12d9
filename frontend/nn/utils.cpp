// torch.nn.utils' gradient clipping: lazy updates of the gradients, so the clipping fuses into
// the realization that the optimizer's step makes anyway.
#include <smelt/autograd.h>
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/nn.h>
#include <smelt/ops.h>

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"

namespace smelt::nn::utils {
namespace {

std::vector<Tensor> gradients(const std::vector<Tensor>& parameters) {
  std::vector<Tensor> grads;
  for (const Tensor& p : parameters) {
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  }
  return grads;
}

}  // namespace

Tensor clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type) {
  if (!(norm_type > 0)) {
    throw Error(
        absl::StrCat("clip_grad_norm_: norm_type must be positive (or infinity), got ", norm_type));
  }
  NoGradGuard no_grad;
  const std::vector<Tensor> grads = gradients(parameters);
  if (grads.empty()) return zeros({});
  std::vector<Tensor> norms;
  norms.reserve(grads.size());
  for (const Tensor& g : grads) norms.push_back(norm(g, norm_type).to(DType::Float32));
  // The norm of the per-gradient norms is the norm of all their elements together.
  const Tensor total = norm(stack(norms), norm_type);
  const Tensor coef = clamp_max(max_norm / (total + 1e-6), 1.0);
  for (const Tensor& g : grads) g.mul_(coef.to(g.dtype()));
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value) {
  if (!(clip_value >= 0)) {
    throw Error(absl::StrCat("clip_grad_value_: clip_value must be >= 0, got ", clip_value));
  }
  NoGradGuard no_grad;
  for (const Tensor& g : gradients(parameters)) g.clamp_(-clip_value, clip_value);
}

}  // namespace smelt::nn::utils
