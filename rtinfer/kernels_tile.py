"""Register-tile micro-kernels in LLVM IR (Numba intrinsics) for the convolution, dense and GEMM
kernels (rtinfer.kernels_conv, rtinfer.kernels, rtinfer.kernels_gemm), and the CPU features the
compiled code targets.

The IR is portable: vector loads, FMA (``llvm.fma``), integer multiply-adds written as the
pattern LLVM lowers to ``vpmaddwd`` (pairs of sign-extended int16 products summed into int32;
``vpdpwssd`` where LLVM fuses it with the add on VNNI targets), masked loads and gathers
(``llvm.masked.*``). The one exception is the uint8 x int8 quad step of the u8 tiles
(``quad_dot``), which has no IR pattern LLVM turns into the instructions for it: on a VNNI
target it emits one ``llvm.x86.avx512.vpdpbusd.256`` (AVX512-VNNI with VL, or the VEX form on
AVX-VNNI), on AVX2 ``quad_madd``'s ``llvm.x86.avx2.*`` vpmaddubsw + vpmaddwd, each only when
the target being compiled for has it (``codegen_features``, checked as the IR is generated),
and the same arithmetic in plain IR otherwise. So every entry point compiles for any target
Numba supports (an x86 CPU without AVX2, NUMBA_CPU_NAME=generic, other architectures) with the
same results, and a path the planner chose can never reference an instruction the host lacks.

Tiles and helpers (flat 1-D arrays and element offsets; each docstring states the exact sums):

- ``cf32_tile{2,4,6}``: float32 GEMM tile, R output channels x 16 positions (a row is one
  <16 x float>: a zmm on AVX-512, two ymm on AVX2), B rows found through an int32 row-offset
  table (im2col rows, input planes, or shifted plane copies), one FMA chain per output, bias
  and ReLU in the epilogue, masked tails. ``cf32_wide{2,4,6}``: the same over 32 positions
  (AVX-512 targets only: twelve zmm accumulators; on AVX2 they would spill).
- ``wino_in8`` / ``wino_out8``: the input and output transforms of Winograd F(2x2, 3x3) for eight
  tiles side by side (tile t in lane t; even/odd column splits by shuffles, exact adds).
- ``s16_tile{2,4,6}`` / ``u8_tile{2,4,6}``: int8 GEMM tiles on packed int32 words (int16
  pairs: vpmaddwd, exact for any int8; uint8 quads: vpdpbusd on VNNI, exact for any int8
  weights there (``quads_exact_any``); else vpmaddubsw + vpmaddwd, exact for weights whose pairs
  cannot saturate int16), requantization in the epilogue. On ``WIDE_I8`` targets (AVX512-VNNI
  on a CPU that runs 512-bit ops at full width: not Zen 4, where it measured 1.5-6 % slower)
  a u8 row is one zmm (512-bit vpdpbusd), and ``u8_wide{2,4,6}`` cover 32 positions (twelve
  zmm accumulators for 6 rows); elsewhere rows are two <8 x i32> (ymm).
  ``s16_rows_tile{2,4,6}``: the int16-pair tiles reading two int16 rows in place and
  interleaving them in registers (no packing pass); ``s16_rows_wide{2,4,6}`` the same over 32
  positions on WIDE_I8 targets.
- ``dw_tile_f32`` / ``dw_tile_i8``: depthwise tiles, DW_CH_F32 / DW_CH channels x DW_COLS positions, each tap
  (int8: each pair of taps, vpmaddwd; zmm rows on WIDE_I8 targets) one shifted load from
  zero-margined plane copies.
- ``dw8_pack`` / ``dw8_f32`` / ``dw16_f32``: float32 depthwise with eight channels (sixteen on
  AVX-512 targets, DW_LANES) in the lanes of a zero-margined grid of the planes (aligned loads,
  no masks), eight positions per step.
- ``dwq_build`` / ``dwq_tile{32,64}``: int8 depthwise on uint8 quads of taps (a kernel row's four
  columns a quad, built once per plane; quad_dot per kernel row, requantization in the
  epilogue); ``copy_bytes``: a plane copied 32 bytes a step (the stage the build reads).
- ``fill_masked``: those plane copies (one per column class, masked, int8 -> int16 x - x_zp).
- ``gather32``: im2col by index (vgatherdps / vpgatherdd).
- ``stride2_8``: eight elements of column stride 2 (plane windows of strided convolutions).
- ``s2k3_row8`` / ``s2k3_row16``: one input row's three column windows of a 3-wide, stride-2,
  pad-1 filter (even columns, odd columns, odd columns one lane later), one load per step.
- ``channel_sums8``: 8 channel sums side by side (8x8 register transposes, order kept).
- ``sum_i8``: the sum of n int8 values, 32 a step (vpsadbw on x ^ 0x80).
- ``maxpool2_rows``: rows of a 2-wide, stride-2 max pool, 16 int8 / 8 float32 outputs per step.
- ``run16``: 16 values of a plane window (float32 copies, int8 as int16 x - x_zp or u8 bytes).
- ``pack_quads16``: 16 uint8 quads of four int8 rows (the u8 GEMM's B words).
- ``qdense_rows8``: eight int8 dense outputs per x load, requantized as one vector.

``target_features()`` tells the planner which CPU features the compiled code may use (Numba's
own choice: NUMBA_CPU_FEATURES, none for NUMBA_CPU_NAME=generic, else the host's);
``kernel_path_name()`` names the int8 instruction family that results (VNNI, AVX2, portable).
"""

from __future__ import annotations

from contextlib import contextmanager

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

ROWS = 6      # output channels per packed weight block (the largest tile)
COLS = 16     # output positions per GEMM tile (two 8-lane vectors)

_I1 = ir.IntType(1)
_I8 = ir.IntType(8)
_I16 = ir.IntType(16)
_I32 = ir.IntType(32)
_F32 = ir.FloatType()
_V8F = ir.VectorType(_F32, 8)
_V8I = ir.VectorType(_I32, 8)
_V8B = ir.VectorType(_I1, 8)
_V8I8 = ir.VectorType(_I8, 8)
_V16S = ir.VectorType(_I16, 16)
_V16I = ir.VectorType(_I32, 16)
_V16F = ir.VectorType(_F32, 16)  # one row of a 16-column float32 tile: one zmm on AVX-512, two ymm on AVX2
_V4I = ir.VectorType(_I32, 4)


def target_features() -> frozenset:
    """CPU features of the code Numba compiles in this process ("avx2", "fma", ...), as Numba's
    JIT chooses them: NUMBA_CPU_FEATURES if set, none for NUMBA_CPU_NAME=generic, else the host's
    (llvmlite.binding.get_host_cpu_features())."""
    from numba.core import config
    feats = config.CPU_FEATURES
    if feats is None:
        import llvmlite.binding as ll
        try:
            feats = ll.get_host_cpu_features().flatten()
        except RuntimeError:  # a host LLVM cannot describe
            feats = ""
    return frozenset(f[1:] for f in feats.split(",") if f.startswith("+"))


def codegen_features(context) -> frozenset:
    """The features of the target the IR is being generated for (Numba's JIT codegen)."""
    feats = getattr(context.codegen(), "_tm_features", None)
    if feats is None:
        return target_features()
    return frozenset(f[1:] for f in feats.split(",") if f.startswith("+"))


def has_vnni(features) -> bool:
    """Whether a target with these features has 256-bit 8-bit dot products (vpdpbusd, vpdpwssd):
    AVX-VNNI, or AVX512-VNNI with AVX512VL."""
    return "avxvnni" in features or {"avx512vnni", "avx512vl"} <= features


def quads_exact_any() -> bool:
    """Whether the uint8 x int8 quad kernels (quad_dot) sum any int8 weights exactly on this
    target: VNNI's vpdpbusd adds the four products straight into int32 (no int16 pair sum to
    saturate, as vpmaddubsw's); elsewhere only weights that pass the kernels' pair bound
    (kernels_gemm.u8s8_exact, kernels_conv.u8_exact)."""
    return has_vnni(target_features())


# float32 tiles 32 columns wide (twelve zmm accumulators) on AVX-512 targets, which have the 32
# registers for them; on AVX2 their 24 ymm accumulators would spill. Read by the conv GEMM's column
# tiles (kernels_conv._col_at) and the dense GEMM's tiles (kernels_gemm)
WIDE_F32 = "avx512f" in target_features()
# channels in the lanes of the float32 depthwise grid (DW8 path): a zmm of 16 on AVX-512 targets
DW_LANES = 16 if WIDE_F32 else 8


def target_cpu_name() -> str:
    """The CPU Numba compiles for: NUMBA_CPU_NAME if set, else the host's (LLVM's name: "znver4",
    "sapphirerapids", ...; "" where LLVM cannot tell)."""
    from numba.core import config
    if config.CPU_NAME:
        return config.CPU_NAME
    import llvmlite.binding as ll
    try:
        return ll.get_host_cpu_name()
    except RuntimeError:
        return ""


# CPUs whose 512-bit integer ops run as two 256-bit halves: AMD Zen 4. There a u8 conv tile of 16
# positions with one 512-bit vpdpbusd per row measured 1.5-6 % slower than two 256-bit ones (int8
# CNNs side by side in one process); on Zen 5, which runs them at full width, 4-12 % faster (the
# 32-position tiles and the zmm batch GEMM came after, measured on Zen 5 only)
_HALF_WIDTH_512 = frozenset({"znver4"})


def wide_i8(features, cpu: str | None = None) -> bool:
    """Whether the uint8 x int8 tiles keep one <16 x i32> (a zmm, 512-bit vpdpbusd) per row on a
    target with these features: AVX512-VNNI on AVX512F, on a CPU that does not split 512-bit ops
    (_HALF_WIDTH_512)."""
    cpu = target_cpu_name() if cpu is None else cpu
    return {"avx512vnni", "avx512f"} <= features and cpu not in _HALF_WIDTH_512


# CPUs whose vpmaddubsw + vpmaddwd steps give no more multiply-adds a second than vpmaddwd alone: AMD
# Zen 2 (its measured int8 peak 49.9 G/s against its FMAs' 51.9 G multiply-adds). There the int16
# pairs read a conv layer's copies in place and skip the uint8 quads' packing: 0.87-0.95 of the quad
# path's time on stride-1 copies and windows, level on stride-2 windows (bench/bench_layers.py, one
# layer at a time). On the Zen 3 the quads measured faster, as the planner's rule there says
_SLOW_QUADS = frozenset({"znver2"})
# whether the uint8-quad conv tiles take layers whose B rows are copies (kernels_conv.conv_layout)
QUADS_FOR_COPIES = target_cpu_name() not in _SLOW_QUADS

# the int8 u8 tiles 512 bits wide (conv GEMM tile, dense batch GEMM, one-sample dense): read by
# kernels_gemm's loops (which pair blocks of 16 outputs there) and the limits' probe
WIDE_I8 = wide_i8(target_features())
# channels per int8 depthwise tile (dw_tile_i8): four on WIDE_I8 targets, where the
# int8 tile's zmm rows give four channels eight accumulators (two channels' four vpdpwssd chains
# per tap pair were latency-bound: DS-CNN's int8 depthwise layer 2.7 -> 2.3 us on a Zen 5; eight
# channels measured slower); two elsewhere (AVX2: four would spill; Zen 4's 256-bit int8 form
# measured no better under emulation)
DW_CH = 4 if WIDE_I8 else 2
DW_CH_F32 = 2  # channels per float32 depthwise tile (dw_tile_f32: planes too small for DW8)
# float32 outputs per maxpool2_rows step: a zmm on AVX-512 targets (WIDE_F32) for rows of more
# than 8 outputs (pool_f32_lanes), else a ymm
POOL_F32_LANES = 16 if WIDE_F32 else 8


def pool_f32_lanes(ow):
    """float32 outputs per maxpool2_rows step for rows of ow outputs (16-lane steps on rows of
    8 or fewer computed twice the outputs they keep: LeNet-5's second pool 1.08x slower)."""
    return POOL_F32_LANES if ow > 8 else 8


def kernel_path_name() -> str:
    """Which int8 instruction family the compiled kernels reach on this target: "VNNI" (uint8
    quads by vpdpbusd; the vpmaddwd patterns fuse into vpdpwssd), "AVX2" (vpmaddubsw /
    vpmaddwd), or "portable" (plain IR: whatever the target has)."""
    f = target_features()
    if has_vnni(f):
        return "VNNI"
    if "avx2" in f:
        return "AVX2"
    return "portable"


# -- IR helpers ----------------------------------------------------------------------------------

@intrinsic
def f32_from_bits(typingctx, i):
    """The float32 whose bit pattern is the low 32 bits of the integer i (a bitcast: vectorizes)."""
    if not isinstance(i, types.Integer):
        return None
    sig = types.float32(i)

    def codegen(context, builder, signature, args):
        v = args[0]
        if v.type.width != 32:
            v = builder.trunc(v, _I32) if v.type.width > 32 else builder.zext(v, _I32)
        return builder.bitcast(v, _F32)

    return sig, codegen



def _c(v, ty=_I32):
    return ir.Constant(ty, v)


def _splat(builder, v, vty):
    s = builder.insert_element(ir.Constant(vty, ir.Undefined), v, _c(0))
    return builder.shuffle_vector(s, s, ir.Constant(ir.VectorType(_I32, vty.count), [0] * vty.count))


def halves16(builder, v):
    """A 16-lane vector as its two 8-lane halves [lanes 0..7, lanes 8..15]."""
    lo, hi = ir.Constant(_V8I, list(range(8))), ir.Constant(_V8I, list(range(8, 16)))
    return [builder.shuffle_vector(v, v, lo), builder.shuffle_vector(v, v, hi)]


def _relu_floor(builder, relu, vty=_V8F):
    """The float32 epilogues' ReLU switch as a vector floor: 0.0 when relu != 0, else -inf."""
    on = builder.icmp_signed("!=", relu, ir.Constant(relu.type, 0))
    return _splat(builder, builder.select(on, ir.Constant(_F32, 0.0), ir.Constant(_F32, float("-inf"))), vty)


def _relu(builder, v, floor):
    """floor if v < floor else v: ReLU (0 if v < 0 else v; NaN and -0.0 pass) under a floor of 0.0,
    v itself under -inf. One vmaxps(floor, v); the former select on (v < 0) & a splat of the
    i1 switch lowered to eight instructions a vector."""
    return builder.select(builder.fcmp_ordered("<", v, floor), floor, v)


def _u8_byte(builder, x):
    """int8 lanes x -> the u8 tile's bytes x + 128 (x ^ 0x80, same vector type)."""
    return builder.xor(x, ir.Constant(x.type, [-128] * x.type.count))


def _pad_byte(builder, zp, vty):
    """The u8 tile's byte of padding (x = zp: zp + 128), splat to vty (i8 or i16 lanes)."""
    return _splat(builder, builder.trunc(builder.add(zp, ir.Constant(zp.type, 128)), vty.element), vty)


def _ptr(builder, base, off, ty):
    """Pointer to element ``off`` of ``base`` (an array data pointer), cast to ``ty``*."""
    return builder.bitcast(builder.gep(base, [off]), ty.as_pointer())


@contextmanager
def _overlapping_steps(builder, n, width):
    """A loop over the steps k = 0, width, 2 width, ... covering n >= width elements (an i64),
    the last step moved back to n - width so it stays inside them (it redoes a few elements of
    the one before; for idempotent steps, with no scalar tail): yields k."""
    i64 = n.type
    nblk = builder.sdiv(builder.add(n, ir.Constant(i64, width - 1)), ir.Constant(i64, width))
    last = builder.sub(n, ir.Constant(i64, width))
    with cgutils.for_range(builder, nblk) as loop:
        k = builder.mul(loop.index, ir.Constant(i64, width))
        yield builder.select(builder.icmp_signed(">", k, last), last, k)


def _unpck(builder, a, b, n, hi):
    """vpunpck{l,h}{bw,wd} on 256 bits: per 128-bit lane, the low (hi: high) halves of a and b
    interleaved, n elements a vector (32 bytes or 16 words)."""
    h = n // 2  # elements a lane
    base = h // 2 if hi else 0
    idx = [lane * h + base + i + k * n for lane in range(2) for i in range(h // 2) for k in range(2)]
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, n), idx))


