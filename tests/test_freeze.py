"""export.freeze: fp32 parity with model.infer (preprocessing folded), int8 PTQ accuracy and its
agreement with an independent float simulation, LUT exactness, calibration errors, meta, .rtm."""

from __future__ import annotations

import json

import numpy as np
import pytest

import export
from export.freeze import FreezeError
from rtinfer import reference
from rtinfer.ops import Act, Op
from rtinfer.rtm import load_frozen, save_frozen
from rtinfer.train import MLP, Adam, LinearRegression, LogisticRegression, SoftmaxRegression, datasets, fit


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


@pytest.fixture(scope="module")
def cancer():
    return datasets.load("breast_cancer")


@pytest.fixture(scope="module")
def diabetes():
    return datasets.load("diabetes")


# -- fp32 ------------------------------------------------------------------------------------

def _assert_fp32_parity(model, X):
    """Frozen fp32 outputs equal model.infer on the same (float32) inputs to 1e-6 relative.

    Elementwise |frozen - infer| <= 1e-6 |infer| + 1e-6 max|infer|: the relative error measured
    against the output's scale (float32 weights and arithmetic give ~1e-7 here). The logits
    (the last DENSE's output) are held to the same bound against model.forward.
    """
    frozen = export.freeze(model)
    X32 = np.asarray(X, dtype=np.float32)
    X64 = X32.astype(np.float64)  # what the frozen model sees; input rounding is not a freeze error
    out, trace = reference.run(frozen, X32, trace=True)
    ref = model.infer(X64)
    out = out.reshape(ref.shape)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    last_dense = max(i for i, l in enumerate(frozen.layers) if l.op == Op.DENSE)
    z = model.forward(X64)
    logits = trace[last_dense].reshape(z.shape)
    np.testing.assert_allclose(logits, z, rtol=1e-6, atol=1e-6 * np.abs(z).max())
    return frozen


MLP_ACTS = [("relu", None), ("leaky_relu", 0.1), ("sigmoid", None), ("tanh", None), ("softplus", None)]


@pytest.mark.parametrize("pre", [None, "standardize", "whiten"])
@pytest.mark.parametrize("act, alpha", MLP_ACTS)
def test_fp32_mlp_softmax_each_activation(digits, act, alpha, pre):
    model = MLP([64, 32, 16, 10], activation=act, alpha=alpha, output="softmax", preprocess=pre, seed=1)
    fit(model, digits.X_train, digits.y_train, optimizer=Adam(1e-3), epochs=2, seed=0)
    frozen = _assert_fp32_parity(model, digits.X_test)
    # Structure: one DENSE per Dense with its activation fused, then the softmax head.
    assert [l.op for l in frozen.layers] == [Op.DENSE, Op.DENSE, Op.DENSE, Op.SOFTMAX]
    assert [l.act for l in frozen.layers[:3]] == [Act[act.upper()]] * 2 + [Act.IDENTITY]
    if act == "leaky_relu":
        assert frozen.layers[0].attrs["alpha"] == 0.1
    head = frozen.layers[-1]
    assert dict(head.attrs) == {"outer": 1, "axis_len": 10, "inner": 1}
    # Folding: the first DENSE holds float32(A @ W) and float32(c @ W + b).
    W, b = model.layers[0].W, model.layers[0].b
    if pre is not None:
        A, c = model.preprocessor.as_affine()
        W, b = A @ W, c @ W + b
    np.testing.assert_array_equal(frozen.tensor(frozen.layers[0], "W"), W.astype(np.float32))
    np.testing.assert_array_equal(frozen.tensor(frozen.layers[0], "b"), b.astype(np.float32))


# Raw breast-cancer features reach 4000; an MLP on them is checked with a standardizer only
# (without one, float32 rounding of the first layer's large sums alone exceeds 1e-6).
@pytest.mark.parametrize("pre", ["standardize"])
def test_fp32_mlp_sigmoid_head(cancer, pre):
    model = MLP([30, 16, 1], activation="tanh", output="sigmoid", preprocess=pre, seed=2)
    fit(model, cancer.X_train, cancer.y_train, epochs=3, seed=0)
    frozen = _assert_fp32_parity(model, cancer.X_test)
    assert frozen.layers[-1].op == Op.ACT and frozen.layers[-1].act == Act.SIGMOID


