"""Regenerate the golden ONNX files in this folder (run once by hand; the tests only read them).

    pip install torch==2.13.0 skl2onnx        # CPU torch wheel; exporters need only onnx
    python tests/data/onnx/make_golden.py

Files (each ``NAME.onnx`` with ``NAME.npz`` holding ``X`` and the producer's own output ``Y``):
- torch_mlp: nn.Sequential(Flatten, Linear, BatchNorm1d, ReLU, Dropout, Linear(bias=False),
  GELU, Linear, LogSoftmax) in eval mode, torch.onnx.export(dynamo=False, opset 20), dynamic
  batch. Gives Flatten, Gemm transB=1, BatchNormalization, MatMul, Gelu, LogSoftmax and
  Identity nodes on constants.
- torch_acts: Linear layers with LeakyReLU, ELU, SELU, Hardsigmoid, Softplus, Tanh, Sigmoid,
  Hardtanh (Clip) and Softmax, opset 13, fixed batch of 8.
- torch_view: x.view(x.size(0), -1) -> Linear -> Sigmoid with a dynamic batch (Shape, Gather,
  Unsqueeze, Concat, Reshape on the batch size), opset 17.
- torch_mlp_qdq: torch_mlp quantized by onnxruntime.quantization.quantize_static (QDQ format,
  per-channel int8 weights, uint8 activations), calibrated on X; ``Y`` is onnxruntime's output.
- sklearn_mlp: MLPClassifier(16, 8) on iris, skl2onnx with zipmap=False (outputs label and
  probabilities; Cast, MatMul, Add, Relu, Softmax, ArgMax, ArrayFeatureExtractor).
- sklearn_logreg: StandardScaler + LogisticRegression pipeline, zipmap=False (Scaler,
  LinearClassifier with SOFTMAX, Normalizer L1, ai.onnx.ml).
"""

from __future__ import annotations

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _save(name, X, Y):
    np.savez(os.path.join(HERE, f"{name}.npz"), X=np.asarray(X, np.float32), Y=np.asarray(Y))


def torch_models():
    import torch
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
        torch.nn.Dropout(0.2), torch.nn.Linear(16, 8, bias=False), torch.nn.GELU(),
        torch.nn.Linear(8, 5), torch.nn.LogSoftmax(dim=1))
    with torch.no_grad():  # non-trivial running statistics
        m[2].running_mean.uniform_(-0.5, 0.5)
        m[2].running_var.uniform_(0.5, 2.0)
        m[2].weight.uniform_(0.5, 1.5)
        m[2].bias.uniform_(-0.3, 0.3)
    m.eval()
    X = torch.randn(64, 3, 4)
    path = os.path.join(HERE, "torch_mlp.onnx")
    torch.onnx.export(m, (X[:2],), path, dynamo=False, opset_version=20, input_names=["x"],
                      output_names=["log_probs"], dynamic_axes={"x": {0: "batch"}, "log_probs": {0: "batch"}})
    with torch.no_grad():
        _save("torch_mlp", X.numpy(), m(X).numpy())

    a = torch.nn.Sequential(
        torch.nn.Linear(6, 12), torch.nn.LeakyReLU(0.1), torch.nn.Linear(12, 12), torch.nn.ELU(0.7),
        torch.nn.Linear(12, 12), torch.nn.SELU(), torch.nn.Linear(12, 12), torch.nn.Hardsigmoid(),
        torch.nn.Linear(12, 12), torch.nn.Softplus(), torch.nn.Linear(12, 12), torch.nn.Tanh(),
        torch.nn.Linear(12, 12), torch.nn.Hardtanh(-0.5, 0.8), torch.nn.Linear(12, 12), torch.nn.Sigmoid(),
        torch.nn.Linear(12, 4), torch.nn.Softmax(dim=-1))
    a.eval()
    X = torch.randn(8, 6)
    torch.onnx.export(a, (X,), os.path.join(HERE, "torch_acts.onnx"), dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["probs"])
    with torch.no_grad():
        _save("torch_acts", X.numpy(), a(X).numpy())


def torch_view_model():
    import torch

    class View(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(12, 3)

        def forward(self, x):
            return torch.sigmoid(self.fc(x.view(x.size(0), -1)))

    torch.manual_seed(1)
    m = View().eval()
    X = torch.randn(16, 3, 4)
    torch.onnx.export(m, (X[:2],), os.path.join(HERE, "torch_view.onnx"), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    with torch.no_grad():
        _save("torch_view", X.numpy(), m(X).numpy())


def qdq_model():
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    X = np.load(os.path.join(HERE, "torch_mlp.npz"))["X"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": X[i:i + 8]} for i in range(0, len(X), 8)])

        def get_next(self):
            return next(self.batches, None)

    src, dst = os.path.join(HERE, "torch_mlp.onnx"), os.path.join(HERE, "torch_mlp_qdq.onnx")
    quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(dst, so, providers=["CPUExecutionProvider"])
    _save("torch_mlp_qdq", X, sess.run(None, {"x": X})[0])


def sklearn_models():
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    mlp = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=2000, random_state=0).fit(X, y)
    onx = to_onnx(mlp, X[:1], options={id(mlp): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    with open(os.path.join(HERE, "sklearn_mlp.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    _save("sklearn_mlp", X, mlp.predict_proba(X))
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    onx = to_onnx(pipe, X[:1], options={id(pipe.steps[-1][1]): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    with open(os.path.join(HERE, "sklearn_logreg.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    _save("sklearn_logreg", X, pipe.predict_proba(X))


if __name__ == "__main__":
    torch_models()
    torch_view_model()
    qdq_model()
    sklearn_models()
    for name in sorted(os.listdir(HERE)):
        if name.endswith((".onnx", ".npz")):
            print(f"{name:28s} {os.path.getsize(os.path.join(HERE, name)):>8d} bytes")
