"""What one monitor pass reads of the project's sources: each source at most once (a police.uk
source file by file, its rows digested per file and never held whole; a csv or parquet source
whole), and a file source whose files and settings are unchanged since the last pass not at all
(it is judged on that pass's stored digests, ``source_readings``), so a daily pass does not
re-read years of development data.

The police.uk files are read in a thread of their own while the pass's database work goes on (the
database's window queries hold no Python lock), and judged when the pass asks for the checks.
A source known only by reading it (SQL, the police.uk API, the generator, COMPAS) has no files
to compare, so every pass reads it again, whole, before the rest of the pass."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine, RowMapping

from rudikit.config import Project, Source, SourceExpectation
from rudikit.data import police_uk
from rudikit.data.sources import files_fingerprint, load_source, source_frames
from rudikit.monitoring import inputs
from rudikit.monitoring.alerts import Alert
from rudikit.monitoring.inputs import PeriodDigest, SourceCheck
from rudikit.store.queries import monitoring as monitoring_q


@dataclass
class _Read:
    """One reading of a source: its rows' hashes and times (when digested) and the columns a
    reference fit needs (when asked for)."""

    hashes: list[np.ndarray] = field(default_factory=list)
    times: list[pd.Series] = field(default_factory=list)
    kept: list[pd.DataFrame] = field(default_factory=list)


@dataclass
class _Plan:
    """What the pass does with one source: judge it on the ``last`` reading (unchanged files)
    or on its rows, read in the pass."""

    expect: SourceExpectation
    fingerprint: str | None
    previous: dict[str, PeriodDigest]
    last: RowMapping | None
    columns: list[str] = field(default_factory=list)


class PassSources:
    """The project's sources, each read at most once in a pass and only when needed: a source
    whose files are unchanged since the last pass is judged on that pass's digests, and the
    development rows are kept only to fit a missing reference profile, and then only the
    columns ``keep`` names (``None``: no reference to fit).

    :meth:`start` looks up the last readings and starts reading the rest, :meth:`check` judges
    every source; :meth:`close` ends the reading thread (the pass's ``finally``: done, or
    failed on the way)."""

    def __init__(self, project: Project, project_dir: Path,
                 keep: Sequence[str] | None = None) -> None:
        self.project, self.project_dir, self.keep = project, project_dir, keep
        self.columns: set[str] = set()
        self.readings: list[dict[str, Any]] = []
        self._plans: list[_Plan] = []
        self._pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()  # set by close(): a failing pass stops the reading
        self._reads: dict[int, Future[_Read] | _Read] = {}

    def start(self, engine: Engine) -> None:
        """Each source's last reading (read now, from the store) and the reading of the sources
        that need one (a file source in a thread; another whole, now): the columns are known
        when this returns."""
        time_col = self.project.data.knowledge_date
        for i, source in enumerate(self.project.data.sources):
            expect = self.project.monitoring.sources.get(source.name, SourceExpectation())
            fingerprint = _reading_key(source, files_fingerprint(source, self.project_dir))
            with engine.connect() as conn:
                previous = inputs.previous_digests(conn, source.name)
                last = monitoring_q.last_reading(conn, source.name) if fingerprint else None
            plan = _Plan(expect, fingerprint, previous, last)
            if last is not None and last["checksum"] == fingerprint \
                    and last["time_column"] == time_col and last["period"] == expect.period:
                plan.columns = list(last["columns"])
            else:
                plan.last = None
                plan.columns, frames = self._frames(i)
                text = source.normalised
                if isinstance(frames, list):  # loaded whole: digested now
                    self._reads[i] = _read(frames, time_col, self.keep, normalised=text)
                else:
                    self._pool = self._pool or ThreadPoolExecutor(1, "rudi-sources")
                    self._reads[i] = self._pool.submit(_read, frames, time_col, self.keep,
                                                       normalised=text, stop=self._stop)
            self._plans.append(plan)
            self.columns |= set(plan.columns)

    def _frames(self, i: int) -> tuple[list[str], Iterable[pd.DataFrame]]:
        """Source ``i``'s columns and rows: file by file (an iterator), or loaded whole (a
        list of one frame)."""
        source, where = self.project.data.sources[i], f"data.sources[{i}]"
        streamed = source_frames(source, self.project_dir, where)
        if streamed is not None:
            return streamed
        frame = load_source(source, self.project_dir, where).frame
        return [str(c) for c in frame.columns], [frame]

    def _read_of(self, i: int) -> _Read:
        read = self._reads[i]
        if isinstance(read, Future):
            read = self._reads[i] = read.result()
        return read

    def close(self) -> None:
        """End the reading thread (waiting for the file it is on, not the rest)."""
        if self._pool is not None:
            self._stop.set()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def frame(self) -> pd.DataFrame:
        """The sources' rows (the columns ``keep`` names, all without it), to fit the
        reference: handed over, not kept."""
        parts = []
        for i in range(len(self.project.data.sources)):
            if self.keep is None:
                kept = list(self._frames(i)[1])
            elif i in self._reads:
                kept, self._read_of(i).kept = self._read_of(i).kept, []
            else:
                kept = _read(self._frames(i)[1], None, self.keep,
                             normalised=self.project.data.sources[i].normalised).kept
            parts.append(_stack(kept))
        return (pd.concat(police_uk.shared_categories(parts), ignore_index=True)
                if len(parts) > 1 else parts[0])

    def check(self, as_of: datetime) -> tuple[list[SourceCheck], list[Alert]]:
        """Freshness, rows per period and rewritten periods of every source (what was read is
        kept for the pass's record), once :meth:`start` has started the reading."""
        time_col = self.project.data.knowledge_date
        checks, found = [], []
        for i, (source, plan) in enumerate(zip(self.project.data.sources, self._plans,
                                               strict=True)):
            if plan.last is not None:
                last = plan.last
                newest = None if last["newest"] is None else pd.Timestamp(last["newest"])
                newest = newest.tz_localize("UTC") if newest is not None \
                    and newest.tzinfo is None else newest
                digests = sorted(plan.previous.values(), key=lambda d: d.period)  # time order
            else:
                read = self._read_of(i)
                newest, digests = None, []
                if time_col is not None and time_col in plan.columns:
                    times = pd.concat(read.times, ignore_index=True) if read.times \
                        else pd.Series(dtype="datetime64[ns, UTC]")
                    newest = times.max()
                    digests = inputs.digests_of(
                        np.concatenate(read.hashes) if read.hashes else np.empty(0, np.uint64),
                        times, plan.expect.period)
                read.hashes, read.times = [], []
            check, raised = inputs.judge_source(source.name, newest, digests, plan.expect,
                                                as_of, plan.previous)
            if plan.fingerprint is not None:
                self.readings.append({"source": source.name, "checksum": plan.fingerprint,
                                      "time_column": time_col, "period": plan.expect.period,
                                      "newest": None if newest is None or pd.isna(newest)
                                      else newest.to_pydatetime(), "columns": plan.columns})
            checks.append(check)
            found += raised
        return checks, found


def _read(frames: Iterable[pd.DataFrame], time_column: str | None,
          keep: Sequence[str] | None, *, normalised: bool = False,
          stop: threading.Event | None = None) -> _Read:
    """A source frame by frame: its row hashes and times (``time_column`` given) and its
    ``keep`` columns (given; a ``normalised`` police.uk source's text as categoricals, as the
    run loads it: at 1M development rows the kept columns take 38 MB instead of 215 MB, which
    took the unfitted pass over 1 GB); ends early once ``stop`` is set (the pass has ended)."""
    read = _Read()
    for frame in frames:
        if time_column is not None and time_column in frame and len(frame):
            read.hashes.append(inputs.row_hashes(frame))
            read.times.append(pd.Series(pd.to_datetime(frame[time_column], utc=True)))
        if keep is not None:
            kept = frame[[c for c in frame.columns if c in keep]]
            read.kept.append(police_uk.as_categories(kept) if normalised else kept)
        if stop is not None and stop.is_set():  # before the next file is loaded
            break
    return read


def _stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The files' frames as one (as the source's loader stacks them, categoricals kept)."""
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    return (pd.concat(police_uk.shared_categories(frames), ignore_index=True) if frames
            else pd.DataFrame())


def _reading_key(source: Source, files_checksum: str | None) -> str | None:
    """What a reading is reused on: the files' bytes and the source's settings (its force,
    layout, options... parse the same bytes differently), one SHA-256; None for a source known
    only by reading it."""
    if files_checksum is None:
        return None
    settings = source.model_dump_json(exclude={"name"})
    return hashlib.sha256(f"{files_checksum}\n{settings}".encode()).hexdigest()
