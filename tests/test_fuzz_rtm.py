"""The .rtm reader under a deterministic subset of fuzz/fuzz_rtm.py (the long run is documented
in fuzz/README.md): every truncation of two small files plus a few thousand seeded corruptions.

Each case must end in RtmFormatError (the one documented error type) or load a consistent
model; no other exception, and a traced peak below MEM_FACTOR * file size + MEM_SLACK. Raw bit
flips (no CRC repair) must all be rejected. Models that survive a corruption are run through
the runtime in a subprocess with NUMBA_BOUNDSCHECK=1 (and a private numba cache, so the
bounds-checked code is really compiled): they run, or the planner refuses them with a ValueError.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import tracemalloc

import numpy as np
import pytest

from rtinfer.rtm import RtmFormatError, from_bytes

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_rtm", os.path.join(_ROOT, "fuzz", "fuzz_rtm.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fz = _load_fuzz_module()
N_RANDOM = 2500
SEED = 20240607


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    n_trunc = sum(len(b) for b in fz.base_files())
    surv = tmp_path_factory.mktemp("survivors")
    res = fz.run_range(SEED, 0, n_trunc + N_RANDOM, survivors_dir=str(surv), max_survivors=60)
    res["n_trunc"] = n_trunc
    res["survivors_dir"] = str(surv)
    return res


def test_base_files_load():
    for data in fz.base_files():
        from_bytes(data)
        assert fz.reseal(bytearray(data)) == data  # resealing a good file changes nothing


@pytest.mark.slow
def test_every_case_rejected_or_loaded(result, summary):
    assert result["n_failures"] == 0, result["failures"]
    counts = result["counts"]
    total = sum(sum(d.values()) for d in counts.values())
    assert total == result["n_trunc"] + N_RANDOM
    rejected = sum(d.get("rejected", 0) for d in counts.values())
    summary(f"rtm fuzz (CI subset): {total} cases, {rejected} rejected with RtmFormatError, "
            f"{total - rejected} loaded, 0 other errors; max traced peak {result['max_peak']} B")
    # every family was exercised, and the structural checks (not only CRCs) did work
    assert set(counts) == set(fz.FAMILIES) | {"truncate"}
    for fam in ("header_field", "record_field", "shape", "section", "attr_value"):
        assert counts[fam].get("rejected", 0) > 0


@pytest.mark.slow
def test_every_truncation_is_rejected(result):
    assert result["counts"]["truncate"] == {"rejected": result["n_trunc"]}


@pytest.mark.slow
def test_raw_bit_flips_are_all_detected(result):
    assert set(result["counts"]["flip_raw"]) == {"rejected"}
    assert result["counts"]["random_header"].get("loaded", 0) == 0


@pytest.mark.slow
def test_memory_is_bounded(result):
    # the bound is checked per case inside run_range; here: it was measured at all
    assert 0 < result["max_peak"] <= fz.MEM_FACTOR * 4096 + fz.MEM_SLACK


@pytest.mark.parametrize("declared", [10 ** 12, (1 << 63) - 1, (1 << 64) - 1])
def test_huge_declared_sizes_cost_nothing(declared):
    """A section count, a tensor offset and a table count claiming ~10^12 elements: rejected
    before anything is sized from them."""
    data = fz.base_files()[0]
    lay = fz.layout(data)
    edits = [(lay["sections"] + 16, "<Q"), (lay["tensors"] + 16, "<Q"), (28, "<I"), (96, "<Q")]
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
    from rtinfer.plan import PlanError, build_plan

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


@pytest.mark.slow
def test_survivors_run_with_boundscheck(result, summary):
    """Models that loaded after a corruption run through predict, stream, predict_one and
    measure with NUMBA_BOUNDSCHECK=1 (out-of-bounds access would raise IndexError)."""
    n = len(os.listdir(result["survivors_dir"]))
    assert n > 10
    res = fz.run_survivors(result["survivors_dir"], timeout=600)
    summary(f"rtm fuzz survivors under NUMBA_BOUNDSCHECK=1: {res['ran']} ran, "
            f"{res['refused']} refused by the planner, {len(res['errors'])} errors")
    assert res["errors"] == []
    assert res["ran"] + res["refused"] == n and res["ran"] > 0


def test_file_and_mmap_readers_agree_with_from_bytes(tmp_path):
    """The same corruptions read from disk, with and without mmap, end the same way."""
    from rtinfer.rtm import load_frozen

    n_trunc = sum(len(b) for b in fz.base_files())
    path = tmp_path / "case.rtm"
    idx = list(range(0, n_trunc, 97)) + list(range(n_trunc, n_trunc + 400))
    for i in idx:
        family, data = fz.case(SEED + 1, i)
        want = fz.check(data, tracing=False)[0]
        path.write_bytes(data)
        for mmap in (False, True):
            try:
                load_frozen(path, mmap=mmap)
                got = "loaded"
            except RtmFormatError:
                got = "rejected"
            assert got == want, (i, family, mmap)
