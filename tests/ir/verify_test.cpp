#include "ir/verify.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"
#include "base/buffer.h"
#include "ir/text.h"

namespace smelt::ir {
namespace {

Graph parse(absl::string_view text) {
  absl::StatusOr<Graph> g = parse_graph(text);
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? *std::move(g) : Graph{};
}

std::string verify_error(const Graph& g) {
  absl::Status s = verify(g);
  EXPECT_FALSE(s.ok()) << "expected verify to fail on:\n" << print_graph(g);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

TEST(Verify, AcceptsWellFormedGraphs) {
  EXPECT_TRUE(verify(Graph{}).ok());
  Graph g = parse(
      "%0 = input f32[2, 3]\n"
      "%1 = constant f32[] {value=2.0}\n"
      "%2 = reshape f32[1, 1] %1\n"
      "%3 = expand f32[2, 3] %2\n"
      "%4 = mul f32[2, 3] %0, %3\n"
      "%5 = sum f32[3] %4 {axes=[0], keepdim=false}\n"
      "return %5, %4\n");
  EXPECT_TRUE(verify(g).ok()) << verify(g);
}

TEST(Verify, NullOutput) {
  Graph g = parse("%0 = input f32[2]\nreturn %0\n");
  g.outputs.push_back(nullptr);
  EXPECT_EQ(verify_error(g), "verify: output 1 is null");
}

TEST(Verify, ReRunsTheTypeRuleAndNamesTheNode) {
  // make_input trusts its caller; a negative dim is caught by re-running input's type rule.
  NodePtr good = Node::make_input(DType::Float32, {2}, nullptr);
  NodePtr bad = Node::make_input(DType::Float32, {2, -1}, nullptr);
  const std::string e = verify_error(Graph{{good, bad}});
  EXPECT_TRUE(absl::StartsWith(e, "verify: %1 (input): input: negative dimension")) << e;
}

TEST(Verify, RealizedBufferMustHoldTheType) {
  NodePtr small = Node::make_input(DType::Float64, {4}, base::Buffer::allocate_host(16));
  EXPECT_EQ(verify_error(Graph{{small}}),
            "verify: %0 (input): its buffer holds 16 bytes, but f64[4] needs 32");
  NodePtr fine = Node::make_input(DType::Float64, {4}, base::Buffer::allocate_host(32));
  EXPECT_TRUE(verify(Graph{{fine}}).ok());
}

TEST(Verify, ChecksTheInputsThatARealizedNodeKeeps) {
  NodePtr bad = Node::make_input(DType::Float32, {-2}, nullptr);
  absl::StatusOr<NodePtr> neg = Node::make(OpCode::Neg, {bad});
  ASSERT_TRUE(neg.ok()) << neg.status();
  (*neg)->set_realized(base::Buffer::allocate_host(8), /*keep_inputs=*/true);
  const std::string e = verify_error(Graph{{*neg}});
  EXPECT_TRUE(absl::StrContains(e, "kept input")) << e;
  EXPECT_TRUE(absl::StrContains(e, "(input): input: negative dimension")) << e;
  // Realized without its inputs: the buffer is the value, nothing else to check.
  NodePtr x = Node::make_input(DType::Float32, {2}, nullptr);
  absl::StatusOr<NodePtr> done = Node::make(OpCode::Neg, {x});
  ASSERT_TRUE(done.ok());
  (*done)->set_realized(base::Buffer::allocate_host(8));
  EXPECT_TRUE(verify(Graph{{*done}}).ok());
}

TEST(Verify, ErrorsUseThePrintedNumbering) {
  NodePtr x = Node::make_input(DType::Float32, {3}, nullptr);
  NodePtr y = Node::make_input(DType::Float32, {3}, base::Buffer::allocate_host(4));
  absl::StatusOr<NodePtr> sum = Node::make(OpCode::Add, {x, y});
  ASSERT_TRUE(sum.ok()) << sum.status();
  // print_graph numbers x %0, y %1, the add %2: the error names %1, the too-small buffer.
  EXPECT_EQ(verify_error(Graph{{*sum}}),
            "verify: %1 (input): its buffer holds 4 bytes, but f32[3] needs 12");
}

}  // namespace
}  // namespace smelt::ir
