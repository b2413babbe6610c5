"""``features.group_size``: the rows recorded together (people searched together), counted
when the rows are loaded, a numeric model input; in the service an optional field that is 1
when left out or null. Oracles: a frame counted by hand; the run's stored scores."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
from conftest import example_config, selected_model, write_project
from sqlalchemy import select

from rudikit.config import ProjectError, load_project, parse_project
from rudikit.data.group_size import group_sizes, with_group_size
from rudikit.data.sources import unify
from rudikit.models.artefacts import load_artefact
from rudikit.service.observation_schema import ObservationSchema
from rudikit.service.observations import parse_observations
from rudikit.service.scoring import Scorer
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.production_inputs import InputSpec

BY = ["force", "datetime", "latitude", "longitude"]


def test_group_sizes_count_the_rows_sharing_every_by_value() -> None:
    at = pd.Timestamp("2020-01-05 14:01", tz="UTC")
    frame = pd.DataFrame({
        "force": ["essex", "essex", "essex", "essex", "kent", "syorks", "syorks", "syorks"],
        "datetime": [at, at, at, at + pd.Timedelta(hours=1), at, at, at, at],
        "latitude": [51.1, 51.1, 51.2, 51.1, 51.1, np.nan, np.nan, np.nan],
        "longitude": [0.5, 0.5, 0.5, 0.5, 0.5, np.nan, np.nan, 0.5],
        "outcome": [1, 0, 0, 1, 1, 0, 1, 0]})
    # by hand: rows 0 and 1 share everything; row 2 another place, row 3 another hour, row 4
    # another force; rows 5 and 6 have no coordinates at the same force and time (a missing
    # value equals a missing value); row 7 a longitude
    np.testing.assert_array_equal(group_sizes(frame, BY), [2, 2, 1, 1, 1, 2, 2, 1])
    np.testing.assert_array_equal(group_sizes(frame, ["force"]), [4, 4, 4, 4, 1, 3, 3, 3])
    out = with_group_size(frame, BY, "n_together")
    assert "n_together" not in frame and out["n_together"].tolist() == [2, 2, 1, 1, 1, 2, 2, 1]
    # the outcome is never read: another label gives the same counts
    np.testing.assert_array_equal(group_sizes(frame.assign(outcome=0), BY),
                                  group_sizes(frame, BY))
    assert len(group_sizes(frame.iloc[:0], BY)) == 0
    with pytest.raises(ValueError, match="features.group_size.column"):
        with_group_size(frame, BY, "outcome")


def test_group_size_config_errors_name_the_key() -> None:
    config = example_config()
    config["features"]["group_size"] = {"by": ["force", "force"]}
    with pytest.raises(ProjectError, match=r"features\.group_size\.by"):
        parse_project(config)
    config["features"]["group_size"] = {"by": ["force"], "column": "latitude"}
    with pytest.raises(ProjectError, match="group_size.column"):
        parse_project(config)
    config["features"]["group_size"] = {"by": ["force", "no_such_column"]}
    project = parse_project(config)
    _, problems = project.features.resolve(["force", "latitude", "longitude"])
    assert "features.group_size.by[1]: no column 'no_such_column' in the data" in problems


@pytest.fixture(scope="module")
def grouped_run(tmp_path_factory):
    """The small synthetic project with a group size by force and object of search, run once."""
    config = example_config()
    features = config["features"]
    features["group_size"] = {"by": ["force", "object_of_search"]}  # real groups on few rows
    folder = write_project(tmp_path_factory.mktemp("grouped"), features=features,
                           fairness={}, splits=config["splits"][:1])
    from rudikit.run.develop import run_project

    result = run_project(folder)
    engine = open_store(None, folder)
    yield folder, result, engine
    engine.dispose()


def test_the_service_scores_group_size_as_the_run_did_and_defaults_it_to_1(
        grouped_run) -> None:
    folder, _, engine = grouped_run
    _, stored, pipeline = selected_model(engine, folder)
    encoder = pipeline.named_steps["encode"]
    assert encoder.numeric[-1] == "group_size" and encoder.defaults == {"group_size": 1.0}
    frame, _ = unify(load_project(folder), folder)
    assert frame["group_size"].min() >= 1 and frame["group_size"].nunique() > 3
    np.testing.assert_array_equal(
        frame["group_size"], frame.groupby(["force", "object_of_search"], dropna=False)
        ["force"].transform("size"))  # pandas' own count as the oracle
    rows = frame.set_index(frame["record_id"].astype(str)).loc[stored["entity_id"]]
    rows = rows[encoder.input_columns].head(300)

    def jsonable(v):
        return None if pd.isna(v) else v.isoformat() if isinstance(v, pd.Timestamp) else v

    body = [{"observation_id": f"o{i}", **{c: jsonable(v) for c, v in row.items()}}
            for i, row in enumerate(rows.to_dict("records"))]
    schema = ObservationSchema(encoder, max_batch=1000)
    scorer = Scorer(pipeline)
    parsed = parse_observations(schema, orjson.dumps({"observations": body}))
    np.testing.assert_allclose(scorer.score([o.values for o in parsed.observations]),
                               stored["score"].head(300), rtol=0, atol=1e-12)
    # left out or null: scored as a group of 1, exactly as the pipeline scores group_size = 1
    left_out = [{k: v for k, v in b.items() if k != "group_size"} for b in body[:50]]
    null = [{**b, "group_size": None} for b in body[:50]]
    one = pipeline.predict_proba(rows.head(50).assign(group_size=1.0))[:, 1]
    for sent in (left_out, null):
        parsed = parse_observations(schema, orjson.dumps({"observations": sent}))
        assert {o.values["group_size"] for o in parsed.observations} == {1.0}
        assert {o.raw["group_size"] for o in parsed.observations} == {1.0}  # stored as scored
        np.testing.assert_allclose(scorer.score([o.values for o in parsed.observations]), one,
                                   rtol=0, atol=1e-12)
    many = pipeline.predict_proba(rows.head(50).assign(group_size=6.0))[:, 1]
    assert not np.allclose(one, many)  # the model does read it
    published = schema.json_schemas()["Observation"]
    assert "group_size" not in published["required"]
    assert published["properties"]["group_size"]["default"] == 1.0
    assert "force" in published["required"]  # every other field stays required
    for bad in (0, -2, "0.5"):  # a count of rows is at least 1, as in every training row
        with pytest.raises(Exception) as caught:
            parse_observations(schema, orjson.dumps(
                {"observations": [{**body[0], "group_size": bad}]}))
        assert "group_size" in str(caught.value) and "greater than or equal to 1" in str(
            caught.value)


def test_the_monitor_stores_the_group_size_of_production_inputs_as_a_number() -> None:
    features = parse_project({**example_config()}).features.model_dump()
    assert InputSpec.of(features, "datetime").kind("group_size") == "number"


def test_the_model_card_lists_the_group_size_among_the_inputs(grouped_run, tmp_path) -> None:
    from rudikit.reports.cards import write_run_cards

    _, result, engine = grouped_run
    written = write_run_cards(engine, result.run_id, tmp_path)
    card = next(p for p in written if p.name.startswith("model-card") and p.suffix == ".md")
    assert ("group size: group_size (rows with the same force, object_of_search; 1 when a "
            "request leaves it out)") in card.read_text(encoding="utf-8")


def test_a_feature_pattern_does_not_take_the_count_and_a_column_read_twice_is_named() -> None:
    from rudikit.config import Features

    columns = ["x1", "x2", "kind", "gate", "group_size"]  # the count is already added
    features = Features(numeric=["x*", "g*"], categorical=["kind"],
                        group_size={"by": ["kind"]})
    resolved, problems = features.resolve(columns)
    assert resolved.numeric == ["x1", "x2", "gate"] and not problems
    assert resolved.numeric_inputs == ["x1", "x2", "gate", "group_size"]
    _, problems = Features(numeric=["*"], categorical=["kind"]).resolve(columns[:4])
    assert problems == ["features.numeric: column 'kind' is also in features.categorical; a "
                        "column is read as one kind (narrow the pattern)"]


def test_data_that_already_has_the_counts_name_is_a_source_error(tmp_path) -> None:
    from rudikit.data.sources import SourceError

    config = example_config()
    folder = write_project(tmp_path / "proj", features={
        **config["features"], "group_size": {"by": ["force"], "column": "street_name"}})
    project = load_project(folder)
    with pytest.raises(SourceError, match="features.group_size.column"):
        unify(project, folder)


def test_an_ensemble_keeps_the_group_size_optional_in_the_service(grouped_run) -> None:
    """An ensemble's encoder is rebuilt from its members' columns; the count must stay an
    optional field with the members' default (a deployed ensemble once required it)."""
    from rudikit.models.ensemble import ensemble_pipeline

    folder, _, engine = grouped_run
    with engine.connect() as conn:
        models = conn.execute(select(t.models).order_by(t.models.c.id)).mappings().all()
    members = [load_artefact(m["artefact_path"], m["artefact_hash"], folder)
               for m in models[:2]]
    assert all(m.named_steps["encode"].defaults == {"group_size": 1.0} for m in members)
    ensemble, _ = ensemble_pipeline(members, "probability_average")
    frame, _ = unify(load_project(folder), folder)
    encoder = ensemble.named_steps["encode"]
    ensemble.fit(frame[encoder.input_columns], np.arange(len(frame)) % 2)  # fits the encoder
    assert encoder.defaults == {"group_size": 1.0}
    published = ObservationSchema(encoder, max_batch=10).json_schemas()["Observation"]
    assert "group_size" not in published["required"] and "force" in published["required"]
    assert published["properties"]["group_size"]["default"] == 1.0
