"""``POST /outcomes``: the true outcome of an earlier prediction."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from rudikit.service.auth import Principal
from rudikit.service.deps import get_service, require_role
from rudikit.service.errors import ApiError
from rudikit.service.routing import JSON, RawRoute, error_docs, json_response, parse_body, read_body
from rudikit.service.schemas import OutcomeIn, OutcomeOut
from rudikit.service.writer.jobs import OutcomeJob, OutcomeResult

router = APIRouter(tags=["outcomes"])
Recorder = Annotated[Principal, Depends(require_role("outcome"))]


async def record_outcome(request: Request, principal: Recorder) -> Response:
    """The outcome (0/1 or false/true) for an `observation_id`, or for a `request_id` that
    scored one observation. Unknown id: 404. The same outcome again: 200; a different one:
    409. The answer shows the prediction beside the outcome."""
    service = get_service(request)
    outcome = parse_body(OutcomeIn, await read_body(request), "outcome")
    result = await service.writer.submit(OutcomeJob(
        outcome.observation_id, outcome.request_id, int(outcome.outcome), principal.token_id))
    if isinstance(result, ApiError):
        raise result
    assert isinstance(result, OutcomeResult)
    if result.created:
        service.metrics.outcomes.labels(str(result.body["outcome"])).inc()
    return json_response(result.body, 201 if result.created else 200)


router.add_api_route(
    "/outcomes", record_outcome, methods=["POST"], route_class_override=RawRoute,
    summary="Record the true outcome of an earlier prediction", status_code=201,
    responses={200: {"model": OutcomeOut, "description": "The same outcome was already "
                                                        "recorded (idempotent)."},
               201: {"model": OutcomeOut, "description": "Outcome recorded."},
               **error_docs(401, 403, 404, 409, 413, 422, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {JSON: {
        "schema": {"$ref": "#/components/schemas/OutcomeIn"},
        "examples": {
            "by observation": {"value": {"observation_id": "2020-01-stop-000123",
                                         "outcome": 1}},
            "by request": {"value": {"request_id": "5f0c1e2a9b7d4c3e8a1f2b3c4d5e6f70",
                                     "outcome": False}}}}}}})
