"""FrozenModel validation, BufferBuilder, the int8 arithmetic, and the reference activations."""

import math

import numpy as np
import pytest

from rtinfer import quant, reference
from rtinfer.frozen import BufferBuilder, FrozenModel, FrozenModelError, Layer, TensorRef
from rtinfer.ops import ACT_DEFAULTS, Act, Op


def dense_model(W, b, act=Act.IDENTITY):
    bb = BufferBuilder()
    W_ref, b_ref = bb.add(W.astype(np.float32)), bb.add(b.astype(np.float32))
    layer = Layer(Op.DENSE, (W.shape[0],), (W.shape[1],), act, {"W": W_ref, "b": b_ref})
    return FrozenModel((layer,), bb.finish(), (W.shape[0],), (W.shape[1],))


def test_buffer_builder_aligns_and_round_trips():
    bb = BufferBuilder()
    a = np.arange(5, dtype=np.float32)
    c = np.arange(7, dtype=np.float32).reshape(7, 1)
    q = np.array([-3, 4], dtype=np.int8)
    ra, rc, rq = bb.add(a), bb.add(c), bb.add(q)
    bufs = bb.finish()
    assert ra.offset == 0 and rc.offset == 16 and rq.buffer == "i8"
    np.testing.assert_array_equal(bufs["f32"][rc.offset:rc.offset + 7].reshape(7, 1), c)
    np.testing.assert_array_equal(bufs["i8"][:2], q)
    with pytest.raises(FrozenModelError, match="float64"):
        bb.add(np.zeros(3))


def test_frozen_model_reports_params_bytes_macs():
    rng = np.random.default_rng(0)
    fm = dense_model(rng.normal(size=(4, 3)), rng.normal(size=3), Act.RELU)
    assert fm.n_params == 4 * 3 + 3
    assert fm.macs == 12
    assert fm.weight_bytes == (12 + 3) * 4
    assert "DENSE" in fm.summary()
    W = fm.tensor(fm.layers[0], "W")
    assert W.shape == (4, 3) and not W.flags.writeable


def test_frozen_model_rejects_out_of_bounds_tensor():
    layer = Layer(Op.DENSE, (4,), (3,), Act.IDENTITY,
                  {"W": TensorRef("f32", 0, (4, 3)), "b": TensorRef("f32", 12, (3,))})
    with pytest.raises(FrozenModelError, match="outside buffer 'f32'"):
        FrozenModel((layer,), {"f32": np.zeros(14, np.float32)}, (4,), (3,))


def test_frozen_model_rejects_chain_mismatch_and_int8_output():
    bb = BufferBuilder()
    l1 = Layer(Op.ACT, (4,), (4,), Act.RELU)
    l2 = Layer(Op.ACT, (5,), (5,), Act.RELU)
    with pytest.raises(FrozenModelError, match=r"input shape \(5,\) does not match tensor 1's shape \(4,\)"):
        FrozenModel((l1, l2), bb.finish(), (4,), (5,))
    lq = Layer(Op.QUANTIZE, (4,), (4,), attrs={"y_scale": 0.1, "y_zp": 0})
    with pytest.raises(FrozenModelError, match="is int8; outputs must be float32"):
        FrozenModel((lq,), bb.finish(), (4,), (4,))
    ld = Layer(Op.DEQUANTIZE, (4,), (4,), attrs={"x_scale": 0.1, "x_zp": 0})
    with pytest.raises(FrozenModelError, match="takes i8 but tensor 0 is f32"):
        FrozenModel((ld,), bb.finish(), (4,), (4,))


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0], dtype=np.float32)
    np.testing.assert_array_equal(quant.quantize(x, 1.0, 0), [0, 2, 2, 0, -2, 127, -128])
    np.testing.assert_array_equal(quant.quantize(np.float32([0.0]), 0.5, -3), [-3])


def test_requantize_matches_exact_rational_arithmetic():
    rng = np.random.default_rng(1)
    acc = rng.integers(-50000, 50000, size=1000).astype(np.int32)
    M = quant.requant_multiplier(0.02, np.full(1000, 0.003, np.float32), 0.05)
    y = quant.requantize(acc, M, 5)
    exact = np.clip(np.rint(acc.astype(np.float64) * float(M[0])) + 5, -128, 127)
    # float32 product vs float64 product: identical except on exact .5 ties, at most 1 LSB
    assert np.max(np.abs(y.astype(np.int64) - exact)) <= 1
    assert np.mean(y == exact) > 0.99


def test_choose_qparams_covers_range_and_zero():
    s, zp = quant.choose_qparams(-1.0, 3.0)
    assert quant.QMIN <= zp <= quant.QMAX
    assert quant.dequantize(quant.quantize(np.float32([0.0]), s, zp), s, zp)[0] == 0.0
    lo = quant.dequantize(np.int8([-128]), s, zp)[0]
    hi = quant.dequantize(np.int8([127]), s, zp)[0]
    assert lo <= -1.0 + s and hi >= 3.0 - s
    with pytest.raises(ValueError, match="not finite"):
        quant.choose_qparams(float("nan"), 1.0)


def test_weight_quantization_is_symmetric_per_channel():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(20, 6)) * np.array([0.01, 0.1, 1, 10, 100, 0.0])
    s = quant.symmetric_weight_scales(W)
    q = quant.quantize_weights(W, s)
    assert np.all(np.abs(q) <= 127)
    assert np.all(np.max(np.abs(q[:, :5]), axis=0) == 127)
    np.testing.assert_allclose(q * s[None, :], W, atol=np.max(s) / 2 + 1e-12)


