"""COMPAS case table: labels, censoring, custody history and tokens on hand-made people, the
compas.db layout on a tiny SQLite file, and counts and base rates on ProPublica's files."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SharedData
from sqlalchemy import func, select

from rudikit.data.compas.features import (
    age_at,
    charge_tokens,
    charge_vocabulary,
    current_jail_days,
    custody_history,
    feature_columns,
    history_features,
    token_features,
)
from rudikit.data.compas.labels import trigger_dates
from rudikit.data.compas.loading import (
    FILES,
    CompasData,
    CompasDataError,
    check_person_ids,
    degree_class,
    degree_detail,
    load_compas,
    load_compas_db,
    read_compas_csv,
)
from rudikit.data.compas.table import build_compas_table, label_summary
from rudikit.data.sources import SourceError
from rudikit.reports.run_report import write_run_report_and_cards
from rudikit.run.develop import run_project
from rudikit.store import tables as t
from rudikit.store.engine import open_store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "compas"


# The header of ProPublica's people table (relational_tables/people.csv, compas.db people).
PEOPLE_HEADER = [
    "id", "name", "first", "last", "sex", "race", "dob", "age", "age_cat", "juv_fel_count",
    "juv_misd_count", "juv_other_count", "compas_screening_date", "decile_score", "score_text",
    "violent_recid", "priors_count", "days_b_screening_arrest", "c_jail_in", "c_jail_out",
    "c_case_number", "c_days_from_compas", "c_arrest_date", "c_offense_date", "c_charge_degree",
    "c_charge_desc", "is_recid", "num_r_cases", "r_case_number", "r_charge_degree",
    "r_days_from_arrest", "r_offense_date", "r_charge_desc", "r_jail_in", "r_jail_out",
    "is_violent_recid", "num_vr_cases", "vr_case_number", "vr_charge_degree", "vr_offense_date",
    "vr_charge_desc",
]
JAIL_HEADER = ["id", "first", "last", "dob", "in_custody", "out_custody", "person_id"]
PRISON_HEADER = ["id", "name", "first", "middle", "last", "dob", "in_custody", "out_custody",
                 "person_id"]
DAY0 = pd.Timestamp("2013-03-01")


def day(n: int) -> str:
    """A date ``n`` days after DAY0, written as ProPublica's relational tables write it."""
    return (DAY0 + pd.Timedelta(days=n)).strftime("%Y-%m-%d %H:%M:%S.%f")


def person(pid: int, **values: object) -> dict[str, object]:
    """A people row: arrested on DAY0 for a third-degree felony, screened the next day."""
    row: dict[str, object] = dict.fromkeys(PEOPLE_HEADER, "")
    row.update({
        "id": pid, "name": f"first{pid} last{pid}", "first": f"first{pid}", "last": f"last{pid}",
        "sex": "Male", "race": "Caucasian", "dob": "1990-01-15 00:00:00.000000",
        "juv_fel_count": 0, "juv_misd_count": 0, "juv_other_count": 0, "priors_count": 1,
        "compas_screening_date": day(1), "decile_score": 5, "c_case_number": f"13{pid:06d}CF10A",
        "c_offense_date": day(0), "c_charge_degree": "(F3)",
        "c_charge_desc": "Grand Theft in the 3rd Degree", "is_recid": 0,
    })
    row.update(values)
    return row


def offence(prefix: str, days: int, degree: str, pid: int) -> dict[str, object]:
    return {f"{prefix}_offense_date": day(days), f"{prefix}_charge_degree": degree,
            f"{prefix}_case_number": f"15{pid:06d}{prefix.upper()}"}


def stay(pid: int, start: str, end: str, header: list[str]) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(header, "")
    row.update({"first": f"first{pid}", "last": f"last{pid}", "dob": "1990-01-15 00:00:00.000000",
                "in_custody": start, "out_custody": end, "person_id": pid})
    return row


def write_csv_layout(folder: Path, people: list[dict], jail: list[dict] = (),
                     prison: list[dict] = ()) -> Path:
    tables = folder / "relational_tables"
    tables.mkdir(parents=True, exist_ok=True)
    for name, rows, header in (("people", people, PEOPLE_HEADER),
                               ("jailhistory", jail, JAIL_HEADER),
                               ("prisonhistory", prison, PRISON_HEADER)):
        frame = pd.DataFrame(list(rows), columns=header)
        if name != "people":
            frame["id"] = range(1, len(frame) + 1)
        frame.to_csv(tables / f"{name}.csv", index=False)
    (tables / "summary.csv").write_text("id,first,last,person_id\n")
    return folder


