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

// Scores with the class dim last, [M, C] (or [C] for one sample), and their integer targets
// [M] (or []), from scores [C], [N, C] or [N, C, d1, ...] with targets [], [N] or [N, d1, ...].
struct ClassTargets {
  Tensor scores, target;
  std::vector<int64_t> sample_shape;  // what Reduction::None returns: the targets' shape
  // False when the targets were read on the host and none equals ignore_index, so no sample
  // needs masking (the common case keeps the graph as small as before the option existed).
  bool may_ignore = true;
};

// Moves dim 1 (classes) of a [N, C, d1, ...] tensor last and flattens the rest: [N*d1*..., C].
Tensor classes_last(const Tensor& t) {
  if (t.dim() <= 2) return t;
  std::vector<int64_t> perm = {0};
  for (int64_t d = 2; d < t.dim(); ++d) perm.push_back(d);
  perm.push_back(1);
  return t.permute(perm).reshape({-1, t.size(1)});
}

// The shape integer targets must have for `scores`: scores' shape without the class dim.
std::vector<int64_t> target_shape_for(const Tensor& scores) {
  std::vector<int64_t> shape = scores.shape();
  shape.erase(shape.begin() + (scores.dim() == 1 ? 0 : 1));
  return shape;
}

void check_rank(const char* op, const char* what, const Tensor& scores) {
  check_input(op, what, scores);
  if (scores.dim() < 1) {
    throw Error(absl::StrCat(op, ": ", what,
                             " must be [N, C] (or [C] for one sample, or [N, C, d1, ...]), got ",
                             describe(scores)));
  }
}

void check_same_device(const char* op, const char* what, const Tensor& scores, const Tensor& other,
                       const char* other_what) {
  if (other.device() != scores.device()) {
    throw Error(absl::StrCat(op, ": ", what, " are on ", scores.device().str(), " but ", other_what,
                             " are on ", other.device().str()));
  }
}

// Validates class-index targets (checking their values when they are already on the host) and
// flattens both to ClassTargets.
ClassTargets class_targets(const char* op, const char* what, const Tensor& scores,
                           const Tensor& target, int64_t ignore_index) {
  const int64_t classes = scores.size(scores.dim() == 1 ? 0 : 1);
  const std::vector<int64_t> want_shape = target_shape_for(scores);
  // Formatted only for an error: a training step calls this every time.
  auto want = [&] {
    return scores.dim() == 1   ? std::string("[] (0-d)")
           : scores.dim() == 2 ? absl::StrCat("[N] = ", ir::shape_str(want_shape))
                               : absl::StrCat("[N, d1, ...] = ", ir::shape_str(want_shape));
  };
  if (!target.defined()) {
    throw Error(absl::StrCat(op, ": targets are undefined; expected Int64 of shape ", want()));
  }
  if (!is_integral(target.dtype()) || target.shape() != want_shape) {
    throw Error(absl::StrCat(op, ": targets must be Int64 of shape ", want(),
                             " (class indices for ", what, " ", describe(scores), "), got ",
                             describe(target)));
  }
  check_same_device(op, what, scores, target, "targets");
  ClassTargets out{classes_last(scores), scores.dim() > 2 ? target.reshape({-1}) : target,
                   want_shape};
  // An out-of-range index would silently select nothing; check it when that costs no compute.
  const ir::NodePtr tn = target.impl()->node();
  if (tn->buffer() != nullptr && target.device().is_cpu()) {
    const std::vector<int64_t> values = target.to_vector<int64_t>();
    out.may_ignore = false;
    for (size_t i = 0; i < values.size(); ++i) {
      if (values[i] == ignore_index) {
        out.may_ignore = true;
      } else if (values[i] < 0 || values[i] >= classes) {
        throw Error(absl::StrCat(op, ": target ", values[i], " at index ", i,
                                 " is out of range for ", classes, " classes (valid: 0 to ",
                                 classes - 1, ", or ignore_index = ", ignore_index, ")"));
      }
    }
  }
  return out;
}

