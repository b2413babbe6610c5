"""Property-based tests of the service against its own OpenAPI document (schemathesis): valid
and invalid requests on every operation never get a 5xx, and every answer matches the schema
documented for its status code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from test_service_support import auth, observation, service_store, trained

from rudikit.service.app import create_app
from rudikit.service.settings import ServiceSettings

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]


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

                @settings(max_examples=50, deadline=None, database=None, derandomize=True,
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
                    case.validate_response(response, checks=CHECKS)

                try:
                    check()
                except Unsatisfiable:
                    # nothing to get wrong: no body, no parameters (GET /health, /metrics)
                    assert mode is GenerationMode.NEGATIVE and operation.method == "get"
                    assert "{" not in operation.path
        assert calls > 200
    s.engine.dispose()
