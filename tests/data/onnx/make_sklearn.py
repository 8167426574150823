"""Regenerate the scikit-learn ONNX files in this folder (run once by hand; tests only read them).

    pip install skl2onnx
    python tests/data/onnx/make_sklearn.py

skl2onnx with default options (ZipMap on, so classifiers output a label tensor and a sequence
of {class: probability} maps): sk_logreg_binary, sk_logreg_multi, sk_mlp (MLPClassifier),
sk_linreg (LinearRegression), sk_ridge (Ridge, 2 targets), sk_pipeline (StandardScaler +
LogisticRegression). Each NAME.onnx has NAME.npz with X (float32) and, from scikit-learn itself,
P (predict_proba) or Y (predict) and L (predict: the labels).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((200, 6)) * [1, 2, 0.5, 3, 1, 1] + [0, 1, -2, 0, 5, 0]).astype(np.float32)
    y2 = (X[:, 0] + 0.3 * X[:, 1] > 0.2).astype(np.int64)
    y3 = y2 + (X[:, 2] > -2).astype(np.int64)
    reg = X @ rng.standard_normal((6, 2)).astype(np.float32) + [1.0, -2.0]
    models = {
        "sk_logreg_binary": (LogisticRegression(), y2),
        "sk_logreg_multi": (LogisticRegression(max_iter=500), y3),
        "sk_mlp": (MLPClassifier(hidden_layer_sizes=(16,), max_iter=400, random_state=0), y3),
        "sk_linreg": (LinearRegression(), reg[:, 0]),
        "sk_ridge": (Ridge(alpha=0.5), reg),
        "sk_pipeline": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), y3),
    }
    for name, (m, y) in models.items():
        m.fit(X, y)
        onx = to_onnx(m, X[:1])
        with open(os.path.join(HERE, name + ".onnx"), "wb") as f:
            f.write(onx.SerializeToString())
        Xt = X[:64]
        extra = {"P": m.predict_proba(Xt).astype(np.float32), "L": m.predict(Xt)} if hasattr(m, "predict_proba") \
            else {"Y": m.predict(Xt).astype(np.float32)}
        np.savez(os.path.join(HERE, name + ".npz"), X=Xt, **extra)
        print(name)


if __name__ == "__main__":
    main()
