"""Compiled kernels of the runtime: one ``@kernel_jit`` function per op family
(njit without NRT, cached on disk and stamped with every kernel source: rtinfer.jitcache).

Calling convention (every kernel): flat 1-D C-contiguous arrays, each with an element offset
(``src, so`` = read ``src[so:]``; ``dst, do`` = write ``dst[do:]``), sizes as ints, float
parameters as floats. ``m`` is the number of samples, stored back to back (sample ``s`` of a
tensor of per-sample size ``n`` starts at ``off + s * n``). Kernels write into ``dst`` only,
allocate nothing and check nothing: the planner (rtinfer.plan) validated every offset and size.
``src`` and ``dst`` may be the same array at non-overlapping offsets; elementwise kernels also
accept the exact same region (in place).

Numerics (the golden semantics are rtinfer.reference; each kernel's NumPy twin is in
rtinfer.kernels_ref with the same signature):

- ``dense_f32`` computes each output as a float32 dot product over a row of W transposed,
  with fastmath {"reassoc", "contract"} so LLVM vectorizes the reduction (partial sums, FMA),
  then adds the bias. The order is fixed by the code, not by the batch size, so a batch gives
  bit-identical results to one sample at a time; versus the reference (BLAS) the results
  differ in the last bits, well within 1e-5 of the summed magnitudes.
- activations and log-softmax compute in float64 and round once to float32, as the reference
  does; softmax uses a float32 exp per element with float64 sums (a few float32 ulp).
- compiled without NRT (``_nrt=False``): no reference counting on the views and slices the
  kernels take, and any allocation would fail to compile.
- int8 kernels are bit-exact: int32 accumulation (wrapping, like the hardware; the planner
  proves the true sums fit), requantization ``clamp(rint(float32(acc) * M[j]) + y_zp, qmin, qmax)``.
  The int8 dot products are one LLVM IR tile (``kernels_tile.qdense_rows8``): pairwise sums of
  sign-extended products, which LLVM lowers to vpmaddwd, eight outputs requantized together.
"""

from __future__ import annotations

import math

import numpy as np
from numba.core import config

from .jitcache import kernel_jit
from .kernels_tile import f32_from_bits, qdense_rows8
from .ops import Act

# Under NUMBA_BOUNDSCHECK=1, kernels built on LLVM IR tiles (whose loads and stores Numba cannot
# check) check their extents first; otherwise the check compiles away.
BOUNDS = bool(config.BOUNDSCHECK)

# Activation codes as plain ints (compile-time constants inside @njit code).
A_IDENTITY = int(Act.IDENTITY)
A_RELU = int(Act.RELU)
A_LEAKY_RELU = int(Act.LEAKY_RELU)
A_SIGMOID = int(Act.SIGMOID)
A_TANH = int(Act.TANH)
A_SOFTPLUS = int(Act.SOFTPLUS)
A_ELU = int(Act.ELU)
A_SELU = int(Act.SELU)
A_HARD_SIGMOID = int(Act.HARD_SIGMOID)
A_GELU = int(Act.GELU)
A_GELU_TANH = int(Act.GELU_TANH)
A_CLIP = int(Act.CLIP)
A_SILU = int(Act.SILU)
A_HARD_SWISH = int(Act.HARD_SWISH)
A_MISH = int(Act.MISH)
A_ERF = int(Act.ERF)
A_EXP = int(Act.EXP)
A_ABS = int(Act.ABS)
A_WRAP = int(Act.WRAP)

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


# expf for x <= 0 (Cephes' single-precision exp: x = k ln2 + r, |r| <= ln2 / 2, a degree-7
# polynomial for e^r, then 2^k), branch-free so that a softmax row's loop vectorizes
_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)      # 9 significant bits: k * _LN2_HI is exact for |k| < 2^15
_LN2_LO = np.float32(-2.12194440e-4)
_P0 = np.float32(1.9875691500e-4)
_P1 = np.float32(1.3981999507e-3)
_P2 = np.float32(8.3334519073e-3)
_P3 = np.float32(4.1665795894e-2)
_P4 = np.float32(1.6666665459e-1)
_P5 = np.float32(5.0000001201e-1)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)
_EXP_FLOOR = np.float32(-110.0)        # e^-110 is 0 in float32 (the least subnormal is e^-103.3)


