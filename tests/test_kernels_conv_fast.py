"""The fast conv paths of rtinfer.kernels_conv on the shapes small models use (the DS-CNN, the
1-D sensor CNN, LeNet-5) against the NumPy twins: the register-tiled GEMM (float32 tile; int8
on int16 pairs and on uint8 quads), the depthwise tiles, im2col by gathers. float32 within 1e-5
of the summed magnitudes, int8 bit-exact; a batch equals one sample at a time bit for bit; no
write outside the destination; each path's float32 summation order is the documented one."""

from __future__ import annotations

import numpy as np
import pytest

from rtinfer import kernels_conv as KC
from rtinfer import kernels_tile as T
from rtinfer.reference_conv import geometry_attrs, make_geometry

GUARD = 5

# the path the planner takes for ResNet-8's 3x3 layers: Winograd where it was measured to pay
# (kernels_conv.WINO_AUTO: AVX2 targets); the Winograd tests below force it everywhere
WINO = KC.PATH_WINO if KC.WINO_AUTO else KC.PATH_GEMM

# (in_shape (C, H, W), out channels, group, kernel, stride, dilation, pads ((t, b), (l, r)), path)
FAST_CASES = [
    ((64, 25, 5), 64, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)), KC.PATH_GEMM),    # DS-CNN pointwise
    ((7, 3, 5), 13, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)), KC.PATH_GEMM),      # plane 15 < 16, O % 6 != 0
    ((5, 1, 37), 6, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)), KC.PATH_GEMM),      # 1-D pointwise, 3 blocks
    ((1, 49, 10), 64, 1, (10, 4), (2, 2), (1, 1), ((4, 5), (1, 2)), KC.PATH_GEMM),   # DS-CNN stem (gathers)
    ((1, 28, 28), 6, 1, (5, 5), (1, 1), (1, 1), ((2, 2), (2, 2)), KC.PATH_GEMM),     # LeNet-5 conv 1
    ((6, 14, 14), 16, 1, (5, 5), (1, 1), (1, 1), ((0, 0), (0, 0)), KC.PATH_GEMM),    # LeNet-5 conv 2
    ((16, 1, 64), 32, 1, (1, 5), (1, 1), (1, 1), ((0, 0), (2, 2)), KC.PATH_GEMM),    # 1-D CNN conv 2 (runs)
    ((3, 7, 6), 9, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), KC.PATH_GEMM),      # stride 1 im2col + tile
    ((64, 25, 5), 64, 64, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), KC.PATH_DW),     # DS-CNN depthwise
    ((32, 1, 32), 32, 32, (1, 3), (1, 1), (1, 1), ((0, 0), (1, 1)), KC.PATH_DW),     # 1-D CNN depthwise
    ((4, 6, 7), 4, 4, (3, 5), (1, 1), (1, 1), ((2, 0), (2, 2)), KC.PATH_DW),         # asymmetric rows, kw 5
    ((4, 1, 20), 8, 4, (1, 5), (1, 1), (1, 2), ((0, 0), (4, 4)), KC.PATH_DW),        # 1-D depthwise x2, dilated
    ((3, 9, 4), 3, 3, (3, 3), (1, 1), (3, 2), ((3, 3), (2, 2)), KC.PATH_DW),         # dilated 2-D, taps dropped
    ((3, 4, 16), 3, 3, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), KC.PATH_DW),        # rows of 16: DWQ's top margin is a whole row
    ((6, 5, 5), 3, 3, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), KC.PATH_GEMM),       # 2 channels per group
    ((4, 6, 7), 4, 4, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), KC.PATH_GEMM),       # strided depthwise (GEMM per group)
    ((16, 32, 32), 16, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), WINO),           # ResNet-8 3x3, 16 channels
    ((32, 16, 16), 32, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), WINO),           # ResNet-8 3x3, 32 channels
    ((64, 8, 8), 64, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), WINO),             # ResNet-8 3x3, 64 channels
    ((16, 21, 19), 22, 1, (3, 3), (1, 1), (1, 1), ((2, 0), (0, 1)), WINO),           # odd oh, ow; O % 6 = 4; 3 blocks
    ((3, 32, 32), 16, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), KC.PATH_GEMM),    # ResNet-8 stem: 3 channels, direct
    # 3-wide, stride-2, pad-1 windows over rows of 2 ow columns: one pass per input row (s2k3_row*)
    ((16, 32, 32), 32, 1, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), KC.PATH_GEMM),    # ResNet-8 stride 2, ow 16
    ((8, 16, 16), 12, 1, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), KC.PATH_GEMM),     # ow 8 (8-lane steps)
    ((3, 7, 32), 5, 1, (3, 3), (2, 2), (1, 1), ((1, 0), (1, 0)), KC.PATH_GEMM),       # odd h, no bottom/right pad
    ((2, 9, 48), 3, 1, (3, 3), (1, 2), (1, 1), ((0, 2), (1, 1)), KC.PATH_GEMM),       # row stride 1, 3 steps of 8
]


def _geometry(case):
    shape, o, group, kernel, stride, dil, pads, _ = case
    attrs = geometry_attrs(kernel, stride, dil, pads)
    in_shape = shape if shape[1] != 1 else (shape[0], shape[2])
    return make_geometry(in_shape, attrs), o, group


def _guarded(values, fill):
    out = np.full(values.size + 2 * GUARD, fill, values.dtype)
    out[GUARD:GUARD + values.size] = values
    return out


