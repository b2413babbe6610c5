"""What an as-of feature block, a state, the cohort and a label are: the declarations the SQL
of :mod:`rudikit.features.asof.sql` is generated from, checked when they are made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Metric = Literal["count", "rate", "recency"]

#: Windows by name; ``all`` is the whole history before the as-of date.
WINDOW_MONTHS: dict[str, int | None] = {
    "1month": 1, "3month": 3, "6month": 6, "1year": 12, "2year": 24, "3year": 36, "5year": 60,
    "10year": 120, "all": None,
}


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



def event_group_names(spec: EventSpec) -> list[str]:
    """The groups a spec counts (``all``, ``<category prefix>_<value>``, flags): the middle part
    of its feature names, as ``complete_groups`` names them."""
    return ["all", *(f"{cat.prefix}_{value}" for cat in spec.categories for value in cat.groups),
            *spec.flags]