@kernel_jit(inline="always")
def exp_le0_f32(x):
    """e^x in float32 for float32 x <= 0 (softmax after its max is taken off): within 2 float32 ulp
    of the exact value, e^0 = 1 exactly, subnormal results rounded once, 0 below e^-103.97, NaN
    for NaN (tests/test_kernels.py sweeps it against float64 exp). No branch and no call, so a
    loop of them vectorizes (libm's expf is a call per element)."""
    x = x if not (x < _EXP_FLOOR) else _EXP_FLOOR  # NaN stays NaN
    k = np.floor(x * _LOG2E + _HALF)
    r = x - k * _LN2_HI
    r = r - k * _LN2_LO
    p = _P0 * r + _P1
    p = p * r + _P2
    p = p * r + _P3
    p = p * r + _P4
    p = p * r + _P5
    y = p * (r * r) + r + _ONE
    ki = np.int32(k)  # in [-159, 0] (NaN: anything; y is NaN then)
    k1 = ki >> np.int32(1)
    k2 = ki - k1  # 2^k = 2^k1 2^k2, each a normal float32 down to k = -252
    s1 = f32_from_bits(np.int32((k1 + np.int32(127)) << np.int32(23)))
    s2 = f32_from_bits(np.int32((k2 + np.int32(127)) << np.int32(23)))
    return (y * s1) * s2


@kernel_jit
def act_scalar(v, act, alpha, beta):
    """One activation value: float64 in, float64 out (the contract of rtinfer.ops.Act)."""
    if act == A_IDENTITY:
        return v
    if act == A_RELU:
        return 0.0 if v < 0.0 else v
    if act == A_LEAKY_RELU:
        return alpha * v if v < 0.0 else v
    if act == A_SIGMOID:
        if v >= 0.0:
            return 1.0 / (1.0 + math.exp(-v))
        e = math.exp(v)
        return e / (1.0 + e)
    if act == A_TANH:
        return math.tanh(v)
    if act == A_SOFTPLUS:
        return max(v, 0.0) + math.log1p(math.exp(-abs(v)))
    if act == A_ELU:
        return v if v > 0.0 else alpha * math.expm1(v)
    if act == A_SELU:
        return beta * (v if v > 0.0 else alpha * math.expm1(v))
    if act == A_HARD_SIGMOID:
        return min(max(alpha * v + beta, 0.0), 1.0)
    if act == A_GELU:
        return 0.5 * v * (1.0 + math.erf(v * _SQRT1_2))
    if act == A_GELU_TANH:
        return 0.5 * v * (1.0 + math.tanh(_SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)))
    if act == A_CLIP:
        return min(max(v, alpha), beta)
    if act == A_SILU:
        if v >= 0.0:
            return v * (1.0 / (1.0 + math.exp(-v)))
        e = math.exp(v)
        return v * (e / (1.0 + e))
    if act == A_HARD_SWISH:
        return v * min(max(v / 6.0 + 0.5, 0.0), 1.0)
    if act == A_MISH:
        return v * math.tanh(max(v, 0.0) + math.log1p(math.exp(-abs(v))))
    if act == A_ERF:
        return math.erf(v)
    if act == A_EXP:
        return math.exp(v) if v < 709.0 else math.inf
    if act == A_ABS:
        return abs(v)
    if act == A_WRAP:
        if not math.isfinite(v):
            return 0.0
        t = float(math.trunc(v))
        return t - beta * math.floor((t - alpha) / beta)
    return v


@kernel_jit
def act_f32(src, so, dst, do, n, act, alpha, beta):
    """dst[do:do+n] = act(src[so:so+n]); float32 -> float32, in place allowed."""
    x = src[so:so + n]
    y = dst[do:do + n]
    if act == A_IDENTITY:
        for k in range(n):
            y[k] = x[k]
    elif act == A_RELU:
        for k in range(n):
            v = x[k]
            y[k] = np.float32(0.0) if v < 0.0 else v
    elif act == A_CLIP:  # (ReLU6 and friends) in float32: rounding is monotone, so clipping by the
        lo = np.float32(alpha)  # rounded bounds gives the float64 result rounded once; NaN passes
        hi = np.float32(beta)
        for k in range(n):
            v = x[k]
            v = lo if v < lo else v
            y[k] = hi if v > hi else v
    else:
        for k in range(n):
            y[k] = np.float32(act_scalar(np.float64(x[k]), act, alpha, beta))


# Dense float32 reductions may be reassociated (vector partial sums) and contracted to FMA:
# that is what lets LLVM vectorize a dot product. Only these two flags: NaN/inf semantics stay.
_DOT_MATH = {"reassoc", "contract"}


