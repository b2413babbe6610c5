"""The step after a project's grid that builds its ensembles (:mod:`rudikit.models.ensemble`),
each fitted, scored, stored, evaluated and audited through :func:`rudikit.run.engine.
fit_score_record` like any model group, with its members recorded (``ensemble_members``).

* case projects: members are the best groups on each split's validation rows, in the order
  (and through the fairness gate) of :func:`rudikit.run.selection.select_best`;
* temporal projects: members of the ensemble of split ``s`` are ranked by the project's
  audition rule over the splits whose test labels were all known by ``s``'s split time (the
  training era; never ``s`` itself or a later split), through the fairness gate of
  :func:`rudikit.run.selection.fairness_gate` on those splits' lists when the project asks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.fairness.tradeoff import NO_GROUP_MEETS
from rudikit.models.artefacts import load_artefact
from rudikit.models.audition import Rule, top_groups
from rudikit.models.ensemble import ensemble_pipeline, stacking_meta, with_defaults
from rudikit.models.estimators import GridPoint
from rudikit.run.engine import (
    Evaluated,
    GridEntry,
    ModelSummary,
    SplitRows,
    fit_score_record,
    predict_scores,
)
from rudikit.run.selection import fairness_gate, ranked_on_selection_split
from rudikit.store import results

Build = Callable[[GridEntry], tuple[Any, dict[str, Any]]]


def top_members(models: Sequence[ModelSummary], split: str, metric: str, n: int,
                require_fairness: bool = False) -> tuple[list[ModelSummary], str]:
    """(the ``n`` best selectable models of ``split`` by ``metric`` on its validation rows,
    how they were chosen), in :func:`rudikit.run.selection.select_best`'s order: ties go to
    the model meeting more requirements there. With ``require_fairness`` only the models
    meeting every requirement on the validation rows are members; when none does, the words
    start with :data:`NO_GROUP_MEETS` and the plain best are, as selection does."""
    ranked = [c for c in ranked_on_selection_split(models, split, metric)
              if c[2].algorithm != "ensemble" and c[2].validation_metrics is not None
              and c[2].validation_score is not None]
    how = f"top {n} by {metric} on the validation rows of split {split!r}"
    if require_fairness:
        passing = [c for c in ranked if c[2].validation_fairness_passed]
        how += (f", among the {len(passing)} of {len(ranked)} groups meeting every fairness "
                "requirement there" if passing else
                f"; {NO_GROUP_MEETS} on those rows, so the plain best")
        ranked = passing or ranked
    return [m for _, _, m in ranked[:n]], how


def audition_members(models: Sequence[ModelSummary], values: pd.DataFrame, era: Sequence[str],
                     tested: str, rules: Sequence[Rule], n: int, require_fairness: bool
                     ) -> tuple[list[int], str]:
    """(the model groups of the ensemble tested on split ``tested``, how they were chosen):
    the ``n`` best by the audition rule with the lowest regret over the ``era`` splits only
    (``values``: model_group_id, split, split_time, value; ensembles and baselines are not
    candidates). With ``require_fairness`` only the groups meeting every requirement on those
    splits' lists compete (the same gate as the audition's choice of model group)."""
    era_values = values[values["split"].isin(era)]
    how = ""
    if require_fairness:
        passing, gate = fairness_gate([m for m in models if m.split in era], tested)
        if passing:
            era_values = era_values[era_values["model_group_id"].isin(passing)]
        how = f"; {gate}"
    groups, rule = top_groups(era_values, rules, n)
    return ([int(g) for g in groups],
            f"top {n} by audition rule {rule} over splits {', '.join(era)}{how}")


def stack_meta(rows: SplitRows, chosen: Sequence[ModelSummary], build: Build, seed: int) -> Any:
    """The stack's meta-model for ``rows``: fitted on its training rows' out-of-fold scores
    only (:func:`rudikit.models.ensemble.stacking_meta`), whatever else ``rows`` holds."""
    builders = []
    for m in chosen:
        assert m.entry is not None
        builders.append(build(m.entry))
    return stacking_meta(builders, rows.X_train, rows.y_train, seed)


def fit_ensemble(engine: Engine, run_id: int, project_name: str, label: str, point: GridPoint,
                 rows: SplitRows, chosen: Sequence[ModelSummary], chosen_by: str, *,
                 reference: str, evaluate: Callable[[SplitRows, np.ndarray, bool], Evaluated],
                 assess: Callable[..., Any], build: Build, seed: int, artefacts_dir: Path,
                 group_features: dict[str, Any] | None = None,
                 refit_of: int | None = None) -> ModelSummary:
    """One ensemble of the fitted ``chosen`` models on ``rows``, stored in its model group
    (whose features are ``group_features``, by default the union of its members') with its
    members, in the model's one transaction. ``reference``: the rows a ``rank_average``
    member's score is ranked among (``validation`` or ``train``; neither holds a test row).
    ``refit_of``: the ensemble model this one refits (:mod:`rudikit.run.refit`)."""
    method = str(point.params["method"])
    members = []
    for m in chosen:
        assert m.artefact is not None
        members.append(load_artefact(m.artefact[1], m.artefact[0]))
    references = None
    if method == "rank_average":
        references = [np.asarray(m.validation_score) if reference == "validation"
                      else predict_scores(pipeline, rows.X_train)
                      for m, pipeline in zip(chosen, members, strict=True)]
    meta = stack_meta(rows, chosen, build, seed) if method == "stack" else None
    pipeline, features = ensemble_pipeline(members, method, references,
                                           [m.model_id for m in chosen], meta)
    group_id = results.get_or_create_model_group(
        engine, project_name, "ensemble", point.params,
        features.model_dump(mode="json") if group_features is None else group_features, label)
    entry = GridEntry(point, point.describe(), features, point.selectable)
    summary = fit_score_record(engine, run_id, group_id, entry, rows,
                               build=lambda _e: (pipeline, {}), evaluate=evaluate,
                               assess=assess, artefacts_dir=artefacts_dir,
                               refit_of=refit_of,
                               members=results.Members([m.model_id for m in chosen], chosen_by))
    return summary


def ensemble_point(point: GridPoint) -> GridPoint:
    """``point`` with its defaults written out, as stored (:func:`with_defaults`)."""
    return GridPoint("ensemble", with_defaults(point.params), selectable=point.selectable)


def fit_ensembles(engine: Engine, run_id: int, project_name: str, label: str,
                  points: Sequence[GridPoint], split_rows: Sequence[SplitRows],
                  models: Sequence[ModelSummary], metric: str, artefacts_dir: Path, *,
                  evaluate: Callable[[SplitRows, np.ndarray, bool], Evaluated],
                  assess: Callable[..., Any], build: Build, seed: int,
                  require_fairness: bool = False,
                  say: Callable[[str], None] = lambda _: None) -> list[ModelSummary]:
    """A case project's ensembles: one model per ensemble point and split with validation
    rows (others are skipped, said so), of the top members on those rows. Returns them."""
    out: list[ModelSummary] = []
    for given in points:
        point = ensemble_point(given)
        n = point.params["members"]
        for rows in split_rows:
            if not rows.has_validation:
                say(f"{rows.name}: no validation rows, so no ensemble {point.describe()}")
                continue
            chosen, how = top_members(models, rows.name, metric, n, require_fairness)
            if len(chosen) < 2:
                say(f"{rows.name}: fewer than 2 members for {point.describe()}; skipped")
                continue
            say(f"{rows.name}: {point.describe()} of model groups "
                f"{', '.join(str(m.model_group_id) for m in chosen)}")
            summary = fit_ensemble(engine, run_id, project_name, label, point, rows, chosen,
                                   how, reference="validation", evaluate=evaluate,
                                   assess=assess, build=build, seed=seed,
                                   artefacts_dir=artefacts_dir)
            summary.details = {"member_model_ids": [m.model_id for m in chosen],
                               "member_group_ids": [m.model_group_id for m in chosen]}
            out.append(summary)
    return out


def fit_temporal_ensembles(engine: Engine, run_id: int, project_name: str, label: str,
                           points: Sequence[GridPoint], split_rows: Sequence[SplitRows],
                           eras: Mapping[str, list[str]], models: Sequence[ModelSummary],
                           values: pd.DataFrame, rules: Sequence[Rule], artefacts_dir: Path,
                           *, group_features: dict[str, Any],
                           evaluate: Callable[[SplitRows, np.ndarray, bool], Evaluated],
                           assess: Callable[..., Any], build: Build, seed: int,
                           require_fairness: bool = False,
                           say: Callable[[str], None] = lambda _: None
                           ) -> list[ModelSummary]:
    """A temporal project's ensembles: per ensemble point and split with a training era
    (``eras``: split -> the earlier splits whose test labels were known by its split time),
    the members' models on that split averaged or stacked (:func:`audition_members`).
    Returns the stored ensembles."""
    out: list[ModelSummary] = []
    for given in points:
        point = ensemble_point(given)
        n = point.params["members"]
        for rows in split_rows:
            era = eras.get(rows.name, [])
            if not era:
                say(f"{rows.name}: no earlier split's test labels were known by its split "
                    f"time, so no ensemble {point.describe()} (its members are chosen there)")
                continue
            groups, how = audition_members(models, values, era, rows.name, rules, n,
                                           require_fairness)
            here = {m.model_group_id: m for m in models if m.split == rows.name}
            chosen = [here[g] for g in groups if g in here]
            if len(chosen) < 2:
                say(f"{rows.name}: fewer than 2 members for {point.describe()}; skipped")
                continue
            say(f"{rows.name}: {point.describe()} of model groups "
                f"{', '.join(str(g) for g in groups)} ({how})")
            out.append(fit_ensemble(engine, run_id, project_name, label, point, rows, chosen,
                                    how, reference="train", evaluate=evaluate, assess=assess,
                                    build=build, seed=seed, artefacts_dir=artefacts_dir,
                                    group_features=group_features))
    return out
