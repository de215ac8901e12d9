// A tour of smelt's core: build a small lazy graph (broadcasting, matmul, softmax), look at the
// IR it became, compute it, and catch one of the errors that name what went wrong.
#include <smelt/smelt.h>

#include <iostream>

int main() {
  using namespace smelt;

  // Data: a batch of 4 inputs with 3 features, and a layer of 2 outputs.
  manual_seed(0);
  Tensor x = arange(12).reshape({4, 3}).to(DType::Float32) / 10.f;
  Tensor w = randn({3, 2});
  Tensor b = tensor({0.5f, -0.5f});

  // Nothing is computed here: each op checks its arguments and appends to a graph.
  Tensor logits = matmul(x, w) + b;           // [4, 2] + [2] broadcasts
  Tensor probs = softmax(logits, /*dim=*/1);  // numerically stable: subtracts the row max
  Tensor centered = x - x.mean(0);            // [4, 3] - [3]

  std::cout << "The pending graph of probs, in smelt's IR text:\n" << graph_text({probs}) << "\n";

  // Reading values realizes them; eval() computes several in one program.
  eval({probs, centered});
  std::cout << "x =\n" << x << "\n\n";
  std::cout << "probs =\n" << probs << "\n\n";
  std::cout << "row sums = " << probs.sum(1) << "\n";
  std::cout << "predicted classes = " << probs.argmax(1) << "\n";
  std::cout << "centered =\n" << centered << "\n\n";
  std::cout << "an integer tensor + 1.5 promotes: " << arange(3) + 1.5f << "\n\n";

  // Mistakes are caught at the call that makes them, with the shapes involved.
  try {
    Tensor bad = matmul(x, w.t());
    std::cout << bad << "\n";
  } catch (const Error& e) {
    std::cout << "caught: " << e.what() << "\n";
  }
  return 0;
}
