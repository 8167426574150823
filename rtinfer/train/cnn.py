"""CNN: a sequential model of convolution / pooling / batch-norm / flatten / dense / activation layers.

    from rtinfer.train import CNN, Conv1D, MaxPool1D, GlobalAvgPool, Dense, Activation, fit
    model = CNN((1, 64), [Conv1D(1, 8, 9, padding="same"), Activation("relu"), MaxPool1D(2),
                          Conv1D(8, 16, 5, padding="same"), Activation("relu"), GlobalAvgPool(),
                          Dense(16, 4)], output="softmax", seed=0)
    fit(model, X, y, epochs=10)          # X (N, 1, 64) or flat (N, 64)

Samples are channels-first, ``input_shape`` = (C, L) or (C, H, W). Inputs may be given as
(N, *input_shape) or flattened to (N, prod(input_shape)) in C order; the preprocessor (if any)
works on the flattened features. The last layer must produce a vector (N, n_out): the logits.

Parameters of every layer live in the model's flat vector as for ``MLP``: all weights (Dense W,
conv W; L2-decayed) first, then biases and BatchNorm gamma/beta, then BatchNorm running
averages ("state": they never get a gradient, so optimizers leave them unchanged, while
checkpoints and early stopping keep them with the weights they belong to).
"""

from __future__ import annotations

import math

import numpy as np

from ._validate import DataError
from .conv import BatchNorm, layer_from_spec
from .layers import Activation, Dense
from .models import RELU_FAMILY, Model, init_dense


def _layer(item, i: int):
    if isinstance(item, dict):
        kind = item.get("type")
        try:
            if kind == "dense":
                return Dense(int(item["n_in"]), int(item["n_out"]))
            if kind == "activation":
                return Activation(item["name"], item.get("alpha") if item["name"] == "leaky_relu" else None)
            return layer_from_spec(item)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"layer {i} spec {item!r} is invalid: {exc}") from None
    if not hasattr(item, "forward_train"):
        raise ValueError(f"layer {i}: {item!r} is not a layer")
    return item


