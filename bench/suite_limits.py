"""Hardware limits that every latency is compared with, measured on this machine.

    info = machine_info()                       # CPU model, cores, caches, flags, versions
    peaks = measure_peaks(quick=False)          # fp32 FMA peak (njit loop, sgemm), int8 MAC rate
    st = stream_ns(rt)                          # median ns to read a Runtime's weights once
    lim = model_limit(rt, dtype, peaks, st)     # dict: stream_us, compute_us, limit_us, ...
    probe = ComputeProbe(dtype)                 # the peak's drift, sampled in the engines' round robin

Weight streaming: a read-only njit pass (integer sum, vectorized) over the weight section of the
Runtime's own plan image, the very bytes its kernels read, timed pass by pass inside compiled
code with clock_gettime(CLOCK_MONOTONIC) exactly like rtinfer's in-loop samples (the clock read
cost is in both); warm (the passes run back to back), median over passes; the faster of one
sequential stream and four concurrent ones (more memory-level parallelism beyond L2).

Compute: fp32 models at the measured FMA peak (2 flops per MAC); the peak is the best of an njit
loop of independent FMA chains (8-wide vectors, 16 chains), a single-threaded float32 sgemm and
rtinfer's own float32 conv tile (rtinfer.kernels_tile.cf32_tile6, 6 x 16 outputs, K = 128; on
AVX-512 targets cf32_wide6, 6 x 32, the tile the conv GEMM takes there) over
L1-resident operands: a model that ran faster than the two others allowed showed they can be
measured low (59 GFLOP/s in one run, against ResNet-8 computing at 59.2 in-loop).
int8 models at the best measured rate of int8 x int8 -> int32 dot products over L1-resident data,
four rows sharing each x load: a plain njit loop, and (on AVX2) a loop written in LLVM IR around
vpmaddwd (sign-extend to int16, multiply pairs into int32), the fastest exact instruction for full-
range int8 without VNNI; and the int8 convolution GEMM's own register tile (rtinfer.kernels_tile:
uint8 x int8 quads through vpdpbusd on VNNI, vpmaddubsw + vpmaddwd on AVX2, exact for the 7-bit
weights the int8 benchmark models have; 6 x 16 outputs, on WIDE_I8 targets u8_wide6, 6 x 32 in
zmm rows, the tile the conv GEMM takes there) over L1-resident operands. The int8 peak is the best
of these.
"""

from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from rtinfer.jitcache import KERNEL_SOURCES, make_jit
from rtinfer.kernels_tile import WIDE_F32, WIDE_I8, kernel_path_name, target_features
from rtinfer.kernels_tile import cf32_tile6 as _cf32_tile
from rtinfer.kernels_tile import cf32_wide6 as _cf32_wide
from rtinfer.kernels_tile import u8_tile6 as _u8_tile
from rtinfer.kernels_tile import u8_wide6 as _u8_wide

# The probes inline rtinfer's kernel tiles: their on-disk cache is stamped with the kernel sources
# (rtinfer.jitcache), so a changed kernel recompiles them (Numba's cache=True keys on this file
# only: a stale entry would run the old tile, or fail to load a renamed helper).
_jit = make_jit(KERNEL_SOURCES + (os.path.abspath(__file__),))  # an absolute name: this file

_clock_gettime = types.ExternalFunction("clock_gettime", types.int32(types.int32, types.intp))
_CLOCK_MONOTONIC = 1


@_jit
def _now(ts):
    _clock_gettime(_CLOCK_MONOTONIC, ts.ctypes.data)
    return ts[0] * 1000000000 + ts[1]


@_jit
def _stream_passes(words, times, ts):
    """times[r] = ns of one read of every int64 word of `words`; returns a checksum."""
    total = np.int64(0)
    for r in range(times.size):
        t0 = _now(ts)
        s0 = np.int64(0)
        for k in range(words.size):
            s0 += words[k]
        t1 = _now(ts)
        times[r] = t1 - t0
        total += s0
    return total


