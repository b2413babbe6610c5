"""Benchmark: the COMPAS example over several person-level 60/20/20 splits, against COMPAS's
own decile score on the same test people.

For each label (``felony_365``, ``two_year_recid``) and split seed it does what ``rudi run
examples/compas`` does up to the choice of a model: the same project file, label, split, grid
and selection (``rudikit.run.selection.select_best``, on the validation rows), without storage,
bootstrap intervals or permutation importances. It then prints the test ROC AUC of the chosen
model, of the decile score and of the with-race experiment for every seed, and per label the
mean and standard deviation over seeds, with the issue's goals (chosen - decile >= 0.03 on both
labels; >= 0.75 on ``two_year_recid``).

It also runs the guide's list simulation (10 of 100 drawn test cases, 100 repeats, the same
draws for every model) for the chosen model, the decile score and the chosen model mitigated as
``rudi run`` mitigates it (per-race thresholds fitted on the validation rows, applied to the test
rows), and prints precision@10 and the selection rate of African-American and Caucasian people
on the list, with the mitigation goal (gap <= 0.05 at an AUC loss <= 0.02).

With ``--search TRIALS`` the grid also holds a seeded optuna search over LightGBM
(:data:`SEARCH_SPACE`, each trial scored on the validation rows by ``rudikit.run.case.
search_trials``), and with ``--ensemble N`` the probability average of the N best selectable
groups on the validation rows (what ``algorithm: ensemble`` builds) competes in the selection
like any group: the figures "after" of bench/RESULTS-issue20.md.

Run: ``.venv/bin/python bench/compas_splits.py [--seeds 5] [--labels felony_365 two_year_recid]
[--max-screening-gap-days 30] [--search 20] [--ensemble 3]`` (``--max-screening-gap-days``
applies ProPublica's 30-day filter to ``felony_365``, to compare with the population it had
before the label counted from the screening).
Without the COMPAS files under ../shared/data it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rudikit.config import Project, ProjectError, load_project
from rudikit.data.compas.labels import LABELS
from rudikit.data.sources import unify
from rudikit.evaluation.metrics import evaluate_scores, roc_auc
from rudikit.fairness.list_simulation import (
    LIST_DRAW,
    list_selection_rate,
    list_size,
    simulate_lists,
)
from rudikit.fairness.stage import ScoredRows, mitigate
from rudikit.features.labels import make_label
from rudikit.features.splits import make_split
from rudikit.models.estimators import build_pipeline, expand_grid
from rudikit.run.case import search_trials
from rudikit.run.engine import ModelSummary
from rudikit.run.ensembles import top_members
from rudikit.run.selection import select_best

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "compas"
#: The searched LightGBM of ``--search`` (the space bench/run_cost.py's compas "after" uses).
SEARCH_SPACE = {"n_estimators": [{"int": [100, 1000], "log": True}],
                "learning_rate": [{"float": [0.005, 0.1], "log": True}],
                "num_leaves": [{"int": [3, 31], "log": True}],
                "min_child_samples": [{"int": [20, 300], "log": True}],
                "subsample": [0.8], "subsample_freq": [1],
                "colsample_bytree": [{"float": [0.2, 1.0]}],
                "extra_trees": [True, False],
                "reg_lambda": [{"float": [0.001, 10.0], "log": True}]}


def with_source_options(project: Project, **options: object) -> Project:
    """The project with extra options for its first data source (the COMPAS table builder)."""
    first, *rest = project.data.sources
    first = first.model_copy(update={"options": {**first.options, **options}})
    return project.model_copy(update={"data": project.data.model_copy(
        update={"sources": [first, *rest]})})


def with_search(project: Project, trials: int) -> Project:
    """The project with the searched LightGBM of ``--search`` before its with-race experiment."""
    spec = type(project.models[0]).model_validate(
        {"algorithm": "lightgbm", "params": SEARCH_SPACE,
         "search": {"method": "optuna", "trials": trials, "seed": 0}})
    return project.model_copy(update={"models": [*project.models[:-1], spec,
                                                 project.models[-1]]})


def run_label(label: str, seeds: list[int], max_screening_gap_days: int | None = None,
              search: int = 0, ensemble: int = 0) -> pd.DataFrame:
    """One row per seed: test ROC AUC of the chosen model, the decile score and the with-race
    model, and which model group was chosen."""
    os.environ["COMPAS_LABEL"] = label
    project = load_project(EXAMPLE)
    if max_screening_gap_days is not None and label == "felony_365":
        project = with_source_options(project, max_screening_gap_days=max_screening_gap_days)
    frame, _ = unify(project, EXAMPLE)
    y_all, keep = make_label(frame, project.label)
    data, y_all = frame.loc[keep].reset_index(drop=True), y_all[keep]
    if search:
        project = with_search(project, search)
    features, _ = project.features.resolve(list(data.columns))
    ev = project.evaluation
    rows = []
    for seed in seeds:
        spec = project.splits[0].model_copy(update={"seed": seed})
        split = make_split(data, spec, "splits[0]", project.data.knowledge_date)
        grid = expand_grid([m for m in project.models if m.search is None])
        grid += search_trials(project, features, data, y_all, split, ev.seed, lambda _: None)
        summaries, test_auc, scores = [], {}, {}
        for i, point in enumerate(grid):
            pipeline, fit_params = build_pipeline(point, features, ev.seed)
            pipeline.fit(data.iloc[split.train], y_all[split.train], **fit_params)
            scores[i] = {part: pipeline.predict_proba(data.iloc[idx])[:, 1]
                         for part, idx in (("test", split.test),
                                           ("validation", split.validation))}

            def metrics(part: str, idx: np.ndarray) -> dict:
                return {(m.metric, m.parameter): m for m in evaluate_scores(
                    y_all[idx], scores[i][part], thresholds=ev.thresholds,  # noqa: B023
                    top_k=ev.top_k, top_pct=ev.top_pct, bootstrap=0)}

            summary = ModelSummary(i, i, point.algorithm, point.params, split.name,
                                   metrics("test", split.test), 0.0,
                                   selectable=point.selectable)
            summary.validation_metrics = metrics("validation", split.validation)
            summaries.append(summary)
            test_auc[i] = summary.metrics[("roc_auc", "")].value
        if ensemble:
            add_ensemble(summaries, scores, test_auc, ensemble, y_all, split, ev)
        chosen, _ = select_best(project, summaries)
        baseline = next(s for s in summaries if s.algorithm == "score_column")
        with_race = next((s for s, p in zip(summaries, grid, strict=False)
                          if "race" in p.add_categorical), None)
        row = {"label": label, "seed": seed, "rows": len(data), "test_rows": len(split.test),
               "chosen": test_auc[chosen.model_id], "decile": test_auc[baseline.model_id],
               "with_race": test_auc[with_race.model_id] if with_race else np.nan,
               "best_on_test": max(test_auc[s.model_id] for s in summaries if s.selectable),
               "chosen_model": f"{chosen.algorithm} {chosen.params}"}
        # the list simulation, and the chosen model mitigated as `rudi run` does it
        attrs = data[project.fairness.columns]
        y_test = y_all[split.test]
        mitigated = mitigate(project.fairness,
                             ScoredRows(attrs.iloc[split.test], y_test,
                                        scores[chosen.model_id]["test"]),
                             ScoredRows(attrs.iloc[split.validation], y_all[split.validation],
                                        scores[chosen.model_id]["validation"]),
                             seed=ev.seed).adjusted_score
        row["mitigated"] = roc_auc(y_test, mitigated)
        race = attrs["race"].iloc[split.test].astype("string").fillna("(missing)")
        k = list_size(project.fairness, len(y_test))
        for name, score in (("chosen", scores[chosen.model_id]["test"]),
                            ("decile", scores[baseline.model_id]["test"]),
                            ("mitigated", mitigated)):
            sim = simulate_lists(y_test, score, race, n=LIST_DRAW, k=k, repeats=100,
                                 random_state=ev.seed)
            rates = sim.composition.set_index("group")
            rate = list_selection_rate(rates["list_share"], rates["pool_share"], k)
            row[f"{name}_p@{k}"] = sim.precision_mean
            row[f"{name}_rate_aa"] = rate.get("African-American", np.nan)
            row[f"{name}_rate_cauc"] = rate.get("Caucasian", np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def add_ensemble(summaries: list[ModelSummary], scores: dict, test_auc: dict, n: int,
                 y_all: np.ndarray, split: Any, ev: Any) -> None:
    """Append the probability average of the ``n`` best selectable groups on the validation
    rows (``rudikit.run.ensembles.top_members``' order), as ``algorithm: ensemble`` builds it."""
    for s in summaries:
        s.validation_score = scores[s.model_id]["validation"]
    members = top_members(summaries, summaries[0].split, ev.selection.metric, n)
    i = len(summaries)
    scores[i] = {part: np.mean([scores[m.model_id][part] for m in members], axis=0)
                 for part in ("test", "validation")}
    metrics = {part: {(m.metric, m.parameter): m for m in evaluate_scores(
        y_all[idx], scores[i][part], thresholds=ev.thresholds, top_k=ev.top_k,
        top_pct=ev.top_pct, bootstrap=0)}
        for part, idx in (("test", split.test), ("validation", split.validation))}
    summary = ModelSummary(i, i, "ensemble", {"members": [m.model_id for m in members]},
                           split.name, metrics["test"], 0.0)
    summary.validation_metrics = metrics["validation"]
    summaries.append(summary)
    test_auc[i] = summary.metrics[("roc_auc", "")].value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labels", nargs="+", default=list(LABELS), choices=LABELS)
    parser.add_argument("--max-screening-gap-days", type=int, default=None,
                        help="felony_365 only: drop cases screened more than this many days "
                             "after their charge (ProPublica's filter; default: keep them)")
    parser.add_argument("--search", type=int, default=0, metavar="TRIALS",
                        help="add a LightGBM search of this many trials to the grid")
    parser.add_argument("--ensemble", type=int, default=0, metavar="N",
                        help="add the probability average of the N best groups")
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        per_seed = pd.concat([run_label(label, list(range(args.seeds)),
                                        args.max_screening_gap_days, args.search,
                                        args.ensemble)
                              for label in args.labels], ignore_index=True)
    except (FileNotFoundError, ProjectError, ValueError) as exc:
        if "COMPAS" in str(exc) or "not found" in str(exc):
            print(f"COMPAS files not available: {exc}")
            return 0
        raise
    per_seed["gain"] = per_seed["chosen"] - per_seed["decile"]
    pd.set_option("display.width", 200)
    print(per_seed[["label", "seed", "rows", "test_rows", "chosen", "decile", "gain",
                    "with_race", "best_on_test", "mitigated"]].round(3).to_string(index=False))
    print("\nchosen models:")
    print(per_seed.groupby("label")["chosen_model"].value_counts().to_string())
    print(f"\ntest ROC AUC over {args.seeds} person-level 60/20/20 splits, mean ± sd:")
    lines = ["| label | rows | chosen model | decile score | chosen - decile | with race |",
             "|---|---|---|---|---|---|"]
    for label, g in per_seed.groupby("label", sort=False):
        cells = [f"{g[c].mean():.3f} ± {g[c].std(ddof=1):.3f}"
                 for c in ("chosen", "decile", "gain", "with_race")]
        lines.append(f"| {label} | {g['rows'].iloc[0]} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print(f"\nthe guide's list simulation ({LIST_DRAW} drawn test cases, the top k listed, 100 "
          "repeats), mean ± sd over splits; rate = share of a group's drawn cases on the list:")
    k_col = next(c for c in per_seed.columns if c.startswith("chosen_p@"))
    k = k_col.split("@")[1]
    lines = [f"| label | model | ROC AUC | precision@{k} of {LIST_DRAW} | African-American rate "
             "| Caucasian rate | gap |", "|---|---|---|---|---|---|---|"]
    for label, g in per_seed.groupby("label", sort=False):
        for name in ("decile", "chosen", "mitigated"):
            gap = g[f"{name}_rate_aa"] - g[f"{name}_rate_cauc"]
            cells = [f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" for v in (
                g[name], g[f"{name}_p@{k}"], g[f"{name}_rate_aa"], g[f"{name}_rate_cauc"], gap)]
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print("\ngoals:")
    for label, g in per_seed.groupby("label", sort=False):
        gain, auc = g["gain"].mean(), g["chosen"].mean()
        print(f"  {label}: chosen - decile {gain:+.3f} (goal >= +0.030: "
              f"{'met' if gain >= 0.03 else 'NOT met'})"
              + (f"; AUC {auc:.3f} (goal >= 0.750: {'met' if auc >= 0.75 else 'NOT met'})"
                 if label == "two_year_recid" else ""))
        gap = (g["mitigated_rate_aa"] - g["mitigated_rate_cauc"]).abs().mean()
        loss = (g["chosen"] - g["mitigated"]).mean()
        print(f"  {label} mitigated: |African-American - Caucasian| list selection rate "
              f"{gap:.3f} (goal <= 0.05: {'met' if gap <= 0.05 else 'NOT met'}), AUC loss "
              f"{loss:+.3f} (goal <= 0.02: {'met' if loss <= 0.02 else 'NOT met'})")
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
