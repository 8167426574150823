"""Pieces shared by the freezers (export.freeze for MLPs, export.freeze_graph for CNNs and
residual models): the error type, options, calibration ranges, the float64 activations used to
calibrate, weight scales, the accumulator bound, activation tables, heads and meta.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from rtinfer import quant
from rtinfer.activations import activation as reference_activation
from rtinfer.frozen import Layer
from rtinfer.ops import ACT_BY_NAME, ACT_DEFAULTS, Act, Op

DTYPES = ("float32", "int8")
METHODS = ("minmax", "percentile")
HEADS = ("identity", "sigmoid", "softmax")
TRAIN_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus")


class FreezeError(ValueError):
    """A model or calibration set cannot be frozen (the message names the layer or input)."""


@dataclass
class DenseStage:
    W: np.ndarray  # (n_in, n_out) float64
    b: np.ndarray  # (n_out,) float64
    act: Act = Act.IDENTITY
    alpha: float = 0.0
    name: str = ""


@dataclass
class ActStage:
    act: Act
    alpha: float
    name: str = ""


def act_of(layer, where: str) -> tuple[Act, float]:
    name = str(getattr(layer, "name", "")).lower()
    if name not in TRAIN_ACTIVATIONS:
        raise FreezeError(f"{where}: unsupported activation {name!r}; supported: {', '.join(TRAIN_ACTIVATIONS)}")
    act = ACT_BY_NAME[name]
    alpha = 0.0
    if act == Act.LEAKY_RELU:
        raw = getattr(layer, "alpha", None)
        alpha = ACT_DEFAULTS[Act.LEAKY_RELU][0] if raw is None else float(raw)
        if not np.isfinite(alpha):
            raise FreezeError(f"{where}: leaky_relu alpha must be finite, got {alpha}")
    return act, alpha


def head_of(model) -> str:
    head = str(getattr(model, "output", "identity")).lower()
    if head not in HEADS:
        raise FreezeError(f"unsupported output head {head!r}; supported: {', '.join(HEADS)}")
    return head


def meta_of(model, dtype: str, **extra) -> dict:
    meta = {"source": f"rtinfer.train.{type(model).__name__}", "dtype": dtype, "output": head_of(model)}
    classes = getattr(model, "classes_", None)
    if classes is not None:
        meta["classes"] = json.dumps(np.asarray(classes).tolist())
    meta.update({k: str(v) for k, v in extra.items()})
    return meta


def head_layers(head: str, n: int) -> list[Layer]:
    if head == "softmax":
        return [Layer(Op.SOFTMAX, (n,), (n,), attrs={"outer": 1, "axis_len": n, "inner": 1}, name="head")]
    if head == "sigmoid":
        return [Layer(Op.ACT, (n,), (n,), Act.SIGMOID, name="head")]
    return []


def act_attrs(act: Act, alpha: float) -> dict:
    return {"alpha": float(alpha)} if act == Act.LEAKY_RELU else {}


def check_calibration(calibration, d: int) -> np.ndarray:
    """The calibration set as an (N, d) float64 array, or FreezeError saying what is wrong."""
    if calibration is None:
        raise FreezeError("int8 freezing needs calibration data: pass calibration=X with shape (N, "
                          f"{d}) of representative raw inputs")
    try:
        X = np.asarray(calibration, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FreezeError(f"calibration data is not a numeric array: {exc}") from None
    if X.ndim != 2 or X.shape[1] != d:
        raise FreezeError(f"calibration data must have shape (N, {d}), got {X.shape}")
    if X.shape[0] == 0:
        raise FreezeError("calibration data is empty (0 samples)")
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise FreezeError(f"calibration data contains NaN or infinity ({int(bad.sum())} values; first at "
                          f"row {row}, column {col})")
    return X


def tensor_range(t: np.ndarray, method: str = "minmax", percentile: float = 99.99) -> tuple[float, float]:
    """The calibration range of one tensor (all elements of a batch)."""
    if method == "minmax":
        return float(np.min(t)), float(np.max(t))
    return float(np.percentile(t, 100.0 - percentile)), float(np.percentile(t, percentile))


def float_act(x: np.ndarray, act: Act, alpha: float) -> np.ndarray:
    """The float64 activation used for calibration (the train model's definition)."""
    if act == Act.IDENTITY:
        return x
    if act == Act.RELU:
        return np.maximum(x, 0.0)
    if act == Act.LEAKY_RELU:
        return np.where(x >= 0, x, alpha * x)
    if act == Act.SIGMOID:
        return np.exp(-np.logaddexp(0.0, -x))
    if act == Act.TANH:
        return np.tanh(x)
    if act == Act.SOFTPLUS:
        return np.logaddexp(0.0, x)
    raise FreezeError(f"activation {act.name} cannot be calibrated")


def act_table(act: Act, alpha: float, x_qp, y_qp) -> np.ndarray:
    """256-entry int8 table of act, from rtinfer.reference's activation (the runtime semantics)."""
    return quant.build_lut(lambda x: reference_activation(x, act, alpha, 0.0), x_qp[0], x_qp[1], y_qp[0], y_qp[1])


def check_accumulator(s: DenseStage, Wq: np.ndarray, x_scale: float, w_scale: np.ndarray) -> None:
    """Refuse a QDENSE whose int32 accumulator could overflow for some int8 input.

    |acc[j]| <= 255 * sum_i |Wq[i, j]| + |b[j] / (x_scale * w_scale[j])|, since |x - x_zp| <= 255.
    It only fails when the input's calibrated range is degenerate (x_scale tiny), e.g. a
    calibration set on which the previous layer is constant.
    """
    bias_q = np.abs(s.b) / (np.float64(x_scale) * w_scale.astype(np.float64))
    bound = 255.0 * np.abs(Wq.astype(np.int64)).sum(axis=0) + bias_q
    j = int(np.argmax(bound))
    if bound[j] > np.iinfo(np.int32).max:
        raise FreezeError(
            f"{s.name}: the int32 accumulator of output {j} could overflow (bias {s.b[j]:.6g} at scale "
            f"x_scale * w_scale = {x_scale * float(w_scale[j]):.3g}): the calibrated range of this layer's "
            f"input is degenerate (x_scale {x_scale:.3g}); calibrate with more representative data")


def weight_scales(W: np.ndarray, reduce_range: bool) -> np.ndarray:
    """Per-output-channel symmetric scales: max|W[:, j]| maps to 127, or to 63 with reduce_range."""
    w_scale = quant.symmetric_weight_scales(W)
    if reduce_range:
        w_scale = (w_scale.astype(np.float64) * (127.0 / 63.0)).astype(np.float32)
    return w_scale


def check_method(method: str, percentile: float) -> float:
    """The calibration method's percentile as a float, or FreezeError for bad options."""
    if method not in METHODS:
        raise FreezeError(f"method must be one of {METHODS}, got {method!r}")
    if method == "percentile":
        percentile = float(percentile)
        if not 50.0 < percentile <= 100.0:
            raise FreezeError(f"percentile must be in (50, 100], got {percentile}")
    return percentile
