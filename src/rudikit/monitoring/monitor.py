"""`rudi monitor`: one pass over the production window of the live deployment, every figure and
alert written to the store in one transaction.

What it checks (thresholds from the ``monitoring`` section of ``rudi.yaml``):
inputs (freshness, rows per period, rewritten history), population drift of every model input
and of the score against the training rows, realised performance once outcomes arrive (overall,
per segment, precision@k per period), the fairness requirements on production outcomes, and the
stability of consecutive lists when the same entities are scored again and again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from rudikit.config import Features, Project
from rudikit.fairness.requirements import RequirementResult
from rudikit.features.location import cell_summary, coordinates
from rudikit.monitoring.alerts import Alert, post_webhook
from rudikit.monitoring.churn import churn_alerts, stability_pairs
from rudikit.monitoring.drift import FeatureDrift, ReferenceProfile, compare
from rudikit.monitoring.inputs import SourceCheck
from rudikit.monitoring.pass_sources import PassSources
from rudikit.monitoring.performance import Realised, realised
from rudikit.monitoring.reference import reference, reference_columns
from rudikit.monitoring.window import choose_window
from rudikit.monitoring.window_outcomes import Outcomes, map_points, window_outcomes
from rudikit.store.monitoring_tables import (
    alerts,
    monitor_metrics,
    monitor_runs,
    source_periods,
    source_readings,
)
from rudikit.store.production_inputs import InputSpec, ensure_inputs_table
from rudikit.store.queries import monitor_counts as counts_q
from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.queries import predictions as predictions_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries.monitor_counts import Buckets
from rudikit.store.queries.production import live_deployment
from rudikit.store.results import plain


class MonitorError(ValueError):
    """The monitor cannot run (e.g. a segment column the data does not have)."""


@dataclass
class Deployed:
    deployment_id: int
    model_id: int
    model_group_id: int
    threshold: float
    split: str
    features: Features


@dataclass
class MonitorResult:
    monitor_run_id: int
    project: str
    as_of: datetime
    window: tuple[datetime, datetime]
    deployment: Deployed | None
    n_predictions: int = 0
    n_outcomes: int = 0
    alerts: list[Alert] = field(default_factory=list)
    drift: list[FeatureDrift] = field(default_factory=list)
    score_drift: FeatureDrift | None = None
    score_ks_p: float = float("nan")
    expected: Realised | None = None
    realised: Realised | None = None
    segments: dict[str, dict[str, Realised]] = field(default_factory=dict)
    precision_over_time: pd.DataFrame | None = None
    fairness: list[RequirementResult] = field(default_factory=list)
    sources: list[SourceCheck] = field(default_factory=list)
    stability: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def critical(self) -> int:
        return sum(a.severity == "critical" for a in self.alerts)

    @property
    def warnings(self) -> int:
        return sum(a.severity == "warning" for a in self.alerts)


# --- What is deployed and what it was trained on ---------------------------------------------


def deployed(engine: Engine) -> Deployed | None:
    with engine.connect() as conn:
        live = live_deployment(conn)
        if live is None:
            return None
        split = runs_q.model(conn, live["model_id"])["split"]
        group = runs_q.model_group(conn, live["model_group_id"])["features"]
    # a temporal group's features also carry their digest, which is no model input
    features = {k: v for k, v in group.items() if k in Features.model_fields}
    return Deployed(live["id"], live["model_id"], live["model_group_id"],
                    float(live["threshold"]), split, Features.model_validate(features))


# --- Reading production ----------------------------------------------------------------------


@dataclass
class _Window:
    """What one pass reads of the production window: drift counts, map groups and the
    figures of its cases with an outcome computed by the database, and the scores."""

    counts: dict[str, np.ndarray]
    scores: list[np.ndarray]
    outcomes: Outcomes = field(default_factory=Outcomes)
    n: int = 0
    points: list[pd.DataFrame] = field(default_factory=list)  # coordinates and outcome (map)


def _rules(profile: ReferenceProfile, features: Features) -> dict[str, Buckets]:
    """The profile's buckets as the database counts them (datetime parts from their input)."""
    parts = ({f"{features.datetime.column}.{p}": p for p in features.datetime.parts}
             if features.datetime else {})
    return {name: Buckets(features.datetime.column if name in parts else name,
                          tuple(b.categories) if b.kind == "categorical" else None,
                          tuple(float(e) for e in b.edges), parts.get(name))
            for name, b in profile.buckets_.items()}


