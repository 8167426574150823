"""Per-axis and blocked QuantizeLinear / DequantizeLinear on the runtime tensor (export.onnx_import
rewrites them into DEQUANTIZE / AFFINE / CONST + BINARY DIV / QUANTIZE): bit for bit against
onnxruntime, ties of round-half-to-even included, with a symbolic batch axis and without one,
int8 and uint8; the to_onnx round trip of the imported model in onnxruntime; the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from onnx import TensorProto, helper, numpy_helper
from onnx_graphs import graph_model, ort_run
from optional import needs_onnxruntime

import rtinfer
from export import OnnxImportError, from_onnx, to_onnx
from export.onnx_import import BatchAxisError
from rtinfer import reference
from rtinfer.ops import Op

pytestmark = needs_onnxruntime

ONNX_TYPE = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8}


def _qdq_model(op, x_shape, dtype, scale, zp, axis=1, block_size=0, name="qdq"):
    """One QuantizeLinear (float x -> dtype codes) or DequantizeLinear (dtype x -> float) node
    with constant scale / zero point (zp None: no zero point input, dtype from output_dtype)."""
    dtype = np.dtype(dtype)
    q = op == "QuantizeLinear"
    x_type = TensorProto.FLOAT if q else ONNX_TYPE[dtype]
    y_type = ONNX_TYPE[dtype] if q else TensorProto.FLOAT
    inits = [numpy_helper.from_array(np.asarray(scale, np.float32), "s")]
    ins = ["x", "s"]
    if zp is not None:
        inits.append(numpy_helper.from_array(np.asarray(zp, dtype), "z"))
        ins.append("z")
    kw = {"axis": axis}
    if block_size:
        kw["block_size"] = block_size
    if q and zp is None:
        kw["output_dtype"] = ONNX_TYPE[dtype]
    node = helper.make_node(op, ins, ["y"], name=name, **kw)
    return graph_model([node], [helper.make_tensor_value_info("x", x_type, list(x_shape))],
                       [helper.make_tensor_value_info("y", y_type, list(x_shape))], inits)


def _bits(a):
    a = np.asarray(a)
    return a.view(np.int32) if a.dtype == np.float32 else a


def _same(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.array_equal(_bits(got), _bits(want)), f"{what}: differs at {np.argwhere(_bits(got) != _bits(want))[:5]}"


def _check(m, x, batch: bool):
    """onnxruntime's result on x, and every rtinfer path (compiled runtime: the batch path for
    32+ samples and the exact path; NumPy reference; to_onnx in onnxruntime) equal to it bit for
    bit."""
    want = ort_run(m, {"x": x})[0]
    f = from_onnx(m)
    assert (f.meta.get("batch") != "none") == batch
    X = x.astype(np.float32)
    rt = rtinfer.load(f)
    _same(rt.predict(X), want, "runtime")
    if batch:
        _same(rt.predict(X[:3]), want[:3], "runtime, 3 samples")
        _same(rt.predict_one(X[1]), want[1], "runtime, predict_one")
    _same(reference.run(f, X if batch else X[None]), want if batch else want[None], "reference")
    _same(ort_run(to_onnx(f), {"input": X})[0], want, "to_onnx in onnxruntime")
    return f, want


def _ties(rng, scale, lo, hi, n):
    """float32 values v * scale with v half-integers in [lo, hi] for which float32 division by
    scale gives v back exactly (round half to even decides them)."""
    v = (rng.integers(lo, hi, n) + 0.5).astype(np.float32)
    x = (v * np.float32(scale)).astype(np.float32)
    return np.where(x / np.float32(scale) == v, x, np.float32(0.0))


# -- QuantizeLinear ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantize_per_axis_with_batch_axis_ties_and_saturation(dtype):
    rng = np.random.default_rng(1)
    scale = np.array([0.1, 3.0, 0.7, 1.0 / 3.0], np.float32)
    zp = np.array([-3, 0, 7, 5], np.int64) + (128 if dtype == np.uint8 else 0)  # odd and even
    m = _qdq_model("QuantizeLinear", ["N", 4, 6], dtype, scale, zp.astype(dtype), axis=1)
    n = 40
    x = np.empty((n, 4, 6), np.float32)
    for c in range(4):
        x[:, c, :3] = _ties(rng, scale[c], -40, 40, n * 3).reshape(n, 3)
        x[:, c, 3:] = (rng.standard_normal((n, 3)) * 60 * scale[c]).astype(np.float32)
        x[:2, c, 5] = np.float32(1000) * scale[c] * np.array([1, -1], np.float32)  # saturates
    # the division is not a multiplication by 1 / scale, and ties meet odd zero points
    assert np.any(x / scale[None, :, None] != x * (np.float32(1) / scale)[None, :, None])
    f, want = _check(m, x, batch=True)
    info = np.iinfo(dtype)
    assert want.min() == info.min and want.max() == info.max
    # zero points added after rounding: round(v + zp) would break some of these ties
    v = x / scale[None, :, None]
    late = np.clip(np.rint(v + zp[None, :, None]), info.min, info.max).astype(dtype)
    assert np.any(late != want)
    ops = [layer.op for layer in f.layers]
    assert Op.BINARY in ops and Op.CONST in ops and ops.count(Op.AFFINE) == 2


def test_quantize_per_axis_uniform_zero_point_is_one_quantize():
    scale = np.array([0.5, 0.1, 2.5], np.float32)
    m = _qdq_model("QuantizeLinear", ["N", 2, 3], np.int8, scale, np.zeros(3, np.int8), axis=-1)
    rng = np.random.default_rng(2)
    x = np.stack([_ties(rng, s, -100, 100, 20) for s in scale], axis=-1).reshape(10, 2, 3)
    f, _ = _check(m, x, batch=True)
    assert [layer.op for layer in f.layers].count(Op.AFFINE) == 0


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantize_blocked_without_batch_axis(dtype):
    # the first dimension varies the scale: the graph imports without a batch axis
    rng = np.random.default_rng(3)
    scale = rng.uniform(0.05, 4.0, (3, 3)).astype(np.float32)  # 8 columns in blocks of 3: 3, 3, 2
    zp = rng.integers(-20, 20, (3, 3)) + (128 if dtype == np.uint8 else 0)
    m = _qdq_model("QuantizeLinear", [3, 8], dtype, scale, zp.astype(dtype), axis=1, block_size=3)
    full = np.repeat(scale, 3, axis=1)[:, :8]
    v = (rng.integers(-150, 150, (3, 8)) + 0.5).astype(np.float32)
    x = (v * full).astype(np.float32)
    x = np.where(x / full == v, x, (rng.standard_normal((3, 8)) * 30).astype(np.float32))  # ties where exact
    _check(m, x, batch=False)


def test_quantize_blocked_along_first_axis_symmetric_int8():
    rng = np.random.default_rng(4)
    scale = rng.uniform(0.1, 2.0, (2, 5)).astype(np.float32)
    m = _qdq_model("QuantizeLinear", [4, 5], np.int8, scale, None, axis=0, block_size=2)
    x = (rng.standard_normal((4, 5)) * 40).astype(np.float32)
    _check(m, x, batch=False)


# -- DequantizeLinear -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_dequantize_per_axis_with_batch_axis(dtype):
    rng = np.random.default_rng(5)
    scale = np.array([0.1, 1.0 / 3.0, 7.3e-3], np.float32)
    zp = rng.integers(-100, 100, 3) + (128 if dtype == np.uint8 else 0)
    m = _qdq_model("DequantizeLinear", ["N", 2, 3], dtype, scale, zp.astype(dtype), axis=2)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, (50, 2, 3)).astype(dtype)
    f, want = _check(m, x, batch=True)
    # (x - zp) * s, not x * s - zp * s: the two differ here, so the check above sees the order
    naive = (x.astype(np.float32) * scale - (zp * scale).astype(np.float32)).astype(np.float32)
    assert not np.array_equal(naive, want)


def test_dequantize_per_axis_uniform_zero_point():
    scale = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    m = _qdq_model("DequantizeLinear", ["N", 4], np.uint8, scale, np.full(4, 131, np.uint8), axis=1)
    x = np.random.default_rng(6).integers(0, 256, (30, 4)).astype(np.uint8)
    f, _ = _check(m, x, batch=True)
    assert [layer.op for layer in f.layers].count(Op.AFFINE) == 1


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_dequantize_blocked_without_batch_axis(dtype):
    rng = np.random.default_rng(7)
    scale = rng.uniform(0.01, 1.0, (1, 2, 3)).astype(np.float32)  # axis 1: 5 rows in blocks of 3, 2
    zp = rng.integers(-50, 50, (1, 2, 3)) + (128 if dtype == np.uint8 else 0)
    m = _qdq_model("DequantizeLinear", [1, 5, 3], dtype, scale, zp.astype(dtype), axis=1, block_size=3)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, (1, 5, 3)).astype(dtype)
    _check(m, x, batch=False)


def test_quantize_then_dequantize_per_axis_then_add():
    """Fake quantization per channel on an activation, then a float op: nothing fuses across the
    exact steps (onnxruntime's result bit for bit)."""
    rng = np.random.default_rng(8)
    scale = np.array([0.05, 0.3, 1.7], np.float32)
    zp = np.array([1, -2, 3], np.int8)
    inits = [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zp, "z"),
             numpy_helper.from_array(np.array([0.25, -1.5, 3.0], np.float32).reshape(3, 1), "b"),
             numpy_helper.from_array(np.float32(1.1), "k")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], axis=1),
             helper.make_node("Mul", ["d", "k"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    m = graph_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4])], inits)
    x = (rng.standard_normal((6, 3, 4)) * 10).astype(np.float32)
    x[:, :, 0] = np.stack([_ties(rng, s, -60, 60, 6) for s in scale], axis=1)
    _check(m, x, batch=True)


