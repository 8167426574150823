"""Fuzz the .rtm reader, the planner and the runtime with corrupted and hostile format-2 files.

    python fuzz/fuzz_rtm.py --n 100000 --seed 1 --json rtm.json     # long run, supervised workers
    python fuzz/fuzz_rtm.py --n 5000 --seed 7 --jobs 2
    python -c "import sys; sys.path.insert(0, 'fuzz'); import fuzz_rtm as f; print(f.check(f.case(1, 4242)[1], 1))"

Every case is a pure function of (seed, index): ``case(seed, i)`` returns (family, bytes), so a
finding is reproduced from its index alone. A case goes through the whole pipeline a user's file
goes through, in a worker process with a memory limit (fuzz/_driver.py: RLIMIT_AS 2 GiB above
the warmed-up worker, a per-case time limit, crashes caught):

1. ``from_bytes`` (traced by tracemalloc): ``rejected`` with RtmFormatError, the documented
   error, or the file loads;
2. ``rtinfer.load`` of the FrozenModel: ``refused`` by the planner with PlanError, the
   documented error, or planned;
3. small models run through predict (exact and default), stream, predict_one and measure
   (fuzz/_pipeline.py): ``ran`` when the exact entry points agree; ``planned`` when too large to
   run here.

Findings: ``escaped`` (any other exception type at any stage, e.g. AttributeError from a reader
or OverflowError from the planner), ``memory`` (MemoryError: the case wanted more than 2 GiB),
``parse_memory`` (the reader's traced peak above MEM_FACTOR * file size + MEM_SLACK),
``mismatch`` (entry points disagree), a raw bit flip or random header that loads, and, from the
driver, ``crash`` (the worker died: a signal) and ``hang`` (no progress within the time limit).

Families: every truncation of each base file (enumerated first); raw bit flips (no CRC repair);
the rest are "resealed" (every CRC recomputed after the edit, so the damage reaches the
structural checks): bit flips and byte sets in the tables, header fields (format 2's inputs and
outputs tables included) and table record fields set to boundary values, layer input ids,
layer input ranges, output records (tensor, dtype, shape), int64 outputs on any op, op and
activation codes, extreme integer attrs (window geometry kernel/stride/dilation/pad
2^16..2^63 with the layer's out_shape recomputed from them, axes, starts, steps, groups), attr
keys pointed at other strings, tensor records (offset, shape, section), shapes with huge or zero
dims, float attrs NaN/inf/0/denormal, section offsets and counts, random headers with a valid
magic/version/CRC, random files, extensions, resealed truncations, and ``synth``: hostile
synthetic graphs (fuzz/models.py) with element counts of 2^20..2^28 and extreme geometry in
files of a few hundred bytes. Base files: fuzz/models.py ``base_models()`` (fp32 and int8
chains, residual and two-output graphs, fp32 and int8 CNNs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import struct
import sys
import time
import tracemalloc
import warnings
import zlib

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(1, os.path.dirname(_HERE))

from _driver import mark, run_supervised, start_case, worker_main  # noqa: E402
from _pipeline import KNOWN_OPEN, classify_exception, examples, exercise, signature  # noqa: E402

MEM_FACTOR = 8          # the reader's traced peak must stay below MEM_FACTOR * file size + MEM_SLACK
MEM_SLACK = 64 * 1024

U32_VALUES = (0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 255, 256, 4095, 65535, 65536,
              (1 << 31) - 1, 1 << 31, (1 << 32) - 1)
U64_VALUES = U32_VALUES + (1 << 32, 1 << 40, 10 ** 12, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)
F64_VALUES = (math.nan, -math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, -1.0, 1e308, -1e308,
              1e-45, 3.5e38, 127.5, -128.5, 1e30)
I64_VALUES = (0, -1, 1, 127, 128, -128, -129, 255, (1 << 31) - 1, -(1 << 31), (1 << 63) - 1, -(1 << 63))
GEOMETRY_VALUES = (0, -1, 1 << 16, 1 << 24, 1 << 28, 1 << 29, 1 << 30, (1 << 31) - 1, 1 << 31, (1 << 32) - 1,
                   1 << 32, (1 << 63) - 1, -(1 << 31), -(1 << 63))
INT_ATTR_KEYS = ("kernel_h", "kernel_w", "stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top",
                 "pad_left", "pad_bottom", "pad_right", "group", "count_include_pad", "axis", "start", "step",
                 "fn", "outer", "axis_len", "inner")

# (family, weight): synth and the format-2 structure get more cases than the byte-level families
FAMILY_WEIGHTS = (
    ("flip_raw", 4), ("flip_resealed", 4), ("byte_resealed", 4), ("header_field", 5), ("record_field", 6),
    ("inputs_entry", 5), ("layer_inputs", 4), ("output_record", 5), ("output_int64", 3), ("op_code", 5),
    ("geometry", 8), ("attr_key", 3), ("tensor_field", 4), ("shape", 4), ("attr_value", 4), ("section", 3),
    ("random_header", 2), ("random_file", 2), ("extend", 2), ("truncate_resealed", 2), ("synth", 15),
)
FAMILIES = tuple(f for f, _ in FAMILY_WEIGHTS)
FINDINGS = ("escaped", "memory", "parse_memory", "mismatch", "crc_miss")


# ------------------------------------------------------------------------------ base files

_BASES = None


def base_models():
    from models import base_models as bm
    return bm()


def base_files() -> list[bytes]:
    global _BASES
    if _BASES is None:
        from rtinfer.rtm import to_bytes
        _BASES = [to_bytes(m) for m in base_models()]
    return _BASES


def layout(data: bytes) -> dict:
    """Offsets and counts of a valid file's tables (read from its header, trusted here)."""
    u = lambda off, fmt="<Q": struct.unpack_from(fmt, data, off)[0]  # noqa: E731
    return {"n_layers": u(24, "<I"), "n_tensors": u(28, "<I"), "n_attrs": u(32, "<I"), "n_meta": u(36, "<I"),
            "layers": u(48), "tensors": u(56), "attrs": u(64), "meta": u(72), "sections": u(80),
            "strings": u(88), "strings_size": u(96), "data": u(104),
            "inputs": u(192), "n_inputs": u(200, "<I"), "outputs": u(204), "n_outputs": u(212, "<I")}


