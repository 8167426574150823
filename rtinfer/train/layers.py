"""Layers with forward and backward passes, in NumPy float64.

Row-vector convention throughout: a batch ``x`` is (N, n_in) and ``Dense`` computes
``y = x @ W + b`` with ``W`` (n_in, n_out) and ``b`` (n_out,).

Each layer has two forward paths:

- ``forward(x)``: inference; allocates its result and keeps no state.
- ``forward_train(x)``: training; writes into per-batch-size buffers owned by the layer and
  remembers what ``backward`` needs. The returned array is overwritten by the next call.

``backward(dy)`` takes dLoss/dy (N, n_out) and returns dLoss/dx (N, n_in) (a layer buffer);
``Dense.backward`` also writes dLoss/dW and dLoss/db into ``dW`` and ``db``.

The layer protocol every model relies on (shared by ``conv`` and ``residual`` layers):

- ``build(in_shape) -> out_shape``: per-sample shapes (tuples without the batch axis); raises
  ValueError naming the problem when the layer cannot take ``in_shape``.
- ``param_specs() -> [(name, shape, group)]`` with group "weight" (L2-decayed), "bias" (trained,
  not decayed) or "state" (kept with the parameters, never given a gradient);
  ``bind_params({name: (value view, gradient view)})`` moves the parameters into a model's flat
  vectors, keeping their values; ``trainable_params() -> {name: value view}``.
- ``spec() -> dict`` (JSON), rebuilt by ``rtinfer.train.specs.layer_from_spec``; ``kind`` (str).
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus")
_ALIASES = {"linear": "identity", "none": "identity", "leakyrelu": "leaky_relu", "logistic": "sigmoid"}
DEFAULT_LEAKY_ALPHA = 0.01  # as rtinfer.ops.ACT_DEFAULTS[Act.LEAKY_RELU]


def _buffer(cache: dict, n: int, width) -> np.ndarray:
    """A cached (n, width) buffer; width is an int or a per-sample shape tuple."""
    shape = (n,) + (tuple(width) if isinstance(width, tuple) else (width,))
    buf = cache.get(n)
    if buf is None or buf.shape != shape:
        if len(cache) >= 4:  # batch sizes vary only at the last batch; keep the cache small
            cache.clear()
        buf = cache[n] = np.empty(shape)
    return buf


class Dense:
    """Fully connected layer: y = x @ W + b.  W (n_in, n_out) float64, b (n_out,) float64."""

    kind = "dense"

    def __init__(self, n_in: int, n_out: int, W=None, b=None):
        n_in, n_out = int(n_in), int(n_out)
        if n_in < 1 or n_out < 1:
            raise ValueError(f"Dense sizes must be >= 1; got n_in={n_in}, n_out={n_out}")
        self.n_in, self.n_out = n_in, n_out
        self._W = np.zeros((n_in, n_out))
        self._b = np.zeros(n_out)
        self._dW = np.zeros((n_in, n_out))
        self._db = np.zeros(n_out)
        if W is not None:
            self.W = W
        if b is not None:
            self.b = b
        self._x = None
        self._out: dict = {}
        self._dx: dict = {}

    # W and b may be views into a model's flat parameter vector: assignment copies in place.
    @property
    def W(self) -> np.ndarray:
        return self._W

    @W.setter
    def W(self, value) -> None:
        value = np.asarray(value, dtype=np.float64)
        if value.shape != self._W.shape:
            raise ValueError(f"Dense W must have shape {self._W.shape}; got {value.shape}")
        self._W[...] = value

    @property
    def b(self) -> np.ndarray:
        return self._b

    @b.setter
    def b(self, value) -> None:
        value = np.asarray(value, dtype=np.float64)
        if value.shape != self._b.shape:
            raise ValueError(f"Dense b must have shape {self._b.shape}; got {value.shape}")
        self._b[...] = value

    @property
    def dW(self) -> np.ndarray:
        return self._dW

    @property
    def db(self) -> np.ndarray:
        return self._db

    def bind(self, W_view, b_view, dW_view, db_view) -> None:
        """Move the parameters into the given views (of a flat vector), keeping their values."""
        W_view[...] = self._W
        b_view[...] = self._b
        self._W, self._b, self._dW, self._db = W_view, b_view, dW_view, db_view

    def build(self, in_shape: tuple) -> tuple:
        if tuple(in_shape) != (self.n_in,):
            raise ValueError(f"{self!r} takes ({self.n_in},) per sample but receives {tuple(in_shape)}; "
                             f"put Flatten() or GlobalAvgPool() before a Dense")
        return (self.n_out,)

    def param_specs(self) -> list:
        return [("W", (self.n_in, self.n_out), "weight"), ("b", (self.n_out,), "bias")]

    def bind_params(self, views: dict) -> None:
        """views: name -> (value view, gradient view) of the model's flat vectors; values kept."""
        self.bind(views["W"][0], views["b"][0], views["W"][1], views["b"][1])

    def trainable_params(self) -> dict:
        return {"W": self._W, "b": self._b}

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = x @ self._W
        out += self._b
        return out

    def forward_train(self, x: np.ndarray) -> np.ndarray:
        out = _buffer(self._out, x.shape[0], self.n_out)
        np.matmul(x, self._W, out=out)
        out += self._b
        self._x = x
        return out

    def backward(self, dy: np.ndarray, need_dx: bool = True):
        np.matmul(self._x.T, dy, out=self._dW)
        np.sum(dy, axis=0, out=self._db)
        if not need_dx:
            return None
        dx = _buffer(self._dx, dy.shape[0], self.n_in)
        np.matmul(dy, self._W.T, out=dx)
        return dx

    def spec(self) -> dict:
        return {"type": "dense", "n_in": self.n_in, "n_out": self.n_out}

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out})"


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp(-log(1 + exp(-x)))."""
    out = np.logaddexp(0.0, -x, out=out)
    np.negative(out, out=out)
    return np.exp(out, out=out)


def activation_forward(name: str, x: np.ndarray, alpha: float = 0.0, out: np.ndarray | None = None):
    """Apply a named activation elementwise (see rtinfer.ops for the contracts)."""
    if name == "identity":
        if out is None:
            return np.array(x, dtype=np.float64)
        out[...] = x
        return out
    if name == "relu":
        return np.maximum(x, 0.0, out=out)
    if name == "leaky_relu":
        if 0.0 <= alpha <= 1.0:  # x if x >= 0 else alpha*x  ==  max(x, alpha*x)
            out = np.multiply(x, alpha, out=out)
            return np.maximum(x, out, out=out)
        res = np.where(x >= 0, x, alpha * x)
        if out is None:
            return res
        out[...] = res
        return out
    if name == "sigmoid":
        return sigmoid(x, out=out)
    if name == "tanh":
        return np.tanh(x, out=out)
    if name == "softplus":  # max(x, 0) + log1p(exp(-|x|))
        return np.logaddexp(0.0, x, out=out)
    raise ValueError(f"unknown activation {name!r}; supported: {', '.join(ACTIVATIONS)}")


class Activation:
    """Elementwise activation. ``name`` in ACTIVATIONS; ``alpha`` is the leaky_relu slope
    (default 0.01) and 0.0 for every other activation."""

    kind = "activation"

    def __init__(self, name: str, alpha: float | None = None):
        key = str(name).lower()
        key = _ALIASES.get(key, key)
        if key not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; supported: {', '.join(ACTIVATIONS)}")
        if key == "leaky_relu":
            a = DEFAULT_LEAKY_ALPHA if alpha is None else float(alpha)
            if not np.isfinite(a):
                raise ValueError(f"leaky_relu alpha must be finite; got {alpha!r}")
        else:
            if alpha not in (None, 0, 0.0):
                raise ValueError(f"activation {key!r} takes no alpha; got alpha={alpha!r}")
            a = 0.0
        self.name = key
        self.alpha = a
        self._x = None
        self._y = None
        self._out: dict = {}
        self._dx: dict = {}

    def build(self, in_shape: tuple) -> tuple:
        return tuple(in_shape)

    def param_specs(self) -> list:
        return []

    def bind_params(self, views: dict) -> None:
        pass

    def trainable_params(self) -> dict:
        return {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        return activation_forward(self.name, x, self.alpha)

    def forward_train(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        if self.name == "identity":
            self._y = x
            return x
        y = _buffer(self._out, x.shape[0], x.shape[1:])  # any per-sample shape (CNN feature maps)
        activation_forward(self.name, x, self.alpha, out=y)
        self._y = y
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True):
        name, x, y = self.name, self._x, self._y
        if name == "identity":
            return dy
        dx = _buffer(self._dx, dy.shape[0], dy.shape[1:])
        if name == "relu":
            np.multiply(dy, x > 0, out=dx)
        elif name == "leaky_relu":
            np.multiply(dy, np.where(x >= 0, 1.0, self.alpha), out=dx)
        elif name == "sigmoid":  # y (1 - y)
            np.subtract(1.0, y, out=dx)
            dx *= y
            dx *= dy
        elif name == "tanh":  # 1 - y^2
            np.multiply(y, y, out=dx)
            np.subtract(1.0, dx, out=dx)
            dx *= dy
        elif name == "softplus":  # sigmoid(x)
            sigmoid(x, out=dx)
            dx *= dy
        return dx

    def spec(self) -> dict:
        return {"type": "activation", "name": self.name, "alpha": self.alpha}

    def __repr__(self) -> str:
        return f"Activation({self.name!r})" if self.name != "leaky_relu" else f"Activation('leaky_relu', alpha={self.alpha})"
