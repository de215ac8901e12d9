// The README's first program (kept compiling by the build).
#include <smelt/smelt.h>

#include <iostream>
using namespace smelt;

int main() {
  manual_seed(0);
  Tensor x = randn({4, 3});  // data, realized
  Tensor w = tensor({{1.f, 0.f}, {0.f, 1.f}, {1.f, 1.f}});
  Tensor b = tensor({0.5f, -0.5f});
  Tensor h = relu(matmul(x, w) + b);  // lazy: nothing has run yet
  Tensor p = softmax(h, 1);
  std::cout << graph_text({p});   // the pending IR
  std::cout << p << "\n";         // realizes and prints, like PyTorch
  std::cout << p.sum(1) << "\n";  // rows sum to 1
  try {
    matmul(x, x);  // [4, 3] x [4, 3]
  } catch (const Error& e) {
    std::cout << e.what() << "\n";  // matmul: cannot multiply [4, 3] by [4, 3]: ...
  }

  // Autograd: mark the leaves, compute, call backward(); gradients are lazy tensors too.
  Tensor v = tensor({{1.f, 0.f}, {0.f, 1.f}, {1.f, 1.f}}).requires_grad_();
  Tensor loss = (relu(matmul(x, v) + b) * p).sum();  // p is data here: it does not require grad
  loss.backward();                // appends the gradient graph; computes nothing yet
  std::cout << v.grad() << "\n";  // d loss / d v, shape [3, 2]: computed when read
  {
    NoGradGuard no_grad;  // an update records no graph
    Tensor updated = v - v.grad() * 0.1f;
    std::cout << updated.requires_grad() << "\n";  // 0
  }
  Tensor t = tensor({0.5f}).requires_grad_();
  Tensor dt = grad({tanh(t).sum()}, {t}, /*create_graph=*/true)[0];  // 1 - tanh^2
  std::cout << grad({dt.sum()}, {t})[0] << "\n";  // second derivative: -2 tanh (1 - tanh^2)
}
