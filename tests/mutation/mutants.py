"""Planted bugs in the hot paths, each of which the test suite must catch (tests/mutation/run_mutants.py).

A mutant replaces one exact snippet of one source file (it must occur exactly once: a mutant
whose snippet is gone, after a refactor, is reported as stale and fails the run until it is
updated) and names the tests that should catch it, as pytest arguments run from the repository
root. The first five are the bugs of issue 17 that once passed the whole suite.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str          # repository-relative path
    find: str          # exact snippet, occurring once in the file
    replace: str
    tests: tuple       # pytest arguments (files, -k expressions) that must fail
    why: str


HALF_UP = "rounds half up (floor(v + 0.5)) instead of half to even"

MUTANTS = [
    # -- the five planted bugs of issue 17 ------------------------------------------------------
    Mutant("latency-p99-is-p95", "rtinfer/latency.py",
           "p99_us=float(np.percentile(s, 99))", "p99_us=float(np.percentile(s, 95))",
           ("tests/test_latency_stats.py",), "LatencyReport.p99_us computed at the 95th percentile"),
    Mutant("latency-verdict-at-p999", "rtinfer/latency.py",
           "at_p = float(np.percentile(s, percentile))", "at_p = float(np.percentile(s, 99.9))",
           ("tests/test_latency_stats.py",), "the budget verdict judged at p99.9 whatever percentile says"),
    Mutant("bench-ignores-percentile", "rtinfer/commands/bench.py",
           "percentile=args.percentile,", "percentile=99.9,",
           ("tests/test_latency_stats.py", "-k", "bench"), "rtinfer bench passes 99.9 instead of --percentile"),
    Mutant("predict-one-16kb-temporary", "rtinfer/runtime.py",
           "        try:\n            status = self._execute_checked(self._state, xf, yf, 1, mode)",
           "        _scratch = np.zeros(4096, np.float32)\n        _scratch[0] = 1.0\n"
           "        try:\n            status = self._execute_checked(self._state, xf, yf, 1, mode)",
           ("tests/test_alloc_per_call.py",), "predict_one allocates a 16 KB temporary on every call"),
    Mutant("qconv-requant-half-up", "rtinfer/kernels_tile.py",
           "        return builder.call(fn, [v])",
           "        return builder.fptosi(builder.call(cgutils.get_or_insert_function(builder.module, "
           "ir.FunctionType(_V8F, [_V8F]), \"llvm.round.v8f32\"), [v]), _V8I)",
           ("tests/test_requant_ties.py", "-k", "qconv"),
           "the int8 conv tiles' requantization (vcvtps2dq on x86) rounds half away from zero instead of half "
           "to even"),
    # -- requantization and (de)quantization in the other kernels and the reference ---------------
    Mutant("qdense-requant-half-up", "rtinfer/kernels_tile.py",
           "        yq = requant8(builder, builder.sitofp(accv, _V8F), mvv, zp, lo, hi)",
           "        _f = builder.fmul(builder.sitofp(accv, _V8F), mvv)\n"
           "        _r = builder.call(cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V8F, [_V8F]),"
           " \"llvm.round.v8f32\"), [_f])\n"
           "        _v = builder.fadd(_r, zp)\n"
           "        _v = builder.select(builder.fcmp_ordered(\"<\", _v, lo), lo, _v)\n"
           "        _v = builder.select(builder.fcmp_ordered(\">\", _v, hi), hi, _v)\n"
           "        yq = builder.trunc(builder.fptosi(_v, _V8I), _V8I8)",
           ("tests/test_requant_ties.py", "-k", "qdense_i8"), f"QDENSE requantization {HALF_UP}"),
    Mutant("u8s8-requant-half-up", "rtinfer/kernels_gemm.py",
           "q = np.rint(np.float32(v) * mult[j]) + zp",
           "q = np.floor(np.float32(v) * mult[j] + np.float32(0.5)) + zp",
           ("tests/test_requant_ties.py", "-k", "u8s8"), f"the batch path's u8s8 QDENSE {HALF_UP}"),
    Mutant("qavgpool-half-up", "rtinfer/kernels_conv.py",
           "v = np.int64(np.rint((np.float32(acc) * m32) / np.float32(count))) + y_zp",
           "v = np.int64(np.floor((np.float32(acc) * m32) / np.float32(count) + np.float32(0.5))) + y_zp",
           ("tests/test_requant_ties.py", "-k", "qavgpool"), f"QAVGPOOL {HALF_UP}"),
    Mutant("quantize-half-up", "rtinfer/kernels.py",
           "q = np.rint(x[k] / s32) + z32", "q = np.floor(x[k] / s32 + np.float32(0.5)) + z32",
           ("tests/test_requant_ties.py", "-k", "quantize_f32"), f"QUANTIZE {HALF_UP}"),
    Mutant("reference-requantize-half-up", "rtinfer/quant.py",
           "q = np.rint(scaled).astype(np.int64) + int(y_zp)",
           "q = np.floor(scaled + np.float32(0.5)).astype(np.int64) + int(y_zp)",
           ("tests/test_requant_ties.py", "-k", "quant_"), f"the reference semantics (quant.requantize) {HALF_UP}"),
    Mutant("dequantize-two-roundings", "rtinfer/kernels.py",
           "y[k] = (np.float32(x[k]) - z32) * s32", "y[k] = np.float32(x[k]) * s32 - z32 * s32",
           ("tests/test_requant_ties.py", "-k", "dequantize"), "DEQUANTIZE rounds twice ((x * s) - (zp * s))"),
    Mutant("batch-dequantize-two-roundings", "rtinfer/kernels_gemm.py",
           "y[k] = (np.float32(x[k]) - z) * s32", "y[k] = np.float32(x[k]) * s32 - z * s32",
           ("tests/test_requant_ties.py", "-k", "dequantize"), "the batch path's DEQUANTIZE rounds twice"),
    # -- other kernels ---------------------------------------------------------------------------
    Mutant("dense-tail-drops-bias", "rtinfer/kernels.py",
           "            dst[do + s * n_out + j] = a0 + b[bo + j]",
           "            dst[do + s * n_out + j] = a0",
           ("tests/test_kernels.py", "-k", "dense"), "dense_f32 forgets the bias of the n_out % 4 tail outputs"),
    Mutant("softmax-no-max-subtraction", "rtinfer/kernels.py",
           "            mx = src[p]\n            for a in range(1, axis_len):\n                v = src[p + a * inner]\n"
           "                if v > mx:\n                    mx = v\n            total = 0.0",
           "            mx = np.float32(0.0)\n            total = 0.0",
           ("tests/test_softmax_range.py",), "softmax without subtracting the max (overflow)"),
    # -- the planner -----------------------------------------------------------------------------
    Mutant("plan-arena-open-lifetimes", "rtinfer/plan.py",
           "busy = sorted((o, sz) for o, sz, f, l in placed if f <= last and first <= l)",
           "busy = sorted((o, sz) for o, sz, f, l in placed if f < last and first < l)",
           ("tests/test_graph.py",), "the arena gives a row's output the place of the input it reads"),
    Mutant("plan-qdense-zero-point-sign", "rtinfer/plan.py",
           "folded = bq.astype(np.int64) - x_zp * W64.sum(axis=0)",
           "folded = bq.astype(np.int64) + x_zp * W64.sum(axis=0)",
           ("tests/test_runtime.py",), "the input zero point folded into the QDENSE bias with the wrong sign"),
    Mutant("plan-accumulator-bound-127", "rtinfer/plan.py",
           "bound = 255 * np.abs(W64).sum(axis=0) + np.abs(bq.astype(np.int64))",
           "bound = 127 * np.abs(W64).sum(axis=0) + np.abs(bq.astype(np.int64))",
           ("tests/test_plan_bounds.py",), "the int32 overflow proof assumes |x - x_zp| <= 127 (it is <= 255)"),
    # -- the batch path and the runtime boundary ----------------------------------------------------
    Mutant("batch-u8s8-without-saturation-check", "rtinfer/batch.py",
           "if use_u8 and G.u8_quads_exact(Wt.T) else None", "if use_u8 else None",
           ("tests/test_runtime_batch.py",),
           "the u8s8 GEMM runs weights whose int16 pair sums saturate (an equivalent mutant on VNNI "
           "CPUs, where vpdpbusd makes every int8 weight exact)"),
    Mutant("predict-one-ignores-nonfinite", "rtinfer/runtime.py",
           "if status != -1 or nonfinite is not None:", "if status < -1:",
           ("tests/test_boundary.py",), "predict_one's fast path lets NaN/inf inputs through"),
    # -- the latency report ------------------------------------------------------------------------
    Mutant("latency-miss-at-budget", "rtinfer/latency.py",
           "misses = int(np.count_nonzero(s > budget_us))", "misses = int(np.count_nonzero(s >= budget_us))",
           ("tests/test_latency_stats.py",), "a sample exactly at the budget counted as a miss"),
    Mutant("latency-pass-is-strict", "rtinfer/latency.py",
           "passed=at_p <= budget_us,", "passed=at_p < budget_us,",
           ("tests/test_latency_stats.py",), "a percentile exactly at the budget fails"),
    Mutant("latency-worst-index", "rtinfer/latency.py",
           "worst = int(np.argmax(s))", "worst = int(np.argmax(s[1:]))",
           ("tests/test_latency_stats.py",), "the worst sample's index is off by one"),
    # -- the ONNX importer -----------------------------------------------------------------------
    Mutant("import-leakyrelu-default-alpha", "export/onnx_import.py",
           'attrs["alpha"] = float(np.float32(a.get("alpha", 0.01)))',
           'attrs["alpha"] = float(np.float32(a.get("alpha", 0.02)))',
           ("tests/test_onnx_conformance.py", "-k", "backend_node"), "LeakyRelu's default alpha is wrong"),
    Mutant("import-batchnorm-ignores-epsilon", "export/onnx_import.py",
           "s = expand(scale) / np.sqrt(expand(var) + eps)", "s = expand(scale) / np.sqrt(expand(var))",
           ("tests/test_onnx_conformance.py", "-k", "backend_node"), "BatchNormalization folded without epsilon"),
    # -- the .rtm reader --------------------------------------------------------------------------
    Mutant("rtm-accepts-next-major-version", "rtinfer/rtm.py",
           "if major not in READ_MAJORS:", "if major > VERSION_MAJOR + 1:",
           ("tests/test_rtm.py",), "the reader accepts a file of the next major format version"),
    Mutant("rtm-skips-section-crc", "rtinfer/rtm.py",
           "if r.crc(off, off + nbytes) != crc:", "if False:",
           ("tests/test_rtm.py",), "a data section's own CRC32 is not checked"),
    Mutant("rtm-overlapping-sections", "rtinfer/rtm.py",
           "if off % ALIGN or off < prev_end or off + nbytes > r.n:", "if off % ALIGN or off + nbytes > r.n:",
           ("tests/test_rtm.py",), "sections that overlap the previous one are accepted"),
    # -- graph models -------------------------------------------------------------------------------
    Mutant("qbinary-half-up", "rtinfer/kernels_graph.py",
           "    r = np.rint(v)\n    r = min(max(r, lo), hi) + y_zp",
           "    r = np.floor(v + np.float32(0.5))\n    r = min(max(r, lo), hi) + y_zp",
           ("tests/test_graph.py", "-k", "qbinary"), f"QBINARY requantization {HALF_UP}"),
    Mutant("binary-broadcast-merges-b", "rtinfer/kernels_graph.py",
           "if px == x * d and py == y * d:", "if px == x * d:",
           ("tests/test_graph.py", "-k", "binary"), "broadcast dimensions merged where b is not contiguous"),
    Mutant("concat-column-offset", "rtinfer/plan.py",
           "        col += shp[axis] * inner", "        col += shp[axis]",
           ("tests/test_graph.py", "-k", "concat"), "a concatenated input lands at the wrong column"),
    Mutant("import-no-silu", "export/onnx_ir.py",
           "(Act.SILU, {}), (Act.GELU, {})", "(Act.GELU, {})",
           ("tests/test_graph_onnx.py", "-k", "silu"), "x * sigmoid(x) is not recognized as SiLU"),
    # -- convolution kernels and the int8-over-fp32 measurement -------------------------------------
    Mutant("u8-byte-copies-shifted", "rtinfer/kernels_conv.py",
           "_pack_b(z8, zb, g, ro, g, go, 0, 0, True)", "_pack_b(z8, zb, g, ro, g, go, 0, 1, True)",
           ("tests/test_kernels_conv.py", "-k", "qconv_i8_is_bit_exact"),
           "the u8 tile's byte copies packed one step off"),
    Mutant("row-tile-overlap", "rtinfer/kernels_conv.py",
           "        return ROWS * t - 2, rem + 2", "        return ROWS * t - 1, rem + 2",
           ("tests/test_kernels_conv.py", "-k", "conv_f32_matches_twin or qconv_i8_is_bit_exact"),
           "the last row tile of a 4 + 4 split starts one channel late"),
    Mutant("maxpool-pair-order", "rtinfer/kernels_tile.py",
           'return builder.fcmp_ordered(">", b, a) if f32 else',
           'return builder.fcmp_ordered(">=", b, a) if f32 else',
           ("tests/test_kernels_conv.py", "-k", "pair_pools"),
           "the float32 2-wide pool steps let an equal later element (0.0 after -0.0) replace the first"),
    Mutant("qbinary-add-wrong-zero-point", "rtinfer/kernels_graph.py",
           "_q_val(x[k], y[k], B_ADD, azp, bzp, ma, mb)", "_q_val(x[k], y[k], B_ADD, azp, azp, ma, mb)",
           ("tests/test_graph.py", "-k", "binary"),
           "the vectorized QBINARY ADD takes the second operand's codes off the first operand's zero point"),
    Mutant("sum-i8-tail-lane", "rtinfer/kernels_tile.py",
           'keep = builder.icmp_unsigned(">=", ir.Constant(v32, list(range(32))), lim)',
           'keep = builder.icmp_unsigned(">", ir.Constant(v32, list(range(32))), lim)',
           ("tests/test_kernels_conv.py", "-k", "global_qavgpool"),
           "the int8 plane sum's overlapping last step drops its first new byte"),
    Mutant("u8-window-pad-byte", "rtinfer/kernels_conv.py",
           "return lambda Z, zp: np.uint8(np.int16(zp) + np.int16(128))",
           "return lambda Z, zp: np.uint8(np.int16(zp) + np.int16(127))",
           ("tests/test_kernels_conv.py", "-k", "qconv_i8_is_bit_exact"),
           "the u8 tile's byte windows pad their edge columns with the byte of x_zp - 1"),
    Mutant("u8-shift-pad-byte", "rtinfer/kernels_tile.py",
           "pad16 = _pad_byte(builder, zpv, _V16S)",
           "pad16 = builder.add(_pad_byte(builder, zpv, _V16S), ir.Constant(_V16S, [1] * 16))",
           ("tests/test_kernels_conv.py", "-k", "qconv_i8_is_bit_exact"),
           "the u8 tile's shifted byte copies fill masked (wrapped) columns with the byte of x_zp + 1"),
    Mutant("u8-stride2-pad-byte", "rtinfer/kernels_tile.py",
           "pad = _pad_byte(builder, zpv, oty)",
           "pad = builder.add(_pad_byte(builder, zpv, oty), ir.Constant(oty, [1] * 8))",
           ("tests/test_kernels_conv.py", "-k", "qconv_i8_is_bit_exact"),
           "the u8 tile's stride-2 byte windows pad with the byte of x_zp + 1"),
    Mutant("u8-scratch-zero-filled", "rtinfer/kernels_conv.py",
           "        fill = 128 + int(int8_attrs.get(\"x_zp\", 0))", "        fill = 0",
           ("tests/test_kernels_conv.py", "-k", "qconv_i8_is_bit_exact"),
           "the planner zero-fills the byte copies' scratch, so margins read as x = -128, not x_zp"),
    Mutant("f32-relu-nan-to-zero", "rtinfer/kernels_tile.py",
           'return builder.select(builder.fcmp_ordered("<", v, floor), floor, v)',
           'return builder.select(builder.fcmp_unordered("<", v, floor), floor, v)',
           ("tests/test_kernels_conv_fast.py", "-k", "fused_relu"),
           "the float32 conv epilogues' ReLU maps NaN to the floor (0) instead of passing it"),
    Mutant("int64-out-dtype-unchecked", "rtinfer/runtime.py",
           "            if out.dtype is not _I64 or not out.flags.c_contiguous:",
           "            if not out.flags.c_contiguous:",
           ("tests/test_boundary.py", "-k", "int64_output"),
           "predict_one views any 8-byte out (float64) of an int64-output model as float32 and writes codes into it"),
    Mutant("execute-x-compiled-writable", "rtinfer/interp.py",
           "    x.flags.writeable = False  # X compiles read-only", "    x.flags.writeable = True  # X compiles read-only",
           ("tests/test_boundary.py", "-k", "read_only_sample"),
           "the interpreter compiles X writable, so every read-only sample is refused by the dispatcher and re-checked"),
    Mutant("int8-speedup-ratio-of-medians", "bench/run.py",
           '"speedup": float(np.median(f / q))', '"speedup": float(np.median(f) / np.median(q))',
           ("tests/test_bench.py", "-k", "int8_speedups"),
           "the side-by-side int8 speed-up as a ratio of medians, not the median of per-round ratios"),
    Mutant("limit-drift-inverted", "bench/suite_limits.py",
           "    compute_us = compute_start / drift", "    compute_us = compute_start * drift",
           ("tests/test_bench.py", "-k", "probe_drift"),
           "a machine running slower while the model is timed lowers its compute limit instead of raising it"),
    Mutant("fp32-peak-without-tile", "bench/suite_limits.py",
           '"fp32_gflops": max(njit_gflops, sgemm_gflops, tile_gflops),', '"fp32_gflops": max(njit_gflops, sgemm_gflops),',
           ("tests/test_bench.py", "-k", "best_kernel"),
           "the fp32 peak ignores rtinfer's own conv tile: one low sgemm reading puts a model below its limit"),
    Mutant("u8-tiles-ignore-vnni", "rtinfer/kernels_tile.py",
           "    if has_vnni(features):\n        fn = cgutils", "    if False:\n        fn = cgutils",
           ("tests/test_kernels_generic_target.py", "-k", "vpdpbusd"),
           "the u8 tiles keep vpmaddubsw + vpmaddwd + vpaddd on VNNI CPUs instead of one vpdpbusd"),
    Mutant("u8-tiles-vnni-on-avx2", "rtinfer/kernels_tile.py",
           "    if has_vnni(features):\n        fn = cgutils", "    if \"avx2\" in features:\n        fn = cgutils",
           ("tests/test_kernels_generic_target.py", "-k", "vpdpbusd"),
           "vpdpbusd emitted for AVX2 CPUs without VNNI (LLVM aborts the process compiling it)"),
    # -- the wide (packed) DENSE / QDENSE kernels ---------------------------------------------------
    Mutant("wide-partial-block-stores-16", "rtinfer/kernels_gemm.py",
           "    return nb, j0, min(TILE_J * nb, n_out - j0), wo + q * ps",
           "    return nb, j0, TILE_J * nb, wo + q * ps",
           ("tests/test_runtime_batch.py", "-k", "dense_f32_wide or qdense_u8_wide"),
           "a packed DENSE's or QDENSE's last, partial block of 16 outputs is stored whole: it overwrites what follows y"),
    Mutant("wide-block-skips-last-samples", "rtinfer/kernels_gemm.py",
           "            while s < m:  # the last m % 6 samples", "            while s < m and s < 0:  # the last m % 6 samples",
           ("tests/test_runtime_batch.py", "-k", "dense_f32_wide"),
           "a block of samples (MODE_BATCH) leaves its last m % 6 samples unwritten on packed layers"),
    Mutant("u8-wide-no-shift", "rtinfer/kernels_gemm.py",
           "flip = ir.Constant(i32, 0x80808080 - (1 << 32))", "flip = ir.Constant(i32, 0)",
           ("tests/test_runtime_batch.py", "-k", "qdense_u8_wide"),
           "the one-sample u8 kernel forgets the +128 shift of its inputs (the bias assumes it)"),
    Mutant("quads-exact-without-vnni", "rtinfer/kernels_tile.py",
           "    return has_vnni(target_features())\n", "    return True\n",
           ("tests/test_kernels_conv_fast.py", "tests/test_runtime_batch.py", "tests/test_kernels_generic_target.py",
            "-k", "not generic_cpu"),
           "CPUs without VNNI take the uint8 quad kernels for any int8 weights: vpmaddubsw's int16 pair "
           "sums saturate (on a VNNI CPU only the haswell cross-compile check sees it)"),
    Mutant("qdense-packed-inexact", "rtinfer/plan.py",
           "return Wq.shape[1] >= QDENSE_WIDE_MIN_OUT and available() and u8_quads_exact(Wq)",
           "return Wq.shape[1] >= QDENSE_WIDE_MIN_OUT and available()",
           ("tests/test_runtime_batch.py", "-k", "exact_int8"),
           "full-range int8 weights packed for vpmaddubsw, whose int16 pair sums can saturate: wrong int8 outputs "
           "(equivalent on VNNI CPUs)"),
    Mutant("wide-batch-tile-skips-remainder", "rtinfer/kernels_gemm.py",
           "            if s < m:\n                R = m - s", "            if s < 0:\n                R = m - s",
           ("tests/test_runtime_batch.py", "-k", "dense_f32_tiled"),
           "the 6 x 32 batch tile's pairs of blocks leave the last m % 6 samples unwritten (equivalent on "
           "AVX2 CPUs, which do not take that tile)"),
    Mutant("stale-cache-index-raises", "rtinfer/jitcache.py",
           "any unreadable index\n            return {}", "any unreadable index\n            raise",
           ("tests/test_jitcache.py", "-k", "unpickled"),
           "a Numba cache index naming a function that is gone (an upgrade) raises on every load instead of "
           "compiling anew"),
]
