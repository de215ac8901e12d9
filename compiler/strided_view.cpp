#include "compiler/strided_view.h"

#include <algorithm>

#include "ir/shape.h"

namespace smelt::compiler {
namespace {

bool is_view_op(const ir::Node* n) {
  if (n->is_leaf()) return false;
  switch (n->op()) {
    case ir::OpCode::Reshape:
    case ir::OpCode::Permute:
    case ir::OpCode::Expand:
    case ir::OpCode::Slice:
      return true;
    default:
      return false;
  }
}

// Strides for viewing (shape, strides) as `target` without copying, if possible: each group of
// target dims must come from a group of source dims that are mutually contiguous. Size-1 dims
// take any stride.
std::optional<std::vector<int64_t>> reshape_strides(const std::vector<int64_t>& shape,
                                                    const std::vector<int64_t>& strides,
                                                    const std::vector<int64_t>& target) {
  std::vector<int64_t> out(target.size(), 0);
  // Drop size-1 source dims: they constrain nothing.
  std::vector<int64_t> s, st;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 1) {
      s.push_back(shape[i]);
      st.push_back(strides[i]);
    }
  }
  size_t si = 0;
  size_t ti = 0;
  while (ti < target.size()) {
    if (target[ti] == 1) {
      out[ti++] = 0;
      continue;
    }
    if (si >= s.size()) return std::nullopt;
    // Take source dims until their product covers the next target dims' product.
    int64_t src_prod = s[si];
    size_t s_end = si + 1;
    int64_t tgt_prod = target[ti];
    size_t t_end = ti + 1;
    while (src_prod != tgt_prod) {
      if (src_prod < tgt_prod) {
        if (s_end >= s.size()) return std::nullopt;
        // Merging source dims needs them contiguous with each other.
        if (st[s_end - 1] != st[s_end] * s[s_end]) return std::nullopt;
        src_prod *= s[s_end++];
      } else {
        if (t_end >= target.size()) return std::nullopt;
        tgt_prod *= target[t_end++];
      }
    }
    // The group [si, s_end) is contiguous with innermost stride st[s_end-1]; split it into the
    // target dims [ti, t_end) row-major.
    int64_t stride = st[s_end - 1];
    for (size_t k = t_end; k-- > ti;) {
      out[k] = target[k] == 1 ? 0 : stride;
      stride *= target[k];
    }
    si = s_end;
    ti = t_end;
  }
  if (si != s.size()) return std::nullopt;
  return out;
}

}  // namespace

std::optional<StridedView> as_strided_view(const ir::Node* n,
                                           const std::function<bool(const ir::Node*)>& is_buffer) {
  // Collect the chain outermost-first, then apply it innermost-first.
  std::vector<const ir::Node*> chain;
  const ir::Node* base = n;
  while (is_view_op(base) && !(is_buffer && is_buffer(base))) {
    chain.push_back(base);
    base = base->inputs()[0].get();
  }
  StridedView v{base, base->shape(), ir::contiguous_strides(base->shape()), 0};
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const ir::Node* op = *it;
    const ir::Attrs& a = op->attrs();
    switch (op->op()) {
      case ir::OpCode::Reshape: {
        auto st = reshape_strides(v.shape, v.strides, op->shape());
        if (!st) return std::nullopt;
        v.strides = *st;
        break;
      }
      case ir::OpCode::Permute: {
        const auto& perm = a.get_ints("perm");
        std::vector<int64_t> st(perm.size());
        for (size_t i = 0; i < perm.size(); ++i) st[i] = v.strides[perm[i]];
        v.strides = st;
        break;
      }
      case ir::OpCode::Expand: {
        for (size_t d = 0; d < v.shape.size(); ++d) {
          if (v.shape[d] == 1 && op->shape()[d] != 1) v.strides[d] = 0;
        }
        break;
      }
      case ir::OpCode::Slice: {
        const int64_t dim = a.get_int("dim");
        v.offset += a.get_int("start") * v.strides[dim];
        v.strides[dim] *= a.get_int("step");
        break;
      }
      default:
        return std::nullopt;
    }
    v.shape = op->shape();
  }
  return v;
}

const ir::Node* reshaped_buffer(const ir::Node* n,
                                const std::function<bool(const ir::Node*)>& is_buffer) {
  for (;;) {
    if (is_buffer(n)) return n;
    if (n->is_leaf() || n->op() != ir::OpCode::Reshape) return nullptr;
    n = n->inputs()[0].get();
  }
}

const ir::Node* reshape_base(const ir::Node* n) {
  while (!n->is_leaf() && n->op() == ir::OpCode::Reshape) n = n->inputs()[0].get();
  return n;
}

}  // namespace smelt::compiler
