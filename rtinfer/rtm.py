"""The ``.rtm`` file: a FrozenModel on disk (NumPy + stdlib only).

    save_frozen(frozen, "model.rtm")            # atomic: temp file, fsync, os.replace, fsync dir
    frozen = load_frozen("model.rtm")           # validated, checksummed
    frozen = load_frozen("model.rtm", mmap=True)  # buffers are read-only views of the mapped file

The byte layout is specified in ``docs/FORMAT.md``; the constants below are that layout.
Everything is little-endian. A 256-byte fixed header holds the magic, the version, the model's
shapes, the counts and byte offsets of seven fixed-record tables (layers, tensors, attrs, meta,
sections, and since version 2 the graph's layer inputs and model outputs), a string table, and
three CRC32s (zlib): one over the header, one over the tables region, one over the data region;
each data section also carries its own CRC32. Data sections (one per buffer dtype) start at
multiples of 64 bytes, so ``np.memmap`` maps them in place. Version 1 files (chains: no input
or output tables) are read as well; files are written as version 2.

Every problem with a file raises ``RtmFormatError`` (a ValueError) naming what is wrong and where
(byte offset, table record, section or layer). The reader checks sizes against the file length
before allocating anything, so a header claiming absurd counts costs nothing.
"""

from __future__ import annotations

import math
import os
import stat
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ._atomic import atomic_write
from .frozen import BUFFER_DTYPES, FrozenModel, FrozenModelError, Layer, TensorRef
from .ops import Act, Op

MAGIC = b"\x89RTM\r\n\x1a\n"
VERSION_MAJOR = 2
VERSION_MINOR = 0
READ_MAJORS = (1, 2)
MAX_RANK = 8
ALIGN = 64

# Upper bounds a reader accepts before looking any further (a real model is far below them).
MAX_LAYERS = 1 << 16
MAX_TENSORS = 1 << 18
MAX_ATTRS = 1 << 20
MAX_META = 1 << 16
MAX_STRINGS_BYTES = 1 << 26
MAX_SHAPE_ELEMS = 1 << 28  # per layer input/output and per tensor
MAX_INPUTS = 1 << 20       # layer-input entries (graph edges)
MAX_OUTPUTS = 1 << 10

# Fixed header, 256 bytes.
#   magic 8s | version_major H | version_minor H | header_size I | file_size Q
#   n_layers I | n_tensors I | n_attrs I | n_meta I | n_sections I | output_dtype I
#   layers_off Q | tensors_off Q | attrs_off Q | meta_off Q | sections_off Q
#   strings_off Q | strings_size Q | data_off Q
#   input shape (ndim I + dims 8I) | output shape (ndim I + dims 8I)
#   tables_crc I | data_crc I
#   inputs_off Q | n_inputs I | outputs_off Q | n_outputs I    (version 2; zero in version 1)
#   reserved 36x | header_crc I
_SHAPE = "I8I"
HEADER = struct.Struct("<8sHHIQ" + "6I" + "8Q" + _SHAPE + _SHAPE + "II" + "QIQI" + "36x" + "I")
HEADER_SIZE = 256
HEADER_CRC_OFFSET = 252
assert HEADER.size == HEADER_SIZE

