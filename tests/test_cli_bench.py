"""`rtinfer bench` exit codes and outputs, run in-process through rtinfer.cli.main."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rtinfer import cli
from rtinfer._testmodels import fp32_mlp, int8_mlp


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "mlp.rtm"
    fp32_mlp([20, 16, 4], head="softmax").save(path)
    return str(path)


def _bench(*args):
    return cli.main(["bench", *map(str, args)])


def test_budget_that_holds_exits_0(model_path, capsys):
    assert _bench(model_path, "--budget-us", 1e9, "--n", 300, "--warmup", 10) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "p99.9" in out


def test_budget_that_cannot_hold_exits_1(model_path, capsys):
    assert _bench(model_path, "--budget-us", 1e-6, "--n", 300, "--warmup", 10, "--percentile", 50) == 1
    assert "FAIL" in capsys.readouterr().out


def test_call_mode_per_layer_json_plot(model_path, tmp_path):
    j, png = tmp_path / "r.json", tmp_path / "r.png"
    args = [model_path, "--budget-us", 1e9, "--n", 200, "--warmup", 5, "--mode", "call", "--json", j]
    assert _bench(*args) == 0
    d = json.loads(j.read_text())
    assert d["mode"] == "call" and d["n"] == 200 and d["verdict"] == "PASS"
    assert _bench(model_path, "--budget-us", 1e9, "--n", 200, "--warmup", 5, "--per-layer", "--json", j) == 0
    assert len(json.loads(j.read_text())["per_layer"]) == 3
    pytest.importorskip("matplotlib")
    assert _bench(model_path, "--budget-us", 1e9, "--n", 100, "--warmup", 5, "--plot", png) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_input_file(model_path, tmp_path):
    X = np.random.default_rng(1).standard_normal((7, 20)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    assert _bench(model_path, "--budget-us", 1e9, "--n", 50, "--warmup", 5, "--input", tmp_path / "x.npy") == 0
    np.save(tmp_path / "bad.npy", X.astype(np.float64))
    assert _bench(model_path, "--budget-us", 1e9, "--input", tmp_path / "bad.npy") == 2
    np.save(tmp_path / "bad2.npy", X[:, :5])
    assert _bench(model_path, "--budget-us", 1e9, "--input", tmp_path / "bad2.npy") == 2


def test_file_and_usage_errors(tmp_path, capsys):
    assert _bench(tmp_path / "missing.rtm", "--budget-us", 10) == 2
    assert _bench(tmp_path / "model.txt", "--budget-us", 10) == 2
    (tmp_path / "junk.rtm").write_bytes(b"not a model")
    assert _bench(tmp_path / "junk.rtm", "--budget-us", 10) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", str(tmp_path / "x.rtm")])  # --budget-us is required
    assert exc.value.code == 2


def test_int8_rtm_and_onnx(tmp_path):
    q = tmp_path / "q.rtm"
    int8_mlp([20, 16, 4], lut=np.tanh).save(q)
    assert _bench(q, "--budget-us", 1e9, "--n", 100, "--warmup", 5) == 0
    from export.onnx_export import to_onnx
    path = tmp_path / "m.onnx"
    to_onnx(fp32_mlp([20, 16, 4], head="softmax"), str(path))
    assert _bench(path, "--budget-us", 1e9, "--n", 100, "--warmup", 5) == 0
    assert _bench(path, "--budget-us", 1e-6, "--n", 100, "--warmup", 5) == 1
