"""Input checks of a temporal project's event tables: freshness as known on the as-of date, rows
per complete period, and the time-based checksums that report a rewritten past record with its
table and period. Each pass is stored the way `rudi monitor` stores one, so the next pass reads
the previous digests from the results store.

The fast tests use the synthetic event tables (as Parquet files, loaded as ``rudi run`` loads
them); the last one rewrites one 2012 use-of-force report in a copy of the real CPDB files."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.config import SourceExpectation, parse_project
from rudikit.data.cpdb.files import FILES
from rudikit.data.event_tables import load_event_tables
from rudikit.monitoring import inputs
from rudikit.monitoring.event_inputs import (
    EventInputError,
    check_event_tables,
    check_project_tables,
    period_start,
)
from rudikit.monitoring.monitor import MonitorResult, _store
from rudikit.store.engine import open_store
from rudikit.store.monitoring_tables import source_periods
from tests.conftest import squeezed
from tests.test_eis import project_config
from tests.test_temporal import synthetic_tables


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _stored(engine: Engine, as_of: datetime, checks: list[inputs.SourceCheck],
            alerts: list[Any]) -> int:
    """Store one pass as the monitor does (digests, alerts, one transaction)."""
    result = MonitorResult(0, "eis-test", as_of, (as_of, as_of), None)
    result.sources, result.alerts = checks, alerts
    _store(engine, result, [], datetime.now(UTC))
    return result.monitor_run_id


def _pass(engine: Engine, tables: dict[str, pd.DataFrame], as_of: str,
          **expect: SourceExpectation) -> tuple[list[inputs.SourceCheck], list[Any]]:
    when = _day(as_of)
    checks, alerts = check_event_tables(tables, engine, as_of=when, expectations=expect,
                                        source="events")
    _stored(engine, when, checks, alerts)
    return checks, alerts


@pytest.fixture
def engine(store: tuple[str, str | None]) -> Engine:
    url, schema = store
    return open_store(url, schema=schema)


def test_a_rewritten_past_record_in_the_parquet_tables_is_reported_with_table_and_period(
        tmp_path: Path, engine: Engine) -> None:
    data = tmp_path / "events"
    data.mkdir()
    for name, frame in synthetic_tables().items():
        frame.to_parquet(data / f"{name}.parquet")
    project = parse_project(project_config(data))
    as_of = _day("2013-06-01")
    first = check_project_tables(project, load_event_tables(project, tmp_path)[0], engine,
                                 as_of)
    run = _stored(engine, as_of, *first)
    assert [c.source for c in first[0]] == [
        "events.officers", "events.complaints", "events.use_of_force", "events.unit_history",
        "events.rank_history"]
    with engine.connect() as conn:
        stored = conn.execute(select(source_periods.c.source, source_periods.c.period)
                              .where(source_periods.c.monitor_run_id == run)).all()
    assert len(stored) == sum(len(c.periods) for c in first[0])
    # a second load of the unchanged files: the same checksums, no alert
    again = check_project_tables(project, load_event_tables(project, tmp_path)[0], engine,
                                 as_of)
    assert again[1] == [] and [c.periods for c in again[0]] == [c.periods for c in first[0]]
    _stored(engine, as_of, *again)
    # the department re-codes one use-of-force report of 2010
    uof = pd.read_parquet(data / "use_of_force.parquet")
    row = uof.index[uof["trr_date"].dt.year == 2010][7]
    uof.loc[row, "highest_force"] = "taser" if uof.loc[row, "highest_force"] == "holding" \
        else "holding"
    uof.to_parquet(data / "use_of_force.parquet")
    checks, alerts = check_project_tables(project, load_event_tables(project, tmp_path)[0],
                                          engine, as_of)
    month = f"{uof.loc[row, 'trr_date']:%Y-%m}"
    assert [(a.kind, a.subject, a.window, a.severity) for a in alerts] == [
        ("integrity", "events.use_of_force", month, "critical")]
    assert "events.use_of_force" in alerts[0].message and month in alerts[0].message
    changed = {d.period for c, b in zip(checks, first[0], strict=True) for d in c.periods
               if d not in b.periods}
    assert changed == {month}


def test_only_records_known_on_the_as_of_date_count(engine: Engine) -> None:
    tables = synthetic_tables()
    checks, alerts = _pass(engine, tables, "2012-06-15")
    uof = tables["use_of_force"]
    known = uof[uof["trr_date"] <= "2012-06-15"]
    check = next(c for c in checks if c.source == "events.use_of_force")
    assert check.newest == pd.Timestamp(known["trr_date"].max(), tz="UTC")
    assert check.age_days == pytest.approx(
        (pd.Timestamp("2012-06-15") - known["trr_date"].max()).total_seconds() / 86400)
    # June is still filling up: digests end with May, one per complete month, counted by hand
    complete = known[known["trr_date"] < "2012-06-01"]
    by_month = complete.groupby(complete["trr_date"].dt.strftime("%Y-%m")).size()
    assert [(d.period, d.row_count) for d in check.periods] == list(by_month.items())
    assert alerts == [], [a.message for a in alerts]
    # records that arrive later, dated after the as-of date or in its own month, change nothing
    late = pd.concat([uof, uof[uof["trr_date"] > "2012-06-02"].assign(trr_id="late")])
    _, again = _pass(engine, {**tables, "use_of_force": late}, "2012-06-15")
    assert again == []
    # a pass for an earlier date does not read the later months as lost
    _, earlier = _pass(engine, tables, "2011-03-01")
    assert [a for a in earlier if a.kind == "integrity"] == []


def test_a_stale_table_is_critical_and_names_the_table(engine: Engine) -> None:
    tables = synthetic_tables()
    uof = tables["use_of_force"]
    tables["use_of_force"] = uof[uof["trr_date"] < "2012-01-01"]
    newest = tables["use_of_force"]["trr_date"].max()
    _, alerts = _pass(engine, tables, "2012-06-01",
                      use_of_force=SourceExpectation(max_staleness_days=30),
                      complaints=SourceExpectation(max_staleness_days=30))
    stale = [a for a in alerts if a.kind == "freshness"]
    assert [(a.subject, a.severity, a.bound) for a in stale] == [
        ("events.use_of_force", "critical", 30.0)]
    assert stale[0].value == pytest.approx((pd.Timestamp("2012-06-01") - newest).days)


def test_rows_per_period_against_learned_and_given_bounds(engine: Engine) -> None:
    tables = synthetic_tables(n=600)
    cmp = tables["complaints"]
    month = cmp["complaint_date"].dt.strftime("%Y-%m")
    counts = cmp[cmp["complaint_date"] < "2012-05-01"].groupby(month).size()
    # the first pass judges only the newest complete month (April 2012): within bounds
    _, first = _pass(engine, tables, "2012-05-01")
    assert [a for a in first if a.kind == "row_count"] == []
    # May arrives with a tenth of its complaints: below the bound learned from the history
    thin = cmp[(month != "2012-05") | (np.arange(len(cmp)) % 10 == 0)]
    _, alerts = _pass(engine, {**tables, "complaints": thin}, "2012-06-01")
    low = np.percentile(counts.to_numpy(), 5) * 0.5  # the 5th percentile less half of it
    assert [(a.kind, a.subject, a.window, a.severity) for a in alerts] == [
        ("row_count", "events.complaints", "2012-05", "warning")]
    assert alerts[0].bound == pytest.approx(low)
    assert alerts[0].value == (thin["complaint_date"].dt.strftime("%Y-%m") == "2012-05").sum()
    # June has no complaint at all: an empty month is judged like any other, and fixed bounds
    # apply as given
    none = thin[thin["complaint_date"].dt.strftime("%Y-%m") != "2012-06"]
    _, alerts = _pass(engine, {**tables, "complaints": none}, "2012-08-01",
                      use_of_force=SourceExpectation(row_count_bounds=(0, 5)))
    found = {(a.subject, a.window, a.value) for a in alerts}
    assert ("events.complaints", "2012-06", 0.0) in found
    uof_july = (tables["use_of_force"]["trr_date"].dt.strftime("%Y-%m") == "2012-07").sum()
    assert ("events.use_of_force", "2012-07", float(uof_july)) in found and uof_july > 5


def test_empty_months_of_a_sparse_table_are_its_normal_history() -> None:
    # a roster hires in classes: most months are empty, and one more empty month is normal
    counts = {"2010-01": 40, "2010-04": 35, "2010-09": 50, "2011-02": 45, "2011-06": 38,
              "2011-11": 42, "2012-03": 41}
    digests = [inputs.PeriodDigest(p, n, "") for p, n in counts.items()]
    assert inputs.row_count_findings("roster", digests, None, {"2012-02", "2012-03"},
                                     empty_months_count=True) == []
    # without counting them, every empty month is a gap
    gaps = inputs.row_count_findings("roster", digests, None, set())
    assert len(gaps) == 27 - len(counts)
    # a steady table whose newest month is empty is flagged against its own history
    steady = {f"2011-{m:02d}": 100 + m for m in range(1, 13)} | {"2012-02": 90}
    found = inputs.row_count_findings(
        "cmp", [inputs.PeriodDigest(p, n, "") for p, n in steady.items()], None, {"2012-01"},
        empty_months_count=True)
    assert [(f.window, f.value) for f in found] == [("2012-01", 0.0)]
    assert found[0].bound == pytest.approx(np.percentile(list(steady.values())[:12], 5) * 0.5)


def test_period_start() -> None:
    when = _day("2016-03-17T15:00:00")
    assert period_start(when, "month") == pd.Timestamp("2016-03-01", tz="UTC")
    assert period_start(when, "week") == pd.Timestamp("2016-03-14", tz="UTC")  # a Monday
    assert period_start(when, "day") == pd.Timestamp("2016-03-17", tz="UTC")


def test_an_unknown_table_in_monitoring_sources_is_an_error_naming_it(tmp_path: Path,
                                                                     engine: Engine) -> None:
    data = tmp_path / "events"
    data.mkdir()
    for name, frame in synthetic_tables().items():
        frame.to_parquet(data / f"{name}.parquet")
    config = project_config(data)
    config["monitoring"] = {"sources": {"complaint": {"max_staleness_days": 30}}}
    problem = ("monitoring.sources.complaint: no event table of that name (tables: officers, "
               "complaints, use_of_force, unit_history, rank_history)")
    with pytest.raises(EventInputError) as caught:
        check_project_tables(parse_project(config), synthetic_tables(), engine,
                             _day("2012-01-01"))
    assert str(caught.value) == problem
    # `rudi validate` says so before anything runs
    (tmp_path / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert done.exit_code == 1 and squeezed(problem) in squeezed(done.output)
    tables = synthetic_tables()
    tables["use_of_force"] = tables["use_of_force"].drop(columns="trr_date")
    with pytest.raises(EventInputError, match="'use_of_force': no date column 'trr_date'"):
        check_event_tables(tables, engine, as_of=_day("2012-01-01"), expectations={},
                           source="events")
    with pytest.raises(EventInputError, match="'badges' is no event table"):
        check_event_tables({"badges": tables["officers"]}, engine, as_of=_day("2012-01-01"),
                           expectations={}, source="events")


# --- the real CPDB files ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_rewritten_2012_use_of_force_report_in_the_real_files_is_reported(
        shared_data: Any, tmp_path: Path) -> None:
    """One officer's injury re-coded on one 2012 report, in a copy of the CPDB files, read the
    way `rudi monitor` reads them (linked, then cached per project): a cached reload of the
    unchanged files has the same checksums, and a fresh load of the rewritten copy differs in
    that report's month of ``use_of_force`` alone, which is the one alert."""
    folder = shared_data / "eis/chicago_cpdb"
    copy = tmp_path / "chicago_cpdb"
    shutil.copytree(folder, copy)
    config = project_config(copy)
    config["data"]["sources"][0] = {"name": "cpdb", "kind": "chicago_cpdb", "path": str(copy)}
    project = parse_project(config)
    engine = open_store(f"sqlite:///{tmp_path / 'rudi.db'}")
    as_of = _day("2016-03-01")
    tables = load_event_tables(project, tmp_path)[0]  # read and linked, then cached
    first = check_project_tables(project, tables, engine, as_of)
    _stored(engine, as_of, *first)
    assert first[1] == [], [a.message for a in first[1]]  # a quiet first pass on real data
    cached = check_project_tables(project, load_event_tables(project, tmp_path)[0], engine,
                                  as_of)
    assert [c.periods for c in cached[0]] == [c.periods for c in first[0]]
    assert cached[1] == [], [a.message for a in cached[1]]
    _stored(engine, as_of, *cached)
    # a 2012 report filed by one officer, linked to the roster, with the injury recorded
    uof = tables["use_of_force"]
    officers = pd.read_csv(folder / FILES["trr_officers"], dtype=str, na_filter=False)
    single = officers["trr_id"].value_counts().loc[lambda n: n == 1].index
    candidates = uof[(uof["trr_date"].dt.year == 2012) & uof["trr_id"].isin(single)
                     & uof["officer_injured"].notna()]
    report = candidates.iloc[len(candidates) // 2]
    main = pd.read_csv(folder / FILES["trr_main"], dtype=str, usecols=["trr_id", "trr_date"])
    month = main.loc[main["trr_id"] == report["trr_id"], "trr_date"].iloc[0][:7]  # the oracle
    target = copy / FILES["trr_officers"]
    target.chmod(0o644)
    at = officers.index[officers["trr_id"] == report["trr_id"]][0]
    officers.loc[at, "injured"] = "No" if officers.loc[at, "injured"].upper() == "YES" else "Yes"
    with gzip.open(target, "wt", encoding="utf-8", newline="") as handle:
        officers.to_csv(handle, index=False)
    rewritten = load_event_tables(project, tmp_path)[0]  # a new key: read and linked again
    after = rewritten["use_of_force"].set_index("trr_id").loc[report["trr_id"]]
    assert bool(after["officer_injured"]) is not bool(report["officer_injured"])
    assert int(after["officer_uid"]) == int(report["officer_uid"])
    checks, alerts = check_project_tables(project, rewritten, engine, as_of)
    assert [(a.kind, a.subject, a.window) for a in alerts] == [
        ("integrity", "cpdb.use_of_force", month)], [a.message for a in alerts]
    assert month.startswith("2012-") and "cpdb.use_of_force" in alerts[0].message
