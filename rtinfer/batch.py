"""The batch path of ``Runtime.predict`` (``batch="auto"``, the default): GEMM kernels.

Batches of at least ``AUTO_MIN_BATCH`` samples and ``AUTO_MIN_WORK`` multiply-accumulates (N x
the model's MACs per sample) run in chunks of up to ``CHUNK`` samples. In a chunk, every DENSE
row is one register-tiled float32 GEMM with its bias and activation (kernels_gemm.
dense_f32_tiled; ``dense_gemm="blas"``: NumPy's BLAS, ``np.matmul(A, B, out=C)``, then a
compiled epilogue); every QDENSE row is one exact integer GEMM: the AVX2 u8s8 kernel
(kernels_gemm.qdense_u8s8) where it cannot saturate, else a float32 BLAS product where that is
exact (interp MODE_I8_TO_F32, BLAS, MODE_QDENSE_POST), else the exact kernel on the chunk
(bounds below); DEQUANTIZE rows run a vectorizing twin of the interpreter's kernel
(kernels_gemm.dequantize_i8_f32, the same values); every other row runs through the compiled
interpreter (``interp.exec_row``) on the whole chunk. Consecutive rows without a BLAS product run in one compiled call
(``interp.execute`` in MODE_SEGMENT), so a model without BLAS rows costs one call per chunk. Smaller batches,
and models with ops outside ``AUTO_OPS`` (convolution, pooling), take the exact path
(``batch="exact"``: blocks of plan.BLOCK through the interpreter).

Layout: a BatchPath owns a private blob = the plan image followed by its row table, packed
weights, GEMM scratch and a chunk arena of CHUNK x the plan's per-sample arena, with the header's
arena bases pointing there (no batch path when that arena would exceed MAX_BLOCK_ARENA_BYTES:
the blocked path runs such models); rows run with arena stride st = CHUNK (rtinfer.plan), so exec_row
runs unchanged on CHUNK samples and every intermediate keeps the planner's lifetime layout. A tiled
DENSE gets its float32 weights packed (a copy, padded to 16 outputs; BLAS DENSE a copy of W
(n_in, n_out)), whichever layout the plan holds them in (Plan.dense_weights); a u8s8 QDENSE gets
its weights packed (int8, padded to 16 outputs and 4 inputs) and a float32 BLAS QDENSE a float32
copy of its int8 weights (n_out, n_in) (Plan.qdense_weights).
Everything is allocated once, when the path is built (on the first qualifying predict); a call
allocates nothing but array views.

Numerics:
- fp32 DENSE (tiled): each output is one FMA chain over the inputs in order, then ``+ b`` in
  float32 and the activation exactly as the compiled kernels. A sample's result does not depend
  on the batch it comes in (tested), but differs from the exact path (predict_one, stream:
  vector partial sums) in the last bits, within 1e-5 relative of the summed magnitudes (tested).
  Use ``batch="exact"`` where bit-identity with predict_one/stream matters. (BLAS DENSE: sgemm's
  own blocking and order, which may also depend on the BLAS build, its threads and the chunk.)
- int8 QDENSE, u8s8 (first choice, x86 AVX2 hosts): sum_i (x[i] + 128) * W[i, j] with
  vpmaddubsw/vpmaddwd, exact when every pair of consecutive weights of an output has
  |W[2p, j]| + |W[2p + 1, j]| <= 128 (no int16 saturation; always true for weights frozen with
  reduce_range=True); the +128 shift is folded into the int32 bias. Bit-identical as below.
- int8 QDENSE, float32 BLAS: sum_i x[i] * W[i, j] over the raw int8 codes (|x| <= 128, the
  input zero point folded into the int32 bias by the planner) in a float32 GEMM is exact in any
  summation order when every partial sum is an integer of magnitude <= 2^24, which
  ``128 * sum_i |W[i, j]| <= 2^24`` for every j guarantees (checked per layer from the actual
  weights; always true for n_in <= 1032). The folded bias is then added in int32 and the sum requantized as
  kernels.qdense_i8 does: bit-identical to the exact path and to rtinfer.reference. A layer
  that fails both bounds runs the exact int8 kernel on the chunk. ``row_kinds`` records the
  strategy of every DENSE/QDENSE row.
"""

