"""The rtinfer instruction set: every op and activation code, in one file.

A frozen model is a tuple of ``Layer`` specs (see ``rtinfer.frozen``); each names one ``Op``
and, where the op applies one, an ``Act``. Codes are stable: they are written into ``.rtm``
files and compiled plans, so a code is never renumbered or reused. New codes are appended.

Per-op contract (shapes are per sample; the batch dimension is implicit):

DENSE        f32 -> f32   y = act(x @ W + b)
             tensors: W (n_in, n_out) f32, b (n_out,) f32.  in_shape (n_in,), out_shape (n_out,)
ACT          f32 -> f32   y = act(x), elementwise, any shape (in_shape == out_shape)
SOFTMAX      f32 -> f32   softmax over an axis; attrs outer, axis_len, inner: the sample is
                          viewed as (outer, axis_len, inner) and normalized over axis_len.
                          The max is subtracted first.
LOG_SOFTMAX  f32 -> f32   as SOFTMAX, log-probabilities: x - max - log(sum(exp(x - max)))
ARGMAX       f32 -> f32   attrs outer, axis_len, inner as SOFTMAX; writes the index of the first
                          maximum (attr select_last = 1: the last) as a float32 value; ``out_shape`` drops (or keeps as 1) the axis.
                          The FrozenModel's ``output_dtype`` says when the user sees int64.
AFFINE       f32 -> f32   y = act(x * s + t), elementwise; tensors s, t f32 with the
                          sample's full size (broadcasts are expanded at freeze/import time).
RESHAPE      any -> same  no data movement: the output shares the input's storage (f32 or i8);
                          only the shape changes.
QUANTIZE     f32 -> i8    y = saturate(round_half_even(x / y_scale) + y_zp);  attrs y_scale, y_zp
DEQUANTIZE   i8 -> f32    y = (x - x_zp) * x_scale;  attrs x_scale, x_zp
QDENSE       i8 -> i8     acc(int32)[j] = sum_i (x[i] - x_zp) * Wq[i, j] + bq[j]
                          y[j] = clamp(round_half_even(float32(acc[j]) * M[j]) + y_zp, qmin, qmax)
                          with M[j] = float32(x_scale * w_scale[j] / y_scale) (see rtinfer.quant)
                          tensors: W (n_in, n_out) i8 (per-output-channel symmetric, zero point 0),
                          b (n_out,) i32 at scale x_scale * w_scale[j], w_scale (n_out,) f32.
                          attrs x_scale, x_zp, y_scale, y_zp, qmin, qmax (fused ReLU: qmin = y_zp;
                          fused clip: qmin/qmax from the clip range).
QLUT         i8 -> i8     y = table[x + 128]; tensors table (256,) i8. Exact for any elementwise
                          activation on a quantized input (sigmoid, tanh, softplus, ...).
                          attrs x_scale, x_zp, y_scale, y_zp (for inspection; the table is the op).

Graph ops (codes 12..17). A layer reads the tensors listed in ``Layer.inputs`` (tensor 0 is
the model input, layer i writes tensor i + 1); the shape of each input is its producer's
``out_shape`` (or the model's ``input_shape``), and ``in_shape`` is the first input's shape.

BINARY       f32, f32 -> f32   y = act(a fn b), elementwise with NumPy broadcasting inside the
                          sample (shapes right-aligned; a dimension of 1 repeats; never across
                          the batch axis). attrs fn (``Bin``: ADD, SUB, MUL, DIV, MAX, MIN), in
                          float32 (IEEE: a / 0 is inf or nan; max/min return the other operand
                          when one is NaN only as np.maximum/np.minimum do, i.e. NaN propagates).
                          out_shape is the broadcast shape.
CONCAT       f32... -> f32    y = concatenation of the inputs along attr axis (an index into the
                          per-sample shape); every input has the output's shape except on that
                          axis. 1 to 2^16 inputs.
SLICE        f32 -> f32       y = x[..., start + k * step, ...] for k < out_shape[axis] along attr
                          axis; attrs axis, start (0 <= start < in_shape[axis]), step (nonzero; every
                          index in range). Split is several SLICE layers.
QBINARY      i8, i8 -> i8     int8 elementwise with the broadcasting of BINARY, fn ADD, SUB, MUL,
                          MAX or MIN, both inputs requantized to the output scale as onnxruntime's
                          QLinearAdd / QLinearMul do, every step in float32 (no fused multiply-add):
                            ADD/SUB/MAX/MIN: va = float32(a - a_zp) * ma, vb = float32(b - b_zp) * mb
                              with ma = float32(a_scale / y_scale), mb = float32(b_scale / y_scale);
                              v = va + vb | va - vb | max(va, vb) | min(va, vb)
                            MUL: v = float32((a - a_zp) * (b - b_zp)) * mm,
                              mm = float32(a_scale * b_scale / y_scale)
                          y = clamp(round_half_even(v) + y_zp, qmin, qmax) (fused ReLU: qmin = y_zp).
                          attrs fn, a_scale, a_zp, b_scale, b_zp, y_scale, y_zp, qmin, qmax.
QCONCAT      i8... -> i8      CONCAT on int8 codes (the inputs share the output's scale and zero
                          point: an importer requantizes an input with a QLUT first). attrs axis,
                          y_scale, y_zp (for inspection).
QSLICE       i8 -> i8         SLICE on int8 codes. attrs axis, start, step, y_scale, y_zp (inspection).

Convolution and pooling (codes 20..): samples are channels-first, in_shape (C, H, W) for 2-D
or (C, L) for 1-D, which is computed as H = 1 (kernel_h = stride_h = dilation_h = 1, no
top/bottom pads). Geometry attrs (ints): kernel_h, kernel_w, stride_h, stride_w, dilation_h,
dilation_w, pad_top, pad_left, pad_bottom, pad_right (begin/end pads, >= 0).
Output size oh = (H + pad_top + pad_bottom - dilation_h * (kernel_h - 1) - 1) // stride_h + 1,
likewise ow; out_shape is (O, oh, ow), or (O, ow) for 1-D input. Window element (p, q) of output
(i, j) reads input row i * stride_h + p * dilation_h - pad_top, column j * stride_w +
q * dilation_w - pad_left; positions outside the input are padding.

CONV         f32 -> f32   y[o, i, j] = act(b[o] + sum_{c < Cg, p, q} W[o, c, p, q] * x[g*Cg + c, row, col])
                          padding reads 0; attrs geometry + group (C and O divisible by group,
                          Cg = C / group, g = o // (O / group); depthwise: group = C).
                          tensors: W (O, Cg, kernel_h, kernel_w) f32, b (O,) f32.
MAXPOOL      f32 -> f32   y[c, i, j] = max over the window (padding is ignored, i.e. -inf; every
                          window must hold an input element). attrs geometry.
AVGPOOL      f32 -> f32   y[c, i, j] = sum over the window of the input elements / count, where
                          count = kernel_h * kernel_w if attr count_include_pad is 1 (padding
                          reads 0), else the number of input (non-pad) elements. Summed in float32
                          in window order (p, then q). attrs geometry + count_include_pad.
GLOBAL_AVGPOOL f32 -> f32 y[c] = mean of x[c, ...] over all spatial positions (float32 sum in
                          order, divided by H * W); in_shape (C, *spatial), out_shape (C,) or
                          (C, 1, 1) / (C, 1) (the arena is flat; only the declared shape differs).
QCONV        i8 -> i8     acc[o, i, j] = b[o] + sum (x[g*Cg + c, row, col] - x_zp) * W[o, c, p, q] in
                          int32 (padding reads x_zp, i.e. real 0, and adds nothing); y = requantized
                          exactly as QDENSE: clamp(round_half_even(float32(acc) * M[o]) + y_zp, qmin,
                          qmax), M[o] = float32(x_scale * w_scale[o] / y_scale). tensors W (O, Cg,
                          kernel_h, kernel_w) i8 (symmetric per output channel), b (O,) i32 at scale
                          x_scale * w_scale[o], w_scale (O,) f32. attrs geometry + group and x_scale,
                          x_zp, y_scale, y_zp, qmin, qmax (fused ReLU: qmin = y_zp).
QMAXPOOL     i8 -> i8     MAXPOOL on int8 codes (exact; the output has the input's scale and zero
                          point). attrs geometry, x_scale, x_zp (for inspection).
QAVGPOOL     i8 -> i8     acc = sum over the window's input elements of (x - x_zp) in int32 (pads
                          add 0, and count kernel_h * kernel_w if count_include_pad else the input
                          elements); y = clamp(round_half_even((float32(acc) * m) / float32(count))
                          + y_zp, -128, 127) with m = float32(x_scale / y_scale), both products in
                          float32. attrs geometry, count_include_pad, x_scale, x_zp, y_scale, y_zp.
                          A global average pool is QAVGPOOL with the kernel the whole input.

Data movement and normalization (codes 27..):

GATHER       f32 -> f32   y[k] = x[index[k]] if index[k] >= 0 else fill, k < out_size (flat,
                          per sample); tensors index (out_size,) i32 with values -1 or in
                          [0, in_size); attr fill (float, default 0; -inf allowed). One table
                          expresses Transpose, Pad (constant / reflect / edge), Resize and
                          Upsample nearest, Gather with constant indices, DepthToSpace, Tile and
                          the im2col of 3-D windows and ConvTranspose (export.onnx_window).
QGATHER      i8 -> i8     GATHER on int8 codes; attr fill an int8 code (default: y_zp, real 0);
                          attrs y_scale, y_zp (for inspection: the output keeps the input's).
LAYERNORM    f32 -> f32   the sample viewed as (outer, axis_len); per row mean and variance
                          (population) in float64, v = float32((x - mean) / sqrt(var + epsilon)),
                          y = v * scale + bias in float32. attrs outer, axis_len, epsilon (> 0);
                          tensors scale (axis_len,), bias (axis_len,) f32.

Constants (code 30):

CONST        f32 -> f32   y = value for every sample: the stored tensor, independent of the input's
                          values (an ONNX Constant output, Shape of a fixed-size tensor). It reads
                          one float32 tensor (importers give it tensor 0, the model input) only so
                          the graph stays one validated graph; that tensor's values are never read.
                          tensors value (out_shape) f32. An output of dtype int64 may come from a
                          CONST whose values are integers of magnitude <= 2^24 (exact in float32).

Two runtime tensors (code 31):

MATMUL       f32, f32 -> f32  y = a @ b per sample, batched over groups: a is viewed as
                          (a_groups, m, k), b as (b_groups, k, n), y as (groups, m, n); a_groups
                          and b_groups are each groups or 1 (one matrix for every group). Sums in
                          float32 over k in order (y[i, j] = ((a[i,0] b[0,j] + a[i,1] b[1,j]) + ...),
                          no fused multiply-add). attrs groups, m, k, n, a_groups, b_groups. Reads
                          two tensors (Layer.inputs: a, b); out_shape is any shape of groups*m*n
                          elements (ONNX MatMul of two runtime tensors, attention's Q K^T and
                          softmax(.) V).

Dynamic quantization (code 32):

DYNQUANT     f32 -> f32   ONNX DynamicQuantizeLinear (uint8) of the whole sample, one of its outputs
                          per attr mode. Per sample, in float32: hi = max(0, max x), lo = min(0, min x)
                          (NaN elements are skipped), scale = float32(hi - lo) / 255, and scale = 1
                          where that is 0 (an all-zero sample, as onnxruntime; also a range that
                          underflows), zp = round_half_even(clamp(-lo / scale, 0, 255)),
                          q = clamp(round_half_even(x / scale), -zp, 255 - zp) (NaN: -zp), so
                          q + zp is ONNX's uint8 y.
                            mode 0: y = q (float32 integers in [-255, 255]), out_shape = in_shape
                            mode 1: y = scale, out_shape (1,)
                          attr mode (0 or 1). ONNX takes the range over the whole tensor, batch
                          included; rtinfer runs each sample alone, so a batch of one equals ONNX.
                          (onnxruntime's quantize_dynamic: q feeds MatMulInteger / ConvInteger,
                          which import as DENSE / CONV with float weights w - w_zp; scale times the
                          weight scale rescales the sums.)

Activations (``Act``) and their parameters (``Layer.attrs`` keys ``alpha`` and ``beta``):

IDENTITY      x
RELU          max(x, 0)
LEAKY_RELU    x if x >= 0 else alpha * x                 (alpha, default 0.01)
SIGMOID       1 / (1 + exp(-x))
TANH          tanh(x)
SOFTPLUS      log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|))
ELU           x if x > 0 else alpha * (exp(x) - 1)      (alpha, default 1.0)
SELU          beta * (x if x > 0 else alpha * (exp(x) - 1))
              (alpha 1.67326319217681884765625, beta = gamma 1.05070102214813232421875)
HARD_SIGMOID  max(0, min(1, alpha * x + beta))            (alpha 0.2, beta 0.5)
GELU          0.5 * x * (1 + erf(x / sqrt(2)))
GELU_TANH     0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))
CLIP          min(max(x, alpha), beta)                   (alpha = lower bound, beta = upper bound)
SILU          x * sigmoid(x)                             (Swish; PyTorch exports it as x * Sigmoid(x))
HARD_SWISH    x * max(0, min(1, x / 6 + 1 / 2))          (ONNX HardSwish)
MISH          x * tanh(softplus(x))
ERF           erf(x)
EXP           exp(x)                                     (overflows to inf, as float32 does)
ABS           |x|
WRAP          trunc(x) wrapped into [alpha, alpha + beta): t - beta * floor((t - alpha) / beta) with
              t = trunc(x); NaN and +-inf give 0 (alpha -128 / 0 / -2^31 and beta 256 / 256 / 2^32:
              the wrap-around of int8 / uint8 / int32 arithmetic and of an ONNX Cast to those types)
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

# The flat weight buffers of a FrozenModel and their dtypes (also the .rtm data sections).
BUFFER_DTYPES: dict[str, np.dtype] = {
    "f32": np.dtype("<f4"),
    "i8": np.dtype("i1"),
    "i32": np.dtype("<i4"),
}


class Op(IntEnum):
    DENSE = 1
    ACT = 2
    SOFTMAX = 3
    LOG_SOFTMAX = 4
    ARGMAX = 5
    AFFINE = 6
    RESHAPE = 7
    QUANTIZE = 8
    DEQUANTIZE = 9
    QDENSE = 10
    QLUT = 11
    # graph ops: several inputs (BINARY, CONCAT) or a view of one (SLICE)
    BINARY = 12
    CONCAT = 13
    SLICE = 14
    QBINARY = 15
    QCONCAT = 16
    QSLICE = 17
    # convolution and pooling (channels-first; 1-D as H = 1)
    CONV = 20
    MAXPOOL = 21
    AVGPOOL = 22
    GLOBAL_AVGPOOL = 23
    QCONV = 24
    QMAXPOOL = 25
    QAVGPOOL = 26
    # data movement by an index table, normalization
    GATHER = 27
    QGATHER = 28
    LAYERNORM = 29
    # a stored tensor (the output does not depend on the input's values)
    CONST = 30
    # matrix product of two runtime tensors
    MATMUL = 31
    # ONNX DynamicQuantizeLinear per sample: the codes minus the zero point, or the scale
    DYNQUANT = 32


class Act(IntEnum):
    IDENTITY = 0
    RELU = 1
    LEAKY_RELU = 2
    SIGMOID = 3
    TANH = 4
    SOFTPLUS = 5
    ELU = 6
    SELU = 7
    HARD_SIGMOID = 8
    GELU = 9
    GELU_TANH = 10
    CLIP = 11
    SILU = 12
    HARD_SWISH = 13
    MISH = 14
    ERF = 15
    EXP = 16
    ABS = 17
    WRAP = 18


class Bin(IntEnum):
    """The elementwise function of a BINARY / QBINARY layer (attr ``fn``)."""
    ADD = 0
    SUB = 1
    MUL = 2
    DIV = 3
    MAX = 4
    MIN = 5


# WRAP's (alpha, beta) for the integer dtypes whose arithmetic it wraps: (lowest value, 2^bits).
WRAP_RANGES: dict[str, tuple[float, float]] = {"int8": (-128.0, 256.0), "uint8": (0.0, 256.0),
                                               "int32": (-2.0 ** 31, 2.0 ** 32)}

# Default (alpha, beta) per activation, used when a Layer's attrs leave them out.
ACT_DEFAULTS: dict[Act, tuple[float, float]] = {
    Act.IDENTITY: (0.0, 0.0),
    Act.RELU: (0.0, 0.0),
    Act.LEAKY_RELU: (0.01, 0.0),
    Act.SIGMOID: (0.0, 0.0),
    Act.TANH: (0.0, 0.0),
    Act.SOFTPLUS: (0.0, 0.0),
    Act.ELU: (1.0, 0.0),
    Act.SELU: (1.67326319217681884765625, 1.05070102214813232421875),
    Act.HARD_SIGMOID: (0.2, 0.5),
    Act.GELU: (0.0, 0.0),
    Act.GELU_TANH: (0.0, 0.0),
    Act.CLIP: (float("-inf"), float("inf")),
    Act.SILU: (0.0, 0.0),
    Act.HARD_SWISH: (0.0, 0.0),
    Act.MISH: (0.0, 0.0),
    Act.ERF: (0.0, 0.0),
    Act.EXP: (0.0, 0.0),
    Act.ABS: (0.0, 0.0),
    Act.WRAP: WRAP_RANGES["int8"],
}

# Names used by rtinfer.train, the CLI and reports.
ACT_BY_NAME: dict[str, Act] = {
    "identity": Act.IDENTITY,
    "linear": Act.IDENTITY,
    "relu": Act.RELU,
    "leaky_relu": Act.LEAKY_RELU,
    "sigmoid": Act.SIGMOID,
    "tanh": Act.TANH,
    "softplus": Act.SOFTPLUS,
    "elu": Act.ELU,
    "selu": Act.SELU,
    "hard_sigmoid": Act.HARD_SIGMOID,
    "gelu": Act.GELU,
    "gelu_tanh": Act.GELU_TANH,
    "clip": Act.CLIP,
    "silu": Act.SILU,
    "swish": Act.SILU,
    "hard_swish": Act.HARD_SWISH,
    "mish": Act.MISH,
    "erf": Act.ERF,
    "exp": Act.EXP,
    "abs": Act.ABS,
}

# The dtypes a model output may have, in the order of their .rtm codes (0 float32, 1 int64, 2 int8,
# 3 uint8, 4 int32). Outputs are computed as float32; an integer output's values are exact
# integers of its range by construction (rtinfer.frozen checks which layers may produce them) and
# are converted at the end.
OUTPUT_DTYPES = ("float32", "int64", "int8", "uint8", "int32")

# Ops whose input is int8 / whose output is int8 (everything else is float32 -> float32).
INT8_INPUT_OPS = frozenset({Op.DEQUANTIZE, Op.QDENSE, Op.QLUT, Op.QCONV, Op.QMAXPOOL, Op.QAVGPOOL,
                            Op.QBINARY, Op.QCONCAT, Op.QSLICE, Op.QGATHER})
INT8_OUTPUT_OPS = frozenset({Op.QUANTIZE, Op.QDENSE, Op.QLUT, Op.QCONV, Op.QMAXPOOL, Op.QAVGPOOL,
                             Op.QBINARY, Op.QCONCAT, Op.QSLICE, Op.QGATHER})

# How many inputs each op reads: 1 unless listed; CONCAT / QCONCAT take 1 to MAX_CONCAT_INPUTS.
N_INPUTS = {Op.BINARY: 2, Op.QBINARY: 2, Op.MATMUL: 2}
VARIADIC_OPS = frozenset({Op.CONCAT, Op.QCONCAT})
MAX_CONCAT_INPUTS = 1 << 16
# Ops that take a fused activation (``Layer.act``); every other op must leave it IDENTITY.
ACT_OPS = frozenset({Op.DENSE, Op.ACT, Op.AFFINE, Op.CONV, Op.BINARY})

# Convolution / pooling ops and the integer geometry attrs they carry (see the contract above).
CONV_GEOMETRY_ATTRS = ("kernel_h", "kernel_w", "stride_h", "stride_w", "dilation_h", "dilation_w",
                       "pad_top", "pad_left", "pad_bottom", "pad_right")
WINDOW_OPS = frozenset({Op.CONV, Op.MAXPOOL, Op.AVGPOOL, Op.QCONV, Op.QMAXPOOL, Op.QAVGPOOL})

# Size limits checked from the declared shapes before anything is allocated (a few bytes of a
# file or graph must not make the planner or importer allocate gigabytes):
MAX_WINDOW_WORK = 1 << 24   # per sample: output elements x window elements of one window op
MAX_MATMUL_WORK = 1 << 26   # per sample: groups x m x k x n multiply-adds of one MATMUL (attention
                            # over 128 tokens of 64 dims is 2^20; three operands of 2^26 elements
                            # could otherwise ask for 2^39)
MAX_ARENA_BYTES = 1 << 28   # per sample: the planned activation arena
MAX_BLOCK_ARENA_BYTES = 1 << 26  # no batch path (rtinfer.batch) when its chunk arena would exceed this
