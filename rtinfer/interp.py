"""The compiled interpreter: walks a plan's int64 program and dispatches on op codes.

One loop, built by one factory (_make_execute) into a few entry points that differ only in the
op families they can run (VARIANTS): "dense" (MLP chains, fp32 and int8), "core" (+ graph ops),
"conv_chain"/"qconv_chain" ("dense" + float32 / int8 conv/pool: CNN chains), "conv"/"qconv"
(+ graph ops: residual CNNs), "full" (every op), and "dense_batch"/"core_batch" with the batch
path's steps (rtinfer.batch).
A model uses the smallest one its ops need (variant_for), so its first-ever compile builds only
its family's kernels (an MLP compiles no convolution). Every path of a model (predict_one,
stream, measure) runs through one entry point, and a warm process loads it from the on-disk
cache (like ``cache=True``, stamped with the sources of this file, the kernels, the plan layout
and the op codes): a second model of the family, or a second process, runs without compiling.
Each variant gives the same bits as the full interpreter on the same plan (tests/test_variants.py).

    execute(blob, X, Y, n, mode) -> int
        blob  the plan image (rtinfer.plan), or a batch path's blob (rtinfer.batch)
        X, Y  the caller's flat float32 input (n * in_size,), compiled read-only (never written),
              and output (n * out_size,)
    Five arguments, three of them arrays: each array argument costs a Python call about 50 ns
    (Numba types and unboxes it), so the times of the timed modes ride in Y's tail and the batch
    path's parameters in its blob instead of a sixth argument.
    mode MODE_ONE:    one sample; returns -2 (X has the wrong size), -3 (Y has the wrong size),
                      -4 (X and Y overlap) without running, else runs and returns the index of
                      the first non-finite element of X, or -1
    mode MODE_BATCH:  n samples in blocks of plan.BLOCK (blocked matrix-matrix kernels)
    mode MODE_STREAM: n samples one at a time (the embedded loop)
    mode MODE_TIMED:  as MODE_STREAM, T[s] = nanoseconds of sample s, where T is the int64 view
                      of Y from element times_at(n * out_size) on (timed_buffer makes such a Y)
    mode MODE_PER_OP: as MODE_TIMED, T[s * n_ops + k] = nanoseconds of row k on sample s
    mode MODE_NONFINITE: returns the index of the first NaN/inf element of X, or -1
    mode MODE_SEGMENT, MODE_DENSE_POST, MODE_I8_TO_F32, MODE_QDENSE_POST, MODE_I64:
                      the compiled steps of the batch path (rtinfer.batch), their parameters T
                      in the blob (at h[h[H_SEG]:] and h[h[H_POST]:]); the first four only in the
                      *_batch variants (the others return -6)

With ``mode | I64`` (a model whose output is int64: ARGMAX) Y is the caller's int64 array viewed
as float32 (2 * n * out_size elements): the rows write float32 results into its first
n * out_size elements and the entry point converts them to int64 in place at the end (from the
last element backwards, so no value is overwritten before it is read). No scratch buffer: the
whole call is one compiled function that holds the GIL, so concurrent calls on one Runtime
cannot interleave inside it. Sizes are checked first in every running mode (-2: X too small,
-3: Y too small, -5: no room for the times in Y; nothing runs).

Arena operands sit at base + offset * st (rtinfer.plan): st = 1 for one sample at a time,
BLOCK for MODE_BATCH, the batch path's CHUNK for MODE_SEGMENT.
Timing uses clock_gettime(CLOCK_MONOTONIC), declared as an external C symbol (cache-safe),
with its struct timespec in the plan header's scratch slots (no allocation).
"""

from __future__ import annotations

import sys

import numpy as np
from numba import typeof, types

from . import kernels as K
from . import kernels_conv as KC
from . import kernels_gemm as G
from . import kernels_extra as KX
from . import kernels_graph as KG
from .jitcache import KERNEL_SOURCES, make_jit
from .ops import Op
from .plan import (C_ACT, C_DST, C_DST_KIND, C_FP, C_I0, C_I1, C_I2, C_I3, C_NIN, C_NOUT, C_OP, C_SRC,
                   C_SRC2, C_SRC2_KIND, C_SRC_KIND, C_T0, C_T1, C_T2, H_AF, H_AI, H_BLOCK, H_CLOCK,
                   H_IN_SIZE, H_N_OPS, H_NCOLS, H_OUT_SIZE, H_POST, H_PROG, H_SEG, K_F, K_X, K_Y)

# -- on-disk cache keyed on every source the interpreter compiles in ---------------------------
# The interpreter calls every kernel and bakes in rtinfer.plan's layout constants and rtinfer.ops'
# codes, so its cache stamp hashes those files and its own (rtinfer.jitcache): editing a kernel
# or the planner recompiles it.
_jit = make_jit(KERNEL_SOURCES + ("interp.py", "plan.py"))


