"""rtinfer convert: .onnx -> .rtm -> .onnx through the CLI, outputs unchanged; bad input exits 2."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from optional import needs_onnxruntime  # noqa: E402
from optional import onnxruntime as ort  # noqa: E402

from rtinfer import reference  # noqa: E402
from rtinfer.cli import main  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "onnx")


@needs_onnxruntime
def test_convert_onnx_to_rtm_and_back(tmp_path, capsys):
    from rtinfer.rtm import load_frozen
    src = os.path.join(DATA, "sklearn_mlp.onnx")
    X = np.load(os.path.join(DATA, "sklearn_mlp.npz"))["X"]
    rtm, back = str(tmp_path / "m.rtm"), str(tmp_path / "m.onnx")
    assert main(["convert", src, rtm]) == 0
    assert "m.rtm" in capsys.readouterr().out
    frozen = load_frozen(rtm)
    assert main(["convert", rtm, back, "--weights", "uint8"]) == 0
    sess = ort.InferenceSession(back, providers=["CPUExecutionProvider"])
    want = ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(["probabilities"], {"X": X})[0]
    got = sess.run(None, {"input": X})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reference.run(frozen, X), want, rtol=1e-5, atol=1e-6)


def test_convert_errors_exit_2(tmp_path, capsys):
    src = os.path.join(DATA, "sklearn_mlp.onnx")
    assert main(["convert", src, str(tmp_path / "x.onnx")]) == 2
    assert main(["convert", src, str(tmp_path / "x.txt")]) == 2
    assert main(["convert", str(tmp_path / "missing.onnx"), str(tmp_path / "x.rtm")]) == 2
    assert main(["convert", src, str(tmp_path / "x.rtm"), "--graph-output", "label"]) == 2
    err = capsys.readouterr().err
    assert "ArrayFeatureExtractor" in err and "no such model file" in err
    assert not (tmp_path / "x.rtm").exists()


def test_convert_as_a_subprocess(tmp_path):
    src = os.path.join(DATA, "torch_mlp.onnx")
    proc = subprocess.run([sys.executable, "-m", "rtinfer.cli", "convert", src, str(tmp_path / "t.rtm")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "t.rtm").exists()
