"""The event tables of a temporal project (officers, complaints, uses of force, unit and rank
history), loaded the way ``rudi run`` and ``rudi validate`` read them, with one snapshot per
table. Kept apart from the run engine so a command reaches the data without loading the model
libraries."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
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
from rudikit.data.validation import Problem, ValidationReport

#: The column that names an officer in every event table.
ENTITY = "officer_uid"

#: Tables an ``event_tables`` folder holds, one Parquet file each (``officers.parquet``, ...),
#: as :meth:`rudikit.data.cpdb.CPDB.tables` returns them.
EVENT_TABLES = ("officers", "complaints", "use_of_force", "unit_history", "rank_history")

#: The column that dates each row of each event table (for the roster, the appointment).
DATE_COLUMNS = {"officers": "appointed_date", "complaints": "complaint_date",
                "use_of_force": "trr_date", "unit_history": "unit_start_date",
                "rank_history": "rank_date"}


def typed_dates(name: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """An event table with its date columns (every ``*_date`` column) as datetimes. A text
    column (an extract written to Parquet from CSV) is read as ISO 8601; a value that does not
    parse is set missing and reported, one problem per row, as the file loaders do, so
    ``rudi validate`` and ``rudi run`` can refuse a table above ``data.max_bad_share`` naming
    the column and the format its values seem to be in."""
    problems: list[Problem] = []
    converted = {}
    for column in [c for c in frame.columns if str(c).endswith("_date")]:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            continue
        text = values.astype("string").str.strip()
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        bad = (text.notna() & (text != "") & parsed.isna()).to_numpy()
        problems += [Problem(name, int(i) + 1, column, "unparseable date", str(text.iloc[i]))
                     for i in np.flatnonzero(bad)]
        converted[column] = parsed.dt.tz_localize(None).astype("datetime64[s]")
    return (frame.assign(**converted) if converted else frame), problems


def monitored_table_problems(project: TemporalProject) -> list[str]:
    """``monitoring.sources`` of a temporal project names event tables: one problem per name
    that is none (for ``rudi validate`` and ``rudi monitor``)."""
    return [f"monitoring.sources.{name}: no event table of that name (tables: "
            f"{', '.join(EVENT_TABLES)})" for name in project.monitoring.sources
            if name not in EVENT_TABLES]


def _date_range(frame: pd.DataFrame) -> tuple[Any, Any]:
    dates = frame.select_dtypes("datetime").stack() if len(frame) else pd.Series(dtype=object)
    return (dates.min(), dates.max()) if len(dates) else (None, None)


def _loader_version() -> str:
    """A digest of the CPDB loader's own code: a cached linking is reused only by the code
    that made it."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).parent / "cpdb").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _linked_cpdb(path: Path, cache_dir: Path | None
                 ) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[int, int]], Path]:
    """(tables, linked rows per dataset, the CPDB folder). Reading and linking the raw files
    takes 20-50 s; the result is kept as Parquet in ``cache_dir`` under a key of the files'
    bytes and the loader's code, so a daily ``rudi score`` or a monitoring pass reads it in a
    second. Any change to a file or to the loader makes a new key."""
    from rudikit.data.cpdb.files import FILES, CPDBError, cpdb_folder
    from rudikit.data.cpdb.tables import load_cpdb

    try:
        root = cpdb_folder(path)
        files = [root / file for file in FILES.values()]
        key = hashlib.sha256((files_checksum(files, root) + _loader_version()).encode())
    except OSError:  # a missing file: load_cpdb names it
        root, key = path, None
    folder = cache_dir / f"cpdb-{key.hexdigest()[:24]}" if cache_dir and key else None
    if folder is not None and (folder / "meta.json").exists():
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        tables = {}
        for name in EVENT_TABLES:  # Parquet keeps datetime64[s] as [ms]: restore each dtype
            frame = pd.read_parquet(folder / f"{name}.parquet")
            tables[name] = frame.astype({column: dtype for column, dtype
                                         in meta["dtypes"][name].items()
                                         if str(frame[column].dtype) != dtype})
        links = meta["link_rows"]
        return tables, {k: (int(v[0]), int(v[1])) for k, v in links.items()}, root
    try:
        cpdb = load_cpdb(path)
    except (CPDBError, OSError) as exc:
        raise SourceError(f"data.sources[0].path: cannot read the CPDB files under {path}: "
                          f"{exc}") from None
    tables = cpdb.tables()
    if folder is not None:
        staging = folder.parent / ".cpdb-unmade"
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".cpdb-"))
            for name, frame in tables.items():
                frame.to_parquet(staging / f"{name}.parquet")
            (staging / "meta.json").write_text(json.dumps({
                "link_rows": cpdb.link_rows,
                "dtypes": {name: {str(c): str(t) for c, t in frame.dtypes.items()}
                           for name, frame in tables.items()}}))
            staging.rename(folder)  # whole or not at all: another process may race us
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return tables, cpdb.link_rows, root


def load_event_tables(project: TemporalProject, project_dir: str | Path
                      ) -> tuple[dict[str, pd.DataFrame], list[LoadedSource]]:
    """The event tables :mod:`rudikit.features.asof` reads, and one :class:`LoadedSource` per
    table (for snapshots and the command line). A missing file is a :class:`SourceError`
    naming the key path. Linked CPDB tables are cached in ``<project>/.rudi/cache``."""
    source = project.data.sources[0]
    where = "data.sources[0]"
    path = resolve_path(source, Path(project_dir))
    if path is None:  # rudi.yaml's schema requires one for these kinds; checked again here
        raise SourceError(f"{where}.path: an event-table source needs a path")
    origin = str(source.options.get("origin", "real"))
    problems: dict[str, list[Problem]] = {}
    if source.kind == "chicago_cpdb":
        from rudikit.data.cpdb.files import FILES

        tables, link_rows, root = _linked_cpdb(path, Path(project_dir) / ".rudi" / "cache")
        files = {name: [root / file for file in FILES.values()] for name in tables}
        note = ", ".join(f"{name} linked {linked / max(rows, 1):.1%} of {rows:,} rows"
                         for name, (rows, linked) in link_rows.items())
    else:
        if not path.exists():  # never a stand-in: no synthetic data without being asked
            raise SourceError(f"{where}.path: {path} does not exist")
        missing = [name for name in EVENT_TABLES if not (path / f"{name}.parquet").exists()]
        if missing:
            raise SourceError(f"{where}.path: {path} lacks " + ", ".join(
                f"{name}.parquet" for name in missing))
        try:
            tables = {name: pd.read_parquet(path / f"{name}.parquet") for name in EVENT_TABLES}
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise SourceError(f"{where}.path: cannot read the event tables under {path}: {exc}"
                              ) from None
        for name in EVENT_TABLES:
            tables[name], problems[name] = typed_dates(name, tables[name])
        root = path
        files = {name: [path / f"{name}.parquet"] for name in EVENT_TABLES}
        note = ""
    loaded = []
    for name, frame in tables.items():
        checksum = (files_checksum(files[name], root) if source.kind == "event_tables"
                    else table_fingerprint(frame))
        loaded.append(LoadedSource(f"{source.name}.{name}", source.kind, str(root), origin,
                                   files[name], frame, ValidationReport(
                                       source.name, len(frame), problems.get(name, [])),
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
