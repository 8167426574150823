"""Resumable training: optimizer state in checkpoints, 5 + 5 epochs == 10 epochs bit for bit
(history continued), learning-rate schedules for every optimizer, version-1 checkpoints."""

import json

import numpy as np
import pytest

from rtinfer.train import (
    CNN, MLP, SGD, Activation, AdaGrad, Adam, BatchNorm, CheckpointError, Conv1D, Cosine, Dense, GlobalAvgPool,
    InverseTime, LinearRegression, LogisticRegression, Momentum, RMSProp, StepDecay, datasets, fit, load_model,
)
from rtinfer.train.cnn_data import shifted_motifs
from rtinfer.train.optimizers import optimizer_from_config

OPTIMIZERS = {
    "sgd-1/t": lambda: SGD(0.05, schedule="inverse"),
    "momentum-step": lambda: Momentum(0.02, schedule=StepDecay(30, 0.5)),
    "adagrad": lambda: AdaGrad(0.05),
    "rmsprop-cosine": lambda: RMSProp(1e-3, schedule=Cosine(200, min_factor=0.1)),
    "adam-cosine": lambda: Adam(2e-3, schedule=Cosine(150)),
}


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", seed=0)


def _mlp():
    return MLP([64, 16, 10], preprocess="standardize", seed=3)


def _same_history(a, b):
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert getattr(a, key) == getattr(b, key), key


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_five_plus_five_epochs_equal_ten_bit_for_bit(tmp_path, digits, name):
    X, y = digits.X_train[:600], digits.y_train[:600]
    straight = _mlp()
    fit(straight, X, y, optimizer=OPTIMIZERS[name](), epochs=10, batch_size=40, validation_split=0.1, seed=5)

    first = _mlp()
    fit(first, X, y, optimizer=OPTIMIZERS[name](), epochs=5, batch_size=40, validation_split=0.1, seed=5)
    path = tmp_path / "half.npz"
    first.save(path)
    resumed = load_model(path)
    history = fit(resumed, X, y, epochs=5, resume=True)
    assert resumed.get_parameters().tobytes() == straight.get_parameters().tobytes()
    assert history is resumed.history_ and history.epochs == 10
    _same_history(history, straight.history_)
    assert resumed.optimizer_.t == straight.optimizer_.t
    for key, arr in straight.optimizer_.state().items():
        assert resumed.optimizer_.state()[key].tobytes() == arr.tobytes()
    fit(first, X, y, epochs=5, resume=True)  # in memory, without the checkpoint
    assert first.get_parameters().tobytes() == straight.get_parameters().tobytes()


def test_resume_with_batchnorm_and_early_stopping_state(tmp_path):
    X, y = shifted_motifs(300, length=32, seed=4)

    def cnn():
        return CNN((1, 32), [Conv1D(1, 4, 5, padding="same"), BatchNorm(4), Activation("relu"), GlobalAvgPool(),
                             Dense(4, 4)], seed=1)

    straight = cnn()
    fit(straight, X, y, lr=5e-3, epochs=6, batch_size=25, seed=2)
    part = cnn()
    fit(part, X, y, lr=5e-3, epochs=2, batch_size=25, seed=2)
    part.save(tmp_path / "a.npz")
    part = load_model(tmp_path / "a.npz")
    fit(part, X, y, epochs=3, resume=True)
    part.save(tmp_path / "b.npz")
    part = load_model(tmp_path / "b.npz")
    fit(part, X, y, epochs=1, resume=True)
    assert part.get_parameters().tobytes() == straight.get_parameters().tobytes()  # running stats included
    _same_history(part.history_, straight.history_)


def test_plain_fit_restarts_the_optimizer_and_history(digits):
    X, y = digits.X_train[:300], digits.y_train[:300]
    model = _mlp()
    fit(model, X, y, epochs=3)
    fit(model, X, y, epochs=2)
    assert model.history_.epochs == 2 and model.optimizer_.t == 2 * 10  # 300 / 32 -> 10 steps per epoch


def test_checkpoint_holds_the_optimizer_state(tmp_path, digits):
    model = _mlp()
    fit(model, digits.X_train[:200], digits.y_train[:200], optimizer=Adam(1e-3, beta2=0.99), epochs=2)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        arch = json.loads(npz["architecture"].tobytes())
        np.testing.assert_array_equal(npz["opt.m"], model.optimizer_.state()["m"])
        np.testing.assert_array_equal(npz["opt.v"], model.optimizer_.state()["v"])
    assert arch["version"] == 2 and arch["optimizer"]["name"] == "adam" and arch["optimizer"]["t"] == 14
    assert arch["optimizer"]["beta2"] == 0.99 and arch["train_state"]["batch_size"] == 32
    loaded = load_model(tmp_path / "m.npz")
    assert repr(loaded.optimizer_) == repr(model.optimizer_) and loaded.optimizer_.t == 14


