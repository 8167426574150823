"""freeze: a trained rtinfer.train model -> FrozenModel (fp32, or int8 post-training quantized).

    frozen = freeze(model)                                        # float32
    frozen = freeze(model, dtype="int8", calibration=X_cal)       # int8, min/max calibration
    frozen = freeze(model, dtype="int8", calibration=X_cal, method="percentile", percentile=99.99)

The trained-model interface read here: ``model.layers`` (``Dense`` with ``W`` (n_in, n_out) and
``b`` (n_out,), y = x @ W + b; ``Activation`` with ``name`` and ``alpha``), ``model.preprocessor``
(None or an object with ``as_affine() -> (A (d, d), c (d,))``, preprocessed input x @ A + c),
``model.output`` in identity/sigmoid/softmax (the head on the last logits), ``model.classes_``.
A frozen model reproduces ``model.infer(X)``.

float32: the preprocessing affine is folded into the first Dense (W' = A @ W, b' = c @ W + b, in
float64, then rounded to float32 once); each Dense absorbs the activation that follows it; the
head is a SOFTMAX or ACT SIGMOID layer.

int8: the preprocessing stays in float32 ahead of QUANTIZE (an AFFINE layer when A is diagonal,
as for a standardizer, else a DENSE), because the input quantizer has one scale per tensor and
raw features can differ in scale by orders of magnitude. Then QUANTIZE, one QDENSE per Dense
(weights symmetric per output channel, bias int32 at x_scale * w_scale[j]; a following ReLU is
fused as qmin = y_zp; identity needs nothing; any other activation becomes a QLUT), DEQUANTIZE,
and the float head. Activation ranges come from running the float model (float64) on the
calibration data: min/max, or the [100 - p, p] percentiles, of each tensor at each quantized
boundary (post-activation where the activation is fused). ``reduce_range=True`` keeps weights in
[-63, 63] for engines whose int8 GEMM saturates (see ``freeze``).
"""

from __future__ import annotations

import numpy as np

from rtinfer import quant
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Act, Op

from .freeze_common import (  # noqa: F401  (FreezeError, check_calibration, tensor_range: public API here)
    DTYPES, METHODS, ActStage, DenseStage, FreezeError, act_attrs, act_of, act_table, check_accumulator,
    check_calibration, check_method, float_act, head_layers, head_of, meta_of, tensor_range, weight_scales,
)

# ------------------------------------------------------------------------------------------
# reading the trained model
# ------------------------------------------------------------------------------------------

def _read_stages(model) -> list:
    """model.layers -> a list of DenseStage (with the following activation fused) and ActStage stages."""
    layers = getattr(model, "layers", None)
    if layers is None:
        raise FreezeError(f"{type(model).__name__} has no 'layers'; freeze expects an rtinfer.train model")
    stages: list = []
    width = None
    n_dense = 0
    for i, layer in enumerate(layers):
        kind = getattr(layer, "kind", None)
        where = f"layer {i} ({type(layer).__name__})"
        if kind == "dense" or (kind is None and hasattr(layer, "W") and hasattr(layer, "b")):
            W = np.asarray(layer.W, dtype=np.float64)
            b = np.asarray(layer.b, dtype=np.float64)
            if W.ndim != 2 or b.shape != (W.shape[1],):
                raise FreezeError(f"{where}: W must be (n_in, n_out) and b (n_out,), got {W.shape} and {b.shape}")
            if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise FreezeError(f"{where}: weights contain NaN or infinity")
            if width is not None and W.shape[0] != width:
                raise FreezeError(f"{where}: takes {W.shape[0]} inputs but the previous layer gives {width}")
            width = W.shape[1]
            stages.append(DenseStage(W.copy(), b.copy(), name=f"dense_{n_dense}"))
            n_dense += 1
        elif kind == "activation" or (kind is None and hasattr(layer, "name")):
            act, alpha = act_of(layer, where)
            if act == Act.IDENTITY:
                continue
            prev = stages[-1] if stages else None
            if isinstance(prev, DenseStage) and prev.act == Act.IDENTITY:
                prev.act, prev.alpha = act, alpha
            else:
                stages.append(ActStage(act, alpha, name=f"act_{i}"))
        else:
            raise FreezeError(f"{where}: cannot freeze layer kind {kind!r}; supported: dense, activation")
    return stages


def _read_preprocessor(model):
    pre = getattr(model, "preprocessor", None)
    if pre is None:
        return None
    A, c = pre.as_affine()
    A = np.asarray(A, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or c.shape != (A.shape[0],):
        raise FreezeError(f"preprocessor.as_affine() must give A (d, d) and c (d,), got {A.shape} and {c.shape}")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(c))):
        raise FreezeError("preprocessor affine contains NaN or infinity")
    return A, c


def _input_width(stages, pre) -> int:
    if pre is not None:
        return pre[0].shape[0]
    for s in stages:
        if isinstance(s, DenseStage):
            return s.W.shape[0]
    raise FreezeError("cannot tell the input width: the model has no Dense layer and no preprocessor")


# ------------------------------------------------------------------------------------------
# freeze
# ------------------------------------------------------------------------------------------

