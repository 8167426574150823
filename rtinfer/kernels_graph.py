"""Compiled kernels of the graph ops (rtinfer.ops: BINARY, QBINARY, CONCAT, SLICE and their
int8 twins, MATMUL) and their plan-time packing.

Every kernel takes flat arrays plus element offsets, runs m samples (sample s of an operand of
n elements per sample starts at offset + s * n) and writes into its output; no checks, no
allocation (compiled without NRT). ``binary_table`` (NumPy, plan time) turns two broadcastable
per-sample shapes into the int32 table the binary kernels read:

    T_NA, T_NB, T_NOUT          elements per sample of a, b and the output
    T_D .. T_D + 3              the iteration shape, merged to 4 dimensions (leading 1s)
    T_SA .. T_SA + 3            a's element strides over it (0 where a is broadcast)
    T_SB .. T_SB + 3            b's element strides
    T_FN, T_AZP, T_BZP, T_YZP, T_QMIN, T_QMAX   fn (ops.Bin) and the int8 parameters (QBINARY)

The NumPy twins are rtinfer.reference.binary_f32 / qbinary_i8 / slice_axis / matmul and
np.concatenate.
"""

from __future__ import annotations

import math

import numpy as np

from . import kernels_tile as T
from .jitcache import kernel_jit
from .ops import Bin

T_NA, T_NB, T_NOUT = 0, 1, 2
T_D = 3
T_SA = 7
T_SB = 11
T_FN, T_AZP, T_BZP, T_YZP, T_QMIN, T_QMAX = 15, 16, 17, 18, 19, 20
T_LEN = 21

B_ADD = int(Bin.ADD)
B_SUB = int(Bin.SUB)
B_MUL = int(Bin.MUL)
B_DIV = int(Bin.DIV)
B_MAX = int(Bin.MAX)
B_MIN = int(Bin.MIN)


class BroadcastError(ValueError):
    """Two per-sample shapes do not broadcast, or need more than 4 merged dimensions."""


def binary_table(a_shape, b_shape, fn: int, a_zp: int = 0, b_zp: int = 0, y_zp: int = 0,
                 qmin: int = -128, qmax: int = 127) -> tuple[np.ndarray, tuple]:
    """(int32 table, broadcast output shape) for a BINARY / QBINARY of per-sample shapes
    a_shape and b_shape (NumPy broadcasting, right-aligned)."""
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    try:
        out = tuple(np.broadcast_shapes(a_shape, b_shape))
    except ValueError:
        raise BroadcastError(f"shapes {a_shape} and {b_shape} do not broadcast") from None
    r = len(out)
    pa = (1,) * (r - len(a_shape)) + a_shape
    pb = (1,) * (r - len(b_shape)) + b_shape

    def strides(shape):
        st, acc = [0] * r, 1
        for k in range(r - 1, -1, -1):
            st[k] = 0 if (shape[k] == 1 and out[k] != 1) else acc
            acc *= shape[k]
        return st

    sa, sb = strides(pa), strides(pb)
    # drop size-1 dimensions, then merge neighbours that are contiguous for a, b and the output
    dims = [(out[k], sa[k], sb[k]) for k in range(r) if out[k] != 1]
    merged: list[list[int]] = []
    for d, x, y in dims:
        if merged:
            pd, px, py = merged[-1]
            if px == x * d and py == y * d:
                merged[-1] = [pd * d, x, y]
                continue
        merged.append([d, x, y])
    if len(merged) > 4:
        raise BroadcastError(f"shapes {a_shape} and {b_shape} broadcast over {len(merged)} separate "
                             f"dimensions; the kernel takes at most 4")
    merged = [[1, 0, 0]] * (4 - len(merged)) + merged
    t = np.zeros(T_LEN, dtype=np.int64)
    t[T_NA], t[T_NB], t[T_NOUT] = math.prod(a_shape), math.prod(b_shape), math.prod(out)
    for k in range(4):
        t[T_D + k], t[T_SA + k], t[T_SB + k] = merged[k]
    t[T_FN], t[T_AZP], t[T_BZP], t[T_YZP], t[T_QMIN], t[T_QMAX] = fn, a_zp, b_zp, y_zp, qmin, qmax
    return t.astype(np.int32), out


# IEEE division (a / 0 is inf or nan, as the op contract says): numba's default Python error
# model raises ZeroDivisionError from compiled code instead
@kernel_jit(error_model="numpy")
def _f(x, y, fn):
    if fn == B_ADD:
        return x + y
    if fn == B_SUB:
        return x - y
    if fn == B_MUL:
        return x * y
    if fn == B_DIV:
        return x / y
    if fn == B_MAX:
        # np.maximum: NaN propagates
        if x != x or y != y:
            return x + y
        return x if x >= y else y
    if x != x or y != y:
        return x + y
    return x if x <= y else y


