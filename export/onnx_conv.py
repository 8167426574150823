"""ONNX convolution and pooling, both directions (called by export.onnx_import / onnx_export).

Import (``translate``): Conv, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool and
QLinearConv on a runtime tensor of per-sample rank 2 (C, L) or 3 (C, H, W):
- attributes: strides, dilations, pads [begins..., ends...], auto_pad
  (NOTSET, VALID, SAME_UPPER, SAME_LOWER), group (Conv), kernel_shape (checked against W for
  Conv), count_include_pad (AveragePool), ceil_mode (an extra window at the end is an extra end
  pad; refused where it would change the divisor of a count_include_pad average);
- Conv weights W (O, C/group, *kernel) and bias B are constants; a 1-D kernel is stored as kh = 1;
- every pooling window must reach an input element;
- MaxPool's Indices output must be unused; QLinearConv needs 8-bit weights whose values minus
  zero point fit int8 (int8 with zero point 0, uint8 with 128), per tensor or per output channel;
- ConvInteger (8-bit x with a per-tensor zero point, constant 8-bit weights with a per-tensor or
  per-output-channel zero point) becomes DEQUANTIZE (scale 1) + CONV with float weights w - w_zp:
  exact integer sums in float32, refused when a sum could reach 2^24 (then Cast + Mul + Add fold
  into the CONV like any per-channel AFFINE; with int8-range weights and a positive Mul scale s,
  a following QuantizeLinear makes it QCONV with x_scale 1 and w_scale s).
Fusion (``pair_rule`` / ``quant_rule``, run by export.onnx_ir.fuse): CONV + activation,
CONV + a per-channel AFFINE (BatchNormalization, Mul/Add by per-channel constants) folded into W
and b; DequantizeLinear -> Conv (weights from DequantizeLinear of int8) -> [Relu | Clip] ->
QuantizeLinear becomes QCONV; DQ -> MaxPool -> Q with one scale and zero point becomes
QMAXPOOL; DQ -> GlobalAveragePool -> Q becomes QAVGPOOL (a windowed AveragePool stays a float
AVGPOOL between DEQUANTIZE and QUANTIZE: the float mean is the graph's definition).

Export (``export_layer``): CONV = Conv (+ activation node), MAXPOOL = MaxPool, AVGPOOL =
AveragePool, GLOBAL_AVGPOOL = GlobalAveragePool (+ Reshape to the layer's out_shape); int8 in
QDQ form: QCONV = DequantizeLinear -> Conv(DQ(W int8, axis 0), DQ(b int32)) -> [Relu | Clip] ->
QuantizeLinear; QMAXPOOL = DQ -> MaxPool -> Q (same scale); QAVGPOOL = DQ -> AveragePool -> Q.
"""

from __future__ import annotations


import numpy as np

from rtinfer import quant
from rtinfer.ops import MAX_WINDOW_WORK, Act, Op
from rtinfer.reference_conv import geometry_attrs, make_geometry, min_pool_count, window_out_shape

from .onnx_ir import INT32, UINT8, Dyn, Proto, qclamp, window_attrs

IMPORT_OPS = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "QLinearConv", "ConvInteger")

# float32 holds every integer of magnitude <= 2^24 exactly: ConvInteger's integer sums are
# computed in float32 only when every partial sum stays below this bound.
_EXACT_INT_F32 = 2 ** 24



