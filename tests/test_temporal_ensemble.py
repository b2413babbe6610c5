"""Temporal ensembles (``algorithm: ensemble`` in ``temporal.models``) on the small synthetic
force of test_temporal: one ensemble model per split after the first, its stored scores the
mean of its members' (the members' own artefacts as the oracle), its members chosen by the
audition on earlier splits only (poisoning the tested split's labels changes none), recorded
in ``ensemble_members``, and its reasons the mean of its members' contributions."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_temporal import D, experiment, synthetic_tables

from rudikit.explain import explain
from rudikit.models.artefacts import load_artefact
from rudikit.models.temporal import prepare, split_matrices
from rudikit.reports.run_report import write_run_report_and_cards
from rudikit.run.temporal import TemporalResult, run_temporal
from rudikit.store import results
from rudikit.store.engine import open_store
from rudikit.store.queries.ensembles import ensemble_members
from rudikit.store.queries.runs import run_models

MODELS = [
    {"algorithm": "rank_by_feature", "name": "baseline",
     "params": {"column": "cmp_all_1year_count"}},
    {"algorithm": "lightgbm", "params": {"n_estimators": 20, "num_leaves": [3, 7], "n_jobs": 1,
                                         "min_child_samples": 10}},
    {"algorithm": "logistic_regression", "params": {"C": [0.01, 1.0]}},
    {"algorithm": "ensemble", "name": "ensemble of 3",
     "params": {"members": 3, "method": ["probability_average", "rank_average"]}},
]


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any, Any]:
    config = experiment(models=MODELS, bootstrap=0)
    tables = synthetic_tables()
    return config, tables, prepare(config, tables)


def _run(folder: Path, config: Any, tables: Any, data: Any) -> tuple[Any, TemporalResult]:
    folder.mkdir()
    engine = open_store(f"sqlite:///{folder / 'rudi.db'}")
    run_id = results.start_run(engine, config.name, "h", {"temporal": config.model_dump(
        mode="json")}, 0, "synthetic")
    return engine, run_temporal(config, tables, engine=engine, run_id=run_id,
                                artefacts_dir=folder / "m", data=data)


@pytest.fixture(scope="module")
def ran(data: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, TemporalResult]:
    return _run(tmp_path_factory.mktemp("ens") / "clean", *data)


def _members(engine: Any, result: TemporalResult) -> pd.DataFrame:
    """Per ensemble model: its split, method and members (stored model ids and groups)."""
    with engine.connect() as conn:
        models = run_models(conn, result.run_id).set_index("id")
        members = ensemble_members(conn, models.index.tolist())
    return members.assign(split=members["ensemble_model_id"].map(models["split"]),
                          method=members["ensemble_model_id"].map(
                              models["hyperparameters"].map(lambda h: h.get("method"))))


def test_an_ensemble_per_split_with_a_training_era_scores_the_mean_of_its_members(
        ran: tuple[Any, TemporalResult]) -> None:
    engine, result = ran
    ensembles = [m for m in result.models if m.algorithm == "ensemble"]
    splits = [s.name for s in result.data.splits]
    # the first split has no earlier split to choose members on; each later one has both
    assert sorted(m.split for m in ensembles) == sorted(splits[1:] * 2)
    members = _members(engine, result)
    assert members.groupby("ensemble_model_id").size().eq(3).all()
    paths = {m.model_id: m.artefact for m in result.models}
    for model in (m for m in ensembles if m.params["method"] == "probability_average"):
        split = next(s for s in result.data.splits if s.name == model.split)
        test = split_matrices(result.data, split).test
        own = members[members["ensemble_model_id"] == model.model_id]["member_model_id"]
        scores = []
        for member_id in own:
            digest, path = paths[int(member_id)]
            pipeline = load_artefact(path, digest)
            scores.append(pipeline.predict_proba(
                test[pipeline.named_steps["encode"].input_columns])[:, 1])
        assert np.allclose(model.score, np.mean(scores, axis=0), atol=1e-12)
    # in the result's tables like any group; never the audition's choice
    assert set(result.groups["algorithm"]) >= {"ensemble"}
    assert "ensemble of 3" in set(result.precision_table()["name"])


def test_members_are_never_chosen_on_the_tested_split(
        ran: tuple[Any, TemporalResult], data: Any, tmp_path: Path) -> None:
    """The last split's test labels flipped: every ensemble's members are the same groups
    (the members' own figures on that split change, so a choice reading them would move)."""
    engine, result = ran
    config, tables, prepared = data
    test = prepared.splits[-1].tests[0]
    labels = prepared.labels[test.label_timespan].copy()
    at = labels["as_of_date"].isin(list(test.as_of_dates))
    labels.loc[at, prepared.label_name] = 1 - labels.loc[at, prepared.label_name]
    poisoned = dataclasses.replace(prepared, labels={**prepared.labels,
                                                     test.label_timespan: labels})
    engine2, flipped = _run(tmp_path / "poisoned", config, tables, poisoned)

    def chosen(e: Any, r: TemporalResult) -> list[tuple[str, str, list[int]]]:
        m = _members(e, r)
        return sorted((s, k, g["member_group_id"].tolist())
                      for (s, k), g in m.groupby(["split", "method"]))

    assert chosen(engine2, flipped) == chosen(engine, result)
    last = prepared.splits[-1].name
    assert not np.allclose(flipped.metrics.loc[flipped.metrics["split"] == last, "value"],
                           result.metrics.loc[result.metrics["split"] == last, "value"])
    assert all(last not in how.split("over splits ")[1].split(";")[0]
               for how in _members(engine, result)["chosen_by"])


@pytest.mark.parametrize("method", ["probability_average", "rank_average"])
def test_an_ensembles_reasons_are_the_mean_of_its_members_contributions(
        ran: tuple[Any, TemporalResult], method: str) -> None:
    """Oracle: each member's own artefact explained on the same rows (its own encoder), the
    contributions averaged column by column; they add up to the mean of the members' margins
    (the members' log-odds)."""
    engine, result = ran
    model = next(m for m in result.models if m.algorithm == "ensemble"
                 and m.params["method"] == method and m.split == result.data.splits[-1].name)
    test = split_matrices(result.data, result.data.splits[-1]).test.head(40)
    assert model.artefact is not None
    pipeline = load_artefact(model.artefact[1], model.artefact[0])
    got = explain(pipeline, test)
    paths = {m.model_id: m.artefact for m in result.models}
    parts, margins = [], []
    for member_id in _members(engine, result).query(
            "ensemble_model_id == @model.model_id")["member_model_id"]:
        digest, path = paths[int(member_id)]
        own = explain(load_artefact(path, digest), test)
        parts.append(own.contributions.reindex(columns=got.contributions.columns,
                                               fill_value=0.0))
        margins.append(own.margin)
    expected = sum(parts) / len(parts)
    assert np.allclose(got.contributions.to_numpy(), expected.to_numpy(), atol=1e-9)
    assert np.allclose(got.margin, np.mean(margins, axis=0), atol=1e-9)
    assert got.method in {"ensemble:coefficient+shap", "ensemble:shap", "ensemble:coefficient"}


@pytest.mark.slow
def test_a_deployed_temporal_ensemble_scores_lists_with_reasons_and_is_not_retrained(
        tmp_path: Path) -> None:
    """The whole project: ``rudi run`` stores the ensemble, explains its last list and shows
    it in the report; deployed, ``rudi score`` lists the development scores of that date with
    reasons; retraining refuses it, saying why."""
    import yaml
    from sqlalchemy import select
    from test_eis import project_config
    from test_production_lists import Deployed, _score

    from rudikit.monitoring.list_retrain import retrain_lists
    from rudikit.monitoring.retrain import RetrainError
    from rudikit.run.develop import run_project
    from rudikit.service.deploy import deploy
    from rudikit.store import list_tables as lt
    from rudikit.store import tables as t

    folder = tmp_path / "project"
    (folder / "events").mkdir(parents=True)
    for name, table in synthetic_tables().items():
        table.to_parquet(folder / "events" / f"{name}.parquet")
    config = project_config(folder / "events")
    config["temporal"]["models"] += [
        {"algorithm": "logistic_regression", "params": {"C": 1.0}},
        {"algorithm": "ensemble", "name": "ensemble of 2", "params": {"members": 2}}]
    config["temporal"]["stability"].update({"n_estimators": [5], "resamples": 0,
                                            "drop_sources": []})
    config["production"] = {"frequency": "monthly", "cool_off_days": 45}
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_project(folder, write_report=write_run_report_and_cards)
    assert result.selected is not None and result.selected.algorithm != "ensemble"
    html = result.report_path.read_text(encoding="utf-8")  # type: ignore[union-attr]
    assert 'id="ensemble-table"' in html and "ensemble of 2" in html
    ensemble = next(m for m in result.models if m.algorithm == "ensemble"
                    and m.split == result.selected.split)
    engine = open_store(None, folder)
    deploy(engine, ensemble.model_group_id, reason="tests", by="pytest",
           model_id=ensemble.model_id)
    deployed = Deployed(folder, engine, ensemble.model_id, ensemble.model_group_id)
    with engine.connect() as conn:
        dev = pd.DataFrame(conn.execute(select(t.predictions.c.entity_id, t.predictions.c.score,
                                               t.predictions.c.as_of_date).where(
            t.predictions.c.model_id == ensemble.model_id)).mappings().all())
        stored_reasons = conn.execute(select(t.individual_importances.c.method).where(
            t.individual_importances.c.model_id == ensemble.model_id)).scalars().all()
    assert stored_reasons and set(stored_reasons) <= {"ensemble:coefficient+shap",
                                                      "ensemble:coefficient", "ensemble:shap"}
    when = pd.Timestamp(dev["as_of_date"].min()).tz_localize(None).normalize()
    listed = _score(deployed, as_of=when)
    prod = deployed.rows(select(lt.production_list_entries))
    assert len(prod) == listed.lists[0].scored
    joined = dev.merge(prod, on="entity_id", suffixes=("_dev", "_prod"), validate="one_to_one")
    np.testing.assert_allclose(joined["score_prod"], joined["score_dev"], rtol=0, atol=1e-9)
    top = prod[prod["rank"].notna() & (prod["rank"] <= 5)]
    assert all(isinstance(r, list) and r for r in top["reasons"])
    with pytest.raises(RetrainError, match="is an ensemble: retraining refits one model group"):
        retrain_lists(deployed.project(), folder, engine, by="pytest")
    engine.dispose()


def _summary(group: int, split: str, auc: float | None = None, *, passed: bool | None = None,
             met: int = 0, statuses: dict[str, str] | None = None) -> Any:
    """A stored model as selection reads it: validation ROC AUC and requirement verdicts."""
    from rudikit.evaluation.metrics import MetricValue
    from rudikit.run.engine import ModelSummary
    from rudikit.store.queries.fairness import MET, NOT_MET

    validation = None if auc is None else {("roc_auc", ""): MetricValue("roc_auc", "", auc,
                                                                          None, None, 100)}
    checks = {f"r{i}": MET if i < met else NOT_MET for i in range(2)} if auc is not None \
        else None
    return ModelSummary(group * 10, group, "lightgbm", {}, split, {}, 0.1,
                        validation_metrics=validation, validation_score=np.zeros(3),
                        validation_fairness_passed=passed, validation_statuses=checks,
                        requirement_statuses=statuses or {})


def test_case_members_go_through_selections_fairness_gate_and_tie_order() -> None:
    from rudikit.fairness.tradeoff import NO_GROUP_MEETS
    from rudikit.run.ensembles import top_members

    models = [_summary(1, "s", 0.9, passed=False, met=1), _summary(2, "s", 0.8, passed=True,
                                                                   met=2),
              _summary(3, "s", 0.7, passed=True, met=2), _summary(4, "s", 0.6, passed=True,
                                                                  met=2),
              _summary(9, "other", 0.99, passed=True, met=2)]
    plain, _ = top_members(models, "s", "roc_auc", 2)
    assert [m.model_group_id for m in plain] == [1, 2]
    gated, how = top_members(models, "s", "roc_auc", 2, require_fairness=True)
    assert [m.model_group_id for m in gated] == [2, 3]
    assert "among the 3 of 4 groups meeting every fairness requirement" in how
    # a tie on the metric goes to the group meeting more requirements, then the lower id
    tied = [_summary(5, "s", 0.8, met=0), _summary(6, "s", 0.8, met=2),
            _summary(7, "s", 0.8, met=2)]
    assert [m.model_group_id for m in top_members(tied, "s", "roc_auc", 3)[0]] == [6, 7, 5]
    # none meets them: the plain best, said so (as selection does)
    failing = [_summary(g, "s", 0.9 - g / 10, passed=False) for g in (1, 2, 3)]
    none, how = top_members(failing, "s", "roc_auc", 2, require_fairness=True)
    assert [m.model_group_id for m in none] == [1, 2] and NO_GROUP_MEETS in how


def test_temporal_members_go_through_the_audition_fairness_gate_on_earlier_splits() -> None:
    from rudikit.models.audition import Rule
    from rudikit.run.ensembles import audition_members
    from rudikit.store.queries.fairness import MET, NOT_MET

    times = {"s1": D("2010-01-01"), "s2": D("2011-01-01"), "s3": D("2012-01-01")}
    value = {("s1", 1): .9, ("s2", 1): .9, ("s1", 2): .5, ("s2", 2): .6, ("s1", 3): .4,
             ("s2", 3): .4, ("s1", 4): .3, ("s2", 4): .3,
             # the tested split: group 4 best by far, group 2 failing there (never read)
             ("s3", 1): .1, ("s3", 2): .1, ("s3", 3): .1, ("s3", 4): .99}
    values = pd.DataFrame([{"model_group_id": g, "split": s, "split_time": times[s], "value": v}
                           for (s, g), v in value.items()])
    failing = {("s1", 1), ("s3", 2)}
    models = [_summary(g, s, statuses={"gap": NOT_MET if (s, g) in failing else MET})
              for s, g in value]
    rules = [Rule("best_average_value")]
    plain, _ = audition_members(models, values, ["s1", "s2"], "s3", rules, 2, False)
    assert plain == [1, 2]
    gated, how = audition_members(models, values, ["s1", "s2"], "s3", rules, 2, True)
    assert gated == [2, 3]
    assert "among the 3 of 4 model groups that meet every fairness requirement" in how
    assert "over splits s1, s2" in how


def test_a_bad_temporal_ensemble_is_refused_by_its_key_path(data: Any, tmp_path: Path) -> None:
    from rudikit.config import TemporalError

    _, tables, prepared = data
    bad = experiment(models=[*MODELS[:3], {"algorithm": "ensemble", "params": {
        "members": [9], "method": ["median"]}}], bootstrap=0)
    engine = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(TemporalError) as caught:
        run_temporal(bad, tables, engine=engine, run_id=1, artefacts_dir=tmp_path,
                     data=prepared)
    assert str(caught.value) == (
        "temporal.models[3].params.method: 'median' is not one of probability_average, "
        "rank_average, stack; temporal.models[3].params.members: 9 members asked, but the grid "
        "has only 4 candidate model group(s)")
