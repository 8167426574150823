"""freeze for models with convolution, pooling, batch-norm or residual layers -> FrozenModel.

Called by ``export.freeze`` when a model holds a layer of kind conv, maxpool, avgpool,
global_avgpool, flatten, batchnorm or residual; the options are those of ``freeze``.

float32: each convolution becomes one CONV (W (O, C/group, kh, kw); a 1-D Conv1D kernel (O, Cg, k)
is stored as kh = 1), absorbing a directly following BatchNorm (W' = W * s[o], b' = b * s[o] + t[o]
with s = gamma / sqrt(var + eps), t = beta - mean * s, folded in float64 and rounded once) and
then the activation after it; BatchNorm after a Dense is folded the same way; a BatchNorm
anywhere else is an AFFINE layer. Pools map to MAXPOOL / AVGPOOL / GLOBAL_AVGPOOL; Flatten
moves no data and emits nothing (layer shapes chain by element count). A ``Residual`` block
(``.body``, ``.shortcut``) becomes its body's layers and its shortcut's (or the block input
itself), joined by a BINARY ADD that absorbs the activation after the block (a ResNet's post-add
ReLU). The preprocessor is kept as an AFFINE (diagonal, as a standardizer) or DENSE layer ahead
of the first layer (folding it into a padded convolution would change the padded border).

int8: QUANTIZE after the float preprocessing, QCONV per convolution (weights symmetric per output
channel, bias int32 at x_scale * w_scale[o], requantization as QDENSE; a fused ReLU is qmin =
y_zp, other activations become QLUT), QMAXPOOL (exact, same scale), QAVGPOOL for average and
global average pools (output scale and zero point = the input's), QDENSE / QLUT as ``freeze``,
a residual add as QBINARY ADD (both inputs requantized to the calibrated output scale; a fused
ReLU is qmin = y_zp), a standalone BatchNorm as DEQUANTIZE + AFFINE + QUANTIZE, then DEQUANTIZE
and the float head. Ranges come from a float64 simulation of the folded model on the
calibration data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rtinfer import quant
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Act, Bin, Op
from rtinfer.reference_conv import conv_sum, geometry_attrs, make_geometry, pool_counts, window_out_shape, windows

from .freeze_common import (
    DenseStage, FreezeError, act_attrs, act_of, act_table, check_accumulator, check_calibration, check_method, float_act,
    head_layers, head_of, meta_of, tensor_range, weight_scales,
)

GRAPH_KINDS = frozenset({"conv", "maxpool", "avgpool", "global_avgpool", "flatten", "batchnorm", "residual"})


@dataclass
class _ConvS:
    W: np.ndarray  # (O, Cg, kh, kw) float64
    b: np.ndarray  # (O,) float64
    attrs: dict  # geometry + group
    in_shape: tuple
    out_shape: tuple
    act: Act = Act.IDENTITY
    alpha: float = 0.0
    name: str = ""


@dataclass
class _PoolS:
    op: Op  # MAXPOOL, AVGPOOL or GLOBAL_AVGPOOL
    attrs: dict
    in_shape: tuple
    out_shape: tuple
    name: str = ""


@dataclass
class _AffineS:
    s: np.ndarray  # (size,) float64, per-channel scale expanded over the sample
    t: np.ndarray
    shape: tuple
    name: str = ""


@dataclass
class _ActS:
    act: Act
    alpha: float
    shape: tuple
    name: str = ""


@dataclass
class _DenseS:
    dense: DenseStage
    in_shape: tuple = field(default=())


@dataclass
class _ResS:
    body: list  # stages
    shortcut: list | None  # stages, or None for the identity
    in_shape: tuple
    out_shape: tuple
    act: Act = Act.IDENTITY  # the activation after the add
    alpha: float = 0.0
    name: str = ""


def needs_graph(model) -> bool:
    return any(getattr(layer, "kind", None) in GRAPH_KINDS for layer in getattr(model, "layers", None) or ())


def _geometry_of(layer) -> dict:
    g = layer.geo
    return geometry_attrs((g.kh, g.kw), (g.sh, g.sw), (g.dh, g.dw), ((g.pt, g.pb), (g.pl, g.pr)))


def _fusable(prev) -> bool:
    if isinstance(prev, _ConvS):
        return prev.act == Act.IDENTITY
    if isinstance(prev, _DenseS):
        return prev.dense.act == Act.IDENTITY
    return False


def read_stages(model) -> list:
    """model.layers -> stages with BatchNorm folded and activations fused where possible."""
    counts: dict = {}
    stages, shape = _read(list(model.layers), tuple(model.input_shape), counts, "layer ")
    if len(shape) != 1:
        raise FreezeError(f"the model's last layer gives {shape} per sample; freeze needs a vector of logits")
    return stages


def _read(layers: list, shape: tuple, counts: dict, prefix: str) -> tuple[list, tuple]:
    stages: list = []

    def name(kind):
        counts[kind] = counts.get(kind, 0) + 1
        return f"{kind}_{counts[kind] - 1}"

    for i, layer in enumerate(layers):
        kind = getattr(layer, "kind", None)
        where = f"{prefix}{i} ({type(layer).__name__})"
        prev = stages[-1] if stages else None
        if kind == "dense":
            W = np.asarray(layer.W, dtype=np.float64)
            b = np.asarray(layer.b, dtype=np.float64)
            if math.prod(shape) != W.shape[0]:
                raise FreezeError(f"{where}: takes {W.shape[0]} inputs but receives {shape}")
            if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise FreezeError(f"{where}: weights contain NaN or infinity")
            stages.append(_DenseS(DenseStage(W.copy(), b.copy(), name=name("dense")), (W.shape[0],)))
            shape = (W.shape[1],)
        elif kind == "activation":
            act, alpha = act_of(layer, where)
            if act == Act.IDENTITY:
                continue
            if _fusable(prev) and isinstance(prev, _ConvS):
                prev.act, prev.alpha = act, alpha
            elif _fusable(prev):
                prev.dense.act, prev.dense.alpha = act, alpha
            elif isinstance(prev, _ResS) and prev.act == Act.IDENTITY:
                prev.act, prev.alpha = act, alpha  # the post-add activation: fused into the add
            else:
                stages.append(_ActS(act, alpha, shape, name("act")))
        elif kind == "conv":
            W = np.asarray(layer.W, dtype=np.float64)
            if W.ndim == 3:  # Conv1D (O, Cg, k) -> (O, Cg, 1, k)
                W = W[:, :, None, :]
            b = np.asarray(layer.b, dtype=np.float64)
            if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise FreezeError(f"{where}: weights contain NaN or infinity")
            attrs = dict(_geometry_of(layer), group=int(layer.groups))
            stages.append(_ConvS(W.copy(), b.copy(), attrs, shape, tuple(layer.out_shape), name=name("conv")))
            shape = tuple(layer.out_shape)
        elif kind == "batchnorm":
            s, t = (np.asarray(v, dtype=np.float64) for v in layer.scale_shift())
            if not (np.all(np.isfinite(s)) and np.all(np.isfinite(t))):
                raise FreezeError(f"{where}: batch-norm statistics contain NaN or infinity")
            if _fusable(prev) and isinstance(prev, _ConvS):
                prev.W = prev.W * s[:, None, None, None]
                prev.b = prev.b * s + t
            elif _fusable(prev):
                prev.dense.W = prev.dense.W * s[None, :]
                prev.dense.b = prev.dense.b * s + t
            else:
                reps = math.prod(shape[1:])
                stages.append(_AffineS(np.repeat(s, reps), np.repeat(t, reps), shape, name("batchnorm")))
        elif kind in ("maxpool", "avgpool"):
            attrs = _geometry_of(layer)
            if kind == "avgpool":
                attrs["count_include_pad"] = int(layer.count_include_pad)
            op = Op.MAXPOOL if kind == "maxpool" else Op.AVGPOOL
            stages.append(_PoolS(op, attrs, shape, tuple(layer.out_shape), name(kind)))
            shape = tuple(layer.out_shape)
        elif kind == "global_avgpool":
            stages.append(_PoolS(Op.GLOBAL_AVGPOOL, {}, shape, (shape[0],), name(kind)))
            shape = (shape[0],)
        elif kind == "flatten":
            shape = (math.prod(shape),)
        elif kind == "residual":
            block = name("residual")
            body, out = _read(list(layer.body), shape, counts, f"{where} body ")
            short = None
            if layer.shortcut is not None:
                short, s_out = _read([layer.shortcut], shape, counts, f"{where} shortcut ")
                if math.prod(s_out) != math.prod(out):
                    raise FreezeError(f"{where}: the shortcut gives {s_out}, the body {out}")
            elif math.prod(out) != math.prod(shape):
                raise FreezeError(f"{where}: an identity shortcut needs the body to keep the shape {shape}, got {out}")
            stages.append(_ResS(body, short, shape, out, name=block))
            shape = out
        else:
            raise FreezeError(f"{where}: cannot freeze layer kind {kind!r}; supported: dense, activation, "
                              f"{', '.join(sorted(GRAPH_KINDS))}")
    return stages, shape


# ------------------------------------------------------------------------------ float64 simulation
def _sim_conv(x: np.ndarray, s: _ConvS) -> np.ndarray:
    """x (N, *in_shape) float64 -> pre-activation (N, *out_shape)."""
    g = make_geometry(s.in_shape, s.attrs)
    cols = windows(x.reshape(x.shape[0], -1), g, 0.0)
    y = conv_sum(cols, s.W, g, s.attrs["group"]) + s.b[None, :, None]
    return y.reshape((x.shape[0],) + s.out_shape)


def _sim_pool(x: np.ndarray, s: _PoolS) -> np.ndarray:
    n = x.shape[0]
    if s.op == Op.GLOBAL_AVGPOOL:
        return x.reshape(n, s.in_shape[0], -1).mean(axis=2)
    g = make_geometry(s.in_shape, s.attrs)
    if s.op == Op.MAXPOOL:
        y = windows(x.reshape(n, -1), g, -np.inf).max(axis=(2, 3))
    else:
        y = windows(x.reshape(n, -1), g, 0.0).sum(axis=(2, 3)) / pool_counts(g, bool(s.attrs["count_include_pad"]))
    return y.reshape((n,) + s.out_shape)


# ------------------------------------------------------------------------------ freeze
def _flat_input(model, X, d: int, what: str):
    flatten = getattr(model, "flatten_input", None)
    if flatten is not None and X is not None:
        try:
            X = flatten(np.asarray(X))
        except ValueError as exc:
            raise FreezeError(f"{what}: {exc}") from None
    return X


class _Graph:
    """Layers under construction with explicit inputs (tensor 0 is the model input)."""

    def __init__(self, input_shape: tuple):
        self.builder = BufferBuilder()
        self.layers: list[Layer] = []
        self.input_shape = tuple(input_shape)

    def shape_of(self, t: int) -> tuple:
        return self.input_shape if t == 0 else self.layers[t - 1].out_shape

    def add(self, op, in_shape, out_shape, inputs, act=Act.IDENTITY, tensors=None, attrs=None, name="") -> int:
        refs = {k: self.builder.add(v) for k, v in (tensors or {}).items()}
        self.layers.append(Layer(op, in_shape, out_shape, act, refs, attrs or {}, name, inputs=tuple(inputs)))
        return len(self.layers)

    def preprocess(self, pre, d: int, t: int) -> int:
        A, c = pre
        if np.count_nonzero(A - np.diag(np.diag(A))) == 0:
            return self.add(Op.AFFINE, (d,), (d,), (t,), name="preprocess",
                            tensors={"s": np.diag(A).astype(np.float32), "t": c.astype(np.float32)})
        return self.add(Op.DENSE, (d,), (d,), (t,), name="preprocess",
                        tensors={"W": A.astype(np.float32), "b": c.astype(np.float32)})


def freeze_graph(model, dtype: str, calibration, method: str, percentile: float, reduce_range: bool,
                 pre) -> FrozenModel:
    """Freeze a model with conv / pool / batch-norm / residual layers (see the module doc); ``pre``
    is the preprocessor's (A, c) or None."""
    stages = read_stages(model)
    head = head_of(model)
    input_shape = tuple(int(v) for v in model.input_shape)
    d = math.prod(input_shape)
    if pre is not None and pre[0].shape[0] != d:
        raise FreezeError(f"preprocessor has {pre[0].shape[0]} features; the model input has {d}")
    if dtype == "float32":
        return _freeze_fp32(model, stages, pre, head, input_shape)
    percentile = check_method(method, percentile)
    X = check_calibration(_flat_input(model, calibration, d, "calibration data"), d)
    return _freeze_int8(model, stages, pre, head, input_shape, X, method, percentile, reduce_range)


