"""The .rtm reader, planner and runtime under a CI-sized run of fuzz/fuzz_rtm.py (the long run
is documented in fuzz/README.md and docs/RELIABILITY.md), plus the supervised driver's own
checks and the files of issue 16.

Each case ends in a documented outcome: RtmFormatError from the reader, PlanError from the
planner, a model that runs with all entry points agreeing, or one too large to run here. Anything
else is a finding: another exception type, a MemoryError (the worker's RLIMIT_AS: 2 GiB above
its warm-up), the reader's traced peak above MEM_FACTOR * file size + MEM_SLACK, entry points
that disagree, a crash (signal) or a hang. Positive controls prove the driver sees crashes, hangs
and memory blow-ups, and that the fuzzer's pipeline flags issue 16's 832-byte pool file as a
memory blow-up when the planner's bound is taken out.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import rtinfer
from rtinfer.frozen import BufferBuilder, FrozenModel, FrozenModelError, Layer, Output
from rtinfer.ops import Act, Op
from rtinfer.plan import PlanError, build_plan
from rtinfer.reference_conv import geometry_attrs
from rtinfer.rtm import RtmFormatError, from_bytes, to_bytes
from fuzzmods import FUZZ, load  # noqa: E402



fz = load("fuzz_rtm")
SEED = 20240607
N_RANDOM = 220
TRUNC_STEP = 10  # every 10th truncation of each base file (the long run takes all)


@pytest.fixture(scope="module")
def result():
    n_trunc = sum(len(b) for b in fz.base_files())
    fz.warm_up()
    trunc = fz.run_range(SEED, 0, n_trunc, run=False, step=TRUNC_STEP)  # truncations: the reader only
    res = fz.run_range(SEED, n_trunc, n_trunc + N_RANDOM)
    res["trunc"] = trunc
    res["n_trunc"] = n_trunc
    return res


def test_base_files_load_and_run():
    assert len(fz.base_files()) == 7
    ops = set()
    for data in fz.base_files():
        fm = from_bytes(data)
        assert fz.reseal(bytearray(data)) == data  # resealing a good file changes nothing
        assert fz.layout(data)["n_outputs"] == len(fm.outputs)
        ops |= {layer.op for layer in fm.layers}
    assert ops == set(Op)  # the base files hold every op of format 2


def test_every_case_ends_documented(result, summary):
    from _pipeline import KNOWN_OPEN
    assert set(result["signatures"]) <= set(KNOWN_OPEN), result["findings"]
    counts = result["counts"]
    total = sum(sum(d.values()) for d in counts.values())
    assert total == N_RANDOM
    outcomes = {}
    for d in counts.values():
        for k, v in d.items():
            outcomes[k] = outcomes.get(k, 0) + v
    n_t = sum(result["trunc"]["counts"]["truncate"].values())
    summary(f"rtm fuzz (CI subset): {n_t} truncations rejected; {total} cases: {outcomes}")
    assert set(outcomes) - {"rejected", "refused", "planned", "ran"} <= {"escaped", "memory"}  # KNOWN_OPEN only
    # every stage was reached: the reader, the planner, the runtime
    assert outcomes["rejected"] > 0 and outcomes["refused"] > 0 and outcomes["ran"] > 0
    assert counts["synth"].get("ran", 0) > 0 and counts["geometry"].get("refused", 0) > 0


def test_every_truncation_and_raw_flip_is_rejected(result):
    assert result["trunc"]["counts"] == {"truncate": {"rejected": len(range(0, result["n_trunc"], TRUNC_STEP))}}
    assert set(result["counts"].get("flip_raw", {"rejected": 0})) == {"rejected"}


def test_reader_memory_is_bounded(result):
    assert 0 < result["trunc"]["max_parse_peak"] <= fz.MEM_FACTOR * max(map(len, fz.base_files())) + fz.MEM_SLACK


def test_cases_are_reproducible():
    synth = sum(len(b) for b in fz.base_files()) + 96  # past the truncations: a synthetic case
    for i in (17280, 17281, synth, 123456):
        assert fz.case(5, i) == fz.case(5, i)
    assert fz.case(5, synth) != fz.case(6, synth)


def test_the_generator_makes_issue_16_shapes():
    """The families the issue's files come from: window geometry of 2^28..2^31 with the
    out_shape recomputed, int64 outputs after any op, and tiny files declaring 2^24+ elements."""
    from rtinfer.ops import WINDOW_OPS
    seen = {"geometry_2^28+": 0, "int64_not_argmax": 0, "tiny_huge": 0}
    n0 = sum(len(b) for b in fz.base_files())
    for i in range(n0, n0 + 1500):
        family, data = fz.case(11, i)
        try:
            fm = from_bytes(data)
        except RtmFormatError:
            continue
        for layer in fm.layers:
            if layer.op in WINDOW_OPS and any(abs(layer.attrs.get(k, 0)) >= 1 << 28 for k in
                                              ("kernel_w", "stride_w", "pad_left", "pad_right", "dilation_w")):
                seen["geometry_2^28+"] += 1
        if len(data) < 4096 and max(math.prod(layer.out_shape) for layer in fm.layers) >= 1 << 24:
            seen["tiny_huge"] += 1
    for i in range(n0, n0 + 1500):
        family, data = fz.case(11, i)
        if family == "output_int64":
            lay = fz.layout(data)
            if struct.unpack_from("<I", data, 44)[0] == 1 and lay["n_layers"]:
                seen["int64_not_argmax"] += 1
    assert all(v > 0 for v in seen.values()), seen


# -- regressions found by this fuzzer (each was an escaped exception type) -------------------------

def test_int64_output_of_the_model_input_is_refused():
    """An output that is a RESHAPE of the model input, declared int64: FrozenModel.validate
    raised AttributeError ('NoneType' object has no attribute 'name') instead of refusing."""
    layers = (Layer(Op.RESHAPE, (4,), (2, 2), inputs=(0,)), Layer(Op.ACT, (4,), (4,), Act.RELU, inputs=(0,)))
    with pytest.raises(FrozenModelError, match="int64 needs an ARGMAX.*comes from the input"):
        FrozenModel(layers, {}, (4,), outputs=(Output(1, (2, 2), "int64"), Output(2, (4,), "float32")))
    from models import RawModel
    raw = RawModel(layers, BufferBuilder().finish(), (4,), [Output(1, (2, 2), "int64"), Output(2, (4,), "float32")])
    with pytest.raises(RtmFormatError, match="int64 needs an ARGMAX"):
        from_bytes(to_bytes(raw))


@pytest.mark.parametrize("key,value", [("count_include_pad", math.inf), ("group", -math.inf), ("x_zp", math.inf),
                                       ("count_include_pad", 1e300)])
def test_infinite_integer_attrs_of_window_ops_are_refused(key, value):
    """count_include_pad = inf (a float attr in a resealed .rtm file) made the planner raise
    OverflowError (int(inf)) instead of PlanError."""
    q = key == "x_zp"
    attrs = dict(geometry_attrs((1, 2)), count_include_pad=0)
    if q:
        attrs.update(x_scale=0.1, x_zp=0)
    attrs[key] = value
    op = Op.QMAXPOOL if q else (Op.CONV if key == "group" else Op.AVGPOOL)
    bb = BufferBuilder()
    tensors = {"W": bb.add(np.ones((1, 1, 1, 2), np.float32)), "b": bb.add(np.zeros(1, np.float32))} \
        if op == Op.CONV else {}
    layer = Layer(op, (1, 6), (1, 5), tensors=tensors, attrs=attrs)
    layers = (Layer(Op.QUANTIZE, (1, 6), (1, 6), attrs={"y_scale": 0.1, "y_zp": 0}), layer,
              Layer(Op.DEQUANTIZE, (1, 5), (1, 5), attrs={"x_scale": 0.1, "x_zp": 0})) if q else (layer,)
    fm = FrozenModel(layers, bb.finish(), (1, 6), (1, 5))
    with pytest.raises(PlanError, match=key):
        build_plan(fm)
    if math.isinf(value) and key == "count_include_pad":  # and from a file: a float attr of a resealed .rtm
        with pytest.raises(PlanError, match=key):
            rtinfer.load(from_bytes(to_bytes(fm)))


# -- the driver: crashes, hangs and memory blow-ups are caught and attributed ----------------------

_DUMMY = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {fuzz!r})
    from _driver import mark, start_case, worker_main

    def run_range(seed, start, stop):
        counts = {{}}
        findings = []
        for i in range(start, stop):
            start_case(i)
            mark("run")
            outcome = "ok"
            if i == 3:
                os.kill(os.getpid(), signal.SIGSEGV)
            if i == 6:
                time.sleep(60)
            if i == 8:
                try:
                    bytearray(3 << 30)
                except MemoryError:
                    outcome = "memory"
                    findings.append({{"index": i, "outcome": "memory"}})
            counts.setdefault("f", {{}}).setdefault(outcome, 0)
            counts["f"][outcome] += 1
        return {{"counts": counts, "findings": findings, "n_findings": len(findings), "m": 0}}

    if __name__ == "__main__":
        a = sys.argv
        sys.exit(worker_main(run_range, lambda: None, int(a[2]), int(a[3]), int(a[4]), a[6], float(a[8])))
""")


