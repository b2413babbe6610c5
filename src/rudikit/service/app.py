"""The prediction service: a FastAPI app serving the deployed model.

``create_app`` opens the store, loads the live deployment's model (only if its file hashes to
what the store recorded), and wires the endpoints. Every route except ``/health`` checks a
bearer token and its role before anything else. ``POST /predict`` answers only after its
request and predictions are committed (see :mod:`rudikit.service.storage`).

``/predict`` and ``/outcomes`` are :class:`RawRoute` routes: documented in the OpenAPI schema
like any FastAPI route, but called with the request directly, because FastAPI's per-request
dependency solving cost more than scoring the model (measured ~0.1 ms of ~0.3 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import html
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import fastapi_offline
import numpy as np
import orjson
from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rudikit import __version__
from rudikit.fairness.mitigation.optimizer import centre_threshold
from rudikit.service import lists
from rudikit.service.auth import Principal, TokenCache, bearer_digest
from rudikit.service.deploy import LoadedModel, live_deployment, load_deployed_model
from rudikit.service.errors import ApiError, field_path, validation_error
from rudikit.service.metrics import CONTENT_TYPE, Metrics, Observability
from rudikit.service.schemas import (
    REVIEW_EXAMPLE,
    BatchPredictionOut,
    ErrorOut,
    ExplainedBatchPredictionOut,
    ExplainedPredictionOut,
    HealthOut,
    ListOut,
    ListQuery,
    ObservationSchema,
    OutcomeIn,
    OutcomeOut,
    ParsedPredict,
    PredictionDetail,
    PredictionOut,
    PredictQuery,
    ReviewIn,
    ReviewOut,
)
from rudikit.service.scoring import GroupThresholds, cannot_explain, explain_rows
from rudikit.service.settings import ServiceSettings
from rudikit.service.storage import (
    OutcomeJob,
    OutcomeResult,
    PredictJob,
    StoreWriter,
    read_prediction,
)
from rudikit.service.ui.routes import create_dashboard
from rudikit.store.engine import open_store

DESCRIPTION = """Scores observations with the deployed model and stores every request,
prediction and outcome in the rudikit results store before answering.

Authenticate with `Authorization: Bearer <token>` (`rudi token create --role ROLE`). Roles:
`predict` (POST /predict), `outcome` (POST /outcomes), `review` (GET /lists, POST /reviews),
`analyst` (GET /predictions, /lists, /metrics and the dashboard under `/ui`), `admin`
(everything). Only `/health` is open. Every response carries `X-Request-ID`."""

log = logging.getLogger("rudikit.service")
JSON = "application/json"
OPEN_PATHS = frozenset({"/health"})
Body = TypeVar("Body", bound=BaseModel)
#: Bodies larger than this are refused with 413 before they are read in full.
MAX_BODY_BYTES = 16 * 1024 * 1024


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {401: "Missing, unknown or revoked token.", 403: "The token's role may not call this.",
            404: "Not found; the detail says what.",
            409: "Conflicts with what is stored; nothing was stored.",
            413: "The body is too large.",
            422: "Invalid input; every offending field is named.",
            503: "The results store is unavailable; nothing was stored."}
    return {s: {"model": ErrorOut, "description": text[s]} for s in statuses}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


async def read_body(request: Request) -> bytes:
    """The body, or a 413 once it exceeds ``MAX_BODY_BYTES`` (by its Content-Length, or
    while it streams in): the service never holds more than that for one request."""
    too_large = ApiError(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes; send "
                              "smaller batches")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(model: type[Body], body: bytes | dict[str, Any], what: str,
               where: str = "body") -> Body:
    """``body`` (JSON bytes, or query parameters) as ``model``, or a 422 naming each field."""
    try:
        if isinstance(body, bytes):
            return model.model_validate_json(body)
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [{"field": field_path(e["loc"]), "loc": [where, *e["loc"]],
                   "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors(include_url=False, include_context=False,
                                      include_input=False)]
        raise validation_error(errors, what) from None


class RawRoute(APIRoute):
    """A documented APIRoute whose endpoint takes the Request and returns a Response itself
    (no dependency solving, no response-model serialisation)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint  # type: ignore[return-value]


@dataclass(frozen=True)
class Served:
    """The model and the observation schema made for it, swapped together (one assignment on
    the event loop), so a request never validates for one model and scores with another."""

    model: LoadedModel
    schema: ObservationSchema


