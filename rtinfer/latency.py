"""Per-sample latency against a real-time budget.

    report = rt.measure(X, budget_us=50, warmup=1000, percentile=99.9, mode="in-loop")
    print(report)              # a table; report.verdict is "PASS" or "FAIL"
    report.to_json("r.json")   # or report.to_dict(samples=True) with the raw samples
    report.plot("r.png")       # tail (1 - CDF, log-log) + histogram (log x), budget and percentile lines
    rtinfer.latency.measure(rt, X, budget_us=50, repeat=5)              # five timed passes over X
    rtinfer.latency.measure(rt, X, budget_us=500, mode="batch", batch_size=64)  # per-batch calls

Three modes, never mixed in one report:
- ``"in-loop"``: every sample is timed inside compiled code with clock_gettime(CLOCK_MONOTONIC)
  around the interpreter (what an embedded control loop sees). No Python in the timed region.
- ``"call"``: every sample is one Python ``predict_one(x, out)`` call timed with
  time.perf_counter_ns (what a Python host sees; includes dispatch and boundary checks).
- ``"batch"``: every timed unit is one ``predict(Xb, out)`` call on a batch of ``batch_size``
  samples taken cyclically from X (throughput mode; the budget applies to one call, and
  ``throughput_per_s`` counts samples per second).
Warm-up samples (taken cyclically from X, run in place: nothing is copied) run first and are
excluded. ``repeat`` runs the timed pass over X several times and pools the samples
(``report.runs`` keeps each pass's p50, value at the percentile and max); ``duration_s`` repeats
it until that much time has passed. With ``per_layer=True`` one more in-loop pass times every
op separately (its clock reads are not in the totals).

Weight bytes are named the same way in every rtinfer report:
- ``weights (stored)`` = ``FrozenModel.weight_bytes``: every tensor the layers reference, as the
  ``.rtm`` file and ``rtinfer inspect`` count them;
- ``weights (packed)`` = ``Plan.weight_bytes``: what the compiled runtime reads (weights
  re-laid-out and aligned, biases, scales, tables and float parameters, and the convolutions'
  scratch, whose work region all of them share: ``Plan.work_bytes``; layers of one geometry
  share the rest of it too: ``Plan.shared_scratch_bytes`` less).

How many samples a percentile needs: about n·(1 − p/100) samples lie above the p-th percentile
(a binomial count), and the estimate is only as good as that count. With fewer than
``MIN_TAIL_SAMPLES`` (10) samples expected above it (n < 10 / (1 − p/100): 10,000 for p99.9,
1,000 for p99), the report carries a warning; with n < 1 / (1 − p/100) the "percentile" is just
the maximum of what was measured, and the warning says so.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .boundary import plain_array

MODES = ("in-loop", "call", "batch")
PLOT_FORMATS = (".png", ".svg", ".pdf")
MIN_TAIL_SAMPLES = 10
MAX_POOLED_SAMPLES = 20_000_000  # duration_s stops adding passes here (160 MB of float64 samples)
_DEFAULT_BATCH = 32


def samples_needed(percentile: float) -> int:
    """Timed samples for MIN_TAIL_SAMPLES expected above the percentile (10,000 for p99.9)."""
    tail = (100.0 - float(percentile)) / 100.0
    return 1 if tail <= 0 else int(math.ceil(round(MIN_TAIL_SAMPLES / tail, 6)))


def percentile_warning(n: int, percentile: float):
    """None, or a sentence saying why n samples cannot support the percentile (module doc)."""
    tail = (100.0 - float(percentile)) / 100.0
    need = samples_needed(percentile)
    if n >= need:
        return None
    p = f"p{float(percentile):g}"
    if tail <= 0 or n * tail < 1:
        return (f"n={n} is too few for {p}: fewer than one sample is expected above it, so the value "
                f"reported is the slowest sample measured, not {p}; use at least {need} samples")
    return (f"n={n} is few for {p}: only about {math.floor(round(n * tail, 6) * 10) / 10:g} samples lie above it, so it is a noisy "
            f"estimate; use at least {need} samples (10 expected above the percentile)")


@dataclass
class LatencyReport:
    mode: str
    n: int                       # timed units (samples; calls in batch mode), all passes pooled
    budget_us: float
    percentile: float
    mean_us: float
    std_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    worst_index: int             # index into X of the slowest sample (the call's index in batch mode)
    misses: int                  # samples over budget
    miss_rate: float
    at_percentile_us: float      # latency at the chosen percentile
    passed: bool                 # at_percentile_us <= budget_us
    arena_bytes: int
    weights_packed_bytes: int    # Plan.weight_bytes: what the runtime reads (module doc)
    macs: int
    warmup: int
    weights_stored_bytes: int | None = None  # FrozenModel.weight_bytes; None for a Runtime built from a Plan
    model: str = ""
    tensor_bytes: int = 0        # all intermediate tensors per sample, without the arena's reuse
    batch_size: int = 1
    throughput_per_s: float = 0.0  # samples per second over the timed units (batch_size * n / total time)
    passes: int = 1
    runs: list = field(default_factory=list)        # one dict per pass: n, p50_us, at_percentile_us, max_us
    warnings: list = field(default_factory=list)    # sentences, e.g. too few samples for the percentile
    per_layer: list = field(default_factory=list)   # dicts: index, label, mean_us, p50_us, p99_us, share
    samples_us: np.ndarray = field(default=None, repr=False)

    @property
    def verdict(self) -> str:
        """"PASS" when the latency at the percentile is within the budget, else "FAIL"."""
        return "PASS" if self.passed else "FAIL"

    def to_dict(self, samples: bool = False) -> dict:
        """Plain-JSON dict; per-sample times only with samples=True."""
        d = {k: getattr(self, k) for k in (
            "model", "mode", "n", "batch_size", "budget_us", "percentile", "verdict", "mean_us", "std_us",
            "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "at_percentile_us", "passed", "worst_index",
            "misses", "miss_rate", "throughput_per_s", "warmup", "passes", "arena_bytes", "tensor_bytes",
            "weights_stored_bytes", "weights_packed_bytes", "macs")}
        d["runs"] = [dict(row) for row in self.runs]
        d["warnings"] = list(self.warnings)
        d["per_layer"] = [dict(row) for row in self.per_layer]
        if samples and self.samples_us is not None:
            d["samples_us"] = [float(v) for v in self.samples_us]
        return d

    def to_json(self, path=None, samples: bool = False) -> str:
        text = json.dumps(self.to_dict(samples=samples), indent=2)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        return text

    def weights_text(self) -> str:
        """'weights (stored) N B, (packed) M B', or one figure when they agree."""
        packed = self.weights_packed_bytes
        stored = self.weights_stored_bytes
        if stored is None:
            return f"weights (packed) {packed} B"
        if stored == packed:
            return f"weights (stored = packed) {stored} B"
        return f"weights (stored) {stored} B, (packed) {packed} B"

    def __str__(self) -> str:
        unit = f"calls of {self.batch_size} samples" if self.mode == "batch" else "samples"
        runs = f", {self.passes} passes" if self.passes > 1 else ""
        head = f"latency of {self.model} " if self.model else "latency "
        lines = [
            f"{head}({self.mode}, n={self.n} {unit}{runs}, warm-up {self.warmup}) against budget {self.budget_us:g} us",
            f"  {'mean':>8} {'std':>8} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>8}   (us)",
            f"  {self.mean_us:8.2f} {self.std_us:8.2f} {self.p50_us:8.2f} {self.p90_us:8.2f} "
            f"{self.p99_us:8.2f} {self.p999_us:8.2f} {self.max_us:8.2f}",
            f"  worst {'call' if self.mode == 'batch' else 'sample'} #{self.worst_index}; "
            f"misses {self.misses}/{self.n} ({100 * self.miss_rate:.3f}%); "
            f"throughput {self.throughput_per_s:,.0f} samples/s",
        ]
        if self.passes > 1:
            ats = [r["at_percentile_us"] for r in self.runs]
            lines.append(f"  p{self.percentile:g} per pass: min {min(ats):.2f}, median {float(np.median(ats)):.2f}, "
                         f"max {max(ats):.2f} us")
        lines += [
            f"  p{self.percentile:g} = {self.at_percentile_us:.2f} us {'<=' if self.passed else '>'} "
            f"{self.budget_us:g} us: {self.verdict}",
            f"  {self.weights_text()}; arena {self.arena_bytes} B (all tensors {self.tensor_bytes} B); "
            f"{self.macs} MACs per sample",
        ]
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        if self.per_layer:
            lines.append(f"  {'op':<28} {'mean':>8} {'p50':>8} {'p99':>8} {'share':>7}")
            for row in self.per_layer:
                lines.append(f"  {row['label']:<28} {row['mean_us']:8.3f} {row['p50_us']:8.3f} "
                             f"{row['p99_us']:8.3f} {100 * row['share']:6.1f}%")
        return "\n".join(lines)

    def plot(self, path) -> None:
        """Write figure() to path, in the format its extension says: .png, .svg or .pdf (any
        other extension is a ValueError, raised before anything is drawn). Needs matplotlib."""
        fmt = check_plot_path(path)
        self.figure().savefig(path, format=fmt)

    def figure(self):
        """The latency plot as a matplotlib Figure: the tail (1 - CDF, log-log: the fraction of
        samples slower than x, down to 1/n) and a histogram on log-spaced bins, each with the
        budget and the value at the percentile marked, so one outlier does not squash the rest
        against x = 0; the title names the model, the mode, n, the value at the percentile, the
        verdict and the max. Made without pyplot: no backend or global figure state is touched."""
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ImportError("LatencyReport.plot needs matplotlib (pip install matplotlib)") from exc
        if self.samples_us is None or len(self.samples_us) == 0:
            raise ValueError("this report carries no per-sample times to plot")
        s = np.sort(np.asarray(self.samples_us, dtype=np.float64))
        n = len(s)
        floor = max(float(s[s > 0][0]) if np.any(s > 0) else 1e-3, 1e-3)
        s_pos = np.maximum(s, floor)  # log axes: a 0 us reading (clock resolution) is drawn at the floor
        lo = min(float(s_pos[0]), self.budget_us) / 1.2
        hi = max(float(s_pos[-1]), self.budget_us) * 1.2
        at = self.at_percentile_us
        p = f"p{self.percentile:g}"
        fig = Figure(figsize=(11, 4.2))
        ax1, ax2 = fig.subplots(1, 2)

        # tail: fraction of samples slower than x, on log-log axes (down to 1/n)
        frac = 1.0 - np.arange(n) / n  # P(latency >= s[i])
        ax1.step(s_pos, frac, where="post", color="tab:blue", label="measured")
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set_xlim(lo, hi)
        ax1.set_ylim(min(0.5 / n, 1e-4) if n > 1 else 0.1, 1.5)
        ax1.axvline(self.budget_us, color="tab:red", linestyle="--", label=f"budget {self.budget_us:g} us")
        ax1.axhline(1.0 - self.percentile / 100.0 if self.percentile < 100 else 1.0 / n, color="gray",
                    linestyle=":", label=f"{p} level")
        ax1.axvline(at, color="tab:green", linestyle="-.", label=f"{p} = {at:.2f} us")
        ax1.set_xlabel("latency (us, log)")
        ax1.set_ylabel("fraction of samples slower (1 - CDF)")
        ax1.grid(True, which="both", alpha=0.3)
        ax1.legend(fontsize=8, loc="lower left")

        # histogram on log-spaced bins, so one outlier does not squash the bulk against x=0
        bins = np.geomspace(lo, hi, num=max(10, min(120, n // 10 + 10)))
        ax2.hist(s_pos, bins=bins, color="tab:blue")
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlim(lo, hi)
        ax2.axvline(self.budget_us, color="tab:red", linestyle="--", label=f"budget {self.budget_us:g} us")
        ax2.axvline(at, color="tab:green", linestyle="-.", label=f"{p} = {at:.2f} us")
        ax2.axvline(self.p50_us if self.p50_us > 0 else floor, color="tab:purple", linestyle=":",
                    label=f"p50 = {self.p50_us:.2f} us")
        ax2.set_xlabel("latency (us, log)")
        ax2.set_ylabel("samples")
        ax2.grid(True, which="both", alpha=0.3)
        ax2.legend(fontsize=8)

        unit = f"calls of batch {self.batch_size}" if self.mode == "batch" else "samples"
        name = os.path.basename(self.model) if self.model else "model"
        fig.suptitle(f"{name}: {self.mode} latency, n={n} {unit}; {p} = {at:.2f} us vs budget "
                     f"{self.budget_us:g} us: {self.verdict}; max {s[-1]:.2f} us")
        fig.tight_layout()
        return fig


def check_plot_path(path) -> str:
    """The matplotlib format for a plot path ('png', 'svg', 'pdf'), or a ValueError."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in PLOT_FORMATS:
        raise ValueError(f"cannot write a plot to {os.fspath(path)!r}: the extension says the format, "
                         f"one of {', '.join(PLOT_FORMATS)}")
    return ext[1:]