@pytest.mark.slow  # a child process per case or worker: runs in the slow pass
def test_driver_catches_crash_hang_and_memory(tmp_path):
    drv = load("_driver")
    script = tmp_path / "dummy.py"
    script.write_text(_DUMMY.format(fuzz=FUZZ))
    out = drv.run_supervised(str(script), 0, 10, 10, ("m",), case_timeout=3, mem_gb=2, log=lambda s: None)
    assert [(c["index"], c["stage"]) for c in out["crashes"]] == [(3, "run")]
    assert "signal 11" in out["crashes"][0]["detail"]
    assert [(h["index"], h["stage"]) for h in out["hangs"]] == [(6, "run")]
    assert out["counts"] == {"f": {"ok": 7, "memory": 1}}  # 10 cases: 7 ok, 1 memory, 1 crash, 1 hang
    assert out["n_findings"] == 1 and out["findings"][0]["index"] == 8
    assert out["rlimit_as_bytes"] > 2 << 30


@pytest.mark.slow  # a child process per case or worker: runs in the slow pass
def test_supervised_run_in_workers(tmp_path):
    """A few hundred cases through the real worker processes (memory limit, progress file)."""
    n0 = sum(len(b) for b in fz.base_files())
    out = fz.run_supervised(os.path.join(FUZZ, "fuzz_rtm.py"), 3, 150, 150, ("max_parse_peak",),
                            start=n0, log=lambda s: None)
    from _pipeline import KNOWN_OPEN
    assert out["crashes"] == [] and out["hangs"] == [] and set(out.get("signatures", {})) <= set(KNOWN_OPEN), out
    assert sum(sum(d.values()) for d in out["counts"].values()) == 150
    assert out["rlimit_as_bytes"] > 2 << 30 and out["workers"] == 1


