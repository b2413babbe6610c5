"""The experiment of a temporal list project: an early intervention system.

The steps follow DSaPP's EIS work, and every result goes to the results store:

1. load the event tables (the Chicago CPDB files, linked per officer, or a folder of event
   tables) and record a data snapshot of each;
2. features on every as-of date of every timechop split (cached in ``.rudi/cache``), labels;
3. the model grid on every split through the run engine: models, predictions, evaluations per
   list date, importances, and the fairness audit of each top-k list by officer attributes
   (race, gender, age band...) with the project's requirements evaluated per list date;
4. audition: every selection rule's regret over the splits; the rule with the lowest mean
   regret picks the model group, whose last-split model is marked selected;
5. list stability and the reasons behind the last list (:mod:`rudikit.run.lists`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress
from sqlalchemy.engine import Engine

from rudikit.config import (
    BASELINE,
    Execution,
    Fairness,
    Features,
    OperatingPoint,
    TemporalError,
    TemporalExperiment,
)
from rudikit.data.event_tables import attribute_columns, officer_attributes
from rudikit.evaluation.list_dates import evaluate_lists
from rudikit.evaluation.stability import check_forest
from rudikit.fairness.stage import ModelFairness, assess, check_fairness_columns
from rudikit.fairness.tradeoff import NO_GROUP_MEETS
from rudikit.models.ensemble import parameter_problems
from rudikit.models.estimators import GridPoint, check_grid, label_sample, make_encoder
from rudikit.models.search import search_points
from rudikit.models.temporal import (
    ENTITY,
    PreparedData,
    build_temporal_pipeline,
    consecutive_dates,
    ensemble_grid,
    experiment_grid,
    feature_digest,
    fit_and_score,
    native_importances,
    prepare,
    selection_rules,
    split_matrices,
)
from rudikit.run.engine import (
    Evaluated,
    GridEntry,
    ModelSummary,
    SplitRows,
    fit_grid,
)
from rudikit.run.ensembles import fit_temporal_ensembles
from rudikit.run.selection import fairness_gate, select_by_audition
from rudikit.store import results


def list_operating_point(fairness: Fairness, top_k: int) -> OperatingPoint:
    """Where a list is audited: the project's ``fairness.at`` when it names a list size, else
    the experiment's top k (a score threshold means nothing for a ranked list)."""
    at = fairness.at
    return at if at.threshold is None else OperatingPoint(top_k=top_k)


@dataclass
class TemporalResult:
    """What :func:`run_temporal` did. ``metrics``: one row per (model group, test as-of date)
    with precision in the top k and its interval; ``predictions``: every test score;
    ``matrices``: per split the keys and label windows of its train and test rows."""

    run_id: int
    experiment: TemporalExperiment
    groups: pd.DataFrame
    metrics: pd.DataFrame
    predictions: pd.DataFrame
    matrices: list[dict[str, Any]]
    data: PreparedData
    seconds: dict[str, float]
    models: list[ModelSummary] = dataclasses.field(default_factory=list)

    def precision_table(self) -> pd.DataFrame:
        """Model groups x test as-of dates of precision in the top k, with the mean; baselines
        first."""
        table = self.metrics.pivot_table(index="model_group_id", columns="as_of_date",
                                         values="value")
        table.columns = [f"{pd.Timestamp(c):%Y-%m-%d}" for c in table.columns]
        table["mean"] = table.mean(axis=1)
        info = self.groups.set_index("model_group_id")[["name", "algorithm", "baseline"]]
        out = info.join(table, how="inner")
        return out.sort_values(["baseline", "mean"], ascending=[False, False])

    def split_metrics(self) -> pd.DataFrame:
        """One value per (model group, split): the mean over the split's test as-of dates, in
        the long format :func:`rudikit.models.audition.audition` reads (period = split time).
        With one test date per split it is ``metrics`` itself."""
        return (self.metrics.groupby(["model_group_id", "split_time"], as_index=False)["value"]
                .mean())

    def scores(self, model_group_id: int, as_of_date: Any) -> pd.Series:
        """entity -> score of one group's list on one test as-of date."""
        p = self.predictions
        rows = p[(p["model_group_id"] == model_group_id)
                 & (p["as_of_date"] == pd.Timestamp(as_of_date))]
        return pd.Series(rows["score"].to_numpy(), index=rows["entity_id"].to_numpy())

    def group(self, model_group_id: int) -> dict[str, Any]:
        row = self.groups[self.groups["model_group_id"] == model_group_id].iloc[0]
        return row.to_dict()

    def grid_point(self, model_group_id: int) -> GridPoint:
        row = self.group(model_group_id)
        return GridPoint(row["algorithm"], json.loads(row["params"]))


