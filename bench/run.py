"""Side-by-side embedded-inference benchmark: rtinfer against the engines a user would pick instead.

    python -m bench                 # full run: every model, fp32 and int8, writes bench/RESULTS.md + PNGs
    python -m bench --quick         # smoke run (under a minute), written to a fresh scratch folder
    python -m bench --quick --out bench   # a smoke run that does overwrite bench/RESULTS.md
    python bench/run.py --out /tmp/b --models 16-32-4 --n 200 --startup warm --no-training

For every model (bench.suite_models) and every engine (bench.suite_engines), all in one process:
1. cross-check: every engine's outputs against rtinfer's reference executor (CrossCheckError,
   exit code 3, on a mismatch beyond tolerance) before anything is timed;
2. the limit: time to stream the model's weight bytes once and the compute time of its MACs at
   the measured peak (bench.suite_limits);
3. per-sample latency, engines interleaved in round-robin chunks of --chunk samples (the order
   rotates every chunk; each engine runs --warmup untimed samples at the start of its chunk), so
   drift and noise from other processes hit all engines alike;
4. throughput at batch 1, 32 and 256 (median call time, engines interleaved call by call);
then start-up times in fresh processes (cold: empty NUMBA_CACHE_DIR, so the interpreter compiles;
warm: this process's own cache, already filled), and the training comparison of bench/bench_train.py.
Thread counts: BLAS, OpenMP, onnxruntime and torch are pinned to one thread (per-core figures).
"""

