"""Compiled convolution and pooling kernels (``@kernel_jit``: njit without NRT, cached, rtinfer.jitcache), their NumPy
twins, and the planning that lays out their operands.

Calling convention as rtinfer.kernels: flat 1-D C-contiguous arrays with element offsets
(``src, so`` reads ``src[so:]``, ``dst, do`` writes ``dst[do:]``), ``m`` samples back to back,
ints and floats as scalars. Kernels write into ``dst`` and their scratch only, allocate nothing,
check nothing. The window geometry travels as an int32 table ``g[go:go + G_LEN]`` (see
``pack_geometry``) followed by the op's int32 data (packed weights, tap tables, column masks,
scratch) at offsets the table gives, so a program row needs one offset for all of it. Samples are
channels-first (C, H, W); 1-D is H = 1.

Kernel paths, chosen once at plan time (``conv_layout``) and recorded in slot G_PATH; the
weights at ``W[wo:]`` (or in the table's data) are packed for that path:

- PATH_GEMM / PATH_GEMM_U8 (every convolution the DW path does not take), group by group: a
  register-tiled GEMM y (O/group, P) = W (O/group, K) . B (K, P) over the P = oh * ow output
  positions, K = C/group kh kw. B is the group's input planes themselves (pointwise: 1x1, stride 1,
  no padding), zero-margined shifted copies or column (and row-phase) windows of them read in
  place (BM_SHIFT, BM_WINDOW: taps become row offsets, stride 2 columns copied eight at a time
  by kernels_tile.stride2_8; for 3-wide, stride-2, pad-1 filters over rows of 2 ow columns, each
  input row's three windows in one pass by kernels_tile.s2k3_row8/16, the classes the planner
  recorded in G_S2K3, ``_s2k3_plan``), or im2col rows in scratch
  (padding 0, or x_zp for int8, which adds 0), made by precomputed gather indices for small planes
  (vgatherdps) and by runs otherwise. float32:
  kernels_tile.cf32_tile (6 output channels x 16 positions, an FMA chain per output; 32
  channels run as 6 + 6 + 6 + 6 + 4 + 4, ``row_tile``; on AVX-512 targets kernels_tile.cf32_wide
  takes 32 positions a step, one zmm pair per row, ``_col_at``), W packed by
  ``pack_rows_f32``, bias and ReLU in the epilogue. int8: B is packed into int32 words of uint8
  quads x + 128 (PATH_GEMM_U8: vpdpbusd on VNNI targets, taken there for any int8 weights, since
  vpdpbusd sums into int32 without an int16 step; vpmaddubsw + vpmaddwd on AVX2, taken for
  weights whose consecutive pairs cannot saturate int16, ``u8_exact``; the +128 shift folded
  into the bias)
  or of int16 pairs x - x_zp (PATH_GEMM: vpmaddwd, exact for any int8 weights); the tile
  requantizes in its epilogue. On kernels_tile.WIDE_I8 targets (512-bit vpdpbusd at full width)
  the u8 tiles and the in-place int16 tiles take 32 positions a step (``_col_at``). int8
  convolutions with padding or stride (BM_SHIFT, BM_WINDOW) first make margined copies straight
  from the int8 sample (stride-2 columns eight at a time by kernels_tile.stride2_8, sixteen by
  stride2_16b into byte copies): for PATH_GEMM int16 x - x_zp (padding 0), whose pairs of rows
  kernels_tile.s16_rows_tile* reads in place; for PATH_GEMM_U8 the tile's own bytes x + 128
  (padding x_zp + 128, the byte of x = x_zp; the planner prefills the scratch with it,
  ``ConvLayout.fill``), packed into quads without arithmetic (taken when two or more blocks of
  ROWS channels reuse them and K >= 16, K >= 4 on WIDE_I8 targets: without VNNI a vpmaddwd does
  16 multiply-adds and vpmaddubsw + vpmaddwd 32, a zmm vpdpbusd 64, so the packing pass is paid
  back).
- PATH_WINO (float32, 3 x 3, stride 1, undilated, one group; the planner takes it where it was
  measured to pay, ``wino_applies``: AVX2 targets, not yet AVX-512 ones, WINO_AUTO): Winograd F(2x2, 3x3), 16 multiplies per 2 x 2 outputs and
  channel pair instead of 36. The input planes are copied into zero-padded planes; per block of
  tile rows (``wino_rows``: V and M near 128 KB) kernels_tile.wino_in8 transforms eight 4 x 4
  tiles a step (B^T d B) into 16 rows V[x] (C, tiles), the cf32 tile runs the 16 products
  M[x] = U[x] . V[x] with U = G W G^T pre-transformed by the planner (``wino_weights``), and
  kernels_tile.wino_out8 takes each tile's 2 x 2 outputs back (A^T M A) with bias and ReLU.
- PATH_DW (one input channel per group, stride 1, and either 1-D or ow == w): each input plane is
  copied into zero-margined buffers, one per column shift of the taps ("class"), with the columns
  a tap of that shift would reach only by wrapping into the next or previous row zeroed (int8:
  as int16 x - x_zp); kernels_tile.dw_tile_* then runs every tap as one shifted vector load (no
  branch, no mask: padding reads zeros), DW_CH channels x DW_COLS positions per tile, bias
  first, ReLU or requantization in the epilogue; int8 sums pairs of taps with vpmaddwd. Taps that
  only ever read padding are dropped. The margins are zeroed once by the planner (its scratch
  starts zero) and never written.
  Planes of at least DW8 input and output positions take DW8 instead (``_dw8_plan``; with one
  column class, 1-D, only below DW8_ONE_CLASS_MAX outputs): eight
  output channels at a time, kernels_tile.dw8_pack lays their input planes out as one
  zero-margined grid of <8 x float> (channels in the lanes), so every
  kept tap of every output is one aligned load at a fixed offset; kernels_tile.dw8_f32 then runs
  eight positions per step (one weight vector per tap for all eight), bias first, ReLU, and
  transposes the tile back to channel
  rows. Same FMA order per output as the tiles above (bit-identical float32). float32 only: int8
  keeps the int16 tiles. A DW8 grid of exact float32 sums of x - x_zp with a requantizing
  epilogue (bit-exact below 2**24) was built and measured twice: slower than the vpmaddwd pairs
  at first, and with one 8-byte load a lane and vcvtps2dq no faster than them (DS-CNN depthwise
  7.50 against 7.48 us alone, 0.98-1.00x in the model): requantizing and transposing bytes back
  costs what the grid saves.
- PATH_DWQ (int8, the same geometries as PATH_DW; the planner takes it for 2-D filters -- two or
  more kernel rows kept -- on AVX2 targets where its quads are exact: ``u8_exact`` of the weight
  quads, any weights on VNNI): per input channel kernels_tile.dwq_build (reading the plane in
  place, or from a stage copy for the planes at the ends of a sample) lays out one uint8 quad per position and group of four kernel
  columns (x + 128 of the four taps of one kernel row, the padding byte x_zp + 128 where a column
  falls outside the row; column masks precomputed per position), for every input row, so kernel
  row p of output position k is quad k + (p dh - pt) ow: one build serves every row of the
  filter. kernels_tile.dwq_tile64 then runs each output channel 64 positions at a time (dwq_tile32
  for planes of at most 32 outputs), one
  quad_dot per kernel row and 8 positions (vpmaddubsw + vpmaddwd on AVX2, vpdpbusd on VNNI: 4
  taps a lane where the int16 pairs do 2), the bias (with the +128 shift folded in) first,
  requantization in the epilogue. The quad buffers' margins hold padding quads from the
  planner's fill (ConvLayout.fill) and are never written. 1-D filters keep PATH_DW: with one
  kernel row a build is not shared and each tile has one step (measured 1.0-2.1x slower there).

Work: the part of a path's buffers that every call writes before it reads -- the int8 GEMM's
packed B rows (int32 words at G_ACC from the table) and Winograd's V and M (float32 at G_WORK
from its scratch) -- holds nothing from one call to the next, so the planner lays out one work
region per dtype section for every convolution of a model, as large as the largest
(``conv_layout(shared_work=True)``, ``ConvLayout.work``): any layer may find another's values
there (wino_out8's last step of a block reads up to 7 tiles past the block's products: they
reach only outputs that are not stored).

Scratch: the rest of a layer's buffers (its copies, windows and padded planes) has zero or
fill-byte margins that the planner writes once and the copies never write; every call rewrites
the elements inside them before reading them. Two layers whose tables agree on geometry and path
(``scratch_signature``) touch the same elements, so the planner gives them one scratch when its
initial bytes agree too (``plan._Sections.add_shared``): ResNet-8's two 16-channel 3 x 3
layers, the DS-CNN's depthwise layers.

Numerics (contracts in rtinfer.ops, golden semantics in rtinfer.reference_conv):
- ``conv_f32``: a fixed summation order per output, the same for any batch (a batch gives the
  bits of one sample at a time): GEMM one FMA chain from 0.0 over k = (c, p, q) in order, then
  + bias; DW bias first, then one FMA per kept tap in (p, q) order. Versus the float64 golden it
  differs in the last bits (tested within 1e-5 relative to the summed magnitudes). WINO: the
  transforms' float32 adds in a fixed order (kernels_tile.wino_in8 / wino_out8), one FMA chain
  from 0.0 over the channels per transformed product, bias added last; a few more roundings than
  the GEMM (measured 2-4e-8 of the summed magnitudes, 1e-6 of the output range), the same bits for
  any batch. A non-finite value reaches every output of each tile whose 4 x 4 input block holds
  it (an inf may become NaN there), and intermediate sums are a few times larger than the
  direct ones (they overflow sooner, near float32's limit only).
- ``avgpool_f32`` / ``global_avgpool_f32``: float32 sums in window order, as the contract.
- ``maxpool`` is exact for float32 and int8 (one function, compiled per dtype); its 2-wide,
  stride-2 windows run as whole rows in LLVM IR (kernels_tile.maxpool2_rows) in the same
  comparison order.
- ``qconv_i8`` / ``qavgpool_i8``: exact integer sums of (x - x_zp) (padding adds nothing),
  requantization as QDENSE (``rtinfer.kernels_tile.requant8``): bit-exact on every path.

Under NUMBA_BOUNDSCHECK=1 (``BOUNDS``) every call of an LLVM IR tile first checks the extents it
touches, which Numba's own bounds checking cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import types
from numba.core import config
from numba.extending import overload

from . import kernels_tile as T
from .jitcache import kernel_jit
from .kernels import A_IDENTITY, A_RELU, act_f32


# Geometry table slots (int32).
G_C = 0        # input channels
G_H = 1
G_W = 2
G_O = 3        # output channels (pools: C)
G_KH = 4
G_KW = 5
G_SH = 6
G_SW = 7
G_DH = 8
G_DW = 9
G_PT = 10      # pad top
G_PL = 11      # pad left
G_OH = 12
G_OW = 13
G_GROUP = 14
G_INCLUDE_PAD = 15  # average pools: count_include_pad
G_XZP = 16     # int8 ops: input zero point
G_YZP = 17     # int8 ops: output zero point
G_QMIN = 18    # QCONV clamp
G_QMAX = 19
G_COLS = 20    # QCONV: offset of its int8 scratch relative to its W (both in the i8 view)
G_PATH = 21    # CONV / QCONV kernel path (PATH_*)
G_AUX = 22     # offset from the table of its int32 data: DW taps and masks; int8 GEMM packed W
G_NT = 23      # DW: kept taps; GEMM: K (float32) or K2 = ceil(K / 2) pairs (int8)
G_ZM = 24      # DW: front margin of each zero-margined plane buffer
G_ZS = 25      # DW: elements per plane buffer (DW8: floats of its grid)
G_PPAD = 26    # positions oh * ow rounded up to 16: DW mask row stride, int8 GEMM B row stride
G_ACC = 27     # int8 GEMM: offset from the table of its work words (the packed B rows; int32)
G_FS = 28      # QCONV: offset of its float32 scratch relative to its M (DW plane buffers)
G_NCLS = 29    # DW: column classes (pre-masked copies of each input plane)
G_AUX2 = 30    # offset from the table of the column class masks (G_NCLS x h w, -1 keep, 0 zero)
               # of the DW path and of GEMM BM_SHIFT (int32; int8 ops: int16, two to a word, or
               # bytes, four to a word, for the u8 tile's copies);
               # GEMM BM_WINDOW: its G_NCLS window classes (q, ph) as int32 pairs
G_GATHER = 31  # offset from the table of the im2col gather indices (0: im2col by runs)
G_WDW = 32     # QCONV DW: offset from the table of its weight pairs (int32 words)
G_BMODE = 33   # GEMM: where its B rows come from (BM_*)
G_ROWS = 34    # GEMM: offset from the table of its B row offsets (int32, G_K of them)
G_K = 35       # GEMM: rows of B (C/group kh kw, less the taps that only read padding)
G_BIAS8 = 36   # u8 GEMM: offset from the table of its bias with the +128 input shift folded in
G_DW8 = 37     # DW: offset from the table of its DW8 grid positions (0: the masked-copy tiles instead)
G_WBR = 38     # WINO: tile rows per block (wino_shape)
G_QOFF = 39    # DWQ: offset from the table of its build offsets (4 per quad group: column shift of each slot)
G_QN = 40      # DWQ: quads built per plane (h * ow rounded up to DWQ_STEP): mask row stride
G_QS = 41      # DWQ: int32 words per quad buffer (front margin, the quads, back margin)
G_QM = 42      # DWQ: front margin of each quad buffer (words of padding quads)
G_QIN0 = 43    # DWQ: the channels [G_QIN0, G_QIN1) are read in place (the build's reach stays in the
G_QIN1 = 44    #      sample); the others go through the stage
G_WORK = 45    # WINO: offset from its float32 scratch of its work (V, then M; float32 elements)
G_S2K3 = 46    # BM_WINDOW: offset from the table of the six window classes kernels_tile.s2k3_row* fills in
               # one pass per input row (kernel columns 0, 1, 2 of row phase 0, then of phase 1); 0: none
G_LEN = 47

BM_PLANES = 0  # the group's input planes (pointwise)
BM_GATHER = 1  # im2col rows in scratch, by gather indices
BM_RUNS = 2    # im2col rows in scratch, by runs
BM_SHIFT = 3   # shifted zero-margined copies of the group's input planes (stride 1: an implicit GEMM)
BM_WINDOW = 4  # per kernel column q and row phase ph, the (ceil(h / sh), ow) window x[ph::sh,
               # j * sw + q * dw - pl] of each input plane, zero-margined (stride 1 down the
               # window rows; copied by strided runs, no im2col)

PATH_GEMM = 1     # float32 tile, or int8 on int16 pairs (s16)
PATH_DW = 2
PATH_GEMM_U8 = 3  # int8 on uint8 x int8 quads (vpmaddubsw): weights whose pair sums cannot saturate
PATH_WINO = 4     # float32 3x3 stride 1: Winograd F(2x2, 3x3)
PATH_DWQ = 5      # int8 depthwise on uint8 quads of taps (a kernel row per quad_dot)

ROWS = T.ROWS
COLS = T.COLS
DW_CH = T.DW_CH
DW_CH_F32 = T.DW_CH_F32
DW_COLS = T.DW_COLS
DW8 = T.DW8
DWQ_COLS = T.DWQ_COLS  # the widest DWQ tile (the quad buffers' margins cover its reach)
DWQ_STEP = T.DWQ_STEP
DWQ_NARROW = T.DWQ_NARROW
DWL = T.DW_LANES  # channels per DW8 grid position (16 on AVX-512 targets: a zmm)
DW8_ONE_CLASS_MAX = 64  # DW8 for planes of one column class (1-D) below this many outputs only: above
                        # it the tiles' single plain copy beat the grid's transposes (16 x 256, k 5)
GATHER_MAX = 1 << 15  # im2col elements up to which gather indices replace runs
WINO_MIN_CH = 16       # Winograd (wino=None: the planner's choice) for at least this many input and
WINO_MIN_MACS = 1 << 20  # output channels and multiply-adds of the direct convolution (measured on a Zen 3:
                       # ResNet-8's 16/32/64-channel 3x3 layers 1.30-1.65x the GEMM path; 16 x 16 x 16
                       # at 0.59 M 1.07x, 24 x 12 x 12 at 0.75 M 0.85x, 8 channels 0.7x, 3 channels 0.2x)
WINO_AUTO = not T.WIDE_F32  # the planner takes Winograd on its own on targets where it was measured to pay:
                           # AVX2 (a Zen 3). On AVX-512 targets the direct tile is 32 positions wide and the
                           # transforms stay 8 wide, so the trade differs; not measured there yet: the direct
                           # path stays (conv_layout(wino=True) still forces Winograd, and tests run it)
WINO_BLOCK = 2048      # tiles per block times (C + O): V and M of a block in about 128 KB
                       # (256 KB measured 0.91-0.98x the time of a 16- or 32-channel layer alone but
                       # 0.99x in ResNet-8, where other layers' data share the L2: kept the smaller)
WINDOW_MAX = 1 << 16  # window elements per input channel up to which BM_WINDOW applies (ResNet-8 3x3
                      # stride 2: 6 x 16 x 16 = 1,536)

# Under NUMBA_BOUNDSCHECK=1 every call of an LLVM IR tile (kernels_tile, whose loads and stores
# Numba cannot check) first checks the extents it will touch and raises IndexError; otherwise
# the checks compile away (a constant False).
BOUNDS = bool(config.BOUNDSCHECK)
F32_EXACT = 1 << 24  # integers of magnitude below this are exact in float32


def pack_geometry(c, h, w, o, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, group=1, include_pad=0,
                  x_zp=0, y_zp=0, qmin=-128, qmax=127, cols=0) -> np.ndarray:
    """The int32 table of one window op (see the G_* slots): geometry, then int8 parameters
    that the interpreter passes on (kernels take them as arguments); ``conv_layout`` fills the
    path slots of a convolution."""
    t = np.zeros(G_LEN, dtype=np.int32)
    t[:G_PATH] = [c, h, w, o, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, group, include_pad,
                  x_zp, y_zp, qmin, qmax, cols]
    t[G_ACC] = G_LEN
    return t


@kernel_jit(inline="always")
def _div(a, b):
    """a // b (b >= 1) without the integer division when b == 1 (a stride or dilation: mostly 1;
    a 64-bit division costs tens of cycles, the per-window bookkeeping of a small convolution
    several of them)."""
    return a if b == 1 else a // b


@kernel_jit(inline="always")
def _first_valid(pad, k_off, stride):
    """Smallest output index i with i * stride + k_off - pad >= 0."""
    d = pad - k_off
    if d <= 0:
        return 0
    return _div(d + stride - 1, stride)


@kernel_jit(inline="always")
def _end_valid(n, pad, k_off, stride, n_out):
    """One past the largest output index i (< n_out) with i * stride + k_off - pad < n."""
    d = n - 1 + pad - k_off
    if d < 0:
        return 0
    e = _div(d, stride) + 1
    return e if e < n_out else n_out


@kernel_jit
def _im2col(src, xs, c0, cg, g, go, cols, co, fill):
    """Window elements of channels c0..c0+cg of one sample (x at src[xs:]) into
    cols[co:] as (cg * kh * kw, oh * ow) rows; padding positions get ``fill``."""
    h = g[go + G_H]
    w = g[go + G_W]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    sh = g[go + G_SH]
    sw = g[go + G_SW]
    dh = g[go + G_DH]
    dw = g[go + G_DW]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    hw = h * w
    plane = oh * ow
    for c in range(cg):
        xv = src[xs + (c0 + c) * hw:xs + (c0 + c + 1) * hw]
        for p in range(kh):
            i0 = _first_valid(pt, p * dh, sh)
            i1 = _end_valid(h, pt, p * dh, sh, oh)
            for q in range(kw):
                base = co + ((c * kh + p) * kw + q) * plane
                row = cols[base:base + plane]
                j0 = _first_valid(pl, q * dw, sw)
                j1 = _end_valid(w, pl, q * dw, sw, ow)
                if i0 > 0 or i1 < oh or j0 > 0 or j1 < ow:
                    for k in range(plane):
                        row[k] = fill
                if i1 <= i0 or j1 <= j0:
                    continue
                col = q * dw - pl
                n = j1 - j0
                for i in range(i0, i1):
                    r = i * sh + p * dh - pt
                    seg = row[i * ow + j0:i * ow + j1]
                    if sw == 1:
                        xr = xv[r * w + j0 + col:r * w + j0 + col + n]
                        for k in range(n):
                            seg[k] = xr[k]
                    elif sw == 2:  # a constant stride: LLVM vectorizes the copy (loads and shuffles)
                        xr = xv[r * w + j0 * 2 + col:r * w + (j1 - 1) * 2 + col + 1]
                        for k in range(n):
                            seg[k] = xr[2 * k]
                    else:
                        xr = xv[r * w + j0 * sw + col:r * w + (j1 - 1) * sw + col + 1]
                        for k in range(n):
                            seg[k] = xr[k * sw]


@kernel_jit(inline="always")
def _is_pointwise(g, go):
    """1x1 kernel, stride 1, no padding: the input planes are the im2col rows."""
    return (g[go + G_KH] == 1 and g[go + G_KW] == 1 and g[go + G_SH] == 1 and g[go + G_SW] == 1
            and g[go + G_PT] == 0 and g[go + G_PL] == 0 and g[go + G_OH] == g[go + G_H]
            and g[go + G_OW] == g[go + G_W])



@kernel_jit(inline="always")
def _need(arr, lo, hi):
    """Raise IndexError unless arr[lo:hi] lies inside arr (an empty range always does)."""
    if hi > lo and (lo < 0 or hi > arr.size):
        raise IndexError("kernel tile reads or writes outside its array")


@kernel_jit(inline="always")
def _check_gemm(A, ao, a_len, B, bo, ldb, KS, b_cols, D, do, ldd, rows, ncols, bias, bi, M, mi):
    """The extents a GEMM tile touches (BOUNDS only)."""
    _need(A, ao, ao + a_len)
    if KS > 0:
        _need(B, bo, bo + (KS - 1) * ldb + b_cols)
    _need(D, do, do + (rows - 1) * ldd + ncols)
    _need(bias, bi, bi + rows)
    _need(M, mi, mi + rows)


@kernel_jit(inline="always")
def _check_dw(Z, zo, zs, T_, to, nt_offs, W, wo, ws, n_w, D, do, ds, nch, ncols, bias, bi, cols_read):
    """The extents a depthwise tile touches (BOUNDS only): nt_offs tap offsets at T_[to:],
    n_w weights per channel, cols_read positions read per tap."""
    _need(T_, to, to + nt_offs)
    lo = 0
    hi = 0
    for t in range(nt_offs):
        lo = min(lo, T_[to + t])
        hi = max(hi, T_[to + t])
    for c in range(nch):
        _need(Z, zo + c * zs + lo, zo + c * zs + hi + cols_read)
        _need(W, wo + c * ws, wo + c * ws + n_w)
        _need(D, do + c * ds, do + c * ds + ncols)
    _need(bias, bi, bi + nch)


@kernel_jit(inline="always")
def _check_gather(X, xo, n_x, I, io, n, D, do):
    """The extents gather32 touches (BOUNDS only): indices in [-1, n_x), X[xo:xo + n_x]."""
    _need(I, io, io + n)
    _need(X, xo, xo + n_x)
    _need(D, do, do + n)
    for k in range(n):
        if I[io + k] < -1 or I[io + k] >= n_x:
            raise IndexError("im2col index outside the sample")


@kernel_jit(inline="always")
def _check_rows16(Z, zo, RT, ro, n_rows, A, ao, KS, D, do, ldd, rows, ncols, bias, bi, M, mi):
    """The extents s16_rows_tile* touches (BOUNDS only)."""
    _need(RT, ro, ro + n_rows)
    for k in range(n_rows):
        _need(Z, zo + RT[ro + k], zo + RT[ro + k] + max(COLS, ncols))
    _need(A, ao, ao + KS * ROWS)
    _need(D, do, do + (rows - 1) * ldd + ncols)
    _need(bias, bi, bi + rows)
    _need(M, mi, mi + rows)


@kernel_jit(inline="always")
def _check_fill(X, xo, n, MK, mo, ncls, Z, zo, zs):
    """The extents fill_masked touches (BOUNDS only)."""
    _need(X, xo, xo + n)
    _need(MK, mo, mo + ncls * n)
    for m in range(ncls):
        _need(Z, zo + m * zs, zo + m * zs + n)


@kernel_jit(inline="always")
def _fill(src, xo, hw, g, ma, ncls, zb, zo, zs, zp):
    """kernels_tile.fill_masked for float32 (int32 masks at g[ma:]), its extents checked first
    under BOUNDS."""
    if BOUNDS:
        _check_fill(src, xo, hw, g, ma, ncls, zb, zo, zs)
    T.fill_masked(src, xo, hw, g, ma, ncls, zb, zo, zs, zp)


@kernel_jit(inline="always")
def _fill16(src, xo, hw, g, ma, ncls, zb, zo, zs, zp):
    """kernels_tile.fill_masked for int8 into int16 copies (int16 masks from the int32 word g[ma]
    on, as _mask_words packs them) or into the u8 tile's byte copies (byte masks, _mask_bytes),
    its extents checked first under BOUNDS."""
    per = 4 // zb.itemsize  # masks to a word
    if BOUNDS:
        _need(g, ma, ma + (ncls * hw + per - 1) // per)
        _check_fill(src, xo, hw, g, ma, 0, zb, zo, zs)
        for m in range(ncls):
            _need(zb, zo + m * zs, zo + m * zs + hw)
    T.fill_masked(src, xo, hw, g, per * ma, ncls, zb, zo, zs, zp)


@kernel_jit(inline="always")
def _dw_f32(zb, zo, zs, g, ta, nt, W, wo, b, bo, dst, do, plane, nch, ncols, relu):
    """kernels_tile.dw_tile_f32 (weights nt per channel), its extents checked first under BOUNDS."""
    if BOUNDS:
        _check_dw(zb, zo, zs, g, ta, nt, W, wo, nt, nt, dst, do, plane, nch, ncols, b, bo, DW_COLS)
    T.dw_tile_f32(zb, zo, zs, g, ta, nt, W, wo, nt, b, bo, dst, do, plane, nch, ncols, relu)


@kernel_jit(inline="always")
def _dw_i8(zb, zo, zs, g, ta, npr, wa, bias, bo, dst, do, plane, nch, ncols, M, mo, y_zp, qmin, qmax):
    """kernels_tile.dw_tile_i8 (weight pairs npr per channel at g[wa:]), its extents checked first
    under BOUNDS."""
    if BOUNDS:
        _check_dw(zb, zo, zs, g, ta, 2 * npr, g, wa, npr, npr, dst, do, plane, nch, ncols, bias, bo, DW_COLS)
        _need(M, mo, mo + nch)
    T.dw_tile_i8(zb, zo, zs, g, ta, npr, g, wa, npr, bias, bo, dst, do, plane, nch, ncols, M, mo, y_zp, qmin, qmax)


def row_tile(t, og):
    """(first channel, channels) of GEMM row tile t of a group of og output channels: tiles of ROWS
    channels, except that a remainder of 1 or 2 after at least one full tile shares the last two
    tiles as 4 + 3 or 4 + 4 (a 2-row tile has too few accumulators to keep both FMA pipes busy).
    There are ceil(og / ROWS) tiles either way; the packers (pack_rows_f32, pack_pairs_i16,
    pack_quads_i8) lay tile t's weights out at t * ROWS rows, zero-padded."""
    n6 = og // ROWS
    rem = og - n6 * ROWS
    if (rem == 1 or rem == 2) and n6 >= 1 and t >= n6 - 1:
        if t == n6 - 1:
            return ROWS * t, 4
        return ROWS * t - 2, rem + 2
    return ROWS * t, min(ROWS, og - ROWS * t)


