"""The planner's int32 proof for QDENSE: |acc| <= 255 * sum_i |W[i, j]| + |b[j]| must fit int32
(|x - x_zp| reaches 255 when x_zp = 127 and x = -128), so the wrapping int32 kernels are exact.
A model exactly at the bound plans and computes the extreme accumulator exactly; one more unit
of bias is refused with a PlanError naming the layer."""

from __future__ import annotations

import numpy as np
import pytest

import rtinfer
from rtinfer import reference
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Op
from rtinfer.plan import PlanError

I32_MAX = 2 ** 31 - 1
N_IN = 1000


def qdense_model(bias: int) -> FrozenModel:
    """QUANTIZE (zero point 127) -> QDENSE (1000 weights of 127, one output) -> DEQUANTIZE."""
    bb = BufferBuilder()
    attrs = {"x_scale": 1.0, "x_zp": 127, "y_scale": 2.0 ** 24, "y_zp": 0, "qmin": -128, "qmax": 127}
    layers = (
        Layer(Op.QUANTIZE, (N_IN,), (N_IN,), attrs={"y_scale": 1.0, "y_zp": 127}, name="q"),
        Layer(Op.QDENSE, (N_IN,), (1,), tensors={"W": bb.add(np.full((N_IN, 1), 127, np.int8)),
                                                 "b": bb.add(np.array([bias], np.int32)),
                                                 "w_scale": bb.add(np.ones(1, np.float32))},
              attrs=attrs, name="wide"),
        Layer(Op.DEQUANTIZE, (1,), (1,), attrs={"x_scale": 2.0 ** 24, "x_zp": 0}, name="dq"),
    )
    return FrozenModel(layers, bb.finish(), (N_IN,), (1,))


def test_accumulator_exactly_at_the_int32_bound_runs_exactly():
    bias = I32_MAX - 255 * 127 * N_IN
    fm = qdense_model(bias)
    X = np.stack([np.full(N_IN, -1000.0), np.full(N_IN, 1000.0), np.zeros(N_IN)]).astype(np.float32)
    # codes -128 (x - x_zp = -255), 127 (0) and 127 (0): accumulators bias - 255 * 127 * N_IN and bias
    acc = np.array([bias - 255 * 127 * N_IN, bias, bias], np.int64)
    want = (np.clip(np.rint(acc / 2.0 ** 24), -128, 127) * 2.0 ** 24).astype(np.float32)[:, None]
    rt = rtinfer.load(fm)
    for got in (reference.run(fm, X), rt.predict(X), rt.stream(X), np.stack([rt.predict_one(x) for x in X])):
        np.testing.assert_array_equal(got, want)


def test_one_more_unit_of_bias_is_refused():
    with pytest.raises(PlanError, match=r"layer 1 \(QDENSE wide\): the int32 accumulator could overflow"):
        rtinfer.load(qdense_model(I32_MAX - 255 * 127 * N_IN + 1))
