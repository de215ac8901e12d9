// Neural-network building blocks with LibTorch's names: modules that own parameters, a holder
// that gives them `->` and `()`, layers, losses, and their functional forms.
//
//   nn::Sequential model(nn::Linear(10, 50), nn::ReLU(), nn::Linear(50, 1));
//   Tensor loss = nn::MSELoss()(model(x), y);
//   loss.backward();                      // gradients land in model->parameters()[i].grad()
//
// A module is a class derived from nn::Module (by convention named `FooImpl`) that registers its
// parameters, buffers and submodules; `SMELT_MODULE(Foo)` then declares the holder `Foo`, a
// shared handle to a `FooImpl` (copying it shares the module, as in LibTorch):
//
//   struct NetImpl : nn::Module {
//     NetImpl() : fc1(register_module("fc1", nn::Linear(784, 64))),
//                 fc2(register_module("fc2", nn::Linear(64, 10))) {}
//     Tensor forward(const Tensor& x) { return fc2(relu(fc1(x))); }
//     nn::Linear fc1, fc2;
//   };
//   SMELT_MODULE(Net);
//
// Everything is lazy like the rest of smelt: forward() builds graph nodes and computes nothing.
// Parameters are leaves that require grad; an update swaps a parameter's value in place (every
// handle to it sees the new value) and it stays a leaf.
#pragma once

#include <smelt/device.h>
#include <smelt/dtype.h>
#include <smelt/ops.h>
#include <smelt/tensor.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace smelt::nn {

class Module;

namespace detail {
// A module holder (ModuleHolder<Impl> or a class SMELT_MODULE declares).
template <typename H>
concept HolderOfModule = requires(const H& h) {
  { h.ptr() } -> std::convertible_to<std::shared_ptr<Module>>;
};
}  // namespace detail

// Ordered (name, tensor) pairs, as named_parameters() and named_buffers() give them.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// ---- Module ------------------------------------------------------------------------------------

// The base of every layer: owns named parameters (leaves that require grad), buffers (state that
// is saved but not trained, e.g. BatchNorm's running statistics) and submodules, in registration
// order. Not copyable: share modules through holders or std::shared_ptr.
class Module : public std::enable_shared_from_this<Module> {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- registration (public, unlike LibTorch's protected ones) ---------------------------------
  // Stores `tensor` as parameter `name` and returns the stored handle. The parameter is a leaf:
  // a tensor computed from others that require grad is detached first. `requires_grad` false
  // makes a frozen parameter. Names are non-empty, contain no '.', and are unique within this
  // module (parameters, buffers and submodules share one namespace).
  Tensor& register_parameter(const std::string& name, Tensor tensor, bool requires_grad = true);
  // Stores `tensor` as buffer `name`: saved, loaded and moved with the module, never trained.
  Tensor& register_buffer(const std::string& name, Tensor tensor);
  // Registers `module` as child `name` and returns it (so members can be initialized from it).
  template <std::derived_from<Module> M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  // The holder form: returns the holder, so `fc1(register_module("fc1", nn::Linear(4, 2)))`.
  template <detail::HolderOfModule Holder>
  Holder register_module(const std::string& name, Holder holder) {
    add_child(name, holder.ptr());
    return holder;
  }

  // ---- traversal -------------------------------------------------------------------------------
  // Parameters of this module and (with `recurse`) its descendants, depth first in registration
  // order. A tensor reachable under two names is listed once, under the first.
  std::vector<Tensor> parameters(bool recurse = true) const;
  // The same with dotted names: "weight", "0.bias", "encoder.fc1.weight".
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  // The direct submodules.
  std::vector<std::shared_ptr<Module>> children() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  // This module (if `include_self`; it must then be owned by a std::shared_ptr, as holders are)
  // and all its descendants, depth first, each once.
  std::vector<std::shared_ptr<Module>> modules(bool include_self = true) const;
  // The same with dotted names; this module is "".
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules(
      bool include_self = true) const;

  // ---- state -----------------------------------------------------------------------------------
  // Sets training mode on this module and every descendant (Dropout and BatchNorm read it).
  virtual void train(bool on = true);
  // train(false).
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves every parameter, buffer and defined gradient to `device` in place: the Tensor handles
  // stay valid and keep requires_grad, so an optimizer built before the move still works.
  void to(Device device);
  // Converts every floating parameter, buffer and gradient to `dtype` in place (Float32 or
  // Float64).
  void to(DType dtype);
  // Resets every parameter's gradient to undefined (PyTorch's set_to_none default): the next
  // backward() stores a fresh gradient instead of adding to an old one.
  void zero_grad();

  // ---- printing --------------------------------------------------------------------------------
  // The type's name: "Linear" for LinearImpl; for a custom module, its demangled class name
  // without namespaces and an "Impl" suffix.
  virtual std::string name() const;
  // One line describing this module alone, e.g. "Linear(in_features=10, out_features=50,
  // bias=true)"; the default is name() + "()".
  virtual void pretty_print(std::ostream& os) const;

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const char* op, const std::string& name) const;
  void collect(bool parameters, bool recurse, const std::string& prefix, NamedTensors& out) const;

