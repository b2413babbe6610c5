"""`rudi retrain` for a temporal list project: the challenger is the deployed group refitted at
the newest matured list date L (no training label window past L), judged with the champion on
L's list; promotion (a refit on the newest matured dates) only if not worse and fair; every
decision in the audit log; `rudi rollback` returns to the model before.

The project is the tiny synthetic EIS of tests/test_eis.py, developed once per module; each test
works on a copy of its store, with the lightgbm model of the 2010 split deployed and monthly
production lists scored from 2010-01-01 to 2010-07-01 (`rudi score`)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from sqlalchemy import func, select
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.config import load_project
from rudikit.data.event_tables import ENTITY, load_event_tables
from rudikit.models.estimators import GridPoint
from rudikit.models.temporal import build_temporal_pipeline, prepare, split_matrices
from rudikit.monitoring.list_retrain import retrain_lists
from rudikit.monitoring.retrain import RetrainError, rollback
from rudikit.monitoring.scheduled_lists import score_lists
from rudikit.reports.run_report import write_run_report_and_cards
from rudikit.run.develop import run_project
from rudikit.run.engine import GridEntry, SplitRows, fit_score_record
from rudikit.service.deploy import deploy
from rudikit.store import list_tables, results
from rudikit.store import production_tables as pt
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from tests.test_eis import K, project_config
from tests.test_temporal import synthetic_tables

AS_OF = datetime(2011, 7, 15, tzinfo=UTC)  # the lists up to 2010-07-01 have matured
L = pd.Timestamp("2010-07-01")
YEAR = pd.DateOffset(years=1)


def write_config(folder: Path, data: Path, **monitoring: Any) -> None:
    config = project_config(data)
    config["temporal"]["models"] = config["temporal"]["models"][1:]  # lightgbm, logistic
    config["temporal"]["stability"] = {"seeds": [0, 1], "n_estimators": [],
                                       "consecutive": {"days": 1, "weeks": 1, "months": 1},
                                       "resamples": 0, "drop_sources": []}
    config["production"] = {"frequency": "monthly", "start": "2010-01-01", "reasons": 0}
    if monitoring:
        config["monitoring"] = monitoring
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def frame(engine: Any, query: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())


def model_of(engine: Any, algorithm: str, split: str) -> tuple[int, int]:
    """(model id, model group id) of the development fit of ``algorithm`` on ``split``."""
    row = frame(engine, select(t.models.c.id, t.models.c.model_group_id)
                .join(t.model_groups, t.model_groups.c.id == t.models.c.model_group_id)
                .where((t.model_groups.c.algorithm == algorithm)
                       & (t.models.c.split == split))).iloc[0]
    return int(row["id"]), int(row["model_group_id"])


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``developed``: after `rudi run`; ``scored``: the 2010 lightgbm model deployed and seven
    monthly production lists scored."""
    root = tmp_path_factory.mktemp("list_retrain")
    data = root / "events"
    data.mkdir()
    for name, table in synthetic_tables().items():
        table.to_parquet(data / f"{name}.parquet")
    developed = root / "developed"
    developed.mkdir()
    write_config(developed, data)
    run_project(developed, write_report=write_run_report_and_cards)
    scored = root / "scored"
    shutil.copytree(developed, scored)
    engine = open_store(None, scored)
    model_id, group_id = model_of(engine, "lightgbm", "split_2_2010-01-01")
    deploy(engine, group_id, model_id=model_id, reason="the 2010 model", by="analyst")
    result = score_lists(load_project(scored), scored, engine, by="analyst",
                         through=datetime(2010, 7, 1, tzinfo=UTC))
    assert [f"{s.as_of:%m}" for s in result.lists] == ["01", "02", "03", "04", "05", "06", "07"]
    engine.dispose()
    return {"developed": developed, "scored": scored, "data": data}


def copy(stores: dict[str, Path], which: str, tmp_path: Path) -> tuple[Path, Any]:
    folder = tmp_path / which
    shutil.copytree(stores[which], folder)
    return folder, open_store(None, folder)


def counts(engine: Any) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(table)).scalar_one()
                     for table in (t.runs, t.models, pt.audit_log, pt.deployed_models))


def precision_by_hand(score: np.ndarray, label: np.ndarray, k: int) -> float:
    """Positives among the k highest scores; officers tied at the k-th score count by their
    share of the places left (the expected value over orderings of the tie)."""
    order = np.sort(score)[::-1]
    cut = order[k - 1]
    above = score > cut
    tied = score == cut
    left = k - above.sum()
    return float((label[above].sum() + left * label[tied].mean()) / k)