def _emit_fp32(g: _Graph, stages: list, t: int, shape: tuple) -> tuple[int, tuple]:
    for s in stages:
        if isinstance(s, _ConvS):
            attrs = dict(s.attrs, **act_attrs(s.act, s.alpha))
            t = g.add(Op.CONV, s.in_shape, s.out_shape, (t,), s.act, {"W": s.W.astype(np.float32),
                                                                   "b": s.b.astype(np.float32)}, attrs, s.name)
            shape = s.out_shape
        elif isinstance(s, _PoolS):
            t = g.add(s.op, s.in_shape, s.out_shape, (t,), attrs=s.attrs, name=s.name)
            shape = s.out_shape
        elif isinstance(s, _AffineS):
            t = g.add(Op.AFFINE, s.shape, s.shape, (t,), tensors={"s": s.s.astype(np.float32),
                                                                  "t": s.t.astype(np.float32)}, name=s.name)
        elif isinstance(s, _ActS):
            t = g.add(Op.ACT, s.shape, s.shape, (t,), s.act, attrs=act_attrs(s.act, s.alpha), name=s.name)
        elif isinstance(s, _ResS):
            t_in = t
            tb, sb = _emit_fp32(g, s.body, t_in, s.in_shape)
            ts, ss = (t_in, s.in_shape) if s.shortcut is None else _emit_fp32(g, s.shortcut, t_in, s.in_shape)
            tb = _view(g, tb, s.out_shape)
            ts = _view(g, ts, s.out_shape)
            t = g.add(Op.BINARY, s.out_shape, s.out_shape, (tb, ts), s.act,
                      attrs=dict({"fn": int(Bin.ADD)}, **act_attrs(s.act, s.alpha)), name=s.name)
            shape = s.out_shape
        else:
            dn = s.dense
            t = g.add(Op.DENSE, s.in_shape, (dn.W.shape[1],), (t,), dn.act,
                      {"W": dn.W.astype(np.float32), "b": dn.b.astype(np.float32)}, act_attrs(dn.act, dn.alpha), dn.name)
            shape = (dn.W.shape[1],)
    return t, shape


