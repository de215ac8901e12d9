// Kernel IR: one fused kernel, independent of the backend that emits it. Lowering (fusion groups
// -> Kernel) is in compiler/lower.h; the LLVM (CPU) and CUDA emitters both consume this.
//
// A kernel is a loop nest over an iteration domain and a DAG of scalar expressions evaluated at
// every point of it. All view arithmetic (permute, expand, slice, pad, reshape, concat) has
// already been turned into integer index expressions over the loop variables, so an emitter only
// needs loops, integer math, loads, scalar math, selects and stores.
//
//   domain = [d0, d1, ..., dk-1]   the first `num_outer` axes index the outputs; the remaining
//                                  axes are reduced (reduction and row kernels only)
//   for each point of the outer axes:                   (split across threads by the runtime)
//     for each stage s (row kernels):                    one sweep over the reduced axes each
//       st[s] = identity(stages[s].op)
//       for each point of the reduced axes: st[s] = combine(st[s], exprs[stages[s].value])
//     acc = identity(reduce_op)                          (reduction kernels)
//     for each point of the reduced axes:
//       acc = combine(acc, exprs[reduce_value])
//     for each output: out[slot][index] = exprs[value]   (may use kAcc: the reduced value)
//   A row kernel without a main reduction (row_outputs()) instead stores its outputs in one last
//   sweep: for each point of the reduced axes: for each output: out[slot][index] = exprs[value],
//   where index and value may use every loop variable.
//
// Row kernels are how softmax, log_softmax and normalizations run as one pass over each row:
// max, then sum of exp(x - max), then the division, with the row read from cache after the
// first sweep instead of from memory three times.
#pragma once

#include <smelt/dtype.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "ir/op_registry.h"

namespace smelt::compiler {

enum class KOp : uint8_t {
  // ---- integer (Int64) index arithmetic; operands are Int64 expressions -----------------------
  kLoopVar,  // the loop variable of domain axis `value_int`
  kIConst,   // the integer `value_int`
  kIAdd,     // a + b
  kIMul,     // a * b
  kIDiv,     // a / b, with a >= 0 and b > 0 (lowering guarantees it)
  kIMod,     // a % b, likewise
  kILt,      // a < b (Bool)
  kAnd,      // a && b (Bool)
  // ---- values ----------------------------------------------------------------------------------
  kLoad,    // element `a` (an Int64 index expr) of input slot `slot`; the index is in range
  kConst,   // the literal `value_float` (or `value_int` for integral dtypes) of `dtype`
  kAcc,     // the reduced value (reduction kernels; valid only in output expressions)
  kStage,   // the result of stage `value_int` (row kernels; valid after that stage's sweep)
  kApply,   // the elementwise IR op `op` applied to operands a, b, c (as many as it takes)
  kSelect,  // a ? b : c (a is Bool)
};

// One expression. Operands refer to earlier entries of Kernel::exprs (-1: none).
struct KExpr {
  KOp kind = KOp::kConst;
  DType dtype = DType::Int64;
  ir::OpCode op = ir::OpCode::Add;  // kApply only
  int32_t a = -1, b = -1, c = -1;
  int32_t slot = -1;       // kLoad: input slot
  int64_t value_int = 0;   // kLoopVar axis, kIConst value, integral kConst value
  double value_float = 0;  // floating kConst value
  // Cast's target is the expression's dtype; other ops need no attributes at the scalar level.

  friend bool operator==(const KExpr&, const KExpr&) = default;
};

enum class ReduceOp : uint8_t { kNone, kSum, kProd, kMax, kMin, kArgMax, kArgMin };

// A reduction over the kernel's reduced axes that runs, in its own sweep, before the main
// reduction and the outputs (row kernels).
struct KStage {
  ReduceOp op = ReduceOp::kSum;  // kSum, kProd, kMax or kMin
  DType dtype = DType::Float32;  // the value's and the accumulator's
  int32_t value = -1;            // the expression combined; it may read earlier stages only