# --- Hand-made people ------------------------------------------------------------------------

# person id -> what happens after the DAY0 case; screened on day 1 unless said otherwise, and
# the label year counts from the screening (days 2..366 after DAY0)
LABEL_PEOPLE = [
    person(1, **offence("r", 364, "(F3)", 1)),                     # felony on day 364 -> 1
    person(2, **offence("r", 367, "(F3)", 2)),                     # 366 days after screening -> 0
    person(3, **offence("r", 100, "(M1)", 3)),                     # misdemeanour -> 0
    person(4),                                                     # prison on day 200 -> excluded
    person(5, **offence("r", 50, "(F2)", 5)),                      # felony, then prison on day 120
    person(6, c_offense_date=day(600), compas_screening_date=day(601)),  # too late: censored
    person(7, **offence("r", 30, "(M1)", 7), **offence("vr", 300, "(F3)", 7)),  # violent felony
    person(8, **offence("r", 366, "(F3)", 8)),                     # 365 days after screening -> 1
    # screened 45 days after the offence; a felony 355 days after the screening (400 after the
    # offence) is inside its year
    person(9, compas_screening_date=day(45), **offence("r", 400, "(F3)", 9)),
    person(10, c_offense_date="", c_case_number="", c_charge_degree="", c_charge_desc=""),
    person(11, c_offense_date="", c_arrest_date=day(10), **offence("r", 200, "(F3)", 11)),
    person(12, **offence("r", 0, "(F3)", 12)),                     # before the screening: 0
    person(99, **offence("r", 900, "(M1)", 99)),                   # last offence: the data end
]
LABEL_PRISON = [stay(4, day(200), day(400), PRISON_HEADER),
                stay(5, day(120), day(300), PRISON_HEADER)]


@pytest.fixture
def label_folder(tmp_path: Path) -> Path:
    return write_csv_layout(tmp_path / "compas", LABEL_PEOPLE, prison=LABEL_PRISON)


def by_person(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("person_id")


def same(a: object, b: object) -> bool:
    """Equal, or both missing (a feature with no stay or booking on file)."""
    return bool(pd.isna(a) and pd.isna(b)) or (not pd.isna(a) and not pd.isna(b) and a == b)


def test_felony_label_window_exclusions_and_censoring(label_folder: Path) -> None:
    full = by_person(build_compas_table(label_folder, keep_unlabelled=True))
    status, label = full["label_status"], full["felony_365"]
    assert full.attrs["end_date"] == DAY0 + pd.Timedelta(days=900)
    assert label[1] == 1 and label[2] == 0  # 363 vs 366 days after the screening
    assert label[8] == 1  # day 365 after the screening still counts
    assert label[3] == 0  # a misdemeanour within the year is not a felony
    assert label[7] == 1  # the first new offence is a misdemeanour, the violent one a felony
    assert label[12] == 0  # an offence on the case day, before the screening, is not later
    assert status[4] == "prison" and pd.isna(label[4])
    assert status[5] == "prison" and pd.isna(label[5])  # the guide's rule: any prison term
    assert status[6] == "censored" and pd.isna(label[6])  # 300 days of follow-up < 365
    assert status[9] == "labelled" and label[9] == 1  # the year counts from the screening
    assert status[10] == "no_case" and pd.isna(label[10])
    assert full.loc[11, "case_date"] == DAY0 + pd.Timedelta(days=10)
    # screened (day 1) before its arrest date: the trigger is never before the case
    assert full.loc[11, "case_date_source"] == "arrest" and label[11] == 1  # 190 days later
    assert full.loc[1, "case_date_source"] == "offence"

    table = build_compas_table(label_folder)  # the default drops unlabelled rows
    assert sorted(table["person_id"]) == [1, 2, 3, 7, 8, 9, 11, 12, 99]
    assert table["felony_365"].notna().all() and (table["label_status"] == "labelled").all()
    summary = label_summary(full)
    assert summary["labelled"] == 9 and summary["positives"] == 5
    assert summary["status"]["prison"] == 2


def test_prison_rule_variants_and_explicit_end_date(label_folder: Path) -> None:
    before = by_person(build_compas_table(
        label_folder, prison_rule="exclude_before_felony", keep_unlabelled=True))
    assert before.loc[5, "felony_365"] == 1  # felony on day 50 came before prison on day 120
    assert before.loc[4, "label_status"] == "prison"
    kept = by_person(build_compas_table(label_folder, prison_rule="keep",
                                               keep_unlabelled=True))
    assert kept.loc[4, "felony_365"] == 0 and kept.loc[5, "felony_365"] == 1
    early = by_person(build_compas_table(label_folder, end_date="2014-03-05",
                                                keep_unlabelled=True))
    assert early.loc[1, "label_status"] == "labelled"  # screened 2013-03-02 + 365 days <= end
    assert early.loc[11, "label_status"] == "censored"  # 2013-03-11 + 365 days > end
    gapped = by_person(build_compas_table(label_folder, max_screening_gap_days=30,
                                                 keep_unlabelled=True))
    assert gapped.loc[9, "label_status"] == "screening_gap" and pd.isna(gapped.loc[9, "felony_365"])
    assert gapped.loc[1, "label_status"] == "labelled"
    with pytest.raises(ValueError, match="prison_rule"):
        build_compas_table(label_folder, prison_rule="never")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="label must be"):
        build_compas_table(label_folder, label="felony")  # type: ignore[arg-type]


