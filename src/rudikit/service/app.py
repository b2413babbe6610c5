"""The prediction service: a FastAPI app serving the deployed model.

``create_app`` makes the :class:`~rudikit.service.state.Service` (it opens the store and loads
the live deployment's model, only if its file hashes to what the store recorded), includes one
router per resource (:mod:`rudikit.service.routers`) and the dashboard, and answers every
failure with one body shape. Every route except ``/health`` and ``/`` (a redirect to the
dashboard) checks a bearer token and its role
before anything else (:mod:`rudikit.service.deps`). ``POST /predict`` answers only after its
request and predictions are committed (see :mod:`rudikit.service.writer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rudikit import __version__
from rudikit.service.errors import ApiError, field_path, validation_error
from rudikit.service.metrics import Observability
from rudikit.service.routers import docs, health, lists, outcomes, predictions
from rudikit.service.routing import JSON, json_response
from rudikit.service.schemas import OutcomeIn, ReviewIn
from rudikit.service.settings import ServiceSettings
from rudikit.service.state import Served, Service
from rudikit.service.ui.routes import create_dashboard

DESCRIPTION = """Scores observations with the deployed model and stores every request,
prediction and outcome in the rudikit results store before answering.

Authenticate with `Authorization: Bearer <token>` (`rudi token create --role ROLE`). Roles:
`predict` (POST /predict), `outcome` (POST /outcomes), `review` (GET /lists, POST /reviews),
`analyst` (GET /predictions, /lists, /metrics and the dashboard under `/ui`), `admin`
(everything). Only `/health` is open (and `/`, a redirect to the dashboard). Every response
carries `X-Request-ID`."""


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The service app. Raises :class:`~rudikit.service.errors.ServiceError` when there is no
    deployment or its model file does not match the store."""
    service = Service(settings or ServiceSettings.from_env())
    writer = service.writer

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
    app.add_middleware(Observability, metrics=service.metrics)
    app.mount("/ui", create_dashboard(service))
    add_error_handlers(app)
    for router in (predictions.router, outcomes.router, lists.router, health.router,
                   docs.router):
        # the routes themselves, not app.include_router: since FastAPI 0.137 an included
        # router is one node that matches each request twice (measured +35 us a request, ~10%
        # of a /predict); these routers have no prefix or dependencies for it to apply
        app.router.routes.extend(router.routes)
    # after FastAPI's encoding of the document, which drops null values: every feature key of
    # an observation must be present, null meaning missing
    predict_examples = predictions.predict_examples(service.schema.example)
    documented: list[Served] = []  # the model the cached document describes

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None or documented[-1:] != [service.served]:
            documented[:] = [service.served]  # a reloaded model may take other fields
            doc = get_openapi(title=app.title, version=app.version, description=app.description,
                              routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(service.schema.json_schemas())
            outcome_schema = OutcomeIn.model_json_schema(
                ref_template="#/components/schemas/{model}")
            schemas.update(outcome_schema.pop("$defs", {}))
            schemas["OutcomeIn"] = outcome_schema
            review_in = ReviewIn.model_json_schema(ref_template="#/components/schemas/{model}")
            # the project's decisions (the model allows any key; the project is read here)
            review_in["properties"]["decision"]["enum"] = list(service.lists.project.decisions)
            schemas["ReviewIn"] = review_in
            doc["paths"]["/predict"]["post"]["requestBody"]["content"][JSON]["examples"] = (
                predict_examples)
            for operations in doc["paths"].values():
                for operation in operations.values():
                    operation.setdefault("security", [])  # open (/health): said explicitly
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def add_error_handlers(app: FastAPI) -> None:
    """One body shape (:class:`~rudikit.service.schemas.ErrorOut`) for every failure."""

    def error_response(request: Request, status: int, detail: str,
                       errors: list[dict[str, Any]] | None = None,
                       headers: dict[str, str] | None = None) -> Response:
        return json_response({"detail": detail, "errors": errors or [],
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


def app_from_env() -> FastAPI:
    """uvicorn factory for ``rudi serve --workers N`` (settings come from the environment)."""
    return create_app(ServiceSettings.from_env())
