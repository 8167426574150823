"""CNN benchmark: rtinfer vs onnxruntime on the CNNs small models use, side by side in one run.

    python bench/bench_cnn.py [--n 2000] [--rounds 5] [--models cnn1d dscnn lenet5 resnet8] [--json out.json]
    python bench/bench_cnn.py --src /path/to/other/checkout ...   # the same benchmark on another rtinfer

Models (bench.suite_models.build_cnn: random weights, batch norms with non-trivial statistics,
folded at freeze): the 1-D sensor CNN (0.21 M MACs), MLPerf Tiny's keyword-spotting DS-CNN on
49x10 MFCCs (2.66 M MACs), LeNet-5 on 28x28 (0.42 M MACs), MLPerf Tiny's ResNet-8 on 32x32 RGB
(12.5 M MACs; residual adds). Each in float32 and int8
(post-training quantized on 200 random inputs with reduce_range: 7-bit weights, which
onnxruntime's AVX2 int8 kernels need for exact results and rtinfer's vpmaddubsw GEMM uses).

Reported per model and dtype, medians over --rounds rounds of --n samples, the engines'
order alternating every round: rtinfer in-loop p50 / p99 (timed inside compiled code),
rtinfer predict_one p50 with the sample in its natural shape (X[i], e.g. (1, 49, 10)) and flat
(X[i].reshape(-1)), onnxruntime InferenceSession.run p50 for one sample (intra_op_num_threads=1,
sequential), the ratio onnxruntime / predict_one, and int8 in-loop speed-up over fp32 (fp32 and
int8 rounds interleaved: the median of the per-round ratios). Outputs
are cross-checked first (rtinfer against its reference executor: fp32 1e-5, int8 exact codes;
onnxruntime within 1e-4 / a few output LSB). The header names the CPU, its features and the
int8 kernel path rtinfer compiled (VNNI, AVX2 or portable), and the load average before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))


def _setup_path(src):
    """Import rtinfer/export from ``src`` (another checkout) when given, else from this repo;
    the bench package always from this repo (imported first, before ``src`` goes on the path)."""
    repo = os.path.dirname(_HERE)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    import bench.suite_models  # noqa: F401 - this repo's model builders
    if src:
        sys.path.insert(0, os.path.abspath(src))


for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

MODELS = ("cnn1d", "dscnn", "lenet5", "resnet8")


def _ort_session(onnx_model):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(onnx_model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _time_calls(fn, rows) -> np.ndarray:
    out = np.empty(len(rows), np.int64)
    clock = time.perf_counter_ns
    for i, r in enumerate(rows):
        t0 = clock()
        fn(r)
        out[i] = clock() - t0
    return out


def kernel_path() -> str:
    import rtinfer
    here = os.path.dirname(os.path.abspath(rtinfer.__file__))
    if not os.path.exists(os.path.join(here, "kernels_tile.py")):  # --src of an older checkout
        return "n/a (this rtinfer has no kernel path choice)"
    from rtinfer.kernels_tile import kernel_path_name
    return kernel_path_name()


def _prepare(model, name: str, dtype: str, X, calib) -> dict:
    """One model in one dtype, cross-checked, ready to time: runtime, onnxruntime session, rows."""
    import export
    import rtinfer
    from export.onnx_export import to_onnx
    from rtinfer import reference
    kw = {"calibration": calib, "reduce_range": True} if dtype == "int8" else {}
    fm = export.freeze(model, dtype=dtype, **kw)
    rt = rtinfer.load(fm)
    sess = _ort_session(to_onnx(fm))
    in_name = sess.get_inputs()[0].name
    # cross-check before timing
    ref = reference.run(fm, X[:64])
    err_ours = float(np.abs(rt.predict(X[:64]) - ref).max())
    err_ort = float(np.abs(sess.run(None, {in_name: X[:64]})[0] - ref).max())
    tol = 1e-4 if dtype == "float32" else 0.05
    if err_ours > 1e-5 or err_ort > tol:
        raise SystemExit(f"{name} {dtype}: cross-check failed (rtinfer {err_ours:.3g}, onnxruntime {err_ort:.3g})")
    n = len(X)
    return {"name": name, "dtype": dtype, "fm": fm, "rt": rt, "sess": sess, "in_name": in_name, "X": X,
            "y": np.empty(rt.output_shape, np.float32), "rows": [X[i] for i in range(n)],
            "flat_rows": [X[i].reshape(-1) for i in range(n)], "ort_rows": [X[i:i + 1] for i in range(n)],
            "checks": (err_ours, err_ort),
            "per": {"in_loop_p50": [], "in_loop_p99": [], "predict_one_p50": [], "predict_one_flat_p50": [],
                    "ort_p50": []}}


def _round(c: dict, r: int) -> None:
    """One timing round of every engine on c, in an order that alternates with r."""
    rt, sess, in_name, y, per = c["rt"], c["sess"], c["in_name"], c["y"], c["per"]
    for k in ([0, 1, 2, 3] if r % 2 == 0 else [3, 2, 1, 0]):
        if k == 0:
            rep = rt.measure(c["X"], budget_us=1e6, warmup=min(200, len(c["X"])))
            per["in_loop_p50"].append(float(np.percentile(rep.samples_us, 50)))
            per["in_loop_p99"].append(float(np.percentile(rep.samples_us, 99)))
        elif k in (1, 2):
            rows = c["rows"] if k == 1 else c["flat_rows"]
            for x in rows[:50]:
                rt.predict_one(x, out=y)
            t = _time_calls(lambda x: rt.predict_one(x, out=y), rows)
            per["predict_one_p50" if k == 1 else "predict_one_flat_p50"].append(float(np.median(t)) / 1e3)
        else:
            for x in c["ort_rows"][:50]:
                sess.run(None, {in_name: x})
            t = _time_calls(lambda x: sess.run(None, {in_name: x}), c["ort_rows"])
            per["ort_p50"].append(float(np.median(t)) / 1e3)


def run(n: int, rounds: int, models=MODELS) -> list[dict]:
    """Per model, fp32 and int8 rounds interleaved (their order alternating), so the int8
    speed-up is the median of ratios taken within a round, not across a change of machine load."""
    from bench.suite_models import build_cnn

    results = []
    for name in models:
        model = build_cnn(name)
        rng = np.random.default_rng(2)
        X = rng.normal(size=(n,) + model.input_shape).astype(np.float32)
        calib = rng.normal(size=(200,) + model.input_shape)
        ctx = [_prepare(model, name, dtype, X, calib) for dtype in ("float32", "int8")]
        for r in range(rounds):
            for c in (ctx if r % 2 == 0 else ctx[::-1]):
                _round(c, r)
        for c in ctx:
            fm, per = c["fm"], c["per"]
            med = {k: float(np.median(v)) for k, v in per.items()}
            med.update(model=name, dtype=c["dtype"], macs=int(fm.macs), weight_bytes=int(fm.weight_bytes),
                       ort_over_predict_one=med["ort_p50"] / med["predict_one_p50"],
                       check_rtinfer=c["checks"][0], check_onnxruntime=c["checks"][1])
            if c["dtype"] == "int8":
                ratios = np.array(ctx[0]["per"]["in_loop_p50"]) / np.array(per["in_loop_p50"])
                med["int8_speedup_in_loop"] = float(np.median(ratios))
            results.append(med)
    return results


def table(results) -> str:
    lines = ["| model | dtype | MACs | in-loop p50 us | in-loop p99 us | predict_one p50 us (natural shape) "
             "| predict_one p50 us (flat) | onnxruntime p50 us | onnxruntime / predict_one | int8 speed-up in-loop |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        sp = f"{r['int8_speedup_in_loop']:.2f}x" if "int8_speedup_in_loop" in r else "-"
        lines.append(f"| {r['model']} | {r['dtype']} | {r['macs']} | {r['in_loop_p50']:.1f} | {r['in_loop_p99']:.1f} "
                     f"| {r['predict_one_p50']:.1f} | {r['predict_one_flat_p50']:.1f} | {r['ort_p50']:.1f} "
                     f"| {r['ort_over_predict_one']:.2f} | {sp} |")
    return "\n".join(lines)


def header() -> str:
    import platform

    import rtinfer
    flags = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    isa = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"CPU: {platform.processor() or platform.machine()} ({isa}); rtinfer from "
            f"{os.path.dirname(os.path.dirname(os.path.abspath(rtinfer.__file__)))}; int8 kernel path: {kernel_path()}; "
            f"load average {tuple(round(v, 2) for v in load)}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="timed samples per engine per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--src", help="import rtinfer and export from this checkout (before/after comparisons)")
    p.add_argument("--json", help="also write the figures as JSON")
    args = p.parse_args(argv)
    _setup_path(args.src)
    print(header(), flush=True)
    from bench.suite_models import BenchConfigError
    try:
        results = run(args.n, args.rounds, tuple(args.models))
    except BenchConfigError as e:  # e.g. resnet8 on a checkout without residual layers (--src)
        print(f"bench_cnn: {e}", file=sys.stderr)
        return 2
    print(table(results))
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    print(f"load average at the end {tuple(round(v, 2) for v in load)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header(), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
