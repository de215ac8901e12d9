// Accuracy, special values and vectorization of compiler/codegen/llvm/vecmath.h.
//
// Each function is emitted three ways and JIT-compiled (O3, host CPU) with LLJIT directly, so the
// test needs no other part of the compiler:
//   <fn>_loop:   a scalar loop over arrays, which O3 must vectorize (the IR is checked);
//   <fn>_vec:    a loop over explicit <W x T> vectors (the vector form of the emitters);
//   <fn>_scalar: T f(T x, T y).
// All three must agree bit for bit. Errors are measured in ULPs of the result type against libm
// one precision up (double for float, x87 long double for double). SMELT_VECMATH_VERBOSE=1
// prints the accuracy and throughput tables; SMELT_VECMATH_DUMP=<fn> prints <fn>'s optimized
// loop IR.
#include "compiler/codegen/llvm/vecmath.h"

#include <time.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/ExecutionEngine/Orc/ThreadSafeModule.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicInst.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

namespace smelt::compiler::llvm_codegen {
namespace {

// kExpNormalized (emit_exp_normalized) is in neither list: its own tests below.
enum class Fn { kExp, kLog, kTanh, kSigmoid, kSin, kCos, kPow, kExpNormalized };
constexpr Fn kUnaryFns[] = {Fn::kExp, Fn::kLog, Fn::kTanh, Fn::kSigmoid, Fn::kSin, Fn::kCos};
constexpr Fn kAllFns[] = {Fn::kExp, Fn::kLog, Fn::kTanh, Fn::kSigmoid,
                          Fn::kSin, Fn::kCos, Fn::kPow};

const char* name(Fn fn) {
  switch (fn) {
    case Fn::kExp:
      return "exp";
    case Fn::kLog:
      return "log";
    case Fn::kTanh:
      return "tanh";
    case Fn::kSigmoid:
      return "sigmoid";
    case Fn::kSin:
      return "sin";
    case Fn::kCos:
      return "cos";
    case Fn::kPow:
      return "pow";
    case Fn::kExpNormalized:
      return "exp_normalized";
  }
  return "?";
}

void PrintTo(Fn fn, std::ostream* os) { *os << name(fn); }

llvm::Value* emit(Fn fn, llvm::IRBuilder<>& b, llvm::Value* x, llvm::Value* y) {
  switch (fn) {
    case Fn::kExp:
      return emit_exp(b, x);
    case Fn::kLog:
      return emit_log(b, x);
    case Fn::kTanh:
      return emit_tanh(b, x);
    case Fn::kSigmoid:
      return emit_sigmoid(b, x);
    case Fn::kSin:
      return emit_sin(b, x);
    case Fn::kCos:
      return emit_cos(b, x);
    case Fn::kPow:
      return emit_pow(b, x, y);
    case Fn::kExpNormalized:
      return emit_exp_normalized(b, x);
  }
  return nullptr;
}

bool verbose() {
  const char* v = std::getenv("SMELT_VECMATH_VERBOSE");
  return v != nullptr && v[0] == '1';
}

// ---- JIT harness ------------------------------------------------------------------------------

using LoopFn = void (*)(const void* x, const void* y, void* out, int64_t n);

struct Compiled {
  LoopFn loop = nullptr;   // any n
  LoopFn vec = nullptr;    // n a multiple of vec_width
  void* scalar = nullptr;  // T (*)(T, T)
  int vec_width = 0;
  std::string loop_ir;     // the optimized IR of the loop function
  std::string emitted_ir;  // the unoptimized scalar function
};

class Jit {
 public:
  static Jit& get() {
    static Jit* jit = new Jit();
    return *jit;
  }

  // Compiles fn for float or double. With `fast_builder` the builder carries every fast-math
  // flag when the emitter is called (the emitters must ignore them).
  Compiled compile(Fn fn, bool f64, bool fast_builder = false) {
    auto ctx = std::make_unique<llvm::LLVMContext>();
    std::string base = std::string(name(fn)) + (f64 ? "_f64" : "_f32") +
                       (fast_builder ? "_fmf" : "") + std::to_string(counter_++);
    auto mod = std::make_unique<llvm::Module>(base, *ctx);
    mod->setDataLayout(tm_->createDataLayout());
    mod->setTargetTriple(tm_->getTargetTriple().str());
    llvm::Type* t = f64 ? llvm::Type::getDoubleTy(*ctx) : llvm::Type::getFloatTy(*ctx);
    int width = f64 ? 8 : 16;

    Compiled out;
    out.vec_width = width;
    llvm::Function* scalar = build_scalar(*mod, fn, t, base + "_scalar", fast_builder);
    llvm::raw_string_ostream(out.emitted_ir) << *scalar;
    llvm::Function* loop = build_loop(*mod, fn, t, 1, base + "_loop", fast_builder);
    build_loop(*mod, fn, t, width, base + "_vec", fast_builder);
    if (llvm::verifyModule(*mod, &llvm::errs())) {
      ADD_FAILURE() << "invalid IR for " << base;
      return out;
    }
    optimize(*mod);
    llvm::raw_string_ostream(out.loop_ir) << *loop;

    llvm::cantFail(jit_->addIRModule(llvm::orc::ThreadSafeModule(std::move(mod), std::move(ctx))));
    out.loop = lookup<LoopFn>(base + "_loop");
    out.vec = lookup<LoopFn>(base + "_vec");
    out.scalar = lookup<void*>(base + "_scalar");
    return out;
  }