_row_tile = kernel_jit(inline="always")(row_tile)
_pool_f32_lanes = kernel_jit(inline="always")(T.pool_f32_lanes)


@kernel_jit(inline="always")
def _last_full(p0, plane, width):
    """(start, count) of the tile at p0 of the tiles at 0, width, 2 width, ... over plane
    positions (GEMM and depthwise, float32 and int8): the last, partial one starts at plane -
    width instead when plane >= width, so it is a full tile recomputing a few positions of the
    one before it (the same values in the same order: the sources are the layer's input or its
    own scratch copies, never its output) and loads and stores whole vectors (a partial tile
    masks its loads and stores through a stack buffer and a copy loop)."""
    if p0 + width > plane and plane >= width:
        return plane - width, width
    return p0, min(width, plane - p0)


# ------------------------------------------------------------------------------ float32 CONV
@kernel_jit(inline="always")
def _cf32_rows(rows, A, ao, B, bo, RT, ro, K, D, do, ldd, bias, bi, relu, ncols):
    """The cf32 tile with the fewest rows (2, 4 or 6) covering ``rows`` output channels; ncols ==
    2 COLS takes the 32-column tile (AVX-512 targets only, kernels_tile.WIDE_F32)."""
    if BOUNDS:
        _need(RT, ro, ro + K)
        _need(A, ao, ao + K * ROWS)
        for k in range(K):
            _need(B, bo + RT[ro + k], bo + RT[ro + k] + ncols)
        _need(D, do, do + (rows - 1) * ldd + ncols)
        _need(bias, bi, bi + rows)
    if ncols == 2 * COLS:
        if rows > 4:
            T.cf32_wide6(A, ao, B, bo, RT, ro, K, D, do, ldd, bias, bi, relu, rows, ncols)
        elif rows > 2:
            T.cf32_wide4(A, ao, B, bo, RT, ro, K, D, do, ldd, bias, bi, relu, rows, ncols)
        else:
            T.cf32_wide2(A, ao, B, bo, RT, ro, K, D, do, ldd, bias, bi, relu, rows, ncols)
    elif rows > 4:
        T.cf32_tile6(A, ao, B, bo, RT, ro, K, D, do, ldd, bias, bi, relu, rows, ncols)
    elif rows > 2:
        T.cf32_tile4(A, ao, B, bo, RT, ro, K, D, do, ldd, bias, bi, relu, rows, ncols)
    else:
        T.cf32_tile2(A, ao, B, bo, RT, ro, K, D, do, ldd, bias, bi, relu, rows, ncols)


@kernel_jit(inline="always")
def _col_tiles(plane, wide):
    """How many GEMM column tiles cover a plane (_col_at gives each); wide: the layer's tiles
    have a 32-column form on this target (float32: kernels_tile.WIDE_F32; the int8 u8 and
    in-place int16 tiles: WIDE_I8)."""
    if wide and plane >= 2 * COLS:
        return (plane + 2 * COLS - 1) // (2 * COLS)
    return (plane + COLS - 1) // COLS


@kernel_jit(inline="always")
def _col_at(t, plane, wide):
    """(start, count) of GEMM column tile t (float32 and int8): with ``wide`` (see _col_tiles), 32
    positions while more than 16 remain of a plane of at least 32 (the last one moved back to end
    at the plane's end, recomputing a few positions as _last_full's), then _last_full's 16; else
    _last_full's 16 (a plain range of 16-column steps). Packed B rows are G_PPAD >= plane words
    long and the copies hold the plane, so 32 columns from plane - 32 on stay inside them."""
    if wide and plane >= 2 * COLS:
        p0 = 2 * COLS * t
        if plane - p0 > COLS:
            return min(p0, plane - 2 * COLS), 2 * COLS
        return _last_full(p0, plane, COLS)
    return _last_full(COLS * t, plane, COLS)


def _window_value(Z, x, zp):
    """A copy's element in Z's dtype: x itself (float32), int16(x) - zp (an int8 code into the
    int16 copies), or x + 128 (into the u8 tile's byte copies)."""
    return x


@overload(_window_value, inline="always")
def _window_value_typed(Z, x, zp):
    if Z.dtype == types.uint8:
        return lambda Z, x, zp: np.uint8(np.int16(x) + np.int16(128))
    if isinstance(x, types.Integer):
        return lambda Z, x, zp: np.int16(np.int16(x) - np.int16(zp))
    return lambda Z, x, zp: x


def _run(X, x0, Z, z0, n, zp):
    """Z[z0 + k] = _window_value(Z, X[x0 + k], zp) for k < n: a window row's run."""
    for k in range(n):
        Z[z0 + k] = _window_value(Z, X[x0 + k], zp)


@overload(_run, inline="always")
def _run_typed(X, x0, Z, z0, n, zp):
    if T.WIDE_F32 and X.dtype == types.float32 and Z.dtype == types.float32:
        def run(X, x0, Z, z0, n, zp):  # 16 values per step, the last step masked
            for k in range(0, n, 16):
                if BOUNDS:
                    _need(X, x0 + k, x0 + min(n, k + 16))
                    _need(Z, z0 + k, z0 + min(n, k + 16))
                T.run16_f32(X, x0 + k, Z, z0 + k, min(16, n - k))
        return run

    def run(X, x0, Z, z0, n, zp):
        xr = X[x0:x0 + n]
        zr = Z[z0:z0 + n]
        for k in range(n):
            zr[k] = _window_value(Z, xr[k], zp)
    return run


def _stride2_width(Z):
    """Columns per _stride2 step: 16 for the u8 tile's byte copies, else 8."""
    return 8


@overload(_stride2_width, inline="always")
def _stride2_width_typed(Z):
    if Z.dtype == types.uint8:
        return lambda Z: 16
    return lambda Z: 8


def _stride2(X, xo, lo, hi, full, Z, zo, zp):
    """One window row step of column stride 2: kernels_tile.stride2_16b into the u8 tile's byte
    copies, else kernels_tile.stride2_8."""


@overload(_stride2, inline="always")
def _stride2_typed(X, xo, lo, hi, full, Z, zo, zp):
    if Z.dtype == types.uint8:
        return lambda X, xo, lo, hi, full, Z, zo, zp: T.stride2_16b(X, xo, lo, hi, full, Z, zo, zp)
    return lambda X, xo, lo, hi, full, Z, zo, zp: T.stride2_8(X, xo, lo, hi, full, Z, zo, zp)


def _pad_value(Z, zp):
    """A padding element of a copy in Z's dtype: 0 (x - x_zp of the int16 copies, or float32),
    or x_zp + 128 (the byte of x = x_zp in the u8 tile's byte copies)."""
    return 0


@overload(_pad_value, inline="always")
def _pad_value_typed(Z, zp):
    if Z.dtype == types.uint8:
        return lambda Z, zp: np.uint8(np.int16(zp) + np.int16(128))
    return lambda Z, zp: 0


def _s2k3_lanes(Z, ow):
    """Outputs per kernels_tile.s2k3_row step for a copy of Z's dtype and ow output columns: 16
    (u8 tile bytes, ow a multiple of 16) or 8 (bytes or float32, ow a multiple of 8), else 0
    (not taken; the int16 copies never take it)."""
    return 0


@overload(_s2k3_lanes, inline="always")
def _s2k3_lanes_typed(Z, ow):
    if Z.dtype == types.uint8:
        return lambda Z, ow: 16 if ow % 16 == 0 else (8 if ow % 8 == 0 else 0)
    if Z.dtype == types.float32:
        return lambda Z, ow: 8 if ow % 8 == 0 else 0
    return lambda Z, ow: 0


def _s2k3(X, xo, nb, Z, d0, d1, d2, zp, lanes):
    """One input row's three windows (kernels_tile.s2k3_row16 / s2k3_row8, ``lanes`` as
    _s2k3_lanes gave)."""


