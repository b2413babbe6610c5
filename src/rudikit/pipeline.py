"""``rudi run``: the development stage end to end, every result written to the store.

rationale gate -> load and validate sources (snapshots) -> label -> splits -> model grid
(fit, score the validation and test rows, evaluate with bootstrap intervals) -> selection (on
validation rows when the split has them) -> explanations of the chosen model (permutation
importance, per-row reasons) -> mitigation -> report. A failure marks the run failed;
everything stored before it stays as it was.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress
from rich.table import Table
from scipy import stats
from sqlalchemy.engine import Engine

from rudikit.data.sources import LoadedSource, unify
from rudikit.evaluation.metrics import MetricValue, evaluate_scores, roc_auc
from rudikit.explain import explain, explanation_method, remember_reference, top_reasons
from rudikit.fairness.list_simulation import list_simulation_metrics
from rudikit.fairness.stage import ScoredRows, assess, check_fairness_columns, mitigate
from rudikit.features.labels import make_label
from rudikit.features.splits import SplitIndices, make_split
from rudikit.models.artefacts import load_artefact, save_artefact, save_json_artefact
from rudikit.models.estimators import build_pipeline, check_grid, expand_grid
from rudikit.project import (
    OperatingPoint,
    Project,
    TemporalProject,
    load_project,
    missing_rationale,
)
from rudikit.store import results
from rudikit.store.engine import open_store


class RationaleIncomplete(Exception):
    def __init__(self, missing: list[str]):
        self.missing = missing
        super().__init__("required rationale fields are empty: " + ", ".join(missing))


@dataclass
class ModelSummary:
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
    # set when the split has a validation partition: selection then reads these, never the test
    validation_metrics: dict[tuple[str, str], MetricValue] | None = None
    validation_fairness_passed: bool | None = None


@dataclass
class _Candidate:
    """A model on the selection split, as explaining and mitigating it (if chosen) need it."""

    artefact: tuple[str, Path]  # (hash, path)
    inputs: list[str]
    test_score: np.ndarray
    validation_score: np.ndarray | None


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


def check_columns(project: Project, frame: pd.DataFrame) -> list[str]:
    """Problems with feature/entity columns, as key-path messages."""
    present = set(frame.columns)
    _, problems = project.features.resolve(list(frame.columns))
    for i, spec in enumerate(project.models):
        needed = [(f"add_categorical[{j}]", c) for j, c in enumerate(spec.add_categorical)]
        if spec.algorithm in ("score_column", "rate_by_category"):
            needed += [("params.column", c) for c in spec.params.get("column", [])]
        problems += [f"models[{i}].{key}: no column {c!r} in the data"
                     for key, c in needed if c not in present]
    if project.data.entity_id not in present:
        problems.append(f"data.entity_id: no column {project.data.entity_id!r} in the data")
    return problems + check_fairness_columns(project.fairness, present)


def _importances(pipeline: Any, X: pd.DataFrame, y: np.ndarray, seed: int,
                 max_rows: int = 2000, repeats: int = 5) -> list[results.Importance]:
    """Permutation importance (drop in ROC AUC) per input column on the test rows, with the
    standard deviation over repeats and a one-sided t-test p-value that it is above zero.

    Hand-written rather than sklearn's ``permutation_importance`` because the encoder is
    column-wise: shuffling a raw column equals shuffling its encoded column(s), so the rows are
    encoded once instead of once per column and repeat (with 340 COMPAS columns, minutes -> s).
    """
    if len(np.unique(y)) < 2:
        return []
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(X), size=min(max_rows, len(X)), replace=False)
    if len(np.unique(y[idx])) < 2:
        idx = np.arange(len(X))
    encoder, model = pipeline.named_steps["encode"], pipeline.named_steps["model"]
    matrix = encoder.transform(X.iloc[idx])
    y = y[idx]
    base = roc_auc(y, model.predict_proba(matrix)[:, 1])
    rows = []
    for column, positions in encoder.output_positions().items():
        drops = np.empty(repeats)
        for r in range(repeats):
            shuffled = matrix.copy()
            shuffled[:, positions] = matrix[rng.permutation(len(y))][:, positions]
            drops[r] = base - roc_auc(y, model.predict_proba(shuffled)[:, 1])
        mean, std = float(drops.mean()), float(drops.std())
        p = (float(stats.ttest_1samp(drops, 0.0, alternative="greater").pvalue) if std > 0
             else (0.0 if mean > 0 else 1.0))
        rows.append((column, "permutation_roc_auc", mean, std, p))
    return rows


def _metric(metrics: dict[tuple[str, str], MetricValue], metric: str) -> MetricValue | None:
    """``metric`` is a name (``roc_auc``) or name@parameter (``precision_at_k@10_pct``)."""
    return next((v for (name, param), v in metrics.items()
                 if name == metric or f"{name}@{param}" == metric), None)


def select_model(project: Project, models: list[ModelSummary]) -> tuple[ModelSummary | None, str]:
    """The best model on the selection split by the selection metric (higher is better, except
    the Brier score), with a reason a governance board can read. With a validation partition
    the choice (and the fairness gate) reads only the validation rows, so the test rows stay
    untouched for the final figures."""
    metric = project.evaluation.selection.metric
    split = project.selection_split
    lower_is_better = metric == "brier"
    gated = project.evaluation.selection.require_fairness and any(
        m.fairness_passed is not None for m in models)
    candidates = []
    for m in models:
        on_validation = m.validation_metrics is not None
        passed = m.validation_fairness_passed if on_validation else m.fairness_passed
        if m.split != split or not m.selectable or (gated and not passed):
            continue
        value = _metric(m.validation_metrics if on_validation else m.metrics, metric)
        if value is not None and not np.isnan(value.value):
            candidates.append((value, m))
    if not candidates:
        if gated:
            return None, (f"no model on split {split!r} meets every fairness requirement "
                          "(evaluation.selection.require_fairness is true)")
        return None, f"no model has {metric} on split {split!r}"
    candidates.sort(key=lambda c: c[0].value, reverse=not lower_is_better)
    best_value, best = candidates[0]
    rows = "validation" if best.validation_metrics is not None else "test"
    reason = (f"{'lowest' if lower_is_better else 'highest'} {metric} on the {rows} rows of "
              f"split {split!r}: {_with_interval(best_value)}, among {len(candidates)} models"
              + (" that meet every fairness requirement" if gated else ""))
    if len(candidates) > 1:
        runner_value, runner = candidates[1]
        reason += (f"; runner-up {runner.algorithm} (model group {runner.model_group_id}) "
                   f"{runner_value.value:.3f}")
        if best_value.lower is not None and best_value.lower <= runner_value.value:
            reason += " - within the interval, so the two are not clearly different"
    final = _metric(best.metrics, metric)
    if rows == "validation" and final is not None:
        reason += f"; on the held-out test rows (the final figure) {_with_interval(final)}"
    return best, reason


def _with_interval(value: MetricValue) -> str:
    interval = (f" (95% CI {value.lower:.3f} to {value.upper:.3f})"
                if value.lower is not None else "")
    return f"{value.value:.3f}{interval}"


def run_project(project_dir: str | Path, *, url: str | None = None, schema: str | None = None,
                progress: Progress | None = None, write_report: bool = True,
                engine: Engine | None = None) -> RunResult:
    """Run the development pipeline for the project in ``project_dir`` (a project with a
    ``temporal`` section goes to :func:`rudikit.temporal_pipeline.run_temporal_project`)."""
    project_dir = Path(project_dir)
    project = load_project(project_dir)
    project_dir = project_dir if project_dir.is_dir() else project_dir.parent
    missing = missing_rationale(project.rationale)
    if missing:
        raise RationaleIncomplete(missing)
    engine = engine or open_store(url, project_dir, schema=schema)
    if isinstance(project, TemporalProject):
        from rudikit.temporal_pipeline import run_temporal_project

        return run_temporal_project(project, project_dir, engine, progress, write_report)
    frame, loaded = unify(project, project_dir)
    problems = check_columns(project, frame)
    if problems:
        raise ValueError("; ".join(problems))
    seed = project.evaluation.seed
    origin = "synthetic" if all(s.origin == "synthetic" for s in loaded) else "real"
    run_id = results.start_run(engine, project.name, project.config_hash(),
                               project.model_dump(mode="json", by_alias=True), seed, origin)
    result = RunResult(run_id, project.name, str(engine.url.render_as_string(hide_password=True)),
                       loaded)
    try:
        for s in loaded:
            lo, hi = s.date_range
            results.record_snapshot(engine, run_id, source=s.name, kind=s.kind,
                                    location=s.location, files=len(s.files), rows=len(s.frame),
                                    bad_rows=s.report.bad_rows, warnings=len(s.report.warnings),
                                    checksum=s.checksum, min_date=lo, max_date=hi)
        _develop(project, project_dir, frame, engine, run_id, result, progress)
        results.finish_run(engine, run_id, "finished")
        if write_report:
            from rudikit.reports.cards import write_run_cards
            from rudikit.reports.run_report import write_run_report

            result.report_path = write_run_report(engine, run_id, project_dir / ".rudi"
                                                  / "reports")
            write_run_cards(engine, run_id, project_dir / ".rudi" / "cards", sources=loaded)
            results.set_report_path(engine, run_id, str(result.report_path))
    except BaseException as exc:
        results.finish_run(engine, run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return result


def _develop(project: Project, project_dir: Path, frame: pd.DataFrame, engine: Engine,
             run_id: int, result: RunResult, progress: Progress | None) -> None:
    y_all, keep = make_label(frame, project.label)
    data = frame.loc[keep].reset_index(drop=True)
    y_all = y_all[keep]
    entity = data[project.data.entity_id].astype("string").to_numpy()
    knowledge = (pd.to_datetime(data[project.data.knowledge_date], utc=True).to_numpy()
                 if project.data.knowledge_date in data.columns else None)
    splits: list[SplitIndices] = [
        make_split(data, spec, f"splits[{i}]", project.data.knowledge_date)
        for i, spec in enumerate(project.splits)
    ]
    grid = expand_grid(project.models)
    features, _ = project.features.resolve(list(data.columns))
    columns = features.input_columns
    extra = [c for p in grid for c in p.columns_needed() if c not in columns]
    X = data[columns + list(dict.fromkeys(extra))]
    attrs = data[project.fairness.columns]
    candidates: dict[int, _Candidate] = {}  # model id -> what the chosen one needs later
    artefacts = project_dir / ".rudi" / "models"
    ev = project.evaluation

    def evaluate(y: np.ndarray, score: np.ndarray) -> list[MetricValue]:
        return evaluate_scores(y, score, thresholds=ev.thresholds, top_k=ev.top_k,
                               top_pct=ev.top_pct, bootstrap=ev.bootstrap,
                               confidence=ev.confidence, seed=ev.seed)
    first_train = splits[0].train
    try:
        check_grid([(p, p.describe()) for p in grid], features, X.iloc[first_train],
                   y_all[first_train])
    except ValueError as exc:
        raise ValueError(f"models: {exc}") from None
    total = len(grid) * len(splits)
    task = progress.add_task("fitting models", total=total) if progress else None
    with progress if progress else nullcontext():
        for split in splits:
            for point in grid:
                if progress:
                    progress.update(task, description=f"{split.name}: {point.describe()}")
                point_features = point.features(features)
                group_id = results.get_or_create_model_group(
                    engine, project.name, point.algorithm, point.params,
                    point_features.model_dump(mode="json"), project.label.name)
                pipeline, fit_params = build_pipeline(point, features, ev.seed)
                X_train, y_train = X.iloc[split.train], y_all[split.train]
                if len(np.unique(y_train)) < 2:
                    raise ValueError(f"splits: {split.name!r} training rows have only one label "
                                     "value; cannot fit a classifier")
                started = time.perf_counter()
                pipeline.fit(X_train, y_train, **fit_params)
                seconds = time.perf_counter() - started
                remember_reference(pipeline, X_train)  # for explaining one row later
                X_test, y_test = X.iloc[split.test], y_all[split.test]
                score = pipeline.predict_proba(X_test)[:, 1]
                metrics = evaluate(y_test, score)
                validation: list[MetricValue] | None = None
                if split.validation is not None:
                    y_val = y_all[split.validation]
                    val_score = pipeline.predict_proba(X.iloc[split.validation])[:, 1]
                    validation = evaluate(y_val, val_score)
                on_selection = split.name == project.selection_split
                lists = (list_simulation_metrics(project.fairness, attrs.iloc[split.test],
                                                 y_test, score, ev.seed)
                         if on_selection else [])
                digest, path = save_artefact(pipeline, artefacts)
                model_id = results.record_model(
                    engine,
                    results.FittedModel(run_id, group_id, split.name, len(split.train),
                                        len(split.test), (split.train_start, split.train_end),
                                        (split.test_start, split.test_end), digest, str(path),
                                        seconds),
                    entity_ids=entity[split.test],
                    as_of=None if knowledge is None else knowledge[split.test],
                    score=score, label=y_test, importances=[],
                    # validation figures are stored beside the test ones, named apart
                    metrics=metrics + lists + [replace(m, metric=f"validation_{m.metric}")
                                               for m in validation or []])
                summary = ModelSummary(model_id, group_id, point.algorithm, point.params,
                                       split.name, {(m.metric, m.parameter): m for m in metrics},
                                       seconds, selectable=point.selectable)
                _assess_fairness(project, engine, summary, attrs.iloc[split.test], y_test, score)
                if validation is not None:
                    summary.validation_metrics = {(m.metric, m.parameter): m for m in validation}
                    if summary.fairness_passed is not None:
                        summary.validation_fairness_passed = assess(
                            project.fairness, attrs.iloc[split.validation], y_val,
                            val_score).passed
                result.models.append(summary)
                if on_selection:
                    candidates[model_id] = _Candidate(
                        (digest, path), point_features.input_columns, score,
                        val_score if validation is not None else None)
                if progress:
                    progress.advance(task)
    result.selected, result.selection_reason = select_model(project, result.models)
    if result.selected:
        results.mark_selected(engine, result.selected.model_id, result.selection_reason)
        split = next(sp for sp in splits if sp.name == project.selection_split)
        chosen = candidates[result.selected.model_id]
        _explain_selected(engine, result.selected, chosen.artefact, X[chosen.inputs], y_all,
                          split, entity, knowledge, ev.seed)
        if project.fairness.mitigation:
            test = ScoredRows(attrs.iloc[split.test], y_all[split.test], chosen.test_score)
            validation_rows = (None if chosen.validation_score is None else ScoredRows(
                attrs.iloc[split.validation], y_all[split.validation],
                chosen.validation_score))
            result.mitigated = _mitigate(project, engine, run_id, result.selected, test,
                                         validation_rows, entity[split.test],
                                         None if knowledge is None else knowledge[split.test],
                                         split, artefacts)


def _explain_selected(engine: Engine, model: ModelSummary, artefact: tuple[str, Path],
                      X: pd.DataFrame, y: np.ndarray, split: SplitIndices, entity: np.ndarray,
                      knowledge: np.ndarray | None, seed: int, reasons: int = 5) -> None:
    """Explain the chosen model on its test rows, from the stored artefact so the explanations
    are of exactly the model on record: permutation importance (global), and the top reasons
    behind each score (for the list and the API) where the model has an explanation method
    (random forests and baselines have none). Only the chosen model is explained: permutation
    importance over a few hundred columns is the slowest step of a run, and nobody reads it
    for the models that were not chosen."""
    pipeline = load_artefact(artefact[1], artefact[0])
    X_test = X.iloc[split.test]
    results.record_importances(engine, model.model_id,
                               _importances(pipeline, X_test, y[split.test], seed))
    method = explanation_method(pipeline)
    if method is None:
        return
    explanation = explain(pipeline, X_test)  # centred on the training rows
    results.record_individual_importances(
        engine, model.model_id, method, entity[split.test],
        None if knowledge is None else knowledge[split.test], top_reasons(explanation, reasons))


def _assess_fairness(project: Project, engine: Engine, summary: ModelSummary,
                     attrs: pd.DataFrame, y: np.ndarray, score: np.ndarray,
                     at: OperatingPoint | None = None) -> None:
    """Audit one model and evaluate the requirements; store both; note the verdict."""
    fairness = project.fairness
    if not (fairness.attributes or fairness.intersections or fairness.requirements):
        return
    at = at or fairness.at
    assessed = assess(fairness, attrs, y, score, at)
    results.record_fairness(engine, summary.model_id, at.label(),
                            assessed.audit.disparities if assessed.audit else None,
                            assessed.requirements)
    if assessed.requirements:
        summary.fairness_passed = assessed.passed
        summary.requirement_summaries = [f"{r.requirement.name}: {r.summary}"
                                         for r in assessed.requirements]


def _mitigate(project: Project, engine: Engine, run_id: int, base: ModelSummary,
              test: ScoredRows, validation: ScoredRows | None, entity: np.ndarray,
              as_of: np.ndarray | None, split: SplitIndices, artefacts: Path) -> ModelSummary:
    """Per-group thresholds on the chosen model (fitted on the validation rows when the split
    has them): a new model group with its own test predictions, evaluations, audit and the
    fairness-performance frontier (stored as evaluations)."""
    started = time.perf_counter()
    mitigated = mitigate(project.fairness, test, validation, seed=project.evaluation.seed)
    seconds = time.perf_counter() - started
    params = {"base_model_group": base.model_group_id, **mitigated.settings}
    group_id = results.get_or_create_model_group(
        engine, project.name, f"mitigated_{base.algorithm}", params,
        project.features.model_dump(mode="json"), project.label.name)
    digest, path = save_json_artefact({"base_model_id": base.model_id,
                                       "thresholds": mitigated.thresholds,
                                       "fold_thresholds": mitigated.fold_thresholds,
                                       **mitigated.settings}, artefacts)
    attrs, y = test.attrs, test.y
    ev = project.evaluation
    at = project.fairness.at
    # decisions are adjusted >= 0.5; a top-k list stays a top-k list of the adjusted score
    thresholds = sorted({0.5, *ev.thresholds})
    metrics = evaluate_scores(y, mitigated.adjusted_score, thresholds=thresholds,
                              top_k=ev.top_k, top_pct=ev.top_pct, bootstrap=ev.bootstrap,
                              confidence=ev.confidence, seed=ev.seed)
    curve = mitigated.frontier  # drawn on the rows the thresholds were fitted on
    n_curve = len(validation.y) if validation is not None else len(y)
    for row in curve.itertuples():
        tag = "unmitigated" if row.kind == "unmitigated" else f"tolerance={row.tolerance:g}"
        metrics += [MetricValue("frontier_largest_gap", tag, float(row.achieved_gap), None,
                                None, n_curve),
                    MetricValue("frontier_objective", tag, float(row.objective_value), None,
                                None, n_curve)]
    # the guide's list simulation on the adjusted scores, on the chosen model's draws
    metrics += list_simulation_metrics(project.fairness, attrs, y, mitigated.adjusted_score,
                                       ev.seed)
    model_id = results.record_model(
        engine,
        results.FittedModel(run_id, group_id, split.name, len(split.train), len(split.test),
                            (split.train_start, split.train_end),
                            (split.test_start, split.test_end), digest, str(path), seconds),
        entity_ids=entity, as_of=as_of, score=mitigated.adjusted_score, label=y,
        metrics=metrics, importances=[])
    summary = ModelSummary(model_id, group_id, f"mitigated_{base.algorithm}", params,
                           split.name, {(m.metric, m.parameter): m for m in metrics}, seconds)
    decisions_at = OperatingPoint(threshold=0.5) if at.threshold is not None else at
    _assess_fairness(project, engine, summary, attrs, y, mitigated.adjusted_score, decisions_at)
    return summary
