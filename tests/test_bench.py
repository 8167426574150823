"""The benchmark suite (python -m bench) works end to end on a tiny configuration.

These tests check structure and correctness checks, never timings: the quick suite runs one
small model in both dtypes into tmp_path; the report must have every section, one latency row per
engine that ran plus the limit row, cross-checks that passed, and the targets table; a wrong
engine must be caught by the cross-check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

pytest.importorskip("onnxruntime")

from bench import run as bench_run  # noqa: E402
from bench.suite_engines import (ENGINE_NAMES, CrossCheckError, NumpyChain, check_engine_names,  # noqa: E402
                                 cross_check, make_engines)
from bench.suite_limits import weight_region  # noqa: E402
from bench.suite_models import BenchConfigError, build_models, select_specs  # noqa: E402
from bench.suite_report import LIMIT_ROW, SECTIONS  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    json_path = out / "results.json"
    code = bench_run.main(["--quick", "--out", str(out), "--models", "16-32-4", "--n", "120", "--chunk", "40",
                           "--warmup", "5", "--check", "16", "--startup", "warm", "--train-epochs", "2",
                           "--json", str(json_path)])
    text = (out / "RESULTS.md").read_text(encoding="utf-8")
    results = json.loads(json_path.read_text(encoding="utf-8"))
    return code, out, text, results


def _section(text, title):
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert m, f"section {title!r} missing"
    return m.group(1)


def _table_rows(block, heading):
    """Engine names (first cells) of the first table after a '### heading' line."""
    m = re.search(rf"^### {re.escape(heading)}.*?\n\n((?:\|.*\n)+)", block, flags=re.M)
    assert m, f"table under {heading!r} missing"
    lines = m.group(1).strip().splitlines()[2:]  # skip header and separator
    return [ln.split("|")[1].strip() for ln in lines]


@pytest.mark.slow
def test_quick_run_succeeds_and_writes_files(quick_run):
    code, out, text, results = quick_run
    assert code == 0
    assert text.startswith("# rtinfer benchmark results")
    assert [m["name"] for m in results["models"]] == ["16-32-4 fp32", "16-32-4 int8"]
    assert [len(m["per_op"]) for m in results["models"]] == [2, 4]  # DENSE x2; QUANTIZE, QDENSE x2, DEQUANTIZE
    pair = results["int8_pairs"]["16-32-4"]  # the dtypes timed side by side
    assert pair["rounds"] == 5 and pair["speedup"] > 0 and pair["fp32_p50_us"] > 0 and pair["int8_p50_us"] > 0
    pytest.importorskip("matplotlib")
    for name in ("latency_cdf.png", "latency_vs_size.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000


@pytest.mark.slow
def test_report_has_every_section_and_machine_facts(quick_run):
    _, _, text, results = quick_run
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == list(SECTIONS)
    machine = _section(text, "Machine and versions")
    for item in ("CPU", "cores", "L2", "numpy / numba", "onnx / onnxruntime", "torch / tract", "date", "load average"):
        assert item in machine
    assert results["meta"]["machine"]["cores"] == os.cpu_count()


@pytest.mark.slow
def test_latency_tables_have_a_row_per_engine_and_the_limit_row(quick_run):
    _, _, text, results = quick_run
    block = _section(text, "Per-sample latency")
    for rec in results["models"]:
        rows = _table_rows(block, rec["name"])
        ran = list(rec["latency"])
        assert rows == ran + [LIMIT_ROW]
        # every engine either ran or is listed as skipped with a reason
        assert set(ran) | set(rec["skipped"]) == set(ENGINE_NAMES)
        assert {"rtinfer in-loop", "rtinfer predict_one", "rtinfer batch", "onnxruntime"} <= set(ran)
        for stats in rec["latency"].values():
            assert stats["n"] == 120
            assert 0 < stats["p50_us"] <= stats["p99_us"] <= stats["p999_us"] <= stats["max_us"]
        lim = rec["limit"]
        assert lim["limit_us"] == max(lim["stream_us"], lim["compute_us"]) > 0
        # the compute limit follows the machine's speed while the model ran (its probe's drift)
        assert 0.2 < lim["peak_drift"] < 5
        assert lim["compute_us"] == pytest.approx(lim["compute_us_at_start"] / lim["peak_drift"], rel=1e-12)
        # the streamed region holds every weight byte plus at most 64 bytes of padding per tensor
        assert rec["plan_weight_bytes"] - 64 <= lim["streamed_bytes"] <= rec["plan_weight_bytes"] + 64 * 8
        assert lim["macs"] == 16 * 32 + 32 * 4
    int8 = results["models"][1]
    assert "numpy" in int8["skipped"] and "torch" in int8["skipped"]
    skipped = _section(text, "Engines skipped")
    assert "16-32-4 int8 | numpy" in skipped


@pytest.mark.slow
def test_throughput_rows_cover_batch_sizes(quick_run):
    _, _, text, results = quick_run
    block = _section(text, "Throughput")
    for rec in results["models"]:
        t = rec["throughput"]
        assert set(t["rtinfer batch"]) == {"1", "32", "256"}
        assert set(t["onnxruntime"]) == {"1", "32", "256"}
        assert set(t["rtinfer predict_one"]) == {"1"}
        assert _table_rows(block, rec["name"]) == list(t) + [LIMIT_ROW]


@pytest.mark.slow
def test_cross_checks_ran_and_passed(quick_run):
    _, _, text, results = quick_run
    for rec in results["models"]:
        checked = {c["engine"] for c in rec["crosscheck"]}
        assert checked == set(rec["latency"])
        assert all(c["ok"] and c["max_abs_diff"] <= c["tolerance"] for c in rec["crosscheck"])
        if rec["dtype"] == "int8":  # rtinfer int8 matches the reference's integers exactly
            assert all(c["max_abs_diff"] <= 1e-6 for c in rec["crosscheck"] if c["engine"].startswith("rtinfer"))
    assert "FAIL" not in _section(text, "Cross-checks")


@pytest.mark.slow
def test_targets_startup_and_training_reported(quick_run):
    _, _, text, results = quick_run
    targets = results["targets"]
    assert len(targets) == 8
    assert all(t["met"] in (True, False, None) and t["measured"] for t in targets)
    assert _section(text, "Targets").count("\n| ") == 1 + 8  # header + one row per target
    warm = results["startup"]["warm"]
    assert warm["models"][0]["file"].endswith(".rtm") and warm["models"][0]["load_s"] > 0
    assert "warm cache" in _section(text, "Start-up")
    training = results["training"]
    try:
        import sklearn  # noqa: F401
    except ImportError:
        assert "scikit-learn" in training["skipped"] and "Skipped" in _section(text, "Training")
        return
    assert training["exit_code"] == 0
    assert {row["engine"] for row in training["rows"]} >= {"rtinfer.train", "sklearn MLPClassifier"}


@pytest.fixture(scope="module")
def small_fp32():
    return build_models(select_specs(["16-32-4"]), dtypes=("fp32",), n_samples=32)[0]


def test_cross_check_catches_a_wrong_engine(small_fp32, tmp_path):
    engines, _, _ = make_engines(small_fp32, ["rtinfer predict_one", "numpy"], str(tmp_path))
    cross_check(small_fp32, engines, 16)  # as built: passes
    bad = NumpyChain(small_fp32.frozen)
    kind, W, b, relu = bad.steps[0]
    bad.steps[0] = (kind, W, b + np.float32(0.01), relu)
    with pytest.raises(CrossCheckError, match="numpy"):
        cross_check(small_fp32, [bad], 16)


def test_weight_region_covers_every_tensor_the_program_reads(small_fp32):
    import rtinfer
    from rtinfer.plan import C_OP, C_T0, C_T1
    rt = rtinfer.load(small_fp32.frozen)
    start, nbytes = weight_region(rt)
    assert rt.weight_bytes <= nbytes < rt.weight_bytes + 64 * 4
    region = rt._state[start:start + nbytes]
    for layer, row in zip(small_fp32.frozen.layers, rt.plan.program):
        assert int(row[C_OP]) == int(rtinfer.Op.DENSE)
        for col, name in ((C_T0, "W"), (C_T1, "b")):  # f32 element offsets into the image
            want = np.sort(small_fp32.frozen.tensor(layer, name).reshape(-1))
            lo = int(row[col]) * 4 - start
            span = region[lo:lo + 4 * want.size].view(np.float32)
            # the plan may store W in its own layout (e.g. transposed): compare values as a multiset
            assert lo >= 0 and np.array_equal(np.sort(span), want)


def test_bad_options_exit_2(capsys):
    assert bench_run.main(["--models", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert bench_run.main(["--n", "0"]) == 2
    assert bench_run.main(["--engines", "tensorflow"]) == 2
    assert check_engine_names(["rtinfer-in-loop", "rtinfer_predict_one", "onnxruntime"]) == (
        "rtinfer in-loop", "rtinfer predict_one", "onnxruntime")
    with pytest.raises(BenchConfigError):
        select_specs(["nope"])


def test_script_entry_point_runs():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "run.py"), "--help"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0 and "--quick" in proc.stdout


class _FakeEngine:
    """Records the chunks it is asked to time; each sample 'takes' its index in ns."""

    def __init__(self, name, calls):
        self.name = name
        self.calls = calls

    def time_samples(self, X, warmup):
        self.calls.append((self.name, len(X), warmup))
        return np.arange(len(X), dtype=np.int64)

    def batch_call(self, B):
        return (lambda Xb: Xb) if B != 32 else None


def test_compute_limit_scales_with_the_probe_drift():
    """model_limit: the peak is scaled by drift = (probe pass at peak time) / (probe pass in the
    model's round robin): a machine running at half speed while the model is timed doubles the
    compute limit, twice as fast halves it; no probe, no scaling; each dtype takes its own probe."""
    from types import SimpleNamespace

    from bench.suite_limits import ComputeProbe, model_limit
    rt = SimpleNamespace(macs=1_000_000, weight_bytes=4000)
    peaks = {"fp32_gflops": 100.0, "int8_gmacs_njit": 50.0, "fp32_probe_ns": 5000.0, "int8_probe_ns": 4000.0}
    stream = {"bytes": 4000, "median_ns": 100.0, "pattern": "1way"}
    base = model_limit(rt, "fp32", peaks, stream)
    assert base["peak_drift"] == 1.0 and base["compute_us"] == pytest.approx(20.0)
    slow = model_limit(rt, "fp32", peaks, stream, probe_ns=10000.0)
    assert slow["peak_drift"] == pytest.approx(0.5) and slow["compute_us"] == pytest.approx(40.0)
    assert slow["limit_us"] == slow["compute_us"] and slow["bound"] == "compute"
    fast = model_limit(rt, "int8", peaks, stream, probe_ns=2000.0)
    assert fast["peak_drift"] == pytest.approx(2.0) and fast["compute_us"] == pytest.approx(10.0)
    # the probe is a pseudo-engine of fixed work: one time per sample, each a few microseconds
    for dtype in ("fp32", "int8"):
        times = ComputeProbe(dtype).time_samples(np.zeros((7, 3)), warmup=2)
        assert times.shape == (7,) and np.all(times > 0)


def test_peaks_take_the_best_kernel_and_its_probe(monkeypatch):
    """measure_peaks: the fp32 peak is the best of the FMA chains, sgemm and rtinfer's float32
    conv tile (a low sgemm reading alone once put ResNet-8 below its limit), the int8 peak the
    best int8 kernel; each dtype's drift probe has a positive reference pass time."""
    import bench.suite_limits as SL
    def rates(values):
        it = iter(values)
        return lambda fn, work, repeats: next(it)
    # call order: FMA chains, conv tile, sgemm, int8 loop, then the int8 pmaddwd loop and the u8 tile
    # where the host and the compiled code have AVX2
    int8 = {"loop": 10.0}
    if "avx2" in SL.machine_info_flags():
        int8["pmaddwd"] = 20.0
    if "avx2" in SL.target_features():
        int8["u8s8_tile"] = 30.0
    monkeypatch.setattr(SL, "_best_rate", rates([50.0, 90.0, 60.0] + list(int8.values())))
    p = SL.measure_peaks(quick=True)
    assert p["fp32_gflops"] == 90.0 and p["fp32_gflops_tile"] == 90.0
    assert p["int8_gmacs_njit"] == max(int8.values())
    assert p["fp32_probe_ns"] > 0 and p["int8_probe_ns"] > 0
    monkeypatch.setattr(SL, "_best_rate", rates([95.0, 90.0, 60.0] + list(int8.values())))
    p = SL.measure_peaks(quick=True)
    assert p["fp32_gflops"] == 95.0


def test_round_robin_chunks_rotate_the_engine_order():
    calls = []
    engines = [_FakeEngine(n, calls) for n in "abc"]
    X = np.zeros((10, 3), dtype=np.float32)
    times = bench_run.latency_interleaved(engines, X, chunk=4, warmup=2)
    assert calls == [("a", 4, 2), ("b", 4, 2), ("c", 4, 2),
                     ("b", 4, 2), ("c", 4, 2), ("a", 4, 2),
                     ("c", 2, 2), ("a", 2, 2), ("b", 2, 2)]
    for name in "abc":
        assert times[name].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    tput = bench_run.throughput_interleaved(engines, X, (1, 32, 4), seconds=0.001, p50_hint_us=1.0)
    for name in "abc":  # B = 32 has no batch call: no entry
        assert set(tput[name]) == {1, 4} and all(v > 0 for v in tput[name].values())


def test_cnn_targets_follow_the_measurements():
    """The CNN targets' verdicts come from the figures: a CNN behind onnxruntime, an fp32 CNN
    over 1.5x its limit or an int8 CNN under 1.5x its fp32 speed each turns its row to missed."""
    from bench.suite_report import evaluate_targets

    def rec(key, dtype, inloop, one, ort, limit):
        lat = {"rtinfer in-loop": {"p50_us": inloop}, "rtinfer predict_one": {"p50_us": one},
               "onnxruntime": {"p50_us": ort}}
        return {"name": f"{key} {dtype}", "key": key, "dtype": dtype, "cnn": True, "latency": lat,
                "limit": {"limit_us": limit, "stream_us": 1.0, "compute_us": limit, "macs": 1},
                "throughput": {}, "plan_weight_bytes": 10 ** 9, "per_op": [], "n_layers": 3}

    def verdicts(models):
        res = {"meta": {"machine": {"L2": 512 * 1024, "kernel_path": "AVX2"}}, "models": models,
               "peaks": {"fp32_gflops": 60.0, "int8_gmacs_njit": 60.0, "floor_1op_us": 0.08, "per_op_us": 0.05}}
        return {t["target"].split(" ")[1] + t["target"].split(" ")[2]: t["met"] for t in evaluate_targets(res)
                if "CNN" in t["target"]}

    good = [rec("a", "fp32", 12.0, 13.0, 20.0, 10.0), rec("a", "int8", 7.0, 8.0, 20.0, 5.0)]
    assert verdicts(good) == {"predict_oneahead": True, "fp32CNNs": True, "int8in-loop": True}
    behind = [rec("a", "fp32", 12.0, 21.0, 20.0, 10.0), rec("a", "int8", 7.0, 8.0, 20.0, 5.0)]
    assert verdicts(behind)["predict_oneahead"] is False
    slow = [rec("a", "fp32", 16.0, 17.0, 20.0, 10.0), rec("a", "int8", 7.0, 8.0, 20.0, 5.0)]
    assert verdicts(slow)["fp32CNNs"] is False and verdicts(slow)["int8in-loop"] is True
    close = [rec("a", "fp32", 12.0, 13.0, 20.0, 10.0), rec("a", "int8", 8.5, 9.0, 20.0, 5.0)]
    assert verdicts(close)["int8in-loop"] is False
    # without VNNI the miss names the int8 ceiling the run's own peaks give: 60 GMAC/s int8
    # against 60 GFLOP/s = 30 GMAC/s float32 is 2.00x
    res = {"meta": {"machine": {"L2": 512 * 1024, "kernel_path": "AVX2"}}, "models": close,
           "peaks": {"fp32_gflops": 60.0, "int8_gmacs_njit": 60.0, "floor_1op_us": 0.08, "per_op_us": 0.05}}
    why = next(t["why"] for t in evaluate_targets(res) if t["target"].startswith("rtinfer int8 in-loop"))
    assert "ceiling at 2.00x float32's (60.0 GMAC/s against 30.0)" in why


def test_int8_speedups_alternate_the_dtypes_and_take_the_median_of_round_ratios():
    """paired_speedups times fp32 and int8 in alternating order and reports the median of the
    per-round ratios, so a slow round hits both dtypes; the int8 targets follow that ratio,
    not the two records' phases."""
    from bench.suite_report import evaluate_targets
    calls = []
    f_times = iter([10.0, 20.0, 10.0, 30.0, 10.0])
    q_times = iter([5.0, 10.0, 8.0, 15.0, 5.0])

    def tf():
        calls.append("f")
        return next(f_times)

    def tq():
        calls.append("q")
        return next(q_times)

    out = bench_run.paired_speedups({"m": (tf, tq)}, rounds=5)["m"]
    assert calls == ["f", "q", "q", "f", "f", "q", "q", "f", "f", "q"]
    assert out["speedup"] == 2.0  # ratios 2, 2, 1.25, 2, 2
    assert out["fp32_p50_us"] == 10.0 and out["int8_p50_us"] == 8.0

    def rec(dtype, inloop):
        return {"name": f"a {dtype}", "key": "a", "dtype": dtype, "cnn": True,
                "latency": {"rtinfer in-loop": {"p50_us": inloop}, "rtinfer predict_one": {"p50_us": inloop},
                            "onnxruntime": {"p50_us": 100.0}},
                "limit": {"limit_us": 1.0, "stream_us": 1.0, "compute_us": 1.0, "macs": 1},
                "throughput": {}, "plan_weight_bytes": 10 ** 9, "per_op": [], "n_layers": 3}

    def int8_row(pairs, path="AVX2"):
        res = {"meta": {"machine": {"L2": 512 * 1024, "kernel_path": path}},
               "models": [rec("fp32", 20.0), rec("int8", 10.0)],
               "peaks": {"fp32_gflops": 60.0, "int8_gmacs_njit": 60.0, "floor_1op_us": 0.08, "per_op_us": 0.05},
               "int8_pairs": pairs}
        return next(t for t in evaluate_targets(res) if t["target"].startswith("rtinfer int8 in-loop"))

    assert int8_row({})["met"] is True  # phases: 20 / 10 = 2x
    row = int8_row({"a": {"fp32_p50_us": 20.0, "int8_p50_us": 15.0, "speedup": 1.3, "rounds": 9}})
    assert row["met"] is False and "a 1.30x" in row["measured"] and "side by side" in row["measured"]
    # the reason given names the instruction family the int8 tiles ran on
    assert "Without VNNI" in row["why"]
    vnni = int8_row({"a": {"fp32_p50_us": 20.0, "int8_p50_us": 15.0, "speedup": 1.3, "rounds": 9}}, "VNNI")
    assert "Without VNNI" not in vnni["why"] and "vpdpbusd" in vnni["why"]


def test_int8_cnn_miss_names_the_layers_that_fall_short():
    """A missed int8-over-fp32 CNN target lists, from the two per-op passes, the layers whose fp32 /
    int8 ratio is under 1.5 (most time short first; the ones at or above 1.5 left out, Winograd on
    the fp32 side named) and the ops only int8 runs; the ceiling sentence follows the run's peaks."""
    from bench.suite_report import evaluate_targets

    def rec(dtype, inloop, ops):
        return {"name": f"a {dtype}", "key": "a", "dtype": dtype, "cnn": True,
                "latency": {"rtinfer in-loop": {"p50_us": inloop}, "rtinfer predict_one": {"p50_us": inloop},
                            "onnxruntime": {"p50_us": 100.0}},
                "limit": {"limit_us": 1.0, "stream_us": 1.0, "compute_us": 1.0, "macs": 1},
                "throughput": {}, "plan_weight_bytes": 10 ** 9, "n_layers": len(ops),
                "per_op": [{"label": lab, "p50_us": t, "kernel": k, "share": 0.0} for lab, t, k in ops]}

    f = rec("fp32", 7.0, [("0:CONV:RELU:conv_0", 1.0, "GEMM float32 FMA"),
                          ("1:CONV:conv_1", 3.0, "Winograd F(2x2, 3x3) float32 FMA"),
                          ("2:CONV:conv_2", 3.0, "GEMM float32 FMA")])
    q = rec("int8", 5.0, [("0:QUANTIZE:quantize", 0.1, ""), ("1:QCONV:conv_0", 1.2, "GEMM int8, int16 pairs"),
                          ("2:QCONV:conv_1", 2.5, "GEMM int8, uint8 quads"), ("3:QCONV:conv_2", 1.0, "GEMM int8")])

    def why(int8_gmacs):
        res = {"meta": {"machine": {"L2": 512 * 1024, "kernel_path": "AVX2"}}, "models": [f, q],
               "peaks": {"fp32_gflops": 60.0, "int8_gmacs_njit": int8_gmacs, "floor_1op_us": 0.08,
                         "per_op_us": 0.05}, "int8_pairs": {}}
        row = next(t for t in evaluate_targets(res) if t["target"].startswith("rtinfer int8 in-loop"))
        assert row["met"] is False  # 7 / 5 = 1.4x
        return row["why"]

    w = why(60.0)
    # conv_0 loses 1.2 - 1.0 / 1.5 = 0.53 us, conv_1 2.5 - 2.0 = 0.5 us: in that order
    assert "conv_0 0.83x (1.00 / 1.20 us, GEMM int8, int16 pairs)" in w
    assert "conv_1 1.20x (3.00 / 2.50 us, GEMM int8, uint8 quads against fp32's Winograd)" in w
    assert w.index("conv_0 0.83x") < w.index("conv_1 1.20x")
    assert "conv_2 " not in w  # 3.0 / 1.0 = 3x: not short
    assert "int8's own ops quantize 0.10 us" in w
    assert "ceiling at 2.00x" in w and "could carry 1.5x" in w
    w = why(36.0)  # 36 GMAC/s against 30: 1.20x
    assert "ceiling at 1.20x" in w and "little room" in w and "could carry" not in w


def test_per_op_rows_name_each_convolutions_kernel():
    """The per-op breakdown carries the kernel path of every convolution and dense row (the same
    names as rtinfer inspect) and nothing for the other ops."""
    import export
    import rtinfer
    from rtinfer.train import CNN, Activation, Conv2D, Dense, Flatten

    model = CNN((1, 8, 8), [Conv2D(1, 8, 3, padding=1), Activation("relu"), Conv2D(8, 8, 3, padding=1, groups=8),
                            Flatten(), Dense(8 * 8 * 8, 3)], seed=0)
    rt = rtinfer.load(export.freeze(model, "float32"))
    X = np.random.default_rng(0).standard_normal((50, 1, 8, 8)).astype(np.float32)
    ops = bench_run.per_op_breakdown(rt, X, 1e6)
    by_label = dict(zip(rt.plan.row_labels, rt.plan.row_kernels()))
    assert [o["kernel"] for o in ops] == [by_label[o["label"]] for o in ops]
    conv = [o for o in ops if ":CONV" in o["label"]]
    assert len(conv) == 2 and "GEMM float32" in conv[0]["kernel"] and "depthwise" in conv[1]["kernel"]
    dense = [o for o in ops if ":DENSE" in o["label"]]
    assert len(dense) == 1 and "dense float32 dot products" in dense[0]["kernel"]  # 3 outputs: W transposed
    assert all(o["kernel"] == "" for o in ops if ":CONV" not in o["label"] and ":DENSE" not in o["label"])


def test_ab_copies_run_their_own_code(tmp_path):
    """bench_ab's renamed copy of a checkout's rtinfer resolves its lazy API (load, Runtime) to
    its own modules: unrewritten, both copies ran the installed rtinfer and every before/after
    read 1.00 (a planted 2x slowdown in the old copy showed no change)."""
    import importlib

    from bench.bench_ab import HERE, copy_package
    copy_package(HERE, "rt_ab_probe", str(tmp_path))
    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.import_module("rt_ab_probe")
        assert mod.load.__module__ == "rt_ab_probe.runtime"
        assert mod.Runtime.__module__ == "rt_ab_probe.runtime"
        assert mod.runtime.__file__.startswith(str(tmp_path))
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "rt_ab_probe"]:
            del sys.modules[name]


