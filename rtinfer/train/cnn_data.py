"""Synthetic, seeded signal data for CNN tests, examples and benchmarks (generated, never downloaded)."""

from __future__ import annotations

import numpy as np


def shifted_motifs(n: int, length: int = 64, seed: int = 0, noise: float = 0.3):
    """A 4-class time-series task a convolution solves and a dense layer struggles with.

    Each sequence (1, length) is Gaussian noise (std ``noise``) plus one 16-sample motif of its
    class (a sine period, a square wave, a windowed fast sine, a triangle) at a uniformly random
    position, scaled by a random amplitude in [0.5, 2] with a random sign.
    Returns X (n, 1, length) float64 and y (n,) int64 labels 0..3.
    """
    if length < 16:
        raise ValueError(f"length must be >= 16 (the motif length); got {length}")
    rng = np.random.default_rng(seed)
    t = np.arange(16)
    motifs = np.stack([np.sin(2 * np.pi * t / 16), np.sign(np.sin(2 * np.pi * t / 8)),
                       np.sin(2 * np.pi * t / 5) * np.hanning(16), np.abs(t - 8) / 4.0 - 1.0])
    y = rng.integers(0, 4, n)
    X = rng.normal(0.0, noise, (n, 1, length))
    pos = rng.integers(0, length - 16 + 1, n)
    amp = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    for i in range(n):
        X[i, 0, pos[i]:pos[i] + 16] += amp[i] * motifs[y[i]]
    return X, y.astype(np.int64)
