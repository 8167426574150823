"""Determinism, checkpoints, preprocessing, datasets, the training loop's options, input
validation and the ``rtinfer train`` command."""

import json
import os

import numpy as np
import pytest

from rtinfer.train import (
    MLP,
    SGD,
    Adam,
    CheckpointError,
    DataError,
    LinearRegression,
    LogisticRegression,
    SoftmaxRegression,
    Standardizer,
    Whitener,
    datasets,
    fit,
    load_model,
)


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", seed=0)


def _validation_split(y, fraction, seed):
    """The split fit() documents: stratified, from the stream SeedSequence(seed).spawn(1)[0]."""
    return datasets.split_indices(y, fraction, np.random.SeedSequence(seed).spawn(1)[0], stratify=True)


def _train_mlp(ds, seed):
    model = MLP([64, 32, 10], activation="tanh", preprocess="standardize", seed=seed)
    fit(model, ds.X_train, ds.y_train, optimizer=Adam(1e-3), epochs=3, batch_size=50, seed=seed,
        validation_split=0.1)
    return model


def test_same_seed_bit_identical_weights(digits):
    a, b = _train_mlp(digits, 7), _train_mlp(digits, 7)
    assert a.get_parameters().tobytes() == b.get_parameters().tobytes()
    assert a.history_.loss == b.history_.loss
    c = _train_mlp(digits, 8)
    assert not np.array_equal(a.get_parameters(), c.get_parameters())


@pytest.mark.parametrize("kind", ["mlp-whiten", "softmax", "logistic", "linear", "mlp-sigmoid"])
def test_checkpoint_round_trip_exact(tmp_path, digits, kind):
    rng = np.random.default_rng(0)
    if kind == "mlp-whiten":
        model = MLP([64, 12, 10], activation="leaky_relu", alpha=0.2, l2=1e-4, preprocess="whiten", seed=1)
        fit(model, digits.X_train, digits.y_train, epochs=2, validation_split=0.2)
        X = digits.X_test
    elif kind == "softmax":
        model = SoftmaxRegression(preprocess="standardize")
        fit(model, digits.X_train, digits.y_train, epochs=1)
        X = digits.X_test
    elif kind == "logistic":
        X = rng.normal(size=(40, 3))
        model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    elif kind == "linear":
        X = rng.normal(size=(40, 3))
        model = LinearRegression(preprocess="standardize").fit(X, X @ np.ones((3, 2)))
    else:
        X = rng.normal(size=(40, 3))
        model = MLP([3, 5, 1], activation="softplus", output="sigmoid", seed=4)
        fit(model, X, (X[:, 1] > 0).astype(int), epochs=2)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.output == model.output
    assert loaded.get_parameters().tobytes() == model.get_parameters().tobytes()
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert loaded.infer(X).tobytes() == model.infer(X).tobytes()
    if model.classes_ is not None:
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
    if model.preprocessor is not None:
        for key, arr in model.preprocessor.state().items():
            assert loaded.preprocessor.state()[key].tobytes() == arr.tobytes()
    if model.history_ is not None:
        assert loaded.history_.loss == model.history_.loss
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []  # no temp file left


def test_checkpoint_uses_no_pickle_and_json_architecture(tmp_path, digits):
    model = SoftmaxRegression()
    fit(model, digits.X_train[:100], digits.y_train[:100], epochs=1)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["architecture"].dtype == np.uint8
        arch = json.loads(npz["architecture"].tobytes())
        assert all(npz[k].dtype != object for k in npz.files)
    assert arch["format"] == "rtinfer.train.checkpoint" and arch["model"] == "SoftmaxRegression"


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(path, **arrays)


