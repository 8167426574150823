"""Compiled convolution and pooling kernels (``@njit(cache=True, _nrt=False)``) and their NumPy twins.

Calling convention as rtinfer.kernels: flat 1-D C-contiguous arrays with element offsets
(``src, so`` reads ``src[so:]``, ``dst, do`` writes ``dst[do:]``), ``m`` samples back to back,
ints and floats as scalars. Kernels write into ``dst`` only, allocate nothing, check nothing.
The window geometry travels as an int32 table ``g[go:go + G_LEN]`` (see ``pack_geometry``) so a
program row needs one offset for it. Samples are channels-first (C, H, W); 1-D is H = 1.

Numerics (contracts in rtinfer.ops, golden semantics in rtinfer.reference_conv):
- ``conv_f32``: each output starts at its bias and accumulates W * x in float32 in the fixed
  order (c, p, q), so a batch is bit-identical to one sample at a time; versus the float64
  golden it differs in the last bits (tested within 1e-5 relative to the summed magnitudes).
  The loops run over output positions innermost (contiguous for stride 1: vectorized).
- ``avgpool_f32`` / ``global_avgpool_f32``: float32 sums in window order, as the contract.
- ``maxpool`` is exact for float32 and int8 (one function, compiled per dtype).
- ``qconv_i8`` / ``qavgpool_i8``: int32 accumulation of (x - x_zp) over input elements (padding
  adds nothing), requantization as QDENSE (``rtinfer.kernels._requant``): bit-exact.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernels import _requant

# Geometry table slots (int32).
G_C = 0        # input channels
G_H = 1
G_W = 2
G_O = 3        # output channels (pools: C)
G_KH = 4
G_KW = 5
G_SH = 6
G_SW = 7
G_DH = 8
G_DW = 9
G_PT = 10      # pad top
G_PL = 11      # pad left
G_OH = 12
G_OW = 13
G_GROUP = 14
G_INCLUDE_PAD = 15  # average pools: count_include_pad
G_LEN = 16


def pack_geometry(c, h, w, o, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, group=1, include_pad=0) -> np.ndarray:
    """The int32 geometry table of one window op (see the G_* slots)."""
    return np.array([c, h, w, o, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, group, include_pad], dtype=np.int32)


@njit(cache=True, _nrt=False, inline="always")
def _first_valid(pad, k_off, stride):
    """Smallest output index i with i * stride + k_off - pad >= 0."""
    d = pad - k_off
    if d <= 0:
        return 0
    return (d + stride - 1) // stride


@njit(cache=True, _nrt=False, inline="always")
def _end_valid(n, pad, k_off, stride, n_out):
    """One past the largest output index i (< n_out) with i * stride + k_off - pad < n."""
    d = n - 1 + pad - k_off
    if d < 0:
        return 0
    e = d // stride + 1
    return e if e < n_out else n_out


@njit(cache=True, _nrt=False)
def conv_f32(src, so, W, wo, b, bo, dst, do, g, go, m):
    """CONV without activation for m samples: x (C, H, W) at src[so:] -> y (O, oh, ow) at dst[do:].
    W (O, C/group, kh, kw) float32 at W[wo:], b (O,) at b[bo:]."""
    c_in = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    o_n = g[go + G_O]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    sh = g[go + G_SH]
    sw = g[go + G_SW]
    dh = g[go + G_DH]
    dw = g[go + G_DW]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    group = g[go + G_GROUP]
    cg = c_in // group
    og = o_n // group
    n_in = c_in * h * w
    n_out = o_n * oh * ow
    for s in range(m):
        xs = so + s * n_in
        ys = do + s * n_out
        for o in range(o_n):
            yo = ys + o * oh * ow
            bias = b[bo + o]
            for k in range(oh * ow):
                dst[yo + k] = bias
            c0 = (o // og) * cg
            for c in range(cg):
                xc = xs + (c0 + c) * h * w
                for p in range(kh):
                    i0 = _first_valid(pt, p * dh, sh)
                    i1 = _end_valid(h, pt, p * dh, sh, oh)
                    for q in range(kw):
                        wv = W[wo + ((o * cg + c) * kh + p) * kw + q]
                        j0 = _first_valid(pl, q * dw, sw)
                        j1 = _end_valid(w, pl, q * dw, sw, ow)
                        for i in range(i0, i1):
                            xr = xc + (i * sh + p * dh - pt) * w + q * dw - pl
                            yr = yo + i * ow
                            if sw == 1:
                                for j in range(j0, j1):
                                    dst[yr + j] += wv * src[xr + j]
                            else:
                                for j in range(j0, j1):
                                    dst[yr + j] += wv * src[xr + j * sw]


@njit(cache=True, _nrt=False)
def qconv_i8(src, so, W, wo, bias, bo, M, mo, dst, do, g, go, m, x_zp, y_zp, qmin, qmax):
    """QCONV for m samples: x int8 (C, H, W) at src[so:] -> y int8 (O, oh, ow) at dst[do:].
    W (O, C/group, kh, kw) int8 at W[wo:], bias (O,) int32 at bias[bo:], M (O,) float32
    requantization multipliers at M[mo:]. acc = bias + sum over input elements (x - x_zp) * W."""
    c_in = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    o_n = g[go + G_O]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    sh = g[go + G_SH]
    sw = g[go + G_SW]
    dh = g[go + G_DH]
    dw = g[go + G_DW]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    group = g[go + G_GROUP]
    cg = c_in // group
    og = o_n // group
    n_in = c_in * h * w
    n_out = o_n * oh * ow
    zp = np.int32(x_zp)
    for s in range(m):
        xs = so + s * n_in
        ys = do + s * n_out
        for o in range(o_n):
            c0 = (o // og) * cg
            mult = M[mo + o]
            for i in range(oh):
                # valid kernel rows p: 0 <= i*sh + p*dh - pt < h
                for j in range(ow):
                    acc = np.int32(bias[bo + o])
                    for c in range(cg):
                        xc = xs + (c0 + c) * h * w
                        wc = wo + (o * cg + c) * kh * kw
                        for p in range(kh):
                            r = i * sh + p * dh - pt
                            if r < 0 or r >= h:
                                continue
                            xr = xc + r * w
                            wr = wc + p * kw
                            col0 = j * sw - pl
                            for q in range(kw):
                                col = col0 + q * dw
                                if col >= 0 and col < w:
                                    acc = np.int32(acc + (np.int32(src[xr + col]) - zp) * np.int32(W[wr + q]))
                    dst[ys + (o * oh + i) * ow + j] = _requant(acc, mult, y_zp, qmin, qmax)


@njit(cache=True, _nrt=False)
def maxpool(src, so, dst, do, g, go, m):
    """MAXPOOL / QMAXPOOL for m samples (float32 or int8, dst of the same dtype): the max over
    the window's input elements (padding ignored; every window holds one)."""
    c_n = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    sh = g[go + G_SH]
    sw = g[go + G_SW]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    n_in = c_n * h * w
    n_out = c_n * oh * ow
    for s in range(m):
        for c in range(c_n):
            xc = so + s * n_in + c * h * w
            yc = do + s * n_out + c * oh * ow
            for i in range(oh):
                r0 = max(i * sh - pt, 0)
                r1 = min(i * sh - pt + kh, h)
                for j in range(ow):
                    q0 = max(j * sw - pl, 0)
                    q1 = min(j * sw - pl + kw, w)
                    best = src[xc + r0 * w + q0]
                    for r in range(r0, r1):
                        for col in range(q0, q1):
                            v = src[xc + r * w + col]
                            if v > best:
                                best = v
                    dst[yc + i * ow + j] = best


