"""`rtinfer demo` runs the whole flow offline (small settings to stay fast)."""

from __future__ import annotations

import re

from rtinfer import cli


def test_demo_runs_offline(capsys):
    assert cli.main(["demo", "--epochs", "5", "--n", "500", "--hidden", "16"]) == 0
    out = capsys.readouterr().out
    accs = [float(a) for a in re.findall(r"== (?:fp32|int8): test accuracy ([0-9.]+) ==", out)]
    assert len(accs) == 2 and min(accs) > 0.8  # digits with a small MLP: well above chance (0.1)
    assert out.count("p99.9 =") == 2 and "predict_one" in out
