"""rtinfer bench MODEL --budget-us N: per-sample latency of a .rtm/.onnx model against a budget.

Exit code 0 when the latency at --percentile is within the budget, 1 when it is not,
2 for usage or file errors.
"""

from __future__ import annotations

import argparse
import sys

HELP = "measure per-sample latency of a .rtm/.onnx model against a budget (exit 1 on a miss)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file (.rtm or .onnx)")
    parser.add_argument("--budget-us", type=float, required=True, help="latency budget per sample (microseconds)")
    parser.add_argument("--percentile", type=float, default=99.9, help="percentile judged against the budget")
    parser.add_argument("--n", type=int, default=10000, help="timed samples (default 10000)")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed warm-up samples (default 1000)")
    parser.add_argument("--mode", choices=["in-loop", "call"], default="in-loop",
                        help="in-loop: timed inside compiled code; call: one Python predict_one call per sample")
    parser.add_argument("--per-layer", action="store_true", help="add a per-op time breakdown")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--plot", metavar="FILE", help="write a histogram + CDF PNG (needs matplotlib)")
    parser.add_argument("--input", metavar="X.npy",
                        help="float32 samples (N, *input_shape), reused cyclically; default: seeded N(0, 1) noise")
    parser.add_argument("--seed", type=int, default=0, help="seed of the default random inputs")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from rtinfer.runtime import load

    if args.n <= 0:
        raise ValueError(f"--n must be positive, got {args.n}")
    rt = load(args.model)
    if args.input:
        X = np.load(args.input, allow_pickle=False)
        if X.dtype != np.float32:
            raise ValueError(f"--input must hold float32 samples, got {X.dtype}")
        if X.shape[1:] != rt.input_shape or len(X) == 0:
            raise ValueError(f"--input must have shape (N, {', '.join(map(str, rt.input_shape))}), got {X.shape}")
        reps = -(-args.n // len(X))
        X = np.ascontiguousarray(np.concatenate([X] * reps)[:args.n])
    else:
        X = np.random.default_rng(args.seed).standard_normal((args.n,) + rt.input_shape).astype(np.float32)
    report = rt.measure(X, budget_us=args.budget_us, warmup=args.warmup, percentile=args.percentile,
                        mode=args.mode, per_layer=args.per_layer)
    print(f"model {args.model}: {rt}")
    print(report)
    if args.json:
        report.to_json(args.json)
    if args.plot:
        try:
            report.plot(args.plot)
        except ImportError as exc:
            print(f"rtinfer bench: --plot skipped: {exc}", file=sys.stderr)
            return 2
    return 0 if report.passed else 1
