"""Checkpoints: ``model.save(path)`` / ``load_model(path)``.

One ``.npz`` file (np.savez_compressed, loaded with allow_pickle=False) holding:
- "architecture": uint8 array of UTF-8 JSON: {"format": "rtinfer.train.checkpoint",
  "version": 1, "model": class name, "config": constructor kwargs, "output",
  "layers": [{"type": "dense", "n_in", "n_out"} | {"type": "activation", "name", "alpha"}],
  "preprocessor": null | {"type": "standardizer"} | {"type": "whitener", "eps"},
  "history": {...} | null}
- "theta": (P,) float64, the flat parameter vector (all W, then all b, in layer order)
- "classes": (K,) int64 (classifiers only)
- "pre.<name>": preprocessor arrays (Standardizer: mean, scale; Whitener: mean, T, eigenvalues)

Writes are atomic: a temp file in the same directory, fsync, os.replace. A round trip is exact.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib

import numpy as np

from .._atomic import atomic_write
from .layers import Activation, Dense
from .preprocessing import PREPROCESSORS

FORMAT = "rtinfer.train.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file is not a readable rtinfer training checkpoint."""


def _history_dict(history):
    if history is None:
        return None
    return {
        "loss": [float(v) for v in history.loss],
        "accuracy": [float(v) for v in history.accuracy],
        "val_loss": [float(v) for v in history.val_loss],
        "val_accuracy": [float(v) for v in history.val_accuracy],
        "epoch_seconds": [float(v) for v in history.epoch_seconds],
        "best_epoch": history.best_epoch,
        "stopped_early": bool(history.stopped_early),
    }


def save_model(model, path) -> None:
    """Write ``model`` (architecture, weights, preprocessing, classes) to ``path`` atomically."""
    if not model.built:
        raise ValueError(f"cannot save an unfitted {type(model).__name__}")
    pre = model.preprocessor
    if pre is not None and not pre.fitted:
        raise ValueError("cannot save a model whose preprocessor is not fitted")
    arch = {
        "format": FORMAT,
        "version": VERSION,
        "model": type(model).__name__,
        "config": model.config(),
        "output": model.output,
        "layers": [layer.spec() for layer in model.layers],
        "preprocessor": None if pre is None else pre.config(),
        "history": _history_dict(model.history_),
    }
    arrays = {
        "architecture": np.frombuffer(json.dumps(arch).encode("utf-8"), dtype=np.uint8),
        "theta": model._theta,
    }
    if model.classes_ is not None:
        arrays["classes"] = np.asarray(model.classes_, dtype=np.int64)
    if pre is not None:
        for key, arr in pre.state().items():
            arrays[f"pre.{key}"] = np.asarray(arr, dtype=np.float64)

    # stdlib-only helper shared by every rtinfer writer (temp file, fsync, rename, fsync dir)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def _layers_from_specs(specs) -> list:
    if not isinstance(specs, list) or not specs:
        raise CheckpointError("architecture has no layers")
    layers = []
    for i, spec in enumerate(specs):
        kind = spec.get("type") if isinstance(spec, dict) else None
        try:
            if kind == "dense":
                layers.append(Dense(int(spec["n_in"]), int(spec["n_out"])))
            elif kind == "activation":
                alpha = spec.get("alpha", 0.0)
                layers.append(Activation(spec["name"], alpha if spec["name"] == "leaky_relu" else None))
            else:
                from .conv import LAYER_TYPES, layer_from_spec  # conv, pooling, batch-norm, flatten

                if kind not in LAYER_TYPES:
                    raise CheckpointError(f"layer {i} has unknown type {kind!r}")
                layers.append(layer_from_spec(spec))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"layer {i} spec {spec!r} is invalid: {exc}") from None
    return layers


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


