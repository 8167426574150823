"""Fast conv paths of rtinfer.kernels_conv against the NumPy twins: the register-tiled
pointwise / im2col GEMM (float32) and the masked flat depthwise path (stride 1, ow == w),
float32 within 1e-5 of the summed magnitudes, int8 bit-exact; a batch equals one sample at a
time bit for bit; no write outside the destination; the tile's output order is fixed."""

from __future__ import annotations

import numpy as np
import pytest

from rtinfer import kernels_conv as KC
from rtinfer.reference_conv import geometry_attrs, make_geometry

GUARD = 5

# (in_shape (C, H, W), out channels, group, kernel, stride, dilation, pads ((t, b), (l, r)))
FAST_CASES = [
    ((64, 25, 5), 64, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),     # DS-CNN pointwise
    ((7, 3, 5), 13, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),       # plane 15 < 16, O % 6 != 0
    ((5, 1, 37), 6, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),       # 1-D pointwise, 3 blocks
    ((1, 49, 10), 64, 1, (10, 4), (2, 2), (1, 1), ((4, 5), (1, 2))),    # DS-CNN stem (im2col + tile)
    ((3, 7, 6), 9, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),        # stride 1 im2col + tile
    ((64, 25, 5), 64, 64, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),    # DS-CNN depthwise
    ((4, 6, 7), 4, 4, (3, 5), (1, 1), (1, 1), ((2, 0), (2, 2))),        # depthwise, asymmetric rows
    ((4, 1, 20), 8, 4, (1, 5), (1, 1), (1, 2), ((0, 0), (4, 4))),       # 1-D depthwise x2, dilated
    ((6, 5, 5), 3, 3, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),        # 2 channels per group
]


def _geometry(case):
    shape, o, group, kernel, stride, dil, pads = case
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
    assert geo.ow == geo.w or geo.sh != 1 or group == 1  # the cases reach the fast paths
    g = KC.table_from_geometry(geo, o, group)
    m = 3
    n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
    x = _guarded(rng.uniform(-1, 1, m * n_in).astype(np.float32), 0)
    W = _guarded(rng.uniform(-1, 1, o * (geo.c // group) * geo.kh * geo.kw).astype(np.float32), 0)
    b = _guarded(rng.uniform(-1, 1, o).astype(np.float32), 0)
    cols = np.full(KC.conv_scratch(geo, group)["f32"] + 2, np.float32(np.nan))  # scratch starts dirty
    got = np.full(m * n_out + 2 * GUARD, 99, np.float32)
    want = got.copy()
    KC.conv_f32(x, GUARD, W, GUARD, b, GUARD, got, GUARD, g, 0, m, cols, 2)
    KC.conv_f32_ref(x, GUARD, W, GUARD, b, GUARD, want, GUARD, g, 0, m)
    assert np.all(got[:GUARD] == 99) and np.all(got[GUARD + m * n_out:] == 99)
    scale = (geo.c // group) * geo.kh * geo.kw + 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
    one = np.full_like(got, 99)
    for s in range(m):
        KC.conv_f32(x, GUARD + s * n_in, W, GUARD, b, GUARD, one, GUARD + s * n_out, g, 0, 1, cols, 2)
    np.testing.assert_array_equal(one, got)


def test_pointwise_tile_is_one_fma_chain_then_bias():
    """Each output of the tiled pointwise path is fma(x[c], W[o, c], acc) for c in order from 0,
    then + b[o] (float32): the NumPy twin of that order gives the same bits."""
    rng = np.random.default_rng(5)
    c, o, hw = 19, 7, 21
    geo, _, _ = _geometry(((c, 3, 7), o, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))))
    g = KC.table_from_geometry(geo, o, 1)
    x = rng.normal(size=c * hw).astype(np.float32)
    W = rng.normal(size=o * c).astype(np.float32)
    b = rng.normal(size=o).astype(np.float32)
    cols = np.zeros(KC.conv_scratch(geo, 1)["f32"], np.float32)
    y = np.zeros(o * hw, np.float32)
    KC.conv_f32(x, 0, W, 0, b, 0, y, 0, g, 0, 1, cols, 0)
    X = x.reshape(c, hw).astype(np.float64)
    Wm = W.reshape(o, c).astype(np.float64)
    acc = np.zeros((o, hw), np.float32)
    for k in range(c):  # float32 fma: the exact product-sum rounded once (exact in float64 here)
        acc = (Wm[:, k:k + 1] * X[k][None, :] + acc.astype(np.float64)).astype(np.float32)
    want = (acc + b[:, None]).reshape(-1)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("case", FAST_CASES[5:])
def test_qconv_i8_depthwise_fast_path_is_bit_exact(case):
    rng = np.random.default_rng(13)
    geo, o, group = _geometry(case)
    need = KC.conv_scratch(geo, group)
    g = np.concatenate([KC.table_from_geometry(geo, o, group), np.full(need["i32"], -7, np.int32)])
    cols = np.full(need["i8"], 55, np.int8)
    m = 2
    n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
    x = _guarded(rng.integers(-128, 128, m * n_in).astype(np.int8), 0)
    W = _guarded(rng.integers(-127, 128, o * (geo.c // group) * geo.kh * geo.kw).astype(np.int8), 0)
    bias = _guarded(rng.integers(-5000, 5000, o).astype(np.int32), 0)
    M = _guarded(rng.uniform(1e-3, 2e-2, o).astype(np.float32), 0)
    for x_zp, y_zp, qmin, qmax in [(0, 0, -128, 127), (-7, 5, 5, 127), (100, -128, -128, 120)]:
        got = np.full(m * n_out + 2 * GUARD, 99, np.int8)
        want = got.copy()
        KC.qconv_i8(x, GUARD, W, GUARD, bias, GUARD, M, GUARD, got, GUARD, g, 0, m, x_zp, y_zp, qmin, qmax, cols, 0)
        KC.qconv_i8_ref(x, GUARD, W, GUARD, bias, GUARD, M, GUARD, want, GUARD, g, 0, m, x_zp, y_zp, qmin, qmax)
        np.testing.assert_array_equal(got, want)
        assert len(np.unique(got)) > 10
