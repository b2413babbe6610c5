"""What a monitor pass reads of the production window's cases with an outcome, all of it
aggregates the database computes (:mod:`rudikit.store.queries.monitor_counts`): realised
performance overall and per segment, the ROC curve, precision@k per period, the fairness
requirements, and the map's cases per point and outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from rudikit.config import Project
from rudikit.fairness.requirements import RequirementResult
from rudikit.fairness.stage import requirements, requirements_met
from rudikit.monitoring.performance import (
    Realised,
    from_counts,
    precision_over_time,
    roc_of,
    segments_of,
)
from rudikit.store.queries import monitor_counts as counts_q


@dataclass
class Outcomes:
    """The window's cases with an outcome as a pass uses them, each figure computed from
    aggregates of the database (:mod:`rudikit.store.queries.monitor_counts`), none from the
    cases' rows: ``n`` cases, their realised performance at the deployed threshold and ROC
    curve, per segment (by column, then value) and precision@k per period, and the fairness
    requirements (None when the window's cases lack a fairness column)."""

    n: int = 0
    realised: Realised | None = None
    roc: dict[str, list[float]] = field(default_factory=dict)
    segments: dict[str, dict[str, Realised]] = field(default_factory=dict)
    over_time: pd.DataFrame | None = None
    fairness: list[RequirementResult] | None = None


def window_outcomes(conn: Connection, cases: Table, project: Project, threshold: float,
                    columns: list[str]) -> Outcomes:
    """The figures of the window's cases with an outcome, ``cases``
    (:func:`~rudikit.store.queries.monitor_counts.labelled_cases`, with the inputs
    ``columns``), at the deployed ``threshold``, from the database's aggregates. A
    segment or fairness column no labelled case carries is left out, as it was when the
    cases were read as rows (an input no case carried was absent)."""
    mon, fairness = project.monitoring, project.fairness
    k = mon.stability.k
    overall = counts_q.performance_counts(conn, cases, None, threshold, k).iloc[0]
    if overall.n < mon.min_outcomes:  # too few to judge: the pass says so, and reads no more
        return Outcomes(int(overall.n))
    out = Outcomes(int(overall.n), from_counts(
        int(overall.n), int(overall.pos), int(overall.tp), int(overall.fp),
        int(overall.u_minus), float(overall.ap_sum)),
        roc_of(counts_q.roc_curve_points(conn, cases)))
    for column in mon.segments:
        if column in columns:
            counts = counts_q.performance_counts(conn, cases, column, threshold, k)
            if counts["key"].notna().any():
                out.segments[column] = segments_of(counts)
    out.over_time = precision_over_time(counts_q.period_counts(
        conn, cases, mon.performance_period, threshold, k), mon.performance_period, k)
    if fairness.requirements and all(c in columns for c in fairness.columns):
        auc = any(r.metric == "roc_auc" for r in requirements(fairness))
        cells = counts_q.labelled_counts(conn, cases, list(fairness.columns),
                                         threshold=None if auc else threshold, scores=auc)
        if all(cells[c].notna().any() for c in fairness.columns):
            out.fairness = requirements_met(fairness, cells, threshold)
    return out


def map_points(conn: Connection, table: Table, cases: Table, latitude: str, longitude: str,
               lo: int, hi: int) -> pd.DataFrame:
    """The window ``(lo, hi]``'s cases with coordinates grouped by point and outcome (missing
    until known): the groups of its labelled ``cases`` (with the inputs ``latitude`` and
    ``longitude``), and per point of ``table``'s window the cases left without an outcome."""
    keys = [latitude, longitude]
    counts = counts_q.coordinate_counts(conn, table, latitude, longitude, lo, hi)
    known = (counts_q.labelled_counts(conn, cases, keys).dropna(subset=keys)
             .rename(columns={counts_q.OUTCOME: "outcome", counts_q.CASES: "n"}))
    rest = counts.set_index(keys)["n"].sub(known.groupby(keys)["n"].sum(), fill_value=0)
    rest = rest[rest > 0].astype(np.int64).rename("n").reset_index().assign(outcome=np.nan)
    return pd.concat([known, rest[[*keys, "outcome", "n"]]], ignore_index=True)
