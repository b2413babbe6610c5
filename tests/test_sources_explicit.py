"""No silent synthetic data: a missing source path fails, naming the field and the path, unless
the run asks for the seeded generator explicitly (``--allow-synthetic``; ``rudi demo`` writes it
into its own project)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.cli.develop import copy_example, synthetic_when_missing
from rudikit.config import ProjectError, load_project
from rudikit.store.engine import create_store_engine
from rudikit.store.tables import runs
from tests.conftest import SharedData, squeezed, stored_runs, write_project

runner = CliRunner()


def _missing_archive_project(folder: Path) -> tuple[Path, Path]:
    """A small project whose archive folder does not exist: (project folder, missing path)."""
    missing = folder / "no-such-data"
    write_project(folder, data={"entity_id": "record_id", "knowledge_date": "datetime",
                                "sources": [{"name": "searches", "kind": "police_uk_archive",
                                             "path": "no-such-data", "seed": 3,
                                             "rows_per_month": 300}]},
                  models=[{"algorithm": "logistic_regression", "params": {"C": [1.0]}}],
                  splits=[{"name": "last_month", "kind": "temporal",
                           "date_column": "datetime", "test_start": "2020-02-01"}])
    config = yaml.safe_load((folder / "rudi.yaml").read_text())
    config["evaluation"]["bootstrap"] = 0
    config["evaluation"]["selection"]["split"] = "last_month"
    config["fairness"]["requirements"] = []
    config["fairness"].pop("mitigation")
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder, missing


def test_run_on_a_missing_path_fails_naming_the_field_and_stores_nothing(tmp_path: Path
                                                                         ) -> None:
    folder, missing = _missing_archive_project(tmp_path / "p")
    for command in ("run", "validate"):
        result = runner.invoke(app, [command, str(folder)])
        assert result.exit_code == 2, result.output
        assert squeezed(f"data.sources[0].path: {missing} does not exist; pass "
                         "--allow-synthetic to run on the seeded synthetic generator instead"
                         ) in squeezed(result.output)
        assert "Traceback" not in result.output and "SYNTHETIC" not in result.output
    assert stored_runs(folder / ".rudi" / "rudi.db") == 0
    assert not (folder / ".rudi" / "cache").exists()  # no synthetic files were written either


def test_allow_synthetic_falls_back_and_says_so(tmp_path: Path) -> None:
    folder, missing = _missing_archive_project(tmp_path / "p")
    checked = runner.invoke(app, ["validate", str(folder), "--allow-synthetic"])
    assert checked.exit_code == 0, checked.output
    assert "searches (SYNTHETIC)" in checked.output
    result = runner.invoke(app, ["run", str(folder), "--allow-synthetic"])
    assert result.exit_code == 0, result.output
    assert squeezed(f"Data: SYNTHETIC for source 'searches': {missing} not found, so the "
                     "seeded synthetic generator was used (--allow-synthetic)"
                     ) in squeezed(result.output)
    assert "(SYNTHETIC data)" in result.output
    engine = create_store_engine(f"sqlite:///{folder / '.rudi' / 'rudi.db'}")
    with engine.connect() as conn:
        assert conn.execute(select(runs.c.data_origin)).scalars().all() == ["synthetic"]
    engine.dispose()


def test_a_fallback_key_in_rudi_yaml_is_refused(tmp_path: Path) -> None:
    folder, _ = _missing_archive_project(tmp_path / "p")
    config = yaml.safe_load((folder / "rudi.yaml").read_text())
    config["data"]["sources"][0]["fallback"] = "synthetic_stop_search"
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ProjectError) as caught:
        load_project(folder)
    assert caught.value.problems == [
        "data.sources[0]: 'fallback' is not read any more: a missing path is an error; to run "
        "on the seeded synthetic generator instead, pass --allow-synthetic to rudi run / "
        "rudi validate"]


def test_init_copies_no_fallback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "new" / "rudi.yaml").read_text()
    assert "fallback" not in text
    source = load_project(tmp_path / "new").data.sources[0]
    assert source.kind == "police_uk_archive" and source.path


def test_demo_project_without_the_archive_is_synthetic_in_its_rudi_yaml(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rudi demo` on a machine without ../shared/data: the choice is written in the demo
    project's rudi.yaml, so run, monitor and retrain all read the same synthetic data."""
    monkeypatch.setenv("RUDI_DATA_DIR", str(tmp_path / "absent"))
    folder = copy_example("stop_search", tmp_path / "demo")
    assert synthetic_when_missing(folder) == tmp_path / "absent" / "stop_and_search"
    text = (folder / "rudi.yaml").read_text()
    assert "kind: synthetic_stop_search  # rudi demo: the archive folder is missing" in text
    assert "      # path: ${RUDI_DATA_DIR:-" in text
    source = load_project(folder).data.sources[0]
    assert source.kind == "synthetic_stop_search" and source.path is None


def test_demo_project_with_the_archive_is_unchanged(shared_data: SharedData, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUDI_DATA_DIR", raising=False)
    shared_data / "stop_and_search"  # noqa: B018 - present, or skip/fail
    folder = copy_example("stop_search", tmp_path / "demo")
    before = (folder / "rudi.yaml").read_text()
    assert synthetic_when_missing(folder) is None
    assert (folder / "rudi.yaml").read_text() == before
    assert load_project(folder).data.sources[0].kind == "police_uk_archive"