# Layer record, 112 bytes: op I | act I | name_off I | name_len I | first_tensor I | n_tensors I
#   | first_attr I | n_attrs I | in shape (I 8I) | out shape (I 8I) | first_input I | n_inputs I
#   (first_input, n_inputs: the layer's entries in the inputs table; both 0 in version 1, where
#   layer i reads tensor i)
LAYER = struct.Struct("<8I" + _SHAPE + _SHAPE + "II")
# Inputs table (version 2): one uint32 tensor id per entry (0: the model input, i + 1: layer i's
# output), padded with zero bytes to a multiple of 8 bytes.
INPUT = struct.Struct("<I")
# Output record (version 2), 48 bytes: tensor I | dtype I (0 float32, 1 int64) | shape (I 8I) | 4x
OUTPUT = struct.Struct("<II" + _SHAPE + "4x")
# Tensor record, 64 bytes: name_off I | name_len I | section I | reserved 4x | offset Q (elements)
#   | shape (I 8I) | reserved 4x
TENSOR = struct.Struct("<III4xQ" + _SHAPE + "4x")
# Attr record, 24 bytes: key_off I | key_len I | kind I | reserved 4x | value 8 bytes
#   kind 0: value is float64 (d); kind 1: value is int64 (q)
ATTR = struct.Struct("<III4x8s")
# Meta record, 16 bytes: key_off I | key_len I | value_off I | value_len I
META = struct.Struct("<4I")
# Section record, 32 bytes: dtype I | crc32 I | offset Q (bytes, from file start) | count Q (elements)
#   | reserved 8x
SECTION = struct.Struct("<IIQQ8x")
assert (LAYER.size, TENSOR.size, ATTR.size, META.size, SECTION.size, OUTPUT.size) == (112, 64, 24, 16, 32, 48)

ATTR_FLOAT, ATTR_INT = 0, 1
INT8_ATTRS = frozenset({"x_zp", "y_zp", "qmin", "qmax"})  # int8 codes: integers in [-128, 127]
OUTPUT_DTYPES = ("float32", "int64")
# Section dtype codes: 1 float32, 2 int8, 3 int32; sections are written in this order.
SECTION_CODES = {"f32": 1, "i8": 2, "i32": 3}
SECTION_KEYS = {v: k for k, v in SECTION_CODES.items()}


class RtmFormatError(ValueError):
    """An ``.rtm`` file is corrupt, truncated, of an unknown version, or cannot be written.

    The message says what is wrong and where (byte offset, table record, section or layer).
    """


@dataclass(frozen=True)
class RtmInfo:
    """What the fixed header of an .rtm file says (for ``rtinfer inspect``)."""
    version: tuple[int, int]
    file_size: int
    n_layers: int
    n_tensors: int
    n_attrs: int
    n_meta: int
    sections: dict  # buffer key -> (byte offset, element count)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------

class _Strings:
    """A string table: UTF-8 bytes, each string followed by one NUL (not counted in its length)."""

    def __init__(self):
        self.data = bytearray()

    def add(self, s: str) -> tuple[int, int]:
        raw = s.encode("utf-8")
        if b"\x00" in raw:
            raise RtmFormatError(f"cannot store string {s!r}: it contains a NUL character")
        off = len(self.data)
        self.data += raw + b"\x00"
        return off, len(raw)


def _pack_shape(shape, what: str) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    if len(shape) > MAX_RANK:
        raise RtmFormatError(f"cannot store {what}: rank {len(shape)} exceeds the format's maximum {MAX_RANK}")
    if any(d < 0 or d >= 1 << 32 for d in shape):
        raise RtmFormatError(f"cannot store {what}: dimension out of range in {shape}")
    return (len(shape),) + shape + (0,) * (MAX_RANK - len(shape))


def _pack_attr_value(value, what: str) -> tuple[int, bytes]:
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if isinstance(value, (int, np.integer)):
        v = int(value)
        if not -(1 << 63) <= v < (1 << 63):
            raise RtmFormatError(f"cannot store {what}: integer {v} does not fit int64")
        return ATTR_INT, struct.pack("<q", v)
    if isinstance(value, (float, np.floating)):
        return ATTR_FLOAT, struct.pack("<d", float(value))
    raise RtmFormatError(f"cannot store {what}: {type(value).__name__} is not a number")