 private:
  Jit() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    auto jtmb = llvm::cantFail(llvm::orc::JITTargetMachineBuilder::detectHost());
    jtmb.setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
    tm_ = llvm::cantFail(jtmb.createTargetMachine());
    jit_ = llvm::cantFail(llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(jtmb).create());
  }

  template <typename F>
  F lookup(const std::string& symbol) {
    return llvm::cantFail(jit_->lookup(symbol)).toPtr<F>();
  }

  static void set_fast(llvm::IRBuilder<>& b, bool fast) {
    if (fast) b.setFastMathFlags(llvm::FastMathFlags::getFast());
  }

  llvm::Function* build_scalar(llvm::Module& mod, Fn fn, llvm::Type* t, const std::string& name,
                               bool fast) {
    auto* type = llvm::FunctionType::get(t, {t, t}, false);
    auto* f = llvm::Function::Create(type, llvm::Function::ExternalLinkage, name, mod);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(mod.getContext(), "entry", f));
    set_fast(b, fast);
    b.CreateRet(emit(fn, b, f->getArg(0), f->getArg(1)));
    return f;
  }

  // void name(const T* x, const T* y, T* out, i64 n): out[i] = fn(x[i], y[i]), `width` lanes per
  // iteration (1: scalar IR for the vectorizer; n % width == 0 otherwise).
  llvm::Function* build_loop(llvm::Module& mod, Fn fn, llvm::Type* t, int width,
                             const std::string& name, bool fast) {
    llvm::LLVMContext& ctx = mod.getContext();
    llvm::Type* ptr = llvm::PointerType::get(ctx, 0);
    llvm::Type* i64 = llvm::Type::getInt64Ty(ctx);
    auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptr, ptr, ptr, i64}, false);
    auto* f = llvm::Function::Create(type, llvm::Function::ExternalLinkage, name, mod);
    for (int i = 0; i < 3; ++i) f->addParamAttr(i, llvm::Attribute::NoAlias);
    auto* entry = llvm::BasicBlock::Create(ctx, "entry", f);
    auto* body = llvm::BasicBlock::Create(ctx, "body", f);
    auto* exit = llvm::BasicBlock::Create(ctx, "exit", f);
    llvm::IRBuilder<> b(entry);
    llvm::Value* n = f->getArg(3);
    b.CreateCondBr(b.CreateICmpSGT(n, b.getInt64(0)), body, exit);

    b.SetInsertPoint(body);
    llvm::PHINode* i = b.CreatePHI(i64, 2);
    i->addIncoming(b.getInt64(0), entry);
    llvm::Type* vt = width == 1 ? t : llvm::FixedVectorType::get(t, width);
    llvm::Align align(t->getPrimitiveSizeInBits() / 8);
    llvm::Value* x = b.CreateAlignedLoad(vt, b.CreateGEP(t, f->getArg(0), i), align);
    llvm::Value* y = b.CreateAlignedLoad(vt, b.CreateGEP(t, f->getArg(1), i), align);
    set_fast(b, fast);
    llvm::Value* r = emit(fn, b, x, y);
    b.clearFastMathFlags();
    b.CreateAlignedStore(r, b.CreateGEP(t, f->getArg(2), i), align);
    llvm::Value* next = b.CreateAdd(i, b.getInt64(width), "", /*HasNUW=*/true, /*HasNSW=*/true);
    i->addIncoming(next, body);
    b.CreateCondBr(b.CreateICmpSGE(next, n), exit, body);

    b.SetInsertPoint(exit);
    b.CreateRetVoid();
    return f;
  }

  void optimize(llvm::Module& mod) {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder pb(tm_.get());
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(mod, mam);
  }

  std::unique_ptr<llvm::TargetMachine> tm_;
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  int counter_ = 0;
};

// ---- references and ULPs ----------------------------------------------------------------------

// The reference one precision up: double libm for float, long double libm for double.
template <typename T>
long double reference(Fn fn, T x, T y) {
  if constexpr (std::is_same_v<T, float>) {
    double d = x, e = y;
    switch (fn) {
      case Fn::kExp:
      case Fn::kExpNormalized:
        return std::exp(d);
      case Fn::kLog:
        return std::log(d);
      case Fn::kTanh:
        return std::tanh(d);
      case Fn::kSigmoid:
        return 1.0L / (1.0L + std::exp(-static_cast<long double>(d)));
      case Fn::kSin:
        return std::sin(d);
      case Fn::kCos:
        return std::cos(d);
      case Fn::kPow:
        return std::pow(d, e);
    }
  } else {
    long double d = x, e = y;
    switch (fn) {
      case Fn::kExp:
      case Fn::kExpNormalized:
        return std::exp(d);
      case Fn::kLog:
        return std::log(d);
      case Fn::kTanh:
        return std::tanh(d);
      case Fn::kSigmoid:
        return 1.0L / (1.0L + std::exp(-d));
      case Fn::kSin:
        return std::sin(d);
      case Fn::kCos:
        return std::cos(d);
      case Fn::kPow:
        return std::pow(d, e);
    }
  }
  return 0;
}

constexpr double kInf = std::numeric_limits<double>::infinity();

