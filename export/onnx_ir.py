"""The ONNX importer's intermediate graph and its passes (NumPy + rtinfer only, no onnx).

export.onnx_import (the dispatcher) and the op families below it (export.onnx_conv, ...)
translate ONNX nodes into ``Proto`` layers that read ``Dyn`` runtime tensors; this module turns
that graph into a FrozenModel:

    g = IrGraph()                  # g.protos: layers in emission (topological) order
    ... g.add(Proto(...)) ...      # Proto.inputs: the Protos it reads (None: the model input)
    recognize_activations(g)       # elementwise subgraphs of one tensor -> one activation
    fuse(g, pair_rules, quant_rules)   # DENSE + ACT, DQ -> op -> Q -> int8 op, ...
    frozen = build(g, input_shape, outputs, meta)

A Proto's ``pseudo`` names an ONNX op that only exists during import (Greater, Where, Sqrt,
Pow, ...): it may only be part of a subgraph that ``recognize_activations`` replaces; one that
survives is refused with OnnxImportError naming the ONNX node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rtinfer.frozen import BufferBuilder, FrozenModel, FrozenModelError, Layer, Output
from rtinfer.ops import ACT_DEFAULTS, N_INPUTS, VARIADIC_OPS, Act, Bin, Op
from rtinfer.quant import QMAX, QMIN


class OnnxImportError(ValueError):
    """The ONNX model is malformed or uses an op, attribute or shape rtinfer cannot run."""


# ONNX TensorProto element types used by the importer.
FLOAT, UINT8, INT8, INT32, INT64, BOOL = 1, 2, 3, 6, 7, 9


class _Auto:
    def __repr__(self):
        return "AUTO"


AUTO = _Auto()  # Dyn.src placeholder: "the layer this node emitted last, else its input's source"


@dataclass(frozen=True)
class Dyn:
    """A runtime tensor: its per-sample shape, what its values mean and which Proto holds them.

    kind "f32": float values.  "q8": int8 held internally (uint8 values are stored as q - 128).
    "index": float values that ONNX types as int64 (ArgMax).  "int": integer-valued floats that
    ONNX types as int32 (MatMulInteger, ConvInteger).  "qint": ONNX int32 = internal int8 +
    offset (a Cast of a quantized tensor, feeding a Gather table lookup). "bool": 0/1 floats
    (comparisons; only inside recognized activations). "unusable": a secondary output.
    src: the Proto whose output holds the values (None: the model input; AUTO: see above).
    """
    shape: tuple[int, ...]
    kind: str = "f32"
    onnx_type: int = FLOAT
    offset: int = 0
    src: object = AUTO


@dataclass(eq=False)
class Proto:
    """A layer under construction: tensors are NumPy arrays until the buffers are built."""
    op: Op | None
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    act: Act = Act.IDENTITY
    tensors: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    name: str = ""
    prov: dict = field(default_factory=dict)  # "W": (Wq, w_scale); "b": (bq, b_scale); "t": (bq, scale)
    inputs: list = field(default_factory=list)  # Protos read (None: the model input)
    in_shapes: list = field(default_factory=list)  # per input, the shape it is read as
    pseudo: str = ""  # ONNX op of an import-only elementwise node (op is None)
    args: list = field(default_factory=list)  # pseudo: ("in", k) or ("const", value) per ONNX input


class IrGraph:
    """Protos in topological order, the model outputs (Protos, or None for the input) and a
    consumer count per Proto."""

    def __init__(self):
        self.protos: list[Proto] = []
        self.outputs: list = []

    def add(self, p: Proto) -> Proto:
        self.protos.append(p)
        return p

    def counts(self) -> dict[int, int]:
        """Readers of each Proto (a layer reading it twice counts twice; an output counts once)."""
        n: dict[int, int] = {id(p): 0 for p in self.protos}
        for p in self.protos:
            for q in p.inputs:
                if q is not None:
                    n[id(q)] = n.get(id(q), 0) + 1
        for q in self.outputs:
            if q is not None:
                n[id(q)] = n.get(id(q), 0) + 1
        return n

    def replace(self, old: Proto, new) -> None:
        """Every reader of old reads new instead."""
        for p in self.protos:
            p.inputs = [new if q is old else q for q in p.inputs]
        self.outputs = [new if q is old else q for q in self.outputs]

    def is_output(self, p: Proto) -> bool:
        return any(q is p for q in self.outputs)


# -- attributes shared by the op families ---------------------------------------------------------

def window_attrs(spatial, kernel, a: dict) -> tuple[list, list, list, list]:
    """(strides, dilations, pad begins, pad ends) of an ONNX Conv / pool window over ``spatial``
    from its attributes (strides, dilations, pads, auto_pad NOTSET / VALID / SAME_UPPER /
    SAME_LOWER); ValueError naming what does not fit."""
    nd = len(spatial)
    kernel = [int(v) for v in kernel]
    strides = [int(v) for v in a.get("strides", [1] * nd)]
    dil = [int(v) for v in a.get("dilations", [1] * nd)]
    if len(kernel) != nd or min(kernel, default=1) < 1:
        raise ValueError(f"kernel_shape {kernel} does not match {nd} spatial dims")
    if len(strides) != nd or len(dil) != nd or min(strides + dil, default=1) < 1:
        raise ValueError(f"strides {strides} / dilations {dil} must be {nd} values >= 1")
    if a.get("ceil_mode", 0) not in (0, 1):  # ONNX allows 0 and 1 only (onnxruntime reads 2 as floor)
        raise ValueError(f"ceil_mode {a.get('ceil_mode')!r} must be 0 or 1")
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad in ("NOTSET", ""):
        pads = [int(v) for v in a.get("pads", [0] * (2 * nd))]
        if len(pads) != 2 * nd or min(pads, default=0) < 0:
            raise ValueError(f"pads {pads} must be {2 * nd} values >= 0")
        return strides, dil, pads[:nd], pads[nd:]
    if auto_pad == "VALID":
        return strides, dil, [0] * nd, [0] * nd
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for n, k, st, d in zip(spatial, kernel, strides, dil):
            total = max(0, (-(-n // st) - 1) * st + (k - 1) * d + 1 - n)
            small = total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else total - small)
            ends.append(total - begins[-1])
        return strides, dil, begins, ends
    raise ValueError(f"unknown auto_pad {auto_pad!r}")


def qclamp(act: Act, attrs: dict, ys: float, yzp: int) -> tuple[int, int]:
    """The int8 clamp [qmin, qmax] of a fused ReLU / Clip at output scale ys, zero point yzp."""
    qmin, qmax = QMIN, QMAX
    if act == Act.RELU:
        qmin = yzp
    elif act == Act.CLIP:
        lo, hi = attrs.get("alpha", -math.inf), attrs.get("beta", math.inf)
        if math.isfinite(lo):
            qmin = int(np.clip(np.rint(np.float32(lo) / np.float32(ys)) + yzp, QMIN, QMAX))
        if math.isfinite(hi):
            qmax = int(np.clip(np.rint(np.float32(hi) / np.float32(ys)) + yzp, QMIN, QMAX))
    return qmin, qmax


# -- dead code -----------------------------------------------------------------------------------

def prune(g: IrGraph) -> None:
    """Drop the Protos no output depends on."""
    live = set()
    stack = [q for q in g.outputs if q is not None]
    while stack:
        p = stack.pop()
        if id(p) in live:
            continue
        live.add(id(p))
        stack.extend(q for q in p.inputs if q is not None)
    g.protos = [p for p in g.protos if id(p) in live]


# -- activations written as elementwise subgraphs --------------------------------------------------

def _uniform(v) -> float | None:
    v = np.asarray(v).reshape(-1)
    if v.size and np.all(v == v[0]):
        return float(v[0])
    return None


def _scalar_elementwise(p: Proto) -> bool:
    """p computes the same scalar function on every element of its (same-shaped) inputs."""
    if p.pseudo:
        return True
    if p.op == Op.ACT:
        return True
    if p.op == Op.AFFINE:
        return _uniform(p.tensors["s"]) is not None and _uniform(p.tensors["t"]) is not None
    if p.op == Op.BINARY:
        return len(p.in_shapes) == 2 and math.prod(p.in_shapes[0]) == math.prod(p.in_shapes[1]) \
            == math.prod(p.out_shape)
    return False


def _eval_pseudo(p: Proto, vals: list):
    def arg(a):
        return vals[a[1]] if a[0] == "in" else a[1]
    args = [arg(a) for a in p.args]
    op = p.pseudo
    with np.errstate(all="ignore"):
        if op == "Greater":
            return (args[0] > args[1]).astype(np.float64)
        if op == "Less":
            return (args[0] < args[1]).astype(np.float64)
        if op == "GreaterOrEqual":
            return (args[0] >= args[1]).astype(np.float64)
        if op == "LessOrEqual":
            return (args[0] <= args[1]).astype(np.float64)
        if op == "Where":
            return np.where(np.asarray(args[0]) != 0, args[1], args[2])
        if op == "Sqrt":
            return np.sqrt(args[0])
        if op == "Log":
            return np.log(args[0])
        if op == "Reciprocal":
            return 1.0 / args[0]
        if op == "Pow":
            return np.power(args[0], args[1])
    raise KeyError(op)  # pragma: no cover - _PSEUDO_OPS lists what is built


PSEUDO_OPS = ("Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Where", "Sqrt", "Log", "Reciprocal", "Pow")

# Activations recognized from their values, with their parameters.
_CANDIDATES = [
    (Act.SILU, {}), (Act.GELU, {}), (Act.GELU_TANH, {}), (Act.HARD_SWISH, {}), (Act.MISH, {}),
    (Act.SOFTPLUS, {}), (Act.SIGMOID, {}), (Act.TANH, {}), (Act.RELU, {}), (Act.ELU, {}),
    (Act.SELU, {}), (Act.HARD_SIGMOID, {"alpha": 1.0 / 6.0, "beta": 0.5}), (Act.CLIP, {"alpha": 0.0, "beta": 6.0}),
    (Act.IDENTITY, {}),
]
_PROBE = np.concatenate([np.linspace(-12.0, 12.0, 4801), [-60.0, -30.0, -20.5, 20.5, 30.0, 60.0]])


_MAX_REGION = 32  # layers in one recognized activation


def _key(q):
    return None if q is None else id(q)


def _region(g: IrGraph, sink: Proto, counts: dict):
    """Yield (root, members in graph order, root key) for each tensor r such that sink computes
    a scalar function of r alone: every backward path from sink runs through scalar-elementwise
    layers to r, and no member but sink is read outside the region. Nearer roots first."""
    # candidate roots: tensors met walking back through elementwise layers, nearest first
    cands, seen, frontier = [], set(), [sink]
    while frontier and len(seen) <= _MAX_REGION:
        nxt = []
        for p in frontier:
            for q in p.inputs:
                if _key(q) in seen:
                    continue
                seen.add(_key(q))
                cands.append(q)
                if q is not None and _scalar_elementwise(q):
                    nxt.append(q)
        frontier = nxt
    for r in cands:
        members, stack, ok = {}, [sink], True
        while stack and ok:
            p = stack.pop()
            if id(p) in members:
                continue
            members[id(p)] = p
            if len(members) > _MAX_REGION:
                ok = False
            for q in p.inputs:
                if _key(q) == _key(r):
                    continue
                if q is None or not _scalar_elementwise(q):
                    ok = False  # another tensor feeds the function
                    break
                stack.append(q)
        if not ok or len(members) < 2:
            continue
        if any(p is not sink and sum(1 for m in members.values() for q in m.inputs if q is p) != counts[id(p)]
               for p in members.values()):
            continue  # a member is also used outside the region
        yield r, [p for p in g.protos if id(p) in members], _key(r)


def _evaluate(order: list, root_id, x: np.ndarray) -> np.ndarray:
    from rtinfer.activations import activation
    vals: dict[int, np.ndarray] = {}

    def val(q):
        key = id(q) if q is not None else None
        return x if key == root_id else vals[id(q)]

    y = x
    with np.errstate(all="ignore"):
        for p in order:
            ins = [val(q) for q in p.inputs]
            if p.pseudo:
                y = _eval_pseudo(p, ins)
            elif p.op == Op.ACT:
                alpha, beta = ACT_DEFAULTS[p.act]
                alpha, beta = float(p.attrs.get("alpha", alpha)), float(p.attrs.get("beta", beta))
                y = activation(ins[0], p.act, alpha, beta).astype(np.float64) if p.act != Act.IDENTITY else ins[0]
            elif p.op == Op.AFFINE:
                y = ins[0] * _uniform(p.tensors["s"]) + _uniform(p.tensors["t"])
                if p.act != Act.IDENTITY:
                    alpha, beta = ACT_DEFAULTS[p.act]
                    y = activation(y, p.act, float(p.attrs.get("alpha", alpha)),
                                   float(p.attrs.get("beta", beta))).astype(np.float64)
            else:  # BINARY
                a, b = ins
                fn = Bin(int(p.attrs["fn"]))
                y = {Bin.ADD: lambda: a + b, Bin.SUB: lambda: a - b, Bin.MUL: lambda: a * b, Bin.DIV: lambda: a / b,
                     Bin.MAX: lambda: np.maximum(a, b), Bin.MIN: lambda: np.minimum(a, b)}[fn]()
                if p.act != Act.IDENTITY:
                    y = activation(y, p.act, *_act_params(p)).astype(np.float64)
            vals[id(p)] = np.asarray(y, dtype=np.float64)
    return y


def _act_params(p: Proto):
    alpha, beta = ACT_DEFAULTS[p.act]
    return float(p.attrs.get("alpha", alpha)), float(p.attrs.get("beta", beta))


def _match(values: np.ndarray):
    from rtinfer.activations import activation
    for act, params in _CANDIDATES:
        alpha, beta = ACT_DEFAULTS[act]
        alpha, beta = params.get("alpha", alpha), params.get("beta", beta)
        want = activation(_PROBE, act, alpha, beta).astype(np.float64) if act != Act.IDENTITY else _PROBE
        # float32 evaluation of the pieces differs from the closed form by a few ulp
        if np.all(np.isfinite(values)) and np.all(np.abs(values - want) <= 1e-5 * (1.0 + np.abs(want))):
            return act, params
    return None


def recognize_activations(g: IrGraph) -> None:
    """Replace each subgraph that computes a known activation of one tensor (x * sigmoid(x),
    GELU's erf and tanh forms, HardSwish, Mish, Softplus as where(x > t, x, softplus(x)), ...)
    by one ACT. The subgraph's function is evaluated on probe values and compared with every
    candidate activation, so the exporters' many spellings need no pattern of their own."""
    changed = True
    while changed:
        changed = False
        counts = g.counts()
        for sink in reversed(g.protos):
            if not (sink.pseudo or sink.op == Op.BINARY or sink.op == Op.AFFINE) or not _scalar_elementwise(sink):
                continue
            m = None
            for root, order, root_id in _region(g, sink, counts):
                if not any(p.pseudo or p.op == Op.BINARY for p in order):
                    continue  # a plain chain of ACT / AFFINE: the fusion passes handle it
                m = _match(_evaluate(order, root_id, _PROBE))
                if m is not None:
                    break
            if m is None:
                continue
            act, params = m
            shape = sink.out_shape
            new = Proto(Op.ACT, shape, shape, act, attrs=dict(params), name=sink.name, inputs=[root],
                        in_shapes=[shape])
            pos = g.protos.index(sink)
            g.protos[pos] = new
            g.replace(sink, new)
            inside = {id(p) for p in order}
            g.protos = [p for p in g.protos if id(p) not in inside or p is new]
            changed = True
            break


def refuse_pseudo(g: IrGraph) -> None:
    for p in g.protos:
        if p.pseudo:
            raise OnnxImportError(
                f"unsupported op {p.pseudo!r} at node {p.name!r}: on a runtime tensor it is only accepted inside "
                f"an elementwise subgraph that computes a known activation (SiLU, GELU, HardSwish, Mish, "
                f"Softplus, ...), and this one computes none of them")


# -- fusion -------------------------------------------------------------------------------------

def fuse(g: IrGraph, pair_rules, quant_rules) -> None:
    """Fuse layers. A pair rule(a, b) is tried where b reads only a and a feeds only b (and is
    not an output); it returns "a" (a absorbed b), "b" (b absorbed a) or None. A quant rule(dqs,
    mid, q) is tried where q is a QUANTIZE of mid, mid feeds only q and every input of mid is a
    DEQUANTIZE (dqs, in mid's input order, possibly shared with other layers); it returns the
    int8 layer replacing mid and q (reading the DEQUANTIZEs' int8 inputs), or (that layer,
    [(k, a QLUT that requantizes input k first)]), or None.
    A QUANTIZE directly after a DEQUANTIZE is the identity (same parameters) or a QLUT
    requantization (see rule_requantize)."""
    _fuse_pairs(g, pair_rules)
    _fuse_quant(g, quant_rules)
    prune(g)
    _fuse_pairs(g, pair_rules)


class _Readers:
    """Who reads each Proto (list of readers, one entry per input slot; outputs as "out"), kept
    up to date as layers merge, so a fusion costs the size of its neighbourhood, not of the graph."""

    def __init__(self, g: IrGraph):
        self.g = g
        self.of: dict[int, list] = {}
        for p in g.protos:
            for q in p.inputs:
                if q is not None:
                    self.of.setdefault(id(q), []).append(p)
        for q in g.outputs:
            if q is not None:
                self.of.setdefault(id(q), []).append("out")

    def count(self, p) -> int:
        return len(self.of.get(id(p), ()))

    def is_output(self, p) -> bool:
        return "out" in self.of.get(id(p), ())

    def move(self, old, new) -> None:
        """Every reader of old reads new instead."""
        readers = self.of.pop(id(old), [])
        for r in readers:
            if r == "out":
                self.g.outputs = [new if q is old else q for q in self.g.outputs]
            else:
                r.inputs = [new if q is old else q for q in r.inputs]
        if new is not None:
            self.of.setdefault(id(new), []).extend(readers)

    def drop_reader(self, p, reader) -> None:
        lst = self.of.get(id(p), [])
        if reader in lst:
            lst.remove(reader)

    def add_reader(self, p, reader) -> None:
        if p is not None:
            self.of.setdefault(id(p), []).append(reader)


def _fuse_pairs(g: IrGraph, rules) -> None:
    rd = _Readers(g)
    dead = set()
    protos = list(g.protos)
    i = 0
    while i < len(protos):
        b = protos[i]
        if id(b) in dead:
            i += 1
            continue
        a = b.inputs[0] if len(b.inputs) == 1 else None
        if a is None or a.pseudo or b.pseudo or rd.count(a) != 1 or rd.is_output(a):
            i += 1
            continue
        result = None
        for rule in rules:
            result = rule(a, b)
            if result:
                break
        if result == "a":  # a took over b's output; a may fuse with its new reader later
            rd.drop_reader(a, b)
            rd.move(b, a)
            dead.add(id(b))
            i += 1
        elif result == "b":  # b took over a's input; b may fuse with it again: retry b
            for q in a.inputs:
                rd.drop_reader(q, a)
                rd.add_reader(q, b)
            rd.of.pop(id(a), None)
            b.inputs = list(a.inputs)
            b.in_shapes = list(a.in_shapes) if a.in_shapes else b.in_shapes
            dead.add(id(a))
        else:
            i += 1
    g.protos = [p for p in protos if id(p) not in dead]


def _fuse_quant(g: IrGraph, rules) -> None:
    rd = _Readers(g)
    dead = set()
    out: list[Proto] = []
    for q in list(g.protos):
        if id(q) in dead:
            continue
        mid = q.inputs[0] if q.op == Op.QUANTIZE else None
        new = None
        if mid is not None and not mid.pseudo and rd.count(mid) == 1 and not rd.is_output(mid):
            if mid.op == Op.DEQUANTIZE:
                new = rule_requantize(mid, q)
                dqs = [mid]
            elif mid.inputs and all(d is not None and d.op == Op.DEQUANTIZE for d in mid.inputs):
                dqs = list(mid.inputs)
                for rule in rules:
                    new = rule(dqs, mid, q)
                    if new is not None:
                        break
        if new is None:
            out.append(q)
            continue
        src = [d.inputs[0] for d in dqs]
        pre = []
        if isinstance(new, tuple):  # (layer, [(input k, a QLUT requantizing input k first)])
            new, pre = new
        # mid and q go; each DEQUANTIZE loses mid as a reader (it may have others)
        rd.of.pop(id(mid), None)
        for d in dqs:
            rd.drop_reader(d, mid)
        if mid is not dqs[0]:
            dead.add(id(mid))
        if new == "identity":  # DQ -> Q with the same parameters: read the int8 tensor itself
            rd.move(q, src[0])
            dead.add(id(q))
            continue
        new.inputs = list(src)
        new.in_shapes = [tuple(d.in_shape) for d in dqs]
        for k, lut in pre:
            lut.inputs, lut.in_shapes = [src[k]], [tuple(dqs[k].in_shape)]
            rd.add_reader(src[k], lut)
            new.inputs[k] = lut
            out.append(lut)
        for k, s_ in enumerate(new.inputs):
            rd.add_reader(s_, new)
        rd.move(q, new)
        dead.add(id(q))
        out.append(new)
    g.protos = [p for p in out if id(p) not in dead]


def rule_requantize(dq: Proto, q: Proto):
    """DEQUANTIZE -> QUANTIZE: "identity" when the parameters agree, else a QLUT that
    requantizes the int8 codes exactly (quant.requantize_table)."""
    from rtinfer import quant
    xs, xzp = float(np.float32(dq.attrs["x_scale"])), int(dq.attrs["x_zp"])
    ys, yzp = float(np.float32(q.attrs["y_scale"])), int(q.attrs["y_zp"])
    if (xs, xzp) == (ys, yzp):
        return "identity"
    table = quant.requantize_table(xs, xzp, ys, yzp)
    return Proto(Op.QLUT, dq.in_shape, dq.out_shape, tensors={"table": table}, name=q.name,
                 attrs={"x_scale": dq.attrs["x_scale"], "x_zp": xzp, "y_scale": q.attrs["y_scale"], "y_zp": yzp})


# -- FrozenModel ----------------------------------------------------------------------------------

def build(g: IrGraph, input_shape: tuple, outputs: list, meta: dict) -> FrozenModel:
    """The FrozenModel of g. outputs: (Proto or None, shape, dtype) per model output.
    Multi-input layers read their inputs in the shapes recorded in in_shapes: a RESHAPE is
    inserted where a producer's out_shape differs (it moves no data)."""
    refuse_pseudo(g)
    layers_p: list[Proto] = []
    tid: dict = {None: 0}

    def shape_of(q):
        return tuple(input_shape) if q is None else tuple(q.out_shape)

    for p in g.protos:
        ins = []
        multi = p.op in N_INPUTS or p.op in VARIADIC_OPS
        for k, q in enumerate(p.inputs):
            want = tuple(p.in_shapes[k]) if k < len(p.in_shapes) else shape_of(q)
            if multi and want != shape_of(q):
                r = Proto(Op.RESHAPE, shape_of(q), want, name=f"{p.name}.reshape{k}", inputs=[q])
                layers_p.append(r)
                tid[id(r)] = len(layers_p)
                q = r
            ins.append(q)
        p.inputs = ins
        if multi:
            p.in_shape = shape_of(ins[0])
        layers_p.append(p)
        tid[id(p)] = len(layers_p)
    outs = []
    for q, shape, dtype in outputs:
        if q is None:  # the output is the input: one identity layer
            r = Proto(Op.RESHAPE, tuple(input_shape), tuple(input_shape), name="identity", inputs=[None])
            layers_p.append(r)
            tid[id(r)] = len(layers_p)
            q = r
        outs.append(Output(tid[id(q)], tuple(shape), dtype))
    builder = BufferBuilder()
    layers = []
    for p in layers_p:
        refs = {}
        for name, arr in p.tensors.items():
            arr = np.asarray(arr)
            if arr.dtype not in (np.float32, np.int8, np.int32):
                arr = arr.astype(np.float32)
            refs[name] = builder.add(np.ascontiguousarray(arr))
        attrs = {}
        for key, v in p.attrs.items():
            attrs[key] = int(v) if isinstance(v, (int, np.integer)) else float(v)
        layers.append(Layer(p.op, p.in_shape, p.out_shape, p.act, refs, attrs, p.name.replace("\x00", ""),
                            inputs=tuple(tid[id(q)] if q is not None else 0 for q in p.inputs)))
    try:
        return FrozenModel(tuple(layers), builder.finish(), tuple(input_shape), meta=meta, outputs=tuple(outs))
    except FrozenModelError as exc:
        raise OnnxImportError(f"the translated model is inconsistent: {exc}") from exc
