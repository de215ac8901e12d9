#include "compiler/codegen/llvm/vecmath.h"

#include <cstdint>
#include <initializer_list>
#include <limits>

#include "llvm/IR/Constants.h"
#include "llvm/IR/DerivedTypes.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/Support/ErrorHandling.h"

// Polynomial coefficients are near-minimax (Chebyshev) fits made with mpmath at 200 bits,
// lowest degree first; each comment names the function fitted, its interval and the largest
// error of the polynomial with its coefficients rounded as stored.

namespace smelt::compiler::llvm_codegen {
namespace {

using llvm::Value;

// The operand's shape and element format, and IR helpers that build values of that shape.
// Constants are splatted to the vector width; integer views have the same lane count.
class Math {
 public:
  Math(llvm::IRBuilder<>& b, llvm::Type* type) : b_(b), type_(type) {
    llvm::Type* elem = type->getScalarType();
    if (!elem->isFloatTy() && !elem->isDoubleTy()) {
      llvm::report_fatal_error("vecmath: operands must be float or double (or vectors of them)");
    }
    f64_ = elem->isDoubleTy();
    int bits = f64_ ? 64 : 32;
    int_type_ = with_elem(llvm::Type::getIntNTy(type->getContext(), bits));
    i32_type_ = with_elem(llvm::Type::getInt32Ty(type->getContext()));
  }

  bool f64() const { return f64_; }
  // The same shape with element type `elem`.
  llvm::Type* with_elem(llvm::Type* elem) const {
    if (auto* vec = llvm::dyn_cast<llvm::VectorType>(type_)) {
      return llvm::VectorType::get(elem, vec->getElementCount());
    }
    return elem;
  }

  Value* c(double v) const { return llvm::ConstantFP::get(type_, v); }
  Value* ci(int64_t v) const { return llvm::ConstantInt::get(int_type_, v, /*IsSigned=*/true); }
  Value* inf() const { return c(std::numeric_limits<double>::infinity()); }
  Value* nan() const { return llvm::ConstantFP::getQNaN(type_); }

  Value* add(Value* a, Value* b) { return b_.CreateFAdd(a, b); }
  Value* sub(Value* a, Value* b) { return b_.CreateFSub(a, b); }
  Value* mul(Value* a, Value* b) { return b_.CreateFMul(a, b); }
  Value* div(Value* a, Value* b) { return b_.CreateFDiv(a, b); }
  Value* neg(Value* a) { return b_.CreateFNeg(a); }
  Value* fma(Value* a, Value* b, Value* c) {
    return b_.CreateIntrinsic(llvm::Intrinsic::fma, {type_}, {a, b, c});
  }
  Value* fabs(Value* a) { return b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, a); }
  Value* floor(Value* a) { return b_.CreateUnaryIntrinsic(llvm::Intrinsic::floor, a); }
  Value* roundeven(Value* a) { return b_.CreateUnaryIntrinsic(llvm::Intrinsic::roundeven, a); }
  Value* copysign(Value* mag, Value* sign) {
    return b_.CreateBinaryIntrinsic(llvm::Intrinsic::copysign, mag, sign);
  }
  Value* select(Value* cond, Value* a, Value* b) { return b_.CreateSelect(cond, a, b); }

  // Ordered compares are false for NaN; `uno` is true exactly for NaN.
  Value* lt(Value* a, Value* b) { return b_.CreateFCmpOLT(a, b); }
  Value* le(Value* a, Value* b) { return b_.CreateFCmpOLE(a, b); }
  Value* gt(Value* a, Value* b) { return b_.CreateFCmpOGT(a, b); }
  Value* ge(Value* a, Value* b) { return b_.CreateFCmpOGE(a, b); }
  Value* eq(Value* a, Value* b) { return b_.CreateFCmpOEQ(a, b); }
  Value* ne(Value* a, Value* b) { return b_.CreateFCmpONE(a, b); }
  Value* is_nan(Value* a) { return b_.CreateFCmpUNO(a, a); }
  Value* is_finite(Value* a) { return lt(fabs(a), inf()); }
  Value* is_int(Value* a) { return eq(floor(a), a); }
  Value* sign_bit(Value* a) { return b_.CreateICmpSLT(as_int(a), ci(0)); }
  Value* both(Value* a, Value* b) { return b_.CreateAnd(a, b); }
  Value* either(Value* a, Value* b) { return b_.CreateOr(a, b); }
  Value* negate(Value* a) { return b_.CreateNot(a); }
  Value* same(Value* a, Value* b) { return b_.CreateICmpEQ(a, b); }  // i1 a == b
  Value* ne_i1(Value* a, Value* b) { return b_.CreateXor(a, b); }    // i1 a != b

