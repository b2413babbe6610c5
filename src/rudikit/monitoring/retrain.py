"""`rudi retrain`, `rudi rollback` and the model-age backtest.

Retraining refits the deployed model group (same algorithm, hyperparameters and features) on
the project's data plus the production cases whose outcomes came back, holding out the newest
``holdout_days`` of production outcomes. Champion (the live model) and challenger are scored on
that same holdout; the challenger is promoted only if its metric is no more than ``max_drop``
below the champion's and it meets every fairness requirement. The decision, either way, goes to
the append-only audit log with the figures behind it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy.engine import Engine

from rudikit.config import Features, OperatingPoint, Project
from rudikit.evaluation.metrics import MetricValue, evaluate_scores
from rudikit.evaluation.stability import rank_correlation, top_k_jaccard
from rudikit.fairness.stage import assess
from rudikit.features.labels import make_label
from rudikit.models.artefacts import load_artefact
from rudikit.models.estimators import GridPoint, build_pipeline
from rudikit.monitoring.monitor import MonitorError, deployed, store_reference
from rudikit.monitoring.production import read_predictions
from rudikit.run.engine import Evaluated, GridEntry, SplitRows, fit_score_record
from rudikit.service import audit
from rudikit.service.deploy import deploy
from rudikit.store import results
from rudikit.store.queries import production as production_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.results import plain


class RetrainError(MonitorError):
    """Retraining cannot proceed (nothing deployed, too few outcomes...)."""


@dataclass
class Contender:
    """One side of the comparison on the holdout."""

    model_id: int
    metric: float
    metrics: dict[str, float]
    fairness_passed: bool | None
    requirements: list[str] = field(default_factory=list)  # "name: summary" per requirement
    failed: list[str] = field(default_factory=list)  # the requirements not met
    statuses: list[str] = field(default_factory=list)  # each requirement's verdict

    def fairness_label(self) -> str:
        """'met', 'n/a', or the count of each verdict that is not 'met' ("1 not met,
        2 inconclusive"): an inconclusive requirement is not a failing one."""
        if self.fairness_passed is None:
            return "n/a"
        if self.fairness_passed:
            return "met"
        counts = Counter(s for s in self.statuses if s != "met")
        return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "not met"


@dataclass
class RetrainDecision:
    promoted: bool
    reason: str
    metric: str
    champion: Contender
    challenger: Contender
    holdout: tuple[datetime, datetime]
    holdout_rows: int
    training_rows: int
    production_training_rows: int
    deployment_id: int | None  # the new deployment when promoted
    run_id: int
    # how far the two trainings of the group agree on the holdout's top k (list stability)
    top_k: int = 0
    jaccard: float = float("nan")
    spearman: float = float("nan")


def production_outcomes(engine: Engine, project: Project) -> pd.DataFrame:
    """Every production case (of any deployment) with a known outcome, as a frame of its
    inputs, ``outcome``, ``score`` (of the model that served it) and ``event_time``."""
    with engine.connect() as conn:
        model_ids = production_q.deployed_model_ids(conn)
    chunks = []
    for chunk in read_predictions(engine, model_ids, time_field=project.data.knowledge_date):
        labelled = chunk.filter(chunk.column("outcome").is_valid())
        if labelled.num_rows:
            chunks.append(labelled)
    if not chunks:
        return pd.DataFrame()
    table = pa.concat_tables(chunks, promote_options="permissive")
    return table.to_pandas()


def _like(frame: pd.DataFrame, production: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Production inputs with the training frame's column types (the JSON kept them as text,
    numbers and booleans)."""
    out = pd.DataFrame(index=production.index)
    for c in columns:
        values = production[c] if c in production else pd.Series(pd.NA, index=production.index)
        kind = frame[c].dtype
        if isinstance(kind, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(kind):
            values = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
            if not isinstance(kind, pd.DatetimeTZDtype):
                values = values.dt.tz_convert(None)
        elif pd.api.types.is_bool_dtype(kind):
            values = values.astype("boolean")
        elif pd.api.types.is_numeric_dtype(kind):
            values = pd.to_numeric(values, errors="coerce")
        out[c] = values.astype(kind) if not pd.api.types.is_datetime64_any_dtype(kind) \
            else values
    return out


def _contender(project: Project, model_id: int, metric: str, threshold: float,
               y: np.ndarray, score: np.ndarray, attrs: pd.DataFrame) -> Contender:
    values = {m.metric: m.value for m in evaluate_scores(y, score, thresholds=[threshold],
                                                         bootstrap=0)}
    passed, reqs, failed = None, [], []
    if project.fairness.requirements:
        assessed = assess(project.fairness, attrs, y, score, OperatingPoint(threshold=threshold))
        passed = assessed.passed
        reqs = [f"{r.requirement.name}: {r.summary}" for r in assessed.requirements]
        failed = [f"{r.requirement.name}: {r.summary}" for r in assessed.requirements
                  if not r.passed]
    return Contender(model_id, float(values.get(metric, float("nan"))),
                     {k: float(v) for k, v in values.items()}, passed, reqs, failed,
                     [r.status for r in assessed.requirements]
                     if project.fairness.requirements else [])


def refuse_ensemble(algorithm: str, model_group_id: int) -> None:
    """Retraining refits the live group's one pipeline; an ensemble's members are chosen per
    split among a whole grid, so a refit of it is a new development run, said so."""
    if algorithm == "ensemble":
        raise RetrainError(f"model group {model_group_id} is an ensemble: retraining refits one "
                           "model group, and an ensemble's members are chosen among the whole "
                           "grid; run `rudi run` to rebuild it on newer data, then deploy the "
                           "new model")


def deployed_group(engine: Engine, model_group_id: int) -> tuple[GridPoint, Features,
                                                                  dict[str, Any]]:
    """The grid point and features a model group was fitted with (to refit it), and its row."""
    with engine.connect() as conn:
        group = dict(runs_q.model_group(conn, model_group_id))
    return (GridPoint(group["algorithm"], dict(group["hyperparameters"])),
            Features.model_validate(group["features"]), group)


def retrain(project: Project, project_dir: Path, engine: Engine, *, by: str,
            as_of: datetime | None = None) -> RetrainDecision:
    """Fit a challenger, compare it with the champion on the newest outcomes, promote or not."""
    from rudikit.data.sources import unify

    policy = project.monitoring.retraining
    dep = deployed(engine)
    if dep is None:
        raise RetrainError("nothing is deployed: retraining refits the live model group; "
                           "deploy one first (`rudi deploy`)")
    production = production_outcomes(engine, project)
    if len(production) < policy.min_outcomes:
        raise RetrainError(f"only {len(production)} production outcomes are known; "
                           f"monitoring.retraining.min_outcomes is {policy.min_outcomes}")
    as_of = (as_of or production["event_time"].max().to_pydatetime()).astimezone(UTC)
    holdout_start = as_of - timedelta(days=policy.holdout_days)
    event = pd.to_datetime(production["event_time"], utc=True)
    in_holdout = ((event > holdout_start) & (event <= as_of)).to_numpy()
    holdout = production.loc[in_holdout].reset_index(drop=True)
    if holdout["outcome"].nunique() < 2:
        raise RetrainError(f"the holdout ({policy.holdout_days} days to {as_of:%Y-%m-%d}) has "
                           f"{len(holdout)} outcomes of one class only; it cannot rank models")
    earlier = production.loc[~in_holdout & (event <= as_of).to_numpy()]

    frame, _ = unify(project, project_dir)
    point, features, _ = deployed_group(engine, dep.model_group_id)
    refuse_ensemble(point.algorithm, dep.model_group_id)
    with engine.connect() as conn:
        champion_row = runs_q.model(conn, dep.model_id)
    columns = features.input_columns + [c for c in point.columns_needed()
                                        if c not in features.input_columns]
    y_all, keep = make_label(frame, project.label)
    data = frame.loc[keep].reset_index(drop=True)
    y_data = y_all[keep]
    # the project's own rows before the holdout and not already among the production cases
    when = pd.to_datetime(data[project.data.knowledge_date], utc=True)
    seen = set(production["observation_id"].astype(str))
    ids = data[project.data.entity_id].astype(str)
    own = ((when <= holdout_start) & ~ids.isin(seen)).to_numpy()
    X_train = pd.concat([data.loc[own, columns], _like(data, earlier, columns)],
                        ignore_index=True)
    y_train = np.concatenate([y_data[own], earlier["outcome"].to_numpy(dtype=int)])
    X_hold = _like(data, holdout, columns)
    y_hold = holdout["outcome"].to_numpy(dtype=int)

    seed = project.evaluation.seed
    ev = project.evaluation

    def evaluate(rows: SplitRows, score: np.ndarray, _: bool) -> Evaluated:
        return evaluate_scores(rows.y_test, score, thresholds=sorted({*ev.thresholds,
                                                                       dep.threshold}),
                               top_k=ev.top_k, top_pct=ev.top_pct, bootstrap=ev.bootstrap,
                               confidence=ev.confidence, seed=seed), None

    with results.run(engine, project.name, project.config_hash(),
                     {"retrain": {"deployment_id": dep.deployment_id,
                                  "holdout_days": policy.holdout_days,
                                  "as_of": as_of.isoformat()}}, seed, "real") as run:
        run_id = run.id
        rows = SplitRows("retrain_holdout", X_train, y_train, X_hold, y_hold,
                         holdout["observation_id"].astype(str).to_numpy(),
                         pd.to_datetime(holdout["event_time"], utc=True).to_numpy(),
                         (None, holdout_start), (holdout_start, as_of))
        fitted = fit_score_record(
            engine, run_id, dep.model_group_id, GridEntry(point, point.describe(), features),
            rows, build=lambda e: build_pipeline(e.point, e.features, seed), evaluate=evaluate,
            artefacts_dir=project_dir / ".rudi" / "models")
        challenger_id, chall_score = fitted.model_id, fitted.score
        champion_pipe = load_artefact(champion_row["artefact_path"],
                                      champion_row["artefact_hash"], project_dir)
        champ_score = champion_pipe.predict_proba(X_hold)[:, 1]
        attrs_cols = [c for c in project.fairness.columns if c in holdout]
        attrs = holdout[attrs_cols]
        champion = _contender(project, dep.model_id, policy.metric, dep.threshold, y_hold,
                              champ_score, attrs)
        challenger = _contender(project, challenger_id, policy.metric, dep.threshold, y_hold,
                                chall_score, attrs)
        promoted, reason = decide(policy.metric, policy.max_drop, champion, challenger)
        k = min(project.monitoring.stability.k, len(y_hold))
        ids = holdout["observation_id"].astype(str).to_numpy()
        champ_list = pd.Series(champ_score, index=ids)
        chall_list = pd.Series(chall_score, index=ids)
        jaccard = top_k_jaccard(champ_list, chall_list, k)
        spearman = rank_correlation(champ_list, chall_list)
        deployment_id = None
        if promoted:
            deployment_id = deploy(engine, dep.model_group_id, model_id=challenger_id,
                                   threshold=dep.threshold, by=by, project_dir=project_dir,
                                   reason=f"retrain (run {run_id}): {reason}").id
        with engine.begin() as conn:
            audit.record(conn, by, "retrain_promoted" if promoted else "retrain_rejected",
                         f"model group {dep.model_group_id}", {
                             "run_id": run_id, "reason": reason, "metric": policy.metric,
                             "champion_model_id": dep.model_id,
                             "challenger_model_id": challenger_id,
                             "champion": plain(champion.metric),
                             "challenger": plain(challenger.metric),
                             "champion_fairness": champion.requirements,
                             "challenger_fairness": challenger.requirements,
                             "holdout": [holdout_start.isoformat(), as_of.isoformat()],
                             "holdout_rows": len(y_hold), "training_rows": len(y_train),
                             "production_training_rows": len(earlier),
                             "top_k": k, "top_k_jaccard": plain(jaccard),
                             "spearman": plain(spearman),
                             "new_deployment_id": deployment_id})
    if promoted:  # the new deployment's reference now, as `rudi deploy` stores it
        store_reference(project, project_dir, engine)
    return RetrainDecision(promoted, reason, policy.metric, champion, challenger,
                           (holdout_start, as_of), len(y_hold), len(y_train), len(earlier),
                           deployment_id, run_id, k, jaccard, spearman)


def decide(metric: str, max_drop: float, champion: Contender, challenger: Contender,
            where: str = "the same holdout") -> tuple[bool, str]:
    """(promote?, why): the challenger's ``metric`` at most ``max_drop`` below the champion's
    on ``where``, and every fairness requirement met (case and list retraining alike)."""
    if not math.isfinite(challenger.metric):
        return False, f"the challenger's {metric} is undefined on {where}"
    if challenger.fairness_passed is False:
        return False, ("the challenger does not meet every fairness requirement ("
                       + "; ".join(challenger.failed[:3]) + ")")
    if math.isfinite(champion.metric) and challenger.metric < champion.metric - max_drop:
        return False, (f"the challenger's {metric} {challenger.metric:.3f} is worse than the "
                       f"champion's {champion.metric:.3f} (allowed drop {max_drop:g})")
    return True, (f"challenger {metric} {challenger.metric:.3f} vs champion "
                  f"{champion.metric:.3f} on {where}"
                  + ("; every fairness requirement met" if challenger.fairness_passed else ""))


def rollback(engine: Engine, *, by: str, reason: str, project_dir: Path | None = None
             ) -> tuple[int, int]:
    """Make the deployment before the live one live again; returns (retired id, new id).
    ``project_dir``: the project its model file is found in (see ``deploy``)."""
    if not reason.strip():
        raise RetrainError("say why you roll back: --reason \"...\" (it goes to the audit log)")
    with engine.connect() as conn:
        live = production_q.live_deployment(conn)
        if live is None:
            raise RetrainError("nothing is deployed, so there is nothing to roll back")
        previous = production_q.previous_deployment(conn, live["id"])
    if previous is None:
        raise RetrainError(f"deployment {live['id']} is the first one; there is no previous "
                           "model to return to")
    new = deploy(engine, previous["model_group_id"], model_id=previous["model_id"],
                 threshold=float(previous["threshold"]), by=by, project_dir=project_dir,
                 reason=f"rollback from deployment {live['id']} to the model of deployment "
                        f"{previous['id']}: {reason}")
    with engine.begin() as conn:
        audit.record(conn, by, "rollback", f"deployment {live['id']}", {
            "retired_deployment_id": live["id"], "restored_deployment_id": previous["id"],
            "new_deployment_id": new.id, "model_id": previous["model_id"], "reason": reason})
    return live["id"], new.id


def backtest_model_age(project: Project, frame: pd.DataFrame, point: GridPoint,
                       features: Features, *, engine: Engine, model_group_id: int,
                       artefacts: Path, first_train_months: int = 6, max_age: int = 6
                       ) -> tuple[int, pd.DataFrame]:
    """How performance decays with model age: for each month end T (after the first
    ``first_train_months``), fit on everything before T and score each of the following
    ``max_age`` months. Every refit is stored as a model of ``model_group_id`` in a run of its
    own (split ``backtest_until_<T>``, its scored months as predictions, ROC AUC per age as
    evaluations ``roc_auc`` / ``age_<n>m``). Returns (run id, one row per (trained until, age)
    with n, ROC AUC and the base rate); the mean per age says how often retraining pays."""
    y_all, keep = make_label(frame, project.label)
    data = frame.loc[keep].reset_index(drop=True)
    y = y_all[keep]
    when = pd.to_datetime(data[project.data.knowledge_date], utc=True)
    month = when.dt.tz_convert(None).dt.to_period("M")
    months = sorted(month.dropna().unique())
    columns = features.input_columns + point.columns_needed()
    seed = project.evaluation.seed

    def by_age(first: int) -> Callable[[SplitRows, np.ndarray, bool], Evaluated]:
        """ROC AUC of each scored month by its age, for a model trained until ``months[first]``."""
        def evaluate(rows: SplitRows, score: np.ndarray, _: bool) -> Evaluated:
            scored_month = (pd.to_datetime(pd.Series(rows.as_of), utc=True).dt.tz_convert(None)
                            .dt.to_period("M"))
            metrics, table = [], []
            for age in range(1, min(max_age, len(months) - first) + 1):
                test = (scored_month == months[first + age - 1]).to_numpy()
                if len(np.unique(rows.y_test[test])) < 2:
                    continue
                auc = next(m.value for m in evaluate_scores(rows.y_test[test], score[test],
                                                            thresholds=[], bootstrap=0)
                           if m.metric == "roc_auc")
                metrics.append(MetricValue("roc_auc", f"age_{age}m", auc, None, None,
                                           int(test.sum())))
                table.append({"trained_until": str(months[first]), "age_months": age,
                              "n": int(test.sum()), "roc_auc": auc,
                              "base_rate": float(rows.y_test[test].mean())})
            return metrics, table
        return evaluate

    rows = []
    entry = GridEntry(point, point.describe(), features)
    with results.run(engine, project.name, project.config_hash(), {"backtest": {
            "model_group_id": model_group_id, "first_train_months": first_train_months,
            "max_age": max_age}}, seed, "real") as run:
        for i in range(first_train_months, len(months)):
            train = (month < months[i]).to_numpy()
            if len(np.unique(y[train])) < 2:
                continue
            scored = (month >= months[i]) & (month <= months[min(i + max_age, len(months)) - 1])
            scored = scored.to_numpy()
            start = months[i].start_time.tz_localize("UTC")
            split = SplitRows(f"backtest_until_{months[i]}", data.loc[train, columns], y[train],
                              data.loc[scored, columns], y[scored],
                              data.loc[scored, project.data.entity_id].astype(str).to_numpy(),
                              when[scored].to_numpy(), (None, start), (start, when[scored].max()))
            fitted = fit_score_record(engine, run.id, model_group_id, entry, split,
                                      build=lambda e: build_pipeline(e.point, e.features, seed),
                                      evaluate=by_age(i), artefacts_dir=artefacts,
                                      keep_scores=False)
            rows += fitted.details
        run_id = run.id
    return run_id, pd.DataFrame(rows, columns=["trained_until", "age_months", "n", "roc_auc",
                                               "base_rate"])
