// Kernel loop axes that every access walks as one are merged (compiler::coalesce_axes): which
// merges happen for contiguous, broadcast, permuted and strided operands, and that the merged
// kernels compute what the reference evaluator does (sums, argmax positions, gradients).
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <string>
#include <variant>
#include <vector>

#include "compiler/lower.h"
#include "compiler/passes/fuse.h"
#include "ir/graph.h"
#include "tests/common/gradcheck.h"
#include "tests/common/random_graph.h"

namespace smelt {
namespace {

using testing::expect_close;
using testing::node_of;
using testing::reference_values;

// The loop domains of the kernels `t`'s pending graph lowers to.
std::vector<std::vector<int64_t>> domains_of(const Tensor& t, bool coalesce = true) {
  ir::Graph g{{node_of(t)}};
  absl::StatusOr<compiler::LoweredProgram> lowered =
      compiler::lower(g, compiler::fuse(g), coalesce);
  EXPECT_TRUE(lowered.ok()) << lowered.status();
  std::vector<std::vector<int64_t>> out;
  if (!lowered.ok()) return out;
  for (const compiler::Step& s : lowered->steps) {
    if (const auto* k = std::get_if<compiler::KernelStep>(&s)) out.push_back(k->kernel.domain);
  }
  return out;
}

void expect_matches_reference(const Tensor& t, const std::string& what) {
  const std::vector<double> want = reference_values(t);  // before t is realized
  expect_close(t.to_vector<double>(), want, what, 1e-5);
}

using Domains = std::vector<std::vector<int64_t>>;

TEST(Coalesce, ContiguousReducedAxesMerge) {
  Tensor x = randn({8, 6, 5, 7});
  Tensor s = x.sum(std::vector<int64_t>{0, 2, 3});  // a conv layer's bias gradient
  EXPECT_EQ(domains_of(s, /*coalesce=*/false), (Domains{{6, 8, 5, 7}}));
  EXPECT_EQ(domains_of(s), (Domains{{6, 8, 35}}));
  expect_matches_reference(s, "sum over n, h, w");
  Tensor all = (x * 2.0f).sum();
  EXPECT_EQ(domains_of(all), (Domains{{1680}}));
  expect_matches_reference(all, "full sum");
}

TEST(Coalesce, BroadcastOperandsKeepTheirAxesApart) {
  Tensor x = randn({8, 6, 5, 7});
  Tensor b = randn({6});
  Tensor y = relu(x + b.reshape({1, 6, 1, 1}));  // bias + ReLU: h and w merge, c stays apart
  EXPECT_EQ(domains_of(y), (Domains{{8, 6, 35}}));
  expect_matches_reference(y, "bias + relu");
  Tensor rows = x + randn({7});  // broadcast along everything but w
  EXPECT_EQ(domains_of(rows), (Domains{{240, 7}}));
  expect_matches_reference(rows, "row broadcast");
}

TEST(Coalesce, PermutedAndStridedViewsMergeOnlyWhereContiguous) {
  Tensor x = randn({8, 6, 5, 7});
  Tensor t = x.permute({0, 1, 3, 2}) * 3.0f;  // w, h swapped: only n and c merge
  EXPECT_EQ(domains_of(t), (Domains{{48, 7, 5}}));
  expect_matches_reference(t, "permuted");
  Tensor p = x.slice(3, 0, 7, 2) + 1.0f;  // every other w: n, c and h merge, w stays apart
  EXPECT_EQ(domains_of(p), (Domains{{240, 4}}));
  expect_matches_reference(p, "strided slice");
}

TEST(Coalesce, ArgmaxPositionsAndGradientsAreUnchanged) {
  Tensor x = randn({8, 6, 5, 7});
  Tensor a = x.argmax(1);  // h and w (outer) merge; the reduced axis keeps its positions
  EXPECT_EQ(domains_of(a), (Domains{{8, 35, 6}}));
  expect_matches_reference(a, "argmax over c");
  Tensor flat = x.argmax();  // every axis reduced and merged: positions into the flattening
  EXPECT_EQ(domains_of(flat), (Domains{{1680}}));
  expect_matches_reference(flat, "argmax of all");
  Tensor w = randn({8, 6, 5, 7}).requires_grad_();
  Tensor b = randn({6}).requires_grad_();
  Tensor loss = (relu(w * 2.0f + b.reshape({1, 6, 1, 1})) * w).sum();
  std::vector<Tensor> g = grad({loss}, {w, b});
  expect_matches_reference(g[0], "d/dw");
  expect_matches_reference(g[1], "d/db");
}

}  // namespace
}  // namespace smelt