def test_a_bad_source_option_names_the_source_and_option_and_stores_nothing(
        label_folder: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((EXAMPLE / "rudi.yaml").read_text(encoding="utf-8"))
    config["data"]["sources"][0].update(path=str(label_folder),
                                        options={"max_screening_gap_days": "thirty"})
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(SourceError, match=r"data\.sources\[0\]: .*max_screening_gap_days must "
                                          r"be a whole number of days >= 0, not 'thirty'"):
        run_project(folder, write_report=write_run_report_and_cards)
    with open_store(None, folder).connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.runs)).scalar() == 0


HISTORY_PID = 20
EARLIER_JAIL = [
    stay(HISTORY_PID, "2012-12-01 08:00:00.000000", "2012-12-11 08:00:00.000000", JAIL_HEADER),
    stay(HISTORY_PID, "2013-02-20 10:00:00.000000", "2013-02-22 22:00:00.000000", JAIL_HEADER),
]
EARLIER_PRISON = [stay(HISTORY_PID, "2008-01-01 00:00:00.000000", "2011-01-01 00:00:00.000000",
                       PRISON_HEADER)]
LATER_JAIL = [
    stay(HISTORY_PID, "2013-03-01 06:00:00.000000", "2013-03-03 06:00:00.000000", JAIL_HEADER),
    stay(HISTORY_PID, "2013-05-01 06:00:00.000000", "2013-06-01 06:00:00.000000", JAIL_HEADER),
]
# Starts on day 457, after the labelling year, so the case keeps its label.
LATER_PRISON = [stay(HISTORY_PID, "2014-06-01 00:00:00.000000", "2020-01-01 00:00:00.000000",
                     PRISON_HEADER)]


def history_table(folder: Path, later: bool) -> pd.DataFrame:
    # screened on the case day: the LATER stays start on or after it
    people = [person(HISTORY_PID, compas_screening_date=day(0)),
              person(99, **offence("r", 900, "(M1)", 99))]
    write_csv_layout(folder, people, jail=EARLIER_JAIL + (LATER_JAIL if later else []),
                     prison=EARLIER_PRISON + (LATER_PRISON if later else []))
    return by_person(build_compas_table(folder))


def test_custody_history_is_hand_computed_and_ignores_later_stays(tmp_path: Path) -> None:
    row = history_table(tmp_path / "with_later", later=True).loc[HISTORY_PID]
    # Jail: released 2012-12-11 (80 days before 2013-03-01) after 10 days, and 2013-02-22
    # (7 days before) after 2.5 days. Prison: 2008-01-01..2011-01-01 = 1096 days, released
    # 790 days before the case (365 + 366 + 59).
    assert row["jail_count"] == 2
    assert row["jail_days"] == pytest.approx(12.5)
    assert row["jail_recency"] == pytest.approx(0.5 ** (80 / 365) + 0.5 ** (7 / 365), abs=1e-6)
    assert row["prison_count"] == 1
    assert row["prison_days"] == pytest.approx(1096)
    assert row["prison_recency"] == pytest.approx(0.5 ** (790 / 365), abs=1e-6)
    assert row["age"] == 23  # born 1990-01-15
    # windows: jail releases 7 and 80 days before, prison 790 days before
    assert [row[f"jail_released_{w}d"] for w in (30, 90, 365, 1095)] == [1, 2, 2, 2]
    assert [row[f"prison_released_{w}d"] for w in (30, 90, 365, 1095)] == [0, 0, 0, 1]
    assert row["jail_days_since_release"] == 7 and row["prison_days_since_release"] == 790
    assert row["jail_days_since_first"] == 90  # 2012-12-01: 31 + 31 + 28 days
    assert row["prison_days_since_first"] == 366 + 365 + 365 + 365 + 366 + 59  # 2008-01-01
    assert row["age_first_custody"] == 17 and row["age_first_record"] == 17  # 2008, not yet 18
    assert row["priors_per_adult_year"] == pytest.approx(1 / 6, abs=1e-6)  # 1 prior at 23
    assert row["screening_delay_days"] == 0 and row["current_jail_days"] == 0  # not booked
    assert row["booked_before_screening"] == 0 and row["in_custody_at_screening"] == 0
    assert pd.isna(row["days_since_booking"])

    without = history_table(tmp_path / "without_later", later=False).loc[HISTORY_PID]
    features = feature_columns(without.to_frame().T)
    for col in features["numeric"] + features["categorical"]:
        assert same(row[col], without[col]), col


