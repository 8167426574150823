"""One convolution layer at a time: the benchmark CNNs' conv layers, timed per sample.

    python bench/bench_layers.py                                  # every layer, both dtypes
    python bench/bench_layers.py --layers dscnn_dw lenet5_conv1 --dtypes int8 --rounds 9
    python bench/bench_layers.py --old /path/to/old/checkout      # before/after, one process
    python bench/bench_layers.py --weights full                   # int8 weights over the full range

Each layer's kernel (kernels_conv.conv_f32 / qconv_i8, the path the planner picks on this
machine) runs on one sample, called from a compiled loop so the sample, weights, scratch and
output stay where an in-loop sample keeps them (cache-resident); no dispatch, no clock read per
call. Reported: the median over rounds of the time per call, GMAC/s, and the kernel path. With
--old, the other checkout's package is copied under another name (as bench/bench_ab.py does) and
the two are timed in alternating rounds in this process; the ratio is the median of the
per-round new/old ratios (below 1: new is faster). Use it to find which layer of a model is far
from the machine's peak, and to see a kernel change on that layer alone.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (input shape (C, H, W), out channels, group, kernel, stride, dilation, pads ((top, bottom), (left, right)))
LAYERS = {
    "cnn1d_conv0": ((1, 1, 128), 16, 1, (1, 7), (1, 1), (1, 1), ((0, 0), (3, 3))),
    "cnn1d_conv1": ((16, 1, 64), 32, 1, (1, 5), (1, 1), (1, 1), ((0, 0), (2, 2))),
    "cnn1d_dw": ((32, 1, 32), 32, 32, (1, 3), (1, 1), (1, 1), ((0, 0), (1, 1))),
    "cnn1d_pw": ((32, 1, 32), 32, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),
    "dscnn_conv0": ((1, 49, 10), 64, 1, (10, 4), (2, 2), (1, 1), ((4, 5), (1, 2))),
    "dscnn_dw": ((64, 25, 5), 64, 64, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    "dscnn_pw": ((64, 25, 5), 64, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),
    "lenet5_conv0": ((1, 28, 28), 6, 1, (5, 5), (1, 1), (1, 1), ((2, 2), (2, 2))),
    "lenet5_conv1": ((6, 14, 14), 16, 1, (5, 5), (1, 1), (1, 1), ((0, 0), (0, 0))),
    "resnet8_conv0": ((3, 32, 32), 16, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    "resnet8_conv16": ((16, 32, 32), 16, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    "resnet8_conv32s2": ((16, 32, 32), 32, 1, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),
    "resnet8_conv32": ((32, 16, 16), 32, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    "resnet8_conv64": ((64, 8, 8), 64, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    "resnet8_conv64s2": ((32, 16, 16), 64, 1, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),
}


class LayerRunner:
    """One layer on one package (``pkg``: rtinfer or a renamed copy): call(n) runs it n times."""

    def __init__(self, pkg: str, key: str, dtype: str, wmax: int = 63):
        import numba
        KC = importlib.import_module(f"{pkg}.kernels_conv")
        rc = importlib.import_module(f"{pkg}.reference_conv")
        shape, o, group, kernel, stride, dil, pads = LAYERS[key]
        in_shape = shape if shape[1] != 1 else (shape[0], shape[2])
        geo = rc.make_geometry(in_shape, rc.geometry_attrs(kernel, stride, dil, pads))
        cg = geo.c // group
        self.macs = o * cg * geo.kh * geo.kw * geo.oh * geo.ow
        rng = np.random.default_rng(0)
        n_in, n_out = geo.c * geo.h * geo.w, o * geo.oh * geo.ow
        if dtype == "int8":
            x = rng.integers(-128, 128, n_in).astype(np.int8)
            W = rng.integers(-wmax, wmax + 1, o * cg * geo.kh * geo.kw).astype(np.int8)
            bias = rng.integers(-5000, 5000, o).astype(np.int32)
            M = rng.uniform(1e-3, 2e-2, o).astype(np.float32)
            lay = KC.conv_layout(geo, o, group, W, bias=bias, int8=True, x_zp=3, y_zp=-128, qmin=-128, qmax=127)
            cols, fs, y = np.zeros(lay.i8, np.int8), lay.scratch_f32(), np.zeros(n_out, np.int8)
            qconv = KC.qconv_i8

            @numba.njit
            def loop(n, x, W, bias, M, y, table, cols, fs):
                for _ in range(n):
                    qconv(x, 0, W, 0, bias, 0, M, 0, y, 0, table, 0, 1, 3, -128, -128, 127, cols, 0, fs, 0)
            self.args = (x, lay.W, bias, M, y, lay.table, cols, fs)
        else:
            x = rng.standard_normal(n_in).astype(np.float32)
            W = rng.standard_normal((o, cg, geo.kh, geo.kw)).astype(np.float32)
            b = rng.standard_normal(o).astype(np.float32)
            lay = KC.conv_layout(geo, o, group, W, bias=b)
            fs, y = lay.scratch_f32(), np.zeros(n_out, np.float32)
            conv = KC.conv_f32

            @numba.njit
            def loop(n, x, W, b, y, table, fs):
                for _ in range(n):
                    conv(x, 0, W, 0, b, 0, y, 0, table, 0, 1, fs, 0, 1, 0.0, 0.0)
            self.args = (x, lay.W, b, y, lay.table, fs)
        self.kernel = KC.kernel_name(lay.table, dtype == "int8")
        self.loop = loop
        loop(1, *self.args)  # compile

    def time_us(self, n: int) -> float:
        t = time.perf_counter_ns()
        self.loop(n, *self.args)
        return (time.perf_counter_ns() - t) / n / 1000.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", nargs="+", default=list(LAYERS), choices=list(LAYERS), metavar="KEY",
                    help="layer keys (default: all): " + " ".join(LAYERS))
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--ms", type=float, default=20.0, help="milliseconds per timed run (default 20)")
    ap.add_argument("--old", help="another checkout to compare with (its rtinfer package)")
    ap.add_argument("--weights", choices=["reduce_range", "full"], default="reduce_range",
                    help="int8 weights in [-63, 63] as the suite's models (frozen with reduce_range: the "
                         "uint8-quad kernels are exact for them on AVX2), or full range [-127, 127] (default "
                         "reduce_range)")
    args = ap.parse_args(argv)
    pkgs = ["rtinfer"]
    if args.old:
        sys.path.insert(0, HERE)
        from bench.bench_ab import copy_package
        tmp = tempfile.mkdtemp(prefix="rtinfer_layers_")
        copy_package(args.old, "rt_old", tmp)
        copy_package(HERE, "rt_new", tmp)
        sys.path.insert(0, tmp)
        pkgs = ["rt_old", "rt_new"]
    print(f"{'layer':<18} {'dtype':<5} " + "  ".join(f"{p + ' us':>10}" for p in pkgs)
          + ("   new/old" if args.old else "") + "   GMAC/s  kernel", flush=True)
    for key in args.layers:
        for dtype in args.dtypes:
            runners = [LayerRunner(p, key, dtype, 63 if args.weights == "reduce_range" else 127) for p in pkgs]
            n = max(10, int(args.ms * 1000 / max(runners[-1].time_us(50), 1e-3)))
            times = [[] for _ in runners]
            ratios = []
            for r in range(args.rounds):
                order = list(range(len(runners)))[::(1 if r % 2 == 0 else -1)]
                got = {}
                for i in order:
                    got[i] = runners[i].time_us(n)
                    times[i].append(got[i])
                if len(runners) == 2:
                    ratios.append(got[1] / got[0])
            med = [float(np.median(t)) for t in times]
            ratio = f"   {np.median(ratios):7.3f}" if ratios else ""
            print(f"{key:<18} {dtype:<5} " + "  ".join(f"{m:10.3f}" for m in med) + ratio
                  + f"   {runners[-1].macs / med[-1] / 1e3:6.1f}  {runners[-1].kernel}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
