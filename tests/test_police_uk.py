"""Loading data.police.uk stop-and-search data: real archive files, the API CSV, bad rows."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd
import pytest

from rudikit.config import Source
from rudikit.data import police_uk
from rudikit.data.sources import SourceError, load_source
from rudikit.data.validation import clean_text_column, parse_by_distinct


def count_rows(path: Path) -> int:
    """Rows by the csv module, an independent reader (quoted fields may hold commas)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def test_every_real_archive_file_loads_with_its_row_count(shared_data: Path) -> None:
    files = sorted((shared_data / "stop_and_search").rglob("*-stop-and-search.csv"))
    assert len(files) == 21
    total = 0
    for path in files:
        frame, report = police_uk.read_archive_file(path)
        assert len(frame) == count_rows(path) == report.rows
        assert list(frame.columns) == list(police_uk.COLUMNS)
        assert (frame["force"] == police_uk.force_from_filename(path)).all()
        assert report.errors == []
        total += len(frame)
    assert total == 22_587


def test_archive_types_and_values(shared_data: Path) -> None:
    path = shared_data / "stop_and_search/2019-12/2019-12-essex-stop-and-search.csv"
    frame, _ = police_uk.read_archive_file(path)
    first = frame.iloc[0]
    assert first["datetime"] == pd.Timestamp("2019-12-01T00:01:00", tz="UTC")
    assert first["latitude"] == pytest.approx(51.770766)
    assert first["object_of_search"] == "Controlled drugs"
    assert bool(first["outcome_linked_to_object_of_search"]) is False
    assert str(frame["outcome_linked_to_object_of_search"].dtype) == "boolean"
    assert first["record_id"] == "2019-12-essex-stop-and-search.csv:2"


def test_real_api_csv_loads(shared_data: Path) -> None:
    path = shared_data / "stop_and_search_api/city-of-london/data_2024-01.csv"
    frame, report = police_uk.read_api_csv(path, "city-of-london")
    assert len(frame) == count_rows(path) == 695
    assert report.errors == []
    assert frame["street_id"].iloc[0] == "1490797"
    assert frame["removal_of_more_than_just_outer_clothing"].iloc[0] is False or not bool(
        frame["removal_of_more_than_just_outer_clothing"].iloc[0])


def test_api_json_records_with_nulls_and_nested_fields() -> None:
    records = [
        {"age_range": "18-24", "outcome": "Arrest", "involved_person": True, "gender": "Male",
         "self_defined_ethnicity": None, "legislation": "Misuse of Drugs Act 1971 (section 23)",
         "outcome_linked_to_object_of_search": True, "datetime": "2024-01-05T10:00:00+00:00",
         "removal_of_more_than_outer_clothing": None, "operation": None,
         "officer_defined_ethnicity": "Black", "type": "Person search", "operation_name": None,
         "object_of_search": "Controlled drugs",
         "outcome_object": {"id": "bu-arrest", "name": "Arrest"},
         "location": {"latitude": "51.51", "longitude": "-0.09",
                      "street": {"id": 1490797, "name": "On or near Dean'S Court"}}},
        {"age_range": None, "outcome": False, "involved_person": False, "gender": None,
         "datetime": "2024-01-06T01:00:00+00:00", "type": "Vehicle search", "location": None,
         "outcome_linked_to_object_of_search": None, "object_of_search": "Stolen goods"},
    ]
    frame, report = police_uk.read_api_json(records, "city-of-london", name="jan.json")
    assert report.errors == []
    assert frame["street_id"].tolist()[0] == "1490797"
    assert frame["latitude"].iloc[0] == pytest.approx(51.51)
    assert pd.isna(frame["latitude"].iloc[1]) and pd.isna(frame["gender"].iloc[1])
    assert pd.isna(frame["outcome"].iloc[1])  # "outcome": false means no outcome recorded
    assert bool(frame["outcome_linked_to_object_of_search"].iloc[0]) is True
    assert pd.isna(frame["outcome_linked_to_object_of_search"].iloc[1])


