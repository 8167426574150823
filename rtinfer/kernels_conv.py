"""Compiled convolution and pooling kernels (``@njit(cache=True, _nrt=False)``) and their NumPy twins.

Calling convention as rtinfer.kernels: flat 1-D C-contiguous arrays with element offsets
(``src, so`` reads ``src[so:]``, ``dst, do`` writes ``dst[do:]``), ``m`` samples back to back,
ints and floats as scalars. Kernels write into ``dst`` only, allocate nothing, check nothing.
The window geometry travels as an int32 table ``g[go:go + G_LEN]`` (see ``pack_geometry``) so a
program row needs one offset for it; ``qconv_i8`` also uses ``oh * ow`` int32 of scratch right
after its table (in the runtime's own copy of the plan image). Samples are channels-first (C, H, W); 1-D is H = 1.

Numerics (contracts in rtinfer.ops, golden semantics in rtinfer.reference_conv):
- ``conv_f32``: each output sums W * x in float32 in the fixed order (c, p, q), so a batch is
  bit-identical to one sample at a time; versus the float64 golden it differs in the last bits
  (tested within 1e-5 relative to the summed magnitudes). Group 1 (pointwise or im2col): one
  FMA chain from 0.0 per output in kernels_gemm's 6 x 16 register tile, then + bias. Grouped
  with < 4 outputs per group (depthwise): bias first, then the products; stride 1 with ow == w
  runs each tap as one masked contiguous run over the flat plane. Otherwise im2col rows with
  four output channels sharing each row load. Loops over output positions are innermost.
- ``avgpool_f32`` / ``global_avgpool_f32``: float32 sums in window order, as the contract.
- ``maxpool`` is exact for float32 and int8 (one function, compiled per dtype).
- ``qconv_i8`` / ``qavgpool_i8``: int32 accumulation of (x - x_zp) over input elements (padding
  adds nothing), requantization as QDENSE (``rtinfer.kernels._requant``): bit-exact.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernels_gemm import FT_S, TILE_J, _f32_tile_rows


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
G_XZP = 16     # int8 ops: input zero point
G_YZP = 17     # int8 ops: output zero point
G_QMIN = 18    # QCONV clamp
G_QMAX = 19
G_COLS = 20    # QCONV: offset of its int8 im2col scratch relative to its W (both in the i8 view)
G_LEN = 21


def pack_geometry(c, h, w, o, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, group=1, include_pad=0,
                  x_zp=0, y_zp=0, qmin=-128, qmax=127, cols=0) -> np.ndarray:
    """The int32 table of one window op (see the G_* slots): geometry, then int8 parameters
    that the interpreter passes on (kernels take them as arguments)."""
    return np.array([c, h, w, o, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, group, include_pad,
                     x_zp, y_zp, qmin, qmax, cols], dtype=np.int32)


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


@njit(cache=True, _nrt=False, inline="always")
def _requant_run(ar, mult, y_zp, qmin, qmax, yr, n):
    """yr[k] = clamp(rint(float32(ar[k]) * mult) + y_zp, qmin, qmax) for k < n: the QDENSE
    requantization (rtinfer.kernels._requant), branch-free so it vectorizes. Exact: below 2^24
    the float32 sum is an exact integer, and anything larger clamps the same either way."""
    z = np.float32(y_zp)
    lo = np.float32(qmin)
    hi = np.float32(qmax)
    for k in range(n):
        v = np.rint(np.float32(ar[k]) * mult) + z
        yr[k] = np.int8(min(max(v, lo), hi))


@njit(cache=True, _nrt=False, inline="always")
def _im2col(src, xs, c0, cg, g, go, cols, co, fill):
    """Window elements of channels c0..c0+cg of one sample (x at src[xs:]) into
    cols[co:] as (cg * kh * kw, oh * ow) rows; padding positions get ``fill``."""
    h = g[go + G_H]
    w = g[go + G_W]
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
    hw = h * w
    plane = oh * ow
    for c in range(cg):
        xv = src[xs + (c0 + c) * hw:xs + (c0 + c + 1) * hw]
        for p in range(kh):
            i0 = _first_valid(pt, p * dh, sh)
            i1 = _end_valid(h, pt, p * dh, sh, oh)
            for q in range(kw):
                base = co + ((c * kh + p) * kw + q) * plane
                row = cols[base:base + plane]
                j0 = _first_valid(pl, q * dw, sw)
                j1 = _end_valid(w, pl, q * dw, sw, ow)
                if i0 > 0 or i1 < oh or j0 > 0 or j1 < ow:
                    for k in range(plane):
                        row[k] = fill
                if i1 <= i0 or j1 <= j0:
                    continue
                col = q * dw - pl
                n = j1 - j0
                for i in range(i0, i1):
                    r = i * sh + p * dh - pt
                    seg = row[i * ow + j0:i * ow + j1]
                    if sw == 1:
                        xr = xv[r * w + j0 + col:r * w + j0 + col + n]
                        for k in range(n):
                            seg[k] = xr[k]
                    else:
                        xr = xv[r * w + j0 * sw + col:r * w + (j1 - 1) * sw + col + 1]
                        for k in range(n):
                            seg[k] = xr[k * sw]


@njit(cache=True, _nrt=False, inline="always")
def _pad_planes(src, xs, c0, cg, g, go, xp, xo, fill):
    """Channels c0..c0+cg of one sample (x at src[xs:]) as padded planes in xp[xo:], each
    (hp, wp) = (oh + (kh - 1) * dh, ow + (kw - 1) * dw) (stride 1), padding = ``fill``."""
    h = g[go + G_H]
    w = g[go + G_W]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    hp = g[go + G_OH] + (g[go + G_KH] - 1) * g[go + G_DH]
    wp = g[go + G_OW] + (g[go + G_KW] - 1) * g[go + G_DW]
    rows = min(h, hp - pt)
    cols = min(w, wp - pl)
    for c in range(cg):
        pv = xp[xo + c * hp * wp:xo + (c + 1) * hp * wp]
        for k in range(hp * wp):
            pv[k] = fill
        xv = src[xs + (c0 + c) * h * w:xs + (c0 + c + 1) * h * w]
        for r in range(rows):
            seg = pv[(r + pt) * wp + pl:(r + pt) * wp + pl + cols]
            xr = xv[r * w:r * w + cols]
            for k in range(cols):
                seg[k] = xr[k]


@njit(cache=True, _nrt=False, inline="always")
def _is_unit_stride(g, go):
    return g[go + G_SH] == 1 and g[go + G_SW] == 1


@njit(cache=True, _nrt=False, inline="always")
def _is_pointwise(g, go):
    """1x1 kernel, stride 1, no padding: the input planes are the im2col rows."""
    return (g[go + G_KH] == 1 and g[go + G_KW] == 1 and g[go + G_SH] == 1 and g[go + G_SW] == 1
            and g[go + G_PT] == 0 and g[go + G_PL] == 0 and g[go + G_OH] == g[go + G_H]
            and g[go + G_OW] == g[go + G_W])


@njit(cache=True, _nrt=False)
def _gemm_f32_tiled(src, xs, W, wo, b, bo, dst, ys, c_in, o_n, plane, cols, co):
    """One sample of a group-1 convolution as a register-tiled GEMM over its im2col rows:
    y (O, P) = W (O, C) . x (C, P) + b, P = plane, x at src[xs:] (the input planes of a
    pointwise convolution, else its im2col rows with C = C_in kh kw), y at dst[ys:], W at W[wo:].

    Scratch cols[co:] (gemm_scratch_f32): x packed in blocks of 16 positions, (nblk, C, 16)
    with zeros past P, then a (FT_S, 16) tile and 16 zeros (the micro-kernel's zero bias).
    Each output is one FMA chain over c = 0..C-1 from 0.0 (kernels_gemm's 6 x 16 tile), then
    + b[o] in float32: a fixed order per output, whatever the batch."""
    nblk = (plane + TILE_J - 1) // TILE_J
    to = co + nblk * c_in * TILE_J          # (FT_S, 16) tile
    zo = to + FT_S * TILE_J                 # 16 zeros
    for j in range(TILE_J):
        cols[zo + j] = np.float32(0.0)
    for pb in range(nblk):
        p0 = pb * TILE_J
        nj = min(TILE_J, plane - p0)
        for c in range(c_in):
            d = co + (pb * c_in + c) * TILE_J
            xr = src[xs + c * plane + p0:xs + c * plane + p0 + nj]
            for j in range(nj):
                cols[d + j] = xr[j]
            for j in range(nj, TILE_J):
                cols[d + j] = np.float32(0.0)
    for pb in range(nblk):
        p0 = pb * TILE_J
        nj = min(TILE_J, plane - p0)
        wb = co + pb * c_in * TILE_J
        o = 0
        while o < o_n:
            R = min(FT_S, o_n - o)
            _f32_tile_rows(R, W, wo + o * c_in, c_in, cols, wb, cols, to, TILE_J, cols, zo, False)
            for r in range(R):
                b0 = b[bo + o + r]
                yr = dst[ys + (o + r) * plane + p0:ys + (o + r) * plane + p0 + nj]
                tr = cols[to + r * TILE_J:to + r * TILE_J + nj]
                for j in range(nj):
                    yr[j] = tr[j] + b0
            o += R


def gemm_scratch_f32(c_in: int, plane: int) -> int:
    """float32 scratch elements of _gemm_f32_tiled: packed x, one tile, 16 zeros."""
    nblk = -(-plane // TILE_J)
    return nblk * c_in * TILE_J + (FT_S + 1) * TILE_J


@njit(cache=True, _nrt=False, inline="always")
def _is_flat(g, go):
    """Stride 1 with ow == w: every tap (p, q) reads one contiguous run of the unpadded input
    plane in the flattened (oh * ow) output order (columns a tap cannot reach are masked)."""
    return _is_unit_stride(g, go) and g[go + G_OW] == g[go + G_W]


@njit(cache=True, _nrt=False, inline="always")
def _column_masks(g, go, mk, mo):
    """mk[mo + q * plane + i * ow + j] = 1 where input column j + q * dw - pl lies in [0, w),
    else 0, for q < kw and the whole (oh, ow) output plane (the flat path's column masks)."""
    w = g[go + G_W]
    kw = g[go + G_KW]
    dw = g[go + G_DW]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    plane = oh * ow
    for q in range(kw):
        j0 = _first_valid(pl, q * dw, 1)
        j1 = _end_valid(w, pl, q * dw, 1, ow)
        for i in range(oh):
            for j in range(ow):
                mk[mo + q * plane + i * ow + j] = 1 if j0 <= j < j1 else 0


@njit(cache=True, _nrt=False)
def conv_f32(src, so, W, wo, b, bo, dst, do, g, go, m, cols, co):
    """CONV without activation for m samples: x (C, H, W) at src[so:] -> y (O, oh, ow) at dst[do:].
    W (O, C/group, kh, kw) float32 at W[wo:], b (O,) at b[bo:]; cols[co:] is float32 scratch of
    conv_scratch(geo, group)["f32"] elements.

    Group 1: _gemm_f32_tiled (after im2col unless pointwise). Depthwise-like (< 4 outputs per
    group, stride 1): the flat or shifted runs. Else per group: im2col into the scratch
    (padding 0), then each output plane starts at its bias and
    adds W[o, k] * cols[k, :] for k = (c, p, q) in order, four output channels sharing each load
    of a cols row (contiguous inner loops: vectorized). The order per output is fixed, so a
    batch gives the same bits as one sample at a time."""
    c_in = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    o_n = g[go + G_O]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    group = g[go + G_GROUP]
    cg = c_in // group
    og = o_n // group
    plane = oh * ow
    kk_n = cg * kh * kw
    n_in = c_in * h * w
    n_out = o_n * plane
    direct = _is_pointwise(g, go)
    shifted = _is_unit_stride(g, go) and not direct and og < 4  # depthwise-like: shifted runs
    dh = g[go + G_DH]
    dw = g[go + G_DW]
    hp = oh + (kh - 1) * dh
    wp = ow + (kw - 1) * dw
    yo_ = co + cg * hp * wp  # (oh, wp) accumulator plane after the padded input planes
    span = (oh - 1) * wp + ow
    flat = shifted and _is_flat(g, go)
    if flat:
        _column_masks(g, go, cols, co)
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    for s in range(m):
        xs = so + s * n_in
        ys = do + s * n_out
        for gi in range(group):
            c0 = gi * cg
            if flat:  # stride 1, ow == w: each tap is one masked run straight into the output plane
                for o in range(gi * og, (gi + 1) * og):
                    acc = dst[ys + o * plane:ys + (o + 1) * plane]
                    b0 = b[bo + o]
                    for k in range(plane):
                        acc[k] = b0
                    for c in range(cg):
                        xv = src[xs + (c0 + c) * h * w:xs + (c0 + c + 1) * h * w]
                        for p in range(kh):
                            i0 = _first_valid(pt, p * dh, 1)
                            i1 = _end_valid(h, pt, p * dh, 1, oh)
                            for q in range(kw):
                                j0 = _first_valid(pl, q * dw, 1)
                                j1 = _end_valid(w, pl, q * dw, 1, ow)
                                if i1 <= i0 or j1 <= j0:
                                    continue
                                wv = W[wo + ((o * cg + c) * kh + p) * kw + q]
                                k0 = i0 * ow + j0
                                n = (i1 - 1) * ow + j1 - k0
                                st = k0 + (p * dh - pt) * w + q * dw - pl
                                xr = xv[st:st + n]
                                ar = acc[k0:k0 + n]
                                if j0 == 0 and j1 == ow:
                                    for k in range(n):
                                        ar[k] += wv * xr[k]
                                else:
                                    mr = cols[co + q * plane + k0:co + q * plane + k0 + n]
                                    for k in range(n):  # masked columns add +0.0 (vectorizes)
                                        v = wv * xr[k]
                                        ar[k] += v if mr[k] != 0 else np.float32(0.0)
                continue
            if shifted:  # stride 1: every (p, q) is one shifted run over the padded planes
                _pad_planes(src, xs, c0, cg, g, go, cols, co, np.float32(0.0))
                acc = cols[yo_:yo_ + span]
                for o in range(gi * og, (gi + 1) * og):
                    b0 = b[bo + o]
                    for k in range(span):
                        acc[k] = b0
                    for c in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                wv = W[wo + ((o * cg + c) * kh + p) * kw + q]
                                st = co + c * hp * wp + p * dh * wp + q * dw
                                xr = cols[st:st + span]
                                for k in range(span):
                                    acc[k] += wv * xr[k]
                    for i in range(oh):
                        yr = dst[ys + o * plane + i * ow:ys + o * plane + (i + 1) * ow]
                        ar = acc[i * wp:i * wp + ow]
                        for k in range(ow):
                            yr[k] = ar[k]
                continue
            if direct and group == 1:
                _gemm_f32_tiled(src, xs, W, wo, b, bo, dst, ys, c_in, o_n, plane, cols, co)
                continue
            if group == 1:  # im2col rows, then the tiled GEMM (packing after the rows)
                _im2col(src, xs, 0, cg, g, go, cols, co, np.float32(0.0))
                _gemm_f32_tiled(cols, co, W, wo, b, bo, dst, ys, kk_n, o_n, plane, cols, co + kk_n * plane)
                continue
            if direct:
                cs = src
                cb = xs + c0 * plane
            else:
                _im2col(src, xs, c0, cg, g, go, cols, co, np.float32(0.0))
                cs = cols
                cb = co
            o = gi * og
            o_end = o + og
            while o + 4 <= o_end:
                y0 = dst[ys + o * plane:ys + (o + 1) * plane]
                y1 = dst[ys + (o + 1) * plane:ys + (o + 2) * plane]
                y2 = dst[ys + (o + 2) * plane:ys + (o + 3) * plane]
                y3 = dst[ys + (o + 3) * plane:ys + (o + 4) * plane]
                b0 = b[bo + o]
                b1 = b[bo + o + 1]
                b2 = b[bo + o + 2]
                b3 = b[bo + o + 3]
                for k in range(plane):
                    y0[k] = b0
                    y1[k] = b1
                    y2[k] = b2
                    y3[k] = b3
                for kk in range(kk_n):
                    cr = cs[cb + kk * plane:cb + (kk + 1) * plane]
                    w0 = W[wo + o * kk_n + kk]
                    w1 = W[wo + (o + 1) * kk_n + kk]
                    w2 = W[wo + (o + 2) * kk_n + kk]
                    w3 = W[wo + (o + 3) * kk_n + kk]
                    for k in range(plane):
                        v = cr[k]
                        y0[k] += w0 * v
                        y1[k] += w1 * v
                        y2[k] += w2 * v
                        y3[k] += w3 * v
                o += 4
            while o < o_end:
                y0 = dst[ys + o * plane:ys + (o + 1) * plane]
                b0 = b[bo + o]
                for k in range(plane):
                    y0[k] = b0
                for kk in range(kk_n):
                    cr = cs[cb + kk * plane:cb + (kk + 1) * plane]
                    w0 = W[wo + o * kk_n + kk]
                    for k in range(plane):
                        y0[k] += w0 * cr[k]
                o += 1


@njit(cache=True, _nrt=False)
def qconv_i8(src, so, W, wo, bias, bo, M, mo, dst, do, g, go, m, x_zp, y_zp, qmin, qmax, cols, co):
    """QCONV for m samples: x int8 (C, H, W) at src[so:] -> y int8 (O, oh, ow) at dst[do:].
    W (O, C/group, kh, kw) int8 at W[wo:], bias (O,) int32 at bias[bo:], M (O,) float32
    requantization multipliers at M[mo:]. acc = bias + sum over input elements (x - x_zp) * W,
    exact in int32. Scratch: cols[co:] int8, conv_scratch(geo, group)["i8"] elements (im2col or
    padded planes with padding = x_zp so it adds 0, or the flat path's column masks; unused by a
    pointwise convolution), and 4 * oh * ow int32 right
    after the table, g[go + G_LEN:] (four accumulator planes)."""
    c_in = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    o_n = g[go + G_O]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    group = g[go + G_GROUP]
    cg = c_in // group
    og = o_n // group
    plane = oh * ow
    kk_n = cg * kh * kw
    n_in = c_in * h * w
    n_out = o_n * plane
    a0 = g[go + G_LEN:go + G_LEN + plane]
    a1 = g[go + G_LEN + plane:go + G_LEN + 2 * plane]
    a2 = g[go + G_LEN + 2 * plane:go + G_LEN + 3 * plane]
    a3 = g[go + G_LEN + 3 * plane:go + G_LEN + 4 * plane]
    zp = np.int32(x_zp)
    direct = _is_pointwise(g, go)
    shifted = _is_unit_stride(g, go) and not direct and og < 4  # depthwise-like: shifted runs
    dh = g[go + G_DH]
    dw = g[go + G_DW]
    hp = oh + (kh - 1) * dh
    wp = ow + (kw - 1) * dw
    span = (oh - 1) * wp + ow
    flat = shifted and _is_flat(g, go)
    if flat:
        _column_masks(g, go, cols, co)
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    for s in range(m):
        xs = so + s * n_in
        ys = do + s * n_out
        for gi in range(group):
            c0 = gi * cg
            if flat:  # stride 1, ow == w: each tap is one masked run over the flat plane
                acc = g[go + G_LEN:go + G_LEN + plane]
                for o in range(gi * og, (gi + 1) * og):
                    b0 = np.int32(bias[bo + o])
                    for k in range(plane):
                        acc[k] = b0
                    for c in range(cg):
                        xv = src[xs + (c0 + c) * h * w:xs + (c0 + c + 1) * h * w]
                        for p in range(kh):
                            i0 = _first_valid(pt, p * dh, 1)
                            i1 = _end_valid(h, pt, p * dh, 1, oh)
                            for q in range(kw):
                                j0 = _first_valid(pl, q * dw, 1)
                                j1 = _end_valid(w, pl, q * dw, 1, ow)
                                if i1 <= i0 or j1 <= j0:
                                    continue
                                wv = np.int32(W[wo + ((o * cg + c) * kh + p) * kw + q])
                                k0 = i0 * ow + j0
                                n = (i1 - 1) * ow + j1 - k0
                                st = k0 + (p * dh - pt) * w + q * dw - pl
                                xr = xv[st:st + n]
                                ar = acc[k0:k0 + n]
                                mr = cols[co + q * plane + k0:co + q * plane + k0 + n]
                                for k in range(n):
                                    d = (np.int32(xr[k]) - zp) * wv
                                    ar[k] = np.int32(ar[k] + (d if mr[k] != 0 else np.int32(0)))
                    _requant_run(acc, M[mo + o], y_zp, qmin, qmax, dst[ys + o * plane:ys + (o + 1) * plane], plane)
                continue
            if shifted:  # stride 1: shifted runs over padded planes (padding = x_zp adds 0)
                _pad_planes(src, xs, c0, cg, g, go, cols, co, np.int8(x_zp))
                acc = g[go + G_LEN:go + G_LEN + span]
                for o in range(gi * og, (gi + 1) * og):
                    b0 = np.int32(bias[bo + o])
                    for k in range(span):
                        acc[k] = b0
                    for c in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                wv = np.int32(W[wo + ((o * cg + c) * kh + p) * kw + q])
                                st = co + c * hp * wp + p * dh * wp + q * dw
                                xr = cols[st:st + span]
                                for k in range(span):
                                    acc[k] = np.int32(acc[k] + (np.int32(xr[k]) - zp) * wv)
                    mult = M[mo + o]
                    for i in range(oh):
                        yr = dst[ys + o * plane + i * ow:ys + o * plane + (i + 1) * ow]
                        _requant_run(acc[i * wp:i * wp + ow], mult, y_zp, qmin, qmax, yr, ow)
                continue
            if direct:
                cs = src
                cb = xs + c0 * plane
            else:
                _im2col(src, xs, c0, cg, g, go, cols, co, np.int8(x_zp))
                cs = cols
                cb = co
            o = gi * og
            o_end = o + og
            while o < o_end:
                nb = min(4, o_end - o)
                for k in range(plane):
                    a0[k] = bias[bo + o]
                    if nb > 1:
                        a1[k] = bias[bo + o + 1]
                    if nb > 2:
                        a2[k] = bias[bo + o + 2]
                    if nb > 3:
                        a3[k] = bias[bo + o + 3]
                for kk in range(kk_n):
                    cr = cs[cb + kk * plane:cb + (kk + 1) * plane]
                    w0 = np.int32(W[wo + o * kk_n + kk])
                    if nb == 4:
                        w1 = np.int32(W[wo + (o + 1) * kk_n + kk])
                        w2 = np.int32(W[wo + (o + 2) * kk_n + kk])
                        w3 = np.int32(W[wo + (o + 3) * kk_n + kk])
                        for k in range(plane):
                            v = np.int32(cr[k]) - zp
                            a0[k] = np.int32(a0[k] + v * w0)
                            a1[k] = np.int32(a1[k] + v * w1)
                            a2[k] = np.int32(a2[k] + v * w2)
                            a3[k] = np.int32(a3[k] + v * w3)
                    else:
                        for j in range(nb):
                            wj = np.int32(W[wo + (o + j) * kk_n + kk])
                            aj = g[go + G_LEN + j * plane:go + G_LEN + (j + 1) * plane]
                            for k in range(plane):
                                aj[k] = np.int32(aj[k] + (np.int32(cr[k]) - zp) * wj)
                for j in range(nb):
                    mult = M[mo + o + j]
                    aj = g[go + G_LEN + j * plane:go + G_LEN + (j + 1) * plane]
                    yv = dst[ys + (o + j) * plane:ys + (o + j + 1) * plane]
                    _requant_run(aj, mult, y_zp, qmin, qmax, yv, plane)
                o += nb


@njit(cache=True, _nrt=False)
def maxpool(src, so, dst, do, g, go, m):
    """MAXPOOL / QMAXPOOL for m samples (float32 or int8, dst of the same dtype): the max over
    the window's input elements (padding ignored; the planner checked every window holds one)."""
    c_n = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
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
    n_in = c_n * h * w
    n_out = c_n * oh * ow
    for s in range(m):
        for c in range(c_n):
            xv = src[so + s * n_in + c * h * w:so + s * n_in + (c + 1) * h * w]
            yc = do + s * n_out + c * oh * ow
            for i in range(oh):
                p0 = _first_valid(pt, i * sh, dh)  # taps p with row i*sh + p*dh - pt in [0, h)
                p1 = _end_valid(h, pt, i * sh, dh, kh)
                for j in range(ow):
                    q0 = _first_valid(pl, j * sw, dw)
                    q1 = _end_valid(w, pl, j * sw, dw, kw)
                    best = xv[(i * sh + p0 * dh - pt) * w + j * sw + q0 * dw - pl]
                    for p in range(p0, p1):
                        r = (i * sh + p * dh - pt) * w + j * sw - pl
                        for q in range(q0, q1):
                            v = xv[r + q * dw]
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
    dh = g[go + G_DH]
    dw = g[go + G_DW]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    include_pad = g[go + G_INCLUDE_PAD]
    n_in = c_n * h * w
    n_out = c_n * oh * ow
    for s in range(m):
        for c in range(c_n):
            xv = src[so + s * n_in + c * h * w:so + s * n_in + (c + 1) * h * w]
            yc = do + s * n_out + c * oh * ow
            for i in range(oh):
                p0 = _first_valid(pt, i * sh, dh)
                p1 = _end_valid(h, pt, i * sh, dh, kh)
                for j in range(ow):
                    q0 = _first_valid(pl, j * sw, dw)
                    q1 = _end_valid(w, pl, j * sw, dw, kw)
                    acc = np.float32(0.0)
                    for p in range(p0, p1):
                        r = (i * sh + p * dh - pt) * w + j * sw - pl
                        for q in range(q0, q1):
                            acc += xv[r + q * dw]
                    count = kh * kw if include_pad != 0 else (p1 - p0) * (q1 - q0)
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
    dh = g[go + G_DH]
    dw = g[go + G_DW]
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
            xv = src[so + s * n_in + c * h * w:so + s * n_in + (c + 1) * h * w]
            yc = do + s * n_out + c * oh * ow
            for i in range(oh):
                p0 = _first_valid(pt, i * sh, dh)
                p1 = _end_valid(h, pt, i * sh, dh, kh)
                for j in range(ow):
                    q0 = _first_valid(pl, j * sw, dw)
                    q1 = _end_valid(w, pl, j * sw, dw, kw)
                    acc = np.int32(0)
                    for p in range(p0, p1):
                        r = (i * sh + p * dh - pt) * w + j * sw - pl
                        for q in range(q0, q1):
                            acc += np.int32(xv[r + q * dw]) - zp
                    count = kh * kw if include_pad != 0 else (p1 - p0) * (q1 - q0)
                    v = np.int64(np.rint((np.float32(acc) * m32) / np.float32(count))) + y_zp
                    if v < -128:
                        v = -128
                    elif v > 127:
                        v = 127
                    dst[yc + i * ow + j] = np.int8(v)


@njit(cache=True, _nrt=False)
def global_avgpool_f32(src, so, dst, do, c_n, hw, m):
    """GLOBAL_AVGPOOL for m samples: x (C, hw) -> y (C,), float32 sum in order / float32(hw).
    The C sums run side by side in y (position outer, channel inner: independent chains), each
    from 0.0 over k = 0..hw-1 in order."""
    inv = np.float32(hw)
    for s in range(m):
        x0 = so + s * c_n * hw
        y = dst[do + s * c_n:do + (s + 1) * c_n]
        for c in range(c_n):
            y[c] = np.float32(0.0)
        for k in range(hw):
            for c in range(c_n):
                y[c] += src[x0 + c * hw + k]
        for c in range(c_n):
            y[c] = y[c] / inv


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


def conv_f32_ref(src, so, W, wo, b, bo, dst, do, g, go, m, cols=None, co=0):
    from .reference_conv import conv_sum, windows
    geo, t = _geometry(g, go)
    o, cg = t[G_O], t[G_C] // t[G_GROUP]
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1)
    Wt = W[wo:wo + o * cg * geo.kh * geo.kw].reshape(o, cg, geo.kh, geo.kw)
    y = conv_sum(windows(x.astype(np.float64), geo, 0.0), Wt.astype(np.float64), geo, t[G_GROUP])
    y = y + b[bo:bo + o].astype(np.float64)[None, :, None]
    dst[do:do + y.size] = y.astype(np.float32).reshape(-1)


def qconv_i8_ref(src, so, W, wo, bias, bo, M, mo, dst, do, g, go, m, x_zp, y_zp, qmin, qmax, cols=None, co=0):
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


def table_from_geometry(geo, out_channels: int, group: int = 1, include_pad: int = 0, **int8) -> np.ndarray:
    """The int32 table of a rtinfer.reference_conv.Geometry (see pack_geometry)."""
    return pack_geometry(geo.c, geo.h, geo.w, out_channels, geo.kh, geo.kw, geo.sh, geo.sw, geo.dh, geo.dw,
                         geo.pt, geo.pl, geo.oh, geo.ow, group, include_pad, **int8)


# ------------------------------------------------------------------------------ planning
MAX_SCRATCH = 1 << 26  # elements of conv scratch one layer may ask the planner for


def conv_scratch(geo, group: int) -> dict:
    """Scratch elements conv_f32 / qconv_i8 need for a geometry (rtinfer.reference_conv.Geometry):
    {"f32": conv_f32's cols, "i8": qconv_i8's cols, "i32": qconv_i8's accumulators after its
    table}. Pointwise: none; else im2col rows (C/group kh kw, oh ow), and for stride 1 at least the
    group's padded planes (hp, wp) = (oh + (kh - 1) dh, ow + (kw - 1) dw) plus an (oh, wp)
    accumulator plane (the path taken when a group has fewer than 4 output channels)."""
    cg = geo.c // group
    plane = geo.oh * geo.ow
    pointwise = (geo.kh, geo.kw, geo.sh, geo.sw, geo.pt, geo.pl, geo.oh, geo.ow) == (1, 1, 1, 1, 0, 0, geo.h, geo.w)
    if pointwise:
        return {"f32": gemm_scratch_f32(geo.c, plane) if group == 1 else 1, "i8": 1, "i32": 4 * plane}
    cols = cg * geo.kh * geo.kw * plane
    tiled = cols + gemm_scratch_f32(cg * geo.kh * geo.kw, plane) if group == 1 else 0  # im2col + GEMM
    if geo.sh == 1 and geo.sw == 1:  # either path (the kernels pick by channels per group)
        hp, wp = geo.oh + (geo.kh - 1) * geo.dh, geo.ow + (geo.kw - 1) * geo.dw
        flat_masks = geo.kw * plane  # the flat path's column masks (ow == w)
        return {"f32": max(cols, tiled, cg * hp * wp + geo.oh * wp, flat_masks),
                "i8": max(cols, cg * hp * wp, flat_masks),
                "i32": max(4 * plane, geo.oh * wp)}
    return {"f32": max(cols, tiled), "i8": cols, "i32": 4 * plane}


def plan_window_row(frozen, layer, where: str, sec, row: list, cols: dict, error) -> float:
    """Validate one conv/pool layer and fill its program row (rtinfer.plan calls this).

    sec: the planner's sections (``add(key, array) -> element offset`` in that section);
    cols: the planner's column indices {"T0", "T1", "T2", "I0", "I1"}; offsets written are
    section-relative (``relocate_window_row`` adds the section bases). Row layout:
    CONV T0 = W (f32), T1 = b (f32); QCONV T0 = W (i8), T1 = bias (i32), T2 = M (f32);
    CONV T2 = its float32 im2col scratch; QCONV's int8 scratch follows W's section (table slot
    G_COLS holds its offset relative to W) and its int32 accumulators follow the table;
    I0 = the int32 table (i32; not GLOBAL_AVGPOOL, whose I0 = C and I1 = spatial size).
    Returns the op's float parameter (QAVGPOOL: float32(x_scale / y_scale); else 0.0).
    ``error`` is the exception class to raise (PlanError)."""
    from . import quant
    from .ops import Op
    from .reference_conv import ConvSpecError, check_pool_pads, conv_channels, geometry

    op = layer.op
    a = layer.attrs
    try:
        if op == Op.GLOBAL_AVGPOOL:
            c = layer.in_shape[0] if layer.in_shape else 0
            if len(layer.in_shape) < 2 or layer.out_size != c:
                raise ConvSpecError(f"in_shape {layer.in_shape} must be (C, *spatial) and out_shape hold C elements")
            row[cols["I0"]] = c
            row[cols["I1"]] = layer.in_size // c
            return 0.0
        if op in (Op.CONV, Op.QCONV):
            o, group = conv_channels(frozen, layer)
            geo = geometry(layer, o)
        else:
            o, group = None, 1
            geo = geometry(layer)
            check_pool_pads(layer, geo)
    except ConvSpecError as exc:
        raise error(f"{where}: {exc}") from None

    def int_attr(key, default=None, lo=quant.QMIN, hi=quant.QMAX):
        v = a.get(key, default)
        if v is None or v != int(v) or not lo <= int(v) <= hi:
            raise error(f"{where}: attribute {key!r} must be an integer in [{lo}, {hi}], got {v}")
        return int(v)

    def scale_attr(key):
        v = float(a.get(key, float("nan")))
        if not (v > 0 and np.isfinite(v) and np.float32(v) > 0):
            raise error(f"{where}: {key} must be a positive float32, got {v}")
        return v

    include_pad = int_attr("count_include_pad", 0, 0, 1) if op in (Op.AVGPOOL, Op.QAVGPOOL) else 0
    int8 = {}
    mult = 0.0
    if op in (Op.QCONV, Op.QMAXPOOL, Op.QAVGPOOL):
        int8["x_zp"] = int_attr("x_zp")
        scale_attr("x_scale")
    if op in (Op.QCONV, Op.QAVGPOOL):
        int8["y_zp"] = int_attr("y_zp")
        y_scale = scale_attr("y_scale")
        mult = float(np.float32(np.float64(a["x_scale"]) / np.float64(y_scale)))
    if op == Op.QCONV:
        int8["qmin"] = int_attr("qmin", quant.QMIN)
        int8["qmax"] = int_attr("qmax", quant.QMAX)
        if int8["qmin"] > int8["qmax"]:
            raise error(f"{where}: qmin {int8['qmin']} > qmax {int8['qmax']}")
    table = table_from_geometry(geo, geo.c if o is None else o, group, include_pad, **int8)
    if op in (Op.CONV, Op.QCONV):
        need = conv_scratch(geo, group)
        if max(need.values()) > MAX_SCRATCH:
            raise error(f"{where}: the convolution needs {max(need.values())} elements of scratch "
                        f"(limit {MAX_SCRATCH}); kernel ({geo.kh}, {geo.kw}) over a ({geo.oh}, {geo.ow}) output "
                        f"is too large")

    if op == Op.CONV:
        W = frozen.tensor(layer, "W")
        b = frozen.tensor(layer, "b")
        if W.dtype != np.float32 or b.dtype != np.float32:
            raise error(f"{where}: W and b must be float32 tensors")
        row[cols["T0"]] = sec.add("f32", W)
        row[cols["T1"]] = sec.add("f32", b)
        row[cols["T2"]] = sec.add("f32", np.zeros(need["f32"], np.float32))  # scratch
    elif op == Op.QCONV:
        Wq = frozen.tensor(layer, "W")
        bq = frozen.tensor(layer, "b")
        w_scale = frozen.tensor(layer, "w_scale")
        if Wq.dtype != np.int8 or bq.dtype != np.int32 or w_scale.dtype != np.float32 or w_scale.shape != (o,):
            raise error(f"{where}: QCONV needs W int8, b int32 and w_scale ({o},) float32")
        if not np.all(np.isfinite(w_scale)) or np.any(w_scale <= 0):
            raise error(f"{where}: w_scale must be positive and finite")
        # |acc| <= 255 * sum|W[o]| + |b[o]| must fit int32 so the wrapping int32 kernel is exact
        bound = 255 * np.abs(Wq.astype(np.int64)).reshape(o, -1).sum(axis=1) + np.abs(bq.astype(np.int64))
        if np.any(bound > np.iinfo(np.int32).max):
            raise error(f"{where}: the int32 accumulator could overflow (worst case {int(bound.max())})")
        M = quant.requant_multiplier(a["x_scale"], w_scale, a["y_scale"])
        if not np.all(np.isfinite(M)):
            raise error(f"{where}: requantization multiplier is not finite")
        row[cols["T0"]] = sec.add("i8", Wq)
        table[G_COLS] = sec.add("i8", np.zeros(need["i8"], np.int8)) - row[cols["T0"]]
        row[cols["T1"]] = sec.add("i32", bq)
        row[cols["T2"]] = sec.add("f32", M)
        table = np.concatenate([table, np.zeros(need["i32"], np.int32)])  # accumulator scratch
    row[cols["I0"]] = sec.add("i32", table)
    return mult


def relocate_window_row(row: list, cols: dict, base_f32: int, base_i32: int, base_i8: int) -> None:
    """Add the section bases to a conv/pool row's section-relative offsets (see plan_window_row)."""
    from .ops import Op
    op = Op(row[cols["OP"]])
    if op == Op.GLOBAL_AVGPOOL:
        return
    row[cols["I0"]] += base_i32
    if op == Op.CONV:
        row[cols["T0"]] += base_f32
        row[cols["T1"]] += base_f32
        row[cols["T2"]] += base_f32
    elif op == Op.QCONV:
        row[cols["T0"]] += base_i8
        row[cols["T1"]] += base_i32
        row[cols["T2"]] += base_f32
