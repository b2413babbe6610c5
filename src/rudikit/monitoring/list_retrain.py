"""`rudi retrain` for a temporal list project: champion and challenger judged on the newest
list whose outcomes are known.

The newest *matured* list date ``L`` is the newest production list date (``rudi score``) whose
label window ``[L, L + test label timespan)`` has closed by ``--as-of`` (default: today) and by
the newest record of the label's source (a window past it would be censored); without one, the
newest timechop test date that has. Dates before the live model's first test date are never
used: it learnt from outcomes up to then.

* **Challenger**: the deployed group (algorithm, hyperparameters, features) refitted, as
  timechop would refit it at split time ``L``: training as-of dates walking back from
  ``L - training label timespan`` by the training frequency over the maximum training history
  (of the timechop split the live model came from, else the project's last split), so every
  training label window ends by ``L`` (:func:`rudikit.models.temporal.split_matrices` refuses
  otherwise). It is recorded as a run of its own through the run engine: the model, its list on
  ``L`` as predictions, precision in the top k with its interval and ROC AUC (as
  :func:`rudikit.evaluation.list_dates.evaluate_lists` judges development lists) and the fairness
  assessment of its list.
* **Champion**: the live model's list on ``L``, the stored production list when the live model
  made it (else scored now from the same features), judged on the same officers the same way.
* **Decision** (:func:`rudikit.monitoring.retrain.decide`, shared with case projects): promote
  only if the challenger's precision in the top k is at most ``monitoring.retraining.max_drop``
  below the champion's and it meets every fairness requirement. ``retraining.metric`` and
  ``min_outcomes`` are for case projects: a list is judged by its precision in the top k.
* **What goes live**: the challenger shows the recipe works; the model promoted is the same
  recipe refitted on the newest matured as-of dates (label windows ending by the as-of date),
  a year of outcomes newer than the challenger when labels span a year. Its predictions are
  its list on that date, with unknown labels and no evaluations (no outcome is known yet);
  lists before that date are refused by ``rudi score``, since it learnt from them.

The decision, either way, goes to the append-only audit log (``retrain_promoted`` /
``retrain_rejected``, as for case projects) with the figures behind it; ``rudi rollback``
returns to the previous deployment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import BASELINE, Features, TemporalProject
from rudikit.config.timechop import Matrix, Split, TimechopError, parse_interval, train_matrix
from rudikit.data.event_tables import ENTITY, load_event_tables, officer_attributes
from rudikit.data.sources import LoadedSource
from rudikit.evaluation.list_dates import evaluate_lists
from rudikit.evaluation.stability import rank_correlation, top_k_jaccard
from rudikit.fairness.stage import ModelFairness, assess
from rudikit.models.estimators import GridPoint
from rudikit.models.temporal import (
    PreparedData,
    build_temporal_pipeline,
    label_spec,
    native_importances,
    prepare,
    split_matrices,
)
from rudikit.monitoring.retrain import Contender, RetrainError, decide, refuse_ensemble
from rudikit.monitoring.scheduled_lists import ListModel, ScoreError, list_model
from rudikit.run.engine import (
    Evaluated,
    GridEntry,
    SplitRows,
    data_origin,
    fit_score_record,
    record_snapshots,
)
from rudikit.run.temporal import list_operating_point
from rudikit.service import audit
from rudikit.service.deploy import deploy
from rudikit.store import results
from rudikit.store.queries import lists as lists_q
from rudikit.store.queries import production as production_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.results import plain


@dataclass
class ListRetrainDecision:
    promoted: bool
    reason: str
    metric: str  # "precision@<k>"
    champion: Contender  # metrics: precision_at_k, lower, upper, roc_auc
    challenger: Contender
    list_date: pd.Timestamp  # L
    list_source: str  # "production list <id>" or "scored now"
    as_of: pd.Timestamp
    matured_by: pd.Timestamp  # min(as_of, the label source's newest record + 1 day)
    officers: int  # labelled officers on L (both lists judged on them)
    positives: int
    training_dates: list[pd.Timestamp]  # the challenger's
    training_rows: int
    run_id: int
    top_k: int
    jaccard: float
    spearman: float
    refit_model_id: int | None = None  # what went live, when promoted
    refit_dates: list[pd.Timestamp] | None = None
    deployment_id: int | None = None


def _day(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert(None) if stamp.tzinfo else stamp).normalize()


def _after(day: pd.Timestamp, span: str) -> pd.Timestamp:
    return pd.Timestamp(day.to_pydatetime() + parse_interval(span))


def recipe_split(project: TemporalProject, split_name: str) -> Split:
    """The timechop split whose training settings a refit reuses: the one the live model was
    fitted on, else (a retrained model) the project's last split."""
    splits = project.temporal.splits()
    return next((s for s in splits if s.name == split_name), splits[-1])


