"""rtinfer freeze CHECKPOINT -o MODEL.rtm|MODEL.onnx [--dtype int8 --calibration SOURCE].

The extension of -o says the format: .rtm (rtinfer's file) or .onnx (export.to_onnx); any other
extension is refused before anything is loaded.
"""

from __future__ import annotations

import argparse
import os

from rtinfer.commands._common import UsageError, check_input_file, load_array, output_format, percentile_arg, sniff

HELP = "freeze a trained checkpoint into an .rtm or .onnx file (float32, or int8 with calibration)"
OUTPUT_SUFFIXES = (".rtm", ".onnx")
_FORMATS = {".rtm": "rtm", ".onnx": "onnx"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a training checkpoint (.npz) saved by rtinfer train / model.save")
    parser.add_argument("-o", "--output", metavar="FILE.rtm|.onnx",
                        help="the file to write (atomically); its extension says the format")
    parser.add_argument("--dtype", choices=("float32", "int8"), default="float32", help="weights and arithmetic")
    parser.add_argument("--calibration", metavar="SOURCE",
                        help="int8 calibration inputs: PATH.npy (or PATH.npz[:KEY]) holding an (N, d) float array "
                             "of raw inputs, or dataset:NAME (the training split of a shipped dataset, e.g. "
                             "dataset:digits)")
    parser.add_argument("--method", choices=("minmax", "percentile"), default="minmax",
                        help="activation range per tensor: min/max or percentiles")
    parser.add_argument("--percentile", type=percentile_arg, default=99.99, metavar="P",
                        help="with --method percentile: the range is [100 - p, p] percentiles")
    parser.add_argument("--reduce-range", action="store_true",
                        help="int8 weights in [-63, 63]: for onnxruntime's int8 GEMM on AVX2 CPUs without VNNI, "
                             "which saturates int16 pair sums with full-range weights")
    parser.add_argument("--weights", choices=("int8", "uint8"), default="int8",
                        help="with -o FILE.onnx and --dtype int8: how the int8 weights are stored (see rtinfer convert)")


def load_calibration(source: str):
    """PATH.npy, PATH.npz[:KEY] or dataset:NAME -> an array of raw inputs (validated later
    against the model)."""
    return load_array(source, "--calibration")


def check_checkpoint(path: str) -> None:
    """Say what the file is when it is not a checkpoint, instead of how a loader choked on it."""
    check_input_file(path, "CHECKPOINT")
    kind = sniff(path)
    if kind == "npz":
        return
    if kind == "rtm":
        raise UsageError(f"CHECKPOINT {path!r} is an .rtm model, already frozen; freeze takes a training "
                         f"checkpoint (.npz from rtinfer train); to get ONNX from it: rtinfer convert {path} MODEL.onnx")
    if kind == "onnx" or path.lower().endswith(".onnx"):
        raise UsageError(f"CHECKPOINT {path!r} is an ONNX model; freeze takes a training checkpoint (.npz from "
                         f"rtinfer train); to get .rtm from it: rtinfer convert {path} MODEL.rtm")
    if kind == "npy":
        raise UsageError(f"CHECKPOINT {path!r} is a single .npy array, not a training checkpoint (.npz from "
                         f"rtinfer train)")
    raise UsageError(f"CHECKPOINT {path!r} is not a training checkpoint: an .npz (zip) archive from rtinfer "
                     f"train was expected, and this file is {'empty' if kind == 'empty' else 'not a zip archive'}")


def run(args: argparse.Namespace) -> int:
    import export
    from rtinfer.train import load_model

    fmt = output_format(args.output, _FORMATS, "-o/--output")
    if args.dtype == "int8" and not args.calibration:
        raise UsageError("--dtype int8 needs --calibration PATH.npy or dataset:NAME")
    if args.calibration and args.dtype != "int8":
        raise UsageError("--calibration applies to --dtype int8 only")
    if args.weights != "int8" and (fmt != "onnx" or args.dtype != "int8"):
        raise UsageError("--weights applies to -o FILE.onnx with --dtype int8 only")
    check_checkpoint(args.checkpoint)
    if fmt == "onnx":
        from export.onnx_export import to_onnx  # needs onnx: refused (exit 2) before any work if missing
    model = load_model(args.checkpoint)
    calibration = load_calibration(args.calibration) if args.dtype == "int8" else None
    frozen = export.freeze(model, dtype=args.dtype, calibration=calibration, method=args.method,
                           percentile=args.percentile, reduce_range=args.reduce_range)
    if fmt == "onnx":
        to_onnx(frozen, args.output, weight_dtype=args.weights)
    else:
        frozen.save(args.output)
    print(f"wrote {args.output} ({fmt}, {os.path.getsize(args.output)} bytes): {args.dtype}, "
          f"{len(frozen.layers)} layers, {frozen.n_params} params, {frozen.macs} MACs, "
          f"weights (stored) {frozen.weight_bytes} B"
          + (f", calibration {frozen.meta.get('calibration')} on {frozen.meta.get('calibration_samples')} samples"
             if args.dtype == "int8" else ""))
    return 0
