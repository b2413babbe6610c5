"""What a list monitor pass may take from the pass before it, so that its cost follows the
window and not the years of daily lists behind it.

A list's figures are *final* once its label window has closed and every period of the label
table that window overlaps is complete (before the period ``as_of`` falls in, so the input
check has digested it). Its figures then depend only on:

* the list itself (stored once, never changed) and the list after it (its reviews run to the
  next list's date);
* the label table's rows dated in its window: the input check's checksum of every period the
  window overlaps (any late, re-coded or removed event changes one);
* the roster as the cohort and the fairness attributes read it on the list's date: every
  officer appointed before the date (all columns but the resignation date), and the
  resignation dates up to that date (a resignation after it changes nothing for it);
* the reviews in force dated from the cool-off before the list to the end of its window (or to
  the next list, whichever is later): a new review, a correction, a changed decision;
* the label window and definition, the fairness section, the list's model group's promise.

All of it is one SHA-256, the list's *basis*, stored in the details of its ``precision``
figure. A pass recomputes a list unless it is final and the last pass stored the same basis
for it; lists dated or maturing in the pass's window are always recomputed (their alerts are
raised from the fresh figures). The roster and reviews digests are sums of row hashes over a
date range (prefix sums), so each list costs a look-up, not a scan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import TemporalProject
from rudikit.data.event_tables import ENTITY
from rudikit.features.asof.specs import Cohort
from rudikit.models.temporal import label_spec
from rudikit.monitoring.event_inputs import period_start, table_expectations
from rudikit.monitoring.inputs import SourceCheck
from rudikit.monitoring.list_promise import naive_days
from rudikit.monitoring.performance import period_key
from rudikit.store.queries import monitoring as monitoring_q

#: The per-list figures a later pass may copy.
LIST_SECTIONS = ("list_fairness_group", "list_fairness", "list_precision", "agreement")
#: Figures of ``list_precision`` stored as counts (ints in a pass's list rows).
COUNTS = ("listed", "labelled", "positives", "intervened", "model_labelled", "model_positives",
          "model_intervened")
#: Bump when the list figures are computed differently: older bases no longer match.
VERSION = 1


def _day_ns(values: Any) -> np.ndarray:
    """Naive UTC days as int64 nanoseconds (NaT: the minimum int64)."""
    return naive_days(values).to_numpy(dtype="datetime64[ns]").astype(np.int64)


class _RangeSums:
    """Sums (mod 2**64) of row hashes over a range of days, by prefix sums."""

    def __init__(self, days: np.ndarray, hashes: np.ndarray) -> None:
        order = np.argsort(days, kind="stable")
        self.days = days[order]
        self.sums = np.r_[np.uint64(0), np.cumsum(hashes[order], dtype=np.uint64)]

    def before(self, day: np.int64) -> int:
        """The sum over rows dated before ``day``."""
        return int(self.sums[np.searchsorted(self.days, day, side="left")])

    def between(self, start: np.int64, end: np.int64) -> int:
        """The sum over rows dated in ``[start, end)``."""
        return (self.before(end) - self.before(start)) % 2**64


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


@dataclass
class Bases:
    """What each list's basis is made of in this pass (see the module docstring)."""

    common: str  # the label window and definition, the fairness section
    appointed: _RangeSums  # officers' rows (not their resignation) by appointment day
    resigned: _RangeSums  # officers' resignation days
    reviews: _RangeSums  # reviews in force by review day
    period: str  # the label table's digest period (month, week, day)
    checksums: dict[str, str]  # the label table's period -> checksum, complete periods only
    complete_before: pd.Timestamp  # naive: the start of the period ``as_of`` falls in
    _days: pd.DatetimeIndex | None = None  # the days the lists' label windows cover ...
    _periods: np.ndarray | None = None  # ... and the period of each

    @classmethod
    def of(cls, common: dict[str, Any], officers: pd.DataFrame, reviews: pd.DataFrame,
           check: SourceCheck | None, period: str, complete_before: pd.Timestamp) -> Bases:
        cohort = Cohort()
        end = cohort.end_column if cohort.end_column in officers.columns else None
        start = _day_ns(officers[cohort.start_column])
        dated = start != np.iinfo(np.int64).min  # no appointment: never in a cohort
        rows = officers.drop(columns=[end] if end else [])
        appointed = _RangeSums(start[dated], _row_hashes(rows[dated]))
        if end:
            left = _day_ns(officers[end])
            gone = left != np.iinfo(np.int64).min
            resigned = _RangeSums(left[gone], _row_hashes(officers.loc[gone, [ENTITY, end]]))
        else:
            resigned = _RangeSums(np.empty(0, np.int64), np.empty(0, np.uint64))
        columns = ["id", "entity_id", "review_date", "outcome", "agreement"]
        review_rows = reviews[columns].astype({"entity_id": str})
        reviewed = _RangeSums(_day_ns(reviews["review_date"]), _row_hashes(review_rows))
        checksums = {} if check is None else {d.period: d.checksum for d in check.periods}
        return cls(json.dumps(common, sort_keys=True, default=str), appointed, resigned,
                   reviewed, period, checksums, complete_before)

    def _periods_between(self, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
        """The label table's periods that ``[start, end)`` overlaps, in order (the day ->
        period table is built once, wide enough for the lists asked about so far)."""
        if self._days is None or start < self._days[0] or end > self._days[-1]:
            low = start if self._days is None else min(start, self._days[0])
            high = end if self._days is None else max(end, self._days[-1])
            margin = pd.DateOffset(years=3)  # rebuilt rarely as later lists are asked about
            self._days = pd.date_range(low - margin, high + margin, freq="D")
            self._periods = period_key(pd.Series(self._days), self.period).to_numpy()
        a, b = self._days.searchsorted(start), self._days.searchsorted(end)
        return list(dict.fromkeys(self._periods[a:b].tolist()))

    def basis(self, row: dict[str, Any], cool_off_days: int, following: pd.Timestamp | None,
              promise: Any) -> str | None:
        """The list's basis, or None while its figures are not final."""
        when, matures = row["as_of_date"], row["matures"]
        if not row["matured"] or matures > self.complete_before or not self.checksums:
            return None
        day, until = np.int64(when.value), np.int64(pd.Timestamp(matures).value)
        to = max(until, np.int64(following.value)) if following is not None else until
        since = np.int64((when - pd.Timedelta(days=cool_off_days)).value)
        periods = self._periods_between(when, matures)
        parts = [VERSION, self.common, row["list_id"], row["k"], cool_off_days,
                 row["model_group_id"], f"{when:%Y-%m-%d}", f"{matures:%Y-%m-%d}",
                 None if following is None else f"{following:%Y-%m-%d}",
                 self.appointed.before(day), self.resigned.before(day + 1),
                 self.reviews.between(since, to),
                 [(p, self.checksums.get(p)) for p in periods],
                 None if promise is None else [(f"{d:%Y-%m-%d}", float(v))
                                               for d, v in promise.values.items()]]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


# --- The last pass's figures ---------------------------------------------------------------------


@dataclass
class Previous:
    """The last pass's per-list figures by list date (as stored, in order), and its stability
    values by pair. Held as plain records: a pass over years of daily lists reads tens of
    thousands of them."""

    lists: dict[str, list[dict[str, Any]]]
    bases: dict[str, str]
    pairs: dict[tuple[str, str], tuple[float | None, float | None, int | None]]

    @classmethod
    def of(cls, figures: pd.DataFrame) -> Previous:
        lists: dict[str, list[dict[str, Any]]] = {}
        bases: dict[str, str] = {}
        pairs: dict[tuple[str, str], list[Any]] = {}
        columns = ["section", "subject", "segment", "metric", "value", "n", "details"]
        for r in ([] if figures.empty else figures[columns].to_dict("records")):
            r["value"], r["n"] = _value(r["value"]), _count(r["n"])
            if r["section"] == "stability":
                found = pairs.setdefault((r["subject"], r["segment"]), [None, None, r["n"]])
                if r["metric"] in ("jaccard", "spearman"):
                    found[0 if r["metric"] == "jaccard" else 1] = r["value"]
                continue
            if r["section"] not in LIST_SECTIONS or r["segment"] == "all":
                continue
            lists.setdefault(r["segment"], []).append(r)
            details = r["details"]
            if r["section"] == "list_precision" and r["metric"] == "precision" \
                    and isinstance(details, dict) and details.get("basis"):
                bases[r["segment"]] = details["basis"]
        return cls(lists, bases, {key: (a, b, n) for key, (a, b, n) in pairs.items()})

    def metrics(self, day: str) -> list[dict[str, Any]]:
        """The stored figures of the list of ``day``, as the pass stores them again."""
        return [dict(r) for r in self.lists[day]]

    def _values(self, day: str, section: str) -> dict[str, Any]:
        return {r["metric"]: r["value"] for r in self.lists[day] if r["section"] == section}

    def row(self, day: str, header: Any) -> dict[str, Any]:
        """The list's row of :func:`rudikit.monitoring.list_monitor._one_list` from its stored
        figures."""
        values = self._values(day, "list_precision")
        details = next(r["details"] for r in self.lists[day]
                       if r["section"] == "list_precision" and r["metric"] == "precision")
        agreed = self.agreement(day)
        row = {"date": day, "as_of_date": header.date, "list_id": int(header.id),
               "k": int(header.k), "model_group_id": int(header.model_group_id),
               "listed": int(values["listed"]), "matured": bool(details["matured"]),
               "matures": pd.Timestamp(details["matures"])}
        for name in ("matured_share", "precision", "labelled", "positives", "intervened",
                     "precision_untreated", "model_precision", "model_precision_untreated",
                     "model_labelled", "model_positives", "model_intervened", "p_value"):
            value = values.get(name)
            row[name] = int(value) if name in COUNTS else _nan(value)
        return {**row, "agreement_rate": agreed["rate"], "reviews": agreed["reviews"]}

    def agreement(self, day: str) -> dict[str, Any]:
        """The stored review counts of the list of ``day`` (:func:`agreement`'s keys)."""
        values = self._values(day, "agreement")
        return {"rate": values["rate"], **{name: int(values[name]) for name in
                                           ("reviews", "agree", "disagree", "unsure")}}


def _value(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _count(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def reused_pairs(previous: Previous, k: int, pairs: Sequence[str]) -> dict[str, Any]:
    """The stored (jaccard, spearman, common officers) of each of ``pairs`` the last pass
    stored for the same ``k`` (a pair names its two lists' dates, and a list is never
    changed)."""
    return {pair: previous.pairs[(f"top-{k}", pair)] for pair in pairs
            if (f"top-{k}", pair) in previous.pairs}


# --- The plan of one pass ----------------------------------------------------------------------


@dataclass
class Plan:
    """Which lists a pass takes from the last one (:mod:`rudikit.monitoring.list_reuse`), the
    basis of each list (None: not final), the stored stability pairs it reuses and the dates
    whose scores the fresh pairs need."""

    previous: Previous
    bases: list[str | None]
    reused: set[pd.Timestamp]
    pairs: dict[str, Any]
    pair_dates: set[pd.Timestamp]


def plan(project: TemporalProject, engine: Engine, officers: pd.DataFrame,
         headers: pd.DataFrame, sources: list[SourceCheck], promises: dict[int, Any],
         months: int, known_until: pd.Timestamp, reviews: pd.DataFrame,
         window: tuple[pd.Timestamp, pd.Timestamp], full: bool) -> Plan:
    """Each list's basis and which lists and stability pairs the pass takes from the last
    pass (none when ``full``): a final list with the basis the last pass stored, unless dated
    or matured in ``window``; a pair the last pass stored for the same k, unless its newer
    list is dated in ``window``."""
    start, end = window
    spec = label_spec(project.temporal)
    period = table_expectations(project)[spec.table].period
    name = f"{project.data.sources[0].name}.{spec.table}"
    check = next((s for s in sources if s.source == name), None)
    complete = period_start(pd.Timestamp(end).tz_localize("UTC"), period).tz_convert(None)
    common = {"months": months, "label": dataclasses.asdict(spec),
              "fairness": project.fairness.model_dump(mode="json")}
    bases = Bases.of(common, officers, reviews, check, period, complete)
    last = None if full else monitoring_q.latest_of_project(engine, project.name)
    previous = Previous.of(pd.DataFrame() if last is None else monitoring_q.figures(
        engine, last["id"], [*LIST_SECTIONS, "stability"]))
    dates = list(headers["date"])
    seen = known_until + pd.Timedelta(days=1)
    out, reused = [], set()
    for i, header in enumerate(headers.itertuples(index=False)):
        when = header.date
        matures = when + pd.DateOffset(months=months)
        stub = {"as_of_date": when, "matures": matures, "matured": matures <= seen,
                "list_id": int(header.id), "k": int(header.k),
                "model_group_id": int(header.model_group_id)}
        basis = bases.basis(stub, int(header.cool_off_days),
                            dates[i + 1] if i + 1 < len(dates) else None,
                            promises.get(int(header.model_group_id)))
        out.append(basis)
        in_window = start < when <= end or (stub["matured"] and start < matures <= end)
        if basis is not None and not in_window and previous.bases.get(f"{when:%Y-%m-%d}") \
                == basis:
            reused.add(when)
    k = int(headers["k"].iloc[-1])
    labels = [f"{a:%Y-%m-%d}/{b:%Y-%m-%d}" for a, b in pairwise(dates)]
    stored = {} if full else reused_pairs(previous, k, labels)
    stored = {p: v for p, v in stored.items()
              if not start < pd.Timestamp(p.split("/")[1]) <= end}
    fresh = [(a, b) for (a, b), p in zip(pairwise(dates), labels, strict=True)
             if p not in stored]
    return Plan(previous, out, reused, stored, {d for pair in fresh for d in pair})
