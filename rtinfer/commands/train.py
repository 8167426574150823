"""rtinfer train: train a model on a shipped dataset and save a checkpoint."""

from __future__ import annotations

import argparse

HELP = "train a NumPy model (MLP, softmax/logistic/linear regression) on a shipped dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", choices=["digits", "breast_cancer", "diabetes"],
                        help="shipped dataset (default digits)")
    parser.add_argument("--model", default="mlp", choices=["mlp", "softmax", "logistic", "linear"],
                        help="model family (default mlp)")
    parser.add_argument("--hidden", type=int, nargs="*", default=[64], metavar="N",
                        help="hidden layer widths for --model mlp (default 64; none for no hidden layer)")
    parser.add_argument("--activation", default="relu",
                        choices=["relu", "leaky_relu", "sigmoid", "tanh", "softplus", "identity"])
    parser.add_argument("--optimizer", default="adam", choices=["sgd", "momentum", "adagrad", "rmsprop", "adam"])
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--l2", type=float, default=0.0, help="L2 weight decay on weights (not biases)")
    parser.add_argument("--preprocess", default="standardize", choices=["standardize", "whiten", "none"])
    parser.add_argument("--validation-split", type=float, default=0.0)
    parser.add_argument("--early-stopping", action="store_true", help="stop when the monitored loss stalls; keep the best weights")
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seeds the split, the init and the shuffles")
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress on stderr")
    parser.add_argument("-o", "--output", default=None, help="checkpoint path (.npz)")


def run(args: argparse.Namespace) -> int:
    from rtinfer.train import MLP, LinearRegression, LogisticRegression, SoftmaxRegression, datasets, fit

    ds = datasets.load(args.dataset, test_size=args.test_size, seed=args.seed)
    pre = None if args.preprocess == "none" else args.preprocess
    d = ds.X_train.shape[1]
    classification = ds.task == "classification"
    if args.model == "mlp":
        if classification and ds.n_classes == 2:
            sizes, output = [d, *args.hidden, 1], "sigmoid"
        elif classification:
            sizes, output = [d, *args.hidden, ds.n_classes], "softmax"
        else:
            sizes, output = [d, *args.hidden, 1], "identity"
        model = MLP(sizes, activation=args.activation, output=output, l2=args.l2, preprocess=pre, seed=args.seed)
    elif args.model == "softmax":
        if not classification:
            raise ValueError(f"--model softmax needs a classification dataset; {args.dataset} is regression")
        model = SoftmaxRegression(n_classes=ds.n_classes, l2=args.l2, preprocess=pre, seed=args.seed)
    elif args.model == "logistic":
        if ds.n_classes != 2:
            raise ValueError(f"--model logistic needs a binary dataset (breast_cancer); {args.dataset} is not")
        model = LogisticRegression(l2=args.l2 or 1e-3, preprocess=pre, seed=args.seed)
    else:
        if classification:
            raise ValueError(f"--model linear needs a regression dataset (diabetes); {args.dataset} is not")
        model = LinearRegression(l2=args.l2, preprocess=pre, seed=args.seed)

    print(f"{ds.name}: {len(ds.X_train)} train / {len(ds.X_test)} test samples, {d} features")
    if args.model in ("logistic", "linear"):  # full-batch solvers (Newton / closed form)
        model.fit(ds.X_train, ds.y_train)
        print(f"{type(model).__name__} fitted ({getattr(model, 'n_iter_', 0)} iterations)")
    else:
        history = fit(model, ds.X_train, ds.y_train, optimizer=args.optimizer, lr=args.lr, epochs=args.epochs,
                      batch_size=args.batch_size, seed=args.seed, validation_split=args.validation_split,
                      early_stopping=args.early_stopping, patience=args.patience if args.early_stopping else None,
                      verbose=not args.quiet)
        print("history:", history.summary())
    metric = "test accuracy" if classification else "test R^2"
    print(f"{type(model).__name__} {metric}: {model.score(ds.X_test, ds.y_test):.4f}")
    if args.output:
        model.save(args.output)
        print(f"saved {args.output}")
    return 0