@dataclass(frozen=True)
class ListScoring:
    """How a temporal project builds, evaluates and audits one fit (the engine's
    :class:`rudikit.run.engine.Scoring`): configuration only, so it travels to a worker
    without the event tables or the feature matrix."""

    experiment: TemporalExperiment
    fairness: Fairness
    features: Features  # what the models learn from (their native importances' names)

    def build(self, entry: GridEntry) -> tuple[Any, dict[str, Any]]:
        return build_temporal_pipeline(entry.point, entry.features, self.experiment.seed)

    def evaluate(self, rows: SplitRows, score: np.ndarray, on_validation: bool) -> Evaluated:
        label = self.experiment.label
        frame = pd.DataFrame({"as_of_date": rows.as_of, label: rows.y_test})
        return evaluate_lists(frame, label, score, self.experiment)

    def assess(self, rows: SplitRows, score: np.ndarray, on_validation: bool
               ) -> list[tuple[str, ModelFairness]]:
        """The audit of each test list (one per as-of date) at the list size."""
        fairness = self.fairness
        if rows.attrs is None or not (fairness.attributes or fairness.intersections
                                      or fairness.requirements):
            return []
        at = list_operating_point(fairness, self.experiment.top_k)
        out = []
        dates = pd.Series(rows.as_of)
        for when in sorted(dates.unique()):
            mask = (dates == when).to_numpy()
            out.append((f"{at.label()}@{pd.Timestamp(when):%Y-%m-%d}",
                        assess(fairness, rows.attrs.loc[mask], rows.y_test[mask], score[mask],
                               at)))
        return out

    def importances(self, pipeline: Any) -> list[results.Importance]:
        if not self.experiment.importances:
            return []
        return native_importances(pipeline, self.features)


