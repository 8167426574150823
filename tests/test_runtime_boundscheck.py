"""The kernel and runtime tests pass with NUMBA_BOUNDSCHECK=1: no kernel reads or writes
outside its arrays for any model those tests build (odd sizes, offsets, batches, every op),
including the batch path of predict (register-tiled fp32 GEMM, the u8s8 int8 GEMM, BLAS
products and their compiled epilogues: tests/test_runtime_batch.py), the fast conv paths
(tests/test_kernels_conv_fast.py) and the requantization ties on every kernel
(tests/test_requant_ties.py). The LLVM IR micro-kernels (kernels_gemm._tile, kernels._dot_rows_i8)
are not bounds-checked by Numba; the Python-level loops around them are.

Runs in a subprocess with its own NUMBA_CACHE_DIR under the system temp directory, so the
bounds-checked machine code never mixes with the normal cache; the directory is kept between
runs (Numba invalidates it when the sources change), so only the first run pays the compile.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FILES = ("test_kernels.py", "test_runtime.py", "test_runtime_batch.py", "test_kernels_conv_fast.py",
         "test_requant_ties.py")


@pytest.mark.slow
def test_kernels_and_runtime_under_boundscheck():
    cache = os.path.join(tempfile.gettempdir(), f"rtinfer-boundscheck-cache-{os.getuid()}")
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=cache)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         *[str(HERE / name) for name in FILES]],
        capture_output=True, text=True, env=env, timeout=900, cwd=str(HERE.parent))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
