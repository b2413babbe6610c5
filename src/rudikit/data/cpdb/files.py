"""The CPDB files, their code lists, and reading one as typed columns (everything is read as
text with pyarrow, then typed: the raw files mix ``7`` and ``7.0``, ``Sustained`` and
``SUSTAINED``).
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Sequence
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


def parse_dates(values: pd.Series) -> pd.Series:
    """ISO dates to second-resolution datetimes; anything else is missing."""
    return pd.to_datetime(values, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")


def parse_ints(values: pd.Series) -> pd.Series:
    """Whole numbers (``7`` or ``7.0``) as nullable Int64; anything else is missing."""
    number = pd.to_numeric(values, errors="coerce").astype("float64")
    return number.where(np.isfinite(number) & (number.abs() < 1e15)).round().astype("Int64")


def parse_codes(values: pd.Series) -> pd.Series:
    """Unit/star codes: ``7.0`` and ``7`` are the same unit."""
    number = pd.to_numeric(values, errors="coerce").astype("float64")
    whole = np.isfinite(number) & (number.abs() < 1e15) & (number == number.round())
    text = number.where(whole).astype("Int64").astype("string")
    return text.where(whole, values.astype("string").str.strip())


def parse_yes(values: pd.Series) -> pd.Series:
    """Yes/no flags in any case as nullable booleans."""
    return values.astype("string").str.strip().str.upper().map(
        {"YES": True, "Y": True, "NO": False, "N": False}).astype("boolean")
