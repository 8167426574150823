"""Integer arithmetic on int8 / uint8 tensors (ONNX Add/Sub/Mul/Div/Max/Min/Clip/Relu/Abs/Neg and
Cast to int8/uint8/int32): imported into float32 layers on exact integer values ending in a WRAP
activation, so results wrap around like two's complement integers and Div truncates toward zero.
Compared with NumPy's integer arithmetic and onnx.reference (onnxruntime has no int8 Add/Mul
kernels), on values that overflow; exported models (Cast chains) run in onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_graphs import graph_model, ort_run
from optional import needs_onnxruntime

import rtinfer
from export import OnnxImportError, from_onnx, to_onnx
from rtinfer import reference, rtm
from rtinfer.frozen import BufferBuilder, FrozenModel, FrozenModelError, Layer, Output
from rtinfer.ops import Act, Bin, Op

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # onnx.reference divides by zero
ONNX_TYPE = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}
SHAPE = (3, 5)


def _int_graph(dtype, nodes, consts, out_type=None, out_shape=SHAPE):
    """x (N, 3, 5) of dtype -> nodes -> y; consts: {name: array} initializers."""
    t = ONNX_TYPE[dtype]
    return graph_model(nodes, [helper.make_tensor_value_info("x", t, ["N", *SHAPE])],
                       [helper.make_tensor_value_info("y", out_type or t, ["N", *out_shape])],
                       [numpy_helper.from_array(v, k) for k, v in consts.items()])


def _x(dtype, n=7, seed=0):
    """Samples covering the whole range, the extremes included (sums and products overflow)."""
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, int(info.max) + 1, (n, *SHAPE)).astype(dtype)
    x[0, 0, :3] = (info.min, info.max, 0)
    return x


def _run_all(frozen, X):
    """The compiled runtime (batch and per sample) and the reference executor, which must agree."""
    rt = rtinfer.load(frozen)
    Y = rt.predict(X.astype(np.float32))
    for i in (0, len(X) - 1):
        np.testing.assert_array_equal(rt.predict_one(X[i].astype(np.float32)), Y[i])
    np.testing.assert_array_equal(reference.run(frozen, X.astype(np.float32)), Y)
    return Y


def _onnx_reference(model, X):
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, {"x": X})[0]


CONST_OPS = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Max": np.maximum, "Min": np.minimum}


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
def test_binary_ops_wrap_like_numpy_integers(dtype, op):
    """x OP c and c OP x with a constant, and x OP (x OP c) on two runtime tensors."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(1)
    c = rng.integers(info.min, int(info.max) + 1, SHAPE).astype(dtype)
    if op == "Div":
        c[c == 0] = 3
    nodes = [helper.make_node(op, ["x", "c"], ["a"]), helper.make_node(op, ["c", "x"], ["b"]),
             helper.make_node(op, ["a", "b"], ["y"])]
    m = _int_graph(dtype, nodes, {"c": c})
    X = _x(dtype)
    if op == "Div":
        X[X == 0] = 1
    frozen = from_onnx(m)
    assert frozen.outputs[0].dtype == dtype
    Y = _run_all(frozen, X)
    assert Y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(Y, _onnx_reference(m, X))
    f = CONST_OPS.get(op, _tdiv)  # an independent twin: NumPy's own (wrapping) integer arithmetic
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(Y, f(f(X, c), f(c, X)))


