"""onnxruntime's QOperator format (domain com.microsoft: QGemm, QLinearAdd, QLinearMul,
QLinearConcat, QLinearAveragePool, QLinearGlobalAveragePool, QLinearSigmoid, QLinearLeakyRelu,
QLinearSoftmax, and its QuantizeLinear / DequantizeLinear) rewritten, before translation, into
the standard QDQ form those ops are defined by: DequantizeLinear of each quantized input -> the
float op -> QuantizeLinear. The importer's fusions then make the int8 layers of rtinfer.ops
(QDENSE, QBINARY, QCONCAT, QAVGPOOL, QLUT) with onnxruntime's arithmetic; constant inputs fold.
Called by export.onnx_import.
"""

from __future__ import annotations

import numpy as np

MS = "com.microsoft"
OPS = ("QGemm", "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearAveragePool", "QLinearGlobalAveragePool",
       "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "QuantizeLinear", "DequantizeLinear")
_UNARY = {"QLinearAveragePool": "AveragePool", "QLinearGlobalAveragePool": "GlobalAveragePool",
          "QLinearSigmoid": "Sigmoid", "QLinearLeakyRelu": "LeakyRelu", "QLinearSoftmax": "Softmax"}


class QopError(ValueError):
    """A com.microsoft node this rewrite does not express (the importer names the node)."""


def rewrite_qoperator(nodes: list, const_value, attrs_of) -> list:
    """nodes with each QOperator node replaced by its QDQ expansion (new tensor names are
    ``<output>.rtinfer_*``). const_value(name) -> array or None (for QGemm's bias scale)."""
    from onnx import helper, numpy_helper
    out = []
    for n in nodes:
        if n.domain != MS or n.op_type not in OPS:
            out.append(n)
            continue
        op, y = n.op_type, n.output[0]
        a = attrs_of(n)
        ins = list(n.input) + [""] * 9
        base = f"{y}.rtinfer"
        tag = n.name or op

        def dq(x, s, z, name, **kw):
            out.append(helper.make_node("DequantizeLinear", [x, s] + ([z] if z else []), [name],
                                        name=f"{tag}.dequantize_{name.rsplit('_', 1)[-1]}", **kw))
            return name

        def q(x, s, z):
            out.append(helper.make_node("QuantizeLinear", [x, s] + ([z] if z else []), [y], name=f"{tag}.quantize"))

        if op in ("QuantizeLinear", "DequantizeLinear"):
            m = helper.make_node(op, list(n.input), list(n.output), name=n.name)
            m.attribute.extend(n.attribute)
            out.append(m)
        elif op in ("QLinearAdd", "QLinearMul"):
            fa = dq(ins[0], ins[1], ins[2], f"{base}_a")
            fb = dq(ins[3], ins[4], ins[5], f"{base}_b")
            out.append(helper.make_node(op[7:], [fa, fb], [f"{base}_f"], name=tag))
            q(f"{base}_f", ins[6], ins[7])
        elif op == "QLinearConcat":
            ys, yz = ins[0], ins[1]
            fs = [dq(ins[i], ins[i + 1], ins[i + 2], f"{base}_{i}") for i in range(2, len(n.input), 3)]
            out.append(helper.make_node("Concat", fs, [f"{base}_f"], name=tag, axis=int(a.get("axis", 0))))
            q(f"{base}_f", ys, yz)
        elif op in _UNARY:
            if int(a.get("channels_last", 0)):
                raise QopError(f"{op} {tag!r}: channels_last=1")
            keep = {k: v for k, v in a.items() if k not in ("channels_last", "opset")}
            fx = dq(ins[0], ins[1], ins[2], f"{base}_x")
            out.append(helper.make_node(_UNARY[op], [fx], [f"{base}_f"], name=tag, **keep))
            q(f"{base}_f", ins[3], ins[4])
        elif op == "QGemm":
            tb = int(a.get("transB", 0))
            bs = const_value(ins[4])
            if bs is None:
                raise QopError(f"QGemm {tag!r}: the weight scale must be a constant")
            fa = dq(ins[0], ins[1], ins[2], f"{base}_a")
            fb = dq(ins[3], ins[4], ins[5], f"{base}_b", **({"axis": 0 if tb else 1} if np.asarray(bs).size > 1 else {}))
            gin = [fa, fb]
            if ins[6]:
                xs = const_value(ins[1])
                if xs is None:
                    raise QopError(f"QGemm {tag!r}: the input scale must be a constant")
                cs = (np.float64(np.asarray(xs, np.float32).reshape(-1)[0]) * np.asarray(bs, np.float64).reshape(-1))
                cs = cs.astype(np.float32)
                cname = f"{base}_c_scale"
                out.append(helper.make_node("Constant", [], [cname], name=f"{tag}.c_scale",
                                            value=numpy_helper.from_array(cs if cs.size > 1 else cs.reshape(()), cname)))
                gin.append(dq(ins[6], cname, "", f"{base}_c", **({"axis": 0} if cs.size > 1 else {})))
            g = {k: v for k, v in a.items() if k in ("alpha", "transA", "transB")}
            if ins[7]:
                out.append(helper.make_node("Gemm", gin, [f"{base}_f"], name=tag, **g))
                q(f"{base}_f", ins[7], ins[8])
            else:  # float output
                out.append(helper.make_node("Gemm", gin, [y], name=tag, **g))
    return out
