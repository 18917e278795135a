"""scikit-learn's "RBM features for digit classification", unsupnn's RBMTransformer beside BernoulliRBM.

    python examples/sklearn_rbm_digits.py                  # seed 0
    python examples/sklearn_rbm_digits.py --seeds 0 1 2 3 4

The protocol of scikit-learn's example: digits nudged by one pixel in four directions (5x the data),
min-max scaled to [0, 1], train_test_split(test_size=0.2, random_state=0); 100 hidden units, learning rate
0.06, batch size 10, 10 passes; LogisticRegression(C=6000, solver="newton-cg") on the features, and one
on the raw pixels (C=100) for reference. Both RBMs sit in the same Pipeline; only the step differs.

Everything runs on one thread by default (``--threads``): both RBMs get the same compute, and on a small
busy machine the BLAS and OpenMP thread pools of numpy, scipy and torch no longer wait on each other
(that made LogisticRegression up to 30x slower on 2 shared cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import minmax_scale
from threadpoolctl import threadpool_limits

from unsupnn.data.digits import nudge
from unsupnn.sklearn import RBMTransformer


def protocol_data() -> list[np.ndarray]:
    """X_train, X_test, y_train, y_test of scikit-learn's example."""
    X, y = load_digits(return_X_y=True)
    X, y = nudge(X.astype(np.float32), y)
    X = minmax_scale(X, feature_range=(0, 1))
    return train_test_split(X, y, test_size=0.2, random_state=0)


def pipelines(seed: int) -> dict[str, Pipeline]:
    rbm = dict(n_components=100, learning_rate=0.06, batch_size=10, n_iter=10, random_state=seed)
    return {
        "unsupnn RBMTransformer": Pipeline([
            ("rbm", RBMTransformer(**rbm)),
            ("logistic", LogisticRegression(C=6000, solver="newton-cg")),
        ]),
        "sklearn BernoulliRBM": Pipeline([
            ("rbm", BernoulliRBM(**rbm)),
            ("logistic", LogisticRegression(C=6000, solver="newton-cg")),
        ]),
    }


def compare(seed: int = 0, data: list[np.ndarray] | None = None, threads: int | None = 1) -> dict[str, tuple[float, float]]:
    """{pipeline: (test accuracy, seconds to fit it)} for both RBMs, fitted with ``random_state=seed``
    on at most ``threads`` threads (None: the libraries' defaults)."""
    X_train, X_test, y_train, y_test = data if data is not None else protocol_data()
    results = {}
    with threadpool_limits(limits=threads):
        for name, pipeline in pipelines(seed).items():
            start = time.perf_counter()
            pipeline.fit(X_train, y_train)
            seconds = time.perf_counter() - start
            results[name] = (float(pipeline.score(X_test, y_test)), seconds)
    return results


def main(argv: list[str] | None = None) -> dict[int, dict[str, tuple[float, float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="random_state of both RBMs")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw-pixel logistic regression")
    parser.add_argument("--threads", type=int, default=1, help="thread limit for numpy, scipy and torch (0: none)")
    args = parser.parse_args(argv)
    threads = args.threads or None

    data = protocol_data()
    print(f"{'seed':>4}  {'pipeline':<24} {'test accuracy':>13} {'fit seconds':>11}")
    if not args.no_raw:
        X_train, X_test, y_train, y_test = data
        start = time.perf_counter()
        with threadpool_limits(limits=threads):
            raw = LogisticRegression(C=100, solver="newton-cg").fit(X_train, y_train)
        print(f"{'-':>4}  {'raw pixels (C=100)':<24} {raw.score(X_test, y_test):>13.4f} {time.perf_counter() - start:>11.2f}")
    results = {}
    for seed in args.seeds:
        results[seed] = compare(seed, data, threads)
        for name, (accuracy, seconds) in results[seed].items():
            print(f"{seed:>4}  {name:<24} {accuracy:>13.4f} {seconds:>11.2f}", flush=True)
    return results


if __name__ == "__main__":
    main()
