"""The classic models: linear, logistic and softmax regression, and the multi-layer perceptron.

All are ``network.Model``s (the interface ``export.freeze`` reads is described there).

Solvers are chosen by the ``solver`` argument and nothing else: LinearRegression
("closed_form", "gd", "minibatch") and LogisticRegression ("newton", "gd", "minibatch") fit with
their full-batch solver in ``model.fit(X, y)``, which takes no training arguments; with
solver="minibatch" ``model.fit(X, y, **kwargs)`` is ``rtinfer.train.fit`` (epochs, optimizer,
...). Constructor arguments that the chosen solver does not use (``lr``, ``max_iter``, ``tol``)
are refused. A full-batch fit starts from scratch (the preprocessor, once fitted, is kept); it
warns with a ``ConvergenceWarning`` when it stops at ``max_iter`` (``converged_`` False) and, if
the loss turns non-finite, restores the last finite weights and raises ``DivergenceError``.
SoftmaxRegression and MLP train by mini-batch (``fit``).
"""

from __future__ import annotations

import warnings

import numpy as np

from ._validate import ConvergenceWarning, DivergenceError, check_positive_int, check_X
from .layers import Activation, Dense, sigmoid
from .losses import BinaryCrossEntropy, MeanSquaredError
from .network import Model, Sequential, init_dense, keeps_params


def _gd_step_size(Xa: np.ndarray, curvature: float, l2: float) -> float:
    """1/L for full-batch gradient descent, L = curvature * lambda_max(Xa^T Xa / N) + l2."""
    lam = float(np.linalg.eigvalsh(Xa.T @ Xa / Xa.shape[0])[-1])
    return 1.0 / (curvature * lam + l2)


def _check_solver(model, solver: str, solvers: tuple, lr, max_iter, tol) -> None:
    """Refuse a solver name outside ``solvers`` and arguments the solver does not use."""
    if solver not in solvers:
        raise ValueError(f"solver must be one of {', '.join(map(repr, solvers))}; got {solver!r}")
    uses = {"lr": solver == "gd", "max_iter": solver in ("gd", "newton"), "tol": solver in ("gd", "newton")}
    for name, value in (("lr", lr), ("max_iter", max_iter), ("tol", tol)):
        if value is not None and not uses[name]:
            users = [s for s in solvers if (s == "gd" if name == "lr" else s in ("gd", "newton"))]
            hint = "; give the mini-batch learning rate to fit(lr=...)" if name == "lr" and solver == "minibatch" else ""
            raise ValueError(f"{type(model).__name__}: {name}={value!r} does not apply to solver={solver!r} "
                             f"(only to {' / '.join(map(repr, users))}){hint}")


class _FullBatchModel(Model):
    """Shared full-batch fitting for the linear models (closed form, Newton, gradient descent)."""

    solver = "minibatch"

    def fit(self, X, y, **kwargs):
        """The chosen solver (see the module doc); returns self."""
        if self.solver == "minibatch":
            return super().fit(X, y, **kwargs)
        verbose = kwargs.pop("verbose", None)
        if kwargs:
            raise ValueError(f"{type(self).__name__}(solver={self.solver!r}).fit() takes no training arguments; "
                             f"got {', '.join(sorted(kwargs))} (mini-batch arguments: construct "
                             f"{type(self).__name__}(solver='minibatch') to use them)")
        Xp, t = self._full_batch_data(X, y)
        self._solve(Xp, t)
        if verbose:
            state = "converged" if self.converged_ else "stopped at max_iter"
            print(f"{type(self).__name__}(solver={self.solver!r}): {self.n_iter_} iterations, {state}")
        return self

    def _solve(self, Xp, t) -> None:
        raise NotImplementedError

    def _full_batch_data(self, X, y):
        self._unbuild()
        X = check_X(X)
        t, k = self.encode_targets(y, X.shape[0])
        if self.preprocessor is not None:
            if not self.preprocessor.fitted:
                self.preprocessor.fit(X)
            Xp = self.preprocessor.transform(X)
        else:
            Xp = X
        self.ensure_built(X.shape[1], k)
        return Xp, t

    def _stop(self, value: float, where: str, last_good: np.ndarray) -> None:
        """Divergence check of one iterate: restore ``last_good`` and raise if not finite."""
        if np.isfinite(value) and np.isfinite(self._grad).all():
            return
        self._theta[...] = last_good
        raise DivergenceError(f"{type(self).__name__}(solver={self.solver!r}) diverged at iteration {self.n_iter_} "
                              f"(loss {value}); the last finite weights are restored{where}")

    def _warn_max_iter(self) -> None:
        g = float(np.max(np.abs(self._grad)))
        warnings.warn(f"{type(self).__name__}(solver={self.solver!r}) stopped at max_iter={self.max_iter} before "
                      f"max|gradient| < tol={self.tol} (max|gradient| = {g:.3g}); converged_ is False",
                      ConvergenceWarning, stacklevel=4)

    def _gradient_descent(self, Xp, t, loss, curvature: float) -> None:
        Xa = np.column_stack([Xp, np.ones(len(Xp))])
        lr = self.lr if self.lr is not None else _gd_step_size(Xa, curvature, self.l2)
        theta, grad = self._theta, self._grad
        last_good = theta.copy()
        self.n_iter_ = 0
        self.converged_ = False
        for i in range(self.max_iter + 1):
            value = self.objective(Xp, t, loss)
            self._stop(value, f"; lower lr (now {lr})", last_good)
            if np.max(np.abs(grad)) < self.tol:
                self.converged_ = True
                break
            if i == self.max_iter:
                break
            last_good[...] = theta
            theta -= lr * grad
            self.n_iter_ += 1
        self.loss_ = value
        if not self.converged_:
            self._warn_max_iter()