  // Deques, so the references register_parameter/register_buffer return stay valid.
  std::deque<std::pair<std::string, Tensor>> parameters_;
  std::deque<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Prints the module tree like PyTorch:
//   Sequential(
//     (0): Linear(in_features=10, out_features=50, bias=true)
//     (1): ReLU()
//   )
std::ostream& operator<<(std::ostream& os, const Module& module);

// ---- the holder --------------------------------------------------------------------------------

namespace detail {
// Arguments that make a new Impl, as opposed to a single argument the holder copies or adopts.
template <typename Holder, typename Impl, typename Head, typename... Tail>
concept NewModuleArgs = std::is_constructible_v<Impl, Head, Tail...> &&
    !(sizeof...(Tail) == 0 && (std::is_base_of_v<Holder, std::decay_t<Head>> ||
                               std::is_same_v<std::decay_t<Head>, std::shared_ptr<Impl>> ||
                               std::is_same_v<std::decay_t<Head>, std::nullptr_t>));
}  // namespace detail

// A shared handle to a module of type Impl, like LibTorch's ModuleHolder: `->` and `*` reach the
// module, `()` calls its forward(). Constructing one with Impl's constructor arguments makes a
// new module; copying a holder shares the module. `Foo foo{nullptr}` is an empty holder, to be
// assigned later.
template <typename Impl>
class ModuleHolder {
 public:
  using ContainedType = Impl;

  // A module made by Impl's default constructor.
  ModuleHolder() : impl_(make_default()) {}
  // An empty holder.
  ModuleHolder(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): LibTorch's `{nullptr}`
  // Shares an existing module.
  ModuleHolder(std::shared_ptr<Impl> impl)  // NOLINT(google-explicit-constructor)
      : impl_(std::move(impl)) {}
  // A new module from Impl's constructor arguments. (A single holder argument is a copy, not a
  // module built from a module.)
  template <typename Head, typename... Tail>
  requires detail::NewModuleArgs<ModuleHolder, Impl, Head, Tail...>
  explicit ModuleHolder(Head&& head, Tail&&... tail)
      : impl_(std::make_shared<Impl>(std::forward<Head>(head), std::forward<Tail>(tail)...)) {}

  Impl* operator->() const { return get(); }
  Impl& operator*() const { return *get(); }
  Impl* get() const {
    check_not_empty();
    return impl_.get();
  }
  const std::shared_ptr<Impl>& ptr() const { return impl_; }
  bool is_empty() const { return impl_ == nullptr; }
  explicit operator bool() const { return impl_ != nullptr; }

  // Calls forward() with the arguments; returns what it returns (a Tensor for every built-in).
  template <typename... Args>
  decltype(auto) operator()(Args&&... args) const {
    return get()->forward(std::forward<Args>(args)...);
  }