@overload(_s2k3, inline="always")
def _s2k3_typed(X, xo, nb, Z, d0, d1, d2, zp, lanes):
    if Z.dtype == types.uint8:
        def row(X, xo, nb, Z, d0, d1, d2, zp, lanes):
            if lanes == 16:
                T.s2k3_row16(X, xo, nb, Z, d0, d1, d2, zp)
            else:
                T.s2k3_row8(X, xo, nb, Z, d0, d1, d2, zp)
        return row
    if Z.dtype == types.float32:
        return lambda X, xo, nb, Z, d0, d1, d2, zp, lanes: T.s2k3_row8(X, xo, nb, Z, d0, d1, d2, zp)
    return lambda X, xo, nb, Z, d0, d1, d2, zp, lanes: None  # _s2k3_lanes is 0: never called


@kernel_jit
def _windows(X, xb, g, go, Z, zo, zp):
    """BM_WINDOW: for each of the group's input channels c and window class m < G_NCLS (kernel
    column q and row phase ph, the pair at g[go + G_AUX2 + 2 m:]), the (ceil(h / sh), ow) window
    of plane c (X[xb + c * h * w:]) whose row r' holds input row r' * sh + ph at the columns
    j * sw + q * dw - pl, copied row by row (strided runs) into Z[zo + (c * G_NCLS + m) * G_ZS +
    G_ZM:]. Padding columns, rows past the plane and the margins around each window are never
    written: they keep the planner's prefilled scratch (ConvLayout.fill). X and Z float32 (zp
    unused), or X the int8 sample and Z int16: the windows of x - zp (padding 0, i.e. x_zp), or
    Z uint8: the u8 tile's bytes x + 128 (padding zp + 128)."""
    h = g[go + G_H]
    w = g[go + G_W]
    ow = g[go + G_OW]
    sh = g[go + G_SH]
    sw = g[go + G_SW]
    dw = g[go + G_DW]
    pl = g[go + G_PL]
    cg = g[go + G_C] // g[go + G_GROUP]
    ncls = g[go + G_NCLS]
    zs = g[go + G_ZS]
    zm = g[go + G_ZM]
    ca = go + g[go + G_AUX2]
    lanes = _s2k3_lanes(Z, ow)
    s2k3 = g[go + G_S2K3]
    if s2k3 != 0 and lanes > 0:
        # a 3-wide, stride-2, pad-1 filter over rows of twice ow columns (ResNet's stride-2 3 x 3
        # layers; the planner's _s2k3_plan): each input row's three windows in one pass
        # (kernels_tile.s2k3_row*: one load per step instead of one per window, no lane masks);
        # rows of phase ph are rows ph, ph + sh, ...
        k = go + s2k3
        m00, m01, m02, m10, m11, m12 = g[k], g[k + 1], g[k + 2], g[k + 3], g[k + 4], g[k + 5]
        nb = ow // lanes
        for c in range(cg):
            xc = xb + c * h * w
            dc = zo + c * ncls * zs + zm
            for ph in range(sh):
                d0 = dc + (m10 if ph else m00) * zs
                d1 = dc + (m11 if ph else m01) * zs
                d2 = dc + (m12 if ph else m02) * zs
                xr = xc + ph * w
                for rr in range(_div(h - ph + sh - 1, sh)):
                    if BOUNDS:
                        _need(X, xr, xr + w)
                        for d in (d0, d1, d2):
                            _need(Z, d, d + ow)
                    _s2k3(X, xr, nb, Z, d0, d1, d2, zp, lanes)
                    xr += sh * w
                    d0 += ow
                    d1 += ow
                    d2 += ow
        return
    for c in range(cg):
        xc = xb + c * h * w
        for m in range(ncls):
            q = g[ca + 2 * m]
            ph = g[ca + 2 * m + 1]
            j0 = _first_valid(pl, q * dw, sw)
            j1 = _end_valid(w, pl, q * dw, sw, ow)
            if j1 <= j0:
                continue
            n = j1 - j0
            col = j0 * sw + q * dw - pl  # input column of output column j0
            d = zo + (c * ncls + m) * zs + zm
            nr = _div(h - ph + sh - 1, sh)  # rows of this phase
            if sw == 2:  # s2 columns per _stride2 step (16 bytes of the u8 tile's copies, else 8),
                # padding lanes as the fill. A row's last step spills padding past ow into the next
                # row's first columns (or the tail): the column blocks run last to first, each down
                # all rows, so block 0 comes after
                s2 = _stride2_width(Z)
                xr = xc + ph * w + q * dw - pl  # input column of output column 0 in the row
                for jb in range((ow - 1) // s2 * s2, -1, -s2):
                    lo = max(j0 - jb, 0)
                    hi = min(j1 - jb, s2)
                    if hi <= lo:
                        continue
                    xj = xr + 2 * jb
                    zj = d + jb
                    for rr in range(nr):
                        full = xj >= 0 and xj + 2 * s2 <= X.size  # plain loads
                        if BOUNDS:
                            if full:
                                _need(X, xj, xj + 2 * s2)
                            _need(X, xj + 2 * lo, xj + 2 * (hi - 1) + 1)
                            _need(Z, zj, zj + s2)
                        _stride2(X, xj, lo, hi, full, Z, zj, zp)
                        xj += sh * w
                        zj += ow
                continue
            r0 = ph
            if sw == 1 and n == ow:
                # whole rows of the input: 16 values per kernels_tile.run16 step (_rows16) for the
                # rows whose steps stay inside the window (a row's last step spills into the next
                # row, written after it) and inside X; the rest run by run (_run) below
                span = (ow + 15) // 16 * 16
                n_fast = nr
                while n_fast > 0 and ((n_fast - 1) * ow + span > nr * ow
                                      or xc + (ph + (n_fast - 1) * sh) * w + col + span > X.size):
                    n_fast -= 1
                _rows16(X, xc + ph * w + col, sh * w, Z, d, ow, n_fast, zp)
                r0 = ph + n_fast * sh
            zr = d + _div(r0 - ph, sh) * ow  # the window row of input row r0
            r = r0
            while r < h:  # (a range with a run-time step divides to count its trips)
                x0 = xc + r * w + col
                if sw == 1:
                    _run(X, x0, Z, zr + j0, n, zp)
                else:
                    seg = Z[zr + j0:zr + j0 + n]
                    xr = X[x0:x0 + (n - 1) * sw + 1]
                    for k in range(n):
                        seg[k] = _window_value(Z, xr[k * sw], zp)
                zr += ow
                r += sh


@kernel_jit(inline="always")
def _rows16(X, xo, w, Z, zo, ow, nrows, zp):
    """Z[zo + r * ow + j] = _window_value(Z, X[xo + r * w + j], zp) for r < nrows, j < ow, 16
    values per kernels_tile.run16 step: reads up to X[xo + (nrows - 1) * w + ow + 15], writes up to
    Z[zo + nrows * ow + 15] (a row's last step spills into the next, written after it). Rows of at
    most 16 values take one step each in a flat loop (the nested loop's per-row bookkeeping, which
    LLVM vectorizes for long rows, measured 1.25x the copy time of a 10-wide window)."""
    if ow <= 16:
        for r in range(nrows):
            if BOUNDS:
                _need(X, xo + r * w, xo + r * w + 16)
                _need(Z, zo + r * ow, zo + r * ow + 16)
            T.run16(X, xo + r * w, Z, zo + r * ow, zp)
        return
    for r in range(nrows):
        for j0 in range(0, ow, 16):
            if BOUNDS:
                _need(X, xo + r * w + j0, xo + r * w + j0 + 16)
                _need(Z, zo + r * ow + j0, zo + r * ow + j0 + 16)
            T.run16(X, xo + r * w + j0, Z, zo + r * ow + j0, zp)


@kernel_jit(inline="always")
def _window_rows16(X, xo, w, Z, zo, ow, r0, r1, j_lo, j_hi, zp):
    """Rows r0 <= r < r1 one value at a time: Z[zo + r * ow + j] = X[xo + r * w + j] - zp for
    j_lo <= j < j_hi, else 0 (padding columns), j < ow (int8 -> int16; into uint8: x + 128,
    padding zp + 128)."""
    pad = _pad_value(Z, zp)
    for r in range(r0, r1):
        zr = Z[zo + r * ow:zo + (r + 1) * ow]
        for j in range(ow):
            zr[j] = pad
        if j_hi > j_lo:
            xr = X[xo + r * w + j_lo:xo + r * w + j_hi]
            zr = Z[zo + r * ow + j_lo:zo + r * ow + j_hi]
            for j in range(j_hi - j_lo):
                zr[j] = _window_value(Z, xr[j], zp)


@kernel_jit
def _windows16(X, xb, g, go, Z, zo, x_zp):
    """BM_WINDOW for int8 with stride 1: the windows _windows gathers, as int16 x - x_zp (or,
    Z uint8, the u8 tile's bytes x + 128) straight from the int8 sample (X[xb:] the group's
    planes) into the array Z at zo + (c * G_NCLS + q) * G_ZS + G_ZM, padding columns 0 (bytes:
    x_zp + 128). Each window row is a run of the
    input row: _rows16 (16 values per vector step) for the rows whose steps read inside X and
    write inside the window's rows, when the window's columns all lie inside the input; the
    other rows one value at a time."""
    h = g[go + G_H]
    w = g[go + G_W]
    ow = g[go + G_OW]
    dw = g[go + G_DW]
    pl = g[go + G_PL]
    cg = g[go + G_C] // g[go + G_GROUP]
    ncls = g[go + G_NCLS]
    zs = g[go + G_ZS]
    zm = g[go + G_ZM]
    zp = np.int16(x_zp)
    span = (ow + 15) // 16 * 16  # values a row's steps read and write
    for c in range(cg):
        for q in range(ncls):
            col0 = q * dw - pl  # input column of output column 0
            j_lo = min(ow, max(0, -col0))  # output columns j_lo..j_hi - 1 read the input
            j_hi = max(j_lo, min(ow, w - col0))
            xo = xb + c * h * w + col0
            d = zo + (c * ncls + q) * zs + zm
            n_fast = 0
            if j_lo == 0 and j_hi == ow:
                n_fast = h
                while n_fast > 0 and ((n_fast - 1) * ow + span > h * ow or xo + (n_fast - 1) * w + span > X.size):
                    n_fast -= 1
                _rows16(X, xo, w, Z, d, ow, n_fast, zp)
            _window_rows16(X, xo, w, Z, d, ow, n_fast, h, j_lo, j_hi, zp)


@kernel_jit
def _copies16(X, xb, cg, hw, g, go, Z, zo, x_zp):
    """The int8 GEMM's zero-margined copies of x - x_zp of one group's cg planes (X[xb:]) at
    Z[zo:]: windows (BM_WINDOW; stride 1 by 16-value rows, _windows16) or shifted planes with
    their column masks (BM_SHIFT, _fill16). Z int16, or uint8 for the u8 tile's bytes x + 128
    (padding x_zp + 128; the margins no call writes are prefilled with it, ConvLayout.fill)."""
    if g[go + G_BMODE] == BM_WINDOW:
        if g[go + G_SH] == 1 and g[go + G_SW] == 1:
            _windows16(X, xb, g, go, Z, zo, x_zp)
        else:
            _windows(X, xb, g, go, Z, zo, x_zp)
        return
    ncls = g[go + G_NCLS]
    zs = g[go + G_ZS]
    for c in range(cg):
        _fill16(X, xb + c * hw, hw, g, go + g[go + G_AUX2], ncls, Z, zo + c * ncls * zs + g[go + G_ZM], zs, x_zp)


@kernel_jit
def _gemm_f32(A, ao, B, bo, RT, ro, k_n, D, do, ldd, og, ncols, bias, bi, relu):
    """D (og, ncols) at D[do:] (rows ldd apart) = act(A (og, k_n) . B (k_n, ncols) + bias[bi:bi + og]) on
    the cf32 tiles: A packed by pack_rows_f32 at A[ao:], row k of B at B[bo + RT[ro + k]:]. One
    compiled copy of the tile dispatch for the GEMM and Winograd paths (not inlined: each
    inlined copy of _cf32_rows' six tiles costs first-compile time)."""
    for tc in range(_col_tiles(ncols, T.WIDE_F32)):
        p0, nc = _col_at(tc, ncols, T.WIDE_F32)
        for t in range((og + ROWS - 1) // ROWS):
            o0, rows = _row_tile(t, og)
            _cf32_rows(rows, A, ao + t * ROWS * k_n, B, bo + p0, RT, ro, k_n, D, do + o0 * ldd + p0, ldd, bias,
                       bi + o0, relu, nc)

@kernel_jit
def _conv_gemm_f32(src, xs, W, wo, b, bo, dst, ys, g, go, cols, co, relu):
    """PATH_GEMM, one sample, group by group: y (O/group, P) = act(W_g (O/group, K) . B (K, P) + b)
    with row k of B at an offset from the table's row list (G_ROWS): the group's input planes
    (BM_PLANES), im2col rows in cols[co:] made by gather indices or by runs (BM_GATHER, BM_RUNS),
    or shifted zero-margined copies of the group's planes in cols[co:] (BM_SHIFT, stride 1: each
    plane copied once per column class, kernels_tile.fill_masked, no im2col). W packed by
    pack_rows_f32 per group at W[wo:]."""
    c_in = g[go + G_C]
    hw = g[go + G_H] * g[go + G_W]
    group = g[go + G_GROUP]
    cg = c_in // group
    og = g[go + G_O] // group
    plane = g[go + G_OH] * g[go + G_OW]
    k_n = g[go + G_K]
    wg = (og + ROWS - 1) // ROWS * ROWS * k_n  # packed weights per group
    mode = g[go + G_BMODE]
    ro = go + g[go + G_ROWS]
    for gi in range(group):
        if mode == BM_PLANES:
            B = src
            bb = xs + gi * cg * plane
        else:
            if mode == BM_GATHER:
                gather = go + g[go + G_GATHER]
                if BOUNDS:
                    _check_gather(src, xs + gi * cg * hw, cg * hw, g, gather, k_n * plane, cols, co)
                T.gather32(src, xs + gi * cg * hw, g, gather, k_n * plane, cols, co, np.float32(0.0))
            elif mode == BM_RUNS:
                _im2col(src, xs, gi * cg, cg, g, go, cols, co, np.float32(0.0))
            elif mode == BM_WINDOW:
                _windows(src, xs + gi * cg * hw, g, go, cols, co, 0)
            else:
                ncls = g[go + G_NCLS]
                zs = g[go + G_ZS]
                for c in range(cg):
                    _fill(src, xs + (gi * cg + c) * hw, hw, g, go + g[go + G_AUX2], ncls, cols,
                          co + c * ncls * zs + g[go + G_ZM], zs, 0)
            B = cols
            bb = co
        _gemm_f32(W, wo + gi * wg, B, bb, g, ro, k_n, dst, ys + gi * og * plane, plane, og, plane, b, bo + gi * og, relu)


@kernel_jit(inline="always")
def _check_dw8(X, xs, n_x, Z, zo, zs, g, pa, hw, plane, ta, nt, W, wo, D, do, ds, nch, bias, bi):
    """The extents DW8 touches for one group of nch channels (BOUNDS only; Z, zo, zs in Z's own
    elements, the grid offsets g[pa:] and taps g[ta:] in float32 elements of a float32 Z)."""
    _need(X, xs, xs + n_x)
    _need(Z, zo, zo + zs)
    _need(g, pa, pa + hw + plane)
    _need(g, ta, ta + nt)
    cap = zs * Z.itemsize // 4  # float32 elements of the grid
    for k in range(hw):
        if g[pa + k] < 0 or g[pa + k] + DWL > cap:
            raise IndexError("kernel tile reads or writes outside its array")
    for k in range(plane):
        for t in range(nt):
            at = g[pa + hw + k] + g[ta + t]
            if at < 0 or at + DWL > cap:
                raise IndexError("kernel tile reads or writes outside its array")
    _need(W, wo, wo + nt * DWL)
    _need(D, do, do + (nch - 1) * ds + plane)
    _need(bias, bi, bi + nch)


@kernel_jit
def _conv_dw8_f32(src, xs, W, wo, b, bo, dst, ys, g, go, zb, zo, relu):
    """PATH_DW by DW8 (g[go + G_DW8] != 0), one sample: for each group of DWL output channels,
    kernels_tile.dw8_pack (the grid: G_ZS floats at zb[zo:] from its first 4 DWL-byte boundary,
    positions g[go + G_DW8:], hw input then oh ow output; DWL = 16: two packs of eight lanes) and
    kernels_tile.dw8_f32 / dw16_f32 (taps g[go + G_AUX:], W packed (groups, taps, DWL) at W[wo:])."""
    c_n = g[go + G_C]
    hw = g[go + G_H] * g[go + G_W]
    o_n = g[go + G_O]
    og = o_n // c_n
    plane = g[go + G_OH] * g[go + G_OW]
    nt = g[go + G_NT]
    ta = go + g[go + G_AUX]
    pa = go + g[go + G_DW8]
    zs = g[go + G_ZS]
    z0 = T.align16(zb, zo) if DWL == 16 else T.align8(zb, zo)
    for o0 in range(0, o_n, DWL):
        nch = min(DWL, o_n - o0)
        if BOUNDS:
            _check_dw8(src, xs, c_n * hw, zb, z0, zs, g, pa, hw, plane, ta, nt, W, wo + o0 * nt, dst,
                       ys + o0 * plane, plane, nch, b, bo + o0)
        T.dw8_pack(src, xs, hw, o0, og, o_n - 1, zb, z0, g, pa)
        if DWL == 16:
            T.dw8_pack(src, xs, hw, o0 + DW8, og, o_n - 1, zb, z0 + DW8, g, pa)
            T.dw16_f32(zb, z0, g, pa + hw, plane, g, ta, nt, W, wo + o0 * nt, b, bo + o0, nch, dst, ys + o0 * plane,
                       plane, relu)
        else:
            T.dw8_f32(zb, z0, g, pa + hw, plane, g, ta, nt, W, wo + o0 * nt, b, bo + o0, nch, dst,
                      ys + o0 * plane, plane, relu)


@kernel_jit
def _conv_dw_f32(src, xs, W, wo, b, bo, dst, ys, g, go, zb, zo, relu):
    """PATH_DW, one sample (one input channel per group); W (O, taps kept) at W[wo:]; for DW_CH_F32
    channels G_NCLS * G_ZS floats of plane buffers each at zb[zo:]: each input plane copied once
    per column class with that class's mask (g[go + G_AUX2:], kernels_tile.fill_masked: 0 where
    a tap of that column shift would wrap into the next or previous row). The margins around the
    copies are never written: they stay zero from the planner's zeroed scratch. DW8 layouts go
    to _conv_dw8_f32."""
    if g[go + G_DW8] != 0:
        _conv_dw8_f32(src, xs, W, wo, b, bo, dst, ys, g, go, zb, zo, relu)
        return
    c_n = g[go + G_C]
    hw = g[go + G_H] * g[go + G_W]
    og = g[go + G_O] // c_n
    plane = g[go + G_OH] * g[go + G_OW]
    nt = g[go + G_NT]
    ncls = g[go + G_NCLS]
    zm = g[go + G_ZM]
    zs = g[go + G_ZS]
    cs = ncls * zs  # floats per channel
    ma = go + g[go + G_AUX2]
    ta = go + g[go + G_AUX]
    if og == 1:  # DW_CH_F32 channels per tile, each with its own buffers
        for c0 in range(0, c_n, DW_CH_F32):
            nch = min(DW_CH_F32, c_n - c0)
            for c in range(nch):
                _fill(src, xs + (c0 + c) * hw, hw, g, ma, ncls, zb, zo + c * cs + zm, zs, 0)
            for k0 in range(0, plane, DW_COLS):
                k0, nc = _last_full(k0, plane, DW_COLS)
                _dw_f32(zb, zo + k0, cs, g, ta, nt, W, wo + c0 * nt, b, bo + c0,
                        dst, ys + c0 * plane + k0, plane, nch, nc, relu)
    else:  # og outputs per input channel: the tile's channels share one buffer (stride 0)
        for c in range(c_n):
            _fill(src, xs + c * hw, hw, g, ma, ncls, zb, zo + zm, zs, 0)
            for o0 in range(c * og, (c + 1) * og, DW_CH_F32):
                nch = min(DW_CH_F32, (c + 1) * og - o0)
                for k0 in range(0, plane, DW_COLS):
                    k0, nc = _last_full(k0, plane, DW_COLS)
                    _dw_f32(zb, zo + k0, 0, g, ta, nt, W, wo + o0 * nt, b, bo + o0,
                            dst, ys + o0 * plane + k0, plane, nch, nc, relu)


def wino_shape(c, o, oh, ow, nbr):
    """PATH_WINO's scratch for c input and o output channels, an (oh, ow) output and nbr tile rows
    per block: (th, tw, hp, wp, nbp, vo, mo, total). Tiles are 2 x 2 outputs, th x tw of them; the
    zero-padded input planes (hp x wp each, the top-left pads at their margins) start at 0, V (16
    rows of c x nbp: the transformed input of one block, tile rows tw apart) at vo, M (16 rows of
    o x nbp: their products) at mo, in float32 elements. nbp = ceil16(nbr tw) + 8 >= a block's
    tiles + 8 (wino_in8's last step writes, and wino_out8's reads, up to 7 past a block's tiles;
    an odd multiple of 8 floats keeps the 16 rows of a step off one L1 set); the planes have 16
    floats of slack after them (wino_in8 reads up to 14 past a row)."""
    th = (oh + 1) // 2
    tw = (ow + 1) // 2
    hp = 2 * th + 2
    wp = 2 * tw + 2
    nbp = (nbr * tw + 15) // 16 * 16 + 8
    vo = (c * hp * wp + 16 + 15) // 16 * 16
    mo = vo + 16 * c * nbp
    return th, tw, hp, wp, nbp, vo, mo, mo + 16 * o * nbp


_wino_shape = kernel_jit(inline="always")(wino_shape)


@kernel_jit
def _conv_wino_f32(src, xs, W, wo, b, bo, dst, ys, g, go, cols, co, relu):
    """PATH_WINO, one sample: a 3 x 3, stride 1, undilated, ungrouped convolution as Winograd
    F(2x2, 3x3). The input planes are copied into zero-padded planes (cols[co:], the margins the
    planner zeroed are never written); then per block of G_WBR tile rows: each 4 x 4 input tile of
    each channel is transformed (kernels_tile.wino_in8, eight tiles a step) into the 16 rows of V,
    the 16 products M[x] (O, tiles) = U[x] (O, C) . V[x] (C, tiles) run on the cf32 tile (U = G W
    G^T packed by pack_rows_f32 per x at W[wo:], then O zeros as its bias; V rows through the
    row table at G_ROWS), and each tile's 2 x 2 outputs come back by kernels_tile.wino_out8 with
    bias and ReLU."""
    c_n = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    o_n = g[go + G_O]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    nbr = g[go + G_WBR]
    ro = go + g[go + G_ROWS]
    th, tw, hp, wp, nbp, _, _, _ = _wino_shape(c_n, o_n, oh, ow, nbr)
    vo = g[go + G_WORK]  # V, then M: work, written before it is read
    mo = vo + 16 * c_n * nbp
    upx = (o_n + ROWS - 1) // ROWS * ROWS * c_n  # packed U per x
    wz = wo + 16 * upx  # O zeros: the products' bias
    # the planes into their margins (hp >= h + pt and wp >= w + pl, oh = h + pt + pb - 2); a plain
    # copy loop: _run's dtype-generic one measured 1.09-1.11x the layer's time on ResNet-8's 16-channel 3x3
    for c in range(c_n):
        for r in range(h):
            d = cols[co + (c * hp + r + pt) * wp + pl:co + (c * hp + r + pt) * wp + pl + w]
            x = src[xs + (c * h + r) * w:xs + (c * h + r + 1) * w]
            for j in range(w):
                d[j] = x[j]
    sv = c_n * nbp
    sm = o_n * nbp
    for tb in range(0, th, nbr):
        nr = min(nbr, th - tb)
        nb = nr * tw
        for c in range(c_n):
            for i in range(nr):
                p = co + (c * hp + 2 * (tb + i)) * wp
                v = co + vo + c * nbp + i * tw
                for t in range(0, tw, 8):
                    if BOUNDS:
                        _need(cols, p + 2 * t, p + 3 * wp + 2 * t + 18)
                        _need(cols, v + t, v + t + 15 * sv + 8)
                    T.wino_in8(cols, p + 2 * t, wp, cols, v + t, sv)
        for x in range(16):
            _gemm_f32(W, wo + x * upx, cols, co + vo + x * sv, g, ro, c_n, cols, co + mo + x * sm, nbp, o_n, nb, W, wz,
                      False)
        for k in range(o_n):
            bk = b[bo + k]
            for i in range(nr):
                two = 2 * (tb + i) + 1 < oh
                m = co + mo + k * nbp + i * tw
                y = ys + (k * oh + 2 * (tb + i)) * ow
                for t in range(0, tw, 8):
                    nc = min(16, ow - 2 * t)
                    if BOUNDS:
                        _need(cols, m + t, m + t + 15 * sm + 8)
                        _need(dst, y + 2 * t, y + 2 * t + nc + (ow if two else 0))
                    T.wino_out8(cols, m + t, sm, dst, y + 2 * t, ow, nc, two, bk, relu)


@kernel_jit
def conv_f32(src, so, W, wo, b, bo, dst, do, g, go, m, cols, co, act, alpha, beta):
    """CONV with its activation for m samples: x (C, H, W) at src[so:] -> y (O, oh, ow) at
    dst[do:]. The table g[go:] (conv_layout) gives the path; W at W[wo:] is packed for it
    (conv_layout(...).W), b (O,) float32 at b[bo:]; cols[co:] float32 scratch of
    conv_layout(...).f32 elements. act/alpha/beta as kernels.act_f32: ReLU is fused into the
    GEMM and DW epilogues, any other activation runs over the output afterwards."""
    n_in = g[go + G_C] * g[go + G_H] * g[go + G_W]
    n_out = g[go + G_O] * g[go + G_OH] * g[go + G_OW]
    path = g[go + G_PATH]
    relu = act == A_RELU
    for s in range(m):
        xs = so + s * n_in
        ys = do + s * n_out
        if path == PATH_DW:
            _conv_dw_f32(src, xs, W, wo, b, bo, dst, ys, g, go, cols, co, relu)
        elif path == PATH_WINO:
            _conv_wino_f32(src, xs, W, wo, b, bo, dst, ys, g, go, cols, co, relu)
        else:
            _conv_gemm_f32(src, xs, W, wo, b, bo, dst, ys, g, go, cols, co, relu)
    if act != A_IDENTITY and not relu:
        act_f32(dst, do, dst, do, m * n_out, act, alpha, beta)


# ------------------------------------------------------------------------------ int8 QCONV
@kernel_jit(inline="always")
def _i8_rows(u8, rows, A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, ncols):
    """The int8 tile (u8: uint8 quads, else int16 pairs) with the fewest rows (2, 4 or 6)
    covering ``rows`` output channels; ncols == 2 COLS takes the 32-column u8 tile (WIDE_I8
    targets only, _col_at)."""
    if BOUNDS:
        _check_gemm(A, ao, KS * ROWS, B, bo, ldb, KS, max(COLS, ncols), D, do, ldd, rows, ncols, bias, bi, M, mi)
    if T.WIDE_I8 and u8 and ncols == 2 * COLS:  # (_col_at; a constant False elsewhere: not compiled in)
        if rows > 4:
            T.u8_wide6(A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
        elif rows > 2:
            T.u8_wide4(A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
        else:
            T.u8_wide2(A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
    elif u8:
        if rows > 4:
            T.u8_tile6(A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
        elif rows > 2:
            T.u8_tile4(A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
        else:
            T.u8_tile2(A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
    elif rows > 4:
        T.s16_tile6(A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
    elif rows > 2:
        T.s16_tile4(A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
    else:
        T.s16_tile2(A, ao, B, bo, ldb, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)


@kernel_jit(inline="always")
def _s16_rows(rows, A, ao, Z, zo, RT, ro, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, ncols):
    """The in-place int16 tile (kernels_tile.s16_rows_tile*) with the fewest rows (2, 4 or 6)
    covering ``rows`` output channels; ncols == 2 COLS takes the 32-column tile (WIDE_I8 targets
    only, _col_at)."""
    if T.WIDE_I8 and ncols == 2 * COLS:
        if rows > 4:
            T.s16_rows_wide6(A, ao, Z, zo, RT, ro, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
        elif rows > 2:
            T.s16_rows_wide4(A, ao, Z, zo, RT, ro, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
        else:
            T.s16_rows_wide2(A, ao, Z, zo, RT, ro, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
    elif rows > 4:
        T.s16_rows_tile6(A, ao, Z, zo, RT, ro, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
    elif rows > 2:
        T.s16_rows_tile4(A, ao, Z, zo, RT, ro, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)
    else:
        T.s16_rows_tile2(A, ao, Z, zo, RT, ro, KS, D, do, ldd, bias, bi, M, mi, y_zp, qmin, qmax, rows, ncols)


@kernel_jit(inline="always")
def _pack_pairs(x, r0, r1, has1, n, sub, Bw, bo):
    """Bw[bo + p] = int16(x[r0 + p] - sub) | int16(x[r1 + p] - sub) << 16 for p < n (the high
    half 0 when not has1): one row of int16 pairs for the s16 tile."""
    z = np.int32(sub)
    a = x[r0:r0 + n]
    out = Bw[bo:bo + n]
    if has1:
        c = x[r1:r1 + n]
        for p in range(n):
            out[p] = ((np.int32(a[p]) - z) & 0xFFFF) | ((np.int32(c[p]) - z) << 16)
    else:
        for p in range(n):
            out[p] = (np.int32(a[p]) - z) & 0xFFFF


@kernel_jit(inline="always")
def _pack_quads(x, r0, r1, r2, r3, nrows, n, add, Bw, bo):
    """Bw[bo + p] = the bytes x[r_t + p] + add (as uint8) for t = 0..3, t = 0 in the low byte;
    rows t >= nrows give 128, or with 16 or more quads the bytes of the row r_t (r_t = the last
    row when t >= nrows; their weights are 0): one row of uint8 quads for the u8 tile (x int8 codes
    with add = 128, or the copies' bytes with add = 0)."""
    out = Bw[bo:bo + n]
    z = np.int32(add)
    a = x[r0:r0 + n]
    if n >= 16:  # 32 quads per step (16 below 32), the last overlapping
        q = 32 if n >= 32 else 16
        for p0 in range(0, n, q):
            p = min(p0, n - q)
            if BOUNDS:
                for r in (r0, r1, r2, r3):
                    _need(x, r + p, r + p + q)
                _need(Bw, bo + p, bo + p + q)
            if q == 32:
                T.pack_quads32(x, r0 + p, r1 + p, r2 + p, r3 + p, add, Bw, bo + p)
            else:
                T.pack_quads16(x, r0 + p, r1 + p, r2 + p, r3 + p, add, Bw, bo + p)
    elif nrows == 4:
        b = x[r1:r1 + n]
        c = x[r2:r2 + n]
        d = x[r3:r3 + n]
        for p in range(n):
            out[p] = (((np.int32(a[p]) + z) & 0xFF) | (((np.int32(b[p]) + z) & 0xFF) << 8)
                      | (((np.int32(c[p]) + z) & 0xFF) << 16) | ((np.int32(d[p]) + z) << 24))
    else:
        for p in range(n):
            v = (np.int32(a[p]) + z) & 0xFF
            if nrows > 1:
                v |= ((np.int32(x[r1 + p]) + z) & 0xFF) << 8
            else:
                v |= 128 << 8
            if nrows > 2:
                v |= ((np.int32(x[r2 + p]) + z) & 0xFF) << 16
            else:
                v |= 128 << 16
            out[p] = v | (128 << 24)


@kernel_jit
def _pack_b(X, xb, RT, ro, g, go, sub, add, u8):
    """The int8 GEMM's B words from its G_K rows of P values, row k at X[xb + RT[ro + k]]: into
    g[go + G_ACC:], G_NT rows of G_PPAD words (u8: uint8 quads of x + add; else int16 pairs of
    x - sub)."""
    plane = g[go + G_OH] * g[go + G_OW]
    ks = g[go + G_NT]
    k_n = g[go + G_K]
    ppad = g[go + G_PPAD]
    bw = go + g[go + G_ACC]
    if BOUNDS:
        _need(RT, ro, ro + k_n)
        for k in range(k_n):
            _need(X, xb + RT[ro + k], xb + RT[ro + k] + plane)
    if u8:
        for j in range(ks):
            k = 4 * j
            nr = min(4, k_n - k)
            _pack_quads(X, xb + RT[ro + k], xb + RT[ro + min(k + 1, k_n - 1)], xb + RT[ro + min(k + 2, k_n - 1)],
                        xb + RT[ro + min(k + 3, k_n - 1)], nr, plane, add, g, bw + j * ppad)
    else:
        for j in range(ks):
            k = 2 * j
            _pack_pairs(X, xb + RT[ro + k], xb + RT[ro + min(k + 1, k_n - 1)], k + 1 < k_n, plane, sub, g,
                        bw + j * ppad)


@kernel_jit
def _qconv_gemm(src, xs, bias, bo, M, mo, dst, ys, g, go, x_zp, y_zp, qmin, qmax, cols, co, u8, f32s, fo):
    """PATH_GEMM / PATH_GEMM_U8 int8, one sample, group by group: B rows (G_BMODE) are the
    group's input planes, its int8 im2col rows in cols[co:] (padding x_zp; by runs, or by gather
    indices from an int32 copy of the sample in f32s[fo:]) packed by _pack_b, W packed likewise per
    group at g[go + G_AUX:] (pack_pairs_i16 / pack_quads_i8; the u8 tile's bias at g[go + G_BIAS8:]
    has (128 + x_zp) * sum_k W[o, k] taken off, the s16 tile's is the layer's own); or zero-margined
    int16 copies of x - x_zp in f32s[fo:] (BM_SHIFT: shifted planes; BM_WINDOW: gathered column
    windows) that kernels_tile.s16_rows_tile* reads in place, pairs of rows interleaved in
    registers (no packing pass; W as int16 pairs); for the u8 tile the copies are its own bytes
    x + 128 (padding x_zp + 128, prefilled by the planner: ConvLayout.fill), packed into quads
    without arithmetic."""
    c_in = g[go + G_C]
    hw = g[go + G_H] * g[go + G_W]
    group = g[go + G_GROUP]
    cg = c_in // group
    og = g[go + G_O] // group
    plane = g[go + G_OH] * g[go + G_OW]
    ks = g[go + G_NT]
    k_n = g[go + G_K]
    ppad = g[go + G_PPAD]
    bw = go + g[go + G_ACC]
    aw = go + g[go + G_AUX]
    wg = (og + ROWS - 1) // ROWS * ROWS * ks  # packed weight words per group
    mode = g[go + G_BMODE]
    ro = go + g[go + G_ROWS]
    if u8:
        Bias = g
        bb = go + g[go + G_BIAS8]
    else:
        Bias = bias
        bb = bo
    w32 = f32s.view(np.int32)
    if mode == BM_GATHER:  # the sample as int32: gathers read 32 bits
        xw = w32[fo:fo + c_in * hw]
        xr = src[xs:xs + c_in * hw]
        for k in range(c_in * hw):
            xw[k] = np.int32(xr[k])
    for gi in range(group):
        if mode == BM_PLANES:
            _pack_b(src, xs + gi * cg * plane, g, ro, g, go, x_zp, 128, u8)
        elif (mode == BM_WINDOW or mode == BM_SHIFT) and u8:
            # the copies as the u8 tile's own bytes x + 128 (padding x_zp + 128, the byte of
            # x = x_zp): packed into quads with nothing added
            z8 = f32s.view(np.uint8)
            zb = 4 * fo
            _copies16(src, xs + gi * cg * hw, cg, hw, g, go, z8, zb, x_zp)
            _pack_b(z8, zb, g, ro, g, go, 0, 0, True)
        elif mode == BM_WINDOW or mode == BM_SHIFT:  # int16 copies of x - x_zp, read in place
            z16 = f32s.view(np.int16)
            zb = 2 * fo
            _copies16(src, xs + gi * cg * hw, cg, hw, g, go, z16, zb, x_zp)
            for tc in range(_col_tiles(plane, T.WIDE_I8)):
                p0, nc = _col_at(tc, plane, T.WIDE_I8)
                for t in range((og + ROWS - 1) // ROWS):
                    o0, rows = _row_tile(t, og)
                    o = gi * og + o0
                    if BOUNDS:
                        _check_rows16(z16, zb + p0, g, ro, 2 * ks, g, aw + gi * wg + t * ROWS * ks, ks, dst,
                                      ys + o * plane + p0, plane, rows, nc, bias, bo + o, M, mo + o)
                    _s16_rows(rows, g, aw + gi * wg + t * ROWS * ks, z16, zb + p0, g, ro, ks, dst,
                              ys + o * plane + p0, plane, bias, bo + o, M, mo + o, y_zp, qmin, qmax, nc)
            continue
        else:
            if mode == BM_GATHER:
                ci = fo + c_in * hw  # int32 im2col rows after the int32 sample
                gather = go + g[go + G_GATHER]
                if BOUNDS:
                    _check_gather(w32, fo + gi * cg * hw, cg * hw, g, gather, k_n * plane, w32, ci)
                T.gather32(w32, fo + gi * cg * hw, g, gather, k_n * plane, w32, ci, np.int32(x_zp))
                cr = cols[co:co + k_n * plane]
                wr = w32[ci:ci + k_n * plane]
                for k in range(k_n * plane):
                    cr[k] = wr[k]
            else:
                _im2col(src, xs, gi * cg, cg, g, go, cols, co, np.int8(x_zp))
            _pack_b(cols, co, g, ro, g, go, x_zp, 128, u8)
        for tc in range(_col_tiles(plane, u8 and T.WIDE_I8)):
            p0, nc = _col_at(tc, plane, u8 and T.WIDE_I8)
            for t in range((og + ROWS - 1) // ROWS):
                o0, rows = _row_tile(t, og)
                o = gi * og + o0
                _i8_rows(u8, rows, g, aw + gi * wg + t * ROWS * ks, g, bw + p0, ppad, ks,
                         dst, ys + o * plane + p0, plane, Bias, bb + o, M, mo + o, y_zp, qmin, qmax, nc)


@kernel_jit
def _qconv_dw(src, xs, bias, bo, M, mo, dst, ys, g, go, x_zp, y_zp, qmin, qmax, zb, zo):
    """PATH_DW int8, one sample: as _conv_dw_f32 on int16 buffers of x - x_zp (zb an int16
    view, zo in int16 elements), taps in pairs (G_NT pairs at g[go + G_AUX:]), weight pairs
    (O, pairs) int32 words at g[go + G_WDW:], requantization in the tile."""
    c_n = g[go + G_C]
    hw = g[go + G_H] * g[go + G_W]
    og = g[go + G_O] // c_n
    plane = g[go + G_OH] * g[go + G_OW]
    npr = g[go + G_NT]
    ncls = g[go + G_NCLS]
    zm = g[go + G_ZM]
    zs = g[go + G_ZS]
    cs = ncls * zs  # int16 elements per channel
    ma = go + g[go + G_AUX2]
    ta = go + g[go + G_AUX]
    wa = go + g[go + G_WDW]
    if og == 1:
        for c0 in range(0, c_n, DW_CH):
            nch = min(DW_CH, c_n - c0)
            for c in range(nch):
                _fill16(src, xs + (c0 + c) * hw, hw, g, ma, ncls, zb, zo + c * cs + zm, zs, x_zp)
            for k0 in range(0, plane, DW_COLS):
                k0, nc = _last_full(k0, plane, DW_COLS)
                _dw_i8(zb, zo + k0, cs, g, ta, npr, wa + c0 * npr, bias, bo + c0,
                       dst, ys + c0 * plane + k0, plane, nch, nc, M, mo + c0, y_zp, qmin, qmax)
    else:
        for c in range(c_n):
            _fill16(src, xs + c * hw, hw, g, ma, ncls, zb, zo + zm, zs, x_zp)
            for o0 in range(c * og, (c + 1) * og, DW_CH):
                nch = min(DW_CH, (c + 1) * og - o0)
                for k0 in range(0, plane, DW_COLS):
                    k0, nc = _last_full(k0, plane, DW_COLS)
                    _dw_i8(zb, zo + k0, 0, g, ta, npr, wa + o0 * npr, bias, bo + o0,
                           dst, ys + o0 * plane + k0, plane, nch, nc, M, mo + o0, y_zp, qmin, qmax)


@kernel_jit(inline="always")
def _check_dwq(src, xs, S, sb, sm, zs, g, go, qw, M, mo, dst, ys, o_n, plane):
    """The extents PATH_DWQ touches for one sample (BOUNDS only; S the float32 scratch's bytes, its
    stage at S[sb:] and quads from int32 word qw on)."""
    nk = g[go + G_NT]
    ngq = g[go + G_NCLS]
    npad = g[go + G_QN]
    qs = g[go + G_QS]
    _need(S, sb, sb + zs)
    _need(src, xs, xs + g[go + G_C] * g[go + G_H] * g[go + G_W])
    _need(S, 4 * qw, 4 * (qw + ngq * qs))
    _need(g, go + g[go + G_AUX], go + g[go + G_AUX] + nk)
    _need(g, go + g[go + G_WDW], go + g[go + G_WDW] + o_n * nk)
    _need(g, go + g[go + G_BIAS8], go + g[go + G_BIAS8] + o_n)
    _need(g, go + g[go + G_QOFF], go + g[go + G_QOFF] + 4 * ngq)
    _need(g, go + g[go + G_AUX2], go + g[go + G_AUX2] + ngq * npad)  # 4 mask rows of npad bytes a group
    _need(M, mo, mo + o_n)
    _need(dst, ys, ys + o_n * plane)
    for k in range(4 * ngq):
        off = g[go + g[go + G_QOFF] + k]
        if sm + off < 0 or sm + npad + off > zs:
            raise IndexError("kernel tile reads or writes outside its array")
    if g[go + G_QM] + npad > qs:
        raise IndexError("kernel tile reads or writes outside its array")
    for k in range(nk):
        at = g[go + g[go + G_AUX] + k]
        if at < 0 or at + max(plane, DWQ_COLS) > ngq * qs:
            raise IndexError("kernel tile reads or writes outside its array")


@kernel_jit
def _qconv_dwq(src, xs, M, mo, dst, ys, g, go, x_zp, y_zp, qmin, qmax, fs, fo):
    """PATH_DWQ, one sample (one input channel per group): per input channel kernels_tile.dwq_build
    reads its plane where it is or, for a plane at an end of the sample whose reach may leave it,
    from the stage (G_ZS bytes of the float32 scratch at fs[fo:], the plane copied G_ZM bytes in)
    and lays out G_NCLS quad buffers (G_QS int32 words each, after the
    stage: quad group k holds kernel columns 4k .. 4k + 3 of every position, uint8 x + 128, the
    padding byte x_zp + 128 where a column falls outside the row, masks g[go + G_AUX2:]), and
    kernels_tile.dwq_tile64 runs each of its output channels, DWQ_COLS (64) positions at a time
    (dwq_tile32 for planes of at most 32 outputs): G_NT
    steps (kernel row, quad group) at word offsets g[go + G_AUX:] from the first buffer, weight
    words (O, G_NT) at g[go + G_WDW:], the bias with the input shift folded in at
    g[go + G_BIAS8:]. The buffers' margins hold padding quads from the planner's fill
    (ConvLayout.fill) and are never written."""
    c_n = g[go + G_C]
    hw = g[go + G_H] * g[go + G_W]
    o_n = g[go + G_O]
    og = o_n // c_n
    plane = g[go + G_OH] * g[go + G_OW]
    nk = g[go + G_NT]
    ngq = g[go + G_NCLS]
    kw = g[go + G_KW]
    npad = g[go + G_QN]
    qs = g[go + G_QS]
    sm = g[go + G_ZM]
    zs = g[go + G_ZS]
    ta = go + g[go + G_AUX]
    wa = go + g[go + G_WDW]
    ba = go + g[go + G_BIAS8]
    oa = go + g[go + G_QOFF]
    ma = 4 * (go + g[go + G_AUX2])
    s8 = fs.view(np.int8)
    sb = 4 * fo
    qw = fo + zs // 4  # the first quad buffer, in int32 words of fs
    if BOUNDS:
        _check_dwq(src, xs, s8, sb, sm, zs, g, go, qw, M, mo, dst, ys, o_n, plane)
    for c in range(c_n):
        # a plane whose reach lies inside the sample (the planner's [G_QIN0, G_QIN1)) is read where
        # it is (what the build reads outside the plane it masks); the planes at the ends, whose
        # reach may leave the sample and the array, are copied into the stage first
        S, s0 = src, xs + c * hw
        if c < g[go + G_QIN0] or c >= g[go + G_QIN1]:
            T.copy_bytes(src, s0, s8, sb + sm, hw)
            S, s0 = s8, sb + sm
        for k in range(ngq):
            T.dwq_build(S, s0, npad, g, ma + 4 * k * npad, g, oa + 4 * k, min(4, kw - 4 * k), fs,
                        4 * (qw + k * qs + g[go + G_QM]), x_zp)
        for o in range(c * og, (c + 1) * og):
            if plane > DWQ_NARROW:
                for k0 in range(0, plane, DWQ_COLS):
                    k0, nc = _last_full(k0, plane, DWQ_COLS)
                    T.dwq_tile64(fs, qw + k0, g, ta, nk, g, wa + o * nk, g, ba + o, M, mo + o, dst,
                                 ys + o * plane + k0, nc, y_zp, qmin, qmax)
            else:  # one 32-position tile: a 64 one would compute twice the positions kept
                T.dwq_tile32(fs, qw, g, ta, nk, g, wa + o * nk, g, ba + o, M, mo + o, dst, ys + o * plane, plane,
                             y_zp, qmin, qmax)


@kernel_jit
def qconv_i8(src, so, W, wo, bias, bo, M, mo, dst, do, g, go, m, x_zp, y_zp, qmin, qmax, cols, co, fs, fo):
    """QCONV for m samples: x int8 (C, H, W) at src[so:] -> y int8 (O, oh, ow) at dst[do:].
    bias (O,) int32 at bias[bo:], M (O,) float32 requantization multipliers at M[mo:]; the
    table g[go:] (conv_layout) gives the path, its int32 data and scratch; W at W[wo:] is int8,
    packed for the path (GEMM reads its int16 pairs from the table's data instead). acc = bias +
    sum over input elements (x - x_zp) * W, exact in int32, then requantized as QDENSE.
    Scratch: cols[co:] int8 (conv_layout(...).i8), fs[fo:] float32 (conv_layout(...).f32)."""
    n_in = g[go + G_C] * g[go + G_H] * g[go + G_W]
    n_out = g[go + G_O] * g[go + G_OH] * g[go + G_OW]
    path = g[go + G_PATH]
    for s in range(m):
        xs = so + s * n_in
        ys = do + s * n_out
        if path == PATH_DW:
            _qconv_dw(src, xs, bias, bo, M, mo, dst, ys, g, go, x_zp, y_zp, qmin, qmax, fs.view(np.int16), 2 * fo)
        elif path == PATH_DWQ:
            _qconv_dwq(src, xs, M, mo, dst, ys, g, go, x_zp, y_zp, qmin, qmax, fs, fo)
        else:
            _qconv_gemm(src, xs, bias, bo, M, mo, dst, ys, g, go, x_zp, y_zp, qmin, qmax, cols, co,
                        path == PATH_GEMM_U8, fs, fo)


# ------------------------------------------------------------------------------ pooling
@kernel_jit(inline="always")
def _inside(g, go):
    """True when no window reaches padding: every tap of every output reads an input element."""
    return (g[go + G_PT] == 0 and g[go + G_PL] == 0
            and (g[go + G_OH] - 1) * g[go + G_SH] + (g[go + G_KH] - 1) * g[go + G_DH] < g[go + G_H]
            and (g[go + G_OW] - 1) * g[go + G_SW] + (g[go + G_KW] - 1) * g[go + G_DW] < g[go + G_W])


@kernel_jit(inline="always")
def _pool_row(so, k, oh, hw, rs):
    """Where output row k = p * oh + i (plane p, row i) of a pool reads its first input row."""
    return so + k // oh * hw + k % oh * rs


@kernel_jit
def _maxpool2(src, so, dst, do, planes, h, w, oh, ow, sh, r1, x_end, y_end):
    """maxpool's 2-wide, stride-2 windows that never reach padding, one or two rows each (the
    second r1 elements after the first; r1 = 0: one row), over ``planes`` planes back to back
    (int8 or float32): kernels_tile.maxpool2_rows runs the rows in order, V outputs per step
    (int8 16, float32 kernels_tile.pool_f32_lanes(ow)). A row's last step may spill past the row into the next one, written
    after it; the last rows, whose steps would read past x_end or write past y_end, run one
    output at a time in the same comparison order."""
    lanes = 16 if src.itemsize == 1 else _pool_f32_lanes(ow)
    x_read = r1 + (ow - 1) // lanes * lanes * 2 + 2 * lanes  # what a row's steps read, from its start
    y_write = (ow - 1) // lanes * lanes + lanes               # and write
    rows = planes * oh
    safe = rows  # rows start further on as k grows: the last row whose steps fit bounds them all
    while safe > 0 and not (_pool_row(so, safe - 1, oh, h * w, sh * w) + x_read <= x_end
                            and do + (safe - 1) * ow + y_write <= y_end):
        safe -= 1
    if BOUNDS:
        for k in range(safe):
            _need(src, _pool_row(so, k, oh, h * w, sh * w), _pool_row(so, k, oh, h * w, sh * w) + x_read)
            _need(dst, do + k * ow, do + k * ow + y_write)
    T.maxpool2_rows(src, so, r1, dst, do, safe, oh, h * w, sh * w, ow, lanes)
    for k in range(safe, rows):
        xr = _pool_row(so, k, oh, h * w, sh * w)
        yr = do + k * ow
        for j in range(ow):
            a = src[xr + 2 * j]
            v = src[xr + 2 * j + 1]
            a = v if v > a else a
            if r1 != 0:  # one row (r1 = 0): the second pair would repeat the first
                v = src[xr + r1 + 2 * j]
                a = v if v > a else a
                v = src[xr + r1 + 2 * j + 1]
                a = v if v > a else a
            dst[yr + j] = a


@kernel_jit
def maxpool(src, so, dst, do, g, go, m):
    """MAXPOOL / QMAXPOOL for m samples (float32 or int8, dst of the same dtype): the max over
    the window's input elements (padding ignored; the planner checked every window holds one):
    the first input element in (p, q) order, then each later one replaces it if greater.
    Windows that never reach padding run row by row over the output columns (vectorized);
    2-wide, stride-2 ones over one or two rows 16 (int8) or pool_f32_lanes(ow) (float32) outputs per vector step
    (_maxpool2)."""
    c_n = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    sh = g[go + G_SH]
    sw = g[go + G_SW]
    dh = g[go + G_DH]
    dw = g[go + G_DW]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    n_in = c_n * h * w
    n_out = c_n * oh * ow
    inside = _inside(g, go)
    pairs = inside and kw == 2 and sw == 2 and dw == 1
    if pairs and kh <= 2:  # the common 2-wide, stride-2 window: vector steps over whole rows
        _maxpool2(src, so, dst, do, m * c_n, h, w, oh, ow, sh, (kh - 1) * dh * w, so + m * n_in, do + m * n_out)
        return
    for s in range(m):
        for c in range(c_n):
            xv = src[so + s * n_in + c * h * w:so + s * n_in + (c + 1) * h * w]
            yc = do + s * n_out + c * oh * ow
            if inside:
                for i in range(oh):
                    yr = dst[yc + i * ow:yc + (i + 1) * ow]
                    for p in range(kh):
                        r = (i * sh + p * dh) * w
                        if pairs:  # a 2-wide, stride-2 window over more rows: both taps in one pass
                            xr = xv[r:r + 2 * ow]
                            if p == 0:
                                for j in range(ow):
                                    a = xr[2 * j]
                                    v = xr[2 * j + 1]
                                    yr[j] = v if v > a else a
                            else:
                                for j in range(ow):
                                    a = yr[j]
                                    v = xr[2 * j]
                                    a = v if v > a else a
                                    v = xr[2 * j + 1]
                                    yr[j] = v if v > a else a
                            continue
                        for q in range(kw):
                            xr = xv[r + q * dw:r + q * dw + (ow - 1) * sw + 1]
                            if p == 0 and q == 0:
                                for j in range(ow):
                                    yr[j] = xr[j * sw]
                            else:
                                for j in range(ow):
                                    v = xr[j * sw]
                                    a = yr[j]
                                    yr[j] = v if v > a else a
                continue
            for i in range(oh):
                p0 = _first_valid(pt, i * sh, dh)  # taps p with row i*sh + p*dh - pt in [0, h)
                p1 = _end_valid(h, pt, i * sh, dh, kh)
                for j in range(ow):
                    q0 = _first_valid(pl, j * sw, dw)
                    q1 = _end_valid(w, pl, j * sw, dw, kw)
                    best = xv[(i * sh + p0 * dh - pt) * w + j * sw + q0 * dw - pl]
                    for p in range(p0, p1):
                        r = (i * sh + p * dh - pt) * w + j * sw - pl
                        for q in range(q0, q1):
                            v = xv[r + q * dw]
                            if v > best:
                                best = v
                    dst[yc + i * ow + j] = best


@kernel_jit
def avgpool_f32(src, so, dst, do, g, go, m):
    """AVGPOOL for m samples: float32 sum over the window's input elements in window order
    (from 0.0, p then q), divided by float32(count) (kh * kw with count_include_pad, else the
    input elements). Windows that never reach padding run row by row over the output columns."""
    c_n = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    sh = g[go + G_SH]
    sw = g[go + G_SW]
    dh = g[go + G_DH]
    dw = g[go + G_DW]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    include_pad = g[go + G_INCLUDE_PAD]
    n_in = c_n * h * w
    n_out = c_n * oh * ow
    inside = _inside(g, go)
    full = np.float32(kh * kw)
    for s in range(m):
        for c in range(c_n):
            xv = src[so + s * n_in + c * h * w:so + s * n_in + (c + 1) * h * w]
            yc = do + s * n_out + c * oh * ow
            if inside:
                for i in range(oh):
                    yr = dst[yc + i * ow:yc + (i + 1) * ow]
                    for j in range(ow):
                        yr[j] = np.float32(0.0)
                    for p in range(kh):
                        for q in range(kw):
                            st = (i * sh + p * dh) * w + q * dw
                            xr = xv[st:st + (ow - 1) * sw + 1]
                            for j in range(ow):
                                yr[j] += xr[j * sw]
                    for j in range(ow):
                        yr[j] = yr[j] / full
                continue
            for i in range(oh):
                p0 = _first_valid(pt, i * sh, dh)
                p1 = _end_valid(h, pt, i * sh, dh, kh)
                for j in range(ow):
                    q0 = _first_valid(pl, j * sw, dw)
                    q1 = _end_valid(w, pl, j * sw, dw, kw)
                    acc = np.float32(0.0)
                    for p in range(p0, p1):
                        r = (i * sh + p * dh - pt) * w + j * sw - pl
                        for q in range(q0, q1):
                            acc += xv[r + q * dw]
                    count = kh * kw if include_pad != 0 else (p1 - p0) * (q1 - q0)
                    dst[yc + i * ow + j] = acc / np.float32(count)


@kernel_jit
def qavgpool_i8(src, so, dst, do, g, go, m, x_zp, y_zp, mult):
    """QAVGPOOL for m samples: acc = sum of (x - x_zp) over the window's input elements (int32,
    exact in any order); y = clamp(rint((float32(acc) * mult) / float32(count)) + y_zp, -128,
    127). A window over the whole input (a global average pool) is one kernels_tile.sum_i8 per plane."""
    c_n = g[go + G_C]
    h = g[go + G_H]
    w = g[go + G_W]
    kh = g[go + G_KH]
    kw = g[go + G_KW]
    sh = g[go + G_SH]
    sw = g[go + G_SW]
    dh = g[go + G_DH]
    dw = g[go + G_DW]
    pt = g[go + G_PT]
    pl = g[go + G_PL]
    oh = g[go + G_OH]
    ow = g[go + G_OW]
    include_pad = g[go + G_INCLUDE_PAD]
    n_in = c_n * h * w
    n_out = c_n * oh * ow
    m32 = np.float32(mult)
    zp = np.int32(x_zp)
    whole = (oh == 1 and ow == 1 and kh == h and kw == w and dh == 1 and dw == 1 and pt == 0 and pl == 0)
    for s in range(m):
        for c in range(c_n):
            xv = src[so + s * n_in + c * h * w:so + s * n_in + (c + 1) * h * w]
            yc = do + s * n_out + c * oh * ow
            if whole:
                if BOUNDS:
                    _need(src, so + s * n_in + c * h * w, so + s * n_in + (c + 1) * h * w)
                acc = np.int32(T.sum_i8(src, so + s * n_in + c * h * w, h * w) - zp * np.int32(h * w))
                v = np.int64(np.rint((np.float32(acc) * m32) / np.float32(h * w))) + y_zp
                dst[yc] = np.int8(min(max(v, -128), 127))
                continue
            for i in range(oh):
                p0 = _first_valid(pt, i * sh, dh)
                p1 = _end_valid(h, pt, i * sh, dh, kh)
                for j in range(ow):
                    q0 = _first_valid(pl, j * sw, dw)
                    q1 = _end_valid(w, pl, j * sw, dw, kw)
                    acc = np.int32(0)
                    for p in range(p0, p1):
                        r = (i * sh + p * dh - pt) * w + j * sw - pl
                        for q in range(q0, q1):
                            acc += np.int32(xv[r + q * dw]) - zp
                    count = kh * kw if include_pad != 0 else (p1 - p0) * (q1 - q0)
                    v = np.int64(np.rint((np.float32(acc) * m32) / np.float32(count))) + y_zp
                    if v < -128:
                        v = -128
                    elif v > 127:
                        v = 127
                    dst[yc + i * ow + j] = np.int8(v)


@kernel_jit
def global_avgpool_f32(src, so, dst, do, c_n, hw, m):
    """GLOBAL_AVGPOOL for m samples: x (C, hw) -> y (C,), float32 sum in order / float32(hw).
    Each sum runs from 0.0 over k = 0..hw-1 in order; 8 channels side by side in one vector
    (kernels_tile.channel_sums8), the last C % 8 as scalar chains side by side."""
    inv = np.float32(hw)
    for s in range(m):
        x0 = so + s * c_n * hw
        y = dst[do + s * c_n:do + (s + 1) * c_n]
        c8 = c_n // 8 * 8
        for c in range(0, c8, 8):  # 8 channels per vector, positions transposed in registers
            if BOUNDS:
                _need(src, x0 + c * hw, x0 + (c + 8) * hw)
                _need(dst, do + s * c_n + c, do + s * c_n + c + 8)
            T.channel_sums8(src, x0 + c * hw, hw, dst, do + s * c_n + c)
        for c in range(c8, c_n):
            y[c] = np.float32(0.0)
        for k in range(hw):
            for c in range(c8, c_n):
                y[c] += src[x0 + c * hw + k]
        for c in range(c_n):
            y[c] = y[c] / inv


# ------------------------------------------------------------------------------ NumPy twins
def _geometry(g, go):
    from .reference_conv import Geometry
    t = [int(v) for v in g[go:go + G_LEN]]
    # the bottom/right pads the windows reach (the table does not need them)
    pb = max(0, (t[G_OH] - 1) * t[G_SH] + (t[G_KH] - 1) * t[G_DH] + 1 - t[G_H] - t[G_PT])
    pr = max(0, (t[G_OW] - 1) * t[G_SW] + (t[G_KW] - 1) * t[G_DW] + 1 - t[G_W] - t[G_PL])
    geo = Geometry(t[G_C], t[G_H], t[G_W], t[G_KH], t[G_KW], t[G_SH], t[G_SW], t[G_DH], t[G_DW],
                   t[G_PT], t[G_PL], pb, pr, t[G_OH], t[G_OW])
    return geo, t


def conv_f32_ref(src, so, W, wo, b, bo, dst, do, g, go, m, cols=None, co=0, act=0, alpha=0.0, beta=0.0):
    """Twin of conv_f32; W is the layer's own (O, C/group, kh, kw) tensor (not packed)."""
    from .ops import Act
    from .reference import activation
    from .reference_conv import conv_sum, windows
    geo, t = _geometry(g, go)
    o, cg = t[G_O], t[G_C] // t[G_GROUP]
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1)
    Wt = W[wo:wo + o * cg * geo.kh * geo.kw].reshape(o, cg, geo.kh, geo.kw)
    y = conv_sum(windows(x.astype(np.float64), geo, 0.0), Wt.astype(np.float64), geo, t[G_GROUP])
    y = (y + b[bo:bo + o].astype(np.float64)[None, :, None]).astype(np.float32).reshape(m, -1)
    dst[do:do + y.size] = activation(y, Act(int(act)), alpha, beta).reshape(-1)


def qconv_i8_ref(src, so, W, wo, bias, bo, M, mo, dst, do, g, go, m, x_zp, y_zp, qmin, qmax, cols=None, co=0,
                 fs=None, fo=0):
    """Twin of qconv_i8; W is the layer's own (O, C/group, kh, kw) int8 tensor (not packed)."""
    from . import quant
    from .reference_conv import conv_sum, windows
    geo, t = _geometry(g, go)
    o, cg = t[G_O], t[G_C] // t[G_GROUP]
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1).astype(np.int64) - int(x_zp)
    Wt = W[wo:wo + o * cg * geo.kh * geo.kw].reshape(o, cg, geo.kh, geo.kw).astype(np.int64)
    acc = conv_sum(windows(x, geo, 0), Wt, geo, t[G_GROUP]) + bias[bo:bo + o].astype(np.int64)[None, :, None]
    y = quant.requantize(acc.astype(np.int32), M[mo:mo + o][None, :, None], int(y_zp), int(qmin), int(qmax))
    dst[do:do + y.size] = y.reshape(-1)


def maxpool_ref(src, so, dst, do, g, go, m):
    from .reference_conv import maxpool as golden
    geo, _ = _geometry(g, go)
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1)
    y = golden(x, geo)
    dst[do:do + y.size] = y.reshape(-1)


def avgpool_f32_ref(src, so, dst, do, g, go, m):
    from .reference_conv import avgpool
    geo, t = _geometry(g, go)
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1)
    y = avgpool(x, geo, bool(t[G_INCLUDE_PAD]))
    dst[do:do + y.size] = y.reshape(-1)


def qavgpool_i8_ref(src, so, dst, do, g, go, m, x_zp, y_zp, mult):
    from . import quant
    from .reference_conv import pool_counts, windows
    geo, t = _geometry(g, go)
    x = src[so:so + m * geo.c * geo.h * geo.w].reshape(m, -1).astype(np.int64) - int(x_zp)
    acc = windows(x, geo, 0).sum(axis=(2, 3))
    count = pool_counts(geo, bool(t[G_INCLUDE_PAD]))
    q = np.rint((acc.astype(np.float32) * np.float32(mult)) / count.astype(np.float32)).astype(np.int64) + int(y_zp)
    y = np.clip(q, quant.QMIN, quant.QMAX).astype(np.int8)
    dst[do:do + y.size] = y.reshape(-1)


def global_avgpool_f32_ref(src, so, dst, do, c_n, hw, m):
    x = src[so:so + m * c_n * hw].reshape(m, c_n, hw)
    acc = np.zeros((m, c_n), dtype=np.float32)
    for k in range(hw):
        acc += x[:, :, k]
    dst[do:do + m * c_n] = (acc / np.float32(hw)).reshape(-1)


TWINS = {
    "conv_f32": conv_f32_ref,
    "qconv_i8": qconv_i8_ref,
    "maxpool": maxpool_ref,
    "avgpool_f32": avgpool_f32_ref,
    "qavgpool_i8": qavgpool_i8_ref,
    "global_avgpool_f32": global_avgpool_f32_ref,
}


def table_from_geometry(geo, out_channels: int, group: int = 1, include_pad: int = 0, **int8) -> np.ndarray:
    """The int32 table of a rtinfer.reference_conv.Geometry (see pack_geometry)."""
    return pack_geometry(geo.c, geo.h, geo.w, out_channels, geo.kh, geo.kw, geo.sh, geo.sw, geo.dh, geo.dw,
                         geo.pt, geo.pl, geo.oh, geo.ow, group, include_pad, **int8)


# ------------------------------------------------------------------------------ planning
MAX_SCRATCH = 1 << 26  # elements of conv scratch one layer may ask the planner for


def _mask_words(masks: np.ndarray) -> np.ndarray:
    """The int8 paths' column class masks (classes, h w) as int16 -1 / 0, two to an int32 word
    (padded to an even count): fill_masked reads them as int16."""
    m16 = np.asarray(masks, np.int16).reshape(-1)
    if m16.size % 2:
        m16 = np.concatenate([m16, np.zeros(1, np.int16)])
    return m16.view(np.int32)


def _mask_bytes(masks: np.ndarray) -> np.ndarray:
    """The u8 copies' column class masks (classes, h w) as bytes -1 / 0, four to an int32 word
    (padded to a multiple of 4): fill_masked reads them as bytes."""
    m8 = np.asarray(masks, np.int8).reshape(-1)
    return np.concatenate([m8, np.zeros(-m8.size % 4, np.int8)]).view(np.int32)


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def pack_rows_f32(W2: np.ndarray) -> np.ndarray:
    """W (O, K) float32 -> the cf32 tile's layout: for each row tile (row_tile), K rows of ROWS
    weights (k-major; rows past the tile's channels are 0)."""
    k = W2.shape[1]
    P = _by_row_tiles(W2, np.float32)
    return np.ascontiguousarray(P.reshape(-1, ROWS, k).transpose(0, 2, 1)).reshape(-1)


def _by_row_tiles(W2: np.ndarray, dtype, k_pad: int = 0) -> np.ndarray:
    """W (O, K) -> (ceil(O / ROWS) * ROWS, K + k_pad) of dtype: row tile t's channels at rows
    t * ROWS.., zero elsewhere (row_tile)."""
    o, k = W2.shape
    nb = -(-o // ROWS)
    P = np.zeros((nb * ROWS, k + k_pad), dtype)
    for t in range(nb):
        o0, rows = row_tile(t, o)
        P[t * ROWS:t * ROWS + rows, :k] = W2[o0:o0 + rows]
    return P


def pack_pairs_i16(W2: np.ndarray) -> np.ndarray:
    """W (O, K) int8 -> the s16 tile's layout, int32 words: for each row tile (row_tile),
    K2 = ceil(K / 2) rows of ROWS words, word = W[o, 2j] | W[o, 2j + 1] << 16 (int16
    halves; k = K and rows past the tile's channels are 0)."""
    k = W2.shape[1]
    k2 = -(-k // 2)
    P = _by_row_tiles(W2, np.int16, 2 * k2 - k)
    P = np.ascontiguousarray(P.reshape(-1, ROWS, k2, 2).transpose(0, 2, 1, 3))
    return P.reshape(-1).view(np.int32).copy()


def pack_quads_i8(W2: np.ndarray) -> np.ndarray:
    """W (O, K) int8 -> the u8 tile's layout, int32 words: for each row tile (row_tile),
    KS = ceil(K / 4) rows of ROWS words, word = the bytes W[o, 4j .. 4j + 3] (first in
    the low byte; k >= K and rows past the tile's channels are 0)."""
    k = W2.shape[1]
    ks = -(-k // 4)
    P = _by_row_tiles(W2, np.int8, 4 * ks - k)
    P = np.ascontiguousarray(P.reshape(-1, ROWS, ks, 4).transpose(0, 2, 1, 3))
    return P.reshape(-1).view(np.int32).copy()


def u8_exact(W2: np.ndarray) -> bool:
    """True when the u8 tile is exact for W (O, K) int8: every pair of consecutive weights
    (k = 2i, 2i + 1) of a channel has |w0| + |w1| <= 128, so 255 * (|w0| + |w1|) <= 32767 and
    vpmaddubsw's int16 pair sums never saturate (true for weights frozen with reduce_range)."""
    a = np.abs(W2.astype(np.int64))
    if a.shape[1] % 2:
        a = np.concatenate([a, np.zeros((a.shape[0], 1), np.int64)], axis=1)
    return a.size == 0 or int((a[:, 0::2] + a[:, 1::2]).max()) <= 128


def _valid_range(n_in: int, n_out: int, pad: int, off: int) -> tuple[int, int]:
    """Output indices i (stride 1) whose input index i + off - pad lies in [0, n_in)."""
    return max(0, pad - off), max(0, min(n_out, n_in + pad - off))


def _dw_plan(geo):
    """The DW path's plan for a geometry it can run (stride 1 along the plane: 1-D, or 2-D
    with ow == w), else None: (taps [(tap index p * kw + q, class, offset in the plane)],
    class masks (classes, h w) int32, front margin zm, elements per class buffer zs). A tap reads its class buffer
    at zm + offset + k for flat output position k; the class (its column shift) fixes which
    wrapped columns the buffer has zeroed. Taps that only ever read padding are left out."""
    one_d = geo.h == 1 and geo.oh == 1
    if geo.sw != 1 or not (one_d or (geo.sh == 1 and geo.ow == geo.w)):
        return None
    plane = geo.oh * geo.ow
    taps, shifts = [], []
    for p in range(geo.kh):
        rows = _valid_range(geo.h, geo.oh, geo.pt, p * geo.dh)
        if rows[1] <= rows[0] or (one_d and p * geo.dh != geo.pt):
            continue  # the tap's row is padding for every output
        for q in range(geo.kw):
            s = q * geo.dw - geo.pl
            cols = _valid_range(geo.w, geo.ow, geo.pl, q * geo.dw)
            if cols[1] <= cols[0]:
                continue
            cls_s = 0 if one_d else s
            if cls_s not in shifts:
                shifts.append(cls_s)
            off = (0 if one_d else (p * geo.dh - geo.pt) * geo.w) + s
            taps.append((p * geo.kw + q, shifts.index(cls_s), off))
    if not taps:
        return None
    # input column c of the class with column shift s is read by output column c - s: kept when
    # that output exists, else only reachable by a wrap from the neighbouring row: zeroed (also
    # with one input row: padding rows give more output rows, and a tap of output row i - 1
    # wraps into row i; a 1-D sample has the one class s = 0, which keeps every column)
    c = np.arange(geo.h * geo.w) % geo.w
    masks = np.array([np.where((c - s >= 0) & (c - s < geo.w), -1, 0) for s in shifts], np.int32)
    offs = [t[2] for t in taps]
    zm = _round_up(max(0, -min(offs)), 8)
    zs = _round_up(zm + max(geo.h * geo.w, _round_up(plane, DW_COLS) + max(0, max(offs))), 16)
    return taps, masks, zm, zs


def _dwq_sizes(geo, rows):
    """PATH_DWQ's sizes for the kernel rows ``rows`` it keeps: (quad groups ngq, positions built
    per plane npad, word offset of each kept row's quads from a quad buffer's first built word,
    stage margin sm and bytes zs, quad buffer front margin qm and words qs). Quads are built for
    every input row r and output column j (h ow positions, flat; ow == w in 2-D): kernel row p of
    flat output position k reads quad k + (p dh - pt) ow (1-D: the one kept row, offset 0)."""
    one_d = geo.h == 1 and geo.oh == 1
    ngq = -(-geo.kw // 4)
    npad = _round_up(geo.h * geo.ow, DWQ_STEP)
    offs = [0 if one_d else (p * geo.dh - geo.pt) * geo.ow for p in rows]
    shifts = [q * geo.dw - geo.pl for q in range(geo.kw)] + [0]
    sm = _round_up(max(0, -min(shifts)), 16)
    zs = _round_up(sm + max(geo.h * geo.w, npad + max(shifts)), 64)
    qm = _round_up(max(0, -min(offs)), 8)
    qs = _round_up(qm + max(npad, max(0, max(offs)) + max(geo.oh * geo.ow, DWQ_COLS)), 16)
    return ngq, npad, offs, sm, zs, qm, qs


def _dwq_plan(geo, taps, W2):
    """PATH_DWQ's plan for a geometry _dw_plan took (its kept taps ``taps``) and int8 weights W2
    (O, kh kw): (the _dwq_sizes, build offsets (ngq, 4) int32 -- slot t of quad group k is kernel
    column q = 4k + t, the input column shift q dw - pl; 0 for slots past kw --, masks (ngq, 4,
    npad) int8 -- -1 where flat position k's column + shift lies in the row, 0 where it is
    padding, past kw or past the plane --, step offsets (kept row p, group k) in words from the
    first quad buffer, weight words (O, steps) int8 (the row's columns 4k .. 4k + 3, 0 past kw)).
    Rows whose every tap reads padding are left out, as on the DW path."""
    rows = sorted({t[0] // geo.kw for t in taps})
    ngq, npad, offs, sm, zs, qm, qs = _dwq_sizes(geo, rows)
    col = np.arange(npad) % geo.ow
    live = np.arange(npad) < geo.h * geo.ow
    shifts = np.zeros((ngq, 4), np.int32)
    masks = np.zeros((ngq, 4, npad), np.int8)
    for q in range(geo.kw):
        s = q * geo.dw - geo.pl
        shifts[q // 4, q % 4] = s
        masks[q // 4, q % 4] = np.where(live & (col + s >= 0) & (col + s < geo.w), -1, 0)
    steps = [k * qs + qm + off for off in offs for k in range(ngq)]
    o = W2.shape[0]
    Wk = np.zeros((o, len(rows), 4 * ngq), np.int8)
    Wk[:, :, :geo.kw] = np.asarray(W2).reshape(o, geo.kh, geo.kw)[:, rows, :]
    return (ngq, npad, sm, zs, qm, qs), shifts, masks, np.array(steps, np.int32), Wk.reshape(o, -1)


def _dw8_grid(geo) -> tuple[int, int]:
    """Rows and columns of a DW8 grid: the plane padded by pt rows above, pl columns left and as
    many below and right as the taps reach."""
    mb = max(0, geo.oh - 1 + (geo.kh - 1) * geo.dh - geo.pt - (geo.h - 1))
    mr = max(0, geo.ow - 1 + (geo.kw - 1) * geo.dw - geo.pl - (geo.w - 1))
    return geo.h + geo.pt + mb, geo.w + geo.pl + mr


def _dw8_plan(geo, kept):
    """DW8's plan for a geometry _dw_plan took, with the kept taps ``kept`` (p * kw + q), else
    None (fewer than DW8 input or output positions): (grid positions int32 -- hw input positions
    (r, c) at ((r + pt) * wp + c + pl) * DWL, then oh ow output positions (i, j) at (i * wp + j) *
    DWL --, tap offsets (p * dh * wp + q * dw) * DWL, floats of the grid). The grid has the plane
    padded by pt rows above, pl columns left and as many below and right as the taps reach (wp
    columns): output (i, j)'s tap (p, q) reads grid element (i + p dh, j + q dw), zero where
    that is padding."""
    hw, plane = geo.h * geo.w, geo.oh * geo.ow
    if hw < DW8 or plane < DW8:
        return None
    hp, wp = _dw8_grid(geo)  # scratch_bound counts this grid
    r, c = np.divmod(np.arange(hw), geo.w)
    i, j = np.divmod(np.arange(plane), geo.ow)
    pos = np.concatenate([(r + geo.pt) * wp + c + geo.pl, i * wp + j]) * DWL
    offs = [((t // geo.kw) * geo.dh * wp + (t % geo.kw) * geo.dw) * DWL for t in kept]
    return pos.astype(np.int32), np.array(offs, np.int32), hp * wp * DWL


def _window_plan(geo):
    """BM_WINDOW's plan, else None: (taps [(p, q, window class, offset of the tap's first
    output in its window buffer)], classes [(q, ph)], front margin zm, elements per window
    buffer zs). The window of class (q, ph) holds the input rows ph, ph + sh, ... (ceil(h / sh)
    rows, zero past the plane) at the columns j * sw + q * dw - pl (0 where padding), so tap (p,
    q) of output row i reads its window's row i + floor((p dh - pt) / sh) in phase (p dh - pt)
    mod sh: stride 1 down the window rows, padding rows in the zero margins. Stride 1 keeps
    every column's class (q, 0) in order (the int8 path's _windows16 relies on it); larger
    strides build only the classes a tap reads. Taps that only ever read padding are left out."""
    sh = geo.sh
    hr = -(-geo.h // sh)  # rows per window
    plane = geo.oh * geo.ow
    taps = []
    classes = [(q, 0) for q in range(geo.kw)] if sh == 1 else []
    i = np.arange(geo.oh)
    for p in range(geo.kh):
        r = i * sh + p * geo.dh - geo.pt
        if not np.any((r >= 0) & (r < geo.h)):
            continue
        for q in range(geo.kw):
            col = np.arange(geo.ow) * geo.sw + q * geo.dw - geo.pl
            if not np.any((col >= 0) & (col < geo.w)):
                continue
            off = p * geo.dh - geo.pt
            ph = off % sh
            if (q, ph) not in classes:
                classes.append((q, ph))
            taps.append((p, q, classes.index((q, ph)), (off // sh) * geo.ow))
    if not taps or hr * geo.ow * len(classes) > WINDOW_MAX:
        return None
    offs = [t[3] for t in taps]
    zm = _round_up(max(0, -min(offs)), 8)
    tail = 16 if geo.sw == 2 else 0  # a stride-2 row's last step writes up to 15 (bytes; floats 7) past it
    zs = _round_up(zm + max(hr * geo.ow + tail, _round_up(plane, COLS) + max(0, max(offs))), 16)
    return taps, classes, zm, zs


def _s2k3_plan(geo, classes):
    """The window classes (kernel columns 0, 1, 2 of row phase 0, then of phase 1; phase 0's again
    for row stride 1) whose windows _windows fills in one pass per input row by
    kernels_tile.s2k3_row*, else None: a 3-wide, stride-2, undilated filter with one padding column
    on the left over rows of 2 ow columns, ow a multiple of 8 (the 8-lane step; 16-byte steps where
    ow is a multiple of 16), row stride 1 or 2, every class its windows need present and no other.
    The float32 and uint8 byte copies only: the int16 copies keep the window-by-window runs."""
    if not (geo.sw == 2 and geo.dw == 1 and geo.pl == 1 and geo.kw == 3 and geo.w == 2 * geo.ow
            and geo.ow % 8 == 0 and geo.sh <= 2 and len(classes) == 3 * geo.sh):
        return None
    phases = [(q, ph) for ph in range(geo.sh) for q in range(3)]
    if any(c not in classes for c in phases):
        return None
    idx = [classes.index(c) for c in phases]
    return idx if geo.sh == 2 else idx + idx


@dataclass
class ConvLayout:
    """How one CONV / QCONV layer's operands are laid out for its kernel path (conv_layout)."""
    path: int
    table: np.ndarray   # int32: the geometry table, its data (taps, packed W, ...) and int32 scratch
    W: np.ndarray       # the weights the kernel reads at W[wo:]: float32 (CONV) or int8 (QCONV)
    f32: int            # float32 scratch elements (CONV: cols at T2; QCONV: after its M)
    i8: int             # int8 scratch elements (QCONV: cols after its W)
    fill: int = 0       # the byte every byte of the float32 scratch starts as (u8 byte copies: x_zp + 128)
    work: int = 0       # with shared_work: elements of work the caller lays out (module doc, Work)

    def scratch_f32(self, extra: int = 0) -> np.ndarray:
        """The float32 scratch as the kernels expect it before the first call: f32 + extra
        elements, every byte ``fill`` (the padding the copies never write)."""
        return np.full(4 * (self.f32 + extra), self.fill, np.uint8).view(np.float32)


_B_MODES = {BM_PLANES: "input planes", BM_GATHER: "im2col by gathers", BM_RUNS: "im2col",
            BM_SHIFT: "shifted plane copies", BM_WINDOW: "column windows"}


def kernel_name(table, int8: bool) -> str:
    """The kernel path a CONV (int8: QCONV) geometry table records, in words, with the
    instruction its product step compiles to on this target (rtinfer inspect's kernel column)."""
    path = int(table[G_PATH])
    vnni = T.kernel_path_name() == "VNNI"
    if path == PATH_WINO:
        return "Winograd F(2x2, 3x3) float32 FMA"
    if path == PATH_DW:
        if not int8:
            return f"depthwise float32 FMA, {DWL} channels in lanes (DW8)" if int(table[G_DW8]) else "depthwise float32 FMA tiles"
        return f"depthwise int8, int16 pairs of taps ({'vpdpwssd' if vnni else 'vpmaddwd'})"
    if path == PATH_DWQ:
        instr = {"VNNI": "vpdpbusd", "AVX2": "vpmaddubsw"}.get(T.kernel_path_name(), "portable")
        return f"depthwise int8, uint8 quads of taps ({instr})"
    b = _B_MODES.get(int(table[G_BMODE]), "?")
    if path == PATH_GEMM_U8:
        instr = {"VNNI": "vpdpbusd", "AVX2": "vpmaddubsw"}.get(T.kernel_path_name(), "portable")
        return f"GEMM int8, uint8 quads ({instr}), {b}"
    if int8:
        return f"GEMM int8, int16 pairs ({'vpdpwssd' if vnni else 'vpmaddwd'}), {b}"
    return f"GEMM float32 FMA, {b}"


def _gather_indices(geo, cg: int) -> np.ndarray:
    """im2col as indices: (cg kh kw, oh ow) int32, the input element (c, row, col) as
    c * h * w + row * w + col within one sample, or -1 for padding."""
    k = np.arange(cg * geo.kh * geo.kw)
    c, p, q = k // (geo.kh * geo.kw), (k // geo.kw) % geo.kh, k % geo.kw
    i = np.arange(geo.oh)
    j = np.arange(geo.ow)
    r = i[None, :, None] * geo.sh + p[:, None, None] * geo.dh - geo.pt
    col = j[None, None, :] * geo.sw + q[:, None, None] * geo.dw - geo.pl
    ok = (r >= 0) & (r < geo.h) & (col >= 0) & (col < geo.w)
    idx = c[:, None, None] * geo.h * geo.w + r * geo.w + col
    return np.where(ok, idx, -1).astype(np.int32).reshape(-1)


_WINO_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def wino_applies(geo, o: int, group: int, measured: bool = True) -> bool:
    """Whether PATH_WINO can run this float32 convolution (3 x 3, stride 1, no dilation, one group)
    and, with ``measured``, pays: on a WINO_AUTO target, at least 16 tiles (a full cf32 tile of
    columns; fewer pad the tile's 16 lanes), WINO_MIN_CH input and output channels and
    WINO_MIN_MACS direct multiply-adds."""
    if (geo.kh, geo.kw, geo.sh, geo.sw, geo.dh, geo.dw, group) != (3, 3, 1, 1, 1, 1, 1):
        return False
    tiles = ((geo.oh + 1) // 2) * ((geo.ow + 1) // 2)
    return not measured or (WINO_AUTO and tiles >= 16 and min(geo.c, o) >= WINO_MIN_CH
                            and 9 * geo.c * o * geo.oh * geo.ow >= WINO_MIN_MACS)


def wino_rows(geo, o: int) -> int:
    """PATH_WINO's tile rows per block: at least 16 tiles (a full cf32 tile of columns), else as
    many as keep a block's V and M near 128 KB (WINO_BLOCK tiles x channels), all rows at most."""
    th, tw = (geo.oh + 1) // 2, (geo.ow + 1) // 2
    return min(th, max(-(-16 // tw), WINO_BLOCK // ((geo.c + o) * tw), 1))


def wino_weights(W: np.ndarray) -> np.ndarray:
    """PATH_WINO's weights: U[x] = (G W[o, c] G^T)[x // 4, x % 4] (computed in float64, rounded
    once to float32) packed by pack_rows_f32 per x = 0..15, then O zeros (the products' bias)."""
    U = np.einsum("ai,ocij,bj->aboc", _WINO_G, np.asarray(W, np.float64), _WINO_G)
    U = U.reshape(16, W.shape[0], W.shape[1]).astype(np.float32)
    return np.concatenate([pack_rows_f32(U[x]) for x in range(16)] + [np.zeros(W.shape[0], np.float32)])


def conv_layout(geo, o: int, group: int, W: np.ndarray, bias=None, int8: bool = False, u8=None, dw: bool = True,
                dw8: bool = True, wino=None, shared_work: bool = False, **int8_attrs) -> ConvLayout:
    """The kernel path of a convolution and its operands: geometry geo (reference_conv.Geometry),
    o output channels, W (O, C/group, kh, kw) float32 (int8 with ``int8``: then ``bias`` (O,)
    int32 and int8_attrs x_zp, y_zp, qmin, qmax as pack_geometry). Paths: DW for one input
    channel per group where _dw_plan applies (unless ``dw`` is False; float32 by DW8 where
    _dw8_plan applies, unless ``dw8`` is False), else GEMM, group by group
    (float32 3 x 3 stride 1 by WINO instead where wino_applies, with ``wino`` None; True: wherever
    the geometry allows it; False: never;
    int8: GEMM_U8 when ``u8`` -- by default when the compiled code targets AVX2 and its quads are exact for W: any W on VNNI
    (kernels_tile.quads_exact_any), else u8_exact(W)
    -- else on int16 pairs). The kernels read exactly these arrays (the planner copies them into
    the plan image; tests pass them directly). A path's work (module doc, Work) is laid out in
    the table (int8 GEMM) or the scratch (WINO), unless ``shared_work``: then ``work`` counts its
    elements and the caller places it and sets the slot (G_ACC / G_WORK), as the planner does."""
    cg = geo.c // group
    og = o // group
    k_n = cg * geo.kh * geo.kw
    plane = geo.oh * geo.ow
    table = table_from_geometry(geo, o, group, 0, **int8_attrs)
    pointwise = (geo.kh, geo.kw, geo.sh, geo.sw, geo.pt, geo.pl, geo.oh, geo.ow) == (1, 1, 1, 1, 0, 0, geo.h, geo.w)
    W2 = np.asarray(W).reshape(o, k_n)
    plan_dw = _dw_plan(geo) if dw and cg == 1 and group > 1 else None
    parts = [table]  # int32 data after the table, each part at a multiple of 16 words

    def put(arr):
        at = sum(a.size for a in parts)
        pad = (-at) % 16
        if pad:
            parts.append(np.zeros(pad, np.int32))
            at += pad
        parts.append(np.asarray(arr, np.int32).reshape(-1))
        return at

    def per_group(pack):
        return np.concatenate([pack(W2[gi * og:(gi + 1) * og]) for gi in range(group)])

    if not int8 and wino is not False and wino_applies(geo, o, group, wino is None):
        nbr = wino_rows(geo, o)
        table[G_PATH] = PATH_WINO
        table[G_WBR] = nbr
        nbp, vo, _, total = wino_shape(geo.c, o, geo.oh, geo.ow, nbr)[4:]
        table[G_ROWS] = put(np.arange(geo.c) * nbp)
        table[G_WORK] = vo  # after the planes (shared_work: the caller's offset)
        return ConvLayout(PATH_WINO, np.concatenate(parts), wino_weights(np.reshape(W, (o, geo.c, 3, 3))),
                          vo if shared_work else total, 1, work=total - vo if shared_work else 0)
    if plan_dw is not None and int8 and u8 is not False:
        sizes, shifts, qmasks, steps, Wq = _dwq_plan(geo, plan_dw[0], W2)
        # by default for two or more kernel rows (a 2-D filter: its rows share one build of the
        # quads; measured on a Zen 3, bench_layers --old: 0.77-0.93 of the int16-pair tiles' time on
        # 6x6 to 16x16 planes and the DS-CNN's 25x5; with one row, 1-D, 1.0-2.1 of it: the build is
        # not shared and a tile has one step)
        ngq, npad, sm, zs, qm, qs = sizes
        if u8 or (len(steps) >= 2 * ngq and "avx2" in T.target_features()
                  and (T.quads_exact_any() or u8_exact(Wq))):
            table[G_PATH] = PATH_DWQ
            table[G_NCLS] = ngq
            table[G_QN] = npad
            table[G_QS] = qs
            table[G_QM] = qm
            table[G_ZM] = sm
            table[G_ZS] = zs
            table[G_NT] = len(steps)
            table[G_AUX] = put(steps)
            table[G_QOFF] = put(shifts)
            # channels read in place: reach [c hw + lo, c hw + npad + hi) inside [0, C hw)
            hw = geo.h * geo.w
            lo, hi = min(0, int(shifts.min())), max(0, int(shifts.max()))
            table[G_QIN0] = -(lo // hw)  # ceil(-lo / hw)
            table[G_QIN1] = max(table[G_QIN0], geo.c - -(-(npad + hi) // hw) + 1)
            table[G_AUX2] = put(qmasks.reshape(-1).view(np.int32))
            table[G_WDW] = put(np.ascontiguousarray(Wq).reshape(-1).view(np.int32))
            x_zp = int(int8_attrs.get("x_zp", 0))
            folded = np.asarray(bias, np.int64) - (128 + x_zp) * Wq.astype(np.int64).sum(axis=1)
            table[G_BIAS8] = put(folded.astype(np.int32))
            return ConvLayout(PATH_DWQ, np.concatenate(parts), np.zeros(1, np.int8), zs // 4 + ngq * qs, 1,
                              128 + x_zp)
    if plan_dw is not None:
        taps, masks, zm, zs = plan_dw
        table[G_PATH] = PATH_DW
        kept = [t[0] for t in taps]
        dw8 = dw8 and not int8 and (len(masks) > 1 or plane < DW8_ONE_CLASS_MAX)
        plan8 = _dw8_plan(geo, kept) if dw8 else None
        if plan8 is not None:
            pos, offs8, zs8 = plan8
            table[G_DW8] = put(pos)
            table[G_AUX] = put(offs8)
            table[G_NT] = len(kept)
            table[G_ZS] = zs8
            groups = -(-o // DWL)
            W8 = np.zeros((groups * DWL, len(kept)), np.float32)
            W8[:o] = W2[:, kept]
            W8 = np.ascontiguousarray(W8.reshape(groups, DWL, len(kept)).transpose(0, 2, 1)).reshape(-1)
            return ConvLayout(PATH_DW, np.concatenate(parts), W8, zs8 + DWL, 1)
        table[G_NCLS] = len(masks)
        table[G_AUX2] = put(_mask_words(masks) if int8 else masks)
        table[G_ZM] = zm
        table[G_ZS] = zs
        offs = [cls * zs + zm + off for _, cls, off in taps]
        cols_kept = [t[0] for t in taps]
        if not int8:
            table[G_NT] = len(taps)
            table[G_AUX] = put(offs)
            Wd = np.ascontiguousarray(W2[:, cols_kept].astype(np.float32)).reshape(-1)
            return ConvLayout(PATH_DW, np.concatenate(parts), Wd, DW_CH_F32 * len(masks) * zs, 1)
        npr = -(-len(taps) // 2)
        if len(taps) % 2:  # the last pair's second tap: the first again, with weight 0
            offs.append(offs[-1])
        Wd = np.zeros((o, 2 * npr), np.int16)
        Wd[:, :len(taps)] = W2[:, cols_kept]
        table[G_NT] = npr
        table[G_AUX] = put(offs)
        table[G_WDW] = put(np.ascontiguousarray(Wd).reshape(-1).view(np.int32))
        f32 = -(-DW_CH * len(masks) * zs // 2)  # int16 buffers in float32 scratch
        return ConvLayout(PATH_DW, np.concatenate(parts), np.zeros(1, np.int8), f32, 1)
    # B rows: the input planes, shifted zero-margined copies of them (stride 1 along the plane),
    # or im2col rows by gathers (small) or runs; row k of B at rows[k] (relative to the group)
    shift = None if pointwise else _dw_plan(geo)
    window = None if pointwise or shift is not None else _window_plan(geo)
    kept = np.arange(k_n)
    f32_shift = 0
    if pointwise:
        table[G_BMODE] = BM_PLANES
        rows = np.arange(k_n) * plane
        cols = 1
    elif shift is not None:
        taps, masks, zm, zs = shift
        table[G_BMODE] = BM_SHIFT
        table[G_NCLS] = len(masks)  # the masks are put below, once the int8 tile is chosen
        table[G_ZM] = zm
        table[G_ZS] = zs
        per = len(masks) * zs  # elements of one channel's copies
        kept = np.array([c * geo.kh * geo.kw + t for c in range(cg) for t, _, _ in taps])
        rows = np.array([c * per + cls * zs + zm + off for c in range(cg) for _, cls, off in taps])
        cols = 1
        f32_shift = cg * per
    elif window is not None:
        taps, classes, zm, zs = window
        table[G_BMODE] = BM_WINDOW
        table[G_NCLS] = len(classes)
        table[G_AUX2] = put(np.array(classes, np.int32).reshape(-1))
        table[G_ZM] = zm
        table[G_ZS] = zs
        per = len(classes) * zs
        kept = np.array([c * geo.kh * geo.kw + p * geo.kw + q for c in range(cg) for p, q, _, _ in taps])
        rows = np.array([c * per + m * zs + zm + off for c in range(cg) for _, _, m, off in taps])
        cols = 1
        f32_shift = cg * per
    else:
        gather = k_n * plane <= GATHER_MAX
        table[G_BMODE] = BM_GATHER if gather else BM_RUNS
        if gather:
            table[G_GATHER] = put(_gather_indices(geo, cg))
        rows = np.arange(k_n) * plane
        cols = k_n * plane
    W2 = W2[:, kept]
    k_n = len(kept)
    table[G_K] = k_n
    copies = int8 and table[G_BMODE] in (BM_SHIFT, BM_WINDOW)  # int16 copies of x - x_zp in f32 scratch
    if int8 and u8 is None:  # copies packed into quads pay off once two row blocks share them and
        # K >= 16 (K >= 4 on WIDE_I8 targets, where a zmm vpdpbusd does twice a vpdpwssd's
        # multiply-adds: the 1-D CNN's first layer, K = 7, measured 0.94-0.97 of its time so), on
        # CPUs where the quads outrun the int16 pairs (kernels_tile.QUADS_FOR_COPIES)
        u8 = ("avx2" in T.target_features() and (T.quads_exact_any() or u8_exact(W2))
              and (not copies or (T.QUADS_FOR_COPIES and og > ROWS and k_n >= (4 if T.WIDE_I8 else 16))))
    s2k3 = _s2k3_plan(geo, window[1]) if window is not None and (u8 or not int8) else None
    if s2k3 is not None:
        table[G_S2K3] = put(np.array(s2k3, np.int32))
    if shift is not None:  # float32 int32 masks; int8: int16 for the int16 copies, bytes for the u8 tile's
        table[G_AUX2] = put(_mask_bytes(masks) if u8 else _mask_words(masks) if int8 else masks)
    in_place = copies and not u8  # s16_rows_tile*: rows read in place; else packed from the copies
    if in_place and k_n % 2:  # pairs of rows: an odd count repeats its last row (with weight 0)
        rows = np.concatenate([rows, rows[-1:]])
    table[G_ROWS] = put(rows)
    f32_copies = -(-f32_shift // 2)  # int16 copies in float32 scratch
    if in_place:
        table[G_PATH] = PATH_GEMM
        table[G_NT] = -(-k_n // 2)
        table[G_AUX] = put(per_group(lambda w: pack_pairs_i16(w.astype(np.int8))))
        return ConvLayout(PATH_GEMM, np.concatenate(parts), np.zeros(1, np.int8), f32_copies, 1)
    if not int8:
        table[G_PATH] = PATH_GEMM
        table[G_NT] = k_n
        return ConvLayout(PATH_GEMM, np.concatenate(parts), per_group(lambda w: pack_rows_f32(w.astype(np.float32))),
                          max(cols, f32_shift, 1), 0)
    ppad = _round_up(plane, COLS)
    if u8:
        ks = -(-k_n // 4)
        table[G_PATH] = PATH_GEMM_U8
        table[G_AUX] = put(per_group(lambda w: pack_quads_i8(w.astype(np.int8))))
        x_zp = int(int8_attrs.get("x_zp", 0))
        folded = np.asarray(bias, np.int64) - (128 + x_zp) * W2.astype(np.int64).sum(axis=1)
        table[G_BIAS8] = put(folded.astype(np.int32))  # fits: |folded| <= |b| + 255 sum|W| (planner's bound)
    else:
        ks = -(-k_n // 2)
        table[G_PATH] = PATH_GEMM
        table[G_AUX] = put(per_group(lambda w: pack_pairs_i16(w.astype(np.int8))))
    table[G_NT] = ks
    table[G_PPAD] = ppad
    work = ks * ppad if shared_work else 0
    if not shared_work:
        table[G_ACC] = put(np.zeros(ks * ppad, np.int32))
    fill = 0
    if copies:  # the u8 tile's byte copies: padding is the byte of x = x_zp
        f32 = -(-f32_shift // 4)
        fill = 128 + int(int8_attrs.get("x_zp", 0))
    else:
        f32 = geo.c * geo.h * geo.w + k_n * plane if table[G_BMODE] == BM_GATHER else 1  # int32 sample + rows
    return ConvLayout(int(table[G_PATH]), np.concatenate(parts), np.zeros(1, np.int8), f32, cols, fill, work)


def scratch_bound(geo, group: int, o: int) -> int:
    """An upper bound of the elements any part of a convolution with o output channels lays out
    (im2col rows, the depthwise plane copies with their masks, Winograd's planes and blocks),
    checked before anything is allocated."""
    cols = (geo.c // group) * geo.kh * geo.kw * geo.oh * geo.ow
    planes = (geo.kw + 1) * (geo.h * geo.w + 2 * (geo.oh * geo.ow + (geo.kh * geo.dh + 1) * geo.w + geo.kw * geo.dw))
    hp, wp = _dw8_grid(geo)
    wino = wino_shape(geo.c, o, geo.oh, geo.ow, wino_rows(geo, o))[-1] if wino_applies(geo, o, group, False) else 0
    ngq, _, _, _, zs, _, qs = _dwq_sizes(geo, range(geo.kh))
    return max(cols, planes, geo.c * geo.h * geo.w, (hp * wp + 1) * DWL, wino, zs // 4 + ngq * qs)


def plan_window_row(frozen, layer, where: str, sec, row: list, cols: dict, error) -> float:
    """Validate one conv/pool layer and fill its program row (rtinfer.plan calls this).

    sec: the planner's sections (``add(key, array) -> element offset`` in that section;
    ``work(key, n, slot, base)``: n elements of the section's shared work region, whose offset
    less ``base`` goes into int32 element ``slot``);
    cols: the planner's column indices {"T0", "T1", "T2", "I0", "I1"}; offsets written are
    section-relative (``relocate_window_row`` adds the section bases). Row layout:
    CONV T0 = W packed for its path (f32), T1 = b (f32), T2 = its float32 scratch;
    QCONV T0 = W for its path (i8), T1 = bias (i32), T2 = M (f32), its int8 scratch after W
    (table slot G_COLS holds its offset relative to W) and its float32 scratch after M (G_FS);
    I0 = the int32 table with its data and int32 scratch (conv_layout; pools: the table alone;
    not GLOBAL_AVGPOOL, whose I0 = C and I1 = spatial size).
    Returns the op's float parameter (QAVGPOOL: float32(x_scale / y_scale); else 0.0).
    ``error`` is the exception class to raise (PlanError)."""
    from . import quant
    from .ops import Op
    from .reference_conv import ConvSpecError, check_pool_pads, conv_channels, geometry

    op = layer.op
    a = layer.attrs
    try:
        if op == Op.GLOBAL_AVGPOOL:
            c = layer.in_shape[0] if layer.in_shape else 0
            if len(layer.in_shape) < 2 or layer.out_size != c:
                raise ConvSpecError(f"in_shape {layer.in_shape} must be (C, *spatial) and out_shape hold C elements")
            row[cols["I0"]] = c
            row[cols["I1"]] = layer.in_size // c
            return 0.0
        if op in (Op.CONV, Op.QCONV):
            o, group = conv_channels(frozen, layer)
            geo = geometry(layer, o)
        else:
            o, group = None, 1
            geo = geometry(layer)
            check_pool_pads(layer, geo)
    except ConvSpecError as exc:
        raise error(f"{where}: {exc}") from None

    def int_attr(key, default=None, lo=quant.QMIN, hi=quant.QMAX):
        v = a.get(key, default)
        if v is None or v != int(v) or not lo <= int(v) <= hi:
            raise error(f"{where}: attribute {key!r} must be an integer in [{lo}, {hi}], got {v}")
        return int(v)

    def scale_attr(key):
        v = float(a.get(key, float("nan")))
        if not (v > 0 and np.isfinite(v) and np.float32(v) > 0):
            raise error(f"{where}: {key} must be a positive float32, got {v}")
        return v

    include_pad = int_attr("count_include_pad", 0, 0, 1) if op in (Op.AVGPOOL, Op.QAVGPOOL) else 0
    int8 = {}
    mult = 0.0
    if op in (Op.QCONV, Op.QMAXPOOL, Op.QAVGPOOL):
        int8["x_zp"] = int_attr("x_zp")
        scale_attr("x_scale")
    if op in (Op.QCONV, Op.QAVGPOOL):
        int8["y_zp"] = int_attr("y_zp")
        y_scale = scale_attr("y_scale")
        mult = float(np.float32(np.float64(a["x_scale"]) / np.float64(y_scale)))
    if op == Op.QCONV:
        int8["qmin"] = int_attr("qmin", quant.QMIN)
        int8["qmax"] = int_attr("qmax", quant.QMAX)
        if int8["qmin"] > int8["qmax"]:
            raise error(f"{where}: qmin {int8['qmin']} > qmax {int8['qmax']}")
    if op in (Op.CONV, Op.QCONV):
        # scratch bound before anything is packed or allocated (every path needs at most this)
        need = scratch_bound(geo, group, o)
        if need > MAX_SCRATCH:
            raise error(f"{where}: the convolution needs {need} elements of scratch "
                        f"(limit {MAX_SCRATCH}); kernel ({geo.kh}, {geo.kw}) over a ({geo.oh}, {geo.ow}) output "
                        f"is too large")

    if op == Op.CONV:
        W = frozen.tensor(layer, "W")
        b = frozen.tensor(layer, "b")
        if W.dtype != np.float32 or b.dtype != np.float32:
            raise error(f"{where}: W and b must be float32 tensors")
        lay = conv_layout(geo, o, group, W, shared_work=True)
        row[cols["T0"]] = sec.add("f32", lay.W)
        row[cols["T1"]] = sec.add("f32", b)
        row[cols["T2"]] = sec.add_shared("f32", np.zeros(lay.f32, np.float32), scratch_signature(op, lay.table))
        row[cols["I0"]] = sec.add("i32", lay.table)
        if lay.work:  # Winograd's V and M in the model's float32 work region
            sec.work("f32", lay.work, row[cols["I0"]] + G_WORK, row[cols["T2"]])
        return mult
    if op == Op.QCONV:
        Wq = frozen.tensor(layer, "W")
        bq = frozen.tensor(layer, "b")
        w_scale = frozen.tensor(layer, "w_scale")
        if Wq.dtype != np.int8 or bq.dtype != np.int32 or w_scale.dtype != np.float32 or w_scale.shape != (o,):
            raise error(f"{where}: QCONV needs W int8, b int32 and w_scale ({o},) float32")
        if not np.all(np.isfinite(w_scale)) or np.any(w_scale <= 0):
            raise error(f"{where}: w_scale must be positive and finite")
        # |acc| <= 255 * sum|W[o]| + |b[o]| must fit int32 so the wrapping int32 kernel is exact
        bound = 255 * np.abs(Wq.astype(np.int64)).reshape(o, -1).sum(axis=1) + np.abs(bq.astype(np.int64))
        if np.any(bound > np.iinfo(np.int32).max):
            raise error(f"{where}: the int32 accumulator could overflow (worst case {int(bound.max())})")
        M = quant.requant_multiplier(a["x_scale"], w_scale, a["y_scale"])
        if not np.all(np.isfinite(M)):
            raise error(f"{where}: requantization multiplier is not finite")
        lay = conv_layout(geo, o, group, Wq, bias=bq, int8=True, shared_work=True, **int8)
        table = lay.table
        sig = scratch_signature(op, table)
        row[cols["T0"]] = sec.add("i8", lay.W)
        table[G_COLS] = sec.add_shared("i8", np.zeros(lay.i8, np.int8), sig) - row[cols["T0"]]
        row[cols["T1"]] = sec.add("i32", bq)
        row[cols["T2"]] = sec.add("f32", M)
        table[G_FS] = sec.add_shared("f32", lay.scratch_f32(), sig) - row[cols["T2"]]
        row[cols["I0"]] = sec.add("i32", table)
        if lay.work:  # the GEMM's packed B rows in the model's int32 work region
            sec.work("i32", lay.work, row[cols["I0"]] + G_ACC, row[cols["I0"]])
        return mult
    row[cols["I0"]] = sec.add("i32", table_from_geometry(geo, geo.c, 1, include_pad, **int8))
    return mult


# the table slots that may differ between two layers whose kernels touch the same scratch elements
_NOT_SCRATCH = (G_XZP, G_YZP, G_QMIN, G_QMAX, G_COLS, G_FS, G_ACC, G_WORK)


def scratch_signature(op: int, table: np.ndarray) -> bytes:
    """A conv layer's scratch signature (Scratch in the module doc): two layers of one op whose
    conv_layout tables agree on every geometry and path slot (all of table[:G_LEN] but the zero
    points, clamps and offsets, _NOT_SCRATCH) run the same copies over the same scratch elements,
    so with the same initial bytes they may share it."""
    t = np.array(table[:G_LEN], dtype=np.int32)
    t[list(_NOT_SCRATCH)] = 0
    return bytes([op]) + t.tobytes()


def relocate_window_row(row: list, cols: dict, base_f32: int, base_i32: int, base_i8: int) -> None:
    """Add the section bases to a conv/pool row's section-relative offsets (see plan_window_row)."""
    from .ops import Op
    op = Op(row[cols["OP"]])
    if op == Op.GLOBAL_AVGPOOL:
        return
    row[cols["I0"]] += base_i32
    if op == Op.CONV:
        row[cols["T0"]] += base_f32
        row[cols["T1"]] += base_f32
        row[cols["T2"]] += base_f32
    elif op == Op.QCONV:
        row[cols["T0"]] += base_i8
        row[cols["T1"]] += base_i32
        row[cols["T2"]] += base_f32
