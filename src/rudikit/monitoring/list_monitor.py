"""`rudi monitor` for a temporal project: the production lists `rudi score` stored, judged as
their outcomes arrive. Same monitor run, figures and alerts tables as the case monitor.

First the event tables themselves (:mod:`rudikit.monitoring.event_inputs`: freshness, rows
per period, time-based checksums), then per list (``production_lists``, dated D, top ``k``
after the cool-off):

* **realised precision@k** from the event tables (the project's label, e.g. any complaint in
  the label timespan after D). A list matures at D + label timespan; before that the share of
  the window seen so far and the partial precision are stored. The promise is what the
  deployed model group achieved on its test as-of dates (stored ``precision_at_k`` evaluations:
  mean, spread, lowest). **Alert rule:** a matured list whose model top k (as on the test
  dates: officers in their cool-off included) has a precision below the lowest test-date
  precision by a one-sided exact binomial test (:func:`scipy.stats.binomtest`,
  ``monitoring.precision_alpha``). The lowest test date, not the mean, is the null: the
  test years' spread is part of what the model promised, and the binomial test adds the
  noise of a list of only ``k`` officers;
* **interventions**: officers reviewed with a decision other than ``no_action`` in the
  cool-off before D or in the label window are counted apart; an effective intervention
  prevents the adverse event and so lowers the measured precision (seed 001), so precision is
  given with and without them (why the alert keeps them: :func:`precision_drop`);
* **list stability** against the list before it (:mod:`rudikit.monitoring.churn`, both sides);
  a list whose every score equals the previous list's is an input alarm;
* **fairness** by officer group with the project's requirements (the development audit of
  :meth:`rudikit.run.temporal.TemporalLists.assess`): on matured labels, or selection rates
  only while the window is open;
* **reviewers' agreement**: agree / (agree + disagree) of the reviews of each list.

Alerts are raised for what changed in the window (``--window-days`` before ``--as-of``/today):
lists that matured in it, lists and pairs dated in it. The figures cover every list, but a pass
judges only the lists that need it: those dated or matured in the window, those whose label
window is still open, and those whose outcomes, reviews, roster or settings changed since the
last pass. A final list (matured, unchanged) keeps the figures the last pass stored, and so do
the stability pairs of lists before the window (:mod:`rudikit.monitoring.list_reuse`, which says
what "changed" covers); labels are built for the lists judged only, from the label table's rows
dated on or after the first of them. The event tables are still read whole, once, for their
input checks (a rewritten period of 2012 is found only by reading 2012). ``full=True`` judges
every list again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import TemporalProject, label_months
from rudikit.data.event_tables import ENTITY, load_event_tables, officer_attributes
from rudikit.data.sources import LoadedSource
from rudikit.fairness.requirements import METRIC_ALIASES, RequirementResult
from rudikit.fairness.stage import assess
from rudikit.features.asof.labels import build_labels
from rudikit.models.temporal import label_spec
from rudikit.monitoring.alerts import Alert, post_webhook
from rudikit.monitoring.churn import churn_alerts, stability_pairs
from rudikit.monitoring.event_inputs import check_project_tables
from rudikit.monitoring.list_promise import (
    Promise,
    naive_days,
    precision,
    precision_drop,
    promise,
)
from rudikit.monitoring.list_reuse import plan as reuse_plan
from rudikit.monitoring.monitor import MonitorResult, _metric, _store, deployed
from rudikit.monitoring.window import check_window_days
from rudikit.run.temporal import list_operating_point
from rudikit.store.list_tables import load_reviews
from rudikit.store.queries import lists as lists_q

NO_INTERVENTION = ("no_action",)


@dataclass
class ListMonitorResult(MonitorResult):
    lists: pd.DataFrame | None = None  # one row per production list (see _list_row)
    promises: dict[int, Promise] = field(default_factory=dict)
    list_fairness: dict[pd.Timestamp, list[RequirementResult]] = field(default_factory=dict)
    agreement_rate: float | None = None
    # the dates of the lists judged in this pass; the others' figures are the last pass's
    judged: list[str] = field(default_factory=list)


# --- The promise and the outcomes ------------------------------------------------------------


def label_window(project: TemporalProject, split_name: str | None) -> tuple[int, str]:
    """(months, timespan) of the test label of the deployed model's split (else the last)."""
    splits = project.temporal.splits()
    split = next((s for s in splits if s.name == split_name), splits[-1])
    return label_months(split.test.label_timespan), split.test.label_timespan


