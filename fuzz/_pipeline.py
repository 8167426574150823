"""What a fuzz case does with a model that a reader accepted: plan it, run it, cross-check it.

``exercise(fm, seed)`` is shared by fuzz_rtm.py and fuzz_onnx.py. It builds a Runtime
(``nonfinite="allow"``; the planner may refuse the model with ``PlanError``, the documented
error), and when the model is small enough to run quickly (``RUN_MAX_IN`` input elements per
sample, ``RUN_MAX_WORK`` element operations per sample) it runs every entry point on seeded
N(0, 1) inputs and checks what the runtime promises (docs/RELIABILITY.md, "Determinism"):

- ``predict`` on a ``batch="exact"`` Runtime, ``stream`` and ``predict_one`` give the same values
  (NaN where the other has NaN), and ``predict`` repeats exactly;
- outputs have the declared shapes and dtypes; ``measure`` returns a report of the right size.

A break of these is a ``mismatch`` finding. Two comparisons are recorded without being
findings, because hostile weights make them legitimately differ: the default ``predict``
(``batch="auto"``, whose fp32 GEMMs sum in another order) against the exact path, and the
runtime against the NumPy reference executor (``rtinfer.reference``; run on two samples when the
model is small). ``info`` carries both so a run can report them.

Any exception other than PlanError from the planner, or any exception at all from running
(inputs are valid and finite), escapes to the caller, which records it as a finding.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from _driver import mark

RUN_MAX_IN = 1 << 16      # input elements per sample the run stage feeds
RUN_MAX_WORK = 1 << 24    # rough element operations per sample (rows' sizes + MACs + window reads)
REF_MAX_WORK = 1 << 18    # the reference executor runs only below this


def _work(fm, plan) -> int:
    from rtinfer.ops import WINDOW_OPS
    from rtinfer.plan import C_NIN, C_NOUT
    prog = plan.program
    work = int(prog[:, C_NIN].sum() + prog[:, C_NOUT].sum()) + int(plan.macs)
    for layer in fm.layers:
        if layer.op in WINDOW_OPS:
            k = 1
            for key in ("kernel_h", "kernel_w"):
                v = layer.attrs.get(key, 1)
                k *= int(v) if isinstance(v, (int, np.integer)) or float(v).is_integer() else 1
            work += abs(k) * layer.out_size
    return work


def _as_tuple(y):
    return y if isinstance(y, tuple) else (y,)


def same(a, b) -> bool:
    """Equal values and shapes (NaN equal to NaN), for one array or a tuple of them."""
    a, b = _as_tuple(a), _as_tuple(b)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if x.dtype.kind == "f":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def close(a, b, rtol=1e-4, atol=1e-5) -> bool:
    """Within tolerance (NaN where the other is NaN, inf where the other is the same inf)."""
    a, b = _as_tuple(a), _as_tuple(b)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if x.shape != y.shape:
            return False
        with np.errstate(invalid="ignore", over="ignore"):
            if not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
                return False
    return True


def exercise(fm, seed: int):
    """Plan and run ``fm``. Returns (outcome, detail, info): outcome "refused" (PlanError),
    "planned" (too large to run here), "ran", or "mismatch" (a finding; detail says what)."""
    from rtinfer import reference
    from rtinfer.plan import PlanError
    from rtinfer.runtime import Runtime

    info = {}
    mark("plan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the planner warns about NaN/inf weights: documented
        try:
            rt = Runtime(fm, nonfinite="allow")
        except PlanError:
            return "refused", "", info
    plan = rt.plan
    work = _work(fm, plan)
    info["work"] = work
    info["runtime_bytes"] = int(plan.image.nbytes + rt._state.nbytes)
    if rt.in_size > RUN_MAX_IN or work > RUN_MAX_WORK:
        return "planned", "", info

    mark("run")
    rng = np.random.default_rng(seed)
    # 40 samples: blocks of plan.BLOCK (16) and a partial one, and predict's batch path
    # (rtinfer.batch: >= 32 samples), whose buffers are sized per chunk of samples. Models with
    # more work per sample run 3 samples through the exact entry points, 40 through predict.
    n_auto = 40 if rt.in_size * 40 <= (1 << 20) else 3
    n = n_auto if work <= RUN_MAX_WORK // 16 else 3
    XA = rng.standard_normal((n_auto,) + rt.input_shape).astype(np.float32)
    X = XA[:n]
    exact = Runtime(plan, nonfinite="allow", batch="exact")
    ye = exact.predict(X)
    problems = []
    shapes = [((n,) + tuple(shape), np.dtype(dtype)) for shape, dtype in rt.outputs]
    got = [(y.shape, y.dtype) for y in _as_tuple(ye)]
    if got != shapes:
        problems.append(f"predict returned {got}, declared {shapes}")
    if not same(exact.predict(X), ye):
        problems.append("predict (exact) does not repeat")
    if not same(rt.stream(X), ye):
        problems.append("stream != predict (exact)")
    for i in sorted({0, n - 1}):
        y1 = rt.predict_one(X[i])
        want = tuple(y[i] for y in ye) if isinstance(ye, tuple) else ye[i]
        if not same(y1, want):
            problems.append(f"predict_one(X[{i}]) != predict (exact)[{i}]")
    ya = rt.predict(XA)
    ya = tuple(y[:n] for y in ya) if isinstance(ya, tuple) else ya[:n]
    info["batch_close"] = close(ya, ye)
    if rt._blas is not None:
        info["batch_path_bytes"] = int(rt._blas.blob.nbytes)
    rep = rt.measure(X[:8], budget_us=1e6, warmup=2)
    if rep.n != min(n, 8):
        problems.append(f"measure timed {rep.n} samples, expected {min(n, 8)}")
    if problems:
        return "mismatch", _nan_into_quantize(fm, X) + "; ".join(problems), info

    if work <= REF_MAX_WORK and fm is not None:
        mark("reference")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                yr = reference.run(fm, X[:2])
            except Exception as exc:  # noqa: BLE001 - the reference is a cross-check, not the product
                info["reference_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            else:
                ys = tuple(y[:2] for y in ye) if isinstance(ye, tuple) else ye[:2]
                info["reference_close"] = close(ys, yr, rtol=1e-3, atol=1e-4)
    return "ran", "", info


def raised_at(exc: BaseException) -> str:
    """The innermost traceback frame in rtinfer/ or export/ ("rtinfer/batch.py:__init__"),
    where the exception left the project's code (compiled frames do not appear: a kernel's
    exception shows at the Python line that called it)."""
    where = "?"
    tb = exc.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        for top in ("/rtinfer/", "/export/"):
            if top in path:
                where = top[1:] + path.rsplit(top, 1)[1] + ":" + tb.tb_frame.f_code.co_name
        tb = tb.tb_next
    return where


def _nan_into_quantize(fm, X) -> str:
    """"[NaN reaches QUANTIZE] " when the reference executor sees NaN entering a QUANTIZE layer
    (float -> int8 of NaN: a known open cause of entry points disagreeing), else ""."""
    from rtinfer import reference
    from rtinfer.ops import Op
    if fm is None or not any(layer.op == Op.QUANTIZE for layer in fm.layers):
        return ""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            _, trace = reference.run(fm, X, trace=True)
        except Exception:  # noqa: BLE001 - a diagnosis only
            return ""
    tensors = [X] + list(trace)
    for layer in fm.layers:
        if layer.op == Op.QUANTIZE and np.isnan(tensors[layer.inputs[0]]).any():
            return "[NaN reaches QUANTIZE] "
    return ""


def classify_exception(exc: BaseException, stage: str) -> tuple[str, str]:
    """A finding for an exception that escaped ``stage``: ("memory" | "escaped", detail).
    The detail starts with "stage: Type@where:" (see ``signature``)."""
    text = f"{stage}: {type(exc).__name__}@{raised_at(exc)}: {str(exc)[:300]}"
    if isinstance(exc, MemoryError):
        return "memory", text
    return "escaped", text


def signature(finding: dict) -> str:
    """A finding's root cause without its values: outcome, stage, exception type and the
    project frame it left from ("escaped:run:ZeroDivisionError@rtinfer/runtime.py:_run_batch")."""
    if finding["outcome"] == "mismatch":  # "what != what; ...": the first comparison that failed
        return "mismatch:" + finding.get("detail", "").split(";")[0].split("(X[")[0].strip()
    head = finding.get("detail", "").split(": ", 2)
    return f"{finding['outcome']}:" + ":".join(h.strip() for h in head[:2])


def examples(findings: list, per_signature: int = 5) -> list:
    """Up to per_signature findings of each signature, in order (their indices reproduce them)."""
    seen: dict[str, int] = {}
    out = []
    for rec in findings:
        sig = signature(rec)
        if seen.get(sig, 0) < per_signature:
            seen[sig] = seen.get(sig, 0) + 1
            out.append(rec)
    return out


# Open findings, by signature -> description (docs/RELIABILITY.md, "Open findings"): the fuzzers
# still count and report them, the CI tests accept them and nothing else, and each has a
# strict-xfail test that fails once it is fixed (so the entry goes with the fix). None open now:
# the three the format-2 fuzzers found (BINARY DIV by zero, the batch path's chunk arena, QUANTIZE
# of NaN) are fixed, their tests in tests/test_fuzz_rtm.py.
KNOWN_OPEN = {}


def is_finite_number(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError, OverflowError):
        return False
