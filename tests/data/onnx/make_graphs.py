"""Regenerate the graph-model ONNX files in this folder (run once by hand; tests only read them).

    pip install torch==2.13.0 onnxscript      # CPU torch wheel; the default exporter needs onnxscript
    python tests/data/onnx/make_graphs.py

Each ``NAME.onnx`` has a ``NAME.npz`` with ``X`` (64 inputs) and ``Y``, PyTorch's own output.
Random weights (seeded), eval mode, dynamic batch:
- resnet8_ts / resnet8_dynamo: MLPerf Tiny's image-classification ResNet-8 (32x32x3 input: a
  3x3 conv stem of 16 channels, three residual stages of 16, 32, 64 channels with stride 2 and
  a 1x1 projection on the skip path of stages 2 and 3, global average pooling, a 10-way linear
  layer), batch norms with non-trivial statistics. ``_ts``: torch.onnx.export(dynamo=False,
  opset 17, TorchScript); ``_dynamo``: the default (dynamo) exporter, opset 18.
- mbv2_block_ts / mbv2_block_dynamo: a MobileNetV2 inverted residual block on (16, 12, 12):
  1x1 expand to 64 + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1 project to 16 + BN, + x.
- silu_mlp_ts / silu_mlp_dynamo: Linear 20 -> 32, SiLU, Linear, GELU (erf), Linear, Hardswish,
  Linear, Mish, Linear 32 -> 5 (exporters write SiLU as x * Sigmoid(x) and GELU, below opset 20,
  as x * 0.5 * (1 + Erf(x / sqrt 2))).
- two_branch_ts / two_branch_dynamo: a 1-D CNN on (4, 32): two conv branches (kernel 3 and 5,
  ReLU) joined by Concat on channels, a conv, global average pooling, Linear to 6.
"""

from __future__ import annotations

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _bn(torch, bn):
    with torch.no_grad():
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.6, 1.4)
        bn.bias.uniform_(-0.2, 0.2)


def models():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.proj = None
            if stride != 1 or cin != cout:
                self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            s = x if self.proj is None else self.proj(x)
            return torch.relu(y + s)

    class ResNet8(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            self.s1 = Block(16, 16, 1)
            self.s2 = Block(16, 32, 2)
            self.s3 = Block(32, 64, 2)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.s3(self.s2(self.s1(self.stem(x))))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    class InvertedResidual(nn.Module):
        def __init__(self, c=16, t=4):
            super().__init__()
            h = c * t
            self.body = nn.Sequential(
                nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

        def forward(self, x):
            return x + self.body(x)

    class TwoBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.ReLU())
            self.b = nn.Sequential(nn.Conv1d(4, 6, 5, padding=2), nn.ReLU())
            self.c = nn.Sequential(nn.Conv1d(14, 12, 3, padding=1), nn.ReLU())
            self.fc = nn.Linear(12, 6)

        def forward(self, x):
            y = self.c(torch.cat([self.a(x), self.b(x)], dim=1))
            return self.fc(y.mean(dim=2))

    torch.manual_seed(0)
    silu = nn.Sequential(nn.Linear(20, 32), nn.SiLU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 32),
                         nn.Hardswish(), nn.Linear(32, 32), nn.Mish(), nn.Linear(32, 5))
    out = {"resnet8": (ResNet8(), (3, 32, 32)), "mbv2_block": (InvertedResidual(), (16, 12, 12)),
           "silu_mlp": (silu, (20,)), "two_branch": (TwoBranch(), (4, 32))}
    for m, _ in out.values():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                _bn(torch, mod)
        m.eval()
    return out


def main():
    import torch
    for name, (m, shape) in models().items():
        torch.manual_seed(1)
        X = torch.randn((64,) + shape)
        with torch.no_grad():
            Y = m(X).numpy()
        for kind in ("ts", "dynamo"):
            path = os.path.join(HERE, f"{name}_{kind}.onnx")
            if kind == "ts":
                torch.onnx.export(m, (X[:2],), path, dynamo=False, opset_version=17, input_names=["x"],
                                  output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
            else:
                batch = torch.export.Dim("batch", min=1, max=4096)
                prog = torch.onnx.export(m, (X[:2],), dynamo=True, opset_version=18, input_names=["x"],
                                         output_names=["y"], dynamic_shapes=({0: batch},), external_data=False)
                prog.save(path)
            np.savez(os.path.join(HERE, f"{name}_{kind}.npz"), X=X.numpy(), Y=Y)
            print("wrote", path, os.path.getsize(path))


if __name__ == "__main__":
    main()