def _store_quads32(builder, slots, dst, i64):
    """The 32 uint8 quads of four <32 x i8> slot vectors (slot t: byte t of each quad) stored as
    128 bytes at dst (an i8 pointer): in-lane unpacks (8 shuffles) give r[0] = quads of positions
    0-3 | 16-19, r[1] 4-7 | 20-23, r[2] 8-11 | 24-27, r[3] 12-15 | 28-31; then four vperm2i128
    put them in order (12 shuffles: LLVM made ~35 of the generic 4-way interleave)."""
    v16w = ir.VectorType(_I16, 16)
    v4q = ir.VectorType(ir.IntType(64), 4)
    p01 = [builder.bitcast(_unpck(builder, slots[0], slots[1], 32, hi), v16w) for hi in (False, True)]
    p23 = [builder.bitcast(_unpck(builder, slots[2], slots[3], 32, hi), v16w) for hi in (False, True)]
    r = [builder.bitcast(_unpck(builder, p01[j], p23[j], 16, hi), v4q) for j in range(2) for hi in (False, True)]
    for n_out, (a, b, sel) in enumerate(((0, 1, (0, 1, 4, 5)), (2, 3, (0, 1, 4, 5)),
                                         (0, 1, (2, 3, 6, 7)), (2, 3, (2, 3, 6, 7)))):
        v = builder.shuffle_vector(r[a], r[b], ir.Constant(_V4I, list(sel)))
        builder.store(v, _ptr(builder, dst, ir.Constant(i64, 32 * n_out), v4q), align=1)


def _lane_mask(builder, n, first, lanes=8):
    """<lanes x i1>: lane i is on when first + i < n (n an i64)."""
    vty = ir.VectorType(_I32, lanes)
    nv = _splat(builder, builder.trunc(n, _I32), vty)
    return builder.icmp_signed("<", ir.Constant(vty, list(range(first, first + lanes))), nv)


def _masked_load(builder, ptr, vty, mask, align):
    name = f"llvm.masked.load.v{vty.count}{'f32' if vty.element == _F32 else 'i' + str(vty.element.width)}.p0"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [ptr.type, _I32, mask.type, vty]),
                                        name)
    zero = ir.Constant(vty, [0.0 if vty.element == _F32 else 0] * vty.count)
    return builder.call(fn, [ptr, _c(align), mask, zero])


def store_cols(builder, vals, row, ncols, vty, align):
    """Store the vectors ``vals`` (of ``vty``) at row[0:lanes * len(vals)] when ncols covers them
    all, else only row[0:ncols]: the vectors go to a stack buffer and ncols elements are copied
    (no masked store: vmaskmovps stores are slow on some CPUs, and there is none for bytes)."""
    i64 = ncols.type
    lanes = vty.count
    n = lanes * len(vals)
    full = builder.icmp_signed("==", ncols, ir.Constant(i64, n))
    with _if_else(builder, full) as (then, otherwise):
        with then:
            for h, v in enumerate(vals):
                builder.store(v, _ptr(builder, row, ir.Constant(i64, lanes * h), vty), align=align)
        with otherwise:
            buf = cgutils.alloca_once(builder, ir.ArrayType(vty.element, n))
            base = builder.bitcast(buf, vty.element.as_pointer())
            for h, v in enumerate(vals):
                builder.store(v, _ptr(builder, base, ir.Constant(i64, lanes * h), vty), align=1)
            with cgutils.for_range(builder, ncols) as loop:
                k = loop.index
                builder.store(builder.load(builder.gep(base, [k])), builder.gep(row, [k]))


def _fma(builder, a, b, c):
    """a * b + c, one rounding, lane by lane (<8 x float> or <16 x float>)."""
    vty = a.type
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                        f"llvm.fma.v{vty.count}f32")
    return builder.call(fn, [a, b, c])


def _rint(builder, v):
    """Round to the nearest integer, ties to even, lane by lane (<8 x float> or <16 x float>)."""
    vty = v.type
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty]), f"llvm.rint.v{vty.count}f32")
    return builder.call(fn, [v])


def pair_madd(builder, a, b):
    """<2n x i16> a, b -> <n x i32> (n = 8, or 16 on WIDE_I8 targets): a[2i] * b[2i] + a[2i+1] *
    b[2i+1] (exact), the pattern LLVM lowers to one vpmaddwd on x86 (vpdpwssd when fused with the
    add on VNNI targets)."""
    n2 = a.type.count
    wide, half = ir.VectorType(_I32, n2), ir.VectorType(_I32, n2 // 2)
    p = builder.mul(builder.sext(a, wide), builder.sext(b, wide))
    even = builder.shuffle_vector(p, p, ir.Constant(half, list(range(0, n2, 2))))
    odd = builder.shuffle_vector(p, p, ir.Constant(half, list(range(1, n2, 2))))
    return builder.add(even, odd)


def requant8(builder, acc_f, mult, zp, lo, hi):
    """<8 x float> exact integers -> <8 x i8>: clamp(rint(acc * mult) + zp, lo, hi), float32
    arithmetic as kernels_conv._requant_run (exact: see there)."""
    v = builder.fadd(_rint(builder, builder.fmul(acc_f, mult)), zp)
    v = builder.select(builder.fcmp_ordered("<", v, lo), lo, v)
    v = builder.select(builder.fcmp_ordered(">", v, hi), hi, v)
    return builder.trunc(builder.fptosi(v, _V8I), _V8I8)


def _requant_i32(builder, acc_f, mult, lo, hi, x86):
    """<8 x float> exact integers -> <8 x i32>: _round_clamped(acc * mult)."""
    return _round_clamped(builder, builder.fmul(acc_f, mult), lo, hi, x86)


def _round_clamped(builder, v, lo, hi, x86):
    """<8 x float> -> <8 x i32>: rint(clamp(v, lo, hi)), lo and hi the float32 integers qmin -
    y_zp and qmax - y_zp. Equal to clamp(rint(v) + y_zp, qmin, qmax) - y_zp (requant8's): rint is
    monotonic and keeps the integers lo and hi, so clamping before or after it gives the same
    integer (v is never NaN: the multipliers are finite). x86: the clamped value converted by
    vcvtps2dq (round to nearest even, the default MXCSR mode, as rint); else rint then fptosi."""
    v = builder.select(builder.fcmp_ordered("<", v, lo), lo, v)
    v = builder.select(builder.fcmp_ordered(">", v, hi), hi, v)
    if x86:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V8I, [_V8F]),
                                            "llvm.x86.avx.cvt.ps2dq.256")
        return builder.call(fn, [v])
    return builder.fptosi(_rint(builder, v), _V8I)


_UNPCK_ORDER = [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15]  # (lo, hi) of _LO16/_HI16 -> positions


def _narrow_rows(builder, rows, zp, x86, unpck):
    """Rows of 16 requantized positions, each a pair (a, b) of <8 x i32> from _requant_i32 (y_zp
    not yet added), -> one <16 x i8> per row, positions in order, + y_zp (zp an i32): the values
    then lie in [qmin, qmax], so narrowing is exact. Pair order: a = positions 0..7, b = 8..15,
    or with ``unpck`` a = positions 0..3, 8..11 and b = 4..7, 12..15 (vpunpck*wd accumulators).
    x86: vpackssdw per row, y_zp added as int16, vpacksswb per two rows, vpermq (and vpshufd for
    the in-order pairs); else the same values by shuffles, an add and a truncation."""
    out = []
    if not x86:
        zv = _splat(builder, zp, _V16I)
        order = ir.Constant(_V16I, _UNPCK_ORDER if unpck else list(range(16)))
        for a, b in rows:
            v = builder.add(builder.shuffle_vector(a, b, order), zv)
            out.append(builder.trunc(v, ir.VectorType(_I8, 16)))
        return out
    packd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16S, [_V8I, _V8I]), "llvm.x86.avx2.packssdw")
    v32 = ir.VectorType(_I8, 32)
    packw = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v32, [_V16S, _V16S]), "llvm.x86.avx2.packsswb")
    z16 = _splat(builder, builder.trunc(zp, _I16), _V16S)
    words = [builder.add(builder.call(packd, [a, b]), z16) for a, b in rows]
    v4q = ir.VectorType(ir.IntType(64), 4)
    lo16 = ir.Constant(_V16I, list(range(16)))
    hi16 = ir.Constant(_V16I, list(range(16, 32)))
    for k in range(0, len(words), 2):
        p = words[k]
        q = words[k + 1] if k + 1 < len(words) else p
        w = builder.bitcast(builder.call(packw, [p, q]), v4q)
        w = builder.shuffle_vector(w, w, ir.Constant(_V4I, [0, 2, 1, 3]))  # row k | row k + 1
        w = builder.bitcast(w, _V8I)
        if not unpck:  # dwords 0..3, 8..11, 4..7, 12..15 of each row -> in order
            w = builder.shuffle_vector(w, w, ir.Constant(_V8I, [0, 2, 1, 3, 4, 6, 5, 7]))
        w = builder.bitcast(w, v32)
        out.append(builder.shuffle_vector(w, w, lo16))
        if k + 1 < len(words):
            out.append(builder.shuffle_vector(w, w, hi16))
    return out


def _array(context, builder, sig_arg, val):
    return context.make_array(sig_arg)(context, builder, val)


def _ints64(context, builder, signature, args):
    """The intrinsic's arguments with every integer or boolean scalar cast to int64."""
    out = []
    for v, t in zip(args, signature.args):
        if isinstance(t, (types.Integer, types.Boolean)):
            v = context.cast(builder, v, t, types.int64)
        out.append(v)
    return out


def _if_else(builder, cond):
    return builder.if_else(cond, likely=True)


# -- float32 GEMM tile -------------------------------------------------------------------------

def _make_cf32_tile(R, NB=1):
    @intrinsic
    def cf32_tile(typingctx, A, ao, B, bo, RT, ro, K, D, do, ldd, bias, bi, relu, nrows, ncols):
        """For r < nrows (<= R) and j < ncols (<= 16 NB):
        D[do + r * ldd + j] = act(acc + bias[bi + r]), acc = fma(A[ao + ROWS * k + r],
        B[bo + RT[ro + k] + j], acc) for k = 0..K-1 from 0.0 (one rounding per term), + in float32;
        act = ReLU (0 if v < 0 else v: NaN passes) when relu != 0. Row k of B starts at the int32
        offset RT[ro + k] (im2col rows, input planes, or shifted copies of them: an implicit GEMM).
        B columns >= ncols are not read, D outside the tile is not written. A rows r < R of every k
        are read. NB = 2 (the 32-column tile of AVX-512 targets, WIDE_F32) takes full tiles only:
        ncols == 32."""
        sig = types.void(A, ao, B, bo, RT, ro, K, D, do, ldd, bias, bi, relu, nrows, ncols)

        def codegen(context, builder, signature, args):
            av, aoff, bv, boff, rtv, roff, kn, dv, doff, lddv, biasv, bioff, reluv, nrowsv, ncolsv = \
                _ints64(context, builder, signature, args)
            st = signature.args
            pa = builder.gep(_array(context, builder, st[0], av).data, [aoff])
            pb = builder.gep(_array(context, builder, st[2], bv).data, [boff])
            prt = builder.gep(_array(context, builder, st[4], rtv).data, [roff])
            pd = builder.gep(_array(context, builder, st[7], dv).data, [doff])
            pbias = builder.gep(_array(context, builder, st[10], biasv).data, [bioff])
            i64 = kn.type
            # one <16 x float> per row and block of 16 columns: one zmm register on AVX-512 targets,
            # split by LLVM into two ymm on AVX2 (the same per-lane FMA chain either way)
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(_V16F, [0.0] * 16)) for _ in range(NB)]
                    for _ in range(R)]
            full = builder.icmp_signed("==", ncolsv, ir.Constant(ncolsv.type, COLS * NB))
            mask = _lane_mask(builder, ncolsv, 0, 16)

            def k_loop(masked):
                with cgutils.for_range(builder, kn) as loop:
                    k = loop.index
                    brow = builder.gep(pb, [builder.sext(builder.load(builder.gep(prt, [k])), i64)])
                    bvec = []
                    for h in range(NB):
                        p = _ptr(builder, brow, ir.Constant(i64, 16 * h), _V16F)
                        bvec.append(_masked_load(builder, p, _V16F, mask, 4) if masked else builder.load(p, align=4))
                    arow = builder.gep(pa, [builder.mul(k, ir.Constant(i64, ROWS))])
                    for r in range(R):
                        a = _splat(builder, builder.load(builder.gep(arow, [ir.Constant(i64, r)])), _V16F)
                        for h in range(NB):
                            builder.store(_fma(builder, a, bvec[h], builder.load(accs[r][h])), accs[r][h])

            if NB == 1:
                with _if_else(builder, full) as (then, otherwise):
                    with then:
                        k_loop(False)
                    with otherwise:
                        k_loop(True)
            else:
                k_loop(False)
            floor = _relu_floor(builder, reluv, _V16F)
            for r in range(R):
                with builder.if_then(builder.icmp_signed(">", nrowsv, ir.Constant(nrowsv.type, r))):
                    b = _splat(builder, builder.load(builder.gep(pbias, [ir.Constant(i64, r)])), _V16F)
                    row = builder.gep(pd, [builder.mul(lddv, ir.Constant(i64, r))])
                    vals = [_relu(builder, builder.fadd(builder.load(accs[r][h]), b), floor) for h in range(NB)]
                    store_cols(builder, vals, row, ncolsv, _V16F, 4)
            return context.get_dummy_value()

        return sig, codegen
    return cf32_tile


cf32_tile2 = _make_cf32_tile(2)
cf32_tile4 = _make_cf32_tile(4)
cf32_tile6 = _make_cf32_tile(6)
cf32_wide2 = _make_cf32_tile(2, 2)
cf32_wide4 = _make_cf32_tile(4, 2)
cf32_wide6 = _make_cf32_tile(6, 2)



# -- float32 Winograd F(2x2, 3x3) transforms ------------------------------------------------------

