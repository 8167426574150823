"""The one compiled interpreter: walks a plan's int64 program and dispatches on op codes.

Every function here takes the plan image (``blob``, uint8, see rtinfer.plan) plus flat float32
input/output arrays, so each is compiled once for all models (one signature each) and cached
on disk (like ``cache=True``, stamped with the sources of this file, the kernels, the plan
layout and the op codes): a second model, or a second process, runs without compiling.

    run_one(blob, x, y) -> int        one sample; returns -1, or the index of the first
                                      non-finite element of x (the sample still runs)
    execute(blob, X, Y, n, mode, times)
        mode MODE_BATCH:  n samples in blocks of plan.BLOCK (blocked matrix-matrix kernels)
        mode MODE_STREAM: n samples one at a time (the embedded loop)
        mode MODE_TIMED:  as MODE_STREAM, times[s] = nanoseconds of sample s
        mode MODE_PER_OP: as MODE_STREAM, times[s * n_ops + k] = nanoseconds of op k on sample s
    first_nonfinite(X) -> int         index of the first NaN/inf element of X, or -1
    run_segment, dense_bias_act,      the compiled pieces of the batch path (rtinfer.batch): a
    i8_to_f32, qdense_requant         range of program rows with tiled GEMMs (rtinfer.kernels_gemm),
                                      and the before/after of a BLAS GEMM

X (n * in_size,) and Y (n * out_size,) are the caller's C-contiguous float32 arrays, flattened.
Timing uses clock_gettime(CLOCK_MONOTONIC), declared as an external C symbol (cache-safe),
with its struct timespec in the plan header's scratch slots (no allocation).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys

import numpy as np
from numba import njit, types
from numba.core import caching

from . import kernels as K
from . import kernels_conv as KC
from . import kernels_gemm as G
from .ops import Op
from .plan import (C_ACT, C_DST, C_DST_KIND, C_FP, C_I0, C_I1, C_I2, C_NIN, C_NOUT, C_OP, C_SRC,
                   C_SRC_KIND, C_T0, C_T1, C_T2, H_BLOCK, H_CLOCK, H_IN_SIZE, H_N_OPS, H_NCOLS,
                   H_OUT_SIZE, H_PROG, K_IO)

# -- on-disk cache keyed on every source the interpreter compiles in ---------------------------
# Numba keys a function's cache on the contents of its own file only. The interpreter inlines
# rtinfer.kernels and bakes in rtinfer.plan's layout constants and rtinfer.ops' codes, so its
# cache stamp here hashes those files too: editing a kernel invalidates the interpreter.
_DEPS = ("interp.py", "kernels.py", "plan.py", "ops.py", "kernels_gemm.py", "kernels_conv.py", "kernels_tile.py")


@functools.lru_cache(maxsize=None)
def _deps_stamp() -> str:
    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for name in _DEPS:
        with open(os.path.join(here, name), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


class _DepsStamp:
    def get_source_stamp(self):
        return _deps_stamp()


def _locator(name):
    base = getattr(caching, name, None) or getattr(caching, "_" + name)
    return type("Deps" + name, (_DepsStamp, base), {})


class _DepsCacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_locator("UserProvidedCacheLocator"), _locator("InTreeCacheLocator"),
                        _locator("UserWideCacheLocator")]


class _DepsFunctionCache(caching.FunctionCache):
    _impl_class = _DepsCacheImpl

    def load_overload(self, sig, target_context):
        """The cached compile result for sig, or None (then the dispatcher compiles, and
        compiling refreshes the target context itself).

        Numba's FunctionCache.load_overload first calls target_context.refresh(), which imports
        every lowering registry of Numba (numba.np.arraymath among them, whose BLAS probe imports
        scipy.linalg: 0.2-0.4 s, about half of a warm start-up). Rebuilding a cached library does
        not use those registries: it unpickles object code and links it against symbols that the
        target context registers when it is created (Numba's C helpers, libc). Functions made by
        _jit are compiled without NRT, so their code never references the NRT symbols that
        refresh() would register. On a Numba without these internals, the stock loader runs."""
        load = getattr(self, "_load_overload", None)
        guard = getattr(self, "_guard_against_spurious_io_errors", None)
        if load is None or guard is None:
            return super().load_overload(sig, target_context)
        with guard():
            return load(sig, target_context)


def _jit(fn):
    """@njit without NRT, cached on disk like cache=True but stamped with _deps_stamp()."""
    disp = njit(_nrt=False)(fn)
    disp._cache = _DepsFunctionCache(disp.py_func)
    return disp


MODE_BATCH = 0
MODE_STREAM = 1
MODE_TIMED = 2
MODE_PER_OP = 3

CLOCK_MONOTONIC = 1  # Linux value
HAS_CLOCK = sys.platform.startswith("linux")

_clock_gettime = types.ExternalFunction("clock_gettime", types.int32(types.int32, types.intp))

O_DENSE = int(Op.DENSE)
O_ACT = int(Op.ACT)
O_SOFTMAX = int(Op.SOFTMAX)
O_LOG_SOFTMAX = int(Op.LOG_SOFTMAX)
O_ARGMAX = int(Op.ARGMAX)
O_AFFINE = int(Op.AFFINE)
O_QUANTIZE = int(Op.QUANTIZE)
O_DEQUANTIZE = int(Op.DEQUANTIZE)
O_QDENSE = int(Op.QDENSE)
O_QLUT = int(Op.QLUT)
O_CONV = int(Op.CONV)
O_MAXPOOL = int(Op.MAXPOOL)
O_AVGPOOL = int(Op.AVGPOOL)
O_GLOBAL_AVGPOOL = int(Op.GLOBAL_AVGPOOL)
O_QCONV = int(Op.QCONV)
O_QMAXPOOL = int(Op.QMAXPOOL)
O_QAVGPOOL = int(Op.QAVGPOOL)


@_jit
def now_ns(h):
    """CLOCK_MONOTONIC in nanoseconds; h is the plan's int64 view (timespec in the header)."""
    _clock_gettime(CLOCK_MONOTONIC, h.ctypes.data + H_CLOCK * 8)
    return h[H_CLOCK] * 1000000000 + h[H_CLOCK + 1]


@_jit
def exec_row(h, f64, f32, i32, i8, r, X, xo, Y, yo, m):
    """Execute the program row starting at h[r] for m samples. X/Y: the caller's float32
    arrays, sample 0 of the row's input/output at X[xo] / Y[yo] when the row reads X / writes
    Y; otherwise operands live in the arena views (f32 or i8) at the row's offsets."""
    op = h[r + C_OP]
    act = h[r + C_ACT]
    n_in = h[r + C_NIN]
    n_out = h[r + C_NOUT]
    fp = h[r + C_FP]
    alpha = f64[fp]
    beta = f64[fp + 1]
    scale = f64[fp + 2]
    src_io = h[r + C_SRC_KIND] == K_IO
    dst_io = h[r + C_DST_KIND] == K_IO
    so = xo if src_io else h[r + C_SRC]
    do = yo if dst_io else h[r + C_DST]
    src = X if src_io else f32
    dst = Y if dst_io else f32
    if op == O_DENSE:
        K.dense_f32(src, so, f32, h[r + C_T0], f32, h[r + C_T1], dst, do, n_in, n_out, m)
        if act != K.A_IDENTITY:
            K.act_f32(dst, do, dst, do, m * n_out, act, alpha, beta)
    elif op == O_ACT:
        K.act_f32(src, so, dst, do, m * n_in, act, alpha, beta)
    elif op == O_AFFINE:
        K.affine_f32(src, so, f32, h[r + C_T0], f32, h[r + C_T1], dst, do, n_in, m)
        if act != K.A_IDENTITY:
            K.act_f32(dst, do, dst, do, m * n_out, act, alpha, beta)
    elif op == O_SOFTMAX:
        K.softmax_f32(src, so, dst, do, m * h[r + C_I0], h[r + C_I1], h[r + C_I2], 0)
    elif op == O_LOG_SOFTMAX:
        K.softmax_f32(src, so, dst, do, m * h[r + C_I0], h[r + C_I1], h[r + C_I2], 1)
    elif op == O_ARGMAX:
        K.argmax_f32(src, so, dst, do, m * h[r + C_I0], h[r + C_I1], h[r + C_I2])
    elif op == O_QUANTIZE:
        K.quantize_f32_i8(src, so, i8, do, m * n_in, scale, h[r + C_I0])
    elif op == O_DEQUANTIZE:
        K.dequantize_i8_f32(i8, so, dst, do, m * n_in, scale, h[r + C_I0])
    elif op == O_QDENSE:
        K.qdense_i8(i8, so, i8, h[r + C_T0], i32, h[r + C_T1], f32, h[r + C_T2], i8, do,
                    n_in, n_out, m, h[r + C_I0], h[r + C_I1], h[r + C_I2])
    elif op == O_QLUT:
        K.lut_i8(i8, so, i8, h[r + C_T0], i8, do, m * n_in)
    elif op == O_CONV:  # conv/pool rows: I0 = the int32 table (rtinfer.kernels_conv)
        KC.conv_f32(src, so, f32, h[r + C_T0], f32, h[r + C_T1], dst, do, i32, h[r + C_I0], m, f32, h[r + C_T2],
                    act, alpha, beta)
    elif op == O_MAXPOOL:
        KC.maxpool(src, so, dst, do, i32, h[r + C_I0], m)
    elif op == O_AVGPOOL:
        KC.avgpool_f32(src, so, dst, do, i32, h[r + C_I0], m)
    elif op == O_GLOBAL_AVGPOOL:
        KC.global_avgpool_f32(src, so, dst, do, h[r + C_I0], h[r + C_I1], m)
    elif op == O_QCONV:
        g = h[r + C_I0]
        KC.qconv_i8(i8, so, i8, h[r + C_T0], i32, h[r + C_T1], f32, h[r + C_T2], i8, do, i32, g, m,
                    i32[g + KC.G_XZP], i32[g + KC.G_YZP], i32[g + KC.G_QMIN], i32[g + KC.G_QMAX],
                    i8, h[r + C_T0] + i32[g + KC.G_COLS], f32, h[r + C_T2] + i32[g + KC.G_FS])
    elif op == O_QMAXPOOL:
        KC.maxpool(i8, so, i8, do, i32, h[r + C_I0], m)
    elif op == O_QAVGPOOL:
        g = h[r + C_I0]
        KC.qavgpool_i8(i8, so, i8, do, i32, g, m, i32[g + KC.G_XZP], i32[g + KC.G_YZP], scale)


@_jit
def run_rows(h, f64, f32, i32, i8, X, xo, Y, yo, m):
    """All program rows for m consecutive samples (X[xo:], Y[yo:]); h, f64, f32, i32, i8 are
    the plan image's views (made once per call of the entry point, not per sample)."""
    p = h[H_PROG]
    nc = h[H_NCOLS]
    for k in range(h[H_N_OPS]):
        exec_row(h, f64, f32, i32, i8, p + k * nc, X, xo, Y, yo, m)


@_jit
def first_nonfinite(X):
    """Index of the first NaN or inf in X, or -1. One vectorized pass over the bits (exponent
    all ones means NaN or inf), then a scan only when something was found."""
    bits = X.view(np.uint32)
    hit = np.uint32(0)
    for k in range(bits.size):
        hit |= np.uint32((bits[k] & np.uint32(0x7F800000)) == np.uint32(0x7F800000))
    if hit == 0:
        return -1
    for k in range(X.size):
        if not np.isfinite(X[k]):
            return k
    return -1


@_jit
def run_one(blob, x, y):
    """One sample x (in_size,) -> y (out_size,). Returns -2 (x has the wrong size) or -3
    (y has the wrong size) without running; otherwise runs and returns first_nonfinite(x)."""
    h = blob.view(np.int64)
    if x.size != h[H_IN_SIZE]:
        return -2
    if y.size != h[H_OUT_SIZE]:
        return -3
    bad = first_nonfinite(x)
    # int64 offsets (not literal 0s): the same run_rows/exec_row specialization as the
    # one-sample loops of execute, so a first-ever compile builds it once, not twice
    run_rows(h, blob.view(np.float64), blob.view(np.float32), blob.view(np.int32), blob.view(np.int8),
             x, np.int64(0), y, np.int64(0), 1)
    return bad


@_jit
def execute(blob, X, Y, n, mode, times):
    """n samples X (n * in_size,) -> Y (n * out_size,); see the module docstring for modes."""
    h = blob.view(np.int64)
    f64 = blob.view(np.float64)
    f32 = blob.view(np.float32)
    i32 = blob.view(np.int32)
    i8 = blob.view(np.int8)
    n_in = h[H_IN_SIZE]
    n_out = h[H_OUT_SIZE]
    if mode == MODE_BATCH:
        block = h[H_BLOCK]
        s = 0
        while s < n:
            m = min(block, n - s)
            run_rows(h, f64, f32, i32, i8, X, s * n_in, Y, s * n_out, m)
            s += m
    elif mode == MODE_STREAM:
        for s in range(n):
            run_rows(h, f64, f32, i32, i8, X, s * n_in, Y, s * n_out, 1)
    elif mode == MODE_TIMED:
        for s in range(n):
            t0 = now_ns(h)
            run_rows(h, f64, f32, i32, i8, X, s * n_in, Y, s * n_out, 1)
            t1 = now_ns(h)
            times[s] = t1 - t0
    elif mode == MODE_PER_OP:
        p = h[H_PROG]
        nc = h[H_NCOLS]
        n_ops = h[H_N_OPS]
        for s in range(n):
            for k in range(n_ops):
                t0 = now_ns(h)
                exec_row(h, f64, f32, i32, i8, p + k * nc, X, s * n_in, Y, s * n_out, 1)
                t1 = now_ns(h)
                times[s * n_ops + k] = t1 - t0


# -- compiled pieces of the BLAS batch path (rtinfer.batch drives them) -------------------------

@_jit
def dense_bias_act(blob, r, Y, yo, m):
    """Epilogue of the DENSE row at h[r] once its output (Y[yo:] if the row writes Y, else its
    arena region) holds the products x @ W for m samples: y = act(y + b) in place, the bias
    added in float32 and the activation applied exactly as exec_row does."""
    h = blob.view(np.int64)
    f64 = blob.view(np.float64)
    f32 = blob.view(np.float32)
    n_out = h[r + C_NOUT]
    bo = h[r + C_T1]
    act = h[r + C_ACT]
    fp = h[r + C_FP]
    dst_io = h[r + C_DST_KIND] == K_IO
    dst = Y if dst_io else f32
    do = yo if dst_io else h[r + C_DST]
    b = f32[bo:bo + n_out]
    if act == K.A_RELU:  # fused in one pass, the expression of kernels.act_f32
        for s in range(m):
            y = dst[do + s * n_out:do + (s + 1) * n_out]
            for j in range(n_out):
                v = y[j] + b[j]
                y[j] = np.float32(0.0) if v < 0.0 else v
        return
    for s in range(m):
        d = do + s * n_out
        y = dst[d:d + n_out]
        for j in range(n_out):
            y[j] = y[j] + b[j]
        if act != K.A_IDENTITY:
            K.act_f32(dst, d, dst, d, n_out, act, f64[fp], f64[fp + 1])


@_jit
def i8_to_f32(blob, r, xf, m):
    """xf[:m * n_in] = float32 of the int8 input (raw codes, arena) of the QDENSE row at h[r]."""
    h = blob.view(np.int64)
    n = m * h[r + C_NIN]
    x = blob.view(np.int8)[h[r + C_SRC]:h[r + C_SRC] + n]
    y = xf[:n]
    for k in range(n):
        y[k] = np.float32(x[k])


@_jit
def qdense_requant(blob, r, acc, m):
    """Epilogue of the QDENSE row at h[r]: acc (m * n_out,) float32 holds sum_i x[i] * W[i, j]
    over raw int8 codes as exact integers; y = clamp(rint(float32(int32(acc) + folded bias) *
    M[j]) + y_zp, qmin, qmax) (kernels._requant's arithmetic, with branch-free clamps), written
    to the row's int8 output in the arena."""
    h = blob.view(np.int64)
    f32 = blob.view(np.float32)
    i32 = blob.view(np.int32)
    i8 = blob.view(np.int8)
    n_out = h[r + C_NOUT]
    do = h[r + C_DST]
    y_zp = h[r + C_I0]
    qmin = h[r + C_I1]
    qmax = h[r + C_I2]
    bias = i32[h[r + C_T1]:h[r + C_T1] + n_out]
    mult = f32[h[r + C_T2]:h[r + C_T2] + n_out]
    for s in range(m):
        x = acc[s * n_out:(s + 1) * n_out]
        y = i8[do + s * n_out:do + (s + 1) * n_out]
        for j in range(n_out):
            v = np.int32(np.int32(x[j]) + bias[j])
            q = np.int64(np.rint(np.float32(v) * mult[j])) + y_zp
            y[j] = np.int8(min(max(q, qmin), qmax))


# Kinds of the batch path's row table (rtinfer.batch): columns kind, w_off, nq, nblk, b_off.
B_EXEC = 0         # exec_row
B_DENSE_TILED = 1  # kernels_gemm.dense_f32_tiled: weights packed at fpack[w_off:], nblk blocks
B_QDENSE_U8 = 2    # kernels_gemm.qdense_u8s8: weights at ipack[w_off:], nq quads, nblk blocks,
                   # shifted bias at bpack[b_off:]
B_DEQUANTIZE = 3   # kernels_gemm.dequantize_i8_f32 (the same values as the interpreter's kernel)


@_jit
def run_segment(blob, p, k0, k1, X, xo, Y, yo, m, tab, fpack, ipack, bpack, A, C, T):
    """Rows k0 .. k1 - 1 of the program at h[p:] for m samples, each as tab[k] says: exec_row,
    or a tiled GEMM (float32 DENSE, u8s8 QDENSE) with the row's operands, bias, activation and
    requantization. A (uint8), C (int32), T (float32): the GEMMs' scratch."""
    h = blob.view(np.int64)
    f64 = blob.view(np.float64)
    f32 = blob.view(np.float32)
    i32 = blob.view(np.int32)
    i8 = blob.view(np.int8)
    nc = h[H_NCOLS]
    for k in range(k0, k1):
        r = p + k * nc
        kind = tab[k, 0]
        if kind == B_DENSE_TILED:
            n_in = h[r + C_NIN]
            n_out = h[r + C_NOUT]
            act = h[r + C_ACT]
            src_io = h[r + C_SRC_KIND] == K_IO
            dst_io = h[r + C_DST_KIND] == K_IO
            so = xo if src_io else h[r + C_SRC]
            do = yo if dst_io else h[r + C_DST]
            src = X if src_io else f32
            dst = Y if dst_io else f32
            G.dense_f32_tiled(src, so, fpack, tab[k, 1], n_in, n_out, tab[k, 3], f32, h[r + C_T1], dst, do, m,
                              act == K.A_RELU, T)
            if act != K.A_IDENTITY and act != K.A_RELU:
                fp = h[r + C_FP]
                K.act_f32(dst, do, dst, do, m * n_out, act, f64[fp], f64[fp + 1])
        elif kind == B_QDENSE_U8:
            n_in = h[r + C_NIN]
            n_out = h[r + C_NOUT]
            nq = tab[k, 2]
            nblk = tab[k, 3]
            mo = h[r + C_T2]
            G.qdense_u8s8(i8, h[r + C_SRC], h[r + C_DST], n_in, n_out, m, A, 4 * nq, ipack[tab[k, 1]:], nq, nblk,
                          C, G.TILE_J * nblk, bpack[tab[k, 4]:], f32[mo:mo + n_out], h[r + C_I0], h[r + C_I1],
                          h[r + C_I2])
        elif kind == B_DEQUANTIZE:
            dst_io = h[r + C_DST_KIND] == K_IO
            dst = Y if dst_io else f32
            do = yo if dst_io else h[r + C_DST]
            G.dequantize_i8_f32(i8, h[r + C_SRC], dst, do, m * h[r + C_NIN], f64[h[r + C_FP] + 2], h[r + C_I0])
        else:
            exec_row(h, f64, f32, i32, i8, r, X, xo, Y, yo, m)


def warm_up_batch() -> None:
    """Compile (or load from the cache) the batch path's entry points, one signature each."""
    blob = np.zeros(256, dtype=np.uint8)  # a program of n_ops = 0 rows; m = 0 samples
    x = np.zeros(1, dtype=np.float32)
    run_segment(blob, 0, 0, 0, x, 0, x, 0, 0, np.zeros((1, 5), np.int64), x, np.zeros(1, np.int8),
                np.zeros(1, np.int32), np.zeros(1, np.uint8), np.zeros(1, np.int32), x)
    dense_bias_act(blob, 0, x, 0, 0)
    i8_to_f32(blob, 0, x, 0)
    qdense_requant(blob, 0, x, 0)
    for fn in (run_segment, dense_bias_act, i8_to_f32, qdense_requant):
        fn.disable_compile()


def warm_up_one() -> None:
    """Compile (or load from the cache) run_one, all that predict_one needs."""
    blob = np.zeros(256, dtype=np.uint8)  # a header with n_ops = 0: runs nothing
    x = np.zeros(1, dtype=np.float32)
    run_one(blob, x, x)
    # One signature each, for every model: a call with other argument types must fail (the
    # runtime's boundary then explains why) instead of compiling a new specialization.
    run_one.disable_compile()


def warm_up_many() -> None:
    """Compile (or load from the cache) execute and first_nonfinite (predict, stream, measure)."""
    blob = np.zeros(256, dtype=np.uint8)
    x = np.zeros(1, dtype=np.float32)
    execute(blob, x, x, 0, MODE_BATCH, np.zeros(1, dtype=np.int64))
    first_nonfinite(x)
    for fn in (execute, first_nonfinite):
        fn.disable_compile()


def warm_up() -> None:
    """Compile (or load from the cache) every interpreter entry point with its one signature."""
    warm_up_one()
    warm_up_many()
