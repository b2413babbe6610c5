"""`rudi monitor` passes: their figures, alerts and source digests."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Row, select
from sqlalchemy.engine import Connection, RowMapping

from rudikit.store.monitoring_tables import (
    alerts,
    monitor_metrics,
    monitor_runs,
    reference_profiles,
    source_periods,
    source_readings,
)
from rudikit.store.queries.common import Bind, connected, frame, mappings

RUNS, METRICS = monitor_runs, monitor_metrics
#: The columns of :func:`alerts_of` rows.
ALERT_COLUMNS = list(alerts.c.keys())


def monitor_run(bind: Bind, monitor_run_id: int) -> RowMapping | None:
    """The row of monitor pass ``monitor_run_id``, or None."""
    with connected(bind) as conn:
        return conn.execute(select(RUNS).where(RUNS.c.id == monitor_run_id)
                            ).mappings().one_or_none()


def latest_of_project(bind: Bind, project: str) -> RowMapping | None:
    """The newest monitor pass of ``project`` (highest id), or None."""
    with connected(bind) as conn:
        return conn.execute(select(RUNS).where(RUNS.c.project == project)
                            .order_by(RUNS.c.id.desc()).limit(1)).mappings().one_or_none()


def last_finished(bind: Bind) -> RowMapping | None:
    """The monitor pass that finished last, of any project, or None."""
    with connected(bind) as conn:
        return conn.execute(select(RUNS).order_by(RUNS.c.finished_at.desc(), RUNS.c.id.desc())
                            .limit(1)).mappings().one_or_none()


def last_finished_of_group(bind: Bind, model_group_id: int) -> RowMapping | None:
    """The monitor pass of this model group that finished last, or None."""
    with connected(bind) as conn:
        return conn.execute(select(RUNS).where(RUNS.c.model_group_id == model_group_id)
                            .order_by(RUNS.c.finished_at.desc(), RUNS.c.id.desc())
                            .limit(1)).mappings().one_or_none()


def reference_profile(bind: Bind, deployment_id: int) -> RowMapping | None:
    """The reference profile stored for a deployment (its first monitor pass), or None."""
    with connected(bind) as conn:
        return conn.execute(select(reference_profiles).where(
            reference_profiles.c.deployment_id == deployment_id)).mappings().one_or_none()


def has_reference_profile(bind: Bind, deployment_id: int) -> bool:
    """Whether a reference profile is stored for a deployment (without reading it)."""
    with connected(bind) as conn:
        return conn.execute(select(reference_profiles.c.deployment_id).where(
            reference_profiles.c.deployment_id == deployment_id)).first() is not None


def alerts_of(bind: Bind, monitor_run_id: int) -> list[RowMapping]:
    """The alerts a monitor pass raised, in order."""
    return list(mappings(bind, select(alerts).where(alerts.c.monitor_run_id == monitor_run_id)
                         .order_by(alerts.c.id)))


def figures(bind: Bind, monitor_run_id: int, sections: list[str] | None = None
            ) -> pd.DataFrame:
    """The figures of a monitor pass (of these sections), with columns even when none."""
    query = select(METRICS).where(METRICS.c.monitor_run_id == monitor_run_id)
    if sections is not None:
        query = query.where(METRICS.c.section.in_(sections))
    return frame(bind, query.order_by(METRICS.c.id), keep_columns=True)


def headline_figures(bind: Bind, monitor_run_id: int) -> list[Row[Any]]:
    """(section, subject, metric, value) of a pass's realised and promised precision and its
    PSIs."""
    with connected(bind) as conn:
        return list(conn.execute(select(
            METRICS.c.section, METRICS.c.subject, METRICS.c.metric, METRICS.c.value).where(
            METRICS.c.monitor_run_id == monitor_run_id,
            METRICS.c.section.in_(["performance", "expected", "drift"]),
            METRICS.c.metric.in_(["precision", "psi"]))).all())


def source_periods_of(bind: Bind, monitor_run_id: int) -> pd.DataFrame:
    """The source period digests a monitor pass stored, with columns even when none."""
    return frame(bind, select(source_periods).where(
        source_periods.c.monitor_run_id == monitor_run_id).order_by(source_periods.c.id),
        keep_columns=True)


def _last_pass_checking(conn: Connection, source: str) -> int | None:
    """The id of the last monitor pass that stored digests of ``source``."""
    return conn.execute(select(source_periods.c.monitor_run_id)
                        .where(source_periods.c.source == source)
                        .order_by(source_periods.c.monitor_run_id.desc()).limit(1)
                        ).scalar_one_or_none()


def last_digests(bind: Bind, source: str) -> list[Row[Any]]:
    """(period, row_count, checksum) of ``source`` as the last pass that checked it stored
    them; empty if none did."""
    with connected(bind) as conn:
        last = _last_pass_checking(conn, source)
        if last is None:
            return []
        return list(conn.execute(select(source_periods.c.period, source_periods.c.row_count,
                                        source_periods.c.checksum)
                                 .where(source_periods.c.source == source,
                                        source_periods.c.monitor_run_id == last)).all())


def last_reading(bind: Bind, source: str) -> RowMapping | None:
    """What the last pass that checked ``source`` read of it, if that pass also stored its
    digests (the ones :func:`last_digests` gives); else None."""
    with connected(bind) as conn:
        last = _last_pass_checking(conn, source)
        if last is None:
            return None
        return conn.execute(select(source_readings).where(
            source_readings.c.source == source, source_readings.c.monitor_run_id == last)
            .order_by(source_readings.c.id.desc()).limit(1)).mappings().one_or_none()


def project_history(bind: Bind, project: str) -> pd.DataFrame:
    """Every monitor pass of ``project``, in order, with columns even when none."""
    return frame(bind, select(RUNS).where(RUNS.c.project == project).order_by(RUNS.c.id),
                 keep_columns=True)


def alert_counts(bind: Bind) -> pd.DataFrame:
    """id, finished_at, n_critical and n_warning of every pass, by finishing time."""
    return frame(bind, select(RUNS.c.id, RUNS.c.finished_at, RUNS.c.n_critical,
                              RUNS.c.n_warning).order_by(RUNS.c.finished_at))


def passes_of_groups(bind: Bind, model_group_ids: list[int]) -> list[RowMapping]:
    """Every monitor pass over a deployment of these model groups, newest first."""
    return list(mappings(bind, select(RUNS).where(RUNS.c.model_group_id.in_(model_group_ids))
                         .order_by(RUNS.c.id.desc())))
