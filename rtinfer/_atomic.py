"""Atomic file writes, shared by every writer of rtinfer (.rtm, ONNX, training checkpoints).

Standard library only, so ``rtinfer.train`` can use it without importing the runtime.

    atomic_write(path, lambda f: f.write(payload))

The bytes go to a temp file ``.<name>.<random>.tmp`` in the same directory, which is flushed,
fsynced and renamed over ``path`` (os.replace); the directory is then fsynced, so after a crash
or a power loss ``path`` holds either the previous file or the complete new one, never a part.
If anything fails the temp file is removed and the exception propagates. The final file gets
the mode ``open()`` would give it (0666 & ~umask), not mkstemp's 0600.
"""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable


def atomic_write(path, write: Callable[[BinaryIO], None]) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        _default_permissions(fd)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _default_permissions(fd: int) -> None:
    """mkstemp creates files with mode 0600; give the file the mode open() would (0666 & ~umask)."""
    if hasattr(os, "fchmod"):
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)


def _fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms without directory fds (Windows)
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
