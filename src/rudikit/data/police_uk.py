"""data.police.uk stop-and-search data: the archive CSV layout, the API JSON and its flattened CSV.

All three land in one normalised table (:data:`COLUMNS`), so the rest of rudikit never cares how
a force's data arrived. Bad rows are kept and reported (see :mod:`rudikit.data.validation`),
never silently dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rudikit.data.validation import (
    FALSE_TEXT,
    TRUE_TEXT,
    ValidationReport,
    clean_text_column,
    impossible_points,
    outside_datetime_range,
    parse_by_distinct,
    validate_stop_search,
)

#: Normalised column -> pandas dtype. Every loader returns exactly these columns in this order.
COLUMNS: dict[str, str] = {
    "record_id": "string",
    "force": "string",
    "type": "string",
    "datetime": "datetime64[ns, UTC]",
    "part_of_a_policing_operation": "boolean",
    "policing_operation": "string",
    "latitude": "Float64",
    "longitude": "Float64",
    "gender": "string",
    "age_range": "string",
    "self_defined_ethnicity": "string",
    "officer_defined_ethnicity": "string",
    "legislation": "string",
    "object_of_search": "string",
    "outcome": "string",
    "outcome_linked_to_object_of_search": "boolean",
    "removal_of_more_than_just_outer_clothing": "boolean",
    "street_id": "string",
    "street_name": "string",
    "source_file": "string",
    "source_row": "Int64",
}

#: The 15 columns of a data.police.uk archive file, mapped to normalised names.
ARCHIVE_COLUMNS: dict[str, str] = {
    "Type": "type",
    "Date": "datetime",
    "Part of a policing operation": "part_of_a_policing_operation",
    "Policing operation": "policing_operation",
    "Latitude": "latitude",
    "Longitude": "longitude",
    "Gender": "gender",
    "Age range": "age_range",
    "Self-defined ethnicity": "self_defined_ethnicity",
    "Officer-defined ethnicity": "officer_defined_ethnicity",
    "Legislation": "legislation",
    "Object of search": "object_of_search",
    "Outcome": "outcome",
    "Outcome linked to object of search": "outcome_linked_to_object_of_search",
    "Removal of more than just outer clothing": "removal_of_more_than_just_outer_clothing",
}

#: Fields of the police.uk ``stops-force`` API flattened to snake_case CSV, mapped to normalised
#: names. ``involved_person``, ``outcome_id`` and ``outcome_name`` are read but not kept:
#: ``outcome_name`` duplicates ``outcome``.
API_CSV_COLUMNS: dict[str, str] = {
    "type": "type",
    "datetime": "datetime",
    "operation": "part_of_a_policing_operation",
    "operation_name": "policing_operation",
    "latitude": "latitude",
    "longitude": "longitude",
    "gender": "gender",
    "age_range": "age_range",
    "self_defined_ethnicity": "self_defined_ethnicity",
    "officer_defined_ethnicity": "officer_defined_ethnicity",
    "legislation": "legislation",
    "object_of_search": "object_of_search",
    "outcome": "outcome",
    "outcome_linked_to_object_of_search": "outcome_linked_to_object_of_search",
    "removal_of_more_than_outer_clothing": "removal_of_more_than_just_outer_clothing",
    "street_id": "street_id",
    "street_name": "street_name",
}
API_CSV_KNOWN_EXTRA = {"involved_person", "outcome_id", "outcome_name"}



def column_aliases() -> dict[str, str]:
    """The data.police.uk names of the normalised columns, name -> column: the archive CSV
    headers (``Object of search``) and the API's JSON fields (``operation``), from the maps the
    loaders read them with. The service accepts them for the model's fields."""
    names = {**ARCHIVE_COLUMNS, **API_CSV_COLUMNS}
    return {name: column for name, column in names.items() if name != column}


ARCHIVE_FILE_RE = re.compile(r"^(?P<month>\d{4}-\d{2})-(?P<force>[a-z0-9-]+)-stop-and-search\.csv$")


