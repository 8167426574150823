"""Interpreter variants (rtinfer.interp.VARIANTS): a model compiles only what its ops need.

A plan's op set picks the smallest variant ("dense" for MLP chains, "core" with graph ops,
"conv_chain" / "qconv_chain" with float32 / int8 conv/pool, "conv" / "qconv" with both those and
graph ops, "full" with both dtypes' windows; the batch path "<variant>_batch"); each variant computes the same bits as the full
interpreter on the same plan, and the compiled code of a variant holds no kernel of a family it
leaves out (checked on the LLVM module it links). No timings (bench/bench_startup.py measures the
compile times).
"""

from __future__ import annotations

import numpy as np
import pytest

import rtinfer
from rtinfer import interp
from rtinfer._testmodels import fp32_mlp, int8_mlp, residual_mlp, two_branch
from rtinfer.ops import Op


def _small_cnn(dtype="float32"):
    import export
    from rtinfer.train import CNN, Activation, Conv2D, Dense, Flatten, MaxPool2D
    model = CNN((1, 8, 8), [Conv2D(1, 4, 3, padding=1), Activation("relu"), MaxPool2D(2), Flatten(),
                            Dense(64, 3)], seed=0)
    kw = {"calibration": np.random.default_rng(3).normal(size=(64, 1, 8, 8))} if dtype == "int8" else {}
    return export.freeze(model, dtype=dtype, **kw)


def _residual_cnn(dtype="float32"):
    import export
    from rtinfer.train import CNN, Activation, Conv2D, Dense, Flatten, Residual
    model = CNN((2, 6, 6), [Conv2D(2, 4, 3, padding=1), Activation("relu"),
                            Residual([Conv2D(4, 4, 3, padding=1), Activation("relu"), Conv2D(4, 4, 3, padding=1)]),
                            Activation("relu"), Flatten(), Dense(144, 3)], seed=1)
    kw = {"calibration": np.random.default_rng(4).normal(size=(64, 2, 6, 6))} if dtype == "int8" else {}
    return export.freeze(model, dtype=dtype, **kw)


def test_variant_for_op_sets():
    assert interp.variant_for([Op.DENSE, Op.ACT, Op.SOFTMAX]) == "dense"
    assert interp.variant_for([Op.AFFINE, Op.QUANTIZE, Op.QDENSE, Op.QLUT, Op.DEQUANTIZE, Op.ARGMAX]) == "dense"
    assert interp.variant_for([Op.DENSE, Op.BINARY]) == "core"
    assert interp.variant_for([Op.LAYERNORM]) == "core"
    assert interp.variant_for([Op.DENSE, Op.CONV]) == "conv_chain"
    assert interp.variant_for([Op.QUANTIZE, Op.QCONV, Op.QMAXPOOL, Op.DEQUANTIZE]) == "qconv_chain"
    assert interp.variant_for([Op.MAXPOOL, Op.GLOBAL_AVGPOOL, Op.BINARY]) == "conv"
    assert interp.variant_for([Op.QUANTIZE, Op.QMAXPOOL, Op.QBINARY]) == "qconv"
    assert interp.variant_for([Op.CONV, Op.QCONV]) == "full"


def test_every_op_belongs_to_one_family():
    families = (interp.DENSE_OPS, interp.GRAPH_OPS, interp.F_WINDOW_OPS, interp.Q_WINDOW_OPS)
    for op in Op:
        assert sum(int(op) in f for f in families) == 1, op
        assert interp.variant_for([op]) in interp.VARIANTS
    with pytest.raises(ValueError, match="op code 999"):
        interp.variant_for([999])