@_jit
def _stream_passes_4way(words, times, ts):
    """As _stream_passes, reading the four quarters of `words` side by side (four concurrent
    sequential streams, like a kernel that walks four weight rows at once)."""
    q = words.size // 4
    total = np.int64(0)
    for r in range(times.size):
        t0 = _now(ts)
        s0 = np.int64(0)
        s1 = np.int64(0)
        s2 = np.int64(0)
        s3 = np.int64(0)
        for k in range(q):
            s0 += words[k]
            s1 += words[q + k]
            s2 += words[2 * q + k]
            s3 += words[3 * q + k]
        for k in range(4 * q, words.size):
            s0 += words[k]
        t1 = _now(ts)
        times[r] = t1 - t0
        total += s0 + s1 + s2 + s3
    return total


@_jit(fastmath={"contract"})
def _fma_chains(iters, acc, a, b):
    """acc (128,) float32: 16 independent 8-wide FMA chains, iters steps; 2 * 128 * iters flops."""
    for _ in range(iters):
        for k in range(128):
            acc[k] = acc[k] * a + b
    s = np.float32(0.0)
    for k in range(128):
        s += acc[k]
    return s


@_jit
def _i8_dots(iters, W, x):
    """W (rows, n) int8 (rows a multiple of 4) and x (n,) int8 in L1: iters sweeps of int32 dot
    products, four rows sharing each load of x, written as plain loops (what Numba's vectorizer
    makes of them: 32-bit multiplies)."""
    rows, n = W.shape
    total = np.int64(0)
    for _ in range(iters):
        for j in range(0, rows, 4):
            a0 = np.int32(0)
            a1 = np.int32(0)
            a2 = np.int32(0)
            a3 = np.int32(0)
            w0 = W[j]
            w1 = W[j + 1]
            w2 = W[j + 2]
            w3 = W[j + 3]
            for i in range(n):
                xi = np.int32(x[i])
                a0 = np.int32(a0 + xi * np.int32(w0[i]))
                a1 = np.int32(a1 + xi * np.int32(w1[i]))
                a2 = np.int32(a2 + xi * np.int32(w2[i]))
                a3 = np.int32(a3 + xi * np.int32(w3[i]))
            total += a0 + a1 + a2 + a3
    return total


@intrinsic
def _pmaddwd_dot4(typingctx, x, w, wo, stride, nblk):
    """Four int8 dot products sharing x over 16 * nblk elements, with the AVX2 instruction
    vpmaddwd (llvm.x86.avx2.pmadd.wd): each 16-byte block is sign-extended to 16 x i16 and
    multiplied pairwise into 8 x i32 partial sums. Returns the int32 sum of the four dots."""
    sig = types.int32(x, w, wo, stride, nblk)

    def codegen(context, builder, signature, args):
        xv, wv, woff, stride_v, n = args
        xarr = context.make_array(signature.args[0])(context, builder, xv)
        warr = context.make_array(signature.args[1])(context, builder, wv)
        v16i8 = ir.VectorType(ir.IntType(8), 16)
        v16i16 = ir.VectorType(ir.IntType(16), 16)
        v8i32 = ir.VectorType(ir.IntType(32), 8)
        pmadd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v8i32, [v16i16, v16i16]),
                                               "llvm.x86.avx2.pmadd.wd")
        rows = [builder.gep(warr.data, [builder.add(woff, builder.mul(stride_v, ir.Constant(stride_v.type, r)))])
                for r in range(4)]
        accs = [cgutils.alloca_once_value(builder, ir.Constant(v8i32, [0] * 8)) for _ in range(4)]
        with cgutils.for_range(builder, n) as loop:
            off = builder.mul(loop.index, ir.Constant(loop.index.type, 16))
            xa = builder.sext(builder.load(builder.bitcast(builder.gep(xarr.data, [off]), v16i8.as_pointer()),
                                           align=1), v16i16)
            for r in range(4):
                wb = builder.sext(builder.load(builder.bitcast(builder.gep(rows[r], [off]), v16i8.as_pointer()),
                                               align=1), v16i16)
                builder.store(builder.add(builder.load(accs[r]), builder.call(pmadd, [xa, wb])), accs[r])
        v = builder.add(builder.add(builder.load(accs[0]), builder.load(accs[1])),
                        builder.add(builder.load(accs[2]), builder.load(accs[3])))
        total = builder.extract_element(v, ir.Constant(ir.IntType(32), 0))
        for k in range(1, 8):
            total = builder.add(total, builder.extract_element(v, ir.Constant(ir.IntType(32), k)))
        return total

    return sig, codegen


