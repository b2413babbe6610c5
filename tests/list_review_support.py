"""Helpers for the intervention-list tests (issue 19; no tests here): a small synthetic
early-intervention project developed, deployed and scored into two monthly production lists,
with a token per role and monitor alerts on the deployed model group and on another group."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from rudikit.config import load_project
from rudikit.monitoring.scheduled_lists import score_lists
from rudikit.service.auth import ROLES, create_token
from rudikit.service.deploy import deploy
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.monitoring_tables import alerts, monitor_runs
from tests.test_production_lists import _project

FIRST, SECOND = pd.Timestamp("2012-01-01"), pd.Timestamp("2012-02-01")
K = 5
COOL_OFF = 45
#: (severity, subject, message) of the alerts on the deployed group, stored warning first
ALERTS = [("warning", "jaccard", "the list changed more than usual (Jaccard 0.41 < 0.5)"),
          ("critical", "precision_at_k", "realised precision 0.20 is below the promise 0.45")]
OTHER_GROUP_ALERT = "an alert on another model group"


@dataclass
class EisLists:
    folder: Path
    engine: Engine
    model_id: int
    group_id: int
    tokens: dict[str, str]


def add_alerts(engine: Engine, group_id: int, other_group: int) -> None:
    """A monitor pass of the deployed group with two alerts, and a later pass of another group
    (whose alert concerns no list shown)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for group, found in ((group_id, ALERTS),
                             (other_group, [("critical", "psi", OTHER_GROUP_ALERT)])):
            run = conn.execute(insert(monitor_runs).values(
                project="eis-test", deployment_id=None, model_group_id=group, model_id=None,
                window_start=datetime(2012, 1, 1, tzinfo=UTC),
                window_end=datetime(2012, 3, 1, tzinfo=UTC), n_predictions=10, n_outcomes=5,
                n_critical=1, n_warning=len(found) - 1, started_at=now, finished_at=now,
            ).returning(monitor_runs.c.id)).scalar_one()
            conn.execute(insert(alerts), [
                {"monitor_run_id": run, "kind": "list", "subject": subject, "metric": subject,
                 "value": 0.2, "bound": 0.45, "severity": severity, "window": "2012-01",
                 "message": message, "created_at": now}
                for severity, subject, message in found])


_DEVELOPED: dict[str, Path] = {}


def _lightgbm(engine: Engine) -> Any:
    """The LightGBM group's model of the last split (an explained model: reasons are stored)."""
    with engine.connect() as conn:
        return conn.execute(select(t.models.c.id, t.models.c.model_group_id).join(
            t.model_groups, t.model_groups.c.id == t.models.c.model_group_id).where(
            t.model_groups.c.algorithm == "lightgbm").order_by(t.models.c.test_start.desc(),
                                                                t.models.c.id.desc()).limit(1)
        ).one()


def _developed(factory: pytest.TempPathFactory) -> Path:
    """The project developed, deployed and scored once per test session (a template copied by
    each module, whose tests then write reviews into their own store)."""
    if "eis" in _DEVELOPED:
        return _DEVELOPED["eis"]
    from rudikit.run.develop import run_project

    folder = factory.mktemp("eis-lists")
    _project(folder, {"frequency": "monthly", "cool_off_days": COOL_OFF, "top_k": K})
    config = yaml.safe_load((folder / "rudi.yaml").read_text())
    temporal = config["temporal"]  # one learnt model and the baseline; no figures not shown
    temporal["models"] = [m for m in temporal["models"] if m["algorithm"] != "logistic_regression"]
    temporal.update({"bootstrap": 0, "importances": False})
    temporal["stability"]["consecutive"] = {"days": 0, "weeks": 0, "months": 0}
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run_project(folder)
    engine = open_store(None, folder)
    model = _lightgbm(engine)
    deploy(engine, model.model_group_id, reason="tests", by="pytest", model_id=model.id)
    score_lists(load_project(folder), folder, engine, by="pytest", through=SECOND)
    engine.dispose()
    _DEVELOPED["eis"] = folder
    return folder


def eis_lists(factory: pytest.TempPathFactory) -> EisLists:
    """A copy of the scored project (:func:`_developed`) with monitor alerts and a token per
    role."""
    folder = factory.mktemp("eis-lists-copy") / "project"
    shutil.copytree(_developed(factory), folder)
    engine = open_store(None, folder)
    model = _lightgbm(engine)
    with engine.connect() as conn:
        other = conn.execute(select(t.model_groups.c.id).where(
            t.model_groups.c.id != model.model_group_id)).scalars().first()
    add_alerts(engine, model.model_group_id, other)
    tokens = {role: create_token(engine, role, f"{role} user", "pytest")[1] for role in ROLES}
    return EisLists(folder, engine, model.id, model.model_group_id, tokens)
