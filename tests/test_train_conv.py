"""Conv / pooling / batch-norm training layers: forward vs naive loops, gradients vs finite
differences (rtinfer.train.gradient_errors), the CNN model, checkpoints, and a 1-D CNN beating an
MLP of similar size on a shift- and scale-randomized time-series task."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rtinfer.train.cnn_data import shifted_motifs
from rtinfer.train import (
    CNN, MLP, Activation, AvgPool1D, AvgPool2D, BatchNorm, CheckpointError, Conv1D, Conv2D, DataError, Dense,
    Flatten, GlobalAvgPool, MaxPool1D, MaxPool2D, fit, gradient_errors, load_model,
)


# ------------------------------------------------------------------------------ naive twins
def naive_conv2d(x, W, b, stride, pads, dilation, groups):
    """Direct loops: x (N, C, H, W), W (O, C/g, kh, kw), pads ((t, b), (l, r))."""
    n, c, h, w = x.shape
    o, cg, kh, kw = W.shape
    (pt, pb), (pl, pr) = pads
    xp = np.zeros((n, c, h + pt + pb, w + pl + pr))
    xp[:, :, pt:pt + h, pl:pl + w] = x
    oh = (h + pt + pb - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + pl + pr - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow))
    for ni, oi, i, j in itertools.product(range(n), range(o), range(oh), range(ow)):
        g = oi // og
        acc = b[oi]
        for ci, p, q in itertools.product(range(cg), range(kh), range(kw)):
            acc += W[oi, ci, p, q] * xp[ni, g * cg + ci, i * stride[0] + p * dilation[0], j * stride[1] + q * dilation[1]]
        y[ni, oi, i, j] = acc
    return y


def naive_pool2d(x, kernel, stride, pads, mode, count_include_pad=False):
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    oh = (h + pt + pb - kernel[0]) // stride[0] + 1
    ow = (w + pl + pr - kernel[1]) // stride[1] + 1
    y = np.zeros((n, c, oh, ow))
    for ni, ci, i, j in itertools.product(range(n), range(c), range(oh), range(ow)):
        vals, count = [], 0
        for p, q in itertools.product(range(kernel[0]), range(kernel[1])):
            r, s = i * stride[0] + p - pt, j * stride[1] + q - pl
            if 0 <= r < h and 0 <= s < w:
                vals.append(x[ni, ci, r, s])
            elif count_include_pad:
                count += 1
        if mode == "max":
            y[ni, ci, i, j] = max(vals)
        else:
            y[ni, ci, i, j] = sum(vals) / (len(vals) + count)
    return y


CONV2D_CASES = [
    dict(kernel_size=3),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=1),
    dict(kernel_size=3, dilation=2, padding=((2, 1), (0, 2))),
    dict(kernel_size=(3, 2), stride=2, dilation=(1, 2), padding="valid"),
    dict(kernel_size=3, padding="same", groups=2),
    dict(kernel_size=(1, 4), padding="same", dilation=(1, 2)),  # even kernel: extra pad at the end
]


@pytest.mark.parametrize("kw", CONV2D_CASES)
def test_conv2d_forward_matches_naive(kw):
    rng = np.random.default_rng(0)
    layer = Conv2D(4, 6, **kw)
    out = layer.build((4, 7, 8))
    layer.W = rng.normal(size=layer.w_shape)
    layer.b = rng.normal(size=6)
    x = rng.normal(size=(2, 4, 7, 8))
    y = layer.forward(x)
    want = naive_conv2d(x, layer.W, layer.b, layer.stride, layer.pads, layer.dilation, layer.groups)
    assert y.shape == (2,) + out == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward_train(x), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(kernel_size=5), dict(kernel_size=3, stride=2, padding=(1, 2)),
                                dict(kernel_size=3, dilation=3, padding="same"), dict(kernel_size=4, groups=3)])
def test_conv1d_is_conv2d_with_height_one(kw):
    rng = np.random.default_rng(1)
    layer = Conv1D(3, 6, **kw)
    layer.build((3, 17))
    layer.W = rng.normal(size=layer.w_shape)
    layer.b = rng.normal(size=6)
    x = rng.normal(size=(3, 3, 17))
    pads = ((0, 0),) + layer.pads
    want = naive_conv2d(x[:, :, None], layer.W[:, :, None], layer.b, (1,) + layer.stride, pads,
                        (1,) + layer.dilation, layer.groups)[:, :, 0]
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)


def test_depthwise_conv_is_per_channel():
    rng = np.random.default_rng(2)
    layer = Conv1D(4, 4, 3, padding=1, groups=4)
    layer.build((4, 10))
    layer.W = rng.normal(size=(4, 1, 3))
    x = rng.normal(size=(2, 4, 10))
    y = layer.forward(x)
    for c in range(4):
        want = np.stack([np.convolve(np.pad(x[n, c], 1), layer.W[c, 0, ::-1], mode="valid") for n in range(2)])
        np.testing.assert_allclose(y[:, c], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode,kw", [
    ("max", dict(kernel_size=2)),
    ("max", dict(kernel_size=3, stride=2, padding=1)),
    ("max", dict(kernel_size=(2, 3), stride=(1, 2), padding=((1, 0), (0, 2)))),
    ("avg", dict(kernel_size=2)),
    ("avg", dict(kernel_size=3, stride=2, padding=1)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, count_include_pad=True)),
    ("avg", dict(kernel_size=(3, 2), stride=1, padding=((2, 0), (1, 1)))),
])
def test_pool2d_forward_matches_naive(mode, kw):
    rng = np.random.default_rng(3)
    layer = (MaxPool2D if mode == "max" else AvgPool2D)(**kw)
    layer.build((3, 7, 6))
    x = rng.normal(size=(2, 3, 7, 6))
    want = naive_pool2d(x, layer.kernel_size, layer.stride, layer.pads, mode,
                        getattr(layer, "count_include_pad", False))
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward_train(x), want, rtol=1e-12, atol=1e-12)


def test_pool1d_and_global_pool():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 9))
    mp = MaxPool1D(3, stride=2, padding=1)
    mp.build((3, 9))
    want = naive_pool2d(x[:, :, None], (1, 3), (1, 2), ((0, 0), (1, 1)), "max")[:, :, 0]
    np.testing.assert_allclose(mp.forward(x), want)
    ap = AvgPool1D(2)
    ap.build((3, 9))
    np.testing.assert_allclose(ap.forward(x), (x[:, :, 0:8:2] + x[:, :, 1:9:2]) / 2)
    gp = GlobalAvgPool()
    assert gp.build((3, 9)) == (3,)
    np.testing.assert_allclose(gp.forward(x), x.mean(axis=2))


def test_batchnorm_train_and_inference_modes():
    rng = np.random.default_rng(5)
    bn = BatchNorm(3, eps=1e-5, momentum=0.25)
    bn.build((3, 8))
    bn.gamma[...] = [1.0, 2.0, 0.5]
    bn.beta[...] = [0.0, -1.0, 3.0]
    x = rng.normal(2.0, 3.0, size=(5, 3, 8))
    y = bn.forward_train(x)
    mean, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2))
    want = (x - mean[:, None]) / np.sqrt(var[:, None] + 1e-5) * bn.gamma[:, None] + bn.beta[:, None]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean, 0.25 * mean)
    np.testing.assert_allclose(bn.running_var, 0.75 + 0.25 * x.var(axis=(0, 2), ddof=1))
    y_inf = bn.forward(x)
    want_inf = (x - bn.running_mean[:, None]) / np.sqrt(bn.running_var[:, None] + 1e-5) * bn.gamma[:, None] \
        + bn.beta[:, None]
    np.testing.assert_allclose(y_inf, want_inf, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ gradients
def _grad_errors(input_shape, layers, n=5, seed=0, output="softmax"):
    model = CNN(input_shape, layers, output=output, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for layer in model.layers:  # non-trivial biases and BN parameters
        if hasattr(layer, "trainable_params"):
            for name, arr in layer.trainable_params().items():
                if name != "W":
                    arr[...] = rng.normal(0.0, 0.5, size=arr.shape) + (1.0 if name == "gamma" else 0.0)
    X = rng.normal(size=(n,) + tuple(input_shape))
    y = rng.integers(0, model.n_outputs_, n)
    return gradient_errors(model, None, X, y)


CONV_OPTIONS = [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=2, dilation=2, padding=(2, 1)),
    dict(kernel_size=3, padding="same", groups=2),
    dict(kernel_size=3, padding="same", groups=4),  # depthwise
]


@pytest.mark.parametrize("kw", CONV_OPTIONS)
def test_conv1d_gradients(kw):
    out = 4 if kw.get("groups") == 4 else 6
    conv = Conv1D(4, out, **kw)
    errs = _grad_errors((4, 11), [conv, Activation("tanh"), Flatten(), Dense(out * conv.geo.build((11,), "")[0], 3)])
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("kw", [dict(kernel_size=(2, 3)), dict(kernel_size=3, stride=(2, 1), padding=((1, 0), (2, 1))),
                                dict(kernel_size=2, dilation=(2, 1), padding=1, groups=2),
                                dict(kernel_size=3, padding="same", groups=2)])
def test_conv2d_gradients(kw):
    conv = Conv2D(2, 4, **kw)
    oh, ow = conv.geo.build((5, 6), "")
    errs = _grad_errors((2, 5, 6), [conv, Activation("softplus"), Flatten(), Dense(4 * oh * ow, 3)])
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("pool", [
    MaxPool1D(2), MaxPool1D(3, stride=2, padding=1), AvgPool1D(2), AvgPool1D(3, stride=2, padding=1),
    AvgPool1D(3, stride=1, padding=(2, 1), count_include_pad=True), GlobalAvgPool(),
])
def test_pool1d_gradients_flow_to_conv(pool):
    conv = Conv1D(2, 3, 3, padding=1)
    shape = pool.build((3, 10))
    errs = _grad_errors((2, 10), [conv, Activation("tanh"), pool, Flatten(), Dense(int(np.prod(shape)), 3)])
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("pool", [MaxPool2D(2), MaxPool2D((2, 3), stride=1, padding=((1, 0), (1, 1))),
                                  AvgPool2D(2, padding=1), AvgPool2D(3, stride=2, padding=1, count_include_pad=True),
                                  GlobalAvgPool()])
def test_pool2d_gradients_flow_to_conv(pool):
    conv = Conv2D(1, 2, 2)
    shape = pool.build((2, 5, 6))
    errs = _grad_errors((1, 6, 7), [conv, Activation("tanh"), pool, Flatten(), Dense(int(np.prod(shape)), 3)])
    assert max(errs.values()) < 1e-6, errs


def test_batchnorm_gradients_conv_and_dense():
    errs = _grad_errors((2, 9), [Conv1D(2, 4, 3), BatchNorm(4), Activation("relu"), MaxPool1D(2), Flatten(),
                                 Dense(12, 5), BatchNorm(5), Activation("tanh"), Dense(5, 3)], n=7)
    # a bias right before BatchNorm has no effect on the output (its gradient is exactly zero, so the
    # relative error is meaningless; checked in absolute terms below)
    del errs["layer0.b"], errs["layer5.b"]
    assert max(errs.values()) < 1e-6, errs
    model = CNN((2, 9), [Conv1D(2, 4, 3), BatchNorm(4), Flatten(), Dense(28, 2)])
    model.layers[0].b = [0.5, -1.0, 2.0, 0.0]
    model.objective(np.random.default_rng(0).normal(size=(6, 18)), np.array([0, 1, 0, 1, 1, 0]),
                    model.default_loss())
    assert np.max(np.abs(model.layers[0].db)) < 1e-12
    assert np.max(np.abs(model.layers[0].dW)) > 1e-6


def test_sigmoid_and_identity_heads_gradients():
    assert max(_grad_errors((1, 8), [Conv1D(1, 2, 3), Activation("leaky_relu"), GlobalAvgPool(), Dense(2, 1)],
                            output="sigmoid").values()) < 1e-6
    model = CNN((1, 8), [Conv1D(1, 2, 3), Activation("tanh"), Flatten(), Dense(12, 2)], output="identity")
    rng = np.random.default_rng(0)
    errs = gradient_errors(model, None, rng.normal(size=(4, 1, 8)), rng.normal(size=(4, 2)))
    assert max(errs.values()) < 1e-6


# ------------------------------------------------------------------------------ model
def test_cnn_parameter_layout_and_state():
    model = CNN((2, 9), [Conv1D(2, 4, 3), BatchNorm(4), Activation("relu"), Flatten(), Dense(28, 3)], l2=0.1)
    conv, bn, dense = model.layers[0], model.layers[1], model.layers[4]
    assert model.n_parameters == 4 * 2 * 3 + 28 * 3 + 4 + 3 + 4 + 4 + 4 + 4
    assert model.n_trainable == model.n_parameters - 8
    assert model._n_decay == 4 * 2 * 3 + 28 * 3  # weights first, L2-decayed
    theta = model._theta
    for arr in (conv.W, dense.W, conv.b, dense.b, bn.gamma, bn.running_var):
        assert np.shares_memory(arr, theta)
    np.testing.assert_array_equal(bn.running_var, 1.0)
    # running averages change only in training passes and never get a gradient
    X = np.random.default_rng(0).normal(size=(8, 2, 9))
    y = np.arange(8) % 3
    before = model.forward(X)
    model.objective(model.flatten_input(X), y, model.default_loss())
    assert not np.allclose(bn.running_mean, 0.0)
    np.testing.assert_array_equal(model._grad[-8:], 0.0)
    assert not np.allclose(model.forward(X), before)


def test_cnn_accepts_flat_and_shaped_inputs_and_rejects_bad_ones():
    model = CNN((2, 3, 4), [Conv2D(2, 2, 2), Flatten(), Dense(12, 2)])
    X = np.random.default_rng(0).normal(size=(5, 2, 3, 4))
    np.testing.assert_array_equal(model.infer(X), model.infer(X.reshape(5, -1)))
    with pytest.raises(DataError, match="per-sample shape"):
        model.infer(X.reshape(5, 2, 4, 3))
    with pytest.raises(DataError, match="features"):
        model.infer(X.reshape(5, -1)[:, :10])
    with pytest.raises(ValueError, match="Flatten"):
        CNN((1, 8), [Conv1D(1, 2, 3), Dense(12, 2)])
    with pytest.raises(ValueError, match="vector of logits"):
        CNN((1, 8), [Conv1D(1, 2, 3)])
    with pytest.raises(ValueError, match="does not fit"):
        CNN((1, 4), [Conv1D(1, 2, 3, dilation=2), Flatten(), Dense(2, 2)])
    with pytest.raises(ValueError, match="groups"):
        Conv1D(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        MaxPool1D(2, padding=2)
    with pytest.raises(ValueError, match="stride 1"):
        Conv1D(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="expects per-sample input"):
        CNN((3, 8), [Conv1D(1, 2, 3), Flatten(), Dense(12, 2)])


def test_cnn_checkpoint_round_trip(tmp_path):
    model = CNN((2, 6, 5), [Conv2D(2, 4, 3, padding=1, groups=2), BatchNorm(4), Activation("leaky_relu", 0.1),
                            MaxPool2D(2, padding=((0, 0), (1, 0))), AvgPool2D(2, stride=1, count_include_pad=True),
                            Flatten(), Dense(16, 3)], output="softmax", l2=1e-3, seed=3)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2, 6, 5))
    y = rng.integers(0, 3, 40)
    model.fit(X, y, epochs=2, batch_size=8)
    path = tmp_path / "cnn.npz"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is CNN and loaded.input_shape == (2, 6, 5)
    np.testing.assert_array_equal(loaded.get_parameters(), model.get_parameters())
    np.testing.assert_array_equal(loaded.infer(X), model.infer(X))
    assert loaded.config() == model.config()
    np.testing.assert_array_equal(loaded.classes_, model.classes_)


def test_checkpoint_rejects_unknown_and_bad_conv_specs(tmp_path):
    import json
    model = CNN((1, 6), [Conv1D(1, 2, 3), Flatten(), Dense(8, 2)])
    model.classes_ = np.arange(2)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arch = json.loads(arrays["architecture"].tobytes())
    arch["layers"][0]["groups"] = 0
    arrays["architecture"] = np.frombuffer(json.dumps(arch).encode(), dtype=np.uint8)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises((CheckpointError, ValueError), match="groups"):
        load_model(bad)


# ------------------------------------------------------------------------------ learning
@pytest.fixture(scope="module")
def motif_data():
    X, y = shifted_motifs(2000, seed=1)
    Xt, yt = shifted_motifs(1000, seed=2)
    return X, y, Xt, yt


def test_cnn_beats_mlp_of_similar_size_on_shifted_motifs(motif_data):
    X, y, Xt, yt = motif_data
    cnn = CNN((1, 64), [Conv1D(1, 8, 7, padding="same"), Activation("relu"), MaxPool1D(2),
                        Conv1D(8, 12, 5, padding="same"), Activation("relu"), GlobalAvgPool(), Dense(12, 4)],
              seed=0)
    fit(cnn, X, y, epochs=10, lr=3e-3, batch_size=32, seed=0)
    mlp = MLP([64, 10, 4], seed=0)
    fit(mlp, X.reshape(len(X), -1), y, epochs=40, lr=3e-3, batch_size=32, seed=0)
    assert abs(cnn.n_parameters - mlp.n_parameters) <= 0.2 * mlp.n_parameters
    acc_cnn = cnn.score(Xt, yt)
    acc_mlp = mlp.score(Xt.reshape(len(Xt), -1), yt)
    assert acc_cnn >= acc_mlp + 0.10, (acc_cnn, acc_mlp)
    assert acc_cnn > 0.85
