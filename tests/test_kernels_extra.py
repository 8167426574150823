"""GATHER / QGATHER and LAYERNORM (rtinfer.kernels_extra): closed forms for the reference
executor, then every compiled path against it (float32 GATHER and QGATHER move values, so the
bits must agree; LAYERNORM within 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest

import rtinfer
from rtinfer import reference
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Op
from rtinfer.plan import PlanError, build_plan


def _gather_model(in_shape, index, out_shape, fill=0.0, q=False):
    bb = BufferBuilder()
    layers = []
    if q:
        layers.append(Layer(Op.QUANTIZE, in_shape, in_shape, attrs={"y_scale": 0.05, "y_zp": 3}))
    layers.append(Layer(Op.QGATHER if q else Op.GATHER, in_shape, out_shape,
                        tensors={"index": bb.add(np.asarray(index, np.int32).reshape(-1))},
                        attrs={"fill": fill} if not q else {"fill": int(fill), "y_scale": 0.05, "y_zp": 3}))
    if q:
        layers.append(Layer(Op.DEQUANTIZE, out_shape, out_shape, attrs={"x_scale": 0.05, "x_zp": 3}))
    return FrozenModel(tuple(layers), bb.finish(), in_shape, out_shape)


def _paths(frozen, X):
    rt = rtinfer.load(frozen, batch="exact")
    ys = [rt.predict(X), rt.stream(X), np.stack([rt.predict_one(x) for x in X])]
    rt_auto = rtinfer.load(frozen)
    ys.append(rt_auto.predict(X))
    return ys


def test_gather_is_a_transpose_with_padding_closed_form():
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    # y (3, 3): transpose of x, plus a padded row of -1 (fill)
    idx = np.array([[0, 3], [1, 4], [2, 5], [-1, -1]]).reshape(-1)
    f = _gather_model((2, 3), idx, (4, 2), fill=-1.5)
    y = reference.run(f, x)
    assert np.array_equal(y[0], np.array([[0, 3], [1, 4], [2, 5], [-1.5, -1.5]], np.float32))


@pytest.mark.parametrize("fill", [0.0, -np.inf, 2.5])
def test_gather_compiled_equals_reference(fill):
    rng = np.random.default_rng(1)
    idx = rng.integers(-1, 24, size=40)
    f = _gather_model((2, 3, 4), idx, (5, 8), fill=fill)
    X = rng.standard_normal((37, 2, 3, 4)).astype(np.float32)
    want = reference.run(f, X)
    for got in _paths(f, X):
        assert np.array_equal(got, want)


def test_qgather_compiled_equals_reference_bit_exact():
    rng = np.random.default_rng(2)
    idx = rng.integers(-1, 12, size=30)
    f = _gather_model((12,), idx, (30,), fill=3, q=True)
    X = rng.standard_normal((41, 12)).astype(np.float32)
    want = reference.run(f, X)
    assert np.all(want[:, idx < 0] == 0.0)  # fill = the zero point: real 0
    for got in _paths(f, X):
        assert np.array_equal(got, want)


def test_gather_index_out_of_range_is_refused_at_plan_time():
    f = _gather_model((4,), [0, 4], (2,))
    with pytest.raises(PlanError, match="index values"):
        build_plan(f)


def _ln_model(shape, axis_len, eps=1e-5, seed=0):
    rng = np.random.default_rng(seed)
    bb = BufferBuilder()
    scale = rng.standard_normal(axis_len).astype(np.float32)
    bias = rng.standard_normal(axis_len).astype(np.float32)
    n = int(np.prod(shape))
    layer = Layer(Op.LAYERNORM, shape, shape, tensors={"scale": bb.add(scale), "bias": bb.add(bias)},
                  attrs={"outer": n // axis_len, "axis_len": axis_len, "epsilon": eps})
    return FrozenModel((layer,), bb.finish(), shape, shape), scale, bias


def test_layernorm_reference_closed_form():
    f, scale, bias = _ln_model((2, 3), 3)
    x = np.array([[[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]]], np.float32)
    y = reference.run(f, x)[0]
    for r, row in enumerate(x[0].astype(np.float64)):
        norm = (row - row.mean()) / np.sqrt(row.var() + 1e-5)
        np.testing.assert_allclose(y[r], norm * scale + bias, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,axis_len", [((4, 16), 16), ((3, 5, 7), 35), ((10,), 10)])
def test_layernorm_compiled_matches_reference(shape, axis_len):
    f, _, _ = _ln_model(shape, axis_len, seed=len(shape))
    X = (np.random.default_rng(3).standard_normal((33,) + shape) * 4 + 1).astype(np.float32)
    want = reference.run(f, X)
    for got in _paths(f, X):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
