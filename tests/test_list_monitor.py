"""`rudi monitor` on a temporal project: the production lists `rudi score` stored, judged as
their outcomes arrive.

One small synthetic EIS project (the events of tests/test_temporal.py) is developed, its chosen
model group deployed and twelve monthly lists scored (2012-01-01 to 2012-12-01, top 20 of
about 240 officers); each test works on its own copy of the project folder and store. The
clock is injected (``today``/``--as-of``): nothing depends on the wall clock."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import own_postgres_schema
from sqlalchemy import select
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.config import StabilityBounds, TemporalProject, load_project
from rudikit.data.event_tables import load_event_tables
from rudikit.monitoring.churn import churn_alerts
from rudikit.monitoring.list_monitor import ListMonitorResult, run_list_monitor
from rudikit.monitoring.scheduled_lists import score_lists
from rudikit.run.develop import run_project
from rudikit.service.deploy import deploy
from rudikit.store import list_tables
from rudikit.store.engine import open_store
from rudikit.store.monitoring_tables import alerts as alerts_table
from rudikit.store.monitoring_tables import monitor_metrics
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import lists as lists_q
from rudikit.store.queries import runs as runs_q
from tests.conftest import squeezed
from tests.test_eis import K, project_config
from tests.test_temporal import synthetic_tables

LISTS = pd.date_range("2012-01-01", "2012-12-01", freq="MS")


def _utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def developed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project after `rudi run`, `rudi deploy` and `rudi score --through 2012-12-01`."""
    folder = tmp_path_factory.mktemp("eis-monitor")
    develop(folder).dispose()
    return folder


@contextmanager
def developed_on_postgres(tmp_path: Path) -> Iterator[tuple[TemporalProject, Path, Any]]:
    """:func:`develop` on a PostgreSQL store of the test's own schema (dropped afterwards):
    (the project, its folder, the store's engine)."""
    with own_postgres_schema() as (url, schema):
        folder = tmp_path / "eis"
        folder.mkdir()
        engine = develop(folder, url, schema)
        try:
            config = load_project(folder)
            assert isinstance(config, TemporalProject)
            yield config, folder, engine
        finally:
            engine.dispose()


def develop(folder: Path, url: str | None = None, schema: str | None = None) -> Any:
    """Write the project, run it, deploy its chosen group, score the twelve monthly lists;
    returns the store's engine."""
    data = folder / "events"
    data.mkdir()
    for name, frame in synthetic_tables().items():
        frame.to_parquet(data / f"{name}.parquet")
    config = project_config(data)
    config["temporal"]["models"] = config["temporal"]["models"][1:2]  # lightgbm only
    config["temporal"]["stability"].update({"n_estimators": [5], "resamples": 0,
                                            "drop_sources": []})  # not what is tested here
    config["production"] = {"frequency": "monthly", "reasons": 0}
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_project(folder, url=url, schema=schema)
    engine = open_store(url, folder, schema=schema)
    assert result.selected is not None
    deploy(engine, result.selected.model_group_id, reason="list monitor test", by="test",
           project_dir=folder)
    scored = score_lists(load_project(folder), folder, engine, by="test",  # type: ignore[arg-type]
                         through=LISTS[-1].to_pydatetime())
    assert [s.as_of for s in scored.lists] == list(LISTS)
    return engine


@pytest.fixture
def project(developed: Path, tmp_path: Path) -> Iterator[tuple[TemporalProject, Path, Any]]:
    """A copy of the developed project (its store included) for one test to change."""
    folder = tmp_path / "eis"
    shutil.copytree(developed, folder)
    engine = open_store(None, folder)
    loaded = load_project(folder)
    assert isinstance(loaded, TemporalProject)
    yield loaded, folder, engine
    engine.dispose()


def shuffled(tables: dict[str, pd.DataFrame], seed: int = 0) -> dict[str, pd.DataFrame]:
    """The event tables with every officer's complaints given to another officer (a random
    one-to-one relabelling), so realised labels no longer depend on what the model saw."""
    uids = tables["officers"]["officer_uid"].to_numpy()
    moved = dict(zip(uids, np.random.default_rng(seed).permutation(uids), strict=True))
    complaints = tables["complaints"].copy()
    complaints["officer_uid"] = complaints["officer_uid"].map(moved).astype("Int64")
    return {**tables, "complaints": complaints}


def hand_labels(tables: dict[str, pd.DataFrame], day: pd.Timestamp, until: pd.Timestamp
                ) -> set[str]:
    """Officers with a complaint dated in [day, min(day + 1 year, until + 1 day)), by hand."""
    end = min(day + pd.DateOffset(years=1), until + pd.Timedelta(days=1))
    c = tables["complaints"]
    when = pd.to_datetime(c["complaint_date"])
    return set(c.loc[(when >= day) & (when < end), "officer_uid"].astype(str))


