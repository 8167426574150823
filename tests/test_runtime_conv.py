"""CNN FrozenModels through the planner and the compiled interpreter (rtinfer.load): equal to the
reference executor (fp32 within 1e-5, int8 layers bit-exact), predict == stream == predict_one,
per-layer latency rows for conv ops, plan errors for broken conv layers, and no allocation per
sample (NRT counters in a subprocess, as tests/test_alloc.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import export
import rtinfer
from rtinfer import reference
from rtinfer.frozen import FrozenModel, Layer
from rtinfer.ops import Op
from rtinfer.plan import PlanError
from rtinfer.train import (
    CNN, Activation, AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool, MaxPool1D,
    MaxPool2D, fit,
)

MODELS = {
    "1d": lambda: CNN((2, 40), [Conv1D(2, 8, 5, padding="same"), BatchNorm(8), Activation("relu"), MaxPool1D(2),
                                Conv1D(8, 8, 3, stride=2, dilation=2, padding=(2, 1), groups=4), Activation("tanh"),
                                AvgPool1D(3, stride=2, padding=1), Flatten(), Dense(40, 4)], seed=1),
    "2d": lambda: CNN((1, 12, 10), [Conv2D(1, 6, (4, 3), stride=(2, 1), padding=((1, 2), (1, 1))), BatchNorm(6),
                                    Activation("relu"), Conv2D(6, 6, 3, padding=1, groups=6), Activation("relu"),
                                    Conv2D(6, 8, 1), Activation("leaky_relu", 0.1),
                                    MaxPool2D(2, padding=((0, 1), (0, 0))), AvgPool2D(2, stride=1, count_include_pad=True,
                                                                                      padding=1),
                                    GlobalAvgPool(), Dense(8, 3)], seed=2),
}


@pytest.fixture(scope="module")
def frozen_models():
    out = {}
    for key, make in MODELS.items():
        model = make()
        rng = np.random.default_rng(3)
        X = rng.normal(size=(128,) + model.input_shape)
        fit(model, X, rng.integers(0, model.n_outputs_, len(X)), epochs=2, seed=0)
        out[key, "float32"] = export.freeze(model)
        out[key, "int8"] = export.freeze(model, dtype="int8", calibration=X)
        out[key, "X"] = rng.normal(size=(37,) + model.input_shape).astype(np.float32)
    return out


@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_runtime_equals_reference(frozen_models, key, dtype):
    fm = frozen_models[key, dtype]
    X = frozen_models[key, "X"]
    rt = rtinfer.load(fm)
    want, trace = reference.run(fm, X, trace=True)
    got = rt.predict(X)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rt.stream(X), got)  # one at a time == blocks of 16
    for i in (0, 17, 36):
        np.testing.assert_array_equal(rt.predict_one(X[i]), got[i])
    if dtype == "int8":  # every int8 tensor bit-exact: cut the model after each int8 layer
        for cut, layer in enumerate(fm.layers):
            if layer.out_dtype != "i8" or cut + 1 >= len(fm.layers) or fm.layers[cut + 1].op != Op.DEQUANTIZE:
                continue
            sub = FrozenModel(fm.layers[:cut + 2], fm.buffers, fm.input_shape, fm.layers[cut + 1].out_shape)
            np.testing.assert_array_equal(rtinfer.load(sub).predict(X), reference.run(sub, X))


def test_every_int8_conv_layer_is_bit_exact(frozen_models):
    """Each int8 layer's codes: append DEQUANTIZE with scale 1 / zero point 0 after it."""
    fm = frozen_models["2d", "int8"]
    X = frozen_models["2d", "X"]
    checked = 0
    for cut, layer in enumerate(fm.layers):
        if layer.out_dtype != "i8":
            continue
        codes = Layer(Op.DEQUANTIZE, layer.out_shape, layer.out_shape, attrs={"x_scale": 1.0, "x_zp": 0})
        sub = FrozenModel(fm.layers[:cut + 1] + (codes,), fm.buffers, fm.input_shape, layer.out_shape)
        np.testing.assert_array_equal(rtinfer.load(sub).predict(X), reference.run(sub, X))
        checked += layer.op in (Op.QCONV, Op.QMAXPOOL, Op.QAVGPOOL)
    assert checked >= 5


