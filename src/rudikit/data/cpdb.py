"""Chicago police data (Invisible Institute CPDB): loaders, officer linking and tidy event tables.

The public CPDB export gives every dataset its own officer id (``TRR-officers_..._ID``,
``complaints-accused_..._ID``, ``unit-history_..._ID``); only ``final-profiles`` carries the
cross-dataset ``UID``, and no file maps one to the other. So officers are linked here by
normalised name plus appointed date and birth year, with fallbacks, and a link is accepted only
when exactly one roster officer fits: a wrong link would give one officer another's complaints,
which is worse for an early intervention system than a missing one.

Names are read only to link. Every table this module returns is keyed by ``officer_uid`` and
holds no name column. Everything is read as text with pyarrow (the whole load and link takes a
few seconds) and typed here, because the raw files mix ``7`` and ``7.0``, ``Sustained`` and
``SUSTAINED``, and ids such as ``2019-0000001`` next to ``258960``.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

#: Where the CPDB files sit under a data root (``shared/data``).
CPDB_SUBDIR = Path("eis") / "chicago_cpdb"

#: Logical name -> file name (the names of the Invisible Institute export, unchanged).
FILES: dict[str, str] = {
    "roster": "final-profiles.csv.gz",
    "trr_officers": "TRR-officers_2004-2016_2016-09.csv.gz",
    "trr_profiles": "TRR-officers_2004-2016_2016-09_profiles.csv.gz",
    "trr_main": "TRR-main_2004-2016_2016-09.csv.gz",
    "trr_actions": "TRR-actions-responses_2004-2016_2016-09_p046360.csv.gz",
    "trr_subjects": "TRR-subjects_2004-2016_2016-09.csv.gz",
    "trr_statuses": "TRR-statuses_2004-2016_2016-09.csv.gz",
    "complaints": "complaints-complaints_2000-2023_2023-08_p053540.csv.gz",
    "accused": "complaints-accused_2000-2023_2023-08_p053540.csv.gz",
    "accused_profiles": "complaints-accused_2000-2023_2023-08_p053540_profiles.csv.gz",
    "unit_history": "unit-history_2014-2020_2020-10_p596580.csv.gz",
}

TRR_ID = "TRR-officers_2004-2016_2016-09_ID"
ACCUSED_ID = "complaints-accused_2000-2023_2023-08_p053540_ID"
UNIT_ID = "unit-history_2014-2020_2020-10_p596580_ID"

#: Raw ``allegation_category`` -> category code. Anything not listed is ``other``; the firearm,
#: taser and OC entries are discharge notifications rather than complaints about conduct.
ALLEGATION_CATEGORIES: dict[str, str] = {
    "EXCESSIVE FORCE": "excessive_force",
    "FOURTH AMENDMENT/IMPROPER SEARCH": "improper_search",
    "OPERATIONAL VIOLATION": "operational_violation",
    "VERBAL ABUSE": "verbal_abuse",
    "IN PROCESS-ALLEGATION PENDING": "pending",
    "UNNECESSARY DISPLAY OF WEAPON": "weapon_display",
    "DOMESTIC VIOLENCE": "domestic_violence",
    "TASER DISCHARGE": "weapon_discharge",
    "OC DISCHARGE": "weapon_discharge",
}
ALLEGATION_CODES: tuple[str, ...] = (
    "excessive_force", "improper_search", "operational_violation", "verbal_abuse", "pending",
    "weapon_display", "domestic_violence", "weapon_discharge", "other", "unknown",
)

#: Raw ``final_finding`` (upper-cased) -> finding code; empty is ``no_finding``, the rest
#: (expunged, administratively closed, ...) ``other``.
FINDINGS: dict[str, str] = {
    "SUSTAINED": "sustained",
    "NOT SUSTAINED": "not_sustained",
    "UNFOUNDED": "unfounded",
    "EXONERATED": "exonerated",
    "NO AFFIDAVIT": "no_affidavit",
}
FINDING_CODES: tuple[str, ...] = (
    "sustained", "not_sustained", "unfounded", "exonerated", "no_affidavit", "no_finding", "other",
)

#: Member force types of ``TRR-actions-responses`` -> force code, in rising severity (the
#: order follows CPD's ``action_category`` 0..6). ``highest_force`` of a report is the most
#: severe code used in it.
FORCE_TYPES: dict[str, str] = {
    "Member Presence": "presence",
    "Verbal Commands": "verbal",
    "Other": "other",
    "Other Force": "other",
    "Physical Force - Holding": "holding",
    "Taser Display": "taser_display",
    "Chemical (Authorized)": "chemical",
    "Chemical": "chemical",
    "Physical Force - Stunning": "stunning",
    "Physical Force - Direct Mechanical": "mechanical",
    "Impact Weapon": "impact_weapon",
    "Taser": "taser",
    "Firearm": "firearm",
}
FORCE_CODES: tuple[str, ...] = (
    "presence", "verbal", "other", "holding", "taser_display", "chemical", "stunning",
    "mechanical", "impact_weapon", "taser", "firearm",
)


class CPDBError(FileNotFoundError):
    pass


# --- Reading ---------------------------------------------------------------------------------


def cpdb_folder(data_root: str | Path) -> Path:
    """The CPDB folder under a data root (``shared/data``), or the folder itself if given."""
    root = Path(data_root)
    if (root / FILES["roster"]).exists() or not (root / CPDB_SUBDIR).is_dir():
        return root  # a missing file is then reported in the folder the user named
    return root / CPDB_SUBDIR


def read_raw(folder: str | Path, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One CPDB file as text columns (empty cells missing), so no id or date is mangled by
    type guessing."""
    path = Path(folder) / FILES[name]
    if not path.exists():
        raise CPDBError(f"{path}: CPDB file not found (expected the Invisible Institute export "
                        f"under {CPDB_SUBDIR})")
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), None)
        if not header:
            raise CPDBError(f"{path}: the file is empty")
        missing = [c for c in columns or [] if c not in header]
        if missing:
            raise CPDBError(f"{path}: no column(s) {', '.join(missing)} (not the export this "
                            "loader reads?)")
        # Single-threaded on purpose: a threaded read failed once in CI with pyarrow's "a chunk
        # failed converting for an unknown reason" (a lost conversion task, not bad data).
        # These files are a few MB, so threads bought ~nothing.
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header}, strings_can_be_null=True,
                null_values=[""], include_columns=list(columns) if columns else None),
        )
    except CPDBError:
        raise
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
        raise CPDBError(f"{path}: cannot read it ({exc}); the file is damaged or not a "
                        "gzipped CSV") from None
    return table.to_pandas()


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")


