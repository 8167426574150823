"""rtinfer inspect MODEL: what a frozen model holds (.rtm, or .onnx through export.from_onnx)."""

from __future__ import annotations

import argparse
import json
import os

HELP = "show a model's layers, shapes, parameters, MACs, quantization and file facts"

_QUANT_KEYS = ("x_scale", "x_zp", "y_scale", "y_zp", "qmin", "qmax")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="an .rtm file, or an .onnx file (imported with export.from_onnx)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _range(scale: float, zp: int, qmin: int = -128, qmax: int = 127) -> list[float]:
    """The float interval an int8 tensor with (scale, zp) can represent within [qmin, qmax]."""
    return [(qmin - zp) * scale, (qmax - zp) * scale]


def plan_of(frozen):
    """(Plan, None), or (None, why) when the model cannot be planned. Planning is NumPy only:
    nothing compiles."""
    from rtinfer.plan import build_plan

    try:
        return build_plan(frozen), None
    except (ValueError, NotImplementedError, MemoryError) as exc:
        return None, str(exc)


def packed_weight_bytes(frozen):
    """(Plan.weight_bytes, None), or (None, why) when the model cannot be planned."""
    plan, why = plan_of(frozen)
    return (None, why) if plan is None else (int(plan.weight_bytes), None)


def describe(frozen) -> dict:
    """A JSON-ready description of a FrozenModel: layers, shapes, params, bytes, MACs, quant params.

    Weight bytes, named as in every rtinfer report: "weights_stored_bytes" (FrozenModel.weight_bytes,
    every tensor the layers reference, as stored in the .rtm file; also under the older key
    "weight_bytes") and "weights_packed_bytes" (Plan.weight_bytes, what the runtime reads)."""
    from rtinfer.frozen import BUFFER_DTYPES

    plan, why = plan_of(frozen)
    kernels = {}  # layer index -> the kernel path its convolution or dense layer runs (Plan.row_kernels)
    if plan is not None:
        kernels = {i: k for i, k in zip(plan.row_layers, plan.row_kernels()) if k}
    layers = []
    for i, layer in enumerate(frozen.layers):
        params = sum(r.size for n, r in layer.tensors.items() if n in ("W", "b", "s", "t"))
        nbytes = sum(r.size * BUFFER_DTYPES[r.buffer].itemsize for r in layer.tensors.values())
        entry = {
            "index": i, "name": layer.name, "op": layer.op.name, "act": layer.act.name,
            "inputs": list(layer.inputs), "output": i + 1,
            "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape),
            "in_dtype": layer.in_dtype, "out_dtype": layer.out_dtype,
            "params": params, "bytes": nbytes, "macs": layer.macs,
            "tensors": {n: {"buffer": r.buffer, "offset": r.offset, "shape": list(r.shape)}
                        for n, r in layer.tensors.items()},
            "attrs": {k: v for k, v in layer.attrs.items()},
        }
        a = layer.attrs
        quant = {}
        if "x_scale" in a:
            quant["input"] = {"scale": a["x_scale"], "zero_point": int(a["x_zp"]),
                              "range": _range(a["x_scale"], int(a["x_zp"]))}
        if "y_scale" in a:
            qmin, qmax = int(a.get("qmin", -128)), int(a.get("qmax", 127))
            quant["output"] = {"scale": a["y_scale"], "zero_point": int(a["y_zp"]), "qmin": qmin, "qmax": qmax,
                               "range": _range(a["y_scale"], int(a["y_zp"]), qmin, qmax)}
        if layer.op.name == "DYNQUANT":  # scale and zero point from each sample's own range
            quant["dynamic"] = {"mode": int(a.get("mode", 0)),
                                "writes": "codes - zero point" if int(a.get("mode", 0)) == 0 else "scale",
                                "range": "per sample (ONNX DynamicQuantizeLinear: the whole batch)"}
        if "w_scale" in layer.tensors:
            ws = frozen.tensor(layer, "w_scale")
            quant["weight_scale"] = {"min": float(ws.min()), "max": float(ws.max()), "per_channel": int(ws.size)}
        if quant:
            entry["quant"] = quant
        if i in kernels:
            entry["kernel"] = kernels[i]
        layers.append(entry)
    packed = None if plan is None else int(plan.weight_bytes)
    memory = None
    if plan is not None:  # each activation tensor: where it lives, its size and lifetime (program rows)
        memory = {"arena_bytes": int(plan.arena_bytes), "tensor_bytes": int(plan.tensor_bytes),
                  "tensors": [{"tensor": t.tensor, "dtype": t.dtype, "place": t.place, "offset": t.offset,
                               "bytes": t.nbytes, "first_row": t.first, "last_row": t.last}
                              for t in plan.tensors]}
    from rtinfer.kernels_tile import kernel_path_name

    return {
        "input_shape": list(frozen.input_shape), "output_shape": list(frozen.output_shape),
        "int8_kernel_path": kernel_path_name(),
        "output_dtype": frozen.output_dtype, "quantized": frozen.is_quantized,
        "graph": not frozen.is_chain,
        "outputs": [{"tensor": o.tensor, "shape": list(o.shape), "dtype": o.dtype} for o in frozen.outputs],
        "memory": memory,
        "meta": dict(frozen.meta), "layers": layers,
        "params": frozen.n_params, "weights_stored_bytes": frozen.weight_bytes, "weights_packed_bytes": packed,
        **({"weights_packed_error": why} if why else {}),
        "weight_bytes": frozen.weight_bytes, "macs": frozen.macs,
        "buffers": {k: {"dtype": str(v.dtype), "elements": int(v.size), "bytes": int(v.nbytes)}
                    for k, v in frozen.buffers.items()},
    }


