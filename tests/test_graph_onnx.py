"""Graph models from PyTorch's two exporters (tests/data/onnx/make_graphs.py): MLPerf Tiny's
ResNet-8, a MobileNetV2 inverted residual block, an MLP with SiLU / GELU (erf) / Hardswish /
Mish as the exporters spell them, a two-branch CNN joined by Concat. Each imports and runs
within 1e-5 of onnxruntime and of PyTorch; quantized by onnxruntime's quantize_static (QDQ,
per tensor and per channel, int8 and uint8 activations) it runs int8 end to end within one
quantization step of onnxruntime on >= 99.9% of outputs; fp32 and int8 export back to ONNX
run in onnxruntime with the same outputs.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import rtinfer
from export import from_onnx, to_onnx
from rtinfer.ops import Op
from rtinfer.rtm import from_bytes, to_bytes

ort = pytest.importorskip("onnxruntime")

HERE = os.path.join(os.path.dirname(__file__), "data", "onnx")
NAMES = [f"{m}_{k}" for m in ("resnet8", "mbv2_block", "silu_mlp", "two_branch") for k in ("ts", "dynamo")]


def _data(name):
    d = np.load(os.path.join(HERE, name + ".npz"))
    return os.path.join(HERE, name + ".onnx"), d["X"], d["Y"]


def _ort(path_or_bytes, X, all_opts=False):
    so = ort.SessionOptions()
    if not all_opts:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: X})


def _close(got, want):
    scale = max(1.0, float(np.abs(want).max()))
    assert got.shape == want.shape and got.dtype == want.dtype
    assert float(np.abs(got - want).max()) <= 1e-5 * scale, float(np.abs(got - want).max())


@pytest.mark.parametrize("name", NAMES)
def test_pytorch_graph_exports_match_onnxruntime(name):
    path, X, Y = _data(name)
    fm = from_onnx(path)
    assert not fm.is_chain or name.startswith("silu")  # the activations fuse into the dense layers
    if name.startswith("silu"):  # SiLU, GELU, Hardswish, Mish recognized, fused: five DENSE layers
        assert [layer.op for layer in fm.layers] == [Op.DENSE] * 5
        assert [layer.act.name for layer in fm.layers[:4]] == ["SILU", "GELU", "HARD_SWISH", "MISH"]
    want = _ort(path, X)[0]
    rt = rtinfer.load(fm)
    _close(rt.predict(X), want)
    _close(rt.stream(X), want)
    _close(rt.predict_one(X[5]), want[5])
    _close(rt.predict(X), Y.astype(np.float32))
    back = from_bytes(to_bytes(fm))
    np.testing.assert_array_equal(rtinfer.load(back).stream(X), rt.stream(X))
    # fp32 export back to ONNX: onnxruntime runs it with the same outputs
    _close(_ort(to_onnx(fm).SerializeToString(), X)[0], rt.stream(X))


def test_resnet8_arena_reuses_memory():
    fm = from_onnx(_data("resnet8_ts")[0])
    plan = rtinfer.load(fm).plan
    assert sum(layer.op == Op.BINARY for layer in fm.layers) == 3  # one residual add per stage
    # the largest activations are 16 x 32 x 32 floats (64 KiB); three are alive at a block's add
    assert plan.arena_bytes <= 3 * 16 * 32 * 32 * 4
    assert plan.arena_bytes < plan.tensor_bytes / 2


class _Reader:
    def __init__(self, name, X):
        self.it = iter([{name: X[i:i + 1]} for i in range(len(X))])

    def get_next(self):
        return next(self.it, None)


def _quantize(path, X, tmp_path, per_channel, activation):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    import onnx
    name = onnx.load(path).graph.input[0].name
    q = str(tmp_path / "q.onnx")
    quantize_static(path, q, _Reader(name, X[:32]), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QInt8 if activation == "s8" else QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return q


@pytest.mark.parametrize("name,per_channel,activation", [
    ("resnet8_ts", False, "s8"), ("resnet8_ts", True, "u8"), ("resnet8_dynamo", True, "s8"),
    ("mbv2_block_ts", True, "u8"), ("mbv2_block_dynamo", False, "s8"), ("two_branch_ts", True, "s8"),
    ("two_branch_dynamo", False, "u8"), ("silu_mlp_ts", False, "s8"),
])
def test_quantize_static_qdq_runs_int8_within_one_step(name, per_channel, activation, tmp_path):
    path, X, _ = _data(name)
    q = _quantize(path, X, tmp_path, per_channel, activation)
    fm = from_onnx(q)
    ops = {layer.op for layer in fm.layers}
    if name.startswith(("resnet8", "mbv2")):  # int8 end to end: quantized convs and residual adds
        assert Op.QBINARY in ops and Op.QCONV in ops and Op.CONV not in ops and Op.BINARY not in ops
    if name.startswith("two_branch"):
        assert Op.QCONCAT in ops and Op.CONCAT not in ops
    rt = rtinfer.load(fm)
    got = rt.predict(X)
    want = _ort(q, X)[0]
    step = [layer for layer in fm.layers if layer.op == Op.DEQUANTIZE][-1].attrs["x_scale"]
    lsb = np.abs(got - want) / step
    assert float(np.mean(lsb <= 1.0 + 1e-4)) >= 0.999, float(lsb.max())
    np.testing.assert_array_equal(rt.stream(X), got)  # int8: every path the same bits
    # exported back as QDQ: onnxruntime within one step of rtinfer
    back = _ort(to_onnx(fm).SerializeToString(), X)[0]
    assert float(np.mean(np.abs(back - got) / step <= 1.0 + 1e-4)) >= 0.999
