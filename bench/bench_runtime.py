"""Runtime benchmark: rtinfer side by side with the weight-streaming limit, int8, onnxruntime
and NumPy, on 784-128-64-10 and 16-32-4 MLPs with random weights (single thread, one process).

    python bench/bench_runtime.py [--n 5000] [--rounds 5] [--json out.json] [--skip-process]

Reported (medians over --rounds interleaved rounds; every round times --n samples):
- fp32 in-loop p50 (timed inside compiled code) vs the weight-streaming limit: a read-only
  @njit pass over the same packed weight bytes, timed the same way (ratio target <= 1.3)
- int8 vs fp32 in-loop p50 (target: int8 >= 1.7x faster on 784-128-64-10)
- predict_one p50 (a Python call) vs onnxruntime InferenceSession.run (intra_op_num_threads=1)
  and vs a NumPy forward pass (targets: >= 4x faster than onnxruntime on 784-128-64-10,
  >= 10x on 16-32-4)
- in-loop p99.9 / p50 (target <= 1.5)
- a fresh process loading an .rtm model and running its first sample with a warm cache
  (target <= 0.5 s), and the first-ever compile with an empty NUMBA_CACHE_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from numba import njit

import rtinfer
from rtinfer import interp
from rtinfer._testmodels import fp32_mlp, int8_mlp
from rtinfer.plan import C_NOUT, C_OP, C_T0, C_T1

os.environ.setdefault("OMP_NUM_THREADS", "1")


@njit(cache=True, fastmath=True)
def _read_pass(w):
    """Sum of w: a vectorized, read-only stream over the bytes (fastmath lets LLVM use
    several vector accumulators)."""
    acc = np.float32(0.0)
    for i in range(w.size):
        acc += w[i]
    return acc


@njit(cache=True)
def _time_read_passes(blob, lo, hi, reps, times):
    """times[r] = ns for one read of the float32 elements blob.view(f32)[lo:hi]."""
    h = blob.view(np.int64)
    w = blob.view(np.float32)[lo:hi]
    sink = np.float32(0.0)
    for r in range(reps):
        t0 = interp.now_ns(h)
        sink += _read_pass(w)
        t1 = interp.now_ns(h)
        times[r] = t1 - t0
    return sink


def weight_stream_p50_us(rt, n):
    """p50 of one read-only pass over the plan's packed float32 weights (same process, same clock)."""
    # the extent of the packed W and b the DENSE rows reference (float32 elements)
    dense = [r for r in rt.plan.program if r[C_OP] == int(rtinfer.Op.DENSE)]
    lo = min(int(r[C_T0]) for r in dense)
    hi = max(int(r[C_T1]) + int(r[C_NOUT]) for r in dense)
    state = rt._state
    times = np.zeros(n, np.int64)
    _time_read_passes(state, lo, hi, min(n, 200), times)  # warm
    _time_read_passes(state, lo, hi, n, times)
    return float(np.median(times)) / 1000.0, (hi - lo) * 4


def onnx_session(frozen):
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime not installed"
    try:
        from export.onnx_export import to_onnx
        model = to_onnx(frozen)
    except ImportError:
        return None, "export.to_onnx not available"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess, ""


def call_p50_us(fn, rows, warm=200):
    for i in range(min(warm, len(rows))):
        fn(rows[i])
    clock = time.perf_counter_ns
    t = np.zeros(len(rows), np.int64)
    for i, x in enumerate(rows):
        t0 = clock()
        fn(x)
        t[i] = clock() - t0
    return float(np.median(t)) / 1000.0


def numpy_forward(frozen):
    """A plain NumPy forward pass of a DENSE/ReLU/SOFTMAX MLP, one sample."""
    mats = [(frozen.tensor(l, "W"), frozen.tensor(l, "b"), int(l.act)) for l in frozen.layers if l.op == rtinfer.Op.DENSE]

    def fwd(x):
        h = x
        for W, b, act in mats:
            h = h @ W + b
            if act == int(rtinfer.Act.RELU):
                h = np.maximum(h, 0.0)
        e = np.exp(h - h.max())
        return e / e.sum()
    return fwd


