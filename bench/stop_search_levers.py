"""Figure: which honest levers lift the stop-and-search example's test ROC AUC (issue 20 item
1), decided without the test month.

Candidates are the example's grid plus a seeded optuna search over LightGBM (the space of
``bench/stop_search_search.py``), fitted by rudikit's own ``CaseExperiment`` preparation (the
search reads the validation rows only). For each *lever* it reports the ROC AUC of the model
the lever produces on two windows:

* ``backtest``: train before 2020-01-01, validate (choose) on 2020-01-01..14, test on
  2020-01-15..31; the test month 2020-02 is not read. The lever to ship is decided here.
* ``final``: train before 2020-01-15, validate on 2020-01-15..31, test on 2020-02 (the
  example's split ``last_month`` with ``validation_start: 2020-01-15``), with the 95%
  bootstrap interval (500 replicates, as the example).

Levers: ``chosen`` (the best group on the validation rows), ``chosen_refit`` (that group
refitted on training + validation rows, its settings unchanged), ``top{n}_{avg,rank}`` (the
mean probability / mean rank of the best n groups on the validation rows), and the same
refitted. The ``shipped_grid`` variants use the example's grid only, without the search.

``--extra`` adds features an officer knows before searching, computed here from the loaded
archive rows (not yet a rudikit feature kind; each set is a lever the backtest judges like the
others): ``group`` is ``group_size``, the rows with the same force, datetime and coordinates
(people searched together; Essex publishes times to the hour, so there it is the same hour at
the same map point); ``point`` is ``point_searches_{1h,24h,30d}``, the searches at the same
coordinates strictly before this one's datetime (missing without coordinates). Both read only
dates and places, never an outcome, so no label leaks from a later or unresolved search.

Run: ``nice .venv/bin/python bench/stop_search_levers.py [--trials 30] [--parts hour weekday]
[--extra none group point group+point]`` (``--parts`` sets ``features.datetime.parts``). Needs
the stop-and-search files under ../shared/data (or ``RUDI_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from rudikit.config import Project, load_project
from rudikit.evaluation.metrics import evaluate_scores, roc_auc
from rudikit.models.estimators import build_pipeline
from rudikit.run.case import CaseExperiment

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "stop_search"
os.environ.setdefault("RUDI_DATA_DIR", str(ROOT.parent / "shared" / "data"))
SEARCHED = {"algorithm": "lightgbm",
            "params": {"n_estimators": [{"int": [100, 800], "log": True}],
                       "learning_rate": [{"float": [0.01, 0.1], "log": True}],
                       "num_leaves": [{"int": [7, 63], "log": True}],
                       "min_child_samples": [{"int": [10, 200], "log": True}],
                       "subsample": [0.8], "subsample_freq": [1],
                       "colsample_bytree": [{"float": [0.4, 1.0]}],
                       "reg_lambda": [{"float": [0.001, 10.0], "log": True}]}}
POINT_WINDOWS = {"1h": 3600, "24h": 86_400, "30d": 30 * 86_400}
EXTRA = {"none": [], "group": ["group_size"],
         "point": [f"point_searches_{w}" for w in POINT_WINDOWS],
         "group+point": ["group_size"] + [f"point_searches_{w}" for w in POINT_WINDOWS]}
WINDOWS = {"backtest": ("2020-01-01", "2020-01-15", "2020-02-01"),
           "final": ("2020-01-15", "2020-02-01", None)}


def known_before(frame: pd.DataFrame) -> pd.DataFrame:
    """``group_size`` and ``point_searches_*`` (see the module docstring) for each row."""
    seconds = frame["datetime"].astype("int64").to_numpy() // 10**9
    lat = frame["latitude"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    lon = frame["longitude"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    place = pd.Series(np.char.add(np.char.add(lat.astype(str), ","), lon.astype(str)))
    force = frame["force"].astype("string").fillna("").reset_index(drop=True)
    out = pd.DataFrame(index=frame.index)
    out["group_size"] = pd.Series(seconds).groupby(
        [force, place, seconds]).transform("size").to_numpy()
    located = ~np.isnan(lat)
    counts = {name: np.full(len(frame), np.nan) for name in POINT_WINDOWS}
    for rows in pd.Series(np.arange(len(frame)))[located].groupby(place[located]).groups.values():
        rows = np.asarray(rows)
        rows = rows[np.argsort(seconds[rows], kind="stable")]
        at = seconds[rows]
        for name, span in POINT_WINDOWS.items():
            counts[name][rows] = (np.searchsorted(at, at, side="left")
                                  - np.searchsorted(at, at - span, side="left"))
    for name, values in counts.items():
        out[f"point_searches_{name}"] = values
    return out


def windowed(project: Project, window: str, trials: int, parts: list[str] | None) -> Project:
    """The example with split ``last_month`` set to ``window`` (the only split), the search
    appended when ``trials``, and the datetime parts when given."""
    validation_start, test_start, test_end = WINDOWS[window]
    split = next(s for s in project.splits if s.name == "last_month")
    split = split.model_copy(update={"validation_start": pd.Timestamp(validation_start).date(),
                                     "test_start": pd.Timestamp(test_start).date(),
                                     "test_end": test_end and pd.Timestamp(test_end).date()})
    models = list(project.models)
    if trials:
        spec = type(models[0]).model_validate(
            {**SEARCHED, "search": {"method": "optuna", "trials": trials, "seed": 0}})
        models.append(spec)
    features = project.features
    if parts is not None:
        assert features.datetime is not None
        features = features.model_copy(update={"datetime": features.datetime.model_copy(
            update={"parts": parts})})
    return project.model_copy(update={"splits": [split], "models": models,
                                      "features": features})


def lever_scores(project: Project, extra: list[str]) -> dict[str, Any]:
    """Each lever's test scores and labels for ``project`` (one split with validation)."""
    experiment, _ = CaseExperiment.load(project, EXAMPLE)
    if extra:  # the loaded rows and the features gain the columns after the load's checks
        features = project.features.model_copy(
            update={"numeric": project.features.numeric + extra})
        experiment = dataclasses.replace(
            experiment, project=project.model_copy(update={"features": features}),
            frame=pd.concat([experiment.frame, known_before(experiment.frame)[extra]], axis=1))
    experiment.prepare(lambda _: None)
    split = experiment.splits[0]
    X, y = experiment.X, experiment.y
    train, val, test = split.train, split.validation, split.test
    both = np.concatenate([train, val])
    fitted = []
    for point in experiment.points:
        if not point.selectable:
            continue
        pipeline, fit_params = build_pipeline(point, experiment.features, experiment.seed)
        pipeline.fit(X.iloc[train], y[train], **fit_params)
        val_score = pipeline.predict_proba(X.iloc[val])[:, 1]
        fitted.append((roc_auc(y[val], val_score), point, val_score,
                       pipeline.predict_proba(X.iloc[test])[:, 1]))
    fitted.sort(key=lambda f: -f[0])

    def refit(point: Any) -> np.ndarray:
        pipeline, fit_params = build_pipeline(point, experiment.features, experiment.seed)
        pipeline.fit(X.iloc[both], y[both], **fit_params)
        return pipeline.predict_proba(X.iloc[test])[:, 1]

    def by_rank(scores: list[np.ndarray]) -> np.ndarray:
        return np.mean([rankdata(s) / len(s) for s in scores], axis=0)

    out: dict[str, Any] = {"y": y[test], "n_train": len(train), "n_val": len(val),
                           "n_test": len(test),
                           "chosen": fitted[0][3], "chosen_refit": refit(fitted[0][1]),
                           "chosen_name": fitted[0][1].describe(),
                           "chosen_val_auc": fitted[0][0],
                           "groups": len(fitted)}
    refits = {}
    for n in (3, 5):
        top = fitted[:n]
        out[f"top{n}_avg"] = np.mean([f[3] for f in top], axis=0)
        out[f"top{n}_rank"] = by_rank([f[3] for f in top])
        for f in top:
            key = f[1].describe()
            if key not in refits:
                refits[key] = refit(f[1])
        out[f"top{n}_avg_refit"] = np.mean([refits[f[1].describe()] for f in top], axis=0)
        out[f"top{n}_rank_refit"] = by_rank([refits[f[1].describe()] for f in top])
    return out


