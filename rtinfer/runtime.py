"""Runtime: a planned model bound to its own arena, with validated entry points.

    rt = rtinfer.load("model.rtm")          # or a FrozenModel, or "model.onnx"
    Y = rt.predict(X)                       # X (N, *input_shape) float32 -> (N, *output_shape)
    y = rt.predict_one(x, out=y)            # x input_shape (or flat) float32; lowest overhead
    Y = rt.stream(X)                        # all samples one at a time inside compiled code
    report = rt.measure(X, budget_us=100)   # rtinfer.latency.LatencyReport

Input policy, checked once at the boundary (InputError, a ValueError, naming expected vs given):
- dtype must be float32. float64 (or any other dtype) is refused, never converted silently:
  convert once with ``X.astype(np.float32)``.
- arrays must be C-contiguous (``np.ascontiguousarray``). np.matrix and masked arrays are
  refused (a matrix row is 2-D; a mask would be ignored); other ndarray subclasses (np.memmap,
  ...) are read through a plain ndarray view (rtinfer.boundary).
- shapes: predict/stream take (N, *input_shape) (a 1-D batch of flat samples (N, in_size) is also
  accepted); predict_one takes input_shape or (in_size,).
- non-finite inputs (NaN, inf): ``nonfinite="raise"`` (default) refuses them, ``"allow"`` runs
  them through. predict_one checks with one vectorized pass inside the compiled call.
- ``out`` must not overlap the input (refused: a kernel would read values it already wrote).
Models without a batch axis (``frozen.meta["batch"] == "none"``: fixed-shape graphs imported from
ONNX whose ops act across the first dimension, as TensorFlow Lite Micro and onnx2c assume): the
whole input tensor is one sample, so ``predict`` takes exactly ``input_shape`` and returns
``output_shape`` (no leading N); predict_one does the same; stream and measure take a sequence
of whole inputs (N, *input_shape).
Outputs have shape (N, *output_shape) / output_shape and dtype float32, or int64 when the model
ends in ARGMAX or an integer CONST, int8 / uint8 for the codes of an int8 / uint8 tensor, int32
for exact integer sums (``frozen.output_dtype``; computed as exact float32 values, converted at
the end of a call). A model with several outputs returns a tuple of arrays in
``frozen.outputs`` order (views of one buffer per call; ``out`` is then a tuple too).

Threads: a Runtime may be shared; every call gives the right answer. A call that touches the
Runtime's arena is one compiled function call, which holds the GIL for its whole duration, so
two threads never interleave inside it; the batch path (several calls and BLAS products that
release the GIL) holds the Runtime's lock. Calls on one Runtime therefore run one at a time:
for parallel throughput give each thread its own ``rt.clone()`` (shares the plan, owns an arena).

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

predict_one's fast path is a plain float32 C-contiguous x (flat or in input_shape, read-only or
not) and no ``out`` or a 1-D one of the output dtype: Python identity and flag tests (cheaper
than Numba's type dispatch), then the compiled entry point, which checks sizes, overlap and
finiteness. Anything else takes a checked path that explains what it refuses (costs per input
form: bench/bench_call_forms.py).
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .boundary import InputError, plain_array
from .frozen import FrozenModel
from .plan import Plan, build_plan

_ND = np.ndarray
_empty = np.empty
_F32 = np.dtype(np.float32)
_I64 = np.dtype(np.int64)
_NONFINITE = ("raise", "allow")
_BATCH = ("auto", "exact")


class Runtime:
    """A FrozenModel planned and ready to run. Construct with rtinfer.load()."""

    def __init__(self, model, nonfinite: str = "raise", batch: str = "auto"):
        if nonfinite not in _NONFINITE:
            raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
        if batch not in _BATCH:
            raise ValueError(f"batch must be one of {_BATCH}, got {batch!r}")
        self.no_batch = False  # True: predict takes exactly one whole input (see the module docstring)
        if isinstance(model, Plan):
            self.frozen = None
            self.plan = model
        elif isinstance(model, FrozenModel):
            self.frozen = model
            self.plan = build_plan(model)
            self.no_batch = model.meta.get("batch") == "none"
        else:
            raise ValueError(f"Runtime expects a FrozenModel or Plan, got {type(model).__name__}")
        from . import interp
        from .interp import entry_point
        from .plan import C_OP
        # the interpreter variant the model's ops need ("core": no conv/pool rows, a smaller
        # first compile), compiled or loaded from the on-disk cache once per process
        self.variant = interp.variant_for(self.plan.program[:, C_OP])
        execute = interp.warm_up(self.variant)
        self._interp = interp
        from .batch import AUTO_MIN_BATCH, AUTO_MIN_WORK
        self._auto_min = AUTO_MIN_BATCH
        self._auto_min_work = AUTO_MIN_WORK
        self._execute = entry_point(execute)  # no type dispatch: callers pass checked arrays
        self._mode_one = interp.MODE_ONE
        self._mode_one_i64 = interp.MODE_ONE | interp.I64
        self.nonfinite = nonfinite
        p = self.plan
        self._state = p.new_state()
        self.input_shape = tuple(p.input_shape)
        self.outputs = tuple((tuple(shape), np.dtype(dtype)) for shape, dtype, _ in p.outputs) or \
            ((tuple(p.output_shape), np.dtype(p.output_dtype)),)
        self.output_shape = self.outputs[0][0]
        self.output_dtype = self.outputs[0][1]
        self.in_size = p.in_size
        self.out_size = p.out_size           # elements per sample of all outputs
        self._flat_in = (p.in_size,)
        self._flat_out = (p.out_size,)
        self._multi = len(self.outputs) > 1
        self._out_one = int(np.prod(self.output_shape, dtype=np.int64))  # elements of the first output
        self._int_out = not self._multi and self.output_dtype == _I64
        # predict_one's fast path (one float32 or int64 output): the entry point, the arena, the
        # output's np.empty shape (an int for a 1-D output: the cheapest call) and dtype, whether
        # to flatten it, the mode, whether it is int64
        self._one = None
        self._i64_view = (None, None)  # predict_one's last int64 out and its float32 view
        if not self._multi and self.output_dtype in (_F32, _I64):
            one_d = len(self.output_shape) == 1
            self._one = (self._execute, self._state, self.output_shape[0] if one_d else self.output_shape,
                         self.output_dtype, not one_d,
                         self._mode_one_i64 if self._int_out else self._mode_one, self._int_out)
        # int8 / uint8 / int32: computed into a float32 buffer, then converted (exact integers by construction)
        self._cast_out = not self._multi and self.output_dtype not in (_F32, _I64)
        self._cols = [(col, int(np.prod(shape, dtype=np.int64))) for shape, _, col in p.outputs] or [(0, p.out_size)]
        self.batch = batch
        self._lock = threading.Lock()  # held by the batch path (several calls and BLAS products)
        self._blas = None  # rtinfer.batch.BatchPath, built on the first predict that uses it
        self._blas_built = False

    def clone(self) -> "Runtime":
        """A Runtime of the same plan with its own arena (for another thread)."""
        rt = Runtime(self.plan, nonfinite=self.nonfinite, batch=self.batch)
        rt.frozen = self.frozen
        rt.no_batch = self.no_batch
        return rt

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
        outs = ", ".join(f"{shape} {dtype}" for shape, dtype in self.outputs)
        return (f"Runtime(input={self.input_shape}{' (no batch axis)' if self.no_batch else ''}, output={outs}, "
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
        # the common case (a plain float32 ndarray) costs identity tests only: messages are
        # formatted when they are raised (an f-string per call cost ~0.6 us)
        if X.__class__ is not _ND:
            X = plain_array(X, f"of float32 with shape (N, {self._shape_str()})")
        if X.dtype is not _F32 and X.dtype != _F32:
            raise InputError(f"expected dtype float32, got {X.dtype} (convert once with X.astype(np.float32); "
                             f"inputs are never converted silently)")
        tail = X.shape[1:]
        if X.ndim < 1 or not (tail == self.input_shape or tail == self._flat_in):
            raise InputError(f"expected an input batch of shape (N, {self._shape_str()}), got shape {X.shape}")
        if not X.flags.c_contiguous:
            raise InputError("expected a C-contiguous array, got a non-contiguous view "
                             "(use np.ascontiguousarray(X))")
        flat = X.reshape(-1)
        if self._policy(nonfinite) == "raise":
            bad = self._execute(self._state, flat, flat, 0, self._interp.MODE_NONFINITE)
            if bad >= 0:
                raise InputError(f"expected finite inputs, got {flat[bad]} at sample {bad // self.in_size}, "
                                 f"element {bad % self.in_size} (pass nonfinite='allow' to run it anyway)")
        return flat

    def _shape_str(self) -> str:
        return ", ".join(str(d) for d in self.input_shape)

    def _batch_out(self, n, out, X):
        """The output array(s) for n samples: out checked (never overlapping X), or new."""
        if self._multi:
            return self._multi_out(n, out, X)
        shape = (n,) + self.output_shape
        if out is None:
            return _empty(shape, self.output_dtype)
        if out.__class__ is not _ND and isinstance(out, (np.matrix, np.ma.MaskedArray)):
            plain_array(out, "for out")  # refused, with the reason
        if not isinstance(out, np.ndarray) or out.shape != shape \
                or out.dtype != self.output_dtype or not out.flags.c_contiguous or not out.flags.writeable:
            given = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
            raise InputError(f"expected out as a writable C-contiguous {self.output_dtype} array of shape "
                             f"{shape}, got {given}")
        if np.may_share_memory(out, X):
            raise InputError("out overlaps the input X; pass a separate output array")
        return out

    def _multi_out(self, n, out, X):
        if out is not None:
            shapes = [(n,) + shape for shape, _ in self.outputs]
            if not isinstance(out, (tuple, list)) or len(out) != len(self.outputs) or any(
                    not isinstance(o, np.ndarray) or o.shape != s or o.dtype != d or not o.flags.writeable
                    for o, s, (_, d) in zip(out, shapes, self.outputs)):
                raise InputError(f"expected out as a tuple of {len(self.outputs)} writable arrays "
                                 f"{[(s, str(d)) for s, (_, d) in zip(shapes, self.outputs)]}")
            if any(np.may_share_memory(o, X) for o in out):
                raise InputError("out overlaps the input X; pass separate output arrays")
        return out

    def _split(self, Yf, n, out):
        """Per-output arrays from the float32 (n, out_size) buffer of a multi-output model."""
        Y2 = Yf.reshape(n, self.out_size)
        res = []
        for k, ((shape, dtype), (col, size)) in enumerate(zip(self.outputs, self._cols)):
            v = Y2[:, col:col + size]
            if out is not None:
                out[k].reshape(n, size)[...] = v
                res.append(out[k])
            elif dtype != _F32:
                res.append(v.astype(dtype).reshape((n,) + shape))
            else:
                res.append(v.reshape((n,) + shape))
        return tuple(res)

    def _blas_path(self):
        """The batch path (built once, on first use), or None if the plan has none."""
        if not self._blas_built:
            with self._lock:
                if not self._blas_built:
                    from .batch import BatchPath
                    self._blas = BatchPath.build(self.plan)
                    self._blas_built = True
        return self._blas

    def _run_batch(self, X, out, nonfinite, mode, auto=False):
        flat = self._check_batch(X, nonfinite)
        n = flat.size // self.in_size
        Y = self._batch_out(n, out, flat)
        Yp = Y if self._multi or type(Y) is np.ndarray else Y.view(np.ndarray)
        if n == 0:
            return Y if not self._multi else self._split(np.zeros(0, np.float32), 0, out)
        if self._multi or self._cast_out:
            Yf = np.empty(n * self.out_size, dtype=np.float32)  # per call: no shared scratch
        elif self._int_out:
            Yf = Yp.reshape(-1).view(np.float32)  # converted to int64 in place (interp.I64)
            mode |= self._interp.I64
        else:
            Yf = Yp.reshape(-1)
        if auto and n >= self._auto_min and n * self.plan.macs >= self._auto_min_work:
            blas = self._blas_path()
            if blas is not None:
                with self._lock:
                    blas.run(flat, Yf, n, self._int_out)
                return self._finish(Yf, Yp, Y, n, out)
        status = self._execute(self._state, flat, Yf, n, mode)
        if status != -1:  # pragma: no cover - sizes were checked above
            raise RuntimeError(f"internal error: execute returned {status}")
        return self._finish(Yf, Yp, Y, n, out)

    def _finish(self, Yf, Yp, Y, n, out):
        """The result of _run_batch from the float32 buffer Yf (Y itself unless converted)."""
        if self._multi:
            return self._split(Yf, n, out)
        if self._cast_out:
            Yp.reshape(-1)[...] = Yf
        return Y

    # -- execution ----------------------------------------------------------------------------
    def predict(self, X, out=None, nonfinite=None):
        """Batch X (N, *input_shape) -> (N, *output_shape). batch="exact": in blocks of
        plan.BLOCK samples through the compiled interpreter; batch="auto": batches of at least
        rtinfer.batch.AUTO_MIN_BATCH samples (and AUTO_MIN_WORK MACs) through the batch path
        (rtinfer.batch). A model without a batch axis takes exactly X of input_shape and
        returns output_shape."""
        if self.no_batch:
            return self._predict_whole(X, out, nonfinite)
        return self._run_batch(X, out, nonfinite, self._interp.MODE_BATCH, auto=self.batch == "auto")

    def _predict_whole(self, X, out, nonfinite):
        """predict of a model without a batch axis: X is the one whole input."""
        X = plain_array(X, f"of float32 with shape {self.input_shape}")
        if X.shape != self.input_shape:
            raise InputError(f"this model has no batch axis: predict takes exactly one input of shape "
                             f"{self.input_shape} (the whole tensor is one sample), got shape {X.shape}")
        if out is not None:
            outs = out if self._multi else (out,)
            if any(not isinstance(o, np.ndarray) or o.shape != shape for o, (shape, _) in zip(outs, self.outputs)) \
                    or len(outs) != len(self.outputs):
                raise InputError(f"expected out of shape {[s for s, _ in self.outputs]}")
            out = tuple(o.reshape((1,) + o.shape) for o in outs) if self._multi else out.reshape((1,) + out.shape)
        Y = self._run_batch(X.reshape((1,) + X.shape), out, nonfinite, self._interp.MODE_BATCH)
        return tuple(y[0] for y in Y) if self._multi else Y[0]

    def stream(self, X, out=None, nonfinite=None):
        """Every sample of X one at a time, all inside one compiled call (the embedded loop)."""
        return self._run_batch(X, out, nonfinite, self._interp.MODE_STREAM)

    def predict_one(self, x, out=None, nonfinite=None):
        """One sample x (input_shape or (in_size,), float32, C-contiguous) -> output_shape.

        With ``out`` (a float32/int64 array of output_shape or (out_size,)) nothing is allocated.
        Fast path: a plain float32 x (flat, or C-contiguous in input_shape: a flat view of it;
        read-only or not) and a 1-D writable out of the output dtype are checked here by
        identity and flag tests and go to the compiled entry point without Numba's type
        dispatch; the compiled call itself checks sizes, the flat arrays' strides (C-contiguous),
        overlap and finiteness. Anything else takes the checked path, which explains what it
        refuses.
        """
        if x.__class__ is not _ND or x.dtype is not _F32 or self._one is None:
            return self._predict_one_checked(x, out, nonfinite)
        # one attribute read for the path's constants (each read costs ~20 ns at this scale)
        execute, state, alloc, dtype, reshape, mode, int_out = self._one
        if x.ndim != 1:
            # a sample in its natural shape (X_test[0]): its flat view
            if x.shape != self.input_shape or not x.flags.c_contiguous:
                return self._predict_one_checked(x, out, nonfinite)
            x = x.ravel()  # a view (C-contiguous: checked above), cheaper than reshape
        if out is None:
            ret = yf = _empty(alloc, dtype)
            if reshape:
                yf = ret.reshape(-1)  # a view; the caller gets the shaped array
        else:
            # the entry point takes the arrays as they are: 1-D, of the dtype it was compiled for
            if out.__class__ is not _ND or out.ndim != 1 or out.dtype is not dtype or not out.flags.writeable:
                return self._predict_one_checked(x, out, nonfinite)
            ret = yf = out
        if int_out:
            # an int64 out is seen as float32 (twice the elements): the compiled call writes
            # float32 results and converts them in place (mode | I64). A dtype-changing view
            # costs ~0.2 us, so the view of the last out passed is kept (callers reuse one out;
            # the pair is replaced whole, so a thread never pairs another thread's out and view)
            if out is None:
                yf = yf.view(_F32)
            else:
                # the view needs a contiguous out (numpy refuses a strided one), and a kept view is
                # only right while out stays contiguous (strides can be reassigned): checked here
                if not out.flags.c_contiguous:
                    return self._predict_one_checked(x, out, nonfinite)
                last = self._i64_view
                if last[0] is not out:
                    last = self._i64_view = (out, out.view(_F32))
                yf = last[1]
        status = execute(state, x, yf, 1, mode)
        if status != -1 or nonfinite is not None:
            self._one_status(status, x, ret, nonfinite)
        return ret

    def _predict_one_checked(self, x, out, nonfinite):
        if x.__class__ is not np.ndarray:
            x = plain_array(x, f"of float32 with shape {self.input_shape}")
        if x.dtype != _F32 or not x.flags.c_contiguous or (x.shape != self.input_shape and x.shape != self._flat_in):
            self._explain_one(x)
        xf = x if x.ndim == 1 else x.reshape(-1)
        if self._multi:
            Yf = np.empty(self.out_size, dtype=np.float32)
            if out is not None:
                out = self._multi_out(1, tuple(o.reshape((1,) + o.shape) if isinstance(o, np.ndarray) else o
                                                for o in out), xf)
            status = self._execute(self._state, xf, Yf, 1, self._mode_one)
            self._one_status(status, x, None, nonfinite)
            res = self._split(Yf, 1, out)
            return tuple(r[0] for r in res)
        if out is None:
            out = np.empty(self.output_shape, dtype=self.output_dtype)
        else:
            if isinstance(out, (np.matrix, np.ma.MaskedArray)):
                plain_array(out, "for out")
            if not isinstance(out, np.ndarray):
                self._explain_out(out)
            if out.dtype != self.output_dtype or out.size != self._out_one \
                    or not out.flags.c_contiguous or not out.flags.writeable:
                self._explain_out(out)
        yf = (out if type(out) is np.ndarray else out.view(np.ndarray)).reshape(-1)
        mode = self._mode_one
        if self._int_out:  # as the fast path: a float32 view, converted in place
            yf = yf.view(_F32)
            mode = self._mode_one_i64
        elif self._cast_out:
            yo, yf = yf, np.empty(self.out_size, dtype=np.float32)
        status = self._execute(self._state, xf, yf, 1, mode)
        self._one_status(status, x, out, nonfinite)
        if self._cast_out:
            yo[...] = yf
        return out

    def _one_status(self, status, x, out, nonfinite):
        """Act on the MODE_ONE status: -1 ok, >= 0 first non-finite input element, -2/-3 wrong
        x/out size, -4 out overlaps x (nothing ran)."""
        policy = self._policy(nonfinite)
        if status == -2:
            self._explain_one(x)
        if status == -3:
            self._explain_out(out)
        if status == -4:
            raise InputError("out overlaps the input x; pass a separate output array")
        if status >= 0 and policy == "raise":
            raise InputError(f"expected finite inputs, got {np.asarray(x).reshape(-1)[status]} at element {status} "
                             f"(pass nonfinite='allow' to run it anyway)")

    def _explain_out(self, out):
        given = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise InputError(f"expected out as a writable C-contiguous {self.output_dtype} array of shape "
                         f"{self.output_shape}, got {given}")

    def _explain_one(self, x):
        x = plain_array(x, f"of float32 with shape {self.input_shape}")
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
