"""Input checks of a temporal project's event tables (roster, complaints, uses of force, unit
and rank history) for `rudi monitor`: per table, the newest record against a staleness bound,
the rows of each period against bounds learned from the table's history, and DSaPP's
time-based checksums, one per table per period, so a department re-coding past records (say,
use-of-force reports of 2012) is reported with the table and the period that changed.

Each table is judged as it was known on the as-of date (rows dated after it are not yet
known) and its periods are digested only once complete: the period ``as_of`` falls in is
still filling up. Expectations come from ``monitoring.sources``, keyed by table name; the
digests are stored by the monitor with the rest of its pass (``SourceCheck.periods``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import SourceExpectation, TemporalProject
from rudikit.data.event_tables import DATE_COLUMNS, EVENT_TABLES, monitored_table_problems
from rudikit.monitoring import inputs
from rudikit.monitoring.alerts import Alert
from rudikit.monitoring.inputs import SourceCheck


class EventInputError(ValueError):
    """The event tables cannot be checked as configured (an unknown table name, a table
    without its date column)."""


def table_expectations(project: TemporalProject) -> dict[str, SourceExpectation]:
    """``monitoring.sources`` by table (defaults for tables it does not name); a name that is
    no event table is an error naming its key path."""
    problems = monitored_table_problems(project)
    if problems:
        raise EventInputError(problems[0])
    return {name: project.monitoring.sources.get(name, SourceExpectation())
            for name in EVENT_TABLES}


def period_start(as_of: datetime, period: str) -> pd.Timestamp:
    """The start (UTC) of the calendar period ``as_of`` falls in: its month, its ISO week
    (Monday) or its day."""
    day = pd.Timestamp(as_of).tz_convert("UTC").normalize()
    if period == "month":
        return day.replace(day=1)
    if period == "week":
        return day - pd.Timedelta(days=day.day_of_week)
    return day


def check_event_tables(tables: Mapping[str, pd.DataFrame], engine: Engine, *,
                       as_of: datetime, expectations: Mapping[str, SourceExpectation],
                       source: str) -> tuple[list[SourceCheck], list[Alert]]:
    """Check every table as known on ``as_of`` (tz-aware) against the digests the previous pass
    stored. Tables are named ``<source>.<table>`` (``cpdb.use_of_force``), as their snapshots
    are."""
    checks: list[SourceCheck] = []
    found: list[Alert] = []
    cut = pd.Timestamp(as_of).tz_convert("UTC")
    with engine.connect() as conn:
        for table, frame in tables.items():
            if table not in DATE_COLUMNS:
                raise EventInputError(f"{table!r} is no event table (tables: "
                                      f"{', '.join(EVENT_TABLES)})")
            column = DATE_COLUMNS[table]
            if column not in frame.columns:
                raise EventInputError(f"event table {table!r}: no date column {column!r} to "
                                      "check it by")
            expect = expectations.get(table, SourceExpectation())
            when = pd.to_datetime(frame[column], utc=True)
            known = frame[(when <= cut).to_numpy() | when.isna().to_numpy()]
            name = f"{source}.{table}"
            check, raised = inputs.check_source(
                name, known, column, expect, as_of, inputs.previous_digests(conn, name),
                complete_before=period_start(as_of, expect.period), whole_history=False)
            checks.append(check)
            found += raised
    return checks, found


def check_project_tables(project: TemporalProject, tables: Mapping[str, pd.DataFrame],
                         engine: Engine, as_of: datetime) -> tuple[list[SourceCheck],
                                                                   list[Alert]]:
    """:func:`check_event_tables` with the project's expectations and source name."""
    return check_event_tables(tables, engine, as_of=as_of,
                              expectations=table_expectations(project),
                              source=project.data.sources[0].name)