def realised_labels(project: TemporalProject, tables: dict[str, pd.DataFrame],
                    dates: Sequence[pd.Timestamp], months: int, known_until: pd.Timestamp
                    ) -> pd.DataFrame:
    """entity_id, as_of_date and label of every active officer on each date from the events
    known up to ``known_until`` (inclusive): the full label once a window has closed, the part
    seen so far while it is open (never censored here; maturity is judged apart)."""
    spec = dataclasses.replace(label_spec(project.temporal), window_months=months)
    events = tables[spec.table]
    known = events[pd.to_datetime(events[spec.date_column]) < known_until + pd.Timedelta(days=1)]
    horizon = max(dates) + pd.DateOffset(months=months)
    labels = build_labels({**tables, spec.table: known}, list(dates), spec, data_end=horizon)
    return pd.DataFrame({"entity_id": labels[ENTITY].astype("string").to_numpy(),
                         "as_of_date": naive_days(labels["as_of_date"]).to_numpy(),
                         "label": labels[spec.name].astype("Float64").to_numpy()})


def intervened(reviews: pd.DataFrame, entities: set[str], start: pd.Timestamp,
               end: pd.Timestamp) -> set[str]:
    """The ``entities`` reviewed in ``[start, end)`` with a decision other than no action."""
    if reviews.empty:
        return set()
    acted = reviews[reviews["entity_id"].isin(entities) & (reviews["review_date"] >= start)
                    & (reviews["review_date"] < end) & reviews["outcome"].notna()
                    & ~reviews["outcome"].isin(NO_INTERVENTION)]
    return set(acted["entity_id"])


def agreement(reviews: pd.DataFrame) -> dict[str, Any]:
    """Counts of each answer and the rate agree / (agree + disagree) (None without either)."""
    answers = reviews["agreement"].fillna("not given")
    agree, disagree = int((answers == "agree").sum()), int((answers == "disagree").sum())
    return {"reviews": len(reviews), "agree": agree, "disagree": disagree,
            "unsure": int((answers == "unsure").sum()),
            "rate": agree / (agree + disagree) if agree + disagree else None}


# --- Fairness of one list ---------------------------------------------------------------------


def list_fairness(project: TemporalProject, officers: pd.DataFrame, scored: pd.DataFrame,
                  when: pd.Timestamp, k: int, matured: bool) -> tuple[Any, list[Any]]:
    """The audit and requirement results of one list among the officers it could flag (those
    not in their cool-off): on the realised labels once matured, else selection rates only."""
    fairness = project.fairness
    if not matured:
        fairness = fairness.model_copy(update={"requirements": [
            r for r in fairness.requirements
            if METRIC_ALIASES.get(r.metric, r.metric) == "pprev"]})
    if not (fairness.attributes or fairness.intersections or fairness.requirements):
        return None, []
    rows = scored[scored["rank"].notna()].reset_index(drop=True)
    if matured:
        rows = rows[rows["label"].notna()].reset_index(drop=True)
    roster = officers.assign(**{ENTITY: officers[ENTITY].astype("string")})
    attrs = officer_attributes(roster, pd.DataFrame({ENTITY: rows["entity_id"].astype("string"),
                                                     "as_of_date": when}), fairness.columns)
    y = rows["label"].to_numpy(dtype=float).astype(int) if matured else np.zeros(len(rows), int)
    found = assess(fairness, attrs, y, rows["score"].to_numpy(dtype=float),
                   list_operating_point(fairness, k))
    return found.audit, found.requirements


