"""Gradient checking: central differences in float64 against the analytic gradient.

The check leaves the model as it found it (inference-safe): every evaluation runs the training
objective (BatchNorm normalizes with batch statistics, as in training, and so updates its
running averages), and the parameter vector, running averages included, is restored bit for bit
afterwards; an unfitted preprocessor is fitted on a copy; ``classes_`` is not changed.

Error metric per parameter tensor, analytic a and numeric n:

    ||a - n|| / max(||a|| + ||n||, floor)

Relative where the gradient is of normal size; below ``floor`` (default 1e-3) absolute, in units
of floor, so a gradient that is exactly zero (a bias feeding BatchNorm) is not reported as error
1.0 because of 1e-17 of round-off. (Central differences with eps 1e-6 on an objective of order 1
carry about 1e-10 of round-off per component.)
"""

from __future__ import annotations

import copy

import numpy as np

from ._validate import check_X
from .losses import get_loss

DEFAULT_FLOOR = 1e-3


def gradient_errors(model, loss, X, y, *, eps: float = 1e-6, floor: float = DEFAULT_FLOOR) -> dict:
    """Error (see the module doc) per parameter tensor, as {"layer{i}.{name}": err} (names of a
    residual block's tensors are nested: "layer{i}.body{j}.W"). The objective is the model's
    training objective (``loss`` or the head's default, plus its L2 penalty) on (X, y),
    preprocessing included. An unbuilt model (linear models before fit) is built."""
    X = check_X(model.flatten_input(X), n_features=model.n_features_in_)
    t, n_out, _ = model.target_encoding(y, X.shape[0], fit_classes=model.classes_ is None)
    pre = model.preprocessor
    if pre is not None:
        if not pre.fitted:
            pre = copy.deepcopy(pre).fit(X)
        X = pre.transform(X)
    model.ensure_built(X.shape[1], n_out)
    loss = get_loss(loss, model.output)

    theta = model.theta
    saved = theta.copy()
    try:
        model.objective(X, t, loss)
        analytic = model.grad.copy()
        numeric = np.empty_like(analytic)
        for i in range(theta.size):
            old = theta[i]
            theta[i] = old + eps
            f_plus = model.objective(X, t, loss)
            theta[i] = old - eps
            f_minus = model.objective(X, t, loss)
            theta[i] = old
            numeric[i] = (f_plus - f_minus) / (2.0 * eps)
    finally:
        theta[...] = saved  # BatchNorm running averages included

    def err(a, b):
        return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), floor))

    base = theta.__array_interface__["data"][0]
    errors = {}
    for i, layer in enumerate(model.layers):
        for name, arr in layer.trainable_params().items():
            offset = (arr.__array_interface__["data"][0] - base) // theta.itemsize
            sl = slice(offset, offset + arr.size)
            errors[f"layer{i}.{name}"] = err(analytic[sl], numeric[sl])
    return errors


def check_gradients(model, loss, X, y, *, eps: float = 1e-6, floor: float = DEFAULT_FLOOR) -> float:
    """Max error over all parameter tensors (see ``gradient_errors``)."""
    return max(gradient_errors(model, loss, X, y, eps=eps, floor=floor).values())
