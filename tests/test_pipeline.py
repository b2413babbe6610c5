"""`rudi run` end to end on a small synthetic project, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sqlalchemy import func, select

from rudikit.config import load_project
from rudikit.data.sources import load_source
from rudikit.features.labels import make_label
from rudikit.models.artefacts import ArtefactError, load_artefact
from rudikit.reports.run_report import write_run_report_and_cards
from rudikit.run.develop import RationaleIncomplete, run_project
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.queries import fairness as fairness_q
from tests.conftest import example_config, write_project


def test_run_stores_evaluations_that_match_sklearn(store, tmp_path: Path) -> None:
    url, schema = store
    folder = write_project(tmp_path / "proj")
    result = run_project(folder, url=url, schema=schema, write_report=write_run_report_and_cards)
    engine = open_store(url, schema=schema)
    assert result.data_origin == "synthetic"
    assert len(result.models) == 3 * 2  # 3 model groups x 2 splits
    assert result.selected is not None and result.selected.split == "last_month"
    with engine.connect() as conn:
        models = pd.DataFrame(conn.execute(select(t.models)).mappings().all())
        preds = pd.DataFrame(conn.execute(select(t.predictions)).mappings().all())
        evals = pd.DataFrame(conn.execute(select(t.evaluations)).mappings().all())
        snaps = conn.execute(select(t.data_snapshots)).mappings().all()
        imps = pd.DataFrame(conn.execute(select(t.feature_importances)).mappings().all())
    assert len(snaps) == 1 and snaps[0]["rows"] == 4500 and len(snaps[0]["checksum"]) == 64
    # permutation importance is computed for the chosen model only, one row per input column
    assert set(imps["model_id"]) == {result.selected.model_id}
    assert imps["feature"].is_unique and (imps["std"] >= 0).all()
    assert imps["p_value"].between(0, 1).all()
    assert models["selected"].sum() == 1
    assert (models["train_seconds"] > 0).all()
    for model_id, rows in preds.groupby("model_id"):
        got = evals[evals["model_id"] == model_id].set_index(["metric", "parameter"])["value"]
        y, s = rows["label"].to_numpy(), rows["score"].to_numpy()
        assert got[("roc_auc", "")] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-9)
        assert got[("average_precision", "")] == pytest.approx(
            skm.average_precision_score(y, s), abs=1e-9)
        assert got[("brier", "")] == pytest.approx(skm.brier_score_loss(y, s), abs=1e-9)
        pred = (s >= 0.5).astype(int)
        if pred.sum():
            assert got[("precision", "0.5")] == pytest.approx(skm.precision_score(y, pred))
        assert got[("recall", "0.5")] == pytest.approx(skm.recall_score(y, pred))
        k = int(np.floor(len(y) * 0.10))
        top = np.argsort(-s, kind="stable")[:k]
        if len(np.unique(s)) == len(s):  # no ties: plain sorting is the oracle
            assert got[("precision_at_k", "10_pct")] == pytest.approx(y[top].mean())
        assert got[("train_seconds", "")] > 0
    assert result.report_path is not None and result.report_path.exists()
    html = result.report_path.read_text()
    assert "Chosen model" in html and "Synthetic data" in html and "ROC curves" in html
    assert "Status finished" in html  # written once the run is marked finished
    with open_store(url, schema=schema).connect() as conn:
        stored = conn.execute(select(t.runs.c.status, t.runs.c.report_path).where(
            t.runs.c.id == result.run_id)).one()
    assert stored == ("finished", str(result.report_path))


def test_stored_artefact_reproduces_stored_scores_and_refuses_tampering(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "proj")
    result = run_project(folder)
    engine = open_store(None, folder)
    project = load_project(folder)
    with engine.connect() as conn:
        model = conn.execute(select(t.models).where(
            t.models.c.id == result.selected.model_id)).mappings().one()
        stored = pd.DataFrame(conn.execute(select(t.predictions).where(
            t.predictions.c.model_id == model["id"])).mappings().all())
    pipeline = load_artefact(model["artefact_path"], model["artefact_hash"], folder)
    loaded = load_source(project.data.sources[0], folder, "data.sources[0]")
    frame = loaded.frame.set_index("record_id").loc[stored["entity_id"]].reset_index()
    again = pipeline.predict_proba(frame[project.features.input_columns])[:, 1]
    np.testing.assert_allclose(again, stored["score"].to_numpy(), rtol=1e-10)
    y, _ = make_label(frame, project.label)
    np.testing.assert_array_equal(y, stored["label"].to_numpy())
    path = folder / model["artefact_path"]  # stored relative to the project
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ArtefactError, match="refusing to load"):
        load_artefact(path, model["artefact_hash"])


def test_rerun_keeps_history(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "proj")
    first = run_project(folder)
    second = run_project(folder)
    engine = open_store(None, folder)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.runs)).scalar() == 2
        # 3 groups x 2 splits + the mitigated chosen model, per run
        assert conn.execute(select(func.count()).select_from(t.models)).scalar() == 14
        assert conn.execute(select(func.count()).select_from(t.model_groups)).scalar() == 4
    assert {m.model_group_id for m in first.models} == {m.model_group_id for m in second.models}
    for a, b in zip(first.models, second.models, strict=True):  # seeded: the same numbers
        keys = sorted(a.metrics)
        np.testing.assert_array_equal([a.metrics[k].value for k in keys],
                                      [b.metrics[k].value for k in keys])


def test_empty_rationale_trains_nothing(tmp_path: Path) -> None:
    config = example_config()
    config["rationale"]["problem"] = ""
    config["rationale"]["cost_of_false_negative"] = ""
    folder = write_project(tmp_path / "proj", rationale=config["rationale"])
    with pytest.raises(RationaleIncomplete) as info:
        run_project(folder, write_report=write_run_report_and_cards)
    assert info.value.missing == ["rationale.problem", "rationale.cost_of_false_negative"]
    assert not (folder / ".rudi" / "models").exists()


def test_a_failing_run_is_marked_failed_and_earlier_runs_stay(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "proj")
    run_project(folder)
    config = example_config()
    bad_splits = [{"name": "last_month", "kind": "temporal", "test_start": "2031-01-01"}]
    write_project(folder, splits=bad_splits)
    with pytest.raises(ValueError, match=r"splits\[0\].test_start: no test rows from 2031"):
        run_project(folder)
    engine = open_store(None, folder)
    with engine.connect() as conn:
        runs = conn.execute(select(t.runs.c.status).order_by(t.runs.c.id)).scalars().all()
        models = conn.execute(select(func.count()).select_from(t.models)).scalar()
    assert runs == ["finished", "failed"]
    assert models == 7
    assert config  # the example itself is untouched


def test_a_bad_model_parameter_fails_before_any_model_is_fitted(tmp_path: Path) -> None:
    models = [{"algorithm": "rate_by_category", "params": {"column": "object_of_search"}},
              {"algorithm": "logistic_regression", "params": {"C": [-1.0]}},
              {"algorithm": "lightgbm", "params": {"min_child_samples": -5}}]
    folder = write_project(tmp_path / "proj", models=models)
    with pytest.raises(ValueError, match=r"models: 'logistic_regression\(C=-1.0\)': .*'C'"):
        run_project(folder)
    models[1]["params"] = {"C": [1.0]}
    write_project(folder, models=models)
    with pytest.raises(ValueError, match=r"models: 'lightgbm\(min_child_samples=-5\)'"):
        run_project(folder)
    engine = open_store(None, folder)
    with engine.connect() as conn:
        runs = conn.execute(select(t.runs.c.status)).scalars().all()
        fitted = conn.execute(select(func.count()).select_from(t.models)).scalar()
    assert runs == ["failed", "failed"] and fitted == 0


def test_fairness_is_audited_stored_and_mitigated(tmp_path: Path) -> None:
    """The mitigation targets one of the project's requirements with a margin, fitted on the
    split's validation rows (the cross-fitted path is tested in test_fairness_mitigation)."""
    config = example_config()
    fairness, splits = config["fairness"], config["splits"]
    splits[0]["validation_start"] = "2020-01-01"
    fairness["mitigation"] = {"requirement": fairness["requirements"][0]["name"],
                              "confidence": 0.9, "objective": "f1"}
    folder = write_project(tmp_path / "proj", fairness=fairness, splits=splits)
    result = run_project(folder, write_report=write_run_report_and_cards)
    engine = open_store(None, folder)
    project = load_project(folder)
    with engine.connect() as conn:
        audits = pd.DataFrame(conn.execute(select(t.fairness_audits)).mappings().all())
        all_reqs = pd.DataFrame(conn.execute(select(t.fairness_requirements)).mappings().all())
        chosen = result.selected.model_id
        stored = pd.DataFrame(conn.execute(select(t.predictions).where(
            t.predictions.c.model_id == chosen)).mappings().all())
    fitting = all_reqs["selection"].str.startswith(("validation:", "fitting:"))
    reqs = all_reqs[~fitting]
    every = {m.model_id for m in result.models} | {result.mitigated.model_id}
    assert set(audits["model_id"]) == every
    assert set(reqs["model_id"]) == every
    assert (reqs.groupby("model_id").size() == len(project.fairness.requirements)).all()
    # the stored per-group precision equals scikit-learn's on the stored predictions
    source = load_source(project.data.sources[0], folder, "data.sources[0]").frame
    gender = source.set_index("record_id").loc[stored["entity_id"], "gender"].fillna(
        "(missing)").to_numpy()
    threshold = project.fairness.at.threshold
    for group in ("Male", "Female"):
        mask = gender == group
        pred = (stored["score"].to_numpy()[mask] >= threshold).astype(int)
        row = audits[(audits["model_id"] == chosen) & (audits["attribute"] == "gender")
                     & (audits["group_value"] == group) & (audits["metric"] == "precision")]
        assert len(row) == 1 and row["selection"].iloc[0] == f"threshold={threshold:g}"
        if pred.sum():
            assert row["value"].iloc[0] == pytest.approx(
                skm.precision_score(stored["label"].to_numpy()[mask], pred), abs=1e-12)
        assert row["n"].iloc[0] == mask.sum()
    # the mitigated model is its own group, with out-of-sample decisions and a frontier
    mitigated = result.mitigated
    assert mitigated.algorithm == f"mitigated_{result.selected.algorithm}"
    assert mitigated.model_group_id != result.selected.model_group_id
    assert ("frontier_largest_gap", "unmitigated") in mitigated.metrics
    # the mitigated model's verdicts on its fitting rows are stored apart, one per requirement
    assert set(all_reqs.loc[fitting, "model_id"]) == {mitigated.model_id}
    assert fitting.sum() == len(project.fairness.requirements)
    assert (all_reqs.loc[fitting, "selection"] == "validation:threshold=0.25").all()
    # stored on the validation rows like every model group's, for the trade-off plot
    assert ("validation_roc_auc", "") in mitigated.metrics
    assert ("mitigation_margin_pp", "(all)") in mitigated.metrics
    n_reqs = len(project.fairness.requirements)
    assert len(fairness_q.requirements(engine, [mitigated.model_id])) == n_reqs  # test rows
    assert len(fairness_q.fitting_requirements(engine, [mitigated.model_id])) == n_reqs
    for name in (r.name for r in project.fairness.requirements):
        # the variant targeting each requirement, judged on the fitting rows
        assert mitigated.metrics[("target_requirements", name)].value == len(
            project.fairness.requirements)
        assert ("mitigation_held_out_gap_pp", name) in mitigated.metrics
        assert ("validation_requirement_met", name) in mitigated.metrics
        assert ("mitigation_fitting_gap_pp", name) in mitigated.metrics
    html = result.report_path.read_text()
    assert "Requirements (split last_month)" in html and "frontier" in html.lower()
    assert 'id="mitigation-held-out"' in html

