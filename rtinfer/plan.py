"""The planner: FrozenModel -> Plan, computed once; all validation happens here.

A Plan is one flat byte image (``Plan.image``, uint8, 64-byte aligned sections) that the
compiled interpreter (rtinfer.interp) reads through dtype views, so a jitted call takes one
array for the whole model:

    section     view      contents
    header      int64     HEADER_LEN slots (see H_* below), two of them scratch for the clock
    program     int64     (n_ops, NCOLS) one row per executed op (columns C_* below)
    fparams     float64   per-op float parameters (activation alpha, beta; quant scales)
    weights     float32   DENSE W and b (plan.dense_packed: blocks of 16 outputs, b padded; else W
                          transposed (n_out, n_in)); AFFINE s, t; QDENSE multipliers M
    weights     int32     QDENSE bias with the input zero point folded in; conv/binary tables
    weights     int8      QDENSE W transposed to (n_out, n_in); QLUT tables (256,)
    arena       float32   BLOCK x ARENA_F32 elements (the float32 activations)
    arena       int8      BLOCK x ARENA_I8 elements (the int8 activations)

Memory. Tensor 0 (the model input) is the caller's X; the model's output is written straight
into the caller's Y when there is one output (several outputs are computed in the arena and
copied into Y, back to back per sample, by CONCAT rows at the end). RESHAPE emits no row: its
output shares its input's storage. Every other tensor gets an arena offset from a lifetime
planner: a tensor lives from the first row that writes it to the last row that reads it, and
tensors alive at the same row never overlap (greedy best fit, largest first, as TensorFlow Lite
Micro's GreedyMemoryPlanner), so the arena is what the live tensors need, not the sum of all.
Offsets are planned per sample; a run of ``st`` samples at a time (1 for one sample, BLOCK for
predict's blocks, rtinfer.batch's CHUNK) scales every arena offset by st, which keeps tensors
that are alive together apart (sample s of a tensor at base + offset * st + s * size).

A row names each operand by kind and offset (C_*_KIND, C_*): K_X (the caller's X, at the
sample's input offset), K_Y (the caller's Y), K_F / K_I (the float32 / int8 arena, at base +
offset * st). Each Runtime works on its own copy of the image (its own arena).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import quant
from .frozen import FrozenModel, Layer
from .ops import (ACT_OPS, CONV_GEOMETRY_ATTRS, MAX_ARENA_BYTES, MAX_MATMUL_WORK, MAX_WINDOW_WORK,
                  WINDOW_OPS, Act, Bin, Op)

# Window geometry values (kernel, stride, dilation, pads) are at most this (int32 tables).
MAX_GEOMETRY = 1 << 24

# Samples processed together by the blocked path (predict, batch="exact"): the arena holds BLOCK,
# or fewer where BLOCK samples' activations would not fit in BLOCK_CACHE_BYTES (CNNs: a conv runs
# sample by sample anyway, so a block only saves dispatch, and a block of activations larger than
# the L2 cache costs more than that saves: ResNet-8's 16-sample arena is 3 MB).
BLOCK = 16
BLOCK_CACHE_BYTES = 1 << 17

# Header slots (int64 view).
H_N_OPS = 0
H_PROG = 1      # int64 element offset of the program
H_NCOLS = 2
H_IN_SIZE = 3
H_OUT_SIZE = 4  # per-sample elements of Y (all outputs, back to back)
H_BLOCK = 5
H_CLOCK = 6     # slots 6 and 7: struct timespec scratch for clock_gettime
H_AF = 8        # float32 arena base (element offset in the float32 view)
H_AI = 9        # int8 arena base (element offset in the int8 view)
H_SEG = 10      # a batch path's blob (rtinfer.batch): int64 offset of its MODE_SEGMENT parameters
H_POST = 11     # ... and of its epilogue modes' parameters (0 in a plan image)
HEADER_LEN = 16

# Program columns.
C_OP = 0
C_ACT = 1
C_SRC_KIND = 2  # K_* of input 0
C_SRC = 3       # offset of input 0 (arena kinds: per-sample arena offset, scaled by st)
C_DST_KIND = 4
C_DST = 5
C_NIN = 6       # per-sample input size
C_NOUT = 7      # per-sample output size
C_T0 = 8        # tensor offsets: W / s / table
C_T1 = 9        # b / t
C_T2 = 10       # M (QDENSE)
C_I0 = 11       # int params: outer | zp | y_zp | the int32 table (conv, binary)
C_I1 = 12       # axis_len | qmin
C_I2 = 13       # inner | qmax
C_FP = 14       # index of this op's float params in the fparams view: alpha, beta, scale
C_LAYER = 15    # index of the FrozenModel layer this row executes (-1: an output copy)
C_SRC2_KIND = 16  # input 1 (BINARY, QBINARY)
C_SRC2 = 17
C_NIN2 = 18
C_I3 = 19       # CONCAT: column offset; SLICE: step
NCOLS = 20

K_F = 0   # float32 arena
K_X = 1   # the caller's X
K_Y = 2   # the caller's Y
K_I = 3   # int8 arena

# Columns the conv/pool planning in rtinfer.kernels_conv fills (see plan_window_row there).
_CONV_COLS = {"OP": C_OP, "T0": C_T0, "T1": C_T1, "T2": C_T2, "I0": C_I0, "I1": C_I1}

_ALIGN = 64


# A float32 DENSE with at least this many outputs is laid out in blocks of 16 outputs (row[C_I0]
# = 1) for kernels_gemm.dense_f32_wide: each x[k] feeds up to 8 vector FMA chains and no output
# ends in a horizontal sum. Narrower layers keep W transposed for kernels.dense_f32's dot
# products, which win there (bench/bench_dense_layout.py, one sample, wide / dot time: 16x32
# 0.40, 64x64 0.71, 128x64 0.88, 640x128 0.88, 784x128 0.98; 16x16 0.76 but 64x16 1.66, 64x10
# 2.05, 640x8 3.42: a 16-output block is one FMA chain pair, latency-bound on long inputs).
DENSE_WIDE_MIN_OUT = 32
QDENSE_WIDE_MIN_OUT = 16  # the same for an int8 QDENSE (see qdense_packed)


def dense_packed(n_out: int) -> bool:
    """Whether the planner packs a float32 DENSE of n_out outputs for dense_f32_wide."""
    return n_out >= DENSE_WIDE_MIN_OUT


def qdense_packed(Wq: np.ndarray) -> bool:
    """Whether the planner packs a QDENSE with int8 weights Wq (n_in, n_out) for
    kernels_gemm.qdense_u8_wide: on CPUs where its u8 x s8 products are fast (kernels_gemm.
    available: AVX2) and exact (u8_quads_exact: any weights on VNNI, else u8s8_exact: no int16 pair
    sum can saturate; weights frozen with reduce_range always pass), from QDENSE_WIDE_MIN_OUT outputs up (bench/bench_dense_layout.py
    --int8, one sample, wide / rows time: 0.39 on 16x32, 0.32 on 64x64, 0.5 on 64x16, 0.6 on
    400x120 and 784x128). Narrower heads stay on the rows kernel: alone the wide one is 0.44-0.67x
    there too, but in the 1-D CNN its 32 -> 6 head measured 130 ns packed against 90 ns (per-op
    in-loop p50; the whole model 1.005x), and 640x8 is 1.23x."""
    from .kernels_gemm import available, u8_quads_exact
    return Wq.shape[1] >= QDENSE_WIDE_MIN_OUT and available() and u8_quads_exact(Wq)


QDENSE_PAIRS_MAX_BYTES = 32 * 1024  # packed int16 pairs up to the size of an L1 data cache (see qdense_pairs)


def qdense_pairs(Wq: np.ndarray) -> bool:
    """Whether the planner packs a QDENSE with int8 weights Wq (n_in, n_out) as int16 pairs for
    kernels_gemm.qdense_s16_wide (row C_I3 = 2): where the packed uint8 quads are not exact
    (AVX2 without VNNI, weights not frozen with reduce_range: vpmaddubsw's pair sums could
    saturate), from QDENSE_WIDE_MIN_OUT outputs up, while the pairs (two bytes a weight) fit
    QDENSE_PAIRS_MAX_BYTES. A vpmaddwd there does as many multiply-adds per instruction as a
    vpmaddubsw + vpmaddwd pair; bench/bench_dense_layout.py --pairs on a Zen 3, one sample,
    pairs / rows time: 0.18 (8x64), 0.42 (16x32), 0.47 (64x64), 0.57 (64x32), 0.60 (120x84, 23 KB
    of pairs), 0.68 (128x64), 0.76 (64x16), 0.92 (128x16); but 1.12-1.24 from 400x120 (100 KB) up,
    where the doubled weight bytes stream from L2."""
    from .kernels_gemm import available, padded_outputs
    n_in, n_out = Wq.shape
    small = -(-n_in // 2) * 4 * padded_outputs.py_func(n_out) <= QDENSE_PAIRS_MAX_BYTES
    return n_out >= QDENSE_WIDE_MIN_OUT and small and available() and not qdense_packed(Wq)


def qdense_sizes(row) -> tuple:
    """(W bytes, bias int32 elements, M float32 elements) a QDENSE row's tensors take in the image."""
    n_in, n_out = int(row[C_NIN]), int(row[C_NOUT])
    if int(row[C_I3]):
        from .kernels_gemm import padded_outputs
        padded = padded_outputs.py_func(n_out)
        if int(row[C_I3]) == 2:  # int16 pairs, the folded bias alone
            return -(-n_in // 2) * 4 * padded, padded, padded
        return -(-n_in // 4) * 4 * padded, 2 * padded, padded
    return n_in * n_out, n_out, n_out


def dense_sizes(row) -> tuple:
    """(W elements, b elements) a float32 DENSE row's tensors take in the image, per layout."""
    n_in, n_out = int(row[C_NIN]), int(row[C_NOUT])
    if int(row[C_I0]):
        from .kernels_gemm import padded_outputs
        padded = padded_outputs.py_func(n_out)
        return n_in * padded, padded
    return n_in * n_out, n_out


class PlanError(ValueError):
    """The model cannot be planned: a layer's tensors or attributes break its op's contract."""


@dataclass(frozen=True)
class TensorSlot:
    """Where one activation tensor lives (for reports and ``rtinfer inspect``)."""
    tensor: int        # 0: the model input; i + 1: layer i's output
    dtype: str         # "f32" | "i8"
    place: str         # "input" (X), "output" (Y), "arena", or "alias of tN" (RESHAPE)
    offset: int        # bytes into its dtype's arena (per sample), -1 outside the arena
    nbytes: int        # bytes per sample
    first: int         # first program row that writes it (-1: the input)
    last: int          # last program row that reads it


def aligned_bytes(nbytes: int) -> np.ndarray:
    """A zeroed uint8 array of nbytes whose data starts on a 64-byte boundary (NumPy's allocator
    only guarantees 16): the memory a plan image or a batch path's blob is copied into, so their
    64-byte aligned sections are aligned in memory."""
    buf = np.zeros(nbytes + _ALIGN, dtype=np.uint8)
    at = (-buf.ctypes.data) % _ALIGN
    return buf[at:at + nbytes]


@dataclass(frozen=True)
class Plan:
    image: np.ndarray            # uint8, the whole plan (see module docstring)
    n_ops: int
    input_shape: tuple
    output_shape: tuple          # the first output's shape
    output_dtype: str            # the first output's dtype, "float32" | "int64"
    in_size: int
    out_size: int                # elements of Y per sample (all outputs)
    arena_bytes: int             # working memory for one sample (both arenas)
    batch_arena_bytes: int       # the arena as allocated, for a block of samples (block_size)
    weight_bytes: int            # packed weights, biases, scales, tables and float params, and scratch
    macs: int
    row_layers: tuple            # FrozenModel layer index executed by each program row (-1: output copy)
    row_labels: tuple            # "i:OP[:name]" per row, for reports
    outputs: tuple = ()          # (shape, dtype, element offset in a sample's Y) per output
    tensors: tuple = ()          # TensorSlot per activation tensor
    tensor_bytes: int = 0        # per sample: the sum of all intermediate tensors (no arena reuse)
    arena_f32: int = 0           # per-sample arena elements, float32
    arena_i8: int = 0            # per-sample arena elements, int8
    work_bytes: int = 0          # of weight_bytes: the convolutions' work regions, one for every layer
    shared_scratch_bytes: int = 0  # scratch not in weight_bytes: convolutions of one geometry share one

    @property
    def block_size(self) -> int:
        """Samples per blocked run (predict, batch="exact"): BLOCK, or fewer for large activations."""
        return int(self.image.view(np.int64)[H_BLOCK])

    @property
    def program(self) -> np.ndarray:
        h = self.image.view(np.int64)
        p = int(h[H_PROG])
        return h[p:p + self.n_ops * NCOLS].reshape(self.n_ops, NCOLS)

    def dense_weights(self, k: int) -> tuple:
        """(W (n_in, n_out), b (n_out,)) float32 copies of the float32 DENSE at program row k,
        whichever layout the planner chose for it."""
        row = self.program[k]
        n_in, n_out = int(row[C_NIN]), int(row[C_NOUT])
        f32 = self.image.view(np.float32)
        w0, b0 = int(row[C_T0]), int(row[C_T1])
        nw, _ = dense_sizes(row)
        if int(row[C_I0]):
            from .kernels_gemm import unpack_f32
            W = unpack_f32(f32[w0:w0 + nw], n_in, n_out)
        else:
            W = f32[w0:w0 + nw].reshape(n_out, n_in).T.copy()
        return W, f32[b0:b0 + n_out].copy()

    def qdense_weights(self, k: int) -> np.ndarray:
        """W (n_in, n_out) int8, a copy, of the QDENSE at program row k, either layout; its
        folded bias (n_out int32) sits at row C_T1 in both."""
        row = self.program[k]
        n_in, n_out = int(row[C_NIN]), int(row[C_NOUT])
        w0 = int(row[C_T0])
        nw, _, _ = qdense_sizes(row)
        Wb = self.image.view(np.int8)[w0:w0 + nw]
        if int(row[C_I3]) == 2:
            from .kernels_gemm import unpack_pairs
            return unpack_pairs(Wb, n_in, n_out)
        if int(row[C_I3]):
            from .kernels_gemm import unpack_weights
            return unpack_weights(Wb, n_in, n_out)
        return Wb.reshape(n_out, n_in).T.copy()

    def new_state(self) -> np.ndarray:
        """A private, writable copy of the image (own arena and clock scratch) whose data starts
        on a 64-byte boundary, so the image's 64-byte aligned sections are aligned in memory and
        a kernel's 16-float rows (conv tiles, scratch copies, the arena) do not straddle cache
        lines (NumPy's allocator only guarantees 16 bytes; measured 3-6% of the in-loop time of
        the benchmark CNNs)."""
        state = aligned_bytes(self.image.nbytes)
        state[:] = self.image
        return state

    def row_kernels(self) -> tuple:
        """Per program row, the kernel path a CONV / QCONV row (kernels_conv.kernel_name) or a
        DENSE / QDENSE row (kernels_gemm.dense_kernel_name) runs, else ""."""
        from .kernels_conv import kernel_name
        from .kernels_gemm import dense_kernel_name
        from .ops import Op

        i32 = self.image.view(np.int32)
        names = []
        for row in self.program:
            op = Op(int(row[C_OP]))
            if op in (Op.CONV, Op.QCONV):
                names.append(kernel_name(i32[int(row[C_I0]):], op == Op.QCONV))
            elif op == Op.DENSE:
                names.append(dense_kernel_name(bool(row[C_I0]), False))
            elif op == Op.QDENSE:
                names.append(dense_kernel_name(int(row[C_I3]), True))
            else:
                names.append("")
        return tuple(names)

    def describe(self) -> str:
        work = f" ({self.work_bytes} B of them work shared by the convolutions)" if self.work_bytes else ""
        if self.shared_scratch_bytes:
            work += f" ({self.shared_scratch_bytes} B less: convolutions of one geometry share their scratch)"
        lines = [f"Plan: {self.n_ops} ops, weights {self.weight_bytes} B{work}, arena {self.arena_bytes} B per sample "
                 f"(all tensors: {self.tensor_bytes} B; {self.batch_arena_bytes} B for blocks of {self.block_size}), "
                 f"{self.macs} MACs"]
        for label in self.row_labels:
            lines.append(f"  {label}")
        return "\n".join(lines)

    def memory_table(self) -> str:
        """Each tensor's place, offset, size and lifetime (program rows), one line each."""
        lines = [f"{'tensor':>7} {'dtype':>5} {'place':<12} {'offset':>9} {'bytes':>9} {'rows':>11}"]
        for t in self.tensors:
            off = "-" if t.offset < 0 else str(t.offset)
            life = "-" if t.first == -1 and t.last == -1 else f"{t.first}..{t.last}"
            lines.append(f"{'t' + str(t.tensor):>7} {t.dtype:>5} {t.place:<12} {off:>9} {t.nbytes:>9} {life:>11}")
        lines.append(f"arena {self.arena_bytes} B per sample (float32 {4 * self.arena_f32} B, int8 {self.arena_i8} B); "
                     f"all intermediate tensors {self.tensor_bytes} B")
        return "\n".join(lines)


def plan_arena(items, align: int) -> tuple[dict, int]:
    """Greedy best-fit offsets for tensors with lifetimes.

    items: (key, size, first, last) with size in elements and [first, last] the program rows
    the tensor is alive in (closed: a row's inputs and output are alive together). Largest
    first (ties: earlier first); each goes into the smallest gap, among the tensors placed so
    far that are alive at the same time, that holds it (ties: the lowest offset), else above
    them all. Sizes round up to ``align`` elements. Returns ({key: offset}, total elements)."""
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    offsets = {}
    order = sorted(items, key=lambda it: (-it[1], it[2], str(it[0])))
    total = 0
    for key, size, first, last in order:
        size = (int(size) + align - 1) // align * align
        busy = sorted((o, sz) for o, sz, f, l in placed if f <= last and first <= l)
        best, best_gap, cursor = None, None, 0
        for o, sz in busy:
            gap = o - cursor
            if gap >= size and (best_gap is None or gap < best_gap):
                best, best_gap = cursor, gap
            cursor = max(cursor, o + sz)
        if best is None:
            best = cursor
        offsets[key] = best
        placed.append((best, size, first, last))
        total = max(total, best + size)
    return offsets, total


def _attr(layer: Layer, where: str, key: str, default=None) -> float:
    if key in layer.attrs:
        val = float(layer.attrs[key])
    elif default is not None:
        val = float(default)
    else:
        raise PlanError(f"{where}: missing attribute {key!r}")
    if not math.isfinite(val):
        raise PlanError(f"{where}: attribute {key!r} must be finite, got {val}")
    return val


def _int_attr(layer: Layer, where: str, key: str, default=None, lo=None, hi=None) -> int:
    val = _attr(layer, where, key, default)
    if val != int(val):
        raise PlanError(f"{where}: attribute {key!r} must be an integer, got {val}")
    val = int(val)
    if (lo is not None and val < lo) or (hi is not None and val > hi):
        raise PlanError(f"{where}: attribute {key!r} = {val} outside [{lo}, {hi}]")
    return val


def _scale(layer: Layer, where: str, key: str) -> float:
    val = _attr(layer, where, key)
    if not val > 0.0 or not math.isfinite(float(np.float32(val))) or float(np.float32(val)) == 0.0:
        raise PlanError(f"{where}: {key} must be a positive float32, got {val}")
    return val


def _tensor(frozen: FrozenModel, layer: Layer, where: str, name: str, dtype: str, shape: tuple,
            exact: bool = False) -> np.ndarray:
    """The layer's tensor `name` as `shape`; its size must match (its declared shape too if exact)."""
    if name not in layer.tensors:
        raise PlanError(f"{where}: missing tensor {name!r} (has {sorted(layer.tensors)})")
    ref = layer.tensors[name]
    if ref.buffer != dtype:
        raise PlanError(f"{where}: tensor {name!r} must be in buffer {dtype!r}, is in {ref.buffer!r}")
    if ref.size != math.prod(shape) or (exact and tuple(ref.shape) != tuple(shape)):
        raise PlanError(f"{where}: tensor {name!r} has shape {ref.shape}, expected {shape}")
    return frozen.tensor(layer, name).reshape(shape)


class _Sections:
    """Collects arrays per dtype section with 64-byte alignment inside each section (scratch that
    ops may share is added once, ``add_shared``), and the section's work region: one for every
    op whose work holds nothing between calls (kernels_conv, Work), as large as the largest,
    laid out after the arrays (``arrays``)."""

    def __init__(self):
        self.parts = {"f32": [], "i32": [], "i8": []}
        self.sizes = {"f32": 0, "i32": 0, "i8": 0}
        self.dtypes = {"f32": np.float32, "i32": np.int32, "i8": np.int8}
        self.work_size = {"f32": 0, "i32": 0, "i8": 0}
        self.work_slots: list[tuple[str, int, int]] = []
        self.shared: dict[tuple, int] = {}
        self.shared_bytes = 0  # what add_shared did not add again

    def add(self, key: str, arr: np.ndarray) -> int:
        """Append arr; returns its element offset inside the section."""
        dt = self.dtypes[key]
        per = _ALIGN // np.dtype(dt).itemsize
        pad = (-self.sizes[key]) % per
        if pad:
            self.parts[key].append(np.zeros(pad, dt))
            self.sizes[key] += pad
        off = self.sizes[key]
        a = np.ascontiguousarray(arr, dtype=dt).reshape(-1)
        self.parts[key].append(a)
        self.sizes[key] += a.size
        return off

    def add_shared(self, key: str, arr: np.ndarray, sig: bytes) -> int:
        """Append arr, or return the offset of an earlier array of section key added here with
        the same signature ``sig`` and the same bytes: scratch that two ops may share (the
        caller's sig says their kernels write the same elements of it and read the rest as
        left; kernels_conv, Scratch)."""
        a = np.ascontiguousarray(arr, dtype=self.dtypes[key]).reshape(-1)
        k = (key, sig, a.tobytes())
        if k not in self.shared:
            self.shared[k] = self.add(key, a)
        else:
            self.shared_bytes += a.nbytes
        return self.shared[k]

    def work(self, key: str, n: int, slot: int, base: int) -> None:
        """n elements of section key's work region for one op: ``arrays`` writes the region's
        offset less ``base`` into int32 element ``slot`` (an op's table slot)."""
        self.work_size[key] = max(self.work_size[key], int(n))
        self.work_slots.append((key, int(slot), int(base)))

    def array(self, key: str) -> np.ndarray:
        dt = self.dtypes[key]
        return np.concatenate(self.parts[key]) if self.parts[key] else np.zeros(0, dt)

    def arrays(self) -> tuple[dict, int]:
        """({key: section array}, work bytes): the work regions appended (zeros) and their
        offsets written into the slots ``work`` named."""
        at = {k: self.add(k, np.zeros(n, self.dtypes[k])) for k, n in self.work_size.items() if n}
        out = {k: self.array(k) for k in self.parts}
        for key, slot, base in self.work_slots:
            out["i32"][slot] = at[key] - base
        return out, sum(n * np.dtype(self.dtypes[k]).itemsize for k, n in self.work_size.items())


def _act_params(layer: Layer, where: str) -> tuple[float, float]:
    alpha, beta = layer.act_params()
    if layer.act == Act.CLIP:
        if math.isnan(alpha) or math.isnan(beta) or alpha > beta:
            raise PlanError(f"{where}: CLIP needs alpha (lower) <= beta (upper), got {alpha}, {beta}")
    elif not (math.isfinite(alpha) and math.isfinite(beta)):
        raise PlanError(f"{where}: activation parameters must be finite, got alpha={alpha}, beta={beta}")
    return alpha, beta


def _axis_attrs(layer: Layer, where: str) -> tuple[int, int, int]:
    outer = _int_attr(layer, where, "outer", 1, lo=1)
    axis_len = _int_attr(layer, where, "axis_len", layer.in_size, lo=1)
    inner = _int_attr(layer, where, "inner", 1, lo=1)
    if outer * axis_len * inner != layer.in_size:
        raise PlanError(f"{where}: outer*axis_len*inner = {outer}*{axis_len}*{inner} != input size {layer.in_size}")
    return outer, axis_len, inner


def _binary_row(frozen: FrozenModel, layer: Layer, where: str, sec: "_Sections", row: list) -> None:
    from .kernels_graph import BroadcastError, binary_table
    a_shape = frozen.tensor_shape(layer.inputs[0])
    b_shape = frozen.tensor_shape(layer.inputs[1])
    fn = _int_attr(layer, where, "fn", lo=0, hi=len(Bin) - 1)
    kw = {}
    if layer.op == Op.QBINARY:
        if fn == Bin.DIV:
            raise PlanError(f"{where}: QBINARY does not take fn DIV")
        for key in ("a_scale", "b_scale", "y_scale"):
            _scale(layer, where, key)
        kw = {"a_zp": _int_attr(layer, where, "a_zp", lo=quant.QMIN, hi=quant.QMAX),
              "b_zp": _int_attr(layer, where, "b_zp", lo=quant.QMIN, hi=quant.QMAX),
              "y_zp": _int_attr(layer, where, "y_zp", lo=quant.QMIN, hi=quant.QMAX),
              "qmin": _int_attr(layer, where, "qmin", quant.QMIN, lo=quant.QMIN, hi=quant.QMAX),
              "qmax": _int_attr(layer, where, "qmax", quant.QMAX, lo=quant.QMIN, hi=quant.QMAX)}
        if kw["qmin"] > kw["qmax"]:
            raise PlanError(f"{where}: qmin {kw['qmin']} > qmax {kw['qmax']}")
    try:
        table, out = binary_table(a_shape, b_shape, fn, **kw)
    except BroadcastError as exc:
        raise PlanError(f"{where}: {exc}") from None
    if tuple(out) != layer.out_shape:
        raise PlanError(f"{where}: out_shape {layer.out_shape} is not the broadcast shape {out} of the "
                        f"inputs {a_shape} and {b_shape}")
    row[C_I0] = sec.add("i32", table)


def _slice_row(layer: Layer, where: str, row: list) -> None:
    shape = layer.in_shape
    axis = _int_attr(layer, where, "axis", lo=0, hi=max(len(shape) - 1, 0))
    if not shape or len(layer.out_shape) != len(shape) or any(
            layer.out_shape[k] != shape[k] for k in range(len(shape)) if k != axis):
        raise PlanError(f"{where}: out_shape {layer.out_shape} must equal in_shape {shape} except on axis {axis}")
    n = shape[axis]
    count = layer.out_shape[axis]
    start = _int_attr(layer, where, "start", 0, lo=0, hi=n - 1)
    step = _int_attr(layer, where, "step", 1, lo=-n, hi=n)
    last = start + (count - 1) * step
    if step == 0 or not 0 <= last < n:
        raise PlanError(f"{where}: slice start {start}, step {step}, count {count} leaves the axis of length {n}")
    row[C_I0] = math.prod(shape[:axis])
    row[C_I1] = n
    row[C_I2] = math.prod(shape[axis + 1:])
    row[C_T0] = start
    row[C_I3] = step


def _matmul_row(frozen: FrozenModel, layer: Layer, where: str, row: list) -> None:
    """MATMUL: I0..I3 = groups, m, k, n; T0 / T1 = a's / b's elements between groups (0: one
    matrix for every group); NIN2 = b's size."""
    g = _int_attr(layer, where, "groups", 1, lo=1)
    m, k, n = (_int_attr(layer, where, key, lo=1) for key in ("m", "k", "n"))
    ga = _int_attr(layer, where, "a_groups", g, lo=1)
    gb = _int_attr(layer, where, "b_groups", g, lo=1)
    if ga not in (1, g) or gb not in (1, g):
        raise PlanError(f"{where}: a_groups {ga} and b_groups {gb} must each be groups ({g}) or 1")
    n_a, n_b = layer.in_size, math.prod(frozen.tensor_shape(layer.inputs[1]))
    if n_a != ga * m * k or n_b != gb * k * n or layer.out_size != g * m * n:
        raise PlanError(f"{where}: sizes {n_a} @ {n_b} -> {layer.out_size} do not match ({ga}, {m}, {k}) @ "
                        f"({gb}, {k}, {n}) -> ({g}, {m}, {n})")
    if g * m * k * n > MAX_MATMUL_WORK:
        raise PlanError(f"{where}: ({g}, {m}, {k}) @ ({gb}, {k}, {n}) is {g * m * k * n} multiply-adds per sample, "
                        f"above the limit {MAX_MATMUL_WORK}")
    row[C_I0], row[C_I1], row[C_I2], row[C_I3] = g, m, k, n
    row[C_T0] = m * k if ga > 1 else 0
    row[C_T1] = k * n if gb > 1 else 0
    row[C_NIN2] = n_b


def _concat_rows(frozen: FrozenModel, layer: Layer, where: str, base: list) -> list:
    """One CONCAT row per input: copy input k's blocks into its columns of the output."""
    out = layer.out_shape
    axis = _int_attr(layer, where, "axis", lo=0, hi=max(len(out) - 1, 0))
    shapes = [frozen.tensor_shape(t) for t in layer.inputs]
    total = 0
    for k, shp in enumerate(shapes):
        if len(shp) != len(out) or any(shp[d] != out[d] for d in range(len(out)) if d != axis):
            raise PlanError(f"{where}: input {k} has shape {shp}; CONCAT on axis {axis} needs {out} except on that axis")
        total += shp[axis]
    if not out or total != out[axis]:
        raise PlanError(f"{where}: the inputs' lengths on axis {axis} sum to {total}, out_shape says {out}")
    inner = math.prod(out[axis + 1:])
    outer = math.prod(out[:axis])
    rows, col = [], 0
    for k, shp in enumerate(shapes):
        row = list(base)
        row[C_NIN] = math.prod(shp)
        row[C_I0] = outer
        row[C_I1] = shp[axis] * inner     # chunk
        row[C_I2] = out[axis] * inner     # dst stride
        row[C_I3] = col
        col += shp[axis] * inner
        rows.append((row, k))
    return rows


def _layer_row(frozen: FrozenModel, li: int, layer: Layer, sec: "_Sections", fparams: list) -> list:
    """The program row(s) of one layer, as (row, input index) pairs; offsets section-relative."""
    where = f"layer {li} ({layer.op.name}{' ' + layer.name if layer.name else ''})"
    op = layer.op
    n_in, n_out = layer.in_size, layer.out_size
    row = [0] * NCOLS
    row[C_OP] = int(op)
    row[C_ACT] = int(layer.act)
    row[C_NIN] = n_in
    row[C_NOUT] = n_out
    row[C_LAYER] = li
    alpha, beta = _act_params(layer, where)
    scale = 0.0
    if op in (Op.ACT, Op.AFFINE, Op.QUANTIZE, Op.DEQUANTIZE, Op.QLUT) and n_in != n_out:
        raise PlanError(f"{where}: elementwise op needs in size == out size, got {n_in} -> {n_out}")
    if op not in ACT_OPS and layer.act != Act.IDENTITY:
        raise PlanError(f"{where}: {op.name} takes no activation, got {layer.act.name}")
    if op in (Op.BINARY, Op.QBINARY, Op.CONCAT, Op.QCONCAT) and layer.in_shape != frozen.tensor_shape(layer.inputs[0]):
        raise PlanError(f"{where}: in_shape {layer.in_shape} must be input tensor {layer.inputs[0]}'s shape "
                        f"{frozen.tensor_shape(layer.inputs[0])}")

    if op == Op.DENSE:
        W = _tensor(frozen, layer, where, "W", "f32", (n_in, n_out), exact=True)
        b = _tensor(frozen, layer, where, "b", "f32", (n_out,))
        if dense_packed(n_out):  # blocks of 16 outputs for kernels_gemm.dense_f32_wide
            from .kernels_gemm import pack_bias, pack_f32
            row[C_I0] = 1
            row[C_T0] = sec.add("f32", pack_f32(W)[0])
            row[C_T1] = sec.add("f32", pack_bias(b))
        else:  # W transposed, (n_out, n_in), for the dot products of kernels.dense_f32
            row[C_T0] = sec.add("f32", np.ascontiguousarray(W.T))
            row[C_T1] = sec.add("f32", b)
    elif op == Op.ACT:
        pass
    elif op == Op.AFFINE:
        row[C_T0] = sec.add("f32", _tensor(frozen, layer, where, "s", "f32", (n_in,)))
        row[C_T1] = sec.add("f32", _tensor(frozen, layer, where, "t", "f32", (n_in,)))
    elif op in (Op.SOFTMAX, Op.LOG_SOFTMAX):
        if n_in != n_out:
            raise PlanError(f"{where}: {op.name} needs in size == out size, got {n_in} -> {n_out}")
        row[C_I0], row[C_I1], row[C_I2] = _axis_attrs(layer, where)
    elif op == Op.ARGMAX:
        outer, axis_len, inner = _axis_attrs(layer, where)
        if n_out != outer * inner:
            raise PlanError(f"{where}: ARGMAX output size must be outer*inner = {outer * inner}, got {n_out}")
        row[C_I0], row[C_I1], row[C_I2] = outer, axis_len, inner
        row[C_I3] = _int_attr(layer, where, "select_last", 0, lo=0, hi=1)
    elif op == Op.QUANTIZE:
        scale = _scale(layer, where, "y_scale")
        row[C_I0] = _int_attr(layer, where, "y_zp", lo=quant.QMIN, hi=quant.QMAX)
    elif op == Op.DEQUANTIZE:
        scale = _scale(layer, where, "x_scale")
        row[C_I0] = _int_attr(layer, where, "x_zp", lo=quant.QMIN, hi=quant.QMAX)
    elif op == Op.QDENSE:
        Wq = _tensor(frozen, layer, where, "W", "i8", (n_in, n_out), exact=True)
        bq = _tensor(frozen, layer, where, "b", "i32", (n_out,))
        w_scale = _tensor(frozen, layer, where, "w_scale", "f32", (n_out,))
        x_scale = _scale(layer, where, "x_scale")
        y_scale = _scale(layer, where, "y_scale")
        x_zp = _int_attr(layer, where, "x_zp", lo=quant.QMIN, hi=quant.QMAX)
        y_zp = _int_attr(layer, where, "y_zp", lo=quant.QMIN, hi=quant.QMAX)
        qmin = _int_attr(layer, where, "qmin", quant.QMIN, lo=quant.QMIN, hi=quant.QMAX)
        qmax = _int_attr(layer, where, "qmax", quant.QMAX, lo=quant.QMIN, hi=quant.QMAX)
        if qmin > qmax:
            raise PlanError(f"{where}: qmin {qmin} > qmax {qmax}")
        if not np.all(np.isfinite(w_scale)) or np.any(w_scale <= 0):
            raise PlanError(f"{where}: w_scale must be positive and finite")
        W64 = Wq.astype(np.int64)
        # |acc| <= 255 * sum|W[:, j]| + |b[j]| must fit int32 so the wrapping int32 kernel is exact
        bound = 255 * np.abs(W64).sum(axis=0) + np.abs(bq.astype(np.int64))
        if np.any(bound > np.iinfo(np.int32).max):
            raise PlanError(f"{where}: the int32 accumulator could overflow (worst case {int(bound.max())})")
        folded = bq.astype(np.int64) - x_zp * W64.sum(axis=0)
        M = quant.requant_multiplier(x_scale, w_scale, y_scale)
        if not np.all(np.isfinite(M)):
            raise PlanError(f"{where}: requantization multiplier is not finite")
        bias2 = None
        if qdense_packed(Wq):
            from .kernels_gemm import pack_bias, pack_weights, shifted_bias
            bias2 = shifted_bias(folded, Wq)  # the u8 kernel's bias: + 128 on every input
        if bias2 is not None:
            # packed quads for kernels_gemm.qdense_u8_wide (row C_I3 = 1): the folded bias (for the
            # batch path) then the shifted one, each padded to whole blocks as M is
            row[C_I3] = 1
            row[C_T0] = sec.add("i8", pack_weights(Wq)[0])
            row[C_T1] = sec.add("i32", np.concatenate([pack_bias(folded.astype(np.int32)), pack_bias(bias2)]))
            row[C_T2] = sec.add("f32", pack_bias(M.astype(np.float32)))
        elif qdense_pairs(Wq):  # packed int16 pairs for kernels_gemm.qdense_s16_wide (row C_I3 = 2)
            from .kernels_gemm import pack_bias, pack_pairs
            row[C_I3] = 2
            row[C_T0] = sec.add("i8", pack_pairs(Wq))
            row[C_T1] = sec.add("i32", pack_bias(folded.astype(np.int32)))
            row[C_T2] = sec.add("f32", pack_bias(M.astype(np.float32)))
        else:  # W transposed, (n_out, n_in), for kernels.qdense_i8's dot products
            row[C_T0] = sec.add("i8", np.ascontiguousarray(Wq.T))
            row[C_T1] = sec.add("i32", folded.astype(np.int32))
            row[C_T2] = sec.add("f32", M)
        row[C_I0] = y_zp
        row[C_I1] = qmin
        row[C_I2] = qmax
    elif op == Op.QLUT:
        row[C_T0] = sec.add("i8", _tensor(frozen, layer, where, "table", "i8", (256,)))
    elif op in (Op.BINARY, Op.QBINARY):
        _binary_row(frozen, layer, where, sec, row)
        row[C_NIN2] = math.prod(frozen.tensor_shape(layer.inputs[1]))
        if op == Op.QBINARY:
            ma, mb = quant.qbinary_multipliers(layer.attrs["fn"], layer.attrs["a_scale"], layer.attrs["b_scale"],
                                               layer.attrs["y_scale"])
            if not (np.isfinite(ma) and np.isfinite(mb)):
                raise PlanError(f"{where}: requantization multipliers are not finite")
            alpha, beta = float(ma), float(mb)
    elif op in (Op.SLICE, Op.QSLICE):
        _slice_row(layer, where, row)
    elif op in (Op.GATHER, Op.QGATHER):
        index = _tensor(frozen, layer, where, "index", "i32", (n_out,)).astype(np.int64)
        if index.size and (index.min() < -1 or index.max() >= n_in):
            raise PlanError(f"{where}: index values must be -1 or in [0, {n_in}), got [{index.min()}, {index.max()}]")
        row[C_T0] = sec.add("i32", index.astype(np.int32))
        if op == Op.GATHER:
            scale = float(layer.attrs.get("fill", 0.0))
            if math.isnan(scale):
                raise PlanError(f"{where}: fill is NaN")
        else:
            row[C_I1] = _int_attr(layer, where, "fill", 0, lo=quant.QMIN, hi=quant.QMAX)
    elif op == Op.LAYERNORM:
        outer = _int_attr(layer, where, "outer", 1, lo=1)
        axis_len = _int_attr(layer, where, "axis_len", lo=1)
        if outer * axis_len != n_in or n_in != n_out:
            raise PlanError(f"{where}: outer*axis_len = {outer}*{axis_len} must be the input size {n_in} (= output size)")
        scale = _attr(layer, where, "epsilon")
        if not scale > 0:
            raise PlanError(f"{where}: epsilon must be positive, got {scale}")
        row[C_T0] = sec.add("f32", _tensor(frozen, layer, where, "scale", "f32", (axis_len,)))
        row[C_T1] = sec.add("f32", _tensor(frozen, layer, where, "bias", "f32", (axis_len,)))
        row[C_I0], row[C_I1] = outer, axis_len
    elif op == Op.CONST:
        row[C_T0] = sec.add("f32", _tensor(frozen, layer, where, "value", "f32", layer.out_shape))
    elif op == Op.MATMUL:
        _matmul_row(frozen, layer, where, row)
    elif op == Op.DYNQUANT:
        mode = _int_attr(layer, where, "mode", 0, lo=0, hi=1)
        want = 1 if mode == 1 else n_in
        if n_out != want:
            raise PlanError(f"{where}: DYNQUANT mode {mode} writes {want} element(s) per sample, out_shape "
                            f"{layer.out_shape} holds {n_out}")
        row[C_I0] = mode
    elif op in (Op.CONCAT, Op.QCONCAT):
        row[C_FP] = len(fparams)
        fparams.extend([alpha, beta, scale])
        return _concat_rows(frozen, layer, where, row)
    elif op in WINDOW_OPS or op == Op.GLOBAL_AVGPOOL:  # convolution and pooling
        if op in WINDOW_OPS:  # bounded before any table or scratch is sized from the geometry
            for key in CONV_GEOMETRY_ATTRS + ("group", "count_include_pad"):
                if key in layer.attrs:
                    _int_attr(layer, where, key, lo=0, hi=MAX_GEOMETRY)
            for key in ("x_zp", "y_zp", "qmin", "qmax"):  # finite integers before int() meets them
                if key in layer.attrs:
                    _int_attr(layer, where, key, lo=quant.QMIN, hi=quant.QMAX)
            k = _int_attr(layer, where, "kernel_h", 1, lo=1) * _int_attr(layer, where, "kernel_w", 1, lo=1)
            if k * n_out > MAX_WINDOW_WORK:
                raise PlanError(f"{where}: {n_out} outputs x a {k}-element window is {k * n_out} window reads per "
                                f"sample, above the limit {MAX_WINDOW_WORK}")
        from .kernels_conv import plan_window_row
        scale = plan_window_row(frozen, layer, where, sec, row, _CONV_COLS, PlanError)
    else:  # pragma: no cover - Op is a closed enum
        raise PlanError(f"{where}: unsupported op {op!r}")
    row[C_FP] = len(fparams)
    fparams.extend([alpha, beta, scale])
    return [(row, None)]


def _warn_nonfinite(frozen: FrozenModel) -> None:
    """A RuntimeWarning naming the first layer whose float32 tensors hold NaN or infinity (the
    model then computes non-finite outputs; rtinfer runs it as stored)."""
    import warnings
    f32 = frozen.buffers["f32"]
    if f32.size and np.isfinite(f32).all():
        return
    for i, layer in enumerate(frozen.layers):
        for name, ref in layer.tensors.items():
            if ref.buffer == "f32" and not np.isfinite(frozen.tensor(layer, name)).all():
                bad = int((~np.isfinite(frozen.tensor(layer, name))).sum())
                warnings.warn(f"layer {i} ({layer.op.name}{' ' + layer.name if layer.name else ''}): tensor {name!r} "
                              f"holds {bad} NaN or infinite values; the model's outputs will not be finite",
                              RuntimeWarning, stacklevel=3)
                return


def build_plan(frozen: FrozenModel) -> Plan:
    """Validate every layer against its op's contract, plan the arena and lay out the image."""
    if not isinstance(frozen, FrozenModel):
        raise PlanError(f"build_plan expects a FrozenModel, got {type(frozen).__name__}")
    frozen.validate()
    _warn_nonfinite(frozen)
    sec = _Sections()
    fparams: list[float] = []
    layers = frozen.layers
    n_t = len(layers) + 1

    # storage: RESHAPE outputs share their input's storage
    root = list(range(n_t))
    for li, layer in enumerate(layers):
        if layer.op == Op.RESHAPE:
            if layer.in_size != layer.out_size:
                raise PlanError(f"layer {li} (RESHAPE): must keep the size, got {layer.in_size} -> {layer.out_size}")
            root[li + 1] = root[layer.inputs[0]]

    # rows: (row, reads (tensor ids), writes (tensor id)), in layer order
    rows: list[list[int]] = []
    reads: list[tuple] = []
    writes: list[int] = []
    labels: list[str] = []
    for li, layer in enumerate(layers):
        if layer.op == Op.RESHAPE:
            continue
        label = f"{li}:{layer.op.name}" + (f":{layer.act.name}" if layer.act != Act.IDENTITY else "") \
            + (f":{layer.name}" if layer.name else "")
        for row, k in _layer_row(frozen, li, layer, sec, fparams):
            rows.append(row)
            reads.append(tuple(layer.inputs) if k is None else (layer.inputs[k],))
            writes.append(li + 1)
            labels.append(label if k is None else f"{label}[{k}]")

    # outputs: one output produced by a row is written straight into Y; otherwise every output is
    # copied into its place in Y (back to back per sample) by a CONCAT row of one block
    outs = frozen.outputs
    out_total = sum(o.size for o in outs)
    out_layout, col = [], 0
    for o in outs:
        out_layout.append((o.shape, o.dtype, col))
        col += o.size
    in_y = set()
    if len(outs) == 1 and root[outs[0].tensor] != 0:
        in_y.add(root[outs[0].tensor])
    else:
        for k, o in enumerate(outs):
            row = [0] * NCOLS
            row[C_OP], row[C_NIN], row[C_NOUT], row[C_LAYER] = int(Op.CONCAT), o.size, out_total, -1
            row[C_I0], row[C_I1], row[C_I2], row[C_I3] = 1, o.size, out_total, out_layout[k][2]
            row[C_FP] = len(fparams)
            fparams.extend([0.0, 0.0, 0.0])
            rows.append(row)
            reads.append((o.tensor,))
            writes.append(-1)
            labels.append(f"output {k} (copy)")

    # lifetimes of arena tensors (by storage root), then offsets per dtype
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k in range(len(rows)):
        for t in reads[k]:
            last[root[t]] = k
        if writes[k] >= 0:
            first.setdefault(root[writes[k]], k)
            last[root[writes[k]]] = max(last.get(root[writes[k]], k), k)
    arena_roots = [t for t in first if t not in in_y]
    dtype_of = {t: frozen.tensor_dtype(t) for t in range(n_t)}
    size_of = {t: math.prod(frozen.tensor_shape(t)) for t in range(n_t)}
    off_f, peak_f = plan_arena([(t, size_of[t], first[t], last[t]) for t in arena_roots if dtype_of[t] == "f32"],
                               _ALIGN // 4)
    off_i, peak_i = plan_arena([(t, size_of[t], first[t], last[t]) for t in arena_roots if dtype_of[t] == "i8"],
                               _ALIGN)

    def place(t):
        r = root[t]
        if r == 0:
            return K_X, 0
        if r in in_y:
            return K_Y, 0
        if dtype_of[r] == "f32":
            return K_F, off_f[r]
        return K_I, off_i[r]

    for k, row in enumerate(rows):
        row[C_SRC_KIND], row[C_SRC] = place(reads[k][0])
        if len(reads[k]) > 1:
            row[C_SRC2_KIND], row[C_SRC2] = place(reads[k][1])
        if writes[k] >= 0:
            row[C_DST_KIND], row[C_DST] = place(writes[k])
        else:
            row[C_DST_KIND], row[C_DST] = K_Y, 0

    slots = []
    for t in range(n_t):
        nbytes = size_of[t] * (4 if dtype_of[t] == "f32" else 1)
        r = root[t]
        if r != t:
            slots.append(TensorSlot(t, dtype_of[t], f"alias of t{r}", -1, nbytes, first.get(r, -1), last.get(r, -1)))
        elif t == 0:
            slots.append(TensorSlot(0, "f32", "input", -1, nbytes, -1, last.get(0, -1)))
        elif t in in_y:
            slots.append(TensorSlot(t, dtype_of[t], "output", -1, nbytes, first.get(t, -1), last.get(t, -1)))
        elif t in off_f:
            slots.append(TensorSlot(t, "f32", "arena", 4 * off_f[t], nbytes, first[t], last[t]))
        elif t in off_i:
            slots.append(TensorSlot(t, "i8", "arena", off_i[t], nbytes, first[t], last[t]))
        else:  # only read by RESHAPEs that lead nowhere: validate() forbids it
            slots.append(TensorSlot(t, dtype_of[t], "unused", -1, nbytes, -1, -1))
    tensor_bytes = sum(size_of[t] * (4 if dtype_of[t] == "f32" else 1) for t in arena_roots)

    per_sample = peak_f * 4 + peak_i
    if per_sample > MAX_ARENA_BYTES:
        raise PlanError(f"the activations need {per_sample} bytes per sample, above the limit {MAX_ARENA_BYTES}")
    block = max(1, min(BLOCK, BLOCK_CACHE_BYTES // max(per_sample, 1)))  # samples per blocked run

    # Byte layout.
    def align(n):
        return (n + _ALIGN - 1) // _ALIGN * _ALIGN

    n_ops = len(rows)
    arrays, work_bytes = sec.arrays()
    f32w, i32w, i8w = arrays["f32"], arrays["i32"], arrays["i8"]
    fp = np.asarray(fparams, dtype=np.float64)
    o_prog = off = align(HEADER_LEN * 8)
    o_fp = off = align(off + n_ops * NCOLS * 8)
    o_f32 = off = align(off + fp.nbytes)
    o_i32 = off = align(off + f32w.nbytes)
    o_i8 = off = align(off + i32w.nbytes)
    o_af = off = align(off + i8w.nbytes)
    o_ai = off = align(off + block * peak_f * 4)
    total = align(off + block * peak_i + 8)

    image = np.zeros(total, dtype=np.uint8)
    image[o_fp:o_fp + fp.nbytes] = fp.view(np.uint8)
    image[o_f32:o_f32 + f32w.nbytes] = f32w.view(np.uint8)
    image[o_i32:o_i32 + i32w.nbytes] = i32w.view(np.uint8)
    image[o_i8:o_i8 + i8w.nbytes] = i8w.view(np.uint8)

    prog = np.zeros((n_ops, NCOLS), dtype=np.int64)
    for k, row in enumerate(rows):
        op = Op(row[C_OP])
        row[C_FP] += o_fp // 8
        if op in (Op.DENSE, Op.AFFINE, Op.LAYERNORM):
            row[C_T0] += o_f32 // 4
            row[C_T1] += o_f32 // 4
        elif op == Op.QDENSE:
            row[C_T0] += o_i8
            row[C_T1] += o_i32 // 4
            row[C_T2] += o_f32 // 4
        elif op == Op.QLUT:
            row[C_T0] += o_i8
        elif op in (Op.GATHER, Op.QGATHER):
            row[C_T0] += o_i32 // 4
        elif op == Op.CONST:
            row[C_T0] += o_f32 // 4
        elif op in (Op.BINARY, Op.QBINARY):
            row[C_I0] += o_i32 // 4
        elif op in WINDOW_OPS or op == Op.GLOBAL_AVGPOOL:
            from .kernels_conv import relocate_window_row
            relocate_window_row(row, _CONV_COLS, o_f32 // 4, o_i32 // 4, o_i8)
        prog[k] = row
    image[o_prog:o_prog + prog.nbytes] = prog.reshape(-1).view(np.uint8)

    header = np.zeros(HEADER_LEN, dtype=np.int64)
    header[H_N_OPS] = n_ops
    header[H_PROG] = o_prog // 8
    header[H_NCOLS] = NCOLS
    header[H_IN_SIZE] = frozen.input_size
    header[H_OUT_SIZE] = out_total
    header[H_BLOCK] = block
    header[H_AF] = o_af // 4
    header[H_AI] = o_ai
    image[:HEADER_LEN * 8] = header.view(np.uint8)
    image.flags.writeable = False

    return Plan(
        image=image,
        n_ops=n_ops,
        input_shape=frozen.input_shape,
        output_shape=frozen.output_shape,
        output_dtype=frozen.output_dtype,
        in_size=frozen.input_size,
        out_size=out_total,
        arena_bytes=int(peak_f * 4 + peak_i),
        batch_arena_bytes=int(block * (peak_f * 4 + peak_i)),
        weight_bytes=int(f32w.nbytes + i32w.nbytes + i8w.nbytes + fp.nbytes),
        work_bytes=int(work_bytes),
        shared_scratch_bytes=int(sec.shared_bytes),
        macs=frozen.macs,
        row_layers=tuple(int(r[C_LAYER]) for r in rows),
        row_labels=tuple(labels),
        outputs=tuple(out_layout),
        tensors=tuple(slots),
        tensor_bytes=int(tensor_bytes),
        arena_f32=int(peak_f),
        arena_i8=int(peak_i),
    )
