"""LatencyReport statistics and verdicts pinned to known per-sample times.

``Runtime.measure(mode="call")`` times each ``predict_one`` call with ``time.perf_counter_ns``
read through ``rtinfer.latency.time``. Here that clock is virtual: it stands still except when
``predict_one`` runs, which advances it by the next scripted duration. The report is then built
from sample times the test chose, so every statistic can be compared with an independent
computation (``np.percentile``, ``np.mean``, ...), and budgets can sit between percentiles so
the verdict depends on the percentile asked for. Nothing here depends on the machine's speed.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import rtinfer
from rtinfer import cli, latency
from rtinfer._testmodels import fp32_mlp
from rtinfer.runtime import Runtime

PCTS = (50, 90, 99, 99.9)


class VirtualClock:
    """Stands in for the ``time`` module inside rtinfer.latency: ``perf_counter_ns`` returns a
    virtual time that only ``advance`` moves (by the next scripted duration, cyclically); every
    other attribute is the real module's."""

    def __init__(self, durations_ns):
        self.durations = [int(d) for d in durations_ns]
        self.now = 10 ** 12
        self.calls = 0

    def perf_counter_ns(self):
        return self.now

    def advance(self):
        self.now += self.durations[self.calls % len(self.durations)]
        self.calls += 1

    def __getattr__(self, name):
        return getattr(time, name)


