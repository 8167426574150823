"""Fuzz the training-checkpoint reader: mutated checkpoints must end in CheckpointError.

    python fuzz/fuzz_checkpoint.py --n 20000

Each case (a pure function of seed and index) starts from a small valid checkpoint (an MLP
classifier with a standardizer and a training history) and mutates its architecture JSON
(values replaced by None, negative/huge ints, NaN, strings, lists, dicts; keys deleted or
added) and/or its arrays (empty, wrong shape, strings, NaN, float32), or the file's bytes
(bit flips, truncation). Outcomes: ``rejected`` (CheckpointError), ``loaded`` (then predict
must work or raise a ValueError), or a failure (any other exception, or a traced peak above
MEM_FACTOR * file size + MEM_SLACK).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import random
import sys
import tempfile
import tracemalloc
import zipfile

import numpy as np

MEM_FACTOR = 16
MEM_SLACK = 8 * 1024 * 1024
VALUES = (None, -1, 0, 1, 2.5, 1e308, "x", "", [], [1], {}, {"a": 1}, True, 10 ** 12, 10 ** 9, float("nan"))

_BASE = None


def base():
    """(arrays dict, architecture dict, X) of a small fitted MLP checkpoint."""
    global _BASE
    if _BASE is None:
        from rtinfer.train import MLP
        rng = np.random.default_rng(0)
        X = rng.standard_normal((20, 4))
        m = MLP([4, 3, 2], output="softmax", preprocess="standardize")
        m.fit(X, np.arange(20) % 2, epochs=2, verbose=False)
        with tempfile.TemporaryDirectory() as d:
            m.save(os.path.join(d, "m.npz"))
            with np.load(os.path.join(d, "m.npz"), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        arch = json.loads(arrays["architecture"].tobytes())
        if isinstance(arch.get("history"), dict):  # wall-clock timings would vary run to run
            arch["history"]["epoch_seconds"] = [0.001] * len(arch["history"]["epoch_seconds"])
        arrays["architecture"] = np.frombuffer(json.dumps(arch).encode(), np.uint8)
        _BASE = (arrays, arch, X)
    return _BASE


def _mutate(rnd, obj):
    if isinstance(obj, dict) and obj:
        k = rnd.choice(list(obj))
        r = rnd.random()
        if r < 0.3:
            obj[k] = copy.deepcopy(rnd.choice(VALUES))
        elif r < 0.4:
            del obj[k]
        elif r < 0.5:
            obj["zz"] = copy.deepcopy(rnd.choice(VALUES))
        else:
            _mutate(rnd, obj[k])
    elif isinstance(obj, list) and obj:
        i = rnd.randrange(len(obj))
        if rnd.random() < 0.4:
            obj[i] = copy.deepcopy(rnd.choice(VALUES))
        else:
            _mutate(rnd, obj[i])


def _npz_bytes(arrays: dict) -> bytes:
    """An .npz as np.savez writes it, with a fixed timestamp (np.savez stamps the current time,
    which would make the cases differ from run to run)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(2020, 1, 1, 0, 0, 0))
            with z.open(info, "w") as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def case(seed: int, index: int) -> tuple[str, bytes]:
    rnd = random.Random(f"ckpt:{seed}:{index}")
    arrays, arch, _ = base()
    arrs = dict(arrays)
    family = rnd.choice(("json", "json", "arrays", "both", "bytes"))
    if family in ("json", "both"):
        a = json.loads(json.dumps(arch))
        for _ in range(rnd.randint(1, 3)):
            _mutate(rnd, a)
        arrs["architecture"] = np.frombuffer(json.dumps(a).encode(), np.uint8)
    if family in ("arrays", "both"):
        k = rnd.choice(sorted(arrs))
        v = arrs[k]
        arrs[k] = rnd.choice((np.zeros(0), np.zeros((2, 2)), np.array(["s"]), np.full(v.shape, np.nan),
                              v.astype(np.float32), v.reshape(-1)[:-1] if v.size else v, np.int64(3)))
        if rnd.random() < 0.2:
            del arrs[rnd.choice(sorted(arrs))]
    data = _npz_bytes(arrs)
    if family == "bytes":
        b = bytearray(data)
        if rnd.random() < 0.5:
            for bit in rnd.sample(range(8 * len(b)), rnd.randint(1, 8)):
                b[bit // 8] ^= 1 << (bit % 8)
        else:
            b = b[:rnd.randrange(len(b))]
        data = bytes(b)
    return family, data


def run_range(seed: int, start: int, stop: int) -> dict:
    from rtinfer.train import CheckpointError, load_model
    X = base()[2]
    counts: dict[str, dict[str, int]] = {}
    failures = []
    max_peak = 0
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.npz")
        tracemalloc.start()
        for i in range(start, stop):
            family, data = case(seed, i)
            with open(path, "wb") as f:
                f.write(data)
            tracemalloc.reset_peak()
            base_mem, _ = tracemalloc.get_traced_memory()
            try:
                model = load_model(path)
                outcome = "loaded"
                try:
                    model.predict(X)
                except ValueError:
                    pass
            except CheckpointError:
                outcome = "rejected"
            except Exception as exc:  # noqa: BLE001
                outcome = f"error:{type(exc).__name__}: {str(exc)[:200]}"
            peak = tracemalloc.get_traced_memory()[1] - base_mem
            max_peak = max(max_peak, peak)
            if not outcome.startswith("error") and peak > MEM_FACTOR * len(data) + MEM_SLACK:
                outcome = f"error:memory: traced peak {peak} B for a {len(data)} B file"
            key = "error" if outcome.startswith("error") else outcome
            counts.setdefault(family, {}).setdefault(key, 0)
            counts[family][key] += 1
            if key == "error":
                failures.append({"index": i, "family": family, "outcome": outcome})
        tracemalloc.stop()
    return {"counts": counts, "failures": failures[:50], "n_failures": len(failures), "max_peak": max_peak}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    res = run_range(args.seed, 0, args.n)
    res["cases"] = args.n
    print(json.dumps(res, indent=2))
    return 1 if res["n_failures"] else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
