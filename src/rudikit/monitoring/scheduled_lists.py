"""Production lists of a temporal project: ``rudi score`` makes the list of an as-of date from
the sources as they are now, with the deployed model group.

Per date: the as-of features of every officer active that day (the same
:func:`rudikit.features.asof.build.build_features` the development run used, so a list equals the
development prediction of the same model for the same date), the deployed model's scores,
the officers in their cool-off after a review set aside, the top reasons of the listed ones, and
each listed officer's rank change against the nearest earlier production list a day, week,
month, quarter and year before. Each list is stored in one transaction, once per date.

The schedule (``production`` of ``rudi.yaml``) is a start date and a frequency; ``--through``
fills every scheduled date without a list, oldest first, so a missed night is made up in order.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.offsets import DateOffset
from sqlalchemy.engine import Engine

from rudikit.config import TemporalProject
from rudikit.data.event_tables import ENTITY, load_event_tables
from rudikit.data.sources import LoadedSource
from rudikit.evaluation.stability import HORIZONS, exclude_reviewed, rank_changes
from rudikit.features.asof.build import build_features
from rudikit.features.asof.defaults import DEFAULT_STATES, event_specs
from rudikit.features.asof.specs import FeatureError
from rudikit.features.readable import percentile
from rudikit.service.deploy import LoadedModel, load_deployed_model
from rudikit.service.errors import ServiceError
from rudikit.store.list_tables import load_reviews, record_production_list
from rudikit.store.queries import lists as lists_q
from rudikit.store.queries import runs as runs_q

FREQUENCIES = {"daily": DateOffset(days=1), "weekly": DateOffset(weeks=1),
               "monthly": DateOffset(months=1)}
#: How many as-of dates one feature build covers when filling a schedule.
DATES_PER_BUILD = 12


class ScoreError(ValueError):
    """No list can be made for that date (the message names the date, table or setting)."""


@dataclass
class ListModel:
    """The deployed model a list is scored with, checked to be a model of this project."""

    loaded: LoadedModel
    columns: list[str]
    first_test_date: pd.Timestamp


@dataclass
class ScoredList:
    as_of: pd.Timestamp
    list_id: int | None  # None when a list for that date already existed
    scored: int
    excluded: int
    k: int
    top: pd.DataFrame  # entity_id, score, rank, rank_all, reasons
    note: str = ""


@dataclass
class ScoringResult:
    model: ListModel
    lists: list[ScoredList] = field(default_factory=list)
    skipped: list[pd.Timestamp] = field(default_factory=list)  # already had a list
    seconds: dict[str, float] = field(default_factory=dict)


# --- What is deployed ------------------------------------------------------------------------


def list_model(engine: Engine, project: TemporalProject, project_dir: Path | None = None
               ) -> ListModel:
    """The live deployment's model, if it is a list model this project can score (its
    artefact found under ``project_dir``)."""
    try:
        loaded = load_deployed_model(engine, explained=False, project_dir=project_dir)
    except ServiceError as exc:
        raise ScoreError(str(exc)) from None
    if loaded.groups is not None:
        raise ScoreError(f"deployment {loaded.deployment_id} is a mitigated case model (per-group "
                         "thresholds); a temporal project's list needs a model of its own run")
    with engine.connect() as conn:
        model = runs_q.model(conn, loaded.model_id)
        group = runs_q.model_group(conn, loaded.model_group_id)
    if group["label"] != project.temporal.label or model["test_start"] is None:
        raise ScoreError(
            f"deployment {loaded.deployment_id} is model group {loaded.model_group_id} "
            f"({group['algorithm']}, label {group['label']!r}), not a model of this temporal "
            f"project (label {project.temporal.label!r}); deploy one of the groups `rudi run "
            f"{project.name}` made")
    columns = list(loaded.pipeline.named_steps["encode"].input_columns)
    first = pd.Timestamp(model["test_start"]).tz_localize(None) \
        if pd.Timestamp(model["test_start"]).tzinfo else pd.Timestamp(model["test_start"])
    return ListModel(loaded, columns, first.normalize())


# --- The schedule ----------------------------------------------------------------------------


def _naive(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert(None) if stamp.tzinfo else stamp).normalize()


def scheduled_dates(anchor: pd.Timestamp, frequency: str, through: pd.Timestamp
                    ) -> list[pd.Timestamp]:
    """``anchor``, ``anchor`` + 1 period, ... up to ``through`` (calendar months for monthly:
    the 31st is followed by the last day of shorter months, as pandas' DateOffset does)."""
    step = FREQUENCIES[frequency]
    out, i = [], 0
    while (when := anchor + step * i) <= through:
        out.append(pd.Timestamp(when))
        i += 1
    return out


def stored_dates(engine: Engine, project: TemporalProject) -> list[pd.Timestamp]:
    headers = lists_q.production_list_headers(engine, project.name)
    return [] if headers.empty else [_naive(d) for d in headers["as_of_date"]]


def plan(project: TemporalProject, stored: Sequence[pd.Timestamp], first_test_date: pd.Timestamp,
         *, as_of: pd.Timestamp | None = None, through: pd.Timestamp | None = None
         ) -> list[pd.Timestamp]:
    """The dates to score: ``as_of`` alone (refused off the schedule or after a gap), or every
    scheduled date up to ``through`` without a list. Already stored dates are left out."""
    schedule = project.production
    done = set(stored)
    if schedule.start is not None:
        anchor = pd.Timestamp(schedule.start)
    elif done:
        anchor = min(done)
    else:  # the first list starts the schedule; with --through, the model's first test date
        anchor = as_of if as_of is not None else first_test_date
    if through is not None:
        return [d for d in scheduled_dates(anchor, schedule.frequency, through) if d not in done]
    assert as_of is not None
    if as_of in done:
        return []
    if as_of < anchor:
        raise ScoreError(f"--as-of {as_of:%Y-%m-%d} is before {anchor:%Y-%m-%d}, where the "
                         "schedule starts (production.start / the first list)")
    dates = scheduled_dates(anchor, schedule.frequency, as_of)
    if dates[-1] != as_of:
        after = scheduled_dates(anchor, schedule.frequency, as_of + FREQUENCIES[
            schedule.frequency])[-2:]
        raise ScoreError(f"--as-of {as_of:%Y-%m-%d} is not on the {schedule.frequency} schedule "
                         f"that starts {anchor:%Y-%m-%d} (production.start / the first list); "
                         "nearest scheduled dates: "
                         + ", ".join(f"{d:%Y-%m-%d}" for d in after))
    if done:
        newest = max(done)
        missing = [d for d in dates if newest < d < as_of]
        if missing:
            raise ScoreError(f"schedule gap: no list for {missing[0]:%Y-%m-%d}"
                             + (f" (and {len(missing) - 1} more scheduled dates)"
                                if len(missing) > 1 else "")
                             + f" between the newest list ({newest:%Y-%m-%d}) and --as-of "
                             f"{as_of:%Y-%m-%d}; `rudi score --through {as_of:%Y-%m-%d}` fills "
                             "them in order")
    return [as_of]


def newest_record(loaded: Sequence[LoadedSource]) -> tuple[pd.Timestamp | None, str]:
    """The newest dated record over the event tables, and its table."""
    best: tuple[pd.Timestamp | None, str] = (None, "")
    for source in loaded:
        span = source.span
        if span is None or span[1] is None or pd.isna(span[1]):
            continue
        newest = _naive(span[1])
        if best[0] is None or newest > best[0]:
            best = (newest, source.name)
    return best


def check_dates(project: TemporalProject, dates: Sequence[pd.Timestamp], model: ListModel,
                loaded: Sequence[LoadedSource]) -> None:
    """Refuse a date before the training data or the model's first test date, or after the
    newest source record (a list of the future would be built from nothing)."""
    start = pd.Timestamp(project.temporal.timechop.feature_start_time)
    newest, table = newest_record(loaded)
    for when in dates:
        if when < start:
            raise ScoreError(f"--as-of {when:%Y-%m-%d} is before the training data "
                             f"(temporal.timechop.feature_start_time {start:%Y-%m-%d})")
        if when < model.first_test_date:
            raise ScoreError(
                f"--as-of {when:%Y-%m-%d} is before {model.first_test_date:%Y-%m-%d}, the first "
                f"date the deployed model (model {model.loaded.model_id}) was tested on: it "
                "learnt from outcomes up to then, so its list of an earlier date would be "
                "judged on what it was trained with")
        if newest is not None and when > newest + pd.Timedelta(days=1):
            raise ScoreError(f"--as-of {when:%Y-%m-%d} is after the newest source record "
                             f"({newest:%Y-%m-%d}, table {table}): refresh the sources first")


def data_checksum(loaded: Sequence[LoadedSource]) -> str:
    """One checksum over the event tables read (each table's own checksum, by name)."""
    text = "\n".join(f"{s.name}:{s.checksum}" for s in sorted(loaded, key=lambda s: s.name))
    return hashlib.sha256(text.encode()).hexdigest()


# --- One list --------------------------------------------------------------------------------


def _reasons(pipeline: Any, rows: pd.DataFrame, n: int) -> tuple[list[Any], str]:
    """Per row, its top ``n`` reasons as [{feature, contribution, value}], or Nones and why."""
    from rudikit.explain import ExplainError, explain, top_reasons

    if n == 0 or rows.empty:
        return [None] * len(rows), ""
    try:
        explanation = explain(pipeline, rows, background=None)
    except ExplainError as exc:
        return [None] * len(rows), f"no reasons: {exc}"
    found = top_reasons(explanation, n)
    out: list[Any] = [[] for _ in range(len(rows))]
    for r in found.itertuples(index=False):
        out[int(r.row)].append({"feature": str(r.feature), "contribution": float(r.contribution),
                                "value": r.value})
    return out, ""


def _placed(reasons: list[dict[str, Any]] | None, rows: pd.DataFrame, i: int
            ) -> list[dict[str, Any]] | None:
    """The reasons with ``percentile``: where the officer's value of a numeric feature stands
    among every officer scored that day (what "top 2% of officers" on the list says)."""
    if not reasons:
        return reasons
    out = []
    for reason in reasons:
        column = rows.get(reason["feature"])
        if column is not None and pd.api.types.is_numeric_dtype(column) \
                and not pd.api.types.is_bool_dtype(column):
            place = percentile(column.to_numpy(dtype=float, na_value=np.nan), column.iat[i])
            if place is not None:
                reason = {**reason, "percentile": round(place, 2)}
        out.append(reason)
    return out


def score_one(features: pd.DataFrame, model: ListModel, reviews: pd.DataFrame,
              as_of: pd.Timestamp, k: int, cool_off_days: int, reasons: int
              ) -> tuple[pd.DataFrame, str]:
    """Every active officer of ``as_of``: entity_id, score, rank_all, rank (None in the cool-off),
    reviewed_on and, for the listed top ``k``, reasons."""
    rows = features[features["as_of_date"] == as_of].reset_index(drop=True)
    if rows.empty:
        raise ScoreError(f"--as-of {as_of:%Y-%m-%d}: no officer is active on that date")
    pipeline = model.loaded.pipeline
    entity = rows[ENTITY].astype("string").to_numpy()
    score = pipeline.predict_proba(rows[model.columns])[:, 1]
    everyone = exclude_reviewed(pd.Series(score, index=entity), reviews, as_of, cool_off_days)
    frame = pd.DataFrame({"entity_id": entity, "score": score})
    order = frame.sort_values(["score", "entity_id"], ascending=[False, True], kind="stable")
    frame.loc[order.index, "rank_all"] = np.arange(1, len(frame) + 1)
    frame["rank"] = frame["entity_id"].map(everyone.set_index("entity_id")["rank"])
    kept = set(everyone["entity_id"])
    in_cool_off = reviews[reviews["review_date"] <= as_of].groupby("entity_id")["review_date"] \
        .max() if len(reviews) else pd.Series(dtype="datetime64[ns]")
    frame["reviewed_on"] = [in_cool_off.get(e) if e not in kept else None for e in entity]
    listed = frame["rank"].notna() & (frame["rank"] <= k)
    position = np.flatnonzero(listed.to_numpy())
    found, note = _reasons(pipeline, rows.iloc[position][model.columns].reset_index(drop=True),
                           reasons)
    frame["reasons"] = None
    frame["reasons"] = frame["reasons"].astype(object)
    for i, value in zip(position, found, strict=True):
        frame.at[i, "reasons"] = _placed(value, rows, i)
    frame["rank_all"] = frame["rank_all"].astype(int)
    frame["rank"] = frame["rank"].astype("Int64")
    return frame.sort_values("rank_all").reset_index(drop=True), note


def _previous_scores(engine: Engine, headers: pd.DataFrame, as_of: pd.Timestamp,
                     cache: dict[int, pd.Series]) -> dict[pd.Timestamp, pd.Series]:
    """entity -> score of the nearest earlier list at each horizon (what rank changes read)."""
    if headers.empty:
        return {}
    dates = pd.Series([_naive(d) for d in headers["as_of_date"]], index=headers["id"])
    wanted: set[int] = set()
    for offset in HORIZONS.values():
        earlier = dates[dates <= as_of - offset]
        if len(earlier):
            wanted.add(int(earlier.idxmax()))
    load = [i for i in wanted if i not in cache]
    if load:
        entries = lists_q.production_list_entries(engine, load)
        for list_id, part in entries.groupby("list_id"):
            cache[int(list_id)] = pd.Series(part["score"].to_numpy(dtype=float),
                                            index=part["entity_id"].astype(str).to_numpy())
    return {dates[i]: cache[i] for i in wanted if i in cache}


def score_lists(project: TemporalProject, project_dir: Path, engine: Engine, *, by: str,
                as_of: datetime | None = None, through: datetime | None = None,
                tables: dict[str, pd.DataFrame] | None = None,
                loaded: list[LoadedSource] | None = None,
                say: Callable[[str], None] | None = None,
                tick: Callable[[int, int], None] | None = None) -> ScoringResult:
    """Score ``as_of`` (one date) or every missing scheduled date up to ``through``; store each
    list in its own transaction. ``tables``/``loaded`` reuse event tables already loaded."""
    if (as_of is None) == (through is None):
        raise ScoreError("give --as-of DATE (one list) or --through DATE (every scheduled date "
                         "up to it)")
    say = say or (lambda _: None)
    started = time.perf_counter()
    model = list_model(engine, project, project_dir)
    if tables is None or loaded is None:
        tables, loaded = load_event_tables(project, project_dir)
    seconds = {"load": time.perf_counter() - started}
    stored = stored_dates(engine, project)
    if as_of is not None:  # a bad date is named before any schedule question
        check_dates(project, [_naive(as_of)], model, loaded)
    todo = plan(project, stored, model.first_test_date,
                as_of=None if as_of is None else _naive(as_of),
                through=None if through is None else _naive(through))
    result = ScoringResult(model, seconds=seconds)
    if as_of is not None and not todo:
        result.skipped.append(_naive(as_of))
        return result
    check_dates(project, todo, model, loaded)
    schedule, config = project.production, project.temporal
    k = schedule.top_k or config.top_k
    cool_off = config.cool_off_days if schedule.cool_off_days is None else schedule.cool_off_days
    checksum = data_checksum(loaded)
    newest, _ = newest_record(loaded)
    specs = event_specs(config.complete_from)
    cache: dict[int, pd.Series] = {}
    for begin in range(0, len(todo), DATES_PER_BUILD):
        dates = todo[begin:begin + DATES_PER_BUILD]
        clock = time.perf_counter()
        try:
            features = build_features(tables, dates, specs, DEFAULT_STATES,
                                      cache_dir=project_dir / ".rudi" / "cache").frame
        except FeatureError as exc:
            raise ScoreError(f"data.sources[0]: {exc}") from None
        seconds["features"] = seconds.get("features", 0.0) + time.perf_counter() - clock
        missing = [c for c in model.columns if c not in features.columns]
        if missing:
            raise ScoreError(f"deployment {model.loaded.deployment_id} reads {', '.join(missing)}, "
                             "which the as-of features of these sources do not have")
        for when in dates:
            clock = time.perf_counter()
            reviews = load_reviews(engine)
            frame, note = score_one(features, model, reviews, when, k, cool_off,
                                    schedule.reasons)
            headers = lists_q.production_list_headers(engine, project.name)
            previous = _previous_scores(engine, headers, when, cache)
            listed = frame[frame["rank"].notna() & (frame["rank"] <= k)]
            current = pd.Series(frame["score"].to_numpy(), index=frame["entity_id"].to_numpy())
            changes = rank_changes({**previous, when: current}, dates=[when])
            changes = changes[changes["entity_id"].isin(set(listed["entity_id"]))]
            header = {"project": project.name, "deployment_id": model.loaded.deployment_id,
                      "model_id": model.loaded.model_id,
                      "model_group_id": model.loaded.model_group_id,
                      "as_of_date": when.to_pydatetime().replace(tzinfo=UTC), "k": k,
                      "cool_off_days": cool_off, "scored": len(frame),
                      "excluded": int(frame["rank"].isna().sum()), "data_checksum": checksum,
                      "newest_record": None if newest is None
                      else newest.to_pydatetime().replace(tzinfo=UTC), "scored_by": by}
            list_id = record_production_list(engine, header, frame, changes)
            seconds["scoring"] = seconds.get("scoring", 0.0) + time.perf_counter() - clock
            if list_id is None:
                result.skipped.append(when)
                continue
            cache[list_id] = current
            top = listed[["entity_id", "score", "rank", "rank_all", "reasons"]]
            result.lists.append(ScoredList(when, list_id, len(frame), header["excluded"], k,
                                           top.reset_index(drop=True), note))
            say(f"{when:%Y-%m-%d}: list {list_id}, {len(frame):,} officers scored, "
                f"{header['excluded']} in their cool-off")
            if tick:
                tick(len(result.lists) + len(result.skipped), len(todo))
    seconds["total"] = time.perf_counter() - started
    return result
