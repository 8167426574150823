"""Compiled kernels of the runtime: one ``@njit(cache=True, _nrt=False)`` function per op family.

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
  The int8 dot products are one small LLVM IR intrinsic (``_dot_rows_i8``): pairwise sums of
  sign-extended products, which LLVM lowers to pmaddwd.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .ops import Act

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

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@njit(cache=True, _nrt=False)
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
    return v


@njit(cache=True, _nrt=False)
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
    else:
        for k in range(n):
            y[k] = np.float32(act_scalar(np.float64(x[k]), act, alpha, beta))


# Dense float32 reductions may be reassociated (vector partial sums) and contracted to FMA:
# that is what lets LLVM vectorize a dot product. Only these two flags: NaN/inf semantics stay.
_DOT_MATH = {"reassoc", "contract"}


@njit(cache=True, _nrt=False, fastmath=_DOT_MATH)
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


@njit(cache=True, _nrt=False)
def affine_f32(src, so, S, sof, T, to, dst, do, n, m):
    """y = x * s + t elementwise for m samples; s, t (n,) float32."""
    sv = S[sof:sof + n]
    tv = T[to:to + n]
    for s in range(m):
        x = src[so + s * n:so + (s + 1) * n]
        y = dst[do + s * n:do + (s + 1) * n]
        for k in range(n):
            y[k] = x[k] * sv[k] + tv[k]


@njit(cache=True, _nrt=False)
def softmax_f32(src, so, dst, do, outer, axis_len, inner, log):
    """Softmax (log != 0: log-softmax) over the middle axis of (outer, axis_len, inner).
    The max is subtracted first (in float32). Softmax: float32 exp (expf, < 1 ulp), stored in
    dst on the first pass and summed in float64, then scaled by 1/sum in float64 and rounded
    once more (one exp per element; within a few float32 ulp of the reference, which computes
    in float64). Log-softmax: exps, sum and log in float64. src and dst must not overlap."""
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
                    e = math.exp(src[p + a * inner] - mx)  # float32 exp (expf)
                    total += np.float64(e)
                    dst[q + a * inner] = e
                inv = 1.0 / total
                for a in range(axis_len):
                    dst[q + a * inner] = np.float32(np.float64(dst[q + a * inner]) * inv)


@njit(cache=True, _nrt=False)
def argmax_f32(src, so, dst, do, outer, axis_len, inner):
    """Index of the first maximum over the middle axis of (outer, axis_len, inner), written
    as float32 into dst (outer, inner)."""
    for o in range(outer):
        for c in range(inner):
            p = so + o * axis_len * inner + c
            best = 0
            mx = src[p]
            for a in range(1, axis_len):
                v = src[p + a * inner]
                if v > mx:
                    mx = v
                    best = a
            dst[do + o * inner + c] = np.float32(best)


@njit(cache=True, _nrt=False)
def quantize_f32_i8(src, so, dst, do, n, scale, zp):
    """int8 y = clamp(rint(x / float32(scale)) + zp, -128, 127), division in float32."""
    s32 = np.float32(scale)
    z32 = np.float32(zp)
    x = src[so:so + n]
    y = dst[do:do + n]
    for k in range(n):
        q = np.rint(x[k] / s32) + z32
        if q < -128.0:
            q = np.float32(-128.0)
        elif q > 127.0:
            q = np.float32(127.0)
        y[k] = np.int8(q)


@njit(cache=True, _nrt=False)
def dequantize_i8_f32(src, so, dst, do, n, scale, zp):
    """float32 y = float32(int32(x) - zp) * float32(scale). The difference is formed in float32,
    where it is exact (|x - zp| <= 255), so the loop vectorizes (an int64 difference does not)."""
    s32 = np.float32(scale)
    z32 = np.float32(zp)
    x = src[so:so + n]
    y = dst[do:do + n]
    for k in range(n):
        y[k] = (np.float32(x[k]) - z32) * s32


@njit(cache=True, _nrt=False)
def lut_i8(src, so, table, to, dst, do, n):
    """int8 y = table[x + 128]; table (256,) int8 at table[to:]."""
    t = table[to:to + 256]
    x = src[so:so + n]
    y = dst[do:do + n]
    for k in range(n):
        y[k] = t[np.int64(x[k]) + 128]


@njit(cache=True, _nrt=False)
def _requant(acc, mult, y_zp, qmin, qmax):
    v = np.int64(np.rint(np.float32(acc) * mult)) + y_zp
    if v < qmin:
        v = qmin
    elif v > qmax:
        v = qmax
    return np.int8(v)


def _pair_sums_i8(builder, xa, xb):
    """<16 x i8> a, b -> <8 x i32>: a[2k]*b[2k] + a[2k+1]*b[2k+1], the pattern LLVM lowers to
    one pmaddwd (on AVX2: vpmovsxbw + vpmaddwd); plain integer IR, exact on any target."""
    v16i32 = ir.VectorType(ir.IntType(32), 16)
    v8i32 = ir.VectorType(ir.IntType(32), 8)
    p = builder.mul(builder.sext(xa, v16i32), builder.sext(xb, v16i32))
    even = ir.Constant(v8i32, list(range(0, 16, 2)))
    odd = ir.Constant(v8i32, list(range(1, 16, 2)))
    return builder.add(builder.shuffle_vector(p, p, even), builder.shuffle_vector(p, p, odd))


@intrinsic
def _dot_rows_i8(typingctx, x, xo, w, wo, stride, nblk):
    """Four int8 dot products sharing x, over the first 16 * nblk elements:
    acc[r] = sum_k int32(x[xo + k]) * int32(w[wo + r * stride + k]), r = 0..3, int32 wrapping.
    Returns UniTuple(int32, 4). Written as LLVM IR because Numba's loop vectorizer turns the
    four interleaved reductions into 32-bit multiplies instead of pmaddwd (1.8x slower)."""
    ret = types.UniTuple(types.int32, 4)
    sig = ret(x, xo, w, wo, stride, nblk)

    def codegen(context, builder, signature, args):
        xv, xoff, wv, woff, stride_v, n = args
        xarr = context.make_array(signature.args[0])(context, builder, xv)
        warr = context.make_array(signature.args[2])(context, builder, wv)
        v16i8 = ir.VectorType(ir.IntType(8), 16)
        v8i32 = ir.VectorType(ir.IntType(32), 8)
        px = builder.gep(xarr.data, [xoff])
        pw = [builder.gep(warr.data, [builder.add(woff, builder.mul(stride_v, ir.Constant(stride_v.type, r)))])
              for r in range(4)]
        accs = [cgutils.alloca_once_value(builder, ir.Constant(v8i32, [0] * 8)) for _ in range(4)]
        with cgutils.for_range(builder, n) as loop:
            off = builder.mul(loop.index, ir.Constant(loop.index.type, 16))
            xa = builder.load(builder.bitcast(builder.gep(px, [off]), v16i8.as_pointer()), align=1)
            for r in range(4):
                xb = builder.load(builder.bitcast(builder.gep(pw[r], [off]), v16i8.as_pointer()), align=1)
                builder.store(builder.add(builder.load(accs[r]), _pair_sums_i8(builder, xa, xb)), accs[r])
        totals = []
        for r in range(4):
            v = builder.load(accs[r])
            t = builder.extract_element(v, ir.Constant(ir.IntType(32), 0))
            for k in range(1, 8):
                t = builder.add(t, builder.extract_element(v, ir.Constant(ir.IntType(32), k)))
            totals.append(t)
        return context.make_tuple(builder, ret, totals)

    return sig, codegen


@njit(cache=True, _nrt=False)
def qdense_i8(src, so, Wt, wo, bias, bo, M, mo, dst, do, n_in, n_out, m, y_zp, qmin, qmax):
    """int8 dense for m samples with int32 accumulation and requantization.

    x (m, n_in) int8 at src[so:]; Wt (n_out, n_in) int8 row-major at Wt[wo:] (W transposed,
    so each output is a contiguous int8 dot product); bias (n_out,) int32 at bias[bo:] with
    the input zero point folded in (bias[j] = b[j] - x_zp * sum_i W[i, j]); M (n_out,) float32
    requant multipliers at M[mo:]; y (m, n_out) int8 at dst[do:].
    Four output rows at a time share each load of x (_dot_rows_i8 over 16-element blocks, a
    scalar loop for the n_in % 16 tail); each group of rows is applied to all m samples while
    it sits in L1. int32 sums wrap like the hardware; the planner proves the true sums fit."""
    bv = bias[bo:bo + n_out]
    mv = M[mo:mo + n_out]
    nblk = n_in // 16
    tail = nblk * 16
    j = 0
    while j < n_out:
        rows = min(4, n_out - j)
        r0 = wo + j * n_in
        for s in range(m):
            xs = so + s * n_in
            # rows past n_out - 1 (last group) re-read row j: valid memory, results discarded
            stride = n_in if rows == 4 else 0
            a0, a1, a2, a3 = _dot_rows_i8(src, xs, Wt, r0, stride, nblk)
            for i in range(tail, n_in):
                xi = np.int32(src[xs + i])
                a0 = np.int32(a0 + xi * np.int32(Wt[r0 + i]))
                if rows == 4:
                    a1 = np.int32(a1 + xi * np.int32(Wt[r0 + n_in + i]))
                    a2 = np.int32(a2 + xi * np.int32(Wt[r0 + 2 * n_in + i]))
                    a3 = np.int32(a3 + xi * np.int32(Wt[r0 + 3 * n_in + i]))
            d = do + s * n_out + j
            dst[d] = _requant(np.int32(a0 + bv[j]), mv[j], y_zp, qmin, qmax)
            if rows == 4:
                dst[d + 1] = _requant(np.int32(a1 + bv[j + 1]), mv[j + 1], y_zp, qmin, qmax)
                dst[d + 2] = _requant(np.int32(a2 + bv[j + 2]), mv[j + 2], y_zp, qmin, qmax)
                dst[d + 3] = _requant(np.int32(a3 + bv[j + 3]), mv[j + 3], y_zp, qmin, qmax)
        j += 4 if rows == 4 else 1
