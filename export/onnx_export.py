"""FrozenModel -> ONNX (IR 10, opset 21), readable by onnxruntime and by ``from_onnx``.

    model = to_onnx(frozen)                  # onnx.ModelProto
    to_onnx(frozen, "model.onnx")            # also written atomically

Graph layout
- One input ``input`` (N, *input_shape) float32 and one output ``output`` (N, *output_shape)
  float32 (int64 / int8 / uint8 / int32 as ``output_dtype`` says: a Cast of the exact float
  values but for an int64 ArgMax); N is the symbolic dim "N". A model with
  several outputs names them ``output``, ``output_1``, ``output_2``, ... in ``frozen.outputs`` order.
- The graph follows ``Layer.inputs``: a layer reads the ONNX tensors of its input tensors. Each
  layer reads a tensor of shape (N, *in_shape); when the producer's tensor has another shape a
  ``Reshape`` named ``<layer>.reshape`` is inserted (the arena is flat, so it moves no data).
- Graph ops: BINARY = Add / Sub / Mul / Div / Max / Min (+ activation), both inputs reshaped to
  the same rank so that ONNX's broadcasting (which aligns the batch axis too) broadcasts inside
  the sample; CONCAT = Concat; SLICE = Slice (step > 0) or Gather (step < 0); QBINARY =
  DequantizeLinear of both -> op -> [Clip] -> QuantizeLinear; QCONCAT / QSLICE the same ops on
  the int8 tensors. SILU = x * Sigmoid(x), HARD_SWISH = HardSwish, MISH = Mish.
- Names: layer k of an op is ``dense0``, ``act1``, ``qdense0``...; its initializers are
  ``dense0.W``, ``dense0.b``, ``qdense0.w_scale``... ``FrozenModel.meta`` goes to
  ``metadata_props`` (keys starting with "onnx." are the importer's notes and are not written).
- fp32: DENSE = Gemm(x, W (n_in, n_out), b) + activation node; AFFINE = Mul(s) + Add(t) +
  activation; activations map to Relu, LeakyRelu, Sigmoid, Tanh, Softplus, Elu, Selu,
  HardSigmoid, Gelu (approximate "none"/"tanh"), Clip. SOFTMAX / LOG_SOFTMAX / ARGMAX use one
  axis of the (outer, axis_len, inner) view. ARGMAX feeding more layers is followed by Cast.
  CONST = Expand of the stored value to (N, *out_shape) (int64 when it is an int64 output).
  MATMUL = MatMul of the operands reshaped to (N, a_groups, m, k) and (N, b_groups, k, n).
  DYNQUANT = DynamicQuantizeLinear; mode 0 = Cast(y) - Cast(y_zero_point) (float), mode 1 =
  y_scale expanded to (N, 1). ONNX takes the range over the whole tensor, batch included, so the
  exported graph equals rtinfer (which quantizes each sample alone) at a batch of one.
- int8 in QDQ form, the layout quantization tools and onnxruntime's QDQ fusions recognize:
  QUANTIZE = QuantizeLinear (int8 zero point), DEQUANTIZE = DequantizeLinear.
  QDENSE = DequantizeLinear(x) -> Gemm(x_f, W_f, b_f) -> [Relu | Clip] -> QuantizeLinear, with
  W_f = DequantizeLinear(Wq (n_in, n_out) int8, w_scale (n_out,), zero point 0, axis=1)
  (per output channel; W is kept in rtinfer's (n_in, n_out) layout, so no transB; with
  ``weight_dtype="uint8"`` the same values are stored as q + 128 with zero point 128) and
  b_f = DequantizeLinear(bq int32, x_scale * w_scale (float32), axis=0). qmin == y_zp (and
  qmax 127) is a Relu; any other clamp is a Clip at the dequantized bounds.
  QLUT = DequantizeLinear -> activation -> QuantizeLinear when the table equals the table of the
  layer's activation (attrs ``act``/``alpha``/``beta`` as recorded by ``from_onnx``, else any
  default-parameter activation) rebuilt by ``quant.build_lut``: this
  is the standard QDQ form, keeps the activation readable and lets runtimes fuse it. A table that
  matches no activation is exported exactly as Cast(int32) -> Add(128) -> Gather(table).
"""

