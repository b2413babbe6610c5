"""Reading the COMPAS files (either layout) into one typed :class:`CompasData`, and checking
that every file's person ids agree.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

#: Where the COMPAS files sit under a data root (``shared/data``).
COMPAS_SUBDIR = Path("compas")


#: Logical name -> file, relative to the COMPAS folder (ProPublica's names, unchanged).
FILES: dict[str, str] = {
    "scores": "compas-scores.csv",
    "two_years": "compas-scores-two-years.csv",
    "two_years_violent": "compas-scores-two-years-violent.csv",
    "people": "relational_tables/people.csv",
    "jail": "relational_tables/jailhistory.csv",
    "prison": "relational_tables/prisonhistory.csv",
    "summary": "relational_tables/summary.csv",
}


#: Tables of ProPublica's ``compas.db``.
DB_TABLES: tuple[str, ...] = (
    "people", "jailhistory", "prisonhistory", "charge", "casearrest", "compas", "summary",
)


_DATE_COLUMNS = frozenset({
    "compas_screening_date", "dob", "c_jail_in", "c_jail_out", "c_offense_date", "c_arrest_date",
    "r_offense_date", "r_jail_in", "r_jail_out", "vr_offense_date", "screening_date",
    "v_screening_date", "in_custody", "out_custody", "filing_date", "offense_date",
    "date_charge_filed", "arrest_date",
})


_INT_COLUMNS = frozenset({
    "id", "person_id", "age", "juv_fel_count", "juv_misd_count", "juv_other_count",
    "decile_score", "decile_score.1", "v_decile_score", "priors_count", "priors_count.1",
    "days_b_screening_arrest", "c_days_from_compas", "is_recid", "num_r_cases",
    "r_days_from_arrest", "violent_recid", "is_violent_recid", "num_vr_cases", "start", "end",
    "event", "two_year_recid", "two_year_recid.1", "raw_score", "days_since_compas",
    "days_since_compas_arrest", "charge_number", "arrest_id", "case_id", "assessment_id",
})


#: Columns of ``people`` (or ``compas-scores.csv``) the case table needs.
PEOPLE_COLUMNS: tuple[str, ...] = (
    "id", "sex", "race", "dob", "juv_fel_count", "juv_misd_count", "juv_other_count",
    "priors_count", "compas_screening_date", "decile_score", "c_jail_in", "c_jail_out",
    "c_case_number", "c_offense_date",
    "c_arrest_date", "c_charge_degree", "c_charge_desc", "r_case_number", "r_offense_date",
    "r_charge_degree", "vr_case_number", "vr_offense_date", "vr_charge_degree",
)


class CompasDataError(ValueError):
    pass


@dataclass
class CompasData:
    """Typed COMPAS tables, whichever layout they came from.

    ``people`` has one row per person (``person_id``); ``jail``/``prison`` one row per stay
    (``person_id``, ``in_custody``, ``out_custody``); ``charges``/``arrests`` exist only for
    ``compas.db``; ``two_years`` only for the CSV layout.
    """

    people: pd.DataFrame
    jail: pd.DataFrame
    prison: pd.DataFrame
    layout: Literal["csv", "sqlite"]
    location: Path
    files: list[Path] = field(default_factory=list)
    charges: pd.DataFrame | None = None
    arrests: pd.DataFrame | None = None
    assessments: pd.DataFrame | None = None
    summary: pd.DataFrame | None = None
    two_years: pd.DataFrame | None = None


def type_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates to ``datetime64``, counts and ids to ``Int64``, by ProPublica's column names.

    The files write dates both as ``2013-08-14`` and ``2013-08-14 00:00:00.000000``; a value
    that does not parse becomes missing rather than failing the load.
    """
    out = frame.copy()
    for col in out.columns:
        if col in _DATE_COLUMNS:
            out[col] = pd.to_datetime(out[col], errors="coerce", format="ISO8601")
        elif col in _INT_COLUMNS:
            number = pd.to_numeric(out[col], errors="coerce").astype("float64")
            out[col] = number.where(np.isfinite(number)).round().astype("Int64")
    return out


def degree_class(values: pd.Series) -> pd.Series:
    """``(F3)``/``F`` -> ``F``, ``(M1)``/``(MO3)``/``M`` -> ``M``, anything else -> ``O``;
    missing stays missing. Matches the F/M/O of ``compas-scores.csv``."""
    text = values.astype("string").str.strip().str.upper().str.strip("()")
    first = text.str[:1]
    return first.where(first.isin(["F", "M"]), "O").where(text.notna() & (text != ""))


def degree_detail(values: pd.Series) -> pd.Series:
    """``(F3)`` -> ``F3``; a bare class letter is kept as it is."""
    text = values.astype("string").str.strip().str.upper().str.strip("()")
    return text.where(text.notna() & (text != ""))


def compas_folder(data_root: str | Path) -> Path:
    """The COMPAS folder under a data root (``shared/data``), or the folder itself if given."""
    root = Path(data_root)
    return root / COMPAS_SUBDIR if (root / COMPAS_SUBDIR / FILES["scores"]).exists() or (
        root / COMPAS_SUBDIR / FILES["people"]).exists() else root