@pytest.mark.parametrize("pre", [None, "standardize", "whiten"])
def test_fp32_mlp_regression(diabetes, pre):
    model = MLP([10, 16, 1], activation="relu", output="identity", preprocess=pre, seed=3)
    fit(model, diabetes.X_train, diabetes.y_train, epochs=3, seed=0)
    frozen = _assert_fp32_parity(model, diabetes.X_test)
    assert frozen.layers[-1].op == Op.DENSE  # identity head adds nothing


@pytest.mark.parametrize("pre", [None, "standardize"])
def test_fp32_logistic_regression(cancer, pre):
    model = LogisticRegression(preprocess=pre).fit(cancer.X_train, cancer.y_train)
    frozen = _assert_fp32_parity(model, cancer.X_test)
    assert [l.op for l in frozen.layers] == [Op.DENSE, Op.ACT]


@pytest.mark.parametrize("pre", [None, "standardize", "whiten"])
def test_fp32_softmax_regression(digits, pre):
    model = SoftmaxRegression(preprocess=pre, seed=0)
    fit(model, digits.X_train, digits.y_train, epochs=3, seed=0)
    frozen = _assert_fp32_parity(model, digits.X_test)
    assert [l.op for l in frozen.layers] == [Op.DENSE, Op.SOFTMAX]


@pytest.mark.parametrize("pre", [None, "standardize", "whiten"])
def test_fp32_linear_regression(diabetes, pre):
    model = LinearRegression(preprocess=pre).fit(diabetes.X_train, diabetes.y_train)
    frozen = _assert_fp32_parity(model, diabetes.X_test)
    assert [l.op for l in frozen.layers] == [Op.DENSE]
    assert frozen.output_shape == (1,)


def test_fp32_meta(digits):
    model = SoftmaxRegression(seed=0)
    fit(model, digits.X_train, digits.y_train, epochs=1)
    meta = export.freeze(model).meta
    assert meta["source"] == "rtinfer.train.SoftmaxRegression"
    assert meta["dtype"] == "float32" and meta["output"] == "softmax"
    assert json.loads(meta["classes"]) == list(range(10))
    assert "calibration" not in meta


# -- int8 ------------------------------------------------------------------------------------

def _act64(name: str, x: np.ndarray, alpha: float) -> np.ndarray:
    """float64 activations written out here, independent of rtinfer."""
    if name == "relu":
        return np.maximum(x, 0)
    if name == "leaky_relu":
        return np.where(x >= 0, x, alpha * x)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "softplus":
        return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)
    raise AssertionError(name)


def _fake_quant(y: np.ndarray, scale: float, zp: int, qmin: int = -128, qmax: int = 127) -> np.ndarray:
    return np.clip(np.round(y / scale) + zp, qmin, qmax)


def _simulate(frozen, layer, x_in, act_name, alpha):
    """An independent float model of one quantized layer: dequantized weights, float64 math,
    fake-quantization at the output. x_in is the layer's actual input (from the reference trace)."""
    a = layer.attrs
    if layer.op == Op.QUANTIZE:
        return _fake_quant(x_in.astype(np.float64), a["y_scale"], a["y_zp"])
    x = (x_in.astype(np.float64) - a["x_zp"]) * a["x_scale"] if layer.op != Op.QUANTIZE else None
    if layer.op == Op.QDENSE:
        w_scale = frozen.tensor(layer, "w_scale").astype(np.float64)
        Wd = frozen.tensor(layer, "W").astype(np.float64) * w_scale
        bd = frozen.tensor(layer, "b").astype(np.float64) * a["x_scale"] * w_scale
        return _fake_quant(x @ Wd + bd, a["y_scale"], a["y_zp"], a["qmin"], a["qmax"])
    if layer.op == Op.QLUT:
        return _fake_quant(_act64(act_name, x, alpha), a["y_scale"], a["y_zp"])
    if layer.op == Op.DEQUANTIZE:
        return x
    raise AssertionError(layer.op)


