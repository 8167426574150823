"""Every compiled entry point compiles and computes the same results on a CPU target without
AVX2: a subprocess with NUMBA_CPU_NAME=generic (Numba then targets plain x86-64, no AVX2, FMA
or SSSE3) runs a batch ``predict`` through the batch path (interp.run_segment, whose u8s8 GEMM
emitted the AVX2 vpmaddubsw call unconditionally and aborted LLVM here), the u8s8 GEMM itself
in its portable form against its twin, and CNNs (fp32 and int8, every conv kernel path) against
the reference executor, int8 bit-exact.

A private NUMBA_CACHE_DIR under the system temp directory keeps the generic machine code apart
from the normal cache; it is kept between runs (Numba invalidates it when the sources change),
so only the first run pays the compile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import export, rtinfer
    from rtinfer import batch, kernels_conv as KC, kernels_gemm as G, kernels_tile as T, reference
    from rtinfer._testmodels import int8_mlp
    from rtinfer.train import CNN, Activation, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool, MaxPool2D

    out = {"features": sorted(T.target_features()), "path": T.kernel_path_name(),
           "u8s8_available": G.available()}
    rng = np.random.default_rng(0)

    # 1. batch predict of an int8 MLP (the batch path compiles run_segment), bit-exact
    fm = int8_mlp([24, 40, 16, 5], lut=np.tanh, head=None)  # ends in DEQUANTIZE: exact codes
    X = rng.standard_normal((300, 24)).astype(np.float32)
    rt = rtinfer.load(fm)
    got = rt.predict(X)
    out["mlp_exact"] = bool(np.array_equal(got, reference.run(fm, X)))

    # 2. the u8s8 GEMM in its portable form against its twin (7-bit weights: exact)
    W = rng.integers(-63, 64, size=(37, 21)).astype(np.int8)
    Bp, nq, nblk = G.pack_weights(W)
    m_pad = 8
    A = rng.integers(0, 256, size=m_pad * 4 * nq).astype(np.uint8)
    C = np.zeros(m_pad * 16 * nblk, np.int32)
    C2 = C.copy()
    G.gemm_u8s8(A, 4 * nq, Bp, nq, nblk, C, 16 * nblk, m_pad)
    G.gemm_u8s8_ref(A, 4 * nq, Bp, nq, nblk, C2, 16 * nblk, m_pad)
    out["u8s8_exact"] = bool(np.array_equal(C, C2))

    # 3. the int8 plane sum (vpsadbw on AVX2) in its portable form: exact, below and past 32
    from numba import njit
    sum_i8 = njit(_nrt=False)(lambda x, xo, n: T.sum_i8(x, xo, n))
    xs = rng.integers(-128, 128, 300).astype(np.int8)
    out["sum_i8_exact"] = all(sum_i8(xs, o, n) == int(xs[o:o + n].astype(np.int64).sum())
                              for o in (0, 3) for n in (5, 32, 45, 125, 297))

    # 4. QBINARY's residual add 32 codes a step (kernels_tile.qadd32) in its portable form: exact
    from rtinfer import kernels_graph as KG
    f32 = np.float32
    ok = True
    for n in (32, 77):
        a8, b8 = (rng.integers(-128, 128, n).astype(np.int8) for _ in range(2))
        t8 = KG.binary_table((n,), (n,), int(KG.B_ADD), 3, -5, 7)[0].astype(np.int32)
        d8 = np.zeros(n, np.int8)
        KG.qbinary_i8(a8, 0, b8, 0, d8, 0, t8, 0, 1, 0.37, 1.61)
        v = (a8.astype(f32) - f32(3)) * f32(0.37) + (b8.astype(f32) - f32(-5)) * f32(1.61)
        ok &= bool(np.array_equal(d8, np.clip(np.rint(v) + 7, -128, 127).astype(np.int8)))
    out["qadd_exact"] = ok

    # 5. CNNs on every conv path: GEMM (pointwise, im2col, gathers), DW, GENERIC; int8 u8 and s16
    layers = [Conv2D(1, 6, 3, padding=1), Activation("relu"), Conv2D(6, 6, 3, padding=1, groups=6),
              Activation("relu"), Conv2D(6, 8, 1), Activation("relu"), Conv2D(8, 8, 3, stride=2, groups=4),
              MaxPool2D(2, padding=((0, 1), (0, 1))), GlobalAvgPool(), Dense(8, 3)]
    model = CNN((1, 12, 10), layers, seed=1)
    Xc = rng.standard_normal((40, 1, 12, 10)).astype(np.float32)
    for dtype, kw in (("float32", {}), ("int8", {"calibration": Xc.astype(np.float64)}),
                      ("int8r", {"calibration": Xc.astype(np.float64), "reduce_range": True})):
        fmc = export.freeze(model, dtype=dtype[:4] if dtype != "float32" else dtype, **kw)
        rtc = rtinfer.load(fmc)
        want = reference.run(fmc, Xc)
        got = rtc.predict(Xc)
        one = np.stack([rtc.predict_one(x) for x in Xc[:5]])
        out[dtype + "_err"] = float(np.abs(got - want).max())
        out[dtype + "_one"] = bool(np.array_equal(one, got[:5]))
    print("RESULT" + json.dumps(out))
""")


