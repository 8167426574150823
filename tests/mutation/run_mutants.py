"""Mutation check: plant each bug of tests/mutation/mutants.py in a copy of the project, run the
tests named for it, and report whether they caught it (killed) or not (survived).

    python tests/mutation/run_mutants.py                 # every mutant; exit 1 if any survives
    python tests/mutation/run_mutants.py --only qconv-requant-half-up latency-p99-is-p95
    python tests/mutation/run_mutants.py --list
    python tests/mutation/run_mutants.py --markdown docs/MUTATION.md   # also write the report

How: the project (rtinfer/, export/, tests/, bench/, fuzz/, pyproject.toml, README.md, docs/) is
copied once into a temporary folder *with its __pycache__ folders*, and the union of the
mutants' tests runs there unmutated first (it must pass; this also fills the copy's Numba cache).
Each mutant then gets a fresh copy of that folder with one snippet replaced, and its tests run
in a subprocess (``python -m pytest -x -q -p no:cacheprovider -m "not slow" ...``) with that copy first on
PYTHONPATH and as the working directory, so the copy's modules are the ones imported. Numba
keys its cache on the source file's contents, so only the mutated file's functions (and, for a
kernels*.py file, the other kernel modules, which inline each other's helpers; the interpreter
stamps its cache with all the sources it compiles in) are compiled again.

A mutant is killed when pytest exits 1 (a test failed); survived when it exits 0; anything else
(a collection error, a timeout) is reported as an error. A mutant whose snippet no longer occurs
exactly once in its file is stale: update the list. The run fails unless every mutant is killed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from mutants import MUTANTS, Mutant  # noqa: E402

COPY = ("rtinfer", "export", "tests", "bench", "fuzz", "docs", "pyproject.toml", "README.md")
KERNEL_FILES = ("kernels.py", "kernels_conv.py", "kernels_gemm.py")
TIMEOUT = 1800  # seconds per pytest run


def check(m: Mutant) -> str | None:
    """None if the mutant applies to the current sources, else why not."""
    path = ROOT / m.file
    if not path.exists():
        return f"{m.file} does not exist"
    n = path.read_text().count(m.find)
    return None if n == 1 else f"its snippet occurs {n} times in {m.file}"


def copy_tree(src: Path, dst: Path) -> None:
    ignore = shutil.ignore_patterns(".git", "*.egg-info", ".pytest_cache", "*.rtm.tmp*")
    dst.mkdir(parents=True)
    for name in COPY:
        s = src / name
        if s.is_dir():
            shutil.copytree(s, dst / name, ignore=ignore, symlinks=True)
        elif s.exists():
            shutil.copy2(s, dst / name)


def drop_numba_cache(tree: Path, stems) -> None:
    cache = tree / "rtinfer" / "__pycache__"
    for stem in stems:
        for f in cache.glob(f"{stem}.*.nb[ic]"):
            f.unlink()


def run_pytest(tree: Path, args, log: Path) -> tuple[int, float]:
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)  # the copy's own in-tree cache
    env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    t0 = time.monotonic()
    with open(log, "w") as fh:
        try:
            rc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 "-m", "not slow", *args],
                                cwd=tree, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    return rc, time.monotonic() - t0


def imports_copy(tree: Path) -> bool:
    env = dict(os.environ, PYTHONPATH=str(tree) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", "import rtinfer, export; print(rtinfer.__file__, export.__file__)"],
                         cwd=tree, env=env, capture_output=True, text=True).stdout.split()
    return len(out) == 2 and all(Path(p).resolve().is_relative_to(tree.resolve()) for p in out)


def failing_test(log: Path) -> str:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].split(" - ")[0]
    return ""


def markdown(results, started, elapsed, args_line) -> str:
    import numba
    import numpy
    import onnx
    killed = sum(r["status"] == "killed" for r in results)
    lines = [
        "# Mutation check",
        "",
        "Bugs planted one at a time in the hot paths (the list and the tests meant to catch each are in",
        "`tests/mutation/mutants.py`); every one must make a test fail. Run before a release, or as a",
        "slow job:",
        "",
        "```",
        "python tests/mutation/run_mutants.py --markdown docs/MUTATION.md",
        "RTINFER_MUTATION=1 python -m pytest -q tests/test_mutation.py   # the same, as a (slow) test",
        "```",
        "",
        "How it works: `tests/mutation/run_mutants.py` copies the project (with its Numba cache) to a",
        "temporary folder, runs the union of the mutants' tests there unmutated (they must pass), then",
        "for each mutant a fresh copy with one snippet replaced and its tests in a subprocess: killed",
        "when a test fails, survived when all pass. A mutant whose snippet is gone after a refactor is",
        "reported as stale and fails the run until the list is updated.",
        "",
        "## Last result",
        "",
        f"{started} UTC, {elapsed / 60:.1f} min, `{args_line}`; Python {platform.python_version()}, numpy "
        f"{numpy.__version__}, numba {numba.__version__}, onnx {onnx.__version__}, {platform.machine()}.",
        "",
        f"**{killed} of {len(results)} mutants killed.**",
        "",
        "| mutant | file | planted bug | result | first failing test | s |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["mutant"]
        lines.append(f"| `{m.id}` | `{m.file}` | {m.why} | {r['status']} | `{r['test']}` | {r['seconds']:.0f} |"
                     if r["test"] else
                     f"| `{m.id}` | `{m.file}` | {m.why} | {r['status']} | {r['detail']} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="ID", help="run these mutants only")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--markdown", metavar="FILE", help="write the result as Markdown (docs/MUTATION.md)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copies and logs")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run (not for reports)")
    args = ap.parse_args(argv)

    ids = [m.id for m in MUTANTS]
    if len(set(ids)) != len(ids):
        print("duplicate mutant ids", file=sys.stderr)
        return 2
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    unknown = set(args.only or ()) - set(ids)
    if unknown:
        print(f"unknown mutant ids: {sorted(unknown)}", file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.id:40} {m.file:28} {' '.join(m.tests)}")
        return 0

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="rtinfer-mutants-"))
    base = work / "base"
    copy_tree(ROOT, base)
    if not imports_copy(base):
        print(f"error: python does not import rtinfer/export from the copy in {base}", file=sys.stderr)
        return 2
    results = []
    stale = [(m, check(m)) for m in chosen if check(m)]
    for m, why in stale:
        results.append({"mutant": m, "status": "stale", "test": "", "detail": why, "seconds": 0.0})
        print(f"STALE     {m.id}: {why}", flush=True)
    live = [m for m in chosen if not check(m)]

    if not args.no_baseline and live:
        union = []
        for m in live:  # the union of test files (a -k expression narrows one mutant's run only)
            union += [a for a in m.tests if a.startswith("tests/") and a not in union]
        print(f"baseline: {len(union)} test files, unmutated ...", flush=True)
        rc, sec = run_pytest(base, union, work / "baseline.log")
        if rc != 0:
            print(f"error: the unmutated copy fails its tests (exit {rc}, {sec:.0f} s); see {work / 'baseline.log'}",
                  file=sys.stderr)
            return 2
        print(f"baseline passed in {sec:.0f} s", flush=True)

    for m in live:
        tree = work / m.id
        shutil.copytree(base, tree, symlinks=True)
        path = tree / m.file
        path.write_text(path.read_text().replace(m.find, m.replace))
        if Path(m.file).name in KERNEL_FILES:
            drop_numba_cache(tree, [Path(f).stem for f in KERNEL_FILES])
        log = work / f"{m.id}.log"
        rc, sec = run_pytest(tree, m.tests, log)
        status = {1: "killed", 0: "survived", -1: "timeout"}.get(rc, f"error (pytest exit {rc})")
        test = failing_test(log) if rc == 1 else ""
        results.append({"mutant": m, "status": status, "test": test, "detail": "" if test else log.name,
                        "seconds": sec})
        print(f"{status.upper():9} {m.id} ({sec:.0f} s){': ' + test if test else ''}", flush=True)
        if not args.keep:
            shutil.rmtree(tree, ignore_errors=True)

    elapsed = time.monotonic() - t_start
    killed = sum(r["status"] == "killed" for r in results)
    print(f"{killed} of {len(results)} mutants killed in {elapsed / 60:.1f} min", flush=True)
    if args.markdown:
        line = "python tests/mutation/run_mutants.py" + (f" --only {' '.join(args.only)}" if args.only else "")
        Path(args.markdown).write_text(markdown(results, started, elapsed, line))
    if args.keep:
        print(f"copies and logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