@pytest.mark.parametrize("case", FAST_CASES)
def test_conv_f32_fast_paths_match_twin(case):
    rng = np.random.default_rng(3)
    geo, o, group = _geometry(case)
    m = 3
    n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
    x = _guarded(rng.uniform(-1, 1, m * n_in).astype(np.float32), 0)
    W = rng.uniform(-1, 1, o * (geo.c // group) * geo.kh * geo.kw).astype(np.float32)
    b = _guarded(rng.uniform(-1, 1, o).astype(np.float32), 0)
    lay = KC.conv_layout(geo, o, group, W, wino=True if case[-1] == KC.PATH_WINO else None)
    assert lay.path == case[-1]
    Wk = _guarded(lay.W, 0)
    cols = np.zeros(lay.f32 + 2, np.float32)
    if lay.path == KC.PATH_WINO:  # only the padded planes' margins rely on the scratch starting zero
        cols[2 + KC.wino_shape(geo.c, o, geo.oh, geo.ow, int(lay.table[KC.G_WBR]))[5]:] = np.nan
    elif lay.path != KC.PATH_DW and lay.table[KC.G_BMODE] not in (KC.BM_SHIFT, KC.BM_WINDOW):
        cols[:] = np.nan  # only the plane copies and windows rely on their scratch starting zero (the margins)
    got = np.full(m * n_out + 2 * GUARD, 99, np.float32)
    want = got.copy()
    KC.conv_f32(x, GUARD, Wk, GUARD, b, GUARD, got, GUARD, lay.table, 0, m, cols, 2, 1, 0.0, 0.0)  # ReLU
    KC.conv_f32_ref(x, GUARD, _guarded(W, 0), GUARD, b, GUARD, want, GUARD, lay.table, 0, m, act=1)
    assert np.all(got[:GUARD] == 99) and np.all(got[GUARD + m * n_out:] == 99)
    scale = (geo.c // group) * geo.kh * geo.kw + 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
    one = np.full_like(got, 99)
    for s in range(m):
        KC.conv_f32(x, GUARD + s * n_in, Wk, GUARD, b, GUARD, one, GUARD + s * n_out, lay.table, 0, 1, cols, 2,
                    1, 0.0, 0.0)
    np.testing.assert_array_equal(one, got)


@pytest.mark.parametrize("case", FAST_CASES)
@pytest.mark.parametrize("u8", [None, True, False])
def test_qconv_i8_fast_paths_are_bit_exact(case, u8):
    rng = np.random.default_rng(13)
    geo, o, group = _geometry(case)
    gemm = case[-1] in (KC.PATH_GEMM, WINO)  # Winograd is float32 only: int8 runs the GEMM there
    m = 2
    n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
    wsize = o * (geo.c // group) * geo.kh * geo.kw
    x = _guarded(rng.integers(-128, 128, m * n_in).astype(np.int8), 0)
    # 7-bit weights where the u8 tile is forced without VNNI (vpmaddubsw saturates); full range
    # elsewhere (VNNI's vpdpbusd sums any int8 weights exactly)
    hi = 64 if u8 and not T.quads_exact_any() else 128
    W = rng.integers(-hi + 1, hi, wsize).astype(np.int8)
    bias = _guarded(rng.integers(-5000, 5000, o).astype(np.int32), 0)
    M = _guarded(rng.uniform(1e-3, 2e-2, o).astype(np.float32), 0)
    for x_zp, y_zp, qmin, qmax in [(0, 0, -128, 127), (-7, 5, 5, 127), (100, -128, -128, 120)]:
        lay = KC.conv_layout(geo, o, group, W, bias=bias[GUARD:GUARD + o], int8=True, u8=u8,
                             x_zp=x_zp, y_zp=y_zp, qmin=qmin, qmax=qmax)
        if gemm:  # int16 copies (BM_SHIFT / BM_WINDOW): read in place (s16) or packed (u8)
            want_path = {True: KC.PATH_GEMM_U8, False: KC.PATH_GEMM}.get(u8)
            assert lay.path == (want_path or lay.path) and lay.path in (KC.PATH_GEMM, KC.PATH_GEMM_U8)
        else:  # depthwise: uint8 quads of taps (DWQ) or int16 pairs of taps (DW) (the planner's
            # choice: test_dwq_is_planned_for_2d_depthwise_filters_where_its_quads_are_exact)
            assert lay.path == {True: KC.PATH_DWQ, False: KC.PATH_DW}.get(u8, lay.path)
            assert lay.path in (KC.PATH_DWQ, KC.PATH_DW) and (u8 or geo.h > 1 or lay.path == KC.PATH_DW)
        cols = np.full(lay.i8, 55, np.int8)
        fs = lay.scratch_f32()
        got = np.full(m * n_out + 2 * GUARD, 99, np.int8)
        want = got.copy()
        KC.qconv_i8(x, GUARD, _guarded(lay.W, 0), GUARD, bias, GUARD, M, GUARD, got, GUARD, lay.table, 0, m,
                    x_zp, y_zp, qmin, qmax, cols, 0, fs, 0)
        KC.qconv_i8_ref(x, GUARD, _guarded(W, 0), GUARD, bias, GUARD, M, GUARD, want, GUARD, lay.table, 0, m,
                        x_zp, y_zp, qmin, qmax)
        np.testing.assert_array_equal(got, want)
        assert len(np.unique(got)) > 10


def test_u8_path_is_chosen_only_where_exact():
    """Without VNNI the u8 tile (vpmaddubsw) saturates int16 pair sums: the planner takes it only
    for weights whose consecutive pairs have |w0| + |w1| <= 128 (and on AVX2 targets); on VNNI
    targets (vpdpbusd: no int16 step) for any weights. Either way the layer is bit-exact."""
    geo = make_geometry((8, 4, 4), geometry_attrs((1, 1)))
    W7 = np.full((4, 8), 63, np.int8)
    W8 = W7.copy()
    W8[2, 4:6] = (127, -2)  # |127| + |-2| > 128
    assert KC.u8_exact(W7) and not KC.u8_exact(W8)
    lay7 = KC.conv_layout(geo, 4, 1, W7, bias=np.zeros(4, np.int32), int8=True)
    lay8 = KC.conv_layout(geo, 4, 1, W8, bias=np.zeros(4, np.int32), int8=True)
    avx2 = "avx2" in T.target_features()
    assert lay8.path == (KC.PATH_GEMM_U8 if avx2 and T.quads_exact_any() else KC.PATH_GEMM)
    assert lay7.path == (KC.PATH_GEMM_U8 if avx2 else KC.PATH_GEMM)
    W9 = W7.copy()
    W9[2, 4:6] = 127  # with x = 127 in channels 4 and 5: a pair sum of 255 * 254, past int16
    lay9 = KC.conv_layout(geo, 4, 1, W9, bias=np.zeros(4, np.int32), int8=True)
    assert lay9.path == lay8.path
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, 2 * 8 * 16).astype(np.int8)
    x[4 * 16:6 * 16] = 127
    bias = np.zeros(4, np.int32)
    M = np.full(4, 1e-4, np.float32)
    for W, lay in ((W7, lay7), (W9, lay9)):
        got = np.zeros(2 * 4 * 16, np.int8)
        want = np.ones_like(got)
        KC.qconv_i8(x, 0, lay.W, 0, bias, 0, M, 0, got, 0, lay.table, 0, 2, 0, 0, -128, 127,
                    np.zeros(lay.i8 + 1, np.int8), 0, lay.scratch_f32(), 0)
        KC.qconv_i8_ref(x, 0, W.reshape(-1), 0, bias, 0, M, 0, want, 0, lay.table, 0, 2, 0, 0, -128, 127)
        np.testing.assert_array_equal(got, want)


def test_dwq_is_planned_for_2d_depthwise_filters_where_its_quads_are_exact():
    """int8 depthwise layers run on uint8 quads of taps (PATH_DWQ) where it was measured to pay --
    2-D filters, whose kernel rows share one build of the quads -- on AVX2 targets, and only where
    vpmaddubsw's pair sums cannot saturate (7-bit weights; any weights on VNNI); 1-D filters and
    other weights keep the int16-pair tiles (PATH_DW). The bias the tile adds has the +128 input
    shift folded in."""
    def lay(shape, kernel, pads, w, x_zp=0):
        geo = make_geometry(shape, geometry_attrs(kernel, (1, 1), (1, 1), pads))
        W = np.full((shape[0], 1) + kernel, w, np.int8)
        return KC.conv_layout(geo, shape[0], shape[0], W, bias=np.arange(shape[0], dtype=np.int32), int8=True,
                              x_zp=x_zp)
    avx2 = "avx2" in T.target_features()
    ds = lay((64, 25, 5), (3, 3), ((1, 1), (1, 1)), 63, x_zp=-3)
    assert ds.path == (KC.PATH_DWQ if avx2 else KC.PATH_DW)
    if avx2:
        assert "uint8 quads of taps" in KC.kernel_name(ds.table, True)
        folded = ds.table[ds.table[KC.G_BIAS8]:][:64]
        np.testing.assert_array_equal(folded, np.arange(64) - (128 - 3) * 63 * 9)
        assert ds.fill == 128 - 3  # padding quads: the byte of x = x_zp
    assert lay((32, 32), (1, 3), ((0, 0), (1, 1)), 63).path == KC.PATH_DW  # 1-D: one kernel row
    full = lay((8, 6, 6), (3, 3), ((1, 1), (1, 1)), 127)  # |127| + |127| > 128: a pair sum can saturate
    assert full.path == (KC.PATH_DWQ if avx2 and T.quads_exact_any() else KC.PATH_DW)


def test_pointwise_tile_is_one_fma_chain_then_bias():
    """Each output of the GEMM path is fma(x[c], W[o, c], acc) for c in order from 0, then
    + b[o] (float32): the NumPy emulation of that order gives the same bits."""
    rng = np.random.default_rng(5)
    c, o, hw = 19, 7, 21
    geo, _, _ = _geometry(((c, 3, 7), o, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)), None))
    x = rng.normal(size=c * hw).astype(np.float32)
    W = rng.normal(size=o * c).astype(np.float32)
    b = rng.normal(size=o).astype(np.float32)
    lay = KC.conv_layout(geo, o, 1, W)
    y = np.zeros(o * hw, np.float32)
    KC.conv_f32(x, 0, lay.W, 0, b, 0, y, 0, lay.table, 0, 1, np.zeros(lay.f32, np.float32), 0, 0, 0.0, 0.0)
    X = x.reshape(c, hw).astype(np.float64)
    Wm = W.reshape(o, c).astype(np.float64)
    acc = np.zeros((o, hw), np.float32)
    for k in range(c):  # float32 fma: the exact product-sum rounded once (exact in float64 here)
        acc = (Wm[:, k:k + 1] * X[k][None, :] + acc.astype(np.float64)).astype(np.float32)
    want = (acc + b[:, None]).reshape(-1)
    np.testing.assert_array_equal(y, want)


def test_depthwise_tile_is_bias_then_one_fma_per_tap():
    """Each output of the DW path is bias[o], then fma(W[o, p, q], x, acc) over the taps in
    (p, q) order (taps reading only padding contribute fma(w, 0, acc) = acc): bit for bit."""
    from rtinfer.reference_conv import windows
    rng = np.random.default_rng(6)
    geo, o, group = _geometry(((5, 7, 5), 5, 5, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), None))
    x = rng.normal(size=5 * 35).astype(np.float32)
    W = rng.normal(size=(5, 1, 3, 3)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    lay = KC.conv_layout(geo, 5, 5, W)
    assert lay.path == KC.PATH_DW
    y = np.zeros(5 * 35, np.float32)
    KC.conv_f32(x, 0, lay.W, 0, b, 0, y, 0, lay.table, 0, 1, np.zeros(lay.f32, np.float32), 0, 0, 0.0, 0.0)
    cols = windows(x.reshape(1, -1).astype(np.float64), geo, 0.0)[0]  # (C, kh, kw, oh, ow)
    acc = np.repeat(b[:, None], 35, axis=1).astype(np.float32)
    for p in range(3):
        for q in range(3):
            acc = (W[:, 0, p, q].astype(np.float64)[:, None] * cols[:, p, q].reshape(5, -1)
                   + acc.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(y, acc.reshape(-1))


def _wino_twin(x, W, b, geo, o):
    """NumPy twin of PATH_WINO in its own order of float32 operations: zero-padded planes; per
    4 x 4 tile and channel, column differences/sums of each row, then down the rows (B^T d B);
    U = G W G^T in float64 rounded once; M[x] one FMA chain over the channels from 0.0 (+ a zero
    bias); per output row pair ((s0 + s1) + s2) + b and ((s1 - s2) - s3) + b of the column sums
    s (A^T M A); ReLU."""
    f64 = np.float64
    c = geo.c
    th, tw = (geo.oh + 1) // 2, (geo.ow + 1) // 2
    P = np.zeros((c, 2 * th + 2, 2 * tw + 2), np.float32)
    P[:, geo.pt:geo.pt + geo.h, geo.pl:geo.pl + geo.w] = x.reshape(c, geo.h, geo.w)
    d = np.stack([np.stack([P[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] for j in range(tw)]) for i in range(th)])
    R = np.stack([d[..., 0] - d[..., 2], d[..., 1] + d[..., 2], d[..., 2] - d[..., 1], d[..., 1] - d[..., 3]], -1)
    V = np.stack([R[..., 0, :] - R[..., 2, :], R[..., 1, :] + R[..., 2, :], R[..., 2, :] - R[..., 1, :],
                  R[..., 1, :] - R[..., 3, :]], -2)  # (th, tw, c, 4, 4)
    V = V.reshape(th * tw, c, 16).transpose(2, 1, 0)  # (16, c, tiles)
    G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    U = np.einsum("ai,ocij,bj->aboc", G, W.reshape(o, c, 3, 3).astype(f64), G).reshape(16, o, c).astype(np.float32)
    M = np.zeros((16, o, th * tw), np.float32)
    for k in range(c):  # float32 fma: the exact product-sum rounded once (exact in float64 here)
        M = (U[:, :, k:k + 1].astype(f64) * V[:, None, k, :].astype(f64) + M.astype(f64)).astype(np.float32)
    M = M + np.float32(0.0)
    m = M.reshape(4, 4, o, th, tw)
    s = (m[0] + m[1]) + m[2]  # (4 j, o, th, tw)
    u = (m[1] - m[2]) - m[3]
    bb = b[:, None, None]
    y = np.zeros((o, 2 * th, 2 * tw), np.float32)
    for r, v in ((0, s), (1, u)):
        y[:, r::2, 0::2] = ((v[0] + v[1]) + v[2]) + bb
        y[:, r::2, 1::2] = ((v[1] - v[2]) - v[3]) + bb
    return np.maximum(y[:, :geo.oh, :geo.ow], 0).reshape(-1)


@pytest.mark.parametrize("case", [c for c in FAST_CASES if c[2:6] == (1, (3, 3), (1, 1), (1, 1)) and c[0][0] >= 16]
                         + [((5, 9, 11), 7, 1, (3, 3), (1, 1), (1, 1), ((0, 2), (2, 1)), None)])
def test_winograd_is_its_twins_order_of_operations(case):
    """PATH_WINO gives the bits of its NumPy twin (_wino_twin), which does the same float32
    operations in the same order: the transforms of kernels_tile.wino_in8 / wino_out8 and the
    GEMM's FMA chains; within 1e-6 of the float64 golden (the transforms add a few roundings)."""
    rng = np.random.default_rng(8)
    geo, o, group = _geometry(case)
    x = rng.normal(size=geo.c * geo.h * geo.w).astype(np.float32)
    W = rng.normal(size=(o, geo.c, 3, 3)).astype(np.float32)
    b = rng.normal(size=o).astype(np.float32)
    lay = KC.conv_layout(geo, o, group, W, wino=True)
    assert lay.path == KC.PATH_WINO
    y = np.zeros(o * geo.oh * geo.ow, np.float32)
    KC.conv_f32(x, 0, lay.W, 0, b, 0, y, 0, lay.table, 0, 1, lay.scratch_f32(), 0, 1, 0.0, 0.0)
    np.testing.assert_array_equal(y, _wino_twin(x, W, b, geo, o))
    want = np.zeros_like(y)
    KC.conv_f32_ref(x, 0, W.reshape(-1), 0, b, 0, want, 0, lay.table, 0, 1, act=1)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-6 * np.abs(W).max() * np.abs(x).max() * geo.c * 9)


def test_winograd_is_planned_where_it_was_measured_to_pay():
    """Winograd for float32 3 x 3 stride 1 layers of >= 16 channels in and out and >= 2**20
    multiply-adds (ResNet-8's) on the targets where it was measured (WINO_AUTO: AVX2); not for
    the 3-channel stem, small layers, int8, strides, dilation, groups or other kernels; the
    planner's block keeps >= 16 tiles."""
    def path(shape, o, kernel=(3, 3), stride=(1, 1), dil=(1, 1), group=1, int8=False):
        geo = make_geometry(shape, geometry_attrs(kernel, stride, dil, ((1, 1), (1, 1))))
        W = np.ones((o, shape[0] // group) + kernel, np.int8 if int8 else np.float32)
        return KC.conv_layout(geo, o, group, W, bias=np.zeros(o, np.int32) if int8 else None, int8=int8).path
    for shape, o in (((16, 32, 32), 16), ((32, 16, 16), 32), ((64, 8, 8), 64), ((16, 32, 32), 32)):
        assert path(shape, o) == WINO
        assert path(shape, o, int8=True) != KC.PATH_WINO
    assert path((3, 32, 32), 16) == KC.PATH_GEMM             # stem: 3 channels
    assert path((16, 16, 16), 16) == KC.PATH_GEMM            # 0.59 M multiply-adds
    assert path((8, 64, 64), 8) == KC.PATH_GEMM              # 8 channels
    assert path((16, 32, 32), 32, stride=(2, 2)) == KC.PATH_GEMM
    assert path((16, 32, 32), 16, dil=(2, 2)) == KC.PATH_GEMM
    assert path((32, 32, 32), 32, group=2) == KC.PATH_GEMM
    assert path((16, 32, 32), 16, kernel=(5, 5)) == KC.PATH_GEMM
    geo = make_geometry((64, 8, 8), geometry_attrs((3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))))
    assert KC.wino_rows(geo, 64) * 4 >= 16


def test_gather32_matches_indexing():
    rng = np.random.default_rng(7)
    for n in (1, 7, 8, 9, 61):
        idx = rng.integers(-1, 50, n).astype(np.int32)
        for X, fill in ((rng.normal(size=50).astype(np.float32), np.float32(-3.5)),
                        (rng.integers(-9, 9, 50).astype(np.int32), np.int32(4))):
            got = np.full(n + 4, 77, X.dtype)
            _run_gather(X, idx, got, fill)
            want = np.where(idx >= 0, X[np.maximum(idx, 0)], fill)
            np.testing.assert_array_equal(got[2:2 + n], want)
            assert np.all(got[:2] == 77) and np.all(got[2 + n:] == 77)


_GATHER_RUN = []  # the compiled driver, built once per test process (one compile per dtype)


def _run_gather(X, idx, out, fill):
    if not _GATHER_RUN:
        from numba import njit

        @njit(_nrt=False)
        def run(X, idx, out, fill):
            T.gather32(X, 0, idx, 0, idx.size, out, 2, fill)
        _GATHER_RUN.append(run)
    _GATHER_RUN[0](X, idx, out, fill)


def test_quad_packing_and_byte_copies_match_numpy():
    """kernels_tile.pack_quads32 and pack_quads16 (uint8 quads of four int8 rows, + add) and
    fill_masked into the u8 tile's bytes with byte masks (x ^ 0x80 where kept, zp + 128 where
    masked; 32 a step, the last overlapping, element by element below 32), against NumPy."""
    from numba import njit

    @njit(_nrt=False)
    def pack(X, offs, add, B, wide):
        if wide:
            T.pack_quads32(X, offs[0], offs[1], offs[2], offs[3], add, B, 3)
        else:
            T.pack_quads16(X, offs[0], offs[1], offs[2], offs[3], add, B, 3)

    @njit(_nrt=False)
    def fill(X, xo, n, MK, ncls, Z, zs, zp):
        T.fill_masked(X, xo, n, MK, 4, ncls, Z, 5, zs, zp)

    rng = np.random.default_rng(8)
    X = rng.integers(-128, 128, 300).astype(np.int8)
    for wide, n in ((True, 32), (False, 16)):
        for add in (0, 128, 3):
            offs = rng.integers(0, 300 - n, 4).astype(np.int64)
            B = np.full(n + 6, 77, np.int32)
            pack(X, offs, add, B, wide)
            rows = [(X[o:o + n].astype(np.int64) + add) & 0xFF for o in offs]
            want = rows[0] | rows[1] << 8 | rows[2] << 16 | rows[3] << 24
            np.testing.assert_array_equal(B[3:3 + n].view(np.uint32), want.astype(np.uint32))
            assert np.all(B[:3] == 77) and np.all(B[3 + n:] == 77)
    for n in (1, 5, 31, 32, 33, 64, 70):
        ncls, zs, zp = 3, n + 9, -7
        masks = np.where(rng.random((ncls, n)) < 0.3, 0, -1).astype(np.int8)
        MK = np.concatenate([np.zeros(4, np.int8), masks.reshape(-1), np.zeros(4, np.int8)])
        Z = np.full(5 + ncls * zs + 4, 55, np.uint8)
        fill(X, 10, n, MK, ncls, Z, zs, zp)
        x8 = (X[10:10 + n].astype(np.int64) + 128).astype(np.uint8)
        for m in range(ncls):
            want = np.where(masks[m] < 0, x8, np.uint8(zp + 128))
            np.testing.assert_array_equal(Z[5 + m * zs:5 + m * zs + n], want)
            assert np.all(Z[5 + m * zs + n:5 + (m + 1) * zs] == 55)  # nothing past the plane
        assert np.all(Z[:5] == 55)


@pytest.mark.skipif(not KC.BOUNDS, reason="runs in the NUMBA_BOUNDSCHECK=1 pass (test_runtime_conv)")
def test_tile_extents_are_checked_under_boundscheck():
    """The LLVM IR tiles' loads and stores are invisible to Numba's bounds checking; under
    NUMBA_BOUNDSCHECK=1 the kernels check each tile's extents first: a destination one element
    short raises IndexError instead of writing past it."""
    geo, o, group = _geometry(FAST_CASES[0])
    W = np.ones(o * geo.c, np.float32)
    lay = KC.conv_layout(geo, o, group, W)
    x = np.ones(geo.c * geo.h * geo.w, np.float32)
    y = np.zeros(o * geo.oh * geo.ow - 1, np.float32)
    with pytest.raises(IndexError):
        KC.conv_f32(x, 0, lay.W, 0, np.zeros(o, np.float32), 0, y, 0, lay.table, 0, 1,
                    np.zeros(lay.f32, np.float32), 0, 0, 0.0, 0.0)
    geo, o, group = _geometry(FAST_CASES[8])  # depthwise
    lay = KC.conv_layout(geo, o, group, np.ones(o * 9, np.float32))
    x = np.ones(geo.c * geo.h * geo.w - 3, np.float32)  # input short
    with pytest.raises(IndexError):
        KC.conv_f32(x, 0, lay.W, 0, np.zeros(o, np.float32), 0, np.zeros(o * geo.oh * geo.ow, np.float32), 0,
                    lay.table, 0, 1, np.zeros(lay.f32, np.float32), 0, 0, 0.0, 0.0)
    assert lay.table[KC.G_DW8] != 0  # DW8: destination, grid scratch and packed weights one short
    x = np.ones(geo.c * geo.h * geo.w, np.float32)
    for y_n, z_n, w_n in [(o * geo.oh * geo.ow - 1, lay.f32, lay.W.size), (o * geo.oh * geo.ow, lay.table[KC.G_ZS] - 1,
                          lay.W.size), (o * geo.oh * geo.ow, lay.f32, lay.W.size - 1)]:
        with pytest.raises(IndexError):
            KC.conv_f32(x, 0, lay.W[:w_n].copy(), 0, np.zeros(o, np.float32), 0, np.zeros(y_n, np.float32), 0,
                        lay.table, 0, 1, np.zeros(z_n, np.float32), 0, 0, 0.0, 0.0)
    geo, o, group = _geometry(FAST_CASES[8])  # int8 depthwise on quads (DWQ): destination, scratch one short
    lay = KC.conv_layout(geo, o, group, np.ones(o * 9, np.int8), bias=np.zeros(o, np.int32), int8=True, u8=True)
    assert lay.path == KC.PATH_DWQ
    xq = np.ones(geo.c * geo.h * geo.w, np.int8)
    for y_n, z_n in [(o * geo.oh * geo.ow - 1, lay.f32), (o * geo.oh * geo.ow, lay.f32 - 1)]:
        with pytest.raises(IndexError):
            KC.qconv_i8(xq, 0, lay.W, 0, np.zeros(o, np.int32), 0, np.ones(o, np.float32), 0, np.zeros(y_n, np.int8),
                        0, lay.table, 0, 1, 0, 0, -128, 127, np.zeros(2, np.int8), 0, np.zeros(z_n, np.float32), 0)
    wino_case = next(c for c in FAST_CASES if c[0] == (16, 21, 19))  # odd sizes on Winograd
    geo, o, group = _geometry(wino_case)  # Winograd: destination and weights one short, scratch
    lay = KC.conv_layout(geo, o, group, np.ones(o * geo.c * 9, np.float32), wino=True)  # 24 short (last M row
    assert lay.path == KC.PATH_WINO  # has up to 23 floats of slack no call touches)
    x = np.ones(geo.c * geo.h * geo.w, np.float32)
    for y_n, z_n, w_n in [(o * geo.oh * geo.ow - 1, lay.f32, lay.W.size), (o * geo.oh * geo.ow, lay.f32 - 24,
                          lay.W.size), (o * geo.oh * geo.ow, lay.f32, lay.W.size - 1)]:
        with pytest.raises(IndexError):
            KC.conv_f32(x, 0, lay.W[:w_n].copy(), 0, np.zeros(o, np.float32), 0, np.zeros(y_n, np.float32), 0,
                        lay.table, 0, 1, np.zeros(z_n, np.float32), 0, 0, 0.0, 0.0)


def test_b_row_sources_for_the_benchmark_shapes():
    """Where the GEMM's B rows come from: input planes (pointwise), shifted plane copies (stride
    1, 1-D or ow == w), per-column (and per row phase) windows of the planes: no im2col; else
    im2col by gathers (small) or by runs (large)."""
    def mode(shape, o, k, stride=(1, 1), pads=((0, 0), (0, 0)), int8=False):
        geo = make_geometry(shape, geometry_attrs(k, stride, (1, 1), pads))
        W = np.zeros(o * shape[0] * k[0] * k[1], np.int8 if int8 else np.float32)
        kw = dict(bias=np.zeros(o, np.int32), int8=True) if int8 else {}
        return int(KC.conv_layout(geo, o, 1, W, **kw).table[KC.G_BMODE])
    assert mode((64, 25, 5), 64, (1, 1)) == KC.BM_PLANES                      # DS-CNN pointwise
    assert mode((1, 28, 28), 6, (5, 5), pads=((2, 2), (2, 2))) == KC.BM_SHIFT  # LeNet-5 conv 1
    assert mode((16, 64), 32, (1, 5), pads=((0, 0), (2, 2))) == KC.BM_SHIFT   # 1-D CNN conv 2
    assert mode((6, 14, 14), 16, (5, 5)) == KC.BM_WINDOW                      # LeNet-5 conv 2 (ow < w)
    assert mode((1, 49, 10), 64, (10, 4), (2, 2), ((4, 5), (1, 2))) == KC.BM_WINDOW  # DS-CNN stem
    assert mode((16, 32, 32), 32, (3, 3), (2, 2), ((1, 1), (1, 1))) == KC.BM_WINDOW  # ResNet-8 stride 2
    assert mode((16, 32, 32), 32, (1, 1), (2, 2)) == KC.BM_WINDOW                    # ResNet-8 projection
    assert mode((16, 32, 32), 32, (3, 3), (2, 2), ((1, 1), (1, 1)), int8=True) == KC.BM_WINDOW
    assert mode((3, 9, 7), 5, (3, 3), (2, 1), ((1, 1), (0, 1))) == KC.BM_WINDOW
    assert mode((3, 9, 7), 5, (3, 3), (2, 1), ((1, 1), (0, 1)), int8=True) == KC.BM_WINDOW  # int8 column stride 1
    assert mode((1, 260, 260), 2, (3, 3), (2, 2), ((1, 1), (1, 1))) == KC.BM_RUNS


def test_stride2_one_pass_windows_are_planned_for_their_geometries_only():
    """The planner records (G_S2K3) the window classes the one-pass stride-2 copies fill (kernel
    columns 0, 1, 2 of row phase 0, then of phase 1): for the float32 and uint8 byte copies of a
    3-wide, stride-2, pad-1 filter over rows of 2 ow columns, ow a multiple of 8; never for the
    int16 copies or other geometries (0: window by window)."""
    def s2k3(shape, o, k, stride, pads, int8=None):
        geo = make_geometry(shape, geometry_attrs(k, stride, (1, 1), pads))
        W = np.ones(o * shape[0] * k[0] * k[1], np.int8 if int8 is not None else np.float32)
        kw = dict(bias=np.zeros(o, np.int32), int8=True, u8=int8 == "u8") if int8 is not None else {}
        t = KC.conv_layout(geo, o, 1, W, **kw).table
        if t[KC.G_S2K3] == 0:
            return None
        classes = t[t[KC.G_AUX2]:t[KC.G_AUX2] + 2 * t[KC.G_NCLS]].reshape(-1, 2)
        return [tuple(int(v) for v in classes[m]) for m in t[t[KC.G_S2K3]:t[KC.G_S2K3] + 6]]
    two = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    res = ((16, 32, 32), 32, (3, 3), (2, 2), ((1, 1), (1, 1)))  # ResNet-8's stride-2 layer
    assert s2k3(*res) == two
    assert s2k3(*res, int8="u8") == two
    assert s2k3(*res, int8="s16") is None                      # int16 copies: window by window
    assert s2k3((8, 16, 16), 12, (3, 3), (2, 2), ((1, 1), (1, 1))) == two   # ow 8
    assert s2k3((2, 9, 48), 3, (3, 3), (1, 2), ((0, 2), (1, 1))) == two[:3] * 2  # row stride 1
    assert s2k3((8, 12, 12), 4, (3, 3), (2, 2), ((1, 1), (1, 1))) is None  # ow 6: no 8-lane step
    assert s2k3((8, 16, 16), 4, (3, 3), (2, 2), ((0, 1), (0, 1))) is None  # no left padding
    assert s2k3((8, 16, 16), 4, (1, 1), (2, 2), ((0, 0), (0, 0))) is None  # 1 x 1 projection


# -- DW8: eight channels in the lanes of a zero-margined grid -------------------------------------
# (in_shape (C, H, W), out channels, kernel, dilation, pads ((t, b), (l, r)))
DW8_CASES = [
    ((64, 25, 5), 64, (3, 3), (1, 1), ((1, 1), (1, 1))),     # DS-CNN depthwise
    ((32, 1, 32), 32, (1, 3), (1, 1), ((0, 0), (1, 1))),     # 1-D CNN depthwise
    ((13, 5, 7), 13, (3, 3), (1, 1), ((1, 1), (1, 1))),      # channels not a multiple of 8, odd plane
    ((3, 3, 3), 3, (3, 3), (1, 1), ((1, 1), (1, 1))),        # 9 positions, one partial group
    ((5, 6, 9), 5, (3, 3), (1, 1), ((0, 0), (1, 1))),        # no row padding (oh < h)
    ((4, 6, 7), 4, (3, 5), (1, 1), ((2, 0), (2, 2))),        # asymmetric rows, kw 5
    ((4, 1, 20), 8, (1, 5), (1, 2), ((0, 0), (4, 4))),       # 1-D, 2 outputs per channel, dilated
    ((7, 1, 23), 7, (1, 5), (1, 3), ((0, 0), (6, 6))),       # 1-D dilated, wide padding
    ((3, 1, 30), 3, (1, 4), (1, 1), ((0, 0), (0, 0))),       # 1-D valid (ow < w)
    ((11, 1, 9), 22, (1, 3), (1, 1), ((0, 0), (2, 0))),      # 1-D, left padding only, x2
    ((17, 2, 4), 17, (3, 3), (1, 1), ((1, 1), (1, 1))),      # plane of 8, taps over padding rows
    ((6, 4, 5), 12, (2, 3), (2, 1), ((1, 1), (1, 1))),       # dilated rows, 2 outputs per channel
]


def _dw8_geometry(case):
    shape, o, kernel, dil, pads = case
    return _geometry((shape, o, shape[0], kernel, (1, 1), dil, pads, None))


@pytest.mark.parametrize("case", DW8_CASES)
def test_dw8_equals_the_masked_copy_tiles_bit_for_bit(case):
    """DW8 (the planner's choice for planes of at least 8 positions) gives the same bits as the
    masked-copy tiles (dw8=False), with and without ReLU, one sample and a batch, writing nothing
    outside the destination; both within 1e-5 of the NumPy twin."""
    rng = np.random.default_rng(21)
    geo, o, group = _dw8_geometry(case)
    m = 3
    n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
    x = _guarded(rng.normal(size=m * n_in).astype(np.float32), 0)
    W = rng.normal(size=o * geo.kh * geo.kw).astype(np.float32)
    b = _guarded(rng.normal(size=o).astype(np.float32), 0)
    lay8 = KC.conv_layout(geo, o, group, W)
    lay = KC.conv_layout(geo, o, group, W, dw8=False)
    assert lay8.path == lay.path == KC.PATH_DW
    assert lay8.table[KC.G_DW8] != 0 and lay.table[KC.G_DW8] == 0
    for relu in (0, 1):
        outs = []
        for ly in (lay8, lay):
            y = np.full(m * n_out + 2 * GUARD, 99, np.float32)
            cols = np.zeros(ly.f32 + 3, np.float32)
            KC.conv_f32(x, GUARD, _guarded(ly.W, 0), GUARD, b, GUARD, y, GUARD, ly.table, 0, m, cols, 3, relu, 0.0, 0.0)
            assert np.all(y[:GUARD] == 99) and np.all(y[GUARD + m * n_out:] == 99)
            outs.append(y)
        np.testing.assert_array_equal(outs[0].view(np.int32), outs[1].view(np.int32))
        want = np.full_like(outs[0], 99)
        KC.conv_f32_ref(x, GUARD, _guarded(W, 0), GUARD, b, GUARD, want, GUARD, lay8.table, 0, m, act=relu)
        np.testing.assert_allclose(outs[0], want, rtol=0, atol=1e-5 * (geo.kh * geo.kw + 1))


def test_dw8_is_chosen_for_planes_of_eight_positions_or_more():
    """DW8 needs DW8 input and output positions (its steps of eight never read or write past a
    plane); smaller planes keep the masked-copy tiles, as do int8 and 1-D planes of
    DW8_ONE_CLASS_MAX outputs or more (one plain copy, no transposes)."""
    def dw8(shape, k, pads, int8=False):
        geo = make_geometry(shape, geometry_attrs(k, (1, 1), (1, 1), pads))
        W = np.ones(shape[0] * k[0] * k[1], np.int8 if int8 else np.float32)
        kw = dict(bias=np.zeros(shape[0], np.int32), int8=True, u8=False) if int8 else {}  # u8: DWQ instead
        lay = KC.conv_layout(geo, shape[0], shape[0], W, **kw)
        assert lay.path == KC.PATH_DW
        return bool(lay.table[KC.G_DW8])
    assert dw8((64, 25, 5), (3, 3), ((1, 1), (1, 1)))
    assert dw8((4, 8), (1, 3), ((0, 0), (1, 1)))
    assert not dw8((4, 7), (1, 3), ((0, 0), (1, 1)))           # 7 positions
    assert not dw8((4, 9), (1, 3), ((0, 0), (0, 0)))           # 7 outputs
    assert not dw8((64, 25, 5), (3, 3), ((1, 1), (1, 1)), int8=True)
    assert dw8((16, 63), (1, 5), ((0, 0), (2, 2)))
    assert not dw8((16, 64), (1, 5), ((0, 0), (2, 2)))            # 1-D from DW8_ONE_CLASS_MAX outputs
    assert dw8((16, 64, 64), (3, 3), ((1, 1), (1, 1)))            # 2-D: column classes, any size


_DW8_RUN = []  # the compiled driver, built once per test process


def _dw8_run(X, xo, hw, o0, og, olast, Z, zo, PI, pio, PB, pbo, plane, Tt, to, nt, W, wo, b, bo, nch, D, do, ds,
             relu):
    if not _DW8_RUN:
        from numba import njit

        @njit(_nrt=False)
        def run(X, xo, hw, o0, og, olast, Z, zo, PI, pio, PB, pbo, plane, Tt, to, nt, W, wo, b, bo, nch, D, do, ds,
                relu):
            T.dw8_pack(X, xo, hw, o0, og, olast, Z, zo, PI, pio)
            T.dw8_f32(Z, zo, PB, pbo, plane, Tt, to, nt, W, wo, b, bo, nch, D, do, ds, relu)
        _DW8_RUN.append(run)
    _DW8_RUN[0](X, xo, hw, o0, og, olast, Z, zo, PI, pio, PB, pbo, plane, Tt, to, nt, W, wo, b, bo, nch, D, do, ds,
                relu)


@pytest.mark.parametrize("case", [DW8_CASES[2], DW8_CASES[6], DW8_CASES[10], DW8_CASES[11]])
@pytest.mark.parametrize("o0", [0, 8, 16])
def test_dw8_pack_and_tile_match_numpy(case, o0):
    """kernels_tile.dw8_pack writes lane l of grid position PI[k] with plane (min(o0 + l, olast)
    // og)'s x[k] and nothing else; dw8_f32 is bias, then fma(W[t, l], grid[PB[k] + T[t]], acc)
    over the taps in order, ReLU, for lanes l < nch only: against NumPy (float64 products and sums
    rounded to float32 once per tap: an FMA), on a partial last group of channels."""
    rng = np.random.default_rng(22)
    geo, o, group = _dw8_geometry(case)
    og = o // geo.c
    hw, plane = geo.h * geo.w, geo.oh * geo.ow
    W = rng.normal(size=o * geo.kh * geo.kw).astype(np.float32)
    lay = KC.conv_layout(geo, o, group, W)
    g = lay.table
    pa, ta, nt, zs = g[KC.G_DW8], g[KC.G_AUX], g[KC.G_NT], g[KC.G_ZS]
    PI, PB, offs = g[pa:pa + hw], g[pa + hw:pa + hw + plane], g[ta:ta + nt]
    if o0 >= o:
        pytest.skip("no such group")
    nch = min(8, o - o0)
    x = rng.normal(size=geo.c * hw + 4).astype(np.float32)
    b = rng.normal(size=o).astype(np.float32)
    Z = np.full(zs + 8, 0.0, np.float32)
    Z[-8:] = 77.0
    D = np.full(o * plane + 8, 55.0, np.float32)
    _dw8_run(x, 4, hw, o0, og, o - 1, Z, 0, g, pa, g, pa + hw, plane, g, ta, nt, lay.W, o0 * nt, b, o0, nch,
             D, o0 * plane, plane, 1)
    # the pack
    grid = np.zeros(zs, np.float32)
    for lane in range(8):
        c = min(o0 + lane, o - 1) // og
        grid[PI + lane] = x[4 + c * hw:4 + (c + 1) * hw]
    np.testing.assert_array_equal(Z[:zs], grid)
    assert np.all(Z[zs:] == 77.0)
    # the tile
    W8 = lay.W[o0 * nt:(o0 + 8) * nt].reshape(nt, 8)  # (groups, taps, 8 lanes), zero past o
    acc = np.repeat(b[o0:o0 + nch][:, None], plane, axis=1)
    for t in range(nt):
        xs = np.stack([grid[PB + offs[t] + lane] for lane in range(nch)])
        acc = (W8[t, :nch].astype(np.float64)[:, None] * xs + acc.astype(np.float64)).astype(np.float32)
    want = D.copy()
    want[o0 * plane:(o0 + nch) * plane] = np.where(acc < 0, np.float32(0), acc).reshape(-1)  # ReLU
    np.testing.assert_array_equal(D, want)


@pytest.mark.parametrize("case,dw8", [(FAST_CASES[0], True), (FAST_CASES[4], True), (FAST_CASES[8], True),
                                      (FAST_CASES[8], False), (FAST_CASES[9], True)])
def test_fused_relu_passes_nan_and_negative_zero_and_floors_minus_inf(case, dw8):
    """The float32 epilogues' ReLU is 0 if v < 0 else v (one vmaxps(floor, v)): NaN and +inf
    pass, -inf becomes 0 (stays -inf without ReLU), and a depthwise output of -0.0 (bias -0.0,
    then fma(-0.0, x > 0, acc) per tap) keeps its sign, with and without ReLU; a max(v, 0) or a
    select with the operands swapped would turn NaN into 0 or -0.0 into +0.0."""
    geo, o, group = _geometry(case)
    n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
    plane = geo.oh * geo.ow
    rng = np.random.default_rng(5)
    x = rng.uniform(0.1, 1.0, n_in).astype(np.float32)
    W = rng.uniform(-1, 1, (o, (geo.c // group) * geo.kh * geo.kw)).astype(np.float32)
    b = rng.uniform(-1, 1, o).astype(np.float32)
    b[:3] = [np.nan, -np.inf, np.inf]
    dw = case[-1] == KC.PATH_DW
    if dw:
        W[3] = -0.0
        b[3] = -0.0
    lay = KC.conv_layout(geo, o, group, W.reshape(-1), dw8=dw8)
    assert (lay.table[KC.G_DW8] != 0) == (dw and dw8)
    for relu in (0, 1):
        y = np.full(n_out, 99, np.float32)
        KC.conv_f32(x, 0, lay.W, 0, b, 0, y, 0, lay.table, 0, 1, np.zeros(lay.f32 + 8, np.float32), 0, relu, 0.0, 0.0)
        y = y.reshape(o, plane)
        assert np.all(np.isnan(y[0]))
        assert np.all(y[1] == (0.0 if relu else -np.inf))
        assert np.all(y[2] == np.inf)
        if dw:
            assert np.all(y[3] == 0.0) and np.all(np.signbit(y[3])), (relu, y[3][:4])
