"""Mini-batch training loop for any model in ``rtinfer.train.models``.

    history = fit(model, X, y, optimizer=Adam(1e-3), epochs=30, batch_size=32, seed=0,
                  validation_split=0.1, early_stopping=True, patience=5)

Determinism: the validation split and the per-epoch shuffles come from
``np.random.default_rng(seed)``, weight init from the model's own seed: the same seeds give
bit-identical weights.

Per-epoch history: ``loss`` is the mean over the epoch's batches (weighted by batch size) of
the objective (loss + L2 penalty) as it was computed during training; ``accuracy`` (classifiers)
the fraction of correct training predictions during that pass; ``val_loss`` / ``val_accuracy``
the objective and accuracy on the validation set after the epoch. Early stopping watches
``val_loss`` if there is validation data, else ``loss``, and restores the best weights.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ._validate import DataError, check_nonneg_float, check_positive_int, check_X
from .losses import get_loss
from .optimizers import Adam, get_optimizer

AUTO_PROGRESS_AFTER = 2.0  # seconds of training before verbose=None starts printing
AUTO_PROGRESS_EVERY = 1.0  # seconds between progress lines with verbose=None


@dataclass
class History:
    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)  # empty for regression
    val_loss: list = field(default_factory=list)  # empty without validation data
    val_accuracy: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    best_epoch: int | None = None  # 1-based epoch whose weights were kept (early stopping)
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.loss)

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


def _n_correct(output: str, z: np.ndarray, t: np.ndarray) -> int:
    if output == "softmax":
        return int(np.count_nonzero(np.argmax(z, axis=1) == t))
    return int(np.count_nonzero((z[:, 0] > 0.0) == (t > 0.5)))


def fit(model, X, y, *, optimizer="adam", lr: float | None = None, loss=None, epochs: int = 20,
        batch_size: int = 32, shuffle: bool = True, seed: int = 0, validation_split: float = 0.0,
        validation_data=None, early_stopping: bool = False, patience: int = 5, min_delta: float = 0.0,
        verbose: bool | None = None) -> History:
    """Train ``model`` in place on (X, y) by mini-batch gradient steps; returns the History
    (also stored as ``model.history_``).

    optimizer: an Optimizer instance or a name ("sgd", "momentum", "adagrad", "rmsprop", "adam")
    with ``lr``; loss: None (the default for the model's output head), a name or a Loss.
    verbose: True prints one line per epoch to stderr; False prints nothing; None (default)
    prints only for long runs: once training has run for AUTO_PROGRESS_AFTER seconds, at most
    one line per AUTO_PROGRESS_EVERY seconds (and the last epoch)."""
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    patience = check_positive_int(patience, "patience")
    min_delta = check_nonneg_float(min_delta, "min_delta")
    split = float(validation_split)
    if not 0.0 <= split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1); got {validation_split!r}")
    if validation_data is not None and split > 0.0:
        raise ValueError("give validation_split or validation_data, not both")
    opt = Adam() if optimizer is None else get_optimizer(optimizer, lr)
    loss = get_loss(loss, model.output)

    flatten = getattr(model, "flatten_input", None)  # models with N-D samples (CNN) accept (N, *shape)
    if flatten is not None:
        X = flatten(X)
    X = check_X(X, n_features=model.n_features_in_)
    t, n_out = model.encode_targets(y, X.shape[0])
    rng = np.random.default_rng(seed)

    X_val = t_val = None
    if split > 0.0:
        n_val = int(round(split * X.shape[0]))
        if n_val < 1 or n_val >= X.shape[0]:
            raise DataError(f"validation_split {split} leaves {n_val} validation and "
                            f"{X.shape[0] - n_val} training samples; both must be >= 1")
        perm = rng.permutation(X.shape[0])
        X_val, t_val = X[perm[:n_val]], t[perm[:n_val]]
        X, t = X[perm[n_val:]], t[perm[n_val:]]
    elif validation_data is not None:
        try:
            vx, vy = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        X_val = check_X(flatten(vx, "X_val") if flatten is not None else vx, n_features=X.shape[1], name="X_val")
        t_val, _ = model.encode_targets(vy, X_val.shape[0])

    pre = model.preprocessor
    if pre is not None:
        if not pre.fitted:
            pre.fit(X)  # training part only
        X = pre.transform(X)
        if X_val is not None:
            X_val = pre.transform(X_val)
    model._ensure_built(X.shape[1], n_out)

    n = X.shape[0]
    theta, grad = model._theta, model._grad
    opt.reset(theta.size)
    classify = model.output != "identity"
    history = History()
    best_value, best_theta, since_best = np.inf, None, 0
    fit_start, last_print = time.perf_counter(), -np.inf
    X_shuf = np.empty_like(X)  # (n, d) this epoch's order; batches are contiguous views
    t_shuf = np.empty_like(t)

    for epoch in range(1, epochs + 1):
        start_time = time.perf_counter()
        if shuffle:
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
            z = model._forward_train(xb)
            if classify:
                correct += _n_correct(model.output, z, tb)
            value, dz = loss.value_and_grad(z, tb)
            model._backward(dz)
            if model.l2:
                nd = model._n_decay
                np.multiply(theta[:nd], model.l2, out=model._l2_buf)
                grad[:nd] += model._l2_buf
                value += model.penalty()
            total += value * xb.shape[0]
            opt.step(theta, grad)
        epoch_loss = total / n
        if not np.isfinite(epoch_loss):
            raise ValueError(f"training diverged at epoch {epoch} (loss {epoch_loss}); lower the learning rate")
        history.loss.append(epoch_loss)
        if classify:
            history.accuracy.append(correct / n)
        monitored = epoch_loss
        if X_val is not None:
            z_val = model._forward_layers(X_val)
            val_loss = loss(z_val, t_val) + model.penalty()
            history.val_loss.append(val_loss)
            if classify:
                history.val_accuracy.append(_n_correct(model.output, z_val, t_val) / len(t_val))
            monitored = val_loss
        now = time.perf_counter()
        history.epoch_seconds.append(now - start_time)
        if verbose is None:  # long runs only, rate limited
            show = now - fit_start >= AUTO_PROGRESS_AFTER and (now - last_print >= AUTO_PROGRESS_EVERY or epoch == epochs)
        else:
            show = bool(verbose)
        if show:
            last_print = now
            line = f"epoch {epoch}/{epochs}  loss {epoch_loss:.4f}"
            if classify:
                line += f"  acc {history.accuracy[-1]:.4f}"
            if X_val is not None:
                line += f"  val_loss {history.val_loss[-1]:.4f}"
                if classify:
                    line += f"  val_acc {history.val_accuracy[-1]:.4f}"
            line += f"  ({history.epoch_seconds[-1] * 1e3:.1f} ms)"
            print(line, file=sys.stderr, flush=True)
        if early_stopping:
            if monitored < best_value - min_delta:
                best_value, best_theta, since_best = monitored, theta.copy(), 0
                history.best_epoch = epoch
            else:
                since_best += 1
                if since_best >= patience:
                    history.stopped_early = epoch < epochs
                    break
    if early_stopping and best_theta is not None:
        theta[...] = best_theta
    model.history_ = history
    return history
