"""Batch throughput of Runtime.predict: batch="auto" (GEMM batch path, rtinfer.batch) vs
batch="exact" (compiled blocks) vs onnxruntime with one thread, at batch sizes 1, 32 and 256.

    python bench/bench_batch.py                  # all models, fp32 and int8, markdown table
    python bench/bench_batch.py --models 16-32-4 784-128-64-10 --reps 101 --json out.json
    python bench/bench_batch.py --blas           # also auto with NumPy's BLAS for DENSE layers
    python bench/bench_batch.py --allow          # also auto without the input NaN/inf check
    python bench/bench_batch.py --layers --models ad-640 --dtypes fp32   # where the time goes

Models: rtinfer.train.MLP (He init, ReLU hidden layers, seeded) frozen by export.freeze; int8
with reduce_range=True, calibrated on N(0, 1) data; timed on other N(0, 1) samples. onnxruntime
runs export.to_onnx of the same FrozenModel (intra/inter-op threads 1, sequential).
Method: samples/s = B / median time of one call on a batch of B samples; engines interleaved
call by call (the order rotated every round), outputs preallocated where the engine allows
(rtinfer ``out=``). The "÷ onnxruntime" column is the median over rounds of the per-round ratio
(onnxruntime's time / the engine's time, the two calls of one round run back to back): on a
shared machine a load change moves both calls of a round alike, so this ratio swings much less
than the ratio of two medians (both are in the JSON). ``--allow`` adds "rtinfer auto allow":
the same batch path with ``nonfinite="allow"``, i.e. without the pass over the input that
refuses NaN/inf (``nonfinite="raise"``, the default; onnxruntime has no such check): the
difference between the two rows is what that check costs. BLAS is limited to one thread (OPENBLAS/OMP/MKL_NUM_THREADS=1, set here
before NumPy is imported); in the library the user's BLAS thread settings apply. Each engine's outputs at B = 256 are checked
against rtinfer.reference (fp32: 1e-4 relative; int8: within one output step) before timing.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

MODELS = {  # key: (sizes, output head)
    "16-32-4": ((16, 32, 4), "identity"),
    "64-64-32-10": ((64, 64, 32, 10), "softmax"),
    "784-128-64-10": ((784, 128, 64, 10), "softmax"),
    "784-512-512-10": ((784, 512, 512, 10), "softmax"),
    "ad-640": ((640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640), "identity"),
}
BATCHES = (1, 32, 256)
ENGINES = ("rtinfer auto", "rtinfer auto allow", "rtinfer auto-blas", "rtinfer exact", "onnxruntime")


def build(key: str, dtype: str, seed: int = 0):
    """(FrozenModel, X (256, n_in) float32) for one model key and dtype ("fp32" | "int8")."""
    from export import freeze
    from rtinfer.train import MLP
    sizes, head = MODELS[key]
    model = MLP(list(sizes), activation="relu", output=head, seed=seed, init="he")
    rng = np.random.default_rng(seed + 1)
    calibration = rng.standard_normal((512, sizes[0]))
    X = rng.standard_normal((max(BATCHES), sizes[0])).astype(np.float32)
    if dtype == "fp32":
        return freeze(model, "float32"), X
    return freeze(model, "int8", calibration=calibration, reduce_range=True), X


def engines(frozen, blas: bool = False, allow: bool = False):
    """name -> f(B) returning a callable that runs one batch Xb of B samples. blas: add
    "rtinfer auto-blas", the batch path with np.matmul for DENSE (BatchPath dense_gemm="blas");
    allow: add "rtinfer auto allow", batch="auto" with nonfinite="allow" (no input check)."""
    import onnxruntime as ort

    import rtinfer
    from export import to_onnx

    from rtinfer.batch import BatchPath

    calls = {}
    modes = [("rtinfer auto", "auto"), ("rtinfer exact", "exact")]
    if blas:
        modes.insert(1, ("rtinfer auto-blas", "auto"))
    if allow:
        modes.insert(1, ("rtinfer auto allow", "auto"))
    for name, mode in modes:
        rt = rtinfer.load(frozen, batch=mode, nonfinite="allow" if name == "rtinfer auto allow" else "raise")
        if name == "rtinfer auto-blas":
            rt._blas, rt._blas_built = BatchPath.build(rt.plan, dense_gemm="blas"), True

        def make(B, rt=rt):
            out = np.empty((B,) + rt.output_shape, dtype=rt.output_dtype)
            return lambda Xb: rt.predict(Xb, out=out)
        calls[name] = make
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(to_onnx(frozen).SerializeToString(), so, providers=["CPUExecutionProvider"])
    in_name, out_names = sess.get_inputs()[0].name, [sess.get_outputs()[0].name]
    calls["onnxruntime"] = lambda B: (lambda Xb: sess.run(out_names, {in_name: Xb})[0])
    return calls


def check_outputs(frozen, calls, X) -> dict:
    """Max abs difference of each engine's batch output from rtinfer.reference; raises if one
    is off by more than 1e-4 relative (fp32) or one output step (int8)."""
    from rtinfer import reference
    want = reference.run(frozen, X).astype(np.float64)
    step = 1e-4 * max(1.0, float(np.abs(want).max()))
    if frozen.is_quantized:  # one requantization step of the last int8 tensor, through the head
        deq = [layer for layer in frozen.layers if layer.op.name == "DEQUANTIZE"][-1]
        step = max(step, 1.01 * float(deq.attrs["x_scale"]))
    diffs = {}
    for name, make in calls.items():
        got = np.asarray(make(len(X))(X), dtype=np.float64).reshape(want.shape)
        diffs[name] = float(np.abs(got - want).max())
        if diffs[name] > step:
            raise AssertionError(f"{name}: outputs differ from the reference by {diffs[name]} (> {step})")
    return diffs


def time_batches(calls, X, reps: int):
    """({engine: {B: samples/s}} from the median of reps interleaved calls per batch size,
    {engine: {B: median over rounds of onnxruntime's time / the engine's time}})."""
    res = {name: {} for name in calls}
    paired = {name: {} for name in calls}
    for B in BATCHES:
        Xb = np.ascontiguousarray(X[:B])
        fns = {name: make(B) for name, make in calls.items()}
        for fn in fns.values():  # warm-up (builds the BLAS path, touches buffers)
            for _ in range(3):
                fn(Xb)
        times = {name: [] for name in fns}
        order = list(fns)
        for rep in range(reps):
            for name in order[rep % len(order):] + order[:rep % len(order)]:  # rotated each round
                fn = fns[name]
                t0 = time.perf_counter_ns()
                fn(Xb)
                times[name].append(time.perf_counter_ns() - t0)
        t_ort = np.array(times["onnxruntime"], dtype=np.float64)
        for name in fns:
            res[name][B] = B / (float(np.median(times[name])) * 1e-9)
            paired[name][B] = float(np.median(t_ort / np.array(times[name], dtype=np.float64)))
    return res, paired


def layer_times(frozen, X, rounds: int) -> list:
    """Where the time of one B = len(X) batch goes, as lines of text: each rtinfer batch-path row
    run alone (a one-row segment of BatchPath, its inputs left by the previous full run) and
    onnxruntime's own per-node profile (SessionOptions.enable_profiling, the "_kernel_time"
    events), medians over rounds; every round runs onnxruntime once, then rtinfer's full batch
    path and each row, so both see the caches the other engine leaves. Rows that are BLAS steps
    (outside the segments) are listed without a time."""
    import tempfile

    import onnxruntime as ort

    import rtinfer
    from export import to_onnx
    from rtinfer.ops import Op
    from rtinfer.plan import C_NIN, C_NOUT, C_OP

    rt = rtinfer.load(frozen, batch="auto")
    rt.predict(X)  # builds the batch path
    path = rt._blas
    if path is None:
        return ["(no batch path for this model)"]
    n = len(X)
    flat = np.ascontiguousarray(X).reshape(-1)
    Y = np.empty(n * path.out_size, dtype=np.float32)
    prog = rt.plan.program

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(to_onnx(frozen).SerializeToString(), so, providers=["CPUExecutionProvider"])
        in_name = sess.get_inputs()[0].name
        rows = {k: [] for k in path.segment_rows()}
        full = []
        for _ in range(rounds):
            sess.run(None, {in_name: X})
            t0 = time.perf_counter_ns()
            path.run(flat, Y, n)
            full.append(time.perf_counter_ns() - t0)
            for k in rows:
                t0 = time.perf_counter_ns()
                path.run_row(flat, Y, n, k)
                rows[k].append(time.perf_counter_ns() - t0)
        with open(sess.end_profiling()) as fh:
            events = json.load(fh)
    nodes, runs = {}, []
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = f"{e['name'][:-len('_kernel_time')]} ({e['args'].get('op_name', '?')})"
            nodes.setdefault(key, []).append(e["dur"])
        elif e.get("cat") == "Session" and e["name"] == "model_run":
            runs.append(e["dur"])
    lines = [f"rtinfer BatchPath.run: {np.median(full) / 1e3:.0f} us"]
    for k in range(len(prog)):
        what = f"row {k} {Op(int(prog[k, C_OP])).name} {int(prog[k, C_NIN])}x{int(prog[k, C_NOUT])}"
        kind = path.row_kinds.get(k, "")
        t = f"{np.median(rows[k]) / 1e3:.0f} us" if k in rows else "(BLAS step)"
        lines.append(f"  {what} {kind}: {t}")
    lines.append(f"onnxruntime model_run: {np.median(runs):.0f} us" if runs else "onnxruntime model_run: ?")
    for key, v in nodes.items():
        lines.append(f"  {key}: {np.median(v):.0f} us")
    return lines


def _rate(v: float) -> str:
    return f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:.1f} k/s"


def table(results: list) -> str:
    lines = ["| model | engine | B=1 | B=32 | B=256 | B=256 ÷ onnxruntime (paired) |", "|---|---|---|---|---|---|"]
    for r in results:
        for name in ENGINES:
            if name not in r["rates"]:
                continue
            rates = r["rates"][name]
            cells = " | ".join(_rate(rates[B]) for B in BATCHES)
            lines.append(f"| {r['model']} {r['dtype']} | {name} | {cells} | {r['paired'][name][256]:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    ap.add_argument("--reps", type=int, default=51, help="timed calls per engine and batch size")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--blas", action="store_true", help="also time auto with BLAS for DENSE layers")
    ap.add_argument("--allow", action="store_true",
                    help='also time auto with nonfinite="allow" (without the input NaN/inf check)')
    ap.add_argument("--layers", action="store_true",
                    help="instead of the table: per-layer times at B=256, rtinfer rows vs onnxruntime nodes")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    results = []
    for key in args.models:
        for dtype in args.dtypes:
            frozen, X = build(key, dtype)
            if args.layers:
                print(f"## {key} {dtype}")
                print("\n".join(layer_times(frozen, X, args.reps)), flush=True)
                continue
            calls = engines(frozen, blas=args.blas, allow=args.allow)
            diffs = check_outputs(frozen, calls, X)
            rates, paired = time_batches(calls, X, args.reps)
            results.append({"model": key, "dtype": dtype, "rates": rates, "paired": paired,
                            "max_abs_diff_vs_reference": diffs})
            ratio = rates["rtinfer auto"][256] / rates["onnxruntime"][256]
            print(f"{key} {dtype}: auto/onnxruntime at B=256 {ratio:.2f} (paired {paired['rtinfer auto'][256]:.2f})",
                  file=sys.stderr, flush=True)
    if args.layers:
        return 0
    print(table(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"batches": BATCHES, "reps": args.reps, "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
