"""Input validation and the error / warning types shared by the training code. Every data
failure is a ``DataError`` (a ValueError) whose message names the argument and the problem."""

from __future__ import annotations

import numpy as np


class DataError(ValueError):
    """Training or inference data is unusable (shape, NaN/Inf, labels, lengths)."""


class DivergenceError(ValueError):
    """Training produced a non-finite loss or parameters; the model holds its last finite weights."""


class ConvergenceWarning(UserWarning):
    """A solver stopped at ``max_iter`` before reaching its tolerance (``converged_`` is False)."""


def check_X(X, *, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """Return ``X`` as a C-contiguous (n_samples, n_features) float64 array of finite values."""
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise DataError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"{name} must be numeric; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name} must be real-valued; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise DataError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name} is empty: 0 samples")
    if arr.shape[1] == 0:
        raise DataError(f"{name} has 0 features")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)
        i, j = bad[0]
        raise DataError(
            f"{name} contains {len(bad)} NaN/Inf value(s); first at row {i}, column {j} ({arr[i, j]})"
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise DataError(f"{name} has {arr.shape[1]} features; the model expects {n_features}")
    return arr


def check_lengths(X: np.ndarray, y: np.ndarray, *, x_name: str = "X", y_name: str = "y") -> None:
    if len(X) != len(y):
        raise DataError(f"{x_name} has {len(X)} samples but {y_name} has {len(y)}")




def check_class_labels(y, *, name: str = "y") -> np.ndarray:
    """Class labels of any one kind (integers, floats, bools, strings) as a 1-D array.

    (n, 1) columns are flattened; object arrays are accepted when every label is a str (-> str
    array) or every label is an integer / bool (-> int64 array)."""
    try:
        arr = np.asarray(y)
    except Exception as exc:
        raise DataError(f"{name} could not be converted to an array: {exc}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{name} (class labels) must be 1-D (n_samples,); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name} is empty: 0 labels")
    if arr.dtype.kind == "U" and not isinstance(y, np.ndarray):  # numpy turns [1, "b"] into ["1", "b"]
        items = np.asarray(y, dtype=object).ravel().tolist()
        if not all(isinstance(v, str) for v in items):
            kinds = sorted({type(v).__name__ for v in items})
            raise DataError(f"{name} mixes label types ({', '.join(kinds)}); use labels of one kind")
    if arr.dtype == object:
        items = arr.tolist()
        if all(isinstance(v, str) for v in items):
            arr = np.asarray(items, dtype=str)
        elif all(isinstance(v, (int, np.integer, bool, np.bool_)) for v in items):
            arr = np.asarray(items, dtype=np.int64)
        else:
            kinds = sorted({type(v).__name__ for v in items})
            raise DataError(f"{name} mixes label types ({', '.join(kinds)}); use labels of one kind")
    if np.issubdtype(arr.dtype, np.complexfloating) or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_ or arr.dtype.kind == "U"):
        raise DataError(f"{name} (class labels) must be integers, floats, bools or strings; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{name} contains NaN/Inf label at index {i}")
    return arr


def check_targets(y, n_outputs: int | None, *, name: str = "y") -> np.ndarray:
    """Regression targets as (n_samples, n_outputs) float64; a 1-D y is one output."""
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} (regression targets) must be numeric: {exc}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{name} (regression targets) must be 1-D or 2-D; got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name} is empty: 0 targets")
    if not np.isfinite(arr).all():
        i = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"{name} contains NaN/Inf at row {i}")
    if n_outputs is not None and arr.shape[1] != n_outputs:
        raise DataError(f"{name} has {arr.shape[1]} output column(s); the model has {n_outputs}")
    return np.ascontiguousarray(arr)


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_nonneg_float(value, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return v