def _view(g: _Graph, t: int, want: tuple) -> int:
    """Tensor t as shape ``want`` (the inputs of an add are read in their producers' shapes): a
    RESHAPE, which moves no data, when the producer's shape differs."""
    have = g.shape_of(t)
    if tuple(have) == tuple(want):
        return t
    return g.add(Op.RESHAPE, have, want, (t,), name="view")


def _freeze_fp32(model, stages, pre, head, input_shape) -> FrozenModel:
    g = _Graph(input_shape)
    d = math.prod(input_shape)
    t = 0 if pre is None else g.preprocess(pre, d, 0)
    t, shape = _emit_fp32(g, stages, t, input_shape)
    width = math.prod(shape)
    for layer in head_layers(head, width):
        g.layers.append(Layer(layer.op, layer.in_shape, layer.out_shape, layer.act, layer.tensors, layer.attrs,
                              layer.name, inputs=(t,)))
        t = len(g.layers)
    return FrozenModel(tuple(g.layers), g.builder.finish(), input_shape, (width,), meta=meta_of(model, "float32"))


class _Int8:
    """The int8 emitter: float64 calibration values travel with each tensor's (scale, zero point)."""

    def __init__(self, g: _Graph, method, percentile, reduce_range):
        self.g, self.method, self.percentile, self.reduce_range = g, method, percentile, reduce_range

    def qparams(self, t):
        return quant.choose_qparams(*tensor_range(t, self.method, self.percentile))

    @staticmethod
    def requant_attrs(x_qp, y_qp, act):
        return {"x_scale": x_qp[0], "x_zp": x_qp[1], "y_scale": y_qp[0], "y_zp": y_qp[1],
                "qmin": y_qp[1] if act == Act.RELU else quant.QMIN, "qmax": quant.QMAX}

    def lut(self, t, act, alpha, x_qp, y_qp, shp, name) -> int:
        attrs = {"x_scale": x_qp[0], "x_zp": x_qp[1], "y_scale": y_qp[0], "y_zp": y_qp[1], "act": int(act)}
        attrs.update(act_attrs(act, alpha))
        return self.g.add(Op.QLUT, shp, shp, (t,), tensors={"table": act_table(act, alpha, x_qp, y_qp)},
                          attrs=attrs, name=name)

    def emit(self, stages: list, t: int, qp, x: np.ndarray, shape: tuple):
        """Stages from int8 tensor t (scale/zero point qp, float64 values x) -> (t, qp, x, shape)."""
        g = self.g
        for s in stages:
            if isinstance(s, (_ConvS, _DenseS)):
                if isinstance(s, _ConvS):
                    z = _sim_conv(x.reshape((x.shape[0],) + s.in_shape), s)
                    act, alpha, name, out_shape = s.act, s.alpha, s.name, s.out_shape
                    o = s.W.shape[0]
                    W2 = s.W.reshape(o, -1).T  # (Cg*kh*kw, O): per-column (output channel) scales
                    b = s.b
                else:
                    dn = s.dense
                    z = x.reshape(x.shape[0], -1) @ dn.W + dn.b
                    act, alpha, name, out_shape = dn.act, dn.alpha, dn.name, (dn.W.shape[1],)
                    W2, b = dn.W, dn.b
                fused = act in (Act.IDENTITY, Act.RELU)
                y_qp = self.qparams(float_act(z, act, alpha) if fused else z)
                w_scale = weight_scales(W2, self.reduce_range)
                Wq2 = quant.quantize_weights(W2, w_scale)
                check_accumulator(DenseStage(W2, b, name=name), Wq2, qp[0], w_scale)
                bq = quant.quantize_bias(b, qp[0], w_scale)
                attrs = self.requant_attrs(qp, y_qp, act)
                if isinstance(s, _ConvS):
                    Wq = np.ascontiguousarray(Wq2.T).reshape(s.W.shape)
                    t = g.add(Op.QCONV, s.in_shape, out_shape, (t,), tensors={"W": Wq, "b": bq, "w_scale": w_scale},
                              attrs=dict(s.attrs, **attrs), name=name)
                else:
                    t = g.add(Op.QDENSE, s.in_shape, out_shape, (t,), tensors={"W": Wq2, "b": bq, "w_scale": w_scale},
                              attrs=attrs, name=name)
                qp, x, shape = y_qp, z, out_shape
                if fused:
                    x = float_act(z, act, alpha)
                    continue
                y = float_act(x, act, alpha)
                y_qp = self.qparams(y)
                t = self.lut(t, act, alpha, qp, y_qp, shape, name + "/" + act.name.lower())
                qp, x = y_qp, y
            elif isinstance(s, _ActS):
                y = float_act(x, s.act, s.alpha)
                y_qp = self.qparams(y)
                t = self.lut(t, s.act, s.alpha, qp, y_qp, s.shape, s.name)
                qp, x = y_qp, y
            elif isinstance(s, _PoolS):
                x = _sim_pool(x.reshape((x.shape[0],) + s.in_shape), s)
                if s.op == Op.MAXPOOL:
                    t = g.add(Op.QMAXPOOL, s.in_shape, s.out_shape, (t,), attrs=dict(s.attrs, x_scale=qp[0], x_zp=qp[1]),
                              name=s.name)
                    shape = s.out_shape
                    continue
                if s.op == Op.GLOBAL_AVGPOOL:  # a QAVGPOOL whose window is the whole input
                    hw = (1, s.in_shape[1]) if len(s.in_shape) == 2 else s.in_shape[1:]
                    attrs = dict(geometry_attrs(hw), count_include_pad=0)
                    out_shape = window_out_shape(s.in_shape, attrs)
                else:
                    attrs, out_shape = dict(s.attrs), s.out_shape
                attrs.update(x_scale=qp[0], x_zp=qp[1], y_scale=qp[0], y_zp=qp[1])
                t = g.add(Op.QAVGPOOL, s.in_shape, out_shape, (t,), attrs=attrs, name=s.name)
                shape = out_shape
            elif isinstance(s, _ResS):
                tb, qb, xb, sb = self.emit(s.body, t, qp, x, s.in_shape)
                if s.shortcut is None:
                    ts, qs, xs, ss = t, qp, x, s.in_shape
                else:
                    ts, qs, xs, ss = self.emit(s.shortcut, t, qp, x, s.in_shape)
                tb, ts = _view(g, tb, s.out_shape), _view(g, ts, s.out_shape)
                n = x.shape[0]
                z = xb.reshape((n,) + s.out_shape) + xs.reshape((n,) + s.out_shape)
                fused = s.act in (Act.IDENTITY, Act.RELU)
                y_qp = self.qparams(float_act(z, s.act, s.alpha) if fused else z)
                attrs = {"fn": int(Bin.ADD), "a_scale": qb[0], "a_zp": qb[1], "b_scale": qs[0], "b_zp": qs[1],
                         "y_scale": y_qp[0], "y_zp": y_qp[1],
                         "qmin": y_qp[1] if s.act == Act.RELU else quant.QMIN, "qmax": quant.QMAX}
                t = g.add(Op.QBINARY, s.out_shape, s.out_shape, (tb, ts), attrs=attrs, name=s.name)
                qp, x, shape = y_qp, z, s.out_shape
                if fused:
                    x = float_act(z, s.act, s.alpha)
                    continue
                y = float_act(x, s.act, s.alpha)
                y_qp = self.qparams(y)
                t = self.lut(t, s.act, s.alpha, qp, y_qp, shape, s.name + "/" + s.act.name.lower())
                qp, x = y_qp, y
            else:  # standalone batch-norm: float affine between DEQUANTIZE and QUANTIZE
                x = x.reshape((x.shape[0],) + s.shape) * s.s.reshape(s.shape) + s.t.reshape(s.shape)
                t = g.add(Op.DEQUANTIZE, s.shape, s.shape, (t,), attrs={"x_scale": qp[0], "x_zp": qp[1]},
                          name=s.name + "/dequantize")
                t = g.add(Op.AFFINE, s.shape, s.shape, (t,), tensors={"s": s.s.astype(np.float32),
                                                                      "t": s.t.astype(np.float32)}, name=s.name)
                qp = self.qparams(x)
                t = g.add(Op.QUANTIZE, s.shape, s.shape, (t,), attrs={"y_scale": qp[0], "y_zp": qp[1]},
                          name=s.name + "/quantize")
        return t, qp, x, shape


