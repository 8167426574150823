"""Optimizers: textbook update rules on one flat parameter vector.

``step(theta, grad)`` updates ``theta`` (P,) float64 in place from ``grad`` (P,) float64;
``t`` counts steps (1 at the first). ``reset(P)`` clears the state (done by ``fit``).

- SGD:      theta -= eta_t * g;  eta_t = lr (constant) or, with schedule="inverse",
            eta_t = lr * t0 / (t0 + t - 1)  (eta_1 = lr; with t0 = 1, eta_t = lr / t)
- Momentum: v = beta * v - lr * g;  theta += v
- AdaGrad:  G += g^2;  theta -= lr * g / (sqrt(G) + eps)
- RMSProp:  s = rho * s + (1 - rho) * g^2;  theta -= lr * g / (sqrt(s) + eps)
- Adam:     m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  m_hat = m / (1 - b1^t);
            v_hat = v / (1 - b2^t);  theta -= lr * m_hat / (sqrt(v_hat) + eps)   (Kingma & Ba 2015)
"""

from __future__ import annotations

import numpy as np


def _positive(value, name):
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return v


def _unit(value, name):
    v = float(value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {value!r}")
    return v


class Optimizer:
    name = "optimizer"

    def __init__(self, lr: float):
        self.lr = _positive(lr, "lr")
        self.t = 0
        self._size = -1

    def reset(self, size: int) -> None:
        self.t = 0
        self._size = int(size)
        self._tmp = np.zeros(size)
        self._init_state(size)

    def _init_state(self, size: int) -> None:
        pass

    def step(self, theta: np.ndarray, grad: np.ndarray) -> None:
        if theta.shape != (self._size,):
            self.reset(theta.size)
        self.t += 1
        self._update(theta, grad)

    def _update(self, theta, grad):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr})"


class SGD(Optimizer):
    name = "sgd"

    def __init__(self, lr: float = 0.01, schedule: str | None = None, t0: float = 1.0):
        super().__init__(lr)
        if schedule not in (None, "constant", "inverse", "1/t"):
            raise ValueError(f"SGD schedule must be None, 'constant' or 'inverse'; got {schedule!r}")
        self.schedule = "inverse" if schedule in ("inverse", "1/t") else "constant"
        self.t0 = _positive(t0, "t0")

    def lr_at(self, t: int) -> float:
        """The step size used at step t (1-based)."""
        if self.schedule == "inverse":
            return self.lr * self.t0 / (self.t0 + t - 1)
        return self.lr

    def _update(self, theta, grad):
        np.multiply(grad, self.lr_at(self.t), out=self._tmp)
        theta -= self._tmp


class Momentum(Optimizer):
    name = "momentum"

    def __init__(self, lr: float = 0.01, beta: float = 0.9):
        super().__init__(lr)
        self.beta = _unit(beta, "beta")

    def _init_state(self, size):
        self._v = np.zeros(size)

    def _update(self, theta, grad):
        self._v *= self.beta
        np.multiply(grad, self.lr, out=self._tmp)
        self._v -= self._tmp
        theta += self._v


class AdaGrad(Optimizer):
    name = "adagrad"

    def __init__(self, lr: float = 0.01, eps: float = 1e-8):
        super().__init__(lr)
        self.eps = _positive(eps, "eps")

    def _init_state(self, size):
        self._G = np.zeros(size)

    def _update(self, theta, grad):
        tmp = self._tmp
        np.multiply(grad, grad, out=tmp)
        self._G += tmp
        np.sqrt(self._G, out=tmp)
        tmp += self.eps
        np.divide(grad, tmp, out=tmp)
        tmp *= self.lr
        theta -= tmp


class RMSProp(Optimizer):
    name = "rmsprop"

    def __init__(self, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-8):
        super().__init__(lr)
        self.rho = _unit(rho, "rho")
        self.eps = _positive(eps, "eps")

    def _init_state(self, size):
        self._s = np.zeros(size)

    def _update(self, theta, grad):
        tmp = self._tmp
        self._s *= self.rho
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - self.rho
        self._s += tmp
        np.sqrt(self._s, out=tmp)
        tmp += self.eps
        np.divide(grad, tmp, out=tmp)
        tmp *= self.lr
        theta -= tmp


class Adam(Optimizer):
    name = "adam"

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        self.beta1 = _unit(beta1, "beta1")
        self.beta2 = _unit(beta2, "beta2")
        self.eps = _positive(eps, "eps")

    def _init_state(self, size):
        self._m = np.zeros(size)
        self._v = np.zeros(size)

    def _update(self, theta, grad):
        b1, b2, t, tmp = self.beta1, self.beta2, self.t, self._tmp
        self._m *= b1
        np.multiply(grad, 1.0 - b1, out=tmp)
        self._m += tmp
        self._v *= b2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - b2
        self._v += tmp
        np.divide(self._v, 1.0 - b2**t, out=tmp)  # v_hat
        np.sqrt(tmp, out=tmp)
        tmp += self.eps
        np.divide(self._m, tmp, out=tmp)  # m / (sqrt(v_hat) + eps)
        tmp *= self.lr / (1.0 - b1**t)  # m_hat = m / (1 - b1^t)
        theta -= tmp


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": AdaGrad, "rmsprop": RMSProp, "adam": Adam}


def get_optimizer(opt, lr: float | None = None) -> Optimizer:
    """An Optimizer from a name (with optional lr) or an instance (returned as is)."""
    if isinstance(opt, Optimizer):
        return opt
    if isinstance(opt, str):
        key = opt.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {opt!r}; supported: {', '.join(OPTIMIZERS)}")
        return OPTIMIZERS[key]() if lr is None else OPTIMIZERS[key](lr=lr)
    raise ValueError(f"optimizer must be a name or an Optimizer instance; got {opt!r}")
