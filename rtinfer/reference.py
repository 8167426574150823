"""The NumPy reference executor for FrozenModel: the golden semantics.

Every compiled kernel, the planner/interpreter and the ONNX export are tested against this
file. fp32 ops compute in float32 (activations in float64 then rounded to float32); int8 ops
use exact integer arithmetic and the rounding of ``rtinfer.quant``.

    Y = run(frozen, X)              # X (N, *input_shape) float32 -> (N, *output_shape)
    Y, trace = run(frozen, X, trace=True)   # trace[i] is layer i's output, (N, *out_shape)

A model with several outputs returns a tuple of arrays, in ``frozen.outputs`` order.
"""

from __future__ import annotations

import numpy as np

from . import quant
from .activations import activation  # noqa: F401  (re-exported: rtinfer.reference.activation)
from .frozen import FrozenModel, Layer
from .ops import WINDOW_OPS, Bin, Op


def _axis_view(x: np.ndarray, layer: Layer) -> np.ndarray:
    outer = int(layer.attrs.get("outer", 1))
    axis_len = int(layer.attrs.get("axis_len", layer.in_size))
    inner = int(layer.attrs.get("inner", 1))
    return x.reshape(x.shape[0], outer, axis_len, inner)


def softmax(x: np.ndarray, layer: Layer, log: bool = False) -> np.ndarray:
    v = _axis_view(x, layer).astype(np.float32)
    m = v.max(axis=2, keepdims=True)
    z = v - m
    s = np.exp(z.astype(np.float64)).sum(axis=2, keepdims=True)
    if log:
        y = z.astype(np.float64) - np.log(s)
    else:
        y = np.exp(z.astype(np.float64)) / s
    return y.astype(np.float32).reshape(x.shape[0], -1)


def argmax(x: np.ndarray, layer: Layer, last: bool | None = None) -> np.ndarray:
    """Index of the first maximum over the axis (attr select_last = 1, or last=True: the last)."""
    v = _axis_view(x, layer)
    if last is None:
        last = bool(int(layer.attrs.get("select_last", 0)))
    if last:
        idx = v.shape[2] - 1 - np.argmax(v[:, :, ::-1, :], axis=2)
    else:
        idx = np.argmax(v, axis=2)
    return idx.astype(np.float32).reshape(x.shape[0], -1)


def qdense(x_q: np.ndarray, Wq: np.ndarray, bq: np.ndarray, w_scale: np.ndarray, layer: Layer) -> np.ndarray:
    """int8 dense with exact int32 accumulation; x_q (N, n_in) int8 -> (N, n_out) int8."""
    a = layer.attrs
    acc = (x_q.astype(np.int64) - int(a["x_zp"])) @ Wq.astype(np.int64) + bq.astype(np.int64)
    if np.any(np.abs(acc) > np.iinfo(np.int32).max):
        raise OverflowError("int32 accumulator overflow in QDENSE")
    M = quant.requant_multiplier(a["x_scale"], w_scale, a["y_scale"])
    return quant.requantize(acc.astype(np.int32), M, int(a["y_zp"]),
                            int(a.get("qmin", quant.QMIN)), int(a.get("qmax", quant.QMAX)))


def _sample_broadcast(x: np.ndarray, shape: tuple, rank: int) -> np.ndarray:
    """(N, size) flat -> (N, 1.., *shape) with rank per-sample axes (right-aligned)."""
    return x.reshape((x.shape[0],) + (1,) * (rank - len(shape)) + tuple(shape))


def binary_shapes(a_shape: tuple, b_shape: tuple) -> tuple:
    """The per-sample broadcast shape of two inputs (NumPy rules); ValueError if none."""
    return tuple(np.broadcast_shapes(tuple(a_shape), tuple(b_shape)))


def binary_f32(a: np.ndarray, b: np.ndarray, fn: int) -> np.ndarray:
    """float32 a fn b, elementwise (already broadcast)."""
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    fn = Bin(fn)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if fn == Bin.ADD:
            return a + b
        if fn == Bin.SUB:
            return a - b
        if fn == Bin.MUL:
            return a * b
        if fn == Bin.DIV:
            return a / b
        if fn == Bin.MAX:
            return np.maximum(a, b)
        return np.minimum(a, b)


