"""Compiled conv/pool kernels (rtinfer.kernels_conv) against their NumPy twins: float32 within
1e-5 of the summed magnitudes, int8 bit-exact; on every kernel path (the planner's choice from
conv_layout, the GEMM path forced, both int8 GEMM tiles), every padding mode, stride, dilation and
group count;
batches equal single samples; writes stay in the destination region; exact .5 ties round half to
even; the twins agree with the reference executor's golden semantics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtinfer import kernels_conv as KC
from rtinfer import kernels_tile as T
from rtinfer.ops import Act
from rtinfer.reference_conv import geometry_attrs, make_geometry, pool_counts

GUARD = 7  # elements before and after every region, to catch stray writes

# (in_shape (C, H, W), out channels, group, kernel, stride, dilation, pads ((t, b), (l, r)))
CONV_CASES = [
    ((3, 1, 17), 5, 1, (1, 3), (1, 1), (1, 1), ((0, 0), (1, 1))),
    ((4, 1, 20), 4, 4, (1, 5), (1, 2), (1, 1), ((0, 0), (2, 2))),          # depthwise 1-D, stride 2
    ((2, 1, 15), 6, 2, (1, 3), (1, 1), (1, 3), ((0, 0), (3, 2))),          # dilation, asymmetric pads
    ((3, 7, 6), 4, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    ((4, 9, 8), 8, 2, (2, 3), (2, 3), (2, 1), ((1, 0), (0, 2))),
    ((6, 5, 5), 6, 6, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),           # depthwise 2-D
    ((8, 4, 4), 5, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),           # pointwise
    ((1, 49, 10), 8, 1, (10, 4), (2, 2), (1, 1), ((4, 5), (1, 2))),        # DS-CNN stem shape
    ((3, 5, 4), 5, 1, (1, 1), (1, 1), (1, 1), ((1, 0), (0, 1))),           # 1x1 with padding
    ((4, 6, 7), 4, 2, (3, 2), (1, 1), (2, 3), ((2, 1), (3, 0))),           # stride 1, dilated, asymmetric
    ((2, 6, 6), 3, 1, (2, 2), (1, 1), (1, 1), ((0, 0), (0, 0))),           # stride 1, no padding
    ((5, 7, 5), 5, 5, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),           # depthwise, ow == w (DW path)
    ((3, 6, 4), 6, 3, (3, 2), (1, 1), (2, 1), ((2, 2), (1, 0))),           # 2 outputs per channel, dilated (DW)
    ((7, 1, 23), 7, 7, (1, 5), (1, 1), (1, 3), ((0, 0), (6, 6))),          # 1-D depthwise, dilated (DW)
    ((3, 1, 30), 3, 3, (1, 4), (1, 1), (1, 1), ((0, 0), (0, 0))),          # 1-D depthwise valid (DW, ow < w)
    ((6, 25, 5), 6, 6, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),          # DS-CNN depthwise shape (DWQ: 4 tiles, the last overlapping)
    ((4, 1, 70), 8, 4, (1, 7), (1, 1), (1, 1), ((0, 0), (4, 2))),          # 1-D depthwise k7, 2 outputs per channel (DWQ: 2 quad groups)
    ((9, 5, 3), 13, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),          # pointwise, K odd, O % 6 != 0
    ((2, 11, 9), 7, 1, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),          # strided im2col by gathers
    ((16, 40, 40), 4, 2, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),        # stride-2 windows per group
    ((1, 260, 260), 2, 1, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),       # im2col by runs (too big for windows, gathers)
    ((3, 9, 7), 5, 1, (3, 3), (2, 1), (1, 1), ((1, 1), (0, 1))),           # stride (2, 1): windows (int8 too: int16 straight from the codes)
    ((3, 13, 11), 5, 1, (3, 3), (2, 2), (2, 2), ((2, 1), (0, 3))),         # stride-2 windows, dilated, asymmetric
    ((5, 10, 17), 6, 1, (1, 1), (2, 2), (1, 1), ((0, 0), (0, 0))),         # 1x1 stride 2 (ow 9: two 8-column steps)
    ((3, 7, 37), 4, 1, (3, 4), (2, 2), (1, 2), ((1, 1), (3, 0))),          # stride 2, ow 17, dilated columns
    ((2, 12, 13), 4, 1, (3, 3), (3, 3), (1, 1), ((1, 1), (1, 1))),         # stride 3 windows
    ((3, 1, 40), 5, 1, (1, 7), (1, 1), (1, 1), ((0, 0), (3, 3))),          # 1-D im2col by runs
    ((4, 6, 5), 14, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),          # shifted copies, rows 6 + 4 + 4
    ((4, 9, 9), 16, 2, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),          # windows per group, rows 4 + 4
    ((5, 9, 11), 7, 1, (3, 3), (1, 1), (1, 1), ((0, 2), (2, 1))),          # Winograd: odd oh, ow, asymmetric pads
    ((2, 6, 3), 4, 1, (3, 3), (1, 1), (1, 1), ((0, 0), (0, 0))),           # Winograd: one tile column, 4 x 1 outputs
    ((3, 5, 37), 9, 1, (3, 3), (1, 1), (1, 1), ((2, 2), (0, 0))),          # Winograd: 3 x 18 tiles (8 + 8 + 2 a row)
    ((3, 4, 5), 4, 1, (3, 3), (1, 1), (1, 1), ((5, 3), (0, 6))),           # Winograd: pads past the kernel, outputs of padding only
]


def _case_geometry(case):
    shape, o, group, kernel, stride, dil, pads = case
    attrs = geometry_attrs(kernel, stride, dil, pads)
    in_shape = shape if shape[1] != 1 else (shape[0], shape[2])
    return make_geometry(in_shape, attrs), o, group


def _buffers(rng, n, dtype, lo=-1.0, hi=1.0):
    if dtype == np.int8:
        return rng.integers(-128, 128, size=n + 2 * GUARD).astype(np.int8)
    return rng.uniform(lo, hi, size=n + 2 * GUARD).astype(np.float32)


def _run_both(kernel, twin, args_for, dst_size, dst_dtype):
    """Run kernel and twin on identical copies; return both destination arrays."""
    out = []
    for fn in (kernel, twin):
        dst = np.full(dst_size + 2 * GUARD, 99, dtype=dst_dtype)
        fn(*args_for(dst))
        out.append(dst)
    for dst in out:  # guards untouched
        assert np.all(dst[:GUARD] == 99) and np.all(dst[GUARD + dst_size:] == 99)
    return out

def conv_operands(geo, o, group, W, bias=None, int8=False, path="auto", **attrs):
    """(layout, table, W at GUARD, f32 scratch, i8 scratch) as the planner lays them out; path
    "auto" (conv_layout's choice), "gemm" (the GEMM path even where DW or Winograd applies), "wino"
    (float32 Winograd wherever the geometry allows it), "u8" / "s16" (int8 GEMM on uint8 quads /
    int16 pairs)."""
    u8 = {"u8": True, "s16": False, "dwq": True, "dw16": False}.get(path)
    wino = {"auto": None, "wino": True}.get(path, False)
    lay = KC.conv_layout(geo, o, group, np.asarray(W), bias=bias, int8=int8, u8=u8, dw=path in ("auto", "dwq", "dw16"),
                         wino=wino,
                         **attrs)
    Wg = np.concatenate([np.zeros(GUARD, lay.W.dtype), lay.W, np.zeros(GUARD, lay.W.dtype)])
    # scratch as the planner allocates it: prefilled once (the copies' padding is never written)
    return lay, lay.table, Wg, lay.scratch_f32(3), np.zeros(lay.i8 + 3, np.int8)


def paths_for(group, int8):
    """The kernel paths a test runs: the planner's choice, GEMM forced, and for int8 both GEMM tiles
    and, for grouped convolutions, both depthwise tiles (where the DW path takes the geometry)."""
    return ["auto", "gemm"] + (["u8", "s16"] + (["dwq", "dw16"] if group > 1 else []) if int8 else ["wino"])


def _winograd_geometry(case):
    return case[2:6] == (1, (3, 3), (1, 1), (1, 1))


@pytest.mark.parametrize("case,path", [(case, path) for case in CONV_CASES for path in ("auto", "gemm", "wino")
                                       if path != "wino" or _winograd_geometry(case)])
@pytest.mark.parametrize("m", [1, 3])
def test_conv_f32_matches_twin(case, m, path):
    rng = np.random.default_rng(len(case[0]) + m)
    geo, o, group = _case_geometry(case)
    n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
    x = _buffers(rng, m * n_in, np.float32)
    wsize = o * (geo.c // group) * geo.kh * geo.kw
    W = _buffers(rng, wsize, np.float32)
    b = _buffers(rng, o, np.float32)
    lay, g, Wk, cols, _ = conv_operands(geo, o, group, W[GUARD:GUARD + wsize], path=path)
    assert lay.path == KC.PATH_WINO or path != "wino"
    g = np.concatenate([np.zeros(5, np.int32), g])  # the table at an offset
    scale = np.abs(W).max() * (geo.c // group) * geo.kh * geo.kw + 1.0
    for act, alpha, beta in ((0, 0.0, 0.0), (int(Act.RELU), 0.0, 0.0), (int(Act.TANH), 0.0, 0.0)):
        got = np.full(m * n_out + 2 * GUARD, 99, np.float32)
        KC.conv_f32(x, GUARD, Wk, GUARD, b, GUARD, got, GUARD, g, 5, m, cols, 3, act, alpha, beta)
        want = np.full_like(got, 99)
        KC.conv_f32_ref(x, GUARD, W, GUARD, b, GUARD, want, GUARD, g, 5, m, act=act, alpha=alpha, beta=beta)
        assert np.all(got[:GUARD] == 99) and np.all(got[GUARD + m * n_out:] == 99)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
    if m == 3:  # one sample at a time gives the same bits
        one = np.full_like(got, 99)
        for s in range(m):
            KC.conv_f32(x, GUARD + s * n_in, Wk, GUARD, b, GUARD, one, GUARD + s * n_out, g, 5, 1, cols, 3,
                        int(Act.TANH), 0.0, 0.0)
        np.testing.assert_array_equal(one, got)


def _qconv_both(geo, o, group, xq, Wq, bias, M, m, x_zp, y_zp, qmin, qmax, path):
    """(kernel output, twin output) with GUARD elements of 99 around each."""
    n_out = o * geo.oh * geo.ow
    wsize = Wq.size - 2 * GUARD
    lay, g, Wk, fs, cols = conv_operands(geo, o, group, Wq[GUARD:GUARD + wsize], bias=bias[GUARD:GUARD + o],
                                         int8=True, path=path, x_zp=x_zp, y_zp=y_zp, qmin=qmin, qmax=qmax)
    got = np.full(m * n_out + 2 * GUARD, 99, np.int8)
    want = got.copy()
    KC.qconv_i8(xq, GUARD, Wk, GUARD, bias, GUARD, M, GUARD, got, GUARD, g, 0, m, x_zp, y_zp, qmin, qmax,
                cols, 2, fs, 1)
    KC.qconv_i8_ref(xq, GUARD, Wq, GUARD, bias, GUARD, M, GUARD, want, GUARD, g, 0, m, x_zp, y_zp, qmin, qmax)
    assert np.all(got[:GUARD] == 99) and np.all(got[GUARD + m * n_out:] == 99)
    return got, want, lay


@pytest.mark.parametrize("case", CONV_CASES)
def test_qconv_i8_is_bit_exact(case):
    rng = np.random.default_rng(11)
    geo, o, group = _case_geometry(case)
    m = 2
    n_in = geo.c * geo.h * geo.w
    wsize = o * (geo.c // group) * geo.kh * geo.kw
    x = _buffers(rng, m * n_in, np.int8)
    bias = rng.integers(-5000, 5000, size=o + 2 * GUARD).astype(np.int32)
    M = rng.uniform(1e-4, 3e-3, size=o + 2 * GUARD).astype(np.float32)
    M_big = (M.astype(np.float64) * 3e4).astype(np.float32)  # |acc * M| beyond 2^24: saturates exactly
    for path in paths_for(group, True):
        # full-range weights (the u8 tile forced onto them would saturate: 7-bit weights there)
        hi = 64 if path in ("u8", "dwq") and not T.quads_exact_any() else 128
        W = rng.integers(-hi + 1, hi, size=wsize + 2 * GUARD).astype(np.int8)
        # x_zp = -128 (inputs after a ReLU): the u8 tile's copies are bytes x + 128
        for x_zp, y_zp, qmin, qmax in [(0, 0, -128, 127), (-7, 5, 5, 127), (100, -128, -128, 120), (-128, 3, -128, 127)]:
            for mult in (M_big, M):
                got, want, lay = _qconv_both(geo, o, group, x, W, bias, mult, m, x_zp, y_zp, qmin, qmax, path)
                np.testing.assert_array_equal(got, want, err_msg=f"path {path} (layout {lay.path})")
                if mult is M:
                    assert len(np.unique(got)) > 5  # not all saturated


@pytest.mark.parametrize("case", CONV_CASES)
def test_qconv_i8_rounds_exact_ties_half_to_even(case):
    """M = 0.5 and 0.25 make many acc * M exact .5 ties: every path rounds them half to even
    (the twin's np.rint), not half away from zero."""
    from rtinfer.reference_conv import conv_sum, windows
    rng = np.random.default_rng(12)
    geo, o, group = _case_geometry(case)
    m = 2
    n_in = geo.c * geo.h * geo.w
    cg = geo.c // group
    wsize = o * cg * geo.kh * geo.kw
    x = np.full(m * n_in + 2 * GUARD, 99, np.int8)
    x[GUARD:GUARD + m * n_in] = rng.integers(-3, 4, m * n_in)
    W = rng.integers(-3, 4, size=wsize + 2 * GUARD).astype(np.int8)
    bias = rng.integers(-9, 10, size=o + 2 * GUARD).astype(np.int32)
    acc = conv_sum(windows(x[GUARD:GUARD + m * n_in].reshape(m, -1).astype(np.int64), geo, 0),
                   W[GUARD:GUARD + wsize].reshape(o, cg, geo.kh, geo.kw).astype(np.int64), geo, group)
    acc = acc + bias[GUARD:GUARD + o].astype(np.int64)[None, :, None]
    for mval in (0.5, 0.25):
        ties = np.abs(acc * mval - np.floor(acc * mval)) == 0.5
        assert ties.sum() >= 3
        even = np.rint(acc * mval)  # half to even
        assert np.any(even[ties] != np.floor(acc * mval + 0.5)[ties])  # differs from half up somewhere
        M = np.full(o + 2 * GUARD, mval, np.float32)
        for path in paths_for(group, True):
            got, want, _ = _qconv_both(geo, o, group, x, W, bias, M, m, 0, 1, -128, 127, path)
            np.testing.assert_array_equal(got, want)
            y = got[GUARD:GUARD + acc.size].reshape(acc.shape).astype(np.int64) - 1
            np.testing.assert_array_equal(y[ties], even[ties])


def _garbage(rng, n, dtype):
    """n elements of random bits (float32: NaNs, infinities and subnormals among them)."""
    return rng.integers(0, 256, 4 * n, dtype=np.uint8).view(np.int32 if dtype == np.int32 else np.float32)


@pytest.mark.parametrize("case", CONV_CASES)
def test_work_holds_nothing_between_calls(case):
    """The work the planner shares between layers (kernels_conv, Work: the int8 GEMM's packed B
    rows, Winograd's V and M) starts as random bits before every call: the outputs are the bits
    of the layout that keeps its work to itself (float32) and of the twin (int8)."""
    rng = np.random.default_rng(21)
    geo, o, group = _case_geometry(case)
    m = 2
    n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
    wsize = o * (geo.c // group) * geo.kh * geo.kw
    ran = 0
    x = _buffers(rng, m * n_in, np.float32)
    W = _buffers(rng, wsize, np.float32)[GUARD:GUARD + wsize]
    b = _buffers(rng, o, np.float32)
    for path in ("auto", "gemm", "wino") if _winograd_geometry(case) else ("auto",):
        wino = {"auto": None, "wino": True}.get(path, False)
        lay = KC.conv_layout(geo, o, group, W, wino=wino, shared_work=True)
        assert (lay.work > 0) == (lay.path == KC.PATH_WINO)
        if not lay.work:
            continue
        own, g0, Wk, cols0, _ = conv_operands(geo, o, group, W, path=path)
        want = np.zeros(m * n_out, np.float32)
        KC.conv_f32(x, GUARD, Wk, GUARD, b, GUARD, want, 0, g0, 0, m, cols0, 3, int(Act.RELU), 0.0, 0.0)
        g = lay.table.copy()
        g[KC.G_WORK] = lay.f32  # relative to the scratch: right after it
        for _ in range(2):
            cols = np.concatenate([lay.scratch_f32(), _garbage(rng, lay.work, np.float32)])
            got = np.zeros_like(want)
            KC.conv_f32(x, GUARD, Wk, GUARD, b, GUARD, got, 0, g, 0, m, cols, 0, int(Act.RELU), 0.0, 0.0)
            np.testing.assert_array_equal(got, want)
        ran += 1
    xq = _buffers(rng, m * n_in, np.int8)
    bias = rng.integers(-5000, 5000, size=o).astype(np.int32)
    M = rng.uniform(1e-4, 3e-3, size=o).astype(np.float32)
    for u8 in (True, False):
        hi = 64 if u8 and not T.quads_exact_any() else 128
        Wq = rng.integers(-hi + 1, hi, size=wsize).astype(np.int8)
        attrs = dict(x_zp=-7, y_zp=5, qmin=-128, qmax=127)
        lay = KC.conv_layout(geo, o, group, Wq, bias=bias, int8=True, u8=u8, dw=False, shared_work=True, **attrs)
        want = np.zeros(m * n_out, np.int8)
        KC.qconv_i8_ref(xq, GUARD, Wq, 0, bias, 0, M, 0, want, 0, lay.table, 0, m, -7, 5, -128, 127)
        if not lay.work:  # the in-place int16 tiles read copies, not packed rows
            assert not u8 and lay.table[KC.G_BMODE] in (KC.BM_SHIFT, KC.BM_WINDOW)
            continue
        g = np.concatenate([lay.table, np.zeros(lay.work, np.int32)])
        g[KC.G_ACC] = lay.table.size  # relative to the table: right after it
        for _ in range(2):
            g[lay.table.size:] = _garbage(rng, lay.work, np.int32)
            got = np.zeros_like(want)
            KC.qconv_i8(xq, GUARD, lay.W, 0, bias, 0, M, 0, got, 0, g, 0, m, -7, 5, -128, 127,
                        np.zeros(lay.i8, np.int8), 0, lay.scratch_f32(), 0)
            np.testing.assert_array_equal(got, want, err_msg=f"u8 {u8}")
        ran += 1
    assert ran >= 1


def _dirty(rng, now, before, *after):
    """Make ``now`` (in place: the depthwise grids align to its address) ``before`` with random
    bytes where it or any of ``after`` differs from ``before`` (the copies write bytes, int16 and
    float32 elements: a float32 scratch element may hold written bytes beside margin bytes)."""
    b = before.view(np.uint8)
    changed = now.view(np.uint8) != b
    for a in after:
        changed |= a.view(np.uint8) != b
    d = b.copy()
    d[changed] = rng.integers(0, 256, size=int(changed.sum()), dtype=np.uint8)
    now.view(np.uint8)[:] = d
    return now


@pytest.mark.parametrize("case", CONV_CASES)
def test_scratch_is_rewritten_before_it_is_read(case):
    """What lets the planner share one scratch between two layers of the same geometry
    (kernels_conv, Scratch): every element a call writes is written before it is read. Two
    calls on different inputs find the elements the copies write (the rest, the prefilled
    margins, stay as the planner left them); those elements then hold random bits, and a third
    input gives the bits of a fresh scratch, on every path and both dtypes (the same buffers
    throughout, as in a plan: the depthwise grids align to the buffer's address)."""
    rng = np.random.default_rng(22)
    geo, o, group = _case_geometry(case)
    n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
    wsize = o * (geo.c // group) * geo.kh * geo.kw
    xs = [_buffers(rng, n_in, np.float32) for _ in range(3)]
    W = _buffers(rng, wsize, np.float32)[GUARD:GUARD + wsize]
    b = _buffers(rng, o, np.float32)
    for path in ("auto", "gemm") + (("wino",) if _winograd_geometry(case) else ()):
        lay, g, Wk, _, _ = conv_operands(geo, o, group, W, path=path)

        def run(x, cols):
            y = np.zeros(n_out, np.float32)
            KC.conv_f32(x, GUARD, Wk, GUARD, b, GUARD, y, 0, g, 0, 1, cols, 0, int(Act.RELU), 0.0, 0.0)
            return y
        init = lay.scratch_f32()
        cols = init.copy()
        run(xs[0], cols)
        c1 = cols.copy()
        run(xs[1], cols)
        want = run(xs[2], init.copy())
        np.testing.assert_array_equal(run(xs[2], _dirty(rng, cols, init, c1)), want, err_msg=path)
    xq = [_buffers(rng, n_in, np.int8) for _ in range(3)]
    bias = rng.integers(-5000, 5000, size=o).astype(np.int32)
    M = rng.uniform(1e-4, 3e-3, size=o).astype(np.float32)
    for path in ("auto", "u8", "s16") + (("dwq", "dw16") if group > 1 else ()):
        hi = 64 if path in ("u8", "dwq") and not T.quads_exact_any() else 128
        Wq = rng.integers(-hi + 1, hi, size=wsize).astype(np.int8)
        lay, g0, Wk, _, _ = conv_operands(geo, o, group, Wq, bias=bias, int8=True, path=path,
                                          x_zp=-7, y_zp=5, qmin=-128, qmax=127)

        def qrun(x, g, c8, f32):
            y = np.zeros(n_out, np.int8)
            KC.qconv_i8(x, GUARD, Wk, GUARD, bias, 0, M, 0, y, 0, g, 0, 1, -7, 5, -128, 127, c8, 0, f32, 0)
            return y
        init = (g0.copy(), np.zeros(lay.i8, np.int8), lay.scratch_f32())
        state = tuple(a.copy() for a in init)
        qrun(xq[0], *state)
        s1 = tuple(a.copy() for a in state)
        qrun(xq[1], *state)
        want = qrun(xq[2], *(a.copy() for a in init))
        dirty = [_dirty(rng, a2, a0, a1) for a0, a1, a2 in zip(init, s1, state)]
        np.testing.assert_array_equal(qrun(xq[2], *dirty), want, err_msg=path)


POOL_CASES = [  # (in_shape (C, H, W), kernel, stride, pads, dilation)
    ((3, 1, 17), (1, 2), (1, 2), ((0, 0), (0, 0)), (1, 1)),
    ((3, 1, 16), (1, 3), (1, 2), ((0, 0), (1, 1)), (1, 1)),
    ((2, 7, 6), (2, 2), (2, 2), ((0, 1), (0, 0)), (1, 1)),
    ((4, 5, 7), (3, 3), (2, 1), ((1, 1), (2, 1)), (1, 1)),
    ((2, 6, 5), (3, 2), (1, 1), ((2, 0), (1, 1)), (1, 1)),
    ((2, 9, 8), (2, 3), (1, 2), ((1, 2), (2, 1)), (3, 2)),     # dilated
    ((3, 1, 20), (1, 3), (1, 1), ((0, 0), (3, 3)), (1, 2)),    # dilated 1-D, pads reach 1 tap
]


PAIR_POOLS = [  # 2-wide, stride-2 windows inside the input: the vector steps (int8 16, float32 8 outputs)
    ((6, 28, 28), (2, 2), (2, 2), (1, 1)),    # LeNet-5 pool 1
    ((16, 10, 10), (2, 2), (2, 2), (1, 1)),   # LeNet-5 pool 2 (rows of 5: steps spill into the next rows)
    ((2, 8, 40), (2, 2), (2, 2), (1, 1)),     # 20 outputs a row: a second, partial step
    ((3, 9, 11), (2, 2), (2, 2), (1, 1)),     # odd sizes: the last row and column unread
    ((2, 9, 8), (2, 2), (3, 2), (2, 1)),      # dilated rows, row stride 3
    ((32, 1, 64), (1, 2), (1, 2), (1, 1)),    # 1-D (the sensor CNN's pools)
    ((3, 1, 7), (1, 2), (1, 2), (1, 1)),      # 1-D, shorter than one step
    ((2, 6, 18), (2, 2), (2, 2), (1, 1)),     # 9 outputs a row: one full float32 step and a spilling one
    ((2, 5, 66), (2, 2), (2, 2), (1, 1)),     # 33 outputs a row: two full 16-lane steps and a spilling one
]


@pytest.mark.parametrize("case", PAIR_POOLS)
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("dtype", [np.int8, np.float32])
def test_pair_pools_match_twin(case, m, dtype):
    """MAXPOOL / QMAXPOOL's 2-wide, stride-2 windows (kernels_tile.maxpool2_rows: 16 int8 or
    kernels_tile.pool_f32_lanes(ow) float32 outputs a vector step, spilling into the next row): exact, nothing written outside
    the destination, nothing read past the input (the last rows' steps fall back to scalars)."""
    rng = np.random.default_rng(11)
    shape, kernel, stride, dil = case
    geo, _, _ = _case_geometry((shape, shape[0], 1, kernel, stride, dil, ((0, 0), (0, 0))))
    g = KC.table_from_geometry(geo, geo.c, 1, 0)
    n_in, n_out = geo.c * geo.h * geo.w, geo.c * geo.oh * geo.ow
    xq = _buffers(rng, m * n_in, dtype)
    got, want = _run_both(KC.maxpool, KC.maxpool_ref, lambda d: (xq, GUARD, d, GUARD, g, 0, m), m * n_out, dtype)
    np.testing.assert_array_equal(got, want)
    exact = xq[:GUARD + m * n_in].copy()  # the input ends the array: no step may read past it
    got = np.full(m * n_out, 99, dtype)
    KC.maxpool(exact, GUARD, got, 0, g, 0, m)
    np.testing.assert_array_equal(got, want[GUARD:GUARD + m * n_out])


@pytest.mark.parametrize("case", PAIR_POOLS)
def test_float_pair_pools_keep_the_order_of_comparisons(case):
    """float32 pair windows compare in the contract's order: the window's first element, then
    each later one replaces it only if greater, so a leading NaN stays, a later NaN is skipped,
    and of 0.0 and -0.0 the first seen stays (np.max would differ on all three)."""
    rng = np.random.default_rng(3)
    shape, kernel, stride, dil = case
    geo, _, _ = _case_geometry((shape, shape[0], 1, kernel, stride, dil, ((0, 0), (0, 0))))
    g = KC.table_from_geometry(geo, geo.c, 1, 0)
    n_in = geo.c * geo.h * geo.w
    x = rng.choice(np.array([np.nan, 0.0, -0.0, 1.0, -1.0], np.float32), size=n_in)
    got = np.full(geo.c * geo.oh * geo.ow, 99, np.float32)
    KC.maxpool(x, 0, got, 0, g, 0, 1)
    planes = x.reshape(geo.c, geo.h, geo.w)
    want = np.empty((geo.c, geo.oh, geo.ow), np.float32)
    for c in range(geo.c):
        for i in range(geo.oh):
            for j in range(geo.ow):
                seq = [planes[c, i * geo.sh + p * geo.dh, j * geo.sw + q * geo.dw]
                       for p in range(geo.kh) for q in range(geo.kw)]
                best = seq[0]
                for v in seq[1:]:
                    best = v if v > best else best
                want[c, i, j] = best
    np.testing.assert_array_equal(got.view(np.uint32), want.reshape(-1).view(np.uint32))


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("include_pad", [0, 1])
def test_pools_match_twins(case, include_pad):
    rng = np.random.default_rng(5)
    shape, kernel, stride, pads, dil = case
    geo, _, _ = _case_geometry((shape, shape[0], 1, kernel, stride, dil, pads))
    g = KC.table_from_geometry(geo, geo.c, 1, include_pad)
    m = 3
    n_in, n_out = geo.c * geo.h * geo.w, geo.c * geo.oh * geo.ow
    xf = _buffers(rng, m * n_in, np.float32, -5, 5)
    xq = _buffers(rng, m * n_in, np.int8)
    got, want = _run_both(KC.maxpool, KC.maxpool_ref, lambda d: (xf, GUARD, d, GUARD, g, 0, m), m * n_out, np.float32)
    np.testing.assert_array_equal(got, want)
    got, want = _run_both(KC.maxpool, KC.maxpool_ref, lambda d: (xq, GUARD, d, GUARD, g, 0, m), m * n_out, np.int8)
    np.testing.assert_array_equal(got, want)
    got, want = _run_both(KC.avgpool_f32, KC.avgpool_f32_ref, lambda d: (xf, GUARD, d, GUARD, g, 0, m),
                          m * n_out, np.float32)
    np.testing.assert_array_equal(got, want)  # same float32 order: identical
    for x_zp, y_zp, mult in [(0, 0, 1.0), (-20, 3, 0.7), (90, -100, 1.9)]:
        got, want = _run_both(KC.qavgpool_i8, KC.qavgpool_i8_ref,
                              lambda d: (xq, GUARD, d, GUARD, g, 0, m, x_zp, y_zp, mult), m * n_out, np.int8)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("hw", [1, 7, 31, 32, 33, 63, 64, 65, 125, 200])
def test_global_qavgpool_sums_whole_planes_exactly(hw):
    """QAVGPOOL over a whole plane (a global average pool: kernels_tile.sum_i8, 32 bytes a step
    and one overlapping last step with its counted lanes zeroed): bit-exact against the twin for
    plane sizes below, at and around the 32-byte step, on extreme codes, at odd offsets; and
    sum_i8 itself equals NumPy's sum."""
    from numba import njit

    from rtinfer import kernels_tile as T

    rng = np.random.default_rng(hw)
    m, c = 2, 3
    geo, _, _ = _case_geometry(((c, 1, hw), c, 1, (1, hw), (1, 1), (1, 1), ((0, 0), (0, 0))))
    g = KC.table_from_geometry(geo, geo.c, 1, 0)
    for lo, hi in ((-128, 128), (-128, -127), (127, 128)):
        xq = rng.integers(lo, hi, size=m * c * hw + 2 * GUARD).astype(np.int8)
        for x_zp, y_zp, mult in [(0, 0, 1.0), (-128, 5, 0.37), (77, -100, 1.9)]:
            got, want = _run_both(KC.qavgpool_i8, KC.qavgpool_i8_ref,
                                  lambda d: (xq, GUARD, d, GUARD, g, 0, m, x_zp, y_zp, mult), m * c, np.int8)
            np.testing.assert_array_equal(got, want)

    @njit(_nrt=False)
    def total(x, xo, n):
        return T.sum_i8(x, xo, n)

    x = rng.integers(-128, 128, hw + 40).astype(np.int8)
    for xo in (0, 1, 7, 40):
        n = min(hw, x.size - xo)
        assert total(x, xo, n) == int(x[xo:xo + n].astype(np.int64).sum())


def test_global_avgpool_matches_twin_and_mean():
    rng = np.random.default_rng(6)
    m, c, hw = 3, 5, 37
    x = _buffers(rng, m * c * hw, np.float32)
    got, want = _run_both(KC.global_avgpool_f32, KC.global_avgpool_f32_ref,
                          lambda d: (x, GUARD, d, GUARD, c, hw, m), m * c, np.float32)
    np.testing.assert_array_equal(got, want)
    mean = x[GUARD:GUARD + m * c * hw].reshape(m, c, hw).astype(np.float64).mean(axis=2)
    np.testing.assert_allclose(got[GUARD:GUARD + m * c], mean.reshape(-1), rtol=1e-5, atol=1e-6)


def test_twins_agree_with_reference_executor():
    """The twins read the geometry table the way the reference executor reads layer attrs."""
    from rtinfer import reference
    from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
    from rtinfer.ops import Op
    from rtinfer.reference_conv import window_out_shape
    rng = np.random.default_rng(7)
    attrs = dict(geometry_attrs((2, 3), (2, 1), (1, 2), ((1, 0), (2, 1))), group=2)
    in_shape = (4, 6, 7)
    W = rng.normal(size=(6, 2, 2, 3)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    bb = BufferBuilder()
    layer = Layer(Op.CONV, in_shape, window_out_shape(in_shape, attrs, 6), tensors={"W": bb.add(W), "b": bb.add(b)},
                  attrs=attrs)
    fm = FrozenModel((layer,), bb.finish(), in_shape, layer.out_shape)
    X = rng.normal(size=(2,) + in_shape).astype(np.float32)
    lay = KC.conv_layout(make_geometry(in_shape, attrs), 6, 2, W)
    y = np.zeros(2 * layer.out_size, np.float32)
    KC.conv_f32(X.reshape(-1), 0, lay.W, 0, b, 0, y, 0, lay.table, 0, 2, np.zeros(lay.f32, np.float32), 0, 0, 0.0, 0.0)
    np.testing.assert_allclose(y.reshape((2,) + layer.out_shape), reference.run(fm, X), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------ random geometries


@st.composite
def geometries(draw):
    """A valid 1-D or 2-D window geometry with small sizes; (geo, out channels, group)."""
    one_d = draw(st.booleans())
    group = draw(st.sampled_from([1, 2, 3]))
    c = group * draw(st.integers(1, 3))
    o = group * draw(st.integers(1, 5))
    dims = []
    for axis in range(2):
        if axis == 0 and one_d:
            dims.append((1, 1, 1, 1, 0, 0))
            continue
        n = draw(st.integers(1, 9))
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 3))
        d = draw(st.integers(1, 3))
        extent = d * (k - 1) + 1
        pb = draw(st.integers(0, extent - 1))
        pe = draw(st.integers(0, extent - 1))
        if n + pb + pe < extent:
            pe = extent - n - pb
        dims.append((n, k, s, d, pb, pe))
    (h, kh, sh, dh, pt, pb), (w, kw, sw, dw, pl, pr) = dims
    attrs = geometry_attrs((kh, kw), (sh, sw), (dh, dw), ((pt, pb), (pl, pr)))
    in_shape = (c, w) if one_d else (c, h, w)
    return make_geometry(in_shape, attrs), o, group


def _conv_paths_match_twins(geo, o, group, rng, m=2):
    """CONV and QCONV of geo on every kernel path against their twins (random operands from rng);
    returns the float32 and int8 inputs (m samples, at GUARD)."""
    n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
    wsize = o * (geo.c // group) * geo.kh * geo.kw
    x = _buffers(rng, m * n_in, np.float32)
    W = _buffers(rng, wsize, np.float32)
    b = _buffers(rng, o, np.float32)
    xq = _buffers(rng, m * n_in, np.int8)
    bias = rng.integers(-3000, 3000, size=o + 2 * GUARD).astype(np.int32)
    M = rng.uniform(1e-3, 2e-2, size=o + 2 * GUARD).astype(np.float32)
    for path in paths_for(group, True) + ["wino"]:
        if path in ("auto", "gemm", "wino"):
            _, g, Wk, cols, _ = conv_operands(geo, o, group, W[GUARD:GUARD + wsize], path=path)
            got, want = _run_both(lambda *a: KC.conv_f32(*a[:2], Wk, *a[3:]), KC.conv_f32_ref,
                                  lambda d: (x, GUARD, W, GUARD, b, GUARD, d, GUARD, g, 0, m, cols, 0, 0, 0.0, 0.0),
                                  m * n_out, np.float32)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * (geo.kh * geo.kw * geo.c + 1))
        if path == "wino":  # float32 only
            continue
        hi = 64 if path in ("u8", "dwq") and not T.quads_exact_any() else 128  # forced quads: 7-bit weights
        Wq = rng.integers(-hi + 1, hi, size=wsize + 2 * GUARD).astype(np.int8)
        got, want, _ = _qconv_both(geo, o, group, xq, Wq, bias, M, m, -3, 7, -128, 127, path)
        np.testing.assert_array_equal(got, want)
    return x, xq


@pytest.mark.parametrize("c,o,group", [(1, 1, 1), (2, 3, 1), (3, 3, 3)])
def test_one_input_row_padded_to_several_output_rows(c, o, group):
    """h = 1 with kernel rows reaching several padded output rows (a 2-D geometry, not 1-D): a tap
    with a column shift must not wrap from padding row i - 1 into the one input row (the shifted
    plane copies zero the wrapped columns whatever the number of input rows)."""
    geo = make_geometry((c, 1, 2), geometry_attrs((4, 2), (1, 1), (3, 1), ((1, 9), (0, 1))))
    assert (geo.h, geo.oh, geo.ow) == (1, 2, 2)
    _conv_paths_match_twins(geo, o, group, np.random.default_rng(c * 7 + o))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometries(), st.integers(0, 2 ** 31 - 1))
def test_random_conv_geometries_match_twins(case, seed):
    geo, o, group = case
    m = 2
    x, xq = _conv_paths_match_twins(geo, o, group, np.random.default_rng(seed), m)
    if int(pool_counts(geo, False).min()) >= 1:  # a valid pool geometry
        pg = KC.table_from_geometry(geo, geo.c, 1, seed % 2)
        n_pool = geo.c * geo.oh * geo.ow
        for kernel, twin, src in ((KC.maxpool, KC.maxpool_ref, x), (KC.maxpool, KC.maxpool_ref, xq),
                                  (KC.avgpool_f32, KC.avgpool_f32_ref, x)):
            got, want = _run_both(kernel, twin, lambda d: (src, GUARD, d, GUARD, pg, 0, m), m * n_pool, src.dtype)
            np.testing.assert_array_equal(got, want)
        got, want = _run_both(KC.qavgpool_i8, KC.qavgpool_i8_ref,
                              lambda d: (xq, GUARD, d, GUARD, pg, 0, m, 5, -2, 0.8), m * n_pool, np.int8)
        np.testing.assert_array_equal(got, want)