def to_bytes(frozen: FrozenModel) -> bytes:
    """The exact bytes of ``frozen`` as an .rtm file (deterministic: same model, same bytes)."""
    strings = _Strings()
    layer_recs, tensor_recs, attr_recs, meta_recs, input_recs, output_recs = [], [], [], [], [], []
    for i, layer in enumerate(frozen.layers):
        where = f"layer {i} ({layer.op.name})"
        name_off, name_len = strings.add(layer.name)
        first_tensor, first_attr = len(tensor_recs), len(attr_recs)
        for tname, ref in layer.tensors.items():
            t_off, t_len = strings.add(tname)
            tensor_recs.append(TENSOR.pack(t_off, t_len, SECTION_CODES[ref.buffer], int(ref.offset),
                                           *_pack_shape(ref.shape, f"{where} tensor {tname!r}")))
        for key, value in layer.attrs.items():
            k_off, k_len = strings.add(key)
            kind, raw = _pack_attr_value(value, f"{where} attr {key!r}")
            attr_recs.append(ATTR.pack(k_off, k_len, kind, raw))
        first_input = len(input_recs)
        input_recs.extend(INPUT.pack(t) for t in layer.inputs)
        layer_recs.append(LAYER.pack(int(layer.op), int(layer.act), name_off, name_len,
                                     first_tensor, len(layer.tensors), first_attr, len(layer.attrs),
                                     *_pack_shape(layer.in_shape, f"{where} in_shape"),
                                     *_pack_shape(layer.out_shape, f"{where} out_shape"),
                                     first_input, len(layer.inputs)))
    for k, out in enumerate(frozen.outputs):
        output_recs.append(OUTPUT.pack(out.tensor, OUTPUT_DTYPES.index(out.dtype),
                                       *_pack_shape(out.shape, f"output {k}")))
    for key, value in frozen.meta.items():
        meta_recs.append(META.pack(*strings.add(key), *strings.add(value)))
    inputs_blob = b"".join(input_recs)
    inputs_blob += b"\x00" * (-len(inputs_blob) % 8)

    # Tables region: layers, tensors, attrs, meta, sections, inputs (padded to 8 bytes), outputs,
    # strings; each table 8-byte aligned (record sizes are multiples of 8).
    layers_off = HEADER_SIZE
    tensors_off = layers_off + LAYER.size * len(layer_recs)
    attrs_off = tensors_off + TENSOR.size * len(tensor_recs)
    meta_off = attrs_off + ATTR.size * len(attr_recs)
    sections_off = meta_off + META.size * len(meta_recs)
    inputs_off = sections_off + SECTION.size * len(SECTION_CODES)
    outputs_off = inputs_off + len(inputs_blob)
    strings_off = outputs_off + OUTPUT.size * len(output_recs)
    strings_size = len(strings.data)
    data_off = _align(strings_off + strings_size)

    section_recs, data = [], bytearray()
    for key, code in SECTION_CODES.items():
        arr = np.ascontiguousarray(frozen.buffers[key], dtype=BUFFER_DTYPES[key])
        raw = arr.tobytes()
        off = data_off + len(data)
        section_recs.append(SECTION.pack(code, zlib.crc32(raw), off, arr.size))
        data += raw
        data += b"\x00" * (_align(len(data)) - len(data))
    file_size = data_off + len(data)

    tables = (b"".join(layer_recs + tensor_recs + attr_recs + meta_recs + section_recs) + inputs_blob
              + b"".join(output_recs) + bytes(strings.data))
    tables += b"\x00" * (data_off - HEADER_SIZE - len(tables))
    out_code = OUTPUT_DTYPES.index(frozen.output_dtype)
    header = HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, HEADER_SIZE, file_size,
                         len(layer_recs), len(tensor_recs), len(attr_recs), len(meta_recs),
                         len(SECTION_CODES), out_code,
                         layers_off, tensors_off, attrs_off, meta_off, sections_off,
                         strings_off, strings_size, data_off,
                         *_pack_shape(frozen.input_shape, "input_shape"),
                         *_pack_shape(frozen.output_shape, "output_shape"),
                         zlib.crc32(tables), zlib.crc32(data),
                         inputs_off, len(input_recs), outputs_off, len(output_recs), 0)
    header = header[:HEADER_CRC_OFFSET] + struct.pack("<I", zlib.crc32(header[:HEADER_CRC_OFFSET]))
    return header + tables + bytes(data)


