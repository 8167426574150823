"""One Runtime shared by many threads (fuzz/fuzz_threads.py, CI length): predict_one,
predict (batch path and blocked path), stream and measure hammered together under
sys.setswitchinterval(1e-6) on fp32, int8, int64, int8 ARGMAX, residual-graph, two-output and
CNN models; every answer equal to a single thread's. The positive control takes the Runtime's
lock out, and the same hammer must then see the int8 batch path's race (issue 16: wrong
answers from a shared Runtime). The long run (10^5 calls per entry point and model) is in
fuzz/README.md and docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
import sys

import pytest
from fuzzmods import FUZZ, load  # noqa: E402



ft = load("fuzz_threads")
MODELS = ft.make_models()


@pytest.mark.parametrize("kind", list(MODELS))
def test_shared_runtime_every_answer_right(kind, summary):
    res = ft.hammer(MODELS[kind], calls=300, threads=8, seed=1)
    entries = res["entries"]
    assert set(entries) == set(ft.ENTRIES)
    for entry, d in entries.items():
        assert d["calls"] >= 300
        assert d["wrong"] == 0 and d["errors"] == 0, (entry, d)
    # the models that have one really exercise the batch path (40-sample predict batches)
    assert res["batch_path"] == (kind != "conv")
    summary(f"threads {kind}: " + ", ".join(f"{e} {d['calls']}" for e, d in entries.items()) + " calls, 0 wrong")


def test_positive_control_unlocked_batch_path_goes_wrong():
    """Without the Runtime's lock, threads running the int8 batch path share its chunk buffers
    (BLAS releases the GIL): the hammer must count wrong answers (up to 10 rounds)."""
    wrong = 0
    for round_ in range(10):
        res = ft.hammer(MODELS["int8"], calls=1500, threads=4, unlocked=True, seed=round_, entries=("predict",))
        wrong += res["entries"]["predict"]["wrong"]
        if wrong:
            break
    assert wrong > 0


@pytest.mark.slow
def test_shared_runtime_long_run_short_version(summary):
    """The long run (fuzz_threads.py --calls 100000) at a fifth of its length."""
    import json
    import subprocess
    proc = subprocess.run([sys.executable, os.path.join(FUZZ, "fuzz_threads.py"), "--calls", "20000"],
                          capture_output=True, text=True, timeout=3600)
    res = json.loads(proc.stdout[proc.stdout.index("{"):])
    summary(f"threads (slow): {len(res['models'])} models x 4 entry points x >= 20000 calls, "
            f"{res['wrong_or_errors']} wrong or failed, {res['seconds']} s")
    assert proc.returncode == 0 and res["wrong_or_errors"] == 0