def test_challenger_learns_only_from_windows_closed_by_the_list_and_is_judged_on_it(
        stores: dict[str, Path], tmp_path: Path) -> None:
    folder, engine = copy(stores, "scored", tmp_path)
    project = load_project(folder)
    decision = retrain_lists(project, folder, engine, by="analyst", now=lambda: AS_OF)
    # L: the newest production list whose one-year window closed by the clock's day
    assert decision.list_date == L and decision.as_of == pd.Timestamp("2011-07-15")
    assert decision.list_source.startswith("production list ")
    # no leakage: every training label window [d, d + 1 year) ends by L, on the stored model
    assert decision.training_dates == [pd.Timestamp(f"{y}-07-01") for y in (2007, 2008, 2009)]
    assert all(d + YEAR <= L for d in decision.training_dates)
    model = frame(engine, select(t.models).where(
        t.models.c.id == decision.challenger.model_id)).iloc[0]
    assert pd.Timestamp(model["train_end"]) + YEAR <= L
    assert model["split"] == "retrain_2010-07-01" and model["run_id"] == decision.run_id
    # the stored precision is the precision of its stored list on L, computed by hand
    preds = frame(engine, select(t.predictions).where(
        t.predictions.c.model_id == decision.challenger.model_id))
    assert (pd.to_datetime(preds["as_of_date"]).dt.tz_localize(None) == L).all()
    score, label = preds["score"].to_numpy(), preds["label"].to_numpy()
    stored = frame(engine, select(t.evaluations).where(
        t.evaluations.c.model_id == decision.challenger.model_id)).set_index(
        ["metric", "parameter"])["value"]
    assert stored[("precision_at_k", f"{K}_abs")] == pytest.approx(
        precision_by_hand(score, label, K))
    assert decision.challenger.metric == pytest.approx(precision_by_hand(score, label, K))
    assert stored[("roc_auc", "")] == pytest.approx(roc_auc_score(label, score))
    lower, upper = decision.challenger.metrics["lower"], decision.challenger.metrics["upper"]
    assert lower <= decision.challenger.metric <= upper
    # the champion: its stored production list of L, judged on the same officers
    entries = frame(engine, select(list_tables.production_list_entries).where(
        list_tables.production_list_entries.c.list_id == int(decision.list_source.split()[-1])))
    champion = entries.set_index("entity_id")["score"].reindex(preds["entity_id"]).to_numpy()
    assert decision.champion.metric == pytest.approx(precision_by_hand(champion, label, K))
    assert decision.champion.metrics["roc_auc"] == pytest.approx(roc_auc_score(label, champion))
    assert decision.officers == len(preds) and decision.positives == int(label.sum())
    # the rule (max_drop 0; the requirement of the project file is met by both lists)
    assert decision.challenger.fairness_passed is True
    assert decision.promoted == (decision.challenger.metric >= decision.champion.metric)
    fairness = frame(engine, select(t.fairness_requirements).where(
        t.fairness_requirements.c.model_id == decision.challenger.model_id))
    assert list(fairness["selection"]) == [f"top_k={K}@2010-07-01"]


def test_champion_without_a_matured_production_list_is_judged_on_a_timechop_date(
        stores: dict[str, Path], tmp_path: Path) -> None:
    folder, engine = copy(stores, "developed", tmp_path)
    model_id, group_id = model_of(engine, "lightgbm", "split_2_2010-01-01")
    deploy(engine, group_id, model_id=model_id, reason="the 2010 model", by="analyst")
    decision = retrain_lists(load_project(folder), folder, engine, by="analyst", as_of=AS_OF)
    assert decision.list_date == pd.Timestamp("2010-01-01")
    assert decision.list_source.startswith("timechop test date")
    # the champion scored now equals its development evaluation on that date
    stored = frame(engine, select(t.evaluations.c.value).where(
        (t.evaluations.c.model_id == model_id) & (t.evaluations.c.metric == "precision_at_k")
        & (t.evaluations.c.parameter == f"{K}_abs")))["value"].iloc[0]
    assert decision.champion.metric == pytest.approx(stored)