  Value* as_int(Value* a) { return b_.CreateBitCast(a, int_type_); }
  Value* as_fp(Value* a) { return b_.CreateBitCast(a, type_); }
  Value* iadd(Value* a, Value* b) { return b_.CreateAdd(a, b); }
  Value* isub(Value* a, Value* b) { return b_.CreateSub(a, b); }
  Value* iand(Value* a, Value* b) { return b_.CreateAnd(a, b); }
  Value* ashr(Value* a, int n) { return b_.CreateAShr(a, n); }
  Value* shl(Value* a, int n) { return b_.CreateShl(a, n); }

  // Integer-valued fp (|v| < 2^31) to the integer view. The conversion goes through i32 because
  // x86 before AVX-512 has no vector double <-> i64 conversion, which would scalarize the loop.
  Value* fp_to_int(Value* v) {
    Value* i = b_.CreateFPToSI(v, i32_type_);
    return f64_ ? b_.CreateSExt(i, int_type_) : i;
  }
  // An integer view value (|i| < 2^31) to fp.
  Value* int_to_fp(Value* i) {
    if (f64_) i = b_.CreateTrunc(i, i32_type_);
    return b_.CreateSIToFP(i, type_);
  }

  // c[0] + c[1] x + c[2] x^2 + ..., by Horner with fused multiply-adds.
  Value* poly(Value* x, std::initializer_list<double> coeffs) {
    const double* c = coeffs.begin();
    int n = static_cast<int>(coeffs.size());
    Value* acc = this->c(c[n - 1]);
    for (int i = n - 2; i >= 0; --i) acc = fma(acc, x, this->c(c[i]));
    return acc;
  }

  // Format constants.
  int mant_bits() const { return f64_ ? 52 : 23; }
  int exp_bias() const { return f64_ ? 1023 : 127; }

 private:
  llvm::IRBuilder<>& b_;
  llvm::Type* type_;
  llvm::Type* int_type_ = nullptr;
  llvm::Type* i32_type_ = nullptr;
  bool f64_ = false;
};

// Clears the builder's fast-math flags for the duration of one emit_* call.
class StrictFp {
 public:
  explicit StrictFp(llvm::IRBuilder<>& b) : guard_(b) { b.clearFastMathFlags(); }

