"""The golden activations (rtinfer.ops.Act) in NumPy: float64 inside, one rounding to float32.

The NumPy twin of the compiled act kernels (rtinfer.kernels.act_scalar), shared by the reference
executors (rtinfer.reference, rtinfer.reference_conv), table building for QLUT and the importer.
"""

from __future__ import annotations

import numpy as np

from .ops import Act


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
    elif act == Act.SILU:
        e = np.exp(-np.abs(x64))
        y = x64 * np.where(x64 >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    elif act == Act.HARD_SWISH:
        y = x64 * np.clip(x64 / 6.0 + 0.5, 0.0, 1.0)
    elif act == Act.MISH:
        y = x64 * np.tanh(np.maximum(x64, 0.0) + np.log1p(np.exp(-np.abs(x64))))
    elif act == Act.ERF:
        from math import erf
        y = np.vectorize(erf, otypes=[np.float64])(x64) if x64.size else x64
    elif act == Act.EXP:
        with np.errstate(over="ignore"):
            y = np.exp(x64)
    elif act == Act.ABS:
        y = np.abs(x64)
    elif act == Act.WRAP:
        finite = np.isfinite(x64)
        t = np.trunc(np.where(finite, x64, 0.0))
        y = np.where(finite, t - beta * np.floor((t - alpha) / beta), 0.0)
    else:  # pragma: no cover - Act is a closed enum
        raise ValueError(f"unknown activation {act!r}")
    return y.astype(np.float32)