@kernel_jit
def binary_f32(a, ao, b, bo, dst, do, t, g, m, relu):
    """dst = a fn b for m samples, broadcast per the table at t[g:] (float32). With ``relu``, a
    same-shape ADD (a residual add) applies ReLU (0 if v < 0 else v: NaN passes) in the same
    loop and returns True; otherwise no activation is applied and it returns False."""
    na, nb, n = t[g + T_NA], t[g + T_NB], t[g + T_NOUT]
    fn = t[g + T_FN]
    if na == n and nb == n:  # same shape: one flat run per sample (residual adds)
        for s in range(m):
            x = a[ao + s * na:ao + s * na + n]
            y = b[bo + s * nb:bo + s * nb + n]
            z = dst[do + s * n:do + s * n + n]
            if fn == B_ADD and relu:
                for k in range(n):
                    v = x[k] + y[k]
                    z[k] = np.float32(0.0) if v < 0.0 else v
            elif fn == B_ADD:
                for k in range(n):
                    z[k] = x[k] + y[k]
            elif fn == B_MUL:
                for k in range(n):
                    z[k] = x[k] * y[k]
            elif fn == B_SUB:
                for k in range(n):
                    z[k] = x[k] - y[k]
            else:
                for k in range(n):
                    z[k] = _f(x[k], y[k], fn)
        return relu and fn == B_ADD
    d0, d1, d2, d3 = t[g + T_D], t[g + T_D + 1], t[g + T_D + 2], t[g + T_D + 3]
    a0, a1, a2, a3 = t[g + T_SA], t[g + T_SA + 1], t[g + T_SA + 2], t[g + T_SA + 3]
    b0, b1, b2, b3 = t[g + T_SB], t[g + T_SB + 1], t[g + T_SB + 2], t[g + T_SB + 3]
    for s in range(m):
        po = do + s * n
        for i0 in range(d0):
            for i1 in range(d1):
                for i2 in range(d2):
                    pa = ao + s * na + i0 * a0 + i1 * a1 + i2 * a2
                    pb = bo + s * nb + i0 * b0 + i1 * b1 + i2 * b2
                    z = dst[po:po + d3]
                    if a3 == 1 and b3 == 0:
                        y = b[pb]
                        x = a[pa:pa + d3]
                        if fn == B_ADD:
                            for k in range(d3):
                                z[k] = x[k] + y
                        elif fn == B_MUL:
                            for k in range(d3):
                                z[k] = x[k] * y
                        else:
                            for k in range(d3):
                                z[k] = _f(x[k], y, fn)
                    elif a3 == 0 and b3 == 1:
                        x = a[pa]
                        y = b[pb:pb + d3]
                        for k in range(d3):
                            z[k] = _f(x, y[k], fn)
                    else:
                        for k in range(d3):
                            z[k] = _f(a[pa + k * a3], b[pb + k * b3], fn)
                    po += d3
    return False


@kernel_jit(inline="always")
def _q_out(v, y_zp, lo, hi):
    """int8(clamp(rint(v), lo, hi) + y_zp) with lo = qmin - y_zp, hi = qmax - y_zp and y_zp as
    float32: for finite v the same as clamp(int(rint(v)) + y_zp, qmin, qmax), but all in float32
    (small integers, exact) a loop of these vectorizes (numba's integer arithmetic is int64, and
    float <-> int64 has no AVX2 instruction)."""
    r = np.rint(v)
    r = min(max(r, lo), hi) + y_zp
    return np.int8(np.int32(r))


@kernel_jit(inline="always")
def _q_val(xa, xb, fn, azp, bzp, ma, mb):
    """QBINARY's float32 value of int8 codes xa fn xb before rounding (rtinfer.reference.qbinary_i8);
    azp, bzp as float32: x - zp of int8 codes is exact in float32, and so is the product of two."""
    da = np.float32(xa) - azp
    db = np.float32(xb) - bzp
    if fn == B_MUL:
        return da * db * ma
    va = da * ma
    vb = db * mb
    if fn == B_ADD:
        return va + vb
    if fn == B_SUB:
        return va - vb
    if fn == B_MAX:
        return max(va, vb)
    return min(va, vb)


@kernel_jit
def _qadd(a, ao, b, bo, dst, do, n, azp, bzp, ma, mb, lo, hi, yzp):
    """kernels_tile.qadd32 in a function of its own (not inlined): inlined into qbinary_i8 its
    loop reloaded ten spilled vectors a step (the same time on a Zen 2, whose loads absorbed
    them; 60 instructions a step here against 80)."""
    T.qadd32(a, ao, b, bo, dst, do, n, azp, bzp, ma, mb, lo, hi, yzp)


