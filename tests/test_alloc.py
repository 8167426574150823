"""Zero allocation per sample, proved with Numba's NRT counters and tracemalloc.

Runs in a subprocess because NUMBA_NRT_STATS=1 must be set before numba is imported.
The kernels and interpreter are compiled without NRT (``_nrt=False``), so they cannot allocate
and do not even take boundary meminfos: the counts are expected to be constant (zero) whatever
N and the model depth. A positive control (an NRT function allocating once per sample) proves
the counter is live. 10,000 predict_one calls with ``out=`` leave tracemalloc's total unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import os, json, tracemalloc
    os.environ["NUMBA_NRT_STATS"] = "1"
    import numpy as np
    from numba.core.runtime import rtsys
    import rtinfer
    from rtinfer import interp
    from rtinfer._testmodels import fp32_mlp, int8_mlp, residual_mlp

    def allocs(fn):
        before = rtsys.get_allocation_stats()
        fn()
        after = rtsys.get_allocation_stats()
        return after.alloc - before.alloc, after.mi_alloc - before.mi_alloc

    res = {}
    from numba import njit

    @njit
    def per_sample_alloc(X):  # positive control: one NRT allocation per row
        s = 0.0
        for i in range(X.shape[0]):
            s += np.empty(1)[0] * 0.0 + X[i, 0]
        return s

    Xc = np.zeros((10000, 1))
    per_sample_alloc(Xc[:2])
    res["control10"] = allocs(lambda: per_sample_alloc(Xc[:10]))
    res["control10000"] = allocs(lambda: per_sample_alloc(Xc))
    models = {
        "fp32_2": fp32_mlp([32, 16, 4], head="softmax"),
        "fp32_6": fp32_mlp([32, 24, 20, 16, 12, 8, 4], head="softmax"),
        "int8_6": int8_mlp([32, 24, 20, 16, 12, 8, 4], lut=np.tanh, head="softmax"),
        "graph_res": residual_mlp(d=32, hidden=24, n_out=4, blocks=3),
    }
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10000, 32)).astype(np.float32)
    for name, fm in models.items():
        rt = rtinfer.load(fm)
        out = np.empty((10000,) + rt.output_shape, np.float32)
        rt.stream(X[:10], out=out[:10]); rt.predict(X[:10], out=out[:10])  # warm
        res[name + "_stream10"] = allocs(lambda: rt.stream(X[:10], out=out[:10]))
        res[name + "_stream10000"] = allocs(lambda: rt.stream(X, out=out))
        res[name + "_predict10"] = allocs(lambda: rt.predict(X[:10], out=out[:10]))
        res[name + "_predict10000"] = allocs(lambda: rt.predict(X, out=out))
        x = X[0].copy()
        y = np.empty(rt.output_shape, np.float32)
        rt.predict_one(x, out=y)
        res[name + "_one_x1"] = allocs(lambda: rt.predict_one(x, out=y))
        def many():
            for _ in range(100):
                rt.predict_one(x, out=y)
        res[name + "_one_x100"] = allocs(many)
        rep = rt.measure(X[:200], budget_us=1e6, warmup=10)
        Yt, _ = interp.timed_buffer(10000 * rt.out_size, 10000)  # outputs, then the times
        res[name + "_measure200"] = allocs(lambda: rt._execute(rt._state, X.reshape(-1), Yt, 200, interp.MODE_TIMED))
        res[name + "_measure10000"] = allocs(lambda: rt._execute(rt._state, X.reshape(-1), Yt, 10000,
                                                                 interp.MODE_TIMED))

    rt = rtinfer.load(models["fp32_6"])
    x = X[0].copy()
    y = np.empty(rt.output_shape, np.float32)
    for _ in range(1000):
        rt.predict_one(x, out=y)
    tracemalloc.start()
    for _ in range(1000):
        rt.predict_one(x, out=y)
    base, _ = tracemalloc.get_traced_memory()
    for _ in range(10000):
        rt.predict_one(x, out=y)
    cur, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    res["tracemalloc_growth"] = cur - base
    print("RESULT" + json.dumps(res))
""")


@pytest.fixture(scope="module")
def counts():
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_counter_is_live(counts):
    assert counts["control10000"][0] - counts["control10"][0] >= 9990


@pytest.mark.parametrize("model", ["fp32_2", "fp32_6", "int8_6", "graph_res"])
def test_stream_allocates_nothing_per_sample(counts, model):
    assert counts[model + "_stream10"] == counts[model + "_stream10000"]
    assert counts[model + "_predict10"] == counts[model + "_predict10000"]
    assert counts[model + "_measure200"] == counts[model + "_measure10000"]
    assert counts[model + "_stream10"][0] <= 8  # at most boundary meminfos, nothing else


def test_predict_one_count_independent_of_depth(counts):
    assert counts["fp32_2_one_x1"] == counts["fp32_6_one_x1"] == counts["int8_6_one_x1"]
    per_call = counts["fp32_6_one_x1"][0]
    assert per_call <= 3
    assert counts["fp32_6_one_x100"][0] == 100 * per_call


def test_tracemalloc_no_growth(counts):
    assert counts["tracemalloc_growth"] <= 0
