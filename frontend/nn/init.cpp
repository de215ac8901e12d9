// nn::init: filling tensors in place. Values are computed on the host and stored as a realized
// leaf, so a freshly initialized parameter is data (no pending graph, nothing to compile).
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/nn.h>

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"

namespace smelt::nn::init {
namespace {

void check_target(const char* op, const Tensor& t, bool floating) {
  if (!t.defined()) throw Error(absl::StrCat(op, ": the tensor is undefined"));
  if (floating && !t.is_floating_point()) {
    throw Error(absl::StrCat(op, ": needs a floating tensor (f32 or f64), got ",
                             dtype_name(t.dtype()), " ", ir::shape_str(t.shape())));
  }
}

// Swaps `values` (row-major, one per element) into `t`, converted to its dtype and device.
void fill(const Tensor& t, const std::vector<double>& values) {
  const DType dtype = t.dtype();
  std::vector<uint8_t> bytes(values.size() * dtype_size(dtype));
  for (size_t k = 0; k < values.size(); ++k) {
    smelt::detail::store_as(dtype, values[k], bytes.data() + k * dtype_size(dtype));
  }
  Tensor value(std::make_shared<smelt::detail::TensorImpl>(
      smelt::detail::host_node(dtype, t.shape(), bytes.data())));
  if (t.device() != value.device()) value = value.to(t.device());
  t.impl()->set_node(value.impl()->node());
}

std::vector<double> draws(const Tensor& t, bool normal) {
  const Tensor r = normal ? randn(t.shape(), DType::Float64) : rand(t.shape(), DType::Float64);
  return r.to_vector<double>();
}

// PyTorch's _calculate_fan_in_and_fan_out.
std::pair<double, double> fans(const char* op, const Tensor& t) {
  if (t.dim() < 2) {
    throw Error(absl::StrCat(op, ": fan in and fan out need a tensor of at least 2 dims, got ",
                             ir::shape_str(t.shape())));
  }
  double receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= static_cast<double>(t.size(d));
  return {static_cast<double>(t.size(1)) * receptive, static_cast<double>(t.size(0)) * receptive};
}

}  // namespace

void uniform_(const Tensor& tensor, double low, double high) {
  check_target("uniform_", tensor, true);
  if (!(low <= high)) {
    throw Error(absl::StrCat("uniform_: low (", low, ") must not exceed high (", high, ")"));
  }
  std::vector<double> v = draws(tensor, /*normal=*/false);
  for (double& x : v) x = low + (high - low) * x;
  fill(tensor, v);
}

void normal_(const Tensor& tensor, double mean, double std) {
  check_target("normal_", tensor, true);
  if (!(std >= 0)) throw Error(absl::StrCat("normal_: std must be >= 0, got ", std));
  std::vector<double> v = draws(tensor, /*normal=*/true);
  for (double& x : v) x = mean + std * x;
  fill(tensor, v);
}

void constant_(const Tensor& tensor, double value) {
  check_target("constant_", tensor, false);
  fill(tensor, std::vector<double>(static_cast<size_t>(tensor.numel()), value));
}

void zeros_(const Tensor& tensor) { constant_(tensor, 0.0); }
void ones_(const Tensor& tensor) { constant_(tensor, 1.0); }

void xavier_uniform_(const Tensor& tensor, double gain) {
  check_target("xavier_uniform_", tensor, true);
  const auto [fan_in, fan_out] = fans("xavier_uniform_", tensor);
  const double bound = gain * std::sqrt(6.0 / (fan_in + fan_out));
  uniform_(tensor, -bound, bound);
}

void kaiming_uniform_(const Tensor& tensor, double a) {
  check_target("kaiming_uniform_", tensor, true);
  const double fan_in = fans("kaiming_uniform_", tensor).first;
  const double bound = std::sqrt(6.0 / ((1.0 + a * a) * fan_in));
  uniform_(tensor, -bound, bound);
}

}  // namespace smelt::nn::init
