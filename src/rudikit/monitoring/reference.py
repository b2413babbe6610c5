"""The reference a deployment's production is compared with: drift buckets and counts of the
training rows it was fitted on (inputs) and of its test scores, and those test scores and labels
(the KS test, the expected performance).

Fitted when a model goes live (``rudi deploy``, a rollback, a promoting retrain, the demo's
deploy; else on the deployment's first monitor pass) and stored (``reference_profiles``), so
passes read one row instead of rebuilding the training rows and every stored test prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from rudikit.config import Features, Project
from rudikit.data.group_size import with_group_size
from rudikit.features.encoding import datetime_part_values
from rudikit.features.labels import make_label
from rudikit.features.splits import make_split
from rudikit.monitoring.drift import ReferenceProfile
from rudikit.store.monitoring_tables import reference_profiles
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.queries import predictions as predictions_q
from rudikit.store.queries.evaluations import REFIT_OF

if TYPE_CHECKING:
    from rudikit.monitoring.monitor import Deployed


def training_rows(project: Project, frame: pd.DataFrame, split_name: str,
                  with_validation: bool = False) -> pd.DataFrame:
    """The labelled rows the deployed model was trained on: its split's training part, and
    its validation part too for a model refit on both (``with_validation``)."""
    y, keep = make_label(frame, project.label)
    data = frame.loc[keep].reset_index(drop=True)
    data["__label"] = y[keep]
    for i, spec in enumerate(project.splits):
        if spec.name == split_name:
            split = make_split(data, spec, f"splits[{i}]", project.data.knowledge_date)
            rows = split.train
            if with_validation and split.validation is not None:
                rows = np.sort(np.concatenate([split.train, split.validation]))
            return data.iloc[rows].reset_index(drop=True)
    return data  # the split was renamed or removed since: profile all labelled rows


def datetime_parts(times: pd.Series, parts: list[str]) -> dict[str, pd.Series]:
    """The datetime parts a model reads (``datetime.hour``...) as category text ("13", "0"),
    from UTC times, computed as the encoder computes them."""
    times = pd.to_datetime(times, utc=True, errors="coerce")
    return {part: pd.Series(values, index=times.index).astype("Int64").astype("string")
            for part, values in zip(parts, datetime_part_values(times, parts), strict=True)}


def reference_columns(project: Project, features: Features) -> list[str]:
    """The development data's columns a reference fit reads: the label's and the splits'
    columns, the time and the model's inputs (the rest need not be kept to fit it)."""
    label = project.label
    columns = [c.column for c in [*label.positive_when, *label.exclude_when]]
    for spec in project.splits:
        columns += [getattr(spec, a) for a in ("date_column", "group_column", "column")
                    if getattr(spec, a, None)]
    categorical, numeric = profile_columns(features)
    columns += [project.data.knowledge_date, *categorical, *numeric]
    columns += [features.datetime.column] if features.datetime else []
    columns += features.group_size.by if features.group_size else []  # what it is counted from
    return list(dict.fromkeys(columns))


def profile_columns(features: Features) -> tuple[list[str], list[str]]:
    categorical = features.categorical + features.boolean
    if features.datetime:
        categorical += [f"{features.datetime.column}.{p}" for p in features.datetime.parts]
    return categorical, list(features.numeric_inputs)


def with_parts(frame: pd.DataFrame, features: Features) -> pd.DataFrame:
    if not features.datetime or features.datetime.column not in frame:
        return frame
    frame = frame.copy(deep=False)  # the parts added, no column copied (copy on write)
    col = features.datetime.column
    for part, values in datetime_parts(frame[col], list(features.datetime.parts)).items():
        frame[f"{col}.{part}"] = values.to_numpy()
    return frame


@dataclass
class Reference:
    """What production is compared with: the drift buckets and counts of the training rows
    (inputs) and of the test scores, and the test scores and labels (-1 unknown)."""

    profile: ReferenceProfile
    score_profile: ReferenceProfile
    scores: np.ndarray
    labels: np.ndarray


def reference(engine: Engine, project: Project, frame: Callable[[], pd.DataFrame],
              dep: Deployed) -> Reference:
    """The deployment's stored reference; on its first pass, fitted on the training rows (of
    ``frame()``, the development data, read only then) and the stored test predictions and
    stored, so later passes read one row instead."""
    row = monitoring_q.reference_profile(engine, dep.deployment_id)
    if row is not None:
        pairs = np.frombuffer(row["reference_scores"], dtype=np.float64).reshape(-1, 2)
        return Reference(ReferenceProfile.from_json(row["profile"]["inputs"]),
                         ReferenceProfile.from_json(row["profile"]["score"]),
                         pairs[:, 0].copy(), pairs[:, 1].astype(np.int64))
    rows, grouped = frame(), dep.features.group_size
    if grouped is not None:  # counted over every loaded row, as the run counted it
        rows = with_group_size(rows, grouped.by, grouped.column)
    evals = evaluations_q.evaluations_of_models(engine, [dep.model_id])
    refit = bool((evals["metric"] == REFIT_OF).any())  # trained on the validation rows too
    train = with_parts(training_rows(project, rows, dep.split, refit), dep.features)
    categorical, numeric = profile_columns(dep.features)
    categorical = [c for c in categorical if c in train.columns]
    numeric = [c for c in numeric if c in train.columns]
    profile = ReferenceProfile().fit(train, categorical=categorical, numeric=numeric)
    del train  # the development rows, before the test predictions are read
    stored = predictions_q.scores_frame(engine, [dep.model_id])
    scores = stored["score"].to_numpy()
    labels = stored["label"].fillna(-1).to_numpy(np.int64)  # -1: no label known
    score_profile = ReferenceProfile().fit(pd.DataFrame({"score": scores}), categorical=[],
                                           numeric=["score"])
    with engine.begin() as conn:
        conn.execute(insert(reference_profiles).values(
            deployment_id=dep.deployment_id, model_id=dep.model_id,
            profile={"inputs": profile.to_json(), "score": score_profile.to_json()},
            reference_scores=np.column_stack([scores, labels.astype(float)]).tobytes(),
            created_at=datetime.now(UTC)))
    return Reference(profile, score_profile, scores, labels)