 private:
  static std::shared_ptr<Impl> make_default() {
    static_assert(std::is_default_constructible_v<Impl>,
                  "this module has no default constructor: pass its constructor's arguments, or "
                  "nullptr for an empty holder");
    return std::make_shared<Impl>();
  }
  void check_not_empty() const;

  std::shared_ptr<Impl> impl_;
};

namespace detail {
[[noreturn]] void throw_empty_holder(const std::string& type);
std::string demangle(const char* mangled);
}  // namespace detail

template <typename Impl>
void ModuleHolder<Impl>::check_not_empty() const {
  if (impl_ == nullptr) detail::throw_empty_holder(detail::demangle(typeid(Impl).name()));
}

template <typename Impl>
std::ostream& operator<<(std::ostream& os, const ModuleHolder<Impl>& holder) {
  return os << *holder;
}

// Declares `class Name`, the holder of `NameImpl` (like TORCH_MODULE).
#define SMELT_MODULE(Name)                                     \
  class Name : public ::smelt::nn::ModuleHolder<Name##Impl> {  \
   public:                                                     \
    using ::smelt::nn::ModuleHolder<Name##Impl>::ModuleHolder; \
  }

// ---- Sequential --------------------------------------------------------------------------------

namespace detail {
// A module Sequential can hold: one whose forward takes a Tensor and returns a Tensor.
template <typename M>
concept UnaryModule = std::derived_from<M, Module> && requires(M& m, const Tensor& x) {
  { m.forward(x) } -> std::convertible_to<Tensor>;
};
// What Sequential's constructor and push_back take: a holder or a std::shared_ptr to a module.
template <typename T>
concept SequentialElement = HolderOfModule<T> || std::is_convertible_v<T, std::shared_ptr<Module>>;
template <typename... Ts>
concept SequentialElements = sizeof...(Ts) > 0 && (SequentialElement<std::decay_t<Ts>> && ...);
}  // namespace detail

// Modules applied in order; forward(x) returns the last one's output. An empty Sequential is the
// identity. Elements are named "0", "1", ... unless pushed with a name.
class SequentialImpl : public Module {
 public:
  SequentialImpl() = default;
  template <typename... Modules>
  requires detail::SequentialElements<Modules...>
  explicit SequentialImpl(Modules&&... modules) {
    (push_back(std::decay_t<Modules>(std::forward<Modules>(modules))), ...);
  }

  // Appends a module (a holder or a std::shared_ptr to one) under the name size().
  template <detail::SequentialElement M>
  void push_back(M module) {
    push_back(std::to_string(size()), std::move(module));
  }
  template <detail::UnaryModule M>
  void push_back(const std::string& name, std::shared_ptr<M> module) {
    register_module(name, module);
    M* raw = module.get();  // owned by the children list for the module's lifetime
    steps_.push_back([raw](const Tensor& x) -> Tensor { return raw->forward(x); });
  }
  template <typename Impl>
  void push_back(const std::string& name, const ModuleHolder<Impl>& holder) {
    push_back(name, holder.ptr());
  }

  // Applies the modules in order.
  Tensor forward(const Tensor& input);
  size_t size() const { return steps_.size(); }
  bool is_empty() const { return steps_.empty(); }
  // The module at `index` (throws if out of range).
  std::shared_ptr<Module> ptr(size_t index) const;
  Module& operator[](size_t index) const { return *ptr(index); }
  // The module at `index` as an M; throws if it is another type.
  template <typename M>
  std::shared_ptr<M> ptr(size_t index) const {
    std::shared_ptr<M> m = std::dynamic_pointer_cast<M>(ptr(index));
    if (m == nullptr) throw_wrong_type(index, detail::demangle(typeid(M).name()));
    return m;
  }

  std::string name() const override { return "Sequential"; }

 private:
  [[noreturn]] void throw_wrong_type(size_t index, const std::string& wanted) const;

