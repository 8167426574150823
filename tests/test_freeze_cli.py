"""`rtinfer freeze` and `rtinfer inspect`: files equal the library's, errors exit 2 with a message."""

from __future__ import annotations

import json
import re
import os

import numpy as np
import pytest

import export
from rtinfer import reference
from rtinfer.cli import main
from rtinfer.rtm import load_frozen, to_bytes
from rtinfer.train import MLP, Adam, datasets, fit, load_model


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, digits):
    model = MLP([64, 32, 10], activation="tanh", output="softmax", preprocess="standardize", seed=0)
    fit(model, digits.X_train, digits.y_train, optimizer=Adam(1e-3), epochs=5, seed=0)
    path = tmp_path_factory.mktemp("ckpt") / "digits.npz"
    model.save(path)
    return path


def test_freeze_fp32_equals_library(checkpoint, tmp_path, capsys):
    out = tmp_path / "m.rtm"
    assert main(["freeze", str(checkpoint), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert out.read_bytes() == to_bytes(export.freeze(load_model(checkpoint)))


def test_freeze_int8_dataset_calibration(checkpoint, tmp_path, digits):
    out = tmp_path / "q.rtm"
    assert main(["freeze", str(checkpoint), "--dtype", "int8", "--calibration", "dataset:digits", "-o", str(out)]) == 0
    expected = export.freeze(load_model(checkpoint), dtype="int8", calibration=digits.X_train)
    assert out.read_bytes() == to_bytes(expected)
    frozen = load_frozen(out)
    assert frozen.is_quantized and frozen.meta["calibration"] == "minmax"
    X = digits.X_test.astype(np.float32)
    np.testing.assert_array_equal(reference.run(frozen, X), reference.run(expected, X))


def test_freeze_int8_npy_percentile(checkpoint, tmp_path, digits):
    cal = tmp_path / "cal.npy"
    np.save(cal, digits.X_train[:200])
    out = tmp_path / "p.rtm"
    argv = ["freeze", str(checkpoint), "--dtype", "int8", "--calibration", str(cal),
            "--method", "percentile", "--percentile", "99.9", "-o", str(out)]
    assert main(argv) == 0
    expected = export.freeze(load_model(checkpoint), "int8", digits.X_train[:200], method="percentile", percentile=99.9)
    assert out.read_bytes() == to_bytes(expected)
    assert load_frozen(out).meta["calibration"] == "percentile:99.9"
    reduced = tmp_path / "r.rtm"
    assert main(argv[:-1] + [str(reduced), "--reduce-range"]) == 0
    expected = export.freeze(load_model(checkpoint), "int8", digits.X_train[:200], method="percentile",
                             percentile=99.9, reduce_range=True)
    assert reduced.read_bytes() == to_bytes(expected)


@pytest.mark.parametrize("extra, match", [
    (["--dtype", "int8"], "needs --calibration"),
    (["--dtype", "int8", "--calibration", "dataset:nope"], "nope"),
    (["--dtype", "int8", "--calibration", "cal.csv"], "PATH.npy or dataset:NAME"),
    (["--dtype", "int8", "--calibration", "BAD"], r"shape \(N, 64\)"),
    (["--dtype", "int8", "--calibration", "OBJ"], "pickle"),
])
def test_freeze_errors_exit_2(checkpoint, tmp_path, capsys, extra, match):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 3)))
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    extra = [str(bad) if e == "BAD" else str(obj) if e == "OBJ" else e for e in extra]
    out = tmp_path / "never.rtm"
    assert main(["freeze", str(checkpoint), "-o", str(out)] + extra) == 2
    err = capsys.readouterr().err
    assert "rtinfer freeze: error:" in err
    assert re.search(match, err), err
    assert not out.exists()


def test_freeze_missing_checkpoint(tmp_path, capsys):
    assert main(["freeze", str(tmp_path / "none.npz"), "-o", str(tmp_path / "x.rtm")]) == 2
    assert "none.npz" in capsys.readouterr().err


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory, checkpoint, digits):
    path = tmp_path_factory.mktemp("rtm") / "q.rtm"
    export.freeze(load_model(checkpoint), "int8", digits.X_train).save(path)
    return path


