"""scikit-learn models exported by skl2onnx with default options (ZipMap on): the probabilities
(or regression outputs) import by default and match scikit-learn and onnxruntime; the label
output imports as an int64 ARGMAX where the classes are 0..k-1; unsupported label branches say
why. Files: tests/data/onnx/make_sklearn.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

import rtinfer
from export import from_onnx, to_onnx
from export.onnx_import import OnnxImportError
from optional import needs_onnxruntime

HERE = os.path.join(os.path.dirname(__file__), "data", "onnx")
CLASSIFIERS = ["sk_logreg_binary", "sk_logreg_multi", "sk_mlp", "sk_pipeline"]
REGRESSORS = ["sk_linreg", "sk_ridge"]


def _load(name):
    d = np.load(os.path.join(HERE, name + ".npz"))
    return os.path.join(HERE, name + ".onnx"), d


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_probabilities_by_default(name):
    path, d = _load(name)
    f = from_onnx(path)
    P = rtinfer.load(f).predict(d["X"])
    np.testing.assert_allclose(P, d["P"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressor(name):
    path, d = _load(name)
    Y = rtinfer.load(from_onnx(path)).predict(d["X"])
    np.testing.assert_allclose(Y.reshape(d["Y"].shape), d["Y"], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["sk_logreg_binary", "sk_logreg_multi", "sk_pipeline"])
def test_linear_classifier_labels(name):
    path, d = _load(name)
    f = from_onnx(path, output="output_label")
    L = rtinfer.load(f).predict(d["X"])
    assert L.dtype == np.int64
    assert np.array_equal(L.reshape(-1), d["L"])


def test_mlp_label_output_names_the_cause():
    path, _ = _load("sk_mlp")
    with pytest.raises(OnnxImportError, match="classes_"):
        from_onnx(path, output="output_label")


@needs_onnxruntime
@pytest.mark.parametrize("name", CLASSIFIERS + REGRESSORS)
def test_matches_onnxruntime_and_round_trips(name):
    import onnxruntime as ort
    path, d = _load(name)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: d["X"]})
    want = outs[-1]
    if isinstance(want, list):  # ZipMap: a list of {class: probability}
        want = np.array([[m[k] for k in sorted(m)] for m in want], np.float32)
    f = from_onnx(path)
    got = rtinfer.load(f).predict(d["X"])
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
    back = to_onnx(f)
    sess2 = ort.InferenceSession(back.SerializeToString(), providers=["CPUExecutionProvider"])
    y2 = sess2.run(None, {"input": d["X"]})[0]
    np.testing.assert_allclose(y2.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