  std::vector<std::function<Tensor(const Tensor&)>> steps_;
};
SMELT_MODULE(Sequential);

// ---- layers ------------------------------------------------------------------------------------

// y = x W^T + b, over the last dim of x. weight [out_features, in_features], bias [out_features];
// both start U(-1/sqrt(in_features), 1/sqrt(in_features)), PyTorch's default (kaiming_uniform
// with a = sqrt(5)).
class LinearImpl : public Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& input);
  std::string name() const override { return "Linear"; }
  void pretty_print(std::ostream& os) const override;

  int64_t in_features, out_features;
  Tensor weight;
  Tensor bias;  // undefined without a bias
};
SMELT_MODULE(Linear);

// Conv2d's arguments, for LibTorch's spelling `nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1))`.
// kernel_size, stride, padding and dilation are `3` or {height, width}.
struct Conv2dOptions {
  Conv2dOptions(int64_t in_channels, int64_t out_channels, Size2 kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  Conv2dOptions& stride(Size2 v) {
    stride_ = v;
    return *this;
  }
  Conv2dOptions& padding(Size2 v) {
    padding_ = v;
    return *this;
  }
  Conv2dOptions& bias(bool v) {
    bias_ = v;
    return *this;
  }
  Conv2dOptions& dilation(Size2 v) {
    dilation_ = v;
    return *this;
  }
  // Input and output channels split into this many groups convolved on their own.
  Conv2dOptions& groups(int64_t v) {
    groups_ = v;
    return *this;
  }
  int64_t in_channels_, out_channels_;
  Size2 kernel_size_;
  Size2 stride_ = 1, padding_ = 0, dilation_ = 1;
  int64_t groups_ = 1;
  bool bias_ = true;
};

// 2-d convolution over [N, C, H, W] (or [C, H, W]). weight [out, in / groups, kh, kw] and bias
// [out] start U(-1/sqrt(fan_in), +1/sqrt(fan_in)) with fan_in = in / groups * kh * kw, as in
// PyTorch.
class Conv2dImpl : public Module {
 public:
  Conv2dImpl(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Size2 stride = 1,
             Size2 padding = 0, bool bias = true);
  explicit Conv2dImpl(const Conv2dOptions& options);
  Tensor forward(const Tensor& input);
  std::string name() const override { return "Conv2d"; }
  void pretty_print(std::ostream& os) const override;

  Conv2dOptions options;
  Tensor weight;
  Tensor bias;  // undefined without a bias
};
SMELT_MODULE(Conv2d);

// The maximum over kernel_size windows (`2` or {height, width}); stride defaults to the kernel
// size.
class MaxPool2dImpl : public Module {
 public:
  explicit MaxPool2dImpl(Size2 kernel_size, std::optional<Size2> stride = std::nullopt,
                         Size2 padding = 0);
  Tensor forward(const Tensor& input);
  std::string name() const override { return "MaxPool2d"; }
  void pretty_print(std::ostream& os) const override;

  Size2 kernel_size, stride, padding;
};
SMELT_MODULE(MaxPool2d);

// Average pooling (see avg_pool2d in ops.h); stride defaults to kernel_size.
class AvgPool2dImpl : public Module {
 public:
  explicit AvgPool2dImpl(Size2 kernel_size, std::optional<Size2> stride = std::nullopt,
                         Size2 padding = 0, bool count_include_pad = true);
  Tensor forward(const Tensor& input);
  std::string name() const override { return "AvgPool2d"; }
  void pretty_print(std::ostream& os) const override;

  Size2 kernel_size, stride, padding;
  bool count_include_pad;
};
SMELT_MODULE(AvgPool2d);

// Adaptive average pooling to output_size ({1, 1}: global average pooling, as before a CNN's
// classifier).
class AdaptiveAvgPool2dImpl : public Module {
 public:
  explicit AdaptiveAvgPool2dImpl(Size2 output_size) : output_size(output_size) {}
  Tensor forward(const Tensor& input);
  std::string name() const override { return "AdaptiveAvgPool2d"; }
  void pretty_print(std::ostream& os) const override;

