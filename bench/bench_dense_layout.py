"""One sample through one float32 DENSE layer: the two kernels the planner chooses between.

    python bench/bench_dense_layout.py [--rounds 15]

kernels.dense_f32 (W transposed, four dot products at a time, each ending in a horizontal sum)
against kernels_gemm.dense_f32_wide (W packed in blocks of 16 outputs, x[k] broadcast into up
to 8 FMA chains, no horizontal sums), on the layer shapes of the benchmark models and a few
more. Each kernel runs in a compiled loop over the same sample (weights warm in cache), the two
alternated round by round; the table gives the median ns per call and their ratio. The planner
packs a layer from plan.DENSE_WIDE_MIN_OUT outputs up (rtinfer.plan.dense_packed): the column
"planner" says which one it picks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SHAPES = [(16, 32), (32, 4), (64, 64), (64, 32), (32, 10), (64, 10), (8, 64), (16, 16), (64, 16), (128, 16),
          (128, 64), (120, 84), (84, 10), (400, 120), (640, 128), (784, 128), (512, 512), (640, 8)]


def run(rounds: int) -> list:
    from numba import njit

    from rtinfer import kernels as K
    from rtinfer import kernels_gemm as G
    from rtinfer.plan import dense_packed

    @njit(cache=False)
    def loop_dot(x, Wt, b, y, n_in, n_out, reps):
        for _ in range(reps):
            K.dense_f32(x, 0, Wt, 0, b, 0, y, 0, n_in, n_out, 1)

    @njit(cache=False)
    def loop_wide(x, Wp, bp, y, n_in, n_out, reps):
        for _ in range(reps):
            G.dense_f32_wide(x, 0, Wp, 0, n_in, n_out, bp, 0, y, 0, 1, False)

    rng = np.random.default_rng(0)
    rows = []
    for n_in, n_out in SHAPES:
        W = rng.standard_normal((n_in, n_out)).astype(np.float32)
        b = rng.standard_normal(n_out).astype(np.float32)
        x = rng.standard_normal(n_in).astype(np.float32)
        Wt = np.ascontiguousarray(W.T).reshape(-1)
        Wp, _ = G.pack_f32(W)
        bp = G.pack_bias(b)
        ya, yb = np.zeros(n_out, np.float32), np.zeros(n_out, np.float32)
        reps = max(20, 400_000 // (n_in * n_out))
        loop_dot(x, Wt, b, ya, n_in, n_out, 1)
        loop_wide(x, Wp, bp, yb, n_in, n_out, 1)
        np.testing.assert_allclose(ya, yb, rtol=1e-4, atol=1e-4)
        ta, tb = [], []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            loop_dot(x, Wt, b, ya, n_in, n_out, reps)
            ta.append((time.perf_counter_ns() - t0) / reps)
            t0 = time.perf_counter_ns()
            loop_wide(x, Wp, bp, yb, n_in, n_out, reps)
            tb.append((time.perf_counter_ns() - t0) / reps)
        ratio = float(np.median(np.array(tb) / np.array(ta)))
        rows.append((n_in, n_out, float(np.median(ta)), float(np.median(tb)), ratio,
                     "wide" if dense_packed(n_out) else "dot"))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    print("| n_in x n_out | dot (W^T) ns | wide (packed) ns | wide / dot | planner |")
    print("|---|---|---|---|---|")
    for n_in, n_out, a, b, r, pick in run(args.rounds):
        print(f"| {n_in} x {n_out} | {a:.1f} | {b:.1f} | {r:.2f} | {pick} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
