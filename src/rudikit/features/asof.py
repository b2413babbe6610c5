"""As-of-date features and labels for entities with event histories (officers, here), in DuckDB.

A row is one (officer, as-of date): what a supervisor could have known at the start of that day.
Features only read events dated strictly before the as-of date, as in triage; labels read the
window that starts on it, ``[as_of, as_of + window)``, so no event is both a feature and a label.
Attributes that are settled later are masked until then: a complaint counts from its complaint
date, but its finding is ``open_unknown`` until its closing date has passed.

Features are declared, not coded: an :class:`EventSpec` names a table, its date column, the
windows and the categories or flags to count, and one SQL generator serves every event table.
Each block is cached as Parquet in a folder named by the SHA-256 of the spec, the as-of dates and
fingerprints of the tables it reads, so a rerun with the same inputs reads the file and a changed
input (one more complaint) recomputes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from rudikit.config import Completeness
from rudikit.data.cpdb.files import ALLEGATION_CODES, FINDING_CODES, FORCE_CODES
from rudikit.data.sources import table_fingerprint

#: Bumped whenever the SQL below changes meaning, so old cache entries are not reused.
CODE_VERSION = "asof-2"

Metric = Literal["count", "rate", "recency"]

#: Windows by name; ``all`` is the whole history before the as-of date.
WINDOW_MONTHS: dict[str, int | None] = {
    "1month": 1, "3month": 3, "6month": 6, "1year": 12, "2year": 24, "3year": 36, "5year": 60,
    "10year": 120, "all": None,
}

#: Shortest exposure a rate divides by, so an officer two days into the job with one complaint
#: is not given a rate of 180 a year.
MIN_EXPOSURE_DAYS = 30


class FeatureError(ValueError):
    pass


@dataclass(frozen=True)
class Category:
    """A column whose listed values are each counted; ``known_from`` names a date column before
    which the value is not yet known (a finding before the case is closed), and is then
    counted as ``unknown_value``."""

    column: str
    values: tuple[str, ...]
    label: str | None = None
    known_from: str | None = None
    unknown_value: str = "open_unknown"

    @property
    def prefix(self) -> str:
        return self.label or self.column

    @property
    def groups(self) -> tuple[str, ...]:
        extra = (self.unknown_value,) if self.known_from else ()
        return tuple(self.values) + tuple(v for v in extra if v not in self.values)


@dataclass(frozen=True)
class EventSpec:
    """Counts, rates and recency of one event table's events per officer and as-of date.

    ``id_column`` makes counts distinct (a complaint with three allegations counts once);
    ``flags`` are boolean columns counted like categories; ``data_start`` is the first day the
    source covers, so a 5-year rate in 2006 of data that start in 2004 divides by two years.

    ``complete_from`` is the first day from which every kind of event is recorded, when the
    source held only some kinds before it (``complete_groups``, e.g. ``cat_excessive_force``:
    the Chicago complaints before 2007 are almost all excessive-force allegations). A count or
    rate of any other group over a window that starts before that day would be an undercount
    that means less the further back the window reaches, so it is missing instead. Without this
    a 5-year count is complete on the 2013 list and short on the 2010 list that trained its
    model, and the model learns thresholds the later years do not share. Recency is not masked:
    the last recorded event is still the last one of its group since that day.
    """

    name: str
    table: str
    date_column: str
    windows: tuple[str, ...] = ("6month", "1year", "5year", "all")
    id_column: str | None = None
    categories: tuple[Category, ...] = ()
    flags: tuple[str, ...] = ()
    metrics: tuple[Metric, ...] = ("count", "rate", "recency")
    data_start: str | None = None
    complete_from: str | None = None
    complete_groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.complete_groups and not self.complete_from:
            raise FeatureError(f"{self.name}.complete_groups: needs complete_from (the day from "
                               "which the other groups are recorded)")
        groups = event_group_names(self) if self.complete_groups else []
        unknown = sorted(set(self.complete_groups) - set(groups))
        if unknown:
            raise FeatureError(f"{self.name}.complete_groups: no group {', '.join(unknown)} "
                               f"(groups: {', '.join(groups)})")
        for window in self.windows:
            if window not in WINDOW_MONTHS:
                raise FeatureError(f"{self.name}.windows: unknown window {window!r} "
                                   f"(known: {', '.join(WINDOW_MONTHS)})")
        for metric in self.metrics:
            if metric not in ("count", "rate", "recency"):
                raise FeatureError(f"{self.name}.metrics: unknown metric {metric!r}")


@dataclass(frozen=True)
class StateSpec:
    """The value an officer held on the as-of date, from a dated history: the latest row that
    started before it (and, with ``end_column``, had not ended), plus the days it had lasted."""

    name: str
    table: str
    value_column: str
    start_column: str
    end_column: str | None = None


@dataclass(frozen=True)
class Cohort:
    """Who is scored on an as-of date: officers appointed before it and not yet resigned.

    The roster has no resignation date for about 1,150 officers; ``max_age`` keeps one
    appointed in 1946 from counting as active in 2015 (Chicago retires officers in their
    sixties)."""

    table: str = "officers"
    entity: str = "officer_uid"
    start_column: str = "appointed_date"
    end_column: str | None = "resignation_date"
    birth_year_column: str | None = "birth_year"
    max_age: int | None = 65


@dataclass(frozen=True)
class LabelSpec:
    """A positive label: at least one matching event in ``[as_of, as_of + window_months)``.

    ``where`` is a DuckDB predicate over the table's columns. Windows that run past the last
    day the source covers (``data_end``; by default the table's latest date) are censored:
    the label is missing, never 0.
    """

    name: str
    table: str
    date_column: str
    window_months: int = 12
    where: str | None = None
    data_end: str | None = None
    description: str = ""


# --- The rudikit EIS defaults (Chicago CPDB tables from rudikit.data.cpdb) ---------------------

COMPLAINTS = EventSpec(
    name="cmp", table="complaints", date_column="complaint_date", id_column="cr_id",
    categories=(
        Category("allegation_category", ALLEGATION_CODES, label="cat"),
        Category("final_finding", FINDING_CODES, label="finding", known_from="closed_date"),
    ),
    data_start="2000-01-01",
)
USE_OF_FORCE = EventSpec(
    name="uof", table="use_of_force", date_column="trr_date", id_column="trr_id",
    categories=(Category("highest_force", FORCE_CODES, label="top"),),
    flags=("any_injury", "subject_injured", "subject_alleged_injury", "officer_injured",
           "subject_armed", "force_taser", "force_firearm", "force_impact_weapon",
           "force_mechanical", "force_chemical"),
    data_start="2004-01-01",
)
UNIT_CHANGES = EventSpec(
    name="unit", table="unit_history", date_column="unit_start_date",
    flags=("is_change",), metrics=("count", "rate", "recency"),
    windows=("1year", "5year", "all"),
)
DEFAULT_SPECS: tuple[EventSpec, ...] = (COMPLAINTS, USE_OF_FORCE, UNIT_CHANGES)
DEFAULT_STATES: tuple[StateSpec, ...] = (
    StateSpec("unit", "unit_history", "unit", "unit_start_date", "unit_end_date"),
    StateSpec("rank", "rank_history", "rank", "rank_date"),
)

#: (a) Any complaint naming the officer (every case type, every finding).
ANY_COMPLAINT = LabelSpec(
    name="any_complaint", table="complaints", date_column="complaint_date",
    description="at least one complaint (any case type, any finding) with a complaint date in "
                "the window",
)
#: (b) A complaint that was eventually sustained. Rare (about 3% of allegations), and windows
#: near the data's end are undercounted because their investigations may still be open.
SUSTAINED_COMPLAINT = LabelSpec(
    name="sustained_complaint", table="complaints", date_column="complaint_date",
    where="final_finding = 'sustained'",
    description="at least one complaint dated in the window whose final finding (as of the "
                "data's end, 2023-08) is sustained",
)
#: (c) A use-of-force report with an injury: the officer reported injured, or a subject was
#: injured, or a subject alleged an injury (TRR-officers ``injured``, TRR-subjects ``injured``
#: and ``alleged_injury``).
INJURY_USE_OF_FORCE = LabelSpec(
    name="injury_use_of_force", table="use_of_force", date_column="trr_date",
    where="any_injury",
    description="at least one use-of-force report (TRR) in the window in which the officer was "
                "injured, a subject was injured, or a subject alleged an injury",
)
DEFAULT_LABELS: tuple[LabelSpec, ...] = (ANY_COMPLAINT, SUSTAINED_COMPLAINT, INJURY_USE_OF_FORCE)


def event_specs(complete_from: Mapping[str, Completeness]) -> tuple[EventSpec, ...]:
    """The default event feature blocks with a temporal section's completeness dates. Block and
    group names are checked here, where the specs are known (``rudi validate`` calls this before
    any fit): a FeatureError names the key path (``temporal.complete_from.cmp...``)."""
    specs = {spec.name: spec for spec in DEFAULT_SPECS}
    for name, completeness in complete_from.items():
        where = f"temporal.complete_from.{name}"
        if name not in specs:
            raise FeatureError(f"{where}: no event feature block of that name (known: "
                               f"{', '.join(specs)})")
        groups = event_group_names(specs[name])
        for i, group in enumerate(completeness.recorded_before):
            if group not in groups:
                raise FeatureError(f"{where}.recorded_before[{i}]: no group {group!r} (groups: "
                                   f"{', '.join(groups)})")
    out = []
    for spec in DEFAULT_SPECS:
        done = complete_from.get(spec.name)
        if done is not None:
            spec = replace(spec, complete_from=done.date.isoformat(),
                           complete_groups=tuple(done.recorded_before))
        out.append(spec)
    return tuple(out)


# --- Helpers ---------------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def as_of_index(as_of_dates: Sequence[object]) -> pd.DatetimeIndex:
    """Sorted unique as-of dates at day precision."""
    dates = pd.DatetimeIndex(pd.to_datetime(list(as_of_dates))).normalize()
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    return dates.unique().sort_values()


def monthly_as_of_dates(start: object, end: object) -> list[pd.Timestamp]:
    """First day of every month from ``start`` to ``end`` inclusive."""
    return list(pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="MS"))


def cache_key(kind: str, spec: object, as_of_dates: pd.DatetimeIndex,
              fingerprints: Mapping[str, str]) -> str:
    payload = {
        "version": CODE_VERSION, "kind": kind, "spec": asdict(spec),  # type: ignore[call-overload]
        "as_of_dates": [d.strftime("%Y-%m-%d") for d in as_of_dates],
        "tables": dict(sorted(fingerprints.items())),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """A query's result as pandas, through Arrow (faster than ``.df()`` for wide results)."""
    return con.sql(sql).to_arrow_table().to_pandas()


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    return con


def _register(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    con.register(name, frame)


def _require(tables: Mapping[str, pd.DataFrame], name: str, columns: Sequence[str],
             where: str) -> pd.DataFrame:
    if name not in tables:
        raise FeatureError(f"{where}: no table {name!r} (tables: {', '.join(tables)})")
    frame = tables[name]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FeatureError(f"{where}: table {name!r} has no column(s) {', '.join(missing)}")
    return frame


# --- The cohort ------------------------------------------------------------------------------


def cohort_frame(tables: Mapping[str, pd.DataFrame], as_of_dates: Sequence[object],
                 cohort: Cohort = Cohort()) -> pd.DataFrame:
    """(entity, as_of_date, start date, birth year) of everyone active on each as-of date,
    sorted by date then entity."""
    cols = [cohort.entity, cohort.start_column]
    cols += [c for c in (cohort.end_column, cohort.birth_year_column) if c]
    officers = _require(tables, cohort.table, cols, "cohort")
    dates = as_of_index(as_of_dates)
    con = _connect()
    _register(con, "officers", officers[cols])
    _register(con, "dates", pd.DataFrame({"as_of_date": dates.astype("datetime64[s]")}))
    ent, start = _q(cohort.entity), _q(cohort.start_column)
    conditions = [f"o.{start} IS NOT NULL", f"CAST(o.{start} AS DATE) < d.as_of_date"]
    if cohort.end_column:
        end = _q(cohort.end_column)
        conditions.append(f"(o.{end} IS NULL OR CAST(o.{end} AS DATE) > d.as_of_date)")
    birth = "NULL"
    if cohort.birth_year_column:
        birth = f"o.{_q(cohort.birth_year_column)}"
        if cohort.max_age is not None:
            conditions.append(f"({birth} IS NULL OR year(d.as_of_date) - {birth} "
                              f"<= {int(cohort.max_age)})")
    sql = f"""
        SELECT o.{ent} AS {ent}, CAST(d.as_of_date AS DATE) AS as_of_date,
               CAST(o.{start} AS DATE) AS start_date, CAST({birth} AS INTEGER) AS birth_year
        FROM officers o CROSS JOIN (SELECT CAST(as_of_date AS DATE) AS as_of_date FROM dates) d
        WHERE {' AND '.join(conditions)}
        ORDER BY as_of_date, {ent}
    """
    out = con.execute(sql).df()
    con.close()
    out["as_of_date"] = out["as_of_date"].astype("datetime64[s]")
    return out.reset_index(drop=True)


# --- SQL generation --------------------------------------------------------------------------


def event_group_names(spec: EventSpec) -> list[str]:
    """The groups a spec counts (``all``, ``<category prefix>_<value>``, flags): the middle part
    of its feature names, as ``complete_groups`` names them."""
    return [group for group, _ in _event_groups(spec)[1]]


def _event_groups(spec: EventSpec) -> tuple[list[str], list[tuple[str, str]]]:
    """Per-event boolean columns (computed once per event in ``ev``) and, per feature group,
    the SQL condition on a joined (event, as-of date) row that puts the event in the group."""
    columns: list[str] = []
    groups: list[tuple[str, str]] = [("all", "TRUE")]
    for i, cat in enumerate(spec.categories):
        known = f"(e.__known_{i} IS NOT NULL AND e.__known_{i} < e.as_of_date)"
        for j, value in enumerate(cat.groups):
            parts = []
            if value in cat.values:
                flag = f"__c{i}_{j}"
                columns.append(f"bool_or(coalesce(CAST({_q(cat.column)} AS VARCHAR) = "
                               f"{_lit(value)}, FALSE)) AS {flag}")
                parts.append(f"({known} AND e.{flag})" if cat.known_from else f"e.{flag}")
            if cat.known_from and value == cat.unknown_value:
                parts.append(f"NOT {known}")
            groups.append((f"{cat.prefix}_{value}", " OR ".join(parts)))
    for k, flag in enumerate(spec.flags):
        columns.append(f"bool_or(coalesce(CAST({_q(flag)} AS BOOLEAN), FALSE)) AS __f{k}")
        groups.append((flag, f"e.__f{k}"))
    return columns, groups


def event_sql(spec: EventSpec, entity: str = "officer_uid") -> str:
    """The DuckDB query for one spec over registered views ``cohort`` and ``events``.

    Events are first collapsed to one row per (officer, id) — a complaint with three
    allegations is one complaint, in every category any of its allegations has — so the big
    (officer, as-of date, past event) join counts rows instead of distinct ids. A category with
    ``known_from`` is known once every row of the event has passed that date.
    """
    ent = _q(entity)
    date = _q(spec.date_column)
    ident = _q(spec.id_column) if spec.id_column else "row_number() OVER ()"
    columns, groups = _event_groups(spec)
    known = [
        f"CASE WHEN count({_q(cat.known_from)}) = count(*) "
        f"THEN max(CAST({_q(cat.known_from)} AS DATE)) END AS __known_{i}"
        if cat.known_from else f"NULL AS __known_{i}"
        for i, cat in enumerate(spec.categories)
    ]
    aggs, finals = [], [f"c.{ent}", "c.as_of_date"]
    for g, (group, cond) in enumerate(groups):
        for window in spec.windows:
            months = WINDOW_MONTHS[window]
            in_window = cond if months is None else (
                f"({cond}) AND e.__event_date >= e.as_of_date - INTERVAL {months} MONTH")
            raw = f"n{g}_{window}"
            aggs.append(f"sum(CASE WHEN {in_window} THEN 1 ELSE 0 END) AS {raw}")
            name = f"{spec.name}_{group}_{window}"
            count = f"coalesce(a.{raw}, 0)"
            rate = f"coalesce(a.{raw}, 0) / x.exposure_{window}"
            if spec.complete_from and group not in spec.complete_groups:
                count = f"CASE WHEN x.complete_{window} THEN {count} END"
                rate = f"CASE WHEN x.complete_{window} THEN {rate} END"
            if "count" in spec.metrics:
                finals.append(f"CAST({count} AS INTEGER) AS {_q(name + '_count')}")
            if "rate" in spec.metrics:
                finals.append(f"CAST({rate} AS FLOAT) AS {_q(name + '_rate')}")
        if "recency" in spec.metrics:
            aggs.append(f"max(CASE WHEN {cond} THEN e.__event_date END) AS last{g}")
            finals.append(f"CAST(date_diff('day', a.last{g}, c.as_of_date) AS INTEGER) "
                          f"AS {_q(spec.name + '_' + group + '_days_since')}")
    data_start = f"DATE {_lit(spec.data_start)}" if spec.data_start else "NULL"
    exposures = []
    for window in spec.windows:
        months = WINDOW_MONTHS[window]
        window_start = "NULL" if months is None else f"as_of_date - INTERVAL {months} MONTH"
        begin = f"CAST(greatest(start_date, {window_start}, {data_start}) AS DATE)"
        exposures.append(f"greatest(date_diff('day', {begin}, as_of_date), "
                         f"{MIN_EXPOSURE_DAYS}) / 365.25 AS exposure_{window}")
        if spec.complete_from:  # the window starts on or after the day recording was complete
            exposures.append(f"CAST(greatest(start_date, {window_start}) AS DATE) >= "
                             f"DATE {_lit(spec.complete_from)} AS complete_{window}")
    per_event = ", ".join([*known, *columns])
    return f"""
        WITH src AS (
            SELECT *, {ident} AS __id FROM events
            WHERE {date} IS NOT NULL AND {ent} IS NOT NULL
        ),
        ev AS (
            SELECT {ent}, __id, min(CAST({date} AS DATE)) AS __event_date, {per_event}
            FROM src GROUP BY {ent}, __id
        ),
        joined AS (
            SELECT c.as_of_date, e.*
            FROM cohort c JOIN ev e ON e.{ent} = c.{ent} AND e.__event_date < c.as_of_date
        ),
        agg AS (
            SELECT {ent}, as_of_date, {', '.join(aggs)}
            FROM joined e GROUP BY {ent}, as_of_date
        ),
        x AS (
            SELECT {ent}, as_of_date, {', '.join(exposures)} FROM cohort
        )
        SELECT {', '.join(finals)}
        FROM cohort c
        JOIN x ON x.{ent} = c.{ent} AND x.as_of_date = c.as_of_date
        LEFT JOIN agg a ON a.{ent} = c.{ent} AND a.as_of_date = c.as_of_date
        ORDER BY c.as_of_date, c.{ent}
    """


def state_sql(spec: StateSpec, entity: str = "officer_uid") -> str:
    """The latest value of a history before each as-of date, and how many days it had held."""
    ent = _q(entity)
    start = f"CAST(h.{_q(spec.start_column)} AS DATE)"
    alive = ""
    if spec.end_column:
        alive = (f" AND (h.{_q(spec.end_column)} IS NULL "
                 f"OR CAST(h.{_q(spec.end_column)} AS DATE) >= c.as_of_date)")
    return f"""
        WITH ranked AS (
            SELECT c.{ent}, c.as_of_date, CAST(h.{_q(spec.value_column)} AS VARCHAR) AS value,
                   {start} AS started,
                   row_number() OVER (PARTITION BY c.{ent}, c.as_of_date
                                      ORDER BY {start} DESC, value) AS rn
            FROM cohort c JOIN history h
              ON h.{ent} = c.{ent} AND {start} < c.as_of_date{alive}
        )
        SELECT c.{ent}, c.as_of_date, r.value AS {_q(spec.name)},
               CAST(date_diff('day', r.started, c.as_of_date) AS INTEGER)
                   AS {_q(spec.name + '_days')}
        FROM cohort c LEFT JOIN ranked r
          ON r.{ent} = c.{ent} AND r.as_of_date = c.as_of_date AND r.rn = 1
        ORDER BY c.as_of_date, c.{ent}
    """


# --- Building --------------------------------------------------------------------------------


@dataclass
class Block:
    """One computed (or cached) block of features."""

    name: str
    key: str
    path: Path | None
    cached: bool
    seconds: float
    rows: int
    columns: list[str] = field(default_factory=list)
    table: str = ""  # the source table it reads


@dataclass
class FeatureSet:
    """The feature matrix (one row per officer and as-of date) and how each block was made."""

    frame: pd.DataFrame
    blocks: list[Block]

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in ("officer_uid", "as_of_date")]

    def table_columns(self) -> dict[str, list[str]]:
        """Source table -> the feature columns computed from it (the cohort's tenure and age
        are not listed: they define who is scored)."""
        out: dict[str, list[str]] = {}
        for block in self.blocks:
            out.setdefault(block.table, []).extend(block.columns)
        return out


def _run_cached(kind: str, spec: EventSpec | StateSpec, dates: pd.DatetimeIndex,
                fingerprints: Mapping[str, str], cache_dir: Path | None,
                compute: Callable[[], pd.DataFrame]) -> tuple[pd.DataFrame, Block]:
    key = cache_key(kind, spec, dates, fingerprints)
    started = time.perf_counter()
    path = cache_dir / key / "features.parquet" if cache_dir else None
    if path is not None and path.exists():
        frame = pd.read_parquet(path)
        cached = True
    else:
        frame = compute()
        cached = False
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            frame.to_parquet(tmp, index=False)
            tmp.replace(path)
            (path.parent / "spec.json").write_text(json.dumps(
                {"kind": kind, "spec": asdict(spec),  # type: ignore[call-overload]
                 "as_of_dates": [d.strftime("%Y-%m-%d") for d in dates],
                 "tables": dict(fingerprints), "version": CODE_VERSION},
                indent=2, default=str), encoding="utf-8")
    block = Block(spec.name, key, path, cached, time.perf_counter() - started, len(frame),
                  list(frame.columns[2:]), spec.table)
    return frame, block


def _event_block(spec: EventSpec, tables: Mapping[str, pd.DataFrame], cohort: pd.DataFrame,
                 entity: str) -> pd.DataFrame:
    needed = [entity, spec.date_column, *spec.flags]
    needed += [spec.id_column] if spec.id_column else []
    for cat in spec.categories:
        needed += [cat.column] + ([cat.known_from] if cat.known_from else [])
    events = _require(tables, spec.table, list(dict.fromkeys(needed)), spec.name)
    con = _connect()
    _register(con, "cohort", cohort[[entity, "as_of_date", "start_date"]])
    _register(con, "events", events[list(dict.fromkeys(needed))])
    frame = _fetch(con, event_sql(spec, entity))
    con.close()
    return frame


def _state_block(spec: StateSpec, tables: Mapping[str, pd.DataFrame], cohort: pd.DataFrame,
                 entity: str) -> pd.DataFrame:
    cols = [entity, spec.value_column, spec.start_column]
    cols += [spec.end_column] if spec.end_column else []
    history = _require(tables, spec.table, cols, spec.name)
    con = _connect()
    _register(con, "cohort", cohort[[entity, "as_of_date"]])
    _register(con, "history", history[cols])
    frame = _fetch(con, state_sql(spec, entity))
    con.close()
    frame[spec.name] = frame[spec.name].astype("string")
    return frame


def _spec_columns(spec: EventSpec | StateSpec, entity: str) -> list[str]:
    if isinstance(spec, StateSpec):
        return [c for c in (entity, spec.value_column, spec.start_column, spec.end_column) if c]
    cols = [entity, spec.date_column, *spec.flags]
    cols += [spec.id_column] if spec.id_column else []
    for cat in spec.categories:
        cols += [cat.column] + ([cat.known_from] if cat.known_from else [])
    return list(dict.fromkeys(cols))


def build_features(tables: Mapping[str, pd.DataFrame], as_of_dates: Sequence[object],
                   specs: Sequence[EventSpec] = DEFAULT_SPECS,
                   states: Sequence[StateSpec] = DEFAULT_STATES, *,
                   cohort: Cohort = Cohort(), cache_dir: str | Path | None = None
                   ) -> FeatureSet:
    """Features for every active officer on every as-of date.

    Always included: ``tenure_years`` and ``age_years``; then, per :class:`StateSpec`, the value
    held on the date and for how many days; then, per :class:`EventSpec`, counts and rates per
    window and days since the last event, for the total and each category value and flag.
    """
    dates = as_of_index(as_of_dates)
    if not len(dates):
        raise FeatureError("no as-of dates")
    cache = Path(cache_dir) if cache_dir else None
    entity = cohort.entity
    base = cohort_frame(tables, dates, cohort)
    cohort_cols = [c for c in (cohort.entity, cohort.start_column, cohort.end_column,
                               cohort.birth_year_column) if c]
    cohort_print = table_fingerprint(tables[cohort.table], cohort_cols)
    frame = base[[entity, "as_of_date"]].copy()
    years = (frame["as_of_date"] - base["start_date"].astype("datetime64[s]")).dt.days / 365.25
    frame["tenure_years"] = years.astype("float32")
    frame["age_years"] = (frame["as_of_date"].dt.year - base["birth_year"]).astype("Float32")
    blocks: list[Block] = []
    parts = [frame]
    for spec in [*states, *specs]:
        columns = _spec_columns(spec, entity)
        prints = {"cohort": cohort_print, spec.table: table_fingerprint(
            _require(tables, spec.table, columns, spec.name), columns)}
        if isinstance(spec, StateSpec):
            def compute(s: StateSpec = spec) -> pd.DataFrame:
                return _state_block(s, tables, base, entity)
            kind = "state"
        else:
            def compute(s: EventSpec = spec) -> pd.DataFrame:  # type: ignore[misc]
                return _event_block(s, tables, base, entity)
            kind = "events"
        block_frame, block = _run_cached(kind, spec, dates, prints, cache, compute)
        keys = block_frame[[entity, "as_of_date"]]
        if len(keys) != len(frame) or not (
                keys[entity].to_numpy() == frame[entity].to_numpy()).all() or not (
                keys["as_of_date"].astype("datetime64[s]").to_numpy()
                == frame["as_of_date"].to_numpy()).all():
            raise FeatureError(f"{spec.name}: block rows do not line up with the cohort")
        parts.append(block_frame.drop(columns=[entity, "as_of_date"]).reset_index(drop=True))
        blocks.append(block)
    out = pd.concat([p.reset_index(drop=True) for p in parts], axis=1)
    return FeatureSet(out, blocks)


# --- Labels ----------------------------------------------------------------------------------


def build_labels(tables: Mapping[str, pd.DataFrame], as_of_dates: Sequence[object],
                 spec: LabelSpec, *, cohort: Cohort = Cohort(),
                 data_end: object | None = None) -> pd.DataFrame:
    """(officer, as_of_date, label) for the cohort: 1 when a matching event falls in
    ``[as_of, as_of + window)``, 0 when none does, missing when the window runs past
    ``data_end`` (argument, else ``spec.data_end``, else the table's latest date)."""
    entity = cohort.entity
    dates = as_of_index(as_of_dates)
    base = cohort_frame(tables, dates, cohort)
    events = _require(tables, spec.table, [entity, spec.date_column], spec.name)
    end = data_end if data_end is not None else spec.data_end
    end_ts = (pd.Timestamp(end) if end is not None
              else pd.to_datetime(events[spec.date_column]).max())
    con = _connect()
    _register(con, "cohort", base[[entity, "as_of_date"]])
    _register(con, "events", events)
    where = f"({spec.where})" if spec.where else "TRUE"
    months = int(spec.window_months)
    sql = f"""
        WITH ev AS (
            SELECT {_q(entity)} AS entity, CAST({_q(spec.date_column)} AS DATE) AS d
            FROM events WHERE {_q(spec.date_column)} IS NOT NULL AND {where}
        ),
        hits AS (
            SELECT DISTINCT c.{_q(entity)}, c.as_of_date
            FROM cohort c JOIN ev ON ev.entity = c.{_q(entity)}
             AND ev.d >= c.as_of_date AND ev.d < c.as_of_date + INTERVAL {months} MONTH
        )
        SELECT c.{_q(entity)}, c.as_of_date,
               CASE WHEN c.as_of_date + INTERVAL {months} MONTH
                         > DATE {_lit(end_ts.strftime('%Y-%m-%d'))} + INTERVAL 1 DAY
                    THEN NULL
                    WHEN h.as_of_date IS NULL THEN 0 ELSE 1 END AS {_q(spec.name)}
        FROM cohort c LEFT JOIN hits h
          ON h.{_q(entity)} = c.{_q(entity)} AND h.as_of_date = c.as_of_date
        ORDER BY c.as_of_date, c.{_q(entity)}
    """
    out = con.execute(sql).df()
    con.close()
    out["as_of_date"] = out["as_of_date"].astype("datetime64[s]")
    out[spec.name] = out[spec.name].astype("Int8")
    return out


def label_rates(labels: pd.DataFrame, name: str) -> pd.DataFrame:
    """Per as-of date: officers, labelled (not censored), positives and the positive rate."""
    grouped = labels.groupby("as_of_date")[name]
    out = pd.DataFrame({
        "officers": grouped.size(),
        "labelled": grouped.count(),
        "positives": grouped.sum(min_count=1).astype("Int64"),
    })
    out["rate"] = (out["positives"] / out["labelled"].replace(0, np.nan)).astype("Float64")
    return out.reset_index()
