// Tensor: properties, reading values out, dtype conversion, and the method forms of the ops.
#include <smelt/error.h>
#include <smelt/ops.h>
#include <smelt/tensor.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"

namespace smelt {
namespace {

// One element converted to Dst like a cast, except that a value Dst cannot hold throws (like
// c10::checked_convert, which LibTorch's item() uses): no silent wrap-around or UB.
template <typename Dst, typename Src>
Dst convert_element(Src v, const char* op, DType to) {
  if constexpr (std::is_same_v<Dst, uint8_t>) {  // Bool
    return v != 0;
  } else if constexpr (std::is_integral_v<Dst>) {
    const bool fits = [&] {
      if constexpr (std::is_floating_point_v<Src>) {
        const double t = std::trunc(static_cast<double>(v));
        const double lo = static_cast<double>(std::numeric_limits<Dst>::min());
        return t >= lo && t < -lo;  // false for NaN
      } else {
        return static_cast<int64_t>(v) >= std::numeric_limits<Dst>::min() &&
               static_cast<int64_t>(v) <= std::numeric_limits<Dst>::max();
      }
    }();
    if (!fits) {
      throw Error(absl::StrCat(op, ": the value ", static_cast<double>(v),
                               " cannot be converted to ", dtype_name(to), " without overflow"));
    }
    return static_cast<Dst>(v);
  } else {
    return static_cast<Dst>(v);
  }
}

template <typename Src, typename Dst>
void convert_all(const void* src, void* dst, int64_t count, const char* op, DType to) {
  const Src* s = static_cast<const Src*>(src);
  Dst* d = static_cast<Dst*>(dst);
  for (int64_t k = 0; k < count; ++k) d[k] = convert_element<Dst>(s[k], op, to);
}

// Calls f(Src{}) with the C++ type that stores `t` (Bool as uint8_t).
template <typename F>
void with_storage_type(DType t, F&& f) {
  switch (t) {
    case DType::Bool:
      f(uint8_t{});
      return;
    case DType::Int32:
      f(int32_t{});
      return;
    case DType::Int64:
      f(int64_t{});
      return;
    case DType::Float32:
      f(float{});
      return;
    case DType::Float64:
      f(double{});
      return;
  }
}

}  // namespace

// ---- properties ---------------------------------------------------------------------------------

std::vector<int64_t> Tensor::shape() const { return detail::node_of(*this, "shape")->shape(); }
int64_t Tensor::dim() const { return detail::node_of(*this, "dim")->rank(); }
int64_t Tensor::numel() const { return detail::node_of(*this, "numel")->numel(); }
DType Tensor::dtype() const { return detail::node_of(*this, "dtype")->dtype(); }
Device Tensor::device() const { return detail::node_of(*this, "device")->device(); }

int64_t Tensor::size(int64_t dim) const {
  ir::NodePtr n = detail::node_of(*this, "size");
  const int64_t axis = detail::normalize_dim("size", dim, n->rank());
  return n->rank() == 0 ? 1 : n->shape()[axis];
}

// ---- reading values -------------------------------------------------------------------------

void Tensor::read_into(DType as, void* out, int64_t count, const char* op) const {
  ir::NodePtr n = detail::node_of(*this, op);
  const bool is_item = std::strcmp(op, "item") == 0;
  if (is_item && n->numel() != 1) {
    throw Error(absl::StrCat("item: tensor has ", n->numel(),
                             " elements; only a one-element tensor converts to a scalar"));
  }
  detail::realize_nodes(detail::with_companions({*this}, {n}),
                        is_item ? compiler::EvalReason::kItem : compiler::EvalReason::kToVector);
  const base::BufferPtr buffer = detail::host_buffer(n, op);
  with_storage_type(n->dtype(), [&](auto src) {
    with_storage_type(as, [&](auto dst) {
      convert_all<decltype(src), decltype(dst)>(buffer->data(), out, count, op, as);
    });
  });
}

const Tensor& Tensor::eval() const {
  detail::realize_nodes(detail::with_companions({*this}, {detail::node_of(*this, "eval")}),
                        compiler::EvalReason::kExplicit);
  return *this;
}

// ---- conversion -------------------------------------------------------------------------------

Tensor Tensor::to(DType dtype) const {
  ir::NodePtr n = detail::node_of(*this, "to");
  if (n->dtype() == dtype) return *this;
  return detail::wrap(detail::cast_node(std::move(n), dtype));
}

// ---- method forms of the free functions -------------------------------------------------------

Tensor Tensor::exp() const { return smelt::exp(*this); }
Tensor Tensor::log() const { return smelt::log(*this); }
Tensor Tensor::sqrt() const { return smelt::sqrt(*this); }
Tensor Tensor::rsqrt() const { return smelt::rsqrt(*this); }
Tensor Tensor::abs() const { return smelt::abs(*this); }
Tensor Tensor::floor() const { return smelt::floor(*this); }
Tensor Tensor::ceil() const { return smelt::ceil(*this); }
Tensor Tensor::round(int64_t decimals) const { return smelt::round(*this, decimals); }
Tensor Tensor::trunc() const { return smelt::trunc(*this); }
Tensor Tensor::frac() const { return smelt::frac(*this); }
Tensor Tensor::neg() const { return smelt::neg(*this); }
Tensor Tensor::tanh() const { return smelt::tanh(*this); }
Tensor Tensor::sigmoid() const { return smelt::sigmoid(*this); }
Tensor Tensor::relu() const { return smelt::relu(*this); }
Tensor Tensor::sin() const { return smelt::sin(*this); }
Tensor Tensor::cos() const { return smelt::cos(*this); }
Tensor Tensor::pow(Scalar exponent) const { return smelt::pow(*this, exponent); }
Tensor Tensor::pow(const Tensor& exponent) const { return smelt::pow(*this, exponent); }
Tensor Tensor::clamp(Scalar lo, Scalar hi) const { return smelt::clamp(*this, lo, hi); }

}  // namespace smelt
