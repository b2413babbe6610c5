"""The feature matrix: one row per officer and as-of date, the cohort's tenure and age, then one
cached block per declared state and event table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rudikit.data.sources import table_fingerprint
from rudikit.features.asof.cache import Block, run_cached
from rudikit.features.asof.cohort import as_of_index, cohort_frame
from rudikit.features.asof.defaults import DEFAULT_SPECS, DEFAULT_STATES
from rudikit.features.asof.duck import connect, fetch, require_table
from rudikit.features.asof.specs import Cohort, EventSpec, FeatureError, StateSpec
from rudikit.features.asof.sql import event_sql, state_sql


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


def _spec_columns(spec: EventSpec | StateSpec, entity: str) -> list[str]:
    if isinstance(spec, StateSpec):
        return [c for c in (entity, spec.value_column, spec.start_column, spec.end_column) if c]
    cols = [entity, spec.date_column, *spec.flags]
    cols += [spec.id_column] if spec.id_column else []
    for cat in spec.categories:
        cols += [cat.column] + ([cat.known_from] if cat.known_from else [])
    return list(dict.fromkeys(cols))


def _event_block(spec: EventSpec, tables: Mapping[str, pd.DataFrame], cohort: pd.DataFrame,
                 entity: str) -> pd.DataFrame:
    needed = _spec_columns(spec, entity)
    events = require_table(tables, spec.table, needed, spec.name)
    con = connect()
    con.register("cohort", cohort[[entity, "as_of_date", "start_date"]])
    con.register("events", events[needed])
    frame = fetch(con, event_sql(spec, entity))
    con.close()
    return frame


def _state_block(spec: StateSpec, tables: Mapping[str, pd.DataFrame], cohort: pd.DataFrame,
                 entity: str) -> pd.DataFrame:
    cols = _spec_columns(spec, entity)
    history = require_table(tables, spec.table, cols, spec.name)
    con = connect()
    con.register("cohort", cohort[[entity, "as_of_date"]])
    con.register("history", history[cols])
    frame = fetch(con, state_sql(spec, entity))
    con.close()
    frame[spec.name] = frame[spec.name].astype("string")
    return frame


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
            require_table(tables, spec.table, columns, spec.name), columns)}
        if isinstance(spec, StateSpec):
            def compute(s: StateSpec = spec) -> pd.DataFrame:
                return _state_block(s, tables, base, entity)
            kind = "state"
        else:
            def compute(s: EventSpec = spec) -> pd.DataFrame:  # type: ignore[misc]
                return _event_block(s, tables, base, entity)
            kind = "events"
        block_frame, block = run_cached(kind, spec, dates, prints, cache, compute)
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

