"""Graph models: several inputs per layer, several outputs, the lifetime-planned arena, .rtm
format 2, validation, and a Runtime shared by threads.

Everything compiled is compared with the NumPy reference executor (rtinfer.reference): float32
elementwise graph ops (BINARY, CONCAT, SLICE) are single IEEE operations, so the compiled
kernels must give the same bits; int8 graph ops are bit-exact by contract.
"""

from __future__ import annotations

import math
import struct
import sys
import threading
import zlib
from fractions import Fraction

import numpy as np
import pytest

import rtinfer
from rtinfer import quant, reference
from rtinfer._testmodels import fp32_mlp, int8_mlp, residual_mlp, two_branch
from rtinfer.frozen import BufferBuilder, FrozenModel, FrozenModelError, Layer
from rtinfer.ops import Act, Bin, Op
from rtinfer.plan import PlanError, build_plan, plan_arena
from rtinfer.rtm import RtmFormatError, from_bytes, load_frozen, to_bytes


def _X(shape, n=37, seed=0):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(np.float32)


# -- the arena planner on hand-computed layouts ------------------------------------------------

def test_plan_arena_chain_reuses_the_first_buffer():
    # A (0..1) and C (2..3) never live together; B (1..2) lives with both
    offs, total = plan_arena([("A", 100, 0, 1), ("B", 50, 1, 2), ("C", 100, 2, 3)], 1)
    assert offs == {"A": 0, "C": 0, "B": 100} and total == 150


def test_plan_arena_fills_the_gap_a_dead_tensor_leaves():
    # largest first: A@0, B@100 (alive with A), C@160 (alive with A and B); B dies after row 1,
    # so D (rows 2..4) fits the 60-element hole at 100 rather than going above C
    items = [("A", 100, 0, 4), ("B", 60, 0, 1), ("C", 50, 0, 4), ("D", 40, 2, 4)]
    offs, total = plan_arena(items, 1)
    assert offs == {"A": 0, "B": 100, "C": 160, "D": 100} and total == 210


def test_plan_arena_picks_the_smallest_gap_that_fits():
    # after row 4, B and D leave two holes: [100, 200) and [260, 300); E (30) takes the smaller
    items = [("A", 100, 0, 9), ("B", 100, 0, 4), ("C", 60, 0, 9), ("D", 40, 0, 4), ("F", 35, 0, 9),
             ("E", 30, 5, 9)]
    offs, total = plan_arena(items, 1)
    assert (offs["A"], offs["B"], offs["C"], offs["D"], offs["F"]) == (0, 100, 200, 260, 300)
    assert offs["E"] == 260 and total == 335


def test_plan_arena_aligns_sizes():
    offs, total = plan_arena([("a", 3, 0, 1), ("b", 17, 0, 1)], 16)
    assert offs == {"b": 0, "a": 32} and total == 48


def test_residual_arena_is_what_the_live_tensors_need():
    fm = residual_mlp(d=12, hidden=64, n_out=5, blocks=3)
    plan = build_plan(fm)
    # a block's input (skip) stays alive while its two dense layers run: 3 x 64 floats at most
    assert plan.arena_bytes == 3 * 64 * 4
    assert plan.tensor_bytes == (1 + 3 * 3) * 64 * 4 + 5 * 4
    slots = {t.tensor: t for t in plan.tensors}
    for a in plan.tensors:  # tensors alive at the same row never overlap
        for b in plan.tensors:
            if a.tensor < b.tensor and a.place == b.place == "arena" and a.dtype == b.dtype \
                    and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.nbytes <= b.offset or b.offset + b.nbytes <= a.offset, (a, b)
    assert slots[0].place == "input" and slots[len(fm.layers)].place == "output"
    assert "arena" in plan.memory_table()


# -- graph models run as the reference says ---------------------------------------------------

GRAPHS = {
    "residual_relu": lambda: residual_mlp(),
    "residual_tanh_argmax": lambda: residual_mlp(act=Act.TANH, head="argmax"),
    "two_branch": lambda: two_branch(),
}


