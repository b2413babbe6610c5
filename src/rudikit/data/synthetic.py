"""Seeded synthetic stop-and-search data in the exact data.police.uk archive layout.

Why: demos, tutorials and tests must run on a machine with no network and no real data. The
generator writes ``YYYY-MM/YYYY-MM-<force>-stop-and-search.csv`` files with the archive's
15-column header and CRLF line endings, so they go through the same loader
(:func:`rudikit.data.police_uk.read_archive_file`) as real downloads.

Every table below was computed once from the 21 real archive files (7 forces x 2019-12..2020-02,
22,587 rows; see ``/work/shared/data/PROVENANCE.md``, section 1) read with ``read_archive_file``.
Counts are real row counts unless a comment says otherwise. The data are synthetic: no row is a
real record, and only these aggregate tables were taken from the real files.

The search "success" label (outcome linked to the object of search is True and the outcome is not
"A no further action disposal") is drawn from a logistic model whose effects were fitted to the
real data (force, object of search, type, gender, age range, hour of day), so a model trained on
synthetic data has a real signal to find (AUC about 0.7, as on the real data) and a
per-object-of-search baseline does worse (about 0.6). Officer-defined ethnicity has no effect on
success in the generator: in the real fit the three largest groups differed by under 0.05 on the
log-odds, so a known-null ground truth is the honest choice for fairness demos.
"""

from __future__ import annotations

import calendar
import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rudikit.data.police_uk import ARCHIVE_COLUMNS

#: The archive header, in file order.
HEADER: tuple[str, ...] = tuple(ARCHIVE_COLUMNS)

DEFAULT_MONTHS: tuple[str, ...] = ("2019-12", "2020-01", "2020-02")
DEFAULT_FORCES: tuple[str, ...] = (
    "city-of-london", "derbyshire", "durham", "essex", "leicestershire", "merseyside",
    "south-yorkshire",
)
#: 22,587 real rows / 3 months: the default volume matches the real extract.
DEFAULT_ROWS_PER_MONTH = 7529

#: Share of real rows where the search succeeded (label as in the module docstring): 4,012/22,587.
REAL_BASE_RATE = 0.1776

NFA = "A no further action disposal"

# --- categories (index = code used internally; None = missing in the file) ---------------------

TYPES: tuple[str, ...] = ("Person search", "Person and Vehicle search", "Vehicle search")
VEHICLE = 2

OBJECTS: tuple[str | None, ...] = (
    "Controlled drugs",                            # 0
    "Offensive weapons",                           # 1
    "Article for use in theft",                    # 2
    "Stolen goods",                                # 3
    "Anything to threaten or harm anyone",         # 4
    "Evidence of offences under the Act",          # 5
    "Articles for use in criminal damage",         # 6
    "Firearms",                                    # 7
    "Fireworks",                                   # 8
    "Game or poaching equipment",                  # 9
    "Psychoactive substances",                     # 10
    "Crossbows",                                   # 11
    "Goods on which duty has not been paid etc.",  # 12
    None,                                          # 13
)
DRUGS = 0

LEGISLATIONS: tuple[str | None, ...] = (
    "Misuse of Drugs Act 1971 (section 23)",
    "Police and Criminal Evidence Act 1984 (section 1)",
    "Criminal Justice and Public Order Act 1994 (section 60)",
    "Firearms Act 1968 (section 47)",
    "Poaching Prevention Act 1862 (section 2)",
    "Wildlife and Countryside Act 1981 (section 19)",
    "Aviation Security Act 1982 (section 27(1))",
    "Psychoactive Substances Act 2016 (s36(2))",
    "Deer Act 1991 (section 12)",
    None,
)

