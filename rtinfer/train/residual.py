"""Residual block: y = f(x) + s(x), the skip connection of ResNets, in MLPs and CNNs.

    Residual([Dense(64, 64), Activation("relu"), Dense(64, 64)])            # identity skip: y = x + f(x)
    Residual([Conv2D(8, 16, 3, stride=2, padding=1), BatchNorm(16), Activation("relu"),
              Conv2D(16, 16, 3, padding="same"), BatchNorm(16)],
             shortcut=Conv2D(8, 16, 1, stride=2))                            # projection skip

The block is plain data; these attributes describe it completely (what a freezer reads):

- ``body``: list of layers; f(x) = body[-1](... body[1](body[0](x)))
- ``shortcut``: None (identity, s(x) = x) or one layer (a 1x1 ``Conv1D``/``Conv2D``, a
  ``Dense``, ...) with s(x) shaped like f(x): a projection where f changes the shape
- ``in_shape``, ``out_shape``: per-sample shapes, set by ``build`` (None before)

Nothing follows the add inside the block: a ResNet's post-add ReLU is an ``Activation`` after
it. The block follows the layer protocol of ``rtinfer.train.layers``; its parameters are those of
its layers, named "body{i}.{name}" and "shortcut.{name}", and live in the model's flat vector
like any other layer's. Gradients: dL/dx = body backward(dy) + shortcut backward(dy) (or + dy).
"""

from __future__ import annotations

import numpy as np


class Residual:
    """y = f(x) + s(x) with f = ``body`` (a list of layers) and s = ``shortcut`` (None: identity)."""

    kind = "residual"

    def __init__(self, body, shortcut=None):
        try:
            body = list(body)
        except TypeError:
            raise ValueError(f"Residual body must be a list of layers; got {body!r}") from None
        if not body:
            raise ValueError("Residual body needs at least one layer")
        for i, layer in enumerate(body):
            if not hasattr(layer, "forward_train"):
                raise ValueError(f"Residual body[{i}]: {layer!r} is not a layer")
        if shortcut is not None and not hasattr(shortcut, "forward_train"):
            raise ValueError(f"Residual shortcut must be None or a layer; got {shortcut!r}")
        self.body = body
        self.shortcut = shortcut
        self.in_shape = self.out_shape = None

    # shapes and parameters -------------------------------------------------------------------
    def build(self, in_shape: tuple) -> tuple:
        shape = tuple(in_shape)
        for i, layer in enumerate(self.body):
            try:
                shape = tuple(layer.build(shape))
            except ValueError as exc:
                raise ValueError(f"Residual body[{i}]: {exc}") from None
        if self.shortcut is None:
            if shape != tuple(in_shape):
                raise ValueError(f"Residual: the body maps {tuple(in_shape)} to {shape}; an identity shortcut "
                                 f"needs equal shapes: pass shortcut= a projection (a 1x1 convolution with the "
                                 f"body's stride, or a Dense) that maps {tuple(in_shape)} to {shape}")
        else:
            try:
                skip = tuple(self.shortcut.build(tuple(in_shape)))
            except ValueError as exc:
                raise ValueError(f"Residual shortcut: {exc}") from None
            if skip != shape:
                raise ValueError(f"Residual: the shortcut gives {skip} but the body gives {shape}; they must match")
        self.in_shape, self.out_shape = tuple(in_shape), shape
        return shape

    def _named_layers(self):
        named = [(f"body{i}", layer) for i, layer in enumerate(self.body)]
        if self.shortcut is not None:
            named.append(("shortcut", self.shortcut))
        return named

    def param_specs(self) -> list:
        return [(f"{prefix}.{name}", shape, group)
                for prefix, layer in self._named_layers() for name, shape, group in layer.param_specs()]

    def bind_params(self, views: dict) -> None:
        for prefix, layer in self._named_layers():
            mine = {name[len(prefix) + 1:]: v for name, v in views.items() if name.startswith(prefix + ".")}
            if mine:
                layer.bind_params(mine)

    def trainable_params(self) -> dict:
        return {f"{prefix}.{name}": arr for prefix, layer in self._named_layers()
                for name, arr in layer.trainable_params().items()}

    # compute ---------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        h = x
        for layer in self.body:
            h = layer.forward(h)
        skip = x if self.shortcut is None else self.shortcut.forward(x)
        return h + skip  # a new array: never one of the layers' buffers

    def forward_train(self, x: np.ndarray) -> np.ndarray:
        h = x
        for layer in self.body:
            h = layer.forward_train(h)
        skip = x if self.shortcut is None else self.shortcut.forward_train(x)
        return h + skip

    def backward(self, dy: np.ndarray, need_dx: bool = True):
        d = dy
        for i in range(len(self.body) - 1, -1, -1):
            d = self.body[i].backward(d, need_dx=need_dx or i > 0)
        if self.shortcut is None:
            d_skip = dy
        else:
            d_skip = self.shortcut.backward(dy, need_dx=need_dx)
        if not need_dx:
            return None
        return d + d_skip

    def spec(self) -> dict:
        return {"type": "residual", "body": [layer.spec() for layer in self.body],
                "shortcut": None if self.shortcut is None else self.shortcut.spec()}

    def __repr__(self) -> str:
        body = ", ".join(repr(layer) for layer in self.body)
        short = "" if self.shortcut is None else f", shortcut={self.shortcut!r}"
        return f"Residual([{body}]{short})"