def listed(engine: Any, project: str) -> dict[pd.Timestamp, list[str]]:
    headers = lists_q.production_list_headers(engine, project)
    entries = lists_q.production_list_entries(engine, headers["id"].tolist(), listed_only=True)
    dates = dict(zip(headers["id"], pd.to_datetime(headers["as_of_date"]), strict=True))
    out = {}
    for list_id, rows in entries.groupby("list_id"):
        rows = rows[rows["rank"] <= K]
        out[pd.Timestamp(dates[list_id]).tz_localize(None)] = list(rows["entity_id"].astype(str))
    return out


def monitor(project: TemporalProject, folder: Path, engine: Any, today: str,
            tables: dict[str, pd.DataFrame] | None = None, window_days: int = 400
            ) -> ListMonitorResult:
    loaded = None
    if tables is not None:
        _, loaded = load_event_tables(project, folder)
    return run_list_monitor(project, folder, engine, today=_utc(today), window_days=window_days,
                            tables=tables, loaded=loaded)


# --- Realised precision ----------------------------------------------------------------------


def test_precision_alert_fires_on_shuffled_labels_and_not_on_the_real_ones(project) -> None:
    config, folder, engine = project
    tables, _ = load_event_tables(config, folder)
    real = monitor(config, folder, engine, "2013-12-31", tables)
    assert real.lists["matured"].all() and len(real.lists) == len(LISTS)
    assert not [a for a in real.alerts if a.kind == "performance"]
    # the list of the model's own test date is its development prediction: realised precision
    # equals the evaluation `rudi run` stored for that date
    dep = real.deployment
    stored = evaluations_q.top_k_precision(engine, [dep.model_id], K)
    first = real.lists.set_index("date").loc["2012-01-01", "precision"]
    assert first == pytest.approx(float(stored["value"].iloc[0]), abs=1e-12)
    promise = real.promises[dep.model_group_id]
    models = runs_q.models_of_group(engine, dep.model_group_id)
    values = evaluations_q.top_k_precision(engine, models["id"].tolist(), K)["value"]
    assert promise.low == pytest.approx(values.min()) and promise.mean == pytest.approx(
        values.mean())

    fake = monitor(config, folder, engine, "2013-12-31", shuffled(tables))
    drops = [a for a in fake.alerts if a.kind == "performance"]
    assert drops and all(a.severity == "critical" and a.bound == pytest.approx(promise.low)
                         for a in drops)
    assert fake.lists["precision"].mean() < real.lists["precision"].mean() - 0.2
    # each alert is the list whose one-sided binomial test failed (scipy as the oracle)
    from scipy.stats import binomtest

    for row in fake.lists.itertuples():
        p = binomtest(int(row.model_positives), int(row.model_labelled), promise.low,
                      alternative="less").pvalue
        assert (row.date in {a.window for a in drops}) == (p < config.monitoring.precision_alpha)


def test_open_windows_give_the_share_seen_and_the_partial_precision(project) -> None:
    config, folder, engine = project
    tables, _ = load_event_tables(config, folder)
    today = pd.Timestamp("2013-06-15")
    result = monitor(config, folder, engine, f"{today:%Y-%m-%d}")
    on_list = listed(engine, config.name)
    for row in result.lists.itertuples():
        day = row.as_of_date
        matures = day + pd.DateOffset(years=1)
        assert row.matured == (matures <= today + pd.Timedelta(days=1))
        share = min(1.0, (today + pd.Timedelta(days=1) - day).days / (matures - day).days)
        assert row.matured_share == pytest.approx(share)
        positives = hand_labels(tables, day, today)
        assert row.precision == pytest.approx(
            np.mean([e in positives for e in on_list[day]]))
    assert not result.lists.loc[result.lists["date"] >= "2012-07-01", "matured"].any()
    stored = _metrics(engine, result.monitor_run_id, "list_precision")
    shares = stored[stored["metric"] == "matured_share"].set_index("segment")["value"]
    assert shares.to_dict() == pytest.approx(
        dict(zip(result.lists["date"], result.lists["matured_share"], strict=True)))


