"""Benchmark: rudikit's fairness audit vs fairlearn MetricFrame vs a bare np.bincount floor.

Builds synthetic rows over race (6 levels) x sex (2) x station (40) = 480 intersectional cells
and, in the same run, times

* ours: ``rudikit.fairness.audit.audit`` with every metric (incl. ROC AUC), disparities, Wilson
  intervals, z-tests and summary measures, for race, sex, station and race:sex:station;
* ours without ROC AUC (the part that is comparable with the bincount floor);
* ours with string (not categorical) attribute columns, and with continuous scores (all
  distinct: the ROC AUC then needs a sort instead of a histogram of score values);
* the floor: thresholding plus one ``np.bincount`` of the confusion cells per grouping, from
  precomputed integer codes (no metrics, no intervals, no AUC);
* fairlearn ``MetricFrame`` on the same groupings and metrics (13 metrics incl. ROC AUC),

prints times, peak memory (tracemalloc) and ratios, and checks that the numbers agree.

Run: ``.venv/bin/python bench/fairness_audit.py [--rows 1000000] [--fairlearn-rows N]``
(MetricFrame on all 1M rows and 13 metrics takes minutes; ``--skip-fairlearn`` skips it).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from rudikit.fairness.audit import audit

ATTRIBUTES = ["race", "sex", "station"]
INTERSECTION = ["race", "sex", "station"]
METRICS = ("prevalence", "pprev", "precision", "fdr", "for", "npv", "tpr", "fnr", "fpr", "tnr",
           "accuracy", "roc_auc")


def make_data(rows: int, seed: int) -> pd.DataFrame:
    """Synthetic scored cases with group effects; scores rounded to 1e-3 (so there are ties)."""
    rng = np.random.default_rng(seed)
    races = ["White", "Black", "Asian", "Mixed", "Other", "Unknown"]
    race = rng.choice(6, rows, p=[0.62, 0.14, 0.1, 0.06, 0.05, 0.03])
    sex = rng.choice(2, rows, p=[0.85, 0.15])
    station_p = rng.dirichlet(np.full(40, 2.0))
    station = rng.choice(40, rows, p=station_p)
    logit = (-1.2 + 0.25 * (race == 1) - 0.2 * (race == 2) + 0.3 * sex
             + rng.normal(0, 0.3, 40)[station] + rng.normal(0, 1.2, rows))
    score = np.round(1 / (1 + np.exp(-logit)), 3)
    label = (rng.random(rows) < score).astype(np.int8)
    return pd.DataFrame({
        "race": pd.Categorical.from_codes(race, races),
        "sex": pd.Categorical.from_codes(sex, ["Female", "Male"]),
        "station": pd.Categorical.from_codes(station, [f"ST{i:02d}" for i in range(40)]),
        "score": score,
        "y": label,
    })


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def peak_memory(fn: Callable[[], Any]) -> float:
    """Peak traced allocation in MiB while running ``fn`` (numpy and pandas buffers included)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def floor(codes: list[tuple[np.ndarray, int]], y: np.ndarray, score: np.ndarray,
          threshold: float) -> list[np.ndarray]:
    """The least any tool must do: predictions and one bincount of the cells per grouping."""
    cell = 2 * y.astype(np.int64) + (score >= threshold)
    return [np.bincount(c * 4 + cell, minlength=4 * g).reshape(g, 4) for c, g in codes]


def fairlearn_frames(frame: pd.DataFrame, threshold: float) -> dict[str, pd.DataFrame]:
    """MetricFrame.by_group for each grouping, with sklearn/fairlearn metric functions."""
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_negative_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, precision_score, roc_auc_score

    def prevalence(y_true: Any, y_pred: Any) -> float:
        return float(np.mean(y_true))

    precision = partial(precision_score, zero_division=np.nan)
    npv = partial(precision_score, pos_label=0, zero_division=np.nan)

    def fdr(y_true: Any, y_pred: Any) -> float:
        return 1 - precision(y_true, y_pred)

    def false_omission(y_true: Any, y_pred: Any) -> float:
        return 1 - npv(y_true, y_pred)

    def auc(y_true: Any, y_score: Any) -> float:
        return roc_auc_score(y_true, y_score) if len(np.unique(y_true)) == 2 else np.nan

    metrics = {"n": count, "prevalence": prevalence, "pprev": selection_rate,
               "precision": precision, "fdr": fdr, "for": false_omission, "npv": npv,
               "tpr": true_positive_rate, "fnr": false_negative_rate,
               "fpr": false_positive_rate, "tnr": true_negative_rate, "accuracy": accuracy_score}
    y = frame["y"].to_numpy()
    pred = (frame["score"].to_numpy() >= threshold).astype(int)
    out = {}
    for spec in [*ATTRIBUTES, INTERSECTION]:
        cols = [spec] if isinstance(spec, str) else spec
        sf = frame[cols]
        counts = MetricFrame(metrics=metrics, y_true=y, y_pred=pred, sensitive_features=sf)
        aucs = MetricFrame(metrics={"roc_auc": auc}, y_true=y, y_pred=frame["score"].to_numpy(),
                           sensitive_features=sf)
        by_group = pd.concat([counts.by_group, aucs.by_group], axis=1)
        by_group.index = [":".join(map(str, i)) if isinstance(i, tuple) else str(i)
                          for i in by_group.index]
        out[":".join(cols)] = by_group
    return out


# fairlearn's rate functions return 0.0 where the rate is 0/0; ours return NaN. Where our
# metric's denominator is zero the two conventions are checked against each other instead.
_DENOMINATORS = {"tpr": "pos", "fnr": "pos", "fpr": "neg", "tnr": "neg"}


