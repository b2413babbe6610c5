"""The model card's "Results" and "Error analysis": what the store's evaluations and fairness
audit say about the model, overall per split and per group (with intervals), the groups judged
unfair, the fairness requirements and the mitigation."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rudikit.config import Project
from rudikit.evaluation import display
from rudikit.fairness.disparities import (
    DESCRIPTIVE_METRICS,
    STATUS_INCONCLUSIVE,
    STATUS_UNFAIR,
)
from rudikit.fairness.groups import MISSING_GROUP
from rudikit.reports.cards import (
    AnyProject,
    Field,
    NotProvided,
    Part,
    Section,
    Table,
    Text,
    answer,
)
from rudikit.reports.group_figures import AUDIT_METRICS, audit_figures, disparity_figures
from rudikit.reports.run_tables import key_metric_columns
from rudikit.store.queries import fairness as fairness_q

#: Group metrics shown in the unitary and intersectional tables (with their intervals).
GROUP_COLUMNS = {**AUDIT_METRICS, "roc_auc": "ROC AUC"}
TOP_DISPARITIES = 15


def _group_table(rows: pd.DataFrame) -> Table:
    """One row per group: size, status and each metric with its interval."""
    cells = {(r.attribute, r.group_value, r.metric): display.interval(r.value, r.lower, r.upper)
             for r in rows.itertuples()}
    out = [[r.attribute, r.group_value, display.number(int(r.n)), r.status,
            *[cells.get((r.attribute, r.group_value, m), "n/a") for m in GROUP_COLUMNS]]
           for r in rows.drop_duplicates(["attribute", "group_value"]).itertuples()]
    return Table(["Attribute", "Group", "Test rows", "Status", *GROUP_COLUMNS.values()], out)


def results_section(project: AnyProject, models: pd.DataFrame, evals: pd.DataFrame,
                    audits: pd.DataFrame, config: dict[str, Any], main: pd.Series | None
                    ) -> Section:
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


def errors_section(project: AnyProject, audits: pd.DataFrame, reqs: pd.DataFrame,
                   group: dict[str, Any], related: pd.DataFrame, main: pd.Series | None,
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
