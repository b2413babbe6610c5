"""Property-based tests of the service against its own OpenAPI document (schemathesis): valid
and invalid requests on every operation never get a 5xx, every answer matches the schema
documented for its status code, a valid request is accepted and an invalid one refused, and no
operation answers without a valid token (CHECKS: every check that can act here)."""

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
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python import asgi
from test_service_support import auth, observation, service_store, trained

from rudikit.service.app import create_app
from rudikit.service.settings import ServiceSettings

# `--checks all`: every check schemathesis has, run on each answer. Some only act in phases
# this test does not run, so they cannot fail here and are left out, each for the reason given:
# - use_after_free, ensure_resource_availability, object_level_authorization: stateful checks,
#   they follow OpenAPI links from the answer of one call to the next; the document declares
#   no links (an id comes from the caller: observation_id, not from a created resource).
# - missing_required_header, unsupported_method: they judge only the "coverage" phase's
#   scenarios (a header left out, an undocumented method); the hypothesis strategies used here
#   draw from the schema and never make those scenarios (missing Authorization is drawn: the
#   negative cases below get 401, checked by negative_data_rejection and ignored_auth).
# - allow_header_conformance: it reads the answer to an OPTIONS request, which no documented
#   operation is.
# ignored_auth sends each operation once more without the token and with a wrong one, through
# the app (the schema is loaded from it), and fails unless both are refused.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection,
          positive_data_acceptance, ignored_auth]


def repeats_an_id(body: Any) -> bool:
    """Whether a `/predict` batch names an observation id twice."""
    items = body.get("observations") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return False
    ids = [item["observation_id"] for item in items
           if isinstance(item, dict) and isinstance(item.get("observation_id"), str)]
    return len(ids) != len(set(ids))


def exercise(operation: Any, mode: GenerationMode, client: Any, admin: dict[str, str]
             ) -> int:
    """Send the cases schemathesis draws for ``operation`` in ``mode`` and run every check on
    each answer; the number of requests sent."""
    calls = 0

    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        nonlocal calls
        # a case whose headers are the invalid part (no Authorization, or a bad one) is sent
        # as generated: adding a token would make it valid
        header = case.meta.components.get(ParameterLocation.HEADER)
        headers = None if header and header.mode.is_negative else admin
        response = case.call(session=client, headers=headers)
        calls += 1
        checks = CHECKS
        if mode is GenerationMode.POSITIVE and repeats_an_id(case.body):
            # distinct ids within a batch: a rule JSON Schema cannot state (it is in the
            # batch's description), so refused although schema-valid
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["type"] == "duplicate"
            checks = [c for c in CHECKS if c is not positive_data_acceptance]
        case.validate_response(response, checks=checks, headers=headers,
                               transport_kwargs={"session": client, "headers": headers})

    try:
        check()
    except Unsatisfiable:
        # nothing to get wrong: no body, no parameters (GET /health, /metrics)
        assert mode is GenerationMode.NEGATIVE and operation.method == "get"
        assert "{" not in operation.path
    return calls


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
        store: tuple[str, str | None], tmp_path_factory: pytest.TempPathFactory,
        tmp_path: Path) -> None:
    url, schema = store
    s = service_store(url, schema, trained(tmp_path_factory))
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema,
                                     max_batch=20))
    admin = auth(s.tokens["admin"])
    # schemathesis' own ASGI client (a requests session starting the app's lifespan once), so
    # that the requests its checks send themselves (ignored_auth) reach the app too
    with asgi.get_client(app) as client:
        try:
            # some stored predictions so that reads and outcomes also hit existing ids
            for i in range(3):
                assert client.post("/predict", json=observation(f"seed-{i}"),
                                   headers=admin).status_code == 200
            api = schemathesis.openapi.from_asgi("/openapi.json", app, headers=admin)
            operations = [result.ok() for result in api.get_all_operations()]
            assert {op.label for op in operations} == {
                "POST /predict", "POST /outcomes", "GET /predictions/{prediction_id}",
                "GET /health", "GET /metrics", "GET /lists/{date}", "POST /reviews"}
            calls = sum(exercise(operation, mode, client, admin) for operation in operations
                        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
            assert calls > 200
        finally:  # the app's lifespan: the writer stops, the store is closed
            asgi.shutdown_lifespans()
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