def _train_digits_mlp(ds, act="relu", alpha=None, pre="standardize", epochs=40, seed=0):
    model = MLP([64, 64, 10], activation=act, alpha=alpha, output="softmax", preprocess=pre, seed=seed)
    fit(model, ds.X_train, ds.y_train, optimizer=Adam(1e-3), epochs=epochs, batch_size=32, seed=seed)
    return model


@pytest.fixture(scope="module")
def digits_half():
    # Half the digits held out (899 samples), so 0.5 percentage points is 4.5 samples, not 1.8.
    return datasets.load("digits", test_size=0.5, seed=0)


@pytest.fixture(scope="module")
def relu_mlp(digits_half):
    return _train_digits_mlp(digits_half)


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_int8_digits_accuracy_within_half_a_point(relu_mlp, digits_half, method, summary):
    ds = digits_half
    acc32 = np.mean(reference.run(export.freeze(relu_mlp), ds.X_test.astype(np.float32)).argmax(1) == ds.y_test)
    assert acc32 == np.mean(relu_mlp.predict(ds.X_test) == ds.y_test)
    frozen = export.freeze(relu_mlp, dtype="int8", calibration=ds.X_train, method=method)
    acc8 = np.mean(reference.run(frozen, ds.X_test.astype(np.float32)).argmax(1) == ds.y_test)
    summary(f"int8 digits 64-64-10 relu ({method}): fp32 {acc32:.4f}, int8 {acc8:.4f}, "
            f"drop {100 * (acc32 - acc8):.2f} pp on {len(ds.y_test)} test samples")
    assert acc32 > 0.9
    assert acc32 - acc8 <= 0.005


def test_int8_structure_and_calibration(relu_mlp, digits_half):
    X = digits_half.X_train
    frozen = export.freeze(relu_mlp, dtype="int8", calibration=X)
    ops = [l.op for l in frozen.layers]
    # A standardizer stays a float AFFINE before QUANTIZE; ReLU is fused into the first QDENSE.
    assert ops == [Op.AFFINE, Op.QUANTIZE, Op.QDENSE, Op.QDENSE, Op.DEQUANTIZE, Op.SOFTMAX]
    q1, q2 = frozen.layers[2], frozen.layers[3]
    assert q1.attrs["qmin"] == q1.attrs["y_zp"] and q2.attrs["qmin"] == -128
    assert q1.attrs["x_scale"] == frozen.layers[1].attrs["y_scale"]
    assert q2.attrs["x_scale"] == q1.attrs["y_scale"] and q2.attrs["x_zp"] == q1.attrs["y_zp"]
    # Ranges come from the float model's tensors on the calibration set (min/max, post-ReLU).
    Xp = relu_mlp.preprocessor.transform(X)
    h = np.maximum(Xp @ relu_mlp.layers[0].W + relu_mlp.layers[0].b, 0)
    z = relu_mlp.forward(X)
    for layer, t, a in ((frozen.layers[1], Xp, "y"), (q1, h, "y"), (q2, z, "y")):
        s, zp = layer.attrs[a + "_scale"], layer.attrs[a + "_zp"]
        lo, hi = (-128 - zp) * s, (127 - zp) * s
        assert lo <= min(t.min(), 0) + s and hi >= t.max() - s
        assert abs(hi - lo - (max(t.max(), 0) - min(t.min(), 0))) <= 2 * s  # tight, not padded
    # Weights: symmetric per output channel, the largest |W[:, j]| maps to 127.
    Wq = frozen.tensor(q1, "W")
    assert np.all(np.abs(Wq).max(axis=0) == 127)
    assert frozen.buffers["i32"].dtype == np.int32 and frozen.tensor(q1, "b").shape == (64,)