#: Legislation given object of search (rows: OBJECTS order; columns: LEGISLATIONS order).
#: Drugs searches are Misuse of Drugs Act s23, theft/weapons/stolen goods PACE s1, "anything to
#: threaten or harm" mostly s60, firearms mostly Firearms Act s47, as in the real files.
LEGISLATION_GIVEN_OBJECT: tuple[tuple[int, ...], ...] = (
    (15327, 70, 1, 2, 4, 0, 0, 0, 0, 42),   # Controlled drugs
    (9, 2026, 2, 0, 0, 0, 0, 0, 0, 70),     # Offensive weapons
    (14, 2026, 0, 0, 1, 0, 0, 0, 0, 11),    # Article for use in theft
    (2, 1387, 0, 0, 0, 0, 0, 0, 1, 5),      # Stolen goods
    (0, 43, 372, 0, 0, 0, 0, 0, 0, 0),      # Anything to threaten or harm anyone
    (42, 166, 0, 0, 5, 2, 2, 0, 0, 51),     # Evidence of offences under the Act
    (1, 244, 0, 0, 0, 0, 0, 0, 0, 1),       # Articles for use in criminal damage
    (3, 18, 0, 96, 0, 0, 0, 0, 0, 6),       # Firearms
    (0, 13, 0, 0, 0, 0, 0, 0, 0, 0),        # Fireworks
    (0, 0, 0, 0, 7, 0, 0, 0, 0, 0),         # Game or poaching equipment
    (0, 0, 0, 0, 0, 0, 0, 2, 0, 0),         # Psychoactive substances
    (0, 1, 0, 0, 0, 0, 0, 0, 0, 0),         # Crossbows
    (0, 1, 0, 0, 0, 0, 0, 0, 0, 0),         # Goods on which duty has not been paid etc.
    (24, 156, 0, 0, 0, 0, 0, 0, 0, 331),    # missing object
)

GENDERS: tuple[str | None, ...] = ("Male", "Female", None)
#: Non-missing gender counts (missingness is per force, below).
GENDER_COUNTS: tuple[int, int] = (19217, 1925)

AGES: tuple[str | None, ...] = ("10-17", "18-24", "25-34", "over 34", "under 10", None)
#: Age range given gender (rows: Male, Female, missing gender), non-missing ages only.
AGE_GIVEN_GENDER: tuple[tuple[int, ...], ...] = (
    (3811, 6668, 4566, 3758, 6),
    (470, 531, 382, 490, 1),
    (41, 54, 26, 21, 0),
)

OFFICER_ETHNICITIES: tuple[str | None, ...] = ("Asian", "Black", "Other", "White", None)

SELF_ETHNICITIES: tuple[str | None, ...] = (
    "White - English/Welsh/Scottish/Northern Irish/British",
    "White - Irish",
    "White - Any other White background",
    "Black/African/Caribbean/Black British - African",
    "Black/African/Caribbean/Black British - Caribbean",
    "Black/African/Caribbean/Black British - Any other Black/African/Caribbean background",
    "Asian/Asian British - Indian",
    "Asian/Asian British - Pakistani",
    "Asian/Asian British - Bangladeshi",
    "Asian/Asian British - Chinese",
    "Asian/Asian British - Any other Asian background",
    "Mixed/Multiple ethnic groups - White and Black Caribbean",
    "Mixed/Multiple ethnic groups - White and Black African",
    "Mixed/Multiple ethnic groups - White and Asian",
    "Mixed/Multiple ethnic groups - Any other Mixed/Multiple ethnic background",
    "Other ethnic group - Any other ethnic group",
    "Other ethnic group - Not stated",
    None,
)
#: Self-defined ethnicity given officer-defined ethnicity (rows: OFFICER_ETHNICITIES order;
#: columns: SELF_ETHNICITIES order without the final None). Keeps the two consistent, including
#: the real share of "Not stated".
SELF_GIVEN_OFFICER: tuple[tuple[int, ...], ...] = (
    (19, 0, 3, 2, 0, 3, 99, 191, 91, 1, 277, 0, 1, 16, 18, 6, 253),           # Asian
    (10, 0, 2, 401, 242, 297, 0, 1, 1, 0, 3, 60, 15, 1, 27, 13, 340),         # Black
    (14, 0, 12, 0, 3, 8, 3, 2, 1, 11, 47, 34, 20, 15, 63, 55, 128),           # Other
    (14963, 111, 757, 7, 7, 4, 2, 4, 2, 2, 11, 21, 2, 4, 36, 32, 1512),       # White
    (74, 0, 10, 2, 1, 5, 3, 0, 0, 1, 6, 1, 3, 1, 23, 21, 528),                # missing
)