 private:
  llvm::IRBuilderBase::FastMathFlagGuard guard_;
};

// ln 2 and pi/2 split so that hi + lo (+ lo2) carries twice (three times) the format's bits.
constexpr double kLn2HiF = 0x1.62e43p-1, kLn2LoF = -0x1.05c61p-29;
constexpr double kLn2Hi = 0x1.62e42fefa39efp-1, kLn2Lo = 0x1.abc9e3b39803fp-56;
constexpr double kPio2F[3] = {0x1.921fb6p+0, -0x1.777a5cp-25, -0x1.ee59dap-50};
constexpr double kPio2[3] = {0x1.921fb54442d18p+0, 0x1.1a62633145c07p-54, -0x1.f1976b7ed8fbcp-110};
constexpr double kLog2e = 0x1.71547652b82fep+0;
constexpr double kTwoOverPi = 0x1.45f306dc9c883p-1;

// e^(x + lo), where lo (may be null) is a small correction below x's last bit (pow's
// double-double exponent). NaN x gives NaN.
//
// x = n ln2 + r with |r| <= ln2/2, e^r by a polynomial, then scaled by 2^n in two steps
// 2^n1 * 2^n2 so that each factor is a normal number: the first product is exact and the
// second rounds once, which makes denormal results correctly rounded from p.
Value* exp_core(Math& m, Value* x, Value* lo) {
  // Past these bounds the result is inf or 0 (rounded); clamping keeps n representable.
  // The ordered compares send NaN to the lower bound, and the last select restores it.
  double hi_bound = m.f64() ? 710.0 : 89.0;
  double lo_bound = m.f64() ? -746.0 : -104.0;
  Value* in_range = m.both(m.ge(x, m.c(lo_bound)), m.le(x, m.c(hi_bound)));
  Value* xc = m.select(m.ge(x, m.c(lo_bound)), x, m.c(lo_bound));
  xc = m.select(m.le(xc, m.c(hi_bound)), xc, m.c(hi_bound));

  Value* n = m.roundeven(m.mul(xc, m.c(kLog2e)));
  // n * ln2_hi is exact inside the fma and x - n ln2_hi fits the format (|r| < 1), so the first
  // step is exact; the second rounds once, relative to r.
  Value* r = m.fma(m.neg(n), m.c(m.f64() ? kLn2Hi : kLn2HiF), xc);
  r = m.fma(m.neg(n), m.c(m.f64() ? kLn2Lo : kLn2LoF), r);
  if (lo != nullptr) r = m.add(r, m.select(in_range, lo, m.c(0.0)));

  // e^r = 1 + r + r^2 P(r).
  Value* p;
  if (m.f64()) {
    // (e^r - 1 - r) / r^2 on [-ln2/2, ln2/2], degree 10, error 2.6e-18.
    p = m.poly(r, {0.5, 0.1666666666666667, 0.04166666666666667, 0.008333333333326141,
                   0.0013888888888883752, 0.00019841269874800493, 2.4801587325533363e-05,
                   2.7557255425746435e-06, 2.7557273661348637e-07, 2.510520637395701e-08,
                   2.0914679376583935e-09});
  } else {
    // (e^r - 1 - r) / r^2 on [-ln2/2, ln2/2], degree 5, error 4.1e-9.
    p = m.poly(r, {0.5, 0.1666666716337204, 0.04166646674275398, 0.00833331048488617,
                   0.0013933641603216529, 0.00019890980911441147});
  }
  p = m.add(m.c(1.0), m.fma(m.mul(r, r), p, r));

  Value* ni = m.fp_to_int(n);
  Value* n1 = m.ashr(ni, 1);
  Value* n2 = m.isub(ni, n1);
  Value* s1 = m.as_fp(m.shl(m.iadd(n1, m.ci(m.exp_bias())), m.mant_bits()));
  Value* s2 = m.as_fp(m.shl(m.iadd(n2, m.ci(m.exp_bias())), m.mant_bits()));
  Value* result = m.mul(m.mul(p, s1), s2);
  return m.select(m.is_nan(x), x, result);
}

// What a float exp_core caller knows about the argument's range (NaN aside); the narrower it
// is, the fewer steps the scaling by 2^n takes.
enum class ExpRange {
  kAny,           // any float: both clamps, two-step scaling
  kNonPositive,   // x <= 0 (e^x in [0, 1]): the lower clamp, one fixed split of 2^n
  kSmallPositive  // 0 <= x <= 87 (e^x normal and finite): no clamp, 2^n in one step
};

// Float e^x: the same reduction and rounding as exp_core, in fewer instructions.
// - The clamps keep NaN (select(x < lo, lo, x) is false for NaN), and NaN then flows through
//   the arithmetic into the result, so no NaN select is needed at the end.
// - n comes from one fma that adds 1.5 * 2^23 to x log2(e): the sum's ulp is 1, so it rounds to
//   n + 1.5 * 2^23 with n the integer nearest x log2(e); subtracting 1.5 * 2^23 gives n exactly,
//   and the sum's low bits hold n in two's complement (|n| <= 150), so a left shift by 23 moves n
//   into the exponent field (1.5 * 2^23's own bits shift out). This replaces a multiply, a
//   round and a conversion. (It can pick the other n where x log2(e) is within an ulp of a
//   half-integer; either n keeps |r| <= ln2/2 up to rounding.)
// - 2^n = s1 * s2 with both factors normal, so that p * s1 is exact and the one rounding of the
//   second product makes denormal results correctly rounded, as in exp_core. Over all of [-150,
//   128] that is s1 = 2^floor(n/2), s2 = 2^(n - floor(n/2)); for n <= 0, s2 = 2^-64 (fixed) and
//   s1 = 2^(n + 64); for 0 <= n <= 126 no split at all.
Value* exp_core_f32(Math& m, Value* x, ExpRange range) {
  Value* xc = x;
  if (range != ExpRange::kSmallPositive) {
    xc = m.select(m.lt(xc, m.c(-104.0)), m.c(-104.0), xc);
  }
  if (range == ExpRange::kAny) xc = m.select(m.gt(xc, m.c(89.0)), m.c(89.0), xc);

  constexpr double kShift = 0x1.8p23;
  Value* t = m.fma(xc, m.c(kLog2e), m.c(kShift));
  Value* n = m.sub(t, m.c(kShift));
  Value* r = m.fma(m.neg(n), m.c(kLn2HiF), xc);
  r = m.fma(m.neg(n), m.c(kLn2LoF), r);
  Value* p;
  if (range == ExpRange::kSmallPositive) {
    // tanh's e^2|x|: exp_core's polynomial, whose errors (e - 1) / (e + 1) amplifies less near
    // |x| = 0.625 (tanh 1.32 ulp, against 1.36 with the one below).
    p = m.poly(r, {0.5, 0.1666666716337204, 0.04166646674275398, 0.00833331048488617,
                   0.0013933641603216529, 0.00019890980911441147});
    p = m.add(m.c(1.0), m.fma(m.mul(r, r), p, r));
  } else {
    // e^r = 1 + r Q(r), Q a degree-5 Chebyshev fit of (e^r - 1) / r on [-ln2/2, ln2/2]
    // (relative error of 1 + r Q: 5.1e-9, 0.08 ulp), by Horner's rule in six fmas where exp_core's
    // 1 + (r + r^2 P(r)) takes eight operations: over every float x in [-104, 88.7] the largest
    // error is 0.98 ulp either way (bench/RESULTS.md "Softmax, session 6"), since the last fma
    // rounds once and Q's own rounding error is scaled down by |r| <= 0.35.
    p = m.poly(r, {1.0, 0.5, 0x1.55547cp-3, 0x1.5554eap-5, 0x1.123d82p-7, 0x1.6d4316p-10});
    p = m.fma(p, r, m.c(1.0));
  }

  Value* n_exp = m.shl(m.as_int(t), 23);  // n << 23
  constexpr int64_t kBias = int64_t{127} << 23;
  switch (range) {
    case ExpRange::kSmallPositive:
      return m.mul(p, m.as_fp(m.iadd(n_exp, m.ci(kBias))));
    case ExpRange::kNonPositive: {
      Value* s1 = m.as_fp(m.iadd(n_exp, m.ci(kBias + (int64_t{64} << 23))));
      return m.mul(m.mul(p, s1), m.c(0x1p-64));
    }
    case ExpRange::kAny:
      break;
  }
  Value* n1_exp = m.iand(m.ashr(n_exp, 1), m.ci(~int64_t{0x7fffff}));  // floor(n / 2) << 23
  Value* s1 = m.as_fp(m.iadd(n1_exp, m.ci(kBias)));
  Value* s2 = m.as_fp(m.iadd(m.isub(n_exp, n1_exp), m.ci(kBias)));
  return m.mul(m.mul(p, s1), s2);
}

// Splits positive finite x (denormals included) into x = 2^k * mf with mf in [sqrt(1/2),
// sqrt(2)); returns f = mf - 1 (exact) and k as fp. Zero, negative and non-finite inputs give
// garbage that the callers replace.
struct Reduced {
  Value* f;
  Value* k;
};
Reduced log_reduce(Math& m, Value* x) {
  // Denormals are scaled into the normal range first, so the exponent field is meaningful.
  int scale = m.f64() ? 54 : 25;
  Value* denormal = m.lt(x, m.c(m.f64() ? 0x1p-1022 : 0x1p-126));
  Value* xs = m.select(denormal, m.mul(x, m.c(m.f64() ? 0x1p54 : 0x1p25)), x);
  Value* k_adjust = m.select(denormal, m.c(-scale), m.c(0.0));

  // Offsetting the bits by 1 - sqrt(1/2) carries into the exponent exactly when the mantissa
  // is >= sqrt(2)/2 of the binade, so k and mf come out of one add (musl's log).
  int64_t sqrt_half = m.f64() ? 0x3fe6a09e667f3bcdLL : 0x3f3504f3LL;
  int64_t one = m.f64() ? 0x3ff0000000000000LL : 0x3f800000LL;
  int64_t mant_mask = m.f64() ? 0x000fffffffffffffLL : 0x007fffffLL;
  Value* ix = m.iadd(m.as_int(xs), m.ci(one - sqrt_half));
  Value* k = m.isub(m.ashr(ix, m.mant_bits()), m.ci(m.exp_bias()));
  Value* mf = m.as_fp(m.iadd(m.iand(ix, m.ci(mant_mask)), m.ci(sqrt_half)));
  return {m.sub(mf, m.c(1.0)), m.add(m.int_to_fp(k), k_adjust)};
}

// log(x) for positive finite x; other inputs give garbage (see emit_log for those).
Value* log_core(Math& m, Value* x) {
  Reduced red = log_reduce(m, x);
  Value* f = red.f;
  Value* k = red.k;
  if (m.f64()) {
    // log(1 + f) = 2 atanh(s), s = f / (2 + f); written as f - f^2/2 + s (f^2/2 + R) so that
    // the large terms are exact (fdlibm's log).
    Value* s = m.div(f, m.add(m.c(2.0), f));
    Value* z = m.mul(s, s);
    // (2 atanh(s) - 2s) / s^3 on s^2 in [0, 0.0295], degree 7, error 3.7e-17.
    Value* rz = m.mul(z, m.poly(z, {0.6666666666666666, 0.4000000000000088, 0.28571428570803614,
                                    0.22222222391713917, 0.18181795640132906, 0.15386239702814658,
                                    0.13268773138656886, 0.13086626147840102}));
    Value* hfsq = m.mul(m.c(0.5), m.mul(f, f));
    Value* t = m.fma(s, m.add(hfsq, rz), m.mul(k, m.c(kLn2Lo)));
    return m.fma(k, m.c(kLn2Hi), m.sub(f, m.sub(hfsq, t)));
  }
  // log(1 + f) = f - f^2/2 + f^3 P(f); no division, which keeps float log cheap.
  // (log(1 + f) - f + f^2/2) / f^3 on [sqrt(1/2) - 1, sqrt(2) - 1], degree 8, error 3.1e-8.
  Value* p = m.poly(f, {0.3333333134651184, -0.2499999701976776, 0.20000715553760529,
                        -0.1666780263185501, 0.14249058067798615, -0.12425687164068222,
                        0.11685419827699661, -0.11479733884334564, 0.06971611827611923});
  Value* z = m.mul(f, f);
  Value* y = m.mul(m.mul(z, f), p);
  y = m.fma(k, m.c(kLn2LoF), y);
  y = m.fma(m.c(-0.5), z, y);
  return m.fma(k, m.c(kLn2HiF), m.add(f, y));
}

// log(x) as an unevaluated sum hi + lo, some ten bits more precise than a double, for double
// pow. x is positive and finite.
struct DoubleDouble {
  Value* hi;
  Value* lo;
};
DoubleDouble log_dd(Math& m, Value* x) {
  Reduced red = log_reduce(m, x);
  Value* f = red.f;
  Value* k = red.k;
  // s = f / (2 + f) to double-double: d = 2 + f exactly as d + d_lo, then one Newton step on
  // the remainder, which the fma computes exactly.
  Value* d = m.add(m.c(2.0), f);
  Value* d_lo = m.add(m.sub(m.c(2.0), d), f);
  Value* s = m.div(f, d);
  Value* rem = m.fma(m.neg(s), d, f);
  rem = m.fma(m.neg(s), d_lo, rem);
  Value* s_lo = m.div(rem, d);

  // log(1 + f) = 2s + s v, v = (2/3) s^2 + s^4 Q(s^2). (2/3) s^2 is up to 1% of 2s, too much for
  // plain double, so v is a double-double; the Q tail is under 2e-4 of 2s and stays double.
  Value* z = m.mul(s, s);
  Value* z_lo = m.fma(m.mul(m.c(2.0), s), s_lo, m.fma(s, s, m.neg(z)));
  constexpr double kTwoThirdsHi = 0x1.5555555555555p-1, kTwoThirdsLo = 0x1.5555555555555p-55;
  Value* u = m.mul(m.c(kTwoThirdsHi), z);
  Value* u_lo = m.fma(m.c(kTwoThirdsHi), z, m.neg(u));
  u_lo = m.add(u_lo, m.fma(m.c(kTwoThirdsHi), z_lo, m.mul(m.c(kTwoThirdsLo), z)));
  // (R(z)/z - 2/3) / z on [0, 0.0295], degree 7, error 2.6e-17.
  Value* q = m.poly(
      z, {0.4, 0.28571428571429364, 0.22222222221656232, 0.18181818335314404, 0.15384594970895457,
          0.13334804238225345, 0.11706248540922386, 0.11723051028097753});
  Value* tail = m.mul(m.mul(z, z), q);
  Value* v = m.add(u, tail);
  Value* v_lo = m.add(m.add(m.sub(u, v), tail), u_lo);

  // 2s + s v.
  Value* sv = m.mul(s, v);
  Value* sv_lo = m.fma(s, v, m.neg(sv));
  sv_lo = m.add(sv_lo, m.fma(s, v_lo, m.mul(s_lo, v)));
  Value* two_s = m.mul(m.c(2.0), s);
  Value* lm = m.add(two_s, sv);
  Value* lm_lo = m.add(m.add(m.sub(two_s, lm), sv), m.add(m.mul(m.c(2.0), s_lo), sv_lo));

  // + k ln2; either term may dominate, so a full two-sum.
  Value* kl = m.mul(k, m.c(kLn2Hi));
  Value* kl_lo = m.fma(k, m.c(kLn2Hi), m.neg(kl));
  kl_lo = m.fma(k, m.c(kLn2Lo), kl_lo);
  Value* sum = m.add(kl, lm);
  Value* bb = m.sub(sum, kl);
  Value* err = m.add(m.sub(kl, m.sub(sum, bb)), m.sub(lm, bb));
  Value* lo = m.add(err, m.add(kl_lo, lm_lo));
  Value* hi = m.add(sum, lo);
  return {hi, m.sub(lo, m.sub(hi, sum))};
}

// sin (cos_shift = 0) or cos (cos_shift = 1) of x.
//
// |x| = j pi/2 + r with |r| <= pi/4 (Cody-Waite, three-part pi/2 and fmas), then the sine or
// cosine polynomial of r by quadrant j mod 4, plus the cosine's quarter-turn shift. Working on
// |x| keeps j >= 0; sin's oddness is restored from x's sign bit at the end, which also gives
// sin(-0) = -0. Valid while j is the integer nearest |x| 2/pi, which takes ulp(j) < 1:
// |x| < 2^22 pi/2 (6.5e6) for float, 2^51 pi/2 for double. Float error grows from 1.6 to 2.1 ULP
// between 1e6 and 6.5e6, where j pi/2's last two parts grow to a few ulps of r.
Value* sincos(Math& m, Value* x, int cos_shift) {
  Value* finite = m.is_finite(x);
  Value* ax = m.select(finite, m.fabs(x), m.c(0.0));  // keeps the arithmetic below finite
  // j = round(|x| 2/pi) with 2/pi in two parts: a plain product's rounding would move j off
  // the nearest integer, and r past pi/4, from |x| ~ 1e5 (float) or 1e12 (double) on.
  constexpr double kTwoOverPiLoF = 0x1.b93910p-26, kTwoOverPiLo = -0x1.6b01ec5417056p-55;
  Value* j = m.roundeven(
      m.fma(ax, m.c(kTwoOverPi), m.mul(ax, m.c(m.f64() ? kTwoOverPiLo : kTwoOverPiLoF))));
  const double* pio2 = m.f64() ? kPio2 : kPio2F;
  // The first step is exact (j pi2_hi is exact inside the fma, and |r| < 1 fits the format while
  // j |pi/2 - pi2_hi| stays small); the next two round relative to r.
  Value* r = m.fma(j, m.c(-pio2[0]), ax);
  r = m.fma(j, m.c(-pio2[1]), r);
  r = m.fma(j, m.c(-pio2[2]), r);
  // Only past the accurate range can r leave [-pi/4, pi/4] by more than rounding; clamping keeps
  // the polynomials, and so the result, within [-1, 1].
  r = m.select(m.le(r, m.c(1.0)), r, m.c(1.0));
  r = m.select(m.ge(r, m.c(-1.0)), r, m.c(-1.0));

  Value* z = m.mul(r, r);
  Value* sin_r;
  Value* cos_r;
  if (m.f64()) {
    // (sin(r) - r) / r^3 and (cos(r) - 1 + r^2/2) / r^4 on r^2 in [0, (pi/4)^2], degree 6,
    // errors 9.3e-18 and 2.7e-18.
    sin_r = m.poly(z, {-0.16666666666666666, 0.008333333333333331, -0.00019841269841265065,
                       2.7557319219339167e-06, -2.5052106232447578e-08, 1.6058531618986147e-10,
                       -7.586697117706918e-13});
    cos_r = m.poly(z, {0.041666666666666664, -0.0013888888888888887, 2.4801587301584645e-05,
                       -2.7557319221402824e-07, 2.087675579108042e-09, -1.1470460887609959e-11,
                       4.7458719020432915e-14});
  } else {
    // Same, degree 3, errors 5.0e-9 and 1.2e-9.
    sin_r = m.poly(z, {-0.1666666716337204, 0.008333331905305386, -0.00019840087043121457,
                       2.7249925551586784e-06});
    cos_r = m.poly(z, {0.0416666679084301, -0.00138888880610466, 2.480059993104078e-05,
                       -2.730095900460583e-07});
  }
  sin_r = m.fma(m.mul(z, r), sin_r, r);
  cos_r = m.fma(m.mul(z, z), cos_r, m.fma(m.c(-0.5), z, m.c(1.0)));

  // Quadrant in fp (j may exceed any integer type): q = j mod 4, exact for every integer j.
  Value* q = m.sub(j, m.mul(m.c(4.0), m.floor(m.mul(j, m.c(0.25)))));
  if (cos_shift != 0) q = m.add(q, m.c(1.0));  // now in 0..4; 4 acts as 0 below
  // sin(x) = [s, c, -s, -c][q].
  Value* odd = m.either(m.eq(q, m.c(1.0)), m.eq(q, m.c(3.0)));
  Value* negative = m.either(m.eq(q, m.c(2.0)), m.eq(q, m.c(3.0)));
  Value* result = m.select(odd, cos_r, sin_r);
  if (cos_shift == 0) negative = m.ne_i1(negative, m.sign_bit(x));
  result = m.select(negative, m.neg(result), result);
  return m.select(finite, result, m.nan());
}

// pow's special cases on top of `mag` = |x|^y computed for sanitized inputs (|x| in (0, inf),
// y finite; see emit_pow). C99 F.9.4.4.
Value* pow_special(Math& m, Value* x, Value* y, Value* mag) {
  Value* ax = m.fabs(x);
  Value* y_int = m.is_int(y);
  Value* half_y = m.mul(y, m.c(0.5));
  Value* y_odd = m.both(y_int, m.negate(m.is_int(half_y)));  // false for inf and |y| >= 2^53

  // |x| = 0 or inf, or y = ±inf (with |x| != 1): inf when |x| > 1 and y > 0 or |x| < 1 and
  // y < 0 (0 counts as < 1), else 0.
  Value* extreme =
      m.either(m.either(m.eq(ax, m.c(0.0)), m.eq(ax, m.inf())), m.eq(m.fabs(y), m.inf()));
  extreme = m.both(extreme, m.ne(ax, m.c(1.0)));
  Value* grows = m.same(m.gt(ax, m.c(1.0)), m.gt(y, m.c(0.0)));
  Value* result = m.select(extreme, m.select(grows, m.inf(), m.c(0.0)), mag);

  // A negative base (-0 and -inf included) raised to an odd integer keeps its sign.
  result = m.select(m.both(m.sign_bit(x), y_odd), m.neg(result), result);
  // Finite negative base, finite non-integer exponent: no real result.
  Value* no_real =
      m.both(m.both(m.lt(x, m.c(0.0)), m.is_finite(x)), m.both(m.is_finite(y), m.negate(y_int)));
  result = m.select(no_real, m.nan(), result);
  result = m.select(m.either(m.is_nan(x), m.is_nan(y)), m.add(x, y), result);
  // pow(x, ±0) = 1 and pow(1, y) = 1, even for NaN.
  return m.select(m.either(m.eq(y, m.c(0.0)), m.eq(x, m.c(1.0))), m.c(1.0), result);
}

}  // namespace

