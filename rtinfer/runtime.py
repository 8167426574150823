"""Runtime: a planned model bound to its own arena, with validated entry points.

    rt = rtinfer.load("model.rtm")          # or a FrozenModel, or "model.onnx"
    Y = rt.predict(X)                       # X (N, *input_shape) float32 -> (N, *output_shape)
    y = rt.predict_one(x, out=y)            # x input_shape (or flat) float32; lowest overhead
    Y = rt.stream(X)                        # all samples one at a time inside compiled code
    report = rt.measure(X, budget_us=100)   # rtinfer.latency.LatencyReport

Input policy, checked once at the boundary (ValueError naming expected vs given):
- dtype must be float32. float64 (or any other dtype) is refused, never converted silently:
  convert once with ``X.astype(np.float32)``.
- arrays must be C-contiguous (``np.ascontiguousarray``).
- shapes: predict/stream take (N, *input_shape) (a 1-D batch of flat samples (N, in_size) is also
  accepted); predict_one takes input_shape or (in_size,).
- non-finite inputs (NaN, inf): ``nonfinite="raise"`` (default) refuses them, ``"allow"`` runs
  them through. predict_one checks with one vectorized pass inside the compiled call.
Outputs have shape (N, *output_shape) / output_shape and dtype float32, or int64 when the model
ends in ARGMAX (``frozen.output_dtype``). A Runtime is not thread-safe (it owns one arena).

Batch option (``rtinfer.load(model, batch=...)``, checked at construction):
- ``"auto"`` (default): predict runs batches of at least rtinfer.batch.AUTO_MIN_BATCH (32)
  samples and AUTO_MIN_WORK (2^16) multiply-accumulates (N x the model's MACs per sample)
  through the batch path (rtinfer.batch): DENSE and QDENSE layers as register-tiled GEMMs
  (float32 FMA; exact int8 with AVX2, or exact through a float32 BLAS product), every other op
  through the compiled kernels, in chunks of rtinfer.batch.CHUNK samples (buffers and packed
  weights made once per Runtime, on first use). fp32 results differ from predict_one/stream in
  the last bits (within 1e-5 relative: another summation order) but not with the batch; int8
  results stay bit-identical.
- ``"exact"``: predict runs blocks of plan.BLOCK samples through the compiled interpreter.
predict with ``batch="exact"`` (or ``"auto"`` below those sizes), predict_one and stream give
bit-identical results for the same sample; int8 layers are bit-identical on every path.

predict_one's fastest path is a 1-D float32 x and a 1-D ``out`` of the output dtype float32:
they go straight to the compiled function (Numba's C-level type check is the boundary check;
sizes and finiteness are checked inside). Shaped inputs, int64 outputs and read-only arrays
take a checked Python path (about a microsecond more).
"""

from __future__ import annotations

import os

import numpy as np

from .frozen import FrozenModel
from .plan import Plan, build_plan

_F32 = np.dtype(np.float32)
_NONFINITE = ("raise", "allow")
_BATCH = ("auto", "exact")


class InputError(ValueError):
    """An input array breaks the model's input contract (shape, dtype, layout, finiteness)."""


def _entry(dispatcher):
    """The compiled entry point of a dispatcher's one signature: skips argument type dispatch
    (the boundary checks here guarantee the types), about half the cost of a dispatcher call."""
    sigs = dispatcher.signatures
    if len(sigs) == 1:
        ep = getattr(dispatcher.overloads[sigs[0]], "entry_point", None)
        if ep is not None:
            return ep
    return dispatcher