def test_percentile_ranges_are_inside_minmax(relu_mlp, digits_half):
    X = digits_half.X_train
    mm = export.freeze(relu_mlp, "int8", X, method="minmax")
    pc = export.freeze(relu_mlp, "int8", X, method="percentile", percentile=99.0)
    for a, b in zip(mm.layers, pc.layers):
        if "y_scale" in a.attrs:
            assert b.attrs["y_scale"] <= a.attrs["y_scale"]
    assert pc.meta["calibration"] == "percentile:99" and mm.meta["calibration"] == "minmax"
    assert pc.meta["calibration_samples"] == str(len(X)) and pc.meta["dtype"] == "int8"


INT8_ACTS = [("relu", None, "standardize"), ("relu", None, None), ("tanh", None, "standardize"),
             ("sigmoid", None, None), ("softplus", None, "whiten"), ("leaky_relu", 0.1, "standardize")]


@pytest.mark.parametrize("act, alpha, pre", INT8_ACTS)
def test_int8_matches_independent_float_simulation(digits_half, act, alpha, pre, summary):
    ds = digits_half
    model = _train_digits_mlp(ds, act, alpha, pre, epochs=10)
    frozen = export.freeze(model, dtype="int8", calibration=ds.X_train)
    X = ds.X_test.astype(np.float32)
    _, trace = reference.run(frozen, X, trace=True)
    n = len(X)
    x_in = X.reshape(n, -1)
    n_int8 = n_exact = 0
    for i, layer in enumerate(frozen.layers):
        out = trace[i].reshape(n, -1)
        if layer.op in (Op.QUANTIZE, Op.QDENSE, Op.QLUT):
            assert out.dtype == np.int8
            sim = _simulate(frozen, layer, x_in, act, model.alpha)
            diff = np.abs(sim - out.astype(np.float64))
            assert diff.max() <= 1, f"layer {i} {layer.op.name}: off by {diff.max()} LSB"
            n_int8 += diff.size
            n_exact += int(np.count_nonzero(diff == 0))
        elif layer.op == Op.DEQUANTIZE:
            np.testing.assert_allclose(out, _simulate(frozen, layer, x_in, act, model.alpha), rtol=1e-6, atol=0)
        x_in = out
    summary(f"int8 vs float simulation ({act}, {pre}): {n_exact}/{n_int8} int8 elements exact, rest 1 LSB")
    assert n_exact >= 0.99 * n_int8
    qluts = [l for l in frozen.layers if l.op == Op.QLUT]
    assert len(qluts) == (0 if act == "relu" else 1)
    # LUT exactness: every one of the 256 codes maps to the quantized activation of its value.
    for layer in qluts:
        a = layer.attrs
        assert a["act"] == int(Act[act.upper()]) and a.get("alpha", None) == (alpha if act == "leaky_relu" else None)
        q = np.arange(-128, 128)
        expected = _fake_quant(_act64(act, (q - a["x_zp"]) * a["x_scale"], model.alpha), a["y_scale"], a["y_zp"])
        np.testing.assert_array_equal(frozen.tensor(layer, "table").astype(np.float64), expected)


