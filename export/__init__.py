"""export: everything that produces a FrozenModel or writes one elsewhere.

    frozen = export.freeze(model, dtype="int8", calibration=X_cal)
    export.to_onnx(frozen, "model.onnx")
    frozen = export.from_onnx("other.onnx")
"""

from __future__ import annotations

# Imported eagerly (numpy + rtinfer only): a lazy attribute named like its submodule would be
# replaced by the submodule object as soon as ``export.freeze`` is imported.
from .freeze import freeze  # noqa: F401

_LAZY = {
    "to_onnx": ("export.onnx_export", "to_onnx"),
    "from_onnx": ("export.onnx_import", "from_onnx"),
    "OnnxImportError": ("export.onnx_import", "OnnxImportError"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
