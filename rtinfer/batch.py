"""The batch path of ``Runtime.predict`` (``batch="auto"``, the default): GEMM kernels.

Batches of at least ``AUTO_MIN_BATCH`` samples and ``AUTO_MIN_WORK`` multiply-accumulates (N x
the model's MACs per sample) run in chunks of up to ``CHUNK`` samples. In a chunk, every DENSE
row is one register-tiled float32 GEMM with its bias and activation (kernels_gemm.
dense_f32_tiled; ``dense_gemm="blas"``: NumPy's BLAS, ``np.matmul(A, B, out=C)``, then a
compiled epilogue); every QDENSE row is one exact integer GEMM: the AVX2 u8s8 kernel
(kernels_gemm.qdense_u8s8) where it cannot saturate, else a float32 BLAS product where that is
exact (interp.i8_to_f32, BLAS, interp.qdense_requant), else the exact kernel on the chunk
(bounds below); DEQUANTIZE rows run a vectorizing twin of the interpreter's kernel
(kernels_gemm.dequantize_i8_f32, the same values); every other row runs through the compiled
interpreter (``interp.exec_row``) on the whole chunk. Consecutive rows without a BLAS product run in one compiled call
(``interp.run_segment``), so a model without BLAS rows costs one call per chunk. Smaller batches,
and models with ops outside ``AUTO_OPS`` (convolution, pooling), take the exact path
(``batch="exact"``: blocks of plan.BLOCK through the interpreter).

Layout: a BatchPath owns a private blob = the plan image followed by a tail holding a relocated
copy of the program (every intermediate in a chunk arena of two regions per dtype, each CHUNK x
the largest intermediate of that dtype), so exec_row runs unchanged on CHUNK samples. A tiled
DENSE gets its float32 weights packed (a copy, padded to 16 outputs; BLAS DENSE views the plan's
transposed W, no copy); a u8s8 QDENSE gets its weights packed (int8, padded to 16 outputs
and 4 inputs) and a float32 BLAS QDENSE a float32 copy of its int8 weights (n_out, n_in).
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
from .ops import Op
from .plan import (C_DST, C_DST_KIND, C_NIN, C_NOUT, C_OP, C_SRC, C_SRC_KIND, C_T0, C_T1, K_ARENA,
                   K_IO, NCOLS, Plan)

AUTO_MIN_BATCH = 32   # batches of fewer samples take the exact path
AUTO_MIN_WORK = 2 ** 16  # nor do batches of fewer than this many MACs (samples x model MACs):
                         # there the per-call cost outweighs the GEMMs (bench_batch.py)
CHUNK = 256           # samples per chunk: the chunk arena holds CHUNK samples

# Ops the batch path runs (every op kernel here takes m samples and needs no scratch).
AUTO_OPS = frozenset({Op.DENSE, Op.ACT, Op.AFFINE, Op.SOFTMAX, Op.LOG_SOFTMAX, Op.ARGMAX,
                      Op.QUANTIZE, Op.DEQUANTIZE, Op.QDENSE, Op.QLUT})
_I8_OUT = frozenset({Op.QUANTIZE, Op.QDENSE, Op.QLUT})

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
        path = cls(plan, int8_gemm, dense_gemm)
        return path if path.n_gemm else None

    def __init__(self, plan: Plan, int8_gemm: str = "auto", dense_gemm: str = "tiled"):
        """int8_gemm: "auto" (the AVX2 u8s8 GEMM where available and exact, else float32 BLAS
        where exact, else the exact kernel), "f32" (never u8s8), "none" (the exact kernel for
        every QDENSE). dense_gemm: "tiled" (kernels_gemm.dense_f32_tiled) or "blas" (np.matmul
        and an epilogue). The non-default choices exist for tests and benchmarks."""
        from .runtime import _entry
        interp.warm_up_batch()
        # compiled entry points of the one signature each (X may be read-only: it is only read)
        self._run_segment = _entry(interp.run_segment)
        self._dense_post = _entry(interp.dense_bias_act)
        self._i8_to_f32 = _entry(interp.i8_to_f32)
        self._qdense_post = _entry(interp.qdense_requant)
        self.in_size = plan.in_size
        self.out_size = plan.out_size
        prog = plan.program.copy()
        n_ops = len(prog)
        ops = [Op(int(op)) for op in prog[:, C_OP]]

        # Chunk arena: the largest intermediate (every row's output but the last) per dtype.
        max_f32 = max([int(prog[k, C_NOUT]) for k in range(n_ops - 1) if ops[k] not in _I8_OUT], default=0)
        max_i8 = max([int(prog[k, C_NOUT]) for k in range(n_ops - 1) if ops[k] in _I8_OUT], default=0)
        image = plan.image
        o_prog = _align(image.nbytes)
        o_f32 = _align(o_prog + prog.nbytes)
        reg_f32 = CHUNK * max_f32                       # float32 elements per region
        o_i8 = _align(o_f32 + 2 * reg_f32 * 4)
        reg_i8 = _align(CHUNK * max_i8)                 # int8 elements per region
        total = _align(o_i8 + 2 * reg_i8 + 8)

        def arena(loc):  # element offset of region loc = (dtype, r) in that dtype's blob view
            dtype, r = loc
            return o_f32 // 4 + r * reg_f32 if dtype == "f32" else o_i8 + r * reg_i8

        # Relocate: the first row reads X, the last writes Y, intermediates ping-pong per dtype
        # (a row never writes the region it reads).
        cur = None  # None: the caller's X
        for k in range(n_ops):
            out_dtype = "i8" if ops[k] in _I8_OUT else "f32"
            if k == n_ops - 1:
                dst = None
            else:
                dst = (out_dtype, 1 if cur == (out_dtype, 0) else 0)
            prog[k, C_SRC_KIND] = K_IO if cur is None else K_ARENA
            prog[k, C_SRC] = 0 if cur is None else arena(cur)
            prog[k, C_DST_KIND] = K_IO if dst is None else K_ARENA
            prog[k, C_DST] = 0 if dst is None else arena(dst)
            cur = dst

        blob = np.zeros(total, dtype=np.uint8)
        blob[:image.nbytes] = image
        blob[o_prog:o_prog + prog.nbytes] = prog.reshape(-1).view(np.uint8)
        self.blob = blob
        self.p = o_prog // 8  # the relocated program, in int64 elements
        f32 = blob.view(np.float32)
        i32 = blob.view(np.int32)
        i8 = blob.view(np.int8)
        self.i8 = i8
        use_u8 = int8_gemm == "auto" and u8s8_available()

        def row_off(k):  # int64 offset of row k in the blob
            return self.p + k * NCOLS

        # Row table for interp.run_segment (kind, w_off, nq, nblk, b_off) and the Python steps:
        # segments of rows run in one compiled call, and one step per BLAS row between them.
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
            w0 = int(prog[k, C_T0])
            blas = None
            if ops[k] == Op.DENSE:
                Wt = f32[w0:w0 + n_out * n_in].reshape(n_out, n_in)
                if dense_gemm == "tiled":
                    Wp, nblk = G.pack_f32(Wt.T)
                    tab[k] = (interp.B_DENSE_TILED, foff, 0, nblk, 0)
                    fparts.append(Wp)
                    foff += Wp.size
                    self.row_kinds[k] = "f32-tiled"
                else:
                    src = None if prog[k, C_SRC_KIND] == K_IO else \
                        f32[int(prog[k, C_SRC]):int(prog[k, C_SRC]) + CHUNK * n_in].reshape(CHUNK, n_in)
                    dst = None if prog[k, C_DST_KIND] == K_IO else \
                        f32[int(prog[k, C_DST]):int(prog[k, C_DST]) + CHUNK * n_out].reshape(CHUNK, n_out)
                    blas = (_DENSE, row_off(k), Wt.T, src, dst)
                    self.row_kinds[k] = "f32-blas"
            elif ops[k] == Op.QDENSE:
                Wt = i8[w0:w0 + n_out * n_in].reshape(n_out, n_in)
                bias2 = self._u8_bias(prog[k], Wt, i32) if use_u8 and G.u8s8_exact(Wt.T) else None
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
                    blas = (_QDENSE, row_off(k), np.ascontiguousarray(Wt, dtype=np.float32).T, n_in, n_out)
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
        self.tab = tab
        self.fpack = np.concatenate(fparts) if fparts else np.zeros(1, np.float32)
        self.ipack = np.concatenate(iparts) if iparts else np.zeros(1, np.int8)
        self.bpack = np.concatenate(bparts) if bparts else np.zeros(1, np.int32)

        # BLAS QDENSE buffers: float32 input codes and accumulators, CHUNK samples.
        self.xf = np.zeros(CHUNK * q_in, dtype=np.float32)
        self.acc = np.zeros(CHUNK * q_out, dtype=np.float32)
        # tiled GEMM scratch: u8s8 inputs and int32 sums (CHUNK is a multiple of TILE_S), a
        # float32 tile
        self.a_u8 = np.zeros(max(1, CHUNK * u8_lda), dtype=np.uint8)
        self.c_i32 = np.zeros(max(1, CHUNK * u8_ldc), dtype=np.int32)
        self.tile = np.zeros((G.FT_S + 1) * G.TILE_J, dtype=np.float32)  # last 16: zeros
        final = []
        for step in steps:
            if step[0] == _QDENSE:
                _, r, WfT, n_in, n_out = step
                step = (_QDENSE, r, WfT, self.xf[:CHUNK * n_in].reshape(CHUNK, n_in),
                        self.acc[:CHUNK * n_out].reshape(CHUNK, n_out))
            final.append(step)
        self.steps = tuple(final)
        # float32 chunk output for models whose user-facing output is int64 (ARGMAX last)
        self.ybuf = np.zeros(CHUNK * self.out_size, dtype=np.float32)

    @property
    def nbytes(self) -> int:
        """Bytes this path holds besides the Runtime (blob copy, packed/converted weights, buffers)."""
        extra = sum(s[2].nbytes for s in self.steps if s[0] == _QDENSE)
        return int(self.blob.nbytes + extra + self.fpack.nbytes + self.ipack.nbytes + self.bpack.nbytes
                   + self.xf.nbytes + self.acc.nbytes + self.ybuf.nbytes + self.a_u8.nbytes
                   + self.c_i32.nbytes + self.tile.nbytes)

    @staticmethod
    def _u8_bias(row, Wt, i32):
        """The int32 bias of a u8s8 QDENSE row with the +128 input shift folded in:
        folded[j] - 128 * sum_i W[i, j]; None if it would not fit int32 (the planner's bound
        255 * sum|W| + |b| <= 2^31 - 1 makes that impossible)."""
        n_out = int(row[C_NOUT])
        folded = i32[int(row[C_T1]):int(row[C_T1]) + n_out].astype(np.int64)
        bias2 = folded - 128 * Wt.astype(np.int64).sum(axis=1)
        if np.abs(bias2).max(initial=0) > np.iinfo(np.int32).max:
            return None
        return bias2.astype(np.int32)

    def run(self, X: np.ndarray, Y: np.ndarray, n: int) -> None:
        """X (n * in_size,) float32 -> Y (n * out_size,) float32 or int64; both C-contiguous,
        validated by the Runtime. Runs chunk by chunk, step by step."""
        blob, p = self.blob, self.p
        in_size, out_size = self.in_size, self.out_size
        X2 = X.reshape(n, in_size)
        int_out = Y.dtype != np.float32
        Y2 = Y.reshape(n, out_size)
        ybuf2 = self.ybuf.reshape(CHUNK, out_size)
        run_segment, dense_post = self._run_segment, self._dense_post
        i8_to_f32, qdense_post = self._i8_to_f32, self._qdense_post
        tab, fpack, ipack, bpack = self.tab, self.fpack, self.ipack, self.bpack
        a_u8, c_i32, tile = self.a_u8, self.c_i32, self.tile
        for s in range(0, n, CHUNK):
            c = min(CHUNK, n - s)
            xo = s * in_size
            if int_out:
                Yc, yo, Yc2 = self.ybuf, 0, ybuf2[:c]
            else:
                Yc, yo, Yc2 = Y, s * out_size, Y2[s:s + c]
            for step in self.steps:
                kind = step[0]
                if kind == _SEGMENT:
                    run_segment(blob, p, step[1], step[2], X, xo, Yc, yo, c, tab, fpack, ipack, bpack,
                                a_u8, c_i32, tile)
                elif kind == _DENSE:
                    _, r, WT, src, dst = step
                    np.matmul(X2[s:s + c] if src is None else src[:c], WT,
                              out=Yc2 if dst is None else dst[:c])
                    dense_post(blob, r, Yc, yo, c)
                else:
                    _, r, WfT, xf2, acc2 = step
                    i8_to_f32(blob, r, self.xf, c)
                    np.matmul(xf2[:c], WfT, out=acc2[:c])
                    qdense_post(blob, r, self.acc, c)
            if int_out:
                Y[s * out_size:(s + c) * out_size] = self.ybuf[:c * out_size]