def strings_of(data: bytes, lay: dict) -> list[tuple[int, int, str]]:
    """(offset, length, text) of every string in the string table."""
    out, start = [], 0
    raw = data[lay["strings"]:lay["strings"] + lay["strings_size"]]
    for k, byte in enumerate(raw):
        if byte == 0:
            out.append((start, k - start, raw[start:k].decode("utf-8", "replace")))
            start = k + 1
    return out


def attr_records(data: bytes, lay: dict) -> list[tuple[int, int, str]]:
    """(record byte offset, owning layer, key) of every attr record."""
    strs = {off: text for off, _, text in strings_of(data, lay)}
    out = []
    for i in range(lay["n_layers"]):
        rec = lay["layers"] + 112 * i
        first_a, n_a = struct.unpack_from("<II", data, rec + 24)
        for j in range(first_a, first_a + n_a):
            a = lay["attrs"] + 24 * j
            out.append((a, i, strs.get(struct.unpack_from("<I", data, a)[0], "")))
    return out


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


# Header fields: (offset, is_u64); format 2 adds inputs_off/n_inputs/outputs_off/n_outputs.
HEADER_FIELDS = ([(12, False), (16, True)] + [(24 + 4 * k, False) for k in range(6)]
                 + [(48 + 8 * k, True) for k in range(8)]
                 + [(112 + 4 * k, False) for k in range(18)] + [(184, False), (188, False)]
                 + [(192, True), (200, False), (204, True), (212, False)])