namespace {

// Float e^x for x <= 0 or NaN feeding a row normalization (vecmath.h): exp_core_f32's reduction
// with a degree-5 Horner polynomial, the form and degree of PyTorch's softmax exp (its
// coefficients here are a Chebyshev fit of (e^r - 1) / r, relative error 2.0e-7), and 2^n in one
// step: x is clamped at -88, so n >= -127, and n + 127 >= 0 is the exponent field of s = 2^n
// itself; n = -127 makes s = +0 and the result +0 (x < -87.68, e^x < 8.3e-39 < 2^-126), n = -126
// gives p 2^-126, rounded once. One fma and one multiply fewer than exp_core_f32(kNonPositive).
Value* exp_normalized_f32(Math& m, Value* x) {
  Value* xc = m.select(m.lt(x, m.c(-88.0)), m.c(-88.0), x);  // NaN stays
  constexpr double kShift = 0x1.8p23;
  Value* t = m.fma(xc, m.c(kLog2e), m.c(kShift));
  Value* n = m.sub(t, m.c(kShift));
  Value* r = m.fma(m.neg(n), m.c(kLn2HiF), xc);
  r = m.fma(m.neg(n), m.c(kLn2LoF), r);
  Value* p = m.poly(r, {0x1p+0, 0x1.fffe5ap-2, 0x1.5554dep-3, 0x1.570b98p-5, 0x1.120b62p-7});
  p = m.fma(p, r, m.c(1.0));
  Value* s = m.as_fp(m.iadd(m.shl(m.as_int(t), 23), m.ci(int64_t{127} << 23)));
  return m.mul(p, s);
}

}  // namespace

