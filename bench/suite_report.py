"""RESULTS.md, an optional JSON dump and the PNG plots from one benchmark run's results dict (see bench.run).

    results["targets"] = evaluate_targets(results)
    results["plots"] = write_plots(results, samples, out_dir)    # latency_cdf.png, latency_vs_size.png
    write_report(results, out_dir, json_path=None)                # RESULTS.md (and a JSON dump)

Section headings of RESULTS.md (tests rely on them): Machine and versions, Targets, Models, Limits,
Per-sample latency, Throughput, Cross-checks, Start-up, Training, Engines skipped, Plots, Method.
Every per-model latency table has one row per engine plus a final ``limit`` row.
"""

from __future__ import annotations

import json
import os

import numpy as np

SECTIONS = ("Machine and versions", "Targets", "Models", "Limits", "Per-sample latency", "Throughput",
            "Cross-checks", "Start-up", "Training", "Engines skipped", "Plots", "Method")
LIMIT_ROW = "limit"
REF_ENGINE = "rtinfer predict_one"


# -- targets ----------------------------------------------------------------------------------

def _model(results, key, dtype):
    for r in results["models"]:
        if r["key"] == key and r["dtype"] == dtype:
            return r
    return None


def _p50(rec, engine):
    lat = rec["latency"].get(engine)
    return None if lat is None else lat["p50_us"]


def _verdict(values):
    """None when nothing was measured, else all(values)."""
    return None if not values else all(values)


def _target_in_loop_vs_stream(results):
    l2 = results["meta"]["machine"]["L2"] or 512 * 1024
    peaks = results["peaks"]
    parts, oks, whys = [], [], []
    for r in results["models"]:
        if r["dtype"] != "fp32" or r["plan_weight_bytes"] > l2 or _p50(r, "rtinfer in-loop") is None:
            continue
        lim = r["limit"]
        if lim.get("compute_us", 0.0) > lim["stream_us"]:
            continue  # compute-bound (the CNNs): judged against the compute limit, not the weight stream
        p50 = _p50(r, "rtinfer in-loop")
        ratio = p50 / lim["stream_us"] if lim["stream_us"] > 0 else float("inf")
        ok = ratio <= 1.3
        oks.append(ok)
        parts.append(f"{r['key']} {ratio:.2f}x ({p50:.2f} vs {lim['stream_us']:.2f} us)")
        if ok:
            continue
        n_ops = len(r["per_op"]) or r["n_layers"]
        floor = peaks["floor_1op_us"] + (n_ops - 1) * peaks["per_op_us"]
        if floor >= 0.5 * p50 or 1.3 * lim["stream_us"] < floor:
            whys.append(f"{r['key']}: the weights stream in {1000 * lim['stream_us']:.0f} ns but {n_ops} ops cost "
                        f"~{1000 * floor:.0f} ns in-loop before any arithmetic (timed sample with one op: "
                        f"{1000 * peaks['floor_1op_us']:.0f} ns, each further op "
                        f"{1000 * peaks['per_op_us']:.0f} ns: clock read, interpreter dispatch, array views); "
                        f"1.3x of the stream time is {1300 * lim['stream_us']:.0f} ns.")
        else:
            gbps = r["plan_weight_bytes"] / (p50 * 1e3)
            big = ", ".join(f"{o['label']} {1000 * o['p50_us']:.0f} ns" for o in r["per_op"] if o["share"] >= 0.2)
            whys.append(f"{r['key']}: the sample reads the weights at {gbps:.0f} GB/s against "
                        f"{lim['stream_gbps']:.0f} GB/s for a plain read (compute at the FMA peak "
                        f"{lim['compute_us']:.2f} us; fixed floor of {n_ops} ops ~{1000 * floor:.0f} ns)"
                        + (f"; largest ops (p50, each with one clock read): {big}." if big else "."))
    return {"target": "rtinfer in-loop fp32 p50 within 1.3x of the weight-streaming limit on every "
                      f"memory-bound model whose weights fit in L2 ({l2 // 1024} KiB)",
            "measured": "; ".join(parts) or "no fp32 model with weights in L2 was run",
            "met": _verdict(oks), "why": " ".join(whys)}


def _int8_pair(results, key):
    """(fp32 in-loop p50, int8 in-loop p50, int8 speed-up, int8 record) of model key: from the
    side-by-side run (results["int8_pairs"]: the dtypes alternated round by round, the median of
    the per-round ratios) when there is one, else from the two records' own phases; None when
    either dtype's in-loop time is missing."""
    f, q = _model(results, key, "fp32"), _model(results, key, "int8")
    if f is None or q is None or _p50(f, "rtinfer in-loop") is None or _p50(q, "rtinfer in-loop") is None:
        return None
    pair = (results.get("int8_pairs") or {}).get(key)
    if pair:
        return pair["fp32_p50_us"], pair["int8_p50_us"], pair["speedup"], f, q
    return _p50(f, "rtinfer in-loop"), _p50(q, "rtinfer in-loop"), _p50(f, "rtinfer in-loop") / _p50(q, "rtinfer in-loop"), f, q