MODE_BATCH = 0
MODE_STREAM = 1
MODE_TIMED = 2
MODE_PER_OP = 3
MODE_ONE = 4
MODE_NONFINITE = 5
MODE_SEGMENT = 6      # T = [p, k0, k1, xo, yo, m, st] + BatchPath table offsets (rtinfer.batch)
MODE_DENSE_POST = 7   # T = [row, yo, m, st]: bias + activation after a BLAS DENSE
MODE_I8_TO_F32 = 8    # T = [row, m, st]: Y[:m * n_in] = float32(int8 input of the QDENSE row)
MODE_QDENSE_POST = 9  # T = [row, m, st]: X holds the float32 sums; requantize into the row's output
MODE_I64 = 10         # convert Y's first n elements (float32) to int64 in place
I64 = 256             # flag: convert the outputs to int64 in place at the end (see above)

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
O_BINARY = int(Op.BINARY)
O_CONCAT = int(Op.CONCAT)
O_SLICE = int(Op.SLICE)
O_QBINARY = int(Op.QBINARY)
O_QCONCAT = int(Op.QCONCAT)
O_QSLICE = int(Op.QSLICE)
O_CONV = int(Op.CONV)
O_MAXPOOL = int(Op.MAXPOOL)
O_AVGPOOL = int(Op.AVGPOOL)
O_GLOBAL_AVGPOOL = int(Op.GLOBAL_AVGPOOL)
O_QCONV = int(Op.QCONV)
O_QMAXPOOL = int(Op.QMAXPOOL)
O_QAVGPOOL = int(Op.QAVGPOOL)
O_GATHER = int(Op.GATHER)
O_QGATHER = int(Op.QGATHER)
O_LAYERNORM = int(Op.LAYERNORM)
O_CONST = int(Op.CONST)
O_MATMUL = int(Op.MATMUL)
O_DYNQUANT = int(Op.DYNQUANT)

# Kinds of the batch path's row table (rtinfer.batch): columns kind, w_off, nq, nblk, b_off.
B_EXEC = 0         # exec_row
B_DENSE_TILED = 1  # kernels_gemm.dense_f32_tiled: weights packed at fpack[w_off:], nblk blocks
B_QDENSE_U8 = 2    # kernels_gemm.qdense_u8s8: weights at ipack[w_off:], nq quads, nblk blocks,
                   # shifted bias at bpack[b_off:]
B_DEQUANTIZE = 3   # kernels_gemm.dequantize_i8_f32 (the same values as the interpreter's kernel)

# MODE_SEGMENT parameters (S_LEN int64 at h[h[H_SEG]:] in the batch path's blob): where its
# tables and scratch sit in the blob and which rows and samples a call runs.
S_P, S_K0, S_K1, S_XO, S_YO, S_M, S_ST = 0, 1, 2, 3, 4, 5, 6
S_TAB = 7      # int64 offset of the (n_ops, 5) row table
S_FPACK = 8    # float32 offset of the packed float32 weights
S_IPACK = 9    # int8 offset of the packed int8 weights
S_BPACK = 10   # int32 offset of the shifted biases
S_A = 11       # uint8 offset of the u8s8 input scratch, S_A + 1: its size
S_C = 13       # int32 offset of the u8s8 sum scratch, S_C + 1: its size
S_TILE = 15    # float32 offset of the tile scratch, S_TILE + 1: its size
S_LEN = 17
POST_LEN = 4   # the epilogue modes' parameters, at h[h[H_POST]:] in the batch path's blob


@_jit
def times_at(ny):
    """Element offset in Y (float32) of the int64 times of MODE_TIMED / MODE_PER_OP: right after
    the ny output elements, rounded up to an even offset (8-byte aligned in an np.empty buffer)."""
    return ny + (ny & 1)


def timed_buffer(ny: int, count: int):
    """(Y, T): a float32 buffer for MODE_TIMED / MODE_PER_OP with room for ny output elements and
    count int64 times after them, and the int64 view of those times."""
    a = times_at.py_func(ny)
    Y = np.empty(a + 2 * count, dtype=np.float32)
    return Y, Y[a:].view(np.int64)


@_jit
def now_ns(h):
    """CLOCK_MONOTONIC in nanoseconds; h is the plan's int64 view (timespec in the header)."""
    _clock_gettime(CLOCK_MONOTONIC, h.ctypes.data + H_CLOCK * 8)
    return h[H_CLOCK] * 1000000000 + h[H_CLOCK + 1]


@_jit
def _at(h, kind, off, xo, yo, st):
    """Element offset of an operand: the sample's place in X or Y, or arena base + off * st."""
    if kind == K_X:
        return xo
    if kind == K_Y:
        return yo
    if kind == K_F:
        return h[H_AF] + off * st
    return h[H_AI] + off * st


