"""The BLAS batch path of Runtime.predict (batch="auto", rtinfer.batch) against the exact path
(batch="exact", the compiled interpreter in blocks) and the NumPy reference executor.

fp32: auto within 1e-5 (relative, with an absolute floor of 1e-5) of exact and of the reference;
int8: auto bit-identical to exact and to the reference through each QDENSE strategy: the AVX2
u8s8 GEMM (rtinfer.kernels_gemm, where its no-saturation bound holds), the float32 BLAS GEMM
(also forced on every int8 model, and at its 2^24 bound driven by extreme inputs) and the exact
kernel (both bounds fail). Batch sizes straddle AUTO_MIN_BATCH and CHUNK. The auto runtimes under test have their
work threshold (AUTO_MIN_WORK, a speed heuristic) set to 0 so that small models exercise BLAS too.
"""

from __future__ import annotations

import numpy as np
import pytest

import rtinfer
from rtinfer import quant, reference
from rtinfer._testmodels import fp32_mlp, int8_mlp
from rtinfer import kernels as K
from rtinfer import kernels_gemm as U8
from rtinfer.kernels_tile import quads_exact_any
from rtinfer.batch import (AUTO_MIN_BATCH, AUTO_MIN_WORK, CHUNK, F32_EXACT_INT, BatchPath, qdense_gemm_exact,
                           u8s8_available)
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Act, Op
from rtinfer.runtime import Runtime

SIZES = (0, 1, 31, 32, 33, 255, 256, 257, 1000)
N = max(SIZES)
assert AUTO_MIN_BATCH == 32 and CHUNK == 256  # SIZES straddle both


def _qdense_model(n_in, Wq, x_scale=0.05, x_zp=3, then_small=True, seed=0) -> FrozenModel:
    """QUANTIZE -> QDENSE(Wq (n_in, n_out) int8) [-> QDENSE n_out -> 5] -> DEQUANTIZE."""
    rng = np.random.default_rng(seed)
    bb = BufferBuilder()
    n_out = Wq.shape[1]
    layers = [Layer(Op.QUANTIZE, (n_in,), (n_in,), attrs={"y_scale": x_scale, "y_zp": x_zp})]
    w_scale = np.full(n_out, 1e-3, np.float32)
    y_scale, y_zp = 0.5, -7
    layers.append(Layer(Op.QDENSE, (n_in,), (n_out,), tensors={
        "W": bb.add(Wq), "b": bb.add(rng.integers(-5000, 5000, n_out).astype(np.int32)),
        "w_scale": bb.add(w_scale)},
        attrs={"x_scale": x_scale, "x_zp": x_zp, "y_scale": y_scale, "y_zp": y_zp}, name="big"))
    last = n_out
    if then_small:
        W2 = rng.integers(-127, 128, (n_out, 5)).astype(np.int8)
        layers.append(Layer(Op.QDENSE, (n_out,), (5,), tensors={
            "W": bb.add(W2), "b": bb.add(rng.integers(-100, 100, 5).astype(np.int32)),
            "w_scale": bb.add(np.full(5, 0.01, np.float32))},
            attrs={"x_scale": y_scale, "x_zp": y_zp, "y_scale": 0.3, "y_zp": 2, "qmin": 2}, name="small"))
        last, y_scale, y_zp = 5, 0.3, 2
    layers.append(Layer(Op.DEQUANTIZE, (last,), (last,), attrs={"x_scale": y_scale, "x_zp": y_zp}))
    return FrozenModel(tuple(layers), bb.finish(), (n_in,), (last,))


def _signs(shape, seed):
    return np.where(np.random.default_rng(seed).random(shape) < 0.5, -1, 1)


def _reduce_range_mlp(sizes, activation="relu", output="identity", seed=0):
    """A trained-model-shaped int8 MLP frozen with reduce_range=True (weights in [-63, 63])."""
    from export import freeze
    from rtinfer.train import MLP
    model = MLP(list(sizes), activation=activation, output=output, seed=seed, init="he")
    cal = np.random.default_rng(seed + 1).standard_normal((256, sizes[0]))
    return freeze(model, "int8", calibration=cal, reduce_range=True)


def _bound_fails_weights(n_in=1100, n_out=8, seed=1):
    # all codes +-127: 128 * 127 * 1100 > 2^24 for every column
    return (127 * np.where(np.random.default_rng(seed).random((n_in, n_out)) < 0.5, -1, 1)).astype(np.int8)