def _same(a, b, exact=False):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y, exact)
        return
    assert a.shape == b.shape and a.dtype == b.dtype
    if exact:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(GRAPHS))
def test_graph_models_match_reference_on_every_path(name):
    fm = GRAPHS[name]()
    assert not fm.is_chain
    X = _X(fm.input_shape, n=70)
    want = reference.run(fm, X)
    exact = rtinfer.load(fm, batch="exact")
    auto = rtinfer.load(fm)
    streamed = exact.stream(X)
    _same(want, streamed)
    _same(streamed, exact.predict(X), exact=True)       # blocks of 16: same bits as one at a time
    _same(want, auto.predict(X))                        # tiled GEMM path: last bits may differ
    for i in (0, 33, 69):
        one = exact.predict_one(X[i])
        _same(tuple(s[i] for s in streamed) if isinstance(streamed, tuple) else streamed[i], one, exact=True)


def test_multi_output_api():
    fm = two_branch()
    rt = rtinfer.load(fm)
    assert [shape for shape, _ in rt.outputs] == [(3,), (2, 2)]
    X = _X(fm.input_shape, n=5)
    a, b = rt.predict(X)
    assert a.shape == (5, 3) and b.shape == (5, 2, 2)
    outs = (np.zeros((5, 3), np.float32), np.zeros((5, 2, 2), np.float32))
    got = rt.predict(X, out=outs)
    assert got[0] is outs[0] and got[1] is outs[1]
    _same((a, b), got, exact=True)
    one = rt.predict_one(X[2])
    _same((a[2], b[2]), one, exact=True)
    with pytest.raises(ValueError, match="expected out as a tuple of 2"):
        rt.predict(X, out=np.zeros((5, 3), np.float32))


# -- binary ops: every function, broadcast shape and dtype -------------------------------------

SHAPES = [((3, 4, 5), (3, 4, 5)), ((3, 4, 5), (3, 1, 1)), ((3, 4, 5), (5,)), ((3, 4, 5), (1,)),
          ((4, 1), (1, 5)), ((2, 3, 4, 5), (3, 1, 5)), ((5,), (3, 4, 5)), ((1, 4, 1), (3, 1, 5))]


def _binary_model(a_shape, b_shape, fn, act=Act.IDENTITY, int8=None):
    """input (na + nb,) -> SLICE a, SLICE b -> RESHAPE to their shapes -> BINARY (or, with
    int8=(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp), QUANTIZE first, QBINARY, DEQUANTIZE)."""
    na, nb = math.prod(a_shape), math.prod(b_shape)
    out = tuple(np.broadcast_shapes(a_shape, b_shape))
    L = []
    q = int8 is not None
    if q:
        L.append(Layer(Op.QUANTIZE, (na + nb,), (na + nb,), attrs={"y_scale": int8[0], "y_zp": int8[1]}))
    src = len(L)
    sl, binop = (Op.QSLICE, Op.QBINARY) if q else (Op.SLICE, Op.BINARY)
    L.append(Layer(sl, (na + nb,), (na,), attrs={"axis": 0, "start": 0, "step": 1}, inputs=(src,)))
    L.append(Layer(Op.RESHAPE, (na,), a_shape, inputs=(len(L),)))
    ta = len(L)
    L.append(Layer(sl, (na + nb,), (nb,), attrs={"axis": 0, "start": na, "step": 1}, inputs=(src,)))
    L.append(Layer(Op.RESHAPE, (nb,), b_shape, inputs=(len(L),)))
    tb = len(L)
    attrs = {"fn": int(fn)}
    if q:
        attrs.update(a_scale=int8[0], a_zp=int8[1], b_scale=int8[2], b_zp=int8[3], y_scale=int8[4], y_zp=int8[5])
    L.append(Layer(binop, a_shape, out, act, attrs=attrs, inputs=(ta, tb)))
    if q:
        L.append(Layer(Op.DEQUANTIZE, out, out, attrs={"x_scale": int8[4], "x_zp": int8[5]}))
    return FrozenModel(tuple(L), BufferBuilder().finish(), (na + nb,), out)


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("fn", list(Bin))
def test_binary_f32_same_bits_as_numpy(shapes, fn):
    fm = _binary_model(*shapes, fn)
    X = _X(fm.input_shape, n=20, seed=int(fn))
    X[0, :3] = 0.0  # division by zero, 0/0
    X[1, 0] = np.nan
    rt = rtinfer.load(fm, nonfinite="allow")
    want = reference.run(fm, X)
    np.testing.assert_array_equal(rt.stream(X), want)
    np.testing.assert_array_equal(rt.predict(X), want)


