"""The linked CPDB tables are cached per project (data/event_tables.py): the cached tables equal
a fresh load exactly, and any change to a file makes a fresh load."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from rudikit.config import load_project
from rudikit.data import event_tables
from rudikit.data.cpdb import tables as cpdb_tables
from tests.test_eis import project_config

pytestmark = pytest.mark.xdist_group("cpdb")


def _project(folder: Path, data: Path) -> Any:
    config = project_config(data)
    config["data"]["sources"][0] = {"name": "cpdb", "kind": "chicago_cpdb", "path": str(data)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return load_project(folder)


def test_cached_tables_equal_a_fresh_load_and_a_changed_file_reloads(
        cpdb_loaded, shared_data, tmp_path, monkeypatch) -> None:
    data = tmp_path / "chicago_cpdb"
    shutil.copytree(shared_data / "eis/chicago_cpdb", data)
    loads: list[str] = []

    def counted(path: Any) -> Any:
        loads.append(str(path))
        return cpdb_loaded  # the session's fresh load of the same bytes

    monkeypatch.setattr(cpdb_tables, "load_cpdb", counted)
    project = _project(tmp_path / "p", data)
    first, first_sources = event_tables.load_event_tables(project, tmp_path / "p")
    again, again_sources = event_tables.load_event_tables(project, tmp_path / "p")
    assert len(loads) == 1  # the second read came from the cache
    for name, frame in cpdb_loaded.tables().items():
        pd.testing.assert_frame_equal(again[name], frame, check_exact=True)
    assert [s.checksum for s in again_sources] == [s.checksum for s in first_sources]
    assert again_sources[0].note == first_sources[0].note  # the linking summary survives
    gz = next(data.glob("TRR-subjects_*.csv.gz"))
    gz.chmod(0o644)
    gz.write_bytes(gz.read_bytes() + b"\n")  # any byte changes the key
    event_tables.load_event_tables(project, tmp_path / "p")
    assert len(loads) == 2