@kernel_jit(fastmath=_DOT_MATH)
def dense_f32(src, so, Wt, wo, b, bo, dst, do, n_in, n_out, m):
    """y = x @ W + b for m samples. x (m, n_in) at src[so:]; Wt = W transposed, (n_out, n_in)
    row-major at Wt[wo:]; b (n_out,) at b[bo:]; y (m, n_out) at dst[do:]; float32.

    Each output is a dot product over a contiguous row of Wt; four rows share every load of x.
    Blocked for batches: each group of four rows is applied to all m samples while it sits in
    L1. The reduction order is fixed by this loop, not by m or by addresses, so a batch gives
    bit-identical results to one sample at a time (tested); versus a sequential sum the results
    differ in the last bits (vector partial sums, FMA)."""
    j = 0
    while j + 4 <= n_out:
        r0 = wo + j * n_in
        w0 = Wt[r0:r0 + n_in]
        w1 = Wt[r0 + n_in:r0 + 2 * n_in]
        w2 = Wt[r0 + 2 * n_in:r0 + 3 * n_in]
        w3 = Wt[r0 + 3 * n_in:r0 + 4 * n_in]
        for s in range(m):
            x = src[so + s * n_in:so + (s + 1) * n_in]
            a0 = np.float32(0.0)
            a1 = np.float32(0.0)
            a2 = np.float32(0.0)
            a3 = np.float32(0.0)
            for i in range(n_in):
                xi = x[i]
                a0 += xi * w0[i]
                a1 += xi * w1[i]
                a2 += xi * w2[i]
                a3 += xi * w3[i]
            d = do + s * n_out + j
            dst[d] = a0 + b[bo + j]
            dst[d + 1] = a1 + b[bo + j + 1]
            dst[d + 2] = a2 + b[bo + j + 2]
            dst[d + 3] = a3 + b[bo + j + 3]
        j += 4
    while j < n_out:
        w0 = Wt[wo + j * n_in:wo + (j + 1) * n_in]
        for s in range(m):
            x = src[so + s * n_in:so + (s + 1) * n_in]
            a0 = np.float32(0.0)
            for i in range(n_in):
                a0 += x[i] * w0[i]
            dst[do + s * n_out + j] = a0 + b[bo + j]
        j += 1


@kernel_jit
def affine_f32(src, so, S, sof, T, to, dst, do, n, m):
    """y = x * s + t elementwise for m samples; s, t (n,) float32."""
    sv = S[sof:sof + n]
    tv = T[to:to + n]
    for s in range(m):
        x = src[so + s * n:so + (s + 1) * n]
        y = dst[do + s * n:do + (s + 1) * n]
        for k in range(n):
            y[k] = x[k] * sv[k] + tv[k]


@kernel_jit
def softmax_f32(src, so, dst, do, outer, axis_len, inner, log):
    """Softmax (log != 0: log-softmax) over the middle axis of (outer, axis_len, inner).
    The max is subtracted first (in float32). Softmax: float32 exp (exp_le0_f32, within 2 ulp),
    stored in dst on the first pass, then summed in float64 in order, scaled by 1/sum in float64
    and rounded once more (one exp per element; within a few float32 ulp of the reference, which
    computes in float64). Log-softmax: exps, sum and log in float64. src and dst must not overlap.
    Softmax over contiguous rows (inner == 1; outer rows, a batch of them) runs pass by pass:
    x - max of every row into dst, then one exp loop over all of dst (it vectorizes across rows),
    then each row's sum and scaling: the same values in the same order as row by row."""
    if inner == 1 and not log:
        n = axis_len
        for o in range(outer):
            x = src[so + o * n:so + (o + 1) * n]
            y = dst[do + o * n:do + (o + 1) * n]
            mx = x[0]
            for a in range(1, n):
                if x[a] > mx:
                    mx = x[a]
            for a in range(n):
                y[a] = x[a] - mx
        ys = dst[do:do + outer * n]
        for i in range(outer * n):
            ys[i] = exp_le0_f32(ys[i])
        for o in range(outer):
            y = dst[do + o * n:do + (o + 1) * n]
            total = 0.0
            for a in range(n):
                total += np.float64(y[a])
            inv = 1.0 / total
            for a in range(n):
                y[a] = np.float32(np.float64(y[a]) * inv)
        return
    for o in range(outer):
        base = o * axis_len * inner
        for c in range(inner):
            p = so + base + c
            q = do + base + c
            mx = src[p]
            for a in range(1, axis_len):
                v = src[p + a * inner]
                if v > mx:
                    mx = v
            total = 0.0
            if log:
                for a in range(axis_len):
                    total += math.exp(np.float64(src[p + a * inner] - mx))
                lt = math.log(total)
                for a in range(axis_len):
                    dst[q + a * inner] = np.float32(np.float64(src[p + a * inner] - mx) - lt)
            else:
                for a in range(axis_len):
                    dst[q + a * inner] = exp_le0_f32(src[p + a * inner] - mx)
                for a in range(axis_len):
                    total += np.float64(dst[q + a * inner])
                inv = 1.0 / total
                for a in range(axis_len):
                    dst[q + a * inner] = np.float32(np.float64(dst[q + a * inner]) * inv)


