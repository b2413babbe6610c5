"""The one run engine: every model rudikit fits goes through :func:`fit_score_record`, and every
development run through one loop over splits x model grid (:func:`fit_grid`).

Case projects (a row per search or person) and temporal projects (a list of officers per as-of
date) differ only in the experiment object they hand the loop (:class:`Experiment`): where the
rows come from, which model groups there are, how scores are evaluated and audited, and how a
group is chosen. Retraining and backtests fit through the same :func:`fit_score_record`, so a
model is saved, recorded, evaluated and audited the same way whatever asked for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import Engine

from rudikit.config import Execution, Features
from rudikit.data.profile import profile_frame
from rudikit.data.sources import LoadedSource
from rudikit.evaluation.metrics import MetricValue
from rudikit.explain import remember_reference
from rudikit.fairness.stage import ModelFairness
from rudikit.fairness.tradeoff import VALIDATION_REQUIREMENT
from rudikit.models.artefacts import artefact_bytes, stored_path, write_artefact
from rudikit.models.estimators import GridPoint, limit_jobs, predict_scores
from rudikit.models.search import SEARCH_TRIAL
from rudikit.run.execution import ordered_results
from rudikit.store import results
from rudikit.store.queries.evaluations import REFIT_OF
from rudikit.store.queries.fairness import MET, NOT_MET, combined_status


class FitError(ValueError):
    """A model could not be fitted on a split's rows (one label value, a library's refusal)."""


@dataclass
class SplitRows:
    """The rows one fit sees. ``as_of`` is each test row's knowledge or as-of date; ``attrs``
    the fairness attributes of the test rows (and ``validation_attrs`` of the validation rows)."""

    name: str
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    entity: np.ndarray
    as_of: np.ndarray | None
    train_period: tuple[Any, Any]
    test_period: tuple[Any, Any]
    attrs: pd.DataFrame | None = None
    X_validation: pd.DataFrame | None = None
    y_validation: np.ndarray | None = None
    validation_attrs: pd.DataFrame | None = None

    @property
    def has_validation(self) -> bool:
        return self.X_validation is not None


@dataclass(frozen=True)
class GridEntry:
    """One model group of an experiment's grid: the grid point, the name reports show, the
    features it is built with, and whether selection may choose it."""

    point: GridPoint
    name: str
    features: Features
    selectable: bool = True
    baseline: bool = False


#: What an evaluation gives: the metrics to store, and whatever the experiment wants to keep
#: beside them (the temporal lists' per-date table).
Evaluated = tuple[list[MetricValue], Any]


@dataclass
class ModelSummary:
    """One fitted, stored model: what selection, the command line and later steps read."""

    model_id: int
    model_group_id: int
    algorithm: str
    params: dict[str, Any]
    split: str
    metrics: dict[tuple[str, str], MetricValue]
    train_seconds: float
    fairness_passed: bool | None = None  # None: no requirements configured
    selectable: bool = True
    requirement_summaries: list[str] = field(default_factory=list)
    # requirement name -> met / not met / inconclusive / insufficient data on the test rows
    requirement_statuses: dict[str, str] = field(default_factory=dict)
    # set when the split has a validation partition: selection then reads these, never the test
    validation_metrics: dict[tuple[str, str], MetricValue] | None = None
    validation_fairness_passed: bool | None = None
    validation_statuses: dict[str, str] | None = None
    name: str = ""
    artefact: tuple[str, Path] | None = None  # (hash, path)
    score: np.ndarray | None = None  # the test rows'
    validation_score: np.ndarray | None = None
    details: Any = None  # what the experiment's evaluation kept beside the metrics
    entry: GridEntry | None = None
    refit_of: int | None = None  # the model this one refits (evaluation.selection.refit)


def by_key(metrics: Iterable[MetricValue]) -> dict[tuple[str, str], MetricValue]:
    return {(m.metric, m.parameter): m for m in metrics}


def requirement_statuses(assessed: Sequence[tuple[str, ModelFairness]]) -> dict[str, str]:
    """Each requirement's verdict over the operating points (or list dates) assessed, by the
    store's one rule (:func:`rudikit.store.queries.fairness.combined_status`)."""
    found: dict[str, list[str]] = {}
    for _, fairness in assessed:
        for r in fairness.requirements:
            found.setdefault(r.requirement.name, []).append(r.status)
    return {name: combined_status(statuses) for name, statuses in found.items()}


