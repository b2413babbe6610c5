"""The operational endpoints: ``/health`` (open, for load balancers) and ``/metrics``
(Prometheus)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from starlette.concurrency import run_in_threadpool

from rudikit.service.auth import Principal
from rudikit.service.deps import MetricsDep, ServiceDep, require_role
from rudikit.service.metrics import CONTENT_TYPE
from rudikit.service.routing import error_docs, json_response
from rudikit.service.schemas import HealthOut
from rudikit.store.queries.production import live_deployment

router = APIRouter(tags=["service"])
Analyst = Annotated[Principal, Depends(require_role("analyst"))]


@router.get("/health", response_model=HealthOut, summary="Liveness and readiness (open)",
            responses={503: {"model": HealthOut,
                             "description": "The store or the writer is unavailable."}})
async def health(service: ServiceDep) -> Response:
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
    ok = store_ok and service.writer.alive
    return json_response({"status": "ok" if ok else "unavailable", "model_loaded": True,
                          "store_reachable": store_ok, "deployment_current": current,
                          "deployment_id": service.model.deployment_id,
                          "reload_error": service.reload_error},
                         200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {
                "schema": {"type": "string"},
                "example": 'rudi_http_requests_total{endpoint="/predict",method="POST",'
                           'status="200"} 1234.0\n'}},
                "description": "Prometheus text exposition format."}, **error_docs(401, 403)},
            response_class=Response)
async def prometheus_metrics(_: Analyst, metrics: MetricsDep) -> Response:
    """Request counts by endpoint and status, latency histograms, predictions, replays,
    outcomes, group-commit sizes and durations, and the served model."""
    return Response(metrics.render(), media_type=CONTENT_TYPE)
