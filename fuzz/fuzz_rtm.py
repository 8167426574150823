"""Fuzz the .rtm reader: generated corruptions of small valid files must end in RtmFormatError.

    python fuzz/fuzz_rtm.py --n 1000000            # long run (chunks in worker processes)
    python fuzz/fuzz_rtm.py --n 20000 --seed 7     # shorter run, another seed

Every case is a pure function of (seed, index): ``case(seed, i)`` returns (family, bytes), so a
failing case is reproduced from its index alone. Outcomes per case:
- ``rejected``: ``from_bytes`` raised RtmFormatError (the documented error type);
- ``loaded``: the corruption produced a consistent model (e.g. a weight changed with its CRCs
  recomputed); survivors are later run through the runtime in a subprocess with
  NUMBA_BOUNDSCHECK=1, where they must run or raise a ValueError (PlanError/InputError);
- anything else (another exception type, a peak of traced memory above
  ``MEM_FACTOR * len(bytes) + MEM_SLACK``) is a failure, as is a worker that dies (crash).

Families: every truncation of each base file (enumerated first), raw bit flips (no CRC
repair: all must be rejected), resealed flips and byte sets in the header and tables, header and
table fields set to boundary values (0, 2^31, 2^32 - 1, 2^63, 10^12, file size +- 1, ...),
shapes with huge or zero dims, attr values NaN/inf/0/negative/denormal, section offsets and
counts out of range, random headers with a valid magic/version/CRC, random files, extensions.
"resealed" means every CRC (sections, tables, data, header) is recomputed after the edit, so
the damage reaches the structural checks instead of stopping at a checksum.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib

import numpy as np

MEM_FACTOR = 8          # traced peak must stay below MEM_FACTOR * file size + MEM_SLACK
MEM_SLACK = 64 * 1024

U32_VALUES = (0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 255, 256, 4095, 65535, 65536,
              (1 << 31) - 1, 1 << 31, (1 << 32) - 1)
U64_VALUES = U32_VALUES + (1 << 32, 1 << 40, 10 ** 12, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)
F64_VALUES = (math.nan, -math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, -1.0, 1e308, -1e308,
              1e-45, 3.5e38, 127.5, -128.5, 1e30)
I64_VALUES = (0, -1, 1, 127, 128, -128, -129, 255, (1 << 31) - 1, -(1 << 31), (1 << 63) - 1, -(1 << 63))

FAMILIES = ("flip_raw", "flip_resealed", "byte_resealed", "header_field", "record_field", "shape",
            "attr_value", "section", "random_header", "random_file", "extend", "truncate_resealed")


def base_models():
    """The small valid models every case starts from: fp32 (AFFINE, DENSE, SOFTMAX, meta) and
    int8 (QUANTIZE, QDENSE, QLUT, DEQUANTIZE, ARGMAX)."""
    from rtinfer._testmodels import fp32_mlp, int8_mlp
    from rtinfer.frozen import FrozenModel
    from rtinfer.ops import Act
    a = fp32_mlp([5, 7, 3], acts=[Act.LEAKY_RELU, Act.IDENTITY], head="softmax", affine_in=True,
                 act_params=[{"alpha": 0.05}, {}])
    a = FrozenModel(a.layers, a.buffers, a.input_shape, a.output_shape, a.output_dtype,
                    meta={"source": "fuzz", "classes": "[0, 1, 2]"})
    b = int8_mlp([6, 5, 3], lut=np.tanh, head="argmax")
    return [a, b]


_BASES = None


def base_files() -> list[bytes]:
    global _BASES
    if _BASES is None:
        from rtinfer.rtm import to_bytes
        _BASES = [to_bytes(m) for m in base_models()]
    return _BASES


def layout(data: bytes) -> dict:
    """Offsets of a valid file's tables (read from its header, which is trusted here)."""
    u = lambda off, fmt="<Q": struct.unpack_from(fmt, data, off)[0]  # noqa: E731
    return {"n_layers": u(24, "<I"), "n_tensors": u(28, "<I"), "n_attrs": u(32, "<I"), "n_meta": u(36, "<I"),
            "layers": u(48), "tensors": u(56), "attrs": u(64), "meta": u(72), "sections": u(80),
            "strings": u(88), "strings_size": u(96), "data": u(104)}


