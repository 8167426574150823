"""MATMUL (a matrix product of two runtime tensors, batched per sample): the reference executor
against explicit sums, every compiled path against the reference, planning errors, and ONNX
import (MatMul of two runtime tensors, an attention block, Gemm with runtime operands) and
export, each compared with onnxruntime."""

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
from rtinfer.frozen import BufferBuilder, FrozenModel, FrozenModelError, Layer
from rtinfer.ops import Op
from rtinfer.plan import PlanError, build_plan


def _mm_model(groups, m, k, n, a_groups=None, b_groups=None, act_b=True):
    """Input (a_size + b_size,) -> SLICE a, SLICE b (through an ACT on b) -> MATMUL."""
    ga = groups if a_groups is None else a_groups
    gb = groups if b_groups is None else b_groups
    na, nb = ga * m * k, gb * k * n
    layers = [
        Layer(Op.SLICE, (na + nb,), (na,), attrs={"axis": 0, "start": 0}, inputs=(0,)),
        Layer(Op.SLICE, (na + nb,), (nb,), attrs={"axis": 0, "start": na}, inputs=(0,)),
    ]
    b_t = 2
    if act_b:
        layers.append(Layer(Op.ACT, (nb,), (nb,), act=rtinfer.ops.Act.TANH, inputs=(2,)))
        b_t = 3
    layers.append(Layer(Op.MATMUL, (ga, m, k), (groups, m, n), inputs=(1, b_t),
                        attrs={"groups": groups, "m": m, "k": k, "n": n, "a_groups": ga, "b_groups": gb}))
    return FrozenModel(tuple(layers), BufferBuilder().finish(), (na + nb,), (groups, m, n))


def _paths(frozen, X):
    rt = rtinfer.load(frozen, batch="exact")
    return [rt.predict(X), rt.stream(X), np.stack([rt.predict_one(x) for x in X]), rtinfer.load(frozen).predict(X)]


def test_matmul_reference_equals_explicit_sums():
    f = _mm_model(2, 2, 3, 2, b_groups=1, act_b=False)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 2 * 2 * 3 + 3 * 2)).astype(np.float32)
    y = reference.run(f, X)
    for s in range(3):
        A = X[s, :12].astype(np.float64).reshape(2, 2, 3)
        B = X[s, 12:].astype(np.float64).reshape(3, 2)
        for g in range(2):
            for i in range(2):
                for j in range(2):
                    want = sum(A[g, i, p] * B[p, j] for p in range(3))
                    assert abs(y[s, g, i, j] - want) < 1e-5


@pytest.mark.parametrize("groups,m,k,n,ga,gb", [(1, 1, 1, 1, 1, 1), (1, 4, 7, 5, 1, 1), (3, 4, 8, 4, 3, 3),
                                               (4, 5, 3, 6, 1, 4), (2, 3, 16, 33, 2, 1)])
def test_matmul_compiled_matches_reference(groups, m, k, n, ga, gb):
    f = _mm_model(groups, m, k, n, ga, gb)
    X = np.random.default_rng(m * k + n).standard_normal((21, f.input_size)).astype(np.float32)
    want = reference.run(f, X)
    for got in _paths(f, X):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _with_matmul(f, inputs=(1, 3), **attrs):
    """f with its MATMUL layer replaced by one of these attrs (groups 2, m 3, k 4, n 5 unless given)."""
    attrs = {"groups": 2, "m": 3, "k": 4, "n": 5, "a_groups": 2, "b_groups": 2, **attrs}
    mm = Layer(Op.MATMUL, (2, 3, 4), (2, 3, 5), inputs=inputs, attrs=attrs)
    return FrozenModel(f.layers[:-1] + (mm,), f.buffers, f.input_shape, (2, 3, 5))


def test_matmul_plan_errors():
    f = _mm_model(2, 3, 4, 5)
    with pytest.raises(PlanError, match="do not match"):
        build_plan(_with_matmul(f, n=6))
    with pytest.raises(PlanError, match="must each be groups"):
        build_plan(_with_matmul(f, b_groups=3))
    with pytest.raises(FrozenModelError, match="takes 2 inputs"):
        _with_matmul(f, inputs=(1,))


