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
from sklearn.metrics import roc_curve
from sqlalchemy import select
from sqlalchemy.engine import Engine

from rudikit.config import OperatingPoint
from rudikit.config.fairness import FairnessRequirement
from rudikit.evaluation.metrics import precision_at_k
from rudikit.fairness.stage import assess
from rudikit.monitoring import monitor
from rudikit.monitoring.drift import ReferenceProfile
from rudikit.monitoring.performance import Realised, period_key, realised
from rudikit.monitoring.production import parse_times, read_predictions
from rudikit.monitoring.reference import datetime_parts
from rudikit.monitoring.replay import month_rows
from rudikit.monitoring.window_outcomes import Outcomes
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


# --- The oracle: the figures of the labelled cases computed from their rows, as the monitor
# computed them before the database did (scikit-learn, rudikit's metrics, the fairness stage)


def roc_points(y: np.ndarray, score: np.ndarray, max_points: int = 200) -> dict[str, list[float]]:
    """The ROC curve, thinned to at most ``max_points`` points (for storage and plotting)."""
    if len(np.unique(y)) < 2:
        return {"fpr": [], "tpr": [], "threshold": []}
    fpr, tpr, thr = roc_curve(y, score, drop_intermediate=True)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    thr = np.where(np.isfinite(thr), thr, 1.0)
    return {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist(),
            "threshold": thr.round(5).tolist()}


def by_segment(frame: pd.DataFrame, column: str, threshold: float) -> dict[str, Realised]:
    """:func:`realised` per value of ``column`` (missing values form their own segment)."""
    keys = frame[column].astype("string").fillna("(missing)")
    return {str(value): realised(rows["outcome"].to_numpy(), rows["score"].to_numpy(),
                                 threshold)
            for value, rows in frame.groupby(keys, sort=True)}


def precision_at_k_over_time(frame: pd.DataFrame, period: str, k: int) -> pd.DataFrame:
    """Per period: cases with outcomes, precision of the ``k`` highest scores (ties at their
    expected value) and the base rate."""
    rows = []
    for key, part in frame.groupby(period_key(frame["event_time"], period), sort=True):
        size = min(k, len(part))
        rows.append({"period": str(key), "n": len(part), "k": size,
                     "precision_at_k": precision_at_k(part["outcome"].to_numpy(),
                                                      part["score"].to_numpy(), size),
                     "base_rate": float(part["outcome"].mean())})
    return pd.DataFrame(rows, columns=["period", "n", "k", "precision_at_k", "base_rate"])


def outcomes_of_rows(project: Any, threshold: float, labelled: pd.DataFrame
                     ) -> Outcomes:
    """The labelled cases' figures from their rows (``score``, ``outcome``, ``event_time``
    and the inputs), as the monitor computed them before."""
    if labelled.empty:
        return Outcomes()
    mon, fairness = project.monitoring, project.fairness
    y, score = labelled["outcome"].to_numpy(dtype=int), labelled["score"].to_numpy()
    out = Outcomes(len(labelled), realised(y, score, threshold), roc_points(y, score))
    out.segments = {c: by_segment(labelled, c, threshold) for c in mon.segments
                    if c in labelled}
    out.over_time = precision_at_k_over_time(labelled, mon.performance_period,
                                             mon.stability.k)
    if fairness.requirements and all(c in labelled for c in fairness.columns):
        out.fairness = assess(fairness, labelled[fairness.columns], y, score,
                              OperatingPoint(threshold=threshold)).requirements
    return out


