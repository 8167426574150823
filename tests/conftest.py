"""Shared pytest setup.

Tests that need an optional package carry its marker from ``tests/optional.py`` (skipped, with the
reason, when it is missing); the project's own modules and its core dependencies are imported
plainly, so a broken import fails instead of skipping. Summaries that
a test records with ``record_summary(line)`` are printed at the end of the run (e.g. the ONNX
conformance pass count), so the counts are visible in CI logs even under ``-q``.
"""

from __future__ import annotations

import pytest

_SUMMARY: list[str] = []


def record_summary(line: str) -> None:
    _SUMMARY.append(line)


@pytest.fixture
def summary():
    return record_summary


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _SUMMARY:
        terminalreporter.section("rtinfer summary")
        for line in _SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module", autouse=True)
def _settled_heap():
    """Before each test module: collect, then freeze what survives, so the cyclic collector
    stops re-walking every earlier module's compiled dispatchers, plans and ONNX graphs.
    Without it the fuzz and conformance fixtures, which allocate many small objects, ran
    5x slower late in a full run than alone (26 s against 4.7 s)."""
    import gc
    gc.collect()
    gc.freeze()
    yield
