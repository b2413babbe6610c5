"""The report of a temporal (early intervention) run, built from the results store only.

What a department needs before trusting an early intervention list, each read back from the
store: precision in the top k per test as-of date for every model group next to the
single-feature baselines; the regret of each selection rule (recomputed from the stored
evaluations with the run's rules, so it is exactly what chose the model); list stability
(between seeds, with the chosen model's sources of randomness; against a bootstrap of the
training officers and each data source left out; against the number of trees; between
consecutive lists); the list of the last as-of date with each officer's top reasons, without
officers reviewed within the cool-off; the supervisors' agreement with the flags they
reviewed; and how officers moved on the list.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sqlalchemy.engine import Engine

from rudikit.config import TemporalExperiment
from rudikit.config.timechop import Split, label_end
from rudikit.evaluation.stability import exclude_reviewed
from rudikit.models.audition import audition
from rudikit.models.search import SEARCH_TRIAL
from rudikit.models.temporal import ensemble_grid, experiment_grid, selection_rules
from rudikit.reports.frozen import FigureRecorder, frozen_context
from rudikit.reports.list_fairness import list_fairness, list_fairness_figure
from rudikit.reports.list_perturbation import perturbation_figure, perturbations, randomness
from rudikit.reports.page import PALETTE, environment
from rudikit.reports.run_figures import (
    audition_points,
    search_figure,
    tradeoff_figure,
    with_best_so_far,
)
from rudikit.store import list_tables
from rudikit.store.queries import ensembles as ensembles_q
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import fairness as fairness_q
from rudikit.store.queries import lists as lists_q
from rudikit.store.queries import predictions as predictions_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries import snapshots as snapshots_q


def _naive(values: pd.Series) -> pd.Series:
    """UTC timestamps as naive ones (the store returns aware ones on PostgreSQL)."""
    stamps = pd.to_datetime(values, utc=True)
    return stamps.dt.tz_convert(None)


def experiment(config: dict[str, Any]) -> TemporalExperiment:
    """The run's :class:`rudikit.config.TemporalExperiment`."""
    return TemporalExperiment.model_validate(config["temporal"])


def run_models(engine: Engine, run_id: int) -> pd.DataFrame:
    """The run's models with their group's algorithm, hyperparameters and display name (the
    ``name`` given in rudi.yaml), and whether the group is a baseline."""
    stored = runs_q.run_config(engine, run_id)
    if stored is None:
        raise ValueError(f"run {run_id} is not in the store")
    config = experiment(stored)
    models = runs_q.run_models(engine, run_id)
    names = {(p.algorithm, repr(sorted(p.params.items()))): name
             for p, name in experiment_grid(config) + ensemble_grid(config)}
    models["name"] = [names.get((a, repr(sorted((h or {}).items()))), f"group {g}")
                      for a, h, g in zip(models["algorithm"], models["hyperparameters"],
                                         models["model_group_id"], strict=True)]
    models["baseline"] = models["algorithm"] == "rank_by_feature"
    for column in ("test_start", "test_end"):
        models[column] = _naive(models[column])
    return models


def precision_over_time(engine: Engine, run_id: int) -> pd.DataFrame:
    """Precision in the top k per model group and test as-of date, with its bootstrap
    interval: one row per (group, date). A model tested on several dates stored one value per
    date (parameter ``100_abs@2016-01-01``); one tested on a single date stored ``100_abs``."""
    models = run_models(engine, run_id)
    k = experiment(runs_q.run_config(engine, run_id)).top_k
    evals = evaluations_q.top_k_precision(engine, models["id"].tolist(), k)
    per_date = evals[evals["parameter"].str.startswith(f"{k}_abs@")]
    single = evals[(evals["parameter"] == f"{k}_abs")
                   & ~evals["model_id"].isin(per_date["model_id"])]
    per_date = per_date.assign(as_of_date=pd.to_datetime(
        per_date["parameter"].str.split("@").str[1]))
    single = single.merge(models[["id", "test_start"]], left_on="model_id", right_on="id")
    single = single.assign(as_of_date=single["test_start"].dt.normalize())
    rows = pd.concat([per_date, single], ignore_index=True)[
        ["model_id", "as_of_date", "value", "lower", "upper"]]
    out = rows.merge(models[["id", "model_group_id", "name", "algorithm", "baseline", "split",
                             "test_start", "selected"]], left_on="model_id", right_on="id")
    return out.drop(columns="id").sort_values(["model_group_id", "as_of_date"],
                                             ignore_index=True)


