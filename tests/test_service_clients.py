"""The service with real clients (issue 17): requests named as the data.police.uk files name
their columns, with the NaN tokens Python writes and a project-declared alias; unseen forces
reported; and no training/serving skew: the same raw rows score the same through the loaders
and through the service."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from test_service_support import ServiceStore, Trained, auth, counts, service_store, trained

from rudikit.config import Source
from rudikit.data.police_uk import ARCHIVE_COLUMNS
from rudikit.data.sources import load_source
from rudikit.models.artefacts import load_artefact
from rudikit.service.app import create_app
from rudikit.service.errors import ServiceError
from rudikit.service.settings import ServiceSettings

XDIST_SHARED_CACHE = True  # one trained project and one app for the module

#: The model's inputs by the names a data.police.uk archive file gives them (force: `station`,
#: the project's alias; the archive has no force column, the force is in the file name).
LOG_NAMES = {"Type": "type", "Gender": "gender", "Age range": "age_range",
             "Officer-defined ethnicity": "officer_defined_ethnicity",
             "Legislation": "legislation", "Object of search": "object_of_search",
             "station": "force", "Part of a policing operation": "part_of_a_policing_operation",
             "Latitude": "latitude", "Longitude": "longitude", "Date": "datetime"}
UNSEEN_FORCES = ("devon-and-cornwall", "north-yorkshire")


def project_with_aliases(folder: Path, project: Trained, service: dict[str, Any]) -> Path:
    """The trained project's rudi.yaml with a ``service`` section, in ``folder``."""
    config = yaml.safe_load((project.folder / "rudi.yaml").read_text(encoding="utf-8"))
    config["service"] = service
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[TestClient, ServiceStore, Any]]:
    """The trained LightGBM model served from a project declaring ``station`` as ``force``."""
    project = trained(tmp_path_factory)
    folder = project_with_aliases(tmp_path_factory.mktemp("clients"), project,
                                  {"field_aliases": {"station": "force"}})
    url = f"sqlite:///{folder / 'store.db'}"
    s = service_store(url, None, project)
    app = create_app(ServiceSettings(project_dir=folder, database_url=url, max_batch=50,
                                     token_cache_seconds=0.0))
    pipeline = load_artefact(project.artefacts["lightgbm"].path,
                             project.artefacts["lightgbm"].digest)
    with TestClient(app) as client:
        yield client, s, pipeline
    s.engine.dispose()


def request_log(pipeline: Any, n: int, seed: int = 17) -> list[dict[str, Any]]:
    """``n`` requests as a stop-and-search app logs them: data.police.uk field names, float
    NaN for a missing value (json.dumps writes NaN), the force under ``station`` (some never
    seen in training), fields the model does not use, an impossible latitude now and then."""
    encoder = pipeline.named_steps["encode"]
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2022-01-01T00:00:00+00:00")
    log = []
    for i in range(n):
        row: dict[str, Any] = {"observation_id": f"log-{i:04d}"}
        for name, column in LOG_NAMES.items():
            if column in encoder.categorical:
                known = encoder.categories_[column]
                row[name] = known[int(rng.integers(len(known)))]
        if rng.random() < 0.1:
            row["station"] = UNSEEN_FORCES[int(rng.integers(2))]
        row["Part of a policing operation"] = [True, False, math.nan][int(rng.integers(3))]
        row["Latitude"] = float(np.round(rng.uniform(50, 55), 6))
        row["Longitude"] = float(np.round(rng.uniform(-3, 1), 6))
        if rng.random() < 0.05:
            row["Latitude"] = 999.0
        stamp = start + pd.Timedelta(minutes=int(rng.integers(0, 500_000)))
        row["Date"] = stamp.isoformat()
        for name in ("Gender", "Age range", "Latitude", "Longitude"):
            if rng.random() < 0.1:
                row[name] = math.nan
        row["Outcome"] = "A no further action disposal"  # the label: not an input
        row["Self-defined ethnicity"] = math.nan
        log.append(row)
    return log


def as_training_row(row: dict[str, Any]) -> dict[str, Any]:
    """A logged request as the loaders would hold it: canonical names, NaN missing, an
    impossible point missing."""
    out = {column: row[name] for name, column in LOG_NAMES.items()}
    out = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in out.items()}
    if out["latitude"] is not None and abs(out["latitude"]) > 90:
        out["latitude"] = out["longitude"] = None
    return out


