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
}
