"""The ``data`` section (named sources, the entity id, the knowledge date) and the ``label``
(conditions on columns): what unification reads and what counts as positive."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from rudikit.config.base import Strict

# --- Data ------------------------------------------------------------------------------------

SourceKind = Literal["police_uk_archive", "police_uk_api", "police_uk_api_csv",
                     "police_uk_api_json", "csv", "parquet", "compas", "synthetic_stop_search",
                     "chicago_cpdb", "event_tables", "sql"]

#: Source kinds that hold per-officer event tables (complaints, uses of force, unit and rank
#: history) rather than one row per case: only a project with a ``temporal`` section reads them.
EVENT_SOURCE_KINDS = ("chicago_cpdb", "event_tables")
#: The kinds whose every file loads to the normalised police.uk table (one layout and set of
#: types), so stacking the files' frames gives the source's frame whatever they hold.
STREAMED_KINDS = ("police_uk_archive", "police_uk_api_csv", "police_uk_api_json")
#: The kinds loaded file by file into the normalised police.uk table.
NORMALISED_KINDS = (*STREAMED_KINDS, "synthetic_stop_search", "police_uk_api")


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
    # kind ``sql`` (see rudikit.data.sql): where the rows are and how to copy only new ones
    url_env: str | None = None  # the environment variable holding the SQLAlchemy URL
    url: str | None = None  # a URL without a password (e.g. sqlite:///cases.db)
    table: str | None = None  # a table or view, ``name`` or ``schema.name``
    query: str | None = None  # or a SELECT
    updated_at: str | None = None  # set on every insert and update: enables incremental loads
    key: list[str] = []  # the column(s) that identify a row (incremental loads replace by it)
    layout: Literal["table", "police_uk"] = "table"  # police_uk: the stop-and-search columns

    @property
    def normalised(self) -> bool:
        """Loaded file by file into the normalised police.uk table (:data:`NORMALISED_KINDS`):
        its text columns may be read as categoricals from each file on."""
        return self.kind in NORMALISED_KINDS

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

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _no_secret(cls, value: str | None) -> str | None:
        """rudi.yaml is shared and versioned: a database password belongs in the environment."""
        if value is None:
            return value
        try:
            parsed = make_url(value)
        except ArgumentError:
            raise ValueError(f"{value!r} is not a SQLAlchemy URL (dialect+driver://user@host/db)"
                             ) from None
        if parsed.password:
            raise ValueError("holds a password; rudi.yaml must not: put the URL in an "
                             "environment variable and name it with 'url_env' instead")
        return value

    @model_validator(mode="after")
    def _sql_fields(self) -> Source:
        sql_only = [k for k in ("url_env", "url", "table", "query", "updated_at")
                    if getattr(self, k) is not None] + (["key"] if self.key else [])
        if self.kind != "sql":
            if sql_only:
                raise ValueError(f"{', '.join(sql_only)}: only for source kind 'sql'")
            return self
        if (self.url_env is None) == (self.url is None):
            raise ValueError("source kind 'sql' needs exactly one of 'url_env' (the environment "
                             "variable holding the database URL) and 'url'")
        if (self.table is None) == (self.query is None):
            raise ValueError("source kind 'sql' needs exactly one of 'table' and 'query'")
        if self.updated_at and not self.key:
            raise ValueError("'updated_at' needs 'key' (the column or columns identifying a row),"
                             " so a changed row replaces its earlier copy")
        return self

    @model_validator(mode="after")
    def _path_needed(self) -> Source:
        if self.kind == "sql":
            return self
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

