// Autograd: gradients of tensor programs, with LibTorch's names.
//
//   Tensor x = tensor({1.f, 2.f, 3.f}).requires_grad_();
//   Tensor y = (x * x).sum();
//   y.backward();        // x.grad() is now tensor([2., 4., 6.]) (lazy: computed when read)
//
// Ops on tensors that require grad record what backward() needs; backward() appends the
// gradient computation to the lazy graph (nothing runs until a gradient is read or eval()'d),
// so the backward pass fuses with the forward pass and with the optimizer's update. See also the
// Tensor methods requires_grad_(), requires_grad(), backward(), grad(), detach().
#pragma once

#include <smelt/tensor.h>

#include <optional>
#include <vector>

namespace smelt {

// While one is alive, ops on this thread record no graph: their results do not require grad.
// Guards nest; each restores the mode it found.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Whether ops on this thread record graphs for autograd (true unless a NoGradGuard is alive).
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// The gradients of `outputs` with respect to `inputs` (like torch.autograd.grad), as lazy
// tensors; nothing accumulates into .grad(). Each output must be a one-element tensor, or use the
// overload with `grad_outputs` (the gradient of each output, of its shape). With `create_graph`
// the results require grad themselves, so they can be differentiated again (higher order).
// The graph is freed afterwards unless `retain_graph` (default: create_graph). An input the
// outputs do not depend on is an error unless `allow_unused`, which gives an undefined Tensor.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         bool create_graph = false, bool allow_unused = false);
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool create_graph = false,
                         std::optional<bool> retain_graph = std::nullopt,
                         bool allow_unused = false);

}  // namespace smelt
