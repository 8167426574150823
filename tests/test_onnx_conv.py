"""ONNX convolution and pooling: a PyTorch-style Conv1d graph imported and compared with
onnxruntime, CNN export (fp32 and int8 QDQ) run by onnxruntime, round trips, QDQ and
QLinearConv import, and clear errors for what rtinfer cannot run."""

from __future__ import annotations

import numpy as np
import pytest

import onnx  # noqa: E402
from optional import needs_onnxruntime  # noqa: E402
from optional import onnxruntime as ort  # noqa: E402

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import export  # noqa: E402
import rtinfer  # noqa: E402
from export.onnx_export import to_onnx  # noqa: E402
from export.onnx_import import OnnxImportError, from_onnx  # noqa: E402
from rtinfer import reference  # noqa: E402
from rtinfer.frozen import FrozenModel, Layer  # noqa: E402
from rtinfer.ops import Op  # noqa: E402
from rtinfer.train import (  # noqa: E402
    CNN, Activation, AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D, Dense, GlobalAvgPool, MaxPool1D, MaxPool2D,
    fit,
)


def _ort(model, X, name=None):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {name or sess.get_inputs()[0].name: X})[0]


def _model(nodes, inits, in_dims, out_dims, opset=13):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_dims)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return m


def pytorch_conv1d_model(rng):
    """What torch.onnx.export writes for Conv1d -> BatchNorm1d -> ReLU -> MaxPool1d -> Conv1d(groups)
    -> ReLU -> AdaptiveAvgPool1d(1) -> x.view(x.size(0), -1) -> Linear (opset 13)."""
    inits = {
        "conv1.weight": rng.normal(0, 0.4, (8, 2, 5)).astype(np.float32), "conv1.bias": rng.normal(0, 0.1, 8).astype(np.float32),
        "bn.weight": rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn.bias": rng.normal(0, 0.2, 8).astype(np.float32),
        "bn.running_mean": rng.normal(0, 0.3, 8).astype(np.float32), "bn.running_var": rng.uniform(0.5, 2, 8).astype(np.float32),
        "conv2.weight": rng.normal(0, 0.4, (8, 2, 3)).astype(np.float32), "conv2.bias": rng.normal(0, 0.1, 8).astype(np.float32),
        "fc.weight": rng.normal(0, 0.4, (4, 8)).astype(np.float32), "fc.bias": rng.normal(0, 0.1, 4).astype(np.float32),
        "c0": np.array(0, np.int64), "cm1": np.array([-1], np.int64), "ax0": np.array([0], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], dilations=[1], group=1, kernel_shape=[5],
                         pads=[2, 2], strides=[1]),
        helper.make_node("BatchNormalization", ["c1", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
                         ["b1"], epsilon=1e-5, momentum=0.9),
        helper.make_node("Relu", ["b1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2], pads=[0, 0], strides=[2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], dilations=[2], group=4,
                         kernel_shape=[3], pads=[2, 2], strides=[1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Shape", ["g"], ["s"]),
        helper.make_node("Gather", ["s", "c0"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "cm1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["g", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], alpha=1.0, beta=1.0, transB=1),
    ]
    return _model(nodes, inits, ["batch", 2, 50], ["batch", 4])


@needs_onnxruntime
def test_pytorch_style_conv1d_matches_onnxruntime():
    rng = np.random.default_rng(0)
    m = pytorch_conv1d_model(rng)
    fm = from_onnx(m)
    assert [l.op for l in fm.layers] == [Op.CONV, Op.MAXPOOL, Op.CONV, Op.GLOBAL_AVGPOOL, Op.DENSE]
    assert fm.layers[0].act.name == "RELU" and fm.layers[2].attrs["group"] == 4  # BN folded, ReLU fused
    X = rng.normal(size=(9, 2, 50)).astype(np.float32)
    want = _ort(m, X)
    np.testing.assert_allclose(reference.run(fm, X), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rtinfer.load(fm).predict(X), want, rtol=1e-5, atol=1e-5)


@needs_onnxruntime
def test_auto_pad_ceil_mode_and_count_include_pad_match_onnxruntime():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], auto_pad="SAME_LOWER", strides=[2, 1]),
             helper.make_node("AveragePool", ["c"], ["a"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             helper.make_node("MaxPool", ["a"], ["m"], kernel_shape=[2, 2], auto_pad="SAME_UPPER"),
             helper.make_node("AveragePool", ["m"], ["y"], kernel_shape=[2, 1], pads=[1, 0, 1, 0],
                              count_include_pad=1)]
    m = _model(nodes, {"W": W}, ["N", 3, 11, 9], None, opset=19)
    fm = from_onnx(m)
    X = rng.normal(size=(4, 3, 11, 9)).astype(np.float32)
    want = _ort(m, X)
    got = rtinfer.load(fm).predict(X)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def cnn():
    model = CNN((2, 6, 16), [Conv2D(2, 6, (3, 3), padding=1), BatchNorm(6), Activation("relu"), MaxPool2D(2),
                             Conv2D(6, 6, 3, padding=1, groups=6), Activation("relu"),
                             AvgPool2D(2, stride=1, padding=((0, 1), (1, 0))), GlobalAvgPool(), Dense(6, 3)], seed=0)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 2, 6, 16))
    fit(model, X, rng.integers(0, 3, len(X)), epochs=2, seed=0)
    return model, X


@needs_onnxruntime
def test_fp32_export_runs_in_onnxruntime_and_round_trips(cnn):
    model, X = cnn
    fm = export.freeze(model)
    om = to_onnx(fm)
    onnx.checker.check_model(om)
    X32 = X.astype(np.float32)
    ref = reference.run(fm, X32)
    np.testing.assert_allclose(_ort(om, X32, "input"), ref, rtol=1e-5, atol=1e-6)
    back = from_onnx(om)
    assert [l.op for l in back.layers] == [l.op for l in fm.layers]
    np.testing.assert_array_equal(reference.run(back, X32), ref)


def _layer_alone(fm, i):
    """fm's int8 layer i alone on its own input grid: QUANTIZE (the layer's x_scale, x_zp) ->
    layer i -> DEQUANTIZE at its output grid; returns (model, output scale)."""
    from dataclasses import replace
    layer = replace(fm.layers[i], inputs=None)  # in a new chain: reads the QUANTIZE before it
    xs, xzp = layer.attrs["x_scale"], layer.attrs["x_zp"]
    scale = layer.attrs.get("y_scale", xs)
    zp = layer.attrs.get("y_zp", xzp)
    q = Layer(Op.QUANTIZE, layer.in_shape, layer.in_shape, attrs={"y_scale": xs, "y_zp": xzp})
    dq = Layer(Op.DEQUANTIZE, layer.out_shape, layer.out_shape, attrs={"x_scale": scale, "x_zp": zp})
    return FrozenModel((q, layer, dq), fm.buffers, layer.in_shape, layer.out_shape), scale


@needs_onnxruntime
def test_int8_export_matches_onnxruntime_per_layer(cnn, summary):
    """With reduce_range (onnxruntime's AVX2 int8 kernels saturate pairs of products otherwise), every
    QCONV / QMAXPOOL code equals onnxruntime's and every QAVGPOOL is within 1 LSB (onnxruntime
    averages in float). Each int8 layer runs alone on the same int8 input codes in both (the
    codes rtinfer's reference computes for the layer before), so no difference carries over."""
    model, X = cnn
    fm = export.freeze(model, dtype="int8", calibration=X, reduce_range=True)
    _, trace = reference.run(fm, X.astype(np.float32), trace=True)
    worst = {}
    for i, layer in enumerate(fm.layers):
        if layer.op not in (Op.QCONV, Op.QMAXPOOL, Op.QAVGPOOL):
            continue
        sub, scale = _layer_alone(fm, i)
        codes = trace[i - 1].astype(np.int64)
        assert trace[i - 1].dtype == np.int8
        Xi = ((codes - layer.attrs["x_zp"]) * np.float64(np.float32(layer.attrs["x_scale"]))).astype(np.float32)
        ours = reference.run(sub, Xi)
        from dataclasses import replace
        tail = tuple(replace(lay, inputs=None) for lay in sub.layers[2:])  # read the layer before them
        upto = FrozenModel(fm.layers[:i + 1] + tail, fm.buffers, fm.input_shape, layer.out_shape)
        np.testing.assert_array_equal(ours, reference.run(upto, X.astype(np.float32)))  # same codes as in fm
        theirs = _ort(to_onnx(sub), Xi, "input")
        lsb = np.abs(ours - theirs).max() / scale
        worst[f"{i}:{layer.op.name}"] = float(lsb)
        if layer.op in (Op.QCONV, Op.QMAXPOOL):
            assert lsb < 1e-3, (i, layer.op.name, lsb)
    assert sum(k.endswith("QCONV") for k in worst) >= 2 and any(k.endswith("QAVGPOOL") for k in worst), worst
    assert all(v <= 1.0 + 1e-3 for k, v in worst.items() if "QAVGPOOL" in k), worst
    summary(f"CNN int8 export vs onnxruntime, max LSB per layer: {worst}")


def test_int8_round_trip_is_exact(cnn):
    model, X = cnn
    fm = export.freeze(model, dtype="int8", calibration=X)
    back = from_onnx(to_onnx(fm))
    assert [l.op for l in back.layers] == [l.op for l in fm.layers]
    X32 = X.astype(np.float32)
    np.testing.assert_array_equal(rtinfer.load(back).predict(X32), rtinfer.load(fm).predict(X32))


@needs_onnxruntime
def test_qdq_average_pool_keeps_its_float_mean_unless_rtinfer_wrote_a_qavgpool(cnn):
    """A foreign DQ -> AveragePool -> Q is the float mean of dequantized values (its definition):
    DEQUANTIZE -> AVGPOOL -> QUANTIZE, equal to onnxruntime's result code for code. The same
    nodes in a file rtinfer wrote for a QAVGPOOL (producer rtinfer, node qavgpoolK) come back as
    that QAVGPOOL (test_int8_round_trip_is_exact)."""
    model, X = cnn
    fm = export.freeze(model, dtype="int8", calibration=X)
    m = to_onnx(fm)
    assert any(n.op_type == "AveragePool" and n.name.startswith("qavgpool") for n in m.graph.node)
    m.producer_name = "another-tool"
    foreign = from_onnx(m)
    assert Op.QAVGPOOL not in [l.op for l in foreign.layers] and Op.AVGPOOL in [l.op for l in foreign.layers]
    X32 = X[:200].astype(np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: X32})[0]
    got = rtinfer.load(foreign).predict(X32)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@needs_onnxruntime
def test_qdq_conv_and_qlinearconv_import(cnn):
    rng = np.random.default_rng(4)
    # 7-bit weights: onnxruntime's AVX2 int8 convolution saturates pairs of products otherwise
    Wq = rng.integers(-63, 64, size=(4, 2, 3)).astype(np.int8)
    ws = rng.uniform(0.005, 0.02, 4).astype(np.float32)
    bq = rng.integers(-300, 300, 4).astype(np.int32)
    xs, ys = np.float32(0.03), np.float32(0.05)
    inits = {"xs": xs, "xz": np.int8(3), "ys": ys, "yz": np.int8(-128), "Wq": Wq, "ws": ws, "wz": np.zeros(4, np.int8),
             "bq": bq, "bs": (np.float64(xs) * ws.astype(np.float64)).astype(np.float32)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "xs", "xz"], ["d"]),
             helper.make_node("DequantizeLinear", ["Wq", "ws", "wz"], ["W"], axis=0),
             helper.make_node("DequantizeLinear", ["bq", "bs"], ["b"], axis=0),
             helper.make_node("Conv", ["d", "W", "b"], ["c"], pads=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["qy"]),
             helper.make_node("DequantizeLinear", ["qy", "ys", "yz"], ["y"])]
    m = _model(nodes, inits, ["N", 2, 20], None, opset=21)
    fm = from_onnx(m)
    assert [l.op for l in fm.layers] == [Op.QUANTIZE, Op.QCONV, Op.DEQUANTIZE]
    assert fm.layers[1].attrs["qmin"] == -128 and fm.layers[1].attrs["y_zp"] == -128
    np.testing.assert_array_equal(fm.tensor(fm.layers[1], "b"), bq)
    X = rng.normal(size=(6, 2, 20)).astype(np.float32)
    np.testing.assert_allclose(rtinfer.load(fm).predict(X), _ort(m, X), atol=float(ys) * 1.001)
    # the same layer as QLinearConv between QuantizeLinear and DequantizeLinear
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
             helper.make_node("QLinearConv", ["q", "xs", "xz", "Wq", "ws", "wz", "ys", "yz", "bq"], ["qy"], pads=[1, 1]),
             helper.make_node("DequantizeLinear", ["qy", "ys", "yz"], ["y"])]
    m2 = _model(nodes, inits, ["N", 2, 20], None, opset=21)
    fm2 = from_onnx(m2)
    assert [l.op for l in fm2.layers] == [Op.QUANTIZE, Op.QCONV, Op.DEQUANTIZE]
    np.testing.assert_allclose(rtinfer.load(fm2).predict(X), _ort(m2, X), atol=float(ys) * 1.001)