def test_binary_fused_activation_and_independent_check():
    fm = _binary_model((3, 4), (4,), Bin.ADD, act=Act.RELU)
    X = _X(fm.input_shape, n=9)
    a, b = X[:, :12].reshape(9, 3, 4), X[:, 12:].reshape(9, 1, 4)
    np.testing.assert_array_equal(rtinfer.load(fm).predict(X), np.maximum(a + b, 0))


@pytest.mark.parametrize("act", [Act.RELU, Act.SIGMOID, Act.IDENTITY])
@pytest.mark.parametrize("fn", [Bin.ADD, Bin.SUB])
def test_same_shape_binary_with_activation(act, fn):
    """A same-shape residual add fuses ReLU into its loop; every other activation and fn runs
    after it: all match the reference executor bit for bit, NaN and -0.0 included."""
    fm = _binary_model((3, 4), (3, 4), fn, act=act)
    X = _X(fm.input_shape, n=9)
    X[0, 0] = np.nan
    X[1, 0], X[1, 12] = -0.0, 0.0
    X[2, 1], X[2, 13] = -1.5, 1.5
    rt = rtinfer.load(fm, nonfinite="allow")
    want = reference.run(fm, X)
    np.testing.assert_array_equal(rt.stream(X), want)
    np.testing.assert_array_equal(rt.predict(X), want)
    if act == Act.RELU:
        a, b = X[:, :12], X[:, 12:]
        v = a + b if fn == Bin.ADD else a - b
        np.testing.assert_array_equal(rt.predict(X).reshape(9, 12)[1:], np.where(v < 0, 0, v)[1:])
        assert np.isnan(rt.predict(X).reshape(9, 12)[0, 0])


def _q_expect(a, b, fn, p):
    """Independent QBINARY: exact rationals for the multipliers' float32 values, Python's
    round (half to even)."""
    a_s, a_zp, b_s, b_zp, y_s, y_zp = p
    ma, mb = quant.qbinary_multipliers(fn, a_s, b_s, y_s)
    f32 = np.float32
    out = np.empty(a.shape, np.int64)
    for idx in np.ndindex(a.shape):
        da, db = int(a[idx]) - a_zp, int(b[idx]) - b_zp
        if fn == Bin.MUL:
            v = f32(f32(da * db) * ma)
        else:
            va, vb = f32(f32(da) * ma), f32(f32(db) * mb)
            v = {Bin.ADD: f32(va + vb), Bin.SUB: f32(va - vb), Bin.MAX: max(va, vb), Bin.MIN: min(va, vb)}[fn]
        out[idx] = min(max(round(Fraction(float(v))) + y_zp, -128), 127)
    return out


@pytest.mark.parametrize("fn", [Bin.ADD, Bin.SUB, Bin.MUL, Bin.MAX, Bin.MIN])
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (3, 1)), ((4,), (2, 3, 4)),
                                    # runs of 32 and more: ADD's 32-code steps (kernels_tile.qadd32), the last
                                    # overlapping, and one exact step
                                    ((3, 37), (3, 37)), ((32,), (32,)), ((2, 65), (2, 65))])