# --- The monitor -----------------------------------------------------------------------------


def run_list_monitor(project: TemporalProject, project_dir: Path, engine: Engine, *,
                     as_of: datetime | None = None, window_days: int | None = None,
                     today: datetime | None = None, tables: dict[str, pd.DataFrame] | None = None,
                     loaded: list[LoadedSource] | None = None, full: bool = False
                     ) -> ListMonitorResult:
    """Judge the project's production lists up to ``as_of`` (default ``today``, the clock),
    store the figures and alerts in one transaction, post the webhook. ``tables``/``loaded``
    reuse event tables already loaded; ``full`` judges every list again instead of taking the
    final ones from the last pass."""
    started = datetime.now(UTC)
    mon = project.monitoring
    end = (as_of or today or started).astimezone(UTC)
    start = end - timedelta(days=check_window_days(
        mon.window_days if window_days is None else window_days))
    dep = deployed(engine)
    result = ListMonitorResult(0, project.name, end, (start, end), dep)
    metrics: list[dict[str, Any]] = []
    headers = lists_q.production_list_headers(engine, project.name)
    end_day = pd.Timestamp(end).tz_convert(None).normalize()
    if not headers.empty:
        headers = headers.assign(date=naive_days(headers["as_of_date"]).to_numpy())
        headers = headers[headers["date"] <= end_day].reset_index(drop=True)
    if tables is None or loaded is None:
        tables, loaded = load_event_tables(project, project_dir)
    result.sources, found = check_project_tables(project, tables, engine, end)
    if headers.empty:
        result.notes.append(f"no production list of {project.name} up to {end:%Y-%m-%d}: "
                            f"`rudi score {project.name} --as-of DATE` makes one")
    else:
        window = (pd.Timestamp(start).tz_convert(None).normalize(), end_day)
        found += _judge(project, engine, tables, headers, result, metrics, window, full)
    result.alerts = found
    _store(engine, result, metrics, started)
    webhook = (mon.webhook_url or "").strip()
    if webhook and result.alerts:
        problem = post_webhook(webhook, project.name, result.monitor_run_id, result.alerts)
        if problem:
            result.notes.append(problem)
    return result


