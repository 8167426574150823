"""Engines under test, one adapter each, all fed the same FrozenModel weights and the same inputs.

    engines, skipped, rt = make_engines(bench_model, names=None, workdir=tmp)  # skipped: {name: reason}
    engine.outputs(X)                # (N, out) float32, every sample through the per-sample path
    engine.batch_outputs(X)          # (N, out) float32 through the batched path (None: none)
    engine.time_samples(X, warmup)   # (N,) int64 nanoseconds, one per sample
    engine.batch_call(B)             # a callable f(Xb) running one batch of B samples, or None

CNN models get their samples in their natural shape (X[i], e.g. (1, 49, 10)); the NumPy
and torch adapters translate MLPs only and are skipped for CNNs with a note.

Kinds: "in-loop" samples are timed inside compiled code (rtinfer's measure, clock_gettime around
each sample); "call" samples are one Python call each, timed with time.perf_counter_ns around the
call (what a Python host sees). Every "call" engine gets its single-sample inputs pre-sliced
(no slicing inside the timed region) and returns a NumPy array.

Engine names (ENGINE_NAMES): rtinfer in-loop, rtinfer predict_one, rtinfer batch, onnxruntime
(one intra-op thread, sequential execution, ``InferenceSession.run``), onnxruntime iobinding (the
same session through ``run_with_iobinding`` on preallocated input/output buffers: its lowest-
overhead call), numpy (per-sample ``x @ W + b`` chain, fp32 models
only), torch (eager, CPU, one thread, fp32 models only) and tract (ONNX, shapes fixed per batch
size). Optional engines that are not installed are skipped with a note, never an error.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .suite_models import BenchConfigError

ENGINE_NAMES = ("rtinfer in-loop", "rtinfer predict_one", "rtinfer batch", "onnxruntime",
                "onnxruntime iobinding", "numpy", "torch", "tract")
BATCH_SIZES = (1, 32, 256)


class CrossCheckError(ValueError):
    """An engine's outputs differ from rtinfer's reference executor beyond the tolerance."""


def _engine_key(name: str) -> str:
    return name.strip().lower().replace(" ", "-").replace("_", "-")


def check_engine_names(names) -> tuple:
    """ENGINE_NAMES entries chosen by names (None: all), in ENGINE_NAMES order. Spaces, hyphens
    and underscores are interchangeable: "rtinfer-in-loop" and "rtinfer_predict_one" are accepted."""
    if names is None:
        return ENGINE_NAMES
    keys = {_engine_key(n) for n in names}
    known = {_engine_key(n): n for n in ENGINE_NAMES}
    bad = sorted(k for k in keys if k not in known)
    if bad:
        raise BenchConfigError(f"unknown engine(s) {bad}; choose from {list(ENGINE_NAMES)}")
    return tuple(n for n in ENGINE_NAMES if _engine_key(n) in keys)


def _timed_loop(fn, rows, warmup: int) -> np.ndarray:
    """Per-call nanoseconds of fn(rows[i]) for every i, after `warmup` untimed calls."""
    n = len(rows)
    for i in range(min(warmup, n)):
        fn(rows[i])
    times = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn(rows[i])
        times[i] = clock() - t0
    return times


class Engine:
    name = ""
    kind = "call"  # "call" | "in-loop"

    def outputs(self, X: np.ndarray) -> np.ndarray:
        rows = self.rows(X)
        # copy each result: an engine may return the same preallocated buffer every call
        return np.stack([np.array(self.one(r), dtype=np.float32, copy=True).reshape(-1) for r in rows])

    def batch_outputs(self, X: np.ndarray):
        f = self.batch_call(len(X))
        return None if f is None else np.array(f(X), dtype=np.float32, copy=True).reshape(len(X), -1)

    def rows(self, X: np.ndarray) -> list:
        """Single-sample inputs in the engine's own form (prepared outside any timed region)."""
        return [X[i:i + 1] for i in range(len(X))]

    def one(self, row):
        raise NotImplementedError

    def time_samples(self, X: np.ndarray, warmup: int) -> np.ndarray:
        return _timed_loop(self.one, self.rows(X), warmup)

    def batch_call(self, B: int):
        return None


# -- rtinfer ----------------------------------------------------------------------------------

