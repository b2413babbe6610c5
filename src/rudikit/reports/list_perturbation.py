"""The part of a temporal run's report that says whether the chosen list could vary and how
much it did: the chosen model's sources of randomness (stored with the seed comparison) and
its lists refitted on bootstrap resamples of the training officers and without each data
source, beside their precision in the top k.

Read back from the run's ``list_stability`` rows (kinds ``seeds``, ``bootstrap``,
``drop_source``), so the section shows exactly what the run stored.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from rudikit.reports.page import PALETTE

KINDS = {"bootstrap": "bootstrap of the training officers",
         "drop_source": "without one data source"}


def randomness(stability: pd.DataFrame) -> list[str] | None:
    """The chosen model's sources of randomness as the seed comparison stored them; None
    when the run did not record them."""
    if not len(stability):
        return None
    seeds = stability[stability["kind"] == "seeds"]
    found = [d["randomness"] for d in seeds["details"] if isinstance(d, dict)
             and "randomness" in d]
    return list(found[0]) if found else None


def perturbations(stability: pd.DataFrame) -> dict[str, Any] | None:
    """One row per perturbed refit (what was changed, Jaccard and Spearman against the chosen
    list, precision in the top k, or why it was not refitted), the chosen list's precision and
    the bootstrap's mean; None when the run measured none."""
    rows = (stability[stability["kind"].isin(list(KINDS))] if len(stability)
            else pd.DataFrame())
    if not len(rows):
        return None
    out = []
    for (kind, parameter), part in rows.groupby(["kind", "parameter"], sort=False):
        values = dict(zip(part["metric"], part["value"], strict=True))
        details = part["details"].iloc[0] or {}
        name = parameter.split("=", 1)[1]
        out.append({
            "kind": kind, "parameter": parameter,
            "label": f"resample {name}" if kind == "bootstrap" else f"without {name}",
            "jaccard": _number(values.get("jaccard")),
            "spearman": _number(values.get("spearman")),
            "precision": _number(values.get("precision_at_k")),
            "note": details.get("note") or "",
            "dropped": len(details.get("dropped_columns") or []),
            "distinct": details.get("distinct_officers"), "officers": details.get("officers")})
    reference = next((d.get("reference_precision_at_k") for d in rows["details"]
                      if isinstance(d, dict)), None)
    boot = [r for r in out if r["kind"] == "bootstrap" and r["jaccard"] is not None]
    mean = ({key: sum(r[key] for r in boot) / len(boot)
             for key in ("jaccard", "spearman", "precision")} if boot else None)
    return {"rows": out, "reference": reference, "bootstrap_mean": mean,
            "as_of_date": rows["as_of_date"].iloc[0]}


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def perturbation_figure(found: dict[str, Any], k: int) -> go.Figure:
    """Each refit's top-``k`` Jaccard with the chosen list against its precision in the top
    ``k``, the chosen list's precision as a line: precision can hold while the list changes."""
    fig = go.Figure()
    for i, kind in enumerate(KINDS):
        rows = [r for r in found["rows"] if r["kind"] == kind and r["jaccard"] is not None]
        if rows:
            fig.add_trace(go.Scatter(
                x=[r["jaccard"] for r in rows], y=[r["precision"] for r in rows],
                text=[r["label"] for r in rows], mode="markers+text",
                textposition="top center", name=KINDS[kind],
                marker={"size": 10, "color": PALETTE[i]}))
    if found["reference"] is not None:
        fig.add_hline(y=found["reference"], line_dash="dash",
                      annotation_text=f"chosen list's precision@{k}")
    fig.update_layout(title=f"Perturbed lists: overlap with the chosen list and precision@{k}",
                      xaxis={"title": f"top-{k} Jaccard with the chosen list",
                             "range": [0, 1.05]},
                      yaxis_title=f"precision@{k}", height=420)
    return fig