@_jit
def _i8_dots_pmaddwd(iters, W, x):
    """As _i8_dots (W flat (rows * n,), n a multiple of 16), through _pmaddwd_dot4."""
    n = x.size
    rows = W.size // n
    total = np.int64(0)
    for _ in range(iters):
        for j in range(0, rows, 4):
            total += _pmaddwd_dot4(x, W, j * n, n, n // 16)
    return total


@_jit
def _u8_tile_passes(iters, A, B, D, bias, M):
    """iters x 8 calls of the 6 x 16 uint8 x int8 conv tile over K = 4 * 32: 8 * 6 * 16 * 128 MACs
    per pass; A (32 * 6,) int32 packed weights, B (32 * 16,) int32 packed activations."""
    for _ in range(iters):
        for blk in range(8):
            _u8_tile(A, 0, B, 0, 16, 32, D, 0, 16, bias, 0, M, 0, 0, -128, 127, 6, 16)


@_jit
def _u8_wide_passes(iters, A, B, D, bias, M):
    """As _u8_tile_passes with the 6 x 32 tile (WIDE_I8 targets, kernels_tile.u8_wide6): iters x 4
    calls, the same MACs per pass; B (32 * 32,) int32."""
    for _ in range(iters):
        for blk in range(4):
            _u8_wide(A, 0, B, 0, 32, 32, D, 0, 32, bias, 0, M, 0, 0, -128, 127, 6, 32)


def _u8_passes():
    return _u8_wide_passes if WIDE_I8 else _u8_tile_passes


@_jit
def _f32_tile_passes(iters, A, B, RT, D, bias):
    """iters x 8 calls of the 6 x 16 float32 conv tile over K = 128 (L1-resident operands): 8 * 6 *
    16 * 128 MACs per pass. A (128 * 6,) packed weights, B (128 * 16,) rows at RT[k] = 16 k."""
    for _ in range(iters):
        for blk in range(8):
            _cf32_tile(A, 0, B, 0, RT, 0, 128, D, 0, 16, bias, 0, 0, 6, 16)


@_jit
def _f32_wide_passes(iters, A, B, RT, D, bias):
    """As _f32_tile_passes with the 6 x 32 tile (AVX-512 targets, kernels_tile.WIDE_F32): iters x
    4 calls, the same MACs per pass. B (128 * 32,) rows at RT[k] = 32 k."""
    for _ in range(iters):
        for blk in range(4):
            _cf32_wide(A, 0, B, 0, RT, 0, 128, D, 0, 32, bias, 0, 0, 6, 32)


def _f32_tile_operands():
    """The fp32 tile passes and their operands: the 32-column tile where the conv GEMM takes it."""
    cols = 32 if WIDE_F32 else 16
    rng = np.random.default_rng(4)
    A = rng.uniform(-1, 1, 128 * 6).astype(np.float32)
    B = rng.uniform(-1, 1, 128 * cols).astype(np.float32)
    return A, B, (np.arange(128) * cols).astype(np.int32), np.zeros(6 * cols, np.float32), np.zeros(6, np.float32)


def _f32_passes():
    return _f32_wide_passes if WIDE_F32 else _f32_tile_passes


def _u8_tile_operands():
    """_u8_passes()' operands: A (32 * 6,) packed 7-bit weights (the tile is exact on them), B (32 *
    cols,) packed activations, D, bias, M; cols 32 where the conv GEMM takes the 32-column tile."""
    cols = 32 if WIDE_I8 else 16
    rng = np.random.default_rng(2)
    A = rng.integers(-2 ** 31, 2 ** 31, size=32 * 6, dtype=np.int64).astype(np.int32)
    A = (A.view(np.int8).reshape(-1) // 2).view(np.int32)
    B = rng.integers(-2 ** 31, 2 ** 31, size=32 * cols, dtype=np.int64).astype(np.int32)
    return A, B, np.zeros(6 * cols, np.int8), np.zeros(6, np.int32), np.full(6, 1e-4, np.float32)


@_jit
def _timed_passes(passes, iters, args, times, ts):
    """times[r] = ns of one passes(iters, *args) call (a tile-pass function above), timed in
    compiled code like an in-loop sample."""
    for r in range(times.size):
        t0 = _now(ts)
        passes(iters, *args)
        times[r] = _now(ts) - t0


class ComputeProbe:
    """The compute peak's drift, as a pseudo-engine for the round-robin latency loop (as
    StreamProbe for the weight stream): time_samples(X, warmup) returns len(X) pass times (ns) of
    rtinfer's own register tile (fp32: the float32 conv tile; int8: the uint8 x int8 tile, portable
    IR where the target lacks AVX2) on L1-resident operands, each pass a fixed amount of work of
    about 5 us. On a shared machine the rate moves by up to 2x within minutes; a peak measured
    once at the start of a run would judge every model against the speed of that moment.
    model_limit scales the run's peak by (median pass at peak time: the fastest of a few) /
    (median pass in the model's own round robin)."""
    kind = "in-loop"

    def __init__(self, dtype: str):
        self.name = f"compute peak {dtype} (limit)"
        self.ts = np.zeros(2, dtype=np.int64)
        passes, iters, args = ((_f32_passes(), 2, _f32_tile_operands()) if dtype == "fp32"
                               else (_u8_passes(), 6, _u8_tile_operands()))
        self._run = lambda times: _timed_passes(passes, iters, args, times, self.ts)

    def time_samples(self, X, warmup):
        if warmup:
            self._run(np.zeros(min(warmup, 50), dtype=np.int64))
        times = np.zeros(len(X), dtype=np.int64)
        self._run(times)
        return times

    def median_ns(self, passes: int = 400) -> float:
        """Median of ``passes`` timed passes (the first tenth dropped), measured now."""
        times = np.zeros(passes, dtype=np.int64)
        self._run(times)
        return float(np.median(times[passes // 10:]))


def _read(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _size_bytes(text: str) -> int:
    text = text.strip().upper()
    if not text:
        return 0
    mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1], 1)
    return int(float(text.rstrip("KMG")) * mult)


def cache_sizes() -> dict:
    """{"L1d": bytes, "L2": bytes, "L3": bytes} of cpu0 from sysfs (0 when unknown)."""
    out = {"L1d": 0, "L2": 0, "L3": 0}
    base = "/sys/devices/system/cpu/cpu0/cache"
    if os.path.isdir(base):
        for entry in sorted(os.listdir(base)):
            d = os.path.join(base, entry)
            level, kind = _read(os.path.join(d, "level")), _read(os.path.join(d, "type"))
            size = _size_bytes(_read(os.path.join(d, "size")))
            if level == "1" and kind == "Data":
                out["L1d"] = size
            elif level == "2":
                out["L2"] = size
            elif level == "3":
                out["L3"] = size
    return out


def _version(module: str) -> str:
    try:
        mod = __import__(module)
    except ImportError:
        return "not installed"
    v = getattr(mod, "__version__", None)
    if v is None and hasattr(mod, "version"):
        try:
            v = mod.version()
        except Exception:  # noqa: BLE001 - a version string is informational only
            v = None
    return str(v or "unknown")


def machine_info_flags() -> set:
    """The CPU feature flags of /proc/cpuinfo (empty when unknown)."""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def machine_info() -> dict:
    model = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    flags = machine_info_flags()
    caches = cache_sizes()
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "cpu": model or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        # the CPU's features, and the int8 kernel path rtinfer compiled for (kernels_tile)
        "isa": " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags)
               + f"; VNNI: {'yes' if {'avx512_vnni', 'avx_vnni'} & flags else 'no'}; rtinfer int8 kernel path: "
               + kernel_path_name(),
        "kernel_path": kernel_path_name(),
        "L1d": caches["L1d"], "L2": caches["L2"], "L3": caches["L3"],
        "loadavg_start": [round(v, 2) for v in load],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {m: _version(m) for m in ("numpy", "numba", "onnx", "onnxruntime", "torch", "tract", "sklearn")},
    }


def weight_region(rt) -> tuple[int, int]:
    """(byte offset, byte length) in rt's plan image from the first float parameter to the end of
    the last tensor any program row reads: every weight, bias, scale and table, plus the alignment
    padding between them (at most 63 bytes per tensor; for convolutions also their scratch where it
    lies between tensors)."""
    from rtinfer.ops import Op
    from rtinfer.plan import (C_I0, C_NIN, C_OP, C_T0, C_T1, C_T2, H_N_OPS, H_NCOLS, H_PROG, dense_sizes,
                              qdense_sizes)
    h = rt._state.view(np.int64)
    o_prog = int(h[H_PROG]) * 8
    start = (o_prog + int(h[H_N_OPS]) * int(h[H_NCOLS]) * 8 + 63) // 64 * 64
    end = start
    for row in rt.plan.program:
        op, n_in = int(row[C_OP]), int(row[C_NIN])
        if op == Op.DENSE:     # W and b f32 (either layout, plan.dense_sizes): f32 element offsets
            nw, nb = dense_sizes(row)
            ends = [4 * (row[C_T0] + nw), 4 * (row[C_T1] + nb)]
        elif op == Op.AFFINE:  # s, t (n_in,) f32
            ends = [4 * (row[C_T0] + n_in), 4 * (row[C_T1] + n_in)]
        elif op == Op.QDENSE:  # W i8 byte offset, bias i32 and M f32 element offsets (plan.qdense_sizes)
            nw, nb, nm = qdense_sizes(row)
            ends = [row[C_T0] + nw, 4 * (row[C_T1] + nb), 4 * (row[C_T2] + nm)]
        elif op == Op.QLUT:    # table (256,) i8
            ends = [row[C_T0] + 256]
        elif op in (Op.CONV, Op.QCONV):  # packed W, bias (and M), and the table with its data
            from rtinfer.kernels_conv import G_ACC, G_O
            i32 = rt._state.view(np.int32)
            g = int(row[C_I0])
            o = int(i32[g + G_O])
            table_end = 4 * (g + int(i32[g + G_ACC]))
            if op == Op.CONV:    # W (packed) then b, f32 element offsets
                ends = [4 * (row[C_T1] + o), table_end]
            else:                # bias i32, M f32 element offsets
                ends = [4 * (row[C_T1] + o), 4 * (row[C_T2] + o), table_end]
        else:
            ends = []
        end = max([end] + [int(e) for e in ends])
    return start, end - start


def stream_ns(rt, passes: int = 200) -> dict:
    """Median ns of one read-only pass over rt's weights (the faster of one sequential stream and
    four concurrent streams, each timed pass by pass; first tenth of the passes dropped); bytes read."""
    start, nbytes = weight_region(rt)
    nbytes -= nbytes % 8
    words = rt._state[start:start + nbytes].view(np.int64)
    ts = np.zeros(2, dtype=np.int64)
    medians = []
    for fn in (_stream_passes, _stream_passes_4way):
        times = np.zeros(passes, dtype=np.int64)
        fn(words, times[:2], ts)  # compile / warm
        fn(words, times, ts)
        warm = times[passes // 10:]
        medians.append(float(np.median(warm)))
    return {"bytes": nbytes, "median_ns": min(medians), "median_ns_1way": medians[0],
            "median_ns_4way": medians[1], "pattern": "4way" if medians[1] < medians[0] else "1way"}


def clock_overhead_ns(passes: int = 2000) -> float:
    """Median ns between two back-to-back clock reads in compiled code (in every in-loop sample)."""
    times = np.zeros(passes, dtype=np.int64)
    ts = np.zeros(2, dtype=np.int64)
    _stream_passes(np.zeros(0, dtype=np.int64), times, ts)
    return float(np.median(times))


def _best_rate(fn, work: float, repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = max(best, work / dt)
    return best


def measure_peaks(quick: bool = False) -> dict:
    """Single-core rates: fp32 GFLOP/s (njit FMA chains, sgemm, rtinfer's float32 conv tile) and int8
    GMAC/s (njit dots, the int8 tiles); each the best of a few repeats."""
    iters = 200_000 if quick else 2_000_000
    acc = np.ones(128, dtype=np.float32)
    _fma_chains(10, acc, np.float32(0.999), np.float32(0.001))
    njit_gflops = _best_rate(lambda: _fma_chains(iters, acc, np.float32(0.999), np.float32(0.001)),
                             2 * 128 * iters / 1e9, 3 if quick else 5)

    fargs = _f32_tile_operands()
    f_iters = 200 if quick else 2000
    f_passes = _f32_passes()
    f_passes(1, *fargs)
    tile_gflops = _best_rate(lambda: f_passes(f_iters, *fargs), 2 * 8 * 6 * 16 * 128 * f_iters / 1e9,
                             3 if quick else 5)

    n = 512 if quick else 1024
    A = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    B = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=1)
    except ImportError:  # the BLAS may then use every core: the sgemm figure is labelled as such
        limiter = None
    try:
        A @ B
        sgemm_gflops = _best_rate(lambda: A @ B, 2 * n ** 3 / 1e9, 3 if quick else 5)
    finally:
        if limiter is not None:
            limiter.unregister() if hasattr(limiter, "unregister") else limiter.restore_original_limits()

    rng = np.random.default_rng(2)
    W = rng.integers(-127, 128, size=(32, 512), dtype=np.int8)  # 16 KiB: L1-resident
    x = rng.integers(-128, 128, size=512, dtype=np.int8)
    i8_iters = 200 if quick else 2000
    reps = 3 if quick else 5
    _i8_dots(1, W, x)
    i8_loop = _best_rate(lambda: _i8_dots(i8_iters, W, x), 32 * 512 * i8_iters / 1e9, reps)
    i8_pmaddwd = 0.0
    if "avx2" in machine_info_flags():
        Wf = W.reshape(-1)
        if _i8_dots_pmaddwd(1, Wf, x) != _i8_dots(1, W, x):  # the IR must compute the same integers
            raise AssertionError("pmaddwd dot loop disagrees with the plain int8 loop")
        i8_pmaddwd = _best_rate(lambda: _i8_dots_pmaddwd(i8_iters, Wf, x), 32 * 512 * i8_iters / 1e9, reps)
    i8_u8s8 = 0.0
    if "avx2" in target_features():
        uargs = _u8_tile_operands()
        tile_iters = 2 * i8_iters
        passes = _u8_passes()
        passes(1, *uargs)
        i8_u8s8 = _best_rate(lambda: passes(tile_iters, *uargs), 8 * 6 * 16 * 128 * tile_iters / 1e9, reps)
    peaks = {
        "fp32_gflops_njit": njit_gflops,
        "fp32_gflops_sgemm": sgemm_gflops,
        "sgemm_single_thread": limiter is not None,
        "fp32_gflops_tile": tile_gflops,
        "fp32_gflops": max(njit_gflops, sgemm_gflops, tile_gflops),
        "int8_gmacs_loop": i8_loop,
        "int8_gmacs_pmaddwd": i8_pmaddwd,
        "int8_gmacs_u8s8_tile": i8_u8s8,
        "int8_gmacs_njit": max(i8_loop, i8_pmaddwd, i8_u8s8),
        "clock_overhead_ns": clock_overhead_ns(),
    }
    # the reference each model's drift is taken against: the probes' fastest median of a few short
    # runs, as the peaks are the best of a few (right after the sgemm one pass measured 1.28x slower)
    for dtype in ("fp32", "int8"):
        probe = ComputeProbe(dtype)
        peaks[f"{dtype}_probe_ns"] = min(probe.median_ns(100) for _ in range(3 if quick else 7))
    return peaks


def _chain_model(n_ops: int):
    """A FrozenModel of n_ops DENSE 1 -> 1 layers (weights 1, bias 0): no work but dispatch."""
    from rtinfer.frozen import BufferBuilder, FrozenModel, Layer
    from rtinfer.ops import Op
    bb = BufferBuilder()
    layers = []
    for k in range(n_ops):
        refs = {"W": bb.add(np.ones((1, 1), dtype=np.float32)), "b": bb.add(np.zeros(1, dtype=np.float32))}
        layers.append(Layer(Op.DENSE, (1,), (1,), tensors=refs, name=f"d{k}"))
    return FrozenModel(tuple(layers), bb.finish(), (1,), (1,))


def interpreter_floor(n: int = 20000) -> dict:
    """In-loop p50 (us) of models that do no arithmetic worth the name: one and two DENSE 1 -> 1
    ops. floor_1op is the fixed cost of a timed sample (clock read + one dispatch); per_op_us is
    what each further op adds. A model of k ops cannot run faster than about
    floor_1op + (k - 1) * per_op_us in-loop, whatever its weights."""
    import rtinfer
    X = np.random.default_rng(0).standard_normal((n, 1)).astype(np.float32)
    p50 = []
    for n_ops in (1, 2):
        rt = rtinfer.load(_chain_model(n_ops))
        p50.append(rt.measure(X, budget_us=1000.0, warmup=min(n, 2000), mode="in-loop").p50_us)
    return {"floor_1op_us": p50[0], "per_op_us": max(0.0, p50[1] - p50[0])}


class StreamProbe:
    """The weight-streaming pass as a pseudo-engine for the round-robin latency loop, so the limit
    is sampled under the same drift as the engines: time_samples(X, warmup) returns len(X) pass
    times (ns) of the read pattern (1 or 4 streams) that was faster in stream_ns."""
    name = "weight stream (limit)"
    kind = "in-loop"

    def __init__(self, rt, pattern: str):
        start, nbytes = weight_region(rt)
        nbytes -= nbytes % 8
        self.words = rt._state[start:start + nbytes].view(np.int64)
        self.fn = _stream_passes_4way if pattern == "4way" else _stream_passes
        self.ts = np.zeros(2, dtype=np.int64)

    def time_samples(self, X, warmup):
        if warmup:
            self.fn(self.words, np.zeros(warmup, dtype=np.int64), self.ts)
        times = np.zeros(len(X), dtype=np.int64)
        self.fn(self.words, times, self.ts)
        return times


def model_limit(rt, dtype: str, peaks: dict, stream: dict, probe_ns: float | None = None) -> dict:
    """The per-sample floor of a model: max(weight streaming time, compute time at peak).
    stream: a stream_ns() result, whose median_ns may have been replaced by StreamProbe samples.
    probe_ns: the median ComputeProbe pass in the model's round robin; the peak is then scaled by
    drift = (median pass at peak time) / probe_ns, the machine's speed while this model ran
    relative to when the peak was measured (None: drift 1)."""
    macs = int(rt.macs)
    ref = peaks["fp32_probe_ns"] if dtype == "fp32" else peaks["int8_probe_ns"]
    drift = ref / probe_ns if probe_ns else 1.0
    if dtype == "fp32":
        compute_start = 2.0 * macs / (peaks["fp32_gflops"] * 1e9) * 1e6
    else:
        compute_start = macs / (peaks["int8_gmacs_njit"] * 1e9) * 1e6
    compute_us = compute_start / drift
    stream_us = stream["median_ns"] / 1000.0
    return {"weight_bytes": int(rt.weight_bytes), "streamed_bytes": stream["bytes"], "stream_us": stream_us,
            "stream_gbps": stream["bytes"] / stream["median_ns"] if stream["median_ns"] > 0 else float("nan"),
            "stream_pattern": stream["pattern"], "macs": macs, "compute_us": compute_us,
            "compute_us_at_start": compute_start, "peak_drift": drift,
            "limit_us": max(stream_us, compute_us), "bound": "weights" if stream_us >= compute_us else "compute"}