def label_data_end(tables: dict[str, pd.DataFrame], project: TemporalProject) -> pd.Timestamp:
    """The newest record of the label's source: a label window past it is censored."""
    spec = label_spec(project.temporal)
    if spec.table not in tables or tables[spec.table].empty:
        raise RetrainError(f"data.sources[0]: the label {spec.name!r} reads table {spec.table!r}, "
                           "which the sources do not have (or is empty)")
    return _day(pd.to_datetime(tables[spec.table][spec.date_column]).max())


def matured_list(engine: Engine, project: TemporalProject, model: ListModel, span: str,
                 horizon: pd.Timestamp, why: str) -> tuple[pd.Timestamp, int | None, str]:
    """(L, the live model's stored production list on L or None, where L came from): the
    newest list date from the model's first test date on whose ``span`` window closed by
    ``horizon``; production lists first, else the timechop's test dates. ``why`` says what
    set the horizon, for the error."""
    first = model.first_test_date
    headers = lists_q.production_list_headers(engine, project.name)
    produced = [] if headers.empty else sorted(
        (_day(r.as_of_date), int(r.id), int(r.model_id)) for r in headers.itertuples())
    usable = [p for p in produced if p[0] >= first and _after(p[0], span) <= horizon]
    if usable:
        day, list_id, model_id = usable[-1]
        own = list_id if model_id == model.loaded.model_id else None
        return day, own, f"production list {list_id}" + ("" if own else
                                                         " (scored now with the live model)")
    tested = sorted({d for s in project.temporal.splits() for m in s.tests
                     for d in m.as_of_dates})
    usable_dates = [d for d in tested if d >= first and _after(d, span) <= horizon]
    if usable_dates:
        return usable_dates[-1], None, "timechop test date (no production list has matured)"
    newest = [p[0] for p in produced if p[0] >= first]
    seen = (f"the newest production list ({newest[-1]:%Y-%m-%d}) matures on "
            f"{_after(newest[-1], span):%Y-%m-%d}" if newest
            else f"no production list dated {first:%Y-%m-%d} or later yet (`rudi score`)")
    raise RetrainError(
        f"no matured list to judge champion and challenger on: a list is judged once its "
        f"{span} label window has closed, by {horizon:%Y-%m-%d} ({why}); {seen}; lists before "
        f"{first:%Y-%m-%d}, where the live model (model {model.loaded.model_id}) was first "
        "tested, do not count")


def _retrain_split(project: TemporalProject, recipe: Split, when: pd.Timestamp) -> Split:
    """A split at ``when`` with the recipe's training settings and ``when`` as its one test
    date."""
    train = recipe.train
    try:
        matrix = train_matrix(project.temporal.timechop, when, train.label_timespan,
                              train.as_of_date_frequency, train.max_training_history or "0day")
    except TimechopError as exc:
        raise RetrainError(f"temporal.timechop: {exc}") from None
    test = recipe.test
    return Split(recipe.index, when, matrix, (Matrix((when,), test.label_timespan,
                                                     test.as_of_date_frequency,
                                                     _after(when, test.label_timespan),
                                                     test_duration="0day"),))


def _group_entry(engine: Engine, model: ListModel, data: PreparedData) -> GridEntry:
    with engine.connect() as conn:
        group = dict(runs_q.model_group(conn, model.loaded.model_group_id))
    point = GridPoint(group["algorithm"], dict(group["hyperparameters"]))
    stored = group["features"] or {}
    features = data.features_for(point) if point.algorithm == BASELINE else Features(
        categorical=list(stored.get("categorical", [])), numeric=list(stored.get("numeric", [])))
    missing = [c for c in features.input_columns if c not in data.features.columns]
    if missing:
        raise RetrainError(f"model group {model.loaded.model_group_id} reads "
                           f"{', '.join(missing[:5])}, which the as-of features of these "
                           "sources do not have")
    return GridEntry(point, point.describe(), features, baseline=point.algorithm == BASELINE)