def test_batch_predict_and_conv_kernels_compile_for_a_generic_cpu():
    cache = os.path.join(tempfile.gettempdir(), f"rtinfer-generic-cache-{os.getuid()}")
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=cache)
    env.pop("NUMBA_CPU_FEATURES", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=1800,
                          cwd=str(Path(__file__).resolve().parent.parent))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1][len("RESULT"):])
    assert "avx2" not in res["features"] and res["path"] == "portable" and not res["u8s8_available"]
    assert res["mlp_exact"] and res["u8s8_exact"] and res["sum_i8_exact"] and res["qadd_exact"]
    assert res["float32_err"] <= 1e-5 and res["float32_one"]
    assert res["int8_err"] <= 1e-6 and res["int8_one"]  # dequantized int8 outputs: bit-exact codes
    assert res["int8r_err"] <= 1e-6 and res["int8r_one"]


def test_vnni_targets_get_vpdpwssd_from_the_int16_pair_patterns():
    """The int16-pair tiles are plain IR: compiled for a VNNI CPU (cross-compiled here, not run)
    LLVM fuses each vpmaddwd + add of the GEMM tile into one vpdpwssd, and most of the depthwise
    tile's (how many of the latter LLVM fuses depends on the host the IR was optimized for: 24 of
    32 from a Zen 5 host, all from a Zen 3 one; none from zmm rows, kernels_tile.WIDE_I8); for a
    CPU without VNNI it keeps vpmaddwd. Each tile
    in its own function, so one tile's code cannot hide the other's."""
    import llvmlite.binding as ll
    import numpy as np
    from numba import njit

    from rtinfer import kernels_tile as T

    @njit(_nrt=False)
    def gemm_tile(A, B, D, bias, M, RT):
        T.s16_tile6(A, 0, B, 0, 16, 8, D, 0, 16, bias, 0, M, 0, 0, -128, 127, 6, 16)

    @njit(_nrt=False)
    def dw_tile(A, B, D, bias, M, RT):
        T.dw_tile_i8(B, 0, 0, RT, 0, 4, A, 0, 4, bias, 0, D, 0, 16, 2, 32, M, 0, 0, -128, 127)

    args = (np.zeros(64, np.int32), np.zeros(400, np.int32), np.zeros(200, np.int8), np.zeros(8, np.int32),
            np.ones(8, np.float32), np.zeros(16, np.int32))
    counts = {}
    for fn in (gemm_tile, dw_tile):
        fn(*args)
        mod = ll.parse_assembly(fn.inspect_llvm(fn.signatures[0]))
        target = ll.Target.from_triple(mod.triple)
        if not target.name.startswith("x86"):
            return
        for cpu in ("icelake-server", "haswell"):
            asm = target.create_target_machine(cpu=cpu, features="", opt=3).emit_assembly(mod)
            counts[fn.__name__, cpu] = (asm.count("\tvpdpwssd\t"), asm.count("\tvpmaddwd\t"))
    assert counts["gemm_tile", "icelake-server"][0] >= 8 and counts["gemm_tile", "icelake-server"][1] == 0, counts
    if T.WIDE_I8:  # the depthwise rows were built as zmm on this host: LLVM's icelake-server tuning
        # keeps 512-bit vpmaddwd + vpaddd apart (a Zen 5 fuses them: 12 vpdpwssd, 4 vpmaddwd)
        assert sum(counts["dw_tile", "icelake-server"]) >= 8, counts
    else:
        assert counts["dw_tile", "icelake-server"][0] >= 8, counts
    for name in ("gemm_tile", "dw_tile"):
        assert counts[name, "haswell"][0] == 0 and counts[name, "haswell"][1] >= 8, counts


