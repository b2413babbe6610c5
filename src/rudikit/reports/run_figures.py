"""The figures of the run report: curves, importances, metrics over runs and as-of dates,
top-k curves, score distributions, the fairness audit and the performance / requirements-met
trade-off, each from stored rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rudikit.evaluation.curves import thin, thin_precision_recall, thin_roc
from rudikit.evaluation.metrics import lower_is_better
from rudikit.fairness.tradeoff import VALIDATION_REQUIREMENT, pareto_frontier
from rudikit.models.search import SEARCH_TRIAL
from rudikit.reports.page import PALETTE
from rudikit.reports.run_tables import selection_metric, short_label
from rudikit.store.queries.evaluations import REFIT_OF
from rudikit.store.queries.fairness import MET, combined_status, requirement_status


def curve_figures(models: pd.DataFrame, preds: pd.DataFrame, split: str) -> list[go.Figure]:
    """ROC and precision-recall curves of each model on the split's test rows, thinned to
    what the chart shows (:mod:`rudikit.evaluation.curves`)."""
    roc, pr = go.Figure(), go.Figure()
    for _, model in models[models["split"] == split].iterrows():
        rows = preds[preds["model_id"] == model["id"]]
        if rows["label"].nunique() < 2:
            continue
        fpr, tpr = thin_roc(rows["label"].to_numpy(), rows["score"].to_numpy())
        recall, precision = thin_precision_recall(rows["label"].to_numpy(),
                                                  rows["score"].to_numpy())
        name = short_label(model) + (" (chosen)" if model["selected"] else "")
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


def search_history(models: pd.DataFrame, evals: pd.DataFrame, split: str, config: dict[str, Any]
                   ) -> pd.DataFrame:
    """Per search trial on ``split``: the searched spec (``models[i]``), trial number, model
    id, whether it was chosen (selected, or refit as the selected model), and the selection
    metric on the validation rows (what the search optimised; the test rows when the split has
    none), with the best so far."""
    metric, parameter = selection_metric(config)
    on_split = models.loc[models["split"] == split, ["id", "selected"]]
    refit = evals[(evals["metric"] == REFIT_OF)
                  & evals["model_id"].isin(on_split.loc[on_split["selected"], "id"])]
    on_split = on_split.assign(selected=on_split["selected"]
                               | on_split["id"].isin(refit["value"].astype(int)))
    trials = evals[(evals["metric"] == SEARCH_TRIAL) & evals["model_id"].isin(on_split["id"])]
    if not len(trials):
        return pd.DataFrame()
    found = evals[evals["model_id"].isin(trials["model_id"])
                  & ((parameter == "") | (evals["parameter"] == parameter))]
    validation = found[found["metric"] == f"validation_{metric}"]
    scores = validation if len(validation) else found[found["metric"] == metric]
    out = (trials[["model_id", "parameter", "value"]]
           .rename(columns={"parameter": "spec", "value": "trial"})
           .merge(scores[["model_id", "value"]].rename(columns={"value": "score"}),
                  on="model_id", how="left")
           .merge(on_split.rename(columns={"id": "model_id", "selected": "chosen"}),
                  on="model_id"))
    out["rows"] = "validation rows" if len(validation) else "test rows"
    return with_best_so_far(out, lower_is_better=lower_is_better(metric))


def with_best_so_far(history: pd.DataFrame, lower_is_better: bool = False) -> pd.DataFrame:
    """``history`` (spec, trial, score) in trial order with each search's best score so far."""
    out = history.sort_values(["spec", "trial"]).reset_index(drop=True)
    scores = out.groupby("spec")["score"]
    out["best_so_far"] = scores.cummin() if lower_is_better else scores.cummax()
    return out