def _target_int8_speedup(results):
    parts, oks, whys = [], [], []
    for key in ("784-128-64-10", "ad-640"):
        pair = _int8_pair(results, key)
        if pair is None:
            continue
        tf, tq, s, f, q = pair
        ok = s >= 1.7
        oks.append(ok)
        parts.append(f"{key} {s:.2f}x (fp32 {tf:.2f} us, int8 {tq:.2f} us)")
        if not ok:
            ql = q["limit"]
            fl = f["limit"]
            whys.append(f"{key}: fp32 is bound by its weight stream ({fl['stream_us']:.2f} us); int8 streams its "
                        f"weights in {ql['stream_us']:.2f} us but its {ql['macs']} MACs take {ql['compute_us']:.2f} us "
                        f"at the measured int8 rate ({results['peaks']['int8_gmacs_njit']:.0f} GMAC/s vs "
                        f"{results['peaks']['fp32_gflops'] / 2:.0f} GMAC/s for fp32 FMA; int8 kernel path "
                        f"{results['meta']['machine']['kernel_path']}), so "
                        f"int8 can be at most {fl['limit_us'] / ql['limit_us']:.2f}x faster than fp32 at their "
                        f"limits; measured int8 in-loop is {tq / ql['limit_us']:.2f}x its "
                        f"limit.")
    return {"target": "rtinfer int8 >= 1.7x faster than fp32 (in-loop p50) on 784-128-64-10 and the "
                      "anomaly-detection autoencoder",
            "measured": (_pair_note(results) + "; ".join(parts)) if parts else "not run (needs fp32 and int8 of those models)",
            "met": _verdict(oks), "why": " ".join(whys)}


def _pair_note(results) -> str:
    """How the int8 speed-ups were measured (the side-by-side run, or the two phases)."""
    if results.get("int8_pairs"):
        return "side by side (dtypes alternated round by round, median of per-round ratios): "
    return "from the two dtypes' own timing phases: "


def _target_vs_ort(results):
    parts, oks, whys = [], [], []
    for key, need in (("784-128-64-10", 4.0), ("16-32-4", 10.0)):
        for dtype in ("fp32", "int8"):
            r = _model(results, key, dtype)
            if r is None or _p50(r, REF_ENGINE) is None or _p50(r, "onnxruntime") is None:
                continue
            s = _p50(r, "onnxruntime") / _p50(r, REF_ENGINE)
            ok = s >= need
            oks.append(ok)
            io = _p50(r, "onnxruntime iobinding")
            io_text = f"; vs onnxruntime iobinding {io / _p50(r, REF_ENGINE):.1f}x" if io is not None else ""
            parts.append(f"{key} {dtype} {s:.1f}x (need {need:g}x{io_text})")
            if not ok:
                inloop = _p50(r, "rtinfer in-loop")
                call = _p50(r, REF_ENGINE) - inloop if inloop is not None else float("nan")
                whys.append(f"{key} {dtype}: {need:g}x needs predict_one <= {_p50(r, 'onnxruntime') / need:.2f} us "
                            f"(onnxruntime {_p50(r, 'onnxruntime'):.2f} us); predict_one is {_p50(r, REF_ENGINE):.2f} us "
                            f"= in-loop compute {inloop:.2f} us + call path {call:.2f} us, against a model limit "
                            f"of {r['limit']['limit_us']:.2f} us.")
    return {"target": "rtinfer predict_one >= 4x faster than onnxruntime (1 thread, InferenceSession.run) on "
                      "784-128-64-10, >= 10x on 16-32-4 (p50 per call)",
            "measured": "; ".join(parts) or "not run", "met": _verdict(oks), "why": " ".join(whys)}


def _target_batch1(results):
    parts, oks, whys = [], [], []
    for r in results["models"]:
        mine = _p50(r, REF_ENGINE)
        if mine is None:
            continue
        for other in ("numpy", "torch", "tract"):
            theirs = _p50(r, other)
            if theirs is None:
                continue
            ok = mine < theirs
            oks.append(ok)
            if not ok:
                parts.append(f"{r['name']} vs {other}: {theirs / mine:.2f}x")
                whys.append(f"{r['name']}: {other} {theirs:.2f} us <= predict_one {mine:.2f} us.")
    ratios = []
    for r in results["models"]:
        mine = _p50(r, REF_ENGINE)
        others = [_p50(r, o) for o in ("numpy", "torch", "tract") if _p50(r, o) is not None]
        if mine is not None and others:
            ratios.append(f"{r['name']} {min(others) / mine:.1f}x")
    measured = "closest competitor's p50 / predict_one p50: " + "; ".join(ratios) if ratios else "not run"
    if parts:
        measured += " -- behind: " + "; ".join(parts)
    return {"target": "rtinfer predict_one ahead of NumPy, PyTorch and tract on every model at batch 1 (p50)",
            "measured": measured, "met": _verdict(oks), "why": " ".join(whys)}


def _cnns(results, dtype=None):
    return [r for r in results["models"] if r.get("cnn") and (dtype is None or r["dtype"] == dtype)]