def test_api_json_with_a_malformed_nested_field_is_refused_naming_it() -> None:
    """A location that is not an object, or a coordinate given both flat and nested (the
    service reads a request with the same function, so it refuses these alike)."""
    base = {"type": "Person search", "datetime": "2024-01-05T10:00:00+00:00"}
    for record, message in [
            ({**base, "location": "On or near Dean'S Court"},
             "API record 1: location: expected an object or null, got str"),
            ({**base, "location": {"street": 7}},
             "API record 1: location.street: expected an object or null, got int"),
            ({**base, "latitude": "51.5", "location": {"latitude": "51.6"}},
             "API record 1: location.latitude: latitude is also given at the top level")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            police_uk.read_api_json([base, record], "city-of-london")


def test_bad_rows_are_reported_and_kept(tmp_path: Path) -> None:
    header = ",".join(police_uk.ARCHIVE_COLUMNS) + ",Extra column"
    good = ("Person search,2020-01-01T10:00:00+00:00,False,,51.5,-0.1,Male,18-24,x,White,"
            "PACE,Stolen goods,Arrest,True,False,a")
    bad_date = ("Person search,31/02/2020 10:00,False,,51.5,-0.1,Male,18-24,x,White,PACE,"
                "Stolen goods,Arrest,True,False,b")
    bad_coords = ("Person search,2020-01-02T10:00:00+00:00,maybe,,95.0,-0.1,Male,18-24,x,White,"
                  "PACE,Stolen goods,Arrest,True,False,c")
    abroad = ("Person search,2020-01-03T10:00:00+00:00,True,,40.4,-3.7,Male,18-24,x,White,"
              "PACE,Stolen goods,Arrest,True,False,d")
    path = tmp_path / "2020-01-testforce-stop-and-search.csv"
    path.write_text("\n".join([header, good, bad_date, bad_coords, abroad]) + "\n")
    frame, report = police_uk.read_archive_file(path)
    assert len(frame) == 4  # nothing dropped
    messages = [str(p) for p in report.problems]
    assert any("[Extra column]: unknown column" in m for m in messages)
    assert ("error: 2020-01-testforce-stop-and-search.csv row 3 [datetime]: unparseable date; "
            "set missing (value '31/02/2020 10:00')") in messages
    assert any("row 4 [latitude/longitude]: coordinates out of range" in m for m in messages)
    assert any("row 4 [part_of_a_policing_operation]: not true/false" in m for m in messages)
    assert any("warning" in m and "row 5" in m and "outside the UK" in m for m in messages)
    assert report.bad_rows == 2
    assert pd.isna(frame["datetime"].iloc[1])
    assert pd.isna(frame["latitude"].iloc[2])  # an impossible coordinate is blanked
    assert frame["latitude"].iloc[3] == pytest.approx(40.4)  # a merely odd one is kept


def test_quoted_newlines_padding_and_a_short_row_read_as_the_csv_module_reads_them(
        tmp_path: Path) -> None:
    """The fast (pyarrow) parser keeps a quoted newline; a file with a short row, which it
    refuses, is read by the C parser with the row's missing fields missing."""
    header = ",".join(police_uk.ARCHIVE_COLUMNS)
    quoted = ('Person search,2020-01-01T10:00:00+00:00,True,"Op\nName",51.5,-0.1, Male ,18-24,'
              "x,White,PACE,Stolen goods,Arrest,True,False")
    path = tmp_path / "2020-01-testforce-stop-and-search.csv"
    path.write_text(f"{header}\n{quoted}\n")
    frame, _ = police_uk.read_archive_file(path)
    rows = list(csv.reader(path.open(newline="")))
    assert frame["policing_operation"].tolist() == [rows[1][3]] == ["Op\nName"]
    assert frame["gender"].tolist() == [rows[1][6].strip()]
    path.write_text(f"{header}\n{quoted}\nVehicle search,2020-01-02T10:00:00+00:00,False\n")
    frame, report = police_uk.read_archive_file(path)
    assert len(frame) == 2 == report.rows
    assert frame["type"].tolist() == ["Person search", "Vehicle search"]
    assert frame["gender"].iloc[1] is pd.NA and frame["outcome"].iloc[1] is pd.NA


def test_file_name_must_follow_archive_layout(tmp_path: Path) -> None:
    path = tmp_path / "searches.csv"
    path.write_text("Type\n")
    with pytest.raises(ValueError, match="not a data.police.uk archive file name"):
        police_uk.read_archive_file(path)


def test_source_filters_and_missing_path(shared_data: Path, tmp_path: Path) -> None:
    source = Source(name="s", kind="police_uk_archive", path=str(shared_data / "stop_and_search"),
                    forces=["durham"], months=["2020-01", "2020-02"])
    loaded = load_source(source, tmp_path, "data.sources[0]")
    assert loaded.origin == "real" and len(loaded.files) == 2
    assert len(loaded.frame) == 161 + 135
    assert len(loaded.checksum) == 64
    missing = Source(name="s", kind="police_uk_archive", path=str(tmp_path / "nowhere"))
    with pytest.raises(SourceError, match=r"data.sources\[0\].path: .*nowhere does not exist"):
        load_source(missing, tmp_path, "data.sources[0]")
    assert not (tmp_path / ".rudi").exists()  # nothing generated in its place
    fallback = Source(name="s", kind="police_uk_archive", path=str(tmp_path / "nowhere"),
                      rows_per_month=200)
    loaded = load_source(fallback, tmp_path, "data.sources[0]", allow_synthetic=True)
    assert loaded.origin == "synthetic" and "not found" in loaded.note
    assert len(loaded.frame) == 600


def test_parse_by_distinct_parses_each_distinct_value_once_and_spreads_it_back() -> None:
    """The one way the loaders parse a column (booleans, text): each distinct value once, the
    same result as parsing row by row, missing values given ``missing``."""
    values = pd.Series(["b", "a", None, "b", " a", "b"], index=[5, 4, 3, 2, 1, 0])
    calls: list[list[str]] = []

    def parse(distinct: pd.Series) -> list[str]:
        calls.append(distinct.tolist())
        return [value.strip().upper() for value in distinct]

    out = parse_by_distinct(values, parse, "string", missing="?")
    assert calls == [["b", "a", " a"]]
    assert out.tolist() == ["?" if pd.isna(v) else v.strip().upper() for v in values]
    assert out.index.equals(values.index) and out.dtype == "string"
    # a result type other than text, and a missing value left missing
    codes = parse_by_distinct(values, lambda d: [len(v) for v in d], "Int8")
    assert codes.dtype == "Int8" and codes.tolist() == [1, 1, pd.NA, 1, 2, 1]
    # values that parse to themselves come back as read, unless missing ones must change
    same = pd.Series(["x", None, "y"], dtype="string", index=[2, 1, 0])
    pd.testing.assert_series_equal(parse_by_distinct(same, list, "string"), same)
    assert parse_by_distinct(same, list, "string", missing="-").tolist() == ["x", "-", "y"]


def test_text_and_boolean_columns_parse_as_row_by_row() -> None:
    text = pd.Series([" Male", "Male", "", None, "  ", "Female "], dtype="string")
    assert clean_text_column(text).tolist() == ["Male", "Male", pd.NA, pd.NA, pd.NA, "Female"]
    flags = pd.Series(["True", " no", "maybe", "", None, "Y"], dtype="string")
    parsed, bad = police_uk._to_bool(flags)
    assert parsed.tolist() == [True, False, pd.NA, pd.NA, pd.NA, True]
    assert bad.tolist() == [False, False, True, False, False, False]
