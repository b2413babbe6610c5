"""Benchmark: the COMPAS example over several person-level 60/20/20 splits, against COMPAS's
own decile score on the same test people.

For each label (``felony_365``, ``two_year_recid``) and split seed it does what ``rudi run
examples/compas`` does up to the choice of a model: the same project file, label, split, grid
and selection (``rudikit.pipeline.select_model``, on the validation rows), without storage,
bootstrap intervals or permutation importances. It then prints the test ROC AUC of the chosen
model, of the decile score and of the with-race experiment for every seed, and per label the
mean and standard deviation over seeds, with the issue's goals (chosen - decile >= 0.03 on both
labels; >= 0.75 on ``two_year_recid``).

Run: ``.venv/bin/python bench/compas_splits.py [--seeds 5] [--labels felony_365 two_year_recid]``.
Without the COMPAS files under ../shared/data it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rudikit.data.compas import LABELS
from rudikit.evaluation.metrics import evaluate_scores
from rudikit.features.labels import make_label
from rudikit.features.splits import make_split
from rudikit.models.estimators import build_pipeline, expand_grid
from rudikit.pipeline import ModelSummary, select_model, unify
from rudikit.project import ProjectError, load_project

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "compas"


def run_label(label: str, seeds: list[int]) -> pd.DataFrame:
    """One row per seed: test ROC AUC of the chosen model, the decile score and the with-race
    model, and which model group was chosen."""
    os.environ["COMPAS_LABEL"] = label
    project = load_project(EXAMPLE)
    frame, _ = unify(project, EXAMPLE)
    y_all, keep = make_label(frame, project.label)
    data, y_all = frame.loc[keep].reset_index(drop=True), y_all[keep]
    features, _ = project.features.resolve(list(data.columns))
    grid = expand_grid(project.models)
    ev = project.evaluation
    rows = []
    for seed in seeds:
        spec = project.splits[0].model_copy(update={"seed": seed})
        split = make_split(data, spec, "splits[0]", project.data.knowledge_date)
        summaries, test_auc = [], {}
        for i, point in enumerate(grid):
            pipeline, fit_params = build_pipeline(point, features, ev.seed)
            pipeline.fit(data.iloc[split.train], y_all[split.train], **fit_params)

            def metrics(idx: np.ndarray) -> dict:
                score = pipeline.predict_proba(data.iloc[idx])[:, 1]  # noqa: B023
                return {(m.metric, m.parameter): m for m in evaluate_scores(
                    y_all[idx], score, thresholds=ev.thresholds, top_k=ev.top_k,
                    top_pct=ev.top_pct, bootstrap=0)}

            summary = ModelSummary(i, i, point.algorithm, point.params, split.name,
                                   metrics(split.test), 0.0, selectable=point.selectable)
            summary.validation_metrics = metrics(split.validation)
            summaries.append(summary)
            test_auc[i] = summary.metrics[("roc_auc", "")].value
        chosen, _ = select_model(project, summaries)
        baseline = next(s for s in summaries if s.algorithm == "score_column")
        with_race = next((s for s, p in zip(summaries, grid, strict=True)
                          if "race" in p.add_categorical), None)
        rows.append({"label": label, "seed": seed, "rows": len(data),
                     "test_rows": len(split.test), "chosen": test_auc[chosen.model_id],
                     "decile": test_auc[baseline.model_id],
                     "with_race": test_auc[with_race.model_id] if with_race else np.nan,
                     "best_on_test": max(test_auc[s.model_id] for s in summaries
                                         if s.selectable),
                     "chosen_model": f"{chosen.algorithm} {chosen.params}"})
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labels", nargs="+", default=list(LABELS), choices=LABELS)
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        per_seed = pd.concat([run_label(label, list(range(args.seeds)))
                              for label in args.labels], ignore_index=True)
    except (FileNotFoundError, ProjectError, ValueError) as exc:
        if "COMPAS" in str(exc) or "not found" in str(exc):
            print(f"COMPAS files not available: {exc}")
            return 0
        raise
    per_seed["gain"] = per_seed["chosen"] - per_seed["decile"]
    pd.set_option("display.width", 200)
    print(per_seed.drop(columns="chosen_model").round(3).to_string(index=False))
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
    print("\ngoals:")
    for label, g in per_seed.groupby("label", sort=False):
        gain, auc = g["gain"].mean(), g["chosen"].mean()
        print(f"  {label}: chosen - decile {gain:+.3f} (goal >= +0.030: "
              f"{'met' if gain >= 0.03 else 'NOT met'})"
              + (f"; AUC {auc:.3f} (goal >= 0.750: {'met' if auc >= 0.75 else 'NOT met'})"
                 if label == "two_year_recid" else ""))
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
