"""The run report: one self-contained HTML page per run, built from the results store only.

Reading from the store (not from the objects in memory) means any past run's report can be
rebuilt, and what the page says is exactly what was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape
from sklearn.metrics import precision_recall_curve, roc_curve
from sqlalchemy import select
from sqlalchemy.engine import Engine

from rudikit.fairness.list_simulation import list_selection_rate
from rudikit.store import tables as t

TEMPLATES = Path(__file__).parent / "templates"
PALETTE = px.colors.qualitative.Plotly

#: Columns of the metric table: (metric, parameter template, heading). ``{pct}`` and ``{k}`` are
#: filled with the run's first top-% and top-k settings.
KEY_METRICS = [
    ("roc_auc", "", "ROC AUC"),
    ("average_precision", "", "Avg precision"),
    ("precision_at_k", "{pct}_pct", "Precision@{pct}%"),
    ("recall_at_k", "{pct}_pct", "Recall@{pct}%"),
    ("precision_at_k", "{k}_abs", "Precision@{k}"),
    ("precision", "{t}", "Precision@{t}"),
    ("recall", "{t}", "Recall@{t}"),
    ("f1", "{t}", "F1@{t}"),
    ("brier", "", "Brier"),
]


def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES),
                       autoescape=select_autoescape(["html", "j2"]))


@dataclass
class Figure:
    title: str
    html: str


def figure_html(fig: go.Figure, first: bool) -> str:
    """Plotly's JS is inlined once per page, so the report works with no internet access."""
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
                      margin={"t": 50})
    return fig.to_html(full_html=False, include_plotlyjs=bool(first),
                       config={"displaylogo": False})