def test_qbinary_bit_exact_with_ties(fn, shapes):
    # a_scale = y_scale / 2 puts half the sums exactly on .5: round half to even decides them
    p = (0.05, 3, 0.1, -7, 0.1, 5) if fn != Bin.MUL else (0.25, 1, 0.5, -2, 0.25, 0)
    fm = _binary_model(*shapes, fn, int8=p)
    rng = np.random.default_rng(int(fn))
    codes = rng.integers(-128, 128, size=(40,) + fm.input_shape)
    X = ((codes - p[1]) * np.float32(p[0])).astype(np.float32)  # quantizes back to exactly `codes`
    rt = rtinfer.load(fm)
    got = rt.stream(X)
    want = reference.run(fm, X)
    np.testing.assert_array_equal(got, want)
    na = math.prod(shapes[0])
    r = max(len(shapes[0]), len(shapes[1]))
    a = codes[:, :na].reshape((40,) + (1,) * (r - len(shapes[0])) + shapes[0])
    b = codes[:, na:].reshape((40,) + (1,) * (r - len(shapes[1])) + shapes[1])
    a, b = np.broadcast_arrays(a, b)
    q = _q_expect(a, b, fn, p)
    np.testing.assert_array_equal(got, ((q - p[5]) * np.float32(p[4])).astype(np.float32))
    if fn == Bin.ADD:
        va = (a - p[1]) * 0.5
        assert np.any(va - np.floor(va) == 0.5), "the test inputs must hit ties"


# -- concat and slice -------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("int8", [False, True])
def test_concat_and_slice_any_axis(axis, int8):
    base = [2, 3, 4]
    shapes = []
    for k, extra in enumerate((1, 3, 2)):
        s = list(base)
        s[axis] = extra
        shapes.append(tuple(s))
    sizes = [math.prod(s) for s in shapes]
    n = sum(sizes)
    L = []
    if int8:
        L.append(Layer(Op.QUANTIZE, (n,), (n,), attrs={"y_scale": 0.02, "y_zp": -3}))
    src = len(L)
    sl, cat = (Op.QSLICE, Op.QCONCAT) if int8 else (Op.SLICE, Op.CONCAT)
    ids, start = [], 0
    for s, size in zip(shapes, sizes):
        L.append(Layer(sl, (n,), (size,), attrs={"axis": 0, "start": start, "step": 1}, inputs=(src,)))
        L.append(Layer(Op.RESHAPE, (size,), s, inputs=(len(L),)))
        ids.append(len(L))
        start += size
    out = list(base)
    out[axis] = 6
    L.append(Layer(cat, shapes[0], tuple(out), attrs={"axis": axis}, inputs=tuple(ids)))
    cat_t = len(L)
    # a reversed, strided slice of the concatenation along the same axis
    rev = list(out)
    rev[axis] = 3
    L.append(Layer(sl, tuple(out), tuple(rev), attrs={"axis": axis, "start": 5, "step": -2}, inputs=(cat_t,)))
    if int8:
        L.append(Layer(Op.DEQUANTIZE, tuple(rev), tuple(rev), attrs={"x_scale": 0.02, "x_zp": -3}))
    fm = FrozenModel(tuple(L), BufferBuilder().finish(), (n,), tuple(rev))
    X = _X((n,), n=11)
    got = rtinfer.load(fm).predict(X)
    np.testing.assert_array_equal(got, reference.run(fm, X))
    parts, off = [], 0
    Xq = quant.dequantize(quant.quantize(X, 0.02, -3), 0.02, -3) if int8 else X
    for s, size in zip(shapes, sizes):
        parts.append(Xq[:, off:off + size].reshape((11,) + s))
        off += size
    want = np.take(np.concatenate(parts, axis=axis + 1), [5, 3, 1], axis=axis + 1)
    np.testing.assert_array_equal(got, want)


# -- .rtm format 2 and version 1 ----------------------------------------------------------------

@pytest.mark.parametrize("name", list(GRAPHS))
def test_graph_rtm_round_trip(name, tmp_path):
    fm = GRAPHS[name]()
    data = to_bytes(fm)
    back = from_bytes(data)
    assert to_bytes(back) == data
    assert [l.inputs for l in back.layers] == [l.inputs for l in fm.layers]
    assert back.outputs == fm.outputs
    X = _X(fm.input_shape, n=6)
    _same(reference.run(fm, X), reference.run(back, X), exact=True)


