"""The ONNX importer, and the planner and runtime behind it, under a CI-sized run of
fuzz/fuzz_onnx.py (graph ops on runtime tensors, several outputs, two writers of one tensor,
extreme window attributes, huge declared and computed tensors, ...), plus targeted hostile
models: wrong ranks, missing initializers, cycles, external-data paths escaping the model's
folder, declared sizes of 10^12 elements, constant folds that would expand a few bytes into
gigabytes. ``from_onnx`` promises OnnxImportError (a ValueError) for all of them, protobuf's
DecodeError included; nothing else may escape, and traced memory stays bounded; what imports
plans (or PlanError) and runs with its entry points agreeing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import onnx
from onnx import TensorProto, helper, numpy_helper

from export.onnx_import import OnnxImportError, from_onnx  # noqa: E402
from fuzzmods import FUZZ, load  # noqa: E402





fz = load("fuzz_onnx")
N_CASES = 200
SEED = 424242


@pytest.fixture(scope="module")
def result():
    fz.warm_up()
    return fz.run_range(SEED, 0, N_CASES)


def test_every_mutation_ends_documented(result, summary):
    """OnnxImportError, PlanError, a model that runs with its entry points agreeing, or one too
    large to run here; the only findings are the open ones outside the importer (KNOWN_OPEN)."""
    from _pipeline import KNOWN_OPEN
    assert set(result["signatures"]) <= set(KNOWN_OPEN), result["findings"]
    counts = result["counts"]
    total = sum(sum(d.values()) for d in counts.values())
    outcomes = {}
    for d in counts.values():
        for k, v in d.items():
            outcomes[k] = outcomes.get(k, 0) + v
    summary(f"onnx fuzz (CI subset): {total} mutated models: {outcomes}; onnxruntime notes {result['n_notes']}")
    assert total == N_CASES and set(counts) == set(fz.FAMILIES)
    for fam in ("bytes_truncate", "bytes_random", "duplicate_output"):
        assert set(counts[fam]) == {"rejected"}, (fam, counts[fam])
    assert counts["huge_fold"].get("rejected", 0) > 0
    for fam in ("graph_binary", "graph_concat", "graph_split", "graph_slice", "multi_output", "window_attrs"):
        assert counts[fam].get("ran", 0) > 0, (fam, counts[fam])
    assert outcomes["rejected"] > 0 and outcomes["ran"] > 0


def test_import_memory_is_bounded(result):
    assert 0 < result["max_parse_peak"] <= fz.MEM_FACTOR * max(map(len, fz.base_bytes())) + fz.MEM_SLACK + fz.FOLD_BYTES


def test_cases_are_reproducible_across_processes():
    """Cases are pure functions of (seed, index), whatever PYTHONHASHSEED is (names are taken
    in graph order, never from a set)."""
    code = ("import sys, zlib; sys.path.insert(0, %r); import fuzz_onnx as g; "
            "print(zlib.crc32(str([zlib.crc32(g.case(1, i)[1]) for i in range(60)]).encode()))" % FUZZ)
    outs = {subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONHASHSEED=h), capture_output=True,
                           text=True, timeout=300).stdout.strip() for h in ("1", "2")}
    assert len(outs) == 1 and outs != {""}


@pytest.mark.slow  # a child process per case or worker: runs in the slow pass
def test_supervised_run_in_workers():
    out = fz.run_supervised(os.path.join(FUZZ, "fuzz_onnx.py"), 5, 60, 60, ("max_parse_peak",), start=500,
                            log=lambda s: None)
    from _pipeline import KNOWN_OPEN
    assert out["crashes"] == [] and out["hangs"] == [], out
    assert set(out.get("signatures", {})) <= set(KNOWN_OPEN), out["findings"]
    assert sum(sum(d.values()) for d in out["counts"].values()) == 60


def test_onnxruntime_deaths_are_notes_and_rtinfer_deaths_stay_crashes():
    """A worker that dies while onnxruntime runs a model (rtinfer already imported and ran it)
    is onnxruntime's problem: a note, not a crash; one that dies in rtinfer's stages stays a crash."""
    ort = {"index": 10, "stage": "onnxruntime", "detail": "signal 11"}
    ours = {"index": 11, "stage": "run", "detail": "signal 11"}
    hang = {"index": 12, "stage": "onnxruntime", "detail": "no progress"}
    out = {"crashes": [ort, ours], "hangs": [hang], "signatures": {"crash:onnxruntime": 1, "crash:run": 1,
                                                                   "hang:onnxruntime": 1}}
    fz.ort_deaths_as_notes(out)
    assert out["crashes"] == [ours] and out["hangs"] == []
    assert out["signatures"] == {"crash:run": 1}
    assert out["notes"]["ort_crashes"] == [ort, hang] and out["n_notes"]["ort_crashes"] == 2


@pytest.mark.parametrize("how", ["concat", "broadcast"])
def test_computed_tensors_are_bounded_like_declared_ones(how):
    """A Concat of 32 copies of a (N, 2^24) input, or (N, 1, L, 1) * (N, 1, 1, L) with L = 2^16:
    tensors of 2^29 and 2^32 elements per sample that no declaration states. from_onnx returned
    them as a FrozenModel the .rtm reader refuses (found by the fuzzer's huge_input family);
    now refused at import."""
    n = 1 << 24 if how == "concat" else 1 << 16
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])
    inits = []
    if how == "concat":
        nodes = [helper.make_node("Concat", ["x"] * 32, ["y"], axis=1)]
    else:
        inits = [numpy_helper.from_array(np.array([0, 1, -1, 1], np.int64), "c"),
                 numpy_helper.from_array(np.array([0, 1, 1, -1], np.int64), "r")]
        nodes = [helper.make_node("Reshape", ["x", "c"], ["a"]), helper.make_node("Reshape", ["x", "r"], ["b"]),
                 helper.make_node("Mul", ["a", "b"], ["y"])]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                            inits), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    assert len(m.SerializeToString()) < 1024
    _rejects(m, "computes a tensor of .* elements per sample")


@pytest.mark.slow
def test_long_run_short_version(tmp_path, summary):
    """The long run's command at 1/10 of its size: 1,000 models in supervised workers; survivors
    under NUMBA_BOUNDSCHECK=1."""
    from _pipeline import KNOWN_OPEN
    surv = tmp_path / "surv"
    subprocess.run([sys.executable, os.path.join(FUZZ, "fuzz_onnx.py"), "--n", "1000", "--seed", "17", "--chunk",
                    "500", "--survivors", str(surv), "--max-survivors", "40", "--json", str(tmp_path / "r.json")],
                   capture_output=True, text=True, timeout=3600)
    res = json.loads((tmp_path / "r.json").read_text())
    summary(f"onnx fuzz (slow): {res['cases']} models {res['outcomes']}, findings {res['finding_signatures']}, "
            f"{len(res['crashes'])} crashes, {len(res['hangs'])} hangs; survivors under boundscheck: "
            f"{res['survivors']['ran']} ran, {res['survivors']['refused']} refused, "
            f"{len(res['survivors']['errors'])} errors; {res['seconds']} s")
    assert res["cases"] == 1000 and res["crashes"] == [] and res["hangs"] == []
    assert set(res["finding_signatures"]) <= set(KNOWN_OPEN)
    assert res["survivors"]["errors"] == [] and res["survivors"]["ran"] > 0


# -- targeted hostile models ----------------------------------------------------------------------

def _gemm_model(W=None, extra_nodes=(), extra_inits=(), out="y", x_dims=("N", 4)):
    W = np.ones((4, 3), np.float32) if W is None else W
    X = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_dims))
    Y = helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 3])
    nodes = [helper.make_node("Gemm", ["x", "W"], ["g"]), helper.make_node("Relu", ["g"], ["y"])] + list(extra_nodes)
    inits = [numpy_helper.from_array(W, "W")] + list(extra_inits)
    m = helper.make_model(helper.make_graph(nodes, "g", [X], [Y], inits), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_baseline_gemm_model_imports():
    fm = from_onnx(_gemm_model())
    assert fm.input_shape == (4,) and fm.output_shape == (3,)


def _rejects(model_or_bytes, match, **kw):
    with pytest.raises(OnnxImportError, match=match):
        from_onnx(model_or_bytes, **kw)


def test_decode_error_is_wrapped():
    data = _gemm_model().SerializeToString()
    _rejects(data[: len(data) // 2], "not a valid ONNX model")
    _rejects(b"\xff" * 64, "not a valid ONNX model")


def test_wrong_ranks():
    _rejects(_gemm_model(W=np.ones((4, 3, 1), np.float32)), "rank 2")
    _rejects(_gemm_model(x_dims=("N", 4, 2)), "rank 2")
    _rejects(_gemm_model(x_dims=()), "rank 0")


def test_missing_initializer():
    m = _gemm_model()
    del m.graph.initializer[:]
    _rejects(m, "undefined")


def test_cycle():
    m = _gemm_model()
    m.graph.node[0].input[1] = "y"  # Gemm reads the Relu's output, which reads the Gemm's
    _rejects(m, "cycle|undefined")


def test_declared_size_of_1e12_elements_costs_nothing():
    m = _gemm_model()
    m.graph.initializer[0].dims[:] = [10 ** 6, 10 ** 6]
    tracemalloc.start()
    try:
        _rejects(m, "10000000000|limit")
        assert tracemalloc.get_traced_memory()[1] < 4 * 1024 * 1024
    finally:
        tracemalloc.stop()
    m = _gemm_model()
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 10 ** 12
    _rejects(m, "limit|elements")


@pytest.mark.parametrize("kind", ["ConstantOfShape", "Expand", "Range", "Tile", "TileBadRepeats"])
def test_folds_that_would_expand_to_gigabytes_are_refused_before_allocating(kind):
    """A ~1 KB model whose constant subgraph would create 3*10^8 elements (1.2 GB)."""
    n = 3 * 10 ** 8
    inits, nodes = [], []
    if kind == "ConstantOfShape":
        inits.append(numpy_helper.from_array(np.array([n], np.int64), "shp"))
        nodes.append(helper.make_node("ConstantOfShape", ["shp"], ["big"]))
    elif kind == "Expand":
        inits += [numpy_helper.from_array(np.ones((1, 1), np.float32), "one"),
                  numpy_helper.from_array(np.array([n // 1000, 1000], np.int64), "shp")]
        nodes.append(helper.make_node("Expand", ["one", "shp"], ["big"]))
    elif kind == "Range":
        inits += [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in (("a", 0.0), ("b", n), ("c", 1.0))]
        nodes.append(helper.make_node("Range", ["a", "b", "c"], ["big"]))
    else:
        reps = [n // 4, 1, 1] if kind == "TileBadRepeats" else [n // 4, 1]
        inits += [numpy_helper.from_array(np.ones((2, 2), np.float32), "one"),
                  numpy_helper.from_array(np.array(reps, np.int64), "rep")]
        nodes.append(helper.make_node("Tile", ["one", "rep"], ["big"]))
    nodes += [helper.make_node("ReduceMax", ["big"], ["s"], keepdims=0), helper.make_node("Add", ["y", "s"], ["z"])]
    m = _gemm_model(extra_nodes=nodes, extra_inits=inits, out="z")
    assert len(m.SerializeToString()) < 2048
    tracemalloc.start()
    try:
        _rejects(m, "would create|shape inference rejects")
        assert tracemalloc.get_traced_memory()[1] < 16 * 1024 * 1024
    finally:
        tracemalloc.stop()


def _external(m, location, tmp_path, name="model.onnx"):
    t = m.graph.initializer[0]
    t.data_location = TensorProto.EXTERNAL
    t.ClearField("raw_data")
    del t.float_data[:]
    e = t.external_data.add()
    e.key, e.value = "location", location
    path = tmp_path / "models" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(m.SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin", "..\\secret.bin", "/SECRET",
                                      "C:\\secret.bin", "link.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(12, np.float32).tobytes())  # would be a perfectly valid W
    (tmp_path / "models").mkdir()
    os.symlink(secret, tmp_path / "models" / "link.bin")  # a symlink inside pointing outside
    location = location.replace("/SECRET", str(secret))
    path = _external(_gemm_model(), location, tmp_path)
    _rejects(str(path), "external data")


def test_external_data_inside_the_folder_loads_and_bad_lengths_fail(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "w.bin").write_bytes(np.arange(12, dtype=np.float32).tobytes())
    fm = from_onnx(str(_external(_gemm_model(), "w.bin", tmp_path)))
    assert np.array_equal(fm.tensor(fm.layers[0], "W").reshape(-1), np.arange(12, dtype=np.float32))
    m = _gemm_model()
    path = _external(m, "w.bin", tmp_path, "m2.onnx")
    m2 = onnx.load_model(str(path), load_external_data=False)
    e = m2.graph.initializer[0].external_data.add()
    e.key, e.value = "length", str(10 ** 12)
    path.write_bytes(m2.SerializeToString())
    _rejects(str(path), "length")
    (tmp_path / "models" / "w.bin").write_bytes(b"\x00" * 7)  # truncated file
    _rejects(str(_external(_gemm_model(), "w.bin", tmp_path, "m3.onnx")), "truncated")
    # external data needs a path to resolve against
    _rejects(_gemm_model_with_external_bytes(), "needs the model's path")


def _gemm_model_with_external_bytes():
    m = _gemm_model()
    t = m.graph.initializer[0]
    t.data_location = TensorProto.EXTERNAL
    t.ClearField("raw_data")
    e = t.external_data.add()
    e.key, e.value = "location", "w.bin"
    return m.SerializeToString()


def test_not_a_path_bytes_or_model():
    _rejects(12345, "takes a path, bytes or onnx.ModelProto")
    _rejects("/nonexistent/model.onnx", "cannot read ONNX file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_external_data_that_is_a_fifo_is_refused(tmp_path):
    (tmp_path / "models").mkdir()
    os.mkfifo(tmp_path / "models" / "w.bin")  # opening it would block forever
    _rejects(str(_external(_gemm_model(), "w.bin", tmp_path)), "not a regular file")


def test_many_small_folds_are_capped_in_total():
    """200 ConstantOfShape folds of 2^24 elements each (under the per-node cap) in a ~20 KB
    model: refused once the folded constants exceed the model's budget, not after 13 GB."""
    inits = [numpy_helper.from_array(np.array([1 << 24], np.int64), "shp")]
    nodes, prev = [], "y"
    for i in range(200):
        nodes += [helper.make_node("ConstantOfShape", ["shp"], [f"c{i}"]),
                  helper.make_node("ReduceMax", [f"c{i}"], [f"s{i}"], keepdims=0),
                  helper.make_node("Add", [prev, f"s{i}"], ["z" if i == 199 else f"a{i}"])]
        prev = f"a{i}"
    m = _gemm_model(extra_nodes=nodes, extra_inits=inits, out="z")
    tracemalloc.start()
    try:
        _rejects(m, "folded constants")
        assert tracemalloc.get_traced_memory()[1] < 3 * 4 * (1 << 24)  # at most ~2 folds alive
    finally:
        tracemalloc.stop()


def _chain(n, reverse=False):
    """n x (MatMul W -> Add b -> Relu) on (N, 4); the nodes stored in reverse when asked."""
    X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((0.5 * rng.standard_normal((4, 4))).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")]
    nodes, prev = [], "x"
    for i in range(n):
        out = "y" if i == n - 1 else f"t{i}"
        nodes += [helper.make_node("MatMul", [prev, "W"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", "b"], [f"r{i}"]),
                  helper.make_node("Relu", [f"r{i}"], [out])]
        prev = out
    if reverse:
        nodes = nodes[::-1]
    m = helper.make_model(helper.make_graph(nodes, "g", [X], [Y], inits), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_big_graphs_import_in_linear_work(monkeypatch):
    """A graph stored in reverse order sorts like the forward one, and layer fusion reads the
    layer list a number of times linear in its length (it used to restart after every fusion:
    quadratic, so a few MB of nodes could stall the importer for minutes). The fusion passes
    (export.onnx_ir) copy the list once and track readers per layer."""
    from export import onnx_import

    reads = {"n": 0}

    class CountingList(list):
        def __getitem__(self, i):
            reads["n"] += 1
            return super().__getitem__(i)

        def __iter__(self):
            for item in super().__iter__():
                reads["n"] += 1
                yield item

    real = onnx_import._Importer._fuse

    def counting(self):
        self.g.protos = CountingList(self.g.protos)
        return real(self)

    monkeypatch.setattr(onnx_import._Importer, "_fuse", counting)
    n = 600
    fwd = from_onnx(_chain(n))
    assert len(fwd.layers) == n
    assert reads["n"] <= 40 * n  # restarting after every fusion read it 724,192 times here
    rev = from_onnx(_chain(n, reverse=True))
    assert fwd.layers == rev.layers
    for k in fwd.buffers:
        assert np.array_equal(fwd.buffers[k], rev.buffers[k])


def _loop_node(trip_count_name, out):
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.ones(1, np.float32), "one")])
    return helper.make_node("Loop", [trip_count_name, "c", "v0"], [out], body=body)


@pytest.mark.parametrize("wrap_in_if", [False, True])
def test_constant_loops_are_not_evaluated(wrap_in_if):
    """A Loop on constants with a trip count of 10^9 (a few bytes) would run for hours if folded."""
    inits = [numpy_helper.from_array(np.array(10 ** 9, np.int64), "M"), numpy_helper.from_array(np.array(True), "c"),
             numpy_helper.from_array(np.zeros(1, np.float32), "v0")]
    if wrap_in_if:
        branch = helper.make_graph([_loop_node("M", "lv")], "branch", [],
                                   [helper.make_tensor_value_info("lv", TensorProto.FLOAT, [1])])
        nodes = [helper.make_node("If", ["c"], ["vf"], then_branch=branch, else_branch=branch)]
    else:
        nodes = [_loop_node("M", "vf")]
    nodes.append(helper.make_node("Add", ["y", "vf"], ["z"]))
    _rejects(_gemm_model(extra_nodes=nodes, extra_inits=inits, out="z"), "control flow on constants")


def test_imported_models_always_save_as_rtm():
    """Names and metadata with NUL characters (legal in protobuf strings, not in .rtm strings)
    are cleaned at import, so every imported model can be saved and read back."""
    from rtinfer.rtm import from_bytes, to_bytes

    m = _gemm_model()
    m.graph.node[0].name = "gemm\x00evil"
    m.producer_name = "tool\x00"
    helper.set_model_props(m, {"note\x00": "a\x00b"})
    fm = from_onnx(m)
    back = from_bytes(to_bytes(fm))
    assert back.layers == fm.layers and dict(back.meta) == dict(fm.meta)
    assert "\x00" not in "".join(list(fm.meta) + list(fm.meta.values()) + [layer.name for layer in fm.layers])
