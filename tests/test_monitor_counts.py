"""The monitor's figures from database aggregates of the typed production inputs equal the
figures computed the old way, row by row in Python from the JSON text, on the same store; the
side table the trigger fills equals the one migration 0014 builds from the JSON rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select
from sqlalchemy.engine import Engine

from rudikit.monitoring import monitor
from rudikit.monitoring.drift import ReferenceProfile
from rudikit.monitoring.production import parse_times, read_predictions
from rudikit.monitoring.reference import datetime_parts
from rudikit.monitoring.replay import month_rows
from rudikit.store.engine import MIGRATIONS
from rudikit.store.monitoring_tables import monitor_metrics
from rudikit.store.production_inputs import (
    production_input_tables,
    recorded_spec,
    side_table,
    table_name,
)
from rudikit.store.production_tables import production_predictions as pp
from tests import test_monitoring
from tests.test_monitoring import Live

AS_OF = datetime(2020, 3, 1, tzinfo=UTC)
_count = monitor._count_window  # the new way, kept before a test patches the module
# the trained, deployed project of the monitoring tests (module-scoped: trained once here)
template, developed, live = (test_monitoring.template, test_monitoring.developed,
                             test_monitoring.live)


def _rows_window(engine: Engine, project: Any, dep: Any, profile: ReferenceProfile,
                 start: datetime, end: datetime, keep: list[str],
                 tick: Callable[[int], None] | None) -> Any:
    """The oracle: the window as the monitor read it before, every row's JSON parsed in Python
    and counted chunk by chunk."""
    window = monitor._Window({name: np.zeros(len(b.labels), dtype=np.int64)
                              for name, b in profile.buckets_.items()}, [], [])
    for chunk in read_predictions(engine, [dep.model_id], time_field=project.data.knowledge_date,
                                  start=start, end=end):
        window.n += chunk.num_rows
        columns = {name: chunk.column(name) for name in chunk.column_names}
        stamp = dep.features.datetime.column
        times = parse_times(columns[stamp]).to_pandas()
        for part, series in datetime_parts(times, list(dep.features.datetime.parts)).items():
            columns[f"{stamp}.{part}"] = series
        for name, counts in profile.count(columns).items():
            window.counts[name] += counts
        window.scores.append(chunk.column("score").to_numpy())
        location = dep.features.location
        if location is not None and location.h3_resolution is not None:  # the map: a row each
            window.points.append(chunk.select([*location.columns, "outcome"]).to_pandas()
                                 .assign(n=1))
        labelled = chunk.filter(pc.is_valid(chunk.column("outcome")))
        cols = ["score", "outcome", "event_time"] + [c for c in keep
                                                     if c in labelled.column_names]
        window.labelled.append(labelled.select(cols).to_pandas())
    return window


def _figures(live: Live) -> dict[tuple[str, str, str, str], tuple[float | None, int | None]]:
    result = live.monitor(AS_OF)
    with live.engine.connect() as conn:
        rows = conn.execute(select(monitor_metrics).where(
            monitor_metrics.c.monitor_run_id == result.monitor_run_id)).mappings().all()
    assert result.n_predictions > 0 and result.n_outcomes > 0
    return {(r["section"], r["subject"], r["segment"], r["metric"]): (r["value"], r["n"])
            for r in rows}


def _post(live: Live) -> None:
    """February 2020 (the window, outcomes for most) and June 2019 (history)."""
    _, feb, y_feb = month_rows(live.project, live.frame, "2020-02")
    _, june, y_june = month_rows(live.project, live.frame, "2019-06")
    live.post(feb[:500], y_feb[:500])
    with live.client() as client:  # cases without an outcome yet
        from rudikit.monitoring.replay import replay
        replay(client, live.project, feb[500:700], y_feb[500:700],
               live.project.features.input_columns, "production", outcomes=False)
    live.post(june[:200], y_june[:200])


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_aggregates_give_the_figures_the_rows_gave(live: Live,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stored figure of a pass (drift shares and PSI, the score's KS test, realised
    performance overall and per segment, precision@k per week) to 1e-9, and the fairness
    counts (cases per protected group, decision and outcome) exactly."""
    _post(live)
    new = _figures(live)
    monkeypatch.setattr(monitor, "_count_window", _rows_window)
    old = _figures(live)
    assert new.keys() == old.keys()
    sections = {key[0] for key in new}
    assert {"drift", "drift_bucket", "performance", "precision_at_k", "location"} <= sections
    assert any(k[0] == "performance" and k[1] == "force" for k in new)  # per segment
    for key, (value, n) in old.items():
        got, got_n = new[key]
        assert got_n == n, key
        if value is None or got is None:
            assert value is got, key
        else:
            assert got == pytest.approx(value, abs=1e-9, nan_ok=True), key
    # fairness counts: the labelled cases per protected group, decision and outcome
    dep = monitor.deployed(live.engine)
    ref = monitor.reference(live.engine, live.project, lambda: live.frame, dep)
    keep = list(dict.fromkeys(live.project.monitoring.segments
                              + live.project.features.protected))
    start = AS_OF - pd.Timedelta(days=live.project.monitoring.window_days)
    windows = [read(live.engine, live.project, dep, ref.profile, start, AS_OF, keep, None)
               for read in (_count, _rows_window)]
    counts = []
    for w in windows:
        frame = pd.concat(w.labelled, ignore_index=True)
        frame["decision"] = frame["score"] >= dep.threshold
        counts.append(frame.groupby(live.project.features.protected + ["decision", "outcome"],
                                    dropna=False).size().sort_index())
    assert counts[0].sum() > 0
    pd.testing.assert_series_equal(counts[0], counts[1], check_dtype=False,
                                   check_index_type=False)


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_migration_0014_builds_the_tables_the_trigger_fills(live: Live) -> None:
    """The side table the trigger filled as the service wrote, against the one the migration
    builds from the JSON rows of a store that had none (downgraded to 0012)."""
    _post(live)
    model_id = live.deployment.model_id
    with live.engine.connect() as conn:
        spec = recorded_spec(conn, model_id)
        assert spec is not None and spec.time_field == "datetime"
        table = side_table(model_id, spec)
        filled = pd.DataFrame(conn.execute(select(table).order_by(table.c.prediction_id)).all())
        stored = conn.execute(select(pp.c.id).where(pp.c.model_id == model_id)).scalars().all()
    assert sorted(stored) == filled["prediction_id"].tolist() and len(filled) == 900
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    for target in ("0012", "head"):
        with live.engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if target == "0012" else command.upgrade)(config, target)
            if target == "0012":
                assert not live.engine.dialect.has_table(conn, table_name(model_id))
    with live.engine.connect() as conn:
        assert conn.execute(select(production_input_tables.c.model_id)).scalars().all() == [
            model_id]
        rebuilt = pd.DataFrame(conn.execute(select(table).order_by(table.c.prediction_id)).all())
    pd.testing.assert_frame_equal(rebuilt, filled)
    assert filled["in.gender"].notna().any() and filled["in.latitude"].notna().any()
