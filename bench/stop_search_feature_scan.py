"""Figure: a quick scan of candidate stop-and-search features and model variants (issue 20 item
1), on the two windows of ``bench/stop_search_levers.py``, before any is built into rudikit.

Rows are read as the product reads them (``rudikit.data.sources.unify`` on the example's
police_uk_archive source, the example's label), then fitted directly with LightGBM on the
example's columns (categoricals as pandas categories; hour and weekday in Europe/London time),
its two shipped settings (``num_leaves`` 15 or 31), the better one chosen on the window's
validation rows. For each candidate it prints the chosen setting's validation and test ROC AUC,
and the test ROC AUC of the same setting refitted on training + validation rows. The
``backtest`` window (test 2020-01-15..31) judges; the ``final`` one (test 2020-02) is shown
beside it. No interval: the scan ranks candidates, ``stop_search_levers.py`` gives the figures
with bootstrap intervals through rudikit's own preparation.

Candidates (all from what is known before the search; outcomes only when at least 7 days old):
``group`` / ``point`` as in ``stop_search_levers.py`` (``group_size``, ``point_searches_*``);
``force_counts`` / ``cell_counts`` (earlier searches of the force in 1 and 7 days, of the H3
cell (resolution 7) in 1 and 7 days); ``lagged_rates`` (smoothed success rate and count of the
searches 7 to 60 days earlier at the same point, cell, force and force x object); ``recency``
(training rows weighted by a 30-day half-life); ``lr_interactions`` (logistic regression on
one-hot categories and ten pairwise crosses: legislation x object, force x object/hour/type/
age/ethnicity/legislation/operation, object x type/age).

Run: ``nice .venv/bin/python bench/stop_search_feature_scan.py`` (about 5 minutes on a quiet
machine). Needs the stop-and-search files under ../shared/data (or ``RUDI_DATA_DIR``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h3
import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from stop_search_levers import EXAMPLE, WINDOWS, known_before

from rudikit.config import load_project
from rudikit.data.sources import unify
from rudikit.features.labels import make_label

os.environ.setdefault("RUDI_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared"
                                          / "data"))
CATEGORICAL = ["type", "gender", "age_range", "officer_defined_ethnicity", "legislation",
               "object_of_search", "force"]
DAY = 86_400
CROSSES = [("legislation", "object_of_search"), ("force", "object_of_search"),
           ("force", "hour"), ("force", "type"), ("force", "age_range"),
           ("force", "officer_defined_ethnicity"), ("force", "legislation"), ("force", "op"),
           ("object_of_search", "type"), ("object_of_search", "age_range")]


def load() -> tuple[pd.DataFrame, np.ndarray]:
    """The example's rows with a label, in time order, and the label."""
    project = load_project(EXAMPLE)
    frame, _ = unify(project, EXAMPLE)
    y, keep = make_label(frame, project.label)
    data = frame.loc[keep].assign(_y=y[keep]).sort_values("datetime", kind="stable")
    return data.reset_index(drop=True), data["_y"].to_numpy(dtype=int)


def base_columns(data: pd.DataFrame) -> pd.DataFrame:
    X = pd.DataFrame({c: data[c].astype("string").fillna("NA").astype("category")
                      for c in CATEGORICAL})
    X["op"] = data["part_of_a_policing_operation"].astype("Float64").to_numpy(
        dtype=float, na_value=np.nan)
    for c in ("latitude", "longitude"):
        X[c] = data[c].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    local = data["datetime"].dt.tz_convert("Europe/London")
    X["hour"], X["weekday"] = local.dt.hour, local.dt.day_of_week
    return X


