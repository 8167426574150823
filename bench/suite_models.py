"""The benchmark models: fixed MLP shapes with random He weights, each in fp32 and int8, an MLP
trained on the bundled digits, and the CNNs small models use (the 1-D sensor CNN, MLPerf Tiny's
keyword-spotting DS-CNN on 49x10 MFCCs, LeNet-5 on 28x28), random weights with non-trivial
batch-norm statistics folded at freeze.

    specs = select_specs(["16-32-4", "digits"])         # ModelSpec list, in SPECS order
    models = build_models(specs, dtypes=("fp32", "int8"), n_samples=1000)
    m = models[0]; m.frozen, m.X (n_samples, d) float32, m.budget_us

int8 models come from ``export.freeze(model, "int8", calibration=..., reduce_range=True)``:
weights in [-63, 63] so that onnxruntime's AVX2 int8 GEMM (which sums u8*s8 pairs in saturating
int16 on CPUs without VNNI) computes the same integers as rtinfer; every engine then runs the
very same int8 weights. Random models are calibrated on seeded N(0, 1) data and timed on other
N(0, 1) samples (CNNs: (N, *input_shape), each sample in its natural shape); the digits model is
calibrated on its training split and timed on its test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DTYPES = ("fp32", "int8")


class BenchConfigError(ValueError):
    """A benchmark option names an unknown model, dtype or engine, or has an invalid value."""


@dataclass(frozen=True)
class ModelSpec:
    key: str            # short name used on the command line and in file names
    sizes: tuple        # MLP layer widths [n_in, hidden..., n_out]; CNNs: the layers, in short
    head: str           # "identity" | "softmax"
    budget_us: float    # per-sample real-time budget the report judges against
    role: str           # what the shape stands for
    cnn: bool = False   # built by build_cnn(key) instead of as an MLP of ``sizes``


SPECS = (
    ModelSpec("16-32-4", (16, 32, 4), "identity", 100.0, "control loop (10 kHz loop: 100 us budget)"),
    ModelSpec("64-64-32-10", (64, 64, 32, 10), "softmax", 1000.0, "digits shape (1 kHz: 1 ms budget)"),
    ModelSpec("784-128-64-10", (784, 128, 64, 10), "softmax", 1000.0, "MNIST-size MLP (1 kHz: 1 ms budget)"),
    ModelSpec("784-512-512-10", (784, 512, 512, 10), "softmax", 1000.0,
              "weights larger than L2 (1 kHz: 1 ms budget)"),
    ModelSpec("ad-640", (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640), "identity", 10000.0,
              "MLPerf Tiny anomaly-detection autoencoder, ReLU (10 ms audio frame)"),
    ModelSpec("digits", (64, 64, 10), "softmax", 1000.0, "64-64-10 trained on the bundled digits (1 ms budget)"),
    ModelSpec("cnn1d", ("1x128", "c16k7", "p2", "c32k5", "p2", "dw3", "pw32", "gap", "6"), "softmax", 1000.0,
              "1-D sensor CNN on 128 samples (1 kHz: 1 ms budget)", cnn=True),
    ModelSpec("dscnn", ("1x49x10", "c64k10x4s2", "4x(dw3x3,pw64)", "gap", "12"), "softmax", 10000.0,
              "MLPerf Tiny keyword-spotting DS-CNN on 49x10 MFCCs (10 ms audio frame)", cnn=True),
    ModelSpec("lenet5", ("1x28x28", "c6k5", "p2", "c16k5", "p2", "120", "84", "10"), "softmax", 1000.0,
              "LeNet-5 on 28x28 images (1 ms budget)", cnn=True),
    ModelSpec("resnet8", ("3x32x32", "c16k3", "res16", "res32s2", "res64s2", "gap", "10"), "softmax", 10000.0,
              "MLPerf Tiny image-classification ResNet-8 on 32x32 RGB (10 ms frame)", cnn=True),
)
SPEC_KEYS = tuple(s.key for s in SPECS)


@dataclass
class BenchModel:
    spec: ModelSpec
    dtype: str                      # "fp32" | "int8"
    frozen: object                  # rtinfer.FrozenModel
    X: np.ndarray                   # (n_samples, *input_shape) float32 C-contiguous: the timed inputs
    info: dict = field(default_factory=dict)  # e.g. test accuracy of the trained model

    @property
    def name(self) -> str:
        return f"{self.spec.key} {self.dtype}"

    @property
    def file_key(self) -> str:
        return f"{self.spec.key}_{self.dtype}"

    @property
    def budget_us(self) -> float:
        return self.spec.budget_us


def select_specs(keys=None) -> list:
    """The ModelSpecs named by keys (None: all), in SPECS order; BenchConfigError on an unknown key."""
    if keys is None:
        return list(SPECS)
    keys = list(keys)
    unknown = [k for k in keys if k not in SPEC_KEYS]
    if unknown:
        raise BenchConfigError(f"unknown model(s) {unknown}; choose from {list(SPEC_KEYS)}")
    return [s for s in SPECS if s.key in keys]


def check_dtypes(dtypes) -> tuple:
    dtypes = tuple(dtypes)
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise BenchConfigError(f"unknown dtype(s) {bad or dtypes}; choose from {list(DTYPES)}")
    return tuple(d for d in DTYPES if d in dtypes)


def _cyclic(X: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(X))
    return np.ascontiguousarray(np.concatenate([X] * reps)[:n], dtype=np.float32)


def _train_digits(epochs: int):
    """MLP 64-64-10 ReLU, standardized inputs, Adam 1e-3, batch 32: (model, dataset, accuracy)."""
    from rtinfer.train import MLP, Adam, datasets, fit
    ds = datasets.load("digits", test_size=0.2, seed=0)
    model = MLP([64, 64, 10], activation="relu", output="softmax", preprocess="standardize", seed=0)
    fit(model, ds.X_train, ds.y_train, optimizer=Adam(1e-3), epochs=epochs, batch_size=32, seed=0,
        verbose=False)
    return model, ds, float(model.score(ds.X_test, ds.y_test))


def build_cnn(key: str):
    """The benchmark CNN ``key`` (an rtinfer.train.CNN with seeded random weights; batch norms with
    non-trivial running statistics, folded into the convolutions at freeze):

    - cnn1d: (1, 128) -> Conv1D 16x7 same, BN, ReLU, MaxPool 2 -> Conv1D 32x5 same, BN, ReLU,
      MaxPool 2 -> depthwise Conv1D 3 + pointwise 32, ReLU -> GlobalAvgPool -> Dense 6 (0.21 M MACs)
    - dscnn: MLPerf Tiny keyword spotting, (1, 49, 10) MFCCs -> Conv2D 64 10x4 stride 2 same, BN,
      ReLU -> 4 x [depthwise 3x3 + BN + ReLU, pointwise 64 + BN + ReLU] -> GlobalAvgPool -> Dense 12
      (2.66 M MACs)
    - lenet5: (1, 28, 28) -> Conv2D 6x5x5 pad 2, ReLU, MaxPool 2 -> Conv2D 16x5x5, ReLU, MaxPool 2
      -> Flatten -> Dense 120, ReLU -> Dense 84, ReLU -> Dense 10 (0.42 M MACs)
    - resnet8: MLPerf Tiny image classification, (3, 32, 32) -> Conv2D 16 3x3 same, BN, ReLU -> three
      residual stacks of [Conv2D 3x3 (stride 2 from the second), BN, ReLU, Conv2D 3x3, BN] + skip
      (identity, then 1x1 stride-2 projections), each followed by ReLU, at 16, 32, 64 channels ->
      GlobalAvgPool -> Dense 10 (12.5 M MACs)"""
    from rtinfer import train
    from rtinfer.train import (CNN, Activation, BatchNorm, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool,
                               MaxPool1D, MaxPool2D)
    # absent from checkouts older than the graph models (bench_cnn.py --src on the code of 2026-11-22)
    Residual = getattr(train, "Residual", None)
    if key == "cnn1d":
        layers = [Conv1D(1, 16, 7, padding="same"), BatchNorm(16), Activation("relu"), MaxPool1D(2),
                  Conv1D(16, 32, 5, padding="same"), BatchNorm(32), Activation("relu"), MaxPool1D(2),
                  Conv1D(32, 32, 3, padding="same", groups=32), Activation("relu"), Conv1D(32, 32, 1),
                  Activation("relu"), GlobalAvgPool(), Dense(32, 6)]
        model = CNN((1, 128), layers, seed=0)
    elif key == "dscnn":
        layers = [Conv2D(1, 64, (10, 4), stride=2, padding=((4, 5), (1, 2))), BatchNorm(64), Activation("relu")]
        for _ in range(4):
            layers += [Conv2D(64, 64, 3, padding=1, groups=64), BatchNorm(64), Activation("relu"),
                       Conv2D(64, 64, 1), BatchNorm(64), Activation("relu")]
        layers += [GlobalAvgPool(), Dense(64, 12)]
        model = CNN((1, 49, 10), layers, seed=0)
    elif key == "lenet5":
        layers = [Conv2D(1, 6, 5, padding=2), Activation("relu"), MaxPool2D(2),
                  Conv2D(6, 16, 5), Activation("relu"), MaxPool2D(2), Flatten(),
                  Dense(400, 120), Activation("relu"), Dense(120, 84), Activation("relu"), Dense(84, 10)]
        model = CNN((1, 28, 28), layers, seed=0)
    elif key == "resnet8":
        if Residual is None:
            raise BenchConfigError("resnet8 needs residual layers, which this rtinfer does not have")
        layers = [Conv2D(3, 16, 3, padding=1), BatchNorm(16), Activation("relu")]
        c_in = 16
        for c, s in ((16, 1), (32, 2), (64, 2)):
            body = [Conv2D(c_in, c, 3, stride=s, padding=1), BatchNorm(c), Activation("relu"),
                    Conv2D(c, c, 3, padding=1), BatchNorm(c)]
            skip = None if s == 1 and c == c_in else Conv2D(c_in, c, 1, stride=s)
            layers += [Residual(body, shortcut=skip), Activation("relu")]
            c_in = c
        layers += [GlobalAvgPool(), Dense(64, 10)]
        model = CNN((3, 32, 32), layers, seed=0)
    else:
        raise BenchConfigError(f"unknown CNN {key!r}; choose from cnn1d, dscnn, lenet5, resnet8")
    rng = np.random.default_rng(1)
    flat = []
    for layer in model.layers:
        flat += ([*layer.body, layer.shortcut] if Residual is not None and isinstance(layer, Residual) else [layer])
    for layer in flat:
        if isinstance(layer, BatchNorm):
            c = layer.num_features
            layer.gamma[...] = rng.uniform(0.8, 1.2, c)
            layer.beta[...] = rng.normal(0, 0.1, c)
            layer.running_mean[...] = rng.normal(0, 0.1, c)
            layer.running_var[...] = rng.uniform(0.5, 1.5, c)
    return model


def build_models(specs, dtypes=DTYPES, n_samples: int = 1000, train_epochs: int = 20, seed: int = 0) -> list:
    """BenchModels for every spec and dtype (fp32 before int8 for each spec)."""
    from export import freeze
    from rtinfer import reference
    from rtinfer.train import MLP

    dtypes = check_dtypes(dtypes)
    if n_samples < 1:
        raise BenchConfigError(f"n_samples must be >= 1, got {n_samples}")
    out = []
    for spec in specs:
        info = {}
        if spec.key == "digits":
            model, ds, acc = _train_digits(train_epochs)
            calibration = ds.X_train
            X = _cyclic(ds.X_test.astype(np.float32), n_samples)
            info["train_epochs"] = train_epochs
            info["accuracy_train_model"] = acc
            y_test = ds.y_test
        elif spec.cnn:
            model = build_cnn(spec.key)
            rng = np.random.default_rng(seed + 2)
            calibration = rng.standard_normal((200,) + model.input_shape)
            X = rng.standard_normal((n_samples,) + model.input_shape).astype(np.float32)
            y_test = None
        else:
            model = MLP(list(spec.sizes), activation="relu", output=spec.head, seed=seed, init="he")
            rng = np.random.default_rng(seed + 1)
            calibration = rng.standard_normal((512, spec.sizes[0]))
            X = rng.standard_normal((n_samples, spec.sizes[0])).astype(np.float32)
            y_test = None
        for dtype in dtypes:
            if dtype == "fp32":
                frozen = freeze(model, "float32")
            else:
                frozen = freeze(model, "int8", calibration=calibration, reduce_range=True)
            minfo = dict(info)
            if y_test is not None:
                Xt = ds.X_test.astype(np.float32)
                minfo["accuracy_frozen"] = float(np.mean(np.argmax(reference.run(frozen, Xt), axis=1) == y_test))
            out.append(BenchModel(spec, dtype, frozen, X, minfo))
    return out
