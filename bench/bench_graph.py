"""Graph-model benchmark: MLPerf Tiny's ResNet-8 (and a MobileNetV2 inverted residual block),
rtinfer vs onnxruntime, fp32 and int8, with the activation memory each needs.

    python bench/bench_graph.py [--n 500] [--rounds 3] [--json out.json]

Models: tests/data/onnx/resnet8_ts.onnx and mbv2_block_ts.onnx (PyTorch, random weights, see
tests/data/onnx/make_graphs.py), imported by export.from_onnx; int8 is onnxruntime's
quantize_static (QDQ, per-channel int8 weights with reduce_range, int8 activations, calibrated
on 64 inputs),
imported the same way (int8 end to end: QCONV, QBINARY residual adds, QAVGPOOL, QDENSE).
onnxruntime runs the same ONNX file with 1 thread, sequential execution, all optimizations.

Reported per model and dtype, medians over --rounds interleaved rounds of --n samples: rtinfer
in-loop p50 / p99 (timed inside compiled code), rtinfer predict_one p50 (one Python call, the
sample in its natural shape (3, 32, 32)), onnxruntime InferenceSession.run p50 for one sample,
and their ratio. Memory: rtinfer's planned arena per sample against the sum of all its
intermediate tensors (what a planner without lifetimes would allocate), and onnxruntime's sum
of node output sizes from its profiler (what it allocates before reuse; its arena size is not
exposed). Outputs are cross-checked first (fp32 within 1e-4; int8 within one output step).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "onnx")
MODELS = {"resnet8": "resnet8_ts", "mbv2_block": "mbv2_block_ts"}


def _session(path_or_bytes, profile=False):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    return ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])


def _ort_output_bytes(path, x) -> int:
    """Sum of the node output sizes onnxruntime's profiler reports for one run."""
    s = _session(path, profile=True)
    name = s.get_inputs()[0].name
    s.run(None, {name: x})
    prof = s.end_profiling()
    with open(prof) as f:
        events = json.load(f)
    total = 0
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            total += int(e.get("args", {}).get("output_size", 0))
    return total


def _quantize(path, X):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    import onnx

    class Reader(CalibrationDataReader):
        def __init__(self, name):
            self.it = iter([{name: X[i:i + 1]} for i in range(len(X))])

        def get_next(self):
            return next(self.it, None)

    name = onnx.load(path).graph.input[0].name
    out = os.path.join(tempfile.mkdtemp(), "q.onnx")
    # reduce_range: 7-bit weights, so onnxruntime's fused u8s8 kernels cannot saturate on AVX2
    # CPUs without VNNI (rtinfer is exact either way)
    quantize_static(path, out, Reader(name), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return out


def _time_calls(fn, rows) -> np.ndarray:
    out = np.empty(len(rows), np.int64)
    clock = time.perf_counter_ns
    for i, r in enumerate(rows):
        t0 = clock()
        fn(r)
        out[i] = clock() - t0
    return out


def run(n: int, rounds: int) -> dict:
    import rtinfer
    from export import from_onnx
    results = {}
    rng = np.random.default_rng(0)
    for label, stem in MODELS.items():
        fp32_path = os.path.join(DATA, stem + ".onnx")
        X = np.load(os.path.join(DATA, stem + ".npz"))["X"]
        Xn = rng.standard_normal((n,) + X.shape[1:]).astype(np.float32)
        for dtype in ("float32", "int8"):
            path = fp32_path if dtype == "float32" else _quantize(fp32_path, X)
            fm = from_onnx(path)
            rt = rtinfer.load(fm)
            sess = _session(path)
            name = sess.get_inputs()[0].name
            ours = rt.predict(Xn[:64])
            theirs = sess.run(None, {name: Xn[:64]})[0]
            if dtype == "float32":
                err = float(np.abs(ours - theirs).max())
                assert err <= 1e-4 * max(1.0, float(np.abs(theirs).max())), err
            else:
                step = [layer for layer in fm.layers if layer.op.name == "DEQUANTIZE"][-1].attrs["x_scale"]
                err = float(np.abs(ours - theirs).max() / step)
                assert err <= 1.0 + 1e-4, err
            out = np.empty(rt.output_shape, np.float32)
            rows = [Xn[i] for i in range(n)]
            feeds = [{name: Xn[i:i + 1]} for i in range(n)]
            for r in rows[:50]:
                rt.predict_one(r, out=out)
            for f in feeds[:50]:
                sess.run(None, f)
            loop_p50, loop_p99, one_p50, ort_p50 = [], [], [], []
            for _ in range(rounds):  # interleaved: each round measures every engine once
                rep = rt.measure(Xn, budget_us=1e6, warmup=50, percentile=99)
                loop_p50.append(rep.p50_us)
                loop_p99.append(rep.p99_us)
                one_p50.append(np.median(_time_calls(lambda r: rt.predict_one(r, out=out), rows)) / 1000)
                ort_p50.append(np.median(_time_calls(lambda f: sess.run(None, f), feeds)) / 1000)
            res = {
                "macs": int(rt.macs), "layers": len(fm.layers),
                "ops": sorted({layer.op.name for layer in fm.layers}),
                "in_loop_p50_us": float(np.median(loop_p50)), "in_loop_p99_us": float(np.median(loop_p99)),
                "predict_one_p50_us": float(np.median(one_p50)), "onnxruntime_p50_us": float(np.median(ort_p50)),
                "arena_bytes": int(rt.plan.arena_bytes), "tensor_bytes": int(rt.plan.tensor_bytes),
                "onnxruntime_output_bytes": _ort_output_bytes(path, Xn[:1]),
                "max_diff": err,
            }
            res["ratio_ort_over_predict_one"] = res["onnxruntime_p50_us"] / res["predict_one_p50_us"]
            results[f"{label}/{dtype}"] = res
            print(f"{label:>11} {dtype:>7}: in-loop p50 {res['in_loop_p50_us']:8.1f} us, predict_one p50 "
                  f"{res['predict_one_p50_us']:8.1f} us, onnxruntime p50 {res['onnxruntime_p50_us']:8.1f} us "
                  f"(x{res['ratio_ort_over_predict_one']:.2f}); arena {res['arena_bytes']} B vs all tensors "
                  f"{res['tensor_bytes']} B (onnxruntime node outputs {res['onnxruntime_output_bytes']} B)",
                  flush=True)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="samples per round (default 500)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--json", help="write the results as JSON here")
    args = ap.parse_args(argv)
    res = run(args.n, args.rounds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": os.uname().machine, "load": os.getloadavg(), "results": res}, f, indent=1)


if __name__ == "__main__":
    main()