  Size2 output_size;
};
SMELT_MODULE(AdaptiveAvgPool2d);

// Merges dims start_dim..end_dim: [N, C, H, W] -> [N, C*H*W] by default.
class FlattenImpl : public Module {
 public:
  explicit FlattenImpl(int64_t start_dim = 1, int64_t end_dim = -1);
  Tensor forward(const Tensor& input);
  std::string name() const override { return "Flatten"; }
  void pretty_print(std::ostream& os) const override;

  int64_t start_dim, end_dim;
};
SMELT_MODULE(Flatten);

class ReLUImpl : public Module {
 public:
  Tensor forward(const Tensor& input);
  std::string name() const override { return "ReLU"; }
};
SMELT_MODULE(ReLU);

class TanhImpl : public Module {
 public:
  Tensor forward(const Tensor& input);
  std::string name() const override { return "Tanh"; }
};
SMELT_MODULE(Tanh);

class SigmoidImpl : public Module {
 public:
  Tensor forward(const Tensor& input);
  std::string name() const override { return "Sigmoid"; }
};
SMELT_MODULE(Sigmoid);

// max(0, x) + negative_slope * min(0, x).
class LeakyReLUImpl : public Module {
 public:
  explicit LeakyReLUImpl(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor forward(const Tensor& input);
  std::string name() const override { return "LeakyReLU"; }
  void pretty_print(std::ostream& os) const override;

  double negative_slope;
};
SMELT_MODULE(LeakyReLU);

// x * Phi(x), Phi the standard normal CDF. approximate = "none" (PyTorch's default; Phi through
// an erf accurate to 1.5e-7) or "tanh" (0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))).
class GELUImpl : public Module {
 public:
  explicit GELUImpl(std::string approximate = "none");
  Tensor forward(const Tensor& input);
  std::string name() const override { return "GELU"; }
  void pretty_print(std::ostream& os) const override;

  std::string approximate;
};
SMELT_MODULE(GELU);

// softmax / log_softmax over `dim`, as modules (e.g. the last layer of a Sequential).
class SoftmaxImpl : public Module {
 public:
  explicit SoftmaxImpl(int64_t dim) : dim(dim) {}
  Tensor forward(const Tensor& input);
  std::string name() const override { return "Softmax"; }
  void pretty_print(std::ostream& os) const override;

  int64_t dim;
};
SMELT_MODULE(Softmax);

class LogSoftmaxImpl : public Module {
 public:
  explicit LogSoftmaxImpl(int64_t dim) : dim(dim) {}
  Tensor forward(const Tensor& input);
  std::string name() const override { return "LogSoftmax"; }
  void pretty_print(std::ostream& os) const override;

  int64_t dim;
};
SMELT_MODULE(LogSoftmax);

// In training mode zeroes each element with probability p and scales the rest by 1 / (1 - p),
// with a mask from smelt's generator (manual_seed makes it reproducible); in eval mode the
// identity.
class DropoutImpl : public Module {
 public:
  explicit DropoutImpl(double p = 0.5);
  Tensor forward(const Tensor& input);
  std::string name() const override { return "Dropout"; }
  void pretty_print(std::ostream& os) const override;

  double p;
};
SMELT_MODULE(Dropout);

// Batch normalization over the channel dim (dim 1). Training mode normalizes with the batch's
// mean and biased variance and updates the buffers running_mean / running_var as
// (1 - momentum) * running + momentum * batch (the unbiased variance, as PyTorch does); with
// momentum std::nullopt (PyTorch's momentum=None) they are the cumulative average of every
// batch so far (momentum 1 / num_batches_tracked). Eval mode normalizes with the running
// statistics. weight (ones) and bias (zeros) are parameters when `affine`.
class BatchNormImpl : public Module {
 public:
  // `ranks` are the input ranks accepted: {2, 3} for BatchNorm1d ([N, C] or [N, C, L]),
  // {4} for BatchNorm2d ([N, C, H, W]).
  BatchNormImpl(std::string kind, std::vector<int64_t> ranks, int64_t num_features, double eps,
                std::optional<double> momentum, bool affine);
  Tensor forward(const Tensor& input);
  std::string name() const override { return kind_; }
  void pretty_print(std::ostream& os) const override;

