"""Choosing a model group from its metric over time, in the manner of triage's audition.

A temporal experiment gives every model group one value per test period (precision in the top
100 on each test as-of date, say). A selection rule turns the values of the periods seen so far
into one choice; it is judged by its *regret* in the next period: the best value any group
achieved there minus the value of the group the rule chose. A rule with low regret would have
served the department well had it been used to pick the model each time the model was retrained.
Choosing on one lucky period is the failure this guards against.

Every rule here scores each group from a table of past values (rows: periods in time order,
columns: groups) and picks the highest score; ties go to the better most recent value, then to
the smaller group id, so a choice is deterministic. Higher metric values are better unless
``greater_is_better=False`` (the values are then negated before any rule sees them, and regret
is still reported as a non-negative shortfall).

Rules (``Rule(name, param)``):

* ``best_current_value``: the best value in the most recent period;
* ``best_average_value``: the best mean over all past periods;
* ``lowest_metric_variance``: the smallest standard deviation over past periods (population
  standard deviation, so one period gives 0 for everyone and the tie-break decides);
* ``best_avg_var_penalized``: the best ``mean - param * std``;
* ``best_avg_recency_weight``: the best mean weighted by ``param ** age``, age 0 being the most
  recent period (``param`` in (0, 1]; 1 is the plain mean);
* ``most_frequent_best_dist``: the group most often within ``param`` of the period's best value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


class AuditionError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    """A selection rule and its one parameter (``None`` when it has none)."""

    name: str
    param: float | None = None

    @property
    def label(self) -> str:
        return self.name if self.param is None else f"{self.name}({self.param:g})"


def _std(past: pd.DataFrame) -> pd.Series:
    return past.std(ddof=0)


def _best_current_value(past: pd.DataFrame, param: float | None) -> pd.Series:
    return past.iloc[-1]


def _best_average_value(past: pd.DataFrame, param: float | None) -> pd.Series:
    return past.mean()


def _lowest_metric_variance(past: pd.DataFrame, param: float | None) -> pd.Series:
    return -_std(past)


def _best_avg_var_penalized(past: pd.DataFrame, param: float | None) -> pd.Series:
    if param is None or param < 0:
        raise AuditionError("best_avg_var_penalized needs a non-negative penalty (param)")
    return past.mean() - param * _std(past).fillna(0.0)


def _best_avg_recency_weight(past: pd.DataFrame, param: float | None) -> pd.Series:
    if param is None or not 0 < param <= 1:
        raise AuditionError("best_avg_recency_weight needs a decay (param) in (0, 1]")
    age = np.arange(len(past))[::-1]
    weights = pd.Series(param ** age, index=past.index)
    present = past.notna()
    total = past.fillna(0.0).mul(weights, axis=0).sum()
    return total / present.mul(weights, axis=0).sum().replace(0.0, np.nan)


def _most_frequent_best_dist(past: pd.DataFrame, param: float | None) -> pd.Series:
    if param is None or param < 0:
        raise AuditionError("most_frequent_best_dist needs a non-negative distance (param)")
    best = past.max(axis=1)
    near = past.ge(best - param - 1e-12, axis=0) & past.notna()
    return near.sum().astype(float)


RULES: dict[str, Callable[[pd.DataFrame, float | None], pd.Series]] = {
    "best_current_value": _best_current_value,
    "best_average_value": _best_average_value,
    "lowest_metric_variance": _lowest_metric_variance,
    "best_avg_var_penalized": _best_avg_var_penalized,
    "best_avg_recency_weight": _best_avg_recency_weight,
    "most_frequent_best_dist": _most_frequent_best_dist,
}

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("best_current_value"),
    Rule("best_average_value"),
    Rule("lowest_metric_variance"),
    Rule("best_avg_var_penalized", 0.5),
    Rule("best_avg_var_penalized", 1.0),
    Rule("best_avg_recency_weight", 0.5),
    Rule("most_frequent_best_dist", 0.02),
)


def metric_table(metrics: pd.DataFrame, *, group_col: str = "model_group_id",
                 time_col: str = "as_of_date", value_col: str = "value") -> pd.DataFrame:
    """Long (group, period, value) rows -> a table with one row per period (in time order) and
    one column per group. A (group, period) given twice is an error, not silently averaged."""
    missing = [c for c in (group_col, time_col, value_col) if c not in metrics.columns]
    if missing:
        raise AuditionError(f"metrics has no column(s) {', '.join(missing)}")
    dupes = metrics.duplicated([group_col, time_col])
    if dupes.any():
        first = metrics.loc[dupes, [group_col, time_col]].iloc[0].tolist()
        raise AuditionError(f"more than one value for (group, period) {first}")
    table = metrics.pivot(index=time_col, columns=group_col, values=value_col)
    return table.sort_index().astype(float)


def choose(past: pd.DataFrame, rule: Rule) -> object:
    """The group ``rule`` picks from ``past`` (periods x groups, time order, higher better)."""
    return ranking(past, rule)[0]


def ranking(past: pd.DataFrame, rule: Rule) -> list[object]:
    """Every group ``rule`` can score from ``past``, best first, with :func:`choose`'s ties
    (its first is the choice): an ensemble takes the first few as its members."""
    if rule.name not in RULES:
        raise AuditionError(f"unknown rule {rule.name!r} (known: {', '.join(RULES)})")
    past = past.dropna(axis=1, how="all")
    if past.empty:
        raise AuditionError("no past values to choose from")
    score = RULES[rule.name](past, rule.param)
    current = past.iloc[-1]
    frame = pd.DataFrame({"score": score, "current": current,
                          "group": list(past.columns)}, index=past.columns)
    frame = frame.dropna(subset=["score"])
    if frame.empty:
        raise AuditionError(f"{rule.label}: no group has a score")
    frame["current"] = frame["current"].fillna(-np.inf)
    # ties: better most recent value first, then the smaller group id
    order = np.lexsort((_sort_keys(frame["group"]), -frame["current"].to_numpy(),
                        -frame["score"].to_numpy()))
    return list(frame["group"].iloc[order])


def _sort_keys(groups: pd.Series) -> np.ndarray:
    """Group ids as sortable keys (numbers by value, anything else by its text)."""
    try:
        return groups.astype(float).to_numpy()
    except (TypeError, ValueError):
        return groups.astype(str).rank(method="dense").to_numpy()


@dataclass
class AuditionResult:
    """``regrets``: per rule and period, the group chosen on the periods before it, its value,
    the best value and the regret. ``summary``: per rule, mean / max regret and the group it
    would choose now (on every period). ``table``: the periods x groups values used."""

    regrets: pd.DataFrame
    summary: pd.DataFrame
    table: pd.DataFrame


def regret_table(table: pd.DataFrame, rules: Sequence[Rule] = DEFAULT_RULES, *,
                 greater_is_better: bool = True, min_history: int = 1) -> pd.DataFrame:
    """Per rule and period ``t`` (from the ``min_history``-th on): the choice made on periods
    before ``t``, and its regret in ``t``."""
    values = table if greater_is_better else -table
    rows = []
    for rule in rules:
        for t in range(min_history, len(values)):
            past, now = values.iloc[:t], values.iloc[t]
            if past.dropna(axis=1, how="all").empty or now.isna().all():
                continue
            group = choose(past, rule)
            best_group = now.idxmax()
            chosen = now.get(group, np.nan)
            sign = 1 if greater_is_better else -1
            rows.append({
                "rule": rule.label, "period": values.index[t], "history": t,
                "chosen_group": group, "chosen_value": sign * chosen,
                "best_group": best_group, "best_value": sign * now.max(),
                # a chosen group with no value this period counts as the worst group's value
                "regret": float(now.max() - (chosen if not np.isnan(chosen) else now.min())),
            })
    return pd.DataFrame(rows, columns=["rule", "period", "history", "chosen_group",
                                       "chosen_value", "best_group", "best_value", "regret"])


def audition(metrics: pd.DataFrame, rules: Sequence[Rule] = DEFAULT_RULES, *,
             group_col: str = "model_group_id", time_col: str = "as_of_date",
             value_col: str = "value", greater_is_better: bool = True,
             min_history: int = 1) -> AuditionResult:
    """Score every rule by its regret over the periods of ``metrics`` (long format: one row per
    group and period) and say which group each rule picks on all periods."""
    table = metric_table(metrics, group_col=group_col, time_col=time_col, value_col=value_col)
    if len(table) < 1:
        raise AuditionError("no periods")
    regrets = regret_table(table, rules, greater_is_better=greater_is_better,
                           min_history=min_history)
    values = table if greater_is_better else -table
    rows = []
    for rule in rules:
        mine = regrets[regrets["rule"] == rule.label]
        group = choose(values, rule)
        rows.append({
            "rule": rule.label, "periods_scored": len(mine),
            "mean_regret": float(mine["regret"].mean()) if len(mine) else np.nan,
            "max_regret": float(mine["regret"].max()) if len(mine) else np.nan,
            "mean_chosen_value": float(mine["chosen_value"].mean()) if len(mine) else np.nan,
            "final_choice": group,
            "final_choice_mean": float(table[group].mean()),
        })
    summary = pd.DataFrame(rows).sort_values(["mean_regret", "rule"], kind="stable",
                                             ignore_index=True)
    return AuditionResult(regrets, summary, table)


def top_groups(metrics: pd.DataFrame, rules: Sequence[Rule], n: int, *,
               time_col: str = "split_time") -> tuple[list[object], str]:
    """(the ``n`` best groups, the rule that ranked them): the rule with the lowest mean
    regret over ``metrics``' periods (the audition's choice of rule; with one period no rule
    has a regret and the first by name decides, each then ranking by that period's values
    but for its ties) ranks every group on all of them."""
    result = audition(metrics, rules, time_col=time_col)
    label = str(result.summary.iloc[0]["rule"])
    rule = next(r for r in rules if r.label == label)
    return ranking(result.table, rule)[:n], label
