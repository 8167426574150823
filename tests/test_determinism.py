"""Determinism: the same model and input give bit-identical outputs across calls, runtimes,
processes, batch sizes and entry points (predict in blocks, stream, predict_one), for fp32 and
int8 models of every op and activation.

What is true here (and documented in docs/RELIABILITY.md): no kernel's fp32 result depends on
the batch size. dense_f32 sums every output in input order whatever the block size, and
activations, softmax and log-softmax compute per sample in float64; so batch and single-sample
results are equal bit for bit, and the tests below assert exact equality, not a tolerance.
int8 is exact everywhere, also against the NumPy reference executor.
The fp32 claims hold for predict with batch="exact"; the default batch="auto" hands large fp32
batches to BLAS (tests/test_runtime_batch.py), so these runtimes are loaded with batch="exact"
and int8 is checked on both.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

import rtinfer
from rtinfer import reference
from rtinfer._testmodels import fp32_mlp, int8_mlp
from rtinfer.ops import Act
from rtinfer.plan import BLOCK
from rtinfer.rtm import load_frozen, save_frozen, to_bytes

MODELS = {
    **{f"act_{a.name.lower()}": lambda a=a: fp32_mlp([13, 37, 9], acts=[a, Act.IDENTITY], head=None) for a in Act},
    "softmax_affine_reshape": lambda: fp32_mlp([16, 65, 10], head="softmax", affine_in=True, reshape_in=(4, 4)),
    "log_softmax_inner_axis": lambda: fp32_mlp([12, 30], acts=[Act.IDENTITY], head="log_softmax", axis=(2, 5, 3)),
    "argmax": lambda: fp32_mlp([20, 16, 10], head="argmax"),
    "mnist_shape": lambda: fp32_mlp([784, 128, 64, 10], head="softmax"),
    "int8_relu": lambda: int8_mlp([20, 33, 10], head=None),
    "int8_lut_argmax": lambda: int8_mlp([20, 17, 10], lut=np.tanh, head="argmax"),
    "int8_softmax": lambda: int8_mlp([20, 17, 10], lut=np.tanh, head="softmax"),
    "int8_mnist_shape": lambda: int8_mlp([784, 128, 64, 10], lut=np.tanh, head=None),
}
# int8 models whose output is the int8 part's (DEQUANTIZE or ARGMAX last): exact vs the reference
INT8_EXACT = ("int8_relu", "int8_lut_argmax", "int8_mnist_shape")
N = 3 * BLOCK + 7
SIZES = (1, 2, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 3, N)


def _X(rt, n=N, seed=0):
    return (2.0 * np.random.default_rng(seed).standard_normal((n,) + rt.input_shape)).astype(np.float32)


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def built():
    out = {}
    for name, make in MODELS.items():
        fm = make()
        rt = rtinfer.load(fm, batch="exact")
        out[name] = (fm, rt, _X(rt))
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_batch_sizes_and_entry_points_agree_bit_for_bit(built, name):
    fm, rt, X = built[name]
    Y = rt.predict(X)
    assert np.array_equal(rt.stream(X), Y)
    assert np.array_equal(np.stack([rt.predict_one(x) for x in X]), Y)
    for n in SIZES:  # every batch size, and batches that start mid-block
        assert np.array_equal(rt.predict(X[:n]), Y[:n]), f"batch of {n}"
        assert np.array_equal(rt.predict(X[N - n:]), Y[N - n:]), f"last {n}"
    parts = [rt.predict(X[a:b]) for a, b in ((0, 5), (5, 5 + BLOCK), (5 + BLOCK, N))]
    assert np.array_equal(np.concatenate(parts), Y)


@pytest.mark.parametrize("name", list(MODELS))
def test_repeated_calls_and_fresh_runtimes_agree(built, name):
    fm, rt, X = built[name]
    Y = rt.predict(X)
    other = _X(rt, seed=99) * 50  # different data through the same arena in between
    rt.predict(other)
    rt.stream(other[:3])
    rt.predict_one(other[0])
    assert np.array_equal(rt.predict(X), Y)
    assert np.array_equal(rtinfer.load(fm, batch="exact").predict(X), Y)


@pytest.mark.parametrize("name", INT8_EXACT)
def test_int8_matches_reference_exactly(built, name):
    fm, rt, X = built[name]
    assert np.array_equal(rt.predict(X), reference.run(fm, X).astype(rt.output_dtype))
    assert np.array_equal(rtinfer.load(fm).predict(X), rt.predict(X))  # batch="auto" too


@pytest.mark.parametrize("mmap", [False, True])
def test_rtm_round_trip_gives_identical_outputs(built, tmp_path, mmap):
    for name in ("act_gelu", "softmax_affine_reshape", "int8_lut_argmax"):
        fm, rt, X = built[name]
        path = tmp_path / f"{name}.rtm"
        save_frozen(fm, path)
        assert np.array_equal(rtinfer.load(load_frozen(path, mmap=mmap), batch="exact").predict(X), rt.predict(X))


CHILD = r"""
import hashlib, sys
import numpy as np
import rtinfer
from rtinfer.rtm import load_frozen
rt = rtinfer.load(load_frozen(sys.argv[1]), batch="exact")
X = np.load(sys.argv[2])
h = hashlib.sha256()
for Y in (rt.predict(X), rt.stream(X), np.stack([rt.predict_one(x) for x in X])):
    h.update(np.ascontiguousarray(Y).tobytes())
