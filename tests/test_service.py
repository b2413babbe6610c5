"""The prediction service in-process (FastAPI TestClient) on SQLite and PostgreSQL: validation,
idempotency, outcomes, auth, metrics, refusing a tampered model, deployments and tokens."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shlex
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text, update
from starlette.routing import Route
from test_service_support import (
    ServiceStore,
    Trained,
    auth,
    counts,
    observation,
    register,
    service_store,
    trained,
)
from typer.testing import CliRunner

from rudikit.cli import app as cli
from rudikit.cli.service import dashboard_banner
from rudikit.models.artefacts import load_artefact
from rudikit.service.app import create_app
from rudikit.service.auth import ROLES, create_token, list_tokens, revoke_token
from rudikit.service.deploy import deploy, history, load_deployed_model
from rudikit.service.errors import ServiceError
from rudikit.service.metrics import new_request_id
from rudikit.service.observations import parse_observations
from rudikit.service.scoring import Scorer, sample_rows
from rudikit.service.settings import ServiceSettings
from rudikit.service.writer.jobs import PredictJob, PredictResult
from rudikit.store import production_tables as pt
from rudikit.store.engine import open_store

FEATURES = ["type", "gender", "age_range", "officer_defined_ethnicity", "legislation",
            "object_of_search", "force", "part_of_a_policing_operation", "latitude",
            "longitude", "datetime"]


@pytest.fixture
def project(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return trained(tmp_path_factory)


@pytest.fixture
def svc(store: tuple[str, str | None], project: Trained, tmp_path: Path) -> Iterator[
        tuple[TestClient, ServiceStore]]:
    url, schema = store
    s = service_store(url, schema, project, threshold=0.4)
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema,
                                     max_batch=50, token_cache_seconds=0.0))
    with TestClient(app) as client:
        yield client, s
    s.engine.dispose()


def post(client: TestClient, s: ServiceStore, body: Any, role: str = "predict",
         path: str = "/predict") -> Any:
    return client.post(path, json=body, headers=auth(s.tokens[role]))


def errors_by_field(response: Any) -> dict[str, dict[str, Any]]:
    return {e["field"]: e for e in response.json()["errors"]}


# --- predictions -----------------------------------------------------------------------------


def test_a_single_observation_is_scored_stored_and_answered(svc, project) -> None:
    client, s = svc
    before = counts(s.engine)
    r = post(client, s, observation("obs-1", extra_note="ignored", officer="x"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["observation_id"] == "obs-1"
    assert body["model_id"] == s.model_id and body["threshold"] == 0.4
    assert body["decision"] == (body["score"] >= 0.4)
    assert body["ignored_fields"] == ["extra_note", "officer"]
    assert body["replayed"] is False
    assert body["request_id"] == r.headers["x-request-id"]
    # the same score as the whole fitted pipeline on a DataFrame
    pipeline = load_artefact(project.artefacts["lightgbm"].path,
                             project.artefacts["lightgbm"].digest)
    row = {k: v for k, v in observation("obs-1").items() if k != "observation_id"}
    expected = pipeline.predict_proba(pd.DataFrame([row]))[:, 1][0]
    assert body["score"] == pytest.approx(expected, abs=1e-12)
    after = counts(s.engine)
    assert after["requests"] == before["requests"] + 1
    assert after["production_predictions"] == before["production_predictions"] + 1
    with s.engine.connect() as conn:
        stored = conn.execute(select(pt.production_predictions).where(
            pt.production_predictions.c.observation_id == "obs-1")).mappings().one()
        request = conn.execute(select(pt.requests).where(
            pt.requests.c.id == body["request_id"])).mappings().one()
    assert stored["request_id"] == body["request_id"] and stored["model_id"] == s.model_id
    assert stored["features"] == row  # the inputs as received, for retraining
    assert stored["score"] == body["score"] and stored["decision"] == body["decision"]
    assert stored["ignored_fields"] == ["extra_note", "officer"]
    assert request["token_id"] == s.token_ids["predict"] and request["latency_ms"] > 0
    assert request["n_observations"] == 1 and request["n_new"] == 1


def test_a_batch_is_stored_as_one_request(svc) -> None:
    client, s = svc
    before = counts(s.engine)
    r = post(client, s, {"observations": [observation(f"b-{i}", latitude=50 + i)
                                          for i in range(5)]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["observation_id"] for p in body["predictions"]] == [f"b-{i}" for i in range(5)]
    assert {p["request_id"] for p in body["predictions"]} == {body["request_id"]}
    after = counts(s.engine)
    assert after["requests"] == before["requests"] + 1
    assert after["production_predictions"] == before["production_predictions"] + 5


def test_null_values_and_unknown_categories_are_normal_input(svc) -> None:
    client, s = svc
    nulls = observation("nulls", **{f: None for f in FEATURES})
    unseen = observation("unseen", force="a force never seen", object_of_search="Unicorns",
                         datetime="2021-06-01T23:30:00-05:00")
    for body in (nulls, unseen):
        r = post(client, s, body)
        assert r.status_code == 200, r.text
        assert 0.0 <= r.json()["score"] <= 1.0


def test_unseen_categories_are_reported_per_observation_and_scored_as_missing(svc, project
                                                                            ) -> None:
    client, s = svc
    encoder = load_artefact(project.artefacts["lightgbm"].path,
                            project.artefacts["lightgbm"].digest).named_steps["encode"]
    seen = {c: encoder.categories_[c][0] for c in encoder.categorical}
    r = post(client, s, {"observations": [
        observation("u-0", **seen), observation("u-1", **{**seen, "force": "devon-and-cornwall"}),
        observation("u-2", **{**seen, "force": None, "object_of_search": "Unicorns"}),
        observation("u-3", **{**seen, "force": "devon-and-cornwall", "object_of_search": None})]})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert [p["unseen"] for p in predictions] == [
        {}, {"force": "devon-and-cornwall"}, {"object_of_search": "Unicorns"},
        {"force": "devon-and-cornwall"}]
    # an unseen value is scored exactly as a missing one: now the answer says so
    missing = post(client, s, observation("u-4", **{**seen, "force": None})).json()
    assert missing["unseen"] == {} and missing["score"] == predictions[1]["score"]
    # a replay answers with the same report; reading the prediction back has none to give
    again = post(client, s, observation("u-1", **{**seen, "force": "devon-and-cornwall"})).json()
    assert again["replayed"] is True and again["unseen"] == {"force": "devon-and-cornwall"}
    stored = client.get("/predictions/u-1", headers=auth(s.tokens["analyst"])).json()
    assert stored["features"]["force"] == "devon-and-cornwall" and "unseen" not in stored


def test_the_nan_tokens_python_writes_are_missing_values(svc) -> None:
    """``json.dumps`` writes float("nan") as NaN (not JSON); the service reads it as null."""
    client, s = svc
    nan, inf = float("nan"), float("inf")
    body = json.dumps(observation("nan-1", gender=nan, latitude=inf, longitude=-inf))
    assert "NaN" in body and "-Infinity" in body
    r = client.post("/predict", content=body, headers=auth(s.tokens["predict"]))
    assert r.status_code == 200, r.text
    same = post(client, s, observation("nan-2", gender=None, latitude=None, longitude=None))
    assert r.json()["score"] == same.json()["score"]
    with s.engine.connect() as conn:
        stored = conn.execute(select(pt.production_predictions.c.features).where(
            pt.production_predictions.c.observation_id == "nan-1")).scalar_one()
    assert stored["gender"] is None and stored["latitude"] is None
    # still refused: what is not JSON for another reason, even beside a NaN
    before = counts(s.engine)
    for bad in ('{"observation_id": "nan-3", "gender": NaN, "force": "\\ud800"}',
                '{"observation_id": "nan-3", "gender": NaN, "latitude": 1e400}',
                '{"observation_id": "nan-3", "gender": NaN',
                '[NaN]',
                '{"observation_id": NaN, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"):
        r = client.post("/predict", content=bad, headers=auth(s.tokens["predict"]))
        assert r.status_code == 422, bad[:80]
        assert list(errors_by_field(r)) == ["body"]
    r = client.post("/predict", content=json.dumps({"observation_id": nan}),
                    headers=auth(s.tokens["predict"]))
    assert errors_by_field(r)["observation_id"]["type"] == "string_type"  # null: not an id
    # an integer too long for 64 bits is a float, as orjson reads it without a NaN beside it
    big = observation("nan-5", latitude=10**30, longitude=nan)
    r = client.post("/predict", content=json.dumps(big), headers=auth(s.tokens["predict"]))
    assert r.status_code == 200, r.text
    assert post(client, s, {**big, "observation_id": "nan-6", "longitude": None}).json()[
        "score"] == r.json()["score"]
    assert counts(s.engine)["production_predictions"] == before["production_predictions"] + 2


def test_the_nan_tokens_can_be_refused(store, project, tmp_path) -> None:
    url, schema = store
    s = service_store(url, schema, project)
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema,
                                     nan_as_missing=False))
    with TestClient(app) as client:
        before = counts(s.engine)
        r = client.post("/predict", content=json.dumps(observation("nan-4", latitude=math.nan)),
                        headers=auth(s.tokens["predict"]))
        assert r.status_code == 422
        assert "NaN and Infinity are not JSON: send null" in errors_by_field(r)["body"]["msg"]
        assert counts(s.engine) == before
    s.engine.dispose()


def test_odd_extra_field_names_are_listed_not_fatal(svc) -> None:
    client, s = svc
    r = post(client, s, observation("odd-extra", **{"bad\u0000name": 1, "ünïcode": [1]}))
    assert r.status_code == 200, r.text
    assert r.json()["ignored_fields"] == ["bad\ufffdname", "ünïcode"]


def test_missing_fields_are_a_422_naming_every_one_and_nothing_is_stored(svc) -> None:
    client, s = svc
    before = counts(s.engine)
    body = observation("m-1")
    for name in ("gender", "latitude", "datetime"):
        del body[name]
    r = post(client, s, body)
    assert r.status_code == 422
    fields = errors_by_field(r)
    assert set(fields) == {"gender", "latitude", "datetime"}
    assert all(e["type"] == "missing" for e in fields.values())
    for name in ("gender", "latitude", "datetime"):
        assert name in r.json()["detail"]
    # every key missing, observation_id included
    r = post(client, s, {"something": 1})
    assert r.status_code == 422
    assert set(errors_by_field(r)) == {"observation_id", *FEATURES}
    # in a batch, the path says which observation
    r = post(client, s, {"observations": [observation("ok"), {
        k: v for k, v in observation("m-2").items() if k != "force"}]})
    assert r.status_code == 422
    assert set(errors_by_field(r)) == {"observations[1].force"}
    assert counts(s.engine) == before


@pytest.mark.parametrize(("field", "value"), [
    ("gender", 5), ("force", ["a"]), ("part_of_a_policing_operation", "yes"),
    ("part_of_a_policing_operation", 1), ("latitude", "51,5"), ("latitude", True),
    ("datetime", "31/01/2020"), ("datetime", 1580000000), ("observation_id", 7),
    ("observation_id", ""), ("gender", "Ma\u0000le")])
def test_a_wrong_type_is_a_422_naming_the_field(svc, field, value) -> None:
    client, s = svc
    before = counts(s.engine)
    r = post(client, s, observation("w-1", **{field: value}))
    assert r.status_code == 422, r.text
    assert list(errors_by_field(r)) == [field]
    assert field in r.json()["detail"]
    assert counts(s.engine) == before


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-00:01"])
def test_a_datetime_outside_the_utc_range_is_a_422_naming_the_field(svc, stamp) -> None:
    """Read in UTC these fall in year 0 or 10000: an OverflowError (a 500) before."""
    client, s = svc
    before = counts(s.engine)
    r = post(client, s, observation("dt-1", datetime=stamp))
    assert r.status_code == 422, r.text
    assert errors_by_field(r)["datetime"]["msg"].endswith("outside years 1 to 9999 in UTC")
    assert "datetime" in r.json()["detail"]
    r = post(client, s, {"observations": [observation("dt-2"), observation("dt-3",
                                                                          datetime=stamp)]})
    assert r.status_code == 422, r.text
    assert list(errors_by_field(r)) == ["observations[1].datetime"]
    assert counts(s.engine) == before
    # the same instants with an offset that keeps them in range are scored
    inside = "0001-01-01T00:00:00-01:00" if stamp.startswith("0001") else stamp[:-6] + "+00:01"
    assert post(client, s, observation("dt-4", datetime=inside)).status_code == 200


def test_category_values_and_field_names_have_a_length_bound(svc) -> None:
    client, s = svc
    before = counts(s.engine)
    r = post(client, s, observation("long-1", gender="M" * 10_000_000))
    assert r.status_code == 422
    assert errors_by_field(r)["gender"]["type"] == "string_too_long"
    assert "at most 1000 characters" in r.json()["detail"]
    assert len(r.content) < 2_000  # the value is not echoed back
    name = "x" * 201
    r = post(client, s, {"observations": [observation("long-2"),
                                          observation("long-3", **{name: 1, "note": 2})]})
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert error["field"] == f"observations[1].{'x' * 40}..."
    assert error["msg"] == "a field name of 201 characters; at most 200"
    assert error["field"] in r.json()["detail"] and len(r.content) < 2_000
    assert counts(s.engine) == before
    # at the bounds: accepted and stored as sent
    r = post(client, s, observation("long-4", gender="M" * 1000, **{"y" * 200: 1}))
    assert r.status_code == 200, r.text
    assert r.json()["ignored_fields"] == ["y" * 200]


def test_the_length_bounds_are_settings(store, project, tmp_path) -> None:
    url, schema = store
    s = service_store(url, schema, project)
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema,
                                     max_value_length=40, max_field_name_length=3))
    longest = len("part_of_a_policing_operation")  # a bound never refuses the model's fields
    with TestClient(app) as client:
        doc = client.get("/openapi.json", headers=auth(s.tokens["predict"])).json()
        observation_schema = doc["components"]["schemas"]["Observation"]
        assert observation_schema["properties"]["gender"]["anyOf"][0]["maxLength"] == 40
        assert observation_schema["propertyNames"] == {"maxLength": longest}
        r = post(client, s, observation("short-1", gender="F" * 41))
        assert list(errors_by_field(r)) == ["gender"]
        r = post(client, s, observation("short-2", **{"n" * (longest + 1): 1}))
        assert list(errors_by_field(r)) == ["n" * (longest + 1)]
        assert post(client, s, observation("short-3", gender="F" * 40,
                                           **{"n" * longest: 1})).status_code == 200
    s.engine.dispose()


@pytest.mark.parametrize(("content", "field"), [
    (b"{not json", "body"), (b"[1, 2]", "body"), (b"", "body"),
    (b'{"observations": []}', "observations"), (b'{"observations": {"a": 1}}', "observations"),
    (b'{"observations": [1]}', "observations[0]")])
def test_a_malformed_body_is_a_422_not_a_stack_trace(svc, content, field) -> None:
    client, s = svc
    before = counts(s.engine)
    r = client.post("/predict", content=content, headers=auth(s.tokens["predict"]))
    assert r.status_code == 422
    assert field in errors_by_field(r)
    assert "Traceback" not in r.text
    assert counts(s.engine) == before


def test_batch_limits_and_repeated_ids_within_a_batch(svc) -> None:
    client, s = svc
    before = counts(s.engine)
    r = client.post("/predict", content=b" " * (17 * 1024 * 1024),
                    headers=auth(s.tokens["predict"]))
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    r = post(client, s, {"observations": [observation(f"big-{i}") for i in range(51)]})
    assert r.status_code == 422 and "51" in r.json()["detail"]
    r = post(client, s, {"observations": [observation("dup"), observation("dup")]})
    assert r.status_code == 422
    assert list(errors_by_field(r)) == ["observations[1].observation_id"]
    assert counts(s.engine) == before


def test_the_same_observation_again_returns_the_stored_answer(svc) -> None:
    client, s = svc
    first = post(client, s, observation("idem-1"))
    assert first.status_code == 200
    before = counts(s.engine)
    again = post(client, s, observation("idem-1", unrelated_extra="x"))
    assert again.status_code == 200
    replay = again.json()
    assert replay.pop("replayed") is True
    original = first.json()
    original.pop("replayed")
    assert replay == original  # same score, decision, model, request id, time
    after = counts(s.engine)
    assert after["production_predictions"] == before["production_predictions"]
    assert after["requests"] == before["requests"] + 1  # the request itself is recorded
    # in a batch: the stored answer for the old one, a new prediction for the new one
    r = post(client, s, {"observations": [observation("idem-1"), observation("idem-2")]})
    assert r.status_code == 200
    predictions = r.json()["predictions"]
    assert predictions[0]["replayed"] is True
    assert predictions[0]["request_id"] == original["request_id"]
    assert predictions[1]["replayed"] is False


def test_the_same_observation_id_with_another_payload_is_a_409(svc) -> None:
    client, s = svc
    assert post(client, s, observation("conf-1")).status_code == 200
    before = counts(s.engine)
    r = post(client, s, observation("conf-1", latitude=52.0))
    assert r.status_code == 409
    assert list(errors_by_field(r)) == ["observation_id"]
    assert "conf-1" in r.json()["detail"] and "different payload" in r.json()["detail"]
    # a batch with one conflicting observation stores nothing at all
    r = post(client, s, {"observations": [observation("conf-2"),
                                          observation("conf-1", gender="Female")]})
    assert r.status_code == 409
    assert list(errors_by_field(r)) == ["observations[1].observation_id"]
    assert counts(s.engine) == before


# --- outcomes and reads ----------------------------------------------------------------------


def test_outcomes_404_201_200_409(svc) -> None:
    client, s = svc
    predicted = post(client, s, observation("out-1")).json()
    before = counts(s.engine)
    r = post(client, s, {"observation_id": "nope", "outcome": 1}, "outcome", "/outcomes")
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    assert counts(s.engine) == before
    r = post(client, s, {"observation_id": "out-1", "outcome": 1}, "outcome", "/outcomes")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["outcome"] == 1 and body["already_recorded"] is False
    assert body["prediction"]["score"] == predicted["score"]
    assert body["prediction"]["request_id"] == predicted["request_id"]
    assert body["decision_correct"] == (predicted["decision"] is True)
    assert counts(s.engine)["outcomes"] == before["outcomes"] + 1
    # identical again (true == 1): 200, nothing new
    r = post(client, s, {"observation_id": "out-1", "outcome": True}, "outcome", "/outcomes")
    assert r.status_code == 200 and r.json()["already_recorded"] is True
    assert r.json()["recorded_at"] == body["recorded_at"]
    # a different outcome: 409, nothing changes
    r = post(client, s, {"observation_id": "out-1", "outcome": 0}, "outcome", "/outcomes")
    assert r.status_code == 409 and "already has outcome 1" in r.json()["detail"]
    assert counts(s.engine)["outcomes"] == before["outcomes"] + 1
    with s.engine.connect() as conn:
        stored = conn.execute(select(pt.outcomes)).mappings().all()
        prediction_id = conn.execute(select(pt.production_predictions.c.id).where(
            pt.production_predictions.c.observation_id == "out-1")).scalar_one()
    assert [(o["prediction_id"], o["outcome"]) for o in stored] == [(prediction_id, 1)]


def test_outcomes_by_request_id_and_their_validation(svc) -> None:
    client, s = svc
    single = post(client, s, observation("req-1")).json()
    batch = post(client, s, {"observations": [observation("req-2"), observation("req-3")]})
    r = post(client, s, {"request_id": single["request_id"], "outcome": False}, "outcome",
             "/outcomes")
    assert r.status_code == 201 and r.json()["observation_id"] == "req-1"
    before = counts(s.engine)
    r = post(client, s, {"request_id": batch.json()["request_id"], "outcome": 1}, "outcome",
             "/outcomes")
    assert r.status_code == 422 and "observation_id" in r.json()["detail"]
    for bad, field in [({"observation_id": "req-2", "outcome": 2}, "outcome"),
                       ({"observation_id": "req-2", "outcome": "yes"}, "outcome"),
                       ({"observation_id": "req-2"}, "outcome"),
                       ({"outcome": 1}, "body"),
                       ({"observation_id": "req-2", "request_id": "x", "outcome": 1}, "body")]:
        r = post(client, s, bad, "outcome", "/outcomes")
        assert r.status_code == 422, bad
        assert any(e["field"].startswith(field) for e in r.json()["errors"]), r.json()
    assert counts(s.engine) == before


def test_a_stored_prediction_can_be_read_with_its_outcome(svc) -> None:
    client, s = svc
    predicted = post(client, s, observation("read-1", latitude=None)).json()
    post(client, s, {"observation_id": "read-1", "outcome": 0}, "outcome", "/outcomes")
    for key in ("read-1", predicted["request_id"]):
        r = client.get(f"/predictions/{key}", headers=auth(s.tokens["analyst"]))
        assert r.status_code == 200
        body = r.json()
        assert body["score"] == predicted["score"] and body["outcome"] == 0
        assert body["features"]["latitude"] is None
    r = client.get("/predictions/unknown", headers=auth(s.tokens["analyst"]))
    assert r.status_code == 404


# --- auth ------------------------------------------------------------------------------------

#: which roles each endpoint admits (admin always)
ALLOWED = {"/predict": {"predict"}, "/outcomes": {"outcome"},
           "/predictions/{prediction_id}": {"analyst"}, "/metrics": {"analyst"},
           "/lists/{date}": {"analyst", "review"}, "/reviews": {"review"},
           "/openapi.json": set(ROLES), "/docs": set(ROLES), "/redoc": set(ROLES)}


def test_every_route_but_health_needs_a_token_with_the_right_role(svc) -> None:
    client, s = svc
    routes = [(r.path, method) for r in client.app.routes if isinstance(r, Route)
              for method in sorted(r.methods or []) if method != "HEAD"]
    assert {path for path, _ in routes} == set(ALLOWED) | {"/health", "/"}
    revoked_id, revoked = create_token(s.engine, "admin", "old", "pytest")
    revoke_token(s.engine, revoked_id, "pytest")
    before = counts(s.engine)
    for path, method in routes:
        url = path.replace("{prediction_id}", "x")
        if path == "/health":
            assert client.request(method, url).status_code == 200
            continue
        if path == "/":  # open: a redirect to the dashboard, which asks for a token itself
            r = client.request(method, url, follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (307, "/ui/")
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-token"},
                        {"Authorization": "Basic abc"}, auth(revoked)):
            r = client.request(method, url, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.headers["www-authenticate"] == "Bearer"
        for role in ROLES:
            r = client.request(method, url, headers=auth(s.tokens[role]),
                               content=b"{}" if method == "POST" else None)
            if role == "admin" or role in ALLOWED[path]:
                assert r.status_code not in (401, 403), (path, role, r.text)
            else:
                assert r.status_code == 403, (path, role)
                assert role in r.json()["detail"]
    assert counts(s.engine) == before


def test_the_root_redirects_to_the_dashboard_and_is_not_an_api_operation(svc) -> None:
    client, s = svc
    for headers in ({}, auth(s.tokens["predict"]), {"Authorization": "Bearer not-a-token"}):
        r = client.get("/", headers=headers, follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "/ui/"
        assert r.content == b""  # says nothing about the service
    # followed without a token, a browser ends on the dashboard's login form
    r = client.get("/")
    assert r.status_code == 200 and r.url.path == "/ui/login"
    document = client.get("/openapi.json", headers=auth(s.tokens["analyst"])).json()
    assert "/" not in document["paths"] and "/ui/" not in document["paths"]


def test_a_revoked_token_stops_working(svc) -> None:
    client, s = svc
    token_id, token = create_token(s.engine, "predict", "short-lived", "pytest")
    assert post(client, s, observation("rev-1"), "predict").status_code == 200
    assert client.post("/predict", json=observation("rev-2"),
                       headers=auth(token)).status_code == 200
    revoke_token(s.engine, token_id, "pytest")
    r = client.post("/predict", json=observation("rev-3"), headers=auth(token))
    assert r.status_code == 401
    with s.engine.connect() as conn:
        row = conn.execute(select(pt.api_tokens).where(pt.api_tokens.c.id == token_id)
                           ).mappings().one()
    assert row["revoked_by"] == "pytest" and token not in str(dict(row))


def test_health_and_metrics(svc) -> None:
    client, s = svc
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model_loaded": True, "store_reachable": True,
                        "deployment_current": True, "deployment_id": 1, "reload_error": None}
    post(client, s, observation("met-1"))
    post(client, s, {"observation_id": "met-2"})
    r = client.get("/metrics", headers=auth(s.tokens["analyst"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    requests = {(x.labels["endpoint"], x.labels["status"]): x.value
                for x in families["rudi_http_requests"].samples if x.name.endswith("_total")}
    assert requests[("/predict", "200")] == 1 and requests[("/predict", "422")] == 1
    buckets = [x for x in families["rudi_http_request_duration_seconds"].samples
               if x.name.endswith("_bucket") and x.labels["endpoint"] == "/predict"]
    assert buckets and buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 2
    assert "rudi_store_group_commit_jobs" in families
    model = families["rudi_model_info"].samples[0].labels
    assert model["model_id"] == str(s.model_id)


def test_the_openapi_document_has_examples_and_the_observation_schema(svc) -> None:
    client, s = svc
    assert client.get("/openapi.json").status_code == 401
    doc = client.get("/openapi.json", headers=auth(s.tokens["predict"])).json()
    observation_schema = doc["components"]["schemas"]["Observation"]
    assert set(observation_schema["required"]) == {"observation_id", *FEATURES}
    # the data.police.uk names each feature is also accepted under
    aliases = observation_schema["x-aliases"]
    assert aliases["Object of search"] == "object_of_search" and aliases["Date"] == "datetime"
    assert {k for k, v in aliases.items() if v == "part_of_a_policing_operation"} == {
        "Part of a policing operation", "operation"}
    assert "Also accepted as 'Gender'." in observation_schema["properties"]["gender"][
        "description"]
    kinds = {name: prop["anyOf"][0] for name, prop in observation_schema["properties"].items()
             if "anyOf" in prop}
    assert kinds["gender"]["type"] == "string"
    assert kinds["part_of_a_policing_operation"]["type"] == "boolean"
    assert kinds["latitude"]["type"] == "number"
    # the data.police.uk API's shape: coordinates as strings, nested in location
    assert observation_schema["properties"]["latitude"]["anyOf"][1]["type"] == "string"
    assert observation_schema["x-nested"] == {"location.latitude": "latitude",
                                              "location.longitude": "longitude"}
    assert kinds["datetime"] == {"type": "string", "format": "date-time"}
    assert kinds["gender"]["maxLength"] == 1000  # the documented bounds are those enforced
    assert observation_schema["propertyNames"] == {"maxLength": 200}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                assert body["examples"], (path, method)
            assert operation["security"] == ([] if path == "/health" else
                                             [{"bearerAuth": []}])
    for name in ("PredictionOut", "BatchPredictionOut", "OutcomeOut", "HealthOut", "ErrorOut",
                 "PredictionDetail", "OutcomeIn", "Observation"):
        assert doc["components"]["schemas"][name].get("examples"), name
    for path, call in (("/docs", "SwaggerUIBundle({spec: "), ("/redoc", "Redoc.init(")):
        page = client.get(path, headers=auth(s.tokens["analyst"]))
        assert page.status_code == 200 and call in page.text, path
        # served from the package, not a CDN: no external script or stylesheet, and the
        # library itself (not only the call) is in the page
        assert "<script src" not in page.text and "<link" not in page.text, path
        assert len(page.text) > 1_000_000 and '"/predict"' in page.text, path
        assert client.get(path).status_code == 401


def test_the_documented_predict_examples_are_accepted_as_they_are(svc) -> None:
    """The examples keep their explicit nulls: without them a numeric feature is missing."""
    client, s = svc
    doc = client.get("/openapi.json", headers=auth(s.tokens["analyst"])).json()
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["single"]["value"]["latitude"] is None
    for name in ("single", "batch"):
        r = post(client, s, body["examples"][name]["value"])
        assert r.status_code == 200, (name, r.text)


# --- starting, deploying, tokens -------------------------------------------------------------


def test_a_tampered_model_file_stops_the_service_from_starting(store, project, tmp_path
                                                                ) -> None:
    url, schema = store
    engine = open_store(url, schema=schema)
    copy = tmp_path / "model.skops"
    shutil.copy(project.artefacts["lightgbm"].path, copy)
    group, _ = register(engine, project, artefact_path=str(copy))
    deploy(engine, group, reason="tests", by="pytest")
    with copy.open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ServiceError, match="refusing to start.*hash"):
        create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema))
    args = ["serve", str(tmp_path), "--database-url", url, "--port", "1"]
    result = CliRunner().invoke(cli, args + (["--database-schema", schema] if schema else []))
    assert result.exit_code == 2
    assert "refusing to start" in result.output and "hash" in result.output
    copy.unlink()
    with pytest.raises(ServiceError, match="does not exist"):
        load_deployed_model(engine)
    engine.dispose()


def test_serve_prints_the_dashboard_and_a_token_command_that_works(
        store, project, tmp_path, monkeypatch) -> None:
    url, schema = store
    s = service_store(url, schema, project)
    monkeypatch.delenv("RUDI_DATABASE_URL", raising=False)
    monkeypatch.delenv("RUDI_DATABASE_SCHEMA", raising=False)
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(options))
    args = ["serve", str(tmp_path), "--database-url", url, "--port", "8765"]
    runner = CliRunner()
    result = runner.invoke(cli, args + (["--database-schema", schema] if schema else []))
    assert result.exit_code == 0, result.output
    assert served and served[0]["port"] == 8765  # got as far as starting the server
    assert "Dashboard: http://127.0.0.1:8765/ui " in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("Create a token: "))
    command = shlex.split(line.removeprefix("Create a token: "))
    assert command[:3] == ["rudi", "token", "create"] and "--role" in command
    before = {r["id"] for r in list_tokens(s.engine)}
    created = runner.invoke(cli, command[1:])  # exactly as printed
    assert created.exit_code == 0, created.output
    [new] = [r for r in list_tokens(s.engine) if r["id"] not in before]
    assert new["role"] == "analyst"
    token = created.stdout.strip().splitlines()[-1]
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema))
    with TestClient(app) as client:
        assert client.get("/ui/", headers=auth(token)).status_code == 200
    s.engine.dispose()


def test_serve_passes_the_worker_health_check_timeout_to_uvicorn(
        store, project, tmp_path, monkeypatch) -> None:
    url, schema = store
    s = service_store(url, schema, project)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # serve exports settings for workers
    configs: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn, "run",
                        lambda app, **options: configs.append(uvicorn.Config(app, **options)))
    args = ["serve", str(tmp_path), "--database-url", url, "--workers", "2",
            *(["--database-schema", schema] if schema else [])]
    for extra, expected in [([], 30), (["--worker-timeout", "75"], 75)]:
        result = CliRunner().invoke(cli, args + extra)
        assert result.exit_code == 0, result.output
        assert (configs[-1].workers, configs[-1].timeout_worker_healthcheck) == (2, expected)
    refused = CliRunner().invoke(cli, args + ["--worker-timeout", "0"])
    assert refused.exit_code == 2 and "--worker-timeout" in refused.output
    s.engine.dispose()


def test_the_banner_hides_a_password_and_leaves_out_what_the_environment_gives(
        tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("RUDI_DATABASE_URL", raising=False)
    monkeypatch.delenv("RUDI_DATABASE_SCHEMA", raising=False)
    pg = "postgresql://rudi:s3cret@db.example:5432/rudi"
    text = dashboard_banner(tmp_path, "::", 80, pg, "s1")
    assert "s3cret" not in text and "http://[::]:80/ui" in text
    assert (f"rudi token create {tmp_path.resolve()} --role analyst --database-url "
            "'postgresql://rudi:***@db.example:5432/rudi' --database-schema s1 (with the "
            "store's password for ***)") in text
    monkeypatch.setenv("RUDI_DATABASE_URL", pg)
    monkeypatch.setenv("RUDI_DATABASE_SCHEMA", "s1")
    assert dashboard_banner(tmp_path, "127.0.0.1", 8000, pg, "s1").endswith(
        f"Create a token: rudi token create {tmp_path.resolve()} --role analyst")


def test_no_deployment_no_service(store, tmp_path) -> None:
    url, schema = store
    with pytest.raises(ServiceError, match="no model is deployed"):
        create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema))


def test_deployments_keep_history_and_the_audit_log_is_append_only(store, project) -> None:
    url, schema = store
    engine = open_store(url, schema=schema)
    lgbm, first_model = register(engine, project, "lightgbm")
    _, newer_model = register(engine, project, "lightgbm")  # a later fit of the same group
    rate, _ = register(engine, project, "rate_by_category")
    for bad, message in [({"model_group_id": 999}, "no model group 999"),
                         ({"reason": " "}, "--reason"), ({"threshold": 1.5}, "between 0 and 1"),
                         ({"model_id": first_model + 100}, "does not belong")]:
        kwargs: dict[str, Any] = {"model_group_id": lgbm, "reason": "r", "by": "me", **bad}
        group = kwargs.pop("model_group_id")
        with pytest.raises(ServiceError, match=message):
            deploy(engine, group, **kwargs)
    one = deploy(engine, lgbm, reason="first", by="alice", threshold=0.3)
    assert one.model_id == newer_model and one.previous_id is None
    pinned = deploy(engine, lgbm, reason="pin", by="bob", model_id=first_model)
    assert pinned.model_id == first_model and pinned.previous_id == one.id
    two = deploy(engine, rate, reason="simpler", by="carol")
    rows = history(engine)
    assert [r["id"] for r in rows] == [two.id, pinned.id, one.id]
    assert [r["live"] for r in rows] == [True, False, False]
    assert rows[2]["retired_by"] == "bob" and rows[2]["retired_at"] is not None
    assert rows[2]["reason"] == "first" and rows[2]["threshold"] == 0.3
    loaded = load_deployed_model(engine)
    assert loaded.deployment_id == two.id and loaded.algorithm == "rate_by_category"
    with engine.connect() as conn:
        log = conn.execute(select(pt.audit_log).order_by(pt.audit_log.c.id)).mappings().all()
    assert [(e["action"], e["actor"]) for e in log] == [
        ("deploy", "alice"), ("deploy", "bob"), ("deploy", "carol")]
    assert log[2]["details"]["retired_deployment_id"] == pinned.id
    for statement in (update(pt.audit_log).values(actor="mallory"), pt.audit_log.delete()):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    # the database also refuses two live deployments
    with pytest.raises(Exception, match="(?i)unique"), engine.begin() as conn:
        conn.execute(update(pt.deployed_models).values(live=True))
    engine.dispose()


def test_the_command_line_deploys_and_manages_tokens(store, project, tmp_path) -> None:
    url, schema = store
    engine = open_store(url, schema=schema)
    group, model = register(engine, project)
    runner = CliRunner()
    where = [str(tmp_path), "--database-url", url] + (
        ["--database-schema", schema] if schema else [])
    # the registered run is no rudi.yaml project: no model card, no data snapshot
    r = runner.invoke(cli, ["deploy", str(group), *where, "--reason", "best AUC",
                            "--by", "dana", "--threshold", "0.45"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "fails the deploy gate on 2 item(s)" in out, r.output
    assert "model card 'model group" in out and "recorded no data snapshot" in out
    r = runner.invoke(cli, ["deploy", str(group), *where, "--reason", "best AUC",
                            "--by", "dana", "--threshold", "0.45", "--waive", "a test store"])
    assert r.exit_code == 0, r.output
    assert f"model {model}" in r.output and "threshold 0.45" in r.output
    with engine.connect() as conn:
        waiver = conn.execute(select(pt.deployed_models.c.waiver)).scalar_one()
    assert waiver["reason"] == "a test store" and waiver["by"] == "dana"
    assert len(waiver["failing"]) == 2 and "recorded no data snapshot" in waiver["failing"][1]
    r = runner.invoke(cli, ["deploy", "12345", *where, "--reason", "x"])
    assert r.exit_code == 2 and "no model group 12345" in r.output
    r = runner.invoke(cli, ["deployments", *where])
    assert r.exit_code == 0 and "best AUC" in r.output and "dana" in r.output
    r = runner.invoke(cli, ["token", "create", *where, "--role", "predict", "--name", "mdt",
                            "--by", "frank"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("rudi_") and len(token) > 40
    r = runner.invoke(cli, ["token", "create", *where, "--role", "boss"])
    assert r.exit_code == 2 and "unknown role" in r.output
    r = runner.invoke(cli, ["token", "list", *where])
    assert r.exit_code == 0 and "mdt" in r.output and token not in r.output
    with engine.connect() as conn:
        stored = conn.execute(select(pt.api_tokens)).mappings().one()
    assert stored["token_hash"] != token and token not in str(dict(stored))
    r = runner.invoke(cli, ["token", "revoke", str(stored["id"]), *where, "--by", "erin"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["token", "revoke", str(stored["id"]), *where])
    assert r.exit_code == 2 and "already revoked" in r.output
    with engine.connect() as conn:
        actions = conn.execute(select(pt.audit_log.c.action, pt.audit_log.c.actor).order_by(
            pt.audit_log.c.id)).all()
    assert [tuple(a) for a in actions] == [("deploy", "dana"), ("token_create", "frank"),
                                           ("token_revoke", "erin")]
    engine.dispose()


# --- scoring ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["lightgbm", "rate_by_category"])
def test_the_fast_scoring_path_gives_the_pipelines_scores(project, algorithm) -> None:
    artefact = project.artefacts[algorithm]
    pipeline = load_artefact(artefact.path, artefact.digest)
    scorer = Scorer(pipeline)
    raw, validated = sample_rows(scorer.encoder, 300, seed=11)
    assert np.allclose(scorer.encode(validated), scorer.encoder.encode_records(raw),
                       equal_nan=True, rtol=0, atol=0)
    expected = pipeline.predict_proba(pd.DataFrame(raw))[:, 1]
    assert np.allclose(scorer.score(validated), expected, rtol=0, atol=1e-12)
    if algorithm == "lightgbm":
        assert scorer.path.startswith("lightgbm")


#: How a partitioned PostgreSQL store (migration 0013) differs from the declared tables: the
#: unique observation_id and the target of outcomes.prediction_id live in
#: production_observation_ids; predictions' key holds its partition key; the replay look-up
#: has an index of its own. (The partitions themselves are left out by ``include_object``.)
PARTITIONED_DIFFERENCES = {
    ("remove_fk", "outcomes", ("prediction_id",), "production_observation_ids.id"),
    ("add_fk", "outcomes", ("prediction_id",), "production_predictions.id"),
    ("add_constraint", "production_predictions", ("observation_id",)),
    ("remove_index", "production_predictions", ("observation_id",)),
    ("remove_constraint", "predictions", ("id", "as_of_date")),
}


def _difference(diff: tuple | list) -> tuple:
    """An Alembic difference as (kind, table, columns[, referred column])."""
    if isinstance(diff, list):  # modify_* of one column
        kind, _, table, column = diff[0][:4]
        return kind, table, (column,)
    kind, obj = diff[0], diff[1]
    if kind.endswith("_table"):
        return kind, obj.name, ()
    if kind.endswith("_column"):
        return kind, diff[2], (diff[3].name,)
    columns = tuple(c.name for c in obj.columns)
    if kind.endswith("_fk"):
        return kind, obj.table.name, columns, obj.elements[0].target_fullname
    return kind, obj.table.name, columns


def test_the_store_schema_matches_the_tables(store) -> None:
    """The migrations create exactly what production_tables (and the predictions table)
    declare; on PostgreSQL, plus what partitioning changes, and nothing else."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from rudikit.store.partitions import include_object
    from rudikit.store.tables import metadata

    url, schema = store
    engine = open_store(url, schema=schema)
    with engine.connect() as conn:
        if schema:
            conn.execute(text(f'SET search_path TO "{schema}"'))
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, metadata)
    tables = {tbl.name for tbl in pt.PRODUCTION_TABLES} | {"predictions"}
    found = {d for d in map(_difference, diff) if d[1] in tables}
    assert found == (PARTITIONED_DIFFERENCES if schema else set())
    engine.dispose()