def test_corrupt_and_foreign_checkpoints_raise_value_error(tmp_path, digits):
    model = MLP([64, 4, 10], seed=0)
    fit(model, digits.X_train[:50], digits.y_train[:50], epochs=1)
    good = tmp_path / "good.npz"
    model.save(good)
    raw = good.read_bytes()

    cases = {}
    p = tmp_path / "truncated.npz"
    p.write_bytes(raw[: len(raw) // 2])
    cases[p] = "not a readable"
    p = tmp_path / "text.npz"
    p.write_text("hello")
    cases[p] = "not a readable"
    p = tmp_path / "array.npy"
    np.save(p, np.arange(3))
    cases[p] = "single .npy array"
    p = tmp_path / "pickled.npz"
    np.save(p.with_suffix(".npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    os.replace(p.with_suffix(".npy"), p)
    cases[p] = "not a readable"
    p = tmp_path / "foreign.npz"
    np.savez(p, a=np.arange(3))
    cases[p] = "no 'architecture'"
    for name, change, msg in [
        ("badjson", {"architecture": np.frombuffer(b"{nope", dtype=np.uint8)}, "not valid JSON"),
        ("notheta", {"theta": None}, "'theta'"),
        ("shorttheta", {"theta": np.zeros(5)}, "'theta'"),
        ("noclasses", {"classes": None}, "classes"),
    ]:
        p = tmp_path / f"{name}.npz"
        p.write_bytes(raw)
        _rewrite(p, **change)
        cases[p] = msg
    arch = json.loads(np.load(good)["architecture"].tobytes())
    for name, edit, msg in [
        ("format", {"format": "other"}, "format"),
        ("version", {"version": 99}, "version"),
        ("klass", {"model": "Transformer"}, "unknown model class"),
        ("layer", {"layers": [{"type": "conv9d"}]}, "unknown type"),
    ]:
        p = tmp_path / f"{name}.npz"
        p.write_bytes(raw)
        _rewrite(p, architecture=np.frombuffer(json.dumps({**arch, **edit}).encode(), dtype=np.uint8))
        cases[p] = msg
    for path, msg in cases.items():
        with pytest.raises(CheckpointError, match=msg) as info:
            load_model(path)
        assert isinstance(info.value, ValueError)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


def test_atomic_save_keeps_old_file_on_failure(tmp_path, digits, monkeypatch):
    model = SoftmaxRegression()
    fit(model, digits.X_train[:60], digits.y_train[:60], epochs=1)
    path = tmp_path / "m.npz"
    model.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_whitening_makes_training_covariance_identity(digits):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4)) @ np.array([[2.0, 0, 0, 0], [1.0, 1.0, 0, 0], [0, 0.5, 3.0, 0], [1, 1, 1, 0.1]]) + 5.0
    w = Whitener(eps=0.0).fit(X)
    Z = w.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.T @ Z / len(Z), np.eye(4), atol=1e-10)
    A, c = w.as_affine()
    np.testing.assert_allclose(X @ A + c, Z, atol=1e-10)
    # with eps > 0 and a rank-deficient input (digits has constant pixels): the whitened training
    # covariance is diag(lambda / (lambda + eps)), i.e. identity on the directions with variance
    # and 0 (not blown up) on the directions without
    wd = Whitener(eps=1e-8).fit(digits.X_train)
    Zd = wd.transform(digits.X_train)
    lam = wd.eigenvalues_
    np.testing.assert_allclose(Zd.T @ Zd / len(Zd), np.diag(lam / (lam + 1e-8)), atol=1e-6)
    assert np.sum(lam > 1e-3) > 50 and np.sum(lam < 1e-12) >= 3


def test_standardizer_affine_and_fitted_on_training_split_only(digits):
    s = Standardizer().fit(digits.X_train)
    Z = s.transform(digits.X_train)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    std = Z.std(axis=0)
    assert np.all((np.abs(std - 1) < 1e-12) | (std == 0))  # constant pixels stay 0
    A, c = s.as_affine()
    np.testing.assert_allclose(digits.X_test @ A + c, s.transform(digits.X_test), atol=1e-12)
    # inside fit(): the preprocessor sees the training part only, not the validation split
    model = MLP([64, 8, 10], preprocess="standardize", seed=0)
    fit(model, digits.X_train, digits.y_train, epochs=1, validation_split=0.25, seed=3)
    train_idx, val_idx = _validation_split(digits.y_train, 0.25, seed=3)
    np.testing.assert_allclose(model.preprocessor.mean_, digits.X_train[train_idx].mean(axis=0), rtol=1e-12)
    assert not np.allclose(model.preprocessor.mean_, digits.X_train.mean(axis=0), rtol=1e-6)


def test_datasets_match_sklearn_and_split_is_stratified():
    sk = pytest.importorskip("sklearn.datasets")
    for name, ref in [("digits", sk.load_digits()), ("breast_cancer", sk.load_breast_cancer()),
                      ("diabetes", sk.load_diabetes(scaled=False))]:
        X, y = datasets.load_arrays(name)
        np.testing.assert_array_equal(X, ref.data)
        np.testing.assert_array_equal(y, ref.target)
    ds = datasets.load("digits", test_size=0.2, seed=0)
    assert ds.X_train.shape == (1438, 64) and ds.X_test.shape == (359, 64)
    counts_test = np.bincount(ds.y_test, minlength=10)
    counts_all = np.bincount(np.concatenate([ds.y_train, ds.y_test]))
    np.testing.assert_array_equal(counts_test, np.round(0.2 * counts_all).astype(int))
    again = datasets.load("digits", test_size=0.2, seed=0)
    np.testing.assert_array_equal(again.X_test, ds.X_test)
    other = datasets.load("digits", test_size=0.2, seed=1)
    assert not np.array_equal(other.y_test, ds.y_test)
    bc = datasets.load("breast_cancer")
    assert bc.n_classes == 2 and len(bc.feature_names) == 30 and bc.target_names == ("malignant", "benign")
    db = datasets.load("diabetes")
    assert db.task == "regression" and db.y_train.dtype == np.float64 and db.X_train.shape[1] == 10
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        datasets.load("mnist")


def test_early_stopping_restores_best_weights(digits):
    model = MLP([64, 32, 10], preprocess="standardize", seed=0)
    # a learning rate this large makes the validation loss go up after a few epochs
    history = fit(model, digits.X_train, digits.y_train, optimizer=SGD(2.0), epochs=40, batch_size=16,
                  validation_split=0.2, early_stopping=True, patience=3, seed=0)
    best = history.best_epoch
    assert history.val_loss[best - 1] == min(history.val_loss)
    assert history.stopped_early and history.epochs == best + 3
    # the kept weights are the best epoch's: recomputing the validation loss gives it back
    _, val = _validation_split(digits.y_train, 0.2, seed=0)
    from rtinfer.train import SoftmaxCrossEntropy
    z = model.forward(digits.X_train[val])
    assert SoftmaxCrossEntropy()(z, digits.y_train[val]) == pytest.approx(history.val_loss[best - 1], rel=1e-12)


def test_history_and_verbose_progress(digits, capsys):
    model = SoftmaxRegression(preprocess="standardize")
    Xv, yv = digits.X_test, digits.y_test
    history = fit(model, digits.X_train, digits.y_train, epochs=3, validation_data=(Xv, yv), verbose=True)
    err = capsys.readouterr().err
    assert err.count("epoch ") == 3 and "val_acc" in err
    assert len(history.loss) == len(history.accuracy) == len(history.val_loss) == len(history.val_accuracy) == 3
    assert history.val_accuracy[-1] == pytest.approx(model.score(Xv, yv))
    fit(model, digits.X_train, digits.y_train, epochs=2, verbose=False)
    assert capsys.readouterr().err == ""
    fit(model, digits.X_train, digits.y_train, epochs=2)  # default: only runs longer than 2 s report
    assert capsys.readouterr().err == ""
    assert "3 epochs" in history.summary()


def test_auto_progress_for_long_runs(digits, capsys, monkeypatch):
    import rtinfer.train.trainer as trainer

    monkeypatch.setattr(trainer, "AUTO_PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(trainer, "AUTO_PROGRESS_EVERY", 3600.0)
    fit(SoftmaxRegression(), digits.X_train[:200], digits.y_train[:200], epochs=4)
    err = capsys.readouterr().err
    assert err.count("epoch ") == 2 and "epoch 1/4" in err and "epoch 4/4" in err  # first and last


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), [0, 1], "NaN/Inf"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), [0, 1], "row 0, column 1"),
        (np.ones((3, 2)), [0, 1], "3 samples but y has 2"),
        (np.ones(4), [0, 1, 0, 1], "2-D"),
        (np.ones((0, 2)), [], "empty"),
        (np.ones((2, 0)), [0, 1], "0 features"),
        (np.ones((3, 2)), [0, 1, 2], "y has 3 classes \\(0, 1, 2\\); the LogisticRegression \\(sigmoid output\\) has 2"),
        (np.ones((3, 2)), [0, 1, -1], "3 classes"),
        (np.ones((3, 2)), [0, 1, 0.5], "3 classes"),
        (np.ones((3, 2)), [3, 3, 3], "y has 1 class\\(es\\) \\(3\\)"),
        (np.ones((3, 2)), [1, "b", 1], "mixes label types"),
        (np.ones((3, 2)), [0, 1, np.nan], "NaN"),
        (np.array([["x", "y"]] * 2), [0, 1], "numeric"),
    ],
)
def test_bad_inputs_raise_value_error(X, y, match):
    with pytest.raises(DataError, match=match) as info:
        LogisticRegression().fit(X, y)
    assert isinstance(info.value, ValueError)