def test_per_layer_latency_includes_conv_ops(frozen_models):
    rt = rtinfer.load(frozen_models["1d", "float32"])
    rep = rt.measure(frozen_models["1d", "X"], budget_us=1e6, warmup=5, per_layer=True)
    labels = [row["label"] for row in rep.per_layer]
    assert sum("CONV" in lbl for lbl in labels) == 2 and any("MAXPOOL" in lbl for lbl in labels)
    assert any("AVGPOOL" in lbl for lbl in labels)
    assert all(row["mean_us"] >= 0 for row in rep.per_layer)
    assert rt.macs == frozen_models["1d", "float32"].macs > 0


def test_plan_rejects_broken_conv_layers(frozen_models):
    fm = frozen_models["1d", "float32"]
    conv = fm.layers[0]
    bad_attrs = dict(conv.attrs, group=3)
    bad = Layer(conv.op, conv.in_shape, conv.out_shape, conv.act, conv.tensors, bad_attrs, conv.name)
    with pytest.raises(PlanError, match="group"):
        rtinfer.load(FrozenModel((bad,) + fm.layers[1:], fm.buffers, fm.input_shape, fm.output_shape))
    pool = fm.layers[1]
    bad = Layer(pool.op, pool.in_shape, (8, 22), attrs=dict(pool.attrs, pad_left=2, pad_right=2), name=pool.name)
    with pytest.raises(PlanError, match="padding only"):
        rtinfer.load(FrozenModel((bad,), fm.buffers, pool.in_shape, (8, 22)))
    bad = Layer(conv.op, conv.in_shape, conv.out_shape, conv.act, conv.tensors, dict(conv.attrs, stride_w=float("inf")),
                conv.name)
    with pytest.raises(PlanError, match="stride_w"):
        rtinfer.load(FrozenModel((bad,) + fm.layers[1:], fm.buffers, fm.input_shape, fm.output_shape))
    from rtinfer.frozen import BufferBuilder
    from rtinfer.reference_conv import geometry_attrs
    bb = BufferBuilder()
    big = Layer(Op.CONV, (1, 700, 700), (1, 700, 700), tensors={"W": bb.add(np.zeros((1, 1, 101, 101), np.float32)),
                                                               "b": bb.add(np.zeros(1, np.float32))},
                attrs=dict(geometry_attrs((101, 101), pads=((50, 50), (50, 50))), group=1))
    # refused from the declared geometry (window reads), before the scratch is sized
    with pytest.raises(PlanError, match="scratch|window reads per sample, above the limit"):
        rtinfer.load(FrozenModel((big,), bb.finish(), (1, 700, 700), (1, 700, 700)))
    q = frozen_models["1d", "int8"]
    i = next(k for k, layer in enumerate(q.layers) if layer.op == Op.QCONV)
    qc = q.layers[i]
    bad = Layer(qc.op, qc.in_shape, qc.out_shape, qc.act, qc.tensors, dict(qc.attrs, y_zp=300), qc.name)
    with pytest.raises((PlanError, ValueError), match="y_zp"):
        rtinfer.load(FrozenModel(q.layers[:i] + (bad,) + q.layers[i + 1:], q.buffers, q.input_shape, q.output_shape))


def test_rtm_file_of_a_cnn_runs(frozen_models, tmp_path):
    fm = frozen_models["2d", "int8"]
    path = tmp_path / "cnn.rtm"
    fm.save(path)
    X = frozen_models["2d", "X"]
    np.testing.assert_array_equal(rtinfer.load(str(path)).predict(X), rtinfer.load(fm).predict(X))