from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a script: python bench/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
STARTUP_MODES = ("cold", "warm", "none")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: fewer samples and repeats (under a minute)")
    p.add_argument("--out", default=None, help="output directory for RESULTS.md and the PNGs (default: the "
                                               "bench/ folder for a full run; with --quick a new scratch folder "
                                               "under the system temp folder, so a smoke run never overwrites the "
                                               "committed results)")
    p.add_argument("--models", nargs="+", metavar="KEY", help="model keys (default: all); see bench.suite_models.SPECS")
    p.add_argument("--dtypes", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    p.add_argument("--engines", nargs="+", metavar="NAME",
                   help="engine names (default: all): rtinfer-in-loop rtinfer-predict-one rtinfer-batch "
                        "onnxruntime numpy torch tract (spaces, hyphens and underscores interchangeable)")
    p.add_argument("--n", type=int, help="timed samples per engine and model (default 10000; quick 1000)")
    p.add_argument("--chunk", type=int, help="samples per round-robin chunk (default 500; quick 250)")
    p.add_argument("--warmup", type=int, default=20, help="untimed samples per engine at each chunk start")
    p.add_argument("--check", type=int, default=64, help="samples cross-checked against the reference")
    p.add_argument("--startup", choices=STARTUP_MODES,
                   help="start-up measurement: cold (fresh Numba cache, then warm), warm only, or none "
                        "(default cold; quick: warm)")
    p.add_argument("--no-training", action="store_true", help="skip the training comparison")
    p.add_argument("--train-epochs", type=int, help="epochs for the digits model (default 20; quick 10)")
    p.add_argument("--no-plots", action="store_true", help="do not write PNGs")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE")
    return p


def _settings(args) -> dict:
    quick = args.quick
    s = {
        "quick": quick,
        "n": args.n if args.n is not None else (1000 if quick else 10000),
        "chunk": args.chunk if args.chunk is not None else (250 if quick else 500),
        "warmup": args.warmup,
        "check": args.check,
        "train_epochs": args.train_epochs if args.train_epochs is not None else (10 if quick else 20),
        "throughput_seconds": 0.02 if quick else 0.15,   # target time per engine and batch size
        "limit_passes": 50 if quick else 300,
        "startup": args.startup or ("warm" if quick else "cold"),
        "startup_warm_runs": 1 if quick else 3,
    }
    for key in ("n", "chunk", "check", "train_epochs"):
        if s[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {s[key]}")
    if s["warmup"] < 0:
        raise ValueError(f"--warmup must be >= 0, got {s['warmup']}")
    return s


def latency_interleaved(engines, X, chunk: int, warmup: int) -> dict:
    """{engine name: (N,) int64 ns}: every engine times every sample of X, in round-robin chunks."""
    import numpy as np
    n = len(X)
    times = {e.name: np.empty(n, dtype=np.int64) for e in engines}
    for k, lo in enumerate(range(0, n, chunk)):
        hi = min(n, lo + chunk)
        Xc = X[lo:hi]
        order = engines[k % len(engines):] + engines[:k % len(engines)]
        for e in order:
            times[e.name][lo:hi] = e.time_samples(Xc, warmup)
    return times


def throughput_interleaved(engines, X, batch_sizes, seconds: float, p50_hint_us: float) -> dict:
    """{engine: {B: samples per second}} from the median time of one call on a batch of B."""
    import time

    import numpy as np
    out = {e.name: {} for e in engines}
    for B in batch_sizes:
        idx = np.arange(B) % len(X)
        Xb = np.ascontiguousarray(X[idx])
        calls = [(e.name, e.batch_call(B)) for e in engines]
        calls = [(name, f) for name, f in calls if f is not None]
        if not calls:
            continue
        for _, f in calls:  # warm: first call on this shape (tract/ORT shape-specific paths)
            f(Xb)
            f(Xb)
        est = max(p50_hint_us * B * 1e-6 * len(calls), 1e-6)
        reps = int(min(400, max(7, seconds / est)))
        per = {name: np.empty(reps, dtype=np.float64) for name, _ in calls}
        clock = time.perf_counter_ns
        for r in range(reps):
            for name, f in (calls[r % len(calls):] + calls[:r % len(calls)]):
                t0 = clock()
                f(Xb)
                per[name][r] = clock() - t0
        for name, t in per.items():
            out[name][B] = B / (float(np.median(t)) * 1e-9)
    return out


def paired_speedups(pairs: dict, rounds: int) -> dict:
    """{key: fp32 p50 / int8 p50 measured side by side}: pairs maps a model key to two callables,
    each timing one in-loop pass of that dtype and returning its p50 (us); they alternate round by
    round (fp32 first in even rounds), so a change in the machine's speed hits both dtypes of a
    round alike. The speed-up is the median of the per-round ratios."""
    import numpy as np
    out = {}
    for key, (time_fp32, time_int8) in pairs.items():
        f, q = [], []
        for r in range(rounds):
            for which in ((0, 1) if r % 2 == 0 else (1, 0)):
                (f if which == 0 else q).append(float((time_fp32, time_int8)[which]()))
        f, q = np.array(f), np.array(q)
        out[key] = {"fp32_p50_us": float(np.median(f)), "int8_p50_us": float(np.median(q)),
                    "speedup": float(np.median(f / q)), "rounds": rounds}
    return out


def _int8_pairs(models, rounds: int, n: int) -> dict:
    """paired_speedups of every model built in both dtypes: rtinfer in-loop p50 over the first n
    samples, a fresh Runtime per dtype."""
    import numpy as np

    import rtinfer
    by_key = {}
    for bm in models:
        by_key.setdefault(bm.spec.key, {})[bm.dtype] = bm
    pairs = {}
    for key, d in by_key.items():
        if "fp32" not in d or "int8" not in d:
            continue
        calls = []
        for dt in ("fp32", "int8"):
            rt = rtinfer.load(d[dt].frozen)
            X = d[dt].X[:n]

            def p50(rt=rt, X=X):
                return float(np.percentile(rt.measure(X, budget_us=1e9, warmup=min(50, len(X))).samples_us, 50))
            p50()  # compiled and warm before the first round
            calls.append(p50)
        pairs[key] = tuple(calls)
    return paired_speedups(pairs, rounds)


def latency_stats(ns, budget_us: float) -> dict:
    import numpy as np
    us = np.asarray(ns, dtype=np.float64) / 1000.0
    return {"n": int(us.size), "mean_us": float(us.mean()), "p50_us": float(np.percentile(us, 50)),
            "p99_us": float(np.percentile(us, 99)), "p999_us": float(np.percentile(us, 99.9)),
            "max_us": float(us.max()), "misses": int(np.count_nonzero(us > budget_us))}


def per_op_breakdown(rt, X, budget_us: float) -> list:
    """Per-op p50 (us) of rtinfer in-loop from a separate timed pass; share = p50 / sum of p50s;
    kernel: the kernel path a convolution or dense row runs (Plan.row_kernels), else ""."""
    n = min(len(X), 2000)
    rep = rt.measure(X[:n], budget_us=budget_us, warmup=min(200, n), mode="in-loop", per_layer=True)
    total = sum(r["p50_us"] for r in rep.per_layer) or 1.0
    kernels = dict(zip(rt.plan.row_labels, rt.plan.row_kernels()))
    return [{"label": r["label"], "p50_us": r["p50_us"], "share": r["p50_us"] / total,
             "kernel": kernels.get(r["label"], "")} for r in rep.per_layer]


def bench_model(bm, settings, engine_names, workdir, peaks, log) -> tuple[dict, dict]:
    """Everything measured on one model: (record for the report, per-engine latency samples in ns)."""
    import numpy as np

    from bench.suite_engines import BATCH_SIZES, cross_check, make_engines
    from bench.suite_limits import ComputeProbe, StreamProbe, model_limit, stream_ns

    engines, skipped, rt = make_engines(bm, engine_names, workdir)
    checks = cross_check(bm, engines, settings["check"])
    log(f"  {bm.name}: cross-check ok ({len(checks)} comparisons); engines: {', '.join(e.name for e in engines)}")
    # the limit: pick the faster read pattern, then sample it inside the round-robin with the engines,
    # and the compute peak's drift beside it (the machine's speed while this model ran)
    stream = stream_ns(rt, settings["limit_passes"])
    probe = StreamProbe(rt, stream["pattern"])
    cprobe = ComputeProbe(bm.dtype)
    times = latency_interleaved(engines + [probe, cprobe], bm.X, settings["chunk"], settings["warmup"])
    stream["median_ns"] = float(np.median(times.pop(probe.name)))
    limit = model_limit(rt, bm.dtype, peaks, stream, float(np.median(times.pop(cprobe.name))))
    lat = {e.name: dict(latency_stats(times[e.name], bm.budget_us), kind=e.kind) for e in engines}
    hint = min(v["p50_us"] for v in lat.values())
    tput = throughput_interleaved(engines, bm.X, BATCH_SIZES, settings["throughput_seconds"], hint)
    rtm_path = os.path.join(workdir, f"{bm.file_key}.rtm")
    bm.frozen.save(rtm_path)
    fz = bm.frozen
    record = {
        "name": bm.name, "key": bm.spec.key, "dtype": bm.dtype, "role": bm.spec.role, "cnn": bm.spec.cnn,
        "sizes": list(bm.spec.sizes), "budget_us": bm.budget_us, "n_layers": len(fz.layers),
        "params": int(fz.n_params), "frozen_weight_bytes": int(fz.weight_bytes),
        "plan_weight_bytes": int(rt.weight_bytes), "arena_bytes": int(rt.arena_bytes),
        "batch_arena_bytes": int(rt.plan.batch_arena_bytes), "macs": int(fz.macs),
        "rtm_bytes": os.path.getsize(rtm_path), "rtm_path": rtm_path, "info": dict(bm.info),
        "limit": limit, "skipped": dict(skipped), "crosscheck": checks, "latency": lat,
        "throughput": {k: {str(b): v for b, v in d.items()} for k, d in tput.items()},
        "per_op": per_op_breakdown(rt, bm.X, bm.budget_us) if "rtinfer in-loop" in lat else [],
    }
    return record, times


def output_dir(args) -> str:
    """--out, else bench/ for a full run, else a new scratch folder for --quick."""
    if args.out is not None:
        return args.out
    if args.quick:
        import tempfile
        return tempfile.mkdtemp(prefix="rtinfer-bench-quick-")
    return BENCH_DIR


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        from bench.suite_engines import CrossCheckError, check_engine_names
        from bench.suite_models import check_dtypes, select_specs
        specs = select_specs(args.models)
        dtypes = check_dtypes(args.dtypes)
        engine_names = check_engine_names(args.engines)
        args.out = output_dir(args)
    except ValueError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    try:
        argv_list = list(sys.argv[1:] if argv is None else argv)
        return _run(args, settings, specs, dtypes, engine_names, argv_list)
    except CrossCheckError as exc:
        print(f"bench: CROSS-CHECK FAILED: {exc}", file=sys.stderr)
        return 3


def _run(args, settings, specs, dtypes, engine_names, argv_list) -> int:
    import datetime
    import tempfile
    import time

    from bench.suite_limits import interpreter_floor, machine_info, measure_peaks
    from bench.suite_models import build_models
    from bench.suite_report import evaluate_targets, write_plots, write_report
    from bench.suite_startup import StartupError, measure_kinds, measure_startup, training_comparison

    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    os.makedirs(args.out, exist_ok=True)
    log(f"writing RESULTS.md{'' if args.no_plots else ' and plots'} to {args.out}")
    machine = machine_info()
    log(f"machine: {machine['cpu']}, {machine['cores']} cores, L2 {machine['L2'] // 1024} KiB; "
        f"load {machine['loadavg_start']}")
    peaks = measure_peaks(quick=settings["quick"])
    peaks.update(interpreter_floor(2000 if settings["quick"] else 20000))
    log(f"peaks: fp32 {peaks['fp32_gflops']:.1f} GFLOP/s, int8 {peaks['int8_gmacs_njit']:.1f} GMAC/s (njit)")
    models = build_models(specs, dtypes, n_samples=settings["n"], train_epochs=settings["train_epochs"])
    log(f"built {len(models)} models")
    records, samples = [], {}
    with tempfile.TemporaryDirectory(prefix="rtinfer-bench-") as workdir:
        for bm in models:
            rec, times = bench_model(bm, settings, engine_names, workdir, peaks, log)
            records.append(rec)
            samples[bm.name] = times
            lat = rec["latency"]
            log("  " + bm.name + ": p50 " + ", ".join(f"{k} {v['p50_us']:.2f}" for k, v in lat.items()) + " us")
        int8_pairs = _int8_pairs(models, rounds=5 if settings["quick"] else 9, n=min(300, settings["n"]))
        if int8_pairs:
            log("int8 vs fp32 side by side: " + ", ".join(f"{k} {v['speedup']:.2f}x" for k, v in int8_pairs.items()))
        startup = {}
        if settings["startup"] != "none":
            paths = [r["rtm_path"] for r in records if r["key"] == "784-128-64-10"] or [records[0]["rtm_path"]]
            try:
                startup = measure_startup(paths, cold=settings["startup"] == "cold",
                                          warm_runs=settings["startup_warm_runs"])
                if settings["startup"] == "cold":  # a cold/warm row per model kind (interpreter variant)
                    startup["kinds"] = measure_kinds(warm_runs=settings["startup_warm_runs"])
                log(f"start-up measured ({settings['startup']})")
            except StartupError as exc:  # reported, not fatal: the latency figures stand on their own
                startup = {"error": str(exc)}
                log(f"start-up measurement failed: {exc}")
    training = None
    if not args.no_training:
        training = training_comparison(quick=settings["quick"])
        log("training comparison done")
    try:
        load_end = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load_end = []
    results = {
        "meta": {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "command": " ".join(["python -m bench"] + [repr(a) if " " in a else a for a in argv_list]),
                 "settings": settings, "dtypes": list(dtypes), "engines": list(engine_names),
                 "machine": machine, "loadavg_end": load_end,
                 "wall_seconds": time.perf_counter() - t_start},
        "peaks": peaks, "models": records, "startup": startup, "training": training, "int8_pairs": int8_pairs,
    }
    results["targets"] = evaluate_targets(results)
    if not args.no_plots:
        results["plots"] = write_plots(results, samples, args.out)
    write_report(results, args.out, json_path=args.json)
    log(f"wrote {os.path.join(args.out, 'RESULTS.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