def _real(value, name: str, want: str) -> float:
    """A real number (not a string, not a bool) as float, or a ValueError naming the parameter."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return float(value)


def _count(value, name: str, minimum: int) -> int:
    """An integer >= minimum (ints and integral numpy ints; not bool, not float), or a ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be >= {minimum} (an integer), got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum} (an integer), got {value}")
    return value


def _summary(s: np.ndarray, percentile: float) -> dict:
    return {"n": int(len(s)), "p50_us": float(np.percentile(s, 50)),
            "at_percentile_us": float(np.percentile(s, percentile)), "max_us": float(s.max())}


def _outputs(runtime, lead: tuple):
    """Preallocated outputs for predict / predict_one: one array, or a tuple for several outputs."""
    outs = tuple(np.empty(lead + tuple(shape), dtype=dtype) for shape, dtype in runtime.outputs)
    return outs[0] if len(outs) == 1 else outs


def measure(runtime, X, budget_us: float, warmup: int = 1000, percentile: float = 99.9,
            mode: str = "in-loop", per_layer: bool = False, *, repeat: int = 1, duration_s: float | None = None,
            batch_size: int | None = None, model: str = "") -> LatencyReport:
    """Time each sample of X (N, *input_shape) float32 with the runtime; see the module doc.

    Every bad argument raises ValueError (InputError, a ValueError, for X) naming it."""
    from . import interp

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    budget_us = _real(budget_us, "budget_us", "a positive number of microseconds")
    if not math.isfinite(budget_us) or budget_us <= 0:
        raise ValueError(f"budget_us must be a positive number of microseconds, got {budget_us}")
    percentile = _real(percentile, "percentile", "in (0, 100] (a number)")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100] (a number), got {percentile}")
    warmup = _count(warmup, "warmup", 0)
    repeat = _count(repeat, "repeat", 1)
    if duration_s is not None:
        duration_s = _real(duration_s, "duration_s", "a positive number of seconds")
        if not math.isfinite(duration_s) or duration_s <= 0:
            raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s}")
    if mode == "batch":
        batch_size = _DEFAULT_BATCH if batch_size is None else _count(batch_size, "batch_size", 1)
        if per_layer:
            raise ValueError("per_layer applies to mode 'in-loop' or 'call', not 'batch'")
    elif batch_size not in (None, 1):
        raise ValueError(f"batch_size applies to mode='batch' only, got {batch_size!r} with mode={mode!r}")
    X = plain_array(X, "of float32 samples")
    flat = runtime._check_batch(X, None)  # shape, dtype, layout, finiteness (runtime policy)
    n = X.shape[0]
    if n == 0:
        raise ValueError("measure needs at least one sample, got an empty X")
    if mode == "in-loop" and not interp.HAS_CLOCK:
        raise ValueError("in-loop timing needs Linux clock_gettime; use mode='call'")
    in_size, out_size = runtime.in_size, runtime.out_size

    if mode == "batch":
        n_dist = max(1, n // batch_size)  # distinct batches: views into X (or one cyclic copy if X is short)
        if n >= batch_size:
            batches = [X[i * batch_size:(i + 1) * batch_size] for i in range(n_dist)]
        else:
            batches = [np.ascontiguousarray(X[np.arange(batch_size) % n])]
        Yb = _outputs(runtime, (batch_size,))
        for k in range(-(-warmup // batch_size)):
            runtime.predict(batches[k % n_dist], out=Yb)

        def one_pass():
            times = np.zeros(n_dist, dtype=np.int64)
            predict = runtime.predict
            clock = time.perf_counter_ns
            for i in range(n_dist):
                b = batches[i]
                t0 = clock()
                predict(b, out=Yb)
                times[i] = clock() - t0
            return times
    else:
        out_n = np.empty(n * out_size, dtype=np.float32)
        done = 0
        while done < warmup:  # cyclically over X, in place: no copy of X grows with warmup
            m = min(n, warmup - done)
            runtime._execute(runtime._state, flat[:m * in_size], out_n, m, interp.MODE_STREAM)
            done += m
        if mode == "in-loop":
            Yt, T = interp.timed_buffer(n * out_size, n)  # the outputs, then the times

            def one_pass():
                runtime._execute(runtime._state, flat, Yt, n, interp.MODE_TIMED)
                return T.copy()
        else:
            rows = [X[i] for i in range(n)]
            out = _outputs(runtime, ())

            def one_pass():
                times = np.zeros(n, dtype=np.int64)
                predict_one = runtime.predict_one
                clock = time.perf_counter_ns
                for i in range(n):
                    t0 = clock()
                    predict_one(rows[i], out)
                    times[i] = clock() - t0
                return times

    passes = []
    warnings = []
    t_end = None if duration_s is None else time.perf_counter() + duration_s
    while True:
        passes.append(one_pass())
        total = sum(len(t) for t in passes)
        if t_end is None:
            if len(passes) >= repeat:
                break
        elif time.perf_counter() >= t_end:
            break
        elif total + len(passes[0]) > MAX_POOLED_SAMPLES:
            warnings.append(f"stopped after {len(passes)} passes ({total} samples) before duration_s: "
                            f"the pooled samples reached the cap of {MAX_POOLED_SAMPLES}")
            break
    per_pass = [t.astype(np.float64) / 1000.0 for t in passes]
    s = per_pass[0] if len(per_pass) == 1 else np.concatenate(per_pass)

    layers = []
    if per_layer:
        n_ops = runtime.plan.n_ops
        Yt, op_times = interp.timed_buffer(n * out_size, n * n_ops)
        runtime._execute(runtime._state, flat, Yt, n, interp.MODE_PER_OP)
        per = op_times.reshape(n, n_ops).astype(np.float64) / 1000.0
        total_mean = per.mean(axis=0).sum()
        for k, label in enumerate(runtime.plan.row_labels):
            col = per[:, k]
            layers.append({"index": k, "label": label, "mean_us": float(col.mean()),
                           "p50_us": float(np.percentile(col, 50)), "p99_us": float(np.percentile(col, 99)),
                           "share": float(col.mean() / total_mean) if total_mean > 0 else 0.0})

    n_total = len(s)
    warn = percentile_warning(n_total, percentile)
    if warn:
        warnings.insert(0, warn)
    at_p = float(np.percentile(s, percentile))
    misses = int(np.count_nonzero(s > budget_us))
    worst = int(np.argmax(s))
    unit_n = len(passes[0])
    frozen = getattr(runtime, "frozen", None)
    bsize = batch_size if mode == "batch" else 1
    total_s = float(s.sum()) * 1e-6
    return LatencyReport(
        mode=mode, n=n_total, budget_us=budget_us, percentile=percentile,
        mean_us=float(s.mean()), std_us=float(s.std()),
        p50_us=float(np.percentile(s, 50)), p90_us=float(np.percentile(s, 90)),
        p99_us=float(np.percentile(s, 99)), p999_us=float(np.percentile(s, 99.9)),
        max_us=float(s[worst]), worst_index=worst % unit_n, misses=misses, miss_rate=misses / n_total,
        at_percentile_us=at_p, passed=at_p <= budget_us,
        arena_bytes=int(runtime.arena_bytes), tensor_bytes=int(runtime.plan.tensor_bytes),
        weights_packed_bytes=int(runtime.plan.weight_bytes),
        weights_stored_bytes=int(frozen.weight_bytes) if frozen is not None else None,
        macs=int(runtime.macs), warmup=warmup, model=str(model), batch_size=bsize,
        throughput_per_s=(bsize * n_total / total_s) if total_s > 0 else 0.0,
        passes=len(passes), runs=[_summary(t, percentile) for t in per_pass] if len(passes) > 1 else [],
        warnings=warnings, per_layer=layers, samples_us=s,
    )