# ------------------------------------------------------------------------------ import
def _window_geometry(imp, node, x, kernel, a, is_pool: bool) -> dict:
    """ONNX window attributes on a runtime tensor (C, *spatial) -> rtinfer geometry attrs."""
    spatial = tuple(x.shape[1:])
    rank = len(spatial)
    if rank not in (1, 2):
        raise imp.unsupported(node, f"a {rank}-D window (input (N, *{x.shape})); rtinfer has 1-D, 2-D and 3-D "
                                     f"convolution and pooling")
    kernel = tuple(int(v) for v in kernel)
    try:
        strides, dilations, begins, ends = window_attrs(spatial, kernel, a)
    except ValueError as exc:
        raise imp.err(node, str(exc)) from None
    if int(a.get("ceil_mode", 0)):
        for k_ in range(rank):
            n, k, s, d = spatial[k_], kernel[k_], strides[k_], dilations[k_]
            span = n + begins[k_] + ends[k_] - ((k - 1) * d + 1)
            out = -(-span // s) + 1
            if (out - 1) * s >= n + begins[k_]:  # the last window must start inside input or left pad
                out -= 1
            extra = (out - 1) * s + (k - 1) * d + 1 - (n + begins[k_] + ends[k_])
            if extra > 0:
                if node.op_type == "AveragePool" and int(a.get("count_include_pad", 0)):
                    raise imp.unsupported(node, "ceil_mode=1 with count_include_pad=1 (the extra window's "
                                                 "divisor excludes the ceil extension)")
                ends[k_] += extra
    if rank == 1:
        attrs = geometry_attrs((1, kernel[0]), (1, strides[0]), (1, dilations[0]), ((0, 0), (begins[0], ends[0])))
    else:
        attrs = geometry_attrs(kernel, strides, dilations, ((begins[0], ends[0]), (begins[1], ends[1])))
    out = window_out_shape(tuple(x.shape), attrs)
    if min(out) < 1:
        raise imp.err(node, f"the window does not fit the input (N, *{x.shape})")
    work = int(np.prod(out)) * int(np.prod(kernel))
    if work > MAX_WINDOW_WORK:  # before anything is sized from the window
        raise imp.unsupported(node, f"{int(np.prod(out))} outputs x a {int(np.prod(kernel))}-element window is "
                                    f"{work} window reads per sample, above the limit {MAX_WINDOW_WORK}")
    if is_pool and min_pool_count(make_geometry(tuple(x.shape), attrs)) < 1:
        raise imp.unsupported(node, f"pads {begins + ends} leave a window of padding only (kernel {list(kernel)}, "
                                     f"dilations {list(dilations)})")
    return attrs


def _conv_weight_prov(imp, name, w_shape):
    """(Wq int8 (O, Cg, kh, kw), w_scale (O,)) if W came from DequantizeLinear of 8-bit weights
    (per tensor or per output channel, values minus zero point in int8); else None."""
    p = imp.prov.get(name)
    if p is None:
        return None
    _, q, scale, zp, axis = p
    o = w_shape[0]
    if q.dtype not in (np.int8, np.uint8) or q.ndim not in (3, 4):
        return None
    scale = np.asarray(scale, np.float32).reshape(-1)
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):  # keep the float CONV
        return None
    if scale.size == 1:
        w_scale = np.full(o, scale[0], np.float32)
    elif scale.size == o and axis % q.ndim == 0:
        w_scale = scale
    else:
        return None
    zp = np.asarray(zp, np.int32).reshape(-1)
    if zp.size not in (1, o):
        return None
    w = q.astype(np.int32) - zp.reshape((-1,) + (1,) * (q.ndim - 1))
    if w.min() < -128 or w.max() > 127:
        return None
    return w.reshape(w_shape).astype(np.int8), w_scale


