"""Seeded synthetic stop-and-search data in the exact data.police.uk archive layout.

Why: demos, tutorials and tests must run on a machine with no network and no real data. The
generator writes ``YYYY-MM/YYYY-MM-<force>-stop-and-search.csv`` files with the archive's
15-column header and CRLF line endings, so they go through the same loader
(:func:`rudikit.data.police_uk.read_archive_file`) as real downloads.

Every table it draws from (:mod:`rudikit.data.synthetic_tables`) was computed once from the 21
real archive files (7 forces x 2019-12..2020-02, 22,587 rows; see
``/work/shared/data/PROVENANCE.md``, section 1) read with ``read_archive_file``. The data are
synthetic: no row is a real record, and only those aggregate tables were taken from the real files.

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
from pathlib import Path

import numpy as np
import pandas as pd

from rudikit.data.synthetic_tables import (
    AGE_EFFECT,
    AGE_GIVEN_GENDER,
    AGES,
    BOOLS,
    DEFAULT_FORCES,
    DEFAULT_MONTHS,
    DEFAULT_ROWS_PER_MONTH,
    DRUGS,
    GENDER_COUNTS,
    GENDER_EFFECT,
    GENDERS,
    HEADER,
    HOUR_BLOCK_EFFECT,
    HOUR_COUNTS,
    KHAT,
    LEGISLATION_GIVEN_OBJECT,
    LEGISLATIONS,
    OBJECT_EFFECT,
    OBJECTS,
    OFFICER_ETHNICITIES,
    OUTCOMES,
    PROFILES,
    SELF_ETHNICITIES,
    SELF_GIVEN_OFFICER,
    SUCCESS_INTERCEPT,
    TYPE_EFFECT,
    TYPES,
    VEHICLE,
    WEEKDAY_COUNTS,
    ForceProfile,
)

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