  int64_t num_features;
  double eps;
  std::optional<double> momentum;  // nullopt: cumulative average
  bool affine;
  Tensor weight, bias;               // [num_features]; undefined unless affine
  Tensor running_mean, running_var;  // buffers, [num_features]
  Tensor num_batches_tracked;        // buffer, Int64 []: training-mode forward passes so far

 private:
  std::string kind_;
  std::vector<int64_t> ranks_;
};

// Layer normalization over the trailing dims given by normalized_shape (e.g. {hidden} for a
// transformer's [batch, tokens, hidden]): each sample's values there are shifted by their mean and
// divided by sqrt(biased variance + eps); then scaled by weight (ones) and shifted by bias (zeros),
// parameters of normalized_shape when elementwise_affine. The same in training and eval mode.
class LayerNormImpl : public Module {
 public:
  explicit LayerNormImpl(std::vector<int64_t> normalized_shape, double eps = 1e-5,
                         bool elementwise_affine = true);
  explicit LayerNormImpl(int64_t normalized_size, double eps = 1e-5, bool elementwise_affine = true)
      : LayerNormImpl(std::vector<int64_t>{normalized_size}, eps, elementwise_affine) {}
  Tensor forward(const Tensor& input);
  std::string name() const override { return "LayerNorm"; }
  void pretty_print(std::ostream& os) const override;

  std::vector<int64_t> normalized_shape;
  double eps;
  bool elementwise_affine;
  Tensor weight, bias;  // normalized_shape; undefined unless elementwise_affine
};
SMELT_MODULE(LayerNorm);

// A lookup table: forward(indices) gives weight's rows at `indices` (Int64 or Int32 of any shape),
// shaped indices.shape + [embedding_dim]. weight [num_embeddings, embedding_dim] starts N(0, 1)
// (PyTorch's init); the row at padding_idx (negative counts from the end) starts at zero and gets
// no gradient. Only the rows looked up get gradient.
class EmbeddingImpl : public Module {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim,
                std::optional<int64_t> padding_idx = std::nullopt);
  Tensor forward(const Tensor& indices);
  std::string name() const override { return "Embedding"; }
  void pretty_print(std::ostream& os) const override;

  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx;  // normalized to [0, num_embeddings)
  Tensor weight;
};
SMELT_MODULE(Embedding);

class BatchNorm1dImpl : public BatchNormImpl {
 public:
  explicit BatchNorm1dImpl(int64_t num_features, double eps = 1e-5,
                           std::optional<double> momentum = 0.1, bool affine = true)
      : BatchNormImpl("BatchNorm1d", {2, 3}, num_features, eps, momentum, affine) {}
};
SMELT_MODULE(BatchNorm1d);

class BatchNorm2dImpl : public BatchNormImpl {
 public:
  explicit BatchNorm2dImpl(int64_t num_features, double eps = 1e-5,
                           std::optional<double> momentum = 0.1, bool affine = true)
      : BatchNormImpl("BatchNorm2d", {4}, num_features, eps, momentum, affine) {}
};
SMELT_MODULE(BatchNorm2d);

// ---- losses ------------------------------------------------------------------------------------

// How a loss reduces its per-element values: their mean (the default), sum, or not at all.
enum class Reduction { Mean, Sum, None };

// (input - target)^2, reduced. input and target must have the same shape.
class MSELossImpl : public Module {
 public:
  explicit MSELossImpl(Reduction reduction = Reduction::Mean) : reduction(reduction) {}
  Tensor forward(const Tensor& input, const Tensor& target);
  std::string name() const override { return "MSELoss"; }

