"""rtinfer demo: the whole flow offline in well under a minute on two cores.

Train an MLP on the shipped digits (NumPy), freeze it to fp32 and int8, run both with the
compiled runtime, print each one's test accuracy, its in-loop latency report against a budget,
and predict_one's speed against onnxruntime (via export.to_onnx) and NumPy when available.
"""

from __future__ import annotations

import argparse
import time

HELP = "train, freeze (fp32 + int8), run and time an MLP on the shipped digits, offline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rtinfer.commands._common import int_at_least, percentile_arg, positive_float

    parser.add_argument("--hidden", type=int_at_least(1), nargs="*", default=[64, 32], metavar="N",
                        help="hidden layer widths")
    parser.add_argument("--epochs", type=int_at_least(1), default=30, help="training epochs")
    parser.add_argument("--budget-us", type=positive_float, default=50.0, metavar="US",
                        help="per-sample latency budget in microseconds")
    parser.add_argument("--percentile", type=percentile_arg, default=99.9, metavar="P",
                        help="percentile judged against the budget")
    parser.add_argument("--n", type=int_at_least(1), default=10000, help="timed samples per latency report")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split, the training and the inputs")


def _call_p50_us(fn, rows, repeat=3):
    """Median over rows of one call each (best of `repeat` passes), in microseconds."""
    import numpy as np
    clock = time.perf_counter_ns
    best = None
    for _ in range(repeat):
        t = np.empty(len(rows), dtype=np.int64)
        for i, x in enumerate(rows):
            t0 = clock()
            fn(x)
            t[i] = clock() - t0
        p50 = float(np.median(t)) / 1000.0
        best = p50 if best is None else min(best, p50)
    return best


def _onnx_runner(frozen):
    """A one-sample onnxruntime call (single thread) for the fp32 model, or (None, reason)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime is not installed"
    try:
        from export.onnx_export import to_onnx
    except ImportError:
        return None, "export.to_onnx is not available"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(to_onnx(frozen).SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return (lambda x: sess.run(None, {name: x[None, :]})), ""


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import rtinfer
    from export.freeze import freeze
    from rtinfer.compile_notice import compile_notice
    from rtinfer.train import MLP, datasets, fit

    t_start = time.perf_counter()
    ds = datasets.load("digits", seed=args.seed)
    d, k = ds.X_train.shape[1], ds.n_classes
    sizes = [d, *args.hidden, k]
    print(f"digits: {len(ds.X_train)} train / {len(ds.X_test)} test samples, {d} features, {k} classes")

    t0 = time.perf_counter()
    model = MLP(sizes, activation="relu", output="softmax", preprocess="standardize", seed=args.seed)
    fit(model, ds.X_train, ds.y_train, optimizer="adam", epochs=args.epochs, batch_size=32, seed=args.seed,
        verbose=False)
    print(f"trained MLP {'-'.join(map(str, sizes))} (ReLU, softmax) in {time.perf_counter() - t0:.1f} s; "
          f"NumPy test accuracy {model.score(ds.X_test, ds.y_test):.4f}")

    fp32 = freeze(model)
    int8 = freeze(model, dtype="int8", calibration=ds.X_train)
    t0 = time.perf_counter()
    with compile_notice() as notice:  # a first run on this machine compiles: say so on stderr
        runtimes = {"fp32": rtinfer.load(fp32), "int8": rtinfer.load(int8)}
        # the entry points predict, stream and measure use, loaded (or compiled) now rather than
        # silently inside the first report
        for rt in runtimes.values():
            rt.predict(np.zeros((64,) + rt.input_shape, np.float32))
            rt.stream(np.zeros((1,) + rt.input_shape, np.float32))
    compiled = f", {notice.total_s:.1f} s of it compiling (once per machine)" if notice and notice.count else \
        " (from the compile cache)"
    weights = "; ".join(f"{name} weights (stored) {rt.frozen.weight_bytes} B, (packed) {rt.plan.weight_bytes} B"
                        for name, rt in runtimes.items())
    print(f"frozen fp32 and int8: {weights}")
    print(f"runtime ready in {time.perf_counter() - t0:.2f} s{compiled}")

    X_test = np.ascontiguousarray(ds.X_test, dtype=np.float32)
    classes = np.asarray(getattr(model, "classes_", np.arange(k)))
    reps = -(-args.n // len(X_test))
    X_time = np.ascontiguousarray(np.concatenate([X_test] * reps)[:args.n])
    verdicts = []
    for name, rt in runtimes.items():
        Y = rt.predict(X_test)
        pred = Y if rt.output_dtype == np.int64 else classes[np.argmax(Y.reshape(len(Y), -1), axis=1)]
        acc = float(np.mean(pred == ds.y_test))
        print(f"\n== {name}: test accuracy {acc:.4f} ==")
        report = rt.measure(X_time, budget_us=args.budget_us, warmup=1000, percentile=args.percentile)
        print(report)
        verdicts.append(report.passed)

    rows = [X_test[i % len(X_test)].copy() for i in range(2000)]
    rt = runtimes["fp32"]
    out = np.empty(rt.output_shape, dtype=rt.output_dtype)
    one = _call_p50_us(lambda x: rt.predict_one(x, out), rows)
    out8 = np.empty(runtimes["int8"].output_shape, dtype=runtimes["int8"].output_dtype)
    one8 = _call_p50_us(lambda x: runtimes["int8"].predict_one(x, out8), rows)
    print(f"\n== one Python call per sample (p50 over {len(rows)} samples) ==")
    print(f"rtinfer predict_one fp32 {one:8.2f} us   int8 {one8:8.2f} us")
    ort_fn, why = _onnx_runner(fp32)
    if ort_fn is not None:
        ort_p50 = _call_p50_us(ort_fn, rows)
        print(f"onnxruntime (1 thread)   {ort_p50:8.2f} us   rtinfer fp32 is {ort_p50 / one:.1f}x faster")
    else:
        print(f"onnxruntime: skipped ({why})")
    rows64 = [r.astype(np.float64)[None, :] for r in rows]
    np_p50 = _call_p50_us(model.predict_proba, rows64)
    print(f"NumPy (trained model)    {np_p50:8.2f} us   rtinfer fp32 is {np_p50 / one:.1f}x faster")
    print(f"\ndemo finished in {time.perf_counter() - t_start:.1f} s; budget {args.budget_us:g} us at "
          f"p{args.percentile:g}: {'held' if all(verdicts) else 'MISSED'} (fp32, int8)")
    return 0