def save_frozen(frozen: FrozenModel, path) -> None:
    """Write ``frozen`` to ``path`` atomically (rtinfer._atomic: temp file in the same
    directory, fsync, os.replace, fsync of the directory). If anything fails, a previous file at
    ``path`` is left intact and the temp file is removed.
    """
    if not isinstance(frozen, FrozenModel):
        raise TypeError(f"save_frozen needs a FrozenModel, got {type(frozen).__name__}")
    payload = to_bytes(frozen)
    atomic_write(path, lambda f: f.write(payload))


# ------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------

class _Reader:
    """Bounds-checked access to the bytes of one file (a bytes-like object or a uint8 memmap)."""

    def __init__(self, buf, name: str):
        self.buf = buf
        self.view = memoryview(buf).cast("B")
        self.n = len(self.view)
        self.name = name

    def fail(self, msg: str):
        raise RtmFormatError(f"{self.name}: {msg}")

    def record(self, st: struct.Struct, off: int, what: str):
        if off < 0 or off + st.size > self.n:
            self.fail(f"{what} at byte {off} ({st.size} bytes) lies outside the file ({self.n} bytes)")
        return st.unpack_from(self.view, off)

    def crc(self, start: int, stop: int) -> int:
        return zlib.crc32(self.view[start:stop])


def _check_shape(r: _Reader, rec, what: str) -> tuple[int, ...]:
    ndim, dims = rec[0], rec[1:]
    if ndim > MAX_RANK:
        r.fail(f"{what}: rank {ndim} exceeds the maximum {MAX_RANK}")
    if any(d != 0 for d in dims[ndim:]):
        r.fail(f"{what}: unused dimension slots are not zero")
    if math.prod(dims[:ndim]) > MAX_SHAPE_ELEMS:
        r.fail(f"{what}: shape {tuple(dims[:ndim])} claims more than {MAX_SHAPE_ELEMS} elements")
    return tuple(dims[:ndim])


