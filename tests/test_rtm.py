"""The .rtm file: exact round trip, determinism, mmap views, corrupt files, atomic writes."""

from __future__ import annotations

import os
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from rtinfer import quant, reference
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
from rtinfer.ops import Act, Op
from rtinfer.rtm import (ALIGN, ATTR, HEADER_CRC_OFFSET, HEADER_SIZE, LAYER, MAGIC, SECTION, TENSOR,
                         RtmFormatError, from_bytes, load_frozen, read_info, save_frozen, to_bytes)


def _fp32_model(seed=0) -> FrozenModel:
    rng = np.random.default_rng(seed)
    b = BufferBuilder()
    W1 = b.add(rng.normal(size=(5, 7)).astype(np.float32))
    b1 = b.add(rng.normal(size=7).astype(np.float32))
    W2 = b.add(rng.normal(size=(7, 3)).astype(np.float32))
    b2 = b.add(rng.normal(size=3).astype(np.float32))
    layers = (
        Layer(Op.DENSE, (5,), (7,), Act.LEAKY_RELU, {"W": W1, "b": b1}, {"alpha": 0.05}, "dense_0"),
        Layer(Op.DENSE, (7,), (3,), Act.IDENTITY, {"W": W2, "b": b2}, {}, "dense_1"),
        Layer(Op.SOFTMAX, (3,), (3,), attrs={"outer": 1, "axis_len": 3, "inner": 1}, name="head"),
    )
    return FrozenModel(layers, b.finish(), (5,), (3,),
                       meta={"source": "test", "classes": '["a", "b", "c"]', "note": "ünïcode"})


def _int8_model(seed=1) -> FrozenModel:
    rng = np.random.default_rng(seed)
    b = BufferBuilder()
    W = rng.normal(size=(6, 4))
    w_scale = quant.symmetric_weight_scales(W)
    x_scale, x_zp = quant.choose_qparams(-2.0, 3.0)
    y_scale, y_zp = quant.choose_qparams(-4.0, 4.0)
    t_scale, t_zp = quant.choose_qparams(-1.0, 1.0)
    refs = {"W": b.add(quant.quantize_weights(W, w_scale)),
            "b": b.add(quant.quantize_bias(rng.normal(size=4), x_scale, w_scale)),
            "w_scale": b.add(w_scale)}
    table = b.add(quant.build_lut(np.tanh, y_scale, y_zp, t_scale, t_zp))
    layers = (
        Layer(Op.QUANTIZE, (6,), (6,), attrs={"y_scale": x_scale, "y_zp": x_zp}),
        Layer(Op.QDENSE, (6,), (4,), tensors=refs,
              attrs={"x_scale": x_scale, "x_zp": x_zp, "y_scale": y_scale, "y_zp": y_zp, "qmin": -128, "qmax": 127}),
        Layer(Op.QLUT, (4,), (4,), tensors={"table": table},
              attrs={"x_scale": y_scale, "x_zp": y_zp, "y_scale": t_scale, "y_zp": t_zp}),
        Layer(Op.DEQUANTIZE, (4,), (2, 2), attrs={"x_scale": t_scale, "x_zp": t_zp}),
        Layer(Op.ARGMAX, (2, 2), (2,), attrs={"outer": 2, "axis_len": 2, "inner": 1}),
    )
    return FrozenModel(layers, b.finish(), (6,), (2,), output_dtype="int64", meta={"dtype": "int8"})


@pytest.fixture(scope="module", params=["fp32", "int8"])
def model(request):
    return _fp32_model() if request.param == "fp32" else _int8_model()


def _assert_same_model(a: FrozenModel, b: FrozenModel):
    assert a.layers == b.layers
    for la, lb in zip(a.layers, b.layers):
        assert list(la.tensors) == list(lb.tensors)
        assert {k: type(v) for k, v in la.attrs.items()} == {k: type(v) for k, v in lb.attrs.items()}
    for key in a.buffers:
        assert a.buffers[key].dtype == b.buffers[key].dtype
        np.testing.assert_array_equal(a.buffers[key], b.buffers[key])
    assert (a.input_shape, a.output_shape, a.output_dtype) == (b.input_shape, b.output_shape, b.output_dtype)
    assert dict(a.meta) == dict(b.meta)


# -- round trip ------------------------------------------------------------------------------

