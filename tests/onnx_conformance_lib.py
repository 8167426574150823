"""Helpers for the ONNX conformance tests: run backend test cases through from_onnx + rtinfer.

A backend node test feeds every graph input at run time; rtinfer takes one input, so inputs
1..n become initializers (weights) before import. Outputs are compared like the ONNX backend
runner: exact shape and dtype, then rtol 1e-3, atol 1e-7 (the case's own tolerances).
"""

from __future__ import annotations

import glob
import os

import numpy as np


def freeze_extra_inputs(model, inputs):
    """Copy of ``model`` with graph inputs 1..n turned into initializers holding ``inputs[1:]``."""
    import onnx
    from onnx import numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    init_names = {t.name for t in m.graph.initializer}
    runtime = [vi for vi in m.graph.input if vi.name not in init_names]
    keep = runtime[:1]
    for vi, arr in zip(runtime[1:], inputs[1:]):
        arr = np.asarray(arr)
        if arr.dtype == object and arr.size == 1 and isinstance(arr.reshape(-1)[0], onnx.TensorProto):
            tensor = onnx.TensorProto()  # float8 / int4 / int2 values come as TensorProtos
            tensor.CopyFrom(arr.reshape(-1)[0])
            tensor.name = vi.name
        else:
            tensor = numpy_helper.from_array(arr, vi.name)
        m.graph.initializer.append(tensor)
    others = [vi for vi in m.graph.input if vi.name in init_names]
    del m.graph.input[:]
    m.graph.input.extend(keep + others)
    return m


def executors():
    """(name, fn(frozen, X) -> Y) for the reference executor and the compiled runtime."""
    import rtinfer
    from rtinfer import reference

    def compiled(frozen, X):
        return rtinfer.load(frozen).predict(X)

    def golden(frozen, X):  # the reference executor runs batches; a model without one takes X whole
        if frozen.meta.get("batch") == "none":
            Y = reference.run(frozen, X[None])
            return tuple(y[0] for y in Y) if isinstance(Y, tuple) else Y[0]
        return reference.run(frozen, X)

    return [("reference", golden), ("runtime", compiled)]


def check_case(model, inputs, expected, rtol=1e-3, atol=1e-7):
    """Import ``model`` (inputs 1..n frozen) and compare every executor with ``expected``.

    Raises AssertionError / OnnxImportError on any difference; returns None on success.
    """
    from export.onnx_import import from_onnx
    names = [o.name for o in model.graph.output]
    if len(expected) != len(names):
        raise AssertionError(f"the case checks {len(expected)} outputs of a graph with {len(names)}")
    frozen = from_onnx(freeze_extra_inputs(model, inputs), output=names if len(names) > 1 else None)
    # a graph without inputs imports with a placeholder input (export.onnx_import): feed zeros
    X = np.asarray(inputs[0]) if inputs else np.zeros(frozen.input_shape, np.float32)
    if X.ndim == 0 and frozen.meta.get("batch") != "none":
        raise AssertionError("scalar input")
    for name, fn in executors():
        gots = fn(frozen, X.astype(np.float32))
        gots = gots if isinstance(gots, tuple) else (gots,)
        for k, (got, want) in enumerate(zip(gots, expected)):
            got, want = np.asarray(got), np.asarray(want)
            assert got.dtype == want.dtype, f"{name} output {k}: dtype {got.dtype} != {want.dtype}"
            assert got.shape == want.shape, f"{name} output {k}: shape {got.shape} != {want.shape}"
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{name} output {k}")


def load_data_dir(case_dir):
    """(model, inputs, outputs) from a backend test folder (model.onnx + test_data_set_0)."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(os.path.join(case_dir, "model.onnx"))
    ds = os.path.join(case_dir, "test_data_set_0")

    def read(prefix):
        arrs = []
        for f in sorted(glob.glob(os.path.join(ds, f"{prefix}_*.pb")), key=lambda p: int(p.rsplit("_", 1)[1][:-3])):
            t = onnx.TensorProto()
            with open(f, "rb") as fh:
                t.ParseFromString(fh.read())
            arrs.append(numpy_helper.to_array(t))
        return arrs

    return model, read("input"), read("output")