def _read_header(r: _Reader) -> dict:
    if r.n < len(MAGIC):
        r.fail(f"truncated: the file is {r.n} bytes, shorter than the {len(MAGIC)}-byte magic number")
    if bytes(r.view[:len(MAGIC)]) != MAGIC:
        r.fail(f"not an .rtm file: bad magic number {bytes(r.view[:len(MAGIC)])!r} at byte 0 "
               f"(expected {MAGIC!r})")
    if r.n < 12:
        r.fail(f"truncated: the file is {r.n} bytes, shorter than the version field (bytes 8..12)")
    major, minor = struct.unpack_from("<HH", r.view, 8)
    if major not in READ_MAJORS:
        r.fail(f"unsupported format version {major}.{minor} at byte 8 (this reader reads "
               f"{' and '.join(f'{v}.x' for v in READ_MAJORS)})")
    if r.n < HEADER_SIZE:
        r.fail(f"truncated: the file is {r.n} bytes, shorter than the {HEADER_SIZE}-byte header")
    (stored_crc,) = struct.unpack_from("<I", r.view, HEADER_CRC_OFFSET)
    if r.crc(0, HEADER_CRC_OFFSET) != stored_crc:
        r.fail(f"header checksum mismatch (CRC32 of bytes 0..{HEADER_CRC_OFFSET} does not match the "
               f"value at byte {HEADER_CRC_OFFSET}): the header is corrupt")
    f = HEADER.unpack_from(r.view, 0)
    names = ("magic", "major", "minor", "header_size", "file_size",
             "n_layers", "n_tensors", "n_attrs", "n_meta", "n_sections", "output_dtype",
             "layers_off", "tensors_off", "attrs_off", "meta_off", "sections_off",
             "strings_off", "strings_size", "data_off")
    h = dict(zip(names, f[:len(names)]))
    k = len(names)
    h["input_shape"] = _check_shape(r, f[k:k + 1 + MAX_RANK], "header input_shape (byte 112)")
    k += 1 + MAX_RANK
    h["output_shape"] = _check_shape(r, f[k:k + 1 + MAX_RANK], "header output_shape (byte 148)")
    k += 1 + MAX_RANK
    h["tables_crc"], h["data_crc"] = f[k], f[k + 1]
    h["inputs_off"], h["n_inputs"], h["outputs_off"], h["n_outputs"] = f[k + 2:k + 6]
    if major == 1 and any(f[k + 2:k + 6]):
        r.fail("a version 1 file has nonzero bytes in its reserved header area (bytes 192..216)")
    if major >= 2 and h["n_outputs"] == 0:
        r.fail("header claims n_outputs = 0 (byte 204); a version 2 model has at least one output")

    if h["header_size"] != HEADER_SIZE:
        r.fail(f"header_size at byte 12 is {h['header_size']}, expected {HEADER_SIZE}")
    if h["file_size"] != r.n:
        r.fail(f"truncated or extended: the header (byte 16) says the file is {h['file_size']} bytes, "
               f"but it is {r.n} bytes")
    for key, limit in (("n_layers", MAX_LAYERS), ("n_tensors", MAX_TENSORS), ("n_attrs", MAX_ATTRS),
                       ("n_meta", MAX_META), ("strings_size", MAX_STRINGS_BYTES),
                       ("n_inputs", MAX_INPUTS), ("n_outputs", MAX_OUTPUTS)):
        if h[key] > limit:
            r.fail(f"header claims {key} = {h[key]}, above the limit {limit}")
    if h["n_sections"] != len(SECTION_CODES):
        r.fail(f"header claims {h['n_sections']} data sections, expected {len(SECTION_CODES)}")
    if h["output_dtype"] >= len(OUTPUT_DTYPES):
        r.fail(f"unknown output dtype code {h['output_dtype']} at byte 44")
    if h["data_off"] % ALIGN or not HEADER_SIZE <= h["data_off"] <= r.n:
        r.fail(f"data offset {h['data_off']} (byte 104) is not a multiple of {ALIGN} inside the file")
    # Each table must lie between the header and the data region.
    for key, count, size in (("layers_off", h["n_layers"], LAYER.size), ("tensors_off", h["n_tensors"], TENSOR.size),
                             ("attrs_off", h["n_attrs"], ATTR.size), ("meta_off", h["n_meta"], META.size),
                             ("sections_off", h["n_sections"], SECTION.size),
                             ("inputs_off", h["n_inputs"], INPUT.size), ("outputs_off", h["n_outputs"], OUTPUT.size),
                             ("strings_off", h["strings_size"], 1)):
        if count == 0 and key in ("inputs_off", "outputs_off"):
            continue
        start, stop = h[key], h[key] + count * size
        if start < HEADER_SIZE or stop > h["data_off"]:
            r.fail(f"table {key[:-4]} [{start}, {stop}) lies outside the tables region "
                   f"[{HEADER_SIZE}, {h['data_off']})")
    return h


def read_info(path) -> RtmInfo:
    """Validate a file's header and section table and say what it holds (no data CRC check)."""
    with open(path, "rb") as f:
        r = _Reader(f.read(), os.fspath(path))
    h = _read_header(r)
    sections = {}
    for i in range(h["n_sections"]):
        code, _crc, off, count = r.record(SECTION, h["sections_off"] + i * SECTION.size, f"section record {i}")
        sections[SECTION_KEYS.get(code, str(code))] = (off, count)
    return RtmInfo((h["major"], h["minor"]), h["file_size"], h["n_layers"], h["n_tensors"],
                   h["n_attrs"], h["n_meta"], sections)


