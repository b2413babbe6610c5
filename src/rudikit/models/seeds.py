"""The chosen model's lists for list stability: refitted with each seed on a split (each refit
an executor task), and the first seed's lists on further as-of dates, scored in blocks of
dates (a task each). The first seed's model may be the grid's own fit, which is then not
refitted (:class:`FittedSeed`). :func:`seed_tasks` plans the tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from rudikit.config import Features
from rudikit.models.estimators import GridPoint, limit_jobs, predict_scores
from rudikit.models.temporal import (
    ENTITY,
    Planned,
    PreparedData,
    RunEach,
    SplitMatrices,
    StabilityRows,
    any_task,
    fit_and_score,
    one_after_another,
)


def seed_list(point: GridPoint, features: Features, matrices: SplitMatrices, seed: int,
              keep: bool, *, threads: int | None = None
              ) -> tuple[pd.Series, Pipeline | None, float]:
    """One seed's refit (a task of its own): its list on ``matrices``' test rows
    (entity -> score), the fitted pipeline if ``keep`` (to score further dates), and the
    seconds it took."""
    started = time.perf_counter()
    pipeline, score, _ = fit_and_score(point, features, matrices, seed, threads)
    entities = matrices.test[ENTITY].astype("string").to_numpy()
    return (pd.Series(score, index=entities), pipeline if keep else None,
            time.perf_counter() - started)


def dated_lists(model: Pipeline | tuple[str, bytes, str], rows: pd.DataFrame, *,
                threads: int | None = None) -> dict[pd.Timestamp, pd.Series]:
    """The list (entity -> score) of ``model`` on each as-of date of ``rows``: one block of
    dates, a task of its own. ``model``: a fitted pipeline, or one saved as (SHA-256, skops
    bytes, name for errors), loaded here (the grid's fit, which the driver never loads)."""
    pipeline = model if isinstance(model, Pipeline) else _saved_model(*model)
    limit_jobs(pipeline, threads)
    columns = pipeline.named_steps["encode"].input_columns
    scores = pd.Series(predict_scores(pipeline, rows[columns]),
                       index=rows[ENTITY].astype("string").to_numpy())
    dates = rows["as_of_date"].to_numpy()
    return {pd.Timestamp(when): scores[dates == when] for when in np.unique(dates)}


#: The saved model a process loaded last (SHA-256 -> pipeline): the blocks of dates of one
#: model, run one after another on a worker, load it once.
_LOADED: dict[str, Pipeline] = {}


def _saved_model(digest: str, data: bytes, name: str) -> Pipeline:
    """A saved pipeline from its bytes (hash-checked), loaded once per process."""
    from rudikit.models.artefacts import artefact_from_bytes

    if digest not in _LOADED:
        _LOADED.clear()
        _LOADED[digest] = artefact_from_bytes(data, digest, name)
    return _LOADED[digest]


@dataclass(frozen=True)
class FittedSeed:
    """The grid's own fit of a point on a split, with one of the stability seeds (the run's):
    :func:`seed_tasks` does not refit it. ``scores``: its list on the split's first test
    as-of date (entity -> score); ``artefact``: (SHA-256, skops bytes, name for errors)."""

    seed: int
    scores: pd.Series
    artefact: tuple[str, bytes, str]


def seed_tasks(data: PreparedData, point: GridPoint, seeds: Sequence[int],
               rows: StabilityRows, *, progress: Callable[[str], None] | None = None,
               run_each: RunEach = one_after_another, fitted: FittedSeed | None = None
               ) -> Planned[tuple[dict[int, pd.Series], dict[pd.Timestamp, pd.Series]]]:
    """Refit one grid point on the split of ``rows`` (:func:`stability_rows`) with each seed,
    each refit a task; the plan's value is the test list per seed (first test as-of date:
    entity -> score) and, for the first seed, the lists on the extra dates of ``rows``,
    scored a block of :data:`rudikit.models.temporal.DATES_PER_BLOCK` dates a task.

    Planned (:func:`any_task` calls), so a caller may run the tasks in a batch with other
    steps' or alone (``.run(run_each)``). Without ``fitted``, the blocks of dates must wait
    for the first seed's refit: ``collect`` runs them through ``run_each``, so a caller
    passes its ``run_each`` both here and to ``.run``. With ``fitted`` (the first seed's
    model, already fitted on the split: the grid's own fit when the first seed is the
    run's), that seed is not refitted, and the blocks run beside the other seeds' refits.

    A refit's cost is the point's expected one; a block of dates (one prediction, about a
    second) costs nothing, so that in a batch the blocks are sent after every refit and even
    out the workers' ends."""
    features = data.features_for(point)
    if fitted is not None and fitted.seed != seeds[0]:
        raise ValueError(f"the fitted model's seed {fitted.seed} is not the first of "
                         f"{list(seeds)}")
    refit = list(seeds) if fitted is None else list(seeds[1:])
    if fitted is not None and progress:
        progress(f"{point.describe()} seed {fitted.seed}: the grid's fit")
    calls: list[tuple[Any, ...]] = []
    costs: list[float] = []
    if refit:
        # the same matrices object in every seed's task (and the perturbations'): memory-
        # mapped to local workers once rather than pickled with each
        calls += [(seed_list, point, features, rows.matrices, seed, fitted is None and i == 0)
                  for i, seed in enumerate(refit)]
        costs += [point.expected_cost(len(rows.matrices.train))] * len(refit)
    if fitted is not None:
        calls += [(dated_lists, fitted.artefact, block) for block in rows.blocks]
        costs += [0.0] * len(rows.blocks)

    def collect(results: Iterator[Any]
                ) -> tuple[dict[int, pd.Series], dict[pd.Timestamp, pd.Series]]:
        by_seed: dict[int, pd.Series] = {} if fitted is None else {fitted.seed: fitted.scores}
        by_date: dict[pd.Timestamp, pd.Series] = {}
        kept = None
        for call, found in zip(calls, results, strict=True):
            if call[0] is dated_lists:
                by_date.update(found)
                continue
            scores, pipeline, seconds = found
            by_seed[call[4]] = scores
            kept = pipeline if pipeline is not None else kept
            if progress:
                progress(f"{point.describe()} seed {call[4]}: {seconds:.1f} s")
        if rows.blocks and kept is not None:
            for lists in run_each(any_task, [(dated_lists, kept, block)
                                             for block in rows.blocks]):
                by_date.update(lists)
        return {seed: by_seed[seed] for seed in seeds}, by_date

    return Planned(any_task, calls, costs, collect)