def test_matmul_work_is_bounded_before_anything_runs():
    """Three operands of a few MiB each can declare 2^39 multiply-adds per sample (m = n = 2^13,
    k = 2^13 would be 2^26 elements per operand); the planner refuses above MAX_MATMUL_WORK."""
    from rtinfer.ops import MAX_MATMUL_WORK
    m = k = n = 1 << 9  # 2^27 multiply-adds from operands of 2^18 elements
    with pytest.raises(PlanError, match=f"{m * k * n} multiply-adds per sample, above the limit {MAX_MATMUL_WORK}"):
        build_plan(_mm_model(1, m, k, n, act_b=False))
    build_plan(_mm_model(1, m, k, n // 2, act_b=False))  # 2^26: at the limit, planned


def test_matmul_rtm_round_trip(tmp_path):
    f = _mm_model(2, 3, 4, 5)
    f.save(tmp_path / "m.rtm")
    g = rtinfer.load_frozen(tmp_path / "m.rtm")
    assert g.layers[-1].op == Op.MATMUL and dict(g.layers[-1].attrs) == dict(f.layers[-1].attrs)
    X = np.random.default_rng(9).standard_normal((4, f.input_size)).astype(np.float32)
    np.testing.assert_allclose(rtinfer.load(tmp_path / "m.rtm").predict(X), reference.run(f, X), rtol=1e-5, atol=1e-5)


# -- ONNX ----------------------------------------------------------------------------------------

def _model(nodes, inputs, outputs, inits=()):
    return graph_model(nodes, inputs, outputs, inits, opset=17, ir_version=9)


def _check(model, X, tol=1e-5, feed="x"):
    want = ort_run(model, {feed: X})[0]
    f = from_onnx(model)
    assert any(layer.op == Op.MATMUL for layer in f.layers)
    for got in (rtinfer.load(f).predict(X), reference.run(f, X[None])[0] if f.meta.get("batch") == "none"
                else reference.run(f, X)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    back = ort_run(to_onnx(f), {"input": X})[0]
    np.testing.assert_allclose(back, want, rtol=tol, atol=tol)
    return f


def _attention(T=6, D=8, heads=2):
    """Self-attention with `heads` heads on x (N, T, D): softmax(Q K^T / sqrt(d)) V, out-projected."""
    rng = np.random.default_rng(11)
    d = D // heads
    inits, nodes = [], []
    for name in ("Wq", "Wk", "Wv", "Wo"):
        inits.append(numpy_helper.from_array((rng.standard_normal((D, D)) / np.sqrt(D)).astype(np.float32), name))
        if name != "Wo":
            nodes.append(helper.make_node("MatMul", ["x", name], [name[1].lower()]))
    inits.append(numpy_helper.from_array(np.array([0, T, heads, d], np.int64), "split_shape"))
    inits.append(numpy_helper.from_array(np.array([0, T, D], np.int64), "merge_shape"))
    inits.append(numpy_helper.from_array(np.array(1 / np.sqrt(d), np.float32), "scale"))
    for t in "qkv":
        nodes.append(helper.make_node("Reshape", [t, "split_shape"], [t + "4"]))
        nodes.append(helper.make_node("Transpose", [t + "4"], [t + "h"], perm=[0, 2, 1, 3]))  # (N, H, T, d)
    nodes += [
        helper.make_node("Transpose", ["kh"], ["khT"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["qh", "khT"], ["s"]),
        helper.make_node("Mul", ["s", "scale"], ["ss"]),
        helper.make_node("Softmax", ["ss"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "vh"], ["o"]),
        helper.make_node("Transpose", ["o"], ["oT"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["oT", "merge_shape"], ["om"]),
        helper.make_node("MatMul", ["om", "Wo"], ["y"]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", T, D])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", T, D])], inits)


@needs_onnxruntime
def test_attention_block_matches_onnxruntime():
    m = _attention()
    X = np.random.default_rng(12).standard_normal((5, 6, 8)).astype(np.float32)
    f = _check(m, X)
    assert sum(layer.op == Op.MATMUL for layer in f.layers) == 2
    assert f.meta.get("batch") is None  # per sample: the batch axis stays


@needs_onnxruntime
def test_matmul_of_runtime_tensors_with_a_shared_operand_matches_onnxruntime():
    """(N, 3, 4, 5) @ (N, 5, 2): the right operand is one matrix for all 3 groups... only where
    ranks agree per sample: here both operands are (N, G, ., .) with the right one repeated."""
    w = numpy_helper.from_array(np.random.default_rng(13).standard_normal((5, 2)).astype(np.float32), "w")
    nodes = [helper.make_node("ReduceMean", ["x"], ["xm"], axes=[1], keepdims=1),  # (N, 1, 4, 5)
             helper.make_node("Transpose", ["xm"], ["xt"], perm=[0, 1, 3, 2]),      # (N, 1, 5, 4)
             helper.make_node("MatMul", ["x", "xt"], ["y"])]                          # (N, 3, 4, 4)
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 5])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 4])], [w])
    X = np.random.default_rng(14).standard_normal((7, 3, 4, 5)).astype(np.float32)
    f = _check(m, X)
    mm = [layer for layer in f.layers if layer.op == Op.MATMUL][0]
    assert (mm.attrs["a_groups"], mm.attrs["b_groups"]) == (3, 1)