def reseal(data: bytearray) -> bytes:
    """Recompute every CRC that can be located, so only the semantic damage remains."""
    n = len(data)
    if n < 256:
        return bytes(data)
    sections_off, = struct.unpack_from("<Q", data, 80)
    data_off, = struct.unpack_from("<Q", data, 104)
    for i in range(3):
        rec = sections_off + i * 32
        if rec + 32 > n:
            break
        code, _, off, count = struct.unpack_from("<IIQQ", data, rec)
        itemsize = {1: 4, 2: 1, 3: 4}.get(code, 1)
        if off + count * itemsize <= n:
            struct.pack_into("<I", data, rec + 4, zlib.crc32(data[off:off + count * itemsize]))
    if 256 <= data_off <= n:
        struct.pack_into("<I", data, 184, zlib.crc32(data[256:data_off]))
        struct.pack_into("<I", data, 188, zlib.crc32(data[data_off:]))
    struct.pack_into("<I", data, 252, zlib.crc32(data[:252]))
    return bytes(data)


def _near(rnd: random.Random, orig: int, values) -> int:
    if rnd.random() < 0.3:
        return max(0, orig + rnd.choice((-3, -2, -1, 1, 2, 3, 64, -64)))
    return rnd.choice(values)


def _put_int(rnd, buf, off, wide):
    fmt = "<Q" if wide else "<I"
    orig = struct.unpack_from(fmt, buf, off)[0]
    v = _near(rnd, orig, U64_VALUES if wide else U32_VALUES)
    struct.pack_into(fmt, buf, off, v % (1 << (64 if wide else 32)))


# Header fields: (offset, is_u64).
HEADER_FIELDS = ([(12, False), (16, True)] + [(24 + 4 * k, False) for k in range(6)]
                 + [(48 + 8 * k, True) for k in range(8)]
                 + [(112 + 4 * k, False) for k in range(18)] + [(184, False), (188, False)])
# Record kinds: (layout key, count key, size, [(field offset, is_u64)]).
RECORDS = {
    "layer": ("layers", "n_layers", 112, [(4 * k, False) for k in range(26)]),
    "tensor": ("tensors", "n_tensors", 64, [(0, False), (4, False), (8, False), (16, True)]
               + [(24 + 4 * k, False) for k in range(9)]),
    "attr": ("attrs", "n_attrs", 24, [(0, False), (4, False), (8, False), (16, True)]),
    "meta": ("meta", "n_meta", 16, [(4 * k, False) for k in range(4)]),
    "section": ("sections", None, 32, [(0, False), (8, True), (16, True)]),
}


def _record(rnd, lay, kind):
    key, count_key, size, fields = RECORDS[kind]
    count = 3 if count_key is None else lay[count_key]
    if count == 0:
        return None, size, fields
    return lay[key] + rnd.randrange(count) * size, size, fields


