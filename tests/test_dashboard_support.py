"""Helpers shared by the dashboard tests (no tests here): a store filled by a real small project
run, with the selected model deployed, one token per role and a monitor run with alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from conftest import example_config, write_project
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from rudikit.run.develop import run_project
from rudikit.service.auth import ROLES, create_token
from rudikit.service.deploy import deploy
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.monitoring_tables import alerts, monitor_metrics, monitor_runs

#: (feature, PSI) of the monitor run the tests insert; 0.31 is above the default critical bound
DRIFT = [("gender", 0.031), ("force", 0.172), ("object_of_search", 0.31)]
#: (segment, precision, n)
PERFORMANCE = [("", 0.287, 812), ("Age 18-24", 0.243, 301), ("Age over 34", 0.351, 190)]


@dataclass
class DashboardStore:
    folder: Path
    url: str
    schema: str | None
    engine: Engine
    model_id: int  # the selected and deployed model
    group_id: int
    tokens: dict[str, str]


def dashboard_store(folder: Path, url: str, schema: str | None) -> DashboardStore:
    """Run the small synthetic stop-and-search project into the store at ``url``, deploy its
    selected model and make a token per role."""
    evaluation = example_config()["evaluation"]
    evaluation["bootstrap"] = 40
    write_project(folder, evaluation=evaluation)
    engine = open_store(url, schema=schema)
    run_project(folder, engine=engine)
    with engine.connect() as conn:
        model_id, group_id = conn.execute(select(t.models.c.id, t.models.c.model_group_id)
                                          .where(t.models.c.selected.is_(True))).one()
    deploy(engine, group_id, model_id=model_id, reason="best ROC AUC on last month",
           by="pytest", project_dir=folder)
    tokens = {role: create_token(engine, role, f"{role} user", "pytest")[1] for role in ROLES}
    return DashboardStore(folder, url, schema, engine, model_id, group_id, tokens)


def add_monitor_run(engine: Engine, model_id: int, group_id: int) -> int:
    """A monitor run as `rudi monitor` records it: drift, performance and two alerts (the
    warning stored before the critical one)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        run_id = conn.execute(insert(monitor_runs).values(
            project="stop-search", deployment_id=None, model_group_id=group_id,
            model_id=model_id, window_start=datetime(2020, 2, 1, tzinfo=UTC),
            window_end=datetime(2020, 3, 1, tzinfo=UTC), n_predictions=1234, n_outcomes=812,
            n_critical=1, n_warning=1, started_at=now, finished_at=now,
        ).returning(monitor_runs.c.id)).scalar_one()
        conn.execute(insert(monitor_metrics), [
            {"monitor_run_id": run_id, "section": "drift", "subject": f, "segment": "",
             "metric": "psi", "value": v, "n": 1234} for f, v in DRIFT] + [
            {"monitor_run_id": run_id, "section": "performance", "subject": "score",
             "segment": s, "metric": "precision", "value": v, "n": n}
            for s, v, n in PERFORMANCE])
        conn.execute(insert(alerts), [
            {"monitor_run_id": run_id, "kind": "drift", "subject": "force", "metric": "psi",
             "value": 0.172, "bound": 0.1, "severity": "warning", "window": "2020-02",
             "message": "force has drifted (PSI 0.172 > 0.1)", "created_at": now},
            {"monitor_run_id": run_id, "kind": "drift", "subject": "object_of_search",
             "metric": "psi", "value": 0.31, "bound": 0.25, "severity": "critical",
             "window": "2020-02", "message": "object_of_search has drifted badly (PSI 0.31 > "
                                            "0.25)", "created_at": now}])
    return run_id