def _count_window(engine: Engine, project: Project, dep: Deployed, profile: ReferenceProfile,
                  start: datetime, end: datetime, keep: list[str],
                  tick: Callable[[int], None] | None) -> _Window:
    """The window's drift counts, scores, map groups and the figures of its cases with an
    outcome, from the model's typed inputs (built from the stored JSON first if the model has
    none yet)."""
    spec = InputSpec.of(dep.features.model_dump(), project.data.knowledge_date, keep)
    with engine.begin() as conn:
        table = ensure_inputs_table(conn, dep.model_id, spec)
    lo, hi = counts_q.epoch_us(start), counts_q.epoch_us(end)
    with engine.connect() as conn:
        counts_q.read_windows(conn)
        n, counts = counts_q.drift_counts(conn, table, _rules(profile, dep.features), lo, hi)
        scores = counts_q.window_scores(conn, table, lo, hi)
        columns = [c for c in keep if spec.kind(c) is not None]
        location = dep.features.location
        mapped = (list(location.columns)
                  if location is not None and location.h3_resolution is not None else [])
        read = list(dict.fromkeys([*columns, *mapped]))
        with counts_q.labelled_cases(conn, table, read, lo, hi) as cases:
            outcomes = window_outcomes(conn, cases, project, dep.threshold, columns)
            points = [map_points(conn, table, cases, *mapped, lo, hi)] if mapped else []
    if tick:
        tick(n)
    return _Window({name: np.asarray(c, dtype=np.int64) for name, c in counts.items()},
                   [scores], outcomes, n, points)


# --- Checks ----------------------------------------------------------------------------------


def _drift_alerts(monitoring: Any, found: list[FeatureDrift], window: str) -> list[Alert]:
    out = []
    for d in found:
        if not np.isfinite(d.psi) or d.psi < monitoring.psi_warning:
            continue
        severity = "critical" if d.psi >= monitoring.psi_critical else "warning"
        top = d.buckets.assign(change=(d.buckets.production_share
                                       - d.buckets.reference_share).abs()
                               ).sort_values("change", ascending=False).iloc[0]
        bound = monitoring.psi_critical if severity == "critical" else monitoring.psi_warning
        out.append(Alert("drift", d.feature, "psi", d.psi, bound, severity, window,
                         f"{d.feature} drifted (PSI {d.psi:.3f}): "
                         f"{d.feature}{' = ' if d.kind == 'categorical' else ' '}{top.bucket}: "
                         f"{top.reference_share:.1%} in training, {top.production_share:.1%} "
                         "in production"))
    return out


def stored_lists(engine: Engine, model_group_id: int, until: datetime, min_size: int,
                 case_splits: list[str]) -> dict[pd.Timestamp, pd.Series]:
    """The model group's lists: its stored predictions per as-of date (the newest model's when
    several scored one date), entity id -> score, for dates scoring ``min_size`` or more. The
    test predictions of models fitted on ``case_splits`` are cases dated by when each happened
    (a hundred searches may share a time): never lists."""
    rows = predictions_q.group_lists(engine, model_group_id, until=until,
                                     not_splits=case_splits)
    if not rows:
        return {}
    frame = pd.DataFrame(rows, columns=["as_of_date", "entity_id", "score", "model_id"])
    frame["as_of_date"] = pd.to_datetime(frame["as_of_date"], utc=True)
    frame = frame[frame["as_of_date"] <= pd.Timestamp(until)]
    newest = frame.groupby("as_of_date")["model_id"].transform("max")
    frame = frame[frame["model_id"] == newest]
    # a list has at least k entities; per-case dates (one search each) are not lists
    sizes = frame.groupby("as_of_date")["entity_id"].transform("nunique")
    frame = frame[sizes >= min_size]
    return {d: g.drop_duplicates("entity_id", keep="last").set_index("entity_id")["score"]
            for d, g in frame.groupby("as_of_date", sort=True)}


