"""Residual blocks y = f(x) + s(x): forward against NumPy by hand, gradients against finite
differences (parameters and input), shape rules, parameter layout, checkpoints, and a residual
MLP and a residual CNN trained on the bundled digits."""

import numpy as np
import pytest

from rtinfer.train import (
    CNN, Activation, Adam, BatchNorm, CheckpointError, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool, MaxPool2D,
    Residual, Sequential, datasets, fit, gradient_errors, load_model,
)

TOL = 1e-6


def _randomize(model, seed=0):
    """Non-zero biases and BatchNorm parameters everywhere (also inside blocks)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for name, arr in layer.trainable_params().items():
            if not name.endswith("W"):
                arr[...] = rng.normal(0.0, 0.5, size=arr.shape) + (1.0 if name.endswith("gamma") else 0.0)


def test_forward_is_x_plus_f_of_x():
    rng = np.random.default_rng(0)
    d1, d2 = Dense(4, 6, W=rng.normal(size=(4, 6)), b=rng.normal(size=6)), Dense(6, 4, W=rng.normal(size=(6, 4)))
    block = Residual([d1, Activation("tanh"), d2])
    assert block.build((4,)) == (4,) and block.body == [d1, block.body[1], d2] and block.shortcut is None
    x = rng.normal(size=(5, 4))
    want = x + np.tanh(x @ d1.W + d1.b) @ d2.W + d2.b
    np.testing.assert_allclose(block.forward(x), want, rtol=1e-14)
    np.testing.assert_allclose(block.forward_train(x), want, rtol=1e-14)
    proj = Dense(4, 3, W=rng.normal(size=(4, 3)), b=rng.normal(size=3))
    body = Dense(4, 3, W=rng.normal(size=(4, 3)))
    block = Residual([body, Activation("relu")], shortcut=proj)
    assert block.build((4,)) == (3,)
    np.testing.assert_allclose(block.forward(x), np.maximum(x @ body.W, 0) + x @ proj.W + proj.b, rtol=1e-14)


def test_conv_block_with_strided_projection_matches_its_parts():
    rng = np.random.default_rng(1)
    conv = Conv2D(2, 4, 3, stride=2, padding=1)
    proj = Conv2D(2, 4, 1, stride=2)
    block = Residual([conv, Activation("relu")], shortcut=proj)
    assert block.build((2, 7, 6)) == (4, 4, 3)
    for layer in (conv, proj):
        layer.W = rng.normal(size=layer.w_shape)
        layer.b = rng.normal(size=4)
    x = rng.normal(size=(3, 2, 7, 6))
    np.testing.assert_allclose(block.forward(x), np.maximum(conv.forward(x), 0) + proj.forward(x), rtol=1e-14)


def test_block_input_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    block = Residual([Dense(3, 5, W=rng.normal(size=(3, 5)), b=rng.normal(size=5)), Activation("softplus"),
                      Dense(5, 2, W=rng.normal(size=(5, 2)))], shortcut=Dense(3, 2, W=rng.normal(size=(3, 2))))
    block.build((3,))
    x, dy = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    block.forward_train(x)
    dx = block.backward(dy).copy()
    f = lambda x_: float(np.sum(dy * block.forward(x_)))  # noqa: E731
    eps, num = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num[idx] = (f(xp) - f(xm)) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-7, atol=1e-9)
    identity = Residual([Activation("identity")])
    identity.build((3,))
    identity.forward_train(x)
    np.testing.assert_array_equal(identity.backward(dy[:, :1].repeat(3, 1)), 2 * dy[:, :1].repeat(3, 1))


def test_residual_mlp_gradients():
    model = Sequential((5,), [Dense(5, 4), Activation("tanh"),
                              Residual([Dense(4, 4), Activation("relu"), Dense(4, 4)]), Activation("tanh"),
                              Residual([Dense(4, 3), Activation("softplus")], shortcut=Dense(4, 3)),
                              Residual([Residual([Dense(3, 3), Activation("sigmoid")]), Dense(3, 3)]),  # nested
                              Dense(3, 3)], l2=0.1, seed=0)
    _randomize(model)
    rng = np.random.default_rng(3)
    errors = gradient_errors(model, None, rng.normal(size=(9, 5)), rng.integers(0, 3, 9))
    assert {"layer2.body0.W", "layer4.shortcut.W", "layer5.body0.body0.b"} <= set(errors)
    assert len(errors) == 2 * 8  # every Dense's W and b
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("dims", [1, 2])
def test_residual_cnn_gradients_with_batchnorm_and_projection(dims):
    conv = Conv1D if dims == 1 else Conv2D
    shape = (2, 9) if dims == 1 else (2, 5, 6)
    model = CNN(shape, [conv(2, 3, 3, padding="same"), BatchNorm(3), Activation("relu"),
                        Residual([conv(3, 4, 3, stride=2, padding=1), BatchNorm(4), Activation("tanh"),
                                  conv(4, 4, 3, padding="same"), BatchNorm(4)], shortcut=conv(3, 4, 1, stride=2)),
                        Activation("softplus"), Residual([conv(4, 4, 3, padding="same")]),
                        GlobalAvgPool(), Dense(4, 3)], seed=1)
    _randomize(model, 1)
    rng = np.random.default_rng(4)
    theta = model.get_parameters()
    errors = gradient_errors(model, None, rng.normal(size=(7,) + shape), rng.integers(0, 3, 7))
    assert max(errors.values()) < TOL, errors
    assert model.get_parameters().tobytes() == theta.tobytes()  # running averages untouched


def test_parameter_layout_and_init():
    block = Residual([Conv1D(2, 2, 3, padding="same"), BatchNorm(2)], shortcut=None)
    model = CNN((2, 8), [block, Flatten(), Dense(16, 2)], l2=0.1, seed=5)
    conv, bn = block.body
    for arr in (conv.W, conv.b, bn.gamma, bn.running_var, model.layers[2].W):
        assert np.shares_memory(arr, model.theta)
    assert model.n_parameters == 12 + 2 + 2 * 4 + 32 + 2 and model.n_trainable == model.n_parameters - 4
    assert model._n_decay == 12 + 32  # weights first (L2), then biases / BN, then running averages
    np.testing.assert_array_equal(model.theta[:12], conv.W.ravel())
    assert conv.W.std() > 0 and not conv.b.any()
    again = CNN((2, 8), [Residual([Conv1D(2, 2, 3, padding="same"), BatchNorm(2)]), Flatten(), Dense(16, 2)],
                l2=0.1, seed=5)
    np.testing.assert_array_equal(again.theta, model.theta)


def test_shape_rules_and_bad_blocks():
    with pytest.raises(ValueError, match="identity shortcut needs equal shapes.*pass shortcut="):
        Sequential((4,), [Residual([Dense(4, 3)]), Dense(3, 2)])
    with pytest.raises(ValueError, match="shortcut gives \\(5,\\) but the body gives \\(3,\\)"):
        Sequential((4,), [Residual([Dense(4, 3)], shortcut=Dense(4, 5)), Dense(3, 2)])
    with pytest.raises(ValueError, match="Residual body\\[0\\].*takes \\(3,\\)"):
        Sequential((4,), [Residual([Dense(3, 4)]), Dense(4, 2)])
    with pytest.raises(ValueError, match="at least one layer"):
        Residual([])
    with pytest.raises(ValueError, match="not a layer"):
        Residual([np.zeros(3)])
    shared = Dense(4, 4)
    with pytest.raises(ValueError, match="appears twice"):
        Sequential((4,), [Residual([shared]), shared, Dense(4, 2)])


def test_checkpoint_round_trip(tmp_path):
    model = CNN((1, 6, 6), [Conv2D(1, 2, 3, padding="same"), Activation("relu"),
                            Residual([Conv2D(2, 3, 3, stride=2, padding=1), BatchNorm(3), Activation("relu")],
                                     shortcut=Conv2D(2, 3, 1, stride=2)),
                            MaxPool2D(3), Flatten(), Dense(3, 2)], output="softmax", seed=2)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 1, 6, 6)), rng.integers(0, 2, 30)
    fit(model, X, y, epochs=2, batch_size=10)
    model.save(tmp_path / "r.npz")
    loaded = load_model(tmp_path / "r.npz")
    assert type(loaded) is CNN and loaded.config() == model.config()
    assert loaded.layers[2].spec() == model.layers[2].spec() and loaded.layers[2].spec()["shortcut"]["type"] == "conv2d"
    assert loaded.get_parameters().tobytes() == model.get_parameters().tobytes()
    assert loaded.infer(X).tobytes() == model.infer(X).tobytes()
    seq = Sequential((3,), [Residual([Dense(3, 3)]), Dense(3, 1)], output="identity")
    fit(seq, rng.normal(size=(10, 3)), rng.normal(size=10), epochs=1)
    seq.save(tmp_path / "s.npz")
    assert type(load_model(tmp_path / "s.npz")) is Sequential
    import json
    with np.load(tmp_path / "s.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arch = json.loads(arrays["architecture"].tobytes())
    arch["layers"][0]["body"] = "nope"
    arrays["architecture"] = np.frombuffer(json.dumps(arch).encode(), dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CheckpointError, match="residual body must be a list"):
        load_model(tmp_path / "bad.npz")


# ------------------------------------------------------------------------------ learning
@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", seed=0)


def test_residual_mlp_learns_digits(digits):
    model = Sequential((64,), [Dense(64, 64), Activation("relu"),
                               Residual([Dense(64, 64), Activation("relu"), Dense(64, 64)]), Activation("relu"),
                               Dense(64, 10)], preprocess="standardize", l2=1e-3, seed=0)
    history = fit(model, digits.X_train, digits.y_train, optimizer=Adam(3e-3), epochs=20, seed=0)
    assert model.score(digits.X_test, digits.y_test) >= 0.95
    assert history.accuracy[-1] > 0.99


def test_residual_cnn_learns_digits(digits):
    X, Xt = digits.X_train.reshape(-1, 1, 8, 8), digits.X_test.reshape(-1, 1, 8, 8)
    model = CNN((1, 8, 8), [Conv2D(1, 8, 3, padding="same"), BatchNorm(8), Activation("relu"),
                            Residual([Conv2D(8, 16, 3, stride=2, padding=1), BatchNorm(16), Activation("relu"),
                                      Conv2D(16, 16, 3, padding="same"), BatchNorm(16)],
                                     shortcut=Conv2D(8, 16, 1, stride=2)), Activation("relu"),
                            Residual([Conv2D(16, 16, 3, padding="same"), BatchNorm(16)]), Activation("relu"),
                            Flatten(), Dense(256, 10)], preprocess="standardize", seed=0)
    history = fit(model, X, digits.y_train, optimizer=Adam(3e-3), epochs=3, batch_size=32, seed=0)
    assert model.score(Xt, digits.y_test) >= 0.94
    assert history.accuracy[-1] > 0.97