def _make_exec_row(graph, name):
    """exec_row of one interpreter variant: ``graph`` False leaves out the graph rows
    (GRAPH_OPS: BINARY, CONCAT, SLICE, GATHER, LAYERNORM and their int8 forms, CONST, MATMUL,
    DYNQUANT), a closure constant whose branches Numba prunes before typing, so their kernels
    are not compiled."""
    def exec_row(h, f64, f32, i32, i8, r, X, xo, Y, yo, m, st):
        """Execute the program row starting at h[r] for m samples. X/Y: the caller's float32
        arrays, sample 0 of the row's input/output at X[xo] / Y[yo] when the row reads X / writes
        Y; arena operands at base + offset * st in the arena views (f32 or i8)."""
        op = h[r + C_OP]
        act = h[r + C_ACT]
        n_in = h[r + C_NIN]
        n_out = h[r + C_NOUT]
        fp = h[r + C_FP]
        alpha = f64[fp]
        beta = f64[fp + 1]
        scale = f64[fp + 2]
        sk = h[r + C_SRC_KIND]
        dk = h[r + C_DST_KIND]
        so = _at(h, sk, h[r + C_SRC], xo, yo, st)
        do = _at(h, dk, h[r + C_DST], xo, yo, st)
        src = X if sk == K_X else (Y if sk == K_Y else f32)
        dst = Y if dk == K_Y else f32
        # the activation a DENSE / AFFINE / BINARY / CONV row applies to its output in place, or an
        # ACT row from its input: one call site (each site is a compiled copy of every activation)
        a_src = dst
        a_so = do
        post = False
        if op == O_DENSE:
            if h[r + C_I0] != 0:  # packed in blocks of 16 outputs (plan.dense_packed), ReLU fused
                G.dense_f32_wide(src, so, f32, h[r + C_T0], n_in, n_out, f32, h[r + C_T1], dst, do, m,
                                 act == K.A_RELU)
                post = act != K.A_IDENTITY and act != K.A_RELU
            else:
                K.dense_f32(src, so, f32, h[r + C_T0], f32, h[r + C_T1], dst, do, n_in, n_out, m)
                post = act != K.A_IDENTITY
        elif op == O_ACT:
            a_src = src
            a_so = so
            post = True
        elif op == O_AFFINE:
            K.affine_f32(src, so, f32, h[r + C_T0], f32, h[r + C_T1], dst, do, n_in, m)
            post = act != K.A_IDENTITY
        elif op == O_SOFTMAX:
            K.softmax_f32(src, so, dst, do, m * h[r + C_I0], h[r + C_I1], h[r + C_I2], 0)
        elif op == O_LOG_SOFTMAX:
            K.softmax_f32(src, so, dst, do, m * h[r + C_I0], h[r + C_I1], h[r + C_I2], 1)
        elif op == O_ARGMAX:
            K.argmax_f32(src, so, dst, do, m * h[r + C_I0], h[r + C_I1], h[r + C_I2], h[r + C_I3])
        elif op == O_QUANTIZE:
            K.quantize_f32_i8(src, so, i8, do, m * n_in, scale, h[r + C_I0])
        elif op == O_DEQUANTIZE:
            K.dequantize_i8_f32(i8, so, dst, do, m * n_in, scale, h[r + C_I0])
        elif op == O_QDENSE:
            if h[r + C_I3] == 2:  # packed int16 pairs (plan.qdense_pairs)
                G.qdense_s16_wide(i8, so, i8, h[r + C_T0], n_in, n_out, i32, h[r + C_T1], f32, h[r + C_T2], do, m,
                                  h[r + C_I0], h[r + C_I1], h[r + C_I2])
            elif h[r + C_I3] != 0:  # packed quads (plan.qdense_packed): bias2 after the folded bias
                G.qdense_u8_wide(i8, so, i8, h[r + C_T0], n_in, n_out, i32, h[r + C_T1] + G.padded_outputs(n_out),
                                 f32, h[r + C_T2], do, m, h[r + C_I0], h[r + C_I1], h[r + C_I2])
            else:
                K.qdense_i8(i8, so, i8, h[r + C_T0], i32, h[r + C_T1], f32, h[r + C_T2], i8, do,
                            n_in, n_out, m, h[r + C_I0], h[r + C_I1], h[r + C_I2])
        elif op == O_QLUT:
            K.lut_i8(i8, so, i8, h[r + C_T0], i8, do, m * n_in)
        elif graph and op == O_BINARY:
            sk2 = h[r + C_SRC2_KIND]
            so2 = _at(h, sk2, h[r + C_SRC2], xo, yo, st)
            src2 = X if sk2 == K_X else (Y if sk2 == K_Y else f32)
            fused = KG.binary_f32(src, so, src2, so2, dst, do, i32, h[r + C_I0], m, act == K.A_RELU)
            post = act != K.A_IDENTITY and not fused
        elif graph and op == O_QBINARY:
            so2 = _at(h, h[r + C_SRC2_KIND], h[r + C_SRC2], xo, yo, st)
            KG.qbinary_i8(i8, so, i8, so2, i8, do, i32, h[r + C_I0], m, alpha, beta)
        elif graph and op == O_CONCAT:
            KG.copy_blocks(src, so, dst, do, m, h[r + C_I0], h[r + C_I1], h[r + C_I2], h[r + C_I3])
        elif graph and op == O_QCONCAT:
            KG.copy_blocks(i8, so, i8, do, m, h[r + C_I0], h[r + C_I1], h[r + C_I2], h[r + C_I3])
        elif graph and op == O_SLICE:
            KG.slice_copy(src, so, dst, do, m, h[r + C_I0], h[r + C_I1], h[r + C_I2], h[r + C_T0], h[r + C_I3],
                          n_out // (h[r + C_I0] * h[r + C_I2]))
        elif graph and op == O_QSLICE:
            KG.slice_copy(i8, so, i8, do, m, h[r + C_I0], h[r + C_I1], h[r + C_I2], h[r + C_T0], h[r + C_I3],
                          n_out // (h[r + C_I0] * h[r + C_I2]))
        elif graph and op == O_GATHER:
            KX.gather(src, so, dst, do, i32, h[r + C_T0], n_in, n_out, m, np.float32(scale))
        elif graph and op == O_QGATHER:
            KX.gather(i8, so, i8, do, i32, h[r + C_T0], n_in, n_out, m, np.int8(h[r + C_I1]))
        elif graph and op == O_LAYERNORM:
            KX.layernorm_f32(src, so, dst, do, f32, h[r + C_T0], h[r + C_T1], h[r + C_I0], h[r + C_I1], m, scale)
        elif graph and op == O_CONST:
            KX.const_f32(f32, h[r + C_T0], dst, do, n_out, m)
        elif graph and op == O_MATMUL:
            sk2 = h[r + C_SRC2_KIND]
            so2 = _at(h, sk2, h[r + C_SRC2], xo, yo, st)
            src2 = X if sk2 == K_X else (Y if sk2 == K_Y else f32)
            KG.matmul_f32(src, so, src2, so2, dst, do, m, h[r + C_I0], h[r + C_I1], h[r + C_I2], h[r + C_I3],
                          h[r + C_T0], h[r + C_T1])
        elif graph and op == O_DYNQUANT:
            KX.dynquant_f32(src, so, dst, do, n_in, m, h[r + C_I0])
        if post:
            K.act_f32(a_src, a_so, dst, do, m * n_out, act, alpha, beta)

    exec_row.__name__ = exec_row.__qualname__ = name
    # inlined into its one call site (an execute variant): no library of its own to optimize
    # and link again
    return _jit(exec_row, inline="always")


exec_row_dense = _make_exec_row(False, "exec_row_dense")
exec_row = _make_exec_row(True, "exec_row")


def _make_exec_window_row(fwin, qwin, name):
    """exec_window_row of one interpreter variant: ``fwin`` the float32 conv/pool rows
    (F_WINDOW_OPS), ``qwin`` the int8 ones (Q_WINDOW_OPS); closure constants, as in
    _make_exec_row."""
    def exec_window_row(h, f64, f32, i32, i8, r, X, xo, Y, yo, m, st):
        """Execute the conv/pool program row (WINDOW_OPS) at h[r] for m samples, as exec_row does
        the others; I0 = the row's int32 table (rtinfer.kernels_conv). CONV applies its own
        activation (ReLU fused into its tiles' epilogues)."""
        op = h[r + C_OP]
        act = h[r + C_ACT]
        fp = h[r + C_FP]
        alpha = f64[fp]
        beta = f64[fp + 1]
        scale = f64[fp + 2]
        sk = h[r + C_SRC_KIND]
        dk = h[r + C_DST_KIND]
        so = _at(h, sk, h[r + C_SRC], xo, yo, st)
        do = _at(h, dk, h[r + C_DST], xo, yo, st)
        src = X if sk == K_X else (Y if sk == K_Y else f32)
        dst = Y if dk == K_Y else f32
        if fwin and op == O_CONV:
            KC.conv_f32(src, so, f32, h[r + C_T0], f32, h[r + C_T1], dst, do, i32, h[r + C_I0], m, f32, h[r + C_T2],
                        act, alpha, beta)
        elif fwin and op == O_MAXPOOL:
            KC.maxpool(src, so, dst, do, i32, h[r + C_I0], m)
        elif fwin and op == O_AVGPOOL:
            KC.avgpool_f32(src, so, dst, do, i32, h[r + C_I0], m)
        elif fwin and op == O_GLOBAL_AVGPOOL:
            KC.global_avgpool_f32(src, so, dst, do, h[r + C_I0], h[r + C_I1], m)
        elif qwin and op == O_QCONV:
            g = h[r + C_I0]
            KC.qconv_i8(i8, so, i8, h[r + C_T0], i32, h[r + C_T1], f32, h[r + C_T2], i8, do, i32, g, m,
                        i32[g + KC.G_XZP], i32[g + KC.G_YZP], i32[g + KC.G_QMIN], i32[g + KC.G_QMAX],
                        i8, h[r + C_T0] + i32[g + KC.G_COLS], f32, h[r + C_T2] + i32[g + KC.G_FS])
        elif qwin and op == O_QMAXPOOL:
            KC.maxpool(i8, so, i8, do, i32, h[r + C_I0], m)
        elif qwin and op == O_QAVGPOOL:
            g = h[r + C_I0]
            KC.qavgpool_i8(i8, so, i8, do, i32, g, m, i32[g + KC.G_XZP], i32[g + KC.G_YZP], scale)

    exec_window_row.__name__ = exec_window_row.__qualname__ = name
    return _jit(exec_window_row, inline="always")  # one call site (an execute variant)


exec_window_row = _make_exec_window_row(True, True, "exec_window_row")
exec_window_row_f32 = _make_exec_window_row(True, False, "exec_window_row_f32")
exec_window_row_i8 = _make_exec_window_row(False, True, "exec_window_row_i8")

@_jit
def first_nonfinite(X):
    """Index of the first NaN or inf in X, or -1. One vectorized pass over the bits, two floats
    per uint64 word: (bits & 0x7F800000) + 0x00800000 sets bit 31 of a half exactly when its
    exponent is all ones (NaN or inf) and never carries out of the half, so OR-ing the words
    and testing both bit 31s finds any (about 2.5x the speed of a per-float compare, which
    Numba widens to int64); then a scan only when something was found."""
    n = X.size
    n2 = n // 2
    w = X[:2 * n2].view(np.uint64)
    acc = np.uint64(0)
    for k in range(n2):
        acc |= (w[k] & np.uint64(0x7F8000007F800000)) + np.uint64(0x0080000000800000)
    bad = (acc & np.uint64(0x8000000080000000)) != 0
    if n & 1:
        bad |= not np.isfinite(X[n - 1])
    if not bad:
        return -1
    for k in range(n):
        if not np.isfinite(X[k]):
            return k
    return -1


@_jit
def to_int64_inplace(Y, n):
    """Y (float32 view of an int64 array of >= n elements): int64[k] = float32 Y[k] for k < n,
    from the end, so each float is read before the int64 that covers its bytes is written."""
    L = Y.view(np.int64)
    for k in range(n - 1, -1, -1):
        L[k] = np.int64(Y[k])


@_jit
def _dense_post(h, f64, f32, Y, T):
    """Epilogue of the DENSE row at h[T[0]] once its output (Y[yo:] if the row writes Y, else
    its arena place) holds x @ W for m samples: y = act(y + b) in place, the bias added in
    float32 and the activation applied exactly as exec_row does."""
    r, yo, m, st = T[0], T[1], T[2], T[3]
    n_out = h[r + C_NOUT]
    bo = h[r + C_T1]
    act = h[r + C_ACT]
    fp = h[r + C_FP]
    dk = h[r + C_DST_KIND]
    dst = Y if dk == K_Y else f32
    do = _at(h, dk, h[r + C_DST], 0, yo, st)
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
def _i8_to_f32(h, i8, Y, T):
    """Y[:m * n_in] = float32 of the int8 input (raw codes, arena) of the QDENSE row at h[T[0]]."""
    r, m, st = T[0], T[1], T[2]
    n = m * h[r + C_NIN]
    so = _at(h, h[r + C_SRC_KIND], h[r + C_SRC], 0, 0, st)
    x = i8[so:so + n]
    for k in range(n):
        Y[k] = np.float32(x[k])


@_jit
def _qdense_post(h, f32, i32, i8, X, T):
    """Epilogue of the QDENSE row at h[T[0]]: X (m * n_out,) float32 holds sum_i x[i] * W[i, j]
    over raw int8 codes as exact integers; y = clamp(rint(float32(int32(acc) + folded bias) *
    M[j]) + y_zp, qmin, qmax) (kernels_tile.requant8's arithmetic), written to the row's output."""
    r, m, st = T[0], T[1], T[2]
    n_out = h[r + C_NOUT]
    do = _at(h, h[r + C_DST_KIND], h[r + C_DST], 0, 0, st)
    y_zp = h[r + C_I0]
    qmin = h[r + C_I1]
    qmax = h[r + C_I2]
    bias = i32[h[r + C_T1]:h[r + C_T1] + n_out]
    mult = f32[h[r + C_T2]:h[r + C_T2] + n_out]
    for s in range(m):
        x = X[s * n_out:(s + 1) * n_out]
        y = i8[do + s * n_out:do + (s + 1) * n_out]
        for j in range(n_out):
            v = np.int32(np.int32(x[j]) + bias[j])
            q = np.int64(np.rint(np.float32(v) * mult[j])) + y_zp
            y[j] = np.int8(min(max(q, qmin), qmax))


@_jit
def _overlap(X, Y):
    """True when the memory of X and Y overlaps."""
    x0 = X.ctypes.data
    y0 = Y.ctypes.data
    return x0 < y0 + 4 * Y.size and y0 < x0 + 4 * X.size


def _make_execute(graph, fwin, qwin, batch, name):
    """The entry point of one interpreter variant: ``graph`` False leaves out the graph rows
    (GRAPH_OPS), ``fwin`` False the float32 conv/pool rows (F_WINDOW_OPS), ``qwin`` False the
    int8 ones (Q_WINDOW_OPS), ``batch`` False the batch
    path's steps (MODE_SEGMENT's GEMM rows, MODE_DENSE_POST, MODE_I8_TO_F32, MODE_QDENSE_POST:
    they return -6), so neither they nor their kernels are compiled. The flags are closure
    constants: Numba prunes the branches they guard before typing, and its on-disk cache keys
    the compiled code on the closure's contents (and on ``name``, its cache file)."""
    win = fwin or qwin

    def execute(blob, X, Y, n, mode):
        """The entry point: see the module docstring for the modes.

        Every running mode goes through one loop (groups of m samples, rows k0..k1) with one call
        of exec_row: the interpreter is compiled, optimized and linked once, not once per mode."""
        h = blob.view(np.int64)
        f64 = blob.view(np.float64)
        f32 = blob.view(np.float32)
        i32 = blob.view(np.int32)
        i8 = blob.view(np.int8)
        n_in = h[H_IN_SIZE]
        n_out = h[H_OUT_SIZE]
        n_ops = h[H_N_OPS]
        conv = (mode & I64) != 0
        mode = mode & (I64 - 1)
        if mode == MODE_NONFINITE:
            return first_nonfinite(X)
        T = h[0:0]  # the mode's int64 parameters or times (see the module docstring)
        if batch:
            if mode == MODE_SEGMENT:
                T = h[h[H_SEG]:h[H_SEG] + S_LEN]
            elif mode >= MODE_DENSE_POST and mode <= MODE_QDENSE_POST:
                T = h[h[H_POST]:h[H_POST] + POST_LEN]
            if mode == MODE_DENSE_POST:
                _dense_post(h, f64, f32, Y, T)
                return -1
            if mode == MODE_I8_TO_F32:
                _i8_to_f32(h, i8, Y, T)
                return -1
            if mode == MODE_QDENSE_POST:
                _qdense_post(h, f32, i32, i8, X, T)
                return -1
        elif mode >= MODE_SEGMENT and mode <= MODE_QDENSE_POST:
            return -6  # a batch-path step: only the batch variants run them
        if mode == MODE_I64:
            if Y.size < 2 * n:
                return -3
            to_int64_inplace(Y, n)
            return -1

        # the running modes: groups of `group` samples (arena stride st), rows k0 .. k1 - 1
        bad = np.int64(-1)
        p = h[H_PROG]
        nc = h[H_NCOLS]
        k0 = np.int64(0)
        k1 = n_ops
        group = np.int64(1)
        xo0 = np.int64(0)
        yo0 = np.int64(0)
        use_tab = False
        # the batch path's tables (MODE_SEGMENT); empty views otherwise, so every name has one type
        tab = h[0:0]
        fpack = f32[0:0]
        ipack = i8[0:0]
        bpack = i32[0:0]
        A = blob[0:0]
        C = i32[0:0]
        tile = f32[0:0]
        if mode == MODE_ONE:
            # sizes, and contiguity from the strides (predict_one's fast path leaves that check
            # of a flat x and out to this call: the unboxed arrays keep their real strides)
            if X.size != n_in or (n_in > 1 and X.strides[0] != 4):
                return -2
            if Y.size != (2 * n_out if conv else n_out) or (Y.size > 1 and Y.strides[0] != 4):
                return -3
            if _overlap(X, Y):
                return -4
            bad = first_nonfinite(X)
            n = 1
        elif batch and mode == MODE_SEGMENT:
            p, k0, k1 = T[S_P], T[S_K0], T[S_K1]
            xo0, yo0, n, group = T[S_XO], T[S_YO], T[S_M], T[S_ST]
            use_tab = True
            tab = h[T[S_TAB]:T[S_TAB] + 5 * n_ops]
            fpack = f32[T[S_FPACK]:]
            ipack = i8[T[S_IPACK]:]
            bpack = i32[T[S_BPACK]:]
            A = blob[T[S_A]:T[S_A] + T[S_A + 1]]
            C = i32[T[S_C]:T[S_C] + T[S_C + 1]]
            tile = f32[T[S_TILE]:T[S_TILE] + T[S_TILE + 1]]
        else:
            if X.size < n * n_in:
                return -2
            if Y.size < (2 if conv else 1) * n * n_out:
                return -3
            if mode == MODE_TIMED or mode == MODE_PER_OP:
                a = times_at(n * n_out * (2 if conv else 1))
                cnt = n if mode == MODE_TIMED else n * n_ops
                if Y.size < a + 2 * cnt:
                    return -5
                T = Y[a:a + 2 * cnt].view(np.int64)
            if mode == MODE_BATCH:
                group = h[H_BLOCK]
        timed = mode == MODE_TIMED
        per_op = mode == MODE_PER_OP
        st = group
        s = np.int64(0)
        while s < n:
            m = min(group, n - s)
            xo = xo0 + s * n_in
            yo = yo0 + s * n_out
            t0 = now_ns(h) if timed else np.int64(0)
            for k in range(k0, k1):
                r = p + k * nc
                kind = tab[5 * k] if use_tab else B_EXEC
                t1 = now_ns(h) if per_op else np.int64(0)
                if batch and kind == B_DENSE_TILED:
                    n_i = h[r + C_NIN]
                    n_o = h[r + C_NOUT]
                    act = h[r + C_ACT]
                    sk = h[r + C_SRC_KIND]
                    dk = h[r + C_DST_KIND]
                    so = _at(h, sk, h[r + C_SRC], xo, yo, st)
                    do = _at(h, dk, h[r + C_DST], xo, yo, st)
                    src = X if sk == K_X else (Y if sk == K_Y else f32)
                    dst = Y if dk == K_Y else f32
                    G.dense_f32_tiled(src, so, fpack, tab[5 * k + 1], n_i, n_o, tab[5 * k + 3], f32, h[r + C_T1], dst, do,
                                      m, act == K.A_RELU, tile)
                    if act != K.A_IDENTITY and act != K.A_RELU:
                        fp = h[r + C_FP]
                        K.act_f32(dst, do, dst, do, m * n_o, act, f64[fp], f64[fp + 1])
                elif batch and kind == B_QDENSE_U8:
                    n_i = h[r + C_NIN]
                    n_o = h[r + C_NOUT]
                    nq = tab[5 * k + 2]
                    mo = h[r + C_T2]
                    so = _at(h, h[r + C_SRC_KIND], h[r + C_SRC], xo, yo, st)
                    do = _at(h, h[r + C_DST_KIND], h[r + C_DST], xo, yo, st)
                    G.qdense_u8s8(i8, so, do, n_i, n_o, m, A, 4 * nq, ipack[tab[5 * k + 1]:], nq, tab[5 * k + 3],
                                  C, G.TILE_J * tab[5 * k + 3], bpack[tab[5 * k + 4]:], f32[mo:mo + n_o], h[r + C_I0],
                                  h[r + C_I1], h[r + C_I2])
                elif batch and kind == B_DEQUANTIZE:
                    dk = h[r + C_DST_KIND]
                    dst = Y if dk == K_Y else f32
                    do = _at(h, dk, h[r + C_DST], xo, yo, st)
                    so = _at(h, h[r + C_SRC_KIND], h[r + C_SRC], xo, yo, st)
                    G.dequantize_i8_f32(i8, so, dst, do, m * h[r + C_NIN], f64[h[r + C_FP] + 2], h[r + C_I0])
                elif win and h[r + C_OP] >= O_CONV and h[r + C_OP] <= O_QAVGPOOL:  # WINDOW_OPS
                    if fwin and qwin:
                        exec_window_row(h, f64, f32, i32, i8, r, X, xo, Y, yo, m, st)
                    elif fwin:
                        exec_window_row_f32(h, f64, f32, i32, i8, r, X, xo, Y, yo, m, st)
                    else:
                        exec_window_row_i8(h, f64, f32, i32, i8, r, X, xo, Y, yo, m, st)
                elif graph:
                    exec_row(h, f64, f32, i32, i8, r, X, xo, Y, yo, m, st)
                else:
                    exec_row_dense(h, f64, f32, i32, i8, r, X, xo, Y, yo, m, st)
                if per_op:
                    T[s * n_ops + k] = now_ns(h) - t1
            if timed:
                T[s] = now_ns(h) - t0
            s += m
        if mode == MODE_ONE:
            if conv:
                to_int64_inplace(Y, n_out)
            return bad
        if conv and mode != MODE_SEGMENT:
            to_int64_inplace(Y, n * n_out)
        return -1

    execute.__name__ = execute.__qualname__ = name
    return _jit(execute)


# The interpreter variants (VARIANTS), each compiled (or loaded from the on-disk cache) only when
# a model needs it, so a model's first run compiles only the kernels of its op family:
#   "dense"  DENSE, ACT, AFFINE, SOFTMAX, LOG_SOFTMAX, ARGMAX, QUANTIZE, DEQUANTIZE, QDENSE, QLUT
#            (MLP chains, fp32 and int8)
#   "core"   + GRAPH_OPS (residual and ONNX graphs without windows)
#   "conv_chain", "qconv_chain"
#            "dense" + F_WINDOW_OPS / Q_WINDOW_OPS (float32 / int8 conv/pool: CNN chains, LeNet-5,
#            the DS-CNN; leaving the graph rows out took about a fifth off their first compile:
#            fp32 37.7 / 38.4 -> 32.1 / 29.1 s, int8 58.1 / 54.0 -> 46.1 / 45.3 s on a Zen 3,
#            bench/bench_startup.py --only-kinds)
#   "conv"   "core" + F_WINDOW_OPS (float32 CNNs with graph ops: residual nets)
#   "qconv"  "core" + Q_WINDOW_OPS (int8 CNNs with graph ops)
#   "full"   + WINDOW_OPS (both), every op
#   "dense_batch", "core_batch": "dense" / "core" with the batch path's steps (rtinfer.batch,
#            whose AUTO_OPS has no conv/pool), compiled on a model's first batch predict
DENSE_OPS = frozenset(int(op) for op in (Op.DENSE, Op.ACT, Op.AFFINE, Op.SOFTMAX, Op.LOG_SOFTMAX, Op.ARGMAX,
                                         Op.RESHAPE, Op.QUANTIZE, Op.DEQUANTIZE, Op.QDENSE, Op.QLUT))
GRAPH_OPS = frozenset(int(op) for op in (Op.BINARY, Op.QBINARY, Op.CONCAT, Op.QCONCAT, Op.SLICE, Op.QSLICE,
                                         Op.GATHER, Op.QGATHER, Op.LAYERNORM, Op.CONST, Op.MATMUL,
                                         Op.DYNQUANT))
WINDOW_OPS = frozenset(int(op) for op in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL, Op.GLOBAL_AVGPOOL, Op.QCONV,
                                          Op.QMAXPOOL, Op.QAVGPOOL))
assert WINDOW_OPS == frozenset(range(O_CONV, O_QAVGPOOL + 1))  # execute tests the code range
F_WINDOW_OPS = frozenset(int(op) for op in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL, Op.GLOBAL_AVGPOOL))
Q_WINDOW_OPS = WINDOW_OPS - F_WINDOW_OPS

