"""The compiled runtime against the NumPy reference executor, and its input boundary.

fp32: within 1e-5 relative of rtinfer.reference (relative to the size of the summed terms);
int8: identical codes (models ending in DEQUANTIZE compare exactly). predict, stream and
predict_one must agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

import rtinfer
from rtinfer import reference
from rtinfer._testmodels import fp32_mlp, int8_mlp
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Act, Op
from rtinfer.plan import BLOCK, PlanError, build_plan

N = 2 * BLOCK + 5  # not a multiple of the batch block


def _X(shape, n=N, seed=0, scale=1.5):
    return (scale * np.random.default_rng(seed).standard_normal((n,) + tuple(shape))).astype(np.float32)


def _assert_close(got, want, rtol=1e-5):
    """|got - want| <= rtol * (|want| + max |want| of the sample): relative, with outputs near
    zero (cancellation in a dot product) judged against the sample's output scale."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    err = np.abs(got - want)
    scale = np.abs(want).reshape(len(want), -1).max(axis=1).reshape((-1,) + (1,) * (want.ndim - 1))
    tol = rtol * (np.abs(want) + scale)
    assert (err <= tol).all(), f"max abs error {err.max()}, worst relative {(err / (tol / rtol)).max()}"


def _three_ways(rt, X):
    Yp = rt.predict(X)
    Ys = rt.stream(X)
    Y1 = np.stack([rt.predict_one(x) for x in X])
    assert np.array_equal(Yp, Ys), "predict and stream differ"
    assert np.array_equal(Yp, Y1), "predict and predict_one differ"
    assert Yp.dtype == rt.output_dtype and Yp.shape == (len(X),) + rt.output_shape
    return Yp


FP32_MODELS = {
    **{f"act_{a.name.lower()}": dict(sizes=[13, 17, 9], acts=[a, Act.IDENTITY], head=None) for a in Act},
    "act_last_tanh": dict(sizes=[7, 5, 3], acts=[Act.RELU, Act.TANH], head=None),
    "softmax": dict(sizes=[20, 16, 10], head="softmax"),
    "log_softmax": dict(sizes=[20, 16, 10], head="log_softmax"),
    "argmax": dict(sizes=[20, 16, 10], head="argmax"),
    "softmax_inner_axis": dict(sizes=[12, 30], acts=[Act.IDENTITY], head="softmax", axis=(2, 5, 3)),
    "argmax_inner_axis": dict(sizes=[12, 30], acts=[Act.IDENTITY], head="argmax", axis=(2, 5, 3)),
    "affine_reshape": dict(sizes=[16, 129, 3], head="softmax", affine_in=True, reshape_in=(4, 4)),
    "mnist_shape": dict(sizes=[784, 128, 64, 10], head="softmax"),
}


@pytest.mark.parametrize("name", sorted(FP32_MODELS))
def test_fp32_models_match_reference(name):
    kw = dict(FP32_MODELS[name])
    acts = kw.get("acts") or []
    if Act.CLIP in acts:
        kw["act_params"] = [{"alpha": -0.3, "beta": 0.4}, {}]
    if Act.LEAKY_RELU in acts:
        kw["act_params"] = [{"alpha": 0.2}, {}]
    fm = fp32_mlp(**kw)
    rt = rtinfer.load(fm, batch="exact")  # bit-identity of the three ways; auto: test_runtime_batch
    X = _X(fm.input_shape)
    Y = _three_ways(rt, X)
    want = reference.run(fm, X)
    if fm.output_dtype == "int64":
        assert Y.dtype == np.int64
        assert np.array_equal(Y, want)
    else:
        _assert_close(Y, want)


@pytest.mark.parametrize("relu,lut,head", [(True, None, None), (False, None, None), (True, np.tanh, None),
                                           (False, np.tanh, "softmax"), (True, None, "argmax")])
def test_int8_models_match_reference_exactly(relu, lut, head):
    fm = int8_mlp([33, 17, 129, 5], relu=relu, lut=lut, head=head, seed=3)
    rt = rtinfer.load(fm)
    X = _X(fm.input_shape, scale=1.0)
    X[0, :4] = [100.0, -100.0, 0.0, 1e-9]  # saturation
    Y = _three_ways(rt, X)
    want = reference.run(fm, X)
    if head == "softmax":
        _assert_close(Y, want)  # the float softmax: within float32 tolerance
        # the int8 part is exact: the same model without its head (same seed, same weights)
        # gives the reference's dequantized logits bit for bit
        logits = int8_mlp([33, 17, 129, 5], relu=relu, lut=lut, head=None, seed=3)
        assert [la.op for la in logits.layers] == [la.op for la in fm.layers[:-1]]
        Y, want = _three_ways(rtinfer.load(logits), X), reference.run(logits, X)
    assert np.array_equal(Y, want)


def test_int8_trace_exact_mnist_shape():
    fm = int8_mlp([784, 128, 64, 10], head=None, lut=np.tanh, seed=1)
    rt = rtinfer.load(fm)
    X = _X(fm.input_shape, n=50, scale=1.0)
    assert np.array_equal(rt.predict(X), reference.run(fm, X))


