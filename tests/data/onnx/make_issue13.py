"""Regenerate the PyTorch ONNX files of issue 13's ops (run once by hand; tests only read them).

    pip install torch==2.13.0 onnxscript
    python tests/data/onnx/make_issue13.py

Each NAME.onnx has NAME.npz with X (16 inputs) and Y (PyTorch's output). Random weights
(seeded), eval mode, dynamic batch:
- conv_ae_ts / conv_ae_dynamo: a conv autoencoder on (1, 16, 16): Conv 1->8 + ReLU, MaxPool 2,
  Conv 8->16 stride 2 + ReLU, ConvTranspose 16->8 (k 3, stride 2, padding 1, output_padding 1)
  + ReLU, Upsample(scale 2, nearest), Conv 8->1 + Sigmoid. dynamo=False at opset 17, and the
  default (dynamo) exporter at opset 18.
- ln_mlp_ts16 / ln_mlp_dynamo: Linear 12 -> 24, LayerNorm(24), GELU, Linear 24 -> 4 on (T=5, 12)
  sequences; dynamo=False at opset 16 writes LayerNorm decomposed (ReduceMean, Sub, Pow, Sqrt,
  Div, Mul, Add), the default exporter writes LayerNormalization.
"""

from __future__ import annotations

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    import torch
    from torch import nn
    torch.manual_seed(0)

    class AE(nn.Module):
        def __init__(self):
            super().__init__()
            self.e1 = nn.Conv2d(1, 8, 3, padding=1)
            self.e2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.d1 = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1)
            self.d2 = nn.Conv2d(8, 1, 3, padding=1)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.e1(x)), 2)
            x = torch.relu(self.e2(x))
            x = torch.relu(self.d1(x))
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            return torch.sigmoid(self.d2(x))

    class LN(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(12, 24)
            self.ln = nn.LayerNorm(24)
            self.b = nn.Linear(24, 4)
            with torch.no_grad():
                self.ln.weight.uniform_(0.5, 1.5)
                self.ln.bias.uniform_(-0.3, 0.3)

        def forward(self, x):
            return self.b(nn.functional.gelu(self.ln(self.a(x))))

    for name, model, shape, variants in [("conv_ae", AE(), (1, 16, 16), [("ts", False, 17), ("dynamo", True, 18)]),
                                         ("ln_mlp", LN(), (5, 12), [("ts16", False, 16), ("dynamo", True, 18)])]:
        model.eval()
        X = torch.randn(16, *shape)
        with torch.no_grad():
            Y = model(X).numpy()
        for tag, dynamo, opset in variants:
            path = os.path.join(HERE, f"{name}_{tag}.onnx")
            kw = {"dynamic_shapes": ({0: torch.export.Dim("N")},)} if dynamo else \
                {"input_names": ["x"], "output_names": ["y"], "dynamic_axes": {"x": {0: "N"}, "y": {0: "N"}}}
            torch.onnx.export(model, (X[:2],), path, dynamo=dynamo, opset_version=opset, **kw)
            if dynamo:  # keep weights inside the file
                import onnx
                m = onnx.load(path)
                onnx.save_model(m, path, save_as_external_data=False)
                if os.path.exists(path + ".data"):
                    os.remove(path + ".data")
            np.savez(os.path.join(HERE, f"{name}_{tag}.npz"), X=X.numpy(), Y=Y)
            print(path)


if __name__ == "__main__":
    main()
