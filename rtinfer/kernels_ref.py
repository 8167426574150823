"""NumPy twins of the compiled kernels in rtinfer.kernels: same signatures, same outputs.

Each twin reads ``src[so:]`` and writes ``dst[do:]`` exactly as its kernel does, but computes
with NumPy and the formulas of rtinfer.reference / rtinfer.quant. tests/test_kernels.py
compares every kernel with its twin: float32 within 1e-5 relative, int8 bit-exact.
``TWINS`` maps each kernel name to its twin.
"""

from __future__ import annotations

import numpy as np

from . import quant, reference
from .ops import Act


def act_f32(src, so, dst, do, n, act, alpha, beta):
    dst[do:do + n] = reference.activation(src[so:so + n], Act(int(act)), alpha, beta)


def dense_f32(src, so, Wt, wo, b, bo, dst, do, n_in, n_out, m):
    x = src[so:so + m * n_in].reshape(m, n_in)
    w = Wt[wo:wo + n_out * n_in].reshape(n_out, n_in).T
    y = (x @ w).astype(np.float32) + b[bo:bo + n_out]
    dst[do:do + m * n_out] = y.reshape(-1)


def affine_f32(src, so, S, sof, T, to, dst, do, n, m):
    x = src[so:so + m * n].reshape(m, n)
    dst[do:do + m * n] = (x * S[sof:sof + n] + T[to:to + n]).reshape(-1)


def _axis_layer(outer, axis_len, inner):
    # a stand-in carrying the attrs reference.softmax/argmax read
    class _L:
        attrs = {"outer": outer, "axis_len": axis_len, "inner": inner}
        in_size = outer * axis_len * inner
    return _L


def softmax_f32(src, so, dst, do, outer, axis_len, inner, log):
    n = outer * axis_len * inner
    x = src[so:so + n].reshape(1, n)
    dst[do:do + n] = reference.softmax(x, _axis_layer(outer, axis_len, inner), log=bool(log)).reshape(-1)


def argmax_f32(src, so, dst, do, outer, axis_len, inner, last=0):
    n = outer * axis_len * inner
    x = src[so:so + n].reshape(1, n)
    layer = _axis_layer(outer, axis_len, inner)
    y = reference.argmax(x, layer, last=bool(last))
    dst[do:do + outer * inner] = y.reshape(-1)


def quantize_f32_i8(src, so, dst, do, n, scale, zp):
    dst[do:do + n] = quant.quantize(src[so:so + n], scale, int(zp))


def dequantize_i8_f32(src, so, dst, do, n, scale, zp):
    dst[do:do + n] = quant.dequantize(src[so:so + n], scale, int(zp))


def lut_i8(src, so, table, to, dst, do, n):
    dst[do:do + n] = table[to:to + 256][src[so:so + n].astype(np.int64) + 128]


def qdense_i8(src, so, Wt, wo, bias, bo, M, mo, dst, do, n_in, n_out, m, y_zp, qmin, qmax):
    x = src[so:so + m * n_in].reshape(m, n_in).astype(np.int64)
    wt = Wt[wo:wo + n_out * n_in].reshape(n_out, n_in).astype(np.int64)
    acc = x @ wt.T + bias[bo:bo + n_out].astype(np.int64)
    acc32 = acc.astype(np.int32)  # wraps like the kernel's int32 accumulator
    y = quant.requantize(acc32, M[mo:mo + n_out], int(y_zp), int(qmin), int(qmax))
    dst[do:do + m * n_out] = y.reshape(-1)


TWINS = {
    "act_f32": act_f32,
    "dense_f32": dense_f32,
    "affine_f32": affine_f32,
    "softmax_f32": softmax_f32,
    "argmax_f32": argmax_f32,
    "quantize_f32_i8": quantize_f32_i8,
    "dequantize_i8_f32": dequantize_i8_f32,
    "lut_i8": lut_i8,
    "qdense_i8": qdense_i8,
}
