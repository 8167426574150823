"""int8 / uint8 model outputs (the codes of a quantized tensor): which layers may produce them,
every compiled path and the reference bit for bit, .rtm round trips, and ONNX import
(QuantizeLinear / MaxPool on uint8 / an int8 Identity as graph outputs) and export against
onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from onnx import TensorProto, helper, numpy_helper
from onnx_graphs import graph_model, ort_run
from optional import needs_onnxruntime

import rtinfer
from export import from_onnx, to_onnx
from rtinfer import quant, reference
from rtinfer.boundary import InputError
from rtinfer.frozen import BufferBuilder, FrozenModel, FrozenModelError, Layer, Output
from rtinfer.ops import Op

SCALE, ZP = 0.05, 3


def _codes_model(dtype, with_float=False, x_scale=1.0):
    """x (5,) -> QUANTIZE(SCALE, ZP) -> DEQUANTIZE(x_scale, 0 | -128) as the codes output."""
    zp = 0 if dtype == "int8" else -128
    layers = [Layer(Op.QUANTIZE, (5,), (5,), attrs={"y_scale": SCALE, "y_zp": ZP}),
              Layer(Op.DEQUANTIZE, (5,), (5,), attrs={"x_scale": x_scale, "x_zp": zp})]
    outs = [Output(2, (5,), dtype)]
    if with_float:
        layers.append(Layer(Op.DEQUANTIZE, (5,), (5,), attrs={"x_scale": SCALE, "x_zp": ZP}, inputs=(1,)))
        outs.append(Output(3, (5,)))
    return FrozenModel(tuple(layers), BufferBuilder().finish(), (5,), outputs=tuple(outs))


def _want(X, dtype):
    q = quant.quantize(X, SCALE, ZP).astype(np.int64)
    return (q if dtype == "int8" else q + 128).astype(dtype)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_codes_output_every_path_bit_exact(dtype):
    f = _codes_model(dtype)
    X = (np.random.default_rng(0).standard_normal((40, 5)) * 8).astype(np.float32)  # saturates too
    want = _want(X, dtype)
    assert want.min() == (-128 if dtype == "int8" else 0) and want.max() == (127 if dtype == "int8" else 255)
    y = reference.run(f, X)
    assert y.dtype == np.dtype(dtype) and np.array_equal(y, want)
    for batch in ("exact", "auto"):
        rt = rtinfer.load(f, batch=batch)
        for got in (rt.predict(X), rt.stream(X), np.stack([rt.predict_one(x) for x in X])):
            assert got.dtype == np.dtype(dtype) and np.array_equal(got, want)
        out = np.empty((40, 5), dtype)
        assert rt.predict(X, out=out) is out and np.array_equal(out, want)
        one = np.empty(5, dtype)
        assert rt.predict_one(X[3], out=one) is one and np.array_equal(one, want[3])
        with pytest.raises(InputError, match=f"{dtype} array"):
            rt.predict(X, out=np.empty((40, 5), np.float32))


def test_codes_beside_a_float_output():
    f = _codes_model("uint8", with_float=True)
    X = np.random.default_rng(1).standard_normal((9, 5)).astype(np.float32)
    rt = rtinfer.load(f)
    for got in (rt.predict(X), rt.stream(X)):
        assert got[0].dtype == np.uint8 and np.array_equal(got[0], _want(X, "uint8"))
        assert got[1].dtype == np.float32 and np.array_equal(got[1], reference.run(f, X)[1])


def test_integer_outputs_need_exact_producers():
    with pytest.raises(FrozenModelError, match="dtype int8 from a DEQUANTIZE needs x_scale 1 and x_zp 0"):
        _codes_model("int8", x_scale=0.5)
    with pytest.raises(FrozenModelError, match="dtype uint8 needs a DEQUANTIZE"):
        FrozenModel((Layer(Op.ACT, (3,), (3,)),), BufferBuilder().finish(), (3,), outputs=(Output(1, (3,), "uint8"),))
    with pytest.raises(FrozenModelError, match="dtype int64 needs an ARGMAX or CONST"):
        FrozenModel((Layer(Op.ACT, (3,), (3,)),), BufferBuilder().finish(), (3,), outputs=(Output(1, (3,), "int64"),))
    with pytest.raises(FrozenModelError, match="dtype int32 needs an integer DENSE / CONV, WRAP .int32 range. or CONST"):
        FrozenModel((Layer(Op.ACT, (3,), (3,)),), BufferBuilder().finish(), (3,), outputs=(Output(1, (3,), "int32"),))
    with pytest.raises(FrozenModelError, match="must be one of"):
        FrozenModel((Layer(Op.ACT, (3,), (3,)),), BufferBuilder().finish(), (3,), outputs=(Output(1, (3,), "int16"),))
    for dtype, bad in (("int8", 128.0), ("uint8", -1.0), ("uint8", 2.5)):
        bb = BufferBuilder()
        layer = Layer(Op.CONST, (3,), (2,), tensors={"value": bb.add(np.array([0.0, bad], np.float32))})
        with pytest.raises(FrozenModelError, match=f"dtype {dtype} from a CONST needs integer values in"):
            FrozenModel((layer,), bb.finish(), (3,), outputs=(Output(1, (2,), dtype),))
    bb = BufferBuilder()
    layer = Layer(Op.CONST, (3,), (2,), tensors={"value": bb.add(np.array([0.0, 255.0], np.float32))})
    f = FrozenModel((layer,), bb.finish(), (3,), outputs=(Output(1, (2,), "uint8"),))
    assert np.array_equal(rtinfer.load(f).predict(np.zeros((2, 3), np.float32)), [[0, 255], [0, 255]])


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_codes_output_rtm_round_trip(tmp_path, dtype):
    f = _codes_model(dtype, with_float=True)
    f.save(tmp_path / "q.rtm")
    g = rtinfer.load_frozen(tmp_path / "q.rtm")
    assert g.outputs == f.outputs
    X = np.random.default_rng(2).standard_normal((6, 5)).astype(np.float32)
    assert np.array_equal(rtinfer.load(g).predict(X)[0], _want(X, dtype))


# -- ONNX ----------------------------------------------------------------------------------------

def _same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


@needs_onnxruntime
@pytest.mark.parametrize("zp", [np.uint8(17), np.int8(-5)])
def test_quantizelinear_output_matches_onnxruntime(zp):
    otype = TensorProto.UINT8 if zp.dtype == np.uint8 else TensorProto.INT8
    m = graph_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("QuantizeLinear", ["r", "s", "z"], ["y"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 3])],
               [helper.make_tensor_value_info("y", otype, ["N", 4, 3])],
               [numpy_helper.from_array(np.array(0.02, np.float32), "s"), numpy_helper.from_array(np.array(zp), "z")])
    X = (np.random.default_rng(3).standard_normal((11, 4, 3)) * 3).astype(np.float32)
    want = ort_run(m, {"x": X})[0]
    f = from_onnx(m)
    _same(rtinfer.load(f).predict(X), want)
    _same(reference.run(f, X), want)
    _same(ort_run(to_onnx(f), {"input": X})[0], want)


@needs_onnxruntime
@pytest.mark.parametrize("zp", [np.uint8(17), np.int8(-5)])
def test_codes_output_without_batch_axis_exports_for_onnxruntime(zp):
    """Without a batch axis to_onnx reshapes the output: the Cast comes first, since
    DequantizeLinear -> Reshape makes onnxruntime's QDQ propagation build an invalid node."""
    otype = TensorProto.UINT8 if zp.dtype == np.uint8 else TensorProto.INT8
    m = graph_model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])],
                    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                    [helper.make_tensor_value_info("y", otype, [3, 4])],
                    [numpy_helper.from_array(np.array(0.02, np.float32), "s"), numpy_helper.from_array(np.array(zp), "z")])
    m.metadata_props.add(key="batch", value="none")
    X = (np.random.default_rng(9).standard_normal((3, 4)) * 2).astype(np.float32)
    want = ort_run(m, {"x": X})[0]
    f = from_onnx(m)
    assert f.meta["batch"] == "none"
    _same(rtinfer.load(f).predict(X), want)
    _same(ort_run(to_onnx(f), {"input": X})[0], want)