def list_stability(project: Project, lists: dict[pd.Timestamp, pd.Series]
                   ) -> tuple[pd.DataFrame | None, list[Alert], str | None]:
    """Each list against the one before it (top-k Jaccard, Spearman); the newest pair is
    checked against bounds learned from the earlier pairs (or fixed minimums)."""
    cfg = project.monitoring.stability
    if len(lists) < 2:
        return None, [], ("list stability: fewer than two stored lists (batch-scored as-of "
                          "dates) for the deployed model group")
    pairs = stability_pairs(lists, cfg.k)
    found = churn_alerts(cfg, pairs, len(pairs) - 1, both_sides=False)
    last = pairs.iloc[-1]
    identical = pairs[["jaccard", "spearman"]].to_numpy() >= 1 - 1e-12
    if identical[-1].all() and not identical[:-1].all(axis=1).any():
        found.append(Alert("stability", f"top-{cfg.k} list", "spearman", 1.0, None, "warning",
                           last["pair"], f"the list of {last['pair']} is identical to the one "
                           "before, which never happened earlier: have the inputs stopped "
                           "updating?"))
    return pairs, found, None


# --- The monitor -----------------------------------------------------------------------------


def run_monitor(project: Project, project_dir: Path, engine: Engine, *,
                as_of: datetime | None = None, window_days: int | None = None,
                today: datetime | None = None,
                tick: Callable[[int], None] | None = None) -> MonitorResult:
    """Check everything, store the figures and alerts (one transaction), post the webhook.
    ``window_days`` overrides ``monitoring.window_days``; ``today`` is the clock (tests)."""
    started = datetime.now(UTC)
    mon = project.monitoring
    dep, today = deployed(engine), (today or started).astimezone(UTC)
    window = choose_window(engine, [dep.model_id] if dep else [], project.data.knowledge_date,
                           mon.window_days if window_days is None else window_days,
                           as_of=as_of, today=today)
    start, as_of, window_label = window.start, window.end, window.label
    # the development rows are kept (their reference columns) only to fit a missing reference
    fit = dep is not None and not monitoring_q.has_reference_profile(engine, dep.deployment_id)
    sources = PassSources(project, project_dir,
                          reference_columns(project, dep.features) if fit else None)
    unknown = [s for s in mon.sources if s not in {x.name for x in project.data.sources}]
    if unknown:
        raise MonitorError(f"monitoring.sources: no source named {unknown[0]!r} in data.sources")
    result = MonitorResult(0, project.name, as_of, (start, as_of), dep)
    result.notes += [window.note] if window.note else []
    metrics: list[dict[str, Any]] = []
    production: list[Alert] = []
    try:
        sources.start(engine)  # the source files are read while the database counts the window
        if dep is None:
            result.notes.append("no model is deployed: only the inputs were checked")
        else:
            missing = [c for c in mon.segments if c not in sources.columns]
            if missing:
                raise MonitorError(f"monitoring.segments: no column {missing[0]!r} in the data")
            production = _production_checks(project, engine, sources.frame, dep, result,
                                            metrics, start, as_of, window_label, tick)
        result.sources, found = sources.check(as_of if window.note is None else today)
    finally:
        sources.close()
    result.alerts = found = found + production
    _store(engine, result, metrics, started, sources.readings)
    webhook = (mon.webhook_url or "").strip()
    if webhook and found:
        problem = post_webhook(webhook, project.name, result.monitor_run_id, found)
        if problem:
            result.notes.append(problem)
    return result


def store_reference(project: Project, project_dir: Path, engine: Engine) -> bool:
    """Fit and store the live deployment's reference profile now (``rudi deploy``, a rollback,
    a promoting retrain and the demo's deploy do), from its development rows read file by
    file, so that its first pass reads one stored row instead; False when nothing is deployed
    or its profile is stored already."""
    dep = deployed(engine)
    if dep is None or monitoring_q.has_reference_profile(engine, dep.deployment_id):
        return False
    reference(engine, project, PassSources(project, project_dir,
                                           reference_columns(project, dep.features)).frame, dep)
    return True