// |got - ref| in units of the last place of T at ref (denormal spacing below the normals).
// NaN vs NaN is 0; a wrong NaN, infinity or zero sign class is infinite.
template <typename T>
double ulp_error(T got, long double ref) {
  if (std::isnan(ref) || std::isnan(got)) return std::isnan(ref) && std::isnan(got) ? 0 : kInf;
  T rounded = static_cast<T>(ref);
  if (std::isinf(rounded) || std::isinf(got)) return got == rounded ? 0 : kInf;
  constexpr int digits = std::numeric_limits<T>::digits;
  constexpr int emin = std::numeric_limits<T>::min_exponent - 1;
  int e = ref == 0 ? emin : std::max(std::ilogb(ref), emin);
  long double ulp = std::ldexp(1.0L, e - (digits - 1));
  return static_cast<double>(std::fabs(static_cast<long double>(got) - ref) / ulp);
}

template <typename T>
struct MaxError {
  double ulp = 0;
  T x = 0, y = 0;
  T got = 0;
  long double ref = 0;
  void add(double e, T xi, T yi, T g, long double r) {
    if (e > ulp || std::isnan(e)) ulp = e, x = xi, y = yi, got = g, ref = r;
  }
  std::string where() const {
    char buf[200];
    std::snprintf(buf, sizeof buf, "%.3f ULP at x=%.17g y=%.17g: got %.17g, want %.20Lg", ulp,
                  double(x), double(y), double(got), ref);
    return buf;
  }
};

// ---- running ----------------------------------------------------------------------------------

template <typename T>
struct Kernel {
  Compiled c;
  static Kernel& get(Fn fn) {
    static Kernel<T>* kernels[8] = {};
    Kernel*& k = kernels[static_cast<int>(fn)];
    if (k == nullptr) {
      k = new Kernel{Jit::get().compile(fn, std::is_same_v<T, double>)};
      const char* dump = std::getenv("SMELT_VECMATH_DUMP");
      if (dump != nullptr && std::string(dump) == name(fn)) std::puts(k->c.loop_ir.c_str());
    }
    return *k;
  }
  T scalar(T x, T y) const { return reinterpret_cast<T (*)(T, T)>(c.scalar)(x, y); }
};

bool same_value(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) ||
         std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b);
}

// Runs fn over (x, y) with the vectorized loop; checks that the explicit-vector and the scalar
// forms agree bit for bit; returns the loop's results.
template <typename T>
std::vector<T> run(Fn fn, const std::vector<T>& x, const std::vector<T>& y) {
  const Kernel<T>& k = Kernel<T>::get(fn);
  size_t n = x.size();
  std::vector<T> out(n), out_vec(n);
  k.c.loop(x.data(), y.data(), out.data(), static_cast<int64_t>(n));
  size_t n_vec = n / k.c.vec_width * k.c.vec_width;
  k.c.vec(x.data(), y.data(), out_vec.data(), static_cast<int64_t>(n_vec));
  int mismatches = 0;
  for (size_t i = 0; i < n && mismatches < 5; ++i) {
    T other = i < n_vec && i % 3 != 0 ? out_vec[i] : (i % 61 == 0 ? k.scalar(x[i], y[i]) : out[i]);
    if (!same_value(out[i], other)) {
      ++mismatches;
      ADD_FAILURE() << name(fn) << ": loop and vector/scalar forms differ at x=" << x[i]
                    << " y=" << y[i] << ": " << out[i] << " vs " << other;
    }
  }
  return out;
}

// sin and cos meet their bound for |x| below this (float: 2 ULP to 1e6, 3 to 6.5e6, see
// VecmathTrigRange); past it they only stay finite and within [-1, 1]. (Cody-Waite reduction:
// x 2/pi must round to the nearest integer j, which takes ulp(j) < 1: j < 2^22 for float and
// 2^51 for double.)
template <typename T>
double trig_limit() {
  return std::is_same_v<T, float> ? 1e6 : 3.5e15;
}

// True if `fn` at x has an accuracy requirement; checks the weaker one otherwise.
template <typename T>
bool accuracy_applies(Fn fn, T x, T got) {
  if ((fn != Fn::kSin && fn != Fn::kCos) || !(std::fabs(x) > trig_limit<T>()) || std::isinf(x)) {
    return true;
  }
  EXPECT_TRUE(std::isfinite(got) && std::fabs(got) <= 1) << name(fn) << "(" << x << ") = " << got;
  return false;
}

template <typename T>
MaxError<T> measure(Fn fn, const std::vector<T>& x, const std::vector<T>& y) {
  std::vector<T> got = run(fn, x, y);
  MaxError<T> err;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!accuracy_applies(fn, x[i], got[i])) continue;
    long double ref = reference(fn, x[i], y[i]);
    err.add(ulp_error(got[i], ref), x[i], y[i], got[i], ref);
  }
  return err;
}

template <typename T>
using Bits = std::conditional_t<std::is_same_v<T, float>, uint32_t, uint64_t>;

// `count` bit patterns evenly spaced over all of T (both signs, every exponent, NaNs), each
// jittered within its stride so the mantissas vary.
template <typename T>
std::vector<T> bit_sweep(size_t count) {
  using U = Bits<T>;
  std::mt19937_64 rng(1);
  U stride = static_cast<U>(std::numeric_limits<U>::max() / count + 1);
  std::vector<T> xs(count);
  for (size_t i = 0; i < count; ++i) {
    U bits = static_cast<U>(i * stride + rng() % stride);
    xs[i] = std::bit_cast<T>(bits);
  }
  return xs;
}

