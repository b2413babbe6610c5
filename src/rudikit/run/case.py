"""The experiment of a case project (a row per search or per person at a decision date).

Rows come from the unified sources; the label is declarative; splits are temporal or
random/grouped, optionally with a validation partition (selection then reads only it). After
the grid, the chosen model is explained (permutation importance, per-row reasons) and, when the
project asks, mitigated with per-group thresholds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import Features, OperatingPoint, Project, TemporalSplit
from rudikit.data.sources import LoadedSource, loaded_as_categories, unify
from rudikit.data.validation import bad_date_problems
from rudikit.evaluation.metrics import (
    MetricValue,
    evaluate_scores,
    lower_is_better,
)
from rudikit.fairness.list_simulation import list_simulation_metrics
from rudikit.fairness.stage import (
    ModelFairness,
    ScoredRows,
    assess,
    check_fairness_columns,
    check_reference_groups,
    mitigate,
    mitigation_gap_metrics,
)
from rudikit.features.encoding import compact_text, compact_text_in_place, repeats_enough
from rudikit.features.labels import make_label
from rudikit.features.splits import SplitIndices, make_split
from rudikit.models.artefacts import save_json_artefact, stored_path
from rudikit.models.ensemble import ensemble_problems, ensemble_specs
from rudikit.models.estimators import (
    GridPoint,
    build_pipeline,
    check_grid,
    check_parameter_names,
    expand_grid,
)
from rudikit.models.search import search_points
from rudikit.run.case_explain import explain_selected
from rudikit.run.engine import (
    Evaluated,
    GridEntry,
    ModelSummary,
    RunResult,
    SplitRows,
    audits,
    by_key,
    note_assessment,
    status_evaluations,
)
from rudikit.run.ensembles import fit_ensembles
from rudikit.run.location_map import record_training_cells
from rudikit.run.selection import metric_value, select_best
from rudikit.store import results
from rudikit.store.queries.evaluations import REFIT_OF
from rudikit.store.queries.fairness import fitting_selection


def _date_columns(project: Project) -> dict[str, str]:
    """Each date column the project reads -> the first key that names it."""
    keys = [(project.data.knowledge_date, "data.knowledge_date")]
    if project.features.datetime:
        keys.append((project.features.datetime.column, "features.datetime.column"))
    keys += [(spec.date_column, f"splits[{i}].date_column")
             for i, spec in enumerate(project.splits) if isinstance(spec, TemporalSplit)]
    dates: dict[str, str] = {}
    for column, key in keys:
        dates.setdefault(column, key)
    return dates


def check_columns(project: Project, frame: pd.DataFrame,
                  loaded: Sequence[LoadedSource] = ()) -> list[str]:
    """Everything a run would refuse that the project file and the data show before any split
    or fit: missing feature/entity columns, misspelt hyperparameters, unknown fairness
    reference groups, date columns with more bad values than ``data.max_bad_share`` (counted
    from the ``loaded`` sources' reports), as key-path messages (``rudi validate`` and
    ``rudi run`` both ask)."""
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
    problems += check_parameter_names(project.models) + ensemble_problems(project)
    problems += bad_date_problems(_date_columns(project), frame, [s.report for s in loaded],
                                  project.data.max_bad_share)
    return (problems + check_fairness_columns(project.fairness, present)
            + check_reference_groups(project.fairness, frame))


@dataclass(frozen=True)
class CaseScoring:
    """How a case project builds, evaluates and audits one fit (the engine's
    :class:`rudikit.run.engine.Scoring`): configuration only, so it travels to a worker
    without the project's rows."""

    project: Project
    features: Features  # the project's, resolved against the data's columns

    @property
    def list_pct(self) -> float | None:
        """The list the guide's simulation draws when the fairness operating point is a
        threshold: the first evaluated top-% (``evaluation.top_pct``)."""
        return (self.project.evaluation.top_pct or [None])[0]

    def build(self, entry: GridEntry) -> tuple[Any, dict[str, Any]]:
        return build_pipeline(entry.point, self.features, self.project.evaluation.seed)

    def evaluate(self, rows: SplitRows, score: np.ndarray, on_validation: bool) -> Evaluated:
        y = rows.y_validation if on_validation else rows.y_test
        metrics = self.metrics(y, score)
        if not on_validation and rows.name == self.project.selection_split:
            # the guide's list simulation, on the split selection reads
            metrics += list_simulation_metrics(self.project.fairness, rows.attrs, y, score,
                                               self.project.evaluation.seed,
                                               top_pct=self.list_pct)
        return metrics, None

    def metrics(self, y: np.ndarray, score: np.ndarray,
                thresholds: list[float] | None = None) -> list[MetricValue]:
        ev = self.project.evaluation
        return evaluate_scores(y, score, thresholds=ev.thresholds if thresholds is None
                               else thresholds, top_k=ev.top_k, top_pct=ev.top_pct,
                               bootstrap=ev.bootstrap, confidence=ev.confidence, seed=ev.seed)

    def assess(self, rows: SplitRows, score: np.ndarray, on_validation: bool
               ) -> list[tuple[str, ModelFairness]]:
        attrs, y = ((rows.validation_attrs, rows.y_validation) if on_validation
                    else (rows.attrs, rows.y_test))
        return self.assessed(attrs, y, score, self.project.fairness.at)

    def assessed(self, attrs: pd.DataFrame | None, y: np.ndarray, score: np.ndarray,
                 at: OperatingPoint) -> list[tuple[str, ModelFairness]]:
        """The audit and requirements at one operating point (none when nothing is asked)."""
        fairness = self.project.fairness
        if not (fairness.attributes or fairness.intersections or fairness.requirements):
            return []
        return [(at.label(), assess(fairness, attrs, y, score, at))]

    def importances(self, pipeline: Any) -> list[results.Importance]:
        return []  # permutation importance is computed for the chosen model only