def translate(imp, node, x, k):
    """One conv/pool node on the runtime tensor x (an onnx_import.Dyn); returns its output."""
    op = node.op_type
    a = imp.attrs(node)
    if k != 0:
        raise imp.unsupported(node, "the runtime tensor must be the first input")
    if len(x.shape) < 2:
        raise imp.err(node, f"needs a (N, C, *spatial) input, got (N, *{x.shape})")
    if op == "QLinearConv":
        return _qlinearconv(imp, node, x, a)
    if op == "ConvInteger":
        return _convinteger(imp, node, x, a)
    if not (op == "MaxPool" and x.kind == "q8"):  # MaxPool on int8/uint8 codes is exact: QMAXPOOL
        imp.need_float(node, x)
    c = x.shape[0]
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        out_shape = (c,) + (1,) * (len(x.shape) - 1)
        if op == "GlobalAveragePool":
            imp.emit(node, Op.GLOBAL_AVGPOOL, x, out_shape)
        else:
            attrs = _window_geometry(imp, node, x, x.shape[1:], {}, True)
            imp.emit(node, Op.MAXPOOL, x, out_shape, attrs=attrs)
        return Dyn(out_shape)
    if op in ("MaxPool", "AveragePool"):
        if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
            used = any(node.output[1] in n.input for n in imp.graph.node) or \
                any(o.name == node.output[1] for o in imp.graph.output)
            if used:
                raise imp.unsupported(node, "its Indices output is used")
        if "kernel_shape" not in a:
            raise imp.err(node, "missing attribute kernel_shape")
        attrs = _window_geometry(imp, node, x, a["kernel_shape"], a, True)
        out_shape = window_out_shape(tuple(x.shape), attrs)
        if op == "AveragePool":
            attrs["count_include_pad"] = int(a.get("count_include_pad", 0))
            imp.emit(node, Op.AVGPOOL, x, out_shape, attrs=attrs)
        elif x.kind == "q8":  # scale and zero point pass through (informational here)
            imp.emit(node, Op.QMAXPOOL, x, out_shape, attrs=dict(attrs, x_scale=1.0, x_zp=0))
            return {node.output[0]: Dyn(out_shape, "q8", x.onnx_type)}
        else:
            imp.emit(node, Op.MAXPOOL, x, out_shape, attrs=attrs)
        return {node.output[0]: Dyn(out_shape)}
    # Conv
    W = np.asarray(imp.const(node, 1))
    if W.ndim != len(x.shape) + 1:
        raise imp.err(node, f"weights of shape {W.shape} do not match input (N, *{x.shape})")
    group = int(a.get("group", 1))
    if group < 1 or c % group or W.shape[0] % group or W.shape[1] != c // group:
        raise imp.err(node, f"weights {W.shape} with group={group} do not fit {c} input channels")
    kernel = W.shape[2:]
    if "kernel_shape" in a and tuple(int(v) for v in a["kernel_shape"]) != tuple(kernel):
        raise imp.err(node, f"kernel_shape {list(a['kernel_shape'])} differs from the weights' {list(kernel)}")
    attrs = _window_geometry(imp, node, x, kernel, a, False)
    attrs["group"] = group
    o = W.shape[0]
    w4 = (o, c // group, attrs["kernel_h"], attrs["kernel_w"])
    B = imp.const(node, 2)
    b = np.zeros(o, np.float32) if B is None else np.asarray(B, np.float32).reshape(-1)
    if b.size != o:
        raise imp.err(node, f"bias of shape {np.asarray(B).shape} does not match {o} output channels")
    prov = {}
    wp = _conv_weight_prov(imp, node.input[1], w4)
    if wp is not None:
        prov["W"] = wp
    if B is not None:
        bp = imp.bias_prov(node.input[2], o)
        if bp is not None:
            prov["b"] = bp
    out_shape = window_out_shape(tuple(x.shape), attrs, o)
    imp.emit(node, Op.CONV, x, out_shape, tensors={"W": W.astype(np.float32).reshape(w4), "b": b},
              attrs=attrs, prov=prov)
    return Dyn(out_shape)


def _qlinearconv(imp, node, x, a):
    if x.kind != "q8":
        raise imp.unsupported(node, "the runtime tensor must be the quantized input x")
    x_scale, x_zp, _ = imp.qparams(node, 1, 2, x.onnx_type)
    w = np.asarray(imp.const(node, 3))
    c = x.shape[0]
    if w.ndim != len(x.shape) + 1 or w.dtype not in (np.int8, np.uint8):
        raise imp.unsupported(node, f"weights of shape {w.shape} and dtype {w.dtype} (8-bit, rank {len(x.shape) + 1})")
    group = int(a.get("group", 1))
    o = w.shape[0]
    if group < 1 or c % group or o % group or w.shape[1] != c // group:
        raise imp.err(node, f"weights {w.shape} with group={group} do not fit {c} input channels")
    w_zp = imp.const(node, 5)
    zp = np.zeros(1, np.int32) if w_zp is None else np.asarray(w_zp).astype(np.int32).reshape(-1)
    if zp.size not in (1, o):
        raise imp.unsupported(node, f"weight zero point of shape {np.asarray(w_zp).shape}")
    wq = w.astype(np.int32) - zp.reshape((-1,) + (1,) * (w.ndim - 1))
    if wq.min() < -128 or wq.max() > 127:
        raise imp.unsupported(node, "weights minus their zero point exceed the int8 range")
    w_scale = np.asarray(imp.const(node, 4), np.float32).reshape(-1)
    if w_scale.size not in (1, o):
        raise imp.unsupported(node, f"weight scale of shape {w_scale.shape}")
    if not (np.all(np.isfinite(w_scale)) and np.all(w_scale > 0)):
        raise imp.err(node, "weight scales must be positive and finite")
    y_zp_arr = imp.const(node, 7)
    y_scale, y_zp, yt = imp.qparams(node, 6, 7, UINT8 if y_zp_arr is None else None)
    attrs = _window_geometry(imp, node, x, w.shape[2:], a, False)
    attrs.update(group=group, x_scale=x_scale, x_zp=x_zp, y_scale=y_scale, y_zp=y_zp, qmin=quant.QMIN,
                 qmax=quant.QMAX)
    B = imp.const(node, 8)
    bq = np.zeros(o, np.int32) if B is None else np.asarray(B).astype(np.int32).reshape(-1)
    if bq.size != o:
        raise imp.err(node, f"bias of shape {np.asarray(B).shape} does not match {o} output channels")
    w4 = (o, c // group, attrs["kernel_h"], attrs["kernel_w"])
    out_shape = window_out_shape(tuple(x.shape), attrs, o)
    imp.emit(node, Op.QCONV, x, out_shape,
              tensors={"W": wq.reshape(w4).astype(np.int8), "b": bq,
                       "w_scale": np.broadcast_to(w_scale, (o,)).astype(np.float32)}, attrs=attrs)
    return Dyn(out_shape, "q8", yt)


def _convinteger(imp, node, x, a):
    """ConvInteger(x_q, w, x_zp, w_zp) on a quantized runtime tensor -> DEQUANTIZE (scale 1, x_zp)
    + CONV with float32 weights w - w_zp and a zero bias. The output holds the exact int32 sums
    as integer-valued floats (kind "int"; a following Cast(float) + Mul(scale) [+ Add] folds
    into the CONV). Exact because every product and partial sum is an integer below 2^24 in
    magnitude, checked per output channel as sum |w - w_zp| * max |x - x_zp|; larger weights are
    refused. Padding reads x_zp (real 0), as in ONNX's reference and onnxruntime. x from
    DynamicQuantizeLinear (kind "dq8", its y - y_zero_point as floats) needs no DEQUANTIZE."""
    if x.kind not in ("q8", "dq8"):
        raise imp.unsupported(node, "the runtime tensor must be the quantized input x (int8/uint8)")
    dynamic = x.kind == "dq8"  # DynamicQuantizeLinear's y - y_zero_point as floats (|q| <= 255)
    x_zp_arr = None if dynamic else imp.const(node, 2)
    if x_zp_arr is not None and np.asarray(x_zp_arr).size != 1:
        raise imp.unsupported(node, f"x zero point of shape {np.asarray(x_zp_arr).shape} (only per tensor)")
    x_type = np.uint8 if x.onnx_type == UINT8 else np.int8
    if x_zp_arr is not None and np.asarray(x_zp_arr).dtype != x_type:
        raise imp.err(node, f"x zero point of dtype {np.asarray(x_zp_arr).dtype} differs from the input's "
                             f"{np.dtype(x_type)}")
    x_zp = 0 if x_zp_arr is None else int(np.asarray(x_zp_arr).reshape(-1)[0])
    if x.onnx_type == UINT8:
        x_zp -= 128  # internal int8 codes are q - 128
    w = np.asarray(imp.const(node, 1))
    c = x.shape[0]
    if w.ndim != len(x.shape) + 1 or w.dtype not in (np.int8, np.uint8):
        raise imp.unsupported(node, f"weights of shape {w.shape} and dtype {w.dtype} (8-bit, rank {len(x.shape) + 1})")
    group = int(a.get("group", 1))
    o = w.shape[0]
    if group < 1 or c % group or o % group or w.shape[1] != c // group:
        raise imp.err(node, f"weights {w.shape} with group={group} do not fit {c} input channels")
    if "kernel_shape" in a and tuple(int(v) for v in a["kernel_shape"]) != tuple(w.shape[2:]):
        raise imp.err(node, f"kernel_shape {list(a['kernel_shape'])} differs from the weights' {list(w.shape[2:])}")
    w_zp_arr = imp.const(node, 3)
    w_zp = np.zeros(1, np.int64) if w_zp_arr is None else np.asarray(w_zp_arr).astype(np.int64).reshape(-1)
    if w_zp.size not in (1, o):
        raise imp.unsupported(node, f"weight zero point of shape {np.asarray(w_zp_arr).shape} "
                                     f"(per tensor or per output channel)")
    wi = w.astype(np.int64) - w_zp.reshape((-1,) + (1,) * (w.ndim - 1))  # (O, Cg, *kernel)
    x_span = 255 if dynamic else max(quant.QMAX - x_zp, x_zp - quant.QMIN)  # max |x - x_zp| over the codes
    bound = int(np.abs(wi).reshape(o, -1).sum(axis=1).max()) * x_span
    if bound >= _EXACT_INT_F32:
        raise imp.unsupported(node, f"its integer sums reach up to {bound} in magnitude (sum |w - w_zp| = "
                                     f"{bound // x_span} per output channel times max |x - x_zp| = {x_span}); "
                                     f"float32 holds them exactly only below 2^24 = {_EXACT_INT_F32}")
    attrs = _window_geometry(imp, node, x, w.shape[2:], a, False)
    attrs["group"] = group
    w4 = (o, c // group, attrs["kernel_h"], attrs["kernel_w"])
    out_shape = window_out_shape(tuple(x.shape), attrs, o)
    # "W_int": the integer weights when they fit int8; a later Mul by a positive per-channel
    # scale s makes them int8 weights at w_scale = s (see fuse_float), so DEQUANTIZE -> CONV ->
    # QuantizeLinear can become QCONV (x_scale 1, as the DEQUANTIZE says).
    prov = {}
    if wi.min() >= quant.QMIN and wi.max() <= quant.QMAX and not dynamic:
        prov["W_int"] = wi.reshape(w4).astype(np.int8)
    if not dynamic:
        imp.emit(node, Op.DEQUANTIZE, x, x.shape, attrs={"x_scale": 1.0, "x_zp": x_zp})
    imp.emit(node, Op.CONV, Dyn(x.shape), out_shape,
              tensors={"W": wi.astype(np.float32).reshape(w4), "b": np.zeros(o, np.float32)}, attrs=attrs,
              prov=prov)
    return Dyn(out_shape, "int", INT32)


def _per_channel(v: np.ndarray, shape) -> np.ndarray | None:
    """(C,) if v (sample-shaped) is constant over the spatial positions of each channel, else None."""
    v = np.asarray(v).reshape(shape[0], -1)
    if np.all(v == v[:, :1]):
        return v[:, 0]
    return None


def pair_rule(a, b):
    """CONV a with its only reader b (export.onnx_ir.fuse): an activation, or a per-channel
    AFFINE folded into W and b. "a" when fused, else None."""
    if a.op != Op.CONV or a.act != Act.IDENTITY:
        return None
    if b.op == Op.ACT:
        a.act = b.act
        a.attrs.update({k: v for k, v in b.attrs.items() if k in ("alpha", "beta")})
        return "a"
    if b.op == Op.AFFINE:
        if int(np.prod(b.tensors["s"].shape)) != int(np.prod(a.out_shape)):
            return None
        s = _per_channel(b.tensors["s"], a.out_shape)
        t = _per_channel(b.tensors["t"], a.out_shape)
        if s is None or t is None:
            return None
        W = a.tensors["W"].astype(np.float64)
        if not np.all(s == 1):
            a.prov.pop("W", None)
            w_int = a.prov.pop("W_int", None)  # ConvInteger's weights (see _convinteger)
            if w_int is not None and np.all(np.isfinite(s)) and np.all(s > 0):
                a.prov["W"] = (w_int, s.astype(np.float32))
        a.prov.pop("b", None)
        a.tensors["W"] = (W * s.astype(np.float64)[:, None, None, None]).astype(np.float32)
        a.tensors["b"] = (a.tensors["b"].astype(np.float64) * s + t).astype(np.float32)
        a.act = b.act
        a.attrs.update({k: v for k, v in b.attrs.items() if k in ("alpha", "beta")})
        return "a"
    return None


def quant_rule(dqs, mid, q, int_mean: bool = False):
    """DEQUANTIZE -> CONV / MAXPOOL / AVGPOOL / GLOBAL_AVGPOOL -> QUANTIZE as one int8 layer
    (export.onnx_ir.fuse), or None."""
    if len(dqs) != 1:
        return None
    dq = dqs[0]
    xs, xzp = dq.attrs["x_scale"], int(dq.attrs["x_zp"])
    ys, yzp = q.attrs["y_scale"], int(q.attrs["y_zp"])
    io = {"x_scale": xs, "x_zp": xzp, "y_scale": ys, "y_zp": yzp}
    if mid.op == Op.CONV and "W" in mid.prov and mid.act in (Act.IDENTITY, Act.RELU, Act.CLIP):
        Wq, w_scale = mid.prov["W"]
        bq = None
        if "b" in mid.prov:
            cand, b_scale = mid.prov["b"]
            ref = (np.float64(np.float32(xs)) * w_scale.astype(np.float64)).astype(np.float32)
            if np.allclose(b_scale, ref, rtol=1e-6, atol=0):
                bq = cand.astype(np.int32)
        if bq is None:
            bq = quant.quantize_bias(mid.tensors["b"], xs, w_scale)
        qmin, qmax = qclamp(mid.act, mid.attrs, ys, yzp)
        geo = {k: v for k, v in mid.attrs.items() if k not in ("alpha", "beta")}
        return Proto(Op.QCONV, mid.in_shape, mid.out_shape, name=mid.name,
                     tensors={"W": Wq.astype(np.int8), "b": bq, "w_scale": w_scale.astype(np.float32)},
                     attrs=dict(geo, **io, qmin=qmin, qmax=qmax))
    if mid.op == Op.MAXPOOL and (float(np.float32(xs)), xzp) == (float(np.float32(ys)), yzp):
        return Proto(Op.QMAXPOOL, mid.in_shape, mid.out_shape, name=mid.name, attrs=dict(mid.attrs, x_scale=xs, x_zp=xzp))
    # DQ -> AveragePool -> Q with a window stays DEQUANTIZE -> AVGPOOL -> QUANTIZE: the float mean
    # of dequantized values is the graph's definition and what onnxruntime computes (QAVGPOOL's
    # integer mean is 1 step away on ~0.4% of LeNet-5's pooled codes). Files rtinfer wrote
    # (int_mean) hold QAVGPOOL layers in that form and get them back; a global mean stays QAVGPOOL,
    # whose results match onnxruntime's on the DS-CNN.
    if mid.op == Op.AVGPOOL and int_mean:
        attrs = dict(mid.attrs)
    elif mid.op == Op.GLOBAL_AVGPOOL:
        s = mid.in_shape
        attrs = dict(geometry_attrs((1, s[1]) if len(s) == 2 else s[1:]), count_include_pad=0)
        if int(np.prod(window_out_shape(s, attrs))) != int(np.prod(mid.out_shape)):
            return None
    else:
        return None
    return Proto(Op.QAVGPOOL, mid.in_shape, window_out_shape(mid.in_shape, attrs), name=mid.name,
                 attrs=dict(attrs, **io))


# ------------------------------------------------------------------------------ export
def _onnx_window_attrs(layer) -> dict:
    a = layer.attrs
    one_d = len(layer.in_shape) == 2
    g = {k: int(a[k]) for k in ("kernel_h", "kernel_w", "stride_h", "stride_w", "dilation_h", "dilation_w",
                                 "pad_top", "pad_left", "pad_bottom", "pad_right")}
    if one_d:
        return {"kernel_shape": [g["kernel_w"]], "strides": [g["stride_w"]], "dilations": [g["dilation_w"]],
                "pads": [g["pad_left"], g["pad_right"]]}
    return {"kernel_shape": [g["kernel_h"], g["kernel_w"]], "strides": [g["stride_h"], g["stride_w"]],
            "dilations": [g["dilation_h"], g["dilation_w"]],
            "pads": [g["pad_top"], g["pad_left"], g["pad_bottom"], g["pad_right"]]}


def _onnx_weights(layer, W: np.ndarray) -> np.ndarray:
    return W[:, :, 0, :] if len(layer.in_shape) == 2 else W


def _scalar(wr, name: str, value, dtype) -> str:
    """A rank-0 initializer (onnxruntime's QLinearAveragePool fusion rejects shape-(1,) scales)."""
    from onnx import numpy_helper
    wr.inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
    return name


def export_layer(wr, layer, x: str, p: str):
    """Emit one conv/pool layer (``wr`` an onnx_export._Writer); x has shape (N, *layer.in_shape).
    Returns (output tensor name, its per-sample shape)."""
    f = wr.frozen
    op = layer.op
    a = layer.attrs
    if op == Op.GLOBAL_AVGPOOL:
        y = wr.node("GlobalAveragePool", [x], [f"{p}.out"], p)
        shape = (layer.in_shape[0],) + (1,) * (len(layer.in_shape) - 1)
        return wr.reshape(y, shape, layer.out_shape, f"{p}.flatten"), layer.out_shape
    win = _onnx_window_attrs(layer)
    pool_attrs = dict(win) if any(d != 1 for d in win["dilations"]) else {k: v for k, v in win.items() if k != "dilations"}
    if op == Op.CONV:
        W = wr.init(f"{p}.W", _onnx_weights(layer, np.asarray(f.tensor(layer, "W"), np.float32)))
        b = wr.init(f"{p}.b", np.asarray(f.tensor(layer, "b"), np.float32))
        y = wr.node("Conv", [x, W, b], [f"{p}.out"], p, group=int(a.get("group", 1)), **win)
        alpha, beta = layer.act_params()
        return wr.activation(y, layer.act, alpha, beta, p), layer.out_shape
    if op == Op.MAXPOOL:
        return wr.node("MaxPool", [x], [f"{p}.out"], p, **pool_attrs), layer.out_shape
    if op == Op.AVGPOOL:
        return wr.node("AveragePool", [x], [f"{p}.out"], p, count_include_pad=int(a.get("count_include_pad", 0)),
                       **pool_attrs), layer.out_shape
    # int8 ops in QDQ form
    xs, xzp = float(a["x_scale"]), int(a["x_zp"])
    ys, yzp = float(a.get("y_scale", xs)), int(a.get("y_zp", xzp))
    xsc = _scalar(wr, f"{p}.x_scale", xs, np.float32)
    xzpn = _scalar(wr, f"{p}.x_zero_point", xzp, np.int8)
    xf = wr.node("DequantizeLinear", [x, xsc, xzpn], [f"{p}.x"], f"{p}.dequantize_x")
    if op == Op.QMAXPOOL:
        y = wr.node("MaxPool", [xf], [f"{p}.pool"], p, **pool_attrs)
    elif op == Op.QAVGPOOL:
        y = wr.node("AveragePool", [xf], [f"{p}.pool"], p, count_include_pad=int(a.get("count_include_pad", 0)),
                    **pool_attrs)
    else:  # QCONV
        w_scale = np.asarray(f.tensor(layer, "w_scale"), np.float32)
        o = w_scale.size
        Wq = _onnx_weights(layer, np.asarray(f.tensor(layer, "W"), np.int8))
        if wr.weight_dtype == "uint8":
            Wn = wr.init(f"{p}.W", (Wq.astype(np.int16) + 128).astype(np.uint8))
            wz = wr.init(f"{p}.w_zero_point", np.full(o, 128, np.uint8))
        else:
            Wn = wr.init(f"{p}.W", Wq)
            wz = wr.init(f"{p}.w_zero_point", np.zeros(o, np.int8))
        ws = wr.init(f"{p}.w_scale", w_scale)
        Wf = wr.node("DequantizeLinear", [Wn, ws, wz], [f"{p}.W_float"], f"{p}.dequantize_W", axis=0)
        bq = wr.init(f"{p}.b", np.asarray(f.tensor(layer, "b"), np.int32))
        bs = wr.init(f"{p}.b_scale", (np.float64(np.float32(xs)) * w_scale.astype(np.float64)).astype(np.float32))
        bf = wr.node("DequantizeLinear", [bq, bs], [f"{p}.b_float"], f"{p}.dequantize_b", axis=0)
        y = wr.node("Conv", [xf, Wf, bf], [f"{p}.acc"], p, group=int(a.get("group", 1)), **win)
        qmin, qmax = int(a.get("qmin", quant.QMIN)), int(a.get("qmax", quant.QMAX))
        if qmin == yzp and qmax == quant.QMAX and yzp > quant.QMIN:
            y = wr.node("Relu", [y], [f"{p}.relu"], f"{p}.relu")
        elif qmin > quant.QMIN or qmax < quant.QMAX:
            lo = wr.init(f"{p}.clip_min", np.array((qmin - yzp) * ys, np.float32)) if qmin > quant.QMIN else ""
            hi = wr.init(f"{p}.clip_max", np.array((qmax - yzp) * ys, np.float32)) if qmax < quant.QMAX else ""
            y = wr.node("Clip", [y, lo, hi], [f"{p}.clip"], f"{p}.clip")
    ysc = _scalar(wr, f"{p}.y_scale", ys, np.float32)
    yzpn = _scalar(wr, f"{p}.y_zero_point", yzp, np.int8)
    return wr.node("QuantizeLinear", [y, ysc, yzpn], [f"{p}.out"], f"{p}.quantize_y"), layer.out_shape

