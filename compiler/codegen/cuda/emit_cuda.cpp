#include "compiler/codegen/cuda/emit_cuda.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "compiler/codegen/llvm/emit_kernel.h"  // check_kernel: the IR contract both emitters share

namespace smelt::compiler {
namespace {

using ir::OpCode;

// ---- types and literals ---------------------------------------------------------------------

// The type a value has in registers.
const char* reg_type(DType t) {
  switch (t) {
    case DType::Bool:
      return "bool";
    case DType::Int32:
      return "int";
    case DType::Int64:
      return "long long";
    case DType::Float32:
      return "float";
    case DType::Float64:
      return "double";
  }
  return "?";
}

// The type of an element in memory (Bool is one byte, 0 or 1).
const char* mem_type(DType t) { return t == DType::Bool ? "unsigned char" : reg_type(t); }

std::string float_literal(DType t, double v) {
  if (t == DType::Float32) {
    const float f = static_cast<float>(v);
    if (!std::isfinite(f)) {
      return absl::StrFormat("__int_as_float(0x%08x)", std::bit_cast<uint32_t>(f));
    }
    return absl::StrFormat("%af", static_cast<double>(f));  // hex: exact
  }
  if (!std::isfinite(v)) {
    return absl::StrFormat("__longlong_as_double(0x%016xll)", std::bit_cast<uint64_t>(v));
  }
  return absl::StrFormat("%a", v);
}

std::string literal(DType t, int64_t vi, double vf) {
  switch (t) {
    case DType::Bool:
      return vi != 0 ? "true" : "false";
    case DType::Int32: {
      const int32_t v = static_cast<int32_t>(vi);
      if (v == std::numeric_limits<int32_t>::min()) return "(-2147483647 - 1)";
      return absl::StrCat(v);
    }
    case DType::Int64:
      if (vi == std::numeric_limits<int64_t>::min()) return "(-9223372036854775807LL - 1)";
      return absl::StrCat(vi, "LL");
    case DType::Float32:
    case DType::Float64:
      return float_literal(t, vf);
  }
  return "?";
}

// The smallest and largest value of `t` (floats: -inf and inf).
std::string lowest(DType t) {
  switch (t) {
    case DType::Bool:
      return "false";
    case DType::Int32:
      return literal(t, std::numeric_limits<int32_t>::min(), 0);
    case DType::Int64:
      return literal(t, std::numeric_limits<int64_t>::min(), 0);
    default:
      return float_literal(t, -std::numeric_limits<double>::infinity());
  }
}
std::string highest(DType t) {
  switch (t) {
    case DType::Bool:
      return "true";
    case DType::Int32:
      return literal(t, std::numeric_limits<int32_t>::max(), 0);
    case DType::Int64:
      return literal(t, std::numeric_limits<int64_t>::max(), 0);
    default:
      return float_literal(t, std::numeric_limits<double>::infinity());
  }
}

bool is_arg_reduce(ReduceOp r) { return r == ReduceOp::kArgMax || r == ReduceOp::kArgMin; }

// The identity of reduction `op` over values of `t`.
std::string identity_of(ReduceOp op, DType t) {
  switch (op) {
    case ReduceOp::kSum:
      return literal(t, 0, 0.0);
    case ReduceOp::kProd:
      return literal(t, 1, 1.0);
    case ReduceOp::kMax:
    case ReduceOp::kArgMax:
      return lowest(t);
    default:
      return highest(t);
  }
}

// The combining function of two accumulators of reduction `op`, as an expression of a and b
// (empty for argmax/argmin, which combine pairs).
std::string combine_of(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "smelt_rt::wadd(a, b)";
    case ReduceOp::kProd:
      return "smelt_rt::wmul(a, b)";
    case ReduceOp::kMax:
      return "smelt_rt::rmax(a, b)";
    case ReduceOp::kMin:
      return "smelt_rt::rmin(a, b)";
    default:
      return "";
  }
}

int64_t product(const std::vector<int64_t>& v, size_t lo, size_t hi) {
  int64_t p = 1;
  for (size_t i = lo; i < hi; ++i) p *= v[i];
  return p;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- analysis -----------------------------------------------------------------------------------

// An Int64 index expression as sum(coef[a] * loop_var[a]) + constant, when it is one.
struct Affine {
  std::vector<int64_t> coef;
  int64_t constant = 0;
};

struct Analysis {
  std::vector<bool> reduced;                 // depends on a reduced loop variable
  std::vector<bool> uses_acc;                // depends on the accumulator
  std::vector<bool> for_reduce;              // reachable from the reduced value
  std::vector<bool> for_output;              // reachable from an output's value or index
  std::vector<std::vector<bool>> for_stage;  // per stage: reachable from its value
  std::vector<std::optional<Affine>> affine;
};

// The expressions reachable from `roots` (the roots included).
std::vector<bool> cone(const Kernel& k, const std::vector<int32_t>& roots) {
  std::vector<bool> seen(k.exprs.size(), false);
  for (int32_t r : roots) {
    if (r >= 0) seen[r] = true;
  }
  for (size_t i = k.exprs.size(); i-- > 0;) {
    if (!seen[i]) continue;
    const KExpr& e = k.exprs[i];
    for (int32_t x : {e.a, e.b, e.c}) {
      if (x >= 0) seen[x] = true;
    }
  }
  return seen;
}

Analysis analyze(const Kernel& k) {
  const size_t n = k.exprs.size();
  const size_t rank = k.domain.size();
  Analysis a;
  a.reduced.assign(n, false);
  a.uses_acc.assign(n, false);
  a.for_reduce.assign(n, false);
  a.for_output.assign(n, false);
  a.affine.assign(n, std::nullopt);
  for (size_t i = 0; i < n; ++i) {
    const KExpr& e = k.exprs[i];
    for (int32_t x : {e.a, e.b, e.c}) {
      if (x < 0) continue;
      a.reduced[i] = a.reduced[i] || a.reduced[x];
      a.uses_acc[i] = a.uses_acc[i] || a.uses_acc[x];
    }
    if (e.kind == KOp::kLoopVar && e.value_int >= k.num_outer) a.reduced[i] = true;
    if (e.kind == KOp::kAcc) a.uses_acc[i] = true;
    switch (e.kind) {
      case KOp::kLoopVar: {
        Affine f{std::vector<int64_t>(rank, 0), 0};
        f.coef[e.value_int] = 1;
        a.affine[i] = std::move(f);
        break;
      }
      case KOp::kIConst:
        a.affine[i] = Affine{std::vector<int64_t>(rank, 0), e.value_int};
        break;
      case KOp::kIAdd:
        if (a.affine[e.a] && a.affine[e.b]) {
          Affine f = *a.affine[e.a];
          for (size_t d = 0; d < rank; ++d) f.coef[d] += a.affine[e.b]->coef[d];
          f.constant += a.affine[e.b]->constant;
          a.affine[i] = std::move(f);
        }
        break;
      case KOp::kIMul: {
        const auto& x = a.affine[e.a];
        const auto& y = a.affine[e.b];
        auto is_const = [&](const std::optional<Affine>& f) {
          return f && std::all_of(f->coef.begin(), f->coef.end(), [](int64_t c) { return c == 0; });
        };
        if (x && y && (is_const(x) || is_const(y))) {
          Affine f = is_const(x) ? *y : *x;
          const int64_t s = is_const(x) ? x->constant : y->constant;
          for (int64_t& c : f.coef) c *= s;
          f.constant *= s;
          a.affine[i] = std::move(f);
        }
        break;
      }
      default:
        break;
    }
  }
  // A stage's result (kStage) is neither reduced nor the accumulator: once its sweep is done it
  // is a per-row value like an outer loop variable.
  if (k.reduce != ReduceOp::kNone) a.for_reduce = cone(k, {k.reduce_value});
  std::vector<int32_t> out_roots;
  for (const KOutput& o : k.outputs) {
    out_roots.push_back(o.value);
    out_roots.push_back(o.index);
  }
  a.for_output = cone(k, out_roots);
  for (const KStage& st : k.stages) a.for_stage.push_back(cone(k, {st.value}));
  return a;
}

// ---- the prelude -----------------------------------------------------------------------------

constexpr const char* kPrelude = R"CUDA(// smelt CUDA prelude (codegen version 1)
namespace smelt_rt {
// Integer arithmetic wraps (as in the reference evaluator): computed on unsigned types, where
// overflow is defined.
__device__ __forceinline__ int wadd(int a, int b) { return (int)((unsigned)a + (unsigned)b); }
__device__ __forceinline__ long long wadd(long long a, long long b) {
  return (long long)((unsigned long long)a + (unsigned long long)b);
}
__device__ __forceinline__ float wadd(float a, float b) { return a + b; }
__device__ __forceinline__ double wadd(double a, double b) { return a + b; }
__device__ __forceinline__ bool wadd(bool a, bool b) { return a || b; }
__device__ __forceinline__ int wsub(int a, int b) { return (int)((unsigned)a - (unsigned)b); }
__device__ __forceinline__ long long wsub(long long a, long long b) {
  return (long long)((unsigned long long)a - (unsigned long long)b);
}
__device__ __forceinline__ float wsub(float a, float b) { return a - b; }
__device__ __forceinline__ double wsub(double a, double b) { return a - b; }
__device__ __forceinline__ int wmul(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
__device__ __forceinline__ long long wmul(long long a, long long b) {
  return (long long)((unsigned long long)a * (unsigned long long)b);
}
__device__ __forceinline__ float wmul(float a, float b) { return a * b; }
__device__ __forceinline__ double wmul(double a, double b) { return a * b; }
__device__ __forceinline__ bool wmul(bool a, bool b) { return a && b; }
__device__ __forceinline__ int wneg(int a) { return (int)(0u - (unsigned)a); }
__device__ __forceinline__ long long wneg(long long a) {
  return (long long)(0ull - (unsigned long long)a);
}
__device__ __forceinline__ float wneg(float a) { return -a; }
__device__ __forceinline__ double wneg(double a) { return -a; }
__device__ __forceinline__ int wabs(int a) { return a < 0 ? wneg(a) : a; }
__device__ __forceinline__ long long wabs(long long a) { return a < 0 ? wneg(a) : a; }
__device__ __forceinline__ float wabs(float a) { return fabsf(a); }
__device__ __forceinline__ double wabs(double a) { return fabs(a); }

// Elementwise maximum/minimum: NaN if either is NaN, else the larger (smaller); ties give b.
template <typename T> __device__ __forceinline__ T emax(T a, T b) {
  if (a != a || b != b) return a + b;
  return a > b ? a : b;
}
template <typename T> __device__ __forceinline__ T emin(T a, T b) {
  if (a != a || b != b) return a + b;
  return a < b ? a : b;
}
__device__ __forceinline__ bool emax(bool a, bool b) { return a || b; }
__device__ __forceinline__ bool emin(bool a, bool b) { return a && b; }
// Reduction max/min: NaN-propagating.
template <typename T> __device__ __forceinline__ T rmax(T a, T b) {
  return (a > b || a != a) ? a : b;
}
template <typename T> __device__ __forceinline__ T rmin(T a, T b) {
  return (a < b || a != a) ? a : b;
}
__device__ __forceinline__ bool rmax(bool a, bool b) { return a || b; }
__device__ __forceinline__ bool rmin(bool a, bool b) { return a && b; }

// Whether (x, xi) beats (a, ai) in an argmax/argmin: a NaN beats any number, the first of equal
// values wins, so any order of combining gives the sequential answer.
template <bool kMax, typename T>
__device__ __forceinline__ bool arg_better(T x, long long xi, T a, long long ai) {
  const bool xn = x != x, an = a != a;
  if (xn || an) return xn && (!an || xi < ai);
  if (x == a) return xi < ai;
  return kMax ? x > a : x < a;
}

// float -> integer: truncation; NaN, infinities and out-of-range values give the minimum.
__device__ __forceinline__ int f2i32(double x) {
  return (x >= -2147483648.0 && x < 2147483648.0) ? (int)x : (-2147483647 - 1);
}
__device__ __forceinline__ long long f2i64(double x) {
  return (x >= -9223372036854775808.0 && x < 9223372036854775808.0) ? (long long)x
                                                                      : (-9223372036854775807LL - 1);
}
__device__ __forceinline__ float sigmoid(float x) {
  if (x < 0.f) { const float e = expf(x); return e / (1.f + e); }
  return 1.f / (1.f + expf(-x));
}
__device__ __forceinline__ double sigmoid(double x) {
  if (x < 0.0) { const double e = exp(x); return e / (1.0 + e); }
  return 1.0 / (1.0 + exp(-x));
}

template <typename T> __device__ __forceinline__ T shfl_down(T v, int o) {
  return __shfl_down_sync(0xffffffffu, v, o);
}
template <> __device__ __forceinline__ bool shfl_down<bool>(bool v, int o) {
  return __shfl_down_sync(0xffffffffu, (int)v, o) != 0;
}

// Combines `v` over the block with `f`; the result is valid in thread 0. `sh` holds 32 values.
template <typename T, typename F>
__device__ __forceinline__ T block_reduce(T v, T identity, F f, T* sh) {
  for (int o = 16; o > 0; o >>= 1) v = f(v, shfl_down(v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  if (warps > 1) {
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
      v = lane < warps ? sh[lane] : identity;
      for (int o = 16; o > 0; o >>= 1) v = f(v, shfl_down(v, o));
    }
    __syncthreads();  // sh may be written again by the next call
  }
  return v;
}

// The same for (value, index) pairs of an argmax/argmin.
template <bool kMax, typename T>
__device__ __forceinline__ void block_reduce_arg(T& v, long long& vi, T* sh, long long* shi) {
  for (int o = 16; o > 0; o >>= 1) {
    const T x = shfl_down(v, o);
    const long long xi = shfl_down(vi, o);
    if (arg_better<kMax>(x, xi, v, vi)) { v = x; vi = xi; }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  if (warps > 1) {
    if (lane == 0) { sh[warp] = v; shi[warp] = vi; }
    __syncthreads();
    if (warp == 0) {
      v = sh[lane < warps ? lane : 0];
      vi = shi[lane < warps ? lane : 0];  // duplicates of entry 0 change nothing
      for (int o = 16; o > 0; o >>= 1) {
        const T x = shfl_down(v, o);
        const long long xi = shfl_down(vi, o);
        if (arg_better<kMax>(x, xi, v, vi)) { v = x; vi = xi; }
      }
    }
    __syncthreads();
  }
}

template <typename T, int N> struct alignas(sizeof(T) * N) Vec { T v[N]; };
}  // namespace smelt_rt
)CUDA";

// ---- the emitter -------------------------------------------------------------------------------

constexpr int kThreads = 256;
constexpr int kColumnWays = 8;  // threads per output of a column reduction
// Before each loop over reduced points: its loads are independent of the accumulator, so an
// unrolled body has several in flight per thread (one is too few to cover memory latency).
constexpr const char* kUnroll = "#pragma unroll 4\n";

class Emitter {
 public:
  Emitter(const Kernel& k, const CudaTarget& target)
      : k_(k), target_(target), a_(analyze(k)), rank_(static_cast<int>(k.domain.size())) {}

  CudaKernel run() {
    CudaKernel out;
    out.symbol = absl::StrFormat("smelt_%016x", k_.hash());
    outer_ = product(k_.domain, 0, k_.num_outer);
    reduced_ = product(k_.domain, k_.num_outer, k_.domain.size());
    // 32-bit indices when every index (domain points, element offsets) fits with room to spare.
    int64_t largest = outer_ * std::max<int64_t>(reduced_, 1);
    for (const KInput& in : k_.inputs) largest = std::max(largest, in.numel);
    for (const KOutput& o : k_.outputs) largest = std::max(largest, o.numel);
    out.index64 = largest >= (int64_t{1} << 30);
    idx_ = out.index64 ? "long long" : "int";
    out.empty = outer_ == 0;
    if (!k_.stages.empty()) {
      emit_row(out);
    } else if (k_.reduce == ReduceOp::kNone) {
      emit_elementwise(out);
    } else {
      emit_reduction(out);
    }
    return out;
  }

 private:
  // ---- expressions ----

  // The name of expression i's value (a loop variable is named by its axis: v<axis>).
  std::string v(int32_t i) const {
    const KExpr& e = k_.exprs[i];
    if (e.kind == KOp::kLoopVar) return absl::StrCat("v", e.value_int);
    return absl::StrCat("e", i);
  }

  std::string index_literal(int64_t x) const {
    return idx_ == std::string("int") ? absl::StrCat(x) : absl::StrCat(x, "LL");
  }

  // The right-hand side of expression i. `vector_load(slot)` names a value already loaded for a
  // contiguous load of that slot (or empty).
  std::string rhs(int32_t i, const std::vector<std::string>& vector_loads) const {
    const KExpr& e = k_.exprs[i];
    switch (e.kind) {
      case KOp::kLoopVar:
        return absl::StrCat("v", e.value_int);
      case KOp::kIConst:
        return index_literal(e.value_int);
      case KOp::kIAdd:
        return absl::StrCat(v(e.a), " + ", v(e.b));
      case KOp::kIMul:
        return absl::StrCat(v(e.a), " * ", v(e.b));
      case KOp::kIDiv:
        return absl::StrCat(v(e.a), " / ", v(e.b));
      case KOp::kIMod:
        return absl::StrCat(v(e.a), " % ", v(e.b));
      case KOp::kILt:
        return absl::StrCat(v(e.a), " < ", v(e.b));
      case KOp::kAnd:
        return absl::StrCat(v(e.a), " && ", v(e.b));
      case KOp::kLoad: {
        std::string x;
        if (!load_override_.empty() && !load_override_[i].empty()) {
          x = load_override_[i];
        } else if (is_contiguous(e.a) && !vector_loads.empty() && !vector_loads[e.slot].empty()) {
          x = vector_loads[e.slot];
        } else {
          x = absl::StrCat("in", e.slot, "[", v(e.a), "]");
        }
        return e.dtype == DType::Bool ? absl::StrCat("(", x, " != 0)") : x;
      }
      case KOp::kConst:
        return literal(e.dtype, e.value_int, e.value_float);
      case KOp::kAcc:
        return is_arg_reduce(k_.reduce) ? "acc_i" : "acc";
      case KOp::kStage:
        return absl::StrCat("st", e.value_int);
      case KOp::kSelect:
        return absl::StrCat(v(e.a), " ? ", v(e.b), " : ", v(e.c));
      case KOp::kApply:
        return apply(e);
    }
    return "?";
  }

  std::string apply(const KExpr& e) const {
    const DType t = k_.exprs[e.a].dtype;
    const bool fp = is_floating(t), f32 = t == DType::Float32, bl = t == DType::Bool;
    const std::string x = v(e.a);
    const std::string y = e.b >= 0 ? v(e.b) : "";
    auto fn = [&](const char* f32_name, const char* f64_name) {
      return absl::StrCat(f32 ? f32_name : f64_name, "(", x, ")");
    };
    switch (e.op) {
      case OpCode::Neg:
        return absl::StrCat("smelt_rt::wneg(", x, ")");
      case OpCode::Abs:
        return absl::StrCat("smelt_rt::wabs(", x, ")");
      case OpCode::Sign:
        return absl::StrCat("(", reg_type(t), ")((", x, " > 0) - (", x, " < 0))");
      case OpCode::Exp:
        return fn("expf", "exp");
      case OpCode::Log:
        return fn("logf", "log");
      case OpCode::Sqrt:
        return fn("sqrtf", "sqrt");
      case OpCode::Floor:
        return fn("floorf", "floor");
      case OpCode::Ceil:
        return fn("ceilf", "ceil");
      case OpCode::Round:  // rint rounds halves to even in the default rounding mode
        return fn("rintf", "rint");
      case OpCode::Trunc:
        return fn("truncf", "trunc");
      case OpCode::Rsqrt:
        // Float32 through double, like the reference: rounding twice in float is off by one ULP
        // for some x.
        return f32 ? absl::StrCat("(float)(1.0 / sqrt((double)", x, "))")
                   : absl::StrCat("1.0 / sqrt(", x, ")");
      case OpCode::Tanh:
        return fn("tanhf", "tanh");
      case OpCode::Sigmoid:
        return absl::StrCat("smelt_rt::sigmoid(", x, ")");
      case OpCode::Sin:
        return fn("sinf", "sin");
      case OpCode::Cos:
        return fn("cosf", "cos");
      case OpCode::Relu:
        return fp ? absl::StrCat("(", x, " > 0 || ", x, " != ", x, ") ? ", x, " : (", reg_type(t),
                                 ")0")
                  : absl::StrCat(x, " > 0 ? ", x, " : 0");
      case OpCode::LogicalNot:
        return absl::StrCat("!", x);
      case OpCode::Cast:
        return cast(x, t, e.dtype);
      case OpCode::Copy:
        return x;
      case OpCode::Add:
        return absl::StrCat("smelt_rt::wadd(", x, ", ", y, ")");
      case OpCode::Sub:
        return absl::StrCat("smelt_rt::wsub(", x, ", ", y, ")");
      case OpCode::Mul:
        return absl::StrCat("smelt_rt::wmul(", x, ", ", y, ")");
      case OpCode::Div:
        return absl::StrCat(x, " / ", y);
      case OpCode::Pow:
        return f32 ? absl::StrCat("(float)pow((double)", x, ", (double)", y, ")")
                   : absl::StrCat("pow(", x, ", ", y, ")");
      case OpCode::Maximum:
        return absl::StrCat("smelt_rt::emax(", x, ", ", y, ")");
      case OpCode::Minimum:
        return absl::StrCat("smelt_rt::emin(", x, ", ", y, ")");
      case OpCode::Eq:
        return absl::StrCat(x, " == ", y);
      case OpCode::Ne:
        return absl::StrCat(x, " != ", y);
      case OpCode::Lt:
        return absl::StrCat(x, " < ", y);
      case OpCode::Le:
        return absl::StrCat(x, " <= ", y);
      case OpCode::Gt:
        return absl::StrCat(x, " > ", y);
      case OpCode::Ge:
        return absl::StrCat(x, " >= ", y);
      case OpCode::LogicalAnd:
        return absl::StrCat(x, " && ", y);
      case OpCode::LogicalOr:
        return absl::StrCat(x, " || ", y);
      case OpCode::Where:
        return absl::StrCat(x, " ? ", y, " : ", v(e.c));
      default:
        return "?";  // check_kernel admits no other op
    }
    (void)bl;
  }

  // cast: float -> integer truncates, NaN/inf/out of range give the minimum; anything -> Bool
  // is x != 0 (NaN is true); integers wrap.
  std::string cast(const std::string& x, DType from, DType to) const {
    if (from == to) return x;
    if (to == DType::Bool) return absl::StrCat(x, " != 0");
    if (is_floating(from) && is_integral(to)) {
      return absl::StrCat(to == DType::Int32 ? "smelt_rt::f2i32" : "smelt_rt::f2i64", "((double)",
                          x, ")");
    }
    return absl::StrCat("(", reg_type(to), ")", x);
  }

  // Whether Int64 expression `index` is the row-major position of the current point in the
  // outer domain (a contiguous access in an elementwise kernel).
  bool is_contiguous(int32_t index) const {
    if (k_.reduce != ReduceOp::kNone || index < 0) return false;
    const std::optional<Affine>& f = a_.affine[index];
    if (!f || f->constant != 0) return false;
    int64_t stride = 1;
    for (int d = rank_ - 1; d >= 0; --d) {
      if (k_.domain[d] > 1 && f->coef[d] != stride) return false;
      stride *= k_.domain[d];
    }
    return true;
  }

  // Declares expressions `select` picks that are not yet `emitted`, in order.
  void emit_exprs(std::string& s, const std::vector<bool>& select, std::vector<bool>& emitted,
                  const char* indent, const std::vector<std::string>& vector_loads = {}) const {
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      if (!select[i] || emitted[i]) continue;
      const KExpr& e = k_.exprs[i];
      if (e.kind == KOp::kLoopVar) continue;  // declared by decompose()
      const char* type = is_index(e) ? idx_ : reg_type(e.dtype);
      absl::StrAppend(&s, indent, "const ", type, " ", v(i), " = ",
                      rhs(static_cast<int32_t>(i), vector_loads), ";\n");
      emitted[i] = true;
    }
  }

  bool is_index(const KExpr& e) const {
    switch (e.kind) {
      case KOp::kLoopVar:
      case KOp::kIConst:
      case KOp::kIAdd:
      case KOp::kIMul:
      case KOp::kIDiv:
      case KOp::kIMod:
        return true;
      default:
        return false;
    }
  }

  // Which loop variables the selected expressions read.
  std::vector<bool> axes_used(const std::vector<bool>& select) const {
    std::vector<bool> used(rank_, false);
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      if (select[i] && k_.exprs[i].kind == KOp::kLoopVar) used[k_.exprs[i].value_int] = true;
    }
    return used;
  }

  // Declares v<a> for the used axes in [lo, hi) from the row-major position `lin` over them.
  void decompose(std::string& s, const std::string& lin, int lo, int hi,
                 const std::vector<bool>& used, const char* indent, const char* tmp) const {
    int first = hi;
    for (int a = lo; a < hi; ++a) {
      if (used[a]) {
        first = a;
        break;
      }
    }
    if (first == hi) return;
    absl::StrAppend(&s, indent, idx_, " ", tmp, " = ", lin, ";\n");
    for (int a = hi - 1; a >= first; --a) {
      if (a == lo) {
        absl::StrAppend(&s, indent, "const ", idx_, " v", a, " = ", tmp, ";\n");
      } else if (k_.domain[a] == 1) {
        if (used[a]) absl::StrAppend(&s, indent, "const ", idx_, " v", a, " = 0;\n");
      } else {
        if (used[a]) {
          absl::StrAppend(&s, indent, "const ", idx_, " v", a, " = ", tmp, " % ",
                          index_literal(k_.domain[a]), ";\n");
        }
        if (a > first) absl::StrAppend(&s, indent, tmp, " /= ", index_literal(k_.domain[a]), ";\n");
      }
    }
  }

  std::string params(bool split) const {
    std::string p;
    for (size_t i = 0; i < k_.inputs.size(); ++i) {
      absl::StrAppend(&p, i ? ", " : "", "const ", mem_type(k_.inputs[i].dtype),
                      "* __restrict__ in", i);
    }
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      absl::StrAppend(&p, p.empty() ? "" : ", ", mem_type(k_.outputs[o].dtype),
                      "* __restrict__ out", o);
    }
    if (split) absl::StrAppend(&p, p.empty() ? "" : ", ", "void* scratch, unsigned int* tickets");
    return p;
  }

  void emit_stores(std::string& s, const char* indent) const {
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      const KOutput& out = k_.outputs[o];
      absl::StrAppend(&s, indent, "out", o, "[", v(out.index),
                      "] = ", out.dtype == DType::Bool ? "(unsigned char)" : "", v(out.value),
                      ";\n");
    }
  }