template <typename T>
std::vector<T> linear_sweep(double lo, double hi, size_t count) {
  std::vector<T> xs(count);
  for (size_t i = 0; i < count; ++i) xs[i] = static_cast<T>(lo + (hi - lo) * i / (count - 1));
  return xs;
}

template <typename T>
std::vector<T> uniform(double lo, double hi, size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> xs(count);
  for (T& v : xs) v = static_cast<T>(dist(rng));
  return xs;
}

template <typename T>
std::vector<T> concat(std::vector<std::vector<T>> parts) {
  std::vector<T> all;
  for (auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

constexpr size_t kSweep = size_t{1} << 24;

template <typename T>
size_t sweep_size() {
  return std::is_same_v<T, float> ? kSweep : kSweep / 4;  // long double references are slower
}

// Every finite or special input class for a unary function: the whole bit-pattern range plus
// a dense linear sweep and random points over the domain where the result is interesting.
template <typename T>
std::vector<T> unary_inputs(Fn fn) {
  size_t n = sweep_size<T>();
  bool f64 = std::is_same_v<T, double>;
  double lo = -20, hi = 20;
  switch (fn) {
    case Fn::kExp:
      lo = f64 ? -746 : -104, hi = f64 ? 710 : 89;
      break;
    case Fn::kLog:
      lo = 0, hi = 16;
      break;
    case Fn::kTanh:
      lo = -10, hi = 10;
      break;
    case Fn::kSigmoid:
      lo = f64 ? -746 : -104, hi = 40;
      break;
    case Fn::kSin:
    case Fn::kCos:
      lo = -1e4, hi = 1e4;
      break;
    case Fn::kPow:
    case Fn::kExpNormalized:  // its own inputs (VecmathExpNormalized)
      break;
  }
  return concat<T>({bit_sweep<T>(n), linear_sweep<T>(lo, hi, n / 8), uniform<T>(lo, hi, n / 8, 7),
                    uniform<T>(-1, 1, n / 16, 8)});
}

// emit_exp_normalized's float bound (vecmath.h) over [kExpNormalizedLow, 0]; below, the result
// is within 2^-126 of e^x.
constexpr double kExpNormalizedUlp = 4;
constexpr float kExpNormalizedLow = -87.5f;

// The spec's bounds; the measured worst cases are in the header.
double bound(Fn fn, bool f64) {
  switch (fn) {
    case Fn::kExp:
    case Fn::kLog:
      return 2;
    case Fn::kTanh:
    case Fn::kSigmoid:
      return f64 ? 4 : 3;
    case Fn::kSin:
    case Fn::kCos:
      return f64 ? 4 : 2;
    case Fn::kPow:
      return 4;
    case Fn::kExpNormalized:  // float over [-87.5, 0]; double is exp's
      return f64 ? 2 : kExpNormalizedUlp;
  }
  return 0;
}

template <typename T>
void check_unary_accuracy(Fn fn) {
  std::vector<T> x = unary_inputs<T>(fn);
  std::vector<T> y(x.size(), T(0));
  MaxError<T> err = measure<T>(fn, x, y);
  bool f64 = std::is_same_v<T, double>;
  if (verbose()) {
    std::printf("[accuracy] %-8s %s over %zu inputs: %s\n", name(fn), f64 ? "f64" : "f32", x.size(),
                err.where().c_str());
  }
  EXPECT_LE(err.ulp, bound(fn, f64)) << name(fn) << (f64 ? " f64 " : " f32 ") << err.where();
}

class VecmathAccuracy : public ::testing::TestWithParam<Fn> {};

TEST_P(VecmathAccuracy, Float) { check_unary_accuracy<float>(GetParam()); }
TEST_P(VecmathAccuracy, Double) { check_unary_accuracy<double>(GetParam()); }

// pow: see VecmathPow.
INSTANTIATE_TEST_SUITE_P(Unary, VecmathAccuracy, ::testing::ValuesIn(kUnaryFns),
                         [](const auto& info) { return std::string(name(info.param)); });

// ---- special values ---------------------------------------------------------------------------

template <typename T>
std::vector<T> special_values() {
  using L = std::numeric_limits<T>;
  std::vector<T> v = {T(0),          L::denorm_min(), L::min() / 2, L::min(),     L::epsilon(),
                      T(1e-20),      T(0.5),          T(1),         T(2),         T(3),
                      T(M_PI),       T(M_PI / 2),     T(10),        T(20),        T(88.5),
                      T(88.72283),   T(88.7228394),   T(89),        T(103.9),     T(104),
                      T(709.78),     T(709.79),       T(745.1),     T(746),       T(1e4),
                      T(1e6),        T(1e10),         T(1e20),      L::max() / 2, L::max(),
                      L::infinity(), L::min() * 3};
  size_t n = v.size();
  for (size_t i = 0; i < n; ++i) v.push_back(-v[i]);
  v.push_back(L::quiet_NaN());
  v.push_back(-L::quiet_NaN());
  return v;
}

// Zero, infinite and NaN results must be exactly C's (including the sign of zero); the others
// within the accuracy bound.
template <typename T>
void check_specials(Fn fn) {
  std::vector<T> x = special_values<T>();
  std::vector<T> y(x.size(), T(0));
  std::vector<T> got = run(fn, x, y);
  bool f64 = std::is_same_v<T, double>;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!accuracy_applies(fn, x[i], got[i])) continue;
    long double ref = reference(fn, x[i], y[i]);
    T want = static_cast<T>(ref);
    if (std::isnan(want) || std::isinf(want) || want == 0) {
      EXPECT_TRUE(same_value(got[i], want))
          << name(fn) << "(" << x[i] << ") = " << got[i] << ", want " << want;
    } else {
      EXPECT_LE(ulp_error(got[i], ref), bound(fn, f64))
          << name(fn) << "(" << x[i] << ") = " << got[i] << ", want " << want;
    }
  }
  const Kernel<T>& k = Kernel<T>::get(fn);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(same_value(k.scalar(x[i], y[i]), got[i])) << name(fn) << "(" << x[i] << ")";
  }
}