def test_int8_sigmoid_head_and_regression(cancer, diabetes):
    clf = MLP([30, 8, 1], activation="tanh", output="sigmoid", preprocess="standardize", seed=0)
    fit(clf, cancer.X_train, cancer.y_train, epochs=20, seed=0)
    frozen = export.freeze(clf, "int8", cancer.X_train)
    assert [l.op for l in frozen.layers][-2:] == [Op.DEQUANTIZE, Op.ACT]
    out, trace = reference.run(frozen, cancer.X_test.astype(np.float32), trace=True)
    p8, logit8 = out[:, 0], trace[-2][:, 0]
    p, logit = clf.infer(cancer.X_test)[:, 0], clf.forward(cancer.X_test)[:, 0]
    assert np.mean((p8 > 0.5) == (p > 0.5)) >= 0.98
    # quantization error in steps of the logits' int8 grid (4.8 steps at most, 0.8 on average,
    # here: input rounding carried through two layers and the 8 tanh codes); the sigmoid's slope
    # is at most 1/4, so the probabilities differ by at most a quarter of that
    step = frozen.layers[-2].attrs["x_scale"]
    assert np.abs(logit8 - logit).max() <= 6 * step
    assert np.all(np.abs(p8 - p) <= 0.25 * np.abs(logit8 - logit) + 1e-6)
    reg = LinearRegression(preprocess="whiten").fit(diabetes.X_train, diabetes.y_train)
    frozen = export.freeze(reg, "int8", diabetes.X_train)
    assert [l.op for l in frozen.layers] == [Op.DENSE, Op.QUANTIZE, Op.QDENSE, Op.DEQUANTIZE]
    y8 = reference.run(frozen, diabetes.X_test.astype(np.float32))[:, 0]
    y = reg.infer(diabetes.X_test)[:, 0]
    # within 2 steps of the output's int8 grid (1.74 at most here: half a step of output rounding
    # plus the input's and weights' rounding carried through one layer)
    assert np.abs(y8 - y).max() <= 2 * frozen.layers[-1].attrs["x_scale"]


# -- errors ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_mlp(digits):
    model = MLP([64, 8, 10], seed=0)
    fit(model, digits.X_train[:100], digits.y_train[:100], epochs=1)
    return model


@pytest.mark.parametrize("calibration, match", [
    (None, r"needs calibration data"),
    (np.zeros((5, 63)), r"shape \(N, 64\), got \(5, 63\)"),
    (np.zeros(64), r"shape \(N, 64\), got \(64,\)"),
    (np.zeros((0, 64)), r"empty"),
    (np.full((3, 64), np.nan), r"NaN or infinity \(192 values; first at row 0, column 0\)"),
    (np.where(np.eye(4, 64) > 0, np.inf, 0.0), r"NaN or infinity \(4 values"),
    ([["a"] * 64], r"not a numeric array"),
])
def test_bad_calibration(small_mlp, calibration, match):
    with pytest.raises(FreezeError, match=match):
        export.freeze(small_mlp, dtype="int8", calibration=calibration)
    assert issubclass(FreezeError, ValueError)


@pytest.mark.parametrize("kwargs, match", [
    ({"dtype": "float16"}, r"dtype must be one of"),
    ({"dtype": "int8", "calibration": np.zeros((2, 64)), "method": "kl"}, r"method must be one of"),
    ({"dtype": "int8", "calibration": np.zeros((2, 64)), "method": "percentile", "percentile": 20}, r"percentile must be in"),
])
def test_bad_options(small_mlp, kwargs, match):
    with pytest.raises(FreezeError, match=match):
        export.freeze(small_mlp, **kwargs)


def test_unsupported_models_are_named():
    class Dropout:
        kind = "dropout"

    class Fake:
        layers = [Dropout()]
        preprocessor = None
        output = "identity"

    with pytest.raises(FreezeError, match=r"layer 0 \(Dropout\): cannot freeze layer kind 'dropout'"):
        export.freeze(Fake())
    with pytest.raises(FreezeError, match="no 'layers'"):
        export.freeze(object())


def test_nan_weights_are_rejected(digits):
    model = MLP([64, 4, 10], seed=0)
    model.layers[2].W = np.full((4, 10), np.nan)
    with pytest.raises(FreezeError, match=r"layer 2 \(Dense\): weights contain NaN"):
        export.freeze(model)


def test_degenerate_calibration_is_refused_not_overflowed(small_mlp, digits):
    # All-zero inputs give the input tensor a ~1e-6 wide range; a bias at x_scale * w_scale then
    # cannot fit the int32 accumulator, which freeze refuses by name instead of wrapping.
    model = MLP([64, 8, 10], seed=0)
    model.layers[0].b = np.full(8, 0.5)
    with pytest.raises(FreezeError, match=r"dense_0: the int32 accumulator of output \d+ could overflow"):
        export.freeze(model, "int8", np.zeros((4, 64)))
    # A constant but non-zero calibration set is fine: the range is widened to include 0.
    frozen = export.freeze(small_mlp, "int8", np.full((4, 64), 3.0))
    for layer in frozen.layers:
        for k, v in layer.attrs.items():
            if k.endswith("scale"):
                assert np.isfinite(v) and v > 0
    y = reference.run(frozen, digits.X_test.astype(np.float32))  # no accumulator overflow
    assert np.all(np.isfinite(y))


