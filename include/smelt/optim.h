// Optimizers and learning-rate schedulers, with LibTorch's names and PyTorch's update rules.
//
//   optim::SGD opt(model->parameters(), optim::SGDOptions(0.01).momentum(0.9));
//   optim::StepLR sched(opt, /*step_size=*/10, /*gamma=*/0.5);
//   for (...) {
//     opt.zero_grad();
//     loss_fn(model(x), y).backward();
//     opt.step();      // one compiled program updates every parameter
//   }
//   sched.step();      // per epoch; opt.set_lr(x) works too, and never recompiles anything
//
// step() builds the update of every parameter that has a gradient as lazy graph, computes it in
// one realization and swaps the new values into the parameters in place (every handle to a
// parameter sees them; it stays a leaf that requires grad). Small parameters of one group, dtype
// and device are updated together as one flat vector (and keep living in that flat storage
// between steps), large ones each at its own shape, so a step is a few kernels however many
// biases and norms a model has. The learning rate and the other per-step numbers (Adam's bias
// corrections) enter the program as data, not as constants: changing them reuses the compiled
// program.
#pragma once

#include <smelt/tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace smelt::optim {

// Named tensors: what state_dict() gives and load_state_dict() takes (also the unit of the
// save/load file format).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Parameters that share a learning rate. Without `lr` a group takes the optimizer's.
struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr;
};

// The base of every optimizer: parameter groups, per-parameter state, zero_grad(), step(),
// the learning rate, and state save/restore. A new optimizer derives from it and defines the
// update of one flat vector of parameters (see the protected part).
class Optimizer {
 public:
  virtual ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Resets every parameter's gradient to undefined (PyTorch's set_to_none=True default), which
  // also frees the graph the gradient was computed from.
  void zero_grad();
  // Updates every parameter that has a gradient; parameters without one (and their state) are
  // left as they are. Throws smelt::Error if a gradient does not match its parameter's shape,
  // dtype or device; nothing is changed then.
  void step();

  // The learning rate of the first group (all groups have it unless made otherwise).
  double lr() const;
  // Sets the learning rate of every group. Takes effect at the next step(); compiles nothing.
  void set_lr(double lr);
  // Per-group learning rates.
  double group_lr(size_t group) const;
  void set_group_lr(size_t group, double lr);

  // Adds parameters with their own learning rate (or the optimizer's).
  void add_param_group(ParamGroup group);
  size_t num_param_groups() const;
  const std::vector<Tensor>& group_params(size_t group) const;
  // Every parameter, group by group: the numbering state_dict() uses.
  std::vector<Tensor> parameters() const;

  // Steps taken by parameter `index` (in parameters() order): 0 before its first update.
  int64_t step_count(size_t index) const;
  // The named state of parameter `index` ("exp_avg", ...): undefined tensors before its first
  // update. Snapshots: later steps do not change the tensors returned.
  NamedTensors param_state(size_t index) const;

  // The optimizer's state as named tensors:
  //   param_groups.<g>.lr   Float64 []      the learning rate of group g
  //   state.<i>.step        Int64 []        steps taken by parameter i (only once it has one)
  //   state.<i>.<name>      like param i    e.g. state.0.momentum_buffer, state.3.exp_avg_sq
  // Parameters are numbered as in parameters(). The tensors are snapshots (no data is copied).
  NamedTensors state_dict() const;
  // Restores state_dict()'s output (of an optimizer of the same kind and options over parameters
  // of the same shapes). Checks everything first: an unknown, missing or duplicate name, a shape
  // or dtype that does not match the parameter, a step count that is not a non-negative Int64,
  // or a parameter with only part of its state throws smelt::Error and changes nothing. State
  // on another device is moved to its parameter's.
  void load_state_dict(const NamedTensors& state);

 protected:
  // `state_names`: the per-parameter state tensors of this optimizer (each of its parameter's
  // shape). `default_lr`: the learning rate of groups that set none.
  Optimizer(std::vector<ParamGroup> groups, double default_lr, std::vector<std::string> state_names,
            const char* name);

  // The numbers that change between steps, for parameters of a group with learning rate `lr`
  // on their `step`-th update (1 on the first). They reach update() as 0-d tensors of the
  // parameters' dtype and device that are program inputs, so new values recompile nothing.
  virtual std::vector<double> step_scalars(double lr, int64_t step) const = 0;
  // The new value of `param` given its gradient `grad` (same shape) and the values
  // step_scalars() gave. `param` is several parameters as one flat vector, or one large parameter
  // at its own shape, so the update must be elementwise (each element from the same element of
  // the inputs and the scalars). `state` holds the current state, in state_names() order, and is
  // to be set to the new state; on a parameter's first step it is undefined. Called under
  // NoGradGuard; only builds lazy graph. The gaps between parameters in a flat vector are zero in
  // `param`, `grad` and the state, and their results are discarded.
  virtual Tensor update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& scalars,
                        std::vector<Tensor>& state) const = 0;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- SGD ------------------------------------------------------------------------------------

struct SGDOptions {
  explicit SGDOptions(double lr) : lr_(lr) {}
  SGDOptions& lr(double v) {
    lr_ = v;
    return *this;
  }
  SGDOptions& momentum(double v) {
    momentum_ = v;
    return *this;
  }
  SGDOptions& dampening(double v) {
    dampening_ = v;
    return *this;
  }
  SGDOptions& weight_decay(double v) {
    weight_decay_ = v;
    return *this;
  }
  SGDOptions& nesterov(bool v) {
    nesterov_ = v;
    return *this;
  }
  double lr() const { return lr_; }
  double momentum() const { return momentum_; }
  double dampening() const { return dampening_; }
  double weight_decay() const { return weight_decay_; }
  bool nesterov() const { return nesterov_; }

