"""Start-up times in fresh processes, and the training comparison (bench/bench_train.py).

    startup = measure_startup(["m_fp32.rtm", "m_int8.rtm"], cold=True)
    training = training_comparison(quick=False)

Start-up: a child process imports numpy and rtinfer, then for each .rtm file loads it
(``rtinfer.load``: read, plan, and the interpreter's compile or cache load) and runs its first
sample. "cold" runs with an empty NUMBA_CACHE_DIR, so the one compiled interpreter is compiled
(JIT first-compile, paid once per machine and numba version); "warm" runs with the calling
process's cache location, which that process has already filled (what every later process pays). Process wall time is measured by the parent from spawn
to exit. Warm figures are medians of three processes.

    kinds = measure_kinds()   # a cold and a warm row per model kind (MLP fp32/int8, DS-CNN)

measure_kinds: per model kind, its own empty cache, so each cold row is the first-ever compile
of the interpreter variant that model needs, with the first batch predict (the batch path's
variant for an MLP) measured separately; CPU seconds beside wall seconds.
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
    return _run_child(_CHILD, list(paths), env, timeout=600)


def _run_child(code: str, args: list, env: dict, timeout: float, cwd=None) -> dict:
    """Run ``python -c code *args``; its last STARTUP-JSON line, plus the process's wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
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


# A cold/warm row per model kind: which interpreter variant (rtinfer.interp.VARIANTS) the model
# needs decides what a first run compiles. CPU seconds (user + sys of the child) stand beside wall
# seconds: on a shared machine wall time includes waiting for a core.
_KIND_CHILD = r"""
import json, resource, sys, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
t0, c0 = time.perf_counter(), cpu()
import numpy as np
import rtinfer
import rtinfer.runtime
t1, c1 = time.perf_counter(), cpu()
rt = rtinfer.load(sys.argv[1])
y = rt.predict_one(np.zeros(rt.input_shape, dtype=np.float32))
t2, c2 = time.perf_counter(), cpu()
Y = rt.predict(np.zeros((int(sys.argv[2]),) + tuple(rt.input_shape), dtype=np.float32))
t3, c3 = time.perf_counter(), cpu()
print("STARTUP-JSON " + json.dumps({
    "import_s": t1 - t0, "first_s": t2 - t1, "first_cpu_s": c2 - c1, "batch_s": t3 - t2, "batch_cpu_s": c3 - c2,
    "to_first_output_s": t2 - t0, "variant": getattr(rt, "variant", None), "batch_path": rt._blas is not None}))
"""

KINDS = ("mlp fp32", "mlp int8", "cnn fp32", "cnn int8")


def make_kind_models(folder, kinds=KINDS) -> dict:
    """.rtm files for the start-up kinds: a 784-128-64-10 MLP in fp32 and int8 (the "dense"
    interpreter) and MLPerf Tiny's DS-CNN in fp32 ("conv_chain") and int8 ("qconv_chain"); {kind: path}."""
    import numpy as np
    from rtinfer._testmodels import fp32_mlp, int8_mlp
    from rtinfer.rtm import save_frozen
    paths = {}
    for kind in kinds:
        path = os.path.join(folder, kind.replace(" ", "_") + ".rtm")
        if kind == "mlp fp32":
            fm = fp32_mlp([784, 128, 64, 10])
        elif kind == "mlp int8":
            fm = int8_mlp([784, 128, 64, 10])
        elif kind in ("cnn fp32", "cnn int8"):
            import export
            from bench.suite_models import build_cnn
            model = build_cnn("dscnn")
            kw = {} if kind == "cnn fp32" else {
                "dtype": "int8", "reduce_range": True,
                "calibration": np.random.default_rng(2).normal(size=(200,) + tuple(model.input_shape))}
            fm = export.freeze(model, **kw)
        else:
            raise ValueError(f"unknown start-up kind {kind!r}; choose from {KINDS}")
        save_frozen(fm, path)
        paths[kind] = path
    return paths


def _kind_child(path, cache_dir, batch, env=None) -> dict:
    env = dict(os.environ if env is None else env, NUMBA_CACHE_DIR=cache_dir)
    # run in the model's folder: ``-c`` puts the working directory first on sys.path, and a
    # checkout's own rtinfer/ there would shadow the one under test (PYTHONPATH, --src)
    return _run_child(_KIND_CHILD, [path, str(batch)], env, timeout=900, cwd=os.path.dirname(os.path.abspath(path)))


def measure_kinds(kinds=KINDS, warm_runs: int = 3, batch: int = 300, env=None) -> dict:
    """{kind: {"cold": {...}, "warm": {...}}}: per kind, a child with its own empty
    NUMBA_CACHE_DIR (the first-ever compile of what that model needs: load + first predict_one,
    then the first predict of `batch` samples), then warm_runs children on that cache (medians).
    Each: import_s, first_s / first_cpu_s (rtinfer.load + predict_one), batch_s / batch_cpu_s,
    to_first_output_s (import .. first output), process_wall_s, variant, batch_path. Children
    use a private .pyc cache (PYTHONPYCACHEPREFIX, bytecode writing on), as bench_startup does,
    filled first by a throwaway cold run of the first kind."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="rtinfer-startup-kinds-") as tmp:
        paths = make_kind_models(tmp, kinds)
        # modules load from .pyc files, as in an installed deployment (bench/bench_startup.py)
        env = dict(os.environ if env is None else env, PYTHONPYCACHEPREFIX=os.path.join(tmp, "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # a throwaway cold run fills that .pyc cache with every module a compile imports (numba's
        # compiler is imported lazily), so that no cold row pays for compiling Python bytecode
        _kind_child(paths[kinds[0]], os.path.join(tmp, "cache-throwaway"), batch, env)
        for kind in kinds:
            cache = os.path.join(tmp, "cache-" + kind.replace(" ", "_"))
            cold = _kind_child(paths[kind], cache, batch, env)
            runs = [_kind_child(paths[kind], cache, batch, env) for _ in range(warm_runs)]
            warm = {k: statistics.median(r[k] for r in runs) for k in cold if isinstance(cold[k], float)}
            warm.update(variant=cold["variant"], batch_path=cold["batch_path"], runs=warm_runs)
            out[kind] = {"cold": cold, "warm": warm}
    return out


def kinds_table(kinds: dict) -> list[list[str]]:
    """Rows for a report: kind, variant, cache, import, load + first sample (wall and CPU), first
    batch predict (wall and CPU), import .. first output, process wall."""
    rows = []
    for kind, res in kinds.items():
        for cache in ("cold", "warm"):
            r = res[cache]
            label = "cold (empty cache)" if cache == "cold" else f"warm (median of {r['runs']})"
            rows.append([kind, str(r["variant"]), label, f"{r['import_s']:.2f}",
                         f"{r['first_s']:.2f} ({r['first_cpu_s']:.2f})", f"{r['batch_s']:.2f} ({r['batch_cpu_s']:.2f})",
                         f"{r['to_first_output_s']:.2f}", f"{r['process_wall_s']:.2f}"])
    return rows


KINDS_HEADER = ["model", "interpreter", "cache", "import (s)", "load + 1st sample, wall (CPU) s",
                "1st batch predict, wall (CPU) s", "import..1st output (s)", "process wall (s)"]


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
