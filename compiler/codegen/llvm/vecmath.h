// \file Vectorizable transcendental math for the LLVM (CPU) emitter.
//
// Each function emits straight-line IR at the builder's insertion point: arithmetic, integer bit
// manipulation, compares, selects and the llvm.fma / llvm.fabs / llvm.floor / llvm.roundeven /
// llvm.copysign intrinsics, all of which the loop vectorizer widens. They never call libm, so a
// loop that applies them to every element still vectorizes (a call to expf would keep it scalar).
//
// Operands are float or double scalars, or fixed vectors of them; the result has the operand's
// type (other types are a fatal error: half and bfloat16 callers extend to float first). The
// builder's fast-math flags are ignored (cleared while emitting): the range reductions rely on
// exact IEEE rounding and the special cases on NaN and infinity compares, which `fast` would
// fold away.
//
// Special values follow C (Annex F) and PyTorch: exp(-inf) = 0, log(0) = -inf, log(x < 0) = NaN,
// tanh(-0) = -0, sigmoid(-inf) = 0, sin(inf) = NaN, pow(x, 0) = 1 even for NaN x, and so on;
// denormal inputs work, and results underflow gradually through the denormals (no flush to zero
// is assumed or done).
//
// Accuracy: the largest error seen by tests/codegen/vecmath_test.cpp (dense and random sweeps
// over every exponent, against libm one precision up), in ULPs of the result type:
//            exp   log   tanh  sigmoid  sin/cos  pow
//   float    0.98  0.81  1.32  2.22     1.56     0.50
//   double   0.97  0.79  1.32  2.07     1.54     1.13
// Over every float input (an exhaustive run against double libm, 2026-11-26) float exp, tanh
// and sigmoid reach 0.99, 1.33 and 2.40 ULP: worst cases that fall between the sweeps' points,
// with the same results before and after the session-4 rewrite of the float exp. Session 6's
// Horner form of float exp's polynomial: 0.976 ULP over every float in [-104, 88.7].
// sin and cos reduce by Cody-Waite with a three-part pi/2 and hold that accuracy for |x| <= 1e6
// (float; 2.1 ULP up to 6.5e6) and |x| <= 3.5e15 (double). Past that, x 2/pi no longer rounds to
// the right quadrant: the result is wrong but stays finite and within [-1, 1].
#pragma once

#include "llvm/IR/IRBuilder.h"

namespace smelt::compiler::llvm_codegen {

// e^x; overflows to inf, underflows gradually through the denormals to 0. `non_positive`: the
// caller knows x <= 0 or NaN (softmax's x - max(x)), so float e^x skips the overflow clamp and
// the two-step scaling by 2^n (the same results in ~6 fewer instructions).
llvm::Value* emit_exp(llvm::IRBuilder<>& b, llvm::Value* x, bool non_positive = false);

// e^x for x <= 0 or NaN whose results a row normalization only divides by, or sums into, their
// own row's sum (softmax's e^(x - max x) / sum, log_softmax's log of the sum), so that what matters
// is each result's error relative to the row's largest, e^0 = 1. Float takes a cheaper form (two
// operations fewer than emit_exp(non_positive)): over every float x in [-87.5, 0] at most 3.27 ULP
// (measured exhaustively, 2026-11-26; tests check 4), and below -87.5 a result in [0, 2^-126)
// within 2^-126 of e^x (subnormal results partly flushed to +0); e^-inf = +0, e^±0 = 1 exactly,
// NaN stays NaN. Double is emit_exp's.
llvm::Value* emit_exp_normalized(llvm::IRBuilder<>& b, llvm::Value* x);

// The natural logarithm: -inf at ±0, NaN below 0, inf at inf.
llvm::Value* emit_log(llvm::IRBuilder<>& b, llvm::Value* x);

// The hyperbolic tangent: ±1 at ±inf, exact (x) for tiny x, keeps the sign of zero.
llvm::Value* emit_tanh(llvm::IRBuilder<>& b, llvm::Value* x);

// The logistic function 1 / (1 + e^-x), computed so that neither tail overflows: 0 at -inf,
// 1 at inf, e^x (denormals included) far to the left.
llvm::Value* emit_sigmoid(llvm::IRBuilder<>& b, llvm::Value* x);

// Sine and cosine of x radians; NaN at ±inf.
llvm::Value* emit_sin(llvm::IRBuilder<>& b, llvm::Value* x);
llvm::Value* emit_cos(llvm::IRBuilder<>& b, llvm::Value* x);

// x^y with C pow's special cases. Float is computed in double and rounded once; double carries
// log(x) and y * log(x) in double-double so that large results keep their accuracy.
llvm::Value* emit_pow(llvm::IRBuilder<>& b, llvm::Value* x, llvm::Value* y);

}  // namespace smelt::compiler::llvm_codegen
