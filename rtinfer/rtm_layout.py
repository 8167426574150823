"""The ``.rtm`` byte layout and its writer (NumPy + stdlib only; below rtinfer.frozen).

The constants below are the layout of docs/FORMAT.md; ``to_bytes`` / ``write_frozen`` write a
FrozenModel (read through its attributes: layers, buffers, shapes, outputs, meta), and
rtinfer.rtm reads files back. Writing lives here, under the contract, so that
``FrozenModel.save`` needs nothing above it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ._atomic import atomic_write
from .ops import BUFFER_DTYPES, OUTPUT_DTYPES  # noqa: F401  (OUTPUT_DTYPES: the output record's codes)

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
# Output record (version 2), 48 bytes: tensor I | dtype I (ops.OUTPUT_DTYPES: 0 float32, 1 int64, 2 int8,
#   3 uint8) | shape (I 8I) | 4x
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


def to_bytes(frozen) -> bytes:
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


def write_frozen(frozen, path) -> None:
    """Write a FrozenModel to ``path`` atomically (rtinfer._atomic: temp file in the same
    directory, fsync, os.replace, fsync of the directory). If anything fails, a previous file at
    ``path`` is left intact and the temp file is removed.
    """
    payload = to_bytes(frozen)
    atomic_write(path, lambda f: f.write(payload))


