"""FrozenModel: the contract between training, ONNX import and the runtime.

A frozen model is data: a tuple of small ``Layer`` specs plus one flat buffer per dtype
(``"f32"`` float32, ``"i8"`` int8, ``"i32"`` int32). Layers point into the buffers with
``TensorRef`` (buffer key, element offset, shape). A FrozenModel holds no reference to a
training object; it is produced by ``export.freeze`` and ``export.from_onnx`` and consumed by
``rtinfer.reference`` (the golden NumPy executor), the planner and ``.rtm`` I/O.

A model is a graph of activation tensors, numbered in topological order: tensor 0 is the model
input and layer i writes tensor i + 1 (so every tensor has exactly one producer and a layer can
only read tensors made before it: no cycles by construction). ``Layer.inputs`` lists the
tensors a layer reads; left out (None) it is the previous tensor, so a chain needs no ids.
``FrozenModel.outputs`` lists the model's outputs (tensor, shape, dtype); left out, the one
output is the last layer's tensor with ``output_shape`` / ``output_dtype``.

Shapes are per sample: a batch ``X`` has shape ``(N, *input_shape)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .ops import (ACT_DEFAULTS, ACT_OPS, BUFFER_DTYPES, INT8_INPUT_OPS, INT8_OUTPUT_OPS, MAX_CONCAT_INPUTS, N_INPUTS, OUTPUT_DTYPES,
                  VARIADIC_OPS, WRAP_RANGES, Act,
                  Op)



# float32 holds every integer of magnitude <= 2^24 exactly (an integer output's values travel as float32)
F32_EXACT_INT = 1 << 24

_INT_RANGE = {"int64": (-F32_EXACT_INT, F32_EXACT_INT), "int32": (-F32_EXACT_INT, F32_EXACT_INT),
              "int8": (-128, 127), "uint8": (0, 255)}
# int8 / uint8 outputs: a DEQUANTIZE with x_scale 1 and this zero point (int8 codes q give q - zp)
_DEQUANTIZE_ZP = {"int8": 0, "uint8": -128}


class FrozenModelError(ValueError):
    """A FrozenModel is inconsistent (bad offsets, shapes, codes or parameters)."""


@dataclass(frozen=True)
class TensorRef:
    buffer: str  # "f32" | "i8" | "i32"
    offset: int  # in elements of the buffer's dtype
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))


@dataclass(frozen=True)
class Layer:
    op: Op
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    act: Act = Act.IDENTITY
    tensors: Mapping[str, TensorRef] = field(default_factory=dict)
    attrs: Mapping[str, float] = field(default_factory=dict)  # numbers only (int or float)
    name: str = ""
    inputs: tuple[int, ...] | None = None  # tensor ids read; None: the previous tensor (a chain)

    def __post_init__(self):
        if self.inputs is not None:
            object.__setattr__(self, "inputs", tuple(int(t) for t in self.inputs))
        object.__setattr__(self, "op", Op(self.op))
        object.__setattr__(self, "act", Act(self.act))
        object.__setattr__(self, "in_shape", tuple(int(d) for d in self.in_shape))
        object.__setattr__(self, "out_shape", tuple(int(d) for d in self.out_shape))
        object.__setattr__(self, "tensors", MappingProxyType(dict(self.tensors)))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    @property
    def in_size(self) -> int:
        return int(math.prod(self.in_shape))

    @property
    def out_size(self) -> int:
        return int(math.prod(self.out_shape))

    @property
    def in_dtype(self) -> str:
        """The dtype the op reads (RESHAPE reads either; FrozenModel.tensor_dtype says which)."""
        return "i8" if self.op in INT8_INPUT_OPS else "f32"

    @property
    def out_dtype(self) -> str:
        """The dtype the op writes (RESHAPE: its input's; see FrozenModel.tensor_dtype)."""
        return "i8" if self.op in INT8_OUTPUT_OPS else "f32"

    def act_params(self) -> tuple[float, float]:
        """(alpha, beta) of this layer's activation, defaults filled in."""
        a0, b0 = ACT_DEFAULTS[self.act]
        return float(self.attrs.get("alpha", a0)), float(self.attrs.get("beta", b0))

    @property
    def macs(self) -> int:
        if self.op in (Op.DENSE, Op.QDENSE):
            return self.in_size * self.out_size
        if self.op in (Op.CONV, Op.QCONV):  # out elements x (C / group) x kernel_h x kernel_w
            w = self.tensors.get("W")
            return self.out_size * (math.prod(w.shape[1:]) if w is not None else 0)
        return 0


@dataclass(frozen=True)
class Output:
    """One model output: the tensor it reads, the shape the user sees (same size as the
    tensor's) and the dtype: "float32"; "int64" for an ARGMAX result or an integer CONST; "int8" /
    "uint8" for a DEQUANTIZE with x_scale 1 and x_zp 0 / -128 (the codes of an int8 / uint8 tensor)
    or a CONST of that range."""
    tensor: int
    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "tensor", int(self.tensor))
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))