def _target_cnn_vs_ort(results):
    parts, oks, whys = [], [], []
    for r in _cnns(results):
        mine, theirs = _p50(r, REF_ENGINE), _p50(r, "onnxruntime")
        if mine is None or theirs is None:
            continue
        ok = mine < theirs
        oks.append(ok)
        parts.append(f"{r['name']} {theirs / mine:.2f}x")
        if not ok:
            inloop = _p50(r, "rtinfer in-loop")
            whys.append(f"{r['name']}: onnxruntime {theirs:.1f} us, predict_one {mine:.1f} us (in-loop "
                        f"{inloop:.1f} us, {inloop / r['limit']['limit_us']:.2f}x the compute limit).")
    return {"target": "rtinfer predict_one ahead of onnxruntime (1 thread) on every CNN, fp32 and int8, the "
                      "sample in its natural shape (p50)",
            "measured": "onnxruntime p50 / predict_one p50: " + "; ".join(parts) if parts else "not run",
            "met": _verdict(oks), "why": " ".join(whys)}


def _target_cnn_limit(results):
    parts, oks = [], []
    for r in _cnns(results, "fp32"):
        p50 = _p50(r, "rtinfer in-loop")
        if p50 is None:
            continue
        ratio = p50 / r["limit"]["limit_us"]
        oks.append(ratio <= 1.5)
        parts.append(f"{r['key']} {ratio:.2f}x ({p50:.1f} vs {r['limit']['limit_us']:.1f} us)"
                     + ("; below 1: its 3x3 layers run Winograd, 2.25x fewer multiplies than the MACs counted"
                        if ratio < 1 else ""))
    why = ("" if _verdict(oks) in (None, True) else
           f"the limit is MACs at this run's measured fp32 peak ({results['peaks']['fp32_gflops']:.1f} GFLOP/s, "
           f"scaled by each model's peak drift, the Limits table); "
           f"the per-op rows under Per-sample latency show which layers are above it (GEMM tiles of small "
           f"convolutions: short K, partial tiles; dense layers whose float32 weights stream from L2; per-op "
           f"fixed cost on the small layers)")
    return {"target": "rtinfer fp32 CNNs in-loop p50 within 1.5x of their compute limit",
            "measured": "; ".join(parts) or "not run", "met": _verdict(oks), "why": why}


def _short_layers(f, q, top: int = 4) -> str:
    """Where int8 model q falls short of 1.5x its fp32 twin f, from the two per-op passes: the
    layers (matched by name) whose fp32 / int8 p50 is below 1.5, most time short first (at most
    ``top``), each with its int8 kernel path, and the ops only int8 runs (QUANTIZE, DEQUANTIZE);
    "" without per-op rows."""
    if not f or not f.get("per_op") or not q.get("per_op"):
        return ""
    fp = {o["label"].split(":")[-1]: o["p50_us"] for o in f["per_op"]}
    wino = {o["label"].split(":")[-1] for o in f["per_op"] if o.get("kernel", "").startswith("Winograd")}
    short, own = [], []
    for o in q["per_op"]:
        name = o["label"].split(":")[-1]
        if name not in fp:
            own.append(f"{name} {o['p50_us']:.2f}")
        elif fp[name] < 1.5 * o["p50_us"]:
            short.append((o["p50_us"] - fp[name] / 1.5, name, fp[name], o))
    short.sort(key=lambda t: -t[0])
    parts = [f"{name} {ff / o['p50_us']:.2f}x ({ff:.2f} / {o['p50_us']:.2f} us"
             + (f", {o['kernel']}" if o.get("kernel") else "")
             + (" against fp32's Winograd" if name in wino else "") + ")" for _, name, ff, o in short[:top]]
    out = ""
    if parts:
        out += "; layers under 1.5x (fp32 / int8 p50 of the per-op passes): " + ", ".join(parts)
    if own:
        out += "; int8's own ops " + ", ".join(own) + " us"
    return out


