"""The ``sql`` source kind: rows from a table, view or query of the force's own database.

The SQLAlchemy URL comes from an environment variable (``url_env``), so no password sits in a
versioned ``rudi.yaml``. With an ``updated_at`` column, a load copies only the rows changed since
the previous one: the last full table is kept as Parquet under ``.rudi/cache/sql/<source>/`` and
the changed rows (``updated_at`` after the newest copied value) replace their earlier copy by
``key``; a row count below the copy's means rows were deleted, and the table is read in full.
The database must set ``updated_at`` on every insert and update, with the time of the change (a
column of whole seconds misses a second change within the second of the last load). The result
is always the whole table, so the snapshot checksum and the monitor's checksum per period
describe all rows, exactly as a full reload would.

``layout: police_uk`` reads a table in the normalised stop-and-search layout (what ``rudi
load-sql`` writes from the archive) through the same typing and validation as the archive files,
so the same rows give the same frame and the same checksum by either route.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from rudikit.config import Source
from rudikit.config.base import did_you_mean
from rudikit.data import police_uk
from rudikit.data.validation import ValidationReport


class SqlSourceError(ValueError):
    """A ``sql`` source that cannot be read; the message names the source's key."""


@dataclass
class SqlCopy:
    frame: pd.DataFrame  # every row of the table, as the database types them
    copied: int  # rows read from the database by this load
    how: str  # "full" or "incremental"
    location: str  # the URL without its password, and the table or "query"
    why: str = ""  # why a full load replaced an incremental one


def database_url(source: Source, where: str) -> str:
    """The source's URL: from its environment variable, or the password-free ``url``."""
    if source.url is not None:
        return source.url
    value = os.environ.get(source.url_env or "", "").strip()
    if not value:
        raise SqlSourceError(f"{where}.url_env: the environment variable {source.url_env} is "
                             f"not set; it must hold the SQLAlchemy URL of source "
                             f"{source.name!r} (e.g. postgresql://user:password@host/db)")
    return value


def _url_key(source: Source, where: str) -> str:
    return f"{where}.url_env" if source.url_env else f"{where}.url"


def _first_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _from_clause(source: Source) -> sa.FromClause | sa.TextClause:
    if source.table:
        schema, _, name = source.table.rpartition(".")
        return sa.table(name, schema=schema or None)
    # a user's SELECT, used as a derived table so it can be filtered and counted like a table
    return sa.text(f"({source.query.strip().rstrip(';')}) AS rudi_query")  # type: ignore[union-attr]


def _select(source: Source, since: object = None) -> sa.Select:
    stmt = sa.select(sa.text("*")).select_from(_from_clause(source))
    if since is not None:
        # strictly after: a bulk load stamps every row alike, and ">=" would copy them all again
        stmt = stmt.where(sa.column(source.updated_at) > sa.bindparam("since", since))
    return stmt


def _read(conn: Connection, source: Source, since: object = None) -> pd.DataFrame:
    return pd.read_sql(_select(source, since), conn, dtype_backend="pyarrow")


def _utc_session(conn: Connection) -> None:
    """Timestamps in UTC whatever the server's zone: one offset per column (pandas types a
    column of mixed offsets as text), and MariaDB's TIMESTAMP values in the zone assumed."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET TIME ZONE 'UTC'"))
    elif conn.dialect.name in ("mysql", "mariadb"):
        conn.execute(sa.text("SET time_zone = '+00:00'"))


def _count(conn: Connection, source: Source) -> int:
    stmt = sa.select(sa.func.count()).select_from(_from_clause(source))
    return int(conn.execute(stmt).scalar_one())


def _check_columns(conn: Connection, source: Source, where: str) -> list[str]:
    """The query's columns; a missing table or a bad query is reported, not raised."""
    what = f"table or view {source.table!r}" if source.table else "query"
    key = f"{where}.table" if source.table else f"{where}.query"
    try:
        columns = list(conn.execute(_select(source).limit(0)).keys())
    except DBAPIError as exc:
        raise SqlSourceError(f"{key}: cannot read the {what}: {_first_line(exc)}") from None
    for field in ("updated_at", "key"):
        wanted = getattr(source, field)
        for name in [wanted] if isinstance(wanted, str) else wanted or []:
            if name not in columns:
                raise SqlSourceError(f"{where}.{field}: column {name!r} is not in the {what}"
                                     f"{did_you_mean(name, columns)} (columns: "
                                     f"{', '.join(columns)})")
    return columns


def _signature(source: Source, location: str) -> str:
    spec = [location, source.table, source.query, source.updated_at, source.key]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()


def _cache_folder(cache_dir: Path, source: Source) -> Path:
    return cache_dir / "sql" / re.sub(r"[^A-Za-z0-9_.-]", "_", source.name)