OUTCOMES: tuple[str | None, ...] = (
    NFA,
    "Arrest",
    "Community resolution",
    "Khat or Cannabis warning",
    "Summons / charged by post",
    "Caution (simple or conditional)",
    "Penalty Notice for Disorder",
    None,
)
KHAT = 3
BOOLS: tuple[str | None, ...] = ("False", "True", None)

#: Searches per hour of day 00..23, all forces (night-time heavy, quiet early morning).
HOUR_COUNTS: tuple[int, ...] = (
    1457, 1319, 973, 961, 564, 341, 266, 239, 437, 487, 621, 671,
    771, 904, 1119, 1156, 1174, 1322, 1144, 1199, 1322, 1296, 1297, 1547,
)
#: Searches per weekday, Monday..Sunday (Saturday busiest).
WEEKDAY_COUNTS: tuple[int, ...] = (2855, 3245, 2966, 3201, 3346, 3775, 3199)


@dataclass(frozen=True)
class ForceProfile:
    """What one force's real files look like; all counts from its 3 real months."""

    rows: int                                # volume, gives the force's share of rows
    types: tuple[int, int, int]              # TYPES order
    objects: tuple[int, ...]                 # OBJECTS order
    officer_ethnicity: tuple[int, int, int, int]  # Asian, Black, Other, White (non-missing)
    # Share missing among searches that involve a person (vehicle-only searches have no person
    # and so no gender, age or ethnicity at all):
    missing_gender: float
    missing_age: float
    missing_officer_ethnicity: float
    missing_self_ethnicity: float
    operation: tuple[int, int, int]          # False, True, missing
    removal: tuple[int, int, int]            # False, True, missing
    location_missing: float
    latitude: tuple[float, float, float]     # 10th, 50th, 90th percentile
    longitude: tuple[float, float, float]
    time_precision: str                      # "second", "minute" or "hour" (see _times)
    success_effect: float                    # log-odds vs Merseyside
    success_outcomes: tuple[int, ...]        # OUTCOMES order, successful searches
    other_outcomes: tuple[int, ...]          # OUTCOMES order, unsuccessful searches
    nfa_linked: tuple[int, int, int]         # False, True, missing: unsuccessful NFA rows
    other_linked: tuple[int, int]            # False, missing: unsuccessful non-NFA rows


