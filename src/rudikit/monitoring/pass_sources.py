"""What one monitor pass reads of the project's sources: each source at most once, and a file
source whose files and settings are unchanged since the last pass not at all (it is judged on
that pass's stored digests, ``source_readings``), so a daily pass does not re-read years of
development data."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import Project, Source, SourceExpectation
from rudikit.data.sources import LoadedSource, files_fingerprint, load_source, stacked
from rudikit.monitoring import inputs
from rudikit.monitoring.alerts import Alert
from rudikit.monitoring.inputs import SourceCheck
from rudikit.store.queries import monitoring as monitoring_q


class PassSources:
    """The project's sources, each loaded at most once in a pass and only when needed: a source
    whose files are unchanged since the last pass is judged on that pass's digests, and the
    development rows are read again only to fit a missing reference profile."""

    def __init__(self, project: Project, project_dir: Path) -> None:
        self.project, self.project_dir = project, project_dir
        self._loaded: dict[int, LoadedSource] = {}
        self.columns: set[str] = set()
        self.readings: list[dict[str, Any]] = []

    def load(self, i: int) -> LoadedSource:
        if i not in self._loaded:
            self._loaded[i] = load_source(self.project.data.sources[i], self.project_dir,
                                          f"data.sources[{i}]")
        return self._loaded[i]

    def frame(self) -> pd.DataFrame:
        return stacked([self.load(i) for i in range(len(self.project.data.sources))])

    def check(self, engine: Engine, as_of: datetime) -> tuple[list[SourceCheck], list[Alert]]:
        """Freshness, rows per period and rewritten periods of every source (the columns and
        what was read are kept for the pass's checks and its record)."""
        time_col = self.project.data.knowledge_date
        checks, found = [], []
        for i, source in enumerate(self.project.data.sources):
            expect = self.project.monitoring.sources.get(source.name, SourceExpectation())
            fingerprint = _reading_key(source, files_fingerprint(source, self.project_dir))
            with engine.connect() as conn:
                previous = inputs.previous_digests(conn, source.name)
                last = monitoring_q.last_reading(conn, source.name) if fingerprint else None
            if last is not None and last["checksum"] == fingerprint \
                    and last["time_column"] == time_col and last["period"] == expect.period:
                newest = None if last["newest"] is None else pd.Timestamp(last["newest"])
                newest = newest.tz_localize("UTC") if newest is not None \
                    and newest.tzinfo is None else newest
                digests = sorted(previous.values(), key=lambda d: d.period)  # in time order
                check, raised = inputs.judge_source(source.name, newest, digests, expect,
                                                    as_of, previous)
                columns = list(last["columns"])
            else:
                loaded = self.load(i)
                check, raised = inputs.check_source(source.name, loaded.frame, time_col,
                                                    expect, as_of, previous)
                columns = [str(c) for c in loaded.frame.columns]
                newest = check.newest
            if fingerprint is not None:
                self.readings.append({"source": source.name, "checksum": fingerprint,
                                      "time_column": time_col, "period": expect.period,
                                      "newest": None if newest is None or pd.isna(newest)
                                      else newest.to_pydatetime(), "columns": columns})
            self.columns |= set(columns)
            checks.append(check)
            found += raised
        return checks, found


def _reading_key(source: Source, files_checksum: str | None) -> str | None:
    """What a reading is reused on: the files' bytes and the source's settings (its force,
    layout, options... parse the same bytes differently), one SHA-256; None for a source known
    only by reading it."""
    if files_checksum is None:
        return None
    settings = source.model_dump_json(exclude={"name"})
    return hashlib.sha256(f"{files_checksum}\n{settings}".encode()).hexdigest()