def status_evaluations(statuses: dict[str, str], n: int) -> list[MetricValue]:
    """:data:`VALIDATION_REQUIREMENT` rows of ``statuses`` measured on ``n`` rows."""
    code = {MET: 1.0, NOT_MET: 0.0}
    return [MetricValue(VALIDATION_REQUIREMENT, name[:100], code.get(status, float("nan")),
                        None, None, n) for name, status in statuses.items()]


@dataclass
class Scored:
    """What a fit task hands back to the driver: the fitted pipeline as (SHA-256, skops bytes),
    its scores and every figure computed from them, nothing stored yet."""

    artefact: tuple[str, bytes]
    seconds: float
    score: np.ndarray
    metrics: list[MetricValue]
    details: Any
    validation_score: np.ndarray | None
    validation: list[MetricValue] | None
    importances: list[results.Importance]
    assessed: list[tuple[str, ModelFairness]]
    validation_statuses: dict[str, str] | None  # requirement -> verdict on the validation rows


class Scoring(Protocol):
    """How an experiment builds, evaluates and audits a fit. It travels to the worker that
    runs the fit, so it holds configuration only, never the experiment's data."""

    def build(self, entry: GridEntry) -> tuple[Any, dict[str, Any]]: ...

    def evaluate(self, rows: SplitRows, score: np.ndarray, on_validation: bool) -> Evaluated: ...

    def assess(self, rows: SplitRows, score: np.ndarray, on_validation: bool
               ) -> list[tuple[str, ModelFairness]]: ...

    def importances(self, pipeline: Any) -> list[results.Importance]: ...


def fit_and_score(entry: GridEntry, rows: SplitRows, *,
                  build: Callable[[GridEntry], tuple[Any, dict[str, Any]]],
                  evaluate: Callable[[SplitRows, np.ndarray, bool], Evaluated],
                  assess: Callable[[SplitRows, np.ndarray, bool],
                                   list[tuple[str, ModelFairness]]] | None = None,
                  importances: Callable[[Any], list[results.Importance]] | None = None,
                  threads: int | None = None) -> Scored:
    """Build, fit, score the test (and validation) rows, evaluate and audit them: everything
    of one fit that needs no store, so it can run in any process."""
    if len(np.unique(rows.y_train)) < 2:
        raise FitError(f"splits: {rows.name!r} training rows have only one label value; cannot "
                       "fit a classifier")
    pipeline, fit_params = build(entry)
    limit_jobs(pipeline, threads)
    started = time.perf_counter()
    from lightgbm.basic import LightGBMError

    try:
        pipeline.fit(rows.X_train, rows.y_train, **fit_params)
    except LightGBMError as exc:  # not a ValueError: it would end the command in a traceback
        raise FitError(f"{rows.name}: {entry.name}: {exc}") from None
    seconds = time.perf_counter() - started
    remember_reference(pipeline, rows.X_train)  # for explaining one row later (the service)
    score = predict_scores(pipeline, rows.X_test)
    metrics, details = evaluate(rows, score, False)
    assessed = assess(rows, score, False) if assess is not None else []
    validation_score = validation = validation_statuses = None
    if rows.has_validation:
        validation_score = predict_scores(pipeline, rows.X_validation)
        validation, _ = evaluate(rows, validation_score, True)
        if any(f.requirements for _, f in assessed):
            assert assess is not None
            validation_statuses = requirement_statuses(assess(rows, validation_score, True))
    return Scored(artefact_bytes(pipeline), seconds, score, metrics, details, validation_score,
                  validation, importances(pipeline) if importances else [], assessed,
                  validation_statuses)


def score_task(scoring: Scoring, entry: GridEntry, rows: SplitRows, *,
               threads: int | None = None) -> Scored:
    """One split x model-group fit as an executor task (:mod:`rudikit.run.execution`)."""
    return fit_and_score(entry, rows, build=scoring.build, evaluate=scoring.evaluate,
                         assess=scoring.assess, importances=scoring.importances,
                         threads=threads)


