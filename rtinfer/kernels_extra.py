"""Compiled kernels of GATHER / QGATHER, LAYERNORM, CONST and DYNQUANT (rtinfer.ops), with their
NumPy twins in rtinfer.reference (gather, layernorm, run_layer's CONST, dynquant).

GATHER is one index table per layer: every data-movement op an importer meets on a fixed-shape
tensor (Transpose, Pad constant/reflect/edge, Resize/Upsample nearest, Gather with constant
indices, DepthToSpace, Tile, the im2col of 3-D windows and of ConvTranspose) is a table of
source offsets computed once at import, so the runtime needs one small loop for all of them.

Kernels take flat arrays plus element offsets, run m samples (sample s of an operand of n
elements per sample starts at offset + s * n) and write into their output; no checks, no
allocation (compiled without NRT).
"""

from __future__ import annotations

import math

import numpy as np

from .jitcache import kernel_jit


@kernel_jit
def gather(src, so, dst, do, idx, io, n_in, n_out, m, fill):
    """dst[k] = src[idx[io + k]] (or fill where the index is negative), k < n_out, per sample;
    float32 or int8 (fill of the arrays' dtype)."""
    t = idx[io:io + n_out]
    for s in range(m):
        x = src[so + s * n_in:so + (s + 1) * n_in]
        z = dst[do + s * n_out:do + (s + 1) * n_out]
        for k in range(n_out):
            j = t[k]
            z[k] = x[j] if j >= 0 else fill


@kernel_jit(error_model="numpy")  # epsilon 0 on a constant row: inf, not ZeroDivisionError
def layernorm_f32(src, so, dst, do, w, wo, bo, outer, n, m, eps):
    """LAYERNORM: per row of n elements, mean and variance in float64, v = float32((x - mean) /
    sqrt(var + eps)), y = v * scale + bias in float32 (scale at w[wo:], bias at w[bo:])."""
    scale = w[wo:wo + n]
    bias = w[bo:bo + n]
    for r in range(m * outer):
        x = src[so + r * n:so + (r + 1) * n]
        z = dst[do + r * n:do + (r + 1) * n]
        acc = 0.0
        for k in range(n):
            acc += np.float64(x[k])
        mean = acc / n
        var = 0.0
        for k in range(n):
            d = np.float64(x[k]) - mean
            var += d * d
        inv = 1.0 / math.sqrt(var / n + eps)
        for k in range(n):
            v = np.float32((np.float64(x[k]) - mean) * inv)
            z[k] = v * scale[k] + bias[k]


@kernel_jit
def const_f32(w, wo, dst, do, n, m):
    """CONST: dst[do + s * n + k] = w[wo + k] for k < n, per sample s < m (the stored tensor)."""
    v = w[wo:wo + n]
    for s in range(m):
        z = dst[do + s * n:do + (s + 1) * n]
        for k in range(n):
            z[k] = v[k]


@kernel_jit
def dynquant_f32(src, so, dst, do, n, m, mode):
    """DYNQUANT: per sample of n elements, ONNX DynamicQuantizeLinear's range, scale and zero
    point in float32 (rtinfer.ops); mode 0 writes q = the codes minus the zero point (n floats),
    mode 1 the scale (one float). NaN elements are skipped by the range (a comparison with NaN
    is false) and give q = -zp. The range runs in four independent lanes and the codes without
    branches (selects), so neither loop waits on the previous element."""
    for s in range(m):
        x = src[so + s * n:so + (s + 1) * n]
        h0 = h1 = h2 = h3 = np.float32(0.0)
        l0 = l1 = l2 = l3 = np.float32(0.0)
        n4 = n - n % 4
        for k in range(0, n4, 4):
            a = x[k]
            h0 = a if a > h0 else h0
            l0 = a if a < l0 else l0
            a = x[k + 1]
            h1 = a if a > h1 else h1
            l1 = a if a < l1 else l1
            a = x[k + 2]
            h2 = a if a > h2 else h2
            l2 = a if a < l2 else l2
            a = x[k + 3]
            h3 = a if a > h3 else h3
            l3 = a if a < l3 else l3
        for k in range(n4, n):
            a = x[k]
            h0 = a if a > h0 else h0
            l0 = a if a < l0 else l0
        h0 = h1 if h1 > h0 else h0
        h2 = h3 if h3 > h2 else h2
        hi = h2 if h2 > h0 else h0
        l0 = l1 if l1 < l0 else l0
        l2 = l3 if l3 < l2 else l2
        lo = l2 if l2 < l0 else l0
        scale = (hi - lo) / np.float32(255.0)
        if scale == 0.0:  # all zeros (onnxruntime's scale 1), or a range that underflows
            scale = np.float32(1.0)
        if mode == 1:
            dst[do + s] = scale
            continue
        v = -lo / scale
        if not v < 255.0:  # NaN (infinite inputs) -> 255, as onnxruntime
            v = np.float32(255.0)
        if not v > 0.0:
            v = np.float32(0.0)
        zp = np.float32(np.rint(v))
        qlo = -zp
        qhi = np.float32(255.0) - zp
        z = dst[do + s * n:do + (s + 1) * n]
        for k in range(n):
            q = x[k] / scale
            q = q if q >= qlo else qlo  # below the range, or NaN
            q = q if q <= qhi else qhi
            z[k] = np.rint(q)