@dataclass
class CaseExperiment:
    """What a case project gives the run engine (:class:`rudikit.run.engine.Experiment`)."""

    project: Project
    frame: pd.DataFrame
    artefacts_dir: Path
    # the columns loaded as categoricals (unify's ``categories``) -> the dtype they are text as
    loaded_text: dict[str, Any] = field(default_factory=dict)

    def prepare(self, say: Callable[[str], None]) -> None:
        """Label, splits and the grid (checked before anything is fitted)."""
        project = self.project
        y_all, keep = make_label(self.frame, project.label)
        self.y = y_all[keep]
        # as Arrow text and datetime64 (8 bytes a row): as numpy arrays they were a Python
        # string and a Timestamp object a row, 0.2 GB per million rows, pickled to every task
        self.entity = self.frame[project.data.entity_id][keep].astype("string").array
        kd = project.data.knowledge_date
        self.knowledge = (pd.to_datetime(self.frame[kd][keep], utc=True).array
                          if kd in self.frame.columns else None)
        # the loaded rows' text as categoricals before anything copies them: the rows taken
        # here, the splits' and every task's copy are then codes, never the text (the loaded
        # rows are read again only by the data card, which reads categoricals as the text)
        text = {**self.loaded_text, **compact_text_in_place(self.frame)}
        data = self.frame.loc[keep].reset_index(drop=True)
        self.splits: list[SplitIndices] = [
            make_split(data, spec, f"splits[{i}]", project.data.knowledge_date)
            for i, spec in enumerate(project.splits)]
        chosen_on = next(s for s in self.splits if s.name == project.selection_split)
        if project.evaluation.selection.require_fairness and chosen_on.validation is None:
            raise ValueError(f"evaluation.selection.require_fairness: split {chosen_on.name!r} "
                             "has no validation rows in the data, and the requirements are "
                             "never checked on the test rows")
        if project.evaluation.selection.refit != "none" and chosen_on.validation is None:
            raise ValueError(f"evaluation.selection.refit: split {chosen_on.name!r} has no "
                             "validation rows in the data, so there is nothing to refit on")
        grid_specs, ensembles = ensemble_specs(project.models)
        self.points = expand_grid(grid_specs)
        self.ensemble_points = expand_grid(ensembles)  # built after the grid (fit_ensembles)
        if ensembles and chosen_on.validation is None:
            raise ValueError(f"models: an ensemble chooses its members on validation rows, "
                             f"and split {chosen_on.name!r} has none in the data")
        self.features, _ = project.features.resolve(list(data.columns))
        columns = self.features.input_columns
        extra = [c for p in self.points for c in p.columns_needed() if c not in columns]
        extra += [c for spec in project.models if spec.search is not None
                  for c in spec.add_categorical if c not in columns]
        self.X = compact_text(data[columns + list(dict.fromkeys(extra))])
        # the fairness attributes as the text they were loaded as, which the audit reads
        self.attrs = data[project.fairness.columns].astype(
            {c: text[c] for c in project.fairness.columns if c in text})
        del data
        first = self.splits[0].train
        try:
            check_grid([(p, p.describe()) for p in self.points], self.features,
                       self.X.iloc[first], self.y[first])
        except ValueError as exc:
            raise ValueError(f"models: {exc}") from None
        self.points += search_trials(project, self.features, self.X, self.y, chosen_on,
                                     self.seed, say)
        self.entries = [GridEntry(p, p.describe(), p.features(self.features), p.selectable)
                        for p in self.points]

    @classmethod
    def load(cls, project: Project, project_dir: Path, *, allow_synthetic: bool = False
             ) -> tuple[CaseExperiment, list[Any]]:
        # the text categoricals from each file on: the loaded text is never held whole
        frame, loaded = unify(project, project_dir, allow_synthetic=allow_synthetic,
                              categories=True)
        text = loaded_as_categories(project, frame)
        for column in [c for c in text if not repeats_enough(frame[c])]:
            frame[column] = frame[column].astype(text.pop(column))  # as compact_text leaves it
        problems = check_columns(project, frame, loaded)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(project, frame, project_dir / ".rudi" / "models", text), loaded

    # --- what the engine asks ------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.project.name

    @property
    def label(self) -> str:
        return self.project.label.name

    @property
    def seed(self) -> int:
        return self.project.evaluation.seed

    def grid(self) -> list[GridEntry]:
        return self.entries

    def fits(self) -> int:
        return len(self.points) * len(self.splits)

    def group_features(self, entry: GridEntry) -> dict[str, Any]:
        return entry.features.model_dump(mode="json")

    def scoring(self) -> CaseScoring:
        return CaseScoring(self.project, self.features)

    def split_rows(self) -> list[SplitRows]:
        out = []
        for split in self.splits:
            validation = split.validation
            out.append(SplitRows(
                split.name, self.X.iloc[split.train], self.y[split.train],
                self.X.iloc[split.test], self.y[split.test], self.entity[split.test],
                None if self.knowledge is None else self.knowledge[split.test],
                (split.train_start, split.train_end), (split.test_start, split.test_end),
                self.attrs.iloc[split.test],
                None if validation is None else self.X.iloc[validation],
                None if validation is None else self.y[validation],
                None if validation is None else self.attrs.iloc[validation]))
        return out

    # --- after the grid --------------------------------------------------------------------

    def fit_ensembles(self, engine: Engine, run_id: int, models: list[ModelSummary],
                      say: Callable[[str], None] = lambda _: None) -> list[ModelSummary]:
        """The project's ensembles of the grid's best groups, stored like any model group."""
        if not self.ensemble_points:
            return []
        scoring = self.scoring()
        return fit_ensembles(engine, run_id, self.name, self.label, self.ensemble_points,
                             self.split_rows(), models,
                             self.project.evaluation.selection.metric, self.artefacts_dir,
                             evaluate=scoring.evaluate, assess=scoring.assess,
                             build=scoring.build, seed=self.seed,
                             require_fairness=self.project.evaluation.selection.require_fairness,
                             say=say)

    def select(self, models: list[ModelSummary]) -> tuple[ModelSummary | None, str]:
        return select_best(self.project, models)

    def after_selection(self, engine: Engine, run_id: int, chosen: ModelSummary,
                        result: RunResult, step: Callable[[str], None] = lambda _: None
                        ) -> None:
        """Explain the chosen model; mitigate it when the project asks. ``step`` names each
        step as it starts (the progress line after the fits)."""
        split = next(sp for sp in self.splits if sp.name == chosen.split)
        assert chosen.artefact and chosen.entry and chosen.score is not None
        inputs = chosen.entry.features.input_columns
        step("explaining the chosen model")
        explain_selected(engine, self.project, chosen, chosen.artefact, self.X[inputs],
                         self.y, split, self.entity, self.knowledge)
        if chosen.entry.features.location is not None:
            step("location map of the training rows")
            train = self.trained_on(split)
            record_training_cells(engine, chosen.model_id, chosen.entry.features,
                                  self.X.iloc[train], self.y[train])
        if self.project.fairness.mitigation:
            step("mitigation")
            test = ScoredRows(self.attrs.iloc[split.test], self.y[split.test], chosen.score)
            validation_rows = (None if chosen.validation_score is None else ScoredRows(
                self.attrs.iloc[split.validation], self.y[split.validation],
                chosen.validation_score))
            result.mitigated = self._mitigate(engine, run_id, chosen, test, validation_rows,
                                              split)

    def trained_on(self, split: SplitIndices) -> np.ndarray:
        """The rows the selected model of ``split`` trained on (positions, in loaded order):
        its training rows, and its validation rows too when the chosen model is refit on them
        (``evaluation.selection.refit``, :mod:`rudikit.run.refit`)."""
        if self.project.evaluation.selection.refit != "none" and split.validation is not None:
            return np.sort(np.concatenate([split.train, split.validation]))
        return split.train

    def _mitigate(self, engine: Engine, run_id: int, base: ModelSummary, test: ScoredRows,
                  validation: ScoredRows | None, split: SplitIndices) -> ModelSummary:
        """Per-group thresholds on the chosen model (fitted on the validation rows when the
        split has them): a new model group with its own test predictions, evaluations, audit
        and the fairness-performance frontier (stored as evaluations). Thresholds are not a
        fitted pipeline, so they are recorded here rather than through ``fit_score_record``."""
        project = self.project
        started = time.perf_counter()
        mitigated = mitigate(project.fairness, test, validation, seed=self.seed)
        seconds = time.perf_counter() - started
        params = {"base_model_group": base.model_group_id, **mitigated.settings}
        group_id = results.get_or_create_model_group(
            engine, project.name, f"mitigated_{base.algorithm}", params,
            project.features.model_dump(mode="json"), project.label.name)
        digest, path = save_json_artefact({"base_model_id": base.model_id,
                                           "thresholds": mitigated.thresholds,
                                           "fold_thresholds": mitigated.fold_thresholds,
                                           **mitigated.settings, "fit": mitigated.details},
                                          self.artefacts_dir)
        attrs, y = test.attrs, test.y
        at = project.fairness.at
        # decisions are adjusted >= 0.5; a top-k list stays a top-k list of the adjusted score
        metrics = self.scoring().metrics(y, mitigated.adjusted_score,
                                 sorted({0.5, *project.evaluation.thresholds}))
        curve = mitigated.frontier  # drawn on the rows the thresholds were fitted on
        n_curve = len(validation.y) if validation is not None else len(y)
        for row in curve.itertuples():
            # a variant targeting one requirement is stored as target_*, its name the parameter
            prefix, tag = (("target", str(row.target)[:100]) if row.kind == "target" else
                           ("frontier", "unmitigated" if row.kind == "unmitigated"
                            else f"tolerance={row.tolerance:g}"))
            if row.kind != "target":
                metrics.append(MetricValue("frontier_largest_gap", tag, float(row.achieved_gap),
                                           None, None, n_curve))
            metrics.append(MetricValue(f"{prefix}_objective", tag, float(row.objective_value),
                                       None, None, n_curve))
            if row.requirements:  # the variant's requirements met on the fitting rows
                metrics += [MetricValue(f"{prefix}_requirements_met", tag,
                                        float(row.requirements_met), None, None, n_curve),
                            MetricValue(f"{prefix}_requirements", tag, float(row.requirements),
                                        None, None, n_curve)]
        metrics += mitigation_gap_metrics(mitigated)
        if validation is not None and mitigated.fitted_on_validation:
            # the variant on the validation rows, as every model group is stored there: what
            # selection's trade-off plot reads (rudikit.fairness.tradeoff)
            assert mitigated.fitting_score is not None
            metrics += [MetricValue(f"validation_{m.metric}", m.parameter, m.value, m.lower,
                                    m.upper, m.n)
                        for m in self.scoring().metrics(validation.y, mitigated.fitting_score,
                                                sorted({0.5, *project.evaluation.thresholds}))]
            metrics += status_evaluations({j.result.requirement.name: j.status
                                           for j in mitigated.fitting}, len(validation.y))
        # the guide's list simulation on the adjusted scores, on the chosen model's draws
        metrics += list_simulation_metrics(project.fairness, attrs, y, mitigated.adjusted_score,
                                           self.seed, top_pct=self.scoring().list_pct)
        if base.refit_of is not None:  # scores with a refit: trained on the validation rows too
            metrics.append(MetricValue(REFIT_OF, "", float(base.refit_of), None, None,
                                       len(self.trained_on(split))))
        decisions_at = OperatingPoint(threshold=0.5) if at.threshold is not None else at
        assessed = self.scoring().assessed(attrs, y, mitigated.adjusted_score, decisions_at)
        stored_audits = audits(assessed)
        if mitigated.fitting:  # the verdicts on the fitting rows, stored apart from the test's
            stored_audits.append(results.Audit(
                fitting_selection(at.label(), mitigated.fitted_on_validation), None,
                [j.result for j in mitigated.fitting]))
        model_id = results.record_model(
            engine,
            results.FittedModel(run_id, group_id, split.name, len(self.trained_on(split)),
                                len(split.test), (split.train_start, split.train_end),
                                (split.test_start, split.test_end), digest, stored_path(path),
                                seconds),
            entity_ids=self.entity[split.test],
            as_of=None if self.knowledge is None else self.knowledge[split.test],
            score=mitigated.adjusted_score, label=y, metrics=metrics, importances=[],
            audits=stored_audits)
        summary = ModelSummary(model_id, group_id, f"mitigated_{base.algorithm}", params,
                               split.name, by_key(metrics), seconds)
        note_assessment(summary, assessed)
        return summary


