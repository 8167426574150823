"""Golden NumPy semantics of the convolution and pooling ops (CONV, MAXPOOL, AVGPOOL,
GLOBAL_AVGPOOL, QCONV, QMAXPOOL, QAVGPOOL); the contracts are in ``rtinfer.ops``.

Called by ``rtinfer.reference.run_layer``. Batches are flat: x (N, in_size) -> (N, out_size).
CONV accumulates in float64 and rounds once to float32 (the most accurate answer; compiled
kernels match it within fp32 tolerance); AVGPOOL sums in float32 in window order as the contract
says; int8 ops are exact integer arithmetic with ``rtinfer.quant``'s rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import quant
from .frozen import FrozenModel, Layer
from .ops import CONV_GEOMETRY_ATTRS, Op


class ConvSpecError(ValueError):
    """A convolution or pooling layer's shapes, attrs or tensors are inconsistent."""


@dataclass(frozen=True)
class Geometry:
    """One window op's geometry on the 2-D core (1-D input has h = 1)."""
    c: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pl: int
    pb: int
    pr: int
    oh: int
    ow: int

    def as_ints(self) -> tuple[int, ...]:
        return (self.c, self.h, self.w, self.kh, self.kw, self.sh, self.sw, self.dh, self.dw,
                self.pt, self.pl, self.pb, self.pr, self.oh, self.ow)


def out_len(n: int, k: int, s: int, d: int, pb: int, pe: int) -> int:
    return (n + pb + pe - d * (k - 1) - 1) // s + 1


def geometry(layer: Layer, out_channels: int | None = None) -> Geometry:
    """Read and check a window op's geometry attrs against its in_shape / out_shape.

    out_channels: O for convolutions (None: pools keep C). Raises ConvSpecError naming the problem."""
    where = f"{layer.op.name} {layer.name!r}"
    shape = layer.in_shape
    if len(shape) not in (2, 3):
        raise ConvSpecError(f"{where}: in_shape must be (C, L) or (C, H, W), got {shape}")
    c, h, w = (shape[0], 1, shape[1]) if len(shape) == 2 else shape
    vals = {}
    for key in CONV_GEOMETRY_ATTRS:
        if key not in layer.attrs:
            raise ConvSpecError(f"{where}: missing attr {key!r}")
        v = layer.attrs[key]
        if not math.isfinite(v) or v != int(v) or abs(v) > 2 ** 31:
            raise ConvSpecError(f"{where}: attr {key!r} must be an integer, got {v}")
        vals[key] = int(v)
    for key in ("kernel_h", "kernel_w", "stride_h", "stride_w", "dilation_h", "dilation_w"):
        if vals[key] < 1:
            raise ConvSpecError(f"{where}: attr {key!r} must be >= 1, got {vals[key]}")
    for key in ("pad_top", "pad_left", "pad_bottom", "pad_right"):
        if vals[key] < 0:
            raise ConvSpecError(f"{where}: attr {key!r} must be >= 0, got {vals[key]}")
    if len(shape) == 2 and (vals["kernel_h"], vals["stride_h"], vals["dilation_h"], vals["pad_top"],
                            vals["pad_bottom"]) != (1, 1, 1, 0, 0):
        raise ConvSpecError(f"{where}: 1-D input needs kernel_h = stride_h = dilation_h = 1 and no top/bottom pads")
    oh = out_len(h, vals["kernel_h"], vals["stride_h"], vals["dilation_h"], vals["pad_top"], vals["pad_bottom"])
    ow = out_len(w, vals["kernel_w"], vals["stride_w"], vals["dilation_w"], vals["pad_left"], vals["pad_right"])
    if oh < 1 or ow < 1:
        raise ConvSpecError(f"{where}: the window does not fit the padded input {shape}")
    o = c if out_channels is None else out_channels
    want = (o, ow) if len(shape) == 2 else (o, oh, ow)
    if layer.out_shape != want:
        raise ConvSpecError(f"{where}: out_shape {layer.out_shape} does not match the geometry; expected {want}")
    return Geometry(c, h, w, vals["kernel_h"], vals["kernel_w"], vals["stride_h"], vals["stride_w"],
                    vals["dilation_h"], vals["dilation_w"], vals["pad_top"], vals["pad_left"],
                    vals["pad_bottom"], vals["pad_right"], oh, ow)