_EVEN8 = ir.Constant(_V8I, list(range(0, 16, 2)))
_ODD8 = ir.Constant(_V8I, list(range(1, 16, 2)))
_ZIP16 = ir.Constant(_V16I, [i // 2 + 8 * (i % 2) for i in range(16)])  # a0 b0 a1 b1 ... a7 b7


@intrinsic
def wino_in8(typingctx, P, po, wp, V, vo, st):
    """Winograd F(2x2, 3x3) input transform of eight adjacent tiles: tile t < 8 is the 4 x 4 block
    d[r][j] = P[po + r * wp + 2 t + j] of a zero-padded plane (rows wp apart), and
    V[vo + (4 a + j) * st + t] = (B^T d B)[a][j] with B^T = [[1, 0, -1, 0], [0, 1, 1, 0],
    [0, -1, 1, 0], [0, 1, 0, -1]], computed as the row sums of the column sums: per row r,
    (d0 - d2, d1 + d2, d2 - d1, d1 - d3), then down the rows (r0 - r2, r1 + r2, r2 - r1, r1 - r3)
    (exact float32 adds, one rounding each). Reads P[po + r * wp : + 18] for r < 4 (two 16-float
    loads per row, split into even and odd columns), writes eight floats at each of the 16 V
    rows."""
    sig = types.void(P, po, wp, V, vo, st)

    def codegen(context, builder, signature, args):
        pv, poff, wpv, vv, voff, stv = _ints64(context, builder, signature, args)
        sa = signature.args
        pp = builder.gep(_array(context, builder, sa[0], pv).data, [poff])
        pvv = builder.gep(_array(context, builder, sa[3], vv).data, [voff])
        i64 = poff.type
        rows = []
        for r in range(4):
            base = builder.gep(pp, [builder.mul(wpv, ir.Constant(i64, r))])
            a = builder.load(_ptr(builder, base, ir.Constant(i64, 0), _V16F), align=4)
            b = builder.load(_ptr(builder, base, ir.Constant(i64, 2), _V16F), align=4)
            d0, d1 = builder.shuffle_vector(a, a, _EVEN8), builder.shuffle_vector(a, a, _ODD8)
            d2, d3 = builder.shuffle_vector(b, b, _EVEN8), builder.shuffle_vector(b, b, _ODD8)
            rows.append([builder.fsub(d0, d2), builder.fadd(d1, d2), builder.fsub(d2, d1), builder.fsub(d1, d3)])
        for j in range(4):
            col = [builder.fsub(rows[0][j], rows[2][j]), builder.fadd(rows[1][j], rows[2][j]),
                   builder.fsub(rows[2][j], rows[1][j]), builder.fsub(rows[1][j], rows[3][j])]
            for a, v in enumerate(col):
                builder.store(v, _ptr(builder, pvv, builder.mul(stv, ir.Constant(i64, 4 * a + j)), _V8F), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def wino_out8(typingctx, M, mo, st, D, do, ow, ncols, two, bias, relu):
    """Winograd F(2x2, 3x3) output transform of eight adjacent tiles: with m[x] the eight floats
    M[mo + x * st:] (tile t in lane t) for x = 4 a + j < 16, s_j = (m[j] + m[4 + j]) + m[8 + j]
    and u_j = (m[4 + j] - m[8 + j]) - m[12 + j]; output row 0 of tile t is
    ((s0 + s1) + s2 + bias, (s1 - s2) - s3 + bias), row 1 the same of u (A^T m A with
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]), ReLU after when relu != 0 (NaN passes). Row 0 goes
    to D[do:do + ncols] (ncols <= 16 columns, tile t at 2 t), row 1, when two != 0, to
    D[do + ow:do + ow + ncols]; nothing else is written."""
    sig = types.void(M, mo, st, D, do, ow, ncols, two, bias, relu)

    def codegen(context, builder, signature, args):
        mv, moff, stv, dv, doff, owv, ncv, twov, biasv, reluv = _ints64(context, builder, signature, args)
        sa = signature.args
        pm = builder.gep(_array(context, builder, sa[0], mv).data, [moff])
        pd = builder.gep(_array(context, builder, sa[3], dv).data, [doff])
        i64 = moff.type
        m = [builder.load(_ptr(builder, pm, builder.mul(stv, ir.Constant(i64, x)), _V8F), align=4) for x in range(16)]
        s = [builder.fadd(builder.fadd(m[j], m[4 + j]), m[8 + j]) for j in range(4)]
        u = [builder.fsub(builder.fsub(m[4 + j], m[8 + j]), m[12 + j]) for j in range(4)]
        bv = _splat(builder, biasv, _V8F)
        floor = _relu_floor(builder, reluv, _V16F)

        def out_row(v):
            y0 = builder.fadd(builder.fadd(builder.fadd(v[0], v[1]), v[2]), bv)
            y1 = builder.fadd(builder.fsub(builder.fsub(v[1], v[2]), v[3]), bv)
            return _relu(builder, builder.shuffle_vector(y0, y1, _ZIP16), floor)

        store_cols(builder, [out_row(s)], pd, ncv, _V16F, 4)
        with builder.if_then(builder.icmp_signed("!=", twov, ir.Constant(twov.type, 0))):
            store_cols(builder, [out_row(u)], builder.gep(pd, [owv]), ncv, _V16F, 4)
        return context.get_dummy_value()

    return sig, codegen


# -- int8 GEMM tiles ------------------------------------------------------------------------------

def quad_dot(builder, acc, x, w, features):
    """acc (<8 x i32>, or <16 x i32> on WIDE_I8 targets: one 512-bit vpdpbusd) + quad_madd(x, w):
    the u8 tiles' product step. On a VNNI target
    (has_vnni(features)) one vpdpbusd, which sums the four u8 x s8 products of each group exactly,
    without quad_madd's int16 saturation of pair sums: the two agree wherever the u8 tiles run
    (the planner's bound: no pair sum can saturate); else vpmaddubsw + vpmaddwd + vpaddd (AVX2)
    or quad_madd's portable IR. The intrinsic is emitted only for targets that have it: LLVM
    aborts the process on one that does not."""
    if acc.type.count == 16:  # a zmm accumulator: WIDE_I8 targets only
        assert wide_i8(features), "512-bit quad_dot on a target without full-width AVX512-VNNI"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16I, [_V16I, _V16I, _V16I]),
                                            "llvm.x86.avx512.vpdpbusd.512")
        return builder.call(fn, [acc, builder.bitcast(x, _V16I), builder.bitcast(w, _V16I)])
    if has_vnni(features):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V8I, [_V8I, _V8I, _V8I]),
                                            "llvm.x86.avx512.vpdpbusd.256")
        return builder.call(fn, [acc, builder.bitcast(x, _V8I), builder.bitcast(w, _V8I)])
    return builder.add(acc, quad_madd(builder, x, w, "avx2" in features))


def quad_madd(builder, x, w, x86):
    """<32 x i8> x (unsigned), w (signed) -> <8 x i32>: for each group of 4 bytes,
    sat16(x[4i] w[4i] + x[4i+1] w[4i+1]) + sat16(x[4i+2] w[4i+2] + x[4i+3] w[4i+3]), sat16 the
    saturation to int16 that vpmaddubsw applies to each pair sum (exact when the pair sums fit).
    With x86 (the target has AVX2): vpmaddubsw + vpmaddwd(1); else the same arithmetic in
    generic IR (any target; LLVM may fold the saturation away where it cannot occur)."""
    if x86:
        p16 = builder.call(cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V16S, [x.type, w.type]), "llvm.x86.avx2.pmadd.ub.sw"), [x, w])
        return builder.call(cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V8I, [_V16S, _V16S]), "llvm.x86.avx2.pmadd.wd"),
            [p16, ir.Constant(_V16S, [1] * 16)])
    even = ir.Constant(ir.VectorType(_I32, 16), list(range(0, 32, 2)))
    odd = ir.Constant(ir.VectorType(_I32, 16), list(range(1, 32, 2)))
    xe = builder.zext(builder.shuffle_vector(x, x, even), _V16I)
    xo = builder.zext(builder.shuffle_vector(x, x, odd), _V16I)
    we = builder.sext(builder.shuffle_vector(w, w, even), _V16I)
    wo = builder.sext(builder.shuffle_vector(w, w, odd), _V16I)
    s = builder.add(builder.mul(xe, we), builder.mul(xo, wo))
    lo = ir.Constant(_V16I, [-32768] * 16)
    hi = ir.Constant(_V16I, [32767] * 16)
    s = builder.select(builder.icmp_signed(">", s, lo), s, lo)
    s = builder.select(builder.icmp_signed("<", s, hi), s, hi)
    t = builder.sext(builder.trunc(s, _V16S), _V16I)
    return builder.add(builder.shuffle_vector(t, t, ir.Constant(_V8I, list(range(0, 16, 2)))),
                       builder.shuffle_vector(t, t, ir.Constant(_V8I, list(range(1, 16, 2)))))


def _epilogue_rows(builder, accs, pbias, pm, pd, ldd, zpv, lov, hiv, nrows, ncols, x86, unpck):
    """The int8 GEMM tiles' epilogue: for row r < nrows (accs[r] = two <8 x i32> of 16 positions,
    in order or, with ``unpck``, as _narrow_rows says), D row r = pd + r * ldd, ncols of its 16
    positions: clamp(rint(float32(acc + bias[r]) * M[r]) + y_zp, qmin, qmax) as int8, by
    _requant_i32 and _narrow_rows (two rows per narrowing step; a row past nrows is computed
    from row nrows - 1's bias and multiplier and not stored)."""
    i64 = ldd.type
    zp32 = builder.trunc(zpv, _I32)
    lo = _splat(builder, builder.sitofp(builder.sub(lov, zpv), _F32), _V8F)
    hi = _splat(builder, builder.sitofp(builder.sub(hiv, zpv), _F32), _V8F)
    last = builder.sub(nrows, ir.Constant(nrows.type, 1))
    rows = []
    for r in range(len(accs)):
        rr = builder.select(builder.icmp_signed("<", ir.Constant(i64, r), nrows), ir.Constant(i64, r), last)
        b = _splat(builder, builder.load(_ptr(builder, pbias, rr, _I32), align=4), _V8I)
        mult = _splat(builder, builder.load(builder.gep(pm, [rr])), _V8F)
        rows.append([_requant_i32(builder, builder.sitofp(builder.add(v, b), _V8F), mult, lo, hi, x86)
                     for v in accs[r]])
    ys = _narrow_rows(builder, rows, zp32, x86, unpck)
    for r in range(len(accs)):
        with builder.if_then(builder.icmp_signed(">", nrows, ir.Constant(nrows.type, r))):
            store_cols(builder, [ys[r]], builder.gep(pd, [builder.mul(ldd, ir.Constant(i64, r))]), ncols,
                        ir.VectorType(_I8, 16), 1)


class _ZmmRequant:
    """_requant_i32 and _narrow_rows for AVX-512 targets, a row of 16 positions (in order) in one
    <16 x i32>: the same float32 arithmetic (clamp before rounding, rint by vrndscaleps, y_zp
    added in int32) on whole zmm, narrowed by one vpmovdb (exact: the values lie in [qmin,
    qmax]) in place of the pack / permute chain on 256-bit halves."""

    def __init__(self, builder, zpv, lov, hiv):
        self.builder = builder
        self.zp = _splat(builder, builder.trunc(zpv, _I32), _V16I)
        self.lo = _splat(builder, builder.sitofp(builder.sub(lov, zpv), _F32), _V16F)
        self.hi = _splat(builder, builder.sitofp(builder.sub(hiv, zpv), _F32), _V16F)

    def __call__(self, acc, bias, mult):
        """<16 x i8>: clamp(rint(float32(acc + bias) * mult) + y_zp, qmin, qmax); bias an i32,
        mult a float."""
        builder = self.builder
        v = builder.fmul(builder.sitofp(builder.add(acc, _splat(builder, bias, _V16I)), _V16F),
                         _splat(builder, mult, _V16F))
        v = builder.select(builder.fcmp_ordered("<", v, self.lo), self.lo, v)
        v = builder.select(builder.fcmp_ordered(">", v, self.hi), self.hi, v)
        return builder.trunc(builder.add(builder.fptosi(_rint(builder, v), _V16I), self.zp),
                             ir.VectorType(_I8, 16))


def _epilogue_zmm(builder, accs, pbias, pm, pd, ldd, zpv, lov, hiv, nrows, ncols):
    """_epilogue_rows for AVX-512 targets, row r's 16 positions in order in accs[r] (a
    <16 x i32>), requantized by _ZmmRequant."""
    i64 = ldd.type
    req = _ZmmRequant(builder, zpv, lov, hiv)
    last = builder.sub(nrows, ir.Constant(nrows.type, 1))
    for r, acc in enumerate(accs):
        rr = builder.select(builder.icmp_signed("<", ir.Constant(i64, r), nrows), ir.Constant(i64, r), last)
        y = req(acc, builder.load(_ptr(builder, pbias, rr, _I32), align=4), builder.load(builder.gep(pm, [rr])))
        with builder.if_then(builder.icmp_signed(">", nrows, ir.Constant(nrows.type, r))):
            store_cols(builder, [y], builder.gep(pd, [builder.mul(ldd, ir.Constant(i64, r))]), ncols,
                       ir.VectorType(_I8, 16), 1)


def _i8_tile_zmm(builder, R, NB, pa, pb, ldb, kn, feats, pbias, pm, pd, ldd, zpv, lov, hiv, nrows, ncols):
    """The u8 i8_tile on WIDE_I8 targets: NB blocks of 16 positions, per row and block one
    <16 x i32> accumulator (a zmm), one 512-bit vpdpbusd per row, block and step (quad_dot; the
    same exact int32 sums as the two 256-bit ones), then each block through
    _epilogue_zmm (block b: positions 16 b.., ncols - 16 b of them, at most 16)."""
    i64 = ldb.type
    accs = [[cgutils.alloca_once_value(builder, ir.Constant(_V16I, [0] * 16)) for _ in range(NB)] for _ in range(R)]
    with cgutils.for_range(builder, kn) as loop:
        p = loop.index
        brow = builder.gep(pb, [builder.mul(p, ldb)])
        bvec = [builder.load(_ptr(builder, brow, ir.Constant(i64, 16 * b), _V16I), align=4) for b in range(NB)]
        arow = builder.gep(pa, [builder.mul(p, ir.Constant(i64, ROWS))])
        for r in range(R):
            a = _splat(builder, builder.load(_ptr(builder, arow, ir.Constant(i64, r), _I32), align=4), _V16I)
            for b in range(NB):
                builder.store(quad_dot(builder, builder.load(accs[r][b]), bvec[b], a, feats), accs[r][b])
    for b in range(NB):
        _epilogue_zmm(builder, [builder.load(accs[r][b]) for r in range(R)], pbias, pm,
                      builder.gep(pd, [ir.Constant(i64, 16 * b)]), ldd, zpv, lov, hiv, nrows,
                      _block_cols(builder, ncols, b, NB))


def _block_cols(builder, ncols, b, NB):
    """Block b's share of a tile's ncols positions (blocks of 16): clamp(ncols - 16 b, 0, 16)."""
    if NB == 1:
        return ncols
    i64 = ncols.type
    nc = builder.sub(ncols, ir.Constant(i64, 16 * b))
    nc = builder.select(builder.icmp_signed("<", nc, ir.Constant(i64, 0)), ir.Constant(i64, 0), nc)
    return builder.select(builder.icmp_signed(">", nc, ir.Constant(i64, 16)), ir.Constant(i64, 16), nc)


def _i8_tile_ymm(builder, R, u8, feats, pa, pb, ldb, kn, pbias, pm, pd, ldd, zpv, lov, hiv, nrows, ncols):
    """The i8_tile of 16 positions with two <8 x i32> accumulators per row (quad_dot for u8,
    vpmaddwd for s16), then _epilogue_rows."""
    vin = ir.VectorType(_I8, 32) if u8 else _V16S
    i64 = ldb.type
    accs = [[cgutils.alloca_once_value(builder, ir.Constant(_V8I, [0] * 8)) for _ in range(2)] for _ in range(R)]
    with cgutils.for_range(builder, kn) as loop:
        p = loop.index
        brow = builder.gep(pb, [builder.mul(p, ldb)])
        bvec = [builder.bitcast(builder.load(_ptr(builder, brow, ir.Constant(i64, 8 * h), _V8I), align=4), vin)
                for h in range(2)]
        arow = builder.gep(pa, [builder.mul(p, ir.Constant(i64, ROWS))])
        for r in range(R):
            w = builder.load(_ptr(builder, arow, ir.Constant(i64, r), _I32), align=4)
            a = builder.bitcast(_splat(builder, w, _V8I), vin)
            for h in range(2):
                acc = builder.load(accs[r][h])
                builder.store(quad_dot(builder, acc, bvec[h], a, feats) if u8
                              else builder.add(acc, pair_madd(builder, a, bvec[h])), accs[r][h])
    _epilogue_rows(builder, [[builder.load(a) for a in accs[r]] for r in range(R)], pbias, pm, pd, ldd,
                   zpv, lov, hiv, nrows, ncols, "avx2" in feats, False)


def _make_i8_tile(R, u8, NB=1):
    @intrinsic
    def i8_tile(typingctx, A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, nrows, ncols):
        """int8 GEMM tile of R output channels x 16 NB positions on int32 words, each packing
        consecutive k of one channel (A) or one position (B) (NB = 2: the u8 tiles u8_wide*, for
        WIDE_I8 targets, twelve zmm accumulators for R = 6). For r < nrows, j < ncols:
        acc = sum over steps s < KS of dot(A[ao + ROWS * s + r], B[bo + s * ldb + j]) in int32,
        D[do + r * ldd + j] = clamp(rint(float32(acc + bias[bi + r]) * M[mi + r]) + y_zp, qmin,
        qmax) as int8 (float32 arithmetic as kernels_conv._requant_run). s16 tiles: a word is
        two int16 (k = 2s, 2s + 1), dot = lo * lo + hi * hi (exact; vpmaddwd). u8 tiles: a word
        is four bytes (k = 4s..4s + 3), A int8 weights and B uint8 activations, dot = the
        vpdpbusd or vpmaddubsw/vpmaddwd sum (quad_dot: exact when every pair of consecutive
        weights has |w0| + |w1| <= 128). int32 wraps; the planner proves the true sums fit. B is
        read for all 16 NB columns (the packed buffer is padded); D outside the tile is not
        written."""
        sig = types.void(A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, nrows, ncols)

        def codegen(context, builder, signature, args):
            (av, aoff, bv, boff, ldbv, kn, dv, doff, lddv, biasv, bioff, mv, moff, zpv, lov, hiv,
             nrowsv, ncolsv) = _ints64(context, builder, signature, args)
            st = signature.args
            feats = codegen_features(context)
            pa = builder.gep(_array(context, builder, st[0], av).data, [aoff])
            pb = builder.gep(_array(context, builder, st[2], bv).data, [boff])
            pd = builder.gep(_array(context, builder, st[6], dv).data, [doff])
            pbias = builder.gep(_array(context, builder, st[9], biasv).data, [bioff])
            pm = builder.gep(_array(context, builder, st[11], mv).data, [moff])
            if u8 and wide_i8(feats):  # one zmm vpdpbusd per row, block and step
                _i8_tile_zmm(builder, R, NB, pa, pb, ldbv, kn, feats, pbias, pm, pd, lddv, zpv, lov, hiv, nrowsv,
                             ncolsv)
            else:  # block by block (NB > 1 is only called on WIDE_I8 targets: elsewhere it would spill)
                for b in range(NB):
                    off = ir.Constant(ldbv.type, 16 * b)
                    _i8_tile_ymm(builder, R, u8, feats, pa, builder.gep(pb, [off]), ldbv, kn, pbias, pm,
                                 builder.gep(pd, [off]), lddv, zpv, lov, hiv, nrowsv,
                                 _block_cols(builder, ncolsv, b, NB))
            return context.get_dummy_value()

        return sig, codegen
    return i8_tile