@pytest.mark.parametrize("name", ["mlp_fp32", "mlp_int8"])
def test_version_1_files_still_load(name):
    import os
    d = os.path.join(os.path.dirname(__file__), "data", "rtm_v1")
    raw = open(os.path.join(d, name + ".rtm"), "rb").read()
    assert struct.unpack_from("<H", raw, 8)[0] == 1
    fm = load_frozen(os.path.join(d, name + ".rtm"))
    ref = np.load(os.path.join(d, name + ".npz"))
    assert fm.is_chain
    # int8 is bit-exact everywhere; the float32 reference's dense layers go through the BLAS, whose
    # summation order depends on the CPU (against the stored Y, made on another machine, ten of
    # thirty outputs differed in the last bit on a Zen 4), so float32 is compared to a few ulps
    if name == "mlp_int8":
        same = np.testing.assert_array_equal
    else:
        def same(a, b):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    same(reference.run(fm, ref["X"]), ref["Y"])
    got = rtinfer.load(fm).predict(ref["X"])
    if name == "mlp_int8":
        np.testing.assert_array_equal(got, ref["Y"])
    else:
        np.testing.assert_allclose(got, ref["Y"], rtol=1e-5, atol=1e-7)
    again = from_bytes(to_bytes(fm))  # written as version 2, read back the same
    np.testing.assert_array_equal(reference.run(again, ref["X"]), reference.run(fm, ref["X"]))


def _reseal(data: bytearray) -> bytes:
    """Recompute the tables and header CRCs of a hand-edited .rtm."""
    from rtinfer.rtm import HEADER, HEADER_CRC_OFFSET, HEADER_SIZE
    f = HEADER.unpack_from(data, 0)
    data_off = f[18]
    tables_crc_at = 184
    struct.pack_into("<I", data, tables_crc_at, zlib.crc32(data[HEADER_SIZE:data_off]))
    struct.pack_into("<I", data, HEADER_CRC_OFFSET, zlib.crc32(data[:HEADER_CRC_OFFSET]))
    return bytes(data)


def test_rtm_refuses_forward_references_and_stray_edges():
    from rtinfer.rtm import HEADER, INPUT
    fm = residual_mlp(blocks=1)
    data = bytearray(to_bytes(fm))
    f = HEADER.unpack_from(data, 0)
    names_end = 19 + 2 * 9 + 2
    inputs_off = f[names_end]
    # layer 0 reads tensor 0: make it read tensor 3 (a later layer's output)
    bad = bytearray(data)
    INPUT.pack_into(bad, inputs_off, 3)
    with pytest.raises(RtmFormatError, match="not an earlier tensor"):
        from_bytes(_reseal(bad))
    # the residual add reads tensors (1, 3): make it read (1, 9) (no such tensor yet)
    add_layer = next(i for i, l in enumerate(fm.layers) if l.op == Op.BINARY)
    first = sum(len(l.inputs) for l in fm.layers[:add_layer])
    bad = bytearray(data)
    INPUT.pack_into(bad, inputs_off + 4 * (first + 1), 9)
    with pytest.raises(RtmFormatError, match="not an earlier tensor"):
        from_bytes(_reseal(bad))


# -- validation ---------------------------------------------------------------------------------

def _relu(shape, inputs=None):
    return Layer(Op.ACT, shape, shape, Act.RELU, inputs=inputs)