TEST(VecmathSpecial, Float) {
  for (Fn fn : kUnaryFns) check_specials<float>(fn);
}

TEST(VecmathSpecial, Double) {
  for (Fn fn : kUnaryFns) check_specials<double>(fn);
}

template <typename T>
void check_named_cases() {
  using L = std::numeric_limits<T>;
  const T inf = L::infinity(), nan = L::quiet_NaN();
  auto one = [](Fn fn, T x) { return run<T>(fn, {x}, {T(0)})[0]; };
  EXPECT_EQ(one(Fn::kExp, -inf), T(0));
  EXPECT_EQ(one(Fn::kExp, inf), inf);
  EXPECT_TRUE(std::isnan(one(Fn::kExp, nan)));
  EXPECT_EQ(one(Fn::kExp, T(1000)), inf);
  EXPECT_EQ(one(Fn::kExp, T(-1000)), T(0));
  EXPECT_EQ(one(Fn::kExp, T(0)), T(1));
  EXPECT_EQ(one(Fn::kExp, -T(0)), T(1));
  EXPECT_EQ(one(Fn::kExp, L::denorm_min()), T(1));
  // The smallest denormal result: e^x rounds to denorm_min.
  T x_tiny = std::log(L::denorm_min());
  EXPECT_EQ(one(Fn::kExp, x_tiny), std::exp(x_tiny));
  EXPECT_EQ(one(Fn::kLog, T(0)), -inf);
  EXPECT_EQ(one(Fn::kLog, -T(0)), -inf);
  EXPECT_TRUE(std::isnan(one(Fn::kLog, T(-1))));
  EXPECT_TRUE(std::isnan(one(Fn::kLog, -inf)));
  EXPECT_EQ(one(Fn::kLog, inf), inf);
  EXPECT_EQ(one(Fn::kLog, T(1)), T(0));
  EXPECT_EQ(one(Fn::kLog, L::denorm_min()), std::log(L::denorm_min()));
  EXPECT_EQ(one(Fn::kTanh, inf), T(1));
  EXPECT_EQ(one(Fn::kTanh, -inf), T(-1));
  EXPECT_TRUE(std::signbit(one(Fn::kTanh, -T(0))) && one(Fn::kTanh, -T(0)) == 0);
  EXPECT_EQ(one(Fn::kTanh, L::denorm_min()), L::denorm_min());
  EXPECT_EQ(one(Fn::kSigmoid, -inf), T(0));
  EXPECT_EQ(one(Fn::kSigmoid, inf), T(1));
  EXPECT_EQ(one(Fn::kSigmoid, T(0)), T(0.5));
  EXPECT_EQ(one(Fn::kSigmoid, T(-1e30)), T(0));
  EXPECT_EQ(one(Fn::kSigmoid, T(1e30)), T(1));
  EXPECT_TRUE(std::isnan(one(Fn::kSigmoid, nan)));
  EXPECT_TRUE(std::isnan(one(Fn::kSin, inf)));
  EXPECT_TRUE(std::isnan(one(Fn::kSin, -inf)));
  EXPECT_TRUE(std::isnan(one(Fn::kCos, inf)));
  EXPECT_TRUE(std::isnan(one(Fn::kCos, nan)));
  EXPECT_TRUE(std::signbit(one(Fn::kSin, -T(0))) && one(Fn::kSin, -T(0)) == 0);
  EXPECT_EQ(one(Fn::kCos, -T(0)), T(1));
  EXPECT_EQ(one(Fn::kSin, -L::denorm_min()), -L::denorm_min());
}

TEST(VecmathSpecial, NamedCasesFloat) { check_named_cases<float>(); }
TEST(VecmathSpecial, NamedCasesDouble) { check_named_cases<double>(); }

// ---- sin and cos over growing arguments -------------------------------------------------------

