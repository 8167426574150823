"""The command line's traps from issue 14, one test each: every one of them failed before.

Run in-process through rtinfer.cli.main (a traceback would fail the test); exit codes: 0 pass,
1 budget missed, 2 user error (argparse's own usage errors raise SystemExit(2)).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import rtinfer
from rtinfer import cli
from rtinfer._testmodels import fp32_mlp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "onnx")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "mlp.rtm"
    fp32_mlp([64, 16, 10], head="softmax").save(path)
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from rtinfer.train import MLP, datasets, fit
    ds = datasets.load("digits")
    model = MLP([64, 8, 10], activation="relu", output="softmax", seed=0)
    fit(model, ds.X_train, ds.y_train, epochs=1, seed=0, verbose=False)
    path = tmp_path_factory.mktemp("ckpt") / "m.npz"
    model.save(path)
    return str(path)


def _main(*args):
    return cli.main([str(a) for a in args])


def _usage_error(*args):
    """argparse refusals: SystemExit(2)."""
    with pytest.raises(SystemExit) as exc:
        _main(*args)
    return exc.value.code


# -- -o/--output: a file everywhere, its extension the format ---------------------------------

def test_freeze_to_onnx_writes_onnx(checkpoint, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "out.onnx"
    assert _main("freeze", checkpoint, "-o", out) == 0
    assert not out.read_bytes().startswith(b"\x89RTM")  # it used to write .rtm bytes here
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert "(onnx," in capsys.readouterr().out


@pytest.mark.parametrize("name", ["noext", "model.txt", "model.npz"])
def test_freeze_refuses_an_unknown_extension_before_loading(checkpoint, tmp_path, capsys, name):
    assert _main("freeze", checkpoint, "-o", tmp_path / name) == 2
    err = capsys.readouterr().err
    assert "-o/--output" in err and ".onnx, .rtm" in err
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("content, says", [
    (b"this is not a model\n", "not a zip archive"),
    (b"", "empty"),
    ("RTM", "is an .rtm model, already frozen"),
    ("ONNX", "is an ONNX model"),
])
def test_freeze_says_what_a_non_checkpoint_is(tmp_path, capsys, content, says):
    """numpy's "allow_pickle ... if you trust the file" advice was printed for all of these."""
    path = tmp_path / ("in.onnx" if content == "ONNX" else "in.rtm" if content == "RTM" else "in.npz")
    if content == "RTM":
        fp32_mlp([4, 2]).save(path)
    elif content == "ONNX":
        path.write_bytes(open(os.path.join(DATA, "torch_mlp.onnx"), "rb").read())
    else:
        path.write_bytes(content)
    assert _main("freeze", path, "-o", tmp_path / "x.rtm") == 2
    err = capsys.readouterr().err
    assert says in err and "allow_pickle" not in err and "pickle.load" not in err
    assert not (tmp_path / "x.rtm").exists()


