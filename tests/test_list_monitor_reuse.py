"""A list monitor pass takes the figures of final lists from the pass before it
(:mod:`rudikit.monitoring.list_reuse`): the oracle is a pass that judges every list
(``full=True``) on the same store, whose stored figures and alerts must be the same.

The project is the one of tests/test_list_monitor.py (twelve monthly 2012 lists, a one-year
label window), with complaints given to other officers so that precision alerts fire."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rudikit.config import TemporalProject
from rudikit.data.event_tables import load_event_tables
from rudikit.store import list_tables
from rudikit.store.engine import open_store
from rudikit.store.queries import monitoring as monitoring_q
from tests import test_list_monitor
from tests.test_list_monitor import (
    develop,
    developed_on_postgres,
    hand_labels,
    listed,
    monitor,
    shuffled,
)

project = test_list_monitor.project  # a copy of this module's developed store, for one test


@pytest.fixture(scope="module")
def developed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eis-reuse")
    develop(folder).dispose()
    return folder


def stored(engine: Any, run_id: int) -> tuple[pd.DataFrame, list[tuple[Any, ...]]]:
    """A pass's figures (keyed, in order) and its alerts."""
    figures = monitoring_q.figures(engine, run_id).drop(columns=["id", "monitor_run_id"])
    alerts = [(a["kind"], a["subject"], a["metric"], a["value"], a["bound"], a["severity"],
               a["window"], a["message"]) for a in monitoring_q.alerts_of(engine, run_id)]
    return figures.reset_index(drop=True), alerts


def assert_same_pass(engine: Any, incremental: Any, full: Any | tuple[Any, Any]) -> None:
    """Every stored figure of the two passes equal (values to 1e-9), their alerts and their
    list rows too. ``full``: the oracle's result, or (its store's engine, its result)."""
    other, full = full if isinstance(full, tuple) else (engine, full)
    mine, mine_alerts = stored(engine, incremental.monitor_run_id)
    oracle, oracle_alerts = stored(other, full.monitor_run_id)
    keys = ["section", "subject", "segment", "metric"]
    assert mine[keys].equals(oracle[keys])
    both = np.array([v is None or v != v for v in mine["value"]])
    assert (both == np.array([v is None or v != v for v in oracle["value"]])).all()
    assert mine["value"][~both].to_numpy(dtype=float) == pytest.approx(
        oracle["value"][~both].to_numpy(dtype=float), rel=0, abs=1e-9)
    assert mine["n"].fillna(-1).tolist() == oracle["n"].fillna(-1).tolist()
    assert mine["details"].tolist() == oracle["details"].tolist()
    assert len(mine_alerts) == len(oracle_alerts)
    for a, b in zip(mine_alerts, oracle_alerts, strict=True):
        assert a[:3] == b[:3] and a[5:] == b[5:]
        assert a[3:5] == pytest.approx(b[3:5], rel=0, abs=1e-9)
    pd.testing.assert_frame_equal(incremental.lists, full.lists, check_exact=False, atol=1e-9)
    assert (incremental.n_predictions, incremental.n_outcomes, incremental.agreement_rate) == (
        full.n_predictions, full.n_outcomes, full.agreement_rate)
    columns = ["previous_date", "as_of_date", "jaccard", "spearman", "common_entities", "pair"]
    pd.testing.assert_frame_equal(incremental.stability[columns], full.stability[columns],
                                  check_dtype=False)


def test_a_later_pass_reuses_final_lists_and_stores_what_a_full_pass_stores(project) -> None:
    config, folder, engine = project
    tables = shuffled(load_event_tables(config, folder)[0])
    on_list = listed(engine, config.name)
    for day, answers in ((pd.Timestamp("2012-02-01"), ["agree", "disagree", "training"]),
                         (pd.Timestamp("2012-09-01"), ["agree", "agree", "unsure"])):
        for entity, answer in zip(on_list[day], answers, strict=False):
            outcome = answer if answer == "training" else "no_action"
            list_tables.record_review(engine, entity, day + pd.Timedelta(days=3),
                                      reviewer="sgt", outcome=outcome,
                                      agreement=None if answer == "training" else answer)
    first = monitor(config, folder, engine, "2013-07-15", tables, window_days=90)
    assert len(first.judged) == 12  # nothing stored before
    later = monitor(config, folder, engine, "2013-12-31", tables, window_days=90)
    # final in the first pass: matured by 2013-07-01 (the complaints' month then complete),
    # the lists of January to July 2012; the others are judged again
    assert later.judged == [f"2012-{m:02d}-01" for m in range(8, 13)]
    assert "7 of 12 lists are final and unchanged since the last pass" in " ".join(later.notes)
    oracle = monitor_full(config, folder, engine, "2013-12-31", tables, 90)
    assert len(oracle.judged) == 12
    assert oracle.alerts, "nothing to compare"
    assert_same_pass(engine, later, oracle)
    # the pass after: every list but those maturing in its window was stored final
    again = monitor(config, folder, engine, "2013-12-31", tables, window_days=90)
    assert again.judged == ["2012-11-01", "2012-12-01"]  # matured after 2013-10-02
    assert_same_pass(engine, again, oracle)


