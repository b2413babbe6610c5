"""CPDB loading and officer linking: hand-made profiles for the rules, the real files for rates."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from rudikit.data.cpdb.files import FILES, CPDBError
from rudikit.data.cpdb.linking import link_frame, link_profiles, normalise_name
from rudikit.data.cpdb.tables import CPDB, linking_rates, load_cpdb


def _frame(rows: list[dict]) -> pd.DataFrame:
    data = pd.DataFrame(rows)
    for col in ("gender", "middle_initial"):
        if col not in data:
            data[col] = None
    return link_frame(pd.Series(data["id"], dtype="Int64"), data["first"], data["last"],
                      data["appointed"], data.get("birth", pd.Series([None] * len(data))),
                      data["gender"], data["middle_initial"])


ROSTER = [
    {"id": 1, "first": "JOHN", "last": "O'BRIEN", "appointed": "2000-01-03", "birth": 1970,
     "gender": "MALE", "middle_initial": "P"},
    # Namesakes appointed the same day: only the birth year (or a star) tells them apart.
    {"id": 2, "first": "MARIA", "last": "GARCIA", "appointed": "2005-06-01", "birth": 1980,
     "gender": "FEMALE"},
    {"id": 3, "first": "MARIA", "last": "GARCIA", "appointed": "2005-06-01", "birth": 1983,
     "gender": "FEMALE"},
    {"id": 4, "first": "ROBERT", "last": "SMITH JR", "appointed": "1995-03-15", "birth": 1968,
     "gender": "MALE"},
    {"id": 5, "first": "ANNA", "last": "KOWALSKI", "appointed": "2010-09-01", "birth": 1985,
     "gender": "FEMALE"},
    {"id": 6, "first": "DAVID", "last": "LEE", "appointed": "2001-02-01", "birth": 1975,
     "gender": "MALE"},
]


def test_normalise_name_ignores_case_punctuation_and_suffixes() -> None:
    names = pd.Series(["O'Brien", "o brien", "OBRIEN", "Smith Jr.", "PINTORJR", "Mc Cabe",
                       "UNKNOWN", None, "Kriv"])
    out = normalise_name(names).tolist()
    assert out[:3] == ["OBRIEN"] * 3
    assert out[3] == "SMITH" and out[4] == "PINTOR" and out[5] == "MCCABE"
    assert pd.isna(out[6]) and pd.isna(out[7])
    assert out[8] == "KRIV"  # too short to be a name plus a suffix


def test_exact_match_links_and_names_are_not_returned() -> None:
    source = _frame([{"id": 10, "first": "john", "last": "O BRIEN", "appointed": "2000-01-03",
                      "birth": 1970}])
    links = link_profiles(source, _frame(ROSTER))
    row = links.iloc[0]
    assert row["status"] == "linked" and row["officer_uid"] == 1
    assert row["tier"] == "name+appointed+birth"
    assert not {"first", "last", "first_name", "last_name"} & set(links.columns)


def test_namesakes_on_the_same_day_are_ambiguous_without_more_evidence() -> None:
    source = _frame([{"id": 10, "first": "MARIA", "last": "GARCIA", "appointed": "2005-06-01"}])
    links = link_profiles(source, _frame(ROSTER))
    assert links.loc[0, "status"] == "ambiguous"
    assert pd.isna(links.loc[0, "officer_uid"])


def test_birth_year_tells_namesakes_apart() -> None:
    source = _frame([{"id": 10, "first": "MARIA", "last": "GARCIA", "appointed": "2005-06-01",
                      "birth": 1983}])
    links = link_profiles(source, _frame(ROSTER))
    assert links.loc[0, "status"] == "linked" and links.loc[0, "officer_uid"] == 3


def test_star_breaks_the_tie_when_birth_year_is_missing() -> None:
    source = _frame([{"id": 10, "first": "MARIA", "last": "GARCIA", "appointed": "2005-06-01"}])
    stars_src = pd.DataFrame({"id": pd.array([10], dtype="Int64"), "star": ["12345"]})
    stars_ref = pd.DataFrame({"id": pd.array([2, 3], dtype="Int64"), "star": ["12345", "777"]})
    links = link_profiles(source, _frame(ROSTER), source_stars=stars_src,
                          reference_stars=stars_ref)
    assert links.loc[0, "status"] == "linked" and links.loc[0, "officer_uid"] == 2
    assert "star_match" in links.loc[0, "tier"]


def test_approximate_birth_year_breaks_the_tie() -> None:
    source = _frame([{"id": 10, "first": "MARIA", "last": "GARCIA", "appointed": "2005-06-01"}])
    approx = pd.Series([1982.5], index=pd.Index([10]))
    links = link_profiles(source, _frame(ROSTER), approx_birth=approx)
    assert links.loc[0, "officer_uid"] == 3


def test_fallbacks_birth_year_off_by_one_suffix_and_changed_last_name() -> None:
    source = _frame([
        {"id": 10, "first": "DAVID", "last": "LEE", "appointed": "2001-02-01", "birth": 1976},
        {"id": 11, "first": "ROBERT", "last": "SMITH", "appointed": "1995-03-15", "birth": 1968},
        {"id": 12, "first": "ANNA", "last": "NOWAK", "appointed": "2010-09-01", "birth": 1985,
         "gender": "FEMALE"},
        {"id": 13, "first": "NOBODY", "last": "KNOWN", "appointed": "2001-02-01", "birth": 1975},
    ])
    links = link_profiles(source, _frame(ROSTER)).set_index("id")
    assert links.loc[10, "officer_uid"] == 6 and links.loc[10, "tier"] == "name+appointed+birth±1"
    assert links.loc[11, "officer_uid"] == 4
    assert links.loc[12, "officer_uid"] == 5 and "last name changed" in links.loc[12, "tier"]
    assert links.loc[13, "status"] == "unmatched"


def test_changed_last_name_needs_matching_gender() -> None:
    source = _frame([{"id": 12, "first": "ANNA", "last": "NOWAK", "appointed": "2010-09-01",
                      "birth": 1985, "gender": "MALE"}])
    assert link_profiles(source, _frame(ROSTER)).loc[0, "status"] == "unmatched"


def test_two_roster_officers_fitting_a_fallback_is_ambiguous() -> None:
    roster = ROSTER + [{"id": 7, "first": "DAVID", "last": "LEE", "appointed": "2001-02-01",
                        "birth": 1977, "gender": "MALE"}]
    source = _frame([{"id": 10, "first": "DAVID", "last": "LEE", "appointed": "2001-02-01",
                      "birth": 1976}])
    links = link_profiles(source, _frame(roster))
    assert links.loc[0, "status"] == "ambiguous"


# --- The real files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpdb(cpdb_loaded: CPDB) -> CPDB:
    """The real files (how long loading takes is measured by bench/cpdb_load.py)."""
    return cpdb_loaded


def test_real_linking_rates(cpdb: CPDB) -> None:
    rates = linking_rates(cpdb).set_index("dataset")
    assert rates.loc["use_of_force", "rate"] >= 0.95
    assert rates.loc["use_of_force", "row_rate"] >= 0.95
    assert rates.loc["complaints", "rate"] >= 0.80
    assert rates.loc["complaints", "eligible_rate"] >= 0.95
    assert rates.loc["unit_history", "eligible_rate"] >= 0.95
    # About a quarter of complaint rows name no officer at all, so row linking stays lower.
    assert 0.6 <= rates.loc["complaints", "row_rate"] <= 0.8
    for name in ("use_of_force", "complaints", "unit_history"):
        row = rates.loc[name]
        assert row["linked"] + row["ambiguous"] + row["unmatched"] == row["profiles"]


def test_real_tables_are_keyed_by_officer_and_hold_no_names(cpdb: CPDB) -> None:
    for name, table in cpdb.tables().items():
        assert "officer_uid" in table.columns, name
        assert table["officer_uid"].notna().all(), name
        assert not [c for c in table.columns if "name" in c.lower()], name
    assert cpdb.officers["officer_uid"].is_unique
    assert set(cpdb.complaints["officer_uid"]) <= set(cpdb.officers["officer_uid"])
    assert set(cpdb.use_of_force["officer_uid"]) <= set(cpdb.officers["officer_uid"])
    assert cpdb.use_of_force["trr_id"].is_unique
    assert cpdb.data_end["use_of_force"] == pd.Timestamp("2016-04-12")
    assert cpdb.complaints["final_finding"].notna().all()
    assert {"sustained", "not_sustained", "unfounded"} <= set(cpdb.complaints["final_finding"])
    assert cpdb.use_of_force["any_injury"].mean() > 0.2


def test_damaged_files_are_named_not_a_traceback(tmp_path: Path) -> None:
    """Each file a real user might have broken gets an error that names it and the problem."""
    folder = tmp_path / "cpdb"
    folder.mkdir()
    roster = folder / FILES["roster"]
    with pytest.raises(CPDBError, match="no such folder"):
        load_cpdb(tmp_path / "nowhere")
    with pytest.raises(CPDBError, match=f"{roster}: CPDB file not found"):
        load_cpdb(folder)
    roster.write_bytes(b"")
    with pytest.raises(CPDBError, match="the file is empty"):
        load_cpdb(folder)
    roster.write_bytes(gzip.compress(b"UID,first_name\n1,ANNA\n")[:15])  # cut short
    with pytest.raises(CPDBError, match=f"{roster}: cannot read it .*damaged or not a gzipped"):
        load_cpdb(folder)
    roster.write_bytes(b"UID,first_name\n1,ANNA\n")  # not gzipped
    with pytest.raises(CPDBError, match="damaged or not a gzipped CSV"):
        load_cpdb(folder)
    roster.write_bytes(gzip.compress(b"UID,first_name\n1,ANNA\n"))  # another export
    with pytest.raises(CPDBError, match="has no column 'appointed_date'"):
        load_cpdb(folder)