@needs_onnxruntime
def test_dilated_pools_match_onnxruntime():
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 3], dilations=[2, 2], pads=[1, 2, 0, 1],
                              strides=[1, 2]),
             helper.make_node("AveragePool", ["m"], ["y"], kernel_shape=[2, 2], dilations=[1, 2], pads=[1, 1, 1, 1])]
    m = _model(nodes, {}, ["N", 2, 9, 11], None, opset=19)
    fm = from_onnx(m)
    assert fm.layers[0].attrs["dilation_w"] == 2 and fm.layers[1].attrs["dilation_w"] == 2
    X = rng.normal(size=(3, 2, 9, 11)).astype(np.float32)
    np.testing.assert_allclose(rtinfer.load(fm).predict(X), _ort(m, X), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_ort(to_onnx(fm), X, "input"), _ort(m, X), rtol=1e-6, atol=1e-6)


def test_unsupported_windows_are_named():
    # a 4-D window (3-D windows import as im2col GATHER + 1-D kernels: tests/test_onnx_coverage.py)
    W = np.zeros((2, 1, 2, 2, 2, 2), np.float32)
    m = _model([helper.make_node("Conv", ["x", "W"], ["y"])], {"W": W}, ["N", 1, 4, 4, 4, 4], None)
    with pytest.raises(OnnxImportError, match="Conv.*4-D window"):
        from_onnx(m)
    m = _model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2], pads=[2, 0])], {}, ["N", 1, 8], None,
               opset=12)
    with pytest.raises(OnnxImportError, match="padding only"):
        from_onnx(m)
    m = _model([helper.make_node("Conv", ["x", "W"], ["y"], group=2)], {"W": np.zeros((2, 1, 3), np.float32)},
               ["N", 3, 8], None)
    with pytest.raises(OnnxImportError, match="group"):
        from_onnx(m)
    # ceil_mode 2 is not ONNX (0 or 1); rtinfer read it as ceil, onnxruntime as floor (fuzz_onnx note)
    for op, rank in (("MaxPool", 1), ("AveragePool", 2)):
        m = _model([helper.make_node(op, ["x"], ["y"], kernel_shape=[2] * rank, strides=[2] * rank, ceil_mode=2)],
                   {}, ["N", 1] + [5] * rank, None)
        with pytest.raises(OnnxImportError, match="ceil_mode 2 must be 0 or 1"):
            from_onnx(m)


@needs_onnxruntime
def test_1d_cnn_export_with_all_pools(summary):
    model = CNN((1, 30), [Conv1D(1, 4, 5, padding="same"), Activation("tanh"), MaxPool1D(3, stride=2, padding=1),
                          AvgPool1D(2, count_include_pad=True, padding=1), Conv1D(4, 4, 3, dilation=2), GlobalAvgPool(),
                          Dense(4, 1)], output="sigmoid", seed=0)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(64, 1, 30))
    fit(model, X, rng.integers(0, 2, 64), epochs=1)
    fm = export.freeze(model)
    X32 = X.astype(np.float32)
    np.testing.assert_allclose(_ort(to_onnx(fm), X32, "input"), reference.run(fm, X32), rtol=1e-5, atol=1e-6)