@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip_exact(model, tmp_path, mmap):
    path = tmp_path / "m.rtm"
    save_frozen(model, path)
    loaded = load_frozen(path, mmap=mmap)
    _assert_same_model(model, loaded)
    X = np.random.default_rng(3).normal(size=(50,) + model.input_shape).astype(np.float32) * 2
    np.testing.assert_array_equal(reference.run(model, X), reference.run(loaded, X))


def test_written_twice_is_byte_identical(model, tmp_path):
    p1, p2, p3 = tmp_path / "a.rtm", tmp_path / "b.rtm", tmp_path / "c.rtm"
    model.save(p1)
    save_frozen(model, p2)
    save_frozen(load_frozen(p1), p3)  # a loaded model writes the same bytes again
    assert p1.read_bytes() == p2.read_bytes() == p3.read_bytes() == to_bytes(model)


def test_mmap_buffers_are_views_of_the_file(model, tmp_path):
    path = tmp_path / "m.rtm"
    save_frozen(model, path)
    loaded = load_frozen(path, mmap=True)
    raw = path.read_bytes()
    info = read_info(path)
    for key, arr in loaded.buffers.items():
        base = arr
        while base is not None and not isinstance(base, np.memmap):
            base = base.base
        assert isinstance(base, np.memmap), key
        assert not arr.flags.writeable
        off, count = info.sections[key]
        assert off % ALIGN == 0 and count == arr.size
        assert arr.tobytes() == raw[off:off + arr.nbytes]
        if arr.size:
            assert np.shares_memory(arr, base)
            assert arr.ctypes.data % ALIGN == 0


def test_layout_facts(model):
    data = to_bytes(model)
    assert data[:8] == MAGIC
    assert struct.unpack_from("<HHIQ", data, 8) == (2, 0, HEADER_SIZE, len(data))
    assert len(data) % ALIGN == 0
    assert struct.unpack_from("<I", data, HEADER_CRC_OFFSET)[0] == zlib.crc32(data[:HEADER_CRC_OFFSET])


def test_unstorable_model_raises_and_writes_nothing(tmp_path):
    b = BufferBuilder()
    deep = FrozenModel((Layer(Op.ACT, (1,) * 9, (1,) * 9, Act.RELU),), b.finish(), (1,) * 9, (1,) * 9)
    path = tmp_path / "deep.rtm"
    with pytest.raises(RtmFormatError, match="rank 9"):
        save_frozen(deep, path)
    assert os.listdir(tmp_path) == []


# -- corrupt files ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_bytes():
    return to_bytes(_int8_model())


def _reseal(data: bytearray) -> bytes:
    """Recompute every CRC of a hand-edited file, so only the semantic damage remains."""
    sections_off, = struct.unpack_from("<Q", data, 80)
    data_off, file_size = struct.unpack_from("<Q", data, 104)[0], len(data)
    for i in range(3):
        rec = sections_off + i * SECTION.size
        if rec + SECTION.size > file_size:
            break
        code, _, off, count = SECTION.unpack_from(data, rec)
        itemsize = {1: 4, 2: 1, 3: 4}.get(code, 1)
        if off + count * itemsize <= file_size:
            struct.pack_into("<I", data, rec + 4, zlib.crc32(data[off:off + count * itemsize]))
    if HEADER_SIZE <= data_off <= file_size:
        struct.pack_into("<I", data, 184, zlib.crc32(data[HEADER_SIZE:data_off]))
        struct.pack_into("<I", data, 188, zlib.crc32(data[data_off:]))
    struct.pack_into("<I", data, HEADER_CRC_OFFSET, zlib.crc32(data[:HEADER_CRC_OFFSET]))
    return bytes(data)


def _patched(data: bytes, offset: int, fmt: str, *values) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, *values)
    return _reseal(buf)


def _header_field(data, offset, fmt="<Q"):
    return struct.unpack_from(fmt, data, offset)[0]


def test_reseal_is_identity_on_a_good_file(small_bytes):
    assert _reseal(bytearray(small_bytes)) == small_bytes
    from_bytes(small_bytes)


def test_wrong_magic(small_bytes):
    with pytest.raises(RtmFormatError, match="magic number .* at byte 0"):
        from_bytes(b"PK\x03\x04" + small_bytes[4:])


