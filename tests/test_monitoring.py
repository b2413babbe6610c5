"""Monitoring: drift, realised performance, input checks, list stability, alerts, retraining.

Unit tests check each figure against a hand computation or scikit-learn; the scenario tests
build a production history through the real service (TestClient) on SQLite and PostgreSQL and
assert exactly which alerts appear.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import copy_sqlite, example_config, write_project
from fastapi.testclient import TestClient
from scipy import stats
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sqlalchemy import func, select
from typer.testing import CliRunner

from rudikit.cli import app as cli
from rudikit.cli.monitoring import rehearse
from rudikit.cli.service import DEMO_WAIVER
from rudikit.config import FairnessRequirement, load_project
from rudikit.data import MISSING_GROUP
from rudikit.data.sources import SourceError, unify
from rudikit.data.synthetic import generate_archive
from rudikit.models.artefacts import load_artefact
from rudikit.monitoring import inputs
from rudikit.monitoring.drift import OTHER, ReferenceProfile, chi2_p_value, compare, psi
from rudikit.monitoring.monitor import MonitorError, list_stability, run_monitor
from rudikit.monitoring.pass_sources import PassSources
from rudikit.monitoring.performance import realised
from rudikit.monitoring.reference import (
    profile_columns,
    reference_columns,
    training_rows,
    with_parts,
)
from rudikit.monitoring.rehearsal import judging_day
from rudikit.monitoring.replay import month_rows, replay
from rudikit.monitoring.retrain import RetrainError, retrain, rollback
from rudikit.reports.monitor_report import write_monitor_report
from rudikit.reports.run_report import write_run_report
from rudikit.run.develop import run_project
from rudikit.service.app import create_app
from rudikit.service.auth import create_token
from rudikit.service.deploy import deploy
from rudikit.service.settings import ServiceSettings
from rudikit.store import results
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.monitoring_tables import alerts, monitor_metrics, monitor_runs, source_periods
from rudikit.store.production_tables import audit_log, deployed_models, outcomes
from rudikit.store.production_tables import production_predictions as pp
from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.queries.production import live_deployment

runner = CliRunner()

# --- drift -----------------------------------------------------------------------------------


def test_psi_matches_the_hand_computation() -> None:
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5)
    expected = 0.4 * np.log(1.8) + (-0.4) * np.log(0.2)
    assert psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])) == pytest.approx(expected)
    assert psi(np.array([0.2, 0.3, 0.5]), np.array([0.2, 0.3, 0.5])) == 0.0


def test_chi_square_matches_the_textbook_formula() -> None:
    ref, prod = np.array([30, 70, 0]), np.array([50, 50, 0])  # the empty bucket is dropped
    table = np.array([[30, 70], [50, 50]], dtype=float)
    expected = np.outer(table.sum(1), table.sum(0)) / table.sum()
    statistic = ((table - expected) ** 2 / expected).sum()
    assert chi2_p_value(ref, prod) == pytest.approx(stats.chi2.sf(statistic, df=1))


def test_reference_profile_buckets_unseen_missing_and_numbers() -> None:
    train = pd.DataFrame({
        "age_range": ["10-17"] * 20 + ["18-24"] * 50 + ["25-34"] * 30,
        "flag": [True] * 10 + [False] * 90,
        "x": np.arange(100, dtype=float),
    })
    profile = ReferenceProfile(n_bins=4).fit(train, categorical=["age_range", "flag"],
                                             numeric=["x"])
    prod = pd.DataFrame({"age_range": ["10-17"] * 5 + ["18-24"] * 3 + ["over 34", None],
                         "flag": [True] * 5 + [False] * 5,
                         "x": [0.0, 10, 30, 60, 80, 99, 120, None, 1, 2]})
    counts = profile.count({c: prod[c] for c in prod})
    drift = {d.feature: d for d in compare(profile, counts)}
    age = drift["age_range"].buckets.set_index("bucket")
    assert age.loc["10-17", "reference_share"] == pytest.approx(0.20)
    assert age.loc["10-17", "production_share"] == pytest.approx(0.50)
    assert age.loc[OTHER, "production_n"] == 1 and age.loc[MISSING_GROUP, "production_n"] == 1
    assert drift["age_range"].production_missing == pytest.approx(0.1)
    flag = drift["flag"].buckets.set_index("bucket")
    assert flag.loc["true", "production_share"] == pytest.approx(0.5)
    # x: training quartile edges 24.75, 49.5, 74.25 -> [0, 10, 1, 2] | [30] | [60] | [80, 99, 120]
    x = drift["x"].buckets
    assert x["production_n"].tolist() == [4, 1, 1, 3, 1]
    assert x["reference_n"].tolist() == [25, 25, 25, 25, 0]
    shares_ref = age["reference_share"].to_numpy()
    shares_prod = age["production_share"].to_numpy()
    assert drift["age_range"].psi == pytest.approx(psi(shares_ref, shares_prod))


# --- realised performance --------------------------------------------------------------------


def test_realised_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500)
    score = np.round(np.clip(0.3 * y + rng.normal(0.35, 0.2, 500), 0, 1), 2)  # with ties
    r = realised(y, score, 0.5)
    flagged = (score >= 0.5).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, flagged).ravel()
    assert (r.tp, r.fp, r.fn, r.tn) == (tp, fp, fn, tn)
    assert r.precision == pytest.approx(precision_score(y, flagged))
    assert r.recall == pytest.approx(recall_score(y, flagged))
    assert r.f1 == pytest.approx(f1_score(y, flagged))
    assert r.roc_auc == pytest.approx(roc_auc_score(y, score))


# --- inputs ----------------------------------------------------------------------------------


def _rows(n_per_month: dict[str, int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for month, n in n_per_month.items():
        day = pd.Timestamp(f"{month}-01", tz="UTC")
        parts.append(pd.DataFrame({"datetime": day + pd.to_timedelta(rng.integers(0, 27, n),
                                                                     unit="D"),
                                   "v": rng.integers(0, 1000, n).astype(str)}))
    return pd.concat(parts, ignore_index=True)


def test_period_checksums_ignore_row_order_and_catch_a_rewritten_record() -> None:
    frame = _rows({"2020-01": 50, "2020-02": 60, "2020-03": 40})
    before = inputs.period_digests(frame, "datetime", "month")
    shuffled = inputs.period_digests(frame.sample(frac=1, random_state=1), "datetime", "month")
    assert shuffled == before
    changed = frame.copy()
    changed.loc[changed.index[55], "v"] = "rewritten"  # a February row
    found = inputs.integrity_findings("s", {d.period: d for d in before},
                                      inputs.period_digests(changed, "datetime", "month"),
                                      newest_period="2020-03")
    assert [(f.kind, f.window) for f in found] == [("integrity", "2020-02")]
    grown = pd.concat([frame, _rows({"2020-03": 5}, seed=9)], ignore_index=True)
    assert inputs.integrity_findings("s", {d.period: d for d in before},
                                     inputs.period_digests(grown, "datetime", "month"),
                                     newest_period="2020-03") == []  # the newest month fills


def test_rows_without_any_time_are_one_no_date_period() -> None:
    frame = pd.DataFrame({"datetime": [pd.NaT] * 3, "v": ["a", "b", "c"]})
    [digest] = inputs.period_digests(frame, "datetime", "month")
    assert (digest.period, digest.row_count) == (inputs.NO_DATE, 3)


def test_a_reading_stopped_by_a_failing_pass_loads_no_further_file() -> None:
    import threading

    from rudikit.monitoring.pass_sources import _read

    loaded, stop = [], threading.Event()

    def files():  # the pass fails while the first file is being read
        for i in range(3):
            loaded.append(i)
            stop.set()
            yield pd.DataFrame({"datetime": [pd.Timestamp("2020-01-01", tz="UTC")], "v": [i]})

    read = _read(files(), "datetime", None, stop=stop)
    assert loaded == [0] and len(read.hashes) == 1


def test_row_counts_against_learned_and_given_bounds_and_gaps() -> None:
    counts = {f"2019-{m:02d}": 100 + m for m in range(1, 13)}
    counts["2020-01"] = 20
    digests = inputs.period_digests(_rows(counts), "datetime", "month")
    found = inputs.row_count_findings("s", digests, None, {"2020-01", "2019-12"})
    assert [(f.window, f.metric) for f in found] == [("2020-01", "rows")]
    assert found[0].bound == pytest.approx(np.percentile([100 + m for m in range(1, 13)], 5)
                                           * 0.5)
    given = inputs.row_count_findings("s", digests, (105, 200), {"2019-01", "2019-09"})
    assert [f.window for f in given] == ["2019-01"]
    gap = dict(counts)
    del gap["2019-06"]
    missing = inputs.row_count_findings("s", inputs.period_digests(_rows(gap), "datetime",
                                                                   "month"), None, set())
    assert [f.window for f in missing] == ["2019-06"]


def test_freshness() -> None:
    as_of = datetime(2020, 5, 1, tzinfo=UTC)
    age, finding = inputs.freshness("s", pd.Timestamp("2020-02-29", tz="UTC"), as_of, 60)
    assert age == pytest.approx(62.0) and finding is not None and finding.bound == 60
    assert inputs.freshness("s", pd.Timestamp("2020-04-01"), as_of, 60)[1] is None


# --- the production history scenarios --------------------------------------------------------

MONTHS = [f"2019-{m:02d}" for m in range(3, 13)] + ["2020-01", "2020-02"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stop-search project on twelve months of synthetic archive files (the data folder is
    part of the project, so a test may rewrite a file)."""
    root = tmp_path_factory.mktemp("monitor-template")
    generate_archive(root / "data", months=MONTHS, rows_per_month=1000, seed=3,
                     forces=["essex", "merseyside", "south-yorkshire"])
    config = example_config()
    config["evaluation"]["bootstrap"] = 0
    config["evaluation"]["selection"].pop("refit")  # the split below has no validation rows
    config["fairness"]["requirements"] = []
    config["fairness"].pop("mitigation")
    monitoring = config["monitoring"]
    monitoring.update(window_days=90, min_outcomes=50,
                      sources={"searches": {"max_staleness_days": 60, "period": "month"}},
                      stability={"k": 20, "period": "week", "min_history": 5})
    monitoring.pop("webhook_url")
    write_project(root, data={"entity_id": "record_id", "knowledge_date": "datetime",
                              "sources": [{"name": "searches", "kind": "police_uk_archive",
                                           "path": "data"}]},
                  models=[{"algorithm": "lightgbm",
                           "params": {"n_estimators": 60, "num_leaves": 15}}],
                  splits=[{"name": "last_month", "kind": "temporal", "date_column": "datetime",
                           "test_start": "2020-02-01"}],
                  monitoring=monitoring, fairness=config["fairness"],
                  evaluation=config["evaluation"])
    return root