def test_validation_errors_name_the_problem():
    bb = BufferBuilder().finish()
    with pytest.raises(FrozenModelError, match="input tensor 2 is not an earlier tensor"):
        FrozenModel((_relu((4,), (2,)), _relu((4,))), bb, (4,), (4,))
    with pytest.raises(FrozenModelError, match="takes 2 inputs, got 1"):
        FrozenModel((Layer(Op.BINARY, (4,), (4,), attrs={"fn": 0}),), bb, (4,), (4,))
    with pytest.raises(FrozenModelError, match=r"layer 0 \(ACT\): its output \(tensor 1\) is never used"):
        FrozenModel((_relu((4,)), _relu((4,), (0,))), bb, (4,), (4,))
    q = Layer(Op.QUANTIZE, (4,), (4,), attrs={"y_scale": 0.1, "y_zp": 0})
    with pytest.raises(FrozenModelError, match="takes f32 but tensor 1 is i8"):
        FrozenModel((q, _relu((4,))), bb, (4,), (4,))
    sm = Layer(Op.SOFTMAX, (4,), (4,), attrs={"outer": 1, "axis_len": 4, "inner": 1})
    with pytest.raises(FrozenModelError, match="int64 needs an ARGMAX or CONST result"):
        FrozenModel((sm,), bb, (4,), (4,), "int64")
    with pytest.raises(FrozenModelError, match="attr 'alpha' is NaN"):
        FrozenModel((Layer(Op.ACT, (4,), (4,), Act.ELU, attrs={"alpha": float("nan")}),), bb, (4,), (4,))


def test_planner_refuses_bad_graph_ops():
    bb = BufferBuilder().finish()
    with pytest.raises(FrozenModelError, match=r"input shape \(3,\) does not match tensor 0's shape \(4,\)"):
        FrozenModel((_relu((3,), (0,)),), bb, (4,), (3,))
    a = Layer(Op.RESHAPE, (6,), (2, 3), inputs=(0,))
    b = Layer(Op.RESHAPE, (6,), (3, 2), inputs=(0,))
    add = Layer(Op.BINARY, (2, 3), (2, 3), attrs={"fn": 0}, inputs=(1, 2))
    with pytest.raises(PlanError, match="do not broadcast"):
        build_plan(FrozenModel((a, b, add), bb, (6,), (2, 3)))
    cat = Layer(Op.CONCAT, (2, 3), (5, 3), attrs={"axis": 0}, inputs=(1, 2))
    with pytest.raises(PlanError, match="CONCAT on axis 0 needs"):
        build_plan(FrozenModel((a, b, cat), bb, (6,), (5, 3)))
    sl = Layer(Op.SLICE, (6,), (4,), attrs={"axis": 0, "start": 3, "step": 1})
    with pytest.raises(PlanError, match="leaves the axis"):
        build_plan(FrozenModel((sl,), bb, (6,), (4,)))


# -- the boundary: subclasses and overlapping outputs -----------------------------------------------

@pytest.fixture(scope="module")
def rt_fp32():
    return rtinfer.load(fp32_mlp([12, 8, 3], head="softmax"))


