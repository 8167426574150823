"""The planner: FrozenModel -> Plan, computed once; all validation happens here.

A Plan is one flat byte image (``Plan.image``, uint8, 64-byte aligned sections) that the
compiled interpreter (rtinfer.interp) reads through dtype views, so a jitted call takes one
array for the whole model:

    section     view      contents
    header      int64     HEADER_LEN slots (see H_* below), two of them scratch for the clock
    program     int64     (n_ops, NCOLS) one row per executed op (columns C_* below)
    fparams     float64   per-op float parameters (activation alpha, beta; quant scales)
    weights     float32   DENSE W transposed (n_out, n_in) and b; AFFINE s, t; QDENSE multipliers M
    weights     int32     QDENSE bias with the input zero point folded in
    weights     int8      QDENSE W transposed to (n_out, n_in); QLUT tables (256,)
    arena       float32   two regions of BLOCK * (largest float32 intermediate) elements
    arena       int8      two regions of BLOCK * (largest int8 intermediate) elements

Offsets in the program are element offsets into the view of the operand's dtype. The first
op reads the caller's input array X and the last op writes the caller's output array Y
(``C_SRC_KIND`` / ``C_DST_KIND`` = K_IO); intermediates ping-pong between the two arena
regions of their dtype. RESHAPE moves no data and emits no row (a model of only RESHAPEs
emits one identity copy). Each Runtime works on its own copy of the image (its own arena).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import quant
from .frozen import FrozenModel, Layer
from .ops import INT8_OUTPUT_OPS, WINDOW_OPS, Act, Op

# Samples processed together by the batched path (predict); the arena holds BLOCK samples.
BLOCK = 16

# Header slots (int64 view).
H_N_OPS = 0
H_PROG = 1      # int64 element offset of the program
H_NCOLS = 2
H_IN_SIZE = 3
H_OUT_SIZE = 4
H_BLOCK = 5
H_CLOCK = 6     # slots 6 and 7: struct timespec scratch for clock_gettime
HEADER_LEN = 16

# Program columns.
C_OP = 0
C_ACT = 1
C_SRC_KIND = 2  # K_ARENA or K_IO (the caller's X)
C_SRC = 3       # element offset of sample 0's input (arena view of the input dtype)
C_DST_KIND = 4  # K_ARENA or K_IO (the caller's Y)
C_DST = 5
C_NIN = 6       # per-sample input size
C_NOUT = 7      # per-sample output size
C_T0 = 8        # tensor offsets: W / s / table
C_T1 = 9        # b / t
C_T2 = 10       # M (QDENSE)
C_I0 = 11       # int params: outer | zp | y_zp
C_I1 = 12       # axis_len | qmin
C_I2 = 13       # inner | qmax
C_FP = 14       # index of this op's float params in the fparams view: alpha, beta, scale
C_LAYER = 15    # index of the FrozenModel layer this row executes
NCOLS = 16

K_ARENA = 0
K_IO = 1

# Columns the conv/pool planning in rtinfer.kernels_conv fills (see plan_window_row there).
_CONV_COLS = {"OP": C_OP, "T0": C_T0, "T1": C_T1, "T2": C_T2, "I0": C_I0, "I1": C_I1}

_ALIGN = 64


class PlanError(ValueError):
    """The model cannot be planned: a layer's tensors or attributes break its op's contract."""


@dataclass(frozen=True)
class Plan:
    image: np.ndarray            # uint8, the whole plan (see module docstring)
    n_ops: int
    input_shape: tuple
    output_shape: tuple
    output_dtype: str            # "float32" | "int64"
    in_size: int
    out_size: int
    arena_bytes: int             # working memory for one sample (two regions per dtype)
    batch_arena_bytes: int       # the arena as allocated, for BLOCK samples
    weight_bytes: int            # packed weights, biases, scales, tables and float params
    macs: int
    row_layers: tuple            # FrozenModel layer index executed by each program row
    row_labels: tuple            # "i:OP[:name]" per row, for reports

    @property
    def program(self) -> np.ndarray:
        h = self.image.view(np.int64)
        p = int(h[H_PROG])
        return h[p:p + self.n_ops * NCOLS].reshape(self.n_ops, NCOLS)

    def new_state(self) -> np.ndarray:
        """A private, writable copy of the image (own arena and clock scratch)."""
        return self.image.copy()

    def describe(self) -> str:
        lines = [f"Plan: {self.n_ops} ops, weights {self.weight_bytes} B, arena {self.arena_bytes} B "
                 f"({self.batch_arena_bytes} B for batches of {BLOCK}), {self.macs} MACs"]
        for label in self.row_labels:
            lines.append(f"  {label}")
        return "\n".join(lines)


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
    """Collects arrays per dtype section with 64-byte alignment inside each section."""

    def __init__(self):
        self.parts = {"f32": [], "i32": [], "i8": []}
        self.sizes = {"f32": 0, "i32": 0, "i8": 0}
        self.dtypes = {"f32": np.float32, "i32": np.int32, "i8": np.int8}

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

    def array(self, key: str) -> np.ndarray:
        dt = self.dtypes[key]
        return np.concatenate(self.parts[key]) if self.parts[key] else np.zeros(0, dt)


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


def build_plan(frozen: FrozenModel) -> Plan:
    """Validate every layer against its op's contract and lay out the plan image."""
    if not isinstance(frozen, FrozenModel):
        raise PlanError(f"build_plan expects a FrozenModel, got {type(frozen).__name__}")
    frozen.validate()
    sec = _Sections()
    fparams: list[float] = []
    rows: list[list[int]] = []
    row_layers: list[int] = []
    row_labels: list[str] = []
    max_f32 = 0
    max_i8 = 0

    for li, layer in enumerate(frozen.layers):
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
        if op not in (Op.DENSE, Op.ACT, Op.AFFINE, Op.CONV) and layer.act != Act.IDENTITY:
            raise PlanError(f"{where}: {op.name} takes no activation, got {layer.act.name}")

        if op == Op.RESHAPE:
            if n_in != n_out:
                raise PlanError(f"{where}: RESHAPE must keep the size, got {n_in} -> {n_out}")
            continue
        elif op == Op.DENSE:
            W = _tensor(frozen, layer, where, "W", "f32", (n_in, n_out), exact=True)
            b = _tensor(frozen, layer, where, "b", "f32", (n_out,))
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
            row[C_T0] = sec.add("i8", np.ascontiguousarray(Wq.T))
            row[C_T1] = sec.add("i32", folded.astype(np.int32))
            row[C_T2] = sec.add("f32", M)
            row[C_I0] = y_zp
            row[C_I1] = qmin
            row[C_I2] = qmax
        elif op == Op.QLUT:
            row[C_T0] = sec.add("i8", _tensor(frozen, layer, where, "table", "i8", (256,)))
        elif op in WINDOW_OPS or op == Op.GLOBAL_AVGPOOL:  # convolution and pooling
            from .kernels_conv import plan_window_row
            scale = plan_window_row(frozen, layer, where, sec, row, _CONV_COLS, PlanError)
        else:  # pragma: no cover - Op is a closed enum
            raise PlanError(f"{where}: unsupported op {op!r}")

        row[C_FP] = len(fparams)
        fparams.extend([alpha, beta, scale])
        rows.append(row)
        row_layers.append(li)
        row_labels.append(f"{li}:{op.name}" + (f":{layer.act.name}" if layer.act != Act.IDENTITY else "")
                          + (f":{layer.name}" if layer.name else ""))

    if not rows:  # only RESHAPEs: one identity copy
        n = frozen.input_size
        row = [0] * NCOLS
        row[C_OP], row[C_ACT], row[C_NIN], row[C_NOUT], row[C_FP] = int(Op.ACT), int(Act.IDENTITY), n, n, 0
        fparams.extend([0.0, 0.0, 0.0])
        rows.append(row)
        row_layers.append(0)
        row_labels.append("0:RESHAPE(copy)")

    # Arena: the first op reads X, the last writes Y, intermediates ping-pong per dtype.
    n_ops = len(rows)
    cur_dtype, cur_region, cur_io = "f32", None, True
    assign = []
    for k, row in enumerate(rows):
        op = Op(row[C_OP])
        out_dtype = "i8" if op in INT8_OUTPUT_OPS else "f32"
        if k == n_ops - 1:
            dst = ("io", None)
        else:
            r = 1 if (not cur_io and cur_dtype == out_dtype and cur_region == 0) else 0
            dst = (out_dtype, r)
            if out_dtype == "f32":
                max_f32 = max(max_f32, row[C_NOUT])
            else:
                max_i8 = max(max_i8, row[C_NOUT])
        assign.append(((cur_dtype, cur_region) if not cur_io else ("io", None), dst))
        cur_io = dst[0] == "io"
        cur_dtype, cur_region = out_dtype, dst[1]

    # Byte layout.
    def align(n):
        return (n + _ALIGN - 1) // _ALIGN * _ALIGN

    f32w, i32w, i8w = sec.array("f32"), sec.array("i32"), sec.array("i8")
    fp = np.asarray(fparams, dtype=np.float64)
    o_prog = off = align(HEADER_LEN * 8)
    o_fp = off = align(off + n_ops * NCOLS * 8)
    o_f32 = off = align(off + fp.nbytes)
    o_i32 = off = align(off + f32w.nbytes)
    o_i8 = off = align(off + i32w.nbytes)
    o_af = off = align(off + i8w.nbytes)
    reg_f32 = BLOCK * max_f32
    reg_i8 = align(BLOCK * max_i8)
    o_ai = off = align(off + 2 * reg_f32 * 4)
    total = align(off + 2 * reg_i8 + 8)

    image = np.zeros(total, dtype=np.uint8)
    image[o_fp:o_fp + fp.nbytes] = fp.view(np.uint8)
    image[o_f32:o_f32 + f32w.nbytes] = f32w.view(np.uint8)
    image[o_i32:o_i32 + i32w.nbytes] = i32w.view(np.uint8)
    image[o_i8:o_i8 + i8w.nbytes] = i8w.view(np.uint8)

    def arena_off(loc):
        dtype, r = loc
        if dtype == "f32":
            return o_af // 4 + r * reg_f32
        return o_ai + r * reg_i8

    prog = np.zeros((n_ops, NCOLS), dtype=np.int64)
    for k, row in enumerate(rows):
        op = Op(row[C_OP])
        src, dst = assign[k]
        row[C_SRC_KIND] = K_IO if src[0] == "io" else K_ARENA
        row[C_SRC] = 0 if src[0] == "io" else arena_off(src)
        row[C_DST_KIND] = K_IO if dst[0] == "io" else K_ARENA
        row[C_DST] = 0 if dst[0] == "io" else arena_off(dst)
        row[C_FP] += o_fp // 8
        if op in (Op.DENSE, Op.AFFINE):
            row[C_T0] += o_f32 // 4
            row[C_T1] += o_f32 // 4
        elif op == Op.QDENSE:
            row[C_T0] += o_i8
            row[C_T1] += o_i32 // 4
            row[C_T2] += o_f32 // 4
        elif op == Op.QLUT:
            row[C_T0] += o_i8
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
    header[H_OUT_SIZE] = frozen.output_size
    header[H_BLOCK] = BLOCK
    image[:HEADER_LEN * 8] = header.view(np.uint8)
    image.flags.writeable = False

    return Plan(
        image=image,
        n_ops=n_ops,
        input_shape=frozen.input_shape,
        output_shape=frozen.output_shape,
        output_dtype=frozen.output_dtype,
        in_size=frozen.input_size,
        out_size=frozen.output_size,
        arena_bytes=2 * max_f32 * 4 + 2 * max_i8,
        batch_arena_bytes=2 * reg_f32 * 4 + 2 * reg_i8,
        weight_bytes=int(f32w.nbytes + i32w.nbytes + i8w.nbytes + fp.nbytes),
        macs=frozen.macs,
        row_layers=tuple(row_layers),
        row_labels=tuple(row_labels),
    )