def windows_before(keys: pd.Series, seconds: np.ndarray, y: np.ndarray, lag: int, span: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many rows of its key fall in [t - span, t - lag) and how many of them were
    positive (rows are in time order, so each key's rows are too)."""
    n, pos = np.zeros(len(keys)), np.zeros(len(keys))
    for rows in keys.groupby(keys).groups.values():
        rows = np.asarray(rows)
        at, found = seconds[rows], np.concatenate([[0], np.cumsum(y[rows])])
        lo = np.searchsorted(at, at - span, side="left")
        hi = np.searchsorted(at, at - lag, side="left")
        n[rows], pos[rows] = hi - lo, found[hi] - found[lo]
    return n, pos


def candidates(data: pd.DataFrame, y: np.ndarray) -> dict[str, pd.DataFrame]:
    seconds = data["datetime"].astype("int64").to_numpy() // 10**9
    lat = data["latitude"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    lon = data["longitude"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    located = ~np.isnan(lat)
    cell = pd.Series([h3.latlng_to_cell(a, b, 7) if ok else "none"
                      for a, b, ok in zip(lat, lon, located, strict=True)])
    point = pd.Series(np.char.add(np.char.add(lat.astype(str), ","), lon.astype(str)))
    force = data["force"].astype("string").fillna("").reset_index(drop=True)
    force_object = force + "|" + data["object_of_search"].astype("string").fillna("")
    known = known_before(data)
    out = {"group": known[["group_size"]],
           "point": known[[c for c in known if c.startswith("point_")]],
           "group+point": known}
    counts = {}
    for name, keys, mask in (("force", force, None), ("cell", cell, located)):
        for days in (1, 7):
            n, _ = windows_before(keys, seconds, y, 0, days * DAY)
            counts[f"{name}_searches_{days}d"] = n if mask is None else np.where(mask, n,
                                                                                  np.nan)
    counts = pd.DataFrame(counts)
    out["force_counts"] = counts.filter(like="force_")
    out["cell_counts"] = counts.filter(like="cell_")
    rates = {}
    for name, keys, mask in (("point", point, located), ("cell", cell, located),
                             ("force", force, None), ("force_object", force_object, None)):
        n, pos = windows_before(keys, seconds, y, 7 * DAY, 60 * DAY)
        usable = (n > 0) if mask is None else (n > 0) & mask
        # smoothed towards the overall rate (about 0.18) by 5.6 pseudo-rows
        rates[f"{name}_lagged_n"] = np.where(mask if mask is not None else True, n, np.nan)
        rates[f"{name}_lagged_rate"] = np.where(usable, (pos + 1) / (n + 5.6), np.nan)
    out["lagged_rates"] = pd.DataFrame(rates)
    return out


def masks(data: pd.DataFrame, window: str) -> tuple[np.ndarray, ...]:
    validation_start, test_start, test_end = WINDOWS[window]
    when = data["datetime"]
    start, mid = pd.Timestamp(validation_start, tz="UTC"), pd.Timestamp(test_start, tz="UTC")
    end = pd.Timestamp(test_end or "2100-01-01", tz="UTC")
    return ((when < start).to_numpy(), ((when >= start) & (when < mid)).to_numpy(),
            ((when >= mid) & (when < end)).to_numpy())


def lightgbm(num_leaves: int) -> Any:
    return lgb.LGBMClassifier(n_estimators=500, learning_rate=0.02, num_leaves=num_leaves,
                              min_child_samples=50, subsample=0.8, subsample_freq=1,
                              colsample_bytree=0.8, random_state=0, n_jobs=1, verbose=-1)


def crossed(X: pd.DataFrame) -> pd.DataFrame:
    text = pd.DataFrame({c: X[c].astype(str) for c in [*CATEGORICAL, "hour", "weekday", "op"]})
    for a, b in CROSSES:
        text[f"{a}_x_{b}"] = text[a] + "|" + text[b]
    return text


def scan(name: str, X: pd.DataFrame, y: np.ndarray, data: pd.DataFrame,
         makers: list[Callable[[], Any]], half_life: float | None = None) -> None:
    parts = []
    for window in WINDOWS:
        train, validation, test = masks(data, window)

        def fit(rows: np.ndarray, make: Callable[[], Any], scored_from: str) -> Any:
            weight = None
            if half_life is not None:  # age in days at the start of the scored period
                start = pd.Timestamp(scored_from, tz="UTC")
                age = (start - data["datetime"][rows]).dt.total_seconds().to_numpy() / DAY
                weight = 0.5 ** (age / half_life)
            return make().fit(X[rows], y[rows], **({} if weight is None
                                                      else {"sample_weight": weight}))

        validation_start, test_start, _ = WINDOWS[window]
        scored = [(roc_auc_score(y[validation], fit(train, m, validation_start).predict_proba(
            X[validation])[:, 1]), m) for m in makers]
        best_auc, best = max(scored, key=lambda s: s[0])
        on_test = roc_auc_score(y[test], fit(train, best, validation_start).predict_proba(
            X[test])[:, 1])
        refit = roc_auc_score(y[test], fit(train | validation, best, test_start).predict_proba(
            X[test])[:, 1])
        parts.append(f"{window}: validation {best_auc:.3f} test {on_test:.3f} "
                     f"refit {refit:.3f}")
    print(f"{name:16s} " + " | ".join(parts), flush=True)


def main() -> None:
    data, y = load()
    X = base_columns(data)
    trees = [lambda: lightgbm(15), lambda: lightgbm(31)]
    scan("none", X, y, data, trees)
    for name, extra in candidates(data, y).items():
        scan(name, pd.concat([X, extra.set_axis(X.index)], axis=1), y, data, trees)
    scan("recency", X, y, data, trees, half_life=30)
    scan("lr_interactions", crossed(X), y, data, [
        lambda c=c: make_pipeline(OneHotEncoder(handle_unknown="ignore", min_frequency=20),
                                  LogisticRegression(C=c, max_iter=2000))
        for c in (0.03, 0.1, 0.3)])


if __name__ == "__main__":
    main()