// Class weights as given to a loss: [C], floating, beside the scores; cast to their dtype.
Tensor checked_class_weight(const char* op, const Tensor& weight, const Tensor& scores) {
  if (!weight.defined()) return weight;
  const int64_t classes = scores.size(scores.dim() == 1 ? 0 : 1);
  check_input(op, "weight", weight);
  if (weight.shape() != std::vector<int64_t>{classes}) {
    throw Error(absl::StrCat(op, ": weight must be [C] = [", classes, "] (one per class of ",
                             describe(scores), "), got ", describe(weight)));
  }
  check_same_device(op, "scores", scores, weight, "class weights");
  return weight.to(scores.dtype());
}

// Per-sample losses and what a mean divides them by.
struct PerSample {
  Tensor loss;         // sample_shape
  Tensor denominator;  // 0-d; undefined: the number of samples (a plain mean)
};

Tensor reduce(const PerSample& p, Reduction reduction) {
  if (reduction == Reduction::Mean && p.denominator.defined()) {
    return p.loss.sum() / p.denominator;
  }
  return reduce(p.loss, reduction);
}

// -w[t] * scores[t] per sample (0 for an ignored one), and the sum of w[t] over the counted
// samples. The class is picked through a one-hot mask built lazily (target == arange(C)): it
// fuses into the reduction and its gradient is elementwise.
PerSample pick_negated(const ClassTargets& ct, const Tensor& weight, int64_t ignore_index) {
  const int64_t classes = ct.scores.size(-1);
  Tensor classes_range = arange(0, classes, 1, ct.target.dtype());
  if (ct.target.device() != classes_range.device()) {
    classes_range = classes_range.to(ct.target.device());
  }
  Tensor mask = ct.target.unsqueeze(-1) == classes_range;
  Tensor valid;
  if (ct.may_ignore) {
    valid = ct.target != Scalar(ignore_index);
    // An ignore_index outside [0, C) already matches no class; one inside must be masked out.
    if (ignore_index >= 0 && ignore_index < classes) {
      mask = logical_and(mask, valid.unsqueeze(-1));
    }
  }
  // where, not a product with the mask: a -inf score elsewhere in the row must not become NaN.
  Tensor picked = where(mask, ct.scores, 0.0);
  PerSample out;
  if (weight.defined()) {
    picked = picked * weight;
    out.denominator = where(mask, weight, 0.0).sum();
  } else if (ct.may_ignore) {
    out.denominator = valid.to(ct.scores.dtype()).sum();
  }
  out.loss = (-picked.sum(-1)).reshape(ct.sample_shape);
  return out;
}

PerSample nll_per_sample(const char* op, const Tensor& log_probs, const Tensor& target,
                         const Tensor& weight, int64_t ignore_index) {
  const ClassTargets ct = class_targets(op, "log_probs", log_probs, target, ignore_index);
  return pick_negated(ct, checked_class_weight(op, weight, log_probs), ignore_index);
}

