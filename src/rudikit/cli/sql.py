"""``rudi load-sql``: the stop-and-search archive written to a database table, as a force's
records database would hold it, for a ``kind: sql`` source to read (examples/stop_search_sql).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rudikit.cli.terminal import console, fail


def load_sql(
    archive: Annotated[Path, typer.Argument(
        help="Folder of data.police.uk archive files (YYYY-MM-<force>-stop-and-search.csv).")],
    table: Annotated[str, typer.Option(help="Table to create: name or schema.name.")],
    url_env: Annotated[str, typer.Option(
        help="Environment variable holding the database's SQLAlchemy URL.")],
    replace: Annotated[bool, typer.Option(help="Drop the table first if it exists.")] = False,
) -> None:
    """Load the stop-and-search archive into a database table (normalised columns, keyed by
    record_id, stamped updated_at), the table examples/stop_search_sql reads."""
    import os

    import pandas as pd

    from rudikit.config import Source
    from rudikit.data.sources import SourceError, load_source
    from rudikit.data.sql import SqlSourceError, write_stop_search_table

    url = os.environ.get(url_env, "").strip()
    if not url:
        fail(f"--url-env: the environment variable {url_env} is not set; it must hold the "
             "SQLAlchemy URL of the database (e.g. postgresql://user@host/db)")
    with console.status(f"reading {archive}"):
        try:
            loaded = load_source(Source(name="archive", kind="police_uk_archive",
                                        path=str(archive)), Path.cwd(), "ARCHIVE")
        except SourceError as exc:
            fail(str(exc))
    with console.status(f"writing {len(loaded.frame):,} rows to {table}"):
        try:
            rows = write_stop_search_table(loaded.frame, url, table,
                                           pd.Timestamp.now(tz="UTC"), replace=replace)
        except SqlSourceError as exc:
            fail(f"--table: {exc}")
    console.print(f"wrote {rows:,} rows from {len(loaded.files)} files to {table}")


def register(app: typer.Typer) -> None:
    app.command("load-sql")(load_sql)