with open(sys.argv[1], "rb") as f:
    print(h.hexdigest(), hashlib.sha256(f.read()).hexdigest())
"""


@pytest.mark.slow
@pytest.mark.parametrize("boundscheck", [False, True])
def test_other_processes_compute_the_same_bits(built, tmp_path, boundscheck):
    """A fresh process (cached code) and a process with NUMBA_BOUNDSCHECK=1 (separately
    compiled code) give the same output bits; the .rtm bytes are the same in every process."""
    import os
    import tempfile
    env = dict(os.environ)
    if boundscheck:
        env.update(NUMBA_BOUNDSCHECK="1",
                   NUMBA_CACHE_DIR=os.path.join(tempfile.gettempdir(), f"rtinfer-boundscheck-cache-{os.getuid()}"))
    for name in ("act_tanh", "mnist_shape", "int8_mnist_shape"):
        fm, rt, X = built[name]
        path, xpath = tmp_path / f"{name}.rtm", tmp_path / f"{name}.npy"
        save_frozen(fm, path)
        np.save(xpath, X)
        here = _digest(rt.predict(X), rt.stream(X), np.stack([rt.predict_one(x) for x in X]))
        proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(xpath)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out_digest, file_digest = proc.stdout.split()
        assert out_digest == here, name
        assert file_digest == hashlib.sha256(to_bytes(fm)).hexdigest()


def test_onnx_export_is_deterministic(built):
    from export.onnx_export import to_onnx
    for name in ("softmax_affine_reshape", "int8_lut_argmax"):
        fm = built[name][0]
        assert to_onnx(fm).SerializeToString() == to_onnx(fm).SerializeToString()


def test_blas_batch_path_is_repeatable_and_close():
    """batch="auto" (the default) runs fp32 batches of >= 32 samples through BLAS: a sample's
    bits may depend on the batch it is in (chunking, BLAS blocking), but the same call repeats
    bit for bit, in a fresh Runtime too, and stays within 1e-5 of the exact path."""
    fm = MODELS["mnist_shape"]()
    auto, exact = rtinfer.load(fm), rtinfer.load(fm, batch="exact")
    X = _X(auto, n=600)
    Y = auto.predict(X)
    assert np.array_equal(auto.predict(X), Y)
    assert np.array_equal(rtinfer.load(fm).predict(X), Y)
    Ye = exact.predict(X)
    assert np.allclose(Y, Ye, rtol=1e-5, atol=1e-6)
    assert np.array_equal(auto.predict(X[:31]), Ye[:31])  # below 32 samples: the exact path