def test_precision_without_intervened_officers_matches_a_hand_count(project) -> None:
    config, folder, engine = project
    tables, _ = load_event_tables(config, folder)
    day = pd.Timestamp("2012-06-01")
    officers = listed(engine, config.name)[day]
    positives = hand_labels(tables, day, pd.Timestamp("2013-12-31"))
    hit = [e for e in officers if e in positives]
    miss = [e for e in officers if e not in positives]
    assert len(hit) >= 4 and len(miss) >= 1
    reviews = [  # (officer, review date, decision): counted apart when in [day, day + 1 year)
        (hit[0], day, "training"), (hit[1], day, "counselling"),
        (miss[0], day + pd.Timedelta(days=90), "supervisor_meeting"),
        (hit[2], day, "no_action"),  # reviewed, no intervention: stays in
        (hit[3], day + pd.DateOffset(years=1), "training"),  # after the window: stays in
    ]
    for entity, when, decision in reviews:
        list_tables.record_review(engine, entity, when, reviewer="sgt", outcome=decision,
                                  agreement="agree")
    result = monitor(config, folder, engine, "2013-12-31")
    row = result.lists.set_index("date").loc["2012-06-01"]
    assert row["intervened"] == 3
    assert row["precision"] == pytest.approx(len(hit) / len(officers))
    assert row["precision_untreated"] == pytest.approx((len(hit) - 2) / (len(officers) - 3))
    # nobody was in a cool-off when these lists were scored: the model's top k is the list
    assert row["model_precision_untreated"] == row["precision_untreated"]
    # the list before: the same reviews fall in its window too, for those it listed
    earlier = listed(engine, config.name)[pd.Timestamp("2012-05-01")]
    other = result.lists.set_index("date").loc["2012-05-01"]
    assert other["intervened"] == len({hit[0], hit[1], miss[0]} & set(earlier))


def test_the_alert_tests_the_models_top_k_while_the_cool_off_list_is_reported(project) -> None:
    config, folder, engine = project
    tables, _ = load_event_tables(config, folder)
    december = listed(engine, config.name)[LISTS[-1]]
    for entity in december[:3]:  # supported after the December list: in their cool-off next
        list_tables.record_review(engine, entity, LISTS[-1], reviewer="sgt",
                                  outcome="training", agreement="agree")
    january = pd.Timestamp("2013-01-01")
    score_lists(config, folder, engine, by="test", as_of=january.to_pydatetime())
    result = monitor(config, folder, engine, "2013-12-31")
    row = result.lists.set_index("date").loc["2013-01-01"]
    headers = lists_q.production_list_headers(engine, config.name)
    everyone = lists_q.production_list_entries(engine, [int(headers["id"].iloc[-1])])
    everyone["entity_id"] = everyone["entity_id"].astype(str)
    top = everyone[everyone["rank_all"] <= K]
    seen = everyone[everyone["rank"].notna() & (everyone["rank"] <= K)]
    assert set(december[:3]) <= set(top["entity_id"]) - set(seen["entity_id"])
    # the label window is still open: outcomes up to the newest complaint, counted by hand
    positives = hand_labels(tables, january, pd.Timestamp("2013-12-30"))
    assert not row["matured"]
    assert row["model_precision"] == pytest.approx(top["entity_id"].isin(positives).mean())
    assert row["precision"] == pytest.approx(seen["entity_id"].isin(positives).mean())
    assert row["model_intervened"] == 3 and row["intervened"] == 0
    kept = top[~top["entity_id"].isin(december[:3])]
    assert row["model_precision_untreated"] == pytest.approx(
        kept["entity_id"].isin(positives).mean())


# --- List stability --------------------------------------------------------------------------


def test_churn_bounds_are_learnt_from_history_on_both_sides() -> None:
    cfg = StabilityBounds(k=20, min_history=8, quantiles=(5.0, 95.0), tolerance=0.05)
    history = [0.70, 0.72, 0.68, 0.74, 0.71, 0.69, 0.73, 0.70, 0.72, 0.71]
    low = float(np.percentile(history, 5)) - 0.05
    high = float(np.percentile(history, 95)) + 0.05

    def judge(value: float, earlier: list[float] = history) -> list[Any]:
        values = [*earlier, value]
        pairs = pd.DataFrame({"jaccard": values, "spearman": [0.9] * len(values),
                              "pair": [f"p{i}" for i in range(len(values))]})
        return churn_alerts(cfg, pairs, len(values) - 1, both_sides=True)

    (too_much,) = judge(low - 0.01)
    assert too_much.metric == "jaccard" and too_much.bound == pytest.approx(low)
    assert "churned" in too_much.message
    (too_little,) = judge(high + 0.01)
    assert too_little.bound == pytest.approx(high) and "barely moved" in too_little.message
    assert judge(low + 0.01) == [] and judge(high - 0.01) == []
    assert judge(0.0, history[:7]) == []  # seven earlier pairs: no bound learnt yet
    one_sided = pd.DataFrame({"jaccard": [*history, high + 0.01], "spearman": 0.9,
                              "pair": "p"})
    assert churn_alerts(cfg, one_sided, len(history), both_sides=False) == []


