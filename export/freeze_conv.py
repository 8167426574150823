"""freeze for CNN models (rtinfer.train.CNN): conv / pool / batch-norm layers -> FrozenModel.

Called by ``export.freeze`` when a model holds a layer of kind conv, maxpool, avgpool,
global_avgpool, flatten or batchnorm; the options are those of ``freeze``.

float32: each convolution becomes one CONV (W (O, C/group, kh, kw); a 1-D Conv1D kernel (O, Cg, k)
is stored as kh = 1), absorbing a directly following BatchNorm (W' = W * s[o], b' = b * s[o] + t[o]
with s = gamma / sqrt(var + eps), t = beta - mean * s, folded in float64 and rounded once) and
then the activation after it; BatchNorm after a Dense is folded the same way; a BatchNorm
anywhere else is an AFFINE layer. Pools map to MAXPOOL / AVGPOOL / GLOBAL_AVGPOOL; Flatten
moves no data and emits nothing (layer shapes chain by element count). The preprocessor is
kept as an AFFINE (diagonal, as a standardizer) or DENSE layer ahead of the first convolution
(folding it into a padded convolution would change the padded border).

int8: QUANTIZE after the float preprocessing, QCONV per convolution (weights symmetric per output
channel, bias int32 at x_scale * w_scale[o], requantization as QDENSE; a fused ReLU is qmin =
y_zp, other activations become QLUT), QMAXPOOL (exact, same scale), QAVGPOOL for average and
global average pools (output scale and zero point = the input's), QDENSE / QLUT as ``freeze``,
a standalone BatchNorm as DEQUANTIZE + AFFINE + QUANTIZE, then DEQUANTIZE and the float head.
Ranges come from a float64 simulation of the folded model on the calibration data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rtinfer import quant
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Act, Op
from rtinfer.reference_conv import conv_sum, geometry_attrs, make_geometry, pool_counts, window_out_shape, windows

from .freeze import (
    METHODS, FreezeError, _act_attrs, _act_of, _check_accumulator, _Dense, _float_act, _head, _head_layers, _lut, _meta,
    _weight_scales, tensor_range,
)

CNN_KINDS = frozenset({"conv", "maxpool", "avgpool", "global_avgpool", "flatten", "batchnorm"})


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
    dense: _Dense
    in_shape: tuple = field(default=())


def is_cnn(model) -> bool:
    return any(getattr(layer, "kind", None) in CNN_KINDS for layer in getattr(model, "layers", None) or ())


def _geometry_of(layer) -> dict:
    g = layer.geo
    return geometry_attrs((g.kh, g.kw), (g.sh, g.sw), (g.dh, g.dw), ((g.pt, g.pb), (g.pl, g.pr)))


def _fusable(prev) -> bool:
    return isinstance(prev, (_ConvS, _DenseS)) and (prev.act if isinstance(prev, _ConvS) else prev.dense.act) == Act.IDENTITY


def read_stages(model) -> list:
    """model.layers -> stages with BatchNorm folded and activations fused where possible."""
    shape = tuple(model.input_shape)
    stages: list = []
    counts: dict = {}

    def name(kind):
        counts[kind] = counts.get(kind, 0) + 1
        return f"{kind}_{counts[kind] - 1}"

    for i, layer in enumerate(model.layers):
        kind = getattr(layer, "kind", None)
        where = f"layer {i} ({type(layer).__name__})"
        prev = stages[-1] if stages else None
        if kind == "dense":
            W = np.asarray(layer.W, dtype=np.float64)
            b = np.asarray(layer.b, dtype=np.float64)
            if math.prod(shape) != W.shape[0]:
                raise FreezeError(f"{where}: takes {W.shape[0]} inputs but receives {shape}")
            if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise FreezeError(f"{where}: weights contain NaN or infinity")
            stages.append(_DenseS(_Dense(W.copy(), b.copy(), name=name("dense")), (W.shape[0],)))
            shape = (W.shape[1],)
        elif kind == "activation":
            act, alpha = _act_of(layer, where)
            if act == Act.IDENTITY:
                continue
            if _fusable(prev) and isinstance(prev, _ConvS):
                prev.act, prev.alpha = act, alpha
            elif _fusable(prev):
                prev.dense.act, prev.dense.alpha = act, alpha
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
        else:
            raise FreezeError(f"{where}: cannot freeze layer kind {kind!r}; supported: dense, activation, "
                              f"{', '.join(sorted(CNN_KINDS))}")
    if len(shape) != 1:
        raise FreezeError(f"the model's last layer gives {shape} per sample; freeze needs a vector of logits")
    return stages


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


def _preprocess_layer(pre, d: int, builder: BufferBuilder) -> Layer:
    A, c = pre
    if np.count_nonzero(A - np.diag(np.diag(A))) == 0:
        refs = {"s": builder.add(np.diag(A).astype(np.float32)), "t": builder.add(c.astype(np.float32))}
        return Layer(Op.AFFINE, (d,), (d,), tensors=refs, name="preprocess")
    refs = {"W": builder.add(A.astype(np.float32)), "b": builder.add(c.astype(np.float32))}
    return Layer(Op.DENSE, (d,), (d,), tensors=refs, name="preprocess")


def freeze_cnn(model, dtype: str, calibration, method: str, percentile: float, reduce_range: bool,
               pre) -> FrozenModel:
    """Freeze a CNN model (see the module doc); ``pre`` is the preprocessor's (A, c) or None."""
    from .freeze import check_calibration

    stages = read_stages(model)
    head = _head(model)
    input_shape = tuple(int(v) for v in model.input_shape)
    d = math.prod(input_shape)
    if pre is not None and pre[0].shape[0] != d:
        raise FreezeError(f"preprocessor has {pre[0].shape[0]} features; the model input has {d}")
    if dtype == "float32":
        return _freeze_fp32(model, stages, pre, head, input_shape)
    if method not in METHODS:
        raise FreezeError(f"method must be one of {METHODS}, got {method!r}")
    if method == "percentile":
        percentile = float(percentile)
        if not 50.0 < percentile <= 100.0:
            raise FreezeError(f"percentile must be in (50, 100], got {percentile}")
    X = check_calibration(_flat_input(model, calibration, d, "calibration data"), d)
    return _freeze_int8(model, stages, pre, head, input_shape, X, method, percentile, reduce_range)