def case(seed: int, index: int) -> tuple[str, bytes]:
    """The corruption number ``index`` of run ``seed``: (family, file bytes)."""
    bases = base_files()
    trunc_total = sum(len(b) for b in bases)
    if index < trunc_total:  # every truncation of every base file, in order
        for b in bases:
            if index < len(b):
                return "truncate", b[:index]
            index -= len(b)
    rnd = random.Random(f"{seed}:{index}")
    base = rnd.choice(bases)
    lay = layout(base)
    buf = bytearray(base)
    family = rnd.choice(FAMILIES)
    if family == "flip_raw":  # 1..8 distinct bits (two flips of one bit would cancel)
        for bit in rnd.sample(range(8 * len(buf)), rnd.randint(1, 8)):
            buf[bit // 8] ^= 1 << (bit % 8)
        return family, bytes(buf)
    if family == "flip_resealed":
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(12, len(buf))
            buf[i] ^= 1 << rnd.randrange(8)
        return family, reseal(buf)
    if family == "byte_resealed":
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(12, lay["data"])
            buf[i] = rnd.choice((0, 0xFF, 0x7F, 0x80, 0x01, rnd.randrange(256)))
        return family, reseal(buf)
    if family == "header_field":
        for _ in range(rnd.randint(1, 2)):
            off, wide = rnd.choice(HEADER_FIELDS)
            _put_int(rnd, buf, off, wide)
        return family, reseal(buf)
    if family == "record_field":
        kind = rnd.choice(list(RECORDS))
        rec, size, fields = _record(rnd, lay, kind)
        if rec is None:
            return family, reseal(buf)
        off, wide = rnd.choice(fields)
        _put_int(rnd, buf, rec + off, wide)
        return family, reseal(buf)
    if family == "shape":
        where = rnd.choice(("header_in", "header_out", "layer_in", "layer_out", "tensor"))
        if where == "header_in":
            off = 112
        elif where == "header_out":
            off = 148
        elif where == "tensor":
            rec, _, _ = _record(rnd, lay, "tensor")
            if rec is None:
                return family, reseal(buf)
            off = rec + 24
        else:
            rec, _, _ = _record(rnd, lay, "layer")
            off = rec + (32 if where == "layer_in" else 68)
        if rnd.random() < 0.3:
            struct.pack_into("<I", buf, off, rnd.choice((0, 1, 2, 8, 9, 255, (1 << 32) - 1)))  # ndim
        else:
            k = rnd.randrange(8)
            struct.pack_into("<I", buf, off + 4 + 4 * k,
                             rnd.choice((0, 1, 2, 3, 65536, 1 << 20, (1 << 31) - 1, 1 << 31, (1 << 32) - 1)))
        return family, reseal(buf)
    if family == "attr_value":
        rec, _, _ = _record(rnd, lay, "attr")
        if rec is None:
            return family, reseal(buf)
        if rnd.random() < 0.6:
            struct.pack_into("<I", buf, rec + 8, 0)
            struct.pack_into("<d", buf, rec + 16, rnd.choice(F64_VALUES))
        else:
            struct.pack_into("<I", buf, rec + 8, rnd.choice((1, 1, 1, 2, 7)))
            struct.pack_into("<q", buf, rec + 16, rnd.choice(I64_VALUES))
        return family, reseal(buf)
    if family == "section":
        rec = lay["sections"] + rnd.randrange(3) * 32
        off, wide = rnd.choice(RECORDS["section"][3])
        _put_int(rnd, buf, rec + off, wide)
        return family, reseal(buf)
    if family == "random_header":
        head = bytearray(rnd.randbytes(256))
        head[:12] = base[:12]
        if rnd.random() < 0.5:  # keep the true file size and some offsets, randomize the rest
            head[16:24] = base[16:24]
        buf[:256] = head
        struct.pack_into("<I", buf, 252, zlib.crc32(buf[:252]))
        return family, bytes(buf)
    if family == "random_file":
        n = rnd.choice((0, 1, 8, 12, 255, 256, 257, len(base), rnd.randrange(4096)))
        out = bytearray(rnd.randbytes(n))
        if n >= 12 and rnd.random() < 0.7:
            out[:12] = base[:12]
        if n >= 256 and rnd.random() < 0.5:
            struct.pack_into("<Q", out, 16, n)
            struct.pack_into("<I", out, 252, zlib.crc32(out[:252]))
        return family, bytes(out)
    if family == "extend":
        extra = rnd.randbytes(rnd.choice((1, 7, 64, 1000)))
        buf += extra
        if rnd.random() < 0.5:  # the header agrees with the new length
            struct.pack_into("<Q", buf, 16, len(buf))
            return family, reseal(buf)
        return family, bytes(buf)
    # truncate_resealed: cut the file and fix the declared size and CRCs
    cut = rnd.randrange(256, len(buf))
    buf = buf[:cut]
    struct.pack_into("<Q", buf, 16, cut)
    return family, reseal(buf)


def check(data: bytes, tracing: bool = True):
    """Parse ``data``; returns (outcome, peak bytes, model or None). outcome: "rejected",
    "loaded", or "error:<Type>: <msg>" for a failure."""
    from rtinfer.rtm import RtmFormatError, from_bytes
    if tracing:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
    model = None
    try:
        model = from_bytes(data, "fuzz")
        outcome = "loaded"
    except RtmFormatError:
        outcome = "rejected"
    except Exception as exc:  # noqa: BLE001 - any other type is the finding
        outcome = f"error:{type(exc).__name__}: {exc}"
    peak = 0
    if tracing:
        _, peak = tracemalloc.get_traced_memory()
        peak -= base
    if not outcome.startswith("error") and peak > MEM_FACTOR * len(data) + MEM_SLACK:
        outcome = f"error:memory: traced peak {peak} B for a {len(data)} B file"
    return outcome, peak, model


def run_range(seed: int, start: int, stop: int, survivors_dir: str | None = None, max_survivors: int = 200):
    """Run cases [start, stop); returns a summary dict (counts per family/outcome, failures)."""
    tracemalloc.start()
    counts: dict[str, dict[str, int]] = {}
    failures, saved = [], 0
    max_peak, max_ratio, max_seconds, slowest = 0, 0.0, 0.0, None
    seen = set()
    for i in range(start, stop):
        family, data = case(seed, i)
        t0 = time.perf_counter()
        outcome, peak, _ = check(data)
        dt = time.perf_counter() - t0
        if dt > max_seconds:
            max_seconds, slowest = dt, i
        max_peak = max(max_peak, peak)
        max_ratio = max(max_ratio, peak / max(len(data), 1))
        key = "error" if outcome.startswith("error") else outcome
        counts.setdefault(family, {}).setdefault(key, 0)
        counts[family][key] += 1
        if key == "error" or (family == "flip_raw" and key == "loaded"):
            failures.append({"index": i, "family": family, "outcome": outcome})
        elif key == "loaded" and survivors_dir is not None and saved < max_survivors:
            h = hashlib.sha1(data).hexdigest()
            if h not in seen and data not in base_files():
                seen.add(h)
                with open(os.path.join(survivors_dir, f"s{seed}_{i}.rtm"), "wb") as f:
                    f.write(data)
                saved += 1
    tracemalloc.stop()
    return {"seed": seed, "start": start, "stop": stop, "counts": counts, "failures": failures[:50],
            "n_failures": len(failures), "max_peak": max_peak, "max_peak_ratio": max_ratio,
            "max_case_seconds": max_seconds, "slowest_index": slowest, "survivors_saved": saved}


SURVIVOR_SCRIPT = r"""
import json, os, sys
import numpy as np
import rtinfer
from rtinfer.rtm import load_frozen
from rtinfer.plan import PlanError
out = {"ran": 0, "refused": 0, "errors": []}
for name in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], name)
    try:
        fm = load_frozen(path)
    except Exception as exc:
        out["errors"].append(f"{name}: does not load: {type(exc).__name__}: {exc}")
        continue
    try:
        rt = rtinfer.load(fm, nonfinite="allow")
    except ValueError:
        out["refused"] += 1
        continue
    try:
        X = np.random.default_rng(0).standard_normal((19,) + rt.input_shape).astype(np.float32)
        rt.predict(X); rt.stream(X); rt.predict_one(X[0])
        rt.measure(X, budget_us=1e6, warmup=2)
        out["ran"] += 1
    except Exception as exc:
        out["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
print(json.dumps(out))
"""


def boundscheck_env(cache_dir: str | None = None) -> dict:
    """Environment for a subprocess whose compiled code really checks bounds: NUMBA_BOUNDSCHECK=1
    and a private NUMBA_CACHE_DIR (the default cache next to the sources holds unchecked code,
    which numba would load regardless of NUMBA_BOUNDSCHECK)."""
    import tempfile
    env = dict(os.environ)
    env["NUMBA_BOUNDSCHECK"] = "1"
    env["NUMBA_CACHE_DIR"] = cache_dir or os.path.join(tempfile.gettempdir(), f"rtinfer-boundscheck-cache-{os.getuid()}")
    return env


def run_survivors(directory: str, timeout: float = 1800) -> dict:
    """Load every survivor file and run it through the runtime with bounds checking on."""
    proc = subprocess.run([sys.executable, "-c", SURVIVOR_SCRIPT, directory], env=boundscheck_env(),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"ran": 0, "refused": 0, "errors": [f"exit {proc.returncode}: {proc.stderr[-2000:]}"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100000, help="number of cases (default 100000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=25000, help="cases per worker process")
    ap.add_argument("--survivors", default=None, help="folder for loaded survivors (default: a temp folder)")
    ap.add_argument("--worker", nargs=3, type=int, metavar=("SEED", "START", "STOP"), help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="write the summary as JSON here")
    args = ap.parse_args(argv)
    if args.worker:
        seed, start, stop = args.worker
        print(json.dumps(run_range(seed, start, stop, args.survivors)))
        return 0

    import tempfile
    surv = args.survivors or tempfile.mkdtemp(prefix="rtm-survivors-")
    os.makedirs(surv, exist_ok=True)
    from _driver import run_chunks
    total, failures, crashes, max_of, seconds = run_chunks(
        os.path.abspath(__file__), args.seed, args.n, args.chunk, surv, ("max_peak", "max_peak_ratio", "max_case_seconds"))
    surv_res = run_survivors(surv)
    n_cases = sum(sum(d.values()) for d in total.values())
    summary = {"cases": n_cases, "seed": args.seed, "per_family": total, "failures": len(failures),
               "failure_examples": failures[:20], "crashes": crashes, "max_traced_peak_bytes": max_of["max_peak"],
               "max_peak_to_file_ratio": round(max_of["max_peak_ratio"], 2),
               "max_case_seconds": round(max_of["max_case_seconds"], 4),
               "survivors_saved": len(os.listdir(surv)), "survivors_ran_boundscheck": surv_res["ran"],
               "survivors_refused_by_planner": surv_res["refused"], "survivor_errors": surv_res["errors"][:20],
               "seconds": round(seconds, 1)}
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    ok = not failures and not crashes and not surv_res["errors"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
