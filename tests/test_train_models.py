"""Models against references: lstsq, ridge normal equations, Newton vs gradient descent, and
accuracy on the shipped real datasets with fixed seeds."""

import numpy as np
import pytest

from rtinfer.train import (
    MLP,
    Activation,
    Adam,
    Dense,
    LinearRegression,
    LogisticRegression,
    SoftmaxRegression,
    apply_head,
    datasets,
    fit,
)


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 6)) * np.array([1.0, 3.0, 0.5, 2.0, 1.0, 4.0]) + 2.0
    W = rng.normal(size=(6, 2))
    Y = X @ W + np.array([1.5, -0.7]) + 0.3 * rng.normal(size=(120, 2))
    return X, Y


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", seed=0)


def test_closed_form_matches_lstsq(regression):
    X, Y = regression
    for y in (Y, Y[:, 0]):
        model = LinearRegression().fit(X, y)
        ref = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), y, rcond=None)[0]
        ref = ref.reshape(7, -1)
        np.testing.assert_allclose(model.layers[0].W, ref[:-1], atol=1e-8, rtol=0)
        np.testing.assert_allclose(model.layers[0].b, ref[-1], atol=1e-8, rtol=0)
        assert model.predict(X).shape == np.shape(y)


def test_ridge_closed_form_is_the_objective_minimum(regression):
    X, Y = regression
    l2 = 0.05
    model = LinearRegression(l2=l2).fit(X, Y)
    W, b = model.layers[0].W, model.layers[0].b
    # stationarity of 0.5 * mean((XW + b - Y)^2) + 0.5 * l2 |W|^2 (mean over N*k entries)
    R = X @ W + b - Y
    n, k = Y.shape
    np.testing.assert_allclose(X.T @ R / (n * k) + l2 * W, 0, atol=1e-10)
    np.testing.assert_allclose(R.sum(axis=0) / (n * k), 0, atol=1e-10)
    assert np.linalg.norm(W) < np.linalg.norm(LinearRegression().fit(X, Y).layers[0].W)


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_gradient_descent_converges_to_closed_form(regression, l2):
    X, Y = regression
    exact = LinearRegression(l2=l2, preprocess="standardize").fit(X, Y)
    gd = LinearRegression(solver="gd", l2=l2, tol=1e-11, preprocess="standardize").fit(X, Y)
    assert gd.converged_ and gd.n_iter_ > 10
    np.testing.assert_allclose(gd.get_parameters(), exact.get_parameters(), atol=1e-8)
    np.testing.assert_allclose(gd.predict(X), exact.predict(X), atol=1e-7)


def test_newton_reaches_gd_optimum_in_far_fewer_iterations():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 5)) @ np.diag([1.0, 2.0, 0.5, 1.5, 1.0])
    p = 1.0 / (1.0 + np.exp(-(X @ np.array([1.0, -1.0, 2.0, 0.5, 0.0]) - 0.5)))
    y = (rng.random(300) < p).astype(int)
    newton = LogisticRegression(solver="newton", l2=1e-2, tol=1e-9).fit(X, y)
    gd = LogisticRegression(solver="gd", l2=1e-2, tol=1e-9).fit(X, y)
    assert newton.converged_ and gd.converged_
    np.testing.assert_allclose(newton.get_parameters(), gd.get_parameters(), atol=1e-7)
    assert newton.loss_ == pytest.approx(gd.loss_, abs=1e-12)
    assert newton.n_iter_ <= 10
    assert gd.n_iter_ >= 20 * newton.n_iter_
    # the optimum: gradient of mean BCE + 0.5 l2 |w|^2 vanishes
    w, b = newton.layers[0].W[:, 0], newton.layers[0].b[0]
    q = 1.0 / (1.0 + np.exp(-(X @ w + b)))
    np.testing.assert_allclose(X.T @ (q - y) / len(y) + 1e-2 * w, 0, atol=1e-9)


def test_softmax_regression_digits_accuracy(digits):
    model = SoftmaxRegression(preprocess="standardize", seed=0)
    history = fit(model, digits.X_train, digits.y_train, optimizer=Adam(1e-2), epochs=20, batch_size=32, seed=0)
    assert model.score(digits.X_test, digits.y_test) >= 0.93
    assert history.loss[-1] < history.loss[0]
    assert len(model.layers) == 1 and model.layers[0].W.shape == (64, 10)


def test_mlp_digits_accuracy(digits):
    model = MLP([64, 64, 10], activation="relu", output="softmax", l2=1e-3, preprocess="standardize", seed=0)
    history = fit(model, digits.X_train, digits.y_train, optimizer=Adam(3e-3), epochs=20, batch_size=32, seed=0)
    assert model.score(digits.X_test, digits.y_test) >= 0.96
    assert history.accuracy[-1] > 0.99 and len(history.loss) == 20


