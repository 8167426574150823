"""Start-up time of the runtime in fresh processes: import, load a .rtm, run the first sample.

    python bench/bench_startup.py                 # 9 warm runs per case, cold compile, kinds, demo
    python bench/bench_startup.py --runs 7 --no-cold --no-demo --no-kinds
    python bench/bench_startup.py --only-kinds    # the cold/warm row per model kind only

Every measurement is a new Python process (``sys.executable -c CHILD``). The child reports its
own phases with time.perf_counter (import numpy; import rtinfer + rtinfer.runtime, which
imports numba; rtinfer.load(path): read, plan and the interpreter's cache load; the first
predict_one), which modules it ended up importing, and the parent times the whole process from
spawn to exit ("process"; includes the interpreter's own start-up, ~20 ms).

Cases, interleaved run by run so machine load hits them alike:
- "scipy": the machine as it is (scipy importable).
- "no scipy": the child's prelude puts a finder first on sys.meta_path that refuses ``scipy``
  and its submodules (ImportError), as on a deployment without scipy.
The Numba cache is a private temporary NUMBA_CACHE_DIR: the first child compiles into it
("cold": the first-ever compile, paid once per machine and Numba version), later children
find it warm. Reported: median (min-max) of --runs processes per case.

Python bytecode: children run with PYTHONPYCACHEPREFIX in the temporary folder and without
PYTHONDONTWRITEBYTECODE, so modules load from .pyc files as in an installed deployment
(--source-compile keeps the calling environment: with PYTHONDONTWRITEBYTECODE=1 and no .pyc
beside the sources, every rtinfer module is compiled from source in every process, ~30 ms).

``rtinfer --help`` (the CLI's own start-up) and the demo's "runtime ready in" line (two
Runtimes built from in-memory FrozenModels, warm cache) are measured too.

Per model kind (bench.suite_startup.measure_kinds: MLP fp32, MLP int8, DS-CNN fp32 and int8), a cold row
(its own empty cache: the first-ever compile of the interpreter variant that model needs, then
the first batch predict) and a warm row, wall and CPU seconds.

Where the time goes (warm cache, 784-128-64-10 MLP): import numpy ~120 ms (~60 ms with
OPENBLAS_NUM_THREADS=1: OpenBLAS starts its thread pool at import), import numba ~185 ms,
rtinfer's modules ~25 ms, loading interp.run_one from the cache ~60 ms (the pickled
environments import numba.cpython.builtins/charseq/unicode, Numba's extension entry points,
numpy.ma through typeof). Numba's own FunctionCache.load_overload would first refresh the CPU
target context, importing every lowering registry and numba.np.arraymath, whose BLAS probe
imports scipy.linalg (+0.45 s with scipy, +0.18 s without); rtinfer.interp's cache skips that.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

_BLOCK_SCIPY = r"""
import sys
class _NoScipy:
    def find_spec(self, name, path=None, target=None):
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError("scipy blocked by bench_startup")
        return None
sys.meta_path.insert(0, _NoScipy())
"""

_SRC = r"""
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")
                    and "editable" not in getattr(type(f), "__module__", "")]
sys.path.insert(0, {src!r})
"""

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import rtinfer
import rtinfer.runtime
t2 = time.perf_counter()
rt = rtinfer.load(sys.argv[1])
t3 = time.perf_counter()
y = rt.predict_one(np.zeros(rt.in_size, dtype=np.float32))
t4 = time.perf_counter()
mods = ("scipy", "scipy.linalg", "numba.np.arraymath", "numba.np.linalg", "onnx")
print("STARTUP-JSON " + json.dumps({
    "numpy_s": t1 - t0, "import_s": t2 - t1, "load_s": t3 - t2, "first_s": t4 - t3, "total_s": t4 - t0,
    "imported": [m for m in mods if m in sys.modules]}))
"""

_PHASES = ("numpy_s", "import_s", "load_s", "first_s", "total_s", "process_s")


class StartupError(RuntimeError):
    """A start-up child process failed."""


def _run(code, args, env, timeout=900):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise StartupError(f"child failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc, wall


def _prelude(src) -> str:
    return "" if src is None else _SRC.format(src=os.path.abspath(src))


def child(path, env, block_scipy=False, src=None) -> dict:
    """One fresh process loading path; {phase: seconds, "imported": [...]}. src: import rtinfer
    from this source tree instead of the installed one."""
    code = _prelude(src) + (_BLOCK_SCIPY if block_scipy else "") + _CHILD
    proc, wall = _run(code, [path], env)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("STARTUP-JSON ")][-1]
    res = json.loads(line[len("STARTUP-JSON "):])
    res["process_s"] = wall
    return res


def summarize(runs) -> dict:
    out = {}
    for k in _PHASES:
        v = [r[k] for r in runs]
        out[k] = {"median": statistics.median(v), "min": min(v), "max": max(v)}
    out["imported"] = sorted({m for r in runs for m in r["imported"]})
    out["runs"] = len(runs)
    return out


def make_models(folder) -> dict:
    """Two .rtm files (784-128-64-10 fp32 and int8 MLPs) in folder; {name: path}."""
    from rtinfer._testmodels import fp32_mlp, int8_mlp
    from rtinfer.rtm import save_frozen
    paths = {"fp32": os.path.join(folder, "fp32.rtm"), "int8": os.path.join(folder, "int8.rtm")}
    save_frozen(fp32_mlp([784, 128, 64, 10]), paths["fp32"])
    save_frozen(int8_mlp([784, 128, 64, 10]), paths["int8"])
    return paths