template <typename T>
void check_trig_ranges() {
  bool f64 = std::is_same_v<T, double>;
  // [lo, hi) and the accuracy bound there in ULPs (0: none, the results need only be finite and
  // within [-1, 1]).
  struct Range {
    double lo, hi, bound;
  };
  std::vector<Range> ranges =
      f64 ? std::vector<Range>{{0, 1e4, 4},       {1e4, 1e6, 4},   {1e6, 1e9, 4},
                               {1e9, 1e12, 4},    {1e12, 1e15, 4}, {1e15, 3.5e15, 4},
                               {3.5e15, 1e18, 0}, {1e18, 1e300, 0}}
          : std::vector<Range>{{0, 1e4, 2},     {1e4, 1e5, 2},  {1e5, 1e6, 2},  {1e6, 6.5e6, 3},
                               {6.5e6, 1e8, 0}, {1e8, 1e10, 0}, {1e10, 3e38, 0}};
  for (Fn fn : {Fn::kSin, Fn::kCos}) {
    for (const Range& r : ranges) {
      // Log-uniform magnitudes with both signs.
      std::vector<T> x = uniform<T>(std::log(std::max(r.lo, 1e-3)), std::log(r.hi), 1 << 18, 11);
      for (size_t i = 0; i < x.size(); ++i) x[i] = (i % 2 ? -1 : 1) * std::exp(x[i]);
      std::vector<T> y(x.size(), T(0));
      std::vector<T> got = run(fn, x, y);
      MaxError<T> err;
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_TRUE(std::isfinite(got[i]) && std::fabs(got[i]) <= 1)
            << name(fn) << "(" << x[i] << ") = " << got[i];
        long double ref = reference(fn, x[i], y[i]);
        err.add(ulp_error(got[i], ref), x[i], y[i], got[i], ref);
      }
      if (verbose()) {
        std::printf("[range] %s %s |x| in [%g, %g): %s\n", name(fn), f64 ? "f64" : "f32", r.lo,
                    r.hi, err.where().c_str());
      }
      if (r.bound > 0) EXPECT_LE(err.ulp, r.bound) << name(fn) << " " << err.where();
    }
  }
}

TEST(VecmathTrigRange, Float) { check_trig_ranges<float>(); }
TEST(VecmathTrigRange, Double) { check_trig_ranges<double>(); }

// ---- pow --------------------------------------------------------------------------------------

// C99 F.9.4.4 for every pair of special and ordinary operands, against the C library's pow.
template <typename T>
void check_pow_specials() {
  using L = std::numeric_limits<T>;
  const T inf = L::infinity(), nan = L::quiet_NaN();
  std::vector<T> base = {T(0), T(1), T(0.5),          T(2),     T(3),     T(1.5),
                         inf,  nan,  L::denorm_min(), L::max(), T(0.999), T(1.001),
                         T(10)};
  std::vector<T> expo = {T(0),
                         T(1),
                         T(2),
                         T(3),
                         T(0.5),
                         T(1.5),
                         inf,
                         nan,
                         T(1e30),
                         T(31),
                         T(0.1),
                         T(1e3),
                         T(4503599627370497.0),
                         L::denorm_min(),
                         T(9007199254740993.0),
                         T(16777217)};
  for (size_t i = 0, n = base.size(); i < n; ++i) base.push_back(-base[i]);
  for (size_t i = 0, n = expo.size(); i < n; ++i) expo.push_back(-expo[i]);
  std::vector<T> x, y;
  for (T a : base) {
    for (T e : expo) x.push_back(a), y.push_back(e);
  }
  std::vector<T> got = run(Fn::kPow, x, y);
  for (size_t i = 0; i < x.size(); ++i) {
    T want = std::pow(x[i], y[i]);
    if (std::isnan(want) || std::isinf(want) || want == 0 || std::fabs(want) == 1) {
      EXPECT_TRUE(same_value(got[i], want))
          << "pow(" << x[i] << ", " << y[i] << ") = " << got[i] << ", want " << want;
    } else {
      EXPECT_LE(ulp_error(got[i], reference(Fn::kPow, x[i], y[i])), 4)
          << "pow(" << x[i] << ", " << y[i] << ") = " << got[i] << ", want " << want;
    }
  }
}

TEST(VecmathPow, SpecialsFloat) { check_pow_specials<float>(); }
TEST(VecmathPow, SpecialsDouble) { check_pow_specials<double>(); }

template <typename T>
void check_pow_accuracy() {
  bool f64 = std::is_same_v<T, double>;
  size_t n = sweep_size<T>() / 16;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> unit(0, 1);
  double max_log = f64 ? 709.7 : 88.7, min_log = f64 ? -744 : -103;
  std::vector<T> x, y;
  auto add = [&](double a, double e) { x.push_back(T(a)), y.push_back(T(e)); };
  for (size_t i = 0; i < n; ++i) {
    // Ordinary operands: x in [1e-3, 1e3], y in [-30, 30].
    add(std::exp(-6.9 + 13.8 * unit(rng)), -30 + 60 * unit(rng));
    // Any positive x (denormals included), results over the whole range: y = t / log(x).
    T a = std::bit_cast<T>(static_cast<Bits<T>>(rng() >> (f64 ? 1 : 33)));
    if (!(a > 0) || std::isinf(a) || a == 1) a = T(2);
    add(a, (min_log + (max_log - min_log) * unit(rng)) / std::log(double(a)));
    // x near 1 with large y.
    double near1 = 1 + (unit(rng) - 0.5) * 1e-3;
    add(near1, (min_log + (max_log - min_log) * unit(rng)) / std::log(T(near1)));
    // Negative x with integer y.
    add(-std::exp(-3 + 6 * unit(rng)), std::round(-40 + 80 * unit(rng)));
  }
  MaxError<T> err = measure<T>(Fn::kPow, x, y);
  if (verbose()) {
    std::printf("[accuracy] pow      %s over %zu inputs: %s\n", f64 ? "f64" : "f32", x.size(),
                err.where().c_str());
  }
  EXPECT_LE(err.ulp, bound(Fn::kPow, f64)) << err.where();
}

