// Losses, as modules and functions. Class-index targets pick their log-probability through a
// one-hot mask built lazily (target == arange(C)): it fuses into the reduction and its gradient
// is elementwise, where index_select's gradient would be a one-hot matmul.
#include <smelt/creation.h>
#include <smelt/error.h>
#include <smelt/nn.h>
#include <smelt/ops.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"

namespace smelt::nn {
namespace functional {
namespace {

std::string describe(const Tensor& t) {
  return absl::StrCat(dtype_name(t.dtype()), " ", ir::shape_str(t.shape()));
}

Tensor reduce(const Tensor& per_element, Reduction reduction) {
  switch (reduction) {
    case Reduction::Mean:
      return per_element.mean();
    case Reduction::Sum:
      return per_element.sum();
    case Reduction::None:
      return per_element;
  }
  return per_element;
}

void check_input(const char* op, const char* what, const Tensor& t) {
  if (!t.defined()) throw Error(absl::StrCat(op, ": ", what, " is undefined"));
  if (!t.is_floating_point()) {
    throw Error(absl::StrCat(op, ": ", what, " must be floating (f32 or f64), got ", describe(t),
                             "; convert it with .to(DType::Float32)"));
  }
}

// Checks `input` and `target` of the same shape for an elementwise loss.
void check_same_shape(const char* op, const Tensor& input, const Tensor& target) {
  check_input(op, "input", input);
  check_input(op, "target", target);
  if (input.shape() != target.shape()) {
    throw Error(absl::StrCat(op, ": input ", ir::shape_str(input.shape()), " and target ",
                             ir::shape_str(target.shape()),
                             " must have the same shape (no broadcasting: a [N, 1] prediction "
                             "against a [N] target is almost always a bug; reshape one of them)"));
  }
  if (input.device() != target.device()) {
    throw Error(absl::StrCat(op, ": input is on ", input.device().str(), " but target is on ",
                             target.device().str()));
  }
}

// -scores[target] per sample, for scores [N, C] with targets [N] or scores [C] with a 0-d
// target. Validates the targets; checks their values when they are already on the host.
Tensor pick_negated(const char* op, const char* what, const Tensor& scores, const Tensor& target) {
  check_input(op, what, scores);
  if (scores.dim() != 1 && scores.dim() != 2) {
    throw Error(absl::StrCat(op, ": ", what, " must be [N, C] (or [C] for one sample), got ",
                             describe(scores)));
  }
  const bool batched = scores.dim() == 2;
  const int64_t classes = scores.size(-1);
  const std::string want =
      batched ? absl::StrCat("[N] = [", scores.size(0), "]") : std::string("[] (0-d)");
  if (!target.defined()) {
    throw Error(absl::StrCat(op, ": targets are undefined; expected Int64 of shape ", want));
  }
  const std::vector<int64_t> want_shape =
      batched ? std::vector<int64_t>{scores.size(0)} : std::vector<int64_t>{};
  if (!is_integral(target.dtype()) || target.shape() != want_shape) {
    throw Error(absl::StrCat(op, ": targets must be Int64 of shape ", want, " (class indices for ",
                             what, " ", describe(scores), "), got ", describe(target)));
  }
  if (target.device() != scores.device()) {
    throw Error(absl::StrCat(op, ": ", what, " are on ", scores.device().str(),
                             " but targets are on ", target.device().str()));
  }
  // An out-of-range index would silently select nothing; check it when that costs no compute.
  const ir::NodePtr tn = target.impl()->node();
  if (tn->buffer() != nullptr && target.device().is_cpu()) {
    const std::vector<int64_t> values = target.to_vector<int64_t>();
    for (size_t i = 0; i < values.size(); ++i) {
      if (values[i] < 0 || values[i] >= classes) {
        throw Error(absl::StrCat(op, ": target ", values[i], " at index ", i,
                                 " is out of range for ", classes, " classes (valid: 0 to ",
                                 classes - 1, ")"));
      }
    }
  }
  Tensor classes_range = arange(0, classes, 1, target.dtype());
  if (target.device() != classes_range.device()) classes_range = classes_range.to(target.device());
  const Tensor one_hot = target.unsqueeze(-1) == classes_range;
  // where, not a product with the mask: a -inf score elsewhere in the row must not become NaN.
  return -where(one_hot, scores, 0.0).sum(-1);
}

}  // namespace

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same_shape("mse_loss", input, target);
  const Tensor d = input - target;
  return reduce(d * d, reduction);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction) {
  check_input("cross_entropy", "logits", logits);
  if (logits.dim() != 1 && logits.dim() != 2) {
    throw Error(absl::StrCat("cross_entropy: logits must be [N, C] (or [C] for one sample), got ",
                             describe(logits)));
  }
  // log_softmax subtracts the row maximum first, so any finite logits give finite losses.
  return reduce(pick_negated("cross_entropy", "logits", smelt::log_softmax(logits, -1), target),
                reduction);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction) {
  return reduce(pick_negated("nll_loss", "log_probs", log_probs, target), reduction);
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        Reduction reduction) {
  check_same_shape("binary_cross_entropy_with_logits", logits, target);
  // max(x, 0) - x*y + log(1 + exp(-|x|)), written as m + log(exp(-m) + exp(x - m)) - x*y with
  // m = max(x, 0) detached (as softmax detaches its shift): the same value, exp never sees a
  // positive argument, and autodiff gives exactly sigmoid(x) - y, also at x = 0, where the
  // kinks of max and |x| would otherwise give relu'(0) = abs'(0) = 0.
  const Tensor m = smelt::relu(logits).detach();
  const Tensor per = m + smelt::log(smelt::exp(-m) + smelt::exp(logits - m)) - logits * target;
  return reduce(per, reduction);
}

}  // namespace functional

Tensor MSELossImpl::forward(const Tensor& input, const Tensor& target) {
  return functional::mse_loss(input, target, reduction);
}

Tensor CrossEntropyLossImpl::forward(const Tensor& logits, const Tensor& target) {
  return functional::cross_entropy(logits, target, reduction);
}

Tensor NLLLossImpl::forward(const Tensor& log_probs, const Tensor& target) {
  return functional::nll_loss(log_probs, target, reduction);
}

Tensor BCEWithLogitsLossImpl::forward(const Tensor& logits, const Tensor& target) {
  return functional::binary_cross_entropy_with_logits(logits, target, reduction);
}

}  // namespace smelt::nn
