"""Alerts: a breached bound, stored with what was measured, the bound, the window and how bad it
is; optionally posted to a webhook (a chat channel, an incident tool)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import httpx
from sqlalchemy.engine import Connection

from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.results import plain

SEVERITIES = ("critical", "warning")


@dataclass(frozen=True)
class Alert:
    kind: str  # drift, performance, fairness, freshness, row_count, integrity, stability
    subject: str
    metric: str
    value: float | None
    bound: float | None
    severity: str
    window: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return plain(asdict(self))


def latest_alerts(conn: Connection, project: str) -> tuple[Any, list[dict[str, Any]]]:
    """The latest monitor run of ``project`` and its alerts (the open ones), critical first."""
    run = monitoring_q.latest_of_project(conn, project)
    if run is None:
        return None, []
    rows = monitoring_q.alerts_of(conn, run["id"])
    rows = sorted((dict(r) for r in rows), key=lambda r: SEVERITIES.index(r["severity"]))
    return run, rows


def post_webhook(url: str, project: str, monitor_run_id: int, found: list[Alert],
                 timeout: float = 10.0) -> str | None:
    """POST the alerts as JSON; returns a problem description instead of raising, so a broken
    webhook never loses the stored alerts."""
    body = {"project": project, "monitor_run_id": monitor_run_id,
            "critical": sum(a.severity == "critical" for a in found),
            "warning": sum(a.severity == "warning" for a in found),
            "alerts": [a.as_json() for a in found]}
    try:
        response = httpx.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"webhook {url}: {type(exc).__name__}: {exc}"
    if response.status_code >= 400:
        return f"webhook {url}: HTTP {response.status_code}"
    return None
