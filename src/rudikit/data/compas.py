"""COMPAS (ProPublica, Broward County, Florida): loaders and the case table of the RUDI worked
example, "at the screening after an arrest, will this person commit a felony in the next 12
months?".

Two layouts are read into one :class:`CompasData`:

* the public CSV files (``compas-scores*.csv`` and ``relational_tables/``: ``people``,
  ``jailhistory``, ``prisonhistory``, ``summary``), which hold ONE case per person, the case
  COMPAS screened, with only the first later offence (``r_*``) and the first later violent
  offence (``vr_*``);
* ProPublica's original ``compas.db`` (SQLite: ``people``, ``jailhistory``, ``prisonhistory``,
  ``charge``, ``casearrest``, ``compas``, ``summary``), whose ``charge`` table lists every
  charge, so every later felony is seen.

:func:`build_compas_table` turns either into one row per screened case: ``person_id`` (the
``people`` id, which every file shares), ``case_date``, protected columns (``race``, ``sex``;
race only for audits and a with/without-race experiment), COMPAS's ``decile_score`` (a baseline
to beat, never a feature; missing for the 15 people COMPAS did not score), the label and the
features (:func:`feature_columns`). ``case_date`` is the current charge's OFFENCE date, or its
ARREST date when the offence date is missing (ProPublica's convention: ``c_days_from_compas``
counts from it); the 22 two-year-file people with no current charge get their screening date.

The trigger is the screening (``screening_date``, never before ``case_date`` in the files): the
moment a score is produced, and the day after which ProPublica recorded new offences (every
``r_offense_date`` is at least one day after it). Age, jail and prison history are taken at the
start of the screening day: only stays that began before that day count (the current arrest's
booking included, when it began earlier), cut at that day, so nothing after the trigger leaks
in; the current charge and the booking (:func:`booking_features`) are what the screener saw.

Labels (see :func:`felony_labels`):

* ``felony_365``: 1 when a felony (charge degree ``F...``: ``(F3)`` in ``people`` and
  ``compas.db``, ``F`` in ``compas-scores.csv``) of another case falls on day 1..365 after the
  screening, else 0. Excluded, never 0: cases with a prison term starting on day 0..365 after
  the screening (the guide's rule: prison stops offending outside; ``prison_rule`` offers two
  alternatives), cases with under 365 days of follow-up before the data end (censored; the end
  is the last recorded offence) and people with no current charge (no trigger arrest). Counting
  from the screening, not from the offence, matters: new offences were recorded only after the
  screening, so a window opening at the offence date would miss the days up to the screening
  and run short at the end. ``max_screening_gap_days`` optionally drops cases screened long
  after their charge (ProPublica's 30-day data-quality filter, by default off, as in the
  two-year file).
* ``two_year_recid``: ProPublica's label from ``compas-scores-two-years.csv`` (7,214 people),
  unchanged. Without that file (``compas.db``) it is derived: a new offence 1..730 days after
  the screening, censored when the screening is under 730 days before the data end.

Limitation of the CSV layout: only the first new offence and the first violent one are on
file, so a felony after a first non-violent misdemeanour is missed and ``felony_365``
undercounts (base rate about 8%; the guide, using every arrest in ``compas.db``, had 27%); its
``charge`` table has every charge.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
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

#: The guide's stop words for charge descriptions (high-frequency connectives).
STOP_WORDS: frozenset[str] = frozenset({
    "an", "of", "to", "without", "while", "with", "on", "none", "at", "by", "as", "the", "or",
    "in", "over", "and", "nd", "too", "one", "two", "when", "for",
})

LABELS: tuple[str, ...] = ("felony_365", "two_year_recid")
Label = Literal["felony_365", "two_year_recid"]
PrisonRule = Literal["exclude", "exclude_before_felony", "keep"]

#: Custody recency windows: stays released within this many days before the case.
WINDOWS_DAYS: tuple[int, ...] = (30, 90, 365, 1095)

#: Base numeric features (tokens ``token_<word>`` are added per vocabulary). Every one is
#: known at the start of the screening day.
NUMERIC_FEATURES: tuple[str, ...] = (
    "age", "juv_fel_count", "juv_misd_count", "juv_other_count", "priors_count",
    "priors_per_adult_year", "age_first_custody", "age_first_record", "current_jail_days",
    "screening_delay_days", "booked_before_screening", "in_custody_at_screening",
    "days_since_booking",
    *(f"{prefix}_{name}" for prefix in ("jail", "prison") for name in (
        "count", "days", "recency", *(f"released_{w}d" for w in WINDOWS_DAYS),
        "days_since_release", "days_since_first")),
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("sex", "charge_degree", "charge_degree_detail")
PROTECTED_COLUMNS: tuple[str, ...] = ("race", "sex")
TOKEN_PREFIX = "token_"

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
_WORD = re.compile(r"[a-z]+")

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


# --- Typing ----------------------------------------------------------------------------------


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


# --- Loading ---------------------------------------------------------------------------------


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


# --- Cases, outcomes, end of data ------------------------------------------------------------


def screening_cases(data: CompasData) -> pd.DataFrame:
    """One row per person: the screened case's ids, dates and charge, and the person columns
    the features need. The few people with no current charge on file (22 of the two-year
    file) get the screening date as ``case_date`` (``case_date_source`` "screening");
    ``felony_365`` leaves them out (no trigger arrest), ``two_year_recid`` keeps them as
    ProPublica did."""
    p = data.people
    offence = p["c_offense_date"].dt.normalize()
    arrest = p["c_arrest_date"].dt.normalize()
    screening = p["compas_screening_date"].dt.normalize()
    case_date = offence.fillna(arrest).fillna(screening)
    source = np.select([offence.notna(), arrest.notna(), screening.notna()],
                       ["offence", "arrest", "screening"], default="")
    cases = pd.DataFrame({
        "person_id": p["person_id"],
        "case_number": p["c_case_number"].astype("string"),
        "case_date": case_date,
        "case_date_source": pd.Series(source, index=p.index, dtype="string").replace("", pd.NA),
        "screening_date": screening,
        "race": p["race"].astype("string"),
        "sex": p["sex"].astype("string"),
        "dob": p["dob"],
        "juv_fel_count": p["juv_fel_count"],
        "juv_misd_count": p["juv_misd_count"],
        "juv_other_count": p["juv_other_count"],
        "priors_count": p["priors_count"],
        "charge_degree": degree_class(p["c_charge_degree"]),
        "charge_degree_detail": degree_detail(p["c_charge_degree"]),
        "charge_desc": p["c_charge_desc"].astype("string"),
        "current_jail_in": p["c_jail_in"],
        "current_jail_out": p["c_jail_out"],
        # -1 marks the 15 people COMPAS gave no score (score_text missing)
        "decile_score": p["decile_score"].where(p["decile_score"] >= 1),
    })
    if data.charges is not None and {"case_number", "charge"} <= set(data.charges.columns):
        # compas.db: every charge of the current case, not only the first one
        text = (data.charges.dropna(subset=["case_number", "charge"])
                .groupby("case_number")["charge"].agg(lambda s: " | ".join(map(str, s))))
        joined = cases["case_number"].map(text)
        cases["charge_desc"] = joined.fillna(cases["charge_desc"]).astype("string")
    return cases[cases["case_date"].notna()].reset_index(drop=True)


def _arrest_dates(data: CompasData) -> pd.Series | None:
    """``casearrest`` (compas.db): arrest date by case number."""
    a = data.arrests
    if a is None or not {"case_number", "arrest_date"} <= set(a.columns):
        return None
    return a.dropna(subset=["case_number"]).groupby(
        a["case_number"].astype("string"))["arrest_date"].min()


def outcome_events(data: CompasData) -> pd.DataFrame:
    """Later offences: ``person_id``, ``date`` (the offence date), ``degree`` (F/M/O),
    ``case_number``.

    Always the people table's first new offence (``r_*``) and first violent one (``vr_*``);
    for ``compas.db`` also every ``charge`` row, dated by its offence date, else its case's
    arrest date (``casearrest``), else the filing date. An arrest alone is not an offence: it
    may be for an old case.
    """
    p = data.people
    frames = []
    for prefix in ("r", "vr"):
        frames.append(pd.DataFrame({
            "person_id": p["person_id"], "date": p[f"{prefix}_offense_date"],
            "degree": degree_class(p[f"{prefix}_charge_degree"]),
            "case_number": p[f"{prefix}_case_number"].astype("string")}))
    if data.charges is not None and "person_id" in data.charges.columns:
        c = data.charges
        case = c["case_number"].astype("string")
        date = pd.Series(pd.NaT, index=c.index, dtype="datetime64[ns]")
        fallbacks = [c[col] for col in ("offense_date",) if col in c.columns]
        arrests = _arrest_dates(data)
        if arrests is not None:
            fallbacks.append(case.map(arrests))
        fallbacks += [c[col] for col in ("date_charge_filed", "filing_date") if col in c.columns]
        for values in fallbacks:
            date = date.fillna(pd.to_datetime(values))
        frames.append(pd.DataFrame({"person_id": c["person_id"], "date": date,
                                    "degree": degree_class(c["charge_degree"]),
                                    "case_number": case}))
    events = pd.concat([f.astype({"date": "datetime64[ns]"}) for f in frames], ignore_index=True)
    events["date"] = events["date"].dt.normalize()
    events = events.dropna(subset=["person_id", "date"]).drop_duplicates()
    return events.reset_index(drop=True)


def record_dates(data: CompasData) -> pd.Series:
    """Every date a new offence or arrest was recorded, to find the end of the data."""
    dates = [outcome_events(data)["date"]]
    if data.arrests is not None and "arrest_date" in data.arrests.columns:
        dates.append(data.arrests["arrest_date"].astype("datetime64[ns]").dt.normalize())
    return pd.concat(dates, ignore_index=True).dropna()


def data_end_date(events: pd.DataFrame | pd.Series) -> pd.Timestamp:
    """The last day offences were recorded: the latest offence (or ``casearrest`` arrest)
    date, ignoring isolated dates more than 30 days after the 99.9th percentile (ProPublica
    found a few future-dated arrests in ``casearrest``). Custody dates are not used: prison
    files carry placeholder releases such as 2020-01-01. The percentile guard needs many
    dates; on a handful of hand-made rows, pass ``end_date`` instead."""
    dates = events["date"] if isinstance(events, pd.DataFrame) else events
    dates = pd.to_datetime(dates).dropna()
    if dates.empty:
        raise CompasDataError("no outcome dates, so the end of the data is unknown")
    limit = dates.quantile(0.999) + pd.Timedelta(days=30)
    return dates[dates <= limit].max().normalize()


# --- Labels ----------------------------------------------------------------------------------


def trigger_dates(cases: pd.DataFrame) -> pd.Series:
    """The day a case is scored and its label window opens: the screening day, or
    ``case_date`` where no screening date is given (and never before ``case_date``)."""
    if "screening_date" not in cases.columns:
        return cases["case_date"]
    screening = cases["screening_date"].fillna(cases["case_date"])
    return screening.where(screening >= cases["case_date"], cases["case_date"])


def _first_in_window(cases: pd.DataFrame, events: pd.DataFrame, date_col: str, lo: int, hi: int,
                     exclude_same_case: bool = False) -> pd.Series:
    """Per case row, the first event day offset in ``lo..hi`` days after ``case_date``."""
    left = cases[["person_id", "case_date", "case_number"]].reset_index(names="_row")
    m = left.merge(events, on="person_id", how="inner", suffixes=("", "_event"))
    days = (m[date_col].dt.normalize() - m["case_date"]).dt.days
    keep = (days >= lo) & (days <= hi)
    if exclude_same_case and "case_number_event" in m.columns:
        keep &= ~(m["case_number_event"].astype("string") == m["case_number"]).fillna(False)
    return days[keep].groupby(m.loc[keep, "_row"]).min().reindex(cases.index)


def felony_labels(cases: pd.DataFrame, events: pd.DataFrame, prison: pd.DataFrame, *,
                  horizon_days: int = 365, end_date: pd.Timestamp | str | None = None,
                  prison_rule: PrisonRule = "exclude",
                  max_screening_gap_days: int | None = None) -> pd.DataFrame:
    """``felony_365`` (1/0, missing when excluded) and ``label_status`` for each case.

    1 when a felony (degree F, another case) falls on day 1..``horizon_days`` after the
    trigger (:func:`trigger_dates`: the screening, after which new offences were recorded),
    else 0. ``label_status`` says why a case has no label (when several apply, the first
    listed): ``no_case`` (no current charge on file, so no trigger arrest), ``censored`` (fewer
    than ``horizon_days`` of follow-up after the trigger before ``end_date``, found from the
    data when not given), ``screening_gap`` (only with ``max_screening_gap_days``: screened
    more than that many days after the case, ProPublica's filter for a current charge that may
    not be the screened one), ``prison`` (a prison term starts on day 0..``horizon_days`` after
    the trigger; with ``prison_rule="exclude_before_felony"`` only when it starts before the
    first felony, with ``"keep"`` never).
    """
    if prison_rule not in ("exclude", "exclude_before_felony", "keep"):
        raise ValueError(f"prison_rule must be exclude, exclude_before_felony or keep, "
                         f"not {prison_rule!r}")
    if max_screening_gap_days is not None and (
            isinstance(max_screening_gap_days, bool) or not isinstance(max_screening_gap_days, int)
            or max_screening_gap_days < 0):
        raise ValueError(f"max_screening_gap_days must be a whole number of days >= 0, not "
                         f"{max_screening_gap_days!r}")
    end = pd.Timestamp(end_date).normalize() if end_date is not None else data_end_date(events)
    felonies = events[events["degree"] == "F"]
    start = trigger_dates(cases)
    timed = cases.assign(case_date=start)
    first_felony = _first_in_window(timed, felonies, "date", 1, horizon_days,
                                    exclude_same_case=True)
    first_prison = _first_in_window(timed, prison.rename(columns={"in_custody": "date"}),
                                    "date", 0, horizon_days)
    label = first_felony.notna().astype("Int8")
    status = pd.Series("labelled", index=cases.index, dtype="object")
    if prison_rule == "exclude":
        status[first_prison.notna()] = "prison"
    elif prison_rule == "exclude_before_felony":
        status[first_prison.notna() & ~(first_felony < first_prison).fillna(False)] = "prison"
    if max_screening_gap_days is not None and "screening_date" in cases.columns:
        gap = (cases["screening_date"] - cases["case_date"]).dt.days
        status[(gap > max_screening_gap_days).fillna(False)] = "screening_gap"
    status[start + pd.Timedelta(days=horizon_days) > end] = "censored"
    if "case_date_source" in cases.columns:
        status[(cases["case_date_source"] == "screening").fillna(False)] = "no_case"
    label = label.mask(status != "labelled")
    return pd.DataFrame({f"felony_{horizon_days}": label,
                         "label_status": status.astype("string")}, index=cases.index)


def two_year_labels(cases: pd.DataFrame, data: CompasData,
                    end_date: pd.Timestamp | str | None = None) -> pd.DataFrame:
    """ProPublica's ``two_year_recid``: from ``compas-scores-two-years.csv`` when loaded (its
    7,214 people, label unchanged), else derived from the people table (a new offence 1..730
    days after the screening; censored when the screening is under 730 days before the end of
    the data and no offence was seen)."""
    if data.two_years is not None:
        known = data.two_years.drop_duplicates("person_id").set_index("person_id")
        label = cases["person_id"].map(known["two_year_recid"]).astype("Int8")
        status = np.where(label.notna(), "labelled", "not_in_two_year_file")
    else:
        p = data.people.set_index("person_id")
        screening = cases["person_id"].map(p["compas_screening_date"]).dt.normalize()
        days = (cases["person_id"].map(p["r_offense_date"]).dt.normalize() - screening).dt.days
        label = days.between(1, 730).astype("Int8")
        end = (pd.Timestamp(end_date) if end_date is not None
               else data_end_date(record_dates(data)))
        censored = (screening + pd.Timedelta(days=730) > end) & (label == 0)
        status = np.where(censored.fillna(True), "censored", "labelled")
        label = label.mask(censored.fillna(True))
    return pd.DataFrame({"two_year_recid": label,
                         "label_status": pd.Series(status, index=cases.index, dtype="string")},
                        index=cases.index)


# --- Features --------------------------------------------------------------------------------


def custody_history(cases: pd.DataFrame, stays: pd.DataFrame, prefix: str,
                    half_life_days: float = 365.0,
                    windows: Sequence[int] = WINDOWS_DAYS, at: str = "case_date") -> pd.DataFrame:
    """Stays that began before the day in column ``at`` (the case day by default; the table
    uses the screening day): ``<prefix>_count``, ``<prefix>_days`` (time in custody, cut at
    that day), ``<prefix>_recency`` = sum of 0.5^(days since release / ``half_life_days``), so
    a release last week weighs about 1 and one five years ago 1/32,
    ``<prefix>_released_<w>d`` (stays released within ``w`` days, per window), and
    ``<prefix>_days_since_release`` / ``<prefix>_days_since_first`` (to the latest release and
    the earliest start; missing without any stay). A stay still running at that day (or with
    no release date) counts as released that day. Stays starting that day or later are
    ignored, so nothing after the trigger leaks in."""
    left = cases[["person_id", at]].rename(columns={at: "case_date"}).reset_index(names="_row")
    m = left.merge(stays[["person_id", "in_custody", "out_custody"]], on="person_id")
    m = m[m["in_custody"].dt.normalize() < m["case_date"]]
    out = m["out_custody"].fillna(m["case_date"]).clip(upper=m["case_date"])
    days = ((out - m["in_custody"]).dt.total_seconds() / 86400).clip(lower=0)
    since = (m["case_date"] - out.dt.normalize()).dt.days.clip(lower=0)
    started = (m["case_date"] - m["in_custody"].dt.normalize()).dt.days
    part = pd.DataFrame({"_row": m["_row"], "days": days, "since": since, "started": started,
                         "recency": np.power(0.5, since / half_life_days),
                         **{f"w{w}": since <= w for w in windows}})
    agg = part.groupby("_row").agg(count=("days", "size"), days=("days", "sum"),
                                   recency=("recency", "sum"), since=("since", "min"),
                                   started=("started", "max"),
                                   **{f"w{w}": (f"w{w}", "sum") for w in windows})
    agg = agg.reindex(cases.index)
    return pd.DataFrame({f"{prefix}_count": agg["count"].fillna(0).astype("int64"),
                         f"{prefix}_days": agg["days"].fillna(0).round(4),
                         f"{prefix}_recency": agg["recency"].fillna(0).round(6),
                         **{f"{prefix}_released_{w}d": agg[f"w{w}"].fillna(0).astype("int64")
                            for w in windows},
                         f"{prefix}_days_since_release": agg["since"].astype("Float64"),
                         f"{prefix}_days_since_first": agg["started"].astype("Float64")},
                        index=cases.index)


def current_jail_days(cases: pd.DataFrame) -> pd.Series:
    """Days in jail for the current arrest before the screening day began (booked at
    ``current_jail_in``, cut at release or at the start of the screening day, whichever came
    first): what the screener could know. 0 when not booked or booked that day. The full
    length of the stay is never used: the release may come long after the screening."""
    start = cases["current_jail_in"]
    end = cases["current_jail_out"].fillna(cases["screening_date"]).clip(
        upper=cases["screening_date"])
    return ((end - start).dt.total_seconds() / 86400).clip(lower=0).fillna(0).round(4)


def booking_features(cases: pd.DataFrame) -> pd.DataFrame:
    """The current arrest's booking as the screener saw it: ``booked_before_screening`` (1 when
    booked into jail before the screening day), ``in_custody_at_screening`` (booked before the
    screening day and not released before it) and ``days_since_booking`` (screening day minus
    booking day; missing when not booked before the screening day). A booking on or after the
    screening day, or a release after it, is never used: the screener could not know it."""
    screening = trigger_dates(cases)
    booked_day = cases["current_jail_in"].dt.normalize()
    booked = (booked_day < screening).fillna(False)
    released_before = (cases["current_jail_out"].dt.normalize() < screening).fillna(False)
    return pd.DataFrame({
        "booked_before_screening": booked.astype("int64"),
        "in_custody_at_screening": (booked & ~released_before).astype("int64"),
        "days_since_booking": (screening - booked_day).dt.days.where(booked).astype("Float64"),
    }, index=cases.index)


def history_features(cases: pd.DataFrame, jail: pd.DataFrame, prison: pd.DataFrame,
                     age: pd.Series) -> pd.DataFrame:
    """Custody history (:func:`custody_history`, at the start of the screening day, see
    :func:`trigger_dates`) plus features built on it and on the counts COMPAS recorded:
    ``priors_per_adult_year`` (priors / max(age - 17, 1), the pace of offending),
    ``age_first_custody`` (age at the earliest jail or prison stay on file before the
    screening day; missing without one) and ``age_first_record`` (17 with any juvenile count,
    as juvenile offences come before 18 but the files give no dates, else
    ``age_first_custody``, else the current age), ``current_jail_days``,
    ``screening_delay_days`` (screening day minus case day) and :func:`booking_features`."""
    at = cases.assign(_trigger=trigger_dates(cases))
    history = pd.concat([custody_history(at, jail, "jail", at="_trigger"),
                         custody_history(at, prison, "prison", at="_trigger")], axis=1)
    first_days = history[["jail_days_since_first", "prison_days_since_first"]].max(axis=1)
    first_day = at["_trigger"] - pd.to_timedelta(first_days.astype("float64"), unit="D")
    first_age = age_at(cases["dob"], first_day)
    juvenile = cases[["juv_fel_count", "juv_misd_count", "juv_other_count"]].fillna(0).sum(
        axis=1) > 0
    return pd.concat([pd.DataFrame({
        "priors_per_adult_year": (cases["priors_count"].astype("Float64")
                                  / (age.astype("Float64") - 17).clip(lower=1)).round(6),
        "age_first_custody": first_age,
        "age_first_record": first_age.fillna(age).where(~juvenile, 17).astype("Int64"),
        "current_jail_days": current_jail_days(cases),
        "screening_delay_days": (cases["screening_date"] - cases["case_date"]).dt.days,
    }, index=cases.index), booking_features(cases), history], axis=1)


def charge_tokens(text: object) -> list[str]:
    """Lower-cased words of a charge description, without the guide's stop words or
    single letters (``"Grand Theft in the 3rd Degree"`` -> grand, theft, rd, degree)."""
    if text is None or text is pd.NA or (isinstance(text, float) and np.isnan(text)):
        return []
    return [w for w in _WORD.findall(str(text).lower()) if len(w) > 1 and w not in STOP_WORDS]


def charge_vocabulary(descriptions: Iterable[object], min_count: int = 5) -> list[str]:
    """Words seen at least ``min_count`` times over all descriptions, sorted. Keep the list
    with a model: :func:`token_features` with the same list gives new rows the same columns."""
    counts = Counter(w for text in descriptions for w in charge_tokens(text))
    return sorted(w for w, n in counts.items() if n >= min_count)


def token_features(descriptions: pd.Series, vocabulary: Sequence[str]) -> pd.DataFrame:
    """``token_<word>`` 0/1 columns: does the description contain the word."""
    columns = [f"{TOKEN_PREFIX}{w}" for w in vocabulary]
    position = {w: i for i, w in enumerate(vocabulary)}
    matrix = np.zeros((len(descriptions), len(vocabulary)), dtype=np.int8)
    for row, text in enumerate(descriptions):
        for word in charge_tokens(text):
            col = position.get(word)
            if col is not None:
                matrix[row, col] = 1
    return pd.DataFrame(matrix, columns=columns, index=descriptions.index)


def age_at(dob: pd.Series, day: pd.Series) -> pd.Series:
    """Whole years between birth and ``day``."""
    years = day.dt.year - dob.dt.year
    before_birthday = (day.dt.month < dob.dt.month) | (
        (day.dt.month == dob.dt.month) & (day.dt.day < dob.dt.day))
    return (years - before_birthday.astype("int64")).astype("Int64")


def feature_columns(table: pd.DataFrame | None = None, *, vocabulary: Sequence[str] = (),
                    with_race: bool = False) -> dict[str, list[str]]:
    """Feature lists for ``rudi.yaml``: ``{"categorical": [...], "numeric": [...]}``.

    Tokens come from ``table``'s ``token_*`` columns or from ``vocabulary``. ``race`` is added
    only with ``with_race=True`` (the with/without-race experiment); ``decile_score``,
    ``person_id`` and dates are never features.
    """
    tokens = ([c for c in table.columns if c.startswith(TOKEN_PREFIX)] if table is not None
              else [f"{TOKEN_PREFIX}{w}" for w in vocabulary])
    categorical = list(CATEGORICAL_FEATURES) + (["race"] if with_race else [])
    return {"categorical": categorical, "numeric": [*NUMERIC_FEATURES, *tokens]}


# --- The table -------------------------------------------------------------------------------


def build_compas_table(data_dir_or_db: str | Path | CompasData, *,
                       label: Label = "felony_365",
                       end_date: pd.Timestamp | str | None = None,
                       prison_rule: PrisonRule = "exclude",
                       max_screening_gap_days: int | None = None,
                       vocabulary: Sequence[str] | None = None, min_token_count: int = 5,
                       keep_unlabelled: bool = False) -> pd.DataFrame:
    """One row per screened case with ``label``, features, ``race``/``sex`` and
    ``decile_score``.

    ``data_dir_or_db``: the COMPAS folder, a data root holding ``compas/``, a ``compas.db``
    file or loaded :class:`CompasData`. ``vocabulary``: the token list of a trained model (by
    default learnt from the current charges of every case here, see
    :func:`charge_vocabulary`). Rows without a label are dropped unless ``keep_unlabelled``
    (then ``label_status`` says why). Columns: ``person_id``, ``case_number``, ``case_date``,
    ``case_date_source``, ``screening_date``, ``race``, ``sex``, ``decile_score``,
    ``charge_desc``, the label, ``label_status``, then :func:`feature_columns`.
    """
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}, not {label!r}")
    data = load_compas(data_dir_or_db)
    cases = screening_cases(data)
    vocab = list(vocabulary) if vocabulary is not None else charge_vocabulary(
        cases["charge_desc"], min_token_count)
    events = outcome_events(data)
    end = (pd.Timestamp(end_date).normalize() if end_date is not None
           else data_end_date(record_dates(data)))
    if label == "felony_365":
        labels = felony_labels(cases, events, data.prison, horizon_days=365, end_date=end,
                               prison_rule=prison_rule,
                               max_screening_gap_days=max_screening_gap_days)
    else:
        labels = two_year_labels(cases, data, end_date=end)
    age = age_at(cases["dob"], trigger_dates(cases))
    table = pd.concat([
        cases[["person_id", "case_number", "case_date", "case_date_source", "screening_date",
               "race", "sex", "decile_score", "charge_desc"]],
        labels,
        pd.DataFrame({"age": age}, index=cases.index),
        cases[["juv_fel_count", "juv_misd_count", "juv_other_count", "priors_count",
               "charge_degree", "charge_degree_detail"]],
        history_features(cases, data.jail, data.prison, age),
        token_features(cases["charge_desc"], vocab),
    ], axis=1)
    table.attrs.update({"label": label, "end_date": end, "vocabulary": vocab,
                        "layout": data.layout, "source": str(data.location)})
    if not keep_unlabelled:
        table = table[table["label_status"] == "labelled"].reset_index(drop=True)
    return table


def label_summary(table: pd.DataFrame, label: str | None = None) -> dict[str, object]:
    """Rows, base rate and the count of each ``label_status`` (for reports and data cards)."""
    name = label or table.attrs.get("label") or next(c for c in LABELS if c in table.columns)
    labelled = table[name].dropna()
    return {"label": name, "rows": int(len(table)), "labelled": int(len(labelled)),
            "positives": int(labelled.sum()),
            "base_rate": float(labelled.mean()) if len(labelled) else float("nan"),
            "status": table["label_status"].value_counts().to_dict()}
