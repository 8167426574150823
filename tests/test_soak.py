"""Soak (CI length): 10^5 samples streamed through fuzz/soak.py in a subprocess with
NUMBA_NRT_STATS=1. Asserted: the NRT counter is live (positive control) and sees no allocation
per chunk and no live allocation at the end, resident memory (/proc/self/statm) does not grow
after the first tenth by more than soak.RSS_SLACK, and every chunk's output bits equal the first
pass over the same inputs. Latency drift (p99 of the last tenth vs the first) is reported only;
the full run (10^6 samples) is documented in fuzz/README.md and docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOAK = os.path.join(_ROOT, "fuzz", "soak.py")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")]


@pytest.mark.parametrize("model,mode", [("fp32", "in-loop"), ("int8", "in-loop"), ("fp32", "call")])
def test_soak_no_growth(model, mode, summary):
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    proc = subprocess.run([sys.executable, SOAK, "--n", "100000", "--chunk", "5000", "--model", model,
                           "--mode", mode, "--check"], env=env, capture_output=True, text=True, timeout=600)
    res = json.loads(proc.stdout[proc.stdout.index("{"):])
    summary(f"soak {model} {mode}: {res['samples']} samples in {res['seconds']} s; NRT allocs/chunk "
            f"{res['nrt_allocs_per_chunk_max']}, live {res['nrt_live_first']}->{res['nrt_live_last']}; "
            f"RSS growth {res['rss_growth_bytes']} B; p99 {res['p99_first_us']} -> {res['p99_last_us']} us "
            f"(drift {100 * res['p99_drift']:+.1f}%, reported only)")
    assert proc.returncode == 0, res["problems"]
    assert res["problems"] == []
    assert res["nrt_control_allocs"] == 1
    assert res["nrt_allocs_per_chunk_max"] == 0 and res["nrt_live_last"] == res["nrt_live_first"]
    assert res["output_mismatches"] == 0
    assert res["samples"] == 100000


def test_rss_check_catches_a_leak_of_16_bytes_per_sample():
    """Positive control: the same run keeping 16 bytes per sample alive must fail --check."""
    proc = subprocess.run([sys.executable, SOAK, "--n", "100000", "--chunk", "5000", "--inject-leak", "16",
                           "--check"], env=dict(os.environ, NUMBA_NRT_STATS="1"), capture_output=True,
                          text=True, timeout=600)
    res = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert proc.returncode == 1
    assert any("resident memory grew" in p for p in res["problems"])