@dataclass
class TemporalLists:
    """What a temporal project gives the run engine (:class:`rudikit.run.engine.Experiment`):
    one split per timechop split, its test rows the officers on each test as-of date."""

    experiment: TemporalExperiment
    tables: Mapping[str, pd.DataFrame]
    artefacts_dir: Path
    fairness: Fairness = dataclasses.field(default_factory=Fairness)
    cache_dir: Path | None = None
    data: PreparedData | None = None

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def label(self) -> str:
        return self.experiment.label

    @property
    def seed(self) -> int:
        return self.experiment.seed

    def prepare(self, say: Callable[[str], None]) -> None:
        """Features and labels (unless given), then the checks that must pass before any fit:
        the grid's parameters, the stability forest's, the fairness attributes."""
        config = self.experiment
        if self.data is None:
            extra = consecutive_dates(config.splits()[-1].split_time,
                                      config.stability.consecutive)
            self.data = prepare(config, self.tables, cache_dir=self.cache_dir,
                                extra_dates=extra)
            say(f"{len(self.data.splits)} splits, {len(self.data.features):,} officer-dates, "
                f"{len(self.data.feature_config.input_columns)} features (features "
                f"{self.data.seconds['features']:.0f} s, labels "
                f"{self.data.seconds['labels']:.0f} s)")
        data = self.data
        problems = check_fairness_columns(self.fairness,
                                          attribute_columns(self.tables["officers"]))
        if problems:
            raise TemporalError("; ".join(problems))
        features = data.feature_config
        self.entries = [GridEntry(point, name, data.features_for(point),
                                  baseline=point.algorithm == BASELINE)
                        for point, name in experiment_grid(config)]
        self.first = split_matrices(data, data.splits[0])
        y = self.first.train[self.first.label].to_numpy()
        try:
            check_grid([(e.point, e.name) for e in self.entries], features,
                       self.first.train[features.input_columns], y,
                       build=lambda point, _: build_temporal_pipeline(point,
                                                                      data.features_for(point)))
        except ValueError as exc:
            raise TemporalError(f"temporal.models: {exc}") from None
        self.entries += [GridEntry(point, name, data.features_for(point))
                         for point, name in self._search_trials(say)]
        self.ensembles = self._ensemble_points()
        forest = config.stability
        if forest.n_estimators:  # the curve is drawn last: a typo there must not waste the grid
            sample = label_sample(y)
            X = make_encoder(features).fit_transform(
                self.first.train.iloc[sample][features.input_columns])
            try:
                check_forest(forest.algorithm, forest.params, X, y[sample])
            except ValueError as exc:
                raise TemporalError(f"temporal.stability.params: {exc}") from None
        self.matrices_index: list[dict[str, Any]] = []
        self.rows: list[SplitRows] = []

    def _search_trials(self, say: Callable[[str], None]) -> list[tuple[GridPoint, str]]:
        """(grid point, name) of every ``temporal.models[i].search``'s trials: each fitted on
        every split but the last and scored by its mean precision in the top k over those
        splits' test lists (the mean the audition's best-average rule reads). Only the lists
        whose label windows end by the last split time are read (with test durations, a
        split's later lists are labelled by what happens after it), so nothing the last
        split tests on, nor any event after its start, is seen. The trials then go through
        the normal grid."""
        config, data = self.experiment, self.data
        assert data is not None
        searched = [(i, m) for i, m in enumerate(config.models) if m.search is not None]
        if not searched:
            return []
        where = f"temporal.models[{searched[0][0]}].search"
        if len(data.splits) < 2:
            raise TemporalError(f"{where}: needs at least two splits; trials are scored on the "
                                "splits before the last, whose test dates are never read")
        era_end = data.splits[-1].split_time
        audition = []
        for split in data.splits[:-1]:
            matrices = self.first if split is data.splits[0] else split_matrices(data, split)
            closed = (matrices.test["label_end"] <= era_end).to_numpy()
            if closed.any():
                audition.append(dataclasses.replace(
                    matrices, test=matrices.test[closed].reset_index(drop=True)))
        if not audition:
            raise TemporalError(f"{where}: no test list before the last split has a label "
                                f"window that ends by its split time ({era_end:%Y-%m-%d}); "
                                "trials could only be scored on what the last split tests")
        lists = sorted({pd.Timestamp(d) for m in audition for d in m.test["as_of_date"]})
        unbootstrapped = config.model_copy(update={"bootstrap": 0})

        def score(point: GridPoint) -> float:
            values = []
            for matrices in audition:
                try:
                    _, scores, _ = fit_and_score(point, data.features_for(point), matrices,
                                                 self.seed)
                except TemporalError as exc:
                    raise ValueError(str(exc)) from None
                _, per_date = evaluate_lists(matrices.test, matrices.label, scores,
                                             unbootstrapped)
                values.append(float(per_date["value"].mean()))
            return float(np.mean(values))

        out = []
        for i, spec in searched:
            assert spec.search is not None
            say(f"temporal.models[{i}]: searching {spec.algorithm} ({spec.search.trials} "
                f"trials, scored on {len(audition)} training-era split(s), test lists "
                + ", ".join(f"{d:%Y-%m-%d}" for d in lists) + ")")
            try:
                points = search_points(spec, i, score, say=say)
            except ValueError as exc:
                raise TemporalError(f"temporal.{exc}") from None
            out += [(p, f"{spec.name} trial {p.trial[1]}" if spec.name and p.trial
                     else p.describe()) for p in points]
        return out

    def _ensemble_points(self) -> list[tuple[GridPoint, str]]:
        """(grid point, name) of every ``temporal.models[i]`` ensemble, its parameters checked
        against the grid (members among the groups that are not baselines)."""
        candidates = sum(not e.baseline for e in self.entries)
        problems = [p for i, spec in enumerate(self.experiment.models)
                    if spec.algorithm == "ensemble"
                    for p in parameter_problems(spec.params, f"temporal.models[{i}]",
                                                candidates)]
        if problems:
            raise TemporalError("; ".join(problems))
        return ensemble_grid(self.experiment)

    def fit_ensembles(self, engine: Engine, run_id: int, fitted: list[ModelSummary],
                      say: Callable[[str], None]) -> list[tuple[str, ModelSummary]]:
        """(name, stored model) of each ensemble on each split with a training era: the
        earlier splits whose test labels were all known by its split time, where the audition
        ranks its members (:func:`rudikit.run.ensembles.fit_temporal_ensembles`)."""
        data = self.data
        assert data is not None
        splits = data.splits
        eras = {s.name: [e.name for e in splits if e.split_time < s.split_time
                         and max(t.matrix_info_end_time for t in e.tests) <= s.split_time]
                for s in splits}
        split_time = {s.name: s.split_time for s in splits}
        values = pd.DataFrame([
            {"model_group_id": m.model_group_id, "split": m.split,
             "split_time": split_time[m.split], "value": float(m.details["value"].mean())}
            for m in fitted if m.entry is not None and not m.entry.baseline])
        scoring = self.scoring()
        out = []
        for point, name in self.ensembles:
            for model in fit_temporal_ensembles(
                    engine, run_id, self.name, self.label, [point], self.rows, eras, fitted,
                    values, selection_rules(self.experiment), self.artefacts_dir,
                    group_features=self.group_features(self.entries[0]),
                    evaluate=scoring.evaluate, assess=scoring.assess, build=scoring.build,
                    seed=self.seed,
                    require_fairness=self.experiment.selection.require_fairness, say=say):
                out.append((name, model))
        self.rows = []  # held for the ensembles only
        return out

    def grid(self) -> list[GridEntry]:
        return self.entries

    def fits(self) -> int:
        assert self.data is not None
        return len(self.entries) * len(self.data.splits)

    def group_features(self, entry: GridEntry) -> dict[str, Any]:
        features = self.data.feature_config  # type: ignore[union-attr]
        return {**features.model_dump(mode="json", include={"categorical", "numeric"}),
                "digest": feature_digest(features)}

    def scoring(self) -> ListScoring:
        assert self.data is not None
        return ListScoring(self.experiment, self.fairness, self.data.feature_config)

    def input_columns(self) -> list[str]:
        """Every column some grid entry reads (a baseline may rank by an excluded
        feature)."""
        return list(dict.fromkeys(c for e in self.entries for c in e.features.input_columns))

    def split_rows(self) -> Any:
        data = self.data
        assert data is not None
        for split in data.splits:
            matrices = self.first if split is data.splits[0] else split_matrices(data, split)
            if matrices.test.empty:
                raise TemporalError(f"{split.name}: every test row is censored (the label "
                                    "window runs past the data's end)")
            index = matrices.index()
            self.matrices_index.append({
                "split": split.name, "split_time": split.split_time, "train": index["train"],
                "test": index["test"], "censored_train": matrices.censored_train,
                "censored_test": matrices.censored_test})
            test = matrices.test
            columns = self.input_columns()
            # copies, consolidated: a frame of one block per column pickles every column inline
            # with every task, while one float block is memory-mapped to the workers once
            rows = SplitRows(
                split.name, matrices.train[columns].copy(),
                matrices.train[matrices.label].to_numpy(), test[columns].copy(),
                test[matrices.label].to_numpy(),
                test[ENTITY].astype("string").to_numpy(), test["as_of_date"].to_numpy(),
                (split.train.first_as_of_time, split.train.last_as_of_time),
                (test["as_of_date"].min(), test["as_of_date"].max()),
                officer_attributes(self.tables["officers"], test[[ENTITY, "as_of_date"]],
                                   self.fairness.columns) if self.fairness.columns else None)
            if self.ensembles:  # they are fitted on the same rows after the grid
                self.rows.append(rows)
            yield rows

    def select(self, models: list[ModelSummary], result: TemporalResult
               ) -> tuple[ModelSummary, str]:
        """The audition's choice; with ``temporal.selection.require_fairness`` only among the
        groups that meet every requirement on the audition splits' lists
        (:func:`rudikit.run.selection.fairness_gate`), never reading the last split's.
        Ensembles are compared in the report but not chosen: the list-stability step and
        retraining refit the chosen group, and an ensemble's members change per split."""
        names = dict(zip(result.groups["model_group_id"], result.groups["name"], strict=True))
        last = self.data.splits[-1].name  # type: ignore[union-attr]
        values = result.split_metrics()
        ensembles = result.groups.loc[result.groups["algorithm"] == "ensemble", "model_group_id"]
        values = values[~values["model_group_id"].isin(ensembles)]
        gate = ""
        if self.experiment.selection.require_fairness:
            passing, gate = fairness_gate(models, last)
            if passing:
                values = values[values["model_group_id"].isin(passing)]
        _, chosen, reason = select_by_audition(values, selection_rules(self.experiment),
                                               names, self.experiment.top_k)
        if gate:
            reason = (f"{gate}: {reason}" if gate.startswith(NO_GROUP_MEETS)
                      else f"{reason}, {gate}")
        return next(m for m in models if m.model_group_id == chosen and m.split == last), reason