def _at_bound_weights(n_out=6):
    # column sums of |W| exactly 2^24 / 128 = 131072 = 1032 * 127 + 8 (signs mixed per column)
    W = np.full((1033, n_out), 127, np.int8)
    W[-1, :] = 8
    W[::2, 1::2] *= -1
    return W


FP32 = {
    # every activation but EXP, which multiplies its input's last-bit differences (another summation
    # order on the batch path) by |x|: no relative bound of 1e-5 holds through it
    **{f"act_{a.name.lower()}": lambda a=a: fp32_mlp([13, 37, 9], acts=[a, Act.IDENTITY], head=None)
       for a in Act if a != Act.EXP},
    "hidden_acts": lambda: fp32_mlp([20, 24, 16, 7], acts=[Act.LEAKY_RELU, Act.CLIP, Act.SIGMOID], head=None,
                                    act_params=[{"alpha": 0.2}, {"alpha": -0.5, "beta": 0.7}, {}]),
    "softmax_affine_reshape": lambda: fp32_mlp([16, 65, 10], head="softmax", affine_in=True, reshape_in=(4, 4)),
    "log_softmax_inner_axis": lambda: fp32_mlp([12, 30], acts=[Act.IDENTITY], head="log_softmax", axis=(2, 5, 3)),
    "mnist_shape": lambda: fp32_mlp([784, 128, 64, 10], head="softmax"),
}
FP32_ARGMAX = {"argmax": lambda: fp32_mlp([20, 16, 10], head="argmax")}
INT8 = {  # DEQUANTIZE or ARGMAX last: exact against the reference too
    "int8_relu": lambda: int8_mlp([20, 33, 10], head=None),
    "int8_lut_argmax": lambda: int8_mlp([20, 17, 10], lut=np.tanh, head="argmax"),
    "int8_mnist_shape": lambda: int8_mlp([784, 128, 64, 10], lut=np.tanh, head=None),
    "int8_bound_fails": lambda: _qdense_model(1100, _bound_fails_weights()),
    "int8_at_bound": lambda: _qdense_model(1033, _at_bound_weights(), x_scale=0.01, x_zp=0),
    # u8s8 GEMM: odd widths (quad and pair padding), outputs not a multiple of 16
    "int8_rr_relu": lambda: _reduce_range_mlp([37, 33, 17, 10]),
    "int8_rr_wide": lambda: _reduce_range_mlp([784, 128, 64, 10], seed=2),
    # u8s8 bound holds (|w| <= 63), float32 bound fails (128 * 63 * 2100 > 2^24)
    "int8_u8_only": lambda: _qdense_model(2100, (63 * _signs((2100, 19), 3)).astype(np.int8)),
    # pairs summing to exactly 128 (64 + 64): the largest u8s8 accepts, at full input range
    "int8_u8_pairs_at_bound": lambda: _qdense_model(40, (64 * _signs((40, 24), 4)).astype(np.int8),
                                                    x_scale=0.01, x_zp=0, then_small=False),
}
INT8_SOFTMAX = {"int8_softmax": lambda: int8_mlp([20, 17, 10], lut=np.tanh, head="softmax"),
                "int8_rr_tanh_softmax": lambda: _reduce_range_mlp([37, 33, 10], "tanh", "softmax")}
MODELS = {**FP32, **FP32_ARGMAX, **INT8, **INT8_SOFTMAX}


def _auto(fm):
    """A batch="auto" runtime that takes the BLAS path whatever the model's size."""
    rt = rtinfer.load(fm)
    rt._auto_min_work = 0
    return rt


def _X(fm, n=N, seed=0):
    X = 2.0 * np.random.default_rng(seed).standard_normal((n,) + fm.input_shape)
    return X.astype(np.float32)