_LO16 = [0, 16, 1, 17, 2, 18, 3, 19, 8, 24, 9, 25, 10, 26, 11, 27]   # vpunpcklwd
_HI16 = [4, 20, 5, 21, 6, 22, 7, 23, 12, 28, 13, 29, 14, 30, 15, 31]  # vpunpckhwd
# vpunpck{l,h}wd on zmm: within each 128-bit lane (positions 8l .. 8l + 7) the low / high four
# positions of rows x0 and x1, interleaved
_LO32 = [i + 8 * lane + 32 * r for lane in range(4) for i in range(4) for r in range(2)]
_HI32 = [4 + i + 8 * lane + 32 * r for lane in range(4) for i in range(4) for r in range(2)]


# the wide s16 tile's accumulators (lo: positions 0-3, 8-11, 16-19, 24-27; hi: 4-7, 12-15, 20-23,
# 28-31) -> positions 16 b .. 16 b + 15 in order, as a shuffle of (lo, hi) lanes (hi = 16 + lane)
_ZMM_ORDER = [[(16 if (p // 4) % 2 else 0) + 4 * (p // 8) + p % 4 for p in range(16 * b, 16 * b + 16)]
              for b in range(2)]


def _make_s16_rows_tile(R, NB=1):
    @intrinsic
    def s16_rows_tile(typingctx, A, ao, Z, zo, RT, ro, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, nrows, ncols):
        """int8 GEMM tile of R (<= ROWS) output channels x 16 NB positions reading B in place: row k
        of B is 16 NB int16 values (x - x_zp) at Z[zo + RT[ro + k]:] (Z addressed in int16
        elements), rows 2s and 2s + 1 interleaved in registers (vpunpck*wd) and multiplied with
        the weight pair A[ao + ROWS * s + r] (int16 pair in an int32 word) by vpmaddwd, s < KS: no
        packing pass (an implicit GEMM for the shifted / windowed plane copies). For r < nrows
        (<= R), j < ncols: D[do + r * ldd + j] = clamp(rint(float32(acc + bias[bi + r]) * M[mi +
        r]) + y_zp, qmin, qmax), acc exact in int32 (the planner proves it fits). RT holds 2 KS
        offsets (an odd row count repeats a row with weight 0); 16 NB values are read per row, A
        rows r < R of every s. NB = 2 (s16_rows_wide*, for WIDE_I8 targets): 512-bit vectors, two
        zmm accumulators per row (lo holds positions 0-3, 8-11 | 16-19, 24-27, hi 4-7, 12-15 |
        20-23, 28-31, put in order by _ZMM_ORDER for the zmm epilogue); elsewhere the same
        integers in whatever the target has."""
        sig = types.void(A, ao, Z, zo, RT, ro, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, nrows, ncols)
        lanes = 8 * NB  # int32 lanes per accumulator
        vs, vi = ir.VectorType(_I16, 2 * lanes), ir.VectorType(_I32, lanes)

        def codegen(context, builder, signature, args):
            (av, aoff, zv, zoff, rtv, roff, kn, dv, doff, lddv, biasv, bioff, mv, moff, zpv, lov, hiv,
             nrowsv, ncolsv) = _ints64(context, builder, signature, args)
            st = signature.args
            i64 = kn.type
            pa = builder.gep(_array(context, builder, st[0], av).data, [aoff])
            z16 = builder.gep(builder.bitcast(_array(context, builder, st[2], zv).data, _I16.as_pointer()), [zoff])
            prt = builder.gep(_array(context, builder, st[4], rtv).data, [roff])
            pd = builder.gep(_array(context, builder, st[7], dv).data, [doff])
            pbias = builder.gep(_array(context, builder, st[10], biasv).data, [bioff])
            pm = builder.gep(_array(context, builder, st[12], mv).data, [moff])
            lo_idx = ir.Constant(ir.VectorType(_I32, 2 * lanes), _LO16 if NB == 1 else _LO32)
            hi_idx = ir.Constant(ir.VectorType(_I32, 2 * lanes), _HI16 if NB == 1 else _HI32)
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(vi, [0] * lanes)) for _ in range(2)]
                    for _ in range(R)]
            with cgutils.for_range(builder, kn) as loop:
                s_ = loop.index
                k0 = builder.mul(s_, ir.Constant(i64, 2))
                r0 = builder.sext(builder.load(builder.gep(prt, [k0])), i64)
                r1 = builder.sext(builder.load(builder.gep(prt, [builder.add(k0, ir.Constant(i64, 1))])), i64)
                x0 = builder.load(_ptr(builder, z16, r0, vs), align=2)
                x1 = builder.load(_ptr(builder, z16, r1, vs), align=2)
                bv = [builder.shuffle_vector(x0, x1, lo_idx), builder.shuffle_vector(x0, x1, hi_idx)]
                arow = builder.gep(pa, [builder.mul(s_, ir.Constant(i64, ROWS))])
                for r in range(R):
                    w = builder.bitcast(_splat(builder, builder.load(builder.gep(arow, [ir.Constant(i64, r)])), vi), vs)
                    for h in range(2):
                        builder.store(builder.add(builder.load(accs[r][h]), pair_madd(builder, bv[h], w)), accs[r][h])
            x86 = "avx2" in codegen_features(context)
            for b in range(NB):  # each block of 16 positions as it is stored
                pb_ = builder.gep(pd, [ir.Constant(i64, 16 * b)])
                nc = _block_cols(builder, ncolsv, b, NB)
                if NB == 2:  # in order by one two-source permute per row (vpermt2d), then whole zmm
                    order = ir.Constant(_V16I, _ZMM_ORDER[b])
                    rows = [builder.shuffle_vector(builder.load(accs[r][0]), builder.load(accs[r][1]), order)
                            for r in range(R)]
                    _epilogue_zmm(builder, rows, pbias, pm, pb_, lddv, zpv, lov, hiv, nrowsv, nc)
                else:
                    parts = [[builder.load(a) for a in accs[r]] for r in range(R)]
                    _epilogue_rows(builder, parts, pbias, pm, pb_, lddv, zpv, lov, hiv, nrowsv, nc, x86, True)
            return context.get_dummy_value()

        return sig, codegen
    return s16_rows_tile


s16_rows_wide2 = _make_s16_rows_tile(2, 2)
s16_rows_wide4 = _make_s16_rows_tile(4, 2)
s16_rows_wide6 = _make_s16_rows_tile(ROWS, 2)
s16_rows_tile2 = _make_s16_rows_tile(2)
s16_rows_tile4 = _make_s16_rows_tile(4)
s16_rows_tile6 = _make_s16_rows_tile(ROWS)
s16_tile2 = _make_i8_tile(2, False)
s16_tile4 = _make_i8_tile(4, False)
s16_tile6 = _make_i8_tile(6, False)
u8_tile2 = _make_i8_tile(2, True)
u8_tile4 = _make_i8_tile(4, True)
u8_tile6 = _make_i8_tile(6, True)
u8_wide2 = _make_i8_tile(2, True, 2)
u8_wide4 = _make_i8_tile(4, True, 2)
u8_wide6 = _make_i8_tile(6, True, 2)


# -- depthwise tiles ---------------------------------------------------------------------------
# DW_CH channels x DW_COLS positions; each tap (or tap pair) is one shifted vector load per 8
# positions from a zero-margined, pre-masked copy of the channel's input plane.

DW_COLS = 32


def _dw_channels(builder, nch, i64, base, stride, n):
    """Per tile channel c < n (the tile's channel count): base + min(c, nch - 1) * stride
    (channels past nch re-read the last)."""
    last = builder.sub(nch, ir.Constant(i64, 1))
    out = []
    for c in range(n):
        cc = builder.select(builder.icmp_signed("<", ir.Constant(i64, c), nch), ir.Constant(i64, c), last)
        out.append((builder.gep(base, [builder.mul(cc, stride)]), cc))
    return out


@intrinsic
def dw_tile_f32(typingctx, Z, zo, zs, T, to, ntaps, W, wo, ws, bias, bi, D, do, ds, nch, ncols, relu):
    """Depthwise float32 tile: nch <= DW_CH_F32 channels x ncols <= DW_COLS output positions. For
    channel c < nch and position j < ncols: acc = bias[bi + c], then for t < ntaps in order
    acc = fma(W[wo + c * ws + t], Z[zo + c * zs + T[to + t] + j], acc); D[do + c * ds + j] =
    act(acc), act = ReLU (0 if v < 0 else v) when relu != 0. Reads DW_COLS positions of every
    tap (callers pad the buffers)."""
    sig = types.void(Z, zo, zs, T, to, ntaps, W, wo, ws, bias, bi, D, do, ds, nch, ncols, relu)
    nv = DW_COLS // 8

    def codegen(context, builder, signature, args):
        (zv, zoff, zsv, tv, toff, nt, wv, woff, wsv, biasv, bioff, dv, doff, dsv, nch, ncols,
         reluv) = _ints64(context, builder, signature, args)
        st = signature.args
        i64 = zsv.type
        chz = _dw_channels(builder, nch, i64, builder.gep(_array(context, builder, st[0], zv).data, [zoff]), zsv, DW_CH_F32)
        chw = _dw_channels(builder, nch, i64, builder.gep(_array(context, builder, st[6], wv).data, [woff]), wsv, DW_CH_F32)
        pt = builder.gep(_array(context, builder, st[3], tv).data, [toff])
        pbias = builder.gep(_array(context, builder, st[9], biasv).data, [bioff])
        pd = builder.gep(_array(context, builder, st[11], dv).data, [doff])
        accs = []
        for c in range(DW_CH_F32):
            b = _splat(builder, builder.load(builder.gep(pbias, [chz[c][1]])), _V8F)
            accs.append([cgutils.alloca_once_value(builder, b) for _ in range(nv)])
        with cgutils.for_range(builder, nt) as loop:
            t = loop.index
            off = builder.sext(builder.load(builder.gep(pt, [t])), i64)
            for c in range(DW_CH_F32):
                w = _splat(builder, builder.load(builder.gep(chw[c][0], [t])), _V8F)
                xp = builder.gep(chz[c][0], [off])
                for h in range(nv):
                    x = builder.load(_ptr(builder, xp, ir.Constant(i64, 8 * h), _V8F), align=4)
                    builder.store(_fma(builder, w, x, builder.load(accs[c][h])), accs[c][h])
        floor = _relu_floor(builder, reluv)
        for c in range(DW_CH_F32):
            with builder.if_then(builder.icmp_signed(">", nch, ir.Constant(i64, c))):
                vals = []
                for h in range(nv):
                    vals.append(_relu(builder, builder.load(accs[c][h]), floor))
                store_cols(builder, vals, builder.gep(pd, [builder.mul(dsv, ir.Constant(i64, c))]), ncols, _V8F, 4)
        return context.get_dummy_value()

    return sig, codegen




@intrinsic
def dw_tile_i8(typingctx, Z, zo, zs, T, to, npairs, W, wo, ws, bias, bi, D, do, ds, nch, ncols,
               M, mi, y_zp, qmin, qmax):
    """Depthwise int8 tile on int16 planes: nch <= DW_CH channels x ncols <= DW_COLS positions.
    Z holds int16 values (x - x_zp) and is addressed in int16 elements (whatever Z's dtype);
    taps come in pairs: pair p reads at offsets T[to + 2p] and T[to + 2p + 1] (int16 elements
    past zo + c * zs), with the int16 weight pair in the int32 word W[wo + c * ws + p]. For
    c < nch, j < ncols: acc = sum over pairs of w0 * x0[j] + w1 * x1[j] (int32, exact: vpmaddwd
    on interleaved positions), D[do + c * ds + j] = clamp(rint(float32(acc + bias[bi + c]) *
    M[mi + c]) + y_zp, qmin, qmax) (int8)."""
    sig = types.void(Z, zo, zs, T, to, npairs, W, wo, ws, bias, bi, D, do, ds, nch, ncols, M, mi, y_zp, qmin, qmax)
    nv = DW_COLS // 16  # <16 x i16> loads per tap

    def codegen(context, builder, signature, args):
        (zv, zoff, zsv, tv, toff, np_, wv, woff, wsv, biasv, bioff, dv, doff, dsv, nch, ncols,
         mv, moff, zpv, lov, hiv) = _ints64(context, builder, signature, args)
        st = signature.args
        i64 = zsv.type
        z16 = builder.bitcast(_array(context, builder, st[0], zv).data, _I16.as_pointer())
        chz = _dw_channels(builder, nch, i64, builder.gep(z16, [zoff]), zsv, DW_CH)
        w32 = builder.bitcast(_array(context, builder, st[6], wv).data, _I32.as_pointer())
        chw = _dw_channels(builder, nch, i64, builder.gep(w32, [woff]), wsv, DW_CH)
        pt = builder.gep(_array(context, builder, st[3], tv).data, [toff])
        pbias = builder.gep(_array(context, builder, st[9], biasv).data, [bioff])
        pm = builder.gep(_array(context, builder, st[16], mv).data, [moff])
        pd = builder.gep(_array(context, builder, st[11], dv).data, [doff])
        # zmm rows on WIDE_I8 targets: 32 int16 a load, vpunpck*wd and vpdpwssd on 512 bits (lo
        # holds positions 0-3, 8-11 | 16-19, 24-27, hi 4-7, 12-15 | 20-23, 28-31: _ZMM_ORDER)
        zmm = wide_i8(codegen_features(context)) and DW_COLS == 32
        lanes, per = (16, 1) if zmm else (8, nv)  # int32 lanes per accumulator, loads per tap row
        vs = ir.VectorType(_I16, 2 * lanes)
        vi = ir.VectorType(_I32, lanes)
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(vi, [0] * lanes)) for _ in range(2 * per)]
                for _ in range(DW_CH)]
        lo_idx = ir.Constant(ir.VectorType(_I32, 2 * lanes), _LO32 if zmm else _LO16)
        hi_idx = ir.Constant(ir.VectorType(_I32, 2 * lanes), _HI32 if zmm else _HI16)
        with cgutils.for_range(builder, np_) as loop:
            p = loop.index
            two = ir.Constant(i64, 2)
            off0 = builder.sext(builder.load(builder.gep(pt, [builder.mul(p, two)])), i64)
            off1 = builder.sext(builder.load(builder.gep(pt, [builder.add(builder.mul(p, two),
                                                                          ir.Constant(i64, 1))])), i64)
            for c in range(DW_CH):
                w = builder.bitcast(_splat(builder, builder.load(builder.gep(chw[c][0], [p])), vi), vs)
                x0p = builder.gep(chz[c][0], [off0])
                x1p = builder.gep(chz[c][0], [off1])
                for h in range(per):
                    x0 = builder.load(_ptr(builder, x0p, ir.Constant(i64, 2 * lanes * h), vs), align=2)
                    x1 = builder.load(_ptr(builder, x1p, ir.Constant(i64, 2 * lanes * h), vs), align=2)
                    for k, idx in enumerate((lo_idx, hi_idx)):
                        v = builder.shuffle_vector(x0, x1, idx)
                        a = accs[c][2 * h + k]
                        builder.store(builder.add(builder.load(a), pair_madd(builder, v, w)), a)
        if zmm:  # positions 0-15 and 16-31 in order (_ZMM_ORDER), requantized as whole zmm
            req = _ZmmRequant(builder, zpv, lov, hiv)
            for c in range(DW_CH):
                with builder.if_then(builder.icmp_signed(">", nch, ir.Constant(i64, c))):
                    b = builder.load(builder.gep(pbias, [chz[c][1]]))
                    mult = builder.load(builder.gep(pm, [chz[c][1]]))
                    lo, hi = (builder.load(a) for a in accs[c])
                    vals = [req(builder.shuffle_vector(lo, hi, ir.Constant(_V16I, order)), b, mult)
                            for order in _ZMM_ORDER]
                    store_cols(builder, vals, builder.gep(pd, [builder.mul(dsv, ir.Constant(i64, c))]), ncols,
                               ir.VectorType(_I8, 16), 1)
            return context.get_dummy_value()
        x86 = "avx2" in codegen_features(context)
        zp32 = builder.trunc(zpv, _I32)
        lo = _splat(builder, builder.sitofp(builder.sub(lov, zpv), _F32), _V8F)
        hi = _splat(builder, builder.sitofp(builder.sub(hiv, zpv), _F32), _V8F)
        for c in range(DW_CH):
            with builder.if_then(builder.icmp_signed(">", nch, ir.Constant(i64, c))):
                b = _splat(builder, builder.load(builder.gep(pbias, [chz[c][1]])), _V8I)
                mult = _splat(builder, builder.load(builder.gep(pm, [chz[c][1]])), _V8F)
                rows = []
                for h in range(nv):
                    rows.append([_requant_i32(builder, builder.sitofp(builder.add(builder.load(accs[c][2 * h + k]), b),
                                                                     _V8F), mult, lo, hi, x86) for k in range(2)])
                vals = _narrow_rows(builder, rows, zp32, x86, True)
                store_cols(builder, vals, builder.gep(pd, [builder.mul(dsv, ir.Constant(i64, c))]), ncols,
                            ir.VectorType(_I8, 16), 1)
        return context.get_dummy_value()

    return sig, codegen