def _contender(model_id: int, metric: str, evaluated: list[Any], judged: ModelFairness | None,
               required: bool) -> Contender:
    by = {(m.metric, m.parameter): m for m in evaluated}
    p = by[("precision_at_k", metric.removeprefix("precision@") + "_abs")]
    roc = by.get(("roc_auc", ""))
    values = {"precision_at_k": p.value, "lower": p.lower, "upper": p.upper,
              "roc_auc": roc.value if roc else float("nan")}
    if not required or judged is None:
        return Contender(model_id, float(p.value), values, None)
    reqs = [f"{r.requirement.name}: {r.summary}" for r in judged.requirements]
    failed = [f"{r.requirement.name}: {r.summary}" for r in judged.requirements if not r.passed]
    return Contender(model_id, float(p.value), values, judged.passed, reqs, failed,
                     [r.status for r in judged.requirements])


def retrain_lists(project: TemporalProject, project_dir: Path, engine: Engine, *, by: str,
                  as_of: datetime | None = None, now: Callable[[], datetime] = audit.now,
                  tables: dict[str, pd.DataFrame] | None = None,
                  loaded: list[LoadedSource] | None = None,
                  say: Callable[[str], None] | None = None) -> ListRetrainDecision:
    """Fit a challenger, judge it and the champion on the newest matured list, promote (a
    refit on the newest matured dates) or not; audit-logged. ``now`` is the clock ``as_of``
    defaults to; ``tables``/``loaded`` reuse event tables already loaded."""
    say = say or (lambda _: None)
    config, policy = project.temporal, project.monitoring.retraining
    with engine.connect() as conn:
        live = production_q.live_deployment(conn)
    if live is None:
        raise RetrainError("nothing is deployed: retraining refits the live model group; "
                           "deploy one first (`rudi deploy`)")
    try:
        model = list_model(engine, project, project_dir)
    except ScoreError as exc:
        raise RetrainError(str(exc)) from None
    refuse_ensemble(model.loaded.algorithm, model.loaded.model_group_id)
    with engine.connect() as conn:
        champion_row = runs_q.model(conn, model.loaded.model_id)
    recipe = recipe_split(project, champion_row["split"])
    span = recipe.test.label_timespan
    if tables is None or loaded is None:
        say("loading the event tables")
        tables, loaded = load_event_tables(project, project_dir)
    today = _day(as_of if as_of is not None else now())
    data_end = label_data_end(tables, project)
    horizon = min(today, data_end + pd.Timedelta(days=1))
    why = (f"--as-of {today:%Y-%m-%d}" if horizon == today else
           f"the newest {label_spec(config).table} record is {data_end:%Y-%m-%d}")
    list_date, list_id, source = matured_list(engine, project, model, span, horizon, why)
    challenger_split = _retrain_split(project, recipe, list_date)
    refit_split = _retrain_split(project, recipe, horizon)
    say(f"features and labels for the list of {list_date:%Y-%m-%d} and its training dates")
    cache = project_dir / ".rudi" / "cache"
    data = prepare(config, tables, cache_dir=cache, splits=[challenger_split])
    matrices = split_matrices(data, challenger_split)  # refuses a window reaching past L
    test = matrices.test.reset_index(drop=True)
    y_test = test[matrices.label].to_numpy()
    if not len(test) or not y_test.sum():
        raise RetrainError(f"the list of {list_date:%Y-%m-%d} has {len(test)} labelled officers "
                           f"and {int(y_test.sum())} positives; it cannot rank models")
    entry = _group_entry(engine, model, data)
    missing = [c for c in model.columns if c not in test.columns]
    if missing:
        raise RetrainError(f"deployment {model.loaded.deployment_id} reads {', '.join(missing)}"
                           ", which the as-of features of these sources do not have")
    ids = test[ENTITY].astype("string").to_numpy()
    champion_score = _champion_scores(engine, model, test, ids, list_id)

    k = project.production.top_k or config.top_k
    experiment = config.model_copy(update={"top_k": k})
    metric = f"precision@{k}"
    fairness = project.fairness
    at = list_operating_point(fairness, k)
    attrs = officer_attributes(tables["officers"], test[[ENTITY, "as_of_date"]],
                               fairness.columns) if fairness.columns else None
    audited = attrs is not None and bool(fairness.attributes or fairness.intersections
                                         or fairness.requirements)

    def judge(score: np.ndarray) -> ModelFairness | None:
        return assess(fairness, attrs, y_test, score, at) if audited else None

    def evaluate(rows: SplitRows, score: np.ndarray, _: bool) -> Evaluated:
        frame = pd.DataFrame({"as_of_date": rows.as_of, config.label: rows.y_test})
        return evaluate_lists(frame, config.label, score, experiment)

    judged: dict[str, ModelFairness | None] = {}

    def assess_list(rows: SplitRows, score: np.ndarray, _: bool
                    ) -> list[tuple[str, ModelFairness]]:
        judged["challenger"] = judge(score)
        found = judged["challenger"]
        return [] if found is None else [(f"{at.label()}@{list_date:%Y-%m-%d}", found)]

    columns = entry.features.input_columns
    train = matrices.train
    training_dates = sorted(pd.Timestamp(d) for d in train["as_of_date"].unique())
    seed = config.seed
    artefacts = project_dir / ".rudi" / "models"
    required = bool(fairness.requirements)
    settings = {"deployment_id": model.loaded.deployment_id,
                "champion_model_id": model.loaded.model_id, "as_of": f"{today:%Y-%m-%d}",
                "list_date": f"{list_date:%Y-%m-%d}", "list_source": source,
                "matured_by": f"{horizon:%Y-%m-%d}", "recipe_split": recipe.name,
                "training_label_timespan": recipe.train.label_timespan,
                "training_frequency": recipe.train.as_of_date_frequency,
                "max_training_history": recipe.train.max_training_history,
                "test_label_timespan": span, "top_k": k, "max_drop": policy.max_drop}
    with results.run(engine, project.name, project.config_hash(), {"retrain": settings}, seed,
                     data_origin(loaded)) as run:
        record_snapshots(engine, run.id, loaded, profile=False)  # no data card
        say(f"fitting the challenger on {len(train):,} officer-dates")
        rows = SplitRows(f"retrain_{list_date:%Y-%m-%d}", train[columns],
                         train[matrices.label].to_numpy(), test[columns], y_test, ids,
                         test["as_of_date"].to_numpy(), (training_dates[0], training_dates[-1]),
                         (list_date, list_date), attrs)
        fitted = fit_score_record(
            engine, run.id, model.loaded.model_group_id, entry, rows,
            build=lambda e: build_temporal_pipeline(e.point, e.features, seed),
            evaluate=evaluate, assess=assess_list,
            importances=(lambda p: native_importances(p, entry.features))
            if config.importances else None, artefacts_dir=artefacts)
        assert fitted.score is not None
        champion_metrics, _ = evaluate(rows, champion_score, False)
        champion = _contender(model.loaded.model_id, metric, champion_metrics,
                              judge(champion_score), required)
        challenger = _contender(fitted.model_id, metric, list(fitted.metrics.values()),
                                judged.get("challenger"), required)
        promoted, reason = decide(metric, policy.max_drop, champion, challenger,
                                  f"the list of {list_date:%Y-%m-%d}")
        champ_list = pd.Series(champion_score, index=ids)
        chall_list = pd.Series(fitted.score, index=ids)
        decision = ListRetrainDecision(
            promoted, reason, metric, champion, challenger, list_date, source, today, horizon,
            len(test), int(y_test.sum()), training_dates, len(train), run.id, k,
            top_k_jaccard(champ_list, chall_list, k), rank_correlation(champ_list, chall_list))
        if promoted:
            say("refitting on the newest matured as-of dates")
            refit_data = prepare(config, tables, cache_dir=cache, splits=[refit_split])
            _promote(engine, refit_data, refit_split, entry, model, decision, by=by, seed=seed,
                     artefacts=artefacts, project_dir=project_dir)
        with engine.begin() as conn:
            audit.record(conn, by, "retrain_promoted" if promoted else "retrain_rejected",
                         f"model group {model.loaded.model_group_id}", _details(decision, model))
    return decision


