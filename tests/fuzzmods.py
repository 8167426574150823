"""The fuzzers in fuzz/ as modules for the tests (fuzz/ is a folder of scripts, not a package)."""

from __future__ import annotations

import importlib.util
import os
import sys

FUZZ = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz")


def load(name: str):
    """fuzz/<name>.py as a module, with fuzz/ on sys.path for its own imports."""
    if FUZZ not in sys.path:
        sys.path.insert(0, FUZZ)
    spec = importlib.util.spec_from_file_location(name, os.path.join(FUZZ, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