def _ordered(frame: pd.DataFrame, source: Source, where: str) -> pd.DataFrame:
    """Rows in a fixed order (by key, else by every column): SQL promises none, and the
    snapshot checksum must not change because the server moved an updated row."""
    if source.key and frame.duplicated(source.key).any():
        example = frame.loc[frame.duplicated(source.key), source.key].iloc[0].tolist()
        raise SqlSourceError(f"{where}.key: {', '.join(source.key)} does not identify a row: "
                             f"{int(frame.duplicated(source.key).sum())} rows repeat a key "
                             f"(e.g. {example})")
    if frame.columns.empty:
        return frame
    try:
        return frame.sort_values(source.key or list(frame.columns), kind="mergesort",
                                 ignore_index=True)
    except (TypeError, ValueError, NotImplementedError) as exc:  # e.g. a JSON column
        raise SqlSourceError(f"{where}.key: the rows cannot be put in order by every column "
                             f"({exc}); name the column(s) identifying a row in 'key'") from None


def _merge(cached: pd.DataFrame, changed: pd.DataFrame, key: list[str]) -> pd.DataFrame | None:
    """The cached rows with the changed ones replacing theirs by key; None when the two cannot
    be stacked (the table's columns or types changed), so the caller reloads in full."""
    if list(changed.columns) != list(cached.columns):
        return None
    if changed.empty:
        return cached
    try:
        changed = changed.astype(cached.dtypes.to_dict())
    except (TypeError, ValueError):
        return None
    merged = pd.concat([cached, changed], ignore_index=True)
    return merged.drop_duplicates(key, keep="last")


def copy_table(source: Source, where: str, cache_dir: Path) -> SqlCopy:
    """Read the source's rows: in full, or only those changed since the cached copy."""
    url = database_url(source, where)
    try:
        location = make_url(url).render_as_string(hide_password=True)
        engine = sa.create_engine(url)
    except ModuleNotFoundError as exc:
        raise SqlSourceError(f"{_url_key(source, where)}: the database driver {exc.name} is "
                             f"not installed (pip install {exc.name})") from None
    except (ArgumentError, NoSuchModuleError) as exc:
        raise SqlSourceError(f"{_url_key(source, where)}: not a usable SQLAlchemy URL: {exc}"
                             ) from None
    location += f" {source.table}" if source.table else " (query)"
    folder = _cache_folder(cache_dir, source)
    signature = _signature(source, location)
    try:
        with engine.connect() as conn:
            _utc_session(conn)
            _check_columns(conn, source, where)
            return _copy(conn, source, where, folder, signature, location)
    except SqlSourceError:
        raise
    except DBAPIError as exc:
        if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
            raise SqlSourceError(f"{_url_key(source, where)}: cannot read source "
                                 f"{source.name!r} from {location}: {_first_line(exc)}"
                                 ) from None
        raise SqlSourceError(f"{where}: reading {location} failed: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def _copy(conn: Connection, source: Source, where: str, folder: Path, signature: str,
          location: str) -> SqlCopy:
    rows_file, state_file = folder / "rows.parquet", folder / "state.json"
    cached = None
    if source.updated_at and rows_file.exists() and state_file.exists():
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            if state.get("signature") == signature:
                cached = pd.read_parquet(rows_file, dtype_backend="pyarrow")
        except (OSError, ValueError):  # a damaged copy is only a lost shortcut: read in full
            cached = None
    frame, how, why = None, "full", ""
    if cached is not None:
        marks = cached[source.updated_at].dropna()
        since = marks.max() if len(marks) else None  # a time, or text/number on some servers
        since = since.to_pydatetime() if isinstance(since, pd.Timestamp) else since
        changed = _read(conn, source, since)
        frame = _merge(cached, changed, source.key)
        how, copied = "incremental", len(changed)
        # A deleted row leaves no updated_at behind; the merged copy then holds more rows than
        # the table (every merged key is in the cache or the table), so reload it in full.
        if frame is None:
            how, why = "full", "the columns or their types changed"
        elif len(frame) != _count(conn, source):
            frame, how, why = None, "full", "rows were deleted in the source"
    if frame is None:
        frame = _read(conn, source)
        copied = len(frame)
    frame = _ordered(frame, source, where)
    if source.updated_at:
        folder.mkdir(parents=True, exist_ok=True)
        partial = rows_file.with_suffix(".parquet.part")
        frame.to_parquet(partial, index=False)
        os.replace(partial, rows_file)  # a crash never leaves half a copy behind
        marks = frame[source.updated_at].dropna()
        state_file.write_text(json.dumps({
            "signature": signature, "location": location, "rows": len(frame),
            "updated_at_mark": str(marks.max()) if len(marks) else None}), encoding="utf-8")
    return SqlCopy(frame, copied, how, location, why)


