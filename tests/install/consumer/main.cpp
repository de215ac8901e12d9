// Built against an installed smelt: checks the package exports a usable library.
#include <smelt/smelt.h>

#include <cmath>
#include <iostream>

int main() {
  smelt::Tensor a = smelt::tensor({1.f, 2.f, 3.f});
  smelt::Tensor b = (a * a).sum();
  float v = b.item<float>();
  std::cout << "sum of squares: " << v << "\n";
  return std::fabs(v - 14.f) < 1e-6f ? 0 : 1;
}
