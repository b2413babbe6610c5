"""A DuckDB connection over the input frames: the checked input tables go in as views, the
query's result comes out as pandas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import pandas as pd

from rudikit.features.asof.specs import FeatureError


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    return con


def fetch(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """A query's result as pandas, through Arrow (faster than ``.df()`` for wide results)."""
    return con.sql(sql).to_arrow_table().to_pandas()


def require_table(tables: Mapping[str, pd.DataFrame], name: str, columns: Sequence[str],
                  where: str) -> pd.DataFrame:
    """The table ``name`` of ``tables``; a FeatureError at ``where`` when it or a column is
    missing."""
    if name not in tables:
        raise FeatureError(f"{where}: no table {name!r} (tables: {', '.join(tables)})")
    frame = tables[name]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FeatureError(f"{where}: table {name!r} has no column(s) {', '.join(missing)}")
    return frame
