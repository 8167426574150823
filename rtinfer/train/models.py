"""Trainable models. Every model exposes the interface ``export.freeze`` relies on:

- ``layers``: list of ``Dense`` (W (n_in, n_out), b (n_out,), y = x @ W + b) and ``Activation``
  (``name``, ``alpha``) objects, in order; the last layer produces the logits.
- ``preprocessor``: None or a fitted Standardizer/Whitener with ``as_affine() -> (A, c)``.
- ``output``: the head applied to the logits: "identity", "sigmoid" (one logit) or "softmax".
- ``forward(X)`` -> logits (N, n_out) float64, preprocessing included;
  ``infer(X)`` -> head(forward(X)) float64; ``predict(X)``; ``predict_proba(X)`` (classifiers).
- ``classes_``: int64 labels 0..K-1 for classifiers (K = 2 for "sigmoid"), else None.

Parameters of all Dense layers live in one flat float64 vector, all weights first then all
biases (``W`` and ``b`` are views into it), so optimizers update it in one pass and L2 weight
decay applies to the leading weights-only part. The training objective is
``loss(logits, targets) + 0.5 * l2 * sum of squared weights`` (biases not decayed).

A preprocessor given unfitted is fitted by the first ``fit`` on that call's training data only
(after any validation split) and is kept as is by later ``fit`` calls.
"""

from __future__ import annotations

import numpy as np

from ._validate import (
    DataError,
    check_labels,
    check_lengths,
    check_nonneg_float,
    check_positive_int,
    check_targets,
    check_X,
)
from .layers import Activation, Dense, _sigmoid
from .losses import BinaryCrossEntropy, MeanSquaredError, get_loss
from .preprocessing import make_preprocessor

HEADS = ("identity", "sigmoid", "softmax")
RELU_FAMILY = ("relu", "leaky_relu")


def apply_head(output: str, z: np.ndarray) -> np.ndarray:
    """The model head on logits z (N, k): identity, sigmoid, or softmax over axis 1 (max first)."""
    if output == "identity":
        return np.array(z, dtype=np.float64)
    if output == "sigmoid":
        return _sigmoid(z)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def init_dense(layer: Dense, activation: str, rng: np.random.Generator) -> None:
    """He normal (std sqrt(2/n_in)) before a ReLU-family activation, else Glorot/Xavier uniform
    (limit sqrt(6/(n_in+n_out))); biases zero."""
    n_in, n_out = layer.n_in, layer.n_out
    if activation in RELU_FAMILY:
        layer.W = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))
    else:
        limit = np.sqrt(6.0 / (n_in + n_out))
        layer.W = rng.uniform(-limit, limit, size=(n_in, n_out))
    layer.b = np.zeros(n_out)


