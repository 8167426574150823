"""The long-run driver shared by fuzz_rtm.py and fuzz_onnx.py.

Cases run in worker subprocesses (``script --worker SEED START STOP --survivors DIR``), one
chunk of case indices each, so a crash of the process is caught and reported with its case range
instead of ending the run. Each worker prints one JSON line: ``counts`` (family -> outcome ->
count), ``failures`` and numeric maxima that the caller names.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time


def run_chunks(script: str, seed: int, n: int, chunk: int, survivors: str, maxima: tuple[str, ...]):
    """Run cases [0, n) of ``script`` in chunks; returns (totals, failures, crashes, max_of, seconds)
    where max_of[key] is the largest value of that worker result key over all chunks."""
    t0 = time.time()
    total: dict[str, dict[str, int]] = {}
    failures, crashes = [], []
    max_of = {key: 0 for key in maxima}
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        proc = subprocess.run([sys.executable, script, "--worker", str(seed), str(start), str(stop),
                               "--survivors", survivors], capture_output=True, text=True)
        if proc.returncode != 0:
            crashes.append({"start": start, "stop": stop, "returncode": proc.returncode,
                            "stderr": proc.stderr[-2000:]})
            print(f"CRASH in cases [{start}, {stop}): exit {proc.returncode}", flush=True)
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        for fam, d in res["counts"].items():
            for k, v in d.items():
                total.setdefault(fam, {}).setdefault(k, 0)
                total[fam][k] += v
        failures += res["failures"]
        for key in maxima:
            max_of[key] = max(max_of[key], res[key])
        done = sum(sum(d.values()) for d in total.values())
        print(f"{done} cases, {len(failures)} failures, {len(crashes)} crashes, {time.time() - t0:.0f} s", flush=True)
    return total, failures, crashes, max_of, time.time() - t0