def _freeze_int8(model, stages, pre, head, input_shape, X, method, percentile, reduce_range) -> FrozenModel:
    g = _Graph(input_shape)
    em = _Int8(g, method, percentile, reduce_range)
    d = math.prod(input_shape)
    x = X
    t = 0
    if pre is not None:
        t = g.preprocess(pre, d, 0)
        x = X @ pre[0] + pre[1]
    x = x.reshape((X.shape[0],) + input_shape)
    qp = em.qparams(x)
    t = g.add(Op.QUANTIZE, input_shape, input_shape, (t,), attrs={"y_scale": qp[0], "y_zp": qp[1]}, name="quantize")
    t, qp, x, shape = em.emit(stages, t, qp, x, input_shape)
    width = math.prod(shape)
    t = g.add(Op.DEQUANTIZE, (width,), (width,), (t,), attrs={"x_scale": qp[0], "x_zp": qp[1]}, name="dequantize")
    for layer in head_layers(head, width):
        g.layers.append(Layer(layer.op, layer.in_shape, layer.out_shape, layer.act, layer.tensors, layer.attrs,
                              layer.name, inputs=(t,)))
        t = len(g.layers)
    calib = method if method == "minmax" else f"percentile:{percentile:g}"
    extra = {"weight_range": "reduced"} if reduce_range else {}
    meta = meta_of(model, "int8", calibration=calib, calibration_samples=X.shape[0], **extra)
    return FrozenModel(tuple(g.layers), g.builder.finish(), input_shape, (width,), meta=meta)
