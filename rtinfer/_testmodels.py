"""Hand-built FrozenModels with random weights, for the runtime's tests and benchmarks.

    fp32_mlp([784, 128, 64, 10], acts=[Act.RELU, Act.RELU, Act.IDENTITY], head="softmax")
    int8_mlp([784, 128, 64, 10], lut=np.tanh)   # QUANTIZE -> QDENSE(ReLU) [-> QLUT] ... -> DEQUANTIZE -> SOFTMAX

Built directly with BufferBuilder (no training, no export), deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

from . import quant
from .frozen import BufferBuilder, FrozenModel, Layer
from .ops import Act, Op


def _weights(rng, sizes):
    out = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        W = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        bias = (0.1 * rng.standard_normal(b)).astype(np.float32)
        out.append((W, bias))
    return out


def _head(layers, head, n, axis=(1, None, 1)):
    outer, axis_len, inner = axis
    axis_len = n // (outer * inner) if axis_len is None else axis_len
    attrs = {"outer": outer, "axis_len": axis_len, "inner": inner}
    if head == "softmax":
        layers.append(Layer(Op.SOFTMAX, (n,), (n,), attrs=attrs, name="softmax"))
    elif head == "log_softmax":
        layers.append(Layer(Op.LOG_SOFTMAX, (n,), (n,), attrs=attrs, name="log_softmax"))
    elif head == "argmax":
        layers.append(Layer(Op.ARGMAX, (n,), (outer * inner,), attrs=attrs, name="argmax"))
        return (outer * inner,), "int64"
    elif head is not None:
        raise ValueError(f"unknown head {head!r}")
    return (n,), "float32"


def fp32_mlp(sizes, acts=None, head="softmax", seed=0, affine_in=False, reshape_in=None,
             act_params=None, axis=(1, None, 1)) -> FrozenModel:
    """DENSE layers sizes[0] -> ... -> sizes[-1] with activations acts (default ReLU, identity
    last), an optional AFFINE input normalization, an optional leading RESHAPE from reshape_in,
    and a head: "softmax", "log_softmax", "argmax" or None."""
    rng = np.random.default_rng(seed)
    n_layers = len(sizes) - 1
    if acts is None:
        acts = [Act.RELU] * (n_layers - 1) + [Act.IDENTITY]
    bb = BufferBuilder()
    layers = []
    in_shape = tuple(reshape_in) if reshape_in is not None else (sizes[0],)
    if reshape_in is not None:
        layers.append(Layer(Op.RESHAPE, in_shape, (sizes[0],), name="flatten"))
    if affine_in:
        s = bb.add((0.5 + rng.random(sizes[0])).astype(np.float32))
        t = bb.add((0.1 * rng.standard_normal(sizes[0])).astype(np.float32))
        layers.append(Layer(Op.AFFINE, (sizes[0],), (sizes[0],), tensors={"s": s, "t": t}, name="norm"))
    for i, (W, b) in enumerate(_weights(rng, sizes)):
        attrs = dict(act_params[i]) if act_params else {}
        layers.append(Layer(Op.DENSE, (sizes[i],), (sizes[i + 1],), Act(acts[i]),
                            {"W": bb.add(W), "b": bb.add(b)}, attrs, name=f"dense{i}"))
    out_shape, out_dtype = _head(layers, head, sizes[-1], axis)
    return FrozenModel(tuple(layers), bb.finish(), in_shape, out_shape, out_dtype)


def int8_mlp(sizes, seed=0, relu=True, lut=None, head="softmax", n_cal=256) -> FrozenModel:
    """QUANTIZE -> [QDENSE (fused ReLU via qmin = y_zp when relu) -> QLUT(lut) if lut]... ->
    DEQUANTIZE -> head, with quantization parameters calibrated on random inputs through the
    float twin of the model (rtinfer.quant formulas throughout)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_cal, sizes[0]))
    bb = BufferBuilder()
    x_scale, x_zp = quant.choose_qparams(X.min(), X.max())
    layers = [Layer(Op.QUANTIZE, (sizes[0],), (sizes[0],), attrs={"y_scale": x_scale, "y_zp": x_zp}, name="quant")]
    h = X
    weights = _weights(rng, sizes)
    for i, (W, b) in enumerate(weights):
        hidden = i < len(weights) - 1
        z = h @ W.astype(np.float64) + b
        fused_relu = relu and hidden
        if fused_relu:
            z = np.maximum(z, 0.0)
        y_scale, y_zp = quant.choose_qparams(z.min(), z.max())
        w_scale = quant.symmetric_weight_scales(W)
        attrs = {"x_scale": x_scale, "x_zp": x_zp, "y_scale": y_scale, "y_zp": y_zp,
                 "qmin": y_zp if fused_relu else quant.QMIN, "qmax": quant.QMAX}
        layers.append(Layer(Op.QDENSE, (sizes[i],), (sizes[i + 1],), tensors={
            "W": bb.add(quant.quantize_weights(W, w_scale)),
            "b": bb.add(quant.quantize_bias(b, x_scale, w_scale)),
            "w_scale": bb.add(w_scale)}, attrs=attrs, name=f"qdense{i}"))
        h, x_scale, x_zp = z, y_scale, y_zp
        if lut is not None and hidden:
            hz = lut(h)
            t_scale, t_zp = quant.choose_qparams(hz.min(), hz.max())
            table = quant.build_lut(lut, x_scale, x_zp, t_scale, t_zp)
            layers.append(Layer(Op.QLUT, (sizes[i + 1],), (sizes[i + 1],), tensors={"table": bb.add(table)},
                                attrs={"x_scale": x_scale, "x_zp": x_zp, "y_scale": t_scale, "y_zp": t_zp},
                                name=f"lut{i}"))
            h, x_scale, x_zp = hz, t_scale, t_zp
    layers.append(Layer(Op.DEQUANTIZE, (sizes[-1],), (sizes[-1],), attrs={"x_scale": x_scale, "x_zp": x_zp},
                        name="dequant"))
    out_shape, out_dtype = _head(layers, head, sizes[-1])
    return FrozenModel(tuple(layers), bb.finish(), (sizes[0],), out_shape, out_dtype)