TEST(VecmathPow, AccuracyFloat) { check_pow_accuracy<float>(); }
TEST(VecmathPow, AccuracyDouble) { check_pow_accuracy<double>(); }

// ---- the emitted IR ---------------------------------------------------------------------------

// Only vectorizable intrinsics are called, and the builder's fast-math flags do not leak in.
TEST(VecmathIr, StraightLineIntrinsicsOnly) {
  for (bool f64 : {false, true}) {
    for (Fn fn : kAllFns) {
      Compiled c = Jit::get().compile(fn, f64, /*fast_builder=*/true);
      for (const char* flag :
           {" fast ", " nnan ", " ninf ", " nsz ", " arcp ", " contract ", " afn ", " reassoc "}) {
        EXPECT_EQ(c.emitted_ir.find(flag), std::string::npos) << flag << " in\n" << c.emitted_ir;
      }
      EXPECT_EQ(c.emitted_ir.find("br "), std::string::npos) << c.emitted_ir;
      for (size_t at = c.emitted_ir.find("call "); at != std::string::npos;
           at = c.emitted_ir.find("call ", at + 1)) {
        std::string line = c.emitted_ir.substr(at, c.emitted_ir.find('\n', at) - at);
        bool allowed = false;
        for (const char* ok :
             {"@llvm.fma.", "@llvm.fabs.", "@llvm.floor.", "@llvm.roundeven.", "@llvm.copysign."}) {
          allowed |= line.find(ok) != std::string::npos;
        }
        EXPECT_TRUE(allowed) << name(fn) << ": " << line;
      }
      // Compiled with a fast builder, the results are still right.
      using Pow = double (*)(double, double);
      if (f64 && fn == Fn::kExp) EXPECT_EQ(reinterpret_cast<Pow>(c.scalar)(-kInf, 0), 0);
      if (f64 && fn == Fn::kLog) EXPECT_EQ(reinterpret_cast<Pow>(c.scalar)(0, 0), -kInf);
    }
  }
}

// O3 vectorizes a scalar loop over each function, 256 or 512 bits wide where the host has AVX2.
TEST(VecmathIr, LoopVectorizes) {
  bool avx2 = llvm::sys::getHostCPUFeatures().lookup("avx2");
  for (bool f64 : {false, true}) {
    for (Fn fn : kAllFns) {
      const Compiled& c = f64 ? Kernel<double>::get(fn).c : Kernel<float>::get(fn).c;
      const char* t = f64 ? " x double>" : " x float>";
      int lanes = (avx2 ? 256 : 128) / (f64 ? 64 : 32);
      bool wide = false;
      for (int n = lanes; n <= 4 * lanes; n *= 2) {
        wide |= c.loop_ir.find("<" + std::to_string(n) + t) != std::string::npos;
      }
      EXPECT_TRUE(wide) << name(fn) << (f64 ? " f64" : " f32") << " did not vectorize:\n"
                        << c.loop_ir;
      EXPECT_NE(c.loop_ir.find("vector.body"), std::string::npos) << name(fn);
    }
  }
}

// ---- throughput (printed, not asserted) -------------------------------------------------------

// The best of `reps` runs, in this thread's CPU time (the build machines are shared).
template <typename F>
double best_ns(F&& f, int reps) {
  auto now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
  };
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}

// Every float input of exp, against double libm: the accuracy the header states (0.976 ULP over
// [-104, 88.7] with the Horner-form polynomial; 0 or inf, exactly, outside, and NaN for NaN).
// 2^32 evaluations, ~3 minutes on one core: run with --gtest_also_run_disabled_tests.
TEST(VecmathExhaustive, DISABLED_FloatExpEveryInput) {
  const Kernel<float>& k = Kernel<float>::get(Fn::kExp);
  constexpr uint64_t kChunk = uint64_t{1} << 22;
  std::vector<float> x(kChunk), out(kChunk);
  MaxError<float> err;
  for (uint64_t start = 0; start < (uint64_t{1} << 32); start += kChunk) {
    for (uint64_t i = 0; i < kChunk; ++i) x[i] = std::bit_cast<float>(uint32_t(start + i));
    k.c.loop(x.data(), x.data(), out.data(), kChunk);
    for (uint64_t i = 0; i < kChunk; ++i) {
      const long double ref = std::exp(static_cast<double>(x[i]));
      err.add(ulp_error(out[i], ref), x[i], 0.f, out[i], ref);
    }
  }
  std::printf("[exhaustive] exp f32: %s\n", err.where().c_str());
  EXPECT_LE(err.ulp, 0.98) << err.where();
}