# Record kinds: (layout key, count key, size, [(field offset, is_u64)]).
RECORDS = {
    "layer": ("layers", "n_layers", 112, [(4 * k, False) for k in range(28)]),
    "tensor": ("tensors", "n_tensors", 64, [(0, False), (4, False), (8, False), (16, True)]
               + [(24 + 4 * k, False) for k in range(9)]),
    "attr": ("attrs", "n_attrs", 24, [(0, False), (4, False), (8, False), (16, True)]),
    "meta": ("meta", "n_meta", 16, [(4 * k, False) for k in range(4)]),
    "section": ("sections", None, 32, [(0, False), (8, True), (16, True)]),
    "input": ("inputs", "n_inputs", 4, [(0, False)]),
    "output": ("outputs", "n_outputs", 48, [(0, False), (4, False)] + [(8 + 4 * k, False) for k in range(9)]),
}


def _record(rnd, lay, kind):
    key, count_key, size, fields = RECORDS[kind]
    count = 3 if count_key is None else lay[count_key]
    if count == 0:
        return None, size, fields
    return lay[key] + rnd.randrange(count) * size, size, fields


def _pick_family(rnd) -> str:
    total = sum(w for _, w in FAMILY_WEIGHTS)
    r = rnd.random() * total
    for fam, w in FAMILY_WEIGHTS:
        r -= w
        if r < 0:
            return fam
    return FAMILY_WEIGHTS[-1][0]


def _synth_bytes(rnd) -> bytes:
    from models import raw_bytes, synth
    from rtinfer.rtm import RtmFormatError
    for _ in range(8):
        try:
            return raw_bytes(synth(rnd))
        except RtmFormatError:  # a generated value the format cannot hold: draw again
            continue
    return base_files()[0]


def _geometry(rnd, buf, lay) -> bytes:
    """An integer attr (window geometry first) set to an extreme value, with the layer's
    out_shape recomputed from the new geometry where the formula gives a storable shape."""
    from rtinfer.reference_conv import window_out_shape
    recs = attr_records(bytes(buf), lay)
    geo = [r for r in recs if r[2] in INT_ATTR_KEYS]
    if not geo:
        return reseal(buf)
    a_off, li, key = rnd.choice(geo)
    value = rnd.choice(GEOMETRY_VALUES + (0, 1, 2, 3))
    struct.pack_into("<I", buf, a_off + 8, 1)
    struct.pack_into("<q", buf, a_off + 16, value)
    if rnd.random() < 0.8:  # recompute out_shape from this layer's geometry attrs
        attrs = {}
        for off, i, k in recs:
            if i == li:
                kind = struct.unpack_from("<I", buf, off + 8)[0]
                raw = struct.unpack_from("<q" if kind == 1 else "<d", buf, off + 16)[0]
                attrs[k] = raw
        rec = lay["layers"] + 112 * li
        ndim = struct.unpack_from("<I", buf, rec + 32)[0]
        in_shape = struct.unpack_from(f"<{ndim}I", buf, rec + 36)
        try:
            o = struct.unpack_from("<I", buf, rec + 68 + 4)[0]  # out_shape[0]: channels out
            out = window_out_shape(tuple(in_shape), attrs, o)
            if all(0 < d < 1 << 32 for d in out):
                struct.pack_into("<I", buf, rec + 68, len(out))
                struct.pack_into(f"<{len(out)}I", buf, rec + 72, *out)
                if rnd.random() < 0.5:  # and the next layer's in_shape (a consistent chain)
                    nxt = rec + 112
                    if nxt < lay["layers"] + 112 * lay["n_layers"]:
                        struct.pack_into("<I", buf, nxt + 32, len(out))
                        struct.pack_into(f"<{len(out)}I", buf, nxt + 36, *out)
        except (KeyError, ValueError, TypeError, ZeroDivisionError, OverflowError, struct.error):
            pass
    return reseal(buf)


