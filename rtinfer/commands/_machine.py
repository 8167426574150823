"""Facts about the machine and the process for benchmark reports: CPU, features, load, RSS,
versions, thread pools. Linux-first; every probe degrades to "unknown" instead of failing."""

from __future__ import annotations

import os
import platform
import sys

# CPU features that decide which kernels rtinfer and other engines can use
_FEATURES = ("sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni",
             "avxvnni", "amx-int8", "neon", "sve", "dotprod", "i8mm")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_features() -> dict:
    """{'name': llvm's host CPU name, 'features': [the relevant enabled ones]} (llvmlite, from Numba)."""
    try:
        from llvmlite import binding as llvm
        feats = llvm.get_host_cpu_features()
        enabled = [f for f in _FEATURES if feats.get(f, False)]
        return {"name": llvm.get_host_cpu_name(), "features": enabled}
    except Exception:  # noqa: BLE001 - a report without features is still a report
        return {"name": "unknown", "features": []}


def affinity():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def peak_rss_bytes():
    """The process's peak resident set size (getrusage ru_maxrss), or None."""
    try:
        import resource
        v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return int(v) if sys.platform == "darwin" else int(v) * 1024  # bytes on macOS, KiB on Linux


def blas_threads():
    """[{'api': 'blas', 'lib': 'openblas', 'threads': 1}, ...] from threadpoolctl, or None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{"api": p.get("user_api"), "lib": p.get("internal_api"), "threads": p.get("num_threads")}
            for p in threadpool_info()]


def versions() -> dict:
    from importlib import metadata

    import rtinfer

    out = {"rtinfer": rtinfer.__version__, "python": platform.python_version()}
    for dist in ("numpy", "numba", "llvmlite"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    for mod in ("onnx", "onnxruntime"):  # only when this process imported them
        if mod in sys.modules:
            out[mod] = getattr(sys.modules[mod], "__version__", None)
    return out


def machine_info() -> dict:
    cpu = cpu_features()
    return {"cpu": cpu_model(), "llvm_cpu": cpu["name"], "features": cpu["features"],
            "cores": os.cpu_count(), "affinity": affinity(), "loadavg": loadavg(),
            "platform": platform.platform()}
