"""ONNX windows the 2-D kernels do not cover, as an index table + an existing kernel
(called by export.onnx_import for Conv/MaxPool/AveragePool/GlobalMaxPool on 3-D inputs and
ConvTranspose of any rank):

- Conv (N-D, groups, dilations, pads, auto_pad) = GATHER building the im2col tensor
  (C * K, P) (padding reads 0) + a 1-D CONV with kernel 1 and weights (O, C/group * K);
- ConvTranspose (1-D, 2-D, 3-D; strides, dilations, pads, output_padding, output_shape,
  auto_pad, group) = the same, with the table of p = q * stride + k * dilation - pad;
- MaxPool (N-D) = GATHER (C * P, K) with -inf padding + a 1-D MAXPOOL over K;
- AveragePool (N-D) = GATHER (C * P, K) with 0 padding + a 1-D AVGPOOL over K (sum / K) +
  an AFFINE K / count per output position when the divisor differs (count_include_pad=0,
  ceil_mode's extra windows);
- GlobalMaxPool (N-D) = MAXPOOL over the flattened spatial axes.
Tables come from export.onnx_tables; the work is bounded like every window (MAX_WINDOW_WORK).
"""

from __future__ import annotations

import math

import numpy as np

from rtinfer.ops import MAX_WINDOW_WORK, Op
from rtinfer.reference_conv import geometry_attrs

from . import onnx_tables
from .onnx_common import MAX_EXPANDED_ELEMENTS
from .onnx_ir import Dyn, window_attrs


def handles(imp, node, x) -> bool:
    """True for the nodes this family translates (x: the window's (C, *spatial) input)."""
    op = node.op_type
    if op == "ConvTranspose":
        return True
    return op in ("Conv", "MaxPool", "AveragePool", "GlobalMaxPool") and len(x.shape) == 4