def stamp(n: int, hour: int = 0) -> str:
    """``day(n)`` at ``hour`` o'clock."""
    return (DAY0 + pd.Timedelta(days=n, hours=hour)).strftime("%Y-%m-%d %H:%M:%S.%f")


def booking_table(folder: Path, later: bool) -> pd.DataFrame:
    """Four people charged on DAY0 and screened on day 2: 30 booked on DAY0 and still held at
    the screening, 31 booked on DAY0 and released on day 1, 32 never booked, 33 booked on the
    screening day. ``later`` adds what only happened from the screening day on: 30's release
    comes 95 days later, new jail stays, a prison term after the label year and new offences."""
    release_30 = day(100) if later else day(5)
    people = [
        person(30, compas_screening_date=day(2), c_jail_in=stamp(0, 10), c_jail_out=release_30),
        person(31, compas_screening_date=day(2), c_jail_in=stamp(0, 10),
               c_jail_out=stamp(1, 8)),
        person(32, compas_screening_date=day(2),
               **(offence("r", 100, "(F3)", 32) if later else {})),
        person(33, compas_screening_date=day(2), c_jail_in=stamp(2, 9), c_jail_out=stamp(3, 9)),
        person(99, **offence("r", 900, "(M1)", 99)),
    ]
    jail = [stay(30, stamp(0, 10), release_30, JAIL_HEADER),
            stay(31, stamp(0, 10), stamp(1, 8), JAIL_HEADER),
            stay(33, stamp(2, 9), stamp(3, 9), JAIL_HEADER)]
    prison: list[dict] = []
    if later:
        jail += [stay(31, stamp(2, 20), stamp(4), JAIL_HEADER),
                 stay(32, stamp(50), stamp(60), JAIL_HEADER)]
        prison += [stay(30, day(400), day(800), PRISON_HEADER)]
    write_csv_layout(folder, people, jail=jail, prison=prison)
    return by_person(build_compas_table(folder))


def test_current_booking_is_what_the_screener_saw(tmp_path: Path) -> None:
    table = booking_table(tmp_path / "at_screening", later=False)
    held, released, free, same_day = (table.loc[pid] for pid in (30, 31, 32, 33))
    # 30: booked DAY0 10:00, still held when the screening day began (38 hours)
    assert held["booked_before_screening"] == 1 and held["in_custody_at_screening"] == 1
    assert held["days_since_booking"] == 2
    assert held["current_jail_days"] == pytest.approx(38 / 24, abs=1e-4)
    assert held["jail_count"] == 1 and held["jail_days"] == pytest.approx(38 / 24, abs=1e-4)
    assert held["jail_days_since_release"] == 0 and held["jail_recency"] == pytest.approx(1)
    # 31: released on day 1 at 08:00, before the screening day
    assert released["booked_before_screening"] == 1 and released["in_custody_at_screening"] == 0
    assert released["current_jail_days"] == pytest.approx(22 / 24, abs=1e-4)
    assert released["jail_count"] == 1 and released["jail_days_since_release"] == 1
    # 32: never booked; 33: booked on the screening day itself, which the features never use
    for row in (free, same_day):
        assert row["booked_before_screening"] == 0 and row["in_custody_at_screening"] == 0
        assert pd.isna(row["days_since_booking"]) and row["current_jail_days"] == 0
        assert row["jail_count"] == 0 and pd.isna(row["jail_days_since_release"])
    assert table.loc[30, "age"] == 23  # on the screening day

    later = booking_table(tmp_path / "later", later=True)
    assert later.loc[32, "felony_365"] == 1 and table.loc[32, "felony_365"] == 0
    features = feature_columns(later)
    for pid in (30, 31, 32, 33):
        for col in features["numeric"] + features["categorical"]:
            assert same(later.loc[pid, col], table.loc[pid, col]), (pid, col)


