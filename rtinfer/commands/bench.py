"""rtinfer bench MODEL --budget-us N: per-sample latency of a .rtm/.onnx model against a budget.

What onnxruntime_perf_test / TFLite benchmark_model users look for: a sample count, a duration
or a repeat count; thread count and CPU pinning; batch (throughput) mode; init time and the
first (cold) inference; peak RSS; the machine, its CPU features and load; inputs from a file or
a shipped dataset; JSON with versions and, on request, the raw samples; a tail plot.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from rtinfer.commands._common import (UsageError, check_input_file, check_output_path, cpu_list, int_at_least,
                                      load_array, output_format, percentile_arg, positive_float)

HELP = "measure per-sample latency of a .rtm/.onnx model against a budget (exit 1 on a miss)"

DESCRIPTION = """\
Measure the latency of a .rtm or .onnx model against a real-time budget: warm-up, then --n timed
samples (or --duration seconds, or --repeat passes), judged at --percentile.

modes:
  in-loop  each sample timed inside compiled code (clock_gettime): what an embedded loop sees
  call     one Python predict_one call per sample: what a Python host sees
  batch    one predict call per batch of --batch-size samples (throughput mode; the budget
           applies to one call)

The percentile needs samples: with fewer than 10 / (1 - p/100) timed samples (10000 for p99.9,
1000 for p99) fewer than 10 lie above it, and a warning says the figure is noisy (or is just
the maximum, below 1 / (1 - p/100))."""

EPILOG = """\
exit codes:
  0    the latency at --percentile is within --budget-us (PASS)
  1    it is not (FAIL)
  2    usage, file or model error (nothing is measured; output paths are checked first)
  130  interrupted (Ctrl-C)

examples:
  rtinfer bench model.rtm --budget-us 50
  rtinfer bench model.rtm --budget-us 50 --duration 10 --cpu 1 --json r.json --samples --plot tail.png
  rtinfer bench model.onnx --budget-us 2000 --mode batch --batch-size 64 --input dataset:digits"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file (.rtm or .onnx)")
    g = parser.add_argument_group("what is judged")
    g.add_argument("--budget-us", type=positive_float, required=True, metavar="US",
                   help="latency budget per sample (per call in batch mode), in microseconds")
    g.add_argument("--percentile", type=percentile_arg, default=99.9, metavar="P",
                   help="percentile judged against the budget")
    g = parser.add_argument_group("how long")
    g.add_argument("--n", type=int_at_least(1), default=10000,
                   help="timed samples per pass (timed calls in batch mode)")
    g.add_argument("--warmup", type=int_at_least(0), default=1000, metavar="N",
                   help="untimed warm-up samples before timing")
    g.add_argument("--repeat", type=int_at_least(1), default=1, metavar="R",
                   help="timed passes of --n samples, pooled into one report (the spread per pass is shown)")
    g.add_argument("--duration", type=positive_float, default=None, metavar="SECONDS",
                   help="repeat timed passes of --n samples until this many seconds have passed "
                        "(instead of --repeat)")
    g = parser.add_argument_group("how")
    g.add_argument("--mode", choices=["in-loop", "call", "batch"], default="in-loop",
                   help="in-loop: timed inside compiled code; call: one Python predict_one call per sample; "
                        "batch: one predict call per batch")
    g.add_argument("--batch-size", type=int_at_least(1), default=None, metavar="B",
                   help="samples per call with --mode batch (default 32)")
    g.add_argument("--threads", type=int_at_least(1), default=None, metavar="T",
                   help="threads of the BLAS/OpenMP pools the batch path may use (needs threadpoolctl); "
                        "rtinfer's per-sample kernels always run on one thread (default: leave the pools as they are)")
    g.add_argument("--cpu", type=cpu_list, default=None, metavar="LIST",
                   help="pin the process to these CPUs while measuring (os.sched_setaffinity), e.g. 1 or 0,2 or 1-3 "
                        "(default: no pinning)")
    g.add_argument("--per-layer", action="store_true", help="add a per-op time breakdown (in-loop, one more pass)")
    g = parser.add_argument_group("inputs")
    g.add_argument("--input", metavar="SOURCE",
                   help="samples (N, *input_shape), reused cyclically: PATH.npy or PATH.npz[:KEY] holding float32, "
                        "or dataset:NAME (a shipped dataset's training split, cast to float32) "
                        "(default: seeded N(0, 1) noise)")
    g.add_argument("--seed", type=int, default=0, help="seed of the random inputs used without --input")
    g = parser.add_argument_group("outputs (checked before anything runs)")
    g.add_argument("--json", metavar="FILE.json",
                   help="write the report, the model, the machine, versions and settings as JSON")
    g.add_argument("--samples", action="store_true", help="include every timed sample (us) in the JSON")
    g.add_argument("--plot", metavar="FILE.png|.svg|.pdf",
                   help="write the tail (1 - CDF, log-log) and log-x histogram plot; the extension says the "
                        "format (needs matplotlib)")
    g.add_argument("--quiet", action="store_true", help="print only the verdict line and warnings")