def test_stored_stability_is_each_lists_overlap_with_the_one_before(project) -> None:
    config, folder, engine = project
    result = monitor(config, folder, engine, "2013-01-15", window_days=60)
    headers = lists_q.production_list_headers(engine, config.name)
    entries = lists_q.production_list_entries(engine, headers["id"].tolist())
    top = {i: set(g.sort_values("rank_all")["entity_id"].head(K))
           for i, g in entries.groupby("list_id")}
    ids = headers["id"].tolist()
    jaccard = [len(top[a] & top[b]) / len(top[a] | top[b]) for a, b in pairwise(ids)]
    stored = _metrics(engine, result.monitor_run_id, "stability")
    assert stored[stored["metric"] == "jaccard"]["value"].tolist() == pytest.approx(jaccard)
    # the pairs dated in the window are judged against the pairs before them
    pairs = result.stability
    judged = [i for i, d in enumerate(pairs["as_of_date"]) if d > pd.Timestamp("2012-11-16")]
    expected = [a for i in judged for a in churn_alerts(
        config.monitoring.stability.model_copy(update={"k": K}), pairs, i)]
    assert [a for a in result.alerts if a.kind == "stability"] == expected


def test_a_list_identical_to_the_one_before_is_an_input_alarm(project) -> None:
    config, folder, engine = project
    before = monitor(config, folder, engine, "2013-01-02", window_days=40)
    assert not [a for a in before.alerts if a.kind == "inputs"]
    headers = lists_q.production_list_headers(engine, config.name)
    last = headers.iloc[-1].to_dict()
    entries = lists_q.production_list_entries(engine, [int(last["id"])])
    header = {k: v for k, v in last.items() if k not in ("id", "created_at")}
    header["as_of_date"] = _utc("2013-01-01")
    columns = ["entity_id", "score", "rank_all", "rank", "reviewed_on", "reasons"]
    assert list_tables.record_production_list(engine, header, entries[columns],
                                              pd.DataFrame()) is not None
    after = monitor(config, folder, engine, "2013-01-02", window_days=40)
    (alarm,) = [a for a in after.alerts if a.kind == "inputs"]
    assert alarm.metric == "identical_list" and alarm.window == "2012-12-01/2013-01-01"
    assert "same checksum" in alarm.message


# --- Reviews ---------------------------------------------------------------------------------


def test_agreement_rate_per_list_and_over_all_lists_is_agree_over_agree_and_disagree(
        project) -> None:
    config, folder, engine = project
    on_list = listed(engine, config.name)
    answers = {pd.Timestamp("2012-11-01"): ["agree", "agree", "disagree", "unsure", None],
               pd.Timestamp("2012-12-01"): ["disagree", "agree"]}
    for day, given in answers.items():
        for entity, agreement in zip(on_list[day], given, strict=False):
            list_tables.record_review(engine, entity, day, reviewer="sgt",
                                      outcome="no_action", agreement=agreement)
    # a review of an officer who is not on that list is no review of the list
    off = sorted(set(synthetic_tables()["officers"]["officer_uid"].astype(str))
                 - set(on_list[pd.Timestamp("2012-12-01")]))[0]
    list_tables.record_review(engine, off, pd.Timestamp("2012-12-01"), reviewer="sgt",
                              outcome="no_action", agreement="disagree")
    result = monitor(config, folder, engine, "2013-01-15")
    rates = result.lists.set_index("date")["agreement_rate"]
    assert rates["2012-11-01"] == pytest.approx(2 / 3)  # unsure and unanswered left out
    assert rates["2012-12-01"] == pytest.approx(1 / 2)
    assert pd.isna(rates["2012-10-01"])
    assert result.agreement_rate == pytest.approx(3 / 5)
    stored = _metrics(engine, result.monitor_run_id, "agreement")
    rate = stored[stored["metric"] == "rate"].set_index("segment")["value"]
    assert rate["all"] == pytest.approx(3 / 5) and rate["2012-11-01"] == pytest.approx(2 / 3)


# --- Fairness --------------------------------------------------------------------------------