def monitor_full(config: TemporalProject, folder: Path, engine: Any, today: str,
                 tables: dict[str, pd.DataFrame], window_days: int = 30) -> Any:
    """The oracle: every list judged again."""
    from datetime import UTC, datetime

    from rudikit.monitoring.list_monitor import run_list_monitor

    _, loaded = load_event_tables(config, folder)
    return run_list_monitor(config, folder, engine, today=datetime.fromisoformat(today)
                            .replace(tzinfo=UTC), window_days=window_days, tables=tables,
                            loaded=loaded, full=True)


def test_a_late_event_or_review_in_a_matured_lists_window_has_it_judged_again(
        project, tmp_path: Path) -> None:
    config, folder, engine = project
    tables, _ = load_event_tables(config, folder)
    monitor(config, folder, engine, "2013-12-31", tables, window_days=30)
    same = monitor(config, folder, engine, "2013-12-31", tables, window_days=30)
    assert same.judged == []  # every list final, none maturing after 2013-12-01
    # a complaint dated 2012-08-20 reaches the store late, against an officer of the March
    # list who had none in its window: every list whose window holds August is judged again
    march = pd.Timestamp("2012-03-01")
    positives = hand_labels(tables, march, pd.Timestamp("2013-12-31"))
    clean = next(e for e in listed(engine, config.name)[march] if e not in positives)
    complaints = tables["complaints"]
    late = complaints.iloc[[0]].assign(cr_id="late", officer_uid=pd.array([int(clean)],
                                                                          dtype="Int64"),
                                       complaint_date=pd.Timestamp("2012-08-20"))
    moved = {**tables, "complaints": pd.concat([complaints, late], ignore_index=True)}
    oracle = full_pass_on_a_copy(config, folder, tmp_path / "late", moved)
    after = monitor(config, folder, engine, "2013-12-31", moved, window_days=30)
    assert after.judged == [f"2012-{m:02d}-01" for m in range(1, 9)]
    before = same.lists.set_index("date").loc["2012-03-01"]
    row = after.lists.set_index("date").loc["2012-03-01"]
    assert row["positives"] == before["positives"] + 1
    assert_same_pass(engine, after, oracle)
    # a review (an intervention) dated 2013-11-15 of an officer of the December list: only
    # that list's label window holds the day, so only it is judged again
    december = listed(engine, config.name)[pd.Timestamp("2012-12-01")]
    list_tables.record_review(engine, december[0], pd.Timestamp("2013-11-15"), reviewer="sgt",
                              outcome="training", agreement="agree")
    oracle = full_pass_on_a_copy(config, folder, tmp_path / "review", moved)
    reviewed = monitor(config, folder, engine, "2013-12-31", moved, window_days=30)
    assert reviewed.judged == ["2012-12-01"]
    row = reviewed.lists.set_index("date").loc["2012-12-01"]
    assert row["intervened"] == 1 and row["agreement_rate"] == 1.0
    assert_same_pass(engine, reviewed, oracle)


def full_pass_on_a_copy(config: TemporalProject, folder: Path, copy: Path,
                        tables: dict[str, pd.DataFrame]) -> tuple[Any, Any]:
    """The oracle on a copy of the store as it is now (its input checks compared with the
    same last pass as the incremental pass's): (its engine, its result)."""
    shutil.copytree(folder, copy)
    engine = open_store(None, copy)
    return engine, monitor_full(config, copy, engine, "2013-12-31", tables)


@pytest.mark.postgres
def test_reused_figures_on_postgresql_are_those_of_a_full_pass(tmp_path: Path) -> None:
    """The same on a PostgreSQL store (its own schema, dropped afterwards): dates come back
    time-zone aware and the details as JSON there."""
    with developed_on_postgres(tmp_path) as (config, folder, engine):
        tables = shuffled(load_event_tables(config, folder)[0])
        monitor(config, folder, engine, "2013-07-15", tables, window_days=90)
        later = monitor(config, folder, engine, "2013-12-31", tables, window_days=90)
        assert later.judged == [f"2012-{m:02d}-01" for m in range(8, 13)]
        assert_same_pass(engine, later,
                         monitor_full(config, folder, engine, "2013-12-31", tables, 90))


def test_a_roster_change_is_judged_again_only_by_the_lists_it_can_touch(
        project, tmp_path: Path) -> None:
    config, folder, engine = project
    tables, _ = load_event_tables(config, folder)
    monitor(config, folder, engine, "2013-12-31", tables, window_days=30)
    officers = tables["officers"].copy()
    # a resignation after every list changes no cohort of theirs: nothing judged again
    first = officers.index[0]
    officers.loc[first, "resignation_date"] = pd.Timestamp("2014-03-01")
    later = monitor(config, folder, engine, "2013-12-31", {**tables, "officers": officers},
                    window_days=30)
    assert later.judged == []
    # an officer appointed on 2012-06-15 is given another birth year: the lists after that
    # day are judged again (the cohort and the age bands read it), not those before
    officers.loc[first, "appointed_date"] = pd.Timestamp("2012-06-15")
    moved = {**tables, "officers": officers}
    monitor(config, folder, engine, "2013-12-31", moved, window_days=30)
    officers = officers.copy()
    officers.loc[first, "birth_year"] = officers.loc[first, "birth_year"] - 20
    changed = {**tables, "officers": officers}
    oracle = full_pass_on_a_copy(config, folder, tmp_path / "roster", changed)
    again = monitor(config, folder, engine, "2013-12-31", changed, window_days=30)
    assert again.judged == [f"2012-{m:02d}-01" for m in range(7, 13)]
    assert_same_pass(engine, again, oracle)
