// Adam (L2 weight decay, amsgrad) and AdamW (decoupled weight decay), as torch.optim.Adam/AdamW.
#include <smelt/error.h>
#include <smelt/ops.h>
#include <smelt/optim.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "frontend/optim/param_groups.h"

namespace smelt::optim {
namespace {

const AdamOptions& checked(const AdamOptions& o, const char* name) {
  auto fail = [&](const std::string& why) { throw Error(absl::StrCat(name, ": ", why)); };
  const auto [b1, b2] = o.betas();
  if (!(b1 >= 0 && b1 < 1)) fail(absl::StrCat("invalid beta parameter at index 0: ", b1));
  if (!(b2 >= 0 && b2 < 1)) fail(absl::StrCat("invalid beta parameter at index 1: ", b2));
  if (!(o.eps() >= 0) || !std::isfinite(o.eps())) {
    fail(absl::StrCat("invalid epsilon value: ", o.eps()));
  }
  if (!(o.weight_decay() >= 0) || !std::isfinite(o.weight_decay())) {
    fail(absl::StrCat("invalid weight_decay value: ", o.weight_decay()));
  }
  return o;
}

std::vector<std::string> adam_state(const AdamOptions& o) {
  if (o.amsgrad()) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

}  // namespace

Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : Adam(detail::one_group(std::move(params)), std::move(options), false, "Adam") {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options)
    : Adam(std::move(groups), std::move(options), false, "Adam") {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options, bool decoupled, const char* name)
    : Optimizer(std::move(groups), checked(options, name).lr(), adam_state(options), name),
      options_(std::move(options)),
      decoupled_(decoupled) {}

AdamW::AdamW(std::vector<Tensor> params, AdamOptions options)
    : Adam(detail::one_group(std::move(params)), std::move(options), true, "AdamW") {}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamOptions options)
    : Adam(std::move(groups), std::move(options), true, "AdamW") {}

// [lr / (1 - b1^t), sqrt(1 - b2^t)] and, for AdamW, 1 - lr * wd: computed in double here, as
// PyTorch computes them in Python floats, and fed to the program as data.
std::vector<double> Adam::step_scalars(double lr, int64_t step) const {
  const auto [b1, b2] = options_.betas();
  const double t = static_cast<double>(step);
  std::vector<double> out{lr / (1 - std::pow(b1, t)), std::sqrt(1 - std::pow(b2, t))};
  if (decoupled_) out.push_back(1 - lr * options_.weight_decay());
  return out;
}

Tensor Adam::update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& scalars,
                    std::vector<Tensor>& state) const {
  const auto [b1, b2] = options_.betas();
  const double wd = options_.weight_decay();
  Tensor p = param;
  Tensor g = grad;
  if (decoupled_) {
    if (wd != 0) p = p * scalars[2];
  } else if (wd != 0) {
    g = g + p * wd;
  }
  // PyTorch's state starts at zeros; b * 0 + x is x exactly, so the first step skips the term.
  Tensor& m = state[0];
  Tensor& v = state[1];
  m = m.defined() ? m * b1 + g * (1 - b1) : g * (1 - b1);
  v = v.defined() ? v * b2 + g * g * (1 - b2) : g * g * (1 - b2);
  Tensor v_used = v;
  if (options_.amsgrad()) {
    Tensor& v_max = state[2];
    v_max = v_max.defined() ? maximum(v_max, v) : maximum(v, 0.0);
    v_used = v_max;
  }
  Tensor denom = sqrt(v_used) / scalars[1] + options_.eps();
  return p - scalars[0] * (m / denom);
}

}  // namespace smelt::optim