def test_reshape_only_model_copies():
    fm = FrozenModel((Layer(Op.RESHAPE, (2, 3), (6,)),), {}, (2, 3), (6,))
    rt = rtinfer.load(fm)
    X = _X((2, 3), n=5)
    assert np.array_equal(rt.predict(X), X.reshape(5, 6))
    assert np.array_equal(rt.predict_one(X[1]), X[1].reshape(6))


def test_output_shape_and_int64_argmax():
    fm = fp32_mlp([6, 8], acts=[Act.IDENTITY], head="argmax", axis=(2, 4, 1))
    rt = rtinfer.load(fm)
    assert rt.output_shape == (2,) and rt.output_dtype == np.int64
    X = _X((6,), n=9)
    y = rt.predict_one(X[0])
    assert y.dtype == np.int64 and y.shape == (2,)
    out = np.zeros(2, np.int64)
    assert rt.predict_one(X[3], out=out) is out
    assert np.array_equal(out, reference.run(fm, X[3:4])[0])
    out_b = np.zeros((9, 2), np.int64)
    assert rt.stream(X, out=out_b) is out_b
    assert np.array_equal(out_b, reference.run(fm, X))


def test_two_models_share_one_compilation():
    from rtinfer import interp
    rtinfer.load(fp32_mlp([5, 3], head=None)).predict(_X((5,), n=3))
    rtinfer.load(int8_mlp([9, 4], head="softmax")).predict(_X((9,), n=3))
    assert len(interp.execute_dense.signatures) == 1  # one compiled entry point serves every MLP


def test_runtimes_have_private_arenas():
    fm = fp32_mlp([10, 20, 4], head=None)
    a, b = rtinfer.load(fm), rtinfer.load(fm)
    X = _X((10,), n=3)
    ya = a.predict_one(X[0]).copy()
    b.predict_one(X[1])
    assert np.array_equal(a.predict_one(X[0]), ya)


def test_plan_reports_sizes():
    fm = fp32_mlp([784, 128, 64, 10], head="softmax")
    plan = build_plan(fm)
    assert plan.macs == 784 * 128 + 128 * 64 + 64 * 10
    assert plan.weight_bytes >= 4 * (784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10)
    # lifetimes: t1 (128) and t2 (64) live together at row 1; t3 (10, aligned to 16) reuses t1's place
    assert plan.arena_bytes == (128 + 64) * 4
    assert [t.offset for t in plan.tensors[1:4]] == [0, 128 * 4, 0]
    assert plan.n_ops == 4 and plan.program.shape == (4, 20)
    q = build_plan(int8_mlp([784, 128, 64, 10]))
    assert q.weight_bytes < plan.weight_bytes / 3  # int8 weights


# -- the boundary -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rt():
    return rtinfer.load(fp32_mlp([12, 8, 3], head="softmax"))


@pytest.mark.parametrize("bad,match", [
    (np.zeros((4, 11), np.float32), r"expected an input batch of shape \(N, 12\)"),
    (np.zeros((4, 12), np.float64), r"expected dtype float32, got float64"),
    (np.zeros((4, 12, 1), np.float32), r"expected an input batch of shape \(N, 12\), got shape \(4, 12, 1\)"),
    (np.zeros((4, 24), np.float32)[:, ::2], r"expected a C-contiguous array"),
    ([[0.0] * 12], r"expected a numpy.ndarray"),
])
def test_batch_boundary_errors(rt, bad, match):
    for fn in (rt.predict, rt.stream):
        with pytest.raises(ValueError, match=match):
            fn(bad)


@pytest.mark.parametrize("bad,match", [
    (np.zeros(11, np.float32), r"expected one sample of shape \(12,\), got shape \(11,\)"),
    (np.zeros(12, np.float64), r"expected dtype float32, got float64"),
    (np.zeros((1, 12, 1), np.float32), r"expected one sample of shape \(12,\)"),
    (np.zeros(24, np.float32)[::2], r"expected a C-contiguous array"),
    ([0.0] * 12, r"expected a numpy.ndarray"),
])
def test_predict_one_boundary_errors(rt, bad, match):
    with pytest.raises(ValueError, match=match):
        rt.predict_one(bad)


def test_bad_out_arrays(rt):
    x = np.zeros(12, np.float32)
    with pytest.raises(ValueError, match="expected out"):
        rt.predict_one(x, out=np.zeros(3, np.float64))
    with pytest.raises(ValueError, match="expected out"):
        rt.predict_one(x, out=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="expected out"):
        rt.predict(np.zeros((2, 12), np.float32), out=np.zeros((3, 3), np.float32))


