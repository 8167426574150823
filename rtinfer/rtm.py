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

import numpy as np

from .frozen import BUFFER_DTYPES, FrozenModel, FrozenModelError, Layer, TensorRef
from .ops import Act, Op
from .rtm_layout import (  # noqa: F401  (the layout constants and writer, re-exported)
    ALIGN,
    ATTR,
    ATTR_FLOAT,
    ATTR_INT,
    HEADER,
    HEADER_CRC_OFFSET,
    HEADER_SIZE,
    INPUT,
    INT8_ATTRS,
    LAYER,
    MAGIC,
    MAX_ATTRS,
    MAX_INPUTS,
    MAX_LAYERS,
    MAX_META,
    MAX_OUTPUTS,
    MAX_RANK,
    MAX_SHAPE_ELEMS,
    MAX_STRINGS_BYTES,
    MAX_TENSORS,
    META,
    OUTPUT,
    OUTPUT_DTYPES,
    READ_MAJORS,
    RtmFormatError,
    RtmInfo,
    SECTION,
    SECTION_CODES,
    SECTION_KEYS,
    TENSOR,
    VERSION_MAJOR,
    VERSION_MINOR,
    to_bytes,
    write_frozen,
)


def save_frozen(frozen: FrozenModel, path) -> None:
    """Write ``frozen`` to ``path`` atomically (temp file in the same directory, fsync,
    os.replace, fsync of the directory); a previous file at ``path`` is left intact on failure."""
    if not isinstance(frozen, FrozenModel):
        raise TypeError(f"save_frozen needs a FrozenModel, got {type(frozen).__name__}")
    write_frozen(frozen, path)


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