@dataclass(frozen=True)
class Developed:
    """The template after one `rudi run` on a SQLite store."""

    folder: Path
    db: Path
    group: int  # the selected model group
    model: int  # its model
    run_id: int
    frame: pd.DataFrame  # the unified sources (reading the 36 archive files takes seconds)


@pytest.fixture(scope="module")
def developed(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Developed:
    """One `rudi run` of the template for the module's SQLite tests (each writes to its own
    copy, ``Live.copy``), instead of one run per test."""
    root = tmp_path_factory.mktemp("monitor-developed")
    folder = root / "project"
    shutil.copytree(template, folder, ignore=shutil.ignore_patterns(".rudi"))
    run = run_project(folder, url=f"sqlite:///{root / 'rudi.db'}")
    assert run.selected is not None
    return Developed(folder, root / "rudi.db", run.selected.model_group_id,
                     run.selected.model_id, run.run_id, unify(load_project(folder), folder)[0])


def test_a_pass_keeps_the_text_it_fits_a_reference_on_as_categoricals(template: Path) -> None:
    """The development rows a pass keeps to fit a missing reference hold a police.uk source's
    text as categoricals (the unfitted pass's memory: 215 MB of text against 38 MB at 1M rows),
    stacked over its 36 files as one categorical each, and the reference fitted on them is the
    one fitted on the text, bucket for bucket and count for count."""
    project = load_project(template)
    features = project.features
    kept = PassSources(project, template, reference_columns(project, features)).frame()
    text = unify(project, template)[0][list(kept.columns)]
    assert isinstance(kept["outcome"].dtype, pd.CategoricalDtype)
    for column in kept.columns:
        pd.testing.assert_series_equal(kept[column].astype(text[column].dtype), text[column])
    categorical, numeric = profile_columns(features)
    fitted = []
    for frame in (kept, text):
        train = with_parts(training_rows(project, frame, "last_month"), features)
        fitted.append(ReferenceProfile().fit(
            train, categorical=[c for c in categorical if c in train.columns],
            numeric=[c for c in numeric if c in train.columns]).to_json())
    assert fitted[0] == fitted[1]


def copy_project(source: Path, folder: Path) -> None:
    """The project folder and its model files (stored paths are relative to the project),
    without the store, which :func:`copy_sqlite` copies."""
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".rudi"))
    models = source / ".rudi" / "models"
    if models.is_dir():
        shutil.copytree(models, folder / ".rudi" / "models")


