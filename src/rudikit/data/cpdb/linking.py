"""Linking each dataset's officer ids to the roster by normalised name, appointed date and birth
year, in tiers of decreasing evidence; a link is accepted only when exactly one roster officer
fits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rudikit.data.cpdb.files import parse_dates, parse_ints

_SUFFIX = re.compile(r"(?<=[A-Z]{3})(JR|SR|III|II|IV)$")


def normalise_name(values: pd.Series) -> pd.Series:
    """Upper case, letters only (``O'BRIEN``, ``O BRIEN`` and ``OBRIEN`` agree), a trailing
    JR/SR/II/III/IV dropped (some files glue it on: ``PINTORJR``); ``UNKNOWN`` is missing."""
    text = values.astype("string").str.upper().str.replace("0", "O", regex=False)
    text = text.str.replace(r"[^A-Z]", "", regex=True).str.replace(_SUFFIX, "", regex=True)
    return text.mask(text.isin(["", "UNKNOWN", "NONE"]))


def _initial(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.upper().str.replace(r"[^A-Z]", "", regex=True).str[:1]
    return text.mask(text == "")


def gender_code(values: pd.Series) -> pd.Series:
    """``MALE``/``FEMALE`` in upper case; other values missing."""
    text = values.astype("string").str.strip().str.upper()
    return text.where(text.isin(["MALE", "FEMALE"]))


def link_frame(ids: pd.Series, first: pd.Series, last: pd.Series, appointed: pd.Series,
               birth_year: pd.Series, gender: pd.Series | None = None,
               middle_initial: pd.Series | None = None) -> pd.DataFrame:
    """The standard frame :func:`link_profiles` matches on (names normalised, one row per id)."""
    n = len(ids)
    empty = pd.Series(pd.NA, index=ids.index, dtype="string")
    frame = pd.DataFrame({
        "id": ids.to_numpy(),
        "first": normalise_name(first).to_numpy(),
        "last": normalise_name(last).to_numpy(),
        "finit": _initial(first).to_numpy(),
        "appointed": (appointed if pd.api.types.is_datetime64_any_dtype(appointed)
                      else parse_dates(appointed)).astype("datetime64[s]").to_numpy(),
        "birth": parse_ints(birth_year).to_numpy(),
        "gender": gender_code(gender if gender is not None else empty).to_numpy(),
        "mi": _initial(middle_initial if middle_initial is not None else empty).to_numpy(),
    }, index=range(n))
    return frame.drop_duplicates("id").reset_index(drop=True)


@dataclass(frozen=True)
class Tier:
    """One linking rule: candidates share the ``on`` columns (all present on both sides) and
    pass ``when``; the first tier that finds any candidate decides. In a ``strict`` tier a
    contradicting gender or middle initial rules a candidate out; in the name+appointed tiers,
    where a contradiction is far likelier a typo (the roster has women recorded as men), it only
    counts against the candidate when breaking ties."""

    name: str
    on: tuple[str, ...]
    when: Callable[[pd.DataFrame], pd.Series] | None = None
    strict: bool = True


def _birth_missing(c: pd.DataFrame) -> pd.Series:
    return c["birth_s"].isna() | c["birth_r"].isna()


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    """Both present and equal (numpy's NaN != NaN would otherwise count as a contradiction)."""
    return (a.notna() & b.notna() & (a == b)).astype(bool)


def _differ(a: pd.Series, b: pd.Series) -> pd.Series:
    """Both present and different."""
    return (a.notna() & b.notna() & (a != b)).astype(bool)


def _birth_within_1(c: pd.DataFrame) -> pd.Series:
    return ((c["birth_s"] - c["birth_r"]).abs() == 1).fillna(False)


def _appointed_differs_with_evidence(c: pd.DataFrame) -> pd.Series:
    """Same name and birth year but another (or no) appointed date: only with a shared star or
    middle initial, since a name and a birth year alone are shared by many in a large force."""
    other = c["appointed_s"].isna() | c["appointed_r"].isna() | _differ(c["appointed_s"],
                                                                        c["appointed_r"])
    return other & (c["star_match"] | c["mi_match"])


def _same_gender(c: pd.DataFrame) -> pd.Series:
    return _same(c["gender_s"], c["gender_r"])


def _star_shared(c: pd.DataFrame) -> pd.Series:
    return c["star_match"]


def _last_name_part(c: pd.DataFrame) -> pd.Series:
    """One last name begins the other (a double-barrelled name, ``KAPPELDONEGAN`` for
    ``KAPPEL``), at least three letters long."""
    pairs = zip(c["last_s"].fillna(""), c["last_r"].fillna(""), strict=True)
    return pd.Series([min(len(a), len(b)) >= 3 and (a.startswith(b) or b.startswith(a))
                      for a, b in pairs], index=c.index, dtype=bool)


#: The linking cascade, strictest first.
TIERS: tuple[Tier, ...] = (
    Tier("name+appointed+birth", ("first", "last", "appointed", "birth"), strict=False),
    Tier("name+appointed (birth missing)", ("first", "last", "appointed"), _birth_missing,
         strict=False),
    Tier("name+appointed+birth±1", ("first", "last", "appointed"), _birth_within_1,
         strict=False),
    Tier("initial+last+appointed+birth", ("finit", "last", "appointed", "birth")),
    Tier("name+birth+star/middle (appointed differs)", ("first", "last", "birth"),
         _appointed_differs_with_evidence),
    Tier("first+appointed+birth+gender (last name changed)", ("first", "appointed", "birth"),
         _same_gender),
    Tier("first+appointed+star (last name changed)", ("first", "appointed"), _star_shared),
    Tier("first+appointed+part of last name", ("first", "appointed"), _last_name_part),
    Tier("name+star (no appointed date or birth year)", ("first", "last"), _star_shared),
)


#: Evidence used, in this order, to pick one of several candidates within a tier.
TIE_BREAKS: tuple[str, ...] = ("consistent", "star_match", "mi_match", "birth_close",
                               "gender_match")


def _evidence(cand: pd.DataFrame, shared: pd.DataFrame | None, approx_birth: pd.Series | None
              ) -> pd.DataFrame:
    cand = cand.copy()
    if shared is not None and len(cand):
        cand = cand.merge(shared, on=["id", "uid"], how="left")
        cand["star_match"] = cand["star_match"].astype("boolean").fillna(False).astype(bool)
    else:
        cand["star_match"] = False
    cand["mi_match"] = _same(cand["mi_s"], cand["mi_r"])
    cand["gender_match"] = _same(cand["gender_s"], cand["gender_r"])
    if approx_birth is not None:
        est = cand["id"].map(approx_birth)
        close = ((cand["birth_r"].astype("Float64") - est).abs() <= 1).fillna(False)
        cand["birth_close"] = close.astype(bool) | _same(cand["birth_s"], cand["birth_r"])
    else:
        cand["birth_close"] = _same(cand["birth_s"], cand["birth_r"])
    return cand


def _resolve(cand: pd.DataFrame) -> pd.DataFrame:
    """Per source id: the one candidate left after the tie-breaks, or ambiguity."""
    cand = cand.copy()
    cand["keep"] = True
    for col in TIE_BREAKS:
        alive = cand[cand["keep"]]
        n_alive = alive.groupby("id")["uid"].transform("size")
        n_with = alive.groupby("id")[col].transform("sum")
        narrow = (n_alive > 1) & (n_with >= 1) & ~alive[col]
        cand.loc[narrow[narrow].index, "keep"] = False
        cand.loc[alive.index[(n_alive > 1) & (n_with >= 1) & alive[col]], "via"] = col
    alive = cand[cand["keep"]]
    n = alive.groupby("id")["uid"].transform("size")
    linked = alive[n == 1][["id", "uid", "via"]]
    ambiguous = alive.loc[n > 1, "id"].unique()
    return pd.concat([linked.assign(status="linked"),
                      pd.DataFrame({"id": ambiguous, "status": "ambiguous"})], ignore_index=True)


def link_profiles(source: pd.DataFrame, reference: pd.DataFrame, *,
                  source_stars: pd.DataFrame | None = None,
                  reference_stars: pd.DataFrame | None = None,
                  approx_birth: pd.Series | None = None,
                  tiers: Sequence[Tier] = TIERS) -> pd.DataFrame:
    """Link source profiles to roster officers (frames made by :func:`link_frame`; the
    reference's ``id`` is the roster UID).

    ``source_stars``/``reference_stars`` are (id, star) pairs, ``approx_birth`` an estimated
    birth year per source id (used only to break ties). Returns one row per source id:
    ``id``, ``officer_uid`` (missing unless linked), ``status`` (linked / ambiguous /
    unmatched), ``tier`` (the rule that decided, plus the tie-break used if any) and the
    source's ``appointed`` date (to tell profiles the roster cannot hold).
    """
    ref = reference.rename(columns={"id": "uid"})
    src_stars = (source_stars.dropna().drop_duplicates()
                 if source_stars is not None else None)
    ref_stars = (reference_stars.rename(columns={"id": "uid"}).dropna().drop_duplicates()
                 if reference_stars is not None else None)
    shared = None  # (source id, roster uid) pairs that share a star number
    if src_stars is not None and ref_stars is not None:
        shared = (src_stars.merge(ref_stars, on="star")[["id", "uid"]].drop_duplicates()
                  .assign(star_match=True))
    pending = source[source["first"].notna() | source["last"].notna()]
    decided: list[pd.DataFrame] = []
    for tier in tiers:
        if pending.empty:
            break
        left = pending.dropna(subset=list(tier.on))
        cand = left.merge(ref.dropna(subset=list(tier.on)), on=list(tier.on),
                          suffixes=("_s", "_r"))
        for col in ("first", "last", "finit", "appointed", "birth", "gender", "mi"):
            if col in tier.on:
                cand[f"{col}_s"] = cand[col]
                cand[f"{col}_r"] = cand[col]
        contradicts = (_differ(cand["gender_s"], cand["gender_r"])
                       | _differ(cand["mi_s"], cand["mi_r"]))
        cand = cand.assign(consistent=~contradicts)
        if tier.strict:
            cand = cand[~contradicts]
        cand = _evidence(cand, shared, approx_birth)
        if tier.when is not None and len(cand):
            cand = cand[tier.when(cand).astype(bool).to_numpy()]
        if cand.empty:
            continue
        result = _resolve(cand[["id", "uid", *TIE_BREAKS]].assign(via=pd.NA))
        result["tier"] = tier.name + np.where(result["via"].notna(),
                                              " +" + result["via"].astype(str), "")
        decided.append(result[["id", "uid", "status", "tier"]])
        pending = pending[~pending["id"].isin(result["id"])]
    out = pd.concat(decided + [pd.DataFrame({"id": source["id"], "status": "unmatched",
                                             "tier": pd.NA, "uid": pd.NA})], ignore_index=True)
    out = out.drop_duplicates("id", keep="first").reset_index(drop=True)
    out["officer_uid"] = out["uid"].where(out["status"] == "linked").astype("Int64")
    out["tier"] = out["tier"].astype("string")
    out["appointed"] = out["id"].map(source.drop_duplicates("id").set_index("id")["appointed"])
    return out[["id", "officer_uid", "status", "tier", "appointed"]]
