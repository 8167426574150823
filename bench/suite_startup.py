"""Start-up times in fresh processes, and the training comparison (bench/bench_train.py).

    startup = measure_startup(["m_fp32.rtm", "m_int8.rtm"], cold=True)
    training = training_comparison(quick=False)

Start-up: a child process imports numpy and rtinfer, then for each .rtm file loads it
(``rtinfer.load``: read, plan, and the interpreter's compile or cache load) and runs its first
sample. "cold" runs with an empty NUMBA_CACHE_DIR, so the one compiled interpreter is compiled
(JIT first-compile, paid once per machine and numba version); "warm" runs with the calling
process's cache location, which that process has already filled (what every later process pays). Process wall time is measured by the parent from spawn
to exit. Warm figures are medians of three processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import rtinfer
import rtinfer.runtime
t1 = time.perf_counter()
res = {"import_s": t1 - t0, "models": []}
for path in sys.argv[1:]:
    ta = time.perf_counter()
    rt = rtinfer.load(path)
    tb = time.perf_counter()
    y = rt.predict_one(np.zeros(rt.input_shape, dtype=np.float32))
    tc = time.perf_counter()
    res["models"].append({"file": path.rsplit("/", 1)[-1], "load_s": tb - ta, "first_sample_s": tc - tb})
print("STARTUP-JSON " + json.dumps(res))
"""


class StartupError(RuntimeError):
    """A start-up child process failed."""


def _child(paths, cache_dir=None) -> dict:
    """One fresh process; cache_dir None keeps this process's Numba cache location."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *paths], env=env, capture_output=True, text=True,
                          timeout=600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise StartupError(f"start-up child failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("STARTUP-JSON ")][-1]
    res = json.loads(line[len("STARTUP-JSON "):])
    res["process_wall_s"] = wall
    return res


def _median_runs(runs) -> dict:
    out = {"import_s": statistics.median(r["import_s"] for r in runs),
           "process_wall_s": statistics.median(r["process_wall_s"] for r in runs), "models": []}
    for k, m in enumerate(runs[0]["models"]):
        out["models"].append({"file": m["file"],
                              "load_s": statistics.median(r["models"][k]["load_s"] for r in runs),
                              "first_sample_s": statistics.median(r["models"][k]["first_sample_s"] for r in runs)})
    out["runs"] = len(runs)
    return out


def measure_startup(paths, cold: bool = True, warm_runs: int = 3) -> dict:
    """{"cold": {...} (when cold), "warm": {...}}; each: import_s, process_wall_s, models[...]."""
    paths = [os.fspath(p) for p in paths]
    out = {}
    if cold:
        with tempfile.TemporaryDirectory(prefix="rtinfer-numba-cache-") as cache:
            out["cold"] = _child(paths, cache)
    # the calling process has compiled (or loaded) the interpreter into its own cache location
    out["warm"] = _median_runs([_child(paths) for _ in range(warm_runs)])
    return out


_ROW = re.compile(r"^\s*(\d+)\s{2}(\S.*?)\s{2,}([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$")


def training_comparison(quick: bool = False) -> dict:
    """Run bench/bench_train.py's main (rtinfer.train vs scikit-learn MLPClassifier on digits) and
    parse its table: {"argv", "output", "rows": [{batch, engine, ms_per_epoch, accuracy, ...}]};
    {"skipped": reason} when scikit-learn is not installed."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return {"skipped": "scikit-learn is not installed (pip install scikit-learn)"}
    from bench import bench_train
    argv = (["--repeats", "1", "--epochs", "5", "--batch-sizes", "200"] if quick
            else ["--repeats", "3", "--epochs", "30", "--batch-sizes", "32", "200"])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = bench_train.main(argv)
    text = buf.getvalue()
    rows = []
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            rows.append({"batch": int(m.group(1)), "engine": m.group(2).strip(),
                         "ms_per_epoch": float(m.group(3)), "ms_min": float(m.group(4)), "ms_max": float(m.group(5)),
                         "accuracy": float(m.group(6)), "acc_min": float(m.group(7)), "acc_max": float(m.group(8))})
    return {"argv": argv, "exit_code": code, "output": text, "rows": rows}