def record_fit(engine: Engine, run_id: int, model_group_id: int, entry: GridEntry,
               rows: SplitRows, scored: Scored, *, artefacts_dir: Path,
               keep_scores: bool = True, refit_of: int | None = None,
               members: results.Members | None = None) -> ModelSummary:
    """The driver's half of a fit: write the artefact's bytes, then record the model with its
    predictions, evaluations (with the requirements' verdicts on the validation rows and, for
    a refit, :data:`REFIT_OF` naming the model ``refit_of`` it refits), its fairness
    assessment (per operating point) and an ensemble's ``members``, in one transaction."""
    digest = scored.artefact[0]
    path = write_artefact(digest, scored.artefact[1], artefacts_dir)
    metrics, validation = scored.metrics, scored.validation
    validation_statuses = scored.validation_statuses
    stored = metrics + [MetricValue(f"validation_{m.metric}", m.parameter, m.value, m.lower,
                                    m.upper, m.n) for m in validation or []]
    if validation_statuses:
        assert rows.y_validation is not None
        stored += status_evaluations(validation_statuses, len(rows.y_validation))
    if entry.point.trial is not None:  # what the report's search history reads
        index, number = entry.point.trial
        stored.append(MetricValue(SEARCH_TRIAL, f"models[{index}]", float(number), None, None,
                                  len(rows.y_train)))
    if refit_of is not None:  # what monitoring's reference and the report read
        stored.append(MetricValue(REFIT_OF, "", float(refit_of), None, None, len(rows.y_train)))
    model_id = results.record_model(
        engine,
        results.FittedModel(run_id, model_group_id, rows.name, len(rows.y_train),
                            len(rows.y_test), rows.train_period, rows.test_period, digest,
                            stored_path(path), scored.seconds),
        entity_ids=rows.entity, as_of=rows.as_of, score=scored.score, label=rows.y_test,
        metrics=stored, importances=scored.importances, audits=audits(scored.assessed),
        members=members)
    summary = ModelSummary(model_id, model_group_id, entry.point.algorithm, entry.point.params,
                           rows.name, by_key(m for m in metrics), scored.seconds,
                           selectable=entry.selectable, name=entry.name, entry=entry,
                           artefact=(digest, path), details=scored.details,
                           score=scored.score if keep_scores else None,
                           validation_score=scored.validation_score if keep_scores else None,
                           validation_metrics=by_key(validation) if validation else None,
                           refit_of=refit_of)
    note_assessment(summary, scored.assessed)
    if validation_statuses:
        summary.validation_statuses = validation_statuses
        summary.validation_fairness_passed = all(s == MET for s in validation_statuses.values())
    return summary


def fit_score_record(engine: Engine, run_id: int, model_group_id: int, entry: GridEntry,
                     rows: SplitRows, *,
                     build: Callable[[GridEntry], tuple[Any, dict[str, Any]]],
                     evaluate: Callable[[SplitRows, np.ndarray, bool], Evaluated],
                     artefacts_dir: Path,
                     assess: Callable[[SplitRows, np.ndarray, bool],
                                      list[tuple[str, ModelFairness]]] | None = None,
                     importances: Callable[[Any], list[results.Importance]] | None = None,
                     keep_scores: bool = True, refit_of: int | None = None,
                     members: results.Members | None = None) -> ModelSummary:
    """One fit in this process, stored (:func:`fit_and_score` then :func:`record_fit`).
    ``evaluate(rows, score, on_validation)`` and ``assess(...)`` are the experiment's;
    validation figures are stored beside the test ones, named apart."""
    scored = fit_and_score(entry, rows, build=build, evaluate=evaluate, assess=assess,
                           importances=importances)
    return record_fit(engine, run_id, model_group_id, entry, rows, scored,
                      artefacts_dir=artefacts_dir, keep_scores=keep_scores, refit_of=refit_of,
                      members=members)


def audits(assessed: Sequence[tuple[str, ModelFairness]]) -> list[results.Audit]:
    """Each operating point's (or list date's) audit and requirement results, as stored with
    the model (:func:`rudikit.store.results.record_model`)."""
    return [results.Audit(selection, fairness.audit.disparities if fairness.audit else None,
                          fairness.requirements) for selection, fairness in assessed]


def note_assessment(summary: ModelSummary,
                    assessed: Sequence[tuple[str, ModelFairness]]) -> None:
    """Note the verdict of the operating points (or list dates) ``assessed`` on ``summary``,
    for selection and the command line (the audits themselves are stored with the model)."""
    checked = [(selection, f) for selection, f in assessed if f.requirements]
    if checked:
        summary.fairness_passed = all(f.passed for _, f in checked)
        summary.requirement_statuses = requirement_statuses(checked)
        several = len(checked) > 1
        summary.requirement_summaries = [
            f"{r.requirement.name}{f' ({selection})' if several else ''}: {r.summary}"
            for selection, f in checked for r in f.requirements]


