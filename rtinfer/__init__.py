"""rtinfer: real-time inference of small neural models.

    import rtinfer
    rt = rtinfer.load("model.rtm")          # or a FrozenModel, or "model.onnx"
    y = rt.predict_one(x)
    report = rt.measure(X, budget_us=100)
    report.verdict                          # "PASS" / "FAIL"

Inputs are float32, C-contiguous arrays of the model's input shape (never converted silently);
anything else raises rtinfer.InputError (a ValueError) saying what was expected.
The runtime (this package, minus ``rtinfer.train``) needs only numpy and numba.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .frozen import FrozenModel, FrozenModelError, Layer, Output, TensorRef  # noqa: F401
from .ops import Act, Bin, Op  # noqa: F401

_LAZY = {
    "load": ("rtinfer.runtime", "load"),
    "Runtime": ("rtinfer.runtime", "Runtime"),
    "InputError": ("rtinfer.boundary", "InputError"),
    "LatencyReport": ("rtinfer.latency", "LatencyReport"),
    "load_frozen": ("rtinfer.rtm", "load_frozen"),
    "save_frozen": ("rtinfer.rtm", "save_frozen"),
    "RtmFormatError": ("rtinfer.rtm", "RtmFormatError"),
}


__all__ = ["FrozenModel", "FrozenModelError", "Layer", "Output", "TensorRef", "Act", "Bin", "Op", *_LAZY,
           "__version__"]


def __dir__():  # the lazy attributes too, so dir(rtinfer) and tab completion show the whole API
    return sorted((set(globals()) - {"annotations"}) | set(_LAZY))


def __getattr__(name):  # lazy: importing rtinfer does not import numba
    if name in _LAZY:
        import importlib
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'rtinfer' has no attribute {name!r}")