def search_figure(history: pd.DataFrame, config: dict[str, Any]) -> go.Figure | None:
    """Trial vs score of each search, with the best-so-far line: how far the search got and
    whether more trials would have helped."""
    if not len(history):
        return None
    metric, parameter = selection_metric(config)
    fig = go.Figure()
    for i, (spec, rows) in enumerate(history.groupby("spec", sort=True)):
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=rows["trial"], y=rows["score"], mode="markers",
                                 marker={"color": colour}, name=f"{spec}: trial"))
        fig.add_trace(go.Scatter(x=rows["trial"], y=rows["best_so_far"], mode="lines",
                                 line={"color": colour, "shape": "hv"},
                                 name=f"{spec}: best so far"))
        chosen = rows[rows["chosen"].astype(bool)]
        if len(chosen):
            fig.add_trace(go.Scatter(x=chosen["trial"], y=chosen["score"], mode="markers",
                                     marker={"size": 14, "symbol": "star", "color": colour},
                                     name="chosen"))
    fig.update_layout(title=f"Hyperparameter search: {_metric_name(metric, parameter)} of "
                            f"each trial ({history['rows'].iloc[0]})",
                      xaxis_title="trial", yaxis_title=_metric_name(metric, parameter),
                      height=420)
    return fig


def _statuses(reqs: pd.DataFrame, model_id: int) -> dict[str, str]:
    """Each requirement's stored verdict (test rows) for one model, by the store's one rule."""
    mine = reqs[reqs["model_id"] == model_id] if len(reqs) else reqs
    return {name: combined_status(requirement_status(r) for r in part.to_dict("records"))
            for name, part in (mine.groupby("name", sort=False) if len(mine) else [])}


POINT_COLUMNS = ["model_id", "label", "mitigated", "chosen", "rows", "value", "met", "total"]


def tradeoff_points(models: pd.DataFrame, evals: pd.DataFrame, reqs: pd.DataFrame,
                    split: str, config: dict[str, Any]) -> pd.DataFrame:
    """One row per model of the selection split (groups and mitigated variants): the
    selection metric and the requirements met, on the validation rows where both were stored
    there (:data:`rudikit.fairness.tradeoff.VALIDATION_REQUIREMENT`), else on the test rows."""
    metric, parameter = selection_metric(config)
    out = []
    for _, model in models[models["split"] == split].iterrows():
        ev = evals[evals["model_id"] == model["id"]] if len(evals) else evals

        def value(name: str, ev: pd.DataFrame = ev) -> float | None:
            hit = ev[(ev["metric"] == name) & (ev["parameter"] == parameter)]
            return None if not len(hit) or pd.isna(hit["value"].iloc[0]) \
                else float(hit["value"].iloc[0])

        stored = ev[ev["metric"] == VALIDATION_REQUIREMENT] if len(ev) else ev
        if len(stored) and value(f"validation_{metric}") is not None:
            rows, figure = "validation", value(f"validation_{metric}")
            met, total = int((stored["value"] == 1).sum()), len(stored)
        else:
            statuses = _statuses(reqs, int(model["id"]))
            rows, figure = "test", value(metric)
            met, total = sum(s == MET for s in statuses.values()), len(statuses)
        if figure is None or not total:
            continue
        out.append({"model_id": int(model["id"]), "label": short_label(model),
                    "mitigated": str(model["algorithm"]).startswith("mitigated_"),
                    "chosen": bool(model["selected"]), "rows": rows, "value": figure,
                    "met": met, "total": total})
    return pd.DataFrame(out, columns=POINT_COLUMNS)


def audition_points(precision: pd.DataFrame, reqs: pd.DataFrame) -> pd.DataFrame:
    """A temporal run's :func:`tradeoff_points`: per model group, its mean precision in the
    top k and the requirements it meets over the lists of the audition splits (every split
    but the chosen model's, the last, whose dates give the final figures), as
    ``temporal.selection.require_fairness`` reads them (:func:`rudikit.run.selection.
    audition_statuses`)."""
    chosen = precision[precision["selected"]]
    if not len(chosen) or not len(reqs):
        return pd.DataFrame(columns=POINT_COLUMNS)
    audition = precision[precision["split"] != chosen["split"].iloc[0]]
    out = []
    for group, part in audition.groupby("model_group_id", sort=True):
        found: dict[str, list[str]] = {}
        for model_id in part["model_id"].unique():
            for name, status in _statuses(reqs, int(model_id)).items():
                found.setdefault(name, []).append(status)
        if not found:
            continue
        met = sum(combined_status(s) == MET for s in found.values())
        out.append({"model_id": int(group), "label": f"#{group} {part['name'].iloc[0]}",
                    "mitigated": False, "chosen": bool(group == chosen["model_group_id"].iloc[0]),
                    "rows": "audition-split", "value": float(part["value"].mean()),
                    "met": met, "total": len(found)})
    return pd.DataFrame(out, columns=POINT_COLUMNS)