@njit(cache=True, _nrt=False)
def avgpool_f32(src, so, dst, do, g, go, m):
    """AVGPOOL for m samples: float32 sum over the window's input elements in window order,
    divided by float32(count) (kh * kw with count_include_pad, else the input elements)."""
    c_n = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    sh = g[go + G_SH]
    sw = g[go + G_SW]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    include_pad = g[go + G_INCLUDE_PAD]
    n_in = c_n * h * w
    n_out = c_n * oh * ow
    for s in range(m):
        for c in range(c_n):
            xc = so + s * n_in + c * h * w
            yc = do + s * n_out + c * oh * ow
            for i in range(oh):
                r0 = max(i * sh - pt, 0)
                r1 = min(i * sh - pt + kh, h)
                for j in range(ow):
                    q0 = max(j * sw - pl, 0)
                    q1 = min(j * sw - pl + kw, w)
                    acc = np.float32(0.0)
                    for r in range(r0, r1):
                        for col in range(q0, q1):
                            acc += src[xc + r * w + col]
                    count = kh * kw if include_pad != 0 else (r1 - r0) * (q1 - q0)
                    dst[yc + i * ow + j] = acc / np.float32(count)


@njit(cache=True, _nrt=False)
def qavgpool_i8(src, so, dst, do, g, go, m, x_zp, y_zp, mult):
    """QAVGPOOL for m samples: acc = sum of (x - x_zp) over the window's input elements (int32);
    y = clamp(rint((float32(acc) * mult) / float32(count)) + y_zp, -128, 127)."""
    c_n = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    sh = g[go + G_SH]
    sw = g[go + G_SW]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    include_pad = g[go + G_INCLUDE_PAD]
    n_in = c_n * h * w
    n_out = c_n * oh * ow
    m32 = np.float32(mult)
    zp = np.int32(x_zp)
    for s in range(m):
        for c in range(c_n):
            xc = so + s * n_in + c * h * w
            yc = do + s * n_out + c * oh * ow
            for i in range(oh):
                r0 = max(i * sh - pt, 0)
                r1 = min(i * sh - pt + kh, h)
                for j in range(ow):
                    q0 = max(j * sw - pl, 0)
                    q1 = min(j * sw - pl + kw, w)
                    acc = np.int32(0)
                    for r in range(r0, r1):
                        for col in range(q0, q1):
                            acc += np.int32(src[xc + r * w + col]) - zp
                    count = kh * kw if include_pad != 0 else (r1 - r0) * (q1 - q0)
                    v = np.int64(np.rint((np.float32(acc) * m32) / np.float32(count))) + y_zp
                    if v < -128:
                        v = -128
                    elif v > 127:
                        v = 127
                    dst[yc + i * ow + j] = np.int8(v)


