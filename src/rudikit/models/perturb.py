"""The chosen model refitted under the perturbations a department asks about, to measure how
much its list depends on them (seed 001: CMPD asked what happens without one data source;
precision held, the list changed).

* :func:`resample_positions`: a bootstrap resample of the training officers. Officers are drawn,
  not rows: one officer's rows on several as-of dates are not independent, so they stay
  together (an officer drawn twice brings every row twice).
* :func:`without_table`: the model's features without those computed from one source table
  (the cohort, who is scored, is kept).
* :func:`perturbed_tasks`: refits of one grid point on one split with the same seed, each
  scoring the split's first test as-of date, as the seed comparison of
  :func:`rudikit.models.seeds.seed_tasks` does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rudikit.config import Features
from rudikit.data.event_tables import ENTITY
from rudikit.models.estimators import GridPoint
from rudikit.models.temporal import (
    Planned,
    PreparedData,
    SplitMatrices,
    StabilityRows,
    build_temporal_pipeline,
    fit_and_score,
)


@dataclass
class Perturbation:
    """One refit: ``kind`` (``bootstrap`` or ``drop_source``), ``parameter`` (which resample or
    source), its list on the test date (entity -> score; None when it could not be refitted,
    ``note`` says why), the model's input columns and what was changed (``details``)."""

    kind: str
    parameter: str
    scores: pd.Series | None
    columns: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    note: str = ""


def resample_positions(rows: pd.DataFrame, rng: np.random.Generator,
                       entity: str = ENTITY) -> np.ndarray:
    """A bootstrap resample of ``rows`` by entity, as row positions: as many entities drawn
    with replacement as there are, each drawn entity's rows repeated as often as it was
    drawn. Positions rather than rows, so a task receives the split's training rows once
    and a resample is a few hundred kilobytes."""
    codes, uniques = pd.factorize(rows[entity])
    drawn = np.bincount(rng.integers(0, len(uniques), len(uniques)), minlength=len(uniques))
    return np.repeat(np.arange(len(rows)), drawn[codes])


def without_table(features: Features, columns: Sequence[str]) -> Features:
    """``features`` without ``columns`` (those of one source table)."""
    drop = set(columns)
    return features.model_copy(update={
        kind: [c for c in getattr(features, kind) if c not in drop]
        for kind in ("categorical", "boolean", "numeric")})


def perturbed_list(point: GridPoint, features: Features, matrices: SplitMatrices,
                   positions: np.ndarray | None, seed: int, *, threads: int | None = None
                   ) -> tuple[np.ndarray, list[str], float]:
    """One refit (a task of its own) on ``matrices``' training rows at ``positions`` (a
    bootstrap resample; None: every row): its scores on the test rows, the model's input
    columns and the seconds it took. Every refit passes the same ``matrices`` object (sent
    to a cluster once, memory-mapped to a local worker once)."""
    started = time.perf_counter()
    if positions is not None:
        matrices = dataclasses.replace(
            matrices, train=matrices.train.iloc[positions].reset_index(drop=True))
    pipeline, score, _ = fit_and_score(point, features, matrices, seed, threads)
    return (score, list(pipeline.named_steps["encode"].input_columns),
            time.perf_counter() - started)


def perturbed_tasks(data: PreparedData, point: GridPoint, seed: int, rows: StabilityRows, *,
                    resamples: int, tables: Sequence[str],
                    progress: Callable[[str], None] | None = None
                    ) -> Planned[tuple[pd.DataFrame, list[Perturbation]]]:
    """Refit ``point`` on the split of ``rows`` (:func:`stability_rows`) with ``seed``: on
    ``resamples`` bootstrap resamples of the training officers (drawn from a generator
    seeded with ``seed``), and without the features of each of ``tables``, each refit a
    task. The plan's value: the test rows of the split's first test date (entity and label)
    and one :class:`Perturbation` per refit, in that order.

    Planned, so a caller may run the refits in a batch with other tasks or alone
    (``.run(run_each)``); each refit costs the point's expected cost on its training rows."""
    matrices = rows.matrices
    test = matrices.test
    entities = test[ENTITY].astype("string").to_numpy()
    features = data.features_for(point)
    out: list[Perturbation] = []
    calls: list[tuple[Any, ...]] = []
    costs: list[float] = []
    refitted: list[Perturbation] = []

    def refit(kind: str, parameter: str, used: Features, positions: np.ndarray | None,
              details: dict[str, object]) -> None:
        try:
            build_temporal_pipeline(point, used, seed)
        except ValueError as exc:  # a baseline ranking by a dropped column
            out.append(Perturbation(kind, parameter, None, details=details, note=str(exc)))
            return
        out.append(Perturbation(kind, parameter, None, details=details))
        refitted.append(out[-1])
        calls.append((point, used, matrices, positions, seed))
        costs.append(point.expected_cost(len(matrices.train) if positions is None
                                         else len(positions)))

    rng = np.random.default_rng(seed)
    officers = matrices.train[ENTITY].nunique()
    for b in range(1, resamples + 1):
        positions = resample_positions(matrices.train, rng)
        drawn = matrices.train[ENTITY].iloc[positions]
        refit("bootstrap", f"resample={b}", features, positions,
              {"seed": seed, "officers": int(officers),
               "distinct_officers": int(drawn.nunique()), "rows": len(positions)})
    for table in tables:
        dropped = [c for c in data.table_columns.get(table, [])
                   if c in features.input_columns]
        details: dict[str, object] = {"table": table, "dropped_columns": dropped}
        if not dropped:
            out.append(Perturbation("drop_source", f"source={table}", None, details=details,
                                    note=f"the model reads no feature of {table}"))
            continue
        refit("drop_source", f"source={table}", without_table(features, dropped), None,
              details)

    def collect(results: Iterator[Any]) -> tuple[pd.DataFrame, list[Perturbation]]:
        for perturbation, (score, columns, seconds) in zip(refitted, results, strict=True):
            perturbation.scores = pd.Series(score, index=entities)
            perturbation.columns = columns
            if progress:
                progress(f"{point.describe()} {perturbation.kind} {perturbation.parameter}: "
                         f"{seconds:.1f} s")
        return test[[ENTITY, matrices.label]], out

    return Planned(perturbed_list, calls, costs, collect)