# -- depthwise int8 on uint8 quads of taps (DWQ) -----------------------------------------------
# One input plane at a time: dwq_build lays each position's (up to) four taps of one kernel row
# out as a uint8 quad (x + 128, the byte of padding where a tap falls outside the row), so a
# kernel row of a depthwise filter becomes one quad_dot per eight positions (vpdpbusd on VNNI,
# vpmaddubsw + vpmaddwd on AVX2) and the other kernel rows are the same quads read whole rows
# further on. dwq_tile sums the rows and requantizes 32 positions of one output channel.

DWQ_STEP = 32   # positions per dwq_build step (npad, the quads built per plane, is a multiple)
DWQ_COLS = 64   # positions per dwq_tile64
DWQ_NARROW = 32  # positions per dwq_tile32: planes of at most this many outputs take it


@intrinsic
def dwq_build(typingctx, S, so, npad, MK, mo, OF, ofo, nt, Q, qo, zp):
    """Quads of one plane: for k < npad (a multiple of DWQ_STEP) and slot t < 4, byte
    Q[qo + 4 k + t] = S[so + k + OF[ofo + t]] + 128 (mod 256: x ^ 0x80) where t < nt and byte
    MK[mo + t npad + k] is negative (-1), else zp + 128 (the byte of x = zp: padding; slots t >= nt
    hold it; the planner's masks are 0 there too). S int8, Q any array addressed in bytes, MK and
    OF int32 arrays (mo counts MK's bytes). 32 positions a step, the slots interleaved in
    registers (vpunpck*bw / vpunpck*wd on x86); two loops: nt = 3 (3-wide kernels: the fourth
    slot without a load) and any other nt (every slot loaded and masked)."""
    sig = types.void(S, so, npad, MK, mo, OF, ofo, nt, Q, qo, zp)

    def codegen(context, builder, signature, args):
        sv, soff, npv, mv, moff, ofv, ofoff, ntv, qv, qoff, zpv = _ints64(context, builder, signature, args)
        st = signature.args
        i64 = npv.type
        v32b = ir.VectorType(_I8, 32)
        ps = builder.gep(_array(context, builder, st[0], sv).data, [soff])
        pm = builder.gep(builder.bitcast(_array(context, builder, st[3], mv).data, _I8.as_pointer()), [moff])
        pof = builder.gep(_array(context, builder, st[5], ofv).data, [ofoff])
        pq = builder.gep(builder.bitcast(_array(context, builder, st[8], qv).data, _I8.as_pointer()), [qoff])
        pad = _pad_byte(builder, zpv, v32b)
        zero = ir.Constant(v32b, [0] * 32)
        nblk = builder.sdiv(npv, ir.Constant(i64, DWQ_STEP))

        def build(n_used):
            offs = [builder.sext(builder.load(builder.gep(pof, [ir.Constant(i64, t)])), i64) for t in range(n_used)]
            with cgutils.for_range(builder, nblk) as loop:
                k = builder.mul(loop.index, ir.Constant(i64, DWQ_STEP))
                slots = []
                for t in range(4):
                    if t >= n_used:
                        slots.append(pad)
                        continue
                    x = _u8_byte(builder, builder.load(_ptr(builder, ps, builder.add(k, offs[t]), v32b), align=1))
                    mk = builder.load(_ptr(builder, pm, builder.add(k, builder.mul(npv, ir.Constant(i64, t))), v32b),
                                      align=1)
                    slots.append(builder.select(builder.icmp_signed("<", mk, zero), x, pad))  # vpblendvb on the sign
                _store_quads32(builder, slots, builder.gep(pq, [builder.mul(k, ir.Constant(i64, 4))]), i64)

        with builder.if_else(builder.icmp_signed("==", ntv, ir.Constant(i64, 3))) as (three, other):
            with three:
                build(3)  # a 3-wide kernel: the fourth slot is padding, no load
            with other:
                build(4)  # the masks hold padding for the slots past nt
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def copy_bytes(typingctx, X, xo, Z, zo, n):
    """Z[zo + k] = X[xo + k] for k < n, byte for byte (X and Z any arrays, offsets and n in
    bytes; the two ranges must not overlap): 32 bytes a step, the last step overlapping the one
    before when n >= 32, a byte at a time below that, inline (a Numba loop over the elements
    keeps a negative-index check per access and copies a byte at a time; llvm.memcpy of a
    variable size is a call into libc, ~10 ns for a small plane)."""
    sig = types.void(X, xo, Z, zo, n)

    def codegen(context, builder, signature, args):
        xv, xoff, zv, zoff, nv_ = _ints64(context, builder, signature, args)
        st = signature.args
        i64 = nv_.type
        v32b = ir.VectorType(_I8, 32)
        px = builder.gep(builder.bitcast(_array(context, builder, st[0], xv).data, _I8.as_pointer()), [xoff])
        pz = builder.gep(builder.bitcast(_array(context, builder, st[2], zv).data, _I8.as_pointer()), [zoff])
        with builder.if_else(builder.icmp_signed(">=", nv_, ir.Constant(i64, 32))) as (big, small):
            with big:
                with _overlapping_steps(builder, nv_, 32) as k:
                    builder.store(builder.load(_ptr(builder, px, k, v32b), align=1), _ptr(builder, pz, k, v32b), align=1)
            with small:
                with cgutils.for_range(builder, nv_) as loop:
                    builder.store(builder.load(builder.gep(px, [loop.index])), builder.gep(pz, [loop.index]))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def qadd32(typingctx, A, ao, B, bo, D, do, n, azp, bzp, ma, mb, lo, hi, yzp):
    """QBINARY's residual add on n >= 32 int8 codes: D[do + k] = clamp(rint((A[ao + k] - azp) *
    ma + (B[bo + k] - bzp) * mb) + yzp, qmin, qmax) (the float32 arithmetic of
    kernels_graph._q_val / _q_out; azp, bzp, ma, mb, lo = qmin - yzp, hi = qmax - yzp float32,
    yzp an integer), 32 codes a step, the last step overlapping the one before (D must not
    overlap A or B). Per 8 codes: vpmovsxbd, vcvtdq2ps, a subtract and a multiply per operand, an
    add, the clamp and vcvtps2dq (_round_clamped), then _narrow_rows' packs: 60 instructions per
    32 codes, where the loop Numba made of _q_out took 42 per 16 (measured on a Zen 2: 16 x 32 x
    32 codes 5.65 -> 4.55 us; converting by the 1.5 * 2^23 bit trick instead of vcvtdq2ps did
    not change the time)."""
    sig = types.void(A, ao, B, bo, D, do, n, azp, bzp, ma, mb, lo, hi, yzp)

    def codegen(context, builder, signature, args):
        av, aoff, bv, boff, dv, doff, nv_, azp_, bzp_, ma_, mb_, lo_, hi_, yzp_ = _ints64(context, builder, signature, args)
        st = signature.args
        x86 = "avx2" in codegen_features(context)
        i64 = nv_.type
        pa = builder.gep(_array(context, builder, st[0], av).data, [aoff])
        pb = builder.gep(_array(context, builder, st[2], bv).data, [boff])
        pd = builder.gep(_array(context, builder, st[4], dv).data, [doff])
        f = [_splat(builder, builder.fptrunc(v, _F32) if v.type != _F32 else v, _V8F)
             for v in (azp_, bzp_, ma_, mb_, lo_, hi_)]
        v16b = ir.VectorType(_I8, 16)
        with _overlapping_steps(builder, nv_, 32) as k:
            rows = []
            for half in range(2):
                pair = []
                for j in range(2):
                    o = builder.add(k, ir.Constant(i64, 16 * half + 8 * j))
                    xa = builder.sitofp(builder.sext(builder.load(_ptr(builder, pa, o, _V8I8), align=1), _V8I), _V8F)
                    xb = builder.sitofp(builder.sext(builder.load(_ptr(builder, pb, o, _V8I8), align=1), _V8I), _V8F)
                    v = builder.fadd(builder.fmul(builder.fsub(xa, f[0]), f[2]), builder.fmul(builder.fsub(xb, f[1]), f[3]))
                    pair.append(_round_clamped(builder, v, f[4], f[5], x86))
                rows.append(tuple(pair))
            for half, r in enumerate(_narrow_rows(builder, rows, builder.trunc(yzp_, _I32), x86, False)):
                builder.store(r, _ptr(builder, pd, builder.add(k, ir.Constant(i64, 16 * half)), v16b), align=1)
        return context.get_dummy_value()

    return sig, codegen


