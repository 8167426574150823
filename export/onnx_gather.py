"""ONNX data-movement ops on a runtime tensor as one GATHER each (rtinfer.ops; called by
export.onnx_import): Pad (constant, reflect, edge, wrap), Resize and Upsample (nearest, every
coordinate transformation mode but half_pixel_symmetric), Gather with constant indices,
DepthToSpace, SpaceToDepth, Tile and Expand.

Each op is applied by NumPy to the flat positions of the input (export.onnx_tables), which gives
the table of the input element every output element copies (-1: Pad's constant). With a batch
axis the op must leave it alone (else OnnxImportError, and from_onnx retries the graph without a
batch axis when its first dimension is fixed).
"""

from __future__ import annotations

import math

import numpy as np

from . import onnx_tables
from .onnx_ir import UINT8

OPS = ("Pad", "Resize", "Upsample", "Gather", "DepthToSpace", "SpaceToDepth", "Tile", "Expand")


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _apply(imp, node, x, fn, fill=0.0):
    """GATHER by fn(positions of x's ONNX tensor) (the batch axis, if any, as a leading 1)."""
    pos = onnx_tables.positions(x.shape)
    if imp.lead:
        pos = pos[None]
    table = np.asarray(fn(pos))
    if imp.lead:
        if table.ndim == 0 or table.shape[0] != 1:
            raise imp.batch_err(node, f"it changes the batch axis (output {table.shape} for a batch of 1)")
        table = table[0]
    if table.size == 0:
        raise imp.unsupported(node, "an empty output")
    return imp.gather(node, x, table, fill=fill)


