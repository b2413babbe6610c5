"""Stand-alone fairness audit of a scored data set: groups, disparities, summary, reports.

:func:`audit` is the one call behind ``rudi audit``: it turns a score (or 0/1 prediction) column
into predictions, computes every group metric for the protected attributes and their
intersections (:mod:`~rudikit.fairness.group_metrics`), compares each group with a reference
group (:mod:`~rudikit.fairness.disparities`) and adds OxonFair-style summary measures
(:mod:`~rudikit.fairness.summary`). The :class:`AuditResult` writes CSV, JSON and a
self-contained HTML page, and renders rich tables in a terminal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from rudikit.fairness.disparities import (
    STATUS_INSUFFICIENT,
    STATUS_REFERENCE,
    IntervalMethod,
    Reference,
    disparities,
    disparity_wide,
)
from rudikit.fairness.group_metrics import (
    MISSING_GROUP,
    RATE_METRICS,
    TieBreak,
    _group_table,
    attribute_name,
    available_columns,
    binarize,
    check_binary,
    check_scores,
    top_k_size,
)
from rudikit.fairness.summary import summary_measures
from rudikit.store.results import plain

# Metrics shown in the chart and the terminal (all metrics are in the tables and files).
KEY_METRICS: tuple[str, ...] = ("pprev", "ppr", "precision", "fdr", "for", "tpr", "fnr", "fpr")
TERMINAL_METRICS: tuple[str, ...] = ("pprev", "ppr", "precision", "tpr", "fpr", "fnr")

METRIC_LABELS: dict[str, str] = {
    "prevalence": "prevalence (label base rate)",
    "pprev": "selection rate (pprev)",
    "ppr": "share of all flagged (ppr)",
    "precision": "precision (ppv)",
    "fdr": "false discovery rate",
    "for": "false omission rate",
    "npv": "negative predictive value",
    "tpr": "recall (tpr)",
    "fnr": "false negative rate",
    "fpr": "false positive rate",
    "tnr": "specificity (tnr)",
    "accuracy": "accuracy",
    "roc_auc": "ROC AUC",
}


@dataclass
class AuditResult:
    """Everything an audit found.

    ``groups``: wide table, one row per (attribute, group), counts and all metrics.
    ``disparities``: tidy long table, one row per (attribute, group, metric) with value, Wilson
    (or bootstrap) interval, reference group, ratio, difference in points, z-test p-value, the
    fairness flag and a status (see :mod:`rudikit.fairness.disparities`); ready for a SQL table.
    ``summary``: one row per (attribute, summary measure). ``settings``: the audit's parameters.
    """

    groups: pd.DataFrame
    disparities: pd.DataFrame
    summary: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    def to_long(self) -> pd.DataFrame:
        """The tidy per-(attribute, group, metric) table (a copy)."""
        return self.disparities.copy()

    def to_wide(self) -> pd.DataFrame:
        """Aequitas-style wide table with ``{metric}`` and ``{metric}_disparity`` columns."""
        return disparity_wide(self.disparities)

    def to_csv(self, path: str | Path) -> Path:
        """Write the tidy long table as CSV."""
        path = Path(path)
        self.disparities.to_csv(path, index=False)
        return path

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and NA become null)."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(frame.to_json(orient="records"))

        return {
            "settings": plain(self.settings),
            "summary": records(self.summary),
            "groups": records(self.groups),
            "disparities": records(self.disparities),
        }

    def to_json(self, path: str | Path) -> Path:
        """Write settings, summary, group table and disparities as one JSON document."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    def figure(self, metrics: Sequence[str] = KEY_METRICS) -> Any:
        """Plotly bar chart of disparity ratios (log scale), one view per attribute."""
        return _figure(self, metrics)

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML report (plotly.js inlined: works offline)."""
        path = Path(path)
        path.write_text(_html(self), encoding="utf-8")
        return path

    def render(self, console: Console | None = None, *, max_rows: int = 40) -> None:
        """Print the summary and one table per attribute (at most ``max_rows`` groups each)."""
        _render(self, console or Console(), max_rows=max_rows)


def _attribute_specs(
    frame: pd.DataFrame, attributes: Sequence[str], intersections: Sequence[Sequence[str]] | None
) -> list[str | list[str]]:
    if isinstance(attributes, str):
        attributes = [attributes]
    specs: list[str | list[str]] = []
    for a in attributes:
        if not isinstance(a, str):
            raise ValueError(f"attributes must be column names, got {a!r}; use intersections "
                             "for crossed attributes")
        specs.append(a)
    for combo in intersections or []:
        if isinstance(combo, str):
            raise ValueError(f"each intersection must be a list of column names, got {combo!r}")
        cols = list(combo)
        if len(cols) < 2:
            raise ValueError(f"an intersection needs at least two columns, got {cols}")
        specs.append(cols)
    if not specs:
        raise ValueError("attributes is empty; name at least one protected attribute column")
    for spec in specs:
        for col in [spec] if isinstance(spec, str) else spec:
            if col not in frame.columns:
                raise ValueError(
                    f"unknown attribute column {col!r}; available columns: "
                    f"{available_columns(frame.columns)}"
                )
    names = [attribute_name(s) for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"attribute(s) {dupes} listed more than once")
    return specs


def audit(
    frame: pd.DataFrame,
    label: str,
    score: str,
    attributes: Sequence[str],
    *,
    intersections: Sequence[Sequence[str]] | None = None,
    threshold: float | None = None,
    top_k: int | None = None,
    top_pct: float | None = None,
    tie_break: TieBreak = "stable",
    random_state: int | None = 0,
    reference: Reference = "majority",
    min_group_size: int = 50,
    metrics: Sequence[str] = RATE_METRICS,
    fairness_bounds: tuple[float, float] | None = (0.8, 1.25),
    confidence: float = 0.95,
    alpha: float = 0.05,
    interval: IntervalMethod = "wilson",
    n_bootstrap: int = 1000,
    roc_auc: bool = True,
    summary_aggregate: Literal["max", "mean"] = "max",
    missing_label: str = MISSING_GROUP,
) -> AuditResult:
    """Audit ``score`` against ``label`` for every protected attribute and intersection.

    Predictions: ``score >= threshold``, the ``top_k`` highest scores, or the top ``top_pct``
    percent (ties at the k-th score: see :func:`rudikit.fairness.group_metrics.binarize`). With
    none of the three, ``score`` must already be a 0/1 prediction. ``intersections`` are lists
    of columns to cross, e.g. ``[["station", "race", "sex"]]``, named ``"station:race:sex"``; names
    can be used as keys of a ``reference`` mapping (``{"race:sex": "Caucasian:Male"}``).

    ``reference``, ``min_group_size``, ``fairness_bounds``, ``confidence``, ``alpha``,
    ``interval`` and ``n_bootstrap`` are passed to :func:`rudikit.fairness.disparities.disparities`;
    ``summary_aggregate`` to :func:`rudikit.fairness.summary.summary_measures`.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    for what, col in (("label", label), ("score", score)):
        if col not in frame.columns:
            raise ValueError(f"{what}: unknown column {col!r}; available columns: "
                             f"{available_columns(frame.columns)}")
    if len(frame) == 0:
        raise ValueError("frame has no rows")
    specs = _attribute_specs(frame, attributes, intersections)
    y = check_binary(frame[label], f"label column {label!r}")
    selection = {"threshold": threshold, "top_k": top_k, "top_pct": top_pct}
    chosen = [k for k, v in selection.items() if v is not None]
    if len(chosen) > 1:
        raise ValueError(f"give at most one of threshold, top_k and top_pct, got {chosen}")
    if chosen:
        scores = check_scores(frame[score], f"score column {score!r}")
        pred = binarize(scores, threshold=threshold, top_k=top_k, top_pct=top_pct,
                        tie_break=tie_break, random_state=random_state)
        mode = chosen[0]
    else:
        try:
            pred = check_binary(frame[score], f"score column {score!r}")
        except ValueError as err:
            raise ValueError(f"{err}; to audit a continuous score give threshold, top_k or "
                             "top_pct") from None
        scores = None
        mode = "predictions"
    groups = _group_table(y, pred, scores, frame, specs, roc_auc=roc_auc,
                          missing_label=missing_label)
    if isinstance(reference, Mapping):
        reference = {str(k): str(v) for k, v in reference.items()}
    long = disparities(
        groups,
        reference=reference,
        metrics=[m for m in metrics if roc_auc or m != "roc_auc"],
        min_group_size=min_group_size,
        fairness_bounds=fairness_bounds,
        confidence=confidence,
        alpha=alpha,
        interval=interval,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
    )
    summary = summary_measures(groups, min_group_size=min_group_size, aggregate=summary_aggregate)
    settings: dict[str, Any] = {
        "label": label,
        "score": score,
        "rows": len(frame),
        "predicted_positive": int(pred.sum()),
        "selection": mode,
        "threshold": threshold,
        "top_k": top_k,
        "top_pct": top_pct,
        "list_size": top_k_size(len(frame), top_k=top_k, top_pct=top_pct)
        if mode in ("top_k", "top_pct") else None,
        "tie_break": tie_break if mode in ("top_k", "top_pct") else None,
        "attributes": [attribute_name(s) for s in specs],
        "reference": dict(reference) if isinstance(reference, Mapping) else reference,
        "min_group_size": min_group_size,
        "fairness_bounds": list(fairness_bounds) if fairness_bounds else None,
        "confidence": confidence,
        "alpha": alpha,
        "interval": interval,
        "summary_aggregate": summary_aggregate,
    }
    return AuditResult(groups=groups, disparities=long, summary=summary, settings=settings)


