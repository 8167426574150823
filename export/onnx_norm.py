"""LayerNormalization on a runtime tensor -> LAYERNORM (rtinfer.ops), and the decomposed form
exporters write (ReduceMean -> Sub -> Pow(2) | Mul(d, d) -> ReduceMean -> Add(eps) -> Sqrt -> Div),
rewritten into a LayerNormalization node before translation (``rewrite_layernorm``); the Mul
by gamma and Add of beta that follow fold into an AFFINE. Called by export.onnx_import.
"""

from __future__ import annotations

import numpy as np

from rtinfer.ops import Op

from .onnx_ir import Dyn

OPS = ("LayerNormalization",)


def translate(imp, node, x, k):
    a = imp.attrs(node)
    if k != 0:
        raise imp.unsupported(node, "the runtime tensor must be input X")
    imp.need_float(node, x)
    if any(o for o in node.output[1:]) and any(o in n.input for o in node.output[1:] if o for n in imp.graph.node):
        raise imp.unsupported(node, "its Mean / InvStdDev outputs are used")
    rank = imp.rank(x)
    ax = imp.sample_axis(node, int(a.get("axis", -1)), rank, "LayerNormalization over")
    axes = a.get("rtinfer_axes")
    if axes is not None and sorted(imp._axis(node, int(v), rank) for v in axes) != list(range(ax + imp.lead, rank)):
        raise imp.unsupported(node, f"a normalization over axes {list(axes)} that are not the trailing axes")
    s = x.shape
    inner = s[ax:]
    n = int(np.prod(inner))
    scale = imp.const(node, 1)
    bias = imp.const(node, 2)

    def vec(v, default):
        if v is None:
            return np.full(n, default, np.float32)
        try:
            return np.broadcast_to(np.asarray(v, np.float32), inner).reshape(-1).astype(np.float32)
        except ValueError:
            raise imp.err(node, f"scale/bias of shape {np.asarray(v).shape} do not broadcast to {inner}") from None
    eps = float(a.get("epsilon", 1e-5))
    if not eps > 0:
        raise imp.err(node, f"epsilon {eps} must be positive")
    if int(a.get("stash_type", 1)) != 1:
        raise imp.unsupported(node, "stash_type other than 1 (float32)")
    imp.emit(node, Op.LAYERNORM, x, s, tensors={"scale": vec(scale, 1.0), "bias": vec(bias, 0.0)},
             attrs={"outer": int(np.prod(s[:ax])), "axis_len": n, "epsilon": eps})
    return {node.output[0]: Dyn(s)}


def rewrite_layernorm(nodes: list, const_value, attrs_of) -> list:
    """nodes with each decomposed layer normalization replaced by one LayerNormalization node
    (scale 1, bias 0: the Mul / Add that follow stay). const_value(name) -> array or None;
    attrs_of(node) -> dict of attributes."""
    from onnx import helper
    prod = {o: n for n in nodes for o in n.output if o}

    def p(name, op):
        n = prod.get(name)
        return n if n is not None and n.op_type == op else None

    def red_axes(n):
        a = attrs_of(n)
        axes = a.get("axes")
        if axes is None and len(n.input) > 1:
            v = const_value(n.input[1])
            axes = None if v is None else [int(t) for t in np.asarray(v).reshape(-1)]
        if axes is None or int(a.get("keepdims", 1)) != 1:
            return None
        return sorted(int(t) for t in axes)

    out = []
    for n in nodes:
        if n.op_type != "Div" or len(n.input) != 2:
            out.append(n)
            continue
        d, sd = n.input
        sq = p(sd, "Sqrt")
        add = sq and p(sq.input[0], "Add")
        eps = None
        var = None
        if add:
            for i in (0, 1):
                c = const_value(add.input[i])
                if c is not None and np.asarray(c).size == 1:
                    eps, var = float(np.asarray(c).reshape(-1)[0]), add.input[1 - i]
        rm2 = var and p(var, "ReduceMean")
        sqr = rm2 and (p(rm2.input[0], "Pow") or p(rm2.input[0], "Mul"))
        ok = bool(sqr) and eps is not None and eps > 0
        if ok and sqr.op_type == "Pow":
            e = const_value(sqr.input[1])
            ok = sqr.input[0] == d and e is not None and np.asarray(e).size == 1 and float(np.asarray(e).reshape(-1)[0]) == 2.0
        elif ok:
            ok = sqr.input[0] == d and sqr.input[1] == d
        sub = ok and p(d, "Sub")
        rm1 = sub and p(sub.input[1], "ReduceMean")
        if not (rm1 and rm1.input[0] == sub.input[0] and red_axes(rm1) is not None
                and red_axes(rm1) == red_axes(rm2)):
            out.append(n)
            continue
        axes = red_axes(rm1)
        ln = helper.make_node("LayerNormalization", [sub.input[0]], [n.output[0]], name=(n.name or "div") + ".layernorm",
                              axis=axes[0], epsilon=eps, rtinfer_axes=axes)
        out.append(ln)
    return out