def test_freeze_junk_as_a_subprocess_has_no_traceback(tmp_path):
    (tmp_path / "junk.npz").write_bytes(os.urandom(64))
    proc = subprocess.run([sys.executable, "-m", "rtinfer.cli", "freeze", str(tmp_path / "junk.npz"),
                           "-o", str(tmp_path / "x.rtm")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("rtinfer freeze: error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr and "allow_pickle" not in proc.stderr


def test_train_without_output_is_refused_before_training(capsys):
    assert _usage_error("train", "--epochs", "1") == 2  # it used to train and save nothing
    assert "-o/--output" in capsys.readouterr().err
    assert _main("train", "--epochs", "1", "-o", "model.txt") == 2
    assert ".npz" in capsys.readouterr().err


def test_output_folder_checked_first(checkpoint, tmp_path, capsys):
    assert _main("freeze", checkpoint, "-o", tmp_path / "missing" / "m.rtm") == 2
    assert "does not exist" in capsys.readouterr().err
    assert _main("freeze", checkpoint, "-o", tmp_path) == 2  # a folder


def test_convert_output_is_a_file_and_graph_output_is_renamed(tmp_path, capsys):
    pytest.importorskip("onnx")
    src = os.path.join(DATA, "sklearn_mlp.onnx")
    assert _main("convert", src, "-o", tmp_path / "a.rtm") == 0
    assert _main("convert", src, tmp_path / "b.rtm", "--graph-output", "probabilities") == 0
    assert (tmp_path / "a.rtm").read_bytes() == (tmp_path / "b.rtm").read_bytes()
    capsys.readouterr()
    # the old spelling --output NAME is now the output file: refused with a pointer to --graph-output
    assert _main("convert", src, tmp_path / "c.rtm", "--output", "probabilities") == 2
    assert "--graph-output" in capsys.readouterr().err
    assert not (tmp_path / "c.rtm").exists()
    assert _main("convert", src, "-o", tmp_path / "c.txt") == 2
    help_text = _help("convert")
    assert "-o DST, --output DST" in help_text and "--graph-output NAME" in help_text


# -- --version, --help, flag names ------------------------------------------------------------

def _help(*command):
    from contextlib import redirect_stdout
    from io import StringIO
    buf = StringIO()
    with redirect_stdout(buf), pytest.raises(SystemExit) as exc:
        cli.main([*command, "--help"])
    assert exc.value.code == 0
    return buf.getvalue()


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"rtinfer {rtinfer.__version__} (python ") and "numba " in out


def test_help_shows_defaults_and_bench_exit_codes():
    text = _help("bench")
    for default in ("(default: 99.9)", "(default: 10000)", "(default: 1000)", "(default: in-loop)"):
        assert default in text
    assert "exit codes:" in text
    for line in ("0    the latency", "1    it is not", "2    usage, file or model error"):
        assert line in text
    assert "(default: 30)" in _help("demo") and "(default: float32)" in _help("freeze")
    assert "(default: 30)" in _help("train")  # --epochs: defaults shown for every command


def test_errors_name_flags_not_api_parameters(model_path, capsys):
    assert _usage_error("bench", model_path, "--budget-us", "0") == 2
    err = capsys.readouterr().err
    assert "argument --budget-us: expected a positive number" in err and "budget_us" not in err
    assert _usage_error("bench", model_path, "--budget-us", "10", "--percentile", "100.5") == 2
    assert "argument --percentile" in capsys.readouterr().err
    _, _, parsers = cli.build_parser()
    msg = cli._flag_names("budget_us must be a positive number; batch_size too", parsers["bench"])
    assert msg == "--budget-us must be a positive number; --batch-size too"
    msg = cli._flag_names("epochs must be a positive integer; after 3 epochs", parsers["train"])
    assert msg == "--epochs must be a positive integer; after 3 epochs"


# -- bench: outputs checked before the run, warnings, the new measurements ----------------------

@pytest.mark.parametrize("extra, says", [
    (["--plot", "cdf.txt"], "extension"),                 # used to write a PNG into cdf.txt
    (["--plot", "NOFOLDER/cdf.png"], "does not exist"),   # used to run, print PASS, then exit 2
    (["--json", "r.txt"], "--json"),
    (["--json", "NOFOLDER/r.json"], "does not exist"),
    (["--samples"], "--json"),
    (["--duration", "1", "--repeat", "2"], "not both"),
    (["--batch-size", "8"], "--mode batch"),
    (["--input", "x.csv"], "PATH.npy"),
    (["--input", "dataset:nope"], "unknown dataset"),
])
def test_bench_refuses_before_measuring(model_path, tmp_path, capsys, extra, says):
    extra = [e.replace("NOFOLDER", str(tmp_path / "nope")) if "NOFOLDER" in e
             else str(tmp_path / e) if e in ("cdf.txt", "r.txt", "x.csv") else e for e in extra]
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 10, *extra) == 2
    out, err = capsys.readouterr()
    assert says in err and "PASS" not in out and "latency" not in out
    assert not (tmp_path / "cdf.txt").exists() and not (tmp_path / "r.txt").exists()


def test_bench_refuses_a_model_with_a_wrong_extension(tmp_path, capsys):
    (tmp_path / "m.txt").write_text("x")
    assert _main("bench", tmp_path / "m.txt", "--budget-us", 10) == 2
    assert "MODEL" in capsys.readouterr().err


def test_bench_warns_when_n_is_too_small(model_path, capsys):
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 1, "--warmup", 0) == 0
    out = capsys.readouterr().out
    assert "warning: n=1 is too few for p99.9" in out and "at least 10000" in out


def test_bench_quiet_prints_the_verdict_and_warnings(model_path, capsys):
    assert _main("bench", model_path, "--budget-us", 1e-6, "--n", 5, "--warmup", 0, "--quiet", "--mode", "call") == 1
    out, err = capsys.readouterr()
    assert out.startswith("p99.9 = ") and out.rstrip().endswith("FAIL") and out.count("\n") == 1
    assert "too few for p99.9" in err


def test_bench_report_and_json_carry_the_run(model_path, tmp_path, capsys):
    j = tmp_path / "r.json"
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 200, "--warmup", 10, "--repeat", 2,
                 "--json", j, "--samples") == 0
    out = capsys.readouterr().out
    for word in ("machine", "features", "load", "init (load)", "first inference", "peak RSS", "threads",
                 "2 passes", "weights (stored)"):
        assert word in out
    d = json.loads(j.read_text())
    assert d["verdict"] == "PASS" and d["n"] == 400 and d["passes"] == 2 and len(d["samples_us"]) == 400
    assert d["model"] == model_path and d["model_info"]["input_shape"] == [64]
    assert set(d["versions"]) >= {"rtinfer", "numpy", "numba", "python"}
    assert d["machine"]["cores"] >= 1 and isinstance(d["machine"]["features"], list)
    assert d["init_ms"] > 0 and d["first_inference_us"] > 0 and d["peak_rss_bytes"] > 0
    assert d["settings"]["repeat"] == 2


