"""Say so while Numba compiles rtinfer's runtime (the first run on a machine takes a while).

    with compile_notice():          # in a command, around loading and running models
        rt = rtinfer.load(path); rt.measure(...)

rtinfer.interp.warm_up (every rtinfer.load) reports through the logger only; the CLI and the
demo also print to stderr.

Numba broadcasts a "numba:compile" event only when a function is really compiled (a cache
miss), not when it is loaded from the on-disk cache; a listener for that event tells the user,
on stderr and through ``logging.getLogger("rtinfer")``, what is being compiled, that it happens
once per machine (the result is cached), and how long it took. A warm start prints nothing.
This depends on no detail of the interpreter: any rtinfer function that compiles is reported.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time

log = logging.getLogger("rtinfer")

FIRST = ("rtinfer: compiling the runtime with Numba ({what}): this happens once per machine "
         "(and after an rtinfer or Numba upgrade); the result is cached on disk{where}, and later runs "
         "start in about a second")


def _cache_dir() -> str:
    try:
        from numba.core import config
        return f" in {config.CACHE_DIR}" if config.CACHE_DIR else " next to rtinfer's sources (__pycache__)"
    except Exception:  # noqa: BLE001 - the message still makes sense without the folder
        return ""


class _Listener:
    """Counts nesting of rtinfer compile events (one thread compiles at a time: Numba's
    compiler lock) and reports each outermost one."""

    def __init__(self, stream):
        self.stream = stream
        self.depth = 0
        self.t0 = 0.0
        self.what = ""
        self.count = 0
        self.total_s = 0.0
        self.lock = threading.Lock()

    def _say(self, text):
        log.info(text)
        if self.stream is not None:
            try:
                print(text, file=self.stream, flush=True)
            except (OSError, ValueError):  # a closed stderr must not break the run
                pass

    def notify(self, event):
        data = event.data or {}
        disp = data.get("dispatcher")
        func = getattr(disp, "py_func", None)
        module = getattr(func, "__module__", "") or ""
        if not module.startswith("rtinfer"):
            return
        with self.lock:
            if event.is_start:
                self.depth += 1
                if self.depth == 1:
                    self.t0 = time.perf_counter()
                    self.what = f"{module}.{func.__name__}"
                    if self.count == 0:
                        self._say(FIRST.format(what=self.what, where=_cache_dir()) + " ...")
                    else:
                        self._say(f"rtinfer: compiling {self.what} (once per machine) ...")
            elif event.is_end and self.depth > 0:
                self.depth -= 1
                if self.depth == 0:
                    dt = time.perf_counter() - self.t0
                    self.count += 1
                    self.total_s += dt
                    self._say(f"rtinfer: compiled {self.what} in {dt:.1f} s (cached for later runs)")


@contextlib.contextmanager
def compile_notice(stream=None):
    """Report rtinfer compiles on ``stream`` (default sys.stderr; False: the logger only) and the
    "rtinfer" logger while the block runs. Yields the listener (``.count``, ``.total_s``)."""
    global _ACTIVE
    try:
        from numba.core import event
    except ImportError:  # no numba: nothing compiles
        yield None
        return
    if _ACTIVE:  # an outer notice (the CLI's) already reports: do not report twice
        yield None
        return
    listener = _Listener(sys.stderr if stream is None else (None if stream is False else stream))

    class _Adapter(event.Listener):
        def on_start(self, ev):
            listener.notify(ev)

        def on_end(self, ev):
            listener.notify(ev)

    _ACTIVE += 1
    try:
        with event.install_listener("numba:compile", _Adapter()):
            yield listener
    finally:
        _ACTIVE -= 1


_ACTIVE = 0  # notices in force (one reports; nested ones stay silent)
