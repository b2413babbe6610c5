"""Property-based tests of the service against its own OpenAPI document (schemathesis): valid
and invalid requests on every operation never get a 5xx, and every answer matches the schema
documented for its status code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from test_service_support import auth, observation, service_store, trained

from rudikit.service.app import create_app
from rudikit.service.settings import ServiceSettings

# positive_data_acceptance: a request the published schema calls valid is not refused (422).
# Not negative_data_rejection: it counts an unknown query parameter, which /predict ignores,
# and a missing Authorization header, which this test adds to every case, as invalid data
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance, positive_data_acceptance]


def repeats_an_id(body: Any) -> bool:
    """Whether a `/predict` batch names an observation id twice."""
    items = body.get("observations") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return False
    ids = [item["observation_id"] for item in items
           if isinstance(item, dict) and isinstance(item.get("observation_id"), str)]
    return len(ids) != len(set(ids))


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
        store: tuple[str, str | None], tmp_path_factory: pytest.TempPathFactory,
        tmp_path: Path) -> None:
    url, schema = store
    s = service_store(url, schema, trained(tmp_path_factory))
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema,
                                     max_batch=20))
    admin = auth(s.tokens["admin"])
    with TestClient(app, raise_server_exceptions=False) as client:
        # some stored predictions so that reads and outcomes also hit existing ids
        for i in range(3):
            assert client.post("/predict", json=observation(f"seed-{i}"),
                               headers=admin).status_code == 200
        document = client.get("/openapi.json", headers=admin).json()
        api = schemathesis.openapi.from_dict(document)
        operations = [result.ok() for result in api.get_all_operations()]
        assert {op.label for op in operations} == {
            "POST /predict", "POST /outcomes", "GET /predictions/{prediction_id}",
            "GET /health", "GET /metrics", "GET /lists/{date}", "POST /reviews"}
        calls = 0
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                # 25 cases per operation and mode, about 300 requests: the test's time goes
                # into making and validating cases, in proportion to max_examples (50 cost
                # twice as much); derandomized, every run tries the same cases. No shrink
                # phase: a failure shows its case as generated
                @settings(max_examples=25, deadline=None, database=None, derandomize=True,
                          phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def check(case: Any) -> None:
                    nonlocal calls
                    kwargs = case.as_transport_kwargs(base_url="http://testserver",
                                                      headers=admin)
                    request = {k: v for k, v in kwargs.items() if k != "cookies" and v != {}}
                    if isinstance(request.get("data"), bytes | str):
                        request["content"] = request.pop("data")
                    response = client.request(**request)
                    calls += 1
                    # check() runs within its own iteration: `mode` is the one it was made for
                    if (mode is GenerationMode.POSITIVE  # noqa: B023
                            and repeats_an_id(case.body)):
                        # distinct ids within a batch: a rule JSON Schema cannot state (it is
                        # in the batch's description), so refused although schema-valid
                        assert response.status_code == 422, response.text
                        assert response.json()["errors"][0]["type"] == "duplicate"
                        case.validate_response(response, checks=[
                            c for c in CHECKS if c is not positive_data_acceptance])
                    else:
                        case.validate_response(response, checks=CHECKS)

                try:
                    check()
                except Unsatisfiable:
                    # nothing to get wrong: no body, no parameters (GET /health, /metrics)
                    assert mode is GenerationMode.NEGATIVE and operation.method == "get"
                    assert "{" not in operation.path
        assert calls > 200
    s.engine.dispose()


def test_the_published_schema_says_what_lists_and_outcomes_accept(
        store: tuple[str, str | None], tmp_path_factory: pytest.TempPathFactory,
        tmp_path: Path) -> None:
    """The cases schemathesis found refused although schema-valid: each request is accepted
    exactly when the OpenAPI document calls it valid (checked with jsonschema_rs,
    schemathesis' own validator)."""
    url, schema = store
    s = service_store(url, schema, trained(tmp_path_factory))
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema))
    admin = auth(s.tokens["admin"])
    with TestClient(app) as client:
        predicted = client.post("/predict", json=observation("seen-1"), headers=admin).json()
        document = client.get("/openapi.json", headers=admin).json()
        parameters = {p["name"]: p["schema"]
                      for p in document["paths"]["/lists/{date}"]["get"]["parameters"]}
        assert (parameters["k"]["type"], parameters["k"]["minimum"],
                parameters["k"]["maximum"]) == ("integer", 1, 10_000)
        assert (parameters["cool_off_days"]["minimum"],
                parameters["cool_off_days"]["maximum"]) == (0, 3650)
        for name, value in [("k", 1), ("k", 10_000), ("k", 0), ("k", 10_001),
                            ("cool_off_days", 0), ("cool_off_days", 3650),
                            ("cool_off_days", -1), ("cool_off_days", 3651)]:
            valid = jsonschema_rs.Draft202012Validator(parameters[name]).is_valid(value)
            answer = client.get("/lists/2020-02-10", params={name: value}, headers=admin)
            assert answer.status_code == (200 if valid else 422), (name, value, answer.text)
            if not valid:
                assert answer.json()["errors"][0]["field"] == name
        # a date pydantic alone would read as seconds, and a misspelt parameter: refused
        for path, field in [("/lists/0", "date"), ("/lists/2020-02-10?cool_of_days=3",
                                                    "cool_of_days")]:
            answer = client.get(path, headers=admin)
            assert answer.status_code == 422, answer.text
            assert answer.json()["errors"][0]["field"] == field

        outcome = jsonschema_rs.Draft202012Validator(
            {**document["components"]["schemas"]["OutcomeIn"],
             "components": document["components"]})
        oid, rid = "seen-1", predicted["request_id"]
        for body, valid in [({"outcome": 1}, False),
                            ({"observation_id": oid, "request_id": rid, "outcome": 1}, False),
                            ({"observation_id": None, "request_id": None, "outcome": 1}, False),
                            ({"observation_id": oid, "outcome": 1}, True),
                            ({"observation_id": oid, "request_id": None, "outcome": 1}, True),
                            ({"request_id": rid, "observation_id": None, "outcome": 1}, True)]:
            assert outcome.is_valid(body) is valid, body
            answer = client.post("/outcomes", json=body, headers=admin)
            assert answer.status_code in ((200, 201) if valid else (422,)), (body, answer.text)
    s.engine.dispose()
