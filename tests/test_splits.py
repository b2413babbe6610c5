"""Random and group splits: partitions, shares, a person never in two partitions, the
validation partition, and the key-path errors for bad settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import metrics as skm
from sqlalchemy import select

from rudikit.config import ColumnSplit, ProjectError, RandomSplit, load_project, parse_project
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
    result = run_project(folder)
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


def column_split(**values: object) -> ColumnSplit:
    return ColumnSplit(name="study", kind="column", column="side", **values)


def test_column_split_reproduces_the_partition_the_column_names() -> None:
    frame = people_frame()
    rng = np.random.default_rng(1)
    frame["side"] = rng.choice(["TRAIN", "dev", "holdout"], size=len(frame), p=[.6, .2, .2])
    split = make_split(frame, column_split(train=["TRAIN"], validation=["dev"],
                                           test=["holdout"]), "splits[0]")
    for idx, value in ((split.train, "TRAIN"), (split.validation, "dev"),
                       (split.test, "holdout")):
        np.testing.assert_array_equal(idx, np.flatnonzero(frame["side"].to_numpy() == value))
    frame["side"] = np.where(frame["side"] == "holdout", "test", "train")
    assert make_split(frame, column_split(), "splits[0]").validation is None


def test_column_split_refuses_a_person_on_two_sides_naming_them() -> None:
    frame = people_frame(people=50)
    frame["side"] = np.where(frame["person_id"] < 25, "train", "test")
    make_split(frame, column_split(group_column="person_id"), "splits[0]")  # clean: accepted
    first_of_7 = frame.index[frame["person_id"] == 7][0]
    frame.loc[first_of_7, "side"] = "test"
    if (frame["person_id"] == 7).sum() == 1:  # person 7 needs a second case to straddle
        frame = pd.concat([frame, frame.loc[[first_of_7]].assign(side="train")],
                          ignore_index=True)
    with pytest.raises(SplitError, match=r"splits\[0\]\.group_column: 1 value of 'person_id' "
                                         r"appears in more than one partition, e\.g\. '7' "
                                         r"\(test and train\)"):
        make_split(frame, column_split(group_column="person_id"), "splits[0]")


def test_column_split_refuses_rows_that_name_no_partition() -> None:
    frame = people_frame(people=20)
    frame["side"] = "train"
    frame.loc[:2, "side"] = "tset"
    frame.loc[3, "side"] = None
    with pytest.raises(SplitError, match=r"splits\[1\]\.column: 4 rows of 'side' name no "
                                         r"partition: 'tset' \(3 rows\), '\(missing\)' \(1 rows\)"):
        make_split(frame, column_split(), "splits[1]")
    frame["side"] = "train"
    with pytest.raises(SplitError, match=r"splits\[1\]\.test: no row of 'side' has the value "
                                         "'test'"):
        make_split(frame, column_split(), "splits[1]")
    config = example_config()
    config["splits"] = [{"name": "s", "kind": "column", "column": "side",
                         "train": ["a"], "test": ["a"]}]
    with pytest.raises(ProjectError) as info:
        parse_project(config)
    assert any(p.startswith("splits[0]: ") and "'a' is listed under both train and test" in p
               for p in info.value.problems), info.value.problems


def test_run_with_a_column_split_tests_on_the_named_rows(tmp_path: Path) -> None:
    """End to end: the stored test predictions are exactly the rows the column calls test."""
    synthetic = write_project(tmp_path / "gen")
    source = load_project(synthetic).data.sources[0]
    frame = load_source(source, synthetic, "data.sources[0]").frame
    month = pd.to_datetime(frame["datetime"], utc=True).dt.month
    frame["side"] = np.select([month % 3 == 0, month % 3 == 1], ["test", "validation"], "train")
    frame.to_parquet(tmp_path / "searches.parquet")
    folder = write_project(
        tmp_path / "proj",
        splits=[{"name": "study", "kind": "column", "column": "side"}],
        evaluation={"bootstrap": 0, "selection": {"metric": "roc_auc", "split": "study"}})
    config = yaml.safe_load((folder / "rudi.yaml").read_text(encoding="utf-8"))
    config["data"]["sources"] = [{"name": "searches", "kind": "parquet",
                                  "path": str(tmp_path / "searches.parquet")}]
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = run_project(folder)
    project = load_project(folder)
    y, keep = make_label(frame, project.label)
    test_ids = set(frame.loc[keep & (frame["side"] == "test"), project.data.entity_id]
                   .astype(str))
    engine = open_store(None, folder)
    with engine.connect() as conn:
        preds = pd.DataFrame(conn.execute(
            select(t.predictions).where(t.predictions.c.model_id == result.selected.model_id)
        ).mappings().all())
    assert set(preds["entity_id"]) == test_ids
    assert "on the validation rows of split 'study'" in result.selection_reason
