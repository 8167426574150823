"""ONNX -> FrozenModel: translate a graph into rtinfer's op set, folding everything constant.

    frozen = from_onnx("model.onnx")                 # or a ModelProto, or the file's bytes
    frozen = from_onnx("clf.onnx", output="probabilities")

Contract
- The graph has one runtime input whose first dimension is the batch (symbolic, unknown or
  fixed); the other dimensions must be fixed and become ``FrozenModel.input_shape``. Other graph
  inputs must have initializers. A float32 input is used as is; a uint8/int8 input becomes a
  QUANTIZE with scale 1 (uint8 values map exactly to int8 as q - 128), so X is passed as floats.
- One output is translated: ``output`` by name, else the only output, else the first float
  output whose name contains "prob", else the first float output. Nodes that do not feed it are
  pruned (e.g. scikit-learn's label branch).
- Every node whose inputs are all constants is evaluated once with ``onnx.reference`` (NumPy),
  whatever its op type. ``SUPPORTED_OPS`` lists the ops that may act on the runtime tensor.
  Each of them must have exactly one runtime input, except the elementwise binary ops, Concat,
  MatMul and Gemm (MATMUL, or a BINARY add of a runtime Gemm bias).
- Outputs: float32; int64 (ArgMax, or an integer constant); int32 (MatMulInteger /
  ConvInteger sums); int8 / uint8 codes (a DEQUANTIZE with scale 1 and zero point 0 / -128 is
  appended). An output that is a constant (Constant,
  Shape of a fixed-size tensor) becomes a CONST layer, only without a batch axis; a graph
  without inputs gets a placeholder input of shape ().
- Importers translate, never compute at run time: Gemm alpha/beta/transB, Transpose and
  BatchNormalization on constants, Add/Sub/Mul/Div by constants (into the preceding DENSE when
  possible, else AFFINE) are folded into weights. A runtime Reshape/Flatten/Squeeze/Unsqueeze
  moves no data (the arena is flat), so it only changes the tracked shape.
- Quantization: DequantizeLinear -> Gemm/MatMul (per-output-channel int8 weights, int32 bias at
  x_scale * w_scale) -> [Relu | Clip] -> QuantizeLinear becomes QDENSE; DequantizeLinear ->
  activation -> QuantizeLinear becomes QLUT; QLinearMatMul becomes QDENSE with a zero bias (when
  its weights minus zero point fit int8 and the input is (N, K); else DEQUANTIZE + DENSE on exact
  integer sums + BINARY MUL by the multiplier + QUANTIZE);
  MatMulInteger / ConvInteger become DEQUANTIZE (scale 1) + DENSE / CONV with float weights
  w - w_zp (exact integer sums);
  Cast(int32) -> Add(const) -> Gather(table) on a quantized tensor becomes QLUT.
  DynamicQuantizeLinear (onnxruntime's quantize_dynamic) becomes DYNQUANT, computed per
  sample: ONNX takes the range over the whole tensor (the batch too), so rtinfer equals ONNX at
  a batch of one, and in a batch each sample keeps its own scale. Its y - y_zero_point feeds
  MatMulInteger / ConvInteger as DENSE / CONV with float weights w - w_zp, and its y_scale
  (one value per sample) is multiplied with constants and applied by Mul (AFFINE, DENSE,
  BINARY); any other reader of its outputs is refused. Integer arithmetic (Add/Sub/Mul/Div/
  Max/Min/Clip/Relu/Abs/Neg on int8/uint8, Cast to int8/uint8/int32) runs on the exact values in
  float32 and ends in a WRAP activation (two's complement wrap, Div toward zero). Other Q/DQ
  pairs on activations stay QUANTIZE / DEQUANTIZE (fake quantization). uint8 tensors map to
  int8 exactly (q - 128, zero point - 128). Per-axis and blocked Q/DQ of a runtime tensor are
  rewritten exactly (bit for bit with ONNX): DequantizeLinear as DEQUANTIZE (scale 1) -> AFFINE
  (- zp) -> AFFINE (* scale); QuantizeLinear as BINARY DIV by a CONST scale -> [AFFINEs that
  round half to even, then add a per-channel zero point] -> QUANTIZE (scale 1). These AFFINEs
  never fuse. A per-axis scale along the batch axis, or a blocked scale with a batch axis (its
  first dimension fixes N), needs the graph imported without a batch axis.
- Anything else raises ``OnnxImportError`` (a ValueError) naming the op, the node and the
  supported list, or the malformed part of the model. Declared tensor sizes are checked from
  the dims before any allocation; external data is read only from inside the model's folder.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import replace

import numpy as np

from rtinfer import quant
from rtinfer.frozen import FrozenModel
from rtinfer.ops import ACT_DEFAULTS, WRAP_RANGES, Act, Bin, Op

from . import onnx_gather, onnx_ir, onnx_norm, onnx_qop, onnx_tables
from .onnx_common import MAX_EXPANDED_ELEMENTS, MAX_TENSOR_BYTES, MAX_TENSOR_ELEMENTS
from .onnx_ir import AUTO, FLOAT, INT8, INT32, INT64, UINT8, Dyn, IrGraph, OnnxImportError, Proto, qclamp

_ACT_OPS = {
    "Relu": Act.RELU, "LeakyRelu": Act.LEAKY_RELU, "Sigmoid": Act.SIGMOID, "Tanh": Act.TANH,
    "Softplus": Act.SOFTPLUS, "Elu": Act.ELU, "Selu": Act.SELU, "HardSigmoid": Act.HARD_SIGMOID,
    "Gelu": Act.GELU, "Clip": Act.CLIP, "PRelu": Act.LEAKY_RELU, "HardSwish": Act.HARD_SWISH,
    "Mish": Act.MISH, "Erf": Act.ERF, "Exp": Act.EXP, "Abs": Act.ABS,
}
_SHAPE_OPS = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Transpose"}
_BINARY_OPS = {"Add": Bin.ADD, "Sub": Bin.SUB, "Mul": Bin.MUL, "Div": Bin.DIV, "Max": Bin.MAX, "Min": Bin.MIN}
_GRAPH_OPS = {"Concat", "Split", "Slice"}
_REDUCE_OPS = {"ReduceMean", "ReduceMax", "ReduceSum"}
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearMatMul", "MatMulInteger", "Gather",
              "DynamicQuantizeLinear"}
_OTHER_OPS = {"Gemm", "MatMul", "Softmax", "LogSoftmax", "ArgMax", "BatchNormalization", "Cast", "Shape",
              "Neg", "Constant"}
_ML_OPS = {"LinearClassifier", "LinearRegressor", "Normalizer", "Scaler", "ZipMap"}  # domain ai.onnx.ml
_CONV_OPS = {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "QLinearConv", "ConvTranspose",
             "ConvInteger"}  # export.onnx_conv
_FAMILY_OPS = {op: fam for fam in (onnx_gather, onnx_norm) for op in fam.OPS}
_QOPERATOR_OPS = set(onnx_qop.OPS)  # com.microsoft, rewritten into QDQ form before translation
# ONNX ops accepted on runtime tensors only inside a recognized activation (export.onnx_ir)
_PSEUDO_OPS = set(onnx_ir.PSEUDO_OPS)
# ops that may read more than one runtime tensor
_MULTI_OPS = set(_BINARY_OPS) | {"Concat", "MatMul", "Gemm"} | _PSEUDO_OPS

# The importer's op table: ops that may act on the runtime tensor (constant-only nodes of any
# standard op are folded as well).
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(set(_ACT_OPS) | _SHAPE_OPS | set(_BINARY_OPS) | _GRAPH_OPS | _REDUCE_OPS
                                              | _QUANT_OPS
                                              | _OTHER_OPS | _ML_OPS | _CONV_OPS | set(_FAMILY_OPS)
                                              | _QOPERATOR_OPS))

# Shape(x) of the runtime tensor with a dynamic batch: the batch entry holds this marker. Such
# shape constants may only be moved around (Gather, Concat, Slice, ...) until they reach a
# Reshape, where the marker in position 0 means "the batch dimension" (PyTorch's
# x.view(x.size(0), -1) exports as Shape -> Gather -> Unsqueeze -> Concat -> Reshape).
_BATCH_MARK = -(2 ** 30)
_SHAPE_SAFE_OPS = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Identity", "Reshape"}

# integer arithmetic: int8 / uint8 tensors are carried as their exact values in float32 and every
# result wraps around like two's complement integers (a WRAP activation onto the type's range);
# a Cast from float32 to an integer type truncates toward zero and wraps the same way
_INT_ARITH_TYPES = (INT8, UINT8)
_INT_NAMES = {INT8: "int8", UINT8: "uint8", INT32: "int32"}


def _wrap(onnx_type) -> dict:
    """The attrs of a WRAP onto an integer ONNX type's range (rtinfer.ops.WRAP_RANGES)."""
    lo, m = WRAP_RANGES[_INT_NAMES[onnx_type]]
    return {"alpha": lo, "beta": m}

# constant nodes whose outputs hold no more elements than their inputs together (the fold-size
# check after evaluation still applies)
_NON_EXPANDING_OPS = {"Slice", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Identity", "Cast", "Transpose",
                      "Concat", "Shape", "Size"}

_RANDOM_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
               "Bernoulli"}


def _type_name(code: int) -> str:
    """An ONNX element type code by name: 7 -> "int64"."""
    try:
        import onnx
        return onnx.TensorProto.DataType.Name(int(code)).lower()
    except Exception:  # an unknown code
        return f"ONNX type {code}"


def _prod(shape) -> int:
    return int(math.prod(shape))


# ---------------------------------------------------------------------------------------------
# loading and safety checks


def _load_model(src):
    import onnx
    base_dir = None
    if isinstance(src, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(src)
        return model, None
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):  # /dev/zero would fill memory, a FIFO block
                raise OnnxImportError(f"cannot read ONNX file {path!r}: not a regular file")
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise OnnxImportError(f"cannot read ONNX file {path!r}: {exc}") from exc
        base_dir = os.path.dirname(os.path.abspath(path))
    else:
        raise OnnxImportError(f"from_onnx takes a path, bytes or onnx.ModelProto, got {type(src).__name__}")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf DecodeError and friends
        raise OnnxImportError(f"not a valid ONNX model: {exc}") from exc
    if not model.HasField("graph"):
        raise OnnxImportError("not a valid ONNX model: it has no graph")
    return model, base_dir


def _check_declared_size(tensor, where: str) -> None:
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise OnnxImportError(f"{where}: tensor {tensor.name!r} has a negative dimension {dims}")
    n = math.prod(dims)
    if n > MAX_TENSOR_ELEMENTS:
        raise OnnxImportError(f"{where}: tensor {tensor.name!r} declares {n} elements (dims {dims}); "
                              f"the limit is {MAX_TENSOR_ELEMENTS}")
    itemsize = _ITEMSIZE.get(int(tensor.data_type), 8)
    if n * itemsize > MAX_TENSOR_BYTES:
        raise OnnxImportError(f"{where}: tensor {tensor.name!r} declares {n} elements of {itemsize} bytes "
                              f"({n * itemsize} bytes, dims {dims}); the limit is {MAX_TENSOR_BYTES} bytes")


# bytes per element of the ONNX element types (strings and unknown codes count 8)
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
             17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1, 23: 1, 24: 1, 25: 1, 26: 1}


def _read_external(tensor, base_dir, where: str):
    """Copy of ``tensor`` with its external data read into raw_data, from inside base_dir only."""
    import onnx
    from onnx import helper
    info = {e.key: e.value for e in tensor.external_data}
    loc = info.get("location", "")
    if base_dir is None:
        raise OnnxImportError(f"{where}: tensor {tensor.name!r} uses external data, which needs the model's path")
    parts = loc.replace("\\", "/").split("/")
    if not loc or os.path.isabs(loc) or loc.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise OnnxImportError(f"{where}: tensor {tensor.name!r} external data location {loc!r} must be a "
                              f"relative path inside the model's folder")
    root = os.path.realpath(base_dir)
    full = os.path.realpath(os.path.join(root, loc))
    if os.path.commonpath([root, full]) != root:
        raise OnnxImportError(f"{where}: tensor {tensor.name!r} external data {loc!r} resolves outside the model's folder")
    np_dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    need = math.prod(tensor.dims) * np.dtype(np_dtype).itemsize
    offset = int(info.get("offset", 0) or 0)
    length = int(info.get("length", need) or need)
    if length != need:
        raise OnnxImportError(f"{where}: tensor {tensor.name!r} external data length {length} != {need} bytes for dims "
                              f"{list(tensor.dims)}")
    try:
        if not stat.S_ISREG(os.stat(full).st_mode):
            raise OnnxImportError(f"{where}: external data {loc!r} of tensor {tensor.name!r} is not a regular file")
        with open(full, "rb") as f:
            f.seek(offset)
            raw = f.read(length)
    except OSError as exc:
        raise OnnxImportError(f"{where}: cannot read external data {loc!r} of tensor {tensor.name!r}: {exc}") from exc
    if len(raw) != length:
        raise OnnxImportError(f"{where}: external data {loc!r} of tensor {tensor.name!r} is truncated")
    copy = onnx.TensorProto()
    copy.CopyFrom(tensor)
    del copy.external_data[:]
    copy.data_location = onnx.TensorProto.DEFAULT
    copy.raw_data = raw
    return copy