PROFILES: dict[str, ForceProfile] = {
    "city-of-london": ForceProfile(
        rows=879, types=(668, 211, 0),
        objects=(466, 68, 158, 135, 0, 27, 9, 8, 0, 0, 0, 0, 0, 8),
        officer_ethnicity=(166, 196, 47, 438),
        missing_gender=0.0, missing_age=0.044, missing_officer_ethnicity=0.036,
        missing_self_ethnicity=0.035,
        operation=(0, 0, 879), removal=(846, 33, 0),
        location_missing=0.188, latitude=(51.5107, 51.5149, 51.5183),
        longitude=(-0.1015, -0.0835, -0.0763), time_precision="second",
        success_effect=0.49,
        success_outcomes=(0, 159, 2, 34, 3, 1, 1, 0),
        other_outcomes=(672, 5, 0, 1, 1, 0, 0, 0),
        nfa_linked=(611, 61, 0), other_linked=(7, 0),
    ),
    "derbyshire": ForceProfile(
        rows=506, types=(419, 61, 26),
        objects=(369, 47, 57, 15, 0, 13, 1, 4, 0, 0, 0, 0, 0, 0),
        officer_ethnicity=(32, 28, 9, 384),
        missing_gender=0.025, missing_age=0.019, missing_officer_ethnicity=0.058,
        missing_self_ethnicity=0.062,
        operation=(0, 0, 506), removal=(457, 24, 25),
        location_missing=0.030, latitude=(52.8585, 52.9342, 53.2947),
        longitude=(-1.7271, -1.4723, -1.3097), time_precision="minute",
        success_effect=0.38,
        success_outcomes=(0, 50, 3, 45, 0, 4, 6, 19),
        other_outcomes=(349, 26, 0, 2, 0, 0, 0, 2),
        nfa_linked=(4, 345, 0), other_linked=(30, 0),
    ),
    "durham": ForceProfile(
        rows=441, types=(285, 141, 15),
        objects=(252, 39, 68, 65, 0, 0, 8, 0, 2, 7, 0, 0, 0, 0),
        officer_ethnicity=(4, 8, 5, 401),
        missing_gender=0.146, missing_age=0.0, missing_officer_ethnicity=0.019,
        missing_self_ethnicity=0.0,
        operation=(0, 0, 441), removal=(438, 3, 0),
        location_missing=0.0, latitude=(54.5242, 54.6852, 54.8572),
        longitude=(-1.7489, -1.5705, -1.5230), time_precision="second",
        success_effect=1.49,
        success_outcomes=(0, 66, 19, 20, 6, 3, 2, 93),
        other_outcomes=(92, 14, 2, 4, 2, 0, 1, 117),
        nfa_linked=(0, 0, 92), other_linked=(140, 0),
    ),
    "essex": ForceProfile(
        rows=5355, types=(3913, 1218, 224),
        objects=(3549, 595, 335, 324, 372, 81, 76, 23, 0, 0, 0, 0, 0, 0),
        officer_ethnicity=(252, 463, 185, 4116),
        missing_gender=0.014, missing_age=0.042, missing_officer_ethnicity=0.023,
        missing_self_ethnicity=0.014,
        operation=(4321, 1034, 0), removal=(4957, 102, 296),
        location_missing=0.018, latitude=(51.5411, 51.7480, 51.8899),
        longitude=(0.0973, 0.5595, 1.0642), time_precision="hour",
        success_effect=0.24,
        success_outcomes=(0, 378, 279, 332, 22, 61, 0, 48),
        other_outcomes=(3979, 146, 19, 48, 6, 12, 0, 25),
        nfa_linked=(3852, 127, 0), other_linked=(256, 0),
    ),
    "leicestershire": ForceProfile(
        rows=701, types=(546, 155, 0),
        objects=(479, 81, 70, 53, 0, 5, 6, 5, 0, 0, 2, 0, 0, 0),
        officer_ethnicity=(149, 100, 4, 448),
        missing_gender=0.0, missing_age=0.051, missing_officer_ethnicity=0.0,
        missing_self_ethnicity=0.0,
        operation=(0, 0, 701), removal=(691, 10, 0),
        location_missing=0.0, latitude=(52.5410, 52.6356, 52.7694),
        longitude=(-1.3741, -1.1411, -1.0759), time_precision="minute",
        # Leicestershire rarely records "outcome linked to object of search", so its recorded
        # success rate is near zero (1 of 701 rows): a reporting artefact kept on purpose.
        success_effect=-4.37,
        success_outcomes=(0, 1, 1, 1, 0, 0, 0, 0),  # 1 real row (Arrest); smoothed
        other_outcomes=(486, 97, 102, 1, 0, 3, 0, 11),
        nfa_linked=(0, 0, 486), other_linked=(54, 160),
    ),
    "merseyside": ForceProfile(
        rows=9631, types=(7730, 1683, 218),
        objects=(7560, 568, 673, 176, 0, 142, 50, 28, 3, 0, 0, 1, 1, 429),
        officer_ethnicity=(145, 372, 122, 8261),
        missing_gender=0.029, missing_age=0.026, missing_officer_ethnicity=0.054,
        missing_self_ethnicity=0.0,
        operation=(0, 0, 9631), removal=(9171, 241, 219),
        location_missing=0.211, latitude=(53.3860, 53.4165, 53.4823),
        longitude=(-3.0165, -2.9699, -2.7938), time_precision="second",
        success_effect=0.0,
        success_outcomes=(0, 604, 233, 422, 359, 164, 109, 0),
        other_outcomes=(7597, 96, 5, 18, 16, 3, 4, 1),
        nfa_linked=(0, 0, 7597), other_linked=(142, 1),
    ),
    "south-yorkshire": ForceProfile(
        rows=5074, types=(4554, 0, 520),
        objects=(2771, 709, 691, 627, 43, 0, 96, 55, 8, 0, 0, 0, 0, 74),
        officer_ethnicity=(267, 277, 50, 3840),
        missing_gender=0.005, missing_age=0.047, missing_officer_ethnicity=0.026,
        missing_self_ethnicity=0.107,
        operation=(4775, 299, 0), removal=(0, 57, 5017),
        # The real files publish no coordinates for South Yorkshire; the centre below
        # (Sheffield/Rotherham/Doncaster) is only used if a caller lowers location_missing.
        location_missing=1.0, latitude=(53.37, 53.43, 53.55),
        longitude=(-1.52, -1.35, -1.10), time_precision="minute",
        success_effect=-0.71,
        success_outcomes=(0, 168, 41, 136, 54, 49, 16, 0),
        other_outcomes=(3932, 426, 97, 30, 80, 18, 27, 0),
        nfa_linked=(3793, 139, 0), other_linked=(678, 0),
    ),
}