  // ---- elementwise kernels ----

  void emit_elementwise(CudaKernel& out) {
    out.strategy = CudaStrategy::kElementwise;
    const int64_t n = outer_;
    std::vector<bool> all(k_.exprs.size(), false);
    for (size_t i = 0; i < all.size(); ++i) all[i] = a_.for_output[i];

    // The vector path: every output contiguous; 16 bytes of the widest output per thread.
    size_t widest = 1;
    bool contiguous = !k_.outputs.empty();
    for (const KOutput& o : k_.outputs) {
      widest = std::max(widest, dtype_size(o.dtype));
      contiguous = contiguous && is_contiguous(o.index);
    }
    int vec = contiguous ? static_cast<int>(16 / widest) : 1;
    if (n < vec * 2) vec = 1;
    out.vector_width = vec;

    std::string s = absl::StrCat("extern \"C\" __global__ void __launch_bounds__(", kThreads, ") ",
                                 out.symbol, "(", params(false), ") {\n");
    absl::StrAppend(&s, "  const ", idx_, " n = ", index_literal(n), ";\n");
    absl::StrAppend(&s, "  const ", idx_, " stride = (", idx_, ")gridDim.x * blockDim.x;\n");
    absl::StrAppend(&s, "  const ", idx_, " first = (", idx_,
                    ")blockIdx.x * blockDim.x + threadIdx.x;\n");
    const std::vector<bool> used = axes_used(all);
    auto scalar_body = [&](const char* indent, const char* lin) {
      std::string b;
      decompose(b, lin, 0, rank_, used, indent, "t");
      std::vector<bool> emitted(k_.exprs.size(), false);
      // A contiguous load reads element `lin` itself, whatever its index expression spells.
      std::vector<std::string> direct(k_.inputs.size());
      for (size_t i = 0; i < k_.exprs.size(); ++i) {
        const KExpr& e = k_.exprs[i];
        if (all[i] && e.kind == KOp::kLoad && is_contiguous(e.a)) {
          direct[e.slot] = absl::StrCat("in", e.slot, "[", lin, "]");
        }
      }
      emit_exprs(b, all, emitted, indent, direct);
      emit_stores(b, indent);
      return b;
    };
    if (vec == 1) {
      absl::StrAppend(&s, "  for (", idx_, " i = first; i < n; i += stride) {\n",
                      scalar_body("    ", "i"), "  }\n}\n");
      out.code = std::move(s);
      set_grid(out, ceil_div(n, kThreads));
      return;
    }
    // Vector path: thread q takes points [q*vec, q*vec + vec).
    const int64_t groups = n / vec;
    absl::StrAppend(&s, "  for (", idx_, " q = first; q < ", index_literal(groups),
                    "; q += stride) {\n");
    absl::StrAppend(&s, "    const ", idx_, " base = q * ", vec, ";\n");
    std::vector<std::string> vector_loads(k_.inputs.size());
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      const KExpr& e = k_.exprs[i];
      if (!all[i] || e.kind != KOp::kLoad || !is_contiguous(e.a) || !vector_loads[e.slot].empty())
        continue;
      const char* mt = mem_type(k_.inputs[e.slot].dtype);
      absl::StrAppend(&s, "    const smelt_rt::Vec<", mt, ", ", vec, "> L", e.slot,
                      " = *reinterpret_cast<const smelt_rt::Vec<", mt, ", ", vec, ">*>(in", e.slot,
                      " + base);\n");
      vector_loads[e.slot] = absl::StrCat("L", e.slot, ".v[j]");
    }
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      absl::StrAppend(&s, "    smelt_rt::Vec<", mem_type(k_.outputs[o].dtype), ", ", vec, "> O", o,
                      ";\n");
    }
    absl::StrAppend(&s, "#pragma unroll\n    for (int j = 0; j < ", vec, "; ++j) {\n");
    absl::StrAppend(&s, "      const ", idx_, " i = base + j;\n");
    {
      std::string b;
      decompose(b, "i", 0, rank_, used, "      ", "t");
      std::vector<bool> emitted(k_.exprs.size(), false);
      emit_exprs(b, all, emitted, "      ", vector_loads);
      for (size_t o = 0; o < k_.outputs.size(); ++o) {
        const KOutput& ko = k_.outputs[o];
        absl::StrAppend(&b, "      O", o,
                        ".v[j] = ", ko.dtype == DType::Bool ? "(unsigned char)" : "", v(ko.value),
                        ";\n");
      }
      absl::StrAppend(&s, b, "    }\n");
    }
    for (size_t o = 0; o < k_.outputs.size(); ++o) {
      absl::StrAppend(&s, "    *reinterpret_cast<smelt_rt::Vec<", mem_type(k_.outputs[o].dtype),
                      ", ", vec, ">*>(out", o, " + base) = O", o, ";\n");
    }
    absl::StrAppend(&s, "  }\n");
    if (n % vec != 0) {
      absl::StrAppend(&s, "  for (", idx_, " i = ", index_literal(groups * vec),
                      " + first; i < n; i += stride) {\n", scalar_body("    ", "i"), "  }\n");
    }
    absl::StrAppend(&s, "}\n");
    out.code = std::move(s);
    set_grid(out, ceil_div(groups, kThreads));
  }

  void set_grid(CudaKernel& out, int64_t blocks_needed) const {
    const int64_t cap = int64_t{target_.multiprocessors} * 32;
    out.grid[0] = static_cast<uint32_t>(std::clamp<int64_t>(blocks_needed, 1, cap));
    out.block[0] = kThreads;
  }

  // ---- reductions ----

  std::string acc_type() const {
    return reg_type(is_arg_reduce(k_.reduce) ? k_.exprs[k_.reduce_value].dtype : k_.reduce_dtype);
  }

  std::string identity() const {
    const DType t = is_arg_reduce(k_.reduce) ? k_.exprs[k_.reduce_value].dtype : k_.reduce_dtype;
    return identity_of(k_.reduce, t);
  }

  // The combining function of two accumulators, as an expression of a and b.
  std::string combine_expr() const { return combine_of(k_.reduce); }

  // acc (, acc_i) combined with value x at position xi.
  std::string accumulate(const std::string& x, const std::string& xi) const {
    if (is_arg_reduce(k_.reduce)) {
      return absl::StrCat("if (smelt_rt::arg_better<", k_.reduce == ReduceOp::kArgMax, ">(", x,
                          ", (long long)", xi, ", acc, acc_i)) { acc = ", x, "; acc_i = ", xi,
                          "; }");
    }
    return absl::StrCat("acc = combine(acc, ", x, ");");
  }

  // The width at which a loop over reduced points can take its points `vec` at a time with
  // vector loads, and the loads that can (their index steps by 1 along the last reduced axis and
  // is a multiple of the width at every group start, so each group is one aligned access).
  // 1: none.
  int reduction_vector_width(const std::vector<bool>& loop, std::vector<int32_t>* loads) const {
    loads->clear();
    if (k_.num_outer >= rank_) return 1;
    const int last = rank_ - 1;
    size_t size = 0;
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      const KExpr& e = k_.exprs[i];
      if (!loop[i] || e.kind != KOp::kLoad) continue;
      const std::optional<Affine>& f = a_.affine[e.a];
      if (!f || f->coef[last] != 1) continue;
      if (size == 0) size = dtype_size(k_.inputs[e.slot].dtype);
      if (dtype_size(k_.inputs[e.slot].dtype) != size) continue;
      loads->push_back(static_cast<int32_t>(i));
    }
    if (loads->empty()) return 1;
    const int vec = static_cast<int>(std::min<size_t>(4, 16 / size));
    if (k_.domain[last] % vec != 0) {
      loads->clear();
      return 1;
    }
    std::erase_if(*loads, [&](int32_t i) {
      const Affine& f = *a_.affine[k_.exprs[i].a];
      if (f.constant % vec != 0) return true;
      for (int d = 0; d < last; ++d) {
        if (f.coef[d] % vec != 0) return true;
      }
      return false;
    });
    return loads->empty() ? 1 : vec;
  }

  // The C text of an affine index over the loop variables.
  std::string affine_text(const Affine& f) const {
    std::string t;
    for (int d = 0; d < rank_; ++d) {
      if (f.coef[d] == 0) continue;
      absl::StrAppend(&t, t.empty() ? "" : " + ", f.coef[d] == 1 ? "" : index_literal(f.coef[d]),
                      f.coef[d] == 1 ? "" : " * ", "v", d);
    }
    if (f.constant != 0 || t.empty())
      absl::StrAppend(&t, t.empty() ? "" : " + ", index_literal(f.constant));
    return t;
  }

  // For a loop taking `vec` points per step: declares one vector per load in `loads` (into
  // `decls`), the statements that fill them at the group's first point (into `fill`), and
  // makes each load's element read the vector's lane j.
  void declare_vector_loads(const std::vector<int32_t>& loads, int vec, const std::string& indent,
                            std::string& decls, std::string& fill) {
    load_override_.assign(k_.exprs.size(), "");
    for (int32_t i : loads) {
      const KExpr& e = k_.exprs[i];
      const std::string type =
          absl::StrCat("smelt_rt::Vec<", mem_type(k_.inputs[e.slot].dtype), ", ", vec, ">");
      absl::StrAppend(&decls, indent, type, " L", i, ";\n");
      absl::StrAppend(&fill, indent, "  L", i, " = *reinterpret_cast<const ", type, "*>(in", e.slot,
                      " + (", affine_text(*a_.affine[e.a]), "));\n");
      load_override_[i] = absl::StrCat("L", i, ".v[j]");
    }
  }

  // Whether every load `which` marks steps by 1 along the innermost outer axis (so threads
  // that own neighbouring outputs read neighbouring elements).
  bool loads_step_along_outputs(const std::vector<bool>& which) const {
    if (k_.num_outer == 0) return false;
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      const KExpr& e = k_.exprs[i];
      if (!which[i] || e.kind != KOp::kLoad) continue;
      const std::optional<Affine>& f = a_.affine[e.a];
      if (!f.has_value() || f->coef[k_.num_outer - 1] != 1) return false;
    }
    return true;
  }

  void emit_reduction(CudaKernel& out) {
    const int64_t sms = target_.multiprocessors;
    // The reduced value's inputs are contiguous along the outputs when its loads step by 1 along
    // the innermost outer axis: then neighbouring threads of a thread-per-output kernel read
    // neighbouring elements (coalesced), as in a sum over the batch axis.
    const bool coalesced_outer = loads_step_along_outputs(a_.for_reduce);
    if (reduced_ <= 32) {
      out.strategy = CudaStrategy::kThreadPerOutput;
    } else if (coalesced_outer) {
      out.strategy = CudaStrategy::kColumn;
    } else if (outer_ >= 2 * sms || reduced_ <= 16384) {
      out.strategy = CudaStrategy::kBlockPerOutput;
    } else {
      out.strategy = CudaStrategy::kSplit;
    }

    const std::string acc_t = acc_type();
    const bool arg = is_arg_reduce(k_.reduce);
    std::vector<bool> prologue(k_.exprs.size(), false), loop(k_.exprs.size(), false),
        epilogue(k_.exprs.size(), false);
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      if (a_.for_reduce[i] && !a_.reduced[i] && !a_.uses_acc[i]) prologue[i] = true;
      if (a_.for_reduce[i] && a_.reduced[i]) loop[i] = true;
      if (a_.for_output[i] && !a_.reduced[i]) epilogue[i] = true;
    }
    std::vector<bool> outer_used = axes_used(prologue);
    {
      const std::vector<bool> e = axes_used(epilogue);
      for (int d = 0; d < rank_; ++d) outer_used[d] = outer_used[d] || e[d];
    }
    const std::vector<bool> reduced_used = axes_used(loop);
    const std::string value = v(k_.reduce_value);
    // Block and split reductions over contiguous data take `vec` points per thread and step,
    // with one 16-byte (or narrower) load per input instead of `vec` scalar ones.
    // The body of the loop over reduced points at position `r`.
    auto loop_body_text = [&](const std::string& indent) {
      std::string b;
      decompose(b, "r", k_.num_outer, rank_, reduced_used, indent.c_str(), "t");
      std::vector<bool> emitted(k_.exprs.size(), false);
      emit_exprs(b, loop, emitted, indent.c_str());
      absl::StrAppend(&b, indent, accumulate(value, "r"), "\n");
      return b;
    };
    std::vector<int32_t> vector_loads;
    const int vec =
        out.strategy == CudaStrategy::kBlockPerOutput || out.strategy == CudaStrategy::kSplit
            ? reduction_vector_width(loop, &vector_loads)
            : 1;
    std::vector<bool> vector_axes(rank_, false);
    for (int32_t i : vector_loads) {
      const Affine& f = *a_.affine[k_.exprs[i].a];
      for (int d = 0; d < rank_; ++d) vector_axes[d] = vector_axes[d] || f.coef[d] != 0;
    }
    for (int d = 0; d < k_.num_outer; ++d) outer_used[d] = outer_used[d] || vector_axes[d];
    out.vector_width = vec;
    // A loop over points start, start + stride, ... below end, `vec` consecutive points per step.
    auto vector_loop = [&](const std::string& start, const std::string& end,
                           const std::string& stride, const char* indent) {
      const std::string in2 = absl::StrCat(indent, "  ");
      std::string b = absl::StrCat(indent, "for (", idx_, " r4 = ", start, "; r4 < ", end,
                                   "; r4 += ", stride, ") {\n");
      std::string loads;
      declare_vector_loads(vector_loads, vec, in2, b, loads);
      absl::StrAppend(&b, in2, "{\n");
      decompose(b, "r4", k_.num_outer, rank_, vector_axes, absl::StrCat(in2, "  ").c_str(), "t");
      absl::StrAppend(&b, loads, in2, "}\n#pragma unroll\n", in2, "for (int j = 0; j < ", vec,
                      "; ++j) {\n", in2, "  const ", idx_, " r = r4 + j;\n");
      absl::StrAppend(&b, loop_body_text(absl::StrCat(in2, "  ")), in2, "}\n", indent, "}\n");
      load_override_.clear();
      return b;
    };

    const bool block_reduce =
        out.strategy == CudaStrategy::kBlockPerOutput || out.strategy == CudaStrategy::kSplit;
    int threads = kThreads;
    if (out.strategy == CudaStrategy::kColumn) threads = 32 * kColumnWays;
    if (out.strategy == CudaStrategy::kBlockPerOutput) {
      threads = 32;
      while (threads < kThreads && threads < reduced_) threads *= 2;
    }
    std::string s =
        absl::StrCat("extern \"C\" __global__ void __launch_bounds__(", threads, ") ", out.symbol,
                     "(", params(out.strategy == CudaStrategy::kSplit), ") {\n");
    if (!arg) {
      absl::StrAppend(&s, "  auto combine = [](", acc_t, " a, ", acc_t, " b) -> ", acc_t,
                      " { return ", combine_expr(), "; };\n");
    }
    if (block_reduce) {
      absl::StrAppend(&s, "  __shared__ ", acc_t, " sh[32];\n");
      if (arg) absl::StrAppend(&s, "  __shared__ long long shi[32];\n");
    }
    auto reduce_block = [&](const char* indent) {
      if (arg) {
        return absl::StrCat(indent, "smelt_rt::block_reduce_arg<", k_.reduce == ReduceOp::kArgMax,
                            ">(acc, acc_i, sh, shi);\n");
      }
      return absl::StrCat(indent, "acc = smelt_rt::block_reduce(acc, (", acc_t, ")", identity(),
                          ", combine, sh);\n");
    };
    auto init = [&](const char* indent) {
      std::string r = absl::StrCat(indent, acc_t, " acc = ", identity(), ";\n");
      if (arg) absl::StrAppend(&r, indent, "long long acc_i = 0;\n");
      return r;
    };
    auto loop_body = [&](const char* indent) { return loop_body_text(indent); };
    auto finish = [&](std::string& b, std::vector<bool>& emitted, const char* indent) {
      emit_exprs(b, epilogue, emitted, indent);
      emit_stores(b, indent);
    };

    const std::string R = index_literal(reduced_);
    const std::string O = index_literal(outer_);
    switch (out.strategy) {
      case CudaStrategy::kThreadPerOutput: {
        absl::StrAppend(&s, "  for (", idx_, " o = (", idx_,
                        ")blockIdx.x * blockDim.x + threadIdx.x; o < ", O, "; o += (", idx_,
                        ")gridDim.x * blockDim.x) {\n");
        decompose(s, "o", 0, k_.num_outer, outer_used, "    ", "u");
        std::vector<bool> emitted(k_.exprs.size(), false);
        emit_exprs(s, prologue, emitted, "    ");
        absl::StrAppend(&s, init("    "));
        absl::StrAppend(&s, kUnroll);
        absl::StrAppend(&s, "    for (", idx_, " r = 0; r < ", R, "; ++r) {\n", loop_body("      "),
                        "    }\n");
        finish(s, emitted, "    ");
        absl::StrAppend(&s, "  }\n}\n");
        set_grid(out, ceil_div(outer_, kThreads));
        break;
      }
      case CudaStrategy::kColumn: {
        // Block (32, kWays): x picks one of 32 neighbouring outputs, y every kWays-th point.
        const int ways = kColumnWays;
        absl::StrAppend(&s, "  __shared__ ", acc_t, " col[", ways, "][32];\n");
        if (arg) absl::StrAppend(&s, "  __shared__ long long col_i[", ways, "][32];\n");
        absl::StrAppend(&s, "  for (", idx_, " tile = blockIdx.x; tile * 32 < ", O,
                        "; tile += gridDim.x) {\n");
        absl::StrAppend(&s, "    const ", idx_, " o_raw = tile * 32 + threadIdx.x;\n",
                        "    const bool valid = o_raw < ", O, ";\n", "    const ", idx_,
                        " o = valid ? o_raw : ", index_literal(outer_ - 1), ";\n");
        decompose(s, "o", 0, k_.num_outer, outer_used, "    ", "u");
        std::vector<bool> emitted(k_.exprs.size(), false);
        emit_exprs(s, prologue, emitted, "    ");
        absl::StrAppend(&s, init("    "));
        absl::StrAppend(&s, kUnroll);
        absl::StrAppend(&s, "    for (", idx_, " r = valid ? threadIdx.y : ", R, "; r < ", R,
                        "; r += ", ways, ") {\n", loop_body("      "), "    }\n");
        absl::StrAppend(&s, "    col[threadIdx.y][threadIdx.x] = acc;\n");
        if (arg) absl::StrAppend(&s, "    col_i[threadIdx.y][threadIdx.x] = acc_i;\n");
        absl::StrAppend(&s, "    __syncthreads();\n    if (threadIdx.y == 0 && valid) {\n");
        absl::StrAppend(&s, "      for (int w = 1; w < ", ways, "; ++w) {\n");
        if (arg) {
          absl::StrAppend(&s, "        const ", acc_t, " x = col[w][threadIdx.x];\n",
                          "        const long long xi = col_i[w][threadIdx.x];\n        ",
                          accumulate("x", "xi"), "\n      }\n");
        } else {
          absl::StrAppend(&s, "        ", accumulate("col[w][threadIdx.x]", ""), "\n      }\n");
        }
        finish(s, emitted, "      ");
        absl::StrAppend(&s, "    }\n    __syncthreads();\n  }\n}\n");
        out.grid[0] = static_cast<uint32_t>(std::clamp<int64_t>(ceil_div(outer_, 32), 1, sms * 32));
        out.block[0] = 32;
        out.block[1] = ways;
        break;
      }
      case CudaStrategy::kBlockPerOutput: {
        absl::StrAppend(&s, "  for (", idx_, " o = blockIdx.x; o < ", O, "; o += gridDim.x) {\n");
        decompose(s, "o", 0, k_.num_outer, outer_used, "    ", "u");
        std::vector<bool> emitted(k_.exprs.size(), false);
        emit_exprs(s, prologue, emitted, "    ");
        absl::StrAppend(&s, init("    "));
        if (vec > 1) {
          absl::StrAppend(&s, vector_loop(absl::StrCat("(", idx_, ")threadIdx.x * ", vec), R,
                                          absl::StrCat("(", idx_, ")blockDim.x * ", vec), "    "));
        } else {
          absl::StrAppend(&s, kUnroll);
          absl::StrAppend(&s, "    for (", idx_, " r = threadIdx.x; r < ", R,
                          "; r += blockDim.x) {\n", loop_body("      "), "    }\n");
        }
        absl::StrAppend(&s, reduce_block("    "));
        absl::StrAppend(&s, "    if (threadIdx.x == 0) {\n");
        finish(s, emitted, "      ");
        absl::StrAppend(&s, "    }\n  }\n}\n");
        out.grid[0] = static_cast<uint32_t>(std::clamp<int64_t>(outer_, 1, sms * 32));
        out.block[0] = threads;
        break;
      }
      case CudaStrategy::kSplit: {
        // About 16 points per thread per block, and enough blocks to fill the device twice.
        const int64_t split = std::clamp<int64_t>(
            std::min(ceil_div(reduced_, kThreads * 16), ceil_div(sms * 8, outer_)), 2, 4096);
        // Chunks of whole vectors, so every group of `vec` points is aligned.
        const int64_t chunk = ceil_div(ceil_div(reduced_, split), vec) * vec;
        const size_t vbytes =
            arg ? dtype_size(k_.exprs[k_.reduce_value].dtype) : dtype_size(k_.reduce_dtype);
        const size_t parts = static_cast<size_t>(outer_ * split);
        // Partial values, then (argmax/argmin) their positions, each 8-byte aligned.
        const size_t values_bytes = (parts * vbytes + 7) / 8 * 8;
        out.scratch_bytes = values_bytes + (arg ? parts * 8 : 0);
        out.ticket_bytes = static_cast<size_t>(outer_) * sizeof(uint32_t);
        absl::StrAppend(&s, "  ", acc_t, "* part = reinterpret_cast<", acc_t, "*>(scratch);\n");
        if (arg) {
          absl::StrAppend(&s, "  long long* part_i = reinterpret_cast<long long*>(",
                          "reinterpret_cast<char*>(scratch) + ", values_bytes, ");\n");
        }
        absl::StrAppend(&s, "  __shared__ bool last;\n");
        absl::StrAppend(&s, "  const ", idx_, " o = blockIdx.y;\n");
        decompose(s, "o", 0, k_.num_outer, outer_used, "  ", "u");
        std::vector<bool> emitted(k_.exprs.size(), false);
        emit_exprs(s, prologue, emitted, "  ");
        absl::StrAppend(&s, init("  "));
        absl::StrAppend(&s, "  const ", idx_, " r_end = min((", idx_, ")(blockIdx.x + 1) * ",
                        index_literal(chunk), ", ", R, ");\n");
        if (vec > 1) {
          absl::StrAppend(
              &s, vector_loop(absl::StrCat("(", idx_, ")blockIdx.x * ", index_literal(chunk),
                                           " + (", idx_, ")threadIdx.x * ", vec),
                              "r_end", absl::StrCat("(", idx_, ")blockDim.x * ", vec), "  "));
        } else {
          absl::StrAppend(&s, kUnroll);
          absl::StrAppend(&s, "  for (", idx_, " r = (", idx_, ")blockIdx.x * ",
                          index_literal(chunk), " + threadIdx.x; r < r_end; r += blockDim.x) {\n",
                          loop_body("    "), "  }\n");
        }
        absl::StrAppend(&s, reduce_block("  "));
        const std::string slot = absl::StrCat("o * ", index_literal(split), " + blockIdx.x");
        absl::StrAppend(&s, "  if (threadIdx.x == 0) {\n    part[", slot, "] = acc;\n");
        if (arg) absl::StrAppend(&s, "    part_i[", slot, "] = acc_i;\n");
        // Publish the partial before taking a ticket; the last block's reads go around L1.
        absl::StrAppend(&s, "    __threadfence();\n",
                        "    last = atomicAdd(&tickets[o], 1u) == ", split - 1, "u;\n  }\n",
                        "  __syncthreads();\n  if (!last) return;\n  __threadfence();\n");
        absl::StrAppend(&s, "  acc = ", identity(), ";\n");
        if (arg) absl::StrAppend(&s, "  acc_i = 0;\n");
        absl::StrAppend(&s, "  for (int g = threadIdx.x; g < ", split, "; g += blockDim.x) {\n");
        // Volatile reads: the other blocks' partials are not in this SM's L1.
        const std::string p =
            absl::StrCat("*(volatile ", acc_t, "*)&part[o * ", index_literal(split), " + g]");
        if (arg) {
          absl::StrAppend(&s, "    const ", acc_t, " x = ", p, ";\n",
                          "    const long long xi = *(volatile long long*)&part_i[o * ",
                          index_literal(split), " + g];\n    ", accumulate("x", "xi"), "\n  }\n");
        } else {
          absl::StrAppend(&s, "    ", accumulate(p, ""), "\n  }\n");
        }
        absl::StrAppend(&s, reduce_block("  "));
        absl::StrAppend(&s, "  if (threadIdx.x == 0) {\n    tickets[o] = 0;\n");
        finish(s, emitted, "    ");
        absl::StrAppend(&s, "  }\n}\n");
        out.grid[0] = static_cast<uint32_t>(split);
        out.grid[1] = static_cast<uint32_t>(std::max<int64_t>(outer_, 1));
        out.block[0] = kThreads;
        break;
      }
      case CudaStrategy::kElementwise:
      case CudaStrategy::kRow:
      case CudaStrategy::kThreadPerRow:
        break;
    }
    out.code = std::move(s);
  }

  // ---- row kernels ----

  // One pass over the reduced points of a row: a stage, the main reduction, or the stores.
  struct Sweep {
    std::vector<bool> row;    // its expressions computed once per row, before the loop
    std::vector<bool> point;  // ... and at every reduced point (they read a reduced loop variable)
    int vec = 1;              // points per thread and step (vector loads and stores)
    std::vector<int32_t> loads;    // loads read `vec` at a time
    std::vector<size_t> vec_outs;  // outputs stored `vec` at a time (the stores' sweep)
  };

  // The sweep of the expressions `cone` selects (those that its loop combines or stores need).
  Sweep make_sweep(const std::vector<bool>& cone, bool vectorize) const {
    Sweep sw;
    sw.row.assign(k_.exprs.size(), false);
    sw.point.assign(k_.exprs.size(), false);
    for (size_t i = 0; i < k_.exprs.size(); ++i) {
      sw.row[i] = cone[i] && !a_.reduced[i] && !a_.uses_acc[i];
      sw.point[i] = cone[i] && a_.reduced[i];
    }
    if (vectorize) sw.vec = reduction_vector_width(sw.point, &sw.loads);
    return sw;
  }

  // Loop variables a sweep's vector accesses read at the start of each group.
  std::vector<bool> vector_axes(const Sweep& sw) const {
    std::vector<bool> axes(rank_, false);
    auto add = [&](const Affine& f) {
      for (int d = 0; d < rank_; ++d) axes[d] = axes[d] || f.coef[d] != 0;
    };
    for (int32_t i : sw.loads) add(*a_.affine[k_.exprs[i].a]);
    for (size_t o : sw.vec_outs) add(*a_.affine[k_.outputs[o].index]);
    return axes;
  }

  // The loop of one sweep over the reduced points `r` of the row: `body(indent)` is the text at
  // point r. A block's threads take points start, start + stride, ... (with sw.vec > 1, groups of
  // vec consecutive points: one vector load per input in sw.loads and one vector store per output
  // in sw.vec_outs); one thread takes all of them in order (start "0", stride "1").
  std::string row_loop(const Sweep& sw, const std::string& start, const std::string& stride,
                       const std::function<std::string(const std::string&)>& body,
                       const std::string& indent) {
    const std::string R = index_literal(reduced_);
    if (reduced_ == 0) return "";  // no points (and no index math dividing by a zero extent)
    if (sw.vec == 1) {
      return absl::StrCat(kUnroll, indent, "for (", idx_, " r = ", start, "; r < ", R,
                          "; r += ", stride, ") {\n", body(indent + "  "), indent, "}\n");
    }
    const std::string in2 = indent + "  ";
    const int vec = sw.vec;
    std::string b = absl::StrCat(indent, "for (", idx_, " r4 = (", start, ") * ", vec, "; r4 < ", R,
                                 "; r4 += (", stride, ") * ", vec, ") {\n");
    std::string fill;
    declare_vector_loads(sw.loads, vec, in2, b, fill);
    for (size_t o : sw.vec_outs) {
      absl::StrAppend(&b, in2, idx_, " s", o, ";\n");
      absl::StrAppend(&fill, in2, "  s", o, " = ", affine_text(*a_.affine[k_.outputs[o].index]),
                      ";\n");
    }
    absl::StrAppend(&b, in2, "{\n");
    decompose(b, "r4", k_.num_outer, rank_, vector_axes(sw), (in2 + "  ").c_str(), "t");
    absl::StrAppend(&b, fill, in2, "}\n");
    for (size_t o : sw.vec_outs) {
      absl::StrAppend(&b, in2, "smelt_rt::Vec<", mem_type(k_.outputs[o].dtype), ", ", vec, "> O", o,
                      ";\n");
    }
    absl::StrAppend(&b, "#pragma unroll\n", in2, "for (int j = 0; j < ", vec, "; ++j) {\n", in2,
                    "  const ", idx_, " r = r4 + j;\n", body(in2 + "  "), in2, "}\n");
    for (size_t o : sw.vec_outs) {
      absl::StrAppend(&b, in2, "*reinterpret_cast<smelt_rt::Vec<", mem_type(k_.outputs[o].dtype),
                      ", ", vec, ">*>(out", o, " + s", o, ") = O", o, ";\n");
    }
    absl::StrAppend(&b, indent, "}\n");
    load_override_.clear();
    return b;
  }

  // The point `r`'s part of a sweep: its reduced loop variables and expressions, then `action`.
  std::string row_point(const Sweep& sw, const std::string& action, const std::string& indent) {
    std::string b;
    decompose(b, "r", k_.num_outer, rank_, axes_used(sw.point), indent.c_str(), "t");
    std::vector<bool> emitted(k_.exprs.size(), false);
    emit_exprs(b, sw.point, emitted, indent.c_str());
    absl::StrAppend(&b, action);
    return b;
  }

  void emit_row(CudaKernel& out) {
    const int64_t sms = target_.multiprocessors;
    // Rows of a warp or less: one thread per row, every sweep serial, no synchronization. So
    // too for many rows whose points are contiguous along the rows (a softmax over a middle
    // axis): neighbouring threads then read neighbouring elements, where a block per row would
    // read one element per row each time.
    const bool coalesced_outer = loads_step_along_outputs(a_.reduced);
    const bool serial = reduced_ <= 32 || (coalesced_outer && outer_ >= 32 * sms);
    out.strategy = serial ? CudaStrategy::kThreadPerRow : CudaStrategy::kRow;
    const size_t n = k_.exprs.size();
    const bool main = k_.reduce != ReduceOp::kNone;
    const bool arg = is_arg_reduce(k_.reduce);

    std::vector<Sweep> sweeps;
    for (size_t st = 0; st < k_.stages.size(); ++st) {
      sweeps.push_back(make_sweep(a_.for_stage[st], !serial));
    }
    if (main) {
      sweeps.push_back(make_sweep(a_.for_reduce, !serial));
    } else {
      // The stores: an output whose index steps by 1 along the innermost (reduced) axis, and is
      // a multiple of the width at every group start, is stored a vector at a time (at most 16
      // bytes: outputs are only known to be 16-byte aligned); the others element by element.
      Sweep sw = make_sweep(a_.for_output, !serial);
      if (sw.vec > 1) {
        const int last = rank_ - 1;
        std::vector<int32_t> roots;
        for (size_t o = 0; o < k_.outputs.size(); ++o) {
          const KOutput& ko = k_.outputs[o];
          const std::optional<Affine>& f = a_.affine[ko.index];
          bool ok = f && f->coef[last] == 1 && f->constant % sw.vec == 0 &&
                    dtype_size(ko.dtype) * sw.vec <= 16;
          for (int d = 0; ok && d < last; ++d) ok = f->coef[d] % sw.vec == 0;
          if (ok) {
            sw.vec_outs.push_back(o);
          } else {
            roots.push_back(ko.index);
          }
          roots.push_back(ko.value);
        }
        // A vector store's index is computed once per group, not per point.
        const std::vector<bool> point = cone(k_, roots);
        for (size_t i = 0; i < n; ++i) sw.point[i] = point[i] && a_.reduced[i];
        std::erase_if(sw.loads, [&](int32_t i) { return !sw.point[i]; });
        if (sw.loads.empty() && sw.vec_outs.empty()) sw.vec = 1;
      }
      sweeps.push_back(std::move(sw));
    }
    std::vector<bool> epilogue(n, false);
    if (main) {
      for (size_t i = 0; i < n; ++i) epilogue[i] = a_.for_output[i] && !a_.reduced[i];
    }
    // The outer loop variables read once per row.
    std::vector<bool> outer_used = axes_used(epilogue);
    for (const Sweep& sw : sweeps) {
      const std::vector<bool> r = axes_used(sw.row), v = vector_axes(sw);
      for (int d = 0; d < k_.num_outer; ++d) outer_used[d] = outer_used[d] || r[d] || v[d];
    }
    out.vector_width = 1;
    for (const Sweep& sw : sweeps) out.vector_width = std::max(out.vector_width, sw.vec);

    int threads = kThreads;
    if (!serial) {
      threads = 32;
      while (threads < kThreads && threads < reduced_) threads *= 2;
    }
    std::string s = absl::StrCat("extern \"C\" __global__ void __launch_bounds__(", threads, ") ",
                                 out.symbol, "(", params(false), ") {\n");
    for (size_t st = 0; st < k_.stages.size(); ++st) {
      const char* t = reg_type(k_.stages[st].dtype);
      absl::StrAppend(&s, "  auto combine", st, " = [](", t, " a, ", t, " b) -> ", t, " { return ",
                      combine_of(k_.stages[st].op), "; };\n");
    }
    const std::string acc_t = main ? acc_type() : "";
    if (main && !arg) {
      absl::StrAppend(&s, "  auto combine = [](", acc_t, " a, ", acc_t, " b) -> ", acc_t,
                      " { return ", combine_expr(), "; };\n");
    }
    if (!serial) {
      // Per stage: the block reduction's scratch and the slot that broadcasts its result.
      for (size_t st = 0; st < k_.stages.size(); ++st) {
        const char* t = reg_type(k_.stages[st].dtype);
        absl::StrAppend(&s, "  __shared__ ", t, " sh", st, "[32];\n  __shared__ ", t, " bc", st,
                        ";\n");
      }
      if (main) {
        absl::StrAppend(&s, "  __shared__ ", acc_t, " sh[32];\n");
        if (arg) absl::StrAppend(&s, "  __shared__ long long shi[32];\n");
      }
    }
    const std::string O = index_literal(outer_);
    if (serial) {
      absl::StrAppend(&s, "  for (", idx_, " o = (", idx_,
                      ")blockIdx.x * blockDim.x + threadIdx.x; o < ", O, "; o += (", idx_,
                      ")gridDim.x * blockDim.x) {\n");
    } else {
      absl::StrAppend(&s, "  for (", idx_, " o = blockIdx.x; o < ", O, "; o += gridDim.x) {\n");
    }
    const std::string start = serial ? "0" : absl::StrCat("(", idx_, ")threadIdx.x");
    const std::string stride = serial ? "1" : absl::StrCat("(", idx_, ")blockDim.x");
    decompose(s, "o", 0, k_.num_outer, outer_used, "    ", "u");
    std::vector<bool> emitted(n, false);
    for (size_t st = 0; st < k_.stages.size(); ++st) {
      const Sweep& sw = sweeps[st];
      const KStage& stage = k_.stages[st];
      const char* t = reg_type(stage.dtype);
      const std::string id = identity_of(stage.op, stage.dtype);
      emit_exprs(s, sw.row, emitted, "    ");
      absl::StrAppend(&s, "    ", t, " st", st, " = ", id, ";\n");
      const std::string action =
          absl::StrCat("st", st, " = combine", st, "(st", st, ", ", v(stage.value), ");\n");
      absl::StrAppend(
          &s, row_loop(
                  sw, start, stride,
                  [&](const std::string& in) { return row_point(sw, in + action, in); }, "    "));
      if (!serial) {
        // Thread 0 holds the block's result; every thread needs it for the next sweeps.
        absl::StrAppend(&s, "    st", st, " = smelt_rt::block_reduce(st", st, ", (", t, ")", id,
                        ", combine", st, ", sh", st, ");\n    if (threadIdx.x == 0) bc", st,
                        " = st", st, ";\n    __syncthreads();\n    st", st, " = bc", st, ";\n");
      }
    }
    const Sweep& last = sweeps.back();
    emit_exprs(s, last.row, emitted, "    ");
    if (main) {
      absl::StrAppend(&s, "    ", acc_t, " acc = ", identity(), ";\n");
      if (arg) absl::StrAppend(&s, "    long long acc_i = 0;\n");
      const std::string action = accumulate(v(k_.reduce_value), "r") + "\n";
      absl::StrAppend(
          &s, row_loop(
                  last, start, stride,
                  [&](const std::string& in) { return row_point(last, in + action, in); }, "    "));
      std::string indent = "    ";
      if (!serial) {
        if (arg) {
          absl::StrAppend(&s, "    smelt_rt::block_reduce_arg<", k_.reduce == ReduceOp::kArgMax,
                          ">(acc, acc_i, sh, shi);\n");
        } else {
          absl::StrAppend(&s, "    acc = smelt_rt::block_reduce(acc, (", acc_t, ")", identity(),
                          ", combine, sh);\n");
        }
        absl::StrAppend(&s, "    if (threadIdx.x == 0) {\n");
        indent = "      ";
      }
      emit_exprs(s, epilogue, emitted, indent.c_str());
      emit_stores(s, indent.c_str());
      if (!serial) absl::StrAppend(&s, "    }\n");
    } else {
      auto stores = [&](const std::string& in) {
        std::string b;
        for (size_t o = 0; o < k_.outputs.size(); ++o) {
          const KOutput& ko = k_.outputs[o];
          const char* cast = ko.dtype == DType::Bool ? "(unsigned char)" : "";
          if (std::find(last.vec_outs.begin(), last.vec_outs.end(), o) != last.vec_outs.end()) {
            absl::StrAppend(&b, in, "O", o, ".v[j] = ", cast, v(ko.value), ";\n");
          } else {
            absl::StrAppend(&b, in, "out", o, "[", v(ko.index), "] = ", cast, v(ko.value), ";\n");
          }
        }
        return b;
      };
      absl::StrAppend(
          &s, row_loop(
                  last, start, stride,
                  [&](const std::string& in) { return row_point(last, stores(in), in); }, "    "));
    }
    // The next row's block reductions and broadcasts rewrite the shared slots this row read.
    if (!serial) absl::StrAppend(&s, "    __syncthreads();\n");
    absl::StrAppend(&s, "  }\n}\n");
    if (serial) {
      set_grid(out, ceil_div(outer_, kThreads));
    } else {
      out.grid[0] = static_cast<uint32_t>(std::clamp<int64_t>(outer_, 1, sms * 32));
      out.block[0] = threads;
    }
    out.code = std::move(s);
  }

  const Kernel& k_;
  const CudaTarget target_;
  const Analysis a_;
  const int rank_;
  int64_t outer_ = 1, reduced_ = 1;
  const char* idx_ = "long long";
  // Per expression: a name that replaces a load's element read (a lane of a vector load).
  std::vector<std::string> load_override_;
};

