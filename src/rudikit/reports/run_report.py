"""The run report: one self-contained HTML page per run, built from the results store only.

Reading from the store (not from the objects in memory) means any past run's report can be
rebuilt, and what the page says is exactly what was recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.evaluation.display import when
from rudikit.fairness.tradeoff import NO_GROUP_MEETS
from rudikit.reports.cards import write_run_cards
from rudikit.reports.frozen import FigureRecorder, frozen_context
from rudikit.reports.group_figures import audit_figures, disparity_figures
from rudikit.reports.location_map import cell_map_figure, training_cells
from rudikit.reports.mitigation_table import margin_note, mitigation_rows
from rudikit.reports.page import environment
from rudikit.reports.run_figures import (
    asof_figure,
    composition_figure,
    curve_figures,
    frontier_figure,
    importance_figure,
    runs_figure,
    score_figure,
    search_figure,
    search_history,
    top_k_figure,
    tradeoff_figure,
    tradeoff_points,
)
from rudikit.reports.run_tables import (
    comparison_table,
    list_simulation_table,
    metric_table,
    model_label,
    requirement_table,
    selection_metric,
    selection_split,
    short_label,
)
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import fairness as fairness_q
from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.queries import predictions as predictions_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries import snapshots as snapshots_q


def read_run_results(engine: Engine, run_id: int) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        run = runs_q.run(conn, run_id)
        if run is None:
            raise ValueError(f"run {run_id} is not in the store")
        models = runs_q.run_models(conn, run_id)
        ids = models["id"].tolist() if len(models) else []
        evals = evaluations_q.evaluations_of_models(conn, ids)
        preds = predictions_q.scores_frame(conn, ids)
        imps = evaluations_q.feature_importances(conn, ids)
        snaps = snapshots_q.snapshots_of_run(conn, run_id)
        audits = fairness_q.audits(conn, ids)
        reqs = pd.DataFrame(fairness_q.requirements(conn, ids))
        metric, _ = selection_metric(run["config"])
        history = evaluations_q.project_metric_history(conn, run["project"], run_id, metric)
    return {"run": pd.DataFrame([dict(run)]), "models": models, "evaluations": evals,
            "predictions": preds, "importances": imps, "snapshots": snaps, "audits": audits,
            "requirements": reqs, "history": history}


#: Rows of the chosen model's ranked test list shown in the report.
LIST_ROWS = 20


def top_of_list(engine: Engine, model_id: int, rows: int = LIST_ROWS) -> list[dict[str, Any]]:
    """The highest-ranked test rows of ``model_id`` with each one's stored top reasons
    (``individual_importances``, matched on entity and as-of date), as a panel would see
    them."""
    with engine.connect() as conn:
        head = predictions_q.top_predictions(conn, model_id, rows)
        if not len(head):
            return []
        reasons = predictions_q.reasons(conn, model_id, head["entity_id"].tolist())

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
    if not model_group_ids:
        return []
    with engine.connect() as conn:
        rows = []
        for r in monitoring_q.passes_of_groups(conn, model_group_ids):
            figures = monitoring_q.headline_figures(conn, r["id"])
            psi = [f.value for f in figures if f.metric == "psi" and f.value is not None]
            get = {(f.section, f.subject): f.value for f in figures if f.metric == "precision"}
            rows.append({**dict(r), "window_start": when(r["window_start"]),
                         "window_end": when(r["window_end"]),
                         "realised": get.get(("performance", "all")),
                         "expected": get.get(("expected", "test")),
                         "max_psi": max(psi) if psi else None,
                         "report": f"monitor-{r['id']}.html"})
    return rows


def write_run_report_and_cards(engine: Engine, run_id: int, project_dir: Path,
                               sources: Sequence[Any] | None) -> Path:
    """What `rudi run` writes once a run is finished: its report into ``<project>/.rudi/reports``
    and its cards into ``.rudi/cards`` (``sources``: the run's loaded sources, so the data is not
    read twice; None for a temporal run). Returns the report's path."""
    path = write_run_report(engine, run_id, project_dir / ".rudi" / "reports")
    write_run_cards(engine, run_id, project_dir / ".rudi" / "cards", sources=sources)
    return path


def write_run_report(engine: Engine, run_id: int, directory: str | Path) -> Path:
    """Write ``run-<id>.html`` into ``directory`` and return its path (a temporal run's page
    is :func:`rudikit.reports.temporal_report.render_temporal_report`). What the page shows
    is frozen the first time it is written (:mod:`rudikit.reports.frozen`); only the
    production monitoring passes, listed at the end of a case run's page, are read afresh at
    each build."""
    stored = runs_q.run_config(engine, run_id)
    if isinstance(stored, dict) and "temporal" in stored:
        from rudikit.reports.temporal_report import render_temporal_report

        html = render_temporal_report(engine, run_id)
    else:
        context = frozen_context(engine, run_id, "run",
                                 lambda page: run_context(engine, run_id, page))
        html = environment().get_template("run_report.html.j2").render(
            monitoring=monitoring_rows(engine, context["model_group_ids"]), **context)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"run-{run_id}.html"
    path.write_text(html, encoding="utf-8")
    return path


