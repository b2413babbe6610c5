"""Unification: every ``data.sources`` entry loaded into one table, with a snapshot per source.

A snapshot (rows, bad rows, SHA-256 over the files' bytes, date range) is what lets a later
reader prove which data a model saw, and notice when a "historical" file was rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rudikit.config import Project, Source
from rudikit.config.data import STREAMED_KINDS
from rudikit.data import download, police_uk, sql, synthetic
from rudikit.data.compas.loading import load_compas
from rudikit.data.compas.table import build_compas_table
from rudikit.data.download_http import DownloadError
from rudikit.data.group_size import with_group_size
from rudikit.data.validation import Problem, ValidationReport


class SourceError(ValueError):
    pass


@dataclass
class LoadedSource:
    name: str
    kind: str
    location: str
    origin: str  # "real" or "synthetic"
    files: list[Path]
    frame: pd.DataFrame
    report: ValidationReport
    checksum: str
    note: str = ""
    span: tuple[Any, Any] | None = None  # the date range, when not the ``datetime`` column's

    @property
    def date_range(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        if self.span is not None:
            return self.span
        if "datetime" not in self.frame or self.frame["datetime"].isna().all():
            return None, None
        return self.frame["datetime"].min(), self.frame["datetime"].max()


def table_fingerprint(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """SHA-256 of a table's columns, dtypes and values: any edit changes it."""
    part = frame[list(columns)] if columns is not None else frame
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in part.dtypes.items()]).encode())
    digest.update(str(len(part)).encode())
    if len(part):
        digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def files_checksum(files: list[Path], root: Path) -> str:
    """SHA-256 over each file's relative name and bytes, in name order."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _archive_files(root: Path, source: Source) -> list[Path]:
    files = sorted(root.rglob("*-stop-and-search.csv")) if root.is_dir() else [root]
    chosen = []
    for path in files:
        match = police_uk.ARCHIVE_FILE_RE.match(path.name)
        if not match:
            continue
        if source.forces and match.group("force") not in source.forces:
            continue
        if source.months and match.group("month") not in source.months:
            continue
        chosen.append(path)
    return chosen


def resolve_path(source: Source, project_dir: Path) -> Path | None:
    """The source's path made absolute against the project folder (None: it has none)."""
    if not source.path:
        return None
    path = Path(source.path).expanduser()
    return path if path.is_absolute() else (project_dir / path).resolve()


def _load_files(source: Source, files: list[Path], where: str, categories: bool = False
                ) -> tuple[pd.DataFrame, ValidationReport]:
    """The files' rows stacked; ``categories``: each file's normalised text as categoricals
    (:func:`rudikit.data.police_uk.as_categories`) as soon as it is read."""
    frames, report = [], ValidationReport(source=source.name)
    for path in files:
        try:
            if source.kind in ("police_uk_archive", "synthetic_stop_search"):
                frame, rep = police_uk.read_archive_file(path)
            elif source.kind == "police_uk_api_csv":
                frame, rep = police_uk.read_api_csv(path, source.force or "")
            elif source.kind in ("police_uk_api_json", "police_uk_api"):
                frame, rep = police_uk.read_api_json(path, source.force or "")
            elif source.kind == "csv":
                frame = pd.read_csv(path, dtype_backend="pyarrow")
                rep = ValidationReport(source=path.name, rows=len(frame))
            else:  # parquet
                frame = pd.read_parquet(path)
                rep = ValidationReport(source=path.name, rows=len(frame))
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise SourceError(f"{where}: cannot read {path}: {exc}") from None
        frames.append(police_uk.as_categories(frame) if categories
                      and source.normalised else frame)
        report = report.merge(rep)
    if source.kind in ("csv", "parquet"):
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    else:
        frame = police_uk.concat(frames)
    report.source = source.name
    return frame, report


def _synthetic(source: Source, cache_dir: Path, why: str) -> tuple[list[Path], Path, str]:
    dest = cache_dir / f"synthetic-seed{source.seed}"
    months = tuple(source.months) if source.months else synthetic.DEFAULT_MONTHS
    kwargs = {"months": months, "seed": source.seed}
    if source.forces:
        kwargs["forces"] = tuple(source.forces)
    if source.rows_per_month:
        kwargs["rows_per_month"] = source.rows_per_month
        dest = dest.with_name(dest.name + f"-{source.rows_per_month}rows")
    files = synthetic.generate_archive(dest, **kwargs)
    return files, dest, why


