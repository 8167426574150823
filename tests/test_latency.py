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
def rt():
    return rtinfer.load(fp32_mlp([64, 32, 16, 10], head="softmax"))


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).standard_normal((300, 64)).astype(np.float32)


def _consistent(r: LatencyReport, n):
    assert r.n == n and len(r.samples_us) == n
    assert 0 < r.p50_us <= r.p90_us <= r.p99_us <= r.p999_us <= r.max_us
    assert r.samples_us[r.worst_index] == r.max_us
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
    assert ok.weight_bytes == rt.weight_bytes and ok.arena_bytes == rt.arena_bytes and ok.macs == rt.macs


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
    for word in ("p50", "p99.9", "max", "misses", "PASS", "in-loop", "arena"):
        assert word in text
    d = json.loads(r.to_json(tmp_path / "r.json"))
    assert d == json.loads((tmp_path / "r.json").read_text())
    assert d["verdict"] == "PASS" and d["n"] == len(X) and d["mode"] == "in-loop"
    assert "samples_us" not in d and len(r.to_dict(samples=True)["samples_us"]) == len(X)
    pytest.importorskip("matplotlib")
    r.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_measure_rejects_bad_arguments(rt, X):
    with pytest.raises(ValueError, match="mode must be one of"):
        rt.measure(X, budget_us=10, mode="wall")
    with pytest.raises(ValueError, match="budget_us must be a positive"):
        rt.measure(X, budget_us=0)
    with pytest.raises(ValueError, match="percentile must be in"):
        rt.measure(X, budget_us=10, percentile=101)
    with pytest.raises(ValueError, match="expected dtype float32"):
        rt.measure(X.astype(np.float64), budget_us=10)
    with pytest.raises(ValueError, match="at least one sample"):
        rt.measure(X[:0], budget_us=10)


def test_warmup_cycles_small_inputs(rt, X):
    r = rt.measure(X[:3], budget_us=HUGE, warmup=100)
    assert r.n == 3 and r.warmup == 100
