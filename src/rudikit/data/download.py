"""Get stop-and-search data the way users get it: from data.police.uk, with a local cache.

Two routes, both landing in the normalised table of :mod:`rudikit.data.police_uk`:

* the police.uk API (``stops-force``): one JSON list per force and month, cached as JSON and read
  with :func:`~rudikit.data.police_uk.read_api_json`;
* the monthly archive zip (``/data/archive/YYYY-MM.zip``), streamed to the cache; only the
  stop-and-search CSVs of the requested forces and months are extracted, in the layout
  :func:`~rudikit.data.police_uk.read_archive_file` reads.

Why a cache: the API is rate limited, archive zips are large, and officers' laptops are often
offline. A cached file is reused without any network access; every cached file is written
atomically (temporary file, then rename) so an interrupted download never leaves a half file
behind, and its SHA-256 is recorded next to it (``<file>.sha256``, ``sha256sum`` format) so a
corrupted entry is noticed and fetched again.

Network failures never surface as raw httpx tracebacks: they become :class:`DownloadError` (or
its subclasses) with the URL, the reason and what to do next.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from rudikit import __version__
from rudikit.data import police_uk
from rudikit.data.validation import Problem, ValidationReport

BASE_URL = "https://data.police.uk"
API_URL = f"{BASE_URL}/api"
ARCHIVE_URL = f"{BASE_URL}/data/archive"
CACHE_ENV = "RUDI_CACHE_DIR"
USER_AGENT = f"rudikit/{__version__} (stop-and-search research toolkit)"

#: Force list and month availability change monthly; a cached copy older than this is refetched
#: when the network is there (and still used, with a warning, when it is not).
METADATA_MAX_AGE = 7 * 24 * 3600.0

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_FORCE_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed. The message names the URL, the reason and what to do next."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class OfflineError(DownloadError):
    """The network is unreachable (connection refused, DNS failure, timeout) and nothing is
    cached for the request."""


class UnknownForceError(DownloadError):
    """data.police.uk answered 404 for a force id."""

    def __init__(self, message: str, *, force: str, url: str | None = None):
        super().__init__(message, url=url, status=404)
        self.force = force


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries for HTTP 429 (rate limit), 5xx and connections dropped mid-download.

    The API allows 15 requests a second (bursts of 30) and answers 429 above that; waiting and
    retrying is the documented remedy. ``sleep`` is injectable so tests never wait.
    """

    attempts: int = 5          # tries per request, the first included
    backoff: float = 1.0       # seconds before the second try; doubles on each further try
    max_backoff: float = 60.0  # cap on one wait, also applied to a server's Retry-After
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts: must be at least 1, got {self.attempts}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoff, max_backoff: must not be negative")

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                return min(max(float(retry_after), 0.0), self.max_backoff)
        return min(self.backoff * 2 ** (attempt - 1), self.max_backoff)


DEFAULT_RETRY = RetryPolicy()


def default_cache_dir() -> Path:
    """``$RUDI_CACHE_DIR/police_uk`` if the variable is set, else ``~/.cache/rudikit/police_uk``."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "rudikit"
    return base / "police_uk"


def _cache_root(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


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


# --- cache files ---------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks (archive zips can be gigabytes)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def recorded_sha256(path: str | Path) -> str | None:
    """The SHA-256 recorded when ``path`` was cached, or None if none was recorded."""
    sidecar = _sidecar(Path(path))
    if not sidecar.exists():
        return None
    text = sidecar.read_text(encoding="utf-8").split()
    return text[0] if text else None


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _record_sha256(path: Path, digest: str) -> None:
    _atomic_write_text(_sidecar(path), f"{digest}  {path.name}\n")


def _is_cached(path: Path, max_age: float | None = None,
               clock: Callable[[], float] = time.time) -> bool:
    """True if ``path`` is a usable cache entry: present, checksum right, not older than
    ``max_age`` seconds by ``clock`` (Unix seconds, as file times are; injected for tests).

    A file without a recorded checksum (e.g. copied in by hand for offline use) is accepted and
    its checksum recorded now.
    """
    if not path.is_file():
        return False
    recorded = recorded_sha256(path)
    actual = sha256_file(path)
    if recorded is None:
        _record_sha256(path, actual)
    elif recorded != actual:
        warnings.warn(f"{path}: cached file does not match its recorded SHA-256 "
                      f"({recorded[:12]}..., now {actual[:12]}...); fetching it again",
                      stacklevel=3)
        return False
    return max_age is None or clock() - path.stat().st_mtime <= max_age


# --- HTTP ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _client_scope(client: httpx.Client | None) -> Iterator[httpx.Client]:
    """Use the caller's client as is, or make (and close) one with sane timeouts."""
    if client is not None:
        yield client
        return
    with httpx.Client(timeout=httpx.Timeout(60.0, connect=15.0), follow_redirects=True,
                      headers={"User-Agent": USER_AGENT}) as own:
        yield own


