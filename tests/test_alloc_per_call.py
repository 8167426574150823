"""``predict_one(x, out=y)`` allocates nothing per call, measured with tracemalloc's *peak*.

tests/test_alloc.py proves that memory does not grow (NRT counts, tracemalloc totals); a
temporary that is allocated and freed inside each call leaves both unchanged. The peak of
traced memory over many calls does see it: the peak above the memory held before the calls is
the largest amount alive at one moment, so one 16 KB temporary per call shows as >= 16 KB.
NumPy reports its data buffers to tracemalloc, so array temporaries are counted.

What a call may legitimately allocate is a few small Python objects (a status int, an array
view of the sample on the checked path, the TypeError the dispatcher raises for a shaped
array before the checked path runs): about 1.1 KB measured here. The bounds below sit between
that and one 4096-float32 temporary, and a positive control (the same measurement around a call
that adds a 16 KB temporary) proves the measurement sees such a temporary.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import rtinfer
from rtinfer._testmodels import fp32_mlp, int8_mlp

TEMP_BYTES = 16 * 1024
FAST_BOUND = 2048     # 1-D float32 x and out: the compiled entry point directly (measured 112 B)
CHECKED_BOUND = 4096  # shaped x or int64 out: the checked Python path (measured 1148 B)


def peak_per_call(fn, rounds=7, calls=40):
    """Bytes alive above the traced memory held before a round of `calls` calls, at the round's
    peak; the smallest over `rounds` rounds. A temporary made by every call is in every round's
    peak; a one-off allocation of the interpreter (a cache entry, a frame-stack chunk when an
    exception unwinds) lands in some rounds only and is left out by the minimum."""
    for _ in range(20):  # warm: first-call caches (type dispatch, views) are not per call
        fn()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        peaks = []
        for _ in range(rounds):
            fn()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            for _ in range(calls):
                fn()
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
        return min(peaks)
    finally:
        if started:
            tracemalloc.stop()


MODELS = {
    "fp32": (lambda: fp32_mlp([64, 32, 10], head="softmax"), (64,), FAST_BOUND),
    "int8": (lambda: int8_mlp([64, 32, 16, 10], lut=np.tanh, head="softmax"), (64,), FAST_BOUND),
    "fp32_shaped": (lambda: fp32_mlp([12, 8, 3], head="softmax", reshape_in=(3, 4)), (3, 4), CHECKED_BOUND),
    "argmax_int64_out": (lambda: fp32_mlp([20, 16, 10], head="argmax"), (20,), CHECKED_BOUND),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    build, x_shape, bound = MODELS[request.param]
    rt = rtinfer.load(build())
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    y = np.empty(rt.output_shape, rt.output_dtype)
    return request.param, rt, x, y, bound


def test_predict_one_with_out_allocates_nothing_per_call(case):
    name, rt, x, y, bound = case
    want = rt.predict_one(x).copy()
    peak = peak_per_call(lambda: rt.predict_one(x, out=y))
    assert peak < bound, f"{name}: predict_one(x, out=y) had {peak} B alive at its peak (bound {bound} B)"
    np.testing.assert_array_equal(y, want)  # and it did the work, into out


def test_the_measurement_sees_a_16kb_temporary(case):
    """Positive control: predict_one plus one 16 KB temporary per call exceeds the bound."""
    name, rt, x, y, bound = case

    def with_temporary():
        scratch = np.empty(TEMP_BYTES // 4, np.float32)
        scratch[0] = 0.0
        return rt.predict_one(x, out=y)

    peak = peak_per_call(with_temporary)
    assert peak >= TEMP_BYTES > bound, (name, peak)


def test_a_temporary_inside_predict_one_is_caught(monkeypatch):
    """Positive control through the Runtime itself: a predict_one that allocates a 16 KB
    temporary before running (monkeypatched in) fails the bound of the fast path."""
    rt = rtinfer.load(fp32_mlp([64, 32, 10], head="softmax"))
    x = np.zeros(64, np.float32)
    y = np.empty(10, np.float32)
    real = type(rt).predict_one

    def leaky(self, x, out=None, nonfinite=None):
        tmp = np.zeros(TEMP_BYTES // 4, np.float32)
        tmp[1] = 1.0
        return real(self, x, out, nonfinite)

    monkeypatch.setattr(type(rt), "predict_one", leaky)
    assert peak_per_call(lambda: rt.predict_one(x, out=y)) >= TEMP_BYTES
    monkeypatch.undo()
    assert peak_per_call(lambda: rt.predict_one(x, out=y)) < FAST_BOUND
