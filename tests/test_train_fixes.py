"""Defects of issue 15, items 1-5, one test each (every one fails on the code before the fix):
gradient checking that leaves the model untouched and has an absolute floor, solvers that keyword
arguments never change, warnings at max_iter, weights kept finite on divergence, conflicting
arguments refused, early stopping on any metric with a stratified split, finite whitening."""

import warnings

import numpy as np
import pytest

from rtinfer.train import (
    CNN, MLP, SGD, Activation, Adam, BatchNorm, Conv1D, Dense, Flatten, LinearRegression, LogisticRegression,
    MaxPool1D, SoftmaxRegression, Whitener, datasets, fit, gradient_errors,
)
from rtinfer.train.cnn_data import shifted_motifs


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", seed=0)


# ------------------------------------------------------------------------------ 1. gradient checks
def _bn_cnn():
    return CNN((1, 32), [Conv1D(1, 4, 5, padding="same"), BatchNorm(4), Activation("relu"), MaxPool1D(2),
                         Flatten(), Dense(64, 4)], seed=0)


def test_gradient_check_leaves_batchnorm_statistics_and_accuracy_untouched():
    X, y = shifted_motifs(400, length=32, seed=3)
    model = _bn_cnn()
    fit(model, X, y, epochs=3, lr=3e-3, seed=0)
    before_theta = model.get_parameters()
    before_acc = model.score(X, y)
    bn = model.layers[1]
    before_stats = (bn.running_mean.copy(), bn.running_var.copy())
    errors = gradient_errors(model, None, X[:6] * 5.0 + 3.0, y[:6])  # a batch unlike the training data
    assert max(errors.values()) < 1e-6, errors
    np.testing.assert_array_equal(bn.running_mean, before_stats[0])
    np.testing.assert_array_equal(bn.running_var, before_stats[1])
    assert model.get_parameters().tobytes() == before_theta.tobytes()
    assert model.score(X, y) == before_acc


def test_exactly_zero_gradient_is_not_reported_as_error_one():
    model = _bn_cnn()
    rng = np.random.default_rng(0)
    model.layers[0].b = rng.normal(size=4)  # a bias feeding BatchNorm: its true gradient is exactly 0
    errors = gradient_errors(model, None, rng.normal(size=(6, 1, 32)), rng.integers(0, 4, 6))
    assert np.max(np.abs(model.layers[0].db)) < 1e-12  # analytic: round-off only
    assert errors["layer0.b"] < 1e-6, errors
    assert max(errors.values()) < 1e-6, errors


def test_gradient_check_still_catches_a_wrong_gradient(monkeypatch):
    model = MLP([5, 4, 3], activation="tanh", seed=0)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(8, 5)), rng.integers(0, 3, 8)
    layer = model.layers[2]
    original = type(layer).backward

    def wrong(self, dy, need_dx=True):
        out = original(self, dy, need_dx)
        if self is layer:
            self.dW[...] *= 1.01  # a 1% error
        return out

    monkeypatch.setattr(type(layer), "backward", wrong)
    errors = gradient_errors(model, None, X, y)
    assert errors["layer2.W"] > 1e-3 and errors["layer0.W"] < 1e-6


def test_gradient_check_fits_no_preprocessor_and_keeps_classes(digits):
    model = MLP([64, 8, 10], preprocess="standardize", seed=0)
    gradient_errors(model, None, digits.X_train[:5], digits.y_train[:5])
    assert not model.preprocessor.fitted and model.classes_ is None