def fit_lists(lists: TemporalLists, engine: Engine, run_id: int,
              progress: Progress | Callable[[str], None] | None = None,
              execution: Execution | None = None, meanwhile: Callable[[], None] | None = None
              ) -> TemporalResult:
    """The grid over the splits through the run engine (fits computed where ``execution``
    says; ``meanwhile`` as :func:`rudikit.run.engine.fit_grid` takes it), as a
    :class:`TemporalResult`."""
    started = time.perf_counter()
    grid, group_ids, fitted = fit_grid(lists, engine, run_id, progress, execution, meanwhile)
    ensembles = lists.fit_ensembles(engine, run_id, fitted, progress if callable(progress)
                                    and not isinstance(progress, Progress) else lambda _: None)
    fitted += [m for _, m in ensembles]
    data = lists.data
    assert data is not None
    named = [(gid, e.name, e.point, e.baseline) for e, gid in zip(grid, group_ids, strict=True)]
    named += list({m.model_group_id: (m.model_group_id, name, m.entry.point, False)  # type: ignore[union-attr]
                   for name, m in ensembles}.values())
    groups = pd.DataFrame([{"model_group_id": gid, "name": name, "algorithm": point.algorithm,
                            "params": json.dumps(point.params, sort_keys=True, default=str),
                            "baseline": baseline} for gid, name, point, baseline in named])
    splits = {s.name: s for s in data.splits}
    metric_rows, prediction_parts = [], []
    by_split = {m["split"]: m for m in lists.matrices_index}
    for m in fitted:
        split = splits[m.split]
        test = by_split[m.split]["test"]
        entry = m.entry
        assert entry is not None and m.score is not None
        per_date = m.details.assign(
            model_group_id=m.model_group_id, name=entry.name, algorithm=entry.point.algorithm,
            baseline=entry.baseline, model_id=m.model_id, split=split.name,
            split_time=split.split_time, train_rows=len(by_split[m.split]["train"]),
            train_seconds=m.train_seconds)
        metric_rows += per_date.to_dict("records")
        prediction_parts.append(pd.DataFrame({
            "model_group_id": m.model_group_id, "model_id": m.model_id, "split": split.name,
            "as_of_date": test["as_of_date"].to_numpy(),
            "entity_id": test[ENTITY].astype("string").to_numpy(), "score": m.score,
            "label": test[data.label_name].to_numpy()}))
    order = ["model_group_id", "name", "algorithm", "baseline", "split", "split_time",
             "as_of_date", "model_id", "value", "lower", "upper", "n", "positives", "roc_auc",
             "train_rows", "train_seconds"]
    seconds = {**data.seconds, "fitting": sum(m.train_seconds for m in fitted),
               "total": time.perf_counter() - started}
    return TemporalResult(run_id, lists.experiment, groups, pd.DataFrame(metric_rows)[order],
                          pd.concat(prediction_parts, ignore_index=True), lists.matrices_index,
                          data, seconds, fitted)


def run_temporal(config: TemporalExperiment, tables: Mapping[str, pd.DataFrame], *,
                 engine: Engine, run_id: int, artefacts_dir: str | Path,
                 progress: Progress | Callable[[str], None] | None = None,
                 cache_dir: str | Path | None = None, data: PreparedData | None = None,
                 fairness: Fairness | None = None, execution: Execution | None = None
                 ) -> TemporalResult:
    """Fit every model group on every split, store each fit, return precision in the top k
    per (model group, test as-of date). ``data`` reuses features and labels from
    :func:`rudikit.models.temporal.prepare` (else they are built here, cached in
    ``cache_dir``); ``fairness`` audits each list by officer attributes; ``execution`` says
    where the fits run (default: here, one after another)."""
    lists = TemporalLists(config, tables, Path(artefacts_dir), fairness or Fairness(),
                          None if cache_dir is None else Path(cache_dir), data)
    lists.prepare(progress if callable(progress) and not isinstance(progress, Progress)
                  else lambda _: None)
    return fit_lists(lists, engine, run_id, progress, execution)