def force_from_filename(path: str | Path) -> str:
    """The force slug in an archive file name (``2020-01-essex-stop-and-search.csv`` -> essex)."""
    name = Path(path).name
    match = ARCHIVE_FILE_RE.match(name)
    if not match:
        raise ValueError(
            f"{name}: not a data.police.uk archive file name "
            "(expected YYYY-MM-<force>-stop-and-search.csv)"
        )
    return match.group("force")


def _bool_state(distinct: pd.Series) -> np.ndarray:
    """Per distinct text: 1 if it means true, 0 if false, missing if blank, -1 if neither."""
    text = distinct.str.strip().str.lower()
    true = text.isin(TRUE_TEXT).fillna(False).to_numpy(dtype=bool)
    false = text.isin(FALSE_TEXT).fillna(False).to_numpy(dtype=bool)
    blank = (text.isna() | (text == "")).fillna(True).to_numpy(dtype=bool)
    state = np.where(true, 1, np.where(false, 0, -1)).astype(object)
    state[blank] = pd.NA
    return state


def _to_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse True/False text to nullable booleans; also return the mask of unparseable values."""
    state = parse_by_distinct(values, _bool_state, "Int8")
    result = pd.Series(pd.NA, index=values.index, dtype="boolean")
    result[state.eq(1).to_numpy(dtype=bool, na_value=False)] = True
    result[state.eq(0).to_numpy(dtype=bool, na_value=False)] = False
    return result, pd.Series(state.eq(-1).to_numpy(dtype=bool, na_value=False),
                             index=values.index)


def _normalise(raw: pd.DataFrame, rename: dict[str, str], source_file: str,
               force: str | None) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Rename, type and order columns. Returns the frame and the per-column parse-failure masks."""
    frame = raw.rename(columns=rename)
    out = pd.DataFrame(index=raw.index)
    failures: dict[str, pd.Series] = {}
    for column, dtype in COLUMNS.items():
        if column in ("record_id", "force", "source_file", "source_row"):
            continue
        values = frame[column] if column in frame else pd.Series(pd.NA, index=raw.index)
        if dtype == "boolean":
            out[column], failures[column] = _to_bool(values)
        elif dtype == "Float64":
            text = values.astype("string").str.strip()
            numbers = pd.to_numeric(text, errors="coerce")
            failures[column] = text.notna() & (text != "") & numbers.isna()
            out[column] = numbers.astype("Float64")
        elif dtype.startswith("datetime"):
            text = values.astype("string").str.strip()
            parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
            failures[column] = text.notna() & parsed.isna()
            # a date-time the table cannot hold is set missing, as an unparseable one
            outside = outside_datetime_range(parsed)
            failures[f"{column}:range"] = outside
            parsed = parsed.mask(outside)
            out[column] = parsed.astype("datetime64[ns, UTC]")
        else:
            out[column] = clean_text_column(values)
    out["force"] = _repeated(force, len(raw))
    out["source_file"] = _repeated(source_file, len(raw))
    # Row number in the file as a person would count it: the header is line 1.
    out["source_row"] = pd.array(np.arange(2, len(raw) + 2), dtype="Int64")
    out["record_id"] = (out["source_file"] + ":" + out["source_row"].astype("string")).astype(
        "string"
    )
    return out[list(COLUMNS)], failures