execute_dense = _make_execute(False, False, False, False, "execute_dense")
execute_core = _make_execute(True, False, False, False, "execute_core")
execute_conv_chain = _make_execute(False, True, False, False, "execute_conv_chain")
execute_qconv_chain = _make_execute(False, False, True, False, "execute_qconv_chain")
execute_conv = _make_execute(True, True, False, False, "execute_conv")
execute_qconv = _make_execute(True, False, True, False, "execute_qconv")
execute_full = _make_execute(True, True, True, False, "execute_full")
execute_dense_batch = _make_execute(False, False, False, True, "execute_dense_batch")
execute_core_batch = _make_execute(True, False, False, True, "execute_core_batch")
execute = execute_full
VARIANTS = {"dense": execute_dense, "core": execute_core, "conv_chain": execute_conv_chain,
            "qconv_chain": execute_qconv_chain, "conv": execute_conv, "qconv": execute_qconv,
            "full": execute_full, "dense_batch": execute_dense_batch, "core_batch": execute_core_batch}


def variant_for(ops) -> str:
    """The smallest interpreter variant (a key of VARIANTS) that runs a program with these op
    codes."""
    codes = {int(op) for op in ops}
    unknown = codes - DENSE_OPS - GRAPH_OPS - WINDOW_OPS
    if unknown:
        raise ValueError(f"op code {min(unknown)} is in no interpreter family (interp.DENSE_OPS, GRAPH_OPS, "
                         "WINDOW_OPS)")
    if codes & F_WINDOW_OPS and codes & Q_WINDOW_OPS:
        return "full"
    if codes & F_WINDOW_OPS:
        return "conv" if codes & GRAPH_OPS else "conv_chain"
    if codes & Q_WINDOW_OPS:
        return "qconv" if codes & GRAPH_OPS else "qconv_chain"
    if codes & GRAPH_OPS:
        return "core"
    return "dense"


