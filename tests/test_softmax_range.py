"""Softmax and log-softmax on logits far outside exp's float32 range (|x| up to 1e4): the
kernels subtract the max first, so the results stay finite and equal the float64 formula
(exp(x - max) / sum) within float32 rounding, in the compiled kernel and through the runtime."""

from __future__ import annotations

import numpy as np
import pytest

import rtinfer
from rtinfer import kernels as K
from rtinfer import reference
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Op

LOGITS = np.array([[1000.0, 999.0, -50.0, 998.5],
                   [-1e4, -1e4 + 3.0, -1e4 + 1.0, -1e4 - 20.0],
                   [88.0, 89.0, 90.0, 91.0],
                   [0.0, 200.0, 200.0, -200.0]], np.float64)


def stable(x, log):
    z = x - x.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z - lse if log else np.exp(z - lse)


@pytest.mark.parametrize("log", [0, 1])
def test_softmax_kernel_on_huge_logits(log):
    x = LOGITS.astype(np.float32)
    want = stable(x.astype(np.float64), log)
    for row, w in zip(x, want):
        got = np.full(4, np.nan, np.float32)
        K.softmax_f32(row, 0, got, 0, 1, 4, 1, log)
        assert np.all(np.isfinite(got)), got
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-7 if not log else 1e-6 * np.abs(w).max())


@pytest.mark.parametrize("op", [Op.SOFTMAX, Op.LOG_SOFTMAX])
def test_softmax_model_on_huge_logits_every_executor(op):
    attrs = {"outer": 1, "axis_len": 4, "inner": 1}
    fm = FrozenModel((Layer(op, (4,), (4,), attrs=attrs, name="head"),), BufferBuilder().finish(), (4,), (4,))
    X = LOGITS.astype(np.float32)
    want = stable(X.astype(np.float64), op == Op.LOG_SOFTMAX)
    rt = rtinfer.load(fm)
    for got in (reference.run(fm, X), rt.predict(X), rt.stream(X), np.stack([rt.predict_one(x) for x in X])):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