LEVERS = ["chosen", "chosen_refit", "top3_avg", "top3_rank", "top3_avg_refit",
          "top3_rank_refit", "top5_avg", "top5_rank", "top5_avg_refit", "top5_rank_refit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--parts", nargs="+", default=None)
    parser.add_argument("--extra", nargs="+", default=["none"], choices=list(EXTRA))
    parser.add_argument("--windows", nargs="+", default=list(WINDOWS), choices=list(WINDOWS))
    args = parser.parse_args()
    base = load_project(EXAMPLE)
    for window in args.windows:
        grids = [("shipped_grid", 0)] + ([(f"grid+search{args.trials}", args.trials)]
                                         if args.trials else [])
        for (grid, trials), extra in itertools.product(grids, args.extra):
            started = time.perf_counter()
            found = lever_scores(windowed(base, window, trials, args.parts), EXTRA[extra])
            grid = grid if extra == "none" else f"{grid}+{extra}"
            print(f"\n{window} / {grid}: train {found['n_train']}, validation "
                  f"{found['n_val']}, test {found['n_test']} rows; {found['groups']} groups; "
                  f"chosen on validation: {found['chosen_name']} (validation AUC "
                  f"{found['chosen_val_auc']:.3f}); {time.perf_counter() - started:.0f} s",
                  flush=True)
            for lever in LEVERS:
                auc = next(m for m in evaluate_scores(
                    found["y"], found[lever], thresholds=[], top_k=[], top_pct=[],
                    bootstrap=500 if window == "final" else 0, seed=0)
                    if m.metric == "roc_auc")
                interval = ("" if auc.lower is None
                            else f" [{auc.lower:.3f}, {auc.upper:.3f}]")
                print(f"  {window:8s} {grid:24s} {lever:16s} ROC AUC {auc.value:.3f}{interval}",
                      flush=True)


if __name__ == "__main__":
    main()