  Reduction reduction;
};
SMELT_MODULE(MSELoss);

// Options of CrossEntropyLoss / cross_entropy, spelled as LibTorch's
// `nn::CrossEntropyLossOptions().ignore_index(0).label_smoothing(0.1)`.
//   weight           [C] rescaling of each class (a buffer of the module, moved by .to()); the
//                    mean then divides by the summed weights of the counted samples
//   ignore_index     samples whose target is this class index count for nothing (not even in
//                    the mean's denominator); -100 by default, as in PyTorch
//   label_smoothing  in [0, 1]: the target becomes (1 - s) * one_hot + s / C
struct CrossEntropyLossOptions {
  CrossEntropyLossOptions& weight(Tensor v) {
    weight_ = std::move(v);
    return *this;
  }
  CrossEntropyLossOptions& ignore_index(int64_t v) {
    ignore_index_ = v;
    return *this;
  }
  CrossEntropyLossOptions& label_smoothing(double v) {
    label_smoothing_ = v;
    return *this;
  }
  CrossEntropyLossOptions& reduction(Reduction v) {
    reduction_ = v;
    return *this;
  }
  Tensor weight_;
  int64_t ignore_index_ = -100;
  double label_smoothing_ = 0.0;
  Reduction reduction_ = Reduction::Mean;
};

// The same for NLLLoss / nll_loss (no label smoothing).
struct NLLLossOptions {
  NLLLossOptions& weight(Tensor v) {
    weight_ = std::move(v);
    return *this;
  }
  NLLLossOptions& ignore_index(int64_t v) {
    ignore_index_ = v;
    return *this;
  }
  NLLLossOptions& reduction(Reduction v) {
    reduction_ = v;
    return *this;
  }
  Tensor weight_;
  int64_t ignore_index_ = -100;
  Reduction reduction_ = Reduction::Mean;
};

// -log_softmax(logits)[target] per sample, reduced. Logits [N, C] (or [C] for one sample, or
// [N, C, d1, ...] for per-pixel classes) with integer targets [N] ([] or [N, d1, ...]) of class
// indices in [0, C), or floating targets of the logits' shape holding class probabilities.
// Numerically stable for any logits. Options: class weights, ignore_index, label smoothing.
class CrossEntropyLossImpl : public Module {
 public:
  explicit CrossEntropyLossImpl(Reduction reduction = Reduction::Mean) : reduction(reduction) {}
  explicit CrossEntropyLossImpl(const CrossEntropyLossOptions& options);
  Tensor forward(const Tensor& logits, const Tensor& target);
  std::string name() const override { return "CrossEntropyLoss"; }

  Reduction reduction;
  Tensor weight;  // [C] class weights (a buffer), or undefined
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};
SMELT_MODULE(CrossEntropyLoss);

// -log_probs[target] per sample, reduced: log_probs [N, C] (e.g. from log_softmax), integer
// targets as for CrossEntropyLoss. Options: class weights, ignore_index.
class NLLLossImpl : public Module {
 public:
  explicit NLLLossImpl(Reduction reduction = Reduction::Mean) : reduction(reduction) {}
  explicit NLLLossImpl(const NLLLossOptions& options);
  Tensor forward(const Tensor& log_probs, const Tensor& target);
  std::string name() const override { return "NLLLoss"; }

  Reduction reduction;
  Tensor weight;  // [C] class weights (a buffer), or undefined
  int64_t ignore_index = -100;
};
SMELT_MODULE(NLLLoss);

// Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed stably as
// max(x, 0) - x * y + log(1 + exp(-|x|)). Same shapes.
class BCEWithLogitsLossImpl : public Module {
 public:
  explicit BCEWithLogitsLossImpl(Reduction reduction = Reduction::Mean) : reduction(reduction) {}
  Tensor forward(const Tensor& logits, const Tensor& target);
  std::string name() const override { return "BCEWithLogitsLoss"; }