def _geometry(imp, node, spatial, kernel, a):
    """(strides, dilations, pads_begin, pads_end, out_spatial) of a Conv / pool window."""
    kernel = [int(v) for v in kernel]
    try:
        strides, dil, pb, pe = window_attrs(spatial, kernel, a)
    except ValueError as exc:
        raise imp.err(node, str(exc)) from None
    out, ceil_end = [], list(pe)
    for i, (n, k, s, d) in enumerate(zip(spatial, kernel, strides, dil)):
        span = n + pb[i] + pe[i] - ((k - 1) * d + 1)
        if span < 0:
            raise imp.err(node, f"the window does not fit the input (spatial {tuple(spatial)})")
        o = span // s + 1
        if int(a.get("ceil_mode", 0)):
            o = -(-span // s) + 1
            if (o - 1) * s >= n + pb[i]:  # the last window must start inside the input or left pad
                o -= 1
            ceil_end[i] = max(pe[i], (o - 1) * s + (k - 1) * d + 1 - n - pb[i])
        out.append(o)
    work = math.prod(out) * math.prod(kernel)
    if work > MAX_WINDOW_WORK:
        raise imp.unsupported(node, f"{math.prod(out)} outputs x a {math.prod(kernel)}-element window is {work} "
                                    f"window reads per sample, above the limit {MAX_WINDOW_WORK}")
    return strides, dil, pb, pe, out


def _im2col(imp, node, x, taps, c, fill, layout):
    """GATHER of x (C, *spatial) by taps (P, K) -> (C * K, P) ("ck_p") or (C * P, K) ("cp_k")."""
    S = math.prod(x.shape[1:])
    base = (np.arange(c, dtype=np.int64) * S)[:, None, None]
    t = np.where(taps[None] >= 0, base + taps[None], -1)  # (C, P, K)
    if layout == "ck_p":
        t = np.transpose(t, (0, 2, 1))
    t = t.reshape(-1, t.shape[-1])
    if t.size > MAX_EXPANDED_ELEMENTS:
        raise imp.unsupported(node, f"its im2col table has {t.size} elements (limit "
                                    f"{MAX_EXPANDED_ELEMENTS})")
    return imp.gather(node, x, t, fill=fill)


def _conv_1x1(imp, node, cols, w2, b, group, out_shape):
    """A 1-D CONV with kernel 1 on cols (C * K, P): the contraction over channels and taps."""
    o, p = w2.shape[0], cols.shape[1]
    attrs = dict(geometry_attrs((1, 1)), group=group)
    imp.emit(node, Op.CONV, cols, (o, p), tensors={"W": w2.reshape(o, -1, 1, 1).astype(np.float32),
                                                   "b": b.astype(np.float32)}, attrs=attrs)
    return Dyn(tuple(out_shape))


def translate(imp, node, x, k):
    op = node.op_type
    a = imp.attrs(node)
    if k != 0:
        raise imp.unsupported(node, "the runtime tensor must be the first input")
    if len(x.shape) < 2:
        raise imp.err(node, f"needs a (N, C, *spatial) input, got {imp.full(x)}")
    c, spatial = x.shape[0], tuple(x.shape[1:])
    if op == "GlobalMaxPool":
        imp.need_float(node, x)
        S = math.prod(spatial)
        imp.emit(node, Op.MAXPOOL, Dyn((c, S), src=imp.src(x)), (c, 1), attrs=geometry_attrs((1, S)))
        return Dyn((c,) + (1,) * len(spatial))
    if op in ("MaxPool", "AveragePool"):
        if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
            if any(node.output[1] in n.input for n in imp.graph.node) or \
                    any(o.name == node.output[1] for o in imp.graph.output):
                raise imp.unsupported(node, "its Indices output is used")
        if "kernel_shape" not in a:
            raise imp.err(node, "missing attribute kernel_shape")
        if x.kind != "f32" and not (op == "MaxPool" and x.kind == "q8"):
            imp.need_float(node, x)
        kernel = [int(v) for v in a["kernel_shape"]]
        strides, dil, pb, pe, out_sp = _geometry(imp, node, spatial, kernel, a)
        taps = onnx_tables.window_taps(spatial, out_sp, kernel, strides, dil, pb)
        P, K = taps.shape
        if np.any(np.all(taps < 0, axis=1)):
            raise imp.unsupported(node, "a pooling window holds padding only")
        out_shape = (c,) + tuple(out_sp)
        if op == "MaxPool":
            q = x.kind == "q8"
            cols = _im2col(imp, node, x, taps, c, -128 if q else -np.inf, "cp_k")
            attrs = geometry_attrs((1, K))
            if q:
                attrs.update(x_scale=1.0, x_zp=0)
            imp.emit(node, Op.QMAXPOOL if q else Op.MAXPOOL, Dyn((c * P, K), src=cols.src), (c * P, 1), attrs=attrs)
            return {node.output[0]: Dyn(out_shape, x.kind, x.onnx_type)}
        cols = _im2col(imp, node, x, taps, c, 0.0, "cp_k")
        attrs = dict(geometry_attrs((1, K)), count_include_pad=1)
        p = imp.emit(node, Op.AVGPOOL, Dyn((c * P, K), src=cols.src), (c * P, 1), attrs=attrs)
        if int(a.get("count_include_pad", 0)):  # taps inside the declared pads count, ceil extensions do not
            padded = onnx_tables.window_taps(tuple(n + b + e for n, b, e in zip(spatial, pb, pe)), out_sp, kernel,
                                             strides, dil, [0] * len(spatial))
            count = (padded >= 0).sum(axis=1)
        else:
            count = (taps >= 0).sum(axis=1)
        if np.any(count != K):
            s = np.tile((np.float32(K) / count.astype(np.float32)).astype(np.float32), c)
            imp.emit(node, Op.AFFINE, Dyn((c * P,), src=p), (c * P,), tensors={"s": s, "t": np.zeros_like(s)})
        return {node.output[0]: Dyn(out_shape)}
    imp.need_float(node, x)
    W = np.asarray(imp.const(node, 1), np.float32)
    nd = len(spatial)
    if W.ndim != nd + 2:
        raise imp.err(node, f"weights of shape {W.shape} do not match input {imp.full(x)}")
    group = int(a.get("group", 1))
    kernel = list(W.shape[2:])
    if "kernel_shape" in a and [int(v) for v in a["kernel_shape"]] != kernel:
        raise imp.err(node, f"kernel_shape {list(a['kernel_shape'])} differs from the weights' {kernel}")
    K = math.prod(kernel)
    B = imp.const(node, 2)
    if op == "Conv":
        o = W.shape[0]
        if group < 1 or c % group or o % group or W.shape[1] != c // group:
            raise imp.err(node, f"weights {W.shape} with group={group} do not fit {c} input channels")
        strides, dil, pb, pe, out_sp = _geometry(imp, node, spatial, kernel, a)
        taps = onnx_tables.window_taps(spatial, out_sp, kernel, strides, dil, pb)
        w2 = W.reshape(o, -1)
    else:  # ConvTranspose: W (C, O / group, *kernel)
        if group < 1 or c % group or W.shape[0] != c:
            raise imp.err(node, f"weights {W.shape} with group={group} do not fit {c} input channels")
        og = W.shape[1]
        o = og * group
        strides = [int(v) for v in a.get("strides", [1] * nd)]
        dil = [int(v) for v in a.get("dilations", [1] * nd)]
        opad = [int(v) for v in a.get("output_padding", [0] * nd)]
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        full = [s * (n - 1) + op_ + (k - 1) * d + 1 for n, k, s, d, op_ in zip(spatial, kernel, strides, dil, opad)]
        if "output_shape" in a or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            want = [int(v) for v in a["output_shape"]][-nd:] if "output_shape" in a else \
                [n * s for n, s in zip(spatial, strides)]
            total = [f - w for f, w in zip(full, want)]
            if min(total) < 0:
                raise imp.unsupported(node, f"output_shape {want} larger than the full transposed output {full}")
            if auto_pad == "SAME_LOWER":
                pb = [t - t // 2 for t in total]
            else:
                pb = [t // 2 for t in total]
            out_sp = want
        else:
            pads = [int(v) for v in a.get("pads", [0] * (2 * nd))]
            if auto_pad == "VALID":
                pads = [0] * (2 * nd)
            if len(pads) != 2 * nd or min(pads) < 0:
                raise imp.err(node, f"pads {pads} must be {2 * nd} values >= 0")
            pb = pads[:nd]
            out_sp = [f - b - e for f, b, e in zip(full, pads[:nd], pads[nd:])]
        if min(out_sp) < 1:
            raise imp.err(node, f"the transposed output {out_sp} is empty")
        if math.prod(out_sp) * K > MAX_WINDOW_WORK:
            raise imp.unsupported(node, f"{math.prod(out_sp)} outputs x a {K}-element kernel exceeds the window "
                                        f"limit {MAX_WINDOW_WORK}")
        taps = onnx_tables.transposed_taps(spatial, out_sp, kernel, strides, dil, pb)
        cg = c // group
        Wg = W.reshape(group, cg, og, K).transpose(0, 2, 1, 3)  # (group, Og, Cg, K)
        w2 = Wg.reshape(o, cg * K)
    b = np.zeros(o, np.float32) if B is None else np.asarray(B, np.float32).reshape(-1)
    if b.size != o:
        raise imp.err(node, f"bias of shape {np.asarray(B).shape} does not match {o} output channels")
    cols = _im2col(imp, node, x, taps, c, 0.0, "ck_p")
    return _conv_1x1(imp, node, cols, w2, b, group, (o,) + tuple(out_sp))