class Service:
    """Everything the endpoints share: store, model, validator, writer, tokens, metrics."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.engine = open_store(settings.database_url, settings.project_dir,
                                 schema=settings.schema)
        try:
            self.served = self._load()
        except BaseException:
            self.engine.dispose()
            raise
        self.metrics = Metrics()
        self._label_model(self.served.model)
        self.writer = StoreWriter(self.engine, schema=settings.schema,
                                  durable=settings.sqlite_synchronous.upper() == "FULL",
                                  on_commit=self.metrics.on_commit)
        self.tokens = TokenCache(self.engine, ttl=settings.token_cache_seconds)
        self.reload_error: str | None = None  # why the live deployment is not served

    @property
    def model(self) -> LoadedModel:
        return self.served.model

    @property
    def schema(self) -> ObservationSchema:
        return self.served.schema

    def _load(self) -> Served:
        """The live deployment's model, verified and self-checked (blocking: seconds)."""
        model = load_deployed_model(self.engine)
        groups = model.groups.attributes if model.groups is not None else ()
        return Served(model, ObservationSchema(model.pipeline.named_steps["encode"],
                                               self.settings.max_batch, groups))

    def _label_model(self, model: LoadedModel, value: float = 1) -> None:
        self.metrics.model_info.labels(
            str(model.deployment_id), str(model.model_id), str(model.model_group_id),
            model.algorithm, model.scorer.path).set(value)

    async def reload_if_redeployed(self) -> bool:
        """Serve the live deployment if it is not the one served: load it off the event loop,
        then swap. Requests already validated finish with the model they started with; none is
        dropped. A deployment that cannot be loaded is not served: the previous model stays, the
        error is logged and shown by /health (``deployment_current: false``)."""
        def live_id() -> int | None:
            with self.engine.connect() as conn:
                live = live_deployment(conn)
            return None if live is None else int(live["id"])

        current = await run_in_threadpool(live_id)
        if current is None or current == self.served.model.deployment_id:
            self.reload_error = None
            return False
        try:
            served = await run_in_threadpool(self._load)
        except Exception as exc:  # noqa: BLE001 - whatever it is, keep serving the old model
            message = f"deployment {current} is live but not served: {exc}"
            if message != self.reload_error:
                log.error("%s; still serving deployment %d", message,
                          self.served.model.deployment_id)
            self.reload_error = message
            return False
        previous, self.served, self.reload_error = self.served.model, served, None
        self._label_model(previous, 0)
        self._label_model(served.model)
        log.warning("now serving deployment %d (model %d, %s) instead of deployment %d",
                    served.model.deployment_id, served.model.model_id, served.model.algorithm,
                    previous.deployment_id)
        return True

    async def watch_deployments(self) -> None:
        """Check for a new live deployment every ``reload_seconds``, for the server's life."""
        while True:
            await asyncio.sleep(self.settings.reload_seconds)
            try:
                await self.reload_if_redeployed()
            except Exception:  # noqa: BLE001 - the store may be down for a moment
                log.exception("checking for a new deployment failed")

    def close(self) -> None:
        self.engine.dispose()

    async def authenticate(self, request: Request, roles: tuple[str, ...]) -> Principal:
        """The caller's token, if it exists, is not revoked and has one of ``roles`` (or admin;
        no roles: any valid token). 401 / 403 otherwise."""
        digest = bearer_digest(request.headers.get("authorization"))
        hit, principal = self.tokens.cached(digest)
        if not hit:
            principal = await run_in_threadpool(self.tokens.load, digest)
        if principal is None:
            raise ApiError(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        if roles and not principal.allowed(roles):
            raise ApiError(403, f"token {principal.name!r} has role {principal.role!r}; this "
                                f"endpoint needs role {' or '.join([*roles, 'admin'])}")
        return principal


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The service app. Raises :class:`~rudikit.service.errors.ServiceError` when there is no
    deployment or its model file does not match the store."""
    service = Service(settings or ServiceSettings.from_env())
    writer = service.writer
    metrics = service.metrics
    authenticate = service.authenticate

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await writer.start()
        # The model, pandas and scikit-learn leave ~10^6 long-lived objects; without freezing
        # them every full collection walks them all, a pause of tens of ms (seen at p99).
        gc.collect()
        gc.freeze()
        watcher = (asyncio.get_running_loop().create_task(service.watch_deployments())
                   if service.settings.reload_seconds > 0 else None)
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await writer.stop()
            await run_in_threadpool(service.close)

    app = FastAPI(title="rudikit prediction service", version=__version__,
                  description=DESCRIPTION, lifespan=lifespan, openapi_url=None, docs_url=None,
                  redoc_url=None)
    app.state.service = service
    app.add_middleware(Observability, metrics=metrics)
    app.mount("/ui", create_dashboard(service))

    # --- errors: one body shape (ErrorOut) for every failure --------------------------------

    def error_response(request: Request, status: int, detail: str,
                       errors: list[dict[str, Any]] | None = None,
                       headers: dict[str, str] | None = None) -> Response:
        return _json({"detail": detail, "errors": errors or [],
                      "request_id": request.scope.get("state", {}).get("request_id")},
                     status, headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(request, exc.status, exc.detail, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": field_path(e["loc"][1:] if len(e["loc"]) > 1 else e["loc"]),
                   "loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors()]
        return error_response(request, 422, validation_error(errors).detail, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(request, exc.status_code, str(exc.detail),
                              headers=getattr(exc, "headers", None))

    # --- endpoints ---------------------------------------------------------------------------

    async def predict(request: Request) -> Response:
        """Send one observation, or `{"observations": [...]}`. Every feature key must be present
        (null = missing); a missing key or a wrong type is a 422 naming each field. Unknown
        categories are scored; extra fields are ignored and listed in `ignored_fields`. The
        decision is `score >= threshold` of the deployment. Sending an `observation_id` again
        with the same payload returns the stored answer (`replayed: true`); with a different
        payload it is a 409 and nothing is stored. With `?explain=true` each answer also has
        its top reasons (`explanation`; LightGBM and logistic regression models)."""
        principal = await authenticate(request, ("predict",))
        state = request.scope["state"]
        model, schema = service.served.model, service.served.schema  # one model per request
        wanted = bool(request.scope["query_string"]) and parse_body(
            PredictQuery, dict(request.query_params), "query", "query").explain
        parsed = schema.parse(await read_body(request))
        observations = parsed.observations
        scores = model.scorer.score([o.values for o in observations]).tolist()
        if model.groups is not None:
            scores = group_adjusted(model.groups, parsed, scores)
        explanations = explained(model, [o.values for o in observations]) if wanted else None
        decided_at = datetime.now(UTC)
        elapsed = time.perf_counter() - state["started"]
        request_id = state["request_id"]
        result = await writer.submit(PredictJob(
            request_id=request_id, token_id=principal.token_id,
            deployment_id=model.deployment_id, model_id=model.model_id,
            threshold=model.threshold, received_at=decided_at - timedelta(seconds=elapsed),
            decided_at=decided_at, latency_ms=elapsed * 1000.0, observations=observations,
            scores=scores, single=parsed.single))
        if isinstance(result, ApiError):
            raise result
        metrics.count_predictions(result.predictions)
        answers = result.predictions if explanations is None else [
            {**p, "explanation": e} for p, e in zip(result.predictions, explanations,
                                                    strict=True)]
        if parsed.single:
            return _json(answers[0])
        return _json({"request_id": request_id, "model_id": model.model_id,
                      "deployment_id": model.deployment_id, "predictions": answers})

    app.router.add_api_route(
        "/predict", predict, methods=["POST"], route_class_override=RawRoute,
        response_model=(PredictionOut | BatchPredictionOut | ExplainedPredictionOut
                        | ExplainedBatchPredictionOut),
        summary="Score one observation or a batch, store it, answer",
        responses={200: {"description": "The prediction (one observation) or the batch's "
                                        "predictions, committed to the store; with "
                                        "`explain=true`, each with its `explanation`."},
                   **_errors(401, 403, 409, 413, 422, 503)},
        openapi_extra={"parameters": [{
            "name": "explain", "in": "query", "required": False,
            "schema": {"type": "boolean", "default": False},
            "description": PredictQuery.model_fields["explain"].description}],
            "requestBody": {"required": True, "content": {JSON: {
            "schema": {"anyOf": [{"$ref": "#/components/schemas/Observation"},
                                 {"$ref": "#/components/schemas/ObservationBatch"}]},
            "examples": {
                "single": {"summary": "One observation", "value": service.schema.example},
                "batch": {"summary": "A batch",
                          "value": {"observations": [service.schema.example]}}}}}}},
        tags=["predictions"])

    async def record_outcome(request: Request) -> Response:
        """The outcome (0/1 or false/true) for an `observation_id`, or for a `request_id` that
        scored one observation. Unknown id: 404. The same outcome again: 200; a different one:
        409. The answer shows the prediction beside the outcome."""
        principal = await authenticate(request, ("outcome",))
        outcome = parse_body(OutcomeIn, await read_body(request), "outcome")
        result = await writer.submit(OutcomeJob(outcome.observation_id, outcome.request_id,
                                                int(outcome.outcome), principal.token_id))
        if isinstance(result, ApiError):
            raise result
        assert isinstance(result, OutcomeResult)
        if result.created:
            metrics.outcomes.labels(str(result.body["outcome"])).inc()
        return _json(result.body, 201 if result.created else 200)

    app.router.add_api_route(
        "/outcomes", record_outcome, methods=["POST"], route_class_override=RawRoute,
        summary="Record the true outcome of an earlier prediction", status_code=201,
        responses={200: {"model": OutcomeOut, "description": "The same outcome was already "
                                                            "recorded (idempotent)."},
                   201: {"model": OutcomeOut, "description": "Outcome recorded."},
                   **_errors(401, 403, 404, 409, 413, 422, 503)},
        openapi_extra={"requestBody": {"required": True, "content": {JSON: {
            "schema": {"$ref": "#/components/schemas/OutcomeIn"},
            "examples": {
                "by observation": {"value": {"observation_id": "2020-01-stop-000123",
                                             "outcome": 1}},
                "by request": {"value": {"request_id": "5f0c1e2a9b7d4c3e8a1f2b3c4d5e6f70",
                                         "outcome": False}}}}}}},
        tags=["outcomes"])

    @app.get("/predictions/{prediction_id}", response_model=PredictionDetail,
             summary="A stored prediction with its inputs and outcome",
             responses=_errors(401, 403, 404, 422), tags=["predictions"])
    async def get_prediction(request: Request, prediction_id: str) -> Response:
        """By `observation_id`, or by the `request_id` of a single-observation request."""
        await authenticate(request, ("analyst",))
        found = await run_in_threadpool(read_prediction, service.engine, prediction_id)
        if found is None:
            raise ApiError(404, f"no stored prediction has observation_id or request_id "
                                f"{prediction_id!r}")
        return _json(found)

    @app.get("/lists/{date}", response_model=ListOut,
             summary="The ranked list of a date, without entities already reviewed",
             responses=_errors(401, 403, 422), tags=["lists"])
    async def get_list(request: Request, date: str,
                       k: Annotated[str | None, Query(description=(
                           "How many entities (an integer from 1 to 10000; default 100)."))] = None,
                       cool_off_days: Annotated[str | None, Query(description=(
                           "Entities reviewed for a list within this many days before `date` "
                           "are left off (an integer, default 365)."))] = None) -> Response:
        """The top `k` entities scored for `date` (YYYY-MM-DD, a UTC day), highest score first,
        leaving out those already reviewed: the live deployment's scored requests of that day
        once it has answered `/predict`, else the deployed model group's stored predictions as
        of that date (`source` says which)."""
        await authenticate(request, ("review", "analyst"))
        given = {"date": date, **{name: value for name, value in
                                  (("k", k), ("cool_off_days", cool_off_days))
                                  if value is not None}}
        query = parse_body(ListQuery, given, "list request", "query")
        found = await run_in_threadpool(lists.ranked_list, service.engine, query.date, query.k,
                                        query.cool_off_days)
        return _json(found.as_dict())

    async def record_review(request: Request) -> Response:
        """A reviewer's agreement with a flag, the decision taken and notes, for an entity on
        the list of `list_date`; the entity then stays off the lists of the cool-off period.
        Not scored for that date: 404; already reviewed for that list: 409."""
        principal = await authenticate(request, ("review",))
        review = parse_body(ReviewIn, await read_body(request), "review")
        stored = await run_in_threadpool(lists.record, service.engine, review, principal.name)
        return _json(stored, 201)

    app.router.add_api_route(
        "/reviews", record_review, methods=["POST"], route_class_override=RawRoute,
        summary="Record a reviewer's feedback on a listed entity", status_code=201,
        responses={201: {"model": ReviewOut, "description": "Review stored."},
                   **_errors(401, 403, 404, 409, 413, 422)},
        openapi_extra={"requestBody": {"required": True, "content": {JSON: {
            "schema": {"$ref": "#/components/schemas/ReviewIn"},
            "examples": {"review": {"value": REVIEW_EXAMPLE}}}}}},
        tags=["lists"])

    @app.get("/health", response_model=HealthOut, summary="Liveness and readiness (open)",
             responses={503: {"model": HealthOut,
                              "description": "The store or the writer is unavailable."}},
             tags=["service"])
    async def health() -> Response:
        """Whether the model is loaded and the store is reachable; no token needed."""
        def check() -> Any:
            with service.engine.connect() as conn:
                return live_deployment(conn)

        try:
            live = await run_in_threadpool(check)
            served_id = service.model.deployment_id
            store_ok, current = True, live is not None and live["id"] == served_id
        except Exception:  # noqa: BLE001 - any failure means the store is not usable
            store_ok, current = False, None
        ok = store_ok and writer.alive
        return _json({"status": "ok" if ok else "unavailable", "model_loaded": True,
                      "store_reachable": store_ok, "deployment_current": current,
                      "deployment_id": service.model.deployment_id,
                      "reload_error": service.reload_error},
                     200 if ok else 503)

    @app.get("/metrics", summary="Prometheus metrics", tags=["service"],
             responses={200: {"content": {"text/plain": {
                 "schema": {"type": "string"},
                 "example": 'rudi_http_requests_total{endpoint="/predict",method="POST",'
                            'status="200"} 1234.0\n'}},
                 "description": "Prometheus text exposition format."}, **_errors(401, 403)},
             response_class=Response)
    async def prometheus_metrics(request: Request) -> Response:
        """Request counts by endpoint and status, latency histograms, predictions, replays,
        outcomes, group-commit sizes and durations, and the served model."""
        await authenticate(request, ("analyst",))
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document(request: Request) -> Response:
        await authenticate(request, ())
        return _json(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Response:
        await authenticate(request, ())
        return Response(docs_page("swagger", app.title, app.openapi()), media_type="text/html")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> Response:
        await authenticate(request, ())
        return Response(docs_page("redoc", app.title, app.openapi()), media_type="text/html")

    documented: list[Served] = []  # the model the cached document describes

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None or documented[-1:] != [service.served]:
            documented[:] = [service.served]  # a reloaded model may take other fields
            doc = get_openapi(title=app.title, version=app.version, description=app.description,
                              routes=app.routes)
            components = doc.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            schemas.update(service.schema.json_schemas())
            outcome_schema = OutcomeIn.model_json_schema(
                ref_template="#/components/schemas/{model}")
            schemas.update(outcome_schema.pop("$defs", {}))
            schemas["OutcomeIn"] = outcome_schema
            schemas["ReviewIn"] = ReviewIn.model_json_schema(
                ref_template="#/components/schemas/{model}")
            components["securitySchemes"] = {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A token from `rudi token create --role ROLE`."}}
            for path, operations in doc["paths"].items():
                for operation in operations.values():
                    operation["security"] = [] if path in OPEN_PATHS else [{"bearerAuth": []}]
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


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


def app_from_env() -> FastAPI:
    """uvicorn factory for ``rudi serve --workers N`` (settings come from the environment)."""
    return create_app(ServiceSettings.from_env())


DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


@functools.cache
def _asset(name: str) -> str:
    """A Swagger UI / ReDoc file shipped by the fastapi-offline package (no CDN), ready to
    inline in a <script> or <style> element."""
    text = (DOCS_ASSETS / name).read_text(encoding="utf-8")
    return re.sub("</(script|style)", r"<\\/\1", text, flags=re.IGNORECASE)


def docs_page(kind: str, title: str, document: dict[str, Any]) -> str:
    """Swagger UI or ReDoc with the scripts, styles and the OpenAPI document inlined: the page
    itself needs a token, and a browser would not send one when fetching /openapi.json or the
    assets on its own (so they are behind the same token as the document)."""
    spec = orjson.dumps(document).decode().replace("</", "<\\/")
    head = f'<!doctype html><html><head><title>{html.escape(title)}</title><meta charset="utf-8">'
    if kind == "swagger":
        return (f"{head}<style>{_asset('swagger-ui.css')}</style></head><body>"
                f'<div id="swagger-ui"></div><script>{_asset("swagger-ui-bundle.js")}</script>'
                f'<script>SwaggerUIBundle({{spec: {spec}, dom_id: "#swagger-ui"}});</script>'
                "</body></html>")
    return (f'{head}</head><body><div id="redoc"></div><script>{_asset("redoc.standalone.js")}'
            f'</script><script>Redoc.init({spec}, {{}}, document.getElementById("redoc"));'
            "</script></body></html>")
