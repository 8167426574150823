"""``rtinfer train`` on your own data (.npz / .npy / .csv), CNN specs with residual blocks,
schedules, --resume, the progress display, and errors that name the flag."""

import os

import numpy as np
import pytest

from rtinfer.cli import main
from rtinfer.train import CNN, Residual, datasets, load_model


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", seed=0)


def _run(capsys, *argv):
    argv = list(map(str, argv))
    if "-o" not in argv and "--output" not in argv:  # -o is required (rtinfer.cli); these tests check other flags
        import tempfile
        argv += ["-o", str(os.path.join(tempfile.mkdtemp(), "model.npz"))]
    rc = main(["train", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_npz_with_string_labels(tmp_path, capsys, digits):
    names = np.array(list("abcdefghij"))
    data = tmp_path / "d.npz"
    np.savez(data, X=digits.X_train, y=names[digits.y_train], X_test=digits.X_test, y_test=names[digits.y_test])
    rc, out, err = _run(capsys, "--data", data, "--hidden", 16, "--epochs", 5, "--quiet", "-o", tmp_path / "m.npz")
    assert rc == 0, err
    assert "1438 train / 359 test samples, 64 features, classification" in out
    model = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(model.classes_, names)
    reported = float(out.split("test accuracy: ")[1].split()[0])
    assert reported == pytest.approx(model.score(digits.X_test, names[digits.y_test]), abs=1e-4) and reported > 0.8


def test_csv_with_header_named_target_and_regression(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    species = np.where(X[:, 0] + X[:, 1] > 0, "setosa", "virginica")
    path = tmp_path / "flowers.csv"
    lines = ["width,species,length,height"] + [f"{a:.6f},{s},{b:.6f},{c:.6f}" for (a, b, c), s in zip(X, species)]
    path.write_text("\n".join(lines) + "\n")
    rc, out, err = _run(capsys, "--data", path, "--target", "species", "--epochs", 40, "--lr", 0.01, "--quiet", "-o", tmp_path / "f.npz")
    assert rc == 0, err
    assert "160 train / 40 test samples, 3 features, classification" in out
    model = load_model(tmp_path / "f.npz")
    assert model.output == "sigmoid" and list(model.classes_) == ["setosa", "virginica"]
    assert float(out.split("test accuracy: ")[1].split()[0]) > 0.9
    # no header, numeric float target in the last column: a regression
    reg = tmp_path / "reg.csv"
    reg.write_text("\n".join(f"{a},{b},{2 * a - b + 0.5}" for a, b in rng.normal(size=(100, 2))) + "\n")
    rc, out, err = _run(capsys, "--data", reg, "--model", "linear")
    assert rc == 0, err and "regression" in out
    assert float(out.split("test R^2: ")[1].split()[0]) > 0.999


def test_npy_images_with_labels_and_a_residual_cnn_spec(tmp_path, capsys, digits):
    X, y = tmp_path / "X.npy", tmp_path / "y.npy"
    np.save(X, digits.X_train[:400].reshape(-1, 1, 8, 8))
    np.save(y, digits.y_train[:400])
    rc, out, err = _run(capsys, "--data", X, "--labels", y, "--model", "cnn", "--epochs", 3,
                        "--layers", "conv:6:3,bn,relu,res[conv:6:3,bn,relu,conv:6:3,bn],relu,res[conv:8:3:2,relu],gap",
                        "--schedule", "cosine", "-o", tmp_path / "c.npz")
    assert rc == 0, err
    model = load_model(tmp_path / "c.npz")
    assert type(model) is CNN and model.input_shape == (1, 8, 8)
    blocks = [layer for layer in model.layers if isinstance(layer, Residual)]
    assert [b.shortcut for b in blocks][0] is None and blocks[1].shortcut.spec()["stride"] == [2, 2]
    assert model.layers[-1].n_out == 10 and model.optimizer_.schedule.name == "cosine"
    assert model.optimizer_.schedule.total_steps == 3 * 10  # 320 training samples / 32
    # progress display (not a terminal): one line per epoch with a bar
    assert err.count("epoch ") == 3 and "[####################] epoch 3/3" in err


def test_resume_continues_the_saved_run(tmp_path, capsys):
    rc, _, err = _run(capsys, "--hidden", 8, "--epochs", 2, "--validation-split", 0.1, "--schedule", "step:1:0.5",
                      "--quiet", "-o", tmp_path / "a.npz")
    assert rc == 0, err
    rc, out, err = _run(capsys, "--resume", tmp_path / "a.npz", "--epochs", 2, "--quiet", "-o", tmp_path / "b.npz")
    assert rc == 0, err and "history: 4 epochs" in out
    rc, _, err = _run(capsys, "--hidden", 8, "--epochs", 4, "--validation-split", 0.1, "--schedule", "step:1:0.5",
                      "--quiet", "-o", tmp_path / "c.npz")
    resumed, straight = load_model(tmp_path / "b.npz"), load_model(tmp_path / "c.npz")
    assert resumed.get_parameters().tobytes() == straight.get_parameters().tobytes()
    assert resumed.history_.loss == straight.history_.loss


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs must be a positive integer; got 0"),
    (["--batch-size", "-2"], "--batch-size must be a positive integer"),
    (["--lr", "0"], "--lr must be a finite number > 0"),
    (["--test-size", "1.5"], "--test-size must be in (0, 1)"),
    (["--validation-split", "1"], "--validation-split must be in [0, 1)"),
    (["--dataset", "digits", "--data", "x.npz"], "give --dataset or --data, not both"),
    (["--labels", "y.npy"], "--labels applies to --data only"),
    (["--patience", "3"], "--patience applies with --early-stopping only"),
    (["--layers", "conv:4:3"], "--layers and --input-shape apply to --model cnn only"),
    (["--model", "logistic", "--dataset", "breast_cancer", "--lr", "0.1"], "full-batch solver; --lr do not apply"),
    (["--model", "cnn", "--layers", "conv:4:3,wobble"], "--layers: unknown layer 'wobble'"),
    (["--model", "cnn", "--layers", "res[conv:4:3"], "unbalanced '['"),
    (["--model", "cnn", "--input-shape", "1,9,9"], "--input-shape (1, 9, 9) holds 81 values; the samples have 64"),
    (["--schedule", "linear"], "--schedule must be constant, inverse, cosine or step:EPOCHS[:GAMMA]"),
    (["--data", "missing.csv"], "missing.csv: no such file"),
    (["--resume", "x.npz", "--lr", "0.1"], "--resume continues the model and settings saved in the checkpoint; --lr"),
])
def test_errors_name_the_flag(capsys, argv, message):
    rc, _, err = _run(capsys, *argv)
    assert rc == 2 and message in err and "Traceback" not in err, err


def test_bad_data_files(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,0\n3,oops,1\n")
    rc, _, err = _run(capsys, "--data", bad)
    assert rc == 2 and "row 3, 'b': 'oops' is not a number" in err
    npz = tmp_path / "noy.npz"
    np.savez(npz, features=np.zeros((4, 2)))
    rc, _, err = _run(capsys, "--data", npz)
    assert rc == 2 and "needs arrays 'X' and 'y'" in err and "features" in err
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((10, 2, 2)))
    rc, _, err = _run(capsys, "--data", flat)
    assert rc == 2 and "give its labels with --labels" in err


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for text in ("(default: 30)", "(default: 32)", "(default: adam)", "(default: mlp)", "(default: 0.2)",
                 "(default: standardize)", "-o FILE, --output FILE"):
        assert text in out, text