def test_inspect_text(int8_file, capsys):
    assert main(["inspect", str(int8_file)]) == 0
    text = capsys.readouterr().out
    frozen = load_frozen(int8_file)
    assert f"({os.path.getsize(int8_file)} bytes, rtm version 2.0)" in text
    for op in ("AFFINE", "QUANTIZE", "QDENSE", "QLUT", "DEQUANTIZE", "SOFTMAX"):
        assert op in text
    assert f"MACs {frozen.macs}" in text and f"params {frozen.n_params}" in text
    assert "zp=" in text and "w_s " in text and "calibration = minmax" in text
    assert "lut:TANH" in text


def test_inspect_json(int8_file, capsys):
    assert main(["inspect", str(int8_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    frozen = load_frozen(int8_file)
    assert info["file"]["version"] == "2.0" and info["file"]["size"] == os.path.getsize(int8_file)
    assert info["macs"] == frozen.macs and info["weight_bytes"] == frozen.weight_bytes
    assert [l["op"] for l in info["layers"]] == [l.op.name for l in frozen.layers]
    qd = next(l for l in info["layers"] if l["op"] == "QDENSE")
    layer = frozen.layers[qd["index"]]
    assert qd["quant"]["output"]["scale"] == layer.attrs["y_scale"]
    assert qd["quant"]["output"]["zero_point"] == layer.attrs["y_zp"]
    assert qd["quant"]["weight_scale"]["per_channel"] == layer.out_size
    assert qd["macs"] == layer.in_size * layer.out_size
    assert qd["bytes"] == layer.in_size * layer.out_size + 4 * layer.out_size + 4 * layer.out_size


def test_inspect_corrupt_file_exit_2(int8_file, tmp_path, capsys):
    data = bytearray(int8_file.read_bytes())
    data[-100] ^= 1
    bad = tmp_path / "bad.rtm"
    bad.write_bytes(bytes(data))
    assert main(["inspect", str(bad)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err


def test_inspect_onnx(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "b"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["file"]["format"] == "onnx"
    assert [l["op"] for l in info["layers"]] == ["DENSE"] and info["layers"][0]["act"] == "RELU"
    assert info["macs"] == 12


def test_inspect_names_each_convolutions_kernel_path(tmp_path, capsys):
    """rtinfer inspect says which kernel each convolution runs on this CPU: depthwise layers the
    depthwise kernels, a 1x1 conv the GEMM on its input planes, a padded 3x3 the GEMM on shifted
    copies; int8 GEMMs with 7-bit weights and at least two row blocks the uint8 quads under the
    instruction this CPU has (kernels_tile.kernel_path_name), one block the int16 pairs."""
    from rtinfer.kernels_tile import kernel_path_name
    from rtinfer.train import CNN, Activation, Conv2D, Dense, Flatten

    layers = [Conv2D(2, 16, 3, padding=1), Activation("relu"), Conv2D(16, 16, 3, padding=1, groups=16),
              Activation("relu"), Conv2D(16, 16, 1), Activation("relu"), Conv2D(16, 4, 3, padding=1),
              Flatten(), Dense(4 * 8 * 8, 3)]
    model = CNN((2, 8, 8), layers, seed=0)
    X = np.random.default_rng(0).standard_normal((32, 2, 8, 8))
    quads = {"VNNI": "vpdpbusd", "AVX2": "vpmaddubsw"}.get(kernel_path_name(), "portable")
    pairs = "vpdpwssd" if kernel_path_name() == "VNNI" else "vpmaddwd"
    for dtype, kw in (("float32", {}), ("int8", {"calibration": X, "reduce_range": True})):
        path = tmp_path / f"{dtype}.rtm"
        export.freeze(model, dtype, **kw).save(path)
        assert main(["inspect", str(path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["int8_kernel_path"] == kernel_path_name()
        kernels = [L.get("kernel") for L in info["layers"] if L["op"] in ("CONV", "QCONV")]
        assert len(kernels) == 4 and all(kernels), kernels
        dense = [L.get("kernel") for L in info["layers"] if L["op"] in ("DENSE", "QDENSE")]
        assert len(dense) == 1 and dense[0].startswith("dense " + dtype), dense  # 3 outputs: W transposed
        assert "W transposed" in dense[0]
        stem, dw, pw, last = kernels
        assert "depthwise" in dw and "shifted plane copies" in stem and "input planes" in pw
        if dtype == "int8":
            assert f"uint8 quads ({quads})" in pw and f"int16 pairs ({pairs})" in last  # 16 rows vs 4
        else:
            assert all("float32 FMA" in k for k in kernels)
        assert main(["inspect", str(path)]) == 0
        text = capsys.readouterr().out
        assert f"int8 instructions: {kernel_path_name()}" in text and all(k in text for k in kernels)
