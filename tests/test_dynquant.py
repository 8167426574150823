"""DYNQUANT (ONNX DynamicQuantizeLinear per sample): the reference executor against hand values,
onnx.reference and onnxruntime's DynamicQuantizeLinear; the compiled kernel against the
reference bit for bit (odd sizes, all-zero / all-negative / all-positive / NaN inputs); plan
errors; .rtm round trips; ONNX import of onnxruntime's quantize_dynamic form (the refusals
name the node), export to ONNX run by onnxruntime and read back; the batch semantics (each
sample quantized alone, as onnxruntime does at a batch of one).

quantize_dynamic on whole models (MLP, LeNet-5, DS-CNN at opsets 13/17/21) is compared with
onnxruntime in tests/test_onnx_ort_quant.py."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_graphs import graph_model, ort_run
from optional import needs_onnxruntime

import rtinfer
from export import from_onnx, to_onnx
from export.onnx_import import OnnxImportError
from rtinfer import reference
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer, Output
from rtinfer.ops import Bin, Op
from rtinfer.plan import PlanError, build_plan
from rtinfer.rtm import from_bytes, to_bytes


def _dq_model(shape) -> FrozenModel:
    """Input -> DYNQUANT mode 0 (output 0) and mode 1 (output 1)."""
    n = int(np.prod(shape))
    layers = (Layer(Op.DYNQUANT, shape, shape, attrs={"mode": 0}, name="q", inputs=(0,)),
              Layer(Op.DYNQUANT, shape, (1,), attrs={"mode": 1}, name="scale", inputs=(0,)))
    assert n >= 1
    return FrozenModel(layers, BufferBuilder().finish(), shape,
                       outputs=(Output(1, shape, "float32"), Output(2, (1,), "float32")))


def _inputs(rng, n_samples, shape):
    """Samples of every kind the kernel must get right, in float32."""
    out = []
    for k in range(n_samples):
        x = rng.standard_normal(shape).astype(np.float32) * np.float32(10.0 ** rng.uniform(-5, 5))
        kind = k % 6
        if kind == 1:
            x = np.abs(x)                      # all positive: zp 0
        elif kind == 2:
            x = -np.abs(x)                     # all negative: zp 255
        elif kind == 3:
            x = np.zeros(shape, np.float32)    # all zero: scale 1 (onnxruntime), codes 0
        elif kind == 4:
            x = np.round(x * 4) / 4            # ties of x / scale are likely
        out.append(x.astype(np.float32))
    return np.stack(out)


def _dql_graph(shape, opset=21, batch=1):
    """One DynamicQuantizeLinear node on an input of shape (batch, *shape)."""
    return graph_model([helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])],
                       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *shape])],
                       [helper.make_tensor_value_info("y", TensorProto.UINT8, None),
                        helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
                        helper.make_tensor_value_info("z", TensorProto.UINT8, None)], opset=opset)


def test_reference_matches_hand_computed_values():
    # x = [-1, 0.5, 3]: range [-1, 3], scale 4/255, zp = round(1 / (4/255)) = round(63.75) = 64;
    # codes round(x / scale) + zp = [0, 96, 255] (onnxruntime's y), minus zp
    x = np.array([[-1.0, 0.5, 3.0]], np.float32)
    scale = np.float32(4.0) / np.float32(255.0)
    assert reference.dynquant(x, 1)[0, 0] == scale
    assert reference.dynquant(x, 0).tolist() == [[-64.0, 32.0, 191.0]]
    # all positive: zp 0, the maximum maps to 255; all negative: zp 255, the minimum to 0
    assert reference.dynquant(np.array([[1.0, 2.0, 3.0]], np.float32), 0).tolist() == [[85.0, 170.0, 255.0]]
    assert reference.dynquant(np.array([[-1.0, -2.0, -3.0]], np.float32), 0).tolist() == [[-85.0, -170.0, -255.0]]
    # all zero: scale 1 (as onnxruntime), codes 0, nothing NaN
    z = np.zeros((2, 5), np.float32)
    assert reference.dynquant(z, 1).tolist() == [[1.0], [1.0]]
    assert reference.dynquant(z, 0).tolist() == z.tolist()


def test_reference_matches_onnx_reference_evaluator():
    """onnx.reference's DynamicQuantizeLinear (the ONNX definition) on samples with a nonzero
    range; it differs only on an all-zero input (scale 1/255 there, onnxruntime and rtinfer 1)."""
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(0)
    ev = ReferenceEvaluator(_dql_graph((23,)))
    for x in _inputs(rng, 60, (23,)):
        if not np.any(x):
            continue
        y, s, z = ev.run(None, {"x": x[None]})
        assert reference.dynquant(x[None], 1)[0, 0] == s
        assert np.array_equal(reference.dynquant(x[None], 0)[0], y[0].astype(np.float32) - np.float32(z))


@needs_onnxruntime
@pytest.mark.parametrize("n", [1, 3, 37, 1001])
def test_kernel_and_reference_equal_onnxruntime_bit_for_bit(n):
    """Odd sizes, all-zero, all-negative, all-positive and tie-prone samples: the compiled kernel,
    the reference and onnxruntime's DynamicQuantizeLinear at a batch of one give the same codes
    minus zero point and the same scale, and nothing is NaN."""
    rng = np.random.default_rng(n)
    X = _inputs(rng, 36, (n,))
    f = _dq_model((n,))
    rq, rs = reference.run(f, X)
    kq, ks = rtinfer.load(f).predict(X)
    assert np.array_equal(kq, rq) and np.array_equal(ks, rs)
    assert not np.isnan(kq).any() and not np.isnan(ks).any()
    m = _dql_graph((n,))
    for x, q, s in zip(X, kq, ks):
        y, ys, yz = ort_run(m, {"x": x[None]})
        assert s[0] == ys, (s, ys)
        assert np.array_equal(q, y[0].astype(np.float32) - np.float32(yz))
        assert q.min() >= -255 and q.max() <= 255 and np.all(q + np.float32(yz) >= 0) and np.all(q + yz <= 255)


def test_kernel_equals_reference_on_nonfinite_inputs_and_every_path():
    """NaN elements are skipped by the range and give q = -zp (onnxruntime's clamp); an infinite
    element makes the scale infinite. Every entry point gives the reference's bits."""
    f = _dq_model((2, 3))
    X = np.array([[[1.0, np.nan, -2.0], [0.5, 3.0, 0.0]],
                  [[np.inf, 1.0, -1.0], [0.0, 0.0, 2.0]],
                  [[-np.inf, 1.0, np.nan], [0.0, 0.0, 2.0]],
                  [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]], np.float32)
    rq, rs = reference.run(f, X)
    assert rq[0, 0, 1] == rq[0].min() and rs[0, 0] == np.float32(5.0) / np.float32(255.0)
    assert np.isinf(rs[1, 0]) and rs[3, 0] == 1.0
    rt = rtinfer.load(f, nonfinite="allow", batch="exact")
    for q, s in (rt.predict(X), rt.stream(X), tuple(np.stack(v) for v in zip(*[rt.predict_one(x) for x in X]))):
        assert np.array_equal(q, rq, equal_nan=True) and np.array_equal(s, rs, equal_nan=True)


def test_plan_refuses_bad_modes_and_shapes():
    bad_mode = FrozenModel((Layer(Op.DYNQUANT, (4,), (4,), attrs={"mode": 2}),), BufferBuilder().finish(), (4,), (4,))
    with pytest.raises(PlanError, match="mode"):
        build_plan(bad_mode)
    bad_shape = FrozenModel((Layer(Op.DYNQUANT, (4,), (4,), attrs={"mode": 1}),), BufferBuilder().finish(), (4,), (4,))
    with pytest.raises(PlanError, match="DYNQUANT mode 1 writes 1 element"):
        build_plan(bad_shape)


def _rescaled_model() -> FrozenModel:
    """DYNQUANT codes through a DENSE of integer weights, times (scale x 0.01) by a BINARY MUL:
    the layers quantize_dynamic's MatMulInteger imports as."""
    rng = np.random.default_rng(5)
    bb = BufferBuilder()
    W = rng.integers(-20, 21, size=(7, 4)).astype(np.float32)
    layers = (Layer(Op.DYNQUANT, (7,), (7,), attrs={"mode": 0}, inputs=(0,)),                    # t1
              Layer(Op.DYNQUANT, (7,), (1,), attrs={"mode": 1}, inputs=(0,)),                    # t2
              Layer(Op.DENSE, (7,), (4,), tensors={"W": bb.add(W), "b": bb.add(np.zeros(4, np.float32))},
                    inputs=(1,)),                                                                  # t3
              Layer(Op.AFFINE, (1,), (1,), tensors={"s": bb.add(np.full(1, 0.01, np.float32)),
                                                    "t": bb.add(np.zeros(1, np.float32))}, inputs=(2,)),  # t4
              Layer(Op.BINARY, (4,), (4,), attrs={"fn": int(Bin.MUL)}, inputs=(3, 4)))             # t5
    return FrozenModel(layers, bb.finish(), (7,), (4,))


def test_rtm_round_trip_keeps_the_model_and_its_outputs():
    f = _rescaled_model()
    g = from_bytes(to_bytes(f))
    assert [(l.op, l.attrs, l.out_shape) for l in g.layers] == [(l.op, l.attrs, l.out_shape) for l in f.layers]
    X = _inputs(np.random.default_rng(1), 12, (7,))
    want = reference.run(f, X)
    assert np.array_equal(rtinfer.load(g).predict(X), rtinfer.load(f).predict(X))
    np.testing.assert_allclose(rtinfer.load(g).predict(X), want, rtol=1e-6, atol=1e-7)


# -- ONNX ----------------------------------------------------------------------------------------

def _dynamic_mlp(opset=17, a_zp="x_zero_point", extra=()):
    """quantize_dynamic's form of x (N, 6) @ W (6, 3) + b, by hand: DynamicQuantizeLinear ->
    MatMulInteger (int8 weights, per-column scales) -> Cast -> Mul(x_scale * w_scale) -> Add."""
    rng = np.random.default_rng(2)
    # |w| <= 63: onnxruntime's u8s8 kernels sum pairs of products in int16 without VNNI
    Wq = rng.integers(-63, 64, size=(6, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(Wq, "W"), numpy_helper.from_array(np.zeros(3, np.int8), "W_zp"),
             numpy_helper.from_array(np.array([0.01, 0.02, 0.005], np.float32), "W_scale"),
             numpy_helper.from_array(np.array([0.1, -0.2, 0.3], np.float32), "b"),
             numpy_helper.from_array(np.array(7, np.uint8), "const_zp")]
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["x_q", "x_scale", "x_zero_point"], name="dql"),
             helper.make_node("Mul", ["x_scale", "W_scale"], ["scale"], name="mul_scale"),
             helper.make_node("MatMulInteger", ["x_q", "W", a_zp, "W_zp"], ["acc"], name="mmi"),
             helper.make_node("Cast", ["acc"], ["acc_f"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Mul", ["acc_f", "scale"], ["y0"], name="rescale"),
             helper.make_node("Add", ["y0", "b"], ["y"], name="bias"), *extra]
    return graph_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits, opset=opset)


@needs_onnxruntime
def test_import_export_and_reimport_match_onnxruntime(tmp_path):
    """The hand-built quantize_dynamic MLP: rtinfer equals onnxruntime sample by sample (same
    codes, exact integer sums, the same float32 rescale); to_onnx writes DynamicQuantizeLinear,
    onnxruntime runs it to the same values, and from_onnx reads it back bit for bit."""
    m = _dynamic_mlp()
    f = from_onnx(m)
    ops = [l.op for l in f.layers]
    assert ops.count(Op.DYNQUANT) == 2 and Op.BINARY in ops and Op.DEQUANTIZE not in ops
    X = _inputs(np.random.default_rng(3), 24, (6,))
    got = rtinfer.load(f).predict(X)
    want = np.concatenate([ort_run(m, {"x": x[None]})[0] for x in X])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    back = to_onnx(f)
    assert "DynamicQuantizeLinear" in [n.op_type for n in back.graph.node]
    ort_back = np.concatenate([ort_run(back, {"input": x[None]})[0] for x in X])
    np.testing.assert_allclose(ort_back, got, rtol=1e-6, atol=1e-7)
    again = from_onnx(back)
    assert [l.op for l in again.layers].count(Op.DYNQUANT) == 2
    assert np.array_equal(rtinfer.load(again).predict(X), got)
    path = tmp_path / "d.rtm"
    f.save(str(path))
    assert np.array_equal(rtinfer.load(str(path)).predict(X), got)


@needs_onnxruntime
def test_batches_quantize_each_sample_alone():
    """ONNX takes the range over the whole tensor: in a batch, onnxruntime lets a large sample
    coarsen a small one's codes. rtinfer quantizes each sample alone, so its batch result is the
    batch-of-one result of onnxruntime for every sample."""
    m = _dynamic_mlp()
    X = np.stack([np.linspace(-0.01, 0.02, 6), np.linspace(-50, 80, 6)]).astype(np.float32)
    got = rtinfer.load(from_onnx(m)).predict(X)
    one_by_one = np.concatenate([ort_run(m, {"x": x[None]})[0] for x in X])
    together = ort_run(m, {"x": X})[0]
    np.testing.assert_allclose(got, one_by_one, rtol=1e-6, atol=1e-7)
    assert np.abs(together[0] - one_by_one[0]).max() > 100 * np.abs(got[0] - one_by_one[0]).max() + 1e-6


@pytest.mark.parametrize("make, match", [
    (lambda: _dynamic_mlp(a_zp="const_zp"), "a_zero_point must be that node's y_zero_point"),
    (lambda: _dynamic_mlp(extra=[helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero_point"], ["dq"],
                                                  name="dq_of_dynamic")]), "'dq_of_dynamic'.*DynamicQuantizeLinear"),
    (lambda: _dynamic_mlp(extra=[helper.make_node("Add", ["x_scale", "b"], ["bad"], name="add_scale")]),
     "'add_scale'.*y_scale only in Mul"),
])
def test_other_readers_of_its_outputs_are_refused_naming_the_node(make, match):
    m = make()
    if m.graph.node[-1].name in ("dq_of_dynamic", "add_scale"):  # make the extra node's output the graph's
        out = m.graph.node[-1].output[0]
        del m.graph.output[:]
        m.graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    with pytest.raises(OnnxImportError, match=match):
        from_onnx(m)