from __future__ import annotations


import numpy as np

from rtinfer import quant
from rtinfer._atomic import atomic_write
from rtinfer.frozen import FrozenModel, Layer
from rtinfer.ops import ACT_DEFAULTS, WINDOW_OPS, WRAP_RANGES, Act, Bin, Op

from .onnx_common import BATCH_DIM, EXPORT_IR_VERSION, EXPORT_OPSET, INPUT_NAME, OUTPUT_NAME


class OnnxExportError(ValueError):
    """The FrozenModel holds something ONNX export cannot express."""


_ACT_NODE = {
    Act.RELU: "Relu", Act.LEAKY_RELU: "LeakyRelu", Act.SIGMOID: "Sigmoid", Act.TANH: "Tanh",
    Act.SOFTPLUS: "Softplus", Act.ELU: "Elu", Act.SELU: "Selu", Act.HARD_SIGMOID: "HardSigmoid",
    Act.GELU: "Gelu", Act.GELU_TANH: "Gelu", Act.CLIP: "Clip", Act.SILU: "Sigmoid",
    Act.HARD_SWISH: "HardSwish", Act.MISH: "Mish", Act.ERF: "Erf", Act.EXP: "Exp", Act.ABS: "Abs",
}
_CAST_TO = {"int8": 3, "uint8": 2, "int32": 6}  # onnx.TensorProto.INT8 / UINT8 / INT32: integer outputs but int64
_BIN_NODE = {Bin.ADD: "Add", Bin.SUB: "Sub", Bin.MUL: "Mul", Bin.DIV: "Div", Bin.MAX: "Max", Bin.MIN: "Min"}


WEIGHT_DTYPES = ("int8", "uint8")


