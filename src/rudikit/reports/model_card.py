"""The model card of one model group: the RUDI model card template, answered.

A model group (an algorithm, its hyperparameters, features and label) is fitted once per split
in every run that includes it; the card reports one run (the latest, unless told otherwise)
with every split, the fairness audit on the selection split, and the group's selection metric
across all runs so far. Words come from rudi.yaml (rationale, governance); numbers only from
the store.

Here the store is read and the sections put in the template's order; each section is written
by the module of its part of the template: :mod:`~rudikit.reports.model_card_details`,
:mod:`~rudikit.reports.model_card_results` (results and error analysis),
:mod:`~rudikit.reports.model_card_metrics` and :mod:`~rudikit.reports.model_card_governance`
(intended use, risks, maintenance).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.evaluation import display
from rudikit.reports.cards import (
    AnyProject,
    Card,
    CardError,
    read_run,
    run_project_config,
    valid_ids,
)
from rudikit.reports.mitigation_table import margin_note, mitigation_rows
from rudikit.reports.model_card_details import details_section
from rudikit.reports.model_card_governance import (
    maintenance_section,
    risks_section,
    status_parts,
    use_section,
)
from rudikit.reports.model_card_metrics import metrics_section
from rudikit.reports.model_card_results import errors_section, results_section
from rudikit.reports.run_figures import importance_figure
from rudikit.reports.run_tables import selection_metric
from rudikit.store import tables as t
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import fairness as fairness_q
from rudikit.store.queries import production as production_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries import snapshots as snapshots_q


def build_model_card(engine: Engine, model_group_id: int, *, run_id: int | None = None,
                     project: AnyProject | None = None) -> Card:
    """The model card of ``model_group_id`` as fitted in ``run_id`` (default: its latest run).
    ``project`` supplies the current rationale and governance answers."""
    group = runs_q.model_group(engine, model_group_id)
    if group is None:
        raise CardError(f"no model group with id {model_group_id}; "
                        f"{valid_ids(engine, t.model_groups)}")
    group = dict(group)
    fitted = runs_q.models_of_group(engine, model_group_id)
    if not len(fitted):
        raise CardError(f"model group {model_group_id} has never been fitted")
    if run_id is None:  # the latest development run; `rudi retrain` / `rudi backtest` refits
        # of the group (splits retrain_* / backtest_*) carry no audit of their own
        developed = fitted[~fitted["split"].str.startswith(("retrain_", "backtest_"))]
        run_id = int((developed if len(developed) else fitted)["run_id"].max())
    models = fitted[fitted["run_id"] == run_id].sort_values("id")
    if not len(models):
        raise CardError(f"model group {model_group_id} was not fitted in run {run_id}; runs: "
                        + ", ".join(map(str, sorted(fitted["run_id"].unique()))))
    run = read_run(engine, run_id)
    proj = run_project_config(run, project)
    config = run["config"]
    ids = models["id"].tolist()
    on_split = models[models["split"] == proj.selection_split]
    main = (on_split if len(on_split) else models).iloc[0]
    evals = evaluations_q.evaluations_of_models(engine, ids)
    audits = fairness_q.audits(engine, [int(main["id"])])
    reqs = pd.DataFrame(fairness_q.requirements(engine, [int(main["id"])]))
    imps = evaluations_q.feature_importances(engine, [int(main["id"])])
    snapshots = snapshots_q.snapshots_of_run(engine, run_id)
    run_models = runs_q.run_groups(engine, run_id)
    chosen_rows = run_models[run_models["selected"]]
    chosen = int(chosen_rows.iloc[0]["model_group_id"]) if len(chosen_rows) else None
    related = run_models[[(h or {}).get("base_model_group") == model_group_id
                          for h in run_models["hyperparameters"]]].drop_duplicates(
        "model_group_id")
    metric, parameter = selection_metric(config)
    history = evaluations_q.group_metric_history(engine, model_group_id, metric, parameter)
    details = details_section(proj, group, run, models, snapshots)
    importance = importance_figure(imps, int(main["id"])) if len(imps) else None
    details.figures = [importance] if importance is not None else []
    sections = [
        details,
        use_section(proj, models, chosen, status_parts(
            main, fairness_q.model_requirement_statuses(engine, int(main["id"])),
            [d for d in production_q.deployments(engine)
             if d["model_group_id"] == model_group_id])),
        results_section(proj, models, evals, audits, config, main),
        errors_section(proj, audits, reqs, group, related, main,
                       mitigation_rows(engine, int(main["id"]), evals)
                       if main is not None and group["algorithm"].startswith("mitigated_")
                       else None,
                       margin_note(evals, int(main["id"])) if main is not None else ""),
        metrics_section(proj, config, history),
        risks_section(proj),
        maintenance_section(proj),
    ]
    return Card(f"Model card: model group {model_group_id} ({group['algorithm']})",
                f"Project {run['project']} · run {run_id} · {display.day(run['started_at'])} · "
                f"label {group['label']}", run["data_origin"] == "synthetic", sections,
                f"model-card-group-{model_group_id}")
