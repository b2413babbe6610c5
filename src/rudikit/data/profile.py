"""A compact profile of each column of a loaded source, stored with its data snapshot.

The data card draws each column's distribution and missingness from these profiles rather than
from the files, which may have changed or gone since the run: a histogram of a numeric or date
column, the most frequent values of any other, the number missing and of distinct values. A
profile is a few hundred bytes per column whatever the number of rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Bars of a numeric or date histogram.
BINS = 20
#: Categories kept by name; the rest are counted together as "other".
TOP = 12


def column_kind(series: pd.Series) -> str:
    """The column's type in words (as the data card's variable table names it)."""
    return {"b": "boolean", "i": "integer", "u": "integer", "f": "number",
            "M": "date-time"}.get(series.dtype.kind, "text")


def _histogram(values: np.ndarray) -> dict[str, Any]:
    edges = np.histogram_bin_edges(values, bins=BINS)
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def profile_column(series: pd.Series) -> dict[str, Any]:
    """``kind``, ``rows``, ``missing``, ``distinct_values`` and ``summary`` of one column."""
    kind = column_kind(series)
    present = series.dropna()
    distinct = int(present.nunique())
    summary: dict[str, Any]
    if kind in ("number", "integer") and distinct > TOP:
        values = present.to_numpy(dtype=float)
        summary = _histogram(values[np.isfinite(values)])
    elif kind == "date-time" and len(present):
        stamps = pd.to_datetime(present, utc=True).dt.tz_convert(None)
        days = stamps.to_numpy(dtype="datetime64[s]").astype("int64") / 86400.0
        summary = _histogram(days) | {"unit": "days since 1970-01-01"}
    else:
        # a number or boolean is counted as itself and only the top values turned into text:
        # converting every value to text first took most of a 2,000-column source's profile
        counts = (present.value_counts() if kind != "text"
                  else present.astype(str).value_counts())
        top = counts.head(TOP)
        summary = {"values": [str(v) for v in top.index], "counts": [int(c) for c in top],
                   "other": int(counts.iloc[TOP:].sum())}
    return {"kind": kind, "rows": int(len(series)), "missing": int(series.isna().sum()),
            "distinct_values": distinct, "summary": summary}


def profile_frame(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One profile per column, in the frame's order, with its ``column_name`` and
    ``position``."""
    return [{"position": i, "column_name": str(name)[:300], **profile_column(frame[name])}
            for i, name in enumerate(frame.columns)]