class PlotlyPage:
    """The figures of one HTML page, in page order: plotly's JS goes in with the first only."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, fig: go.Figure) -> Figure:
        html = figure_html(fig, self.count == 0)
        self.count += 1
        return Figure(fig.layout.title.text or "", html)


def read_run_results(engine: Engine, run_id: int) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        run = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).mappings().one_or_none()
        if run is None:
            raise ValueError(f"run {run_id} is not in the store")
        models = pd.DataFrame(conn.execute(
            select(t.models, t.model_groups.c.algorithm, t.model_groups.c.hyperparameters,
                   t.model_groups.c.features.label("group_features"))
            .join(t.model_groups, t.models.c.model_group_id == t.model_groups.c.id)
            .where(t.models.c.run_id == run_id).order_by(t.models.c.id)).mappings().all())
        ids = models["id"].tolist() if len(models) else []
        evals = pd.DataFrame(conn.execute(select(t.evaluations).where(
            t.evaluations.c.model_id.in_(ids))).mappings().all())
        preds = pd.DataFrame(conn.execute(select(
            t.predictions.c.model_id, t.predictions.c.score, t.predictions.c.label).where(
            t.predictions.c.model_id.in_(ids))).mappings().all())
        imps = pd.DataFrame(conn.execute(select(t.feature_importances).where(
            t.feature_importances.c.model_id.in_(ids))).mappings().all())
        snaps = pd.DataFrame(conn.execute(select(t.data_snapshots).where(
            t.data_snapshots.c.run_id == run_id)).mappings().all())
        audits = pd.DataFrame(conn.execute(select(t.fairness_audits).where(
            t.fairness_audits.c.model_id.in_(ids))).mappings().all())
        reqs = pd.DataFrame(conn.execute(select(t.fairness_requirements).where(
            t.fairness_requirements.c.model_id.in_(ids))).mappings().all())
        metric, _ = selection_metric(run["config"])
        history = pd.DataFrame(conn.execute(
            select(t.evaluations.c.model_id, t.evaluations.c.parameter, t.evaluations.c.value,
                   t.evaluations.c.lower, t.evaluations.c.upper, t.models.c.model_group_id,
                   t.models.c.split, t.models.c.run_id, t.runs.c.started_at)
            .join(t.models, t.evaluations.c.model_id == t.models.c.id)
            .join(t.runs, t.models.c.run_id == t.runs.c.id)
            .where((t.runs.c.project == run["project"]) & (t.runs.c.id <= run_id)
                   & (t.evaluations.c.metric == metric))).mappings().all())
    return {"run": pd.DataFrame([dict(run)]), "models": models, "evaluations": evals,
            "predictions": preds, "importances": imps, "snapshots": snaps, "audits": audits,
            "requirements": reqs, "history": history}


def selection_metric(config: dict[str, Any]) -> tuple[str, str]:
    """(metric, parameter) of ``evaluation.selection.metric`` (``precision_at_k@10_pct`` ->
    ``("precision_at_k", "10_pct")``); ROC AUC for configurations without one."""
    if "temporal" in config:  # temporal runs are judged (and audition chooses) on the top k
        return "precision_at_k", f"{config['temporal'].get('top_k', 100)}_abs"
    name = config.get("evaluation", {}).get("selection", {}).get("metric") or "roc_auc"
    metric, _, parameter = name.partition("@")
    return metric, parameter


def selection_split(config: dict[str, Any], models: pd.DataFrame) -> str:
    """The split models are chosen on: the configured one, else the first split."""
    chosen = config.get("evaluation", {}).get("selection", {}).get("split")
    if chosen:
        return str(chosen)
    splits = config.get("splits")
    if isinstance(splits, list) and splits and isinstance(splits[0], dict) and "name" in splits[0]:
        return str(splits[0]["name"])
    return str(models["split"].iloc[0]) if len(models) else ""


def _short(row: pd.Series) -> str:
    return f"#{row['model_group_id']} {row['algorithm']}"


def _label(row: pd.Series) -> str:
    """Group id and algorithm, with the hyperparameters in small print (HTML)."""
    params = ", ".join(f"{k}={v}" for k, v in (row["hyperparameters"] or {}).items())
    return _short(row) + (f" <span class='params'>{escape(params)}</span>" if params else "")


def _fmt(value: Any, lower: Any = None, upper: Any = None) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    text = f"{value:.3f}"
    if lower is not None and upper is not None and not pd.isna(lower):
        text += f" <span class='ci'>[{lower:.3f}, {upper:.3f}]</span>"
    return text


def key_metric_columns(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """:data:`KEY_METRICS` filled with the run's first top-%, top-k and threshold settings; a
    temporal run has lists only, so its columns need no threshold."""
    if "temporal" in config:
        temporal = config["temporal"]
        fill = {"pct": f"{(temporal.get('top_pct') or [1])[0]:g}",
                "k": str(temporal.get("top_k", 100)), "t": ""}
        return [(m, p.format(**fill), h.format(**fill)) for m, p, h in KEY_METRICS
                if "{t}" not in p]
    ev = config.get("evaluation", {})
    fill = {"pct": f"{ev.get('top_pct', [10])[0]:g}" if ev.get("top_pct") else "10",
            "k": str(ev.get("top_k", [100])[0]) if ev.get("top_k") else "100",
            "t": f"{ev.get('thresholds', [0.5])[0]:g}" if ev.get("thresholds") else "0.5"}
    return [(m, p.format(**fill), h.format(**fill)) for m, p, h in KEY_METRICS]


def metric_table(models: pd.DataFrame, evals: pd.DataFrame, config: dict[str, Any]
                 ) -> tuple[list[str], list[dict[str, Any]]]:
    columns = key_metric_columns(config)
    headings = ["Model group", "Split", "Train s"] + [h for _, _, h in columns]
    rows = []
    by_model = {mid: g for mid, g in evals.groupby("model_id")} if len(evals) else {}
    for _, model in models.iterrows():
        ev_rows = by_model.get(model["id"], pd.DataFrame(columns=["metric", "parameter"]))
        cells = []
        for metric, parameter, _ in columns:
            hit = ev_rows[(ev_rows["metric"] == metric) & (ev_rows["parameter"] == parameter)]
            cells.append(_fmt(*hit.iloc[0][["value", "lower", "upper"]]) if len(hit) else "n/a")
        rows.append({"label": _label(model), "split": model["split"],
                     "seconds": f"{model['train_seconds']:.2f}", "cells": cells,
                     "selected": bool(model["selected"])})
    return headings, rows


def _columns_of(features: Any) -> set[str]:
    """Every input column a model group's stored feature configuration reads."""
    out: set[str] = set()
    for key, value in (features or {}).items():
        if key == "datetime" and isinstance(value, dict):
            out.add(str(value.get("column")))
        elif key != "protected" and isinstance(value, list):
            out.update(str(v) for v in value)
    return out