def tradeoff_figure(points: pd.DataFrame, config: dict[str, Any], split: str
                    ) -> go.Figure | None:
    """The trade-off the RUDI guide describes ("improve performance and the requirements start
    failing"): each model's selection metric against the requirements it meets, on the rows
    selection read; the Pareto frontier (:func:`rudikit.fairness.tradeoff.pareto_frontier`) is
    the thick line. A point measured on other rows (a mitigated variant stored with test-row
    figures only) is drawn hollow and kept off the frontier."""
    if not len(points):
        return None
    metric, parameter = selection_metric(config)
    name = _metric_name(metric, parameter)
    main = points.loc[points["chosen"], "rows"].iloc[0] if points["chosen"].any() \
        else points["rows"].mode().iloc[0]
    same = points[points["rows"] == main]
    front = same[pareto_frontier(same["value"].to_numpy(), same["met"].to_numpy(),
                                 lower_is_better=lower_is_better(metric))]
    front = front.sort_values(["met", "value"])
    total = int(points["total"].max())
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=front["met"], y=front["value"], mode="lines", name="Pareto frontier",
                             line={"width": 5, "color": PALETTE[2]}, opacity=0.5,
                             hoverinfo="skip"))
    kinds = [("model groups", ~points["mitigated"], "circle"),
             ("mitigated variants", points["mitigated"], "diamond")]
    for label, mask, symbol in kinds:
        for rows, part in points[mask].groupby("rows", sort=False):
            on_front = part["model_id"].isin(front["model_id"])
            named = on_front | part["chosen"]  # the others by hover: names would overlap
            fig.add_trace(go.Scatter(
                x=part["met"], y=part["value"], mode="markers+text",
                text=part["label"].where(named, ""), hovertext=part["label"],
                textposition="top center",
                name=label + ("" if rows == main else f" ({rows} rows, off the frontier)"),
                marker={"symbol": symbol if rows == main else f"{symbol}-open", "size":
                        np.where(on_front, 13, 9), "color": np.where(
                            on_front, PALETTE[2], PALETTE[0] if symbol == "circle"
                            else PALETTE[1])},
                customdata=np.c_[part["total"], part["rows"]],
                hovertemplate="%{hovertext}: " + name + " %{y:.3f}, %{x} of %{customdata[0]} "
                              "requirements met (%{customdata[1]} rows)<extra></extra>"))
    chosen = points[points["chosen"]]
    if len(chosen):
        fig.add_trace(go.Scatter(x=chosen["met"], y=chosen["value"], mode="markers",
                                 name="chosen", marker={"symbol": "star", "size": 18,
                                                        "color": "gold",
                                                        "line": {"width": 1, "color": "black"}},
                                 hoverinfo="skip"))
    where = f"split {split!r}" if split else "every split but the last"
    fig.update_layout(title=f"Performance against fairness requirements met ({main} rows, "
                            f"{where})",
                      xaxis={"title": f"requirements met (of {total})", "dtick": 1,
                             "range": [-0.5, total + 0.5]},
                      yaxis_title=name, height=460)
    return fig


def _metric_name(metric: str, parameter: str) -> str:
    return f"{metric}@{parameter}" if parameter else metric


