"""The as-of dates and who is scored on each: the rows every feature block and label lines up
with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from rudikit.features.asof.duck import connect, require_table
from rudikit.features.asof.specs import Cohort
from rudikit.features.asof.sql import cohort_sql


def as_of_index(as_of_dates: Sequence[object]) -> pd.DatetimeIndex:
    """Sorted unique as-of dates at day precision."""
    dates = pd.DatetimeIndex(pd.to_datetime(list(as_of_dates))).normalize()
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    return dates.unique().sort_values()


def monthly_as_of_dates(start: object, end: object) -> list[pd.Timestamp]:
    """First day of every month from ``start`` to ``end`` inclusive."""
    return list(pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="MS"))


def cohort_frame(tables: Mapping[str, pd.DataFrame], as_of_dates: Sequence[object],
                 cohort: Cohort = Cohort()) -> pd.DataFrame:
    """(entity, as_of_date, start date, birth year) of everyone active on each as-of date,
    sorted by date then entity."""
    cols = [cohort.entity, cohort.start_column]
    cols += [c for c in (cohort.end_column, cohort.birth_year_column) if c]
    officers = require_table(tables, cohort.table, cols, "cohort")
    dates = as_of_index(as_of_dates)
    con = connect()
    con.register("officers", officers[cols])
    con.register("dates", pd.DataFrame({"as_of_date": dates.astype("datetime64[s]")}))
    out = con.execute(cohort_sql(cohort)).df()
    con.close()
    out["as_of_date"] = out["as_of_date"].astype("datetime64[s]")
    return out.reset_index(drop=True)