def comparison_table(models: pd.DataFrame, evals: pd.DataFrame, split: str,
                     min_pool_share: float = 0.05) -> list[dict[str, Any]]:
    """The chosen model next to what a board asks it to be compared with, on the same test
    rows: baselines (an existing score), experiments (a group reading columns the chosen model
    does not, such as race) and the mitigated group. Per row: ROC AUC with its interval and
    difference to the chosen model, the list simulation's precision, and each group's list
    selection rate (groups with at least ``min_pool_share`` of the drawn cases; smaller ones
    are too noisy to read)."""
    on_split = models[models["split"] == split] if len(models) else models
    chosen = on_split[on_split["selected"]]
    if not len(chosen) or not len(evals):
        return []
    chosen = chosen.iloc[0]
    chosen_columns = _columns_of(chosen["group_features"])
    rows = []
    for _, model in on_split.iterrows():
        extra = sorted(_columns_of(model["group_features"]) - chosen_columns)
        if model["id"] == chosen["id"]:
            role = "chosen"
        elif model["algorithm"].startswith("mitigated_"):
            role = "mitigated (per-group thresholds on the chosen model)"
        elif model["algorithm"] in ("score_column", "rank_by_feature"):
            role = "baseline: " + ", ".join(f"{k}={v}" for k, v in
                                            (model["hyperparameters"] or {}).items())
        elif extra:
            role = "experiment: adds " + ", ".join(extra)
        else:
            continue
        rows.append({"model": _short(model), "role": role, "id": int(model["id"])})
    by_model = {mid: g.set_index(["metric", "parameter"]) for mid, g in evals.groupby("model_id")}
    chosen_evals = by_model.get(chosen["id"])
    chosen_auc = (chosen_evals.loc[("roc_auc", ""), "value"] if chosen_evals is not None
                  and ("roc_auc", "") in chosen_evals.index else None)
    for row in rows:
        ev = by_model.get(row["id"])
        if ev is None:
            continue
        auc = ev.loc[("roc_auc", "")] if ("roc_auc", "") in ev.index else None
        row["auc"] = _fmt(*auc[["value", "lower", "upper"]]) if auc is not None else "n/a"
        row["delta"] = (f"{auc['value'] - chosen_auc:+.3f}" if auc is not None
                        and chosen_auc is not None and row["role"] != "chosen" else "")
        lists = ev.xs("list_precision", level="metric") if "list_precision" in \
            ev.index.get_level_values("metric") else None
        row["list"] = (f"{lists['value'].iloc[0]:.3f} ({lists.index[0].replace('_of_', ' of ')})"
                       if lists is not None and len(lists) else "n/a")
        rates: dict[str, list[str]] = {}
        if lists is not None and len(lists):
            k, _, n = lists.index[0].partition("_of_")
            for parameter, share in ev.xs("list_share", level="metric")["value"].items():
                pool = ev.loc[("list_pool_share", parameter), "value"]
                attribute, _, group = parameter.partition("=")
                if pool and pool >= min_pool_share:
                    rates.setdefault(attribute, []).append(
                        f"{group} {list_selection_rate(share, pool, int(k), int(n)):.3f}")
        row["rates"] = "; ".join(f"{a}: " + ", ".join(g) for a, g in rates.items())
    return rows


def curve_figures(models: pd.DataFrame, preds: pd.DataFrame, split: str) -> list[go.Figure]:
    roc, pr = go.Figure(), go.Figure()
    for _, model in models[models["split"] == split].iterrows():
        rows = preds[preds["model_id"] == model["id"]]
        if rows["label"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(rows["label"], rows["score"])
        precision, recall, _ = precision_recall_curve(rows["label"], rows["score"])
        name = _short(model) + (" (chosen)" if model["selected"] else "")
        width = 4 if model["selected"] else 1.5
        roc.add_trace(go.Scatter(x=fpr, y=tpr, name=name, line={"width": width}))
        pr.add_trace(go.Scatter(x=recall, y=precision, name=name, line={"width": width}))
    roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="chance", line={"dash": "dot",
                                                                      "color": "grey"}))
    roc.update_layout(title=f"ROC curves, split {split!r}", xaxis_title="False positive rate",
                      yaxis_title="True positive rate", height=480)
    pr.update_layout(title=f"Precision-recall curves, split {split!r}", xaxis_title="Recall",
                     yaxis_title="Precision", height=480)
    return [roc, pr]


def importance_figure(imps: pd.DataFrame, model_id: int) -> go.Figure | None:
    rows = imps[imps["model_id"] == model_id].sort_values("importance") if len(imps) else imps
    if not len(rows):
        return None
    fig = go.Figure(go.Bar(x=rows["importance"], y=rows["feature"], orientation="h",
                           error_x={"type": "data", "array": rows["std"].fillna(0)}))
    fig.update_layout(title="Permutation importance of the selected model (drop in ROC AUC)",
                      height=120 + 28 * len(rows), xaxis_title="Drop in ROC AUC when shuffled")
    return fig


AUDIT_METRICS = {"precision": "Precision", "tpr": "Recall (TPR)", "fpr": "False positive rate",
                 "pprev": "Selection rate"}


