"""As-of features and labels: leakage rules, findings known only once closed, censoring, cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rudikit.features.asof.build import build_features
from rudikit.features.asof.cohort import cohort_frame, monthly_as_of_dates
from rudikit.features.asof.defaults import (
    ANY_COMPLAINT,
    COMPLAINTS,
    DEFAULT_STATES,
    INJURY_USE_OF_FORCE,
    SUSTAINED_COMPLAINT,
    UNIT_CHANGES,
    USE_OF_FORCE,
)
from rudikit.features.asof.labels import build_labels, label_rates
from rudikit.features.asof.specs import Category, Cohort, EventSpec, FeatureError, LabelSpec

D = pd.Timestamp


def _tables() -> dict[str, pd.DataFrame]:
    officers = pd.DataFrame({
        "officer_uid": pd.array([1, 2, 3, 4, 5], dtype="Int64"),
        "appointed_date": pd.to_datetime(["2000-01-01", "2005-06-01", "2012-03-01",
                                          "1999-01-01", "1960-01-01"]),
        "birth_year": pd.array([1970, 1980, 1988, 1965, 1935], dtype="Int64"),
        "gender": ["MALE", "FEMALE", "MALE", "MALE", "MALE"],
        "race": ["WHITE", "BLACK", "HISPANIC", "WHITE", "WHITE"],
        # Officer 4 resigns in 2011; officer 5 has no resignation date but would be 77 in 2012.
        "resignation_date": pd.to_datetime([None, None, None, "2011-05-01", None]),
    })
    complaints = pd.DataFrame({
        "row_id": range(1, 8),
        "cr_id": ["A", "A", "B", "C", "D", "E", "F"],
        "officer_uid": pd.array([1, 1, 1, 2, 2, 1, 4], dtype="Int64"),
        "complaint_date": pd.to_datetime(["2011-06-01", "2011-06-01", "2011-12-15",
                                          "2008-03-01", "2011-11-20", "2012-06-01",
                                          "2010-01-01"]),
        "closed_date": pd.to_datetime(["2012-02-01", "2012-02-01", None, "2009-01-01",
                                       "2011-12-20", "2013-01-01", "2010-06-01"]),
        # Complaint A has two allegations: it counts once in total, once per category.
        "allegation_category": ["excessive_force", "verbal_abuse", "excessive_force",
                                "improper_search", "verbal_abuse", "excessive_force",
                                "other"],
        "final_finding": ["sustained", "not_sustained", "no_finding", "unfounded",
                          "exonerated", "sustained", "unfounded"],
    })
    use_of_force = pd.DataFrame({
        "trr_id": ["t1", "t2", "t3", "t4"],
        "officer_uid": pd.array([1, 2, 2, 3], dtype="Int64"),
        "trr_date": pd.to_datetime(["2011-03-01", "2011-09-01", "2012-04-01", "2012-12-01"]),
        "highest_force": ["holding", "taser", "stunning", "holding"],
        "any_injury": [True, False, True, False],
        "officer_injured": [False, False, True, False],
    })
    unit_history = pd.DataFrame({
        "officer_uid": pd.array([1, 1, 2], dtype="Int64"),
        "unit": ["7", "11", "5"],
        "unit_start_date": pd.to_datetime(["2000-01-01", "2011-10-01", "2005-06-01"]),
        "unit_end_date": pd.to_datetime(["2011-09-30", None, None]),
        "is_change": [False, True, False],
    })
    rank_history = pd.DataFrame({
        "officer_uid": pd.array([1, 1], dtype="Int64"),
        "rank_date": pd.to_datetime(["2011-03-01", "2012-06-01"]),
        "rank": ["POLICE OFFICER", "SERGEANT OF POLICE"],
    })
    return {"officers": officers, "complaints": complaints, "use_of_force": use_of_force,
            "unit_history": unit_history, "rank_history": rank_history}


SPEC = EventSpec(
    name="cmp", table="complaints", date_column="complaint_date", id_column="cr_id",
    windows=("6month", "1year", "all"),
    categories=(Category("allegation_category", ("excessive_force", "verbal_abuse", "other"),
                         label="cat"),
                Category("final_finding", ("sustained", "not_sustained", "no_finding"),
                         label="finding", known_from="closed_date")),
)


UOF = EventSpec(
    name="uof", table="use_of_force", date_column="trr_date", id_column="trr_id",
    categories=(Category("highest_force", ("holding", "taser", "stunning", "firearm"),
                         label="top"),),
    flags=("any_injury", "officer_injured"), data_start="2004-01-01",
)


def _row(frame: pd.DataFrame, officer: int, day: str) -> pd.Series:
    hit = frame[(frame["officer_uid"] == officer) & (frame["as_of_date"] == D(day))]
    assert len(hit) == 1, (officer, day)
    return hit.iloc[0]


def test_cohort_is_active_officers_only() -> None:
    cohort = cohort_frame(_tables(), ["2011-01-01", "2012-01-01"])
    by_date = cohort.groupby("as_of_date")["officer_uid"].apply(list).to_dict()
    assert by_date[D("2011-01-01")] == [1, 2, 4]  # 3 not yet appointed, 5 past retirement age
    assert by_date[D("2012-01-01")] == [1, 2]  # 4 resigned in 2011
    aged = cohort_frame(_tables(), ["2011-01-01"], Cohort(max_age=None))
    assert 5 in set(aged["officer_uid"])


def test_counts_windows_rates_recency_and_distinct_ids() -> None:
    frame = build_features(_tables(), ["2012-01-01"], [SPEC], states=()).frame
    one = _row(frame, 1, "2012-01-01")
    # A (two allegations, 2011-06-01) and B (2011-12-15): two complaints.
    assert one["cmp_all_all_count"] == 2
    assert one["cmp_all_1year_count"] == 2
    assert one["cmp_all_6month_count"] == 1  # A is seven months old
    assert one["cmp_cat_excessive_force_all_count"] == 2
    assert one["cmp_cat_verbal_abuse_all_count"] == 1
    assert one["cmp_all_days_since"] == (D("2012-01-01") - D("2011-12-15")).days
    assert one["cmp_cat_other_days_since"] is None or pd.isna(one["cmp_cat_other_days_since"])
    # Rate per year within the window: two in the last year.
    assert one["cmp_all_1year_rate"] == pytest.approx(2 / (365 / 365.25), rel=1e-5)
    # Over all history the exposure is the whole tenure since 2000-01-01.
    tenure = (D("2012-01-01") - D("2000-01-01")).days / 365.25
    assert one["cmp_all_all_rate"] == pytest.approx(2 / tenure, rel=1e-5)
    assert one["tenure_years"] == pytest.approx(tenure, rel=1e-5)
    assert one["age_years"] == 42


def test_windows_reaching_before_complete_recording_are_missing() -> None:
    """Only excessive force is recorded before 2011 here: other groups' counts and rates over
    a window that starts earlier are missing, not undercounts; the complete group and windows
    that start on or after the day keep their values."""
    spec = dataclasses.replace(SPEC, windows=("1year", "5year", "all"),
                               complete_from="2011-01-01",
                               complete_groups=("cat_excessive_force",))
    frame = build_features(_tables(), ["2012-01-01", "2013-01-01"], [spec], states=()).frame
    one = _row(frame, 1, "2012-01-01")
    # The 1-year window starts on 2011-01-01 itself: complete.
    assert one["cmp_all_1year_count"] == 2
    assert one["cmp_cat_verbal_abuse_1year_count"] == 1
    for name in ("cmp_all_5year_count", "cmp_all_5year_rate", "cmp_all_all_count",
                 "cmp_all_all_rate", "cmp_cat_verbal_abuse_5year_count",
                 "cmp_finding_sustained_all_count"):
        assert pd.isna(one[name]), name
    assert one["cmp_cat_excessive_force_5year_count"] == 2
    assert one["cmp_cat_excessive_force_all_count"] == 2
    tenure = (D("2012-01-01") - D("2000-01-01")).days / 365.25
    assert one["cmp_cat_excessive_force_all_rate"] == pytest.approx(2 / tenure, rel=1e-5)
    # Recency is not masked: the last recorded complaint is still the last one.
    assert one["cmp_all_days_since"] == (D("2012-01-01") - D("2011-12-15")).days
    # Officer 3, appointed 2012-03-01, has a whole career recorded completely in 2013.
    three = _row(frame, 3, "2013-01-01")
    assert three["cmp_all_all_count"] == 0
    assert three["cmp_all_5year_count"] == 0
    assert pd.isna(_row(frame, 2, "2013-01-01")["cmp_all_all_count"])
    # Without complete_from every window counts what is there.
    plain = build_features(_tables(), ["2012-01-01"], [SPEC], states=()).frame
    assert _row(plain, 1, "2012-01-01")["cmp_all_all_count"] == 2


def test_finding_is_unknown_until_the_case_is_closed() -> None:
    dates = ["2012-01-01", "2012-03-01"]
    frame = build_features(_tables(), dates, [SPEC], states=()).frame
    before, after = _row(frame, 1, "2012-01-01"), _row(frame, 1, "2012-03-01")
    # A closes on 2012-02-01; B is never closed.
    assert before["cmp_finding_sustained_all_count"] == 0
    assert before["cmp_finding_open_unknown_all_count"] == 2
    assert after["cmp_finding_sustained_all_count"] == 1
    assert after["cmp_finding_not_sustained_all_count"] == 1  # A's other allegation
    assert after["cmp_finding_open_unknown_all_count"] == 1  # B
    # Officer 2's D closed on 2011-12-20, so its finding is known on 2012-01-01.
    two = _row(frame, 2, "2012-01-01")
    assert two["cmp_finding_open_unknown_all_count"] == 0


def test_a_closing_on_the_as_of_date_is_not_yet_known() -> None:
    frame = build_features(_tables(), ["2012-02-01"], [SPEC], states=()).frame
    assert _row(frame, 1, "2012-02-01")["cmp_finding_sustained_all_count"] == 0


def test_future_events_never_change_features() -> None:
    dates = ["2011-07-01", "2012-01-01"]
    tables = _tables()
    later = dict(tables)
    extra_cmp = pd.DataFrame({
        "row_id": [100, 101], "cr_id": ["Z", "Y"],
        "officer_uid": pd.array([1, 2], dtype="Int64"),
        # One on the as-of date itself (a label event, not a feature) and one after.
        "complaint_date": pd.to_datetime(["2012-01-01", "2012-05-01"]),
        "closed_date": pd.to_datetime(["2012-01-15", None]),
        "allegation_category": ["excessive_force", "verbal_abuse"],
        "final_finding": ["sustained", "no_finding"],
    })
    later["complaints"] = pd.concat([tables["complaints"], extra_cmp], ignore_index=True)
    extra_uof = pd.DataFrame({
        "trr_id": ["t9"], "officer_uid": pd.array([1], dtype="Int64"),
        "trr_date": pd.to_datetime(["2012-01-01"]), "highest_force": ["firearm"],
        "any_injury": [True], "officer_injured": [True],
    })
    later["use_of_force"] = pd.concat([tables["use_of_force"], extra_uof], ignore_index=True)
    later["unit_history"] = pd.concat([tables["unit_history"], pd.DataFrame({
        "officer_uid": pd.array([2], dtype="Int64"), "unit": ["9"],
        "unit_start_date": pd.to_datetime(["2012-01-01"]), "unit_end_date": [pd.NaT],
        "is_change": [True]})], ignore_index=True)
    # A case closing later must not reveal its finding earlier either.
    later["complaints"].loc[later["complaints"]["cr_id"] == "B", "closed_date"] = D("2012-06-01")
    specs = [SPEC, UOF, UNIT_CHANGES]
    after = build_features(later, dates, specs, DEFAULT_STATES).frame
    before = build_features(tables, dates, specs, DEFAULT_STATES).frame
    pd.testing.assert_frame_equal(before, after)


def test_states_come_from_history_as_of_the_date() -> None:
    frame = build_features(_tables(), ["2011-07-01", "2012-01-01", "2012-07-01"],
                           specs=()).frame
    assert _row(frame, 1, "2011-07-01")["unit"] == "7"
    assert _row(frame, 1, "2012-01-01")["unit"] == "11"
    assert _row(frame, 1, "2012-01-01")["unit_days"] == (D("2012-01-01") - D("2011-10-01")).days
    assert _row(frame, 1, "2012-01-01")["rank"] == "POLICE OFFICER"
    assert _row(frame, 1, "2012-07-01")["rank"] == "SERGEANT OF POLICE"
    assert pd.isna(_row(frame, 2, "2012-01-01")["rank"])


def test_labels_window_and_censoring() -> None:
    tables = _tables()
    dates = ["2011-01-01", "2011-06-01", "2012-01-01"]
    labels = build_labels(tables, dates, ANY_COMPLAINT, data_end="2012-12-31")
    # Officer 1: complaint A on 2011-06-01 is inside [2011-06-01, 2012-06-01) and
    # [2011-01-01, 2012-01-01); E (2012-06-01) is in the 2012 window.
    assert _row(labels, 1, "2011-06-01")["any_complaint"] == 1
    assert _row(labels, 1, "2012-01-01")["any_complaint"] == 1
    assert _row(labels, 2, "2012-01-01")["any_complaint"] == 0
    # Ending on 2012-12-31 covers the window [2012-01-01, 2013-01-01); one day less does not.
    short = build_labels(tables, dates, ANY_COMPLAINT, data_end="2012-12-30")
    assert short.loc[short["as_of_date"] == D("2012-01-01"), "any_complaint"].isna().all()
    assert short.loc[short["as_of_date"] == D("2011-06-01"), "any_complaint"].notna().all()
    # By default the data end is the table's latest date (2012-06-01 here).
    default = build_labels(tables, dates, ANY_COMPLAINT)
    assert default.loc[default["as_of_date"] == D("2011-06-01"), "any_complaint"].notna().all()
    assert default.loc[default["as_of_date"] == D("2012-01-01"), "any_complaint"].isna().all()
    rates = label_rates(short, "any_complaint").set_index("as_of_date")
    assert rates.loc[D("2012-01-01"), "labelled"] == 0
    assert pd.isna(rates.loc[D("2012-01-01"), "rate"])


def test_labels_filters() -> None:
    tables = _tables()
    sustained = build_labels(tables, ["2011-01-01", "2012-01-01"], SUSTAINED_COMPLAINT,
                             data_end="2013-06-01")
    assert _row(sustained, 1, "2011-01-01")["sustained_complaint"] == 1  # A
    assert _row(sustained, 2, "2011-01-01")["sustained_complaint"] == 0  # D: exonerated
    injury = build_labels(tables, ["2011-01-01", "2012-01-01"], INJURY_USE_OF_FORCE,
                          data_end="2013-06-01")
    assert _row(injury, 1, "2011-01-01")["injury_use_of_force"] == 1  # t1
    assert _row(injury, 2, "2011-01-01")["injury_use_of_force"] == 0  # t2: no injury
    assert _row(injury, 2, "2012-01-01")["injury_use_of_force"] == 1  # t3
    # t3 falls on 2012-04-01: outside [2012-01-01, 2012-04-01), inside a 4-month window.
    for months, expected in ((3, 0), (4, 1)):
        spec = LabelSpec("uof", "use_of_force", "trr_date", window_months=months,
                         where="any_injury", data_end="2013-06-01")
        assert _row(build_labels(tables, ["2012-01-01"], spec), 2, "2012-01-01")["uof"] == expected


def test_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    tables = _tables()
    dates = ["2011-07-01", "2012-01-01"]
    first = build_features(tables, dates, [SPEC], states=(), cache_dir=tmp_path)
    assert [b.cached for b in first.blocks] == [False]
    path = first.blocks[0].path
    assert path is not None and path.exists() and path.parent.name == first.blocks[0].key
    assert len(first.blocks[0].key) == 64
    second = build_features(tables, dates, [SPEC], states=(), cache_dir=tmp_path)
    assert [b.cached for b in second.blocks] == [True]
    pd.testing.assert_frame_equal(first.frame, second.frame)
    changed = dict(tables)
    changed["complaints"] = tables["complaints"].assign(
        final_finding=tables["complaints"]["final_finding"].replace("unfounded", "sustained"))
    third = build_features(changed, dates, [SPEC], states=(), cache_dir=tmp_path)
    assert [b.cached for b in third.blocks] == [False]
    assert third.blocks[0].key != first.blocks[0].key
    other_dates = build_features(tables, ["2012-01-01"], [SPEC], states=(), cache_dir=tmp_path)
    assert not other_dates.blocks[0].cached


def test_spec_errors() -> None:
    with pytest.raises(FeatureError, match="unknown window"):
        EventSpec("x", "complaints", "complaint_date", windows=("7weeks",))
    with pytest.raises(FeatureError, match="no table"):
        build_features(_tables(), ["2012-01-01"],
                       [EventSpec("x", "missing", "d")], states=())
    with pytest.raises(FeatureError, match="no column"):
        build_features(_tables(), ["2012-01-01"],
                       [EventSpec("x", "complaints", "no_such_date")], states=())
    with pytest.raises(FeatureError, match="complete_groups: needs complete_from"):
        EventSpec("x", "complaints", "complaint_date", complete_groups=("all",))
    with pytest.raises(FeatureError, match="complete_groups: no group cat_excesive_force"):
        build_features(_tables(), ["2012-01-01"], [dataclasses.replace(
            SPEC, complete_from="2011-01-01", complete_groups=("cat_excesive_force",))],
            states=())


def test_monthly_as_of_dates() -> None:
    dates = monthly_as_of_dates("2010-01-01", "2010-12-01")
    assert len(dates) == 12 and dates[0] == D("2010-01-01") and dates[-1] == D("2010-12-01")


# --- The real files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpdb_tables(cpdb_loaded: Any) -> tuple[dict[str, pd.DataFrame], dict[str, pd.Timestamp]]:
    data = cpdb_loaded
    return data.tables(), data.data_end


def test_real_features_ignore_the_future(
        cpdb_tables: tuple[dict[str, pd.DataFrame], dict[str, pd.Timestamp]]) -> None:
    tables, _ = cpdb_tables
    as_of = D("2012-01-01")
    # As examples/eis declares: before 2007 the export records excessive force only.
    specs = (dataclasses.replace(COMPLAINTS, complete_from="2007-01-01",
                                 complete_groups=("cat_excessive_force",)),
             USE_OF_FORCE, UNIT_CHANGES)
    full = build_features(tables, [as_of], specs).frame
    cut = dict(tables)
    cut["complaints"] = tables["complaints"][tables["complaints"]["complaint_date"] < as_of]
    # Closing dates after the as-of date are unknown then: blank them too.
    late = cut["complaints"]["closed_date"] >= as_of
    cut["complaints"] = cut["complaints"].assign(
        closed_date=cut["complaints"]["closed_date"].mask(late),
        final_finding=cut["complaints"]["final_finding"].mask(late, "no_finding"))
    cut["use_of_force"] = tables["use_of_force"][tables["use_of_force"]["trr_date"] < as_of]
    cut["rank_history"] = tables["rank_history"][tables["rank_history"]["rank_date"] < as_of]
    units = tables["unit_history"][tables["unit_history"]["unit_start_date"] < as_of]
    cut["unit_history"] = units.assign(
        unit_end_date=units["unit_end_date"].mask(units["unit_end_date"] >= as_of))
    pd.testing.assert_frame_equal(full, build_features(cut, [as_of], specs).frame)
    assert full["cmp_cat_excessive_force_all_count"].sum() > 10_000
    # Other allegations are recorded from 2007: whole-career counts exist only for officers
    # appointed since then; the 5-year window from 2007-01-01 is complete for everyone.
    recent = full["tenure_years"] <= (as_of - D("2007-01-01")).days / 365.25
    assert full.loc[recent, "cmp_all_all_count"].notna().all()
    assert full.loc[~recent, "cmp_all_all_count"].isna().all()
    assert full["cmp_all_5year_count"].notna().all() and full["cmp_all_5year_count"].sum() > 5_000
    assert 10_000 < len(full) < 15_000


def test_real_labels_and_censoring(
        cpdb_tables: tuple[dict[str, pd.DataFrame], dict[str, pd.Timestamp]]) -> None:
    tables, ends = cpdb_tables
    dates = ["2014-01-01", "2015-01-01", "2016-01-01"]
    uof = build_labels(tables, dates, INJURY_USE_OF_FORCE, data_end=ends["use_of_force"])
    rates = label_rates(uof, "injury_use_of_force").set_index("as_of_date")
    assert 0.08 < rates.loc[D("2015-01-01"), "rate"] < 0.25
    # The TRR data end in April 2016, so a 2016 window cannot be observed: missing, not 0.
    assert rates.loc[D("2016-01-01"), "labelled"] == 0
    cmp = build_labels(tables, dates, ANY_COMPLAINT, data_end=ends["complaints"])
    cmp_rates = label_rates(cmp, "any_complaint").set_index("as_of_date")
    assert (cmp_rates["labelled"] == cmp_rates["officers"]).all()
    assert cmp_rates["rate"].min() > 0.03 and cmp_rates["rate"].max() < 0.2
    assert COMPLAINTS.table == "complaints"