def test_settings_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("RUDI_MAX_BATCH", "lots")
    with pytest.raises(ServiceError, match="RUDI_MAX_BATCH"):
        ServiceSettings.from_env()
    monkeypatch.setenv("RUDI_MAX_BATCH", "10")
    monkeypatch.setenv("RUDI_SQLITE_SYNCHRONOUS", "sometimes")
    with pytest.raises(ServiceError, match="FULL or NORMAL"):
        ServiceSettings.from_env()
    monkeypatch.setenv("RUDI_SQLITE_SYNCHRONOUS", "normal")
    monkeypatch.setenv("RUDI_MAX_VALUE_LENGTH", "0")
    with pytest.raises(ServiceError, match="RUDI_MAX_VALUE_LENGTH"):
        ServiceSettings.from_env()
    monkeypatch.setenv("RUDI_MAX_VALUE_LENGTH", "64")
    monkeypatch.setenv("RUDI_NAN_AS_MISSING", "perhaps")
    with pytest.raises(ServiceError, match="RUDI_NAN_AS_MISSING"):
        ServiceSettings.from_env()
    monkeypatch.setenv("RUDI_NAN_AS_MISSING", "no")
    assert ServiceSettings.from_env().nan_as_missing is False
    monkeypatch.delenv("RUDI_NAN_AS_MISSING")
    settings = ServiceSettings.from_env()
    assert settings.max_batch == 10
    assert settings.max_value_length == 64 and settings.max_field_name_length == 200
    assert settings.nan_as_missing is None  # rudi.yaml says (default true)
    assert ServiceSettings.from_env().to_env()["RUDI_MAX_VALUE_LENGTH"] == "64"
    assert ServiceSettings.from_env().to_env()["RUDI_SQLITE_SYNCHRONOUS"] == "NORMAL"