def read_compas_csv(path: str | Path) -> pd.DataFrame:
    """One ProPublica CSV (any of ``compas-scores*.csv`` or a relational table), typed."""
    path = Path(path)
    if not path.exists():
        raise CompasDataError(f"{path}: COMPAS file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return type_columns(frame)


def _stays(frame: pd.DataFrame) -> pd.DataFrame:
    need = {"person_id", "in_custody", "out_custody"}
    if not need <= set(frame.columns):
        raise CompasDataError(f"custody table lacks {sorted(need - set(frame.columns))}")
    return frame.dropna(subset=["person_id", "in_custody"]).reset_index(drop=True)


def _people(frame: pd.DataFrame) -> pd.DataFrame:
    """People with ``person_id`` (= ProPublica's ``people.id``, used by every other table)."""
    missing = [c for c in PEOPLE_COLUMNS if c not in frame.columns]
    if missing:
        raise CompasDataError(f"people table lacks column(s) {', '.join(missing)}")
    out = frame.rename(columns={"id": "person_id"})
    if out["person_id"].isna().any() or not out["person_id"].is_unique:
        raise CompasDataError("people ids are missing or repeated; person_id would be ambiguous")
    return out.reset_index(drop=True)


def load_compas_csv(data_dir: str | Path) -> CompasData:
    """The public CSV layout: ``people`` (``relational_tables/people.csv``, else
    ``compas-scores.csv``, the same people), jail and prison history, the two-year file."""
    folder = compas_folder(data_dir)
    files: list[Path] = []

    def read(name: str, required: bool = True) -> pd.DataFrame | None:
        path = folder / FILES[name]
        if not path.exists():
            if required:
                raise CompasDataError(f"{path}: COMPAS file not found (expected ProPublica's "
                                      f"files under {folder})")
            return None
        files.append(path)
        return read_compas_csv(path)

    people = read("people", required=False)
    if people is None:
        people = read("scores")
    jail, prison = read("jail"), read("prison")
    assert people is not None and jail is not None and prison is not None
    two_years = read("two_years", required=False)
    summary = read("summary", required=False)
    return CompasData(people=_people(people), jail=_stays(jail), prison=_stays(prison),
                      layout="csv", location=folder, files=files, summary=summary,
                      two_years=two_years.rename(columns={"id": "person_id"})
                      if two_years is not None else None)


def load_compas_db(db_path: str | Path) -> CompasData:
    """ProPublica's ``compas.db`` (SQLite), opened read-only. ``people``, ``jailhistory`` and
    ``prisonhistory`` are required; ``charge``, ``casearrest``, ``compas`` and ``summary`` are
    read when present."""
    path = Path(db_path)
    if not path.is_file():
        raise CompasDataError(f"{path}: compas.db not found")
    with sqlite3.connect(f"file:{path.resolve().as_posix()}?mode=ro", uri=True) as con:
        present = {row[0] for row in con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        missing = [t for t in ("people", "jailhistory", "prisonhistory") if t not in present]
        if missing:
            raise CompasDataError(f"{path}: not ProPublica's compas.db layout, no table(s) "
                                  f"{', '.join(missing)}")
        tables = {name: type_columns(pd.read_sql_query(f'SELECT * FROM "{name}"', con))
                  for name in DB_TABLES if name in present}
    return CompasData(
        people=_people(tables["people"]), jail=_stays(tables["jailhistory"]),
        prison=_stays(tables["prisonhistory"]), layout="sqlite", location=path, files=[path],
        charges=tables.get("charge"), arrests=tables.get("casearrest"),
        assessments=tables.get("compas"), summary=tables.get("summary"))


def is_sqlite(path: str | Path) -> bool:
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def load_compas(path: str | Path | CompasData) -> CompasData:
    """A folder (or data root) of CSV files, a ``compas.db`` file, or a folder holding only
    ``compas.db``."""
    if isinstance(path, CompasData):
        return path
    path = Path(path)
    if path.is_dir():
        folder = compas_folder(path)
        has_csv = (folder / FILES["people"]).exists() or (folder / FILES["scores"]).exists()
        if not has_csv and is_sqlite(folder / "compas.db"):
            path = folder / "compas.db"
    return load_compas_db(path) if is_sqlite(path) else load_compas_csv(path)


def check_person_ids(data: CompasData) -> dict[str, float]:
    """Share of jail/prison (and two-year) rows whose ``person_id`` is a known person with the
    same first name, last name and date of birth: evidence that one id is one person."""
    people = data.people.set_index("person_id")
    result: dict[str, float] = {}
    for name, frame in (("jail", data.jail), ("prison", data.prison),
                        ("two_years", data.two_years)):
        if frame is None or frame.empty:
            continue
        known = frame["person_id"].isin(people.index)
        rows = frame[known]
        same = pd.Series(True, index=rows.index)
        for col in ("first", "last", "dob"):
            if col in rows.columns and col in people.columns:
                mine = rows[col].astype("string").str.lower().str.strip()
                theirs = people[col].reindex(rows["person_id"]).astype("string")
                same &= mine.to_numpy() == theirs.str.lower().str.strip().to_numpy()
        result[f"{name}_known"] = float(known.mean())
        result[f"{name}_same_person"] = float(same.mean()) if len(rows) else 1.0
    return result