def _judge(project: TemporalProject, engine: Engine, tables: dict[str, pd.DataFrame],
           headers: pd.DataFrame, result: ListMonitorResult, metrics: list[dict[str, Any]],
           window: tuple[pd.Timestamp, pd.Timestamp], full: bool) -> list[Alert]:
    start, end = window
    dep = result.deployment
    months, span = label_window(project, dep.split if dep else None)
    spec = label_spec(project.temporal)
    newest = naive_days(tables[spec.table][spec.date_column]).max()
    known_until = min(end, newest) if pd.notna(newest) else end
    if known_until < end:
        result.notes.append(f"{spec.table}: the newest record is {known_until:%Y-%m-%d}; labels "
                            "are judged up to then")
    dates = list(headers["date"])
    reviews = load_reviews(engine)
    reviews["entity_id"] = reviews["entity_id"].astype(str)
    reviews = reviews[reviews["review_date"] < end + pd.Timedelta(days=1)]
    promises = result.promises
    for group, k in zip(headers["model_group_id"], headers["k"], strict=True):
        if int(group) not in promises:
            promises[int(group)] = promise(engine, int(group), int(k))  # type: ignore[assignment]
    plan = reuse_plan(project, engine, tables["officers"], headers, result.sources, promises,
                      months, known_until, reviews, window, full)
    work = [d for d in dates if d not in plan.reused]
    needed = set(work) | plan.pair_dates
    ids = headers.loc[headers["date"].isin(needed), "id"].tolist()
    entries = lists_q.production_list_scores(engine, ids)
    entries["entity_id"] = entries["entity_id"].astype(str)
    labels = _labels(project, tables, work, months, known_until, spec)
    found: list[Alert] = []
    rows, scores, counts = [], {}, []
    for i, header in enumerate(headers.itertuples(index=False)):
        when, day = header.date, f"{header.date:%Y-%m-%d}"
        if when in needed:
            part = entries[entries["list_id"] == header.id]
            scores[when] = pd.Series(part["score"].to_numpy(dtype=float),
                                     index=part["entity_id"])
        if when in plan.reused:
            metrics += plan.previous.metrics(day)
            rows.append(plan.previous.row(day, header))
            counts.append(plan.previous.agreement(day))
            continue
        part = part.merge(labels.loc[labels["as_of_date"] == when, ["entity_id", "label"]],
                          on="entity_id", how="left")
        following = dates[i + 1] if i + 1 < len(dates) else None
        row, own = _one_list(part, reviews, header, months, known_until, following)
        row["basis"] = plan.bases[i]
        promised = promises[int(header.model_group_id)]
        judged = start < when <= end or (row["matured"] and start < row["matures"] <= end)
        if row["matured"] and promised is not None:
            alert = precision_drop(row, promised, project.monitoring.precision_alpha)
            found += [alert] if alert and judged else []
        found += _fairness(project, tables["officers"], part, row, judged, result, metrics)
        counts.append(agreement(own))
        metrics += _list_rows(row, counts[-1])
        rows.append({k: v for k, v in row.items() if k != "basis"})
    result.judged = [f"{d:%Y-%m-%d}" for d in work]
    if len(work) < len(dates):
        result.notes.append(f"{len(dates) - len(work)} of {len(dates)} lists are final and "
                            "unchanged since the last pass: their figures are that pass's")
    result.lists = pd.DataFrame(rows)
    result.n_predictions = int(result.lists["listed"].sum())
    result.n_outcomes = int(result.lists.loc[result.lists["matured"], "labelled"].sum())
    if not result.lists["matured"].any():
        result.notes.append(f"no list has matured yet (label window {span}): precision so far "
                            "is partial")
    for group, promised in promises.items():
        if promised is None:
            result.notes.append(f"model group {group} has no stored test precision@k: "
                                "realised precision is not compared with a promise")
            continue
        for day, value in promised.values.items():
            metrics.append(_metric("list_promise", f"model group {group}",
                                      f"{day:%Y-%m-%d}", "precision_at_k", value))
        for name in ("mean", "sd", "low"):
            metrics.append(_metric("list_promise", f"model group {group}", "", name,
                                      getattr(promised, name), len(promised.values)))
    overall = _overall_agreement(counts)
    result.agreement_rate = overall["rate"]
    for name in ("rate", "agree", "disagree", "unsure", "reviews"):
        metrics.append(_metric("agreement", "reviews", "all", name, overall[name]))
    found += _stability(project, headers, scores, plan.pairs, result, metrics, window)
    return found


