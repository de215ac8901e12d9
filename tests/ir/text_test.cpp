#include "ir/text.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/buffer.h"
#include "ir/dot.h"
#include "ir/verify.h"

namespace smelt::ir {
namespace {

NodePtr make(OpCode op, std::vector<NodePtr> inputs, Attrs attrs = {}) {
  absl::StatusOr<NodePtr> n = Node::make(op, std::move(inputs), std::move(attrs));
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? *n : nullptr;
}

NodePtr input(DType dtype, Shape shape) {
  return make(OpCode::Input, {}, Attrs{{"dtype", dtype}, {"shape", std::move(shape)}});
}

NodePtr constant(double value, DType dtype = DType::Float32) {
  return make(OpCode::Constant, {}, Attrs{{"dtype", dtype}, {"value", value}});
}

base::BufferPtr host_buffer(const Node& n) {
  return base::Buffer::allocate_host(std::max<size_t>(1, n.numel() * dtype_size(n.dtype())));
}

// Parses `text` and prints it again; the text must come back unchanged.
void expect_round_trip(const std::string& text) {
  absl::StatusOr<Graph> g = parse_graph(text);
  ASSERT_TRUE(g.ok()) << g.status() << "\n" << text;
  EXPECT_TRUE(verify(*g).ok()) << verify(*g);
  EXPECT_EQ(print_graph(*g), text);
}

std::string parse_error(absl::string_view text) {
  absl::StatusOr<Graph> g = parse_graph(text);
  if (g.ok()) {
    ADD_FAILURE() << "expected a parse error for:\n" << text;
    return "";
  }
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << g.status();
  return std::string(g.status().message());
}

bool same_attr_value(const AttrValue& a, const AttrValue& b) {
  if (a.index() != b.index()) return false;
  if (const double* x = std::get_if<double>(&a)) {
    const double y = std::get<double>(b);
    return std::bit_cast<uint64_t>(*x) == std::bit_cast<uint64_t>(y) ||
           (std::isnan(*x) && std::isnan(y) && std::signbit(*x) == std::signbit(y));
  }
  return a == b;
}

// `b` is `a` read back from text: node by node in print order, the same op (a realized node
// becomes an input), type, attributes and operands, and the same outputs.
void expect_same_structure(const Graph& a, const Graph& b) {
  const std::vector<const Node*> na = print_order(a), nb = print_order(b);
  ASSERT_EQ(na.size(), nb.size());
  absl::flat_hash_map<const Node*, size_t> ia, ib;
  for (size_t i = 0; i < na.size(); ++i) {
    ia[na[i]] = i;
    ib[nb[i]] = i;
  }
  for (size_t i = 0; i < na.size(); ++i) {
    const Node& x = *na[i];
    const Node& y = *nb[i];
    SCOPED_TRACE(absl::StrCat("%", i, " ", x.def().name));
    EXPECT_EQ(y.device(), Device::cpu());
    EXPECT_EQ(x.type(), y.type());
    if (x.realized()) {
      EXPECT_EQ(y.op(), OpCode::Input);
      EXPECT_EQ(y.attrs(), (Attrs{{"dtype", x.dtype()}, {"shape", x.shape()}}));
      continue;
    }
    EXPECT_EQ(x.op(), y.op());
    ASSERT_EQ(x.attrs().items().size(), y.attrs().items().size());
    for (size_t k = 0; k < x.attrs().items().size(); ++k) {
      EXPECT_EQ(x.attrs().items()[k].first, y.attrs().items()[k].first);
      EXPECT_TRUE(same_attr_value(x.attrs().items()[k].second, y.attrs().items()[k].second))
          << x.attrs().items()[k].first << ": " << attr_value_str(x.attrs().items()[k].second)
          << " vs " << attr_value_str(y.attrs().items()[k].second);
    }
    ASSERT_EQ(x.inputs().size(), y.inputs().size());
    for (size_t k = 0; k < x.inputs().size(); ++k) {
      EXPECT_EQ(ia.at(x.inputs()[k].get()), ib.at(y.inputs()[k].get()));
    }
  }
  // Hashes cover ops, types, attributes and topology, and leaves hash by type: equal hashes
  // mean the program cache would treat the parsed graph as the original. (A node realized after
  // its users were built hashed into them as what it was, not as a leaf.)
  bool realized = false;
  for (const Node* n : na) realized |= n->realized();
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (size_t k = 0; k < a.outputs.size(); ++k) {
    EXPECT_EQ(ia.at(a.outputs[k].get()), ib.at(b.outputs[k].get()));
    if (!realized) EXPECT_EQ(a.outputs[k]->hash(), b.outputs[k]->hash());
  }
}

// ---- printing -----------------------------------------------------------------------------------

TEST(TextPrint, SmallGraph) {
  NodePtr x = input(DType::Float32, {2, 3});
  NodePtr y = input(DType::Float32, {3});
  NodePtr ye = make(OpCode::Expand, {make(OpCode::Reshape, {y}, {{"shape", IntList{1, 3}}})},
                    {{"shape", IntList{2, 3}}});
  NodePtr sum = make(OpCode::Add, {x, ye});
  NodePtr two =
      make(OpCode::Expand, {make(OpCode::Reshape, {constant(2.0)}, {{"shape", IntList{1, 1}}})},
           {{"shape", IntList{2, 3}}});
  NodePtr s = make(OpCode::Sum, {make(OpCode::Mul, {sum, two})},
                   {{"axes", IntList{0}}, {"keepdim", false}});
  EXPECT_EQ(print_graph(Graph{{sum, s}}),
            "# smelt IR v1\n"
            "%0 = input f32[2, 3]\n"
            "%1 = input f32[3]\n"
            "%2 = reshape f32[1, 3] %1\n"
            "%3 = expand f32[2, 3] %2\n"
            "%4 = add f32[2, 3] %0, %3\n"
            "%5 = constant f32[] {value=2.0}\n"
            "%6 = reshape f32[1, 1] %5\n"
            "%7 = expand f32[2, 3] %6\n"
            "%8 = mul f32[2, 3] %4, %7\n"
            "%9 = sum f32[3] %8 {axes=[0], keepdim=false}\n"
            "return %4, %9\n");
}

TEST(TextPrint, FloatsAreExactAndNeverLookLikeInts) {
  EXPECT_EQ(attr_value_str(2.0), "2.0");
  EXPECT_EQ(attr_value_str(-3.0), "-3.0");
  EXPECT_EQ(attr_value_str(0.0), "0.0");
  EXPECT_EQ(attr_value_str(-0.0), "-0.0");
  EXPECT_EQ(attr_value_str(1e-5), "1e-05");
  EXPECT_EQ(attr_value_str(0.1), "0.1");
  EXPECT_EQ(attr_value_str(1e20), "1e+20");
  EXPECT_EQ(attr_value_str(100000.0), "1e+05");  // shortest
  EXPECT_EQ(attr_value_str(1234.0), "1234.0");
  EXPECT_EQ(attr_value_str(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(attr_value_str(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(attr_value_str(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(attr_value_str(int64_t{3}), "3");
  EXPECT_EQ(attr_value_str(true), "true");
  EXPECT_EQ(attr_value_str(IntList{}), "[]");
  EXPECT_EQ(attr_value_str(IntList{1, -2}), "[1, -2]");
  EXPECT_EQ(attr_value_str(DType::Int64), "i64");

  const double values[] = {0.1,
                           1.0 / 3.0,
                           -2.5e-300,
                           std::numeric_limits<double>::denorm_min(),
                           std::numeric_limits<double>::max(),
                           std::numeric_limits<double>::lowest(),
                           static_cast<double>(0.1f),
                           -0.0,
                           std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::quiet_NaN(),
                           123456789012345678.0};
  for (double v : values) {
    Graph g{{constant(v, DType::Float64)}};
    absl::StatusOr<Graph> back = parse_graph(print_graph(g));
    ASSERT_TRUE(back.ok()) << back.status();
    expect_same_structure(g, *back);
    EXPECT_EQ(print_graph(*back), print_graph(g));
  }
}

TEST(TextPrint, ImpliedAttributesAreLeftOut) {
  NodePtr x = input(DType::Int32, {4});
  NodePtr c = make(OpCode::Cast, {x}, {{"dtype", DType::Float64}});
  EXPECT_EQ(print_graph(Graph{{c}}),
            "# smelt IR v1\n"
            "%0 = input i32[4]\n"
            "%1 = cast f64[4] %0\n"
            "return %1\n");
  EXPECT_EQ(node_attrs_str(*c), "");
  EXPECT_EQ(node_attrs_str(*constant(1.5)), "{value=1.5}");
}

TEST(TextPrint, RealizedNodesAreInputs) {
  NodePtr x = input(DType::Float32, {2});
  NodePtr n = make(OpCode::Neg, {x});
  NodePtr e = make(OpCode::Exp, {n});
  n->set_realized(host_buffer(*n), /*keep_inputs=*/true);  // as autograd keeps them
  NodePtr data = Node::make_input(DType::Float32, {2}, host_buffer(*n));
  NodePtr out = make(OpCode::Add, {e, data});
  const std::string text = print_graph(Graph{{out, x}});
  EXPECT_EQ(text,
            "# smelt IR v1\n"
            "%0 = input f32[2]\n"
            "%1 = exp f32[2] %0\n"
            "%2 = input f32[2]\n"
            "%3 = add f32[2] %1, %2\n"
            "%4 = input f32[2]\n"
            "return %3, %4\n");
  absl::StatusOr<Graph> back = parse_graph(text);
  ASSERT_TRUE(back.ok()) << back.status();
  expect_same_structure(Graph{{out, x}}, *back);
  EXPECT_TRUE(verify(Graph{{out, x}}).ok());
}

TEST(TextPrint, OutputsMayRepeat) {
  expect_round_trip("# smelt IR v1\n%0 = input f32[]\nreturn %0, %0, %0\n");
}

TEST(TextPrint, EmptyGraph) {
  EXPECT_EQ(print_graph(Graph{}), "# smelt IR v1\nreturn\n");
  expect_round_trip("# smelt IR v1\nreturn\n");
}

// ---- parsing
// --------------------------------------------------------------------------------------

TEST(TextParse, HandWrittenFilesRoundTrip) {
  expect_round_trip(
      "# smelt IR v1\n"
      "%0 = input f32[2, 3]\n"
      "%1 = input f32[3]\n"
      "%2 = reshape f32[1, 3] %1\n"
      "%3 = expand f32[2, 3] %2\n"
      "%4 = add f32[2, 3] %0, %3\n"
      "%5 = constant f32[] {value=2.0}\n"
      "%6 = reshape f32[1, 1] %5\n"
      "%7 = expand f32[2, 3] %6\n"
      "%8 = mul f32[2, 3] %4, %7\n"
      "%9 = sum f32[3] %8 {axes=[0], keepdim=false}\n"
      "return %4, %9\n");
  expect_round_trip(
      "# smelt IR v1\n"
      "%0 = input f32[2, 3, 4]\n"
      "%1 = permute f32[4, 2, 3] %0 {perm=[2, 0, 1]}\n"
      "%2 = slice f32[2, 2, 3] %1 {dim=0, end=4, start=0, step=2}\n"
      "%3 = pad f32[2, 2, 6] %2 {after=[0, 0, 2], before=[0, 0, 1], value=-inf}\n"
      "%4 = concat f32[4, 2, 6] %3, %3 {dim=0}\n"
      "%5 = argmax i64[2, 6] %4 {axis=0, keepdim=false}\n"
      "%6 = input i64[3]\n"
      "%7 = index_select f32[4, 3, 6] %4, %6 {dim=1}\n"
      "%8 = cast bool[2, 6] %5\n"
      "%9 = max f32[] %7 {axes=[0, 1, 2], keepdim=false}\n"
      "%10 = input f64[5, 2, 3]\n"
      "%11 = input f64[5, 3, 4]\n"
      "%12 = matmul f64[5, 2, 4] %10, %11\n"
      "return %5, %7, %8, %9, %12\n");
}

TEST(TextParse, FillsInImpliedAttributes) {
  absl::StatusOr<Graph> g = parse_graph(
      "%a = input i32[4]\n"
      "%b = cast f64[4] %a\n"
      "%c = reshape f64[2, 2] %b\n"
      "return %c\n");
  ASSERT_TRUE(g.ok()) << g.status();
  const Node& c = *g->outputs[0];
  EXPECT_EQ(c.attrs().get_ints("shape"), (IntList{2, 2}));
  EXPECT_EQ(c.inputs()[0]->attrs().get_dtype("dtype"), DType::Float64);
  EXPECT_EQ(c.inputs()[0]->inputs()[0]->attrs(),
            (Attrs{{"dtype", DType::Int32}, {"shape", IntList{4}}}));
  // Given explicitly, they are accepted too (and then left out again).
  g = parse_graph("%0 = input i32[4] {dtype=i32, shape=[4]}\nreturn %0\n");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(print_graph(*g), "# smelt IR v1\n%0 = input i32[4]\nreturn %0\n");
}

TEST(TextParse, CommentsBlanksNamesAndLineEndings) {
  absl::StatusOr<Graph> g = parse_graph(
      "# a comment\n"
      "\n"
      "   %x = input f32[2]   # trailing comment\r\n"
      "\t%y_1.b=neg f32[2]%x\r\n"
      "%z = constant f32[] {  value = 1 }\n"
      "   # indented comment\n"
      "return %y_1.b ,%x,%z\n"
      "# after return\n"
      "\n");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(print_graph(*g),
            "# smelt IR v1\n"
            "%0 = input f32[2]\n"
            "%1 = neg f32[2] %0\n"
            "%2 = constant f32[] {value=1.0}\n"
            "return %1, %0, %2\n");
}

TEST(TextParse, DropsNodesThatReturnDoesNotReach) {
  absl::StatusOr<Graph> g = parse_graph("%0 = input f32[2]\n%1 = neg f32[2] %0\nreturn %0\n");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(print_graph(*g), "# smelt IR v1\n%0 = input f32[2]\nreturn %0\n");
}

struct ErrorCase {
  const char* text;
  const char* error;
};

TEST(TextParse, ErrorsSayLineAndColumn) {
  const ErrorCase cases[] = {
      // unknown op
      {"%0 = input f32[2]\n%1 = frobnicate f32[2] %0\nreturn %1\n",
       "line 2, column 6: unknown op 'frobnicate'"},
      // bad dtype
      {"%0 = input f16[2]\nreturn %0\n",
       "line 1, column 12: unknown dtype 'f16[2]' (expected f32, f64, i32, i64 or bool)"},
      {"%0 = input [2]\nreturn %0\n",
       "line 1, column 12: expected a type like f32[2, 3], found '[2]'"},
      {"%0 = input f32\nreturn %0\n",
       "line 1, column 15: expected '[' and the shape after the dtype, found end of line"},
      {"%0 = input f32[2 3]\nreturn %0\n",
       "line 1, column 18: expected ',' or ']' in a list, found '3]'"},
      {"%0 = input f32[2, -3]\nreturn %0\n",
       "line 1, column 15: negative dimension in shape [2, -3]"},
      {"%0 = input f32[4294967296, 4294967296]\nreturn %0\n",
       "line 1, column 15: shape [4294967296, 4294967296] has too many elements"},
      {"%0 = input f32[99999999999999999999]\nreturn %0\n",
       "line 1, column 16: integer 99999999999999999999 is out of range"},
      // undefined and redefined names
      {"%0 = input f32[2]\n%1 = neg f32[2] %7\nreturn %1\n",
       "line 2, column 17: %7 is not defined"},
      {"%0 = input f32[2]\nreturn %0, %1\n", "line 2, column 12: %1 is not defined"},
      {"%0 = input f32[2]\n%0 = neg f32[2] %0\nreturn %0\n",
       "line 2, column 1: %0 is already defined on line 1"},
      {"%0 = input f32[2]\n%1 = neg f32[2] %1\nreturn %1\n",
       "line 2, column 17: %1 is not defined"},
      {"% = input f32[2]\nreturn %0\n", "line 1, column 1: expected a name after '%'"},
      {"%0 input f32[2]\nreturn %0\n", "line 1, column 4: expected '=' after %0, found 'input'"},
      {"%0 = f32[2]\nreturn %0\n", "line 1, column 6: unknown op 'f32'"},
      {"%0 =\nreturn %0\n", "line 1, column 5: expected an op name, found end of line"},
      // wrong operand count
      {"%0 = input f32[2]\n%1 = add f32[2] %0\nreturn %1\n",
       "line 2, column 6: add: takes 2 operands, got 1"},
      {"%0 = input f32[2]\n%1 = input f32[2] %0\nreturn %1\n",
       "line 2, column 6: input: takes 0 operands, got 1"},
      {"%0 = input f32[2]\n%1 = neg f32[2] %0,\nreturn %1\n",
       "line 2, column 20: expected an operand '%name', found end of line"},
      // malformed attributes
      {"%0 = constant f32[] {value=}\nreturn %0\n",
       "line 1, column 28: expected a number, found '}'"},
      {"%0 = constant f32[] {value=1.5.2}\nreturn %0\n",
       "line 1, column 28: expected a number, found '1.5.2}'"},
      {"%0 = constant f32[] {value 1.0}\nreturn %0\n",
       "line 1, column 28: expected '=' after attribute 'value', found '1.0}'"},
      {"%0 = constant f32[] {value=1.0, value=2.0}\nreturn %0\n",
       "line 1, column 33: attribute 'value' is given twice"},
      {"%0 = constant f32[] {valu=1.0}\nreturn %0\n",
       "line 1, column 22: constant: unknown attribute 'valu' (it has dtype, value, shape)"},
      {"%0 = input f32[2]\n%1 = neg f32[2] %0 {x=1}\nreturn %1\n",
       "line 2, column 21: neg: unknown attribute 'x' (it has none)"},
      {"%0 = constant f32[] {value=1.0\nreturn %0\n",
       "line 1, column 31: expected ',' or '}' in the attributes, found end of line"},
      {"%0 = input f32[2]\n%1 = sum f32[] %0 {axes=[0], keepdim=yes}\nreturn %1\n",
       "line 2, column 38: attribute 'keepdim' expects true or false, found 'yes}'"},
      {"%0 = input f32[2]\n%1 = sum f32[] %0 {axes=0, keepdim=true}\nreturn %1\n",
       "line 2, column 25: expected '[' to open a list, found '0,'"},
      {"%0 = input f32[2, 2]\n%1 = slice f32[1, 2] %0 {dim=0.0, end=1, start=0, step=1}\n"
       "return %1\n",
       "line 2, column 30: expected an integer, found '0.0,'"},
      {"%0 = input i32[2]\n%1 = cast f32[2] %0 {dtype=f8}\nreturn %1\n",
       "line 2, column 28: unknown dtype 'f8}' (expected f32, f64, i32, i64 or bool)"},
      {"%0 = constant f32[] {value=1e999}\nreturn %0\n",
       "line 1, column 28: number 1e999 is out of range"},
      {"%0 = constant f32[]\nreturn %0\n", "line 1, column 6: constant: missing attribute 'value'"},
      // type mismatch and type-rule errors
      {"# smelt IR v1\n%0 = input f32[3, 2]\n%1 = input f32[3, 2]\n%2 = add f32[2, 3] %0, %1\n"
       "return %2\n",
       "line 4, column 10: add: printed type f32[2, 3] differs from the inferred f32[3, 2]"},
      {"%0 = input f32[2]\n%1 = neg f64[2] %0\nreturn %1\n",
       "line 2, column 10: neg: printed type f64[2] differs from the inferred f32[2]"},
      {"%0 = input i32[2]\n%1 = cast f64[2] %0 {dtype=f32}\nreturn %1\n",
       "line 2, column 11: cast: printed type f64[2] differs from the inferred f32[2]"},
      // missing return, trailing garbage, text after return
      {"%0 = input f32[2]\n", "line 2, column 1: missing 'return' at the end of the graph"},
      {"", "line 1, column 1: missing 'return' at the end of the graph"},
      {"%0 = input f32[2] junk\nreturn %0\n",
       "line 1, column 19: unexpected 'junk' after the input node"},
      {"%0 = input f32[2]\nreturn %0 %0\n", "line 2, column 11: unexpected '%0' after the outputs"},
      {"%0 = input f32[2]\nreturn %0\n%1 = neg f32[2] %0\n",
       "line 3, column 1: unexpected '%1' after 'return'"},
      {"%0 = input f32[2]\nreturn %0\nreturn %0\n",
       "line 3, column 1: unexpected 'return' after 'return'"},
      {"%0 = input f32[2]\nretur %0\n",
       "line 2, column 1: expected '%name = op ...' or 'return', found 'retur'"},
      {"%0 = input f32[2]\n\x01\n",
       "line 2, column 1: expected '%name = op ...' or 'return', found '\\001'"},
  };
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(parse_error(c.text), c.error) << "for:\n" << c.text;
  }
}

TEST(TextParse, TypeRuleErrorsPointAtTheOp) {
  std::string e = parse_error(
      "%0 = input f32[2, 3]\n"
      "%1 = input f32[3, 2]\n"
      "%2 = add f32[2, 3] %0, %1\n"
      "return %2\n");
  EXPECT_TRUE(absl::StartsWith(e, "line 3, column 6: add: ")) << e;
}

TEST(TextParse, LongChainNeedsNoRecursion) {
  // 100,000 nodes deep: printing, parsing, verifying and freeing are all iterative.
  std::string text = "# smelt IR v1\n%0 = input f32[2]\n";
  const int n = 100000;
  for (int i = 1; i <= n; ++i) absl::StrAppend(&text, "%", i, " = neg f32[2] %", i - 1, "\n");
  absl::StrAppend(&text, "return %", n, "\n");
  absl::StatusOr<Graph> g = parse_graph(text);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(verify(*g).ok());
  EXPECT_EQ(print_graph(*g), text);
  EXPECT_NE(print_dot(*g).find("n100000"), std::string::npos);
}

// ---- random graphs
// --------------------------------------------------------------------------------

// Builds random valid graphs from whatever the registry defines: each step picks an op, operands
// and schema-driven attributes, and keeps the node if its type rule accepts it.
class RandomGraphs {
 public:
  explicit RandomGraphs(uint64_t seed) : rng_(seed) {}

  Graph next() {
    pool_.clear();
    const int inputs = 1 + uniform(0, 2);
    for (int i = 0; i < inputs; ++i) pool_.push_back(random_input());
    const int steps = uniform(1, 25);
    for (int s = 0; s < steps; ++s) {
      for (int attempt = 0; attempt < 40; ++attempt) {
        if (NodePtr n = try_node()) {
          pool_.push_back(n);
          break;
        }
      }
    }
    // Realize a few values, some keeping their inputs as autograd does.
    for (const NodePtr& n : pool_) {
      if (!n->realized() && uniform(0, 12) == 0) {
        n->set_realized(host_buffer(*n), /*keep_inputs=*/uniform(0, 1) == 1);
      }
    }
    Graph g;
    const int outs = uniform(1, 3);
    for (int i = 0; i < outs; ++i) {
      // Mostly late nodes, so the graphs are deep; sometimes any node, or a repeat.
      int lo = std::max(0, static_cast<int>(pool_.size()) - 3);
      g.outputs.push_back(pool_[uniform(uniform(0, 3) == 0 ? 0 : lo, pool_.size() - 1)]);
    }
    return g;
  }

  size_t ops_made(OpCode op) const {
    auto it = made_.find(op);
    return it == made_.end() ? 0 : it->second;
  }

 private:
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  DType random_dtype() {
    // Mostly f32, so that elementwise operands line up.
    static constexpr DType kDTypes[] = {DType::Float32, DType::Float32, DType::Float32,
                                        DType::Float64, DType::Int32,   DType::Int64,
                                        DType::Bool};
    return kDTypes[uniform(0, std::size(kDTypes) - 1)];
  }

  Shape random_shape() {
    Shape s(uniform(0, 3));
    for (int64_t& d : s) d = uniform(1, 4);
    return s;
  }

  NodePtr random_input() {
    DType t = random_dtype();
    Shape s = random_shape();
    if (uniform(0, 4) == 0) {
      // Data that already exists.
      return Node::make_input(
          t, s, base::Buffer::allocate_host(std::max<size_t>(1, numel(s) * dtype_size(t))));
    }
    return make(OpCode::Input, {}, Attrs{{"dtype", t}, {"shape", s}});
  }

  double random_value() {
    static constexpr double kValues[] = {0.5, -1.25, 1e-5, 1e20, 3.0, 0.1, -0.0, 0.0, 7.0};
    switch (uniform(0, 9)) {
      case 0:
        return std::numeric_limits<double>::infinity();
      case 1:
        return -std::numeric_limits<double>::infinity();
      case 2:
        return std::numeric_limits<double>::quiet_NaN();
      case 3:
        return std::uniform_real_distribution<double>(-10, 10)(rng_);
      default:
        return kValues[uniform(0, std::size(kValues) - 1)];
    }
  }

  IntList random_axes(int64_t rank) {
    IntList axes;
    for (int64_t d = 0; d < rank; ++d) {
      if (uniform(0, 1)) axes.push_back(uniform(0, 3) == 0 ? d - rank : d);
    }
    return axes;
  }

  // A shape for reshape or expand of `x`.
  IntList random_target_shape(const Shape& x) {
    IntList s = x;
    switch (uniform(0, 4)) {
      case 0:
        return IntList{numel(x)};  // flatten
      case 1:
        s.insert(s.begin() + uniform(0, s.size()), 1);
        return s;  // unsqueeze
      case 2:      // expand 1s
        for (int64_t& d : s) {
          if (d == 1) d = uniform(1, 3);
        }
        return s;
      case 3:  // squeeze
        s.erase(std::remove(s.begin(), s.end(), 1), s.end());
        return s;
      default:
        return random_shape();
    }
  }

  // Attributes by the schema: the conventional names get values likely to type-check for
  // operand `x`; anything else a random value of its kind.
  AttrValue random_attr(const AttrSpec& spec, const Node& x) {
    const int64_t rank = x.rank();
    auto dim = [&]() -> int64_t { return rank == 0 ? 0 : uniform(-rank, rank - 1); };
    const absl::string_view n = spec.name;
    switch (spec.kind) {
      case AttrKind::Bool:
        return uniform(0, 1) == 1;
      case AttrKind::DType:
        return random_dtype();
      case AttrKind::Float:
        return random_value();
      case AttrKind::Int:
        if (n == "dim" || n == "axis") return dim();
        if (n == "start") return int64_t{uniform(0, 2)};
        if (n == "end") return int64_t{uniform(1, 4)};
        if (n == "step") return int64_t{uniform(1, 2)};
        return int64_t{uniform(-2, 3)};
      case AttrKind::IntList: {
        if (n == "shape") return random_target_shape(x.shape());
        if (n == "axes") return random_axes(rank);
        if (n == "perm") {
          IntList p(rank);
          for (int64_t i = 0; i < rank; ++i) p[i] = i;
          std::shuffle(p.begin(), p.end(), rng_);
          return p;
        }
        IntList v(rank);
        for (int64_t& d : v) d = uniform(0, 2);
        return v;
      }
    }
    return false;
  }

  NodePtr try_node() {
    if (uniform(0, 10) == 0) return random_input();
    if (uniform(0, 10) == 0) {
      Attrs attrs{{"dtype", random_dtype()}, {"value", random_value()}};
      // Half of them at a shape, as the frontend builds a scalar operand.
      if (Shape s = random_shape(); !s.empty() && uniform(0, 1)) attrs.set("shape", s);
      return make(OpCode::Constant, {}, std::move(attrs));
    }
    const OpDef& def = op_def(static_cast<OpCode>(uniform(0, kNumOps - 1)));
    if (def.infer == nullptr || def.min_inputs == 0) return nullptr;
    const int arity = def.max_inputs < 0 ? uniform(def.min_inputs, def.min_inputs + 2)
                                         : uniform(def.min_inputs, def.max_inputs);
    std::vector<NodePtr> ins;
    ins.push_back(pool_[uniform(0, pool_.size() - 1)]);
    for (int i = 1; i < arity; ++i) {
      // Prefer operands of the first one's type, so elementwise ops type-check.
      std::vector<NodePtr> same;
      for (const NodePtr& p : pool_) {
        if (p->type() == ins[0]->type()) same.push_back(p);
      }
      ins.push_back(uniform(0, 4) > 0 ? same[uniform(0, same.size() - 1)]
                                      : pool_[uniform(0, pool_.size() - 1)]);
    }
    // where's condition is Bool: sometimes put one first.
    if (arity == 3 && uniform(0, 1)) {
      for (const NodePtr& p : pool_) {
        if (p->dtype() == DType::Bool && p->shape() == ins[1]->shape()) ins[0] = p;
      }
    }
    Attrs attrs;
    for (const AttrSpec& spec : def.attrs) attrs.set(spec.name, random_attr(spec, *ins[0]));
    absl::StatusOr<NodePtr> n = Node::make(def.code, std::move(ins), std::move(attrs));
    if (!n.ok()) return nullptr;
    ++made_[def.code];
    return *n;
  }

  std::mt19937_64 rng_;
  std::vector<NodePtr> pool_;
  absl::flat_hash_map<OpCode, size_t> made_;
};

TEST(TextRandom, RandomGraphsRoundTrip) {
  RandomGraphs gen(42);
  for (int i = 0; i < 400; ++i) {
    Graph g = gen.next();
    ASSERT_TRUE(verify(g).ok()) << verify(g);
    const std::string text = print_graph(g);
    absl::StatusOr<Graph> back = parse_graph(text);
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
    ASSERT_TRUE(verify(*back).ok()) << verify(*back);
    ASSERT_NO_FATAL_FAILURE(expect_same_structure(g, *back)) << text;
    ASSERT_EQ(print_graph(*back), text);
  }
  // The generator reaches the families it is meant to exercise.
  for (OpCode op : {OpCode::Add, OpCode::Neg, OpCode::Reshape, OpCode::Expand, OpCode::Permute,
                    OpCode::Slice, OpCode::Sum, OpCode::Cast}) {
    if (op_def(op).infer != nullptr) EXPECT_GT(gen.ops_made(op), 0u) << op_name(op);
  }
}

TEST(TextRandom, MutatedTextNeverCrashes) {
  // Parse errors must be statuses: truncations, byte flips, line deletions and swaps of valid
  // files must never crash or read out of bounds.
  RandomGraphs gen(7);
  std::mt19937_64 rng(99);
  static constexpr char kAlphabet[] = "%=,{}[]# \n\t-.e0123456789abfinxr\x00\x7f\xff";
  const std::string alphabet(kAlphabet, sizeof kAlphabet - 1);
  int accepted = 0;
  for (int i = 0; i < 60; ++i) {
    const std::string text = print_graph(gen.next());
    for (size_t cut = 0; cut < text.size(); cut += 1 + text.size() / 97) {
      (void)parse_graph(absl::string_view(text).substr(0, cut));
    }
    for (int m = 0; m < 150; ++m) {
      std::string t = text;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits; ++e) {
        const size_t at = rng() % t.size();
        switch (rng() % 4) {
          case 0:
            t[at] = alphabet[rng() % alphabet.size()];
            break;
          case 1:
            t[at] = static_cast<char>(rng());
            break;
          case 2:
            t.erase(at, 1 + rng() % 5);
            break;
          default:
            t.insert(at, 1, alphabet[rng() % alphabet.size()]);
            break;
        }
        if (t.empty()) t = "%";
      }
      absl::StatusOr<Graph> g = parse_graph(t);
      if (g.ok()) {
        ++accepted;
        // Whatever parses is a valid graph, and prints to text that parses to the same.
        EXPECT_TRUE(verify(*g).ok()) << verify(*g);
        absl::StatusOr<Graph> again = parse_graph(print_graph(*g));
        ASSERT_TRUE(again.ok()) << again.status();
        EXPECT_EQ(print_graph(*again), print_graph(*g));
      }
    }
    // Whole lines deleted or swapped: undefined names, missing returns.
    std::vector<std::string> lines = absl::StrSplit(text, '\n');
    for (int m = 0; m < 20; ++m) {
      std::vector<std::string> l = lines;
      const size_t a = rng() % l.size(), b = rng() % l.size();
      if (m % 2) {
        std::swap(l[a], l[b]);
      } else {
        l.erase(l.begin() + a);
      }
      (void)parse_graph(absl::StrJoin(l, "\n"));
    }
  }
  EXPECT_GT(accepted, 0);  // some mutations (a digit in a value) still parse
}

// ---- DOT
// ------------------------------------------------------------------------------------------

TEST(Dot, OneBoxPerNodeAndOneEdgePerOperand) {
  absl::StatusOr<Graph> g = parse_graph(
      "%0 = input f32[2, 3]\n"
      "%1 = sum f32[3] %0 {axes=[0], keepdim=false}\n"
      "%2 = mul f32[2, 3] %0, %0\n"
      "return %1, %2\n");
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string dot = print_dot(*g);
  EXPECT_TRUE(absl::StartsWith(dot, "digraph smelt {\n")) << dot;
  EXPECT_TRUE(absl::EndsWith(dot, "}\n")) << dot;
  EXPECT_NE(dot.find("n0 [label=\"%0 input f32[2, 3]\"];"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n1 [label=\"%1 sum f32[3]\\n{axes=[0], keepdim=false}\"];"),
            std::string::npos)
      << dot;
  EXPECT_NE(dot.find("n0 -> n1;"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n0 -> n2 [label=\"0\"];"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n0 -> n2 [label=\"1\"];"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n1 -> out0;"), std::string::npos) << dot;
  EXPECT_NE(dot.find("n2 -> out1;"), std::string::npos) << dot;
  size_t edges = 0;
  for (size_t at = dot.find("->"); at != std::string::npos; at = dot.find("->", at + 1)) ++edges;
  EXPECT_EQ(edges, 5u);  // 1 + 2 operand edges, 2 outputs
}

TEST(Dot, RealizedNodesAreGreyInputs) {
  NodePtr x = input(DType::Float32, {2});
  NodePtr n = make(OpCode::Neg, {x});
  n->set_realized(host_buffer(*n));
  const std::string dot = print_dot(Graph{{make(OpCode::Exp, {n})}});
  EXPECT_NE(dot.find("n0 [label=\"%0 input f32[2]\", style=filled, fillcolor=lightgrey];"),
            std::string::npos)
      << dot;
}

}  // namespace
}  // namespace smelt::ir