class Live:
    """A trained, deployed project with a service client holding an admin token."""

    def __init__(self, folder: Path, url: str, schema: str | None,
                 run: tuple[int, int] | None = None, frame: pd.DataFrame | None = None):
        """Trains the project in ``folder`` into the store, unless ``run`` gives the (model
        group, run id) the store at ``url`` already holds; ``frame``: its unified sources,
        when already read."""
        self.folder, self.url, self.schema = folder, url, schema
        if run is None:
            result = run_project(folder, url=url, schema=schema)
            run = (result.selected.model_group_id, result.run_id)
        self.engine = open_store(url, schema=schema)
        self.group, self.run_id = run
        self.deployment = deploy(self.engine, self.group, reason="tests", by="pytest",
                                 threshold=0.3, project_dir=folder)
        _, self.token = create_token(self.engine, "admin", "monitor tests", "pytest")
        self.project = load_project(folder)
        self.frame = unify(self.project, folder)[0] if frame is None else frame

    @classmethod
    def copy(cls, developed: Developed, tmp_path: Path, db: str = "rudi.db") -> Live:
        """A copy of the developed project (folder and SQLite store) in ``tmp_path``."""
        folder = tmp_path / "project"
        copy_project(developed.folder, folder)
        url = copy_sqlite(developed.db, tmp_path / db)
        return cls(folder, url, None, run=(developed.group, developed.run_id),
                   frame=developed.frame.copy())

    def post(self, data: pd.DataFrame, y: np.ndarray) -> None:
        with self.client() as client:
            replay(client, self.project, data, y, self.project.features.input_columns,
                   "production")

    @contextmanager
    def client(self) -> Iterator[TestClient]:
        settings = ServiceSettings(project_dir=self.folder, database_url=self.url,
                                   schema=self.schema, token_cache_seconds=0.0)
        with TestClient(create_app(settings)) as client:
            client.headers["Authorization"] = f"Bearer {self.token}"
            yield client

    def monitor(self, as_of: datetime) -> Any:
        return run_monitor(self.project, self.folder, self.engine, as_of=as_of)


@pytest.fixture
def live(request: pytest.FixtureRequest, template: Path, store: tuple[str, str | None],
         tmp_path: Path) -> Live:
    """On SQLite a copy of the developed store; on PostgreSQL a run of its own (the sources,
    the same files, are not read again)."""
    url, schema = store
    developed = request.getfixturevalue("developed")
    if url.startswith("sqlite"):
        return Live.copy(developed, tmp_path)
    folder = tmp_path / "project"
    shutil.copytree(template, folder, ignore=shutil.ignore_patterns(".rudi"))
    return Live(folder, url, schema, frame=developed.frame.copy())


def _lists(live: Live, dates: list[pd.Timestamp], churn_last: bool) -> None:
    """Weekly batch-scored lists of 60 officers for the deployed model group: small score
    noise week to week, and (``churn_last``) a reshuffled last list."""
    rng = np.random.default_rng(7)
    base = rng.random(60)
    with live.engine.connect() as conn:
        model = conn.execute(select(t.models).where(
            t.models.c.id == live.deployment.model_id)).mappings().one()
    run = results.start_run(live.engine, live.project.name, "lists", {}, 0, "synthetic")
    for i, day in enumerate(dates):
        score = base + rng.normal(0, 0.01, 60)
        if churn_last and i == len(dates) - 1:
            score = rng.permutation(base)
        results.record_model(
            live.engine,
            results.FittedModel(run, live.group, f"list-{day:%Y-%m-%d}", 0, 60, (None, None),
                                (day, day), model["artefact_hash"], model["artefact_path"], 0.0),
            entity_ids=np.array([f"officer-{j}" for j in range(60)]),
            as_of=np.array([day] * 60), score=score, label=np.zeros(60, dtype=int),
            metrics=[], importances=[])