def qbinary_i8(a: np.ndarray, b: np.ndarray, attrs) -> np.ndarray:
    """int8 a fn b (already broadcast), QBINARY's float32 arithmetic (rtinfer.ops)."""
    fn = Bin(int(attrs["fn"]))
    f32 = np.float32
    a_d = (a.astype(np.int32) - int(attrs["a_zp"]))
    b_d = (b.astype(np.int32) - int(attrs["b_zp"]))
    ma, mb = quant.qbinary_multipliers(fn, attrs["a_scale"], attrs["b_scale"], attrs["y_scale"])
    if fn == Bin.MUL:
        v = (a_d * b_d).astype(f32) * ma
    else:
        va = a_d.astype(f32) * ma
        vb = b_d.astype(f32) * mb
        if fn == Bin.ADD:
            v = va + vb
        elif fn == Bin.SUB:
            v = va - vb
        elif fn == Bin.MAX:
            v = np.maximum(va, vb)
        elif fn == Bin.MIN:
            v = np.minimum(va, vb)
        else:
            raise ValueError(f"QBINARY does not take fn {fn.name}")
    q = np.rint(v).astype(np.int64) + int(attrs["y_zp"])
    return np.clip(q, int(attrs.get("qmin", quant.QMIN)), int(attrs.get("qmax", quant.QMAX))).astype(np.int8)


def slice_axis(x: np.ndarray, layer: Layer) -> np.ndarray:
    """SLICE / QSLICE: x (N, in_size) -> (N, out_size), along attr axis of in_shape."""
    axis = int(layer.attrs["axis"])
    start, step = int(layer.attrs.get("start", 0)), int(layer.attrs.get("step", 1))
    count = layer.out_shape[axis]
    v = x.reshape((x.shape[0],) + layer.in_shape)
    idx = start + step * np.arange(count)
    return np.take(v, idx, axis=axis + 1).reshape(x.shape[0], -1)


def gather(x: np.ndarray, index: np.ndarray, fill) -> np.ndarray:
    """GATHER / QGATHER: x (N, in_size) -> (N, out_size), y[:, k] = x[:, index[k]] or fill."""
    index = np.asarray(index).reshape(-1).astype(np.int64)
    y = x[:, np.maximum(index, 0)]
    y[:, index < 0] = fill
    return y


def layernorm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, layer: Layer) -> np.ndarray:
    """LAYERNORM: statistics in float64, normalized value rounded to float32, then scale and bias."""
    a = layer.attrs
    n = int(a["axis_len"])
    v = x.astype(np.float64).reshape(x.shape[0], -1, n)
    mean = v.mean(axis=2, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=2, keepdims=True)
    norm = ((v - mean) * (1.0 / np.sqrt(var + float(a["epsilon"])))).astype(np.float32)
    y = norm * scale.reshape(-1).astype(np.float32) + bias.reshape(-1).astype(np.float32)
    return y.reshape(x.shape[0], -1)


def matmul(a: np.ndarray, b: np.ndarray, layer: Layer) -> np.ndarray:
    """MATMUL: a (N, a_groups*m*k) @ b (N, b_groups*k*n) per sample and group, float32."""
    at = layer.attrs
    g, m, k, n = (int(at[key]) for key in ("groups", "m", "k", "n"))
    A = a.astype(np.float32).reshape(a.shape[0], int(at["a_groups"]), m, k)
    B = b.astype(np.float32).reshape(b.shape[0], int(at["b_groups"]), k, n)
    return np.matmul(A, B).reshape(a.shape[0], g * m * n)


def dynquant(x: np.ndarray, mode: int) -> np.ndarray:
    """DYNQUANT (rtinfer.ops): ONNX DynamicQuantizeLinear of each sample (row of x (N, n)) in
    float32; mode 0 -> the codes minus the zero point (N, n), mode 1 -> the scale (N, 1)."""
    x = np.asarray(x, dtype=np.float32).reshape(x.shape[0], -1)
    n = x.shape[1]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        finite_or_inf = np.where(np.isnan(x), np.float32(0.0), x)  # NaN elements are skipped
        hi = np.maximum(np.float32(0.0), finite_or_inf.max(axis=1) if n else np.float32(0.0)).astype(np.float32)
        lo = np.minimum(np.float32(0.0), finite_or_inf.min(axis=1) if n else np.float32(0.0)).astype(np.float32)
        scale = ((hi - lo) / np.float32(255.0)).astype(np.float32)
        scale[scale == 0] = np.float32(1.0)  # all zeros (onnxruntime's 1), or a range that underflows
        if mode == 1:
            return scale.reshape(-1, 1)
        v = (-lo / scale).astype(np.float32)
        v = np.where(v < 255.0, v, np.float32(255.0))  # NaN (infinite inputs) -> 255, as onnxruntime
        zp = np.rint(np.where(v > 0.0, v, np.float32(0.0))).astype(np.float32)
        q = (x / scale[:, None]).astype(np.float32)
        q = np.where(q >= -zp[:, None], q, -zp[:, None])  # below the range, or NaN
        q = np.where(q > 255.0 - zp[:, None], 255.0 - zp[:, None], q)
        return np.rint(q).astype(np.float32)