ALLOC_SCRIPT = textwrap.dedent("""
    import os, json
    os.environ["NUMBA_NRT_STATS"] = "1"
    import numpy as np
    from numba.core.runtime import rtsys
    import export, rtinfer
    from rtinfer.train import CNN, Conv1D, BatchNorm, Activation, MaxPool1D, AvgPool1D, GlobalAvgPool, Dense

    def allocs(fn):
        before = rtsys.get_allocation_stats()
        fn()
        after = rtsys.get_allocation_stats()
        return after.alloc - before.alloc, after.mi_alloc - before.mi_alloc

    from numba import njit

    @njit
    def per_sample_alloc(X):  # positive control (and NRT start-up): one NRT allocation per row
        s = 0.0
        for i in range(X.shape[0]):
            s += np.empty(1)[0] * 0.0 + X[i, 0]
        return s

    Xc = np.zeros((10000, 1))
    per_sample_alloc(Xc[:2])
    res = {"control10": allocs(lambda: per_sample_alloc(Xc[:10])),
           "control10000": allocs(lambda: per_sample_alloc(Xc))}

    model = CNN((1, 32), [Conv1D(1, 4, 5, padding=2), BatchNorm(4), Activation("relu"), MaxPool1D(2),
                          Conv1D(4, 4, 3, groups=4), Activation("tanh"), AvgPool1D(2, padding=1), GlobalAvgPool(),
                          Dense(4, 3)])
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10000, 1, 32)).astype(np.float32)
    for dtype in ("float32", "int8"):
        fm = export.freeze(model, dtype=dtype, calibration=X[:100].astype(np.float64))
        rt = rtinfer.load(fm)
        out = np.empty((10000, 3), np.float32)
        rt.stream(X[:10], out=out[:10]); rt.predict(X[:10], out=out[:10])
        res[dtype + "_stream10"] = allocs(lambda: rt.stream(X[:10], out=out[:10]))
        res[dtype + "_stream10000"] = allocs(lambda: rt.stream(X, out=out))
        res[dtype + "_predict10"] = allocs(lambda: rt.predict(X[:10], out=out[:10]))
        res[dtype + "_predict10000"] = allocs(lambda: rt.predict(X, out=out))
    print("RESULT" + json.dumps(res))
""")


def test_no_allocation_per_sample():
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    proc = subprocess.run([sys.executable, "-c", ALLOC_SCRIPT], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1][len("RESULT"):])
    assert res["control10000"][0] - res["control10"][0] >= 9990  # the counter is live
    for dtype in ("float32", "int8"):
        for entry in ("stream", "predict"):
            assert res[f"{dtype}_{entry}10000"] == res[f"{dtype}_{entry}10"], res


@pytest.mark.slow
def test_conv_kernels_and_runtime_under_boundscheck():
    """As tests/test_runtime_boundscheck.py: the conv kernel tests (every kernel path) and this
    file's runtime tests pass with NUMBA_BOUNDSCHECK=1 (every read and write of every conv/pool
    kernel in bounds; the LLVM IR tiles' extents are checked by the kernels themselves there, and
    test_tile_extents_are_checked_under_boundscheck shows those checks fire)."""
    import tempfile
    from pathlib import Path
    here = Path(__file__).resolve().parent
    cache = os.path.join(tempfile.gettempdir(), f"rtinfer-boundscheck-cache-{os.getuid()}")
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=cache)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k",
         "not boundscheck and not no_allocation", str(here / "test_kernels_conv.py"),
         str(here / "test_kernels_conv_fast.py"), str(here / "test_runtime_conv.py")],
        capture_output=True, text=True, env=env, timeout=900, cwd=str(here.parent))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_large_activations_run_in_smaller_blocks():
    """A CNN whose 16-sample block of activations would not fit BLOCK_CACHE_BYTES runs predict
    in fewer samples per block (the plan header says how many), with the same results as one
    sample at a time, for batches that are not a multiple of the block."""
    from rtinfer.plan import BLOCK, BLOCK_CACHE_BYTES
    model = CNN((1, 24, 24), [Conv2D(1, 16, 3, padding=1), Activation("relu"), Conv2D(16, 8, 3, stride=2),
                              Activation("relu"), GlobalAvgPool(), Dense(8, 3)], seed=4)
    X = np.random.default_rng(5).normal(size=(11,) + model.input_shape).astype(np.float32)
    for fm in (export.freeze(model), export.freeze(model, dtype="int8", calibration=X)):
        rt = rtinfer.load(fm)
        block = rt.plan.block_size
        assert 1 <= block < BLOCK and block == BLOCK_CACHE_BYTES // rt.plan.arena_bytes
        got = rt.predict(X)
        np.testing.assert_array_equal(got, rt.stream(X))
        np.testing.assert_allclose(got, reference.run(fm, X), rtol=1e-5, atol=1e-6)


def _conv_work(plan):
    """Per CONV / QCONV program row with work (kernels_conv, Work): (section, elements it needs,
    absolute element offset of its work), read back from the plan's tables."""
    from rtinfer import kernels_conv as KC
    from rtinfer.plan import C_I0, C_OP, C_T2
    i32 = plan.image.view(np.int32)
    out = []
    for row in plan.program:
        op, go = Op(int(row[C_OP])), int(row[C_I0])
        t = i32[go:go + KC.G_LEN]
        if op == Op.CONV and t[KC.G_PATH] == KC.PATH_WINO:
            vo, total = KC.wino_shape(t[KC.G_C], t[KC.G_O], t[KC.G_OH], t[KC.G_OW], t[KC.G_WBR])[5::2]
            out.append(("f32", total - vo, int(row[C_T2]) + int(t[KC.G_WORK])))
        elif op == Op.QCONV and t[KC.G_PATH] in (KC.PATH_GEMM, KC.PATH_GEMM_U8) and t[KC.G_PPAD]:
            out.append(("i32", int(t[KC.G_NT] * t[KC.G_PPAD]), go + int(t[KC.G_ACC])))
    return out


