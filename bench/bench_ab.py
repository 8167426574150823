"""Before/after in one process: the rtinfer of another checkout (OLD) against this one's (NEW).

    python bench/bench_ab.py /path/to/old/checkout                       # every model, both dtypes
    python bench/bench_ab.py OLD --models dscnn resnet8 --dtypes fp32 --rounds 10
    python bench/bench_ab.py OLD --new /path/to/other/checkout

This machine's speed moves in phases (a whole pass of a model at one speed, minutes later 1.4x
slower), so two processes timed one after the other compare phases, not code. Here both
versions run in one process: each checkout's ``rtinfer`` package is copied under another name
(``rt_old``, ``rt_new``; the lazy names of its ``__init__`` rewritten to the copy, or both
would load the installed rtinfer), each model is saved once as .rtm and loaded by both, and
the two are timed in alternating rounds (old, new, then new, old). Reported per model: the
median over rounds of in-loop p50 (``Runtime.measure``) and, for MLPs, of one ``predict`` of a
256-sample batch, and the median of the per-round new/old ratios (below 1: new is faster).
The models are the suite's (bench.suite_models), built from this checkout's code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def copy_package(checkout: str, alias: str, into: str) -> str:
    """checkout/rtinfer copied to into/alias, its own lazy names pointing at the copy."""
    src = os.path.join(checkout, "rtinfer")
    if not os.path.isfile(os.path.join(src, "__init__.py")):
        raise SystemExit(f"{checkout}: no rtinfer package there")
    dst = os.path.join(into, alias)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    init = os.path.join(dst, "__init__.py")
    with open(init, encoding="utf-8") as fh:
        text = fh.read()
    with open(init, "w", encoding="utf-8") as fh:
        fh.write(re.sub(r"""(["'])rtinfer\.""", lambda m: f"{m.group(1)}{alias}.", text))
    return dst


def _time_round(rt, X, batch: bool) -> tuple[float, float]:
    rep = rt.measure(X, budget_us=1e6, warmup=20)
    in_loop = float(np.percentile(rep.samples_us, 50))
    if not batch:
        return in_loop, float("nan")
    ts = []
    for _ in range(20):
        t0 = time.perf_counter_ns()
        rt.predict(X[:256])
        ts.append(time.perf_counter_ns() - t0)
    return in_loop, float(np.median(ts)) / 1e3


def run(old: str, new: str, models, dtypes, rounds: int, n: int) -> list[dict]:
    import bench.suite_models as SM

    work = tempfile.mkdtemp(prefix="rtinfer_ab_")
    try:
        sys.path.insert(0, work)
        mods = {}
        for alias, checkout in (("rt_old", old), ("rt_new", new)):
            copy_package(checkout, alias, work)
            mods[alias] = importlib.import_module(alias)
        rows = []
        for bm in SM.build_models(SM.select_specs(models), dtypes=dtypes, n_samples=n):
            path = os.path.join(work, bm.name.replace(" ", "_") + ".rtm")
            bm.frozen.save(path)
            rts = {k: m.load(path) for k, m in mods.items()}
            for k, rt in rts.items():
                if not type(rt).__module__.startswith(k):
                    raise SystemExit(f"{k} ran {type(rt).__module__}: the copy did not load its own code")
            batch = not bm.spec.cnn
            for rt in rts.values():
                rt.measure(bm.X, budget_us=1e6, warmup=50)
                if batch:
                    rt.predict(bm.X[:256])
            got = {k: ([], []) for k in rts}
            for r in range(rounds):
                for k in (("rt_old", "rt_new") if r % 2 == 0 else ("rt_new", "rt_old")):
                    a, b = _time_round(rts[k], bm.X, batch)
                    got[k][0].append(a)
                    got[k][1].append(b)
            o, w = got["rt_old"], got["rt_new"]
            row = {"model": bm.name, "in_loop_old_us": float(np.median(o[0])), "in_loop_new_us": float(np.median(w[0])),
                   "in_loop_ratio": float(np.median(np.array(w[0]) / np.array(o[0])))}
            if batch:
                row.update(batch256_old_us=float(np.median(o[1])), batch256_new_us=float(np.median(w[1])),
                           batch256_ratio=float(np.median(np.array(w[1]) / np.array(o[1]))))
            rows.append(row)
            line = (f"{row['model']:22s} in-loop p50 old {row['in_loop_old_us']:9.3f} new {row['in_loop_new_us']:9.3f} us"
                    f"  new/old {row['in_loop_ratio']:.3f}")
            if batch:
                line += (f" | batch-256 old {row['batch256_old_us']:9.1f} new {row['batch256_new_us']:9.1f} us"
                         f"  new/old {row['batch256_ratio']:.3f}")
            print(line, flush=True)
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    import bench.suite_models as SM

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="checkout whose rtinfer is the baseline")
    ap.add_argument("--new", default=HERE, help="checkout to compare (default: this one)")
    ap.add_argument("--models", nargs="+", default=None, help="model keys (default: all; bench.suite_models.SPECS)")
    ap.add_argument("--dtypes", nargs="+", choices=("fp32", "int8"), default=["fp32", "int8"])
    ap.add_argument("--rounds", type=int, default=10, help="alternating rounds per model (default 10)")
    ap.add_argument("--n", type=int, default=500, help="samples per in-loop round (default 500)")
    a = ap.parse_args(argv)
    if a.rounds < 2 or a.n < 256:
        ap.error("--rounds must be >= 2 and --n >= 256 (the batch-256 timing)")
    print(f"old: {os.path.abspath(a.old)}\nnew: {os.path.abspath(a.new)}", flush=True)
    run(a.old, a.new, a.models, tuple(SM.check_dtypes(a.dtypes)), a.rounds, a.n)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