class RtinferInLoop(Engine):
    """All samples inside one compiled call; per-sample time from rtinfer's in-loop measure."""
    name = "rtinfer in-loop"
    kind = "in-loop"

    def __init__(self, rt, budget_us):
        self.rt = rt
        self.budget_us = budget_us

    def outputs(self, X):
        return self.rt.stream(X).reshape(len(X), -1)

    def batch_outputs(self, X):
        return None  # stream is this engine's only path (checked by outputs)

    def time_samples(self, X, warmup):
        report = self.rt.measure(X, budget_us=self.budget_us, warmup=warmup, mode="in-loop")
        return np.rint(report.samples_us * 1000.0).astype(np.int64)

    def batch_call(self, B):
        out = np.empty((B,) + self.rt.output_shape, dtype=self.rt.output_dtype)
        stream = self.rt.stream
        return lambda Xb: stream(Xb, out)


class RtinferPredictOne(Engine):
    """One Python predict_one(x, out) call per sample (the lowest-overhead call path)."""
    name = "rtinfer predict_one"

    def __init__(self, rt):
        self.rt = rt
        self.out = np.empty(rt.output_shape, dtype=rt.output_dtype)

    def rows(self, X):
        return [X[i] for i in range(len(X))]

    def one(self, row):
        return self.rt.predict_one(row, self.out)

    def outputs(self, X):
        return np.stack([self.rt.predict_one(x).reshape(-1) for x in self.rows(X)])

    def batch_call(self, B):
        if B != 1:
            return None
        out = self.out
        predict_one = self.rt.predict_one
        return lambda Xb: predict_one(Xb[0], out)

    def batch_outputs(self, X):
        return None  # the batched path is "rtinfer batch"


class RtinferBatch(Engine):
    """predict() on a batch (blocked matrix-matrix kernels); a batch of one per sample for latency."""
    name = "rtinfer batch"

    def __init__(self, rt):
        self.rt = rt
        self.out1 = np.empty((1,) + rt.output_shape, dtype=rt.output_dtype)

    def one(self, row):
        return self.rt.predict(row, self.out1)

    def outputs(self, X):
        return np.stack([self.rt.predict(r).reshape(-1) for r in self.rows(X)])

    def batch_call(self, B):
        out = np.empty((B,) + self.rt.output_shape, dtype=self.rt.output_dtype)
        predict = self.rt.predict
        return lambda Xb: predict(Xb, out)


# -- onnxruntime ------------------------------------------------------------------------------

class OnnxRuntime(Engine):
    name = "onnxruntime"

    def __init__(self, onnx_bytes):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
        self.in_name = self.sess.get_inputs()[0].name
        self.out_names = [self.sess.get_outputs()[0].name]

    def one(self, row):
        return self.sess.run(self.out_names, {self.in_name: row})[0]

    def batch_call(self, B):
        run, out_names, in_name = self.sess.run, self.out_names, self.in_name
        return lambda Xb: run(out_names, {in_name: Xb})[0]


class OnnxRuntimeIOBinding(OnnxRuntime):
    """The same session, called through run_with_iobinding on preallocated buffers per batch size
    (the input is copied into the bound buffer inside the timed call, as a serving loop would)."""
    name = "onnxruntime iobinding"

    def __init__(self, onnx_bytes, in_shape, out_size, out_dtype):
        super().__init__(onnx_bytes)
        self.in_shape, self.out_size, self.out_dtype = tuple(in_shape), out_size, np.dtype(out_dtype)
        self.bound = {}
        self._one = self.batch_call(1)

    def _binding(self, B):
        if B not in self.bound:
            x = np.zeros((B,) + self.in_shape, dtype=np.float32)
            y = np.zeros((B, self.out_size), dtype=self.out_dtype)
            b = self.sess.io_binding()
            b.bind_cpu_input(self.in_name, x)
            b.bind_output(self.out_names[0], "cpu", 0, self.out_dtype, list(y.shape), y.ctypes.data)
            self.bound[B] = (b, x, y)
        return self.bound[B]

    def one(self, row):
        return self._one(row)

    def batch_call(self, B):
        b, x, y = self._binding(B)
        run = self.sess.run_with_iobinding

        def call(Xb):
            x[...] = Xb.reshape(x.shape)
            run(b)
            return y
        return call


# -- numpy ------------------------------------------------------------------------------------

