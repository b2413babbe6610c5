"""The tables of the run report (metrics per model, the comparison with baselines and
experiments, requirement verdicts, the list simulation) and the naming they share with its
figures (which metric and split select a model, how a model group is labelled)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from markupsafe import escape

from rudikit.evaluation import display
from rudikit.fairness.list_simulation import list_selection_rate
from rudikit.store.queries.fairness import requirement_status

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


#: The algorithms that are baselines (an existing score, a rate per category, one feature's
#: ranking): the comparison table shows each of them beside the chosen model.
BASELINES = ("score_column", "rate_by_category", "rank_by_feature")


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


def short_label(row: pd.Series) -> str:
    refit = " refit" if row.get("refit", False) else ""  # fitted again after the choice
    return f"#{row['model_group_id']} {row['algorithm']}{refit}"


def model_label(row: pd.Series) -> str:
    """Group id and algorithm, with the hyperparameters in small print (HTML)."""
    params = display.settings(row["hyperparameters"])
    return short_label(row) + (f" <span class='params'>{escape(params)}</span>" if params else "")


def _fmt(value: Any, lower: Any = None, upper: Any = None) -> str:
    """A figure with its interval in small print (HTML)."""
    text = display.number(value)
    if text != display.MISSING and not display.missing(lower) and not display.missing(upper):
        text += (f" <span class='ci'>[{display.number(float(lower))}, "
                 f"{display.number(float(upper))}]</span>")
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
        rows.append({"label": model_label(model), "split": model["split"],
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
        elif model["algorithm"] in BASELINES:
            role = "baseline: " + display.settings(model["hyperparameters"])
        elif extra:
            role = "experiment: adds " + ", ".join(extra)
        else:
            continue
        rows.append({"model": short_label(model), "role": role, "id": int(model["id"])})
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
        if lists is not None and len(lists) and "list_share" in ev.index.get_level_values(
                "metric"):  # no shares without fairness attributes to share the list by
            k, _, n = lists.index[0].partition("_of_")
            for parameter, share in ev.xs("list_share", level="metric")["value"].items():
                pool = ev.loc[("list_pool_share", parameter), "value"]
                attribute, _, group = parameter.partition("=")
                if pool and pool >= min_pool_share:
                    rates.setdefault(attribute, []).append(
                        f"{group} {list_selection_rate(share, pool, int(k), int(n)):.3f}")
        row["rates"] = "; ".join(f"{a}: " + ", ".join(g) for a, g in rates.items())
    return rows


def _verdict(row: pd.Series) -> dict[str, Any]:
    """A requirement cell: its verdict, and the stored summary without repeating it."""
    status = requirement_status(row)
    return {"status": status, "text": str(row["summary"]).removeprefix(f"{status}: ")}


def requirement_table(models: pd.DataFrame, reqs: pd.DataFrame, split: str
                      ) -> tuple[list[str], list[dict[str, Any]]]:
    if not len(reqs):
        return [], []
    names = list(dict.fromkeys(reqs["name"]))
    rows = []
    for _, model in models[models["split"] == split].iterrows():
        mine = reqs[reqs["model_id"] == model["id"]].set_index("name")
        cells = [_verdict(mine.loc[n]) if n in mine.index else {"status": None, "text": "n/a"}
                 for n in names]
        rows.append({"label": model_label(model), "selected": bool(model["selected"]),
                     "cells": cells})
    return names, rows


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
