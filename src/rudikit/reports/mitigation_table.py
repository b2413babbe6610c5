"""The mitigation judged where it is used: per requirement, the mitigated model's verdict and
largest gap on the rows its thresholds were fitted on beside those on held-out rows (with the
interval), read from the store (``fitting_requirements``, the test verdicts and the
``mitigation_*_gap_pp`` evaluations written by the run)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.store.queries import fairness as fairness_q


def _gap(evals: pd.DataFrame, metric: str, name: str) -> str:
    row = evals[(evals["metric"] == metric) & (evals["parameter"] == name[:100])]
    if not len(row) or pd.isna(row["value"].iloc[0]):
        return "n/a"
    r = row.iloc[0]
    interval = ("" if pd.isna(r["lower"]) or pd.isna(r["upper"])
                else f" [{r['lower']:.1f}, {r['upper']:.1f}]")
    return f"{r['value']:.1f} pp{interval}"


def mitigation_rows(engine: Engine, model_id: int, evals: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per requirement for the mitigated model (empty when nothing was stored)."""
    mine = evals[evals["model_id"] == model_id]
    with engine.connect() as conn:
        fitting = fairness_q.fitting_requirements(conn, [model_id])
        held = fairness_q.requirements(conn, [model_id])
    held_by_name = {r["name"]: r for r in held}
    rows = []
    for r in fitting:
        other = held_by_name.get(r["name"])
        rows.append({
            "name": r["name"], "bound": f"{r['max_gap_pp']:g} pp",
            "fitted_on": ("validation" if str(r["selection"]).startswith("validation:")
                          else "test (cross-fitted)"),
            "fitting_status": fairness_q.requirement_status(r),
            "fitting_gap": _gap(mine, "mitigation_fitting_gap_pp", r["name"]),
            "held_out_status": (fairness_q.requirement_status(other) if other is not None
                                else "n/a"),
            "held_out_gap": _gap(mine, "mitigation_held_out_gap_pp", r["name"]),
        })
    return rows


def margin_note(evals: pd.DataFrame, model_id: int) -> str:
    """The margin the thresholds were fitted with and the groups too small for the bound to
    be checkable ("" when no margin was asked for)."""
    mine = evals[evals["model_id"] == model_id]
    margins = mine[mine["metric"] == "mitigation_margin_pp"]
    if not len(margins):
        return ""
    small = sorted(mine.loc[mine["metric"] == "mitigation_not_checkable", "parameter"])
    shown = ", ".join(f"{p} {v:.1f} pp" if p != "(all)" else f"{v:.1f} pp"
                      for p, v in zip(margins["parameter"].head(5), margins["value"].head(5),
                                      strict=True))
    more = f" and {len(margins) - 5} more units" if len(margins) > 5 else ""
    note = f"Fitted to the bound less a margin of {shown}{more}."
    if small:
        note += (f" Not checkable (too few cases for the bound to hold on new rows at the stated "
                 f"probability, left out of the margin): {', '.join(small[:20])}"
                 + (f" and {len(small) - 20} more" if len(small) > 20 else "") + ".")
    return note
