"""Fuzz the ONNX importer, then plan and run what it imports, with mutated and hostile models.

    python fuzz/fuzz_onnx.py --n 10000 --seed 1 --json onnx.json      # long run, supervised workers
    python fuzz/fuzz_onnx.py --n 2000 --seed 3 --jobs 2
    python -c "import sys; sys.path.insert(0, 'fuzz'); import fuzz_onnx as f; print(f.check(*f.case(1, 77)[1:]))"

``from_onnx`` promises OnnxImportError (a ValueError) for every malformed or unsupported model;
protobuf's DecodeError is wrapped into it. Every case is a pure function of (seed, index):
``case(seed, i)`` returns (family, model bytes, output) where ``output`` is None or the list of
graph outputs to translate (``from_onnx(data, output=...)``). Like fuzz_rtm.py, a case runs
the whole pipeline in a supervised worker (fuzz/_driver.py: RLIMIT_AS 2 GiB above the warmed-up
worker, a time limit, crashes caught):

1. ``from_onnx`` (traced by tracemalloc): ``rejected`` with OnnxImportError, or imported;
   an imported model must survive an .rtm round trip (to_bytes, then the reader's checks);
2. ``rtinfer.load``: ``refused`` with PlanError, or planned;
3. small models run through every entry point (fuzz/_pipeline.py): ``ran`` or ``planned``.

Findings: ``escaped`` (another exception type at any stage, MemoryError's own class apart),
``memory`` (MemoryError), ``import_memory`` (a traced peak above MEM_FACTOR * model bytes +
MEM_SLACK + FOLD_BYTES, one folded constant at the importer's cap), ``roundtrip`` (an imported
model the .rtm reader refuses), ``mismatch`` (entry points disagree), and from the driver
``crash`` and ``hang``. Recorded as notes, not findings: models rtinfer imports that onnxruntime
refuses to load or run (``ort_refuses``) and outputs that differ from onnxruntime's
(``ort_differs``; rtol 1e-3, atol 1e-4 for float models, 1 LSB-equivalent for quantized ones
is not attempted), and workers that died inside onnxruntime (``ort_crashes``), each with
examples to review.

Families: bytes (bit flips, byte sets, truncations, random bytes), initializer dims (wrong
rank, 0, negative, 10^12 elements), deleted initializers, initializer dtypes, truncated raw
data, external data (paths with "..", absolute paths, drive letters, missing files, huge
offsets/lengths), cycles, undefined inputs, op types/domains, attributes, graph input shapes
and types, outputs, opset/IR versions, duplicate writers of one tensor, constant folds that
would create ~10^8..10^12 elements, many folds under the per-node cap; and for the graph ops:
``graph_binary`` (Add/Sub/Mul/Div/Max/Min of two runtime tensors, broadcasting or not),
``graph_concat`` (Concat of 1..600 runtime tensors on any axis), ``graph_split`` (Split with
sizes, counts and axes valid or not), ``graph_slice`` (Slice with starts/ends/axes/steps up to
+-2^63), ``multi_output`` (extra graph outputs: intermediates, the input, constants, duplicates,
translated by name), ``window_attrs`` (Conv/MaxPool/AveragePool kernel_shape, strides, pads,
dilations set to 2^16..2^63, 0 or negative, or such a pool inserted on the runtime tensor),
``huge_declared`` (initializers, value_info and graph inputs declaring 2^28..2^40 elements or
gigabytes in a few bytes, any element type), ``huge_input`` (a graph input of 2^20..2^28
elements per sample feeding elementwise, Concat and pool ops).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import tracemalloc
import warnings
import zlib

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
sys.path.insert(0, _HERE)
sys.path.insert(1, _ROOT)

from _driver import mark, run_supervised, start_case, worker_main  # noqa: E402
from _pipeline import classify_exception, close, examples, exercise, signature  # noqa: E402

MEM_FACTOR = 16
MEM_SLACK = 4 * 1024 * 1024
# The importer may fold a constant of up to MAX_EXPANDED_ELEMENTS (2^24) elements whatever the
# file size (its documented cap); float64 intermediates make that 8 bytes each.
FOLD_BYTES = 8 * (1 << 24)

GOLDEN = ("sklearn_logreg", "sklearn_mlp", "torch_mlp", "torch_mlp_qdq", "torch_view", "two_branch_ts", "mbv2_block_ts")

FAMILY_WEIGHTS = (
    ("bytes_flip", 2), ("bytes_set", 2), ("bytes_truncate", 2), ("bytes_random", 1), ("init_dims", 2),
    ("init_delete", 2), ("init_dtype", 2), ("init_raw", 2), ("external", 2), ("cycle", 2), ("undefined_input", 2),
    ("op_type", 3), ("attribute", 3), ("input_shape", 2), ("output", 2), ("versions", 2), ("duplicate_output", 3),
    ("huge_fold", 2), ("many_folds", 1),
    ("graph_binary", 7), ("graph_concat", 6), ("graph_split", 6), ("graph_slice", 6), ("multi_output", 6),
    ("window_attrs", 7), ("huge_declared", 5), ("huge_input", 5),
)
FAMILIES = tuple(f for f, _ in FAMILY_WEIGHTS)
FINDINGS = ("escaped", "memory", "import_memory", "roundtrip", "mismatch")

OPS = ("Gemm", "MatMul", "Relu", "Add", "Mul", "Sub", "Div", "Softmax", "LogSoftmax", "ArgMax", "Reshape",
       "Flatten", "Transpose", "Squeeze", "Unsqueeze", "QuantizeLinear", "DequantizeLinear", "QLinearMatMul",
       "Cast", "Gather", "Conv", "LSTM", "If", "Loop", "Scan", "Identity", "Constant", "ConstantOfShape",
       "Expand", "Tile", "Range", "Concat", "Split", "Slice", "BatchNormalization", "Clip", "Bogus", "",
       "MaxPool", "AveragePool", "GlobalAveragePool", "Max", "Min", "ReduceMean")
EXTERNAL_PATHS = ("../secret.bin", "../../etc/passwd", "/etc/passwd", "sub/../../x.bin", "..\\x.bin",
                  "C:\\x.bin", "c:x.bin", "", "missing.bin", "weights.bin", "./weights.bin", "a/" * 50 + "w.bin",
                  "\x00.bin")
EXTREME_INTS = (0, -1, -2, 2, 3, 1 << 16, 1 << 24, 1 << 28, 1 << 30, (1 << 31) - 1, 1 << 31, 1 << 32,
                (1 << 63) - 1, -(1 << 31), -(1 << 63))
HUGE_COUNTS = (1 << 20, 1 << 22, 1 << 24, 1 << 26, 1 << 28)


# ------------------------------------------------------------------------------ base models

def _graph_ops_model():
    """x (N, 12) -> Split into 3 x 4 -> Add(a, b), Sub(c, a), Mul, Div by (relu + 1), Max, Min,
    Concat of four runtime tensors, Slice, Relu: every graph op on runtime tensors, two outputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    one = numpy_helper.from_array(np.ones(4, np.float32), "one")
    starts = numpy_helper.from_array(np.array([1], np.int64), "st")
    ends = numpy_helper.from_array(np.array([15], np.int64), "en")
    axes = numpy_helper.from_array(np.array([1], np.int64), "ax")
    steps = numpy_helper.from_array(np.array([2], np.int64), "sp")
    split = numpy_helper.from_array(np.array([4, 4, 4], np.int64), "split")
    nodes = [
        helper.make_node("Split", ["x", "split"], ["a", "b", "c"], axis=1),
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("Sub", ["c", "a"], ["d"]),
        helper.make_node("Mul", ["s", "d"], ["m"]),
        helper.make_node("Relu", ["b"], ["rb"]),
        helper.make_node("Add", ["rb", "one"], ["rb1"]),
        helper.make_node("Div", ["m", "rb1"], ["q"]),
        helper.make_node("Max", ["q", "a"], ["mx"]),
        helper.make_node("Min", ["mx", "c"], ["mn"]),
        helper.make_node("Concat", ["s", "d", "mn", "q"], ["cat"], axis=1),
        helper.make_node("Slice", ["cat", "st", "en", "ax", "sp"], ["sl"]),
        helper.make_node("Relu", ["sl"], ["y"]),
        helper.make_node("Tanh", ["cat"], ["z"]),
    ]
    g = helper.make_graph(nodes, "graph_ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 7]),
                           helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 16])],
                          [one, starts, ends, axes, steps, split])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def base_models():
    """Serialized ONNX models: golden torch/sklearn files (MLPs, QDQ, a two-branch CNN, a
    MobileNetV2 block), rtinfer exports of the fuzz base models (chains, residual, two-output,
    fp32 and int8 CNNs, an int8 LUT), and a graph of every graph op on runtime tensors."""
    from export.onnx_export import to_onnx
    from models import base_models as bm
    from rtinfer._testmodels import fp32_mlp, int8_mlp
    out = []
    for name in GOLDEN:
        with open(os.path.join(_ROOT, "tests", "data", "onnx", name + ".onnx"), "rb") as f:
            out.append(f.read())
    out.append(to_onnx(fp32_mlp([6, 5, 4], head="argmax")).SerializeToString())
    out.append(to_onnx(int8_mlp([6, 5, 3], lut=lambda v: np.sin(3 * v), head="softmax")).SerializeToString())
    for m in bm()[2:]:
        out.append(to_onnx(m).SerializeToString())
    out.append(_graph_ops_model())
    return out