# --------------------------------------------------------------------------------------------
# presentation
# --------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or value is pd.NA:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "–"
    return f"{v:.{digits}f}"


def _fmt_p(value: Any) -> str:
    if value is None or value is pd.NA or not math.isfinite(float(value)):
        return "–"
    return f"{float(value):.2g}" if float(value) < 0.001 else f"{float(value):.3f}"


def _reference_text(settings: Mapping[str, Any]) -> str:
    ref = settings.get("reference")
    if isinstance(ref, Mapping):
        named = ", ".join(f"{a} = {g}" for a, g in ref.items())
        return f"{named}; other attributes: their largest group"
    if ref == "min_metric":
        return "the eligible group with the lowest value of each metric"
    return "the largest group of each attribute"


def _selection_text(settings: Mapping[str, Any]) -> str:
    mode = settings.get("selection")
    if mode == "threshold":
        return f"score >= {settings['threshold']:g}"
    if mode in ("top_k", "top_pct"):
        what = (f"top {settings['top_k']}" if mode == "top_k"
                else f"top {settings['top_pct']:g}%")
        return f"{what} ({settings['list_size']} rows; ties: {settings['tie_break']})"
    return "0/1 predictions as given"


def _cell_text(r: pd.Series) -> str:
    value = _fmt(r["value"])
    if r["status"] == STATUS_INSUFFICIENT:
        return f"[dim]{value}[/dim]"
    if r["status"] == STATUS_REFERENCE:
        return f"{value} [blue]ref[/blue]"
    if pd.isna(r["disparity_ratio"]):
        return value
    star = "*" if pd.notna(r["significant"]) and r["significant"] else ""
    text = f"{value} x{_fmt(r['disparity_ratio'], 2)}{star}"
    if pd.notna(r["fair"]) and not r["fair"]:
        return f"[red]{text}[/red]"
    return text