def _repeated(value: str | None, n: int) -> pd.api.extensions.ExtensionArray:
    """``value`` ``n`` times as text (one value taken ``n`` times, not a list of ``n``)."""
    return pd.array([value], dtype="string").take(np.zeros(n, dtype=np.intp))


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Every value as text (typing is ours to do, so a bad value is reported, not guessed).
    Read by pyarrow's parser, a third of the C parser's time; a file it refuses (a row of
    the wrong width, which the C parser may still read, or report in its own words) is read
    by the C parser."""
    options: dict[str, Any] = {"dtype": "string", "keep_default_na": False,
                               "na_values": [""], "encoding": "utf-8-sig"}
    try:
        return pd.read_csv(path, engine="pyarrow", **options)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return pd.read_csv(path, **options)


def _load(raw: pd.DataFrame, rename: dict[str, str], source: str, force: str,
          known_extra: set[str] = frozenset(), provenance: pd.DataFrame | None = None
          ) -> tuple[pd.DataFrame, ValidationReport]:
    """Normalise one raw text frame, validate it, and blank coordinates that cannot be real.
    ``provenance``: ``force``/``source_file``/``source_row`` per row, where the rows carry them."""
    unknown = [c for c in raw.columns if c not in rename and c not in known_extra]
    missing = [c for c in rename if c not in raw.columns]
    frame, failures = _normalise(raw, rename, source, force)
    if provenance is not None:
        for column in ("force", "source_file"):
            if column in provenance:
                frame[column] = provenance[column].astype("string").fillna(frame[column])
        if "source_row" in provenance:
            frame["source_row"] = pd.to_numeric(provenance["source_row"]).astype("Int64")
        frame["record_id"] = (provenance["record_id"].astype("string")
                              if "record_id" in provenance and "source_row" not in provenance
                              else (frame["source_file"] + ":"
                                    + frame["source_row"].astype("string")).astype("string"))
    raw_values = {rename[c]: raw[c] for c in raw.columns if c in rename}
    report = validate_stop_search(frame, failures, source=source, unknown_columns=unknown,
                                  missing_columns=missing, raw_values=raw_values)
    invalid = impossible_points(frame["latitude"], frame["longitude"])
    frame.loc[invalid, ["latitude", "longitude"]] = pd.NA
    return frame, report


def read_archive_file(path: str | Path) -> tuple[pd.DataFrame, ValidationReport]:
    """One archive CSV (``YYYY-MM-<force>-stop-and-search.csv``); the force comes from its name."""
    path = Path(path)
    return _load(_read_csv_text(path), ARCHIVE_COLUMNS, path.name, force_from_filename(path))


def read_api_csv(path: str | Path, force: str) -> tuple[pd.DataFrame, ValidationReport]:
    """The police.uk ``stops-force`` API response flattened to snake_case CSV."""
    path = Path(path)
    return _load(_read_csv_text(path), API_CSV_COLUMNS, path.name, force, API_CSV_KNOWN_EXTRA)


#: The provenance columns :func:`_normalise` derives from the file; a table may carry them.
PROVENANCE = ("record_id", "force", "source_file", "source_row")
#: A table already in the normalised layout (e.g. written by ``rudi load-sql``): same names.
TABLE_COLUMNS = {c: c for c in COLUMNS if c not in PROVENANCE}


def read_table(raw: pd.DataFrame, name: str, force: str = "",
               known_extra: set[str] = frozenset()) -> tuple[pd.DataFrame, ValidationReport]:
    """Rows in the normalised layout, as text (a database table or view; see rudikit.data.sql).

    They go through the same typing and validation as the files, so the archive loaded into a
    table gives the same frame as the archive read from its CSVs. ``force``, ``source_file`` and
    ``source_row`` are taken from the rows when present (else ``force``, ``name`` and the row's
    position); ``record_id`` is derived from the last two as for the files, unless the rows
    carry their own ``record_id`` and no ``source_row``."""
    kept = raw[[c for c in raw.columns if c not in PROVENANCE]]
    provenance = raw[[c for c in raw.columns if c in PROVENANCE]]
    return _load(kept, TABLE_COLUMNS, name, force, known_extra, provenance)


#: The fields the ``stops-force`` API nests, by path, and the names the flat CSV layout gives
#: them. ``location`` is null when a force does not publish where a search happened.
API_NESTED: dict[tuple[str, ...], str] = {
    ("location", "latitude"): "latitude",
    ("location", "longitude"): "longitude",
    ("location", "street", "id"): "street_id",
    ("location", "street", "name"): "street_name",
    ("outcome_object", "id"): "outcome_id",
    ("outcome_object", "name"): "outcome_name",
}
API_NESTED_ROOTS = frozenset(path[0] for path in API_NESTED)


def flatten_api_record(record: dict[str, Any]) -> dict[str, Any]:
    """One ``stops-force`` record with its nested objects (:data:`API_NESTED`) flattened, the
    values as sent. Only the objects the record has are flattened (a null one gives nulls).
    The service reads a request in the API's shape with it, so both read a stop alike.

    Raises ValueError (naming the field) for a nested part that is neither an object nor null,
    and for a field given both flat and nested (which value is meant cannot be told).
    """
    row = {k: v for k, v in record.items() if k not in API_NESTED_ROOTS}
    if isinstance(row.get("outcome"), bool):
        row["outcome"] = None  # older responses say "outcome": false for "no outcome"
    for path, name in API_NESTED.items():
        if path[0] not in record:
            continue
        if name in row:
            raise ValueError(f"{'.'.join(path)}: {name} is also given at the top level; "
                             "send it once")
        value: Any = record
        for depth, key in enumerate(path):
            if value is None:
                break
            if not isinstance(value, dict):
                raise ValueError(f"{'.'.join(path[:depth])}: expected an object or null, got "
                                 f"{type(value).__name__}")
            value = value.get(key)
        row[name] = value
    return row


def flatten_api_records(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Flatten ``stops-force`` JSON records to the snake_case CSV layout (all values as text)."""
    rows = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"API record {i} is {type(record).__name__}, expected a JSON object")
        try:
            rows.append(flatten_api_record(record))
        except ValueError as exc:
            raise ValueError(f"API record {i}: {exc}") from None
    # dtype=object: otherwise pandas turns a JSON null in a text field into the text "nan"
    # and street ids into "1490797.0"
    frame = (pd.DataFrame(rows, dtype=object) if rows
             else pd.DataFrame(columns=list(API_CSV_COLUMNS)))
    for name in API_NESTED.values():  # every flat column, as when every record nests them
        if name not in frame:
            frame[name] = None
    # a key absent from a record arrives as NaN: missing, like an explicit null
    return frame.map(lambda v: None if v is None or v != v else str(v)).astype("string")