def _string(r: _Reader, h: dict, off: int, length: int, what: str) -> str:
    if off + length + 1 > h["strings_size"]:
        r.fail(f"{what}: string [{off}, {off + length}] lies outside the string table "
               f"({h['strings_size']} bytes at byte {h['strings_off']})")
    start = h["strings_off"] + off
    if r.view[start + length] != 0:
        r.fail(f"{what}: string at byte {start} is not NUL-terminated")
    raw = bytes(r.view[start:start + length])
    if b"\x00" in raw:
        r.fail(f"{what}: string at byte {start} contains a NUL")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        r.fail(f"{what}: string at byte {start} is not valid UTF-8 ({exc.reason})")


def _parse(r: _Reader, mmap_source) -> FrozenModel:
    h = _read_header(r)
    if r.crc(HEADER_SIZE, h["data_off"]) != h["tables_crc"]:
        r.fail(f"tables checksum mismatch (CRC32 of bytes {HEADER_SIZE}..{h['data_off']}, stored at byte 184): "
               f"the layer/tensor/attr/meta/section tables or the string table are corrupt")

    # Sections: in the fixed order f32, i8, i32, each 64-byte aligned, in bounds, checksummed.
    buffers, section_sizes = {}, {}
    prev_end = h["data_off"]
    for i in range(h["n_sections"]):
        code, crc, off, count = r.record(SECTION, h["sections_off"] + i * SECTION.size, f"section record {i}")
        key = SECTION_KEYS.get(code)
        if key is None or code != i + 1:
            r.fail(f"section record {i}: dtype code {code}, expected {i + 1} (sections are f32, i8, i32 in order)")
        nbytes = count * BUFFER_DTYPES[key].itemsize
        if off % ALIGN or off < prev_end or off + nbytes > r.n:
            r.fail(f"section {key}: [{off}, {off + nbytes}) is misaligned, overlaps the previous section "
                   f"or lies outside the file ({r.n} bytes)")
        if r.crc(off, off + nbytes) != crc:
            r.fail(f"section {key} checksum mismatch (bytes {off}..{off + nbytes}): the {key} data is corrupt")
        prev_end = off + nbytes
        section_sizes[key] = count
        if mmap_source is not None:
            buffers[key] = mmap_source[off:off + nbytes].view(BUFFER_DTYPES[key])
        else:
            buffers[key] = np.frombuffer(r.buf, dtype=BUFFER_DTYPES[key], count=count, offset=off)
    if r.crc(h["data_off"], r.n) != h["data_crc"]:
        r.fail(f"data checksum mismatch (CRC32 of bytes {h['data_off']}..{r.n}, stored at byte 188): "
               f"padding between sections is corrupt")

    strings_end = h["strings_off"] + h["strings_size"]
    if h["strings_size"] and r.view[strings_end - 1] != 0:
        r.fail(f"string table ending at byte {strings_end} is not NUL-terminated")

    inputs_next = 0
    tensor_used = [False] * h["n_tensors"]
    attr_used = [False] * h["n_attrs"]
    layers = []
    for i in range(h["n_layers"]):
        rec_off = h["layers_off"] + i * LAYER.size
        rec = r.record(LAYER, rec_off, f"layer record {i}")
        op_code, act_code, name_off, name_len, first_t, n_t, first_a, n_a = rec[:8]
        where = f"layer {i} (record at byte {rec_off})"
        try:
            op = Op(op_code)
        except ValueError:
            r.fail(f"{where}: unknown op code {op_code}; known: {[int(o) for o in Op]}")
        where = f"layer {i} {op.name} (record at byte {rec_off})"
        try:
            act = Act(act_code)
        except ValueError:
            r.fail(f"{where}: unknown activation code {act_code}; known: {[int(a) for a in Act]}")
        name = _string(r, h, name_off, name_len, f"{where} name")
        in_shape = _check_shape(r, rec[8:8 + 1 + MAX_RANK], f"{where} in_shape")
        out_shape = _check_shape(r, rec[8 + 1 + MAX_RANK:8 + 2 * (1 + MAX_RANK)], f"{where} out_shape")
        first_in, n_in = rec[8 + 2 * (1 + MAX_RANK):]
        inputs = None
        if h["major"] == 1:
            if first_in or n_in:
                r.fail(f"{where}: a version 1 layer record has nonzero reserved bytes")
        else:
            if n_in == 0 or first_in + n_in > h["n_inputs"] or first_in != inputs_next:
                r.fail(f"{where}: inputs [{first_in}, {first_in + n_in}) are empty, out of order or outside "
                       f"the inputs table ({h['n_inputs']} entries)")
            inputs_next = first_in + n_in
            inputs = tuple(INPUT.unpack_from(r.view, h["inputs_off"] + 4 * j)[0] for j in range(first_in, first_in + n_in))
            bad = [t for t in inputs if t > i]
            if bad:
                r.fail(f"{where}: reads tensor {bad[0]}, which is not an earlier tensor (layer {i} may read 0..{i})")
        if first_t + n_t > h["n_tensors"]:
            r.fail(f"{where}: tensors [{first_t}, {first_t + n_t}) outside the tensor table ({h['n_tensors']} records)")
        if first_a + n_a > h["n_attrs"]:
            r.fail(f"{where}: attrs [{first_a}, {first_a + n_a}) outside the attr table ({h['n_attrs']} records)")
        tensors = {}
        for j in range(first_t, first_t + n_t):
            if tensor_used[j]:
                r.fail(f"{where}: tensor record {j} is shared with another layer")
            tensor_used[j] = True
            t_off = h["tensors_off"] + j * TENSOR.size
            trec = r.record(TENSOR, t_off, f"tensor record {j}")
            tname = _string(r, h, trec[0], trec[1], f"{where} tensor record {j} name")
            twhere = f"{where} tensor {tname!r} (record at byte {t_off})"
            key = SECTION_KEYS.get(trec[2])
            if key is None:
                r.fail(f"{twhere}: unknown section code {trec[2]}")
            shape = _check_shape(r, trec[4:], twhere)
            size = math.prod(shape)
            if trec[3] + size > section_sizes[key]:
                r.fail(f"{twhere}: elements [{trec[3]}, {trec[3] + size}) lie outside section {key} "
                       f"({section_sizes[key]} elements)")
            if tname in tensors:
                r.fail(f"{twhere}: duplicate tensor name")
            tensors[tname] = TensorRef(key, trec[3], shape)
        attrs = {}
        for j in range(first_a, first_a + n_a):
            if attr_used[j]:
                r.fail(f"{where}: attr record {j} is shared with another layer")
            attr_used[j] = True
            a_off = h["attrs_off"] + j * ATTR.size
            k_off, k_len, kind, raw = r.record(ATTR, a_off, f"attr record {j}")
            key = _string(r, h, k_off, k_len, f"{where} attr record {j} key")
            awhere = f"{where} attr {key!r} (record at byte {a_off})"
            if kind == ATTR_FLOAT:
                value = struct.unpack("<d", raw)[0]
                if math.isnan(value):
                    r.fail(f"{awhere}: value is NaN")
            elif kind == ATTR_INT:
                value = struct.unpack("<q", raw)[0]
            else:
                r.fail(f"{awhere}: unknown attr kind {kind}")
            if key.endswith("scale") and not (math.isfinite(value) and value > 0):
                r.fail(f"{awhere}: a scale must be finite and positive, got {value}")
            if key in INT8_ATTRS and not (math.isfinite(value) and value == int(value) and -128 <= value <= 127):
                r.fail(f"{awhere}: a zero point or clamp bound must be an integer in [-128, 127], got {value}")
            if key in attrs:
                r.fail(f"{awhere}: duplicate attr key")
            attrs[key] = value
        if attrs.get("qmin", -128) > attrs.get("qmax", 127):
            r.fail(f"{where}: qmin {attrs['qmin']} exceeds qmax {attrs.get('qmax', 127)}")
        if "w_scale" in tensors and tensors["w_scale"].buffer == "f32":
            ref = tensors["w_scale"]
            ws = buffers["f32"][ref.offset:ref.offset + ref.size]
            if not (np.all(np.isfinite(ws)) and np.all(ws > 0)):
                r.fail(f"{where}: tensor 'w_scale' holds a non-finite or non-positive scale")
        layers.append(Layer(op=op, in_shape=in_shape, out_shape=out_shape, act=act,
                            tensors=tensors, attrs=attrs, name=name, inputs=inputs))
    if not all(tensor_used):
        r.fail(f"tensor record {tensor_used.index(False)} belongs to no layer")
    if not all(attr_used):
        r.fail(f"attr record {attr_used.index(False)} belongs to no layer")
    if h["major"] >= 2 and inputs_next != h["n_inputs"]:
        r.fail(f"inputs table entry {inputs_next} belongs to no layer")
    outputs = None
    if h["major"] >= 2:
        outputs = []
        for k in range(h["n_outputs"]):
            o_off = h["outputs_off"] + k * OUTPUT.size
            orec = r.record(OUTPUT, o_off, f"output record {k}")
            if orec[1] >= len(OUTPUT_DTYPES):
                r.fail(f"output record {k} (byte {o_off}): unknown dtype code {orec[1]}")
            if not 1 <= orec[0] <= h["n_layers"]:
                r.fail(f"output record {k} (byte {o_off}): tensor {orec[0]} is not a layer's output "
                       f"(1..{h['n_layers']})")
            outputs.append((orec[0], _check_shape(r, orec[2:], f"output record {k}"), OUTPUT_DTYPES[orec[1]]))
        if (outputs[0][1], outputs[0][2]) != (h["output_shape"], OUTPUT_DTYPES[h["output_dtype"]]):
            r.fail("the header's output shape/dtype (bytes 44, 148) differ from output record 0")

    meta = {}
    for i in range(h["n_meta"]):
        m_off = h["meta_off"] + i * META.size
        k_off, k_len, v_off, v_len = r.record(META, m_off, f"meta record {i}")
        key = _string(r, h, k_off, k_len, f"meta record {i} key")
        if key in meta:
            r.fail(f"meta record {i} (byte {m_off}): duplicate key {key!r}")
        meta[key] = _string(r, h, v_off, v_len, f"meta record {i} ({key!r}) value")

    try:
        return FrozenModel(layers=tuple(layers), buffers=buffers, input_shape=h["input_shape"],
                           output_shape=h["output_shape"], output_dtype=OUTPUT_DTYPES[h["output_dtype"]],
                           meta=meta, outputs=outputs)
    except FrozenModelError as exc:
        r.fail(f"the stored model is inconsistent: {exc}")


