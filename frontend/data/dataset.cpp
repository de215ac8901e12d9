// Datasets and collation: Dataset's default batch, default_collate, TensorDataset and
// TransformDataset.
#include <smelt/creation.h>
#include <smelt/data.h>
#include <smelt/error.h>
#include <smelt/ops.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "frontend/data/host_tensor.h"
#include "ir/shape.h"

namespace smelt::data {
namespace {

using detail::HostData;

// Stacks one field (data or target) of every example. Examples either all have it or none do.
Tensor stack_field(const std::vector<Example>& examples, Tensor Example::*field, const char* name) {
  const Tensor& first = examples.front().*field;
  for (size_t i = 1; i < examples.size(); ++i) {
    const Tensor& t = examples[i].*field;
    if (t.defined() != first.defined()) {
      throw Error(absl::StrCat("default_collate: example ", i, (t.defined() ? " has " : " has no "),
                               name, " but example 0 ",
                               (first.defined() ? "has one" : "has none")));
    }
    if (!t.defined()) continue;
    if (t.shape() != first.shape() || t.dtype() != first.dtype() || t.device() != first.device()) {
      throw Error(absl::StrCat("default_collate: example ", i, "'s ", name, " is ",
                               dtype_name(t.dtype()), " ", ir::shape_str(t.shape()), " on ",
                               t.device().str(), " but example 0's is ", dtype_name(first.dtype()),
                               " ", ir::shape_str(first.shape()), " on ", first.device().str(),
                               "; examples of different shapes need a custom collate function"));
    }
  }
  if (!first.defined()) return Tensor();

  std::vector<Tensor> tensors;
  tensors.reserve(examples.size());
  for (const Example& e : examples) tensors.push_back(e.*field);
  if (!first.device().is_cpu()) return stack(tensors, 0);

  // One copy into one buffer: stack() of B pending slices would be a B-way join in the graph.
  detail::realize_all(tensors, "default_collate");
  const size_t row_bytes = static_cast<size_t>(first.numel()) * dtype_size(first.dtype());
  base::BufferPtr out = detail::allocate_host(row_bytes * tensors.size(), "default_collate");
  auto* dst = static_cast<uint8_t*>(out->data());
  for (const Tensor& t : tensors) {
    const HostData h = detail::host_data(t, "default_collate");
    if (row_bytes > 0) std::memcpy(dst, h.data, row_bytes);
    dst += row_bytes;
  }
  std::vector<int64_t> shape = first.shape();
  shape.insert(shape.begin(), static_cast<int64_t>(tensors.size()));
  return detail::make_tensor(first.dtype(), std::move(shape), std::move(out));
}

// Rows `indices` of `t` (along dim 0) as one new tensor: [indices.size(), ...], or without the
// leading dim for a single example (`keep_dim` false).
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& indices, bool keep_dim) {
  std::vector<int64_t> shape = t.shape();
  if (keep_dim) {
    shape[0] = static_cast<int64_t>(indices.size());
  } else {
    shape.erase(shape.begin());
  }
  if (!t.device().is_cpu()) {
    // On the device: one index_select (its graph is the same for every batch of a size).
    Tensor rows = t.index_select(0, from_vector(indices).to(t.device()));
    return keep_dim ? rows : rows.reshape(shape);
  }
  const HostData h = detail::host_data(t, "TensorDataset");
  const int64_t n = h.shape[0];
  const size_t row_bytes =
      n == 0 ? 0 : static_cast<size_t>(ir::numel(h.shape) / n) * dtype_size(h.dtype);
  base::BufferPtr out = detail::allocate_host(row_bytes * indices.size(), "TensorDataset");
  auto* dst = static_cast<uint8_t*>(out->data());
  for (int64_t i : indices) {
    if (row_bytes > 0) std::memcpy(dst, h.data + static_cast<size_t>(i) * row_bytes, row_bytes);
    dst += row_bytes;
  }
  return detail::make_tensor(h.dtype, std::move(shape), std::move(out));
}

}  // namespace

// ---- Dataset and collation --------------------------------------------------------------------

Example Dataset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (int64_t i : indices) examples.push_back(get(i));
  return default_collate(std::move(examples));
}

Example default_collate(std::vector<Example> examples) {
  if (examples.empty()) throw Error("default_collate: no examples to batch");
  Example batch;
  batch.data = stack_field(examples, &Example::data, "data");
  batch.target = stack_field(examples, &Example::target, "target");
  return batch;
}

// ---- TensorDataset ---------------------------------------------------------------------------

TensorDataset::TensorDataset(Tensor data, Tensor targets)
    : data_(std::move(data)), targets_(std::move(targets)) {
  if (!data_.defined() || !targets_.defined()) {
    throw Error(absl::StrCat("TensorDataset: the ", data_.defined() ? "targets" : "data",
                             " tensor is undefined"));
  }
  if (data_.dim() == 0 || targets_.dim() == 0) {
    throw Error(absl::StrCat("TensorDataset: data ", ir::shape_str(data_.shape()), " and targets ",
                             ir::shape_str(targets_.shape()),
                             " need at least one dim, whose entries are the examples"));
  }
  if (data_.size(0) != targets_.size(0)) {
    throw Error(absl::StrCat("TensorDataset: data has ", data_.size(0), " examples (shape ",
                             ir::shape_str(data_.shape()), ") but targets has ", targets_.size(0),
                             " (shape ", ir::shape_str(targets_.shape()),
                             "); their first dims must be equal"));
  }
  if (data_.device() != targets_.device()) {
    throw Error(absl::StrCat("TensorDataset: data is on ", data_.device().str(), " but targets on ",
                             targets_.device().str(), "; both must be on one device"));
  }
  // Realized once here, so that reading rows (possibly from loader threads) never computes.
  detail::realize_all({data_, targets_}, "TensorDataset");
}

int64_t TensorDataset::size() const { return data_.size(0); }

Example TensorDataset::get(int64_t index) const {
  if (index < 0 || index >= size()) {
    throw Error(
        absl::StrCat("TensorDataset: index ", index, " is out of range for ", size(), " examples"));
  }
  return {gather_rows(data_, {index}, false), gather_rows(targets_, {index}, false)};
}

Example TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  const int64_t n = size();
  for (int64_t i : indices) {
    if (i < 0 || i >= n) {
      throw Error(
          absl::StrCat("TensorDataset: index ", i, " is out of range for ", n, " examples"));
    }
  }
  return {gather_rows(data_, indices, true), gather_rows(targets_, indices, true)};
}

// ---- TransformDataset ------------------------------------------------------------------------

TransformDataset::TransformDataset(std::shared_ptr<const Dataset> dataset, Transform transform,
                                   Transform target_transform)
    : dataset_(std::move(dataset)),
      transform_(std::move(transform)),
      target_transform_(std::move(target_transform)) {
  if (dataset_ == nullptr) throw Error("TransformDataset: the dataset is null");
}

int64_t TransformDataset::size() const { return dataset_->size(); }

Example TransformDataset::get(int64_t index) const {
  Example e = dataset_->get(index);
  if (transform_) e.data = transform_(e.data);
  if (target_transform_) e.target = target_transform_(e.target);
  return e;
}

}  // namespace smelt::data
