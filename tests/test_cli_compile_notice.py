"""While Numba compiles the runtime for the first time, the CLI and the demo say so on stderr.

The cold case runs the CLI in a fresh process with an empty NUMBA_CACHE_DIR and stops it as
soon as the message has appeared (the compile itself is not waited for; nothing about time is
asserted: bench/ measures start-up). The listener itself is checked in-process with a probe
function whose module name is under rtinfer: its first call compiles (a message), its second
does not, and a user's own @njit function is never reported.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading

import pytest

from rtinfer._testmodels import fp32_mlp
from rtinfer.compile_notice import compile_notice

MESSAGE = "rtinfer: compiling the runtime with Numba"


def _first_stderr_lines_until(argv, env, marker, limit_s=900):
    """Run argv; return stderr lines up to and including the first containing marker (then kill
    the process), or all of stderr if it exits first."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    killer = threading.Timer(limit_s, proc.kill)  # a hang fails the test instead of the suite
    killer.start()
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if marker in line:
                break
    finally:
        killer.cancel()
        proc.kill()
        proc.wait()
        proc.stderr.close()
    return lines


@pytest.mark.parametrize("command", ["bench", "demo"])
def test_cold_cache_run_says_it_is_compiling(tmp_path, command):
    model = tmp_path / "m.rtm"
    fp32_mlp([8, 4, 2]).save(model)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty-numba-cache"), PYTHONUNBUFFERED="1")
    if command == "bench":
        argv = [sys.executable, "-m", "rtinfer.cli", "bench", str(model), "--budget-us", "1e9", "--n", "10",
                "--warmup", "0"]
    else:
        argv = [sys.executable, "-m", "rtinfer.cli", "demo", "--epochs", "1", "--hidden", "4", "--n", "10"]
    lines = _first_stderr_lines_until(argv, env, MESSAGE)
    text = "".join(lines)
    assert MESSAGE in text, text[-2000:]
    line = lines[-1]
    assert "once per machine" in line and "cached" in line
    assert str(tmp_path / "empty-numba-cache") in line  # says where the cache lives
    assert "Traceback" not in text


def _probe():
    """A function that reports as part of rtinfer (its module name is under rtinfer)."""
    def probe(x):
        return x + 1
    probe.__module__ = "rtinfer.notice_probe"
    return probe


def test_listener_reports_rtinfer_compiles_only_once_each(caplog):
    from numba import njit

    fn = njit(_probe())

    def user(x):
        return x * 2
    user_fn = njit(user)
    err = io.StringIO()
    with caplog.at_level(logging.INFO, logger="rtinfer"), compile_notice(err) as notice:
        user_fn(3)       # a user's function: not rtinfer's business
        assert err.getvalue() == ""
        assert fn(1) == 2  # compiles: reported
        first = err.getvalue()
        assert fn(2) == 3  # compiled already: silent
    assert first.startswith(MESSAGE) and "rtinfer.notice_probe.probe" in first and "compiled" in first
    assert err.getvalue() == first and notice.count == 1 and notice.total_s > 0
    assert any(MESSAGE in r.getMessage() for r in caplog.records)  # the API's logger says it too
    fn2 = njit(_probe())
    fn2(1)  # outside the block: the listener is gone
    assert err.getvalue() == first


def test_api_logs_a_first_compile(tmp_path):
    """rtinfer.load on a cold cache logs the compile on the "rtinfer" logger (INFO), once."""
    code = ("import logging, sys\n"
            "logging.basicConfig(level=logging.INFO, stream=sys.stderr, format='LOG %(name)s %(message)s')\n"
            "import rtinfer\n"
            "from rtinfer._testmodels import fp32_mlp\n"
            "rtinfer.load(fp32_mlp([8, 4, 2]))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty-numba-cache"), PYTHONUNBUFFERED="1")
    lines = _first_stderr_lines_until([sys.executable, "-c", code], env, MESSAGE)
    assert lines and lines[-1].startswith("LOG rtinfer ") and MESSAGE in lines[-1], "".join(lines)[-2000:]