def _overall_agreement(counts: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`agreement` over every list's reviews, from each list's counts: a review belongs
    to one list at most (the one before its date), so the counts add up."""
    total = {name: sum(c[name] for c in counts) for name in ("reviews", "agree", "disagree",
                                                             "unsure")}
    agree, disagree = total["agree"], total["disagree"]
    return {**total, "rate": agree / (agree + disagree) if agree + disagree else None}


def _labels(project: TemporalProject, tables: dict[str, pd.DataFrame],
            dates: list[pd.Timestamp], months: int, known_until: pd.Timestamp, spec: Any
            ) -> pd.DataFrame:
    """The realised labels of the lists of ``dates`` from the label table's rows dated on or
    after the first of them (a label looks forward only)."""
    if not dates:
        return pd.DataFrame({"entity_id": pd.Series(dtype=str),
                             "as_of_date": pd.Series(dtype="datetime64[ns]"),
                             "label": pd.Series(dtype="Float64")})
    events = tables[spec.table]
    since = pd.to_datetime(events[spec.date_column]) >= min(dates)
    labels = realised_labels(project, {**tables, spec.table: events[since.to_numpy()]}, dates,
                             months, known_until)
    labels["entity_id"] = labels["entity_id"].astype(str)
    return labels


def _one_list(part: pd.DataFrame, reviews: pd.DataFrame, header: Any, months: int,
              known_until: pd.Timestamp, following: pd.Timestamp | None
              ) -> tuple[dict[str, Any], pd.DataFrame]:
    """One list's figures (its officers ``part`` with their labels so far) and its reviews:
    those of its listed officers from its date to the next list's."""
    when, k = header.date, int(header.k)
    listed = part[part["rank"].notna() & (part["rank"] <= k)]
    top = part[part["rank_all"] <= k]  # the model's own top k, cool-off or not
    matures = when + pd.DateOffset(months=months)
    seen = known_until + pd.Timedelta(days=1)
    share = float(np.clip((seen - when).days / max((matures - when).days, 1), 0, 1))
    # an intervention given within the cool-off before the list still acts in its window
    treated = intervened(reviews, set(listed["entity_id"]) | set(top["entity_id"]),
                         when - pd.Timedelta(days=int(header.cool_off_days)), matures)
    p_all, labelled, positives = precision(listed["label"])
    p_untreated, _, _ = precision(listed.loc[~listed["entity_id"].isin(treated), "label"])
    p_model, n_model, hits = precision(top["label"])
    p_model_untreated, _, _ = precision(top.loc[~top["entity_id"].isin(treated), "label"])
    own = reviews[(reviews["review_date"] >= when)
                  & reviews["entity_id"].isin(set(listed["entity_id"]))]
    if following is not None:
        own = own[own["review_date"] < following]
    agreed = agreement(own)
    return {"date": f"{when:%Y-%m-%d}", "as_of_date": when, "list_id": int(header.id),
            "k": k, "model_group_id": int(header.model_group_id), "listed": len(listed),
            "matured": matures <= seen, "matures": matures, "matured_share": share,
            "precision": p_all, "labelled": labelled, "positives": positives,
            "intervened": int(listed["entity_id"].isin(treated).sum()),
            "precision_untreated": p_untreated, "model_precision": p_model,
            "model_precision_untreated": p_model_untreated,
            "model_labelled": n_model, "model_positives": hits,
            "model_intervened": int(top["entity_id"].isin(treated).sum()),
            "p_value": float("nan"), "agreement_rate": agreed["rate"],
            "reviews": agreed["reviews"]}, own


def _list_rows(row: dict[str, Any], agreed: dict[str, Any]) -> list[dict[str, Any]]:
    subject, day = f"top-{row['k']}", row["date"]
    out = [_metric("list_precision", subject, day, "precision", row["precision"],
                      row["labelled"], {"matured": bool(row["matured"]),
                                        "matures": f"{row['matures']:%Y-%m-%d}",
                                        "model_group_id": row["model_group_id"],
                                        "basis": row["basis"]})]
    out += [_metric("list_precision", subject, day, name, row[name]) for name in (
        "precision_untreated", "model_precision", "model_precision_untreated",
        "matured_share", "listed", "labelled", "positives", "intervened", "model_labelled",
        "model_positives", "model_intervened", "p_value")]
    out += [_metric("agreement", "reviews", day, name, agreed[name])
            for name in ("rate", "agree", "disagree", "unsure", "reviews")]
    return out


def _fairness(project: TemporalProject, officers: pd.DataFrame, part: pd.DataFrame,
              row: dict[str, Any], judged: bool, result: ListMonitorResult,
              metrics: list[dict[str, Any]]) -> list[Alert]:
    matured, day = bool(row["matured"]), row["date"]
    audit, requirements = list_fairness(project, officers, part, row["as_of_date"], row["k"],
                                        matured)
    result.list_fairness[row["as_of_date"]] = requirements
    if audit is not None:
        for g in audit.groups.itertuples(index=False):
            subject = f"{g.attribute}: {g.group}"
            metrics.append(_metric("list_fairness_group", subject, day, "selection_rate",
                                      g.pprev, g.n))
            if matured:
                metrics.append(_metric("list_fairness_group", subject, day, "precision",
                                          g.precision, g.pp))
    found = []
    for r in requirements:
        name = r.requirement.name
        # 1 met, 0 not met, none when inconclusive or without enough data (the summary says
        # which); only a gap the data support (a failing unit) raises the alert
        metrics.append(_metric("list_fairness", name, day, "passed",
                                  1.0 if r.passed else 0.0 if r.failing else None,
                                  row["listed"], {"summary": r.summary, "status": r.status,
                                                  "matured": matured}))
        if judged and r.failing:
            worst = max(r.failing, key=lambda o: o.gap_pp)
            found.append(Alert("fairness", name, "gap_pp", worst.gap_pp,
                               r.requirement.max_gap_pp, "critical", day,
                               f"fairness requirement not met by the list of {day}"
                               f"{'' if matured else ' (selection rates; outcomes pending)'}: "
                               f"{name}: {r.summary}"))
    return found


def _stability(project: TemporalProject, headers: pd.DataFrame, scores: dict[Any, pd.Series],
               stored: dict[str, Any], result: ListMonitorResult,
               metrics: list[dict[str, Any]], window: tuple[pd.Timestamp, pd.Timestamp]
               ) -> list[Alert]:
    """Every list against the one before it (all scored officers, as the model ranked them:
    the cool-off is policy, not model churn); the pairs whose newer list falls in the window
    are judged against the pairs before them. ``stored``: the (jaccard, spearman, common
    officers) the last pass stored, by pair, for the pairs not computed again (``scores``
    holds the lists of the others)."""
    dates = list(headers["date"])
    if len(dates) < 2:
        result.notes.append("list stability: fewer than two production lists")
        return []
    k = int(headers["k"].iloc[-1])
    cfg = project.monitoring.stability.model_copy(update={"k": k})
    rows = []
    for before, after in pairwise(dates):
        label = f"{before:%Y-%m-%d}/{after:%Y-%m-%d}"
        if label in stored:
            jaccard, spearman, common = stored[label]
            rows.append({"previous_date": before, "as_of_date": after, "k": k,
                         "jaccard": np.nan if jaccard is None else jaccard,
                         "spearman": np.nan if spearman is None else spearman,
                         "spearman_top_k": np.nan, "common_entities": common, "pair": label})
        else:
            rows.append(stability_pairs({before: scores[before], after: scores[after]},
                                        k).iloc[0].to_dict())
    pairs = pd.DataFrame(rows)
    result.stability = pairs
    checksums = dict(zip(headers["date"], headers["data_checksum"], strict=True))
    found: list[Alert] = []
    for i, pair in enumerate(pairs.itertuples(index=False)):
        for metric in ("jaccard", "spearman"):
            metrics.append(_metric("stability", f"top-{k}", pair.pair, metric,
                                      getattr(pair, metric), pair.common_entities))
        if not window[0] < pair.as_of_date <= window[1]:
            continue
        found += churn_alerts(cfg, pairs, i, both_sides=True)
        before, after = scores[pair.previous_date], scores[pair.as_of_date]
        if set(before.index) == set(after.index) and np.allclose(
                before.sort_index().to_numpy(), after.sort_index().to_numpy(), rtol=0,
                atol=1e-12):
            same = checksums[pair.previous_date] == checksums[pair.as_of_date]
            found.append(Alert(
                "inputs", f"top-{k} list", "identical_list", 1.0, None, "warning", pair.pair,
                f"every officer's score on the list of {pair.as_of_date:%Y-%m-%d} equals the "
                f"list of {pair.previous_date:%Y-%m-%d}"
                + (" and the event tables read were the same (same checksum)" if same else "")
                + ": have the inputs stopped updating?"))
    return found
