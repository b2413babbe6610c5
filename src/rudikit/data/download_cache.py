"""The download cache: where it lives, and entries that are written atomically and checked.

A cached file is reused without any network access; every cached file is written atomically
(temporary file, then rename) so an interrupted download never leaves a half file behind, and its
SHA-256 is recorded next to it (``<file>.sha256``, ``sha256sum`` format) so a corrupted entry is
noticed and fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "RUDI_CACHE_DIR"
#: Bytes read or written at a time (archive zips can be gigabytes).
CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$RUDI_CACHE_DIR/police_uk`` if the variable is set, else ``~/.cache/rudikit/police_uk``."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "rudikit"
    return base / "police_uk"


def cache_root(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()



def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks (archive zips can be gigabytes)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
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


def record_sha256(path: Path, digest: str) -> None:
    _atomic_write_text(_sidecar(path), f"{digest}  {path.name}\n")


def is_cached(path: Path, max_age: float | None = None,
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
        record_sha256(path, actual)
    elif recorded != actual:
        warnings.warn(f"{path}: cached file does not match its recorded SHA-256 "
                      f"({recorded[:12]}..., now {actual[:12]}...); fetching it again",
                      stacklevel=3)
        return False
    return max_age is None or clock() - path.stat().st_mtime <= max_age