def test_logistic_regression_breast_cancer_accuracy():
    ds = datasets.load("breast_cancer", seed=0)
    model = LogisticRegression(solver="newton", l2=1e-3, preprocess="standardize").fit(ds.X_train, ds.y_train)
    assert model.converged_ and model.n_iter_ < 30
    assert model.score(ds.X_test, ds.y_test) >= 0.94
    proba = model.predict_proba(ds.X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict(ds.X_test), (proba[:, 1] > 0.5).astype(int))


def test_linear_regression_diabetes():
    ds = datasets.load("diabetes", seed=0)
    model = LinearRegression(preprocess="standardize").fit(ds.X_train, ds.y_train)
    assert model.score(ds.X_test, ds.y_test) > 0.4  # R^2; the diabetes linear baseline is ~0.5
    mlp = MLP([10, 16, 1], activation="tanh", output="identity", preprocess="standardize", seed=0)
    y_scale = ds.y_train.std()
    fit(mlp, ds.X_train, ds.y_train / y_scale, optimizer=Adam(1e-2), epochs=40, seed=0)
    assert mlp.score(ds.X_test, ds.y_test / y_scale) > 0.3


def test_interface_for_freeze(digits):
    model = MLP([64, 16, 8, 10], activation="leaky_relu", alpha=0.05, preprocess="whiten", seed=2)
    fit(model, digits.X_train[:300], digits.y_train[:300], epochs=2, seed=0)
    kinds = [type(layer) for layer in model.layers]
    assert kinds == [Dense, Activation, Dense, Activation, Dense]
    assert [layer.name for layer in model.layers[1::2]] == ["leaky_relu", "leaky_relu"]
    assert model.layers[1].alpha == 0.05
    assert model.output == "softmax"
    np.testing.assert_array_equal(model.classes_, np.arange(10))
    # forward = the layers applied to x @ A + c, by hand; infer = softmax(forward)
    X = digits.X_test[:20]
    A, c = model.preprocessor.as_affine()
    h = X @ A + c
    for layer in model.layers:
        if isinstance(layer, Dense):
            assert layer.W.dtype == np.float64 and layer.b.shape == (layer.W.shape[1],)
            h = h @ layer.W + layer.b
        else:
            h = np.where(h >= 0, h, layer.alpha * h)
    np.testing.assert_allclose(model.forward(X), h, rtol=1e-9, atol=1e-9)
    p = model.infer(X)
    np.testing.assert_allclose(p, np.exp(h) / np.exp(h).sum(axis=1, keepdims=True), rtol=1e-9)
    np.testing.assert_array_equal(model.predict(X), np.argmax(h, axis=1))
    np.testing.assert_allclose(model.predict_proba(X), p)


def test_sigmoid_head_and_regressor_interface():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = (X[:, 0] > 0).astype(int)
    model = MLP([3, 4, 1], activation="sigmoid", output="sigmoid", seed=0)
    fit(model, X, y, epochs=5)
    z = model.forward(X)
    assert z.shape == (50, 1)
    np.testing.assert_allclose(model.infer(X), 1 / (1 + np.exp(-z)), rtol=1e-12)
    assert model.predict_proba(X).shape == (50, 2)
    reg = LinearRegression().fit(X, X @ np.array([1.0, 2.0, 3.0]))
    assert reg.classes_ is None and reg.output == "identity" and reg.preprocessor is None
    np.testing.assert_allclose(reg.infer(X), reg.forward(X))
    with pytest.raises(ValueError, match="regressor"):
        reg.predict_proba(X)


def test_apply_head_softmax_is_stable():
    z = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]])
    p = apply_head("softmax", z)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[1], [1 / 3] * 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_init_schemes():
    relu = MLP([400, 300, 10], activation="relu", seed=0)
    tanh = MLP([400, 300, 10], activation="tanh", seed=0)
    # He normal: std sqrt(2/n_in); Glorot uniform: std sqrt(2/(n_in+n_out))
    assert relu.layers[0].W.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert tanh.layers[0].W.std() == pytest.approx(np.sqrt(2 / 700), rel=0.02)
    assert np.abs(tanh.layers[0].W).max() <= np.sqrt(6 / 700)
    assert relu.layers[2].W.std() == pytest.approx(np.sqrt(2 / 310), rel=0.1)  # output layer: Glorot
    assert not relu.layers[0].b.any()
    glorot = MLP([400, 300, 10], activation="relu", seed=0, init="glorot")
    assert glorot.layers[0].W.std() == pytest.approx(np.sqrt(2 / 700), rel=0.02)
    he = MLP([400, 300, 10], activation="tanh", seed=0, init="he")
    assert he.layers[2].W.std() == pytest.approx(np.sqrt(2 / 300), rel=0.1)
    with pytest.raises(ValueError, match="init"):
        MLP([2, 2], init="lecun")
