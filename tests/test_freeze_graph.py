"""Residual models trained with rtinfer.train freeze to graph FrozenModels (export.freeze_graph):
fp32 equal to the trained model within 1e-5, int8 within one accuracy point, through .rtm and
ONNX (onnxruntime runs the export with the same outputs), on the compiled runtime."""

from __future__ import annotations

import numpy as np
import pytest

import rtinfer
from export import freeze, from_onnx, to_onnx
from rtinfer import reference
from rtinfer.ops import Op
from rtinfer.rtm import from_bytes, to_bytes
from rtinfer.train import (
    CNN, Activation, Adam, BatchNorm, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool, Residual, Sequential, datasets,
    fit,
)


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


def _residual_mlp(digits):
    m = Sequential((64,), [Dense(64, 32), Activation("relu"),
                           Residual([Dense(32, 32), Activation("relu"), Dense(32, 32)]), Activation("relu"),
                           Residual([Dense(32, 16), Activation("tanh")], shortcut=Dense(32, 16)),
                           Dense(16, 10)], output="softmax", preprocess="standardize", seed=0)
    fit(m, digits.X_train, digits.y_train, optimizer=Adam(2e-3), epochs=12, batch_size=32, seed=0, verbose=False)
    return m, digits.X_train, digits.X_test, digits.y_test


def _residual_cnn(digits):
    X, Xt = digits.X_train.reshape(-1, 1, 8, 8), digits.X_test.reshape(-1, 1, 8, 8)
    m = CNN((1, 8, 8), [Conv2D(1, 8, 3, padding="same"), BatchNorm(8), Activation("relu"),
                        Residual([Conv2D(8, 16, 3, stride=2, padding=1), BatchNorm(16), Activation("relu"),
                                  Conv2D(16, 16, 3, padding="same"), BatchNorm(16)],
                                 shortcut=Conv2D(8, 16, 1, stride=2)), Activation("relu"),
                        Residual([Conv2D(16, 16, 3, padding="same"), BatchNorm(16)]), Activation("relu"),
                        Flatten(), Dense(256, 10)], preprocess="standardize", seed=0)
    fit(m, X, digits.y_train, optimizer=Adam(3e-3), epochs=2, batch_size=32, seed=0, verbose=False)
    return m, X, Xt, digits.y_test


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def trained(request, digits):
    return request.param, (_residual_mlp if request.param == "mlp" else _residual_cnn)(digits)


def test_residual_models_freeze_to_graphs_that_match_the_trained_model(trained, tmp_path):
    kind, (m, X, Xt, yt) = trained
    Xt32 = Xt.astype(np.float32)
    fz = freeze(m)
    assert not fz.is_chain and sum(layer.op == Op.BINARY for layer in fz.layers) == 2
    want = m.predict_proba(Xt)
    rt = rtinfer.load(fz)
    got = rt.predict(Xt32)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rt.stream(Xt32), want, rtol=1e-5, atol=1e-5)
    # int8: residual adds quantized (QBINARY), accuracy within one point of fp32
    q = freeze(m, dtype="int8", calibration=X)
    assert sum(layer.op == Op.QBINARY for layer in q.layers) == 2 and Op.BINARY not in {l.op for l in q.layers}
    rq = rtinfer.load(q)
    acc32 = float(np.mean(got.argmax(1) == yt))
    acc8 = float(np.mean(rq.predict(Xt32).argmax(1) == yt))
    assert acc8 >= acc32 - 0.01, (acc8, acc32)
    # .rtm round trip: same bits
    for f, r in ((fz, rt), (q, rq)):
        path = tmp_path / f"{kind}.rtm"
        f.save(path)
        np.testing.assert_array_equal(rtinfer.load(path).stream(Xt32), r.stream(Xt32))
        assert to_bytes(from_bytes(to_bytes(f))) == to_bytes(f)


def test_residual_models_through_onnx(trained):
    ort = pytest.importorskip("onnxruntime")
    kind, (m, X, Xt, yt) = trained
    Xt32 = Xt.astype(np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for dtype in ("float32", "int8"):
        fz = freeze(m) if dtype == "float32" else freeze(m, dtype="int8", calibration=X)
        ours = rtinfer.load(fz).stream(Xt32)
        model = to_onnx(fz)
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        theirs = sess.run(None, {"input": Xt32.reshape((len(Xt32),) + fz.input_shape)})[0]
        if dtype == "float32":
            np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
        else:  # softmax of dequantized logits: one logit step moves a probability by < 1 step * p
            step = [l for l in fz.layers if l.op == Op.DEQUANTIZE][-1].attrs["x_scale"]
            assert float(np.abs(theirs - ours).max()) <= step + 1e-6
            assert float(np.mean(theirs.argmax(1) == ours.argmax(1))) >= 0.99
        back = from_onnx(model)  # and back: the same layers run the same
        # (fp32: the importer folds the preprocessing AFFINE into the first DENSE: another rounding)
        np.testing.assert_allclose(rtinfer.load(back).stream(Xt32), ours, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dims", [1, 2])
def test_random_residual_cnn_with_projection_and_unfused_activations(dims):
    """A block whose post-add activation is not fusable (softplus -> QLUT after QBINARY), tanh
    inside a block, an identity block, 1-D and 2-D: fp32 == the train model; int8 bit-exact
    between the compiled paths and the reference executor."""
    conv = Conv1D if dims == 1 else Conv2D
    shape = (2, 9) if dims == 1 else (2, 5, 6)
    m = CNN(shape, [conv(2, 3, 3, padding="same"), BatchNorm(3), Activation("relu"),
                    Residual([conv(3, 4, 3, stride=2, padding=1), BatchNorm(4), Activation("tanh"),
                              conv(4, 4, 3, padding="same"), BatchNorm(4)], shortcut=conv(3, 4, 1, stride=2)),
                    Activation("softplus"), Residual([conv(4, 4, 3, padding="same")]),
                    GlobalAvgPool(), Dense(4, 3)], seed=1)
    rng = np.random.default_rng(3)
    for layer in m.layers:
        for name, arr in layer.trainable_params().items():
            if not name.endswith("W"):
                arr[...] = rng.normal(0.0, 0.5, size=arr.shape) + (1.0 if name.endswith("gamma") else 0.0)
    X = rng.normal(size=(40,) + shape).astype(np.float32)
    fz = freeze(m)
    np.testing.assert_allclose(rtinfer.load(fz).predict(X), m.predict_proba(X), rtol=1e-5, atol=1e-6)
    q = freeze(m, dtype="int8", calibration=X)
    assert Op.QLUT in {layer.op for layer in q.layers}
    ref, trace = reference.run(q, X, trace=True)
    rq = rtinfer.load(q)
    deq = max(i for i, layer in enumerate(q.layers) if layer.op == Op.DEQUANTIZE)
    cut = q.layers[deq]  # the int8 part ends at the last DEQUANTIZE: compare it exactly
    from rtinfer.frozen import FrozenModel
    part = FrozenModel(q.layers[:deq + 1], q.buffers, q.input_shape, cut.out_shape)
    np.testing.assert_array_equal(rtinfer.load(part).stream(X), trace[deq].reshape(len(X), -1).reshape(
        (len(X),) + cut.out_shape))
    np.testing.assert_array_equal(rq.stream(X), rq.predict(X))
    np.testing.assert_allclose(rq.predict(X), ref, rtol=1e-6, atol=1e-6)
