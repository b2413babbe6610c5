"""Features of a COMPAS case known at the start of the screening day: custody history,
the booking, age and the words of the current charge.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from rudikit.data.compas.labels import trigger_dates

#: The guide's stop words for charge descriptions (high-frequency connectives).
STOP_WORDS: frozenset[str] = frozenset({
    "an", "of", "to", "without", "while", "with", "on", "none", "at", "by", "as", "the", "or",
    "in", "over", "and", "nd", "too", "one", "two", "when", "for",
})


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


_WORD = re.compile(r"[a-z]+")


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
    :func:`labels.trigger_dates`) plus features built on it and on the counts COMPAS recorded:
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