def test_unknown_version(small_bytes):
    with pytest.raises(RtmFormatError, match=r"unsupported format version 3\.0 at byte 8"):
        from_bytes(_patched(small_bytes, 8, "<H", 3))
    with pytest.raises(RtmFormatError, match=r"unsupported format version 0\.0 at byte 8"):
        from_bytes(_patched(small_bytes, 8, "<H", 0))


def test_newer_minor_version_is_read(small_bytes):
    newer = _patched(small_bytes, 10, "<H", 7)
    assert newer != small_bytes and _header_field(newer, 10, "<H") == 7
    _assert_same_model(_int8_model(), from_bytes(newer))


def test_every_truncation_fails_cleanly(small_bytes, tmp_path):
    for n in range(len(small_bytes)):
        with pytest.raises(RtmFormatError, match="truncated|magic"):
            from_bytes(small_bytes[:n])
    path = tmp_path / "t.rtm"
    for n in (0, 5, 100, len(small_bytes) - 1):  # also through the file and mmap paths
        path.write_bytes(small_bytes[:n])
        for mmap in (False, True):
            with pytest.raises(RtmFormatError, match="truncated|magic"):
                load_frozen(path, mmap=mmap)


def test_extended_file_fails(small_bytes):
    with pytest.raises(RtmFormatError, match="truncated or extended"):
        from_bytes(small_bytes + b"\x00" * 64)


def test_every_flipped_bit_is_detected(small_bytes):
    buf = bytearray(small_bytes)
    for i in range(len(buf)):
        for bit in range(8):
            buf[i] ^= 1 << bit
            with pytest.raises(RtmFormatError, match="checksum|magic|version"):
                from_bytes(bytes(buf))
            buf[i] ^= 1 << bit


def test_flipped_data_bit_names_the_section(small_bytes):
    sections_off = _header_field(small_bytes, 80)
    _, _, off, _ = SECTION.unpack_from(small_bytes, sections_off + SECTION.size)  # the i8 section
    buf = bytearray(small_bytes)
    buf[off + 2] ^= 0x10
    with pytest.raises(RtmFormatError, match=f"section i8 checksum mismatch \\(bytes {off}\\.\\."):
        from_bytes(bytes(buf))


def _tensor_record_offset(data, j):
    return _header_field(data, 56) + j * TENSOR.size


def _layer_record_offset(data, i):
    return _header_field(data, 48) + i * LAYER.size


@pytest.mark.parametrize("which", [1, 2])
def test_sections_that_overlap_the_previous_one_are_refused(small_bytes, which):
    """Section `which` (i8 or i32) moved back onto the previous section's bytes (aligned, in the
    file, every CRC recomputed so only the overlap is wrong): refused, naming the section."""
    sections_off = _header_field(small_bytes, 80)
    _, _, prev_off, _ = SECTION.unpack_from(small_bytes, sections_off + (which - 1) * SECTION.size)
    _, _, off, _ = SECTION.unpack_from(small_bytes, sections_off + which * SECTION.size)
    assert off > prev_off and prev_off % ALIGN == 0
    bad = _patched(small_bytes, sections_off + which * SECTION.size + 8, "<Q", prev_off)
    key = ("f32", "i8", "i32")[which]
    with pytest.raises(RtmFormatError, match=rf"section {key}: .* overlaps the previous section"):
        from_bytes(bad)


