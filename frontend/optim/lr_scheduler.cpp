// Learning-rate schedulers: closed forms of the epoch, applied to every parameter group.
#include <smelt/error.h>
#include <smelt/optim.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"

namespace smelt::optim {

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) {
    base_lrs_.push_back(optimizer.group_lr(g));
  }
}

void LRScheduler::start() { apply(); }

void LRScheduler::step() {
  ++last_epoch_;
  apply();
}

void LRScheduler::step(int64_t epoch) {
  if (epoch < 0) throw Error(absl::StrCat("LRScheduler::step: epoch must be >= 0, got ", epoch));
  last_epoch_ = epoch;
  apply();
}

void LRScheduler::apply() {
  last_lr_.clear();
  for (size_t g = 0; g < base_lrs_.size(); ++g) {
    // A group added to the optimizer after the scheduler was made keeps its own rate.
    const double lr = std::max(0.0, lr_at(base_lrs_[g], last_epoch_));
    optimizer_.set_group_lr(g, lr);
    last_lr_.push_back(lr);
  }
}

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0) {
    throw Error(absl::StrCat("StepLR: step_size must be positive, got ", step_size));
  }
  if (!(gamma >= 0) || !std::isfinite(gamma)) {
    throw Error(absl::StrCat("StepLR: gamma must be finite and >= 0, got ", gamma));
  }
  start();
}

double StepLR::lr_at(double base_lr, int64_t epoch) const {
  return base_lr * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min)
    : LRScheduler(optimizer), t_max_(T_max), eta_min_(eta_min) {
  if (T_max <= 0)
    throw Error(absl::StrCat("CosineAnnealingLR: T_max must be positive, got ", T_max));
  if (!(eta_min >= 0) || !std::isfinite(eta_min)) {
    throw Error(absl::StrCat("CosineAnnealingLR: eta_min must be finite and >= 0, got ", eta_min));
  }
  start();
}

double CosineAnnealingLR::lr_at(double base_lr, int64_t epoch) const {
  const double phase = std::numbers::pi * static_cast<double>(epoch) / static_cast<double>(t_max_);
  return eta_min_ + (base_lr - eta_min_) * (1 + std::cos(phase)) / 2;
}

}  // namespace smelt::optim