def geometry_attrs(kernel, stride=(1, 1), dilation=(1, 1), pads=((0, 0), (0, 0))) -> dict:
    """Geometry attrs for a window layer from 2-D kernel (kh, kw), stride, dilation and
    pads ((top, bottom), (left, right)); 1-D layers pass kh = 1 and top/bottom (0, 0)."""
    (pt, pb), (pl, pr) = pads
    return {"kernel_h": int(kernel[0]), "kernel_w": int(kernel[1]), "stride_h": int(stride[0]),
            "stride_w": int(stride[1]), "dilation_h": int(dilation[0]), "dilation_w": int(dilation[1]),
            "pad_top": int(pt), "pad_left": int(pl), "pad_bottom": int(pb), "pad_right": int(pr)}


def window_out_shape(in_shape: tuple[int, ...], attrs: dict, out_channels: int | None = None) -> tuple[int, ...]:
    """Per-sample out_shape of a window op on in_shape (C, L) or (C, H, W) (see rtinfer.ops)."""
    c = in_shape[0] if out_channels is None else out_channels
    h, w = (1, in_shape[1]) if len(in_shape) == 2 else in_shape[1:]
    oh = out_len(h, attrs["kernel_h"], attrs["stride_h"], attrs["dilation_h"], attrs["pad_top"], attrs["pad_bottom"])
    ow = out_len(w, attrs["kernel_w"], attrs["stride_w"], attrs["dilation_w"], attrs["pad_left"], attrs["pad_right"])
    return (c, ow) if len(in_shape) == 2 else (c, oh, ow)


def make_geometry(in_shape: tuple[int, ...], attrs: dict) -> Geometry:
    """Geometry of a window op from its in_shape and geometry attrs (no checks; see ``geometry``)."""
    c, h, w = (in_shape[0], 1, in_shape[1]) if len(in_shape) == 2 else tuple(in_shape)
    oh = out_len(h, attrs["kernel_h"], attrs["stride_h"], attrs["dilation_h"], attrs["pad_top"], attrs["pad_bottom"])
    ow = out_len(w, attrs["kernel_w"], attrs["stride_w"], attrs["dilation_w"], attrs["pad_left"], attrs["pad_right"])
    return Geometry(c, h, w, attrs["kernel_h"], attrs["kernel_w"], attrs["stride_h"], attrs["stride_w"],
                    attrs["dilation_h"], attrs["dilation_w"], attrs["pad_top"], attrs["pad_left"],
                    attrs["pad_bottom"], attrs["pad_right"], oh, ow)