def test_bad_inputs_to_mlp_and_fit():
    model = MLP([4, 3, 5], seed=0)
    X = np.ones((6, 4))
    with pytest.raises(DataError, match="y has 6 classes \\(0, 1, 2, 3, 4, 5\\); the MLP has 5"):
        fit(model, X, [0, 1, 2, 3, 4, 5])
    with pytest.raises(DataError, match="X has 3 features; the model expects 4"):
        fit(model, np.ones((6, 3)), [0] * 6)
    with pytest.raises(DataError, match="expects 4"):
        model.predict(np.ones((2, 3)))
    with pytest.raises(DataError, match="NaN"):
        model.predict(np.array([[0, 0, 0, np.nan]]))
    with pytest.raises(ValueError, match="validation_split"):
        fit(model, X, [0] * 6, validation_split=1.5)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, X, [0] * 6, epochs=0)
    with pytest.raises(ValueError, match="needs output 'identity'"):
        fit(model, X, [0] * 6, loss="mse")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        MLP([2, 2], activation="swish")
    with pytest.raises(DataError, match="output column"):
        reg = LinearRegression(solver="minibatch").fit(X, np.ones((6, 2)), epochs=1)
        fit(reg, X, np.ones((6, 3)))
    with pytest.raises(ValueError, match="not fitted"):
        SoftmaxRegression().predict(X)
    with pytest.raises(DataError, match="single class"):
        fit(SoftmaxRegression(), X, [0] * 6)


def test_train_package_imports_no_runtime_numba_or_onnx():
    import subprocess
    import sys

    code = ("import sys, rtinfer.train; bad = [m for m in ('numba', 'onnx', 'onnxruntime', 'sklearn', "
            "'rtinfer.runtime', 'rtinfer.kernels', 'export') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_train(tmp_path, capsys):
    from rtinfer.cli import main

    out = tmp_path / "digits.npz"
    rc = main(["train", "--dataset", "digits", "--hidden", "16", "--epochs", "3", "--quiet", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "test accuracy" in text and "history:" in text
    model = load_model(out)
    assert model.layers[0].W.shape == (64, 16)
    ds = datasets.load("digits")
    reported = float(text.split("test accuracy: ")[1].split()[0])
    assert model.score(ds.X_test, ds.y_test) == pytest.approx(reported, abs=1e-4)
    assert main(["train", "--dataset", "diabetes", "--model", "softmax", "-o", str(tmp_path / "x.npz")]) == 2
    assert "classification" in capsys.readouterr().err