class LinearRegression(_FullBatchModel):
    """Least squares y = x @ W + b with optional ridge penalty ``l2`` on W.

    solver="closed_form" (default): lstsq on [X, 1] (l2 = 0), or the normal equations
        (X1^T X1 + N k l2 D) theta = X1^T Y by np.linalg.solve (D = identity without the bias);
    solver="gd": full-batch gradient descent on 0.5 * mean((XW + b - Y)^2) + 0.5 l2 |W|^2 with
        step lr (default 1/L) until max|gradient| < tol (default 1e-10) or max_iter (100000)
        steps; ``n_iter_`` counts the steps;
    solver="minibatch": ``fit(X, y, **kwargs)`` is ``rtinfer.train.fit`` (any optimizer)."""

    SOLVERS = ("closed_form", "gd", "minibatch")

    @keeps_params
    def __init__(self, solver: str = "closed_form", l2: float = 0.0, lr: float | None = None,
                 max_iter: int | None = None, tol: float | None = None, preprocess=None, seed: int = 0):
        super().__init__(output="identity", l2=l2, preprocess=preprocess, seed=seed)
        _check_solver(self, solver, self.SOLVERS, lr, max_iter, tol)
        self.solver = solver
        self.lr = None if lr is None else float(lr)
        self.max_iter = check_positive_int(100_000 if max_iter is None else max_iter, "max_iter")
        self.tol = 1e-10 if tol is None else float(tol)
        self.n_iter_ = 0
        self.converged_ = False

    def _build(self, n_features, n_outputs):
        self._install([Dense(n_features, n_outputs)], (n_features,))

    def _solve(self, Xp, t):
        if self.solver == "gd":
            self._gradient_descent(Xp, t, MeanSquaredError(), curvature=1.0 / t.shape[1])
            return
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
        self.converged_ = True

    def config(self):
        cfg = {"solver": self.solver, "l2": self.l2, "seed": self.seed}
        if self.solver == "gd":
            cfg.update(lr=self.lr, max_iter=self.max_iter, tol=self.tol)
        return cfg


class LogisticRegression(_FullBatchModel):
    """Binary logistic regression: one logit z = x @ w + b, output "sigmoid", any two labels
    (classes_ sorted: the logit is for classes_[1]).
    Objective: mean binary cross-entropy (from logits) + 0.5 * l2 * |w|^2.

    solver="newton" (default): theta <- theta - H^-1 g with H = X1^T S X1 / N + l2 D,
        S = diag(p (1 - p)), X1 = [X, 1] (max_iter default 100);
    solver="gd": theta <- theta - lr g (lr default 1/L, L = lambda_max/4 + l2; max_iter 100000);
        both stop when max|g| < tol (default 1e-8); ``n_iter_`` is the number of updates taken;
    solver="minibatch": ``fit(X, y, **kwargs)`` is ``rtinfer.train.fit``."""

    SOLVERS = ("newton", "gd", "minibatch")

    @keeps_params
    def __init__(self, solver: str = "newton", l2: float = 1e-3, lr: float | None = None,
                 max_iter: int | None = None, tol: float | None = None, preprocess=None, seed: int = 0):
        super().__init__(output="sigmoid", l2=l2, preprocess=preprocess, seed=seed)
        _check_solver(self, solver, self.SOLVERS, lr, max_iter, tol)
        self.solver = solver
        self.lr = None if lr is None else float(lr)
        if max_iter is None:
            max_iter = 100 if solver == "newton" else 100_000
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol = 1e-8 if tol is None else float(tol)
        self.n_iter_ = 0
        self.converged_ = False

    def _build(self, n_features, n_outputs):
        self._install([Dense(n_features, 1)], (n_features,))

    def _solve(self, Xp, t):
        loss = BinaryCrossEntropy()
        if self.solver == "gd":
            self._gradient_descent(Xp, t, loss, curvature=0.25)
            return
        n, d = Xp.shape
        Xa = np.column_stack([Xp, np.ones(n)])
        reg = np.full(d + 1, self.l2)
        reg[-1] = 0.0
        theta, grad = self._theta, self._grad  # layout [w (d), b]: the same order as Xa's columns
        last_good = theta.copy()
        self.n_iter_ = 0
        self.converged_ = False
        for i in range(self.max_iter + 1):
            value = self.objective(Xp, t, loss)
            self._stop(value, "", last_good)
            if np.max(np.abs(grad)) < self.tol:
                self.converged_ = True
                break
            if i == self.max_iter:
                break
            p = sigmoid(Xa @ theta)
            s = p * (1.0 - p)
            H = (Xa.T * s) @ Xa / n
            H[np.arange(d + 1), np.arange(d + 1)] += reg
            try:
                step = np.linalg.solve(H, grad)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(H, grad, rcond=None)[0]
            last_good[...] = theta
            theta -= step
            self.n_iter_ += 1
        self.loss_ = value
        if not self.converged_:
            self._warn_max_iter()

    def config(self):
        cfg = {"solver": self.solver, "l2": self.l2, "seed": self.seed}
        if self.solver != "minibatch":
            cfg.update(max_iter=self.max_iter, tol=self.tol)
        if self.solver == "gd":
            cfg["lr"] = self.lr
        return cfg