@njit(cache=True, _nrt=False)
def global_avgpool_f32(src, so, dst, do, c_n, hw, m):
    """GLOBAL_AVGPOOL for m samples: x (C, hw) -> y (C,), float32 sum in order / float32(hw)."""
    inv = np.float32(hw)
    for s in range(m):
        for c in range(c_n):
            x0 = so + s * c_n * hw + c * hw
            acc = np.float32(0.0)
            for k in range(hw):
                acc += src[x0 + k]
            dst[do + s * c_n + c] = acc / inv


# ------------------------------------------------------------------------------ NumPy twins
def _geometry(g, go):
    from .reference_conv import Geometry
    t = [int(v) for v in g[go:go + G_LEN]]
    # the bottom/right pads the windows reach (the table does not need them)
    pb = max(0, (t[G_OH] - 1) * t[G_SH] + (t[G_KH] - 1) * t[G_DH] + 1 - t[G_H] - t[G_PT])
    pr = max(0, (t[G_OW] - 1) * t[G_SW] + (t[G_KW] - 1) * t[G_DW] + 1 - t[G_W] - t[G_PL])
    geo = Geometry(t[G_C], t[G_H], t[G_W], t[G_KH], t[G_KW], t[G_SH], t[G_SW], t[G_DH], t[G_DW],
                   t[G_PT], t[G_PL], pb, pr, t[G_OH], t[G_OW])
    return geo, t