@pytest.fixture(scope="module")
def built():
    out = {}
    for name, make in MODELS.items():
        fm = make()
        X = _X(fm)
        if name in ("int8_at_bound", "int8_u8_pairs_at_bound"):  # inputs at both ends of the int8 range
            X[:N // 2] = -100.0
            X[N // 2:] = np.where(np.arange(fm.input_size) % 2 == 0, -100.0, 100.0)
        auto, exact = _auto(fm), rtinfer.load(fm, batch="exact")
        out[name] = (fm, auto, exact, X, exact.predict(X), reference.run(fm, X))
        if name in INT8 or name in INT8_SOFTMAX:  # the same model with u8s8 disabled
            f32 = _auto(fm)
            f32._blas, f32._blas_built = BatchPath.build(f32.plan, int8_gemm="f32"), True
            out[name + ":f32"] = (fm, f32) + out[name][2:]
        if name in FP32 or name in FP32_ARGMAX:  # the same model with BLAS for DENSE
            blas = _auto(fm)
            blas._blas, blas._blas_built = BatchPath.build(blas.plan, dense_gemm="blas"), True
            out[name + ":blas"] = (fm, blas) + out[name][2:]
    return out


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(FP32) + [n + ":blas" for n in FP32])
def test_fp32_auto_close_to_exact_and_reference(built, name):
    fm, auto, exact, X, Ye, R = built[name]
    _close(Ye, R)
    for n in SIZES:
        Ya = auto.predict(X[:n])
        assert Ya.shape == (n,) + fm.output_shape and Ya.dtype == np.float32
        _close(Ya, Ye[:n])
        _close(Ya, R[:n])
        if n < AUTO_MIN_BATCH:  # the exact path, bit for bit
            assert np.array_equal(Ya, Ye[:n])
    assert auto._blas is not None  # the BLAS path ran


@pytest.mark.parametrize("name", list(INT8) + [n + ":f32" for n in INT8] + list(FP32_ARGMAX)
                         + [n + ":blas" for n in FP32_ARGMAX])
def test_int8_and_argmax_auto_identical_to_exact_and_reference(built, name):
    fm, auto, exact, X, Ye, R = built[name]
    assert np.array_equal(Ye, R.astype(Ye.dtype))
    for n in SIZES:
        Ya = auto.predict(X[:n])
        assert Ya.dtype == Ye.dtype and Ya.shape == (n,) + fm.output_shape
        assert np.array_equal(Ya, Ye[:n]), f"batch of {n}"
        assert np.array_equal(auto.predict(X[N - n:]), Ye[N - n:]), f"last {n}"


@pytest.mark.parametrize("name", list(INT8_SOFTMAX) + [n + ":f32" for n in INT8_SOFTMAX])
def test_int8_softmax_head_auto_identical_to_exact(built, name):
    fm, auto, exact, X, Ye, R = built[name]
    for n in SIZES:
        assert np.array_equal(auto.predict(X[:n]), Ye[:n])
    _close(Ye, R)


def test_int8_stream_and_predict_one_identical_to_auto(built):
    fm, auto, exact, X, Ye, R = built["int8_mnist_shape"]
    Xs = X[:300]
    Ya = auto.predict(Xs)
    assert np.array_equal(auto.stream(Xs), Ya)
    assert np.array_equal(np.stack([auto.predict_one(x) for x in Xs[:40]]), Ya[:40])


def test_each_qdense_takes_the_expected_strategy(built):
    def kinds(name):
        return built[name][1]._blas_path().row_kinds
    u8 = "u8s8" if u8s8_available() else "f32-blas"
    if u8s8_available() and quads_exact_any():
        # VNNI: vpdpbusd sums any int8 weights exactly, so every QDENSE takes the u8s8 GEMM
        for name in ("int8_bound_fails", "int8_at_bound", "int8_u8_only", "int8_u8_pairs_at_bound",
                     "int8_rr_wide", "int8_relu"):
            assert set(kinds(name).values()) == {"u8s8"}, name
        assert built["int8_bound_fails"][1]._blas_path().fallback_rows == []
    else:
        # row 0 is QUANTIZE; the 1100-input layer fails both bounds, the small one is +-127 (u8s8 fails)
        assert kinds("int8_bound_fails") == {1: "exact", 2: "f32-blas"}
        assert built["int8_bound_fails"][1]._blas_path().fallback_rows == [1]
        assert kinds("int8_at_bound") == {1: "f32-blas", 2: "f32-blas"}
        assert kinds("int8_u8_only") == {1: u8 if u8s8_available() else "exact", 2: "f32-blas"}
        assert kinds("int8_u8_pairs_at_bound") == {1: u8}
        assert set(kinds("int8_rr_wide").values()) == {u8}
        assert set(kinds("int8_relu").values()) == {"f32-blas"}  # int8_mlp weights reach +-127
    assert set(kinds("int8_rr_wide:f32").values()) == {"f32-blas"}
    assert set(kinds("mnist_shape").values()) == {"f32-tiled"}
    assert set(kinds("mnist_shape:blas").values()) == {"f32-blas"}


def test_at_bound_inputs_really_reach_the_bound(built):
    """The at-bound model's first accumulators reach 2^24 in magnitude (the exactness limit)."""
    fm, auto, exact, X, Ye, R = built["int8_at_bound"]
    q = quant.quantize(X, 0.01, 0).astype(np.int64)
    W = fm.tensor(fm.layers[1], "W").astype(np.int64)
    assert np.abs(q @ W).max() == F32_EXACT_INT


def test_qdense_gemm_exact_bound():
    W = _at_bound_weights().T  # (n_out, n_in)
    assert qdense_gemm_exact(W)
    W = W.copy()
    W[0, -1] = 9
    assert not qdense_gemm_exact(W)
    assert qdense_gemm_exact(np.full((4, 1032), -127, np.int8))  # n_in <= 1032 always passes
    assert not qdense_gemm_exact(np.full((4, 1033), -127, np.int8))


@pytest.mark.parametrize("name", ["mnist_shape", "argmax", "int8_lut_argmax", "int8_mnist_shape"])
def test_out_argument(built, name):
    fm, auto, exact, X, Ye, R = built[name]
    for n in (33, 257, N):
        out = np.full((n,) + auto.output_shape, 7, dtype=auto.output_dtype)
        res = auto.predict(X[:n], out=out)
        assert res is out
        if out.dtype == np.float32 and not name.startswith("int8"):
            _close(out, Ye[:n])
        else:
            assert np.array_equal(out, Ye[:n])


def test_path_is_built_once_on_first_large_batch():
    fm = fp32_mlp([10, 12, 3], head=None)
    rt = _auto(fm)
    X = _X(fm, 100)
    rt.predict(X[:AUTO_MIN_BATCH - 1])
    assert not rt._blas_built
    Y = rt.predict(X)
    path = rt._blas
    assert path is not None and path.nbytes > 0
    rt.predict(_X(fm, 300, seed=5) * 30)  # other data through the same buffers
    assert rt._blas is path
    assert np.array_equal(rt.predict(X), Y)
    assert np.array_equal(_auto(fm).predict(X), Y)  # a fresh runtime, the same bits


def test_models_without_dense_take_the_exact_path():
    bb = BufferBuilder()
    s, t = bb.add(np.linspace(0.5, 2, 6).astype(np.float32)), bb.add(np.zeros(6, np.float32))
    fm = FrozenModel((Layer(Op.AFFINE, (6,), (6,), Act.TANH, {"s": s, "t": t}),
                      Layer(Op.SOFTMAX, (6,), (6,), attrs={"axis_len": 6})), bb.finish(), (6,), (6,))
    rt = _auto(fm)
    X = _X(fm, 64)
    assert np.array_equal(rt.predict(X), rtinfer.load(fm, batch="exact").predict(X))
    assert rt._blas_built and rt._blas is None
    assert BatchPath.build(rt.plan) is None


def test_nonfinite_policy_applies_to_the_auto_path():
    fm = fp32_mlp([10, 12, 3], head=None)
    rt = _auto(fm)
    X = _X(fm, 64)
    X[40, 3] = np.nan
    with pytest.raises(ValueError, match="expected finite inputs"):
        rt.predict(X)
    Y = rt.predict(X, nonfinite="allow")
    assert np.isnan(Y[40]).all() and np.isfinite(np.delete(Y, 40, axis=0)).all()


@pytest.mark.parametrize("bad", ["fast", "AUTO", "", None, 1, True])
def test_batch_option_validation(bad):
    fm = fp32_mlp([4, 3], head=None)
    with pytest.raises(ValueError, match=r"batch must be one of \('auto', 'exact'\)"):
        rtinfer.load(fm, batch=bad)
    with pytest.raises(ValueError, match="batch must be one of"):
        Runtime(fm, batch=bad)


def test_batch_option_is_kept():
    fm = fp32_mlp([4, 3], head=None)
    assert rtinfer.load(fm).batch == "auto"
    assert rtinfer.load(fm, batch="exact").batch == "exact"


def test_small_work_takes_the_exact_path_by_default(built):
    """Below AUTO_MIN_WORK MACs per call the default auto runtime is the exact path, bit for bit;
    above it (and from AUTO_MIN_BATCH samples) it is the BLAS path."""
    fm, _, exact, X, Ye, R = built["softmax_affine_reshape"]
    rt = rtinfer.load(fm)
    n = AUTO_MIN_WORK // fm.macs  # the largest batch of this model below the threshold
    assert AUTO_MIN_BATCH < n < N
    assert np.array_equal(rt.predict(X[:n]), Ye[:n]) and not rt._blas_built
    _close(rt.predict(X[:n + 1]), Ye[:n + 1])
    assert rt._blas is not None
    fm, _, exact, X, Ye, R = built["mnist_shape"]
    rt = rtinfer.load(fm)
    assert AUTO_MIN_BATCH * fm.macs >= AUTO_MIN_WORK
    assert np.array_equal(rt.predict(X[:AUTO_MIN_BATCH - 1]), Ye[:AUTO_MIN_BATCH - 1])
    assert not rt._blas_built
    _close(rt.predict(X[:AUTO_MIN_BATCH]), Ye[:AUTO_MIN_BATCH])
    assert rt._blas is not None


@pytest.mark.parametrize("name", ["mnist_shape", "argmax", "int8_mnist_shape", "int8_lut_argmax"])
def test_auto_call_allocates_no_buffers(built, name):
    """Once built, a predict call with out= allocates no chunk-sized memory (NumPy's tracemalloc
    hooks see every array buffer; only small view objects remain)."""
    import tracemalloc
    fm, auto, exact, X, Ye, R = built[name]
    out = np.empty((N,) + auto.output_shape, dtype=auto.output_dtype)
    auto.predict(X, out=out)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        auto.predict(X, out=out)
        cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 4096, f"{peak - base} bytes at peak during one call"
    assert cur - base <= 0


@pytest.mark.skipif(not u8s8_available(), reason="the u8s8 GEMM needs x86 AVX2")
@pytest.mark.parametrize("n_in,n_out,m", [(1, 1, 4), (3, 5, 4), (37, 17, 12), (64, 16, 256), (130, 33, 8), (9, 50, 8)])
def test_u8s8_gemm_matches_its_twin(n_in, n_out, m):
    rng = np.random.default_rng(n_in * 1000 + n_out)
    W = rng.integers(-64, 65, (n_in, n_out)).astype(np.int8)  # |w| <= 64: pair sums <= 128
    W[:2, 0] = 64
    W[:2, -1] = -64  # pairs at the bound: 255 * 128 = 32640, the largest sums that do not saturate
    assert U8.u8s8_exact(W)
    Bp, nq, nblk = U8.pack_weights(W)
    lda, ldc = 4 * nq, U8.TILE_J * nblk
    A = rng.integers(0, 256, m * lda).astype(np.uint8)
    A[:lda] = 255  # the extreme sample: every pair sum at its largest magnitude
    C = np.full(m * ldc, -1, np.int32)
    U8.gemm_u8s8(A, lda, Bp, nq, nblk, C, ldc, m)
    want = np.full(m * ldc, -2, np.int32)
    U8.gemm_u8s8_ref(A, lda, Bp, nq, nblk, want, ldc, m)
    assert np.array_equal(C, want)
    direct = A.reshape(m, lda)[:, :n_in].astype(np.int64) @ W.astype(np.int64)
    assert np.array_equal(C.reshape(m, ldc)[:, :n_out], direct)


def test_u8s8_exact_bound():
    W = np.array([[64, -64], [64, -64], [127, 0]], np.int8)  # pairs (64, 64) and (127, pad 0)
    assert U8.u8s8_exact(W)
    W[1, 0] = 65
    assert not U8.u8s8_exact(W)
    assert not U8.u8s8_exact(np.array([[0], [0], [-127], [-2]], np.int8))
    assert U8.u8s8_exact(np.full((5, 3), -63, np.int8))  # reduce_range weights always pass


@pytest.mark.parametrize("n_in,n_out,m", [(1, 1, 1), (3, 17, 7), (37, 16, 13), (64, 33, 256), (130, 5, 6), (20, 80, 13)])
def test_dense_f32_tiled_matches_its_twin_and_ignores_batch_size(n_in, n_out, m):
    rng = np.random.default_rng(n_in + 7 * n_out)
    W = rng.standard_normal((n_in, n_out)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    X = rng.standard_normal(m * n_in).astype(np.float32)
    Wp, nblk = U8.pack_f32(W)
    tile = np.zeros((U8.FT_S + 1) * U8.TILE_J, np.float32)
    for relu in (False, True):
        Y = np.full(m * n_out + 3, 7.0, np.float32)  # the 3 past the end stay untouched
        U8.dense_f32_tiled(X, 0, Wp, 0, n_in, n_out, nblk, b, 0, Y, 0, m, relu, tile)
        assert (Y[m * n_out:] == 7.0).all()
        want = np.zeros(m * n_out, np.float32)
        U8.dense_f32_tiled_ref(X, 0, Wp, 0, n_in, n_out, nblk, b, 0, want, 0, m, relu)
        np.testing.assert_allclose(Y[:m * n_out], want, rtol=1e-6, atol=1e-6)
        ref = np.maximum(X.reshape(m, n_in).astype(np.float64) @ W + b, 0 if relu else -np.inf)
        np.testing.assert_allclose(Y[:m * n_out].reshape(m, n_out), ref, rtol=1e-5, atol=1e-5)
        for k in range(m):  # one sample at a time (tiles of 1 row): the same bits
            y1 = np.zeros(n_out, np.float32)
            U8.dense_f32_tiled(X, k * n_in, Wp, 0, n_in, n_out, nblk, b, 0, y1, 0, 1, relu, tile)
            assert np.array_equal(y1, Y[k * n_out:(k + 1) * n_out])


@pytest.mark.parametrize("n_in,n_out", [(1, 32), (3, 33), (16, 32), (37, 64), (64, 65), (5, 84), (29, 120),
                                         (130, 128), (7, 200), (64, 16), (9, 3)])
def test_dense_f32_wide_matches_the_tiled_kernel_bit_for_bit(n_in, n_out):
    """dense_f32_wide (one sample, up to 4 blocks of 16 outputs per micro-kernel call) runs each
    output's FMA chain of dense_f32_tiled: the same bits, at any offsets, for 1..4 blocks per
    call and a partial last block, and nothing written outside y; its twin within 1e-6."""
    rng = np.random.default_rng(3 * n_in + n_out)
    W = rng.standard_normal((n_in, n_out)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    Wp, nblk = U8.pack_f32(W)
    bp = U8.pack_bias(b)
    assert bp.size == 16 * nblk and np.array_equal(bp[:n_out], b) and not bp[n_out:].any()
    assert np.array_equal(U8.unpack_f32(Wp, n_in, n_out), W)
    tile = np.zeros((U8.FT_S + 1) * U8.TILE_J, np.float32)
    for m in (1, 3, 8):  # 8: two rows of the batch tiles (6 + 2) for the full blocks
        X = rng.standard_normal(m * n_in + 5).astype(np.float32)
        Wo = np.concatenate([np.full(16, np.nan, np.float32), Wp])  # offsets 16 and 3: honoured
        bo = np.concatenate([np.full(3, np.nan, np.float32), bp])
        for relu in (False, True):
            Y = np.full(m * n_out + 4 + 64, 7.0, np.float32)  # guards: a whole block past y
            U8.dense_f32_wide(X, 5, Wo, 16, n_in, n_out, bo, 3, Y, 4, m, relu)
            assert (Y[:4] == 7.0).all() and (Y[4 + m * n_out:] == 7.0).all()  # only y is written
            want = np.zeros(m * n_out, np.float32)
            U8.dense_f32_tiled(X, 5, Wp, 0, n_in, n_out, nblk, b, 0, want, 0, m, relu, tile)
            assert np.array_equal(Y[4:4 + m * n_out], want)
            twin = np.zeros(m * n_out, np.float32)
            U8.dense_f32_tiled_ref(X, 5, Wp, 0, n_in, n_out, nblk, b, 0, twin, 0, m, relu)
            np.testing.assert_allclose(Y[4:4 + m * n_out], twin, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (5, 32), (16, 33), (3, 8), (37, 84), (64, 16), (130, 200)])
def test_qdense_u8_wide_gives_qdense_i8s_bytes(n_in, n_out):
    """qdense_u8_wide ((x + 128) x W in u8 quads, one sample, up to 4 blocks of 16 outputs per
    call, the shifted bias) writes the int8 outputs of kernels.qdense_i8 (tested against its
    twin), at offsets, for inputs not a multiple of 4, pair sums at the u8s8 bound, every
    zero-point and clamp setting, and nothing outside y."""
    rng = np.random.default_rng(11 * n_in + n_out)
    W = rng.integers(-63, 64, (n_in, n_out)).astype(np.int8)
    W[: n_in // 2 * 2:2, 0] = 64  # pairs (64, 64) and (64, -64): 255 * 128 fits int16
    W[1: n_in // 2 * 2:2, 0] = 64 if n_out == 1 else -64
    assert U8.u8s8_exact(W)
    folded = rng.integers(-40000, 40000, n_out).astype(np.int32)
    M = (rng.random(n_out) * 0.02).astype(np.float32)
    Wp, nq, nblk = U8.pack_weights(W)
    assert np.array_equal(U8.unpack_weights(Wp, n_in, n_out), W)
    pad = 16 * nblk - n_out
    bias2 = np.concatenate([np.zeros(3), folded - 128 * W.astype(np.int64).sum(0), np.zeros(pad)]).astype(np.int32)
    Mp = np.concatenate([np.zeros(2), M, np.zeros(pad)]).astype(np.float32)
    _check_wide_qdense(U8.qdense_u8_wide, rng, W, Wp, bias2, Mp, folded, M)


def _check_wide_qdense(kernel, rng, W, Wp, bias, Mp, folded, M):
    """kernel (qdense_u8_wide / qdense_s16_wide, its bias at bias[3:] and M at Mp[2:]) writes
    kernels.qdense_i8's bytes for 1 and 3 samples, extreme codes, every zero-point and clamp
    setting, at offsets, and nothing outside y."""
    n_in, n_out = W.shape
    Wt = np.ascontiguousarray(W.T).reshape(-1)
    for m in (1, 3):
        for zp, lo, hi in [(0, -128, 127), (-7, -128, 127), (5, 5, 127), (10, -20, 40)]:
            buf = rng.integers(-128, 128, 9 + m * (n_in + n_out) + 6).astype(np.int8)
            buf[9:13] = [-128, 127, -128, 127]  # extreme codes
            so, do = 9, 9 + m * n_in + 2
            want = buf.copy()
            K.qdense_i8(want, so, Wt, 0, folded, 0, M, 0, want, do, n_in, n_out, m, zp, lo, hi)
            got = buf.copy()
            kernel(got, so, Wp, 0, n_in, n_out, bias, 3, Mp, 2, do, m, zp, lo, hi)
            assert np.array_equal(got, want), (m, zp, lo, hi)
            assert np.array_equal(got[:do], buf[:do]) and np.array_equal(got[do + m * n_out:], buf[do + m * n_out:])


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (5, 32), (16, 33), (3, 8), (37, 84), (64, 16), (130, 200)])
def test_qdense_s16_wide_gives_qdense_i8s_bytes(n_in, n_out):
    """qdense_s16_wide (x x W in int16 pairs, one vpmaddwd per pair and 8 outputs, up to 4 blocks
    of 16 outputs per call, the folded bias) writes the int8 outputs of kernels.qdense_i8 for
    full-range weights (pairs (-128, -128) and (127, 127) that saturate vpmaddubsw), odd input
    counts, every zero-point and clamp setting, at offsets, and nothing outside y."""
    rng = np.random.default_rng(13 * n_in + n_out)
    W = rng.integers(-128, 128, (n_in, n_out)).astype(np.int8)
    W[: n_in // 2 * 2, 0] = -128
    if n_out > 1:
        W[: n_in // 2 * 2, 1] = 127
    assert n_in < 2 or not U8.u8s8_exact(W)
    folded = rng.integers(-40000, 40000, n_out).astype(np.int32)
    M = (rng.random(n_out) * 0.02).astype(np.float32)
    Wp = U8.pack_pairs(W)
    assert Wp.dtype == np.int8 and np.array_equal(U8.unpack_pairs(Wp, n_in, n_out), W)
    pad = 16 * (-(-n_out // 16)) - n_out
    bias = np.concatenate([np.zeros(3), folded, np.zeros(pad)]).astype(np.int32)
    Mp = np.concatenate([np.zeros(2), M, np.zeros(pad)]).astype(np.float32)
    _check_wide_qdense(U8.qdense_s16_wide, rng, W, Wp, bias, Mp, folded, M)


def test_planner_packs_exact_int8_layers_and_the_runtime_stays_exact():
    """A QDENSE of >= QDENSE_WIDE_MIN_OUT outputs whose weights pass u8s8_exact (on VNNI: any
    weights) is packed (row C_I3 = 1) on AVX2 hosts and runs on qdense_u8_wide; one that does
    not is packed as int16 pairs (row C_I3 = 2, qdense_s16_wide) there; a narrower one, or any
    on a CPU without AVX2, keeps W transposed. Plan.qdense_weights gives back W in every layout;
    the runtime (one sample, stream, batch) matches the reference bit for bit."""
    from rtinfer.plan import C_I3, QDENSE_WIDE_MIN_OUT, build_plan
    import dataclasses
    assert QDENSE_WIDE_MIN_OUT <= 17
    fm = int8_mlp([33, 40, 17, 24, 5], head=None, seed=4)
    i8 = fm.buffers["i8"].copy()
    for lay in fm.layers:
        if lay.op == Op.QDENSE and lay.name != "qdense1":  # reduce-range weights: u8s8_exact
            ref = lay.tensors["W"]
            n = int(np.prod(ref.shape))
            i8[ref.offset:ref.offset + n] = np.clip(i8[ref.offset:ref.offset + n], -63, 63)
    q = dataclasses.replace(fm, buffers={**fm.buffers, "i8": i8})
    plan = build_plan(q)
    rows = [k for k in range(plan.n_ops) if int(plan.program[k][0]) == int(Op.QDENSE)]
    exact = [U8.u8s8_exact(q.tensor(lay, "W")) for lay in q.layers if lay.op == Op.QDENSE]
    assert exact == [True, False, True, True]
    fast = int(U8.available())
    # the second: quads only on VNNI (vpdpbusd sums any int8 weights exactly), int16 pairs on
    # AVX2 without it; the last: 5 outputs
    assert [int(plan.program[k][C_I3]) for k in rows] == [fast, fast * (1 if quads_exact_any() else 2), fast, 0]
    for k, lay in zip(rows, [lay for lay in q.layers if lay.op == Op.QDENSE]):
        assert np.array_equal(plan.qdense_weights(k), q.tensor(lay, "W"))
    rt = rtinfer.load(q)
    X = np.random.default_rng(6).standard_normal((300, 33)).astype(np.float32)
    want = reference.run(q, X)
    assert np.array_equal(np.stack([rt.predict_one(x) for x in X]), want)
    assert np.array_equal(rt.stream(X), want) and np.array_equal(rt.predict(X), want)


def test_planner_packs_wide_dense_layers_and_keeps_their_weights():
    """From plan.DENSE_WIDE_MIN_OUT outputs a float32 DENSE is packed (row C_I0 = 1) and runs on
    dense_f32_wide; narrower ones keep W transposed. Plan.dense_weights gives back each layer's
    W and b in either layout; a model of packed layers gives predict_one's bits in the batch
    path's tiled GEMM (the same FMA chains), and every layout agrees with the reference."""
    from rtinfer.plan import C_I0, DENSE_WIDE_MIN_OUT, build_plan
    sizes = [20, DENSE_WIDE_MIN_OUT + 1, 64, DENSE_WIDE_MIN_OUT - 1, 40]
    fm = fp32_mlp(sizes)
    plan = build_plan(fm)
    dense_rows = [k for k in range(plan.n_ops) if int(plan.program[k][0]) == int(Op.DENSE)]
    assert [int(plan.program[k][C_I0]) for k in dense_rows] == [1, 1, 0, 1]
    for k, layer in zip(dense_rows, [lay for lay in fm.layers if lay.op == Op.DENSE]):
        W, b = plan.dense_weights(k)
        assert np.array_equal(W, fm.tensor(layer, "W")) and np.array_equal(b, fm.tensor(layer, "b"))
    rt = rtinfer.load(fm)
    X = np.random.default_rng(5).standard_normal((300, 20)).astype(np.float32)
    one = np.stack([rt.predict_one(x) for x in X])
    np.testing.assert_allclose(one, reference.run(fm, X), rtol=1e-5, atol=1e-5)
    packed = fp32_mlp([20, 48, 32, 64])
    rp = rtinfer.load(packed)
    assert np.array_equal(rp.predict(X), np.stack([rp.predict_one(x) for x in X]))


def test_fp32_auto_results_do_not_depend_on_the_batch(built):
    """The tiled float32 GEMM sums every output in input order: a sample's auto result is the
    same in any batch that takes the batch path."""
    fm, auto, exact, X, Ye, R = built["mnist_shape"]
    Y = auto.predict(X)
    for a, b in ((0, 32), (5, 300), (300, 1000), (1, 258)):
        assert np.array_equal(auto.predict(X[a:b]), Y[a:b])


@pytest.mark.parametrize("name", ["mnist_shape", "int8_rr_wide", "int8_relu"])
def test_read_only_input(built, name):
    fm, auto, exact, X, Ye, R = built[name]
    Xr = X[:300].copy()
    Xr.flags.writeable = False  # e.g. np.load(..., mmap_mode="r")
    assert np.array_equal(auto.predict(Xr), auto.predict(X[:300]))