class Runtime:
    """A FrozenModel planned and ready to run. Construct with rtinfer.load()."""

    def __init__(self, model, nonfinite: str = "raise", batch: str = "auto"):
        if nonfinite not in _NONFINITE:
            raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
        if batch not in _BATCH:
            raise ValueError(f"batch must be one of {_BATCH}, got {batch!r}")
        if isinstance(model, Plan):
            self.frozen = None
            self.plan = model
        elif isinstance(model, FrozenModel):
            self.frozen = model
            self.plan = build_plan(model)
        else:
            raise ValueError(f"Runtime expects a FrozenModel or Plan, got {type(model).__name__}")
        from . import interp
        interp.warm_up_one()  # execute and first_nonfinite load on first use (__getattr__)
        self._interp = interp
        from .batch import AUTO_MIN_BATCH, AUTO_MIN_WORK
        self._auto_min = AUTO_MIN_BATCH
        self._auto_min_work = AUTO_MIN_WORK
        self._run_one = _entry(interp.run_one)
        self._run_one_fast = interp.run_one  # the dispatcher, compilation disabled by warm_up
        self.nonfinite = nonfinite
        p = self.plan
        self._state = p.new_state()
        self.input_shape = tuple(p.input_shape)
        self.output_shape = tuple(p.output_shape)
        self.output_dtype = np.dtype(p.output_dtype)
        self.in_size = p.in_size
        self.out_size = p.out_size
        self._flat_in = (p.in_size,)
        self._int_out = self.output_dtype != _F32
        # float32 scratch for predict_one when the user-facing output is int64
        self._y_scratch = np.zeros(p.out_size, dtype=np.float32)
        self._no_times = np.zeros(1, dtype=np.int64)
        self.batch = batch
        self._blas = None  # rtinfer.batch.BatchPath, built on the first predict that uses it
        self._blas_built = False

    def __getattr__(self, name):
        # Called only for attributes not set yet. interp.execute and interp.first_nonfinite
        # (predict, stream, measure) are loaded from Numba's cache, or compiled, on first use and
        # then stored as plain attributes: a process that only calls predict_one never loads them.
        if name in ("_execute", "_first_nonfinite"):
            from . import interp
            interp.warm_up_many()
            self._execute = _entry(interp.execute)
            self._first_nonfinite = _entry(interp.first_nonfinite)
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- properties ---------------------------------------------------------------------------
    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes

    @property
    def weight_bytes(self) -> int:
        return self.plan.weight_bytes

    @property
    def macs(self) -> int:
        return self.plan.macs

    def __repr__(self) -> str:
        return (f"Runtime(input={self.input_shape}, output={self.output_shape} {self.output_dtype}, "
                f"ops={self.plan.n_ops}, weights={self.weight_bytes} B, arena={self.arena_bytes} B)")

    # -- boundary checks ----------------------------------------------------------------------
    def _policy(self, nonfinite):
        if nonfinite is None:
            return self.nonfinite
        if nonfinite not in _NONFINITE:
            raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
        return nonfinite

    def _check_batch(self, X, nonfinite) -> np.ndarray:
        """X (N, *input_shape) or (N, in_size) float32 C-contiguous -> flat (N * in_size,) view."""
        if not isinstance(X, np.ndarray):
            raise InputError(f"expected a numpy.ndarray of float32 with shape (N, {self._shape_str()}), "
                             f"got {type(X).__name__}")
        if X.dtype != _F32:
            raise InputError(f"expected dtype float32, got {X.dtype} (convert once with X.astype(np.float32); "
                             f"inputs are never converted silently)")
        if X.ndim < 1 or not (X.shape[1:] == self.input_shape or X.shape[1:] == self._flat_in):
            raise InputError(f"expected an input batch of shape (N, {self._shape_str()}), got shape {X.shape}")
        if not X.flags.c_contiguous:
            raise InputError("expected a C-contiguous array, got a non-contiguous view "
                             "(use np.ascontiguousarray(X))")
        flat = X.reshape(-1)
        if self._policy(nonfinite) == "raise":
            bad = self._first_nonfinite(flat)
            if bad >= 0:
                raise InputError(f"expected finite inputs, got {flat[bad]} at sample {bad // self.in_size}, "
                                 f"element {bad % self.in_size} (pass nonfinite='allow' to run it anyway)")
        return flat

    def _shape_str(self) -> str:
        return ", ".join(str(d) for d in self.input_shape)

    def _batch_out(self, n, out):
        shape = (n,) + self.output_shape
        if out is None:
            return np.empty(shape, dtype=self.output_dtype)
        if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != self.output_dtype \
                or not out.flags.c_contiguous or not out.flags.writeable:
            given = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
            raise InputError(f"expected out as a writable C-contiguous {self.output_dtype} array of shape "
                             f"{shape}, got {given}")
        return out

    def _blas_path(self):
        """The batch path (built once, on first use), or None if the plan has none."""
        if not self._blas_built:
            from .batch import BatchPath
            self._blas = BatchPath.build(self.plan)
            self._blas_built = True
        return self._blas

    def _run_batch(self, X, out, nonfinite, mode, auto=False):
        flat = self._check_batch(X, nonfinite)
        n = X.shape[0]
        Y = self._batch_out(n, out)
        if n == 0:
            return Y
        if auto and n >= self._auto_min and n * self.plan.macs >= self._auto_min_work:
            blas = self._blas_path()
            if blas is not None:
                blas.run(flat, Y.reshape(-1), n)
                return Y
        if self._int_out:
            tmp = np.empty(n * self.out_size, dtype=np.float32)
            self._execute(self._state, flat, tmp, n, mode, self._no_times)
            Y.reshape(-1)[:] = tmp
        else:
            self._execute(self._state, flat, Y.reshape(-1), n, mode, self._no_times)
        return Y

    # -- execution ----------------------------------------------------------------------------
    def predict(self, X, out=None, nonfinite=None) -> np.ndarray:
        """Batch X (N, *input_shape) -> (N, *output_shape). batch="exact": in blocks of
        plan.BLOCK samples through the compiled interpreter; batch="auto": batches of at least
        rtinfer.batch.AUTO_MIN_BATCH samples (and AUTO_MIN_WORK MACs) through the batch path
        (rtinfer.batch)."""
        return self._run_batch(X, out, nonfinite, self._interp.MODE_BATCH, auto=self.batch == "auto")

    def stream(self, X, out=None, nonfinite=None) -> np.ndarray:
        """Every sample of X one at a time, all inside one compiled call (the embedded loop)."""
        return self._run_batch(X, out, nonfinite, self._interp.MODE_STREAM)

    def predict_one(self, x, out=None, nonfinite=None):
        """One sample x (input_shape or (in_size,), float32, C-contiguous) -> output_shape.

        With ``out`` (a float32/int64 array of output_shape or (out_size,)) nothing is allocated.
        Fast path: 1-D x and out go straight to the compiled dispatcher, whose C type check
        (ndarray, dtype, ndim, C layout, writable) is the boundary check; run_one itself
        checks sizes and finiteness. Anything else takes the checked path below.
        """
        if out is None:
            out = np.empty(self.output_shape, dtype=self.output_dtype)
        try:
            status = self._run_one_fast(self._state, x, out)
        except TypeError:  # not exactly float32 1-D C-contiguous writable arrays: check it all
            return self._predict_one_checked(x, out, nonfinite)
        if status != -1 or nonfinite is not None:
            self._one_status(status, x, out, nonfinite)
        return out

    def _predict_one_checked(self, x, out, nonfinite):
        if type(x) is not np.ndarray or x.dtype != _F32 or not x.flags.c_contiguous \
                or (x.shape != self.input_shape and x.shape != self._flat_in):
            self._explain_one(x)
        if type(out) is not np.ndarray or out.dtype != self.output_dtype or out.size != self.out_size \
                or not out.flags.c_contiguous or not out.flags.writeable:
            self._explain_out(out)
        # the compiled entry point is typed for 1-D arrays: hand it flat views
        xf = x if x.ndim == 1 else x.reshape(-1)
        if self._int_out:
            status = self._run_one(self._state, xf, self._y_scratch)
            out.reshape(-1)[:] = self._y_scratch
        else:
            status = self._run_one(self._state, xf, out if out.ndim == 1 else out.reshape(-1))
        self._one_status(status, x, out, nonfinite)
        return out

    def _one_status(self, status, x, out, nonfinite):
        """Act on run_one's status: -1 ok, >= 0 first non-finite input element, -2/-3 wrong
        x/out size (nothing ran)."""
        policy = self._policy(nonfinite)
        if status == -2:
            self._explain_one(x)
        if status == -3:
            self._explain_out(out)
        if status >= 0 and policy == "raise":
            raise InputError(f"expected finite inputs, got {x.reshape(-1)[status]} at element {status} "
                             f"(pass nonfinite='allow' to run it anyway)")

    def _explain_out(self, out):
        given = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise InputError(f"expected out as a writable C-contiguous {self.output_dtype} array of shape "
                         f"{self.output_shape}, got {given}")

    def _explain_one(self, x):
        if type(x) is not np.ndarray:
            raise InputError(f"expected a numpy.ndarray of float32 with shape {self.input_shape}, "
                             f"got {type(x).__name__}")
        if x.dtype != _F32:
            raise InputError(f"expected dtype float32, got {x.dtype} (convert once with x.astype(np.float32); "
                             f"inputs are never converted silently)")
        if x.shape != self.input_shape and x.shape != self._flat_in:
            raise InputError(f"expected one sample of shape {self.input_shape}, got shape {x.shape} "
                             f"(use predict() for batches)")
        raise InputError("expected a C-contiguous array, got a non-contiguous view (use np.ascontiguousarray(x))")

    # -- latency ------------------------------------------------------------------------------
    def measure(self, X, budget_us: float, warmup: int = 1000, percentile: float = 99.9,
                mode: str = "in-loop", per_layer: bool = False):
        """Per-sample latency of X against budget_us; see rtinfer.latency.measure."""
        from .latency import measure
        return measure(self, X, budget_us=budget_us, warmup=warmup, percentile=percentile,
                       mode=mode, per_layer=per_layer)


def load(model, nonfinite: str = "raise", batch: str = "auto") -> Runtime:
    """A Runtime from a FrozenModel, a ``.rtm`` path or an ``.onnx`` path. ``nonfinite`` and
    ``batch`` are the Runtime's options (see the module docstring)."""
    if batch not in _BATCH:
        raise ValueError(f"batch must be one of {_BATCH}, got {batch!r}")
    if isinstance(model, (FrozenModel, Plan)):
        return Runtime(model, nonfinite=nonfinite, batch=batch)
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        low = path.lower()
        if low.endswith(".rtm"):
            from .rtm import load_frozen
            return Runtime(load_frozen(path), nonfinite=nonfinite, batch=batch)
        if low.endswith(".onnx"):
            if not os.path.exists(path):
                raise FileNotFoundError(f"no such model file: {path}")
            from export.onnx_import import from_onnx
            return Runtime(from_onnx(path), nonfinite=nonfinite, batch=batch)
        raise ValueError(f"cannot load {path!r}: expected a .rtm or .onnx file")
    raise ValueError(f"load expects a FrozenModel or a path to a .rtm/.onnx file, got {type(model).__name__}")