def _offline_message(url: str, reason: str, cache_path: Path) -> str:
    return (
        f"Could not reach {url}: this machine appears to be offline, or data.police.uk is "
        f"unreachable ({reason}). Nothing usable is cached for this request "
        f"(looked for {cache_path}).\n"
        "To carry on without the network, either:\n"
        "  * on a connected machine, download the monthly archive zip "
        f"({ARCHIVE_URL}/YYYY-MM.zip, listed on https://data.police.uk/data/archive/), put "
        "its YYYY-MM/YYYY-MM-<force>-stop-and-search.csv files in a folder, and point the "
        "project's data source at that folder;\n"
        "  * or copy a rudikit cache filled on a connected machine into this machine's cache "
        f"folder (${CACHE_ENV} chooses where it is);\n"
        "  * or use the synthetic demo data, which needs no network: "
        "rudikit.data.synthetic.generate_archive(folder)."
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _download(client: httpx.Client, url: str, params: dict[str, str] | None, dest: Path,
              validate: Callable[[Path, str], None], retry: RetryPolicy) -> Path:
    """Stream ``url`` into ``dest`` atomically, retrying 429/5xx/dropped connections."""
    full_url = str(httpx.URL(url, params=params))
    dest.parent.mkdir(parents=True, exist_ok=True)
    last_problem = ""
    for attempt in range(1, retry.attempts + 1):
        retry_after: str | None = None
        tmp: str | None = None
        responded = False
        try:
            with client.stream("GET", url, params=params) as response:
                responded = True
                status = response.status_code
                if status == 200:
                    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part",
                                               dir=dest.parent)
                    digest = hashlib.sha256()
                    written = 0
                    with os.fdopen(fd, "wb") as handle:
                        for chunk in response.iter_bytes(_CHUNK):
                            handle.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                        handle.flush()
                        os.fsync(handle.fileno())
                    # Content-Length counts bytes on the wire: compressed if the server encoded
                    # the body, in which case httpx's own count of raw bytes is the one to use.
                    expected = response.headers.get("Content-Length", "")
                    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
                    got = response.num_bytes_downloaded if encoded else written
                    if expected.isdigit() and (got or not encoded) and int(expected) != got:
                        raise httpx.ReadError(f"got {got} of {expected} bytes")
                    validate(Path(tmp), full_url)
                    os.replace(tmp, dest)
                    tmp = None
                    _record_sha256(dest, digest.hexdigest())
                    return dest
                if status == 429 or status >= 500:
                    retry_after = response.headers.get("Retry-After")
                    last_problem = (f"HTTP {status} "
                                    + ("(rate limited)" if status == 429 else "(server error)"))
                else:
                    body = response.read()[:300].decode("utf-8", "replace").strip()
                    raise DownloadError(
                        f"{full_url} answered HTTP {status}"
                        + (f": {body}" if body else "") + "; nothing was cached",
                        url=full_url, status=status)
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            if not responded:
                raise OfflineError(_offline_message(full_url, _describe(exc), dest),
                                   url=full_url) from None
            last_problem = f"download interrupted ({_describe(exc)})"
        except httpx.TransportError as exc:
            last_problem = f"download interrupted ({_describe(exc)})"
        except httpx.HTTPError as exc:  # e.g. an invalid URL: not worth retrying
            raise DownloadError(f"{full_url}: {_describe(exc)}", url=full_url) from None
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        if attempt < retry.attempts:
            retry.sleep(retry.delay(attempt, retry_after))
    advice = ("data.police.uk allows about 15 requests a second; wait a minute and try again"
              if last_problem.startswith("HTTP 429") else "try again later")
    raise DownloadError(
        f"{full_url}: gave up after {retry.attempts} attempts, last: {last_problem}; nothing "
        f"was cached; {advice}", url=full_url)


