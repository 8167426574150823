"""Input preprocessing fitted on training data only and kept with the model.

Both transforms are affine on row vectors: ``transform(X) == X @ A + c`` up to rounding, with
``(A, c) = as_affine()`` (A (d, d) float64, c (d,) float64), so ``export.freeze`` folds them
into the first layer.
"""

from __future__ import annotations

import numpy as np

from ._validate import DataError, check_X, check_nonneg_float


class _Preprocessor:
    kind = "preprocessor"

    @property
    def fitted(self) -> bool:
        return self.mean_ is not None

    @property
    def n_features_in_(self) -> int | None:
        return None if self.mean_ is None else int(self.mean_.shape[0])

    def _check_fitted(self):
        if not self.fitted:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit(X_train) first")

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)


class Standardizer(_Preprocessor):
    """z-score: (x - mean) / std per feature. Features with zero variance get std 1."""

    kind = "standardizer"

    def __init__(self):
        self.mean_: np.ndarray | None = None  # (d,)
        self.scale_: np.ndarray | None = None  # (d,) std, zeros replaced by 1

    def fit(self, X) -> "Standardizer":
        X = check_X(X)
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        std[std == 0.0] = 1.0
        self.scale_ = std
        return self

    def transform(self, X) -> np.ndarray:
        self._check_fitted()
        X = check_X(X, n_features=self.n_features_in_)
        return (X - self.mean_) / self.scale_

    def as_affine(self):
        self._check_fitted()
        return np.diag(1.0 / self.scale_), -self.mean_ / self.scale_

    def state(self) -> dict:
        return {"mean": self.mean_, "scale": self.scale_}

    def set_state(self, arrays: dict) -> None:
        self.mean_ = np.array(arrays["mean"], dtype=np.float64)
        self.scale_ = np.array(arrays["scale"], dtype=np.float64)

    def config(self) -> dict:
        return {"type": self.kind}


class Whitener(_Preprocessor):
    """PCA whitening: x -> (x - mean) @ T^T with T = Lambda^-1/2 Phi^T from the eigendecomposition
    Sigma = Phi Lambda Phi^T of the training covariance (1/n normalisation). ``eps`` is added to
    each eigenvalue so directions of small variance are not blown up.

    Directions without variance in the training data (eigenvalue <= lambda_max * d * machine
    epsilon, e.g. a feature that was constant) carry no information to scale: their rows of T are
    zero, so a test sample that moves along them (a constant pixel that is not constant at test
    time) is mapped finitely, as if it had not moved."""

    kind = "whitener"

    def __init__(self, eps: float = 1e-8):
        self.eps = check_nonneg_float(eps, "eps")
        self.mean_: np.ndarray | None = None  # (d,)
        self.T_: np.ndarray | None = None  # (d, d)
        self.eigenvalues_: np.ndarray | None = None  # (d,) ascending

    def fit(self, X) -> "Whitener":
        X = check_X(X)
        if X.shape[0] < 2:
            raise DataError("Whitener needs at least 2 samples to estimate a covariance")
        mean = X.mean(axis=0)
        Xc = X - mean
        cov = (Xc.T @ Xc) / X.shape[0]
        lam, phi = np.linalg.eigh(cov)
        lam = np.maximum(lam, 0.0)  # round-off can make a zero eigenvalue slightly negative
        null = lam <= lam[-1] * lam.size * np.finfo(np.float64).eps  # no variance (numerical rank)
        scale = np.zeros_like(lam)
        scale[~null] = 1.0 / np.sqrt(lam[~null] + self.eps)
        self.mean_ = mean
        self.eigenvalues_ = lam
        self.T_ = (phi * scale).T  # diag(scale) @ phi.T; zero rows for null directions
        return self

    def transform(self, X) -> np.ndarray:
        self._check_fitted()
        X = check_X(X, n_features=self.n_features_in_)
        return (X - self.mean_) @ self.T_.T

    def as_affine(self):
        self._check_fitted()
        A = np.ascontiguousarray(self.T_.T)
        return A, -(self.mean_ @ A)

    def state(self) -> dict:
        return {"mean": self.mean_, "T": self.T_, "eigenvalues": self.eigenvalues_}

    def set_state(self, arrays: dict) -> None:
        self.mean_ = np.array(arrays["mean"], dtype=np.float64)
        self.T_ = np.array(arrays["T"], dtype=np.float64)
        self.eigenvalues_ = np.array(arrays["eigenvalues"], dtype=np.float64)

    def config(self) -> dict:
        return {"type": self.kind, "eps": self.eps}


PREPROCESSORS = {"standardizer": Standardizer, "whitener": Whitener}


def make_preprocessor(spec):
    """None, "standardize"/"standardizer", "whiten"/"whitener", or an instance."""
    if spec is None or isinstance(spec, _Preprocessor):
        return spec
    if isinstance(spec, str):
        key = {"standardize": "standardizer", "zscore": "standardizer", "whiten": "whitener"}.get(spec.lower(), spec.lower())
        if key in PREPROCESSORS:
            return PREPROCESSORS[key]()
    raise ValueError(f"preprocess must be None, 'standardize', 'whiten' or a preprocessor; got {spec!r}")