def bench_model(sizes, n, rounds):
    fp = fp32_mlp(sizes, head="softmax", seed=1)
    q8 = int8_mlp(sizes, head="softmax", seed=1)
    rt, rq = rtinfer.load(fp), rtinfer.load(q8)
    X = np.random.default_rng(0).standard_normal((n, sizes[0])).astype(np.float32)
    rows = [np.ascontiguousarray(X[i]) for i in range(n)]
    sess, why = onnx_session(fp)
    name = sess.get_inputs()[0].name if sess is not None else None
    rows_b = [x[None, :] for x in rows]
    npf = numpy_forward(fp)
    out = np.empty(rt.output_shape, np.float32)
    acc = {k: [] for k in ("fp32_p50", "fp32_p999", "int8_p50", "int8_p999", "limit_p50",
                           "one_p50", "int8_one_p50", "ort_p50", "numpy_p50")}
    for _ in range(rounds):
        r = rt.measure(X, budget_us=1e6, warmup=1000)
        acc["fp32_p50"].append(r.p50_us)
        acc["fp32_p999"].append(r.p999_us)
        r = rq.measure(X, budget_us=1e6, warmup=1000)
        acc["int8_p50"].append(r.p50_us)
        acc["int8_p999"].append(r.p999_us)
        lim, wbytes = weight_stream_p50_us(rt, n)
        acc["limit_p50"].append(lim)
        acc["one_p50"].append(call_p50_us(lambda x: rt.predict_one(x, out), rows))
        acc["int8_one_p50"].append(call_p50_us(lambda x: rq.predict_one(x, out), rows))
        if sess is not None:
            acc["ort_p50"].append(call_p50_us(lambda x: sess.run(None, {name: x}), rows_b))
        acc["numpy_p50"].append(call_p50_us(npf, rows))
    med = {k: float(np.median(v)) if v else None for k, v in acc.items()}
    med["weight_bytes_fp32"] = wbytes
    med["fp32_over_limit"] = med["fp32_p50"] / med["limit_p50"]
    med["int8_speedup"] = med["fp32_p50"] / med["int8_p50"]
    med["fp32_p999_over_p50"] = med["fp32_p999"] / med["fp32_p50"]
    med["int8_p999_over_p50"] = med["int8_p999"] / med["int8_p50"]
    med["ort_over_one"] = med["ort_p50"] / med["one_p50"] if med["ort_p50"] else None
    med["numpy_over_one"] = med["numpy_p50"] / med["one_p50"]
    med["onnxruntime_note"] = why
    return med


FRESH = r"""
import time, sys
t0 = time.perf_counter()
if len(sys.argv) > 2 and sys.argv[2] == "no-scipy":
    sys.modules["scipy"] = None  # a numpy + numba deployment: numba then skips its scipy BLAS probe
import numpy as np
import rtinfer
rt = rtinfer.load(sys.argv[1])
y = rt.predict_one(np.zeros(rt.input_shape, np.float32))
print("ELAPSED", time.perf_counter() - t0)
"""


def fresh_process(path, cache_dir=None, no_scipy=False):
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    t0 = time.perf_counter()
    args = [sys.executable, "-c", FRESH, path] + (["no-scipy"] if no_scipy else [])
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    inner = float([ln for ln in proc.stdout.splitlines() if ln.startswith("ELAPSED")][0].split()[1])
    return inner, wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write the numbers as JSON")
    ap.add_argument("--skip-process", action="store_true", help="skip the fresh-process and compile timings")
    args = ap.parse_args(argv)

    results = {}
    for sizes in ([784, 128, 64, 10], [16, 32, 4]):
        key = "-".join(map(str, sizes))
        m = bench_model(sizes, args.n, args.rounds)
        results[key] = m
        print(f"\n== {key} MLP (ReLU, softmax head), medians of {args.rounds} rounds x {args.n} samples ==")
        print(f"fp32 in-loop p50        {m['fp32_p50']:8.3f} us   p99.9 {m['fp32_p999']:8.3f} us  "
              f"(p99.9/p50 {m['fp32_p999_over_p50']:.2f}, target <= 1.5)")
        print(f"weight-stream limit p50 {m['limit_p50']:8.3f} us   ({m['weight_bytes_fp32']} B)  "
              f"fp32/limit {m['fp32_over_limit']:.2f} (target <= 1.3)")
        print(f"int8 in-loop p50        {m['int8_p50']:8.3f} us   p99.9 {m['int8_p999']:8.3f} us  "
              f"int8 speedup {m['int8_speedup']:.2f}x (target >= 1.7 on 784-128-64-10)")
        print(f"predict_one p50 fp32    {m['one_p50']:8.3f} us   int8 {m['int8_one_p50']:8.3f} us")
        if m["ort_p50"] is not None:
            print(f"onnxruntime run p50     {m['ort_p50']:8.3f} us   ratio {m['ort_over_one']:.2f}x "
                  f"(target >= 4 on 784-128-64-10, >= 10 on 16-32-4)")
        else:
            print(f"onnxruntime: skipped ({m['onnxruntime_note']})")
        print(f"numpy forward p50       {m['numpy_p50']:8.3f} us   ratio {m['numpy_over_one']:.2f}x")

    if not args.skip_process:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "mlp.rtm")
            fp32_mlp([784, 128, 64, 10], head="softmax").save(path)
            fresh_process(path)  # make sure the normal cache is warm
            inner, wall = fresh_process(path)
            ns_inner, ns_wall = fresh_process(path, no_scipy=True)
            cache = os.path.join(tmp, "numba-cache")
            os.makedirs(cache)
            c_inner, c_wall = fresh_process(path, cache_dir=cache)
        results["fresh_process_warm_cache_s"] = {"import_load_first_sample": inner, "process_wall": wall,
                                                 "no_scipy_import_load_first_sample": ns_inner,
                                                 "no_scipy_process_wall": ns_wall}
        results["first_compile_s"] = {"import_load_first_sample": c_inner, "process_wall": c_wall}
        print("\n== process start ==")
        print(f"warm cache: import + load + first sample {inner:.3f} s (process wall {wall:.3f} s; target <= 0.5 s)")
        print(f"  same without scipy installed (numpy + numba deployment; numba's first compile/cache load "
              f"otherwise imports scipy.linalg to probe BLAS): {ns_inner:.3f} s (process wall {ns_wall:.3f} s)")
        print(f"empty cache (first-ever compile): {c_inner:.2f} s (process wall {c_wall:.2f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
