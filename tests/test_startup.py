"""A warm start-up loads the interpreter from Numba's cache without refreshing the target context.

rtinfer.jitcache (the stamped FunctionCache) load_overload skips Numba's target_context.refresh() (which imports
every lowering registry, numba.np.arraymath's BLAS probe and so scipy.linalg among them). These
tests run fresh processes on a warm cache (the cache location the other tests use) and check:
the entry points really came from the cache, numba.np.arraymath was never imported, every path
(predict_one, stream, measure, predict on the exact and the batch path; fp32 and int8) agrees
with the NumPy reference executor, a user's @njit function with np.dot still compiles in the same
process afterwards, and the same holds when scipy cannot be imported at all.
No timings are asserted (bench/bench_startup.py measures them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

_BLOCK_SCIPY = textwrap.dedent("""
    import sys
    class _NoScipy:
        def find_spec(self, name, path=None, target=None):
            if name == "scipy" or name.startswith("scipy."):
                raise ImportError("scipy blocked by test_startup")
            return None
    sys.meta_path.insert(0, _NoScipy())
""")

_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import rtinfer
    from rtinfer import reference
    from rtinfer._testmodels import fp32_mlp, int8_mlp

    res = {}
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 20)).astype(np.float32)
    for name, frozen in (("fp32", fp32_mlp([20, 64, 32, 5])), ("int8", int8_mlp([20, 64, 32, 5], head=None))):
        ref = np.asarray(reference.run(frozen, X), dtype=np.float32)
        rt = rtinfer.load(frozen)
        one = np.stack([rt.predict_one(x) for x in X])
        stream = rt.stream(X)
        exact = rtinfer.load(frozen, batch="exact").predict(X)
        auto = rt.predict(X)  # 300 samples: the batch path (rtinfer.batch) when the model is big enough
        report = rt.measure(X, budget_us=1e6, warmup=10)
        res[name] = {"one_vs_ref": float(np.max(np.abs(one - ref))),
                     "stream_eq_one": bool(np.array_equal(stream, one)),
                     "exact_eq_one": bool(np.array_equal(exact, one)),
                     "auto_vs_ref": float(np.max(np.abs(auto - ref))),
                     "measured": int(report.n), "batch_path": rt._blas is not None}
    from rtinfer import interp
    res["cache_hits"] = {f.__name__: sum(f.stats.cache_hits.values())
                         for f in interp.VARIANTS.values() if f.signatures}
    res["arraymath_before_user_jit"] = "numba.np.arraymath" in sys.modules
    res["scipy_linalg"] = "scipy.linalg" in sys.modules

    from numba import njit

    @njit
    def user_fn(a):  # a user's own jitted code in the same process compiles as usual
        return np.sum(a * 2.0)

    res["user_fn"] = float(user_fn(np.arange(4.0)))
    try:
        @njit
        def user_dot(a, b):
            return np.dot(a, b)
        res["user_dot"] = float(user_dot(np.arange(3.0), np.arange(3.0)))
    except Exception as exc:  # no BLAS for Numba without scipy
        res["user_dot"] = type(exc).__name__
    print("STARTUP-JSON " + json.dumps(res))
""")


def _child(prelude=""):
    proc = subprocess.run([sys.executable, "-c", prelude + _CHILD], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("STARTUP-JSON ")][-1]
    return json.loads(line[len("STARTUP-JSON "):])


@pytest.fixture(scope="module")
def warm():
    _child()  # fills the cache if this checkout has not compiled the interpreter yet
    return _child()


def _check_paths(res):
    for name in ("fp32", "int8"):
        r = res[name]
        assert r["one_vs_ref"] <= (1e-5 if name == "fp32" else 0.0), (name, r)
        assert r["stream_eq_one"] and r["exact_eq_one"], (name, r)
        assert r["auto_vs_ref"] <= (1e-5 if name == "fp32" else 0.0), (name, r)
        assert r["measured"] == 300
        assert r["batch_path"], "300 samples should have taken the batch path"


def test_warm_start_loads_from_cache_without_numba_registries(warm):
    assert warm["cache_hits"] and all(hits >= 1 for hits in warm["cache_hits"].values()), warm["cache_hits"]
    assert warm["arraymath_before_user_jit"] is False
    assert warm["scipy_linalg"] is False
    _check_paths(warm)


def test_user_jit_code_compiles_after_a_warm_start(warm):
    assert warm["user_fn"] == 12.0
    try:
        import scipy.linalg  # noqa: F401
    except ImportError:
        pytest.skip("scipy not installed: Numba has no BLAS for np.dot")
    assert warm["user_dot"] == 5.0


_ONE_ONLY = textwrap.dedent("""
    import json, sys
    import numpy as np
    import rtinfer
    from rtinfer import interp, reference
    from rtinfer._testmodels import fp32_mlp
    frozen = fp32_mlp([20, 16, 5])
    x = np.linspace(-1, 1, 20, dtype=np.float32)
    rt = rtinfer.load(frozen)
    y = rt.predict_one(x)
    res = {"loaded_before": [f.__name__ for f in interp.VARIANTS.values() if f.signatures],
           "err": float(np.max(np.abs(y - reference.run(frozen, x[None])[0])))}
    # wrong inputs reach the compiled dispatcher's type check in a process whose target
    # context was never refreshed: each must still become the runtime's InputError
    refused = []
    for bad in (x.astype(np.float64), x[::2], np.zeros(21, np.float32), list(x), np.stack([x, x])):
        try:
            rt.predict_one(bad)
        except rtinfer.runtime.InputError:
            refused.append(True)
    try:
        rt.predict_one(x, out=np.zeros(5))
    except rtinfer.runtime.InputError:
        refused.append(True)
    res["refused"] = len(refused)
    res["arraymath"] = "numba.np.arraymath" in sys.modules
    stream = rt.stream(x[None])  # the same entry point: nothing more to load
    res["loaded_after"] = [f.__name__ for f in interp.VARIANTS.values() if len(f.signatures) == 1]
    res["stream_eq_one"] = bool(np.array_equal(stream[0], y))
    print("STARTUP-JSON " + json.dumps(res))
""")


def test_one_entry_point_serves_every_path(warm):
    proc = subprocess.run([sys.executable, "-c", _ONE_ONLY], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("STARTUP-JSON ")][-1][13:])
    assert res["loaded_before"] == ["execute_dense"]  # an MLP needs only the dense interpreter
    assert res["err"] <= 1e-6
    assert res["refused"] == 6
    assert res["arraymath"] is False
    assert res["loaded_after"] == ["execute_dense"]
    assert res["stream_eq_one"]


@pytest.mark.slow
def test_warm_start_without_scipy(warm):
    res = _child(_BLOCK_SCIPY)
    assert all(hits >= 1 for hits in res["cache_hits"].values()), res["cache_hits"]
    assert res["scipy_linalg"] is False
    _check_paths(res)
    assert res["user_fn"] == 12.0
