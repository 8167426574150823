"""Optimizers: textbook update rules on one flat parameter vector.

``step(theta, grad)`` updates ``theta`` (P,) float64 in place from ``grad`` (P,) float64;
``t`` counts steps (1 at the first). ``reset(P)`` clears the state (done by ``fit`` unless it
resumes). Every optimizer takes a learning-rate ``schedule`` (``rtinfer.train.schedules``):
the step size at step t is ``eta_t = lr * schedule.factor(t)`` (constant by default).

- SGD:      theta -= eta_t * g   (``SGD(lr, schedule="inverse", t0=t0)``: eta_t = lr * t0 / (t0 + t - 1))
- Momentum: v = beta * v - eta_t * g;  theta += v
- AdaGrad:  G += g^2;  theta -= eta_t * g / (sqrt(G) + eps)
- RMSProp:  s = rho * s + (1 - rho) * g^2;  theta -= eta_t * g / (sqrt(s) + eps)
- Adam:     m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  m_hat = m / (1 - b1^t);
            v_hat = v / (1 - b2^t);  theta -= eta_t * m_hat / (sqrt(v_hat) + eps)   (Kingma & Ba 2015)

The full state (``t`` and the moment arrays, ``state()``) and the hyperparameters (``config()``,
JSON) are what a checkpoint stores; ``optimizer_from_config`` + ``set_state`` restore an
optimizer that continues exactly where it stopped.
"""

from __future__ import annotations

import numpy as np

from .schedules import Constant, InverseTime, Schedule, get_schedule, schedule_from_config


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
    state_names: tuple = ()  # the (P,) state arrays, in ``state()`` order
    hyper_names: tuple = ()  # constructor arguments besides lr and schedule

    def __init__(self, lr: float, schedule=None):
        self.lr = _positive(lr, "lr")
        self.schedule: Schedule = get_schedule(schedule)
        self.t = 0
        self._size = -1

    def lr_at(self, t: int) -> float:
        """The step size used at step t (1-based): lr * schedule.factor(t)."""
        return self.lr * self.schedule.factor(t)

    def reset(self, size: int) -> None:
        self.t = 0
        self._size = int(size)
        self._tmp = np.zeros(size)
        for name in self.state_names:
            setattr(self, "_" + name, np.zeros(size))

    def step(self, theta: np.ndarray, grad: np.ndarray) -> None:
        if theta.shape != (self._size,):
            self.reset(theta.size)
        self.t += 1
        self._update(theta, grad, self.lr_at(self.t))

    def _update(self, theta, grad, eta):
        raise NotImplementedError

    # ------------------------------------------------------------------------------ state
    @property
    def size(self) -> int:
        """Length of the parameter vector the state belongs to (-1 before the first step)."""
        return self._size

    def state(self) -> dict:
        """{name: (P,) float64} copies of the state arrays (empty before ``reset``/``step``)."""
        if self._size < 0:
            return {}
        return {name: getattr(self, "_" + name).copy() for name in self.state_names}

    def set_state(self, t: int, arrays: dict, size: int) -> None:
        """Restore step count and state arrays (as returned by ``state()``) for P = size."""
        if isinstance(t, bool) or int(t) != t or int(t) < 0:
            raise ValueError(f"optimizer step count must be an integer >= 0; got {t!r}")
        self.reset(size)
        for name in self.state_names:
            arr = np.asarray(arrays[name], dtype=np.float64)
            if arr.shape != (size,):
                raise ValueError(f"optimizer state {name!r} must have shape ({size},); got {arr.shape}")
            getattr(self, "_" + name)[...] = arr
        self.t = int(t)

    def config(self) -> dict:
        """JSON hyperparameters: {"name", "lr", ..., "schedule": {...}}."""
        cfg = {"name": self.name, "lr": self.lr}
        cfg.update({k: getattr(self, k) for k in self.hyper_names})
        cfg["schedule"] = self.schedule.config()
        return cfg

    def __repr__(self) -> str:
        args = [f"lr={self.lr}"] + [f"{k}={getattr(self, k)!r}" for k in self.hyper_names]
        if not isinstance(self.schedule, Constant):
            args.append(f"schedule={self.schedule!r}")
        return f"{type(self).__name__}({', '.join(args)})"


