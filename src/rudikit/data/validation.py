"""Row-level validation: every problem is reported with its source, row and column, nothing dropped.

A real extract always has a few bad rows. Users need to see them (and decide), so loaders keep
the row, set the unparseable value to missing and add a :class:`Problem` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

#: The one vocabulary of boolean text, shared by the data loaders' validation and the encoder.
TRUE_TEXT = frozenset({"true", "1", "1.0", "yes", "t", "y"})
FALSE_TEXT = frozenset({"false", "0", "0.0", "no", "f", "n"})

# Great Britain and Northern Ireland, generously: a point outside is almost certainly a bad
# geocode (e.g. 0,0 or swapped coordinates), not a search abroad.
UK_LATITUDE = (49.0, 61.5)
UK_LONGITUDE = (-8.7, 2.1)

# --- the value rules: one definition, applied by the loaders to training data and by the
# service to each request, so that the same raw row gets the same score both ways ------------

#: The date-times a loaded table holds (pandas' nanosecond range, in whole days, UTC).
DATETIME_RANGE = (datetime(1677, 9, 22, tzinfo=UTC), datetime(2262, 4, 11, tzinfo=UTC))
DATETIME_RANGE_TEXT = (f"{DATETIME_RANGE[0]:%Y-%m-%d} to {DATETIME_RANGE[1]:%Y-%m-%d} "
                       "(exclusive) in UTC")


def outside_datetime_range(stamps: pd.Series | datetime) -> pd.Series | bool:
    """Whether each time-zoned date-time (a Series, or one ``datetime``) falls outside
    :data:`DATETIME_RANGE`: such a value is set missing."""
    return (stamps < DATETIME_RANGE[0]) | (stamps >= DATETIME_RANGE[1])


def clean_text(value: str | None) -> str | None:
    """A category as the loaders keep it: surrounding whitespace is not part of it, and an
    empty one is missing."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_by_distinct(values: pd.Series, parse: Callable[[pd.Series], Iterable[object]],
                      dtype: str, missing: object = pd.NA) -> pd.Series:
    """A column parsed value by value, with ``parse`` run once on its distinct values (given as a
    string Series, one entry each) instead of on every row: a file's million rows hold a
    handful. Each row gets its value's result as ``dtype``; a missing value gets ``missing``.
    When every value parses to itself (as most text columns do) the column is returned as read.
    """
    text = values.astype("string")
    codes, distinct = pd.factorize(text)
    table = pd.array([*parse(pd.Series(distinct, dtype="string")), missing], dtype=dtype)
    if pd.isna(missing) and table.dtype == text.dtype and table[:-1].equals(distinct.array):
        return text.rename(None)
    # code -1 (a missing value) takes the last entry: ``missing``
    return pd.Series(table[codes], index=values.index)


def clean_text_column(values: pd.Series) -> pd.Series:
    """:func:`clean_text` on each value of a text column, called once per distinct value
    (as fast as pandas' own ``str.strip``, which may strip other characters than Python)."""
    return parse_by_distinct(values, lambda distinct: map(clean_text, distinct), "string")


def impossible_coordinates(latitude: Iterable[float | None],
                           longitude: Iterable[float | None]) -> list[bool]:
    """Rows whose point cannot exist (latitude beyond +-90 or longitude beyond +-180): both
    coordinates are set missing (a swapped or garbled geocode says nothing about where the
    search was). A missing coordinate (None or NaN) makes no point impossible. Plain Python:
    the service calls it for one row at a time (numpy would cost more than the rule); the
    loaders call :func:`impossible_points` for a file's rows."""
    return [(lat is not None and abs(lat) > 90) or (lon is not None and abs(lon) > 180)
            for lat, lon in zip(latitude, longitude, strict=True)]


def impossible_points(latitude: pd.Series, longitude: pd.Series) -> np.ndarray:
    """:func:`impossible_coordinates` of a table's columns, vectorised (a missing value, NaN,
    compares false as None does)."""
    lat = latitude.to_numpy(dtype=float, na_value=np.nan)
    lon = longitude.to_numpy(dtype=float, na_value=np.nan)
    return (np.abs(lat) > 90) | (np.abs(lon) > 180)


@dataclass(frozen=True)
class Problem:
    source: str
    row: int | None  # file line number (header = 1); None for file-level problems
    column: str | None
    problem: str
    value: str | None = None
    severity: str = "error"  # "error": value unusable and set missing; "warning": kept as is

    def __str__(self) -> str:
        where = self.source
        if self.row is not None:
            where += f" row {self.row}"
        if self.column:
            where += f" [{self.column}]"
        shown = f" (value {self.value!r})" if self.value is not None else ""
        return f"{self.severity}: {where}: {self.problem}{shown}"


@dataclass
class ValidationReport:
    source: str
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def bad_rows(self) -> int:
        return len({p.row for p in self.errors if p.row is not None})

    def merge(self, other: ValidationReport) -> ValidationReport:
        return ValidationReport(
            source=f"{self.source}, {other.source}" if self.source else other.source,
            rows=self.rows + other.rows,
            problems=self.problems + other.problems,
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [p.__dict__ for p in self.problems],
            columns=["source", "row", "column", "problem", "value", "severity"],
        )