def test_trigger_is_the_screening_never_before_the_case() -> None:
    cases = pd.DataFrame({
        "case_date": pd.to_datetime(["2013-03-01", "2013-03-10", "2013-03-01"]),
        "screening_date": pd.to_datetime(["2013-03-02", "2013-03-01", None])})
    assert trigger_dates(cases).tolist() == list(pd.to_datetime(
        ["2013-03-02", "2013-03-10", "2013-03-01"]))
    assert trigger_dates(cases[["case_date"]]).equals(cases["case_date"])


def test_custody_history_cuts_a_stay_running_into_the_case_day() -> None:
    cases = pd.DataFrame({"person_id": [1], "case_date": [DAY0]})
    stays = pd.DataFrame({"person_id": [1, 1], "in_custody": [DAY0 - pd.Timedelta(days=2),
                                                              DAY0 - pd.Timedelta(days=30)],
                          "out_custody": [DAY0 + pd.Timedelta(days=5), pd.NaT]})
    out = custody_history(cases, stays, "jail").iloc[0]
    assert out["jail_count"] == 2
    assert out["jail_days"] == pytest.approx(32)  # both cut at the case day
    assert out["jail_recency"] == pytest.approx(2.0)  # "released" on the case day


def test_current_jail_days_stop_at_the_screening_day() -> None:
    """Only what the screener could know: time booked before the screening day began, never
    the later release."""
    stamp = pd.Timestamp
    cases = pd.DataFrame({
        "screening_date": [stamp("2013-03-02")] * 4,
        "current_jail_in": [stamp("2013-02-28 20:00"), stamp("2013-02-28 20:00"), pd.NaT,
                            stamp("2013-03-01 12:00")],
        "current_jail_out": [stamp("2013-03-05 09:00"), stamp("2013-03-01 08:00"), pd.NaT,
                             pd.NaT]})
    assert current_jail_days(cases).tolist() == pytest.approx([28 / 24, 0.5, 0, 0.5],
                                                                     abs=1e-4)


def test_history_features_first_record_and_pace() -> None:
    cases = pd.DataFrame({
        "person_id": [1, 2, 3], "case_date": pd.to_datetime(["2013-03-01"] * 3),
        "screening_date": pd.to_datetime(["2013-03-01", "2013-03-11", "2013-03-02"]),
        "dob": pd.to_datetime(["1990-06-01", "1980-01-01", "1995-01-01"]),
        "juv_fel_count": [0, 1, 0], "juv_misd_count": [0, 0, 0], "juv_other_count": [0, 0, 0],
        "priors_count": [3, 10, 0], "current_jail_in": pd.NaT, "current_jail_out": pd.NaT})
    prison = pd.DataFrame({"person_id": [1, 2], "in_custody": pd.to_datetime(
        ["2010-05-31", "2001-01-01"]), "out_custody": pd.to_datetime(["2011-01-01",
                                                                      "2003-01-01"])})
    jail = pd.DataFrame({"person_id": [3], "in_custody": pd.to_datetime(["2014-01-01"]),
                         "out_custody": pd.to_datetime(["2014-01-02"])})  # after the case
    age = age_at(cases["dob"], cases["case_date"])  # 22, 33, 18
    out = history_features(cases, jail, prison, age)
    assert out["age_first_custody"].tolist()[:2] == [19, 21]  # the day before turning 20
    assert pd.isna(out["age_first_custody"].iloc[2])  # the only stay came later
    # a juvenile record means a first offence before 18, whatever custody says; none: age now
    assert out["age_first_record"].tolist() == [19, 17, 18]
    assert out["priors_per_adult_year"].tolist() == pytest.approx([3 / 5, 10 / 16, 0])
    assert out["screening_delay_days"].tolist() == [0, 10, 1]
    assert out["jail_count"].tolist() == [0, 0, 0]
    assert out["jail_days_since_release"].isna().all()


def test_age_at_counts_whole_years() -> None:
    dob = pd.Series(pd.to_datetime(["1990-03-01", "1990-03-02", "2000-02-29"]))
    when = pd.Series(pd.to_datetime(["2013-03-01", "2013-03-01", "2013-02-28"]))
    assert age_at(dob, when).tolist() == [23, 22, 12]


