"""Get stop-and-search data the way users get it: from data.police.uk, with a local cache.

Two routes, both landing in the normalised table of :mod:`rudikit.data.police_uk`:

* the police.uk API (``stops-force``): one JSON list per force and month, cached as JSON and read
  with :func:`~rudikit.data.police_uk.read_api_json`;
* the monthly archive zip (``/data/archive/YYYY-MM.zip``), streamed to the cache; only the
  stop-and-search CSVs of the requested forces and months are extracted, in the layout
  :func:`~rudikit.data.police_uk.read_archive_file` reads.

Why a cache: the API is rate limited, archive zips are large, and officers' laptops are often
offline. The cache is :mod:`rudikit.data.download_cache`; fetching one URL into it, with
retries and clear errors (:class:`~rudikit.data.download_http.DownloadError`), is
:mod:`rudikit.data.download_http`.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from rudikit.data import police_uk
from rudikit.data.download_cache import CHUNK, cache_root
from rudikit.data.download_http import (
    API_URL,
    ARCHIVE_URL,
    DownloadError,
    RetryPolicy,
    client_scope,
    expect_json_list,
    expect_zip,
    fetch_to_cache,
)
from rudikit.data.validation import Problem, ValidationReport

#: Force list and month availability change monthly; a cached copy older than this is refetched
#: when the network is there (and still used, with a warning, when it is not).
METADATA_MAX_AGE = 7 * 24 * 3600.0

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_FORCE_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class UnknownForceError(DownloadError):
    """data.police.uk answered 404 for a force id."""

    def __init__(self, message: str, *, force: str, url: str | None = None):
        super().__init__(message, url=url, status=404)
        self.force = force



def check_month(month: str, field: str = "month") -> str:
    """Return ``month`` if it is ``YYYY-MM``; otherwise a ValueError naming the field."""
    if not isinstance(month, str) or not _MONTH_RE.match(month):
        raise ValueError(f"{field}: {month!r} is not a month in YYYY-MM form (e.g. '2024-01')")
    return month


def check_force(force: str, field: str = "force") -> str:
    """Normalise a force id (``' Essex '`` -> ``'essex'``); ValueError if it cannot be one."""
    if not isinstance(force, str):
        raise ValueError(f"{field}: expected a force id string, got {type(force).__name__}")
    slug = force.strip().lower()
    if not _FORCE_RE.match(slug):
        raise ValueError(
            f"{field}: {force!r} is not a data.police.uk force id; ids are lower-case words "
            "joined by '-', e.g. 'essex' or 'city-of-london' (list_forces() gives them all)"
        )
    return slug



def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- API: forces and availability ------------------------------------------------------------


def fetch_forces(*, cache_dir: str | Path | None = None, client: httpx.Client | None = None,
                 refresh: bool = False, retry: RetryPolicy | None = None) -> Path:
    """Cache ``/api/forces`` (list of ``{id, name}``) and return the cached JSON path."""
    dest = cache_root(cache_dir) / "api" / "forces.json"
    return fetch_to_cache(f"{API_URL}/forces", None, dest, client=client, refresh=refresh,
                          retry=retry, validate=expect_json_list, max_age=METADATA_MAX_AGE)


def list_forces(*, cache_dir: str | Path | None = None, client: httpx.Client | None = None,
                refresh: bool = False, retry: RetryPolicy | None = None) -> dict[str, str]:
    """Force id -> force name, e.g. ``{'essex': 'Essex Police', ...}``: the valid force ids."""
    path = fetch_forces(cache_dir=cache_dir, client=client, refresh=refresh, retry=retry)
    return {str(f["id"]): str(f.get("name", "")) for f in _read_json(path)
            if isinstance(f, dict) and "id" in f}


def fetch_availability(*, cache_dir: str | Path | None = None,
                       client: httpx.Client | None = None, refresh: bool = False,
                       retry: RetryPolicy | None = None) -> Path:
    """Cache ``/api/crimes-street-dates`` and return the cached JSON path."""
    dest = cache_root(cache_dir) / "api" / "crimes-street-dates.json"
    return fetch_to_cache(f"{API_URL}/crimes-street-dates", None, dest, client=client,
                          refresh=refresh, retry=retry, validate=expect_json_list,
                          max_age=METADATA_MAX_AGE)


def available_months(force: str | None = None, *, cache_dir: str | Path | None = None,
                     client: httpx.Client | None = None, refresh: bool = False,
                     retry: RetryPolicy | None = None) -> list[str]:
    """Months (ascending ``YYYY-MM``) with stop-and-search data in the API, for ``force`` or for
    any force. The API only keeps about the last three years; older months are in the archive.
    """
    slug = check_force(force) if force is not None else None
    path = fetch_availability(cache_dir=cache_dir, client=client, refresh=refresh, retry=retry)
    months = []
    for entry in _read_json(path):
        if not isinstance(entry, dict) or "date" not in entry:
            continue
        forces = entry.get("stop-and-search") or []
        if (slug is None and forces) or (slug is not None and slug in forces):
            months.append(str(entry["date"]))
    return sorted(set(months))


# --- API: stop and searches by force ---------------------------------------------------------


def _stops_path(root: Path, force: str, month: str) -> Path:
    return root / "api" / "stops-force" / force / f"{month}.json"


def _unknown_force(force: str, month: str, url: str, root: Path) -> UnknownForceError:
    """Build the 404 message, using the cached force list (no extra request) when there is one."""
    forces_file = root / "api" / "forces.json"
    known: list[str] = []
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        known = [str(f["id"]) for f in _read_json(forces_file)]
    if force in known:
        message = (f"data.police.uk answered 404 for force {force!r} in {month} ({url}). The "
                   "force exists, so that month is probably not published: "
                   f"available_months({force!r}) lists the months that are.")
    else:
        message = (f"data.police.uk does not know the force {force!r} (HTTP 404 from {url}). "
                   "Force ids are lower-case slugs such as 'metropolitan' or 'city-of-london'; "
                   "list_forces() gives them all.")
        close = difflib.get_close_matches(force, known, n=3)
        if close:
            message += f" Did you mean {', '.join(repr(c) for c in close)}?"
        elif not known:
            message += (f" (If the id is right, {month} may not be published for it: see "
                        "available_months().)")
    return UnknownForceError(message, force=force, url=url)


def fetch_stops_force(force: str, month: str, *, cache_dir: str | Path | None = None,
                      client: httpx.Client | None = None, refresh: bool = False,
                      retry: RetryPolicy | None = None) -> Path:
    """Cache one force-month of ``/api/stops-force`` and return the cached JSON path.

    An empty list (a month with no published searches) is a valid answer and is cached too.
    """
    force = check_force(force)
    month = check_month(month)
    root = cache_root(cache_dir)
    dest = _stops_path(root, force, month)
    url = f"{API_URL}/stops-force"
    try:
        return fetch_to_cache(url, {"force": force, "date": month}, dest, client=client,
                              refresh=refresh, retry=retry, validate=expect_json_list)
    except DownloadError as exc:
        if exc.status == 404:
            raise _unknown_force(force, month, exc.url or url, root) from None
        raise


def load_stops_force(force: str, months: Sequence[str] | str, *,
                     cache_dir: str | Path | None = None, client: httpx.Client | None = None,
                     refresh: bool = False, retry: RetryPolicy | None = None,
                     ) -> tuple[pd.DataFrame, ValidationReport]:
    """Fetch (or reuse) each month for ``force`` and return the normalised table and report.

    Months with no records add a warning to the report rather than failing, so a gap in a
    force's publishing is visible but does not stop the rest.
    """
    force = check_force(force)
    months = [months] if isinstance(months, str) else list(months)
    if not months:
        raise ValueError("months: give at least one month (YYYY-MM)")
    for month in months:
        check_month(month, "months")
    frames: list[pd.DataFrame] = []
    report = ValidationReport(source="")
    with client_scope(client) as active:
        for month in months:
            path = fetch_stops_force(force, month, cache_dir=cache_dir, client=active,
                                     refresh=refresh, retry=retry)
            name = f"stops-force/{force}/{month}.json"
            frame, month_report = police_uk.read_api_json(path, force, name=name)
            if not len(frame):
                month_report.problems.append(Problem(
                    name, None, None,
                    f"data.police.uk returned no stop-and-search records for {force} in "
                    f"{month} (not published yet, or none; see available_months())",
                    severity="warning"))
            frames.append(frame)
            report = report.merge(month_report)
    return police_uk.concat(frames), report


# --- archive -------------------------------------------------------------------------------


def fetch_archive_zip(month: str, *, cache_dir: str | Path | None = None,
                      client: httpx.Client | None = None, refresh: bool = False,
                      retry: RetryPolicy | None = None) -> Path:
    """Stream ``/data/archive/<month>.zip`` into the cache and return its path.

    The zip for a month holds all forces' files for that month and (on data.police.uk) the
    months before it, so it can be large; it is written straight to disk, never held in memory.
    """
    month = check_month(month)
    dest = cache_root(cache_dir) / "archive" / f"{month}.zip"
    return fetch_to_cache(f"{ARCHIVE_URL}/{month}.zip", None, dest, client=client,
                          refresh=refresh, retry=retry, validate=expect_zip)


def extract_stop_search(zip_path: str | Path, dest_dir: str | Path,
                        forces: Sequence[str] | str | None = None,
                        months: Sequence[str] | str | None = None) -> list[Path]:
    """Copy the stop-and-search CSVs of ``forces`` x ``months`` (None = all) out of an archive
    zip into ``<dest_dir>/YYYY-MM/YYYY-MM-<force>-stop-and-search.csv``.

    Street-crime and outcome files are skipped. Target paths are built from the parsed month and
    force, never from the member path, so a hostile zip cannot write outside ``dest_dir``.
    """
    zip_path, dest = Path(zip_path), Path(dest_dir)
    want_forces = None if forces is None else {
        check_force(f, "forces") for f in ([forces] if isinstance(forces, str) else forces)}
    want_months = None if months is None else {
        check_month(m, "months") for m in ([months] if isinstance(months, str) else months)}
    written: dict[tuple[str, str], Path] = {}
    seen: set[tuple[str, str]] = set()
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                match = police_uk.ARCHIVE_FILE_RE.match(info.filename.rsplit("/", 1)[-1])
                if not match:
                    continue
                month, force = match.group("month"), match.group("force")
                seen.add((month, force))
                if (want_months is not None and month not in want_months) or (
                        want_forces is not None and force not in want_forces):
                    continue
                target = dest / month / f"{month}-{force}-stop-and-search.csv"
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part",
                                           dir=target.parent)
                try:
                    with archive.open(info) as src, os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                    os.replace(tmp, target)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                written[(month, force)] = target
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{zip_path}: not a readable zip ({exc}); fetch it again with "
                            "refresh=True") from None
    if want_forces is not None and want_months is not None:
        missing = sorted((m, f) for m in want_months for f in want_forces
                         if (m, f) not in written)
        if missing and written:
            warnings.warn(f"{zip_path.name}: no stop-and-search file for "
                          + ", ".join(f"{f} {m}" for m, f in missing), stacklevel=2)
    if not written:
        months_in = sorted({m for m, _ in seen})
        forces_in = sorted({f for _, f in seen})
        span = f"{months_in[0]}..{months_in[-1]}" if months_in else "none"
        raise DownloadError(
            f"{zip_path.name}: no stop-and-search file for forces "
            f"{sorted(want_forces) if want_forces else 'any'} in months "
            f"{sorted(want_months) if want_months else 'any'}; the zip has months {span} and "
            f"forces {', '.join(forces_in) or 'none'}")
    return [written[key] for key in sorted(written)]


def fetch_archive(month: str, forces: Sequence[str] | str | None, dest_dir: str | Path, *,
                  months: Sequence[str] | str | None = None,
                  cache_dir: str | Path | None = None, client: httpx.Client | None = None,
                  refresh: bool = False, retry: RetryPolicy | None = None) -> list[Path]:
    """Download (or reuse) the ``month`` archive zip and extract the stop-and-search files of
    ``forces`` (None = all) for ``months`` (default: just ``month``) into ``dest_dir``.

    Returns the extracted paths, ready for :func:`rudikit.data.police_uk.read_archive_file`.
    """
    month = check_month(month)
    zip_path = fetch_archive_zip(month, cache_dir=cache_dir, client=client, refresh=refresh,
                                 retry=retry)
    return extract_stop_search(zip_path, dest_dir, forces,
                               months if months is not None else [month])
