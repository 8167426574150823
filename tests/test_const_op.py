"""CONST (a stored tensor as a layer's output): the reference executor, every compiled path, the
int64 output rule, .rtm round trips, planning errors, and ONNX import (Constant, Shape of a
fixed-size tensor) and export, each compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

import onnx
from onnx import TensorProto, helper
from onnx_graphs import graph_model, ort_run
from optional import needs_onnxruntime

import rtinfer
from export import from_onnx, to_onnx
from export.onnx_import import OnnxImportError
from rtinfer import reference
from rtinfer.frozen import BufferBuilder, FrozenModel, FrozenModelError, Layer, Output
from rtinfer.ops import Op
from rtinfer.plan import PlanError, build_plan


def _const_model(value, in_shape=(3,), dtype="float32", with_dense=False):
    """Input -> [DENSE] and a CONST output (value's shape); with_dense: two outputs."""
    bb = BufferBuilder()
    value = np.asarray(value, np.float32)
    layers = [Layer(Op.CONST, in_shape, value.shape, tensors={"value": bb.add(value)}, inputs=(0,))]
    outs = [Output(1, value.shape, dtype)]
    if with_dense:
        n = int(np.prod(in_shape))
        W = np.arange(n * 2, dtype=np.float32).reshape(n, 2) / 7
        layers.append(Layer(Op.DENSE, (n,), (2,), tensors={"W": bb.add(W), "b": bb.add(np.ones(2, np.float32))},
                            inputs=(0,)))
        outs.append(Output(2, (2,)))
    return FrozenModel(tuple(layers), bb.finish(), in_shape, outputs=tuple(outs))


def _paths(frozen, X):
    rt = rtinfer.load(frozen, batch="exact")
    ys = [rt.predict(X), rt.stream(X)]
    if len(frozen.outputs) == 1:
        ys.append(np.stack([rt.predict_one(x) for x in X]))
    ys.append(rtinfer.load(frozen).predict(X))
    return ys


def test_const_reference_closed_form_ignores_the_input():
    value = np.array([[1.5, -2.0], [np.inf, 0.25]], np.float32)
    f = _const_model(value)
    X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    y = reference.run(f, X)
    assert y.shape == (4, 2, 2) and y.dtype == np.float32
    assert np.array_equal(y, np.broadcast_to(value, (4, 2, 2)))
    assert np.array_equal(reference.run(f, X * 0 + 7), y)


@pytest.mark.parametrize("n", [1, 5, 37])
def test_const_compiled_equals_reference_on_every_path(n):
    value = np.random.default_rng(n).standard_normal((3, 5)).astype(np.float32)
    f = _const_model(value, in_shape=(2, 4))
    X = np.random.default_rng(1).standard_normal((n, 2, 4)).astype(np.float32)
    want = reference.run(f, X)
    for got in _paths(f, X):
        assert np.array_equal(got, want)


def test_const_beside_a_computed_output():
    f = _const_model(np.arange(6, dtype=np.float32).reshape(2, 3), in_shape=(4,), with_dense=True)
    X = np.random.default_rng(2).standard_normal((19, 4)).astype(np.float32)
    want = reference.run(f, X)
    for got in _paths(f, X):
        assert np.array_equal(got[0], want[0])  # the constant, bit for bit
        np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)


def test_const_int64_output_exact_values():
    value = np.array([3, 4, -5, 2 ** 24], np.float32)
    f = _const_model(value, dtype="int64")
    X = np.zeros((3, 3), np.float32)
    want = np.broadcast_to(np.array([3, 4, -5, 2 ** 24], np.int64), (3, 4))
    y = reference.run(f, X)
    assert y.dtype == np.int64 and np.array_equal(y, want)
    for got in _paths(f, X):
        assert got.dtype == np.int64 and np.array_equal(got, want)


@pytest.mark.parametrize("bad", [[0.5], [2.0 ** 24 + 2], [np.nan], [-np.inf]])
def test_const_int64_output_needs_exact_integers(bad):
    with pytest.raises(FrozenModelError, match="integer values of magnitude <= 2\\^24"):
        _const_model(np.array(bad, np.float32), dtype="int64")


def test_int64_output_still_refused_from_other_ops():
    bb = BufferBuilder()
    layers = (Layer(Op.ACT, (3,), (3,)),)
    with pytest.raises(FrozenModelError, match="needs an ARGMAX or CONST result"):
        FrozenModel(layers, bb.finish(), (3,), outputs=(Output(1, (3,), "int64"),))


def test_const_value_of_the_wrong_size_is_a_plan_error():
    bb = BufferBuilder()
    layer = Layer(Op.CONST, (3,), (2, 2), tensors={"value": bb.add(np.zeros(3, np.float32))})
    f = FrozenModel((layer,), bb.finish(), (3,), (2, 2))
    with pytest.raises(PlanError, match="tensor 'value' has shape \\(3,\\), expected \\(2, 2\\)"):
        build_plan(f)
    bb = BufferBuilder()
    layer = Layer(Op.CONST, (3,), (2,), tensors={})
    with pytest.raises(PlanError, match="missing tensor 'value'"):
        build_plan(FrozenModel((layer,), bb.finish(), (3,), (2,)))


def test_const_rtm_round_trip(tmp_path):
    f = _const_model(np.array([7, 8, 9], np.float32), dtype="int64", with_dense=True)
    path = tmp_path / "c.rtm"
    f.save(path)
    g = rtinfer.load_frozen(path)
    assert [layer.op for layer in g.layers] == [Op.CONST, Op.DENSE]
    assert g.outputs == f.outputs
    X = np.random.default_rng(3).standard_normal((5, 3)).astype(np.float32)
    got, want = rtinfer.load(path).predict(X), reference.run(f, X)
    assert got[0].dtype == np.int64 and np.array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)


