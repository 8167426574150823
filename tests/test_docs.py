"""The docs name what the code supports: the README's ONNX op table is checked against the
importer's op table, and docs/FORMAT.md lists every op and activation code."""

import os
import re

from rtinfer.ops import Act, Op

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def readme_onnx_ops() -> set[str]:
    text = read("README.md")
    section = text[text.index("<!-- onnx-ops:start -->"):text.index("<!-- onnx-ops:end -->")]
    names = set()
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| ONNX op") or line.startswith("| ---"):
            continue
        first = line.split("|")[1]
        first = re.sub(r"\([^)]*\)", "", first).replace("ai.onnx.ml", "")
        for part in first.split(","):
            part = part.strip()
            if "→" in part or not part:  # a fused pattern row, not an op name
                continue
            names.add(part)
    return names


def test_readme_onnx_op_table_matches_the_importer():
    from export.onnx_import import SUPPORTED_OPS
    listed = readme_onnx_ops()
    assert set(SUPPORTED_OPS) - listed == set(), "ops the importer supports but the README omits"
    assert listed - set(SUPPORTED_OPS) == set(), "ops the README lists but the importer refuses"


def test_format_doc_lists_every_code():
    fmt = read("docs/FORMAT.md")
    for op in Op:
        assert f"{op.name} {int(op)}" in fmt, op
    for act in Act:
        assert f"{act.name} {int(act)}" in fmt, act