  Reduction reduction;
};
SMELT_MODULE(BCEWithLogitsLoss);

// ---- functional forms --------------------------------------------------------------------------

namespace functional {

Tensor relu(const Tensor& input);
Tensor tanh(const Tensor& input);
Tensor sigmoid(const Tensor& input);
Tensor softmax(const Tensor& input, int64_t dim);
Tensor log_softmax(const Tensor& input, int64_t dim);
Tensor leaky_relu(const Tensor& input, double negative_slope = 0.01);
// approximate: "none" or "tanh" (see GELUImpl).
Tensor gelu(const Tensor& input, const std::string& approximate = "none");
// input [..., in] x weight [out, in]^T + bias [out].
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor());
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
              Size2 stride = 1, Size2 padding = 0, Size2 dilation = 1, int64_t groups = 1);
Tensor max_pool2d(const Tensor& input, Size2 kernel_size,
                  std::optional<Size2> stride = std::nullopt, Size2 padding = 0);
Tensor avg_pool2d(const Tensor& input, Size2 kernel_size,
                  std::optional<Size2> stride = std::nullopt, Size2 padding = 0,
                  bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& input, Size2 output_size);
// Zeroes elements with probability p and scales the rest by 1 / (1 - p) when `training`;
// otherwise returns input.
Tensor dropout(const Tensor& input, double p = 0.5, bool training = true);
// Normalizes over every dim but dim 1 (channels) of an input of rank >= 2. In training mode
// uses the batch statistics and, if running_mean/running_var are defined, swaps in their
// updated values; otherwise uses the running statistics. weight/bias may be undefined.
Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  bool training = false, double momentum = 0.1, double eps = 1e-5);
// Normalizes over the trailing dims `normalized_shape` (see LayerNormImpl); weight/bias, when
// defined, have that shape.
Tensor layer_norm(const Tensor& input, const std::vector<int64_t>& normalized_shape,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  double eps = 1e-5);
// weight's rows at `indices` (integer, any shape): indices.shape + [weight.size(1)]. No gradient
// reaches the row padding_idx (if given; negative counts from the end).
Tensor embedding(const Tensor& indices, const Tensor& weight,
                 std::optional<int64_t> padding_idx = std::nullopt);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     Reduction reduction = Reduction::Mean);
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     const CrossEntropyLossOptions& options);
Tensor nll_loss(const Tensor& log_probs, const Tensor& target,
                Reduction reduction = Reduction::Mean);
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NLLLossOptions& options);
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        Reduction reduction = Reduction::Mean);

}  // namespace functional

// ---- gradient clipping (torch.nn.utils), in place on the parameters' .grad() ------------------

namespace utils {

// Scales every gradient by max_norm / (total + 1e-6) when that is below 1, where total is the
// norm_type-norm of all the gradients together (infinity: the largest |g|), and returns total
// (0-d). Lazy like the gradients: it fuses into the optimizer's step. Parameters without a
// gradient are skipped.
Tensor clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm,
                       double norm_type = 2.0);
// Clamps every gradient to [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value);

}  // namespace utils

// ---- initialization (in place: every handle to the tensor sees the new values) -----------------

namespace init {

// Fills with U(low, high) draws from smelt's generator.
void uniform_(const Tensor& tensor, double low = 0.0, double high = 1.0);
// Fills with N(mean, std^2) draws.
void normal_(const Tensor& tensor, double mean = 0.0, double std = 1.0);
void constant_(const Tensor& tensor, double value);
void zeros_(const Tensor& tensor);
void ones_(const Tensor& tensor);
// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(const Tensor& tensor, double gain = 1.0);
// U(-b, b) with b = sqrt(6 / ((1 + a^2) * fan_in)) (leaky-ReLU gain with slope a; PyTorch's
// layers use a = sqrt(5), which gives b = 1 / sqrt(fan_in)).
void kaiming_uniform_(const Tensor& tensor, double a = 0.0);

}  // namespace init

}  // namespace smelt::nn