def shuffled_champion(folder: Path, engine: Any, group_id: int) -> int:
    """A model of the group fitted on the 2010 split with shuffled training labels (what a
    corrupted label extract would give): a champion any honest refit beats."""
    project = load_project(folder)
    config = project.temporal
    tables, _ = load_event_tables(project, folder)
    split = next(s for s in config.splits() if s.split_time == pd.Timestamp("2010-01-01"))
    data = prepare(config, tables, splits=[split])
    m = split_matrices(data, split)
    with engine.connect() as conn:
        group = conn.execute(select(t.model_groups).where(
            t.model_groups.c.id == group_id)).mappings().one()
    entry = GridEntry(GridPoint(group["algorithm"], dict(group["hyperparameters"])),
                      "shuffled", data.feature_config)
    columns = data.feature_config.input_columns
    y = np.random.default_rng(0).permutation(m.train[m.label].to_numpy())
    rows = SplitRows(split.name, m.train[columns], y, m.test[columns],
                     m.test[m.label].to_numpy(), m.test[ENTITY].astype("string").to_numpy(),
                     m.test["as_of_date"].to_numpy(), (None, None), (split.split_time, None))
    with results.run(engine, project.name, project.config_hash(), {"test": "shuffled"}, 0,
                     "synthetic") as run:
        fitted = fit_score_record(engine, run.id, group_id, entry, rows,
                                  build=lambda e: build_temporal_pipeline(e.point, e.features),
                                  evaluate=lambda *_: ([], None),
                                  artefacts_dir=folder / ".rudi" / "models")
    return fitted.model_id


def test_a_better_challenger_is_promoted_as_a_refit_and_rollback_restores_the_champion(
        stores: dict[str, Path], tmp_path: Path) -> None:
    folder, engine = copy(stores, "scored", tmp_path)
    _, group_id = model_of(engine, "lightgbm", "split_2_2010-01-01")
    bad = shuffled_champion(folder, engine, group_id)
    before = deploy(engine, group_id, model_id=bad, reason="a corrupted extract", by="analyst")
    out = CliRunner().invoke(app, ["retrain", str(folder), "--as-of", "2011-07-15",
                                   "--by", "reviewer"], env={"COLUMNS": "100"})
    assert out.exit_code == 0, out.output
    with engine.connect() as conn:
        audit = conn.execute(select(pt.audit_log).where(
            pt.audit_log.c.action == "retrain_promoted")).mappings().one()
        live = conn.execute(select(pt.deployed_models).where(
            pt.deployed_models.c.live.is_(True))).mappings().one()
    details = audit["details"]
    assert audit["actor"] == "reviewer" and details["champion_model_id"] == bad
    # the stored list of L was another model's, so the champion was scored now
    assert details["list_source"].endswith("(scored now with the live model)")
    assert details["challenger"] > details["champion"] + 0.2  # the refit beats noise
    assert f"precision@{K}" in out.output and "promoted" in out.output
    # what went live: the recipe refitted on windows closed by the as-of date, not the
    # challenger; its list of that day carries no label (nothing is known yet)
    assert live["model_id"] == details["refit_model_id"] != details["challenger_model_id"]
    assert live["id"] == details["new_deployment_id"] and live["deployed_by"] == "reviewer"
    refit = frame(engine, select(t.models).where(t.models.c.id == live["model_id"])).iloc[0]
    assert pd.Timestamp(refit["train_end"]) + YEAR <= pd.Timestamp("2011-07-15")
    assert pd.Timestamp(refit["train_end"]) + YEAR > L  # newer than the challenger
    assert details["refit_dates"][-1] == "2010-07-15"
    labels = frame(engine, select(t.predictions.c.label).where(
        t.predictions.c.model_id == live["model_id"]))
    assert len(labels) and labels["label"].isna().all()
    # rollback: the corrupted champion is live again, audit-logged
    retired, new = rollback(engine, by="reviewer", reason="the refit lists look odd")
    assert retired == live["id"]
    with engine.connect() as conn:
        now_live = conn.execute(select(pt.deployed_models).where(
            pt.deployed_models.c.live.is_(True))).mappings().one()
        actions = list(conn.execute(select(pt.audit_log.c.action).order_by(pt.audit_log.c.id))
                       .scalars())
    assert now_live["id"] == new and now_live["model_id"] == bad
    assert before.id < live["id"] < new
    assert actions[-3:] == ["retrain_promoted", "deploy", "rollback"]