class Model:
    """Base class: parameter storage, inference, target encoding and the training objective."""

    is_classifier = False

    def __init__(self, *, output: str, l2: float = 0.0, preprocess=None, seed: int = 0):
        if output not in HEADS:
            raise ValueError(f"output must be one of {HEADS}; got {output!r}")
        self.output = output
        self.l2 = check_nonneg_float(l2, "l2")
        self.preprocessor = make_preprocessor(preprocess)
        self.seed = int(seed)
        self.layers: list = []
        self.classes_: np.ndarray | None = None
        self.history_ = None
        self._theta = np.zeros(0)
        self._grad = np.zeros(0)
        self._n_decay = 0

    # ----------------------------------------------------------------- structure and parameters
    def _install(self, layers: list) -> None:
        """Set ``layers`` and move all Dense parameters into one flat vector (weights first)."""
        dense = [layer for layer in layers if isinstance(layer, Dense)]
        n_w = sum(d.n_in * d.n_out for d in dense)
        n_b = sum(d.n_out for d in dense)
        theta = np.zeros(n_w + n_b)
        grad = np.zeros(n_w + n_b)
        ow, ob = 0, n_w
        for d in dense:
            sw, sb = d.n_in * d.n_out, d.n_out
            d.bind(
                theta[ow : ow + sw].reshape(d.n_in, d.n_out),
                theta[ob : ob + sb],
                grad[ow : ow + sw].reshape(d.n_in, d.n_out),
                grad[ob : ob + sb],
            )
            ow, ob = ow + sw, ob + sb
        self.layers = list(layers)
        self._theta, self._grad, self._n_decay = theta, grad, n_w
        self._l2_buf = np.zeros(n_w)

    @property
    def built(self) -> bool:
        return bool(self.layers)

    @property
    def n_features_in_(self) -> int | None:
        return self.layers[0].n_in if self.built else None

    @property
    def n_outputs_(self) -> int | None:
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]
        return dense[-1].n_out if dense else None

    @property
    def n_parameters(self) -> int:
        return int(self._theta.size)

    def get_parameters(self) -> np.ndarray:
        """A copy of the flat parameter vector (all W row-major in layer order, then all b)."""
        return self._theta.copy()

    def set_parameters(self, theta) -> None:
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != self._theta.shape:
            raise ValueError(f"parameter vector must have shape {self._theta.shape}; got {theta.shape}")
        self._theta[...] = theta

    def _require_built(self) -> None:
        if not self.built:
            raise ValueError(f"{type(self).__name__} is not fitted yet")

    def _build(self, n_features: int, n_outputs: int) -> None:
        raise NotImplementedError

    def _ensure_built(self, n_features: int, n_outputs: int) -> None:
        if not self.built:
            self._build(n_features, n_outputs)
            return
        if n_features != self.n_features_in_:
            raise DataError(f"X has {n_features} features; the model expects {self.n_features_in_}")

    # ------------------------------------------------------------------------------ inference
    def transform_input(self, X) -> np.ndarray:
        """Validated X (N, d) float64 after the preprocessor (if any)."""
        self._require_built()
        X = check_X(X, n_features=self.n_features_in_)
        if self.preprocessor is not None:
            X = self.preprocessor.transform(X)
        return X

    def _forward_layers(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def forward(self, X) -> np.ndarray:
        """Logits (N, n_out) float64, preprocessing included."""
        return self._forward_layers(self.transform_input(X))

    def infer(self, X) -> np.ndarray:
        """head(forward(X)) (N, n_out) float64: what a frozen model must reproduce."""
        return apply_head(self.output, self.forward(X))

    def predict(self, X) -> np.ndarray:
        z = self.forward(X)
        if self.output == "identity":
            return z[:, 0] if z.shape[1] == 1 else z
        if self.output == "sigmoid":
            return self.classes_[(z[:, 0] > 0.0).astype(np.int64)]
        return self.classes_[np.argmax(z, axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (N, K); for a sigmoid head the columns are [P(0), P(1)]."""
        if not self.is_classifier:
            raise ValueError(f"{type(self).__name__} is a regressor; it has no predict_proba")
        p = self.infer(X)
        if self.output == "sigmoid":
            return np.column_stack([1.0 - p[:, 0], p[:, 0]])
        return p

    def score(self, X, y) -> float:
        """Accuracy for classifiers, R^2 (averaged over outputs) for regressors."""
        if self.is_classifier:
            labels = check_labels(y, len(self.classes_))
            pred = self.predict(X)
            check_lengths(pred, labels)
            return float(np.mean(pred == labels))
        t = check_targets(y, self.n_outputs_)
        z = self.forward(X)
        check_lengths(z, t)
        ss_res = ((t - z) ** 2).sum(axis=0)
        ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
        ss_tot[ss_tot == 0.0] = 1.0
        return float(np.mean(1.0 - ss_res / ss_tot))

    # ------------------------------------------------------------------------------ training
    def _n_classes_for(self, labels_hint) -> int:
        """K for a softmax head when the model is not built yet."""
        raise NotImplementedError

    def encode_targets(self, y, n_samples: int | None = None):
        """(targets for the loss, number of model outputs). Sets ``classes_`` for classifiers.

        identity: (N, k) float64; sigmoid: (N,) float64 in {0, 1}; softmax: (N,) int64 indices."""
        if self.output == "identity":
            t = check_targets(y, self.n_outputs_)
            k = t.shape[1]
        elif self.output == "sigmoid":
            if self.built and self.n_outputs_ != 1:
                raise ValueError(f"a sigmoid output needs 1 logit; the last layer has {self.n_outputs_}")
            t = check_labels(y, 2).astype(np.float64)
            k = 1
            self.classes_ = np.arange(2, dtype=np.int64)
        else:
            k = self.n_outputs_ if self.built else self._n_classes_for(y)
            t = check_labels(y, k)
            self.classes_ = np.arange(k, dtype=np.int64)
        if n_samples is not None and t.shape[0] != n_samples:
            raise DataError(f"X has {n_samples} samples but y has {t.shape[0]}")
        return t, k

    def _forward_train(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward_train(x)
        return x

    def _backward(self, dz: np.ndarray) -> None:
        for i in range(len(self.layers) - 1, -1, -1):
            dz = self.layers[i].backward(dz, need_dx=i > 0)

    def penalty(self) -> float:
        """0.5 * l2 * sum of squared weights."""
        w = self._theta[: self._n_decay]
        return 0.5 * self.l2 * float(np.dot(w, w)) if self.l2 else 0.0

    def objective(self, Xp: np.ndarray, t, loss) -> float:
        """Training objective on preprocessed inputs Xp; writes its gradient into the flat
        gradient vector (``gradient()``)."""
        z = self._forward_train(Xp)
        value, dz = loss.value_and_grad(z, t)
        self._backward(dz)
        if self.l2:
            n = self._n_decay
            np.multiply(self._theta[:n], self.l2, out=self._l2_buf)
            self._grad[:n] += self._l2_buf
            value += self.penalty()
        return value

    def gradient(self) -> np.ndarray:
        """The flat gradient vector written by the last ``objective`` call (a view)."""
        return self._grad

    def default_loss(self):
        return get_loss(None, self.output)

    def fit(self, X, y, **kwargs):
        """Mini-batch training; keyword arguments as ``rtinfer.train.fit``. Returns self."""
        from .trainer import fit

        fit(self, X, y, **kwargs)
        return self

    def save(self, path) -> None:
        from .checkpoint import save_model

        save_model(self, path)

    # ------------------------------------------------------------------------ checkpoint hooks
    def config(self) -> dict:
        """Constructor keyword arguments (JSON values), used by checkpoints."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _gd_step_size(Xa: np.ndarray, curvature: float, l2: float) -> float:
    """1/L for full-batch gradient descent, L = curvature * lambda_max(Xa^T Xa / N) + l2."""
    lam = float(np.linalg.eigvalsh(Xa.T @ Xa / Xa.shape[0])[-1])
    return 1.0 / (curvature * lam + l2)


class _FullBatchMixin:
    """Shared full-batch fitting for the linear models (closed form, Newton, gradient descent)."""

    def _full_batch_data(self, X, y):
        X = check_X(X, n_features=self.n_features_in_)
        t, k = self.encode_targets(y, X.shape[0])
        if self.preprocessor is not None:
            if not self.preprocessor.fitted:
                self.preprocessor.fit(X)
            Xp = self.preprocessor.transform(X)
        else:
            Xp = X
        if self.built and self.n_outputs_ != k:
            self.layers = []
        self._ensure_built(X.shape[1], k)
        return Xp, t

    def _gradient_descent(self, Xp, t, loss, curvature: float) -> None:
        Xa = np.column_stack([Xp, np.ones(len(Xp))])
        lr = self.lr if self.lr is not None else _gd_step_size(Xa, curvature, self.l2)
        theta, grad = self._theta, self._grad
        self.n_iter_ = 0
        self.converged_ = False
        for _ in range(self.max_iter):
            value = self.objective(Xp, t, loss)
            if not np.isfinite(value):
                raise ValueError(f"gradient descent diverged (loss {value}); lower lr (now {lr})")
            if np.max(np.abs(grad)) < self.tol:
                self.converged_ = True
                break
            theta -= lr * grad
            self.n_iter_ += 1
        self.loss_ = self.objective(Xp, t, loss)


class LinearRegression(_FullBatchMixin, Model):
    """Least squares y = x @ W + b with optional ridge penalty ``l2`` on W.

    method="closed_form": lstsq on [X, 1] (l2 = 0), or the normal equations
        (X1^T X1 + N k l2 D) theta = X1^T Y by np.linalg.solve (D = identity without the bias);
    method="gd": full-batch gradient descent on 0.5 * mean((XW + b - Y)^2) + 0.5 l2 |W|^2 with
        step lr (default 1/L) until max|gradient| < tol; ``n_iter_`` counts the steps.
    Any model can also be trained with ``rtinfer.train.fit`` (mini-batch, any optimizer)."""

    def __init__(self, method: str = "closed_form", l2: float = 0.0, lr: float | None = None,
                 max_iter: int = 100_000, tol: float = 1e-10, preprocess=None, seed: int = 0):
        super().__init__(output="identity", l2=l2, preprocess=preprocess, seed=seed)
        if method not in ("closed_form", "gd"):
            raise ValueError(f"method must be 'closed_form' or 'gd'; got {method!r}")
        self.method = method
        self.lr = None if lr is None else float(lr)
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol = float(tol)
        self.n_iter_ = 0

    def _build(self, n_features, n_outputs):
        self._install([Dense(n_features, n_outputs)])

    def fit(self, X, y, **kwargs):
        if kwargs:  # mini-batch training with an optimizer
            return super().fit(X, y, **kwargs)
        Xp, t = self._full_batch_data(X, y)
        if self.method == "closed_form":
            n, k = t.shape
            Xa = np.column_stack([Xp, np.ones(n)])
            if self.l2 == 0.0:
                sol = np.linalg.lstsq(Xa, t, rcond=None)[0]
            else:
                A = Xa.T @ Xa
                d = Xp.shape[1]
                A[np.arange(d), np.arange(d)] += n * k * self.l2
                sol = np.linalg.solve(A, Xa.T @ t)
            self.layers[0].W = sol[:-1]
            self.layers[0].b = sol[-1]
            self.n_iter_ = 0
        else:
            self._gradient_descent(Xp, t, MeanSquaredError(), curvature=1.0 / t.shape[1])
        return self

    def config(self):
        return {"method": self.method, "l2": self.l2, "lr": self.lr, "max_iter": self.max_iter,
                "tol": self.tol, "seed": self.seed}


class LogisticRegression(_FullBatchMixin, Model):
    """Binary logistic regression, labels 0/1, one logit z = x @ w + b, output "sigmoid".
    Objective: mean binary cross-entropy (from logits) + 0.5 * l2 * |w|^2.

    method="newton": theta <- theta - H^-1 g with H = X1^T S X1 / N + l2 D, S = diag(p (1 - p)),
        X1 = [X, 1]; method="gd": theta <- theta - lr g (lr default 1/L, L = lambda_max/4 + l2).
    Both stop when max|g| < tol; ``n_iter_`` is the number of updates taken."""

    is_classifier = True

    def __init__(self, method: str = "newton", l2: float = 1e-3, lr: float | None = None,
                 max_iter: int | None = None, tol: float = 1e-8, preprocess=None, seed: int = 0):
        super().__init__(output="sigmoid", l2=l2, preprocess=preprocess, seed=seed)
        if method not in ("newton", "gd"):
            raise ValueError(f"method must be 'newton' or 'gd'; got {method!r}")
        self.method = method
        self.lr = None if lr is None else float(lr)
        if max_iter is None:
            max_iter = 100 if method == "newton" else 100_000
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol = float(tol)
        self.n_iter_ = 0

    def _build(self, n_features, n_outputs):
        self._install([Dense(n_features, 1)])

    def fit(self, X, y, **kwargs):
        if kwargs:
            return super().fit(X, y, **kwargs)
        Xp, t = self._full_batch_data(X, y)
        loss = BinaryCrossEntropy()
        if self.method == "gd":
            self._gradient_descent(Xp, t, loss, curvature=0.25)
            return self
        n, d = Xp.shape
        Xa = np.column_stack([Xp, np.ones(n)])
        reg = np.full(d + 1, self.l2)
        reg[-1] = 0.0
        theta, grad = self._theta, self._grad  # layout [w (d), b]: the same order as Xa's columns
        self.n_iter_ = 0
        self.converged_ = False
        for _ in range(self.max_iter):
            self.objective(Xp, t, loss)
            if np.max(np.abs(grad)) < self.tol:
                self.converged_ = True
                break
            p = _sigmoid(Xa @ theta)
            s = p * (1.0 - p)
            H = (Xa.T * s) @ Xa / n
            H[np.arange(d + 1), np.arange(d + 1)] += reg
            try:
                step = np.linalg.solve(H, grad)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(H, grad, rcond=None)[0]
            theta -= step
            self.n_iter_ += 1
        self.loss_ = self.objective(Xp, t, loss)
        return self

    def config(self):
        return {"method": self.method, "l2": self.l2, "lr": self.lr, "max_iter": self.max_iter,
                "tol": self.tol, "seed": self.seed}


class SoftmaxRegression(Model):
    """Multinomial logistic regression: one weight vector and bias per class (one Dense layer),
    output "softmax", labels 0..K-1 (K = n_classes, or max label + 1). Train with ``fit``."""

    is_classifier = True

    def __init__(self, n_classes: int | None = None, l2: float = 0.0, preprocess=None, seed: int = 0):
        super().__init__(output="softmax", l2=l2, preprocess=preprocess, seed=seed)
        if n_classes is not None:
            n_classes = check_positive_int(n_classes, "n_classes")
            if n_classes < 2:
                raise ValueError(f"n_classes must be >= 2; got {n_classes}")
        self.n_classes = n_classes

    def _n_classes_for(self, y) -> int:
        if self.n_classes is not None:
            return self.n_classes
        labels = check_labels(y, None)
        k = int(labels.max()) + 1
        if k < 2:
            raise DataError("y has a single class (0); softmax regression needs labels 0..K-1 with K >= 2")
        return k

    def _build(self, n_features, n_outputs):
        layer = Dense(n_features, n_outputs)
        init_dense(layer, "identity", np.random.default_rng(self.seed))
        self._install([layer])

    def config(self):
        return {"n_classes": self.n_classes, "l2": self.l2, "seed": self.seed}


class MLP(Model):
    """Multi-layer perceptron. ``sizes`` = [n_in, hidden..., n_out]; each hidden Dense is followed
    by ``activation``; the last Dense gives the logits for ``output``.

    MLP([64, 64, 10], activation="relu", output="softmax") is 64 inputs, one hidden layer of 64
    ReLU units and 10 classes. Weights seeded by ``seed``; ``init="auto"``: He before ReLU-family
    activations, Glorot otherwise (the output layer: Glorot); ``init="he"`` / ``"glorot"`` use
    one scheme for every layer."""

    def __init__(self, sizes, activation: str = "relu", output: str = "softmax", alpha: float | None = None,
                 l2: float = 0.0, preprocess=None, seed: int = 0, init: str = "auto"):
        super().__init__(output=output, l2=l2, preprocess=preprocess, seed=seed)
        sizes = [check_positive_int(s, "MLP layer size") for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"MLP sizes needs at least [n_in, n_out]; got {sizes}")
        if output == "sigmoid" and sizes[-1] != 1:
            raise ValueError(f"output 'sigmoid' needs 1 output unit; sizes[-1] is {sizes[-1]}")
        if output == "softmax" and sizes[-1] < 2:
            raise ValueError(f"output 'softmax' needs >= 2 output units; sizes[-1] is {sizes[-1]}")
        if init not in ("auto", "he", "glorot"):
            raise ValueError(f"init must be 'auto', 'he' or 'glorot'; got {init!r}")
        self.sizes = sizes
        self.init = init
        probe = Activation(activation, alpha)
        self.activation, self.alpha = probe.name, probe.alpha
        self.is_classifier = output != "identity"
        rng = np.random.default_rng(self.seed)
        layers: list = []
        for i in range(len(sizes) - 1):
            dense = Dense(sizes[i], sizes[i + 1])
            last = i == len(sizes) - 2
            scheme = "identity" if last else self.activation  # auto: by the following activation
            if init != "auto":
                scheme = "relu" if init == "he" else "identity"
            init_dense(dense, scheme, rng)
            layers.append(dense)
            if not last:
                layers.append(Activation(self.activation, alpha if self.activation == "leaky_relu" else None))
        self._install(layers)

    def _build(self, n_features, n_outputs):  # built at construction
        raise AssertionError("MLP is built at construction")

    def _ensure_built(self, n_features, n_outputs):
        super()._ensure_built(n_features, n_outputs)
        if n_outputs != self.n_outputs_:
            raise DataError(f"targets need {n_outputs} outputs; the MLP has {self.n_outputs_}")

    def config(self):
        return {"sizes": list(self.sizes), "activation": self.activation, "output": self.output,
                "alpha": self.alpha if self.activation == "leaky_relu" else None, "l2": self.l2,
                "seed": self.seed, "init": self.init}


MODEL_CLASSES = {cls.__name__: cls for cls in (LinearRegression, LogisticRegression, SoftmaxRegression, MLP)}