def _production_checks(project: Project, engine: Engine,
                       frame: Callable[[], pd.DataFrame], dep: Deployed,
                       result: MonitorResult, metrics: list[dict[str, Any]], start: datetime,
                       end: datetime, window: str, tick: Callable[[int], None] | None
                       ) -> list[Alert]:
    mon = project.monitoring
    ref = reference(engine, project, frame, dep)
    profile, score_profile, ref_score, ref_label = (ref.profile, ref.score_profile, ref.scores,
                                                    ref.labels)
    keep = list(dict.fromkeys(mon.segments + project.fairness.columns))
    win = _count_window(engine, project, dep, profile, start, end, keep, tick)
    found: list[Alert] = []
    pairs, churn, note = list_stability(project, stored_lists(engine, dep.model_group_id, end,
                                                              mon.stability.k,
                                                              [s.name for s in project.splits]))
    result.stability, found = pairs, found + churn
    if note:
        result.notes.append(note)
    if pairs is not None:
        for row in pairs.itertuples():
            for metric in ("jaccard", "spearman"):
                metrics.append(_metric("stability", f"top-{row.k}", row.pair, metric,
                                       getattr(row, metric), row.common_entities))
    result.n_predictions = win.n
    if win.n == 0:
        result.notes.append(f"no production predictions in {window}")
        return found
    scores = np.concatenate(win.scores)
    result.drift = compare(profile, win.counts)
    result.score_drift = compare(score_profile, score_profile.count({"score": scores}))[0]
    if len(ref_score) and len(scores):
        result.score_ks_p = float(stats.ks_2samp(ref_score, scores).pvalue)
    for d in [*result.drift, result.score_drift]:
        metrics += [_metric("drift", d.feature, "", "psi", d.psi, win.n),
                    _metric("drift", d.feature, "", "chi2_p", d.chi2_p, win.n),
                    _metric("drift", d.feature, "", "reference_missing", d.reference_missing),
                    _metric("drift", d.feature, "", "production_missing", d.production_missing)]
        for row in d.buckets.itertuples():
            metrics += [_metric("drift_bucket", d.feature, row.bucket, "reference_share",
                                row.reference_share, row.reference_n),
                        _metric("drift_bucket", d.feature, row.bucket, "production_share",
                                row.production_share, row.production_n)]
    metrics.append(_metric("drift", "score", "", "ks_p", result.score_ks_p, win.n))
    if win.n >= mon.min_window_rows:
        found += _drift_alerts(mon, [*result.drift, result.score_drift], window)
    else:
        result.notes.append(f"drift: only {win.n} predictions in the window (alerts need "
                            f"{mon.min_window_rows})")
    metrics += _cell_metrics(dep.features, win.points)
    result.n_outcomes = win.outcomes.n
    found += _performance(project, dep, result, metrics, win.outcomes, ref_score, ref_label,
                          window)
    return found


def _performance(project: Project, dep: Deployed, result: MonitorResult,
                 metrics: list[dict[str, Any]], outcomes: Outcomes, ref_score: np.ndarray,
                 ref_label: np.ndarray, window: str) -> list[Alert]:
    mon = project.monitoring
    found: list[Alert] = []
    known = ref_label >= 0
    if known.any():
        result.expected = realised(ref_label[known], ref_score[known], dep.threshold)
        for name, value in result.expected.as_dict().items():
            metrics.append(_metric("expected", "test", "", name, value, result.expected.n))
    if outcomes.n < mon.min_outcomes or outcomes.realised is None:
        result.notes.append(f"realised performance: {outcomes.n} outcomes in the window "
                            f"(needs {mon.min_outcomes})")
        return found
    result.realised = outcomes.realised
    for name, value in result.realised.as_dict().items():
        metrics.append(_metric("performance", "all", "", name, value, result.realised.n))
    metrics.append(_metric("performance", "all", "", "roc_curve", None, outcomes.n,
                           outcomes.roc))
    result.segments = outcomes.segments
    for column, segments in outcomes.segments.items():
        for value, r in segments.items():
            for name, v in r.as_dict().items():
                metrics.append(_metric("performance", column, value, name, v, r.n))
    over_time = outcomes.over_time
    assert over_time is not None
    result.precision_over_time = over_time
    for row in over_time.itertuples():
        metrics.append(_metric("precision_at_k", f"top-{row.k}", row.period, "precision_at_k",
                               row.precision_at_k, row.n))
    if result.expected is not None and np.isfinite(result.expected.precision) \
            and np.isfinite(result.realised.precision):
        drop = (result.expected.precision - result.realised.precision) * 100
        if drop >= mon.precision_drop_pp:
            found.append(Alert(
                "performance", "precision", "drop_pp", drop, mon.precision_drop_pp, "critical",
                window, f"realised precision {result.realised.precision:.1%} is {drop:.1f} "
                f"points below the {result.expected.precision:.1%} expected from the test "
                f"data (threshold {dep.threshold:g}, {result.realised.n:,} outcomes)"))
    if outcomes.fairness is not None:
        result.fairness = outcomes.fairness
        for r in outcomes.fairness:
            name = r.requirement.name
            # 1 met, 0 not met, none when inconclusive or without enough data (the summary
            # says which); only a gap the data support raises the alert
            metrics.append(_metric("fairness", name, "", "passed",
                                   1.0 if r.passed else 0.0 if r.failing else None, outcomes.n,
                                   {"summary": r.summary, "status": r.status}))
            if r.failing:
                worst = max(r.failing, key=lambda o: o.gap_pp)
                found.append(Alert("fairness", name, "gap_pp", worst.gap_pp,
                                   r.requirement.max_gap_pp, "critical", window,
                                   f"fairness requirement not met on production outcomes: "
                                   f"{name}: {r.summary}"))
    return found


