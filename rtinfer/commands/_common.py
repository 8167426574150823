"""Conventions shared by the subcommands: user errors, output paths, file sniffing, input arrays.

Every user error is a ``UsageError`` (a ValueError) whose message names the flag in question;
rtinfer.cli prints it as one line and exits 2, never with a traceback.

Output files: the extension says the format, and a command refuses an extension it cannot write
(``-o out.onnx`` writes ONNX, ``-o out.txt`` is refused). Paths are checked before any work
starts (the folder exists and is writable, the path is not a folder), so a typo costs nothing.
"""

from __future__ import annotations

import argparse
import math
import os


class UsageError(ValueError):
    """A user error on the command line (exit code 2, one line on stderr)."""


# magic bytes -> kind, for messages that say what a file is instead of how it failed to parse
_RTM_MAGIC = b"\x89RTM"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"


def sniff(path) -> str:
    """What a file looks like from its first bytes: "rtm", "npz" (zip), "npy", "onnx" (a guess:
    protobuf starting with field 1 ir_version), "empty" or "unknown". Raises OSError if unreadable."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        return "empty"
    if head.startswith(_RTM_MAGIC):
        return "rtm"
    if head.startswith(_ZIP_MAGICS):
        return "npz"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head[:1] == b"\x08" and str(path).lower().endswith(".onnx"):
        return "onnx"
    return "unknown"


def extension(path) -> str:
    """The lower-case extension with its dot ('' when there is none)."""
    return os.path.splitext(os.fspath(path))[1].lower()


def output_format(path, formats: dict, flag: str, verb: str = "to write") -> str:
    """formats maps an extension ('.rtm') to a format name; refuse any other extension."""
    ext = extension(path)
    if ext not in formats:
        known = ", ".join(sorted(formats))
        what = f"extension {ext!r}" if ext else "no extension"
        raise UsageError(f"{flag} {os.fspath(path)!r}: {what}; the extension says the format {verb}: {known}")
    return formats[ext]


def check_output_path(path, flag: str) -> str:
    """Refuse, before any work, an output path that cannot be written: a folder, a missing or
    read-only parent folder. Returns the path as a str."""
    path = os.fspath(path)
    if not path:
        raise UsageError(f"{flag}: empty file name")
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a folder; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{flag} {path!r}: folder {parent!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path!r}: folder {parent!r} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path!r} exists and is not writable")
    return path


def check_input_file(path, flag: str, what: str = "file") -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UsageError(f"{flag}: no such {what}: {path}")
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a folder, not a file")
    return path


def load_array(source: str, flag: str):
    """A numeric array from PATH.npy, PATH.npz (its only array, or PATH.npz:KEY) or dataset:NAME
    (the training split of a shipped dataset). Never unpickles; errors name the flag."""
    import numpy as np

    if source.startswith("dataset:"):
        from rtinfer.train import datasets

        name = source[len("dataset:"):]
        if name not in datasets.NAMES:
            raise UsageError(f"{flag}: unknown dataset {name!r}; known: {', '.join(datasets.NAMES)}")
        return datasets.load(name).X_train
    key = None
    path = source
    low = source.lower()
    if ".npz:" in low:
        cut = low.rindex(".npz:") + 4
        path, key = source[:cut], source[cut + 1:]
    ext = extension(path)
    if ext not in (".npy", ".npz"):
        raise UsageError(f"{flag} must be PATH.npy or dataset:NAME (or PATH.npz[:KEY]), got {source!r}")
    check_input_file(path, flag)
    kind = sniff(path)
    if ext == ".npy" and kind != "npy" or ext == ".npz" and kind != "npz":
        raise UsageError(f"{flag} {path!r} is not a {ext} file (its first bytes say: {kind})")
    try:
        loaded = np.load(path, allow_pickle=False)
        if ext == ".npz":
            with loaded as npz:
                names = list(npz.files)
                if key is None:
                    if len(names) != 1:
                        raise UsageError(f"{flag} {path!r} holds {len(names)} arrays ({', '.join(names)}); "
                                         f"pick one with {path}:KEY")
                    key = names[0]
                if key not in names:
                    raise UsageError(f"{flag} {path!r} has no array {key!r}; it holds: {', '.join(names)}")
                loaded = npz[key]
    except UsageError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise UsageError(f"{flag} {source!r} holds an object array (pickled Python objects); rtinfer "
                             f"reads arrays with allow_pickle=False and never unpickles: save a numeric array") from None
        raise UsageError(f"{flag} {source!r} is not a readable array: {exc}") from None
    except (OSError, EOFError) as exc:
        raise UsageError(f"{flag} {source!r} is not a readable array: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile and friends: a damaged file is a user error here
        raise UsageError(f"{flag} {source!r} is not a readable array: {type(exc).__name__}: {exc}") from None
    if loaded.dtype.kind not in "fiub":
        raise UsageError(f"{flag} {source!r} holds {loaded.dtype} values; expected numbers")
    return loaded


# -- argparse types: a bad value is a usage error naming the flag (exit 2) ---------------------
def positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def percentile_arg(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 100], got {text!r}") from None
    if not 0 < v <= 100:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 100], got {text!r}")
    return v


def int_at_least(minimum):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return v
    parse.__name__ = f"integer >= {minimum}"
    return parse


def cpu_list(text):
    """'0', '0,2', '1-3,6' -> a sorted list of CPU numbers."""
    cpus = set()
    try:
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if lo > hi:
                    raise ValueError
                cpus.update(range(lo, hi + 1))
            else:
                cpus.add(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CPU numbers like 0 or 0,2 or 1-3, got {text!r}") from None
    if not cpus or min(cpus) < 0:
        raise argparse.ArgumentTypeError(f"expected CPU numbers like 0 or 0,2 or 1-3, got {text!r}")
    return sorted(cpus)