def precision_figure(precision: pd.DataFrame, k: int) -> go.Figure:
    """Precision@k per as-of date and model group: markers only, since each date is another
    split's model (a line would suggest one model followed over time)."""
    fig = go.Figure()
    for i, (group, rows) in enumerate(precision.groupby("model_group_id", sort=True)):
        baseline = bool(rows["baseline"].iloc[0])
        fig.add_trace(go.Scatter(
            x=rows["as_of_date"], y=rows["value"], mode="markers",
            name=f"#{group} {rows['name'].iloc[0]}",
            marker={"symbol": "diamond-open" if baseline else "circle", "size": 9,
                    "color": PALETTE[i % len(PALETTE)]},
            error_y={"type": "data", "symmetric": False,
                     "array": (rows["upper"] - rows["value"]).fillna(0),
                     "arrayminus": (rows["value"] - rows["lower"]).fillna(0),
                     "thickness": 1}))
    fig.update_layout(title=f"Precision in the top {k} per test as-of date (baselines: open "
                            "diamonds)",
                      xaxis_title="as-of date (list made)", yaxis_title=f"precision@{k}",
                      height=480)
    return fig


def precision_table(precision: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    """Groups x dates (and the mean), baselines first, then by mean."""
    wide = precision.pivot_table(index="model_group_id", columns="as_of_date", values="value")
    dates = [f"{d:%Y-%m-%d}" for d in wide.columns]
    info = precision.drop_duplicates("model_group_id").set_index("model_group_id")
    chosen = set(precision.loc[precision["selected"], "model_group_id"])
    rows = [{"group": int(g), "name": info.loc[g, "name"],
             "baseline": bool(info.loc[g, "baseline"]), "selected": g in chosen,
             "values": [f"{v:.3f}" if pd.notna(v) else "n/a" for v in wide.loc[g]],
             "mean": float(np.nanmean(wide.loc[g].to_numpy()))} for g in wide.index]
    rows.sort(key=lambda r: (not r["baseline"], -r["mean"]))
    return dates, rows


def selection_regret(engine: Engine, run_id: int) -> dict[str, pd.DataFrame]:
    """Every selection rule of the run scored by its regret over the splits (period = a
    split's first test as-of date; value = its mean precision in the top k), as
    :func:`rudikit.models.temporal.run_temporal` and the pipeline computed it (ensembles are
    not candidates there)."""
    precision = precision_over_time(engine, run_id)
    precision = precision[precision["algorithm"] != "ensemble"]
    rules = selection_rules(experiment(runs_q.run_config(engine, run_id)))
    split_values = precision.groupby(["model_group_id", "test_start"], as_index=False)[
        "value"].mean()
    aud = audition(split_values, rules, time_col="test_start")
    names = precision.drop_duplicates("model_group_id").set_index("model_group_id")["name"]
    summary = aud.summary.assign(final_name=aud.summary["final_choice"].map(names))
    regrets = aud.regrets.assign(chosen_name=aud.regrets["chosen_group"].map(names),
                                 best_name=aud.regrets["best_group"].map(names))
    return {"summary": summary, "regrets": regrets}


def stability_rows(engine: Engine, run_id: int) -> pd.DataFrame:
    rows = lists_q.stability(engine, run_id)
    if len(rows):
        rows["as_of_date"] = _naive(rows["as_of_date"])
    return rows


def trees_curve(stability: pd.DataFrame) -> pd.DataFrame:
    """n_estimators -> Jaccard, Spearman and precision in the top k between the seeds."""
    rows = stability[stability["kind"] == "trees"] if len(stability) else stability
    if not len(rows):
        return pd.DataFrame(columns=["n_estimators", "jaccard", "spearman", "precision_at_k"])
    rows = rows.assign(n_estimators=rows["parameter"].str.removeprefix("n_estimators=")
                       .astype(int))
    return (rows.pivot_table(index="n_estimators", columns="metric", values="value")
            .reset_index().sort_values("n_estimators", ignore_index=True))


def trees_figure(curve: pd.DataFrame, algorithm: str, k: int) -> go.Figure:
    fig = go.Figure(go.Scatter(x=curve["n_estimators"], y=curve["jaccard"], mode="lines+markers",
                               name=f"top-{k} Jaccard between seeds"))
    if "precision_at_k" in curve:
        fig.add_trace(go.Scatter(x=curve["n_estimators"], y=curve["precision_at_k"],
                                 mode="lines+markers", name=f"precision@{k} (mean of seeds)"))
    fig.update_layout(title=f"List stability vs number of trees ({algorithm})",
                      xaxis={"title": "trees", "type": "log", "minor": {"ticks": "",
                             "showgrid": False},
                             "tickvals": curve["n_estimators"].tolist()},
                      yaxis_title="value", height=420)
    return fig


def reviewer_agreement(engine: Engine, group_ids: list[int]) -> dict[str, Any]:
    """How often supervisors agreed with the flags they reviewed, for reviews of these model
    groups' lists: ``rate`` = agree / (agree + disagree) (``unsure`` and reviews without an
    answer are counted but not in the rate), overall and per group."""
    reviews = list_tables.load_reviews(engine)
    reviews = reviews[reviews["model_group_id"].isin(group_ids)]
    counts = reviews["agreement"].fillna("not given").value_counts().to_dict()

    def rate(frame: pd.DataFrame) -> float | None:
        decided = frame[frame["agreement"].isin(["agree", "disagree"])]
        return float((decided["agreement"] == "agree").mean()) if len(decided) else None

    per_group = [{"model_group_id": int(g), "reviews": len(rows), "rate": rate(rows)}
                 for g, rows in reviews.groupby("model_group_id")]
    return {"reviews": len(reviews), "counts": counts, "rate": rate(reviews),
            "per_group": per_group}


def last_list(engine: Engine, run_id: int, models: pd.DataFrame, k: int, cool_off_days: int
              ) -> dict[str, Any] | None:
    """The selected model's list on its last test as-of date: officers reviewed within the
    cool-off left out, the top ``k`` with the outcome that followed (the label) and their
    stored top reasons."""
    selected = models[models["selected"]]
    if not len(selected):
        return None
    model_id = int(selected["id"].iloc[0])
    preds = predictions_q.model_predictions(engine, model_id)
    preds["as_of_date"] = _naive(preds["as_of_date"])
    when = preds["as_of_date"].max()
    day = preds[preds["as_of_date"] == when]
    reviews = list_tables.load_reviews(engine)
    kept = exclude_reviewed(day[["entity_id", "score"]], reviews, when, cool_off_days, k)
    kept = kept.merge(day[["entity_id", "label"]], on="entity_id", how="left")
    reasons = predictions_q.reasons(engine, model_id)
    by_entity: dict[str, list[str]] = {}
    if len(reasons):
        reasons["as_of_date"] = _naive(reasons["as_of_date"])
        reasons = reasons[reasons["as_of_date"] == when].sort_values(["entity_id", "rank"])
        for entity, rows in reasons.groupby("entity_id"):
            by_entity[str(entity)] = [
                f"{r.feature} = {r.value} ({'+' if r.contribution > 0 else ''}"
                f"{r.contribution:.2f})" for r in rows.itertuples()]
    entries = [{"rank": int(r.rank), "original_rank": int(r.original_rank),
                "entity_id": r.entity_id, "score": float(r.score),
                "label": None if pd.isna(r.label) else int(r.label),
                "reasons": by_entity.get(str(r.entity_id), [])}
               for r in kept.itertuples()]
    excluded = int(len(day) - len(exclude_reviewed(day[["entity_id", "score"]], reviews, when,
                                                   cool_off_days)))
    positives = [e["label"] for e in entries if e["label"] is not None]
    return {"model_id": model_id, "as_of_date": when, "entries": entries, "excluded": excluded,
            "precision": float(np.mean(positives)) if positives else None,
            "method": str(reasons["method"].iloc[0]) if len(reasons) else None}


def rank_change_summary(engine: Engine, run_id: int, k: int) -> tuple[Any, list[dict[str, Any]]]:
    """Per horizon, for the officers in the top ``k`` of the stored date: how many were not
    in the earlier list's top ``k``, and the median absolute rank change of the others."""
    # only the top k's rows: every list has a rank 1, so the latest date is among them
    top = lists_q.changes(engine, run_id, top=k)
    if not len(top):
        return None, []
    top["previous_date"] = _naive(top["previous_date"])
    rows = []
    for horizon in ("day", "week", "month", "quarter", "year"):
        part = top[top["horizon"] == horizon]
        if not len(part):
            continue
        entered = part["previous_rank"].isna() | (part["previous_rank"] > k)
        moved = part.loc[~entered, "change"].dropna().abs()
        previous = part["previous_date"].iloc[0]
        rows.append({"horizon": horizon,
                     "previous_date": f"{previous:%Y-%m-%d}" if pd.notna(previous) else "n/a",
                     "entered": int(entered.sum()),
                     "median_change": f"{moved.median():.0f}" if len(moved) else "n/a"})
    return _naive(top["as_of_date"]).max(), rows


def ensemble_rows(engine: Engine, models: pd.DataFrame) -> list[dict[str, Any]]:
    """Per ensemble model of the run: its group, split, members (group and name, in order),
    how they were chosen, and how many reasons are stored for it."""
    ensembles = models[models["algorithm"] == "ensemble"]
    if not len(ensembles):
        return []
    members = ensembles_q.ensemble_members(engine, ensembles["id"].tolist())
    names = dict(zip(models["model_group_id"], models["name"], strict=False))
    out = []
    for e in ensembles.itertuples():
        own = members[members["ensemble_model_id"] == e.id]
        out.append({"group": int(e.model_group_id), "name": str(e.name), "split": str(e.split),
                    "members": [f"#{g} {names.get(g, '')}".strip()
                                for g in own["member_group_id"]],
                    "chosen_by": str(own["chosen_by"].iloc[0]) if len(own) else "",
                    "reasons": len(predictions_q.reasons(engine, int(e.id)))})
    return out


def search_history(engine: Engine, precision: pd.DataFrame, last: Split) -> pd.DataFrame:
    """Per search trial: its mean precision in the top k over the splits before the last, on
    the lists whose label windows end by the last split time (per split the mean over those
    dates: what the search scored it by), the best so far, and whether its group was
    chosen."""
    evals = evaluations_q.evaluations_of_models(engine, precision["model_id"].unique().tolist())
    trials = evals.loc[evals["metric"] == SEARCH_TRIAL, ["model_id", "parameter", "value"]]
    if not len(trials):
        return pd.DataFrame()
    rows = precision.merge(trials.rename(columns={"parameter": "spec", "value": "trial"}),
                           on="model_id")
    ends = {d: label_end(d, last.test.label_timespan) for d in rows["as_of_date"].unique()}
    closed = rows["as_of_date"].map(ends) <= last.split_time
    earlier = rows[(rows["split"] != last.name) & closed]
    score = (earlier.groupby(["spec", "trial", "split"])["value"].mean()
             .groupby(["spec", "trial"]).mean().rename("score").reset_index())
    chosen = set(rows.loc[rows["selected"].astype(bool), "model_group_id"])
    groups = rows.groupby(["spec", "trial"])["model_group_id"].first().rename("group")
    out = score.merge(groups.reset_index(), on=["spec", "trial"])
    out["chosen"] = out["group"].isin(chosen)
    out["rows"] = (f"the lists of every split but the last labelled by "
                   f"{last.split_time:%Y-%m-%d}")
    return with_best_so_far(out)


def render_temporal_report(engine: Engine, run_id: int) -> str:
    """The HTML of a temporal run's report. What the page shows (the lists, their reasons, the
    reviews counted) is frozen the first time it is built (:mod:`rudikit.reports.frozen`):
    later reviews and lists do not change it."""
    context = frozen_context(engine, run_id, "temporal",
                             lambda page: temporal_context(engine, run_id, page))
    return environment().get_template("temporal_report.html.j2").render(**context)


def temporal_context(engine: Engine, run_id: int, page: FigureRecorder) -> dict[str, Any]:
    """Everything the temporal report shows, read from the store as it is now."""
    run = pd.DataFrame([dict(runs_q.run(engine, run_id) or {})]).iloc[0]
    config = run["config"]
    exp = experiment(config)
    k = exp.top_k
    models = run_models(engine, run_id)
    precision = precision_over_time(engine, run_id)
    figures = [page.add(precision_figure(precision, k))]
    searched = search_figure(search_history(engine, precision, exp.splits()[-1]), config)
    dates, table = precision_table(precision)
    regret = selection_regret(engine, run_id)
    per_period = regret["regrets"].assign(
        period=pd.to_datetime(regret["regrets"]["period"]).dt.strftime("%Y-%m-%d"))
    stability = stability_rows(engine, run_id)
    curve = trees_curve(stability)
    if len(curve):
        figures.append(page.add(trees_figure(curve, exp.stability.algorithm, k)))
    perturbed = perturbations(stability)
    if perturbed:
        perturbed["figure"] = page.add(perturbation_figure(perturbed, k))
    seeds = stability[stability["kind"] == "seeds"] if len(stability) else stability
    consecutive = []
    if len(stability):
        rows = stability[(stability["kind"] == "consecutive") & (stability["metric"] == "jaccard")]
        for spacing in ("day", "week", "month", "year"):
            part = rows[[(d or {}).get("spacing") == spacing for d in rows["details"]]]
            if len(part):
                consecutive.append({"spacing": spacing, "pairs": len(part),
                                    "mean": part["value"].mean(), "min": part["value"].min(),
                                    "max": part["value"].max()})
    chosen = models[models["selected"]]
    fairness = list_fairness(engine, run_id, models)
    if fairness and (figure := list_fairness_figure(fairness["audit"])) is not None:
        fairness["figure"] = page.add(figure)
    tradeoff = tradeoff_figure(audition_points(precision, pd.DataFrame(
        fairness_q.requirements(engine, models["id"].tolist()))), config, "")
    if fairness and tradeoff is not None:
        fairness["tradeoff"] = page.add(tradeoff)
    agreement = reviewer_agreement(engine, sorted(models["model_group_id"].unique().tolist()))
    changes_date, changes = rank_change_summary(engine, run_id, k)
    return dict(
        run=run.drop(labels=["config", "library_versions"]), config=config, exp=exp, k=k,
        figures=figures, dates=dates, table=table,
        search=page.add(searched) if searched is not None else None,
        rules=regret["summary"].to_dict("records"),
        per_period=per_period.to_dict("records"),
        curve=curve.to_dict("records"), seeds=seeds.to_dict("records") if len(seeds) else [],
        consecutive=consecutive, randomness=randomness(stability), perturbed=perturbed,
        chosen=chosen.iloc[0].to_dict() | {"requirements": fairness_q.model_requirement_statuses(
            engine, int(chosen["id"].iloc[0]))} if len(chosen) else None,
        last=last_list(engine, run_id, models, k, exp.cool_off_days),
        ensembles=ensemble_rows(engine, models),
        agreement=agreement, changes=changes, fairness=fairness, changes_date=changes_date,
        snapshots=snapshots_q.snapshots_of_run(engine, run_id).to_dict("records"),
        rationale=config.get("rationale", {}),
        splits=models.drop_duplicates("split")[["split", "train_start", "train_end", "test_start",
                                                "train_rows", "test_rows"]].to_dict("records"),
    )