def run_context(engine: Engine, run_id: int, page: FigureRecorder) -> dict[str, Any]:
    """Everything the run report shows, read from the store as it is now."""
    data = read_run_results(engine, run_id)
    run = data["run"].iloc[0]
    config = run["config"]
    models, evals, preds = data["models"], data["evaluations"], data["predictions"]
    if len(models):  # a model refit after the choice is labelled so (short_label)
        models = models.assign(refit=models["id"].isin(
            evals.loc[evals["metric"] == evaluations_q.REFIT_OF, "model_id"]))
    split = selection_split(config, models)
    headings, rows = metric_table(models, evals, config)
    selected = models[models["selected"]] if len(models) else models
    chosen_row = selected.iloc[0] if len(selected) else None
    figures: list[Any] = []
    if len(models):
        figures += [page.add(fig) for fig in curve_figures(models, preds, split)]
        figures += [page.add(fig) for fig in (
            top_k_figure(models, preds, split, config),
            search_figure(search_history(models, evals, split, config), config))
            if fig is not None]
    chosen = None
    if chosen_row is not None:
        chosen = {"label": model_label(chosen_row), "reason": chosen_row["selection_reason"],
                  "id": chosen_row["id"], "artefact": chosen_row["artefact_hash"],
                  "requirements": fairness_q.model_requirement_statuses(
                      engine, int(chosen_row["id"]))}
        for fig in (score_figure(preds, chosen_row),
                    importance_figure(data["importances"], int(chosen_row["id"])),
                    cell_map_figure(training_cells(evals, int(chosen_row["id"])),
                                    "Training searches by H3 cell")):
            if fig is not None:
                figures.append(page.add(fig))
    time_figures = [page.add(fig) for fig in (
        runs_figure(data["history"], models, config, split),
        asof_figure(data["history"], models, config, run_id)) if fig is not None]
    fairness_figures: list[Any] = []
    min_size = int(config.get("fairness", {}).get("min_group_size") or 50)
    if chosen is not None:
        audits = data["audits"]
        fairness_figures += [page.add(fig) for fig in audit_figures(audits, chosen["id"],
                                                                     min_size)]
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
    mitigation = (mitigation_rows(engine, int(mitigated.iloc[0]["id"]), evals)
                  if len(mitigated) else [])
    margin = margin_note(evals, int(mitigated.iloc[0]["id"])) if len(mitigated) else ""
    tradeoff = None
    points = tradeoff_points(models, evals, data["requirements"], split, config)
    trade_fig = tradeoff_figure(points, config, split)
    if trade_fig is not None:
        rows_read = points.loc[points["chosen"], "rows"]
        tradeoff = {"figure": page.add(trade_fig),
                    "rows": rows_read.iloc[0] if len(rows_read) else points["rows"].iloc[0],
                    "total": int(points["total"].max()),
                    "none_meets": chosen_row is not None and str(
                        chosen_row["selection_reason"] or "").startswith(NO_GROUP_MEETS)}
    simulated = [("chosen: " + short_label(chosen_row), int(chosen_row["id"]))] \
        if chosen_row is not None else []
    simulated += [("mitigated: " + short_label(m), int(m["id"])) for _, m in mitigated.iterrows()]
    fairness = config.get("fairness", {})
    return {
        "lists": list_simulation_table(evals, simulated),
        "ranked": top_of_list(engine, int(chosen_row["id"])) if chosen_row is not None else [],
        "comparisons": comparison_table(models, evals, split),
        "run": {k: run[k] for k in ("id", "project", "status", "started_at", "config_hash",
                                    "code_version", "data_origin")},
        "bootstrap": config.get("evaluation", {}).get("bootstrap"),
        "headings": headings, "rows": rows, "figures": figures, "chosen": chosen,
        "snapshots": data["snapshots"].to_dict("records"), "split": split,
        "req_names": req_names, "req_rows": req_rows, "fairness_figures": fairness_figures,
        "tradeoff": tradeoff, "time_figures": time_figures,
        "mitigation": mitigation, "margin": margin,
        "rationale": config.get("rationale", {}),
        "fairness": {"at": fairness.get("at") or {}, "min_group_size": min_size,
                     "correction": fairness.get("correction")},
        "model_group_ids": sorted({int(g) for g in models["model_group_id"]})
        if len(models) else [],
    }
