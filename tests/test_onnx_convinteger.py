"""ConvInteger import: hand-built graphs (QuantizeLinear or a uint8/int8 graph input ->
ConvInteger -> Cast(float) -> Mul(scale) [-> Add(bias)] [-> Relu]) compared with onnxruntime
(basic graph optimizations) on the reference executor and the compiled runtime, 1-D and 2-D,
int8 and uint8, with and without zero points, and the refusals (sums that float32 cannot hold
exactly, per-channel x zero point, a float runtime input).

Where a Mul scale follows, it is folded into the float32 CONV weights, so those results are
float-accurate (rtol/atol 1e-5, absolute for cancellation near 0), not exact; the integer sums
alone (Cast without a scale) are compared exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from optional import needs_onnxruntime  # noqa: E402
from optional import onnxruntime as ort  # noqa: E402

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import rtinfer  # noqa: E402
from export.onnx_import import SUPPORTED_OPS, OnnxImportError, from_onnx  # noqa: E402
from rtinfer import reference  # noqa: E402
from rtinfer.ops import Act, Op  # noqa: E402

RNG = np.random.default_rng(8)


def _model(nodes, inits, in_dims, out_dims, in_type=TensorProto.FLOAT, out_type=TensorProto.FLOAT):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", in_type, in_dims)],
                          [helper.make_tensor_value_info("y", out_type, out_dims)],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _ort(model, X):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X})[0]


def _run_all(frozen, X):
    """(reference output, runtime output) for float32 values X."""
    Xf = np.asarray(X, np.float32)
    return reference.run(frozen, Xf), rtinfer.load(frozen).predict(Xf)


def _conv_chain(w, w_zp, x_zp, scale, bias=None, relu=False, quantize=None, **conv_attrs):
    """Nodes and initializers: [QuantizeLinear ->] ConvInteger -> Cast -> Mul [-> Add] [-> Relu] -> y.
    quantize: (x_scale, x_zp array) to quantize a float input first, else x is the 8-bit input."""
    inits = {"w": w, "scale": scale}
    nodes = []
    src = "x"
    if quantize is not None:
        inits["qs"], inits["qz"] = np.float32(quantize[0]), quantize[1]
        nodes.append(helper.make_node("QuantizeLinear", ["x", "qs", "qz"], ["q"]))
        src = "q"
    ins = [src, "w", "", ""]
    if x_zp is not None:
        inits["xz"] = x_zp
        ins[2] = "xz"
    if w_zp is not None:
        inits["wz"] = w_zp
        ins[3] = "wz"
    while ins[-1] == "":
        ins.pop()
    nodes.append(helper.make_node("ConvInteger", ins, ["acc"], **conv_attrs))
    nodes.append(helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT))
    last = "scaled"
    nodes.append(helper.make_node("Mul", ["accf", "scale"], [last]))
    if bias is not None:
        inits["bias"] = bias
        nodes.append(helper.make_node("Add", [last, "bias"], ["biased"]))
        last = "biased"
    if relu:
        nodes.append(helper.make_node("Relu", [last], ["relu"]))
        last = "relu"
    nodes[-1].output[0] = "y"
    return nodes, inits


def test_convinteger_is_supported():
    assert "ConvInteger" in SUPPORTED_OPS


@needs_onnxruntime
@pytest.mark.parametrize("per_channel_zp", [False, True])
def test_2d_static_quantized_int8(per_channel_zp):
    """QuantizeLinear(int8) -> ConvInteger(int8 w) -> Cast -> Mul -> Add -> Relu. onnxruntime's
    ConvInteger takes only a per-tensor weight zero point; per output channel, onnx's reference
    evaluator (the op's definition) is the judge."""
    o, c = 4, 3
    w = RNG.integers(-90, 90, (o, c, 3, 3)).astype(np.int8)
    w_zp = np.array([0, 3, -2, 5], np.int8) if per_channel_zp else np.int8(3)
    x_zp = np.int8(-7)
    x_scale = 0.04
    w_scale = np.array([0.01, 0.02, 0.015, 0.005], np.float32)
    scale = (np.float32(x_scale) * w_scale).astype(np.float32).reshape(1, o, 1, 1)
    bias = RNG.normal(0, 0.5, (1, o, 1, 1)).astype(np.float32)
    nodes, inits = _conv_chain(w, w_zp, x_zp, scale, bias, relu=True, quantize=(x_scale, x_zp),
                               pads=[1, 0, 1, 2], strides=[1, 2])
    m = _model(nodes, inits, ["N", c, 9, 10], ["N", o, 9, 5])
    X = RNG.normal(0, 2.0, (7, c, 9, 10)).astype(np.float32)
    fm = from_onnx(m)
    # ConvInteger = DEQUANTIZE(scale 1) + CONV; Cast, Mul, Add and Relu fold into the CONV
    assert [la.op for la in fm.layers] == [Op.QUANTIZE, Op.DEQUANTIZE, Op.CONV]
    assert fm.layers[1].attrs["x_scale"] == 1.0 and fm.layers[1].attrs["x_zp"] == -7
    assert fm.layers[2].act == Act.RELU
    if per_channel_zp:
        from onnx.reference import ReferenceEvaluator
        want = ReferenceEvaluator(m).run(None, {"x": X})[0]
    else:
        want = _ort(m, X)
    for got in _run_all(fm, X):
        assert got.shape == want.shape == (7, o, 9, 5)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@needs_onnxruntime
def test_2d_integer_sums_are_exact():
    """Cast to float without a scale: the float32 CONV reproduces onnxruntime's int32 sums exactly,
    at the worst case of the exactness check (every weight at the int8 extreme)."""
    o, c = 3, 8
    w = RNG.integers(-128, 128, (o, c, 3, 3)).astype(np.int8)
    w[0] = -128  # 72 weights * 128 * 255 = 2,350,080: large, still exact
    x_zp = np.uint8(255)
    m = _model([helper.make_node("ConvInteger", ["x", "w", "xz"], ["acc"], pads=[1, 1, 1, 1]),
                helper.make_node("Cast", ["acc"], ["y"], to=TensorProto.FLOAT)],
               {"w": w, "xz": x_zp}, ["N", c, 6, 6], ["N", o, 6, 6], in_type=TensorProto.UINT8)
    X = RNG.integers(0, 256, (5, c, 6, 6)).astype(np.uint8)
    X[0] = 0  # the largest |x - x_zp|
    fm = from_onnx(m)
    assert [la.op for la in fm.layers] == [Op.QUANTIZE, Op.DEQUANTIZE, Op.CONV]
    want = _ort(m, X).astype(np.float32)
    assert np.abs(want).max() > 1e6
    for got in _run_all(fm, X):
        np.testing.assert_array_equal(got, want)


@needs_onnxruntime
def test_2d_uint8_without_zero_points_grouped():
    """uint8 input and weights, both zero points omitted (0), group=2, dilations."""
    o, c = 4, 4
    w = RNG.integers(0, 20, (o, c // 2, 2, 3)).astype(np.uint8)
    scale = np.float32(0.001)
    nodes, inits = _conv_chain(w, None, None, scale, group=2, dilations=[2, 1])
    m = _model(nodes, inits, ["N", c, 7, 8], ["N", o, 5, 6], in_type=TensorProto.UINT8)
    X = RNG.integers(0, 256, (6, c, 7, 8)).astype(np.uint8)
    fm = from_onnx(m)
    assert fm.layers[2].attrs["group"] == 2
    want = _ort(m, X)
    for got in _run_all(fm, X):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@needs_onnxruntime
@pytest.mark.parametrize("w_dtype", [np.uint8, np.int8])
def test_1d_uint8_input_with_zero_points(w_dtype):
    """(N, C, L) uint8 input, x_zp 128-ish, weight zero point per tensor, pads/stride/dilation."""
    o, c = 5, 2
    if w_dtype == np.uint8:
        w = RNG.integers(0, 256, (o, c, 4)).astype(np.uint8)
        w_zp = np.uint8(131)
    else:
        w = RNG.integers(-128, 128, (o, c, 4)).astype(np.int8)
        w_zp = np.int8(-4)
    x_zp = np.uint8(121)
    scale = np.float32(0.0005)
    nodes, inits = _conv_chain(w, w_zp, x_zp, scale, pads=[3, 1], strides=[2], dilations=[2])
    m = _model(nodes, inits, ["N", c, 30], ["N", o, 14], in_type=TensorProto.UINT8)
    X = RNG.integers(0, 256, (8, c, 30)).astype(np.uint8)
    fm = from_onnx(m)
    assert [la.op for la in fm.layers] == [Op.QUANTIZE, Op.DEQUANTIZE, Op.CONV]
    assert fm.layers[2].in_shape == (c, 30) and fm.layers[2].out_shape == (o, 14)
    want = _ort(m, X)
    for got in _run_all(fm, X):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@needs_onnxruntime
def test_1d_static_quantized_uint8_matches_onnx_reference():
    """QuantizeLinear to uint8 -> ConvInteger with auto_pad SAME_UPPER; onnx's reference evaluator
    (the op's definition) agrees as well."""
    from onnx.reference import ReferenceEvaluator
    o, c = 3, 4
    w = RNG.integers(-50, 50, (o, c, 5)).astype(np.int8)
    x_scale, x_zp = 0.05, np.uint8(128)
    scale = (np.float32(x_scale) * np.float32(0.02)).astype(np.float32)
    bias = RNG.normal(0, 0.1, (o, 1)).astype(np.float32)
    nodes, inits = _conv_chain(w, None, x_zp, scale, bias, quantize=(x_scale, x_zp), auto_pad="SAME_UPPER")
    m = _model(nodes, inits, ["N", c, 16], ["N", o, 16])
    X = RNG.normal(0, 3.0, (5, c, 16)).astype(np.float32)
    fm = from_onnx(m)
    want = _ort(m, X)
    np.testing.assert_allclose(ReferenceEvaluator(m).run(None, {"x": X})[0], want, rtol=1e-5, atol=1e-5)
    for got in _run_all(fm, X):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@needs_onnxruntime
@pytest.mark.parametrize("one_d", [False, True])
def test_static_quantized_chain_becomes_qconv(one_d):
    """QuantizeLinear -> ConvInteger -> Cast -> Mul(x_scale * w_scale per channel) -> Add(bias) ->
    Relu -> QuantizeLinear -> DequantizeLinear: the integer pattern becomes one QCONV (x_scale 1,
    w_scale = the Mul scale, bias rounded to int32 at that scale), within one output step of
    onnxruntime; the reference executor and the runtime agree bit for bit."""
    o, c = 6, 4
    kernel = (3,) if one_d else (3, 3)
    w = RNG.integers(-127, 128, (o, c) + kernel).astype(np.int8)
    x_scale, x_zp = 0.05, np.int8(5)
    w_scale = RNG.uniform(0.002, 0.01, o).astype(np.float32)
    cshape = (1, o, 1) if one_d else (1, o, 1, 1)
    scale = (np.float32(x_scale) * w_scale).astype(np.float32).reshape(cshape)
    bias = RNG.normal(0, 0.3, cshape).astype(np.float32)
    pads = [1, 1] if one_d else [1, 1, 1, 1]
    nodes, inits = _conv_chain(w, np.int8(0), x_zp, scale, bias, relu=True, quantize=(x_scale, x_zp), pads=pads)
    nodes[-1].output[0] = "r"
    y_scale, y_zp = 0.08, np.int8(-100)
    inits.update(ys=np.float32(y_scale), yz=y_zp)
    nodes += [helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    spatial = [40] if one_d else [8, 9]
    m = _model(nodes, inits, ["N", c] + spatial, ["N", o] + spatial)
    X = RNG.normal(0, 2.0, (9, c, *spatial)).astype(np.float32)
    fm = from_onnx(m)
    assert [la.op for la in fm.layers] == [Op.QUANTIZE, Op.QCONV, Op.DEQUANTIZE]
    qc = fm.layers[1]
    assert qc.attrs["x_scale"] == 1.0 and qc.attrs["x_zp"] == 5 and qc.attrs["qmin"] == -100
    np.testing.assert_array_equal(fm.tensor(qc, "w_scale"), scale.reshape(-1))
    want = _ort(m, X)
    ref, run = _run_all(fm, X)
    np.testing.assert_array_equal(ref, run)
    # compared as output codes (the float32 dequantized values carry rounding of their own)
    steps = np.abs(np.rint(ref.astype(np.float64) / y_scale) - np.rint(want.astype(np.float64) / y_scale))
    assert steps.max() <= 1 and np.mean(steps == 0) >= 0.99


def test_backend_node_cases_with_a_float_cast():
    """onnx's own ConvInteger node tests end in an int32 output (skip-listed in the conformance
    test); with a Cast(float) appended, both match their expected values exactly."""
    from onnx.backend.test.loader import load_model_tests

    from onnx_conformance_lib import freeze_extra_inputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [c for c in load_model_tests(kind="node") if c.name.startswith("test_convinteger")]
    assert sorted(c.name for c in cases) == ["test_convinteger_with_padding", "test_convinteger_without_padding"]
    for case in cases:
        inputs, outputs = case.data_sets[0]
        m = freeze_extra_inputs(case.model, inputs)
        g = m.graph
        out = g.output[0]
        g.node.append(helper.make_node("Cast", [out.name], ["y_float"], to=TensorProto.FLOAT))
        out.name = "y_float"
        out.type.tensor_type.elem_type = TensorProto.FLOAT
        fm = from_onnx(m)
        X = np.asarray(inputs[0])
        want = np.asarray(outputs[0]).astype(np.float32)
        for got in _run_all(fm, X):
            np.testing.assert_array_equal(got, want, err_msg=case.name)


# ---------------------------------------------------------------------------------------------
# refusals


def test_sums_beyond_float32_exactness_are_refused():
    """64 channels x 3x3 weights at -128 with x_zp = 255: sums up to 576 * 128 * 255 > 2^24."""
    w = np.full((2, 64, 3, 3), -128, np.int8)
    m = _model([helper.make_node("ConvInteger", ["x", "w", "xz"], ["acc"]),
                helper.make_node("Cast", ["acc"], ["y"], to=TensorProto.FLOAT)],
               {"w": w, "xz": np.uint8(255)}, ["N", 64, 5, 5], ["N", 2, 3, 3], in_type=TensorProto.UINT8)
    with pytest.raises(OnnxImportError, match=r"ConvInteger.*2\^24"):
        from_onnx(m)
    # the same weights with a zero point at mid range halve max |x - x_zp|: 576 * 128 * 128 < 2^24
    m.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.uint8(128), "xz"))
    assert [la.op for la in from_onnx(m).layers][-1] == Op.CONV


def test_per_channel_x_zero_point_is_refused():
    w = RNG.integers(-5, 5, (2, 2, 3)).astype(np.int8)
    m = _model([helper.make_node("ConvInteger", ["x", "w", "xz"], ["acc"]),
                helper.make_node("Cast", ["acc"], ["y"], to=TensorProto.FLOAT)],
               {"w": w, "xz": np.array([1, 2], np.uint8)}, ["N", 2, 8], ["N", 2, 6], in_type=TensorProto.UINT8)
    with pytest.raises(OnnxImportError, match="ConvInteger.*x zero point"):
        from_onnx(m)


def test_x_zero_point_of_another_type_is_refused():
    w = RNG.integers(-5, 5, (2, 2, 3)).astype(np.int8)
    m = _model([helper.make_node("ConvInteger", ["x", "w", "xz"], ["acc"]),
                helper.make_node("Cast", ["acc"], ["y"], to=TensorProto.FLOAT)],
               {"w": w, "xz": np.int8(3)}, ["N", 2, 8], ["N", 2, 6], in_type=TensorProto.UINT8)
    with pytest.raises(OnnxImportError, match="ConvInteger.*x zero point of dtype int8"):
        from_onnx(m)


@needs_onnxruntime
def test_integer_graph_output_is_int32():
    """ConvInteger as the graph output: the exact sums come back as int32, as onnxruntime gives them."""
    w = RNG.integers(-5, 5, (2, 2, 3)).astype(np.int8)
    m = _model([helper.make_node("ConvInteger", ["x", "w"], ["y"])], {"w": w}, ["N", 2, 8], ["N", 2, 6],
               in_type=TensorProto.UINT8, out_type=TensorProto.INT32)
    f = from_onnx(m)
    assert f.output_dtype == "int32"
    Xu = RNG.integers(0, 256, (5, 2, 8)).astype(np.uint8)
    want = _ort(m, Xu)
    got = rtinfer.load(f).predict(Xu.astype(np.float32))
    assert got.dtype == np.int32 and np.array_equal(got, want)


def test_float_runtime_input_is_refused():
    """ConvInteger needs an 8-bit runtime tensor; a float one (an invalid graph) is refused by name."""
    w = RNG.integers(-5, 5, (2, 2, 3)).astype(np.int8)
    m = _model([helper.make_node("ConvInteger", ["x", "w"], ["acc"]),
                helper.make_node("Cast", ["acc"], ["y"], to=TensorProto.FLOAT)],
               {"w": w}, ["N", 2, 8], ["N", 2, 6])
    with pytest.raises(OnnxImportError, match="ConvInteger.*quantized input x"):
        from_onnx(m)
