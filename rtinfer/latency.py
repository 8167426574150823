"""Per-sample latency against a real-time budget.

    report = rt.measure(X, budget_us=50, warmup=1000, percentile=99.9, mode="in-loop")
    print(report)            # a table
    report.to_json("r.json") # or report.to_dict()
    report.plot("r.png")     # histogram + CDF with the budget line (needs matplotlib)

Two modes, never mixed in one report:
- ``"in-loop"``: every sample is timed inside compiled code with clock_gettime(CLOCK_MONOTONIC)
  around the interpreter (what an embedded control loop sees). No Python in the timed region.
- ``"call"``: every sample is one Python ``predict_one(x, out)`` call timed with
  time.perf_counter_ns (what a Python host sees; includes dispatch and boundary checks).
Warm-up samples (taken cyclically from X) run first and are excluded. With ``per_layer=True``
a second in-loop pass times every op separately (its clock reads are not in the totals).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import numpy as np

MODES = ("in-loop", "call")


@dataclass
class LatencyReport:
    mode: str
    n: int
    budget_us: float
    percentile: float
    mean_us: float
    std_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    worst_index: int             # index into X of the slowest sample
    misses: int                  # samples over budget
    miss_rate: float
    at_percentile_us: float      # latency at the chosen percentile
    passed: bool                 # at_percentile_us <= budget_us
    arena_bytes: int
    weight_bytes: int
    macs: int
    warmup: int
    per_layer: list = field(default_factory=list)  # dicts: index, label, mean_us, p50_us, p99_us, share
    samples_us: np.ndarray = field(default=None, repr=False)

    def to_dict(self, samples: bool = False) -> dict:
        """Plain-JSON dict; per-sample times only with samples=True."""
        d = {k: getattr(self, k) for k in (
            "mode", "n", "budget_us", "percentile", "mean_us", "std_us", "p50_us", "p90_us", "p99_us",
            "p999_us", "max_us", "worst_index", "misses", "miss_rate", "at_percentile_us", "passed",
            "arena_bytes", "weight_bytes", "macs", "warmup")}
        d["per_layer"] = [dict(row) for row in self.per_layer]
        d["verdict"] = "PASS" if self.passed else "FAIL"
        if samples and self.samples_us is not None:
            d["samples_us"] = [float(v) for v in self.samples_us]
        return d

    def to_json(self, path=None, samples: bool = False) -> str:
        text = json.dumps(self.to_dict(samples=samples), indent=2)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        return text

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"latency ({self.mode}, n={self.n}, warm-up {self.warmup}) against budget {self.budget_us:g} us",
            f"  {'mean':>8} {'std':>8} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>8}   (us)",
            f"  {self.mean_us:8.2f} {self.std_us:8.2f} {self.p50_us:8.2f} {self.p90_us:8.2f} "
            f"{self.p99_us:8.2f} {self.p999_us:8.2f} {self.max_us:8.2f}",
            f"  worst sample #{self.worst_index}; misses {self.misses}/{self.n} ({100 * self.miss_rate:.3f}%)",
            f"  p{self.percentile:g} = {self.at_percentile_us:.2f} us {'<=' if self.passed else '>'} "
            f"{self.budget_us:g} us: {verdict}",
            f"  weights {self.weight_bytes} B, arena {self.arena_bytes} B, {self.macs} MACs",
        ]
        if self.per_layer:
            lines.append(f"  {'op':<28} {'mean':>8} {'p50':>8} {'p99':>8} {'share':>7}")
            for row in self.per_layer:
                lines.append(f"  {row['label']:<28} {row['mean_us']:8.3f} {row['p50_us']:8.3f} "
                             f"{row['p99_us']:8.3f} {100 * row['share']:6.1f}%")
        return "\n".join(lines)

    def plot(self, path) -> None:
        """Write a PNG: latency histogram and CDF with the budget line."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("LatencyReport.plot needs matplotlib (pip install matplotlib)") from exc
        if self.samples_us is None or len(self.samples_us) == 0:
            raise ValueError("this report carries no per-sample times to plot")
        s = np.sort(np.asarray(self.samples_us))
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.hist(s, bins=min(100, max(10, len(s) // 20)), color="tab:blue")
        ax1.axvline(self.budget_us, color="tab:red", linestyle="--", label=f"budget {self.budget_us:g} us")
        ax1.set_xlabel("latency (us)")
        ax1.set_ylabel("samples")
        ax1.set_yscale("log")
        ax1.legend()
        ax2.plot(s, np.arange(1, len(s) + 1) / len(s), color="tab:blue")
        ax2.axvline(self.budget_us, color="tab:red", linestyle="--")
        ax2.axhline(self.percentile / 100.0, color="gray", linestyle=":", label=f"p{self.percentile:g}")
        ax2.set_xlabel("latency (us)")
        ax2.set_ylabel("CDF")
        ax2.legend()
        fig.suptitle(f"{self.mode} latency, n={self.n}: {'PASS' if self.passed else 'FAIL'}")
        fig.tight_layout()
        fig.savefig(path, format="png")
        plt.close(fig)


def _cyclic(X: np.ndarray, n: int) -> np.ndarray:
    if n <= len(X):
        return X[:n]
    reps = -(-n // len(X))
    return np.ascontiguousarray(np.concatenate([X] * reps)[:n])


def _number(value, name: str, cast, want: str):
    """cast(value), or a ValueError naming the option (not a bare float()/int() message)."""
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {want}, got {value!r}") from None


def measure(runtime, X, budget_us: float, warmup: int = 1000, percentile: float = 99.9,
            mode: str = "in-loop", per_layer: bool = False) -> LatencyReport:
    """Time each sample of X (N, *input_shape) float32 with the runtime; see the module doc."""
    from . import interp

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    budget_us = _number(budget_us, "budget_us", float, "a positive number")
    if not math.isfinite(budget_us) or budget_us <= 0:
        raise ValueError(f"budget_us must be a positive number, got {budget_us}")
    if not 0 < _number(percentile, "percentile", float, "in (0, 100]") <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if _number(warmup, "warmup", int, ">= 0") < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    flat = runtime._check_batch(X, None)  # shape, dtype, layout, finiteness (runtime policy)
    n = X.shape[0]
    if n == 0:
        raise ValueError("measure needs at least one sample, got an empty X")
    if mode == "in-loop" and not interp.HAS_CLOCK:
        raise ValueError("in-loop timing needs Linux clock_gettime; use mode='call'")
    warmup = int(warmup)
    out_n = np.empty(max(n, 1) * runtime.out_size, dtype=np.float32)
    if warmup:
        Xw = _cyclic(X, warmup)
        runtime._execute(runtime._state, Xw.reshape(-1), np.empty(warmup * runtime.out_size, np.float32),
                         warmup, interp.MODE_STREAM, runtime._no_times)

    if mode == "in-loop":
        times = np.zeros(n, dtype=np.int64)
        runtime._execute(runtime._state, flat, out_n, n, interp.MODE_TIMED, times)
        samples_us = times.astype(np.float64) / 1000.0
    else:
        rows = [X[i] for i in range(n)]
        out = np.empty(runtime.output_shape, dtype=runtime.output_dtype)
        times = np.zeros(n, dtype=np.int64)
        predict_one = runtime.predict_one
        clock = time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            predict_one(rows[i], out)
            times[i] = clock() - t0
        samples_us = times.astype(np.float64) / 1000.0

    layers = []
    if per_layer:
        n_ops = runtime.plan.n_ops
        op_times = np.zeros(n * n_ops, dtype=np.int64)
        runtime._execute(runtime._state, flat, out_n, n, interp.MODE_PER_OP, op_times)
        per = op_times.reshape(n, n_ops).astype(np.float64) / 1000.0
        total = per.mean(axis=0).sum()
        for k, label in enumerate(runtime.plan.row_labels):
            col = per[:, k]
            layers.append({"index": k, "label": label, "mean_us": float(col.mean()),
                           "p50_us": float(np.percentile(col, 50)), "p99_us": float(np.percentile(col, 99)),
                           "share": float(col.mean() / total) if total > 0 else 0.0})

    s = samples_us
    at_p = float(np.percentile(s, percentile))
    misses = int(np.count_nonzero(s > budget_us))
    return LatencyReport(
        mode=mode, n=n, budget_us=budget_us, percentile=float(percentile),
        mean_us=float(s.mean()), std_us=float(s.std()),
        p50_us=float(np.percentile(s, 50)), p90_us=float(np.percentile(s, 90)),
        p99_us=float(np.percentile(s, 99)), p999_us=float(np.percentile(s, 99.9)),
        max_us=float(s.max()), worst_index=int(np.argmax(s)), misses=misses, miss_rate=misses / n,
        at_percentile_us=at_p, passed=at_p <= budget_us,
        arena_bytes=runtime.arena_bytes, weight_bytes=runtime.weight_bytes, macs=runtime.macs,
        warmup=warmup, per_layer=layers, samples_us=s,
    )
