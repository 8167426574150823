"""Gradient checking: central differences in float64 against the analytic gradient."""

from __future__ import annotations

import numpy as np

from ._validate import check_X
from .layers import Dense
from .losses import get_loss


def gradient_errors(model, loss, X, y, *, eps: float = 1e-6) -> dict:
    """Relative error ||g_analytic - g_numeric|| / (||g_analytic|| + ||g_numeric||) per parameter
    tensor, as {"layer{i}.W": err, "layer{i}.b": err}. The objective is the model's training
    objective (``loss`` or the head's default, plus its L2 penalty) on (X, y), preprocessing
    included (a fitted preprocessor is used; an unfitted one is fitted on X)."""
    flatten = getattr(model, "flatten_input", None)  # models with N-D samples (CNN)
    X = check_X(flatten(X) if flatten is not None else X, n_features=model.n_features_in_)
    t, n_out = model.encode_targets(y, X.shape[0])
    if model.preprocessor is not None:
        if not model.preprocessor.fitted:
            model.preprocessor.fit(X)
        X = model.preprocessor.transform(X)
    model._ensure_built(X.shape[1], n_out)
    loss = get_loss(loss, model.output)

    theta = model._theta
    model.objective(X, t, loss)
    analytic = model.gradient().copy()
    numeric = np.empty_like(analytic)
    for i in range(theta.size):
        old = theta[i]
        theta[i] = old + eps
        f_plus = model.objective(X, t, loss)
        theta[i] = old - eps
        f_minus = model.objective(X, t, loss)
        theta[i] = old
        numeric[i] = (f_plus - f_minus) / (2.0 * eps)

    def rel(a, b):
        denom = np.linalg.norm(a) + np.linalg.norm(b)
        return 0.0 if denom == 0.0 else float(np.linalg.norm(a - b) / denom)

    errors = {}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            named = (("W", layer.W), ("b", layer.b))
        elif hasattr(layer, "trainable_params"):  # conv / batch-norm layers: {name: view into theta}
            named = tuple(layer.trainable_params().items())
        else:
            continue
        for name, arr in named:
            offset = (arr.__array_interface__["data"][0] - theta.__array_interface__["data"][0]) // theta.itemsize
            sl = slice(offset, offset + arr.size)
            errors[f"layer{i}.{name}"] = rel(analytic[sl], numeric[sl])
    return errors


def check_gradients(model, loss, X, y, *, eps: float = 1e-6) -> float:
    """Max relative error over all parameter tensors (see ``gradient_errors``)."""
    return max(gradient_errors(model, loss, X, y, eps=eps).values())
