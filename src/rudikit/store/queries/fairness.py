"""Fairness audits (group metrics and disparities) and requirement verdicts, with the one rule
that turns a stored requirement result into met / not met / inconclusive / insufficient data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from rudikit.store import tables as t
from rudikit.store.queries.common import Bind, frame, mappings
from rudikit.store.queries.runs import MODEL_COLUMNS


def audits(bind: Bind, model_ids: list[int]) -> pd.DataFrame:
    """The fairness audit rows of these models, in stored order."""
    return frame(bind, select(t.fairness_audits).where(t.fairness_audits.c.model_id.in_(model_ids))
                 .order_by(t.fairness_audits.c.id))


# Requirement verdicts on the rows a mitigation was fitted on are stored beside the test ones,
# their selection prefixed ("validation:threshold=0.25", or "fitting:..." when the thresholds
# were fitted on test rows for want of a validation partition). Every verdict reader below
# leaves them out; fitting_requirements reads them (the trade-off plot, the mitigation table).
FITTING_PREFIXES = ("validation:", "fitting:")


def fitting_selection(selection: str, on_validation: bool) -> str:
    """The stored selection of a verdict on fitting rows."""
    return f"{FITTING_PREFIXES[0] if on_validation else FITTING_PREFIXES[1]}{selection}"


def _held_out() -> Any:
    col = t.fairness_requirements.c.selection
    return ~(col.startswith(FITTING_PREFIXES[0]) | col.startswith(FITTING_PREFIXES[1]))


def requirements(bind: Bind, model_ids: list[int]) -> Sequence[RowMapping]:
    """The requirement verdicts of these models (on their test rows), in stored order."""
    return mappings(bind, select(t.fairness_requirements)
                    .where(t.fairness_requirements.c.model_id.in_(model_ids), _held_out())
                    .order_by(t.fairness_requirements.c.id))


def fitting_requirements(bind: Bind, model_ids: list[int]) -> Sequence[RowMapping]:
    """The requirement verdicts of mitigated models on the rows their thresholds were fitted
    on (validation rows, or the test rows when the split has no validation partition)."""
    return mappings(bind, select(t.fairness_requirements)
                    .where(t.fairness_requirements.c.model_id.in_(model_ids), ~_held_out())
                    .order_by(t.fairness_requirements.c.id))


def run_requirements(bind: Bind, run_id: int) -> pd.DataFrame:
    """The requirement verdicts of every model of one run (on test rows), in stored order."""
    return frame(bind, select(t.fairness_requirements)
                 .join(t.models, t.models.c.id == t.fairness_requirements.c.model_id)
                 .where(t.models.c.run_id == run_id, _held_out())
                 .order_by(t.fairness_requirements.c.id))


def audited_models(bind: Bind) -> list[dict[str, object]]:
    """Models with a fairness audit (dashboard columns), newest first."""
    audited = select(t.fairness_audits.c.model_id).distinct().scalar_subquery()
    return [dict(r) for r in mappings(
        bind, select(*MODEL_COLUMNS)
        .join(t.model_groups, t.model_groups.c.id == t.models.c.model_group_id)
        .where(t.models.c.id.in_(audited)).order_by(t.models.c.id.desc()))]


# --- requirement status ----------------------------------------------------------------------
# The four verdicts a stored requirement result can carry. "inconclusive" (a gap over the bound
# without statistical support) is written by the verdict rules of rudikit.fairness when they
# give it; reading it here already means every reader shows it the day it is stored.
MET, NOT_MET, INCONCLUSIVE, INSUFFICIENT = "met", "not met", "inconclusive", "insufficient data"
#: The stronger verdict first: one unit (or list date) "not met" makes the requirement not met,
#: an inconclusive one leaves it inconclusive, and only units without data are ignored.
_PRECEDENCE = (NOT_MET, INCONCLUSIVE, MET, INSUFFICIENT)


def combined_status(statuses: Iterable[str]) -> str:
    """The verdict of several units, operating points or list dates of one requirement."""
    seen = set(statuses)
    return next((s for s in _PRECEDENCE if s in seen), INSUFFICIENT)


def requirement_status(row: Mapping[str, Any]) -> str:
    """met / not met / inconclusive / insufficient data of one stored requirement result,
    from its units' statuses (``outcomes``); ``passed`` decides only a result stored without
    them."""
    statuses = [o.get("status") for o in row["outcomes"] or []]
    known = [s for s in statuses if s in _PRECEDENCE]
    if known:
        return combined_status(known)
    if row["passed"]:
        return MET
    return INSUFFICIENT if not row["units_evaluated"] else NOT_MET


@dataclass(frozen=True)
class RequirementStatus:
    """One requirement's verdict for one model, over every stored result of it (one per
    operating point; a temporal model has one per list date)."""

    name: str
    status: str
    results: int  # how many stored results were combined
    counts: dict[str, int]  # results per status
    summary: str  # the only result's stored summary (less a leading verdict), else counts


def model_requirement_statuses(bind: Bind, model_id: int) -> list[RequirementStatus]:
    """Each requirement's verdict for one model, in the order the project lists them."""
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for row in requirements(bind, [model_id]):
        by_name.setdefault(row["name"], []).append(row)
    out = []
    for name, rows in by_name.items():
        statuses = [requirement_status(r) for r in rows]
        counts = {s: statuses.count(s) for s in _PRECEDENCE if s in statuses}
        status = combined_status(statuses)
        summary = (str(rows[0]["summary"]).removeprefix(f"{status}: ") if len(rows) == 1
                   else ", ".join(
            f"{s} on {n} of {len(rows)} {_what(rows)}" for s, n in counts.items()))
        out.append(RequirementStatus(name, status, len(rows), counts, summary))
    return out


def _what(rows: list[Mapping[str, Any]]) -> str:
    """What several results of one requirement are: list dates (``top_k=100@2014-01-01``) or
    operating points."""
    return "list dates" if all("@" in r["selection"] for r in rows) else "operating points"


def status_counts(statuses: Iterable[RequirementStatus]) -> str:
    """``2 met, 2 not met``: the requirements per verdict, strongest first ("" for none)."""
    found = [s.status for s in statuses]
    return ", ".join(f"{found.count(s)} {s}" for s in _PRECEDENCE if s in found)