def case(seed: int, index: int) -> tuple[str, bytes]:
    """The case number ``index`` of run ``seed``: (family, file bytes)."""
    bases = base_files()
    trunc_total = sum(len(b) for b in bases)
    if index < trunc_total:  # every truncation of every base file, in order
        for b in bases:
            if index < len(b):
                return "truncate", b[:index]
            index -= len(b)
    rnd = random.Random(f"{seed}:{index}")
    family = _pick_family(rnd)
    if family == "synth":
        return family, _synth_bytes(rnd)
    base = rnd.choice(bases)
    lay = layout(base)
    buf = bytearray(base)
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
    if family == "inputs_entry":  # a layer reads another tensor id
        j = rnd.randrange(lay["n_inputs"])
        n_l = lay["n_layers"]
        struct.pack_into("<I", buf, lay["inputs"] + 4 * j,
                         rnd.choice((0, 1, 2, rnd.randrange(n_l + 1), n_l, n_l + 1, j, j + 1, 1 << 31, (1 << 32) - 1)))
        return family, reseal(buf)
    if family == "layer_inputs":  # first_input / n_inputs of one layer
        rec = lay["layers"] + 112 * rnd.randrange(lay["n_layers"])
        for off in rnd.sample((104, 108), rnd.randint(1, 2)):
            orig = struct.unpack_from("<I", buf, rec + off)[0]
            struct.pack_into("<I", buf, rec + off, rnd.choice((0, 1, 2, orig + 1, max(orig - 1, 0), lay["n_inputs"],
                                                               1 << 16, 1 << 20, (1 << 32) - 1)))
        return family, reseal(buf)
    if family == "output_record":
        k = rnd.randrange(lay["n_outputs"])
        rec = lay["outputs"] + 48 * k
        what = rnd.choice(("tensor", "dtype", "shape", "count"))
        if what == "tensor":
            n_l = lay["n_layers"]
            struct.pack_into("<I", buf, rec, rnd.choice((0, 1, rnd.randrange(1, n_l + 1), n_l, n_l + 1, (1 << 32) - 1)))
        elif what == "dtype":
            struct.pack_into("<I", buf, rec + 4, rnd.choice((0, 1, 2, 255)))
        elif what == "shape":
            ndim = struct.unpack_from("<I", buf, rec + 8)[0]
            if rnd.random() < 0.5 and ndim:  # the same elements in another shape, or flat
                total = math.prod(struct.unpack_from(f"<{min(ndim, 8)}I", buf, rec + 12))
                struct.pack_into("<9I", buf, rec + 8, 1, total, *(0,) * 7)
            else:
                struct.pack_into("<I", buf, rec + 12 + 4 * rnd.randrange(8), rnd.choice((0, 1, 2, 1 << 28, (1 << 32) - 1)))
        else:  # header n_outputs: more records than stored, or fewer
            struct.pack_into("<I", buf, 212, rnd.choice((0, 1, 2, 3, lay["n_outputs"] + 1, 1024, 1025)))
        return family, reseal(buf)
    if family == "output_int64":  # the header and output record 0 say int64, whatever op made it
        struct.pack_into("<I", buf, 44, 1)
        struct.pack_into("<I", buf, lay["outputs"] + 4, 1)
        if rnd.random() < 0.3:  # and the other way round: float32 on an ARGMAX result
            struct.pack_into("<I", buf, 44, 0)
            struct.pack_into("<I", buf, lay["outputs"] + 4, 0)
        return family, reseal(buf)
    if family == "op_code":
        from rtinfer.ops import Act, Op
        rec = lay["layers"] + 112 * rnd.randrange(lay["n_layers"])
        if rnd.random() < 0.75:
            struct.pack_into("<I", buf, rec, rnd.choice([int(o) for o in Op] + [0, 18, 27, 255]))
        else:
            struct.pack_into("<I", buf, rec + 4, rnd.choice([int(a) for a in Act] + [max(Act) + 1, 255]))
        return family, reseal(buf)
    if family == "geometry":
        return family, _geometry(rnd, buf, lay)
    if family == "attr_key":  # an attr record's key points at another string of the table
        rec, _, _ = _record(rnd, lay, "attr")
        strs = strings_of(base, lay)
        if rec is None or not strs:
            return family, reseal(buf)
        off, length, _ = rnd.choice(strs)
        struct.pack_into("<II", buf, rec, off, length)
        return family, reseal(buf)
    if family == "tensor_field":
        rec, _, _ = _record(rnd, lay, "tensor")
        if rec is None:
            return family, reseal(buf)
        what = rnd.choice(("offset", "section", "shape"))
        if what == "offset":
            struct.pack_into("<Q", buf, rec + 16, rnd.choice((0, 1, 15, 16, 17, 64, 1 << 20)))
        elif what == "section":
            struct.pack_into("<I", buf, rec + 8, rnd.choice((0, 1, 2, 3, 4)))
        else:  # the same elements in another shape (transposed or flat), or other dims
            ndim = struct.unpack_from("<I", buf, rec + 24)[0]
            dims = list(struct.unpack_from(f"<{min(ndim, 8)}I", buf, rec + 28))
            if rnd.random() < 0.5 and dims:
                new = dims[::-1] if rnd.random() < 0.5 else [math.prod(dims)]
            else:
                new = [rnd.choice((0, 1, 2, 3, 256, 1 << 20)) for _ in range(rnd.randint(1, 4))]
            struct.pack_into("<9I", buf, rec + 24, len(new), *new, *(0,) * (8 - len(new)))
        return family, reseal(buf)
    if family == "shape":
        where = rnd.choice(("header_in", "header_out", "layer_in", "layer_out", "tensor", "output"))
        if where == "header_in":
            off = 112
        elif where == "header_out":
            off = 148
        elif where == "tensor":
            rec, _, _ = _record(rnd, lay, "tensor")
            if rec is None:
                return family, reseal(buf)
            off = rec + 24
        elif where == "output":
            off = lay["outputs"] + 48 * rnd.randrange(lay["n_outputs"]) + 8
        else:
            rec, _, _ = _record(rnd, lay, "layer")
            off = rec + (32 if where == "layer_in" else 68)
        if rnd.random() < 0.3:
            struct.pack_into("<I", buf, off, rnd.choice((0, 1, 2, 8, 9, 255, (1 << 32) - 1)))  # ndim
        else:
            k = rnd.randrange(8)
            struct.pack_into("<I", buf, off + 4 + 4 * k,
                             rnd.choice((0, 1, 2, 3, 65536, 1 << 20, 1 << 24, 1 << 28, (1 << 31) - 1, 1 << 31,
                                         (1 << 32) - 1)))
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


