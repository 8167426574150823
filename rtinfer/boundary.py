"""The input boundary shared by the runtime's entry points and the latency report.

InputError is the one error type for a bad input array (shape, dtype, layout, finiteness,
overlap); ``plain_array`` turns what a user passes into a plain ndarray or refuses it.
"""

from __future__ import annotations

import numpy as np


class InputError(ValueError):
    """An input array breaks the model's input contract (shape, dtype, layout, finiteness)."""


def plain_array(a, what: str) -> np.ndarray:
    """a as a plain ndarray: subclasses whose indexing or values differ from an ndarray's
    (np.matrix: a row is 2-D; masked arrays: the mask would be ignored) are refused, other
    subclasses (np.memmap, ...) are viewed as ndarray; anything else is refused. ``what``
    completes "expected a numpy.ndarray ..." in the message."""
    if type(a) is np.ndarray:
        return a
    if isinstance(a, (np.matrix, np.ma.MaskedArray)):
        raise InputError(f"expected a plain numpy.ndarray {what}, got {type(a).__module__}.{type(a).__name__} "
                         f"(convert with np.asarray; a mask is not applied)")
    if isinstance(a, np.ndarray):
        return a.view(np.ndarray)
    raise InputError(f"expected a numpy.ndarray {what}, got {type(a).__name__}")
