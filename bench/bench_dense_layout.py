"""One sample through one DENSE / QDENSE layer: the two kernels the planner chooses between.

    python bench/bench_dense_layout.py [--rounds 15] [--int8]

kernels.dense_f32 (W transposed, four dot products at a time, each ending in a horizontal sum)
against kernels_gemm.dense_f32_wide (W packed in blocks of 16 outputs, x[k] broadcast into up
to 8 FMA chains, no horizontal sums), on the layer shapes of the benchmark models and a few
more. Each kernel runs in a compiled loop over the same sample (weights warm in cache), the two
alternated round by round; the table gives the median ns per call and their ratio. The planner
packs a layer from plan.DENSE_WIDE_MIN_OUT outputs up (rtinfer.plan.dense_packed): the column
"planner" says which one it picks.

With --int8: kernels.qdense_i8 (W transposed, eight rows of vpmaddwd dot products, a reduction
tree) against kernels_gemm.qdense_u8_wide (W in u8 x s8 quads, vpmaddubsw, no reductions), on
reduce-range weights ([-63, 63], which u8s8_exact accepts); the planner packs a QDENSE from
plan.QDENSE_WIDE_MIN_OUT outputs up when its weights are exact and the CPU has AVX2.

With --pairs: the same on full-range weights ([-128, 127], which vpmaddubsw could saturate on
AVX2 without VNNI) against kernels_gemm.qdense_s16_wide (W in int16 pairs, vpmaddwd); the
planner takes the pairs there while they fit plan.QDENSE_PAIRS_MAX_BYTES (plan.qdense_pairs).
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


def _side_by_side(fa, fb, rounds: int, reps: int) -> tuple:
    """(median ns per call of fa, of fb, median of the per-round ratios fb / fa): fa() and fb()
    each make reps calls, alternated round by round."""
    ta, tb = [], []
    for _ in range(rounds):
        for f, t in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter_ns()
            f()
            t.append((time.perf_counter_ns() - t0) / reps)
    return float(np.median(ta)), float(np.median(tb)), float(np.median(np.array(tb) / np.array(ta)))


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
        ta, tb, ratio = _side_by_side(lambda: loop_dot(x, Wt, b, ya, n_in, n_out, reps),
                                      lambda: loop_wide(x, Wp, bp, yb, n_in, n_out, reps), rounds, reps)
        rows.append((n_in, n_out, ta, tb, ratio, "wide" if dense_packed(n_out) else "dot"))
    return rows


def run_int8(rounds: int, pairs: bool = False) -> list:
    """pairs: full-range weights ([-128, 127], not u8s8_exact) on qdense_s16_wide (int16 pairs)
    instead of reduce-range ones on qdense_u8_wide."""
    from numba import njit

    from rtinfer import kernels as K
    from rtinfer import kernels_gemm as G
    from rtinfer.plan import QDENSE_WIDE_MIN_OUT, qdense_pairs

    @njit(cache=False)
    def loop_rows(buf, Wt, bias, M, n_in, n_out, reps):
        for _ in range(reps):
            K.qdense_i8(buf, 0, Wt, 0, bias, 0, M, 0, buf, n_in, n_in, n_out, 1, 0, -128, 127)

    @njit(cache=False)
    def loop_wide(buf, Wp, bias2, M, n_in, n_out, reps):
        for _ in range(reps):
            G.qdense_u8_wide(buf, 0, Wp, 0, n_in, n_out, bias2, 0, M, 0, n_in, 1, 0, -128, 127)

    @njit(cache=False)
    def loop_pairs(buf, Wp, bias, M, n_in, n_out, reps):
        for _ in range(reps):
            G.qdense_s16_wide(buf, 0, Wp, 0, n_in, n_out, bias, 0, M, 0, n_in, 1, 0, -128, 127)

    if pairs:
        loop_wide = loop_pairs  # noqa: F811 (the kernel under test)
    rng = np.random.default_rng(0)
    rows = []
    for n_in, n_out in SHAPES:
        W = rng.integers(-128, 128, (n_in, n_out)).astype(np.int8) if pairs else \
            rng.integers(-63, 64, (n_in, n_out)).astype(np.int8)
        bias = rng.integers(-5000, 5000, n_out).astype(np.int32)
        M = (rng.random(n_out) * 0.01).astype(np.float32)
        Wt = np.ascontiguousarray(W.T).reshape(-1)
        Wp, _, nblk = G.pack_weights(W)
        pad = 16 * nblk - n_out
        bias2 = np.concatenate([bias - 128 * W.astype(np.int64).sum(0), np.zeros(pad)]).astype(np.int32)
        if pairs:
            Wp, bias2 = G.pack_pairs(W), np.concatenate([bias, np.zeros(pad)]).astype(np.int32)
        Mp = np.concatenate([M, np.zeros(pad, np.float32)])
        buf = rng.integers(-128, 128, n_in + n_out).astype(np.int8)
        reps = max(20, 400_000 // (n_in * n_out))
        a, b = buf.copy(), buf.copy()
        loop_rows(a, Wt, bias, M, n_in, n_out, 1)
        loop_wide(b, Wp, bias2, Mp, n_in, n_out, 1)
        assert np.array_equal(a, b)
        ta, tb, ratio = _side_by_side(lambda: loop_rows(a, Wt, bias, M, n_in, n_out, reps),
                                      lambda: loop_wide(b, Wp, bias2, Mp, n_in, n_out, reps), rounds, reps)
        pick = "wide" if (qdense_pairs(W) if pairs else n_out >= QDENSE_WIDE_MIN_OUT and G.available()) else "rows"
        rows.append((n_in, n_out, ta, tb, ratio, pick))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--int8", action="store_true", help="QDENSE: kernels.qdense_i8 vs kernels_gemm.qdense_u8_wide")
    ap.add_argument("--pairs", action="store_true",
                    help="QDENSE, full-range weights: kernels.qdense_i8 vs kernels_gemm.qdense_s16_wide")
    args = ap.parse_args(argv)
    if args.pairs:
        print("| n_in x n_out | rows (W^T, vpmaddwd) ns | wide (int16 pairs) ns | wide / rows | planner |")
        rows = run_int8(args.rounds, pairs=True)
    elif args.int8:
        print("| n_in x n_out | rows (W^T, vpmaddwd) ns | wide (u8 quads) ns | wide / rows | planner |")
        rows = run_int8(args.rounds)
    else:
        print("| n_in x n_out | dot (W^T) ns | wide (packed) ns | wide / dot | planner |")
        rows = run(args.rounds)
    print("|---|---|---|---|---|")
    for n_in, n_out, a, b, r, pick in rows:
        print(f"| {n_in} x {n_out} | {a:.1f} | {b:.1f} | {r:.2f} | {pick} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