@needs_onnxruntime
def test_maxpool_on_uint8_output_matches_onnxruntime():
    m = graph_model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
               [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 2, 6, 6])],
               [helper.make_tensor_value_info("y", TensorProto.UINT8, ["N", 2, 3, 3])])
    Xu = np.random.default_rng(4).integers(0, 256, (5, 2, 6, 6)).astype(np.uint8)
    want = ort_run(m, {"x": Xu})[0]
    f = from_onnx(m)
    X = Xu.astype(np.float32)
    _same(rtinfer.load(f).predict(X), want)
    _same(ort_run(to_onnx(f), {"input": X})[0], want)


def test_codes_output_through_the_batch_path():
    """DENSE -> QUANTIZE -> codes: batches of >= AUTO_MIN_BATCH take rtinfer.batch's GEMM path."""
    rng = np.random.default_rng(5)
    bb = BufferBuilder()
    W = (rng.standard_normal((64, 64)) / 8).astype(np.float32)
    layers = (Layer(Op.DENSE, (64,), (64,), tensors={"W": bb.add(W), "b": bb.add(np.zeros(64, np.float32))}),
              Layer(Op.QUANTIZE, (64,), (64,), attrs={"y_scale": 0.04, "y_zp": -7}),
              Layer(Op.DEQUANTIZE, (64,), (64,), attrs={"x_scale": 1.0, "x_zp": 0}))
    f = FrozenModel(layers, bb.finish(), (64,), outputs=(Output(3, (64,), "int8"),))
    X = rng.standard_normal((300, 64)).astype(np.float32)
    rt = rtinfer.load(f)
    assert rt._blas_path() is not None
    got, want = rt.predict(X), rtinfer.load(f, batch="exact").predict(X)
    assert got.dtype == np.int8 and np.array_equal(got, want)
    assert np.abs(want.astype(np.int64) - reference.run(f, X).astype(np.int64)).max() <= 1  # float32 sums