  friend bool operator==(const KStage&, const KStage&) = default;
};

struct KInput {
  DType dtype;
  int64_t numel;  // elements the kernel may read (loads index below this)
};

struct KOutput {
  DType dtype;
  int32_t value;  // expression stored
  int32_t index;  // Int64 expression over the outer loop variables: where it is stored
  int64_t numel;  // elements of the output buffer
};

struct Kernel {
  std::string name;             // for dumps and symbol names: "k3_sum_exp_sub"
  std::vector<int64_t> domain;  // loop extents, outer axes first
  int num_outer = 0;            // axes [0, num_outer) index the outputs; the rest are reduced
  ReduceOp reduce = ReduceOp::kNone;
  DType reduce_dtype = DType::Float32;  // the accumulator's dtype (Int64 for argmax/argmin)
  int32_t reduce_value = -1;            // expression combined into the accumulator
  std::vector<KStage> stages;           // row kernels: reductions before the main one, in order
  // Topologically ordered, no duplicates (coalesce_axes may leave one: the 0 that replaces a
  // merged axis's loop variable next to an existing 0).
  std::vector<KExpr> exprs;
  std::vector<KInput> inputs;
  std::vector<KOutput> outputs;
  // (input slot, output) pairs computed in place: the runtime gives the output the input's
  // memory, and the kernel reads that input through the output's pointer, so no two of its
  // pointers alias (the LLVM emitter marks them noalias). Only where can_compute_in_place holds;
  // CPU kernels only.
  std::vector<std::pair<int32_t, int32_t>> in_place;

  // A row kernel with no main reduction: its outputs are stored over the whole domain.
  bool row_outputs() const { return !stages.empty() && reduce == ReduceOp::kNone; }

  // Structural hash: everything above but the name. Identical kernels share machine code.
  uint64_t hash() const;
  // Readable text of the kernel (irdump --emit=kernels).
  std::string to_string() const;
};

// Whether output `output` of `k` may be computed in the memory of input `slot`: an elementwise
// kernel (no reduction, no stages) whose every load of that slot reads the element the output
// stores at the same point (the same index expression), with equal dtypes and sizes. Each point
// then reads its element before it overwrites it, and no point reads an element another one
// writes.
bool can_compute_in_place(const Kernel& k, int32_t slot, int32_t output);

// Merges neighbouring loop axes that every access walks as one: axes a and a + 1 (both outer or
// both reduced) merge when each load's index and each output's index is affine in their loop
// variables with a's coefficient = extent(a + 1) x (a + 1)'s, and nothing else reads those
// variables (no div/mod/compare of them, no value computed from them). A [64, 32, 28, 28]
// activation then runs as one loop of 1.6M points, or [64*32, 784] under a per-channel
// broadcast, instead of 28-point loops whose vector remainders cost as much as their vectors.
// The merged axis enumerates the old pairs in row-major order, so reduction order, argmax
// positions and every result are unchanged. Returns how many merges it made.
int coalesce_axes(Kernel& k);

// Builds a Kernel's expressions with hash-consing and local simplification (constant folding,
// x+0, x*1, x*0, and range-based rules for index arithmetic), so that equal subexpressions are
// one entry and index math for contiguous views collapses to the loop variables.
class KernelBuilder {
 public:
  explicit KernelBuilder(Kernel& k) : k_(k) {}

  int32_t loop_var(int axis);
  int32_t iconst(int64_t v);
  int32_t add(int32_t a, int32_t b);
  int32_t mul(int32_t a, int32_t b);
  int32_t div(int32_t a, int64_t b);
  int32_t mod(int32_t a, int64_t b);
  int32_t lt(int32_t a, int32_t b);
  int32_t logical_and(int32_t a, int32_t b);
  int32_t load(int32_t slot, int32_t index);
  int32_t constant(DType dtype, double value);
  int32_t acc();
  int32_t stage(int s);  // the result of stages[s], which must exist
  int32_t apply(ir::OpCode op, DType dtype, int32_t a, int32_t b = -1, int32_t c = -1);
  int32_t select(int32_t cond, int32_t a, int32_t b);

  // Inclusive bounds of an Int64 expression, from the loop extents.
  int64_t min_of(int32_t e) const { return ranges_[e].first; }
  int64_t max_of(int32_t e) const { return ranges_[e].second; }

  struct ExprHash {
    size_t operator()(const KExpr& e) const;
  };

 private:
  int32_t intern(const KExpr& e, std::pair<int64_t, int64_t> range);
  // Tightens `r`, a range of Int64 expression x, by the bounds on x that `cond` (compares of x
  // with constants, and their conjunctions) implies where it holds.
  void narrow_under(int32_t cond, int32_t x, std::pair<int64_t, int64_t>& r) const;
  // The terms of a sum of Int64 expressions, flattened, and its constant part.
  void collect_terms(int32_t e, std::vector<int32_t>& terms, int64_t& constant) const;
  // `e` = coefficient * rest, if e is a product with a constant factor (else 1 * e).
  std::pair<int64_t, int32_t> split_coefficient(int32_t e) const;
  int32_t sum_of(const std::vector<int32_t>& terms, int64_t constant);

  Kernel& k_;
  std::vector<std::pair<int64_t, int64_t>> ranges_;
  absl::flat_hash_map<KExpr, int32_t, ExprHash> interned_;
};

}  // namespace smelt::compiler