def _row_problems(frame: pd.DataFrame, mask: pd.Series, source: str, column: str, problem: str,
                  values: pd.Series | Callable[[], pd.Series] | None = None,
                  severity: str = "error") -> list[Problem]:
    """One problem per row of ``mask``, showing its value of ``values`` (or of ``values()``,
    built only when a row has the problem)."""
    hit = mask.fillna(False).to_numpy()
    if not hit.any():
        return []
    rows = frame.loc[hit, "source_row"]
    values = values() if callable(values) else values
    shown = values[hit] if values is not None else None
    return [
        Problem(source, int(r), column, problem,
                None if shown is None else str(shown.iloc[i]), severity)
        for i, r in enumerate(rows)
    ]


def validate_stop_search(frame: pd.DataFrame, failures: dict[str, pd.Series], *, source: str,
                         unknown_columns: list[str], missing_columns: list[str],
                         raw_values: dict[str, pd.Series] | None = None) -> ValidationReport:
    """Check a normalised stop-and-search frame; ``failures`` are the loader's parse failures
    by column (``datetime:range``: a date-time outside :data:`DATETIME_RANGE`)."""
    report = ValidationReport(source=source, rows=len(frame))
    for column in unknown_columns:
        report.problems.append(Problem(source, None, column,
                                       "unknown column (kept out of the normalised table)",
                                       severity="warning"))
    for column in missing_columns:
        report.problems.append(Problem(source, None, column,
                                       "expected column is missing (all values set missing)",
                                       severity="warning"))
    kinds = {"datetime": "unparseable date", "datetime:range": f"outside {DATETIME_RANGE_TEXT}",
             "latitude": "not a number", "longitude": "not a number"}
    for key, mask in failures.items():
        if mask.any():
            problem = kinds.get(key, "not true/false")
            column = key.split(":")[0]
            raw = raw_values.get(column) if raw_values else None
            report.problems += _row_problems(frame, mask, source, column,
                                             f"{problem}; set missing", raw)
    lat, lon = frame["latitude"], frame["longitude"]
    invalid = pd.Series(impossible_points(lat, lon), index=frame.index, dtype=bool)

    def points() -> pd.Series:  # the text shown, only for the rows with a problem
        return lat.astype(str) + "," + lon.astype(str)

    report.problems += _row_problems(frame, invalid, source, "latitude/longitude",
                                     "coordinates out of range", points)
    outside = (~invalid.fillna(False)) & (
        (lat < UK_LATITUDE[0]) | (lat > UK_LATITUDE[1])
        | (lon < UK_LONGITUDE[0]) | (lon > UK_LONGITUDE[1])
    )
    report.problems += _row_problems(frame, outside, source, "latitude/longitude",
                                     "coordinates outside the UK", points, severity="warning")
    return report


#: Formats a date column is tried in when it is not ISO 8601, day-first before month-first (UK
#: data); the one that reads most of the bad values is named in the message.
DATE_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%m/%d/%Y %H:%M:%S",
                "%m/%d/%Y %H:%M", "%m/%d/%Y", "%d-%m-%Y %H:%M", "%d-%m-%Y", "%d.%m.%Y",
                "%Y/%m/%d %H:%M", "%Y/%m/%d", "%Y%m%d", "%d %b %Y", "%d %B %Y", "%b %d %Y")


def likely_date_format(values: pd.Series) -> str | None:
    """The strftime format that reads most of ``values`` (None: none reads any)."""
    sample = values.astype("string").str.strip().dropna().head(200)
    best, hits = None, 0
    for fmt in DATE_FORMATS:
        read = int(pd.to_datetime(sample, format=fmt, errors="coerce").notna().sum())
        if read > hits:
            best, hits = fmt, read
    return best


def bad_date_problems(dates: dict[str, str], frame: pd.DataFrame,
                      reports: list[ValidationReport], max_share: float) -> list[str]:
    """Key-path problems for date columns where more than ``max_share`` of the values did not
    parse, naming the column and the format the values seem to be in. ``dates`` maps each date
    column to the key that names it; a column the loaders typed counts their "unparseable date"
    problems, a text column is parsed here as ISO 8601."""
    problems = []
    rows = len(frame)
    for column, key in dates.items():
        if column not in frame.columns or not rows:
            continue
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            bad = [p.value for r in reports for p in r.errors
                   if p.column == column and p.problem.startswith("unparseable date")]
            examples = pd.Series(bad, dtype="string")
        else:
            text = values.astype("string").str.strip()
            parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
            examples = text[text.notna() & (text != "") & parsed.isna()]
        share = len(examples) / rows
        if share <= max_share:
            continue
        fmt = likely_date_format(examples)
        seen = ", ".join(repr(v) for v in examples.head(3))
        problems.append(
            f"{key}: {len(examples):,} of {rows:,} values ({share:.1%}) in column {column!r} "
            f"are not ISO 8601 dates, more than data.max_bad_share ({max_share:.1%}); "
            + (f"they look like {fmt!r}" if fmt else "no common date format reads them")
            + f" (e.g. {seen})")
    return problems