def known_durations_ns(n=2000, seed=0):
    """n distinct per-sample times (ns) with a tail: a shuffled ramp 2000..~6000 ns, 1 % of the
    samples slowed down 3-5x, and one unique maximum."""
    rng = np.random.default_rng(seed)
    d = 2000 + 2 * np.arange(n, dtype=np.int64) + rng.integers(0, 2, n)
    slow = rng.choice(n, n // 100, replace=False)
    d[slow] = d[slow] * rng.integers(3, 6, len(slow))
    d = rng.permutation(d)
    d[int(rng.integers(n))] = 10 * int(d.max())  # the one worst sample
    return d


@pytest.fixture(scope="module")
def rt():
    return rtinfer.load(fp32_mlp([8, 6, 3], head="softmax"))


def scripted_measure(rt, monkeypatch, durations_ns, **kw):
    """rt.measure in call mode with the given per-sample times (one per sample of X)."""
    clock = VirtualClock(durations_ns)
    monkeypatch.setattr(latency, "time", clock)
    real = rt.predict_one

    def timed_predict_one(x, out=None, nonfinite=None):
        clock.advance()
        return real(x, out, nonfinite)

    monkeypatch.setattr(rt, "predict_one", timed_predict_one)
    X = np.random.default_rng(1).standard_normal((len(durations_ns), 8)).astype(np.float32)
    try:
        return rt.measure(X, mode="call", warmup=0, **kw)
    finally:
        monkeypatch.undo()


def test_percentiles_and_moments_match_numpy_on_known_samples(rt, monkeypatch):
    d = known_durations_ns()
    s = d / 1000.0
    r = scripted_measure(rt, monkeypatch, d, budget_us=1e9)
    np.testing.assert_array_equal(r.samples_us, s)  # the report holds exactly the scripted times
    assert r.n == len(d)
    for attr, q in (("p50_us", 50), ("p90_us", 90), ("p99_us", 99), ("p999_us", 99.9)):
        assert getattr(r, attr) == pytest.approx(np.percentile(s, q), rel=1e-12, abs=0), attr
    # the tail is spread out, so neighbouring percentiles are far apart (a p95 is not a p99)
    assert np.percentile(s, 99) - np.percentile(s, 95) > 1.0
    assert r.max_us == s.max() and r.worst_index == int(np.argmax(s))
    assert r.mean_us == pytest.approx(s.mean(), rel=1e-12)
    assert r.std_us == pytest.approx(s.std(), rel=1e-12)
    assert r.misses == 0 and r.passed


@pytest.mark.parametrize("percentile", [50, 75, 90, 95, 99, 99.9, 100])
def test_at_percentile_is_the_percentile_asked_for(rt, monkeypatch, percentile):
    d = known_durations_ns(seed=2)
    s = d / 1000.0
    r = scripted_measure(rt, monkeypatch, d, budget_us=1e9, percentile=percentile)
    assert r.percentile == percentile
    assert r.at_percentile_us == pytest.approx(np.percentile(s, percentile), rel=1e-12, abs=0)
    assert r.to_dict()["at_percentile_us"] == r.at_percentile_us


def test_verdict_flips_with_the_percentile(rt, monkeypatch):
    """One budget between p90 and p99 of the samples: p50 and p90 hold it, p99 and p99.9 miss it."""
    d = known_durations_ns(seed=3)
    s = d / 1000.0
    budget = (np.percentile(s, 90) + np.percentile(s, 99)) / 2
    expected_misses = int(np.sum(s > budget))
    for p in PCTS:
        r = scripted_measure(rt, monkeypatch, d, budget_us=budget, percentile=p)
        want = bool(np.percentile(s, p) <= budget)
        assert want == (p <= 90)
        assert r.passed is want, (p, r.at_percentile_us, budget)
        assert r.misses == expected_misses and r.miss_rate == pytest.approx(expected_misses / len(s))
        verdict = "PASS" if want else "FAIL"
        assert r.to_dict()["verdict"] == verdict
        assert f"p{p:g} = " in str(r) and verdict in str(r)


def test_budget_boundaries(rt, monkeypatch):
    """A sample exactly at the budget is not a miss; a percentile exactly at the budget passes."""
    d = np.array([1000, 2000, 3000, 4000, 5000], np.int64)
    r = scripted_measure(rt, monkeypatch, d, budget_us=3.0, percentile=50)
    assert r.at_percentile_us == 3.0 and r.passed
    assert r.misses == 2 and r.miss_rate == pytest.approx(0.4)
    r = scripted_measure(rt, monkeypatch, d, budget_us=2.999, percentile=50)
    assert not r.passed and r.misses == 3
    r = scripted_measure(rt, monkeypatch, d, budget_us=5.0, percentile=100)
    assert r.passed and r.misses == 0 and r.at_percentile_us == r.max_us == 5.0 and r.worst_index == 4


def test_json_carries_the_known_statistics(rt, monkeypatch, tmp_path):
    d = known_durations_ns(n=500, seed=4)
    s = d / 1000.0
    r = scripted_measure(rt, monkeypatch, d, budget_us=float(np.percentile(s, 60)), percentile=50)
    got = json.loads(r.to_json(tmp_path / "r.json", samples=True))
    assert got["samples_us"] == [float(v) for v in s]
    for key, q in (("p50_us", 50), ("p90_us", 90), ("p99_us", 99), ("p999_us", 99.9)):
        assert got[key] == pytest.approx(np.percentile(s, q), rel=1e-12)
    assert got["percentile"] == 50 and got["verdict"] == "PASS"
    assert got["misses"] == int(np.sum(s > np.percentile(s, 60)))


@pytest.mark.parametrize("mode", ["in-loop", "call"])
def test_real_measurement_statistics_are_those_of_its_samples(rt, mode):
    """Measured times (not scripted): every statistic is recomputed from samples_us."""
    X = np.random.default_rng(5).standard_normal((3000, 8)).astype(np.float32)
    r = rt.measure(X, budget_us=1e9, warmup=100, percentile=90, mode=mode)
    s = r.samples_us
    for attr, q in (("p50_us", 50), ("p90_us", 90), ("p99_us", 99), ("p999_us", 99.9),
                    ("at_percentile_us", 90)):
        assert getattr(r, attr) == pytest.approx(np.percentile(s, q), rel=1e-12, abs=0), attr
    assert r.max_us == s.max() and r.worst_index == int(np.argmax(s))
    budget = float(np.percentile(s, 70))
    r2 = rt.measure(X, budget_us=budget, warmup=100, percentile=50, mode=mode)
    s2 = r2.samples_us
    assert r2.passed is bool(np.percentile(s2, 50) <= budget)
    assert r2.misses == int(np.sum(s2 > budget))


# -- rtinfer bench forwards --percentile to the verdict -------------------------------------------

@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench_pct") / "mlp.rtm"
    fp32_mlp([8, 6, 3], head="softmax").save(path)
    return str(path)


def test_bench_reports_the_requested_percentile(model_path, tmp_path):
    j = tmp_path / "r.json"
    for p in (50, 97.5):
        assert cli.main(["bench", model_path, "--budget-us", "1e9", "--n", "400", "--warmup", "10",
                         "--percentile", str(p), "--json", str(j)]) == 0
        d = json.loads(j.read_text())
        assert d["percentile"] == p
        if p == 50:
            assert d["at_percentile_us"] == d["p50_us"]


def test_bench_exit_code_follows_percentile(model_path, monkeypatch, capsys):
    """Scripted call-mode times and one budget between p90 and p99: --percentile 50 exits 0,
    --percentile 99 and the default (99.9) exit 1."""
    n = 1000
    d = known_durations_ns(n=n, seed=6)
    s = d / 1000.0
    budget = (np.percentile(s, 90) + np.percentile(s, 99)) / 2
    real = Runtime.predict_one

    def run(*extra):
        clock = VirtualClock(d)
        monkeypatch.setattr(latency, "time", clock)

        def timed(self, x, out=None, nonfinite=None):
            clock.advance()
            return real(self, x, out, nonfinite)

        monkeypatch.setattr(Runtime, "predict_one", timed)
        try:
            return cli.main(["bench", model_path, "--budget-us", repr(float(budget)), "--n", str(n),
                             "--warmup", "0", "--mode", "call", *extra])
        finally:
            monkeypatch.undo()

    assert run("--percentile", "50") == 0
    assert "PASS" in capsys.readouterr().out
    assert run("--percentile", "90") == 0
    assert run("--percentile", "99") == 1
    assert "FAIL" in capsys.readouterr().out
    assert run() == 1