def _make_dwq_tile(cols):
    @intrinsic
    def dwq_tile(typingctx, Q, qo, T, to, nk, W, wo, bias, bi, M, mi, D, do, ncols, y_zp, qmin, qmax):
        """One output channel, ncols <= cols positions of it (cols = 32 or 64: dwq_tile32 /
        dwq_tile64): for j < cols, acc[j] = bias[bi] + sum over steps k < nk of the quad (Q int32
        word qo + T[to + k] + j, uint8 bytes) . (W word wo + k, int8 bytes) by quad_dot (exact
        where the planner takes this path); then D[do + j] = clamp(rint(float32(acc[j]) * M[mi]) +
        y_zp, qmin, qmax) (int8) for j < ncols. Q is any array addressed in int32 words; T, W,
        bias int32."""
        sig = types.void(Q, qo, T, to, nk, W, wo, bias, bi, M, mi, D, do, ncols, y_zp, qmin, qmax)
        nv = cols // 8

        def codegen(context, builder, signature, args):
            (qv, qoff, tv, toff, nkv, wv, woff, biasv, bioff, mv, moff, dv, doff, ncols, zpv, lov,
             hiv) = _ints64(context, builder, signature, args)
            st = signature.args
            i64 = nkv.type
            feats = codegen_features(context)
            x86 = "avx2" in feats
            v32b = ir.VectorType(_I8, 32)
            pq = builder.gep(builder.bitcast(_array(context, builder, st[0], qv).data, _I32.as_pointer()), [qoff])
            pt = builder.gep(_array(context, builder, st[2], tv).data, [toff])
            pw = builder.gep(builder.bitcast(_array(context, builder, st[5], wv).data, _I32.as_pointer()), [woff])
            b = _splat(builder, builder.load(builder.gep(_array(context, builder, st[7], biasv).data, [bioff])), _V8I)
            accs = [cgutils.alloca_once_value(builder, b) for _ in range(nv)]  # the bias first (exact in int32)
            with cgutils.for_range(builder, nkv) as loop:
                k = loop.index
                row = builder.gep(pq, [builder.sext(builder.load(builder.gep(pt, [k])), i64)])
                w = builder.bitcast(_splat(builder, builder.load(builder.gep(pw, [k])), _V8I), v32b)
                for h in range(nv):
                    x = builder.bitcast(builder.load(_ptr(builder, row, ir.Constant(i64, 8 * h), _V8I), align=4), v32b)
                    builder.store(quad_dot(builder, builder.load(accs[h]), x, w, feats), accs[h])
            mult = _splat(builder, builder.load(builder.gep(_array(context, builder, st[9], mv).data, [moff])), _V8F)
            lo = _splat(builder, builder.sitofp(builder.sub(lov, zpv), _F32), _V8F)
            hi = _splat(builder, builder.sitofp(builder.sub(hiv, zpv), _F32), _V8F)
            req = [_requant_i32(builder, builder.sitofp(builder.load(a), _V8F), mult, lo, hi, x86) for a in accs]
            vals = _narrow_rows(builder, [req[2 * r:2 * r + 2] for r in range(nv // 2)], builder.trunc(zpv, _I32),
                                x86, False)
            store_cols(builder, vals, builder.gep(_array(context, builder, st[11], dv).data, [doff]), ncols,
                       ir.VectorType(_I8, 16), 1)
            return context.get_dummy_value()

        return sig, codegen
    return dwq_tile


# 64 positions a tile: eight accumulators, the per-tile setup (step offsets, weight words, the
# requantization constants) paid half as often as with 32 (the DS-CNN's 25 x 5 depthwise layer
# alone 0.81-0.88x its time with 32-position tiles); 32 for planes of at most DWQ_NARROW outputs,
# where 64 would compute twice the positions kept
dwq_tile32 = _make_dwq_tile(DWQ_NARROW)
dwq_tile64 = _make_dwq_tile(DWQ_COLS)


# -- depthwise, channels in lanes (DW8) --------------------------------------------------------
# Eight output channels per vector: each input position of the eight channels' planes is one
# <8 x float> of a zero-margined, padded grid (dw8_pack), so every tap of every output is one
# aligned vector load at a fixed offset (no column masks, no misaligned loads), eight outputs
# (positions) per step share one weight vector, and the register tile is transposed back to
# channel rows on the way out.

DW8 = 8  # channels (lanes) per DW8 group, and positions per DW8 step


def _tr4(builder, rows):
    """Four <8 x T> vectors -> four: each 128-bit half transposed as a 4 x 4 block (out[k]
    holds element k of rows 0..3 in its low half and element 4 + k in its high half)."""
    def shuf(a, b, idx):
        return builder.shuffle_vector(a, b, ir.Constant(_V8I, idx))
    a, b, c, d = rows
    t0 = shuf(a, b, [0, 8, 1, 9, 4, 12, 5, 13])
    t1 = shuf(a, b, [2, 10, 3, 11, 6, 14, 7, 15])
    t2 = shuf(c, d, [0, 8, 1, 9, 4, 12, 5, 13])
    t3 = shuf(c, d, [2, 10, 3, 11, 6, 14, 7, 15])
    lo, hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
    return [shuf(t0, t2, lo), shuf(t0, t2, hi), shuf(t1, t3, lo), shuf(t1, t3, hi)]


def _channel_rows(builder, accs):
    """Eight <8 x T> position vectors (lanes: channels) -> eight channel vectors (lanes: the
    eight positions): out[l][r] = accs[r][l]."""
    o = _tr4(builder, accs[:4])
    p = _tr4(builder, accs[4:])
    first, second = ir.Constant(_V8I, [0, 1, 2, 3, 8, 9, 10, 11]), ir.Constant(_V8I, [4, 5, 6, 7, 12, 13, 14, 15])
    out = [None] * 8
    for k in range(4):
        out[k] = builder.shuffle_vector(o[k], p[k], first)
        out[k + 4] = builder.shuffle_vector(o[k], p[k], second)
    return out


def _lane_vector(builder, ptr, n, i64, lanes=8):
    """<lanes x T> of ptr[min(l, n - 1)] for lanes l (n >= 1): ptr[0:lanes] when n == lanes."""
    ety = ptr.type.pointee
    vty = ir.VectorType(ety, lanes)
    out = cgutils.alloca_once(builder, vty)
    with _if_else(builder, builder.icmp_signed("==", n, ir.Constant(i64, lanes))) as (then, otherwise):
        with then:
            builder.store(builder.load(builder.bitcast(ptr, vty.as_pointer()), align=4), out)
        with otherwise:
            last = builder.sub(n, ir.Constant(i64, 1))
            v = ir.Constant(vty, ir.Undefined)
            for lane in range(lanes):
                li = builder.select(builder.icmp_signed("<", ir.Constant(i64, lane), n), ir.Constant(i64, lane), last)
                v = builder.insert_element(v, builder.load(builder.gep(ptr, [li])), _c(lane))
            builder.store(v, out)
    return builder.load(out)


def _make_align(L):
    @intrinsic
    def align(typingctx, Z, zo):
        """The least offset >= zo (in float32 elements of Z's data, whatever Z's dtype) at which
        Z's data is 4 L-byte aligned, for data 4-byte aligned: zo + 0..L - 1."""
        sig = types.int64(Z, zo)

        def codegen(context, builder, signature, args):
            zv, zoff = _ints64(context, builder, signature, args)
            z32 = builder.bitcast(_array(context, builder, signature.args[0], zv).data, _F32.as_pointer())
            p = builder.ptrtoint(builder.gep(z32, [zoff]), zoff.type)
            k = builder.and_(builder.lshr(builder.sub(ir.Constant(zoff.type, 0), p), ir.Constant(zoff.type, 2)),
                             ir.Constant(zoff.type, L - 1))
            return builder.add(zoff, k)

        return sig, codegen
    return align


align8 = _make_align(8)    # 32-byte boundaries: the <8 x float> DW8 grid
align16 = _make_align(16)  # 64-byte boundaries: the <16 x float> grid (DW_LANES = 16)


@intrinsic
def dw8_pack(typingctx, X, xo, hw, o0, og, olast, Z, zo, PI, pio):
    """The DW8 grid of one group of eight output channels: lane l is output channel o =
    min(o0 + l, olast), reading input plane o // og (X[xo + (o // og) * hw:], hw >= 8
    positions). For k < hw: Z[zo + PI[pio + k] + l] = x[k] (float32; Z any array, addressed in
    float32 elements). Eight positions per step (two 4 x 4 transposes per 128-bit half, from half-row loads),
    the last step overlapping the one before. Writes nothing else of Z (its margins stay as they
    are)."""
    sig = types.void(X, xo, hw, o0, og, olast, Z, zo, PI, pio)

    def codegen(context, builder, signature, args):
        xv, xoff, hwv, o0v, ogv, olv, zv, zoff, pv, poff = _ints64(context, builder, signature, args)
        st = signature.args
        i64 = hwv.type
        px = builder.gep(_array(context, builder, st[0], xv).data, [xoff])
        pz = builder.gep(builder.bitcast(_array(context, builder, st[6], zv).data, _F32.as_pointer()), [zoff])
        pi = builder.gep(_array(context, builder, st[8], pv).data, [poff])
        chans = []  # each lane's input channel o // og (no division for og == 1, the usual depthwise)
        for lane in range(8):
            o = builder.add(o0v, ir.Constant(i64, lane))
            chans.append(cgutils.alloca_once_value(builder, builder.select(builder.icmp_signed(">", o, olv), olv, o)))
        with builder.if_then(builder.icmp_signed("!=", ogv, ir.Constant(i64, 1))):
            for c in chans:
                builder.store(builder.sdiv(builder.load(c), ogv), c)
        lanes = [builder.gep(px, [builder.mul(builder.load(c), hwv)]) for c in chans]
        half = ir.VectorType(_F32, 4)
        cat = ir.Constant(_V8I, list(range(8)))
        with _overlapping_steps(builder, hwv, 8) as k:
            for h in range(2):
                kh_ = builder.add(k, ir.Constant(i64, 4 * h))
                rows = []
                for r in range(4):
                    a = builder.load(_ptr(builder, lanes[r], kh_, half), align=4)
                    b = builder.load(_ptr(builder, lanes[r + 4], kh_, half), align=4)
                    rows.append(builder.shuffle_vector(a, b, cat))  # lanes r | r + 4, positions kh_ .. kh_ + 3
                for j, v in enumerate(_tr4(builder, rows)):
                    at = builder.load(builder.gep(pi, [builder.add(kh_, ir.Constant(i64, j))]))
                    builder.store(v, _ptr(builder, pz, builder.sext(at, i64), _V8F), align=4)
        return context.get_dummy_value()

    return sig, codegen


def _dw8_loop(builder, context, st, args, i64, init, epilogue, L=8):
    """dw8_f32's step loop (L lanes: channels): for each step of eight output positions k0
    (k0 = 0, 8, ...; the last min(k0, plane - 8)), acc[r] = init, then for t < nt in order
    acc[r] = fma(W[wo + L t:][:L], Z[zo + PB[pbo + k0 + r] + T[to + t]:][:L], acc[r]);
    epilogue(accs, k0)."""
    vf = ir.VectorType(_F32, L)
    zv, zoff, pbv, pboff, planev, tv, toff, ntv, wv, woff = args
    pz = builder.gep(builder.bitcast(_array(context, builder, st[0], zv).data, _F32.as_pointer()), [zoff])
    ppb = builder.gep(_array(context, builder, st[2], pbv).data, [pboff])
    pt = builder.gep(_array(context, builder, st[5], tv).data, [toff])
    wdata = _array(context, builder, st[8], wv).data
    pw = builder.gep(builder.bitcast(wdata, _F32.as_pointer()), [woff])
    nstep = builder.sdiv(builder.add(planev, ir.Constant(i64, 7)), ir.Constant(i64, 8))
    last = builder.sub(planev, ir.Constant(i64, 8))
    with cgutils.for_range(builder, nstep) as steps:
        k0 = builder.mul(steps.index, ir.Constant(i64, 8))
        k0 = builder.select(builder.icmp_signed(">", k0, last), last, k0)
        pk = builder.gep(ppb, [k0])
        bases = [builder.gep(pz, [builder.sext(builder.load(builder.gep(pk, [ir.Constant(i64, r)])), i64)])
                 for r in range(8)]
        accs = [cgutils.alloca_once(builder, vf) for _ in range(8)]
        for a in accs:
            builder.store(init, a)
        with cgutils.for_range(builder, ntv) as loop:
            t = loop.index
            off = builder.sext(builder.load(builder.gep(pt, [t])), i64)
            w = builder.load(_ptr(builder, pw, builder.mul(t, ir.Constant(i64, L)), vf), align=4)
            for r in range(8):
                x = builder.load(_ptr(builder, bases[r], off, vf), align=4)
                builder.store(_fma(builder, w, x, builder.load(accs[r])), accs[r])
        epilogue([builder.load(a) for a in accs], k0)


def _store_channels(builder, rows, pd, dsv, k0, nch, i64, vty, align):
    """rows[l] (eight positions of channel l) -> pd[l * ds + k0:][:8] for l < nch."""
    for lane in range(len(rows)):
        with builder.if_then(builder.icmp_signed(">", nch, ir.Constant(i64, lane)), likely=True):
            at = builder.add(builder.mul(dsv, ir.Constant(i64, lane)), k0)
            builder.store(rows[lane], _ptr(builder, pd, at, vty), align=align)


def _make_dw8_f32(L):
    @intrinsic
    def dw8_f32(typingctx, Z, zo, PB, pbo, plane, T, to, nt, W, wo, bias, bi, nch, D, do, ds, relu):
        """DW8 float32, one group of nch <= L output channels (lanes: L = 8, or 16 for the grid of
        AVX-512 targets, DW_LANES) over plane >= 8 output positions: for k < plane, lane l < nch:
        acc = bias[bi + l], then for t < nt in order acc = fma(W[wo + L t + l], Z[zo + PB[pbo + k]
        + T[to + t] + l], acc); D[do + l * ds + k] = act(acc), ReLU (0 if v < 0 else v) when
        relu != 0. Eight positions per step (the last overlapping the one before: the same values
        again)."""
        sig = types.void(Z, zo, PB, pbo, plane, T, to, nt, W, wo, bias, bi, nch, D, do, ds, relu)

        def codegen(context, builder, signature, args):
            args = _ints64(context, builder, signature, args)
            st = signature.args
            biasv, bioff, nchv, dv, doff, dsv, reluv = args[10:]
            i64 = args[1].type
            bvec = _lane_vector(builder, builder.gep(_array(context, builder, st[10], biasv).data, [bioff]), nchv, i64,
                                L)
            pd = builder.gep(_array(context, builder, st[13], dv).data, [doff])
            floor = _relu_floor(builder, reluv, ir.VectorType(_F32, L))

            def epilogue(accs, k0):
                vals = [_relu(builder, v, floor) for v in accs]
                if L == 8:
                    rows = _channel_rows(builder, vals)
                else:  # channels 0..7 from the low halves, 8..15 from the high ones
                    halves = [[builder.shuffle_vector(v, v, ir.Constant(_V8I, list(range(8 * h, 8 * h + 8))))
                               for v in vals] for h in range(2)]
                    rows = _channel_rows(builder, halves[0]) + _channel_rows(builder, halves[1])
                _store_channels(builder, rows, pd, dsv, k0, nchv, i64, _V8F, 4)

            _dw8_loop(builder, context, st, args[:10], i64, bvec, epilogue, L)
            return context.get_dummy_value()

        return sig, codegen
    return dw8_f32


dw8_f32 = _make_dw8_f32(8)
dw16_f32 = _make_dw8_f32(16)


@intrinsic
def pack_quads16(typingctx, X, r0, r1, r2, r3, add, Bw, bo):
    """Sixteen uint8 quads: for p < 16, the int32 word Bw[bo + p] has the bytes (X[r_t + p] + add)
    mod 256 for t = 0..3, t = 0 in the low byte (X int8, or int16 added in int16 then truncated;
    Bw int32). Byte interleaves in registers (vpunpck*bw, vpunpck*wd on x86)."""
    sig = types.void(X, r0, r1, r2, r3, add, Bw, bo)

    def codegen(context, builder, signature, args):
        xv, o0, o1, o2, o3, addv, bv, boff = _ints64(context, builder, signature, args)
        st = signature.args
        px = _array(context, builder, st[0], xv).data
        pb = builder.gep(_array(context, builder, st[6], bv).data, [boff])
        v16b = ir.VectorType(_I8, 16)
        if st[0].dtype.bitwidth == 16:  # int16 rows: + add in int16, then the low bytes
            a16 = _splat(builder, builder.trunc(addv, _I16), _V16S)
            rows = [builder.trunc(builder.add(builder.load(_ptr(builder, px, o, _V16S), align=2), a16), v16b)
                    for o in (o0, o1, o2, o3)]
        else:
            a8 = _splat(builder, builder.trunc(addv, _I8), v16b)
            rows = [builder.add(builder.load(_ptr(builder, px, o, v16b), align=1), a8) for o in (o0, o1, o2, o3)]
        inter8 = ir.Constant(ir.VectorType(_I32, 32), [k for p in range(16) for k in (p, p + 16)])
        v01 = builder.bitcast(builder.shuffle_vector(rows[0], rows[1], inter8), _V16S)
        v23 = builder.bitcast(builder.shuffle_vector(rows[2], rows[3], inter8), _V16S)
        w = builder.shuffle_vector(v01, v23, inter8)  # <32 x i16>: (b0 b1), (b2 b3) per position
        builder.store(builder.bitcast(w, _V16I), builder.bitcast(pb, _V16I.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def pack_quads32(typingctx, X, r0, r1, r2, r3, add, Bw, bo):
    """Thirty-two uint8 quads: for p < 32, the int32 word Bw[bo + p] has the bytes (X[r_t + p] +
    add) mod 256 for t = 0..3, t = 0 in the low byte (X int8 or uint8, Bw int32): pack_quads16's words,
    32 a step with the in-lane byte interleave (_store_quads32)."""
    if X.dtype.bitwidth != 8:
        return None
    sig = types.void(X, r0, r1, r2, r3, add, Bw, bo)

    def codegen(context, builder, signature, args):
        xv, o0, o1, o2, o3, addv, bv, boff = _ints64(context, builder, signature, args)
        st = signature.args
        v32b = ir.VectorType(_I8, 32)
        px = _array(context, builder, st[0], xv).data
        pb = builder.bitcast(builder.gep(_array(context, builder, st[6], bv).data, [boff]), _I8.as_pointer())
        a8 = _splat(builder, builder.trunc(addv, _I8), v32b)
        slots = [builder.add(builder.load(_ptr(builder, px, o, v32b), align=1), a8) for o in (o0, o1, o2, o3)]
        _store_quads32(builder, slots, pb, boff.type)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def run16(typingctx, X, xo, Z, zo, zp):
    """Sixteen copy values: Z[zo + j] = the value of X[xo + j] in Z's form for j < 16 (as
    kernels_conv._window_value): X int8 into Z addressed in int16 elements, int16(x) - zp
    (vpmovsxbw, vpsubw), or into Z uint8, x + 128 (the u8 tile's byte; zp unused); X and Z
    float32: x itself (one 512-bit or two 256-bit moves; zp unused). Reads X[xo:xo + 16],
    writes 16 elements."""
    sig = types.void(X, xo, Z, zo, zp)
    out8 = Z.dtype == types.uint8
    f32 = X.dtype == types.float32

    def codegen(context, builder, signature, args):
        xv, xoff, zv, zoff, zpv = _ints64(context, builder, signature, args)
        st = signature.args
        px = builder.gep(_array(context, builder, st[0], xv).data, [xoff])
        if f32:
            pz = builder.gep(_array(context, builder, st[2], zv).data, [zoff])
            x = builder.load(builder.bitcast(px, _V16F.as_pointer()), align=4)
            builder.store(x, builder.bitcast(pz, _V16F.as_pointer()), align=4)
            return context.get_dummy_value()
        ety = _I8 if out8 else _I16
        pz = builder.gep(builder.bitcast(_array(context, builder, st[2], zv).data, ety.as_pointer()), [zoff])
        x = builder.load(builder.bitcast(px, ir.VectorType(_I8, 16).as_pointer()), align=1)
        if out8:
            y = _u8_byte(builder, x)
        else:
            y = builder.sub(builder.sext(x, _V16S), _splat(builder, builder.trunc(zpv, _I16), _V16S))
        builder.store(y, builder.bitcast(pz, y.type.as_pointer()), align=1 if out8 else 2)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def run16_f32(typingctx, X, xo, Z, zo, n):
    """Z[zo + j] = X[xo + j] for j < n <= 16 (float32): one masked 512-bit load and store (AVX-512
    targets: kernels_tile.WIDE_F32; lanes past n are neither read nor written)."""
    sig = types.void(X, xo, Z, zo, n)

    def codegen(context, builder, signature, args):
        xv, xoff, zv, zoff, nv = _ints64(context, builder, signature, args)
        st = signature.args
        px = _ptr(builder, _array(context, builder, st[0], xv).data, xoff, _V16F)
        pz = _ptr(builder, _array(context, builder, st[2], zv).data, zoff, _V16F)
        mask = _lane_mask(builder, nv, 0, 16)
        x = _masked_load(builder, px, _V16F, mask, 4)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [_V16F, pz.type, _I32, mask.type]), "llvm.masked.store.v16f32.p0")
        builder.call(fn, [x, pz, _c(4), mask])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def maxpool2_rows(typingctx, X, xo, r1, D, do, nrows, oh, hw, rs, ow, lanes):
    """A 2-wide, stride-2 max pool over one or two rows, ``nrows`` output rows of ow outputs
    in order: output row k = p * oh + i (plane p, row i) at D[do + k * ow:], its input row at
    x = X[xo + p * hw + i * rs:] (and x + r1, r1 = 0: one row). Output j: a = x[2j], then each
    of x[2j + 1], x[r1 + 2j], x[r1 + 2j + 1] replaces a if greater (the reference's window order;
    with float32 NaN a NaN first stays, a later NaN never replaces; one row compares only
    x[2j + 1], as the repeated pair cannot change a). V = ``lanes`` outputs per
    step (int8: 16; float32: the caller's pool_f32_lanes(ow), 8 or POOL_F32_LANES), steps j0 =
    0, V, ... below ow, so a row's last step reads up to x[r1 + 2 j0 + 2V] and writes up to D[k * ow + j0 + V]: the outputs past ow land in the next
    row, which is written after it (callers keep the last rows' steps inside the arrays). X and
    D int8 or float32 (the same dtype)."""
    sig = types.void(X, xo, r1, D, do, nrows, oh, hw, rs, ow, lanes)
    f32 = X.dtype == types.float32

    def codegen(context, builder, signature, args):
        xv, xoff, r1v, dv, doff, nr, ohv, hwv, rsv, owv, lanesv = _ints64(context, builder, signature, args)
        st = signature.args
        i64 = nr.type
        px0 = builder.gep(_array(context, builder, st[0], xv).data, [xoff])
        pd0 = builder.gep(_array(context, builder, st[3], dv).data, [doff])
        el = _F32 if f32 else _I8

        def gt(b, a):
            return builder.fcmp_ordered(">", b, a) if f32 else builder.icmp_signed(">", b, a)

        def rows_of(lanes, two):
            """The row loop for V = lanes; two: windows of two rows (r1 != 0). One row (1-D
            pools) compares x[2j] and x[2j + 1] alone: with r1 = 0 the second pair repeats
            the first and cannot change a (not greater than itself, nor than a NaN kept)."""
            vin = ir.VectorType(el, 2 * lanes)
            vout = ir.VectorType(el, lanes)
            even = ir.Constant(ir.VectorType(_I32, lanes), list(range(0, 2 * lanes, 2)))
            odd = ir.Constant(ir.VectorType(_I32, lanes), list(range(1, 2 * lanes, 2)))
            zero = ir.Constant(i64, 0)
            one = ir.Constant(i64, 1)
            plane_x = cgutils.alloca_once_value(builder, zero)  # p * hw
            row_i = cgutils.alloca_once_value(builder, zero)    # i
            nsteps = builder.sdiv(builder.add(owv, ir.Constant(i64, lanes - 1)), ir.Constant(i64, lanes))
            with cgutils.for_range(builder, nr) as rows:
                k = rows.index
                i = builder.load(row_i)
                px = builder.gep(px0, [builder.add(builder.load(plane_x), builder.mul(i, rsv))])
                pd = builder.gep(pd0, [builder.mul(k, owv)])
                with cgutils.for_range(builder, nsteps) as steps:
                    j0 = builder.mul(steps.index, ir.Constant(i64, lanes))
                    x0 = builder.load(_ptr(builder, px, builder.add(j0, j0), vin), align=1)
                    a = builder.shuffle_vector(x0, x0, even)
                    later = [builder.shuffle_vector(x0, x0, odd)]
                    if two:
                        x1 = builder.load(_ptr(builder, px, builder.add(r1v, builder.add(j0, j0)), vin), align=1)
                        later += [builder.shuffle_vector(x1, x1, even), builder.shuffle_vector(x1, x1, odd)]
                    for v in later:
                        a = builder.select(gt(v, a), v, a)
                    builder.store(a, _ptr(builder, pd, j0, vout), align=1)
                nxt = builder.add(i, one)
                wrap = builder.icmp_signed("==", nxt, ohv)
                builder.store(builder.select(wrap, zero, nxt), row_i)
                builder.store(builder.select(wrap, builder.add(builder.load(plane_x), hwv), builder.load(plane_x)),
                              plane_x)

        def rows_by_height(lanes):
            with builder.if_else(builder.icmp_signed("==", r1v, ir.Constant(i64, 0))) as (one_row, two_rows):
                with one_row:
                    rows_of(lanes, False)
                with two_rows:
                    rows_of(lanes, True)

        if f32 and POOL_F32_LANES == 16:  # both forms; the caller's lanes picks
            with builder.if_else(builder.icmp_signed("==", lanesv, ir.Constant(i64, 16))) as (wide, narrow):
                with wide:
                    rows_by_height(16)
                with narrow:
                    rows_by_height(8)
        else:
            rows_by_height(8 if f32 else 16)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def gather32(typingctx, X, xo, I, io, n, D, do, fill):
    """D[do + k] = X[xo + I[io + k]] if I[io + k] >= 0 else fill, for k < n: X and D float32 or
    int32 arrays (the same dtype), I int32: im2col by indices, 8 elements per
    llvm.masked.gather (vgatherdps / vpgatherdd on AVX2), the last n % 8 one by one. Padding
    lanes are not read."""
    if X.dtype.bitwidth != 32 or D.dtype != X.dtype:
        return None
    sig = types.void(X, xo, I, io, n, D, do, fill)
    elt = X.dtype

    def codegen(context, builder, signature, args):
        xv, xoff, iv, ioff, nv_, dv, doff, fillv = _ints64(context, builder, signature, args)
        st = signature.args
        i64 = nv_.type
        px = builder.gep(_array(context, builder, st[0], xv).data, [xoff])
        pi = builder.gep(_array(context, builder, st[2], iv).data, [ioff])
        pd = builder.gep(_array(context, builder, st[5], dv).data, [doff])
        ety = context.get_value_type(elt)
        vty = ir.VectorType(ety, 8)
        fillv = context.cast(builder, args[7], st[7], elt)
        vptr = ir.VectorType(px.type, 8)
        name = "llvm.masked.gather.v8" + ("f32" if isinstance(elt, types.Float) else "i32") + ".v8p0"
        gather = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vptr, _I32, _V8B, vty]), name)
        fills = _splat(builder, fillv, vty)
        zero = ir.Constant(_V8I, [0] * 8)
        v8i64 = ir.VectorType(i64, 8)
        nblk = builder.sdiv(nv_, ir.Constant(i64, 8))
        with cgutils.for_range(builder, nblk) as loop:
            k = builder.mul(loop.index, ir.Constant(i64, 8))
            idx = builder.load(_ptr(builder, pi, k, _V8I), align=4)
            ok = builder.icmp_signed(">=", idx, zero)
            byte = builder.mul(builder.sext(builder.select(ok, idx, zero), v8i64), ir.Constant(v8i64, [4] * 8))
            ptrs = builder.inttoptr(builder.add(_splat(builder, builder.ptrtoint(px, i64), v8i64), byte), vptr)
            v = builder.call(gather, [ptrs, _c(4), ok, fills])
            builder.store(v, _ptr(builder, pd, k, vty), align=4)
        rest = builder.sub(nv_, builder.mul(nblk, ir.Constant(i64, 8)))
        with cgutils.for_range(builder, rest) as loop:
            k = builder.add(builder.mul(nblk, ir.Constant(i64, 8)), loop.index)
            i = builder.load(builder.gep(pi, [k]))
            with builder.if_else(builder.icmp_signed(">=", i, _c(0))) as (then, otherwise):
                with then:
                    builder.store(builder.load(builder.gep(px, [builder.sext(i, i64)])), builder.gep(pd, [k]))
                with otherwise:
                    builder.store(fillv, builder.gep(pd, [k]))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def stride2_16b(typingctx, X, xo, lo, hi, full, D, do, zp):
    """stride2_8 for the u8 tile's byte copies, 16 lanes: D[do + k] = X[xo + 2k] + 128 (x ^
    0x80) for lo <= k < hi, else zp + 128, for k < 16 (X int8, D uint8). With ``full`` reads
    X[xo:xo + 32] (one load, the even bytes shuffled together), else only X[xo + 2k] for lo <= k
    < hi; writes D[do:do + 16] (one store)."""
    if X.dtype != types.int8 or D.dtype != types.uint8:
        return None
    sig = types.void(X, xo, lo, hi, full, D, do, zp)

    def codegen(context, builder, signature, args):
        xv, xoff, lov, hiv, fullv, dv, doff, zpv = _ints64(context, builder, signature, args)
        st = signature.args
        px = builder.gep(_array(context, builder, st[0], xv).data, [xoff])
        pd = builder.gep(_array(context, builder, st[5], dv).data, [doff])
        v16b = ir.VectorType(_I8, 16)
        k = ir.Constant(_V16I, list(range(16)))
        on = builder.and_(builder.icmp_signed(">=", k, _splat(builder, builder.trunc(lov, _I32), _V16I)),
                          builder.icmp_signed("<", k, _splat(builder, builder.trunc(hiv, _I32), _V16I)))
        pad = _pad_byte(builder, zpv, v16b)
        pout = _ptr(builder, pd, ir.Constant(doff.type, 0), v16b)

        def finish(y):
            builder.store(builder.select(on, _u8_byte(builder, y), pad), pout, align=1)

        with builder.if_else(builder.icmp_signed("!=", fullv, ir.Constant(fullv.type, 0)), likely=True) as (then, otherwise):
            with then:
                v = builder.load(_ptr(builder, px, ir.Constant(xoff.type, 0), ir.VectorType(_I8, 32)), align=1)
                finish(builder.shuffle_vector(v, v, ir.Constant(_V16I, list(range(0, 32, 2)))))
            with otherwise:  # lane by lane: a byte-masked load has no AVX2 instruction
                y = cgutils.alloca_once(builder, v16b)  # in the entry block: no stack growth per call
                builder.store(ir.Constant(v16b, [0] * 16), y)
                for j in range(16):
                    with builder.if_then(builder.extract_element(on, ir.Constant(_I32, j))):
                        x = builder.load(builder.gep(px, [ir.Constant(xoff.type, 2 * j)]))
                        builder.store(builder.insert_element(builder.load(y), x, ir.Constant(_I32, j)), y)
                finish(builder.load(y))
        return context.get_dummy_value()

    return sig, codegen