def _conv_signatures(key):
    """(in_shape (C, H, W), out channels, group, kernel, stride, dilation, pads) of every
    convolution of the benchmark CNN ``key``, as bench/bench_layers.py writes its LAYERS."""
    from bench.suite_models import build_cnn
    from export import freeze
    from rtinfer.ops import Op
    out = set()
    for layer in freeze(build_cnn(key), "float32").layers:
        if layer.op != Op.CONV:
            continue
        a = layer.attrs
        shape = layer.in_shape if len(layer.in_shape) == 3 else (layer.in_shape[0], 1, layer.in_shape[1])
        out.add((tuple(shape), layer.out_shape[0], a["group"], (a["kernel_h"], a["kernel_w"]),
                 (a["stride_h"], a["stride_w"]), (a["dilation_h"], a["dilation_w"]),
                 ((a["pad_top"], a["pad_bottom"]), (a["pad_left"], a["pad_right"]))))
    return out


def test_layer_benchmark_times_the_suites_own_conv_layers():
    """bench/bench_layers.py's LAYERS are convolutions of the suite's CNNs (its numbers are about
    those models' layers, not look-alikes), and each suite CNN has at least one there."""
    from bench.bench_layers import LAYERS
    sigs = {key: _conv_signatures(key) for key in ("cnn1d", "dscnn", "lenet5", "resnet8")}
    for name, layer in LAYERS.items():
        key = name.split("_")[0]
        assert key in sigs, name
        assert layer in sigs[key], (name, layer, sorted(sigs[key]))
    assert {name.split("_")[0] for name in LAYERS} == set(sigs)
