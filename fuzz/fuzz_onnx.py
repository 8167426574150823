"""Fuzz the ONNX importer: mutated models must end in OnnxImportError (or import cleanly).

    python fuzz/fuzz_onnx.py --n 200000            # long run (chunks in worker processes)
    python fuzz/fuzz_onnx.py --n 5000 --seed 3

``from_onnx`` promises OnnxImportError (a ValueError) for every malformed or unsupported model;
protobuf's DecodeError is wrapped into it. Every case is a pure function of (seed, index).
Outcomes: ``rejected`` (OnnxImportError), ``loaded`` (a FrozenModel that must also survive an
.rtm round trip: to_bytes then the .rtm reader's checks; survivors are saved as
.rtm and run with NUMBA_BOUNDSCHECK=1 like the .rtm fuzzer's), or a failure: another exception
type, or a traced peak above MEM_FACTOR * model bytes + MEM_SLACK + FOLD_BYTES (one folded
constant at the importer's cap of 2^24 elements, float64). Worker processes also report
their peak resident size (ru_maxrss), which covers protobuf's C++ allocations.

Families: bytes (bit flips, byte sets, truncations, random bytes of the serialized model),
initializer dims (wrong rank, 0, negative, 10^12 elements), deleted initializers, initializer
dtypes, truncated raw data, external data (paths with "..", absolute paths, drive letters,
missing files, huge offsets/lengths), cycles, undefined inputs, op types/domains, attributes,
graph input shapes and types, outputs, opset/IR versions, duplicate outputs, and constant
subgraphs whose folding would create ~10^8..10^12 elements (ConstantOfShape, Expand, Tile,
Range, broadcasting Add, MatMul) from a few bytes, and many folds each under the per-node cap
whose results would together hold gigabytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

MEM_FACTOR = 16
MEM_SLACK = 4 * 1024 * 1024
# The importer may fold a constant of up to MAX_EXPANDED_ELEMENTS (2^24) elements whatever the
# file size (its documented cap); float64 intermediates make that 8 bytes each.
FOLD_BYTES = 8 * (1 << 24)

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = ("sklearn_logreg", "sklearn_mlp", "torch_mlp", "torch_mlp_qdq", "torch_view")

FAMILIES = ("bytes_flip", "bytes_set", "bytes_truncate", "bytes_random", "init_dims", "init_delete",
            "init_dtype", "init_raw", "external", "cycle", "undefined_input", "op_type", "attribute",
            "input_shape", "output", "versions", "duplicate_output", "huge_fold", "many_folds")

OPS = ("Gemm", "MatMul", "Relu", "Add", "Mul", "Sub", "Div", "Softmax", "LogSoftmax", "ArgMax", "Reshape",
       "Flatten", "Transpose", "Squeeze", "Unsqueeze", "QuantizeLinear", "DequantizeLinear", "QLinearMatMul",
       "Cast", "Gather", "Conv", "LSTM", "If", "Loop", "Scan", "Identity", "Constant", "ConstantOfShape",
       "Expand", "Tile", "Range", "Concat", "Split", "Slice", "BatchNormalization", "Clip", "Bogus", "")
EXTERNAL_PATHS = ("../secret.bin", "../../etc/passwd", "/etc/passwd", "sub/../../x.bin", "..\\x.bin",
                  "C:\\x.bin", "c:x.bin", "", "missing.bin", "weights.bin", "./weights.bin", "a/" * 50 + "w.bin",
                  "\x00.bin")


def base_models():
    """Serialized ONNX models: the golden torch/sklearn files and two rtinfer exports (fp32 with
    an ARGMAX head, int8 with a non-standard LUT exported as a Gather table)."""
    from export.onnx_export import to_onnx
    from rtinfer._testmodels import fp32_mlp, int8_mlp
    out = []
    for name in GOLDEN:
        with open(os.path.join(_ROOT, "tests", "data", "onnx", name + ".onnx"), "rb") as f:
            out.append(f.read())
    out.append(to_onnx(fp32_mlp([6, 5, 4], head="argmax")).SerializeToString())
    out.append(to_onnx(int8_mlp([6, 5, 3], lut=lambda v: np.sin(3 * v), head="softmax")).SerializeToString())
    return out


_BASES = None


def base_bytes() -> list[bytes]:
    global _BASES
    if _BASES is None:
        _BASES = base_models()
    return _BASES


def _huge_dim(rnd):
    return rnd.choice((10 ** 12, 10 ** 6, 1 << 31, (1 << 63) - 1, 3 * 10 ** 8, 10 ** 9))


def _mutate_api(rnd, family, data: bytes) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    m = onnx.load_model_from_string(data)
    g = m.graph
    nodes, inits = list(g.node), list(g.initializer)
    if family == "init_dims" and inits:
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
    elif family == "duplicate_output" and len(nodes) >= 2:
        i, j = rnd.sample(range(len(nodes)), 2)
        if nodes[i].output and nodes[j].output:
            g.node[j].output[0] = nodes[i].output[0]
    elif family == "many_folds" and g.output and nodes:
        # Many constant folds, each under the per-node cap, whose results all stay alive.
        out_name = g.output[0].name
        producer = [n for n in g.node if out_name in n.output]
        if not producer:
            return m.SerializeToString()
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
        last = None
        for node in g.node:
            for k, o in enumerate(node.output):
                if o == out_name:
                    last, idx = node, k
        if last is None:
            return m.SerializeToString()
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
    return m.SerializeToString()


def case(seed: int, index: int) -> tuple[str, bytes]:
    """Mutation number ``index`` of run ``seed``: (family, serialized model bytes)."""
    rnd = random.Random(f"onnx:{seed}:{index}")
    base = rnd.choice(base_bytes())
    family = FAMILIES[index % len(FAMILIES)] if index < 4 * len(FAMILIES) else rnd.choice(FAMILIES)
    if family == "bytes_flip":
        buf = bytearray(base)
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(len(buf))
            buf[i] ^= 1 << rnd.randrange(8)
        return family, bytes(buf)
    if family == "bytes_set":
        buf = bytearray(base)
        for _ in range(rnd.randint(1, 4)):
            buf[rnd.randrange(len(buf))] = rnd.choice((0, 0xFF, 0x7F, 0x80, 0x08, 0x12, 0x1A, rnd.randrange(256)))
        return family, bytes(buf)
    if family == "bytes_truncate":
        return family, base[:rnd.randrange(len(base))]
    if family == "bytes_random":
        n = rnd.choice((0, 1, 2, 16, 256, 4096))
        out = rnd.randbytes(n)
        if rnd.random() < 0.5:
            out = base[:rnd.randrange(64)] + out
        return family, out
    return family, _mutate_api(rnd, family, base)


def check(data: bytes, tracing: bool = True):
    """Import ``data``; returns (outcome, traced peak, FrozenModel or None)."""
    from export.onnx_import import OnnxImportError, from_onnx
    if tracing:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
    model = None
    try:
        model = from_onnx(data)
        outcome = "loaded"
    except OnnxImportError:
        outcome = "rejected"
    except Exception as exc:  # noqa: BLE001 - any other type is the finding
        outcome = f"error:{type(exc).__name__}: {str(exc)[:300]}"
    peak = 0
    if tracing:
        _, peak = tracemalloc.get_traced_memory()
        peak -= base
    if not outcome.startswith("error") and peak > MEM_FACTOR * len(data) + MEM_SLACK + FOLD_BYTES:
        outcome = f"error:memory: traced peak {peak} B for a {len(data)} B model"
    return outcome, peak, model


def run_range(seed: int, start: int, stop: int, survivors_dir: str | None = None, max_survivors: int = 200):
    from rtinfer.rtm import RtmFormatError, from_bytes, to_bytes
    import warnings
    warnings.simplefilter("ignore")
    for data in base_bytes():  # imports (onnx.reference, ...) happen here, outside the traced cases
        check(data, tracing=False)
    tracemalloc.start()
    counts: dict[str, dict[str, int]] = {}
    failures, saved, seen = [], 0, set()
    max_peak, max_sec, slowest = 0, 0.0, None
    for i in range(start, stop):
        family, data = case(seed, i)
        t0 = time.perf_counter()
        outcome, peak, model = check(data)
        dt = time.perf_counter() - t0
        if dt > max_sec:
            max_sec, slowest = dt, i
        max_peak = max(max_peak, peak)
        if outcome == "loaded":  # everything from_onnx produces must also be a valid .rtm file
            try:
                from_bytes(to_bytes(model))
            except RtmFormatError as exc:
                outcome = f"error:rtm round trip: {str(exc)[:300]}"
        key = "error" if outcome.startswith("error") else outcome
        counts.setdefault(family, {}).setdefault(key, 0)
        counts[family][key] += 1
        if key == "error":
            failures.append({"index": i, "family": family, "outcome": outcome})
        elif key == "loaded" and survivors_dir is not None and saved < max_survivors:
            try:
                raw = to_bytes(model)
            except RtmFormatError:
                continue
            h = hashlib.sha1(raw).hexdigest()
            if h not in seen:
                seen.add(h)
                with open(os.path.join(survivors_dir, f"o{seed}_{i}.rtm"), "wb") as f:
                    f.write(raw)
                saved += 1
    tracemalloc.stop()
    return {"seed": seed, "start": start, "stop": stop, "counts": counts, "failures": failures[:50],
            "n_failures": len(failures), "max_peak": max_peak, "max_case_seconds": max_sec,
            "slowest_index": slowest, "survivors_saved": saved,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=5000, help="cases per worker process")
    ap.add_argument("--survivors", default=None)
    ap.add_argument("--worker", nargs=3, type=int, metavar=("SEED", "START", "STOP"), help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.worker:
        seed, start, stop = args.worker
        print(json.dumps(run_range(seed, start, stop, args.survivors)))
        return 0

    import tempfile
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from fuzz_rtm import run_survivors
    surv = args.survivors or tempfile.mkdtemp(prefix="onnx-survivors-")
    os.makedirs(surv, exist_ok=True)
    from _driver import run_chunks
    total, failures, crashes, max_of, seconds = run_chunks(
        os.path.abspath(__file__), args.seed, args.n, args.chunk, surv, ("max_peak", "maxrss_mb", "max_case_seconds"))
    surv_res = run_survivors(surv)
    n_cases = sum(sum(d.values()) for d in total.values())
    summary = {"cases": n_cases, "seed": args.seed, "per_family": total, "failures": len(failures),
               "failure_examples": failures[:20], "crashes": crashes, "max_traced_peak_bytes": max_of["max_peak"],
               "max_worker_rss_mb": round(max_of["maxrss_mb"], 1),
               "max_case_seconds": round(max_of["max_case_seconds"], 4),
               "survivors_saved": len(os.listdir(surv)), "survivors_ran_boundscheck": surv_res["ran"],
               "survivors_refused_by_planner": surv_res["refused"], "survivor_errors": surv_res["errors"][:20],
               "seconds": round(seconds, 1)}
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0 if not failures and not crashes and not surv_res["errors"] else 1


if __name__ == "__main__":
    sys.path.insert(0, _ROOT)
    sys.exit(main())