def test_tokens_follow_stop_words_and_min_count() -> None:
    descriptions = (["Grand Theft in the 3rd Degree"] * 5 + ["Battery"] * 4 + ["BATTERY"]
                    + ["Trespass Structure/Conveyance"] * 4 + ["Possess Cannabis/20 Grams Or Less"]
                    * 6 + ["Aggravated Assault W/Firearm"] * 3)
    vocab = charge_vocabulary(descriptions)
    assert vocab == sorted(vocab)
    assert {"grand", "theft", "rd", "degree", "possess", "cannabis", "grams", "less"} <= set(vocab)
    assert "battery" in vocab  # four "Battery" and one "BATTERY": five, case-insensitively
    assert "trespass" not in vocab and "firearm" not in vocab  # seen 4 and 3 times
    assert not {"in", "the", "or"} & set(vocab)  # stop words, though seen 5+ times
    assert "w" not in vocab and all(len(w) > 1 for w in vocab)
    assert "trespass" in charge_vocabulary(descriptions, min_count=4)
    assert charge_tokens("Poss of Cocaine W/Intent") == ["poss", "cocaine", "intent"]
    assert charge_tokens(None) == [] and charge_tokens(np.nan) == []

    new = pd.Series(["Petit Theft", "Battery on Law Enforc Officer", None], index=[7, 8, 9])
    tokens = token_features(new, vocab)
    assert list(tokens.columns) == [f"token_{w}" for w in vocab]
    assert list(tokens.index) == [7, 8, 9]
    assert tokens.loc[7].sum() == 1 and tokens.loc[7, "token_theft"] == 1  # "petit" unseen
    assert tokens.loc[8, "token_battery"] == 1 and tokens.loc[9].sum() == 0


def test_vocabulary_and_feature_columns(label_folder: Path) -> None:
    table = build_compas_table(label_folder, min_token_count=1)
    vocab = table.attrs["vocabulary"]
    assert "theft" in vocab and "the" not in vocab
    fixed = build_compas_table(label_folder, vocabulary=["theft", "battery"])
    assert [c for c in fixed.columns if c.startswith("token_")] == ["token_theft",
                                                                       "token_battery"]
    assert (fixed["token_theft"] == 1).all() and (fixed["token_battery"] == 0).all()

    cols = feature_columns(table)
    features = cols["categorical"] + cols["numeric"]
    assert set(features) <= set(table.columns)
    assert "race" not in features and "sex" in cols["categorical"]
    assert not {"decile_score", "person_id", "case_date", "felony_365"} & set(features)
    assert "race" in feature_columns(table, with_race=True)["categorical"]
    assert feature_columns(vocabulary=["theft"])["numeric"][-1] == "token_theft"
    assert not {"name", "first", "last", "dob"} & set(table.columns)  # no identifying text


# --- compas.db -------------------------------------------------------------------------------


def write_db(path: Path) -> Path:
    """A tiny compas.db: person 1's felony is only in ``charge`` (after a misdemeanour); person
    2's felony charges belong to the current case or to an old one; person 99's offence marks
    the end of the data."""
    people = pd.DataFrame([
        person(1, **offence("r", 30, "(M1)", 1)),
        person(2, c_charge_desc="Possession of Cocaine"),
        person(99, **offence("r", 900, "(M1)", 99)),
    ], columns=PEOPLE_HEADER)
    charge = pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6, 7],
        "case_number": ["13000001CF10A", "13000001CF10A", "15000001R", "15000001Y",
                        "13000002CF10A", "15000099R", "10000002CF10A"],
        "offense_date": [day(0), day(0), day(30), day(200), day(5), day(900), day(-1000)],
        "charge_number": [1, 2, 1, 1, 2, 1, 1],
        "charge_degree": ["(F3)", "(M1)", "(M1)", "(F2)", "(F3)", "(M1)", "(F3)"],
        "charge": ["Grand Theft in the 3rd Degree", "Resist/Obstruct W/O Violence", "Battery",
                   "Burglary Unoccupied Dwelling", "Possession of Cocaine", "Petit Theft",
                   "Burglary Unoccupied Dwelling"],
        "date_charge_filed": [day(1), day(1), day(31), day(201), day(6), day(901), day(-999)],
        "filing_agency": ["BSO"] * 7, "name": ["x"] * 7, "days_since_compas": [0] * 7,
        "statute": [""] * 7, "person_id": [1, 1, 1, 1, 2, 99, 2],
    })
    # Person 2 is arrested on day 100 for an old (2010) felony: an arrest, not a new offence.
    casearrest = pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6], "name": ["x"] * 6,
        "case_number": ["13000001CF10A", "15000001R", "15000001Y", "13000002CF10A", "15000099R",
                        "10000002CF10A"],
        "arrest_id": [1, 2, 3, 4, 5, 6],
        "arrest_date": [day(0), day(30), day(200), day(0), day(900), day(100)],
        "charge_degree": ["(F3)", "(M1)", "(F2)", "(F3)", "(M1)", "(F3)"],
        "days_since_compas_arrest": [0, 29, 199, 0, 899, 99], "person_id": [1, 1, 1, 2, 99, 2],
    })
    jail = pd.DataFrame([stay(1, day(-100), day(-90), JAIL_HEADER)], columns=JAIL_HEADER)
    jail["id"] = [1]
    prison = pd.DataFrame([stay(2, "2010-01-01 00:00:00.000000", "2011-01-01 00:00:00.000000",
                                PRISON_HEADER)], columns=PRISON_HEADER)
    prison["id"] = [1]
    assessments = pd.DataFrame({
        "id": [1, 2], "person_id": [1, 1], "type_of_assessment": ["Risk of Recidivism",
                                                                    "Risk of Violence"],
        "raw_score": [-1.2, -2.1], "decile_score": [5, 3], "score_text": ["Medium", "Low"],
        "screening_date": [day(1), day(1)],
    })
    with sqlite3.connect(path) as con:
        for name, frame in (("people", people), ("charge", charge), ("casearrest", casearrest),
                            ("jailhistory", jail), ("prisonhistory", prison),
                            ("compas", assessments)):
            frame.to_sql(name, con, index=False)
        con.execute("CREATE TABLE summary (id INTEGER, first TEXT, last TEXT, person_id INTEGER)")
    return path