def _target_cnn_int8(results):
    parts, oks, whys = [], [], []
    for r in _cnns(results, "int8"):
        pair = _int8_pair(results, r["key"])
        if pair is None:
            continue
        tf, tq, s, _, q = pair
        oks.append(s >= 1.5)
        parts.append(f"{q['key']} {s:.2f}x")
        if s < 1.5:
            whys.append(f"{q['key']}: fp32 {tf:.1f} us, int8 {tq:.1f} us (int8 limit {q['limit']['limit_us']:.1f} us)"
                        + _short_layers(_model(results, q["key"], "fp32"), q) + ".")
    if whys and results["meta"]["machine"]["kernel_path"] != "VNNI":
        peaks = results.get("peaks", {})
        ceiling = ""
        if peaks.get("int8_gmacs_njit") and peaks.get("fp32_gflops"):
            c = peaks['int8_gmacs_njit'] / (peaks['fp32_gflops'] / 2)
            ceiling = (f" This run's measured peaks put int8's compute ceiling at {c:.2f}x float32's "
                       f"({peaks['int8_gmacs_njit']:.1f} GMAC/s against {peaks['fp32_gflops'] / 2:.1f}): "
                       f"a vpmaddwd, like a vpmaddubsw + vpmaddwd pair, does 16 multiply-adds per multiply-unit "
                       f"instruction against an FMA's 8, "
                       + ("so requantization, int16 widening and packing have little room before they eat the "
                          "gain." if c < 1.5 else
                          "so the GEMM tile alone could carry 1.5x; the layers named above fall short where an "
                          "output has few multiply-adds to spread its requantization and copies over (first layers "
                          "of one input channel, depthwise layers), run on int16 pairs (vpmaddwd, float32's rate), "
                          "or face float32's Winograd F(2x2, 3x3) (2.25x fewer multiplies than the direct int8 GEMM; "
                          "an exact int8 Winograd needs int16 products, at half the uint8 tile's rate)."))
        whys.append("Without VNNI (see Machine) an int8 product step is vpmaddubsw/vpmaddwd plus a separate add; "
                    "a 3x3 depthwise layer on uint8 quads of taps (the DS-CNN's, kernels_conv.PATH_DWQ) takes 3 "
                    "quads, 6 multiply-unit instructions, per 8 positions of a channel against float32's 9 FMAs per "
                    "8 channels of a position, so at most 1.5x float32 before its requantization; the 1-D CNN's "
                    "depthwise layer runs int16 pairs of taps, no faster than float32 (one kernel row: quads measured "
                    "slower there); and each op's fixed cost (dispatch, clock read) is the same in both dtypes."
                    + ceiling)
    elif whys:
        whys.append("The int8 tiles ran on VNNI (vpdpbusd, see Machine); each op's fixed cost (dispatch, clock "
                    "read) is the same in both dtypes.")
    return {"target": "rtinfer int8 in-loop >= 1.5x faster than fp32 on every CNN",
            "measured": _pair_note(results) + "fp32 p50 / int8 p50: " + "; ".join(parts) if parts else "not run",
            "met": _verdict(oks), "why": " ".join(whys)}


def _target_batch256(results):
    parts, oks, whys = [], [], []
    for r in results["models"]:
        t = r["throughput"]
        mine = t.get("rtinfer batch", {}).get("256")
        theirs = t.get("onnxruntime", {}).get("256")
        if mine is None or theirs is None:
            continue
        s = mine / theirs
        ok = s >= 1.0
        oks.append(ok)
        parts.append(f"{r['name']} {s:.2f}x")
        if not ok:
            whys.append(r["name"])
    cnn = {r["name"] for r in _cnns(results)}
    dense = [n for n in whys if n not in cnn]
    conv = [n for n in whys if n in cnn]
    whys = []
    if dense:
        tiles = []
        if any(n.endswith("fp32") for n in dense):
            tiles.append("fp32: rtinfer's 6x16 tile, 6x32 on AVX-512, vs onnxruntime's MLAS sgemm")
        if any(n.endswith("int8") for n in dense):
            tiles.append("int8: rtinfer's uint8 x int8 quad tile, 4 samples x 16 outputs, x 32 in zmm rows on "
                         "full-width AVX512-VNNI CPUs, vs MLAS's QGEMM")
        whys.append(f"Behind on {', '.join(dense)}: at batch 256 both engines run these layers as register-tiled "
                    f"GEMMs ({'; '.join(tiles)}), and the two land within run-to-run noise of each other "
                    f"(bench/bench_batch.py --layers shows where each spends its time); the default input check "
                    f"(NaN/inf refused before running) is one more pass over the batch (see Throughput and "
                    f"bench/bench_batch.py --allow).")
    if conv:
        whys.append(f"Behind on {', '.join(conv)}: rtinfer runs a batch of a CNN sample by sample through the "
                    f"same conv kernels as one sample (no batched conv GEMM), so its batch rate is its "
                    f"per-sample rate.")
    return {"target": "rtinfer batch throughput at batch 256 >= onnxruntime with one thread",
            "measured": "rtinfer / onnxruntime: " + "; ".join(parts) if parts else "not run",
            "met": _verdict(oks), "why": " ".join(whys)}


def evaluate_targets(results) -> list:
    return [_target_in_loop_vs_stream(results), _target_int8_speedup(results), _target_vs_ort(results),
            _target_batch1(results), _target_cnn_vs_ort(results), _target_cnn_limit(results),
            _target_cnn_int8(results), _target_batch256(results)]


# -- plots ------------------------------------------------------------------------------------

