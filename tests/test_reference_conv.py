"""Golden semantics of the conv/pool ops (rtinfer.reference_conv) against naive per-element loops
written straight from the contracts in rtinfer.ops, plus MACs, spec errors and .rtm round trips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rtinfer import quant, reference
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Act, Op
from rtinfer.reference_conv import ConvSpecError, geometry_attrs, window_out_shape


# ------------------------------------------------------------------------------ builders
def conv_model(in_shape, W, b, attrs, act=Act.IDENTITY, op=Op.CONV, extra=None, w_scale=None):
    bb = BufferBuilder()
    tensors = {"W": bb.add(W), "b": bb.add(b)}
    if w_scale is not None:
        tensors["w_scale"] = bb.add(w_scale)
    attrs = dict(attrs, **(extra or {}))
    out = window_out_shape(in_shape, attrs, W.shape[0])
    layer = Layer(op, in_shape, out, act, tensors, attrs, name="c")
    if op == Op.QCONV:
        layers = (Layer(Op.QUANTIZE, in_shape, in_shape, attrs={"y_scale": attrs["x_scale"], "y_zp": attrs["x_zp"]}),
                  layer, Layer(Op.DEQUANTIZE, out, out, attrs={"x_scale": attrs["y_scale"], "x_zp": attrs["y_zp"]}))
    else:
        layers = (layer,)
    return FrozenModel(layers, bb.finish(), in_shape, out)


def pool_model(op, in_shape, attrs, q=None):
    out = (in_shape[0],) if op == Op.GLOBAL_AVGPOOL else window_out_shape(in_shape, attrs)
    layer = Layer(op, in_shape, out, attrs=dict(attrs, **(q or {})), name="p")
    layers = (layer,)
    if q is not None:
        layers = (Layer(Op.QUANTIZE, in_shape, in_shape, attrs={"y_scale": q["x_scale"], "y_zp": q["x_zp"]}), layer,
                  Layer(Op.DEQUANTIZE, out, out, attrs={"x_scale": q.get("y_scale", q["x_scale"]),
                                                        "x_zp": q.get("y_zp", q["x_zp"])}))
    return FrozenModel(layers, {}, in_shape, out)


def in_hw(in_shape):
    return (in_shape[0], 1, in_shape[1]) if len(in_shape) == 2 else in_shape


def input_element(x, c, r, s, a, h, w):
    """x[c, row, col] for window coordinates, or None for padding."""
    if 0 <= r < h and 0 <= s < w:
        return x[c, r, s]
    return None


# ------------------------------------------------------------------------------ naive loops
def naive_conv(x, W, b, a, group):
    """One sample x (C, H, W) float64 -> (O, oh, ow) float64, straight from the CONV contract."""
    c, h, w = x.shape
    o, cg, kh, kw = W.shape
    oh = (h + a["pad_top"] + a["pad_bottom"] - a["dilation_h"] * (kh - 1) - 1) // a["stride_h"] + 1
    ow = (w + a["pad_left"] + a["pad_right"] - a["dilation_w"] * (kw - 1) - 1) // a["stride_w"] + 1
    y = np.zeros((o, oh, ow))
    og = o // group
    for oc, i, j in itertools.product(range(o), range(oh), range(ow)):
        g = oc // og
        acc = float(b[oc])
        for ci, p, q in itertools.product(range(cg), range(kh), range(kw)):
            r = i * a["stride_h"] + p * a["dilation_h"] - a["pad_top"]
            s = j * a["stride_w"] + q * a["dilation_w"] - a["pad_left"]
            v = input_element(x, g * cg + ci, r, s, a, h, w)
            if v is not None:
                acc += float(W[oc, ci, p, q]) * float(v)
        y[oc, i, j] = acc
    return y


def naive_pool(x, a, mode, count_include_pad=False):
    c, h, w = x.shape
    kh, kw, dh, dw = a["kernel_h"], a["kernel_w"], a["dilation_h"], a["dilation_w"]
    oh = (h + a["pad_top"] + a["pad_bottom"] - dh * (kh - 1) - 1) // a["stride_h"] + 1
    ow = (w + a["pad_left"] + a["pad_right"] - dw * (kw - 1) - 1) // a["stride_w"] + 1
    y = np.zeros((c, oh, ow), dtype=np.float64)
    counts = np.zeros((oh, ow), dtype=np.int64)
    for ch, i, j in itertools.product(range(c), range(oh), range(ow)):
        vals = []
        for p, q in itertools.product(range(kh), range(kw)):
            v = input_element(x, ch, i * a["stride_h"] + p * dh - a["pad_top"], j * a["stride_w"] + q * dw - a["pad_left"],
                              a, h, w)
            if v is not None:
                vals.append(v)
        counts[i, j] = kh * kw if count_include_pad else len(vals)
        y[ch, i, j] = max(vals) if mode == "max" else sum(float(v) for v in vals)
    return y, counts


GEOMS_2D = [
    dict(kernel=(3, 3)),
    dict(kernel=(2, 3), stride=(2, 1), pads=((1, 0), (1, 1))),
    dict(kernel=(3, 2), dilation=(2, 1), pads=((2, 2), (0, 1))),
    dict(kernel=(1, 1), stride=(2, 2)),
]


@pytest.mark.parametrize("geom", GEOMS_2D)
@pytest.mark.parametrize("group", [1, 2, 4])
def test_conv2d_matches_naive_loops(geom, group):
    rng = np.random.default_rng(group)
    in_shape = (4, 6, 7)
    W = rng.normal(size=(8, 4 // group) + geom["kernel"]).astype(np.float32)
    b = rng.normal(size=8).astype(np.float32)
    attrs = dict(geometry_attrs(**geom), group=group)
    fm = conv_model(in_shape, W, b, attrs, act=Act.RELU)
    X = rng.normal(size=(2,) + in_shape).astype(np.float32)
    Y = reference.run(fm, X)
    for n in range(2):
        want = np.maximum(naive_conv(X[n].astype(np.float64), W, b, attrs, group), 0.0)
        np.testing.assert_allclose(Y[n], want, rtol=1e-6, atol=1e-6)
    assert fm.macs == int(np.prod(fm.output_shape)) * (4 // group) * geom["kernel"][0] * geom["kernel"][1]


@pytest.mark.parametrize("k,stride,dil,pads", [(5, 1, 1, (0, 0)), (3, 2, 1, (1, 2)), (3, 1, 3, (3, 3)), (4, 3, 2, (0, 1))])
def test_conv1d_is_height_one(k, stride, dil, pads):
    rng = np.random.default_rng(k)
    in_shape = (3, 20)
    W = rng.normal(size=(5, 3, 1, k)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    attrs = dict(geometry_attrs((1, k), (1, stride), (1, dil), ((0, 0), pads)), group=1)
    fm = conv_model(in_shape, W, b, attrs)
    assert len(fm.output_shape) == 2
    X = rng.normal(size=(3,) + in_shape).astype(np.float32)
    Y = reference.run(fm, X)
    for n in range(3):
        want = naive_conv(X[n][:, None, :].astype(np.float64), W, b, attrs, 1)[:, 0, :]
        np.testing.assert_allclose(Y[n], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("geom", [dict(kernel=(2, 2), stride=(2, 2)), dict(kernel=(3, 3), stride=(2, 2), pads=((1, 1), (1, 1))),
                                  dict(kernel=(2, 3), stride=(1, 2), pads=((1, 0), (0, 2))),
                                  dict(kernel=(2, 2), stride=(1, 2), dilation=(2, 3), pads=((2, 1), (0, 3)))])
@pytest.mark.parametrize("include", [0, 1])
def test_pools_match_naive_loops(geom, include):
    rng = np.random.default_rng(7)
    in_shape = (3, 5, 7)
    X = rng.normal(size=(2,) + in_shape).astype(np.float32)
    attrs = geometry_attrs(**geom)
    ymax = reference.run(pool_model(Op.MAXPOOL, in_shape, attrs), X)
    yavg = reference.run(pool_model(Op.AVGPOOL, in_shape, dict(attrs, count_include_pad=include)), X)
    for n in range(2):
        want_max, _ = naive_pool(X[n], attrs, "max")
        np.testing.assert_array_equal(ymax[n], want_max.astype(np.float32))
        sums, counts = naive_pool(X[n], attrs, "avg", bool(include))
        np.testing.assert_allclose(yavg[n], sums / counts, rtol=1e-6, atol=1e-7)


def test_global_avgpool_and_1d_pools():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(4, 3, 11)).astype(np.float32)
    np.testing.assert_allclose(reference.run(pool_model(Op.GLOBAL_AVGPOOL, (3, 11), {}), X), X.mean(axis=2), rtol=1e-6)
    X2 = rng.normal(size=(2, 2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(reference.run(pool_model(Op.GLOBAL_AVGPOOL, (2, 3, 4), {}), X2),
                               X2.mean(axis=(2, 3)), rtol=1e-6)
    attrs = geometry_attrs((1, 2), (1, 2))
    np.testing.assert_array_equal(reference.run(pool_model(Op.MAXPOOL, (3, 11), attrs), X),
                                  np.maximum(X[:, :, 0:10:2], X[:, :, 1:11:2]))


# ------------------------------------------------------------------------------ int8
@pytest.mark.parametrize("geom,group", [(dict(kernel=(3, 3), pads=((1, 1), (1, 1))), 1),
                                        (dict(kernel=(2, 3), stride=(2, 1), pads=((0, 1), (2, 0))), 2),
                                        (dict(kernel=(3, 3), dilation=(1, 2), pads=((1, 1), (2, 2))), 4)])
def test_qconv_matches_integer_loops(geom, group):
    rng = np.random.default_rng(11)
    in_shape = (4, 5, 6)
    o = 8
    Wq = rng.integers(-127, 128, size=(o, 4 // group) + geom["kernel"]).astype(np.int8)
    bq = rng.integers(-2000, 2000, size=o).astype(np.int32)
    w_scale = rng.uniform(0.001, 0.01, size=o).astype(np.float32)
    q = {"x_scale": 0.02, "x_zp": -5, "y_scale": 0.05, "y_zp": 3, "qmin": 3, "qmax": 127}
    attrs = dict(geometry_attrs(**geom), group=group)
    fm = conv_model(in_shape, Wq, bq, attrs, op=Op.QCONV, extra=q, w_scale=w_scale)
    X = rng.uniform(-2.0, 2.0, size=(2,) + in_shape).astype(np.float32)
    _, trace = reference.run(fm, X, trace=True)
    xq = trace[0].reshape((2,) + in_hw(in_shape))
    M = quant.requant_multiplier(q["x_scale"], w_scale, q["y_scale"])
    for n in range(2):
        acc = naive_conv(xq[n].astype(np.int64) - q["x_zp"], Wq.astype(np.int64), bq.astype(np.int64), attrs, group)
        acc = acc.astype(np.int64)  # exact: small integers in float64
        want = np.clip(np.rint(acc.astype(np.int32).astype(np.float32) * M[:, None, None]).astype(np.int64) + 3, 3, 127)
        np.testing.assert_array_equal(trace[1][n].reshape(want.shape), want.astype(np.int8))


@pytest.mark.parametrize("include", [0, 1])
def test_qpools_match_integer_loops(include):
    rng = np.random.default_rng(12)
    in_shape = (3, 5, 6)
    attrs = geometry_attrs((3, 2), (2, 2), pads=((1, 1), (1, 0)))
    X = rng.uniform(-1.0, 3.0, size=(2,) + in_shape).astype(np.float32)
    q = {"x_scale": 0.02, "x_zp": -40}
    _, tmax = reference.run(pool_model(Op.QMAXPOOL, in_shape, attrs, q), X, trace=True)
    qa = dict(q, y_scale=0.03, y_zp=7, count_include_pad=include)
    _, tavg = reference.run(pool_model(Op.QAVGPOOL, in_shape, dict(attrs, count_include_pad=include),
                                       {k: v for k, v in qa.items() if k != "count_include_pad"}), X, trace=True)
    m = np.float32(0.02 / 0.03)
    for n in range(2):
        xq = tmax[0][n].astype(np.int64)
        want_max, _ = naive_pool(xq, attrs, "max")
        np.testing.assert_array_equal(tmax[1][n], want_max.astype(np.int8))
        sums, counts = naive_pool(xq - q["x_zp"], attrs, "avg", bool(include))
        want = np.rint((sums.astype(np.float32) * m) / counts.astype(np.float32)).astype(np.int64) + 7
        np.testing.assert_array_equal(tavg[1][n], np.clip(want, -128, 127).astype(np.int8))


# ------------------------------------------------------------------------------ errors, files
def test_bad_specs_raise_clear_errors():
    W = np.zeros((4, 2, 1, 3), np.float32)
    b = np.zeros(4, np.float32)
    attrs = dict(geometry_attrs((1, 3)), group=1)
    X = np.zeros((1, 2, 10), np.float32)
    fm = conv_model((2, 10), W, b, attrs)
    bad = [
        (dict(attrs, group=3), "group"),
        ({k: v for k, v in attrs.items() if k != "stride_w"}, "stride_w"),
        (dict(attrs, kernel_w=4), "kernel"),
        (dict(attrs, stride_h=2), "1-D"),
        (dict(attrs, pad_left=-1), "pad_left"),
    ]
    for a, msg in bad:
        layer = Layer(Op.CONV, (2, 10), fm.layers[0].out_shape, tensors=fm.layers[0].tensors, attrs=a)
        with pytest.raises(ConvSpecError, match=msg):
            reference.run(FrozenModel((layer,), fm.buffers, (2, 10), layer.out_shape), X)
    layer = Layer(Op.CONV, (2, 10), (4, 9), tensors=fm.layers[0].tensors, attrs=attrs)
    with pytest.raises(ConvSpecError, match="out_shape"):
        reference.run(FrozenModel((layer,), fm.buffers, (2, 10), (4, 9)), X)
    pool = Layer(Op.MAXPOOL, (2, 10), (2, 6), attrs=geometry_attrs((1, 2), (1, 2), pads=((0, 0), (2, 0))))
    with pytest.raises(ConvSpecError, match="padding only"):
        reference.run(FrozenModel((pool,), {}, (2, 10), (2, 6)), X)


def test_conv_models_round_trip_through_rtm(tmp_path):
    from rtinfer import load_frozen
    rng = np.random.default_rng(13)
    W = rng.normal(size=(4, 1, 3, 3)).astype(np.float32)
    attrs = dict(geometry_attrs((3, 3), pads=((1, 1), (1, 1))), group=2)
    fm = conv_model((2, 5, 5), W, rng.normal(size=4).astype(np.float32), attrs, act=Act.RELU)
    path = tmp_path / "c.rtm"
    fm.save(path)
    back = load_frozen(path)
    assert back.layers[0].op == Op.CONV and dict(back.layers[0].attrs) == dict(fm.layers[0].attrs)
    X = rng.normal(size=(3, 2, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(reference.run(back, X), reference.run(fm, X))


def test_pool_counts_equal_counting_every_tap_and_validation_allocates_little():
    """pool_counts / min_pool_count count taps by interval arithmetic: equal to enumerating every
    (output, tap) pair on random small geometries; validating a pool over 4M outputs (a fuzz case:
    a 100-byte ONNX model) stays within a few MB instead of a table per output and tap."""
    import tracemalloc

    from rtinfer.reference_conv import make_geometry, min_pool_count, pool_counts
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        kh, kw, sh, sw, dh, dw = (int(v) for v in rng.integers(1, 4, 6))
        pt, pb, pl, pr = (int(v) for v in rng.integers(0, 5, 4))
        attrs = geometry_attrs((kh, kw), (sh, sw), (dh, dw), ((pt, pb), (pl, pr)))
        g = make_geometry((1, h, w), attrs)
        if g.oh < 1 or g.ow < 1:
            continue
        rows = ((np.arange(g.oh)[:, None] * sh + np.arange(kh)[None, :] * dh - pt >= 0)
                & (np.arange(g.oh)[:, None] * sh + np.arange(kh)[None, :] * dh - pt < h)).sum(axis=1)
        cols = ((np.arange(g.ow)[:, None] * sw + np.arange(kw)[None, :] * dw - pl >= 0)
                & (np.arange(g.ow)[:, None] * sw + np.arange(kw)[None, :] * dw - pl < w)).sum(axis=1)
        want = rows[:, None] * cols[None, :]
        np.testing.assert_array_equal(pool_counts(g, False), want)
        assert min_pool_count(g) == int(want.min())
    g = make_geometry((1, 1 << 22), geometry_attrs((1, 3)))
    tracemalloc.start()
    assert min_pool_count(g) == 3
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, peak