def test_compas_db_layout_uses_every_charge(tmp_path: Path) -> None:
    db = write_db(tmp_path / "compas.db")
    data = load_compas(db)
    assert data.layout == "sqlite" and data.files == [db]
    assert len(data.charges) == 7 and len(data.arrests) == 6 and len(data.assessments) == 2
    assert data.summary is not None and data.summary.empty
    assert pd.api.types.is_datetime64_any_dtype(data.charges["offense_date"])
    assert pd.api.types.is_datetime64_any_dtype(data.jail["in_custody"])
    assert data.people["person_id"].tolist() == [1, 2, 99]
    assert load_compas(tmp_path).layout == "sqlite"  # a folder holding only compas.db

    table = by_person(build_compas_table(data, keep_unlabelled=True))
    assert table.attrs["end_date"] == DAY0 + pd.Timedelta(days=900)
    assert table.loc[1, "felony_365"] == 1  # the (F2) on day 200 is only in `charge`
    assert table.loc[2, "felony_365"] == 0  # day 5: the current case; day 100: an old case
    assert table.loc[99, "felony_365"] == 0
    assert "Resist/Obstruct" in table.loc[1, "charge_desc"]  # every current charge is read
    assert table.loc[1, "jail_count"] == 1 and table.loc[2, "prison_count"] == 1

    # The public CSV layout of the same people cannot see person 1's felony.
    folder = write_csv_layout(tmp_path / "csv", load_compas(db).people.rename(
        columns={"person_id": "id"}).assign(
        dob=lambda f: f["dob"].dt.strftime("%Y-%m-%d")).to_dict("records"))
    assert by_person(build_compas_table(folder)).loc[1, "felony_365"] == 0

    two = by_person(build_compas_table(db, label="two_year_recid", keep_unlabelled=True))
    assert two.loc[1, "two_year_recid"] == 1  # new offence 29 days after the screening
    assert two.loc[2, "two_year_recid"] == 0
    assert two.loc[99, "label_status"] == "labelled"  # offence at day 900 > 730 days: a 0
    assert two.loc[99, "two_year_recid"] == 0


def test_db_without_the_required_tables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE people (id INTEGER)")
    with pytest.raises(CompasDataError, match="jailhistory"):
        load_compas_db(path)
    with pytest.raises(CompasDataError, match="not found"):
        load_compas(tmp_path / "missing")


def test_degree_classes() -> None:
    raw = pd.Series(["(F3)", "F", "(M1)", "(MO3)", "M", "(CO3)", "(0)", "(NI0)", None, ""])
    assert degree_class(raw).tolist()[:8] == ["F", "F", "M", "M", "M", "O", "O", "O"]
    assert degree_class(raw).isna().tolist()[8:] == [True, True]
    assert degree_detail(raw).tolist()[:2] == ["F3", "F"]