def search_trials(project: Project, features: Features, X: pd.DataFrame, y: np.ndarray,
                  split: SplitIndices, seed: int, say: Callable[[str], None]) -> list[GridPoint]:
    """The grid points of every ``models[i].search``, in order: each trial fitted on the
    selection split's training rows and scored by the selection metric on its validation rows
    (the test rows are never read; the project file refuses a split without validation, and
    this refuses one whose data holds no validation rows). The trials then go through the
    normal grid, which stores each as a model group."""
    searched = [(i, spec) for i, spec in enumerate(project.models) if spec.search is not None]
    if not searched:
        return []
    if split.validation is None or not len(split.validation):
        raise ValueError(f"models[{searched[0][0]}].search: split {split.name!r} has no "
                         "validation rows in the data, and trials are never scored on the "
                         "test rows")
    ev = project.evaluation
    metric = ev.selection.metric
    X_train, y_train = X.iloc[split.train], y[split.train]
    X_val, y_val = X.iloc[split.validation], y[split.validation]
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"splits: {split.name!r} training rows have only one label value; "
                         "cannot search")

    def score(point: GridPoint) -> float:
        from lightgbm.basic import LightGBMError

        pipeline, fit_params = build_pipeline(point, features, seed)
        try:
            pipeline.fit(X_train, y_train, **fit_params)
        except LightGBMError as exc:
            raise ValueError(str(exc)) from None
        metrics = evaluate_scores(y_val, pipeline.predict_proba(X_val)[:, 1],
                                  thresholds=ev.thresholds, top_k=ev.top_k, top_pct=ev.top_pct,
                                  bootstrap=0)
        value = metric_value(by_key(metrics), metric)
        if value is None:
            raise ValueError(f"evaluation.selection.metric: no metric {metric!r}")
        return value.value

    points: list[GridPoint] = []
    for i, spec in searched:
        assert spec.search is not None
        say(f"models[{i}]: searching {spec.algorithm} ({spec.search.trials} trials, scored on "
            f"split {split.name!r}'s validation rows)")
        points += search_points(spec, i, score, lower_is_better=lower_is_better(metric),
                                say=say)
    return points