def _freeze_fp32(model, stages, pre, head, input_shape) -> FrozenModel:
    builder = BufferBuilder()
    d = math.prod(input_shape)
    layers: list[Layer] = [] if pre is None else [_preprocess_layer(pre, d, builder)]
    width = None
    for s in stages:
        if isinstance(s, _ConvS):
            refs = {"W": builder.add(s.W.astype(np.float32)), "b": builder.add(s.b.astype(np.float32))}
            attrs = dict(s.attrs, **_act_attrs(s.act, s.alpha))
            layers.append(Layer(Op.CONV, s.in_shape, s.out_shape, s.act, refs, attrs, s.name))
        elif isinstance(s, _PoolS):
            layers.append(Layer(s.op, s.in_shape, s.out_shape, attrs=s.attrs, name=s.name))
        elif isinstance(s, _AffineS):
            refs = {"s": builder.add(s.s.astype(np.float32)), "t": builder.add(s.t.astype(np.float32))}
            layers.append(Layer(Op.AFFINE, s.shape, s.shape, tensors=refs, name=s.name))
        elif isinstance(s, _ActS):
            layers.append(Layer(Op.ACT, s.shape, s.shape, s.act, attrs=_act_attrs(s.act, s.alpha), name=s.name))
        else:
            dn = s.dense
            refs = {"W": builder.add(dn.W.astype(np.float32)), "b": builder.add(dn.b.astype(np.float32))}
            layers.append(Layer(Op.DENSE, s.in_shape, (dn.W.shape[1],), dn.act, refs, _act_attrs(dn.act, dn.alpha),
                                dn.name))
        width = layers[-1].out_size
    layers += _head_layers(head, width)
    return FrozenModel(tuple(layers), builder.finish(), input_shape, (width,), meta=_meta(model, "float32"))