class SoftmaxRegression(Model):
    """Multinomial logistic regression: one weight vector and bias per class (one Dense layer),
    output "softmax"; K = n_classes, or the number of distinct labels. Train with ``fit``."""

    @keeps_params
    def __init__(self, n_classes: int | None = None, l2: float = 0.0, preprocess=None, seed: int = 0):
        super().__init__(output="softmax", l2=l2, preprocess=preprocess, seed=seed)
        if n_classes is not None:
            n_classes = check_positive_int(n_classes, "n_classes")
            if n_classes < 2:
                raise ValueError(f"n_classes must be >= 2; got {n_classes}")
        self.n_classes = n_classes

    def _n_classes_for(self, found) -> int:
        if self.n_classes is not None:
            return self.n_classes
        return super()._n_classes_for(found)

    def _build(self, n_features, n_outputs):
        layer = Dense(n_features, n_outputs)
        init_dense(layer, "identity", np.random.default_rng(self.seed))
        self._install([layer], (n_features,))

    def config(self):
        return {"n_classes": self.n_classes, "l2": self.l2, "seed": self.seed}


class MLP(Sequential):
    """Multi-layer perceptron. ``sizes`` = [n_in, hidden..., n_out]; each hidden Dense is followed
    by ``activation``; the last Dense gives the logits for ``output``.

    MLP([64, 64, 10], activation="relu", output="softmax") is 64 inputs, one hidden layer of 64
    ReLU units and 10 classes. Weights seeded by ``seed``; ``init="auto"``: He before ReLU-family
    activations, Glorot otherwise (the output layer: Glorot); ``init="he"`` / ``"glorot"`` use
    one scheme for every layer. (For residual connections, build a ``Sequential``.)"""

    @keeps_params
    def __init__(self, sizes, activation: str = "relu", output: str = "softmax", alpha: float | None = None,
                 l2: float = 0.0, preprocess=None, seed: int = 0, init: str = "auto"):
        sizes = [check_positive_int(s, "MLP layer size") for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"MLP sizes needs at least [n_in, n_out]; got {sizes}")
        if output == "sigmoid" and sizes[-1] != 1:
            raise ValueError(f"output 'sigmoid' needs 1 output unit; sizes[-1] is {sizes[-1]}")
        if output == "softmax" and sizes[-1] < 2:
            raise ValueError(f"output 'softmax' needs >= 2 output units; sizes[-1] is {sizes[-1]}")
        probe = Activation(activation, alpha)
        layers: list = []
        for i in range(len(sizes) - 1):
            layers.append(Dense(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(Activation(probe.name, alpha if probe.name == "leaky_relu" else None))
        super().__init__((sizes[0],), layers, output=output, l2=l2, preprocess=preprocess, seed=seed, init=init)
        self.sizes = sizes
        self.activation, self.alpha = probe.name, probe.alpha

    def config(self):
        return {"sizes": list(self.sizes), "activation": self.activation, "output": self.output,
                "alpha": self.alpha if self.activation == "leaky_relu" else None, "l2": self.l2,
                "seed": self.seed, "init": self.init}

    def __repr__(self) -> str:
        return Model.__repr__(self)
