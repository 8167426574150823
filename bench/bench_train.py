"""Training benchmark: rtinfer.train MLP vs scikit-learn's MLPClassifier on the shipped digits.

Same problem for both: 64-64-10 ReLU MLP, softmax cross-entropy, Adam (lr, beta1 0.9, beta2 0.999,
eps 1e-8), same batch size, same number of epochs (no early stopping, no tolerance stop), L2 weight
decay on weights only, standardized inputs (fitted on the training split), the same seeded
stratified 80/20 split. scikit-learn's ``alpha`` penalises 0.5 * alpha * |W|^2 / batch_size per
batch, so rtinfer gets l2 = alpha / batch_size (identical except on a shorter last batch).

rtinfer runs twice: with its default init (He normal before ReLU) and with init="glorot"
(Glorot uniform, the scheme scikit-learn uses), which converges a little faster in 30 epochs.

Reported per configuration: median over repeats (different seeds) of the time per epoch
(whole fit / epochs; includes shuffling and per-batch overhead) and of the test accuracy.

    python bench/bench_train.py [--repeats 5] [--epochs 30] [--batch-sizes 32 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 200])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=1e-4, help="scikit-learn alpha (L2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads for both (set before numpy is imported; default 1)")
    args = parser.parse_args(argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    from rtinfer.train import MLP, Adam, datasets, fit

    warnings.simplefilter("ignore", ConvergenceWarning)
    ds = datasets.load("digits", test_size=0.2, seed=0)
    print(f"digits: {len(ds.X_train)} train / {len(ds.X_test)} test, MLP 64-64-10 relu, Adam lr {args.lr}, "
          f"{args.epochs} epochs, alpha {args.alpha}, {args.repeats} repeats, BLAS threads {args.threads}")
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}")
    header = f"{'batch':>5}  {'engine':<22} {'ms/epoch (median)':>18} {'min':>7} {'max':>7}  {'test acc (median)':>17} {'min':>6} {'max':>6}"
    print(header)
    print("-" * len(header))
    for bs in args.batch_sizes:
        results = {"rtinfer.train": ([], []), "rtinfer.train glorot": ([], []), "sklearn MLPClassifier": ([], [])}
        for rep in range(args.repeats):
            seed = rep
            # rtinfer: default init (He before ReLU), and Glorot uniform (scikit-learn's scheme)
            for name, init in (("rtinfer.train", "auto"), ("rtinfer.train glorot", "glorot")):
                model = MLP([64, 64, 10], activation="relu", output="softmax", l2=args.alpha / bs,
                            preprocess="standardize", seed=seed, init=init)
                t0 = time.perf_counter()
                fit(model, ds.X_train, ds.y_train, optimizer=Adam(args.lr), epochs=args.epochs, batch_size=bs,
                    seed=seed)
                dt = time.perf_counter() - t0
                results[name][0].append(dt / args.epochs * 1e3)
                results[name][1].append(model.score(ds.X_test, ds.y_test))
            # scikit-learn (scaler fit included in the timed region, as rtinfer's preprocessor is)
            clf = MLPClassifier(hidden_layer_sizes=(64,), activation="relu", solver="adam", alpha=args.alpha,
                                batch_size=bs, learning_rate_init=args.lr, max_iter=args.epochs, shuffle=True,
                                random_state=seed, tol=0.0, n_iter_no_change=args.epochs + 1,
                                early_stopping=False)
            t0 = time.perf_counter()
            scaler = StandardScaler().fit(ds.X_train)
            clf.fit(scaler.transform(ds.X_train), ds.y_train)
            dt = time.perf_counter() - t0
            assert clf.n_iter_ == args.epochs
            results["sklearn MLPClassifier"][0].append(dt / args.epochs * 1e3)
            results["sklearn MLPClassifier"][1].append(clf.score(scaler.transform(ds.X_test), ds.y_test))
        med = {}
        for name, (times, accs) in results.items():
            med[name] = float(np.median(times))
            print(f"{bs:>5}  {name:<22} {np.median(times):>18.2f} {min(times):>7.2f} {max(times):>7.2f}  "
                  f"{np.median(accs):>17.4f} {min(accs):>6.4f} {max(accs):>6.4f}")
        print(f"{bs:>5}  speed-up (sklearn / rtinfer epoch time): {med['sklearn MLPClassifier'] / med['rtinfer.train']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
