"""The event tables of a temporal project (officers, complaints, uses of force, unit and rank
history), loaded the way ``rudi run`` and ``rudi validate`` read them, with one snapshot per
table. Kept apart from the run engine so a command reaches the data without loading the model
libraries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rudikit.config import TemporalProject
from rudikit.data.sources import (
    LoadedSource,
    SourceError,
    files_checksum,
    resolve_path,
    table_fingerprint,
)
from rudikit.data.validation import ValidationReport

#: The column that names an officer in every event table.
ENTITY = "officer_uid"

#: Tables an ``event_tables`` folder holds, one Parquet file each (``officers.parquet``, ...),
#: as :meth:`rudikit.data.cpdb.CPDB.tables` returns them.
EVENT_TABLES = ("officers", "complaints", "use_of_force", "unit_history", "rank_history")

#: The column that dates each row of each event table (for the roster, the appointment).
DATE_COLUMNS = {"officers": "appointed_date", "complaints": "complaint_date",
                "use_of_force": "trr_date", "unit_history": "unit_start_date",
                "rank_history": "rank_date"}


def monitored_table_problems(project: TemporalProject) -> list[str]:
    """``monitoring.sources`` of a temporal project names event tables: one problem per name
    that is none (for ``rudi validate`` and ``rudi monitor``)."""
    return [f"monitoring.sources.{name}: no event table of that name (tables: "
            f"{', '.join(EVENT_TABLES)})" for name in project.monitoring.sources
            if name not in EVENT_TABLES]


def _date_range(frame: pd.DataFrame) -> tuple[Any, Any]:
    dates = frame.select_dtypes("datetime").stack() if len(frame) else pd.Series(dtype=object)
    return (dates.min(), dates.max()) if len(dates) else (None, None)


def load_event_tables(project: TemporalProject, project_dir: str | Path
                      ) -> tuple[dict[str, pd.DataFrame], list[LoadedSource]]:
    """The event tables :mod:`rudikit.features.asof` reads, and one :class:`LoadedSource` per
    table (for snapshots and the command line). A missing file is a :class:`SourceError`
    naming the key path."""
    source = project.data.sources[0]
    where = "data.sources[0]"
    path = resolve_path(source, Path(project_dir))
    if path is None:  # rudi.yaml's schema requires one for these kinds; checked again here
        raise SourceError(f"{where}.path: an event-table source needs a path")
    origin = str(source.options.get("origin", "real"))
    if source.kind == "chicago_cpdb":
        from rudikit.data.cpdb.files import FILES, CPDBError, cpdb_folder
        from rudikit.data.cpdb.tables import load_cpdb

        try:
            cpdb = load_cpdb(path)
        except (CPDBError, OSError) as exc:
            raise SourceError(f"{where}.path: cannot read the CPDB files under {path}: {exc}"
                              ) from None
        tables = cpdb.tables()
        root = cpdb_folder(path)
        files = {name: [root / file for file in FILES.values()] for name in tables}
        note = ", ".join(f"{name} linked {linked / max(rows, 1):.1%} of {rows:,} rows"
                         for name, (rows, linked) in cpdb.link_rows.items())
    else:
        missing = [name for name in EVENT_TABLES if not (path / f"{name}.parquet").exists()]
        if missing:
            raise SourceError(f"{where}.path: {path} lacks " + ", ".join(
                f"{name}.parquet" for name in missing))
        try:
            tables = {name: pd.read_parquet(path / f"{name}.parquet") for name in EVENT_TABLES}
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise SourceError(f"{where}.path: cannot read the event tables under {path}: {exc}"
                              ) from None
        root = path
        files = {name: [path / f"{name}.parquet"] for name in EVENT_TABLES}
        note = ""
    loaded = []
    for name, frame in tables.items():
        checksum = (files_checksum(files[name], root) if source.kind == "event_tables"
                    else table_fingerprint(frame))
        loaded.append(LoadedSource(f"{source.name}.{name}", source.kind, str(root), origin,
                                   files[name], frame, ValidationReport(source.name, len(frame)),
                                   checksum, note if name == "officers" else "",
                                   span=_date_range(frame)))
    return tables, loaded


#: An officer attribute derived on each as-of date (from ``birth_year``), for fairness audits.
AGE_BAND = "age_band"
AGE_BANDS = ((0, "under 30"), (30, "30-39"), (40, "40-49"), (50, "50 and over"))


def attribute_columns(officers: pd.DataFrame) -> set[str]:
    """The officer attributes a temporal project's ``fairness`` section may name."""
    columns = set(officers.columns) - {ENTITY}
    return columns | ({AGE_BAND} if "birth_year" in officers.columns else set())


def officer_attributes(officers: pd.DataFrame, rows: pd.DataFrame, columns: list[str]
                       ) -> pd.DataFrame:
    """The fairness attributes of each (officer, as-of date) row: roster columns as they are,
    ``age_band`` from the birth year on the as-of date (under 30, 30-39, 40-49, 50 and over)."""
    info = officers.drop_duplicates(ENTITY).set_index(ENTITY)
    out = pd.DataFrame(index=rows.index)
    for column in columns:
        if column == AGE_BAND:
            born = rows[ENTITY].map(info["birth_year"]).astype("Float64")
            age = pd.to_datetime(rows["as_of_date"]).dt.year.astype("Float64") - born
            edges = [low for low, _ in AGE_BANDS] + [np.inf]
            out[column] = pd.cut(age.astype(float), edges, right=False,
                                 labels=[name for _, name in AGE_BANDS]).astype("string")
        else:
            out[column] = rows[ENTITY].map(info[column]).astype("string")
    return out