def read_api_json(source: str | Path | Sequence[dict[str, Any]], force: str,
                  name: str | None = None) -> tuple[pd.DataFrame, ValidationReport]:
    """A ``stops-force`` API response: a path to the saved JSON, or the parsed list of records."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})"
            ) from exc
    else:
        records = source
    name = name or "api"
    if not isinstance(records, list):
        raise ValueError(f"{name}: expected a JSON list of stop records")
    return _load(flatten_api_records(records), API_CSV_COLUMNS, name, force, API_CSV_KNOWN_EXTRA)


#: The normalised text columns of repeated values (all but the record id): what
#: :func:`as_categories` makes categoricals.
CATEGORY_COLUMNS = tuple(c for c, dtype in COLUMNS.items() if dtype == "string"
                         and c != "record_id")


def as_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """A normalised frame (or some of its columns) with its :data:`CATEGORY_COLUMNS` as
    categoricals of the same text: a code of 1-2 bytes per row, so a loader holds each file's
    rows so, never the whole source's text (:func:`concat` stacks them as categoricals)."""
    return frame.astype(dict.fromkeys([c for c in CATEGORY_COLUMNS if c in frame.columns],
                                      "category"))


def shared_categories(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """``frames`` with each of :data:`CATEGORY_COLUMNS` that is categorical in all of them
    given the union of their categories, sorted as ``astype("category")`` sorts text, so they
    stack as one categorical (pandas stacks differing categories as text objects)."""
    columns = [c for c in CATEGORY_COLUMNS if all(
        c in f.columns and isinstance(f[c].dtype, pd.CategoricalDtype) for f in frames)]
    if len(frames) < 2 or not columns:
        return frames
    union = {}
    for c in columns:
        found = [f[c].cat.categories for f in frames]
        dtype = next((i.dtype for i in found if len(i)), found[0].dtype)
        union[c] = pd.Index(sorted(set().union(*found)), dtype=dtype)
    return [f.assign(**{c: f[c].cat.set_categories(union[c]) for c in columns})
            for f in frames]


def concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Stack normalised frames, keeping the typed schema even when the list is empty (and
    categoricals as categoricals)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_frame()
    return pd.concat(shared_categories(frames), ignore_index=True)[list(COLUMNS)]


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in COLUMNS.items()})