def test_token_cache_entries_expire_after_the_ttl(svc) -> None:
    """Sanity check on the cache used above: with a TTL, entries expire (a fake clock)."""
    client, s = svc
    from rudikit.service.auth import TokenCache, hash_token

    now = [100.0]
    cache = TokenCache(client.app.state.service.engine, ttl=2.0, clock=lambda: now[0])
    digest = hash_token(s.tokens["predict"])
    assert cache.load(digest) is not None and cache.cached(digest)[0]
    now[0] += 1.999
    assert cache.cached(digest)[0]
    now[0] += 0.001
    assert cache.cached(digest) == (False, None)


def test_concurrent_requests_for_one_observation_id(store, project, tmp_path) -> None:
    """Requests in one group commit: the first is new, the others are replays or 409s, and
    nothing answered is missing from the store (both backends decide alike)."""
    url, schema = store
    s = service_store(url, schema, project)
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema))
    service = app.state.service
    model = service.model

    def job(body: dict[str, Any]) -> PredictJob:
        parsed = parse_observations(service.schema, orjson.dumps(body))
        scores = model.scorer.score([o.values for o in parsed.observations]).tolist()
        now = datetime.now(UTC)
        return PredictJob(new_request_id(), s.token_ids["predict"], model.deployment_id,
                          model.model_id, model.threshold, now, now, 0.1, parsed.observations,
                          scores, parsed.single)

    async def scenario() -> list[list[Any]]:
        async with app.router.lifespan_context(app):
            first = await service.writer.submit(job(observation("dup-c", latitude=1.0)))
            assert isinstance(first, PredictResult)
            rounds = []
            for bodies in (
                    [observation("dup-a")] * 3,
                    [observation("dup-b"), observation("dup-b", latitude=2.0)],
                    [observation("dup-c", latitude=3.0), observation("dup-c", latitude=4.0),
                     observation("dup-c", latitude=1.0)],
                    [{"observations": [observation("dup-d"), observation("dup-e")]},
                     observation("dup-d")],
                    [observation(f"distinct-{i}") for i in range(4)]):
                jobs = [job(b) for b in bodies]
                # submitted together, so they are queued before the writer takes a group
                rounds.append(await asyncio.gather(*(service.writer.submit(j) for j in jobs)))
            return rounds

    before = counts(s.engine)
    a, b, c, d, e = asyncio.run(scenario())
    # which of two concurrent requests is first is up to the writer: assert what is certain
    assert all(isinstance(r, PredictResult) for r in a)
    assert sorted(r.predictions[0]["replayed"] for r in a) == [False, True, True]
    assert len({r.predictions[0]["request_id"] for r in a}) == 1
    assert sorted(getattr(r, "status", 200) for r in b) == [200, 409]
    assert [getattr(r, "status", 200) for r in c] == [409, 409, 200]
    assert c[2].predictions[0]["replayed"] is True
    assert all(isinstance(r, PredictResult) for r in d) and sum(r.n_new for r in d) == 2
    assert d[0].predictions[0]["request_id"] == d[1].predictions[0]["request_id"]
    assert [r.n_new for r in e] == [1, 1, 1, 1]
    after = counts(s.engine)
    # new: the first dup-c, dup-a, one dup-b, dup-d, dup-e and the 4 distinct ones
    assert after["production_predictions"] == before["production_predictions"] + 9
    # a request row for every answer (replays included); the 409s leave nothing
    assert after["requests"] == before["requests"] + 1 + 3 + 1 + 1 + 2 + 4
    # distinct ids share a group (a repeated id waits for the next one)
    groups = [x.value for x in service.metrics.commits.collect()[0].samples
              if x.name.endswith("_bucket")]
    assert groups[2] > groups[0]  # a group of 2 to 4 jobs
    s.engine.dispose()