def freeze(model, dtype: str = "float32", calibration=None, method: str = "minmax",
           percentile: float = 99.99, reduce_range: bool = False) -> FrozenModel:
    """Freeze a trained model into a FrozenModel of float32 or int8 layers (see module doc).

    calibration: (N, d) float array of raw inputs (before preprocessing); required for int8.
    method: "minmax" or "percentile" (ranges [percentile(100 - p), percentile(p)] per tensor).
    reduce_range: int8 weights in [-63, 63] instead of [-127, 127] (7 bits). Only needed for
        engines whose x86 AVX2 int8 GEMM sums pairs of u8*s8 products in saturating int16
        (onnxruntime's fused QGemm on CPUs without VNNI); rtinfer itself never saturates.
    """
    if dtype not in DTYPES:
        raise FreezeError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    from .freeze_graph import freeze_graph, needs_graph
    if needs_graph(model):  # convolution / pooling / batch-norm / residual layers (export.freeze_graph)
        return freeze_graph(model, dtype, calibration, method, percentile, bool(reduce_range),
                            _read_preprocessor(model))
    stages = _read_stages(model)
    pre = _read_preprocessor(model)
    head = head_of(model)
    d = _input_width(stages, pre)
    if dtype == "float32":
        return _freeze_fp32(model, stages, pre, head, d)
    percentile = check_method(method, percentile)
    X = check_calibration(calibration, d)
    return _freeze_int8(model, stages, pre, head, d, X, method, percentile, bool(reduce_range))


def _freeze_fp32(model, stages, pre, head, d) -> FrozenModel:
    if pre is not None:
        A, c = pre
        if stages and isinstance(stages[0], DenseStage):
            first = stages[0]
            stages = [DenseStage(A @ first.W, c @ first.W + first.b, first.act, first.alpha, first.name)] + stages[1:]
        else:
            stages = [DenseStage(A, c, name="preprocess")] + stages
    builder = BufferBuilder()
    layers: list[Layer] = []
    width = d
    for s in stages:
        if isinstance(s, DenseStage):
            n_out = s.W.shape[1]
            refs = {"W": builder.add(s.W.astype(np.float32)), "b": builder.add(s.b.astype(np.float32))}
            layers.append(Layer(Op.DENSE, (width,), (n_out,), s.act, refs, act_attrs(s.act, s.alpha), s.name))
            width = n_out
        else:
            layers.append(Layer(Op.ACT, (width,), (width,), s.act, attrs=act_attrs(s.act, s.alpha), name=s.name))
    layers += head_layers(head, width)
    if not layers:  # an empty model is the identity
        layers.append(Layer(Op.RESHAPE, (d,), (d,), name="identity"))
    return FrozenModel(tuple(layers), builder.finish(), (d,), (width,), meta=meta_of(model, "float32"))


def _freeze_int8(model, stages, pre, head, d, X, method, percentile, reduce_range) -> FrozenModel:
    def qparams(t):
        return quant.choose_qparams(*tensor_range(t, method, percentile))

    builder = BufferBuilder()
    layers: list[Layer] = []
    x = X
    if pre is not None:
        A, c = pre
        x = X @ A + c
        if np.count_nonzero(A - np.diag(np.diag(A))) == 0:
            refs = {"s": builder.add(np.diag(A).astype(np.float32)), "t": builder.add(c.astype(np.float32))}
            layers.append(Layer(Op.AFFINE, (d,), (d,), tensors=refs, name="preprocess"))
        else:
            refs = {"W": builder.add(A.astype(np.float32)), "b": builder.add(c.astype(np.float32))}
            layers.append(Layer(Op.DENSE, (d,), (d,), tensors=refs, name="preprocess"))

    qp = qparams(x)  # (scale, zero point) of the current int8 tensor
    layers.append(Layer(Op.QUANTIZE, (d,), (d,), attrs={"y_scale": qp[0], "y_zp": qp[1]}, name="quantize"))
    width = d
    for s in stages:
        if isinstance(s, DenseStage):
            n_out = s.W.shape[1]
            z = x @ s.W + s.b
            fused = s.act in (Act.IDENTITY, Act.RELU)
            y_qp = qparams(float_act(z, s.act, s.alpha) if fused else z)
            w_scale = weight_scales(s.W, reduce_range)
            Wq = quant.quantize_weights(s.W, w_scale)
            check_accumulator(s, Wq, qp[0], w_scale)
            refs = {"W": builder.add(Wq),
                    "b": builder.add(quant.quantize_bias(s.b, qp[0], w_scale)),
                    "w_scale": builder.add(w_scale)}
            attrs = {"x_scale": qp[0], "x_zp": qp[1], "y_scale": y_qp[0], "y_zp": y_qp[1],
                     "qmin": y_qp[1] if s.act == Act.RELU else quant.QMIN, "qmax": quant.QMAX}
            layers.append(Layer(Op.QDENSE, (width,), (n_out,), tensors=refs, attrs=attrs, name=s.name))
            qp, x, width = y_qp, z, n_out
            if fused:
                x = float_act(z, s.act, s.alpha)
                continue
            act, alpha, name = s.act, s.alpha, s.name + "/" + s.act.name.lower()
        else:
            act, alpha, name = s.act, s.alpha, s.name
        y = float_act(x, act, alpha)
        y_qp = qparams(y)
        # attrs "act" (an Act code) and alpha: the activation the table was built from (as from_onnx)
        attrs = {"x_scale": qp[0], "x_zp": qp[1], "y_scale": y_qp[0], "y_zp": y_qp[1], "act": int(act)}
        attrs.update(act_attrs(act, alpha))
        table = builder.add(act_table(act, alpha, qp, y_qp))
        layers.append(Layer(Op.QLUT, (width,), (width,), tensors={"table": table}, attrs=attrs, name=name))
        qp, x = y_qp, y
    layers.append(Layer(Op.DEQUANTIZE, (width,), (width,), attrs={"x_scale": qp[0], "x_zp": qp[1]},
                        name="dequantize"))
    layers += head_layers(head, width)
    calib = method if method == "minmax" else f"percentile:{percentile:g}"
    extra = {"weight_range": "reduced"} if reduce_range else {}
    meta = meta_of(model, "int8", calibration=calib, calibration_samples=X.shape[0], **extra)
    return FrozenModel(tuple(layers), builder.finish(), (d,), (width,), meta=meta)
