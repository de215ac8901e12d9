// Index math under concat: an operand's index is held within the operand's extent, so a
// reshape of contiguous data under a concat reads it at the flat index, with no div/mod (the
// optimizer's flat vectors of small parameters: a [10, 256] weight flattened between two
// biases). The values must match the reference wherever the pieces are, including at the seams.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/common/random_graph.h"

namespace smelt {
namespace {

using testing::expect_close;
using testing::reference_values;

Tensor data(const std::vector<int64_t>& shape) {
  Tensor t = randn(shape);
  t.eval();
  return t;
}

// The definitions the load of input `slot` depends on, in `t`'s (one-kernel) program: the kernel
// IR keeps expressions nothing reads (the emitters skip them), so only what the load reaches
// counts.
std::string load_index_math(const Tensor& t, int slot) {
  const std::string text = compiled_text({t}, "kernels");
  std::map<std::string, std::string> def;  // "e12" -> "f32 = in1[e11]"
  std::string load;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    const size_t colon = line.find(": ");
    if (!absl::StartsWith(line, "e") || colon == absl::string_view::npos) continue;
    const std::string name(line.substr(0, colon));
    def[name] = std::string(line.substr(colon + 2));
    if (absl::StrContains(def[name], absl::StrCat("in", slot, "["))) load = name;
  }
  std::string out;
  std::set<std::string> seen;
  std::vector<std::string> todo = {load};
  while (!todo.empty()) {
    const std::string e = todo.back();
    todo.pop_back();
    if (e.empty() || !seen.insert(e).second || !def.contains(e)) continue;
    absl::StrAppend(&out, e, ": ", def[e], "\n");
    for (absl::string_view word : absl::StrSplit(def[e], absl::ByAnyChar(" []?:(),"))) {
      if (absl::StartsWith(word, "e")) todo.emplace_back(word);
    }
  }
  return out;
}

TEST(ConcatIndex, AFlattenedMatrixBetweenVectorsIsReadWithoutDivMod) {
  manual_seed(31);
  Tensor b1 = data({256}), w = data({10, 256}), b2 = data({10}), state = data({256 + 2560 + 10});
  Tensor flat = cat({b1, w.reshape({-1}), b2});
  Tensor next = state * 0.9 + flat;
  const std::string math = load_index_math(next, 2);  // in2: the flattened matrix
  ASSERT_NE(math, "");
  EXPECT_EQ(math.find(" / "), std::string::npos) << math;
  EXPECT_EQ(math.find(" % "), std::string::npos) << math;
  const std::vector<double> want = reference_values(next);
  expect_close(next.to_vector<double>(), want, "flat vector");
}

TEST(ConcatIndex, PiecesAndSeamsMatchTheReference) {
  manual_seed(32);
  // 2-d and 3-d pieces flattened, concatenated along dim 0 and along an inner dim, with a
  // transposed (non-contiguous) piece whose div/mod must stay.
  Tensor a = data({3, 5}), b = data({4, 5}), c = data({5, 2}), d = data({2, 3, 4});
  const std::vector<Tensor> cases = {
      cat({a.reshape({-1}), c.reshape({-1}), d.reshape({-1})}),
      cat({a, b}, 0) * 2.0,
      cat({a, c.t()}, 0) + 1.0,
      cat({a.t(), b.t()}, 1).reshape({-1}),
      cat({d, d * -1.0}, 1).reshape({4, -1}),
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::vector<double> want = reference_values(cases[k]);
    expect_close(cases[k].to_vector<double>(), want, "case " + std::to_string(k));
  }
}

}  // namespace
}  // namespace smelt