def test_a_request_log_in_police_uk_names_with_nans_and_an_alias_gets_every_answer(
        served) -> None:
    """500 logged rows, replayed as sent (100 one by one, the rest in batches of 50): every
    one answered, unseen forces reported, the score the fitted pipeline gives the row as the
    loaders hold it."""
    client, s, pipeline = served
    log = request_log(pipeline, 500)
    answers = []
    for row in log[:100]:
        body = json.dumps(row)  # NaN, as Python clients write it
        r = client.post("/predict", content=body, headers=auth(s.tokens["predict"]))
        assert r.status_code == 200, (row, r.text)
        answers.append(r.json())
    for start in range(100, 500, 50):
        body = json.dumps({"observations": log[start:start + 50]})
        r = client.post("/predict", content=body, headers=auth(s.tokens["predict"]))
        assert r.status_code == 200, r.text
        answers += r.json()["predictions"]
    assert len(answers) == 500
    unseen = [a["unseen"] for a in answers]
    expected_unseen = [{"force": row["station"]} if row["station"] in UNSEEN_FORCES else {}
                       for row in log]
    assert unseen == expected_unseen
    assert sum(bool(u) for u in unseen) > 20
    for row, answer in zip(log, answers, strict=True):
        assert answer["ignored_fields"] == ["Outcome", "Self-defined ethnicity"]
        impossible = not math.isnan(row["Latitude"]) and row["Latitude"] > 90
        assert set(answer["set_missing"]) == (
            ({"latitude"} | ({"longitude"} if not math.isnan(row["Longitude"]) else set()))
            if impossible else set())
    # the oracle: the whole pipeline on the rows as training data holds them
    frame = pd.DataFrame([as_training_row(row) for row in log])
    expected = pipeline.predict_proba(frame)[:, 1]
    np.testing.assert_allclose([a["score"] for a in answers], expected, rtol=0, atol=1e-12)
    # stored under the model's own names, as received (NaN: null), for retraining
    stored = client.get("/predictions/log-0000", headers=auth(s.tokens["analyst"])).json()
    assert set(stored["features"]) == set(LOG_NAMES.values())
    assert stored["features"]["force"] == log[0]["station"]


# --- no training/serving skew ----------------------------------------------------------------

#: Raw rows as an archive file holds them (text; "" is an empty cell), with what the loaders'
#: rules change: an impossible point, padded and empty text, a date a table cannot hold.
RAW_ROWS: list[dict[str, str]] = [
    dict(zip(("Latitude", "Longitude", "Gender", "Date"), values, strict=True)) for values in [
        ("51.5", "-0.12", "Male", "2020-01-05T13:20:00+00:00"),
        ("999", "-0.12", "Female", "2020-01-06T02:10:00+00:00"),
        ("51.5", "-200", " Male ", "2020-01-07T23:05:00+01:00"),
        ("-95.5", "", "", "2020-01-08T10:00:00+00:00"),
        ("", "", "  ", "1500-01-01T10:00:00+00:00"),
        ("52.2", "0.1", "Female", "")]]


def archive_rows(pipeline: Any) -> list[dict[str, str]]:
    """``RAW_ROWS`` completed to the 15 archive columns, each row twice: once in a seen force's
    file, once in an unseen one's."""
    encoder = pipeline.named_steps["encode"]
    seen = {c: encoder.categories_[c][0] for c in encoder.categorical}
    rows = []
    for i, raw in enumerate(RAW_ROWS):
        row = dict.fromkeys(ARCHIVE_COLUMNS, "")
        row.update({"Type": seen["type"], "Age range": seen["age_range"],
                    "Officer-defined ethnicity": seen["officer_defined_ethnicity"],
                    "Legislation": seen["legislation"],
                    "Object of search": seen["object_of_search"],
                    "Part of a policing operation": ["True", "False", ""][i % 3]})
        row.update(raw)
        rows.append(row)
    return rows


def as_request(row: dict[str, str], force: str, oid: str) -> dict[str, Any]:
    """The archive row as a client sends it: JSON types (a number, a boolean), NaN for an
    empty numeric cell, the text as it is, the force as ``station``."""
    body: dict[str, Any] = {"observation_id": oid, "station": force}
    for name, value in row.items():
        if name in ("Latitude", "Longitude"):
            body[name] = float(value) if value else math.nan
        elif name == "Part of a policing operation":
            body[name] = {"True": True, "False": False}.get(value)
        elif name == "Date":
            body[name] = value or None
        else:
            body[name] = value
    return body


