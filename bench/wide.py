"""Benchmark: fitting the grid's pipelines on wide matrices (issue 20, item 5).

A source with hundreds of numeric columns (bag-of-words charge descriptions, as COMPAS's
example) must train without a quadratic slowdown. On generated rows (``--rows``, default 3000:
a few categorical columns and ``token_*`` 0/1 columns, a few per row, as word counts are) it
times, interleaved (one round fits every width and path once, so a busy machine slows all
alike) and repeated:

* ``build_pipeline`` + ``fit`` for logistic regression and LightGBM at 400, 800 and 1600 token
  columns, on the narrow path (``before``: the dense StandardScaler pipeline and LightGBM on
  every column, what every width got before the wide rule; forced by raising
  ``WIDE_COLUMNS`` above the width) and on the wide path (``after``: the rule as shipped,
  which applies from ``WIDE_COLUMNS`` = 500 columns, so at 400 both are the narrow path);
* ``Features.resolve`` of the glob ``token_*`` over the same columns (it should be linear);

and prints each width's median seconds, the ratio to the previous width (per doubling: about
2 is linear, about 4 quadratic) and, for the fits, after / before at the same width (the
baseline, measured in the same run), with the held-out ROC AUC of both so the speed is not
bought with accuracy.

Run: ``PYTHONPATH=src .venv/bin/python bench/wide.py [--repeat 3] [--rows 3000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from rudikit.config import Features
from rudikit.models import estimators
from rudikit.models.estimators import GridPoint, build_pipeline

WIDTHS = (400, 800, 1600)
ALGORITHMS = {"logistic_regression": {}, "lightgbm": {"n_estimators": 100, "num_leaves": 15}}
PATHS = {"before": 10**9, "after": estimators.WIDE_COLUMNS}  # path -> the wide threshold


def frame(rows: int, width: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with three categories and ``width`` sparse 0/1 token columns; the label depends on
    a few tokens and a category."""
    rng = np.random.default_rng(seed)
    tokens = (rng.random((rows, width)) < 4 / width).astype(float)
    data = pd.DataFrame(tokens, columns=[f"token_{i}" for i in range(width)])
    for c in ("charge_degree", "sex", "race"):
        data[c] = rng.choice(list("abcd"), size=rows)
    logit = -1 + 2 * tokens[:, :5].sum(axis=1) + (data["charge_degree"] == "a") * 1.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return data, y


def fit_seconds(algorithm: str, data: pd.DataFrame, y: np.ndarray, path: str,
                held_out: tuple[pd.DataFrame, np.ndarray]) -> tuple[float, float]:
    """(seconds to build and fit, ROC AUC on ``held_out``) on ``path``."""
    estimators.WIDE_COLUMNS = PATHS[path]
    features, _ = Features(categorical=["charge_degree", "sex", "race"],
                           numeric=["token_*"]).resolve(list(data.columns))
    started = time.perf_counter()
    pipeline, fit_params = build_pipeline(GridPoint(algorithm, ALGORITHMS[algorithm]), features)
    pipeline.fit(data, y, **fit_params)
    seconds = time.perf_counter() - started
    return seconds, roc_auc_score(held_out[1], pipeline.predict_proba(held_out[0])[:, 1])


def resolve_seconds(columns: list[str], repeat: int = 20) -> float:
    spec = Features(categorical=["charge_degree"], numeric=["token_*", "tok?n_1*"])
    started = time.perf_counter()
    for _ in range(repeat):
        spec.resolve(columns)
    return (time.perf_counter() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=3000)
    args = parser.parse_args()
    frames = {w: frame(args.rows, w) for w in WIDTHS}
    held_out = {w: frame(args.rows, w, seed=1) for w in WIDTHS}
    times: dict[tuple[str, ...], list[float]] = {}
    auc: dict[tuple[str, ...], float] = {}
    for _ in range(args.repeat):
        for width in WIDTHS:  # interleaved: every width and path once per round
            data, y = frames[width]
            for algorithm in ALGORITHMS:
                for path in PATHS:
                    key = (algorithm, path, str(width))
                    seconds, auc[key] = fit_seconds(algorithm, data, y, path, held_out[width])
                    times.setdefault(key, []).append(seconds)
            times.setdefault(("Features.resolve", "", str(width)), []).append(
                resolve_seconds(list(data.columns)))
    print(f"{args.rows} rows, median of {args.repeat} interleaved rounds")
    print(f"{'what':<22}{'path':>7}{'columns':>8}{'seconds':>10}{'x previous':>11}"
          f"{'after/before':>13}{'ROC AUC':>9}")
    for what in ALGORITHMS:
        for path in PATHS:
            previous = None
            for width in WIDTHS:
                key = (what, path, str(width))
                median = statistics.median(times[key])
                before = statistics.median(times[(what, "before", str(width))])
                step = f"{median / previous:.2f}" if previous else "-"
                ratio = f"{median / before:.2f}" if path == "after" else "1.00"
                print(f"{what:<22}{path:>7}{width:>8}{median:>10.3f}{step:>11}{ratio:>13}"
                      f"{auc[key]:>9.3f}")
                previous = median
    previous = None
    for width in WIDTHS:
        median = statistics.median(times[("Features.resolve", "", str(width))])
        step = f"{median / previous:.2f}" if previous else "-"
        print(f"{'Features.resolve':<22}{'':>7}{width:>8}{median:>10.5f}{step:>11}")
        previous = median


if __name__ == "__main__":
    main()