const char* strategy_name(CudaStrategy s) {
  switch (s) {
    case CudaStrategy::kElementwise:
      return "elementwise";
    case CudaStrategy::kThreadPerOutput:
      return "thread per output";
    case CudaStrategy::kBlockPerOutput:
      return "block per output";
    case CudaStrategy::kSplit:
      return "split reduction";
    case CudaStrategy::kColumn:
      return "column";
    case CudaStrategy::kRow:
      return "row";
    case CudaStrategy::kThreadPerRow:
      return "thread per row";
  }
  return "?";
}

}  // namespace

const std::string& cuda_prelude() {
  static const std::string* prelude = new std::string(kPrelude);
  return *prelude;
}

absl::StatusOr<CudaKernel> emit_cuda(const Kernel& k, const CudaTarget& target) {
  if (absl::Status s = check_kernel(k); !s.ok()) return s;
  // In-place outputs are a CPU executor feature (donated host buffers); no CUDA program asks.
  if (!k.in_place.empty()) {
    return absl::UnimplementedError(
        absl::StrCat("kernel ", k.name, ": in-place outputs are not emitted for CUDA"));
  }
  return Emitter(k, target).run();
}

std::string emit_cuda_text(const Kernel& k, const CudaTarget& target) {
  absl::StatusOr<CudaKernel> ck = emit_cuda(k, target);
  if (!ck.ok()) return absl::StrCat("// error: ", ck.status().message(), "\n");
  std::string s = absl::StrFormat(
      "// %s (%s): %s, grid [%d, %d, %d], block %d, %d-bit indices, vector width %d", k.name,
      ck->symbol, strategy_name(ck->strategy), ck->grid[0], ck->grid[1], ck->grid[2],
      ck->block[0] * ck->block[1], ck->index64 ? 64 : 32, ck->vector_width);
  if (ck->scratch_bytes > 0) {
    absl::StrAppend(&s, ", scratch ", ck->scratch_bytes, " B, tickets ", ck->ticket_bytes, " B");
  }
  absl::StrAppend(&s, "\n", cuda_prelude(), "\n", ck->code);
  return s;
}

}  // namespace smelt::compiler
