"""Learning-rate schedules: a factor applied to an optimizer's base ``lr`` at every step.

``factor(t)`` takes the optimizer's step count t (1 at the first step) and returns the
multiplier, so the step size is ``eta_t = lr * factor(t)``; every optimizer takes one
(``Adam(1e-3, schedule=Cosine(1000))``).

- Constant():                    factor 1
- InverseTime(t0=1):             t0 / (t0 + t - 1)          (1/t decay; eta_1 = lr)
- StepDecay(step_size, gamma):   gamma ** floor((t - 1) / step_size)
- Cosine(total_steps, min_factor=0):
      min_factor + (1 - min_factor) * (1 + cos(pi * min(t - 1, T) / T)) / 2,  T = total_steps
      (lr at the first step, min_factor * lr from step T + 1 on)

Schedules hold no state: t is the optimizer's, so a resumed optimizer continues its schedule.
"""

from __future__ import annotations

import math


def _positive(value, name) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return v


def _positive_int(value, name) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


class Schedule:
    name = "schedule"

    def factor(self, t: int) -> float:
        raise NotImplementedError

    def config(self) -> dict:
        """JSON description; ``schedule_from_config`` rebuilds the schedule from it."""
        return {"type": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    name = "constant"

    def factor(self, t: int) -> float:
        return 1.0


class InverseTime(Schedule):
    name = "inverse"

    def __init__(self, t0: float = 1.0):
        self.t0 = _positive(t0, "t0")

    def factor(self, t: int) -> float:
        return self.t0 / (self.t0 + t - 1)

    def config(self) -> dict:
        return {"type": self.name, "t0": self.t0}


class StepDecay(Schedule):
    name = "step"

    def __init__(self, step_size: int, gamma: float = 0.1):
        self.step_size = _positive_int(step_size, "step_size")
        self.gamma = _positive(gamma, "gamma")

    def factor(self, t: int) -> float:
        return self.gamma ** ((t - 1) // self.step_size)

    def config(self) -> dict:
        return {"type": self.name, "step_size": self.step_size, "gamma": self.gamma}


class Cosine(Schedule):
    name = "cosine"

    def __init__(self, total_steps: int, min_factor: float = 0.0):
        self.total_steps = _positive_int(total_steps, "total_steps")
        m = float(min_factor)
        if not 0.0 <= m <= 1.0:
            raise ValueError(f"min_factor must be in [0, 1]; got {min_factor!r}")
        self.min_factor = m

    def factor(self, t: int) -> float:
        done = min(t - 1, self.total_steps) / self.total_steps
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * done))

    def config(self) -> dict:
        return {"type": self.name, "total_steps": self.total_steps, "min_factor": self.min_factor}


SCHEDULES = {"constant": Constant, "inverse": InverseTime, "step": StepDecay, "cosine": Cosine}


def get_schedule(spec) -> Schedule:
    """A Schedule from None / "constant", "inverse" / "1/t", or an instance (returned as is).
    Step and cosine schedules need their lengths: pass StepDecay(...) / Cosine(...)."""
    if spec is None:
        return Constant()
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key in ("constant", "inverse", "1/t"):
            return Constant() if key == "constant" else InverseTime()
        if key in ("step", "cosine"):
            cls = "StepDecay(step_size, gamma)" if key == "step" else "Cosine(total_steps)"
            raise ValueError(f"schedule {spec!r} needs its length: pass schedule={cls}")
    raise ValueError(f"schedule must be None, 'constant', 'inverse' or a Schedule "
                     f"(InverseTime, StepDecay, Cosine); got {spec!r}")


def schedule_from_config(config: dict) -> Schedule:
    cls = SCHEDULES.get(config.get("type"))
    if cls is None:
        raise ValueError(f"unknown schedule type {config.get('type')!r}; known: {', '.join(SCHEDULES)}")
    return cls(**{k: v for k, v in config.items() if k != "type"})
