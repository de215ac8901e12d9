// The stateless-in-forward layers: Linear, Embedding, Conv2d, MaxPool2d, Flatten, the activations
// and Dropout. Their forward() is the functional form applied to the registered parameters.
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/nn.h>
#include <smelt/ops.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <ostream>
#include <vector>

#include "absl/strings/str_cat.h"

namespace smelt::nn {
namespace {

// U(-bound, bound) of `shape`: PyTorch's reset_parameters for Linear and Conv2d, where
// kaiming_uniform(a = sqrt(5)) and the bias rule both give bound = 1 / sqrt(fan_in).
Tensor uniform_init(const std::vector<int64_t>& shape, int64_t fan_in) {
  Tensor t = zeros(shape);
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  init::uniform_(t, -bound, bound);
  return t;
}

void check_positive(const char* op, const char* what, int64_t v) {
  if (v <= 0) throw Error(absl::StrCat(op, ": ", what, " must be positive, got ", v));
}

void check_positive(const char* op, const char* what, Size2 v) {
  check_positive(op, what, v.h);
  check_positive(op, what, v.w);
}

// PyTorch's repr: `3` for a square pair, `(3, 5)` otherwise.
std::string size2_str(Size2 v) {
  return v.h == v.w ? absl::StrCat(v.h) : absl::StrCat("(", v.h, ", ", v.w, ")");
}

}  // namespace

// ---- Linear ------------------------------------------------------------------------------------

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool bias)
    : in_features(in_features), out_features(out_features) {
  check_positive("Linear", "in_features", in_features);
  check_positive("Linear", "out_features", out_features);
  weight = register_parameter("weight", uniform_init({out_features, in_features}, in_features));
  if (bias) this->bias = register_parameter("bias", uniform_init({out_features}, in_features));
}

Tensor LinearImpl::forward(const Tensor& input) { return functional::linear(input, weight, bias); }

void LinearImpl::pretty_print(std::ostream& os) const {
  os << "Linear(in_features=" << in_features << ", out_features=" << out_features
     << ", bias=" << (bias.defined() ? "true" : "false") << ")";
}

// ---- Embedding ---------------------------------------------------------------------------------

EmbeddingImpl::EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim,
                             std::optional<int64_t> padding_idx)
    : num_embeddings(num_embeddings), embedding_dim(embedding_dim) {
  check_positive("Embedding", "num_embeddings", num_embeddings);
  check_positive("Embedding", "embedding_dim", embedding_dim);
  if (padding_idx.has_value()) {
    const int64_t p = *padding_idx < 0 ? *padding_idx + num_embeddings : *padding_idx;
    if (p < 0 || p >= num_embeddings) {
      throw Error(absl::StrCat("Embedding: padding_idx ", *padding_idx, " is out of range for ",
                               num_embeddings, " embeddings"));
    }
    this->padding_idx = p;
  }
  Tensor w = zeros({num_embeddings, embedding_dim});
  init::normal_(w);
  if (this->padding_idx.has_value()) {
    std::vector<float> v = w.to_vector<float>();
    std::fill_n(v.begin() + *this->padding_idx * embedding_dim, embedding_dim, 0.f);
    w = from_vector(v, {num_embeddings, embedding_dim});
  }
  weight = register_parameter("weight", w);
}

Tensor EmbeddingImpl::forward(const Tensor& indices) {
  return functional::embedding(indices, weight, padding_idx);
}

void EmbeddingImpl::pretty_print(std::ostream& os) const {
  os << "Embedding(" << num_embeddings << ", " << embedding_dim;
  if (padding_idx.has_value()) os << ", padding_idx=" << *padding_idx;
  os << ")";
}

// ---- Conv2d ------------------------------------------------------------------------------------

Conv2dImpl::Conv2dImpl(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Size2 stride,
                       Size2 padding, bool bias)
    : Conv2dImpl(Conv2dOptions(in_channels, out_channels, kernel_size)
                     .stride(stride)
                     .padding(padding)
                     .bias(bias)) {}

Conv2dImpl::Conv2dImpl(const Conv2dOptions& options) : options(options) {
  check_positive("Conv2d", "in_channels", options.in_channels_);
  check_positive("Conv2d", "out_channels", options.out_channels_);
  check_positive("Conv2d", "kernel_size", options.kernel_size_);
  check_positive("Conv2d", "stride", options.stride_);
  if (options.padding_.h < 0 || options.padding_.w < 0) {
    throw Error(absl::StrCat("Conv2d: padding must be >= 0, got ", size2_str(options.padding_)));
  }
  check_positive("Conv2d", "dilation", options.dilation_);
  check_positive("Conv2d", "groups", options.groups_);
  if (options.in_channels_ % options.groups_ != 0 || options.out_channels_ % options.groups_ != 0) {
    throw Error(absl::StrCat("Conv2d: in_channels (", options.in_channels_, ") and out_channels (",
                             options.out_channels_, ") must both be multiples of groups (",
                             options.groups_, ")"));
  }
  const int64_t kh = options.kernel_size_.h, kw = options.kernel_size_.w;
  const int64_t in_per_group = options.in_channels_ / options.groups_;
  const int64_t fan_in = in_per_group * kh * kw;
  weight = register_parameter("weight",
                              uniform_init({options.out_channels_, in_per_group, kh, kw}, fan_in));
  if (options.bias_) {
    bias = register_parameter("bias", uniform_init({options.out_channels_}, fan_in));
  }
}