def translate(imp, node, x, k):
    op = node.op_type
    a = imp.attrs(node)
    if k != 0:
        raise imp.unsupported(node, "the runtime tensor must be the data input (constant data indexed by a "
                                    "runtime tensor is a table lookup rtinfer only takes on int8 codes)"
                              if op == "Gather" else "the runtime tensor must be the first input")
    if x.kind not in ("f32", "q8"):
        imp.need_float(node, x)
    rank = imp.rank(x)
    if op == "Pad":
        return _pad(imp, node, x, a, rank)
    if op in ("Resize", "Upsample"):
        return _resize(imp, node, x, a, rank)
    if op == "Gather":
        idx = np.asarray(imp.const(node, 1)).astype(np.int64)
        axis = imp._axis(node, int(a.get("axis", 0)), rank)
        if axis < imp.lead:
            raise imp.batch_err(node, "Gather along the batch axis (axis 0)")
        n = x.shape[axis - imp.lead]
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise imp.err(node, f"indices out of range for an axis of {n}")
        return _apply(imp, node, x, lambda p: np.take(p, np.where(idx < 0, idx + n, idx), axis=axis))
    if op in ("DepthToSpace", "SpaceToDepth"):
        if rank != 4:
            raise imp.err(node, f"{op} needs a rank-4 input, got {imp.full(x)}")
        bs = int(a.get("blocksize", 0))
        if bs < 1:
            raise imp.err(node, f"blocksize {bs}")
        mode = _s(a.get("mode", "DCR"))

        def d2s(p):
            b, c, h, w = p.shape
            if op == "SpaceToDepth":
                perm = (0, 1, 3, 5, 2, 4) if mode == "CRD" else (0, 3, 5, 1, 2, 4)
                t = p.reshape(b, c, h // bs, bs, w // bs, bs).transpose(perm)
                return t.reshape(b, c * bs * bs, h // bs, w // bs)
            if mode == "CRD":
                t = p.reshape(b, c // (bs * bs), bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
            else:
                t = p.reshape(b, bs, bs, c // (bs * bs), h, w).transpose(0, 3, 4, 1, 5, 2)
            return t.reshape(b, c // (bs * bs), h * bs, w * bs)
        try:
            return _apply(imp, node, x, d2s)
        except ValueError as exc:
            raise imp.err(node, f"blocksize {bs} does not divide {imp.full(x)}: {exc}") from None
    if op == "Tile":
        reps = [int(v) for v in np.asarray(imp.const(node, 1)).reshape(-1)]
        if len(reps) != rank or min(reps) < 1:
            raise imp.err(node, f"repeats {reps} for rank {rank}")
        _check(imp, node, math.prod(x.shape) * math.prod(reps))
        return _apply(imp, node, x, lambda p: np.tile(p, reps))
    if op == "Expand":
        shape = [int(v) for v in np.asarray(imp.const(node, 1)).reshape(-1)]
        full = ((1,) if imp.lead else ()) + tuple(x.shape)
        try:
            out = np.broadcast_shapes(full, tuple(shape))
        except ValueError:
            raise imp.err(node, f"shape {shape} does not broadcast with {imp.full(x)}") from None
        if imp.lead and len(out) > len(full):
            raise imp.batch_err(node, f"Expand to {shape} adds axes before the batch axis")
        _check(imp, node, math.prod(out))
        return _apply(imp, node, x, lambda p: np.broadcast_to(p, out))
    raise imp.unsupported(node)  # pragma: no cover


def _check(imp, node, n):
    if n > onnx_tables.MAX_EXPANDED_ELEMENTS:
        raise imp.unsupported(node, f"an output of {n} elements per sample (limit {onnx_tables.MAX_EXPANDED_ELEMENTS})")


def _pad(imp, node, x, a, rank):
    mode = _s(a.get("mode", "constant"))
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise imp.unsupported(node, f"mode {mode!r}")
    if imp.opset < 11:
        pads = [int(v) for v in a.get("pads", a.get("paddings", []))]
        value = float(a.get("value", 0.0))
        axes = list(range(rank))
    else:
        pads = [int(v) for v in np.asarray(imp.const(node, 1)).reshape(-1)]
        cv = imp.const(node, 2)
        value = float(np.asarray(cv).reshape(-1)[0]) if cv is not None and np.asarray(cv).size else 0.0
        ax = imp.const(node, 3)
        axes = list(range(rank)) if ax is None else [imp._axis(node, int(v), rank) for v in np.asarray(ax).reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise imp.err(node, f"pads {pads} do not fit axes {axes}")
    begin, end = [0] * rank, [0] * rank
    for i, ax in enumerate(axes):
        begin[ax], end[ax] = pads[i], pads[len(axes) + i]
    if imp.lead and (begin[0] or end[0]):
        raise imp.batch_err(node, "Pad of the batch axis")
    full = ((1,) if imp.lead else ()) + tuple(x.shape)
    for n, b, e in zip(full, begin, end):
        if mode == "reflect" and (max(b, e) > n - 1):
            raise imp.unsupported(node, f"a reflect pad of {max(b, e)} on an axis of {n}")
        if n + b + e < 1:
            raise imp.err(node, f"pads {pads} leave an empty axis")
    fill = value
    if x.kind == "q8":  # the constant is a code of the input's type
        fill = int(value) - 128 if x.onnx_type == UINT8 else int(value)
        if not -128 <= fill <= 127:
            raise imp.err(node, f"constant_value {value} outside the input's 8-bit range")
    _check(imp, node, math.prod(n + b + e for n, b, e in zip(full, begin, end)))
    return _apply(imp, node, x, lambda p: onnx_tables.pad(p.shape, begin, end, mode), fill=fill)


def _nearest(xo: np.ndarray, mode: str) -> np.ndarray:
    if mode == "round_prefer_floor":
        return np.where(xo - np.floor(xo) == 0.5, np.floor(xo), np.round(xo))
    if mode == "round_prefer_ceil":
        return np.where(xo - np.floor(xo) == 0.5, np.ceil(xo), np.round(xo))
    if mode == "floor":
        return np.floor(xo)
    if mode == "ceil":
        return np.ceil(xo)
    raise ValueError(mode)


def _resize(imp, node, x, a, rank):
    op = node.op_type
    mode = _s(a.get("mode", "nearest"))
    if mode != "nearest":
        raise imp.unsupported(node, f"mode {mode!r} (rtinfer resizes with mode 'nearest')")
    full = ((1,) if imp.lead else ()) + tuple(x.shape)
    if op == "Upsample" or imp.opset < 11:
        scales = a.get("scales") if (op == "Upsample" and imp.opset < 9) else imp.const(node, 1)
        scales = np.asarray(scales, np.float64).reshape(-1)
        sizes = None
        ctm, nmode = "asymmetric", "floor" if op == "Upsample" else "round_prefer_floor"
        if op == "Resize":
            nmode = "floor"
        axes = list(range(rank))
    else:
        if int(a.get("antialias", 0)):
            raise imp.unsupported(node, "antialias=1")
        policy = _s(a.get("keep_aspect_ratio_policy", "stretch"))
        sc, sz = imp.const(node, 2), imp.const(node, 3)
        scales = None if sc is None or np.asarray(sc).size == 0 else np.asarray(sc, np.float64).reshape(-1)
        sizes = None if sz is None or np.asarray(sz).size == 0 else np.asarray(sz, np.int64).reshape(-1)
        ctm = _s(a.get("coordinate_transformation_mode", "half_pixel"))
        nmode = _s(a.get("nearest_mode", "round_prefer_floor"))
        ax = a.get("axes")
        axes = list(range(rank)) if ax is None else [imp._axis(node, int(v), rank) for v in ax]
    if scales is None and sizes is None:
        raise imp.err(node, "needs scales or sizes")
    if op == "Resize" and imp.opset >= 18 and sizes is not None and policy != "stretch":
        if policy not in ("not_larger", "not_smaller"):
            raise imp.err(node, f"keep_aspect_ratio_policy {policy!r}")
        ratios = [int(sz) / full[ax] for sz, ax in zip(sizes, axes)]
        r = min(ratios) if policy == "not_larger" else max(ratios)
        scales, sizes = np.full(len(axes), r), None
        keep_round = True
    else:
        keep_round = False
    n_ax = len(axes)
    if (scales is not None and scales.size != n_ax) or (sizes is not None and sizes.size != n_ax):
        raise imp.err(node, f"scales/sizes do not fit {n_ax} axes")
    if ctm not in ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nn"):
        raise imp.unsupported(node, f"coordinate_transformation_mode {ctm!r}")
    index = []
    out_full = list(full)
    for j, ax in enumerate(axes):
        n = full[ax]
        if sizes is not None:
            m = int(sizes[j])
            s = m / n
        else:
            s = float(scales[j])
            m = int(np.round(n * s)) if keep_round else int(math.floor(n * s))
        if m < 1 or not s > 0:
            raise imp.err(node, f"axis {ax}: output length {m} from scale {s}")
        i = np.arange(m, dtype=np.float64)
        if ctm == "half_pixel":
            xo = (i + 0.5) / s - 0.5
        elif ctm == "pytorch_half_pixel":
            xo = (i + 0.5) / s - 0.5 if m > 1 else np.zeros(m)
        elif ctm == "align_corners":
            xo = i * (n - 1) / (m - 1) if m > 1 else np.zeros(m)
        elif ctm == "tf_half_pixel_for_nn":
            xo = (i + 0.5) / s
        else:
            xo = i / s
        try:
            src = _nearest(xo, nmode)
        except ValueError:
            raise imp.unsupported(node, f"nearest_mode {nmode!r}") from None
        index.append((ax, np.clip(src, 0, n - 1).astype(np.int64)))
        out_full[ax] = m
    if imp.lead and out_full[0] != 1:
        raise imp.batch_err(node, "a resize of the batch axis")
    _check(imp, node, math.prod(out_full))

    def fn(p):
        for ax, idx in index:
            p = np.take(p, idx, axis=ax)
        return p
    return _apply(imp, node, x, fn)