def _as_text(column: pd.Series) -> pd.Series:
    """A database value as the archive CSV would write it, for :func:`police_uk.read_table`;
    a naive timestamp (MariaDB's DATETIME) is taken as UTC."""
    if isinstance(column.dtype, pd.ArrowDtype) and pd.api.types.is_datetime64_any_dtype(
            column.dtype):
        column = pd.Series(column.to_numpy(dtype="datetime64[ns]") if column.dt.tz is None
                           else column.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"),
                           index=column.index)
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        stamps = column if column.dt.tz is not None else column.dt.tz_localize("UTC")
        return stamps.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"
                                                       ).astype("string")
    return column.astype("string")


def load_sql(source: Source, where: str, cache_dir: Path
             ) -> tuple[pd.DataFrame, ValidationReport, str, str]:
    """(frame, validation report, location, note) of a ``sql`` source."""
    copy = copy_table(source, where, cache_dir)
    rows = f"{copy.copied:,} row{'s' * (copy.copied != 1)}"
    note = (f"incremental load: {rows} changed since the last load ({source.updated_at}), "
            f"{len(copy.frame):,} in all" if copy.how == "incremental"
            else f"full load of {len(copy.frame):,} rows" + (f" ({copy.why})" if copy.why else ""))
    if source.layout == "table":
        return (copy.frame, ValidationReport(source=source.name, rows=len(copy.frame)),
                copy.location, note)
    text = pd.DataFrame({c: _as_text(copy.frame[c]) for c in copy.frame.columns})
    extra = {source.updated_at} if source.updated_at else set()
    frame, report = police_uk.read_table(text, source.name, source.force or "", extra)
    if {"source_file", "source_row"} <= set(frame.columns):
        # the archive's order (file, then line), as the CSV route reads it
        frame = frame.sort_values(["source_file", "source_row"], kind="mergesort",
                                  ignore_index=True)
    report.source = source.name
    return frame, report, copy.location, note


def _stop_search_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The normalised stop-and-search layout as a table, keyed by ``record_id``."""
    stamp = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6),
                                                    "mysql", "mariadb")
    types = {"string": sa.Text(), "boolean": sa.Boolean(), "Float64": sa.Double(),
             "Int64": sa.Integer(), "datetime64[ns, UTC]": stamp}
    schema, _, table = name.rpartition(".")
    columns = [sa.Column("record_id", sa.String(255), primary_key=True)]
    columns += [sa.Column(c, types[t]) for c, t in police_uk.COLUMNS.items() if c != "record_id"]
    return sa.Table(table, metadata, *columns, sa.Column("updated_at", stamp, nullable=False),
                    schema=schema or None)


def write_stop_search_table(frame: pd.DataFrame, url: str, table: str, updated_at: pd.Timestamp,
                            *, replace: bool = False) -> int:
    """Write normalised stop-and-search rows to ``table`` (created; dropped first if
    ``replace``), each stamped ``updated_at``: the archive as a force's database would hold it.
    Returns the number of rows written; a failure leaves no table behind."""
    try:
        engine = sa.create_engine(url)
    except (ArgumentError, NoSuchModuleError, ModuleNotFoundError) as exc:
        raise SqlSourceError(f"not a usable SQLAlchemy URL: {exc}") from None
    target = _stop_search_table(table, sa.MetaData())
    rows = frame[list(police_uk.COLUMNS)].assign(updated_at=updated_at)
    if engine.dialect.name in ("mysql", "mariadb"):  # DATETIME has no time zone: store UTC
        for column in ("datetime", "updated_at"):
            rows[column] = rows[column].dt.tz_convert("UTC").dt.tz_localize(None)
    created = False
    try:
        with engine.begin() as conn:
            if replace:
                target.drop(conn, checkfirst=True)
            elif sa.inspect(conn).has_table(target.name, target.schema):
                raise SqlSourceError(f"table {table!r} exists; pass --replace to overwrite it")
            target.create(conn)
            created = True
            for start in range(0, len(rows), 5000):  # executemany: the drivers batch it
                chunk = rows.iloc[start:start + 5000].astype(object)
                conn.execute(target.insert(), chunk.where(chunk.notna(), None).to_dict("records"))
    except DBAPIError as exc:
        if created:  # MariaDB commits a CREATE TABLE at once: take it back by hand
            with engine.begin() as conn:
                target.drop(conn, checkfirst=True)
        raise SqlSourceError(f"cannot write {table!r} to "
                             f"{make_url(url).render_as_string(hide_password=True)}: "
                             f"{_first_line(exc)}") from None
    finally:
        engine.dispose()
    return len(rows)
