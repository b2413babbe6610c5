"""Input checks: is each source fresh, does each period hold a plausible number of rows, and
has any historical period been rewritten since it was last read?

Integrity works on a checksum per period: every row is hashed (pandas' stable row hash over all
columns), a period's checksum is the SHA-256 of its sorted row hashes (so row order does not
matter, any changed, added or removed row does). The monitor stores the checksums each time and
compares them with the previous reading.

:func:`check_source` is the one pass over one source that both kinds of project use: a case
project's sources (:mod:`rudikit.monitoring.monitor`) and a temporal project's event tables
(:mod:`rudikit.monitoring.event_inputs`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from rudikit.config import SourceExpectation
from rudikit.monitoring.alerts import Alert
from rudikit.monitoring.performance import period_key
from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.queries.common import Bind

NO_DATE = "(no date)"
#: How bad each kind of finding is.
SEVERITY = {"freshness": "critical", "integrity": "critical", "row_count": "warning"}


@dataclass(frozen=True)
class PeriodDigest:
    period: str
    row_count: int
    checksum: str


def period_digests(frame: pd.DataFrame, time_column: str, period: str) -> list[PeriodDigest]:
    """Row count and checksum of every period of ``frame`` (rows without a time are their own
    period, ``(no date)``)."""
    if frame.empty:
        return []
    return digests_of(row_hashes(frame), pd.to_datetime(frame[time_column], utc=True), period)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """Each row's hash over all columns (pandas' stable row hash): the same row gives the same
    hash in any table of the same columns and types, so a source's rows can be hashed file by
    file."""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def digests_of(hashes: np.ndarray, times: pd.Series, period: str) -> list[PeriodDigest]:
    """:func:`period_digests` from the rows' hashes and UTC times (NaT: no date)."""
    if not len(hashes):
        return []
    # periods are named once per distinct day (a period is a set of UTC days), and rows sorted
    # by integer codes: naming and sorting 400,000 rows as strings took most of a pass over
    # the CPDB tables, and naming a million distinct times a quarter of a source's reading
    times, distinct = pd.factorize(pd.Series(times).dt.floor("D"), sort=True)
    names = period_key(pd.Series(distinct), period).to_numpy()
    of_time, periods = pd.factorize(names)  # in time order, as the times are sorted
    # -1: no date, first as "(" sorts first (every time NaT: no period at all)
    keys = np.where(times >= 0, of_time[np.maximum(times, 0)], -1) if len(of_time) \
        else np.full(len(times), -1)
    labels = np.r_[[NO_DATE], periods.astype(object)]
    order = np.lexsort((hashes, keys))
    keys, hashes = keys[order], hashes[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    return [PeriodDigest(str(labels[keys[a] + 1]), int(b - a),
                         hashlib.sha256(hashes[a:b].tobytes()).hexdigest())
            for a, b in zip(starts, ends, strict=True)]


@dataclass(frozen=True)
class Finding:
    """One breached expectation about an input source."""

    kind: str  # freshness, row_count, integrity
    subject: str
    metric: str
    value: float
    bound: float | None
    window: str
    message: str


def freshness(source: str, newest: pd.Timestamp | None, as_of: datetime,
              max_staleness_days: int | None) -> tuple[float | None, Finding | None]:
    """Age in days of the newest record, and a finding if older than allowed."""
    if newest is None or pd.isna(newest):
        return None, Finding("freshness", source, "age_days", float("nan"),
                             max_staleness_days, "", f"source {source!r} has no dated rows")
    newest = _utc(newest)
    age = (pd.Timestamp(as_of).tz_convert("UTC") - newest).total_seconds() / 86400
    if max_staleness_days is None or age <= max_staleness_days:
        return age, None
    return age, Finding("freshness", source, "age_days", age, float(max_staleness_days),
                        f"newest {newest:%Y-%m-%d}",
                        f"source {source!r} is stale: newest record {newest:%Y-%m-%d}, "
                        f"{age:.0f} days before {as_of:%Y-%m-%d} (allowed "
                        f"{max_staleness_days})")


def learned_bounds(counts: list[int], quantiles: tuple[float, float] = (5.0, 95.0),
                   slack: float = 0.5, min_history: int = 6) -> tuple[float, float] | None:
    """Row-count bounds from a source's own history: the 5th-95th percentile of earlier
    periods, widened by ``slack`` (50%) either side; None with too little history."""
    if len(counts) < min_history:
        return None
    lo, hi = np.percentile(counts, quantiles)
    return float(lo * (1 - slack)), float(hi * (1 + slack))


def row_count_findings(source: str, digests: list[PeriodDigest],
                       bounds: tuple[int, int] | None, check: set[str], *,
                       empty_months_count: bool = False) -> list[Finding]:
    """Each period in ``check`` outside the bounds (given, or learned from the periods before
    it), and each calendar gap (a month with no rows between the first and the last).

    With ``empty_months_count`` a gap is a month of 0 rows, part of the history bounds are
    learned from and judged like any other month when in ``check`` (a sparse table, such as a
    roster of appointments, has empty months as a matter of course); without, every gap is
    reported."""
    dated = [(d.period, d.row_count) for d in digests if d.period != NO_DATE]
    if empty_months_count:
        counts = dict(dated)
        dated = [(m, counts.get(m, 0)) for m in months_between([p for p, _ in dated])]
    findings: list[Finding] = []
    for i, (period, count) in enumerate(dated):
        if period not in check:
            continue
        if bounds is not None:
            lo, hi = float(bounds[0]), float(bounds[1])
        else:
            learned = learned_bounds([n for _, n in dated[:i]])
            if learned is None:
                continue
            lo, hi = learned
        if not lo <= count <= hi:
            side = "below" if count < lo else "above"
            findings.append(Finding(
                "row_count", source, "rows", float(count), lo if side == "below" else hi,
                period, f"source {source!r} has {count:,} rows in {period}, {side} "
                f"the expected {lo:,.0f}-{hi:,.0f}"))
    if not empty_months_count:
        findings += _gaps(source, [p for p, _ in dated])
    return findings


def months_between(periods: list[str]) -> list[str]:
    """Every month from the first to the last of ``periods`` (sorted), or ``periods`` as they
    are when they are not months (weeks and days are never filled in)."""
    if len(periods) < 2 or len(periods[0]) != 7:
        return periods
    return list(pd.period_range(periods[0], periods[-1], freq="M").strftime("%Y-%m"))


def _gaps(source: str, periods: list[str]) -> list[Finding]:
    missing = sorted(set(months_between(periods)) - set(periods))
    return [Finding("row_count", source, "rows", 0.0, None, m,
                    f"source {source!r} has no rows at all in {m}") for m in missing]


def integrity_findings(source: str, previous: dict[str, PeriodDigest],
                       current: list[PeriodDigest], newest_period: str | None) -> list[Finding]:
    """Historical periods whose checksum changed since the previous reading. The newest period
    may still be filling up, so only a shrinking row count there counts as a rewrite."""
    findings = []
    for d in current:
        before = previous.get(d.period)
        if before is None or before.checksum == d.checksum:
            continue
        if d.period == newest_period and d.row_count > before.row_count:
            continue
        findings.append(Finding(
            "integrity", source, "changed_period", float(d.row_count),
            float(before.row_count), d.period,
            f"source {source!r}: records of {d.period} were rewritten since the last check "
            f"({before.row_count:,} rows then, {d.row_count:,} now, checksum changed)"))
    removed = sorted(set(previous) - {d.period for d in current})
    findings += [Finding("integrity", source, "changed_period", 0.0,
                         float(previous[p].row_count), p,
                         f"source {source!r}: all {previous[p].row_count:,} records of {p} "
                         "disappeared since the last check") for p in removed]
    return findings


# --- One source at one pass --------------------------------------------------------------------


@dataclass
class SourceCheck:
    """One source at one pass: its newest record, that record's age, and the digest of every
    period (what the monitor stores in ``source_periods``)."""

    source: str
    newest: pd.Timestamp | None
    age_days: float | None
    periods: list[PeriodDigest]


def previous_digests(bind: Bind, source: str) -> dict[str, PeriodDigest]:
    """The digests of ``source`` the last pass that read it stored, by period."""
    return {r.period: PeriodDigest(r.period, r.row_count, r.checksum)
            for r in monitoring_q.last_digests(bind, source)}


def check_source(source: str, frame: pd.DataFrame, time_column: str | None,
                 expect: SourceExpectation, as_of: datetime,
                 previous: dict[str, PeriodDigest], *,
                 complete_before: pd.Timestamp | None = None, whole_history: bool = True
                 ) -> tuple[SourceCheck, list[Alert]]:
    """Freshness, rows per period and rewritten periods of one source against the previous
    reading.

    ``complete_before`` (the start of the period ``as_of`` falls in): only earlier periods are
    digested and compared, since the current one is still filling up; the newest record is
    still any row of ``frame``. ``whole_history``: a first reading judges the rows of every
    period and every empty month is reported (a case project's few months of archive);
    otherwise only the periods after the previous reading's newest (the newest alone on a
    first reading) are judged, empty months included (an event table's decades of history)."""
    dated = time_column is not None and time_column in frame.columns
    times = pd.to_datetime(frame[time_column], utc=True) if dated else None
    newest = times.max() if times is not None else None
    digests: list[PeriodDigest] = []
    if times is not None:
        rows = frame
        if complete_before is not None:
            rows = frame[(times < _utc(complete_before)).to_numpy() | times.isna().to_numpy()]
            current = str(period_key(pd.Series([_utc(complete_before)]), expect.period)[0])
            previous = {p: d for p, d in previous.items() if p == NO_DATE or p < current}
        digests = period_digests(rows, time_column, expect.period)
    return judge_source(source, newest, digests, expect, as_of, previous,
                        whole_history=whole_history)


def judge_source(source: str, newest: pd.Timestamp | None, digests: list[PeriodDigest],
                 expect: SourceExpectation, as_of: datetime,
                 previous: dict[str, PeriodDigest], *, whole_history: bool = True
                 ) -> tuple[SourceCheck, list[Alert]]:
    """:func:`check_source` from a source's newest record and period digests, computed from its
    rows or reused from the last pass over the same, unchanged files."""
    age, stale = freshness(source, newest, as_of, expect.max_staleness_days)
    periods = [d.period for d in digests if d.period != NO_DATE]
    newest_period = periods[-1] if periods else None
    findings = [stale] if stale else []
    findings += integrity_findings(source, previous, digests, newest_period)
    if whole_history:
        check = {d.period for d in digests if d.period not in previous}
    else:
        seen = max((p for p in previous if p != NO_DATE), default=None)
        check = {p for p in months_between(periods) if seen is not None and p > seen}
    check |= {newest_period} if newest_period else set()
    findings += row_count_findings(source, digests, expect.row_count_bounds, check,
                                   empty_months_count=not whole_history)
    return SourceCheck(source, newest, age, digests), [
        Alert(f.kind, f.subject, f.metric, f.value, f.bound, SEVERITY[f.kind], f.window,
              f.message) for f in findings]


def _utc(stamp: pd.Timestamp | datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