@pytest.mark.parametrize("case, match", [
    ("tensor_offset", r"layer 1 QDENSE .*tensor 'W' .*outside section i8"),
    ("tensor_shape", r"layer 1 QDENSE .*tensor 'W' .*outside section i8"),
    ("section_offset", r"section i8: .*outside the file"),
    ("section_count", r"section i32: .*outside the file"),
    ("data_offset", r"data offset .*byte 104"),
    ("layers_table", r"table layers .* outside the tables region"),
    ("strings_table", r"table strings .* outside the tables region"),
    ("name_string", r"layer 0 QUANTIZE .*name: string .* outside the string table"),
    ("op_code", r"layer 2 .*unknown op code 99"),
    ("act_code", r"layer 2 QLUT .*unknown activation code 77"),
    ("zero_scale", r"layer 1 QDENSE .*attr 'y_scale'.*finite and positive"),
    ("nan_scale", r"layer 0 QUANTIZE .*attr 'y_scale'.*NaN"),
    ("zero_point", r"layer 1 QDENSE .*attr 'y_zp'.*integer in \[-128, 127\], got 300"),
    ("rank", r"layer 3 DEQUANTIZE .*in_shape: rank 9"),
    ("huge_shape", r"layer 3 DEQUANTIZE .*out_shape: shape .* claims more than"),
    ("chain", r"stored model is inconsistent: layer 2 \(QLUT\)"),
    ("attr_range", r"layer 4 ARGMAX .*attrs .* outside the attr table"),
])
def test_bad_offsets_and_shapes(small_bytes, case, match):
    d = small_bytes
    sections_off = _header_field(d, 80)
    if case in ("tensor_offset", "tensor_shape"):
        rec = _tensor_record_offset(d, 0)  # QDENSE's W
        bad = _patched(d, rec + 16, "<Q", 10_000) if case == "tensor_offset" else \
            _patched(d, rec + 24, "<III", 2, 6, 4000)
    elif case == "section_offset":
        bad = _patched(d, sections_off + SECTION.size + 8, "<Q", len(d) + 64)
    elif case == "section_count":
        bad = _patched(d, sections_off + 2 * SECTION.size + 16, "<Q", 1 << 40)
    elif case == "data_offset":
        bad = _patched(d, 104, "<Q", len(d) + 128)
    elif case == "layers_table":
        bad = _patched(d, 48, "<Q", len(d) - 8)
    elif case == "strings_table":
        bad = _patched(d, 96, "<Q", 1 << 20)
    elif case == "name_string":
        bad = _patched(d, _layer_record_offset(d, 0) + 8, "<II", 50_000, 3)
    elif case == "op_code":
        bad = _patched(d, _layer_record_offset(d, 2), "<I", 99)
    elif case == "act_code":
        bad = _patched(d, _layer_record_offset(d, 2) + 4, "<I", 77)
    elif case in ("zero_scale", "nan_scale"):
        attrs_off = _header_field(d, 64)
        # attr records in order: QUANTIZE y_scale, y_zp; QDENSE x_scale, x_zp, y_scale, ...
        j, value = (4, 0.0) if case == "zero_scale" else (0, float("nan"))
        bad = _patched(d, attrs_off + j * ATTR.size + 16, "<d", value)
    elif case == "zero_point":
        attrs_off = _header_field(d, 64)
        bad = _patched(d, attrs_off + 5 * ATTR.size + 16, "<q", 300)  # QDENSE y_zp
    elif case == "rank":
        bad = _patched(d, _layer_record_offset(d, 3) + 32, "<I", 9)
    elif case == "huge_shape":
        bad = _patched(d, _layer_record_offset(d, 3) + 68, "<III", 2, 1 << 20, 1 << 20)
    elif case == "chain":
        bad = _patched(d, _layer_record_offset(d, 2) + 32, "<II", 1, 5)
    elif case == "attr_range":
        bad = _patched(d, _layer_record_offset(d, 4) + 24, "<II", 3, 1000)
    with pytest.raises(RtmFormatError, match=match):
        from_bytes(bad)