Value* emit_exp_normalized(llvm::IRBuilder<>& b, Value* x) {
  StrictFp strict(b);
  Math m(b, x->getType());
  if (m.f64()) return exp_core(m, x, nullptr);
  return exp_normalized_f32(m, x);
}

Value* emit_exp(llvm::IRBuilder<>& b, Value* x, bool non_positive) {
  StrictFp strict(b);
  Math m(b, x->getType());
  if (m.f64()) return exp_core(m, x, nullptr);
  return exp_core_f32(m, x, non_positive ? ExpRange::kNonPositive : ExpRange::kAny);
}

Value* emit_log(llvm::IRBuilder<>& b, Value* x) {
  StrictFp strict(b);
  Math m(b, x->getType());
  Value* result = log_core(m, x);
  result = m.select(m.eq(x, m.inf()), x, result);
  result = m.select(m.eq(x, m.c(0.0)), m.neg(m.inf()), result);
  result = m.select(m.lt(x, m.c(0.0)), m.nan(), result);
  return m.select(m.is_nan(x), x, result);
}

Value* emit_tanh(llvm::IRBuilder<>& b, Value* x) {
  StrictFp strict(b);
  Math m(b, x->getType());
  Value* ax = m.fabs(x);
  // Below the threshold an odd polynomial, free of the cancellation in 1 - 2/(e^2x + 1); above
  // it that formula loses at most one bit (tanh >= 0.55).
  constexpr double kSmall = 0.625;
  Value* z = m.mul(ax, ax);
  Value* p;
  if (m.f64()) {
    // (tanh(x) - x) / x^3 on x^2 in [0, 0.625^2], degree 11, error 1.9e-17.
    p = m.poly(z, {-0.3333333333333333, 0.13333333333333042, -0.05396825396789699,
                   0.021869488519008305, -0.008863235103240878, 0.0035921217511549622,
                   -0.0014557754120478055, 0.0005896606577757043, -0.0002375906496055562,
                   9.257116129556769e-05, -3.12011014257974e-05, 6.485163482793113e-06});
  } else {
    // Same, degree 5, error 1.3e-8.
    p = m.poly(z, {-0.3333333432674408, 0.13333304226398468, -0.053959257900714874,
                   0.02176891826093197, -0.008343945257365704, 0.002292744815349579});
  }
  Value* small = m.fma(m.mul(z, ax), p, ax);
  // e^2|x| overflows to inf for large |x|, and 2 / inf = 0 gives exactly 1; NaN passes through.
  // Float clamps 2|x| to 20 instead: 2 / (e^20 + 1) < 2^-25 still rounds 1 - 2 / (e + 1) to 1,
  // and e^[0, 20] needs no clamping or split scaling in exp_core_f32.
  Value* e;
  if (m.f64()) {
    e = exp_core(m, m.mul(m.c(2.0), ax), nullptr);
  } else {
    Value* two_ax = m.mul(m.c(2.0), ax);
    two_ax = m.select(m.gt(two_ax, m.c(20.0)), m.c(20.0), two_ax);
    e = exp_core_f32(m, two_ax, ExpRange::kSmallPositive);
  }
  Value* large = m.sub(m.c(1.0), m.div(m.c(2.0), m.add(e, m.c(1.0))));
  // tanh is odd; copysign also gives tanh(-0) = -0, which the polynomial's rounding would not.
  return m.copysign(m.select(m.lt(ax, m.c(kSmall)), small, large), x);
}

