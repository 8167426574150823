"""Build the shipped dataset files once, from the copies scikit-learn ships.

Run by a developer (needs scikit-learn), never at run time:

    python -m rtinfer.train._build_datasets

Writes ``rtinfer/train/data/{digits,breast_cancer,diabetes}.npz`` holding numeric arrays only:
``X`` (n, d) float64 and ``y`` (n,) int64 (classification) or float64 (regression).
Each file is checked against ``sklearn.datasets.load_*`` before it is written.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _sklearn_data_dir() -> str:
    import sklearn

    return os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data")


def build() -> None:
    from sklearn import datasets as skd

    src = _sklearn_data_dir()

    # digits.csv.gz: no header; 64 pixel counts (0..16) then the label, per row.
    with gzip.open(os.path.join(src, "digits.csv.gz"), "rt") as f:
        raw = np.loadtxt(f, delimiter=",")
    digits = {"X": raw[:, :-1].astype(np.float64), "y": raw[:, -1].astype(np.int64)}
    ref = skd.load_digits()
    assert digits["X"].shape == (1797, 64)
    assert np.array_equal(digits["X"], ref.data) and np.array_equal(digits["y"], ref.target)

    # breast_cancer.csv: a header row "569,30,malignant,benign", then 30 features and the label
    # (0 = malignant, 1 = benign).
    raw = np.loadtxt(os.path.join(src, "breast_cancer.csv"), delimiter=",", skiprows=1)
    cancer = {"X": raw[:, :-1].astype(np.float64), "y": raw[:, -1].astype(np.int64)}
    ref = skd.load_breast_cancer()
    assert cancer["X"].shape == (569, 30)
    assert np.array_equal(cancer["X"], ref.data) and np.array_equal(cancer["y"], ref.target)

    # diabetes: raw (unscaled) features, space separated, no header; target in a second file.
    with gzip.open(os.path.join(src, "diabetes_data_raw.csv.gz"), "rt") as f:
        X = np.loadtxt(f)
    with gzip.open(os.path.join(src, "diabetes_target.csv.gz"), "rt") as f:
        y = np.loadtxt(f)
    diabetes = {"X": X.astype(np.float64), "y": y.astype(np.float64)}
    ref = skd.load_diabetes(scaled=False)
    assert diabetes["X"].shape == (442, 10)
    assert np.array_equal(diabetes["X"], ref.data) and np.array_equal(diabetes["y"], ref.target)

    os.makedirs(DATA_DIR, exist_ok=True)
    for name, arrays in (("digits", digits), ("breast_cancer", cancer), ("diabetes", diabetes)):
        np.savez_compressed(os.path.join(DATA_DIR, f"{name}.npz"), **arrays)


if __name__ == "__main__":
    build()
    print("wrote", sorted(os.listdir(DATA_DIR)))
