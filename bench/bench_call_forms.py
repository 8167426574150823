"""predict_one's cost per documented input form, side by side in one process.

    python bench/bench_call_forms.py              # 7 rounds of 2000 calls per form
    python bench/bench_call_forms.py --rounds 9 --calls 5000

Forms: a flat float32 sample ``(in_size,)``; the sample in its natural shape (``X_test[0]``); a
read-only one (``flags.writeable = False``, flat and shaped) and one from ``np.frombuffer`` (as
a read-only memory map gives it); each with and without ``out``. Models: the 16-32-4 MLP (the
smallest, where the call is the whole cost), a 16-32-4 MLP ending in ArgMax (int64 output, with
an int64 ``out``) and the 1-D sensor CNN (bench.suite_models). Forms are timed in turn within a
round (order rotated round by round); reported: the median over rounds of the per-call time
(best of 3 timeit repeats) and the median of the per-round difference from the flat form.
The issue's target: every form within 0.3 us of the flat one.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def models():
    import rtinfer
    from rtinfer._testmodels import fp32_mlp
    from bench.suite_models import build_cnn
    import export
    yield "16-32-4", rtinfer.load(fp32_mlp([16, 32, 4], head=None))
    yield "16-32-4 argmax (int64)", rtinfer.load(fp32_mlp([16, 32, 4], head="argmax"))
    yield "1-D sensor CNN", rtinfer.load(export.freeze(build_cnn("cnn1d"), dtype="float32"))


def forms(rt, x):
    flat = np.ascontiguousarray(x.reshape(-1))
    shaped = np.ascontiguousarray(x.reshape(rt.input_shape))
    ro_flat = flat.copy()
    ro_flat.flags.writeable = False
    ro_shaped = shaped.copy()
    ro_shaped.flags.writeable = False
    mapped = np.frombuffer(flat.tobytes(), np.float32)
    out = np.empty(rt.output_shape, rt.output_dtype)
    return {"flat": (flat,), "natural shape": (shaped,), "read-only flat": (ro_flat,),
            "read-only natural": (ro_shaped,), "np.frombuffer": (mapped,),
            "flat, out": (flat, out), "natural shape, out": (shaped, out), "read-only, out": (ro_shaped, out)}


def run(rounds: int, calls: int) -> None:
    for name, rt in models():
        x = np.random.default_rng(0).standard_normal(rt.in_size).astype(np.float32)
        fs = forms(rt, x)
        want = rt.predict_one(fs["flat"][0])
        for args in fs.values():  # every form gives the same answer
            assert np.array_equal(rt.predict_one(*args), want)
        keys = list(fs)
        per = {k: [] for k in keys}
        p1 = rt.predict_one
        for r in range(rounds):
            order = keys[r % len(keys):] + keys[:r % len(keys)]
            for k in order:
                a = fs[k]
                per[k].append(min(timeit.repeat(lambda: p1(*a), number=calls, repeat=3)) / calls * 1e6)
        flat, flat_out = np.array(per["flat"]), np.array(per["flat, out"])
        print(f"{name} (output {rt.output_dtype}, {rt.output_shape}): us per call, median of {rounds} rounds")
        for k in keys:
            t = np.array(per[k])
            base = flat_out if "out" in k else flat
            print(f"  {k:20s} {np.median(t):6.2f}   vs flat{', out' if 'out' in k else '     '} "
                  f"{np.median(t - base):+5.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000)
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.calls < 1:
        ap.error("--rounds and --calls must be >= 1")
    run(a.rounds, a.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
