"""Fitted pipelines on disk: skops files named by the SHA-256 of their bytes.

A model is loaded only when its bytes hash to what the results store recorded, and skops is
told to trust only types from the libraries rudikit builds models with. A swapped or tampered
file is refused instead of executed (plain pickle would run whatever it contains).

The store records a project's artefact by its path inside the project
(``.rudi/models/<sha256>.skops``, :func:`stored_path`) and resolves it against the project
folder when it is loaded (:func:`artefact_file`), so ``rudi serve`` and ``rudi score`` work from
any working directory and after the project folder is moved.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

TRUSTED_PREFIXES = ("rudikit.", "sklearn.", "lightgbm.", "numpy.", "scipy.", "builtins.",
                    "collections.")


#: The folder inside a project that holds its results store, models, reports and caches.
PROJECT_STATE = ".rudi"


class ArtefactError(Exception):
    pass


def stored_path(path: str | Path) -> str:
    """How the store records an artefact file: from the project's ``.rudi`` folder on
    (``.rudi/models/<sha256>.skops``), relative to the project folder whatever the working
    directory of the command that wrote it; absolute for a file outside any project."""
    path = Path(path).resolve()
    parts = path.parts
    if PROJECT_STATE not in parts:
        return str(path)
    start = len(parts) - 1 - parts[::-1].index(PROJECT_STATE)
    return Path(*parts[start:]).as_posix()


def artefact_file(stored: str | Path, project_dir: str | Path | None) -> Path:
    """The file a stored artefact path names. A relative path is the project's (under
    ``project_dir``); stores written before paths were made project-relative hold paths
    relative to where ``rudi run`` ran, or absolute ones to where the project was, so those are
    tried next, then the project's model folder by file name (the name is the content hash,
    and the bytes are hash-checked on load, so a file found this way is the recorded one)."""
    path = Path(stored)
    candidates = [path] if path.is_absolute() else []
    if project_dir is not None:
        project = Path(project_dir)
        if not path.is_absolute():
            candidates.append(project / path)
        candidates.append(project / PROJECT_STATE / "models" / path.name)
    if not path.is_absolute():
        candidates.append(path)  # relative to the working directory, as older stores meant
    return next((c for c in candidates if c.exists()), candidates[0])


def artefact_bytes(model: Any) -> tuple[str, bytes]:
    """(SHA-256, skops bytes) of ``model``: computed where the model was fitted (an executor
    task), so only bytes travel back and the driver, which stores every fit in turn, spends no
    time serialising a forest of a thousand trees."""
    import skops.io as sio  # here, not at import: it loads all of scikit-learn (0.5 s)

    data = sio.dumps(model)
    return hashlib.sha256(data).hexdigest(), data


def write_artefact(digest: str, data: bytes, directory: str | Path, suffix: str = ".skops"
                   ) -> Path:
    """Write ``data`` as ``<digest><suffix>`` in ``directory`` (once: the name is the content
    hash); return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{digest}{suffix}"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    return path


def save_artefact(model: Any, directory: str | Path) -> tuple[str, Path]:
    """Write ``model`` as ``<sha256>.skops`` in ``directory``; return (hash, path)."""
    digest, data = artefact_bytes(model)
    return digest, write_artefact(digest, data, directory)


def save_json_artefact(document: dict[str, Any], directory: str | Path) -> tuple[str, Path]:
    """Plain-data artefacts (e.g. mitigation thresholds): ``<sha256>.json``, never executed."""
    data = json.dumps(document, sort_keys=True, indent=1).encode()
    digest = hashlib.sha256(data).hexdigest()
    return digest, write_artefact(digest, data, directory, ".json")


def load_artefact(path: str | Path, expected_hash: str, project_dir: str | Path | None = None
                  ) -> Any:
    """Load a model only if its bytes hash to ``expected_hash`` and its types are trusted.
    ``path`` is as the store recorded it (:func:`artefact_file` resolves it against
    ``project_dir``)."""
    path = artefact_file(path, project_dir)
    if not path.exists():
        where = f" in project {Path(project_dir).resolve()}" if project_dir is not None else ""
        raise ArtefactError(f"model file {path} does not exist{where}")
    return artefact_from_bytes(path.read_bytes(), expected_hash, f"model file {path}")


def artefact_from_bytes(data: bytes, expected_hash: str, name: str = "model") -> Any:
    """:func:`load_artefact`'s checks and loading on bytes already read: an executor task
    gets a model's bytes, since a worker on another machine cannot read the driver's disk.
    ``name`` says in an error which model it was."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_hash:
        raise ArtefactError(f"{name} has hash {digest[:12]}..., the store expects "
                            f"{expected_hash[:12]}...; refusing to load it")
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ArtefactError(f"{name} contains untrusted types: {', '.join(refused)}")
    return sio.loads(data, trusted=untrusted)