_BASES = None
_INFO: dict[int, dict] = {}


def base_bytes() -> list[bytes]:
    global _BASES
    if _BASES is None:
        _BASES = base_models()
    return _BASES


def runtime_tensors(m) -> dict:
    """name -> per-sample shape (None if unknown) of every tensor computed from the graph input,
    from ONNX shape inference."""
    import onnx
    try:
        inferred = onnx.shape_inference.infer_shapes(m)
    except Exception:  # noqa: BLE001 - a base that does not infer: shapes unknown
        inferred = m
    g = inferred.graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims[1:]):
            shapes[vi.name] = tuple(d.dim_value for d in dims[1:])
    inits = {t.name for t in g.initializer}
    live = {i.name: None for i in g.input if i.name not in inits}  # a dict: graph order, not hash order
    for node in g.node:
        if any(i in live for i in node.input):
            live.update((o, None) for o in node.output if o)
    return {name: shapes.get(name) for name in live}


def _info(k: int) -> dict:
    if k not in _INFO:
        import onnx
        m = onnx.load_model_from_string(base_bytes()[k])
        _INFO[k] = {"runtime": runtime_tensors(m), "float_input": m.graph.input[0].type.tensor_type.elem_type == 1}
    return _INFO[k]


# ------------------------------------------------------------------------------ mutations

def _huge_dim(rnd):
    return rnd.choice((10 ** 12, 10 ** 6, 1 << 31, (1 << 63) - 1, 3 * 10 ** 8, 10 ** 9))


def _producer(g, name):
    for node in g.node:
        for k, o in enumerate(node.output):
            if o == name:
                return node, k
    return None, None


def _retarget_output(g, new_name, rnd, extra_ok=True):
    """Make ``new_name`` reach the graph: as the first output (renaming), or as an extra output."""
    from onnx import helper
    if g.output and rnd.random() < 0.5:
        g.output[0].name = new_name
        g.output[0].type.tensor_type.ClearField("shape")
    elif extra_ok:
        g.output.append(helper.make_tensor_value_info(new_name, 1, None))