def test_nonfinite_policy(rt):
    X = _X((12,), n=6)
    X[4, 7] = np.nan
    with pytest.raises(ValueError, match=r"expected finite inputs, got nan at sample 4, element 7"):
        rt.predict(X)
    with pytest.raises(ValueError, match="expected finite inputs"):
        rt.stream(X)
    with pytest.raises(ValueError, match="expected finite inputs, got inf at element 2"):
        x = np.zeros(12, np.float32)
        x[2] = np.inf
        rt.predict_one(x)
    Y = rt.predict(X, nonfinite="allow")
    assert np.isnan(Y[4]).all() and np.isfinite(Y[:4]).all()
    assert np.isnan(rt.predict_one(X[4], nonfinite="allow")).all()
    lenient = rtinfer.load(fp32_mlp([12, 8, 3], head="softmax"), nonfinite="allow")
    assert np.isnan(lenient.stream(X)[4]).all()
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        rt.predict(X, nonfinite="ignore")


def test_empty_batch(rt):
    assert rt.predict(np.zeros((0, 12), np.float32)).shape == (0, 3)


def test_flat_samples_accepted_for_shaped_inputs():
    fm = fp32_mlp([16, 4], acts=[Act.IDENTITY], head=None, reshape_in=(4, 4))
    rt = rtinfer.load(fm)
    X = _X((4, 4), n=3)
    assert np.array_equal(rt.predict(X), rt.predict(X.reshape(3, 16)))
    assert np.array_equal(rt.predict_one(X[0]), rt.predict_one(X[0].reshape(16)))
    X[2, 3, 1] = np.nan  # the last row of a shaped sample is checked too
    with pytest.raises(ValueError, match="got nan at element 13"):
        rt.predict_one(X[2])


# -- planning errors ----------------------------------------------------------------------------

def _dense_model(W_shape, b_len=4, attrs=None, act=Act.IDENTITY):
    bb = BufferBuilder()
    W = bb.add(np.ones(W_shape, np.float32))
    b = bb.add(np.zeros(b_len, np.float32))
    layer = Layer(Op.DENSE, (3,), (4,), act, {"W": W, "b": b}, attrs or {})
    return FrozenModel((layer,), bb.finish(), (3,), (4,))


def test_plan_rejects_broken_layers():
    with pytest.raises(PlanError, match=r"tensor 'W' has shape \(4, 3\), expected \(3, 4\)"):
        build_plan(_dense_model((4, 3)))
    with pytest.raises(PlanError, match=r"tensor 'b' has shape"):
        build_plan(_dense_model((3, 4), b_len=5))
    with pytest.raises(PlanError, match="CLIP needs alpha"):
        build_plan(_dense_model((3, 4), attrs={"alpha": 1.0, "beta": -1.0}, act=Act.CLIP))
    q = int8_mlp([6, 4], head=None)
    layers = list(q.layers)
    attrs = dict(layers[1].attrs)
    del attrs["y_scale"]
    layers[1] = Layer(layers[1].op, layers[1].in_shape, layers[1].out_shape, layers[1].act, layers[1].tensors, attrs)
    with pytest.raises(PlanError, match="missing attribute 'y_scale'"):
        build_plan(FrozenModel(tuple(layers), q.buffers, q.input_shape, q.output_shape))
    sm = Layer(Op.SOFTMAX, (6,), (6,), attrs={"outer": 4, "axis_len": 2, "inner": 1})
    with pytest.raises(PlanError, match="outer\\*axis_len\\*inner"):
        build_plan(FrozenModel((sm,), {}, (6,), (6,)))
    assert issubclass(PlanError, ValueError)


# -- loading ------------------------------------------------------------------------------------

def test_load_rejects_unknown_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"expected a \.rtm or \.onnx file"):
        rtinfer.load(str(tmp_path / "model.pkl"))
    with pytest.raises(ValueError, match="load expects a FrozenModel"):
        rtinfer.load(42)


def test_load_rtm_path(tmp_path):
    fm = int8_mlp([20, 12, 4], head="softmax", lut=np.tanh)
    path = tmp_path / "m.rtm"
    fm.save(path)
    rt = rtinfer.load(str(path))
    X = _X((20,), n=7)
    assert np.array_equal(rt.predict(X), rtinfer.load(fm).predict(X))


def test_load_onnx_path(tmp_path):
    from export.onnx_export import to_onnx
    fm = fp32_mlp([10, 8, 3], head="softmax")
    path = tmp_path / "m.onnx"
    to_onnx(fm, str(path))
    rt = rtinfer.load(path)
    X = _X((10,), n=7)
    _assert_close(rt.predict(X), reference.run(fm, X))


def test_state_and_blobs_start_on_a_cache_line():
    """Plan images are laid out in 64-byte sections; the runtime's copies must start on a
    64-byte boundary for those sections to be aligned in memory (NumPy guarantees only 16)."""
    from rtinfer.plan import aligned_bytes
    for n in (1, 63, 64, 1000, 1 << 20):
        a = aligned_bytes(n)
        assert a.ctypes.data % 64 == 0 and a.nbytes == n and not a.any()
    plan = build_plan(fp32_mlp([8, 16, 4]))
    states = [plan.new_state() for _ in range(8)]
    assert all(s.ctypes.data % 64 == 0 and np.array_equal(s, plan.image) for s in states)