@needs_onnxruntime
def test_gram_matrix_without_a_batch_axis_matches_onnxruntime():
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
             helper.make_node("MatMul", ["xt", "x"], ["y"])]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])])
    X = np.random.default_rng(15).standard_normal((3, 4)).astype(np.float32)
    f = _check(m, X)
    assert f.meta.get("batch") == "none"


@needs_onnxruntime
def test_vector_dot_without_a_batch_axis_matches_onnxruntime():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MatMul", ["x", "r"], ["y"])]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    X = np.random.default_rng(16).standard_normal(6).astype(np.float32)
    _check(m, X)


@needs_onnxruntime
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (2.0, 0.5)])
def test_gemm_with_a_runtime_bias_matches_onnxruntime(alpha, beta):
    """PyTorch's addmm: Gemm(x, W, Gemm(x, W, b)) reads a runtime C."""
    rng = np.random.default_rng(17)
    inits = [numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")]
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["c"]),
             helper.make_node("Gemm", ["x", "W", "c"], ["y"], alpha=alpha, beta=beta)]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    X = rng.standard_normal((9, 3)).astype(np.float32)
    want = ort_run(m, {"x": X})[0]
    f = from_onnx(m)
    assert Op.BINARY in [layer.op for layer in f.layers]
    np.testing.assert_allclose(rtinfer.load(f).predict(X), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reference.run(f, X), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ort_run(to_onnx(f), {"input": X})[0], want, rtol=1e-5, atol=1e-5)


@needs_onnxruntime
@pytest.mark.parametrize("tA,tB", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_of_two_runtime_tensors_without_a_batch_axis_matches_onnxruntime(tA, tB):
    """Gemm(x, Sigmoid(x), c) with transposes of the runtime operands, alpha and beta."""
    rng = np.random.default_rng(18 + 2 * tA + tB)
    x_shape = (4, 4) if tA == tB else (3, 4)
    n_cols = x_shape[0] if tB else x_shape[1]
    c = numpy_helper.from_array(rng.standard_normal((1, n_cols)).astype(np.float32), "c")
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]),
             helper.make_node("Gemm", ["x", "s", "c"], ["y"], transA=tA, transB=tB, alpha=0.5, beta=2.0)]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [c])
    X = rng.standard_normal(x_shape).astype(np.float32)
    _check(m, X)


def test_matmul_across_the_batch_axis_is_one_clear_error():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MatMul", ["x", "r"], ["y"])]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(OnnxImportError, match="MatMul of runtime tensors .* across the batch axis"):
        from_onnx(m)


def test_matmul_partial_group_broadcast_is_refused():
    nodes = [helper.make_node("ReduceMean", ["x"], ["a"], axes=[1], keepdims=1),   # (2, 1, 3, 3) no batch
             helper.make_node("ReduceMean", ["x"], ["b"], axes=[0], keepdims=1),   # (1, 2, 3, 3)
             helper.make_node("MatMul", ["a", "b"], ["y"])]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 3, 3])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(OnnxImportError, match="broadcast against each other in part"):
        from_onnx(m)