def _conv_scratch(plan):
    """Per CONV / QCONV program row: (label, absolute offset of its float32 scratch, of its int8
    scratch or -1, its x_zp), read back from the plan's tables."""
    from rtinfer import kernels_conv as KC
    from rtinfer.plan import C_I0, C_OP, C_T0, C_T2
    i32 = plan.image.view(np.int32)
    out = []
    for row, label in zip(plan.program, plan.row_labels):
        op, go = Op(int(row[C_OP])), int(row[C_I0])
        t = i32[go:go + KC.G_LEN]
        if op == Op.CONV:
            out.append((label, int(row[C_T2]), -1, 0))
        elif op == Op.QCONV:
            out.append((label, int(row[C_T2]) + int(t[KC.G_FS]), int(row[C_T0]) + int(t[KC.G_COLS]), int(t[KC.G_XZP])))
    return out


def test_convolutions_of_one_geometry_share_their_scratch():
    """Layers whose kernels touch the same scratch elements (kernels_conv, Scratch: the same
    geometry and path, the same prefilled margins) get one scratch: three 3 x 3 layers of one
    shape (int8: the two whose inputs share the zero point after a ReLU) and two depthwise layers
    (after ReLUs: in int8 their padding quads hold that zero point);
    the layer of the same shapes padded otherwise, and the 1 x 1 one, keep their own. The model
    still gives the reference's bits (int8) and values (float32), sample after sample (each
    layer finds the other's copies in the shared scratch) and in blocks."""
    pad = ((1, 1), (2, 0))  # the output shape and scratch size of padding=1, other margins
    model = CNN((8, 12, 12), [Conv2D(8, 8, 3, padding=1), Activation("relu"), Conv2D(8, 8, 3, padding=1),
                              Activation("relu"), Conv2D(8, 8, 3, padding=1), Activation("relu"),
                              Conv2D(8, 8, 3, padding=pad), Activation("relu"),
                              Conv2D(8, 8, 3, padding=1, groups=8), Activation("relu"), Conv2D(8, 8, 1),
                              Activation("relu"), Conv2D(8, 8, 3, padding=1, groups=8), Activation("relu"),
                              GlobalAvgPool(), Dense(8, 3)], seed=8)
    model.output = "identity"  # the int8 model's outputs are then dequantized codes, comparable bit for bit
    X = np.random.default_rng(9).normal(size=(6,) + model.input_shape).astype(np.float32)
    for fm in (export.freeze(model), export.freeze(model, dtype="int8", calibration=X, reduce_range=True)):
        rt = rtinfer.load(fm)
        sc = _conv_scratch(rt.plan)
        assert len(sc) == 7
        f32 = [at for _, at, _, _ in sc]
        i8 = [at for _, _, at, _ in sc]
        if fm.layers[0].op == Op.CONV:
            assert f32[0] == f32[1] == f32[2], sc
        else:  # the first layer reads the model's input zero point, the next two a ReLU's
            assert sc[1][3] == sc[2][3] and (f32[1], i8[1]) == (f32[2], i8[2]), sc
        assert f32[3] not in f32[:3] and f32[3] not in f32[4:], sc  # other padding
        assert f32[4] == f32[6] and f32[5] not in f32[:5] + f32[6:], sc  # the depthwise pair; the 1 x 1
        assert rt.plan.shared_scratch_bytes > 0 and f"{rt.plan.shared_scratch_bytes} B less" in rt.plan.describe()
        want = reference.run(fm, X)
        got = np.stack([rt.predict_one(x) for x in X])
        if any(layer.op == Op.QCONV for layer in fm.layers):
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(rt.predict(X), got)
        np.testing.assert_array_equal(rt.stream(X), got)


