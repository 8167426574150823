"""LatencyReport from Runtime.measure: consistent statistics, verdicts, per-layer breakdown,
table / JSON / PNG output. No wall-clock assertions: budgets are chosen so the verdict cannot
depend on the machine (1e9 us always holds, 1e-6 us never does)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rtinfer
from rtinfer._testmodels import fp32_mlp, int8_mlp
from rtinfer.latency import LatencyReport

HUGE, TINY = 1e9, 1e-6


@pytest.fixture(scope="module")
def frozen():
    return fp32_mlp([64, 32, 16, 10], head="softmax")


@pytest.fixture(scope="module")
def rt(frozen):
    return rtinfer.load(frozen)


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).standard_normal((300, 64)).astype(np.float32)


def _consistent(r: LatencyReport, n):
    assert r.n == n and len(r.samples_us) == n
    assert 0 < r.p50_us <= r.p90_us <= r.p99_us <= r.p999_us <= r.max_us
    # worst_index is the slowest input of X (of the calls, in batch mode), whichever pass it was in
    assert np.max(r.samples_us.reshape(r.passes, -1)[:, r.worst_index]) == r.max_us
    assert r.mean_us == pytest.approx(np.mean(r.samples_us))
    assert r.std_us == pytest.approx(np.std(r.samples_us))
    assert r.misses == int(np.sum(r.samples_us > r.budget_us))
    assert r.miss_rate == pytest.approx(r.misses / n)


@pytest.mark.parametrize("mode", ["in-loop", "call"])
def test_measure_verdicts(rt, X, mode):
    ok = rt.measure(X, budget_us=HUGE, warmup=50, mode=mode)
    _consistent(ok, len(X))
    assert ok.mode == mode and ok.passed and ok.misses == 0
    assert ok.at_percentile_us == pytest.approx(np.percentile(ok.samples_us, 99.9))
    bad = rt.measure(X, budget_us=TINY, warmup=0, percentile=50, mode=mode)
    _consistent(bad, len(X))
    assert not bad.passed and bad.misses == len(X) and bad.miss_rate == 1.0
    assert bad.at_percentile_us == pytest.approx(bad.p50_us)
    assert ok.weights_packed_bytes == rt.plan.weight_bytes and ok.arena_bytes == rt.arena_bytes
    assert ok.weights_stored_bytes == rt.frozen.weight_bytes and ok.macs == rt.macs
    assert ok.verdict == "PASS" and bad.verdict == "FAIL"


def test_per_layer_breakdown(rt, X):
    r = rt.measure(X[:100], budget_us=HUGE, warmup=10, per_layer=True)
    assert [row["label"] for row in r.per_layer] == list(rt.plan.row_labels)
    assert len(r.per_layer) == rt.plan.n_ops == 4
    assert sum(row["share"] for row in r.per_layer) == pytest.approx(1.0)
    assert all(row["mean_us"] >= 0 for row in r.per_layer)
    assert "DENSE" in str(r)


def test_int8_per_layer(X):
    q = rtinfer.load(int8_mlp([64, 32, 10], lut=np.tanh))
    r = q.measure(X[:50], budget_us=HUGE, warmup=5, per_layer=True)
    assert [row["label"].split(":")[1] for row in r.per_layer] == [
        "QUANTIZE", "QDENSE", "QLUT", "QDENSE", "DEQUANTIZE", "SOFTMAX"]


def test_report_outputs(rt, X, tmp_path):
    r = rt.measure(X, budget_us=HUGE, warmup=10, per_layer=True)
    text = str(r)
    for word in ("p50", "p99.9", "max", "misses", "PASS", "in-loop", "arena", "weights (stored)", "(packed)"):
        assert word in text
    d = json.loads(r.to_json(tmp_path / "r.json"))
    assert d == json.loads((tmp_path / "r.json").read_text())
    assert d["verdict"] == "PASS" and d["n"] == len(X) and d["mode"] == "in-loop"
    assert d["weights_stored_bytes"] == rt.frozen.weight_bytes and d["weights_packed_bytes"] == rt.plan.weight_bytes
    assert "weight_bytes" not in d  # one name per definition
    assert "samples_us" not in d and len(r.to_dict(samples=True)["samples_us"]) == len(X)
    pytest.importorskip("matplotlib")
    r.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_measure_rejects_bad_arguments(rt, X):
    with pytest.raises(ValueError, match="mode must be one of"):
        rt.measure(X, budget_us=10, mode="wall")
    with pytest.raises(ValueError, match="budget_us must be a positive"):
        rt.measure(X, budget_us=0)
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\]"):
        rt.measure(X, budget_us=10, percentile=101)
    with pytest.raises(ValueError, match="expected dtype float32"):
        rt.measure(X.astype(np.float64), budget_us=10)
    with pytest.raises(ValueError, match="at least one sample"):
        rt.measure(X[:0], budget_us=10)


@pytest.mark.parametrize("kwargs, match", [
    ({"percentile": "50"}, r"percentile must be in \(0, 100\] \(a number\)"),      # was a TypeError from np.percentile
    ({"budget_us": "50"}, "budget_us must be a positive number"),
    ({"budget_us": True}, "budget_us must be a positive number"),
    ({"warmup": 1.5}, r"warmup must be >= 0 \(an integer\), got 1.5"),             # was silently truncated to 1
    ({"warmup": -1}, r"warmup must be >= 0 \(an integer\), got -1"),
    ({"repeat": 0}, r"repeat must be >= 1"),
    ({"duration_s": 0}, "duration_s must be a positive number"),
    ({"batch_size": 4}, "batch_size applies to mode='batch' only"),
    ({"mode": "batch", "per_layer": True}, "per_layer applies"),
    ({"mode": "batch", "batch_size": 0}, r"batch_size must be >= 1"),
])
def test_measure_argument_errors_are_value_errors(rt, X, kwargs, match):
    from rtinfer.latency import measure
    kwargs = {"budget_us": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        measure(rt, X[:10], **kwargs)


def test_matrix_and_masked_inputs_are_refused_not_run(rt, X):
    with pytest.raises(rtinfer.InputError, match="plain numpy.ndarray"):
        rt.measure(np.asmatrix(X), budget_us=10)
    with pytest.raises(rtinfer.InputError, match="plain numpy.ndarray"):
        rt.measure(np.ma.masked_array(X, mask=np.zeros_like(X, bool)), budget_us=10)


def test_warmup_runs_in_place_without_copying_x(rt, X):
    """warmup=N used to copy X out to N samples (3 GB for 10**7 on a 64-feature model)."""
    import tracemalloc
    warmup = 200_000  # the old copy: 200000 x 64 float32 = 51 MB (+ 8 MB of outputs)
    tracemalloc.start()
    try:
        r = rt.measure(X[:3], budget_us=HUGE, warmup=warmup)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.warmup == warmup and r.n == 3
    assert peak < 2_000_000, f"measure allocated {peak} bytes at its peak for warm-up"


def test_warmup_cycles_small_inputs(rt, X):
    r = rt.measure(X[:3], budget_us=HUGE, warmup=100)
    assert r.n == 3 and r.warmup == 100


def test_small_n_warns_for_the_percentile(rt, X):
    from rtinfer.latency import percentile_warning, samples_needed
    assert samples_needed(99.9) == 10000 and samples_needed(99) == 1000 and samples_needed(50) == 20
    r = rt.measure(X[:1], budget_us=HUGE, warmup=0)
    assert len(r.warnings) == 1 and "too few for p99.9" in r.warnings[0] and "slowest sample" in r.warnings[0]
    assert "warning:" in str(r) and r.to_dict()["warnings"] == r.warnings
    r = rt.measure(X, budget_us=HUGE, warmup=0, percentile=99)  # 300 < 1000: noisy, not just the max
    assert len(r.warnings) == 1 and "few for p99" in r.warnings[0] and "at least 1000" in r.warnings[0]
    assert rt.measure(X, budget_us=HUGE, warmup=0, percentile=90).warnings == []  # 300 >= 100
    assert percentile_warning(10000, 99.9) is None and percentile_warning(9999, 99.9) is not None


def test_repeat_and_duration_pool_passes(rt, X):
    from rtinfer.latency import measure
    r = measure(rt, X[:100], budget_us=HUGE, warmup=10, repeat=3)
    _consistent(r, 300)
    assert r.passes == 3 and len(r.runs) == 3 and all(run["n"] == 100 for run in r.runs)
    assert 0 <= r.worst_index < 100 and "per pass" in str(r)
    r = measure(rt, X[:50], budget_us=HUGE, warmup=0, duration_s=0.05)
    assert r.passes >= 1 and r.n == 50 * r.passes
    _consistent(r, r.n)


def test_batch_mode_times_calls(rt, X):
    from rtinfer.latency import measure
    r = measure(rt, X, budget_us=HUGE, warmup=64, mode="batch", batch_size=32)
    _consistent(r, len(X) // 32)
    assert r.mode == "batch" and r.batch_size == 32 and r.throughput_per_s > 0
    assert r.to_dict()["batch_size"] == 32 and "calls of 32 samples" in str(r)
    short = measure(rt, X[:5], budget_us=HUGE, warmup=0, mode="batch", batch_size=16)  # cycles X
    assert short.n == 1


def test_plot_format_follows_the_extension(rt, X, tmp_path):
    r = rt.measure(X, budget_us=HUGE, warmup=0)
    with pytest.raises(ValueError, match="extension"):
        r.plot(tmp_path / "cdf.txt")  # used to write a PNG into cdf.txt
    assert not (tmp_path / "cdf.txt").exists()
    pytest.importorskip("matplotlib")
    r.plot(tmp_path / "r.svg")
    assert b"<svg" in (tmp_path / "r.svg").read_bytes()[:1000]
    r.plot(tmp_path / "r.pdf")
    assert (tmp_path / "r.pdf").read_bytes()[:4] == b"%PDF"


def test_plot_is_readable_with_an_outlier(rt, X):
    """One 4000 us outlier among ~1 us samples: log axes keep the bulk, the budget and the
    percentile apart (a linear axis put them all at x ~ 0); the title says what and how much."""
    pytest.importorskip("matplotlib")
    r = rt.measure(X, budget_us=50, warmup=0, percentile=99)
    r.samples_us = np.concatenate([r.samples_us, [4000.0]])
    r.model = "models/mlp.rtm"
    fig = r.figure()
    tail, hist = fig.axes[:2]
    assert tail.get_xscale() == "log" and tail.get_yscale() == "log" and hist.get_xscale() == "log"
    assert tail.get_ylabel().startswith("fraction of samples slower")
    lo, hi = hist.get_xlim()
    assert lo <= np.min(r.samples_us) and hi >= 4000
    assert np.log10(hi / lo) < 6  # the bulk spans a visible part of the axis
    title = fig.texts[0].get_text() if fig.texts else fig._suptitle.get_text()
    assert "mlp.rtm" in title and f"p99 = {r.at_percentile_us:.2f} us" in title
    labels = [t.get_text() for t in hist.get_legend().get_texts()]
    assert any(s.startswith("budget 50") for s in labels) and any(s.startswith("p99 = ") for s in labels)
