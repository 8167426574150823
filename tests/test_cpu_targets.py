"""What is fixed across CPU types, and what is not (README, "Across CPUs").

The same models run in fresh processes compiled for this CPU and for Numba's generic x86-64
target (NUMBA_CPU_NAME=generic, its own cache: no AVX2 code is ever emitted there): int8 outputs
are the same bits; fp32 outputs agree within 1e-6 relative (vector partial sums of another width)
and each target gives the same bits on every run and on every path (predict_one, stream,
batch="exact"). Slow: a generic target compiles the interpreter from scratch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import rtinfer
    from rtinfer._testmodels import fp32_mlp, int8_mlp, residual_mlp
    X = np.random.default_rng(0).standard_normal((300, 48)).astype(np.float32)
    out = {}
    for name, fm in (("fp32", fp32_mlp([48, 96, 64, 10])), ("int8", int8_mlp([48, 96, 64, 10])),
                     ("graph", residual_mlp(d=48, hidden=64, n_out=10))):
        exact = rtinfer.load(fm, batch="exact")
        one = np.stack([exact.predict_one(x) for x in X])
        stream = exact.stream(X)
        blocked = exact.predict(X)
        auto = rtinfer.load(fm).predict(X)  # the batch path (GEMMs) where the model qualifies
        out[name] = {"one": one.tolist(), "paths_equal": bool(np.array_equal(one, stream) and np.array_equal(one, blocked)),
                     "auto": auto.tolist()}
    print("RESULT " + json.dumps(out))
""")


def _run(env_extra, tmp):
    env = dict(os.environ, **env_extra)
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_native_and_generic_targets(tmp_path):
    native = _run({}, tmp_path)
    generic = _run({"NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path / "generic-cache")}, tmp_path)
    again = _run({"NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path / "generic-cache")}, tmp_path)
    for name in ("fp32", "int8", "graph"):
        a, b = np.asarray(native[name]["one"]), np.asarray(generic[name]["one"])
        assert native[name]["paths_equal"] and generic[name]["paths_equal"], name
        assert np.array_equal(b, np.asarray(again[name]["one"])), name  # a target repeats its bits
        if name == "int8":
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(np.asarray(native[name]["auto"]), np.asarray(generic[name]["auto"]))
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(np.asarray(native[name]["auto"]), np.asarray(generic[name]["auto"]),
                                       rtol=1e-5, atol=1e-6)
