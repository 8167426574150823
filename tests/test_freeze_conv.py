"""export.freeze on CNN models: fp32 parity with model.infer (batch-norm folded), structure,
int8 layers within 1 LSB of an independent float simulation, int8 accuracy, errors, .rtm."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import export
from export.freeze import FreezeError
from rtinfer import quant, reference
from rtinfer.ops import Act, Op
from rtinfer.rtm import load_frozen
from rtinfer.train import (
    CNN, Activation, AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool, MaxPool1D,
    MaxPool2D, fit,
)
from rtinfer.train.cnn_data import shifted_motifs


def _randomize_bn(model, seed=0):
    """Non-trivial running statistics and affine parameters, so folding is really exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            c = layer.num_features
            layer.gamma[...] = rng.uniform(0.5, 1.5, c)
            layer.beta[...] = rng.normal(0, 0.3, c)
            layer.running_mean[...] = rng.normal(0, 0.5, c)
            layer.running_var[...] = rng.uniform(0.3, 2.0, c)
    return model


def _train(model, X, seed=0, epochs=2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, model.n_outputs_ if model.output == "softmax" else 2, len(X))
    if model.output == "identity":
        y = rng.normal(size=(len(X), model.n_outputs_))
    fit(model, X, y, epochs=epochs, batch_size=16, seed=seed)
    return _randomize_bn(model, seed)


def _assert_fp32_parity(model, X):
    frozen = export.freeze(model)
    X32 = np.asarray(X, dtype=np.float32)
    out = reference.run(frozen, X32)
    ref = model.infer(X32.astype(np.float64))
    np.testing.assert_allclose(out.reshape(ref.shape), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    return frozen


MODELS = {
    "1d_bn_folded": lambda: CNN((2, 24), [Conv1D(2, 6, 5, padding="same"), BatchNorm(6), Activation("relu"),
                                          MaxPool1D(2), Conv1D(6, 6, 3, stride=2, dilation=2, padding=(2, 1), groups=3),
                                          BatchNorm(6), Activation("tanh"), AvgPool1D(3, stride=2, padding=1),
                                          Flatten(), Dense(18, 8), BatchNorm(8), Activation("relu"), Dense(8, 3)],
                                preprocess="standardize", seed=1),
    "1d_standalone_bn": lambda: CNN((1, 30), [Conv1D(1, 4, 3), Activation("leaky_relu", 0.2), BatchNorm(4),
                                              AvgPool1D(2, count_include_pad=True, padding=1), GlobalAvgPool(),
                                              Dense(4, 3)], seed=2),
    "2d_depthwise_separable": lambda: CNN((3, 8, 7), [Conv2D(3, 6, 3, padding=1), BatchNorm(6), Activation("relu"),
                                                      Conv2D(6, 6, 3, padding=1, groups=6), BatchNorm(6),
                                                      Activation("relu"), Conv2D(6, 8, 1), Activation("relu"),
                                                      MaxPool2D(2, padding=((0, 0), (1, 0))), GlobalAvgPool(),
                                                      Dense(8, 4)], seed=3),
    "2d_sigmoid": lambda: CNN((1, 6, 6), [Conv2D(1, 3, (2, 3), stride=(2, 1)), Activation("softplus"),
                                          AvgPool2D(2), Flatten(), Dense(6, 1)], output="sigmoid", seed=4),
    "1d_regression": lambda: CNN((2, 10), [Conv1D(2, 3, 3), Activation("sigmoid"), Flatten(), Dense(24, 2)],
                                 output="identity", preprocess="whiten", seed=5),
}


@pytest.fixture(scope="module")
def trained():
    out = {}
    for key, make in MODELS.items():
        model = make()
        X = np.random.default_rng(len(key)).normal(size=(96,) + model.input_shape)
        out[key] = (_train(model, X), X)
    return out


@pytest.mark.parametrize("key", list(MODELS))
def test_fp32_parity(trained, key):
    model, X = trained[key]
    frozen = _assert_fp32_parity(model, X)
    assert frozen.input_shape == model.input_shape


def test_fp32_structure_folds_batchnorm(trained):
    model, _ = trained["1d_bn_folded"]
    frozen = export.freeze(model)
    ops = [l.op for l in frozen.layers]
    assert ops == [Op.AFFINE, Op.CONV, Op.MAXPOOL, Op.CONV, Op.AVGPOOL, Op.DENSE, Op.DENSE, Op.SOFTMAX]
    assert [l.act for l in frozen.layers[1:7]] == [Act.RELU, Act.IDENTITY, Act.TANH, Act.IDENTITY, Act.RELU,
                                                   Act.IDENTITY]
    conv, bn = model.layers[0], model.layers[1]
    s, t = bn.scale_shift()
    np.testing.assert_array_equal(frozen.tensor(frozen.layers[1], "W"),
                                  (conv.W * s[:, None, None]).astype(np.float32)[:, :, None, :])
    np.testing.assert_array_equal(frozen.tensor(frozen.layers[1], "b"), (conv.b * s + t).astype(np.float32))
    c2 = frozen.layers[3]
    assert (c2.attrs["stride_w"], c2.attrs["dilation_w"], c2.attrs["pad_left"], c2.attrs["pad_right"],
            c2.attrs["group"]) == (2, 2, 2, 1, 3)
    standalone = export.freeze(trained["1d_standalone_bn"][0])
    assert [l.op for l in standalone.layers] == [Op.CONV, Op.AFFINE, Op.AVGPOOL, Op.GLOBAL_AVGPOOL, Op.DENSE,
                                                Op.SOFTMAX]


# ------------------------------------------------------------------------------ int8
def float_window_op(x, layer):
    """Independent float64 simulation of a window op (sliding_window_view), x (N, C, H, W)."""
    a = layer.attrs
    fill = -np.inf if layer.op == Op.QMAXPOOL else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (a["pad_top"], a["pad_bottom"]), (a["pad_left"], a["pad_right"])),
                constant_values=fill)
    kh, kw, dh, dw = a["kernel_h"], a["kernel_w"], a["dilation_h"], a["dilation_w"]
    win = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::a["stride_h"], ::a["stride_w"], ::dh, ::dw]  # (N, C, oh, ow, kh, kw)
    return win


