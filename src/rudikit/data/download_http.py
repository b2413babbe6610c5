"""Fetching one data.police.uk URL into the download cache: streamed, retried on 429, 5xx and
dropped connections, checked before it is kept, and served from the cache (or a stale copy when
offline) when it can be.

Network failures never surface as raw httpx tracebacks: they become :class:`DownloadError` (or
its subclasses) with the URL, the reason and what to do next.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from rudikit import __version__
from rudikit.data.download_cache import CACHE_ENV, CHUNK, is_cached, record_sha256

BASE_URL = "https://data.police.uk"
API_URL = f"{BASE_URL}/api"
ARCHIVE_URL = f"{BASE_URL}/data/archive"
USER_AGENT = f"rudikit/{__version__} (stop-and-search research toolkit)"


class DownloadError(RuntimeError):
    """A download failed. The message names the URL, the reason and what to do next."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class OfflineError(DownloadError):
    """The network is unreachable (connection refused, DNS failure, timeout) and nothing is
    cached for the request."""


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


@contextlib.contextmanager
def client_scope(client: httpx.Client | None) -> Iterator[httpx.Client]:
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
                        for chunk in response.iter_bytes(CHUNK):
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
                    record_sha256(dest, digest.hexdigest())
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


def fetch_to_cache(url: str, params: dict[str, str] | None, dest: Path, *,
                   client: httpx.Client | None, refresh: bool, retry: RetryPolicy | None,
                   validate: Callable[[Path, str], None], max_age: float | None = None) -> Path:
    """Serve ``dest`` from the cache, or download it; fall back to a stale copy when offline."""
    if not refresh and is_cached(dest, max_age):
        return dest
    try:
        with client_scope(client) as active:
            return _download(active, url, params, dest, validate, retry or DEFAULT_RETRY)
    except DownloadError as exc:
        # Asked to refresh (or the copy is old) but cannot: an older good copy beats nothing.
        if dest.is_file() and is_cached(dest) and (isinstance(exc, OfflineError)
                                                    or exc.status is None):
            warnings.warn(f"{exc.url}: could not refresh ({str(exc).splitlines()[0]}); "
                          f"using the cached copy {dest}", stacklevel=3)
            return dest
        raise


def expect_json_list(path: Path, url: str) -> None:
    """An API answer is kept only if it is a JSON list (an error page is not)."""
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


def expect_zip(path: Path, url: str) -> None:
    """An archive is kept only if it is a complete zip."""
    if not zipfile.is_zipfile(path):
        raise DownloadError(f"{url} did not return a complete zip file; nothing was cached",
                            url=url)
