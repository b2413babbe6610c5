"""Fitted pipelines on disk: skops files named by the SHA-256 of their bytes.

A model is loaded only when its bytes hash to what the results store recorded, and skops is
told to trust only types from the libraries rudikit builds models with. A swapped or tampered
file is refused instead of executed (plain pickle would run whatever it contains).
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


class ArtefactError(Exception):
    pass


def save_artefact(model: Any, directory: str | Path) -> tuple[str, Path]:
    """Write ``model`` as ``<sha256>.skops`` in ``directory``; return (hash, path)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    import skops.io as sio  # here, not at import: it loads all of scikit-learn (0.5 s)

    data = sio.dumps(model)
    digest = hashlib.sha256(data).hexdigest()
    path = directory / f"{digest}.skops"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    return digest, path


def save_json_artefact(document: dict[str, Any], directory: str | Path) -> tuple[str, Path]:
    """Plain-data artefacts (e.g. mitigation thresholds): ``<sha256>.json``, never executed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = json.dumps(document, sort_keys=True, indent=1).encode()
    digest = hashlib.sha256(data).hexdigest()
    path = directory / f"{digest}.json"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    return digest, path


def load_artefact(path: str | Path, expected_hash: str) -> Any:
    """Load a model only if its bytes hash to ``expected_hash`` and its types are trusted."""
    path = Path(path)
    if not path.exists():
        raise ArtefactError(f"model file {path} does not exist")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_hash:
        raise ArtefactError(f"model file {path} has hash {digest[:12]}..., the store expects "
                            f"{expected_hash[:12]}...; refusing to load it")
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ArtefactError(f"model file {path} contains untrusted types: {', '.join(refused)}")
    return sio.loads(data, trusted=untrusted)