def _cell_metrics(features: Features, points: list[pd.DataFrame]) -> list[dict[str, Any]]:
    """The production window's searches and success rate (of the outcomes known) per H3 cell,
    for the monitor report's map (section ``location``), from the window's cases grouped by
    coordinates and outcome (police coordinates are snapped to a few thousand points)."""
    location = features.location
    frame = pd.concat(points, ignore_index=True) if points else pd.DataFrame()
    if location is None or location.h3_resolution is None or frame.empty:
        return []
    frame = frame.loc[frame.index.repeat(frame.pop("n"))]
    latitude, longitude = coordinates(frame, *location.columns)
    outcome = pd.to_numeric(frame["outcome"], errors="coerce").to_numpy(dtype=float)
    out = []
    for row in cell_summary(latitude, longitude, outcome, location.h3_resolution).itertuples():
        out += [_metric("location", row.cell, "", "searches", row.searches, row.searches),
                _metric("location", row.cell, "", "success_rate",
                        row.success_rate if row.outcomes else None, row.outcomes)]
    return out


def _metric(section: str, subject: str, segment: str, metric: str, value: Any,
            n: int | None = None, details: Any = None) -> dict[str, Any]:
    return {"section": section, "subject": str(subject)[:200], "segment": str(segment)[:200],
            "metric": metric, "value": plain(None if value is None else float(value)),
            "n": None if n is None else int(n), "details": plain(details)}


def _store(engine: Engine, result: MonitorResult, metrics: list[dict[str, Any]],
           started: datetime, readings: Sequence[dict[str, Any]] = ()) -> None:
    """The pass's record, figures, alerts, source digests and ``readings`` (what it read of
    each source, :class:`PassSources`), in one transaction."""
    dep = result.deployment
    finished = datetime.now(UTC)
    with engine.begin() as conn:
        run_id = conn.execute(insert(monitor_runs).values(
            project=result.project, deployment_id=dep.deployment_id if dep else None,
            model_group_id=dep.model_group_id if dep else None,
            model_id=dep.model_id if dep else None, window_start=result.window[0],
            window_end=result.window[1], n_predictions=result.n_predictions,
            n_outcomes=result.n_outcomes, n_critical=result.critical,
            n_warning=result.warnings, started_at=started, finished_at=finished,
        ).returning(monitor_runs.c.id)).scalar_one()
        rows = [{**m, "monitor_run_id": run_id} for m in metrics]
        for begin in range(0, len(rows), 5000):
            conn.execute(insert(monitor_metrics), rows[begin:begin + 5000])
        if result.alerts:
            conn.execute(insert(alerts), [
                {**a.as_json(), "subject": a.subject[:200], "monitor_run_id": run_id,
                 "created_at": finished} for a in result.alerts])
        periods = [{"monitor_run_id": run_id, "source": s.source, "period": d.period,
                    "row_count": d.row_count, "checksum": d.checksum, "recorded_at": finished}
                   for s in result.sources for d in s.periods]
        if periods:
            conn.execute(insert(source_periods), periods)
        if readings:
            conn.execute(insert(source_readings),
                         [{**r, "monitor_run_id": run_id} for r in readings])
    result.monitor_run_id = run_id
