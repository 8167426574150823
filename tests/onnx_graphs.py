"""Small ONNX graphs for op tests: a model from nodes (explicit opset and IR version, which
onnxruntime 1.31 needs) and one onnxruntime run."""

from __future__ import annotations

from onnx import helper


def graph_model(nodes, inputs, outputs, inits=(), opset=21, ir_version=10):
    """An onnx.ModelProto of one graph: value infos in, value infos out, initializer TensorProtos."""
    g = helper.make_graph(nodes, "g", list(inputs), list(outputs), list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir_version
    return m


def ort_run(model, feeds: dict) -> list:
    """Every output of model on feeds ({input name: array}), by onnxruntime on the CPU."""
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)
