"""As-of labels: whether a matching event falls in the window that starts on the as-of date,
missing when the window runs past the data, and the positive rate per date."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from rudikit.features.asof.cohort import as_of_index, cohort_frame
from rudikit.features.asof.duck import connect, require_table
from rudikit.features.asof.specs import Cohort, LabelSpec
from rudikit.features.asof.sql import label_sql


def build_labels(tables: Mapping[str, pd.DataFrame], as_of_dates: Sequence[object],
                 spec: LabelSpec, *, cohort: Cohort = Cohort(),
                 data_end: object | None = None) -> pd.DataFrame:
    """(officer, as_of_date, label) for the cohort: 1 when a matching event falls in
    ``[as_of, as_of + window)``, 0 when none does, missing when the window runs past
    ``data_end`` (argument, else ``spec.data_end``, else the table's latest date)."""
    entity = cohort.entity
    dates = as_of_index(as_of_dates)
    base = cohort_frame(tables, dates, cohort)
    events = require_table(tables, spec.table, [entity, spec.date_column], spec.name)
    end = data_end if data_end is not None else spec.data_end
    end_ts = (pd.Timestamp(end) if end is not None
              else pd.to_datetime(events[spec.date_column]).max())
    con = connect()
    con.register("cohort", base[[entity, "as_of_date"]])
    con.register("events", events)
    out = con.execute(label_sql(spec, entity, end_ts.strftime("%Y-%m-%d"))).df()
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
