"""The model card of one model group: the RUDI model card template, answered.

A model group (an algorithm, its hyperparameters, features and label) is fitted once per split
in every run that includes it; the card reports one run (the latest, unless told otherwise)
with every split, the fairness audit on the selection split, and the group's selection metric
across all runs so far. Words come from rudi.yaml (rationale, governance); numbers only from
the store.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import Project, TemporalProject
from rudikit.evaluation import display
from rudikit.fairness.disparities import (
    DESCRIPTIVE_METRICS,
    STATUS_INCONCLUSIVE,
    STATUS_UNFAIR,
)
from rudikit.fairness.groups import MISSING_GROUP
from rudikit.fairness.significance import CORRECTION_NAMES
from rudikit.models.temporal import selection_rules
from rudikit.reports.cards import (
    AnyProject,
    Bullets,
    Card,
    CardError,
    Field,
    NotProvided,
    Part,
    Section,
    Table,
    Text,
    answer,
    read_run,
    run_project_config,
    valid_ids,
)
from rudikit.reports.group_figures import AUDIT_METRICS, audit_figures, disparity_figures
from rudikit.reports.mitigation_table import margin_note, mitigation_rows
from rudikit.reports.run_figures import importance_figure
from rudikit.reports.run_tables import key_metric_columns, selection_metric
from rudikit.store import tables as t
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import fairness as fairness_q
from rudikit.store.queries import production as production_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries import snapshots as snapshots_q

ALGORITHMS = {
    "logistic_regression": "Logistic regression (a linear model of the log-odds)",
    "random_forest": "Random forest (an average of many decision trees)",
    "lightgbm": "Gradient-boosted decision trees (LightGBM)",
    "rate_by_category": "Baseline: the training success rate of one category",
    "score_column": "Baseline: an existing score used as it is",
    "rank_by_feature": "Baseline: ranking by one feature",
}

#: Group metrics shown in the unitary and intersectional tables (with their intervals).
GROUP_COLUMNS = {**AUDIT_METRICS, "roc_auc": "ROC AUC"}
TOP_DISPARITIES = 15


def _algorithm(group: dict[str, Any]) -> str:
    name = group["algorithm"]
    if name.startswith("mitigated_"):
        base = name.removeprefix("mitigated_")
        return (f"Per-group decision thresholds on the scores of model group "
                f"{group['hyperparameters'].get('base_model_group')} "
                f"({ALGORITHMS.get(base, base)}), chosen to meet a fairness constraint")
    return ALGORITHMS.get(name, name)


def _details(project: AnyProject, group: dict[str, Any], run: dict[str, Any], models: pd.DataFrame,
             snapshots: pd.DataFrame) -> Section:
    files = Table(["Split", "Model id", "Train rows", "Artefact file (named by its SHA-256)"],
                  [[m["split"], str(m["id"]), display.count(m["train_rows"]),
                    m["artefact_path"]]
                   for _, m in models.iterrows()])
    data = "; ".join(f"snapshot {s['id']} of {s['source']} (SHA-256 {s['checksum'][:16]}...)"
                     for _, s in snapshots.iterrows()) or "no snapshot recorded"
    libraries = ", ".join(f"{k} {v}" for k, v in (run["library_versions"] or {}).items())
    params = display.settings(group["hyperparameters"]) or "defaults"
    features = group["features"] or {}
    inputs = [f"{kind}: {', '.join(features.get(kind) or [])}"
              for kind in ("categorical", "boolean", "numeric") if features.get(kind)]
    if features.get("datetime"):
        inputs.append(f"datetime: {features['datetime']['column']} "
                      f"({', '.join(features['datetime']['parts'])})")
    if grouped := features.get("group_size"):
        inputs.append(f"group size: {grouped['column']} (rows with the same "
                      f"{', '.join(grouped['by'])}; 1 when a request leaves it out)")
    return Section("Model details", [
        Field("Senior responsible officer", answer(
            project.rationale.team.senior_responsible_officer,
            "rationale.team.senior_responsible_officer")),
        Field("File names", [files]),
        Field("Date and version", [Text(
            f"Model group {group['id']} (key {group['group_key'][:12]}...), first fitted "
            f"{display.day(group['created_at'])}. This card reports run {run['id']} of "
            f"{display.day(run['started_at'])}: configuration {run['config_hash']}, rudikit "
            f"{run['code_version']}, seed {run['seed']}. Data: {data}."),
            Text(f"Libraries: {libraries}.")]),
        Field("Type of model", [Text(f"{_algorithm(group)}; hyperparameters: {params}; label "
                                     f"`{group['label']}`.")]),
        Field("Inputs", [Bullets(inputs)] if inputs else [Text("No input columns recorded.")]),
    ])


def _status_parts(main: pd.Series | None, statuses: list[fairness_q.RequirementStatus],
                  deployments: list[dict[str, Any]]) -> list[Part]:
    """The fairness requirement verdicts of the reported model and every deployment of the
    group, with any waiver of the deploy gate: who gave it, why and what it overrode."""
    parts: list[Part] = []
    if main is not None and statuses:
        parts.append(Text(f"Fairness requirements of model {main['id']} (split "
                          f"{main['split']!r}): {fairness_q.status_counts(statuses)}."))
        parts.append(Table(["Requirement", "Status", "Result"],
                           [[s.name, s.status, s.summary] for s in statuses]))
    for d in deployments:
        state = "live" if d["live"] else f"retired {display.day(d['retired_at'])}"
        parts.append(Text(f"Deployment {d['id']} ({state}): model {d['model_id']} at "
                          f"threshold {d['threshold']:g}, deployed by {d['deployed_by']} on "
                          f"{display.day(d['deployed_at'])}: {d['reason']}."))
        if d["waiver"]:
            w = d["waiver"]
            parts.append(Text(f"WAIVER of the deploy gate by {w['by']}: {w['reason']}. "
                              "Waived:"))
            parts.append(Bullets(list(w["failing"])))
    return parts


def _use(project: AnyProject, models: pd.DataFrame, chosen: int | None,
         status: list[Part]) -> Section:
    r = project.rationale
    appropriate = answer(r.intended_use, "rationale.intended_use")
    if r.target_population.strip():
        appropriate.append(Text("Target population: " + r.target_population))
    picked = models[models["selected"]]
    if len(picked):
        picked_status = Text(f"Chosen in this run: {picked.iloc[0]['selection_reason']}.")
    elif chosen is not None:
        picked_status = Text(f"Not chosen in this run; model group {chosen} was.")
    else:
        picked_status = Text("No model was chosen in this run.")
    return Section("Intended use", [
        Field("Aim", answer(r.aim, "rationale.aim")),
        Field("Who will use the output", answer(r.users_and_training,
                                                "rationale.users_and_training")),
        Field("Appropriate cases", appropriate),
        Field("Inappropriate cases", answer(r.inappropriate_use, "rationale.inappropriate_use")),
        Field("Status of this model group", [picked_status, *status]),
    ])


def _group_table(rows: pd.DataFrame) -> Table:
    """One row per group: size, status and each metric with its interval."""
    cells = {(r.attribute, r.group_value, r.metric): display.interval(r.value, r.lower, r.upper)
             for r in rows.itertuples()}
    out = [[r.attribute, r.group_value, display.number(int(r.n)), r.status,
            *[cells.get((r.attribute, r.group_value, m), "n/a") for m in GROUP_COLUMNS]]
           for r in rows.drop_duplicates(["attribute", "group_value"]).itertuples()]
    return Table(["Attribute", "Group", "Test rows", "Status", *GROUP_COLUMNS.values()], out)


def _results(project: AnyProject, models: pd.DataFrame, evals: pd.DataFrame, audits: pd.DataFrame,
             config: dict[str, Any], main: pd.Series | None) -> Section:
    f = project.fairness
    columns = key_metric_columns(config)
    overall = []
    for _, m in models.iterrows():
        ev = evals[evals["model_id"] == m["id"]].set_index(["metric", "parameter"])
        overall.append([m["split"], display.number(int(m["test_rows"]))] + [
            display.interval(*ev.loc[(metric, param), ["value", "lower", "upper"]])
            if (metric, param) in ev.index else "n/a" for metric, param, _ in columns])
    groups: list[Part] = []
    if f.attributes or f.intersections:
        refs = ", ".join(f"{k}: {v}" for k, v in f.reference_groups.items()) or "the largest group"
        groups.append(Text(
            f"Audited attributes: {', '.join(f.attributes) or 'none'}; intersections: "
            f"{', '.join(':'.join(i) for i in f.intersections) or 'none'}; reference groups: "
            f"{refs}. A group whose metric has fewer than {f.min_group_size} cases in its own "
            "denominator (flagged cases for precision, positives for recall) is described but "
            "never compared on it."))
    else:
        groups.append(NotProvided("fairness.attributes", "no attribute is audited"))
    groups += answer(project.governance.group_rationale, "governance.group_rationale")
    singles = intersections = pd.DataFrame()
    if len(audits):
        shown = audits[audits["metric"].isin(list(GROUP_COLUMNS))]
        crossed = shown["attribute"].str.contains(":", regex=False)
        singles, intersections = shown[~crossed], shown[crossed]
        sizes = audits[(audits["metric"] == "prevalence") & ~audits["attribute"].str.contains(
            ":", regex=False)]
        totals = sizes.groupby("attribute")["n"].transform("sum")
        groups.append(Table(["Attribute", "Group", "Test rows", "Share"], [
            [r["attribute"], r["group_value"], display.number(int(r["n"])), f"{r['n'] / tot:.1%}"]
            for (_, r), tot in zip(sizes.iterrows(), totals, strict=True)]))
    missing: list[Part] = []
    if len(audits):
        sizes = audits[audits["metric"] == "prevalence"]
        single = ~sizes["attribute"].str.contains(":", regex=False)
        small = sizes["status"].str.contains("insufficient")
        absent = sizes[single & (sizes["group_value"] == MISSING_GROUP)]
        missing.append(Text(
            f"Groups with too few test rows to compare (under {f.min_group_size}): " + (", ".join(
                f"{r['attribute']}={r['group_value']} ({int(r['n'])})"
                for _, r in sizes[single & small].iterrows()) or "none")
            + f"; and {int((~single & small).sum())} of {int((~single).sum())} intersection "
            "cells."))
        if len(absent):
            missing.append(Text("Rows with the attribute not recorded: " + ", ".join(
                f"{r['attribute']} ({int(r['n'])} rows)" for _, r in absent.iterrows()) + "."))
    missing += answer(project.governance.known_missing_groups, "governance.known_missing_groups")
    unitary = ([Text(f"Test rows of split {main['split']!r}, decisions at "
                     f"{audits['selection'].iloc[0]}; brackets: 95% Wilson interval."),
                _group_table(singles)] if main is not None and len(singles)
               else [NotProvided("fairness.attributes", "no group results in the store")])
    crossed_parts = ([_group_table(intersections)] if len(intersections)
                     else [NotProvided("fairness.intersections", "no intersection audited")])
    return Section("Results", [
        Field("Overall results per split, with 95% bootstrap intervals", [Table(
            ["Split", "Test rows", *[h for _, _, h in columns]], overall)]),
        Field("Which groups are in the data, why these, and how they are defined", groups),
        Field("Known groups missing from the data, and why", missing),
        Field("Unitary results (per group), with uncertainty", unitary),
        Field("Intersectional results (groups combined), with uncertainty", crossed_parts),
    ], figures=audit_figures(audits, int(main["id"]), f.min_group_size)
        if main is not None and len(audits) else [])


def _errors(project: AnyProject, audits: pd.DataFrame, reqs: pd.DataFrame, group: dict[str, Any],
            related: pd.DataFrame, main: pd.Series | None,
            held_out: list[dict[str, Any]] | None = None, margin: str = "") -> Section:
    f = project.fairness
    varying: list[Part]
    if len(audits):
        # the audit's own verdicts: unfair only where the corrected test supports it; the
        # descriptive metrics (the label base rate) are never flagged
        judged = audits[audits["metric"].isin(list(AUDIT_METRICS))
                        & ~audits["metric"].isin(list(DESCRIPTIVE_METRICS))]
        flagged = judged[judged["status"] == STATUS_UNFAIR]
        flagged = flagged.reindex(flagged["difference_pp"].abs().sort_values(
            ascending=False).index).head(TOP_DISPARITIES)
        inconclusive = int((judged["status"] == STATUS_INCONCLUSIVE).sum())
        varying = [Table(["Attribute", "Group", "Metric", "Value", "Reference", "Ratio",
                          "Difference (points)", "Corrected p"], [
            [r["attribute"], r["group_value"], AUDIT_METRICS[r["metric"]],
             display.number(r["value"]), r["reference_group"],
             display.number(r["disparity_ratio"], 2), display.number(r["difference_pp"], 1),
             display.p_value(r.get("p_adjusted"))]
            for _, r in flagged.iterrows()])] if len(flagged) else [Text(
                "No compared group is unfair: none is outside the 0.8-1.25 ratio band with a "
                "corrected p < 0.05.")]
        varying.insert(0, Text(f"Groups whose precision, recall, false positive rate or "
                               f"selection rate is unfair against their reference group (ratio "
                               f"outside 0.8-1.25, tested against the band, p < 0.05 after "
                               f"correction over the groups of an attribute), largest first, "
                               f"at most {TOP_DISPARITIES}:"))
        if inconclusive:
            varying.append(Text(f"{inconclusive} more group-metric cells are outside the band "
                                "without statistical support (inconclusive: too few cases to "
                                "tell)."))
    else:
        varying = [NotProvided("fairness.attributes", "no group results in the store")]
    audited = set(f.attributes) | {c for i in f.intersections for c in i}
    protected = project.features.protected if isinstance(project, Project) else []
    unaudited = [c for c in protected if c not in audited]
    coverage: list[Part] = [Text(
        "Not every protected attribute is audited: " + ", ".join(unaudited) + "."
        if unaudited else "Yes: every protected attribute listed in `features.protected` is "
        "audited.")]
    if unaudited or project.governance.audit_scope.strip():
        coverage += answer(project.governance.audit_scope, "governance.audit_scope")
    requirements: list[Part] = ([Table(["Requirement", "Status", "Result"], [
        [r["name"], fairness_q.requirement_status(r), r["summary"]]
        for _, r in reqs.iterrows()])]
        if len(reqs) else [NotProvided("fairness.requirements", "no requirement is set")])
    mitigation: list[Part] = []
    if group["algorithm"].startswith("mitigated_"):
        settings = display.settings(group["hyperparameters"])
        mitigation.append(Text(f"This model group is itself the mitigation: {settings}."))
        if held_out:
            mitigation.append(Text(
                f"Judged where it is used: each requirement on the rows the thresholds were "
                f"fitted on ({held_out[0]['fitted_on']}) and on held-out test rows, largest gap "
                "with its 95% interval."))
            mitigation.append(Table(
                ["Requirement", "Bound", "Fitting rows", "Held-out rows"],
                [[m["name"], m["bound"], f"{m['fitting_status']}: {m['fitting_gap']}",
                  f"{m['held_out_status']}: {m['held_out_gap']}"] for m in held_out]))
            if margin:
                mitigation.append(Text(margin))
    for _, r in related.iterrows():
        mitigation.append(Text(f"Model group {r['model_group_id']} ({r['algorithm']}) applies "
                               "per-group thresholds to this group's scores; see its model "
                               "card for its results."))
    if not mitigation:
        mitigation = ([Text("fairness.mitigation is set but was applied to the chosen model "
                            "only, not to this group.")] if f.mitigation
                      else [NotProvided("fairness.mitigation", "no mitigation configured")])
    return Section("Error analysis", [
        Field("Groups for which model performance may vary", varying),
        Field("Have differences been reported for all relevant attributes? If not, why",
              coverage),
        Field("Fairness requirements", requirements),
        Field("What has been done to mitigate bias", mitigation),
    ], figures=disparity_figures(audits, int(main["id"])) if main is not None and len(audits)
        else [])


def _temporal_measures(project: TemporalProject) -> tuple[Text, Text, Text]:
    """(measures, thresholds, uncertainty) of a temporal project: lists judged over time."""
    x = project.temporal
    rules = ", ".join(r.label for r in selection_rules(x))
    return (Text(
        f"Precision in the top {x.top_k} of each test as-of date's list (the officers a "
        f"supervisor would review), for every split: trained on earlier as-of dates, tested on "
        f"the next. The model group is chosen by the selection rule with the lowest regret "
        f"over the splits (rules: {rules}); the run report also gives ROC AUC, precision in the "
        f"top {', '.join(f'{p:g}%' for p in x.top_pct)}, list stability between seeds and "
        "consecutive lists, and single-feature baselines."), Text(
        f"No score threshold: the decision is a list of {x.top_k} officers per as-of date; "
        f"officers reviewed within {x.cool_off_days} days are left off it."), Text(
        f"Percentile bootstrap over the officers of each test as-of date, {x.bootstrap} "
        f"resamples, {x.confidence:.0%} intervals (seed {x.seed}); variability over time is "
        "the spread of the per-split values below; tied scores at a list cut-off count "
        "fractionally."))


def _metrics(project: AnyProject, config: dict[str, Any], history: pd.DataFrame) -> Section:
    f, r = project.fairness, project.rationale
    metric, parameter = selection_metric(config)
    name = f"{metric}@{parameter}" if parameter else metric
    runs = [[str(h["run_id"]), display.day(h["started_at"]), h["split"],
             display.interval(h["value"], h["lower"], h["upper"])] for _, h in history.iterrows()]
    costs: list[Part] = [Text(f"{label}: {text}") for label, text in (
        ("Cost of a false positive", r.cost_of_false_positive),
        ("Cost of a false negative", r.cost_of_false_negative)) if text.strip()]
    if isinstance(project, TemporalProject):
        measures_text, thresholds_text, uncertainty_text = _temporal_measures(project)
        return Section("Metrics", [
            Field("Performance measures, and why they were chosen", [
                measures_text, *answer(project.governance.metric_rationale,
                                       "governance.metric_rationale"), *costs]),
            Field("Decision thresholds, and why", [thresholds_text, *answer(
                project.governance.threshold_rationale, "governance.threshold_rationale")]),
            Field("How uncertainty and variability were calculated", [uncertainty_text]),
            Field(f"{name} of this model group in every run so far", [
                Table(["Run", "Date", "Split", name], runs)]),
        ])
    ev = project.evaluation
    measures: list[Part] = [Text(
        f"Models are compared on {name} over the test rows of split "
        f"{project.selection_split!r} ({'lower' if metric == 'brier' else 'higher'} is better). "
        "Also reported: ROC AUC, average precision, precision and recall in the top "
        f"{', '.join(f'{p:g}%' for p in ev.top_pct)} and top "
        f"{', '.join(str(k) for k in ev.top_k)}, precision/recall/F1 at the thresholds, Brier "
        "score, and per-group rates.")]
    measures += answer(project.governance.metric_rationale, "governance.metric_rationale")
    measures += costs
    thresholds: list[Part] = [Text(
        f"Evaluated at score thresholds {', '.join(f'{x:g}' for x in ev.thresholds)}, top-k "
        f"lists of {', '.join(str(k) for k in ev.top_k)} and top "
        f"{', '.join(f'{p:g}%' for p in ev.top_pct)}; fairness decisions are audited at "
        f"{f.at.label()}.")]
    thresholds += answer(project.governance.threshold_rationale,
                         "governance.threshold_rationale")
    uncertainty = Text(
        f"Overall metrics: percentile bootstrap over the test rows, {ev.bootstrap} resamples, "
        f"{ev.confidence:.0%} intervals (seed {ev.seed}); tied scores at a list cut-off count "
        "fractionally. Group metrics: 95% Wilson intervals on each metric's own denominator; "
        "each group is compared with its reference by a two-proportion z-test, and judged "
        "unfair only when its ratio is outside 0.8-1.25 with a p < 0.05 against that band "
        f"after {CORRECTION_NAMES[f.correction]} correction (else inconclusive); a metric "
        f"with a denominator under {f.min_group_size} is described, never compared.")
    return Section("Metrics", [
        Field("Performance measures, and why they were chosen", measures),
        Field("Decision thresholds, and why", thresholds),
        Field("How uncertainty and variability were calculated", [uncertainty]),
        Field(f"{name} of this model group in every run so far", [
            Table(["Run", "Date", "Split", name], runs)]),
    ])


def _risks(project: AnyProject) -> Section:
    r, risks = project.rationale, project.governance.risks
    present: list[Part] = []
    if r.undesired_outcomes:
        present.append(Bullets(list(r.undesired_outcomes)))
    for label, text in (("Harm of a false positive", r.cost_of_false_positive),
                        ("Harm of a false negative", r.cost_of_false_negative)):
        if text.strip():
            present.append(Text(f"{label}: {text}"))
    if not present:
        present = [NotProvided("rationale.undesired_outcomes")]
    mitigations: list[Part] = ([Table(["Risk", "Mitigation"], [[k, v] for k, v in risks.items()])]
                               if risks else [NotProvided("governance.risks")])
    safeguards = []
    if project.fairness.requirements:
        safeguards.append(f"{len(project.fairness.requirements)} fairness requirement(s) checked "
                          "on every model")
    if (project.evaluation.selection.require_fairness if isinstance(project, Project)
            else project.temporal.selection.require_fairness):
        safeguards.append("the chosen model group is the best among those meeting every "
                          "fairness requirement on the rows selection reads (never the test "
                          "rows); when none does, the plain best is chosen and the run says so")
    if project.fairness.mitigation:
        safeguards.append("per-group threshold mitigation on the chosen model")
    if safeguards:
        mitigations.append(Text("Built into development: " + "; ".join(safeguards) + "."))
    return Section("Risks", [
        Field("Risks in using the model (who is affected, how likely, how severe)", present),
        Field("Risk mitigation strategies used during development", mitigations),
    ])


def _maintenance(project: AnyProject) -> Section:
    g, m = project.governance, project.monitoring
    triggers = answer(g.update_triggers, "governance.update_triggers")
    triggers.append(Bullets([
        f"input drift: population stability index above {m.psi_warning:g} (warning) or "
        f"{m.psi_critical:g} (critical) over {m.window_days} days",
        f"realised precision more than {m.precision_drop_pp:g} points below the test "
        f"precision, once {m.min_outcomes} outcomes are known",
        f"list stability: the top {m.stability.k} of consecutive {m.stability.period}ly lists",
        f"retraining: a challenger replaces the champion only if its {m.retraining.metric} is "
        f"at most {m.retraining.max_drop:g} lower on the newest {m.retraining.holdout_days} "
        "days of outcomes and every fairness requirement passes",
    ]))
    owner = answer(g.maintenance_owner, "governance.maintenance_owner")
    owner += answer(g.communication, "governance.communication")
    return Section("Maintenance", [
        Field("Known or expected changes in the population or in data collection",
              answer(g.expected_changes, "governance.expected_changes")),
        Field("What triggers an update, and at which thresholds (monitoring settings)",
              triggers),
        Field("Who updates the model, and how changes are communicated", owner),
    ])


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
    details = _details(proj, group, run, models, snapshots)
    importance = importance_figure(imps, int(main["id"])) if len(imps) else None
    details.figures = [importance] if importance is not None else []
    sections = [
        details,
        _use(proj, models, chosen, _status_parts(
            main, fairness_q.model_requirement_statuses(engine, int(main["id"])),
            [d for d in production_q.deployments(engine)
             if d["model_group_id"] == model_group_id])),
        _results(proj, models, evals, audits, config, main),
        _errors(proj, audits, reqs, group, related, main,
                mitigation_rows(engine, int(main["id"]), evals)
                if main is not None and group["algorithm"].startswith("mitigated_") else None,
                margin_note(evals, int(main["id"])) if main is not None else ""),
        _metrics(proj, config, history),
        _risks(proj),
        _maintenance(proj),
    ]
    return Card(f"Model card: model group {model_group_id} ({group['algorithm']})",
                f"Project {run['project']} · run {run_id} · {display.day(run['started_at'])} · "
                f"label {group['label']}", run["data_origin"] == "synthetic", sections,
                f"model-card-group-{model_group_id}")