def test_its_outputs_are_refused_as_model_outputs():
    m = _dynamic_mlp()
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("x_scale", TensorProto.FLOAT, None))
    with pytest.raises(OnnxImportError, match="'x_scale' is an output of DynamicQuantizeLinear"):
        from_onnx(m)


def test_inspect_marks_dynamic_quantization():
    from rtinfer.commands.inspect import describe, format_text
    info = describe(_rescaled_model())
    dyn = [L["quant"]["dynamic"] for L in info["layers"] if L["op"] == "DYNQUANT"]
    assert [d["writes"] for d in dyn] == ["codes - zero point", "scale"]
    assert "dynamic uint8 per sample: codes - zero point" in format_text(info)


@needs_onnxruntime
def test_integer_sums_of_dynamic_codes_as_an_int32_output():
    """MatMulInteger of DynamicQuantizeLinear's y as the graph output: int32 sums, exact (|q| <=
    255 times integer weights stays far below 2^24), equal to onnxruntime's at a batch of one."""
    m = _dynamic_mlp()
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("acc", TensorProto.INT32, None))
    f = from_onnx(m)
    assert f.output_dtype == "int32"
    X = _inputs(np.random.default_rng(6), 12, (6,))
    got = rtinfer.load(f).predict(X)
    want = np.concatenate([ort_run(m, {"x": x[None]})[0] for x in X])
    assert got.dtype == np.int32 and np.array_equal(got, want)
