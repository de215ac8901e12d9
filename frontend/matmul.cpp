// matmul with torch.matmul's rules, lowered to the IR's batched matmul, which wants operands of
// equal rank >= 2 with equal batch dims: vectors get a dim of 1, batch dims are broadcast by
// views, and the result is reshaped back.
#include <smelt/error.h>
#include <smelt/ops.h>

#include "absl/strings/str_cat.h"
#include "frontend/broadcast.h"
#include "frontend/graph_builder.h"

namespace smelt {

Tensor matmul(const Tensor& a, const Tensor& b) {
  ir::NodePtr x = detail::node_of(a, "matmul");
  ir::NodePtr y = detail::node_of(b, "matmul");
  const std::string shapes =
      absl::StrCat(ir::shape_str(x->shape()), " by ", ir::shape_str(y->shape()));
  if (x->rank() == 0 || y->rank() == 0) {
    throw Error(absl::StrCat("matmul: cannot multiply ", shapes,
                             ": both operands need at least 1 dim (use * to scale by a 0-d)"));
  }
  const DType dtype = promote_types(x->dtype(), y->dtype());
  if (dtype == DType::Bool) {
    throw Error(absl::StrCat("matmul: cannot multiply ", shapes,
                             ": not supported for bool tensors; convert with .to(...) first"));
  }
  const Device device = detail::common_device("matmul", {detail::Operand(x), detail::Operand(y)});

  // Vectors become matrices: [k] is [1, k] on the left and [k, 1] on the right.
  ir::Shape xs = x->shape();
  ir::Shape ys = y->shape();
  const bool x_vector = xs.size() == 1;
  const bool y_vector = ys.size() == 1;
  if (x_vector) xs.insert(xs.begin(), 1);
  if (y_vector) ys.push_back(1);
  const int64_t m = xs[xs.size() - 2];
  const int64_t k = xs.back();
  const int64_t n = ys.back();
  if (k != ys[ys.size() - 2]) {
    throw Error(absl::StrCat("matmul: cannot multiply ", shapes, ": inner dimensions ", k, " and ",
                             ys[ys.size() - 2], " differ"));
  }
  const ir::Shape x_batch(xs.begin(), xs.end() - 2);
  const ir::Shape y_batch(ys.begin(), ys.end() - 2);
  absl::StatusOr<ir::Shape> batch = ir::broadcast_shapes("matmul", x_batch, y_batch);
  if (!batch.ok()) {
    throw Error(absl::StrCat("matmul: cannot multiply ", shapes, ": batch dims ",
                             ir::shape_str(x_batch), " and ", ir::shape_str(y_batch),
                             " cannot be broadcast (sizes must match or one must be 1)"));
  }

  ir::Shape x_full = *batch;
  x_full.insert(x_full.end(), {m, k});
  ir::Shape y_full = *batch;
  y_full.insert(y_full.end(), {k, n});
  x = detail::broadcast_node(detail::reshape_node(detail::cast_node(std::move(x), dtype), xs),
                             x_full);
  y = detail::broadcast_node(detail::reshape_node(detail::cast_node(std::move(y), dtype), ys),
                             y_full);
  ir::NodePtr r = detail::make_node(ir::OpCode::Matmul, {std::move(x), std::move(y)}, {}, device);

  ir::Shape out = *batch;
  if (!x_vector) out.push_back(m);
  if (!y_vector) out.push_back(n);
  return detail::wrap(detail::reshape_node(std::move(r), out));
}

Tensor Tensor::matmul(const Tensor& other) const { return smelt::matmul(*this, other); }

}  // namespace smelt