def _sums_model(W, b=None, x_scale=1.0, act=None):
    """x (3,) -> QUANTIZE(SCALE, ZP) -> DEQUANTIZE(x_scale, ZP) -> DENSE(W, b) as an int32 output."""
    bb = BufferBuilder()
    W = np.asarray(W, np.float32)
    b = np.zeros(W.shape[1], np.float32) if b is None else np.asarray(b, np.float32)
    kw = {} if act is None else {"act": act}
    layers = (Layer(Op.QUANTIZE, (3,), (3,), attrs={"y_scale": SCALE, "y_zp": ZP}),
              Layer(Op.DEQUANTIZE, (3,), (3,), attrs={"x_scale": x_scale, "x_zp": ZP}),
              Layer(Op.DENSE, (3,), (W.shape[1],), tensors={"W": bb.add(W), "b": bb.add(b)}, **kw))
    return FrozenModel(layers, bb.finish(), (3,), outputs=(Output(3, (W.shape[1],), "int32"),))


def test_int32_integer_sums_every_path_and_rtm(tmp_path):
    W = np.array([[1, -2], [3, 4], [-5, 6]], np.float32)
    f = _sums_model(W, b=[7, -8])
    X = (np.random.default_rng(6).standard_normal((50, 3)) * 4).astype(np.float32)
    q = quant.quantize(X, SCALE, ZP).astype(np.int64) - ZP
    want = (q @ W.astype(np.int64) + np.array([7, -8])).astype(np.int32)
    assert reference.run(f, X).dtype == np.int32 and np.array_equal(reference.run(f, X), want)
    f.save(tmp_path / "s.rtm")
    for model in (f, rtinfer.load_frozen(tmp_path / "s.rtm")):
        for batch in ("exact", "auto"):
            rt = rtinfer.load(model, batch=batch)
            for got in (rt.predict(X), rt.stream(X), np.stack([rt.predict_one(x) for x in X])):
                assert got.dtype == np.int32 and np.array_equal(got, want)


def test_int32_needs_provably_exact_sums():
    W = np.ones((3, 2), np.float32)
    with pytest.raises(FrozenModelError, match="input from a DEQUANTIZE with x_scale 1"):
        _sums_model(W, x_scale=0.5)
    with pytest.raises(FrozenModelError, match="no activation"):
        _sums_model(W, act=rtinfer.ops.Act.RELU)
    with pytest.raises(FrozenModelError, match="integer weights and bias"):
        _sums_model(W * 0.5)
    with pytest.raises(FrozenModelError, match="integer weights and bias"):
        _sums_model(W, b=[0.5, 0])
    with pytest.raises(FrozenModelError, match="below 2\\^24"):
        _sums_model(np.full((3, 2), 2.0 ** 16, np.float32))  # 3 * 2^16 * 131 > 2^24


@needs_onnxruntime
def test_matmulinteger_int32_output_matches_onnxruntime():
    rng = np.random.default_rng(7)
    B = rng.integers(0, 256, (5, 4)).astype(np.uint8)
    m = graph_model([helper.make_node("MatMulInteger", ["x", "B", "az", "bz"], ["y"])],
                    [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 5])],
                    [helper.make_tensor_value_info("y", TensorProto.INT32, ["N", 4])],
                    [numpy_helper.from_array(B, "B"), numpy_helper.from_array(np.array(120, np.uint8), "az"),
                     numpy_helper.from_array(np.array(131, np.uint8), "bz")])
    Xu = rng.integers(0, 256, (13, 5)).astype(np.uint8)
    want = ort_run(m, {"x": Xu})[0]
    f = from_onnx(m)
    X = Xu.astype(np.float32)
    _same(rtinfer.load(f).predict(X), want)
    _same(reference.run(f, X), want)
    _same(ort_run(to_onnx(f), {"input": X})[0], want)


@needs_onnxruntime
def test_convinteger_int32_output_matches_onnxruntime():
    rng = np.random.default_rng(8)
    w = rng.integers(-128, 128, (3, 2, 3, 3)).astype(np.int8)
    m = graph_model([helper.make_node("ConvInteger", ["x", "w", "xz"], ["y"], pads=[1, 1, 1, 1])],
                    [helper.make_tensor_value_info("x", TensorProto.INT8, ["N", 2, 5, 5])],
                    [helper.make_tensor_value_info("y", TensorProto.INT32, ["N", 3, 5, 5])],
                    [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(-3, np.int8), "xz")])
    Xi = rng.integers(-128, 128, (4, 2, 5, 5)).astype(np.int8)
    want = ort_run(m, {"x": Xi})[0]
    f = from_onnx(m)
    X = Xi.astype(np.float32)
    _same(rtinfer.load(f).predict(X), want)
    _same(ort_run(to_onnx(f), {"input": X})[0], want)
