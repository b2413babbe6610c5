"""Random and group splits: partitions, shares, a person never in two partitions, the
validation partition, and the key-path errors for bad settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sqlalchemy import select

from rudikit.config import ProjectError, RandomSplit, load_project, parse_project
from rudikit.data.sources import load_source
from rudikit.features.labels import make_label
from rudikit.features.splits import SplitError, make_split
from rudikit.models.artefacts import load_artefact
from rudikit.run.develop import run_project
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from tests.conftest import example_config, write_project


def people_frame(people: int = 2_000, seed: int = 0) -> pd.DataFrame:
    """Cases of ``people`` people, 1 to 5 cases each."""
    rng = np.random.default_rng(seed)
    person = np.repeat(np.arange(people), rng.integers(1, 6, size=people))
    return pd.DataFrame({"person_id": person, "x": rng.normal(size=len(person))})


def group_split(**values: object) -> RandomSplit:
    return RandomSplit(name="s", kind="group", group_column="person_id", **values)


def test_group_split_60_20_20_keeps_each_person_in_one_partition() -> None:
    frame = people_frame()
    split = make_split(frame, group_split(test_size=0.2, validation_size=0.2, seed=3), "s")
    parts = {"train": split.train, "validation": split.validation, "test": split.test}
    assert sum(len(p) for p in parts.values()) == len(frame)
    assert len(np.unique(np.concatenate(list(parts.values())))) == len(frame)
    people = {name: set(frame["person_id"].iloc[idx]) for name, idx in parts.items()}
    assert not people["train"] & people["validation"]
    assert not people["train"] & people["test"]
    assert not people["validation"] & people["test"]
    n_people = frame["person_id"].nunique()
    for name, share in (("train", 0.6), ("validation", 0.2), ("test", 0.2)):
        assert len(people[name]) / n_people == pytest.approx(share, abs=0.01), name
    for idx in parts.values():
        assert (np.diff(idx) > 0).all()  # sorted positions


def test_validation_leaves_the_test_partition_and_old_splits_unchanged() -> None:
    """Adding a validation partition only splits the training side: the test people are the
    ones the same seed gives without it, so existing projects keep their test sets."""
    frame = people_frame()
    plain = make_split(frame, group_split(test_size=0.2, seed=7), "s")
    assert plain.validation is None
    with_validation = make_split(frame, group_split(test_size=0.2, validation_size=0.25,
                                                    seed=7), "s")
    np.testing.assert_array_equal(plain.test, with_validation.test)
    np.testing.assert_array_equal(
        np.sort(np.concatenate([with_validation.train, with_validation.validation])),
        plain.train)


def test_random_split_with_validation_has_the_requested_shares() -> None:
    frame = people_frame(people=1_000)
    spec = RandomSplit(name="r", kind="random", test_size=0.1, validation_size=0.3, seed=1)
    split = make_split(frame, spec, "splits[0]")
    n = len(frame)
    assert len(split.test) == pytest.approx(0.1 * n, abs=1)
    assert len(split.validation) == pytest.approx(0.3 * n, abs=2)
    assert len(set(split.train) | set(split.validation) | set(split.test)) == n


def test_bad_validation_settings_name_the_key_path() -> None:
    config = example_config()
    config["splits"][1]["validation_size"] = 0.8  # with test_size 0.2 nothing is left to train
    with pytest.raises(ProjectError) as info:
        parse_project(config)
    assert any(p.startswith("splits[1]: ") and "validation_size + test_size must be below 1"
               in p for p in info.value.problems)
    config["splits"][1]["validation_size"] = 0
    with pytest.raises(ProjectError) as info:
        parse_project(config)
    assert any(p.startswith("splits[1].validation_size: ") for p in info.value.problems)
    with pytest.raises(SplitError, match=r"splits\[2\]: need at least 2 rows"):
        make_split(people_frame().head(1), group_split(validation_size=0.2), "splits[2]")


def test_run_chooses_on_validation_rows_and_reports_test_rows(tmp_path: Path) -> None:
    """With a validation partition the stored validation figures are the models' own scores
    on those rows (sklearn as the oracle), the choice is the best of them, and the plain
    metrics stay the test rows'."""
    folder = write_project(
        tmp_path / "proj",
        splits=[{"name": "r60", "kind": "random", "test_size": 0.2, "validation_size": 0.2,
                 "seed": 4}],
        evaluation={"bootstrap": 0, "selection": {"metric": "roc_auc", "split": "r60"}})
    result = run_project(folder, write_report=False)
    project = load_project(folder)
    engine = open_store(None, folder)
    with engine.connect() as conn:
        models = pd.DataFrame(conn.execute(select(t.models)).mappings().all())
        evals = pd.DataFrame(conn.execute(select(t.evaluations)).mappings().all())
        preds = pd.DataFrame(conn.execute(select(t.predictions)).mappings().all())
    frame = load_source(project.data.sources[0], folder, "data.sources[0]").frame
    y, keep = make_label(frame, project.label)
    data, y = frame.loc[keep].reset_index(drop=True), y[keep]
    split = make_split(data, project.splits[0], "splits[0]", project.data.knowledge_date)
    auc = evals[evals["parameter"] == ""].pivot(index="model_id", columns="metric",
                                                  values="value")
    fitted = models[models["artefact_path"].str.endswith(".skops")]  # not the mitigation
    assert len(fitted) == 3
    for model in fitted.itertuples():
        pipeline = load_artefact(model.artefact_path, model.artefact_hash, folder)
        on_validation = pipeline.predict_proba(data.iloc[split.validation])[:, 1]
        assert auc.loc[model.id, "validation_roc_auc"] == pytest.approx(
            skm.roc_auc_score(y[split.validation], on_validation), abs=1e-9)
        mine = preds[preds["model_id"] == model.id]
        assert set(mine["entity_id"]) == set(data[project.data.entity_id].iloc[split.test]
                                             .astype(str))
        assert auc.loc[model.id, "roc_auc"] == pytest.approx(
            skm.roc_auc_score(mine["label"], mine["score"]), abs=1e-9)
    selectable = {s.model_id for s in result.models if s.selectable}
    best = auc.loc[sorted(selectable), "validation_roc_auc"].idxmax()
    assert result.selected.model_id == best
    assert models.set_index("id").loc[best, "selected"]
    reason = result.selection_reason
    assert "on the validation rows of split 'r60'" in reason
    assert f"test rows (the final figure) {auc.loc[best, 'roc_auc']:.3f}" in reason


def test_temporal_split_with_train_start_and_test_end_bounds_both_sides() -> None:
    from rudikit.config import TemporalSplit

    days = pd.date_range("2020-01-01", periods=120, freq="D", tz="UTC")
    frame = pd.DataFrame({"when": days})
    spec = TemporalSplit(name="t", kind="temporal", date_column="when",
                         train_start="2020-01-15", test_start="2020-03-01",
                         test_end="2020-03-15")
    split = make_split(frame, spec, "splits[0]")
    assert days[split.train].min() == pd.Timestamp("2020-01-15", tz="UTC")
    assert days[split.train].max() == pd.Timestamp("2020-02-29", tz="UTC")
    assert days[split.test].tolist() == list(pd.date_range("2020-03-01", "2020-03-14",
                                                           tz="UTC"))
