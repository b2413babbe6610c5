"""The retrain tables' fairness column: an inconclusive requirement is not counted as failing."""

from __future__ import annotations

from rudikit.monitoring.retrain import Contender


def _contender(passed: bool | None, statuses: list[str]) -> Contender:
    return Contender(1, 0.5, {}, passed, statuses=statuses)


def test_fairness_label_counts_each_verdict() -> None:
    mixed = _contender(False, ["met", "not met", "inconclusive", "insufficient data",
                               "inconclusive"])
    assert mixed.fairness_label() == "2 inconclusive, 1 insufficient data, 1 not met"
    assert _contender(True, ["met", "met"]).fairness_label() == "met"
    assert _contender(None, []).fairness_label() == "n/a"