def _tdiv(a, b):
    """C division of integer arrays (toward zero), x / 0 -> 0, wrapped to a's dtype."""
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    q = np.where(b64 == 0, 0, np.trunc(a64 / np.where(b64 == 0, 1, b64))).astype(np.int64)
    info = np.iinfo(a.dtype)
    return ((q - int(info.min)) % 256 + int(info.min)).astype(a.dtype)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_division_truncates_toward_zero_and_by_zero_gives_zero(dtype):
    info = np.iinfo(dtype)
    c = np.full(SHAPE, 7 if dtype == "uint8" else -7, dtype)
    c[0, 0] = 0
    m = _int_graph(dtype, [helper.make_node("Div", ["x", "c"], ["y"])], {"c": c})
    X = _x(dtype)
    Y = _run_all(from_onnx(m), X)
    x64, c64 = X.astype(np.int64), c.astype(np.int64)
    with np.errstate(all="ignore"):
        want = np.where(c64 == 0, 0, np.trunc(x64 / np.where(c64 == 0, 1, c64))).astype(np.int64)
    want = ((want - info.min) % 256 + info.min).astype(dtype)  # int8: -128 / -1 = 128 wraps to -128
    np.testing.assert_array_equal(Y, want)
    np.testing.assert_array_equal(Y[:, 0, 0], 0)  # ONNX leaves x / 0 undefined; rtinfer documents 0


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_unary_ops(dtype):
    info = np.iinfo(dtype)
    lo, hi = (np.array(v, dtype) for v in ((-20, 90) if dtype == "int8" else (20, 200)))
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["c"]), helper.make_node("Abs", ["x"], ["a"]),
             helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Add", ["c", "a"], ["s"]), helper.make_node("Sub", ["s", "r"], ["y"])]
    m = _int_graph(dtype, nodes, {"lo": lo, "hi": hi})
    X = _x(dtype)
    Y = _run_all(from_onnx(m), X)
    np.testing.assert_array_equal(Y, _onnx_reference(m, X))
    with np.errstate(over="ignore"):
        n = -X
        want = np.clip(X, lo, hi) + np.abs(X) - np.maximum(n, np.array(0, dtype))
    np.testing.assert_array_equal(Y, want)
    if dtype == "int8":  # Abs(-128) and Neg(-128) wrap to -128
        assert X[0, 0, 0] == info.min and Y[0, 0, 0] == want[0, 0, 0]


@pytest.mark.parametrize("to", ["int8", "uint8", "int32"])
def test_cast_float_to_integer_truncates_and_wraps(to):
    """float32 -> int: toward zero inside the range; outside it ONNX leaves the result undefined
    and rtinfer wraps around (what x86's conversion + narrowing gives, checked in onnxruntime)."""
    t = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "int32": TensorProto.INT32}[to]
    m = graph_model([helper.make_node("Cast", ["x"], ["y"], to=t)],
                    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                    [helper.make_tensor_value_info("y", t, ["N", 4])])
    X = np.array([[1.9, -1.9, 0.5, -0.5], [127.0, -128.0, 100.25, -3.75],
                  [255.7, 300.0, -129.0, 1000.0], [2.0 ** 20 + 3, -(2.0 ** 20) - 5, 65.0, 0.0]], np.float32)
    frozen = from_onnx(m)
    assert frozen.outputs[0].dtype == to
    Y = _run_all(frozen, X)
    info = np.iinfo(to)
    t64 = np.trunc(X.astype(np.float64)).astype(np.int64)
    np.testing.assert_array_equal(Y, ((t64 - int(info.min)) % (int(info.max) - int(info.min) + 1) + info.min).astype(to))
    inside = (t64 >= info.min) & (t64 <= info.max)
    np.testing.assert_array_equal(Y[inside], t64[inside].astype(to))


def test_integer_values_feed_dequantize_and_float_math():
    """An int8 sum back to codes (DequantizeLinear) and to float (Cast), next to the int output."""
    c = np.arange(15, dtype=np.int8).reshape(SHAPE)
    nodes = [helper.make_node("Add", ["x", "c"], ["s"]),
             helper.make_node("DequantizeLinear", ["s", "sc", "zp"], ["d"]),
             helper.make_node("Cast", ["s"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["d", "f"], ["y"])]
    m = graph_model(nodes, [helper.make_tensor_value_info("x", TensorProto.INT8, ["N", *SHAPE])],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *SHAPE])],
                    [numpy_helper.from_array(c, "c"), numpy_helper.from_array(np.array(0.25, np.float32), "sc"),
                     numpy_helper.from_array(np.array(3, np.int8), "zp")])
    X = _x("int8")
    Y = _run_all(from_onnx(m), X)
    with np.errstate(over="ignore"):
        s = (X + c).astype(np.float32)
    np.testing.assert_array_equal(Y, ((s - 3) * np.float32(0.25)) * s)