def from_bytes(data, name: str = "<bytes>") -> FrozenModel:
    """Parse .rtm bytes (buffers become read-only views of ``data`` when it is immutable)."""
    return _parse(_Reader(data, name), None)


def _refuse_special_file(name: str) -> None:
    """Devices, FIFOs and sockets are refused before opening: reading /dev/zero would fill
    memory and a FIFO would block. (A missing path raises FileNotFoundError here.)"""
    mode = os.stat(name).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise RtmFormatError(f"{name}: not a regular file (a device, FIFO or socket)")


def load_frozen(path, mmap: bool = False) -> FrozenModel:
    """Read and validate an .rtm file.

    mmap=False reads the file into memory once; the buffers are views of that one block.
    mmap=True maps the file read-only; the buffers are ``np.memmap`` views of it (no copy),
    so pages load on first touch. The checksums are verified in both modes.
    Raises RtmFormatError for any corrupt or unsupported file, OSError if it cannot be read.
    """
    name = os.fspath(path)
    _refuse_special_file(name)
    if mmap:
        size = os.path.getsize(name)
        if size == 0:
            raise RtmFormatError(f"{name}: truncated: the file is empty")
        mm = np.memmap(name, dtype=np.uint8, mode="r")
        return _parse(_Reader(mm, name), mm)
    with open(name, "rb") as f:
        data = bytearray(f.read())
    return _parse(_Reader(data, name), None)
