"""Checkpoints: ``model.save(path)`` / ``save_model(model, path)`` and ``load_model(path)``.

One ``.npz`` file (np.savez_compressed, loaded with allow_pickle=False; envelope in
``rtinfer.train.archive``) holding:

- "architecture": uint8 array of UTF-8 JSON: {"format": "rtinfer.train.checkpoint",
  "version": 2, "model": class name, "config": constructor kwargs, "output",
  "input_shape": per-sample shape, "layers": [layer.spec(), ...] (``rtinfer.train.specs``),
  "preprocessor": null | {"type": "standardizer"} | {"type": "whitener", "eps"},
  "history": {"loss": [...], ...} | null,
  "optimizer": null | {"name", "lr", hyperparameters..., "schedule": {...}, "t": step count},
  "train_state": null | {"seed", "batch_size", "shuffle", "validation_split", "loss",
                         "rng": the shuffle stream's PCG64 state}}
- "theta": (P,) float64, the flat parameter vector (layout in ``rtinfer.train.network``)
- "classes": (K,) class labels (classifiers only; integers, floats, bools or strings)
- "pre.<name>": preprocessor arrays (Standardizer: mean, scale; Whitener: mean, T, eigenvalues)
- "opt.<name>": optimizer state arrays (P,) (Momentum v; AdaGrad G; RMSProp s; Adam m, v)

With the optimizer and train state stored, ``fit(load_model(path), X, y, resume=True)`` goes on
exactly as the saved run would have. Version-1 files (no optimizer state; linear models with
``method`` instead of ``solver``) still load. Writes are atomic; a round trip is exact.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .archive import CheckpointError, read_archive
from .cnn import CNN
from .models import MLP, LinearRegression, LogisticRegression, SoftmaxRegression
from .network import Sequential

MODEL_CLASSES = {cls.__name__: cls for cls in (LinearRegression, LogisticRegression, SoftmaxRegression, MLP,
                                               Sequential, CNN)}


def save_model(model, path) -> None:
    """Write ``model`` (architecture, weights, preprocessing, classes, optimizer state) to ``path``
    atomically (the same as ``model.save(path)``)."""
    model.save(path)


def load_model(path):
    """Read a checkpoint written by ``save_model``; raises CheckpointError (a ValueError) naming
    the problem for a missing key, a foreign or corrupt file."""
    try:
        return _load_model(path)
    except (CheckpointError, FileNotFoundError):
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, MemoryError) as exc:
        # hostile JSON (wrong types, unhashable names, odd preprocessor/history fields)
        raise CheckpointError(f"{os.fspath(path)}: invalid checkpoint contents: {type(exc).__name__}: {exc}") from None


def _declared_parameters(specs, depth: int = 0) -> int:
    """Parameters that layer specs declare (dense, conv, batch-norm; residual blocks recursed);
    fields that are not plain ints count as nothing (the layer constructors reject them)."""
    if not isinstance(specs, list) or depth > 32:
        return 0
    total = 0
    for sp in specs:
        if not isinstance(sp, dict):
            continue
        kind = sp.get("type")
        ints = lambda *keys: all(isinstance(sp.get(k), int) and not isinstance(sp.get(k), bool) for k in keys)  # noqa: E731
        if kind == "dense" and ints("n_in", "n_out"):
            total += sp["n_in"] * sp["n_out"] + sp["n_out"]
        elif kind in ("conv1d", "conv2d") and ints("in_channels", "out_channels", "groups") and sp["groups"] > 0:
            k = sp.get("kernel_size")
            taps = math.prod(k) if isinstance(k, list) and all(isinstance(v, int) for v in k) else 1
            total += sp["out_channels"] * (sp["in_channels"] // sp["groups"]) * taps + sp["out_channels"]
        elif kind == "batchnorm" and ints("num_features"):
            total += 4 * sp["num_features"]
        elif kind == "residual":
            total += _declared_parameters(sp.get("body"), depth + 1)
            total += _declared_parameters([sp.get("shortcut")], depth + 1)
    return total


def _check_declared_sizes(path, arch, theta) -> None:
    """Refuse layer sizes that imply more parameters than the file's 'theta' holds, before any
    constructor allocates them (a few bytes of JSON must not allocate gigabytes)."""
    n = theta.size if isinstance(theta, np.ndarray) else 0
    counts = [_declared_parameters(arch.get("layers"))]
    config = arch.get("config")
    if isinstance(config, dict):
        sizes = config.get("sizes")
        if isinstance(sizes, list) and all(isinstance(v, int) for v in sizes):
            counts.append(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))
        counts.append(_declared_parameters(config.get("layers")))
    for c in counts:
        if c > n:
            raise CheckpointError(f"{path}: the architecture declares {c} parameters but 'theta' holds {n}")


def _version1_config(config: dict) -> dict:
    """A version-1 linear model's config: ``method`` became ``solver``, and version 1 stored the
    gradient-descent settings whatever the method (now refused for solvers that do not use them)."""
    solver = config["method"]
    config = {k: v for k, v in config.items() if k != "method"}
    config["solver"] = solver
    if solver != "gd":
        config.pop("lr", None)
    if solver == "closed_form":
        config.pop("max_iter", None)
        config.pop("tol", None)
    return config


def _load_model(path):
    path = os.fspath(path)
    arch, arrays = read_archive(path)
    _check_declared_sizes(path, arch, arrays.get("theta"))
    name = arch.get("model")
    cls = MODEL_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise CheckpointError(f"{path}: unknown model class {name!r}; known: {', '.join(MODEL_CLASSES)}")
    config = arch.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: 'config' must be a JSON object; got {config!r}")
    if arch.get("version") == 1 and "method" in config:
        config = _version1_config(config)
    try:
        model = cls(**config)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
    if arch.get("output") != model.output:
        raise CheckpointError(f"{path}: output {arch.get('output')!r} does not match {cls.__name__}")
    model.restore_checkpoint(arch, arrays, where=path)
    return model