class Experiment(Protocol):
    """What a kind of project gives the engine."""

    name: str
    label: str
    seed: int
    artefacts_dir: Path

    def prepare(self, say: Callable[[str], None]) -> None: ...

    def grid(self) -> list[GridEntry]: ...

    def split_rows(self) -> Iterable[SplitRows]: ...

    def scoring(self) -> Scoring: ...

    def group_features(self, entry: GridEntry) -> dict[str, Any]: ...

    def fits(self) -> int: ...


def fit_grid(experiment: Experiment, engine: Engine, run_id: int,
             progress: Progress | Callable[[str], None] | None = None,
             execution: Execution | None = None, meanwhile: Callable[[], None] | None = None
             ) -> tuple[list[GridEntry], list[int], list[ModelSummary]]:
    """The one loop over splits x model grid: every entry fitted on every split, the fits
    computed where ``execution`` says (:mod:`rudikit.run.execution`; default: here, one after
    another) and stored here, in grid order, through :func:`record_fit`. Returns the grid, its
    model group ids and every fit, in order. ``progress``: a rich ``Progress`` the caller has
    started (a task is added), or a callable taking a message. ``meanwhile``: work of this
    process for the steps after the grid that does not depend on its results, done while
    the fits run (:func:`rudikit.run.execution.ordered_results`) rather than after the grid
    with every worker idle."""
    grid = experiment.grid()
    group_ids = [results.get_or_create_model_group(engine, experiment.name, e.point.algorithm,
                                                   e.point.params, experiment.group_features(e),
                                                   experiment.label) for e in grid]
    task = None
    if isinstance(progress, Progress):
        task = progress.add_task("fitting models", total=experiment.fits())
    scoring = experiment.scoring()
    calls, planned, costs = [], [], []
    for rows in experiment.split_rows():
        for entry, group_id in zip(grid, group_ids, strict=True):
            # the same rows object in each of the split's calls: sent to a cluster once
            calls.append((scoring, entry, rows))
            planned.append((entry, group_id, rows))
            costs.append(entry.point.expected_cost(len(rows.y_train)))
    fitted = []
    scored_fits = ordered_results(execution, score_task, calls, costs, meanwhile=meanwhile)
    for (entry, group_id, rows), scored in zip(planned, scored_fits, strict=True):
        if task is not None:  # short: the count and the time stay on an 80-column line
            description = f"{rows.name}: group {group_id} {entry.point.algorithm}"
            progress.update(task, description=description)  # type: ignore[union-attr]
        elif callable(progress):
            progress(f"{rows.name}: {entry.name}")
        fitted.append(record_fit(engine, run_id, group_id, entry, rows, scored,
                                 artefacts_dir=experiment.artefacts_dir))
        if task is not None:
            progress.advance(task)  # type: ignore[union-attr]
    return grid, group_ids, fitted


def record_snapshots(engine: Engine, run_id: int, sources: Sequence[LoadedSource],
                     profile: bool = True) -> None:
    """One data snapshot per loaded source (rows, bad rows, checksum, date range) and, with
    ``profile``, its columns' profiles for the data card."""
    for s in sources:
        lo, hi = s.date_range
        results.record_snapshot(engine, run_id, source=s.name, kind=s.kind,
                                location=s.location, files=len(s.files), rows=len(s.frame),
                                bad_rows=s.report.bad_rows, warnings=len(s.report.warnings),
                                checksum=s.checksum, min_date=lo, max_date=hi,
                                profiles=profile_frame(s.frame) if profile else None)


def data_origin(sources: Sequence[LoadedSource]) -> str:
    return "synthetic" if all(s.origin == "synthetic" for s in sources) else "real"


@dataclass
class RunResult:
    run_id: int
    project: str
    store_url: str
    sources: list[LoadedSource]
    models: list[ModelSummary] = field(default_factory=list)
    selected: ModelSummary | None = None
    selection_reason: str = ""
    mitigated: ModelSummary | None = None
    report_path: Path | None = None
    summary: Table | None = None  # what the command line shows instead of the model table

    @property
    def data_origin(self) -> str:
        origins = {s.origin for s in self.sources}
        return "synthetic" if origins == {"synthetic"} else "real" if origins == {"real"} \
            else "mixed"