def entry_point(dispatcher):
    """The compiled entry point of a dispatcher's one signature: skips argument type dispatch
    (callers guarantee the types), about half the cost of a dispatcher call."""
    sigs = dispatcher.signatures
    if len(sigs) == 1:
        ep = getattr(dispatcher.overloads[sigs[0]], "entry_point", None)
        if ep is not None:
            return ep
    return dispatcher


_WARM = set()  # the variants warmed up in this process


def warm_up(variant: str = "full"):
    """Compile (or load from the cache) a variant's entry point (a key of VARIANTS, see
    variant_for) with its one signature and return its dispatcher; afterwards a call with other
    argument types raises TypeError (the runtime's boundary explains why) instead of compiling
    a new specialization."""
    execute = VARIANTS[variant]
    if variant in _WARM:
        return execute
    from .compile_notice import compile_notice
    blob = np.zeros(256, dtype=np.uint8)  # a header with n_ops = 0: runs nothing
    y = np.zeros(1, dtype=np.float32)
    x = y.view()
    x.flags.writeable = False  # X compiles read-only: no path may write it (Numba refuses to)
    with compile_notice(stream=False):  # a first compile is logged ("rtinfer" logger, INFO)
        execute(blob, x, y, 0, MODE_BATCH)
    execute.disable_compile()
    # A writable X matches the read-only signature by Numba's safe mutable -> read-only
    # conversion, registered here (a compile-disabled dispatcher does not search for it), so a
    # direct dispatcher call takes a writable or a read-only X; a read-only Y has no such
    # conversion and is refused. (The Runtime calls entry_point(): its own checks are cheaper.)
    execute.typingctx.install_possible_conversions([typeof(y)], [typeof(x)])
    # A call whose argument types differ from the one signature is refused at once: Numba's own
    # refusal types every argument twice to search conversions and word an explanation (about
    # 150 us a call); the runtime's checked path then explains the input in its own words.
    execute._search_new_conversions = _no_conversions
    execute._explain_matching_error = _refuse_types
    _WARM.add(variant)
    return execute


def _no_conversions(*args, **kws):
    return False


def _refuse_types(*args, **kws):
    raise TypeError("rtinfer.interp.execute: the arguments do not match its compiled signature "
                    "(uint8 blob, 1-D C-contiguous float32 X (read-only or not) and writable Y, int, int)")


# the names the runtime used before one entry point served everything
warm_up_one = warm_up_many = warm_up_batch = warm_up