class _Writer:
    def __init__(self, frozen: FrozenModel, weight_dtype: str = "int8"):
        self.frozen = frozen
        self.weight_dtype = weight_dtype
        self.nodes = []
        self.inits = []
        self.counts: dict[str, int] = {}
        self.dequantized: dict[str, tuple] = {}  # DequantizeLinear output -> (int8 input, scale, zero point)

    def init(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type, inputs, outputs, name, **attrs):
        from onnx import helper
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0]

    def prefix(self, layer: Layer) -> str:
        key = layer.op.name.lower()
        k = self.counts.get(key, 0)
        self.counts[key] = k + 1
        return f"{key}{k}"

    # -- pieces ----------------------------------------------------------------------------------
    def reshape(self, x: str, cur: tuple, want: tuple, name: str) -> str:
        if tuple(cur) == tuple(want):
            return x
        shape = self.init(f"{name}.shape", np.array((-1,) + tuple(want), dtype=np.int64))
        dq = self.dequantized.get(x)
        if dq is not None:  # reshape the int8 codes, then dequantize: onnxruntime's QDQ propagation
            q, sc, zp = dq  # fails on DequantizeLinear -> Reshape with an int8 zero point (opset 21)
            r = self.node("Reshape", [q, shape], [f"{name}.codes"], name)
            return self.node("DequantizeLinear", [r, sc, zp], [f"{name}.out"], f"{name}.dequantize")
        return self.node("Reshape", [x, shape], [f"{name}.out"], name)

    def activation(self, x: str, act: Act, alpha: float, beta: float, p: str) -> str:
        if act == Act.IDENTITY:
            return x
        if act == Act.WRAP:  # Cast truncates toward zero; int32 -> int8 / uint8 wraps around
            to = {WRAP_RANGES[name]: code for name, code in _CAST_TO.items()}.get((float(alpha), float(beta)))
            if to is None:
                raise OnnxExportError(f"{p}: WRAP onto [{alpha}, {alpha} + {beta}) has no ONNX form (the int8, "
                                      f"uint8 and int32 ranges do: a Cast)")
            y = self.node("Cast", [x], [f"{p}.int32"], f"{p}.cast_int32", to=6)
            if to != 6:
                y = self.node("Cast", [y], [f"{p}.int{to}"], f"{p}.cast_int{to}", to=to)
            return self.node("Cast", [y], [f"{p}.wrapped"], f"{p}.cast_float", to=1)
        op = _ACT_NODE[act]
        out = [f"{p}.{op.lower()}"]
        name = f"{p}.{op.lower()}"
        if act == Act.LEAKY_RELU:
            return self.node(op, [x], out, name, alpha=alpha)
        if act == Act.ELU:
            return self.node(op, [x], out, name, alpha=alpha)
        if act == Act.SELU:
            return self.node(op, [x], out, name, alpha=alpha, gamma=beta)
        if act == Act.HARD_SIGMOID:
            return self.node(op, [x], out, name, alpha=alpha, beta=beta)
        if act == Act.GELU_TANH:
            return self.node(op, [x], out, name, approximate="tanh")
        if act == Act.CLIP:
            lo = self.init(f"{p}.clip_min", np.array(alpha, np.float32)) if np.isfinite(alpha) else ""
            hi = self.init(f"{p}.clip_max", np.array(beta, np.float32)) if np.isfinite(beta) else ""
            return self.node(op, [x, lo, hi], out, name)
        if act == Act.SILU:  # x * sigmoid(x): what exporters write, recognized by from_onnx
            sig = self.node("Sigmoid", [x], [f"{p}.sigmoid"], f"{p}.sigmoid")
            return self.node("Mul", [x, sig], [f"{p}.silu"], f"{p}.silu")
        return self.node(op, [x], out, name)

    def axis_view(self, layer: Layer):
        """(view shape, axis in the full (N, *view) tensor) for SOFTMAX / LOG_SOFTMAX / ARGMAX."""
        a = layer.attrs
        outer = int(a.get("outer", 1))
        axis_len = int(a.get("axis_len", layer.in_size))
        inner = int(a.get("inner", 1))
        s = layer.in_shape
        for k in range(len(s)):
            if int(np.prod(s[:k])) == outer and s[k] == axis_len and int(np.prod(s[k + 1:])) == inner:
                return s, k + 1
        return (outer, axis_len, inner), 2

    # -- layers ----------------------------------------------------------------------------------
    def layer(self, layer: Layer, ins: list, int64_out: bool):
        """Emit one layer reading ins = [(tensor name, sample shape)] (in Layer.inputs order);
        returns (tensor name, its sample shape)."""
        f = self.frozen
        p = self.prefix(layer)
        op = layer.op
        alpha, beta = layer.act_params()
        x, cur = ins[0]
        if op == Op.RESHAPE:
            return x, cur
        if op in (Op.BINARY, Op.QBINARY):
            return self.binary(layer, ins, p), layer.out_shape
        if op in (Op.CONCAT, Op.QCONCAT):
            names = [self.reshape(n, s, f.tensor_shape(t), f"{p}.reshape{k}")
                     for k, ((n, s), t) in enumerate(zip(ins, layer.inputs))]
            return self.node("Concat", names, [f"{p}.out"], p, axis=int(layer.attrs["axis"]) + 1), layer.out_shape
        if op in (Op.SLICE, Op.QSLICE):
            x = self.reshape(x, cur, layer.in_shape, f"{p}.reshape")
            axis = int(layer.attrs["axis"])
            start, step = int(layer.attrs.get("start", 0)), int(layer.attrs.get("step", 1))
            count = layer.out_shape[axis]
            if step > 0:
                st = self.init(f"{p}.starts", np.array([start], np.int64))
                en = self.init(f"{p}.ends", np.array([start + (count - 1) * step + 1], np.int64))
                ax = self.init(f"{p}.axes", np.array([axis + 1], np.int64))
                sp = self.init(f"{p}.steps", np.array([step], np.int64))
                return self.node("Slice", [x, st, en, ax, sp], [f"{p}.out"], p), layer.out_shape
            idx = self.init(f"{p}.indices", start + step * np.arange(count, dtype=np.int64))
            return self.node("Gather", [x, idx], [f"{p}.out"], p, axis=axis + 1), layer.out_shape
        if op in (Op.SOFTMAX, Op.LOG_SOFTMAX, Op.ARGMAX):
            view, axis = self.axis_view(layer)
            x = self.reshape(x, cur, view, f"{p}.reshape")
            if op == Op.ARGMAX:
                keep = len(layer.out_shape) == len(view)
                out_view = view[:axis - 1] + ((1,) if keep else ()) + view[axis:]
                extra = {"select_last_index": 1} if int(layer.attrs.get("select_last", 0)) else {}
                y = self.node("ArgMax", [x], [f"{p}.out"], p, axis=axis, keepdims=int(keep), **extra)
                if not int64_out:
                    y = self.node("Cast", [y], [f"{p}.float"], f"{p}.cast", to=1)
                return y, out_view
            kind = "Softmax" if op == Op.SOFTMAX else "LogSoftmax"
            return self.node(kind, [x], [f"{p}.out"], p, axis=axis), view
        if op in (Op.GATHER, Op.QGATHER):
            return self.gather(layer, x, cur, p), layer.out_shape
        if op == Op.CONST:
            return self.const(layer, x, p, int64_out), layer.out_shape
        if op == Op.MATMUL:  # (N, a_groups, m, k) @ (N, b_groups, k, n): ONNX broadcasts the groups
            at = layer.attrs
            g, m, k, n = (int(at[key]) for key in ("groups", "m", "k", "n"))
            lhs = self.reshape(x, cur, (int(at["a_groups"]), m, k), f"{p}.reshape_a")
            rhs = self.reshape(ins[1][0], ins[1][1], (int(at["b_groups"]), k, n), f"{p}.reshape_b")
            return self.node("MatMul", [lhs, rhs], [f"{p}.out"], p), (g, m, n)
        if op == Op.DYNQUANT:
            return self.dynquant(layer, x, cur, p)
        if op == Op.LAYERNORM:
            a = layer.attrs
            view = (int(a["outer"]), int(a["axis_len"]))
            x = self.reshape(x, cur, view, f"{p}.reshape")
            sc = self.init(f"{p}.scale", np.asarray(f.tensor(layer, "scale"), np.float32))
            bi = self.init(f"{p}.bias", np.asarray(f.tensor(layer, "bias"), np.float32))
            return self.node("LayerNormalization", [x, sc, bi], [f"{p}.out"], p, axis=-1,
                             epsilon=float(a["epsilon"])), view
        if op in (Op.DENSE, Op.QDENSE):  # Gemm takes (N, n_in): an N-D sample is flattened first
            x = self.reshape(x, cur, (layer.in_size,), f"{p}.reshape")
        else:
            x = self.reshape(x, cur, layer.in_shape, f"{p}.reshape")
        if op == Op.DENSE:
            W = self.init(f"{p}.W", np.asarray(f.tensor(layer, "W"), np.float32))
            b = self.init(f"{p}.b", np.asarray(f.tensor(layer, "b"), np.float32))
            y = self.node("Gemm", [x, W, b], [f"{p}.out"], p)
            return self.activation(y, layer.act, alpha, beta, p), (layer.out_size,)
        if op == Op.ACT:
            if layer.act == Act.IDENTITY:
                return self.node("Identity", [x], [f"{p}.out"], p), layer.out_shape
            return self.activation(x, layer.act, alpha, beta, p), layer.out_shape
        if op == Op.AFFINE:
            s = self.init(f"{p}.s", np.asarray(f.tensor(layer, "s"), np.float32).reshape(layer.in_shape))
            t = self.init(f"{p}.t", np.asarray(f.tensor(layer, "t"), np.float32).reshape(layer.in_shape))
            y = self.node("Mul", [x, s], [f"{p}.mul"], f"{p}.mul")
            y = self.node("Add", [y, t], [f"{p}.out"], p)
            return self.activation(y, layer.act, alpha, beta, p), layer.out_shape
        if op == Op.QUANTIZE:
            sc = self.init(f"{p}.y_scale", np.array(layer.attrs["y_scale"], np.float32))
            zp = self.init(f"{p}.y_zero_point", np.array(int(layer.attrs["y_zp"]), np.int8))
            return self.node("QuantizeLinear", [x, sc, zp], [f"{p}.out"], p), layer.out_shape
        if op == Op.DEQUANTIZE:
            sc = self.init(f"{p}.x_scale", np.array(layer.attrs["x_scale"], np.float32))
            zp = self.init(f"{p}.x_zero_point", np.array(int(layer.attrs["x_zp"]), np.int8))
            y = self.node("DequantizeLinear", [x, sc, zp], [f"{p}.out"], p)
            self.dequantized[y] = (x, sc, zp)
            return y, layer.out_shape
        if op == Op.QDENSE:
            return self.qdense(layer, x, p), (layer.out_size,)
        if op == Op.QLUT:
            return self.qlut(layer, x, p), layer.out_shape
        if op in WINDOW_OPS or op == Op.GLOBAL_AVGPOOL:  # convolution and pooling
            from .onnx_conv import export_layer
            return export_layer(self, layer, x, p)
        raise OnnxExportError(f"layer {p}: op {op.name} has no ONNX export")  # pragma: no cover

    def gather(self, layer: Layer, x: str, cur: tuple, p: str) -> str:
        """GATHER / QGATHER: Pad the flat sample with one fill element, then Gather(axis=1) with
        the table (its -1 entries pointing at the fill)."""
        f = self.frozen
        n = layer.in_size
        x = self.reshape(x, cur, (n,), f"{p}.flatten")
        idx = np.asarray(f.tensor(layer, "index"), np.int64).reshape(-1)
        src = x
        if np.any(idx < 0):
            fill = layer.attrs.get("fill", 0)
            value = np.array(int(fill), np.int8) if layer.op == Op.QGATHER else np.array(fill, np.float32)
            pads = self.init(f"{p}.pads", np.array([0, 0, 0, 1], np.int64))
            cv = self.init(f"{p}.fill", value)
            src = self.node("Pad", [x, pads, cv], [f"{p}.padded"], f"{p}.pad")
            idx = np.where(idx < 0, n, idx)
        ind = self.init(f"{p}.index", idx.reshape(layer.out_shape))
        return self.node("Gather", [src, ind], [f"{p}.out"], p, axis=1)

    def const(self, layer: Layer, x: str, p: str, int64_out: bool) -> str:
        """CONST: the value repeated per sample, Expand(value (1, *out_shape), [N, 1, ...]) with N
        read from the input's shape (1 without a batch axis); int64 when it is an int64 output."""
        out = tuple(layer.out_shape)
        value = np.asarray(self.frozen.tensor(layer, "value"), np.float32).reshape((1,) + out)
        val = self.init(f"{p}.value", value.astype(np.int64) if int64_out else value)
        n = self.node("Shape", [x], [f"{p}.batch"], f"{p}.batch", start=0, end=1)
        ones = self.init(f"{p}.ones", np.ones(len(out), np.int64))
        shape = self.node("Concat", [n, ones], [f"{p}.shape"], f"{p}.shape", axis=0)
        return self.node("Expand", [val, shape], [f"{p}.out" if int64_out else f"{p}.float"], p)

    def dynquant(self, layer: Layer, x: str, cur: tuple, p: str):
        """DYNQUANT as DynamicQuantizeLinear (see the module doc): mode 0 -> the codes minus the
        zero point as floats, in x's shape; mode 1 -> the scale, Expand(Reshape(y_scale, (1, 1)),
        [N, 1]) with N read from x's shape."""
        outs = [f"{p}.y", f"{p}.y_scale", f"{p}.y_zero_point"]
        self.node("DynamicQuantizeLinear", [x], outs, f"{p}.dql")
        if int(layer.attrs.get("mode", 0)) == 0:
            y = self.node("Cast", [outs[0]], [f"{p}.y_float"], f"{p}.cast_y", to=1)
            z = self.node("Cast", [outs[2]], [f"{p}.zp_float"], f"{p}.cast_zp", to=1)
            return self.node("Sub", [y, z], [f"{p}.out"], p), tuple(cur)
        s11 = self.node("Reshape", [outs[1], self.init(f"{p}.one_one", np.array([1, 1], np.int64))],
                        [f"{p}.scale"], f"{p}.reshape")
        n = self.node("Shape", [x], [f"{p}.batch"], f"{p}.batch", start=0, end=1)
        shape = self.node("Concat", [n, self.init(f"{p}.ones", np.ones(1, np.int64))], [f"{p}.shape"],
                          f"{p}.shape", axis=0)
        return self.node("Expand", [s11, shape], [f"{p}.out"], p), (1,)

    def binary(self, layer: Layer, ins: list, p: str) -> str:
        f = self.frozen
        a = layer.attrs
        fn = Bin(int(a["fn"]))
        shapes = [f.tensor_shape(t) for t in layer.inputs]
        r = max(len(s) for s in shapes)
        names = []
        for k, ((n, cur), shp) in enumerate(zip(ins, shapes)):
            # equal ranks: ONNX broadcasting aligns from the right, the batch axis included
            names.append(self.reshape(n, cur, (1,) * (r - len(shp)) + tuple(shp), f"{p}.reshape{k}"))
        if layer.op == Op.BINARY:
            y = self.node(_BIN_NODE[fn], names, [f"{p}.out"], p)
            return self.activation(y, layer.act, *layer.act_params(), p)
        fl = []
        for k, (n, key) in enumerate(zip(names, "ab")):
            sc = self.init(f"{p}.{key}_scale", np.array(a[f"{key}_scale"], np.float32))
            zp = self.init(f"{p}.{key}_zero_point", np.array(int(a[f"{key}_zp"]), np.int8))
            fl.append(self.node("DequantizeLinear", [n, sc, zp], [f"{p}.{key}"], f"{p}.dequantize_{key}"))
        y = self.node(_BIN_NODE[fn], fl, [f"{p}.acc"], p)
        return self.requantize(y, a, p)

    def requantize(self, y: str, a, p: str) -> str:
        """[Relu | Clip] -> QuantizeLinear at the layer's y_scale / y_zp, qmin / qmax."""
        ys, yzp = float(a["y_scale"]), int(a["y_zp"])
        qmin, qmax = int(a.get("qmin", quant.QMIN)), int(a.get("qmax", quant.QMAX))
        if qmin == yzp and qmax == quant.QMAX and yzp > quant.QMIN:
            y = self.node("Relu", [y], [f"{p}.relu"], f"{p}.relu")
        elif qmin > quant.QMIN or qmax < quant.QMAX:
            lo = self.init(f"{p}.clip_min", np.array((qmin - yzp) * ys, np.float32)) if qmin > quant.QMIN else ""
            hi = self.init(f"{p}.clip_max", np.array((qmax - yzp) * ys, np.float32)) if qmax < quant.QMAX else ""
            y = self.node("Clip", [y, lo, hi], [f"{p}.clip"], f"{p}.clip")
        ysc = self.init(f"{p}.y_scale", np.array(ys, np.float32))
        yzpn = self.init(f"{p}.y_zero_point", np.array(yzp, np.int8))
        return self.node("QuantizeLinear", [y, ysc, yzpn], [f"{p}.out"], f"{p}.quantize_y")

    def qdense(self, layer: Layer, x: str, p: str) -> str:
        f = self.frozen
        a = layer.attrs
        xs, xzp = float(a["x_scale"]), int(a["x_zp"])
        w_scale = np.asarray(f.tensor(layer, "w_scale"), np.float32)
        n_out = w_scale.size
        xsc = self.init(f"{p}.x_scale", np.array(xs, np.float32))
        xzpn = self.init(f"{p}.x_zero_point", np.array(xzp, np.int8))
        xf = self.node("DequantizeLinear", [x, xsc, xzpn], [f"{p}.x"], f"{p}.dequantize_x")
        Wq = np.asarray(f.tensor(layer, "W"), np.int8)
        if self.weight_dtype == "uint8":  # the same values: q + 128 with zero point 128
            Wq = self.init(f"{p}.W", (Wq.astype(np.int16) + 128).astype(np.uint8))
            wz = self.init(f"{p}.w_zero_point", np.full(n_out, 128, np.uint8))
        else:
            Wq = self.init(f"{p}.W", Wq)
            wz = self.init(f"{p}.w_zero_point", np.zeros(n_out, np.int8))
        ws = self.init(f"{p}.w_scale", w_scale)
        Wf = self.node("DequantizeLinear", [Wq, ws, wz], [f"{p}.W_float"], f"{p}.dequantize_W", axis=1)
        bq = self.init(f"{p}.b", np.asarray(f.tensor(layer, "b"), np.int32))
        # the bias scale uses x_scale as written (float32), so a re-import recognizes it exactly
        bs = self.init(f"{p}.b_scale", (np.float64(np.float32(xs)) * w_scale.astype(np.float64)).astype(np.float32))
        bf = self.node("DequantizeLinear", [bq, bs], [f"{p}.b_float"], f"{p}.dequantize_b", axis=0)
        y = self.node("Gemm", [xf, Wf, bf], [f"{p}.acc"], p)
        return self.requantize(y, a, p)

    def qlut(self, layer: Layer, x: str, p: str) -> str:
        from rtinfer.activations import activation
        f = self.frozen
        a = layer.attrs
        table = np.asarray(f.tensor(layer, "table"), np.int8)
        xs, xzp = float(a.get("x_scale", 1.0)), int(a.get("x_zp", 0))
        ys, yzp = float(a.get("y_scale", 1.0)), int(a.get("y_zp", 0))
        candidates = []
        if "act" in a:  # the importer records the activation a table was built from
            hint = Act(int(a["act"]))
            d_alpha, d_beta = ACT_DEFAULTS[hint]
            candidates.append((hint, float(a.get("alpha", d_alpha)), float(a.get("beta", d_beta))))
        if layer.act != Act.IDENTITY:
            candidates.append((layer.act,) + layer.act_params())
        candidates += [(act,) + ACT_DEFAULTS[act] for act in _ACT_NODE if act != Act.CLIP]
        for act, alpha, beta in candidates:
            ref = quant.build_lut(lambda v: activation(v, act, alpha, beta), xs, xzp, ys, yzp)
            if np.array_equal(ref, table):
                xsc = self.init(f"{p}.x_scale", np.array(xs, np.float32))
                xzpn = self.init(f"{p}.x_zero_point", np.array(xzp, np.int8))
                y = self.node("DequantizeLinear", [x, xsc, xzpn], [f"{p}.x"], f"{p}.dequantize_x")
                y = self.activation(y, act, alpha, beta, p)
                ysc = self.init(f"{p}.y_scale", np.array(ys, np.float32))
                yzpn = self.init(f"{p}.y_zero_point", np.array(yzp, np.int8))
                return self.node("QuantizeLinear", [y, ysc, yzpn], [f"{p}.out"], f"{p}.quantize_y")
        idx = self.node("Cast", [x], [f"{p}.index"], f"{p}.cast", to=6)
        off = self.init(f"{p}.offset", np.array(128, np.int32))
        idx = self.node("Add", [idx, off], [f"{p}.index_offset"], f"{p}.offset")
        tab = self.init(f"{p}.table", table)
        return self.node("Gather", [tab, idx], [f"{p}.out"], p, axis=0)

    # -- whole model -----------------------------------------------------------------------------
    def build(self):
        import onnx
        from onnx import helper
        f = self.frozen
        no_batch = f.meta.get("batch") == "none"
        names = [(INPUT_NAME, f.input_shape)]
        if no_batch:  # the layers see a batch of one; the graph's input and outputs have no batch axis
            shape = self.init("input.batch_shape", np.array((1,) + tuple(f.input_shape), np.int64))
            names = [(self.node("Reshape", [INPUT_NAME, shape], ["input.batched"], "input.batched"), f.input_shape)]
        int64_outs = {o.tensor for o in f.outputs if o.dtype == "int64"}
        consumed = {t for layer in f.layers for t in layer.inputs}
        for i, layer in enumerate(f.layers):
            # an ARGMAX stays int64 only when it is an int64 output that nothing else reads
            keep_int = (i + 1) in int64_outs and (i + 1) not in consumed and len(f.outputs) == 1
            try:
                names.append(self.layer(layer, [names[t] for t in layer.inputs], keep_int))
            except OnnxExportError:
                raise
            except Exception as exc:
                raise OnnxExportError(f"layer {i} ({layer.op.name}{' ' + layer.name if layer.name else ''}): "
                                      f"cannot be written as ONNX: {type(exc).__name__}: {exc}") from exc
        outs = []
        for k, o in enumerate(f.outputs):
            oname = OUTPUT_NAME if k == 0 else f"{OUTPUT_NAME}_{k}"
            x, cur = names[o.tensor]
            # integer codes / sums, carried as exact float32 values: cast before any Reshape (a
            # DequantizeLinear -> Reshape makes onnxruntime's QDQ propagation insert a QuantizeLinear
            # whose output_dtype contradicts its zero point, and the session fails to load)
            if o.dtype in _CAST_TO:
                x = self.node("Cast", [x], [f"{oname}.{o.dtype}"], f"{oname}.cast", to=_CAST_TO[o.dtype])
            if no_batch:
                shape = self.init(f"{oname}.shape", np.array(o.shape, np.int64))
                x = self.node("Reshape", [x, shape], [f"{oname}.reshape.out"], f"{oname}.reshape")
            else:
                x = self.reshape(x, cur, o.shape, f"{oname}.reshape")
            producer = self.nodes[-1] if self.nodes else None
            if len(f.outputs) == 1 and x != INPUT_NAME and producer is not None and x in producer.output:
                for j, out in enumerate(producer.output):  # rename the last node's output
                    if out == x:
                        producer.output[j] = oname
            else:
                if o.dtype == "int64" and x.endswith(".float"):
                    x = self.node("Cast", [x], [f"{oname}.int64"], f"{oname}.cast", to=7)
                self.node("Identity", [x], [oname], oname)
            out_type = {"int64": onnx.TensorProto.INT64, **_CAST_TO}.get(o.dtype, onnx.TensorProto.FLOAT)
            outs.append(helper.make_tensor_value_info(oname, out_type, ([] if no_batch else [BATCH_DIM]) + list(o.shape)))
        graph = helper.make_graph(
            self.nodes, "rtinfer",
            [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT,
                                           ([] if no_batch else [BATCH_DIM]) + list(f.input_shape))],
            outs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", EXPORT_OPSET)],
                                  producer_name="rtinfer", producer_version=_version())
        model.ir_version = EXPORT_IR_VERSION
        for key, value in sorted(f.meta.items()):
            if not key.startswith("onnx."):
                entry = model.metadata_props.add()
                entry.key, entry.value = key, value
        return model


