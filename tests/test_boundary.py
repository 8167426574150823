"""The runtime's public entries refuse bad input with a ValueError naming the problem, before
any compiled code touches the data.

Entries: predict, stream, predict_one, measure (in-loop and call), load. Each is driven with
wrong types, dtypes (float64, float16, ints, bool, big-endian float32, complex, object), shapes,
layouts (strided, Fortran order), non-finite values, bad ``out`` arrays and bad options. A spy
on the compiled entry points proves nothing ran; for predict_one's fast path (the dispatcher's
own type check is its boundary) ``out`` must be left untouched.

tests/test_runtime_boundscheck.py runs the kernel and runtime tests under NUMBA_BOUNDSCHECK=1;
the last test here runs the valid edge cases of this file (sizes 1, BLOCK - 1, BLOCK, BLOCK + 1,
flat and shaped samples, read-only inputs, int8 and argmax models, every measure mode) the same
way, with a private numba cache so the bounds-checked code is really compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import rtinfer
from rtinfer import reference
from rtinfer._testmodels import fp32_mlp

IN = (3, 4)  # per-sample input shape of the test model (12 values, reshaped then dense)


@pytest.fixture(scope="module")
def rt():
    return rtinfer.load(fp32_mlp([12, 8, 3], head="softmax", reshape_in=IN))


class Spy:
    """Wraps a runtime's compiled entry point and counts the calls that run the model: not the
    finiteness scan (MODE_NONFINITE), not a call refused for its sizes or overlap."""

    def __init__(self, rt):
        from rtinfer import interp
        self.calls = 0
        self.scan = interp.MODE_NONFINITE
        rt._execute = self._wrap(rt._execute)
        if rt._one is not None:  # predict_one's fast path holds the entry point too
            rt._one = (rt._execute,) + rt._one[1:]

    def _wrap(self, real):
        def call(*args):
            status = real(*args)
            if args[4] != self.scan and status not in (-2, -3, -4):  # -2..-4: refused, nothing ran
                self.calls += 1
            return status
        return call


@pytest.fixture
def spied():
    rt = rtinfer.load(fp32_mlp([12, 8, 3], head="softmax", reshape_in=IN))
    return rt, Spy(rt)


def _x(shape, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


def _fortran(n):
    return np.asfortranarray(np.ones((n, 12), np.float32))


BAD_BATCHES = [
    ([[1.0] * 12], r"expected a numpy.ndarray"),
    ((1.0,) * 12, r"expected a numpy.ndarray"),
    (None, r"expected a numpy.ndarray"),
    (3.0, r"expected a numpy.ndarray"),
    (np.float32(1.0), r"expected a numpy.ndarray"),
    (np.zeros((), np.float32), r"expected an input batch of shape"),
    (_x((5, 12), np.float64), r"expected dtype float32, got float64"),
    (_x((5, 12), np.float16), r"expected dtype float32, got float16"),
    (_x((5, 12), np.int32), r"expected dtype float32, got int32"),
    (_x((5, 12), bool), r"expected dtype float32, got bool"),
    (_x((5, 12), ">f4"), r"expected dtype float32, got >f4"),
    (_x((5, 12), np.complex64), r"expected dtype float32, got complex64"),
    (np.empty((5, 12), object), r"expected dtype float32, got object"),
    (_x((12,)), r"expected an input batch of shape \(N, 3, 4\), got shape \(12,\)"),
    (_x((5, 11)), r"expected an input batch of shape \(N, 3, 4\), got shape \(5, 11\)"),
    (_x((5, 4, 3)), r"got shape \(5, 4, 3\)"),
    (_x((5, 3, 4, 1)), r"got shape \(5, 3, 4, 1\)"),
    (_x((5, 24))[:, ::2], r"expected a C-contiguous array"),
    (_fortran(5), r"expected a C-contiguous array"),
]


@pytest.mark.parametrize("bad,match", BAD_BATCHES)
@pytest.mark.parametrize("entry", ["predict", "stream", "measure", "measure_call"])
def test_batch_entries_refuse_bad_input(spied, entry, bad, match):
    rt, spy = spied
    fn = {"predict": rt.predict, "stream": rt.stream,
          "measure": lambda X: rt.measure(X, budget_us=100, warmup=2),
          "measure_call": lambda X: rt.measure(X, budget_us=100, warmup=2, mode="call")}[entry]
    with pytest.raises(ValueError, match=match):
        fn(bad)
    assert spy.calls == 0


@pytest.mark.parametrize("value,shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
@pytest.mark.parametrize("entry", ["predict", "stream", "measure"])
def test_nonfinite_refused_before_running(spied, entry, value, shown):
    rt, spy = spied
    X = np.zeros((7, 3, 4), np.float32)
    X[5, 1, 2] = value
    fn = {"predict": rt.predict, "stream": rt.stream,
          "measure": lambda X: rt.measure(X, budget_us=100, warmup=2)}[entry]
    with pytest.raises(ValueError, match=rf"expected finite inputs, got {shown} at sample 5, element 6"):
        fn(X)
    assert spy.calls == 0
    if entry != "measure":  # nonfinite="allow" runs it: the bad sample's output is NaN, as the
        # reference executor computes it, and every other sample is untouched by it
        Y = fn(X, nonfinite="allow")
        assert spy.calls > 0
        with np.errstate(all="ignore"):
            want = reference.run(rt.frozen, X)
        assert np.isnan(Y[5]).all() and np.isnan(want[5]).all()
        np.testing.assert_array_equal(np.delete(Y, 5, axis=0), fn(np.delete(X, 5, axis=0)))


BAD_SAMPLES = [
    ([1.0] * 12, r"expected a numpy.ndarray"),
    (None, r"expected a numpy.ndarray"),
    (np.float32(1.0), r"expected a numpy.ndarray|expected one sample"),
    (np.zeros((), np.float32), r"expected one sample of shape \(3, 4\), got shape \(\)"),
    (_x(12, np.float64), r"expected dtype float32, got float64"),
    (_x(12, np.float16), r"expected dtype float32, got float16"),
    (_x(12, np.int64), r"expected dtype float32, got int64"),
    (_x(12, ">f4"), r"expected dtype float32, got >f4"),
    (_x(12, bool), r"expected dtype float32, got bool"),
    (_x(11), r"expected one sample of shape \(3, 4\), got shape \(11,\)"),
    (_x(13), r"got shape \(13,\)"),
    (_x(0), r"got shape \(0,\)"),
    (_x((4, 3)), r"got shape \(4, 3\)"),
    (_x((1, 12)), r"got shape \(1, 12\)"),
    (_x((1, 3, 4)), r"got shape \(1, 3, 4\)"),
    (_x(24)[::2], r"expected a C-contiguous array"),
    (np.asfortranarray(_x((3, 4))), r"expected a C-contiguous array"),
]


@pytest.mark.parametrize("bad,match", BAD_SAMPLES)
def test_predict_one_refuses_bad_samples(spied, bad, match):
    rt, spy = spied
    out = np.full(3, 7.0, np.float32)
    with pytest.raises(ValueError, match=match):
        rt.predict_one(bad, out=out)
    assert spy.calls == 0
    assert (out == 7.0).all()  # nothing was written


def test_predict_one_nonfinite(rt):
    x = np.zeros(12, np.float32)
    x[4] = np.nan
    with pytest.raises(ValueError, match="expected finite inputs, got nan at element 4"):
        rt.predict_one(x)
    assert np.isnan(rt.predict_one(x, nonfinite="allow")).all()
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        rt.predict_one(np.zeros(12, np.float32), nonfinite="skip")


@pytest.mark.parametrize("out,match", [
    (np.zeros(3, np.float64), "expected out as a writable C-contiguous float32 array of shape"),
    (np.zeros(4, np.float32), "expected out"),
    (np.zeros(2, np.float32), "expected out"),
    (np.zeros(6, np.float32)[::2], "expected out"),
    ([0.0, 0.0, 0.0], "expected out"),
    ("out", "expected out"),
])
def test_predict_one_refuses_bad_out(spied, out, match):
    rt, spy = spied
    with pytest.raises(ValueError, match=match):
        rt.predict_one(np.zeros(12, np.float32), out=out)
    assert spy.calls == 0


def test_read_only_out_is_refused_and_read_only_input_accepted(rt):
    out = np.zeros(3, np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="expected out"):
        rt.predict_one(np.zeros(12, np.float32), out=out)
    with pytest.raises(ValueError, match="expected out"):
        rt.predict(np.zeros((2, 12), np.float32), out=np.asfortranarray(np.zeros((2, 3), np.float32)))
    Y = np.zeros((2, 3), np.float32)
    Y.flags.writeable = False
    with pytest.raises(ValueError, match="expected out"):
        rt.predict(np.zeros((2, 3, 4), np.float32), out=Y)
    for n in (5, 100):  # small batches and large ones (which may take another batch path)
        X = np.random.default_rng(n).standard_normal((n, 3, 4)).astype(np.float32)
        want = rt.predict(X)
        X.flags.writeable = False  # e.g. np.load(..., mmap_mode="r") or np.frombuffer
        assert np.array_equal(rt.predict(X), want)
        assert np.array_equal(rt.stream(X), rt.stream(X.copy()))
        assert np.array_equal(rt.predict_one(X[2]), rt.predict_one(X[2].copy()))
        rt.measure(X, budget_us=1e6, warmup=0)


@pytest.mark.parametrize("kw,match", [
    (dict(budget_us=0), "budget_us must be a positive number"),
    (dict(budget_us=-5), "budget_us must be a positive number"),
    (dict(budget_us=float("nan")), "budget_us must be a positive number"),
    (dict(budget_us=float("inf")), "budget_us must be a positive number"),
    (dict(budget_us="fast"), "budget_us"),
    (dict(budget_us=None), "budget_us"),
    (dict(budget_us=10, percentile=0), r"percentile must be in \(0, 100\]"),
    (dict(budget_us=10, percentile=100.5), "percentile"),
    (dict(budget_us=10, percentile=float("nan")), "percentile"),
    (dict(budget_us=10, percentile="p99"), "percentile"),
    (dict(budget_us=10, warmup=-1), "warmup must be >= 0"),
    (dict(budget_us=10, warmup="many"), "warmup"),
    (dict(budget_us=10, warmup=None), "warmup"),
    (dict(budget_us=10, mode="fast"), "mode must be one of"),
])
def test_measure_refuses_bad_options(spied, kw, match):
    rt, spy = spied
    with pytest.raises(ValueError, match=match):
        rt.measure(np.zeros((4, 3, 4), np.float32), **kw)
    assert spy.calls == 0


def test_measure_refuses_empty_input(spied):
    rt, spy = spied
    with pytest.raises(ValueError, match="at least one sample"):
        rt.measure(np.zeros((0, 12), np.float32), budget_us=10)
    assert spy.calls == 0


def test_load_refuses_bad_arguments(tmp_path):
    from export.onnx_import import OnnxImportError
    from rtinfer.rtm import RtmFormatError

    for bad in (None, 3, b"\x89RTM", ["m.rtm"]):
        with pytest.raises(ValueError, match="load expects a FrozenModel or a path"):
            rtinfer.load(bad)
    with pytest.raises(ValueError, match="expected a .rtm or .onnx file"):
        rtinfer.load(str(tmp_path / "model.txt"))
    with pytest.raises(FileNotFoundError):
        rtinfer.load(str(tmp_path / "missing.rtm"))
    with pytest.raises(FileNotFoundError):
        rtinfer.load(str(tmp_path / "missing.onnx"))
    (tmp_path / "empty.rtm").write_bytes(b"")
    with pytest.raises(RtmFormatError, match="truncated"):
        rtinfer.load(str(tmp_path / "empty.rtm"))
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07junk" * 10)
    with pytest.raises(OnnxImportError):
        rtinfer.load(str(tmp_path / "junk.onnx"))
    (tmp_path / "model.rtm").write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    with pytest.raises(RtmFormatError, match="not an .rtm file"):
        rtinfer.load(tmp_path / "model.rtm")
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        rtinfer.load(fp32_mlp([4, 2]), nonfinite="ignore")
    with pytest.raises(ValueError, match="batch must be one of"):
        rtinfer.load(fp32_mlp([4, 2]), batch="fast")
    assert issubclass(RtmFormatError, ValueError) and issubclass(OnnxImportError, ValueError)


EDGE_SCRIPT = r"""
import numpy as np, rtinfer, sys
from rtinfer._testmodels import fp32_mlp, int8_mlp
from rtinfer.plan import BLOCK
models = [fp32_mlp([12, 8, 3], head="softmax", reshape_in=(3, 4)), fp32_mlp([5, 33, 2], head="argmax"),
          int8_mlp([6, 17, 4], lut=np.tanh, head="log_softmax"), int8_mlp([7, 3], head="argmax")]
