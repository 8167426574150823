"""Offline datasets shipped with the package (built once from scikit-learn's copies; see
``data/README.md``). No download, no scikit-learn at run time.

    ds = rtinfer.train.datasets.load("digits", test_size=0.2, seed=0)
    ds.X_train, ds.y_train, ds.X_test, ds.y_test

Classification splits are stratified (each class split in the same proportion); all splits are
reproducible from ``seed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

_CANCER_BASE = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                "concave points", "symmetry", "fractal dimension"]

INFO = {
    "digits": {
        "file": "digits.npz",
        "task": "classification",
        "feature_names": [f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        "target_names": [str(i) for i in range(10)],
        "description": "UCI optdigits 8x8: 1797 handwritten digits, 64 pixel counts 0..16, 10 classes",
    },
    "breast_cancer": {
        "file": "breast_cancer.npz",
        "task": "classification",
        "feature_names": [f"mean {b}" for b in _CANCER_BASE] + [f"{b} error" for b in _CANCER_BASE]
        + [f"worst {b}" for b in _CANCER_BASE],
        "target_names": ["malignant", "benign"],
        "description": "Breast Cancer Wisconsin (Diagnostic): 569 samples, 30 features, 0 = malignant, 1 = benign",
    },
    "diabetes": {
        "file": "diabetes.npz",
        "task": "regression",
        "feature_names": ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"],
        "target_names": ["disease progression after one year"],
        "description": "Diabetes (Efron et al. 2004): 442 patients, 10 raw baseline variables, regression",
    },
}
NAMES = tuple(INFO)
_ALIASES = {"cancer": "breast_cancer", "breast-cancer": "breast_cancer"}


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str  # "classification" | "regression"
    X_train: np.ndarray  # (n_train, d) float64
    y_train: np.ndarray  # (n_train,) int64 labels or float64 targets
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple
    target_names: tuple
    description: str

    @property
    def n_classes(self) -> int | None:
        return len(self.target_names) if self.task == "classification" else None


def load_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    """All samples of a dataset: X (n, d) float64, y (n,)."""
    key = _ALIASES.get(name, name)
    if key not in INFO:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(NAMES)}")
    with np.load(os.path.join(DATA_DIR, INFO[key]["file"]), allow_pickle=False) as npz:
        return npz["X"].copy(), npz["y"].copy()


def split_indices(y: np.ndarray, test_size: float, seed, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx), each sorted. Stratified: round(test_size * n_c) test samples per class
    (classes in sorted order). ``seed``: anything ``np.random.default_rng`` takes (an int, a
    SeedSequence)."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1); got {test_size!r}")
    rng = np.random.default_rng(seed)
    n = len(y)
    if stratify:
        test = []
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            idx = idx[rng.permutation(len(idx))]
            test.append(idx[: int(round(test_size * len(idx)))])
        test_idx = np.sort(np.concatenate(test))
    else:
        test_idx = np.sort(rng.permutation(n)[: int(round(test_size * n))])
    mask = np.ones(n, dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


def load(name: str, *, test_size: float = 0.2, seed: int = 0) -> Dataset:
    """A dataset with a reproducible seeded train/test split (stratified for classification)."""
    key = _ALIASES.get(name, name)
    X, y = load_arrays(key)
    info = INFO[key]
    classification = info["task"] == "classification"
    tr, te = split_indices(y, test_size, seed, stratify=classification)
    return Dataset(key, info["task"], X[tr], y[tr], X[te], y[te], tuple(info["feature_names"]),
                   tuple(info["target_names"]), info["description"])


def load_digits(**kwargs) -> Dataset:
    return load("digits", **kwargs)


def load_breast_cancer(**kwargs) -> Dataset:
    return load("breast_cancer", **kwargs)


def load_diabetes(**kwargs) -> Dataset:
    return load("diabetes", **kwargs)
