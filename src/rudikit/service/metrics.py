"""Prometheus metrics and the per-request bookkeeping around every endpoint.

:class:`Observability` is a plain ASGI middleware (no per-request task or body copy): it gives
each request an id (``X-Request-ID``), times it, counts it by endpoint and status, and turns any
unexpected exception into a 500 with that id instead of a stack trace. With several uvicorn
workers the counters live in ``PROMETHEUS_MULTIPROC_DIR`` (set by ``rudi serve``) and
``/metrics`` adds up every worker.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

log = logging.getLogger("rudikit.service")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# Request ids need to be unique, not secret: a generator seeded once avoids a getrandom()
# system call per request (which also hands the GIL to other threads).
_ids = random.Random(os.urandom(32))


def new_request_id() -> str:
    """32 hex digits: microseconds since 1970, then 72 random bits. Time-ordered ids append at
    the end of the store's B-tree indexes; random ones dirtied a page per row and were measured
    to make each SQLite commit 5x slower."""
    return f"{time.time_ns() // 1000:014x}{_ids.getrandbits(72):018x}"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The service's metrics, on a registry of its own (one per app, so tests can make many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rudi_http_requests", "HTTP requests by endpoint and status.",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("rudi_http_request_duration_seconds",
                                 "Time from receiving a request to sending its answer.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("rudi_predictions", "Observations scored and stored.",
                                   ["decision"], registry=r)
        self.replays = Counter("rudi_prediction_replays",
                               "Observations answered from the store (same observation_id and "
                               "payload as before).", registry=r)
        self.outcomes = Counter("rudi_outcomes", "Outcomes recorded.", ["outcome"], registry=r)
        self.commits = Histogram("rudi_store_group_commit_jobs",
                                 "Requests written per store transaction (group commit).",
                                 buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.commit_seconds = Histogram("rudi_store_commit_seconds",
                                        "Duration of one store transaction, commit included.",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.model_info = Gauge("rudi_model_info", "The model this server serves (value 1).",
                                ["deployment_id", "model_id", "model_group_id", "algorithm",
                                 "scoring_path"], registry=r, multiprocess_mode="max")
        self._children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(endpoint, method, str(status))
        child.inc()
        latency = self._latency_children.get(endpoint)
        if latency is None:
            latency = self._latency_children[endpoint] = self.latency.labels(endpoint)
        latency.observe(seconds)

    def count_predictions(self, predictions: list[dict[str, Any]]) -> None:
        new = [p for p in predictions if not p["replayed"]]
        if len(new) != len(predictions):
            self.replays.inc(len(predictions) - len(new))
        positive = sum(1 for p in new if p["decision"])
        if positive:
            self.predictions.labels("1").inc(positive)
        if len(new) - positive:
            self.predictions.labels("0").inc(len(new) - positive)

    def on_commit(self, jobs: int, seconds: float) -> None:
        self.commits.observe(jobs)
        self.commit_seconds.observe(seconds)

    def render(self) -> bytes:
        directory = multiprocess_dir()
        if directory:
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry, path=directory)
            return generate_latest(registry)
        return generate_latest(self.registry)


class Observability:
    """ASGI middleware: request id, timing, counting, and a clean 500 for the unexpected."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = started
        header = (b"x-request-id", request_id.encode())
        status = 500
        response_started = False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if response_started:
                raise  # the answer is out (e.g. a 413 from the body limit, which signals so)
            log.exception("request %s failed", request_id)
            status = 500
            body = orjson.dumps({"detail": "internal error; the request was not stored. Quote "
                                           f"request id {request_id} when reporting it.",
                                 "errors": [], "request_id": request_id})
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()), header]})
            await send({"type": "http.response.body", "body": body})
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(endpoint, scope.get("method", ""), status,
                                 time.perf_counter() - started)