def _to_array(tensor, base_dir, where: str) -> np.ndarray:
    import onnx
    from onnx import numpy_helper
    _check_declared_size(tensor, where)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        tensor = _read_external(tensor, base_dir, where)
    elif tensor.HasField("raw_data"):
        try:
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        except Exception:
            itemsize = 0
        if itemsize and tensor.data_type not in (onnx.TensorProto.STRING,) and \
                len(tensor.raw_data) != math.prod(tensor.dims) * itemsize and tensor.data_type not in (21, 22, 23, 25, 26):
            raise OnnxImportError(f"{where}: tensor {tensor.name!r} holds {len(tensor.raw_data)} bytes, its dims "
                                  f"{list(tensor.dims)} need {math.prod(tensor.dims) * itemsize}")
    try:
        return np.array(numpy_helper.to_array(tensor))
    except Exception as exc:
        raise OnnxImportError(f"{where}: cannot read tensor {tensor.name!r}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# the importer


class _Out:
    """A graph output to translate: the tensor computed (name) and the output it stands for."""

    def __init__(self, name, shown):
        self.name, self.shown = name, shown


class BatchAxisError(OnnxImportError):
    """An op acts across the first (batch) axis: the graph may still import without a batch axis."""


class _Importer:
    def __init__(self, model, base_dir, output, no_batch: bool = False):
        self.model = model
        # lead: 1 when the first dimension is the batch (sample shapes drop it), 0 for a graph
        # without a batch axis (the whole input tensor is one sample; sample shapes are full)
        self.lead = 0 if no_batch else 1
        self.graph = model.graph
        self.base_dir = base_dir
        self.output_request = output
        self.opset = 1
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = int(imp.version)
        self.consts: dict[str, np.ndarray] = {}
        self.prov: dict[str, tuple] = {}  # const name -> ("dq", q, scale, zp, axis)
        self.dyn: dict[str, Dyn] = {}
        # DynamicQuantizeLinear outputs (y, y_zero_point and their float Casts) -> their node's y
        self.dq_origin: dict[str, str] = {}
        self.g = IrGraph()
        self._node_start = 0     # len(self.g.protos) when the current node began
        self._node_src = None    # the source Proto of the current node's first runtime input
        self.batch: int | None = None
        # Folded constants stay alive for the whole import: their total is capped at
        # MAX_EXPANDED_ELEMENTS + 4 x the elements of the constants read from the file
        # (set at the first fold, see _check_fold_size).
        self.folded_elements = 0
        self.fold_budget: int | None = None
        self.batch_marked: set[str] = set()  # constants that hold _BATCH_MARK (see above)
        self.input_dtype = "float32"
        self.current = None  # the node being translated, for error messages

    # -- errors --------------------------------------------------------------------------------
    def unsupported(self, node, why: str = "") -> OnnxImportError:
        what = f"op {node.op_type!r}" + (f" (domain {node.domain!r})" if node.domain not in ("", "ai.onnx") else "")
        msg = f"unsupported {what} at node {node.name or '<unnamed>'!r}"
        if why:
            msg += f": {why}"
        return OnnxImportError(f"{msg}. Supported ops on the runtime tensor: {', '.join(SUPPORTED_OPS)}")

    def err(self, node, why: str) -> OnnxImportError:
        return OnnxImportError(f"node {node.name or '<unnamed>'!r} ({node.op_type}): {why}")

    def unusable(self, node, d) -> OnnxImportError:
        if d.offset == -1:
            return self.unsupported(node, "it reads the label output of a classifier whose classes are not 0..k-1; "
                                          "import the probabilities (from_onnx's default output) and map argmax to "
                                          "the model's classes_")
        return self.unsupported(node, "it reads a secondary output (mask / training statistics)")

    def batch_err(self, node, why: str) -> OnnxImportError:
        """The op acts across the batch axis (from_onnx then retries without one, if it can)."""
        e = self.unsupported(node, why)
        return BatchAxisError(str(e))

    def full(self, x) -> str:
        """x's ONNX shape for messages: (N, *sample) or the whole shape without a batch axis."""
        return f"(N, *{x.shape})" if self.lead else str(tuple(x.shape))

    def rank(self, x) -> int:
        """The ONNX rank of runtime tensor x (its sample shape plus the batch axis, if any)."""
        return len(x.shape) + self.lead

    def sample_axis(self, node, axis: int, rank: int, what: str) -> int:
        """ONNX axis -> axis of the sample shape; the batch axis is refused (BatchAxisError)."""
        axis = self._axis(node, axis, rank)
        if axis < self.lead:
            raise self.batch_err(node, f"{what} the batch axis (axis 0)")
        return axis - self.lead

    # -- graph structure -----------------------------------------------------------------------
    def _choose_outputs(self) -> list:
        outs = list(self.graph.output)
        if not outs:
            raise OnnxImportError("the graph declares no output")
        names = [o.name for o in outs]
        req = self.output_request
        if req is not None:
            wanted = [req] if isinstance(req, str) else list(req)
            if not wanted:
                raise OnnxImportError("output= names no graph output")
            chosen = []
            for w in wanted:
                match = [o for o in outs if o.name == w]
                if not match:
                    raise OnnxImportError(f"no graph output named {w!r}; outputs are {names}")
                chosen.append(match[0])
            return chosen
        if len(outs) == 1:
            return outs
        zipped = [o for o in outs if o.name in self._zipmap_inputs()]
        if zipped:  # scikit-learn's probabilities (ZipMap reads them: see _zipmap_inputs)
            return zipped[:1]
        floats = [o for o in outs if o.type.tensor_type.elem_type == FLOAT]
        for o in floats:
            if "prob" in o.name.lower():
                return [o]
        if floats:
            return [floats[0]]
        return [outs[0]]

    def _zipmap_inputs(self) -> dict:
        """{graph output name: the float tensor it maps} for outputs written by ai.onnx.ml ZipMap
        (skl2onnx's default: a sequence of {class: probability} maps, which rtinfer returns as
        the probability matrix, columns in the order of the classes)."""
        return {n.output[0]: n.input[0] for n in self.graph.node if n.op_type == "ZipMap" and n.output and n.input}

    def _prune_and_sort(self, out_names, init_names, input_names):
        producer = {}
        for node in self.graph.node:
            for o in node.output:
                if o:
                    if o in producer:
                        raise OnnxImportError(f"tensor {o!r} is written by two nodes ({producer[o].name or producer[o].op_type!r} "
                                              f"and {node.name or node.op_type!r}); ONNX graphs are single-assignment")
                    producer[o] = node
        needed, stack, seen = [], list(out_names), set()
        needed_ids = set()
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            node = producer.get(name)
            if node is None:
                if name not in init_names and name not in input_names:
                    raise OnnxImportError(f"tensor {name!r} is undefined: no node, initializer or graph input produces it")
                continue
            if id(node) not in needed_ids:
                needed_ids.add(id(node))
                needed.append(node)
                for i in node.input:
                    if not i:
                        continue
                    if i not in producer and i not in init_names and i not in input_names:
                        raise OnnxImportError(f"node {node.name or '<unnamed>'!r} ({node.op_type}) reads input {i!r}, "
                                              f"which is undefined (no node, initializer or graph input produces it)")
                    stack.append(i)
        # Kahn's algorithm over the needed nodes, in file order where free: the ready node
        # earliest in the file goes next (a heap), O(nodes + edges) even for a file stored in
        # reverse order (repeated passes were quadratic: 8,000 reversed nodes took 36 s).
        import heapq
        order = [n for n in self.graph.node if id(n) in needed_ids]
        done = set(init_names) | set(input_names)
        missing, waiting, ready = [], {}, []
        for k, node in enumerate(order):
            need = {i for i in node.input if i and i not in done}
            missing.append(len(need))
            for name in need:
                waiting.setdefault(name, []).append(k)
            if not need:
                ready.append(k)
        heapq.heapify(ready)
        result = []
        while ready:
            k = heapq.heappop(ready)
            result.append(order[k])
            for o in order[k].output:
                if o and o not in done:
                    done.add(o)
                    for j in waiting.pop(o, ()):
                        missing[j] -= 1
                        if missing[j] == 0:
                            heapq.heappush(ready, j)
        if len(result) < len(order):
            stuck = [order[k] for k in range(len(order)) if missing[k]]
            names = ", ".join(repr(n.name or n.op_type) for n in stuck[:5])
            raise OnnxImportError(f"the graph has a cycle through nodes {names}")
        return result

    # -- main ----------------------------------------------------------------------------------
    def run(self) -> FrozenModel:
        g = self.graph
        for t in g.initializer:
            _check_declared_size(t, "initializer")
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            dims = vi.type.tensor_type.shape.dim
            known = [d.dim_value for d in dims if d.HasField("dim_value")]
            if known and math.prod(known) > MAX_TENSOR_ELEMENTS:
                raise OnnxImportError(f"tensor {vi.name!r} declares {math.prod(known)} elements "
                                      f"(dims {known}); the limit is {MAX_TENSOR_ELEMENTS}")
        init_by_name = {t.name: t for t in g.initializer}
        input_names = [i.name for i in g.input]
        outs = self._choose_outputs()
        zm = self._zipmap_inputs()
        outs = [_Out(zm[o.name], o.name) if o.name in zm else _Out(o.name, o.name) for o in outs]
        nodes = self._prune_and_sort([o.name for o in outs], set(init_by_name), set(input_names))
        nodes = self._rewrite(nodes, init_by_name, [o.name for o in outs])

        used = {i for n in nodes for i in n.input if i} | {o.name for o in outs}
        for name in used:
            if name in init_by_name:
                self.consts[name] = _to_array(init_by_name[name], self.base_dir, "initializer")
        declared = [i for i in g.input if i.name not in init_by_name]
        runtime_inputs = [i for i in declared if i.name in used] or declared[:1]  # unread: still the input
        if not runtime_inputs:
            # no graph input, only constants (an ONNX Constant): a model without a batch axis whose
            # input is a placeholder scalar, never read (predict takes a float32 array of shape ())
            self.lead, self.batch, self.input_shape = 0, None, ()
        elif len(runtime_inputs) > 1:
            raise OnnxImportError(f"the graph needs {len(runtime_inputs)} runtime inputs "
                                  f"({[i.name for i in runtime_inputs]}); rtinfer models take one "
                                  f"(give the others initializers)")
        else:
            self._add_input(runtime_inputs[0])

        for node in nodes:
            self.current = node
            self._node(node)
        self.current = None

        results = []
        for out in outs:
            if out.name in self.consts:
                results.append(self._const_output(out.name))
                continue
            d = self.dyn[out.name]
            if d.kind == "index":
                dtype = "int64"
            elif d.kind == "f32":
                dtype = "float32"
            elif d.kind == "int":  # exact integer values (sums of MatMulInteger / ConvInteger, int arithmetic)
                dtype = _INT_NAMES[d.onnx_type]
                src = self.src(d)
                sums = d.onnx_type == INT32 and src is not None and src.op in (Op.DENSE, Op.CONV) \
                    and src.act == Act.IDENTITY
                if not sums and not _wraps_to(src, d.onnx_type):  # e.g. a Clip: values in range, made provable
                    p = self.g.add(Proto(Op.ACT, d.shape, d.shape, act=Act.WRAP, attrs=_wrap(d.onnx_type),
                                         name=f"{out.name}.wrap", inputs=[src], in_shapes=[d.shape]))
                    d = replace(d, src=p)
            elif d.kind in ("dq8", "dscale", "dzp", "dq8f", "dzpf"):
                raise OnnxImportError(f"output {out.name!r} is an output of DynamicQuantizeLinear; rtinfer computes "
                                      f"those per sample only to feed MatMulInteger / ConvInteger and Mul "
                                      f"(onnxruntime's quantize_dynamic), not as model outputs")
            elif d.kind == "q8" and d.onnx_type in (INT8, UINT8):
                # the codes themselves: int8 codes q (uint8 values are held as q - 128) -> q - zp
                dtype = "int8" if d.onnx_type == INT8 else "uint8"
                p = self.g.add(Proto(Op.DEQUANTIZE, d.shape, d.shape, name=f"{out.name}.codes", inputs=[self.src(d)],
                                     in_shapes=[d.shape],
                                     attrs={"x_scale": 1.0, "x_zp": 0 if d.onnx_type == INT8 else -128}))
                d = replace(d, src=p)
            else:
                raise OnnxImportError(f"output {out.name!r} is an integer/quantized tensor "
                                      f"({_type_name(d.onnx_type)}); rtinfer models end in float32, int64, int32, "
                                      f"int8 or uint8 "
                                      f"(end the graph with DequantizeLinear)")
            results.append((d.src, d.shape, dtype))
        self.g.outputs = [src for src, _, _ in results]
        onnx_ir.prune(self.g)
        onnx_ir.recognize_activations(self.g)
        self._fuse()
        results = [(src, shape, dtype) for src, (_, shape, dtype) in zip(self.g.outputs, results)]
        # strings become .rtm strings, which hold no NUL: drop any (names and notes only)
        meta = {p.key.replace("\x00", ""): p.value.replace("\x00", "") for p in self.model.metadata_props}
        meta.setdefault("onnx.producer", f"{self.model.producer_name} {self.model.producer_version}".strip()
                        .replace("\x00", ""))
        meta.setdefault("onnx.output", ",".join(o.shown for o in outs))
        if self.input_dtype != "float32":  # fed as float values: X.astype(np.float32)
            meta.setdefault("onnx.input_dtype", self.input_dtype)
        if not self.lead:  # the whole input tensor is one sample (rtinfer.runtime reads this key)
            meta["batch"] = "none"
        else:
            meta.pop("batch", None)
        return onnx_ir.build(self.g, self.input_shape, results, meta)

    def _const_output(self, name):
        """A graph output that does not depend on the input's values (Constant, Shape of a
        fixed-size tensor): a CONST layer reading the input tensor. Only without a batch axis:
        a constant has none, so with one the import is retried without it (from_onnx)."""
        value = self.consts[name]
        if self.lead:
            raise BatchAxisError(f"output {name!r} is a constant (it does not depend on the input's values) and has "
                                 f"no batch axis; rtinfer imports it only from a graph whose input shape is fully "
                                 f"fixed (the whole input is then one sample)")
        if value.size == 0:
            raise OnnxImportError(f"output {name!r} is an empty constant (shape {tuple(value.shape)}); rtinfer "
                                  f"tensors have at least one element")
        dtype = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64", np.dtype(np.int32): "int32",
                 np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8"}.get(value.dtype)
        if dtype is None:
            raise OnnxImportError(f"output {name!r} is a constant of type {value.dtype}; rtinfer models end in "
                                  f"float32, int64, int32, int8 or uint8")
        if dtype in ("int64", "int32") and np.any(np.abs(value.astype(np.int64)) > 1 << 24):
            raise OnnxImportError(f"output {name!r} is an {dtype} constant with values beyond 2^24; rtinfer "
                                  f"carries integer outputs as float32, exact up to 2^24")
        p = self.const_layer(name, value)
        return p, tuple(value.shape), dtype

    def _rewrite(self, nodes, init_by_name, out_names):
        """Patterns replaced by one node before translation (a decomposed LayerNormalization);
        then the nodes no output needs any more are dropped."""
        from onnx import helper
        consts = {n.output[0]: n for n in nodes if n.op_type == "Constant" and n.output}

        def const_value(name):
            if name in init_by_name:
                t = init_by_name[name]
                return _to_array(t, self.base_dir, "initializer") if math.prod(t.dims) <= 1 << 16 else None
            c = consts.get(name)
            if c is not None:
                for at in c.attribute:
                    if at.name in ("value", "value_float", "value_floats", "value_int", "value_ints"):
                        v = helper.get_attribute_value(at)
                        return _to_array(v, self.base_dir, "constant") if at.name == "value" else np.asarray(v)
            return None
        try:
            new = onnx_qop.rewrite_qoperator(nodes, const_value, self.attrs)
        except onnx_qop.QopError as exc:
            raise OnnxImportError(f"unsupported com.microsoft node: {exc}") from None
        new = onnx_norm.rewrite_layernorm(new, const_value, self.attrs)
        if len(new) == len(nodes) and all(a is b for a, b in zip(new, nodes)):
            return nodes
        self._rewritten = True
        need, keep = set(out_names), []
        for n in reversed(new):
            if any(o in need for o in n.output if o):
                keep.append(n)
                need.update(i for i in n.input if i)
        return keep[::-1]

    def _add_input(self, vi):
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise OnnxImportError(f"graph input {vi.name!r} is not a tensor")
        if not tt.HasField("shape"):
            raise OnnxImportError(f"graph input {vi.name!r} has no declared shape; rtinfer needs fixed per-sample dims")
        dims = list(tt.shape.dim)
        if not dims and self.lead:
            raise OnnxImportError(f"graph input {vi.name!r} has rank 0; the first dimension must be the batch")
        sample = []
        for k, d in enumerate(dims[self.lead:], start=self.lead):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                label = d.dim_param or "unknown"
                raise OnnxImportError(f"graph input {vi.name!r} has a dynamic dimension {k} ({label!r}); "
                                      f"only the batch dimension (0) may be dynamic"
                                      + ("" if self.lead else " (and a graph without a batch axis has none)"))
            sample.append(int(d.dim_value))
        self.batch = int(dims[0].dim_value) if dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None
        if not self.lead:
            self.batch = None
        self.input_shape = tuple(sample)
        etype = tt.elem_type
        if etype == FLOAT:
            self.dyn[vi.name] = Dyn(self.input_shape, src=None)
        elif etype in (UINT8, INT8):
            zp = -128 if etype == UINT8 else 0
            s = self.input_shape
            p = self.g.add(Proto(Op.QUANTIZE, s, s, attrs={"y_scale": 1.0, "y_zp": zp}, name=vi.name,
                                 inputs=[None], in_shapes=[s]))
            self.dyn[vi.name] = Dyn(s, "q8", etype, src=p)
            self.input_dtype = "uint8" if etype == UINT8 else "int8"
        else:
            raise OnnxImportError(f"graph input {vi.name!r} has element type {etype}; rtinfer takes float32 "
                                  f"(or uint8/int8, fed as float values)")

    # -- node dispatch -------------------------------------------------------------------------
    def is_const(self, name):
        return (not name) or name in self.consts

    def const(self, node, idx, default=None):
        if idx >= len(node.input) or not node.input[idx]:
            return default
        name = node.input[idx]
        if name not in self.consts:
            raise self.err(node, f"input {idx} ({name!r}) must be a constant (an initializer)")
        return self.consts[name]

    def attrs(self, node) -> dict:
        from onnx import helper
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def _node(self, node):
        domain = node.domain
        if domain not in ("", "ai.onnx", "ai.onnx.ml"):
            raise self.unsupported(node, f"custom domain {domain!r}")
        if node.op_type == "Constant":
            self._constant(node)
            return
        if all(self.is_const(i) for i in node.input) and domain != "ai.onnx.ml":
            if node.op_type in _RANDOM_OPS:
                raise self.unsupported(node, "a random op cannot be folded into constant weights")
            marked = [i for i in node.input if i in self.batch_marked]
            if marked and node.op_type == "Expand" and node.input[0] not in self.batch_marked:
                self.dyn[node.output[0]] = self._expand_to_batch(node)
                return
            if marked and node.op_type not in _SHAPE_SAFE_OPS:
                raise self.unsupported(node, f"it computes with the dynamic batch size ({marked[0]!r} comes from "
                                             f"Shape of the runtime tensor)")
            self._fold(node)
            if marked:
                self.batch_marked.update(o for o in node.output if o)
            return
        dyn_idx = [k for k, i in enumerate(node.input) if i and i in self.dyn]
        op = node.op_type
        dyn_idx = self._dynamic_quant_inputs(node, dyn_idx)
        if len(dyn_idx) > 1 and op not in _MULTI_OPS:
            raise self.unsupported(node, "it takes more than one runtime tensor "
                                         f"({[node.input[k] for k in dyn_idx]}); rtinfer takes several runtime "
                                         f"tensors in {', '.join(sorted(_MULTI_OPS))}")
        ml = (op in _ML_OPS) == (domain == "ai.onnx.ml")
        if op == "ArrayFeatureExtractor":
            raise self.unsupported(node, "scikit-learn's label output maps class indices to classes_ with it; "
                                         "import the probabilities (from_onnx's default output) and take "
                                         "classes_[argmax]")
        if (op not in SUPPORTED_OPS and op not in _PSEUDO_OPS) or not ml:
            raise self.unsupported(node)
        k = dyn_idx[0]
        x = self.dyn[node.input[k]]
        self._node_start = len(self.g.protos)
        self._node_src = x.src
        if x.kind == "dscale" and op in ("Reshape", "Expand"):
            y = self._dscale_view(node, x)
        elif op in _ACT_OPS:
            y = self._activation(node, x, k)
        elif op in _BINARY_OPS:
            y = self._binary(node, x, k, dyn_idx)
        elif op in _PSEUDO_OPS:
            y = self._pseudo(node, dyn_idx)
        elif op in _SHAPE_OPS:
            y = self._shape_op(node, x, k)
        elif op in _REDUCE_OPS:
            y = self._reduce(node, x, k)
        elif op in _CONV_OPS:
            y = self._window(node, x, k)
        elif op in _FAMILY_OPS and not (op == "Gather" and k != 0):  # Gather(table, index): _op_Gather
            y = _FAMILY_OPS[op].translate(self, node, x, k)
        else:
            y = getattr(self, "_op_" + op)(node, x, k)
        if y is None:  # the op produced a constant (Shape)
            return
        outputs = y if isinstance(y, dict) else {node.output[0]: y}
        for name in node.output:
            if name:
                d = outputs.get(name, Dyn((), "unusable", src=None))
                if d.src is AUTO:
                    d = replace(d, src=self.src(d))
                self.dyn[name] = d

    def _expand_to_batch(self, node) -> Dyn:
        """Expand(constant, [N, ...]) with N read from the input's shape: the constant repeated for
        every sample, a CONST layer (what to_onnx writes for one, and PyTorch's expand)."""
        data = np.asarray(self.consts[node.input[0]])
        shape = np.asarray(self.consts[node.input[1]]).reshape(-1)
        if shape.size == 0 or shape[0] != _BATCH_MARK or np.any(shape[1:] == _BATCH_MARK) or \
                (data.ndim >= shape.size and data.shape[data.ndim - shape.size] != 1):
            raise self.unsupported(node, "it expands a constant along other than the batch axis by the dynamic "
                                         "batch size")
        if data.dtype not in (np.float32, np.int8, np.uint8) or data.size == 0:
            raise self.unsupported(node, f"an expanded constant of dtype {data.dtype} (float32, int8, uint8)")
        try:
            full = np.broadcast_shapes(data.shape, (1,) + tuple(int(d) for d in shape[1:]))
        except ValueError:
            raise self.err(node, f"constant of shape {data.shape} does not expand to {list(shape[1:])}") from None
        if len(full) != len(shape):
            raise self.unsupported(node, "the expanded constant has a higher rank than the target shape")
        sample = tuple(full[1:])
        value = np.broadcast_to(data, (1,) + sample)[0].astype(np.float32)
        if value.size > MAX_EXPANDED_ELEMENTS:
            raise self.unsupported(node, f"the expanded constant holds {value.size} elements per sample "
                                         f"(limit {MAX_EXPANDED_ELEMENTS})")
        p = self.const_layer(node.name or "Expand", value)
        if data.dtype == np.float32:
            return Dyn(sample, src=p)
        return Dyn(sample, "int", INT8 if data.dtype == np.int8 else UINT8, src=p)

    def _window(self, node, x: Dyn, k):
        """Conv/pool families on (N, C, *spatial); without a batch axis the first dimension must
        be 1 and is dropped for the window op (the arena is flat: a view, no copy)."""
        from . import onnx_conv, onnx_window
        if self.lead:
            fam = onnx_window if onnx_window.handles(self, node, x) else onnx_conv
            return fam.translate(self, node, x, k)
        if not x.shape or x.shape[0] != 1:
            raise self.unsupported(node, f"a window op on {self.full(x)} without a batch axis needs a first "
                                         f"dimension of 1")
        xs = replace(x, shape=x.shape[1:], src=self.src(x) if x.src is AUTO else x.src)
        fam = onnx_window if onnx_window.handles(self, node, xs) else onnx_conv
        y = fam.translate(self, node, xs, k)
        if isinstance(y, dict):
            return {n: replace(d, shape=(1,) + d.shape) for n, d in y.items()}
        return replace(y, shape=(1,) + y.shape)

    def src(self, d: Dyn):
        """The Proto holding d's values: AUTO means the layer the current node emitted last, or
        (none emitted) the source of the node's runtime input."""
        if d.src is AUTO:
            return self.g.protos[-1] if len(self.g.protos) > self._node_start else self._node_src
        return d.src

    def emit(self, node, op, x: Dyn, out_shape, extra=(), **kw) -> Proto:
        """A layer reading x (and the runtime tensors in extra) -> its Proto, added to the graph."""
        for d in (x,) + tuple(extra):
            if d.kind == "unusable":
                raise self.unusable(node, d)
        ins = (x,) + tuple(extra)
        p = Proto(op, x.shape, tuple(out_shape), name=node.name or node.op_type,
                  inputs=[self.src(d) for d in ins], in_shapes=[d.shape for d in ins], **kw)
        return self.g.add(p)

    def const_layer(self, name: str, value: np.ndarray) -> Proto:
        """A CONST layer holding value (float32) for every sample; it reads the model input."""
        s = tuple(self.input_shape)
        return self.g.add(Proto(Op.CONST, s, tuple(value.shape), tensors={"value": np.array(value, np.float32)},
                                name=name, inputs=[None], in_shapes=[s]))

    def need_float(self, node, x: Dyn):
        if x.kind == "unusable":
            raise self.unusable(node, x)
        if x.kind == "bool":
            raise self.unsupported(node, "it reads a comparison result (Greater/Less), which rtinfer only takes "
                                         "inside a recognized activation (Where)")
        if x.kind != "f32":
            raise self.unsupported(node, f"its runtime input is not float32 ({_type_name(x.onnx_type)}); "
                                          f"only QuantizeLinear/DequantizeLinear/QLinearMatMul/MatMulInteger/QLinearConv/"
                                          f"ConvInteger/Cast/Gather act on integer tensors, and Add/Sub/Mul/Div/Max/"
                                          f"Min/Clip/Relu/Abs/Neg on int8/uint8 ones")

    def int_values(self, node, x: Dyn) -> Dyn:
        """An int8 / uint8 runtime tensor as its exact values in float32 (kind "int"): the codes
        of a quantized tensor through a DEQUANTIZE with scale 1 (uint8 is held as q - 128)."""
        if x.kind == "unusable":
            raise self.unusable(node, x)
        if x.onnx_type not in _INT_ARITH_TYPES or x.kind not in ("q8", "int"):
            raise self.unsupported(node, f"integer arithmetic on a {_type_name(x.onnx_type)} runtime tensor "
                                         f"(rtinfer computes int8 and uint8 exactly; int32/int64 values are not "
                                         f"exact in float32)")
        if x.kind == "int":
            return x
        p = self.emit(node, Op.DEQUANTIZE, x, x.shape, attrs={"x_scale": 1.0, "x_zp": 0 if x.onnx_type == INT8 else -128})
        return Dyn(x.shape, "int", x.onnx_type, src=p)

    def _int_binary_const(self, node, fn, x: Dyn, k, cname):
        """An int8 / uint8 runtime tensor with an integer constant: exact float arithmetic, then
        WRAP (Add/Sub/Mul as AFFINE; Div, and Max/Min by a non-scalar, as BINARY with a CONST)."""
        c = np.asarray(self.consts[cname])
        if x.onnx_type in _INT_ARITH_TYPES and c.dtype != (np.int8 if x.onnx_type == INT8 else np.uint8):
            raise self.err(node, f"constant of dtype {c.dtype} with a {_type_name(x.onnx_type)} runtime tensor "
                                 f"(ONNX requires one type)")
        x = self.int_values(node, x)
        self._node_src = x.src
        cf = self._broadcast_const(node, x, c)
        wrap = _wrap(x.onnx_type)
        ones, zeros = np.ones(x.shape, np.float32), np.zeros(x.shape, np.float32)
        affine = {Bin.ADD: (ones, cf), Bin.SUB: (ones, -cf) if k == 0 else (-ones, cf), Bin.MUL: (cf, zeros)}
        if fn in affine:
            s, t = affine[fn]
            self.emit(node, Op.AFFINE, x, x.shape, act=Act.WRAP, tensors={"s": s, "t": t}, attrs=wrap)
        else:
            cp = self.const_layer(f"{node.name or node.op_type}.{cname}", cf)
            cd = Dyn(x.shape, "int", x.onnx_type, src=cp)
            a, b = (x, cd) if k == 0 else (cd, x)
            self.emit(node, Op.BINARY, a, x.shape, extra=(b,), act=Act.WRAP, attrs={"fn": int(fn), **wrap})
        return Dyn(x.shape, "int", x.onnx_type)

    def _int_binary_runtime(self, node, fn, a: Dyn, b: Dyn):
        if a.onnx_type != b.onnx_type:
            raise self.err(node, f"runtime tensors of types {_type_name(a.onnx_type)} and {_type_name(b.onnx_type)} "
                                 f"(ONNX requires one type)")
        a, b = self.int_values(node, a), self.int_values(node, b)
        self._sample_rank_match(node, (a, b))
        try:
            out = tuple(np.broadcast_shapes(a.shape, b.shape))
        except ValueError:
            raise self.err(node, f"runtime tensors of shapes (N, *{a.shape}) and (N, *{b.shape}) do not broadcast") from None
        self._node_src = a.src
        self.emit(node, Op.BINARY, a, out, extra=(b,), act=Act.WRAP, attrs={"fn": int(fn), **_wrap(a.onnx_type)})
        return Dyn(out, "int", a.onnx_type)

    def _int_activation(self, node, x: Dyn, k):
        """Clip / Relu / Abs on an int8 / uint8 tensor, exactly (Abs(-128) wraps to -128)."""
        if k != 0:
            raise self.unsupported(node, "the runtime tensor must be the first input")
        x = self.int_values(node, x)
        op = node.op_type
        if op == "Clip":
            bounds = []
            for idx, default in ((1, -math.inf), (2, math.inf)):
                v = self.const(node, idx)
                if v is not None and np.asarray(v).size != 1:
                    raise self.err(node, f"Clip bound must be a scalar, got shape {np.asarray(v).shape}")
                bounds.append(default if v is None else float(np.asarray(v).reshape(-1)[0]))
            lo, hi = bounds
            self.emit(node, Op.ACT, x, x.shape, act=Act.CLIP, attrs={"alpha": min(lo, hi), "beta": hi})
        elif op == "Relu":
            self.emit(node, Op.ACT, x, x.shape, act=Act.RELU)
        elif op == "Abs":
            p = self.emit(node, Op.ACT, x, x.shape, act=Act.ABS)
            self.emit(node, Op.ACT, Dyn(x.shape, src=p), x.shape, act=Act.WRAP, attrs=_wrap(x.onnx_type))
        else:
            raise self.unsupported(node, f"{op} on a {_type_name(x.onnx_type)} tensor (integer ops: Add, Sub, Mul, "
                                         f"Div, Max, Min, Clip, Relu, Abs, Neg)")
        return Dyn(x.shape, "int", x.onnx_type)

    # -- constants -----------------------------------------------------------------------------
    def _constant(self, node):
        a = {at.name: at for at in node.attribute}
        if "value" in a:
            value = _to_array(a["value"].t, self.base_dir, f"node {node.name!r}")
        elif "value_float" in a:
            value = np.array(a["value_float"].f, dtype=np.float32)
        elif "value_floats" in a:
            value = np.array(list(a["value_floats"].floats), dtype=np.float32)
        elif "value_int" in a:
            value = np.array(a["value_int"].i, dtype=np.int64)
        elif "value_ints" in a:
            value = np.array(list(a["value_ints"].ints), dtype=np.int64)
        else:
            raise self.unsupported(node, f"Constant attribute {list(a)} (sparse / string values)")
        self.consts[node.output[0]] = value

    def _fold(self, node):
        from onnx import AttributeProto, helper
        from onnx.reference import ReferenceEvaluator
        if node.op_type in ("Loop", "Scan") or any(
                a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
            # a Loop with a trip count of 10^9 is a few bytes; evaluating it would never end
            raise self.unsupported(node, "control flow on constants is not folded (its work is unbounded)")
        feeds, vis = {}, []
        for name in node.input:
            if name and name not in feeds:
                arr = self.consts[name]
                feeds[name] = arr
                vis.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
        outs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        graph = helper.make_graph([node], "fold", vis, outs)
        m = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        m.ir_version = max(self.model.ir_version, 3)
        self._check_fold_size(node, m, feeds)
        results = self._fold_qdq(node) if node.op_type in ("QuantizeLinear", "DequantizeLinear") else None
        if results is None:
            try:
                results = ReferenceEvaluator(m).run(None, feeds)
            except Exception as exc:
                raise self.err(node, f"cannot fold this constant node with onnx.reference ({type(exc).__name__}: "
                                     f"{exc}); if the model's opset ({self.opset}) is the cause, convert it with "
                                     f"onnx.version_converter.convert_version(model, 21)") from exc
        for name, val in zip([o for o in node.output if o], results):
            val = np.asarray(val)
            if val.size > MAX_TENSOR_ELEMENTS:
                raise self.err(node, f"folded constant {name!r} has {val.size} elements")
            self.folded_elements += int(val.size)
            if self.folded_elements > self.fold_budget:
                raise self.err(node, f"folded constants reach {self.folded_elements} elements; the limit for this "
                                      f"model is {self.fold_budget}")
            self.consts[name] = val
        if node.op_type == "DequantizeLinear":
            q = self.consts[node.input[0]]
            scale = np.asarray(self.const(node, 1), dtype=np.float32)
            zp = self.const(node, 2)
            attrs = self.attrs(node)
            if q.dtype in (np.int8, np.uint8, np.int32) and scale.ndim <= 1 and not attrs.get("block_size", 0):
                zp = np.zeros((), dtype=q.dtype) if zp is None else zp
                self.prov[node.output[0]] = ("dq", q, scale, np.asarray(zp), int(attrs.get("axis", 1)))

    def _fold_qdq(self, node):
        """QuantizeLinear / DequantizeLinear of constants in NumPy, at any opset (onnx.reference
        has them only at opsets 19+): per tensor or per axis, 8-bit (and int32 for dequantizing
        biases). None for what this does not cover (blocked, 16-bit, float8): onnx.reference then."""
        a = self.attrs(node)
        if a.get("block_size", 0):
            return None
        x = np.asarray(self.consts[node.input[0]])
        scale = np.asarray(self.const(node, 1), dtype=np.float32)
        zp = self.const(node, 2)
        zp = None if zp is None else np.asarray(zp)
        if scale.ndim > 1:
            return None
        axis = int(a.get("axis", 1))
        shape = [1] * x.ndim
        if scale.ndim == 1 and scale.size != 1:
            if not -x.ndim <= axis < x.ndim or x.shape[axis] != scale.size:
                raise self.err(node, f"scale of {scale.size} values does not match axis {axis} of shape {x.shape}")
            shape[axis % x.ndim] = scale.size
        s = scale.reshape(shape) if scale.ndim == 1 else scale
        z = None if zp is None else (zp.reshape(shape) if zp.ndim == 1 and zp.size != 1 else zp.reshape(()))
        if node.op_type == "DequantizeLinear":
            if x.dtype not in (np.int8, np.uint8, np.int32) or (zp is not None and zp.dtype != x.dtype):
                return None
            d = x.astype(np.int64) - (0 if z is None else z.astype(np.int64))
            return [(d.astype(np.float32) * s).astype(np.float32)]
        if zp is not None:
            out_dtype = zp.dtype
        else:
            out_dtype = np.int8 if int(a.get("output_dtype", 0)) == INT8 else np.uint8
        if out_dtype not in (np.uint8, np.int8) or x.dtype != np.float32:
            return None
        info = np.iinfo(out_dtype)
        q = np.rint(x / s) + (0 if z is None else z.astype(np.float32))
        return [np.clip(q, info.min, info.max).astype(out_dtype)]

    def _check_fold_size(self, node, m, feeds):
        """Refuse a constant node whose outputs, as ONNX shape inference predicts them before
        anything is evaluated, would hold more than max(MAX_EXPANDED_ELEMENTS, its inputs' total
        size) elements: a few bytes of ConstantOfShape/Expand/Tile/Range must not make the
        importer allocate gigabytes. Small numeric inputs are given as initializers so that
        shape-valued inputs are seen; a node inference rejects is not evaluated; outputs
        inference cannot size are left to the check after evaluation."""
        from onnx import numpy_helper, shape_inference
        if self.fold_budget is None:  # the initializers read so far: backed by bytes in the file
            self.fold_budget = MAX_EXPANDED_ELEMENTS + 4 * sum(int(a.size) for a in self.consts.values())
        if node.op_type in _NON_EXPANDING_OPS:
            # outputs no larger than the inputs: nothing to predict (and onnx's data propagation
            # crashes the process on a Slice of a shape with starts / steps of +-2^63)
            return
        probe = type(m)()
        probe.CopyFrom(m)
        for name, arr in feeds.items():
            if arr.dtype.kind in "iuf" and arr.size <= 1024:
                probe.graph.initializer.append(numpy_helper.from_array(arr, name))
        try:
            inferred = shape_inference.infer_shapes(probe, strict_mode=True, data_prop=True)
        except Exception as exc:  # e.g. Tile repeats of the wrong length, which NumPy would still run
            raise self.err(node, f"cannot fold this constant node: ONNX shape inference rejects it: {exc}") from None
        limit = max(MAX_EXPANDED_ELEMENTS, sum(int(a.size) for a in feeds.values()))
        total = self.folded_elements
        for out in inferred.graph.output:
            dims = out.type.tensor_type.shape.dim
            if out.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                n = math.prod(int(d.dim_value) for d in dims)
                if n > limit:
                    raise self.err(node, f"folding this constant node would create {out.name!r} with {n} "
                                          f"elements (dims {[int(d.dim_value) for d in dims]}); the limit is {limit}")
                total += n
        if total > self.fold_budget:
            raise self.err(node, f"folding this constant node would bring the folded constants to {total} "
                                  f"elements; the limit for this model is {self.fold_budget}")

    # -- elementwise ---------------------------------------------------------------------------
    def _activation(self, node, x: Dyn, k):
        if x.kind in ("q8", "int"):
            return self._int_activation(node, x, k)
        self.need_float(node, x)
        if k != 0:
            raise self.unsupported(node, "the runtime tensor must be the first input")
        op = node.op_type
        a = self.attrs(node)
        act = _ACT_OPS[op]
        attrs = {}
        if op == "LeakyRelu":
            attrs["alpha"] = float(np.float32(a.get("alpha", 0.01)))
        elif op == "Elu":
            attrs["alpha"] = float(np.float32(a.get("alpha", 1.0)))
        elif op == "Selu":
            attrs["alpha"] = float(np.float32(a.get("alpha", ACT_DEFAULTS[Act.SELU][0])))
            attrs["beta"] = float(np.float32(a.get("gamma", ACT_DEFAULTS[Act.SELU][1])))
        elif op == "HardSigmoid":
            attrs["alpha"] = float(np.float32(a.get("alpha", 0.2)))
            attrs["beta"] = float(np.float32(a.get("beta", 0.5)))
        elif op == "Gelu":
            approx = a.get("approximate", b"none")
            approx = approx.decode() if isinstance(approx, bytes) else str(approx)
            if approx == "tanh":
                act = Act.GELU_TANH
            elif approx != "none":
                raise self.unsupported(node, f"attribute approximate={approx!r}")
        elif op == "Clip":
            if self.opset < 11:
                lo, hi = a.get("min", -3.4028234663852886e38), a.get("max", 3.4028234663852886e38)
            else:
                lo_a, hi_a = self.const(node, 1), self.const(node, 2)
                for v, nm in ((lo_a, "min"), (hi_a, "max")):
                    if v is not None and v.size != 1:
                        raise self.err(node, f"Clip {nm} must be a scalar, got shape {v.shape}")
                lo = float(lo_a.reshape(-1)[0]) if lo_a is not None else -math.inf
                hi = float(hi_a.reshape(-1)[0]) if hi_a is not None else math.inf
            # ONNX Clip is min(max(x, lo), hi): with lo > hi every output is hi.
            attrs = {"alpha": float(np.float32(min(lo, hi))), "beta": float(np.float32(hi))}
        elif op == "PRelu":
            slope = np.asarray(self.const(node, 1), dtype=np.float32)
            if slope.size != 1 and not np.all(slope == slope.reshape(-1)[0]):
                return self._prelu(node, x, slope)
            attrs["alpha"] = float(slope.reshape(-1)[0])
        self.emit(node, Op.ACT, x, x.shape, act=act, attrs=attrs)
        return Dyn(x.shape)

    def _prelu(self, node, x: Dyn, slope: np.ndarray) -> Dyn:
        """PRelu with slopes varying over the sample: relu(x) + (-slope) * relu(-x) (exact: one
        product and one addition of a zero per element)."""
        c = self._broadcast_const(node, x, slope)
        ones, zeros = np.ones(x.shape, np.float32), np.zeros(x.shape, np.float32)
        pos = self.emit(node, Op.ACT, x, x.shape, act=Act.RELU)
        neg = self.emit(node, Op.AFFINE, x, x.shape, act=Act.RELU, tensors={"s": -ones, "t": zeros})
        neg = self.emit(node, Op.AFFINE, Dyn(x.shape, src=neg), x.shape, tensors={"s": -c, "t": zeros})
        self._node_src = pos
        self.emit(node, Op.BINARY, Dyn(x.shape, src=pos), x.shape, extra=(Dyn(x.shape, src=neg),),
                  attrs={"fn": int(Bin.ADD)})
        return Dyn(x.shape)

    def _op_Neg(self, node, x, k):
        kw, y = {}, Dyn(x.shape)
        if x.kind in ("q8", "int"):  # integers: -(-128) wraps to -128
            x = self.int_values(node, x)
            kw, y = {"act": Act.WRAP, "attrs": _wrap(x.onnx_type)}, Dyn(x.shape, "int", x.onnx_type)
        else:
            self.need_float(node, x)
        s = np.full(x.shape, -1.0, dtype=np.float32)
        self.emit(node, Op.AFFINE, x, x.shape, tensors={"s": s, "t": np.zeros(x.shape, np.float32)}, **kw)
        return y

    def _broadcast_const(self, node, x: Dyn, c: np.ndarray) -> np.ndarray:
        """A constant operand broadcast to the sample shape (N, *shape) -> (*shape), float32."""
        a = self.attrs(node)
        c = np.asarray(c)
        full_rank = self.rank(x)
        if self.opset < 7 and a.get("broadcast", 0) and "axis" in a:
            axis = int(a["axis"]) % full_rank
            c = c.reshape(c.shape + (1,) * (full_rank - axis - c.ndim))
        if c.ndim > full_rank:
            raise self.err(node, f"constant of shape {c.shape} has a higher rank than the runtime tensor "
                                 f"{self.full(x)}")
        if c.ndim == full_rank and self.lead:
            if c.shape[0] != 1:
                raise self.batch_err(node, f"constant of shape {c.shape} varies along the batch axis")
            c = c[0]
        try:
            out = np.broadcast_shapes(x.shape, c.shape)
        except ValueError:
            raise self.err(node, f"constant of shape {c.shape} does not broadcast to the sample shape {x.shape}") from None
        if tuple(out) != tuple(x.shape):
            raise self.unsupported(node, f"constant of shape {c.shape} would enlarge the sample shape {x.shape}")
        return np.broadcast_to(c.astype(np.float32), x.shape).copy()

    def _binary(self, node, x: Dyn, k, dyn_idx):
        op = node.op_type
        fn = _BINARY_OPS[op]
        if len(node.input) != 2 and op not in ("Max", "Min"):
            raise self.err(node, f"{op} takes 2 inputs, got {len(node.input)}")
        if len(node.input) != 2:
            raise self.unsupported(node, f"{op} of {len(node.input)} inputs (only 2)")
        if any(self.dyn[node.input[j]].kind == "dscale" for j in dyn_idx):
            return self._dscale_mul(node, dyn_idx)
        if any(self.dyn[node.input[j]].kind == "dq8f" for j in dyn_idx):  # Cast(y) - Cast(y_zero_point)
            return Dyn(self.dyn[node.input[0]].shape, src=self.dyn[node.input[0]].src)
        if len(dyn_idx) == 2:
            return self._binary_runtime(node, fn)
        cname = node.input[1 - k]
        if x.kind == "qint" and op == "Add":
            c = np.asarray(self.consts[cname])
            if c.size != 1 or c.dtype.kind not in "iu":
                raise self.unsupported(node, "only a scalar integer offset may be added to a table index")
            return Dyn(x.shape, "qint", x.onnx_type, x.offset + int(c.reshape(-1)[0]))
        if x.kind in ("q8", "int"):
            return self._int_binary_const(node, fn, x, k, cname)
        self.need_float(node, x)
        if op in ("Max", "Min"):
            c = np.asarray(self.consts[cname], np.float32)
            if c.size != 1:
                raise self.unsupported(node, f"{op} with a non-scalar constant of shape {c.shape}")
            v = float(c.reshape(-1)[0])
            lo, hi = (v, math.inf) if op == "Max" else (-math.inf, v)
            self.emit(node, Op.ACT, x, x.shape, act=Act.CLIP, attrs={"alpha": lo, "beta": hi})
            return Dyn(x.shape)
        c = self._broadcast_const(node, x, self.consts[cname])
        ones = np.ones(x.shape, np.float32)
        zeros = np.zeros(x.shape, np.float32)
        prov = {}
        if op == "Add":
            s, t = ones, c
            p = self.prov.get(cname)
            if p is not None and len(x.shape) == 1 and p[1].dtype == np.int32 and np.asarray(p[1]).size == x.shape[0]:
                prov["t"] = (np.asarray(p[1]).reshape(-1), np.broadcast_to(p[2], (x.shape[0],)).astype(np.float32))
        elif op == "Sub":
            s, t = (ones, -c) if k == 0 else (-ones, c)
        elif op == "Mul":
            s, t = c, zeros
        else:  # Div
            if k != 0:
                raise self.unsupported(node, "division of a constant by the runtime tensor")
            with np.errstate(divide="ignore"):
                s, t = (np.float32(1.0) / c).astype(np.float32), zeros
        self.emit(node, Op.AFFINE, x, x.shape, tensors={"s": s, "t": t}, prov=prov)
        return Dyn(x.shape)

    def _sample_rank_match(self, node, dyns):
        """Per-sample shapes of runtime tensors that ONNX broadcasts together. Their ranks must
        agree: with the batch axis first, a lower rank would align the batch axis with a sample
        axis of the other tensor."""
        ranks = {len(d.shape) for d in dyns}
        if len(ranks) > 1 and self.lead:
            raise self.batch_err(node, f"runtime tensors of different ranks "
                                       f"{[('N',) + d.shape for d in dyns]} broadcast across the batch axis")

    def _binary_runtime(self, node, fn):
        a, b = self.dyn[node.input[0]], self.dyn[node.input[1]]
        if a.kind in ("q8", "int") or b.kind in ("q8", "int"):
            return self._int_binary_runtime(node, fn, a, b)
        for d in (a, b):
            self.need_float(node, d)
        self._sample_rank_match(node, (a, b))
        try:
            out = tuple(np.broadcast_shapes(a.shape, b.shape))
        except ValueError:
            raise self.err(node, f"runtime tensors of shapes (N, *{a.shape}) and (N, *{b.shape}) do not broadcast") from None
        self._node_src = a.src
        self.emit(node, Op.BINARY, a, out, extra=(b,), attrs={"fn": int(fn)})
        return Dyn(out)

    def _pseudo(self, node, dyn_idx):
        """An import-only elementwise node (export.onnx_ir): kept if it is part of a recognized
        activation, refused otherwise. Constant operands must be scalars."""
        op = node.op_type
        args, extra = [], []
        first = None
        for k, name in enumerate(node.input):
            if k in dyn_idx:
                d = self.dyn[name]
                if d.kind not in ("f32", "bool"):
                    raise self.unsupported(node, f"its input {name!r} is not a float tensor")
                if first is None:
                    first = d
                else:
                    extra.append(d)
                args.append(("in", len(extra) if first is not d else 0))
            else:
                c = self.const(node, k)
                if c is None or np.asarray(c).size != 1:
                    raise self.unsupported(node, f"a non-scalar constant input {name!r}")
                args.append(("const", float(np.asarray(c, np.float64).reshape(-1)[0])))
        shapes = [first] + extra
        self._sample_rank_match(node, shapes)
        try:
            out = tuple(np.broadcast_shapes(*[d.shape for d in shapes]))
        except ValueError:
            raise self.err(node, "runtime inputs do not broadcast") from None
        if any(math.prod(d.shape) != math.prod(out) for d in shapes):
            raise self.unsupported(node, "broadcasting between runtime tensors of different sizes")
        self._node_src = first.src
        p = self.emit(node, None, first, out, extra=tuple(extra))
        p.pseudo, p.args = op, args
        kind = "bool" if op in ("Greater", "Less", "GreaterOrEqual", "LessOrEqual") else "f32"
        return Dyn(out, kind)

    def _op_BatchNormalization(self, node, x, k):
        self.need_float(node, x)
        a = self.attrs(node)
        if k != 0:
            raise self.unsupported(node, "the runtime tensor must be the first input")
        if a.get("training_mode", 0):
            raise self.unsupported(node, "attribute training_mode=1 (export the model in eval mode)")
        ca = 1 - self.lead  # the channel axis of the sample
        if len(x.shape) <= ca:
            raise self.err(node, "BatchNormalization needs a channel axis: input rank must be >= 2")
        eps = float(a.get("epsilon", 1e-5))
        scale, bias, mean, var = (np.asarray(self.const(node, i), dtype=np.float64) for i in range(1, 5))
        C = x.shape[ca]
        spatial = a.get("spatial", 1) if self.opset < 9 else 1

        def expand(v):
            if spatial and v.size == C:
                v = v.reshape((C,) + (1,) * (len(x.shape) - 1 - ca))
            try:
                return np.broadcast_to(v, x.shape)
            except ValueError:
                raise self.err(node, f"parameter of shape {v.shape} does not match channels {C}") from None

        if not np.all(var + eps > 0):
            raise self.err(node, "variance + epsilon must be positive")
        s = expand(scale) / np.sqrt(expand(var) + eps)
        t = expand(bias) - expand(mean) * s
        self.emit(node, Op.AFFINE, x, x.shape, tensors={"s": s.astype(np.float32), "t": t.astype(np.float32)})
        return Dyn(x.shape)

    # -- dense ---------------------------------------------------------------------------------
    def weight_prov(self, name, W_axis_out: int, n_out: int):
        """(Wq int8, w_scale) if the constant came from DequantizeLinear of 8-bit weights quantized
        per tensor or per output channel whose values minus zero point fit int8 (int8 with zero
        point 0, or uint8 with zero point 128: the same values shifted); else None."""
        p = self.prov.get(name)
        if p is None:
            return None
        _, q, scale, zp, axis = p
        if q.dtype not in (np.int8, np.uint8) or q.ndim != 2:
            return None
        per_channel = scale.ndim == 1 and scale.size == n_out and scale.size > 1
        if per_channel and axis % 2 != W_axis_out:
            return None
        if scale.size == 1:
            w_scale = np.full(n_out, float(scale.reshape(-1)[0]), np.float32)
        elif per_channel:
            w_scale = scale.astype(np.float32)
        else:
            return None
        if not (np.all(np.isfinite(w_scale)) and np.all(w_scale > 0)):
            return None  # not a usable int8 weight scale: keep the dequantized float weights
        zp = np.asarray(zp, np.int32).reshape(-1)
        if zp.size not in (1, n_out):
            return None
        zp_shape = (1, n_out) if W_axis_out == 1 else (n_out, 1)
        w = q.astype(np.int32) - (zp.reshape(zp_shape) if zp.size > 1 else zp[0])
        if w.min() < -128 or w.max() > 127:
            return None
        return w.astype(np.int8), w_scale

    def bias_prov(self, name, n_out):
        p = self.prov.get(name)
        if p is None:
            return None
        _, q, scale, zp, axis = p
        if q.dtype != np.int32 or q.size != n_out or np.any(zp != 0):
            return None
        return q.reshape(-1), np.broadcast_to(np.asarray(scale, np.float32).reshape(-1), (n_out,)).copy()

    def linear_map(self, node, x: Dyn, fn, bias=None, prov=None) -> Dyn:
        """A DENSE computing fn(x) for a fixed-shape sample x, where fn is linear (NumPy, float64):
        its weight matrix is fn of each unit vector (the size is capped). bias: broadcast to the
        output shape and added."""
        n_in = _prod(x.shape)
        y0 = np.asarray(fn(np.zeros(x.shape)))
        out_shape, n_out = tuple(y0.shape), int(y0.size)
        if n_in * n_out > MAX_EXPANDED_ELEMENTS:
            raise self.unsupported(node, f"a linear map of a {x.shape} sample to {out_shape} expands to a "
                                          f"{n_in}x{n_out} weight matrix (limit {MAX_EXPANDED_ELEMENTS} elements)")
        W = np.zeros((n_in, n_out), np.float64)
        e = np.zeros(n_in)
        for i in range(n_in):
            e[i] = 1.0
            W[i] = np.asarray(fn(e.reshape(x.shape)), np.float64).reshape(-1)
            e[i] = 0.0
        b = np.zeros(n_out, np.float32) if bias is None else \
            np.broadcast_to(np.asarray(bias, np.float32), out_shape).reshape(-1).astype(np.float32)
        self.emit(node, Op.DENSE, x, out_shape, tensors={"W": W.astype(np.float32), "b": b}, prov=prov or {})
        return Dyn(out_shape)

    def _op_Gemm(self, node, x, k):
        self.need_float(node, x)
        a = self.attrs(node)
        if any(i < len(node.input) and node.input[i] in self.dyn for i in range(k + 1, 3)):
            return self._gemm_runtime(node, k, a)
        if not self.lead:  # no batch axis: any operand may be the runtime tensor
            A, B = (None if i == k else np.asarray(self.const(node, i), np.float64) for i in range(2))
            alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
            tA, tB = int(a.get("transA", 0)), int(a.get("transB", 0))

            def gemm(v):
                lhs, rhs = (v, B) if k == 0 else (A, v)
                lhs = lhs.T if tA else lhs
                rhs = rhs.T if tB else rhs
                return alpha * (lhs @ rhs)
            C = self.const(node, 2)
            return self.linear_map(node, x, gemm, None if C is None else np.asarray(C, np.float32) * np.float32(beta))
        if k != 0:
            raise self.batch_err(node, "the runtime tensor must be input A (a constant A times a runtime B "
                                       "contracts the batch axis)")
        if a.get("transA", 0):
            raise self.batch_err(node, "attribute transA=1 on the runtime tensor (it would transpose the batch axis)")
        if len(x.shape) != 1:
            raise self.err(node, f"Gemm input A must have rank 2, got rank {len(x.shape) + 1} (N, *{x.shape})")
        B = np.asarray(self.const(node, 1))
        if B.ndim != 2:
            raise self.err(node, f"Gemm input B must have rank 2, got shape {B.shape}")
        transB = int(a.get("transB", 0))
        W = B.T if transB else B
        if W.shape[0] != x.shape[0]:
            raise self.err(node, f"Gemm B of shape {B.shape} (transB={transB}) does not take {x.shape[0]} inputs")
        n_out = W.shape[1]
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        Wf = (W.astype(np.float32) * np.float32(alpha)).astype(np.float32)
        C = self.const(node, 2)
        b = np.zeros(n_out, np.float32)
        prov = {}
        if C is not None:
            C = np.asarray(C, dtype=np.float32)
            if C.ndim > 2 or (C.ndim == 2 and C.shape[0] != 1) or (C.size not in (1, n_out)):
                raise self.batch_err(node, f"bias C of shape {C.shape} varies along the batch axis "
                                              f"(it must broadcast to (1, {n_out}))")
            b = (np.broadcast_to(C.reshape(-1), (n_out,)) * np.float32(beta)).astype(np.float32)
            if beta == 1.0:
                bp = self.bias_prov(node.input[2], n_out)
                if bp is not None:
                    prov["b"] = bp
        if alpha == 1.0:
            wp = self.weight_prov(node.input[1], 0 if transB else 1, n_out)
            if wp is not None:
                q, ws = wp
                prov["W"] = (q.T.copy() if transB else q, ws)
        self.emit(node, Op.DENSE, x, (n_out,), tensors={"W": Wf, "b": b}, prov=prov)
        return Dyn((n_out,))

    def _op_MatMul(self, node, x, k):
        self.need_float(node, x)
        if k == 0 and node.input[1] in self.dyn:
            return self._matmul_runtime(node, x, self.dyn[node.input[1]])
        if not self.lead:  # no batch axis: x @ B or A @ x of fixed shapes
            c = np.asarray(self.const(node, 1 - k), np.float64)
            return self.linear_map(node, x, (lambda v: np.matmul(v, c)) if k == 0 else (lambda v: np.matmul(c, v)))
        if k != 0:
            raise self.batch_err(node, "the runtime tensor must be the left operand (a constant left operand "
                                          "contracts the batch axis)")
        B = np.asarray(self.const(node, 1)).astype(np.float32)
        W, out_shape = self._matmul_weights(node, x, B)
        prov = {}
        if B.ndim == 2 and len(x.shape) == 1:
            wp = self.weight_prov(node.input[1], 1, B.shape[1])
            if wp is not None:
                prov["W"] = wp
        self.emit(node, Op.DENSE, x, out_shape, tensors={"W": W, "b": np.zeros(W.shape[1], np.float32)}, prov=prov)
        return Dyn(out_shape)

    def _matmul_runtime(self, node, a: Dyn, b: Dyn) -> Dyn:
        """MatMul of two runtime tensors -> MATMUL (per sample, batched over the leading dims;
        those of one operand may be all 1: one matrix for every group)."""
        for d in (a, b):
            self.need_float(node, d)
        sa, sb = tuple(a.shape), tuple(b.shape)
        if self.lead and (len(sa) < 2 or len(sa) != len(sb)):
            raise self.batch_err(node, f"MatMul of runtime tensors {self.full(a)} and {self.full(b)}: per sample "
                                       f"both must be matrices (or stacks) of one rank, else ONNX contracts or "
                                       f"broadcasts across the batch axis")
        va = sa if len(sa) >= 2 else (1,) + sa
        vb = sb if len(sb) >= 2 else sb + (1,)
        if not sa or not sb or va[-1] != vb[-2]:
            raise self.err(node, f"MatMul shapes {self.full(a)} and {self.full(b)} do not align")
        ga, gb = va[:-2], vb[:-2]
        try:
            g = tuple(np.broadcast_shapes(ga, gb))
        except ValueError:
            raise self.err(node, f"MatMul batch dims {ga} and {gb} do not broadcast") from None
        G, Ga, Gb = _prod(g), _prod(ga), _prod(gb)
        if Ga not in (1, G) or Gb not in (1, G):
            raise self.unsupported(node, f"MatMul batch dims {ga} and {gb} broadcast against each other in part "
                                         f"(rtinfer repeats a whole operand, or none)")
        m, kk, n = va[-2], va[-1], vb[-1]
        out = g + ((m,) if len(sa) >= 2 else ()) + ((n,) if len(sb) >= 2 else ())
        self._node_src = a.src
        self.emit(node, Op.MATMUL, a, out, extra=(b,),
                  attrs={"groups": G, "m": m, "k": kk, "n": n, "a_groups": Ga, "b_groups": Gb})
        return Dyn(out)

    def _gemm_runtime(self, node, k, a) -> Dyn:
        """Gemm with more runtime operands than A: a runtime C is added by a BINARY after the
        product (scaled by beta with an AFFINE); runtime A and B (only without a batch axis: with
        one, the product would contract it) are a MATMUL, transposed by a GATHER where transA /
        transB say, scaled by alpha with an AFFINE."""
        from onnx import helper
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        C = node.input[2] if len(node.input) > 2 and node.input[2] in self.dyn else None
        if node.input[0] in self.dyn and node.input[1] in self.dyn:
            if self.lead:
                raise self.batch_err(node, "Gemm of two runtime tensors contracts the batch axis")
            A, B = self.dyn[node.input[0]], self.dyn[node.input[1]]
            for d in (A, B):
                self.need_float(node, d)
                if len(d.shape) != 2:
                    raise self.err(node, f"Gemm inputs A and B must have rank 2, got {d.shape}")
            for key, d in (("transA", A), ("transB", B)):
                if int(a.get(key, 0)):
                    d = self.gather(node, replace(d, src=self.src(d)), onnx_tables.positions(d.shape).T)
                    A, B = (d, B) if key == "transA" else (A, d)
            y = self._matmul_runtime(node, replace(A, src=self.src(A)), replace(B, src=self.src(B)))
            y = replace(y, src=self.src(y))
            if alpha != 1.0:
                y = self._scale(node, y, alpha)
            if len(node.input) > 2 and node.input[2] and C is None:  # a constant C
                c = np.broadcast_to(np.asarray(self.const(node, 2), np.float32) * np.float32(beta), y.shape)
                self.emit(node, Op.AFFINE, y, y.shape, tensors={"s": np.ones(y.shape, np.float32),
                                                                 "t": np.ascontiguousarray(c, np.float32)})
                y = Dyn(y.shape, src=self.g.protos[-1])
        else:  # A or B runtime, the other constant, then a runtime C
            ab = helper.make_node("Gemm", list(node.input[:2]), [node.output[0] + "/AB"], name=node.name or "Gemm",
                                  **{key: v for key, v in a.items() if key in ("alpha", "transA", "transB")})
            y = self._op_Gemm(ab, self.dyn[node.input[k]], k)
            y = replace(y, src=self.src(y))
        if C is None:
            return y
        c = self.dyn[C]
        self.need_float(node, c)
        c = replace(c, src=self.src(c))
        if beta != 1.0:
            c = self._scale(node, c, beta)
        self._sample_rank_match(node, (y, c))
        try:
            out = tuple(np.broadcast_shapes(y.shape, c.shape))
        except ValueError:
            raise self.err(node, f"Gemm bias C {self.full(c)} does not broadcast to {self.full(y)}") from None
        if out != tuple(y.shape):
            raise self.err(node, f"Gemm bias C {self.full(c)} does not broadcast to {self.full(y)}")
        self.emit(node, Op.BINARY, y, out, extra=(c,), attrs={"fn": int(Bin.ADD)})
        return Dyn(out, src=self.g.protos[-1])

    def _scale(self, node, d: Dyn, factor: float) -> Dyn:
        """d * factor as an AFFINE (Gemm's alpha / beta on a runtime operand)."""
        s = np.full(d.shape, np.float32(factor), np.float32)
        p = self.emit(node, Op.AFFINE, d, d.shape, tensors={"s": s, "t": np.zeros(d.shape, np.float32)})
        return Dyn(d.shape, src=p)

    def _matmul_weights(self, node, x: Dyn, B: np.ndarray):
        """x (N, *s) @ B as one DENSE: W (prod(s), prod(out)) and the sample output shape."""
        s = x.shape
        if len(s) == 0:
            raise self.batch_err(node, "a 1-D runtime tensor would be contracted over the batch axis")
        squeeze = B.ndim == 1
        B2 = B[:, None] if squeeze else B
        K = s[-1]
        if B2.shape[-2] != K:
            raise self.err(node, f"MatMul shapes (N, *{s}) and {B.shape} do not align")
        M = B2.shape[-1]
        if len(s) == 1:
            if B2.ndim != 2:
                raise self.batch_err(node, f"constant of shape {B.shape} would put its batch dims before N")
            W = B2
            return W.astype(np.float32), (() if squeeze else (M,))
        g, m = s[:-2], s[-2]
        gb = B2.shape[:-2]
        if len(gb) > len(g) + 1:
            raise self.batch_err(node, f"constant of shape {B.shape} has more batch dims than the runtime tensor")
        if len(gb) == len(g) + 1:
            if gb[0] != 1:
                raise self.batch_err(node, f"constant of shape {B.shape} varies along the batch axis")
            gb = gb[1:]
            B2 = B2.reshape(gb + B2.shape[-2:])
        gb = (1,) * (len(g) - len(gb)) + tuple(gb)
        B2 = B2.reshape(gb + B2.shape[-2:])
        try:
            out_g = tuple(np.broadcast_shapes(g, gb))
        except ValueError:
            raise self.err(node, f"MatMul batch dims {g} and {gb} do not broadcast") from None
        n_in, n_out = _prod(s), _prod(out_g) * m * M
        if n_in * n_out > MAX_EXPANDED_ELEMENTS:
            raise self.unsupported(node, f"MatMul on a rank-{len(s) + 1} tensor expands to a {n_in}x{n_out} "
                                          f"weight matrix (limit {MAX_EXPANDED_ELEMENTS} elements)")
        W = np.zeros((n_in, n_out), np.float32)
        for o in np.ndindex(*out_g) if out_g else [()]:
            gi = tuple(oi if gd > 1 else 0 for oi, gd in zip(o, g))
            bi = tuple(oi if gd > 1 else 0 for oi, gd in zip(o, gb))
            in_flat = int(np.ravel_multi_index(gi, g)) if g else 0
            out_flat = int(np.ravel_multi_index(o, out_g)) if out_g else 0
            for r in range(m):
                rows = (in_flat * m + r) * K + np.arange(K)
                cols = (out_flat * m + r) * M + np.arange(M)
                W[np.ix_(rows, cols)] = B2[bi]
        out_shape = out_g + ((m,) if squeeze else (m, M))
        return W, out_shape

    # -- normalizations and reductions -----------------------------------------------------------
    def _axis(self, node, axis, rank):
        if not -rank <= axis < rank:
            raise self.err(node, f"axis {axis} is out of range for rank {rank}")
        return axis % rank

    def _softmax(self, node, x, k, op):
        self.need_float(node, x)
        a = self.attrs(node)
        s = x.shape
        rank = self.rank(x)
        if self.opset >= 13:
            ax = self.sample_axis(node, int(a.get("axis", -1)), rank, "softmax over")
            outer, axis_len, inner = _prod(s[:ax]), s[ax], _prod(s[ax + 1:])
        else:  # opset < 13: the input is coerced to 2-D at axis and normalized over the second dim
            ax = self.sample_axis(node, int(a.get("axis", 1)), rank, "softmax coerced to 2-D normalizes across")
            outer, axis_len, inner = _prod(s[:ax]), _prod(s[ax:]), 1
        self.emit(node, op, x, x.shape, attrs={"outer": outer, "axis_len": axis_len, "inner": inner})
        return Dyn(x.shape)

    def _op_Softmax(self, node, x, k):
        return self._softmax(node, x, k, Op.SOFTMAX)

    def _op_LogSoftmax(self, node, x, k):
        return self._softmax(node, x, k, Op.LOG_SOFTMAX)

    def _op_ArgMax(self, node, x, k):
        self.need_float(node, x)
        a = self.attrs(node)
        ax = self.sample_axis(node, int(a.get("axis", 0)), self.rank(x), "ArgMax over")
        keep = int(a.get("keepdims", 1))
        s = x.shape
        outer, axis_len, inner = _prod(s[:ax]), s[ax], _prod(s[ax + 1:])
        out = s[:ax] + ((1,) if keep else ()) + s[ax + 1:]
        attrs = {"outer": outer, "axis_len": axis_len, "inner": inner}
        if int(a.get("select_last_index", 0)):
            attrs["select_last"] = 1
        self.emit(node, Op.ARGMAX, x, out, attrs=attrs)
        return Dyn(out, "index", INT64)

    # -- shapes ----------------------------------------------------------------------------------
    def _shape_op(self, node, x: Dyn, k):
        if x.kind == "unusable":
            raise self.unusable(node, x)
        op = node.op_type
        a = self.attrs(node)
        s = x.shape
        L = self.lead
        if k != 0:
            raise self.unsupported(node, "the runtime tensor must be the first input")
        if op == "Identity":
            return x
        if op == "Dropout":
            if self.opset >= 12:
                ratio = self.const(node, 1)
                training = self.const(node, 2)
                if training is not None and bool(np.asarray(training).reshape(-1)[0]) and \
                        ratio is not None and float(np.asarray(ratio).reshape(-1)[0]) != 0.0:
                    raise self.unsupported(node, "training_mode=True with a non-zero ratio (random at run time)")
            return x
        rank = len(s) + L
        if op == "Flatten":
            axis = int(a.get("axis", 1))
            if not -rank <= axis <= rank:
                raise self.err(node, f"axis {axis} is out of range for rank {rank}")
            if axis < 0:
                axis += rank
            if not L:
                return Dyn((_prod(s[:axis]), _prod(s[axis:])), x.kind, x.onnx_type)
            if axis == 0 or _prod(s[:axis - 1]) != 1:
                if axis == 0 and self.batch == 1:
                    return Dyn((_prod(s),), x.kind, x.onnx_type)
                raise self.batch_err(node, f"Flatten at axis {axis} merges the batch axis into the features")
            return Dyn((_prod(s[axis - 1:]),), x.kind, x.onnx_type)
        if op == "Reshape":
            if self.opset < 5:
                target = [int(v) for v in a.get("shape", [])]
            else:
                target = [int(v) for v in np.asarray(self.const(node, 1)).reshape(-1)]
            return Dyn(self._reshape_target(node, s, target, int(a.get("allowzero", 0))), x.kind, x.onnx_type)
        if op == "Squeeze":
            axes = a.get("axes") if self.opset < 13 else self.const(node, 1)
            if axes is None:
                if L and self.batch == 1:
                    raise self.batch_err(node, "Squeeze without axes removes the batch axis of size 1")
                return Dyn(tuple(d for d in s if d != 1), x.kind, x.onnx_type)
            axes = {self.sample_axis(node, int(v), rank, "Squeeze of") for v in np.asarray(axes).reshape(-1)}
            for ax in axes:
                if s[ax] != 1:
                    raise self.err(node, f"cannot squeeze axis {ax + L} of size {s[ax]}")
            return Dyn(tuple(d for i, d in enumerate(s) if i not in axes), x.kind, x.onnx_type)
        if op == "Unsqueeze":
            axes = a.get("axes") if self.opset < 13 else self.const(node, 1)
            if axes is None:
                raise self.err(node, "Unsqueeze needs axes")
            axes = np.asarray(axes).reshape(-1)
            out_rank = rank + len(axes)
            axes = sorted({self.sample_axis(node, int(v), out_rank, "Unsqueeze before") for v in axes})
            out = list(s)
            for ax in axes:
                out.insert(ax, 1)
            return Dyn(tuple(out), x.kind, x.onnx_type)
        if op == "Transpose":
            perm = [int(p) for p in a.get("perm", list(range(rank))[::-1])]
            if sorted(perm) != list(range(rank)):
                raise self.err(node, f"perm {perm} is not a permutation of {rank} axes")
            if L and perm[0] != 0:
                raise self.batch_err(node, f"Transpose perm {perm} moves the batch axis")
            sp = [p - L for p in perm[L:]]
            out = tuple(s[p] for p in sp)
            moved = [p for p in sp if s[p] != 1]
            if moved == sorted(moved):  # only size-1 axes move: no data moves
                return Dyn(out, x.kind, x.onnx_type)
            return self.gather(node, x, np.transpose(onnx_tables.positions(s), sp))
        raise self.unsupported(node)  # pragma: no cover

    def gather(self, node, x: Dyn, table: np.ndarray, fill=0.0) -> Dyn:
        """A GATHER (QGATHER on int8) copying x's elements by a table of flat sample positions
        (-1: fill) whose shape is the output's; an identity table emits nothing."""
        table = np.asarray(table)
        if x.kind not in ("f32", "q8"):
            raise self.unsupported(node, f"data movement of a {x.kind} tensor ({_type_name(x.onnx_type)})")
        if table.shape == tuple(x.shape) and onnx_tables.is_identity(table):
            return x
        if table.size > MAX_EXPANDED_ELEMENTS:
            raise self.unsupported(node, f"an index table of {table.size} elements (limit {MAX_EXPANDED_ELEMENTS})")
        idx = table.reshape(-1).astype(np.int32)
        if x.kind == "q8":
            p = self.emit(node, Op.QGATHER, x, table.shape, tensors={"index": idx},
                          attrs={"fill": int(fill)})
        else:
            p = self.emit(node, Op.GATHER, x, table.shape, tensors={"index": idx}, attrs={"fill": float(fill)})
        return Dyn(tuple(table.shape), x.kind, x.onnx_type, src=p)

    def _reduce(self, node, x: Dyn, k):
        """ReduceMean / ReduceMax / ReduceSum over non-batch axes: the reduced axes are moved to
        the end (a GATHER when that moves data), the sample is viewed as (C, L) with C the kept
        axes and L the reduced ones -> GLOBAL_AVGPOOL, a global MAXPOOL, or GLOBAL_AVGPOOL scaled
        by L (sum)."""
        self.need_float(node, x)
        op = node.op_type
        a = self.attrs(node)
        rank = self.rank(x)
        axes = a.get("axes") if (self.opset < 18 and op != "ReduceSum") or (self.opset < 13 and op == "ReduceSum") \
            else self.const(node, 1)
        keep = int(a.get("keepdims", 1))
        if axes is None or np.asarray(axes).size == 0:
            if int(a.get("noop_with_empty_axes", 0)):
                return x
            if self.lead:
                raise self.batch_err(node, "a reduction over every axis, the batch axis included")
            axes = list(range(rank))
        axes = sorted({self.sample_axis(node, int(v), rank, "a reduction over") for v in np.asarray(axes).reshape(-1)})
        s = x.shape
        kept = [d for d in range(len(s)) if d not in axes]
        perm = kept + axes
        if perm != list(range(len(s))):
            x = self.gather(node, x, np.transpose(onnx_tables.positions(s), perm))
        c = _prod(s[d] for d in kept)
        L = _prod(s[d] for d in axes)
        out = tuple(1 if d in axes else s[d] for d in range(len(s))) if keep else tuple(s[d] for d in kept)
        view = Dyn((c, L), src=self.src(x) if x.src is AUTO else x.src)
        if op == "ReduceMax":
            from rtinfer.reference_conv import geometry_attrs
            self.emit(node, Op.MAXPOOL, view, (c, 1), attrs=geometry_attrs((1, L)))
        else:
            self.emit(node, Op.GLOBAL_AVGPOOL, view, (c,))
            if op == "ReduceSum":
                y = Dyn((c,))
                self.emit(node, Op.AFFINE, y, (c,), tensors={"s": np.full(c, L, np.float32),
                                                            "t": np.zeros(c, np.float32)})
        return Dyn(out)

    def _op_Concat(self, node, x, k):
        dyns = []
        for name in node.input:
            if name not in self.dyn:
                raise self.unsupported(node, f"a constant input {name!r} (it would need the batch size)")
            dyns.append(self.dyn[name])
        kinds = {d.kind for d in dyns}
        if kinds - {"f32", "q8"} or len(kinds) > 1 or len({d.onnx_type for d in dyns}) > 1:
            raise self.unsupported(node, f"inputs of mixed or non-float kinds {sorted(kinds)}")
        self._sample_rank_match(node, dyns)
        ax = self.sample_axis(node, int(self.attrs(node).get("axis", 1 if self.opset < 4 else 0)), self.rank(x),
                              "Concat along")
        for d in dyns:
            if len(d.shape) != len(x.shape) or any(d.shape[j] != x.shape[j] for j in range(len(x.shape)) if j != ax):
                raise self.err(node, f"inputs {[d.shape for d in dyns]} differ outside axis {ax + self.lead}")
        out = list(x.shape)
        out[ax] = sum(d.shape[ax] for d in dyns)
        q = x.kind == "q8"
        self._node_src = dyns[0].src
        self.emit(node, Op.QCONCAT if q else Op.CONCAT, dyns[0], tuple(out), extra=tuple(dyns[1:]), attrs={"axis": ax})
        return Dyn(tuple(out), x.kind, x.onnx_type)

    def _slice_layer(self, node, x: Dyn, ax: int, start: int, step: int, count: int) -> Dyn:
        if x.kind not in ("f32", "q8"):
            raise self.unsupported(node, f"a slice of a {x.kind} tensor")
        out = list(x.shape)
        out[ax] = count
        op = Op.QSLICE if x.kind == "q8" else Op.SLICE
        p = self.emit(node, op, x, tuple(out), attrs={"axis": ax, "start": start, "step": step})
        return Dyn(tuple(out), x.kind, x.onnx_type, src=p)

    def _op_Split(self, node, x, k):
        if k != 0:
            raise self.unsupported(node, "the runtime tensor must be the first input")
        a = self.attrs(node)
        ax = self.sample_axis(node, int(a.get("axis", 0)), self.rank(x), "Split along")
        L = x.shape[ax]
        n_out = len(node.output)
        split = a.get("split") if self.opset < 13 else self.const(node, 1)
        if split is None:
            if "num_outputs" in a:
                n_out = int(a["num_outputs"])
            size = -(-L // n_out)
            split = [size] * (L // size) + ([L % size] if L % size else [])
            if len(split) != n_out:
                raise self.err(node, f"cannot split length {L} into {n_out} outputs")
        split = [int(v) for v in np.asarray(split).reshape(-1)]
        if len(split) != n_out or sum(split) != L or min(split) < 0:
            raise self.err(node, f"split {split} does not divide axis {ax + self.lead} of length {L} into "
                                 f"{n_out} outputs")
        outs, start = {}, 0
        for name, n in zip(node.output, split):
            if name:
                if n == 0:
                    raise self.unsupported(node, f"an empty output {name!r}")
                outs[name] = self._slice_layer(node, x, ax, start, 1, n) if n != L else x
            start += n
        return outs

    def _op_Slice(self, node, x, k):
        if k != 0:
            raise self.unsupported(node, "the runtime tensor must be the data input")
        a = self.attrs(node)
        rank = self.rank(x)
        if self.opset < 10:
            starts, ends = a.get("starts"), a.get("ends")
            axes, steps = a.get("axes"), None
        else:
            starts, ends, axes, steps = (self.const(node, i) for i in (1, 2, 3, 4))
        if starts is None or ends is None:
            raise self.err(node, "Slice needs starts and ends")
        starts = [int(v) for v in np.asarray(starts).reshape(-1)]
        ends = [int(v) for v in np.asarray(ends).reshape(-1)]
        axes = list(range(len(starts))) if axes is None else [int(v) for v in np.asarray(axes).reshape(-1)]
        steps = [1] * len(starts) if steps is None else [int(v) for v in np.asarray(steps).reshape(-1)]
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise self.err(node, "starts, ends, axes and steps differ in length")
        y = x
        for st, en, ax, sp in zip(starts, ends, axes, steps):
            ax = self._axis(node, ax, rank)
            if sp == 0:
                raise self.err(node, "a step of 0")
            if ax < self.lead:
                if self.batch is not None and range(*slice(st, en, sp).indices(self.batch)) == range(self.batch):
                    continue
                if self.batch is None and st == 0 and sp == 1 and en >= 2 ** 31 - 1:
                    continue
                raise self.batch_err(node, "a slice of the batch axis (axis 0)")
            ax -= self.lead
            L = y.shape[ax]
            r = range(*slice(st, en, sp).indices(L))
            if len(r) == 0:
                raise self.unsupported(node, f"an empty slice of axis {ax + self.lead} (starts {st}, ends {en}, "
                                             f"steps {sp})")
            if len(r) == L and sp == 1:
                continue
            self._node_src = self.src(y) if y is not x else x.src
            y = self._slice_layer(node, y, ax, r[0], r.step, len(r))
        return y

    def _op_Shape(self, node, x, k):
        """Shape of the runtime tensor: a constant, with _BATCH_MARK for a dynamic batch."""
        a = self.attrs(node)
        full = ([self.batch if self.batch is not None else _BATCH_MARK] if self.lead else []) + list(x.shape)
        rank = len(full)
        start, end = int(a.get("start", 0)), int(a.get("end", rank))
        start = min(max(start + rank if start < 0 else start, 0), rank)
        end = min(max(end + rank if end < 0 else end, 0), rank)
        value = np.array(full[start:end], dtype=np.int64)
        self.consts[node.output[0]] = value
        if _BATCH_MARK in value:
            self.batch_marked.add(node.output[0])
        return None

    def _reshape_target(self, node, s, target, allowzero):
        size = _prod(s)
        full = ((self.batch,) if self.lead else ()) + tuple(s)
        if not target and self.lead:
            raise self.batch_err(node, "Reshape to a scalar drops the batch axis")
        out = []
        for i, t in enumerate(target):
            if t == _BATCH_MARK:
                if i != 0:
                    raise self.batch_err(node, f"Reshape moves the dynamic batch size to position {i}")
                out.append(None)
            elif t == 0 and not allowzero:
                if i >= len(full):
                    raise self.err(node, f"shape {target}: 0 at position {i} copies a dimension the input lacks")
                out.append(full[i])
            elif t < -1:
                raise self.err(node, f"shape {target} has an invalid entry {t}")
            else:
                out.append(t)
        if out.count(-1) > 1:
            raise self.err(node, f"shape {target} has more than one -1")
        if not self.lead:
            if -1 in out:
                known = _prod(d for d in out if d != -1)
                if known == 0 or size % known:
                    raise self.err(node, f"cannot reshape a tensor of shape {s} to {target}")
                out = [size // known if d == -1 else d for d in out]
            if _prod(out) != size:
                raise self.err(node, f"cannot reshape a tensor of shape {s} ({size} elements) to {target}")
            return tuple(int(d) for d in out)
        first, rest = out[0], out[1:]
        if first not in (-1, None) and first != self.batch:
            raise self.batch_err(node, f"Reshape to {target} changes the batch dimension "
                                       f"(first entry must be 0, -1 or the batch size)")
        if first == -1 and -1 in rest:
            raise self.batch_err(node, f"Reshape to {target} leaves the batch dimension ambiguous")
        if -1 in rest:
            known = _prod(d for d in rest if d != -1)
            if known == 0 or size % known:
                raise self.err(node, f"cannot reshape a sample of shape {s} to {target}")
            rest = [size // known if d == -1 else d for d in rest]
        if _prod(rest) != size:
            raise self.batch_err(node, f"Reshape to {target} moves data across the batch axis "
                                       f"(sample of {size} elements -> {rest})")
        return tuple(int(d) for d in rest)

    def _op_Cast(self, node, x, k):
        to = int(self.attrs(node).get("to", 0))
        if x.kind == "unusable":
            raise self.unusable(node, x)
        if to == FLOAT and x.kind in ("dq8", "dzp"):  # DynamicQuantizeLinear's y / y_zero_point
            self.dq_origin[node.output[0]] = self.dq_origin.get(node.input[0], "")
            return Dyn(x.shape, x.kind + "f", FLOAT, src=x.src)
        if to == FLOAT:
            if x.kind in ("f32", "index", "int"):
                return Dyn(x.shape)
            if x.kind == "q8":
                return Dyn(x.shape, src=self.int_values(node, x).src)
        if to == x.onnx_type:
            return x
        if x.kind == "q8" and to == INT32:
            return Dyn(x.shape, "qint", INT32, 128 if x.onnx_type == UINT8 else 0)
        if x.kind == "index" and to in (INT32, INT64):
            return Dyn(x.shape, "index", to)
        if to in _INT_NAMES and (x.kind in ("f32", "int") or (x.kind == "q8" and x.onnx_type in _INT_ARITH_TYPES)):
            # float -> integer truncates toward zero; out-of-range values (undefined in ONNX) and
            # integer -> narrower integer wrap around (two's complement)
            if x.kind == "q8":
                x = self.int_values(node, x)
            if x.kind == "int" and to == INT32:  # int8 / uint8 values fit: nothing to compute
                return Dyn(x.shape, "int", INT32, src=x.src)
            self.emit(node, Op.ACT, x, x.shape, act=Act.WRAP, attrs=_wrap(to))
            return Dyn(x.shape, "int", to)
        raise self.unsupported(node, f"Cast from ONNX type {x.onnx_type} to {to}")

    # -- quantization ----------------------------------------------------------------------------
    def qparams(self, node, scale_idx, zp_idx, default_type):
        scale = self.const(node, scale_idx)
        if scale is None or np.asarray(scale).size != 1:
            raise self.unsupported(node, f"per-axis or blocked scale of shape "
                                          f"{None if scale is None else np.asarray(scale).shape} on the runtime tensor "
                                          f"(only per-tensor quantization of activations)")
        scale = float(np.asarray(scale, dtype=np.float32).reshape(-1)[0])
        if not (scale > 0 and math.isfinite(scale)):
            raise self.err(node, f"scale {scale} must be positive and finite")
        zp = self.const(node, zp_idx)
        if zp is None:
            ztype = default_type
            zval = 0
        else:
            zp = np.asarray(zp)
            if zp.size != 1:
                raise self.unsupported(node, f"per-axis zero point of shape {zp.shape} on the runtime tensor")
            ztype = self._zp_type(node, zp)
            zval = int(zp.reshape(-1)[0])
        internal = zval - 128 if ztype == UINT8 else zval
        return scale, internal, ztype

    def _zp_type(self, node, zp: np.ndarray) -> int:
        """The ONNX type (UINT8 / INT8) of a zero point; other dtypes are refused."""
        if zp.dtype not in (np.uint8, np.int8):
            raise self.unsupported(node, f"zero point of dtype {zp.dtype} (rtinfer quantizes to int8/uint8)")
        return UINT8 if zp.dtype == np.uint8 else INT8

    def _op_QuantizeLinear(self, node, x, k):
        self.need_float(node, x)
        if k != 0:
            raise self.unsupported(node, "the runtime tensor must be input x")
        a = self.attrs(node)
        out_type = int(a.get("output_dtype", 0)) or UINT8
        if out_type not in (UINT8, INT8):
            raise self.unsupported(node, f"output_dtype {out_type} (rtinfer quantizes to int8/uint8)")
        per_axis = self._qaxis_params(node, x, out_type)
        if per_axis is not None:
            return self._quantize_axis(node, x, *per_axis)
        scale, zp, ztype = self.qparams(node, 1, 2, out_type)
        self.emit(node, Op.QUANTIZE, x, x.shape, attrs={"y_scale": scale, "y_zp": zp})
        return Dyn(x.shape, "q8", ztype)

    def _op_DequantizeLinear(self, node, x, k):
        if k != 0:
            raise self.unsupported(node, "the runtime tensor must be input x")
        if x.kind == "int" and x.onnx_type in _INT_ARITH_TYPES:  # integer values back to codes (exact)
            zp = 0 if x.onnx_type == INT8 else -128
            p = self.emit(node, Op.QUANTIZE, x, x.shape, attrs={"y_scale": 1.0, "y_zp": zp})
            x = Dyn(x.shape, "q8", x.onnx_type, src=p)
            self._node_src = p
        if x.kind != "q8":
            raise self.unsupported(node, f"DequantizeLinear of a runtime tensor of ONNX type {x.onnx_type} "
                                          f"(only int8/uint8)")
        per_axis = self._qaxis_params(node, x, x.onnx_type)
        if per_axis is not None:
            return self._dequantize_axis(node, x, *per_axis)
        scale, zp, ztype = self.qparams(node, 1, 2, x.onnx_type)
        if ztype != x.onnx_type:
            raise self.err(node, f"zero point type {ztype} differs from the input type {x.onnx_type}")
        self.emit(node, Op.DEQUANTIZE, x, x.shape, attrs={"x_scale": scale, "x_zp": zp})
        return Dyn(x.shape)

    def _qaxis_params(self, node, x: Dyn, default_type):
        """Per-axis (1-D scale along ``axis``) or blocked (``block_size``: the scale has x's rank,
        ``axis`` cut into blocks) parameters of a QuantizeLinear / DequantizeLinear on runtime
        tensor x, as ONNX's reshape_input expands them: (scale float32, zero point int64, zero
        point ONNX type), both of rank len(x.shape) and broadcastable to the sample shape x.shape.
        None for a per-tensor scale (one value), which qparams handles."""
        a = self.attrs(node)
        scale = self.const(node, 1)
        if scale is None:
            raise self.err(node, "the scale input is missing")
        scale = np.asarray(scale)
        block = int(a.get("block_size", 0))
        if scale.size == 1:  # per tensor, whatever its rank (ONNX takes its one value)
            return None
        zp = self.const(node, 2)
        if zp is not None:
            zp = np.asarray(zp)
            if zp.shape != scale.shape:
                raise self.err(node, f"zero point of shape {zp.shape} differs from the scale's shape {scale.shape}")
            ztype = self._zp_type(node, zp)
        else:
            ztype = default_type
        rank = self.rank(x)
        full = ((None,) if self.lead else ()) + tuple(x.shape)  # None: the batch dimension
        axis = self._axis(node, int(a.get("axis", 1)), rank)
        if block < 0:
            raise self.err(node, f"block_size {block} must be positive")
        if block == 0:
            if scale.ndim != 1:
                raise self.err(node, f"per-axis scale of shape {scale.shape} must be 1-D (or give block_size)")
            if axis < self.lead:
                raise self.batch_err(node, f"per-axis scale of {scale.size} values along the batch axis (axis 0)")
            if scale.size != full[axis]:
                raise self.err(node, f"per-axis scale of {scale.size} values does not match axis {axis} of "
                                     f"{self.full(x)}")
            shape = [1] * len(x.shape)
            shape[axis - self.lead] = scale.size

            def expand(v):
                return v.reshape(shape)
        else:
            if scale.ndim != rank:
                raise self.err(node, f"blocked scale of shape {scale.shape} must have the rank of x {self.full(x)}")
            if self.lead:
                raise self.batch_err(node, f"blocked scale of shape {scale.shape} fixes the batch dimension (ONNX "
                                           f"requires the scale's shape to equal x's except along axis {axis})")
            want = tuple(-(-d // block) if i == axis else d for i, d in enumerate(full))
            if scale.shape != want:
                raise self.err(node, f"blocked scale of shape {scale.shape} does not fit x {self.full(x)} with "
                                     f"block_size {block} along axis {axis} (ONNX requires shape {want})")
            n = full[axis]

            def expand(v):
                return np.repeat(v, block, axis=axis).take(np.arange(n), axis=axis)
        s = expand(scale.astype(np.float32))
        if not (np.all(np.isfinite(s)) and np.all(s > 0)):
            raise self.err(node, "every scale must be positive and finite")
        z = expand(zp.astype(np.int64)) if zp is not None else np.zeros(s.shape, np.int64)
        return s, z, ztype

    def _exact_affine(self, node, x: Dyn, s: np.ndarray, t: np.ndarray) -> Dyn:
        """y = x * s + t as an AFFINE that no fusion rewrites (prov "exact"): per-axis Q/DQ need
        ONNX's float32 rounding step by step (fusing two AFFINEs computes x * (s1 s2) + ...)."""
        s = np.broadcast_to(np.asarray(s, np.float32), x.shape).copy()
        t = np.broadcast_to(np.asarray(t, np.float32), x.shape).copy()
        p = self.emit(node, Op.AFFINE, x, x.shape, tensors={"s": s, "t": t}, prov={"exact": True})
        return Dyn(x.shape, src=p)

    def _dequantize_axis(self, node, x: Dyn, s, z, ztype) -> Dyn:
        """Per-axis / blocked DequantizeLinear of runtime int8/uint8 codes, exactly as ONNX:
        y = float32(x - zp) * scale. DEQUANTIZE with scale 1 gives x - zp exactly (a uniform zero
        point) or x itself (then an AFFINE adds -zp, exact on integers); an AFFINE then multiplies
        by the scale and adds -0.0 (x * s + -0.0 == x * s for every float, signed zeros included)."""
        if ztype != x.onnx_type:
            raise self.err(node, f"zero point type {ztype} differs from the input type {x.onnx_type}")
        shift = -128 if x.onnx_type == UINT8 else 0  # uint8 value v is held as v - 128
        uniform = z.size == 0 or np.all(z == z.reshape(-1)[0])
        z0 = int(z.reshape(-1)[0]) if uniform and z.size else 0
        p = self.emit(node, Op.DEQUANTIZE, x, x.shape, attrs={"x_scale": 1.0, "x_zp": z0 + shift})
        d = Dyn(x.shape, src=p)
        if not uniform:
            d = self._exact_affine(node, d, 1.0, -z.astype(np.float32))
        self._exact_affine(node, d, s, np.float32(-0.0))
        return Dyn(x.shape)

    def _quantize_axis(self, node, x: Dyn, s, z, ztype) -> Dyn:
        """Per-axis / blocked QuantizeLinear of a runtime float tensor, exactly as ONNX:
        y = saturate(round_half_even(x / scale) + zp). The division is a BINARY DIV by a CONST
        (AFFINE would multiply by 1/scale, which rounds differently). A uniform zero point goes to
        the QUANTIZE (scale 1). Otherwise round_half_even(v) + zp is formed in float32 before the
        saturation: AFFINE v + C with C = 1.5 * 2^23 rounds v to an integer, ties to even (the sum's
        ulp is 1 for |v| < 2^22; C is even); AFFINE + (zp - C) is then exact. Larger |v| saturate
        either way. QUANTIZE with scale 1 saturates to int8 / uint8."""
        x = replace(x, src=self.src(x))  # before the CONST below becomes the node's last layer
        shape = tuple(s.shape)
        c = self.const_layer(f"{node.name or node.op_type}.scale", s)
        p = self.emit(node, Op.BINARY, x, x.shape, extra=(Dyn(shape, src=c),), attrs={"fn": int(Bin.DIV)})
        d = Dyn(x.shape, src=p)
        shift = -128 if ztype == UINT8 else 0
        uniform = np.all(z == z.reshape(-1)[0])
        if uniform:
            zq = int(z.reshape(-1)[0]) + shift
        else:
            big = np.float32(1.5 * 2.0 ** 23)
            d = self._exact_affine(node, d, 1.0, big)
            d = self._exact_affine(node, d, 1.0, (z.astype(np.float64) - float(big)).astype(np.float32))
            zq = shift
        self.emit(node, Op.QUANTIZE, d, x.shape, attrs={"y_scale": 1.0, "y_zp": zq})
        return Dyn(x.shape, "q8", ztype)

    def _int_weights(self, node, b, b_zp, n_out):
        """Constant integer weights minus their zero point (scalar or per column)."""
        b = np.asarray(b)
        if b.ndim != 2:
            raise self.unsupported(node, f"weights of shape {b.shape} (only 2-D constant weights)")
        if b.dtype not in (np.int8, np.uint8):
            raise self.unsupported(node, f"weights of dtype {b.dtype}")
        zp = np.zeros(1, np.int32) if b_zp is None else np.asarray(b_zp).astype(np.int32).reshape(-1)
        if zp.size not in (1, n_out):
            raise self.unsupported(node, f"weight zero point of shape {np.asarray(b_zp).shape}")
        return b.astype(np.int32) - zp[None, :]

    def _op_QLinearMatMul(self, node, x, k):
        if k != 0 or x.kind != "q8":
            raise self.unsupported(node, "the runtime tensor must be the quantized input a")
        x_scale, x_zp, xt = self.qparams(node, 1, 2, x.onnx_type)
        b = np.asarray(self.const(node, 3))
        if b.ndim < 2 or b.shape[-2] != x.shape[-1]:
            raise self.err(node, f"weights b of shape {b.shape} do not take {x.shape[-1]} inputs")
        n_out = b.shape[-1]
        w = self._int_weights(node, b.reshape(-1, n_out), self.const(node, 5), n_out).reshape(b.shape)
        b_scale = np.asarray(self.const(node, 4), np.float32).reshape(-1)
        if b_scale.size not in (1, n_out):
            raise self.unsupported(node, f"weight scale of shape {b_scale.shape}")
        w_scale = np.broadcast_to(b_scale, (n_out,)).astype(np.float32)
        if not (np.all(np.isfinite(w_scale)) and np.all(w_scale > 0)):
            raise self.err(node, f"weight scale {b_scale} must be positive and finite")
        y_zp_arr = self.const(node, 7)
        y_scale, y_zp, yt = self.qparams(node, 6, 7, UINT8 if y_zp_arr is None else None)
        if len(x.shape) == 1 and w.ndim == 2 and w.min() >= -128 and w.max() <= 127:
            self.emit(node, Op.QDENSE, x, (n_out,),
                      tensors={"W": w.astype(np.int8), "b": np.zeros(n_out, np.int32), "w_scale": w_scale},
                      attrs={"x_scale": x_scale, "x_zp": x_zp, "y_scale": y_scale, "y_zp": y_zp,
                             "qmin": quant.QMIN, "qmax": quant.QMAX})
            return Dyn((n_out,), "q8", yt)
        # Weights beyond int8 or a rank > 2 input: the same arithmetic on exact values, as
        # DEQUANTIZE (scale 1) -> DENSE (w - w_zp: exact integer sums) -> BINARY MUL by M =
        # x_scale * w_scale / y_scale -> QUANTIZE (scale 1, y_zp): round(acc * M) + y_zp, saturated.
        self.emit(node, Op.DEQUANTIZE, x, x.shape, attrs={"x_scale": 1.0, "x_zp": x_zp})
        W, out_shape = self._matmul_weights(node, Dyn(x.shape), w.astype(np.float32))
        max_dx = max(abs(-128 - x_zp), abs(127 - x_zp))
        worst = float(np.max(np.abs(W.astype(np.float64)).sum(axis=0)) * max_dx) if W.size else 0.0
        if worst >= 2.0 ** 24:
            raise self.unsupported(node, f"integer sums up to {worst:.0f} exceed 2^24, beyond what float32 "
                                          f"holds exactly")
        acc = self.emit(node, Op.DENSE, Dyn(x.shape), out_shape,
                        tensors={"W": W, "b": np.zeros(W.shape[1], np.float32)})
        m = np.broadcast_to(quant.requant_multiplier(x_scale, w_scale, y_scale), out_shape).astype(np.float32)
        cp = self.const_layer(f"{node.name or node.op_type}.multiplier", m)
        self._node_src = acc
        self.emit(node, Op.BINARY, Dyn(out_shape, src=acc), out_shape, extra=(Dyn(out_shape, src=cp),),
                  attrs={"fn": int(Bin.MUL)})
        self.emit(node, Op.QUANTIZE, Dyn(out_shape), out_shape, attrs={"y_scale": 1.0, "y_zp": y_zp})
        return Dyn(out_shape, "q8", yt)

    # -- dynamic quantization (onnxruntime's quantize_dynamic) -----------------------------------
    def _op_DynamicQuantizeLinear(self, node, x, k):
        """DynamicQuantizeLinear(x) -> y (uint8), y_scale, y_zero_point, each computed per sample
        (DYNQUANT; ONNX takes the range over the whole tensor, so a batch of one matches it).
        y becomes q = y - y_zero_point as floats (kind "dq8"), read only as input A of
        MatMulInteger / ConvInteger with this node's y_zero_point as a_zero_point (their integer
        sums are then a DENSE / CONV of q); y_scale is one float per sample that ONNX gives no
        batch axis (kind "dscale"), read only by Mul (times constants, or rescaling a runtime
        tensor: AFFINE / DENSE / BINARY); y_zero_point (kind "dzp") only as that a_zero_point."""
        self.need_float(node, x)
        base = node.name or node.op_type
        q = self.emit(node, Op.DYNQUANT, x, x.shape, attrs={"mode": 0})
        q.name = f"{base}.q"
        sc = self.emit(node, Op.DYNQUANT, x, (1,), attrs={"mode": 1})
        sc.name = f"{base}.scale"
        names = list(node.output) + [""] * (3 - len(node.output))
        outs = {}
        if names[0]:
            outs[names[0]] = Dyn(x.shape, "dq8", UINT8, src=q)
        if names[1]:
            outs[names[1]] = Dyn((), "dscale", FLOAT, src=sc)
        if names[2]:
            outs[names[2]] = Dyn((), "dzp", UINT8, src=q)
        for name in (names[0], names[2]):
            self.dq_origin[name] = names[0] or f"{base}.y"
        return outs

    def _dynamic_quant_inputs(self, node, dyn_idx):
        """The runtime inputs of a node that reads DynamicQuantizeLinear's outputs, checked: y
        and y_zero_point as MatMulInteger / ConvInteger's A and a_zero_point (the pair of one
        node; the zero point is then no separate input), or as Cast(float) of each followed by
        their difference (Sub: y - y_zero_point, as to_onnx writes it); y_scale in Mul, Reshape
        and Expand."""
        kinds = {k: self.dyn[node.input[k]].kind for k in dyn_idx}
        op = node.op_type
        if not any(v in ("dq8", "dzp", "dq8f", "dzpf", "dscale") for v in kinds.values()):
            return dyn_idx
        why = ("its input comes from DynamicQuantizeLinear (onnxruntime's quantize_dynamic), whose y and "
               "y_zero_point rtinfer takes only as input A and a_zero_point of MatMulInteger / ConvInteger "
               "(or as Cast(float) of both, subtracted), and y_scale only in Mul, Reshape and Expand")
        origin = self.dq_origin.get
        if op in ("MatMulInteger", "ConvInteger"):
            a = node.input[0]
            zp = node.input[2] if len(node.input) > 2 else ""
            if kinds.get(0) != "dq8" or set(kinds) - {0, 2} or (2 in kinds and kinds[2] != "dzp"):
                raise self.unsupported(node, why)
            if not zp or origin(zp) != origin(a):
                raise self.unsupported(node, f"input A {a!r} comes from DynamicQuantizeLinear, so a_zero_point must "
                                             f"be that node's y_zero_point, got {zp or '(none)'!r}")
            return [0]
        if op == "Cast" and kinds in ({0: "dq8"}, {0: "dzp"}):
            return dyn_idx
        if op == "Sub" and kinds == {0: "dq8f", 1: "dzpf"}:
            if origin(node.input[0]) != origin(node.input[1]):
                raise self.unsupported(node, "it subtracts the zero point of another DynamicQuantizeLinear")
            return dyn_idx
        if op == "Mul" and all(v in ("dscale", "f32", "int") for v in kinds.values()) and len(node.input) == 2:
            return dyn_idx
        if op in ("Reshape", "Expand") and kinds == {0: "dscale"}:
            return dyn_idx
        raise self.unsupported(node, why)

    def _dscale_view(self, node, d: Dyn) -> Dyn:
        """Reshape of a y_scale (its ONNX shape, no batch axis), or Expand of a one-element y_scale
        to (N, 1, ..., 1): then a runtime tensor of one value per sample (to_onnx's form)."""
        target = [int(v) for v in np.asarray(self.const(node, 1)).reshape(-1)]
        n = _prod(d.shape)
        if node.op_type == "Reshape":
            target = [d.shape[i] if v == 0 and i < len(d.shape) else v for i, v in enumerate(target)]
            try:
                shape = np.empty(d.shape, np.uint8).reshape(target).shape
            except ValueError:
                raise self.err(node, f"y_scale of shape {d.shape} cannot be reshaped to {target}") from None
            return Dyn(tuple(shape), "dscale", FLOAT, src=d.src)
        batch = (_BATCH_MARK, self.batch if self.batch is not None else _BATCH_MARK)
        if n == 1 and self.lead and target and target[0] in batch and all(v == 1 for v in target[1:]) \
                and len(target) >= len(d.shape):
            return Dyn(tuple(target[1:]), src=d.src)
        raise self.unsupported(node, f"Expand of y_scale (shape {d.shape}) to {target}; rtinfer takes only "
                                     f"(N, 1, ..., 1)")

    def _dscale_mul(self, node, dyn_idx):
        """Mul with a DynamicQuantizeLinear y_scale (kind "dscale": one value per sample, whose ONNX
        shape has no batch axis). Times a constant c: an AFFINE (c one value) or a DENSE from the
        scalar to c's values (y[j] = scale * c[j], one float32 product each), still a "dscale" of
        c's shape. Times a runtime tensor a: a BINARY MUL, the scale's shape right-aligned with a's
        sample (dims that would reach the batch axis must be 1)."""
        if len(dyn_idx) == 1:
            k = dyn_idx[0]
            d = self.dyn[node.input[k]]
            c = np.asarray(self.consts[node.input[1 - k]], np.float32)
            try:
                out = tuple(np.broadcast_shapes(d.shape, c.shape))
            except ValueError:
                raise self.err(node, f"y_scale of shape {d.shape} and a constant of shape {c.shape} do not "
                                     f"broadcast") from None
            n_d, n_out = _prod(d.shape), _prod(out)
            flat = Dyn((n_d,), src=d.src)
            cb = np.broadcast_to(c, out).reshape(-1).astype(np.float32)
            if n_out == n_d:
                s = cb if tuple(d.shape) == out else None
                if s is None:
                    raise self.unsupported(node, f"a constant of shape {c.shape} reorders y_scale of shape {d.shape}")
                self.emit(node, Op.AFFINE, flat, (n_d,), tensors={"s": s, "t": np.zeros(n_d, np.float32)})
            elif n_d == 1:
                self.emit(node, Op.DENSE, flat, (n_out,), tensors={"W": cb.reshape(1, n_out),
                                                                    "b": np.zeros(n_out, np.float32)})
            else:
                raise self.unsupported(node, f"a constant of shape {c.shape} enlarges a y_scale product of shape "
                                             f"{d.shape}")
            return Dyn(out, "dscale", FLOAT)
        a, b = self.dyn[node.input[0]], self.dyn[node.input[1]]
        if a.kind == "dscale" and b.kind == "dscale":
            raise self.unsupported(node, "a product of two DynamicQuantizeLinear scales")
        t, sc = (b, a) if a.kind == "dscale" else (a, b)
        self.need_float(node, t)
        st, ss = tuple(t.shape), tuple(sc.shape)
        if len(ss) > len(st):
            extra = ss[:len(ss) - len(st)]
            if self.lead and any(v != 1 for v in extra):
                raise self.batch_err(node, f"y_scale of shape {ss} would broadcast across the batch axis of "
                                           f"{self.full(t)}")
            if self.lead:
                ss = ss[len(ss) - len(st):]
            else:
                st = (1,) * len(extra) + st
        ss = (1,) * (len(st) - len(ss)) + ss
        try:
            out = tuple(np.broadcast_shapes(st, ss))
        except ValueError:
            raise self.err(node, f"{self.full(t)} and y_scale of shape {sc.shape} do not broadcast") from None
        ta, sa = Dyn(st, src=t.src), Dyn(ss, src=sc.src)
        first, second = (ta, sa) if t is a else (sa, ta)
        self._node_src = first.src
        self.emit(node, Op.BINARY, first, out, extra=(second,), attrs={"fn": int(Bin.MUL)})
        return Dyn(out)

    def _op_MatMulInteger(self, node, x, k):
        if k != 0 or x.kind not in ("q8", "dq8"):
            raise self.unsupported(node, "the runtime tensor must be the quantized input A")
        if len(x.shape) != 1:
            raise self.unsupported(node, f"input A of rank {len(x.shape) + 1} (only (N, K))")
        if x.kind == "dq8":  # DynamicQuantizeLinear's y - y_zero_point, already float
            zp = 0
        else:
            a_zp = self.const(node, 2)
            if a_zp is not None and np.asarray(a_zp).size != 1:
                raise self.unsupported(node, "per-row zero point of A")
            zp = int(np.asarray(a_zp).reshape(-1)[0]) if a_zp is not None else 0
            if x.onnx_type == UINT8:
                zp -= 128
        b = np.asarray(self.const(node, 1))
        if b.ndim != 2 or b.shape[0] != x.shape[0]:
            raise self.err(node, f"weights B of shape {b.shape} do not take {x.shape[0]} inputs")
        n_out = b.shape[1]
        w = self._int_weights(node, b, self.const(node, 3), n_out)
        # The integer sums run as float32 products and sums, exact while every partial sum
        # stays below 2^24: bound each output column by sum_i |w[i, j]| * max |x - zp|.
        max_dx = 255 if x.kind == "dq8" else max(abs(-128 - zp), abs(127 - zp))
        worst = float(np.max(np.abs(np.asarray(w, dtype=np.float64)).sum(axis=0) * max_dx)) if w.size else 0.0
        if worst >= 2.0 ** 24:
            raise self.unsupported(node, f"integer sums up to {worst:.0f} exceed 2^24, beyond what float32 "
                                          f"holds exactly (weights too large for an exact import)")
        if x.kind == "q8":
            self.emit(node, Op.DEQUANTIZE, x, x.shape, attrs={"x_scale": 1.0, "x_zp": zp})
        x_f = Dyn(x.shape)
        self.emit(node, Op.DENSE, x_f, (n_out,), tensors={"W": w.astype(np.float32), "b": np.zeros(n_out, np.float32)})
        return Dyn((n_out,), "int", INT32)

    def _op_Gather(self, node, x, k):
        if k != 1 or x.kind != "qint":
            raise self.unsupported(node, "only a table lookup: constant data indexed by Cast(int8/uint8 -> int32) "
                                          "(+ a constant offset)")
        data = np.asarray(self.const(node, 0))
        if data.ndim != 1 or data.dtype not in (np.int8, np.uint8) or int(self.attrs(node).get("axis", 0)) != 0:
            raise self.unsupported(node, f"table of shape {data.shape} and dtype {data.dtype} (need a 1-D int8/uint8 table)")
        lo = x.offset - 128  # index of internal value -128
        if lo < 0 or lo + 256 > data.size:
            raise self.err(node, f"table of {data.size} entries does not cover indices {lo}..{lo + 255}")
        table = data[lo:lo + 256]
        if data.dtype == np.uint8:
            table = (table.astype(np.int16) - 128).astype(np.int8)
            out_type = UINT8
        else:
            table = table.astype(np.int8)
            out_type = INT8
        # the scales are informational; _fuse copies them from the neighbouring layers
        self.emit(node, Op.QLUT, x, x.shape, tensors={"table": table},
                   attrs={"x_scale": 1.0, "x_zp": 0, "y_scale": 1.0, "y_zp": 0}, prov={"gather": True})
        return Dyn(x.shape, "q8", out_type)

    # -- ai.onnx.ml --------------------------------------------------------------------------------
    def _op_LinearClassifier(self, node, x, k):
        self.need_float(node, x)
        if len(x.shape) != 1:
            raise self.err(node, f"LinearClassifier input must have rank 2, got {len(x.shape) + 1}")
        a = self.attrs(node)
        coef = np.asarray(a.get("coefficients", []), np.float32)
        n_in = x.shape[0]
        if coef.size == 0 or coef.size % n_in:
            raise self.err(node, f"{coef.size} coefficients do not fit {n_in} features")
        n_out = coef.size // n_in
        labels = a.get("classlabels_ints") or a.get("classlabels_strings") or []
        post = a.get("post_transform", b"NONE")
        post = post.decode() if isinstance(post, bytes) else str(post)
        if n_out == 1 and len(labels) == 2:  # one score s for class 1: scores (-s, s)
            coef = np.concatenate([-coef, coef])
            b1 = np.asarray(a.get("intercepts", [0.0]), np.float32).reshape(-1)
            a = dict(a, intercepts=np.concatenate([-b1, b1]))
            n_out = 2
        W = coef.reshape(n_out, n_in).T.copy()
        b = np.asarray(a.get("intercepts", np.zeros(n_out)), np.float32).reshape(-1)
        if b.size != n_out:
            raise self.err(node, f"{b.size} intercepts for {n_out} classes")
        dense = self.emit(node, Op.DENSE, x, (n_out,), tensors={"W": W, "b": b})
        y = Dyn((n_out,))
        if post == "SOFTMAX":
            self.emit(node, Op.SOFTMAX, y, (n_out,), attrs={"outer": 1, "axis_len": n_out, "inner": 1})
        elif post == "LOGISTIC":
            self.emit(node, Op.ACT, y, (n_out,), act=Act.SIGMOID)
        elif post != "NONE":
            raise self.unsupported(node, f"post_transform={post!r}")
        # output 0: the label, the index of the highest score when the classes are 0..k-1
        outs = {node.output[-1]: replace(y, src=self.g.protos[-1])}
        if node.output[0] and list(labels) == list(range(n_out)) and not isinstance(labels[0], (str, bytes)):
            am = self.emit(node, Op.ARGMAX, Dyn((n_out,), src=dense), (1,),
                           attrs={"outer": 1, "axis_len": n_out, "inner": 1})
            outs[node.output[0]] = Dyn((), "index", INT64, src=am)
        elif node.output[0]:
            outs[node.output[0]] = Dyn((), "unusable", src=None, offset=-1)
        return outs

    def _op_ZipMap(self, node, x, k):
        """ZipMap's sequence of {class: probability} maps is returned as the probability matrix."""
        self.need_float(node, x)
        return x

    def _op_LinearRegressor(self, node, x, k):
        self.need_float(node, x)
        if len(x.shape) != 1:
            raise self.err(node, f"LinearRegressor input must have rank 2, got {self.full(x)}")
        a = self.attrs(node)
        n_in = x.shape[0]
        coef = np.asarray(a.get("coefficients", []), np.float32)
        targets = int(a.get("targets", 1))
        if coef.size != n_in * targets:
            raise self.err(node, f"{coef.size} coefficients do not fit {n_in} features x {targets} targets")
        b = np.asarray(a.get("intercepts", np.zeros(targets)), np.float32).reshape(-1)
        if b.size != targets:
            raise self.err(node, f"{b.size} intercepts for {targets} targets")
        post = a.get("post_transform", b"NONE")
        post = post.decode() if isinstance(post, bytes) else str(post)
        if post != "NONE":
            raise self.unsupported(node, f"post_transform={post!r}")
        self.emit(node, Op.DENSE, x, (targets,), tensors={"W": coef.reshape(targets, n_in).T.copy(), "b": b})
        return Dyn((targets,))

    def _op_Scaler(self, node, x, k):
        self.need_float(node, x)
        a = self.attrs(node)
        n = _prod(x.shape)
        offset = np.asarray(a.get("offset", [0.0]), np.float64).reshape(-1)
        scale = np.asarray(a.get("scale", [1.0]), np.float64).reshape(-1)
        if offset.size not in (1, n) or scale.size not in (1, n) or len(x.shape) != 1:
            raise self.err(node, f"offset/scale of {offset.size}/{scale.size} values for input (N, *{x.shape})")
        s = np.broadcast_to(scale, (n,))
        t = -np.broadcast_to(offset, (n,)) * s
        self.emit(node, Op.AFFINE, x, x.shape, tensors={"s": s.astype(np.float32), "t": t.astype(np.float32)})
        return Dyn(x.shape)

    def _op_Normalizer(self, node, x, k):
        self.need_float(node, x)
        norm = self.attrs(node).get("norm", b"MAX")
        norm = norm.decode() if isinstance(norm, bytes) else str(norm)
        last = x.src
        ok = False
        if norm == "L1" and last is not None:
            if last.op == Op.SOFTMAX and last.attrs.get("inner", 1) == 1 and last.attrs.get("outer", 1) == 1:
                ok = True
            elif last.op == Op.ACT and last.act == Act.SIGMOID and last.inputs and last.inputs[0] is not None:
                d = last.inputs[0]
                W, b = d.tensors.get("W"), d.tensors.get("b")
                ok = (d.op == Op.DENSE and W is not None and W.shape[1] == 2
                      and np.array_equal(W[:, 0], -W[:, 1]) and b[0] == -b[1])
        if not ok:
            raise self.unsupported(node, f"Normalizer norm={norm!r} (only L1 after a softmax or a symmetric "
                                         f"binary logistic, where it is the identity)")
        return x

    # -- fusion ----------------------------------------------------------------------------------
    def _fuse(self):
        from .onnx_conv import pair_rule as conv_pair, quant_rule as conv_quant

        def exact(rule):  # layers marked "exact" (per-axis Q/DQ) keep ONNX's rounding steps
            return lambda a, b: None if a.prov.get("exact") or b.prov.get("exact") else rule(a, b)
        # rtinfer's exporter writes a QAVGPOOL as DQ -> AveragePool "qavgpoolK" -> Q: its own files
        # get those layers back (other DQ -> AveragePool -> Q keep the float mean they define)
        own = self.model.producer_name == "rtinfer"

        def conv_quant_rule(dqs, mid, q):
            return conv_quant(dqs, mid, q, int_mean=own and mid.name.startswith("qavgpool"))
        onnx_ir.fuse(self.g, [exact(conv_pair), exact(_pair_rule)], [conv_quant_rule, _quant_rule])
        counts = {}
        for p in self.g.protos:
            for q in p.inputs:
                counts.setdefault(id(q), []).append(p)
        for p in self.g.protos:  # a table lookup takes the scales of its neighbours (informational)
            if p.op == Op.QLUT and p.prov.get("gather"):
                src = p.inputs[0]
                if src is not None and src.op in (Op.QUANTIZE, Op.QDENSE, Op.QLUT):
                    p.attrs["x_scale"], p.attrs["x_zp"] = src.attrs["y_scale"], src.attrs["y_zp"]
                readers = counts.get(id(p), [])
                if len(readers) == 1 and readers[0].op in (Op.DEQUANTIZE, Op.QDENSE, Op.QLUT):
                    p.attrs["y_scale"], p.attrs["y_zp"] = readers[0].attrs["x_scale"], readers[0].attrs["x_zp"]


def _wraps_to(p, onnx_type) -> bool:
    """p (a Proto, None for the input) ends in a WRAP onto onnx_type's range."""
    w = _wrap(onnx_type)
    return p is not None and p.act == Act.WRAP and {k: p.attrs.get(k) for k in w} == w


def _pair_rule(a: Proto, b: Proto):
    """Float fusions of a layer a with its only reader b (export.onnx_ir.fuse): "a", "b" or None."""
    if a.act != Act.IDENTITY:
        return None
    if a.op in (Op.DENSE, Op.AFFINE, Op.BINARY) and b.op == Op.ACT:
        a.act, a.attrs = b.act, dict(a.attrs, **{k: v for k, v in b.attrs.items() if k in ("alpha", "beta")})
        a.out_shape = b.out_shape
        return "a"
    if a.op == Op.DENSE and b.op == Op.AFFINE:
        s, t = b.tensors["s"].reshape(-1), b.tensors["t"].reshape(-1)
        W, bias = a.tensors["W"], a.tensors["b"]
        if s.size != W.shape[1]:
            return None
        if np.all(s == 1):
            if "t" in b.prov and not np.any(bias) and "b" not in a.prov:
                a.prov["b"] = b.prov["t"]
            else:
                a.prov.pop("b", None)
            a.tensors["b"] = (bias + t).astype(np.float32)
        else:
            a.prov.pop("W", None)
            a.prov.pop("b", None)
            a.tensors["W"] = (W * s[None, :]).astype(np.float32)
            a.tensors["b"] = (bias * s + t).astype(np.float32)
        a.act, a.attrs, a.out_shape = b.act, dict(b.attrs), b.out_shape
        return "a"
    if a.op == Op.AFFINE and b.op == Op.AFFINE:
        s1, t1 = a.tensors["s"].reshape(-1), a.tensors["t"].reshape(-1)
        s2, t2 = b.tensors["s"].reshape(-1), b.tensors["t"].reshape(-1)
        if s1.size != s2.size:
            return None
        b.tensors = {"s": (s1 * s2).astype(np.float32).reshape(b.in_shape),
                     "t": (t1 * s2 + t2).astype(np.float32).reshape(b.in_shape)}
        b.in_shape = a.in_shape if _prod(a.in_shape) == _prod(b.in_shape) else b.in_shape
        b.prov = {}
        return "b"
    if a.op == Op.AFFINE and b.op == Op.DENSE and "W" not in b.prov:
        s, t = a.tensors["s"].reshape(-1), a.tensors["t"].reshape(-1)
        W = b.tensors["W"].astype(np.float64)
        if s.size != W.shape[0]:
            return None
        b.tensors["b"] = (t.astype(np.float64) @ W + b.tensors["b"]).astype(np.float32)
        b.tensors["W"] = (s[:, None].astype(np.float64) * W).astype(np.float32)
        b.prov.pop("b", None)
        b.in_shape = a.in_shape
        return "b"
    return None


def _same_qparams(dq: Proto, q: Proto) -> bool:
    return (float(np.float32(dq.attrs["x_scale"])), int(dq.attrs["x_zp"])) == \
        (float(np.float32(q.attrs["y_scale"])), int(q.attrs["y_zp"]))


def _quant_rule(dqs: list, mid: Proto, q: Proto):
    """DequantizeLinear(s) -> mid -> QuantizeLinear as one int8 layer (export.onnx_ir.fuse)."""
    ys, yzp = q.attrs["y_scale"], int(q.attrs["y_zp"])
    dq = dqs[0]
    xs, xzp = dq.attrs["x_scale"], int(dq.attrs["x_zp"])
    if mid.op == Op.DENSE and "W" in mid.prov and mid.act in (Act.IDENTITY, Act.RELU, Act.CLIP):
        Wq, w_scale = mid.prov["W"]
        bq = None
        if "b" in mid.prov:
            cand, b_scale = mid.prov["b"]
            ref = (np.float64(np.float32(xs)) * w_scale.astype(np.float64)).astype(np.float32)
            if np.allclose(b_scale, ref, rtol=1e-6, atol=0):
                bq = cand.astype(np.int32)
        if bq is None:
            bq = quant.quantize_bias(mid.tensors["b"], xs, w_scale)
        qmin, qmax = qclamp(mid.act, mid.attrs, ys, yzp)
        return Proto(Op.QDENSE, mid.in_shape, mid.out_shape, name=mid.name,
                     tensors={"W": Wq.astype(np.int8), "b": bq, "w_scale": w_scale.astype(np.float32)},
                     attrs={"x_scale": xs, "x_zp": xzp, "y_scale": ys, "y_zp": yzp, "qmin": qmin, "qmax": qmax})
    if mid.op == Op.ACT:
        act = mid.act
        alpha, beta = ACT_DEFAULTS[act]
        alpha, beta = float(mid.attrs.get("alpha", alpha)), float(mid.attrs.get("beta", beta))
        from rtinfer.activations import activation
        table = quant.build_lut(lambda v: activation(v, act, alpha, beta), xs, xzp, ys, yzp)
        # attrs "act" (an Act code), alpha, beta: the activation the table was built from
        attrs = {"x_scale": xs, "x_zp": xzp, "y_scale": ys, "y_zp": yzp, "act": int(act)}
        attrs.update({k: v for k, v in mid.attrs.items() if k in ("alpha", "beta")})
        return Proto(Op.QLUT, mid.in_shape, mid.out_shape, name=mid.name, tensors={"table": table}, attrs=attrs)
    if mid.op == Op.BINARY and len(dqs) == 2 and mid.act in (Act.IDENTITY, Act.RELU, Act.CLIP):
        fn = Bin(int(mid.attrs["fn"]))
        if fn == Bin.DIV:
            return None
        qmin, qmax = qclamp(mid.act, mid.attrs, ys, yzp)
        b = dqs[1]
        return Proto(Op.QBINARY, mid.in_shape, mid.out_shape, name=mid.name,
                     attrs={"fn": int(fn), "a_scale": xs, "a_zp": xzp, "b_scale": b.attrs["x_scale"],
                            "b_zp": int(b.attrs["x_zp"]), "y_scale": ys, "y_zp": yzp, "qmin": qmin, "qmax": qmax})
    if mid.op == Op.CONCAT:
        new = Proto(Op.QCONCAT, mid.in_shape, mid.out_shape, name=mid.name,
                    attrs={"axis": mid.attrs["axis"], "y_scale": ys, "y_zp": yzp})
        pre = []
        for k, d in enumerate(dqs):
            if not _same_qparams(d, q):  # QLinearConcat: requantize this input to the output's scale
                pre.append((k, onnx_ir.rule_requantize(d, q)))
        return (new, pre) if pre else new
    if mid.op == Op.SLICE and _same_qparams(dq, q):
        return Proto(Op.QSLICE, mid.in_shape, mid.out_shape, name=mid.name,
                     attrs=dict(mid.attrs, y_scale=ys, y_zp=yzp))
    return None


def from_onnx(src, output: str | None = None) -> FrozenModel:
    """Translate an ONNX model (path, bytes or ModelProto) into a FrozenModel.

    output: the name of the graph output to translate (default: see the module docstring).
    Raises OnnxImportError (a ValueError) for unsupported or malformed models.
    """
    model, base_dir = _load_model(src)
    no_batch = any(p.key == "batch" and p.value == "none" for p in model.metadata_props)
    try:
        return _import(model, base_dir, output, no_batch)
    except BatchAxisError as exc:
        if no_batch or not _first_dim_fixed(model):
            raise
        first = exc
    # The first dimension is fixed and an op acts across it: the whole input is one sample.
    try:
        return _import(model, base_dir, output, True)
    except OnnxImportError as exc:
        raise OnnxImportError(f"{exc} (imported without a batch axis because, with one: {first})") from exc


def _first_dim_fixed(model) -> bool:
    init = {t.name for t in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in init]
    dims = ins[0].type.tensor_type.shape.dim if len(ins) == 1 else []
    return all(d.HasField("dim_value") and d.dim_value > 0 for d in dims)


def _import(model, base_dir, output, no_batch: bool) -> FrozenModel:
    importer = _Importer(model, base_dir, output, no_batch)
    try:
        frozen = importer.run()
        # computed shapes (broadcasts, concatenations, pads) are bounded like declared ones, so
        # every imported model is a valid .rtm file (MAX_SHAPE_ELEMS there is the same 2^28)
        for i, layer in enumerate(frozen.layers):
            n = max(math.prod(layer.in_shape), math.prod(layer.out_shape))
            if n > MAX_TENSOR_ELEMENTS:
                raise OnnxImportError(f"layer {i} ({layer.op.name} {layer.name!r}) computes a tensor of {n} elements "
                                      f"per sample (shape {layer.out_shape}); the limit is {MAX_TENSOR_ELEMENTS}")
        return frozen
    except OnnxImportError:
        raise
    except (TypeError, KeyError, IndexError, AttributeError, ValueError, ArithmeticError, UnicodeError) as exc:
        # a field of an unexpected type or value in a corrupt model, caught here so callers see
        # one error type; valid models do not take this path
        node = importer.current
        where = f" at node {node.name!r} ({node.op_type})" if node is not None else ""
        raise OnnxImportError(f"malformed ONNX model{where}: {type(exc).__name__}: {exc}") from exc