def test_the_same_raw_rows_score_the_same_through_the_loaders_and_the_service(
        served, tmp_path: Path) -> None:
    """Archive files read by the loaders (as `rudi run` reads them) and the same rows sent to
    the service: the same scores to 1e-12, the loaders' rules applied by both."""
    client, s, pipeline = served
    rows = archive_rows(pipeline)
    forces = [pipeline.named_steps["encode"].categories_["force"][0], UNSEEN_FORCES[0]]
    folder = tmp_path / "archive"
    folder.mkdir()
    for force in forces:
        pd.DataFrame(rows, columns=list(ARCHIVE_COLUMNS)).to_csv(
            folder / f"2020-01-{force}-stop-and-search.csv", index=False)
    loaded = load_source(Source(name="archive", kind="police_uk_archive", path=str(folder)),
                         tmp_path, "data.sources[0]")
    frame = loaded.frame.assign(order=loaded.frame["force"].map(forces.index)).sort_values(
        ["order", "source_row"]).reset_index(drop=True)
    assert len(frame) == 2 * len(rows)
    X = frame[pipeline.named_steps["encode"].input_columns]
    trained_scores = pipeline.predict_proba(X)[:, 1]

    bodies = [as_request(row, force, f"skew-{force}-{i}") for force in forces
              for i, row in enumerate(rows)]
    r = client.post("/predict", content=json.dumps({"observations": bodies}),
                    headers=auth(s.tokens["predict"]))
    assert r.status_code == 200, r.text
    answers = r.json()["predictions"]
    np.testing.assert_allclose([a["score"] for a in answers], trained_scores, rtol=0,
                               atol=1e-12)
    # the rules did apply, to both: the values training blanked are listed in the answer
    missing = [set(a["set_missing"]) for a in answers[:len(rows)]]
    assert missing == [set(), {"latitude", "longitude"}, {"latitude", "longitude"},
                       {"latitude", "gender"}, {"gender", "datetime"}, set()]
    assert frame["latitude"].isna().iloc[1:5].all() and frame["longitude"].isna().iloc[1:5].all()
    assert frame["gender"].iloc[2] == "Male" and pd.isna(frame["datetime"].iloc[4])
    assert [a["unseen"] for a in answers] == [{}] * len(rows) + [
        {"force": UNSEEN_FORCES[0]}] * len(rows)
    # and they matter: the raw values as sent, unruled, score otherwise
    unruled = X.copy()
    unruled.loc[1, "latitude"] = 999.0
    unruled.loc[2, "longitude"] = -200.0
    assert abs(pipeline.predict_proba(unruled.iloc[[1, 2]])[:, 1]
               - trained_scores[[1, 2]]).max() > 1e-6


# --- aliases: errors and settings ------------------------------------------------------------


def test_a_field_given_twice_or_wrong_under_an_alias_is_named_as_sent(served) -> None:
    client, s, pipeline = served
    body = as_request(archive_rows(pipeline)[0], "metropolitan", "alias-1")
    before = counts(s.engine)
    r = client.post("/predict", json={**body, "force": "metropolitan"},
                    headers=auth(s.tokens["predict"]))
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["field"] == "station" and error["type"] == "duplicate_field"
    assert error["msg"] == "names force, also given as 'force': send it once"
    r = client.post("/predict", json={"observations": [body, {**body, "Gender": 5,
                                                              "observation_id": "alias-2"}]},
                    headers=auth(s.tokens["predict"]))
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["observations[1].Gender"]
    missing = {k: v for k, v in body.items() if k != "Object of search"}
    r = client.post("/predict", json=missing, headers=auth(s.tokens["predict"]))
    (error,) = r.json()["errors"]
    assert error["field"] == "object_of_search" and error["type"] == "missing"
    assert "also accepted as 'Object of search'" in error["msg"]
    assert counts(s.engine) == before


def test_aliases_and_the_nan_setting_come_from_rudi_yaml(tmp_path: Path,
                                                          tmp_path_factory) -> None:
    project = trained(tmp_path_factory)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    s = service_store(url, None, project)
    for aliases, message in [({"station": "forse"}, "no field 'forse'; did you mean 'force'?"),
                             ({"gender": "force"}, "'gender' is a field of the deployed model")]:
        folder = project_with_aliases(tmp_path / f"bad-{len(message)}", project,
                                      {"field_aliases": aliases})
        with pytest.raises(ServiceError, match=re.escape(message)):
            create_app(ServiceSettings(project_dir=folder, database_url=url))
    folder = project_with_aliases(tmp_path / "no-nan", project, {"nan_as_missing": False})
    lightgbm = project.artefacts["lightgbm"]
    body = as_request(archive_rows(load_artefact(lightgbm.path, lightgbm.digest))[3],
                      "metropolitan", "nan-1")
    body["force"] = body.pop("station")  # no alias declared here
    with TestClient(create_app(ServiceSettings(project_dir=folder, database_url=url))
                    ) as client:
        r = client.post("/predict", content=json.dumps(body), headers=auth(s.tokens["predict"]))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
        assert "station" not in client.get("/openapi.json", headers=auth(
            s.tokens["predict"])).json()["components"]["schemas"]["Observation"]["properties"]
    # the command line wins over rudi.yaml
    with TestClient(create_app(ServiceSettings(project_dir=folder, database_url=url,
                                               nan_as_missing=True))) as client:
        r = client.post("/predict", content=json.dumps(body), headers=auth(s.tokens["predict"]))
        assert r.status_code == 200, r.text
    s.engine.dispose()