#: The suffix of the files each file kind reads from a folder (an archive lists its own).
_FOLDER_SUFFIX = {"police_uk_api_csv": ".csv", "police_uk_api_json": ".json", "csv": ".csv",
                  "parquet": ".parquet"}
#: The kinds read from files, whose bytes can be checksummed without parsing them.
FILE_KINDS = ("police_uk_archive", *_FOLDER_SUFFIX)


def _listed_files(source: Source, path: Path) -> tuple[list[Path], Path]:
    """The files a source with an existing ``path`` reads, and the root they are named from."""
    root = path if path.is_dir() else path.parent
    if source.kind == "police_uk_archive":
        return _archive_files(path, source), root
    if path.is_dir():
        return sorted(path.rglob(f"*{_FOLDER_SUFFIX[source.kind]}")), root
    return [path], root


def files_fingerprint(source: Source, project_dir: str | Path) -> str | None:
    """The checksum :func:`load_source` would record for ``source``, from its files' bytes
    without parsing them, so a monitor pass can tell an unchanged source without loading it;
    None for a source known only by reading it (SQL, COMPAS, the API, the generator)."""
    listed = _existing_files(source, project_dir, FILE_KINDS)
    return files_checksum(*listed) if listed else None


def source_frames(source: Source, project_dir: str | Path, where: str
                  ) -> tuple[list[str], Iterator[pd.DataFrame]] | None:
    """The rows :func:`load_source` would load, file by file and typed alike (stacked in order
    they are its frame), and their columns, known before any file is read: a reader can digest
    a source of millions of rows without holding it. None for a source that is not read from
    existing files of :data:`~rudikit.config.data.STREAMED_KINDS` (load it whole)."""
    listed = _existing_files(source, project_dir, STREAMED_KINDS)
    if listed is None:
        return None
    return list(police_uk.COLUMNS), (_load_files(source, [f], where)[0] for f in listed[0])


def _existing_files(source: Source, project_dir: str | Path,
                    kinds: tuple[str, ...]) -> tuple[list[Path], Path] | None:
    """The files (and their root) of a source of one of ``kinds`` whose path exists and holds
    at least one; None otherwise (the loader then says what is wrong)."""
    if source.kind not in kinds:
        return None
    path = resolve_path(source, Path(project_dir))
    if path is None or not path.exists():
        return None
    files, root = _listed_files(source, path)
    return (files, root) if files else None


