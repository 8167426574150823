"""Compiled functions cached on disk, keyed on every source they compile in.

Numba's ``cache=True`` keys a function's cache on its own file only (its modification time and
size). A kernel in kernels.py that calls a register tile of kernels_tile.py, or the interpreter
that calls every kernel, would then reuse stale machine code after an edit of the other file:
the cached qconv_i8 kept its old rounding when only kernels_tile.py changed (the mutation check
found it). ``make_jit(sources)`` returns a decorator like ``njit(cache=True, _nrt=False)``
whose cache stamp is a hash of all the listed files: editing any of them recompiles.

``kernel_jit`` is for the kernel modules (stamped with KERNEL_SOURCES); rtinfer.interp makes its
own with the interpreter's and the planner's files added. Below every kernel module: it imports
only Numba and the standard library.
"""

from __future__ import annotations

import functools
import hashlib
import os

from numba import njit
from numba.core import caching

KERNEL_SOURCES = ("jitcache.py", "ops.py", "kernels.py", "kernels_gemm.py", "kernels_conv.py", "kernels_graph.py",
                  "kernels_extra.py", "kernels_tile.py")


@functools.lru_cache(maxsize=None)
def sources_stamp(sources: tuple) -> str:
    """sha256 over the contents of ``sources`` (file names in this package)."""
    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for name in sources:
        with open(os.path.join(here, name), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


class _TolerantIndex(caching.IndexDataCacheFile):
    """Numba's cache index, read as a miss when it cannot be unpickled. Numba unpickles an index
    before it compares the source stamp; the key of a function that takes another compiled
    function as an argument (bench/suite_limits' probes) pickles a reference to it, so an index
    written by code that had a helper since removed (an upgrade, a changed checkout) raised
    AttributeError on every load and save instead of compiling anew."""

    def _load_index(self):
        try:
            return super()._load_index()
        except Exception:  # AttributeError, ModuleNotFoundError, a truncated file: any unreadable index
            return {}


def _function_cache(sources: tuple):
    """A numba FunctionCache class whose source stamp is sources_stamp(sources)."""

    class Stamp:
        def get_source_stamp(self):
            return sources_stamp(sources)

    def locator(name):
        base = getattr(caching, name, None) or getattr(caching, "_" + name)
        return type("Stamped" + name, (Stamp, base), {})

    class Impl(caching.CompileResultCacheImpl):
        _locator_classes = [locator("UserProvidedCacheLocator"), locator("InTreeCacheLocator"),
                            locator("UserWideCacheLocator")]

    class StampedFunctionCache(caching.FunctionCache):
        _impl_class = Impl

        def __init__(self, py_func):
            super().__init__(py_func)
            if isinstance(self._cache_file, caching.IndexDataCacheFile):
                self._cache_file.__class__ = _TolerantIndex

        def load_overload(self, sig, target_context):
            """The cached compile result for sig, or None (then the dispatcher compiles, and
            compiling refreshes the target context itself).

            Numba's FunctionCache.load_overload first calls target_context.refresh(), which
            imports every lowering registry of Numba (numba.np.arraymath among them, whose BLAS
            probe imports scipy.linalg: 0.2-0.4 s, about half of a warm start-up). Rebuilding a
            cached library does not use those registries: it unpickles object code and links it
            against symbols that the target context registers when it is created (Numba's C
            helpers, libc). Functions made here are compiled without NRT, so their code never
            references the NRT symbols that refresh() would register. On a Numba without these
            internals, the stock loader runs."""
            load = getattr(self, "_load_overload", None)
            guard = getattr(self, "_guard_against_spurious_io_errors", None)
            if load is None or guard is None:
                return super().load_overload(sig, target_context)
            with guard():
                return load(sig, target_context)

    return StampedFunctionCache


def make_jit(sources: tuple):
    """A decorator: @njit without NRT, cached on disk and stamped with sources_stamp(sources).
    Used bare (``@jit``) or with njit options (``@jit(inline="always")``)."""
    cache_class = _function_cache(tuple(sources))

    def jit(fn=None, **options):
        if fn is None:
            return lambda f: jit(f, **options)
        disp = njit(_nrt=False, **options)(fn)
        disp._cache = cache_class(disp.py_func)
        return disp

    return jit


kernel_jit = make_jit(KERNEL_SOURCES)
