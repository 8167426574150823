"""Round half to even at exact ties, for every kernel that rounds to int8, against integer
arithmetic written here (not rtinfer.quant): QDENSE (kernels.qdense_i8 and the batch path's
kernels_gemm.qdense_u8s8), QCONV (kernels_conv.qconv_i8 on each of its paths: pointwise,
im2col, shifted runs, flat masked runs), QAVGPOOL (kernels_conv.qavgpool_i8), QUANTIZE
(kernels.quantize_f32_i8), and the reference semantics (rtinfer.quant.requantize / quantize).
The dequantize kernels (kernels.dequantize_i8_f32, kernels_gemm.dequantize_i8_f32) are checked
on every code against one float32 rounding of the exact product.

Ties are made exact: a requantization multiplier of 0.5 (or 0.25) turns every odd accumulator
into an exact x.5 in float32, an average over 2 or 4 elements does the same, and x = k + 0.5
with scale 1 does it for QUANTIZE. Random data almost never lands on a tie, so without these a
kernel rounding half up (or away from zero) passes every other test.

The second half runs the same ties through the public API: ONNX graphs (QLinearMatMul,
QLinearConv, DQ -> AveragePool -> Q, QuantizeLinear) imported with export.from_onnx and run by
rtinfer.reference.run, Runtime.predict (exact and batch paths), stream and predict_one.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import rtinfer
from export import from_onnx
from rtinfer import kernels as K
from rtinfer import kernels_conv as KC
from rtinfer import kernels_gemm as G
from rtinfer import kernels_ref as R
from rtinfer import quant, reference
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Op
from rtinfer.reference_conv import geometry_attrs, make_geometry


def half_even(num, den):
    """round(num / den) with ties to even, in exact integer arithmetic (num int64 array, den > 0)."""
    num = np.asarray(num, np.int64)
    q, r = np.divmod(num, den)  # floor division: 0 <= r < den
    up = (2 * r > den) | ((2 * r == den) & (q % 2 == 1))
    return q + up


def clamp8(v, lo=-128, hi=127):
    return np.clip(v, lo, hi).astype(np.int8)


def assert_many_ties(acc, den, zp, share=0.1):
    """At least `share` of the accumulators are exact ties whose result does not saturate."""
    ties = (np.asarray(acc) % den == den // 2) & (np.abs(half_even(acc, den) + zp) < 127)
    assert np.mean(ties) >= share, f"only {np.mean(ties):.3f} of the outputs are unsaturated ties"


def test_half_even_helper():
    assert half_even([1, 3, 5, -1, -3, -5, 2, -2, 7], 2).tolist() == [0, 2, 2, 0, -2, -2, 1, -1, 4]
    assert half_even([2, 6, 10, -2, -6, 3, 5], 4).tolist() == [0, 2, 2, 0, -2, 1, 1]


# -- reference semantics (rtinfer.quant) -----------------------------------------------------------

def test_quant_requantize_and_quantize_round_half_even():
    acc = np.arange(-301, 302, dtype=np.int32)
    for zp in (0, 5, -7):
        got = quant.requantize(acc, np.float32(0.5), zp)
        np.testing.assert_array_equal(got, clamp8(half_even(acc, 2) + zp))
        got = quant.requantize(acc, np.float32(0.25), zp)
        np.testing.assert_array_equal(got, clamp8(half_even(acc, 4) + zp))
    k = np.arange(-140, 140)
    x = (k + 0.5).astype(np.float32)
    np.testing.assert_array_equal(quant.quantize(x, 1.0, 3), clamp8(half_even(2 * k + 1, 2) + 3))


# -- compiled kernels ------------------------------------------------------------------------------

@pytest.mark.parametrize("n_in", [1, 5, 16, 37])
@pytest.mark.parametrize("mult,den", [(0.5, 2), (0.25, 4)])
def test_qdense_i8_ties(n_in, mult, den):
    rng = np.random.default_rng(n_in)
    n_out, m, y_zp = 9, 7, -3
    x = rng.integers(-12, 13, (m, n_in)).astype(np.int8)
    W = rng.integers(-3, 4, (n_in, n_out)).astype(np.int8)
    bias = rng.integers(-60, 61, n_out).astype(np.int32)
    acc = x.astype(np.int64) @ W.astype(np.int64) + bias
    assert_many_ties(acc, den, y_zp)
    want = clamp8(half_even(acc, den) + y_zp)
    M = np.full(n_out, mult, np.float32)
    Wt = np.ascontiguousarray(W.T).reshape(-1)
    for fn in (K.qdense_i8, R.qdense_i8):
        got = np.zeros(m * n_out, np.int8)
        fn(x.reshape(-1), 0, Wt, 0, bias, 0, M, 0, got, 0, n_in, n_out, m, y_zp, -128, 127)
        np.testing.assert_array_equal(got.reshape(m, n_out), want, err_msg=str(fn))


@pytest.mark.skipif(not G.available(), reason="the u8s8 GEMM needs an x86-64 host with AVX2")
@pytest.mark.parametrize("n_in,n_out,m", [(5, 3, 1), (37, 21, 9), (64, 16, 12)])
def test_qdense_u8s8_ties_and_twin(n_in, n_out, m):
    """kernels_gemm.qdense_u8s8 (the batch path's int8 GEMM), called as rtinfer.batch does:
    x int8 codes shifted to uint8 inside, the shift folded into bias2; exact integer sums and
    round half to even, against integer arithmetic and against the twin gemm_u8s8_ref."""
    rng = np.random.default_rng(n_in * 7 + m)
    y_zp, mult, den = 4, 0.5, 2
    x = rng.integers(-20, 21, (m, n_in)).astype(np.int8)
    W = rng.integers(-2, 3, (n_in, n_out)).astype(np.int8)
    W[0, 0], W[-1, -1] = 63, -63  # pairs of |W| <= 128: no int16 saturation with x + 128 <= 255
    assert G.u8s8_exact(W)
    folded = rng.integers(-50, 51, n_out).astype(np.int64)
    acc = x.astype(np.int64) @ W.astype(np.int64)
    folded[::2] += (acc[0, ::2] + folded[::2]) % 2 == 0  # sample 0: odd sums (ties) at even outputs
    acc += folded
    assert_many_ties(acc, den, y_zp, share=0.3)
    want = clamp8(half_even(acc, den) + y_zp)
    bias2 = (folded - 128 * W.astype(np.int64).sum(axis=0)).astype(np.int32)
    Bp, nq, nblk = G.pack_weights(W)
    lda, ldc = 4 * nq, G.TILE_J * nblk
    m_pad = -(-m // G.TILE_S) * G.TILE_S
    so, do = 3, 3 + m * n_in + 5
    i8 = np.full(do + m * n_out + 4, 77, np.int8)
    i8[so:so + m * n_in] = x.reshape(-1)
    A = np.zeros(m_pad * lda, np.uint8)
    C = np.zeros(m_pad * ldc, np.int32)
    multv = np.full(n_out, mult, np.float32)
    G.qdense_u8s8(i8, so, do, n_in, n_out, m, A, lda, Bp, nq, nblk, C, ldc, bias2, multv, y_zp, -128, 127)
    np.testing.assert_array_equal(i8[do:do + m * n_out].reshape(m, n_out), want)
    assert np.all(i8[do + m * n_out:] == 77) and np.all(i8[so + m * n_in:do] == 77)
    # the GEMM itself against its twin (int32 sums of the shifted inputs)
    C_ref = np.zeros_like(C)
    G.gemm_u8s8_ref(A, lda, Bp, nq, nblk, C_ref, ldc, m_pad)
    np.testing.assert_array_equal(C[:m * ldc].reshape(m, ldc)[:, :n_out],
                                  ((x.astype(np.int64) + 128) @ W.astype(np.int64)).astype(np.int32))
    np.testing.assert_array_equal(C, C_ref)


@pytest.mark.skipif(not G.available(), reason="the u8s8 GEMM needs an x86-64 host with AVX2")
@pytest.mark.parametrize("n_in,n_out,m", [(1, 1, 1), (3, 17, 5), (33, 16, 4), (130, 40, 13)])
def test_qdense_u8s8_matches_the_qdense_twin(n_in, n_out, m):
    """Full-range int8 inputs and weights at the u8s8 bound (|W[2p, j]| + |W[2p+1, j]| <= 128),
    typical multipliers, clamps and offsets: qdense_u8s8 equals kernels_ref.qdense_i8 (the twin
    of the exact QDENSE kernel, which takes the same folded bias) bit for bit."""
    rng = np.random.default_rng(n_in * 1000 + n_out)
    x = rng.integers(-128, 128, (m, n_in)).astype(np.int8)
    W = rng.integers(-64, 65, (n_in, n_out)).astype(np.int8)
    assert G.u8s8_exact(W)
    folded = rng.integers(-40000, 40001, n_out).astype(np.int32)
    M = rng.uniform(2e-4, 2e-3, n_out).astype(np.float32)
    for y_zp, qmin, qmax in ((-3, -128, 127), (10, 10, 127), (0, -20, 40)):
        want = np.zeros(m * n_out, np.int8)
        R.qdense_i8(x.reshape(-1), 0, np.ascontiguousarray(W.T).reshape(-1), 0, folded, 0, M, 0, want, 0,
                    n_in, n_out, m, y_zp, qmin, qmax)
        bias2 = (folded.astype(np.int64) - 128 * W.astype(np.int64).sum(axis=0)).astype(np.int32)
        Bp, nq, nblk = G.pack_weights(W)
        lda, ldc = 4 * nq, G.TILE_J * nblk
        m_pad = -(-m // G.TILE_S) * G.TILE_S
        i8 = np.concatenate([x.reshape(-1), np.full(m * n_out, 99, np.int8)])
        A = np.full(m_pad * lda, 7, np.uint8)  # scratch starts dirty
        C = np.full(m_pad * ldc, -1, np.int32)
        G.qdense_u8s8(i8, 0, m * n_in, n_in, n_out, m, A, lda, Bp, nq, nblk, C, ldc, bias2, M, y_zp, qmin, qmax)
        np.testing.assert_array_equal(i8[m * n_in:], want)
        assert len(np.unique(want)) > min(5, m * n_out // 2)  # not all clamped


def test_quantize_f32_i8_ties():
    k = np.arange(-140, 140)
    for scale, zp in ((1.0, 0), (1.0, 3), (0.5, -2)):
        x = ((k + 0.5) * scale).astype(np.float32)  # exact: x / scale = k + 0.5
        want = clamp8(half_even(2 * k + 1, 2) + zp)
        got = np.zeros(len(x), np.int8)
        K.quantize_f32_i8(x, 0, got, 0, len(x), scale, zp)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kernel", [K.dequantize_i8_f32, G.dequantize_i8_f32, R.dequantize_i8_f32],
                         ids=["kernels", "kernels_gemm", "twin"])
def test_dequantize_every_code(kernel):
    """float32((q - zp) * float32(scale)), one rounding of the exact product (a 9-bit integer
    times a float32 is exact in float64)."""
    q = np.arange(-128, 128).astype(np.int8)
    for scale, zp in ((0.0173, 11), (0.5, -128), (3.0e-3, 127), (1.0, 0), (0.07, -5)):
        want = (np.float64(np.float32(scale)) * (q.astype(np.float64) - zp)).astype(np.float32)
        got = np.full(256 + 6, 9.0, np.float32)
        src = np.concatenate([np.zeros(2, np.int8), q])
        kernel(src, 2, got, 3, 256, scale, zp)
        np.testing.assert_array_equal(got[3:259], want)
        assert np.all(got[:3] == 9.0) and np.all(got[259:] == 9.0)


# (in_shape (C, H, W), out channels, group, kernel, stride, dilation, pads ((t, b), (l, r)), path)
QCONV_PATHS = [
    ((6, 4, 5), 7, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)), "pointwise"),
    ((3, 7, 6), 5, 1, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), "im2col"),
    ((3, 6, 6), 6, 1, (3, 2), (1, 1), (1, 1), ((1, 0), (0, 1)), "im2col (stride 1, >= 4 outputs per group)"),
    ((4, 6, 7), 4, 4, (3, 3), (1, 1), (1, 1), ((0, 0), (0, 0)), "shifted runs (depthwise, ow < w)"),
    ((4, 6, 7), 8, 4, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), "flat masked runs (depthwise x2, ow == w)"),
    ((2, 1, 19), 2, 2, (1, 5), (1, 1), (1, 2), ((0, 0), (4, 4)), "flat masked runs, 1-D dilated"),
]


def conv_acc(x, W, bias, x_zp, in_shape, group, kernel, stride, dil, pads):
    """Integer convolution written out: x (m, C, H, W) int8 codes, W (O, C/group, kh, kw)."""
    m = x.shape[0]
    c, h, w = in_shape
    o, cg, kh, kw = W.shape
    (pt, pb), (pl, pr) = pads
    xp = np.zeros((m, c, h + pt + pb, w + pl + pr), np.int64)
    xp[:, :, pt:pt + h, pl:pl + w] = x.astype(np.int64) - x_zp
    oh = (h + pt + pb - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + pl + pr - dil[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // group
    acc = np.zeros((m, o, oh, ow), np.int64)
    for oc in range(o):
        g = oc // og
        for p in range(kh):
            for q in range(kw):
                rows = slice(p * dil[0], p * dil[0] + (oh - 1) * stride[0] + 1, stride[0])
                cols = slice(q * dil[1], q * dil[1] + (ow - 1) * stride[1] + 1, stride[1])
                patch = xp[:, g * cg:(g + 1) * cg, rows, cols]
                acc[:, oc] += np.einsum("mchw,c->mhw", patch, W[oc, :, p, q].astype(np.int64))
        acc[:, oc] += bias[oc]
    return acc


@pytest.mark.parametrize("case", QCONV_PATHS, ids=[c[-1] for c in QCONV_PATHS])
def test_qconv_i8_ties_on_every_path(case):
    shape, o, group, kernel, stride, dil, pads, _ = case
    rng = np.random.default_rng(len(shape) + o + group)
    attrs = geometry_attrs(kernel, stride, dil, pads)
    in_shape = shape if shape[1] != 1 else (shape[0], shape[2])
    geo = make_geometry(in_shape, attrs)
    m, x_zp, y_zp = 2, 3, -5
    x = rng.integers(-10, 17, (m,) + shape).astype(np.int8)
    W = rng.integers(-3, 4, (o, shape[0] // group) + tuple(kernel)).astype(np.int8)
    bias = rng.integers(-40, 41, o).astype(np.int32)
    acc = conv_acc(x, W, bias, x_zp, shape, group, kernel, stride, dil, pads)
    assert acc.shape[2:] == (geo.oh, geo.ow)
    out_shape = (o, geo.oh, geo.ow) if len(in_shape) == 3 else (o, geo.ow)
    for mult, den in ((0.5, 2), (0.25, 4)):
        assert_many_ties(acc, den, y_zp)
        want = clamp8(half_even(acc, den) + y_zp)
        # through the planner, which picks the kernel path for this geometry (rtinfer.kernels_conv):
        # x_scale = y_scale = 1 and w_scale = mult make the requantization multiplier exactly mult
        bb = BufferBuilder()
        qconv = Layer(Op.QCONV, in_shape, out_shape,
                      tensors={"W": bb.add(W), "b": bb.add(bias), "w_scale": bb.add(np.full(o, mult, np.float32))},
                      attrs=dict(attrs, group=group, x_scale=1.0, x_zp=x_zp, y_scale=1.0, y_zp=y_zp, qmin=-128,
                                 qmax=127))
        layers = (Layer(Op.QUANTIZE, in_shape, in_shape, attrs={"y_scale": 1.0, "y_zp": 0}), qconv,
                  Layer(Op.DEQUANTIZE, out_shape, out_shape, attrs={"x_scale": 1.0, "x_zp": 0}))
        fm = FrozenModel(layers, bb.finish(), in_shape, out_shape)
        X = x.reshape((m,) + in_shape).astype(np.float32)
        codes = want.reshape((m,) + out_shape).astype(np.float32)
        rt = rtinfer.load(fm, batch="exact")
        np.testing.assert_array_equal(rt.stream(X), codes)
        np.testing.assert_array_equal(rt.predict(X), codes)
        np.testing.assert_array_equal(rt.predict_one(X[1]), codes[1])
        np.testing.assert_array_equal(reference.run(fm, X), codes)


POOL_TIES = [  # in_shape (C, H, W), kernel, stride, pads: every window holds 2 or 4 elements
    ((3, 6, 8), (2, 2), (2, 2), ((0, 0), (0, 0))),
    ((2, 1, 12), (1, 2), (1, 1), ((0, 0), (0, 0))),
    ((2, 5, 7), (2, 1), (1, 2), ((0, 0), (0, 0))),
]


@pytest.mark.parametrize("case", POOL_TIES)
def test_qavgpool_i8_ties(case):
    shape, kernel, stride, pads = case
    rng = np.random.default_rng(sum(shape))
    in_shape = shape if shape[1] != 1 else (shape[0], shape[2])
    geo = make_geometry(in_shape, geometry_attrs(kernel, stride, (1, 1), pads))
    count = kernel[0] * kernel[1]
    m, x_zp, y_zp = 3, -4, 6
    x = rng.integers(-128, 128, (m,) + shape).astype(np.int8)
    xs = x.astype(np.int64) - x_zp
    acc = np.zeros((m, shape[0], geo.oh, geo.ow), np.int64)
    for p in range(kernel[0]):
        for q in range(kernel[1]):
            acc += xs[:, :, p:p + (geo.oh - 1) * stride[0] + 1:stride[0], q:q + (geo.ow - 1) * stride[1] + 1:stride[1]]
    for mult, scale in ((1.0, 1), (0.5, 2)):
        den = count * scale
        assert_many_ties(acc, den, y_zp)
        want = clamp8(half_even(acc, den) + y_zp)
        g = KC.table_from_geometry(geo, geo.c, 1, 0)
        for fn in (KC.qavgpool_i8, KC.qavgpool_i8_ref):
            y = np.zeros(want.size, np.int8)
            fn(x.reshape(-1), 0, y, 0, g, 0, m, x_zp, y_zp, mult)
            np.testing.assert_array_equal(y.reshape(want.shape), want, err_msg=str(fn))


# -- through the public API: ONNX graphs imported and run by every executor ----------------------

def onnx_model(nodes, inits, in_shape):
    graph = helper.make_graph(nodes, "ties", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def every_executor(frozen, X):
    """{name: output} from the reference executor and each compiled entry point."""
    out = {"reference": reference.run(frozen, X)}
    for batch in ("exact", "auto"):
        out[f"predict[{batch}]"] = rtinfer.load(frozen, batch=batch).predict(X)
    rt = rtinfer.load(frozen)
    out["stream"] = rt.stream(X)
    out["predict_one"] = np.stack([rt.predict_one(x) for x in X])
    return out


Q_IO = {"xs": np.float32(1.0), "xz": np.int8(3), "ys": np.float32(2.0), "yz": np.int8(-6)}


def test_qlinearmatmul_ties_every_executor():
    """x (integers, scale 1) -> Q -> QLinearMatMul (multiplier 1 * 1 / 2) -> DQ: ties at every
    odd accumulator; 64 samples x 2048 MACs take the batch path's int8 GEMM under batch="auto"."""
    rng = np.random.default_rng(0)
    n_in, n_out, n = 64, 32, 64
    W = rng.integers(-2, 3, (n_in, n_out)).astype(np.int8)
    X = rng.integers(-12, 13, (n, n_in)).astype(np.float32)
    inits = dict(Q_IO, ws=np.float32(1.0), wz=np.int8(0), W=W)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
             helper.make_node("QLinearMatMul", ["q", "xs", "xz", "W", "ws", "wz", "ys", "yz"], ["qy"]),
             helper.make_node("DequantizeLinear", ["qy", "ys", "yz"], ["y"])]
    acc = X.astype(np.int64) @ W.astype(np.int64)  # (x_q - x_zp) = x exactly
    assert_many_ties(acc, 2, -6, share=0.3)
    want = ((clamp8(half_even(acc, 2) - 6).astype(np.int64) + 6) * 2).astype(np.float32)
    for name, got in every_executor(from_onnx(onnx_model(nodes, inits, (n_in,))), X).items():
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("case", QCONV_PATHS[:5], ids=[c[-1] for c in QCONV_PATHS[:5]])
def test_qlinearconv_ties_every_executor(case):
    shape, o, group, kernel, stride, dil, pads, _ = case
    rng = np.random.default_rng(o)
    n = 3
    W = rng.integers(-3, 4, (o, shape[0] // group) + tuple(kernel)).astype(np.int8)
    B = rng.integers(-40, 41, o).astype(np.int32)
    X = rng.integers(-12, 13, (n,) + shape).astype(np.float32)
    inits = dict(Q_IO, ws=np.float32(1.0), wz=np.int8(0), W=W, B=B)
    (pt, pb), (pl, pr) = pads
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
             helper.make_node("QLinearConv", ["q", "xs", "xz", "W", "ws", "wz", "ys", "yz", "B"], ["qy"],
                              kernel_shape=list(kernel), strides=list(stride), dilations=list(dil),
                              pads=[pt, pl, pb, pr], group=group),
             helper.make_node("DequantizeLinear", ["qy", "ys", "yz"], ["y"])]
    acc = conv_acc(X.astype(np.int64) + 3, W, B, 3, shape, group, kernel, stride, dil, pads)
    assert_many_ties(acc, 2, -6, share=0.2)
    want = ((clamp8(half_even(acc, 2) - 6).astype(np.int64) + 6) * 2).astype(np.float32)
    for name, got in every_executor(from_onnx(onnx_model(nodes, inits, shape)), X).items():
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_qdq_averagepool_ties_every_executor():
    rng = np.random.default_rng(1)
    shape, n = (3, 6, 8), 4
    X = rng.integers(-100, 101, (n,) + shape).astype(np.float32)
    inits = dict(Q_IO, ys=np.float32(1.0))
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "xs", "xz"], ["d"]),
             helper.make_node("AveragePool", ["d"], ["a"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("QuantizeLinear", ["a", "ys", "yz"], ["qa"]),
             helper.make_node("DequantizeLinear", ["qa", "ys", "yz"], ["y"])]
    acc = X.astype(np.int64).reshape(n, 3, 3, 2, 4, 2).sum(axis=(3, 5))
    assert_many_ties(acc, 4, -6)
    want = (clamp8(half_even(acc, 4) - 6).astype(np.int64) + 6).astype(np.float32)
    frozen = from_onnx(onnx_model(nodes, inits, shape))
    # the float mean of dequantized values, as the graph defines it (export.onnx_conv.quant_rule)
    assert [layer.op.name for layer in frozen.layers][-3:] == ["AVGPOOL", "QUANTIZE", "DEQUANTIZE"]
    for name, got in every_executor(frozen, X).items():
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_quantizelinear_ties_every_executor():
    k = np.arange(-70, 70)
    X = np.stack([(k + 0.5), (k - 0.5)[::-1]]).astype(np.float32) * np.float32(0.5)  # x / 0.5 = k +- 0.5
    inits = {"s": np.float32(0.5), "z": np.int8(2)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    num = np.stack([2 * k + 1, (2 * k - 1)[::-1]])
    want = ((clamp8(half_even(num, 2) + 2).astype(np.int64) - 2) * 0.5).astype(np.float32)
    for name, got in every_executor(from_onnx(onnx_model(nodes, inits, (len(k),))), X).items():
        np.testing.assert_array_equal(got, want, err_msg=name)