# ------------------------------------------------------------------------------ one case

def parse(data: bytes, tracing: bool = True):
    """The reader alone: (outcome, traced peak, FrozenModel or None, detail); outcome
    "rejected", "loaded", or a finding ("escaped", "memory", "parse_memory")."""
    from rtinfer.rtm import RtmFormatError, from_bytes
    if tracing:
        tracemalloc.start()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
    model, detail = None, ""
    try:
        model = from_bytes(data, "fuzz")
        outcome = "loaded"
    except RtmFormatError:
        outcome = "rejected"
    except Exception as exc:  # noqa: BLE001 - any other type is the finding
        outcome, detail = classify_exception(exc, "parse")
    peak = 0
    if tracing:
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    if outcome in ("rejected", "loaded") and peak > MEM_FACTOR * len(data) + MEM_SLACK:
        outcome, detail = "parse_memory", f"traced peak {peak} B for a {len(data)} B file"
    return outcome, peak, model, detail


def check(data: bytes, seed: int = 0, tracing: bool = True, run: bool = True) -> dict:
    """The whole pipeline for one file (see the module doc): {"outcome", "detail", "parse_peak",
    "info"}; outcome "rejected" | "refused" | "planned" | "ran" | "loaded" (run=False) or a
    finding (FINDINGS). The reader runs under tracemalloc (``tracing``); the planner and the
    runtime are bounded by the worker's RLIMIT_AS instead (tracing them costs 10x on big plans),
    and ``info["runtime_bytes"]`` says what the Runtime holds (plan image and its arena copy)."""
    mark("parse")
    outcome, parse_peak, model, detail = parse(data, tracing)
    res = {"outcome": outcome, "detail": detail, "parse_peak": parse_peak, "info": {}}
    if outcome != "loaded" or not run:
        return res
    try:
        outcome, detail, info = exercise(model, seed)
        res["info"] = info
    except Exception as exc:  # noqa: BLE001 - an escaped type is the finding
        from _driver import current_stage
        outcome, detail = classify_exception(exc, current_stage())
    res["outcome"], res["detail"] = outcome, detail
    return res