def test_ndarray_subclasses_at_the_boundary(rt_fp32, tmp_path):
    """np.memmap (and other plain subclasses) run as ndarrays; np.matrix (a row is 2-D) and
    masked arrays (the mask would be ignored) are refused on every entry point, never crash."""
    X = _X((12,), n=5)
    want = rt_fp32.predict(X)
    mm = np.memmap(tmp_path / "x.bin", dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    np.testing.assert_array_equal(rt_fp32.predict(mm), want)
    np.testing.assert_array_equal(rt_fp32.stream(mm), want)
    np.testing.assert_array_equal(rt_fp32.predict_one(mm[1]), want[1])
    assert rt_fp32.measure(mm, budget_us=1e6, warmup=2).n == 5
    bad_batches = (np.asmatrix(X), np.ma.masked_array(X))
    for bad in bad_batches:
        for call in (rt_fp32.predict, rt_fp32.stream, lambda a: rt_fp32.measure(a, budget_us=1e6)):
            with pytest.raises(ValueError, match="plain numpy.ndarray"):
                call(bad)
    for bad in (np.asmatrix(X[0]), np.ma.masked_array(X[0])):
        with pytest.raises(ValueError, match="plain numpy.ndarray"):
            rt_fp32.predict_one(bad)
    with pytest.raises(ValueError, match="plain numpy.ndarray"):
        rt_fp32.predict(X, out=np.ma.masked_array(np.zeros((5, 3), np.float32)))


def test_out_overlapping_the_input_is_refused(rt_fp32):
    rt = rtinfer.load(fp32_mlp([12, 12], head=None))
    X = _X((12,), n=4)
    with pytest.raises(ValueError, match="overlaps the input"):
        rt.predict_one(X[0], out=X[0])
    buf = np.zeros(24, np.float32)
    with pytest.raises(ValueError, match="overlaps the input"):
        rt.predict_one(buf[:12], out=buf[6:18])
    with pytest.raises(ValueError, match="overlaps the input"):
        rt.predict(X, out=X)
    with pytest.raises(ValueError, match="overlaps the input"):
        rt.stream(X, out=X)
    Xc = X.copy()
    np.testing.assert_array_equal(rt.predict_one(Xc[0], out=np.zeros(12, np.float32)), rt.predict(X)[0])


# -- a Runtime shared by threads ----------------------------------------------------------------

def _hammer(rt, X, want, calls, kind, threads=4):
    """Threads calling one Runtime with a 1 us switch interval; the number of wrong answers.
    want: per-sample results (kind "one") or per-window results want[j] = predict(X[j:j + 40])."""
    wrong = []

    def work(t):
        rng = np.random.default_rng(t)
        for _ in range(calls):
            if kind == "one":
                i = int(rng.integers(len(X)))
                if not np.array_equal(rt.predict_one(X[i]), want[i]):
                    wrong.append(i)
            else:
                j = int(rng.integers(len(want)))
                if not np.array_equal(rt.predict(X[j:j + 40]), want[j]):
                    wrong.append(j)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        sys.setswitchinterval(old)
    return len(wrong)


@pytest.mark.parametrize("kind,model", [
    ("one", "int64"), ("one", "int8"), ("one", "graph"), ("batch", "int8"), ("batch", "int64"),
    ("batch", "graph"),
])
def test_shared_runtime_gives_right_answers_under_threads(kind, model):
    fm = {"int64": lambda: fp32_mlp([16, 32, 6], head="argmax"),
          "int8": lambda: int8_mlp([16, 40, 24, 6], lut=np.tanh, head="softmax"),
          "graph": lambda: residual_mlp(d=16, hidden=24, n_out=6)}[model]()
    rt = rtinfer.load(fm)
    ref = rtinfer.load(fm)  # answers computed on another Runtime, one thread
    X = _X((16,), n=200, seed=3)
    if kind == "one":
        want = [ref.predict_one(x) for x in X]
    else:
        want = [ref.predict(X[j:j + 40]) for j in range(160)]
    assert _hammer(rt, X, want, calls=1500 if kind == "one" else 150, kind=kind) == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["one", "batch"])
@pytest.mark.parametrize("model", ["int64", "int8", "graph"])
def test_shared_runtime_long_run(kind, model):
    """10^5 calls per entry point and model kind (issue: 0 wrong answers)."""
    fm = {"int64": lambda: fp32_mlp([16, 32, 6], head="argmax"),
          "int8": lambda: int8_mlp([16, 40, 24, 6], lut=np.tanh, head="softmax"),
          "graph": lambda: residual_mlp(d=16, hidden=24, n_out=6)}[model]()
    rt, ref = rtinfer.load(fm), rtinfer.load(fm)
    X = _X((16,), n=200, seed=4)
    want = [ref.predict_one(x) for x in X] if kind == "one" else [ref.predict(X[j:j + 40]) for j in range(160)]
    assert _hammer(rt, X, want, calls=25000, kind=kind) == 0


