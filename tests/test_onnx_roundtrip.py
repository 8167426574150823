"""to_onnx round trips: FrozenModel -> ONNX -> onnxruntime equals rtinfer, and
ONNX -> FrozenModel -> ONNX is stable (same nodes, attributes and initializers).

fp32: onnxruntime within 1e-5 of the reference executor and the compiled runtime.
int8 (digits, trained + frozen with calibration): onnxruntime's dequantized logits within one
quantization step of rtinfer's on >= 99.9% of elements, argmax agreement >= 99.9%, for the
default export (int8 weights) with onnxruntime's basic graph optimizations and for
``weight_dtype="uint8"`` with all optimizations. With int8 weights onnxruntime's extended QDQ
fusions (QGemm) use u8s8 kernels whose int16 pair sums saturate on AVX2 CPUs without VNNI (this
machine); that agreement is measured and printed in the summary, not asserted.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import onnx  # noqa: E402
from optional import needs_onnxruntime  # noqa: E402
from optional import onnxruntime as ort  # noqa: E402

import rtinfer  # noqa: E402
from export.onnx_common import EXPORT_IR_VERSION, EXPORT_OPSET  # noqa: E402
from export.onnx_export import to_onnx  # noqa: E402
from export.onnx_import import from_onnx  # noqa: E402
from rtinfer import quant, reference  # noqa: E402
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer  # noqa: E402
from rtinfer.ops import Act, Op  # noqa: E402


def ort_run(model, X, level="basic"):
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if level == "basic"
                                   else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X})[0]


def rt_run(frozen, X):
    """(reference output, compiled runtime output)."""
    return reference.run(frozen, X), np.asarray(rtinfer.load(frozen).predict(X))


def assert_stable(model, **export_kw):
    """ONNX -> FrozenModel -> ONNX reproduces the graph: nodes, attributes, initializers."""
    again = to_onnx(from_onnx(model), **export_kw)
    a, b = model.graph, again.graph
    assert [(n.op_type, n.name, list(n.input), list(n.output)) for n in a.node] == \
           [(n.op_type, n.name, list(n.input), list(n.output)) for n in b.node]
    assert [[onnx.helper.get_attribute_value(x) for x in n.attribute] for n in a.node] == \
           [[onnx.helper.get_attribute_value(x) for x in n.attribute] for n in b.node]
    assert [t.name for t in a.initializer] == [t.name for t in b.initializer]
    for ta, tb in zip(a.initializer, b.initializer):
        va, vb = onnx.numpy_helper.to_array(ta), onnx.numpy_helper.to_array(tb)
        assert va.dtype == vb.dtype and np.array_equal(va, vb), ta.name
    assert a.input == b.input and a.output == b.output


# ---------------------------------------------------------------------------------------------
# trained models (rtinfer.train + export.freeze)


@pytest.fixture(scope="module")
def digits():
    from rtinfer.train import datasets
    return datasets.load("digits")


@pytest.fixture(scope="module")
def trained(digits):
    from rtinfer.train import MLP, Adam, fit
    models = {}
    for act in ("relu", "tanh", "sigmoid", "leaky_relu"):
        m = MLP([64, 32, 16, 10], activation=act, output="softmax", preprocess="standardize", seed=1)
        fit(m, digits.X_train, digits.y_train, optimizer=Adam(1e-2), epochs=8, batch_size=64)
        models[act] = m
    return models


@needs_onnxruntime
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_fp32_trained_matches_onnxruntime(trained, digits, act, tmp_path):
    from export.freeze import freeze
    frozen = freeze(trained[act])
    path = tmp_path / "m.onnx"
    model = to_onnx(frozen, path)
    assert path.exists() and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp file left
    X = digits.X_test.astype(np.float32)
    ref, rt = rt_run(frozen, X)
    for level in ("basic", "all"):
        got = ort_run(onnx.load(str(path)), X, level)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got, rt, rtol=0, atol=1e-5)
    assert_stable(model)


@needs_onnxruntime
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_int8_trained_within_one_step_of_onnxruntime(trained, digits, act, summary):
    from export.freeze import freeze
    frozen = freeze(trained[act], dtype="int8", calibration=digits.X_train)
    X = digits.X_test.astype(np.float32)
    # logits: the model up to its DEQUANTIZE, compared in units of that layer's scale
    k = max(i for i, layer in enumerate(frozen.layers) if layer.op == Op.DEQUANTIZE)
    deq = frozen.layers[k]
    logits_model = FrozenModel(frozen.layers[:k + 1], frozen.buffers, frozen.input_shape, deq.out_shape)
    step = deq.attrs["x_scale"]
    ref, rt = rt_run(logits_model, X)
    np.testing.assert_array_equal(ref, rt)
    got = ort_run(to_onnx(logits_model), X)
    steps = np.abs(got.astype(np.float64) - ref) / step
    assert np.mean(steps <= 1.0 + 1e-6) >= 0.999, steps.max()
    full = to_onnx(frozen)
    probs = ort_run(full, X)
    ref_probs = reference.run(frozen, X)
    assert np.mean(probs.argmax(1) == ref_probs.argmax(1)) >= 0.999
    got_all = ort_run(full, X, "all")
    # uint8-stored weights (same values): onnxruntime's fused u8u8 kernels are exact here
    full_u8 = to_onnx(frozen, weight_dtype="uint8")
    logits_u8 = ort_run(to_onnx(logits_model, weight_dtype="uint8"), X, "all")
    steps_u8 = np.abs(logits_u8.astype(np.float64) - ref) / step
    assert np.mean(steps_u8 <= 1.0 + 1e-6) >= 0.999, steps_u8.max()
    probs_u8 = ort_run(full_u8, X, "all")
    agree_u8 = np.mean(probs_u8.argmax(1) == ref_probs.argmax(1))
    assert agree_u8 >= 0.999
    summary(f"int8 digits ({act}): onnxruntime basic-opt argmax agreement "
            f"{np.mean(probs.argmax(1) == ref_probs.argmax(1)):.4f}, max |diff| {steps.max():.0f} steps; "
            f"all-opt int8 weights (u8s8 QGemm) {np.mean(got_all.argmax(1) == ref_probs.argmax(1)):.4f}; "
            f"all-opt uint8 weights {agree_u8:.4f}, max |diff| {steps_u8.max():.0f} steps")
    assert_stable(full)
    assert_stable(full_u8, weight_dtype="uint8")


# ---------------------------------------------------------------------------------------------
# hand-built models covering every op and activation


def _model(layers_spec, input_shape, output_shape=None, output_dtype="float32"):
    """layers_spec: (op, in, out, act, {tensor: array}, attrs) tuples."""
    b = BufferBuilder()
    layers = []
    for op, i, o, act, tensors, attrs in layers_spec:
        refs = {k: b.add(v) for k, v in tensors.items()}
        layers.append(Layer(op, i, o, act, refs, attrs, ""))
    out = output_shape if output_shape is not None else layers[-1].out_shape
    return FrozenModel(tuple(layers), b.finish(), input_shape, out, output_dtype, {"source": "test"})


def _dense(rng, n_in, n_out, act=Act.IDENTITY, attrs=None):
    W = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32)
    b = rng.normal(0, 0.1, n_out).astype(np.float32)
    return (Op.DENSE, (n_in,), (n_out,), act, {"W": W, "b": b}, attrs or {})


ALL_ACTS = [
    (Act.RELU, {}), (Act.LEAKY_RELU, {"alpha": 0.1}), (Act.SIGMOID, {}), (Act.TANH, {}),
    (Act.SOFTPLUS, {}), (Act.ELU, {"alpha": 0.7}), (Act.SELU, {}), (Act.HARD_SIGMOID, {"alpha": 0.25, "beta": 0.4}),
    (Act.GELU, {}), (Act.GELU_TANH, {}), (Act.CLIP, {"alpha": -0.5, "beta": 0.75}), (Act.IDENTITY, {}),
]


@needs_onnxruntime
@pytest.mark.parametrize("act,attrs", ALL_ACTS, ids=[a.name for a, _ in ALL_ACTS])
def test_fp32_every_activation(act, attrs):
    rng = np.random.default_rng(int(act))
    frozen = _model([_dense(rng, 6, 8, act, attrs), (Op.ACT, (8,), (8,), act, {}, attrs), _dense(rng, 8, 3)], (6,))
    X = rng.normal(0, 2, (50, 6)).astype(np.float32)
    model = to_onnx(frozen)
    ref, rt = rt_run(frozen, X)
    np.testing.assert_allclose(ort_run(model, X), ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(rt, ref, rtol=0, atol=1e-5)
    back = from_onnx(model)
    np.testing.assert_allclose(reference.run(back, X), ref, rtol=0, atol=1e-6)
    if act != Act.IDENTITY:  # an identity ACT is an Identity node, which imports as nothing
        assert_stable(model)


@needs_onnxruntime
def test_fp32_affine_softmax_views_argmax_int64():
    rng = np.random.default_rng(3)
    s = rng.uniform(0.5, 2, (2, 3, 4)).astype(np.float32)
    t = rng.normal(0, 1, (2, 3, 4)).astype(np.float32)
    spec = [
        (Op.AFFINE, (2, 3, 4), (2, 3, 4), Act.TANH, {"s": s, "t": t}, {}),
        (Op.SOFTMAX, (2, 3, 4), (2, 3, 4), Act.IDENTITY, {}, {"outer": 2, "axis_len": 3, "inner": 4}),
        (Op.LOG_SOFTMAX, (2, 3, 4), (2, 3, 4), Act.IDENTITY, {}, {"outer": 1, "axis_len": 6, "inner": 4}),
        (Op.RESHAPE, (2, 3, 4), (24,), Act.IDENTITY, {}, {}),
        _dense(rng, 24, 10),
        (Op.ARGMAX, (10,), (), Act.IDENTITY, {}, {"outer": 1, "axis_len": 10, "inner": 1}),
    ]
    frozen = _model(spec, (2, 3, 4), (), "int64")
    X = rng.normal(0, 1, (40, 2, 3, 4)).astype(np.float32)
    model = to_onnx(frozen)
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    got = ort_run(model, X)
    ref = reference.run(frozen, X)
    assert got.dtype == np.int64 and got.shape == (40,)
    np.testing.assert_array_equal(got, ref)
    # the trace before ARGMAX matches too
    pre = _model(spec[:-1], (2, 3, 4))
    np.testing.assert_allclose(ort_run(to_onnx(pre), X), reference.run(pre, X), rtol=0, atol=1e-5)
    back = from_onnx(model)
    np.testing.assert_array_equal(reference.run(back, X), ref)
    assert_stable(model)


def test_model_header_names_and_metadata():
    rng = np.random.default_rng(0)
    frozen = _model([_dense(rng, 4, 3, Act.RELU)], (4,))
    model = to_onnx(frozen)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == EXPORT_IR_VERSION
    assert [(o.domain, o.version) for o in model.opset_import] == [("", EXPORT_OPSET)]
    assert model.graph.input[0].name == "input" and model.graph.output[0].name == "output"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert {t.name for t in model.graph.initializer} == {"dense0.W", "dense0.b"}
    assert {p.key: p.value for p in model.metadata_props} == {"source": "test"}
    assert from_onnx(model).meta["source"] == "test"
    with pytest.raises(ValueError, match="FrozenModel"):
        to_onnx("not a model")


# ---------------------------------------------------------------------------------------------
# int8 layers


def _int8_model(rng, act_spec, qmin=-128, qmax=127, table=None):
    """QUANTIZE -> QDENSE (qmin/qmax) -> act_spec (QLUT or nothing) -> QDENSE -> DEQUANTIZE."""
    n_in, n_h, n_out = 8, 12, 5
    W1 = rng.normal(0, 0.5, (n_in, n_h))
    W2 = rng.normal(0, 0.5, (n_h, n_out))
    ws1, ws2 = quant.symmetric_weight_scales(W1), quant.symmetric_weight_scales(W2)
    xs, xzp = 0.03, 5
    hs, hzp = 0.05, -10
    gs, gzp = 2.0 / 255, -1
    ys, yzp = 0.04, 3
    b1 = quant.quantize_bias(rng.normal(0, 0.2, n_h), xs, ws1)
    spec = [(Op.QUANTIZE, (n_in,), (n_in,), Act.IDENTITY, {}, {"y_scale": xs, "y_zp": xzp}),
            (Op.QDENSE, (n_in,), (n_h,), Act.IDENTITY,
             {"W": quant.quantize_weights(W1, ws1), "b": b1, "w_scale": ws1},
             {"x_scale": xs, "x_zp": xzp, "y_scale": hs, "y_zp": hzp, "qmin": qmin, "qmax": qmax})]
    zs, zzp = hs, hzp
    if act_spec is not None:
        act, alpha, beta = act_spec
        from rtinfer.reference import activation
        tab = table if table is not None else quant.build_lut(lambda v: activation(v, act, alpha, beta),
                                                              hs, hzp, gs, gzp)
        spec.append((Op.QLUT, (n_h,), (n_h,), Act.IDENTITY, {"table": tab},
                     {"x_scale": hs, "x_zp": hzp, "y_scale": gs, "y_zp": gzp}))
        zs, zzp = gs, gzp
    b2 = quant.quantize_bias(rng.normal(0, 0.2, n_out), zs, ws2)
    spec += [(Op.QDENSE, (n_h,), (n_out,), Act.IDENTITY,
              {"W": quant.quantize_weights(W2, ws2), "b": b2, "w_scale": ws2},
              {"x_scale": zs, "x_zp": zzp, "y_scale": ys, "y_zp": yzp, "qmin": -128, "qmax": 127}),
             (Op.DEQUANTIZE, (n_out,), (n_out,), Act.IDENTITY, {}, {"x_scale": ys, "x_zp": yzp})]
    return _model(spec, (n_in,)), ys


INT8_CASES = {
    "relu": ((None), -10, 127, None),
    "clip": (None, -40, 60, None),
    "plain": (None, -128, 127, None),
    "sigmoid": ((Act.SIGMOID, 0.0, 0.0), -128, 127, None),
    "tanh": ((Act.TANH, 0.0, 0.0), -128, 127, None),
    "gelu": ((Act.GELU, 0.0, 0.0), -128, 127, None),
    "softplus": ((Act.SOFTPLUS, 0.0, 0.0), -128, 127, None),
    "arbitrary_table": ((Act.IDENTITY, 0.0, 0.0), -128, 127, "random"),
}


@needs_onnxruntime
@pytest.mark.parametrize("case", sorted(INT8_CASES))
def test_int8_layers_match_onnxruntime_and_reimport(case):
    rng = np.random.default_rng(len(case))
    act_spec, qmin, qmax, table = INT8_CASES[case]
    if table == "random":
        table = rng.integers(-128, 128, 256).astype(np.int8)
    frozen, step = _int8_model(rng, act_spec, qmin, qmax, table)
    X = rng.normal(0, 1.5, (300, 8)).astype(np.float32)
    model = to_onnx(frozen)
    ops = [n.op_type for n in model.graph.node]
    if case == "relu":
        assert "Relu" in ops
    if case == "clip":
        assert "Clip" in ops
    if case == "arbitrary_table":
        assert "Gather" in ops
    elif act_spec is not None:
        assert "Gather" not in ops
    ref, rt = rt_run(frozen, X)
    np.testing.assert_array_equal(ref, rt)
    got = ort_run(model, X)
    steps = np.abs(got.astype(np.float64) - ref) / step
    assert np.mean(steps <= 1 + 1e-6) >= 0.999 and steps.max() <= 2, steps.max()
    back = from_onnx(model)
    assert [layer.op for layer in back.layers] == [layer.op for layer in frozen.layers]
    for la, lb in zip(frozen.layers, back.layers):
        for name in la.tensors:
            np.testing.assert_array_equal(frozen.tensor(la, name), back.tensor(lb, name), err_msg=name)
        for key in ("qmin", "qmax", "x_zp", "y_zp"):
            if key in la.attrs:
                assert int(la.attrs[key]) == int(lb.attrs[key]), key
    np.testing.assert_array_equal(reference.run(back, X), ref)
    assert_stable(model)


def test_atomic_write_replaces_existing_file(tmp_path):
    rng = np.random.default_rng(1)
    frozen = _model([_dense(rng, 3, 2)], (3,))
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    to_onnx(frozen, str(path))
    assert onnx.load(str(path)).graph.node[0].op_type == "Gemm"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


# ---------------------------------------------------------------------------------------------
# property: random fp32 chains export, run in onnxruntime and re-import unchanged

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_CHAIN_ACTS = [a for a, _ in ALL_ACTS if a != Act.IDENTITY]


@st.composite
def fp32_chains(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 31)))
    n_in = draw(st.integers(1, 9))
    spec, width = [], n_in
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["dense", "act", "affine"]))
        act = draw(st.sampled_from(_CHAIN_ACTS))
        attrs = dict(next(a for x, a in ALL_ACTS if x == act))
        if kind == "dense":
            n_out = draw(st.integers(1, 9))
            spec.append(_dense(rng, width, n_out, act, attrs))
            width = n_out
        elif kind == "act":
            spec.append((Op.ACT, (width,), (width,), act, {}, attrs))
        else:
            spec.append((Op.AFFINE, (width,), (width,), act,
                         {"s": rng.uniform(-2, 2, width).astype(np.float32), "t": rng.normal(0, 1, width).astype(np.float32)},
                         attrs))
    head = draw(st.sampled_from(["none", "softmax", "log_softmax"]))
    if head != "none":
        op = Op.SOFTMAX if head == "softmax" else Op.LOG_SOFTMAX
        spec.append((op, (width,), (width,), Act.IDENTITY, {}, {"outer": 1, "axis_len": width, "inner": 1}))
    return _model(spec, (n_in,)), rng.normal(0, 2, (16, n_in)).astype(np.float32)


@needs_onnxruntime
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fp32_chains())
def test_random_fp32_chains_roundtrip(case):
    frozen, X = case
    model = to_onnx(frozen)
    ref = reference.run(frozen, X)
    np.testing.assert_allclose(ort_run(model, X), ref, rtol=1e-5, atol=1e-5)
    back = from_onnx(model)
    np.testing.assert_allclose(reference.run(back, X), ref, rtol=1e-5, atol=1e-5)
    assert_stable(to_onnx(back))