def audit_figures(audits: pd.DataFrame, model_id: int) -> list[go.Figure]:
    """Per attribute: the key group metrics with their 95% intervals; groups too small to
    compare are drawn hollow."""
    rows = audits[audits["model_id"] == model_id] if len(audits) else audits
    figures = []
    for attribute, part in (rows.groupby("attribute", sort=False) if len(rows) else []):
        fig = go.Figure()
        for metric, title in AUDIT_METRICS.items():
            m = part[part["metric"] == metric]
            if not len(m):
                continue
            small = m["status"].str.contains("insufficient")
            fig.add_trace(go.Bar(
                x=m["group_value"], y=m["value"], name=title,
                error_y={"type": "data", "symmetric": False,
                         "array": (m["upper"] - m["value"]).fillna(0),
                         "arrayminus": (m["value"] - m["lower"]).fillna(0)},
                marker_pattern_shape=np.where(small, "/", ""),
                customdata=np.c_[m["n"], m["status"], m["disparity_ratio"]],
                hovertemplate="%{x}: %{y:.3f}<br>n=%{customdata[0]}, %{customdata[1]}"
                              "<br>ratio to reference %{customdata[2]:.2f}<extra></extra>"))
        fig.update_layout(barmode="group", height=420, yaxis_title="rate",
                          title=f"Group metrics by {attribute} (hatched: fewer rows than the "
                                "minimum group size, not compared)")
        figures.append(fig)
    return figures


def frontier_figure(evals: pd.DataFrame, model_id: int) -> go.Figure | None:
    rows = evals[(evals["model_id"] == model_id)
                 & evals["metric"].isin(["frontier_largest_gap", "frontier_objective"])]
    if not len(rows):
        return None
    wide = rows.pivot_table(index="parameter", columns="metric", values="value").reset_index()
    base = wide[wide["parameter"] == "unmitigated"]
    curve = wide[wide["parameter"] != "unmitigated"].sort_values("frontier_largest_gap")
    fig = go.Figure(go.Scatter(x=curve["frontier_largest_gap"], y=curve["frontier_objective"],
                               mode="lines+markers+text", text=curve["parameter"],
                               textposition="top center", name="per-group thresholds"))
    fig.add_trace(go.Scatter(x=base["frontier_largest_gap"], y=base["frontier_objective"],
                             mode="markers", marker={"size": 14, "symbol": "x"},
                             name="unmitigated"))
    fig.update_layout(title="Fairness-performance frontier of the mitigation (test rows)",
                      xaxis_title="largest gap between groups", yaxis_title="objective",
                      height=440)
    return fig


def requirement_table(models: pd.DataFrame, reqs: pd.DataFrame, split: str
                      ) -> tuple[list[str], list[dict[str, Any]]]:
    if not len(reqs):
        return [], []
    names = list(dict.fromkeys(reqs["name"]))
    rows = []
    for _, model in models[models["split"] == split].iterrows():
        mine = reqs[reqs["model_id"] == model["id"]].set_index("name")
        cells = [{"passed": bool(mine.loc[n, "passed"]), "text": mine.loc[n, "summary"]}
                 if n in mine.index else {"passed": None, "text": "n/a"} for n in names]
        rows.append({"label": _label(model), "selected": bool(model["selected"]),
                     "cells": cells})
    return names, rows


def _metric_name(metric: str, parameter: str) -> str:
    return f"{metric}@{parameter}" if parameter else metric


def runs_figure(history: pd.DataFrame, models: pd.DataFrame, config: dict[str, Any],
                split: str) -> go.Figure | None:
    """The selection metric of each of this run's model groups in every run of the project so
    far (test rows of the selection split): does a group hold up as the data moves on?"""
    metric, parameter = selection_metric(config)
    if not len(history) or not len(models):
        return None
    rows = history[(history["parameter"] == parameter) & (history["split"] == split)
                   & history["model_group_id"].isin(models["model_group_id"])]
    if not len(rows):
        return None
    fig = go.Figure()
    names = models.drop_duplicates("model_group_id").set_index("model_group_id", drop=False)
    for group_id, part in rows.sort_values("run_id").groupby("model_group_id", sort=True):
        fig.add_trace(go.Scatter(
            x=[f"run {r}" for r in part["run_id"]], y=part["value"], mode="lines+markers",
            name=_short(names.loc[group_id]),
            error_y={"type": "data", "symmetric": False,
                     "array": (part["upper"] - part["value"]).fillna(0),
                     "arrayminus": (part["value"] - part["lower"]).fillna(0)}))
    fig.update_layout(title=f"{_metric_name(metric, parameter)} across runs, split {split!r} "
                            "(bars: 95% bootstrap interval)",
                      xaxis_title="run", yaxis_title=_metric_name(metric, parameter),
                      xaxis={"type": "category"}, height=420)
    return fig