@pytest.mark.parametrize("offset, value, match", [
    (24, 0xFFFFFFFF, r"n_layers = 4294967295, above the limit"),
    (28, 200_000, r"table tensors .* outside the tables region"),
    (32, 0xFFFFFFFF, r"n_attrs = 4294967295, above the limit"),
    (36, 0xFFFFFFFF, r"n_meta = 4294967295, above the limit"),
    (40, 1 << 30, r"1073741824 data sections"),
])
def test_absurd_counts_are_rejected_without_allocating(small_bytes, offset, value, match):
    bad = _patched(small_bytes, offset, "<I", value)
    tracemalloc.start()
    try:
        with pytest.raises(RtmFormatError, match=match):
            from_bytes(bad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_bad_strings_and_meta(small_bytes):
    strings_off = _header_field(small_bytes, 88)
    meta_off = _header_field(small_bytes, 72)
    k_off, k_len, _, _ = struct.unpack_from("<4I", small_bytes, meta_off)
    bad = bytearray(small_bytes)
    bad[strings_off + k_off] = 0xFF  # invalid UTF-8 in the meta key
    with pytest.raises(RtmFormatError, match=r"meta record 0 key: string at byte \d+ is not valid UTF-8"):
        from_bytes(_reseal(bad))
    bad = bytearray(small_bytes)
    bad[strings_off + k_off + k_len] = ord("x")  # the terminating NUL is gone
    with pytest.raises(RtmFormatError, match="not NUL-terminated"):
        from_bytes(_reseal(bad))


def test_bad_weight_scale_tensor(small_bytes):
    model = _int8_model()
    ref = model.layers[1].tensors["w_scale"]
    sections_off = _header_field(small_bytes, 80)
    _, _, f32_off, _ = SECTION.unpack_from(small_bytes, sections_off)
    bad = _patched(small_bytes, f32_off + 4 * (ref.offset + 1), "<f", float("inf"))
    with pytest.raises(RtmFormatError, match=r"layer 1 QDENSE .*'w_scale' holds a non-finite"):
        from_bytes(bad)


def test_not_a_file_error_is_oserror(tmp_path):
    with pytest.raises(OSError):
        load_frozen(tmp_path / "missing.rtm")


# -- atomic write ----------------------------------------------------------------------------

@pytest.mark.parametrize("failing", ["fsync", "replace", "write"])
def test_failed_write_leaves_old_file_intact(tmp_path, monkeypatch, failing):
    path = tmp_path / "model.rtm"
    old = _fp32_model(seed=0)
    save_frozen(old, path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("simulated failure")

    if failing == "fsync":
        monkeypatch.setattr(os, "fsync", boom)
    elif failing == "replace":
        monkeypatch.setattr(os, "replace", boom)
    else:
        import io
        real_write = io.BufferedWriter.write

        class HalfWriter(io.BufferedWriter):
            def write(self, b):  # write half, then fail
                real_write(self, bytes(b)[: len(b) // 2])
                raise OSError("simulated disk full")

        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode, buffering=0)))
    with pytest.raises(OSError, match="simulated"):
        save_frozen(_fp32_model(seed=5), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.rtm"]
    _assert_same_model(old, load_frozen(path))


def test_corrupt_file_through_mmap(small_bytes, tmp_path):
    sections_off = _header_field(small_bytes, 80)
    _, _, off, _ = SECTION.unpack_from(small_bytes, sections_off + SECTION.size)
    buf = bytearray(small_bytes)
    buf[off] ^= 0x80
    path = tmp_path / "flip.rtm"
    path.write_bytes(bytes(buf))
    with pytest.raises(RtmFormatError, match="section i8 checksum mismatch"):
        load_frozen(path, mmap=True)
    path.write_bytes(_patched(small_bytes, 24, "<I", 0xFFFFFFFF))
    with pytest.raises(RtmFormatError, match="n_layers"):
        load_frozen(path, mmap=True)


def test_write_fsyncs_file_then_directory(tmp_path, monkeypatch):
    calls = []
    real_fsync = os.fsync

    def spy(fd):
        calls.append(os.path.isdir(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else None)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    save_frozen(_fp32_model(), tmp_path / "m.rtm")
    assert len(calls) == 2
    if calls[0] is not None:
        assert calls == [False, True]  # the temp file first, then its directory


def test_fuzzed_tables_raise_only_rtm_format_error(small_bytes):
    """Random byte edits in the header and tables, CRCs recomputed so the structural checks
    (not the checksums) must catch them: the reader either loads a consistent model or raises
    RtmFormatError, never anything else."""
    import random

    rnd = random.Random(1234)
    data_off = _header_field(small_bytes, 104)
    outcomes = {"loaded": 0, "rejected": 0}
    for _ in range(3000):
        buf = bytearray(small_bytes)
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(12, data_off)  # past the magic and the version
            if rnd.random() < 0.5:
                buf[i] = rnd.randrange(256)
            else:
                buf[i] ^= 1 << rnd.randrange(8)
        try:
            from_bytes(_reseal(buf))
            outcomes["loaded"] += 1
        except RtmFormatError:
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 2000


def test_reader_imports_neither_numba_nor_onnx(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "m.rtm"
    save_frozen(_int8_model(), path)
    code = ("import sys, rtinfer; m = rtinfer.load_frozen(sys.argv[1], mmap=True); "
            "rtinfer.save_frozen(m, sys.argv[1]); "
            "bad = [k for k in ('numba', 'onnx', 'onnxruntime') if k in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code, str(path)]).returncode == 0