def test_resume_refuses_what_it_cannot_continue(tmp_path, digits):
    X, y = digits.X_train[:200], digits.y_train[:200]
    with pytest.raises(ValueError, match="resume=True needs a model trained by fit"):
        fit(_mlp(), X, y, resume=True)
    model = _mlp()
    fit(model, X, y, optimizer=Adam(1e-3), epochs=1, batch_size=20)
    with pytest.raises(ValueError, match="batch_size=20; got batch_size=64"):
        fit(model, X, y, epochs=1, resume=True, batch_size=64)
    with pytest.raises(ValueError, match="continues the saved optimizer"):
        fit(model, X, y, epochs=1, resume=True, optimizer=SGD(0.1))
    with pytest.raises(ValueError, match="lr=0.001; got lr=0.5"):
        fit(model, X, y, epochs=1, resume=True, lr=0.5)
    with pytest.raises(ValueError, match="seed=0; got seed=4"):
        fit(model, X, y, epochs=1, resume=True, seed=4)
    split_model = _mlp()
    fit(split_model, X, y, epochs=1, validation_split=0.2)
    with pytest.raises(ValueError, match="validation_data cannot replace it"):
        fit(split_model, X, y, epochs=1, resume=True, validation_data=(X, y))
    fit(model, X, y, epochs=1, resume=True, batch_size=20, optimizer="adam")  # the same settings are fine
    assert model.history_.epochs == 2
    with pytest.raises(ValueError, match="is not one of the model's classes_"):
        fit(model, X, np.where(y == 3, 11, y), epochs=1, resume=True)


# ------------------------------------------------------------------------------ schedules
def test_schedule_factors():
    assert [InverseTime().factor(t) for t in (1, 2, 4)] == [1.0, 0.5, 0.25]
    assert InverseTime(10.0).factor(11) == 0.5
    step = StepDecay(3, 0.5)
    assert [step.factor(t) for t in range(1, 8)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    cos = Cosine(4, min_factor=0.2)
    want = [0.2 + 0.8 * 0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(5)]
    np.testing.assert_allclose([cos.factor(t) for t in range(1, 6)], want, rtol=1e-15)
    assert cos.factor(1) == 1.0 and cos.factor(100) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="needs its length"):
        Adam(schedule="cosine")
    with pytest.raises(ValueError, match="step_size"):
        StepDecay(0)


@pytest.mark.parametrize("cls", [SGD, Momentum, AdaGrad, RMSProp, Adam])
def test_every_optimizer_scales_its_steps_by_the_schedule(cls):
    """A schedule multiplies the step size: with lr * factor(t) as a constant lr at each step,
    the same updates come out (for SGD, AdaGrad, RMSProp, Adam the step is linear in lr; for
    Momentum, v = beta v - eta_t g)."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=4) for _ in range(6)]
    sched = StepDecay(2, 0.3)
    opt = cls(0.1, schedule=sched)
    theta = np.zeros(4)
    deltas = []
    for g in grads:
        before = theta.copy()
        opt.step(theta, g)
        deltas.append(theta - before)
    ref = cls(0.1)
    th = np.zeros(4)
    for t, g in enumerate(grads, start=1):
        before = th.copy()
        ref.lr = 0.1 * sched.factor(t)  # same state evolution, step size lr_t
        ref.step(th, g)
        np.testing.assert_allclose(deltas[t - 1], th - before, rtol=1e-14, atol=1e-17)
    assert opt.lr_at(5) == pytest.approx(0.1 * 0.09)


def test_optimizer_config_round_trip():
    for make in OPTIMIZERS.values():
        opt = make()
        again = optimizer_from_config(json.loads(json.dumps(opt.config())))
        assert repr(again) == repr(opt) and again.config() == opt.config()


# ------------------------------------------------------------------------------ version 1
def test_version1_checkpoints_still_load(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    for model, config in [
        (LinearRegression().fit(X, X @ [1.0, 2.0, 3.0]),
         {"method": "closed_form", "l2": 0.0, "lr": None, "max_iter": 100000, "tol": 1e-10, "seed": 0}),
        (LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)),
         {"method": "newton", "l2": 1e-3, "lr": None, "max_iter": 100, "tol": 1e-8, "seed": 0}),
    ]:
        arch = {"format": "rtinfer.train.checkpoint", "version": 1, "model": type(model).__name__, "config": config,
                "output": model.output, "layers": [layer.spec() for layer in model.layers], "preprocessor": None,
                "history": None}
        arrays = {"architecture": np.frombuffer(json.dumps(arch).encode(), dtype=np.uint8), "theta": model.theta}
        if model.classes_ is not None:
            arrays["classes"] = np.arange(2)
        path = tmp_path / "v1.npz"
        np.savez(path, **arrays)
        loaded = load_model(path)
        assert loaded.solver == config["method"] and loaded.optimizer_ is None
        np.testing.assert_array_equal(loaded.infer(X), model.infer(X))
    arch["version"] = 3
    arrays["architecture"] = np.frombuffer(json.dumps(arch).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="version 3 is not supported"):
        load_model(path)
