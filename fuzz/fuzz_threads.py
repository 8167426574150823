"""Thread fuzz: many threads hammer one shared Runtime; every answer is checked bit for bit.

    python fuzz/fuzz_threads.py --calls 100000 --json threads.json     # long run: 10^5 calls per entry and model
    python fuzz/fuzz_threads.py --calls 2000 --models int8,graph
    python fuzz/fuzz_threads.py --calls 5000 --models int8 --unlocked  # positive control: must find wrong answers

A Runtime may be shared by threads (rtinfer/runtime.py, "Threads"): every call must give the
answer a single thread gets. For each model kind, one Runtime is shared by ``--threads``
threads (default 8, two per entry point) under ``sys.setswitchinterval(1e-6)`` (the interpreter
switches threads as often as it can), started together by a barrier. Entry points:

- ``predict_one``: one sample, alternating the 1-D fast path with a preallocated ``out`` and a
  new output (the checked path for int64 and several outputs);
- ``predict``: batches of 40 samples (the batch path of rtinfer.batch where the model has one:
  it runs several compiled calls and BLAS products that release the GIL) and of 5 (the blocked
  path), into a preallocated ``out`` half of the time;
- ``stream``: batches of 8 samples;
- ``measure``: in-loop timing of 8 samples (warm-up 2), and every 10th call mode="call".

Every answer is compared with the one computed beforehand, single-threaded, on another Runtime
of the same model, with the same entry point and inputs (np.array_equal per output); a measure
report must time the samples it was given. Wrong answers, exceptions and bad reports are counted
per model and entry point. Model kinds: fp32 (MLP, softmax), int8 (QDENSE + LUT), int64 (fp32
ARGMAX), int8_int64 (int8 ARGMAX), graph (residual BINARY adds), multi (two outputs: CONCAT,
SLICE, MUL), conv (CONV/pool: the blocked path only).

``--unlocked`` replaces the shared Runtime's lock with a no-op (the batch path then shares its
chunk buffers between threads) and runs the int8 layers of the batch path as float32 BLAS
products (which release the GIL, on every CPU): a positive control that the hammer sees races
(int8 predict on 40-sample batches goes wrong). Exit code 1 when anything is wrong (0 with --unlocked only if
the control found wrong answers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(1, os.path.dirname(_HERE))

ENTRIES = ("predict_one", "predict", "stream", "measure")
N_POOL = 200       # input samples per model
BATCH = 40         # predict: the batch path (>= rtinfer.batch.AUTO_MIN_BATCH)
SMALL = 5          # predict: the blocked path
STREAM = 8
MEASURE = 8


def make_models() -> dict:
    from models import base_models
    from rtinfer._testmodels import fp32_mlp, int8_mlp, residual_mlp, two_branch
    return {
        "fp32": fp32_mlp([16, 64, 32, 6], head="softmax"),
        "int8": int8_mlp([16, 40, 24, 6], lut=np.tanh, head="softmax"),
        "int64": fp32_mlp([16, 96, 6], head="argmax"),
        "int8_int64": int8_mlp([16, 96, 6], head="argmax"),
        "graph": residual_mlp(d=16, hidden=48, n_out=6),
        "multi": two_branch(d=16, a=64, b=48),
        "conv": base_models()[4],
    }


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _tuple(y):
    return y if isinstance(y, tuple) else (y,)


def _same(a, b) -> bool:
    a, b = _tuple(a), _tuple(b)
    return len(a) == len(b) and all(x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y)
                                    for x, y in zip(a, b))


def _expected(fm, X):
    """Single-threaded answers on a fresh Runtime: per sample, per batch start."""
    import rtinfer
    ref = rtinfer.load(fm)
    n = len(X)
    return {
        "one": [ref.predict_one(X[i]) for i in range(n)],
        "batch": [ref.predict(X[j:j + BATCH]) for j in range(n - BATCH + 1)],
        "small": [ref.predict(X[j:j + SMALL]) for j in range(n - SMALL + 1)],
        "stream": [ref.stream(X[j:j + STREAM]) for j in range(n - STREAM + 1)],
    }


def _out_like(y):
    return tuple(np.empty_like(v) for v in y) if isinstance(y, tuple) else np.empty_like(y)


def _worker(rt, entry, X, want, calls, seed, barrier, res):
    """One thread: `calls` calls of `entry`; counts into res (a dict owned by this thread)."""
    rng = np.random.default_rng(seed)
    n = len(X)
    multi = isinstance(want["one"][0], tuple)
    out_one = _out_like(want["one"][0])
    out_batch = _out_like(want["batch"][0])
    flat_fast = not multi and want["one"][0].dtype == np.float32 and want["one"][0].ndim == 1
    barrier.wait()
    for c in range(calls):
        try:
            if entry == "predict_one":
                i = int(rng.integers(n))
                if c % 2 and flat_fast:
                    y = rt.predict_one(X[i], out=out_one)
                else:
                    y = rt.predict_one(X[i])
                ok = _same(y, want["one"][i])
            elif entry == "predict":
                if c % 4 == 3:
                    j = int(rng.integers(n - SMALL + 1))
                    ok = _same(rt.predict(X[j:j + SMALL]), want["small"][j])
                else:
                    j = int(rng.integers(n - BATCH + 1))
                    if c % 2 and not multi:
                        y = rt.predict(X[j:j + BATCH], out=out_batch)
                    else:
                        y = rt.predict(X[j:j + BATCH])
                    ok = _same(y, want["batch"][j])
            elif entry == "stream":
                j = int(rng.integers(n - STREAM + 1))
                ok = _same(rt.stream(X[j:j + STREAM]), want["stream"][j])
            else:
                j = int(rng.integers(n - MEASURE + 1))
                mode = "call" if c % 10 == 9 else "in-loop"
                rep = rt.measure(X[j:j + MEASURE], budget_us=1e6, warmup=2, mode=mode)
                ok = rep.n == MEASURE and len(rep.samples_us) == MEASURE and bool(np.all(rep.samples_us > 0))
            res["calls"] += 1
            if not ok:
                res["wrong"] += 1
        except Exception as exc:  # noqa: BLE001 - any exception is a finding
            res["calls"] += 1
            res["errors"] += 1
            if len(res["examples"]) < 3:
                res["examples"].append(f"{type(exc).__name__}: {str(exc)[:200]}")


def hammer(fm, calls: int, threads: int = 8, unlocked: bool = False, switch: float = 1e-6, seed: int = 0,
           entries=ENTRIES) -> dict:
    """`threads` threads (entries assigned round robin) share one Runtime of fm; each entry
    point gets `calls` calls in total. Returns per-entry {"calls", "wrong", "errors", "examples"}."""
    import rtinfer
    X = np.random.default_rng(seed).standard_normal((N_POOL,) + tuple(fm.input_shape)).astype(np.float32)
    want = _expected(fm, X)
    rt = rtinfer.load(fm)
    rt.predict(X[:BATCH])  # build the batch path before the threads start (its own build is locked too)
    if unlocked:
        rt._lock = _NoLock()
        if rt._blas is not None:
            # the control needs a window between steps of one batch call: float32 BLAS products
            # for the int8 layers (on VNNI CPUs the default puts every row in one compiled call)
            from rtinfer.batch import BatchPath
            rt._blas = BatchPath.build(rt.plan, int8_gemm="f32")
    assign = [entries[k % len(entries)] for k in range(threads)]
    per_entry = {e: assign.count(e) for e in entries}
    res = [{"entry": e, "calls": 0, "wrong": 0, "errors": 0, "examples": []} for e in assign]
    barrier = threading.Barrier(threads)
    ts = [threading.Thread(target=_worker, args=(rt, e, X, want, -(-calls // per_entry[e]), seed * 1000 + k,
                                                 barrier, res[k]))
          for k, e in enumerate(assign)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(switch)
    t0 = time.perf_counter()
    try:
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        sys.setswitchinterval(old)
    seconds = time.perf_counter() - t0
    out = {}
    for r in res:
        d = out.setdefault(r["entry"], {"calls": 0, "wrong": 0, "errors": 0, "examples": []})
        for k in ("calls", "wrong", "errors"):
            d[k] += r[k]
        d["examples"] += r["examples"][:3 - len(d["examples"])]
    blas = rt._blas is not None
    return {"entries": out, "seconds": round(seconds, 2), "batch_path": blas, "threads": threads}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100000, help="calls per entry point and model (default 10^5)")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--models", default="all", help="comma-separated model kinds (default all)")
    ap.add_argument("--switch", type=float, default=1e-6, help="sys.setswitchinterval during the run")
    ap.add_argument("--unlocked", action="store_true", help="positive control: the Runtime's lock made a no-op")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import warnings
    warnings.simplefilter("ignore")
    models = make_models()
    kinds = list(models) if args.models == "all" else args.models.split(",")
    t0 = time.time()
    summary = {"calls_per_entry": args.calls, "threads": args.threads, "switch_interval": args.switch,
               "unlocked": args.unlocked, "models": {}}
    for kind in kinds:
        r = hammer(models[kind], args.calls, args.threads, args.unlocked, args.switch, args.seed)
        summary["models"][kind] = r
        line = ", ".join(f"{e} {d['calls']} calls {d['wrong']} wrong {d['errors']} errors" for e, d in r["entries"].items())
        print(f"{kind} (batch path: {r['batch_path']}): {line}; {r['seconds']} s", file=sys.stderr, flush=True)
    wrong = sum(d["wrong"] + d["errors"] for r in summary["models"].values() for d in r["entries"].values())
    summary["wrong_or_errors"] = wrong
    summary["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if args.unlocked:
        return 0 if wrong > 0 else 1
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
