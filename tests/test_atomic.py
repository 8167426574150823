"""No lost data: a writer killed with SIGKILL at random moments never leaves a partial file
under the final name; the previous version stays intact and readable every time.

A forked child saves a big model in a loop, alternating two versions A and B, to one path; the
parent kills it after a random delay (spread over a few write durations, so most kills land
inside a write) and then checks that the file at the final path is exactly version A or B,
and that every other name in the folder is one of the writer's documented temp names:

    .rtm         save_frozen          .<name>.<random>.tmp
    ONNX         to_onnx(path=...)    .<name>.<random>.tmp
    checkpoint   Model.save           .<name>.<random>.tmp

Temp files left by a kill start with "." (hidden from ``ls``/glob) and are never renamed to
the final name; the .rtm and checkpoint readers reject them (truncation / bad zip) if opened,
unless the kill came between fsync and rename, when the temp file is a complete copy.

Long run: RTINFER_ATOMIC_KILLS=300 python -m pytest -q tests/test_atomic.py
"""

from __future__ import annotations

import os
import random
import re
import select
import signal
import time

import numpy as np
import pytest

from rtinfer._testmodels import fp32_mlp
from rtinfer.frozen import FrozenModel
from rtinfer.rtm import RtmFormatError, load_frozen, save_frozen, to_bytes

KILLS = int(os.environ.get("RTINFER_ATOMIC_KILLS", "24"))  # per format; the long run sets e.g. 300
TEMP_NAMES = {
    "rtm": re.compile(r"^\.model\.rtm\.[A-Za-z0-9_]+\.tmp$"),
    "onnx": re.compile(r"^\.model\.onnx\.[A-Za-z0-9_]+\.tmp$"),
    "ckpt": re.compile(r"^\.model\.npz\.[A-Za-z0-9_]+\.tmp$"),
}
FINAL = {"rtm": "model.rtm", "onnx": "model.onnx", "ckpt": "model.npz"}


def _frozen(tag: str) -> FrozenModel:
    m = fp32_mlp([512, 1024, 512, 10], seed=hash(tag) % 1000)  # ~1.05 M weights, 4.2 MB
    return FrozenModel(m.layers, m.buffers, m.input_shape, m.output_shape, m.output_dtype,
                       meta={"version": tag})


def _versions(kind):
    """(write(version_index, path), identify(path) -> version index, expected tags)."""
    if kind == "rtm":
        models = [_frozen("A"), _frozen("B")]
        blobs = [to_bytes(m) for m in models]

        def write(k, path):
            save_frozen(models[k], path)

        def identify(path):
            with open(path, "rb") as f:
                data = f.read()
            load_frozen(path)  # checksums, structure
            assert data in blobs, "the file loads but is neither version byte for byte"
            return blobs.index(data)
        return write, identify

    if kind == "onnx":
        import onnx
        from export.onnx_export import to_onnx
        from export.onnx_import import from_onnx
        models = [_frozen("A"), _frozen("B")]
        blobs = [to_onnx(m).SerializeToString() for m in models]

        def write(k, path):
            to_onnx(models[k], path)

        def identify(path):
            with open(path, "rb") as f:
                data = f.read()
            onnx.load_model_from_string(data)
            from_onnx(data)
            assert data in blobs, "the file loads but is neither version byte for byte"
            return blobs.index(data)
        return write, identify

    from rtinfer.train import MLP, load_model
    models = [MLP([256, 512, 512, 8], output="identity", seed=s) for s in (1, 2)]
    thetas = [m._theta.copy() for m in models]

    def write(k, path):
        models[k].save(path)

    def identify(path):
        theta = load_model(path)._theta
        for k, t in enumerate(thetas):
            if np.array_equal(theta, t):
                return k
        raise AssertionError("checkpoint matches neither version")
    return write, identify


def _child_loop(write, path, wfd):
    """In the forked child: write versions A, B, A, ... forever, reporting each completed write."""
    try:
        k = 1
        while True:
            write(k % 2, path)
            os.write(wfd, b"w")
            k += 1
    finally:
        os._exit(3)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rtm", "onnx", "ckpt"])
