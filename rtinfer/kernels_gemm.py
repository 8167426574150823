"""Register-tiled GEMM kernels of the batch path (rtinfer.batch), written as small LLVM IR
micro-kernels: an exact int8 GEMM for QDENSE (x86 AVX2) and a float32 GEMM for DENSE; and the
one-sample float32 kernel the interpreter runs packed DENSE rows with (``dense_f32_wide``).

float32 (``dense_f32_tiled``, any x86-64 or other LLVM target with FMA lowering): a tile of
FT_S = 6 samples x 16 outputs in 12 vector accumulators of 8 lanes; each output is one FMA
chain over the inputs in order (acc = fma(x[i], W[i, j], acc), one rounding per term), then
``+ b[j]`` in float32 and an optional fused ReLU. The order does not depend on the batch size,
the chunk or the tile position, so results are the same for a sample in any batch; versus the
exact kernel (kernels.dense_f32: vector partial sums) they differ in the last bits. Weights are
packed once (``pack_f32``): for each block of 16 outputs, n_in rows of 16 floats (zero padded).
The planner lays out wide DENSE layers this way in the plan itself (plan.dense_packed), and
``dense_f32_wide`` runs them one sample at a time: one row of up to 4 blocks (64 outputs, 8
accumulators, so the FMA latency is hidden) per micro-kernel call, the same FMA chain per output
as the tile, so a sample gets the same bits from predict_one and from the batch path.

int8 (``qdense_u8s8``):

    acc[s, j] = sum_i (x[s, i] + 128) * W[i, j]        x int8 codes, W int8 weights

computed with vpmaddubsw (uint8 x int8 -> pairwise int16 sums, *saturating*) and vpmaddwd
(int16 pairs -> int32), the instruction pair onnxruntime's MLAS uses on AVX2 CPUs without VNNI;
on VNNI CPUs with one vpdpbusd per step (the four products summed into int32 without
saturation: the same sums under the bound below; kernels_tile.quad_dot).
It is exact only when no int16 pair sum can saturate: with activations in [0, 255],
``255 * (|W[2p, j]| + |W[2p + 1, j]|) <= 32767``, i.e. ``|W[2p, j]| + |W[2p + 1, j]| <= 128`` for
every pair of consecutive inputs (2p, 2p + 1) and every output j (``u8s8_exact``; int8 weights
frozen with reduce_range=True, in [-63, 63], always pass). The int32 sums are bounded by
255 * sum_i |W[i, j]|, which the planner proves fits int32. The caller folds the +128 shift
into the bias: bias2[j] = folded_bias[j] - 128 * sum_i W[i, j].

Layouts (``pack_weights``): A (m_pad, lda) uint8, one sample per row, lda = 4 * nq >= n_in
(padding columns hold anything: their weights are 0), m_pad a multiple of TILE_S. Packed W:
for each block of TILE_J = 16 outputs, for each quad q of inputs, 64 bytes: outputs 0..7 then
8..15 of the block, each as its 4 weights W[4q .. 4q + 3, j] (zero padded). C (m_pad, ldc)
int32 with ldc = 16 * nblk. The micro-kernel keeps a 4-sample x 16-output tile of int32 sums in
8 ymm registers; each quad of inputs costs 2 weight loads, 4 broadcasts, 8 vpmaddubsw, 8
vpmaddwd and 8 adds (256 MACs); on VNNI 8 vpdpbusd in place of the last three. On WIDE_I8
targets (kernels_tile: 512-bit vpdpbusd at full width) a sample's 16 outputs are one zmm and
the tile covers two blocks (4 x 32, eight zmm: 2 weight loads, 4 broadcasts, 8 vpdpbusd per quad,
512 MACs); the one-sample kernel's accumulators are zmm there too.

The u8s8 micro-kernel emits vpdpbusd or vpmaddubsw/vpmaddwd (``llvm.x86.*``) only when the
target Numba compiles for has VNNI or AVX2 (checked as its IR is generated), else the same
saturating arithmetic in portable IR: every entry point compiles on every target (NUMBA_CPU_NAME=generic,
non-x86 hosts) and computes the same integers. ``available()`` says whether it is the fast
choice; the batch path otherwise uses a float32 GEMM or the exact kernel. ``gemm_u8s8_ref`` and
``dense_f32_tiled_ref`` are the NumPy twins.

One sample of a packed QDENSE row: ``qdense_u8_wide`` on the quads above (the planner packs a
layer so where its weights pass u8s8_exact, or on any VNNI CPU), and for the other weights on
AVX2 CPUs without VNNI ``qdense_s16_wide`` on int16 pairs (``pack_pairs``: per block of 16
outputs and pair of inputs, 64 bytes of (W[2p, j], W[2p + 1, j]) as int16 for eight outputs
j, twice): acc[j] = sum_i x[i] * W[i, j], one vpmaddwd per pair and 8 outputs, exact for any
int8, as many multiply-adds per instruction as a vpmaddubsw + vpmaddwd pair. Both requantize
as kernels.qdense_i8 does, so all three give the same int8 outputs.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jitcache import kernel_jit
from .kernels_tile import (WIDE_F32, WIDE_I8, codegen_features, halves16, kernel_path_name, pair_madd, quad_dot,
                           quads_exact_any, requant8, store_cols, target_features, wide_i8)

TILE_S = 4    # samples per micro-tile
TILE_J = 16   # outputs per micro-tile (two 8-lane int32 halves)
I16_MAX = 32767


def available() -> bool:
    """True when the u8s8 GEMM is fast here: the code Numba compiles targets AVX2
    (kernels_tile.target_features). Elsewhere it still compiles and computes the same integers
    (portable IR instead of the x86 instructions), only slower, so the batch path prefers
    another strategy."""
    return "avx2" in target_features()


def u8s8_exact(W: np.ndarray) -> bool:
    """True when no vpmaddubsw pair sum can saturate for W (n_in, n_out) int8 and uint8 inputs:
    255 * (|W[2p, j]| + |W[2p + 1, j]|) <= 32767 for all p, j (an odd n_in pads a zero row)."""
    a = np.abs(W.astype(np.int64))
    if a.shape[0] % 2:
        a = np.vstack([a, np.zeros((1, a.shape[1]), np.int64)])
    pairs = a[0::2] + a[1::2]
    return pairs.size == 0 or int(pairs.max()) * 255 <= I16_MAX


def u8_quads_exact(W: np.ndarray) -> bool:
    """Whether the u8 x s8 kernels give exact sums for W (n_in, n_out) int8 here: any weights on
    VNNI targets (kernels_tile.quads_exact_any), else those that pass u8s8_exact."""
    return quads_exact_any() or u8s8_exact(W)


def _pack_groups(W: np.ndarray, k: int, dtype) -> np.ndarray:
    """W (n_in, n_out) -> flat packed[jb, g, h, jj, t] = W[k g + t, 16 jb + 8 h + jj] as dtype
    (groups of k consecutive inputs for 8 outputs at a time, zero padded)."""
    n_in, n_out = W.shape
    ng = -(-n_in // k)
    nblk = -(-n_out // TILE_J)
    Wp = np.zeros((ng * k, nblk * TILE_J), dtype)
    Wp[:n_in, :n_out] = W
    return np.ascontiguousarray(Wp.reshape(ng, k, nblk, 2, 8).transpose(2, 0, 3, 4, 1)).reshape(-1)


def _unpack_groups(P: np.ndarray, n_in: int, n_out: int, k: int) -> np.ndarray:
    """The inverse of _pack_groups (P already viewed as its dtype): W (n_in, n_out) int8."""
    ng = -(-n_in // k)
    nblk = -(-n_out // TILE_J)
    W = P[:nblk * ng * k * TILE_J].reshape(nblk, ng, 2, 8, k).transpose(1, 4, 0, 2, 3)
    return np.ascontiguousarray(W.reshape(ng * k, nblk * TILE_J)[:n_in, :n_out]).astype(np.int8)


def pack_weights(W: np.ndarray):
    """W (n_in, n_out) int8 -> (packed (nblk * nq * 64,) int8, nq, nblk), zero padded:
    packed[jb, q, h, jj, t] = W[4q + t, 16 jb + 8 h + jj]."""
    return _pack_groups(W, 4, np.int8), -(-W.shape[0] // 4), -(-W.shape[1] // TILE_J)


def pack_pairs(W: np.ndarray) -> np.ndarray:
    """W (n_in, n_out) int8 -> int16 pairs for qdense_s16_wide, as bytes: (nblk * np_ * 64,) int8
    of packed[jb, p, h, jj, t] = int16 W[2p + t, 16 jb + 8 h + jj] (np_ = ceil(n_in / 2) pairs,
    zero padded): per block of 16 outputs and pair of inputs, two <16 x i16> vectors of
    (W[2p, j], W[2p + 1, j]) for eight outputs j each."""
    return _pack_groups(W, 2, np.int16).view(np.int8)


def unpack_pairs(Wp: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """The inverse of pack_pairs: W (n_in, n_out) int8 from its packed int16 pairs (bytes)."""
    npr, nblk = -(-n_in // 2), -(-n_out // TILE_J)
    return _unpack_groups(np.ascontiguousarray(Wp[:nblk * npr * 64]).view(np.int16), n_in, n_out, 2)


def unpack_weights(Wp: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """The inverse of pack_weights: W (n_in, n_out) int8 from its packed quads."""
    return _unpack_groups(Wp, n_in, n_out, 4)


def _make_tile(NB):
    @intrinsic
    def _tile(typingctx, A, ao, lda, B, bo, ps, nq, C, co, ldc):
        """C[co + r * ldc + 16b + j] (int32) = sum_{q < nq, t < 4} A[ao + r * lda + 4q + t] (uint8) *
        B[bo + b * ps + 64q + 32h + 4jj + t] (int8), for r < TILE_S, b < NB blocks of 16 outputs ps
        bytes apart and j = 8h + jj < TILE_J. A row of a block is two <8 x i32> accumulators, or
        one <16 x i32> (512-bit vpdpbusd) on WIDE_I8 targets."""
        sig = types.void(A, ao, lda, B, bo, ps, nq, C, co, ldc)

        def codegen(context, builder, signature, args):
            av, aoff, ldav, bv, boff, psv, n, cv, coff, ldcv = args
            aarr = context.make_array(signature.args[0])(context, builder, av)
            barr = context.make_array(signature.args[3])(context, builder, bv)
            carr = context.make_array(signature.args[7])(context, builder, cv)
            i32 = ir.IntType(32)
            feats = codegen_features(context)  # VNNI, AVX2 or the same arithmetic in portable IR
            lanes = 16 if wide_i8(feats) else 8  # int32 lanes per accumulator
            vi = ir.VectorType(i32, lanes)
            vb = ir.VectorType(ir.IntType(8), 4 * lanes)
            nh = TILE_J // lanes
            pa = builder.gep(aarr.data, [aoff])
            pb = builder.gep(barr.data, [boff])
            panels = [builder.gep(pb, [builder.mul(psv, ir.Constant(psv.type, b))]) for b in range(NB)]
            rows = [builder.gep(pa, [builder.mul(ldav, ir.Constant(ldav.type, r))]) for r in range(TILE_S)]
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(vi, [0] * lanes)) for _ in range(NB * nh)]
                    for _ in range(TILE_S)]
            with cgutils.for_range(builder, n) as loop:
                q = loop.index
                w = []
                for b in range(NB):
                    wq = builder.gep(panels[b], [builder.mul(q, ir.Constant(q.type, 64))])
                    w += [builder.load(builder.bitcast(builder.gep(wq, [ir.Constant(q.type, 4 * lanes * h)]),
                                                       vb.as_pointer()), align=1) for h in range(nh)]
                off = builder.mul(q, ir.Constant(q.type, 4))
                for r in range(TILE_S):
                    a4 = builder.load(builder.bitcast(builder.gep(rows[r], [off]), i32.as_pointer()), align=1)
                    splat = builder.insert_element(ir.Constant(vi, ir.Undefined), a4, ir.Constant(i32, 0))
                    a = builder.bitcast(builder.shuffle_vector(splat, splat, ir.Constant(vi, [0] * lanes)), vb)
                    for v in range(NB * nh):
                        builder.store(quad_dot(builder, builder.load(accs[r][v]), a, w[v], feats), accs[r][v])
            pc = builder.gep(carr.data, [coff])
            for r in range(TILE_S):
                row = builder.gep(pc, [builder.mul(ldcv, ir.Constant(ldcv.type, r))])
                for v in range(NB * nh):
                    dst = builder.bitcast(builder.gep(row, [ir.Constant(ldcv.type, lanes * v)]), vi.as_pointer())
                    builder.store(builder.load(accs[r][v]), dst, align=4)
            return context.get_dummy_value()

        return sig, codegen
    return _tile


# one block of 16 outputs per tile; two on WIDE_I8 targets (eight zmm accumulators), where AVX-512's
# 32 registers hold them (on AVX2 the two blocks' 16 ymm accumulators would spill)
_tile1, _tile2 = _make_tile(1), _make_tile(2)


@kernel_jit
def gemm_u8s8(A, lda, Bp, nq, nblk, C, ldc, m_pad):
    """C (m_pad, ldc) int32 = A (m_pad, lda) uint8 @ packed W (see module doc); flat arrays,
    m_pad a multiple of TILE_S, ldc = TILE_J * nblk. Weight blocks outer: each block of packed
    weights (nq * 64 bytes; pairs of blocks on WIDE_I8 targets) is applied to all samples while it
    stays in cache."""
    ps = nq * 64
    jb = 0
    while jb < nblk:
        bo = jb * ps
        if WIDE_I8 and jb + 1 < nblk:
            for s in range(0, m_pad, TILE_S):
                _tile2(A, s * lda, lda, Bp, bo, ps, nq, C, s * ldc + jb * TILE_J, ldc)
            jb += 2
        else:
            for s in range(0, m_pad, TILE_S):
                _tile1(A, s * lda, lda, Bp, bo, ps, nq, C, s * ldc + jb * TILE_J, ldc)
            jb += 1


@kernel_jit
def qdense_u8s8(i8, so, do, n_in, n_out, m, A, lda, Bp, nq, nblk, C, ldc, bias2, mult, y_zp, qmin, qmax):
    """One QDENSE layer for m samples: x (m, n_in) int8 at i8[so:] -> y (m, n_out) int8 at
    i8[do:]. A and C are scratch of at least m_pad * lda uint8 / m_pad * ldc int32 (m_pad = m
    rounded up to TILE_S); bias2 (n_out,) int32 = folded bias - 128 * sum_i W[i, j]; mult (n_out,)
    float32. y = clamp(rint(float32(acc + bias2) * mult) + y_zp, qmin, qmax), as kernels_tile.requant8."""
    for s in range(m):
        x = i8[so + s * n_in:so + (s + 1) * n_in]
        a = A[s * lda:s * lda + n_in]
        for k in range(n_in):
            a[k] = np.uint8(np.int32(x[k]) + 128)
    m_pad = (m + TILE_S - 1) // TILE_S * TILE_S
    gemm_u8s8(A, lda, Bp, nq, nblk, C, ldc, m_pad)
    # kernels_tile.requant8's clamp(int64(rint(f)) + y_zp, qmin, qmax) in float32, which vectorizes:
    # rint(f) + y_zp is exact while |rint(f)| < 2^24 - 128, and beyond that both clamp alike
    zp = np.float32(y_zp)
    lo = np.float32(qmin)
    hi = np.float32(qmax)
    for s in range(m):
        acc = C[s * ldc:s * ldc + n_out]
        y = i8[do + s * n_out:do + (s + 1) * n_out]
        for j in range(n_out):
            v = np.int32(acc[j] + bias2[j])
            q = np.rint(np.float32(v) * mult[j]) + zp
            y[j] = np.int8(np.int32(min(max(q, lo), hi)))


def gemm_u8s8_ref(A, lda, Bp, nq, nblk, C, ldc, m_pad):
    """NumPy twin of gemm_u8s8 (unpacks the weights; int64 sums, exact)."""
    Wp = Bp.reshape(nblk, nq, 2, 8, 4).transpose(1, 4, 0, 2, 3).reshape(nq * 4, nblk * TILE_J)
    a = A[:m_pad * lda].reshape(m_pad, lda)[:, :nq * 4].astype(np.int64)
    C[:m_pad * ldc] = (a @ Wp.astype(np.int64)).astype(np.int32).reshape(-1)


# -- float32 ------------------------------------------------------------------------------------

FT_S = 6      # samples per float32 micro-tile (12 accumulators of 8 lanes)


def pack_f32(W: np.ndarray):
    """W (n_in, n_out) float32 -> (packed (nblk * n_in * 16,) float32, nblk): for each block of
    16 outputs, n_in rows of 16 weights (outputs past n_out are 0)."""
    n_in, n_out = W.shape
    nblk = -(-n_out // TILE_J)
    Wp = np.zeros((n_in, nblk * TILE_J), np.float32)
    Wp[:, :n_out] = W
    return np.ascontiguousarray(Wp.reshape(n_in, nblk, TILE_J).transpose(1, 0, 2)).reshape(-1), nblk


# float32 tile rows as one <16 x float> (zmm) and the FT_S x 32 batch tile on AVX-512 targets
# (kernels_tile.WIDE_F32); two <8 x float> and FT_S x 16 tiles elsewhere
F32_LANES = 16 if WIDE_F32 else 8


def _make_f32_tile(R, NB=1):
    @intrinsic
    def _f32_tile(typingctx, A, ao, lda, B, bo, ps, n, D, do, ldd, ncols, bias, bias_o, relu):
        """D[do + r * ldd + j] = act(fma chain over k < n of A[ao + r * lda + k] * B[bo + (j // 16)
        ps + 16 k + j % 16], in k order from 0.0, + bias[bias_o + j]) for r < R samples and
        j < ncols <= 16 NB outputs (float32: NB packed blocks of 16 outputs, ps floats apart; bias
        readable to 16 NB); act = ReLU (0 if y < 0 else y) when relu, else identity. The batch
        GEMM's tiles are R x 1 block (R <= FT_S: 2 R accumulators); the one-sample wide kernel's
        1 x NB blocks (NB <= WIDE_NB: 2 NB accumulators). Each output's chain is the same in both."""
        sig = types.void(A, ao, lda, B, bo, ps, n, D, do, ldd, ncols, bias, bias_o, relu)

        def codegen(context, builder, signature, args):
            av, aoff, ldav, bv, boff, psv, nk, dv, doff, lddv, ncv, biasv, biasoff, reluv = args
            aarr = context.make_array(signature.args[0])(context, builder, av)
            barr = context.make_array(signature.args[3])(context, builder, bv)
            darr = context.make_array(signature.args[7])(context, builder, dv)
            biasarr = context.make_array(signature.args[11])(context, builder, biasv)
            i32 = ir.IntType(32)
            # per row and block of 16 outputs: one <16 x float> (a zmm) on AVX-512 targets, two
            # <8 x float> (ymm) otherwise, as LLVM schedules best for each (the same per-lane FMA
            # chain either way)
            nv = TILE_J // F32_LANES
            vty = ir.VectorType(ir.FloatType(), F32_LANES)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                                 f"llvm.fma.v{F32_LANES}f32")
            pa = builder.gep(aarr.data, [aoff])
            pb = builder.gep(barr.data, [boff])
            rows = [builder.gep(pa, [builder.mul(ldav, ir.Constant(ldav.type, r))]) for r in range(R)]
            panels = [builder.gep(pb, [builder.mul(psv, ir.Constant(psv.type, q))]) for q in range(NB)]
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(vty, [0.0] * F32_LANES)) for _ in range(nv * NB)]
                    for _ in range(R)]
            with cgutils.for_range(builder, nk) as loop:
                k = loop.index
                k16 = builder.mul(k, ir.Constant(k.type, TILE_J))
                w = [builder.load(builder.bitcast(builder.gep(panels[v // nv], [builder.add(
                    k16, ir.Constant(k.type, F32_LANES * (v % nv)))]), vty.as_pointer()), align=4)
                     for v in range(nv * NB)]
                for r in range(R):
                    x = builder.load(builder.gep(rows[r], [k]))
                    splat = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(i32, 0))
                    splat = builder.shuffle_vector(splat, splat,
                                                   ir.Constant(ir.VectorType(i32, F32_LANES), [0] * F32_LANES))
                    for v in range(nv * NB):
                        builder.store(builder.call(fma, [splat, w[v], builder.load(accs[r][v])]), accs[r][v])
            zero = ir.Constant(vty, [0.0] * F32_LANES)
            relu_on = _splat_i1(builder, builder.icmp_unsigned(
                "!=", context.cast(builder, reluv, signature.args[13], types.int64), ir.Constant(ir.IntType(64), 0)),
                F32_LANES)
            pbias = builder.gep(biasarr.data, [biasoff])
            bvec = [builder.load(builder.bitcast(builder.gep(pbias, [ir.Constant(biasoff.type, F32_LANES * v)]),
                                                 vty.as_pointer()), align=4) for v in range(nv * NB)]
            pd = builder.gep(darr.data, [doff])
            nc = context.cast(builder, ncv, signature.args[10], types.int64)
            for r in range(R):
                ys = []
                for v in range(nv * NB):
                    y = builder.fadd(builder.load(accs[r][v]), bvec[v])
                    ys.append(builder.select(builder.and_(builder.fcmp_ordered("<", y, zero), relu_on), zero, y))
                # all 16 NB columns, or the first ncols through a buffer (a partial last block)
                store_cols(builder, ys, builder.gep(pd, [builder.mul(lddv, ir.Constant(lddv.type, r))]), nc, vty, 4)
            return context.get_dummy_value()

        return sig, codegen
    return _f32_tile