def conv_f32_ref(src, so, W, wo, b, bo, dst, do, g, go, m):
    from .reference_conv import conv_sum, windows
    geo, t = _geometry(g, go)
    o, cg = t[G_O], t[G_C] // t[G_GROUP]
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1)
    Wt = W[wo:wo + o * cg * geo.kh * geo.kw].reshape(o, cg, geo.kh, geo.kw)
    y = conv_sum(windows(x.astype(np.float64), geo, 0.0), Wt.astype(np.float64), geo, t[G_GROUP])
    y = y + b[bo:bo + o].astype(np.float64)[None, :, None]
    dst[do:do + y.size] = y.astype(np.float32).reshape(-1)


def qconv_i8_ref(src, so, W, wo, bias, bo, M, mo, dst, do, g, go, m, x_zp, y_zp, qmin, qmax):
    from . import quant
    from .reference_conv import conv_sum, windows
    geo, t = _geometry(g, go)
    o, cg = t[G_O], t[G_C] // t[G_GROUP]
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1).astype(np.int64) - int(x_zp)
    Wt = W[wo:wo + o * cg * geo.kh * geo.kw].reshape(o, cg, geo.kh, geo.kw).astype(np.int64)
    acc = conv_sum(windows(x, geo, 0), Wt, geo, t[G_GROUP]) + bias[bo:bo + o].astype(np.int64)[None, :, None]
    y = quant.requantize(acc.astype(np.int32), M[mo:mo + o][None, :, None], int(y_zp), int(qmin), int(qmax))
    dst[do:do + y.size] = y.reshape(-1)


def maxpool_ref(src, so, dst, do, g, go, m):
    from .reference_conv import maxpool as golden
    geo, _ = _geometry(g, go)
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1)
    y = golden(x, geo)
    dst[do:do + y.size] = y.reshape(-1)


def avgpool_f32_ref(src, so, dst, do, g, go, m):
    from .reference_conv import avgpool
    geo, t = _geometry(g, go)
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1)
    y = avgpool(x, geo, bool(t[G_INCLUDE_PAD]))
    dst[do:do + y.size] = y.reshape(-1)


def qavgpool_i8_ref(src, so, dst, do, g, go, m, x_zp, y_zp, mult):
    from . import quant
    from .reference_conv import pool_counts, windows
    geo, t = _geometry(g, go)
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1).astype(np.int64) - int(x_zp)
    acc = windows(x, geo, 0).sum(axis=(2, 3))
    count = pool_counts(geo, bool(t[G_INCLUDE_PAD]))
    q = np.rint((acc.astype(np.float32) * np.float32(mult)) / count.astype(np.float32)).astype(np.int64) + int(y_zp)
    y = np.clip(q, quant.QMIN, quant.QMAX).astype(np.int8)
    dst[do:do + y.size] = y.reshape(-1)


def global_avgpool_f32_ref(src, so, dst, do, c_n, hw, m):
    x = src[so:so + m * c_n * hw].reshape(m, c_n, hw)
    acc = np.zeros((m, c_n), dtype=np.float32)
    for k in range(hw):
        acc += x[:, :, k]
    dst[do:do + m * c_n] = (acc / np.float32(hw)).reshape(-1)


TWINS = {
    "conv_f32": conv_f32_ref,
    "qconv_i8": qconv_i8_ref,
    "maxpool": maxpool_ref,
    "avgpool_f32": avgpool_f32_ref,
    "qavgpool_i8": qavgpool_i8_ref,
    "global_avgpool_f32": global_avgpool_f32_ref,
}


def table_from_geometry(geo, out_channels: int, group: int = 1, include_pad: int = 0) -> np.ndarray:
    """The int32 geometry table of a rtinfer.reference_conv.Geometry (see pack_geometry)."""
    return pack_geometry(geo.c, geo.h, geo.w, out_channels, geo.kh, geo.kw, geo.sh, geo.sw, geo.dh, geo.dw,
                         geo.pt, geo.pl, geo.oh, geo.ow, group, include_pad)