def _graph_edit(rnd, family, m, base_k):
    """The graph-op families: new nodes on runtime tensors of the base model."""
    from onnx import helper, numpy_helper
    g = m.graph
    info = _info(base_k)
    names = [n for n in info["runtime"] if n]
    if not names:
        return None
    pick = lambda: rnd.choice(names)  # noqa: E731
    out_req = None
    if family == "graph_binary":
        a, b = pick(), pick()
        op = rnd.choice(("Add", "Sub", "Mul", "Div", "Max", "Min"))
        if rnd.random() < 0.3:  # a broadcast: b as (N, L, 1) against a as (N, 1, L)
            g.initializer.append(numpy_helper.from_array(np.array([0, -1, 1], np.int64), "fz_col"))
            g.initializer.append(numpy_helper.from_array(np.array([0, 1, -1], np.int64), "fz_row"))
            g.node.extend([helper.make_node("Reshape", [a, "fz_col"], ["fz_a"]),
                           helper.make_node("Reshape", [b, "fz_row"], ["fz_b"])])
            a, b = "fz_a", "fz_b"
        g.node.append(helper.make_node(op, [a, b], ["fz_out"]))
        _retarget_output(g, "fz_out", rnd)
    elif family == "graph_concat":
        k = rnd.choice((1, 2, 3, 4, 50, 600))
        ins = [pick() if rnd.random() < 0.3 else names[0] for _ in range(k)]
        if rnd.random() < 0.5:
            ins = [pick()] * k
        axis = rnd.choice((1, -1, 2, -2, 0, 3, 1 << 31, -(1 << 31)))
        g.node.append(helper.make_node("Concat", ins, ["fz_out"], axis=axis))
        _retarget_output(g, "fz_out", rnd)
    elif family == "graph_split":
        x = pick()
        shape = info["runtime"][x] or (4,)
        axis = rnd.choice((1, 1, -1, 2, 0, 5, 1 << 31))
        L = shape[min(max(axis - 1, 0), len(shape) - 1)] if shape else 4
        n_out = rnd.choice((1, 2, 3, 4, 7))
        outs = [f"fz_s{j}" for j in range(n_out)]
        inputs = [x]
        kw = {"axis": axis}
        how = rnd.randrange(4)
        if how == 0:  # explicit sizes (an input at opset >= 13), valid or not
            sizes = [L // n_out] * (n_out - 1) + [L - (L // n_out) * (n_out - 1)]
            if rnd.random() < 0.4:
                sizes[rnd.randrange(n_out)] = rnd.choice((0, -1, L + 1, 1 << 31, (1 << 63) - 1))
            g.initializer.append(numpy_helper.from_array(np.array(sizes, np.int64), "fz_split"))
            inputs.append("fz_split")
        elif how == 1:  # opset 18: num_outputs
            kw["num_outputs"] = rnd.choice((n_out, 0, -1, L + 1, 1 << 31))
        outs_used = outs if rnd.random() < 0.5 else [rnd.choice(outs)]
        g.node.append(helper.make_node("Split", inputs, outs, **kw))
        if rnd.random() < 0.7:
            g.node.append(helper.make_node("Add", [outs_used[0], outs_used[-1]], ["fz_out"]))
            _retarget_output(g, "fz_out", rnd)
        else:
            for o in outs_used:
                g.output.append(helper.make_tensor_value_info(o, 1, None))
            out_req = outs_used
    elif family == "graph_slice":
        x = pick()
        big = (0, 1, 2, -1, -3, 7, 1 << 31, (1 << 63) - 1, -(1 << 63), 1 << 62)
        n = rnd.randint(1, 2)
        vals = {"st": [rnd.choice(big) for _ in range(n)], "en": [rnd.choice(big) for _ in range(n)],
                "ax": [rnd.choice((1, -1, 2, 0, 3)) for _ in range(n)],
                "sp": [rnd.choice((1, 1, 2, -1, -2, 0, (1 << 63) - 1)) for _ in range(n)]}
        for key, v in vals.items():
            g.initializer.append(numpy_helper.from_array(np.array(v, np.int64), "fz_" + key))
        ins = [x, "fz_st", "fz_en"] + (["fz_ax", "fz_sp"] if rnd.random() < 0.8 else [])
        g.node.append(helper.make_node("Slice", ins, ["fz_out"]))
        _retarget_output(g, "fz_out", rnd)
    elif family == "multi_output":
        extra = rnd.sample(names, min(len(names), rnd.randint(1, 3)))
        if rnd.random() < 0.15 and g.initializer:
            extra.append(g.initializer[0].name)   # a constant as an output
        if rnd.random() < 0.15 and g.output:
            extra.append(g.output[0].name)        # the same output twice
        for name in extra:
            g.output.append(helper.make_tensor_value_info(name, 1, None))
        outs = [o.name for o in g.output]
        if rnd.random() < 0.7:
            out_req = rnd.sample(outs, min(len(outs), rnd.randint(2, 4)))
            if rnd.random() < 0.2:
                out_req.append(out_req[0])
    return out_req


def _window_attrs(rnd, m, base_k):
    """Extreme window geometry on an existing Conv/MaxPool/AveragePool, or a pool inserted on
    the runtime tensor (reshaped to (N, 1, L))."""
    from onnx import AttributeProto, helper, numpy_helper
    g = m.graph
    wins = [n for n in g.node if n.op_type in ("Conv", "MaxPool", "AveragePool", "ConvInteger", "QLinearConv")]
    value = lambda: rnd.choice(EXTREME_INTS)  # noqa: E731
    if wins and rnd.random() < 0.6:
        node = rnd.choice(wins)
        key = rnd.choice(("kernel_shape", "strides", "pads", "dilations", "group", "ceil_mode", "auto_pad",
                          "count_include_pad"))
        for a in list(node.attribute):
            if a.name == key:
                node.attribute.remove(a)
        rank = 2
        if key in ("kernel_shape", "strides", "dilations"):
            node.attribute.append(helper.make_attribute(key, [value() if rnd.random() < 0.7 else 1
                                                              for _ in range(rank)]))
        elif key == "pads":
            node.attribute.append(helper.make_attribute(key, [value() if rnd.random() < 0.5 else 0
                                                              for _ in range(2 * rank)]))
        elif key == "auto_pad":
            node.attribute.append(helper.make_attribute(key, rnd.choice(("SAME_UPPER", "SAME_LOWER", "VALID", "X"))))
        else:
            a = helper.make_attribute(key, value())
            a.type = AttributeProto.INT
            node.attribute.append(a)
        return None
    names = [n for n in _info(base_k)["runtime"] if n]
    x = rnd.choice(names)
    g.initializer.append(numpy_helper.from_array(np.array([0, 1, -1], np.int64), "fz_shape3"))
    op = rnd.choice(("MaxPool", "AveragePool", "MaxPool"))
    kw = {"kernel_shape": [rnd.choice((1, 2, 3) + EXTREME_INTS)]}
    if rnd.random() < 0.6:
        kw["strides"] = [rnd.choice((1, 2) + EXTREME_INTS)]
    if rnd.random() < 0.6:
        kw["pads"] = [rnd.choice((0, 1) + EXTREME_INTS), rnd.choice((0, 1) + EXTREME_INTS)]
    if rnd.random() < 0.3:
        kw["dilations"] = [rnd.choice((1, 2) + EXTREME_INTS)]
    if op == "AveragePool" and rnd.random() < 0.5:
        kw["count_include_pad"] = rnd.choice((0, 1))
    g.node.extend([helper.make_node("Reshape", [x, "fz_shape3"], ["fz_r"]),
                   helper.make_node(op, ["fz_r"], ["fz_out"], **kw)])
    _retarget_output(g, "fz_out", rnd)
    return None


def _huge_declared(rnd, m):
    """Gigabytes or 2^28..2^40 elements declared by a few bytes: initializers (any element
    type, raw data short or missing), value_info and graph input dims."""
    from onnx import TensorProto, helper
    g = m.graph
    choice = rnd.randrange(4)
    if choice == 0 and g.initializer:  # an initializer's dims, raw data left as is
        t = rnd.choice(list(g.initializer))
        t.dims[:] = [rnd.choice(HUGE_COUNTS + (1 << 30, 1 << 40))] + ([rnd.choice((1, 2, 16))] if rnd.random() < 0.5 else [])
    elif choice == 1:  # a new, unused or used initializer of a wide type and huge dims
        t = TensorProto()
        t.name = "fz_big"
        t.data_type = rnd.choice((TensorProto.COMPLEX128, TensorProto.DOUBLE, TensorProto.FLOAT, TensorProto.STRING,
                                  TensorProto.INT64, TensorProto.COMPLEX64, TensorProto.UINT4, TensorProto.FLOAT16))
        t.dims.extend([rnd.choice((1 << 24, 1 << 27, 1 << 28, 1 << 29, 1 << 33))])
        if rnd.random() < 0.5:
            t.raw_data = b"\x00" * rnd.choice((0, 8, 64))
        g.initializer.append(t)
        if rnd.random() < 0.5 and g.node:  # read it: Add to the first node's output
            node = g.node[0]
            if node.output:
                g.node.append(helper.make_node("Add", [node.output[0], "fz_big"], ["fz_out"]))
                _retarget_output(g, "fz_out", rnd)
    elif choice == 2:  # value_info / output dims
        vis = list(g.value_info) + list(g.output)
        if vis:
            vi = rnd.choice(vis)
            tt = vi.type.tensor_type
            del tt.shape.dim[:]
            for d in ["N"] + [rnd.choice((1 << 14, 1 << 20, 1 << 28)) for _ in range(rnd.randint(1, 3))]:
                if isinstance(d, str):
                    tt.shape.dim.add().dim_param = d
                else:
                    tt.shape.dim.add().dim_value = d
    else:  # the graph input: dims of 2^20..2^40 elements
        tt = g.input[0].type.tensor_type
        dims = list(tt.shape.dim)
        if len(dims) >= 2:
            dims[rnd.randrange(1, len(dims))].dim_value = rnd.choice(HUGE_COUNTS + (1 << 31, 1 << 40))
    return None


def _huge_input(rnd):
    """A small graph whose input holds 2^20..2^28 elements per sample, through elementwise,
    broadcast, Concat, Split and pool ops (the planner and its arena must bound them)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    total = rnd.choice(HUGE_COUNTS)
    c = rnd.choice((1, 2, 4))
    shape = [c, total // c]
    x = "x"
    nodes, inits = [], []
    cur, cur_shape = x, shape
    for k in range(rnd.randint(1, 4)):
        kind = rnd.choice(("relu", "add", "concat", "pool", "split", "softmax", "bcast"))
        out = f"t{k}"
        if kind == "relu":
            nodes.append(helper.make_node(rnd.choice(("Relu", "Tanh", "Sigmoid", "Exp")), [cur], [out]))
        elif kind == "add":
            nodes.append(helper.make_node(rnd.choice(("Add", "Mul", "Div")), [cur, rnd.choice((cur, x))], [out]))
        elif kind == "concat":
            nodes.append(helper.make_node("Concat", [cur] * rnd.choice((2, 3, 16)), [out], axis=rnd.choice((1, 2, -1))))
        elif kind == "pool":
            kw = {"kernel_shape": [rnd.choice((2, 3, 1 << 16, 1 << 28, (1 << 31) - 1))]}
            if rnd.random() < 0.5:
                kw["pads"] = [rnd.choice((0, 1, 1 << 20, 1 << 28))] * 2
            nodes.append(helper.make_node(rnd.choice(("MaxPool", "AveragePool")), [cur], [out], **kw))
        elif kind == "split":
            nodes.append(helper.make_node("Split", [cur], [out, out + "_b"], axis=rnd.choice((1, 2)),
                                          **({"num_outputs": 2} if rnd.random() < 0.5 else {})))
        elif kind == "softmax":
            nodes.append(helper.make_node("Softmax", [cur], [out], axis=rnd.choice((-1, 1, 2))))
        else:  # (N, C, L, 1) * (N, C, 1, L): L^2 elements
            inits += [numpy_helper.from_array(np.array([0, 0, -1, 1], np.int64), f"c{k}"),
                      numpy_helper.from_array(np.array([0, 0, 1, -1], np.int64), f"r{k}")]
            nodes += [helper.make_node("Reshape", [cur, f"c{k}"], [f"a{k}"]),
                      helper.make_node("Reshape", [cur, f"r{k}"], [f"b{k}"]),
                      helper.make_node("Mul", [f"a{k}", f"b{k}"], [out])]
        cur = out
    g = helper.make_graph(nodes, "huge", [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N"] + cur_shape)],
                          [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", rnd.choice((13, 17, 18)))])
    m.ir_version = 8
    return m.SerializeToString()


def _mutate_api(rnd, family, data: bytes, base_k: int):
    """(model bytes, output request) for a family that edits the model through the onnx API."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    m = onnx.load_model_from_string(data)
    g = m.graph
    nodes, inits = list(g.node), list(g.initializer)
    out_req = None
    if family in ("graph_binary", "graph_concat", "graph_split", "graph_slice", "multi_output"):
        out_req = _graph_edit(rnd, family, m, base_k)
    elif family == "window_attrs":
        _window_attrs(rnd, m, base_k)
    elif family == "huge_declared":
        _huge_declared(rnd, m)
    elif family == "init_dims" and inits:
        t = rnd.choice(inits)
        choice = rnd.randrange(5)
        if choice == 0:
            t.dims.append(rnd.choice((1, 2, 7)))                       # rank + 1
        elif choice == 1 and len(t.dims):
            del t.dims[-1]                                             # rank - 1
        elif choice == 2:
            t.dims[:] = [_huge_dim(rnd), _huge_dim(rnd)]               # ~10^12 elements and more
        elif choice == 3:
            t.dims[:] = [rnd.choice((0, -1, -(1 << 62)))] + list(t.dims[1:])
        else:
            t.dims[:] = [10 ** 12] + list(t.dims[1:])
    elif family == "init_delete" and inits:
        del g.initializer[rnd.randrange(len(inits))]
    elif family == "init_dtype" and inits:
        rnd.choice(inits).data_type = rnd.choice((0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 17, 21, 23, 40, 999))
    elif family == "init_raw" and inits:
        t = rnd.choice(inits)
        if t.raw_data:
            t.raw_data = t.raw_data[:rnd.randrange(len(t.raw_data))]
        else:
            del t.float_data[:]
            del t.int64_data[:]
            del t.int32_data[:]
    elif family == "external" and inits:
        t = rnd.choice(inits)
        t.data_location = TensorProto.EXTERNAL
        t.ClearField("raw_data")
        del t.external_data[:]
        e = t.external_data.add()
        e.key, e.value = "location", rnd.choice(EXTERNAL_PATHS)
        if rnd.random() < 0.5:
            e = t.external_data.add()
            e.key, e.value = rnd.choice(("offset", "length")), str(rnd.choice((0, -1, 10 ** 12, 1 << 63, 17)))
    elif family == "cycle" and len(nodes) >= 1:
        i = rnd.randrange(len(nodes))
        j = rnd.randrange(i, len(nodes))                               # a later node (or itself)
        if nodes[j].output and nodes[i].input:
            k = rnd.randrange(len(nodes[i].input))
            g.node[i].input[k] = nodes[j].output[0]
    elif family == "undefined_input" and nodes:
        n = g.node[rnd.randrange(len(nodes))]
        if n.input:
            n.input[rnd.randrange(len(n.input))] = rnd.choice(("nope", "", "x" * 300))
    elif family == "op_type" and nodes:
        n = g.node[rnd.randrange(len(nodes))]
        if rnd.random() < 0.8:
            n.op_type = rnd.choice(OPS)
        else:
            n.domain = rnd.choice(("com.evil", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"))
    elif family == "attribute" and nodes:
        n = g.node[rnd.randrange(len(nodes))]
        if n.attribute and rnd.random() < 0.7:
            a = n.attribute[rnd.randrange(len(n.attribute))]
            if a.type == onnx.AttributeProto.INT:
                a.i = rnd.choice((-1, 0, 1, 2, 7, 1 << 31, -(1 << 62), 10 ** 12))
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = rnd.choice((float("nan"), float("inf"), -1.0, 0.0, 1e38))
            elif a.type == onnx.AttributeProto.INTS:
                a.ints[:] = [rnd.choice((-5, -1, 0, 1, 3, 10 ** 9)) for _ in range(rnd.randrange(5))]
            elif a.type == onnx.AttributeProto.TENSOR:
                a.t.dims[:] = [10 ** 12]
            else:
                a.type = rnd.choice((onnx.AttributeProto.INT, onnx.AttributeProto.STRING, onnx.AttributeProto.GRAPH))
        elif n.attribute:
            del n.attribute[rnd.randrange(len(n.attribute))]
        else:
            n.attribute.append(helper.make_attribute(rnd.choice(("axis", "transB", "alpha", "perm", "to")),
                                                     rnd.choice((1, -3, 2.5, [0, 2, 1], 10 ** 9))))
    elif family == "input_shape" and g.input:
        vi = g.input[0]
        tt = vi.type.tensor_type
        choice = rnd.randrange(5)
        if choice == 0:
            tt.shape.dim.add().dim_value = rnd.choice((1, 3, 10 ** 12))
        elif choice == 1 and len(tt.shape.dim):
            del tt.shape.dim[-1]
        elif choice == 2 and len(tt.shape.dim) > 1:
            d = tt.shape.dim[rnd.randrange(1, len(tt.shape.dim))]
            if rnd.random() < 0.5:
                d.dim_value = rnd.choice((0, 1, 2, 10 ** 12, (1 << 63) - 1))
            else:
                d.dim_param = "D"
        elif choice == 3:
            tt.elem_type = rnd.choice((0, 2, 3, 5, 6, 7, 9, 10, 11, 16))
        else:
            vi.type.ClearField("tensor_type")
    elif family == "output":
        choice = rnd.randrange(4)
        if choice == 0 and g.output:
            g.output[0].name = rnd.choice(("nope", g.input[0].name if g.input else "x",
                                           inits[0].name if inits else "y"))
        elif choice == 1:
            del g.output[:]
        elif choice == 2 and g.output:
            o = g.output.add()
            o.CopyFrom(g.output[0])
            o.name = nodes[0].output[0] if nodes and nodes[0].output else "z"
        elif g.output:
            g.output[0].type.tensor_type.elem_type = rnd.choice((7, 3, 0))
    elif family == "versions":
        if rnd.random() < 0.5:
            m.ir_version = rnd.choice((0, 1, 3, 7, 11, 99, (1 << 63) - 1))
        else:
            del m.opset_import[:]
            if rnd.random() < 0.8:
                m.opset_import.append(helper.make_opsetid("", rnd.choice((1, 6, 9, 13, 99, 10 ** 6))))
    elif family == "duplicate_output" and len(nodes) >= 2:  # two nodes write one tensor
        i, j = rnd.sample(range(len(nodes)), 2)
        if nodes[i].output and nodes[j].output:
            g.node[j].output[0] = nodes[i].output[0]
    elif family == "many_folds" and g.output and nodes:
        # Many constant folds, each under the per-node cap, whose results all stay alive.
        out_name = g.output[0].name
        producer = [n for n in g.node if out_name in n.output]
        if not producer:
            return m.SerializeToString(), None
        producer[-1].output[list(producer[-1].output).index(out_name)] = "pre_fuzz"
        size = rnd.choice((1 << 20, 1 << 23, 1 << 24))
        g.initializer.append(numpy_helper.from_array(np.array([size], np.int64), "fz_shape"))
        prev, k = "pre_fuzz", rnd.choice((3, 20, 200))
        for i in range(k):
            g.node.extend([helper.make_node("ConstantOfShape", ["fz_shape"], [f"fz_c{i}"]),
                           helper.make_node("ReduceMax", [f"fz_c{i}"], [f"fz_s{i}"], keepdims=0),
                           helper.make_node("Add", [prev, f"fz_s{i}"], [out_name if i == k - 1 else f"fz_a{i}"])])
            prev = f"fz_a{i}"
    elif family == "huge_fold" and g.input and nodes:
        # A constant subgraph whose folding would create a huge tensor, reduced to a scalar and
        # added to the runtime tensor just before the output, so the importer must evaluate it.
        n = rnd.choice((3 * 10 ** 7, 10 ** 8, 10 ** 9, 10 ** 12))
        out_name = g.output[0].name if g.output else "y"
        last, idx = _producer(g, out_name)
        if last is None:
            return m.SerializeToString(), None
        last.output[idx] = "pre_fuzz"
        kind = rnd.choice(("cos", "expand", "tile", "range", "add", "matmul"))
        new, side = [], int(n ** 0.5)
        if kind == "cos":
            g.initializer.append(numpy_helper.from_array(np.array([n], np.int64), "fz_shape"))
            new.append(helper.make_node("ConstantOfShape", ["fz_shape"], ["fz_big"]))
        elif kind == "expand":
            g.initializer.append(numpy_helper.from_array(np.ones((1, 1), np.float32), "fz_one"))
            g.initializer.append(numpy_helper.from_array(np.array([side, side], np.int64), "fz_shape"))
            new.append(helper.make_node("Expand", ["fz_one", "fz_shape"], ["fz_big"]))
        elif kind == "tile":
            g.initializer.append(numpy_helper.from_array(np.ones((2, 2), np.float32), "fz_one"))
            g.initializer.append(numpy_helper.from_array(np.array([side // 2, side // 2], np.int64), "fz_rep"))
            new.append(helper.make_node("Tile", ["fz_one", "fz_rep"], ["fz_big"]))
        elif kind == "range":
            for nm, v in (("fz_a", 0.0), ("fz_b", float(n)), ("fz_c", 1.0)):
                g.initializer.append(numpy_helper.from_array(np.array(v, np.float32), nm))
            new.append(helper.make_node("Range", ["fz_a", "fz_b", "fz_c"], ["fz_big"]))
        else:
            g.initializer.append(numpy_helper.from_array(np.ones((side, 1), np.float32), "fz_col") if side <= 4096
                                 else numpy_helper.from_array(np.ones((4096, 1), np.float32), "fz_col"))
            g.initializer.append(numpy_helper.from_array(np.ones((1, 4096), np.float32), "fz_row"))
            new.append(helper.make_node("Add" if kind == "add" else "MatMul", ["fz_col", "fz_row"], ["fz_mid"]))
            reps = [n // 4096 // 4096 + 1, 1] + ([1] if rnd.random() < 0.3 else [])  # 3 values: invalid Tile
            g.initializer.append(numpy_helper.from_array(np.array(reps, np.int64), "fz_rep"))
            new.append(helper.make_node("Tile", ["fz_mid", "fz_rep"], ["fz_big"]))
        new.append(helper.make_node("ReduceMax", ["fz_big"], ["fz_s"], keepdims=0))
        new.append(helper.make_node("Add", ["pre_fuzz", "fz_s"], [out_name]))
        g.node.extend(new)
    return m.SerializeToString(), out_req


def _pick_family(rnd) -> str:
    total = sum(w for _, w in FAMILY_WEIGHTS)
    r = rnd.random() * total
    for fam, w in FAMILY_WEIGHTS:
        r -= w
        if r < 0:
            return fam
    return FAMILY_WEIGHTS[-1][0]


def ort_deaths_as_notes(out: dict) -> dict:
    """Move workers that died (crash or hang) while onnxruntime ran a model into the notes
    (``ort_crashes``): rtinfer had imported and run that model already, so the death is
    onnxruntime's, not a finding (e.g. onnxruntime 1.32 segfaults on a LayerNormalization whose
    optional bias input is named "")."""
    dead = [c for kind in ("crashes", "hangs") for c in out[kind] if c.get("stage") == "onnxruntime"]
    if not dead:
        return out
    for kind in ("crashes", "hangs"):
        out[kind] = [c for c in out[kind] if c.get("stage") != "onnxruntime"]
    for sig in ("crash:onnxruntime", "hang:onnxruntime"):
        out.get("signatures", {}).pop(sig, None)
    out.setdefault("notes", {}).setdefault("ort_crashes", [])
    out["notes"]["ort_crashes"] += dead[:max(0, 20 - len(out["notes"]["ort_crashes"]))]
    out.setdefault("n_notes", {})["ort_crashes"] = out.get("n_notes", {}).get("ort_crashes", 0) + len(dead)
    return out


def case(seed: int, index: int):
    """Mutation number ``index`` of run ``seed``: (family, model bytes, output request or None)."""
    rnd = random.Random(f"onnx:{seed}:{index}")
    k = rnd.randrange(len(base_bytes()))
    base = base_bytes()[k]
    family = FAMILIES[index % len(FAMILIES)] if index < 4 * len(FAMILIES) else _pick_family(rnd)
    if family == "bytes_flip":
        buf = bytearray(base)
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(len(buf))
            buf[i] ^= 1 << rnd.randrange(8)
        return family, bytes(buf), None
    if family == "bytes_set":
        buf = bytearray(base)
        for _ in range(rnd.randint(1, 4)):
            buf[rnd.randrange(len(buf))] = rnd.choice((0, 0xFF, 0x7F, 0x80, 0x08, 0x12, 0x1A, rnd.randrange(256)))
        return family, bytes(buf), None
    if family == "bytes_truncate":
        return family, base[:rnd.randrange(len(base))], None
    if family == "bytes_random":
        n = rnd.choice((0, 1, 2, 16, 256, 4096))
        out = rnd.randbytes(n)
        if rnd.random() < 0.5:
            out = base[:rnd.randrange(64)] + out
        return family, out, None
    if family == "huge_input":
        return family, _huge_input(rnd), None
    data, out_req = _mutate_api(rnd, family, base, k)
    return family, data, out_req


# ------------------------------------------------------------------------------ one case

def import_model(data: bytes, output=None, tracing: bool = True):
    """from_onnx alone: (outcome, traced peak, FrozenModel or None, detail); outcome
    "rejected", "loaded" or a finding ("escaped", "memory", "import_memory")."""
    from export.onnx_import import OnnxImportError, from_onnx
    if tracing:
        tracemalloc.start()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
    model, detail = None, ""
    try:
        model = from_onnx(data, output=output)
        outcome = "loaded"
    except OnnxImportError:
        outcome = "rejected"
    except Exception as exc:  # noqa: BLE001 - any other type is the finding
        outcome, detail = classify_exception(exc, "parse")
    peak = 0
    if tracing:
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    if outcome in ("rejected", "loaded") and peak > MEM_FACTOR * len(data) + MEM_SLACK + FOLD_BYTES:
        outcome, detail = "import_memory", f"traced peak {peak} B for a {len(data)} B model"
    return outcome, peak, model, detail


def _ort_check(data: bytes, fm, seed: int, info: dict) -> None:
    """onnxruntime on the same model and inputs: notes ort_refuses / ort_differs in info."""
    try:
        import onnxruntime as ort
    except ImportError:
        return
    import onnx
    from rtinfer.runtime import Runtime
    m = onnx.load_model_from_string(data)
    if m.graph.input[0].type.tensor_type.elem_type != 1 or fm.meta.get("onnx.input_dtype"):
        return
    names = fm.meta.get("onnx.output", "").split(",")
    # what from_onnx translated: the requested outputs and the nodes they need (it prunes the
    # rest; onnxruntime would validate every node); output types left to onnxruntime
    g = m.graph
    by_name = {o.name: o for o in g.output}
    if any(n not in by_name for n in names):
        return
    keep = [by_name[n] for n in dict.fromkeys(names)]
    producer = {o: node for node in g.node for o in node.output if o}
    needed, stack = set(), list(names)
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            stack.extend(i for i in node.input if i)
    kept_nodes = [node for node in g.node if id(node) in needed]
    del g.node[:]
    g.node.extend(kept_nodes)
    del g.output[:]
    for o in keep:
        o.ClearField("type")
        g.output.append(o)
    data = m.SerializeToString()
    names = list(dict.fromkeys(names))
    mark("onnxruntime")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((4,) + tuple(fm.input_shape)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.intra_op_num_threads = 1
    try:
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        feed_shape = [d.dim_value if d.HasField("dim_value") else None for d in m.graph.input[0].type.tensor_type.shape.dim]
        Xo = X if feed_shape[0] in (None, 0, 4) else np.ascontiguousarray(np.resize(X, (feed_shape[0],) + X.shape[1:]))
        want = sess.run(names, {m.graph.input[0].name: Xo})
    except Exception as exc:  # noqa: BLE001 - onnxruntime's verdict, recorded
        info["ort_refuses"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        return
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        got = Runtime(fm, nonfinite="allow", batch="exact").predict(Xo)
    got = got if isinstance(got, tuple) else (got,)
    if len(names) != len(fm.meta.get("onnx.output", "").split(",")):  # an output requested twice
        pos = {n: k for k, n in enumerate(names)}
        want = [want[pos[n]] for n in fm.meta["onnx.output"].split(",")]
    if fm.is_quantized:  # int8 agrees with onnxruntime to about 1 LSB per layer (tested in the
        return           # suite); LSB flips add up across layers, so only loading is compared here
    atol = 1e-4
    if len(got) != len(want) or not close(tuple(g.reshape(-1) for g in got),
                                          tuple(np.asarray(w, dtype=np.float64).reshape(-1) for w in want),
                                          rtol=1e-3, atol=atol):
        info["ort_differs"] = f"outputs {names}"


def check(data: bytes, output=None, seed: int = 0, tracing: bool = True, run: bool = True,
          ort: bool = True) -> dict:
    """The whole pipeline for one model (see the module doc)."""
    from rtinfer.rtm import RtmFormatError, from_bytes, to_bytes
    mark("parse")
    outcome, peak, model, detail = import_model(data, output, tracing)
    res = {"outcome": outcome, "detail": detail, "parse_peak": peak, "info": {}}
    if outcome != "loaded":
        return res
    try:  # everything from_onnx produces must also be a valid .rtm file
        from_bytes(to_bytes(model))
    except RtmFormatError as exc:
        res["outcome"], res["detail"] = "roundtrip", f"rtm round trip: {str(exc)[:300]}"
        return res
    if not run:
        return res
    try:
        outcome, detail, info = exercise(model, seed)
        res["info"] = info
        if outcome == "ran" and ort and info.get("work", 1 << 30) <= 1 << 20:
            _ort_check(data, model, seed, info)
    except Exception as exc:  # noqa: BLE001 - an escaped type is the finding
        from _driver import current_stage
        outcome, detail = classify_exception(exc, current_stage())
    res["outcome"], res["detail"] = outcome, detail
    return res


def warm_up() -> None:
    """Imports, onnx.reference, compiled code, onnxruntime: once, before the memory limit."""
    warnings.simplefilter("ignore")
    for k, data in enumerate(base_bytes()):
        _info(k)
        check(data, seed=k, tracing=False)
    case(0, 4 * len(FAMILIES) + 1)


def run_range(seed: int, start: int, stop: int, survivors_dir: str | None = None, max_survivors: int = 0,
              run: bool = True, ort: bool = True) -> dict:
    """Run cases [start, stop) in this process (see fuzz_rtm.run_range)."""
    from rtinfer.rtm import to_bytes
    warnings.simplefilter("ignore")
    counts: dict[str, dict[str, int]] = {}
    findings, signatures = [], {}
    notes = {"ort_refuses": [], "ort_differs": [], "batch_differs": [], "reference_differs": []}
    n_notes = {k: 0 for k in notes}
    res = {"max_parse_peak": 0, "max_parse_peak_index": None, "max_runtime_bytes": 0, "max_runtime_bytes_index": None,
           "max_batch_path_bytes": 0, "max_batch_path_bytes_index": None,
           "max_case_seconds": 0.0, "max_case_seconds_index": None}
    saved, seen, slow = 0, set(), 0
    for i in range(start, stop):
        start_case(i)
        family, data, output = case(seed, i)
        t0 = time.perf_counter()
        try:
            r = check(data, output, seed=i, run=run, ort=ort)
        except MemoryError as exc:
            r = {"outcome": "memory", "detail": f"{type(exc).__name__}: {exc}", "parse_peak": 0, "info": {}}
        dt = time.perf_counter() - t0
        slow += dt > 1.0
        if dt > res["max_case_seconds"]:
            res["max_case_seconds"], res["max_case_seconds_index"] = dt, i
        if r["parse_peak"] > res["max_parse_peak"]:
            res["max_parse_peak"], res["max_parse_peak_index"] = r["parse_peak"], i
        info = r["info"]
        for key in ("runtime_bytes", "batch_path_bytes"):
            if info.get(key, 0) > res["max_" + key]:
                res["max_" + key], res[f"max_{key}_index"] = info[key], i
        outcome = r["outcome"]
        counts.setdefault(family, {}).setdefault(outcome, 0)
        counts[family][outcome] += 1
        if outcome in FINDINGS:
            rec = {"index": i, "family": family, "outcome": outcome, "detail": r["detail"]}
            findings.append(rec)
            sig = signature(rec)
            signatures[sig] = signatures.get(sig, 0) + 1
        for key, flag in (("ort_refuses", "ort_refuses" in info), ("ort_differs", "ort_differs" in info),
                          ("batch_differs", info.get("batch_close") is False),
                          ("reference_differs", info.get("reference_close") is False)):
            if flag:
                n_notes[key] += 1
                if len(notes[key]) < 10:
                    notes[key].append({"index": i, "family": family, "detail": info.get(key, "")})
        if survivors_dir is not None and saved < max_survivors and outcome in ("ran", "refused", "planned"):
            try:
                from export.onnx_import import from_onnx
                raw = to_bytes(from_onnx(data, output=output))
            except Exception:  # noqa: BLE001
                continue
            h = zlib.crc32(raw)
            if h not in seen:
                seen.add(h)
                with open(os.path.join(survivors_dir, f"o{seed}_{i}.rtm"), "wb") as f:
                    f.write(raw)
                saved += 1
    res.update({"seed": seed, "start": start, "stop": stop, "counts": counts, "findings": examples(findings),
                "n_findings": len(findings), "signatures": signatures, "notes": notes, "n_notes": n_notes,
                "slow_cases": slow, "survivors_saved": saved})
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=1000, help="cases per worker process")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--mem-gb", type=float, default=2.0, help="RLIMIT_AS headroom per worker, GiB (default 2)")
    ap.add_argument("--case-timeout", type=float, default=60.0)
    ap.add_argument("--no-ort", action="store_true", help="skip the onnxruntime comparison")
    ap.add_argument("--survivors", default=None)
    ap.add_argument("--max-survivors", type=int, default=100)
    ap.add_argument("--worker", nargs=3, type=int, metavar=("SEED", "START", "STOP"), help=argparse.SUPPRESS)
    ap.add_argument("--progress", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.worker:
        seed, start, stop = args.worker
        return worker_main(run_range, warm_up, seed, start, stop, args.progress, args.mem_gb,
                           survivors_dir=args.survivors, max_survivors=args.max_survivors if args.survivors else 0,
                           ort=not args.no_ort)
    extra = (("--no-ort",) if args.no_ort else ()) + (
        ("--survivors", args.survivors, "--max-survivors", str(args.max_survivors)) if args.survivors else ())
    if args.survivors:
        os.makedirs(args.survivors, exist_ok=True)
    out = run_supervised(os.path.abspath(__file__), args.seed, args.n, args.chunk,
                         ("max_parse_peak", "max_runtime_bytes", "max_batch_path_bytes", "max_case_seconds"), jobs=args.jobs,
                         case_timeout=args.case_timeout, mem_gb=args.mem_gb, extra=extra, start=args.start,
                         log=lambda s: print(s, file=sys.stderr, flush=True))
    ort_deaths_as_notes(out)
    from fuzz_rtm import run_survivors, summarize
    surv = run_survivors(args.survivors) if args.survivors else None
    summary = summarize(out, args.seed, surv)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    ok = not out["n_findings"] and not out["crashes"] and not out["hangs"] and not (surv and surv["errors"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