@kernel_jit
def qbinary_i8(a, ao, b, bo, dst, do, t, g, m, ma, mb):
    """int8 a fn b for m samples (QBINARY, rtinfer.ops), broadcast per the table at t[g:];
    ma, mb: float32 multipliers (rtinfer.quant.qbinary_multipliers)."""
    na, nb, n = t[g + T_NA], t[g + T_NB], t[g + T_NOUT]
    fn = t[g + T_FN]
    azp, bzp = np.float32(t[g + T_AZP]), np.float32(t[g + T_BZP])
    yzp = np.float32(t[g + T_YZP])
    lo = np.float32(t[g + T_QMIN] - t[g + T_YZP])
    hi = np.float32(t[g + T_QMAX] - t[g + T_YZP])
    ma = np.float32(ma)
    mb = np.float32(mb)
    d0, d1, d2, d3 = t[g + T_D], t[g + T_D + 1], t[g + T_D + 2], t[g + T_D + 3]
    a0, a1, a2, a3 = t[g + T_SA], t[g + T_SA + 1], t[g + T_SA + 2], t[g + T_SA + 3]
    b0, b1, b2, b3 = t[g + T_SB], t[g + T_SB + 1], t[g + T_SB + 2], t[g + T_SB + 3]
    for s in range(m):
        po = do + s * n
        for i0 in range(d0):
            for i1 in range(d1):
                for i2 in range(d2):
                    pa = ao + s * na + i0 * a0 + i1 * a1 + i2 * a2
                    pb = bo + s * nb + i0 * b0 + i1 * b1 + i2 * b2
                    z = dst[po:po + d3]
                    # slices, not a[pa + k]: the index cannot be negative, so no wraparound
                    # select per element and the loops vectorize
                    if a3 == 1 and b3 == 1:
                        x = a[pa:pa + d3]
                        y = b[pb:pb + d3]
                        if fn == B_ADD and d3 >= 32:  # the residual add
                            _qadd(a, pa, b, pb, dst, po, d3, azp, bzp, ma, mb, lo, hi, t[g + T_YZP])
                        elif fn == B_ADD:  # fn a constant in the loop, so it vectorizes
                            for k in range(d3):
                                z[k] = _q_out(_q_val(x[k], y[k], B_ADD, azp, bzp, ma, mb), yzp, lo, hi)
                        else:
                            for k in range(d3):
                                z[k] = _q_out(_q_val(x[k], y[k], fn, azp, bzp, ma, mb), yzp, lo, hi)
                    elif a3 == 1 and b3 == 0:
                        x = a[pa:pa + d3]
                        yb = b[pb]
                        for k in range(d3):
                            z[k] = _q_out(_q_val(x[k], yb, fn, azp, bzp, ma, mb), yzp, lo, hi)
                    elif a3 == 0 and b3 == 1:
                        xb = a[pa]
                        y = b[pb:pb + d3]
                        for k in range(d3):
                            z[k] = _q_out(_q_val(xb, y[k], fn, azp, bzp, ma, mb), yzp, lo, hi)
                    else:
                        for k in range(d3):
                            z[k] = _q_out(_q_val(a[pa + k * a3], b[pb + k * b3], fn, azp, bzp, ma, mb), yzp, lo, hi)
                    po += d3


@kernel_jit
def copy_blocks(src, so, dst, do, m, outer, chunk, dst_stride, col):
    """One input of a concatenation (or one output into the caller's Y): for m samples, the
    source's outer blocks of chunk elements (src sample size outer * chunk) go to
    dst[sample + o * dst_stride + col:] (dst sample size outer * dst_stride)."""
    src_n = outer * chunk
    dst_n = outer * dst_stride
    for s in range(m):
        for o in range(outer):
            x = src[so + s * src_n + o * chunk:so + s * src_n + (o + 1) * chunk]
            z = dst[do + s * dst_n + o * dst_stride + col:do + s * dst_n + o * dst_stride + col + chunk]
            for k in range(chunk):
                z[k] = x[k]


@kernel_jit
def slice_copy(src, so, dst, do, m, outer, axis_len, inner, start, step, count):
    """SLICE: per sample, x viewed as (outer, axis_len, inner); y[o, k] = x[o, start + k * step]."""
    n_in = outer * axis_len * inner
    n_out = outer * count * inner
    for s in range(m):
        for o in range(outer):
            for k in range(count):
                i = so + s * n_in + (o * axis_len + start + k * step) * inner
                z = dst[do + s * n_out + (o * count + k) * inner:do + s * n_out + (o * count + k + 1) * inner]
                x = src[i:i + inner]
                for j in range(inner):
                    z[j] = x[j]


@kernel_jit
def matmul_f32(a, ao, b, bo, dst, do, m, groups, rows, inner, cols, a_step, b_step):
    """MATMUL: per sample s < m and group g < groups, dst (rows, cols) = a (rows, inner) @
    b (inner, cols), float32 sums over inner in order. Group g of a starts at g * a_step (0: one
    matrix for every group: a sample of a then holds rows * inner elements), likewise b."""
    n_a = (groups if a_step else 1) * rows * inner
    n_b = (groups if b_step else 1) * inner * cols
    n_y = groups * rows * cols
    for s in range(m):
        for g in range(groups):
            a0 = ao + s * n_a + g * a_step
            b0 = bo + s * n_b + g * b_step
            y0 = do + s * n_y + g * rows * cols
            for i in range(rows):
                z = dst[y0 + i * cols:y0 + (i + 1) * cols]
                for j in range(cols):
                    z[j] = np.float32(0.0)
                for p in range(inner):
                    v = a[a0 + i * inner + p]
                    br = b[b0 + p * cols:b0 + (p + 1) * cols]
                    for j in range(cols):
                        z[j] += v * br[j]
