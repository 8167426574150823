"""CNN benchmark: rtinfer vs onnxruntime on a 1-D sensor CNN and the MLPerf Tiny KWS DS-CNN shape.

    python bench/bench_cnn.py [--n 2000] [--rounds 5] [--json out.json]

Models (random weights, BatchNorm with non-trivial statistics, folded at freeze):
- cnn1d: (1, 128) -> Conv1D 16x7 same, BN, ReLU, MaxPool 2 -> Conv1D 32x5 same, BN, ReLU, MaxPool 2
  -> depthwise Conv1D 3 + pointwise 32, ReLU -> GlobalAvgPool -> Dense 6
- dscnn: MLPerf Tiny keyword spotting DS-CNN, input (1, 49, 10) MFCCs -> Conv2D 64 10x4 stride 2
  same, BN, ReLU -> 4 x [depthwise 3x3 + BN + ReLU, pointwise 64 1x1 + BN + ReLU] -> GlobalAvgPool
  -> Dense 12 (about 2.7 M MACs).
Each in float32 and int8 (post-training quantized on 200 random inputs; onnxruntime runs the QDQ
export with 7-bit weights, reduce_range, as its AVX2 kernels need for exact results).

Reported per model and dtype, medians over --rounds interleaved rounds of --n samples:
rtinfer in-loop p50 / p99 (timed inside compiled code), rtinfer predict_one p50 (a Python call),
onnxruntime InferenceSession.run p50 for one sample (intra_op_num_threads=1, sequential), and the
ratio onnxruntime / rtinfer predict_one. Outputs are cross-checked first (fp32: 1e-4; int8:
rtinfer against its reference executor bit-exact on the int8 tensors, onnxruntime within a few
LSB of the output).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


def build(name: str):
    from rtinfer.train import CNN, Activation, BatchNorm, Conv1D, Conv2D, Dense, GlobalAvgPool, MaxPool1D
    if name == "cnn1d":
        layers = [Conv1D(1, 16, 7, padding="same"), BatchNorm(16), Activation("relu"), MaxPool1D(2),
                  Conv1D(16, 32, 5, padding="same"), BatchNorm(32), Activation("relu"), MaxPool1D(2),
                  Conv1D(32, 32, 3, padding="same", groups=32), Activation("relu"), Conv1D(32, 32, 1),
                  Activation("relu"), GlobalAvgPool(), Dense(32, 6)]
        model = CNN((1, 128), layers, seed=0)
    elif name == "dscnn":
        layers = [Conv2D(1, 64, (10, 4), stride=2, padding=((4, 5), (1, 2))), BatchNorm(64), Activation("relu")]
        for _ in range(4):
            layers += [Conv2D(64, 64, 3, padding=1, groups=64), BatchNorm(64), Activation("relu"),
                       Conv2D(64, 64, 1), BatchNorm(64), Activation("relu")]
        layers += [GlobalAvgPool(), Dense(64, 12)]
        model = CNN((1, 49, 10), layers, seed=0)
    else:
        raise ValueError(f"unknown model {name!r}")
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            c = layer.num_features
            layer.gamma[...] = rng.uniform(0.8, 1.2, c)
            layer.beta[...] = rng.normal(0, 0.1, c)
            layer.running_mean[...] = rng.normal(0, 0.1, c)
            layer.running_var[...] = rng.uniform(0.5, 1.5, c)
    return model


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


def run(n: int, rounds: int, models=("cnn1d", "dscnn")) -> list[dict]:
    import export
    import rtinfer
    from export.onnx_export import to_onnx
    from rtinfer import reference

    results = []
    for name in models:
        model = build(name)
        rng = np.random.default_rng(2)
        X = rng.normal(size=(n,) + model.input_shape).astype(np.float32)
        calib = rng.normal(size=(200,) + model.input_shape)
        for dtype in ("float32", "int8"):
            kw = {"calibration": calib, "reduce_range": True} if dtype == "int8" else {}
            fm = export.freeze(model, dtype=dtype, **kw)
            rt = rtinfer.load(fm)
            sess = _ort_session(to_onnx(fm))
            in_name = sess.get_inputs()[0].name
            # cross-check before timing
            ref = reference.run(fm, X[:64])
            ours = rt.predict(X[:64])
            theirs = sess.run(None, {in_name: X[:64]})[0]
            err_ours = float(np.abs(ours - ref).max())
            err_ort = float(np.abs(theirs - ref).max())
            tol = 1e-4 if dtype == "float32" else 0.05
            if err_ours > 1e-5 or err_ort > tol:
                raise SystemExit(f"{name} {dtype}: cross-check failed (rtinfer {err_ours:.3g}, onnxruntime {err_ort:.3g})")
            y = np.empty(rt.output_shape, np.float32)
            rows = [X[i] for i in range(n)]
            flat_rows = [X[i].reshape(-1) for i in range(n)]
            ort_rows = [X[i:i + 1] for i in range(n)]
            per = {"in_loop_p50": [], "in_loop_p99": [], "predict_one_p50": [], "ort_p50": []}
            for r in range(rounds):
                order = [0, 1, 2] if r % 2 == 0 else [2, 1, 0]
                for k in order:
                    if k == 0:
                        rep = rt.measure(X, budget_us=1e6, warmup=min(200, n))
                        per["in_loop_p50"].append(float(np.percentile(rep.samples_us, 50)))
                        per["in_loop_p99"].append(float(np.percentile(rep.samples_us, 99)))
                    elif k == 1:
                        for x in flat_rows[:50]:
                            rt.predict_one(x, out=y)
                        t = _time_calls(lambda x: rt.predict_one(x, out=y), flat_rows)
                        per["predict_one_p50"].append(float(np.median(t)) / 1e3)
                    else:
                        for x in ort_rows[:50]:
                            sess.run(None, {in_name: x})
                        t = _time_calls(lambda x: sess.run(None, {in_name: x}), ort_rows)
                        per["ort_p50"].append(float(np.median(t)) / 1e3)
            med = {k: float(np.median(v)) for k, v in per.items()}
            med.update(model=name, dtype=dtype, macs=int(fm.macs), weight_bytes=int(fm.weight_bytes),
                       ort_over_predict_one=med["ort_p50"] / med["predict_one_p50"],
                       check_rtinfer=err_ours, check_onnxruntime=err_ort)
            results.append(med)
            del rows
    return results


def table(results) -> str:
    lines = ["| model | dtype | MACs | weight bytes | in-loop p50 us | in-loop p99 us | predict_one p50 us "
             "| onnxruntime p50 us | onnxruntime / predict_one |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['dtype']} | {r['macs']} | {r['weight_bytes']} | {r['in_loop_p50']:.1f} "
                     f"| {r['in_loop_p99']:.1f} | {r['predict_one_p50']:.1f} | {r['ort_p50']:.1f} "
                     f"| {r['ort_over_predict_one']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="timed samples per engine per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--models", nargs="+", default=["cnn1d", "dscnn"], choices=["cnn1d", "dscnn"])
    p.add_argument("--json", help="also write the figures as JSON")
    args = p.parse_args(argv)
    results = run(args.n, args.rounds, tuple(args.models))
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
