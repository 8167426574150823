"""scikit-learn estimator manners (get_params / set_params, clone, cross_val_score, GridSearchCV)
and class labels of any kind mapped through classes_ (kept by checkpoints and freeze)."""

import json

import numpy as np
import pytest

from rtinfer.train import (
    CNN, MLP, Activation, Conv1D, DataError, Dense, Flatten, LinearRegression, LogisticRegression, Residual,
    Sequential, SoftmaxRegression, datasets, fit, load_model,
)

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone, is_classifier, is_regressor  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", seed=0)


@pytest.fixture(scope="module")
def cancer():
    return datasets.load("breast_cancer", seed=0)


MODELS = [
    lambda: LinearRegression(solver="gd", lr=0.1, max_iter=50, preprocess="standardize"),
    lambda: LogisticRegression(l2=0.01, preprocess="whiten", seed=2),
    lambda: SoftmaxRegression(n_classes=3, l2=0.1),
    lambda: MLP([4, 5, 3], activation="leaky_relu", alpha=0.2, init="glorot", seed=7),
    lambda: Sequential((4,), [Dense(4, 4), Activation("tanh"), Residual([Dense(4, 4)]), Dense(4, 2)], seed=1),
    lambda: CNN((1, 8), [Conv1D(1, 2, 3), Flatten(), Dense(12, 3)], l2=0.5),
]


@pytest.mark.parametrize("make", MODELS)
def test_get_params_set_params_and_clone(make):
    model = make()
    params = model.get_params()
    twin = clone(model)
    assert type(twin) is type(model) and twin is not model
    assert twin.get_params().keys() == params.keys()
    assert twin.config() == model.config()
    np.testing.assert_array_equal(twin.get_parameters(), model.get_parameters())  # same seed, same init
    assert twin.set_params(l2=0.25) is twin and twin.l2 == 0.25 and twin.get_params()["l2"] == 0.25
    assert model.l2 == params["l2"]  # the original is untouched
    with pytest.raises(ValueError, match="invalid parameter"):
        twin.set_params(learning_rate=1.0)
    assert is_classifier(model) == (model.output != "identity") and is_regressor(model) == (model.output == "identity")


def test_clone_of_a_fitted_model_is_unfitted(cancer):
    model = LogisticRegression(preprocess="standardize").fit(cancer.X_train, cancer.y_train)
    twin = clone(model)
    assert not twin.built and twin.classes_ is None and not twin.preprocessor.fitted


def test_cross_val_score_and_grid_search(digits, cancer):
    scores = cross_val_score(LogisticRegression(preprocess="standardize"), cancer.X_train, cancer.y_train, cv=4)
    assert scores.shape == (4,) and scores.min() > 0.9
    mlp = MLP([64, 32, 10], preprocess="standardize", seed=0)
    scores = cross_val_score(mlp, digits.X_train, digits.y_train, cv=3, params={"epochs": 8, "lr": 3e-3})
    assert scores.min() > 0.85
    assert not mlp.history_  # cross_val_score trained clones
    search = GridSearchCV(LogisticRegression(preprocess="standardize"), {"l2": [1e-4, 1e-2, 10.0]}, cv=3)
    search.fit(cancer.X_train, cancer.y_train)
    assert search.best_params_["l2"] in (1e-4, 1e-2)  # l2 = 10 underfits
    assert search.best_estimator_.score(cancer.X_test, cancer.y_test) > 0.94
    search = GridSearchCV(MLP([64, 16, 10], preprocess="standardize"), {"l2": [0.0, 1e-3], "seed": [0, 1]}, cv=2)
    search.fit(digits.X_train[:400], digits.y_train[:400], epochs=3)
    assert len(search.cv_results_["params"]) == 4


# ------------------------------------------------------------------------------ labels
@pytest.mark.parametrize("labels", [("malignant", "benign"), (1, 2), (-1, 1), (False, True), (0.5, 2.5)])
def test_binary_labels_of_any_kind(cancer, labels):
    names = np.array(labels)
    y_train, y_test = names[cancer.y_train], names[cancer.y_test]
    model = LogisticRegression(preprocess="standardize").fit(cancer.X_train, y_train)
    reference = LogisticRegression(preprocess="standardize").fit(cancer.X_train, cancer.y_train)
    order = np.argsort(names)  # classes_ are sorted: the logit stands for the larger label
    np.testing.assert_array_equal(model.classes_, names[order])
    pred = model.predict(cancer.X_test)
    assert pred.dtype == model.classes_.dtype
    np.testing.assert_array_equal(pred, names[reference.predict(cancer.X_test)])
    assert model.score(cancer.X_test, y_test) == reference.score(cancer.X_test, cancer.y_test)
    proba = model.predict_proba(cancer.X_test)
    # (reversed labels: the same optimum with the logit negated, equal up to the Newton tolerance)
    np.testing.assert_allclose(proba[:, list(order).index(1)], reference.predict_proba(cancer.X_test)[:, 1],
                               rtol=1e-6, atol=1e-9)


def test_string_labels_through_training_checkpoint_and_freeze(tmp_path, digits):
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    model = MLP([64, 32, 10], preprocess="standardize", seed=0)
    fit(model, digits.X_train, names[digits.y_train], epochs=10, lr=3e-3, validation_split=0.1,
        early_stopping=True, monitor="val_accuracy")
    np.testing.assert_array_equal(model.classes_, np.sort(names))
    assert model.score(digits.X_test, names[digits.y_test]) > 0.93
    assert set(model.predict(digits.X_test[:50])) <= set(names)
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(digits.X_test), model.predict(digits.X_test))
    assert loaded.classes_.dtype.kind == "U"
    fit(loaded, digits.X_train, names[digits.y_train], epochs=1, resume=True)  # labels mapped by classes_
    export = pytest.importorskip("export")
    frozen = export.freeze(model)
    assert json.loads(frozen.meta["classes"]) == sorted(names.tolist())


def test_fewer_labels_than_outputs(digits):
    model = MLP([64, 8, 10], seed=0)
    fit(model, digits.X_train[:100], np.where(digits.y_train[:100] == 9, 0, digits.y_train[:100]), epochs=1)
    np.testing.assert_array_equal(model.classes_, np.arange(10))  # integer labels in [0, 10): 0..9
    with pytest.raises(DataError, match="2 class\\(es\\) \\('a', 'b'\\) for the 10 of the MLP"):
        fit(model, digits.X_train[:4], ["a", "b", "a", "b"], epochs=1)
    soft = SoftmaxRegression()
    fit(soft, digits.X_train[:100], digits.y_train[:100] + 1, epochs=1)
    np.testing.assert_array_equal(soft.classes_, np.arange(1, 11))  # no empty class 0
    with pytest.raises(DataError, match="single class"):
        fit(SoftmaxRegression(), digits.X_train[:6], ["x"] * 6)