class CNN(Model):
    """Sequential model on channels-first samples; see the module doc."""

    def __init__(self, input_shape, layers, output: str = "softmax", l2: float = 0.0, preprocess=None,
                 seed: int = 0):
        super().__init__(output=output, l2=l2, preprocess=preprocess, seed=seed)
        try:
            shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise ValueError(f"input_shape must be a tuple of ints; got {input_shape!r}") from None
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"input_shape must be non-empty with positive dims; got {input_shape!r}")
        self.input_shape = shape
        self.is_classifier = output != "identity"
        built = [_layer(item, i) for i, item in enumerate(layers)]
        if not built:
            raise ValueError("CNN needs at least one layer")
        self._install(built)
        if output == "sigmoid" and self.n_outputs_ != 1:
            raise ValueError(f"output 'sigmoid' needs 1 output unit; the last layer gives {self.n_outputs_}")
        if output == "softmax" and self.n_outputs_ < 2:
            raise ValueError(f"output 'softmax' needs >= 2 output units; the last layer gives {self.n_outputs_}")
        self._init_weights(np.random.default_rng(self.seed))

    # ----------------------------------------------------------------------------- structure
    def _install(self, layers: list) -> None:
        """Check that the layers chain from ``input_shape`` to a vector, then bind every parameter
        into one flat vector: weights, then biases, then state (see the module doc)."""
        shape = self.input_shape
        shapes = []
        for i, layer in enumerate(layers):
            where = f"layer {i} ({layer!r})"
            if isinstance(layer, Dense):
                if shape != (layer.n_in,):
                    raise ValueError(f"{where}: takes ({layer.n_in},) per sample but receives {shape}; "
                                     f"put Flatten() or GlobalAvgPool() before a Dense")
                shape = (layer.n_out,)
            elif isinstance(layer, Activation):
                pass
            elif hasattr(layer, "build"):
                try:
                    shape = tuple(layer.build(shape))
                except ValueError as exc:
                    raise ValueError(f"layer {i}: {exc}") from None
            else:
                raise ValueError(f"{where}: unsupported layer type {type(layer).__name__}")
            shapes.append(shape)
        if len(shape) != 1:
            raise ValueError(f"the last layer must give a vector of logits; it gives {shape} per sample "
                             f"(add Flatten() or GlobalAvgPool() and a Dense)")

        entries = []  # (layer index, name, shape, group)
        for i, layer in enumerate(layers):
            if isinstance(layer, Dense):
                specs = [("W", (layer.n_in, layer.n_out), "weight"), ("b", (layer.n_out,), "bias")]
            elif isinstance(layer, Activation):
                specs = []
            else:
                specs = layer.param_specs()
            entries += [(i, name, tuple(shp), group) for name, shp, group in specs]
        order = {"weight": 0, "bias": 1, "state": 2}
        entries.sort(key=lambda e: order[e[3]])  # stable: layer order within each group
        total = sum(math.prod(e[2]) for e in entries)
        theta, grad = np.zeros(total), np.zeros(total)
        views: dict[int, dict] = {}
        offset = 0
        for i, name, shp, group in entries:
            size = math.prod(shp)
            views.setdefault(i, {})[name] = (theta[offset:offset + size].reshape(shp),
                                             grad[offset:offset + size].reshape(shp))
            offset += size
        for i, layer in enumerate(layers):
            v = views.get(i)
            if v is None:
                continue
            if isinstance(layer, Dense):
                layer.bind(v["W"][0], v["b"][0], v["W"][1], v["b"][1])
            else:
                layer.bind_params(v)
        self.layers = list(layers)
        self.layer_shapes_ = shapes
        self._theta, self._grad = theta, grad
        self._n_decay = sum(math.prod(e[2]) for e in entries if e[3] == "weight")
        self._l2_buf = np.zeros(self._n_decay)

    def _init_weights(self, rng: np.random.Generator) -> None:
        """He normal before a ReLU-family activation, else Glorot uniform; biases zero (BatchNorm and
        pooling between a layer and its activation are skipped when looking ahead)."""
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Dense) and getattr(layer, "kind", None) != "conv":
                continue
            scheme = "identity"
            for nxt in self.layers[i + 1:]:
                if isinstance(nxt, Activation):
                    scheme = nxt.name
                    break
                if isinstance(nxt, Dense) or getattr(nxt, "kind", None) == "conv":
                    break
            if isinstance(layer, Dense):
                init_dense(layer, scheme, rng)
                continue
            if scheme in RELU_FAMILY:
                layer.W = rng.normal(0.0, np.sqrt(2.0 / layer.fan_in), size=layer.w_shape)
            else:
                limit = np.sqrt(6.0 / (layer.fan_in + layer.fan_out))
                layer.W = rng.uniform(-limit, limit, size=layer.w_shape)
            layer.b = np.zeros(layer.out_channels)

    @property
    def n_features_in_(self) -> int:
        return int(math.prod(self.input_shape))

    @property
    def n_outputs_(self) -> int | None:
        return self.layer_shapes_[-1][0] if self.built else None

    @property
    def n_trainable(self) -> int:
        """Parameters that get gradients (everything but BatchNorm running averages)."""
        state = sum(math.prod(s) for layer in self.layers if not isinstance(layer, (Dense, Activation))
                    for _, s, g in layer.param_specs() if g == "state")
        return self.n_parameters - state

    def _build(self, n_features, n_outputs):
        raise AssertionError("CNN is built at construction")

    def _ensure_built(self, n_features, n_outputs):
        super()._ensure_built(n_features, n_outputs)
        if n_outputs != self.n_outputs_:
            raise DataError(f"targets need {n_outputs} outputs; the CNN has {self.n_outputs_}")

    # ------------------------------------------------------------------------------- inputs
    def flatten_input(self, X, name: str = "X"):
        """(N, *input_shape) -> (N, prod(input_shape)); anything else is returned unchanged (and
        then validated as a flat (N, d) array)."""
        arr = np.asarray(X) if not isinstance(X, np.ndarray) else X
        if arr.ndim == 1 + len(self.input_shape) and arr.ndim > 2:
            if tuple(arr.shape[1:]) != self.input_shape:
                raise DataError(f"{name} has per-sample shape {tuple(arr.shape[1:])}; the model expects "
                                f"{self.input_shape} (or flat {self.n_features_in_})")
            return arr.reshape(arr.shape[0], -1)
        if arr.ndim > 2:
            raise DataError(f"{name} has shape {arr.shape}; expected (N, {', '.join(map(str, self.input_shape))}) "
                            f"or (N, {self.n_features_in_})")
        return arr

    def transform_input(self, X) -> np.ndarray:
        return super().transform_input(self.flatten_input(X))

    def _forward_layers(self, x: np.ndarray) -> np.ndarray:
        x = x.reshape((x.shape[0],) + self.input_shape)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def _forward_train(self, x: np.ndarray) -> np.ndarray:
        x = x.reshape((x.shape[0],) + self.input_shape)
        for layer in self.layers:
            x = layer.forward_train(x)
        return x

    def fit(self, X, y, **kwargs):
        return super().fit(self.flatten_input(X), y, **kwargs)

    def config(self) -> dict:
        return {"input_shape": list(self.input_shape), "layers": [layer.spec() for layer in self.layers],
                "output": self.output, "l2": self.l2, "seed": self.seed}

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"CNN({self.input_shape}, [{inner}], output={self.output!r})"


__all__ = ["CNN", "BatchNorm"]
