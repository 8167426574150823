"""The NumPy reference executor for FrozenModel: the golden semantics.

Every compiled kernel, the planner/interpreter and the ONNX export are tested against this
file. fp32 ops compute in float32 (activations in float64 then rounded to float32); int8 ops
use exact integer arithmetic and the rounding of ``rtinfer.quant``.

    Y = run(frozen, X)              # X (N, *input_shape) float32 -> (N, *output_shape)
    Y, trace = run(frozen, X, trace=True)   # trace[i] is layer i's output, (N, *out_shape)
"""

from __future__ import annotations

import numpy as np

from . import quant
from .frozen import FrozenModel, Layer
from .ops import WINDOW_OPS, Act, Op


def activation(x: np.ndarray, act: Act, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    """Elementwise activation (the NumPy twin of the runtime's act kernel); float32 result."""
    x64 = np.asarray(x, dtype=np.float64)
    act = Act(act)
    if act == Act.IDENTITY:
        y = x64
    elif act == Act.RELU:
        y = np.maximum(x64, 0.0)
    elif act == Act.LEAKY_RELU:
        y = np.where(x64 >= 0, x64, alpha * x64)
    elif act == Act.SIGMOID:
        e = np.exp(-np.abs(x64))
        y = np.where(x64 >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    elif act == Act.TANH:
        y = np.tanh(x64)
    elif act == Act.SOFTPLUS:
        y = np.maximum(x64, 0.0) + np.log1p(np.exp(-np.abs(x64)))
    elif act == Act.ELU:
        y = np.where(x64 > 0, x64, alpha * np.expm1(np.minimum(x64, 0.0)))
    elif act == Act.SELU:
        y = beta * np.where(x64 > 0, x64, alpha * np.expm1(np.minimum(x64, 0.0)))
    elif act == Act.HARD_SIGMOID:
        y = np.clip(alpha * x64 + beta, 0.0, 1.0)
    elif act == Act.GELU:
        from math import erf, sqrt
        y = 0.5 * x64 * (1.0 + np.vectorize(erf, otypes=[np.float64])(x64 / sqrt(2.0))) if x64.size else x64
    elif act == Act.GELU_TANH:
        c = np.sqrt(2.0 / np.pi)
        y = 0.5 * x64 * (1.0 + np.tanh(c * (x64 + 0.044715 * x64 ** 3)))
    elif act == Act.CLIP:
        y = np.minimum(np.maximum(x64, alpha), beta)
    else:  # pragma: no cover - Act is a closed enum
        raise ValueError(f"unknown activation {act!r}")
    return y.astype(np.float32)


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


def argmax(x: np.ndarray, layer: Layer) -> np.ndarray:
    v = _axis_view(x, layer)
    return np.argmax(v, axis=2).astype(np.float32).reshape(x.shape[0], -1)


def qdense(x_q: np.ndarray, Wq: np.ndarray, bq: np.ndarray, w_scale: np.ndarray, layer: Layer) -> np.ndarray:
    """int8 dense with exact int32 accumulation; x_q (N, n_in) int8 -> (N, n_out) int8."""
    a = layer.attrs
    acc = (x_q.astype(np.int64) - int(a["x_zp"])) @ Wq.astype(np.int64) + bq.astype(np.int64)
    if np.any(np.abs(acc) > np.iinfo(np.int32).max):
        raise OverflowError("int32 accumulator overflow in QDENSE")
    M = quant.requant_multiplier(a["x_scale"], w_scale, a["y_scale"])
    return quant.requantize(acc.astype(np.int32), M, int(a["y_zp"]),
                            int(a.get("qmin", quant.QMIN)), int(a.get("qmax", quant.QMAX)))


def run_layer(frozen: FrozenModel, layer: Layer, x: np.ndarray) -> np.ndarray:
    """One layer on a batch; x is (N, in_size) flat, returns (N, out_size) flat."""
    op = layer.op
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
    if op in WINDOW_OPS or op == Op.GLOBAL_AVGPOOL:
        from .reference_conv import run_window_layer  # convolution and pooling
        return run_window_layer(frozen, layer, x)
    raise ValueError(f"reference executor: unsupported op {op!r}")


def run(frozen: FrozenModel, X: np.ndarray, trace: bool = False):
    """Run a batch X (N, *input_shape) through the model; returns (N, *output_shape)."""
    X = np.asarray(X)
    if X.shape[1:] != frozen.input_shape:
        raise ValueError(f"expected input of shape (N, {', '.join(map(str, frozen.input_shape))}), got {X.shape}")
    n = X.shape[0]
    x = X.reshape(n, -1).astype(np.float32)
    outs = []
    for layer in frozen.layers:
        x = run_layer(frozen, layer, x).reshape(n, -1)
        if trace:
            outs.append(x.reshape((n,) + layer.out_shape))
    y = x.reshape((n,) + frozen.output_shape)
    if frozen.output_dtype == "int64":
        y = y.astype(np.int64)
    return (y, outs) if trace else y