def simulate(frozen, layer, xq):
    """The float answer for one int8 layer from its int8 input, quantized to the output grid
    without the final rounding; returns (float codes, qmin, qmax)."""
    a = layer.attrs
    n = xq.shape[0]
    x = (xq.astype(np.float64) - a["x_zp"]) * a["x_scale"]
    if layer.op in (Op.QCONV, Op.QMAXPOOL, Op.QAVGPOOL):
        shp = layer.in_shape
        x = x.reshape((n, shp[0], 1, shp[1]) if len(shp) == 2 else (n,) + shp)
    if layer.op == Op.QDENSE:
        W = frozen.tensor(layer, "W").astype(np.float64) * frozen.tensor(layer, "w_scale")
        b = frozen.tensor(layer, "b") * a["x_scale"] * frozen.tensor(layer, "w_scale").astype(np.float64)
        y = x.reshape(n, -1) @ W + b
    elif layer.op == Op.QCONV:
        ws = frozen.tensor(layer, "w_scale").astype(np.float64)
        W = frozen.tensor(layer, "W").astype(np.float64) * ws[:, None, None, None]
        b = frozen.tensor(layer, "b") * a["x_scale"] * ws
        win = float_window_op(x, layer)
        g = int(a["group"])
        o, cg = W.shape[:2]
        ys = [np.einsum("nchwpq,ocpq->nohw", win[:, k * cg:(k + 1) * cg], W[k * (o // g):(k + 1) * (o // g)])
              for k in range(g)]
        y = np.concatenate(ys, axis=1) + b[None, :, None, None]
    elif layer.op == Op.QMAXPOOL:
        y = float_window_op(x, layer).max(axis=(4, 5))
    else:  # QAVGPOOL
        win = float_window_op(x, layer)
        if a["count_include_pad"]:
            count = a["kernel_h"] * a["kernel_w"]
        else:
            count = float_window_op(np.ones_like(x), layer).sum(axis=(4, 5))
        y = win.sum(axis=(4, 5)) / count
    codes = y.reshape(n, -1) / a.get("y_scale", a["x_scale"]) + a.get("y_zp", a["x_zp"])  # QMAXPOOL: x grid
    return codes, a.get("qmin", -128), a.get("qmax", 127)


@pytest.mark.parametrize("key", ["1d_bn_folded", "1d_standalone_bn", "2d_depthwise_separable"])
def test_int8_layers_within_one_lsb_of_float_simulation(trained, key, summary):
    model, X = trained[key]
    frozen = export.freeze(model, dtype="int8", calibration=X)
    _, trace = reference.run(frozen, X.astype(np.float32), trace=True)
    checked = exact = total = 0
    for i, layer in enumerate(frozen.layers):
        if layer.op not in (Op.QCONV, Op.QDENSE, Op.QMAXPOOL, Op.QAVGPOOL):
            continue
        codes, qmin, qmax = simulate(frozen, layer, trace[i - 1])
        want = np.clip(codes, qmin, qmax)
        got = trace[i].reshape(want.shape).astype(np.float64)
        diff = np.abs(got - want)
        assert diff.max() <= 1.0, f"layer {i} {layer.op.name}: off by {diff.max():.3f} LSB"
        if layer.op == Op.QMAXPOOL:  # exact: the output keeps the input's grid
            assert diff.max() < 1e-6
        checked += 1
        exact += int(np.count_nonzero(got == np.clip(np.rint(codes), qmin, qmax)))
        total += got.size
    assert checked >= 3
    summary(f"CNN int8 ({key}) vs float simulation: {exact}/{total} codes equal to the rounded float answer")


def test_int8_structure(trained):
    frozen = export.freeze(trained["1d_bn_folded"][0], dtype="int8", calibration=trained["1d_bn_folded"][1])
    ops = [l.op for l in frozen.layers]
    assert ops == [Op.AFFINE, Op.QUANTIZE, Op.QCONV, Op.QMAXPOOL, Op.QCONV, Op.QLUT, Op.QAVGPOOL, Op.QDENSE,
                   Op.QDENSE, Op.DEQUANTIZE, Op.SOFTMAX]
    qconv = frozen.layers[2]
    assert qconv.attrs["qmin"] == qconv.attrs["y_zp"]  # fused ReLU
    W = frozen.tensor(qconv, "W")
    assert W.dtype == np.int8 and W.shape == (6, 2, 1, 5)
    assert np.all(np.abs(W.reshape(6, -1)).max(axis=1) == 127)  # symmetric per output channel
    pool = frozen.layers[3]
    assert (pool.attrs["x_scale"], pool.attrs["x_zp"]) == (qconv.attrs["y_scale"], qconv.attrs["y_zp"])
    gap = export.freeze(trained["1d_standalone_bn"][0], dtype="int8", calibration=trained["1d_standalone_bn"][1])
    assert [l.op for l in gap.layers] == [Op.QUANTIZE, Op.QCONV, Op.QLUT, Op.DEQUANTIZE, Op.AFFINE, Op.QUANTIZE,
                                          Op.QAVGPOOL, Op.QAVGPOOL, Op.QDENSE, Op.DEQUANTIZE, Op.SOFTMAX]
    g = gap.layers[7]
    assert (g.attrs["kernel_w"], g.out_shape) == (g.in_shape[1], (4, 1))


def test_int8_motif_cnn_keeps_its_accuracy(summary):
    X, y = shifted_motifs(1200, seed=1)
    Xt, yt = shifted_motifs(600, seed=2)
    model = CNN((1, 64), [Conv1D(1, 8, 7, padding="same"), BatchNorm(8), Activation("relu"), MaxPool1D(2),
                          Conv1D(8, 12, 5, padding="same"), Activation("relu"), GlobalAvgPool(), Dense(12, 4)], seed=0)
    fit(model, X, y, epochs=6, lr=3e-3, seed=0)
    acc = model.score(Xt, yt)
    f32 = export.freeze(model)
    i8 = export.freeze(model, dtype="int8", calibration=X[:300])
    acc32 = float(np.mean(np.argmax(reference.run(f32, Xt.astype(np.float32)), axis=1) == yt))
    acc8 = float(np.mean(np.argmax(reference.run(i8, Xt.astype(np.float32)), axis=1) == yt))
    assert acc32 == acc
    assert acc8 >= acc - 0.02, (acc, acc8)
    summary(f"motif CNN accuracy: float64 {acc:.4f}, frozen fp32 {acc32:.4f}, int8 {acc8:.4f}")


# ------------------------------------------------------------------------------ errors, files
def test_calibration_shapes_and_errors(trained):
    model, X = trained["1d_regression"]
    a = export.freeze(model, dtype="int8", calibration=X)
    b = export.freeze(model, dtype="int8", calibration=X.reshape(len(X), -1))
    assert all(np.array_equal(a.buffers[k], b.buffers[k]) for k in a.buffers)
    with pytest.raises(FreezeError, match="per-sample shape"):
        export.freeze(model, dtype="int8", calibration=X.reshape(len(X), 10, 2))
    with pytest.raises(FreezeError, match="calibration"):
        export.freeze(model, dtype="int8")
    with pytest.raises(FreezeError, match="method"):
        export.freeze(model, dtype="int8", calibration=X, method="kl")
    model.layers[0].W[0, 0, 0] = np.nan
    with pytest.raises(FreezeError, match="NaN"):
        export.freeze(model)


def test_accumulator_bound_holds(trained):
    model, X = trained["2d_depthwise_separable"]
    frozen = export.freeze(model, dtype="int8", calibration=X)
    for layer in frozen.layers:
        if layer.op == Op.QCONV:
            Wq = frozen.tensor(layer, "W").astype(np.int64).reshape(layer.out_shape[0], -1)
            bound = 255 * np.abs(Wq).sum(axis=1) + np.abs(frozen.tensor(layer, "b").astype(np.int64))
            assert bound.max() < 2 ** 31


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_rtm_round_trip(trained, tmp_path, dtype):
    model, X = trained["2d_depthwise_separable"]
    frozen = export.freeze(model, dtype=dtype, calibration=X if dtype == "int8" else None)
    path = tmp_path / "cnn.rtm"
    frozen.save(path)
    back = load_frozen(path)
    assert [l.op for l in back.layers] == [l.op for l in frozen.layers]
    np.testing.assert_array_equal(reference.run(back, X.astype(np.float32)), reference.run(frozen, X.astype(np.float32)))
    assert quant.QMIN == -128