@pytest.mark.parametrize("quads", [True, False])
def test_int16_pairs_take_the_copies_where_quads_do_not_pay(monkeypatch, quads):
    """The planner's choice for an int8 layer whose B rows are copies (3 x 3 stride 1: shifted
    plane copies; 5 x 5 with ow < w: column windows): uint8 quads packed from the copies where
    they outrun the int16 pairs (kernels_tile.QUADS_FOR_COPIES), else the pairs read the copies
    in place, no packing and no work. A pointwise layer reads its input planes and keeps the
    quads either way. Every choice gives the reference's bits."""
    from rtinfer import kernels_conv as KC
    from rtinfer import kernels_tile as T
    from rtinfer.plan import C_I0, C_OP
    if "avx2" not in T.target_features():
        pytest.skip("the uint8-quad tiles need AVX2")
    monkeypatch.setattr(T, "QUADS_FOR_COPIES", quads)
    model = CNN((16, 14, 14), [Conv2D(16, 16, 3, padding=1), Activation("relu"), Conv2D(16, 16, 5),
                               Activation("relu"), Conv2D(16, 16, 1), Activation("relu"), GlobalAvgPool(),
                               Dense(16, 3)], seed=10)
    model.output = "identity"
    X = np.random.default_rng(11).normal(size=(4,) + model.input_shape).astype(np.float32)
    fm = export.freeze(model, dtype="int8", calibration=X, reduce_range=True)
    rt = rtinfer.load(fm)
    i32 = rt.plan.image.view(np.int32)
    tables = [i32[int(r[C_I0]):int(r[C_I0]) + KC.G_LEN] for r in rt.plan.program if Op(int(r[C_OP])) == Op.QCONV]
    assert [int(t[KC.G_BMODE]) for t in tables[:2]] == [KC.BM_SHIFT, KC.BM_WINDOW]
    copies = KC.PATH_GEMM_U8 if quads else KC.PATH_GEMM
    assert [int(t[KC.G_PATH]) for t in tables] == [copies, copies, KC.PATH_GEMM_U8]
    assert ("uint8 quads" in KC.kernel_name(tables[0], True)) == quads
    np.testing.assert_array_equal(np.stack([rt.predict_one(x) for x in X]), reference.run(fm, X))


def test_convolutions_share_one_work_region(monkeypatch):
    """Every convolution's work (the int8 GEMM's packed B rows, Winograd's V and M) is one region
    per section, as large as the largest layer's (a small one first, so neither the first nor the
    last layer's size is enough), after every table and scratch; the model still gives the
    reference's bits (int8) and values (float32), sample by sample and in blocks. The 3 x 3
    layers pack their copies into uint8 quads, as the planner has them do where quads pay
    (kernels_tile.QUADS_FOR_COPIES: not on a Zen 2)."""
    from rtinfer import kernels_tile as T
    from rtinfer.plan import C_I0, C_OP
    monkeypatch.setattr(T, "QUADS_FOR_COPIES", True)
    model = CNN((16, 32, 32), [Conv2D(16, 16, 1), Activation("relu"), Conv2D(16, 16, 3, padding=1), Activation("relu"),
                               Conv2D(16, 16, 3, padding=1), Activation("relu"), Conv2D(16, 24, 3, stride=2, padding=1),
                               Activation("relu"), GlobalAvgPool(), Dense(24, 3)], seed=6)
    X = np.random.default_rng(7).normal(size=(5,) + model.input_shape).astype(np.float32)
    # reduce_range: 7-bit weights, which the uint8-quad tiles take on AVX2 too (packed rows each)
    for fm in (export.freeze(model), export.freeze(model, dtype="int8", calibration=X, reduce_range=True)):
        rt = rtinfer.load(fm)
        work = _conv_work(rt.plan)
        need = {}
        for sec, n, at in work:
            need.setdefault(sec, []).append((n, at))
        assert rt.plan.work_bytes == 4 * sum(max(n for n, _ in v) for v in need.values())
        for sec, v in need.items():
            assert len({at for _, at in v}) == 1, v  # one region
        if any(layer.op == Op.QCONV for layer in fm.layers):
            sizes = [n for n, _ in need["i32"]]
            assert len(sizes) == 4 and sizes[0] < max(sizes) and sizes[-1] < max(sizes)
            at = need["i32"][0][1]
            i32_tables = [int(r[C_I0]) for r in rt.plan.program if Op(int(r[C_OP])) == Op.QCONV]
            assert at > max(i32_tables)  # after the tables
            np.testing.assert_array_equal(rt.predict(X), reference.run(fm, X))
        else:
            np.testing.assert_allclose(rt.predict(X), reference.run(fm, X), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(rt.stream(X), rt.predict(X))
        assert rt.plan.work_bytes < rt.plan.weight_bytes
