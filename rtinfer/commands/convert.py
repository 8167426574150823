"""rtinfer convert SRC DST: .onnx -> .rtm (export.from_onnx) or .rtm -> .onnx (export.to_onnx).

    rtinfer convert model.onnx model.rtm [--output probabilities]
    rtinfer convert model.rtm model.onnx [--weights uint8]
"""

from __future__ import annotations

import argparse
import os

HELP = "convert between ONNX (.onnx) and rtinfer (.rtm) model files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="an .onnx or .rtm file")
    parser.add_argument("dst", metavar="DST", help="the .rtm or .onnx file to write (atomically)")
    parser.add_argument("--output", metavar="NAME", default=None,
                        help="for .onnx input: the graph output to translate (default: the probabilities / "
                             "first float output)")
    parser.add_argument("--weights", choices=("int8", "uint8"), default="int8",
                        help="for .onnx output: how int8 QDENSE weights are stored; uint8 (q + 128, zero point "
                             "128) makes onnxruntime's fused kernels exact on x86 CPUs without VNNI")


def _kind(path: str) -> str:
    low = path.lower()
    if low.endswith(".onnx"):
        return "onnx"
    if low.endswith(".rtm"):
        return "rtm"
    raise ValueError(f"{path!r}: expected a .onnx or .rtm file name")


def run(args: argparse.Namespace) -> int:
    src, dst = os.fspath(args.src), os.fspath(args.dst)
    src_kind, dst_kind = _kind(src), _kind(dst)
    if src_kind == dst_kind:
        raise ValueError(f"{src!r} and {dst!r} are both .{src_kind}; convert goes .onnx <-> .rtm")
    if not os.path.exists(src):
        raise FileNotFoundError(f"no such model file: {src}")
    if src_kind == "onnx":
        from export.onnx_import import from_onnx
        from rtinfer.rtm import save_frozen
        frozen = from_onnx(src, output=args.output)
        save_frozen(frozen, dst)
    else:
        if args.output is not None:
            raise ValueError("--output applies to .onnx input only")
        from export.onnx_export import to_onnx
        from rtinfer.rtm import load_frozen
        frozen = load_frozen(src)
        to_onnx(frozen, dst, weight_dtype=args.weights)
    ops = ", ".join(layer.op.name for layer in frozen.layers)
    print(f"{src} -> {dst}: {len(frozen.layers)} layers ({ops}), input {frozen.input_shape}, "
          f"output {frozen.output_shape} {frozen.output_dtype}, {frozen.n_params} params, "
          f"{os.path.getsize(dst)} bytes")
    return 0