# ------------------------------------------------------------------------------ 2. solvers
def test_keyword_arguments_never_change_the_solver():
    ds = datasets.load("diabetes", seed=0)
    exact = LinearRegression(preprocess="standardize").fit(ds.X_train, ds.y_train)
    quiet = LinearRegression(preprocess="standardize").fit(ds.X_train, ds.y_train, verbose=False)
    assert quiet.get_parameters().tobytes() == exact.get_parameters().tobytes()
    assert quiet.score(ds.X_test, ds.y_test) > 0.45  # the closed form's R^2, not 20 epochs of Adam
    bc = datasets.load("breast_cancer", seed=0)
    newton = LogisticRegression(preprocess="standardize").fit(bc.X_train, bc.y_train)
    quiet = LogisticRegression(preprocess="standardize").fit(bc.X_train, bc.y_train, verbose=False)
    assert quiet.get_parameters().tobytes() == newton.get_parameters().tobytes() and quiet.converged_
    with pytest.raises(ValueError, match="solver='closed_form'.*epochs"):
        LinearRegression().fit(ds.X_train, ds.y_train, epochs=5)
    with pytest.raises(ValueError, match="solver='newton'.*optimizer"):
        LogisticRegression().fit(bc.X_train, bc.y_train, optimizer="adam")


def test_solver_is_explicit_and_inapplicable_arguments_are_refused():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1
    with pytest.raises(ValueError, match="lr=0.1 does not apply to solver='closed_form'"):
        LinearRegression(solver="closed_form", lr=0.1)
    with pytest.raises(ValueError, match="max_iter=5 does not apply to solver='minibatch'"):
        LogisticRegression(solver="minibatch", max_iter=5)
    with pytest.raises(ValueError, match="lr=0.1 does not apply to solver='minibatch'.*fit\\(lr"):
        LinearRegression(solver="minibatch", lr=0.1)
    with pytest.raises(ValueError, match="solver must be one of"):
        LinearRegression(solver="lbfgs")
    with pytest.raises(ValueError, match="solver='minibatch' to train it with rtinfer.train.fit"):
        fit(LinearRegression(), X, y)
    mb = LinearRegression(solver="minibatch").fit(X, y, optimizer=SGD(0.5), epochs=300, batch_size=60,
                                                  shuffle=False)
    exact = LinearRegression().fit(X, y)
    np.testing.assert_allclose(mb.get_parameters(), exact.get_parameters(), atol=1e-8)
    assert mb.history_.epochs == 300