def _check_args(args) -> None:
    """Everything that can be refused before loading anything."""
    from rtinfer.latency import check_plot_path

    check_input_file(args.model, "MODEL", "model file")
    output_format(args.model, {".rtm": "rtm", ".onnx": "onnx"}, "MODEL", "to read")
    if args.duration is not None and args.repeat != 1:
        raise UsageError("give --duration or --repeat, not both")
    if args.batch_size is not None and args.mode != "batch":
        raise UsageError("--batch-size applies to --mode batch only")
    if args.per_layer and args.mode == "batch":
        raise UsageError("--per-layer applies to --mode in-loop or call, not batch")
    if args.samples and not args.json:
        raise UsageError("--samples adds the raw samples to --json FILE; give --json too")
    if args.json:
        output_format(args.json, {".json": "json"}, "--json")
        check_output_path(args.json, "--json")
    if args.plot:
        try:
            check_plot_path(args.plot)
        except ValueError as exc:
            raise UsageError(f"--plot: {exc}") from None
        check_output_path(args.plot, "--plot")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib (pip install matplotlib)") from None
    if args.threads is not None:
        try:
            import threadpoolctl  # noqa: F401
        except ImportError:
            raise UsageError("--threads needs threadpoolctl (pip install threadpoolctl)") from None
    if args.cpu is not None:
        if not hasattr(os, "sched_setaffinity"):
            raise UsageError("--cpu needs os.sched_setaffinity (Linux)")
        allowed = os.sched_getaffinity(0)
        bad = [c for c in args.cpu if c not in allowed]
        if bad:
            raise UsageError(f"--cpu {','.join(map(str, bad))}: not available to this process "
                             f"(allowed: {','.join(map(str, sorted(allowed)))})")


def _inputs(args, rt):
    """(X (n, *input_shape) float32 C-contiguous, description)."""
    import numpy as np

    n = args.n * (args.batch_size or 32) if args.mode == "batch" else args.n
    if not args.input:
        X = np.random.default_rng(args.seed).standard_normal((n,) + rt.input_shape).astype(np.float32)
        return X, f"seeded N(0, 1) noise (seed {args.seed})"
    src = load_array(args.input, "--input")
    if args.input.startswith("dataset:"):
        src = src.astype(np.float32)
        what = f"{args.input} (training split, {len(src)} samples, cast to float32)"
    else:
        if src.dtype != np.float32:
            raise UsageError(f"--input must hold float32 samples, got {src.dtype} "
                             f"(convert once with X.astype(np.float32); inputs are never converted silently)")
        what = f"{args.input} ({len(src)} samples)"
    want = ", ".join(map(str, rt.input_shape))
    if src.ndim < 1 or len(src) == 0 or not (src.shape[1:] == rt.input_shape or src.shape[1:] == (rt.in_size,)):
        raise UsageError(f"--input must have shape (N, {want}) with N >= 1, got {src.shape}")
    src = src.reshape((len(src),) + rt.input_shape)
    idx = np.arange(n) % len(src)
    return np.ascontiguousarray(src[idx]), what


def _first_inference_us(rt, X, mode, batch_size) -> float:
    """The first call after load, timed from Python: cold (it may load or compile the entry point)."""
    import numpy as np

    clock = time.perf_counter_ns
    if mode == "call":
        t0 = clock()
        rt.predict_one(X[0])
    elif mode == "batch":
        B = batch_size or 32
        Xb = np.ascontiguousarray(X[np.arange(B) % len(X)])
        t0 = clock()
        rt.predict(Xb)
    else:
        t0 = clock()
        rt.stream(X[:1])
    return (clock() - t0) / 1000.0