@kernel_jit
def argmax_f32(src, so, dst, do, outer, axis_len, inner, last):
    """Index of the first (last != 0: the last) maximum over the middle axis of (outer,
    axis_len, inner), written as float32 into dst (outer, inner)."""
    for o in range(outer):
        for c in range(inner):
            p = so + o * axis_len * inner + c
            best = 0
            mx = src[p]
            for a in range(1, axis_len):
                v = src[p + a * inner]
                if v > mx or (last != 0 and v == mx):
                    mx = v
                    best = a
            dst[do + o * inner + c] = np.float32(best)


@kernel_jit
def quantize_f32_i8(src, so, dst, do, n, scale, zp):
    """int8 y = clamp(rint(x / float32(scale)) + zp, -128, 127), division in float32; NaN gives
    -128 (as onnxruntime's MLAS kernel: its clamp maps NaN to the low end). The float -> int8
    conversion of NaN itself is undefined (scalar and vector code differed), so NaN never reaches it."""
    s32 = np.float32(scale)
    z32 = np.float32(zp)
    x = src[so:so + n]
    y = dst[do:do + n]
    for k in range(n):
        q = np.rint(x[k] / s32) + z32
        if not q >= -128.0:  # below the range, or NaN
            q = np.float32(-128.0)
        elif q > 127.0:
            q = np.float32(127.0)
        y[k] = np.int8(q)


@kernel_jit
def dequantize_i8_f32(src, so, dst, do, n, scale, zp):
    """float32 y = float32(int32(x) - zp) * float32(scale). The difference is formed in float32,
    where it is exact (|x - zp| <= 255), so the loop vectorizes (an int64 difference does not)."""
    s32 = np.float32(scale)
    z32 = np.float32(zp)
    x = src[so:so + n]
    y = dst[do:do + n]
    for k in range(n):
        y[k] = (np.float32(x[k]) - z32) * s32


@kernel_jit
def lut_i8(src, so, table, to, dst, do, n):
    """int8 y = table[x + 128]; table (256,) int8 at table[to:]."""
    t = table[to:to + 256]
    x = src[so:so + n]
    y = dst[do:do + n]
    for k in range(n):
        y[k] = t[np.int64(x[k]) + 128]


@kernel_jit
def qdense_i8(src, so, Wt, wo, bias, bo, M, mo, dst, do, n_in, n_out, m, y_zp, qmin, qmax):
    """int8 dense for m samples with int32 accumulation and requantization.

    x (m, n_in) int8 at src[so:]; Wt (n_out, n_in) int8 row-major at Wt[wo:] (W transposed,
    so each output is a contiguous int8 dot product); bias (n_out,) int32 at bias[bo:] with
    the input zero point folded in (bias[j] = b[j] - x_zp * sum_i W[i, j]); M (n_out,) float32
    requant multipliers at M[mo:]; y (m, n_out) int8 at dst[do:].
    Eight output rows at a time share each load of x (kernels_tile.qdense_rows8: vpmaddwd on
    16-input blocks, a scalar tail, the eight sums requantized together as one vector); each
    block of rows is applied to all m samples while it sits in L1. int32 sums wrap like the
    hardware; the planner proves the true sums fit."""
    if BOUNDS:
        if n_out > 0 and m > 0:
            if (so < 0 or so + m * n_in > src.size or wo < 0 or wo + n_out * n_in > Wt.size or bo < 0
                    or bo + n_out > bias.size or mo < 0 or mo + n_out > M.size or do < 0 or do + m * n_out > dst.size):
                raise IndexError("qdense_i8 reads or writes outside its arrays")
    for j in range(0, n_out, 8):
        rows = min(8, n_out - j)
        for s in range(m):
            qdense_rows8(src, so + s * n_in, Wt, wo + j * n_in, n_in, bias, bo + j, M, mo + j,
                         dst, do + s * n_out + j, rows, y_zp, qmin, qmax)
