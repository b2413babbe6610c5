"""The unified CPDB data: the roster, unit history, use of force and complaints keyed by
``officer_uid`` (no name column), with the linking rates behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rudikit.data.cpdb.files import (
    ACCUSED_ID,
    ALLEGATION_CATEGORIES,
    FINDINGS,
    FORCE_CODES,
    FORCE_TYPES,
    TRR_ID,
    UNIT_ID,
    CPDBError,
    cpdb_folder,
    parse_codes,
    parse_dates,
    parse_ints,
    parse_yes,
    read_raw,
)
from rudikit.data.cpdb.linking import gender_code, link_frame, link_profiles


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
        "officer_uid": parse_ints(raw["UID"]),
        "appointed_date": parse_dates(raw["appointed_date"]),
        "birth_year": parse_ints(raw["birth_year"]),
        "gender": gender_code(raw["gender"]),
        "race": raw["race"].astype("string").str.strip().str.upper(),
        "resignation_date": parse_dates(raw["resignation_date"]),
    }).sort_values("officer_uid", ignore_index=True)
    ref = link_frame(parse_ints(raw["UID"]), raw["first_name"], raw["last_name"],
                     raw["appointed_date"], raw["birth_year"], raw["gender"],
                     raw["middle_initial"])
    stars = pd.DataFrame({"id": parse_ints(raw["UID"]), "star": parse_codes(raw["current_star"])})
    return officers, ref, stars


def _stars(ids: pd.Series, *columns: pd.Series) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"id": ids.to_numpy(), "star": parse_codes(c).to_numpy()})
                      for c in columns], ignore_index=True).dropna().drop_duplicates()


def _link_unit_history(folder: Path, ref: pd.DataFrame, ref_stars: pd.DataFrame
                       ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    raw = read_raw(folder, "unit_history")
    ids = parse_ints(raw[UNIT_ID])
    src = link_frame(ids, raw["first_name_NS"], raw["last_name_NS"], raw["appointed_date"],
                     raw["birth_year"], raw["gender"], raw["middle_initial"])
    star_cols = [raw["current_star"]] + [raw[f"star{i}"] for i in range(1, 16)]
    src_stars = _stars(ids, *star_cols)
    links = link_profiles(src, ref, source_stars=src_stars, reference_stars=ref_stars)
    uid = ids.map(links.set_index("id")["officer_uid"])
    history = pd.DataFrame({
        "officer_uid": uid.astype("Int64"), "unit": parse_codes(raw["unit"]),
        "unit_start_date": parse_dates(raw["unit_start_date"]),
        "unit_end_date": parse_dates(raw["unit_end_date"]),
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
    ids = parse_ints(prof[TRR_ID])
    src = link_frame(ids, prof["first_name_NS"], prof["last_name_NS"], prof["appointed_date"],
                     pd.Series(pd.NA, index=prof.index), prof["gender"],
                     prof["middle_initial"])
    officers = read_raw(folder, "trr_officers")
    officers["id"] = parse_ints(officers[TRR_ID])
    main = read_raw(folder, "trr_main", ["trr_id", "trr_date"])
    statuses = read_raw(folder, "trr_statuses", ["trr_id", "star", "status", "status_date", "age"])
    # The member who submits a report gives a star and an age: where the star is the profile's,
    # the age dates the birth year (to within one), which breaks ties between namesakes.
    sub = statuses[statuses["status"].str.upper() == "SUBMITTED"].merge(
        officers[["trr_id", "id"]], on="trr_id")
    sub = sub.merge(pd.DataFrame({"id": ids, "cur": parse_codes(prof["current_star"])}), on="id")
    sub["star"] = parse_codes(sub["star"])
    own = sub[sub["star"] == sub["cur"]]
    est = (parse_dates(own["status_date"]).dt.year
           - pd.to_numeric(own["age"], errors="coerce") - 0.5)
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
    subjects = subjects.assign(subject_injured=parse_yes(subjects["injured"]),
                               subject_alleged_injury=parse_yes(subjects["alleged_injury"]),
                               subject_armed=parse_yes(subjects["armed"]))
    subj = subjects.groupby("trr_id")[["subject_injured", "subject_alleged_injury",
                                       "subject_armed"]].max()
    uof = pd.DataFrame({
        "trr_id": officers["trr_id"].astype("string"),
        "officer_uid": uid,
        "rank": officers["rank"].astype("string").str.strip().str.upper(),
        "unit": parse_codes(officers["unit"]),
        "on_duty": parse_yes(officers["duty_status"]),
        "in_uniform": parse_yes(officers["in_uniform"]),
        "officer_injured": parse_yes(officers["injured"]),
    })
    uof = uof.merge(main.assign(trr_date=parse_dates(main["trr_date"]))[["trr_id", "trr_date"]],
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
    ids = parse_ints(prof[ACCUSED_ID])
    src = link_frame(ids, prof["first_name_NS"], prof["last_name_NS"], prof["appointed_date"],
                     prof["birth_year"], prof["gender"], prof["middle_initial"])
    accused = read_raw(folder, "accused")
    accused["id"] = parse_ints(accused[ACCUSED_ID])
    src_stars = pd.concat([_stars(ids, prof["star"]),
                           _stars(accused["id"], accused["star"])]).drop_duplicates()
    links = link_profiles(src, ref, source_stars=src_stars, reference_stars=ref_stars)
    uid = accused["id"].map(links.set_index("id")["officer_uid"]).astype("Int64")
    rows = (len(accused), int(uid.notna().sum()))
    cases = read_raw(folder, "complaints", ["cr_id", "incident_date", "complaint_date",
                                            "closed_date", "case_type", "complainant_type"])
    cases = pd.DataFrame({
        "cr_id": cases["cr_id"].astype("string").str.strip(),
        "complaint_date": parse_dates(cases["complaint_date"]),
        "incident_date": parse_dates(cases["incident_date"]),
        "closed_date": parse_dates(cases["closed_date"]),
        "case_type": cases["case_type"].astype("string"),
        "complainant_type": cases["complainant_type"].astype("string"),
    })
    out = pd.DataFrame({
        "row_id": parse_ints(accused["row_id"]),
        "cr_id": accused["cr_id"].astype("string").str.strip(),
        "officer_uid": uid,
        "allegation_category": _allegation(accused["allegation_category"]),
        "complaint_code": accused["complaint_code"].astype("string"),
        "final_finding": _finding(accused["final_finding"]),
        "recommended_finding": _finding(accused["recommended_finding"]),
        "final_penalty": accused["final_penalty"].astype("string"),
        "assigned_rank": accused["assigned_rank"].astype("string").str.strip().str.upper(),
        "assigned_unit": parse_codes(accused["assigned_unit"]),
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