# ------------------------------------------------------------------------------ a range of cases

def warm_up() -> None:
    """Imports, compiled code and the base models run once, before the memory limit is set."""
    from rtinfer.rtm import from_bytes
    warnings.simplefilter("ignore")
    for i, data in enumerate(base_files()):
        exercise(from_bytes(data), i)
    case(0, sum(len(b) for b in base_files()))


def run_range(seed: int, start: int, stop: int, survivors_dir: str | None = None, max_survivors: int = 0,
              run: bool = True, step: int = 1) -> dict:
    """Run cases start, start + step, ... below stop in this process; returns counts per
    family/outcome, findings and maxima. ``survivors_dir``: files that loaded are also saved
    there (up to max_survivors). run=False: the reader only."""
    warnings.simplefilter("ignore")
    counts: dict[str, dict[str, int]] = {}
    findings, notes = [], {"batch_differs": [], "reference_differs": [], "reference_errors": []}
    n_notes = {k: 0 for k in notes}
    res = {"max_parse_peak": 0, "max_parse_peak_index": None, "max_runtime_bytes": 0, "max_runtime_bytes_index": None,
           "max_batch_path_bytes": 0, "max_batch_path_bytes_index": None,
           "max_case_seconds": 0.0, "max_case_seconds_index": None}
    saved, seen = 0, set()
    slow = 0
    signatures: dict[str, int] = {}
    for i in range(start, stop, step):
        start_case(i)
        family, data = case(seed, i)
        t0 = time.perf_counter()
        try:
            r = check(data, seed=i, run=run)
        except MemoryError as exc:  # outside the stages (e.g. while recording): still a finding
            r = {"outcome": "memory", "detail": f"{type(exc).__name__}: {exc}", "parse_peak": 0, "info": {}}
        dt = time.perf_counter() - t0
        slow += dt > 1.0
        if dt > res["max_case_seconds"]:
            res["max_case_seconds"], res["max_case_seconds_index"] = dt, i
        if r["parse_peak"] > res["max_parse_peak"]:
            res["max_parse_peak"], res["max_parse_peak_index"] = r["parse_peak"], i
        for key in ("runtime_bytes", "batch_path_bytes"):
            if r["info"].get(key, 0) > res["max_" + key]:
                res["max_" + key], res[f"max_{key}_index"] = r["info"][key], i
        outcome = r["outcome"]
        if family in ("flip_raw", "random_header", "truncate") and outcome not in ("rejected",) \
                and outcome not in FINDINGS:
            outcome, r["detail"] = "crc_miss", f"a {family} file was not rejected"
        counts.setdefault(family, {}).setdefault(outcome, 0)
        counts[family][outcome] += 1
        if outcome in FINDINGS:
            rec = {"index": i, "family": family, "outcome": outcome, "detail": r["detail"]}
            findings.append(rec)
            sig = signature(rec)
            signatures[sig] = signatures.get(sig, 0) + 1
        info = r["info"]
        for key, flag in (("batch_differs", info.get("batch_close") is False),
                          ("reference_differs", info.get("reference_close") is False),
                          ("reference_errors", "reference_error" in info)):
            if flag:
                n_notes[key] += 1
                if len(notes[key]) < 10:
                    notes[key].append({"index": i, "family": family, "detail": info.get("reference_error", "")})
        if survivors_dir is not None and saved < max_survivors and r["outcome"] not in ("rejected",) + FINDINGS:
            h = zlib.crc32(data)
            if h not in seen and data not in base_files():
                seen.add(h)
                with open(os.path.join(survivors_dir, f"s{seed}_{i}.rtm"), "wb") as f:
                    f.write(data)
                saved += 1
    res.update({"seed": seed, "start": start, "stop": stop, "counts": counts, "findings": examples(findings),
                "n_findings": len(findings), "signatures": signatures, "notes": notes, "n_notes": n_notes, "slow_cases": slow,
                "survivors_saved": saved})
    return res


# ------------------------------------------------------------------------------ survivors under boundscheck

