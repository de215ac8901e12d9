#include "ir/reference.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/graph.h"

namespace smelt::ir {

RefTensor RefTensor::zeros(DType dtype, Shape shape) {
  RefTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  if (is_floating(dtype)) {
    t.f.assign(t.numel(), 0.0);
  } else {
    t.i.assign(t.numel(), 0);
  }
  return t;
}

int64_t float_to_int(double v, DType to) {
  const double lo = to == DType::Int32 ? -2147483648.0 : -9223372036854775808.0;
  const double hi = -lo;  // exclusive: 2^31 or 2^63
  if (!(v > lo - 1.0 && v < hi)) {
    // NaN, inf and out-of-range values: what x86's cvtt* instructions (and so PyTorch on the
    // CPU) produce, instead of C++'s undefined behaviour.
    return to == DType::Int32 ? std::numeric_limits<int32_t>::min()
                              : std::numeric_limits<int64_t>::min();
  }
  return static_cast<int64_t>(v);
}

void RefTensor::set(int64_t k, double v) {
  switch (dtype) {
    case DType::Float64:
      f[k] = v;
      break;
    case DType::Float32:
      f[k] = static_cast<double>(static_cast<float>(v));
      break;
    case DType::Bool:
      i[k] = v != 0.0;
      break;
    case DType::Int32:
    case DType::Int64:
      i[k] = float_to_int(v, dtype);
      break;
  }
}

void RefTensor::set_int(int64_t k, int64_t v) {
  switch (dtype) {
    case DType::Float64:
    case DType::Float32:
      set(k, static_cast<double>(v));
      break;
    case DType::Bool:
      i[k] = v != 0;
      break;
    case DType::Int32:
      i[k] = static_cast<int32_t>(v);
      break;
    case DType::Int64:
      i[k] = v;
      break;
  }
}

RefTensor ref_from_memory(DType dtype, Shape shape, const void* data) {
  RefTensor t = RefTensor::zeros(dtype, std::move(shape));
  const int64_t n = t.numel();
  // An empty vector's data() may be null, and memcpy with a null pointer is UB even for 0 bytes.
  if (n == 0) return t;
  switch (dtype) {
    case DType::Float32: {
      const float* p = static_cast<const float*>(data);
      for (int64_t k = 0; k < n; ++k) t.f[k] = p[k];
      break;
    }
    case DType::Float64:
      std::memcpy(t.f.data(), data, n * sizeof(double));
      break;
    case DType::Int32: {
      const int32_t* p = static_cast<const int32_t*>(data);
      for (int64_t k = 0; k < n; ++k) t.i[k] = p[k];
      break;
    }
    case DType::Int64:
      std::memcpy(t.i.data(), data, n * sizeof(int64_t));
      break;
    case DType::Bool: {
      const uint8_t* p = static_cast<const uint8_t*>(data);
      for (int64_t k = 0; k < n; ++k) t.i[k] = p[k] != 0;
      break;
    }
  }
  return t;
}

void ref_to_memory(const RefTensor& t, void* data) {
  const int64_t n = t.numel();
  if (n == 0) return;  // as above: no memcpy from an empty vector's null data()
  switch (t.dtype) {
    case DType::Float32: {
      float* p = static_cast<float*>(data);
      for (int64_t k = 0; k < n; ++k) p[k] = static_cast<float>(t.f[k]);
      break;
    }
    case DType::Float64:
      std::memcpy(data, t.f.data(), n * sizeof(double));
      break;
    case DType::Int32: {
      int32_t* p = static_cast<int32_t*>(data);
      for (int64_t k = 0; k < n; ++k) p[k] = static_cast<int32_t>(t.i[k]);
      break;
    }
    case DType::Int64:
      std::memcpy(data, t.i.data(), n * sizeof(int64_t));
      break;
    case DType::Bool: {
      uint8_t* p = static_cast<uint8_t*>(data);
      for (int64_t k = 0; k < n; ++k) p[k] = t.i[k] != 0;
      break;
    }
  }
}

absl::StatusOr<std::vector<RefTensor>> reference_evaluate(absl::Span<const NodePtr> roots,
                                                          const LeafValues* leaves) {
  const std::vector<Node*> order = topo_order(roots);
  absl::flat_hash_map<const Node*, RefTensor> values;
  values.reserve(order.size());
  // Free each intermediate once its last user has run, so big graphs evaluate in bounded memory.
  absl::flat_hash_map<const Node*, int> uses;
  for (Node* n : order) {
    for (const NodePtr& in : n->inputs()) ++uses[in.get()];
  }
  for (const NodePtr& r : roots) ++uses[r.get()];

  std::vector<const RefTensor*> args;
  for (Node* n : order) {
    if (base::BufferPtr buf = n->buffer()) {
      if (!buf->device().is_cpu()) {
        return absl::FailedPreconditionError(absl::StrCat("reference evaluator: a ", n->def().name,
                                                          " value lives on ", buf->device().str(),
                                                          "; only CPU data can be read"));
      }
      values[n] = ref_from_memory(n->dtype(), n->shape(), buf->data());
      continue;
    }
    if (n->op() == OpCode::Input) {
      auto it = leaves ? leaves->find(n) : LeafValues::const_iterator();
      if (leaves == nullptr || it == leaves->end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("reference evaluator: input ", shape_str(n->shape()), " has no value"));
      }
      values[n] = it->second;
      continue;
    }
    args.clear();
    for (const NodePtr& in : n->inputs()) args.push_back(&values.at(in.get()));
    absl::StatusOr<RefTensor> out = n->def().ref_eval(args, n->attrs(), n->type());
    if (!out.ok()) return out.status();
    values[n] = *std::move(out);
    for (const NodePtr& in : n->inputs()) {
      if (--uses[in.get()] == 0) values.erase(in.get());
    }
  }
  std::vector<RefTensor> result;
  result.reserve(roots.size());
  for (const NodePtr& r : roots) result.push_back(values.at(r.get()));
  return result;
}

}  // namespace smelt::ir
