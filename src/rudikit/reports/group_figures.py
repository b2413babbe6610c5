"""The fairness charts of groups, readable however many groups an attribute has.

A few groups: grouped bars per metric with their 95% intervals. Many groups (an intersection
such as station x ethnicity easily has 30 or more cells): one small panel per metric sharing
the group axis, a dot per group with its interval, sorted, the largest ``TOP`` groups by name
and the rest folded into one "other" row (its rate pooled from the stored numerators and
denominators). Either way a group whose metric rests on fewer than ``min_group_size`` cases is
drawn hollow and marked "too few": it is shown, never compared. Dots are never joined by lines
(groups are not a sequence), and the ratio chart's log axis has labelled ticks only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from statsmodels.stats.proportion import proportion_confint

from rudikit.evaluation.display import metric_name

#: The group metrics charted, in order: audit code -> the name rudi.yaml uses for it.
AUDIT_METRICS = {m: metric_name(m) for m in ("precision", "tpr", "fpr", "pprev")}
#: More groups than this: a dot plot in small multiples instead of grouped bars.
MANY = 12
#: Groups kept by name in a dot plot (the largest); the rest are folded into "other".
TOP = 30
#: Ticks of the ratio axis (log scale): these and no minor ones (the 0.8 and 1.25 bounds are
#: drawn as lines; labelled too, they would collide on a narrow panel).
RATIO_TICKS = (0.25, 0.5, 1.0, 2.0, 4.0)
COLOR = "#1f77b4"


def _too_few(rows: pd.DataFrame, min_size: int) -> np.ndarray:
    """Whether each cell rests on fewer than ``min_size`` cases of its metric's own
    denominator (or the audit found too few data for it)."""
    denominator = rows["denominator"] if "denominator" in rows else rows["n"]
    return (rows["status"].astype(str).str.contains("insufficient")
            | (denominator.fillna(rows["n"]) < min_size)).to_numpy()


def fold_groups(rows: pd.DataFrame, top: int = TOP) -> pd.DataFrame:
    """The ``top`` largest groups (by rows) of one attribute's audit, and the rest pooled into
    one row ``other (k groups)`` per metric: its rate is the pooled numerator over the pooled
    denominator, with a Wilson 95% interval."""
    sizes = rows.groupby("group_value")["n"].max().sort_values(ascending=False, kind="stable")
    if len(sizes) <= top:
        return rows
    kept = set(sizes.index[:top])
    rest = rows[~rows["group_value"].isin(kept)]
    folded = []
    label = f"other ({len(sizes) - top} groups)"
    for metric, part in rest.groupby("metric", sort=False):
        num, den = float(part["numerator"].sum()), float(part["denominator"].sum())
        low, high = proportion_confint(num, den, method="wilson") if den else (np.nan, np.nan)
        folded.append({"metric": metric, "group_value": label, "n": int(part["n"].sum()),
                       "value": num / den if den else np.nan, "lower": low, "upper": high,
                       "numerator": num, "denominator": den, "status": "folded",
                       "disparity_ratio": np.nan})
    return pd.concat([rows[rows["group_value"].isin(kept)], pd.DataFrame(folded)],
                     ignore_index=True)


def _f4(values: pd.Series) -> np.ndarray:
    """Single precision (the chart shows three decimals, and a page of many groups stays
    small); a missing value stays missing, so it is not drawn."""
    return values.to_numpy(dtype=np.float32, na_value=np.nan)


def _bars(attribute: str, part: pd.DataFrame, min_size: int) -> go.Figure:
    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for color, metric in zip(palette, AUDIT_METRICS, strict=True):
        m = part[part["metric"] == metric]
        if not len(m):
            continue
        few = _too_few(m, min_size)
        fig.add_trace(go.Bar(
            x=m["group_value"], y=m["value"], name=metric_name(metric),
            marker={"color": np.where(few, "rgba(255,255,255,0)", color),
                    "line": {"color": color, "width": 2}},
            text=np.where(few, "too few", ""), textposition="inside",
            insidetextanchor="start", textangle=-90, textfont={"color": color},
            error_y={"type": "data", "symmetric": False,
                     "array": (m["upper"] - m["value"]).fillna(0),
                     "arrayminus": (m["value"] - m["lower"]).fillna(0)},
            customdata=np.c_[m["n"], m["status"], m["disparity_ratio"]],
            hovertemplate="%{x}: %{y:.3f}<br>n=%{customdata[0]}, %{customdata[1]}"
                          "<br>ratio to reference %{customdata[2]:.2f}<extra></extra>"))
    fig.update_layout(barmode="group", height=440, yaxis_title="rate",
                      yaxis={"range": [0, 1.12]}, xaxis={"automargin": True},
                      title=f"Group metrics by {attribute} (hollow, \"too few\": fewer than "
                            f"{min_size} cases, not compared)")
    return fig


def dot_plot(title: str, part: pd.DataFrame, column: str, min_size: int, *,
             log: bool = False, bounds: tuple[float, ...] = ()) -> go.Figure:
    """One panel per metric, the groups down the shared vertical axis (sorted by the first
    metric's ``column``), a dot and its interval per group: filled when it rests on enough
    cases, hollow when on too few. Markers only: groups are not a sequence."""
    metrics = [m for m in AUDIT_METRICS if (part["metric"] == m).any()]
    first = part[part["metric"] == metrics[0]].sort_values(column, na_position="first")
    order = list(dict.fromkeys(first["group_value"].tolist()
                               + part["group_value"].drop_duplicates().tolist()))
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=[metric_name(m) for m in metrics])
    for col, metric in enumerate(metrics, start=1):
        m = part[part["metric"] == metric]
        few = _too_few(m, min_size)
        for hollow, name in ((False, "enough cases"), (True, f"too few (< {min_size} cases)")):
            rows = m[few == hollow]
            if not len(rows):
                continue
            interval = {} if column != "value" else {"error_x": {
                "type": "data", "symmetric": False,
                "array": _f4((rows["upper"] - rows["value"]).fillna(0)),
                "arrayminus": _f4((rows["value"] - rows["lower"]).fillna(0))}}
            fig.add_trace(go.Scatter(
                x=_f4(rows[column]), y=rows["group_value"], mode="markers", name=name,
                legendgroup=name, showlegend=col == 1 or name not in
                {t.name for t in fig.data},
                marker={"symbol": "circle-open" if hollow else "circle", "size": 8,
                        "color": COLOR, "line": {"width": 2 if hollow else 0}},
                customdata=rows["n"].to_numpy(dtype=np.int32),
                hovertemplate="%{y}: %{x:.3f}, n=%{customdata}<extra>%{fullData.name}"
                              "</extra>", **interval), row=1, col=col)
        for bound in bounds:
            fig.add_vline(x=bound, row=1, col=col, line={
                "dash": "solid" if bound == 1.0 else "dot", "color": "grey", "width": 1})
        fig.update_xaxes(row=1, col=col, **_x_axis(part[column], log))
    fig.update_yaxes(categoryorder="array", categoryarray=order, automargin=True,
                     tickfont={"size": 11})
    height = 140 + 20 * len(order)
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10},
                      legend={"orientation": "h", "x": 0, "yanchor": "top",
                              "y": -40 / (height - 130)})
    return fig


def _x_axis(values: pd.Series, log: bool) -> dict[str, object]:
    """Rates on [0, 1]; ratios on a log axis spanning 0.2-5 (wider when a ratio is outside),
    the same on every panel, with :data:`RATIO_TICKS` only."""
    if not log:
        return {"range": [-0.03, 1.03], "tickvals": [0, 0.5, 1]}
    finite = values[np.isfinite(values) & (values > 0)]
    low = min(0.2, float(finite.min())) if len(finite) else 0.2
    high = max(5.0, float(finite.max())) if len(finite) else 5.0
    return {"type": "log", "range": [np.log10(low) - 0.05, np.log10(high) + 0.05],
            "tickvals": list(RATIO_TICKS), "ticktext": [f"{t:g}" for t in RATIO_TICKS],
            "minor": {"ticks": "", "showgrid": False}}


def audit_figures(audits: pd.DataFrame, model_id: int, min_size: int = 50) -> list[go.Figure]:
    """Per attribute: the group metrics with their 95% intervals; bars for a few groups, a
    sorted dot plot in small multiples for many."""
    rows = audits[(audits["model_id"] == model_id)
                  & audits["metric"].isin(list(AUDIT_METRICS))] if len(audits) else audits
    figures = []
    for attribute, part in (rows.groupby("attribute", sort=False) if len(rows) else []):
        groups = part["group_value"].nunique()
        if groups <= MANY:
            figures.append(_bars(attribute, part, min_size))
            continue
        folded = fold_groups(part)
        shown = folded["group_value"].nunique()
        figures.append(dot_plot(
            f"Group metrics by {attribute}: {groups} groups"
            + (f", the {TOP} largest and the rest folded" if shown < groups else "")
            + f" (hollow: fewer than {min_size} cases, not compared)",
            folded, "value", min_size))
    return figures


def disparity_figures(audits: pd.DataFrame, model_id: int) -> list[go.Figure]:
    """Per attribute: each compared group's metric as a ratio to the reference group's, with
    the 0.8-1.25 band; groups too small to compare are left out (the group metrics chart
    shows them). Bars for a few groups, a dot plot on a log axis for many."""
    compared = ["ok", "unfair", "inconclusive"]
    rows = audits[(audits["model_id"] == model_id) & audits["status"].isin(compared)
                  & audits["metric"].isin(list(AUDIT_METRICS))] if len(audits) else audits
    figures = []
    for attribute, part in (rows.groupby("attribute", sort=False) if len(rows) else []):
        reference = part["reference_group"].dropna()
        title = (f"Disparity by {attribute}, ratio to "
                 f"{reference.iloc[0] if len(reference) else 'the reference'} (band 0.8-1.25)")
        if part["group_value"].nunique() > MANY:
            figures.append(dot_plot(title, part.assign(status=part["status"]),
                                    "disparity_ratio", 0, log=True, bounds=(0.8, 1.0, 1.25)))
            continue
        fig = go.Figure()
        for metric in AUDIT_METRICS:
            m = part[part["metric"] == metric]
            if len(m):
                fig.add_trace(go.Bar(
                    x=m["group_value"], y=m["disparity_ratio"], name=metric_name(metric),
                    customdata=np.c_[m["reference_group"], m["difference_pp"], m["p_value"]],
                    hovertemplate="%{x}: ratio %{y:.2f} to %{customdata[0]}<br>"
                                  "%{customdata[1]:.1f} points, p=%{customdata[2]:.3g}"
                                  "<extra></extra>"))
        for bound in (0.8, 1.0, 1.25):
            fig.add_hline(y=bound, line={"dash": "dot" if bound != 1.0 else "solid",
                                         "color": "grey"})
        fig.update_layout(barmode="group", height=400, yaxis_title="ratio to reference",
                          title=title)
        figures.append(fig)
    return figures
