"""Index tables of the GATHER op (rtinfer.ops) for the ONNX importer's data-movement and window
families (export.onnx_gather, export.onnx_window). NumPy only, below both families.

Every table is computed on an ``arange`` of the input's flat positions: apply the ONNX op to it
and the result says, for each output element, which input element it copies (-1: a fill value).
"""

from __future__ import annotations

import math

import numpy as np

from .onnx_common import MAX_EXPANDED_ELEMENTS


def positions(shape) -> np.ndarray:
    """int64 flat positions of a tensor of ``shape``."""
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def transpose(shape, perm) -> np.ndarray:
    return np.transpose(positions(shape), perm)


def is_identity(table: np.ndarray) -> bool:
    t = np.asarray(table).reshape(-1)
    return bool(np.array_equal(t, np.arange(t.size)))


def pad(shape, pads_begin, pads_end, mode: str) -> np.ndarray:
    """ONNX Pad of a tensor of ``shape``: constant (-1 marks the fill), reflect or edge. Negative
    pads crop."""
    idx = positions(shape)
    crop = tuple(slice(max(-b, 0), n - max(-e, 0)) for n, b, e in zip(shape, pads_begin, pads_end))
    idx = idx[crop]
    width = [(max(b, 0), max(e, 0)) for b, e in zip(pads_begin, pads_end)]
    if mode == "constant":
        return np.pad(idx, width, mode="constant", constant_values=-1)
    if mode == "reflect":
        return np.pad(idx, width, mode="reflect")
    if mode == "edge":
        return np.pad(idx, width, mode="edge")
    if mode == "wrap":
        return np.pad(idx, width, mode="wrap")
    raise ValueError(f"Pad mode {mode!r}")


def window_taps(in_sp, out_sp, kernel, strides, dilations, pads_begin) -> np.ndarray:
    """(P_out, K) int64: for each output position and kernel tap of an N-D window, the input's
    flat spatial position, or -1 in the padding."""
    nd = len(in_sp)
    out_grid = np.stack(np.meshgrid(*[np.arange(n) for n in out_sp], indexing="ij"), -1).reshape(-1, nd)
    k_grid = np.stack(np.meshgrid(*[np.arange(k) for k in kernel], indexing="ij"), -1).reshape(-1, nd)
    pos = out_grid[:, None, :] * np.asarray(strides) + k_grid[None, :, :] * np.asarray(dilations) \
        - np.asarray(pads_begin)
    inside = np.all((pos >= 0) & (pos < np.asarray(in_sp)), axis=-1)
    flat = np.ravel_multi_index(tuple(np.clip(pos, 0, np.asarray(in_sp) - 1)[..., d] for d in range(nd)), in_sp)
    return np.where(inside, flat, -1)


def transposed_taps(in_sp, out_sp, kernel, strides, dilations, pads_begin) -> np.ndarray:
    """(P_out, K) int64 for ConvTranspose: output position p takes input q through tap k where
    p = q * stride + k * dilation - pad_begin (per axis), else -1."""
    nd = len(in_sp)
    out_grid = np.stack(np.meshgrid(*[np.arange(n) for n in out_sp], indexing="ij"), -1).reshape(-1, nd)
    k_grid = np.stack(np.meshgrid(*[np.arange(k) for k in kernel], indexing="ij"), -1).reshape(-1, nd)
    num = out_grid[:, None, :] + np.asarray(pads_begin) - k_grid[None, :, :] * np.asarray(dilations)
    s = np.asarray(strides)
    q = num // s
    ok = np.all((num % s == 0) & (q >= 0) & (q < np.asarray(in_sp)), axis=-1)
    flat = np.ravel_multi_index(tuple(np.clip(q, 0, np.asarray(in_sp) - 1)[..., d] for d in range(nd)), in_sp)
    return np.where(ok, flat, -1)


def check_size(n: int, what: str):
    """Raise ValueError when a table or expanded tensor would exceed MAX_EXPANDED_ELEMENTS."""
    if n > MAX_EXPANDED_ELEMENTS:
        raise ValueError(f"{what} needs {n} elements, above the limit {MAX_EXPANDED_ELEMENTS}")
