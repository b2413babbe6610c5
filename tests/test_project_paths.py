"""A project is served from any working directory: the store records each model file by its
path inside the project (``.rudi/models/<sha256>.skops``), not relative to where `rudi run` ran,
and resolves it against the project folder when the model is deployed or served. Stores written
before (paths relative to the old working directory, or absolute ones into a folder since moved)
still load: the file name is its content hash, checked on load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.models.artefacts import ArtefactError, artefact_file, load_artefact, stored_path
from rudikit.run.develop import run_project
from rudikit.service.app import create_app
from rudikit.service.deploy import deploy, load_deployed_model
from rudikit.service.settings import ServiceSettings
from rudikit.store.engine import open_store, store_project_dir
from rudikit.store.tables import models
from tests.conftest import write_project

runner = CliRunner()


def _tiny(folder: Path) -> Path:
    """One logistic regression on a small synthetic project, no bootstrap, no requirements."""
    write_project(folder, models=[{"algorithm": "logistic_regression", "params": {"C": [1.0]}}])
    config = yaml.safe_load((folder / "rudi.yaml").read_text())
    config["data"]["sources"][0].update(rows_per_month=400, months=["2020-01", "2020-02"],
                                        forces=["essex"])
    config["splits"] = config["splits"][:1]  # last_month only
    config["evaluation"]["bootstrap"] = 0
    config["fairness"]["requirements"] = []
    config["fairness"].pop("mitigation", None)
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _db(url: str | None, schema: str | None) -> list[str]:
    return ["--database-url", url, "--database-schema", schema] if url and schema else []


def test_run_in_one_directory_serve_from_another_and_from_a_moved_copy(
        tmp_path: Path, store: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch) -> None:
    url, schema = store
    if schema is None:  # SQLite: the project's own store, so it moves with the project
        url = None
    (tmp_path / "work").mkdir()
    _tiny(tmp_path / "work" / "proj")
    monkeypatch.chdir(tmp_path / "work")
    result = run_project(Path("proj"), url=url, schema=schema)
    project = tmp_path / "work" / "proj"
    assert result.selected is not None  # (the example's refit of the one group)
    model_id = result.selected.model_id  # what `rudi deploy <group>` deploys
    engine = open_store(url, project, schema=schema)
    with engine.connect() as conn:
        stored, digest = conn.execute(select(models.c.artefact_path, models.c.artefact_hash)
                                      .where(models.c.id == model_id)).one()
    engine.dispose()
    assert stored == f".rudi/models/{digest}.skops"  # the project's path, not "proj/.rudi/..."

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    done = runner.invoke(app, ["deploy", str(result.selected.model_group_id), str(project),
                               "--reason", "served from elsewhere", "--by", "pytest",
                               "--waive", "a test project", *_db(url, schema)])
    assert done.exit_code == 0, done.output
    # the project moved (a copy on the server): its store and its relative paths go with it
    moved = tmp_path / "server" / "proj"
    shutil.copytree(project, moved)
    shutil.rmtree(project)
    engine = open_store(url, moved, schema=schema)
    try:
        loaded = load_deployed_model(engine, project_dir=moved, explained=False)
        assert loaded.model_id == model_id  # its file found in the moved project, hash checked
        # `rudi serve` (the app it runs) from a working directory that is not the project
        settings = ServiceSettings(project_dir=moved, database_url=url, schema=schema)
        with TestClient(create_app(settings)) as client:
            health = client.get("/health").json()
        assert health["model_loaded"] is True and health["status"] == "ok", health
    finally:
        engine.dispose()


def _fitted_store(tmp_path: Path) -> tuple[Path, int, int, str]:
    """(project folder, model group id, model id, hash) of a run whose store is the project's
    own SQLite."""
    folder = _tiny(tmp_path / "proj")
    result = run_project(folder)
    model = result.models[0]
    assert model.artefact is not None
    return folder, model.model_group_id, model.model_id, model.artefact[0]


def test_stores_written_before_keep_working(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Old stores held the path as `rudi run` saw it: relative to its working directory
    (``examples/x/.rudi/models/...``) or absolute. Both load from any working directory, and
    an absolute path into a folder since moved finds the file in the project by its hash."""
    folder, group_id, model_id, digest = _fitted_store(tmp_path)
    engine = open_store(None, folder)
    assert store_project_dir(engine) == folder.resolve()
    name = f"{digest}.skops"
    deploy(engine, group_id, model_id=model_id, reason="old store", by="pytest")
    monkeypatch.chdir(tmp_path)
    for old in (f"proj/.rudi/models/{name}", str(folder / ".rudi" / "models" / name),
                f"/no/longer/here/.rudi/models/{name}", f"somewhere/else/{name}"):
        with engine.begin() as conn:
            conn.execute(update(models).where(models.c.id == model_id).values(
                artefact_path=old))
        monkeypatch.chdir(tmp_path / "proj" / ".rudi")  # neither the project nor the old cwd
        expected = Path(old) if Path(old).exists() else folder / ".rudi" / "models" / name
        assert artefact_file(old, folder) == expected, old
        # the store's own project is used when the caller names none (a SQLite store)
        assert load_deployed_model(engine, explained=False).model_id == model_id, old
        monkeypatch.chdir(tmp_path)
    engine.dispose()


def test_stored_paths_and_a_missing_file(tmp_path: Path) -> None:
    project = tmp_path / "p"
    inside = project / ".rudi" / "models" / "ab.skops"
    assert stored_path(inside) == ".rudi/models/ab.skops"
    assert stored_path(tmp_path / "models" / "ab.skops") == str(tmp_path / "models" / "ab.skops")
    with pytest.raises(ArtefactError, match=r"model file .*/p/\.rudi/models/ab\.skops does not "
                                            r"exist in project .*/p$"):
        load_artefact(".rudi/models/ab.skops", "ab", project)
