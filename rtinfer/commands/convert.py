"""rtinfer convert SRC [DST | -o DST]: .onnx -> .rtm (export.from_onnx) or .rtm -> .onnx (export.to_onnx).

    rtinfer convert model.onnx model.rtm [--graph-output probabilities]
    rtinfer convert model.rtm -o model.onnx [--weights uint8]
"""

from __future__ import annotations

import argparse
import os

from rtinfer.commands._common import UsageError, check_input_file, check_output_path, output_format

HELP = "convert between ONNX (.onnx) and rtinfer (.rtm) model files"
_FORMATS = {".onnx": "onnx", ".rtm": "rtm"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="an .onnx or .rtm file")
    parser.add_argument("dst", metavar="DST", nargs="?", default=None,
                        help="the .rtm or .onnx file to write (atomically); or give it with -o")
    # -o/--output is the file to write, as in every rtinfer command: optional here because DST may
    # be positional (rtinfer.cli makes -o required only where the module does not set OUTPUT_OPTIONAL)
    parser.add_argument("-o", "--output", metavar="DST", default=None, help="the file to write, instead of DST")
    parser.add_argument("--graph-output", metavar="NAME", default=None,
                        help="for .onnx input: the graph output to translate (default: the output whose name "
                             "contains 'prob', else the first float output)")
    parser.add_argument("--weights", choices=("int8", "uint8"), default="int8",
                        help="for .onnx output: how int8 QDENSE weights are stored; uint8 (q + 128, zero point "
                             "128) makes onnxruntime's fused kernels exact on x86 CPUs without VNNI")


OUTPUT_OPTIONAL = True
OUTPUT_SUFFIXES = (".rtm", ".onnx")


def run(args: argparse.Namespace) -> int:
    if args.dst is not None and args.output is not None:
        raise UsageError(f"the file to write is given twice (DST {args.dst!r} and -o/--output {args.output!r}); "
                         f"to pick a graph output of an .onnx input, use --graph-output NAME")
    dst = args.output if args.output is not None else args.dst
    if dst is None:
        raise UsageError("give the file to write: rtinfer convert SRC DST (or -o DST)")
    src = os.fspath(args.src)
    src_kind = output_format(src, _FORMATS, "SRC", "to read")
    dst_kind = output_format(dst, _FORMATS, "DST")
    if src_kind == dst_kind:
        raise UsageError(f"{src!r} and {dst!r} are both .{src_kind}; convert goes .onnx <-> .rtm")
    check_input_file(src, "SRC", "model file")
    check_output_path(dst, "DST")
    if src_kind == "onnx":
        if args.weights != "int8":
            raise UsageError("--weights applies to .onnx output only")
        from export.onnx_import import from_onnx
        from rtinfer.rtm import save_frozen
        frozen = from_onnx(src, output=args.graph_output)
        save_frozen(frozen, dst)
    else:
        if args.graph_output is not None:
            raise UsageError("--graph-output applies to .onnx input only")
        from export.onnx_export import to_onnx
        from rtinfer.rtm import load_frozen
        frozen = load_frozen(src)
        to_onnx(frozen, dst, weight_dtype=args.weights)
    ops = ", ".join(layer.op.name for layer in frozen.layers)
    print(f"{src} -> {dst}: {len(frozen.layers)} layers ({ops}), input {frozen.input_shape}, "
          f"output {frozen.output_shape} {frozen.output_dtype}, {frozen.n_params} params, "
          f"weights (stored) {frozen.weight_bytes} B, {os.path.getsize(dst)} bytes")
    return 0
