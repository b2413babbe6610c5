"""``POST /predict`` (score, store, answer) and ``GET /predictions/{id}`` (read one back)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from rudikit.fairness.mitigation.optimizer import centre_threshold
from rudikit.service.auth import Principal
from rudikit.service.deploy import LoadedModel
from rudikit.service.deps import EngineDep, get_service, require_role
from rudikit.service.errors import ApiError, field_path, validation_error
from rudikit.service.observations import ParsedPredict, parse_observations
from rudikit.service.routing import (
    JSON,
    RawRoute,
    error_docs,
    json_response,
    parse_body,
    read_body,
)
from rudikit.service.schemas import (
    BatchPredictionOut,
    ExplainedBatchPredictionOut,
    ExplainedPredictionOut,
    PredictionDetail,
    PredictionOut,
    PredictQuery,
)
from rudikit.service.scoring import GroupThresholds, cannot_explain, explain_rows
from rudikit.service.storage import read_prediction
from rudikit.service.writer.jobs import PredictJob

router = APIRouter(tags=["predictions"])
Predictor = Annotated[Principal, Depends(require_role("predict"))]
Analyst = Annotated[Principal, Depends(require_role("analyst"))]


async def predict(request: Request, principal: Predictor) -> Response:
    """Send one observation, or `{"observations": [...]}`. Every feature key must be present
    (null = missing); a missing key or a wrong type is a 422 naming each field. A category
    the model never saw is scored as missing and listed in `unseen`; extra fields are ignored
    and listed in `ignored_fields`. A field may be sent under its data.police.uk name
    (`Object of search`) or the project's alias (`service.field_aliases`), and a stop in the
    data.police.uk API's shape (`location` nested, numbers as strings) is read as its loader
    reads it. Values the training
    data's rules set missing (impossible coordinates, empty text, a date-time a table cannot
    hold) are scored as missing and listed in `set_missing`. The
    decision is `score >= threshold` of the deployment. Sending an `observation_id` again
    with the same payload returns the stored answer (`replayed: true`); with a different
    payload it is a 409 and nothing is stored. With `?explain=true` each answer also has
    its top reasons (`explanation`; LightGBM and logistic regression models)."""
    service = get_service(request)
    state = request.scope["state"]
    model, schema = service.served.model, service.served.schema  # one model per request
    wanted = bool(request.scope["query_string"]) and parse_body(
        PredictQuery, dict(request.query_params), "query", "query").explain
    parsed = parse_observations(schema, await read_body(request))
    observations = parsed.observations
    rows = [o.values for o in observations]
    scores = model.scorer.score(rows).tolist()
    if model.groups is not None:
        scores = group_adjusted(model.groups, parsed, scores)
    explanations = explained(model, rows) if wanted else None
    decided_at = datetime.now(UTC)
    elapsed = time.perf_counter() - state["started"]
    request_id = state["request_id"]
    result = await service.writer.submit(PredictJob(
        request_id=request_id, token_id=principal.token_id,
        deployment_id=model.deployment_id, model_id=model.model_id,
        threshold=model.threshold, received_at=decided_at - timedelta(seconds=elapsed),
        decided_at=decided_at, latency_ms=elapsed * 1000.0, observations=observations,
        scores=scores, single=parsed.single))
    if isinstance(result, ApiError):
        raise result
    service.metrics.count_predictions(result.predictions)
    for prediction, unseen, observation in zip(
            result.predictions, model.scorer.record_encoder.unseen(rows), observations,
            strict=True):
        prediction["unseen"] = unseen
        prediction["set_missing"] = observation.set_missing
    answers = result.predictions if explanations is None else [
        {**p, "explanation": e} for p, e in zip(result.predictions, explanations,
                                                strict=True)]
    if parsed.single:
        return json_response(answers[0])
    return json_response({"request_id": request_id, "model_id": model.model_id,
                          "deployment_id": model.deployment_id, "predictions": answers})


router.add_api_route(
    "/predict", predict, methods=["POST"], route_class_override=RawRoute,
    response_model=(PredictionOut | BatchPredictionOut | ExplainedPredictionOut
                    | ExplainedBatchPredictionOut),
    summary="Score one observation or a batch, store it, answer",
    responses={200: {"description": "The prediction (one observation) or the batch's "
                                    "predictions, committed to the store; with "
                                    "`explain=true`, each with its `explanation`."},
               **error_docs(401, 403, 409, 413, 422, 503)},
    openapi_extra={"parameters": [{
        "name": "explain", "in": "query", "required": False,
        "schema": {"type": "boolean", "default": False},
        "description": PredictQuery.model_fields["explain"].description}],
        "requestBody": {"required": True, "content": {JSON: {
            "schema": {"anyOf": [{"$ref": "#/components/schemas/Observation"},
                                 {"$ref": "#/components/schemas/ObservationBatch"}]}}}}})


def predict_examples(example: dict[str, Any]) -> dict[str, Any]:
    """The request examples of ``POST /predict`` for a model whose example observation is
    ``example`` (the app documents the model served when it started)."""
    return {"single": {"summary": "One observation", "value": example},
            "batch": {"summary": "A batch", "value": {"observations": [example]}}}


@router.get("/predictions/{prediction_id}", response_model=PredictionDetail,
            summary="A stored prediction with its inputs and outcome",
            responses=error_docs(401, 403, 404, 422))
async def get_prediction(prediction_id: str, _: Analyst, engine: EngineDep) -> Response:
    """By `observation_id`, or by the `request_id` of a single-observation request."""
    found = await run_in_threadpool(read_prediction, engine, prediction_id)
    if found is None:
        raise ApiError(404, f"no stored prediction has observation_id or request_id "
                            f"{prediction_id!r}")
    return json_response(found)


def explained(model: LoadedModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The explanation of each observation, or a 422 (nothing stored) when the deployed model
    cannot be explained."""
    problem = cannot_explain(model.pipeline)
    if problem is not None:
        raise validation_error([{"field": "explain", "loc": ["query", "explain"], "msg": problem,
                                 "type": "not_explainable"}], "query")
    return explain_rows(model.pipeline, rows)


def group_adjusted(groups: GroupThresholds, parsed: ParsedPredict, scores: list[float]
                   ) -> list[float]:
    """A mitigated deployment's scores: each base score moved by its group's threshold. An
    observation of a group with no fitted threshold is a 422 naming its attribute fields, and
    nothing of the request is stored."""
    thresholds: list[float] = []
    errors: list[dict[str, Any]] = []
    for i, observation in enumerate(parsed.observations):
        threshold = groups.threshold(observation.values)
        if threshold is None:
            known = ", ".join(sorted(groups.thresholds)[:10])
            msg = (f"group {groups.label(observation.values)!r} has no fitted threshold in the "
                   f"deployed mitigation (groups: {known})")
            prefix: tuple[Any, ...] = () if parsed.single else ("observations", i)
            errors.extend({"field": field_path((*prefix, a)), "loc": ["body", *prefix, a],
                           "msg": msg, "type": "unknown_group"} for a in groups.attributes)
            continue
        thresholds.append(threshold)
    if errors:
        raise validation_error(errors, "observation" if parsed.single else "batch")
    # one array call for the whole request: per row, numpy's call overhead would dominate
    return centre_threshold(np.asarray(scores, dtype=float), np.asarray(thresholds)).tolist()