 private:
  double lr_;
  double momentum_ = 0;
  double dampening_ = 0;
  double weight_decay_ = 0;
  bool nesterov_ = false;
};

// Stochastic gradient descent, as torch.optim.SGD: with weight decay d = g + wd * p; with
// momentum b = d on the first step, then b = momentum * b + (1 - dampening) * d, and d = b (or
// d + momentum * b with nesterov); p = p - lr * d. State: momentum_buffer (with momentum only).
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options);
  SGD(std::vector<ParamGroup> groups, SGDOptions options);
  const SGDOptions& options() const { return options_; }

 protected:
  std::vector<double> step_scalars(double lr, int64_t step) const override;
  Tensor update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& scalars,
                std::vector<Tensor>& state) const override;

 private:
  SGDOptions options_;
};

// ---- Adam and AdamW -------------------------------------------------------------------------

struct AdamOptions {
  explicit AdamOptions(double lr = 1e-3) : lr_(lr) {}
  AdamOptions& lr(double v) {
    lr_ = v;
    return *this;
  }
  AdamOptions& betas(std::tuple<double, double> v) {
    betas_ = v;
    return *this;
  }
  AdamOptions& eps(double v) {
    eps_ = v;
    return *this;
  }
  AdamOptions& weight_decay(double v) {
    weight_decay_ = v;
    return *this;
  }
  AdamOptions& amsgrad(bool v) {
    amsgrad_ = v;
    return *this;
  }
  double lr() const { return lr_; }
  const std::tuple<double, double>& betas() const { return betas_; }
  double eps() const { return eps_; }
  double weight_decay() const { return weight_decay_; }
  bool amsgrad() const { return amsgrad_; }

 private:
  double lr_;
  std::tuple<double, double> betas_{0.9, 0.999};
  double eps_ = 1e-8;
  double weight_decay_ = 0;
  bool amsgrad_ = false;
};

// AdamW's options: Adam's, with decoupled weight decay defaulting to 1e-2.
struct AdamWOptions : AdamOptions {
  explicit AdamWOptions(double lr = 1e-3) : AdamOptions(lr) { AdamOptions::weight_decay(1e-2); }
};

// Adam, as torch.optim.Adam: g = g + wd * p (L2 weight decay); m = b1 m + (1 - b1) g;
// v = b2 v + (1 - b2) g²; with amsgrad v_max = max(v_max, v) is used for v below;
// p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// State: exp_avg, exp_avg_sq, and max_exp_avg_sq with amsgrad.
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions options = AdamOptions());
  Adam(std::vector<ParamGroup> groups, AdamOptions options = AdamOptions());
  const AdamOptions& options() const { return options_; }

 protected:
  // AdamW's constructor: `decoupled` weight decay.
  Adam(std::vector<ParamGroup> groups, AdamOptions options, bool decoupled, const char* name);
  std::vector<double> step_scalars(double lr, int64_t step) const override;
  Tensor update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& scalars,
                std::vector<Tensor>& state) const override;

 private:
  AdamOptions options_;
  bool decoupled_;
};

// AdamW, as torch.optim.AdamW: Adam without the L2 term, and p = p * (1 - lr * wd) first.
class AdamW : public Adam {
 public:
  // Takes AdamOptions so that AdamWOptions(lr).betas(...) (an AdamOptions&) is accepted too.
  AdamW(std::vector<Tensor> params, AdamOptions options = AdamWOptions());
  AdamW(std::vector<ParamGroup> groups, AdamOptions options = AdamWOptions());
};

// ---- learning-rate schedulers ---------------------------------------------------------------

// Sets an optimizer's learning rates from the number of step() calls (epochs), by a closed
// form of each group's initial rate. Construction sets epoch 0's rates.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  // Advances one epoch and sets the rates of that epoch.
  void step();
  // Jumps to `epoch` (>= 0) and sets its rates, e.g. when resuming a run from a checkpoint
  // (PyTorch's deprecated step(epoch); the closed forms make it exact here).
  void step(int64_t epoch);
  // The rates last set, one per parameter group.
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }

 protected:
  explicit LRScheduler(Optimizer& optimizer);
  // Call at the end of a derived constructor: sets epoch 0's rates.
  void start();
  // The rate of a group whose initial rate is `base_lr`, at `epoch`.
  virtual double lr_at(double base_lr, int64_t epoch) const = 0;

 private:
  void apply();

  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  std::vector<double> last_lr_;
  int64_t last_epoch_ = 0;
};

// lr = base_lr * gamma^floor(epoch / step_size) (torch.optim.lr_scheduler.StepLR).
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(double base_lr, int64_t epoch) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2
// (torch.optim.lr_scheduler.CosineAnnealingLR's closed form).
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0);

 protected:
  double lr_at(double base_lr, int64_t epoch) const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

}  // namespace smelt::optim

namespace smelt {

// Writes the optimizer's state_dict() to `path`, in save_tensors' file format (serialize.h).
void save(const optim::Optimizer& optimizer, const std::string& path);
// Restores what save() wrote, for an optimizer of the same kind, options and parameter shapes.
// A missing, truncated or corrupted file, or a state that does not fit, throws smelt::Error and
// leaves the optimizer untouched.
void load(optim::Optimizer& optimizer, const std::string& path);

}  // namespace smelt
