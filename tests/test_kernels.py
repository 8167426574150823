"""Every compiled kernel against its NumPy twin (rtinfer.kernels_ref), odd sizes, offsets.

float32 kernels: |kernel - twin| <= 1e-5 * (magnitude of the terms) — for dense the bound is
relative to |x| @ |W| + |b|, the size of the summed terms (the kernel sums in a different
order than BLAS); int8 kernels: bit-exact.
Kernels are called with the argument types the interpreter uses (int64 / float64 scalars),
so this file reuses the cached compilations.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtinfer import kernels as K
from rtinfer import kernels_ref as R
from rtinfer import quant
from rtinfer.ops import ACT_DEFAULTS, Act

SIZES = (1, 3, 17, 129)
OFF_IN, OFF_OUT = 5, 3  # non-zero offsets: kernels must honour them


def _pair(n_out, dtype, fill=0):
    """Two identical destination buffers with room for the offset and guard elements."""
    a = np.full(OFF_OUT + n_out + 7, fill, dtype=dtype)
    return a, a.copy()


def _src(rng, n, scale=3.0):
    return np.concatenate([rng.standard_normal(OFF_IN), scale * rng.standard_normal(n),
                           rng.standard_normal(4)]).astype(np.float32)


def _close(got, want, mag=None, rtol=1e-5):
    mag = np.abs(want) if mag is None else mag
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = err > rtol * np.maximum(mag, 1e-30) + 1e-30
    assert not bad.any(), f"max error {err.max()} at {np.argmax(err)}; got {got[bad][:5]}, want {want[bad][:5]}"


def test_twins_cover_every_kernel():
    compiled = {name for name in dir(K) if hasattr(getattr(K, name), "py_func") and not name.startswith("_")}
    compiled -= {"act_scalar", "exp_le0_f32"}  # scalar helpers: covered through act_f32 / softmax_f32 (and its sweep)
    assert compiled == set(R.TWINS)


ACT_PARAMS = {Act.LEAKY_RELU: (0.1, 0.0), Act.CLIP: (-0.5, 0.7)}


@pytest.mark.parametrize("act", list(Act), ids=lambda a: a.name)
def test_act_kernel(act):
    rng = np.random.default_rng(int(act))
    alpha, beta = ACT_PARAMS.get(act, ACT_DEFAULTS[act])
    for n in SIZES:
        x = _src(rng, n, scale=6.0)
        x[OFF_IN] = 0.0
        got, want = _pair(n, np.float32, fill=-9.0)
        K.act_f32(x, OFF_IN, got, OFF_OUT, n, int(act), float(alpha), float(beta))
        R.act_f32(x, OFF_IN, want, OFF_OUT, n, int(act), float(alpha), float(beta))
        _close(got, want)
        assert got[OFF_OUT - 1] == -9.0 and got[OFF_OUT + n] == -9.0  # nothing outside the output
    # in place
    buf = _src(rng, 129, scale=6.0)
    want = buf.copy()
    R.act_f32(want, OFF_IN, want, OFF_IN, 129, int(act), float(alpha), float(beta))
    K.act_f32(buf, OFF_IN, buf, OFF_IN, 129, int(act), float(alpha), float(beta))
    _close(buf, want)


@pytest.mark.parametrize("n_in", SIZES)
@pytest.mark.parametrize("n_out", SIZES)
def test_dense_kernel(n_in, n_out):
    rng = np.random.default_rng(n_in * 1000 + n_out)
    for m in (1, 5):
        x = _src(rng, m * n_in)
        W = np.concatenate([np.zeros(7), rng.standard_normal(n_in * n_out)]).astype(np.float32)
        b = np.concatenate([np.zeros(2), rng.standard_normal(n_out)]).astype(np.float32)
        got, want = _pair(m * n_out, np.float32, fill=-9.0)
        K.dense_f32(x, OFF_IN, W, 7, b, 2, got, OFF_OUT, n_in, n_out, m)
        R.dense_f32(x, OFF_IN, W, 7, b, 2, want, OFF_OUT, n_in, n_out, m)
        xs = np.abs(x[OFF_IN:OFF_IN + m * n_in].reshape(m, n_in)).astype(np.float64)
        mag = xs @ np.abs(W[7:].reshape(n_out, n_in).T) + np.abs(b[2:])
        _close(got[OFF_OUT:OFF_OUT + m * n_out], want[OFF_OUT:OFF_OUT + m * n_out], mag.reshape(-1))
        assert got[OFF_OUT - 1] == -9.0 and got[OFF_OUT + m * n_out] == -9.0


def test_dense_batch_is_bit_identical_to_single_samples():
    rng = np.random.default_rng(7)
    n_in, n_out, m = 129, 17, 9
    x = rng.standard_normal(m * n_in).astype(np.float32)
    W = rng.standard_normal(n_in * n_out).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    batch = np.zeros(m * n_out, np.float32)
    K.dense_f32(x, 0, W, 0, b, 0, batch, 0, n_in, n_out, m)
    single = np.zeros(m * n_out, np.float32)
    for s in range(m):
        K.dense_f32(x, s * n_in, W, 0, b, 0, single, s * n_out, n_in, n_out, 1)
    assert np.array_equal(batch, single)


@pytest.mark.parametrize("n", SIZES)
def test_affine_kernel(n):
    rng = np.random.default_rng(n)
    m = 3
    x = _src(rng, m * n)
    s = rng.standard_normal(n + 4).astype(np.float32)
    t = rng.standard_normal(n + 1).astype(np.float32)
    got, want = _pair(m * n, np.float32)
    K.affine_f32(x, OFF_IN, s, 4, t, 1, got, OFF_OUT, n, m)
    R.affine_f32(x, OFF_IN, s, 4, t, 1, want, OFF_OUT, n, m)
    _close(got, want)


AXES = [(1, 1, 1), (1, 3, 1), (1, 17, 1), (1, 129, 1), (3, 17, 1), (2, 3, 5), (4, 1, 3)]


@pytest.mark.parametrize("outer,axis_len,inner", AXES)
def test_softmax_kernels(outer, axis_len, inner):
    rng = np.random.default_rng(outer * 100 + axis_len)
    n = outer * axis_len * inner
    x = _src(rng, n, scale=10.0)
    for log in (0, 1):
        got, want = _pair(n, np.float32)
        K.softmax_f32(x, OFF_IN, got, OFF_OUT, outer, axis_len, inner, log)
        R.softmax_f32(x, OFF_IN, want, OFF_OUT, outer, axis_len, inner, log)
        _close(got, want, mag=np.maximum(np.abs(want), 1e-6))
    got, want = _pair(outer * inner, np.float32)
    xt = x.copy()
    xt[OFF_IN:OFF_IN + n] = np.round(xt[OFF_IN:OFF_IN + n])  # ties: the first maximum wins
    for last in (0, 1):  # ties: the first maximum wins, or the last with select_last
        got, want = _pair(outer * inner, np.float32)
        K.argmax_f32(xt, OFF_IN, got, OFF_OUT, outer, axis_len, inner, last)
        R.argmax_f32(xt, OFF_IN, want, OFF_OUT, outer, axis_len, inner, last)
        assert np.array_equal(got, want)
    v = xt[OFF_IN:OFF_IN + n].reshape(outer, axis_len, inner)  # an independent check of the ties
    first = np.array([[next(a for a in range(axis_len) if v[o, a, c] == v[o, :, c].max()) for c in range(inner)]
                      for o in range(outer)], np.float32).reshape(-1)
    last_ = np.array([[max(a for a in range(axis_len) if v[o, a, c] == v[o, :, c].max()) for c in range(inner)]
                      for o in range(outer)], np.float32).reshape(-1)
    for last, want_idx in ((0, first), (1, last_)):
        got, _ = _pair(outer * inner, np.float32)
        K.argmax_f32(xt, OFF_IN, got, OFF_OUT, outer, axis_len, inner, last)
        assert np.array_equal(got[OFF_OUT:OFF_OUT + outer * inner], want_idx)


@pytest.mark.parametrize("n", SIZES)
def test_quantize_dequantize_kernels(n):
    rng = np.random.default_rng(n)
    scale, zp = 0.05, -7
    x = _src(rng, n, scale=4.0)
    x[OFF_IN::3] = (np.arange(len(x[OFF_IN::3])) % 40 - 20 + 0.5) * np.float32(scale)  # ties, saturation
    got, want = _pair(n, np.int8)
    K.quantize_f32_i8(x, OFF_IN, got, OFF_OUT, n, scale, zp)
    R.quantize_f32_i8(x, OFF_IN, want, OFF_OUT, n, scale, zp)
    assert np.array_equal(got, want)
    q = np.concatenate([np.zeros(OFF_IN), rng.integers(-128, 128, n)]).astype(np.int8)
    got, want = _pair(n, np.float32)
    K.dequantize_i8_f32(q, OFF_IN, got, OFF_OUT, n, scale, zp)
    R.dequantize_i8_f32(q, OFF_IN, want, OFF_OUT, n, scale, zp)
    assert np.array_equal(got, want)


def test_quantize_extremes_and_all_codes():
    x = np.array([-1e30, -129.0, -128.5, -127.5, -0.5, 0.5, 1.5, 2.5, 126.5, 127.5, 1e30], np.float32)
    got = np.zeros(len(x), np.int8)
    K.quantize_f32_i8(x, 0, got, 0, len(x), 1.0, 0)
    assert np.array_equal(got, quant.quantize(x, 1.0, 0))
    q = np.arange(-128, 128).astype(np.int8)
    got = np.zeros(256, np.float32)
    K.dequantize_i8_f32(q, 0, got, 0, 256, 0.0173, 11)
    assert np.array_equal(got, quant.dequantize(q, 0.0173, 11))


@pytest.mark.parametrize("n", SIZES)
def test_lut_kernel(n):
    rng = np.random.default_rng(n)
    table = np.concatenate([np.zeros(9), rng.integers(-128, 128, 256)]).astype(np.int8)
    q = np.concatenate([np.zeros(OFF_IN), rng.integers(-128, 128, n)]).astype(np.int8)
    q[OFF_IN] = -128
    q[-1] = 127
    got, want = _pair(n, np.int8)
    K.lut_i8(q, OFF_IN, table, 9, got, OFF_OUT, n)
    R.lut_i8(q, OFF_IN, table, 9, want, OFF_OUT, n)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("n_in", SIZES)
@pytest.mark.parametrize("n_out", SIZES)
def test_qdense_kernel(n_in, n_out):
    rng = np.random.default_rng(n_in * 1000 + n_out)
    for m, (qmin, qmax) in ((1, (-128, 127)), (5, (-3, 127)), (2, (-20, 40))):
        x = np.concatenate([np.zeros(OFF_IN), rng.integers(-128, 128, m * n_in)]).astype(np.int8)
        Wt = np.concatenate([np.zeros(16), rng.integers(-127, 128, n_in * n_out)]).astype(np.int8)
        bias = np.concatenate([np.zeros(1), rng.integers(-50000, 50000, n_out)]).astype(np.int32)
        M = np.concatenate([np.zeros(3), rng.uniform(1e-5, 5e-3, n_out)]).astype(np.float32)
        got, want = _pair(m * n_out, np.int8, fill=99)
        K.qdense_i8(x, OFF_IN, Wt, 16, bias, 1, M, 3, got, OFF_OUT, n_in, n_out, m, -3, qmin, qmax)
        R.qdense_i8(x, OFF_IN, Wt, 16, bias, 1, M, 3, want, OFF_OUT, n_in, n_out, m, -3, qmin, qmax)
        assert np.array_equal(got, want)
        assert got[OFF_OUT - 1] == 99 and got[OFF_OUT + m * n_out] == 99


def test_qdense_requant_ties_round_half_even():
    # acc * M lands exactly on .5: rint must go to even, as quant.requantize does
    n_in, n_out = 1, 8
    x = np.ones(n_in, np.int8)
    Wt = np.ones(n_in * n_out, np.int8)
    bias = np.array([0, 2, 4, 6, -2, -4, 8, 10], np.int32)  # acc = bias + 1: 1, 3, 5, 7, -1, -3, 9, 11
    M = np.full(n_out, 0.5, np.float32)
    got = np.zeros(n_out, np.int8)
    K.qdense_i8(x, 0, Wt, 0, bias, 0, M, 0, got, 0, n_in, n_out, 1, 0, -128, 127)
    assert got.tolist() == [0, 2, 2, 4, 0, -2, 4, 6]


@pytest.mark.parametrize("lo,hi", [(0.0, 6.0), (0.1, 0.7), (-np.inf, 1.3), (-0.3, np.inf), (0.1, 0.1)])
def test_clip_float32_path_equals_the_float64_golden(lo, hi):
    """act_f32's float32 CLIP (ReLU6) gives the reference's float64-then-rounded values exactly,
    bounds that float32 cannot hold and NaN/inf included."""
    from rtinfer import reference
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20000).astype(np.float32) * 4,
                        np.array([np.nan, np.inf, -np.inf, 0.1, 0.09999999, 6.0, 6.0000005], np.float32)])
    y = np.empty_like(x)
    K.act_f32(x, 0, y, 0, x.size, int(Act.CLIP), lo, hi)
    np.testing.assert_array_equal(y, reference.activation(x, Act.CLIP, lo, hi))


def test_softmax_exp_is_within_two_ulp_of_exp():
    """kernels.exp_le0_f32, softmax's vectorizable float32 exp for x <= 0, against float64 exp
    rounded to float32: within 2 float32 ulp (subnormal results: 1 subnormal step) over a dense
    sweep of [-110, 0] and at every float32 of [-1, 0] near 0; e^0 = 1 exactly (the max element of
    a softmax row), 0 below the subnormal range and for -inf, NaN for NaN."""
    from numba import njit

    @njit(cache=False)
    def run(x, y):
        for i in range(x.size):
            y[i] = K.exp_le0_f32(x[i])

    rng = np.random.default_rng(5)
    x = np.concatenate([np.linspace(-110.0, 0.0, 400_001), -rng.exponential(3.0, 200_000),
                        -np.abs(rng.standard_normal(100_000)) * 1e-3,
                        np.array([0.0, -0.0, -1e-30, -87.3, -87.4, -103.0, -103.9, -104.0, -150.0])]).astype(np.float32)
    y = np.empty_like(x)
    run(x, y)
    want = np.exp(x.astype(np.float64)).astype(np.float32)
    ulp = np.spacing(want).astype(np.float64)
    err = np.abs(y.astype(np.float64) - want.astype(np.float64))
    assert (err <= 2 * ulp).all(), (x[np.argmax(err / ulp)], float((err / ulp).max()))
    assert y[x == 0].tolist() == [1.0] * int((x == 0).sum())
    special = np.array([-np.inf, -1e30, np.nan, -200.0], np.float32)
    ys = np.empty_like(special)
    run(special, ys)
    assert ys[0] == 0.0 and ys[1] == 0.0 and np.isnan(ys[2]) and ys[3] == 0.0
