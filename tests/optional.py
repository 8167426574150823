"""Optional test dependencies, imported once: a test that needs one carries its marker and is
skipped (with the reason) when the package is missing; the tests around it still run.

onnx, numpy and numba are core dependencies and are imported plainly; the project's own
modules are never skipped (a broken import must fail, not skip).
"""

from __future__ import annotations

import pytest

try:
    import onnxruntime
except ImportError:  # pragma: no cover - installed by the [test] extra
    onnxruntime = None

needs_onnxruntime = pytest.mark.skipif(onnxruntime is None,
                                       reason="needs onnxruntime (pip install -e '.[test]')")
