"""Benchmark: fitting the grid's pipelines on wide matrices (issue 20, item 5).

A source with hundreds of numeric columns (bag-of-words charge descriptions, as COMPAS's
example) must train without a quadratic slowdown. On generated rows (``--rows``, default 3000:
a few categorical columns and ``token_*`` 0/1 columns, a few per row, as word counts are) it
times, interleaved (one round fits every width once, so a busy machine slows all alike) and
repeated:

* ``build_pipeline`` + ``fit`` for logistic regression and LightGBM at 100, 200, 400, 800 and
  1600 token columns;
* ``Features.resolve`` of the glob ``token_*`` over the same columns (it should be linear);

and prints each width's median seconds, the ratio to the previous width (the per-doubling
ratio: about 2 is linear, about 4 quadratic) and the ratio to the narrowest width (the
baseline, measured in the same run).

Run: ``PYTHONPATH=src .venv/bin/python bench/wide.py [--repeat 3] [--rows 3000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from rudikit.config import Features
from rudikit.models.estimators import GridPoint, build_pipeline

WIDTHS = (100, 200, 400, 800, 1600)
ALGORITHMS = {"logistic_regression": {}, "lightgbm": {"n_estimators": 100, "num_leaves": 15}}


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


def fit_seconds(algorithm: str, data: pd.DataFrame, y: np.ndarray) -> float:
    features, _ = Features(categorical=["charge_degree", "sex", "race"],
                           numeric=["token_*"]).resolve(list(data.columns))
    started = time.perf_counter()
    pipeline, fit_params = build_pipeline(GridPoint(algorithm, ALGORITHMS[algorithm]), features)
    pipeline.fit(data, y, **fit_params)
    return time.perf_counter() - started


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
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeat):
        for width in WIDTHS:  # interleaved: every width once per round
            data, y = frames[width]
            for algorithm in ALGORITHMS:
                times.setdefault((algorithm, width), []).append(fit_seconds(algorithm, data, y))
            times.setdefault(("Features.resolve", width), []).append(
                resolve_seconds(list(data.columns)))
    print(f"{args.rows} rows, median of {args.repeat} interleaved rounds")
    print(f"{'what':<22}{'columns':>8}{'seconds':>11}{'x previous':>12}{'x 100 cols':>12}")
    for what in [*ALGORITHMS, "Features.resolve"]:
        base = previous = None
        for width in WIDTHS:
            median = statistics.median(times[(what, width)])
            step = f"{median / previous:.2f}" if previous else "-"
            ratio = f"{median / base:.2f}" if base else "1.00"
            print(f"{what:<22}{width:>8}{median:>11.4f}{step:>12}{ratio:>12}")
            base = base or median
            previous = median


if __name__ == "__main__":
    main()
