"""The screened cases, the later offences and the labels of the COMPAS case table
(``felony_365``, ``two_year_recid``; the rules are in :mod:`rudikit.data.compas`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from rudikit.data.compas.loading import CompasData, CompasDataError, degree_class, degree_detail

LABELS: tuple[str, ...] = ("felony_365", "two_year_recid")


Label = Literal["felony_365", "two_year_recid"]


PrisonRule = Literal["exclude", "exclude_before_felony", "keep"]


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