def _freeze_int8(model, stages, pre, head, input_shape, X, method, percentile, reduce_range) -> FrozenModel:
    def qparams(t):
        return quant.choose_qparams(*tensor_range(t, method, percentile))

    builder = BufferBuilder()
    d = math.prod(input_shape)
    layers: list[Layer] = []
    x = X
    if pre is not None:
        layers.append(_preprocess_layer(pre, d, builder))
        x = X @ pre[0] + pre[1]
    x = x.reshape((X.shape[0],) + input_shape)
    qp = qparams(x)
    layers.append(Layer(Op.QUANTIZE, input_shape, input_shape, attrs={"y_scale": qp[0], "y_zp": qp[1]},
                        name="quantize"))
    shape = input_shape

    def requant_attrs(x_qp, y_qp, act):
        return {"x_scale": x_qp[0], "x_zp": x_qp[1], "y_scale": y_qp[0], "y_zp": y_qp[1],
                "qmin": y_qp[1] if act == Act.RELU else quant.QMIN, "qmax": quant.QMAX}

    def lut_layer(act, alpha, x_qp, y_qp, shp, name):
        attrs = {"x_scale": x_qp[0], "x_zp": x_qp[1], "y_scale": y_qp[0], "y_zp": y_qp[1], "act": int(act)}
        attrs.update(_act_attrs(act, alpha))
        table = builder.add(_lut(act, alpha, x_qp, y_qp))
        return Layer(Op.QLUT, shp, shp, tensors={"table": table}, attrs=attrs, name=name)

    for s in stages:
        if isinstance(s, (_ConvS, _DenseS)):
            if isinstance(s, _ConvS):
                z = _sim_conv(x, s)
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
            y_qp = qparams(_float_act(z, act, alpha) if fused else z)
            w_scale = _weight_scales(W2, reduce_range)
            Wq2 = quant.quantize_weights(W2, w_scale)
            _check_accumulator(_Dense(W2, b, name=name), Wq2, qp[0], w_scale)
            bq = quant.quantize_bias(b, qp[0], w_scale)
            attrs = requant_attrs(qp, y_qp, act)
            if isinstance(s, _ConvS):
                Wq = np.ascontiguousarray(Wq2.T).reshape(s.W.shape)
                refs = {"W": builder.add(Wq), "b": builder.add(bq), "w_scale": builder.add(w_scale)}
                layers.append(Layer(Op.QCONV, s.in_shape, out_shape, tensors=refs, attrs=dict(s.attrs, **attrs),
                                    name=name))
            else:
                refs = {"W": builder.add(Wq2), "b": builder.add(bq), "w_scale": builder.add(w_scale)}
                layers.append(Layer(Op.QDENSE, s.in_shape, out_shape, tensors=refs, attrs=attrs, name=name))
            qp, x, shape = y_qp, z, out_shape
            if fused:
                x = _float_act(z, act, alpha)
                continue
            y = _float_act(x, act, alpha)
            y_qp = qparams(y)
            layers.append(lut_layer(act, alpha, qp, y_qp, shape, name + "/" + act.name.lower()))
            qp, x = y_qp, y
        elif isinstance(s, _ActS):
            y = _float_act(x, s.act, s.alpha)
            y_qp = qparams(y)
            layers.append(lut_layer(s.act, s.alpha, qp, y_qp, s.shape, s.name))
            qp, x = y_qp, y
        elif isinstance(s, _PoolS):
            x = _sim_pool(x, s)
            if s.op == Op.MAXPOOL:
                layers.append(Layer(Op.QMAXPOOL, s.in_shape, s.out_shape,
                                    attrs=dict(s.attrs, x_scale=qp[0], x_zp=qp[1]), name=s.name))
                shape = s.out_shape
                continue
            if s.op == Op.GLOBAL_AVGPOOL:  # a QAVGPOOL whose window is the whole input
                hw = (1, s.in_shape[1]) if len(s.in_shape) == 2 else s.in_shape[1:]
                attrs = dict(geometry_attrs(hw), count_include_pad=0)
                out_shape = window_out_shape(s.in_shape, attrs)
            else:
                attrs, out_shape = dict(s.attrs), s.out_shape
            attrs.update(x_scale=qp[0], x_zp=qp[1], y_scale=qp[0], y_zp=qp[1])
            layers.append(Layer(Op.QAVGPOOL, s.in_shape, out_shape, attrs=attrs, name=s.name))
            shape = out_shape
        else:  # standalone batch-norm: float affine between DEQUANTIZE and QUANTIZE
            x = x * s.s.reshape(s.shape) + s.t.reshape(s.shape)
            layers.append(Layer(Op.DEQUANTIZE, s.shape, s.shape, attrs={"x_scale": qp[0], "x_zp": qp[1]},
                                name=s.name + "/dequantize"))
            refs = {"s": builder.add(s.s.astype(np.float32)), "t": builder.add(s.t.astype(np.float32))}
            layers.append(Layer(Op.AFFINE, s.shape, s.shape, tensors=refs, name=s.name))
            qp = qparams(x)
            layers.append(Layer(Op.QUANTIZE, s.shape, s.shape, attrs={"y_scale": qp[0], "y_zp": qp[1]},
                                name=s.name + "/quantize"))
    width = math.prod(shape)
    layers.append(Layer(Op.DEQUANTIZE, (width,), (width,), attrs={"x_scale": qp[0], "x_zp": qp[1]}, name="dequantize"))
    layers += _head_layers(head, width)
    calib = method if method == "minmax" else f"percentile:{percentile:g}"
    extra = {"weight_range": "reduced"} if reduce_range else {}
    meta = _meta(model, "int8", calibration=calib, calibration_samples=X.shape[0], **extra)
    return FrozenModel(tuple(layers), builder.finish(), input_shape, (width,), meta=meta)
