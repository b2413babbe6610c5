"""Stand-alone fairness audit of a scored data set: groups, disparities, summary, reports.

:func:`audit` is the one call behind ``rudi audit``: it turns a score (or 0/1 prediction) column
into predictions, computes every group metric for the protected attributes and their
intersections (:mod:`~rudikit.fairness.group_metrics`), compares each group with a reference
group (:mod:`~rudikit.fairness.disparities`) and adds OxonFair-style summary measures
(:mod:`~rudikit.fairness.summary`). The :class:`AuditResult` writes CSV, JSON and a
self-contained HTML page, and renders rich tables in a terminal
(:mod:`~rudikit.fairness.audit_report`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from rich.console import Console

from rudikit.fairness import audit_report
from rudikit.fairness.counts import RATE_METRICS
from rudikit.fairness.disparities import (
    IntervalMethod,
    Reference,
    disparities,
    disparity_wide,
)
from rudikit.fairness.group_metrics import group_table
from rudikit.fairness.groups import MISSING_GROUP, attribute_name
from rudikit.fairness.inputs import available_columns, validate_fairness_inputs
from rudikit.fairness.selection import TieBreak, TiedAtCutWarning, binarize, top_k_size
from rudikit.fairness.significance import Correction
from rudikit.fairness.summary import summary_measures
from rudikit.store.results import plain


@dataclass
class AuditResult:
    """Everything an audit found.

    ``groups``: wide table, one row per (attribute, group), counts and all metrics.
    ``disparities``: tidy long table, one row per (attribute, group, metric) with value, Wilson
    (or bootstrap) interval, reference group, ratio, difference in points, z-test p-value, the
    corrected p-value behind the verdict, the fairness flag and a status (ok, unfair,
    inconclusive, insufficient data, ...; see :mod:`rudikit.fairness.disparities`); ready for a
    SQL table.
    ``summary``: one row per (attribute, summary measure). ``settings``: the audit's parameters.
    """

    groups: pd.DataFrame
    disparities: pd.DataFrame
    summary: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    def to_long(self) -> pd.DataFrame:
        """The tidy per-(attribute, group, metric) table (a copy)."""
        return self.disparities.copy()

    def to_wide(self) -> pd.DataFrame:
        """Aequitas-style wide table with ``{metric}`` and ``{metric}_disparity`` columns."""
        return disparity_wide(self.disparities)

    def to_csv(self, path: str | Path) -> Path:
        """Write the tidy long table as CSV."""
        path = Path(path)
        self.disparities.to_csv(path, index=False)
        return path

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and NA become null)."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(frame.to_json(orient="records"))

        return {
            "settings": plain(self.settings),
            "summary": records(self.summary),
            "groups": records(self.groups),
            "disparities": records(self.disparities),
        }

    def to_json(self, path: str | Path) -> Path:
        """Write settings, summary, group table and disparities as one JSON document."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    def figure(self, metrics: Sequence[str] = audit_report.KEY_METRICS) -> Any:
        """Plotly bar chart of disparity ratios (log scale), one view per attribute."""
        return audit_report.figure(self, metrics)

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML report (plotly.js inlined: works offline)."""
        path = Path(path)
        path.write_text(audit_report.html(self), encoding="utf-8")
        return path

    def render(self, console: Console | None = None, *, max_rows: int = 40) -> None:
        """Print the summary and one table per attribute (at most ``max_rows`` groups each)."""
        audit_report.render(self, console or Console(), max_rows=max_rows)


def _attribute_specs(
    frame: pd.DataFrame, attributes: Sequence[str], intersections: Sequence[Sequence[str]] | None
) -> list[str | list[str]]:
    if isinstance(attributes, str):
        attributes = [attributes]
    specs: list[str | list[str]] = []
    for a in attributes:
        if not isinstance(a, str):
            raise ValueError(f"attributes must be column names, got {a!r}; use intersections "
                             "for crossed attributes")
        specs.append(a)
    for combo in intersections or []:
        if isinstance(combo, str):
            raise ValueError(f"each intersection must be a list of column names, got {combo!r}")
        cols = list(combo)
        if len(cols) < 2:
            raise ValueError(f"an intersection needs at least two columns, got {cols}")
        specs.append(cols)
    if not specs:
        raise ValueError("attributes is empty; name at least one protected attribute column")
    for spec in specs:
        for col in [spec] if isinstance(spec, str) else spec:
            if col not in frame.columns:
                raise ValueError(
                    f"unknown attribute column {col!r}; available columns: "
                    f"{available_columns(frame.columns)}"
                )
    names = [attribute_name(s) for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"attribute(s) {dupes} listed more than once")
    return specs


def audit(
    frame: pd.DataFrame,
    label: str,
    score: str,
    attributes: Sequence[str],
    *,
    intersections: Sequence[Sequence[str]] | None = None,
    threshold: float | None = None,
    top_k: int | None = None,
    top_pct: float | None = None,
    tie_break: TieBreak = "expected",
    random_state: int | None = 0,
    reference: Reference = "majority",
    min_group_size: int = 50,
    metrics: Sequence[str] = RATE_METRICS,
    fairness_bounds: tuple[float, float] | None = (0.8, 1.25),
    confidence: float = 0.95,
    alpha: float = 0.05,
    correction: Correction = "holm",
    interval: IntervalMethod = "wilson",
    n_bootstrap: int = 1000,
    roc_auc: bool = True,
    summary_aggregate: Literal["max", "mean"] = "max",
    missing_label: str = MISSING_GROUP,
) -> AuditResult:
    """Audit ``score`` against ``label`` for every protected attribute and intersection.

    Predictions: ``score >= threshold``, the ``top_k`` highest scores, or the top ``top_pct``
    percent (ties at the k-th score: see :func:`rudikit.fairness.selection.binarize`; by
    default each tied row counts by its expected share, and ``settings["tie_warning"]`` says how
    many tied rows straddle the cut). With
    none of the three, ``score`` must already be a 0/1 prediction. ``intersections`` are lists
    of columns to cross, e.g. ``[["station", "race", "sex"]]``, named ``"station:race:sex"``; names
    can be used as keys of a ``reference`` mapping (``{"race:sex": "Caucasian:Male"}``).

    ``reference``, ``min_group_size`` (of each metric's own denominator), ``fairness_bounds``,
    ``confidence``, ``alpha``, ``correction``, ``interval`` and ``n_bootstrap`` are passed to
    :func:`rudikit.fairness.disparities.disparities`; ``summary_aggregate`` to
    :func:`rudikit.fairness.summary.summary_measures`.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    for what, col in (("label", label), ("score", score)):
        if col not in frame.columns:
            raise ValueError(f"{what}: unknown column {col!r}; available columns: "
                             f"{available_columns(frame.columns)}")
    if len(frame) == 0:
        raise ValueError("frame has no rows")
    specs = _attribute_specs(frame, attributes, intersections)
    label_name, score_name = f"label column {label!r}", f"score column {score!r}"
    y = validate_fairness_inputs(frame[label], names={"y_true": label_name}).y_true
    assert y is not None
    selection = {"threshold": threshold, "top_k": top_k, "top_pct": top_pct}
    chosen = [k for k, v in selection.items() if v is not None]
    if len(chosen) > 1:
        raise ValueError(f"give at most one of threshold, top_k and top_pct, got {chosen}")
    tie_warning: str | None = None
    if chosen:
        scores = validate_fairness_inputs(y_score=frame[score],
                                          names={"y_score": score_name}).y_score
        assert scores is not None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TiedAtCutWarning)
            pred = binarize(scores, threshold=threshold, top_k=top_k, top_pct=top_pct,
                            tie_break=tie_break, random_state=random_state)
        for w in caught:  # keep the message for reports, and still warn the caller
            tie_warning = str(w.message)
            warnings.warn(tie_warning, w.category, stacklevel=2)
        mode = chosen[0]
    else:
        try:
            pred = validate_fairness_inputs(y_pred=frame[score],
                                            names={"y_pred": score_name}).y_pred
        except ValueError as err:
            raise ValueError(f"{err}; to audit a continuous score give threshold, top_k or "
                             "top_pct") from None
        scores = None
        mode = "predictions"
    assert pred is not None
    groups = group_table(y, pred, scores, frame, specs, roc_auc=roc_auc,
                         missing_label=missing_label)
    if isinstance(reference, Mapping):
        reference = {str(k): str(v) for k, v in reference.items()}
    long = disparities(
        groups,
        reference=reference,
        metrics=[m for m in metrics if roc_auc or m != "roc_auc"],
        min_group_size=min_group_size,
        fairness_bounds=fairness_bounds,
        confidence=confidence,
        alpha=alpha,
        correction=correction,
        interval=interval,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
    )
    summary = summary_measures(groups, min_group_size=min_group_size, aggregate=summary_aggregate)
    settings: dict[str, Any] = {
        "label": label,
        "score": score,
        "rows": len(frame),
        "predicted_positive": float(pred.sum()),
        "selection": mode,
        "threshold": threshold,
        "top_k": top_k,
        "top_pct": top_pct,
        "list_size": top_k_size(len(frame), top_k=top_k, top_pct=top_pct)
        if mode in ("top_k", "top_pct") else None,
        "tie_break": tie_break if mode in ("top_k", "top_pct") else None,
        "tie_warning": tie_warning,
        "attributes": [attribute_name(s) for s in specs],
        "reference": dict(reference) if isinstance(reference, Mapping) else reference,
        "min_group_size": min_group_size,
        "fairness_bounds": list(fairness_bounds) if fairness_bounds else None,
        "confidence": confidence,
        "alpha": alpha,
        "correction": correction,
        "interval": interval,
        "summary_aggregate": summary_aggregate,
    }
    return AuditResult(groups=groups, disparities=long, summary=summary, settings=settings)