def _taps(i: np.ndarray, n_in: int, k: int, s: int, d: int, pad: int) -> np.ndarray:
    """Per output index i: how many of the window's taps p = i * s + t * d - pad (t < k) fall
    inside the input, as an interval count (no (outputs x taps) table)."""
    start = i * s - pad  # tap t is inside when 0 <= start + t * d <= n_in - 1
    lo = np.maximum(0, -(start // d))  # ceil(-start / d)
    hi = np.minimum(k - 1, (n_in - 1 - start) // d)
    return np.maximum(hi - lo + 1, 0)


def pool_counts(g: Geometry, count_include_pad: bool) -> np.ndarray:
    """(oh, ow) int64 divisors of an average pool."""
    if count_include_pad:
        return np.full((g.oh, g.ow), g.kh * g.kw, dtype=np.int64)
    rows = _taps(np.arange(g.oh, dtype=np.int64), g.h, g.kh, g.sh, g.dh, g.pt)
    cols = _taps(np.arange(g.ow, dtype=np.int64), g.w, g.kw, g.sw, g.dw, g.pl)
    return (rows[:, None] * cols[None, :]).astype(np.int64)


def min_pool_count(g: Geometry) -> int:
    """The smallest window count of an average / max pool without padding in the count (the
    product of the smallest row and column counts), in blocks of outputs: memory stays small
    whatever the geometry (validation must not allocate per output)."""
    def least(n_out, n_in, k, s, d, pad):
        block = 1 << 16
        return min(int(_taps(np.arange(a, min(a + block, n_out), dtype=np.int64), n_in, k, s, d, pad).min())
                   for a in range(0, n_out, block)) if n_out > 0 else 0
    return least(g.oh, g.h, g.kh, g.sh, g.dh, g.pt) * least(g.ow, g.w, g.kw, g.sw, g.dw, g.pl)


def conv_sum(cols: np.ndarray, W: np.ndarray, g: Geometry, group: int) -> np.ndarray:
    """sum_{c, p, q} W[o, c, p, q] * window: cols (N, C, kh, kw, oh, ow), W (O, Cg, kh, kw) ->
    (N, O, oh*ow) in the inputs' dtype (exact for int64, float64 for a float simulation)."""
    return _conv_acc(cols, W, g, W.shape[0], group)


def check_pool_pads(layer: Layer, g: Geometry) -> None:
    """Every pooling window must hold at least one input element (a max or mean of padding only
    is undefined)."""
    if min_pool_count(g) < 1:
        raise ConvSpecError(f"{layer.op.name} {layer.name!r}: some window holds padding only; each window must "
                            f"reach an input element (pads t{g.pt} l{g.pl} b{g.pb} r{g.pr} are too large for "
                            f"kernel ({g.kh}, {g.kw}) dilation ({g.dh}, {g.dw}))")


def conv_channels(frozen: FrozenModel, layer: Layer) -> tuple[int, int]:
    """(O, group) of a CONV/QCONV layer, after checking W (O, C/group, kh, kw) and b (O,)."""
    where = f"{layer.op.name} {layer.name!r}"
    if "W" not in layer.tensors or "b" not in layer.tensors:
        raise ConvSpecError(f"{where}: needs tensors W and b")
    wshape, bshape = layer.tensors["W"].shape, layer.tensors["b"].shape
    group = layer.attrs.get("group", 1)
    if not math.isfinite(group) or group != int(group) or int(group) < 1:
        raise ConvSpecError(f"{where}: attr 'group' must be a positive integer, got {group}")
    group = int(group)
    c = layer.in_shape[0]
    if len(wshape) != 4 or c % group or wshape[0] % group or wshape[1] != c // group:
        raise ConvSpecError(f"{where}: W {wshape} must be (O, C/group, kernel_h, kernel_w) with C = {c}, group = {group}")
    if bshape != (wshape[0],):
        raise ConvSpecError(f"{where}: b {bshape} must be ({wshape[0]},)")
    if layer.op == Op.QCONV and layer.tensors.get("w_scale") is None:
        raise ConvSpecError(f"{where}: needs tensor w_scale (O,)")
    kh, kw = int(layer.attrs.get("kernel_h", 0)), int(layer.attrs.get("kernel_w", 0))
    if wshape[2:] != (kh, kw):
        raise ConvSpecError(f"{where}: W kernel {wshape[2:]} does not match attrs kernel ({kh}, {kw})")
    return wshape[0], group


# ------------------------------------------------------------------------------ windows
def windows(x: np.ndarray, g: Geometry, fill) -> np.ndarray:
    """x (N, C*H*W) flat -> (N, C, kh, kw, oh, ow) window elements, padding = fill."""
    n = x.shape[0]
    x4 = x.reshape(n, g.c, g.h, g.w)
    xp = np.full((n, g.c, g.h + g.pt + g.pb, g.w + g.pl + g.pr), fill, dtype=x.dtype)
    xp[:, :, g.pt:g.pt + g.h, g.pl:g.pl + g.w] = x4
    out = np.empty((n, g.c, g.kh, g.kw, g.oh, g.ow), dtype=x.dtype)
    for p in range(g.kh):
        for q in range(g.kw):
            r0, c0 = p * g.dh, q * g.dw
            out[:, :, p, q] = xp[:, :, r0:r0 + g.sh * (g.oh - 1) + 1:g.sh, c0:c0 + g.sw * (g.ow - 1) + 1:g.sw]
    return out


def _conv_acc(cols: np.ndarray, Wt: np.ndarray, g: Geometry, out_channels: int, group: int) -> np.ndarray:
    """cols (N, C, kh, kw, oh, ow), W (O, Cg, kh, kw) -> (N, O, oh*ow) sums (dtype of the inputs)."""
    n = cols.shape[0]
    colsg = cols.reshape(n, group, -1, g.oh * g.ow)  # (N, G, Cg*kh*kw, P)
    wg = Wt.reshape(group, out_channels // group, -1)  # (G, Og, Cg*kh*kw)
    return np.matmul(wg, colsg).reshape(n, out_channels, g.oh * g.ow)


def conv(x: np.ndarray, W: np.ndarray, b: np.ndarray, layer: Layer, g: Geometry, group: int) -> np.ndarray:
    """CONV without its activation: (N, in_size) -> (N, out_size) float32."""
    from .activations import activation
    o = W.shape[0]
    cols = windows(x.astype(np.float64), g, 0.0)
    y = _conv_acc(cols, W.astype(np.float64), g, o, group) + b.astype(np.float64)[None, :, None]
    alpha, beta = layer.act_params()
    return activation(y.astype(np.float32).reshape(x.shape[0], -1), layer.act, alpha, beta)


def maxpool(x: np.ndarray, g: Geometry) -> np.ndarray:
    """MAXPOOL (float32) or QMAXPOOL (int8): padding never wins."""
    fill = -np.inf if x.dtype == np.float32 else np.iinfo(np.int8).min
    cols = windows(x, g, fill)  # int8: a fill of -128 never exceeds an input element
    return cols.max(axis=(2, 3)).reshape(x.shape[0], -1)


def avgpool(x: np.ndarray, g: Geometry, count_include_pad: bool) -> np.ndarray:
    """AVGPOOL: float32 sum in window order (p, then q) / float32(count)."""
    cols = windows(x.astype(np.float32), g, np.float32(0.0))
    acc = np.zeros((x.shape[0], g.c, g.oh, g.ow), dtype=np.float32)
    for p in range(g.kh):
        for q in range(g.kw):
            acc += cols[:, :, p, q]
    count = pool_counts(g, count_include_pad)
    return (acc / count.astype(np.float32)).reshape(x.shape[0], -1)


def global_avgpool(x: np.ndarray, layer: Layer) -> np.ndarray:
    """GLOBAL_AVGPOOL: float32 sum over spatial positions in order / float32(H*W)."""
    c = layer.in_shape[0]
    v = x.astype(np.float32).reshape(x.shape[0], c, -1)
    acc = np.zeros((x.shape[0], c), dtype=np.float32)
    for k in range(v.shape[2]):
        acc += v[:, :, k]
    return acc / np.float32(v.shape[2])


def qconv(x_q: np.ndarray, Wq: np.ndarray, bq: np.ndarray, w_scale: np.ndarray, layer: Layer, g: Geometry,
          group: int) -> np.ndarray:
    """QCONV: exact int accumulation, QDENSE requantization per output channel."""
    a = layer.attrs
    x_zp = int(a["x_zp"])
    cols = windows(x_q.astype(np.int64) - x_zp, g, 0)  # padding reads x_zp: contributes 0
    acc = _conv_acc(cols, Wq.astype(np.int64), g, Wq.shape[0], group) + bq.astype(np.int64)[None, :, None]
    if np.any(np.abs(acc) > np.iinfo(np.int32).max):
        raise OverflowError(f"int32 accumulator overflow in QCONV {layer.name!r}")
    M = quant.requant_multiplier(a["x_scale"], w_scale, a["y_scale"])
    y = quant.requantize(acc.astype(np.int32), M[None, :, None], int(a["y_zp"]),
                         int(a.get("qmin", quant.QMIN)), int(a.get("qmax", quant.QMAX)))
    return y.reshape(x_q.shape[0], -1)


def qavgpool(x_q: np.ndarray, layer: Layer, g: Geometry) -> np.ndarray:
    a = layer.attrs
    cols = windows(x_q.astype(np.int64) - int(a["x_zp"]), g, 0)
    acc = cols.sum(axis=(2, 3))  # (N, C, oh, ow), exact
    count = pool_counts(g, bool(int(a.get("count_include_pad", 0))))
    m = np.float32(np.float64(a["x_scale"]) / np.float64(a["y_scale"]))
    scaled = (acc.astype(np.float32) * m) / count.astype(np.float32)
    q = np.rint(scaled).astype(np.int64) + int(a["y_zp"])
    return np.clip(q, quant.QMIN, quant.QMAX).astype(np.int8).reshape(x_q.shape[0], -1)


def run_window_layer(frozen: FrozenModel, layer: Layer, x: np.ndarray) -> np.ndarray:
    """One conv/pool layer on a flat batch x (N, in_size) -> (N, out_size)."""
    op = layer.op
    if op == Op.GLOBAL_AVGPOOL:
        c = layer.in_shape[0] if layer.in_shape else 0
        if len(layer.in_shape) < 2 or layer.out_size != c:
            raise ConvSpecError(f"GLOBAL_AVGPOOL {layer.name!r}: in_shape {layer.in_shape} must be (C, *spatial) "
                                f"and out_shape hold C elements, got {layer.out_shape}")
        return global_avgpool(x, layer)
    if op in (Op.CONV, Op.QCONV):
        o, group = conv_channels(frozen, layer)
        g = geometry(layer, o)
        if op == Op.CONV:
            return conv(x, frozen.tensor(layer, "W"), frozen.tensor(layer, "b"), layer, g, group)
        return qconv(x, frozen.tensor(layer, "W"), frozen.tensor(layer, "b"), frozen.tensor(layer, "w_scale"),
                     layer, g, group)
    g = geometry(layer)
    check_pool_pads(layer, g)
    if op in (Op.MAXPOOL, Op.QMAXPOOL):
        return maxpool(x, g)
    if op == Op.AVGPOOL:
        return avgpool(x, g, bool(int(layer.attrs.get("count_include_pad", 0))))
    if op == Op.QAVGPOOL:
        return qavgpool(x, layer, g)
    raise ConvSpecError(f"not a convolution or pooling op: {op!r}")
