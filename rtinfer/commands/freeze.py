"""rtinfer freeze CHECKPOINT -o model.rtm [--dtype int8 --calibration X.npy|dataset:NAME]."""

from __future__ import annotations

import argparse

HELP = "freeze a trained checkpoint into an .rtm file (float32, or int8 with calibration)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a model saved by rtinfer.train (model.save / rtinfer train)")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL.rtm", help="the .rtm file to write")
    parser.add_argument("--dtype", choices=("float32", "int8"), default="float32", help="weights and arithmetic (default float32)")
    parser.add_argument("--calibration", metavar="SOURCE",
                        help="int8 calibration inputs: PATH.npy holding an (N, d) float array of raw inputs, "
                             "or dataset:NAME (the training split of a shipped dataset, e.g. dataset:digits)")
    parser.add_argument("--method", choices=("minmax", "percentile"), default="minmax",
                        help="activation range per tensor: min/max or percentiles (default minmax)")
    parser.add_argument("--percentile", type=float, default=99.99,
                        help="with --method percentile: the range is [100 - p, p] percentiles (default 99.99)")
    parser.add_argument("--reduce-range", action="store_true",
                        help="int8 weights in [-63, 63]: for onnxruntime's int8 GEMM on AVX2 CPUs without VNNI, "
                             "which saturates int16 pair sums with full-range weights")


def load_calibration(source: str):
    """PATH.npy or dataset:NAME -> an array of raw inputs (validated later against the model)."""
    import numpy as np

    if source.startswith("dataset:"):
        from rtinfer.train import datasets

        name = source[len("dataset:"):]
        try:
            return datasets.load(name).X_train
        except KeyError:
            raise ValueError(f"unknown dataset {name!r} in --calibration; known: {', '.join(datasets.NAMES)}") from None
    if not source.endswith(".npy"):
        raise ValueError(f"--calibration must be PATH.npy or dataset:NAME, got {source!r}")
    return np.load(source, allow_pickle=False)


def run(args: argparse.Namespace) -> int:
    import export
    from rtinfer.train import load_model

    if args.dtype == "int8" and not args.calibration:
        raise ValueError("--dtype int8 needs --calibration PATH.npy or dataset:NAME")
    model = load_model(args.checkpoint)
    calibration = load_calibration(args.calibration) if args.dtype == "int8" else None
    frozen = export.freeze(model, dtype=args.dtype, calibration=calibration, method=args.method,
                           percentile=args.percentile, reduce_range=args.reduce_range)
    frozen.save(args.output)
    import os

    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes): {args.dtype}, "
          f"{len(frozen.layers)} layers, {frozen.n_params} params, {frozen.macs} MACs"
          + (f", calibration {frozen.meta.get('calibration')} on {frozen.meta.get('calibration_samples')} samples"
             if args.dtype == "int8" else ""))
    return 0
