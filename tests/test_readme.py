"""The README's first lines are the two commands, and its Python tour runs as written."""

import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_readme_begins_with_the_two_commands():
    block = re.search(r"```\n(.*?)```", readme(), re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert block[0].startswith("pip install") and block[0].endswith("rtinfer demo")
    assert block[1].startswith("python -m pytest")


def test_readme_tour_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", readme(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["acc"] > 0.93
    assert scope["report"].n > 0
    assert os.path.getsize(tmp_path / "digits_int8.onnx") > 0
    # the file-loaded int8 runtime agrees with the reference executor on the in-memory model
    # (int8 layers bit-exact; the float softmax head within float32 rounding)
    from rtinfer import reference
    ref = reference.run(scope["int8"], scope["X_test"])
    np.testing.assert_allclose(scope["probs"], ref, rtol=1e-5, atol=1e-7)
    assert np.array_equal(scope["probs"].argmax(1), ref.argmax(1))
    # the graph block continues the tour in the same scope
    graph = re.findall(r"```python\n(.*?)```", readme(), re.S)[1]
    scope["ONNX_DIR"] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "onnx")
    exec(compile(graph, "README.md", "exec"), scope)
    from rtinfer.ops import Op
    assert sum(layer.op == Op.QBINARY for layer in scope["int8"].layers) == 1
    assert sum(layer.op == Op.BINARY for layer in scope["resnet8"].frozen.layers) == 3
    assert scope["resnet8"].predict_one(np.zeros((3, 32, 32), np.float32)).shape == (10,)