def test_selection_rate_per_age_band_is_the_lists_share_of_each_band(project) -> None:
    config, folder, engine = project
    tables, _ = load_event_tables(config, folder)
    result = monitor(config, folder, engine, "2013-01-15")
    day = pd.Timestamp("2012-12-01")
    headers = lists_q.production_list_headers(engine, config.name)
    list_id = int(headers["id"].iloc[-1])
    everyone = lists_q.production_list_entries(engine, [list_id])
    officers = tables["officers"].assign(uid=tables["officers"]["officer_uid"].astype(str))
    born = everyone["entity_id"].astype(str).map(officers.set_index("uid")["birth_year"])
    age = day.year - born.astype(float)
    band = pd.cut(age, [0, 30, 40, 50, np.inf], right=False,
                  labels=["under 30", "30-39", "40-49", "50 and over"]).astype(str)
    chosen = everyone["rank"].notna() & (everyone["rank"] <= K)
    by_hand = chosen.groupby(band).mean()
    stored = _metrics(engine, result.monitor_run_id, "list_fairness_group")
    stored = stored[(stored["segment"] == "2012-12-01")
                    & (stored["metric"] == "selection_rate")]
    found = {s.split(": ")[1]: v for s, v in zip(stored["subject"], stored["value"],
                                                 strict=True)}
    assert found == pytest.approx(by_hand.to_dict())
    assert result.list_fairness[day] and all(r.passed for r in result.list_fairness[day])


# --- The command line ------------------------------------------------------------------------


def test_rudi_monitor_on_a_temporal_project_exits_1_on_a_critical_alert(project) -> None:
    config, folder, engine = project
    runner = CliRunner()
    args = ["monitor", str(folder), "--as-of", "2013-12-31", "--window-days", "400"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "Production lists" in ok.output and "2012-12-01" in ok.output
    report = sorted((folder / ".rudi" / "reports").glob("monitor-*.html"))[-1]
    html = report.read_text()
    assert "Realised precision@k of each production list" in html
    assert 'id="production-lists"' in html
    # the same project reading complaints no longer tied to the officers the model ranked
    moved = folder / "moved"
    shutil.copytree(folder / "events", moved)
    tables, _ = load_event_tables(config, folder)
    shuffled(tables)["complaints"].to_parquet(moved / "complaints.parquet")
    raw = yaml.safe_load((folder / "rudi.yaml").read_text())
    raw["data"]["sources"][0]["path"] = str(moved)
    (folder / "rudi.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    bad = runner.invoke(app, args)
    assert bad.exit_code == 1, bad.output
    assert "performance" in bad.output
    with engine.connect() as conn:
        stored = conn.execute(select(alerts_table.c.kind, alerts_table.c.severity,
                                     alerts_table.c.subject)).all()
    assert ("performance", "critical", f"top-{K} list") in stored
    # the rewritten complaints are also an input alarm: the event tables are checked first
    assert ("integrity", "critical", "events.complaints") in stored
    shown = runner.invoke(app, ["monitor", str(folder), "--show"])
    assert shown.exit_code == 1 and "performance" in shown.output
    refused = runner.invoke(app, [*args[:4], "--window-days", "0"])
    assert refused.exit_code == 2 and "--window-days" in refused.output
    early = runner.invoke(app, ["monitor", str(folder), "--as-of", "2011-06-01"])
    assert early.exit_code == 0, early.output
    assert "noproductionlistofeis-testupto2011-06-01" in squeezed(early.output)
    (moved / "complaints.parquet").unlink()
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2 and "complaints.parquet" in squeezed(missing.output)


@pytest.mark.postgres
def test_the_list_monitor_on_postgresql(tmp_path: Path) -> None:
    """The same passes on a PostgreSQL store (its own schema, dropped afterwards): dates come
    back time-zone aware there."""
    with developed_on_postgres(tmp_path) as (config, folder, engine):
        on_list = listed(engine, config.name)
        for entity, agreement in zip(on_list[LISTS[-1]], ["agree", "disagree", "agree"],
                                     strict=False):
            list_tables.record_review(engine, entity, LISTS[-1], reviewer="sgt",
                                      outcome="training", agreement=agreement)
        tables, _ = load_event_tables(config, folder)
        real = monitor(config, folder, engine, "2013-12-31", tables)
        assert len(real.lists) == len(LISTS) and real.lists["matured"].all()
        assert not [a for a in real.alerts if a.kind == "performance"]
        assert real.agreement_rate == pytest.approx(2 / 3)
        assert real.lists.set_index("date").loc["2012-12-01", "intervened"] == 3
        fake = monitor(config, folder, engine, "2013-12-31", shuffled(tables))
        assert [a for a in fake.alerts if a.kind == "performance"]


def _metrics(engine: Any, run_id: int, section: str) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(select(monitor_metrics).where(
            (monitor_metrics.c.monitor_run_id == run_id)
            & (monitor_metrics.c.section == section))).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])