def test_accumulator_bound_holds_for_every_input(relu_mlp, digits_half):
    frozen = export.freeze(relu_mlp, "int8", digits_half.X_train)
    for layer in frozen.layers:
        if layer.op == Op.QDENSE:
            Wq = frozen.tensor(layer, "W").astype(np.int64)
            bq = frozen.tensor(layer, "b").astype(np.int64)
            assert np.all(255 * np.abs(Wq).sum(axis=0) + np.abs(bq) < 2 ** 31)


# -- .rtm of real frozen models ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_rtm_round_trip_of_frozen_digits(relu_mlp, digits_half, tmp_path, dtype):
    frozen = export.freeze(relu_mlp, dtype=dtype, calibration=digits_half.X_train)
    path = tmp_path / f"digits_{dtype}.rtm"
    save_frozen(frozen, path)
    X = digits_half.X_test.astype(np.float32)
    y = reference.run(frozen, X)
    for mmap in (False, True):
        loaded = load_frozen(path, mmap=mmap)
        assert loaded.layers == frozen.layers and dict(loaded.meta) == dict(frozen.meta)
        for key in frozen.buffers:
            np.testing.assert_array_equal(loaded.buffers[key], frozen.buffers[key])
        np.testing.assert_array_equal(reference.run(loaded, X), y)
    again = tmp_path / "again.rtm"
    save_frozen(export.freeze(relu_mlp, dtype=dtype, calibration=digits_half.X_train), again)
    assert again.read_bytes() == path.read_bytes()  # freezing and writing are deterministic


# -- reduce_range and onnxruntime ---------------------------------------------------------------

def test_reduce_range_weights(relu_mlp, digits_half, summary):
    ds = digits_half
    frozen = export.freeze(relu_mlp, "int8", ds.X_train, reduce_range=True)
    assert frozen.meta["weight_range"] == "reduced"
    for layer in frozen.layers:
        if layer.op == Op.QDENSE:
            assert np.all(np.abs(frozen.tensor(layer, "W")).max(axis=0) == 63)
    acc32 = np.mean(relu_mlp.predict(ds.X_test) == ds.y_test)
    acc8 = np.mean(reference.run(frozen, ds.X_test.astype(np.float32)).argmax(1) == ds.y_test)
    summary(f"int8 reduce_range digits relu: fp32 {acc32:.4f}, int8 {acc8:.4f}")
    assert acc32 - acc8 <= 0.01


def test_reduce_range_agrees_with_onnxruntime(digits_half, tmp_path):
    """onnxruntime fuses DQ -> Gemm -> Q into QGemm, whose AVX2 (non-VNNI) kernel sums pairs of
    u8*s8 products in saturating int16: with full-range weights and activations far from their
    zero point that differs from the exact int32 arithmetic. With reduce_range it agrees."""
    ort = pytest.importorskip("onnxruntime")
    from export.onnx_export import to_onnx
    ds = digits_half
    model = _train_digits_mlp(ds, "tanh", None, None, epochs=5)
    frozen = export.freeze(model, "int8", ds.X_train, reduce_range=True)
    path = tmp_path / "m.onnx"
    to_onnx(frozen, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    X = ds.X_test.astype(np.float32)
    y = sess.run(None, {sess.get_inputs()[0].name: X})[0]
    r = reference.run(frozen, X)
    assert np.array_equal(y.argmax(1), r.argmax(1))
    # every int8 layer agrees code for code; only the float32 rounding of the softmax differs
    # (1.2e-7 at most here; a LUT code moved by one step would change a probability by ~1e-3)
    np.testing.assert_allclose(y, r, rtol=0, atol=1e-6)