Value* emit_sigmoid(llvm::IRBuilder<>& b, Value* x) {
  StrictFp strict(b);
  Math m(b, x->getType());
  // With e = e^-|x| <= 1 nothing overflows: 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0,
  // which follows e^x into the denormals instead of rounding 1 + e^-x to inf.
  Value* minus_ax = m.neg(m.fabs(x));
  Value* e =
      m.f64() ? exp_core(m, minus_ax, nullptr) : exp_core_f32(m, minus_ax, ExpRange::kNonPositive);
  Value* num = m.select(m.lt(x, m.c(0.0)), e, m.c(1.0));
  return m.div(num, m.add(m.c(1.0), e));
}

Value* emit_sin(llvm::IRBuilder<>& b, Value* x) {
  StrictFp strict(b);
  Math m(b, x->getType());
  return sincos(m, x, 0);
}

Value* emit_cos(llvm::IRBuilder<>& b, Value* x) {
  StrictFp strict(b);
  Math m(b, x->getType());
  return sincos(m, x, 1);
}

Value* emit_pow(llvm::IRBuilder<>& b, Value* x, Value* y) {
  StrictFp strict(b);
  Math m(b, x->getType());
  // The core sees only |x| in (0, inf) and finite y; pow_special overrides every other case.
  Value* ax = m.fabs(x);
  Value* ax_ok = m.both(m.gt(ax, m.c(0.0)), m.lt(ax, m.inf()));
  Value* ys = m.select(m.is_finite(y), y, m.c(0.0));
  Value* axs = m.select(ax_ok, ax, m.c(1.0));

  Value* mag;
  if (m.f64()) {
    // An error e in y log(x) is a relative error e in the result, and y log(x) reaches 709, so
    // log(x) needs ~10 bits beyond double: double-double log, product, and exp(hi + lo).
    DoubleDouble l = log_dd(m, axs);
    Value* t = m.mul(ys, l.hi);
    Value* t_lo = m.fma(ys, l.hi, m.neg(t));
    t_lo = m.fma(ys, l.lo, t_lo);
    mag = exp_core(m, t, t_lo);
  } else {
    // In double, log's relative error 2^-52 times |y log x| <= ~150 (beyond it the float result
    // is 0 or inf) stays far below a float ulp, so plain double log and exp suffice.
    llvm::Type* dtype = m.with_elem(b.getDoubleTy());
    Math md(b, dtype);
    Value* t = md.mul(b.CreateFPExt(ys, dtype), log_core(md, b.CreateFPExt(axs, dtype)));
    mag = b.CreateFPTrunc(exp_core(md, t, nullptr), x->getType());
  }
  return pow_special(m, x, y, mag);
}

}  // namespace smelt::compiler::llvm_codegen
