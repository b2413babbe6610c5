"""The model card's "Metrics": how the model is measured and chosen, at which thresholds, how
uncertainty is calculated (for a per-row project and for a temporal one, whose decisions are
lists), and its selection metric in every run so far."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rudikit.config import TemporalProject
from rudikit.evaluation import display
from rudikit.fairness.significance import CORRECTION_NAMES
from rudikit.models.temporal import selection_rules
from rudikit.reports.cards import (
    AnyProject,
    Field,
    Part,
    Section,
    Table,
    Text,
    answer,
)
from rudikit.reports.run_tables import selection_metric


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


def metrics_section(project: AnyProject, config: dict[str, Any], history: pd.DataFrame) -> Section:
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