def _model_info(path, rt) -> dict:
    frozen = rt.frozen
    return {"path": path, "format": os.path.splitext(path)[1].lower().lstrip("."),
            "file_bytes": os.path.getsize(path), "input_shape": list(rt.input_shape),
            "output_shape": list(rt.output_shape), "output_dtype": str(rt.output_dtype),
            "ops": int(rt.plan.n_ops), "macs": int(rt.macs), "arena_bytes": int(rt.arena_bytes),
            "weights_stored_bytes": int(frozen.weight_bytes) if frozen is not None else None,
            "weights_packed_bytes": int(rt.plan.weight_bytes)}


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    import contextlib
    import json

    import rtinfer
    from rtinfer.commands import _machine
    from rtinfer.compile_notice import compile_notice
    from rtinfer.latency import measure

    say = (lambda *a: None) if args.quiet else print
    machine = _machine.machine_info()
    load_start = machine["loadavg"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(compile_notice())
        if args.cpu is not None:  # pinned for the whole run; restored afterwards (in-process callers)
            before = os.sched_getaffinity(0)
            os.sched_setaffinity(0, args.cpu)
            stack.callback(os.sched_setaffinity, 0, before)
        if args.threads is not None:
            from threadpoolctl import threadpool_limits
            stack.enter_context(threadpool_limits(limits=args.threads))
        t0 = time.perf_counter()
        rt = rtinfer.load(args.model)
        init_ms = (time.perf_counter() - t0) * 1e3
        X, what = _inputs(args, rt)
        first_us = _first_inference_us(rt, X, args.mode, args.batch_size)
        report = measure(rt, X, budget_us=args.budget_us, warmup=args.warmup, percentile=args.percentile,
                         mode=args.mode, per_layer=args.per_layer, repeat=args.repeat, duration_s=args.duration,
                         batch_size=args.batch_size, model=args.model)
        threads = _machine.blas_threads()
        affinity = _machine.affinity()
    peak = _machine.peak_rss_bytes()
    load_end = _machine.loadavg()
    info = _model_info(args.model, rt)
    cores = len(affinity or []) or machine["cores"] or 1
    if load_end and load_end[0] > 0.5 * (machine["cores"] or 1):
        report.warnings.append(f"load average {load_end[0]} on {machine['cores']} cores: other processes "
                               f"compete for the CPU and inflate the tail")

    say(f"model     {args.model} ({info['format']}, {info['file_bytes']} B): input {tuple(rt.input_shape)} -> "
        f"output {tuple(rt.output_shape)} {rt.output_dtype}, {info['ops']} ops")
    pinned = f"pinned to CPU {','.join(map(str, args.cpu))}" if args.cpu else "not pinned"
    say(f"machine   {machine['cpu']}; {machine['cores']} cores, {cores} usable ({pinned}); "
        f"features {' '.join(machine['features']) or 'unknown'}; load {load_start} -> {load_end}")
    blas = ", ".join(f"{t['lib']} {t['threads']}" for t in threads) if threads else "unknown (no threadpoolctl)"
    say(f"threads   rtinfer kernels 1; BLAS/OpenMP pools: {blas}")
    say(f"inputs    {what}")
    entry = {"in-loop": "stream", "call": "predict_one", "batch": "predict"}[args.mode]
    rss = f"{peak / 2**20:.1f} MiB" if peak else "unknown"
    first = f"{first_us / 1000:.1f} ms" if first_us >= 10000 else f"{first_us:.1f} us"
    say(f"start-up  init (load) {init_ms:.1f} ms; first inference {first} (one {entry} call "
        f"right after load: cold); peak RSS {rss}")
    if args.quiet:
        print(f"p{report.percentile:g} = {report.at_percentile_us:.2f} us vs budget {report.budget_us:g} us: "
              f"{report.verdict}")
        for w in report.warnings:
            print(f"warning: {w}", file=sys.stderr)
    else:
        print(report)
    if args.json:
        d = report.to_dict(samples=args.samples)
        d.update({
            "model_info": info, "inputs": what, "versions": _machine.versions(),
            "machine": dict(machine, loadavg_start=load_start, loadavg_end=load_end),
            "settings": {"warmup": args.warmup, "repeat": args.repeat, "duration_s": args.duration,
                         "n_per_pass": args.n, "cpu": args.cpu, "threads": args.threads, "blas_threads": threads,
                         "seed": args.seed},
            "init_ms": init_ms, "first_inference_us": first_us, "peak_rss_bytes": peak,
        })
        _write_text(args.json, json.dumps(d, indent=2) + "\n")
    if args.plot:
        report.plot(args.plot)
    return 0 if report.passed else 1


def _write_text(path, text: str) -> None:
    """Atomically (temp file, fsync, rename), as rtinfer writes model files."""
    from rtinfer._atomic import atomic_write

    data = text.encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data))