from __future__ import annotations

import numpy as np

from . import interp
from . import kernels_gemm as G
from .ops import MAX_BLOCK_ARENA_BYTES, Op
from .plan import (C_DST, C_DST_KIND, C_NIN, C_NOUT, C_OP, C_SRC, C_SRC_KIND, C_T1, H_AF, H_AI, H_POST,
                   H_PROG, H_SEG, K_X, K_Y, NCOLS, Plan, aligned_bytes)

AUTO_MIN_BATCH = 32   # batches of fewer samples take the exact path
AUTO_MIN_WORK = 2 ** 16  # nor do batches of fewer than this many MACs (samples x model MACs):
                         # there the per-call cost outweighs the GEMMs (bench_batch.py)
CHUNK = 256           # samples per chunk: the chunk arena holds CHUNK samples

# Ops the batch path runs (every op kernel here takes m samples and needs no scratch).
AUTO_OPS = frozenset({Op.DENSE, Op.ACT, Op.AFFINE, Op.SOFTMAX, Op.LOG_SOFTMAX, Op.ARGMAX,
                      Op.QUANTIZE, Op.DEQUANTIZE, Op.QDENSE, Op.QLUT, Op.BINARY, Op.CONCAT, Op.SLICE,
                      Op.QBINARY, Op.QCONCAT, Op.QSLICE})

# float32 represents every integer of magnitude <= 2^24 exactly
F32_EXACT_INT = 2 ** 24

_ALIGN = 64

_SEGMENT, _DENSE, _QDENSE = 0, 1, 2
_U8_AVAILABLE = None


def u8s8_available() -> bool:
    """Whether the AVX2 int8 GEMM (rtinfer.kernels_gemm) can run here (checked once)."""
    global _U8_AVAILABLE
    if _U8_AVAILABLE is None:
        _U8_AVAILABLE = G.available()
    return _U8_AVAILABLE


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def qdense_gemm_exact(Wt: np.ndarray) -> bool:
    """True when a float32 GEMM of int8 codes (|x| <= 128) with Wt (n_out, n_in) int8 is exact:
    128 * sum_i |Wt[j, i]| <= 2^24 for every output j (bounds every partial sum in any order)."""
    if Wt.size == 0:
        return True
    return int((128 * np.abs(Wt.astype(np.int64)).sum(axis=1)).max()) <= F32_EXACT_INT


