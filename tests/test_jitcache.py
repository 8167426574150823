"""Compiled code is cached under a stamp of every source it compiles in (rtinfer.jitcache).

With numba's own cache=True a kernel's cache is keyed on its file alone: after an edit of
kernels_tile.py, a cached qconv_i8 (kernels_conv.py) kept its old requantization and the
interpreter linked it in (the mutation check's qconv mutant survived that way). These tests
pin the design: every compiled function of the kernel modules and the interpreter carries the
stamped cache, and the stamp changes with any of the sources, kernels_tile.py included."""

from __future__ import annotations

import shutil

import pytest
from numba.core.registry import CPUDispatcher

from rtinfer import interp, jitcache
from rtinfer import kernels, kernels_conv, kernels_extra, kernels_gemm, kernels_graph

MODULES = (kernels, kernels_conv, kernels_extra, kernels_gemm, kernels_graph, interp)


def _dispatchers(mod):
    return {name: obj for name, obj in vars(mod).items()
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == mod.__name__}


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__)
def test_every_compiled_function_has_the_stamped_cache(mod):
    disps = _dispatchers(mod)
    assert disps, mod.__name__
    for name, disp in disps.items():
        stamp = disp._cache._impl.locator.get_source_stamp()
        want = jitcache.KERNEL_SOURCES + (("interp.py", "plan.py") if mod is interp else ())
        assert stamp == jitcache.sources_stamp(want), f"{mod.__name__}.{name} is cached on its own file only"


def test_the_stamp_follows_every_source(tmp_path, monkeypatch):
    """A copy of the sources: changing any one of them (kernels_tile.py too) changes the stamp."""
    import os
    here = os.path.dirname(jitcache.__file__)
    for name in jitcache.KERNEL_SOURCES:
        shutil.copy(os.path.join(here, name), tmp_path / name)
    monkeypatch.setattr(jitcache.os.path, "abspath", lambda p, _a=os.path.abspath: str(tmp_path / "x.py")
                        if p == jitcache.__file__ else _a(p))
    jitcache.sources_stamp.cache_clear()
    try:
        base = jitcache.sources_stamp(jitcache.KERNEL_SOURCES)
        assert "kernels_tile.py" in jitcache.KERNEL_SOURCES
        for name in jitcache.KERNEL_SOURCES:
            f = tmp_path / name
            text = f.read_bytes()
            f.write_bytes(text + b"\n# edited\n")
            jitcache.sources_stamp.cache_clear()
            assert jitcache.sources_stamp(jitcache.KERNEL_SOURCES) != base, name
            f.write_bytes(text)
        jitcache.sources_stamp.cache_clear()
        assert jitcache.sources_stamp(jitcache.KERNEL_SOURCES) == base
    finally:
        jitcache.sources_stamp.cache_clear()