@dataclass(frozen=True)
class FrozenModel:
    layers: tuple[Layer, ...]
    buffers: Mapping[str, np.ndarray]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | None = None  # the (first) output's shape
    output_dtype: str = "float32"  # one of OUTPUT_DTYPES (see Output)
    meta: Mapping[str, str] = field(default_factory=dict)
    outputs: tuple[Output, ...] | None = None  # None: one output, the last layer's tensor

    def __post_init__(self):
        bufs = {}
        for key, dt in BUFFER_DTYPES.items():
            arr = self.buffers.get(key)
            if arr is None:
                arr = np.zeros(0, dtype=dt)
            arr = np.asarray(arr)
            if arr.dtype != dt or arr.ndim != 1:
                raise FrozenModelError(f"buffer {key!r} must be 1-D {dt}, got {arr.ndim}-D {arr.dtype}")
            bufs[key] = arr
        unknown = set(self.buffers) - set(BUFFER_DTYPES)
        if unknown:
            raise FrozenModelError(f"unknown buffer keys {sorted(unknown)}; expected {list(BUFFER_DTYPES)}")
        layers = tuple(self.layers)
        if any(not isinstance(layer, Layer) for layer in layers):
            raise FrozenModelError("layers must be rtinfer.frozen.Layer objects")
        # every layer names its inputs (None means the previous tensor)
        layers = tuple(layer if layer.inputs is not None else replace(layer, inputs=(i,))
                       for i, layer in enumerate(layers))
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "buffers", MappingProxyType(bufs))
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if self.outputs is None:
            if self.output_shape is None:
                raise FrozenModelError("a FrozenModel needs output_shape (or outputs)")
            outs = (Output(len(layers), self.output_shape, self.output_dtype),)
        else:
            outs = tuple(o if isinstance(o, Output) else Output(*o) for o in self.outputs)
            if not outs:
                raise FrozenModelError("a FrozenModel needs at least one output")
        object.__setattr__(self, "outputs", outs)
        object.__setattr__(self, "output_shape", outs[0].shape)
        object.__setattr__(self, "output_dtype", outs[0].dtype)
        object.__setattr__(self, "meta", MappingProxyType({str(k): str(v) for k, v in self.meta.items()}))
        self.validate()

    # -- access -------------------------------------------------------------------------------
    def tensor(self, layer: Layer, name: str) -> np.ndarray:
        """A read-only view of one of a layer's tensors, in its declared shape."""
        ref = layer.tensors[name]
        buf = self.buffers[ref.buffer]
        view = buf[ref.offset: ref.offset + ref.size].reshape(ref.shape)
        view = view.view()
        view.flags.writeable = False
        return view

    def save(self, path) -> None:
        """Write this model as an ``.rtm`` file (atomically); read it back with rtinfer.load_frozen."""
        from .rtm_layout import write_frozen
        write_frozen(self, path)

    # -- checks -------------------------------------------------------------------------------
    def tensor_shape(self, t: int) -> tuple[int, ...]:
        """Per-sample shape of activation tensor t (0: the input; i + 1: layer i's output)."""
        return self.input_shape if t == 0 else self.layers[t - 1].out_shape

    def tensor_dtype(self, t: int) -> str:
        """"f32" or "i8": the dtype of activation tensor t (a RESHAPE keeps its input's)."""
        while t > 0 and self.layers[t - 1].op == Op.RESHAPE:
            t = self.layers[t - 1].inputs[0]
        return "f32" if t == 0 else self.layers[t - 1].out_dtype

    @property
    def is_chain(self) -> bool:
        """True when every layer reads the previous tensor and the one output is the last."""
        return (all(layer.inputs == (i,) for i, layer in enumerate(self.layers))
                and len(self.outputs) == 1 and self.outputs[0].tensor == len(self.layers))

    def consumers(self) -> list[list[int]]:
        """consumers()[t]: the layers that read tensor t, in order."""
        cons: list[list[int]] = [[] for _ in range(len(self.layers) + 1)]
        for i, layer in enumerate(self.layers):
            for t in dict.fromkeys(layer.inputs):
                cons[t].append(i)
        return cons

    def validate(self) -> None:
        """Raise FrozenModelError unless the graph is well formed (every input an earlier
        tensor of the right size and dtype, every layer used) and every tensor is in bounds."""
        if not self.layers:
            raise FrozenModelError("a FrozenModel needs at least one layer")
        n_tensors = len(self.layers) + 1
        for i, layer in enumerate(self.layers):
            where = f"layer {i} ({layer.op.name}{' ' + layer.name if layer.name else ''})"
            if any(d <= 0 for d in layer.in_shape + layer.out_shape):
                raise FrozenModelError(f"{where}: non-positive dimension in {layer.in_shape} -> {layer.out_shape}")
            ins = layer.inputs
            want = N_INPUTS.get(layer.op, 1)
            if layer.op in VARIADIC_OPS:
                if not 1 <= len(ins) <= MAX_CONCAT_INPUTS:
                    raise FrozenModelError(f"{where}: takes 1 to {MAX_CONCAT_INPUTS} inputs, got {len(ins)}")
            elif len(ins) != want:
                raise FrozenModelError(f"{where}: takes {want} input{'s' if want > 1 else ''}, got {len(ins)} {list(ins)}")
            for t in ins:
                if not 0 <= t <= i:
                    raise FrozenModelError(
                        f"{where}: input tensor {t} is not an earlier tensor (0 is the model input, "
                        f"layer k writes tensor k + 1; layer {i} may read tensors 0..{i})")
                if layer.op != Op.RESHAPE and self.tensor_dtype(t) != layer.in_dtype:
                    raise FrozenModelError(f"{where}: takes {layer.in_dtype} but tensor {t} is {self.tensor_dtype(t)}")
            first = self.tensor_shape(ins[0])
            if math.prod(layer.in_shape) != math.prod(first):
                raise FrozenModelError(
                    f"{where}: input shape {layer.in_shape} does not match tensor {ins[0]}'s shape {first}")
            for tname, ref in layer.tensors.items():
                if ref.buffer not in BUFFER_DTYPES:
                    raise FrozenModelError(f"{where}: tensor {tname!r} names unknown buffer {ref.buffer!r}")
                n = len(self.buffers[ref.buffer])
                if ref.offset < 0 or any(d < 0 for d in ref.shape) or ref.offset + ref.size > n:
                    raise FrozenModelError(
                        f"{where}: tensor {tname!r} [{ref.offset}:{ref.offset + ref.size}] lies outside "
                        f"buffer {ref.buffer!r} of {n} elements")
            for key, val in layer.attrs.items():
                if not isinstance(val, (int, float, np.integer, np.floating)) or isinstance(val, (bool, np.bool_)):
                    raise FrozenModelError(f"{where}: attr {key!r} must be a number, got {type(val).__name__}")
                if isinstance(val, (float, np.floating)) and math.isnan(val):
                    raise FrozenModelError(f"{where}: attr {key!r} is NaN")
        if self.output_dtype not in OUTPUT_DTYPES:
            raise FrozenModelError(f"output_dtype must be one of {OUTPUT_DTYPES}, got {self.output_dtype!r}")
        used = [False] * n_tensors
        for layer in self.layers:
            for t in layer.inputs:
                used[t] = True
        for k, out in enumerate(self.outputs):
            what = f"output {k}"
            if not 1 <= out.tensor < n_tensors:
                raise FrozenModelError(f"{what}: tensor {out.tensor} is not a layer's output (1..{n_tensors - 1})")
            used[out.tensor] = True
            if out.dtype not in OUTPUT_DTYPES:
                raise FrozenModelError(f"{what}: dtype must be one of {OUTPUT_DTYPES}, got {out.dtype!r}")
            if math.prod(out.shape) != math.prod(self.tensor_shape(out.tensor)):
                raise FrozenModelError(f"{what}: shape {out.shape} does not match tensor {out.tensor}'s "
                                       f"shape {self.tensor_shape(out.tensor)}")
            if self.tensor_dtype(out.tensor) != "f32":
                raise FrozenModelError(f"{what}: tensor {out.tensor} is int8; outputs must be float32 "
                                       f"(end int8 models with DEQUANTIZE)")
            if out.dtype != "float32":
                self._check_int_output(what, out.tensor, out.dtype)
        for i in range(len(self.layers)):
            if not used[i + 1]:
                raise FrozenModelError(f"layer {i} ({self.layers[i].op.name}): its output (tensor {i + 1}) "
                                       f"is never used")

    def _check_int_output(self, what: str, t: int, dtype: str) -> None:
        """An integer output holds float32 values converted at the end, so they must be exact
        integers of dtype's range by construction: an ARGMAX index (int64), a DEQUANTIZE with
        x_scale 1 and x_zp 0 / -128 (int8 / uint8: the codes), integer sums (int32: see
        _check_integer_sums), a layer whose activation is WRAP onto the dtype's range (int8 /
        uint8 / int32 arithmetic and casts: WRAP's results are integers of that range), or a
        CONST whose values are integers in range (int64 / int32: magnitude <= 2^24, exact in
        float32)."""
        while t > 0 and self.layers[t - 1].op == Op.RESHAPE:
            t = self.layers[t - 1].inputs[0]
        op = None if t == 0 else self.layers[t - 1].op
        if op == Op.ARGMAX and dtype == "int64":
            return
        if op == Op.DEQUANTIZE and dtype in _DEQUANTIZE_ZP:
            a = self.layers[t - 1].attrs
            if float(a.get("x_scale", 0.0)) == 1.0 and a.get("x_zp") == _DEQUANTIZE_ZP[dtype]:
                return
            raise FrozenModelError(f"{what}: dtype {dtype} from a DEQUANTIZE needs x_scale 1 and x_zp "
                                   f"{_DEQUANTIZE_ZP[dtype]}, got {a.get('x_scale')} and {a.get('x_zp')}")
        layer = None if t == 0 else self.layers[t - 1]
        if layer is not None and op in ACT_OPS and layer.act == Act.WRAP and dtype in WRAP_RANGES:
            if layer.act_params() == WRAP_RANGES[dtype]:
                return
            raise FrozenModelError(f"{what}: dtype {dtype} from a WRAP activation needs (alpha, beta) = "
                                   f"{WRAP_RANGES[dtype]} (the dtype's range), got {layer.act_params()}")
        if op in (Op.DENSE, Op.CONV) and dtype == "int32":
            self._check_integer_sums(what, t)
            return
        if op == Op.CONST:
            layer = self.layers[t - 1]
            ref = layer.tensors.get("value")
            if ref is None or ref.buffer != "f32":  # the planner names the missing tensor
                return
            v = self.tensor(layer, "value").astype(np.float64)
            lo, hi = _INT_RANGE[dtype]
            if not np.all(np.isfinite(v)) or np.any(v != np.round(v)) or np.any(v < lo) or np.any(v > hi):
                bound = "of magnitude <= 2^24 (exact in float32)" if dtype == "int64" else f"in [{lo}, {hi}]"
                raise FrozenModelError(f"{what}: dtype {dtype} from a CONST needs integer values {bound}; "
                                       f"tensor {t} holds others")
            return
        needs = {"int64": "an ARGMAX or CONST result",
                 "int32": "an integer DENSE / CONV, WRAP (int32 range) or CONST result",
                 "int8": "a DEQUANTIZE (x_scale 1, x_zp 0), WRAP (int8 range) or CONST result",
                 "uint8": "a DEQUANTIZE (x_scale 1, x_zp -128), WRAP (uint8 range) or CONST result"}[dtype]
        raise FrozenModelError(f"{what}: dtype {dtype} needs {needs}, but tensor {t} "
                               f"comes from {'the input' if op is None else op.name}")

    def _check_integer_sums(self, what: str, t: int) -> None:
        """int32 from a DENSE / CONV (ONNX MatMulInteger / ConvInteger): no activation, integer
        weights and bias, its input the integers x - x_zp of a DEQUANTIZE with x_scale 1 (or the
        codes minus zero point of a DYNQUANT mode 0, |q| <= 255), and every output's worst case
        sum |W| * max |x - x_zp| + |b| below 2^24, so float32 products and sums in any order are
        exact."""
        layer = self.layers[t - 1]
        src = layer.inputs[0]
        while src > 0 and self.layers[src - 1].op == Op.RESHAPE:
            src = self.layers[src - 1].inputs[0]
        dq = self.layers[src - 1] if src > 0 else None
        fail = f"{what}: dtype int32 from {layer.op.name} (tensor {t}) needs "
        if layer.act != Act.IDENTITY:
            raise FrozenModelError(fail + f"no activation, got {layer.act.name}")
        dynamic = dq is not None and dq.op == Op.DYNQUANT and dq.attrs.get("mode", 0) == 0
        if not dynamic and (dq is None or dq.op != Op.DEQUANTIZE or float(dq.attrs.get("x_scale", 0.0)) != 1.0):
            raise FrozenModelError(fail + "its input from a DEQUANTIZE with x_scale 1 or a DYNQUANT mode 0 "
                                          "(integers)")
        if {"W", "b"} - set(layer.tensors) or any(layer.tensors[k].buffer != "f32" for k in ("W", "b")):
            return  # the planner names the missing or misplaced tensor
        W = self.tensor(layer, "W").astype(np.float64)
        b = self.tensor(layer, "b").astype(np.float64).reshape(-1)
        if not (np.all(np.isfinite(W)) and np.all(W == np.round(W)) and np.all(np.isfinite(b))
                and np.all(b == np.round(b))):
            raise FrozenModelError(fail + "integer weights and bias")
        zp = 0 if dynamic else int(dq.attrs.get("x_zp", 0))
        span = 255 if dynamic else max(127 - zp, zp + 128)  # max |x - x_zp| over the codes
        per_out = np.abs(W).sum(axis=0) if layer.op == Op.DENSE else np.abs(W).reshape(W.shape[0], -1).sum(axis=1)
        if per_out.size != b.size or (per_out.size and float((per_out * span + np.abs(b)).max()) >= F32_EXACT_INT):
            raise FrozenModelError(fail + "integer sums below 2^24 in magnitude (exact in float32)")

    def source_op(self, t: int):
        """The op that computed tensor t's values, looking through RESHAPE (None for the input)."""
        while t > 0 and self.layers[t - 1].op == Op.RESHAPE:
            t = self.layers[t - 1].inputs[0]
        return None if t == 0 else self.layers[t - 1].op

    # -- summary ------------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        total = 0
        for layer in self.layers:
            for tname, ref in layer.tensors.items():
                if tname in ("W", "b", "s", "t"):
                    total += ref.size
        return total

    @property
    def weight_bytes(self) -> int:
        """Bytes of all tensors the layers reference (weights, biases, scales, tables)."""
        return sum(ref.size * BUFFER_DTYPES[ref.buffer].itemsize
                   for layer in self.layers for ref in layer.tensors.values())

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def is_quantized(self) -> bool:
        return any(layer.op in INT8_OUTPUT_OPS for layer in self.layers)

    @property
    def input_size(self) -> int:
        return int(math.prod(self.input_shape))

    @property
    def output_size(self) -> int:
        """Elements of the (first) output per sample."""
        return int(math.prod(self.output_shape))

    def summary(self) -> str:
        outs = ", ".join(f"{o.shape} ({o.dtype})" for o in self.outputs)
        lines = [f"FrozenModel  input {self.input_shape} -> output {outs}"]
        chain = self.is_chain
        lines.append(f"{'#':>3} {'op':<12} {'act':<12} {'in':>12} {'out':>12} {'params':>9} {'MACs':>9}"
                     + ("" if chain else "  reads"))
        for i, layer in enumerate(self.layers):
            params = sum(r.size for n, r in layer.tensors.items() if n in ("W", "b", "s", "t"))
            lines.append(f"{i:>3} {layer.op.name:<12} {layer.act.name:<12} {str(layer.in_shape):>12} "
                         f"{str(layer.out_shape):>12} {params:>9} {layer.macs:>9}"
                         + ("" if chain else "  " + ",".join(f"t{t}" for t in layer.inputs)))
        lines.append(f"params {self.n_params}, weight bytes {self.weight_bytes}, MACs {self.macs}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        ops = ",".join(l.op.name for l in self.layers)
        return f"FrozenModel(input={self.input_shape}, output={self.output_shape}, layers=[{ops}])"


class BufferBuilder:
    """Accumulates tensors into flat per-dtype buffers; used by freeze and importers.

    builder = BufferBuilder(); ref = builder.add("W", W.astype(np.float32)); ...
    buffers = builder.finish()
    Each tensor starts at an element offset that is a multiple of 16 (64 bytes for f32/i32,
    16 bytes for i8), so a kernel's rows of a small model start aligned.
    """

    ALIGN_ELEMS = 16

    def __init__(self):
        self._chunks: dict[str, list[np.ndarray]] = {k: [] for k in BUFFER_DTYPES}
        self._sizes: dict[str, int] = {k: 0 for k in BUFFER_DTYPES}

    def add(self, array: np.ndarray, buffer: str | None = None) -> TensorRef:
        array = np.asarray(array)
        if buffer is None:
            buffer = {np.dtype("float32"): "f32", np.dtype("int8"): "i8", np.dtype("int32"): "i32"}.get(array.dtype)
            if buffer is None:
                raise FrozenModelError(f"cannot store a {array.dtype} tensor; use float32, int8 or int32")
        dt = BUFFER_DTYPES[buffer]
        pad = (-self._sizes[buffer]) % self.ALIGN_ELEMS
        if pad:
            self._chunks[buffer].append(np.zeros(pad, dtype=dt))
            self._sizes[buffer] += pad
        ref = TensorRef(buffer, self._sizes[buffer], tuple(int(d) for d in array.shape))
        self._chunks[buffer].append(np.ascontiguousarray(array, dtype=dt).reshape(-1))
        self._sizes[buffer] += array.size
        return ref

    def finish(self) -> dict[str, np.ndarray]:
        return {k: (np.concatenate(v) if v else np.zeros(0, dtype=BUFFER_DTYPES[k])).astype(BUFFER_DTYPES[k])
                for k, v in self._chunks.items()}