// Cross-entropy against class probabilities (floating targets of the logits' shape).
Tensor soft_cross_entropy(const Tensor& log_probs, const Tensor& target,
                          const CrossEntropyLossOptions& o) {
  const char* op = "cross_entropy";
  check_input(op, "targets", target);
  check_same_device(op, "logits", log_probs, target, "targets");
  const Tensor weight = checked_class_weight(op, o.weight_, log_probs);
  const int64_t classes = log_probs.size(log_probs.dim() == 1 ? 0 : 1);
  Tensor p = classes_last(target.to(log_probs.dtype()));
  if (o.label_smoothing_ > 0) {
    p = p * (1.0 - o.label_smoothing_) + o.label_smoothing_ / static_cast<double>(classes);
  }
  Tensor per = classes_last(log_probs) * p;
  if (weight.defined()) per = per * weight;
  // Like PyTorch, the mean over probability targets divides by the number of samples.
  return reduce((-per.sum(-1)).reshape(target_shape_for(log_probs)), o.reduction_);
}

}  // namespace

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same_shape("mse_loss", input, target);
  const Tensor d = input - target;
  return reduce(d * d, reduction);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction) {
  return cross_entropy(logits, target, CrossEntropyLossOptions().reduction(reduction));
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyLossOptions& o) {
  const char* op = "cross_entropy";
  check_rank(op, "logits", logits);
  if (!(o.label_smoothing_ >= 0.0 && o.label_smoothing_ <= 1.0)) {
    throw Error(absl::StrCat(op, ": label_smoothing must be in [0, 1], got ", o.label_smoothing_));
  }
  // log_softmax subtracts the row maximum first, so any finite logits give finite losses.
  const Tensor log_probs = smelt::log_softmax(logits, logits.dim() == 1 ? 0 : 1);
  if (target.defined() && target.is_floating_point() && target.shape() == logits.shape()) {
    return soft_cross_entropy(log_probs, target, o);
  }
  const ClassTargets ct = class_targets(op, "logits", log_probs, target, o.ignore_index_);
  const Tensor weight = checked_class_weight(op, o.weight_, logits);
  const PerSample nll = pick_negated(ct, weight, o.ignore_index_);
  if (o.label_smoothing_ == 0.0) return reduce(nll, o.reduction_);
  // PyTorch's smoothing: (1 - s) * nll + s / C * (-sum_c w_c log p_c), the second term zero for
  // ignored samples and, under a mean, divided by the same denominator as the first.
  Tensor all = ct.scores;
  if (weight.defined()) all = all * weight;
  Tensor smooth = -all.sum(-1);
  if (ct.may_ignore) smooth = where(ct.target != Scalar(o.ignore_index_), smooth, 0.0);
  const PerSample smoothed{smooth.reshape(ct.sample_shape), nll.denominator};
  const double s = o.label_smoothing_;
  const double classes = static_cast<double>(ct.scores.size(-1));
  return reduce(nll, o.reduction_) * (1.0 - s) + reduce(smoothed, o.reduction_) * (s / classes);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction) {
  return nll_loss(log_probs, target, NLLLossOptions().reduction(reduction));
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NLLLossOptions& o) {
  check_rank("nll_loss", "log_probs", log_probs);
  return reduce(nll_per_sample("nll_loss", log_probs, target, o.weight_, o.ignore_index_),
                o.reduction_);
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

CrossEntropyLossImpl::CrossEntropyLossImpl(const CrossEntropyLossOptions& options)
    : reduction(options.reduction_),
      ignore_index(options.ignore_index_),
      label_smoothing(options.label_smoothing_) {
  // A buffer, as in PyTorch: .to(device) moves it and the state dict holds it.
  if (options.weight_.defined()) weight = register_buffer("weight", options.weight_);
}

Tensor CrossEntropyLossImpl::forward(const Tensor& logits, const Tensor& target) {
  return functional::cross_entropy(logits, target,
                                   CrossEntropyLossOptions()
                                       .weight(weight)
                                       .ignore_index(ignore_index)
                                       .label_smoothing(label_smoothing)
                                       .reduction(reduction));
}

NLLLossImpl::NLLLossImpl(const NLLLossOptions& options)
    : reduction(options.reduction_), ignore_index(options.ignore_index_) {
  if (options.weight_.defined()) weight = register_buffer("weight", options.weight_);
}

Tensor NLLLossImpl::forward(const Tensor& log_probs, const Tensor& target) {
  return functional::nll_loss(
      log_probs, target,
      NLLLossOptions().weight(weight).ignore_index(ignore_index).reduction(reduction));
}

Tensor BCEWithLogitsLossImpl::forward(const Tensor& logits, const Tensor& target) {
  return functional::binary_cross_entropy_with_logits(logits, target, reduction);
}

}  // namespace smelt::nn
