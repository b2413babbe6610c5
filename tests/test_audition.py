"""Selection rules over time against a hand-made table whose answers can be read off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rudikit.models.audition import (
    AuditionError,
    Rule,
    audition,
    choose,
    metric_table,
    regret_table,
)

# Four periods, three model groups.
#   group 1: steady, good             0.50 0.50 0.50 0.50
#   group 2: lucky once, then poor    0.30 0.80 0.30 0.30
#   group 3: improving                0.40 0.45 0.55 0.60
VALUES = {
    1: [0.50, 0.50, 0.50, 0.50],
    2: [0.30, 0.80, 0.30, 0.30],
    3: [0.40, 0.45, 0.55, 0.60],
}
PERIODS = pd.to_datetime(["2013-01-01", "2014-01-01", "2015-01-01", "2016-01-01"])


def long_table() -> pd.DataFrame:
    rows = [{"model_group_id": g, "as_of_date": d, "value": v}
            for g, values in VALUES.items() for d, v in zip(PERIODS, values, strict=True)]
    return pd.DataFrame(rows).sample(frac=1, random_state=1)  # order must not matter


def test_metric_table_is_periods_by_groups_in_time_order() -> None:
    table = metric_table(long_table())
    assert list(table.index) == list(PERIODS)
    assert table.loc[PERIODS[1], 2] == 0.80
    with pytest.raises(AuditionError):
        metric_table(pd.concat([long_table(), long_table().head(1)]))


def test_each_rule_choice_worked_by_hand() -> None:
    table = metric_table(long_table())
    two = table.iloc[:2]  # after 2014
    assert choose(two, Rule("best_current_value")) == 2  # 0.80 in 2014
    # means: g1 0.50, g2 0.55, g3 0.425
    assert choose(two, Rule("best_average_value")) == 2
    # std (population): g1 0, g2 0.25, g3 0.025
    assert choose(two, Rule("lowest_metric_variance")) == 1
    # mean - 1 * std: g1 0.50, g2 0.30, g3 0.40
    assert choose(two, Rule("best_avg_var_penalized", 1.0)) == 1
    # mean - 0.1 * std: g1 0.50, g2 0.525, g3 0.4225
    assert choose(two, Rule("best_avg_var_penalized", 0.1)) == 2
    three = table.iloc[:3]  # after 2015
    # decay 0.2, weights 0.04, 0.2, 1 (oldest first), total 1.24:
    # g1 0.5; g2 (0.012 + 0.16 + 0.3) / 1.24 = 0.381; g3 (0.016 + 0.09 + 0.55) / 1.24 = 0.529
    assert choose(three, Rule("best_avg_recency_weight", 0.2)) == 3
    # decay 1 is the plain mean: g1 0.5, g2 0.4667, g3 0.4667
    assert choose(three, Rule("best_avg_recency_weight", 1.0)) == 1
    # within 0.06 of the period's best: 2013 g1 (0.5); 2014 g2 (0.8); 2015 g3 (0.55), g1 (0.50)
    assert choose(three, Rule("most_frequent_best_dist", 0.06)) == 1
    with pytest.raises(AuditionError):
        choose(two, Rule("no_such_rule"))
    with pytest.raises(AuditionError):
        choose(two, Rule("best_avg_recency_weight", 1.5))


def test_regret_is_the_next_period_shortfall() -> None:
    table = metric_table(long_table())
    regrets = regret_table(table, [Rule("best_current_value"), Rule("best_average_value")])
    current = regrets[regrets["rule"] == "best_current_value"].set_index("period")
    # 2014: chose g1 (best in 2013, 0.50); 2014's best is g2 0.80 -> regret 0.30
    # 2015: chose g2 (0.80 in 2014); 2015 best g3 0.55, g2 got 0.30 -> 0.25
    # 2016: chose g3 (0.55 in 2015); best is g3 0.60 -> 0
    assert current["chosen_group"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(current["regret"], [0.30, 0.25, 0.0])
    average = regrets[regrets["rule"] == "best_average_value"].set_index("period")
    # 2014: g1 (0.50 mean) -> 0.30; 2015: means g1 .5, g2 .55, g3 .425 -> g2 -> 0.25;
    # 2016: means g1 .5, g2 .4667, g3 .4667 -> g1 -> 0.60 - 0.50 = 0.10
    assert average["chosen_group"].tolist() == [1, 2, 1]
    np.testing.assert_allclose(average["regret"], [0.30, 0.25, 0.10])


def test_audition_summary_ranks_rules_by_mean_regret() -> None:
    rules = [Rule("best_current_value"), Rule("best_average_value"),
             Rule("best_avg_var_penalized", 1.0)]
    result = audition(long_table(), rules)
    summary = result.summary.set_index("rule")
    np.testing.assert_allclose(summary.loc["best_current_value", "mean_regret"], 0.55 / 3)
    np.testing.assert_allclose(summary.loc["best_average_value", "mean_regret"], 0.65 / 3)
    # penalised: 2014 g1 (one period, std 0) -> .30; 2015 g1 (g2 .55-.25) -> .05;
    # 2016: g1 .5, g2 .4667-.2357, g3 .4667-.0624 -> g1 -> .10
    np.testing.assert_allclose(summary.loc["best_avg_var_penalized(1)", "mean_regret"],
                               0.45 / 3)
    assert result.summary["rule"].iloc[0] == "best_avg_var_penalized(1)"
    # choosing now, on all four periods
    assert summary.loc["best_current_value", "final_choice"] == 3
    assert summary.loc["best_avg_var_penalized(1)", "final_choice"] == 1
    assert summary.loc["best_current_value", "periods_scored"] == 3


def test_lower_is_better_metrics() -> None:
    frame = long_table().assign(value=lambda f: 1 - f["value"])
    regrets = regret_table(metric_table(frame), [Rule("best_current_value")],
                           greater_is_better=False)
    np.testing.assert_allclose(regrets["regret"], [0.30, 0.25, 0.0])
    assert regrets["chosen_value"].iloc[0] == pytest.approx(0.5)
    assert regrets["best_value"].iloc[0] == pytest.approx(0.2)


def test_missing_values_and_ties() -> None:
    frame = long_table()
    frame = frame[~((frame["model_group_id"] == 2) & (frame["as_of_date"] == PERIODS[0]))]
    table = metric_table(frame)
    assert np.isnan(table.loc[PERIODS[0], 2])
    # after 2013 only groups 1 and 3 have values; g1 is best
    assert choose(table.iloc[:1], Rule("best_average_value")) == 1
    tied = pd.DataFrame({5: [0.4], 4: [0.4]}, index=PERIODS[:1])
    assert choose(tied, Rule("best_current_value")) == 4  # smaller id on a full tie
