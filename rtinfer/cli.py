"""The ``rtinfer`` command line. Each subcommand lives in ``rtinfer/commands/<name>.py`` with

    HELP = "one line"
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int          # the process exit code
    EPILOG = "..."                                      # optional: text after the options (exit codes)
    OUTPUT_SUFFIXES = (".rtm", ".onnx")                 # optional: what -o/--output may end in
    OUTPUT_OPTIONAL = True                              # optional: -o/--output may be omitted

Conventions shared by every subcommand (rtinfer/commands/_common.py):
- ``-o/--output FILE`` is always a file to write, required, and its extension says the format;
  the path is checked (extension, folder exists and is writable) before any work starts.
- A user error prints one line ``rtinfer COMMAND: error: ...`` naming the flag, and exits 2;
  a traceback means a bug in rtinfer.
- ``--help`` shows every default.

Subcommand modules are imported only when chosen, so ``rtinfer bench`` never imports onnx
unless it is given an .onnx file.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import zipfile

COMMANDS = ["demo", "train", "freeze", "inspect", "bench", "convert"]

# -o/--output suffixes of commands whose module does not declare OUTPUT_SUFFIXES
_OUTPUT_SUFFIXES = {"train": (".npz",)}

# errors that mean "bad input from the user" (files, flags, models): one line, exit 2
_USER_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, ImportError)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's line breaks; appends "(default: X)" to every option
    that has a default and does not already say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        value = default_text(action)
        if value is None or "default" in text.lower():
            return text
        return f"{text} (default: {value})"


def default_text(action):
    """An option's default as shown in --help, or None when there is none to show."""
    d = action.default
    if d is None or d is False or d is argparse.SUPPRESS or (isinstance(d, str) and not d) or action.nargs == 0 \
            or not (action.option_strings or action.nargs in ("?", "*")):
        return None
    if isinstance(action.default, (list, tuple)):
        return " ".join(map(str, action.default)) or "none"
    return str(action.default).replace("%", "%%")


def _load(name):
    try:
        return importlib.import_module(f"rtinfer.commands.{name}")
    except ModuleNotFoundError as exc:  # a subcommand whose module is not built yet
        if exc.name == f"rtinfer.commands.{name}":
            return None
        raise


def version_text() -> str:
    from importlib import metadata

    import rtinfer

    parts = []
    for dist in ("numpy", "numba", "onnx"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} not installed")
    py = ".".join(map(str, sys.version_info[:3]))
    return f"rtinfer {rtinfer.__version__} (python {py}, {', '.join(parts)})"


def _output_action(parser):
    for action in parser._actions:
        if "--output" in action.option_strings:
            return action
    return None


def build_parser():
    parser = argparse.ArgumentParser(prog="rtinfer", description="Real-time inference of small neural models.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules, parsers = {}, {}
    for name in COMMANDS:
        mod = _load(name)
        if mod is None:
            continue
        modules[name] = mod
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           epilog=getattr(mod, "EPILOG", None), formatter_class=HelpFormatter)
        mod.add_arguments(p)
        for action in p._actions:  # options without help text still show their default
            if action.help is None and default_text(action) is not None:
                action.help = f"(default: {default_text(action)})"
        out = _output_action(p)
        if out is not None:  # the shared convention: -o/--output is the file to write, always given
            out.required = not getattr(mod, "OUTPUT_OPTIONAL", False)
            suffixes = getattr(mod, "OUTPUT_SUFFIXES", None) or _OUTPUT_SUFFIXES.get(name)
            if suffixes and out.metavar is None:
                out.metavar = "FILE" + "|".join(suffixes)
        parsers[name] = p
    return parser, modules, parsers


def _flag_names(message: str, parser) -> str:
    """Replace API parameter names in a message by the flags: budget_us -> --budget-us anywhere;
    a plain word (epochs) only where it is the subject of a rule ("epochs must be ...")."""
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs:
            continue
        name = re.escape(action.dest)
        if "_" in action.dest:
            message = re.sub(rf"(?<![\w-]){name}\b", longs[0], message)
        else:
            message = re.sub(rf"(?<![\w-]){name}(?= must\b| should\b|=)", longs[0], message)
    return message


def _check_output(name, mod, args):
    out = getattr(args, "output", None)
    if out is None or getattr(mod, "OUTPUT_OPTIONAL", False):  # such a module checks its own output
        return
    from rtinfer.commands._common import check_output_path, output_format

    suffixes = getattr(mod, "OUTPUT_SUFFIXES", None) or _OUTPUT_SUFFIXES.get(name)
    if suffixes:
        output_format(out, {s: s for s in suffixes}, "-o/--output")
    check_output_path(out, "-o/--output")


def main(argv=None) -> int:
    parser, modules, parsers = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    name = args.command
    mod = modules[name]
    try:
        _check_output(name, mod, args)
        return int(mod.run(args) or 0)
    except _USER_ERRORS as exc:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, ModuleNotFoundError) and exc.name and not exc.name.startswith(("rtinfer", "export")) \
                and "pip install" not in text:
            text = f"this needs the optional package {exc.name!r} (pip install {exc.name.split('.')[0]})"
        print(f"rtinfer {name}: error: {_flag_names(text, parsers[name])}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"rtinfer {name}: error: out of memory (a smaller --n, --duration or model?)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rtinfer {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
