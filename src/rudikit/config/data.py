"""The ``data`` section (named sources, the entity id, the knowledge date) and the ``label``
(conditions on columns): what unification reads and what counts as positive."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from rudikit.config.base import Strict

# --- Data ------------------------------------------------------------------------------------

SourceKind = Literal["police_uk_archive", "police_uk_api", "police_uk_api_csv",
                     "police_uk_api_json", "csv", "parquet", "compas", "synthetic_stop_search",
                     "chicago_cpdb", "event_tables"]

#: Source kinds that hold per-officer event tables (complaints, uses of force, unit and rank
#: history) rather than one row per case: only a project with a ``temporal`` section reads them.
EVENT_SOURCE_KINDS = ("chicago_cpdb", "event_tables")


class Source(Strict):
    name: str
    kind: SourceKind
    path: str | None = None
    force: str | None = None  # police.uk API files carry no force; say which it is
    forces: list[str] | None = None  # keep only these forces (archive)
    months: list[str] | None = None  # keep only these YYYY-MM months (archive)
    seed: int = 0  # for synthetic sources
    rows_per_month: int | None = Field(None, ge=10)  # for synthetic sources; None: realistic
    options: dict[str, Any] = {}  # passed to the kind's table builder (e.g. compas: label)

    @model_validator(mode="before")
    @classmethod
    def _no_fallback(cls, data: Any) -> Any:
        """The synthetic stand-in is asked for at run time, never by the project file: a run
        on generated rows must not look like a run on the force's data."""
        if isinstance(data, dict) and "fallback" in data:
            raise ValueError("'fallback' is not read any more: a missing path is an error; to "
                             "run on the seeded synthetic generator instead, pass "
                             "--allow-synthetic to rudi run / rudi validate")
        return data

    @field_validator("months")
    @classmethod
    def _months(cls, value: list[str] | None) -> list[str] | None:
        for month in value or []:
            if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
                raise ValueError(f"month {month!r} is not YYYY-MM")
        return value

    @model_validator(mode="after")
    def _path_needed(self) -> Source:
        if self.kind == "police_uk_api":  # downloaded into the cache; ``path`` overrides it
            if not self.force or not self.months:
                raise ValueError("source kind 'police_uk_api' needs 'force' and 'months'")
            return self
        if self.kind != "synthetic_stop_search" and not self.path:
            raise ValueError(f"source kind {self.kind!r} needs a 'path'")
        if self.kind in ("police_uk_api_csv", "police_uk_api_json") and not self.force:
            raise ValueError(f"source kind {self.kind!r} needs 'force' (the API files carry none)")
        return self


class Data(Strict):
    sources: list[Source] = Field(min_length=1)
    entity_id: str = "record_id"
    knowledge_date: str = "datetime"
    #: the largest share of a date column's values that may fail to parse (set missing) before
    #: ``rudi validate`` and ``rudi run`` refuse the data: a wrong date format, not a few typos
    max_bad_share: float = Field(0.01, ge=0, le=1)

    @field_validator("sources")
    @classmethod
    def _unique(cls, value: list[Source]) -> list[Source]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return value


# --- Label -----------------------------------------------------------------------------------


class Condition(Strict):
    """One test on a column; a row meets a list of conditions when it meets all of them."""

    column: str
    equals: Any = None
    not_equals: Any = None
    isin: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    is_missing: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [k for k in ("equals", "not_equals", "isin", "not_in", "is_missing")
                 if getattr(self, k) is not None]
        if len(tests) != 1:
            raise ValueError("give exactly one of equals, not_equals, in, not_in, is_missing "
                             f"(got {len(tests)})")
        return self


class Label(Strict):
    name: str = "label"
    positive_when: list[Condition] = Field(min_length=1)
    exclude_when: list[Condition] = []
    description: str = ""