def compare(ours: pd.DataFrame, theirs: dict[str, pd.DataFrame]) -> float:
    """Largest absolute difference over all shared (attribute, group, metric) cells."""
    worst = 0.0
    for attribute, table in theirs.items():
        mine = ours[ours["attribute"] == attribute].set_index("group")
        table = table.dropna(how="all", subset=["n"])
        table = table[table["n"] > 0]
        if set(table.index) != set(mine.index):
            raise AssertionError(f"{attribute}: group sets differ")
        mine = mine.loc[table.index]
        for metric in ("n", *METRICS):
            a = mine[metric].to_numpy(dtype=float)
            b = table[metric].to_numpy(dtype=float)
            if metric in _DENOMINATORS:
                empty = mine[_DENOMINATORS[metric]].to_numpy() == 0
                if not (np.isnan(a[empty]).all() and (b[empty] == 0).all()):
                    raise AssertionError(f"{attribute} {metric}: 0/0 convention differs")
                a, b = a[~empty], b[~empty]
            if not np.array_equal(np.isnan(a), np.isnan(b)):
                raise AssertionError(f"{attribute} {metric}: NaN pattern differs")
            ok = ~np.isnan(a)
            if ok.any():
                worst = max(worst, float(np.max(np.abs(a[ok] - b[ok]))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=5, help="best of N for our timings")
    parser.add_argument("--fairlearn-rows", type=int, default=None,
                        help="run MetricFrame on the first N rows only (default: all rows)")
    parser.add_argument("--skip-fairlearn", action="store_true")
    args = parser.parse_args()

    frame = make_data(args.rows, args.seed)
    cells = frame.groupby(INTERSECTION, observed=True).ngroups
    print(f"{args.rows:,} rows, {cells} observed race:sex:station cells, threshold "
          f"{args.threshold}, {frame['score'].nunique():,} distinct scores")

    def ours(rows: pd.DataFrame = frame, roc_auc: bool = True) -> Any:
        return audit(rows, "y", "score", ATTRIBUTES, intersections=[INTERSECTION],
                     threshold=args.threshold, roc_auc=roc_auc)

    ours()  # warm-up (imports, caches)
    t_ours, result = best_time(ours, args.repeat)
    t_ours_no_auc, _ = best_time(lambda: ours(roc_auc=False), args.repeat)
    as_str = frame.astype({c: "str" for c in ATTRIBUTES})
    t_ours_str, _ = best_time(lambda: ours(as_str), max(1, args.repeat // 2))
    rng = np.random.default_rng(args.seed + 1)
    continuous = frame.assign(score=np.clip(frame["score"] + rng.uniform(-5e-4, 5e-4, len(frame)),
                                            0, 1))
    t_ours_cont, _ = best_time(lambda: ours(continuous), max(1, args.repeat // 2))
    mem_ours = peak_memory(ours)

    y = frame["y"].to_numpy()
    score = frame["score"].to_numpy()
    codes = [(frame[c].cat.codes.to_numpy().astype(np.int64), len(frame[c].cat.categories))
             for c in ATTRIBUTES]
    inter = (codes[0][0] * 2 + codes[1][0]) * 40 + codes[2][0]
    codes.append((inter, 480))
    t_floor, floor_counts = best_time(lambda: floor(codes, y, score, args.threshold),
                                      args.repeat * 2)
    mem_floor = peak_memory(lambda: floor(codes, y, score, args.threshold))

    groups = result.groups
    mine = groups[groups["attribute"] == "race:sex:station"]
    floor_tp = floor_counts[3][:, 3]
    assert int(mine["tp"].sum()) == int(floor_tp.sum()), "tp totals differ from the floor"

    print()
    print(f"{'':38s} {'time':>9s} {'peak MiB':>9s}")
    print(f"{'ours: full audit (all metrics + AUC)':38s} {t_ours:8.3f}s {mem_ours:9.1f}")
    print(f"{'ours: full audit without ROC AUC':38s} {t_ours_no_auc:8.3f}s")
    print(f"{'ours: full audit, str columns':38s} {t_ours_str:8.3f}s")
    print(f"{'ours: full audit, continuous scores':38s} {t_ours_cont:8.3f}s")
    print(f"{'floor: threshold + 4 bincounts':38s} {t_floor:8.3f}s {mem_floor:9.1f}")
    print(f"ours / floor: {t_ours / t_floor:.1f}x (without AUC {t_ours_no_auc / t_floor:.1f}x)")
    print(f"ours target < 0.3 s: {'met' if t_ours < 0.3 else 'NOT met'} ({t_ours:.3f} s)")

    if args.skip_fairlearn:
        return
    fl_rows = args.fairlearn_rows or args.rows
    sub = frame.iloc[:fl_rows]
    note = "" if fl_rows == args.rows else f" (on the first {fl_rows:,} rows only)"
    print(f"\nrunning fairlearn MetricFrame{note}, 13 metrics x 4 groupings (takes minutes at "
          "1M rows; --fairlearn-rows N to subsample) ...", flush=True)
    start = time.perf_counter()
    theirs = fairlearn_frames(sub, args.threshold)
    t_fl = time.perf_counter() - start
    ours_sub = result if fl_rows == args.rows else ours(sub)
    t_ours_sub = t_ours if fl_rows == args.rows else best_time(lambda: ours(sub), args.repeat)[0]
    worst = compare(ours_sub.groups, theirs)
    print(f"{'fairlearn MetricFrame' + note:38s} {t_fl:8.3f}s")
    print(f"fairlearn / ours: {t_fl / t_ours_sub:.0f}x (ours is that many times faster, "
          "same rows and metrics)")
    print(f"max |ours - fairlearn| over all groups and metrics: {worst:.2e}")
    assert worst < 1e-9, "results disagree with fairlearn"


if __name__ == "__main__":
    main()