# -- ONNX ----------------------------------------------------------------------------------------

def _model(nodes, inputs, outputs, inits=()):
    return graph_model(nodes, inputs, outputs, inits, opset=21)


@needs_onnxruntime
@pytest.mark.parametrize("start,end", [(None, None), (1, None), (None, -1), (-2, 3), (0, 1)])
def test_shape_of_a_fixed_size_input_matches_onnxruntime(start, end):
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    m = _model([helper.make_node("Shape", ["x"], ["y"], **attrs)],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4, 5])],
               [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    X = np.random.default_rng(4).standard_normal((3, 4, 5)).astype(np.float32)
    want = ort_run(m, {"x": X})[0]
    f = from_onnx(m)
    assert f.meta.get("batch") == "none" and f.layers[-1].op == Op.CONST
    got = rtinfer.load(f).predict(X)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    # and back out through to_onnx: onnxruntime gives the same values and type
    back = ort_run(to_onnx(f), {"input": X})[0]
    assert back.dtype == np.int64 and np.array_equal(back, want)


@needs_onnxruntime
def test_constant_output_beside_a_computed_one_matches_onnxruntime():
    value = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    m = _model([helper.make_node("Constant", [], ["c"], value=onnx.numpy_helper.from_array(value)),
                helper.make_node("Relu", ["x"], ["r"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
               [helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 4]),
                helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 3])])
    X = np.random.default_rng(5).standard_normal((2, 4)).astype(np.float32)
    want = ort_run(m, {"x": X})
    f = from_onnx(m, output=["r", "c"])
    got = rtinfer.load(f).predict(X)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape and np.array_equal(g, w)
    for g, w in zip(ort_run(to_onnx(f), {"input": X}), want):
        assert g.dtype == w.dtype and np.array_equal(g, w)


def test_constant_output_with_a_dynamic_batch_is_one_clear_error():
    m = _model([helper.make_node("Shape", ["x"], ["y"], start=1)],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 5])],
               [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    with pytest.raises(OnnxImportError, match="output 'y' is a constant.*no batch axis"):
        from_onnx(m)


@needs_onnxruntime
def test_const_in_a_batched_model_exports_per_sample():
    """A hand-built batched model with a CONST output: to_onnx repeats it per sample."""
    f = _const_model(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), in_shape=(3,), with_dense=True)
    X = np.random.default_rng(6).standard_normal((4, 3)).astype(np.float32)
    got = ort_run(to_onnx(f), {"input": X})
    for g, w in zip(got, reference.run(f, X)):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


@needs_onnxruntime
def test_graph_without_inputs_imports_with_a_placeholder_input():
    value = np.random.default_rng(7).standard_normal((5, 5)).astype(np.float32)
    m = _model([helper.make_node("Constant", [], ["values"], value=onnx.numpy_helper.from_array(value))],
               [], [helper.make_tensor_value_info("values", TensorProto.FLOAT, [5, 5])])
    want = ort_run(m, {})[0]
    f = from_onnx(m)
    assert f.input_shape == () and f.meta.get("batch") == "none"
    got = rtinfer.load(f).predict(np.zeros((), np.float32))
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert np.array_equal(ort_run(to_onnx(f), {"input": np.array(3.0, np.float32)})[0], want)


@needs_onnxruntime
def test_declared_but_unread_input_stays_the_input():
    m = _model([helper.make_node("Constant", [], ["c"], value_ints=[4, 2])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
               [helper.make_tensor_value_info("c", TensorProto.INT64, [2])])
    f = from_onnx(m)
    assert f.input_shape == (2, 3)
    X = np.ones((2, 3), np.float32)
    assert np.array_equal(rtinfer.load(f).predict(X), ort_run(m, {"x": X})[0])
    with pytest.raises(Exception, match="shape"):
        rtinfer.load(f).predict(np.ones((3, 3), np.float32))


@needs_onnxruntime
@pytest.mark.parametrize("dtype,otype", [(np.int32, TensorProto.INT32), (np.int8, TensorProto.INT8),
                                         (np.uint8, TensorProto.UINT8)])
def test_integer_constant_outputs_keep_their_type(dtype, otype):
    lo, hi = (-(1 << 24), 1 << 24) if dtype == np.int32 else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    value = np.array([[0, 1, 2], [lo, hi, 7]], dtype)
    m = _model([helper.make_node("Constant", [], ["c"], value=onnx.numpy_helper.from_array(value))],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
               [helper.make_tensor_value_info("c", otype, [2, 3])])
    X = np.zeros(2, np.float32)
    want = ort_run(m, {"x": X})[0]
    f = from_onnx(m)
    got = rtinfer.load(f).predict(X)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    back = ort_run(to_onnx(f), {"input": X})[0]
    assert back.dtype == want.dtype and np.array_equal(back, want)


def test_int32_constant_beyond_2_24_is_one_clear_error():
    value = np.array([1 << 25], np.int32)
    m = _model([helper.make_node("Constant", [], ["c"], value=onnx.numpy_helper.from_array(value))],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
               [helper.make_tensor_value_info("c", TensorProto.INT32, [1])])
    with pytest.raises(OnnxImportError, match="beyond 2\\^24"):
        from_onnx(m)
