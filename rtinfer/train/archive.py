"""The checkpoint file envelope: one ``.npz`` holding a JSON "architecture" entry and arrays.

``write_archive(path, arch, arrays)`` stamps ``format`` / ``version`` into ``arch``, stores it as a
uint8 array of UTF-8 JSON next to the arrays (np.savez_compressed) and writes atomically (temp
file, fsync, rename). ``read_archive(path) -> (arch, arrays)`` loads with allow_pickle=False and
raises ``CheckpointError`` (a ValueError) naming the problem for anything that is not such a file.
What the architecture and arrays contain is described in ``rtinfer.train.checkpoint``.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib

import numpy as np

from .._atomic import atomic_write

FORMAT = "rtinfer.train.checkpoint"
VERSION = 2
READABLE_VERSIONS = (1, 2)


class CheckpointError(ValueError):
    """A file is not a readable rtinfer training checkpoint."""


def write_archive(path, arch: dict, arrays: dict) -> None:
    """Write ``arch`` (JSON-able dict) and ``arrays`` ({name: ndarray}, no object dtype) to ``path``."""
    arch = {"format": FORMAT, "version": VERSION, **arch}
    entries = {"architecture": np.frombuffer(json.dumps(arch).encode("utf-8"), dtype=np.uint8)}
    for key, arr in arrays.items():
        if key == "architecture":
            raise ValueError("'architecture' is reserved for the JSON entry")
        arr = np.asarray(arr)
        if arr.dtype == object:
            raise ValueError(f"checkpoint array {key!r} has dtype object; it cannot be stored without pickle")
        entries[key] = arr
    # stdlib-only helper shared by every rtinfer writer (temp file, fsync, rename, fsync dir)
    atomic_write(path, lambda f: np.savez_compressed(f, **entries))


def read_archive(path) -> tuple[dict, dict]:
    """(architecture dict, {name: ndarray}) of a checkpoint; FileNotFoundError for a missing file."""
    path = os.fspath(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise CheckpointError(f"{path} is a single .npy array, not an .npz checkpoint")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (FileNotFoundError, CheckpointError):
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, RuntimeError, OverflowError,
            zlib.error, struct.error) as exc:  # RuntimeError: zipfile's NotImplementedError, encryption
        raise CheckpointError(f"{path} is not a readable .npz checkpoint: {exc}") from None
    not_arrays = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
    if not_arrays:  # NpzFile returns a member without the .npy magic as raw bytes
        raise CheckpointError(f"{path}: entries {not_arrays} are not .npy arrays")
    raw = arrays.pop("architecture", None)
    if raw is None:
        raise CheckpointError(f"{path} has no 'architecture' entry; not an rtinfer.train checkpoint")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: 'architecture' must be a 1-D uint8 array")
    try:
        arch = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested 10^5 deep
        raise CheckpointError(f"{path}: 'architecture' is not valid JSON: {exc}") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format is not {FORMAT!r}")
    if arch.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: checkpoint version {arch.get('version')!r} is not supported "
                              f"(readable: {', '.join(map(str, READABLE_VERSIONS))})")
    return arch, arrays