def _g(x) -> str:
    return f"{x:.6g}"


def _quant_text(q: dict) -> str:
    parts = []
    if "input" in q:
        parts.append(f"in s={_g(q['input']['scale'])} zp={q['input']['zero_point']}")
    if "output" in q:
        o = q["output"]
        lo, hi = o["range"]
        clamp = "" if (o["qmin"], o["qmax"]) == (-128, 127) else f" q[{o['qmin']},{o['qmax']}]"
        parts.append(f"out s={_g(o['scale'])} zp={o['zero_point']}{clamp} [{_g(lo)}, {_g(hi)}]")
    if "dynamic" in q:
        parts.append(f"dynamic uint8 per sample: {q['dynamic']['writes']}")
    if "weight_scale" in q:
        w = q["weight_scale"]
        parts.append(f"w_s {_g(w['min'])}..{_g(w['max'])}")
    return "; ".join(parts)


def format_text(info: dict) -> str:
    lines = []
    file = info.get("file")
    if file:
        lines.append(f"file        {file['path']}  ({file['size']} bytes, {file['format']}"
                     + (f" version {file['version']})" if file.get("version") else ")"))
    outs = ", ".join(f"{tuple(o['shape'])} {o['dtype']}" for o in info["outputs"])
    lines.append(f"input       {tuple(info['input_shape'])} float32 -> output {outs}"
                 f"{'  (int8 quantized)' if info['quantized'] else ''}{'  (graph)' if info['graph'] else ''}")
    for k, v in info["meta"].items():
        lines.append(f"meta        {k} = {v}")
    graph = info["graph"]
    head = (f"{'#':>3} {'name':<16} {'op':<11} {'act':<16} {'in':>9} {'out':>9} {'params':>8} {'bytes':>8} "
            f"{'MACs':>8}  " + ("reads    " if graph else "") + "quantization")
    lines.append(head)
    lines.append("-" * len(head))
    for L in info["layers"]:
        act = L["act"] if L["act"] != "IDENTITY" else ""
        if L["op"] == "QLUT" and "act" in L["attrs"]:  # the activation the table was built from
            from rtinfer.ops import Act

            act = f"lut:{Act(int(L['attrs']['act'])).name}"
        if "LEAKY_RELU" in act:
            act += f"({_g(L['attrs'].get('alpha', 0.01))})"
        q = _quant_text(L["quant"]) if "quant" in L else ""
        lines.append(f"{L['index']:>3} {L['name'][:16]:<16} {L['op']:<11} {act:<16} "
                     f"{'x'.join(map(str, L['in_shape'])):>9} {'x'.join(map(str, L['out_shape'])):>9} "
                     f"{L['params']:>8} {L['bytes']:>8} {L['macs']:>8}  "
                     + (f"{','.join('t%d' % t for t in L['inputs']):<8} " if graph else "") + q)
    conv = [L for L in info["layers"] if "kernel" in L]
    if conv:  # the convolution and dense kernels this CPU runs (their int8 instructions depend on it)
        lines.append(f"kernels     on this CPU (int8 instructions: {info['int8_kernel_path']})")
        lines.extend(f"{L['index']:>3} {L['name'][:16]:<16} {L['kernel']}" for L in conv)
    stored, packed = info["weights_stored_bytes"], info["weights_packed_bytes"]
    if packed is None:
        weights = f"weights (stored) {stored} B, (packed) n/a: {info.get('weights_packed_error')}"
    elif packed == stored:
        weights = f"weights (stored = packed) {stored} B"
    else:
        weights = f"weights (stored) {stored} B, (packed) {packed} B"
    lines.append(f"total       params {info['params']}, {weights}, MACs {info['macs']}")
    bufs = ", ".join(f"{k} {v['elements']} ({v['bytes']} B)" for k, v in info["buffers"].items())
    lines.append(f"buffers     {bufs}")
    mem = info.get("memory")
    if mem:
        lines.append(f"memory      arena {mem['arena_bytes']} B per sample (lifetime-planned); all intermediate "
                     f"tensors {mem['tensor_bytes']} B")
        lines.append(f"{'tensor':>10} {'dtype':>5} {'place':<12} {'offset':>9} {'bytes':>9} {'rows':>9}")
        for t in mem["tensors"]:
            off = "-" if t["offset"] < 0 else str(t["offset"])
            life = "-" if t["first_row"] < 0 and t["last_row"] < 0 else f"{t['first_row']}..{t['last_row']}"
            lines.append(f"{'t' + str(t['tensor']):>10} {t['dtype']:>5} {t['place']:<12} {off:>9} {t['bytes']:>9} "
                         f"{life:>9}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path = args.model
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if path.lower().endswith(".onnx"):
        import export

        frozen = export.from_onnx(path)
        file = {"path": path, "size": os.path.getsize(path), "format": "onnx"}
    else:
        from rtinfer.rtm import load_frozen, read_info

        frozen = load_frozen(path)
        hdr = read_info(path)
        file = {"path": path, "size": hdr.file_size, "format": "rtm", "version": "%d.%d" % hdr.version,
                "sections": {k: {"offset": off, "elements": n} for k, (off, n) in hdr.sections.items()}}
    info = describe(frozen)
    info["file"] = file
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_text(info))
    return 0