def runs_figure(history: pd.DataFrame, models: pd.DataFrame, config: dict[str, Any],
                split: str) -> go.Figure | None:
    """The selection metric of each of this run's model groups in every run of the project so
    far (test rows of the selection split): does a group hold up as the data moves on? None
    before a second run: one run is not a trend."""
    metric, parameter = selection_metric(config)
    if not len(history) or not len(models):
        return None
    rows = history[(history["parameter"] == parameter) & (history["split"] == split)
                   & history["model_group_id"].isin(models["model_group_id"])]
    if rows["run_id"].nunique() < 2:
        return None
    fig = go.Figure()
    names = models.drop_duplicates("model_group_id").set_index("model_group_id", drop=False)
    for group_id, part in rows.sort_values("run_id").groupby("model_group_id", sort=True):
        fig.add_trace(go.Scatter(
            x=[f"run {r}" for r in part["run_id"]], y=part["value"], mode="lines+markers",
            name=short_label(names.loc[group_id]),
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
    test period of each temporal split. Drawn only when there are at least two dates; each
    date is another split's model, so the points are not joined."""
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
            x=part["date"], y=part["value"], mode="markers",
            name=short_label(names.loc[group_id]),
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
        name = short_label(model) + (" (chosen)" if model["selected"] else "")
        color = PALETTE[i % len(PALETTE)]
        width = 4 if model["selected"] else 1.5
        for metric, dash in (("precision", "solid"), ("recall", "dot")):
            # each thinned on its own: recall is smooth where precision is not
            pct, value = thin(curve["pct"].to_numpy(), curve[metric].to_numpy())
            fig.add_trace(go.Scatter(x=pct, y=value, name=f"{name} {metric}", legendgroup=name,
                                     line={"width": width, "color": color, "dash": dash}))
    if not fig.data:
        return None
    for pct in config.get("evaluation", {}).get("top_pct", []):
        fig.add_vline(x=pct, line={"dash": "dash", "color": "grey"},
                      annotation_text=f"top {pct:g}%")
    fig.update_layout(title=f"Precision and recall in the top k, split {split!r}",
                      xaxis_title="list size (% of test rows, highest scores first)",
                      yaxis_title="precision / recall", height=480)
    return fig


#: Bars of the score distribution (0.02 wide for scores in [0, 1]).
SCORE_BINS = 50


def score_histogram(score: np.ndarray, label: np.ndarray, bins: int = SCORE_BINS
                    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Bin edges over [0, 1] (widened to every score), and each label's share of its rows
    per bin: the chart's data is ``bins`` numbers per label, whatever the number of rows."""
    edges = np.histogram_bin_edges(score, bins=bins, range=(min(0.0, float(score.min())),
                                                            max(1.0, float(score.max()))))
    shares = {}
    for value in (0, 1):
        mine = score[label == value]
        shares[value] = np.histogram(mine, bins=edges)[0] / max(len(mine), 1)
    return edges, shares


def score_figure(preds: pd.DataFrame, model: pd.Series) -> go.Figure | None:
    """Score histograms of the positive and negative test rows of one model: how well the two
    separate, and where a threshold would cut."""
    rows = preds[preds["model_id"] == model["id"]]
    if not len(rows):
        return None
    label = rows["label"].to_numpy()
    edges, shares = score_histogram(rows["score"].to_numpy(dtype=float), label)
    low, high = edges[:-1].astype(np.float32), edges[1:].astype(np.float32)
    fig = go.Figure()
    for value, name in ((0, "label 0 (negative)"), (1, "label 1 (positive)")):
        fig.add_trace(go.Bar(x=(low + high) / 2, y=shares[value].astype(np.float32),
                             width=high - low, customdata=np.c_[low, high], opacity=0.6,
                             name=f"{name}, n={int((label == value).sum()):,}",
                             hovertemplate="%{customdata[0]:.2f}-%{customdata[1]:.2f}: "
                                           "%{y:.1%}<extra></extra>"))
    fig.update_layout(barmode="overlay", title=f"Score distribution by label, {short_label(model)} "
                                               f"(split {model['split']!r})",
                      xaxis_title="score", yaxis_title="share of the label's rows", height=420)
    return fig


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