def _champion_scores(engine: Engine, model: ListModel, test: pd.DataFrame, ids: np.ndarray,
                     list_id: int | None) -> np.ndarray:
    """The live model's scores of the officers on L: its stored production list, officers it
    did not list (the sources changed since) scored now, or all scored now without a list."""
    pipeline = model.loaded.pipeline
    if list_id is None:
        return pipeline.predict_proba(test[model.columns])[:, 1]
    entries = lists_q.production_list_entries(engine, [list_id])
    stored = pd.Series(entries["score"].to_numpy(dtype=float),
                       index=entries["entity_id"].astype(str).to_numpy())
    score = stored.reindex(ids.astype(str)).to_numpy()
    absent = np.isnan(score)
    if absent.any():
        score[absent] = pipeline.predict_proba(test.loc[absent, model.columns])[:, 1]
    return score


def _promote(engine: Engine, data: PreparedData, split: Split, entry: GridEntry, model: ListModel,
             decision: ListRetrainDecision, *, by: str, seed: int, artefacts: Path,
             project_dir: Path) -> None:
    """Fit the recipe on the newest matured as-of dates, store it with its list of the
    horizon date (labels unknown, no evaluations) and deploy it."""
    matrices = split_matrices(data, split)
    train = matrices.train
    when = split.split_time
    today = data.features[data.features["as_of_date"] == when].reset_index(drop=True)
    columns = entry.features.input_columns
    dates = sorted(pd.Timestamp(d) for d in train["as_of_date"].unique())
    rows = SplitRows(f"retrain_refit_{when:%Y-%m-%d}", train[columns],
                     train[matrices.label].to_numpy(), today[columns],
                     np.full(len(today), np.nan), today[ENTITY].astype("string").to_numpy(),
                     today["as_of_date"].to_numpy(), (dates[0], dates[-1]), (when, when))
    refit = fit_score_record(
        engine, decision.run_id, model.loaded.model_group_id, entry, rows,
        build=lambda e: build_temporal_pipeline(e.point, e.features, seed),
        evaluate=lambda *_: ([], None), artefacts_dir=artefacts)
    decision.refit_model_id, decision.refit_dates = refit.model_id, dates
    decision.deployment_id = deploy(
        engine, model.loaded.model_group_id, model_id=refit.model_id,
        threshold=model.loaded.threshold, by=by, project_dir=project_dir,
        reason=(f"retrain (run {decision.run_id}): {decision.reason}; the recipe refitted on "
                f"as-of dates {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d} (label windows "
                f"ending by {when:%Y-%m-%d})")).id