# --- ProPublica's files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(shared_data: SharedData) -> CompasData:
    shared_data / f"compas/{FILES['people']}"  # noqa: B018 - present, or skip/fail
    return load_compas(shared_data.root)


def test_real_files_row_counts(real: CompasData) -> None:
    counts = {name: len(read_compas_csv(real.location / file))
              for name, file in FILES.items()}
    assert counts == {"scores": 11_757, "two_years": 7_214, "two_years_violent": 4_743,
                      "people": 11_757, "jail": 22_111, "prison": 4_945, "summary": 0}
    assert len(real.people) == 11_757 and len(real.jail) == 22_111
    assert pd.api.types.is_datetime64_any_dtype(real.people["c_offense_date"])
    assert real.people["person_id"].dtype == "Int64"


def test_real_person_ids_link_the_same_person(real: CompasData) -> None:
    checks = check_person_ids(real)
    assert set(checks) == {f"{t}_{k}" for t in ("jail", "prison", "two_years")
                           for k in ("known", "same_person")}
    assert all(share >= 0.99 for share in checks.values()), checks


def test_real_felony_365_table(real: CompasData) -> None:
    table = build_compas_table(real, keep_unlabelled=True)
    assert table.attrs["end_date"] == pd.Timestamp("2016-03-29")
    assert table["person_id"].is_unique and len(table) == 11_757
    summary = label_summary(table)
    assert 8_000 <= summary["labelled"] <= 11_000, summary
    assert 0.05 <= summary["base_rate"] <= 0.4, summary
    assert summary["status"].get("censored", 0) == 0  # every case has 15+ months of follow-up
    assert "screening_gap" not in summary["status"]  # ProPublica's 30-day filter is optional
    labelled = table[table["label_status"] == "labelled"]
    cols = feature_columns(labelled)
    assert set(cols["numeric"]) <= set(labelled.columns)
    # missing means "no stay on file before the case", nothing else
    missing = labelled[cols["numeric"]].isna().any()
    assert set(missing[missing].index) <= {"age_first_custody", "jail_days_since_release",
                                           "jail_days_since_first", "prison_days_since_release",
                                           "prison_days_since_first", "days_since_booking"}
    assert (labelled["days_since_booking"].isna()
            == (labelled["booked_before_screening"] == 0)).all()
    for prefix in ("jail", "prison"):
        no_stay = labelled[f"{prefix}_count"] == 0
        assert (labelled[f"{prefix}_days_since_release"].isna() == no_stay).all()
    assert (labelled["current_jail_days"] >= 0).all()
    assert (labelled["screening_delay_days"] >= 0).all()  # never screened before the case
    gapped = build_compas_table(real, max_screening_gap_days=30)
    assert gapped["screening_delay_days"].between(0, 30).all() and len(gapped) < len(labelled)
    assert 100 <= len(table.attrs["vocabulary"]) <= 1_000
    scored = labelled["decile_score"].dropna()
    assert scored.between(1, 10).all() and len(labelled) - len(scored) < 20  # -1: no score


def test_real_new_offences_are_recorded_after_the_screening(real: CompasData) -> None:
    """Why felony_365 counts from the screening: ProPublica's new offences (r_*, vr_*) all fall
    after the screening day, never between the offence and the screening."""
    p = real.people
    for prefix in ("r", "vr"):
        days = (p[f"{prefix}_offense_date"] - p["compas_screening_date"]).dt.days.dropna()
        assert len(days) > 800 and days.min() >= 1, prefix
    case = p["c_offense_date"].fillna(p["c_arrest_date"])
    assert ((p["compas_screening_date"] - case).dt.days.dropna() >= 0).all()


def test_real_two_year_recid_table(real: CompasData) -> None:
    table = build_compas_table(real, label="two_year_recid")
    assert len(table) == 7_214 and table["person_id"].is_unique
    assert table["two_year_recid"].mean() == pytest.approx(3_251 / 7_214)
    assert set(table["race"].unique()) >= {"African-American", "Caucasian", "Hispanic"}


def test_real_two_year_derivation_agrees_with_propublica(real: CompasData) -> None:
    """compas.db has no two-year file, so the label is derived there; on the public files the
    derivation must agree with ProPublica's own label."""
    theirs = build_compas_table(real, label="two_year_recid").set_index("person_id")
    ours = build_compas_table(replace(real, two_years=None), label="two_year_recid")
    both = theirs[["two_year_recid"]].join(
        ours.set_index("person_id")["two_year_recid"].rename("derived"), how="inner")
    assert len(both) >= 7_000
    assert (both["two_year_recid"] == both["derived"]).mean() >= 0.98
