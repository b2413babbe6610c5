"""The production-list sections of a monitoring report (a temporal project's `rudi monitor`):
realised precision@k of each list against the test promise, fairness per list and reviewers'
agreement, read from the pass's stored figures (:mod:`rudikit.monitoring.list_monitor`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from rudikit.reports.page import PlotlyPage

FIGURES = ("precision", "precision_untreated", "model_precision", "model_precision_untreated",
           "matured_share", "listed", "labelled", "positives", "intervened", "p_value")


def _wide(metrics: pd.DataFrame, section: str) -> pd.DataFrame:
    part = metrics[metrics["section"] == section]
    if part.empty:
        return pd.DataFrame()
    return part.pivot_table(index=["subject", "segment"], columns="metric", values="value",
                            aggfunc="first", dropna=False, sort=False).reset_index()


def list_rows(metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per production list: its figures and whether its label window has closed."""
    wide = _wide(metrics, "list_precision")
    if wide.empty:
        return []
    part = metrics[(metrics["section"] == "list_precision") & (metrics["metric"] == "precision")]
    details = dict(zip(part["segment"], part["details"], strict=True))
    agreement = _wide(metrics, "agreement")
    agreement = agreement.set_index("segment") if not agreement.empty else agreement
    # a pass stored by an older rudikit may lack a figure: shown as n/a
    wide = wide.reindex(columns=[*wide.columns, *(c for c in FIGURES if c not in wide)])
    out = []
    for row in wide.sort_values("segment").to_dict("records"):
        detail = details.get(row["segment"]) or {}
        row.update(matured=bool(detail.get("matured")), matures=detail.get("matures"),
                   model_group_id=detail.get("model_group_id"))
        if not agreement.empty and row["segment"] in agreement.index:
            row["agreement_rate"] = agreement.loc[row["segment"], "rate"]
            row["reviews"] = agreement.loc[row["segment"], "reviews"]
        out.append(row)
    return out


def promises(metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """Per model group: its test dates' precision@k, and their mean, spread and lowest."""
    part = metrics[metrics["section"] == "list_promise"]
    out = []
    for subject, rows in part.groupby("subject", sort=False):
        summary = rows[rows["segment"] == ""].set_index("metric")["value"]
        dated = rows[rows["segment"] != ""]
        out.append({"subject": subject, "mean": summary.get("mean"), "sd": summary.get("sd"),
                    "low": summary.get("low"), "dates": list(dated["segment"]),
                    "values": list(dated["value"])})
    return out


def precision_figure(rows: list[dict[str, Any]], promised: list[dict[str, Any]],
                     page: PlotlyPage) -> Any:
    """Realised precision@k per list (open markers: window still open, partial) with and
    without intervened officers, and of the model's own top k (cool-off or not; what the alert
    tests), over the band of what the test dates achieved."""
    frame = pd.DataFrame(rows)
    fig = go.Figure()
    for p in promised[:1]:
        if p["values"]:
            low, high = min(p["values"]), max(p["values"])
            fig.add_hrect(y0=low, y1=high, fillcolor="#4a7bd0", opacity=0.12, line_width=0,
                          annotation_text=f"test dates ({p['subject']})",
                          annotation_position="top left")
            fig.add_hline(y=p["mean"], line_dash="dash", line_color="#4a7bd0",
                          annotation_text="promised (test mean)")
    symbols = ["circle" if m else "circle-open" for m in frame["matured"]]
    fig.add_trace(go.Scatter(x=frame["segment"], y=frame["precision"], mode="lines+markers",
                             name="all listed", marker={"symbol": symbols, "size": 9}))
    fig.add_trace(go.Scatter(x=frame["segment"], y=frame["precision_untreated"],
                             mode="lines+markers", name="without intervened officers",
                             line={"dash": "dot"}, marker={"symbol": symbols, "size": 7}))
    fig.add_trace(go.Scatter(x=frame["segment"], y=frame["model_precision"],
                             mode="lines+markers", name="the model's top k, cool-off included "
                             "(tested)", line={"dash": "dash"},
                             marker={"symbol": symbols, "size": 7}))
    fig.update_layout(title="Realised precision@k of each production list (open marker: "
                            "label window still open)", yaxis_tickformat=".0%",
                      yaxis_range=[-0.05, 1.05], xaxis_type="category", height=380)
    return page.add(fig)


def fairness_figure(metrics: pd.DataFrame, page: PlotlyPage) -> Any | None:
    part = metrics[(metrics["section"] == "list_fairness_group")
                   & (metrics["metric"] == "selection_rate")]
    if part.empty:
        return None
    fig = go.Figure([go.Scatter(x=g["segment"], y=g["value"], mode="lines+markers", name=s)
                     for s, g in part.groupby("subject", sort=False)])
    fig.update_layout(title="Share of each officer group on the list", yaxis_tickformat=".0%",
                      xaxis_type="category", height=360)
    return page.add(fig)


def agreement_figure(rows: list[dict[str, Any]], page: PlotlyPage) -> Any | None:
    frame = pd.DataFrame(rows)
    if "agreement_rate" not in frame or frame["agreement_rate"].isna().all():
        return None
    fig = go.Figure(go.Scatter(x=frame["segment"], y=frame["agreement_rate"],
                               mode="lines+markers", name="agree / (agree + disagree)",
                               text=[f"{n:.0f} reviews" for n in frame["reviews"].fillna(0)]))
    fig.update_layout(title="Reviewers' agreement with each list's flags",
                      yaxis_tickformat=".0%", yaxis_range=[-0.05, 1.05],
                      xaxis_type="category", height=320)
    return page.add(fig)


def list_sections(metrics: pd.DataFrame, page: PlotlyPage) -> dict[str, Any] | None:
    """Everything the report's production-list part shows; None for a case project's pass."""
    rows = list_rows(metrics)
    if not rows:
        return None
    promised = promises(metrics)
    fairness = metrics[metrics["section"] == "list_fairness"]
    overall = metrics[(metrics["section"] == "agreement") & (metrics["segment"] == "all")]
    return {"rows": rows, "promises": promised,
            "precision": precision_figure(rows, promised, page),
            "fairness": fairness_figure(metrics, page),
            "fairness_rows": fairness.to_dict("records"),
            "agreement": agreement_figure(rows, page),
            "agreement_all": overall.set_index("metric")["value"].to_dict()}