@pytest.mark.parametrize("make, variant", [
    (lambda: fp32_mlp([20, 16, 5]), "dense"),
    (lambda: fp32_mlp([12, 8, 4], head="log_softmax", affine_in=True), "dense"),
    (lambda: int8_mlp([20, 16, 5]), "dense"),
    (lambda: int8_mlp([12, 9, 4], lut=np.tanh, head=None), "dense"),
    (lambda: residual_mlp(), "core"),
    (lambda: two_branch(), "core"),
    (lambda: _small_cnn(), "conv_chain"),
    (lambda: _small_cnn("int8"), "qconv_chain"),
    (lambda: _residual_cnn(), "conv"),
    (lambda: _residual_cnn("int8"), "qconv"),
])
def test_variant_matches_full_interpreter_bit_for_bit(make, variant):
    fm = make()
    rt = rtinfer.load(fm, batch="exact")
    assert rt.variant == variant
    ours = rt._execute  # the variant's entry point
    full = interp.entry_point(interp.warm_up("full"))
    n = 37
    X = np.random.default_rng(0).standard_normal((n, rt.in_size)).astype(np.float32)
    for i in range(n):
        a, b = np.zeros(rt.out_size, np.float32), np.ones(rt.out_size, np.float32)
        assert ours(rt._state, X[i], a, 0, interp.MODE_ONE) == -1
        assert full(rt._state, X[i], b, 0, interp.MODE_ONE) == -1
        assert np.array_equal(a, b)
    for mode in (interp.MODE_STREAM, interp.MODE_BATCH):
        a, b = np.zeros(n * rt.out_size, np.float32), np.ones(n * rt.out_size, np.float32)
        assert ours(rt._state, X.reshape(-1), a, n, mode) == -1
        assert full(rt._state, X.reshape(-1), b, n, mode) == -1
        assert np.array_equal(a, b), mode
    one = rt.predict_one(X[0].reshape(rt.input_shape))  # the public path agrees too
    first = one[0] if isinstance(one, tuple) else one
    assert np.array_equal(np.asarray(first).reshape(-1), a[:np.asarray(first).size])


def test_batch_path_uses_its_variant():
    rt = rtinfer.load(fp32_mlp([300, 64, 10]))
    X = np.random.default_rng(1).standard_normal((400, 300)).astype(np.float32)
    rt.predict(X)
    assert rt.variant == "dense" and rt._blas is not None
    assert interp.execute_dense_batch.signatures  # compiled or loaded for the batch path


def test_batch_steps_refused_outside_batch_variants():
    blob = np.zeros(256, np.uint8)
    x = np.zeros(4, np.float32)
    for name in ("dense", "core", "conv_chain", "qconv_chain", "conv", "qconv", "full"):
        ex = interp.warm_up(name)
        for mode in (interp.MODE_SEGMENT, interp.MODE_DENSE_POST, interp.MODE_I8_TO_F32, interp.MODE_QDENSE_POST):
            assert ex(blob, x, x, 0, mode) == -6, (name, mode)


def _linked_names(variant):
    """Names of the functions in a variant's compiled LLVM module (compiled in this process or
    loaded from the cache, which keeps the module's bitcode for linking)."""
    ex = interp.warm_up(variant)
    lib = ex.overloads[ex.signatures[0]].library
    get = getattr(lib, "_get_module_for_linking", None)
    if get is None:
        pytest.skip("this Numba keeps no linkable module on its code library")
    return [f.name for f in get().functions]


def _batch_gemm(name):
    """A batch-path kernel of kernels_gemm (every one but dense_f32_wide with the float32 tiles it
    runs blocks of samples on, qdense_u8_wide and qdense_s16_wide: they run packed DENSE / QDENSE
    rows in every variant)."""
    return "kernels_gemm" in name and not any(k in name for k in ("dense_f32_wide", "_f32_tile_rows",
                                                                  "qdense_u8_wide", "qdense_s16_wide"))


def test_variants_leave_out_their_families_kernels():
    dense = _linked_names("dense")
    core = _linked_names("core")
    assert not [n for n in dense if "kernels_conv" in n or "kernels_graph" in n or _batch_gemm(n)]
    assert not [n for n in core if "kernels_conv" in n or _batch_gemm(n)]
    assert [n for n in dense if "kernels" in n], "the module names no kernel at all: the check is void"
    assert [n for n in dense if "dense_f32_wide" in n], "the dense variant runs packed DENSE rows"
    conv = _linked_names("conv")
    qconv = _linked_names("qconv")
    assert not [n for n in conv if "qconv_i8" in n or "qavgpool" in n or _batch_gemm(n)]
    assert not [n for n in qconv if "conv_f32" in n or "avgpool_f32" in n or _batch_gemm(n)]
    assert [n for n in conv if "kernels_graph" in n], "the conv variant runs graph rows: the check is void"
    conv_chain = _linked_names("conv_chain")
    qconv_chain = _linked_names("qconv_chain")
    assert [n for n in conv_chain if "conv_f32" in n] and [n for n in qconv_chain if "qconv_i8" in n]
    assert not [n for n in conv_chain if "kernels_graph" in n or "qconv_i8" in n or _batch_gemm(n)]
    assert not [n for n in qconv_chain if "kernels_graph" in n or "conv_f32" in n or _batch_gemm(n)]
    batch = _linked_names("dense_batch")
    assert [n for n in batch if "dense_f32_tiled" in n], "the batch variant's GEMM: the check is void"
    assert [n for n in batch if _batch_gemm(n)]
