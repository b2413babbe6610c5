"""The aggregate tables behind the synthetic stop-and-search generator
(:mod:`rudikit.data.synthetic`).

Every table was computed once from the 21 real archive files (7 forces x 2019-12..2020-02, 22,587
rows); counts are real row counts unless a comment says otherwise. No row of the real files is
here, only these aggregates. Kept apart from the generator so each reads on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

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

#: Share of real rows where the search succeeded (the label as rudikit.data.synthetic defines
#: it): 4,012/22,587.
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
