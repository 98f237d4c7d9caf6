"""exp and log1p written as arithmetic, so that the loops calling them vectorise.

Numba compiles ``math.exp``, ``math.tanh`` and ``math.log1p`` to calls of the C library's
scalar functions, and a loop containing a call does not vectorise (there is no vector math
library such as SVML here). Written out as range reduction, a polynomial and bit
manipulation, they are plain arithmetic that LLVM turns into SIMD code, 16 float32 lanes at
a time with AVX-512. Used by the cross-entropy kernels (``loss.py``) and the LSTM's gates
(``lstm.py``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload


# --- exp(x) for x <= 0, vectorisable --------------------------------------------------
#
# 1. Range reduction. Write x = k ln2 + r with k = round(x / ln2), an integer, so that
#    |r| <= ln2 / 2 ~ 0.347. Then exp(x) = 2^k * exp(r): a power of two, exact in
#    floating point, times exp of a small number.
# 2. r = x - k ln2 must be computed without losing digits: k ln2 is close to x, and the
#    subtraction cancels their leading digits, so any rounding error in the product
#    k * ln2 would dominate r. Cody and Waite's trick splits ln2 = LN2_HI + LN2_LO, where
#    LN2_HI has so few significant bits that k * LN2_HI is exact (k has at most 11
#    bits here) and x - k * LN2_HI is exact too (Sterbenz: the two are close); the small
#    correction k * LN2_LO then carries only a tiny absolute rounding error.
# 3. exp(r) by its Taylor polynomial 1 + r + r^2/2! + ... + r^n/n!. The remainder is at
#    most |r|^(n+1)/(n+1)! * e^|r|: with |r| <= 0.347, n = 7 gives ~7e-9 relative
#    (float32's epsilon is 1.2e-7) and n = 13 gives ~6e-18 (float64's is 2.2e-16). It is
#    evaluated by Horner's rule as 1 + r + r^2 * (1/2 + r * (1/6 + ...)), keeping the two
#    largest terms outside so their rounding stays smallest. Measured against an exact
#    exp: at most 8.4e-8 relative error in float32 and 1.5e-16 in float64, below 1 ulp.
# 4. 2^k from bits. An IEEE float is sign | biased exponent | mantissa; with a zero
#    mantissa its value is 2^(exponent - bias). So the integer (k + bias) << mantissa_bits,
#    reinterpreted as a float (a bit cast, no conversion), is exactly 2^k. This works for
#    normal numbers only (k >= -126 in float32, -1022 in float64), but results down to the
#    smallest subnormal (2^-149, 2^-1074) are wanted: so scale in two steps,
#    2^k = 2^k1 * 2^k2 with k1 = floor(k / 2) and k2 = k - k1, both normal. The first
#    product p * 2^k1 is exact; the second rounds once, as a correct result would.
# 5. Edge cases. Below ln(smallest subnormal / 2) (-103.97 in float32, -745.13 in
#    float64) exp rounds to 0: x is clamped to a bound a little below that, where the
#    two-step scaling underflows to exactly 0 by itself. exp(0) = 1 exactly (k = 0,
#    r = 0, the polynomial gives 1). A NaN fails every comparison, so it passes the clamp
#    and propagates through r and the polynomial; k, which would be a NaN converted to
#    an integer (undefined), is set to 0 for it.
# Positive x up to the overflow threshold also works, but the kernels only pass
# z - max z <= 0 and overflow is not handled.

_SAME_BYTES = {types.int32: types.float32, types.int64: types.float64,
               types.float32: types.int32, types.float64: types.int64}


@intrinsic
def bitcast(typingctx, value):
    """The same 4 or 8 bytes read as the other type: int32 <-> float32, int64 <-> float64
    (a reinterpretation, not a conversion: bitcast(np.int32(0x3F800000)) is 1.0)."""
    result = _SAME_BYTES.get(value)
    if result is None:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(result))
    return result(value), codegen


@njit(inline="always", error_model="numpy")
def exp_float32(x):
    """exp(x) of a float32 x <= 0 to float32 accuracy (steps 1-5 above); vectorisable."""
    # the constants are float32: a bare Python float would turn the arithmetic to float64
    x = np.float32(-110.0) if x < np.float32(-110.0) else x       # NaN stays NaN
    k = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))   # round(x / ln2)
    k = k if k == k else np.float32(0.0)
    # LN2_HI = 0.693359375 = 355 / 512 (9 bits), LN2_LO = ln2 - LN2_HI
    r = (x - k * np.float32(0.693359375)) - k * np.float32(-2.12194440e-4)
    p = np.float32(1 / 5040)                          # 1/7!
    p = p * r + np.float32(1 / 720)
    p = p * r + np.float32(1 / 120)
    p = p * r + np.float32(1 / 24)
    p = p * r + np.float32(1 / 6)
    p = p * r + np.float32(0.5)
    p = p * (r * r) + r + np.float32(1.0)
    k1 = np.int32(k) >> 1                             # floor(k / 2), k1 + k2 = k
    k2 = np.int32(k) - k1
    # 127: float32's exponent bias; 23: its mantissa bits. (Numba widens int32
    # arithmetic to int64, hence the casts back before the bit cast.)
    return (p * bitcast(np.int32((k1 + 127) << 23))) * bitcast(np.int32((k2 + 127) << 23))


@njit(inline="always", error_model="numpy")
def expm1_parts_float64(x):
    """(k, q) with exp(x) = 2^k (1 + q) for a float64 x (steps 1-3 above, before the
    scaling); k is a whole float64 (0 for a NaN x), q = expm1(r) with |r| <= ln2 / 2.
    Kept apart from the scaling for callers that need expm1 near 0 (the LSTM's tanh)."""
    k = np.floor(x * 1.4426950408889634 + 0.5)        # round(x / ln2)
    k = k if k == k else 0.0
    # fdlibm's split: LN2_HI has 32 significant bits, LN2_LO = ln2 - LN2_HI
    r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
    p = 1 / 6227020800.0                              # 1/13!
    p = p * r + 1 / 479001600.0
    p = p * r + 1 / 39916800.0
    p = p * r + 1 / 3628800.0
    p = p * r + 1 / 362880.0
    p = p * r + 1 / 40320.0
    p = p * r + 1 / 5040.0
    p = p * r + 1 / 720.0
    p = p * r + 1 / 120.0
    p = p * r + 1 / 24.0
    p = p * r + 1 / 6.0
    p = p * r + 0.5
    return k, p * (r * r) + r


@njit(inline="always", error_model="numpy")
def exp_float64(x):
    """exp(x) of a float64 x <= 0 to float64 accuracy (steps 1-5 above); vectorisable."""
    x = -750.0 if x < -750.0 else x                   # NaN stays NaN
    k, q = expm1_parts_float64(x)
    k1 = np.int64(k) >> 1
    k2 = np.int64(k) - k1
    # 1023: float64's exponent bias; 52: its mantissa bits
    return ((q + 1.0) * bitcast((k1 + 1023) << 52)) * bitcast((k2 + 1023) << 52)


def exp_nonpositive(x):
    """exp(x) for x <= 0 in the precision of x; in compiled code the float32 or float64
    kernel above, in plain Python numpy's exp."""
    return np.exp(x)


@overload(exp_nonpositive, inline="always")
def _exp_nonpositive(x):
    if x == types.float32:
        return lambda x: exp_float32(x)
    if x == types.float64:
        return lambda x: exp_float64(x)
    return None


# --- log1p(x) for x >= 0 in float64, vectorisable ------------------------------------
#
# The forward pass needs one log per pixel, log s = log1p(s - 1), and math.log1p is a
# scalar call like math.exp (it took a third of the forward's time). Here s - 1 lies in
# [0, C - 1].
# 1. u = 1 + x, rounded. Write u = 2^e * f with f in [sqrt(1/2), sqrt(2)): subtracting
#    the bits of sqrt(1/2) from the bits of u and shifting out the 52 mantissa bits gives
#    e = floor(log2(u / sqrt(1/2))), and subtracting e << 52 from the bits of u divides it
#    by 2^e exactly. Then log u = e ln2 + log f, e ln2 again split as in Cody-Waite.
# 2. log f = 2 atanh(t) with t = (f - 1) / (f + 1), |t| <= 0.172:
#    2 (t + t^3/3 + t^5/5 + ...), whose terms after t^21/21 are below 2^-53 relative.
#    f - 1 is exact (Sterbenz), so t carries one rounding of the division and one of f + 1.
# 3. u is 1 + x rounded, off from it by d = (u - 1) - x (u - 1 is exact). Since
#    log(1 + x) = log(u - d) ~ log u - d / u, adding (x - (u - 1)) / u gives back the
#    digits that rounding 1 + x lost: for x below 2^-53, u = 1 and the result is x itself,
#    the digits a confident pixel's tiny loss needs.
# Measured against an exact log1p: at most 4.2e-16 relative error (2 ulp).
# A NaN x gives a NaN (through the correction term); x = inf is not handled.

@njit(inline="always", error_model="numpy")
def log1p_and_reciprocal(x):
    """(log1p(x), 1 / (1 + x)) for a float64 x >= 0 (steps 1-3 above); vectorisable. The
    reciprocal comes along because the correction of step 3 needs it anyway."""
    u = 1.0 + x
    inverse = 1.0 / u
    bits = bitcast(u)
    e = (bits - bitcast(0.7071067811865476)) >> 52        # u >= 1, so e >= 0
    f = bitcast(bits - (e << 52))                         # u / 2^e
    t = (f - 1.0) / (f + 1.0)
    t2 = t * t
    q = 1 / 21.0
    q = q * t2 + 1 / 19.0
    q = q * t2 + 1 / 17.0
    q = q * t2 + 1 / 15.0
    q = q * t2 + 1 / 13.0
    q = q * t2 + 1 / 11.0
    q = q * t2 + 1 / 9.0
    q = q * t2 + 1 / 7.0
    q = q * t2 + 1 / 5.0
    q = q * t2 + 1 / 3.0
    log_f = 2.0 * t + 2.0 * t * t2 * q                    # 2 (t + t^3/3 + ... + t^21/21)
    k = np.float64(e)
    log_u = k * 6.93147180369123816490e-01 + (log_f + k * 1.90821492927058770002e-10)
    return log_u + (x - (u - 1.0)) * inverse, inverse

