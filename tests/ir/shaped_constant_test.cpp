// `constant` at a shape: the frontend's one-node scalar operand (an optional `shape` attribute;
// absent means 0-d, as before it existed).
#include <gtest/gtest.h>

#include "ir/text.h"
#include "ir/verify.h"
#include "tests/ir/op_testing.h"

namespace smelt::ir {
namespace {

using testing::eval;
using testing::make;
using testing::make_error;
using testing::values;

NodePtr shaped(DType dtype, double value, IntList shape) {
  return make(OpCode::Constant, {},
              Attrs{{"dtype", dtype}, {"value", value}, {"shape", std::move(shape)}});
}

TEST(ShapedConstant, TypeAndReferenceValue) {
  NodePtr c = shaped(DType::Float32, 2.5, {2, 3});
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->type(), (TypeInfo{DType::Float32, {2, 3}}));
  EXPECT_EQ(values(eval(c)), std::vector<double>(6, 2.5));
  EXPECT_EQ(values(eval(shaped(DType::Int64, -3, {4}))), std::vector<double>(4, -3));
  EXPECT_EQ(values(eval(shaped(DType::Bool, 1, {2}))), std::vector<double>(2, 1));
  EXPECT_TRUE(values(eval(shaped(DType::Float64, 1, {3, 0}))).empty());
  // Without a shape it is the 0-d literal it always was, and hashes as before: the shape is an
  // attribute, so the two spellings of one value never share a hash.
  NodePtr scalar = make(OpCode::Constant, {}, Attrs{{"dtype", DType::Float32}, {"value", 2.5}});
  EXPECT_EQ(scalar->rank(), 0);
  EXPECT_NE(scalar->hash(), shaped(DType::Float32, 2.5, {1})->hash());
  EXPECT_EQ(c->hash(), shaped(DType::Float32, 2.5, {2, 3})->hash());
}

TEST(ShapedConstant, Errors) {
  EXPECT_EQ(make_error(OpCode::Constant, {},
                       Attrs{{"dtype", DType::Float32}, {"value", 1.0}, {"shape", IntList{2, -1}}}),
            "constant: negative dimension in shape [2, -1]");
  // One spelling per value: a 0-d constant leaves the shape out.
  EXPECT_EQ(make_error(OpCode::Constant, {},
                       Attrs{{"dtype", DType::Float32}, {"value", 1.0}, {"shape", IntList{}}}),
            "constant: a 0-d constant has no shape attribute (leave it out)");
  EXPECT_EQ(make_error(OpCode::Constant, {},
                       Attrs{{"dtype", DType::Float32}, {"value", 1.0}, {"shape", 2.0}}),
            "constant: attribute 'shape' must be int list, got float");
  // The other attributes stay required.
  EXPECT_EQ(make_error(OpCode::Constant, {}, Attrs{{"dtype", DType::Float32}}),
            "constant: missing attribute 'value'");
}

TEST(ShapedConstant, TextRoundTrip) {
  // The shape is implied by the type, so text leaves it out and the parser fills it back in,
  // for rank >= 1 only (a 0-d constant has none).
  const std::string text =
      "# smelt IR v1\n"
      "%0 = input f32[2, 3]\n"
      "%1 = constant f32[2, 3] {value=0.5}\n"
      "%2 = mul f32[2, 3] %0, %1\n"
      "%3 = constant f32[] {value=2.0}\n"
      "%4 = reshape f32[1, 1] %3\n"
      "%5 = expand f32[2, 3] %4\n"
      "%6 = add f32[2, 3] %2, %5\n"
      "return %6\n";
  absl::StatusOr<Graph> g = parse_graph(text);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(verify(*g).ok()) << verify(*g);
  EXPECT_EQ(print_graph(*g), text);
  const Node& add = *g->outputs[0];
  const Node& c = *add.inputs()[0]->inputs()[1];
  EXPECT_EQ(c.attrs(),
            (Attrs{{"dtype", DType::Float32}, {"value", 0.5}, {"shape", IntList{2, 3}}}));
  const Node& scalar = *add.inputs()[1]->inputs()[0]->inputs()[0];
  EXPECT_FALSE(scalar.attrs().has("shape"));
  // Parsed and built nodes hash alike.
  EXPECT_EQ(c.hash(), shaped(DType::Float32, 0.5, {2, 3})->hash());
}

}  // namespace
}  // namespace smelt::ir
