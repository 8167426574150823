"""Issue 13's ops on hand-built graphs, each compared with onnxruntime (fp32 within 1e-5, int8
exactly or within one step), then exported with to_onnx and run by onnxruntime again:
graphs without a batch axis, Transpose / Pad / Resize / Gather / DepthToSpace (GATHER),
LayerNormalization and its decomposed form (LAYERNORM), 3-D Conv / MaxPool / AveragePool and
ConvTranspose (im2col GATHER + 1-D kernels), the com.microsoft QOperator ops, N-D MatMul export,
and the errors a user sees."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import rtinfer
from export import from_onnx, to_onnx
from export.onnx_export import OnnxExportError
from export.onnx_import import OnnxImportError
from optional import needs_onnxruntime

F = TensorProto.FLOAT
RNG = np.random.default_rng(13)


def _model(nodes, in_shape, out_shape, inits=(), opset=18, domains=(), in_type=F, out_type=F):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", in_type, list(in_shape))],
                          [helper.make_tensor_value_info("y", out_type, list(out_shape))],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains])
    m.ir_version = 10
    return m


def _ort(m, X):
    import onnxruntime as ort
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X})[0]


def _check(m, X, rtol=1e-5, atol=1e-5, batch=True):
    """import, compare rtinfer (compiled and reference) with onnxruntime, export, run again."""
    from rtinfer import reference
    want = _ort(m, X)
    f = from_onnx(m)
    assert (f.meta.get("batch") == "none") == (not batch)
    rt = rtinfer.load(f)
    got = rt.predict(X)
    ref = reference.run(f, X if batch else X[None])
    ref = ref if batch else ref[0]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    np.testing.assert_allclose(ref, want, rtol=rtol, atol=atol)
    back = to_onnx(f)
    np.testing.assert_allclose(_ort(back, X), want, rtol=rtol, atol=atol)
    again = from_onnx(back)
    np.testing.assert_allclose(rtinfer.load(again).predict(X), want, rtol=rtol, atol=atol)
    return f


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# -- fixed-shape graphs without a batch axis ---------------------------------------------------

@needs_onnxruntime
def test_no_batch_axis_softmax_over_axis_0_and_a_full_constant():
    c = _x(3, 4, 5)
    m = _model([helper.make_node("Add", ["x", "c"], ["a"]), helper.make_node("Softmax", ["a"], ["y"], axis=0)],
               (3, 4, 5), (3, 4, 5), [("c", c)])
    f = _check(m, _x(3, 4, 5), batch=False)
    rt = rtinfer.load(f)
    assert rt.input_shape == (3, 4, 5) and "no batch axis" in repr(rt)
    with pytest.raises(rtinfer.InputError, match="exactly one input of shape"):
        rt.predict(_x(2, 3, 4, 5))


@needs_onnxruntime
def test_no_batch_axis_gemm_transA_and_matrix_bias():
    m = _model([helper.make_node("Gemm", ["x", "b", "c"], ["y"], transA=1, alpha=0.5, beta=2.0)],
               (6, 3), (3, 4), [("b", _x(6, 4)), ("c", _x(3, 4))])
    _check(m, _x(6, 3), batch=False)


@needs_onnxruntime
def test_batch_axis_kept_when_ops_leave_it_alone():
    m = _model([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1])], ("N", 3, 4), ("N", 4, 3))
    _check(m, _x(5, 3, 4))


# -- GATHER family -------------------------------------------------------------------------------

@needs_onnxruntime
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(mode):
    m = _model([helper.make_node("Pad", ["x", "p", "v"], ["y"], mode=mode)], ("N", 2, 5, 6), ("N", 2, 8, 7),
               [("p", np.array([0, 0, 1, 0, 0, 0, 2, 1], np.int64)), ("v", np.array(1.5, np.float32))])
    _check(m, _x(4, 2, 5, 6))


@needs_onnxruntime
@pytest.mark.parametrize("ctm", ["asymmetric", "half_pixel", "align_corners"])
def test_resize_nearest(ctm):
    m = _model([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest", coordinate_transformation_mode=ctm)],
               ("N", 3, 4, 5), ("N", 3, 8, 7), [("s", np.array([1, 1, 2, 1.5], np.float32))])
    _check(m, _x(3, 3, 4, 5))


@needs_onnxruntime
def test_gather_depth_to_space_tile():
    m = _model([helper.make_node("Gather", ["x", "i"], ["g"], axis=1),
                helper.make_node("DepthToSpace", ["g"], ["d"], blocksize=2, mode="CRD"),
                helper.make_node("Tile", ["d", "r"], ["y"])],
               ("N", 6, 3, 3), ("N", 2, 6, 12),
               [("i", np.array([5, 0, 2, 2, 1, 3, 4, 0], np.int64)), ("r", np.array([1, 1, 1, 2], np.int64))])
    _check(m, _x(3, 6, 3, 3))


# -- LayerNormalization ----------------------------------------------------------------------------

@needs_onnxruntime
def test_layernorm_op():
    m = _model([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-2, epsilon=1e-3)],
               ("N", 3, 4, 5), ("N", 3, 4, 5), [("s", _x(4, 5)), ("b", _x(4, 5))], opset=17)
    f = _check(m, (_x(7, 3, 4, 5) * 3 + 1))
    assert [l.op.name for l in f.layers] == ["LAYERNORM"]


@needs_onnxruntime
def test_layernorm_decomposed_form():
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1]), helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["d2"]), helper.make_node("ReduceMean", ["d2"], ["v"], axes=[-1]),
             helper.make_node("Add", ["v", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["d", "sd"], ["n"]), helper.make_node("Mul", ["n", "g"], ["ng"]),
             helper.make_node("Add", ["ng", "b"], ["y"])]
    m = _model(nodes, ("N", 4, 8), ("N", 4, 8), [("two", np.array(2.0, np.float32)), ("eps", np.array(1e-5, np.float32)),
                                                 ("g", _x(8)), ("b", _x(8))], opset=17)
    f = _check(m, _x(6, 4, 8) * 2)
    assert f.layers[0].op.name == "LAYERNORM"


# -- 3-D windows and ConvTranspose -------------------------------------------------------------------

@needs_onnxruntime
def test_conv3d_pool3d():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 0, 1, 1, 1, 0], strides=[1, 2, 1], group=2),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2, 2], pads=[0, 1, 0, 0, 0, 1]),
             helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[2, 1, 2], pads=[1, 0, 0, 0, 0, 1])]
    m = _model(nodes, ("N", 4, 5, 6, 5), ("N", 6, 5, 4, 4), [("w", _x(6, 2, 3, 2, 3) * 0.3), ("b", _x(6))])
    _check(m, _x(3, 4, 5, 6, 5))


@needs_onnxruntime
@pytest.mark.parametrize("shape,w,attrs,out", [
    ((2, 7), (2, 3, 3), {"strides": [2], "pads": [1, 0], "output_padding": [1]}, (3, 15)),
    ((4, 5, 6), (4, 1, 3, 2), {"strides": [2, 3], "group": 2, "dilations": [1, 2]}, (2, 11, 18)),
])
def test_conv_transpose(shape, w, attrs, out):
    m = _model([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)], ("N",) + shape, ("N",) + out,
               [("w", _x(*w)), ("b", _x(out[0]))])
    _check(m, _x(3, *shape))


# -- export: N-D MatMul, errors ------------------------------------------------------------------------

@needs_onnxruntime
def test_nd_matmul_exports():
    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], ("N", 5, 4), ("N", 5, 3), [("w", _x(4, 3))])
    _check(m, _x(4, 5, 4))


def test_export_error_names_the_layer(monkeypatch):
    m = _model([helper.make_node("Relu", ["x"], ["y"])], ("N", 4), ("N", 4))
    f = from_onnx(m)
    import export.onnx_export as E
    monkeypatch.setattr(E._Writer, "activation", lambda *a, **k: (_ for _ in ()).throw(KeyError("boom")))
    with pytest.raises(OnnxExportError, match=r"layer 0 \(ACT"):
        to_onnx(f)


def test_unsupported_resize_mode_is_a_clear_error():
    m = _model([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear")], ("N", 1, 4, 4), ("N", 1, 8, 8),
               [("s", np.array([1, 1, 2, 2], np.float32))])
    with pytest.raises(OnnxImportError, match="mode 'linear'"):
        from_onnx(m)


# -- PyTorch exports (tests/data/onnx/make_issue13.py), both exporters ---------------------------------

@needs_onnxruntime
@pytest.mark.parametrize("name", ["conv_ae_ts", "conv_ae_dynamo", "ln_mlp_ts16", "ln_mlp_dynamo"])
def test_pytorch_exports(name):
    import os
    here = os.path.join(os.path.dirname(__file__), "data", "onnx")
    m = onnx.load(os.path.join(here, name + ".onnx"))
    d = np.load(os.path.join(here, name + ".npz"))
    f = _check(m, d["X"])
    np.testing.assert_allclose(rtinfer.load(f).predict(d["X"]), d["Y"], rtol=1e-4, atol=1e-5)
    ops = {l.op.name for l in f.layers}
    assert ("LAYERNORM" in ops) if name.startswith("ln") else ({"GATHER", "CONV"} <= ops), ops


def test_no_batch_axis_runtime_entry_points_and_rtm(tmp_path):
    c = _x(3, 4)
    m = _model([helper.make_node("Add", ["x", "c"], ["a"]), helper.make_node("ArgMax", ["a"], ["y"], axis=0,
                                                                              keepdims=0)],
               (3, 4), (4,), [("c", c)], out_type=TensorProto.INT64)
    f = from_onnx(m)
    assert f.meta["batch"] == "none" and f.input_shape == (3, 4)
    X = _x(3, 4)
    want = np.argmax(X + c, axis=0)
    path = tmp_path / "m.rtm"
    f.save(path)
    rt = rtinfer.load(str(path))
    assert rt.no_batch
    assert np.array_equal(rt.predict(X), want) and rt.predict(X).dtype == np.int64
    assert np.array_equal(rt.predict_one(X), want)
    out = np.zeros(4, np.int64)
    assert rt.predict(X, out=out) is not None and np.array_equal(out, want)
    seq = np.stack([X, X * -1])  # stream: a sequence of whole inputs
    assert np.array_equal(rt.stream(seq), np.stack([want, np.argmax(-X + c, axis=0)]))
