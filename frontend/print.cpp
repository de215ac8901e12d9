// operator<< for Tensor: PyTorch's tensor printing (torch/_tensor_str.py, default print options:
// precision 4, line width 80, threshold 1000, 3 edge items), so output can be compared with
// PyTorch's by eye and by string.
#include <smelt/tensor.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "frontend/graph_builder.h"
#include "ir/reference.h"

namespace smelt {
namespace {

constexpr int64_t kThreshold = 1000;
constexpr int64_t kEdgeItems = 3;
constexpr size_t kLineWidth = 80;

std::string printf_str(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

// Python's spelling of non-finite floats (printf may write "-nan").
const char* non_finite_str(double v) {
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

// The indices along a dim of `size` that are printed: all, or the edges when summarizing.
std::vector<int64_t> visible(int64_t size, bool summarize) {
  std::vector<int64_t> idx;
  if (summarize && size > 2 * kEdgeItems) {
    for (int64_t i = 0; i < kEdgeItems; ++i) idx.push_back(i);
    for (int64_t i = size - kEdgeItems; i < size; ++i) idx.push_back(i);
  } else {
    for (int64_t i = 0; i < size; ++i) idx.push_back(i);
  }
  return idx;
}

// PyTorch's _Formatter: one width and one style (integral floats, fixed, or scientific) for all
// printed elements, chosen from the elements that are printed.
class Formatter {
 public:
  Formatter(const ir::RefTensor& t, const std::vector<int64_t>& printed) : t_(t) {
    if (!t.floating()) {
      for (int64_t k : printed) max_width_ = std::max(max_width_, str(k).size());
      return;
    }
    std::vector<double> values;  // nonzero finite
    for (int64_t k : printed) {
      if (std::isfinite(t.f[k]) && t.f[k] != 0) values.push_back(t.f[k]);
    }
    if (values.empty()) return;
    double lo = std::abs(values[0]), hi = lo;
    for (double v : values) {
      lo = std::min(lo, std::abs(v));
      hi = std::max(hi, std::abs(v));
      if (v != std::ceil(v)) int_mode_ = false;
    }
    sci_mode_ = hi / lo > 1000.0 || hi > 1.0e8 || (!int_mode_ && lo < 1.0e-4);
    for (double v : values) {
      const std::string s = sci_mode_   ? printf_str("%.4e", v)
                            : int_mode_ ? printf_str("%.0f", v) + "."
                                        : printf_str("%.4f", v);
      max_width_ = std::max(max_width_, s.size());
    }
  }

  size_t width() const { return max_width_; }

  // Element k, right-aligned to the common width.
  std::string format(int64_t k) const {
    std::string s = str(k);
    if (s.size() < max_width_) s.insert(0, max_width_ - s.size(), ' ');
    return s;
  }

 private:
  std::string str(int64_t k) const {
    if (t_.dtype == DType::Bool) return t_.i[k] != 0 ? "True" : "False";
    if (!t_.floating()) return std::to_string(t_.i[k]);
    const double v = t_.f[k];
    if (!std::isfinite(v)) return non_finite_str(v);
    if (sci_mode_) return printf_str("%.4e", v);
    if (int_mode_) return printf_str("%.0f", v) + ".";
    return printf_str("%.4f", v);
  }

  const ir::RefTensor& t_;
  bool int_mode_ = true;
  bool sci_mode_ = false;
  size_t max_width_ = 1;
};

class Printer {
 public:
  Printer(const ir::RefTensor& t, bool summarize, const Formatter& fmt)
      : t_(t), summarize_(summarize), fmt_(fmt), strides_(ir::contiguous_strides(t.shape)) {}

  // The elements of the sub-tensor at `dim` (starting at flat `offset`), as _tensor_str does.
  std::string str(size_t dim, int64_t offset, size_t indent) const {
    const size_t rank = t_.shape.size();
    if (rank == 0) return fmt_.format(0);
    const int64_t size = t_.shape[dim];
    const bool cut = summarize_ && size > 2 * kEdgeItems;
    std::vector<std::string> parts;
    if (dim + 1 == rank) {
      for (int64_t i : visible(size, summarize_)) {
        if (cut && i == size - kEdgeItems) parts.push_back(" ...");
        parts.push_back(fmt_.format(offset + i));
      }
      const size_t per_line =
          std::max<size_t>(1, (kLineWidth - std::min(kLineWidth, indent)) / (fmt_.width() + 2));
      std::vector<std::string> lines;
      for (size_t i = 0; i < parts.size(); i += per_line) {
        const size_t end = std::min(parts.size(), i + per_line);
        lines.push_back(absl::StrJoin(parts.begin() + i, parts.begin() + end, ", "));
      }
      return absl::StrCat("[", absl::StrJoin(lines, absl::StrCat(",\n", spaces(indent + 1))), "]");
    }
    for (int64_t i : visible(size, summarize_)) {
      if (cut && i == size - kEdgeItems) parts.push_back("...");
      parts.push_back(str(dim + 1, offset + i * strides_[dim], indent + 1));
    }
    const std::string sep =
        absl::StrCat(",", std::string(rank - dim - 1, '\n'), spaces(indent + 1));
    return absl::StrCat("[", absl::StrJoin(parts, sep), "]");
  }

 private:
  static std::string spaces(size_t n) { return std::string(n, ' '); }

  const ir::RefTensor& t_;
  bool summarize_;
  const Formatter& fmt_;
  ir::Strides strides_;
};

// The flat indices of every printed element.
void collect_printed(const ir::RefTensor& t, const ir::Strides& strides, bool summarize, size_t dim,
                     int64_t offset, std::vector<int64_t>& out) {
  if (dim == t.shape.size()) {
    out.push_back(offset);
    return;
  }
  for (int64_t i : visible(t.shape[dim], summarize)) {
    collect_printed(t, strides, summarize, dim + 1, offset + i * strides[dim], out);
  }
}

// PyTorch's _add_suffixes: ", suffix" on the last line while it fits in 80 columns.
std::string add_suffixes(std::string s, const std::vector<std::string>& suffixes, size_t indent) {
  const size_t newline = s.rfind('\n');
  size_t last_line = newline == std::string::npos ? s.size() + 2 : s.size() - newline + 1;
  for (const std::string& suffix : suffixes) {
    if (last_line + suffix.size() + 2 > kLineWidth) {
      absl::StrAppend(&s, ",\n", std::string(indent, ' '), suffix);
      last_line = indent + suffix.size();
    } else {
      absl::StrAppend(&s, ", ", suffix);
      last_line += suffix.size() + 2;
    }
  }
  return s + ")";
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  ir::NodePtr n = detail::node_of(t, "print");
  detail::realize_nodes(detail::with_companions({t}, {n}), compiler::EvalReason::kPrint);
  const base::BufferPtr buffer = detail::host_buffer(n, "print");
  const ir::RefTensor data = ir::ref_from_memory(n->dtype(), n->shape(), buffer->data());

  const std::string prefix = "tensor(";
  const size_t indent = prefix.size();
  std::vector<std::string> suffixes;
  if (!n->device().is_cpu()) suffixes.push_back(absl::StrCat("device='", n->device().str(), "'"));
  std::string body;
  if (n->numel() == 0) {
    // Like NumPy, an empty tensor names its size unless it is [0], and always its dtype (no
    // element shows it) unless that is the default.
    body = "[]";
    if (n->rank() != 1) suffixes.push_back(absl::StrCat("size=", ir::shape_str(n->shape())));
    if (n->dtype() != DType::Float32) {
      suffixes.push_back(absl::StrCat("dtype=", dtype_long_name(n->dtype())));
    }
  } else {
    const bool summarize = n->numel() > kThreshold;
    std::vector<int64_t> printed;
    collect_printed(data, ir::contiguous_strides(data.shape), summarize, 0, 0, printed);
    const Formatter fmt(data, printed);
    body = Printer(data, summarize, fmt).str(0, 0, indent);
    // Beyond PyTorch: a summary does not show how big the tensor is, so say it.
    if (summarize) suffixes.push_back(absl::StrCat("size=", ir::shape_str(n->shape())));
    // Float32 (the default), Int64 and Bool are implied by how the values look.
    if (n->dtype() != DType::Float32 && n->dtype() != DType::Int64 && n->dtype() != DType::Bool) {
      suffixes.push_back(absl::StrCat("dtype=", dtype_long_name(n->dtype())));
    }
  }
  return os << add_suffixes(prefix + body, suffixes, indent);
}

}  // namespace smelt
