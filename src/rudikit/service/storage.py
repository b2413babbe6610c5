"""How the service's production rows look: the columns the writer inserts and reads back, and a
stored prediction as the API answers it.

The writer (:mod:`rudikit.service.writer`) talks to the drivers directly and writes the values
in the formats SQLAlchemy reads back; the rest of rudikit, and :func:`read_prediction` here
(off the hot path), read these tables with SQLAlchemy Core.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from rudikit.store.production_tables import production_predictions
from rudikit.store.queries.production import stored_prediction

P = production_predictions

ANSWER_FIELDS = ("id", "observation_id", "request_id", "model_id", "deployment_id", "score",
                 "decision", "threshold", "ignored_fields", "created_at", "payload_hash")
REQUEST_FIELDS = ("id", "endpoint", "token_id", "deployment_id", "model_id", "n_observations",
                  "n_new", "latency_ms", "received_at")
PREDICTION_FIELDS = ("observation_id", "request_id", "deployment_id", "model_id", "features",
                     "payload_hash", "ignored_fields", "score", "threshold", "decision",
                     "created_at")
OUTCOME_FIELDS = ("prediction_id", "observation_id", "outcome", "token_id", "recorded_at")


def utc(stamp: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def answer(row: dict[str, Any], replayed: bool, predicted_at: str | None = None
           ) -> dict[str, Any]:
    """A stored (or about to be stored) prediction as the API returns it."""
    return {
        "observation_id": row["observation_id"], "request_id": row["request_id"],
        "model_id": row["model_id"], "deployment_id": row["deployment_id"],
        "score": float(row["score"]), "decision": bool(row["decision"]),
        "threshold": float(row["threshold"]), "ignored_fields": row["ignored_fields"] or [],
        "replayed": replayed,
        "predicted_at": predicted_at or utc(row["created_at"]).isoformat(),
    }


def read_prediction(engine: Engine, key: str) -> dict[str, Any] | None:
    """A stored prediction by observation id (or the id of a single-observation request),
    with its features and outcome (SQLAlchemy; off the hot path)."""
    row = stored_prediction(engine, key, ANSWER_FIELDS)
    if row is None:
        return None
    body = answer(dict(row), replayed=False)
    body["features"] = row["features"]
    body["outcome"] = row["outcome"]
    body["outcome_recorded_at"] = (utc(row["outcome_recorded_at"]).isoformat()
                                   if row["outcome_recorded_at"] is not None else None)
    return body
