"""The supervised long-run driver shared by fuzz_rtm.py and fuzz_onnx.py.

Cases run in worker subprocesses, a chunk of case indices each (``script --worker SEED START STOP
--progress FILE --mem-gb G``), so one case cannot take the run down:

- **memory**: after its warm-up (imports, compiled code loaded, the base models run once) a
  worker sets ``RLIMIT_AS`` to its address space plus ``mem_gb`` GiB (default 2). A case that
  tries to allocate more gets a ``MemoryError`` (counted as a ``memory`` finding, and the worker
  goes on) or, if the allocation fails inside native code, dies (a ``crash``).
- **time**: the worker writes the index and stage of the case it is on into its progress file
  (16 bytes, ``os.pwrite``); the parent kills a worker whose case has not changed for
  ``case_timeout`` seconds and records a ``hang`` at that index and stage.
- **crash**: a worker that ends with a signal or a nonzero exit is recorded as a ``crash`` at the
  index and stage in its progress file, with the tail of its stderr.

After a crash or hang the parent re-runs the cases of that chunk before the finding in a new
worker (cases are pure functions of ``(seed, index)``, so their counts are not lost) and
continues after it. Each worker prints one JSON line: ``counts`` (family -> outcome -> count),
``findings`` (capped), ``n_findings`` and numeric maxima the caller names.

A script plugs in by calling ``worker_main`` from its ``--worker`` branch with its ``run_range``
and ``warm_up``; ``mark(stage)`` inside a case records which stage is running.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time

STAGES = ("case", "parse", "plan", "run", "reference", "onnxruntime", "done")
_PROGRESS_FD = None
_INDEX = -1
_STAGE = "case"


def mark(stage: str) -> None:
    """Record that the current case entered ``stage`` (one of STAGES)."""
    global _STAGE
    _STAGE = stage
    if _PROGRESS_FD is not None:
        os.pwrite(_PROGRESS_FD, struct.pack("<qq", _INDEX, STAGES.index(stage)), 0)


def current_stage() -> str:
    """The stage the current case last entered (for attributing an exception)."""
    return _STAGE


def start_case(index: int) -> None:
    global _INDEX
    _INDEX = index
    mark("case")


def address_space_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def set_memory_limit(mem_gb: float) -> int:
    """RLIMIT_AS = the current address space + mem_gb GiB; returns the limit in bytes."""
    limit = address_space_bytes() + int(mem_gb * (1 << 30))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def worker_main(run_range, warm_up, seed: int, start: int, stop: int, progress: str | None,
                mem_gb: float, **kw) -> int:
    """The body of a worker: warm up, limit memory, run cases [start, stop), write the JSON
    summary to ``progress + ".json"`` (stdout without a progress file)."""
    global _PROGRESS_FD
    if progress:
        _PROGRESS_FD = os.open(progress, os.O_RDWR)
    warm_up()
    limit = set_memory_limit(mem_gb) if mem_gb > 0 else 0
    res = run_range(seed, start, stop, **kw)
    res["rlimit_as_bytes"] = limit
    res["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mark("done")
    if progress:
        with open(progress + ".json", "w") as f:
            f.write(json.dumps(res))
    else:
        print(json.dumps(res), flush=True)
    return 0


def _read_progress(path: str) -> tuple[int, str]:
    try:
        with open(path, "rb") as f:
            index, stage = struct.unpack("<qq", f.read(16))
        return index, STAGES[stage] if 0 <= stage < len(STAGES) else "?"
    except (OSError, struct.error):
        return -1, "?"


def merge_counts(total: dict, counts: dict) -> None:
    for fam, d in counts.items():
        for k, v in d.items():
            total.setdefault(fam, {}).setdefault(k, 0)
            total[fam][k] += v


def run_supervised(script: str, seed: int, n: int, chunk: int, maxima: tuple[str, ...], jobs: int = 1,
                   case_timeout: float = 60.0, mem_gb: float = 2.0, extra: tuple[str, ...] = (),
                   start: int = 0, log=print) -> dict:
    """Run cases [start, start + n) of ``script`` in supervised workers (see the module doc).

    Returns {"counts", "findings", "n_findings", "crashes", "hangs", "max": {key: (value, index)},
    "seconds", "workers", "maxrss_mb", "rlimit_as_bytes"}; ``max`` holds the largest value of each
    worker result key in ``maxima`` and, where the worker reports ``<key>_index``, its case."""
    t0 = time.time()
    todo = [(s, min(start + n, s + chunk)) for s in range(start, start + n, chunk)]
    running = []  # (proc, lo, hi, progress path, last index, last change time, stderr file)
    tmp = tempfile.mkdtemp(prefix="fuzz-progress-")
    out = {"counts": {}, "findings": [], "n_findings": 0, "crashes": [], "hangs": [], "workers": 0,
           "max": {k: (0, None) for k in maxima}, "maxrss_mb": 0.0, "rlimit_as_bytes": 0}

    def launch(lo, hi):
        path = os.path.join(tmp, f"p{lo}_{hi}_{out['workers']}")
        with open(path, "wb") as f:
            f.write(struct.pack("<qq", -1, 0))
        err = tempfile.TemporaryFile(dir=tmp)
        proc = subprocess.Popen([sys.executable, script, "--worker", str(seed), str(lo), str(hi), "--progress", path,
                                 "--mem-gb", str(mem_gb), *extra], stdout=err, stderr=err)
        out["workers"] += 1
        running.append([proc, lo, hi, path, -2, time.time(), err])

    def finding(kind, lo, hi, index, stage, detail):
        rec = {"index": index, "stage": stage, "chunk": [lo, hi], "detail": detail}
        out["crashes" if kind == "crash" else "hangs"].append(rec)
        sig = f"{kind}:{stage}"
        out.setdefault("signatures", {})[sig] = out.get("signatures", {}).get(sig, 0) + 1
        log(f"{kind.upper()} at case {index} (stage {stage}): {detail[:300]}")
        if index < lo:  # died before its first case (warm-up): do not loop on it
            return
        if lo < index:
            todo.append((lo, index))
        if index + 1 < hi:
            todo.append((index + 1, hi))

    done_cases = 0
    while todo or running:
        while todo and len(running) < jobs:
            launch(*todo.pop(0))
        time.sleep(0.05)
        for item in list(running):
            proc, lo, hi, path, last, since, err = item
            rc = proc.poll()
            if rc is None:
                index, stage = _read_progress(path)
                if index != last:
                    item[4], item[5] = index, time.time()
                elif time.time() - since > case_timeout:
                    proc.kill()
                    proc.wait()
                    running.remove(item)
                    finding("hang", lo, hi, index, stage, f"no progress for {case_timeout:.0f} s")
                continue
            running.remove(item)
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
            err.close()
            try:
                with open(path + ".json") as f:
                    lines = [f.read()]
            except OSError:
                lines = []
            if rc != 0 or not lines:
                index, stage = _read_progress(path)
                what = f"signal {-rc}" if rc < 0 else f"exit {rc}"
                finding("crash", lo, hi, index, stage, f"{what}: {stderr[-1500:]}")
                continue
            res = json.loads(lines[-1])
            merge_counts(out["counts"], res["counts"])
            out["findings"] += res["findings"][:max(0, 1000 - len(out["findings"]))]
            out["n_findings"] += res["n_findings"]
            out["maxrss_mb"] = max(out["maxrss_mb"], res.get("maxrss_mb", 0.0))
            out["rlimit_as_bytes"] = max(out["rlimit_as_bytes"], res.get("rlimit_as_bytes", 0))
            for key in ("notes", "n_notes", "signatures"):  # dicts of capped lists / of counts
                for k, v in res.get(key, {}).items():
                    if isinstance(v, list):
                        out.setdefault(key, {}).setdefault(k, [])
                        out[key][k] += v[:max(0, 20 - len(out[key][k]))]
                    else:
                        out.setdefault(key, {}).setdefault(k, 0)
                        out[key][k] += v
            for key in ("slow_cases", "survivors_saved"):
                out[key] = out.get(key, 0) + res.get(key, 0)
            for key in maxima:
                if res[key] > out["max"][key][0]:
                    out["max"][key] = (res[key], res.get(key + "_index"))
            done_cases += hi - lo
            log(f"{done_cases} cases, {out['n_findings']} findings, {len(out['crashes'])} crashes, "
                f"{len(out['hangs'])} hangs, {time.time() - t0:.0f} s")
    for name in os.listdir(tmp):
        os.remove(os.path.join(tmp, name))
    os.rmdir(tmp)
    out["seconds"] = round(time.time() - t0, 1)
    return out