def asof_figure(history: pd.DataFrame, models: pd.DataFrame, config: dict[str, Any],
                run_id: int) -> go.Figure | None:
    """The selection metric of each model group per as-of date of this run: the per-date
    evaluations of temporal experiments (parameter ``...@YYYY-MM-DD``), else the start of the
    test period of each temporal split. Drawn only when there are at least two dates."""
    metric, parameter = selection_metric(config)
    if not len(history) or not len(models):
        return None
    mine = history[history["run_id"] == run_id]
    kinds = {s.get("name"): s.get("kind") for s in config.get("splits", [])
             if isinstance(s, dict)}
    points = []
    for _, model in models.iterrows():
        rows = mine[mine["model_id"] == model["id"]]
        dated = rows[rows["parameter"].str.startswith(f"{parameter}@")]
        if len(dated):
            for _, r in dated.iterrows():
                points.append((model["model_group_id"], pd.Timestamp(r["parameter"].split("@")[1]),
                               r["value"], r["lower"], r["upper"]))
        elif kinds.get(model["split"], "temporal") == "temporal" and pd.notna(model["test_start"]):
            plain = rows[rows["parameter"] == parameter]
            if len(plain):
                r = plain.iloc[0]
                points.append((model["model_group_id"], pd.Timestamp(model["test_start"]),
                               r["value"], r["lower"], r["upper"]))
    frame = pd.DataFrame(points, columns=["group", "date", "value", "lower", "upper"])
    if frame["date"].nunique() < 2:
        return None
    names = models.drop_duplicates("model_group_id").set_index("model_group_id", drop=False)
    fig = go.Figure()
    for group_id, part in frame.sort_values("date").groupby("group", sort=True):
        fig.add_trace(go.Scatter(
            x=part["date"], y=part["value"], mode="lines+markers",
            name=_short(names.loc[group_id]),
            error_y={"type": "data", "symmetric": False,
                     "array": (part["upper"] - part["value"]).fillna(0),
                     "arrayminus": (part["value"] - part["lower"]).fillna(0)}))
    fig.update_layout(title=f"{_metric_name(metric, parameter)} per as-of date (start of each "
                            "test period)", xaxis_title="as-of date",
                      yaxis_title=_metric_name(metric, parameter), height=420)
    return fig