# -- refusals ---------------------------------------------------------------------------------------

def test_per_axis_along_the_batch_axis_is_refused():
    m = _qdq_model("QuantizeLinear", ["N", 3], np.int8, np.array([0.1, 0.2], np.float32), None, axis=0,
                   name="q_batch")
    with pytest.raises(BatchAxisError, match="'q_batch'.*per-axis scale of 2 values along the batch axis"):
        from_onnx(m)


def test_per_axis_along_a_fixed_first_axis_imports_without_batch_axis():
    scale = np.array([0.1, 0.2], np.float32)
    m = _qdq_model("DequantizeLinear", [2, 3], np.int8, scale, np.array([1, -1], np.int8), axis=0)
    x = np.arange(-3, 3, dtype=np.int8).reshape(2, 3) * 20
    _check(m, x, batch=False)


def test_blocked_with_a_symbolic_batch_axis_is_refused():
    m = _qdq_model("DequantizeLinear", ["N", 4], np.int8, np.ones((1, 2), np.float32), None, axis=1,
                   block_size=2, name="dq_blocked")
    with pytest.raises(OnnxImportError, match="'dq_blocked'.*blocked scale of shape \\(1, 2\\) fixes the batch "
                                              "dimension"):
        from_onnx(m)


@pytest.mark.parametrize("shape, block, why", [
    ((2, 2), 2, "ONNX requires shape \\(2, 3\\)"),      # 6 columns in blocks of 2: 3 blocks
    ((2, 4), 2, "ONNX requires shape \\(2, 3\\)"),
    ((1, 3), 2, "ONNX requires shape \\(2, 3\\)"),      # the other dimension must equal x's
    ((3,), 2, "must have the rank of x"),
])
def test_blocked_scale_of_the_wrong_shape_is_refused(shape, block, why):
    m = _qdq_model("QuantizeLinear", [2, 6], np.int8, np.ones(shape, np.float32), None, axis=1,
                   block_size=block, name="q_bad")
    with pytest.raises(OnnxImportError, match=f"'q_bad'.*{why}"):
        from_onnx(m)


def test_per_axis_parameter_errors_name_the_node():
    def imp(scale, zp, axis=1, dtype=np.int8, op="DequantizeLinear"):
        return from_onnx(_qdq_model(op, ["N", 3], dtype, np.asarray(scale, np.float32), zp, axis=axis,
                                    name="dq_node"))
    with pytest.raises(OnnxImportError, match="'dq_node'.*per-axis scale of 2 values does not match axis 1"):
        imp([0.1, 0.2], None)
    with pytest.raises(OnnxImportError, match="'dq_node'.*zero point of shape \\(2,\\) differs from the scale's"):
        imp([0.1, 0.2, 0.3], np.array([1, 2], np.int8))
    with pytest.raises(OnnxImportError, match="'dq_node'.*every scale must be positive and finite"):
        imp([0.1, 0.0, 0.3], None)
    with pytest.raises(OnnxImportError, match="'dq_node'.*axis 2 is out of range for rank 2"):
        imp([0.1, 0.2, 0.3], None, axis=2)
