"""The ``rtinfer`` command line. Each subcommand lives in ``rtinfer/commands/<name>.py`` with

    HELP = "one line"
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int          # the process exit code

Subcommand modules are imported only when chosen, so ``rtinfer bench`` never imports onnx
unless it is given an .onnx file.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["demo", "train", "freeze", "inspect", "bench", "convert"]


def _load(name):
    try:
        return importlib.import_module(f"rtinfer.commands.{name}")
    except ModuleNotFoundError as exc:  # a subcommand whose module is not built yet
        if exc.name == f"rtinfer.commands.{name}":
            return None
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rtinfer", description="Real-time inference of small neural models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name in COMMANDS:
        mod = _load(name)
        if mod is None:
            continue
        modules[name] = mod
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)
    except (ValueError, OSError) as exc:
        print(f"rtinfer {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