def _kinds(found: list[Any]) -> set[tuple[str, str]]:
    return {(a.kind, a.subject) for a in found}


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_an_unchanged_history_raises_no_alert(live: Live) -> None:
    month, data, y = month_rows(live.project, live.frame, "2020-02")
    live.post(data, y)  # the test month itself, with its true outcomes
    weeks = list(pd.date_range("2019-12-02", periods=10, freq="7D", tz="UTC"))
    _lists(live, weeks, churn_last=False)
    first = live.monitor(datetime(2020, 3, 1, tzinfo=UTC))
    assert first.alerts == [], [a.message for a in first.alerts]
    assert first.n_predictions == first.n_outcomes == len(data)
    # the production month is the test month: realised equals expected exactly
    assert first.realised.precision == pytest.approx(first.expected.precision)
    # the service's scores are the run's within 1e-9 (measured: 5e-16), not bit for bit, so a
    # group of tied scores on a decile edge of the reference may cross it (a few rows: PSI
    # ~3e-4 with the location features of the example)
    assert max(d.psi for d in first.drift) < 0.1 and first.score_drift.psi < 1e-3
    assert len(first.stability) == 9
    second = live.monitor(datetime(2020, 3, 1, tzinfo=UTC))
    assert second.alerts == []
    with live.engine.connect() as conn:
        periods = conn.execute(select(source_periods.c.period).where(
            source_periods.c.monitor_run_id == second.monitor_run_id)).scalars().all()
        stored = conn.execute(select(monitor_metrics.c.value).where(
            monitor_metrics.c.monitor_run_id == second.monitor_run_id,
            monitor_metrics.c.section == "performance", monitor_metrics.c.subject == "all",
            monitor_metrics.c.metric == "precision")).scalar_one()
    assert sorted(periods) == MONTHS
    assert stored == pytest.approx(second.realised.precision)
    # the run report lists the monitoring passes of its model groups, linking their reports
    html = write_run_report(live.engine, live.run_id, live.folder / "reports").read_text()
    for run in (first, second):
        assert f'<a href="monitor-{run.monitor_run_id}.html">' in html
    assert f"{second.realised.precision:.3f}" in html
    result = runner.invoke(cli, ["monitor", str(live.folder), "--show", "--database-url",
                                 live.url] + (["--database-schema", live.schema]
                                              if live.schema else []))
    assert result.exit_code == 0 and "No open alerts" in result.output


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def test_the_window_ends_at_old_traffic_and_window_days_overrides_the_setting(
        live: Live) -> None:
    """Replayed February, monitored long after with a fixed clock: the default window ends at
    the newest case (saying so) instead of counting nothing; --as-of still wins."""
    _, data, y = month_rows(live.project, live.frame, "2020-02")
    live.post(data, y)
    times = pd.to_datetime(data["datetime"], utc=True)
    newest = times.max()
    today = datetime(2021, 12, 1, 9, tzinfo=UTC)
    behind = (today.date() - newest.date()).days
    default = run_monitor(live.project, live.folder, live.engine, today=today)
    assert default.window == (newest - pd.Timedelta(days=90), newest)  # window_days: 90
    assert default.n_predictions == len(data)
    assert (f"the newest production case is {newest:%Y-%m-%d}, {behind} days before today: "
            "the window ends there") in default.notes[0]
    week = run_monitor(live.project, live.folder, live.engine, today=today, window_days=7)
    assert week.window == (newest - pd.Timedelta(days=7), newest)
    assert week.n_predictions == int((times > newest - pd.Timedelta(days=7)).sum())
    assert 0 < week.n_predictions < len(data)
    chosen = run_monitor(live.project, live.folder, live.engine, today=today,
                         as_of=datetime(2020, 2, 15, tzinfo=UTC), window_days=7)
    assert chosen.window[1] == datetime(2020, 2, 15, tzinfo=UTC)
    assert not any("newest production case" in n for n in chosen.notes)
    # the inputs are still judged on the day itself: stale today, fresh on 2020-02-15
    assert ("freshness", "searches") in _kinds(default.alerts)
    assert "freshness" not in {a.kind for a in chosen.alerts}
    assert chosen.n_predictions == int(((times > pd.Timestamp("2020-02-08", tz="UTC"))
                                        & (times <= pd.Timestamp("2020-02-15", tz="UTC"))).sum())
    # what the pass stored (and its report shows) is the window it judged
    with live.engine.connect() as conn:
        stored = {r.id: (r.window_start, r.window_end) for r in conn.execute(select(
            monitor_runs.c.id, monitor_runs.c.window_start, monitor_runs.c.window_end))}
    for run in (default, week, chosen):
        assert tuple(map(_utc, stored[run.monitor_run_id])) == tuple(map(_utc, run.window))
    html = write_monitor_report(live.engine, week.monitor_run_id, live.folder / "r").read_text()
    assert f"Production window {newest - pd.Timedelta(days=7):%Y-%m-%d}" in html