class NumpyChain(Engine):
    """Per-sample chain of ``x @ W + b`` (+ ReLU in place, softmax head) over the frozen fp32 weights."""
    name = "numpy"

    def __init__(self, frozen):
        from rtinfer.ops import Act, Op
        steps = []
        for layer in frozen.layers:
            if layer.op == Op.DENSE and layer.act in (Act.IDENTITY, Act.RELU):
                W = np.ascontiguousarray(frozen.tensor(layer, "W"), dtype=np.float32)
                b = np.ascontiguousarray(frozen.tensor(layer, "b"), dtype=np.float32)
                steps.append(("dense", W, b, layer.act == Act.RELU))
            elif layer.op == Op.SOFTMAX and layer.attrs.get("outer", 1) == 1 and layer.attrs.get("inner", 1) == 1:
                steps.append(("softmax", None, None, False))
            else:
                raise BenchConfigError(f"numpy engine: no translation for {layer.op.name} {layer.act.name}")
        self.steps = steps

    def one(self, x):
        for kind, W, b, relu in self.steps:
            if kind == "dense":
                x = x @ W
                x += b
                if relu:
                    np.maximum(x, 0.0, out=x)
            else:
                x = x - x.max(axis=-1, keepdims=True)
                np.exp(x, out=x)
                x /= x.sum(axis=-1, keepdims=True)
        return x

    def batch_call(self, B):
        return self.one


# -- torch ------------------------------------------------------------------------------------

class TorchEager(Engine):
    name = "torch"

    def __init__(self, frozen):
        import torch
        from rtinfer.ops import Act, Op
        torch.set_num_threads(1)
        mods = []
        for layer in frozen.layers:
            if layer.op == Op.DENSE and layer.act in (Act.IDENTITY, Act.RELU):
                W = np.asarray(frozen.tensor(layer, "W"), dtype=np.float32)
                lin = torch.nn.Linear(W.shape[0], W.shape[1])
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                    lin.bias.copy_(torch.from_numpy(np.array(frozen.tensor(layer, "b"), dtype=np.float32)))
                mods.append(lin)
                if layer.act == Act.RELU:
                    mods.append(torch.nn.ReLU())
            elif layer.op == Op.SOFTMAX and layer.attrs.get("outer", 1) == 1 and layer.attrs.get("inner", 1) == 1:
                mods.append(torch.nn.Softmax(dim=-1))
            else:
                raise BenchConfigError(f"torch engine: no translation for {layer.op.name} {layer.act.name}")
        self.torch = torch
        self.model = torch.nn.Sequential(*mods).eval()

    def rows(self, X):
        return [self.torch.from_numpy(X[i:i + 1]) for i in range(len(X))]

    def one(self, row):
        return self.model(row).numpy()

    def outputs(self, X):
        with self.torch.inference_mode():
            return super().outputs(X)

    def time_samples(self, X, warmup):
        # one inference_mode context around the whole loop, as a serving loop would hold it
        with self.torch.inference_mode():
            return super().time_samples(X, warmup)

    def batch_call(self, B):
        torch, model = self.torch, self.model

        def run(Xb):
            with torch.inference_mode():
                return model(torch.from_numpy(Xb)).numpy()
        return run


# -- tract ------------------------------------------------------------------------------------

class Tract(Engine):
    """tract's ONNX loader with the input shape fixed per batch size, optimized, made runnable."""
    name = "tract"

    def __init__(self, onnx_path, in_shape):
        import tract
        self.tract = tract
        self.path = onnx_path
        self.in_shape = tuple(in_shape)
        self.runnables = {}

    def _runnable(self, B):
        if B not in self.runnables:
            im = self.tract.onnx().load(self.path)
            im.set_input_fact(0, ",".join(str(d) for d in (B,) + self.in_shape) + ",f32")
            self.runnables[B] = im.into_model().into_runnable()
        return self.runnables[B]

    def one(self, row):
        return self._runnable(1).run([row])[0].to_numpy()

    def batch_call(self, B):
        r = self._runnable(B)
        return lambda Xb: r.run([Xb])[0].to_numpy()


# -- construction ------------------------------------------------------------------------------

