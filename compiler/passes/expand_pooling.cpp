#include "compiler/passes/expand_pooling.h"

#include <utility>
#include <vector>

#include "compiler/passes/rebuild.h"
#include "ir/attrs.h"

namespace smelt::compiler {
namespace {

using ir::NodePtr;
using ir::OpCode;

bool is_plain(const ir::Node& n) {
  if (n.op() != OpCode::MaxPool2d) return false;
  const ir::Attrs& a = n.attrs();
  const ir::IntList two{2, 2};
  return a.get_ints("kernel_size") == two && a.get_ints("stride") == two &&
         a.get_ints("padding") == ir::IntList{0, 0} && a.get_ints("dilation") == ir::IntList{1, 1};
}

// Builds the expansion of one node on `device`.
class Expander {
 public:
  explicit Expander(Device device) : device_(device) {}

  NodePtr op(OpCode code, std::vector<NodePtr> inputs, ir::Attrs attrs = {}) {
    return make_or_die(code, std::move(inputs), std::move(attrs), device_);
  }

  // The four elements of every window of x [N, C, H, W] (rows and a column past the last whole
  // window dropped), each [N, C, OH, OW], in row-major window order.
  std::vector<NodePtr> window_elements(const NodePtr& x) {
    const ir::Shape& s = x->shape();
    const int64_t n = s[0], c = s[1], oh = s[2] / 2, ow = s[3] / 2;
    NodePtr whole = x;
    if (s[2] != 2 * oh) whole = slice(whole, 2, 0, 2 * oh);
    if (s[3] != 2 * ow) whole = slice(whole, 3, 0, 2 * ow);
    NodePtr six = op(OpCode::Reshape, {whole}, {{"shape", ir::IntList{n, c, oh, 2, ow, 2}}});
    std::vector<NodePtr> out;
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        NodePtr e = slice(slice(six, 3, i, i + 1), 5, j, j + 1);
        out.push_back(op(OpCode::Reshape, {e}, {{"shape", ir::IntList{n, c, oh, ow}}}));
      }
    }
    return out;
  }

  // The maximum of each window under PyTorch's rule: the first element starts it, a later one
  // replaces it when greater or NaN (so a NaN anywhere gives NaN, as the library call does).
  NodePtr window_max(const std::vector<NodePtr>& v) {
    NodePtr best = v[0];
    for (size_t k = 1; k < v.size(); ++k) {
      NodePtr take =
          op(OpCode::LogicalOr, {op(OpCode::Gt, {v[k], best}), op(OpCode::Ne, {v[k], v[k]})});
      best = op(OpCode::Where, {take, v[k], best});
    }
    return best;
  }

 private:
  NodePtr slice(const NodePtr& x, int64_t dim, int64_t start, int64_t end) {
    return op(OpCode::Slice, {x},
              {{"dim", dim}, {"start", start}, {"end", end}, {"step", int64_t{1}}});
  }

  Device device_;
};

}  // namespace

ir::Graph expand_pooling(const ir::Graph& graph, int64_t* expanded) {
  int64_t count = 0;
  ir::Graph out = rebuild_graph(graph, [&](const ir::Node& n, const std::vector<NodePtr>& in) {
    if (!is_plain(n) || n.numel() == 0) return NodePtr();
    ++count;
    Expander e(n.device());
    return e.window_max(e.window_elements(in[0]));
  });
  if (expanded != nullptr) *expanded = count;
  return out;
}

}  // namespace smelt::compiler