Tensor Conv2dImpl::forward(const Tensor& input) {
  return functional::conv2d(input, weight, bias, options.stride_, options.padding_,
                            options.dilation_, options.groups_);
}

void Conv2dImpl::pretty_print(std::ostream& os) const {
  os << "Conv2d(" << options.in_channels_ << ", " << options.out_channels_
     << ", kernel_size=" << size2_str(options.kernel_size_)
     << ", stride=" << size2_str(options.stride_);
  if (options.padding_ != Size2(0)) os << ", padding=" << size2_str(options.padding_);
  if (options.dilation_ != Size2(1)) os << ", dilation=" << size2_str(options.dilation_);
  if (options.groups_ != 1) os << ", groups=" << options.groups_;
  if (!options.bias_) os << ", bias=false";
  os << ")";
}

// ---- MaxPool2d, Flatten ------------------------------------------------------------------------

MaxPool2dImpl::MaxPool2dImpl(Size2 kernel_size, std::optional<Size2> stride, Size2 padding)
    : kernel_size(kernel_size), stride(stride.value_or(kernel_size)), padding(padding) {
  check_positive("MaxPool2d", "kernel_size", kernel_size);
  check_positive("MaxPool2d", "stride", this->stride);
}

Tensor MaxPool2dImpl::forward(const Tensor& input) {
  return functional::max_pool2d(input, kernel_size, stride, padding);
}

void MaxPool2dImpl::pretty_print(std::ostream& os) const {
  os << "MaxPool2d(kernel_size=" << size2_str(kernel_size) << ", stride=" << size2_str(stride);
  if (padding != Size2(0)) os << ", padding=" << size2_str(padding);
  os << ")";
}

AvgPool2dImpl::AvgPool2dImpl(Size2 kernel_size, std::optional<Size2> stride, Size2 padding,
                             bool count_include_pad)
    : kernel_size(kernel_size),
      stride(stride.value_or(kernel_size)),
      padding(padding),
      count_include_pad(count_include_pad) {
  check_positive("AvgPool2d", "kernel_size", kernel_size);
  check_positive("AvgPool2d", "stride", this->stride);
}

Tensor AvgPool2dImpl::forward(const Tensor& input) {
  return smelt::avg_pool2d(input, kernel_size, stride, padding, count_include_pad);
}

void AvgPool2dImpl::pretty_print(std::ostream& os) const {
  os << "AvgPool2d(kernel_size=" << size2_str(kernel_size) << ", stride=" << size2_str(stride);
  if (padding != Size2(0)) os << ", padding=" << size2_str(padding);
  if (!count_include_pad) os << ", count_include_pad=false";
  os << ")";
}

Tensor AdaptiveAvgPool2dImpl::forward(const Tensor& input) {
  return smelt::adaptive_avg_pool2d(input, output_size);
}

void AdaptiveAvgPool2dImpl::pretty_print(std::ostream& os) const {
  os << "AdaptiveAvgPool2d(output_size=" << size2_str(output_size) << ")";
}

FlattenImpl::FlattenImpl(int64_t start_dim, int64_t end_dim)
    : start_dim(start_dim), end_dim(end_dim) {}

Tensor FlattenImpl::forward(const Tensor& input) { return input.flatten(start_dim, end_dim); }

void FlattenImpl::pretty_print(std::ostream& os) const {
  os << "Flatten(start_dim=" << start_dim << ", end_dim=" << end_dim << ")";
}

// ---- activations, Dropout ----------------------------------------------------------------------

Tensor ReLUImpl::forward(const Tensor& input) { return smelt::relu(input); }
Tensor TanhImpl::forward(const Tensor& input) { return smelt::tanh(input); }
Tensor SigmoidImpl::forward(const Tensor& input) { return smelt::sigmoid(input); }

Tensor LeakyReLUImpl::forward(const Tensor& input) {
  return functional::leaky_relu(input, negative_slope);
}
void LeakyReLUImpl::pretty_print(std::ostream& os) const {
  os << "LeakyReLU(negative_slope=" << negative_slope << ")";
}

GELUImpl::GELUImpl(std::string approximate) : approximate(std::move(approximate)) {
  if (this->approximate != "none" && this->approximate != "tanh") {
    throw Error(absl::StrCat("GELU: approximate must be \"none\" or \"tanh\", got \"",
                             this->approximate, "\""));
  }
}
Tensor GELUImpl::forward(const Tensor& input) { return functional::gelu(input, approximate); }
void GELUImpl::pretty_print(std::ostream& os) const {
  os << "GELU(approximate='" << approximate << "')";
}

Tensor SoftmaxImpl::forward(const Tensor& input) { return smelt::softmax(input, dim); }
void SoftmaxImpl::pretty_print(std::ostream& os) const { os << "Softmax(dim=" << dim << ")"; }
Tensor LogSoftmaxImpl::forward(const Tensor& input) { return smelt::log_softmax(input, dim); }
void LogSoftmaxImpl::pretty_print(std::ostream& os) const { os << "LogSoftmax(dim=" << dim << ")"; }

DropoutImpl::DropoutImpl(double p) : p(p) {
  if (!(p >= 0.0 && p <= 1.0)) {
    throw Error(absl::StrCat("Dropout: probability p must be between 0 and 1, got ", p));
  }
}

Tensor DropoutImpl::forward(const Tensor& input) {
  return functional::dropout(input, p, is_training());
}

void DropoutImpl::pretty_print(std::ostream& os) const { os << "Dropout(p=" << p << ")"; }

}  // namespace smelt::nn