def _make_s2k3_row(L):
    @intrinsic
    def s2k3_row(typingctx, X, xo, nb, D, d0, d1, d2, zp):
        """The three column windows of one input row for a 3-wide filter of column stride 2,
        dilation 1 and left padding 1 over a row of w = 2 n columns (n = L nb outputs): for
        j < n, D[d1 + j] = v(X[xo + 2 j]) (kernel column 1), D[d2 + j] = v(X[xo + 2 j + 1])
        (column 2), D[d0 + j] = v(X[xo + 2 j - 1]) for j >= 1 and the padding value for j = 0
        (column 0). v: X int8 and D uint8, the u8 tile's bytes x + 128 (padding zp + 128); X
        and D float32, x itself (padding 0). Reads exactly X[xo:xo + 2 n] (one 2L-lane load per
        step, even and odd lanes shuffled apart; column 0's window is the odd lanes moved one lane
        on, the step before's last odd lane carried in front) and writes D[dk:dk + n]."""
        byte = X.dtype == types.int8 and D.dtype == types.uint8
        if not byte and not (X.dtype == types.float32 and D.dtype == types.float32):
            return None
        sig = types.void(X, xo, nb, D, d0, d1, d2, zp)

        def codegen(context, builder, signature, args):
            xv, xoff, nbv, dv, d0v, d1v, d2v, zpv = _ints64(context, builder, signature, args)
            st = signature.args
            i64 = nbv.type
            ety = _I8 if byte else _F32
            vin, vout = ir.VectorType(ety, 2 * L), ir.VectorType(ety, L)
            px = builder.gep(_array(context, builder, st[0], xv).data, [xoff])
            pd = _array(context, builder, st[3], dv).data
            pad = _pad_byte(builder, zpv, vout) if byte else ir.Constant(vout, [0.0] * L)
            prev = cgutils.alloca_once_value(builder, pad)
            al = 1 if byte else 4
            even = ir.Constant(ir.VectorType(_I32, L), list(range(0, 2 * L, 2)))
            odd = ir.Constant(ir.VectorType(_I32, L), list(range(1, 2 * L, 2)))
            later = ir.Constant(ir.VectorType(_I32, L), [L - 1] + list(range(L, 2 * L - 1)))
            with cgutils.for_range(builder, nbv) as loop:
                j = builder.mul(loop.index, ir.Constant(i64, L))
                v = builder.load(_ptr(builder, px, builder.mul(j, ir.Constant(i64, 2)), vin), align=al)
                if byte:
                    v = _u8_byte(builder, v)
                e = builder.shuffle_vector(v, v, even)
                o = builder.shuffle_vector(v, v, odd)
                c0 = builder.shuffle_vector(builder.load(prev), o, later)
                builder.store(o, prev)
                for dk, val in ((d0v, c0), (d1v, e), (d2v, o)):
                    builder.store(val, _ptr(builder, pd, builder.add(dk, j), vout), align=al)
            return context.get_dummy_value()

        return sig, codegen
    return s2k3_row


s2k3_row8 = _make_s2k3_row(8)
s2k3_row16 = _make_s2k3_row(16)


@intrinsic
def stride2_8(typingctx, X, xo, lo, hi, full, D, do, zp):
    """D[do + k] = X[xo + 2k] for lo <= k < hi, else 0, for k < 8: X and D float32 or int32
    arrays (the same dtype; zp unused), or X int8 and D int16 (D[do + k] = int16(X[xo + 2k]) -
    zp, 0 outside [lo, hi): the int8 path's x - x_zp, padding 0; the u8 tile's byte copies take
    stride2_16b). With ``full`` reads
    X[xo:xo + 16] (plain loads), else only X[xo + 2k] for lo <= k < hi (masked loads); the even
    lanes are shuffled together and the lanes outside [lo, hi) zeroed; writes D[do:do + 8] (one
    vector store): a plane window's row of column stride 2."""
    narrow = X.dtype == types.int8 and D.dtype == types.int16
    if not narrow and (X.dtype.bitwidth != 32 or D.dtype != X.dtype):
        return None
    sig = types.void(X, xo, lo, hi, full, D, do, zp)
    elt = X.dtype

    def codegen(context, builder, signature, args):
        xv, xoff, lov, hiv, fullv, dv, doff, zpv = _ints64(context, builder, signature, args)
        st = signature.args
        px = builder.gep(_array(context, builder, st[0], xv).data, [xoff])
        pd = builder.gep(_array(context, builder, st[5], dv).data, [doff])
        ety = context.get_value_type(elt)
        vty = ir.VectorType(ety, 8)  # one load's lanes (32-bit) / the shuffled result (int8)
        lty = ir.VectorType(ety, 16) if narrow else vty
        oty = ir.VectorType(_I16, 8) if narrow else vty
        zero = ir.Constant(oty, [0.0 if isinstance(elt, types.Float) else 0] * 8)
        k = ir.Constant(_V8I, list(range(8)))
        on = builder.and_(builder.icmp_signed(">=", k, _splat(builder, builder.trunc(lov, _I32), _V8I)),
                          builder.icmp_signed("<", k, _splat(builder, builder.trunc(hiv, _I32), _V8I)))
        even = ir.Constant(_V8I, list(range(0, 16, 2)))
        pout = _ptr(builder, pd, ir.Constant(doff.type, 0), oty)

        def finish(y):
            if narrow:
                w16 = ir.VectorType(_I16, 8)
                y = builder.sub(builder.sext(y, w16), _splat(builder, builder.trunc(zpv, _I16), w16))
            builder.store(builder.select(on, y, zero), pout, align=2 if narrow else 4)

        with builder.if_else(builder.icmp_signed("!=", fullv, ir.Constant(fullv.type, 0)), likely=True) as (then, otherwise):
            with then:
                if narrow:
                    v = builder.load(_ptr(builder, px, ir.Constant(xoff.type, 0), lty), align=1)
                    finish(builder.shuffle_vector(v, v, even))
                else:
                    p0 = _ptr(builder, px, ir.Constant(xoff.type, 0), vty)
                    p1 = _ptr(builder, px, ir.Constant(xoff.type, 8), vty)
                    finish(builder.shuffle_vector(builder.load(p0, align=4), builder.load(p1, align=4), even))
            with otherwise:
                if narrow:  # lane by lane: a byte-masked load has no AVX2 instruction
                    y = cgutils.alloca_once(builder, vty)  # in the entry block: no stack growth per call
                    builder.store(ir.Constant(vty, [0] * 8), y)
                    for j in range(8):
                        inside = builder.extract_element(on, ir.Constant(_I32, j))
                        with builder.if_then(inside):
                            x = builder.load(builder.gep(px, [ir.Constant(xoff.type, 2 * j)]))
                            builder.store(builder.insert_element(builder.load(y), x, ir.Constant(_I32, j)), y)
                    finish(builder.load(y))
                else:
                    p0 = _ptr(builder, px, ir.Constant(xoff.type, 0), vty)
                    p1 = _ptr(builder, px, ir.Constant(xoff.type, 8), vty)
                    off = ir.Constant(_V8B, [0] * 8)
                    m0 = builder.shuffle_vector(on, off, ir.Constant(_V8I, [0, 8, 1, 8, 2, 8, 3, 8]))
                    m1 = builder.shuffle_vector(on, off, ir.Constant(_V8I, [4, 8, 5, 8, 6, 8, 7, 8]))
                    finish(builder.shuffle_vector(_masked_load(builder, p0, vty, m0, 4),
                                                  _masked_load(builder, p1, vty, m1, 4), even))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def fill_masked(typingctx, X, xo, n, MK, mo, ncls, Z, zo, zs, zp):
    """The depthwise planes of one input plane, one per column class: for m < ncls and k < n,
    Z[zo + m * zs + k] = (x[k] if MK[mo + m * n + k] != 0 else 0) where x = X[xo:], as float32
    (X float32, Z float32, MK int32) or as int16 x - zp (X int8; MK and Z any arrays addressed
    in int16 elements: mo, zo, zs in int16 units, the masks int16 -1 / 0), or with Z uint8 as
    the u8 tile's bytes: x + 128 (x ^ 0x80), and zp + 128 where masked (padding is x = zp; MK
    addressed in bytes, the masks bytes -1 / 0: mo, zo, zs in bytes). 16 elements per step (the
    bytes: 32), the last step overlapping the one before (idempotent: no scalar tail) when n is
    at least one step, element by element below that."""
    i16 = isinstance(X.dtype, types.Integer)
    out8 = i16 and Z.dtype.bitwidth == 8
    sig = types.void(X, xo, n, MK, mo, ncls, Z, zo, zs, zp)

    def codegen(context, builder, signature, args):
        xv, xoff, nv_, mv, moff, ncv, zv, zoff, zsv, zpv = _ints64(context, builder, signature, args)
        st = signature.args
        i64 = nv_.type
        px = builder.gep(_array(context, builder, st[0], xv).data, [xoff])
        mdata = _array(context, builder, st[3], mv).data
        pm = builder.gep(builder.bitcast(mdata, _I16.as_pointer()) if i16 else mdata, [moff])
        zdata = _array(context, builder, st[6], zv).data
        zbase = builder.bitcast(zdata, ((_I8 if out8 else _I16) if i16 else _F32).as_pointer())
        v16 = ir.VectorType(_I32, 16)
        if out8:
            v32b = ir.VectorType(_I8, 32)
            pm8 = builder.gep(builder.bitcast(mdata, _I8.as_pointer()), [moff])
            pad = _pad_byte(builder, zpv, v32b)
            zero = ir.Constant(v32b, [0] * 32)
            zrow0 = builder.gep(zbase, [zoff])
            with builder.if_else(builder.icmp_signed(">=", nv_, ir.Constant(i64, 32))) as (then, otherwise):
                with then:
                    with cgutils.for_range(builder, ncv) as cls:
                        mrow = builder.gep(pm8, [builder.mul(cls.index, nv_)])
                        zrow = builder.gep(zrow0, [builder.mul(cls.index, zsv)])
                        with _overlapping_steps(builder, nv_, 32) as k:
                            x = _u8_byte(builder, builder.load(_ptr(builder, px, k, v32b), align=1))
                            mk = builder.load(_ptr(builder, mrow, k, v32b), align=1)
                            y = builder.select(builder.icmp_signed("<", mk, zero), x, pad)  # vpblendvb on the sign
                            builder.store(y, _ptr(builder, zrow, k, v32b), align=1)
                with otherwise:
                    with cgutils.for_range(builder, ncv) as cls:
                        mrow = builder.gep(pm8, [builder.mul(cls.index, nv_)])
                        zrow = builder.gep(zrow0, [builder.mul(cls.index, zsv)])
                        with cgutils.for_range(builder, nv_) as loop:
                            k = loop.index
                            keep = builder.icmp_signed("<", builder.load(builder.gep(mrow, [k])), _c(0, _I8))
                            x = builder.xor(builder.load(builder.gep(px, [k])), _c(-128, _I8))
                            builder.store(builder.select(keep, x, builder.extract_element(pad, _c(0))),
                                          builder.gep(zrow, [k]))
            return context.get_dummy_value()
        if i16:
            zps = _splat(builder, builder.trunc(zpv, _I16), _V16S)
            zrow0 = builder.gep(zbase, [zoff])
            big = builder.icmp_signed(">=", nv_, ir.Constant(i64, 16))
            with builder.if_else(big) as (then, otherwise):
                with then:
                    with cgutils.for_range(builder, ncv) as cls:
                        m = cls.index
                        mrow = builder.gep(pm, [builder.mul(m, nv_)])
                        zrow = builder.gep(zrow0, [builder.mul(m, zsv)])
                        with _overlapping_steps(builder, nv_, 16) as k:
                            x = builder.sext(builder.load(_ptr(builder, px, k, ir.VectorType(_I8, 16)), align=1), _V16S)
                            mk = builder.load(_ptr(builder, mrow, k, _V16S), align=2)
                            builder.store(builder.and_(builder.sub(x, zps), mk), _ptr(builder, zrow, k, _V16S), align=2)
                with otherwise:
                    with cgutils.for_range(builder, ncv) as cls:
                        m = cls.index
                        mrow = builder.gep(pm, [builder.mul(m, nv_)])
                        zrow = builder.gep(zrow0, [builder.mul(m, zsv)])
                        with cgutils.for_range(builder, nv_) as loop:
                            k = loop.index
                            x = builder.sext(builder.load(builder.gep(px, [k])), _I16)
                            mk = builder.load(builder.gep(mrow, [k]))
                            builder.store(builder.and_(builder.sub(x, builder.trunc(zpv, _I16)), mk), builder.gep(zrow, [k]))
            return context.get_dummy_value()

        def step(k, mrow, zrow):
            mk = builder.load(_ptr(builder, mrow, k, v16), align=4)
            x = builder.bitcast(builder.load(_ptr(builder, px, k, ir.VectorType(_F32, 16)), align=4), v16)
            v = builder.bitcast(builder.and_(x, mk), ir.VectorType(_F32, 16))
            builder.store(v, _ptr(builder, zrow, k, ir.VectorType(_F32, 16)), align=4)

        with cgutils.for_range(builder, ncv) as cls:
            m = cls.index
            mrow = builder.gep(pm, [builder.mul(m, nv_)])
            zrow = builder.gep(zbase, [builder.add(zoff, builder.mul(m, zsv))])
            big = builder.icmp_signed(">=", nv_, ir.Constant(i64, 16))
            with builder.if_else(big) as (then, otherwise):
                with then:
                    with _overlapping_steps(builder, nv_, 16) as k:
                        step(k, mrow, zrow)
                with otherwise:
                    with cgutils.for_range(builder, nv_) as loop:
                        k = loop.index
                        keep = builder.icmp_signed("!=", builder.load(builder.gep(mrow, [k])), _c(0))
                        v = builder.select(keep, builder.load(builder.gep(px, [k])), ir.Constant(_F32, 0.0))
                        builder.store(v, builder.gep(zrow, [k]))
        return context.get_dummy_value()

    return sig, codegen