# --- success model: log-odds effects fitted to the real data (logistic regression, C=20) ------
# Reference levels: Merseyside, Person search, Male, 18-24, Controlled drugs, 12:00-14:59.
# The intercept is recalibrated so the default 7 forces give the real base rate (17.8%).
SUCCESS_INTERCEPT = -0.90
TYPE_EFFECT: tuple[float, ...] = (0.0, 0.04, 1.46)
GENDER_EFFECT: tuple[float, ...] = (0.0, -0.16, 0.37)
AGE_EFFECT: tuple[float, ...] = (-0.63, 0.0, -0.19, -0.38, -0.63, -1.72)
OBJECT_EFFECT: tuple[float, ...] = (
    0.0, -1.13, -1.24, -0.62, -3.84, -1.02, -2.14, -1.39, 0.31, 0.31, 0.31, 0.31, 0.31, -1.08,
)
#: Per 3-hour block 00-02, 03-05, ..., 21-23: searches before dawn succeed least.
HOUR_BLOCK_EFFECT: tuple[float, ...] = (-0.19, -0.31, -0.18, -0.09, 0.0, -0.06, -0.03, -0.05)

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ANCHORS_PER_FORCE = 250


def _p(weights: Sequence[float]) -> np.ndarray:
    p = np.asarray(weights, dtype=float)
    return p / p.sum()


def _choice(rng: np.random.Generator, weights: Sequence[float], n: int) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=_p(weights))