def residual_mlp(d=12, hidden=16, n_out=5, blocks=2, seed=0, act=Act.RELU, head="softmax") -> FrozenModel:
    """DENSE d -> hidden, then `blocks` residual blocks y = act(x + DENSE(act(DENSE(x)))) (BINARY
    ADD with a fused activation), then DENSE hidden -> n_out and a head: a graph, not a chain."""
    rng = np.random.default_rng(seed)
    bb = BufferBuilder()
    layers = []

    def dense(n_in, n_out_, a, inputs, name):
        W = (rng.standard_normal((n_in, n_out_)) / np.sqrt(n_in)).astype(np.float32)
        b = (0.1 * rng.standard_normal(n_out_)).astype(np.float32)
        layers.append(Layer(Op.DENSE, (n_in,), (n_out_,), a, {"W": bb.add(W), "b": bb.add(b)},
                            name=name, inputs=inputs))
        return len(layers)  # the tensor it writes

    t = dense(d, hidden, act, (0,), "stem")
    for k in range(blocks):
        u = dense(hidden, hidden, act, (t,), f"block{k}.fc1")
        v = dense(hidden, hidden, Act.IDENTITY, (u,), f"block{k}.fc2")
        layers.append(Layer(Op.BINARY, (hidden,), (hidden,), act, attrs={"fn": 0}, name=f"block{k}.add",
                            inputs=(t, v)))
        t = len(layers)
    t = dense(hidden, n_out, Act.IDENTITY, (t,), "head")
    out_shape, out_dtype = _head(layers, head, n_out)
    return FrozenModel(tuple(layers), bb.finish(), (d,), out_shape, out_dtype)


def two_branch(d=12, a=6, b=4, seed=0) -> FrozenModel:
    """Two DENSE branches of x (a and b outputs, relu and tanh) joined by CONCAT, a DENSE on top,
    a SLICE of the concatenation and a BINARY MUL of the slice with itself, both outputs."""
    rng = np.random.default_rng(seed)
    bb = BufferBuilder()

    def wb(n_in, n_out):
        return {"W": bb.add((rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)),
                "b": bb.add((0.1 * rng.standard_normal(n_out)).astype(np.float32))}

    layers = [
        Layer(Op.DENSE, (d,), (a,), Act.RELU, wb(d, a), name="left", inputs=(0,)),          # t1
        Layer(Op.DENSE, (d,), (b,), Act.TANH, wb(d, b), name="right", inputs=(0,)),         # t2
        Layer(Op.CONCAT, (a,), (a + b,), attrs={"axis": 0}, name="cat", inputs=(1, 2)),     # t3
        Layer(Op.DENSE, (a + b,), (3,), Act.IDENTITY, wb(a + b, 3), name="top", inputs=(3,)),  # t4
        Layer(Op.SLICE, (a + b,), (4,), attrs={"axis": 0, "start": 1, "step": 2}, name="odd", inputs=(3,)),  # t5
        Layer(Op.BINARY, (4,), (4,), attrs={"fn": 2}, name="square", inputs=(5, 5)),        # t6
    ]
    return FrozenModel(tuple(layers), bb.finish(), (d,), outputs=((4, (3,), "float32"), (6, (2, 2), "float32")))