def load_source(source: Source, project_dir: str | Path, where: str,
                cache_dir: str | Path | None = None, *,
                allow_synthetic: bool = False, categories: bool = False) -> LoadedSource:
    """Load one source. ``where`` is its key path (``data.sources[0]``) for error messages.
    ``categories``: a :attr:`~rudikit.config.Source.normalised` source holds its text columns as
    categoricals from each file on (:func:`rudikit.data.police_uk.as_categories`).

    A missing path is an error: only ``allow_synthetic`` (the caller's explicit run-time choice,
    e.g. ``--allow-synthetic``) lets the seeded generator stand in for a missing
    ``police_uk_archive`` folder, and the source then says it is synthetic."""
    project_dir = Path(project_dir)
    cache = Path(cache_dir) if cache_dir else project_dir / ".rudi" / "cache"
    path = resolve_path(source, project_dir)
    origin, note = "real", ""
    if source.kind == "synthetic_stop_search":
        files, root, note = _synthetic(source, cache, "synthetic source requested")
        origin = "synthetic"
    elif source.kind == "police_uk_api":
        root = path or cache / "police_uk"
        try:
            files = [download.fetch_stops_force(source.force or "", month, cache_dir=root)
                     for month in source.months or []]
        except DownloadError as exc:
            raise SourceError(f"{where}: {exc}") from None
        note = f"police.uk API, cached in {root}"
    elif source.kind == "sql":
        try:
            frame, report, location, note = sql.load_sql(source, where, cache)
        except sql.SqlSourceError as exc:
            raise SourceError(str(exc)) from None
        # no files to hash: the checksum is the normalised table's, which the same rows give
        # by any route (e.g. the archive's CSVs and the table they were loaded into)
        return LoadedSource(source.name, source.kind, location, "real", [], frame, report,
                            table_fingerprint(frame), note)
    elif source.kind == "compas" and path is not None and path.exists():
        try:
            data = load_compas(path)
            frame = build_compas_table(data, **source.options)
        except (ValueError, OSError, TypeError) as exc:
            raise SourceError(f"{where}: cannot build the COMPAS table from {path}: {exc}"
                              ) from None
        files = [Path(f) for f in data.files]
        root = Path(data.location) if Path(data.location).is_dir() else Path(data.location).parent
        report = ValidationReport(source=source.name, rows=len(frame))
        return LoadedSource(source.name, source.kind, str(root), "real", files, frame, report,
                            files_checksum(files, root),
                            f"COMPAS cases, label {frame.attrs.get('label', '')}".strip())
    elif path is None or not path.exists():
        archive = source.kind == "police_uk_archive"
        if not (allow_synthetic and archive):
            hint = ("; pass --allow-synthetic to run on the seeded synthetic generator instead"
                    if archive and not allow_synthetic else "")
            raise SourceError(f"{where}.path: {path} does not exist{hint}")
        files, root, note = _synthetic(
            source, cache, f"{path} not found, so the seeded synthetic generator was used "
                           "(--allow-synthetic)")
        origin = "synthetic"
    else:
        files, root = _listed_files(source, path)
        if not files:
            raise SourceError(f"{where}.path: no data files for kind {source.kind!r} in {path}"
                              + (" matching the forces/months filter" if source.forces
                                 or source.months else ""))
    frame, report = _load_files(source, files, where, categories)
    if source.kind == "police_uk_archive" and origin == "real" and frame.empty:
        report.problems.append(Problem(source.name, None, None, "no rows loaded",
                                       severity="warning"))
    return LoadedSource(source.name, source.kind, str(root), origin, files, frame, report,
                        files_checksum(files, root), note)


def unify(project: Project, project_dir: Path, *, allow_synthetic: bool = False,
          categories: bool = False) -> tuple[pd.DataFrame, list[LoadedSource]]:
    """Load every source; stack them when they share a layout (e.g. several police.uk feeds);
    add the group size when the project asks (:mod:`rudikit.data.group_size`).
    ``allow_synthetic``: see :func:`load_source`. ``categories``: when every source is
    :attr:`~rudikit.config.Source.normalised`, their text columns are categoricals from each
    file on, so the text of millions of rows is never held (:func:`loaded_as_categories`
    names them)."""
    categories = categories and all(s.normalised for s in project.data.sources)
    loaded = [load_source(s, project_dir, f"data.sources[{i}]", allow_synthetic=allow_synthetic,
                          categories=categories)
              for i, s in enumerate(project.data.sources)]
    frame = stacked(loaded)
    grouped = project.features.group_size
    if grouped is not None:  # counted over every loaded row, before any split
        try:
            frame = with_group_size(frame, grouped.by, grouped.column)
        except ValueError as exc:  # the data already has the count's name
            raise SourceError(str(exc)) from None
    return frame, loaded


def loaded_as_categories(project: Project, frame: pd.DataFrame) -> dict[str, str]:
    """The columns :func:`unify` with ``categories`` loaded as categoricals, with the dtype
    they are text as (what they would have been loaded as)."""
    if not all(s.normalised for s in project.data.sources):
        return {}
    return {c: police_uk.COLUMNS[c] for c in police_uk.CATEGORY_COLUMNS
            if c in frame.columns and isinstance(frame[c].dtype, pd.CategoricalDtype)}


def stacked(loaded: list[LoadedSource]) -> pd.DataFrame:
    """The sources' rows in one table (one source's frame as it is)."""
    if len(loaded) == 1:
        return loaded[0].frame
    return pd.concat(police_uk.shared_categories([s.frame for s in loaded]), ignore_index=True)
