"""rtinfer train: train a model on a shipped dataset or your own data and save a checkpoint.

Data: ``--dataset NAME`` (shipped, split by --test-size), or ``--data FILE``:
- ``.npz`` with arrays ``X`` and ``y`` (optionally ``X_test`` and ``y_test``: then no split);
- ``.npy`` holding X; labels from ``--labels FILE`` (.npy / .csv) or, for a 2-D X, the
  ``--target`` column (default: the last);
- ``.csv``: numeric feature columns and one target column (``--target`` name or index,
  default the last); a first row with non-numeric feature cells is a header.
``--test-data FILE`` gives a separate test set in the same forms. Task: integer, bool or string
labels make a classification, float targets a regression (``--task`` overrides).

Models: mlp (default), softmax, logistic, linear, and cnn: any layer stack from ``--layers``
(see LAYERS_HELP) on samples of ``--input-shape`` (default: the data's per-sample shape, 1x8x8
for the digits); a Dense head for the outputs is appended.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time

HELP = "train a NumPy model (MLP, CNN with residual blocks, softmax/logistic/linear regression) on a shipped dataset or your data"

DEFAULT_LAYERS = "conv:8:3,bn,relu,res[conv:8:3,bn,relu,conv:8:3,bn],relu,res[conv:16:3:2,bn,relu,conv:16:3,bn],relu,gap"
LAYERS_HELP = (
    "comma-separated layers for --model cnn: conv:OUT[:K[:STRIDE]] (padding keeps the size at stride 1), "
    "bn, relu/leaky_relu/tanh/sigmoid/softplus, maxpool[:K], avgpool[:K], gap (global average pool), "
    "flatten, dense:N, res[LAYERS] (residual block; a 1x1 conv or dense projection is added when the "
    "block changes the shape). A Dense head is appended (after a flatten if needed). "
    f"(default: {DEFAULT_LAYERS})")
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "softplus", "identity")
# flags that describe the model or the run; --resume takes them from the checkpoint
RUN_FLAGS = ("model", "hidden", "activation", "layers", "input_shape", "l2", "preprocess", "optimizer", "lr",
             "schedule", "batch_size", "validation_split", "seed")
DEFAULTS = {"model": "mlp", "hidden": [64], "activation": "relu", "layers": DEFAULT_LAYERS, "input_shape": None,
            "l2": 0.0, "preprocess": "standardize", "optimizer": "adam", "lr": None, "schedule": "constant",
            "batch_size": 32, "validation_split": 0.0, "seed": 0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default=None, choices=["digits", "breast_cancer", "diabetes"],
                      help="shipped dataset (default: digits, unless --data is given)")
    data.add_argument("--data", default=None, metavar="FILE", help="your data: .npz (X, y[, X_test, y_test]), .npy or .csv")
    data.add_argument("--labels", default=None, metavar="FILE", help="labels for an .npy --data (.npy or one-column .csv)")
    data.add_argument("--target", default=None, metavar="COLUMN",
                      help="target column of a .csv or 2-D .npy --data: a header name or an index (default: the last)")
    data.add_argument("--test-data", default=None, metavar="FILE", help="a separate test set, in the forms of --data")
    data.add_argument("--task", default="auto", choices=["auto", "classification", "regression"],
                      help="auto: integer/bool/string labels classify, float targets regress (default: auto)")
    data.add_argument("--test-size", type=float, default=0.2,
                      help="test fraction split off when there is no separate test set (default: 0.2)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=None, choices=["mlp", "cnn", "softmax", "logistic", "linear"],
                       help="model family (default: mlp)")
    model.add_argument("--hidden", type=int, nargs="*", default=None, metavar="N",
                       help="hidden layer widths for --model mlp (default: 64; none for no hidden layer)")
    model.add_argument("--activation", default=None, choices=ACTIVATIONS, help="hidden activation for mlp (default: relu)")
    model.add_argument("--layers", default=None, metavar="SPEC", help=LAYERS_HELP)
    model.add_argument("--input-shape", default=None, metavar="C,H,W",
                       help="per-sample shape for --model cnn, e.g. 1,8,8 or 1,64 (default: the data's; 1,8,8 for digits)")
    model.add_argument("--l2", type=float, default=None, help="L2 weight decay on weights, not biases (default: 0)")
    model.add_argument("--preprocess", default=None, choices=["standardize", "whiten", "none"],
                       help="input preprocessing fitted on the training part (default: standardize)")
    run = parser.add_argument_group("training")
    run.add_argument("--optimizer", default=None, choices=["sgd", "momentum", "adagrad", "rmsprop", "adam"],
                     help="optimizer for mlp/cnn/softmax (default: adam)")
    run.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's)")
    run.add_argument("--schedule", default=None, metavar="NAME",
                     help="learning-rate schedule: constant, inverse (1/t), cosine (over the whole run) or "
                          "step:EPOCHS[:GAMMA] (x GAMMA, default 0.1, every EPOCHS epochs) (default: constant)")
    run.add_argument("--epochs", type=int, default=30, help="epochs to run (default: 30)")
    run.add_argument("--batch-size", type=int, default=None, help="mini-batch size (default: 32)")
    run.add_argument("--validation-split", type=float, default=None,
                     help="fraction of the training data held out for validation, per class (default: 0)")
    run.add_argument("--early-stopping", action="store_true", help="stop when --monitor stalls; keep the best weights")
    run.add_argument("--monitor", default=None, choices=["loss", "accuracy", "val_loss", "val_accuracy"],
                     help="metric for --early-stopping (default: val_loss with validation data, else loss)")
    run.add_argument("--patience", type=int, default=None, help="epochs without improvement before stopping (default: 5)")
    run.add_argument("--seed", type=int, default=None, help="seeds the splits, the init and the shuffles (default: 0)")
    run.add_argument("--resume", default=None, metavar="CHECKPOINT",
                     help="continue the run saved in CHECKPOINT (optimizer state, history) for --epochs more epochs")
    run.add_argument("--quiet", action="store_true", help="no progress display on stderr")
    parser.add_argument("-o", "--output", default=None, metavar="FILE", help="checkpoint path to write (.npz) (default: none)")


# ---------------------------------------------------------------------------------- arguments
def _check_args(args) -> dict:
    """Flag values checked, with defaults filled in; ValueError naming the flag otherwise."""
    def positive_int(name, value):
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive integer; got {value}")

    positive_int("epochs", args.epochs)
    positive_int("batch-size", args.batch_size)
    positive_int("patience", args.patience)
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0; got {args.lr}")
    if args.l2 is not None and not (math.isfinite(args.l2) and args.l2 >= 0):
        raise ValueError(f"--l2 must be a finite number >= 0; got {args.l2}")
    if not 0.0 < args.test_size < 1.0:
        raise ValueError(f"--test-size must be in (0, 1); got {args.test_size}")
    if args.validation_split is not None and not 0.0 <= args.validation_split < 1.0:
        raise ValueError(f"--validation-split must be in [0, 1); got {args.validation_split}")
    if any(h < 1 for h in args.hidden or []):
        raise ValueError(f"--hidden widths must be positive integers; got {args.hidden}")
    if args.dataset is not None and args.data is not None:
        raise ValueError("give --dataset or --data, not both")
    for flag in ("labels", "target", "test_data"):
        if getattr(args, flag) is not None and args.data is None:
            raise ValueError(f"--{flag.replace('_', '-')} applies to --data only")
    if not args.early_stopping:
        for flag in ("monitor", "patience"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag} applies with --early-stopping only")
    if args.resume is not None:
        given = [f"--{f.replace('_', '-')}" for f in RUN_FLAGS if getattr(args, f) is not None]
        if given:
            raise ValueError(f"--resume continues the model and settings saved in the checkpoint; "
                             f"{', '.join(given)} cannot change them")
    settings = {f: DEFAULTS[f] if getattr(args, f) is None else getattr(args, f) for f in RUN_FLAGS}
    model = settings["model"]
    if model != "mlp" and (args.hidden is not None or args.activation is not None):
        raise ValueError(f"--hidden and --activation apply to --model mlp only (got --model {model})")
    if model != "cnn" and (args.layers is not None or args.input_shape is not None):
        raise ValueError(f"--layers and --input-shape apply to --model cnn only (got --model {model})")
    if model in ("logistic", "linear"):
        given = [f"--{f.replace('_', '-')}" for f in ("optimizer", "lr", "schedule", "batch_size", "validation_split")
                 if getattr(args, f) is not None]
        if given or args.early_stopping:
            given += ["--early-stopping"] if args.early_stopping else []
            raise ValueError(f"--model {model} is fitted by its full-batch solver; {', '.join(given)} do not apply")
    return settings


# ---------------------------------------------------------------------------------- data
def _read_csv(path):
    """(header or None, rows as lists of str) of a CSV file."""
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{path}: empty CSV file")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}: row {i + 1} has {len(row)} columns; the first has {width}")
    return rows


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _parse_labels(cells, where):
    """Integers, else floats, else strings (stripped)."""
    import numpy as np

    cells = [c.strip() for c in cells]
    try:
        return np.array([int(c) for c in cells], dtype=np.int64)
    except ValueError:
        pass
    try:
        return np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        pass
    if any(c == "" for c in cells):
        raise ValueError(f"{where}: empty target cell at row {[c == '' for c in cells].index(True) + 1}")
    return np.array(cells)


def _target_index(target, n_cols, header, where) -> int:
    if target is None:
        return n_cols - 1
    if header is not None and target in header:
        return header.index(target)
    try:
        i = int(target)
    except ValueError:
        names = f"; columns: {', '.join(header)}" if header else " (the file has no header: give an index)"
        raise ValueError(f"--target {target!r} is not a column of {where}{names}") from None
    if not -n_cols <= i < n_cols:
        raise ValueError(f"--target {i} is out of range for {where} with {n_cols} columns")
    return i % n_cols


def _load_csv(path, target):
    """(X (n, d) float64, y) from a CSV: the target column and the numeric feature columns."""
    import numpy as np

    rows = _read_csv(path)
    n_cols = len(rows[0])
    if n_cols < 2:
        raise ValueError(f"{path}: a CSV needs feature columns and a target column; it has {n_cols} column")
    first = [c.strip() for c in rows[0]]
    if target is not None and not _is_int(target):
        has_header = True  # the target is a column name
    else:
        j = _target_index(target, n_cols, None, path)
        has_header = not all(_is_number(c) for k, c in enumerate(first) if k != j)
    header = first if has_header else None
    if has_header:
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{path}: a header and no data rows")
    j = _target_index(target, n_cols, header, path)
    cols = [c for c in range(n_cols) if c != j]
    X = np.empty((len(rows), len(cols)))
    for i, row in enumerate(rows):
        for k, c in enumerate(cols):
            try:
                X[i, k] = float(row[c])
            except ValueError:
                name = repr(header[c]) if header else f"column {c}"
                raise ValueError(f"{path}: row {i + 1 + has_header}, {name}: {row[c]!r} is not a number") from None
    return X, _parse_labels([row[j] for row in rows], path)


def _is_int(text) -> bool:
    try:
        int(text)
        return True
    except (TypeError, ValueError):
        return False


def _load_npy(path):
    import numpy as np

    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npy/.npz file: {exc}") from None
    return arr


def _load_file(path, labels_path, target):
    """(X, y, X_test or None, y_test or None) from --data / --test-data."""
    import numpy as np

    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        if labels_path is not None:
            raise ValueError("--labels applies to an .npy --data; a .csv holds its target column (--target)")
        X, y = _load_csv(path, target)
        return X, y, None, None
    if ext not in (".npy", ".npz"):
        raise ValueError(f"{path}: unsupported data file type {ext!r}; use .npz, .npy or .csv")
    loaded = _load_npy(path)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded as npz:
            arrays = {k: npz[k] for k in npz.files}
        keys = {k.lower(): k for k in arrays}
        if "x" not in keys or ("y" not in keys and labels_path is None):
            raise ValueError(f"{path}: an .npz needs arrays 'X' and 'y' (optionally 'X_test', 'y_test'); "
                             f"it has {', '.join(sorted(arrays)) or 'none'}")
        if labels_path is not None:
            raise ValueError(f"--labels: {path} holds its own 'y'")
        X, y = arrays[keys["x"]], arrays[keys["y"]]
        Xt, yt = arrays.get(keys.get("x_test", "")), arrays.get(keys.get("y_test", ""))
        if (Xt is None) != (yt is None):
            raise ValueError(f"{path}: 'X_test' and 'y_test' come together")
        return X, y, Xt, yt
    X = loaded
    if labels_path is not None:
        if target is not None:
            raise ValueError("give --labels or --target, not both")
        y = _load_csv_column(labels_path) if labels_path.lower().endswith(".csv") else _load_npy(labels_path)
        if isinstance(y, np.lib.npyio.NpzFile):
            raise ValueError(f"--labels {labels_path}: give an .npy array (or a one-column .csv), not an .npz")
        return X, y, None, None
    if X.ndim != 2:
        raise ValueError(f"{path}: X has shape {X.shape}; give its labels with --labels FILE")
    j = _target_index(target, X.shape[1], None, path)
    return np.delete(X, j, axis=1), X[:, j], None, None


def _load_csv_column(path):
    rows = _read_csv(path)
    if len(rows[0]) != 1:
        raise ValueError(f"--labels {path}: a labels .csv needs one column; it has {len(rows[0])}")
    cells = [r[0] for r in rows]
    if not _is_number(cells[0]) and len(cells) > 1 and all(_is_number(c) for c in cells[1:]):
        cells = cells[1:]  # a header
    return _parse_labels(cells, path)


def _task(y, requested: str) -> str:
    if requested != "auto":
        return requested
    return "regression" if y.dtype.kind in "fc" else "classification"


def _data(args, seed: int):
    """(name, task, X_train, y_train, X_test, y_test); ``seed`` seeds the train/test split."""
    import numpy as np
    from rtinfer.train import datasets

    if args.data is None:
        ds = datasets.load(args.dataset or "digits", test_size=args.test_size, seed=seed)
        return ds.name, ds.task, ds.X_train, ds.y_train, ds.X_test, ds.y_test
    X, y, Xt, yt = _load_file(args.data, args.labels, args.target)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if len(X) != len(y):
        raise ValueError(f"--data {args.data}: X has {len(X)} samples but y has {len(y)}")
    task = _task(y, args.task)
    if args.test_data is not None:
        if Xt is not None:
            raise ValueError(f"--test-data: {args.data} holds its own X_test")
        Xt, yt, _, _ = _load_file(args.test_data, None, args.target)
    if Xt is None:
        labels = y if task == "classification" else None
        tr, te = datasets.split_indices(labels if labels is not None else np.zeros(len(y)), args.test_size,
                                        seed, stratify=labels is not None)
        X, y, Xt, yt = X[tr], y[tr], X[te], y[te]
    return os.path.basename(args.data), task, X, y, Xt, np.asarray(yt)


# ---------------------------------------------------------------------------------- layers
def _split_items(spec: str) -> list[str]:
    items, depth, cur = [], 0, ""
    for ch in spec:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"--layers: unbalanced ']' in {spec!r}")
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if depth:
        raise ValueError(f"--layers: unbalanced '[' in {spec!r}")
    items.append(cur.strip())
    if any(not item for item in items):
        raise ValueError(f"--layers: empty item in {spec!r}")
    return items


def _ints(parts, item, names):
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--layers: {item!r}: {', '.join(names)} must be integers") from None


def _build_layers(spec: str, shape: tuple) -> tuple[list, tuple]:
    """Layers from the compact --layers spec, chained from the per-sample ``shape``."""
    from rtinfer.train import (Activation, AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D, Dense, Flatten,
                               GlobalAvgPool, MaxPool1D, MaxPool2D, Residual)

    layers = []
    for item in _split_items(spec):
        name, _, rest = item.partition(":")
        name = name.strip().lower()
        parts = [p for p in rest.split(":")] if rest else []
        if name.startswith("res[") and item.endswith("]"):
            body, out = _build_layers(item[4:-1], shape)
            shortcut = None
            if out != shape:
                if len(shape) == 1 and len(out) == 1:
                    shortcut = Dense(shape[0], out[0])
                elif len(shape) == len(out) and len(shape) >= 2:
                    stride = tuple(-(-a // b) for a, b in zip(shape[1:], out[1:]))
                    conv = Conv1D if len(shape) == 2 else Conv2D
                    shortcut = conv(shape[0], out[0], 1, stride=stride if len(stride) > 1 else stride[0])
                else:
                    raise ValueError(f"--layers: {item!r} changes the sample from {shape} to {out}; no projection fits")
            layer = Residual(body, shortcut)
        elif name == "conv":
            if not 1 <= len(parts) <= 3:
                raise ValueError(f"--layers: {item!r}: use conv:OUT[:K[:STRIDE]]")
            vals = _ints(parts, item, ["OUT", "K", "STRIDE"])
            out_ch, k, stride = (vals + [3, 1])[:3] if len(vals) == 1 else (vals + [1])[:3]
            if len(shape) not in (2, 3):
                raise ValueError(f"--layers: {item!r} needs channels-first samples (C, L) or (C, H, W); got {shape}")
            conv = Conv1D if len(shape) == 2 else Conv2D
            layer = conv(shape[0], out_ch, k, stride=stride, padding="same" if stride == 1 else k // 2)
        elif name == "bn":
            layer = BatchNorm(shape[0])
        elif name in ACTIVATIONS:
            layer = Activation(name)
        elif name in ("maxpool", "avgpool"):
            k = _ints(parts, item, ["K"])[0] if parts else 2
            if len(shape) not in (2, 3):
                raise ValueError(f"--layers: {item!r} needs channels-first samples; got {shape}")
            pools = {("maxpool", 2): MaxPool1D, ("maxpool", 3): MaxPool2D, ("avgpool", 2): AvgPool1D,
                     ("avgpool", 3): AvgPool2D}
            layer = pools[(name, len(shape))](k)
        elif name == "gap":
            layer = GlobalAvgPool()
        elif name == "flatten":
            layer = Flatten()
        elif name == "dense":
            if len(parts) != 1:
                raise ValueError(f"--layers: {item!r}: use dense:N")
            if len(shape) != 1:
                layers.append(Flatten())
                shape = Flatten().build(shape)
            layer = Dense(shape[0], _ints(parts, item, ["N"])[0])
        else:
            raise ValueError(f"--layers: unknown layer {item!r}; {LAYERS_HELP}")
        try:
            shape = tuple(layer.build(shape))
        except ValueError as exc:
            raise ValueError(f"--layers: {item!r}: {exc}") from None
        layers.append(layer)
    return layers, shape


def _input_shape(args, X, name):
    import numpy as np

    if args.input_shape is not None:
        try:
            shape = tuple(int(v) for v in args.input_shape.replace("x", ",").split(","))
        except ValueError:
            raise ValueError(f"--input-shape must be comma-separated integers like 1,8,8; got {args.input_shape!r}") from None
        if not shape or min(shape) < 1:
            raise ValueError(f"--input-shape must be positive integers; got {args.input_shape!r}")
    elif X.ndim > 2:
        shape = tuple(X.shape[1:])
    elif name == "digits":
        shape = (1, 8, 8)
    else:
        raise ValueError("--model cnn needs --input-shape (e.g. 1,64 for 64 samples of one channel) for flat data")
    if int(np.prod(shape)) != int(np.prod(X.shape[1:])):
        raise ValueError(f"--input-shape {shape} holds {int(np.prod(shape))} values; the samples have "
                         f"{int(np.prod(X.shape[1:]))}")
    return shape


# ---------------------------------------------------------------------------------- progress
class Progress:
    """Per-epoch progress on stderr: one line rewritten in place on a terminal, else one line
    per epoch (at most one a second for long runs, and always the last)."""

    def __init__(self, total: int, stream=None):
        self.total, self.stream = total, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.last = -math.inf
        self.first_epoch = None

    def __call__(self, history) -> None:
        if self.first_epoch is None:
            self.first_epoch = history.epochs
        done = history.epochs - self.first_epoch + 1
        now = time.perf_counter()
        eta = (now - self.start) / done * (self.total - done)
        width = 20
        bar = "#" * round(width * done / self.total) + "-" * (width - round(width * done / self.total))
        text = f"[{bar}] {history.line(self.first_epoch + self.total - 1)}  ETA {eta:.0f}s"
        if self.tty:
            print("\r" + text + "\033[K", end="", file=self.stream, flush=True)
        elif self.total <= 30 or now - self.last >= 1.0 or done == self.total:
            self.last = now
            print(text, file=self.stream, flush=True)

    def finish(self) -> None:
        """End the in-place line on a terminal (call after fit, however it ended)."""
        if self.tty and self.first_epoch is not None:
            print(file=self.stream, flush=True)


# ---------------------------------------------------------------------------------- run
def _schedule(text: str, epochs: int, steps_per_epoch: int):
    from rtinfer.train import Cosine, StepDecay

    name, _, rest = text.partition(":")
    if name in ("constant", "inverse") and not rest:
        return name
    if name == "cosine" and not rest:
        return Cosine(epochs * steps_per_epoch)
    if name == "step":
        parts = rest.split(":") if rest else []
        try:
            every = int(parts[0])
            gamma = float(parts[1]) if len(parts) > 1 else 0.1
        except (IndexError, ValueError):
            raise ValueError(f"--schedule step needs step:EPOCHS[:GAMMA], e.g. step:10:0.5; got {text!r}") from None
        if every < 1 or len(parts) > 2:
            raise ValueError(f"--schedule step needs step:EPOCHS[:GAMMA] with EPOCHS >= 1; got {text!r}")
        return StepDecay(every * steps_per_epoch, gamma)
    raise ValueError(f"--schedule must be constant, inverse, cosine or step:EPOCHS[:GAMMA]; got {text!r}")


def _make_model(settings, args, name, task, X, y):
    import numpy as np
    from rtinfer.train import CNN, MLP, Dense, LinearRegression, LogisticRegression, SoftmaxRegression

    kind = settings["model"]
    pre = None if settings["preprocess"] == "none" else settings["preprocess"]
    classification = task == "classification"
    n_classes = len(np.unique(y)) if classification else None
    if classification:
        out_units, output = (1, "sigmoid") if n_classes == 2 else (n_classes, "softmax")
    else:
        out_units, output = (1 if y.ndim == 1 else y.shape[1]), "identity"
    common = {"l2": settings["l2"], "preprocess": pre, "seed": settings["seed"]}
    if kind == "mlp":
        d = int(np.prod(X.shape[1:]))
        return MLP([d, *settings["hidden"], out_units], activation=settings["activation"], output=output, **common)
    if kind == "cnn":
        shape = _input_shape(args, X, name)
        layers, out = _build_layers(settings["layers"], shape)
        if len(out) != 1:
            from rtinfer.train import Flatten
            layers.append(Flatten())
            out = (int(np.prod(out)),)
        layers.append(Dense(out[0], out_units))
        return CNN(shape, layers, output=output, **common)
    if kind == "softmax":
        if not classification:
            raise ValueError(f"--model softmax needs a classification dataset; {name} is regression")
        return SoftmaxRegression(n_classes=n_classes, **common)
    if kind == "logistic":
        if not classification or n_classes != 2:
            raise ValueError(f"--model logistic needs a binary classification dataset (breast_cancer); {name} is not")
        return LogisticRegression(**{**common, "l2": settings["l2"] or 1e-3})
    if classification:
        raise ValueError(f"--model linear needs a regression dataset (diabetes); {name} is not")
    return LinearRegression(**common)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from rtinfer.train import fit, load_model
    from rtinfer.train.optimizers import OPTIMIZERS

    settings = _check_args(args)
    model = None
    if args.resume is not None:
        model = load_model(args.resume)
        if model.optimizer_ is None:
            raise ValueError(f"--resume {args.resume}: the checkpoint holds no optimizer state (not saved after a fit)")
        settings["seed"] = model.train_state_["seed"]  # the same train/test split as the saved run
    name, task, X, y, Xt, yt = _data(args, settings["seed"])
    if model is None:
        model = _make_model(settings, args, name, task, X, y)
    print(f"{name}: {len(X)} train / {len(Xt)} test samples, {int(np.prod(X.shape[1:]))} features, {task}")
    if getattr(model, "solver", "minibatch") != "minibatch":  # full-batch solvers (Newton / closed form)
        model.fit(X, y)
        print(f"{type(model).__name__} fitted ({model.n_iter_} iterations)")
    else:
        if args.resume is not None:
            kwargs = {"resume": True}
        else:
            n_fit = len(X) - round(settings["validation_split"] * len(X))
            steps = max(1, math.ceil(n_fit / settings["batch_size"]))
            schedule = _schedule(settings["schedule"], args.epochs, steps)
            lr = {} if settings["lr"] is None else {"lr": settings["lr"]}
            kwargs = {"optimizer": OPTIMIZERS[settings["optimizer"]](**lr, schedule=schedule),
                      "batch_size": settings["batch_size"], "seed": settings["seed"],
                      "validation_split": settings["validation_split"]}
        if args.early_stopping:
            kwargs.update(early_stopping=True, monitor=args.monitor, patience=args.patience)
        progress = None if args.quiet else Progress(args.epochs)
        try:
            history = fit(model, X, y, epochs=args.epochs, callback=progress, verbose=False, **kwargs)
        finally:
            if progress is not None:
                progress.finish()
        print("history:", history.summary())
    metric = "test accuracy" if task == "classification" else "test R^2"
    print(f"{type(model).__name__} {metric}: {model.score(Xt, yt):.4f}")
    if args.output:
        model.save(args.output)
        print(f"saved {args.output}")
    return 0