def _check_declared_sizes(path, arch, theta) -> None:
    """Refuse layer sizes that imply more parameters than the file's 'theta' holds, before any
    constructor allocates them (a few bytes of JSON must not allocate gigabytes)."""
    n = theta.size if isinstance(theta, np.ndarray) else 0
    counts = []
    config = arch.get("config")
    sizes = config.get("sizes") if isinstance(config, dict) else None
    if isinstance(sizes, list) and all(isinstance(v, int) for v in sizes):
        counts.append(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))
    specs = arch.get("layers")
    if isinstance(specs, list):
        dense = [sp for sp in specs if isinstance(sp, dict) and sp.get("type") == "dense"]
        if all(isinstance(sp.get("n_in"), int) and isinstance(sp.get("n_out"), int) for sp in dense):
            counts.append(sum(sp["n_in"] * sp["n_out"] + sp["n_out"] for sp in dense))
    for c in counts:
        if c > n:
            raise CheckpointError(f"{path}: the architecture declares {c} parameters but 'theta' holds {n}")


def _load_model(path):
    from .models import MODEL_CLASSES
    from .trainer import History

    path = os.fspath(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise CheckpointError(f"{path} is a single .npy array, not an .npz checkpoint")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (FileNotFoundError, CheckpointError):
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, RuntimeError, OverflowError,
            zlib.error, struct.error) as exc:  # RuntimeError: zipfile's NotImplementedError, encryption
        raise CheckpointError(f"{path} is not a readable .npz checkpoint: {exc}") from None
    not_arrays = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
    if not_arrays:  # NpzFile returns a member without the .npy magic as raw bytes
        raise CheckpointError(f"{path}: entries {not_arrays} are not .npy arrays")
    if "architecture" not in arrays:
        raise CheckpointError(f"{path} has no 'architecture' entry; not an rtinfer.train checkpoint")
    raw = arrays["architecture"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: 'architecture' must be a 1-D uint8 array")
    try:
        arch = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested 10^5 deep
        raise CheckpointError(f"{path}: 'architecture' is not valid JSON: {exc}") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format is not {FORMAT!r}")
    if arch.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {arch.get('version')!r} is not supported (expected {VERSION})")
    _check_declared_sizes(path, arch, arrays.get("theta"))
    from .cnn import CNN

    cls = {**MODEL_CLASSES, "CNN": CNN}.get(arch.get("model"))
    if cls is None:
        raise CheckpointError(f"{path}: unknown model class {arch.get('model')!r}; known: {', '.join(MODEL_CLASSES)}")
    try:
        model = cls(**arch["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
    if arch.get("output") != model.output:
        raise CheckpointError(f"{path}: output {arch.get('output')!r} does not match {cls.__name__}")
    model._install(_layers_from_specs(arch.get("layers")))
    theta = arrays.get("theta")
    if theta is None or theta.dtype != np.float64 or theta.shape != model._theta.shape:
        got = None if theta is None else (theta.dtype, theta.shape)
        raise CheckpointError(f"{path}: 'theta' must be float64 of shape {model._theta.shape}; got {got}")
    model._theta[...] = theta

    pre_cfg = arch.get("preprocessor")
    if pre_cfg is not None:
        pre_cls = PREPROCESSORS.get(pre_cfg.get("type") if isinstance(pre_cfg, dict) else None)
        if pre_cls is None:
            raise CheckpointError(f"{path}: unknown preprocessor {pre_cfg!r}")
        pre = pre_cls(**{k: v for k, v in pre_cfg.items() if k != "type"})
        state = {k[4:]: v for k, v in arrays.items() if k.startswith("pre.")}
        try:
            pre.set_state(state)
        except KeyError as exc:
            raise CheckpointError(f"{path}: preprocessor array {exc} missing") from None
        d = model.n_features_in_
        if pre.mean_.shape != (d,):
            raise CheckpointError(f"{path}: preprocessor has {pre.mean_.shape} features; the model expects {d}")
        model.preprocessor = pre
    else:
        model.preprocessor = None

    if model.is_classifier:
        classes = arrays.get("classes")
        if classes is None or classes.ndim != 1 or not np.issubdtype(classes.dtype, np.integer):
            raise CheckpointError(f"{path}: classifier checkpoint lacks an integer 'classes' array")
        k = 2 if model.output == "sigmoid" else model.n_outputs_
        if len(classes) != k:
            raise CheckpointError(f"{path}: {len(classes)} classes for {k} outputs")
        model.classes_ = classes.astype(np.int64)
    hist = arch.get("history")
    if isinstance(hist, dict):
        model.history_ = History(**hist)
    return model