def _march(live: Live) -> tuple[pd.DataFrame, np.ndarray]:
    """February's records moved to March, with a policing-operation flag on half of them (3% in
    training) and 40% of people recorded as aged 10-17."""
    _, data, y = month_rows(live.project, live.frame, "2020-02")
    data = data.copy()
    rng = np.random.default_rng(11)
    data["record_id"] = "march-" + data["record_id"].astype(str)
    data["datetime"] = data["datetime"] + pd.Timedelta(days=29)
    data["part_of_a_policing_operation"] = pd.array(rng.random(len(data)) < 0.5,
                                                    dtype="boolean")
    young = rng.random(len(data)) < 0.4
    data["age_range"] = data["age_range"].where(~young, "10-17")
    return data, y


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_pass_over_unchanged_source_files_reads_no_development_row(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second pass hashes the unchanged files and judges them on the first pass's digests
    (same periods, newest record, alerts), loading nothing; a rewritten file is read again."""
    from rudikit.monitoring import pass_sources

    _, feb, y_feb = month_rows(live.project, live.frame, "2020-02")
    live.post(feb[:300], y_feb[:300])
    first = live.monitor(datetime(2020, 5, 15, tzinfo=UTC))  # stale: a freshness alert
    # it read the files one by one: the checks of the whole table, and the reference fitted
    # on its reference columns is the one the whole table gives
    expect = live.project.monitoring.sources["searches"]
    assert first.sources == [inputs.check_source("searches", live.frame, "datetime", expect,
                                                 datetime(2020, 5, 15, tzinfo=UTC), {})[0]]
    dep = first.deployment
    train = with_parts(training_rows(live.project, live.frame, dep.split), dep.features)
    categorical, numeric = profile_columns(dep.features)
    whole = ReferenceProfile().fit(train, categorical=[c for c in categorical if c in train],
                                   numeric=[c for c in numeric if c in train]).to_json()
    stored = monitoring_q.reference_profile(live.engine, dep.deployment_id)["profile"]
    assert stored["inputs"] == json.loads(json.dumps(whole))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a source was loaded")

    with monkeypatch.context() as patched:
        patched.setattr(pass_sources, "load_source", refuse)
        patched.setattr(pass_sources, "source_frames", refuse)
        again = live.monitor(datetime(2020, 5, 15, tzinfo=UTC))
    assert again.sources == first.sources and first.sources[0].periods
    assert [a.as_json() for a in again.alerts] == [a.as_json() for a in first.alerts]
    assert ("freshness", "searches") in _kinds(again.alerts)
    with live.engine.connect() as conn:
        stored = [conn.execute(select(source_periods.c.period, source_periods.c.row_count,
                                      source_periods.c.checksum).where(
            source_periods.c.monitor_run_id == r.monitor_run_id)
            .order_by(source_periods.c.period)).all() for r in (first, again)]
    assert stored[0] == stored[1]
    june = next((live.folder / "data" / "2019-06").glob("*.csv"))
    lines = june.read_text().splitlines()
    june.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # a June record removed
    with monkeypatch.context() as patched:
        patched.setattr(pass_sources, "load_source", refuse)
        patched.setattr(pass_sources, "source_frames", refuse)
        with pytest.raises(AssertionError, match="a source was loaded"):
            live.monitor(datetime(2020, 5, 15, tzinfo=UTC))
    changed = live.monitor(datetime(2020, 5, 15, tzinfo=UTC))
    assert ("integrity", "searches") in _kinds(changed.alerts)
    # a file that cannot be read (read in the pass's reading thread) fails the pass, naming
    # the source and the file, and stores nothing
    with live.engine.connect() as conn:
        passes = conn.execute(select(func.count()).select_from(monitor_runs)).scalar_one()
    june.write_bytes(b"\xff\xfe\x00bad" * 100)
    with pytest.raises(SourceError, match=r"data\.sources\[0\]: cannot read .*2019-06"):
        live.monitor(datetime(2020, 5, 15, tzinfo=UTC))
    with live.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(monitor_runs)).scalar_one() \
            == passes
    # the same files read with other settings are read again, not judged on the last reading
    source = live.project.data.sources[0]
    other = live.project.model_copy(update={"data": live.project.data.model_copy(update={
        "sources": [source.model_copy(update={"forces": ["no-such-force"]})]})})
    with monkeypatch.context() as patched:
        patched.setattr(pass_sources, "load_source", refuse)
        patched.setattr(pass_sources, "source_frames", refuse)
        with pytest.raises(AssertionError, match="a source was loaded"):
            run_monitor(other, live.folder, live.engine, as_of=datetime(2020, 5, 15, tzinfo=UTC))


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_a_troubled_history_raises_exactly_the_expected_alerts(live: Live) -> None:
    _, feb, y_feb = month_rows(live.project, live.frame, "2020-02")
    live.post(feb, y_feb)
    weeks = list(pd.date_range("2019-12-02", periods=10, freq="7D", tz="UTC"))
    _lists(live, weeks[:-1], churn_last=False)
    assert live.monitor(datetime(2020, 3, 1, tzinfo=UTC)).alerts == []  # the baseline
    # production drifts, and March's outcomes say every flagged search found nothing while
    # the searches the model advised against found something
    march, _ = _march(live)
    with live.client() as client:
        replay(client, live.project, march, np.zeros(len(march), dtype=int),
               live.project.features.input_columns, "2020-03", outcomes=False)
        with live.engine.connect() as conn:
            decisions = conn.execute(select(pp.c.observation_id, pp.c.decision).where(
                pp.c.observation_id.like("march-%"))).all()
        for oid, decision in decisions:
            assert client.post("/outcomes", json={"observation_id": oid,
                                                  "outcome": int(not decision)}
                               ).status_code == 201
    # a past record is rewritten in the source (June 2019)
    june = next((live.folder / "data" / "2019-06").glob("*.csv"))
    lines = june.read_text().splitlines()
    swap = ("Male", "Female") if ",Male," in lines[1] else ("Female", "Male")
    lines[1] = lines[1].replace(f",{swap[0]},", f",{swap[1]},", 1)
    june.write_text("\n".join(lines) + "\n")
    # and the newest list churned
    _lists(live, weeks[-1:], churn_last=True)
    # judged on 2020-05-15: the source (newest record 2020-02-29) is 76 days old, allowed 60
    result = live.monitor(datetime(2020, 5, 15, tzinfo=UTC))
    assert _kinds(result.alerts) == {
        ("drift", "part_of_a_policing_operation"), ("drift", "age_range"),
        ("performance", "precision"), ("freshness", "searches"), ("integrity", "searches"),
        ("stability", "top-20 list")}, [a.message for a in result.alerts]
    by_kind = {a.kind: a for a in result.alerts}
    assert by_kind["integrity"].window == "2019-06"
    assert by_kind["freshness"].value == pytest.approx(76, abs=1)
    assert by_kind["performance"].severity == "critical"
    op = next(d for d in result.drift if d.feature == "part_of_a_policing_operation")
    true_share = op.buckets.set_index("bucket").loc["true"]
    assert true_share.reference_share < 0.1 and true_share.production_share > 0.3
    with live.engine.connect() as conn:
        stored = conn.execute(select(alerts.c.kind, alerts.c.subject).where(
            alerts.c.monitor_run_id == result.monitor_run_id)).all()
    assert {(k, s) for k, s in stored} == _kinds(result.alerts)
    args = ["monitor", str(live.folder), "--show", "--database-url", live.url] + (
        ["--database-schema", live.schema] if live.schema else [])
    shown = runner.invoke(cli, args)
    assert shown.exit_code == 1, shown.output  # a critical alert is open
    assert "rewritten" in shown.output and "churned" in shown.output
    # the report, read back from the store, shows the alerts, the drift and the stations
    html = write_monitor_report(live.engine, result.monitor_run_id, live.folder / "reports",
                                segments=["force"]).read_text()
    assert html.count("plotly.js v") == 1  # inlined once: works offline
    assert f"{op.psi:.4f}" in html and "part_of_a_policing_operation" in html
    # the example has location features: the production window's hexagon map is drawn
    assert "Production searches by H3 cell" in html
    for alert in result.alerts:
        assert alert.message.replace("'", "&#39;") in html
    for force, r in result.segments["force"].items():
        assert f"<td class=\"text\">{force}</td><td>{r.n:,}</td>" in html
        assert f"{r.precision:.3f}" in html


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_retrain_promotes_or_refuses_with_an_audit_entry_and_rollback_restores(
        live: Live) -> None:
    _, feb, y_feb = month_rows(live.project, live.frame, "2020-02")
    live.post(feb, y_feb)
    decision = retrain(live.project, live.folder, live.engine, by="pytest")
    assert decision.holdout_rows + decision.production_training_rows == len(feb)
    assert decision.champion.model_id == live.deployment.model_id
    with live.engine.connect() as conn:
        entry = conn.execute(select(audit_log).where(audit_log.c.action.like("retrain%"))
                             ).mappings().one()
        now_live = live_deployment(conn)
    assert entry["action"] == ("retrain_promoted" if decision.promoted else "retrain_rejected")
    assert entry["details"]["challenger"] == pytest.approx(decision.challenger.metric)
    # the two trainings' top-k on the holdout, recomputed from the stored model files
    with live.engine.connect() as conn:
        files = {r.id: (r.artefact_path, r.artefact_hash) for r in conn.execute(select(
            t.models.c.id, t.models.c.artefact_path, t.models.c.artefact_hash))}
    held = feb[pd.to_datetime(feb["datetime"], utc=True) > decision.holdout[0]]
    columns = live.project.features.input_columns
    tops = []
    for model_id in (decision.champion.model_id, decision.challenger.model_id):
        score = load_artefact(*files[model_id], live.folder).predict_proba(held[columns])[:, 1]
        order = np.argsort(-score, kind="stable")[:decision.top_k]
        tops.append(set(held["record_id"].astype(str).to_numpy()[order]))
    assert decision.top_k == 20 and len(held) == decision.holdout_rows
    assert entry["details"]["top_k_jaccard"] == pytest.approx(
        len(tops[0] & tops[1]) / len(tops[0] | tops[1]))
    assert (now_live["model_id"] == decision.challenger.model_id) == decision.promoted
    # a promoted challenger's reference is stored with it, as `rudi deploy` stores one
    assert monitoring_q.has_reference_profile(live.engine, now_live["id"]) == decision.promoted
    if decision.promoted:
        rollback(live.engine, by="pytest", reason="compare", project_dir=live.folder)
        with live.engine.connect() as conn:
            assert live_deployment(conn)["model_id"] == live.deployment.model_id
    # a requirement no model can meet: the challenger is refused, the champion stays
    strict = live.project.fairness.model_copy(update={"requirements": [FairnessRequirement(
        name="impossible", metric="precision", unit="force", max_gap_pp=0.001, min_size=1)]})
    project = live.project.model_copy(update={"fairness": strict})
    with live.engine.connect() as conn:
        before = live_deployment(conn)["id"]
    refused = retrain(project, live.folder, live.engine, by="pytest")
    assert not refused.promoted and "fairness" in refused.reason
    with live.engine.connect() as conn:
        assert live_deployment(conn)["id"] == before
        actions = conn.execute(select(audit_log.c.action).order_by(audit_log.c.id)
                               ).scalars().all()
    assert actions[-1] == "retrain_rejected"
    # the monitoring report lists both decisions with the champion and challenger figures
    run = live.monitor(datetime(2020, 3, 1, tzinfo=UTC))
    html = write_monitor_report(live.engine, run.monitor_run_id, live.folder / "r").read_text()
    assert "retrain rejected" in html and refused.reason.split(" (")[0] in html
    assert f"{refused.challenger.metric:.3f}" in html


def test_retrain_needs_outcomes(developed: Developed, tmp_path: Path) -> None:
    live = Live.copy(developed, tmp_path)
    with pytest.raises(RetrainError, match="production outcomes"):
        retrain(live.project, live.folder, live.engine, by="pytest")


def test_list_stability_bounds_come_from_history(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base = pd.Series(rng.random(50), index=[f"e{i}" for i in range(50)])
    days = pd.date_range("2020-01-06", periods=8, freq="7D", tz="UTC")
    steady = {d: base + rng.normal(0, 0.01, 50) for d in days}
    project = load_project(write_project(tmp_path))
    project = project.model_copy(update={"monitoring": project.monitoring.model_copy(
        update={"stability": project.monitoring.stability.model_copy(
            update={"k": 10, "min_history": 5})})})
    pairs, found, note = list_stability(project, steady)
    assert note is None and len(pairs) == 7 and found == []
    churned = dict(steady)
    churned[days[-1]] = pd.Series(rng.permutation(base.to_numpy()), index=base.index)
    _, found, _ = list_stability(project, churned)
    assert {(a.kind, a.metric) for a in found} >= {("stability", "jaccard")}


def test_the_command_line_loop_replay_monitor_retrain_rollback_backtest(developed: Developed,
                                                                        tmp_path: Path) -> None:
    """Through `rudi`: replay February via a local service (a real server on a loopback port),
    monitor, retrain, roll back, backtest; every command explains itself and exits cleanly."""
    live = Live.copy(developed, tmp_path, "cli.db")
    folder, url = live.folder, live.url
    db = ["--database-url", url]
    replayed = runner.invoke(cli, ["replay", str(folder), "--month", "2020-02", *db])
    assert replayed.exit_code == 0, replayed.output
    _, feb, _ = month_rows(live.project, live.frame, "2020-02")
    assert f"Replayed 2020-02: {len(feb):,} records ({len(feb):,} scored now" in replayed.output
    monitored = runner.invoke(cli, ["monitor", str(folder), "--as-of", "2020-03-01", *db])
    assert monitored.exit_code == 0, monitored.output
    assert f"{len(feb):,} predictions, {len(feb):,} with outcomes" in monitored.output
    assert (folder / ".rudi" / "reports").glob("monitor-*.html")
    retrained = runner.invoke(cli, ["retrain", str(folder), *db, "--by", "cli-test"])
    assert retrained.exit_code == 0, retrained.output
    assert "champion" in retrained.output and "challenger" in retrained.output.lower()
    if "promoted (deployment" in retrained.output:
        rolled = runner.invoke(cli, ["rollback", str(folder), "--reason", "test", *db])
        assert rolled.exit_code == 0 and "is live" in rolled.output
        # the restored deployment's first pass reads a stored reference, as after `rudi deploy`
        assert "Stored the reference profile" in rolled.output, rolled.output
    refused = runner.invoke(cli, ["rollback", str(folder), *db])
    assert refused.exit_code == 2 and "say why" in refused.output
    bad = runner.invoke(cli, ["monitor", str(folder), "--as-of", "March", *db])
    assert bad.exit_code == 2 and "--as-of" in bad.output
    # without --as-of, long after the replayed month: the window ends at its newest case
    newest = pd.to_datetime(feb["datetime"], utc=True).max()
    week = int((pd.to_datetime(feb["datetime"], utc=True) > newest - pd.Timedelta(days=7)).sum())
    recent = runner.invoke(cli, ["monitor", str(folder), "--window-days", "7", *db])
    assert recent.exit_code == 1, recent.output  # the inputs are stale today: critical
    assert (f"window {newest - pd.Timedelta(days=7):%Y-%m-%d} to {newest:%Y-%m-%d}: "
            f"{week:,} predictions") in recent.output
    assert f"note: the newest production case is {newest:%Y-%m-%d}, " in recent.output
    assert "days before today: the window ends there" in recent.output
    backtest = runner.invoke(cli, ["backtest", str(folder), "--max-age", "2",
                                   "--first-train-months", "10", *db])
    assert backtest.exit_code == 0, backtest.output
    assert "ROC AUC by model age" in backtest.output
    # each refit is stored; its ROC AUC per age agrees with scikit-learn on its stored scores
    with live.engine.connect() as conn:
        fits = conn.execute(select(t.models.c.id, t.models.c.split).where(
            t.models.c.split.like("backtest_until_%"))).all()
        assert sorted(f.split for f in fits) == ["backtest_until_2020-01",
                                                 "backtest_until_2020-02"]
        first = next(f.id for f in fits if f.split.endswith("2020-01"))
        stored = dict(conn.execute(select(t.evaluations.c.parameter, t.evaluations.c.value)
                                   .where(t.evaluations.c.model_id == first,
                                          t.evaluations.c.metric == "roc_auc")).all())
        preds = pd.DataFrame(conn.execute(select(
            t.predictions.c.as_of_date, t.predictions.c.score, t.predictions.c.label)
            .where(t.predictions.c.model_id == first)).all())
    month = pd.to_datetime(preds["as_of_date"], utc=True).dt.strftime("%Y-%m")
    for age, name in ((1, "2020-01"), (2, "2020-02")):
        rows = preds[month == name]
        assert stored[f"age_{age}m"] == pytest.approx(roc_auc_score(rows["label"],
                                                                    rows["score"]))

    # a rudi.yaml broken since does not turn a committed rollback into a failure (last: the
    # rollback makes another deployment live)
    (folder / "rudi.yaml").write_text((folder / "rudi.yaml").read_text() + "\nnot_a_section: 1\n")
    again = runner.invoke(cli, ["rollback", str(folder), "--reason", "again", *db])
    assert again.exit_code == 0 and "is live" in again.output, again.output
    assert "left to the first monitor pass" in again.output


def test_the_demo_rehearsal_deploys_replays_monitors_and_retrains(developed: Developed,
                                                                  tmp_path: Path) -> None:
    """`rudi demo` after its run: the chosen model goes live at the fairness operating point,
    the data's last month is replayed with its outcomes and judged on the day after it, and the
    deployed group is retrained."""
    assert judging_day("2020-02") == "2020-03-01" and judging_day("2019-12") == "2020-01-01"
    folder = tmp_path / "p"
    copy_project(developed.folder, folder)
    url = copy_sqlite(developed.db, tmp_path / "demo.db")  # after `rudi run`
    rehearse(folder, url, developed.group, developed.model)
    project = load_project(folder)
    _, feb, _ = month_rows(project, developed.frame, "2020-02")
    engine = open_store(url)
    with engine.connect() as conn:
        first = conn.execute(select(deployed_models).order_by(deployed_models.c.id)
                             ).mappings().first()
        monitored = conn.execute(select(monitor_runs)).mappings().one()
        actions = conn.execute(select(audit_log.c.action)).scalars().all()
    assert first is not None and first["model_id"] == developed.model
    assert first["threshold"] == project.fairness.at.threshold == 0.25
    assert first["reason"].startswith("rudi demo: the model the run chose, at threshold 0.25")
    # the project leaves a rationale question of the model card open: the gate refuses, and
    # the demo deploys with a recorded waiver
    assert first["waiver"] == {"reason": DEMO_WAIVER, "by": first["deployed_by"], "failing": [
        "model card 'rationale.users_and_training': not answered (fill it in rudi.yaml)"]}
    assert monitored["n_predictions"] == monitored["n_outcomes"] == len(feb)
    assert pd.Timestamp(monitored["window_end"]).strftime("%Y-%m-%d") == "2020-03-01"
    assert {"retrain_promoted", "retrain_rejected"} & set(actions)
    assert list((folder / ".rudi" / "reports").glob("monitor-*.html"))


class _Hook:
    """A local HTTP endpoint that records what is POSTed to it."""

    def __init__(self) -> None:
        import http.server
        import threading

        received: list[dict[str, Any]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_alerts_are_posted_to_the_webhook_and_a_dead_webhook_loses_nothing(
        developed: Developed, tmp_path: Path) -> None:
    live = Live.copy(developed, tmp_path, "hook.db")
    folder = live.folder
    hook = _Hook()
    try:
        project = live.project.model_copy(update={"monitoring": live.project.monitoring
                                                  .model_copy(update={"webhook_url": hook.url})})
        stale = run_monitor(project, folder, live.engine, as_of=datetime(2020, 9, 1, tzinfo=UTC))
    finally:
        hook.close()
    assert _kinds(stale.alerts) == {("freshness", "searches")}
    assert len(hook.received) == 1
    body = hook.received[0]
    assert body["monitor_run_id"] == stale.monitor_run_id and body["critical"] == 1
    assert body["alerts"][0]["kind"] == "freshness"
    assert body["alerts"][0]["value"] == pytest.approx(stale.alerts[0].value)
    dead = project.model_copy(update={"monitoring": project.monitoring.model_copy(
        update={"webhook_url": hook.url})})  # the server is shut down now
    again = run_monitor(dead, folder, live.engine, as_of=datetime(2020, 9, 1, tzinfo=UTC))
    assert any(note.startswith("webhook ") for note in again.notes)
    with live.engine.connect() as conn:
        stored = conn.execute(select(alerts.c.kind).where(
            alerts.c.monitor_run_id == again.monitor_run_id)).scalars().all()
    assert stored == ["freshness"]


def test_bad_monitoring_settings_name_the_key_and_store_nothing(developed: Developed,
                                                                 tmp_path: Path) -> None:
    live = Live.copy(developed, tmp_path, "bad.db")
    folder, url = live.folder, live.url
    as_of = datetime(2020, 3, 1, tzinfo=UTC)

    def counts() -> tuple[int, int, int]:
        from sqlalchemy import func

        with live.engine.connect() as conn:
            return tuple(conn.execute(select(func.count()).select_from(tbl)).scalar_one()
                         for tbl in (monitor_runs, alerts, audit_log))

    before = counts()
    for update, message in (
            ({"segments": ["station_code"]},
             "monitoring.segments: no column 'station_code' in the data"),
            ({"sources": {"searchez": live.project.monitoring.sources["searches"]}},
             "monitoring.sources: no source named 'searchez' in data.sources")):
        project = live.project.model_copy(update={
            "monitoring": live.project.monitoring.model_copy(update=update)})
        with pytest.raises(MonitorError, match=message):
            run_monitor(project, folder, live.engine, as_of=as_of)
    with pytest.raises(ValueError, match="--window-days: 0 is not a number of days"):
        run_monitor(live.project, folder, live.engine, as_of=as_of, window_days=0)
    for days, message in (("0", "--window-days: 0 is not a number of days (a whole number, 1 "
                                "or more)"), ("-3", "--window-days: -3 is not a number of days"),
                          ("week", "--window-days")):
        refused = runner.invoke(cli, ["monitor", str(folder), "--window-days", days,
                                      "--database-url", url])
        assert refused.exit_code == 2 and message in refused.output, refused.output
    refused = runner.invoke(cli, ["rollback", str(folder), "--database-url", url])
    assert refused.exit_code == 2 and "say why you roll back: --reason" in refused.output
    assert counts() == before  # nothing stored by any of them


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_production_fairness_alert_needs_a_supported_gap(live: Live) -> None:
    """Only a requirement "not met" on production outcomes raises the fairness alert; one over
    its bound without statistical support ("inconclusive") or without enough flagged cases
    ("insufficient data") is recorded but raises none."""
    _, feb, y_feb = month_rows(live.project, live.frame, "2020-02")
    live.post(feb, y_feb)
    requirements = [
        FairnessRequirement(name="precision by gender per force within 0.001 pp",
                            metric="precision", unit="force", compare=["gender"],
                            max_gap_pp=0.001, min_size=5),
        FairnessRequirement(name="recall across forces within 0.001 pp", metric="recall",
                            unit="force", max_gap_pp=0.001, min_size=5),
        FairnessRequirement(name="precision across forces, 100,000 flagged each",
                            metric="precision", unit="force", max_gap_pp=1,
                            min_size=100_000),
    ]
    fairness = live.project.fairness.model_copy(update={"requirements": requirements})
    live.project = live.project.model_copy(update={"fairness": fairness})
    result = live.monitor(datetime(2020, 3, 1, tzinfo=UTC))
    statuses = {r.requirement.name: r.status for r in result.fairness}
    assert statuses[requirements[2].name] == "insufficient data"
    unsupported = [r for r in result.fairness if r.status == "inconclusive"]
    assert unsupported, statuses  # a gap over its bound that the data do not support
    assert all(o.gap_pp > 0.001 for r in unsupported for o in r.inconclusive)
    fairness_alerts = {a.subject for a in result.alerts if a.kind == "fairness"}
    assert fairness_alerts == {name for name, s in statuses.items() if s == "not met"}
    with live.engine.connect() as conn:
        stored = dict(conn.execute(select(monitor_metrics.c.subject, monitor_metrics.c.value)
                                   .where(monitor_metrics.c.monitor_run_id
                                          == result.monitor_run_id,
                                          monitor_metrics.c.section == "fairness")).all())
    assert stored == {name: {"met": 1.0, "not met": 0.0}.get(s) for name, s in statuses.items()}


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_a_pass_reads_the_window_and_its_stored_reference_not_the_history(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """June 2019 is history, February 2020 the window: a pass fetches no production rows
    (it reads the database's aggregates of the window), its figures match pandas and
    scikit-learn on the stored rows, the reference is stored on the first pass and read by the
    next (no reload of the test predictions), and a case split's predictions are never taken
    for lists."""
    from rudikit.monitoring import production
    from rudikit.store.queries import predictions as predictions_q

    _, feb, y_feb = month_rows(live.project, live.frame, "2020-02")
    _, june, y_june = month_rows(live.project, live.frame, "2019-06")
    feb, y_feb, june, y_june = feb[:400], y_feb[:400], june[:200], y_june[:200]  # small
    live.post(feb, y_feb)
    live.post(june, y_june)
    # a hundred cases sharing a time, scored by a model fitted on the project's own split
    run = results.start_run(live.engine, live.project.name, "cases", {}, 0, "synthetic")
    for day in pd.to_datetime(["2020-02-10", "2020-02-17"], utc=True):
        results.record_model(
            live.engine, results.FittedModel(run, live.group, live.project.splits[0].name, 0,
                                             100, (None, None), (day, day), "x", "x", 0.0),
            entity_ids=np.array([f"case-{day:%d}-{j}" for j in range(100)]),
            as_of=np.array([day] * 100), score=np.linspace(0, 1, 100),
            label=np.zeros(100, dtype=int), metrics=[], importances=[])
    fetched: list[int] = []
    chunk = production.prediction_chunk

    def counted(*args: Any, **kwargs: Any) -> str | None:
        blob = chunk(*args, **kwargs)
        fetched.append(0 if blob is None else len(blob.splitlines()))
        return blob

    monkeypatch.setattr(production, "prediction_chunk", counted)
    as_of = datetime(2020, 3, 1, tzinfo=UTC)
    first = live.monitor(as_of)
    # the oracle: every stored row, its event time and window applied by pandas
    with live.engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(select(
            pp.c.features, pp.c.score, pp.c.decision, pp.c.created_at, outcomes.c.outcome
        ).outerjoin(outcomes, outcomes.c.prediction_id == pp.c.id)).all())
    inputs_ = pd.DataFrame([f if isinstance(f, dict) else json.loads(f)
                            for f in rows["features"]])
    event = pd.to_datetime(inputs_["datetime"], utc=True, format="ISO8601")
    inside = ((event > pd.Timestamp(first.window[0])) & (event <= pd.Timestamp(as_of))
              ).to_numpy()
    assert len(rows) == len(feb) + len(june) and inside.sum() == len(feb)
    assert fetched == [] and first.n_predictions == len(feb)  # only aggregates were read
    labelled = rows[inside & rows["outcome"].notna().to_numpy()]
    y = labelled["outcome"].astype(int).to_numpy()
    assert first.n_outcomes == len(labelled)
    assert first.realised.precision == pytest.approx(
        precision_score(y, labelled["decision"].astype(bool)), abs=1e-9)
    assert first.realised.recall == pytest.approx(
        recall_score(y, labelled["decision"].astype(bool)), abs=1e-9)
    assert first.realised.roc_auc == pytest.approx(roc_auc_score(y, labelled["score"]),
                                                   abs=1e-9)
    gender = next(d for d in first.drift if d.feature == "gender").buckets.set_index("bucket")
    shares = inputs_.loc[inside, "gender"].value_counts(dropna=False) / inside.sum()
    assert len(shares) > 1
    for value, share in shares.items():
        bucket = MISSING_GROUP if pd.isna(value) else value
        assert gender.loc[bucket, "production_share"] == pytest.approx(share, abs=1e-9)
    assert first.stability is None  # the case predictions are no lists
    # the next pass reads the stored reference: no test predictions, no training rows
    monkeypatch.setattr(predictions_q, "scores_frame", _refuse)
    monkeypatch.setattr("rudikit.monitoring.reference.training_rows", _refuse)
    second = live.monitor(as_of)
    assert fetched == []
    assert second.score_ks_p == first.score_ks_p
    assert second.expected == first.expected and second.realised == first.realised
    for a, b in zip([*first.drift, first.score_drift], [*second.drift, second.score_drift],
                    strict=True):
        assert (a.feature, a.psi) == (b.feature, b.psi) or np.isnan(a.psi) and np.isnan(b.psi)
        pd.testing.assert_frame_equal(a.buckets, b.buckets)


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("read on a pass with a stored reference")
