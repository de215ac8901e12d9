// Lowering: a fusion plan becomes a list of steps — fused kernels in kernel IR, and library calls
// (matmul, index_select) — over numbered values. Backend-neutral: the CPU and CUDA code
// generators both start here.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "compiler/kernel_ir.h"
#include "compiler/passes/fuse.h"
#include "compiler/strided_view.h"
#include "ir/graph.h"

namespace smelt::compiler {

struct KernelStep {
  Kernel kernel;
  std::vector<const ir::Node*> inputs;   // one per kernel input slot
  std::vector<const ir::Node*> outputs;  // one per kernel output
  std::string reason;                    // why its output is materialized (from the plan)
};

// out[batch] = a[batch] @ b[batch]; operands are read through strides (transposes and
// broadcast batch dims cost nothing); `out` is contiguous. For addmm, out = alpha (a @ b) +
// beta addend, the addend a contiguous buffer of out's type.
struct MatmulStep {
  StridedView a;
  StridedView b;
  const ir::Node* out;
  const ir::Node* addend = nullptr;
  double alpha = 1.0;
  double beta = 0.0;
};

struct GatherStep {  // index_select, or index_add (its transpose) when `add`
  // The buffer the source is read from: the operand itself, or, when the operand is a reshape
  // (gather's flattened source), the node below it that holds the same elements in the same
  // order, so the library call reads it in place instead of a copy.
  const ir::Node* src;
  ir::Shape src_shape;  // the operand's shape, which the call's geometry follows
  const ir::Node* index;
  const ir::Node* out;
  int64_t dim;
  bool add = false;
};

// conv2d, max_pool2d and their backward ops (ir/ops/conv.cpp): contiguous operands in buffers.
struct WindowStep {
  std::vector<const ir::Node*> inputs;
  const ir::Node* out;
};

// cumsum or argsort (ir/ops/scan.cpp) over a contiguous buffer.
struct ScanStep {
  const ir::Node* src;
  const ir::Node* out;
  int64_t dim;
  bool reverse;  // cumsum: from the end; argsort: descending
  int64_t k;     // argsort: the positions written along dim (out's size there)
};

using Step = std::variant<KernelStep, MatmulStep, GatherStep, WindowStep, ScanStep>;

struct LoweredProgram {
  std::vector<Step> steps;              // in execution order
  std::vector<const ir::Node*> leaves;  // graph inputs, in the order of first use
};

// `coalesce`: merge the loop axes each kernel can walk as one (coalesce_axes in kernel_ir.h).
absl::StatusOr<LoweredProgram> lower(const ir::Graph& graph, const FusionPlan& plan,
                                     bool coalesce = true);

}  // namespace smelt::compiler