def cli_help(env, runs, src=None) -> dict:
    """Median wall time of ``python -m rtinfer.cli --help`` (imports every subcommand module)."""
    walls = [_run(_prelude(src) + "import sys; from rtinfer.cli import main; sys.argv[0] = 'rtinfer'; main(['--help'])",
                  [], env)[1] for _ in range(runs)]
    return {"median": statistics.median(walls), "min": min(walls), "max": max(walls), "runs": runs}


def demo_ready(env, runs, src=None) -> dict:
    """The demo's "runtime ready in X s" (two rtinfer.load calls) and its process wall time,
    with a short training (--epochs 1 --n 1000); medians over runs."""
    code = _prelude(src) + "import sys; from rtinfer.cli import main; sys.exit(main(sys.argv[1:]))"
    ready, walls = [], []
    for _ in range(runs):
        proc, wall = _run(code, ["demo", "--epochs", "1", "--n", "1000"], env)
        m = re.search(r"runtime ready in ([\d.]+) s", proc.stdout)
        if m is None:
            raise StartupError("demo printed no 'runtime ready in' line:\n" + proc.stdout[-2000:])
        ready.append(float(m.group(1)))
        walls.append(wall)
    return {"ready_s": statistics.median(ready), "ready_all": ready,
            "process_s": statistics.median(walls), "runs": runs}


def _fmt(s) -> str:
    return f"{s['median'] * 1000:7.0f} ({s['min'] * 1000:.0f}-{s['max'] * 1000:.0f})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9, help="warm processes per case (default 9)")
    ap.add_argument("--no-cold", action="store_true", help="skip the first-ever compile measurement "
                                                           "(then the cache is filled untimed)")
    ap.add_argument("--no-demo", action="store_true", help="skip the CLI and demo measurements")
    ap.add_argument("--no-kinds", action="store_true", help="skip the cold/warm row per model kind")
    ap.add_argument("--only-kinds", action="store_true", help="only the cold/warm row per model kind")
    ap.add_argument("--kinds", nargs="+", default=None, metavar="KIND",
                    help="model kinds for the per-kind rows (default: 'mlp fp32' 'mlp int8' 'cnn fp32' 'cnn int8')")
    ap.add_argument("--source-compile", action="store_true",
                    help="keep the environment's bytecode settings (default: a private .pyc cache)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--src", help="children import rtinfer (and export) from this source tree instead of the "
                                  "installed one, e.g. an older commit: git archive REV rtinfer export | tar -x -C DIR")
    args = ap.parse_args(argv)
    if args.runs < 1:
        raise SystemExit("--runs must be >= 1")
    results = {"python": sys.version.split()[0], "runs": args.runs, "src": args.src,
               "bytecode": "environment" if args.source_compile else "private .pyc cache",
               "loadavg_start": os.getloadavg()}
    if not args.no_kinds:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from bench.suite_startup import KINDS, KINDS_HEADER, kinds_table, measure_kinds
        env = dict(os.environ)
        env.pop("NUMBA_DEBUG_CACHE", None)
        if args.src:
            env["PYTHONPATH"] = os.path.abspath(args.src) + os.pathsep + env.get("PYTHONPATH", "")
        results["kinds"] = measure_kinds(tuple(args.kinds or KINDS), warm_runs=min(args.runs, 5), env=env)
        print(f"per model kind (load average at start {results['loadavg_start']}, "
              f"at end {os.getloadavg()}):")
        print(" | ".join(KINDS_HEADER))
        for row in kinds_table(results["kinds"]):
            print(" | ".join(row))
        print()
    if args.only_kinds:
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=2)
        return 0
    with tempfile.TemporaryDirectory(prefix="rtinfer-startup-") as tmp:
        paths = make_models(tmp)
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "numba-cache"))
        env.pop("NUMBA_DEBUG_CACHE", None)
        if not args.source_compile:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
        first = child(paths["fp32"], env, src=args.src)  # empty cache: compiles the interpreter
        if not args.no_cold:
            results["cold"] = {"total_s": first["total_s"], "load_s": first["load_s"],
                               "process_s": first["process_s"]}
        cases = [(name, block) for name in paths for block in (False, True)]
        runs = {c: [] for c in cases}
        for _ in range(args.runs):
            for name, block in cases:
                runs[(name, block)].append(child(paths[name], env, block_scipy=block, src=args.src))
        results["warm"] = {f"{name} {'no scipy' if block else 'scipy'}": summarize(r)
                           for (name, block), r in runs.items()}
        if not args.no_demo:
            results["cli_help"] = cli_help(env, args.runs, args.src)
            results["demo"] = demo_ready(env, 3, args.src)

    print(f"fresh processes, warm Numba cache, median (min-max) of {args.runs} runs, milliseconds; "
          f"bytecode: {results['bytecode']}")
    print(f"{'case':18s} {'numpy':>16s} {'import rtinfer':>16s} {'load':>16s} {'1st sample':>16s} "
          f"{'total':>16s} {'process':>16s}  imported")
    for case, s in results["warm"].items():
        print(f"{case:18s} " + " ".join(f"{_fmt(s[k]):>16s}" for k in _PHASES) + "  " + ",".join(s["imported"]))
    if "cold" in results:
        c = results["cold"]
        print(f"\nfirst-ever compile (empty NUMBA_CACHE_DIR): load {c['load_s']:.1f} s, "
              f"import..first sample {c['total_s']:.1f} s, process {c['process_s']:.1f} s")
    if "cli_help" in results:
        h, d = results["cli_help"], results["demo"]
        print(f"rtinfer --help: process {_fmt(h)} ms")
        print(f"rtinfer demo (warm cache): 'runtime ready in' median {d['ready_s']:.2f} s "
              f"(two Runtimes; runs {d['ready_all']}), process {d['process_s']:.1f} s with --epochs 1 --n 1000")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
