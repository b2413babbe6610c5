"""Simulate the short lists a ranking model would produce in use.

A model used for ranking (e.g. "the 10 people to review first out of today's 100 cases") is
judged by what its lists look like, not by a global threshold. The simulation draws ``n`` cases
with replacement from the data, ``repeats`` times, ranks each draw by score and keeps the top
``k``. It reports the mean precision@k with a percentile interval over the repeats, and the mean
share of each group among the listed cases next to its share of the drawn cases.

Ties at the k-th score are broken by draw order. Draws are i.i.d., so this is a uniformly random
tie-break, and reproducible with ``random_state``. All repeats are computed at once as
``(repeats, n)`` arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rudikit.config import Fairness
from rudikit.evaluation.bootstrap import percentile_interval, resample_indices
from rudikit.evaluation.metrics import MetricValue
from rudikit.fairness.groups import MISSING_GROUP, group_key
from rudikit.fairness.inputs import validate_fairness_inputs

#: Cases drawn per simulated list, as in the RUDI guide (10 of every 100 new cases).
LIST_DRAW = 100


@dataclass(frozen=True)
class ListSimulation:
    """Result of :func:`simulate_lists`.

    ``precision_samples`` holds precision@k of every repeat; ``composition`` has one row per
    group with ``list_share`` (mean share of the top-k), its percentile interval
    ``list_lower``/``list_upper``, and ``pool_share`` (mean share of the n drawn cases).
    """

    n: int
    k: int
    repeats: int
    confidence: float
    precision_mean: float
    precision_lower: float
    precision_upper: float
    precision_samples: np.ndarray
    composition: pd.DataFrame


def simulate_lists(
    y_true: object,
    y_score: object,
    groups: object | None = None,
    *,
    n: int = 100,
    k: int = 10,
    repeats: int = 100,
    confidence: float = 0.95,
    random_state: int | None = 0,
    missing_label: str = MISSING_GROUP,
) -> ListSimulation:
    """Draw ``n`` cases with replacement ``repeats`` times and summarise the top-``k`` lists.

    ``precision@k = (number of positives in the top k) / k``; its interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles over the repeats.
    ``groups`` (optional) labels each case, e.g. a protected attribute; missing labels are a
    group of their own.
    """
    inputs = validate_fairness_inputs(y_true, y_score=y_score, groups=groups)
    y, s = inputs.y_true, inputs.y_score
    assert y is not None and s is not None
    for name, value in (("n", n), ("k", k), ("repeats", repeats)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if k > n:
        raise ValueError(f"k ({k}) cannot exceed n ({n})")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    if len(y) == 0:
        raise ValueError("y_true is empty: nothing to draw from")
    codes = None
    labels: list[str] = []
    if groups is not None:
        g = pd.Series(groups) if not isinstance(groups, pd.Series) else groups
        raw, uniques = pd.factorize(g, sort=True)
        labels = [str(u) for u in uniques]
        if (raw < 0).any():
            raw = np.where(raw < 0, len(labels), raw)
            labels.append(missing_label)
        codes = raw.astype(np.int64)

    draws = resample_indices(len(y), repeats, np.random.default_rng(random_state), size=n)
    # stable sort on the negated score: ties keep draw order, i.e. a random order
    top = np.take_along_axis(draws, np.argsort(-s[draws], axis=1, kind="stable")[:, :k], axis=1)
    precision = y[top].mean(axis=1)
    lo, hi = percentile_interval(precision, confidence)

    if codes is not None:
        g_count = len(labels)
        offsets = np.arange(repeats)[:, None] * g_count
        in_list = np.bincount((offsets + codes[top]).ravel(), minlength=repeats * g_count)
        in_pool = np.bincount((offsets + codes[draws]).ravel(), minlength=repeats * g_count)
        list_share = in_list.reshape(repeats, g_count) / k
        pool_share = in_pool.reshape(repeats, g_count) / n
        q_lo, q_hi = percentile_interval(list_share, confidence, axis=0)
        composition = pd.DataFrame({
            "group": labels,
            "list_share": list_share.mean(axis=0),
            "list_lower": q_lo,
            "list_upper": q_hi,
            "pool_share": pool_share.mean(axis=0),
        })
    else:
        composition = pd.DataFrame(
            columns=["group", "list_share", "list_lower", "list_upper", "pool_share"]
        )
    return ListSimulation(
        n=int(n),
        k=int(k),
        repeats=int(repeats),
        confidence=float(confidence),
        precision_mean=float(precision.mean()),
        precision_lower=float(lo),
        precision_upper=float(hi),
        precision_samples=precision,
        composition=composition,
    )


def list_selection_rate(list_share: float, pool_share: float, k: int, n: int = LIST_DRAW
                        ) -> float:
    """The share of a group's drawn cases that are listed (the selection rate a fairness
    requirement bounds): its mean share of the ``k`` listed over its share of the ``n`` drawn."""
    return list_share * k / (pool_share * n)


def list_size(fairness: Fairness, n_rows: int, n: int = LIST_DRAW,
              top_pct: float | None = None) -> int | None:
    """How many of ``n`` drawn cases the project's operating point flags: ``top_pct`` of them,
    or a ``top_k`` list's share of the ``n_rows`` scored rows. A threshold is not a list: then
    the ``top_pct`` given (the run's first evaluated top-%, so the report's comparison of
    models still has list figures), else None. At least 1, at most ``n``."""
    at = fairness.at
    if at.top_pct is not None:
        share = at.top_pct / 100
    elif at.top_k is not None and n_rows:
        share = at.top_k / n_rows
    elif top_pct is not None:
        share = top_pct / 100
    else:
        return None
    return int(min(n, max(1, round(share * n))))


def list_simulation_metrics(fairness: Fairness, attrs: pd.DataFrame, y_true: np.ndarray,
                            y_score: np.ndarray, seed: int | None, repeats: int = 100,
                            top_pct: float | None = None) -> list[MetricValue]:
    """The guide's list simulation as evaluations, so the report can show it from the store
    (which keeps predictions but not the attributes): ``list_precision`` (parameter
    ``{k}_of_{n}``), and per single attribute and group (parameter ``attribute=group``)
    ``list_share`` (mean share of the list, with its interval) and ``list_pool_share`` (mean
    share of the drawn cases). Every model draws the same cases (same seed), so models are
    compared on identical pools. When the operating point is a threshold, the lists are the top
    ``top_pct`` % (:func:`list_size`); empty without one."""
    k = list_size(fairness, len(y_score), top_pct=top_pct)
    if k is None or not len(y_score):
        return []
    out: list[MetricValue] = []
    for attribute in fairness.attributes or [None]:
        sim = simulate_lists(y_true, y_score, None if attribute is None else attrs[attribute],
                             n=LIST_DRAW, k=k, repeats=repeats, random_state=seed)
        if not out:
            out.append(MetricValue("list_precision", f"{k}_of_{LIST_DRAW}", sim.precision_mean,
                                   sim.precision_lower, sim.precision_upper, repeats))
        for row in sim.composition.itertuples():
            parameter = group_key(str(attribute), row.group)[:100]
            out += [MetricValue("list_share", parameter, float(row.list_share),
                                float(row.list_lower), float(row.list_upper), repeats),
                    MetricValue("list_pool_share", parameter, float(row.pool_share), None, None,
                                repeats)]
    return out