def test_an_unfair_challenger_is_refused_however_precise(
        stores: dict[str, Path], tmp_path: Path) -> None:
    folder, engine = copy(stores, "scored", tmp_path)
    config = yaml.safe_load((folder / "rudi.yaml").read_text())
    config["fairness"]["requirements"][0]["max_gap_pp"] = 0.01  # listed shares equal to 0.01pp
    config["monitoring"] = {"retraining": {"max_drop": 1.0}}  # precision cannot refuse it
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    live_before = frame(engine, select(pt.deployed_models))
    out = CliRunner().invoke(app, ["retrain", str(folder), "--as-of", "2011-07-15"],
                             env={"COLUMNS": "100"})
    assert out.exit_code == 0, out.output
    assert "not promoted" in out.output and "fairness requirement" in out.output
    with engine.connect() as conn:
        audit = conn.execute(select(pt.audit_log).where(
            pt.audit_log.c.action == "retrain_rejected")).mappings().one()
    details = audit["details"]
    assert details["challenger_fairness"][0].startswith("listed share between age bands")
    assert details["challenger_not_met"] == details["challenger_fairness"]
    assert details["new_deployment_id"] is None and details["refit_model_id"] is None
    assert frame(engine, select(pt.deployed_models)).equals(live_before)
    failed = frame(engine, select(t.fairness_requirements).where(
        t.fairness_requirements.c.model_id == details["challenger_model_id"]))
    assert not failed["passed"].any()


@pytest.mark.parametrize("case", ["nothing deployed", "no matured list", "other label"])
def test_bad_input_is_refused_by_name_and_nothing_is_stored(
        stores: dict[str, Path], tmp_path: Path, case: str) -> None:
    folder, engine = copy(stores, "developed" if case == "nothing deployed" else "scored",
                          tmp_path)
    as_of = AS_OF
    if case == "no matured list":
        as_of = datetime(2010, 12, 1, tzinfo=UTC)  # 2010-01-01 + 1 year is still ahead
    if case == "other label":
        config = yaml.safe_load((folder / "rudi.yaml").read_text())
        config["temporal"]["label"] = "sustained_complaint"
        (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    before = counts(engine)
    with pytest.raises(RetrainError) as caught:
        retrain_lists(load_project(folder), folder, engine, by="analyst", as_of=as_of)
    message = str(caught.value)
    expected = {"nothing deployed": ["nothing is deployed", "rudi deploy"],
                "no matured list": ["no matured list", "1year label window",
                                    "2010-12-01", "2010-07-01", "2011-07-01"],
                "other label": ["deployment 1", "any_complaint", "sustained_complaint"]}[case]
    assert all(part in message for part in expected), message
    assert counts(engine) == before
    out = CliRunner().invoke(app, ["retrain", str(folder), "--as-of", f"{as_of:%Y-%m-%d}"])
    assert out.exit_code == 2 and "error:" in out.output and "Traceback" not in out.output
    assert counts(engine) == before


@pytest.mark.slow  # 36 s; the list tables on PostgreSQL run in test_list_monitor's twin
def test_promotion_and_rollback_on_postgresql(store: tuple[str, str | None],
                                              tmp_path: Path) -> None:
    """The whole loop in one PostgreSQL schema: develop, deploy, score, retrain, roll back."""
    url, schema = store
    if schema is None:
        pytest.skip("SQLite is covered above, on copies of one developed store")
    data = tmp_path / "events"
    data.mkdir()
    for name, table in synthetic_tables().items():
        table.to_parquet(data / f"{name}.parquet")
    folder = tmp_path / "project"
    folder.mkdir()
    write_config(folder, data, retraining={"max_drop": 1.0})
    run_project(folder, url=url, schema=schema, write_report=write_run_report_and_cards)
    engine = open_store(url, folder, schema=schema)
    try:
        model_id, group_id = model_of(engine, "lightgbm", "split_2_2010-01-01")
        first = deploy(engine, group_id, model_id=model_id, reason="the 2010 model", by="a",
                       project_dir=folder)
        project = load_project(folder)
        score_lists(project, folder, engine, by="a", through=datetime(2010, 3, 1, tzinfo=UTC))
        decision = retrain_lists(project, folder, engine, by="a",
                                 as_of=datetime(2011, 3, 15, tzinfo=UTC))
        assert decision.list_date == pd.Timestamp("2010-03-01") and decision.promoted
        with engine.connect() as conn:
            audit = conn.execute(select(pt.audit_log).where(
                pt.audit_log.c.action == "retrain_promoted")).mappings().one()
        assert audit["details"]["list_date"] == "2010-03-01"
        assert audit["details"]["new_deployment_id"] == decision.deployment_id
        _, back = rollback(engine, by="a", reason="check", project_dir=folder)
        with engine.connect() as conn:
            live = conn.execute(select(pt.deployed_models).where(
                pt.deployed_models.c.live.is_(True))).mappings().one()
        assert live["id"] == back and live["model_id"] == model_id and back > first.id
    finally:
        engine.dispose()