class BatchPath:
    """The chunked GEMM path for one Runtime; build with BatchPath.build(plan) (None if the
    plan has an op outside AUTO_OPS or no DENSE/QDENSE row a GEMM can run)."""

    @classmethod
    def build(cls, plan: Plan, int8_gemm: str = "auto", dense_gemm: str = "tiled"):
        ops = [Op(int(op)) for op in plan.program[:, C_OP]]
        if any(op not in AUTO_OPS for op in ops):
            return None
        if not any(op in (Op.DENSE, Op.QDENSE) for op in ops):
            return None
        if CHUNK * plan.arena_bytes > MAX_BLOCK_ARENA_BYTES:
            return None  # a chunk arena this large: the blocked path runs it in smaller blocks
        path = cls(plan, int8_gemm, dense_gemm)
        return path if path.n_gemm else None

    def __init__(self, plan: Plan, int8_gemm: str = "auto", dense_gemm: str = "tiled"):
        """int8_gemm: "auto" (the AVX2 u8s8 GEMM where available and exact, else float32 BLAS
        where exact, else the exact kernel), "f32" (never u8s8), "none" (the exact kernel for
        every QDENSE). dense_gemm: "tiled" (kernels_gemm.dense_f32_tiled) or "blas" (np.matmul
        and an epilogue). The non-default choices exist for tests and benchmarks."""
        # the interpreter variant with the batch steps ("dense_batch" or "core_batch": AUTO_OPS has
        # no conv/pool row), compiled or loaded on the first batch predict of a process
        self._execute = interp.entry_point(interp.warm_up(interp.variant_for(plan.program[:, C_OP]) + "_batch"))
        self.in_size = plan.in_size
        self.out_size = plan.out_size
        image = plan.image
        prog = plan.program
        n_ops = len(prog)
        ops = [Op(int(op)) for op in prog[:, C_OP]]
        h0 = image.view(np.int64)
        i32_img = image.view(np.int32)
        use_u8 = int8_gemm == "auto" and u8s8_available()

        # Row table (kind, w_off, nq, nblk, b_off) for MODE_SEGMENT, and the steps: segments of
        # rows run in one compiled call, one step per BLAS row between them.
        tab = np.zeros((n_ops, 5), dtype=np.int64)
        fparts, iparts, bparts = [], [], []
        foff = ioff = boff = 0
        steps = []
        self.n_gemm = 0
        self.fallback_rows = []   # QDENSE rows whose bounds fail (exact kernel on the chunk)
        self.row_kinds = {}       # DENSE/QDENSE row -> "f32-tiled" | "f32-blas" | "u8s8" | "exact"
        q_in = q_out = 0
        u8_lda = u8_ldc = 0
        start = 0
        for k in range(n_ops):
            n_in, n_out = int(prog[k, C_NIN]), int(prog[k, C_NOUT])
            blas = None
            if ops[k] == Op.DENSE:
                W, _ = plan.dense_weights(k)  # (n_in, n_out), whichever layout the plan holds
                if dense_gemm == "tiled":
                    Wp, nblk = G.pack_f32(W)
                    tab[k] = (interp.B_DENSE_TILED, foff, 0, nblk, 0)
                    fparts.append(Wp)
                    foff += Wp.size
                    self.row_kinds[k] = "f32-tiled"
                else:
                    blas = (_DENSE, k, W)
                    self.row_kinds[k] = "f32-blas"
            elif ops[k] == Op.QDENSE:
                Wt = plan.qdense_weights(k).T  # (n_out, n_in), whichever layout the plan holds
                bias2 = self._u8_bias(prog[k], Wt, i32_img) if use_u8 and G.u8_quads_exact(Wt.T) else None
                if bias2 is not None:
                    Bp, nq, nblk = G.pack_weights(np.ascontiguousarray(Wt.T))
                    tab[k] = (interp.B_QDENSE_U8, ioff, nq, nblk, boff)
                    iparts.append(Bp)
                    bparts.append(bias2)
                    ioff += Bp.size
                    boff += bias2.size
                    u8_lda, u8_ldc = max(u8_lda, 4 * nq), max(u8_ldc, G.TILE_J * nblk)
                    self.row_kinds[k] = "u8s8"
                elif int8_gemm != "none" and qdense_gemm_exact(Wt):
                    blas = (_QDENSE, k, np.ascontiguousarray(Wt, dtype=np.float32).T, n_in, n_out)
                    q_in, q_out = max(q_in, n_in), max(q_out, n_out)
                    self.row_kinds[k] = "f32-blas"
                else:
                    self.fallback_rows.append(k)
                    self.row_kinds[k] = "exact"
            if ops[k] == Op.DEQUANTIZE:
                tab[k, 0] = interp.B_DEQUANTIZE
            if self.row_kinds.get(k, "exact") != "exact":
                self.n_gemm += 1
            if blas is not None:
                if start < k:
                    steps.append((_SEGMENT, start, k))
                steps.append(blas)
                start = k + 1
        if start < n_ops:
            steps.append((_SEGMENT, start, n_ops))
        fpack = np.concatenate(fparts) if fparts else np.zeros(1, np.float32)
        ipack = np.concatenate(iparts) if iparts else np.zeros(1, np.int8)
        bpack = np.concatenate(bparts) if bparts else np.zeros(1, np.int32)
        n_a = max(1, CHUNK * u8_lda)
        n_c = max(1, CHUNK * u8_ldc)
        n_tile = (G.FT_S + 1) * G.TILE_J  # last 16: zeros

        # The private blob: the image, then table, packed weights, scratch and the chunk arena.
        o_tab = _align(image.nbytes)
        o_fpack = _align(o_tab + tab.nbytes)
        o_ipack = _align(o_fpack + fpack.nbytes)
        o_bpack = _align(o_ipack + ipack.nbytes)
        o_a = _align(o_bpack + bpack.nbytes)
        o_c = _align(o_a + n_a)
        o_tile = _align(o_c + 4 * n_c)
        o_par = _align(o_tile + 4 * n_tile)  # MODE_SEGMENT's and the epilogues' parameters (int64)
        o_af = _align(o_par + 8 * (interp.S_LEN + interp.POST_LEN))
        o_ai = _align(o_af + 4 * CHUNK * plan.arena_f32)
        total = _align(o_ai + CHUNK * plan.arena_i8 + 8)
        blob = aligned_bytes(total)  # 64-byte aligned: the packed weights' 16-float rows in one cache line
        blob[:image.nbytes] = image
        blob[o_tab:o_tab + tab.nbytes] = tab.reshape(-1).view(np.uint8)
        blob[o_fpack:o_fpack + fpack.nbytes] = fpack.view(np.uint8)
        blob[o_ipack:o_ipack + ipack.nbytes] = ipack.view(np.uint8)
        blob[o_bpack:o_bpack + bpack.nbytes] = bpack.view(np.uint8)
        h = blob.view(np.int64)
        h[H_AF] = o_af // 4
        h[H_AI] = o_ai
        h[H_SEG] = o_par // 8
        h[H_POST] = o_par // 8 + interp.S_LEN
        self.blob = blob
        self.tab = tab
        self.fpack, self.ipack, self.bpack = fpack, ipack, bpack
        p = int(h0[H_PROG])
        # MODE_SEGMENT parameters; S_K0, S_K1, S_XO, S_YO, S_M are set per call
        seg = h[h[H_SEG]:h[H_SEG] + interp.S_LEN]  # views of the blob: written here, read by execute
        seg[interp.S_P] = p
        seg[interp.S_ST] = CHUNK
        seg[interp.S_TAB] = o_tab // 8
        seg[interp.S_FPACK] = o_fpack // 4
        seg[interp.S_IPACK] = o_ipack
        seg[interp.S_BPACK] = o_bpack // 4
        seg[interp.S_A], seg[interp.S_A + 1] = o_a, n_a
        seg[interp.S_C], seg[interp.S_C + 1] = o_c // 4, n_c
        seg[interp.S_TILE], seg[interp.S_TILE + 1] = o_tile // 4, n_tile
        self.seg = seg
        self.post = h[h[H_POST]:h[H_POST] + interp.POST_LEN]  # the epilogue modes' parameters

        # BLAS QDENSE buffers: float32 input codes and accumulators, CHUNK samples.
        self.xf = np.zeros(CHUNK * q_in, dtype=np.float32)
        self.acc = np.zeros(CHUNK * q_out, dtype=np.float32)
        f32 = blob.view(np.float32)
        final = []
        for step in steps:
            if step[0] == _DENSE:
                _, k, WT = step
                r = p + k * NCOLS
                n_in, n_out = int(prog[k, C_NIN]), int(prog[k, C_NOUT])

                def view(kind, off, n):
                    if kind in (K_X, K_Y):
                        return None
                    return f32[o_af // 4 + off * CHUNK:o_af // 4 + off * CHUNK + CHUNK * n].reshape(CHUNK, n)
                src = view(int(prog[k, C_SRC_KIND]), int(prog[k, C_SRC]), n_in)
                dst = view(int(prog[k, C_DST_KIND]), int(prog[k, C_DST]), n_out)
                if int(prog[k, C_SRC_KIND]) == K_Y:  # a DENSE reading Y: not produced by the planner
                    raise ValueError("a DENSE row reads the output buffer")
                step = (_DENSE, r, WT, src, dst)
            elif step[0] == _QDENSE:
                _, k, WfT, n_in, n_out = step
                step = (_QDENSE, p + k * NCOLS, WfT, self.xf[:CHUNK * n_in].reshape(CHUNK, n_in),
                        self.acc[:CHUNK * n_out].reshape(CHUNK, n_out))
            final.append(step)
        self.steps = tuple(final)

    @property
    def nbytes(self) -> int:
        """Bytes this path holds besides the Runtime (blob, converted weights, buffers)."""
        extra = sum(s[2].nbytes for s in self.steps if s[0] in (_QDENSE, _DENSE))
        return int(self.blob.nbytes + extra + self.xf.nbytes + self.acc.nbytes)

    @staticmethod
    def _u8_bias(row, Wt, i32):
        """The int32 bias of a u8s8 QDENSE row with the +128 input shift folded in:
        folded[j] - 128 * sum_i W[i, j]; None if it would not fit int32 (the planner's bound
        255 * sum|W| + |b| <= 2^31 - 1 makes that impossible)."""
        n_out = int(row[C_NOUT])
        return G.shifted_bias(i32[int(row[C_T1]):int(row[C_T1]) + n_out], Wt.T)

    def _segment(self, X, Y, k0, k1, xo, yo, c):
        """Program rows k0..k1-1 in one compiled call on c samples from X[xo:] / Y[yo:]."""
        seg = self.seg
        seg[interp.S_K0], seg[interp.S_K1] = k0, k1
        seg[interp.S_XO], seg[interp.S_YO], seg[interp.S_M] = xo, yo, c
        self._execute(self.blob, X, Y, 0, interp.MODE_SEGMENT)

    def segment_rows(self) -> list:
        """The program rows that run inside compiled segments (all but the BLAS steps' rows)."""
        return [k for step in self.steps if step[0] == _SEGMENT for k in range(step[1], step[2])]

    def run_row(self, X: np.ndarray, Y: np.ndarray, n: int, k: int) -> None:
        """Program row k (one of segment_rows()) alone on the first n <= CHUNK samples, its
        inputs as the previous ``run`` left them in the chunk arena: for profiling
        (bench/bench_batch.py --layers), not for results."""
        self._segment(X, Y, k, k + 1, 0, 0, min(n, CHUNK))

    def run(self, X: np.ndarray, Y: np.ndarray, n: int, to_int64: bool = False) -> None:
        """X (n * in_size,) float32 -> Y (n * out_size,) float32 (with to_int64: the caller's
        int64 array viewed as float32, 2 * n * out_size elements, converted in place at the end).
        Both C-contiguous, validated by the Runtime, which holds its lock around this call.
        Runs chunk by chunk, step by step."""
        blob = self.blob
        ex = self._execute
        in_size, out_size = self.in_size, self.out_size
        X2 = X.reshape(n, in_size)
        Y2 = Y[:n * out_size].reshape(n, out_size)
        post = self.post
        for s in range(0, n, CHUNK):
            c = min(CHUNK, n - s)
            xo = s * in_size
            yo = s * out_size
            for step in self.steps:
                kind = step[0]
                if kind == _SEGMENT:
                    self._segment(X, Y, step[1], step[2], xo, yo, c)
                elif kind == _DENSE:
                    _, r, WT, src, dst = step
                    np.matmul(X2[s:s + c] if src is None else src[:c], WT,
                              out=Y2[s:s + c] if dst is None else dst[:c])
                    post[0], post[1], post[2], post[3] = r, yo, c, CHUNK
                    ex(blob, X, Y, 0, interp.MODE_DENSE_POST)
                else:
                    _, r, WfT, xf2, acc2 = step
                    post[0], post[1], post[2] = r, c, CHUNK
                    ex(blob, X, self.xf, 0, interp.MODE_I8_TO_F32)
                    np.matmul(xf2[:c], WfT, out=acc2[:c])
                    ex(blob, self.acc, Y, 0, interp.MODE_QDENSE_POST)
        if to_int64:
            ex(blob, X, Y, n * out_size, interp.MODE_I64)
