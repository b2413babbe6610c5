"""Temporal cross-validation splits against dates worked out by hand."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from dateutil.relativedelta import relativedelta
from pydantic import ValidationError

from rudikit.config.timechop import Timechop, TimechopError, chop_time, parse_interval
from rudikit.features.timechop import plot_splits, splits_table

D = pd.Timestamp


def _chop(**changes: Any) -> Timechop:
    config: dict[str, Any] = {
        "feature_start_time": "2010-01-01", "feature_end_time": "2014-01-01",
        "label_start_time": "2010-01-01", "label_end_time": "2014-01-01",
        "model_update_frequency": "1year",
        "training_as_of_date_frequencies": "6month", "max_training_histories": "1year",
        "training_label_timespans": "1year",
        "test_as_of_date_frequencies": "3month", "test_durations": "6month",
        "test_label_timespans": "6month",
    }
    config.update(changes)
    return Timechop(**config)


def test_small_config_worked_by_hand() -> None:
    # Last test label time: 2014-01-01 - 6 months = 2013-07-01 (not after feature end).
    # Earliest split: max(starts) + 1 year = 2011-01-01. Last split: 2013-07-01 - 6 months =
    # 2013-01-01; stepping back a year at a time gives 2013, 2012 and 2011.
    splits = chop_time(_chop())
    assert [s.split_time for s in splits] == [D("2011-01-01"), D("2012-01-01"), D("2013-01-01")]
    # Training as-of dates end one training label timespan before the split, walk back every
    # 6 months for at most 1 year, and never before 2010-01-01.
    assert list(splits[0].train.as_of_dates) == [D("2010-01-01")]
    assert list(splits[1].train.as_of_dates) == [D("2010-01-01"), D("2010-07-01"),
                                                 D("2011-01-01")]
    assert list(splits[2].train.as_of_dates) == [D("2011-01-01"), D("2011-07-01"),
                                                 D("2012-01-01")]
    # Test as-of dates start at the split and step 3 months while before split + 6 months.
    assert list(splits[0].test.as_of_dates) == [D("2011-01-01"), D("2011-04-01")]
    assert list(splits[2].test.as_of_dates) == [D("2013-01-01"), D("2013-04-01")]
    assert splits[2].test.matrix_info_end_time == D("2013-10-01")
    assert splits[2].train.label_windows()[-1] == (D("2012-01-01"), D("2013-01-01"))
    assert splits[2].test.label_windows()[-1] == (D("2013-04-01"), D("2013-10-01"))
    table = splits_table(splits)
    assert table["train_as_of_dates"].tolist() == [1, 3, 3]
    assert table["split"].iloc[0] == "split_0_2011-01-01"


def test_no_training_label_window_reaches_into_the_test_period() -> None:
    chop = _chop(training_as_of_date_frequencies=["1month", "3month"],
                 max_training_histories=["1year", "3year"],
                 training_label_timespans=["6month", "1year"], test_durations=["0day", "3month"])
    splits = chop_time(chop)
    assert len(splits) > 10
    for split in splits:
        assert split.train.label_windows()[-1][1] <= split.split_time
        assert all(end <= split.split_time for _, end in split.train.label_windows())
        assert split.test.first_as_of_time == split.split_time
        assert split.test.matrix_info_end_time <= D("2014-01-01")
        assert split.train.first_as_of_time >= D("2010-01-01")


def test_triage_documented_example() -> None:
    chop = Timechop(
        feature_start_time="1995-01-01", feature_end_time="2017-07-01",
        label_start_time="2012-01-01", label_end_time="2017-07-01",
        model_update_frequency="1year", training_label_timespans=["6month"],
        test_label_timespans=["6month"], max_training_histories=["2year"],
        test_durations=["3month"], training_as_of_date_frequencies="1day",
        test_as_of_date_frequencies="1month")
    splits = chop_time(chop)
    assert [s.split_time for s in splits] == [D(f"{y}-10-01") for y in range(2012, 2017)]
    last = splits[-1]
    assert last.train.first_as_of_time == D("2014-04-01")
    assert last.train.last_as_of_time == D("2016-04-01")
    assert len(last.train.as_of_dates) == 732  # every day, both ends included
    assert list(last.test.as_of_dates) == [D("2016-10-01"), D("2016-11-01"), D("2016-12-01")]
    assert last.test.matrix_info_end_time == D("2017-06-01")
    assert splits[0].train.first_as_of_time == D("2012-01-01")  # clamped to label start


def test_every_combination_gets_its_splits() -> None:
    one = len(chop_time(_chop()))
    both = chop_time(_chop(test_as_of_date_frequencies=["1month", "3month"],
                           max_training_histories=["1year", "2year"]))
    assert len(both) == 2 * one
    assert all(len(s.tests) == 2 for s in both)
    assert len(both[0].tests[0].as_of_dates) == 6


def test_config_errors() -> None:
    with pytest.raises(TimechopError, match="after feature_end_time"):
        chop_time(_chop(feature_end_time="2013-01-01"))
    with pytest.raises(TimechopError, match="no split fits"):
        chop_time(_chop(training_label_timespans="4year"))
    with pytest.raises(ValidationError, match="positive"):
        _chop(model_update_frequency="0day")
    with pytest.raises(ValidationError, match="after feature_end_time"):
        _chop(feature_start_time="2015-01-01")
    with pytest.raises(ValidationError, match="extra"):
        _chop(surprise="1day")
    with pytest.raises(TimechopError, match="ambiguous"):
        parse_interval("6m")


def test_parse_interval_forms() -> None:
    assert parse_interval("1year") == relativedelta(years=1)
    assert parse_interval("6 months") == relativedelta(months=6)
    assert parse_interval("2y") == relativedelta(years=2)
    assert parse_interval("1w") == relativedelta(weeks=1)
    assert parse_interval("0day") == relativedelta()


def test_plot_draws_every_as_of_date() -> None:
    splits = chop_time(_chop())
    fig = plot_splits(splits, _chop())
    markers = [t for t in fig.data if t.mode == "markers"]
    total = sum(len(s.train.as_of_dates) + len(s.test.as_of_dates) for s in splits)
    assert sum(len(t.x) for t in markers) == total
    assert {t.name for t in fig.data} >= {"train as-of dates", "test as-of dates"}
    assert list(fig.layout.yaxis.ticktext) == [s.name for s in splits]