def _version() -> str:
    try:
        import rtinfer
        return rtinfer.__version__
    except Exception:  # pragma: no cover
        return ""


def _write_atomic(data: bytes, path) -> None:
    atomic_write(path, lambda f: f.write(data))


def to_onnx(frozen: FrozenModel, path=None, weight_dtype: str = "int8"):
    """Translate a FrozenModel into an onnx.ModelProto (checked); write it atomically to path if given.

    weight_dtype: how QDENSE weights are stored. "int8" (zero point 0) is the usual symmetric
    form. "uint8" stores the same values as q + 128 with zero point 128: onnxruntime then fuses
    with its u8u8 kernels, which are exact on x86 CPUs without VNNI, where the u8s8 kernels used
    for int8 weights can saturate int16 pair sums.
    """
    import onnx
    if not isinstance(frozen, FrozenModel):
        raise OnnxExportError(f"to_onnx takes a FrozenModel, got {type(frozen).__name__}")
    if weight_dtype not in WEIGHT_DTYPES:
        raise OnnxExportError(f"weight_dtype must be one of {WEIGHT_DTYPES}, got {weight_dtype!r}")
    model = _Writer(frozen, weight_dtype).build()
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx's ValidationError / InferenceError: name the node (a layer's prefix)
        raise OnnxExportError(f"the exported graph does not pass onnx.checker: {exc}") from exc
    if path is not None:
        _write_atomic(model.SerializeToString(), path)
    return model
