"""Mini-batch training loop for any model of ``rtinfer.train`` (``Model`` in ``network``).

    history = fit(model, X, y, optimizer=Adam(1e-3), epochs=30, batch_size=32, seed=0,
                  validation_split=0.1, early_stopping=True, monitor="val_accuracy", patience=5)
    history = fit(model, X, y, epochs=10, resume=True)      # 10 more epochs, exactly as if never stopped

Determinism: the per-epoch shuffles come from ``np.random.default_rng(seed)``, the validation
split from a stream of its own (``np.random.SeedSequence(seed).spawn(1)[0]``); weight init comes
from the model's own seed. The same seeds give bit-identical weights.

Validation split: ``validation_split`` of the samples, taken per class for classifiers
(``datasets.split_indices(classes, validation_split, split stream, stratify=True)``: round(split *
n_c) of each class) and uniformly for regressors. The preprocessor (if unfitted) is fitted on the
training part only.

Resuming: after ``fit`` the model keeps ``optimizer_`` (the optimizer with its full state: step
count, moments, schedule position), ``train_state_`` (seed, batch size, shuffle, validation split,
loss and the shuffle stream's state) and ``history_``; checkpoints store all three.
``fit(model, X, y, epochs=k, resume=True)`` runs k more epochs from there, appending to the
history: 5 epochs + 5 resumed epochs give the same bits as 10 epochs on the same data. A resumed
run takes its settings from ``train_state_``; an argument that contradicts them is refused, as is
any other pair of arguments that cannot both hold (an optimizer instance and ``lr``, a validation
split and validation data, early-stopping options without ``early_stopping``).

Per-epoch history: ``loss`` is the mean over the epoch's batches (weighted by batch size) of the
objective (loss + L2 penalty) as computed during training; ``accuracy`` (classifiers) the
fraction of correct training predictions during that pass; ``val_loss`` / ``val_accuracy`` the
objective and accuracy on the validation data after the epoch; ``lr`` the step size of the
epoch's last step. Early stopping watches ``monitor`` (default ``val_loss`` with validation data,
else ``loss``; "accuracy" metrics are maximized, losses minimized), restores the best weights
and starts afresh on a resumed run.

Divergence: a non-finite batch loss or non-finite parameters at the end of an epoch restore the
weights (and optimizer and shuffle state) of the end of the last finite epoch and raise
``DivergenceError`` (a ValueError); ``model.history_`` keeps the finite epochs.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ._validate import DataError, DivergenceError, check_nonneg_float, check_positive_int, check_X
from .datasets import split_indices
from .losses import get_loss
from .optimizers import Optimizer, get_optimizer

AUTO_PROGRESS_AFTER = 2.0  # seconds of training before verbose=None starts printing
AUTO_PROGRESS_EVERY = 1.0  # seconds between progress lines with verbose=None
DEFAULTS = {"optimizer": "adam", "batch_size": 32, "shuffle": True, "seed": 0, "validation_split": 0.0}
MONITORS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class History:
    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)  # empty for regression
    val_loss: list = field(default_factory=list)  # empty without validation data
    val_accuracy: list = field(default_factory=list)
    lr: list = field(default_factory=list)  # step size at each epoch's last step
    epoch_seconds: list = field(default_factory=list)
    best_epoch: int | None = None  # 1-based epoch whose weights were kept (early stopping)
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def as_dict(self) -> dict:
        """JSON-able copy (what checkpoints store)."""
        return {"loss": [float(v) for v in self.loss], "accuracy": [float(v) for v in self.accuracy],
                "val_loss": [float(v) for v in self.val_loss], "val_accuracy": [float(v) for v in self.val_accuracy],
                "lr": [float(v) for v in self.lr], "epoch_seconds": [float(v) for v in self.epoch_seconds],
                "best_epoch": self.best_epoch, "stopped_early": bool(self.stopped_early)}

    def summary(self) -> str:
        if not self.loss:
            return "no epochs run"
        parts = [f"{self.epochs} epochs", f"loss {self.loss[0]:.4f} -> {self.loss[-1]:.4f}"]
        if self.accuracy:
            parts.append(f"accuracy {self.accuracy[-1]:.4f}")
        if self.val_loss:
            parts.append(f"val_loss {min(self.val_loss):.4f} (best)")
        if self.val_accuracy:
            parts.append(f"val_accuracy {self.val_accuracy[-1]:.4f}")
        if self.best_epoch is not None:
            parts.append(f"best epoch {self.best_epoch}" + (" (stopped early)" if self.stopped_early else ""))
        parts.append(f"{float(np.median(self.epoch_seconds)) * 1e3:.1f} ms/epoch (median)")
        return ", ".join(parts)

    def line(self, total: int | None = None) -> str:
        """One progress line for the last epoch."""
        line = f"epoch {self.epochs}" + (f"/{total}" if total else "") + f"  loss {self.loss[-1]:.4f}"
        if self.accuracy:
            line += f"  acc {self.accuracy[-1]:.4f}"
        if self.val_loss:
            line += f"  val_loss {self.val_loss[-1]:.4f}"
        if self.val_accuracy:
            line += f"  val_acc {self.val_accuracy[-1]:.4f}"
        return line + f"  ({self.epoch_seconds[-1] * 1e3:.1f} ms)"


def _n_correct(output: str, z: np.ndarray, t: np.ndarray) -> int:
    if output == "softmax":
        return int(np.count_nonzero(np.argmax(z, axis=1) == t))
    return int(np.count_nonzero((z[:, 0] > 0.0) == (t > 0.5)))


def _settings(resume: bool, model, given: dict) -> dict:
    """Run settings: the given values over the defaults, or (resume) the saved ones, refusing a
    given value that differs from the saved one."""
    if not resume:
        return {k: DEFAULTS[k] if given.get(k) is None else given[k] for k in DEFAULTS if k != "optimizer"}
    saved = model.train_state_
    out = {}
    for k in ("batch_size", "shuffle", "seed", "validation_split"):
        if given[k] is not None and given[k] != saved[k]:
            raise ValueError(f"resume=True continues the saved run with {k}={saved[k]!r}; got {k}={given[k]!r} "
                             f"(start a new run without resume to change it)")
        out[k] = saved[k]
    return out


def _resumed_optimizer(model, optimizer, lr) -> Optimizer:
    opt = model.optimizer_
    if optimizer is not None and optimizer is not opt:
        same_name = isinstance(optimizer, str) and optimizer.lower() == opt.name
        if not same_name:
            raise ValueError(f"resume=True continues the saved optimizer {opt!r}; got optimizer={optimizer!r} "
                             f"(start a new run without resume to change it)")
    if lr is not None and float(lr) != opt.lr:
        raise ValueError(f"resume=True continues the saved optimizer with lr={opt.lr!r}; got lr={lr!r}")
    if opt.size != model.n_parameters:
        raise ValueError(f"the saved optimizer state is for {opt.size} parameters; the model has {model.n_parameters}")
    return opt


def fit(model, X, y, *, optimizer=None, lr: float | None = None, loss=None, epochs: int = 20,
        batch_size: int | None = None, shuffle: bool | None = None, seed: int | None = None,
        validation_split: float | None = None, validation_data=None, early_stopping: bool = False,
        monitor: str | None = None, patience: int | None = None, min_delta: float | None = None,
        resume: bool = False, callback=None, verbose: bool | None = None) -> History:
    """Train ``model`` in place on (X, y) by mini-batch gradient steps; returns the History
    (also ``model.history_``). See the module doc for determinism, resuming and divergence.

    optimizer: an Optimizer instance, or a name ("sgd", "momentum", "adagrad", "rmsprop", "adam";
        default "adam") with ``lr``. loss: None (the default for the model's output head), a name
        or a Loss. batch_size 32, shuffle True, seed 0, validation_split 0.0 unless given.
    epochs: epochs this call runs (on top of the saved ones with ``resume=True``).
    early_stopping: stop after ``patience`` (default 5) epochs without an improvement of
        ``monitor`` by more than ``min_delta`` (default 0) and keep the best weights.
    callback: called as ``callback(history)`` after every epoch (e.g. a progress display).
    verbose: True prints one line per epoch to stderr; False prints nothing; None (default)
        prints only for long runs: once training has run for AUTO_PROGRESS_AFTER seconds, at most
        one line per AUTO_PROGRESS_EVERY seconds (and the last epoch)."""
    solver = getattr(model, "solver", "minibatch")
    if solver != "minibatch":
        raise ValueError(f"{type(model).__name__}(solver={solver!r}) is fitted by its own solver with model.fit(X, y); "
                         f"construct it with solver='minibatch' to train it with rtinfer.train.fit")
    epochs = check_positive_int(epochs, "epochs")
    if not early_stopping and (monitor is not None or patience is not None or min_delta is not None):
        given = [f"{k}={v!r}" for k, v in (("monitor", monitor), ("patience", patience), ("min_delta", min_delta))
                 if v is not None]
        raise ValueError(f"{', '.join(given)} only apply with early_stopping=True")
    patience = check_positive_int(5 if patience is None else patience, "patience")
    min_delta = check_nonneg_float(0.0 if min_delta is None else min_delta, "min_delta")
    if resume and (getattr(model, "optimizer_", None) is None or getattr(model, "train_state_", None) is None):
        raise ValueError("resume=True needs a model trained by fit() (or loaded from a checkpoint saved after fit)")
    if validation_data is not None and validation_split:
        raise ValueError("give validation_split or validation_data, not both")
    run = _settings(resume, model, {"batch_size": batch_size, "shuffle": shuffle, "seed": seed,
                                    "validation_split": validation_split})
    batch_size = check_positive_int(run["batch_size"], "batch_size")
    split = float(run["validation_split"])
    if resume and split > 0.0 and validation_data is not None:
        raise ValueError(f"resume=True continues the saved run, which validates on its validation_split={split}; "
                         f"validation_data cannot replace it")
    if not 0.0 <= split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1); got {run['validation_split']!r}")
    if isinstance(run["seed"], bool) or int(run["seed"]) != run["seed"] or int(run["seed"]) < 0:
        raise ValueError(f"seed must be an integer >= 0; got {run['seed']!r}")
    seed = int(run["seed"])
    loss = get_loss(loss, model.output)
    if resume and loss.name != model.train_state_["loss"]:
        raise ValueError(f"resume=True continues the saved run with loss {model.train_state_['loss']!r}; got {loss.name!r}")
    if resume:
        opt = _resumed_optimizer(model, optimizer, lr)
    else:
        opt = get_optimizer(DEFAULTS["optimizer"] if optimizer is None else optimizer, lr)

    # data: validated, targets encoded (classes_ set on a new run), split, preprocessed
    X = check_X(model.flatten_input(X), n_features=model.n_features_in_)
    t, n_out = model.encode_targets(y, X.shape[0], fit_classes=not resume)
    classify = model.output != "identity"
    split_seq = np.random.SeedSequence(seed).spawn(1)[0]  # a stream of its own, beside default_rng(seed)
    X_val = t_val = None
    if split > 0.0:
        train_idx, val_idx = split_indices(t, split, split_seq, stratify=classify)
        if len(val_idx) < 1 or len(train_idx) < 1:
            raise DataError(f"validation_split {split} leaves {len(val_idx)} validation and {len(train_idx)} "
                            f"training samples; both must be >= 1")
        X_val, t_val = X[val_idx], t[val_idx]
        X, t = X[train_idx], t[train_idx]
    elif validation_data is not None:
        try:
            vx, vy = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        X_val = check_X(model.flatten_input(vx, "X_val"), n_features=X.shape[1], name="X_val")
        t_val, _ = model.encode_targets(vy, X_val.shape[0], fit_classes=False, name="y_val")
    pre = model.preprocessor
    if pre is not None:
        if not pre.fitted:
            pre.fit(X)  # training part only
        X = pre.transform(X)
        if X_val is not None:
            X_val = pre.transform(X_val)
    model.ensure_built(X.shape[1], n_out)

    if monitor is None:
        monitor = "val_loss" if X_val is not None else "loss"
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {', '.join(MONITORS)}; got {monitor!r}")
    if monitor.startswith("val_") and X_val is None:
        raise ValueError(f"monitor={monitor!r} needs validation data (validation_split or validation_data)")
    if monitor.endswith("accuracy") and not classify:
        raise ValueError(f"monitor={monitor!r} needs a classifier; {type(model).__name__} is a regressor")
    maximize = monitor.endswith("accuracy")

    n = X.shape[0]
    theta, grad = model.theta, model.grad
    rng = np.random.default_rng(seed)  # the shuffles
    if resume:
        rng.bit_generator.state = model.train_state_["rng"]
        history = model.history_ if model.history_ is not None else History()
    else:
        opt.reset(theta.size)
        history = History()
    history.best_epoch, history.stopped_early = None, False
    model.history_ = history
    state = {"seed": seed, "batch_size": batch_size, "shuffle": bool(run["shuffle"]), "validation_split": split,
             "loss": loss.name, "rng": rng.bit_generator.state}
    model.optimizer_, model.train_state_ = opt, state

    best_value, best_theta, since_best = -math.inf if maximize else math.inf, None, 0
    fit_start, last_print = time.perf_counter(), -math.inf
    first_epoch = history.epochs + 1
    last_epoch = history.epochs + epochs
    X_shuf = np.empty_like(X)  # (n, d) this epoch's order; batches are contiguous views
    t_shuf = np.empty_like(t)

    for epoch in range(first_epoch, last_epoch + 1):
        start_time = time.perf_counter()
        good_theta, good_opt = theta.copy(), (opt.t, opt.state())  # the last finite state
        if state["shuffle"]:
            order = rng.permutation(n)
            np.take(X, order, axis=0, out=X_shuf)
            np.take(t, order, axis=0, out=t_shuf)
        else:
            X_shuf[...] = X
            t_shuf[...] = t
        total, correct = 0.0, 0
        for s in range(0, n, batch_size):
            xb = X_shuf[s : s + batch_size]
            tb = t_shuf[s : s + batch_size]
            z = model.forward_train(xb)
            if classify:
                correct += _n_correct(model.output, z, tb)
            value, dz = loss.value_and_grad(z, tb)
            model.backward(dz)
            value += model.add_penalty_gradient()
            if not math.isfinite(value):
                break
            total += value * xb.shape[0]
            opt.step(theta, grad)
        epoch_loss = total / n if math.isfinite(value) else value
        if not math.isfinite(epoch_loss) or not np.isfinite(theta).all():
            theta[...] = good_theta
            opt.set_state(good_opt[0], good_opt[1], theta.size)  # state["rng"] still holds the epoch's start
            last = f"epoch {epoch - 1}" if epoch > 1 else "initialization"
            raise DivergenceError(f"training diverged at epoch {epoch} (loss {epoch_loss}); the weights of {last} "
                                  f"are restored; lower the learning rate (optimizer {opt!r})")
        history.loss.append(epoch_loss)
        history.lr.append(opt.lr_at(max(opt.t, 1)))
        if classify:
            history.accuracy.append(correct / n)
        if X_val is not None:
            z_val = model.forward_layers(X_val)
            history.val_loss.append(loss(z_val, t_val) + model.penalty())
            if classify:
                history.val_accuracy.append(_n_correct(model.output, z_val, t_val) / len(t_val))
        state["rng"] = rng.bit_generator.state
        now = time.perf_counter()
        history.epoch_seconds.append(now - start_time)
        if verbose is None:  # long runs only, rate limited
            show = now - fit_start >= AUTO_PROGRESS_AFTER and (now - last_print >= AUTO_PROGRESS_EVERY
                                                               or epoch == last_epoch)
        else:
            show = bool(verbose)
        if show:
            last_print = now
            print(history.line(last_epoch), file=sys.stderr, flush=True)
        if callback is not None:
            callback(history)
        if early_stopping:
            current = getattr(history, monitor)[-1]
            improved = current > best_value + min_delta if maximize else current < best_value - min_delta
            if improved:
                best_value, best_theta, since_best = current, theta.copy(), 0
                history.best_epoch = epoch
            else:
                since_best += 1
                if since_best >= patience:
                    history.stopped_early = epoch < last_epoch
                    break
    if early_stopping and best_theta is not None:
        theta[...] = best_theta
    return history


__all__ = ["DEFAULTS", "History", "MONITORS", "fit"]