def _check(months: Sequence[str] | str, forces: Sequence[str] | str,
           rows_per_month: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    months = (months,) if isinstance(months, str) else tuple(months)
    forces = (forces,) if isinstance(forces, str) else tuple(forces)
    if not months:
        raise ValueError("months: give at least one month (YYYY-MM)")
    if not forces:
        raise ValueError("forces: give at least one force")
    for month in months:
        if not isinstance(month, str) or not _MONTH_RE.match(month):
            raise ValueError(f"months: {month!r} is not a month in YYYY-MM form")
    for force in forces:
        if force not in PROFILES:
            raise ValueError(f"forces: no synthetic profile for {force!r}; "
                             f"known forces: {', '.join(PROFILES)}")
    for name, values in (("months", months), ("forces", forces)):
        if len(set(values)) != len(values):
            raise ValueError(f"{name}: duplicates in {list(values)}")
    if isinstance(rows_per_month, bool) or not isinstance(rows_per_month, (int, np.integer)) \
            or rows_per_month < 0:
        raise ValueError(f"rows_per_month: expected a whole number >= 0, got {rows_per_month!r}")
    return months, forces


def _anchors(rng: np.random.Generator, profile: ForceProfile) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """Street-like points: data.police.uk snaps every search to one of a few hundred points."""

    def split_normal(q: tuple[float, float, float]) -> np.ndarray:
        z = rng.standard_normal(_ANCHORS_PER_FORCE)
        low, mid, high = q
        return np.where(z < 0, mid + z * (mid - low) / 1.2816, mid + z * (high - mid) / 1.2816)

    lat, lon = split_normal(profile.latitude), split_normal(profile.longitude)
    weights = 1.0 / np.arange(1, _ANCHORS_PER_FORCE + 1) ** 0.8  # a few busy hot spots
    return np.round(lat, 6), np.round(lon, 6), weights / weights.sum()


def _times(rng: np.random.Generator, month: str, precision: str,
           n: int) -> tuple[np.ndarray, list[str]]:
    """Dates with the real weekday and hour profile; returns (sort key, ISO strings)."""
    year, mon = int(month[:4]), int(month[5:])
    ndays = calendar.monthrange(year, mon)[1]
    day_weights = [WEEKDAY_COUNTS[calendar.weekday(year, mon, d)] for d in range(1, ndays + 1)]
    day = _choice(rng, day_weights, n) + 1
    hour = _choice(rng, HOUR_COUNTS, n)
    if precision == "hour":
        # Essex publishes the hour only, always written as HH:01:00.
        minute, second = np.ones(n, dtype=int), np.zeros(n, dtype=int)
    else:
        minute = rng.integers(0, 60, n)
        second = rng.integers(0, 60, n) if precision == "second" else np.zeros(n, dtype=int)
    key = ((day * 24 + hour) * 60 + minute) * 60 + second
    text = [f"{month}-{d:02d}T{h:02d}:{m:02d}:{s:02d}+00:00"
            for d, h, m, s in zip(day.tolist(), hour.tolist(), minute.tolist(), second.tolist(),
                                  strict=True)]
    return key, text


def _block(rng: np.random.Generator, force: str, month: str, n: int,
           anchors: tuple[np.ndarray, np.ndarray, np.ndarray]) -> pd.DataFrame:
    """One force-month of raw rows (text as written to the file, None for missing)."""
    prof = PROFILES[force]
    kind = _choice(rng, prof.types, n)
    obj = _choice(rng, prof.objects, n)
    leg = np.empty(n, dtype=int)
    for o, weights in enumerate(LEGISLATION_GIVEN_OBJECT):
        mask = obj == o
        leg[mask] = _choice(rng, weights, int(mask.sum()))

    person = kind != VEHICLE
    gender = np.where(rng.random(n) < prof.missing_gender, 2, _choice(rng, GENDER_COUNTS, n))
    age = np.empty(n, dtype=int)
    for g, weights in enumerate(AGE_GIVEN_GENDER):
        mask = gender == g
        age[mask] = _choice(rng, weights, int(mask.sum()))
    age[rng.random(n) < prof.missing_age] = len(AGES) - 1
    officer = np.where(rng.random(n) < prof.missing_officer_ethnicity, 4,
                       _choice(rng, prof.officer_ethnicity, n))
    self_eth = np.empty(n, dtype=int)
    for e, weights in enumerate(SELF_GIVEN_OFFICER):
        mask = officer == e
        self_eth[mask] = _choice(rng, weights, int(mask.sum()))
    self_eth[rng.random(n) < prof.missing_self_ethnicity] = len(SELF_ETHNICITIES) - 1
    # A vehicle-only search has no person: no gender, age or ethnicity (as in the real files).
    gender[~person] = 2
    age[~person] = len(AGES) - 1
    officer[~person] = 4
    self_eth[~person] = len(SELF_ETHNICITIES) - 1

    key, date_text = _times(rng, month, prof.time_precision, n)
    hour = np.array([int(t[11:13]) for t in date_text], dtype=int)

    operation = _choice(rng, prof.operation, n)
    removal = _choice(rng, prof.removal, n)
    lat_a, lon_a, w_a = anchors
    spot = rng.choice(len(w_a), size=n, p=w_a)
    has_location = rng.random(n) >= prof.location_missing

    logit = (SUCCESS_INTERCEPT + prof.success_effect + np.take(TYPE_EFFECT, kind)
             + np.take(GENDER_EFFECT, gender) + np.take(AGE_EFFECT, age)
             + np.take(OBJECT_EFFECT, obj) + np.take(HOUR_BLOCK_EFFECT, hour // 3))
    probability = 1.0 / (1.0 + np.exp(-logit))
    success = rng.random(n) < probability

    # Outcome and "linked" follow the force's recording habits; a cannabis warning only follows a
    # drugs search.
    outcome = np.empty(n, dtype=int)
    drugs = obj == DRUGS
    for table, rows in ((prof.success_outcomes, success), (prof.other_outcomes, ~success)):
        no_khat = list(table)
        no_khat[KHAT] = 0
        for weights, mask in ((table, rows & drugs), (no_khat, rows & ~drugs)):
            outcome[mask] = _choice(rng, weights if sum(weights) else table, int(mask.sum()))
    linked = np.full(n, 1)  # True
    nfa_rows = ~success & (outcome == 0)
    linked[nfa_rows] = _choice(rng, prof.nfa_linked, int(nfa_rows.sum()))
    other_rows = ~success & (outcome != 0)
    linked[other_rows] = np.take([0, 2], _choice(rng, prof.other_linked, int(other_rows.sum())))

    def text(values: Sequence[str | None], codes: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=object)[codes]

    lat = np.array([f"{v:.6f}" for v in lat_a[spot].tolist()], dtype=object)
    lon = np.array([f"{v:.6f}" for v in lon_a[spot].tolist()], dtype=object)
    lat[~has_location] = None
    lon[~has_location] = None
    frame = pd.DataFrame({
        "force": force,
        "month": month,
        "Type": text(TYPES, kind),
        "Date": np.asarray(date_text, dtype=object),
        "Part of a policing operation": text(BOOLS, operation),
        "Policing operation": np.full(n, None, dtype=object),
        "Latitude": lat,
        "Longitude": lon,
        "Gender": text(GENDERS, gender),
        "Age range": text(AGES, age),
        "Self-defined ethnicity": text(SELF_ETHNICITIES, self_eth),
        "Officer-defined ethnicity": text(OFFICER_ETHNICITIES, officer),
        "Legislation": text(LEGISLATIONS, leg),
        "Object of search": text(OBJECTS, obj),
        "Outcome": text(OUTCOMES, outcome),
        "Outcome linked to object of search": text(BOOLS, linked),
        "Removal of more than just outer clothing": text(BOOLS, removal),
        "success_probability": probability,
    })
    # Real files are in date order.
    return frame.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)


def _blocks(months: tuple[str, ...], forces: tuple[str, ...], rows_per_month: int,
            seed: int) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(month, force, its rows) in the order the seeded stream draws them: the archive writes
    each block as it comes, so millions of rows never stand as text all at once."""
    rng = np.random.default_rng(seed)
    anchors = {force: _anchors(rng, PROFILES[force]) for force in forces}
    shares = _p([PROFILES[f].rows for f in forces])
    for month in months:
        counts = rng.multinomial(rows_per_month, shares)
        for force, n in zip(forces, counts.tolist(), strict=True):
            yield month, force, _block(rng, force, month, n, anchors[force])


def _generate(months: tuple[str, ...], forces: tuple[str, ...], rows_per_month: int,
              seed: int) -> pd.DataFrame:
    return pd.concat([block for _, _, block in _blocks(months, forces, rows_per_month, seed)],
                     ignore_index=True)


def generate_frame(*, months: Sequence[str] | str = DEFAULT_MONTHS,
                   forces: Sequence[str] | str = DEFAULT_FORCES,
                   rows_per_month: int = DEFAULT_ROWS_PER_MONTH, seed: int = 0,
                   include_truth: bool = False) -> pd.DataFrame:
    """The raw synthetic rows: ``force``, ``month`` and the 15 archive columns as text.

    Missing values are ``<NA>``. ``rows_per_month`` is the total over all ``forces``, split by
    their real volume shares. ``include_truth`` adds ``success_probability``, the probability the
    generator used, so calibration can be checked against a known truth.
    """
    months, forces = _check(months, forces, rows_per_month)
    frame = _generate(months, forces, rows_per_month, seed)
    columns = ["force", "month", *HEADER] + (["success_probability"] if include_truth else [])
    out = frame[columns].copy()
    for column in ["force", "month", *HEADER]:
        out[column] = out[column].astype("string")
    return out


def generate_archive(dest_dir: str | Path, *, months: Sequence[str] | str = DEFAULT_MONTHS,
                     forces: Sequence[str] | str = DEFAULT_FORCES,
                     rows_per_month: int = DEFAULT_ROWS_PER_MONTH, seed: int = 0) -> list[Path]:
    """Write ``<dest_dir>/YYYY-MM/YYYY-MM-<force>-stop-and-search.csv`` files; return their paths.

    Same seed and arguments give byte-identical files. A force that draws no rows in a month
    still gets a file with only the header, so the layout is always complete.
    """
    months, forces = _check(months, forces, rows_per_month)
    dest = Path(dest_dir)
    paths = []
    for month, force, rows in _blocks(months, forces, rows_per_month, seed):
        folder = dest / month
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{month}-{force}-stop-and-search.csv"
        # pandas may hold missing text as NaN: write it as the archive's empty field.
        records = rows[list(HEADER)].fillna("").to_numpy().tolist()
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(HEADER)
            writer.writerows(records)
        paths.append(path)
    return paths
