"""Production tables: what the service deployed, who may call it, every answer it gave and the
outcomes that came back. Defined on the results store's ``metadata`` so one Alembic history
covers both; the same schema runs on SQLite and PostgreSQL.

History is never overwritten: a new deployment retires the old one (``live`` false,
``retired_at`` set) instead of replacing it, a revoked token keeps its row, predictions and
outcomes are only ever inserted, and ``audit_log`` refuses UPDATE and DELETE (triggers created by
migration 0003).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from rudikit.store.tables import BigId, metadata

deployed_models = Table(
    "deployed_models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_group_id", ForeignKey("model_groups.id"), nullable=False, index=True),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("threshold", Float, nullable=False),  # decision = score >= threshold
    Column("deployed_by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("deployed_at", DateTime(timezone=True), nullable=False),
    Column("live", Boolean, nullable=False),
    Column("retired_at", DateTime(timezone=True)),
    Column("retired_by", String(200)),
    # set when `rudi deploy --waive` overrode the deploy gate: reason, who, the failing items
    Column("waiver", JSON),
    # at most one live deployment, enforced by the database rather than by convention
    Index("uq_deployed_models_live", "live", unique=True,
          sqlite_where=text("live = 1"), postgresql_where=text("live")),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),  # predict, outcome, analyst, admin
    Column("token_hash", String(64), nullable=False),  # SHA-256 hex; the token is never stored
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", String(200)),
    UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
)

# One row per accepted POST /predict call (a single observation or a batch, replays included).
requests = Table(
    "requests",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid4 hex, also sent as X-Request-ID
    Column("endpoint", String(50), nullable=False),
    Column("token_id", ForeignKey("api_tokens.id"), nullable=False),
    Column("deployment_id", ForeignKey("deployed_models.id"), nullable=False),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("n_observations", Integer, nullable=False),
    Column("n_new", Integer, nullable=False),  # the others were replays of stored answers
    Column("latency_ms", Float, nullable=False),  # receipt to decision (before the commit)
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# One row per observation scored; ``observation_id`` is the client's id and the idempotency key.
production_predictions = Table(
    "production_predictions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("observation_id", String(200), nullable=False),
    Column("request_id", ForeignKey("requests.id"), nullable=False, index=True),
    Column("deployment_id", ForeignKey("deployed_models.id"), nullable=False),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("features", JSON, nullable=False),  # the model inputs as received (for retraining)
    Column("payload_hash", String(64), nullable=False),
    Column("ignored_fields", JSON),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("decision", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("observation_id", name="uq_production_predictions_observation_id"),
    Index("ix_production_predictions_model_created", "model_id", "created_at"),
)

# The true outcome of a prediction; one per prediction (a different second one is refused).
outcomes = Table(
    "outcomes",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("prediction_id", ForeignKey("production_predictions.id"), nullable=False),
    Column("observation_id", String(200), nullable=False),
    Column("outcome", Integer, nullable=False),  # 0 or 1
    Column("token_id", ForeignKey("api_tokens.id"), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("prediction_id", name="uq_outcomes_prediction_id"),
)

# Append-only (triggers refuse UPDATE/DELETE): deployments and token creation/revocation.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(50), nullable=False),
    Column("target", String(200), nullable=False),
    Column("details", JSON, nullable=False),
)

PRODUCTION_TABLES = (deployed_models, api_tokens, requests, production_predictions, outcomes,
                     audit_log)
