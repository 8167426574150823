"""Analytic gradients against central differences (float64) for every layer, activation, loss
and the L2 penalty."""

import numpy as np
import pytest

from rtinfer.train import (
    ACTIVATIONS,
    MLP,
    Activation,
    Dense,
    LinearRegression,
    LogisticRegression,
    SoftmaxRegression,
    check_gradients,
    gradient_errors,
)
from rtinfer.train.layers import activation_forward

TOL = 1e-6


def _random_biases(model, seed=0):
    """Nonzero biases: with zero biases a sample whose hidden ReLUs are all off sits exactly on
    the next ReLU's kink, where the derivative is one-sided."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, Dense):
            layer.b = rng.normal(scale=0.5, size=layer.b.shape)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    X = rng.normal(size=(11, 5))
    return {
        "X": X,
        "labels3": np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 1, 0]),
        "binary": np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1]),
        "targets2": rng.normal(size=(11, 2)),
    }


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_mlp_gradients_every_activation_and_loss(data, activation, output):
    n_out = {"softmax": 3, "sigmoid": 1, "identity": 2}[output]
    y = {"softmax": data["labels3"], "sigmoid": data["binary"], "identity": data["targets2"]}[output]
    model = MLP([5, 4, 3, n_out], activation=activation, output=output, seed=3)
    _random_biases(model)
    errors = gradient_errors(model, None, data["X"], y)
    assert set(errors) == {"layer0.W", "layer0.b", "layer2.W", "layer2.b", "layer4.W", "layer4.b"}
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("activation", ["relu", "tanh", "leaky_relu"])
def test_gradients_with_l2_decay(data, activation):
    model = MLP([5, 6, 3], activation=activation, alpha=0.2 if activation == "leaky_relu" else None,
                l2=0.3, seed=1)
    _random_biases(model)
    assert check_gradients(model, "cross_entropy", data["X"], data["labels3"]) < TOL


def test_l2_decays_weights_not_biases(data):
    model = MLP([5, 3], output="identity", l2=0.0, seed=0)
    model.layers[0].b = np.ones(3)
    X, y = data["X"], data["targets2"][:, :1].repeat(3, axis=1)
    from rtinfer.train import MeanSquaredError
    g0 = model.objective(X, y, MeanSquaredError()) , model.gradient().copy()
    model.l2 = 0.5
    value = model.objective(X, y, MeanSquaredError())
    g1 = model.gradient().copy()
    W = model.layers[0].W
    assert value == pytest.approx(g0[0] + 0.25 * np.sum(W**2), rel=1e-12)
    np.testing.assert_allclose(g1[: W.size], g0[1][: W.size] + 0.5 * W.ravel(), rtol=1e-12)
    np.testing.assert_array_equal(g1[W.size :], g0[1][W.size :])  # biases: no decay


def test_linear_models_gradients(data):
    X = data["X"]
    assert check_gradients(LinearRegression(l2=0.1), "mse", X, data["targets2"]) < TOL
    assert check_gradients(LogisticRegression(l2=0.1), None, X, data["binary"]) < TOL
    assert check_gradients(SoftmaxRegression(l2=0.1, seed=2), None, X, data["labels3"]) < TOL


def test_gradients_through_preprocessing(data):
    X = data["X"] * 10 + 3
    for pre in ("standardize", "whiten"):
        model = MLP([5, 4, 3], activation="tanh", preprocess=pre, seed=0)
        assert check_gradients(model, None, X, data["labels3"]) < TOL


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_input_gradient(name):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 4)) * 3
    dy = rng.normal(size=(6, 4))
    act = Activation(name, 0.1 if name == "leaky_relu" else None)
    act.forward_train(x)
    dx = act.backward(dy).copy()
    eps = 1e-6
    numeric = (activation_forward(name, x + eps, act.alpha) - activation_forward(name, x - eps, act.alpha)) / (2 * eps) * dy
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-9)


def test_dense_backward_input_gradient():
    rng = np.random.default_rng(8)
    layer = Dense(4, 3, W=rng.normal(size=(4, 3)), b=rng.normal(size=3))
    x, dy = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    layer.forward_train(x)
    dx = layer.backward(dy).copy()
    # the objective sum(dy * (x W + b)) is linear in x: dx = dy W^T exactly, dW = x^T dy, db = sum dy
    np.testing.assert_allclose(dx, dy @ layer.W.T, rtol=1e-14)
    np.testing.assert_allclose(layer.dW, x.T @ dy, rtol=1e-14)
    np.testing.assert_allclose(layer.db, dy.sum(axis=0), rtol=1e-14)
    eps = 1e-6
    f = lambda x_: float(np.sum(dy * layer.forward(x_)))
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num[idx] = (f(xp) - f(xm)) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-7, atol=1e-9)


def test_activation_values_match_definitions():
    x = np.array([[-40.0, -2.0, -0.5, 0.0, 0.5, 2.0, 40.0]])
    np.testing.assert_allclose(activation_forward("sigmoid", x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(activation_forward("softplus", x), np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), rtol=1e-15)
    np.testing.assert_array_equal(activation_forward("relu", x), np.maximum(x, 0))
    np.testing.assert_allclose(activation_forward("leaky_relu", x, 0.1), np.where(x >= 0, x, 0.1 * x))
    np.testing.assert_allclose(activation_forward("leaky_relu", x, 1.5), np.where(x >= 0, x, 1.5 * x))
    np.testing.assert_allclose(activation_forward("tanh", x), np.tanh(x))
    assert np.all(np.isfinite(activation_forward("sigmoid", np.array([[-1e308, 1e308]]))))


def test_loss_values_match_naive_formulas_and_stay_finite():
    from rtinfer.train import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy

    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 4))
    t = np.array([0, 3, 1, 2, 3, 0])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    value, grad = SoftmaxCrossEntropy().value_and_grad(z, t)
    assert value == pytest.approx(-np.mean(np.log(p[np.arange(6), t])), rel=1e-13)
    np.testing.assert_allclose(grad, (p - np.eye(4)[t]) / 6, rtol=1e-12, atol=1e-15)

    zb = rng.normal(size=(6, 1))
    tb = np.array([0.0, 1, 1, 0, 1, 0])
    q = 1 / (1 + np.exp(-zb[:, 0]))
    value, grad = BinaryCrossEntropy().value_and_grad(zb, tb)
    assert value == pytest.approx(-np.mean(tb * np.log(q) + (1 - tb) * np.log(1 - q)), rel=1e-13)
    np.testing.assert_allclose(grad[:, 0], (q - tb) / 6, rtol=1e-12)

    y = rng.normal(size=(6, 4))
    value, grad = MeanSquaredError().value_and_grad(z, y)
    assert value == pytest.approx(0.5 * np.mean((z - y) ** 2), rel=1e-13)
    np.testing.assert_allclose(grad, (z - y) / z.size, rtol=1e-13)

    # huge logits: log-sum-exp and softplus keep everything finite and exact
    big = np.array([[1000.0, -1000.0, 0.0], [-800.0, 800.0, 799.0]])
    value, grad = SoftmaxCrossEntropy().value_and_grad(big, np.array([1, 2]))
    assert value == pytest.approx((2000.0 + (1.0 + np.log1p(np.exp(-1.0)))) / 2, rel=1e-12)
    assert np.all(np.isfinite(grad))
    value, grad = BinaryCrossEntropy().value_and_grad(np.array([[1000.0], [-1000.0]]), np.array([0.0, 0.0]))
    assert value == pytest.approx(500.0) and np.all(np.isfinite(grad))


try:  # only the property test below needs hypothesis; the tests above run without it
    import hypothesis
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - installed by the [test] extra
    hypothesis = None


if hypothesis is None:  # pragma: no cover
    def test_gradients_random_architectures():
        pytest.skip("needs hypothesis (pip install -e '.[test]')")
else:
    @hypothesis.settings(max_examples=25, deadline=None, derandomize=True)
    @hypothesis.given(
        sizes=st.lists(st.integers(1, 5), min_size=1, max_size=3),
        activation=st.sampled_from(ACTIVATIONS),
        output=st.sampled_from(["softmax", "sigmoid", "identity"]),
        l2=st.sampled_from([0.0, 0.05]),
        seed=st.integers(0, 1000),
    )
    def test_gradients_random_architectures(sizes, activation, output, l2, seed):
        rng = np.random.default_rng(seed)
        n_in = sizes[0]
        n_out = {"softmax": 3, "sigmoid": 1, "identity": 2}[output]
        X = rng.normal(size=(7, n_in))
        y = {"softmax": rng.integers(0, 3, 7), "sigmoid": rng.integers(0, 2, 7), "identity": rng.normal(size=(7, 2))}[output]
        model = MLP([*sizes, n_out], activation=activation, output=output, l2=l2, seed=seed)
        _random_biases(model, seed)
        assert check_gradients(model, None, X, y) < TOL
