"""Losses computed from logits (the last layer's output, before the model's head).

Targets are already encoded by the model:
- MeanSquaredError:    t (N, k) float64;    L = 0.5 * mean over all N*k entries of (z - t)^2
- BinaryCrossEntropy:  t (N,) float64 0/1;  z (N, 1) logits;
                       L = mean(softplus(z) - t*z)  (= -mean(t log p + (1-t) log(1-p)), p = sigmoid(z))
- SoftmaxCrossEntropy: t (N,) int64 class indices; z (N, K) logits;
                       L = mean(logsumexp(z) - z[t]), the max subtracted before exp.

``value_and_grad(z, t)`` returns (L, dL/dz) with dL/dz shaped like z.
"""

from __future__ import annotations

import numpy as np

from .layers import sigmoid


class Loss:
    name = "loss"
    head = "identity"  # the model output head this loss belongs with

    def __call__(self, z: np.ndarray, t: np.ndarray) -> float:
        return self.value_and_grad(z, t)[0]

    def value_and_grad(self, z: np.ndarray, t: np.ndarray):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    name = "mse"
    head = "identity"

    def value_and_grad(self, z, t):
        diff = z - t
        value = 0.5 * float(np.vdot(diff, diff)) / diff.size
        diff /= diff.size
        return value, diff


class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"
    head = "sigmoid"

    def value_and_grad(self, z, t):
        z1 = z[:, 0]
        n = z1.shape[0]
        value = float(np.sum(np.logaddexp(0.0, z1)) - np.dot(t, z1)) / n
        grad = sigmoid(z)
        grad[:, 0] -= t
        grad /= n
        return value, grad


class SoftmaxCrossEntropy(Loss):
    name = "softmax_cross_entropy"
    head = "softmax"

    def value_and_grad(self, z, t):
        n = z.shape[0]
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1)
        rows = np.arange(n)
        # logsumexp(z) - z[t] = log(sum exp(shifted)) - shifted[t]
        value = float(np.sum(np.log(s)) - np.sum(shifted[rows, t])) / n
        e /= s[:, None]
        e[rows, t] -= 1.0
        e /= n
        return value, e


LOSSES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "bce": BinaryCrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
}

DEFAULT_LOSS_FOR_HEAD = {"identity": MeanSquaredError, "sigmoid": BinaryCrossEntropy, "softmax": SoftmaxCrossEntropy}


def get_loss(loss, head: str) -> Loss:
    """A Loss instance from None (the head's default), a name, or an instance; checks the head."""
    if loss is None:
        return DEFAULT_LOSS_FOR_HEAD[head]()
    if isinstance(loss, str):
        key = loss.lower()
        if key not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; supported: {', '.join(sorted(LOSSES))}")
        loss = LOSSES[key]()
    if not isinstance(loss, Loss):
        raise ValueError(f"loss must be a name or a Loss instance; got {loss!r}")
    if loss.head != head:
        raise ValueError(f"loss {loss.name!r} needs output {loss.head!r}; the model's output is {head!r}")
    return loss
