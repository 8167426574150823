"""No pickle, no code execution from files.

- Source scan: no module of rtinfer/ or export/ imports pickle (or marshal, shelve, dill,
  joblib, cloudpickle), passes allow_pickle=True, or calls np.load without allow_pickle=False;
  none calls eval/exec.
- Every np.load the package performs (checkpoint load, freeze --calibration, bench --input,
  bundled datasets) is recorded with a monkeypatched np.load: allow_pickle is always False.
- Crafted files holding an object array whose unpickling would run code (it creates a marker
  file) are refused with a ValueError by the checkpoint reader, the CLI's .npy inputs and the
  .rtm reader, and the marker never appears.
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import rtinfer
from rtinfer import cli
from rtinfer._testmodels import fp32_mlp
from rtinfer.rtm import MAGIC, RtmFormatError, load_frozen, save_frozen
from rtinfer.train import MLP, CheckpointError, load_model

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "joblib", "cloudpickle"}


def _sources():
    for top in ("rtinfer", "export"):
        for dirpath, _, files in os.walk(os.path.join(_ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(dirpath, f)


def test_sources_never_enable_pickle_or_eval():
    problems, n_loads = [], 0
    for path in _sources():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        rel = os.path.relpath(path, _ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bad = {a.name.split(".")[0] for a in node.names} & FORBIDDEN_MODULES
                if bad:
                    problems.append(f"{rel}:{node.lineno} imports {bad}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                problems.append(f"{rel}:{node.lineno} imports from {node.module}")
            elif isinstance(node, ast.Call):
                kw = {k.arg: k.value for k in node.keywords}
                if "allow_pickle" in kw and not (isinstance(kw["allow_pickle"], ast.Constant)
                                                 and kw["allow_pickle"].value is False):
                    problems.append(f"{rel}:{node.lineno} passes allow_pickle other than False")
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name == "load" and isinstance(func, ast.Attribute) and getattr(func.value, "id", "") in ("np", "numpy"):
                    n_loads += 1
                    if "allow_pickle" not in kw:
                        problems.append(f"{rel}:{node.lineno} calls np.load without allow_pickle=False")
                if isinstance(func, ast.Name) and func.id in ("eval", "exec"):
                    problems.append(f"{rel}:{node.lineno} calls {func.id}")
    assert problems == []
    assert n_loads >= 3  # the scan does see the package's np.load calls


class _Marker:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _object_array(marker) -> np.ndarray:
    arr = np.empty(2, dtype=object)
    arr[0] = _Marker(str(marker))
    arr[1] = "payload"
    return arr


@pytest.fixture
def recorded(monkeypatch):
    calls = []
    real = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle", "default"))
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    return calls


def test_every_np_load_is_without_pickle(recorded, tmp_path):
    from rtinfer.train import datasets

    m = MLP([4, 3, 2], output="identity")
    m.save(tmp_path / "m.npz")
    load_model(tmp_path / "m.npz")
    datasets.load(datasets.NAMES[0])
    np.save(tmp_path / "cal.npy", np.zeros((8, 4), np.float32))
    assert cli.main(["freeze", str(tmp_path / "m.npz"), "-o", str(tmp_path / "m.rtm"), "--dtype", "int8",
                     "--calibration", str(tmp_path / "cal.npy")]) == 0
    save_frozen(fp32_mlp([4, 2]), tmp_path / "b.rtm")
    np.save(tmp_path / "x.npy", np.zeros((8, 4), np.float32))
    assert cli.main(["bench", str(tmp_path / "b.rtm"), "--budget-us", "1000", "--n", "10", "--warmup", "0",
                     "--input", str(tmp_path / "x.npy")]) == 0
    assert len(recorded) >= 4
    assert set(recorded) == {False}


def test_checkpoint_with_object_array_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    m = MLP([4, 3, 2], output="identity")
    m.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key in ("theta", "architecture", "extra"):
        bad = dict(arrays)
        bad[key] = _object_array(marker)
        np.savez(tmp_path / f"bad_{key}.npz", **bad)
        with pytest.raises(CheckpointError):
            load_model(tmp_path / f"bad_{key}.npz")
        assert not marker.exists()
    # a raw pickle renamed .npz, and a zip member that is a pickle rather than an .npy
    (tmp_path / "raw.npz").write_bytes(pickle.dumps(_Marker(str(marker))))
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "raw.npz")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("architecture.npy", pickle.dumps(_Marker(str(marker))))
    (tmp_path / "zip.npz").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "zip.npz")
    assert not marker.exists()


def test_cli_npy_inputs_with_object_arrays_are_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    np.save(tmp_path / "evil.npy", _object_array(marker), allow_pickle=True)
    MLP([4, 3, 2], output="identity").save(tmp_path / "m.npz")
    save_frozen(fp32_mlp([4, 2]), tmp_path / "b.rtm")
    assert cli.main(["freeze", str(tmp_path / "m.npz"), "-o", str(tmp_path / "m.rtm"), "--dtype", "int8",
                     "--calibration", str(tmp_path / "evil.npy")]) == 2
    assert cli.main(["bench", str(tmp_path / "b.rtm"), "--budget-us", "1000", "--n", "10",
                     "--input", str(tmp_path / "evil.npy")]) == 2
    assert "allow_pickle" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "m.rtm").exists()


def test_rtm_reader_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Marker(str(marker)))
    np.savez(tmp_path / "evil.npz", w=_object_array(marker))
    os.replace(tmp_path / "evil.npz", tmp_path / "evil.rtm")
    (tmp_path / "magic.rtm").write_bytes(MAGIC + b"\x01\x00\x00\x00" + payload)
    (tmp_path / "raw.rtm").write_bytes(payload)
    for name in ("evil.rtm", "magic.rtm", "raw.rtm"):
        for mmap in (False, True):
            with pytest.raises(RtmFormatError):
                load_frozen(tmp_path / name, mmap=mmap)
        with pytest.raises(RtmFormatError):
            rtinfer.load(str(tmp_path / name))
    assert not marker.exists()


@pytest.mark.slow
def test_hostile_checkpoints_raise_checkpoint_error(summary):
    """A seeded subset of fuzz/fuzz_checkpoint.py: mutated architecture JSON, arrays and bytes
    end in CheckpointError or load a working model; nothing else escapes, memory stays bounded
    (a config declaring 10^12 units is refused before the constructor allocates)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("fuzz_checkpoint", os.path.join(_ROOT, "fuzz", "fuzz_checkpoint.py"))
    fz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fz)
    res = fz.run_range(99, 0, 600)
    total = sum(sum(d.values()) for d in res["counts"].values())
    rejected = sum(d.get("rejected", 0) for d in res["counts"].values())
    summary(f"checkpoint fuzz (CI subset): {total} cases, {rejected} rejected with CheckpointError, "
            f"{total - rejected} loaded, {res['n_failures']} other errors; max traced peak {res['max_peak']} B")
    assert res["n_failures"] == 0, res["failures"]
    assert rejected > total // 2


def test_deeply_nested_architecture_json_is_refused(tmp_path):
    arch = ("[" * 100000 + "]" * 100000).encode()
    np.savez(tmp_path / "deep.npz", architecture=np.frombuffer(arch, np.uint8), theta=np.zeros(3))
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path / "deep.npz")