// emit_exp_normalized, float: the ULP bound over a dense sweep of [-87.5, 0] (every 127th bit
// pattern, plus random points) with the three forms agreeing bit for bit; below -87.5 within
// 2^-126 of e^x, never negative; the special values. Double must be emit_exp's, bit for bit.
TEST(VecmathExpNormalized, Float) {
  std::vector<float> x;
  const uint32_t low = std::bit_cast<uint32_t>(kExpNormalizedLow);
  for (uint32_t u = 0x80000000u; u <= low; u += 127) x.push_back(std::bit_cast<float>(u));
  std::vector<float> more = uniform<float>(kExpNormalizedLow, 0, 1 << 20, 11);
  x.insert(x.end(), more.begin(), more.end());
  std::vector<float> got = run(Fn::kExpNormalized, x, x);
  MaxError<float> err;
  for (size_t i = 0; i < x.size(); ++i) {
    const long double ref = std::exp(static_cast<double>(x[i]));
    err.add(ulp_error(got[i], ref), x[i], 0.f, got[i], ref);
  }
  if (verbose()) std::printf("[accuracy] exp_normalized f32: %s\n", err.where().c_str());
  EXPECT_LE(err.ulp, kExpNormalizedUlp) << err.where();

  std::vector<float> tail = linear_sweep<float>(-104, kExpNormalizedLow, 1 << 16);
  for (float v :
       {-88.f, -87.6f, -87.68f, -87.7f, -103.9f, -1e30f, -std::numeric_limits<float>::max()}) {
    tail.push_back(v);
  }
  std::vector<float> tail_got = run(Fn::kExpNormalized, tail, tail);
  for (size_t i = 0; i < tail.size(); ++i) {
    const double ref = std::exp(static_cast<double>(tail[i]));
    EXPECT_TRUE(tail_got[i] >= 0 && !std::signbit(tail_got[i]) &&
                std::fabs(tail_got[i] - ref) < 0x1p-126)
        << "exp_normalized(" << tail[i] << ") = " << tail_got[i] << ", want " << ref;
  }

  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> special = {-inf, nan, -nan, 0.f, -0.f, -1e-45f, -1e-40f, -0x1p-126f, -1e-8f};
  std::vector<float> want = {0.f, nan, nan, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f};
  std::vector<float> special_got = run(Fn::kExpNormalized, special, special);
  for (size_t i = 0; i < special.size(); ++i) {
    EXPECT_TRUE(same_value(special_got[i], want[i]))
        << "exp_normalized(" << special[i] << ") = " << special_got[i] << ", want " << want[i];
  }
}

TEST(VecmathExpNormalized, DoubleIsExp) {
  std::vector<double> x = uniform<double>(-746, 0, 1 << 16, 12);
  x.insert(x.end(), {-std::numeric_limits<double>::infinity(), 0.0, -0.0, -1e-310,
                     std::numeric_limits<double>::quiet_NaN()});
  std::vector<double> a = run(Fn::kExpNormalized, x, x), b = run(Fn::kExp, x, x);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(same_value(a[i], b[i])) << x[i] << ": " << a[i] << " vs " << b[i];
  }
}

// Every float input of emit_exp_normalized in [-87.5, 0] (~1.1e9): the bound of vecmath.h.
TEST(VecmathExhaustive, DISABLED_FloatExpNormalizedEveryInput) {
  const Kernel<float>& k = Kernel<float>::get(Fn::kExpNormalized);
  const uint64_t low = std::bit_cast<uint32_t>(kExpNormalizedLow);
  constexpr uint64_t kChunk = uint64_t{1} << 22;
  std::vector<float> x(kChunk), out(kChunk);
  MaxError<float> err;
  for (uint64_t start = 0x80000000u; start <= low; start += kChunk) {
    const uint64_t n = std::min(kChunk, low + 1 - start);
    for (uint64_t i = 0; i < n; ++i) x[i] = std::bit_cast<float>(uint32_t(start + i));
    k.c.loop(x.data(), x.data(), out.data(), static_cast<int64_t>(n));
    for (uint64_t i = 0; i < n; ++i) {
      const long double ref = std::exp(static_cast<double>(x[i]));
      err.add(ulp_error(out[i], ref), x[i], 0.f, out[i], ref);
    }
  }
  std::printf("[exhaustive] exp_normalized f32 over [-87.5, 0]: %s\n", err.where().c_str());
  EXPECT_LE(err.ulp, kExpNormalizedUlp) << err.where();
}

__attribute__((noinline)) void libm_exp_loop(const float* x, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = std::exp(x[i]);
}

TEST(VecmathThroughput, ExpVersusLibm) {
  constexpr size_t n = 1 << 20;
  std::vector<float> x = uniform<float>(-80, 80, n, 3), out(n);
  const Kernel<float>& k = Kernel<float>::get(Fn::kExp);
  double jit = best_ns([&] { k.c.loop(x.data(), x.data(), out.data(), n); }, 20);
  double libm = best_ns([&] { libm_exp_loop(x.data(), out.data(), n); }, 20);
  std::printf(
      "[throughput] exp f32, %zu elements: vecmath %.2f elem/ns, std::exp scalar loop "
      "%.2f elem/ns (%.1fx)\n",
      n, n / jit, n / libm, libm / jit);
  if (verbose()) {
    for (bool f64 : {false, true}) {
      for (Fn fn : kAllFns) {
        std::vector<double> xd = uniform<double>(0.5, 3, n, 4), yd(n, 1.5), od(n);
        std::vector<float> xf(xd.begin(), xd.end()), yf(n, 1.5f), of(n);
        const Compiled& c = f64 ? Kernel<double>::get(fn).c : Kernel<float>::get(fn).c;
        double ns = f64 ? best_ns([&] { c.loop(xd.data(), yd.data(), od.data(), n); }, 10)
                        : best_ns([&] { c.loop(xf.data(), yf.data(), of.data(), n); }, 10);
        std::printf("[throughput] %-8s %s %.2f elem/ns\n", name(fn), f64 ? "f64" : "f32", n / ns);
      }
    }
  }
}

}  // namespace
}  // namespace smelt::compiler::llvm_codegen