def _fetch(url: str, params: dict[str, str] | None, dest: Path, *, client: httpx.Client | None,
           refresh: bool, retry: RetryPolicy | None, validate: Callable[[Path, str], None],
           max_age: float | None = None) -> Path:
    """Serve ``dest`` from the cache, or download it; fall back to a stale copy when offline."""
    if not refresh and _is_cached(dest, max_age):
        return dest
    try:
        with _client_scope(client) as active:
            return _download(active, url, params, dest, validate, retry or DEFAULT_RETRY)
    except DownloadError as exc:
        # Asked to refresh (or the copy is old) but cannot: an older good copy beats nothing.
        if dest.is_file() and _is_cached(dest) and (isinstance(exc, OfflineError)
                                                    or exc.status is None):
            warnings.warn(f"{exc.url}: could not refresh ({str(exc).splitlines()[0]}); "
                          f"using the cached copy {dest}", stacklevel=3)
            return dest
        raise


def _expect_json_list(path: Path, url: str) -> None:
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        start = raw[:80].decode("utf-8", "replace")
        raise DownloadError(f"{url} did not return JSON (it starts {start!r}); nothing was "
                            "cached", url=url) from None
    if not isinstance(data, list):
        raise DownloadError(f"{url} returned a JSON {type(data).__name__}, expected a list; "
                            "nothing was cached", url=url)


def _expect_zip(path: Path, url: str) -> None:
    if not zipfile.is_zipfile(path):
        raise DownloadError(f"{url} did not return a complete zip file; nothing was cached",
                            url=url)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- API: forces and availability ------------------------------------------------------------


def fetch_forces(*, cache_dir: str | Path | None = None, client: httpx.Client | None = None,
                 refresh: bool = False, retry: RetryPolicy | None = None) -> Path:
    """Cache ``/api/forces`` (list of ``{id, name}``) and return the cached JSON path."""
    dest = _cache_root(cache_dir) / "api" / "forces.json"
    return _fetch(f"{API_URL}/forces", None, dest, client=client, refresh=refresh, retry=retry,
                  validate=_expect_json_list, max_age=METADATA_MAX_AGE)


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
    dest = _cache_root(cache_dir) / "api" / "crimes-street-dates.json"
    return _fetch(f"{API_URL}/crimes-street-dates", None, dest, client=client, refresh=refresh,
                  retry=retry, validate=_expect_json_list, max_age=METADATA_MAX_AGE)


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
    root = _cache_root(cache_dir)
    dest = _stops_path(root, force, month)
    url = f"{API_URL}/stops-force"
    try:
        return _fetch(url, {"force": force, "date": month}, dest, client=client,
                      refresh=refresh, retry=retry, validate=_expect_json_list)
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
    with _client_scope(client) as active:
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
    dest = _cache_root(cache_dir) / "archive" / f"{month}.zip"
    return _fetch(f"{ARCHIVE_URL}/{month}.zip", None, dest, client=client, refresh=refresh,
                  retry=retry, validate=_expect_zip)


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
                        shutil.copyfileobj(src, out, _CHUNK)
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
