"""Monitoring tables: what each `rudi monitor` run measured and which alerts it raised.

Defined on the results store's ``metadata`` (migration 0005); rows are only ever inserted.

* ``monitor_runs``: one row per `rudi monitor` (the production window it looked at, the live
  deployment, how many predictions and outcomes it saw, how many alerts of each severity);
* ``monitor_metrics``: every figure the run measured, long format: ``section`` (``drift``,
  ``drift_bucket``, ``performance``, ``fairness``, ``inputs``, ``stability``; a temporal
  project's ``list_precision``, ``list_promise``, ``list_fairness``, ``list_fairness_group``
  and ``agreement``, with the list's date as the segment), ``subject`` (a
  feature, source, requirement or ``score``), ``segment`` (a bucket such as ``Age 10-17``, a
  station, a period) and ``metric`` (``psi``, ``chi2_p``, ``training_share``, ``precision``...);
* ``alerts``: each breached bound (what, value, bound, window, severity); the alerts of the
  latest monitor run are the open ones;
* ``reference_profiles``: per deployment, what production is compared with (the training
  rows' drift buckets and counts, the test scores and the expected performance), computed at
  deploy time (``rudi deploy``) or else on the deployment's first pass, and read by every pass
  after (migration 0012);
* ``source_periods``: a checksum and row count per source and period, recorded at every run, so
  a rewritten historical period is noticed the next time the source is read;
* ``source_readings``: per run and source, the checksum of the files read, the time column and
  period digested, the newest record and the columns, so a later pass over unchanged files
  reuses that run's digests instead of loading the source again (migration 0016).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from rudikit.store.tables import BigId, metadata

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(200), nullable=False),
    Column("deployment_id", ForeignKey("deployed_models.id")),
    Column("model_group_id", ForeignKey("model_groups.id")),
    Column("model_id", ForeignKey("models.id")),
    Column("window_start", DateTime(timezone=True)),
    Column("window_end", DateTime(timezone=True)),
    Column("n_predictions", Integer, nullable=False),
    Column("n_outcomes", Integer, nullable=False),
    Column("n_critical", Integer, nullable=False),
    Column("n_warning", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
)

monitor_metrics = Table(
    "monitor_metrics",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("monitor_run_id", ForeignKey("monitor_runs.id"), nullable=False),
    Column("section", String(30), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("segment", String(200), nullable=False),  # "" when the figure is for the whole window
    Column("metric", String(50), nullable=False),
    Column("value", Float),
    Column("n", Integer),
    Column("details", JSON),
    Index("ix_monitor_metrics_run_section", "monitor_run_id", "section"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("monitor_run_id", ForeignKey("monitor_runs.id"), nullable=False, index=True),
    Column("kind", String(30), nullable=False),  # drift, performance, fairness, freshness, ...
    Column("subject", String(200), nullable=False),
    Column("metric", String(50), nullable=False),
    Column("value", Float),
    Column("bound", Float),
    Column("severity", String(10), nullable=False),  # warning, critical
    Column("window", String(100), nullable=False),  # the window or period the value is for
    Column("message", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

source_periods = Table(
    "source_periods",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("monitor_run_id", ForeignKey("monitor_runs.id"), nullable=False),
    Column("source", String(200), nullable=False),
    Column("period", String(20), nullable=False),  # 2020-01 (month) or 2020-01-31 (day)
    Column("row_count", Integer, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_source_periods_source_period", "source", "period"),
)

reference_profiles = Table(
    "reference_profiles",
    metadata,
    Column("deployment_id", ForeignKey("deployed_models.id"), primary_key=True,
           autoincrement=False),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    # drift buckets and counts of the inputs and of the score, the expected performance
    Column("profile", JSON, nullable=False),
    # the test predictions as float64 (score, label or -1) pairs: the KS test, expected figures
    Column("reference_scores", LargeBinary(2**32 - 1), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

source_readings = Table(
    "source_readings",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("monitor_run_id", ForeignKey("monitor_runs.id"), nullable=False),
    Column("source", String(200), nullable=False),
    Column("checksum", String(64), nullable=False),  # SHA-256: files' bytes and settings
    Column("time_column", String(200)),
    Column("period", String(20), nullable=False),
    Column("newest", DateTime(timezone=True)),
    Column("columns", JSON, nullable=False),
    Index("ix_source_readings_source", "source"),
)

MONITORING_TABLES = (monitor_runs, monitor_metrics, alerts, source_periods, reference_profiles,
                     source_readings)
