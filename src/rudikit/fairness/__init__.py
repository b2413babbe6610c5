"""Fairness of policing risk models: audit (group metrics, disparities, summaries, requirements,
list simulation) and mitigation.

The audit modules are plain functions over numpy arrays and pandas frames, one concept each:
:mod:`~rudikit.fairness.group_metrics`, :mod:`~rudikit.fairness.disparities`,
:mod:`~rudikit.fairness.summary`, :mod:`~rudikit.fairness.requirements`,
:mod:`~rudikit.fairness.list_simulation`, and :mod:`~rudikit.fairness.audit` which ties them
together: ``from rudikit.fairness.audit import audit`` (not imported here, as it pulls in the
report and CLI dependencies).
"""

from __future__ import annotations

from rudikit.fairness.auc import roc_auc_by_group
from rudikit.fairness.disparities import (
    disparities,
    disparity_wide,
    two_proportion_ztest,
    wilson_interval,
)
from rudikit.fairness.group_metrics import group_metrics
from rudikit.fairness.list_simulation import ListSimulation, simulate_lists
from rudikit.fairness.requirements import Requirement, RequirementResult, evaluate_requirements
from rudikit.fairness.selection import binarize
from rudikit.fairness.summary import generalized_entropy_index, summary_measures

__all__ = [
    "ListSimulation",
    "Requirement",
    "RequirementResult",
    "binarize",
    "disparities",
    "disparity_wide",
    "evaluate_requirements",
    "generalized_entropy_index",
    "group_metrics",
    "roc_auc_by_group",
    "simulate_lists",
    "summary_measures",
    "two_proportion_ztest",
    "wilson_interval",
]

