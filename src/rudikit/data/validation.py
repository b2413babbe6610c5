"""Row-level validation: every problem is reported with its source, row and column, nothing dropped.

A real extract always has a few bad rows. Users need to see them (and decide), so loaders keep
the row, set the unparseable value to missing and add a :class:`Problem` here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

#: The one vocabulary of boolean text, shared by the data loaders' validation and the encoder.
TRUE_TEXT = frozenset({"true", "1", "1.0", "yes", "t", "y"})
FALSE_TEXT = frozenset({"false", "0", "0.0", "no", "f", "n"})

# Great Britain and Northern Ireland, generously: a point outside is almost certainly a bad
# geocode (e.g. 0,0 or swapped coordinates), not a search abroad.
UK_LATITUDE = (49.0, 61.5)
UK_LONGITUDE = (-8.7, 2.1)

#: The one vocabulary of boolean text, shared by the data loaders' validation and the encoder.
TRUE_TEXT = frozenset({"true", "1", "1.0", "yes", "t", "y"})
FALSE_TEXT = frozenset({"false", "0", "0.0", "no", "f", "n"})


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
                  values: pd.Series | None = None, severity: str = "error") -> list[Problem]:
    rows = frame.loc[mask.fillna(False).to_numpy(), "source_row"]
    shown = values[mask.fillna(False).to_numpy()] if values is not None else None
    return [
        Problem(source, int(r), column, problem,
                None if shown is None else str(shown.iloc[i]), severity)
        for i, r in enumerate(rows)
    ]


def validate_stop_search(frame: pd.DataFrame, failures: dict[str, pd.Series], *, source: str,
                         unknown_columns: list[str], missing_columns: list[str],
                         raw_values: dict[str, pd.Series] | None = None) -> ValidationReport:
    """Check a normalised stop-and-search frame; ``failures`` are the loader's parse failures."""
    report = ValidationReport(source=source, rows=len(frame))
    for column in unknown_columns:
        report.problems.append(Problem(source, None, column,
                                       "unknown column (kept out of the normalised table)",
                                       severity="warning"))
    for column in missing_columns:
        report.problems.append(Problem(source, None, column,
                                       "expected column is missing (all values set missing)",
                                       severity="warning"))
    kinds = {"datetime": "unparseable date", "latitude": "not a number",
             "longitude": "not a number"}
    for column, mask in failures.items():
        if mask.any():
            problem = kinds.get(column, "not true/false")
            raw = raw_values.get(column) if raw_values else None
            report.problems += _row_problems(frame, mask, source, column,
                                             f"{problem}; set missing", raw)
    lat, lon = frame["latitude"], frame["longitude"]
    invalid = (lat.abs() > 90) | (lon.abs() > 180)
    report.problems += _row_problems(frame, invalid, source, "latitude/longitude",
                                     "coordinates out of range", lat.astype(str) + "," +
                                     lon.astype(str))
    outside = (~invalid.fillna(False)) & (
        (lat < UK_LATITUDE[0]) | (lat > UK_LATITUDE[1])
        | (lon < UK_LONGITUDE[0]) | (lon > UK_LONGITUDE[1])
    )
    report.problems += _row_problems(frame, outside, source, "latitude/longitude",
                                     "coordinates outside the UK", lat.astype(str) + "," +
                                     lon.astype(str), severity="warning")
    return report