def _render(result: AuditResult, console: Console, *, max_rows: int) -> None:
    s = result.settings
    console.print(
        f"[bold]Fairness audit[/bold]: {s.get('rows')} rows, label [cyan]{s.get('label')}[/cyan], "
        f"score [cyan]{s.get('score')}[/cyan], positive = {_selection_text(s)}, "
        f"reference: {_reference_text(s)}; min group size {s.get('min_group_size')}",
        highlight=False,
    )
    summary = result.summary
    attrs = list(pd.unique(summary["attribute"]))
    table = Table(title="Summary measures (groups with enough data)")
    table.add_column("measure")
    for a in attrs:
        table.add_column(str(a), justify="right")
    for measure, part in summary.groupby("measure", sort=False):
        values = dict(zip(part["attribute"], part["value"], strict=True))
        table.add_row(str(measure), *(_fmt(values.get(a), 4) if a in values else "" for a in attrs))
    console.print(table)

    long = result.disparities
    metrics = [m for m in TERMINAL_METRICS if m in set(long["metric"])]
    metrics = metrics[: max(3, (console.width - 24) // 12)]  # what fits the terminal
    for attribute, part in long.groupby("attribute", sort=False):
        refs = pd.unique(part.loc[part["status"] == STATUS_REFERENCE, "group"])
        ref = refs[0] if len(refs) == 1 else "lowest value per metric" if len(refs) else "none"
        table = Table(
            title=f"{attribute} (reference: {ref})",
            caption="value x ratio to reference; red: ratio outside the fairness bounds; "
            "* p < alpha; dim: insufficient data",
        )
        table.add_column("group", overflow="fold", min_width=10)
        table.add_column("n", justify="right", min_width=4)
        for m in metrics:
            table.add_column(m, justify="right")
        by_group = list(part.groupby("group", sort=False))
        for i, (group, df) in enumerate(by_group):
            if i == max_rows:
                table.add_row(f"... {len(by_group) - max_rows} more groups (see CSV/HTML)")
                break
            df = df.set_index("metric")
            table.add_row(str(group), str(int(df["n"].iloc[0])),
                          *(_cell_text(df.loc[m]) for m in metrics))
        console.print(table)


def _figure(result: AuditResult, metrics: Sequence[str]) -> Any:
    import plotly.graph_objects as go

    long = result.disparities
    shown = long[long["metric"].isin(metrics) & long["status"].isin(["ok", STATUS_REFERENCE])]
    attributes = list(pd.unique(long["attribute"]))
    fig = go.Figure()
    visibility: list[list[bool]] = []
    trace_attr: list[str] = []
    for attribute in attributes:
        part = shown[shown["attribute"] == attribute]
        for metric in metrics:
            d = part[part["metric"] == metric]
            fig.add_trace(go.Bar(
                x=d["group"], y=d["disparity_ratio"], name=metric,
                legendgroup=metric, visible=attribute == attributes[0],
                customdata=np.stack([d["value"], d["reference_value"], d["p_value"]], axis=-1)
                if len(d) else None,
                hovertemplate=(f"{metric} %{{x}}: ratio %{{y:.3f}}<br>value %{{customdata[0]:.3f}}"
                               " vs reference %{customdata[1]:.3f}<br>p = %{customdata[2]:.3g}"
                               "<extra></extra>"),
            ))
            trace_attr.append(attribute)
    for attribute in attributes:
        visibility.append([a == attribute for a in trace_attr])
    bounds = result.settings.get("fairness_bounds") or None
    shapes = []
    if bounds:
        shapes.append(dict(type="rect", xref="paper", x0=0, x1=1, yref="y", y0=bounds[0],
                           y1=bounds[1], fillcolor="rgba(0,160,0,0.08)", line_width=0,
                           layer="below"))
    shapes.append(dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=1, y1=1,
                       line=dict(color="grey", dash="dot")))
    fig.update_layout(
        title=f"Disparity ratios vs reference — {attributes[0] if attributes else ''}",
        yaxis=dict(title="ratio to reference (log scale)", type="log"),
        barmode="group",
        shapes=shapes,
        legend_title_text="metric",
        template="plotly_white",
        height=520,
        updatemenus=[dict(
            buttons=[dict(label=a, method="update",
                          args=[{"visible": v},
                                {"title": f"Disparity ratios vs reference — {a}"}])
                     for a, v in zip(attributes, visibility, strict=True)],
            direction="down", x=1.0, xanchor="right", y=1.15, yanchor="top",
        )] if len(attributes) > 1 else [],
    )
    return fig


_HTML = jinja2.Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Fairness audit: {{ s.score }} vs {{ s.label }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; }
td.unfair { background: #fde0dc; } td.fair { background: #e6f4e6; }
td.small { color: #999; } td.ref { background: #e8eefc; }
.note { color: #555; font-size: 0.9em; } .ratio { color: #555; font-size: 0.85em; }
</style></head><body>
<h1>Fairness audit</h1>
<p>{{ s.rows }} rows; label <b>{{ s.label }}</b>; score <b>{{ s.score }}</b>;
positive prediction: <b>{{ selection }}</b> ({{ s.predicted_positive }} flagged).
Reference: <b>{{ reference }}</b>. Groups with fewer than {{ s.min_group_size }} rows are
shown but not compared (<i>insufficient data</i>).
{% if s.fairness_bounds %}Ratios within {{ s.fairness_bounds[0] }}–{{ s.fairness_bounds[1] }}
count as fair (aequitas rule).{% endif %}
Intervals: {{ s.interval|capitalize }} {{ (s.confidence * 100)|round(0)|int }} %;
* marks a two-proportion z-test p &lt; {{ s.alpha }} on the metric's own denominator
(no multiple-comparison correction).</p>
<h2>Summary measures</h2>
<table><tr><th class="l">attribute</th><th class="l">measure</th><th>value</th>
<th class="l">highest group</th><th class="l">lowest group</th><th>groups</th></tr>
{% for r in summary %}<tr><td class="l">{{ r.attribute }}</td><td class="l">{{ r.measure }}</td>
<td>{{ fmt(r.value, 4) }}</td>
<td class="l">{% if r.max_group %}{{ r.max_group }} ({{ fmt(r.max_value) }}){% endif %}</td>
<td class="l">{% if r.min_group %}{{ r.min_group }} ({{ fmt(r.min_value) }}){% endif %}</td>
<td>{{ r.groups_compared if r.groups_compared is not none else '' }}</td></tr>
{% endfor %}</table>
<h2>Disparities</h2>
{{ chart|safe }}
{% for a in attributes %}
<h3>{{ a.name }}</h3>
<table><tr><th class="l">group</th><th>n</th>
{% for m in metrics %}<th title="{{ labels[m] }}">{{ m }}</th>{% endfor %}
<th class="l">status</th></tr>
{% for g in a.rows %}<tr><td class="l">{{ g.group }}</td><td>{{ g.n }}</td>
{% for c in g.cells %}<td class="{{ c.css }}" title="{{ c.title }}">{{ c.value }}<br>
<span class="ratio">{{ c.ratio }}</span></td>{% endfor %}
<td class="l">{{ g.status }}</td></tr>
{% endfor %}</table>
{% endfor %}
<p class="note">Each cell: metric value, then ratio to the reference group. Hover a cell for the
interval, the difference in percentage points and the p-value.</p>
</body></html>
""",
    autoescape=True,
)


def _html(result: AuditResult) -> str:
    long = result.disparities
    metrics = [m for m in RATE_METRICS if m in set(long["metric"])]
    attributes = []
    for attribute, part in long.groupby("attribute", sort=False):
        rows = []
        for group, df in part.groupby("group", sort=False):
            df = df.set_index("metric")
            cells = []
            status = "ok"
            for m in metrics:
                r = df.loc[m]
                css = ""
                if r["status"] == STATUS_INSUFFICIENT:
                    css, status = "small", STATUS_INSUFFICIENT
                elif r["status"] == STATUS_REFERENCE:
                    css, status = "ref", STATUS_REFERENCE
                elif pd.notna(r["fair"]):
                    css = "fair" if r["fair"] else "unfair"
                star = "*" if pd.notna(r["significant"]) and r["significant"] else ""
                cells.append({
                    "value": _fmt(r["value"]),
                    "ratio": (_fmt(r["disparity_ratio"], 2) + star)
                    if pd.notna(r["disparity_ratio"]) else "",
                    "css": css,
                    "title": (f"{METRIC_LABELS.get(m, m)}: {_fmt(r['value'])} "
                              f"[{_fmt(r['lower'])}, {_fmt(r['upper'])}]; "
                              f"diff {_fmt(r['difference_pp'], 1)} pp; "
                              f"p = {_fmt_p(r['p_value'])}; {r['status']}"),
                })
            rows.append({"group": group, "n": int(df["n"].iloc[0]), "cells": cells,
                         "status": status})
        attributes.append({"name": attribute, "rows": rows})
    chart = result.figure().to_html(full_html=False, include_plotlyjs=True)
    return _HTML.render(
        s=result.settings,
        selection=_selection_text(result.settings),
        reference=_reference_text(result.settings),
        summary=[{k: (None if v is None or v is pd.NA or (isinstance(v, float) and
                                                           math.isnan(v)) else v)
                  for k, v in row.items()} for row in result.summary.to_dict("records")],
        attributes=attributes,
        metrics=metrics,
        labels=METRIC_LABELS,
        chart=chart,
        fmt=_fmt,
    )
