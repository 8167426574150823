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


def test_an_index_that_cannot_be_unpickled_is_a_cache_miss(tmp_path):
    """Numba unpickles a cache index before it compares the stamp; an index whose keys name a
    function that no longer exists (written before an upgrade removed a helper: the limits'
    probes, which take compiled functions as arguments, hit it) must compile anew, not raise
    AttributeError on every call, and leave a readable index behind."""
    import importlib.util
    import os
    import pickle
    import sys
    import types as pytypes

    gone_mod = pytypes.ModuleType("rtinfer_test_gone_helper")

    def gone():
        return None

    gone.__module__, gone.__qualname__ = gone_mod.__name__, "gone"
    gone_mod.gone = gone
    sys.modules[gone_mod.__name__] = gone_mod
    try:
        blob = pickle.dumps(("an old stamp", {("a key", gone): "old.nbc"}))
    finally:
        del sys.modules[gone_mod.__name__]
    src = tmp_path / "jit_probe.py"
    src.write_text("import os\nfrom rtinfer.jitcache import make_jit\n"
                   "jit = make_jit((os.path.abspath(__file__),))\n\n\n"
                   "@jit\ndef add1(x):\n    return x + 1\n")
    spec = importlib.util.spec_from_file_location("jit_probe", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    index = mod.add1._cache._cache_file
    os.makedirs(os.path.dirname(index._index_path), exist_ok=True)
    with open(index._index_path, "wb") as fh:
        fh.write(pickle.dumps(index._version) + blob)
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(blob)  # the index really cannot be read
    assert mod.add1(41) == 42
    assert index._load_index(), "the new index was not saved over the unreadable one"