def _ints(values: pd.Series) -> pd.Series:
    number = pd.to_numeric(values, errors="coerce").astype("float64")
    return number.where(np.isfinite(number) & (number.abs() < 1e15)).round().astype("Int64")


def _codes(values: pd.Series) -> pd.Series:
    """Unit/star codes: ``7.0`` and ``7`` are the same unit."""
    number = pd.to_numeric(values, errors="coerce").astype("float64")
    whole = np.isfinite(number) & (number.abs() < 1e15) & (number == number.round())
    text = number.where(whole).astype("Int64").astype("string")
    return text.where(whole, values.astype("string").str.strip())


def _yes(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().str.upper().map(
        {"YES": True, "Y": True, "NO": False, "N": False}).astype("boolean")


# --- Names and linking -----------------------------------------------------------------------

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


def _gender(values: pd.Series) -> pd.Series:
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
                      else _dates(appointed)).astype("datetime64[s]").to_numpy(),
        "birth": _ints(birth_year).to_numpy(),
        "gender": _gender(gender if gender is not None else empty).to_numpy(),
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


# --- The unified data ------------------------------------------------------------------------


@dataclass
class CPDB:
    """Tidy CPDB tables keyed by ``officer_uid`` (no names), plus how the linking went."""

    officers: pd.DataFrame
    complaints: pd.DataFrame
    use_of_force: pd.DataFrame
    unit_history: pd.DataFrame
    rank_history: pd.DataFrame
    links: dict[str, pd.DataFrame]
    link_rows: dict[str, tuple[int, int]]  # dataset -> (rows, rows linked)
    data_end: dict[str, pd.Timestamp] = field(default_factory=dict)
    data_start: dict[str, pd.Timestamp] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The event tables by name, as :mod:`rudikit.features.asof` reads them."""
        return {"officers": self.officers, "complaints": self.complaints,
                "use_of_force": self.use_of_force, "unit_history": self.unit_history,
                "rank_history": self.rank_history}


def _roster(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    raw = read_raw(folder, "roster")
    officers = pd.DataFrame({
        "officer_uid": _ints(raw["UID"]),
        "appointed_date": _dates(raw["appointed_date"]),
        "birth_year": _ints(raw["birth_year"]),
        "gender": _gender(raw["gender"]),
        "race": raw["race"].astype("string").str.strip().str.upper(),
        "resignation_date": _dates(raw["resignation_date"]),
    }).sort_values("officer_uid", ignore_index=True)
    ref = link_frame(_ints(raw["UID"]), raw["first_name"], raw["last_name"],
                     raw["appointed_date"], raw["birth_year"], raw["gender"],
                     raw["middle_initial"])
    stars = pd.DataFrame({"id": _ints(raw["UID"]), "star": _codes(raw["current_star"])})
    return officers, ref, stars


def _stars(ids: pd.Series, *columns: pd.Series) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"id": ids.to_numpy(), "star": _codes(c).to_numpy()})
                      for c in columns], ignore_index=True).dropna().drop_duplicates()


def _link_unit_history(folder: Path, ref: pd.DataFrame, ref_stars: pd.DataFrame
                       ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    raw = read_raw(folder, "unit_history")
    ids = _ints(raw[UNIT_ID])
    src = link_frame(ids, raw["first_name_NS"], raw["last_name_NS"], raw["appointed_date"],
                     raw["birth_year"], raw["gender"], raw["middle_initial"])
    star_cols = [raw["current_star"]] + [raw[f"star{i}"] for i in range(1, 16)]
    src_stars = _stars(ids, *star_cols)
    links = link_profiles(src, ref, source_stars=src_stars, reference_stars=ref_stars)
    uid = ids.map(links.set_index("id")["officer_uid"])
    history = pd.DataFrame({
        "officer_uid": uid.astype("Int64"), "unit": _codes(raw["unit"]),
        "unit_start_date": _dates(raw["unit_start_date"]),
        "unit_end_date": _dates(raw["unit_end_date"]),
    })
    rows = (len(history), int(history["officer_uid"].notna().sum()))
    history = (history.dropna(subset=["officer_uid", "unit_start_date"])
               .drop_duplicates().sort_values(["officer_uid", "unit_start_date"],
                                              ignore_index=True))
    # The roster's stars plus every star a linked unit-history officer ever held: later
    # datasets (TRR has no birth year) can then tell namesakes apart by badge number.
    linked_stars = src_stars.assign(id=src_stars["id"].map(
        links.set_index("id")["officer_uid"])).dropna()
    history.attrs["rows"] = rows
    return history, links, pd.concat([ref_stars, linked_stars]).drop_duplicates()


def _link_trr(folder: Path, ref: pd.DataFrame, ref_stars: pd.DataFrame
              ) -> tuple[pd.DataFrame, pd.DataFrame, tuple[int, int], pd.Timestamp]:
    prof = read_raw(folder, "trr_profiles")
    ids = _ints(prof[TRR_ID])
    src = link_frame(ids, prof["first_name_NS"], prof["last_name_NS"], prof["appointed_date"],
                     pd.Series(pd.NA, index=prof.index), prof["gender"],
                     prof["middle_initial"])
    officers = read_raw(folder, "trr_officers")
    officers["id"] = _ints(officers[TRR_ID])
    main = read_raw(folder, "trr_main", ["trr_id", "trr_date"])
    statuses = read_raw(folder, "trr_statuses", ["trr_id", "star", "status", "status_date", "age"])
    # The member who submits a report gives a star and an age: where the star is the profile's,
    # the age dates the birth year (to within one), which breaks ties between namesakes.
    sub = statuses[statuses["status"].str.upper() == "SUBMITTED"].merge(
        officers[["trr_id", "id"]], on="trr_id")
    sub = sub.merge(pd.DataFrame({"id": ids, "cur": _codes(prof["current_star"])}), on="id")
    sub["star"] = _codes(sub["star"])
    own = sub[sub["star"] == sub["cur"]]
    est = (_dates(own["status_date"]).dt.year - pd.to_numeric(own["age"], errors="coerce") - 0.5)
    approx_birth = est.groupby(own["id"].to_numpy()).median().astype("Float64")
    src_stars = _stars(ids, prof["current_star"])
    src_stars = pd.concat([src_stars, _stars(own["id"], own["star"])]).drop_duplicates()
    links = link_profiles(src, ref, source_stars=src_stars, reference_stars=ref_stars,
                          approx_birth=approx_birth)

    uid = officers["id"].map(links.set_index("id")["officer_uid"]).astype("Int64")
    rows = (len(officers), int(uid.notna().sum()))
    actions = read_raw(folder, "trr_actions", ["trr_id", "person", "force_type"])
    actions = actions[actions["person"].str.strip() == "Member Action"]
    actions["force"] = actions["force_type"].str.strip().map(FORCE_TYPES)
    actions = actions.dropna(subset=["force"])
    severity = {code: i for i, code in enumerate(FORCE_CODES)}
    actions["severity"] = actions["force"].map(severity)
    highest = actions.sort_values("severity").groupby("trr_id")["force"].last()
    used = pd.crosstab(actions["trr_id"], actions["force"]).gt(0)
    subjects = read_raw(folder, "trr_subjects", ["trr_id", "injured", "alleged_injury", "armed"])
    subjects = subjects.assign(subject_injured=_yes(subjects["injured"]),
                               subject_alleged_injury=_yes(subjects["alleged_injury"]),
                               subject_armed=_yes(subjects["armed"]))
    subj = subjects.groupby("trr_id")[["subject_injured", "subject_alleged_injury",
                                       "subject_armed"]].max()
    uof = pd.DataFrame({
        "trr_id": officers["trr_id"].astype("string"),
        "officer_uid": uid,
        "rank": officers["rank"].astype("string").str.strip().str.upper(),
        "unit": _codes(officers["unit"]),
        "on_duty": _yes(officers["duty_status"]),
        "in_uniform": _yes(officers["in_uniform"]),
        "officer_injured": _yes(officers["injured"]),
    })
    uof = uof.merge(main.assign(trr_date=_dates(main["trr_date"]))[["trr_id", "trr_date"]],
                    on="trr_id", how="left")
    uof = uof.merge(subj, left_on="trr_id", right_index=True, how="left")
    for col in ("subject_injured", "subject_alleged_injury", "subject_armed"):
        uof[col] = uof[col].astype("boolean")
    uof["any_injury"] = (uof["officer_injured"].fillna(False)
                         | uof["subject_injured"].fillna(False)
                         | uof["subject_alleged_injury"].fillna(False)).astype(bool)
    uof["highest_force"] = uof["trr_id"].map(highest).astype("string").fillna("none")
    for code in FORCE_CODES:
        flag = used[code] if code in used.columns else pd.Series(dtype=bool)
        uof[f"force_{code}"] = uof["trr_id"].map(flag).fillna(False).astype(bool)
    end = uof["trr_date"].max()
    uof = (uof.dropna(subset=["officer_uid", "trr_date"])
           .sort_values(["trr_date", "trr_id"], ignore_index=True))
    return uof, links, rows, end


def _finding(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip().str.upper()
    code = text.map(FINDINGS)
    return code.where(code.notna(), np.where(text.isna(), "no_finding", "other")).astype("string")


def _allegation(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip().str.upper()
    code = text.map(ALLEGATION_CATEGORIES)
    firearm = text.str.startswith("FIREARM DISCHARGE").fillna(False).to_numpy(dtype=bool)
    code = code.where(code.notna(), np.where(firearm, "weapon_discharge", "other"))
    return code.where(text.notna(), "unknown").astype("string")


def _link_complaints(folder: Path, ref: pd.DataFrame, ref_stars: pd.DataFrame
                     ) -> tuple[pd.DataFrame, pd.DataFrame, tuple[int, int], pd.Timestamp]:
    prof = read_raw(folder, "accused_profiles",
                    [ACCUSED_ID, "first_name_NS", "last_name_NS", "appointed_date", "birth_year",
                     "gender", "middle_initial", "star"])
    ids = _ints(prof[ACCUSED_ID])
    src = link_frame(ids, prof["first_name_NS"], prof["last_name_NS"], prof["appointed_date"],
                     prof["birth_year"], prof["gender"], prof["middle_initial"])
    accused = read_raw(folder, "accused")
    accused["id"] = _ints(accused[ACCUSED_ID])
    src_stars = pd.concat([_stars(ids, prof["star"]),
                           _stars(accused["id"], accused["star"])]).drop_duplicates()
    links = link_profiles(src, ref, source_stars=src_stars, reference_stars=ref_stars)
    uid = accused["id"].map(links.set_index("id")["officer_uid"]).astype("Int64")
    rows = (len(accused), int(uid.notna().sum()))
    cases = read_raw(folder, "complaints", ["cr_id", "incident_date", "complaint_date",
                                            "closed_date", "case_type", "complainant_type"])
    cases = pd.DataFrame({
        "cr_id": cases["cr_id"].astype("string").str.strip(),
        "complaint_date": _dates(cases["complaint_date"]),
        "incident_date": _dates(cases["incident_date"]),
        "closed_date": _dates(cases["closed_date"]),
        "case_type": cases["case_type"].astype("string"),
        "complainant_type": cases["complainant_type"].astype("string"),
    })
    out = pd.DataFrame({
        "row_id": _ints(accused["row_id"]),
        "cr_id": accused["cr_id"].astype("string").str.strip(),
        "officer_uid": uid,
        "allegation_category": _allegation(accused["allegation_category"]),
        "complaint_code": accused["complaint_code"].astype("string"),
        "final_finding": _finding(accused["final_finding"]),
        "recommended_finding": _finding(accused["recommended_finding"]),
        "final_penalty": accused["final_penalty"].astype("string"),
        "assigned_rank": accused["assigned_rank"].astype("string").str.strip().str.upper(),
        "assigned_unit": _codes(accused["assigned_unit"]),
    }).merge(cases, on="cr_id", how="left")
    end = cases["complaint_date"].max()
    out = out[["row_id", "cr_id", "officer_uid", "complaint_date", "incident_date",
               "closed_date", "case_type", "complainant_type", "allegation_category",
               "complaint_code", "final_finding", "recommended_finding", "final_penalty",
               "assigned_rank", "assigned_unit"]]
    out = (out.dropna(subset=["officer_uid", "complaint_date"])
           .sort_values(["complaint_date", "cr_id", "row_id"], ignore_index=True))
    return out, links, rows, end


def _rank_history(complaints: pd.DataFrame, uof: pd.DataFrame) -> pd.DataFrame:
    """Rank at the time of each event (TRR reports and complaints both record it): the only
    dated rank data in the export, so rank as of a date is the last one seen before it."""
    parts = [
        pd.DataFrame({"officer_uid": uof["officer_uid"], "rank_date": uof["trr_date"],
                      "rank": uof["rank"], "source": "use_of_force"}),
        pd.DataFrame({"officer_uid": complaints["officer_uid"],
                      "rank_date": complaints["complaint_date"],
                      "rank": complaints["assigned_rank"], "source": "complaints"}),
    ]
    ranks = pd.concat(parts, ignore_index=True).dropna(subset=["rank"])
    ranks["rank"] = ranks["rank"].astype("string")
    ranks = ranks[ranks["rank"] != ""]
    return ranks.drop_duplicates().sort_values(["officer_uid", "rank_date"], ignore_index=True)


def load_cpdb(data_root: str | Path) -> CPDB:
    """Read, link and tidy the CPDB files under ``data_root`` (``shared/data`` or the CPDB
    folder itself)."""
    folder = cpdb_folder(data_root)
    if not folder.is_dir():
        raise CPDBError(f"{folder}: no such folder")
    try:
        officers, ref, ref_stars = _roster(folder)
        units, unit_links, all_stars = _link_unit_history(folder, ref, ref_stars)
        uof, trr_links, trr_rows, trr_end = _link_trr(folder, ref, all_stars)
        complaints, cr_links, cr_rows, cr_end = _link_complaints(folder, ref, all_stars)
    except KeyError as exc:  # a file read whole (no column list) lacks a column used later
        raise CPDBError(f"{folder}: a CPDB file has no column {exc} (not the export this "
                        "loader reads?)") from None
    unit_rows = units.attrs.pop("rows")
    # ``is_change`` marks every unit assignment after an officer's first.
    units["is_change"] = units.groupby("officer_uid").cumcount() > 0
    return CPDB(
        officers=officers, complaints=complaints, use_of_force=uof, unit_history=units,
        rank_history=_rank_history(complaints, uof),
        links={"use_of_force": trr_links, "complaints": cr_links, "unit_history": unit_links},
        link_rows={"use_of_force": trr_rows, "complaints": cr_rows, "unit_history": unit_rows},
        data_end={"complaints": cr_end, "use_of_force": trr_end,
                  "roster": officers["appointed_date"].max()},
        data_start={"complaints": pd.Timestamp("2000-01-01"),
                    "use_of_force": pd.Timestamp("2004-01-01")},
    )


def linking_rates(cpdb: CPDB, roster_end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per dataset: profiles, linked, ambiguous, unmatched, rate; rows and rows linked; and the
    rate among profiles appointed by the roster's last appointment (later ones cannot link)."""
    roster_end = roster_end or cpdb.data_end.get("roster")
    out = []
    for name, links in cpdb.links.items():
        counts = links["status"].value_counts()
        rows, rows_linked = cpdb.link_rows[name]
        record = {
            "dataset": name, "profiles": len(links),
            "linked": int(counts.get("linked", 0)),
            "ambiguous": int(counts.get("ambiguous", 0)),
            "unmatched": int(counts.get("unmatched", 0)),
        }
        record["rate"] = record["linked"] / max(record["profiles"], 1)
        record["rows"] = rows
        record["rows_linked"] = rows_linked
        record["row_rate"] = rows_linked / max(rows, 1)
        if roster_end is not None:
            mask = (links["appointed"] <= roster_end).fillna(False).to_numpy(dtype=bool)
            record["eligible_profiles"] = int(mask.sum())
            record["eligible_rate"] = float((links["status"].to_numpy()[mask] == "linked").mean())
        out.append(record)
    return pd.DataFrame(out)


def link_tiers(cpdb: CPDB) -> pd.DataFrame:
    """How many profiles each linking rule decided, per dataset and status."""
    frames = [links.assign(dataset=name) for name, links in cpdb.links.items()]
    return (pd.concat(frames).fillna({"tier": "(none)"})
            .groupby(["dataset", "status", "tier"]).size().rename("profiles").reset_index())
