"""Input checks: is each source fresh, does each period hold a plausible number of rows, and
has any historical period been rewritten since it was last read?

Integrity works on a checksum per period: every row is hashed (pandas' stable row hash over all
columns), a period's checksum is the SHA-256 of its sorted row hashes (so row order does not
matter, any changed, added or removed row does). The monitor stores the checksums each time and
compares them with the previous reading.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from rudikit.monitoring.performance import period_key


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
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    keys = period_key(frame[time_column], period).fillna("(no date)").to_numpy()
    order = np.lexsort((hashes, keys))
    keys, hashes = keys[order], hashes[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    return [PeriodDigest(str(keys[a]), int(b - a), hashlib.sha256(hashes[a:b].tobytes()
                                                                   ).hexdigest())
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
    newest = pd.Timestamp(newest)
    newest = newest.tz_localize("UTC") if newest.tzinfo is None else newest.tz_convert("UTC")
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
                       bounds: tuple[int, int] | None, check: set[str]) -> list[Finding]:
    """Each period in ``check`` outside the bounds (given, or learned from the periods before
    it), and each calendar gap (a month with no rows between the first and the last)."""
    dated = [d for d in digests if d.period != "(no date)"]
    findings: list[Finding] = []
    for i, d in enumerate(dated):
        if d.period not in check:
            continue
        if bounds is not None:
            lo, hi = float(bounds[0]), float(bounds[1])
        else:
            learned = learned_bounds([e.row_count for e in dated[:i]])
            if learned is None:
                continue
            lo, hi = learned
        if not lo <= d.row_count <= hi:
            side = "below" if d.row_count < lo else "above"
            findings.append(Finding(
                "row_count", source, "rows", float(d.row_count), lo if side == "below" else hi,
                d.period, f"source {source!r} has {d.row_count:,} rows in {d.period}, {side} "
                f"the expected {lo:,.0f}-{hi:,.0f}"))
    findings += _gaps(source, [d.period for d in dated])
    return findings


def _gaps(source: str, periods: list[str]) -> list[Finding]:
    if len(periods) < 2 or len(periods[0]) != 7:  # gaps are checked for months only
        return []
    expected = pd.period_range(periods[0], periods[-1], freq="M").strftime("%Y-%m")
    missing = sorted(set(expected) - set(periods))
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