def test_inspect_shows_graph_memory(tmp_path, capsys):
    """`rtinfer inspect` lists each layer's inputs, each tensor's place, offset, size and lifetime,
    and the arena next to the sum of all tensors; the latency report carries both too."""
    import json
    from rtinfer.cli import main
    fm = residual_mlp(d=12, hidden=64, n_out=5, blocks=3)
    path = tmp_path / "res.rtm"
    fm.save(path)
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    plan = build_plan(fm)
    assert info["graph"] is True and info["memory"]["arena_bytes"] == plan.arena_bytes == 3 * 64 * 4
    assert info["memory"]["tensor_bytes"] == plan.tensor_bytes > plan.arena_bytes
    assert [layer["inputs"] for layer in info["layers"]] == [list(layer.inputs) for layer in fm.layers]
    rows = {t["tensor"]: t for t in info["memory"]["tensors"]}
    assert rows[0]["place"] == "input" and rows[len(fm.layers)]["place"] == "output"
    assert all(rows[t.tensor]["offset"] == t.offset and rows[t.tensor]["first_row"] == t.first for t in plan.tensors)
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"arena {plan.arena_bytes} B per sample" in text and f"all intermediate tensors {plan.tensor_bytes} B" in text
    rep = rtinfer.load(fm).measure(_X((12,), n=20), budget_us=1e6, warmup=2)
    assert rep.arena_bytes == plan.arena_bytes and rep.tensor_bytes == plan.tensor_bytes
    assert f"all tensors {plan.tensor_bytes} B" in str(rep)


# -- sizes a tiny file declares are bounded before anything is allocated ----------------------------

def test_huge_declared_sizes_are_refused_cheaply(tmp_path):
    import tracemalloc
    from onnx import TensorProto, helper
    from export import from_onnx
    from export.onnx_import import OnnxImportError
    from rtinfer.reference_conv import geometry_attrs
    k = 1 << 28
    pool = FrozenModel((Layer(Op.MAXPOOL, (1, k), (1, 1), attrs=geometry_attrs((1, k))),), BufferBuilder().finish(),
                       (1, k), (1, 1))
    path = tmp_path / "pool.rtm"
    pool.save(path)
    assert path.stat().st_size < 2048
    big = 1 << 26  # two 256 MiB intermediate tensors alive together
    two = FrozenModel((_relu((big,)), _relu((big,)), _relu((big,))), BufferBuilder().finish(), (big,), (big,))
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[k])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 1])])
    onnx_pool = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_pool.ir_version = 8
    c128 = TensorProto()  # 16 bytes x 2^27 elements (2 GiB) declared by a few bytes
    c128.name, c128.data_type = "w", TensorProto.COMPLEX128
    c128.dims.extend([1 << 27])
    c128.raw_data = b""
    g2 = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [c128])
    onnx_c128 = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17)])
    tracemalloc.start()
    try:
        with pytest.raises(PlanError, match=r"kernel_w' = 268435456 outside \[0, 16777216\]"):
            rtinfer.load(str(path))
        with pytest.raises(PlanError, match="bytes per sample, above the limit"):
            build_plan(two)
        with pytest.raises(OnnxImportError, match="window reads per sample, above the limit"):
            from_onnx(onnx_pool)
        with pytest.raises(OnnxImportError, match="bytes, dims"):
            from_onnx(onnx_c128)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak


def test_geometry_overflow_and_nonfinite_weights():
    from rtinfer.reference_conv import geometry_attrs
    attrs = dict(geometry_attrs((1, 2), stride=(1, 1 << 31)))
    pool = FrozenModel((Layer(Op.MAXPOOL, (1, 8), (1, 1), attrs=attrs),), BufferBuilder().finish(), (1, 8), (1, 1))
    with pytest.raises(PlanError, match="stride_w"):
        build_plan(pool)  # an OverflowError from an int32 table before
    bb = BufferBuilder()
    W = np.ones((4, 3), np.float32)
    W[1, 2] = np.nan
    dense = Layer(Op.DENSE, (4,), (3,), tensors={"W": bb.add(W), "b": bb.add(np.zeros(3, np.float32))}, name="fc")
    fm = FrozenModel((dense,), bb.finish(), (4,), (3,))
    with pytest.warns(RuntimeWarning, match=r"layer 0 \(DENSE fc\): tensor 'W' holds 1 NaN or infinite"):
        build_plan(fm)