def assert_same_outcomes(got: Outcomes, want: Outcomes) -> None:
    """Every figure of ``got`` equals ``want``'s to 1e-9 (the ROC curve's 5-decimal points
    and the requirements' verdicts exactly)."""
    assert got.n == want.n

    def same(a: Realised | None, b: Realised | None, what: str) -> None:
        assert (a is None) == (b is None), what
        if a is not None and b is not None:
            for (name, x), y in zip(a.as_dict().items(), b.as_dict().values(), strict=True):
                assert x == pytest.approx(y, abs=1e-9, nan_ok=True), (what, name)

    same(got.realised, want.realised, "all")
    assert got.roc == want.roc
    assert {c: list(v) for c, v in got.segments.items()} == \
        {c: list(v) for c, v in want.segments.items()}
    for column, values in want.segments.items():
        for value, figures in values.items():
            same(got.segments[column][value], figures, f"{column}={value}")
    if want.over_time is None:
        assert got.over_time is None
    else:
        pd.testing.assert_frame_equal(got.over_time, want.over_time, check_exact=False,
                                      atol=1e-9, rtol=0)
    assert (got.fairness is None) == (want.fairness is None)
    for a, b in zip(got.fairness or [], want.fairness or [], strict=True):
        assert a.status == b.status and a.summary == b.summary, a.requirement.name
        pd.testing.assert_frame_equal(a.to_frame(), b.to_frame(), check_exact=False,
                                      atol=1e-9, rtol=0)


def _rows_window(engine: Engine, project: Any, dep: Any, profile: ReferenceProfile,
                 start: datetime, end: datetime, keep: list[str],
                 tick: Callable[[int], None] | None) -> Any:
    """The oracle: the window as the monitor read it before, every row's JSON parsed in Python
    and counted chunk by chunk."""
    window = monitor._Window({name: np.zeros(len(b.labels), dtype=np.int64)
                              for name, b in profile.buckets_.items()}, [])
    labelled_parts = []
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
        labelled_parts.append(labelled.select(cols).to_pandas())
    labelled = pd.concat(labelled_parts, ignore_index=True)
    labelled = labelled.drop(columns=[c for c in keep if c in labelled
                                      and labelled[c].isna().all()])
    window.outcomes = outcomes_of_rows(project, dep.threshold, labelled)
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
    performance overall and per segment, the ROC curve, precision@k per week, the fairness
    requirements) to 1e-9, and every unit of the fairness requirements."""
    _post(live)
    requirements = [  # one needs the cases' scores (the ROC AUC)
        FairnessRequirement(name="precision by gender per force", metric="precision",
                            unit="force", compare=["gender"], max_gap_pp=0.001, min_size=5),
        FairnessRequirement(name="recall across forces", metric="recall", unit="force",
                            max_gap_pp=0.001, min_size=5),
        FairnessRequirement(name="auc across forces", metric="roc_auc", unit="force",
                            max_gap_pp=0.001, min_size=5)]
    fairness = live.project.fairness.model_copy(update={"requirements": requirements})
    live.project = live.project.model_copy(update={"fairness": fairness})
    new = _figures(live)
    monkeypatch.setattr(monitor, "_count_window", _rows_window)
    old = _figures(live)
    assert new.keys() == old.keys()
    sections = {key[0] for key in new}
    assert {"drift", "drift_bucket", "performance", "precision_at_k", "location"} <= sections
    assert any(k[0] == "performance" and k[1] == "force" for k in new)  # per segment
    assert sum(k[0] == "fairness" for k in new) == 3
    for key, (value, n) in old.items():
        got, got_n = new[key]
        assert got_n == n, key
        if value is None or got is None:
            assert value is got, key
        else:
            assert got == pytest.approx(value, abs=1e-9, nan_ok=True), key
    # every figure of the labelled cases, the fairness requirements' units too
    dep = monitor.deployed(live.engine)
    ref = monitor.reference(live.engine, live.project, lambda: live.frame, dep)
    keep = list(dict.fromkeys(live.project.monitoring.segments
                              + live.project.fairness.columns))
    start = AS_OF - pd.Timedelta(days=live.project.monitoring.window_days)
    got, want = (read(live.engine, live.project, dep, ref.profile, start, AS_OF, keep, None
                      ).outcomes for read in (_count, _rows_window))
    assert got.fairness and want.fairness
    assert_same_outcomes(got, want)


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
