"""Data snapshots: what each run read, with checksums."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from rudikit.store import tables as t
from rudikit.store.queries.common import Bind, connected, frame


def snapshot(bind: Bind, snapshot_id: int) -> RowMapping | None:
    """The row of snapshot ``snapshot_id``, or None."""
    with connected(bind) as conn:
        return conn.execute(select(t.data_snapshots).where(
            t.data_snapshots.c.id == snapshot_id)).mappings().one_or_none()


def snapshots_of_run(bind: Bind, run_id: int) -> pd.DataFrame:
    """The snapshots a run recorded, in order."""
    return frame(bind, select(t.data_snapshots).where(t.data_snapshots.c.run_id == run_id)
                 .order_by(t.data_snapshots.c.id))


def snapshot_ids(bind: Bind, run_id: int) -> list[int]:
    """The ids of a run's snapshots, ascending."""
    with connected(bind) as conn:
        return list(conn.execute(select(t.data_snapshots.c.id).where(
            t.data_snapshots.c.run_id == run_id).order_by(t.data_snapshots.c.id)).scalars())


def source_history(bind: Bind, project: str, source: str, up_to_id: int) -> pd.DataFrame:
    """Every snapshot of one source of ``project`` up to snapshot ``up_to_id``, in order."""
    return frame(bind, select(t.data_snapshots).join(
        t.runs, t.data_snapshots.c.run_id == t.runs.c.id).where(
        (t.runs.c.project == project) & (t.data_snapshots.c.source == source)
        & (t.data_snapshots.c.id <= up_to_id)).order_by(t.data_snapshots.c.id))


def profiles(bind: Bind, snapshot_ids: list[int]) -> pd.DataFrame:
    """The column profiles of these snapshots (empty, with its columns, when none were
    stored: snapshots taken before profiles were)."""
    return frame(bind, select(t.snapshot_profiles).where(
        t.snapshot_profiles.c.snapshot_id.in_(snapshot_ids)).order_by(
        t.snapshot_profiles.c.snapshot_id, t.snapshot_profiles.c.position), keep_columns=True)
