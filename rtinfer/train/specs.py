"""Layers rebuilt from their JSON ``spec()``: checkpoints, and models given layer dicts.

    layer_from_spec({"type": "conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": [3, 3], ...})

Every layer type of ``layers``, ``conv`` and ``residual`` is listed in ``LAYER_TYPES``; a residual
block's spec nests its body and shortcut specs. Parameters are not part of a spec.
"""

from __future__ import annotations

from .conv import AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D, Flatten, GlobalAvgPool, MaxPool1D, MaxPool2D
from .layers import Activation, Dense
from .residual import Residual

POOLS = {"maxpool1d": MaxPool1D, "maxpool2d": MaxPool2D, "avgpool1d": AvgPool1D, "avgpool2d": AvgPool2D}
LAYER_TYPES = ("dense", "activation", "conv1d", "conv2d", *POOLS, "global_avgpool", "flatten", "batchnorm",
               "residual")
MAX_NESTING = 32  # residual blocks inside residual blocks; a hostile spec must not recurse forever


def layer_from_spec(spec: dict, _depth: int = 0):
    """A new layer (parameters zero / default) from ``layer.spec()``. Raises ValueError (unknown
    type, bad values) or KeyError / TypeError (missing or mistyped fields)."""
    if not isinstance(spec, dict):
        raise ValueError(f"a layer spec must be a dict; got {spec!r}")
    kind = spec.get("type")
    if kind == "dense":
        return Dense(int(spec["n_in"]), int(spec["n_out"]))
    if kind == "activation":
        name = spec["name"]
        return Activation(name, spec.get("alpha") if str(name).lower() in ("leaky_relu", "leakyrelu") else None)
    if kind in ("conv1d", "conv2d"):
        cls = Conv1D if kind == "conv1d" else Conv2D
        return cls(spec["in_channels"], spec["out_channels"], spec["kernel_size"], spec["stride"],
                   [tuple(p) for p in spec["padding"]], spec["dilation"], spec["groups"])
    if kind in POOLS:
        extra = {"count_include_pad": bool(spec["count_include_pad"])} if kind.startswith("avg") else {}
        return POOLS[kind](spec["kernel_size"], spec["stride"], [tuple(p) for p in spec["padding"]], **extra)
    if kind == "global_avgpool":
        return GlobalAvgPool()
    if kind == "flatten":
        return Flatten()
    if kind == "batchnorm":
        return BatchNorm(spec["num_features"], spec["eps"], spec["momentum"])
    if kind == "residual":
        if _depth >= MAX_NESTING:
            raise ValueError(f"residual blocks nested deeper than {MAX_NESTING}")
        body = spec["body"]
        if not isinstance(body, list):
            raise ValueError(f"residual body must be a list of layer specs; got {body!r}")
        shortcut = spec.get("shortcut")
        return Residual([layer_from_spec(s, _depth + 1) for s in body],
                        None if shortcut is None else layer_from_spec(shortcut, _depth + 1))
    raise ValueError(f"unknown type {kind!r} (known layer types: {', '.join(LAYER_TYPES)})")