class SGD(Optimizer):
    name = "sgd"

    def __init__(self, lr: float = 0.01, schedule=None, t0: float | None = None):
        if t0 is not None:  # the classic SGD(lr, schedule="inverse", t0=...) spelling
            if not (isinstance(schedule, str) and schedule.lower() in ("inverse", "1/t")):
                raise ValueError(f"t0 applies to schedule='inverse' only; got schedule={schedule!r} "
                                 f"(pass schedule=InverseTime(t0) instead)")
            schedule = InverseTime(t0)
        super().__init__(lr, schedule)

    def _update(self, theta, grad, eta):
        np.multiply(grad, eta, out=self._tmp)
        theta -= self._tmp


class Momentum(Optimizer):
    name = "momentum"

    state_names = ("v",)
    hyper_names = ("beta",)

    def __init__(self, lr: float = 0.01, beta: float = 0.9, schedule=None):
        super().__init__(lr, schedule)
        self.beta = _unit(beta, "beta")

    def _update(self, theta, grad, eta):
        self._v *= self.beta
        np.multiply(grad, eta, out=self._tmp)
        self._v -= self._tmp
        theta += self._v


class AdaGrad(Optimizer):
    name = "adagrad"

    state_names = ("G",)
    hyper_names = ("eps",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-8, schedule=None):
        super().__init__(lr, schedule)
        self.eps = _positive(eps, "eps")

    def _update(self, theta, grad, eta):
        tmp = self._tmp
        np.multiply(grad, grad, out=tmp)
        self._G += tmp
        np.sqrt(self._G, out=tmp)
        tmp += self.eps
        np.divide(grad, tmp, out=tmp)
        tmp *= eta
        theta -= tmp


class RMSProp(Optimizer):
    name = "rmsprop"

    state_names = ("s",)
    hyper_names = ("rho", "eps")

    def __init__(self, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-8, schedule=None):
        super().__init__(lr, schedule)
        self.rho = _unit(rho, "rho")
        self.eps = _positive(eps, "eps")

    def _update(self, theta, grad, eta):
        tmp = self._tmp
        self._s *= self.rho
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - self.rho
        self._s += tmp
        np.sqrt(self._s, out=tmp)
        tmp += self.eps
        np.divide(grad, tmp, out=tmp)
        tmp *= eta
        theta -= tmp


class Adam(Optimizer):
    name = "adam"

    state_names = ("m", "v")
    hyper_names = ("beta1", "beta2", "eps")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 schedule=None):
        super().__init__(lr, schedule)
        self.beta1 = _unit(beta1, "beta1")
        self.beta2 = _unit(beta2, "beta2")
        self.eps = _positive(eps, "eps")

    def _update(self, theta, grad, eta):
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
        tmp *= eta / (1.0 - b1**t)  # m_hat = m / (1 - b1^t)
        theta -= tmp


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": AdaGrad, "rmsprop": RMSProp, "adam": Adam}


def get_optimizer(opt, lr: float | None = None) -> Optimizer:
    """An Optimizer from a name (with optional lr) or an instance (returned as is; an lr given
    with an instance is refused: it would be ignored)."""
    if isinstance(opt, Optimizer):
        if lr is not None:
            raise ValueError(f"lr={lr!r} conflicts with optimizer={opt!r}: give the learning rate to the "
                             f"optimizer (e.g. {type(opt).__name__}({lr!r})), not both")
        return opt
    if isinstance(opt, str):
        key = opt.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {opt!r}; supported: {', '.join(OPTIMIZERS)}")
        return OPTIMIZERS[key]() if lr is None else OPTIMIZERS[key](lr=lr)
    raise ValueError(f"optimizer must be a name or an Optimizer instance; got {opt!r}")


def optimizer_from_config(config: dict) -> Optimizer:
    """Rebuild an optimizer (without state) from ``Optimizer.config()``."""
    cls = OPTIMIZERS.get(config.get("name"))
    if cls is None:
        raise ValueError(f"unknown optimizer {config.get('name')!r}; supported: {', '.join(OPTIMIZERS)}")
    kwargs = {k: v for k, v in config.items() if k not in ("name", "schedule")}
    schedule = config.get("schedule")
    return cls(**kwargs, schedule=None if schedule is None else schedule_from_config(schedule))
