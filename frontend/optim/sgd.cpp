// SGD with momentum, dampening, Nesterov momentum and L2 weight decay (torch.optim.SGD).
#include <smelt/error.h>
#include <smelt/ops.h>
#include <smelt/optim.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "frontend/optim/param_groups.h"

namespace smelt::optim {
namespace {

// PyTorch's checks, with its wording where it has one.
const SGDOptions& checked(const SGDOptions& o) {
  auto fail = [](const std::string& why) { throw Error(absl::StrCat("SGD: ", why)); };
  if (!(o.momentum() >= 0) || !std::isfinite(o.momentum())) {
    fail(absl::StrCat("invalid momentum value: ", o.momentum()));
  }
  if (!(o.weight_decay() >= 0) || !std::isfinite(o.weight_decay())) {
    fail(absl::StrCat("invalid weight_decay value: ", o.weight_decay()));
  }
  if (!std::isfinite(o.dampening())) fail(absl::StrCat("invalid dampening value: ", o.dampening()));
  if (o.nesterov() && (o.momentum() <= 0 || o.dampening() != 0)) {
    fail(absl::StrCat("Nesterov momentum requires a momentum and zero dampening (got momentum ",
                      o.momentum(), ", dampening ", o.dampening(), ")"));
  }
  return o;
}

// The momentum buffer exists only when there is momentum, as in PyTorch's state.
std::vector<std::string> sgd_state(const SGDOptions& o) {
  if (o.momentum() == 0) return {};
  return {"momentum_buffer"};
}

}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : SGD(detail::one_group(std::move(params)), std::move(options)) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer(std::move(groups), checked(options).lr(), sgd_state(options), "SGD"),
      options_(std::move(options)) {}

std::vector<double> SGD::step_scalars(double lr, int64_t /*step*/) const { return {lr}; }

Tensor SGD::update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& scalars,
                   std::vector<Tensor>& state) const {
  const SGDOptions& o = options_;
  Tensor d = grad;
  if (o.weight_decay() != 0) d = d + param * o.weight_decay();
  if (o.momentum() != 0) {
    Tensor& buf = state[0];
    // PyTorch starts the buffer at the first step's direction itself (no dampening then).
    buf = buf.defined() ? buf * o.momentum() + d * (1 - o.dampening()) : d;
    d = o.nesterov() ? d + buf * o.momentum() : buf;
  }
  return param - scalars[0] * d;
}

}  // namespace smelt::optim
