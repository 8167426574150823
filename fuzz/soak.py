"""Soak: a long streaming run watching NRT allocations, resident memory, outputs and latency.

    python fuzz/soak.py --n 1000000                  # full run (in-loop timing), JSON summary
    python fuzz/soak.py --n 1000000 --mode call      # Python predict_one calls instead
    python fuzz/soak.py --n 100000 --model int8 --json soak.json

The run streams ``n`` samples in chunks. For every chunk it (1) runs ``rt.stream`` into a
preallocated output and checks the bits equal the first pass over the same input block
(the arena carries no state between samples), and (2) times every sample with
``rt.measure`` (in-loop: clock_gettime inside compiled code; call: one Python predict_one each).
Numba's NRT counters need NUMBA_NRT_STATS=1 before numba is imported; this script sets it.

Reported: NRT allocations per chunk (the kernels are compiled without NRT: 0, whatever the
chunk; a positive control proves the counter is live),
live NRT allocations at the start and end (must be equal), resident set size (/proc/self/statm)
after the first tenth and at the end (each after glibc's malloc_trim), and p50/p99 latency of the first and last tenth with
their ratio (drift). ``--check`` exits 1 when NRT or RSS grow or an output changes (the CI
test runs it that way); latency drift is reported, never asserted.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NRT_STATS", "1")  # must precede the first numba import

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def _malloc_trim():
    """glibc's malloc_trim(0), or None elsewhere."""
    try:
        import ctypes
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def rss_bytes() -> int:
    """Resident set size after handing free heap pages back to the OS (glibc malloc_trim): freed
    but still resident heap memory would otherwise absorb a small leak without any RSS growth
    (a 16-byte-per-sample leak grew RSS by 278 KB of its 1.4 MB, 16 KB above the slack)."""
    if _TRIM is not None:
        _TRIM(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def nrt_stats():
    from numba.core.runtime import rtsys
    s = rtsys.get_allocation_stats()
    return int(s.alloc), int(s.free)


def nrt_control() -> int:
    """Positive control: an NRT-compiled function that allocates once. Returns the allocations
    the counter saw for it (1 when NUMBA_NRT_STATS is live); also initializes the NRT."""
    from numba import njit

    @njit
    def one_alloc(n):
        return np.empty(n).sum()

    one_alloc(1)
    before = nrt_stats()[0]
    one_alloc(1)
    return nrt_stats()[0] - before


def build(model: str):
    from rtinfer._testmodels import fp32_mlp, int8_mlp
    if model == "fp32":
        return fp32_mlp([64, 64, 32, 10], head="softmax", affine_in=True)
    if model == "int8":
        return int8_mlp([64, 64, 32, 10], lut=np.tanh, head="softmax")
    if model == "mnist":
        return fp32_mlp([784, 128, 64, 10], head="softmax")
    raise SystemExit(f"unknown model {model!r}; use fp32, int8 or mnist")


def soak(n: int, chunk: int = 10000, model: str = "fp32", mode: str = "in-loop", blocks: int = 8, seed: int = 0,
         inject_leak: int = 0):
    """inject_leak: bytes per sample deliberately kept alive (a positive control for the RSS check)."""
    import rtinfer
    control = nrt_control()
    rt = rtinfer.load(build(model))
    rng = np.random.default_rng(seed)
    pool = [rng.standard_normal((chunk,) + rt.input_shape).astype(np.float32) for _ in range(blocks)]
    want = [rt.stream(X) for X in pool]  # first pass: the outputs every later pass must equal
    Y = np.empty_like(want[0])
    n_chunks = max(1, n // chunk)
    lat = np.full(n_chunks * chunk, np.nan)  # written now, so its pages are resident before RSS is read
    rss, nrt = [], []
    mismatches = 0
    leaked = []
    rt.measure(pool[0], budget_us=1e6, warmup=1000, mode=mode)  # warm-up (caches, page faults)
    t0 = time.time()
    for k in range(n_chunks):
        X = pool[k % blocks]
        rt.stream(X, out=Y)
        if not np.array_equal(Y, want[k % blocks]):
            mismatches += 1
        report = rt.measure(X, budget_us=1e6, warmup=0, mode=mode)
        lat[k * chunk:(k + 1) * chunk] = report.samples_us
        if inject_leak:
            leaked.append(np.ones(inject_leak * chunk, np.uint8))
        rss.append(rss_bytes())
        nrt.append(nrt_stats())
    seconds = time.time() - t0
    tenth = max(1, n_chunks // 10)
    first, last = lat[:tenth * chunk], lat[-tenth * chunk:]
    allocs = np.diff([a for a, _ in nrt])
    live = [a - f for a, f in nrt]
    p99_first, p99_last = float(np.percentile(first, 99)), float(np.percentile(last, 99))
    return {
        "samples": int(n_chunks * chunk), "chunk": chunk, "model": model, "mode": mode, "seconds": round(seconds, 2),
        "output_mismatches": mismatches, "nrt_control_allocs": control,
        "nrt_allocs_per_chunk_min": int(allocs.min()) if len(allocs) else 0,
        "nrt_allocs_per_chunk_max": int(allocs.max()) if len(allocs) else 0,
        "nrt_live_first": live[0], "nrt_live_last": live[-1],
        "rss_after_first_tenth": rss[tenth - 1], "rss_last": rss[-1],
        "rss_growth_bytes": rss[-1] - rss[tenth - 1], "rss_max_minus_min_after_first_tenth": max(rss[tenth - 1:]) - min(rss[tenth - 1:]),
        "p50_first_us": round(float(np.percentile(first, 50)), 3), "p50_last_us": round(float(np.percentile(last, 50)), 3),
        "p99_first_us": round(p99_first, 3), "p99_last_us": round(p99_last, 3),
        "p99_drift": round(p99_last / p99_first - 1.0, 4),
        "max_us": round(float(lat.max()), 2),
    }


RSS_SLACK = 256 * 1024  # bytes; a leak of 16 bytes per sample over 10^5 samples exceeds it (tested)


def problems(res) -> list[str]:
    out = []
    if res["nrt_control_allocs"] != 1:
        out.append("the NRT allocation counter is not live (set NUMBA_NRT_STATS=1 before importing numba)")
    if res["output_mismatches"]:
        out.append(f"{res['output_mismatches']} chunks gave different output bits")
    if res["nrt_allocs_per_chunk_min"] != res["nrt_allocs_per_chunk_max"]:
        out.append("NRT allocations per chunk vary")
    if res["nrt_live_last"] != res["nrt_live_first"]:
        out.append(f"live NRT allocations grew from {res['nrt_live_first']} to {res['nrt_live_last']}")
    if res["rss_growth_bytes"] > RSS_SLACK:
        out.append(f"resident memory grew by {res['rss_growth_bytes']} bytes")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=10000)
    ap.add_argument("--model", default="fp32", choices=("fp32", "int8", "mnist"))
    ap.add_argument("--mode", default="in-loop", choices=("in-loop", "call"))
    ap.add_argument("--json", default=None, help="write the summary here ('-' for stdout only)")
    ap.add_argument("--check", action="store_true", help="exit 1 on NRT/RSS growth or changed outputs")
    ap.add_argument("--inject-leak", type=int, default=0, metavar="BYTES",
                    help="keep BYTES per sample alive (positive control: --check must then fail)")
    args = ap.parse_args(argv)
    res = soak(args.n, args.chunk, args.model, args.mode, inject_leak=args.inject_leak)
    res["problems"] = problems(res)
    text = json.dumps(res, indent=2)
    print(text)
    if args.json and args.json != "-":
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 1 if args.check and res["problems"] else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