for fm in models:
    rt = rtinfer.load(fm, batch="exact")
    auto = rtinfer.load(fm)  # the BLAS batch path from 32 samples: close (fp32) or identical (int8)
    for n in (1, 2, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5):
        X = np.random.default_rng(n).standard_normal((n,) + rt.input_shape).astype(np.float32)
        X.flags.writeable = False
        Yp = rt.predict(X); Ys = rt.stream(X)
        Yf = rt.predict(np.ascontiguousarray(X).reshape(n, -1))
        Y1 = np.stack([rt.predict_one(x) for x in X])
        Y1f = np.stack([rt.predict_one(x.reshape(-1)) for x in X])
        assert np.array_equal(Yp, Ys) and np.array_equal(Yp, Yf) and np.array_equal(Yp, Y1) and np.array_equal(Yp, Y1f)
        rt.predict(X, out=np.empty_like(Yp))
        assert np.allclose(auto.predict(X), Yp, rtol=1e-5, atol=1e-5)
        for mode in ("in-loop", "call"):
            rt.measure(X, budget_us=1e6, warmup=3, mode=mode, per_layer=(mode == "in-loop"))
print("ok")
"""


@pytest.mark.slow
def test_valid_edge_cases_under_boundscheck():
    cache = os.path.join(tempfile.gettempdir(), f"rtinfer-boundscheck-cache-{os.getuid()}")
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=cache)
    proc = subprocess.run([sys.executable, "-c", EDGE_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="POSIX special files")
@pytest.mark.parametrize("suffix", [".rtm", ".onnx"])
def test_load_refuses_devices_and_fifos(tmp_path, suffix):
    """A model path that is /dev/zero (through a symlink) or a FIFO is refused before it is
    opened: reading it would fill memory or block forever."""
    zero, fifo = tmp_path / f"zero{suffix}", tmp_path / f"fifo{suffix}"
    os.symlink("/dev/zero", zero)
    os.mkfifo(fifo)
    for path in (zero, fifo):
        with pytest.raises(ValueError, match="not a regular file"):
            rtinfer.load(str(path))
    if suffix == ".rtm":
        with pytest.raises(ValueError, match="not a regular file"):
            rtinfer.load_frozen(fifo, mmap=True)


class PathSpy:
    """Records how predict_one ran: calls of the checked path (``_predict_one_checked``, taken
    when the fast path's identity and flag tests do not all pass) and calls of the compiled
    entry point (``_execute``), split into those made from the fast path and the rest."""

    def __init__(self, rt):
        self.calls = self.checked = self.fast = 0
        self._inside = False
        entry, slow = rt._execute, rt._predict_one_checked

        def call(*args):
            self.calls += 1
            self.fast += not self._inside
            return entry(*args)

        def checked(*args):
            self.checked += 1
            self._inside = True
            try:
                return slow(*args)
            finally:
                self._inside = False

        rt._execute, rt._predict_one_checked = call, checked
        rt._one = (call,) + rt._one[1:]  # predict_one's fast path holds the entry point too


def test_read_only_sample_takes_the_fast_path():
    """A read-only sample (np.frombuffer, a read-only memory map, flags.writeable = False), flat
    or in its natural shape, takes the fast path (the compiled entry point compiles X read-only)
    instead of the checked one; a read-only out is refused by the checked path, untouched."""
    rt = rtinfer.load(fp32_mlp([12, 8, 3], head="softmax", reshape_in=IN))
    X = np.random.default_rng(4).standard_normal((2,) + IN).astype(np.float32)
    want = rt.predict_one(X[0].copy())
    spy = PathSpy(rt)
    flat = np.frombuffer(X[0].tobytes(), np.float32)
    shaped = X[0].copy()
    shaped.flags.writeable = False
    for x in (flat, shaped):
        assert not x.flags.writeable
        assert np.array_equal(rt.predict_one(x), want)
        assert np.array_equal(rt.predict_one(x, np.empty(3, np.float32)), want)
    assert (spy.calls, spy.checked) == (4, 0)
    out = np.zeros(3, np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="expected out"):
        rt.predict_one(X[1].reshape(-1), out)
    assert (spy.calls, spy.checked) == (4, 1) and not out.any()
    # the entry point takes a read-only sample as it is: what makes that safe is that it was
    # compiled with X read-only, so Numba refused any path that writes it
    from rtinfer import interp
    (sig,) = interp.warm_up(rt.variant).signatures
    assert not sig[1].mutable and sig[2].mutable


def test_fast_path_routes_every_other_form_to_the_checked_path():
    """The fast path hands the compiled entry point only arrays of the types it was compiled
    for (1-D float32, a writable out): a byte-swapped, float64, wrong-shape, Fortran-ordered or
    subclassed x, a shaped or wrong-dtype out each go to the checked path, which runs what is
    valid (the same answer) and refuses the rest, out untouched; a strided flat x or out is
    refused by the compiled call from its strides."""
    rt = rtinfer.load(fp32_mlp([12, 8, 3], head="softmax", reshape_in=IN))
    X = np.random.default_rng(5).standard_normal((2,) + IN).astype(np.float32)
    want = rt.predict_one(X[0].reshape(-1).copy())
    spy = PathSpy(rt)
    # valid, through the checked path: an ndarray subclass (read through a plain view), a shaped out
    assert np.array_equal(rt.predict_one(X[0].reshape(-1).view(np.memmap)), want)
    out = np.zeros((1, 3), np.float32)
    assert rt.predict_one(X[0], out) is out and np.array_equal(out[0], want)
    assert (spy.fast, spy.checked) == (0, 2)
    for x in (X[0].reshape(-1).astype(">f4"), X[0].astype(np.float64), X[0].reshape(2, 6),
              np.asfortranarray(X[0])):
        before = spy.checked
        with pytest.raises(ValueError, match="expected"):
            rt.predict_one(x)
        assert (spy.fast, spy.checked) == (0, before + 1), (x.dtype, x.shape)
    for out in (np.zeros(3, np.float64), np.zeros(3, np.int64), np.zeros((1, 3), np.float32)[:, ::-1]):
        before, kept = spy.checked, out.copy()
        with pytest.raises(ValueError, match="expected out"):
            rt.predict_one(X[0], out)
        assert np.array_equal(out, kept) and (spy.fast, spy.checked) == (0, before + 1)
    # flat strided arrays pass the Python tests; the compiled call refuses them by their strides
    # before running anything (a 'C' array type with real strides: Numba would read them wrong)
    pairs = np.zeros((12, 2), np.float32)
    pairs[:, 0] = X[0].reshape(-1)
    calls = spy.calls
    for x, out, what in ((pairs[:, 0], None, "C-contiguous array"),
                         (X[0].reshape(-1), np.zeros(6, np.float32)[::2], "expected out as a writable C-contiguous")):
        kept = None if out is None else out.copy()
        with pytest.raises(ValueError, match=what):
            rt.predict_one(x, out)
        assert out is None or np.array_equal(out, kept)
    assert spy.calls == calls + 2 and spy.checked == before + 1


def test_strided_int64_out_is_refused_and_a_kept_view_follows_its_out():
    """An int64 out of several elements that is not contiguous cannot be seen as float32: it is
    refused with the boundary's message (not numpy's view error), untouched; a contiguous out
    passed again, or another one, gets its own view (the fast path keeps the last out's)."""
    rt = rtinfer.load(fp32_mlp([5, 16, 12], head="argmax", axis=(3, None, 1)))
    assert rt.output_shape == (3,) and rt.output_dtype == np.int64
    X = np.random.default_rng(11).standard_normal((4, 5)).astype(np.float32)
    want = rt.predict(X)
    strided = np.full(6, 7, np.int64)[::2]
    with pytest.raises(ValueError, match="expected out as a writable C-contiguous int64"):
        rt.predict_one(X[0], strided)
    assert (strided == 7).all()
    a, b = np.zeros(3, np.int64), np.zeros(3, np.int64)
    for k, x in enumerate(X):
        for out in (a, b, a):
            assert rt.predict_one(x, out) is out and np.array_equal(out, want[k])


@pytest.mark.parametrize("make", ["fp32", "int8"])
def test_int64_output_takes_the_fast_path_and_checks_out_dtype(make):
    """An argmax model's int64 output is written through a float32 view of ``out`` (converted
    in place by the compiled call), so predict_one checks out's dtype itself: an out of another
    8-byte dtype (float64) or of the same bytes as float32 would pass the view and be
    overwritten with codes; it is refused and left untouched, as is a read-only one."""
    from rtinfer._testmodels import int8_mlp
    fm = fp32_mlp([5, 33, 4], head="argmax") if make == "fp32" else int8_mlp([5, 17, 4], head="argmax")
    rt = rtinfer.load(fm)
    X = np.random.default_rng(9).standard_normal((6, 5)).astype(np.float32)
    want = rt.predict(X)
    assert want.dtype == np.int64 and len(set(want.reshape(-1).tolist())) > 1
    spy = PathSpy(rt)
    out = np.full(rt.output_shape, -7, np.int64)
    for k, x in enumerate(X):
        y = rt.predict_one(x)
        assert y.dtype == np.int64 and y.shape == rt.output_shape and np.array_equal(y, want[k])
        assert rt.predict_one(x, out) is out and np.array_equal(out, want[k])
    assert (spy.calls, spy.checked) == (2 * len(X), 0)
    n = int(np.prod(rt.output_shape))
    read_only = np.full(n, 5, np.int64)
    read_only.flags.writeable = False
    for bad in (np.full(n, 5.0, np.float64), np.full(2 * n, 5.0, np.float32), read_only, np.full(n, 5, np.int32)):
        before = bad.copy()
        with pytest.raises(ValueError, match="expected out as a writable C-contiguous int64"):
            rt.predict_one(X[0], bad)
        assert np.array_equal(bad, before), bad.dtype


def _nonfinite_bits():
    """float32 bit patterns on both sides of the exponent-all-ones line, both signs."""
    pats = [0x7F800000, 0x7F800001, 0x7FC00000, 0x7FFFFFFF,  # inf, NaNs (signalling, quiet, max)
            0x7F7FFFFF, 0x00000001, 0x00800000, 0x3F800000, 0x00000000,  # max finite, subnormal..
            0x7F000000, 0x00FFFFFF]
    return [np.uint32(p | s) for p in pats for s in (0, 0x80000000)]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 64, 65, 1001])
def test_first_nonfinite_matches_numpy(n):
    """interp.first_nonfinite (the word-wise bit test the boundary runs on every input) against
    its NumPy twin, for every bit pattern next to the NaN/inf exponent, at the first, a middle
    and the last place of odd and even sizes, and with two bad values (the first one counts)."""
    from rtinfer import interp
    for bits in _nonfinite_bits():
        for pos in sorted({0, n // 2, n - 1}) if n else []:
            X = np.full(n, 1.5, np.float32)
            X.view(np.uint32)[pos] = bits
            if pos + 1 < n:
                X[n - 1] = np.inf
            want = np.flatnonzero(~np.isfinite(X))
            want = int(want[0]) if want.size else -1
            X.flags.writeable = False
            assert interp.first_nonfinite(X) == want, (hex(int(bits)), n, pos)
    assert interp.first_nonfinite(np.zeros(n, np.float32)) == -1
