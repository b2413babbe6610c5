"""The step after a case project's grid that builds its ensembles (:mod:`rudikit.models.
ensemble`): members chosen on each split's validation rows, the ensemble then fitted, scored,
stored, evaluated and audited through :func:`rudikit.run.engine.fit_score_record` like any
model group."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from rudikit.evaluation.metrics import lower_is_better
from rudikit.models.artefacts import load_artefact
from rudikit.models.ensemble import ensemble_pipeline, stacking_meta
from rudikit.models.estimators import GridPoint
from rudikit.run.engine import Evaluated, GridEntry, ModelSummary, SplitRows, fit_score_record
from rudikit.run.selection import metric_value, tie_key
from rudikit.store import results


def top_members(models: Sequence[ModelSummary], split: str, metric: str, n: int
                ) -> list[ModelSummary]:
    """The ``n`` best selectable models of ``split`` by ``metric`` on its validation rows,
    in the order (and with the ties) selection uses (:func:`rudikit.run.selection.
    select_best`)."""
    ranked = []
    for m in models:
        if m.split != split or not m.selectable or m.validation_metrics is None \
                or m.validation_score is None or m.algorithm == "ensemble":
            continue
        value = metric_value(m.validation_metrics, metric)
        if value is not None and not np.isnan(value.value):
            ranked.append((tie_key(value.value, 0, m.model_group_id, lower_is_better(metric)), m))
    ranked.sort(key=lambda c: c[0])
    return [m for _, m in ranked[:n]]


def stack_meta(rows: SplitRows, chosen: Sequence[ModelSummary],
               build: Callable[[GridEntry], tuple[Any, dict[str, Any]]], seed: int) -> Any:
    """The stack's meta-model for ``rows``: fitted on its training rows' out-of-fold scores
    only (:func:`rudikit.models.ensemble.stacking_meta`), whatever else ``rows`` holds."""
    builders = []
    for m in chosen:
        assert m.entry is not None
        builders.append(build(m.entry))
    return stacking_meta(builders, rows.X_train, rows.y_train, seed)


def fit_ensembles(engine: Engine, run_id: int, project_name: str, label: str,
                  points: Sequence[GridPoint], split_rows: Sequence[SplitRows],
                  models: Sequence[ModelSummary], metric: str, artefacts_dir: Path, *,
                  evaluate: Callable[[SplitRows, np.ndarray, bool], Evaluated],
                  assess: Callable[..., Any],
                  build: Callable[[GridEntry], tuple[Any, dict[str, Any]]], seed: int,
                  say: Callable[[str], None] = lambda _: None) -> list[ModelSummary]:
    """One model per ensemble point and split with validation rows (others are skipped, said
    so): the top members on those rows, averaged. Returns the stored ensembles."""
    out: list[ModelSummary] = []
    for point in points:
        n = int(point.params.get("members", 3))
        method = str(point.params.get("method", "probability_average"))
        for rows in split_rows:
            if not rows.has_validation:
                say(f"{rows.name}: no validation rows, so no ensemble {point.describe()}")
                continue
            chosen = top_members(models, rows.name, metric, n)
            if len(chosen) < 2:
                say(f"{rows.name}: fewer than 2 members for {point.describe()}; skipped")
                continue
            members = []
            for m in chosen:
                assert m.artefact is not None
                members.append(load_artefact(m.artefact[1], m.artefact[0]))
            references = ([np.asarray(m.validation_score) for m in chosen]
                          if method == "rank_average" else None)
            meta = stack_meta(rows, chosen, build, seed) if method == "stack" else None
            pipeline, features = ensemble_pipeline(members, method, references,
                                                   [m.model_id for m in chosen], meta)
            params = {**point.params, "members": n, "method": method}
            entry = GridEntry(GridPoint("ensemble", params, selectable=point.selectable),
                              GridPoint("ensemble", params).describe(), features,
                              point.selectable)
            group_id = results.get_or_create_model_group(
                engine, project_name, "ensemble", params, features.model_dump(mode="json"),
                label)
            say(f"{rows.name}: {entry.name} of model groups "
                f"{', '.join(str(m.model_group_id) for m in chosen)}")
            summary = fit_score_record(engine, run_id, group_id, entry, rows,
                                       build=lambda _e, p=pipeline: (p, {}),
                                       evaluate=evaluate, assess=assess,
                                       artefacts_dir=artefacts_dir)
            summary.details = {"member_model_ids": [m.model_id for m in chosen],
                               "member_group_ids": [m.model_group_id for m in chosen]}
            out.append(summary)
    return out
