"""Choosing the model group of a run: two selection rules of one module.

* :func:`select_best` (case projects): the best model on the selection split by one metric,
  read on the validation rows when the split has them, optionally among those that meet every
  fairness requirement;
* :func:`select_by_audition` (temporal projects): triage's audition over the splits; the rule
  with the lowest mean regret picks the group (:mod:`rudikit.models.audition`).

Both return (the chosen model, a reason a governance board can read).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rudikit.evaluation.metrics import MetricValue
from rudikit.models.audition import AuditionResult, Rule, audition
from rudikit.project import Project
from rudikit.run.engine import ModelSummary


def metric_value(metrics: dict[tuple[str, str], MetricValue], metric: str) -> MetricValue | None:
    """``metric`` is a name (``roc_auc``) or name@parameter (``precision_at_k@10_pct``)."""
    return next((v for (name, param), v in metrics.items()
                 if name == metric or f"{name}@{param}" == metric), None)


def with_interval(value: MetricValue) -> str:
    interval = (f" (95% CI {value.lower:.3f} to {value.upper:.3f})"
                if value.lower is not None else "")
    return f"{value.value:.3f}{interval}"


def select_best(project: Project, models: list[ModelSummary]) -> tuple[ModelSummary | None, str]:
    """The best model on the selection split by the selection metric (higher is better, except
    the Brier score), with a reason a governance board can read. With a validation partition
    the choice (and the fairness gate) reads only the validation rows, so the test rows stay
    untouched for the final figures."""
    metric = project.evaluation.selection.metric
    split = project.selection_split
    lower_is_better = metric == "brier"
    gated = project.evaluation.selection.require_fairness and any(
        m.fairness_passed is not None for m in models)
    candidates = []
    for m in models:
        on_validation = m.validation_metrics is not None
        passed = m.validation_fairness_passed if on_validation else m.fairness_passed
        if m.split != split or not m.selectable or (gated and not passed):
            continue
        value = metric_value(m.validation_metrics if on_validation else m.metrics, metric)
        if value is not None and not np.isnan(value.value):
            candidates.append((value, m))
    if not candidates:
        if gated:
            return None, (f"no model on split {split!r} meets every fairness requirement "
                          "(evaluation.selection.require_fairness is true)")
        return None, f"no model has {metric} on split {split!r}"
    candidates.sort(key=lambda c: c[0].value, reverse=not lower_is_better)
    best_value, best = candidates[0]
    rows = "validation" if best.validation_metrics is not None else "test"
    reason = (f"{'lowest' if lower_is_better else 'highest'} {metric} on the {rows} rows of "
              f"split {split!r}: {with_interval(best_value)}, among {len(candidates)} models"
              + (" that meet every fairness requirement" if gated else ""))
    if len(candidates) > 1:
        runner_value, runner = candidates[1]
        reason += (f"; runner-up {runner.algorithm} (model group {runner.model_group_id}) "
                   f"{runner_value.value:.3f}")
        if best_value.lower is not None and best_value.lower <= runner_value.value:
            reason += " - within the interval, so the two are not clearly different"
    final = metric_value(best.metrics, metric)
    if rows == "validation" and final is not None:
        reason += f"; on the held-out test rows (the final figure) {with_interval(final)}"
    return best, reason


def select_by_audition(split_values: pd.DataFrame, rules: Sequence[Rule],
                       names: dict[int, str], top_k: int) -> tuple[AuditionResult, int, str]:
    """(audition, chosen model group, reason): the rule with the lowest mean regret over the
    splits picks the group; baselines compete too (a rule may rightly pick one).
    ``split_values``: one value per (model group, split time), as
    :func:`rudikit.models.audition.audition` reads them."""
    aud = audition(split_values, list(rules), time_col="split_time")
    best = aud.summary.iloc[0]
    chosen = int(best["final_choice"])
    reason = (f"audition rule {best['rule']} (lowest mean regret {best['mean_regret']:.3f} over "
              f"{best['periods_scored']} later periods) picks {names[chosen]}: mean precision "
              f"in the top {top_k} {best['final_choice_mean']:.3f} over {len(aud.table)} test "
              "periods")
    return aud, chosen, reason