def test_lut_is_exact_for_its_quantization():
    xs, xz, ys, yz = 0.05, -10, 1 / 255, -128
    table = quant.build_lut(lambda v: 1 / (1 + np.exp(-v)), xs, xz, ys, yz)
    for q in (-128, -1, 0, 57, 127):
        expected = quant.quantize(np.float32([1 / (1 + math.exp(-(q - xz) * xs))]), ys, yz)[0]
        assert table[q + 128] == expected


@pytest.mark.parametrize("act", list(Act))
def test_reference_activations_match_closed_forms(act):
    x = np.linspace(-6, 6, 101).astype(np.float32)
    alpha, beta = ACT_DEFAULTS[act]
    if act == Act.CLIP:
        alpha, beta = -1.0, 2.0
    y = reference.activation(x, act, alpha, beta)
    x64 = x.astype(np.float64)
    closed = {
        Act.IDENTITY: x64,
        Act.RELU: np.maximum(x64, 0),
        Act.LEAKY_RELU: np.where(x64 >= 0, x64, alpha * x64),
        Act.SIGMOID: 1 / (1 + np.exp(-x64)),
        Act.TANH: np.tanh(x64),
        Act.SOFTPLUS: np.log(1 + np.exp(x64)),
        Act.ELU: np.where(x64 > 0, x64, alpha * (np.exp(x64) - 1)),
        Act.SELU: beta * np.where(x64 > 0, x64, alpha * (np.exp(x64) - 1)),
        Act.HARD_SIGMOID: np.clip(alpha * x64 + beta, 0, 1),
        Act.GELU: np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x64]),
        Act.GELU_TANH: 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3))),
        Act.CLIP: np.clip(x64, -1, 2),
        Act.SILU: x64 / (1 + np.exp(-x64)),
        Act.HARD_SWISH: x64 * np.clip(x64 + 3, 0, 6) / 6,
        Act.MISH: x64 * np.tanh(np.log(1 + np.exp(x64))),
        Act.ERF: np.array([math.erf(v) for v in x64]),
        Act.EXP: np.exp(x64),
        Act.ABS: np.abs(x64),
        Act.WRAP: np.mod(np.trunc(x64) - alpha, beta) + alpha if beta else x64,
    }[act]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, closed, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32"])
def test_wrap_is_integer_wraparound(dtype):
    """WRAP of exact float results equals NumPy's integer arithmetic (two's complement
    wrap-around), truncates toward zero first (C division), and maps NaN / inf to 0."""
    info = np.iinfo(dtype)
    alpha, beta = float(info.min), float(int(info.max) - int(info.min) + 1)
    rng = np.random.default_rng(5)
    a = rng.integers(info.min, int(info.max) + 1, 400, dtype=np.int64)
    b = rng.integers(info.min, int(info.max) + 1, 400, dtype=np.int64)
    if dtype == "int32":  # float32 holds the operands and results exactly up to 2^24
        a, b = a >> 8, b >> 16
    for op in (np.add, np.subtract, np.multiply):
        want = op(a.astype(dtype), b.astype(dtype)) if dtype != "int32" else op(a, b).astype(np.int32)
        got = reference.activation(op(a, b).astype(np.float32), Act.WRAP, alpha, beta)
        if dtype != "int32" or op is not np.multiply:
            np.testing.assert_array_equal(got, want.astype(np.float32))
    nz = np.where(b == 0, 1, b)
    with np.errstate(all="ignore"):
        q = (np.abs(a) // np.abs(nz)) * np.sign(a) * np.sign(nz)  # C division: toward zero
    got = reference.activation((a.astype(np.float32) / nz.astype(np.float32)), Act.WRAP, alpha, beta)
    want = q.astype(dtype) if dtype != "int32" else q
    if dtype != "int32":
        np.testing.assert_array_equal(got, want.astype(np.float32))
    special = np.array([np.nan, np.inf, -np.inf, 2.7, -2.7], np.float32)
    np.testing.assert_array_equal(reference.activation(special, Act.WRAP, alpha, beta), [0, 0, 0, 2, -2]
                                  if dtype != "uint8" else [0, 0, 0, 2, 254])


def test_reference_sigmoid_and_softplus_stable_at_extremes():
    x = np.array([-1000, 1000], dtype=np.float32)
    assert np.all(np.isfinite(reference.activation(x, Act.SIGMOID)))
    np.testing.assert_allclose(reference.activation(x, Act.SOFTPLUS), [0, 1000])


def test_reference_softmax_over_middle_axis():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 3, 4, 5)).astype(np.float32) * 30
    layer = Layer(Op.SOFTMAX, (3, 4, 5), (3, 4, 5), attrs={"outer": 3, "axis_len": 4, "inner": 5})
    y = reference.softmax(X.reshape(2, -1), layer).reshape(X.shape)
    e = np.exp(X.astype(np.float64) - X.max(axis=2, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=2, keepdims=True), rtol=1e-6, atol=1e-7)
    ls = reference.softmax(X.reshape(2, -1), Layer(Op.LOG_SOFTMAX, (3, 4, 5), (3, 4, 5), attrs=dict(layer.attrs)), log=True)
    np.testing.assert_allclose(np.exp(ls.reshape(X.shape)), y, rtol=1e-5)


def test_reference_run_checks_input_shape():
    fm = dense_model(np.ones((4, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 4\)"):
        reference.run(fm, np.ones((2, 5), np.float32))
    np.testing.assert_allclose(reference.run(fm, np.ones((2, 4), np.float32)), np.full((2, 3), 4.0))