def test_bench_duration_batch_threads_and_pinning(model_path, tmp_path, capsys):
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    j = tmp_path / "b.json"
    args = ["bench", model_path, "--budget-us", 1e9, "--n", 20, "--warmup", 16, "--mode", "batch",
            "--batch-size", 8, "--duration", 0.05, "--json", j]
    if before is not None:
        args += ["--cpu", str(min(before))]
    assert _main(*args) == 0
    d = json.loads(j.read_text())
    assert d["mode"] == "batch" and d["batch_size"] == 8 and d["n"] % 20 == 0 and d["throughput_per_s"] > 0
    if before is not None:
        assert d["settings"]["cpu"] == [min(before)]
        assert os.sched_getaffinity(0) == before  # restored after the run
    pytest.importorskip("threadpoolctl")
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 20, "--warmup", 0, "--threads", 1, "--json", j) == 0
    assert json.loads(j.read_text())["settings"]["threads"] == 1


def test_bench_inputs_from_npz_and_dataset(model_path, tmp_path, capsys):
    X = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    np.savez(tmp_path / "x.npz", X=X)
    np.savez(tmp_path / "two.npz", a=X, b=X)
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 20, "--warmup", 0, "--input", tmp_path / "x.npz") == 0
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 20, "--warmup", 0,
                 "--input", f"{tmp_path / 'two.npz'}:b") == 0
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 20, "--warmup", 0,
                 "--input", "dataset:digits") == 0
    assert "dataset:digits" in capsys.readouterr().out
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 20, "--input", tmp_path / "two.npz") == 2
    assert "pick one with" in capsys.readouterr().err
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 20, "--input", "dataset:breast_cancer") == 2
    assert "shape (N, 64)" in capsys.readouterr().err


def test_bench_plot_in_the_extension_format(model_path, tmp_path):
    pytest.importorskip("matplotlib")
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 100, "--warmup", 0, "--plot", tmp_path / "t.svg") == 0
    assert b"<svg" in (tmp_path / "t.svg").read_bytes()[:1000]


# -- one definition of weight bytes -------------------------------------------------------------

def test_weight_bytes_agree_across_reports(model_path, tmp_path, capsys):
    from rtinfer.plan import build_plan
    from rtinfer.rtm import load_frozen
    frozen = load_frozen(model_path)
    stored, packed = frozen.weight_bytes, build_plan(frozen).weight_bytes
    assert stored != packed  # the case the issue saw: 5840 in inspect, 5984 in bench
    both = f"weights (stored) {stored} B, (packed) {packed} B"
    assert _main("inspect", model_path) == 0
    assert both in capsys.readouterr().out
    assert _main("bench", model_path, "--budget-us", 1e9, "--n", 10, "--warmup", 0, "--json", tmp_path / "r.json") == 0
    assert both in capsys.readouterr().out
    d = json.loads((tmp_path / "r.json").read_text())
    assert (d["weights_stored_bytes"], d["weights_packed_bytes"]) == (stored, packed)
    assert _main("inspect", model_path, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["weights_stored_bytes"], info["weights_packed_bytes"]) == (stored, packed)


# -- discoverability ---------------------------------------------------------------------------

def test_dir_shows_the_public_api():
    names = dir(rtinfer)
    for name in ("load", "Runtime", "InputError", "LatencyReport", "load_frozen", "save_frozen", "FrozenModel"):
        assert name in names
    from rtinfer.runtime import InputError
    assert rtinfer.InputError is InputError and issubclass(InputError, ValueError)
    assert set(rtinfer.__all__) <= set(names)


def test_readme_states_the_input_rule():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert "C-contiguous" in text and "float32" in text and "rtinfer.InputError" in text


def test_bench_quick_writes_to_a_scratch_folder(tmp_path):
    sys.path.insert(0, ROOT)
    try:
        from bench import run as bench_run
    finally:
        sys.path.remove(ROOT)
    args = bench_run.build_parser().parse_args(["--quick"])
    out = bench_run.output_dir(args)
    assert os.path.isdir(out) and os.path.realpath(out) != os.path.realpath(bench_run.BENCH_DIR)
    os.rmdir(out)
    assert bench_run.output_dir(bench_run.build_parser().parse_args([])) == bench_run.BENCH_DIR
    assert bench_run.output_dir(bench_run.build_parser().parse_args(["--quick", "--out", str(tmp_path)])) == str(tmp_path)