POOL_2_28 = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {fuzz!r})
    import _driver, fuzz_rtm
    import rtinfer.plan
    fuzz_rtm.warm_up()
    _driver.set_memory_limit(float(sys.argv[3]))
    if sys.argv[1] == "unbounded":  # the planner before issue 16: no window-work or geometry bound,
        rtinfer.plan.MAX_WINDOW_WORK = rtinfer.plan.MAX_GEOMETRY = 1 << 62
        import numpy as np
        import rtinfer.reference_conv as rc

        def table_min(g):  # and pool windows counted with an (outputs x taps) table, as then
            pos = np.arange(g.ow)[:, None] * g.sw + np.arange(g.kw)[None, :] * g.dw - g.pl
            return int(((pos >= 0) & (pos < g.w)).sum(axis=1).min())
        rc.min_pool_count = table_min
    data = open(sys.argv[2], "rb").read()
    res = fuzz_rtm.check(data, 0)
    print(json.dumps({{"outcome": res["outcome"], "detail": res["detail"][:200]}}))
""")


@pytest.mark.slow  # a child process per case or worker: runs in the slow pass
@pytest.mark.parametrize("planner", ["bounded", "unbounded"])
def test_issue_16_pool_file_is_caught(tmp_path, planner):
    """The issue's 832-byte .rtm with a pool kernel of 2^28 (4.2 GB and 30 s in rtinfer.load
    before the bound): refused by the planner now; with the bound taken out and the windows
    counted as they were then (a table per output and tap; now interval arithmetic), the fuzzer's
    pipeline reports it as a memory blow-up (MemoryError under the worker's RLIMIT_AS)."""
    k = 1 << 28
    pool = FrozenModel((Layer(Op.MAXPOOL, (1, k), (1, 1), attrs=geometry_attrs((1, k))),), BufferBuilder().finish(),
                       (1, k), (1, 1))
    path = tmp_path / "pool.rtm"
    pool.save(path)
    assert path.stat().st_size < 1024
    script = tmp_path / "pool_check.py"
    script.write_text(POOL_2_28.format(fuzz=FUZZ))
    # the limit: 0.5 GiB above the warmed-up process (the long run's is 2 GiB; the control only
    # has to show that the blow-up is caught and classified, sooner)
    proc = subprocess.run([sys.executable, str(script), planner, str(path), "0.5"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if planner == "bounded":
        assert res["outcome"] == "refused"
    else:
        assert res["outcome"] == "memory", res


# -- the reader's own bounds (targeted) ------------------------------------------------------------

@pytest.mark.parametrize("declared", [10 ** 12, (1 << 63) - 1, (1 << 64) - 1])
def test_huge_declared_sizes_cost_nothing(declared):
    """A section count, a tensor offset, table counts (format 2's inputs and outputs too)
    claiming ~10^12 elements: rejected before anything is sized from them."""
    data = fz.base_files()[3]
    lay = fz.layout(data)
    edits = [(lay["sections"] + 16, "<Q"), (lay["tensors"] + 16, "<Q"), (28, "<I"), (96, "<Q"), (200, "<I"),
             (212, "<I"), (192, "<Q"), (204, "<Q")]
    tracemalloc.start()
    try:
        for off, fmt in edits:
            buf = bytearray(data)
            struct.pack_into(fmt, buf, off, declared % (1 << (8 * struct.calcsize(fmt))))
            tracemalloc.reset_peak()
            with pytest.raises(RtmFormatError):
                from_bytes(fz.reseal(buf))
            assert tracemalloc.get_traced_memory()[1] < 16 * len(data) + 64 * 1024
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("value", [float("nan"), 0.0, -0.0, -1.0, float("inf"), 5e-324])
def test_bad_scales_are_rejected_or_refused(value):
    """x_scale / y_scale NaN, zero, negative, inf: the reader refuses them; a denormal scale
    (finite, > 0) loads but the planner refuses it (not a usable float32 scale)."""
    data = fz.base_files()[1]  # int8 model: QUANTIZE's first attr is y_scale
    lay = fz.layout(data)
    buf = bytearray(data)
    struct.pack_into("<d", buf, lay["attrs"] + 16, value)
    bad = fz.reseal(buf)
    if value == 5e-324:
        with pytest.raises(PlanError, match="positive float32"):
            build_plan(from_bytes(bad))
    else:
        with pytest.raises(RtmFormatError, match="NaN|finite and positive"):
            from_bytes(bad)


def test_nan_weight_scale_tensor_is_rejected():
    data = bytearray(fz.base_files()[1])
    fm = from_bytes(bytes(data))
    ref = fm.layers[1].tensors["w_scale"]
    sec_off = struct.unpack_from("<Q", data, fz.layout(data)["sections"] + 8)[0]
    struct.pack_into("<f", data, sec_off + 4 * ref.offset, np.float32("nan"))
    with pytest.raises(RtmFormatError, match="w_scale"):
        from_bytes(fz.reseal(data))


def test_file_and_mmap_readers_agree_with_from_bytes(tmp_path):
    """The same corruptions read from disk, with and without mmap, end the same way."""
    from rtinfer.rtm import load_frozen

    n_trunc = sum(len(b) for b in fz.base_files())
    path = tmp_path / "case.rtm"
    idx = list(range(0, n_trunc, 397)) + list(range(n_trunc, n_trunc + 150))
    for i in idx:
        family, data = fz.case(SEED + 1, i)
        want = fz.parse(data, tracing=False)[0]
        path.write_bytes(data)
        for mmap in (False, True):
            try:
                load_frozen(path, mmap=mmap)
                got = "loaded"
            except RtmFormatError:
                got = "rejected"
            assert got == want, (i, family, mmap)


# -- slow: a longer supervised run and the survivors under NUMBA_BOUNDSCHECK=1 ----------------------

@pytest.mark.slow
def test_long_run_short_version(tmp_path, summary):
    """The long run's command at 1/20 of its size (fuzz/README.md): 5,000 cases in supervised
    workers, 0 findings, 0 crashes, 0 hangs; survivors run under NUMBA_BOUNDSCHECK=1."""
    surv = tmp_path / "surv"
    proc = subprocess.run([sys.executable, os.path.join(FUZZ, "fuzz_rtm.py"), "--n", "5000", "--seed", "17",
                           "--start", str(sum(len(b) for b in fz.base_files())), "--chunk", "2500",
                           "--survivors", str(surv), "--max-survivors", "40", "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=3600)
    res = json.loads((tmp_path / "r.json").read_text())
    summary(f"rtm fuzz (slow): {res['cases']} cases {res['outcomes']}, {res['findings']} findings, "
            f"{len(res['crashes'])} crashes, {len(res['hangs'])} hangs; survivors under boundscheck: "
            f"{res['survivors']['ran']} ran, {res['survivors']['refused']} refused, "
            f"{len(res['survivors']['errors'])} errors; {res['seconds']} s")
    assert res["cases"] == 5000
    assert res["crashes"] == [] and res["hangs"] == []
    assert res["new_signatures"] == {}, res["finding_examples"]
    assert res["survivors"]["errors"] == [] and res["survivors"]["ran"] > 0
    assert proc.returncode == 0


# -- findings of the format-2 fuzzers, fixed in the owning files ----------------------------------
# Written as the behaviour the contract promises; each failed before its fix.

def test_binary_div_by_zero_is_ieee():
    """BINARY DIV: 'in float32 (IEEE: a / 0 is inf or nan)' (rtinfer/ops.py). A zero divisor
    raised ZeroDivisionError from compiled code (found by fuzz_rtm synth and fuzz_onnx
    graph_binary: x / relu(y) in a valid ONNX model does it)."""
    layers = (Layer(Op.ACT, (4,), (4,), Act.RELU, inputs=(0,)),
              Layer(Op.BINARY, (4,), (4,), attrs={"fn": 3}, inputs=(0, 1)))
    rt = rtinfer.load(FrozenModel(layers, {}, (4,), (4,)), nonfinite="allow")
    x = np.array([1.0, -1.0, 0.0, 2.0], np.float32)  # relu(x) = [1, 0, 0, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        want = x / np.maximum(x, 0)
    np.testing.assert_array_equal(rt.predict_one(x), want)


CHUNK_MODEL = textwrap.dedent("""
    import sys
    sys.path.insert(0, {fuzz!r})
    import numpy as np
    import rtinfer, _driver
    from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
    from rtinfer.ops import Act, Op
    bb = BufferBuilder()
    rng = np.random.default_rng(0)
    def dense(n_out):
        return {{"W": bb.add((rng.standard_normal((64, n_out)) / 8).astype(np.float32)),
                "b": bb.add(np.zeros(n_out, np.float32))}}
    # (2048, 1) * (1, 1024): 8 MiB of activations per sample from two small DENSE layers
    layers = (Layer(Op.DENSE, (64,), (2048,), Act.TANH, dense(2048), inputs=(0,)),
              Layer(Op.DENSE, (64,), (1024,), Act.TANH, dense(1024), inputs=(0,)),
              Layer(Op.RESHAPE, (2048,), (2048, 1), inputs=(1,)),
              Layer(Op.RESHAPE, (1024,), (1, 1024), inputs=(2,)),
              Layer(Op.BINARY, (2048, 1), (2048, 1024), attrs={{"fn": 2}}, inputs=(3, 4)),
              Layer(Op.ACT, (2048, 1024), (2048, 1024), Act.TANH))
    rt = rtinfer.load(FrozenModel(layers, bb.finish(), (64,), (2048, 1024)))
    X = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)
    _driver.set_memory_limit(2)
    try:
        got = rt.predict(X)  # 32 samples: the batch path
    except MemoryError as exc:
        print("MemoryError", exc)
        sys.exit(1)
    print("ok", bool(np.allclose(got, rt.stream(X), rtol=1e-5, atol=1e-6)))
""")


def test_batch_path_is_not_built_for_a_huge_per_sample_arena():
    """The fast half of the test below: a model whose per-sample arena times CHUNK exceeds
    MAX_BLOCK_ARENA_BYTES gets no batch path (predict runs it in bounded blocks); a small one
    still gets one."""
    from rtinfer.batch import CHUNK, BatchPath
    from rtinfer.ops import MAX_BLOCK_ARENA_BYTES
    from rtinfer.plan import build_plan
    bb = BufferBuilder()
    w = {"W": bb.add(np.zeros((8, 1024), np.float32)), "b": bb.add(np.zeros(1024, np.float32))}
    big = (Layer(Op.DENSE, (8,), (1024,), Act.TANH, w, inputs=(0,)),
           Layer(Op.RESHAPE, (1024,), (1024, 1), inputs=(1,)),
           Layer(Op.RESHAPE, (1024,), (1, 1024), inputs=(1,)),
           Layer(Op.BINARY, (1024, 1), (1024, 1024), attrs={"fn": 2}, inputs=(2, 3)),
           Layer(Op.ACT, (1024, 1024), (1024, 1024), Act.TANH))  # the 4 MiB product lives in the arena
    plan = build_plan(FrozenModel(big, bb.finish(), (8,), (1024, 1024)))
    assert CHUNK * plan.arena_bytes > MAX_BLOCK_ARENA_BYTES
    assert BatchPath.build(plan) is None
    small = build_plan(FrozenModel(big[:1], bb.finish(), (8,), (1024,)))
    assert CHUNK * small.arena_bytes <= MAX_BLOCK_ARENA_BYTES and BatchPath.build(small) is not None


@pytest.mark.slow
def test_batch_path_memory_is_bounded(tmp_path):
    """predict's batch path allocated CHUNK (256) samples of arena whatever one sample needs:
    8 MiB per sample (a broadcast product of two small layers) asks for 2 GiB (a per-sample arena at the planner's 256 MiB limit would
    ask for 64 GiB). The blocked path caps its block at plan.BLOCK_CACHE_BYTES; the batch path
    at MAX_BLOCK_ARENA_BYTES. Run with 2 GiB of headroom, as the fuzz workers."""
    script = tmp_path / "chunk.py"
    script.write_text(CHUNK_MODEL.format(fuzz=FUZZ))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok True"), proc.stdout + proc.stderr[-1000:]


def test_quantize_of_nan_is_the_same_on_every_path():
    """predict (blocks), the batch path, stream and predict_one give bit-identical results
    (docs/RELIABILITY.md, Determinism), also for inputs nonfinite='allow' lets through. QUANTIZE
    of NaN gave code -128 on the blocked and batch paths and 0 on stream/predict_one (and in the
    reference): found by fuzz_rtm synth (a SELU with beta 1e308 made the NaN inside the model)."""
    layers = (Layer(Op.QUANTIZE, (4,), (4,), attrs={"y_scale": 0.01, "y_zp": -7}),
              Layer(Op.DEQUANTIZE, (4,), (4,), attrs={"x_scale": 0.1, "x_zp": -4}))
    fm = FrozenModel(layers, {}, (4,), (4,))
    X = np.array([[np.nan, np.inf, -np.inf, 1.0]] * 40, np.float32)
    exact = rtinfer.load(fm, nonfinite="allow", batch="exact")
    one = exact.predict_one(X[0])
    np.testing.assert_array_equal(exact.stream(X)[0], one)
    np.testing.assert_array_equal(exact.predict(X)[0], one)
    np.testing.assert_array_equal(rtinfer.load(fm, nonfinite="allow").predict(X)[0], one)
    # the value onnxruntime's QuantizeLinear gives (checked: NaN -> -128, inf -> 127, -inf -> -128)
    codes = np.array([-128, 127, -128, int(np.clip(np.rint(1.0 / np.float32(0.01)) - 7, -128, 127))], np.int32)
    np.testing.assert_array_equal(one, (codes - np.int32(-4)).astype(np.float32) * np.float32(0.1))