VNNI_SCRIPT = textwrap.dedent("""
    import json
    from numba import njit, types
    from rtinfer import kernels_gemm as G, kernels_tile as T
    a1 = lambda dt: types.Array(dt, 1, "C")
    i8, i32, u8, f32, i64 = types.int8, types.int32, types.uint8, types.float32, types.int64

    @njit(types.void(a1(i32), a1(i32), a1(i8), a1(i32), a1(f32)), _nrt=False)
    def conv_tile(A, B, D, bias, M):
        T.u8_tile6(A, 0, B, 0, 16, 8, D, 0, 16, bias, 0, M, 0, 0, -128, 127, 6, 16)

    gemm = njit(types.void(a1(u8), i64, a1(i8), i64, i64, a1(i32), i64, i64), _nrt=False)(G.gemm_u8s8.py_func)
    import numpy as np
    out = {"path": T.kernel_path_name(), "quads_exact_any": T.quads_exact_any(),
           # weights whose consecutive pair (127, 127) saturates vpmaddubsw's int16 sum
           "saturating_takes_quads": bool(G.u8_quads_exact(np.full((4, 16), 127, np.int8)))}
    for name, f in (("conv", conv_tile), ("gemm", gemm)):
        asm = f.inspect_asm(f.signatures[0])
        out[name] = {k: asm.count(k) for k in ("vpdpbusd", "vpmaddubsw")}
        out[name]["zmm"] = sum(1 for ln in asm.splitlines() if "vpdpbusd" in ln and "%zmm" in ln)
    out["wide_i8"] = T.WIDE_I8
    print("RESULT" + json.dumps(out))
""")

_BASE = "+avx,+avx2,+fma,+sse4.2,+ssse3"


@pytest.mark.slow  # four subprocess compiles for CPUs this host may not have: ~9 s on a Zen 3
def test_vnni_targets_run_the_uint8_quad_tiles_on_vpdpbusd():
    """The u8 tiles (convolution and batch GEMM) are compiled, not run, for CPUs this machine
    may not have (NUMBA_CPU_NAME / NUMBA_CPU_FEATURES in a subprocess): on AVX512-VNNI and
    AVX-VNNI targets each uint8 x int8 quad step is one vpdpbusd, with no vpmaddubsw left; on
    AVX2 without VNNI, vpmaddubsw and no vpdpbusd (LLVM aborts when it meets the intrinsic
    there). vpdpbusd sums the four products without int16 saturation, so it computes what the
    AVX2 form does wherever the planner lets the u8 tiles run (kernels_tile.quad_dot). On
    AVX512-VNNI the tiles' rows are one zmm (512-bit vpdpbusd, kernels_tile.WIDE_I8), except on
    Zen 4 (znver4), which splits 512-bit ops in two: there they stay ymm."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("x86 CPU targets: Numba on this host compiles for another architecture")
    cache = os.path.join(tempfile.gettempdir(), f"rtinfer-vnni-cache-{os.getuid()}")
    avx512vnni = _BASE + ",+avx512f,+avx512vl,+avx512bw,+avx512dq,+avx512vnni"
    targets = {"icelake-server": avx512vnni, "znver4": avx512vnni, "alderlake": _BASE + ",+avxvnni", "haswell": _BASE}
    for cpu, feats in targets.items():
        env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES=feats, NUMBA_CACHE_DIR=cache)
        proc = subprocess.run([sys.executable, "-c", VNNI_SCRIPT], capture_output=True, text=True, env=env,
                              timeout=900, cwd=str(Path(__file__).resolve().parent.parent))
        assert proc.returncode == 0, cpu + proc.stdout[-3000:] + proc.stderr[-3000:]
        res = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1][len("RESULT"):])
        for name in ("conv", "gemm"):
            if cpu == "haswell":
                assert res["path"] == "AVX2" and res[name]["vpdpbusd"] == 0 and res[name]["vpmaddubsw"] >= 8, res
            else:
                assert res["path"] == "VNNI" and res[name]["vpdpbusd"] >= 8 and res[name]["vpmaddubsw"] == 0, res
        # 512-bit rows where AVX512-VNNI runs at full width: the conv tile's 6 rows, the GEMM's 4 x 2 blocks
        wide = cpu == "icelake-server"
        assert res["wide_i8"] == wide, (cpu, res)
        assert (res["conv"]["zmm"] >= 6 and res["gemm"]["zmm"] >= 8) if wide else (
            res["conv"]["zmm"] == 0 and res["gemm"]["zmm"] == 0), (cpu, res)
        # the planner's choice: any int8 weights take the quads on VNNI, saturating ones never on AVX2
        vnni = cpu != "haswell"
        assert res["quads_exact_any"] == vnni and res["saturating_takes_quads"] == vnni, (cpu, res)