def test_solver_stopping_at_max_iter_warns():
    from rtinfer.train import ConvergenceWarning

    bc = datasets.load("breast_cancer", seed=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=3.*converged_ is False"):
        model = LogisticRegression(solver="gd", max_iter=3, preprocess="standardize").fit(bc.X_train, bc.y_train)
    assert not model.converged_ and model.n_iter_ == 3
    assert issubclass(ConvergenceWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a converged solver says nothing
        LogisticRegression(preprocess="standardize").fit(bc.X_train, bc.y_train)


# ------------------------------------------------------------------------------ 3. divergence, conflicts
def test_divergence_restores_the_last_finite_weights(digits):
    y = digits.y_train.astype(np.float64)  # regression on raw pixels 0..16: SGD(0.2) blows up

    def run(epochs):
        model = MLP([64, 16, 1], activation="tanh", output="identity", seed=0)
        fit(model, digits.X_train, y, optimizer=SGD(0.2), epochs=epochs, seed=0)
        return model

    model = MLP([64, 16, 1], activation="tanh", output="identity", seed=0)
    with pytest.raises(ValueError, match="diverged at epoch") as info:
        fit(model, digits.X_train, y, optimizer=SGD(0.2), epochs=50, seed=0)
    assert isinstance(info.value, ValueError) and "restored" in str(info.value)
    assert np.isfinite(model.get_parameters()).all()
    finite_epochs = model.history_.epochs
    assert 0 < finite_epochs < 50 and all(np.isfinite(model.history_.loss))
    # the weights are those of the end of the last finite epoch, bit for bit
    assert run(finite_epochs).get_parameters().tobytes() == model.get_parameters().tobytes()
    gd = LinearRegression(solver="gd", lr=50.0)
    ds = datasets.load("diabetes")
    with pytest.raises(ValueError, match="diverged"):
        gd.fit(ds.X_train, ds.y_train)
    assert np.isfinite(gd.get_parameters()).all()


def test_conflicting_arguments_are_refused(digits):
    X, y = digits.X_train[:100], digits.y_train[:100]
    model = SoftmaxRegression()
    with pytest.raises(ValueError, match="lr=0.5 conflicts with optimizer=Adam"):
        fit(model, X, y, optimizer=Adam(1e-3), lr=0.5)
    with pytest.raises(ValueError, match="patience=3 only apply with early_stopping=True"):
        fit(model, X, y, patience=3)
    with pytest.raises(ValueError, match="monitor='val_loss' only apply with early_stopping"):
        fit(model, X, y, monitor="val_loss")
    with pytest.raises(ValueError, match="validation_split or validation_data"):
        fit(model, X, y, validation_split=0.2, validation_data=(X, y))
    with pytest.raises(ValueError, match="t0 applies to schedule='inverse' only"):
        SGD(0.1, t0=5)


# ------------------------------------------------------------------------------ 4. early stopping
def test_early_stopping_on_validation_accuracy(digits):
    model = MLP([64, 32, 10], preprocess="standardize", seed=0)
    history = fit(model, digits.X_train, digits.y_train, optimizer=SGD(0.5), epochs=40, batch_size=16,
                  validation_split=0.2, early_stopping=True, monitor="val_accuracy", patience=4, seed=0)
    best = history.best_epoch
    assert history.val_accuracy[best - 1] == max(history.val_accuracy[:best + 3])
    assert history.val_accuracy.index(history.val_accuracy[best - 1]) == best - 1  # the first maximum
    # the kept weights are the best epoch's: the validation accuracy recomputed from them matches
    _, val = datasets.split_indices(digits.y_train, 0.2, np.random.SeedSequence(0).spawn(1)[0], stratify=True)
    assert model.score(digits.X_train[val], digits.y_train[val]) == history.val_accuracy[best - 1]
    with pytest.raises(ValueError, match="monitor='val_accuracy' needs validation data"):
        fit(MLP([64, 4, 10]), digits.X_train, digits.y_train, epochs=1, early_stopping=True, monitor="val_accuracy")
    with pytest.raises(ValueError, match="needs a classifier"):
        fit(LinearRegression(solver="minibatch"), digits.X_train, digits.y_train * 1.0, epochs=1,
            early_stopping=True, monitor="accuracy")
    with pytest.raises(ValueError, match="monitor must be one of"):
        fit(MLP([64, 4, 10]), digits.X_train, digits.y_train, epochs=1, early_stopping=True, monitor="f1")


@pytest.mark.parametrize("seed", range(8))
def test_validation_split_is_stratified(seed):
    # 95 samples of class 1 and 5 of class 0, all features zero: the model can only learn the
    # prior, so after one epoch it predicts class 1 for every sample and its validation accuracy
    # is the share of class 1 in the validation set: 19/20 when each class is split 20/80.
    X = np.zeros((100, 2))
    y = np.ones(100, dtype=int)
    y[np.random.default_rng(seed).choice(100, 5, replace=False)] = 0
    model = SoftmaxRegression(n_classes=2)
    history = fit(model, X, y, optimizer=SGD(0.5), epochs=2, batch_size=10, validation_split=0.2, seed=seed)
    assert history.val_accuracy == [0.95, 0.95]


# ------------------------------------------------------------------------------ 5. whitening
def test_whitening_leaves_a_training_constant_feature_finite():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=(200, 3)) @ np.array([[2.0, 0.5, 0], [0, 1.0, 0.3], [0, 0, 0.7]]),
                         np.full(200, 4.0)])  # feature 3 is constant in training
    w = Whitener().fit(X)
    sample = X[:5].copy()
    moved = sample.copy()
    moved[:, 3] = 9.0  # the constant feature changes at test time
    Z, Zm = w.transform(sample), w.transform(moved)
    assert np.all(np.abs(Zm) < 10)
    np.testing.assert_allclose(Zm, Z, atol=1e-9)  # the direction without training variance is dropped
    A, c = w.as_affine()
    np.testing.assert_allclose(moved @ A + c, Zm, atol=1e-9)
    Zt = w.transform(X)  # still whitening: identity covariance on the 3 directions with variance
    np.testing.assert_allclose(Zt.T @ Zt / len(Zt), np.diag([0.0, 1.0, 1.0, 1.0]), atol=1e-6)
