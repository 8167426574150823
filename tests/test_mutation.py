"""The mutation check (tests/mutation/run_mutants.py): every bug planted from
tests/mutation/mutants.py must make a test fail. The full check copies the project once per
mutant and recompiles what each mutant touches, so it is a slow job run on request; the list
itself is checked on every run (each snippet still occurs once, each named test file exists),
so a refactor that makes a mutant stale is noticed at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "mutation"))

from mutants import MUTANTS  # noqa: E402


@pytest.mark.parametrize("m", MUTANTS, ids=[m.id for m in MUTANTS])
def test_mutant_applies_to_the_current_sources(m):
    text = (ROOT / m.file).read_text()
    assert text.count(m.find) == 1, (f"mutant {m.id}: its snippet occurs {text.count(m.find)} times in {m.file}; "
                                     f"update tests/mutation/mutants.py")
    assert m.replace != m.find
    files = [a for a in m.tests if a.startswith("tests/")]
    assert files and all((ROOT / f.split("::")[0]).exists() for f in files), m.tests


def test_mutant_ids_are_unique():
    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids))


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("RTINFER_MUTATION"),
                    reason="the full mutation check takes tens of minutes: RTINFER_MUTATION=1 to run it")
def test_every_planted_bug_is_caught():
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "mutation" / "run_mutants.py")],
                          capture_output=True, text=True, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