def write_plots(results, samples, out_dir) -> list:
    """latency_cdf.png (per-sample CDF per engine, budget and limit lines) and latency_vs_size.png."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    recs = results["models"]
    keys = list(dict.fromkeys(r["key"] for r in recs))
    dtypes = list(dict.fromkeys(r["dtype"] for r in recs))
    engines = list(dict.fromkeys(e for r in recs for e in r["latency"]))
    colors = {e: plt.cm.tab10(i % 10) for i, e in enumerate(engines)}
    fig, axes = plt.subplots(len(keys), len(dtypes), figsize=(6.5 * len(dtypes), 3.4 * len(keys)), squeeze=False)
    for i, key in enumerate(keys):
        for j, dtype in enumerate(dtypes):
            ax = axes[i][j]
            r = next((m for m in recs if m["key"] == key and m["dtype"] == dtype), None)
            if r is None:
                ax.set_visible(False)
                continue
            for e, ns in samples[r["name"]].items():
                s = np.sort(np.asarray(ns, dtype=np.float64) / 1000.0)
                # at most ~2000 points: an even grid plus every sample of the top 0.5% (the tail)
                idx = np.unique(np.concatenate([np.linspace(0, len(s) - 1, 1500).astype(np.int64),
                                                np.arange(int(len(s) * 0.995), len(s))]))
                ax.plot(s[idx], (idx + 1) / len(s), color=colors[e], label=e, linewidth=1.2)
            ax.axvline(r["budget_us"], color="red", linestyle="--", label="budget")
            ax.axvline(r["limit"]["limit_us"], color="gray", linestyle=":", label="limit")
            ax.set_xscale("log")
            ax.set_title(f"{r['name']}  ({r['plan_weight_bytes'] / 1024:.0f} KiB weights, budget "
                         f"{r['budget_us']:g} us)", fontsize=9)
            ax.set_xlabel("per-sample latency (us, log)")
            ax.set_ylabel("CDF")
            ax.grid(True, which="both", alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    cdf_path = os.path.join(out_dir, "latency_cdf.png")
    fig.savefig(cdf_path, dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = {"fp32": "o", "int8": "^"}
    for e in engines:
        for dtype in dtypes:
            pts = sorted((r["plan_weight_bytes"], r["latency"][e]["p50_us"]) for r in recs
                         if r["dtype"] == dtype and e in r["latency"])
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers.get(dtype, "o"),
                        linestyle="-" if dtype == "fp32" else "--", color=colors[e],
                        label=f"{e} {dtype}")
    for dtype in dtypes:
        pts = sorted((r["plan_weight_bytes"], r["limit"]["limit_us"]) for r in recs if r["dtype"] == dtype)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers.get(dtype, "o"), color="black",
                linestyle=":", label=f"limit {dtype}")
    l2 = results["meta"]["machine"]["L2"]
    if l2:
        ax.axvline(l2, color="gray", linestyle="-.", label=f"L2 {l2 // 1024} KiB")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("weight bytes (log)")
    ax.set_ylabel("p50 per-sample latency (us, log)")
    ax.set_title("latency vs model size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    size_path = os.path.join(out_dir, "latency_vs_size.png")
    fig.savefig(size_path, dpi=90)
    plt.close(fig)
    return [os.path.basename(cdf_path), os.path.basename(size_path)]


# -- markdown ---------------------------------------------------------------------------------

def _fmt_rate(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M/s"
    if v >= 1e3:
        return f"{v / 1e3:.1f} k/s"
    return f"{v:.0f} /s"


def _fmt_bytes(n):
    return f"{n:,}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _met(v):
    return {True: "**met**", False: "**missed**", None: "not measured"}[v]


def render(results) -> str:
    meta, peaks, machine = results["meta"], results["peaks"], results["meta"]["machine"]
    st = meta["settings"]
    L = ["# rtinfer benchmark results", ""]
    L.append(f"Generated by `{meta['command']}` on {meta['date_utc']} in {meta['wall_seconds']:.0f} s"
             f"{' (quick smoke run: few samples, not for quoting)' if st['quick'] else ''}. "
             f"Every engine ran the same weights on the same inputs in one process; see Method.")
    L.append("")
    load = [v for v in list(machine["loadavg_start"][:1]) + list(meta["loadavg_end"][:1]) if v == v]
    if load and max(load) >= 0.5:
        L.append(f"**Load note:** the machine was not idle: 1-minute load average {machine['loadavg_start'][0]} at the "
                 f"start and {meta['loadavg_end'][0] if meta['loadavg_end'] else '?'} at the end on "
                 f"{machine['cores']} cores (other jobs were running). Engines were interleaved so that this noise "
                 f"hits all of them alike; tails (p99.9, max) are the figures it inflates most: samples of about 4 or 8 ms "
                 f"are preemptions (a scheduler time slice given to another process), not engine behaviour.")
        L.append("")
    L.append("## Machine and versions")
    L.append("")
    v = machine["versions"]
    L += _table(["item", "value"], [
        ["CPU", f"{machine['cpu']} ({machine['isa']})"],
        ["cores", machine["cores"]],
        ["caches", f"L1d {machine['L1d'] // 1024} KiB, L2 {machine['L2'] // 1024} KiB per core, "
                   f"L3 {machine['L3'] // 1024 // 1024} MiB"],
        ["load average (1/5/15 min) at start / end",
         f"{machine['loadavg_start']} / {meta['loadavg_end']} (other jobs shared the 2 cores when the "
         f"1-minute load is near or above 1)"],
        ["python", machine["python"]],
        ["numpy / numba", f"{v['numpy']} / {v['numba']}"],
        ["onnx / onnxruntime", f"{v['onnx']} / {v['onnxruntime']}"],
        ["torch / tract / scikit-learn", f"{v['torch']} / {v['tract']} / {v['sklearn']}"],
        ["platform", machine["platform"]],
        ["date", meta["date_utc"]],
        ["settings", f"{st['n']} timed samples per engine and model, chunks of {st['chunk']}, "
                     f"{st['warmup']} warm-up samples per chunk, {st['check']} cross-checked samples"],
    ])
    L.append("")

    L.append("## Targets")
    L.append("")
    L += _table(["target", "measured", "verdict", "why (when missed)"],
                [[t["target"], t["measured"], _met(t["met"]), t["why"] or "-"] for t in results["targets"]])
    L.append("")

    L.append("## Models")
    L.append("")
    L.append("Random models: `rtinfer.train.MLP` with He-initialized weights (seeded), ReLU hidden layers; "
             "int8 by `export.freeze(..., 'int8', calibration=N(0,1) data, reduce_range=True)`. "
             "`digits`: trained with rtinfer.train on the bundled digits, calibrated on its training split.")
    L.append("")
    rows = []
    for r in results["models"]:
        acc = r["info"].get("accuracy_frozen")
        rows.append([r["name"], r["role"], "-".join(map(str, r["sizes"])), r["n_layers"], f"{r['params']:,}",
                     _fmt_bytes(r["plan_weight_bytes"]), _fmt_bytes(r["arena_bytes"]),
                     _fmt_bytes(r["batch_arena_bytes"]), f"{r['macs']:,}", _fmt_bytes(r["rtm_bytes"]),
                     f"{r['budget_us']:g}", "-" if acc is None else f"{acc:.4f}"])
    L += _table(["model", "role", "sizes", "layers", "params", "weight bytes", "arena bytes (1 sample)",
                 "arena bytes (batch block)", "MACs", ".rtm bytes", "budget (us)", "test accuracy"], rows)
    L.append("")

    L.append("## Limits")
    L.append("")
    L.append(f"Measured peaks on one core: fp32 {peaks['fp32_gflops']:.1f} GFLOP/s (njit FMA chains "
             f"{peaks['fp32_gflops_njit']:.1f}, sgemm {peaks['fp32_gflops_sgemm']:.1f}, rtinfer's float32 conv "
             f"tile on L1-resident operands {peaks['fp32_gflops_tile']:.1f}"
             f"{'' if peaks['sgemm_single_thread'] else ' (BLAS threads not pinned)'}); int8 "
             f"{peaks['int8_gmacs_njit']:.1f} GMAC/s (int8 dot products, L1-resident, four rows per x load: "
             f"vpmaddwd loop in LLVM IR {peaks['int8_gmacs_pmaddwd']:.1f}, plain njit loop "
             f"{peaks['int8_gmacs_loop']:.1f}; rtinfer's uint8 x int8 conv tile "
             f"{peaks.get('int8_gmacs_u8s8_tile', 0.0):.1f}); "
             f"clock read in compiled code: {peaks['clock_overhead_ns']:.0f} ns between two reads (included in "
             f"every in-loop sample and in the streaming time alike). Interpreter floor (in-loop p50 of DENSE 1->1 "
             f"chains): {1000 * peaks['floor_1op_us']:.0f} ns for one op, +{1000 * peaks['per_op_us']:.0f} ns per "
             f"further op.")
    L.append("")
    rows = []
    for r in results["models"]:
        lim = r["limit"]
        rows.append([r["name"], _fmt_bytes(lim["streamed_bytes"]), lim["stream_pattern"], f"{lim['stream_us']:.3f}",
                     f"{lim['stream_gbps']:.0f}", f"{lim['macs']:,}", f"{lim['peak_drift']:.2f}",
                     f"{lim['compute_us']:.3f}", f"{lim['limit_us']:.3f}", lim["bound"]])
    L += _table(["model", "weight bytes streamed", "read pattern", "stream (us)", "stream GB/s", "MACs",
                 "peak drift", "compute at peak (us)", "limit (us)", "bound by"], rows)
    L.append("")
    L.append("Stream: median time of one read-only pass over the Runtime's packed weights (the bytes its kernels "
             "read, with alignment padding), timed in compiled code like an in-loop sample, one pass per sample "
             "slot inside the same round-robin chunks as the engines; read pattern: one sequential stream or "
             "four concurrent ones, whichever was faster in a pre-run. Compute: MACs at the fp32 FMA peak "
             "(2 flops per MAC; a direct convolution's MACs: float32 3x3 stride-1 layers that run Winograd "
             "F(2x2, 3x3), named so in the per-op rows, do 2.25x fewer multiplies, so a model with them can run "
             "below its limit) or at the int8 rate above, times the model's peak drift: a pass of rtinfer's "
             "own register tile (float32 conv tile; int8: the uint8 x int8 tile) on L1-resident operands, "
             "about 5 us of work, runs in the same round-robin chunks, and "
             "drift = its fastest median pass time when the peaks were measured (as the peaks are the best of a "
             "few runs) / its median pass time there "
             "(below 1: the machine ran slower while this model was timed; this shared machine's speed "
             "moves by up to 2x within minutes). limit = max(stream, compute).")
    L.append("")

    L.append("## Per-sample latency")
    L.append("")
    L.append("Microseconds per sample. *in-loop*: timed inside compiled code (what an embedded loop sees); "
             "*call*: one Python call per sample (what a Python host sees). `÷ predict_one`: this engine's "
             "p50 over rtinfer predict_one's p50. `× limit`: p50 over the model's limit (the `limit` row).")
    L.append("")
    for r in results["models"]:
        L.append(f"### {r['name']} (budget {r['budget_us']:g} us)")
        L.append("")
        ref = _p50(r, REF_ENGINE)
        lim = r["limit"]["limit_us"]
        rows = []
        for e, s in r["latency"].items():
            rows.append([e, s["kind"], f"{s['p50_us']:.2f}", f"{s['p99_us']:.2f}", f"{s['p999_us']:.2f}",
                         f"{s['max_us']:.2f}", f"{s['mean_us']:.2f}", f"{s['misses']}/{s['n']}",
                         "-" if ref is None else f"{s['p50_us'] / ref:.2f}",
                         f"{s['p50_us'] / lim:.1f}" if lim > 0 else "-"])
        rows.append([LIMIT_ROW, f"{r['limit']['bound']}-bound", f"{lim:.3f}", "-", "-", "-", "-", "-",
                     "-" if ref is None else f"{lim / ref:.2f}", "1.0"])
        L += _table(["engine", "kind", "p50", "p99", "p99.9", "max", "mean", "misses", "÷ predict_one",
                     "× limit"], rows)
        if r["per_op"]:
            ops = ", ".join(f"{o['label']}{' [' + o['kernel'] + ']' if o.get('kernel') else ''} "
                            f"{o['p50_us']:.3f} us ({100 * o['share']:.0f}%)" for o in r["per_op"])
            L.append("")
            named = ("; a convolution's or dense layer's kernel path in brackets, as `rtinfer inspect` names it"
                     if any(o.get("kernel") for o in r["per_op"]) else "")
            L.append(f"rtinfer in-loop per-op p50 (a separate pass timing every op; each op's time includes one "
                     f"clock read{named}): {ops}.")
        L.append("")

    L.append("## Throughput")
    L.append("")
    L.append("Samples per second from the median time of one call on a batch of B samples (engines interleaved "
             "call by call). rtinfer predict_one runs only B = 1; rtinfer in-loop is `stream` (every sample of "
             "the batch one at a time in one compiled call); rtinfer batch is `predict` (batch='auto': register-tiled GEMMs from 32 samples on). The `limit` row: "
             "1 / limit at B = 1; at B = 32 and 256 the weights are reused across samples, so 1 / compute time at "
             "the measured peak.")
    L.append("")
    for r in results["models"]:
        t = r["throughput"]
        ort256 = t.get("onnxruntime", {}).get("256")
        rows = []
        for e, d in t.items():
            rows.append([e] + [_fmt_rate(d.get(str(b))) for b in (1, 32, 256)]
                        + [f"{d['256'] / ort256:.2f}" if ort256 and d.get("256") else "-"])
        lim = r["limit"]
        rows.append([LIMIT_ROW, _fmt_rate(1e6 / lim["limit_us"]), _fmt_rate(1e6 / lim["compute_us"]),
                     _fmt_rate(1e6 / lim["compute_us"]), f"{1e6 / lim['compute_us'] / ort256:.2f}" if ort256 else "-"])
        L.append(f"### {r['name']}")
        L.append("")
        L += _table(["engine", "B=1", "B=32", "B=256", "B=256 ÷ onnxruntime"], rows)
        L.append("")

    L.append("## Cross-checks")
    L.append("")
    L.append("Before timing, each engine's outputs on the first samples were compared with "
             "`rtinfer.reference.run` (the NumPy golden executor); a mismatch beyond tolerance aborts the run. "
             "Tolerance: 1e-4 x max(1, max|reference|), plus one output LSB for int8 engines other than rtinfer "
             "(rtinfer int8 must match the reference's integers).")
    L.append("")
    rows = [[c["model"], c["engine"], c["path"], c["n"], f"{c['max_abs_diff']:.3g}", f"{c['tolerance']:.3g}",
             "ok" if c["ok"] else "FAIL"] for r in results["models"] for c in r["crosscheck"]]
    L += _table(["model", "engine", "path", "samples", "max abs diff", "tolerance", "result"], rows)
    L.append("")

    L.append("## Start-up")
    L.append("")
    su = results.get("startup") or {}
    if "error" in su:
        L.append(f"The start-up measurement failed: {su['error']}")
    elif su:
        L.append("Fresh processes: import numpy + rtinfer, then per file `rtinfer.load(path)` (read, plan, and the "
                 "compiled interpreter: compiled when the Numba cache is empty, loaded from it when warm) and the "
                 "first predict_one. Process wall time includes interpreter start-up.")
        L.append("")
        rows = []
        for kind in ("cold", "warm"):
            s = su.get(kind)
            if not s:
                continue
            label = "cold (empty NUMBA_CACHE_DIR: JIT first-compile)" if kind == "cold" else \
                f"warm cache (median of {s.get('runs', 1)})"
            for m in s["models"]:
                rows.append([label, m["file"], f"{s['import_s']:.3f}", f"{m['load_s']:.3f}",
                             f"{1e3 * m['first_sample_s']:.3f}", f"{s['process_wall_s']:.2f}"])
        L += _table(["cache", "model file", "import (s)", "load (s)", "first sample (ms)", "process wall (s)"], rows)
        if su.get("kinds"):
            from bench.suite_startup import KINDS_HEADER, kinds_table
            L.append("")
            L.append("Per model kind, each cold row with its own empty cache: a model compiles only the interpreter "
                     "variant its ops need (`dense` for MLPs, `conv` / `qconv` for float32 / int8 CNNs), and an MLP's "
                     "first batch predict compiles the batch path's variant. CPU = user + sys of the process.")
            L.append("")
            L += _table(KINDS_HEADER, kinds_table(su["kinds"]))
    else:
        L.append("Not measured in this run (--startup none).")
    L.append("")

    L.append("## Training")
    L.append("")
    tr = results.get("training")
    if tr and "skipped" in tr:
        L.append(f"Skipped: {tr['skipped']}.")
    elif tr:
        L.append(f"`bench/bench_train.py {' '.join(tr['argv'])}`: rtinfer.train MLP vs scikit-learn "
                 f"MLPClassifier, same setup (64-64-10 ReLU, Adam, digits).")
        L.append("")
        if tr["rows"]:
            L += _table(["batch", "trainer", "ms/epoch (median)", "test accuracy (median)"],
                        [[row["batch"], row["engine"], f"{row['ms_per_epoch']:.2f}", f"{row['accuracy']:.4f}"]
                         for row in tr["rows"]])
            L.append("")
        L.append("```")
        L += tr["output"].rstrip().splitlines()
        L.append("```")
    else:
        L.append("Not run (--no-training).")
    L.append("")

    L.append("## Engines skipped")
    L.append("")
    rows = [[r["name"], e, why] for r in results["models"] for e, why in r["skipped"].items()]
    if rows:
        L += _table(["model", "engine", "reason"], rows)
    else:
        L.append("None.")
    L.append("")

    L.append("## Plots")
    L.append("")
    plots = results.get("plots") or []
    if plots:
        for p in plots:
            L.append(f"![{p}]({p})")
            L.append("")
    else:
        L.append("Not written (--no-plots or matplotlib missing).")
        L.append("")

    L.append("## Method")
    L.append("")
    L.append("- Per-sample latency: engines interleaved in round-robin chunks (the starting engine rotates each "
             "chunk); each engine runs untimed warm-up samples at the start of its chunk; call engines get "
             "pre-sliced single-sample inputs and are timed with `time.perf_counter_ns` around the call; "
             "rtinfer in-loop uses `Runtime.measure(mode='in-loop')` (clock_gettime inside compiled code).")
    L.append("- Threads: BLAS/OpenMP pinned to 1 before NumPy loads; onnxruntime intra-op 1, inter-op 1, "
             "sequential; torch.set_num_threads(1); tract runs single-threaded.")
    L.append("- onnxruntime runs two ways on one session: `InferenceSession.run` (the documented call) and "
             "`run_with_iobinding` on preallocated buffers (its lowest-overhead call; the input copy into the "
             "bound buffer is inside the timed call). The targets name plain onnxruntime, i.e. `run`.")
    L.append("- onnxruntime and tract run the ONNX written by `export.to_onnx` (QDQ form for int8); torch runs "
             "nn.Linear/ReLU/Softmax built from the frozen fp32 weights; NumPy runs `x @ W + b` per layer.")
    L.append("- int8 models use `reduce_range=True` (weights in [-63, 63]) so onnxruntime's AVX2 int8 GEMM, "
             "which saturates u8*s8 pair sums in int16 on CPUs without VNNI, computes the same integers.")
    L.append("- The limit of a model is max(time to read its weight bytes once, its MACs at the measured peak); "
             "every p50 is also shown as a multiple of it. The weight-read pass takes its own slot in every "
             "round-robin chunk, so it is sampled under the same conditions as the engines.")
    L.append("- Budgets are per model role (control loop 100 us; 1 kHz classifiers 1 ms; audio frame 10 ms); "
             "`misses` counts samples over budget.")
    L.append("- Throughput: each engine's call on a fixed batch of B samples is timed repeatedly, engines "
             "interleaved call by call (rotating order); samples/s = B / median call time.")
    L.append("- int8 over fp32 (the int8 targets): after all models ran, each model built in both dtypes is "
             "timed again in-loop, fp32 and int8 alternating round by round (9 rounds of up to 300 samples, "
             "the first dtype swapped every round); the speed-up is the median of the per-round ratios of "
             "the two p50s. The two dtypes' rows in the tables come from separate timing phases, between "
             "which the machine's speed can move.")
    L.append("")
    return "\n".join(L)


def write_report(results, out_dir, json_path=None) -> str:
    """Write out_dir/RESULTS.md (atomically) and, when json_path is given, the results as JSON."""
    path = os.path.join(out_dir, "RESULTS.md")
    text = render(results)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    if json_path is not None:
        clean = dict(results)
        clean["models"] = [{k: v for k, v in r.items() if k != "rtm_path"} for r in results["models"]]
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(clean, fh, indent=1, default=float)
            fh.write("\n")
    return path