def _details(d: ListRetrainDecision, model: ListModel) -> dict[str, Any]:
    """The audit-log row of a decision (the keys the monitoring report reads, then the list's)."""
    def side(c: Contender) -> dict[str, Any]:
        return {k: plain(v) for k, v in c.metrics.items()}

    def days(values: list[pd.Timestamp] | None) -> list[str] | None:
        return None if values is None else [f"{v:%Y-%m-%d}" for v in values]

    return {"run_id": d.run_id, "reason": d.reason, "metric": d.metric,
            "deployment_id": model.loaded.deployment_id,
            "champion_model_id": d.champion.model_id, "challenger_model_id": d.challenger.model_id,
            "champion": plain(d.champion.metric), "challenger": plain(d.challenger.metric),
            "champion_metrics": side(d.champion), "challenger_metrics": side(d.challenger),
            "champion_fairness": d.champion.requirements,
            "challenger_fairness": d.challenger.requirements,
            "challenger_not_met": d.challenger.failed,
            "list_date": f"{d.list_date:%Y-%m-%d}", "list_source": d.list_source,
            "as_of": f"{d.as_of:%Y-%m-%d}", "matured_by": f"{d.matured_by:%Y-%m-%d}",
            "holdout_rows": d.officers, "positives": d.positives,
            "training_dates": days(d.training_dates), "training_rows": d.training_rows,
            "top_k": d.top_k, "top_k_jaccard": plain(d.jaccard), "spearman": plain(d.spearman),
            "refit_model_id": d.refit_model_id, "refit_dates": days(d.refit_dates),
            "new_deployment_id": d.deployment_id}
