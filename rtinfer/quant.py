"""Quantization arithmetic shared by freeze, the reference executor, the planner and ONNX I/O.

One definition of each formula, so every path computes the same bits (NumPy only).
Semantics are ONNX's QuantizeLinear / QLinearMatMul: round half to even, saturate to int8.
"""

from __future__ import annotations

import numpy as np

QMIN, QMAX = -128, 127


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8: saturate(round_half_even(x / scale) + zero_point). x in float32; NaN -> QMIN
    (as onnxruntime's MLAS QuantizeLinear)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        q = np.rint(x / np.float32(scale)) + np.float32(zero_point)
    q = np.where(np.isnan(q), np.float32(QMIN), q)
    return np.clip(q, QMIN, QMAX).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 -> float32: (q - zero_point) * scale."""
    return ((np.asarray(q, dtype=np.int32) - np.int32(zero_point)).astype(np.float32) * np.float32(scale))


def requant_multiplier(x_scale: float, w_scale: np.ndarray, y_scale: float) -> np.ndarray:
    """M[j] = float32(x_scale * w_scale[j] / y_scale), computed in float64 then rounded once."""
    w_scale = np.asarray(w_scale, dtype=np.float64)
    return (np.float64(x_scale) * w_scale / np.float64(y_scale)).astype(np.float32)


def requantize(acc: np.ndarray, multiplier: np.ndarray, y_zp: int, qmin: int = QMIN, qmax: int = QMAX) -> np.ndarray:
    """int32 accumulators -> int8: clamp(round_half_even(float32(acc) * M) + y_zp, qmin, qmax)."""
    scaled = np.asarray(acc, dtype=np.int32).astype(np.float32) * np.asarray(multiplier, dtype=np.float32)
    q = np.rint(scaled).astype(np.int64) + int(y_zp)
    return np.clip(q, qmin, qmax).astype(np.int8)


def choose_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric per-tensor (scale, zero_point) covering [lo, hi] (widened to include 0)."""
    lo = min(float(lo), 0.0)
    hi = max(float(hi), 0.0)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError(f"calibration range [{lo}, {hi}] is not finite")
    if hi - lo < 1e-12:
        hi = lo + 1e-6
    scale = np.float32((hi - lo) / (QMAX - QMIN))
    zp = int(np.clip(np.rint(QMIN - lo / float(scale)), QMIN, QMAX))
    return float(scale), zp


def symmetric_weight_scales(W: np.ndarray) -> np.ndarray:
    """Per-output-channel symmetric scales for W (n_in, n_out): max|W[:, j]| / 127 (float32)."""
    amax = np.max(np.abs(np.asarray(W, dtype=np.float64)), axis=0)
    amax = np.where(amax > 0, amax, 1.0)
    return (amax / 127.0).astype(np.float32)


def quantize_weights(W: np.ndarray, w_scale: np.ndarray) -> np.ndarray:
    """W (n_in, n_out) float -> int8 with per-column scales, zero point 0, range [-127, 127]."""
    q = np.rint(np.asarray(W, dtype=np.float64) / np.asarray(w_scale, dtype=np.float64)[None, :])
    return np.clip(q, -127, 127).astype(np.int8)


def quantize_bias(b: np.ndarray, x_scale: float, w_scale: np.ndarray) -> np.ndarray:
    """b (n_out,) float -> int32 at scale x_scale * w_scale[j]."""
    s = np.float64(x_scale) * np.asarray(w_scale, dtype=np.float64)
    q = np.rint(np.asarray(b, dtype=np.float64) / s)
    return np.clip(q, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)


def build_lut(fn, x_scale: float, x_zp: int, y_scale: float, y_zp: int) -> np.ndarray:
    """256-entry int8 table: table[q + 128] = quantize(fn(dequantize(q)))  for q in [-128, 127]."""
    q = np.arange(QMIN, QMAX + 1, dtype=np.int32)
    x = dequantize(q, x_scale, x_zp)
    y = np.asarray(fn(x.astype(np.float64)), dtype=np.float32)
    return quantize(y, y_scale, y_zp)


def qbinary_multipliers(fn: int, a_scale: float, b_scale: float, y_scale: float) -> tuple:
    """(ma, mb) float32 of a QBINARY layer (rtinfer.ops): for MUL (fn 2) ma = float32(a_scale *
    b_scale / y_scale) and mb = 0; otherwise ma = float32(a_scale / y_scale), mb = float32(
    b_scale / y_scale). Computed in float64 from the attributes, rounded once."""
    a, b, y = np.float64(a_scale), np.float64(b_scale), np.float64(y_scale)
    if int(fn) == 2:
        return np.float32(a * b / y), np.float32(0.0)
    return np.float32(a / y), np.float32(b / y)


def requantize_table(x_scale: float, x_zp: int, y_scale: float, y_zp: int) -> np.ndarray:
    """The QLUT table that moves int8 codes from (x_scale, x_zp) to (y_scale, y_zp):
    quantize(dequantize(q)) — an exact QLinearConcat-style requantization of one input."""
    return build_lut(lambda v: v, x_scale, x_zp, y_scale, y_zp)