def _splat_i1(builder, bit, lanes):
    """An i1 value broadcast to <lanes x i1>."""
    v = builder.insert_element(ir.Constant(ir.VectorType(ir.IntType(1), lanes), [0] * lanes), bit,
                               ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


_F32_TILES = tuple(_make_f32_tile(r) for r in range(1, FT_S + 1))
_ft1, _ft2, _ft3, _ft4, _ft5, _ft6 = _F32_TILES
_ft6w = _make_f32_tile(FT_S, 2)


@kernel_jit
def _f32_tile_rows(R, src, ao, n_in, Wp, wb, D, do, ldd, b, bo, relu):
    if R == 6:
        _ft6(src, ao, n_in, Wp, wb, 0, n_in, D, do, ldd, TILE_J, b, bo, relu)
    elif R == 5:
        _ft5(src, ao, n_in, Wp, wb, 0, n_in, D, do, ldd, TILE_J, b, bo, relu)
    elif R == 4:
        _ft4(src, ao, n_in, Wp, wb, 0, n_in, D, do, ldd, TILE_J, b, bo, relu)
    elif R == 3:
        _ft3(src, ao, n_in, Wp, wb, 0, n_in, D, do, ldd, TILE_J, b, bo, relu)
    elif R == 2:
        _ft2(src, ao, n_in, Wp, wb, 0, n_in, D, do, ldd, TILE_J, b, bo, relu)
    else:
        _ft1(src, ao, n_in, Wp, wb, 0, n_in, D, do, ldd, TILE_J, b, bo, relu)


@kernel_jit
def dense_f32_tiled(src, so, Wp, wo, n_in, n_out, nblk, b, bo, dst, do, m, relu, T):
    """y = x @ W + b (then ReLU if relu) for m samples: x (m, n_in) at src[so:], W packed
    (pack_f32) at Wp[wo:], b (n_out,) at b[bo:], y (m, n_out) at dst[do:]; T: float32 scratch of
    (FT_S + 1) * 16 whose last 16 values are 0. Output blocks outer: a block's packed weights
    (16 n_in floats) stay in cache for all m samples. Full blocks of 16 outputs are stored by
    the micro-kernel with bias and ReLU; a last partial block goes through T (zero bias), then
    + b and ReLU here. ReLU as kernels.act_f32: 0 if y < 0 else y (NaN passes)."""
    zb = FT_S * TILE_J  # T[zb:zb + 16]: zeros, the partial block's bias inside the micro-kernel
    ps = n_in * TILE_J
    jb = 0
    while jb < nblk:
        wb = wo + jb * ps
        j0 = jb * TILE_J
        nj = min(TILE_J, n_out - j0)
        if WIDE_F32 and n_out - j0 >= 2 * TILE_J:  # two full blocks: FT_S x 32 tiles (AVX-512)
            s = 0
            while s + FT_S <= m:
                _ft6w(src, so + s * n_in, n_in, Wp, wb, ps, n_in, dst, do + s * n_out + j0, n_out, 2 * TILE_J, b,
                      bo + j0, relu)
                s += FT_S
            if s < m:
                R = m - s
                for h in range(2):
                    _f32_tile_rows(R, src, so + s * n_in, n_in, Wp, wb + h * ps, dst, do + s * n_out + j0 + h * TILE_J,
                                   n_out, b, bo + j0 + h * TILE_J, relu)
            jb += 2
            continue
        s = 0
        while s < m:
            R = min(FT_S, m - s)
            ao = so + s * n_in
            if nj == TILE_J:
                _f32_tile_rows(R, src, ao, n_in, Wp, wb, dst, do + s * n_out + j0, n_out, b, bo + j0, relu)
            else:
                _f32_tile_rows(R, src, ao, n_in, Wp, wb, T, 0, TILE_J, T, zb, False)
                for r in range(R):
                    d = do + (s + r) * n_out + j0
                    for j in range(nj):
                        v = T[TILE_J * r + j] + b[bo + j0 + j]
                        if relu and v < 0.0:
                            v = np.float32(0.0)
                        dst[d + j] = v
            s += R
        jb += 1


WIDE_NB = 4         # blocks of 16 outputs per wide micro-kernel call (8 accumulators)


_fw1, _fw2, _fw4 = (_make_f32_tile(1, q) for q in (1, 2, WIDE_NB))  # one sample, 1/2/4 blocks


@kernel_jit
def _wide_group(q, nblk, n_out, wo, ps):
    """The next call of a wide kernel from block q of nblk: (blocks nb, first output j0, outputs
    to store nc, weight offset wb). 4 blocks while 4 are left, then 2, then 1 (3 blocks: 2 + 1,
    one variant fewer to compile)."""
    left = nblk - q
    nb = 4 if left >= 4 else (2 if left >= 2 else 1)
    j0 = q * TILE_J
    return nb, j0, min(TILE_J * nb, n_out - j0), wo + q * ps


@kernel_jit
def dense_f32_wide(src, so, Wp, wo, n_in, n_out, b, bo, dst, do, m, relu):
    """y = x @ W + b (then ReLU if relu) for m samples, one sample at a time: x (m, n_in) at
    src[so:], W packed (pack_f32) at Wp[wo:], b at b[bo:] zero padded to a multiple of 16
    (pack_bias), y (m, n_out) at dst[do:]. Up to WIDE_NB blocks of 16 outputs per micro-kernel
    call: one broadcast of x[k] feeds 2 WIDE_NB independent FMA chains, with no horizontal sums
    (the dot-product kernel, kernels.dense_f32, ends every output with one). Each output is the
    FMA chain of dense_f32_tiled, so both give the same bits for a sample. A block of m >= FT_S
    samples (the interpreter's MODE_BATCH) takes the batch GEMM's tile of FT_S samples x 16
    outputs for the full blocks, so a block's weights are applied to all m samples from L1 (its
    last m % FT_S samples and the partial block one sample at a time); only that one tile size is
    compiled in, for the first-compile time."""
    nblk = (n_out + TILE_J - 1) // TILE_J
    ps = n_in * TILE_J
    q = 0
    if m >= FT_S:
        q = n_out // TILE_J
        for jb in range(q):
            wb = wo + jb * ps
            j0 = jb * TILE_J
            s = 0
            while s + FT_S <= m:
                _ft6(src, so + s * n_in, n_in, Wp, wb, 0, n_in, dst, do + s * n_out + j0, n_out, TILE_J, b, bo + j0,
                     relu)
                s += FT_S
            while s < m:  # the last m % 6 samples, one block of 16 at a time (the same FMA chains)
                _fw1(src, so + s * n_in, 0, Wp, wb, ps, n_in, dst, do + s * n_out + j0, 0, TILE_J, b, bo + j0, relu)
                s += 1
    while q < nblk:
        nb, j0, nc, wb = _wide_group(q, nblk, n_out, wo, ps)
        for s in range(m):
            ao = so + s * n_in
            d = do + s * n_out + j0
            if nb == 4:
                _fw4(src, ao, 0, Wp, wb, ps, n_in, dst, d, 0, nc, b, bo + j0, relu)
            elif nb == 2:
                _fw2(src, ao, 0, Wp, wb, ps, n_in, dst, d, 0, nc, b, bo + j0, relu)
            else:
                _fw1(src, ao, 0, Wp, wb, ps, n_in, dst, d, 0, nc, b, bo + j0, relu)
        q += nb


def _requant_row(context, builder, signature, args, sums):
    """The epilogue of the one-sample wide int8 kernels (args as theirs: ..., D, do, ncols, bias,
    bias_o, M, mo, y_zp, qmin, qmax): D[do + 8v + l] = requant8(float32(sums[v][l] + bias[bias_o
    + 8v + l]) * M[mo + 8v + l]) for the <8 x i32> sums of 16 NB outputs, stored up to ncols."""
    (_, _, _, _, _, _, dv, doff, ncv, biasv, biasoff, mv, moff, zpv, lov, hiv) = args
    i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
    v8i32 = ir.VectorType(i32, 8)
    v8f = ir.VectorType(ir.FloatType(), 8)
    darr = context.make_array(signature.args[6])(context, builder, dv)
    biasarr = context.make_array(signature.args[9])(context, builder, biasv)
    marr = context.make_array(signature.args[11])(context, builder, mv)

    def splat_f(v):
        e = builder.insert_element(ir.Constant(v8f, ir.Undefined), v, ir.Constant(i32, 0))
        return builder.shuffle_vector(e, e, ir.Constant(v8i32, [0] * 8))
    zp = splat_f(builder.sitofp(zpv, ir.FloatType()))
    lo = splat_f(builder.sitofp(lov, ir.FloatType()))
    hi = splat_f(builder.sitofp(hiv, ir.FloatType()))
    pbias = builder.gep(biasarr.data, [biasoff])
    pm = builder.gep(marr.data, [moff])
    pd = builder.gep(darr.data, [doff])
    nc = context.cast(builder, ncv, signature.args[8], types.int64)
    ys = []
    for v, acc in enumerate(sums):
        off = ir.Constant(i64, 8 * v)
        bvec = builder.load(builder.bitcast(builder.gep(pbias, [off]), v8i32.as_pointer()), align=4)
        mvec = builder.load(builder.bitcast(builder.gep(pm, [off]), v8f.as_pointer()), align=4)
        ys.append(requant8(builder, builder.sitofp(builder.add(acc, bvec), v8f), mvec, zp, lo, hi))
    store_cols(builder, ys, pd, nc, ir.VectorType(i8, 8), 1)


def _make_u8_wide(NB):
    @intrinsic
    def _u8_wide(typingctx, X, xo, n_in, B, bo, ps, D, do, ncols, bias, bias_o, M, mo, y_zp, qmin, qmax):
        """For one sample of int8 codes x = X[xo:xo + n_in]: acc[j] = sum_i (x[i] + 128) * W[i, j]
        over the packed quads (pack_weights) of NB blocks of 16 outputs, ps bytes apart, as the u8
        tile computes it (quad_dot), then D[do + j] = clamp(rint(float32(acc[j] + bias[bias_o + j])
        * M[mo + j]) + y_zp, qmin, qmax) as int8 (requant8) for j < ncols <= 16 NB; bias (the
        shifted bias2) and M readable to 16 NB. x[i] + 128 is x XOR 0x80 on each byte; the last
        quad of an n_in % 4 != 0 layer repeats x[n_in - 1] in its padding (its weights are 0)."""
        sig = types.void(X, xo, n_in, B, bo, ps, D, do, ncols, bias, bias_o, M, mo, y_zp, qmin, qmax)

        def codegen(context, builder, signature, args):
            xv, xoff, nin, bv, boff, psv = args[:6]
            i8, i32 = ir.IntType(8), ir.IntType(32)
            feats = codegen_features(context)
            xarr = context.make_array(signature.args[0])(context, builder, xv)
            barr = context.make_array(signature.args[3])(context, builder, bv)
            px = builder.gep(xarr.data, [xoff])
            pb = builder.gep(barr.data, [boff])
            panels = [builder.gep(pb, [builder.mul(psv, ir.Constant(psv.type, q))]) for q in range(NB)]
            lanes = 16 if wide_i8(feats) else 8  # int32 lanes per accumulator (a zmm on WIDE_I8 targets)
            vi = ir.VectorType(i32, lanes)
            vb = ir.VectorType(i8, 4 * lanes)
            nh = TILE_J // lanes
            accs = [cgutils.alloca_once_value(builder, ir.Constant(vi, [0] * lanes)) for _ in range(nh * NB)]
            flip = ir.Constant(i32, 0x80808080 - (1 << 32))  # x + 128 on each byte

            def step(q, a4):
                splat = builder.insert_element(ir.Constant(vi, ir.Undefined), builder.xor(a4, flip),
                                               ir.Constant(i32, 0))
                a = builder.bitcast(builder.shuffle_vector(splat, splat, ir.Constant(vi, [0] * lanes)), vb)
                wq = builder.mul(q, ir.Constant(q.type, 64))
                for p in range(NB):
                    for h in range(nh):
                        w = builder.load(builder.bitcast(builder.gep(panels[p], [builder.add(wq, ir.Constant(
                            q.type, 4 * lanes * h))]), vb.as_pointer()), align=1)
                        acc = accs[nh * p + h]
                        builder.store(quad_dot(builder, builder.load(acc), a, w, feats), acc)

            nq = builder.sdiv(builder.add(nin, ir.Constant(nin.type, 3)), ir.Constant(nin.type, 4))
            last = builder.sub(nin, ir.Constant(nin.type, 1))
            with cgutils.for_range(builder, nq) as loop:  # one copy of the product step
                q = loop.index
                base = builder.mul(q, ir.Constant(q.type, 4))
                whole = builder.icmp_signed("<=", builder.add(base, ir.Constant(q.type, 4)), nin)
                with builder.if_else(whole, likely=True) as (then, otherwise):
                    with then:
                        a_whole = builder.load(builder.bitcast(builder.gep(px, [base]), i32.as_pointer()), align=1)
                        b_whole = builder.block
                    with otherwise:  # the last quad of n_in % 4 != 0 inputs
                        a_tail = ir.Constant(i32, 0)
                        for t in range(4):
                            idx = builder.add(base, ir.Constant(nin.type, t))
                            idx = builder.select(builder.icmp_signed("<", idx, nin), idx, last)
                            byte = builder.zext(builder.load(builder.gep(px, [idx])), i32)
                            a_tail = builder.or_(a_tail, builder.shl(byte, ir.Constant(i32, 8 * t)))
                        b_tail = builder.block
                a4 = builder.phi(i32)
                a4.add_incoming(a_whole, b_whole)
                a4.add_incoming(a_tail, b_tail)
                step(q, a4)

            sums = [builder.load(a) for a in accs]
            if lanes == 16:
                sums = [h for v in sums for h in halves16(builder, v)]
            _requant_row(context, builder, signature, args, sums)
            return context.get_dummy_value()

        return sig, codegen
    return _u8_wide


_uw1, _uw2, _uw4 = (_make_u8_wide(q) for q in (1, 2, WIDE_NB))


def _make_s16_wide(NB):
    @intrinsic
    def _s16_wide(typingctx, X, xo, n_in, B, bo, ps, D, do, ncols, bias, bias_o, M, mo, y_zp, qmin, qmax):
        """For one sample of int8 codes x = X[xo:xo + n_in]: acc[j] = sum_i x[i] * W[i, j] over
        the packed int16 pairs (pack_pairs) of NB blocks of 16 outputs, ps bytes apart (one
        vpmaddwd per pair and 8 outputs: exact for any int8 x and W), then D[do + j] =
        clamp(rint(float32(acc[j] + bias[bias_o + j]) * M[mo + j]) + y_zp, qmin, qmax) as int8
        (requant8) for j < ncols <= 16 NB; bias (the folded bias) and M readable to 16 NB. The
        last pair of an odd n_in repeats x[n_in - 1] (its weight is 0)."""
        sig = types.void(X, xo, n_in, B, bo, ps, D, do, ncols, bias, bias_o, M, mo, y_zp, qmin, qmax)

        def codegen(context, builder, signature, args):
            xv, xoff, nin, bv, boff, psv = args[:6]
            i16, i32 = ir.IntType(16), ir.IntType(32)
            v8i32 = ir.VectorType(i32, 8)
            v16 = ir.VectorType(i16, 16)
            xarr = context.make_array(signature.args[0])(context, builder, xv)
            barr = context.make_array(signature.args[3])(context, builder, bv)
            px = builder.gep(xarr.data, [xoff])
            pb = builder.gep(barr.data, [boff])
            panels = [builder.gep(pb, [builder.mul(psv, ir.Constant(psv.type, q))]) for q in range(NB)]
            accs = [cgutils.alloca_once_value(builder, ir.Constant(v8i32, [0] * 8)) for _ in range(2 * NB)]
            npr = builder.sdiv(builder.add(nin, ir.Constant(nin.type, 1)), ir.Constant(nin.type, 2))
            last = builder.sub(nin, ir.Constant(nin.type, 1))
            with cgutils.for_range(builder, npr) as loop:
                p = loop.index
                i0 = builder.mul(p, ir.Constant(p.type, 2))
                i1 = builder.add(i0, ir.Constant(p.type, 1))
                i1 = builder.select(builder.icmp_signed("<", i1, nin), i1, last)
                x0 = builder.zext(builder.sext(builder.load(builder.gep(px, [i0])), i16), i32)
                x1 = builder.zext(builder.sext(builder.load(builder.gep(px, [i1])), i16), i32)
                word = builder.or_(x0, builder.shl(x1, ir.Constant(i32, 16)))
                splat = builder.insert_element(ir.Constant(v8i32, ir.Undefined), word, ir.Constant(i32, 0))
                a = builder.bitcast(builder.shuffle_vector(splat, splat, ir.Constant(v8i32, [0] * 8)), v16)
                wp = builder.mul(p, ir.Constant(p.type, 64))
                for q in range(NB):
                    for h in range(2):
                        w = builder.load(builder.bitcast(builder.gep(panels[q], [builder.add(wp, ir.Constant(
                            p.type, 32 * h))]), v16.as_pointer()), align=1)
                        acc = accs[2 * q + h]
                        builder.store(builder.add(builder.load(acc), pair_madd(builder, a, w)), acc)

            _requant_row(context, builder, signature, args, [builder.load(a) for a in accs])
            return context.get_dummy_value()

        return sig, codegen
    return _s16_wide


_sw1, _sw2, _sw4 = (_make_s16_wide(q) for q in (1, 2, WIDE_NB))


@kernel_jit
def qdense_u8_wide(i8, so, Wp, wo, n_in, n_out, bias2, bo, M, mo, do, m, y_zp, qmin, qmax):
    """One QDENSE layer for m samples, one sample at a time: x (m, n_in) int8 at i8[so:] ->
    y (m, n_out) int8 at i8[do:]; W packed (pack_weights) at Wp[wo:]; bias2 (the folded bias
    - 128 sum_i W[i, j]) at bias2[bo:] and M at M[mo:], both zero padded to 16 nblk. Up to
    WIDE_NB blocks of 16 outputs per micro-kernel call; the sums and their requantization are
    qdense_u8s8's (and so kernels.qdense_i8's): the same int8 outputs. Exact under u8s8_exact."""
    _qdense_wide(i8, so, Wp, wo, n_in, n_out, bias2, bo, M, mo, do, m, y_zp, qmin, qmax, False)


@kernel_jit(inline="always")
def _qdense_wide(i8, so, Wp, wo, n_in, n_out, bias, bo, M, mo, do, m, y_zp, qmin, qmax, pairs):
    """qdense_u8_wide (uint8 quads, 64 bytes per quad and block) or, with ``pairs``,
    qdense_s16_wide (int16 pairs, 64 bytes per pair and block): up to WIDE_NB blocks of 16
    outputs per micro-kernel call, sample by sample."""
    ps = ((n_in + 1) // 2 if pairs else (n_in + 3) // 4) * 64
    nblk = (n_out + TILE_J - 1) // TILE_J
    q = 0
    while q < nblk:
        nb, j0, nc, wb = _wide_group(q, nblk, n_out, wo, ps)
        for s in range(m):
            xo = so + s * n_in
            d = do + s * n_out + j0
            if pairs:
                if nb == 4:
                    _sw4(i8, xo, n_in, Wp, wb, ps, i8, d, nc, bias, bo + j0, M, mo + j0, y_zp, qmin, qmax)
                elif nb == 2:
                    _sw2(i8, xo, n_in, Wp, wb, ps, i8, d, nc, bias, bo + j0, M, mo + j0, y_zp, qmin, qmax)
                else:
                    _sw1(i8, xo, n_in, Wp, wb, ps, i8, d, nc, bias, bo + j0, M, mo + j0, y_zp, qmin, qmax)
            elif nb == 4:
                _uw4(i8, xo, n_in, Wp, wb, ps, i8, d, nc, bias, bo + j0, M, mo + j0, y_zp, qmin, qmax)
            elif nb == 2:
                _uw2(i8, xo, n_in, Wp, wb, ps, i8, d, nc, bias, bo + j0, M, mo + j0, y_zp, qmin, qmax)
            else:
                _uw1(i8, xo, n_in, Wp, wb, ps, i8, d, nc, bias, bo + j0, M, mo + j0, y_zp, qmin, qmax)
        q += nb


@kernel_jit
def qdense_s16_wide(i8, so, Wp, wo, n_in, n_out, bias, bo, M, mo, do, m, y_zp, qmin, qmax):
    """One QDENSE layer for m samples, one sample at a time, on packed int16 pairs (pack_pairs,
    bytes at Wp[wo:]): x (m, n_in) int8 at i8[so:] -> y (m, n_out) int8 at i8[do:]; the folded
    bias at bias[bo:] and M at M[mo:], both zero padded to 16 nblk. Up to WIDE_NB blocks of 16
    outputs per micro-kernel call; exact for any int8 weights (the int8 layers whose pair sums
    could saturate vpmaddubsw on AVX2 without VNNI: qdense_u8_wide's packed form for them), the
    same int8 outputs as kernels.qdense_i8."""
    _qdense_wide(i8, so, Wp, wo, n_in, n_out, bias, bo, M, mo, do, m, y_zp, qmin, qmax, True)


def dense_kernel_name(packed: int, int8: bool) -> str:
    """The kernel a DENSE (int8: QDENSE) row runs, in words, with the instruction its product
    step compiles to on this target (rtinfer inspect's kernel column); packed: the row's layout
    (0 W transposed, 1 packed: float32 blocks / uint8 quads, 2 packed int16 pairs)."""
    path = kernel_path_name()
    if int8 and packed == 2:
        return "dense int8, int16 pairs (vpmaddwd), up to 64 outputs per step (packed)"
    if int8 and packed:
        instr = {"VNNI": "vpdpbusd", "AVX2": "vpmaddubsw"}.get(path, "portable")
        return f"dense int8, uint8 quads ({instr}), up to 64 outputs per step (packed)"
    if int8:
        return f"dense int8, int16 pairs ({'vpdpwssd' if path == 'VNNI' else 'vpmaddwd'}), 8 outputs per step (W transposed)"
    if packed:
        return "dense float32 FMA, up to 64 outputs per step (packed)"
    return "dense float32 dot products, 4 outputs per step (W transposed)"


@kernel_jit
def padded_outputs(n_out):
    """n_out rounded up to whole blocks of 16 outputs: the length of a packed layer's bias and
    multipliers (the wide kernels read whole blocks)."""
    return (n_out + TILE_J - 1) // TILE_J * TILE_J


def pack_bias(b: np.ndarray) -> np.ndarray:
    """b (n_out,) (a bias or multipliers, any dtype) zero padded to padded_outputs(n_out)."""
    out = np.zeros(padded_outputs.py_func(b.size), b.dtype)
    out[:b.size] = b
    return out


def shifted_bias(folded: np.ndarray, W: np.ndarray):
    """The int32 bias of a u8 kernel, whose inputs are x + 128: folded[j] - 128 * sum_i W[i, j]
    for W (n_in, n_out) int8; None if it would not fit int32 (the planner's bound 255 * sum|W| +
    |b| <= 2^31 - 1 makes that impossible)."""
    bias2 = folded.astype(np.int64) - 128 * W.astype(np.int64).sum(axis=0)
    if np.abs(bias2).max(initial=0) > np.iinfo(np.int32).max:
        return None
    return bias2.astype(np.int32)


def unpack_f32(Wp: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """The inverse of pack_f32: W (n_in, n_out) float32 from its packed blocks."""
    nblk = -(-n_out // TILE_J)
    W = Wp[:nblk * n_in * TILE_J].reshape(nblk, n_in, TILE_J).transpose(1, 0, 2).reshape(n_in, nblk * TILE_J)
    return np.ascontiguousarray(W[:, :n_out])


def dense_f32_tiled_ref(src, so, Wp, wo, n_in, n_out, nblk, b, bo, dst, do, m, relu, T=None):
    """NumPy twin of dense_f32_tiled: the same FMA chain per output, emulated in float64 with
    one float32 rounding per step (fma(a, b, c) = float32(a * b + c) exactly: a float32
    product is exact in float64)."""
    W = Wp[wo:wo + nblk * n_in * TILE_J].reshape(nblk, n_in, TILE_J).transpose(1, 0, 2)
    W = W.reshape(n_in, nblk * TILE_J)[:, :n_out].astype(np.float64)
    x = src[so:so + m * n_in].reshape(m, n_in).astype(np.float64)
    acc = np.zeros((m, n_out), np.float32)
    for i in range(n_in):
        acc = (x[:, i:i + 1] * W[i] + acc.astype(np.float64)).astype(np.float32)
    y = acc + b[bo:bo + n_out]
    if relu:
        y = np.where(y < 0, np.float32(0.0), y)
    dst[do:do + m * n_out] = y.reshape(-1)


# -- elementwise ---------------------------------------------------------------------------------

@kernel_jit
def dequantize_i8_f32(src, so, dst, do, n, scale, zp):
    """float32 y = float32(x - zp) * float32(scale), as kernels.dequantize_i8_f32 computes it:
    x - zp (both in [-128, 127]) is exact in float32, and this form vectorizes (an int64
    difference does not, on AVX2)."""
    s32 = np.float32(scale)
    z = np.float32(zp)
    x = src[so:so + n]
    y = dst[do:do + n]
    for k in range(n):
        y[k] = (np.float32(x[k]) - z) * s32