def test_refusals_name_the_problem():
    m = _int_graph("int8", [helper.make_node("Add", ["x", "c"], ["y"])], {"c": np.ones(SHAPE, np.int16)})
    with pytest.raises(OnnxImportError, match="constant of dtype int16 with a int8 runtime tensor"):
        from_onnx(m)
    m = _int_graph("int8", [helper.make_node("Softmax", ["x"], ["y"])], {})
    with pytest.raises(OnnxImportError, match="not float32"):
        from_onnx(m)


def test_frozen_int_output_needs_the_matching_wrap():
    def model(alpha, beta, dtype):
        layers = (Layer(Op.ACT, (4,), (4,), act=Act.WRAP, attrs={"alpha": alpha, "beta": beta}),)
        return FrozenModel(layers, BufferBuilder().finish(), (4,), outputs=(Output(1, (4,), dtype),))
    model(-128.0, 256.0, "int8")
    model(0.0, 256.0, "uint8")
    model(-2.0 ** 31, 2.0 ** 32, "int32")
    with pytest.raises(FrozenModelError, match="WRAP activation needs"):
        model(-128.0, 256.0, "uint8")
    with pytest.raises(FrozenModelError, match="WRAP activation needs"):
        model(0.0, 512.0, "uint8")


@needs_onnxruntime
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_round_trip_through_onnx_and_rtm(tmp_path, dtype):
    """to_onnx writes WRAP as Cast(int32) -> Cast(int8 / uint8) -> Cast(float): onnxruntime runs
    it to the same values (overflowing ones included); the re-import and the .rtm file agree."""
    info = np.iinfo(dtype)
    c = np.random.default_rng(2).integers(info.min, int(info.max) + 1, SHAPE).astype(dtype)
    nodes = [helper.make_node("Mul", ["x", "c"], ["a"]), helper.make_node("Add", ["a", "x"], ["b"]),
             helper.make_node("Div", ["b", "d"], ["y"])]
    m = _int_graph(dtype, nodes, {"c": c, "d": np.full(SHAPE, 3, dtype)})
    X = _x(dtype)
    frozen = from_onnx(m)
    Y = _run_all(frozen, X)
    exported = to_onnx(frozen)
    assert any(n.op_type == "Cast" for n in exported.graph.node)
    np.testing.assert_array_equal(ort_run(exported, {exported.graph.input[0].name: X.astype(np.float32)})[0], Y)
    np.testing.assert_array_equal(_run_all(from_onnx(exported), X), Y)
    path = tmp_path / "m.rtm"
    rtm.save_frozen(frozen, path)
    np.testing.assert_array_equal(rtinfer.load(str(path)).predict(X.astype(np.float32)), Y)


def test_wrap_layer_in_a_hand_built_graph_matches_the_reference():
    """BINARY with a fused WRAP on arbitrary floats (fractions, overflow to inf): compiled ==
    reference == the closed form."""
    layers = (Layer(Op.BINARY, (6,), (6,), act=Act.WRAP, attrs={"fn": int(Bin.MUL), "alpha": -128.0, "beta": 256.0},
                    inputs=(0, 0)),)
    frozen = FrozenModel(layers, BufferBuilder().finish(), (6,), outputs=(Output(1, (6,), "int8"),))
    X = np.array([[1.5, 0.0, -2.5, 3e20, 16.0, -11.3], [-7.0, 129.0, 0.3, -1e-30, 255.0, -255.0]], np.float32)
    Y = _run_all(frozen, X)
    np.testing.assert_array_equal(Y[0], [2, 0, 6, 0, 0, 127])  # inf -> 0; 256 wraps to 0
    sq = np.trunc((X[1].astype(np.float32) * X[1]).astype(np.float64)).astype(np.int64)
    np.testing.assert_array_equal(Y[1], sq.astype(np.int8))
