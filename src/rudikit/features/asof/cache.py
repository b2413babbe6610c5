"""The Parquet cache of computed feature blocks: one folder per block, named by the SHA-256 of
its spec, the as-of dates and fingerprints of the tables it reads, so a rerun with the same
inputs reads the file and a changed input recomputes."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from rudikit.features.asof.specs import EventSpec, StateSpec

#: Bumped whenever the SQL of :mod:`rudikit.features.asof.sql` changes meaning, so old cache
#: entries are not reused.
CODE_VERSION = "asof-2"


def cache_key(kind: str, spec: object, as_of_dates: pd.DatetimeIndex,
              fingerprints: Mapping[str, str]) -> str:
    payload = {
        "version": CODE_VERSION, "kind": kind, "spec": asdict(spec),  # type: ignore[call-overload]
        "as_of_dates": [d.strftime("%Y-%m-%d") for d in as_of_dates],
        "tables": dict(sorted(fingerprints.items())),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Block:
    """One computed (or cached) block of features."""

    name: str
    key: str
    path: Path | None
    cached: bool
    seconds: float
    rows: int
    columns: list[str] = field(default_factory=list)
    table: str = ""  # the source table it reads


def run_cached(kind: str, spec: EventSpec | StateSpec, dates: pd.DatetimeIndex,
               fingerprints: Mapping[str, str], cache_dir: Path | None,
               compute: Callable[[], pd.DataFrame]) -> tuple[pd.DataFrame, Block]:
    """A block's frame from the cache when its key is there, else from ``compute`` (written to
    the cache, atomically, when there is one), and how it was made."""
    key = cache_key(kind, spec, dates, fingerprints)
    started = time.perf_counter()
    path = cache_dir / key / "features.parquet" if cache_dir else None
    if path is not None and path.exists():
        frame = pd.read_parquet(path)
        cached = True
    else:
        frame = compute()
        cached = False
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            frame.to_parquet(tmp, index=False)
            tmp.replace(path)
            (path.parent / "spec.json").write_text(json.dumps(
                {"kind": kind, "spec": asdict(spec),  # type: ignore[call-overload]
                 "as_of_dates": [d.strftime("%Y-%m-%d") for d in dates],
                 "tables": dict(fingerprints), "version": CODE_VERSION},
                indent=2, default=str), encoding="utf-8")
    block = Block(spec.name, key, path, cached, time.perf_counter() - started, len(frame),
                  list(frame.columns[2:]), spec.table)
    return frame, block