def test_sigkill_during_writes_never_loses_the_file(kind, tmp_path, summary):
    write, identify = _versions(kind)
    folder = tmp_path / kind
    folder.mkdir()
    path = str(folder / FINAL[kind])
    write(0, path)  # version A exists before the first kill
    t0 = time.perf_counter()
    write(1, path)
    write(0, path)
    write_s = (time.perf_counter() - t0) / 2
    rnd = random.Random(7)
    seen = {0: 0, 1: 0}
    mid_write, completed, complete_temps = 0, 0, 0
    for i in range(KILLS):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            _child_loop(write, path, wfd)
        os.close(wfd)
        if i % 2 == 0:  # blind: anywhere in the loop (building, writing, fsync, rename)
            if i % 4 == 2:  # after the child's first completed write (a forked child of a large
                # process can write slower than write_s: blind sleeps alone may all land in its
                # first write, and the check below that writes complete between kills needs one)
                ready, _, _ = select.select([rfd], [], [], 60 * write_s + 10.0)
                if ready:
                    completed += len(os.read(rfd, 1))
            time.sleep(rnd.uniform(0.0, 3.0 * write_s))
        else:  # once a temp file exists: inside the write, fsync or just before the rename
            deadline = time.perf_counter() + 10 * write_s + 1.0
            while time.perf_counter() < deadline and not any(
                    TEMP_NAMES[kind].match(n) for n in os.listdir(folder)):
                time.sleep(0.0002)
            time.sleep(rnd.uniform(0.0, 0.01))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        done = b""
        while True:
            chunk = os.read(rfd, 4096)
            if not chunk:
                break
            done += chunk
        os.close(rfd)
        completed += len(done)

        seen[identify(path)] += 1  # intact, readable, exactly one of the two versions
        others = [n for n in os.listdir(folder) if n != FINAL[kind]]
        for name in others:
            assert TEMP_NAMES[kind].match(name), f"unexpected file {name!r} after a kill"
            if kind in ("rtm", "ckpt"):
                # a leftover temp file is either refused by the reader or a complete version
                # (killed between fsync and rename), never a partial model that loads
                try:
                    identify(str(folder / name))
                    complete_temps += 1
                except (RtmFormatError, ValueError):
                    pass
            os.unlink(folder / name)
        mid_write += bool(others)
    summary(f"atomic {kind}: {KILLS} SIGKILLs over {completed} completed writes of {write_s * 1000:.0f} ms; "
            f"{mid_write} kills left a temp file ({complete_temps} of them complete); final file intact every time "
            f"(A {seen[0]}, B {seen[1]})")
    assert mid_write >= KILLS // 4  # the kills really landed inside writes
    assert completed > 0


def test_rtm_temp_file_name_is_hidden_and_distinct(tmp_path, monkeypatch):
    """The temp file lives in the target's folder (same filesystem, so os.replace is atomic)."""
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((src, dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    save_frozen(fp32_mlp([4, 3]), tmp_path / "m.rtm")
    (src, dst), = seen
    assert os.path.dirname(src) == str(tmp_path)
    assert re.match(r"^\.m\.rtm\.[A-Za-z0-9_]+\.tmp$", os.path.basename(src))
    assert os.fspath(dst) == str(tmp_path / "m.rtm")
    assert os.listdir(tmp_path) == ["m.rtm"]


MMAP_CHILD = r"""
import os, sys
import numpy as np
import rtinfer
from rtinfer._testmodels import fp32_mlp
from rtinfer.rtm import load_frozen, save_frozen
path = sys.argv[1]
save_frozen(fp32_mlp([64, 32, 4], seed=1), path)
fm = load_frozen(path, mmap=True)
before = {k: np.array(v) for k, v in fm.buffers.items()}
rt = rtinfer.load(fm)
X = np.ones((3, 64), np.float32)
Y = rt.predict(X)
save_frozen(fp32_mlp([64, 32, 4], seed=2), path)         # atomic replace: a new inode
assert all(np.array_equal(fm.buffers[k], before[k]) for k in before), "mapped views changed"
with open(path, "r+b") as f:                               # now truncate the new file in place
    f.truncate(10)
assert np.array_equal(rt.predict(X), Y)                    # the runtime holds its own copy
print("ok")
"""


def test_mmap_views_survive_atomic_replace_and_runtime_survives_truncation(tmp_path):
    """load_frozen(mmap=True) maps the file: save_frozen replaces the path with a new inode, so
    existing mapped views keep the old bytes; a Runtime copies the weights into its plan, so it
    keeps running even when the file on disk is truncated in place (run in a subprocess: a
    mapped page that vanished would be SIGBUS, not an exception)."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", MMAP_CHILD, str(tmp_path / "m.rtm")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-2000:])


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
@pytest.mark.parametrize("kind", ["rtm", "onnx", "ckpt"])
def test_written_files_get_the_usual_permissions(kind, tmp_path):
    """The temp file comes from mkstemp (mode 0600); the final file must have the mode a plain
    open() would give it (0666 & ~umask), so another user or service can read the model."""
    path = tmp_path / FINAL[kind]
    if kind == "rtm":
        save_frozen(fp32_mlp([4, 2]), path)
    elif kind == "onnx":
        from export.onnx_export import to_onnx
        to_onnx(fp32_mlp([4, 2]), path)
    else:
        from rtinfer.train import MLP
        MLP([4, 3, 2], output="identity").save(path)
    (tmp_path / "plain").write_bytes(b"")
    assert oct(os.stat(path).st_mode & 0o777) == oct(os.stat(tmp_path / "plain").st_mode & 0o777)
