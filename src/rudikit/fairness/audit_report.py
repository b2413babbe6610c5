"""How an audit is shown: rich tables in a terminal, a plotly chart of disparity ratios and a
self-contained HTML page (:class:`rudikit.fairness.audit.AuditResult` calls these)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rudikit.evaluation import display
from rudikit.fairness.counts import RATE_METRICS
from rudikit.fairness.disparities import (
    DESCRIPTIVE_METRICS,
    STATUS_INCONCLUSIVE,
    STATUS_INSUFFICIENT,
    STATUS_OK,
    STATUS_REFERENCE,
    STATUS_UNFAIR,
)
from rudikit.fairness.significance import CORRECTION_NAMES
from rudikit.fairness.summary import measure_reading

if TYPE_CHECKING:
    from rudikit.fairness.audit import AuditResult

# Metrics shown in the chart and the terminal (all metrics are in the tables and files).
KEY_METRICS: tuple[str, ...] = ("pprev", "ppr", "precision", "fdr", "for", "tpr", "fnr", "fpr")
TERMINAL_METRICS: tuple[str, ...] = ("pprev", "ppr", "precision", "tpr", "fpr", "fnr")

#: The names rudi.yaml uses (recall, not tpr), one list for every report.
METRIC_LABELS: dict[str, str] = display.METRIC_NAMES | {
    "prevalence": "prevalence (label base rate)"}


def _fmt(value: Any, digits: int = 3) -> str:
    """:func:`rudikit.evaluation.display.number`, with a dash for a missing figure (the
    audit's tables are dense)."""
    return "–" if display.missing(value) else display.number(float(value), digits)


def _reference_text(settings: Mapping[str, Any]) -> str:
    ref = settings.get("reference")
    if isinstance(ref, Mapping):
        named = ", ".join(f"{a} = {g}" for a, g in ref.items())
        return (f"{named}; intersections: these groups crossed; "
                "other attributes: their largest group")
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


def _correction_text(settings: Mapping[str, Any]) -> str:
    name = CORRECTION_NAMES.get(str(settings.get("correction", "holm")), "Holm")
    return f"{name}-corrected p < {settings.get('alpha', 0.05)}"


def _cell_text(r: pd.Series) -> str:
    value = _fmt(r["value"])
    if r["status"] == STATUS_INSUFFICIENT:
        return f"[dim]{value}[/dim]"
    if r["status"] == STATUS_REFERENCE:
        return f"{value} [blue]ref[/blue]"
    star = "*" if pd.notna(r["significant"]) and r["significant"] else ""
    if pd.notna(r["disparity_ratio"]):
        text = f"{value} x{_fmt(r['disparity_ratio'], 2)}{star}"
    elif r["status"] in (STATUS_UNFAIR, STATUS_INCONCLUSIVE) or pd.notna(r["fair"]):
        text = f"{value} {float(r['difference_pp']):+.1f}pp{star}"  # reference at 0
    else:
        return value
    if r["status"] == STATUS_UNFAIR:
        return f"[red]{text}[/red]"
    if r["status"] == STATUS_INCONCLUSIVE:
        return f"[yellow]{text}?[/yellow]"
    return text


def render(result: AuditResult, console: Console, *, max_rows: int) -> None:
    s = result.settings
    where = f" where {s['where']}" if s.get("where") else ""
    console.print(
        f"[bold]Fairness audit[/bold]: {s.get('rows')} rows{escape(where)}, "
        f"label [cyan]{s.get('label')}[/cyan], "
        f"score [cyan]{s.get('score')}[/cyan], positive = {_selection_text(s)}, "
        f"reference: {_reference_text(s)}; min denominator {s.get('min_group_size')}; "
        f"unfair when {_correction_text(s)}",
        highlight=False,
    )
    if s.get("tie_warning"):
        console.print(f"[yellow]warning[/yellow]: {escape(s['tie_warning'])}", highlight=False)
    summary = result.summary
    attrs = list(pd.unique(summary["attribute"]))
    table = Table(title="Summary measures (groups with enough data)")
    table.add_column("measure (how to read it)", ratio=1, min_width=24)
    for a in attrs:
        table.add_column(str(a), justify="right")
    for measure, part in summary.groupby("measure", sort=False):
        values = dict(zip(part["attribute"], part["value"], strict=True))
        table.add_row(f"{measure}\n[dim]{measure_reading(str(measure))}[/dim]",
                      *(_fmt(values.get(a), 4) if a in values else "" for a in attrs))
    console.print(table)

    long = result.disparities
    metrics = [m for m in TERMINAL_METRICS if m in set(long["metric"])]
    # Never drop a metric: when they do not all fit the terminal (80 columns, or piped), the
    # metrics are split over several tables of ``per`` columns each.
    per = max(2, (console.width - 20) // 16)
    chunks = [metrics[i:i + per] for i in range(0, len(metrics), per)] or [[]]
    for attribute, part in long.groupby("attribute", sort=False):
        refs = pd.unique(part.loc[part["status"] == STATUS_REFERENCE, "group"])
        ref = refs[0] if len(refs) == 1 else "lowest value per metric" if len(refs) else "none"
        by_group = list(part.groupby("group", sort=False))
        for c, chunk in enumerate(chunks):
            more = f", metrics {c + 1} of {len(chunks)}" if len(chunks) > 1 else ""
            table = Table(title=f"{attribute} (reference: {ref}){more}")
            if c == len(chunks) - 1:
                table.caption = (
                    "value x ratio to reference (+pp: difference, where the reference is 0); "
                    f"red: unfair (outside the fairness bounds, "
                    f"{_correction_text(result.settings)}); yellow ?: inconclusive (outside, "
                    "not significant); * p < alpha against the reference, uncorrected; dim: "
                    "insufficient data (metric's denominator under "
                    f"{result.settings.get('min_group_size')})")
            table.add_column("group", overflow="fold", min_width=10)
            table.add_column("n", justify="right", min_width=4)
            for m in chunk:
                table.add_column(m, justify="right", overflow="fold")
            for i, (group, df) in enumerate(by_group):
                if i == max_rows:
                    table.add_row(f"... {len(by_group) - max_rows} more groups (see CSV/HTML)")
                    break
                df = df.set_index("metric")
                table.add_row(str(group), str(int(df["n"].iloc[0])),
                              *(_cell_text(df.loc[m]) for m in chunk))
            console.print(table)


def figure(result: AuditResult, metrics: Sequence[str]) -> Any:
    import plotly.graph_objects as go

    long = result.disparities
    shown = long[long["metric"].isin(metrics) & long["status"].isin(
        [STATUS_OK, STATUS_REFERENCE, STATUS_UNFAIR, STATUS_INCONCLUSIVE])]
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
td.inconclusive { background: #fff4cc; }
td.small { color: #999; } td.ref { background: #e8eefc; }
.note { color: #555; font-size: 0.9em; } .ratio { color: #555; font-size: 0.85em; }
</style></head><body>
<h1>Fairness audit</h1>
<p>{{ s.rows }} rows{% if s.where %} where <code>{{ s.where }}</code>{% endif %};
label <b>{{ s.label }}</b>; score <b>{{ s.score }}</b>;
positive prediction: <b>{{ selection }}</b> ({{ '%g' % s.predicted_positive }} flagged).
Reference: <b>{{ reference }}</b>. A group whose metric has a denominator under
{{ s.min_group_size }} (flagged cases for precision, positives for recall, negatives for the
false positive rate, ...) is shown but not compared (<i>insufficient data</i>).
{% if s.fairness_bounds %}Ratios within {{ s.fairness_bounds[0] }}–{{ s.fairness_bounds[1] }}
count as fair (aequitas rule); outside them a group is <i>unfair</i> only when the test of the
ratio against the bounds gives a {{ correction }} (over the groups of one attribute and
metric), else <i>inconclusive</i>.{% endif %}
Intervals: {{ s.interval|capitalize }} {{ (s.confidence * 100)|round(0)|int }} %;
* marks a two-proportion z-test p &lt; {{ s.alpha }} against the reference on the metric's own
denominator (uncorrected).</p>
<h2>Summary measures</h2>
<table><tr><th class="l">attribute</th><th class="l">measure</th><th>value</th>
<th class="l">how to read it</th>
<th class="l">highest group</th><th class="l">lowest group</th><th>groups</th></tr>
{% for r in summary %}<tr><td class="l">{{ r.attribute }}</td><td class="l">{{ r.measure }}</td>
<td>{{ fmt(r.value, 4) }}</td><td class="l">{{ reading(r.measure) }}</td>
<td class="l">{% if r.max_group %}{{ r.max_group }} ({{ fmt(r.max_value) }}){% endif %}</td>
<td class="l">{% if r.min_group %}{{ r.min_group }} ({{ fmt(r.min_value) }}){% endif %}</td>
<td>{{ r.groups_compared if r.groups_compared is not none else '' }}</td></tr>
{% endfor %}</table>
<h2>Disparities</h2>
{{ chart|safe }}
{% for a in attributes %}
<h3>{{ a.name }}</h3>
<table><tr><th class="l">group</th><th>n</th>
{% for m in metrics %}<th title="{{ labels[m] }}{% if m in descriptive %}: describes the data,
never judged fair or unfair{% endif %}">{{ m }}{% if m in descriptive %}<br>
<span class="ratio">(data)</span>{% endif %}</th>{% endfor %}
<th class="l">status</th></tr>
{% for g in a.rows %}<tr><td class="l">{{ g.group }}</td><td>{{ g.n }}</td>
{% for c in g.cells %}<td class="{{ c.css }}" title="{{ c.title }}">{{ c.value }}<br>
<span class="ratio">{{ c.ratio }}</span></td>{% endfor %}
<td class="l">{{ g.status }}</td></tr>
{% endfor %}</table>
{% endfor %}
<p class="note">Each cell: metric value, then ratio to the reference group (or, where the
reference's value is 0 and the ratio undefined, the difference in percentage points, unfair when
the corrected test finds it significant). Red: unfair; yellow: inconclusive; grey: insufficient
data. Hover a cell for the interval, the difference in percentage points and the p-values.</p>
</body></html>
""",
    autoescape=True,
)


def html(result: AuditResult) -> str:
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
                elif r["status"] == STATUS_INCONCLUSIVE:
                    css = "inconclusive"
                elif pd.notna(r["fair"]):
                    css = "fair" if r["fair"] else "unfair"
                star = "*" if pd.notna(r["significant"]) and r["significant"] else ""
                cells.append({
                    "value": _fmt(r["value"]),
                    "ratio": (_fmt(r["disparity_ratio"], 2) + star)
                    if pd.notna(r["disparity_ratio"])
                    else f"{float(r['difference_pp']):+.1f}pp{star}"
                    if pd.notna(r["fair"]) or css == "inconclusive" else "",
                    "css": css,
                    "title": (f"{METRIC_LABELS.get(m, m)}: {_fmt(r['value'])} "
                              f"[{_fmt(r['lower'])}, {_fmt(r['upper'])}]; "
                              f"diff {_fmt(r['difference_pp'], 1)} pp; "
                              f"p = {display.p_value(r['p_value'])}; corrected p against "
                              "the bounds "
                              f"{display.p_value(r.get('p_adjusted'))}; {r['status']}"),
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
        correction=_correction_text(result.settings),
        reading=measure_reading,
        descriptive=DESCRIPTIVE_METRICS,
    )
