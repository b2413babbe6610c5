"""Choosing the model group of a run: two selection rules of one module.

* :func:`select_best` (case projects): the best model on the selection split by one metric,
  read on the validation rows when the split has them, optionally among those that meet every
  fairness requirement there;
* :func:`select_by_audition` (temporal projects): triage's audition over the splits; the rule
  with the lowest mean regret picks the group (:mod:`rudikit.models.audition`), optionally
  among the groups :func:`fairness_gate` lets through.

The trade-off the report draws between the selection metric and the number of requirements
met is :mod:`rudikit.fairness.tradeoff`'s.

Both return (the chosen model, a reason a governance board can read).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rudikit.config import Project
from rudikit.evaluation.metrics import MetricValue, lower_is_better
from rudikit.fairness.tradeoff import NO_GROUP_MEETS
from rudikit.models.audition import AuditionResult, Rule, audition
from rudikit.run.engine import ModelSummary
from rudikit.store.queries.fairness import MET, combined_status


def metric_value(metrics: dict[tuple[str, str], MetricValue], metric: str) -> MetricValue | None:
    """``metric`` is a name (``roc_auc``) or name@parameter (``precision_at_k@10_pct``)."""
    return next((v for (name, param), v in metrics.items()
                 if name == metric or f"{name}@{param}" == metric), None)


def with_interval(value: MetricValue) -> str:
    interval = (f" (95% CI {value.lower:.3f} to {value.upper:.3f})"
                if value.lower is not None else "")
    return f"{value.value:.3f}{interval}"


def requirements_met(statuses: dict[str, str] | None) -> int:
    return sum(s == MET for s in (statuses or {}).values())


def tie_key(value: float, met: int, model_group_id: int, lower_is_better: bool
             ) -> tuple[float, int, int]:
    """The order of candidates: the selection metric (rounded to 12 decimals, so values equal
    but for floating-point noise tie), then more requirements met on the same rows, then the
    lower model group id (the group stored first): never the order of the models in memory."""
    return (round(value if lower_is_better else -value, 12), -met, model_group_id)


def ranked_on_selection_split(models: Sequence[ModelSummary], split: str, metric: str
                              ) -> list[tuple[MetricValue, int, ModelSummary]]:
    """(value, requirements met, model) of every selectable model of ``split`` with a value
    of ``metric`` (on its validation rows when it has them, else its test rows), best first
    by :func:`tie_key`: the one order of :func:`select_best` and of an ensemble's members."""
    ranked: list[tuple[MetricValue, int, ModelSummary]] = []
    for m in models:
        if m.split != split or not m.selectable:
            continue
        on_validation = m.validation_metrics is not None
        value = metric_value(m.validation_metrics if on_validation else m.metrics, metric)
        if value is not None and not np.isnan(value.value):
            met = requirements_met(m.validation_statuses if on_validation
                                   else m.requirement_statuses)
            ranked.append((value, met, m))
    ranked.sort(key=lambda c: tie_key(c[0].value, c[1], c[2].model_group_id,
                                      lower_is_better(metric)))
    return ranked


def select_best(project: Project, models: list[ModelSummary]) -> tuple[ModelSummary | None, str]:
    """The best model on the selection split by the selection metric (higher is better, except
    the Brier score), with a reason a governance board can read. With a validation partition
    the choice reads only the validation rows, so the test rows stay untouched for the final
    figures. With ``evaluation.selection.require_fairness`` only the models that meet every
    fairness requirement on the validation rows compete (the project file guarantees the split
    has them); when none does, the reason starts with :data:`NO_GROUP_MEETS` and the plain best
    is chosen. Ties: :func:`tie_key`."""
    metric = project.evaluation.selection.metric
    split = project.selection_split
    lower_better = lower_is_better(metric)
    gated = project.evaluation.selection.require_fairness
    ranked = ranked_on_selection_split(models, split, metric)
    if not ranked:
        return None, f"no model has {metric} on split {split!r}"
    rows = "validation" if ranked[0][2].validation_metrics is not None else "test"
    candidates, prefix, among = ranked, "", ""
    if gated:
        passing = [c for c in ranked if c[2].validation_fairness_passed]
        if passing:
            candidates = passing
            among = (f" that meet every fairness requirement on the validation rows (of "
                     f"{len(ranked)})")
        else:
            total = len(ranked[0][2].validation_statuses or {})
            most = max(c[1] for c in ranked)
            prefix = (f"{NO_GROUP_MEETS} on the validation rows of split {split!r} (the most "
                      f"any meets is {most} of {total}; evaluation.selection.require_fairness "
                      "is true), so the plain best is chosen: ")
    best_value, best_met, best = candidates[0]
    reason = (f"{prefix}{'lowest' if lower_better else 'highest'} {metric} on the {rows} "
              f"rows of split {split!r}: {with_interval(best_value)}, among "
              f"{len(candidates)} models{among}")
    if len(candidates) > 1:
        runner_value, runner_met, runner = candidates[1]
        reason += (f"; runner-up {runner.algorithm} (model group {runner.model_group_id}) "
                   f"{runner_value.value:.3f}")
        if round(best_value.value, 12) == round(runner_value.value, 12):
            reason += (f" - tied on {metric}, so the group meeting more requirements "
                       f"({best_met} vs {runner_met}), then the lower model group id, is chosen")
        elif best_value.lower is not None and best_value.lower <= runner_value.value:
            reason += " - within the interval, so the two are not clearly different"
    final = metric_value(best.metrics, metric)
    if rows == "validation" and final is not None:
        reason += f"; on the held-out test rows (the final figure) {with_interval(final)}"
    return best, reason


def audition_statuses(models: Sequence[ModelSummary], last_split: str
                      ) -> dict[int, dict[str, str]]:
    """Model group -> each requirement's verdict over the lists of the audition splits (every
    split but ``last_split``, whose test dates give the final figures and are never read),
    combined by the store's one rule."""
    found: dict[int, dict[str, list[str]]] = {}
    for m in models:
        if m.split == last_split:
            continue
        per_group = found.setdefault(m.model_group_id, {})
        for name, status in m.requirement_statuses.items():
            per_group.setdefault(name, []).append(status)
    return {group: {name: combined_status(s) for name, s in statuses.items()}
            for group, statuses in found.items()}


def fairness_gate(models: Sequence[ModelSummary], last_split: str
                  ) -> tuple[set[int], str]:
    """(the model groups that meet every requirement on the audition splits' lists, what a
    reason says about it) for a temporal project's ``selection.require_fairness``. An empty
    set means no group does: the words then start with :data:`NO_GROUP_MEETS`."""
    statuses = audition_statuses(models, last_split)
    passing = {g for g, s in statuses.items() if s and all(v == MET for v in s.values())}
    if passing:
        return passing, (f"among the {len(passing)} of {len(statuses)} model groups that meet "
                         "every fairness requirement on the lists of the audition splits "
                         f"(before {last_split})")
    most = max((requirements_met(s) for s in statuses.values()), default=0)
    total = max((len(s) for s in statuses.values()), default=0)
    return passing, (f"{NO_GROUP_MEETS} on the lists of the audition splits (before "
                     f"{last_split}; the most any meets is {most} of {total}; "
                     "temporal.selection.require_fairness is true), so the plain audition "
                     "decides")


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