SURVIVOR_SCRIPT = r"""
import json, os, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
import rtinfer
from rtinfer.rtm import load_frozen
from rtinfer.plan import PlanError
out = {"ran": 0, "refused": 0, "skipped": 0, "errors": []}
for name in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], name)
    try:
        fm = load_frozen(path)
    except Exception as exc:
        out["errors"].append(f"{name}: does not load: {type(exc).__name__}: {exc}")
        continue
    try:
        rt = rtinfer.load(fm, nonfinite="allow")
    except PlanError:
        out["refused"] += 1
        continue
    except Exception as exc:
        out["errors"].append(f"{name}: load: {type(exc).__name__}: {exc}")
        continue
    if rt.in_size > 1 << 16 or rt.plan.arena_bytes > 1 << 24:
        out["skipped"] += 1
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
    import subprocess
    proc = subprocess.run([sys.executable, "-c", SURVIVOR_SCRIPT, directory], env=boundscheck_env(),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"ran": 0, "refused": 0, "skipped": 0, "errors": [f"exit {proc.returncode}: {proc.stderr[-2000:]}"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ main

def summarize(out: dict, seed: int, survivors: dict | None) -> dict:
    counts = out["counts"]
    total = sum(sum(d.values()) for d in counts.values()) + len(out["crashes"]) + len(out["hangs"])
    by_outcome: dict[str, int] = {}
    for d in counts.values():
        for k, v in d.items():
            by_outcome[k] = by_outcome.get(k, 0) + v
    return {"cases": total, "seed": seed, "outcomes": by_outcome, "per_family": counts,
            "findings": out["n_findings"], "finding_signatures": out.get("signatures", {}),
            "new_signatures": {k: v for k, v in out.get("signatures", {}).items() if k not in KNOWN_OPEN},
            "finding_examples": examples(out["findings"]),
            "crashes": out["crashes"], "hangs": out["hangs"],
            "max": {k: {"value": round(v, 4) if isinstance(v, float) else v, "index": i}
                    for k, (v, i) in out["max"].items()},
            "notes": out.get("notes"), "n_notes": out.get("n_notes"), "slow_cases": out.get("slow_cases", 0),
            "workers": out["workers"], "max_worker_rss_mb": round(out["maxrss_mb"], 1),
            "rlimit_as_bytes": out["rlimit_as_bytes"], "survivors": survivors, "seconds": out["seconds"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100000, help="number of cases (default 100000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first case index (default 0)")
    ap.add_argument("--chunk", type=int, default=5000, help="cases per worker process")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes at a time")
    ap.add_argument("--mem-gb", type=float, default=2.0, help="RLIMIT_AS headroom per worker, GiB (default 2)")
    ap.add_argument("--case-timeout", type=float, default=60.0, help="seconds without progress = a hang")
    ap.add_argument("--survivors", default=None, help="also save loaded files here and run them under "
                                                      "NUMBA_BOUNDSCHECK=1 at the end")
    ap.add_argument("--max-survivors", type=int, default=200, help="per worker")
    ap.add_argument("--worker", nargs=3, type=int, metavar=("SEED", "START", "STOP"), help=argparse.SUPPRESS)
    ap.add_argument("--progress", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="write the summary as JSON here")
    args = ap.parse_args(argv)
    if args.worker:
        seed, start, stop = args.worker
        return worker_main(run_range, warm_up, seed, start, stop, args.progress, args.mem_gb,
                           survivors_dir=args.survivors, max_survivors=args.max_survivors if args.survivors else 0)
    extra = ("--survivors", args.survivors, "--max-survivors", str(args.max_survivors)) if args.survivors else ()
    if args.survivors:
        os.makedirs(args.survivors, exist_ok=True)
    out = run_supervised(os.path.abspath(__file__), args.seed, args.n, args.chunk,
                         ("max_parse_peak", "max_runtime_bytes", "max_batch_path_bytes", "max_case_seconds"), jobs=args.jobs,
                         case_timeout=args.case_timeout, mem_gb=args.mem_gb, extra=extra, start=args.start,
                         log=lambda s: print(s, file=sys.stderr, flush=True))
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
