"""The results store's tables (SQLAlchemy Core). The same schema runs on SQLite and PostgreSQL.

History is never overwritten: every run adds rows; model groups are shared across runs (a group
is an algorithm + hyperparameters + features + label), models are a group fitted in one run.
Alembic migrations in ``migrations/`` create and evolve these tables; keep the two in step.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(200), nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("config", JSON, nullable=False),
    Column("code_version", String(100), nullable=False),
    Column("library_versions", JSON, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("data_origin", String(20), nullable=False),  # "real" or "synthetic"
    Column("status", String(20), nullable=False),  # running, finished, failed
    Column("error", Text),
    Column("report_path", Text),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

data_snapshots = Table(
    "data_snapshots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False, index=True),
    Column("source", String(200), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("location", Text, nullable=False),
    Column("files", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("bad_rows", Integer, nullable=False),
    Column("warnings", Integer, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("min_date", DateTime(timezone=True)),
    Column("max_date", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

model_groups = Table(
    "model_groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("group_key", String(64), nullable=False),
    Column("project", String(200), nullable=False),
    Column("algorithm", String(100), nullable=False),
    Column("hyperparameters", JSON, nullable=False),
    Column("features", JSON, nullable=False),
    Column("label", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("group_key", name="uq_model_groups_group_key"),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False, index=True),
    Column("model_group_id", ForeignKey("model_groups.id"), nullable=False, index=True),
    Column("split", String(200), nullable=False),
    Column("train_rows", Integer, nullable=False),
    Column("test_rows", Integer, nullable=False),
    Column("train_start", DateTime(timezone=True)),
    Column("train_end", DateTime(timezone=True)),
    Column("test_start", DateTime(timezone=True)),
    Column("test_end", DateTime(timezone=True)),
    Column("artefact_hash", String(64), nullable=False),
    Column("artefact_path", Text, nullable=False),
    Column("train_seconds", Float, nullable=False),
    Column("selected", Boolean, nullable=False, default=False),
    Column("selection_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("entity_id", String(200), nullable=False),
    Column("as_of_date", DateTime(timezone=True)),
    Column("score", Float, nullable=False),
    Column("label", Integer),
    Column("rank_abs", Integer, nullable=False),
    Column("rank_pct", Float, nullable=False),
    Index("ix_predictions_model_rank", "model_id", "rank_abs"),
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
    Column("metric", String(100), nullable=False),
    Column("parameter", String(100), nullable=False),  # e.g. "10_pct", "100_abs", "0.5", ""
    Column("value", Float),
    Column("lower", Float),
    Column("upper", Float),
    Column("n", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

feature_importances = Table(
    "feature_importances",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
    Column("feature", String(300), nullable=False),
    Column("method", String(50), nullable=False),
    Column("importance", Float, nullable=False),
    Column("std", Float),
    Column("p_value", Float),
    Column("rank", Integer, nullable=False),
)

# Per-prediction explanations (SHAP values or coefficient x value): the top reasons shown next to
# an entity on a list or in an API answer.
individual_importances = Table(
    "individual_importances",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("entity_id", String(200), nullable=False),
    Column("as_of_date", DateTime(timezone=True)),
    Column("feature", String(300), nullable=False),
    Column("method", String(50), nullable=False),  # shap, coefficient
    Column("contribution", Float, nullable=False),  # signed, in the model's score units
    Column("value", String(200)),  # the entity's value of the feature, as text
    Column("rank", Integer, nullable=False),  # 1 = largest |contribution|
    Index("ix_individual_importances_model_entity", "model_id", "entity_id"),
)

fairness_audits = Table(
    "fairness_audits",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
    Column("selection", String(50), nullable=False),  # "threshold=0.5", "top_pct=10", "top_k=100"
    Column("attribute", String(300), nullable=False),  # a column, or crossed columns "a:b"
    Column("group_value", String(300), nullable=False),
    Column("metric", String(50), nullable=False),
    Column("value", Float),
    Column("lower", Float),
    Column("upper", Float),
    Column("numerator", Float),
    Column("denominator", Float),
    Column("n", Integer, nullable=False),
    Column("reference_group", String(300)),
    Column("disparity_ratio", Float),
    Column("difference_pp", Float),
    Column("p_value", Float),
    Column("p_adjusted", Float),  # corrected p-value of the test behind the verdict
    Column("fair", Boolean),
    # ok, unfair, inconclusive, reference, insufficient data, ...
    Column("status", String(50), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

fairness_requirements = Table(
    "fairness_requirements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
    Column("selection", String(50), nullable=False),
    Column("name", String(300), nullable=False),
    Column("metric", String(50), nullable=False),
    Column("max_gap_pp", Float, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("units_met", Integer, nullable=False),
    Column("units_evaluated", Integer, nullable=False),
    Column("summary", Text, nullable=False),
    Column("outcomes", JSON, nullable=False),  # one record per unit: status, gap, groups
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# What a run's report shows, frozen when the report is first written (``kind``: "run" or
# "temporal"): the page's tables and figures as JSON, so rebuilding it later (after reviews,
# outcomes, deployments or later runs have changed the store) shows what it showed then.
report_payloads = Table(
    "report_payloads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("code_version", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_id", "kind", name="uq_report_payloads_run_kind"),
)

# A compact profile of each column of a data snapshot, taken when the run loaded it (the data
# card's distribution and missingness plots are drawn from these, never from the files, which
# may have changed since): ``summary`` holds a histogram (``edges``, ``counts``) of a numeric
# or date column, or the top categories (``values``, ``counts``, ``other``) of any other.
snapshot_profiles = Table(
    "snapshot_profiles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("snapshot_id", ForeignKey("data_snapshots.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("column_name", String(300), nullable=False),
    Column("kind", String(20), nullable=False),  # number, integer, boolean, date-time, text
    Column("rows", Integer, nullable=False),
    Column("missing", Integer, nullable=False),
    Column("distinct_values", Integer, nullable=False),
    Column("summary", JSON, nullable=False),
)

# The members of an ensemble model (``algorithm: ensemble``): the stored models it averages or
# stacks, in its order (``position`` 0 first), and how they were chosen (``chosen_by``: on the
# validation rows, or by an audition rule over the training-era splits).
ensemble_members = Table(
    "ensemble_members",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ensemble_model_id", ForeignKey("models.id"), nullable=False, index=True),
    Column("member_model_id", ForeignKey("models.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("chosen_by", String(200), nullable=False),
    UniqueConstraint("ensemble_model_id", "position", name="uq_ensemble_members_model_position"),
)