def make_engines(bm, names=None, workdir=None):
    """(engines, skipped, rt) for one BenchModel: the engines in ENGINE_NAMES order, a dict mapping
    each skipped engine's name to the reason, and the rtinfer Runtime of the in-loop engine."""
    import rtinfer
    names = check_engine_names(names)
    engines, skipped = [], {}
    rt = rtinfer.load(bm.frozen)
    onnx_bytes = None
    onnx_path = None
    if any(n in names for n in ("onnxruntime", "onnxruntime iobinding", "tract")):
        from export import to_onnx
        onnx_bytes = to_onnx(bm.frozen).SerializeToString()
        if workdir is not None:
            onnx_path = os.path.join(workdir, f"{bm.file_key}.onnx")
            with open(onnx_path, "wb") as fh:
                fh.write(onnx_bytes)
    for name in names:
        try:
            if name == "rtinfer in-loop":
                engines.append(RtinferInLoop(rt, bm.budget_us))
            elif name == "rtinfer predict_one":
                engines.append(RtinferPredictOne(rtinfer.load(bm.frozen)))
            elif name == "rtinfer batch":
                engines.append(RtinferBatch(rtinfer.load(bm.frozen)))
            elif name == "onnxruntime":
                engines.append(OnnxRuntime(onnx_bytes))
            elif name == "onnxruntime iobinding":
                engines.append(OnnxRuntimeIOBinding(onnx_bytes, bm.frozen.input_shape, bm.frozen.output_size,
                                                    bm.frozen.output_dtype))
            elif name == "numpy":
                if bm.dtype != "fp32":
                    skipped[name] = "fp32 only (NumPy has no int8 GEMM; an int8 chain would be the reference executor)"
                    continue
                if getattr(bm.spec, "cnn", False):
                    skipped[name] = "MLPs only (a per-sample NumPy chain of x @ W + b; no convolution)"
                    continue
                engines.append(NumpyChain(bm.frozen))
            elif name == "torch":
                if bm.dtype != "fp32":
                    skipped[name] = ("fp32 only (torch's int8 paths use their own quantization scheme, "
                                     "not these QDQ weights)")
                    continue
                try:
                    import torch  # noqa: F401
                except ImportError:
                    skipped[name] = "not installed (pip install torch)"
                    continue
                if getattr(bm.spec, "cnn", False):
                    skipped[name] = "MLPs only (the adapter translates DENSE layers)"
                    continue
                engines.append(TorchEager(bm.frozen))
            elif name == "tract":
                try:
                    import tract  # noqa: F401
                except ImportError:
                    skipped[name] = "not installed (pip install tract)"
                    continue
                if onnx_path is None:
                    skipped[name] = "needs a work directory for its ONNX file"
                    continue
                engines.append(Tract(onnx_path, bm.frozen.input_shape))
        except ImportError as exc:
            skipped[name] = f"not available: {exc}"
    return engines, skipped, rt


def tolerance(bm, engine_name: str, ref_max: float) -> float:
    """Max |engine - reference| allowed: float32 rounding (1e-4 relative to max(1, max|ref|)),
    plus one output LSB (the last DEQUANTIZE's scale) for int8 engines other than rtinfer, which
    must match the reference's integers exactly."""
    tol = 1e-4 * max(1.0, ref_max)
    if bm.dtype == "int8" and not engine_name.startswith("rtinfer"):
        from rtinfer.ops import Op
        deq = [layer for layer in bm.frozen.layers if layer.op == Op.DEQUANTIZE]
        tol += float(deq[-1].attrs["x_scale"]) * 1.001
    return tol


def cross_check(bm, engines, n_check: int = 64) -> list:
    """Compare every engine's per-sample and batched outputs with rtinfer.reference on the first
    n_check inputs; raise CrossCheckError on a mismatch. Returns one dict per engine and path."""
    from rtinfer import reference
    X = bm.X[:n_check]
    ref = reference.run(bm.frozen, X).reshape(len(X), -1).astype(np.float32)
    ref_max = float(np.abs(ref).max()) if ref.size else 0.0
    rows = []
    for e in engines:
        tol = tolerance(bm, e.name, ref_max)
        for path, Y in (("per-sample", e.outputs(X)), ("batch", e.batch_outputs(X))):
            if Y is None:
                continue
            Y = np.asarray(Y, dtype=np.float32).reshape(ref.shape)
            diff = float(np.max(np.abs(Y - ref))) if Y.size else 0.0
            ok = bool(np.all(np.isfinite(Y))) and diff <= tol
            rows.append({"model": bm.name, "engine": e.name, "path": path, "n": len(X), "max_abs_diff": diff,
                         "tolerance": tol, "ok": ok})
            if not ok:
                raise CrossCheckError(f"{bm.name}: engine {e.name!r} ({path}) differs from the reference "
                                      f"executor by {diff:.3g} > tolerance {tol:.3g}")
    return rows