def top_k_curves(y: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    """Precision and recall of the top-k list for every list size at which the score changes
    (between those sizes tied cases enter in expectation, so straight lines are exact for the
    true positives). Columns: k, pct (k as % of rows), precision, recall."""
    order = np.argsort(-score, kind="stable")
    s, ys = score[order], y[order].astype(float)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    k = ends + 1
    tp = np.cumsum(ys)[ends]
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({"k": k, "pct": 100 * k / len(y), "precision": tp / k,
                             "recall": tp / ys.sum()})


def top_k_figure(models: pd.DataFrame, preds: pd.DataFrame, split: str,
                 config: dict[str, Any]) -> go.Figure | None:
    """Precision (solid) and recall (dotted) in the top k% of the test rows, per model; the
    configured list sizes are marked."""
    fig = go.Figure()
    for i, (_, model) in enumerate(models[models["split"] == split].iterrows()):
        rows = preds[preds["model_id"] == model["id"]]
        if rows["label"].nunique() < 2:
            continue
        curve = top_k_curves(rows["label"].to_numpy(), rows["score"].to_numpy())
        if len(curve) > 600:  # enough points to draw; keeps the page small
            curve = curve.iloc[np.unique(np.linspace(0, len(curve) - 1, 600).astype(int))]
        name = _short(model) + (" (chosen)" if model["selected"] else "")
        color = PALETTE[i % len(PALETTE)]
        width = 4 if model["selected"] else 1.5
        fig.add_trace(go.Scatter(x=curve["pct"], y=curve["precision"], name=f"{name} precision",
                                 legendgroup=name, line={"width": width, "color": color}))
        fig.add_trace(go.Scatter(x=curve["pct"], y=curve["recall"], name=f"{name} recall",
                                 legendgroup=name,
                                 line={"width": width, "color": color, "dash": "dot"}))
    if not fig.data:
        return None
    for pct in config.get("evaluation", {}).get("top_pct", []):
        fig.add_vline(x=pct, line={"dash": "dash", "color": "grey"},
                      annotation_text=f"top {pct:g}%")
    fig.update_layout(title=f"Precision and recall in the top k, split {split!r}",
                      xaxis_title="list size (% of test rows, highest scores first)",
                      yaxis_title="precision / recall", height=480)
    return fig


def score_figure(preds: pd.DataFrame, model: pd.Series) -> go.Figure | None:
    """Score histograms of the positive and negative test rows of one model: how well the two
    separate, and where a threshold would cut."""
    rows = preds[preds["model_id"] == model["id"]]
    if not len(rows):
        return None
    fig = go.Figure()
    for label, name in ((0, "label 0 (negative)"), (1, "label 1 (positive)")):
        part = rows[rows["label"] == label]
        fig.add_trace(go.Histogram(x=part["score"], name=f"{name}, n={len(part):,}",
                                   histnorm="probability", opacity=0.6,
                                   xbins={"start": 0, "end": 1, "size": 0.02}))
    fig.update_layout(barmode="overlay", title=f"Score distribution by label, {_short(model)} "
                                               f"(split {model['split']!r})",
                      xaxis_title="score", yaxis_title="share of the label's rows", height=420)
    return fig


def disparity_figures(audits: pd.DataFrame, model_id: int) -> list[go.Figure]:
    """Per attribute: each compared group's metric as a ratio to the reference group's, with
    the 0.8-1.25 band; groups too small to compare are left out (the group metrics chart
    shows them)."""
    rows = audits[(audits["model_id"] == model_id) & (audits["status"] == "ok")
                  & audits["metric"].isin(list(AUDIT_METRICS))] if len(audits) else audits
    figures = []
    for attribute, part in (rows.groupby("attribute", sort=False) if len(rows) else []):
        fig = go.Figure()
        for metric, title in AUDIT_METRICS.items():
            m = part[part["metric"] == metric]
            if len(m):
                fig.add_trace(go.Bar(
                    x=m["group_value"], y=m["disparity_ratio"], name=title,
                    customdata=np.c_[m["reference_group"], m["difference_pp"], m["p_value"]],
                    hovertemplate="%{x}: ratio %{y:.2f} to %{customdata[0]}<br>"
                                  "%{customdata[1]:.1f} points, p=%{customdata[2]:.3g}"
                                  "<extra></extra>"))
        for bound in (0.8, 1.0, 1.25):
            fig.add_hline(y=bound, line={"dash": "dot" if bound != 1.0 else "solid",
                                         "color": "grey"})
        reference = part["reference_group"].dropna()
        fig.update_layout(barmode="group", height=400, yaxis_title="ratio to reference",
                          title=f"Disparity by {attribute}, ratio to "
                                f"{reference.iloc[0] if len(reference) else 'the reference'} "
                                "(band 0.8-1.25)")
        figures.append(fig)
    return figures


def composition_figure(audits: pd.DataFrame, model_id: int) -> go.Figure | None:
    """Who is on the list: each group's share of the flagged list (top-k / top-% / above the
    threshold, as audited) next to its share of the test rows, for each single attribute."""
    rows = audits[(audits["model_id"] == model_id) & (audits["metric"] == "ppr")
                  & ~audits["attribute"].str.contains(":", regex=False)] if len(audits) \
        else audits
    if not len(rows):
        return None
    rows = rows.assign(population=rows["n"] / rows.groupby("attribute")["n"].transform("sum"),
                       x=rows["attribute"] + ": " + rows["group_value"])
    fig = go.Figure([
        go.Bar(x=rows["x"], y=rows["population"], name="share of test rows"),
        go.Bar(x=rows["x"], y=rows["value"], name="share of the list",
               error_y={"type": "data", "symmetric": False,
                        "array": (rows["upper"] - rows["value"]).fillna(0),
                        "arrayminus": (rows["value"] - rows["lower"]).fillna(0)}),
    ])
    fig.update_layout(barmode="group", height=440, yaxis_title="share",
                      title=f"List composition by group ({rows['selection'].iloc[0]})")
    return fig


def list_simulation_table(evals: pd.DataFrame, models: list[tuple[str, int]]
                          ) -> dict[str, Any] | None:
    """The guide's list simulation (``k`` of ``n`` drawn cases, stored by the run as
    ``list_*`` evaluations) side by side for ``models`` ((name, model id): the chosen model and
    its mitigated group): per group, its share of the drawn cases, how many of the ``k`` listed
    it has on average (with the interval over repeats), and the share of its drawn cases that
    are listed (the selection rate the fairness requirement bounds)."""
    if not len(evals):
        return None
    rows = evals[evals["model_id"].isin([i for _, i in models])
                 & evals["metric"].isin(["list_precision", "list_share", "list_pool_share"])]
    precision = rows[rows["metric"] == "list_precision"].set_index("model_id")
    shown = [(name, i) for name, i in models if i in precision.index]
    if not shown:
        return None
    k, _, n = precision["parameter"].iloc[0].partition("_of_")
    k_, n_ = int(k), int(n)
    columns = [{"name": name, "precision": _fmt(*precision.loc[i, ["value", "lower", "upper"]])}
               for name, i in shown]
    shares = rows[rows["metric"] == "list_share"].set_index(["model_id", "parameter"])
    pools = rows[rows["metric"] == "list_pool_share"].set_index(["model_id", "parameter"])
    groups = []
    for parameter in dict.fromkeys(rows.loc[rows["metric"] == "list_share", "parameter"]):
        attribute, _, group = parameter.partition("=")
        pool = float(pools.loc[(shown[0][1], parameter), "value"])
        cells = []
        for _, i in shown:
            if (i, parameter) not in shares.index:
                cells.append(None)
                continue
            share = shares.loc[(i, parameter)]
            cells.append({"listed": f"{share['value'] * k_:.2f}",
                          "interval": f"{share['lower'] * k_:.0f}-{share['upper'] * k_:.0f}",
                          "share": f"{share['value']:.3f}",
                          "rate": f"{list_selection_rate(share['value'], pool, k_, n_):.3f}"
                          if pool else "n/a"})
        groups.append({"attribute": attribute, "group": group, "pool": f"{pool:.3f}",
                       "drawn": f"{pool * n_:.1f}", "cells": cells})
    return {"k": k_, "n": n_, "repeats": int(precision["n"].iloc[0]), "columns": columns,
            "groups": groups}


#: Rows of the chosen model's ranked test list shown in the report.
LIST_ROWS = 20


def top_of_list(engine: Engine, model_id: int, rows: int = LIST_ROWS) -> list[dict[str, Any]]:
    """The highest-ranked test rows of ``model_id`` with each one's stored top reasons
    (``individual_importances``, matched on entity and as-of date), as a panel would see
    them."""
    with engine.connect() as conn:
        head = pd.DataFrame(conn.execute(
            select(t.predictions.c.entity_id, t.predictions.c.as_of_date,
                   t.predictions.c.score, t.predictions.c.label, t.predictions.c.rank_abs)
            .where(t.predictions.c.model_id == model_id)
            .order_by(t.predictions.c.rank_abs, t.predictions.c.id).limit(rows)).mappings().all())
        if not len(head):
            return []
        reasons = pd.DataFrame(conn.execute(
            select(t.individual_importances.c.entity_id, t.individual_importances.c.as_of_date,
                   t.individual_importances.c.feature, t.individual_importances.c.contribution,
                   t.individual_importances.c.value, t.individual_importances.c.rank)
            .where(t.individual_importances.c.model_id == model_id,
                   t.individual_importances.c.entity_id.in_(head["entity_id"].tolist()))
            .order_by(t.individual_importances.c.rank)).mappings().all())

    def case(frame: pd.DataFrame) -> pd.Series:  # one key per case; a missing date too
        return frame["entity_id"] + "|" + frame["as_of_date"].astype(str)

    by_case = dict(list(reasons.groupby(case(reasons), sort=False))) if len(reasons) else {}
    out = []
    for key, row in zip(case(head), head.itertuples(), strict=True):
        mine = by_case.get(key)
        out.append({"rank": int(row.rank_abs), "entity": row.entity_id,
                    "score": f"{row.score:.3f}",
                    "label": "" if pd.isna(row.label) else int(row.label),
                    "reasons": [] if mine is None else [
                        {"feature": r.feature, "value": "missing" if pd.isna(r.value)
                         else r.value, "contribution": f"{r.contribution:+.3f}"}
                        for r in mine.itertuples()]})
    return out


def monitoring_rows(engine: Engine, model_group_ids: list[int]) -> list[dict[str, Any]]:
    """Every `rudi monitor` pass over a deployment of these model groups, newest first, with
    its headline figures (realised and promised precision, the largest PSI) and the report
    file it wrote beside this one."""
    from rudikit.store.monitoring_tables import monitor_metrics, monitor_runs

    if not model_group_ids:
        return []
    with engine.connect() as conn:
        runs = conn.execute(select(monitor_runs).where(
            monitor_runs.c.model_group_id.in_(model_group_ids))
            .order_by(monitor_runs.c.id.desc())).mappings().all()
        rows = []
        for r in runs:
            figures = conn.execute(select(
                monitor_metrics.c.section, monitor_metrics.c.subject,
                monitor_metrics.c.metric, monitor_metrics.c.value).where(
                monitor_metrics.c.monitor_run_id == r["id"],
                monitor_metrics.c.section.in_(["performance", "expected", "drift"]),
                monitor_metrics.c.metric.in_(["precision", "psi"]))).all()
            psi = [f.value for f in figures if f.metric == "psi" and f.value is not None]
            get = {(f.section, f.subject): f.value for f in figures if f.metric == "precision"}
            rows.append({**dict(r), "realised": get.get(("performance", "all")),
                         "expected": get.get(("expected", "test")),
                         "max_psi": max(psi) if psi else None,
                         "report": f"monitor-{r['id']}.html"})
    return rows


def write_run_report(engine: Engine, run_id: int, directory: str | Path) -> Path:
    """Write ``run-<id>.html`` into ``directory`` and return its path (a temporal run's
    report is :func:`rudikit.reports.temporal_report.write_temporal_report`)."""
    with engine.connect() as conn:
        stored = conn.execute(select(t.runs.c.config).where(t.runs.c.id == run_id)
                              ).scalar_one_or_none()
    if isinstance(stored, dict) and "temporal" in stored:
        from rudikit.reports.temporal_report import write_temporal_report

        return write_temporal_report(engine, run_id, directory)
    data = read_run_results(engine, run_id)
    run = data["run"].iloc[0]
    config = run["config"]
    models, evals, preds = data["models"], data["evaluations"], data["predictions"]
    split = selection_split(config, models)
    headings, rows = metric_table(models, evals, config)
    page = PlotlyPage()
    selected = models[models["selected"]] if len(models) else models
    chosen_row = selected.iloc[0] if len(selected) else None
    figures: list[Figure] = []
    if len(models):
        figures += [page.add(fig) for fig in curve_figures(models, preds, split)]
        figures += [page.add(fig) for fig in (top_k_figure(models, preds, split, config),)
                    if fig is not None]
    chosen = None
    if chosen_row is not None:
        chosen = {"label": _label(chosen_row), "reason": chosen_row["selection_reason"],
                  "id": chosen_row["id"], "artefact": chosen_row["artefact_hash"]}
        for fig in (score_figure(preds, chosen_row),
                    importance_figure(data["importances"], int(chosen_row["id"]))):
            if fig is not None:
                figures.append(page.add(fig))
    time_figures = [page.add(fig) for fig in (
        runs_figure(data["history"], models, config, split),
        asof_figure(data["history"], models, config, run_id)) if fig is not None]
    fairness_figures: list[Figure] = []
    if chosen is not None:
        audits = data["audits"]
        fairness_figures += [page.add(fig) for fig in audit_figures(audits, chosen["id"])]
        fairness_figures += [page.add(fig) for fig in disparity_figures(audits, chosen["id"])]
        composition = composition_figure(audits, chosen["id"])
        if composition is not None:
            fairness_figures.append(page.add(composition))
    mitigated = models[models["algorithm"].str.startswith("mitigated_")] if len(models) else models
    if len(mitigated):
        fig = frontier_figure(evals, int(mitigated.iloc[0]["id"]))
        if fig is not None:
            fairness_figures.append(page.add(fig))
    req_names, req_rows = requirement_table(models, data["requirements"], split)
    simulated = [("chosen: " + _short(chosen_row), int(chosen_row["id"]))] \
        if chosen_row is not None else []
    simulated += [("mitigated: " + _short(m), int(m["id"])) for _, m in mitigated.iterrows()]
    lists = list_simulation_table(evals, simulated)
    comparisons = comparison_table(models, evals, split)
    ranked = top_of_list(engine, int(chosen_row["id"])) if chosen_row is not None else []
    monitoring = monitoring_rows(engine, sorted({int(g) for g in models["model_group_id"]})
                                 if len(models) else [])
    html = environment().get_template("run_report.html.j2").render(
        monitoring=monitoring, lists=lists, ranked=ranked, comparisons=comparisons,
        run=run, config=config, headings=headings, rows=rows, figures=figures, chosen=chosen,
        snapshots=data["snapshots"].to_dict("records"), split=split,
        req_names=req_names, req_rows=req_rows, fairness_figures=fairness_figures,
        time_figures=time_figures, fairness=config.get("fairness", {}),
        rationale=config.get("rationale", {}),
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"run-{run_id}.html"
    path.write_text(html, encoding="utf-8")
    return path
