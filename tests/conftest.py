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