def run_layer(frozen: FrozenModel, layer: Layer, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
    """One layer on a batch; x is its first input (N, in_size) flat, ``more`` its other inputs
    (flat, in Layer.inputs order); returns (N, out_size) flat."""
    op = layer.op
    if op in (Op.BINARY, Op.QBINARY):
        a_shape = layer.in_shape
        b_shape = frozen.tensor_shape(layer.inputs[1])
        rank = max(len(a_shape), len(b_shape))
        a = _sample_broadcast(x, a_shape, rank)
        b = _sample_broadcast(more[0], b_shape, rank)
        a, b = np.broadcast_arrays(a, b)
        if op == Op.BINARY:
            y = binary_f32(a, b, int(layer.attrs["fn"]))
            alpha, beta = layer.act_params()
            return activation(y, layer.act, alpha, beta).reshape(x.shape[0], -1)
        return qbinary_i8(a, b, layer.attrs).reshape(x.shape[0], -1)
    if op == Op.MATMUL:
        return matmul(x, more[0], layer)
    if op in (Op.CONCAT, Op.QCONCAT):
        axis = int(layer.attrs["axis"])
        parts = [v.reshape((v.shape[0],) + frozen.tensor_shape(t)) for v, t in zip((x,) + more, layer.inputs)]
        return np.concatenate(parts, axis=axis + 1).reshape(x.shape[0], -1)
    if op in (Op.SLICE, Op.QSLICE):
        return slice_axis(x, layer)
    alpha, beta = layer.act_params()
    if op == Op.DENSE:
        W = frozen.tensor(layer, "W")
        b = frozen.tensor(layer, "b")
        y = (x.astype(np.float32) @ W.astype(np.float32)) + b
        return activation(y, layer.act, alpha, beta)
    if op == Op.ACT:
        return activation(x, layer.act, alpha, beta)
    if op == Op.AFFINE:
        s = frozen.tensor(layer, "s").reshape(-1)
        t = frozen.tensor(layer, "t").reshape(-1)
        return activation(x.astype(np.float32) * s + t, layer.act, alpha, beta)
    if op == Op.SOFTMAX:
        return softmax(x, layer)
    if op == Op.LOG_SOFTMAX:
        return softmax(x, layer, log=True)
    if op == Op.ARGMAX:
        return argmax(x, layer)
    if op == Op.RESHAPE:
        return x
    if op == Op.QUANTIZE:
        return quant.quantize(x, layer.attrs["y_scale"], int(layer.attrs["y_zp"]))
    if op == Op.DEQUANTIZE:
        return quant.dequantize(x, layer.attrs["x_scale"], int(layer.attrs["x_zp"]))
    if op == Op.QDENSE:
        return qdense(x, frozen.tensor(layer, "W"), frozen.tensor(layer, "b"), frozen.tensor(layer, "w_scale"), layer)
    if op == Op.QLUT:
        table = frozen.tensor(layer, "table")
        return table[x.astype(np.int32) + 128]
    if op == Op.GATHER:
        return gather(x.astype(np.float32), frozen.tensor(layer, "index"), np.float32(layer.attrs.get("fill", 0.0)))
    if op == Op.QGATHER:
        return gather(x.astype(np.int8), frozen.tensor(layer, "index"), np.int8(int(layer.attrs.get("fill", 0))))
    if op == Op.LAYERNORM:
        return layernorm(x, frozen.tensor(layer, "scale"), frozen.tensor(layer, "bias"), layer)
    if op == Op.DYNQUANT:
        return dynquant(x, int(layer.attrs.get("mode", 0)))
    if op == Op.CONST:  # the stored tensor for every sample; x's values are not read
        value = frozen.tensor(layer, "value").reshape(1, -1).astype(np.float32)
        return np.repeat(value, x.shape[0], axis=0)
    if op in WINDOW_OPS or op == Op.GLOBAL_AVGPOOL:
        from .reference_conv import run_window_layer  # convolution and pooling
        return run_window_layer(frozen, layer, x)
    raise ValueError(f"reference executor: unsupported op {op!r}")


def run(frozen: FrozenModel, X: np.ndarray, trace: bool = False):
    """Run a batch X (N, *input_shape) through the model; returns (N, *output_shape), or a
    tuple of arrays for a model with several outputs. trace=True also returns every layer's
    output (N, *out_shape) in layer order."""
    X = np.asarray(X)
    if X.shape[1:] != frozen.input_shape:
        raise ValueError(f"expected input of shape (N, {', '.join(map(str, frozen.input_shape))}), got {X.shape}")
    n = X.shape[0]
    tensors = [X.reshape(n, -1).astype(np.float32)]
    for layer in frozen.layers:
        ins = [tensors[t] for t in layer.inputs]
        tensors.append(run_layer(frozen, layer, *ins).reshape(n, -1))
    ys = []
    for out in frozen.outputs:
        y = tensors[out.tensor].reshape((n,) + out.shape)
        ys.append(y if out.dtype == "float32" else y.astype(out.dtype))  # exact integers (FrozenModel)
    y = ys[0] if len(ys) == 1 else tuple(ys)
    if trace:
        return y, [tensors[i + 1].reshape((n,) + layer.out_shape) for i, layer in enumerate(frozen.layers)]
    return y