def _transpose8(builder, rows):
    """8 vectors <8 x float> (rows r) -> 8 vectors (columns k): out[k][r] = rows[r][k]."""
    def shuf(a, b, idx):
        return builder.shuffle_vector(a, b, ir.Constant(_V8I, idx))
    t = []
    for i in range(0, 8, 2):
        t.append(shuf(rows[i], rows[i + 1], [0, 8, 1, 9, 4, 12, 5, 13]))
        t.append(shuf(rows[i], rows[i + 1], [2, 10, 3, 11, 6, 14, 7, 15]))
    lo, hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
    s_ = []
    for base in (0, 4):
        a0, a1, b0, b1 = t[base], t[base + 1], t[base + 2], t[base + 3]
        s_ += [shuf(a0, b0, lo), shuf(a0, b0, hi), shuf(a1, b1, lo), shuf(a1, b1, hi)]
    first, second = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]
    cols = [None] * 8
    for k in range(4):
        cols[k] = shuf(s_[k], s_[k + 4], first)
        cols[k + 4] = shuf(s_[k], s_[k + 4], second)
    return cols


@intrinsic
def channel_sums8(typingctx, X, xo, hw, D, do):
    """D[do + c] = float32 sum of X[xo + c * hw + k] over k = 0..hw-1 in order, from 0.0, for 8
    channels c < 8 side by side (one vector lane per channel): blocks of 8 positions are loaded
    as rows and transposed in registers, then added column by column, so each channel's sum
    keeps its order; the last hw % 8 positions one lane-insert at a time."""
    sig = types.void(X, xo, hw, D, do)

    def codegen(context, builder, signature, args):
        xv, xoff, hwv, dv, doff = _ints64(context, builder, signature, args)
        st = signature.args
        i64 = hwv.type
        px = builder.gep(_array(context, builder, st[0], xv).data, [xoff])
        pd = builder.gep(_array(context, builder, st[3], dv).data, [doff])
        rows = [builder.gep(px, [builder.mul(hwv, ir.Constant(i64, c))]) for c in range(8)]
        acc = cgutils.alloca_once_value(builder, ir.Constant(_V8F, [0.0] * 8))
        nblk = builder.sdiv(hwv, ir.Constant(i64, 8))
        with cgutils.for_range(builder, nblk) as loop:
            k = builder.mul(loop.index, ir.Constant(i64, 8))
            cols = _transpose8(builder, [builder.load(_ptr(builder, r, k, _V8F), align=4) for r in rows])
            a = builder.load(acc)
            for col in cols:
                a = builder.fadd(a, col)
            builder.store(a, acc)
        with cgutils.for_range(builder, builder.sub(hwv, builder.mul(nblk, ir.Constant(i64, 8)))) as loop:
            k = builder.add(builder.mul(nblk, ir.Constant(i64, 8)), loop.index)
            v = ir.Constant(_V8F, ir.Undefined)
            for c in range(8):
                v = builder.insert_element(v, builder.load(builder.gep(rows[c], [k])), _c(c))
            builder.store(builder.fadd(builder.load(acc), v), acc)
        builder.store(builder.load(acc), _ptr(builder, pd, ir.Constant(i64, 0), _V8F), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def sum_i8(typingctx, X, xo, n):
    """The int64 sum of the n int8 values X[xo:xo + n] (exact, any order). n >= 32: 32 bytes a
    step as unsigned bytes x + 128 (x ^ 0x80) summed by vpsadbw against zero (AVX2 targets;
    plain IR widening adds otherwise), the last n % 32 by one more load that ends at n with its
    lanes already counted zeroed, then 128 n taken off; n < 32: one value at a time."""
    sig = types.int64(X, xo, n)

    def codegen(context, builder, signature, args):
        xv, xoff, nv_ = _ints64(context, builder, signature, args)
        i64 = nv_.type
        px = builder.gep(_array(context, builder, signature.args[0], xv).data, [xoff])
        x86 = "avx2" in codegen_features(context)
        v32 = ir.VectorType(_I8, 32)
        v4 = ir.VectorType(i64, 4)
        total = cgutils.alloca_once_value(builder, ir.Constant(i64, 0))

        def sad(u):  # <32 x i8> unsigned bytes -> <4 x i64> sums of 8 consecutive bytes
            if x86:
                fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v4, [v32, v32]),
                                                    "llvm.x86.avx2.psad.bw")
                return builder.call(fn, [u, ir.Constant(v32, [0] * 32)])
            w = builder.zext(u, ir.VectorType(i64, 32))
            acc = None
            for q in range(8):
                part = builder.shuffle_vector(w, w, ir.Constant(ir.VectorType(_I32, 4), [8 * j + q for j in range(4)]))
                acc = part if acc is None else builder.add(acc, part)
            return acc

        big = builder.icmp_signed(">=", nv_, ir.Constant(i64, 32))
        with builder.if_else(big) as (then, otherwise):
            with then:
                acc = cgutils.alloca_once_value(builder, ir.Constant(v4, [0] * 4))
                nblk = builder.sdiv(nv_, ir.Constant(i64, 32))
                with cgutils.for_range(builder, nblk) as loop:
                    u = _u8_byte(builder, builder.load(_ptr(builder, px, builder.mul(loop.index, ir.Constant(i64, 32)), v32),
                                                       align=1))
                    builder.store(builder.add(builder.load(acc), sad(u)), acc)
                rem = builder.sub(nv_, builder.mul(nblk, ir.Constant(i64, 32)))
                with builder.if_then(builder.icmp_signed(">", rem, ir.Constant(i64, 0))):
                    u = _u8_byte(builder, builder.load(_ptr(builder, px, builder.sub(nv_, ir.Constant(i64, 32)), v32),
                                                       align=1))
                    # lanes below 32 - rem were counted by the last full step: zero them
                    lim = _splat(builder, builder.trunc(builder.sub(ir.Constant(i64, 32), rem), _I8), v32)
                    keep = builder.icmp_unsigned(">=", ir.Constant(v32, list(range(32))), lim)
                    u = builder.select(keep, u, ir.Constant(v32, [0] * 32))
                    builder.store(builder.add(builder.load(acc), sad(u)), acc)
                a = builder.load(acc)
                t = builder.add(builder.add(builder.extract_element(a, _c(0)), builder.extract_element(a, _c(1))),
                                builder.add(builder.extract_element(a, _c(2)), builder.extract_element(a, _c(3))))
                builder.store(builder.sub(t, builder.mul(nv_, ir.Constant(i64, 128))), total)
            with otherwise:
                with cgutils.for_range(builder, nv_) as loop:
                    v = builder.sext(builder.load(builder.gep(px, [loop.index])), i64)
                    builder.store(builder.add(builder.load(total), v), total)
        return builder.load(total)

    return sig, codegen


def _hadd8(builder, a, b):
    """<8 x i32> a, b -> [a0+a1, a2+a3, a4+a5, a6+a7, b0+b1, b2+b3, b4+b5, b6+b7]."""
    even = builder.shuffle_vector(a, b, ir.Constant(_V8I, [0, 2, 4, 6, 8, 10, 12, 14]))
    odd = builder.shuffle_vector(a, b, ir.Constant(_V8I, [1, 3, 5, 7, 9, 11, 13, 15]))
    return builder.add(even, odd)


@intrinsic
def qdense_rows8(typingctx, x, xo, W, wo, n_in, bias, bo, M, mo, y, yo, nrows, y_zp, qmin, qmax):
    """Eight int8 dense outputs (a QDENSE row block): for r < nrows (<= 8),
    acc[r] = sum over i < n_in of int32(x[xo + i]) * int32(W[wo + r * n_in + i]) (int32, exact:
    pairs of sign-extended products summed with vpmaddwd, 16 inputs per step for the 8 rows side
    by side, the last n_in % 16 one by one), then y[yo + r] = clamp(rint(float32(acc + bias[bo + r])
    * M[mo + r]) + y_zp, qmin, qmax) as int8 (float32 arithmetic as kernels_tile.requant8; the
    8 sums meet in one vector by a tree of pairwise adds, requantized together). Rows >= nrows
    re-read row nrows - 1 and are not stored."""
    sig = types.void(x, xo, W, wo, n_in, bias, bo, M, mo, y, yo, nrows, y_zp, qmin, qmax)

    def codegen(context, builder, signature, args):
        (xv, xoff, wv, woff, nin, biasv, bioff, mv, moff, yv, yoff, nrowsv, zpv, lov, hiv) = \
            _ints64(context, builder, signature, args)
        st = signature.args
        i64 = nin.type
        px = builder.gep(_array(context, builder, st[0], xv).data, [xoff])
        pw = builder.gep(_array(context, builder, st[2], wv).data, [woff])
        pbias = builder.gep(_array(context, builder, st[5], biasv).data, [bioff])
        pm = builder.gep(_array(context, builder, st[7], mv).data, [moff])
        py = builder.gep(_array(context, builder, st[9], yv).data, [yoff])
        last = builder.sub(nrowsv, ir.Constant(i64, 1))
        rows, idx = [], []
        for r in range(8):
            rr = builder.select(builder.icmp_signed("<", ir.Constant(i64, r), nrowsv), ir.Constant(i64, r), last)
            idx.append(rr)
            rows.append(builder.gep(pw, [builder.mul(rr, nin)]))
        v16i8 = ir.VectorType(_I8, 16)
        accs = [cgutils.alloca_once_value(builder, ir.Constant(_V8I, [0] * 8)) for _ in range(8)]
        nblk = builder.sdiv(nin, ir.Constant(i64, 16))
        with cgutils.for_range(builder, nblk) as loop:
            off = builder.mul(loop.index, ir.Constant(i64, 16))
            xa = builder.sext(builder.load(_ptr(builder, px, off, v16i8), align=1), _V16S)
            for r in range(8):
                wb = builder.sext(builder.load(_ptr(builder, rows[r], off, v16i8), align=1), _V16S)
                builder.store(builder.add(builder.load(accs[r]), pair_madd(builder, xa, wb)), accs[r])
        tails = [cgutils.alloca_once_value(builder, _c(0)) for _ in range(8)]
        t0 = builder.mul(nblk, ir.Constant(i64, 16))
        with cgutils.for_range(builder, builder.sub(nin, t0)) as loop:
            i = builder.add(t0, loop.index)
            xi = builder.sext(builder.load(builder.gep(px, [i])), _I32)
            for r in range(8):
                wi = builder.sext(builder.load(builder.gep(rows[r], [i])), _I32)
                builder.store(builder.add(builder.load(tails[r]), builder.mul(xi, wi)), tails[r])
        a = [builder.load(acc) for acc in accs]
        l1 = [_hadd8(builder, a[0], a[1]), _hadd8(builder, a[2], a[3]), _hadd8(builder, a[4], a[5]),
              _hadd8(builder, a[6], a[7])]
        l2 = [_hadd8(builder, l1[0], l1[1]), _hadd8(builder, l1[2], l1[3])]
        tot = _hadd8(builder, l2[0], l2[1])  # lane r: the vector part of row r's sum
        tv = ir.Constant(_V8I, ir.Undefined)
        bv = ir.Constant(_V8I, ir.Undefined)
        mvv = ir.Constant(_V8F, ir.Undefined)
        for r in range(8):
            tv = builder.insert_element(tv, builder.load(tails[r]), _c(r))
            bv = builder.insert_element(bv, builder.load(_ptr(builder, pbias, idx[r], _I32), align=4), _c(r))
            mvv = builder.insert_element(mvv, builder.load(builder.gep(pm, [idx[r]])), _c(r))
        accv = builder.add(builder.add(tot, tv), bv)
        zp = _splat(builder, builder.sitofp(zpv, _F32), _V8F)
        lo = _splat(builder, builder.sitofp(lov, _F32), _V8F)
        hi = _splat(builder, builder.sitofp(hiv, _F32), _V8F)
        yq = requant8(builder, builder.sitofp(accv, _V8F), mvv, zp, lo, hi)
        store_cols(builder, [yq], py, nrowsv, _V8I8, 1)
        return context.get_dummy_value()

    return sig, codegen
