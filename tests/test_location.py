"""Location features (features.location): H3 cells and the nearest town as folded categories,
learnt on training rows only, in the saved pipeline, served from raw coordinates exactly as the
run scored them, explained by name, and mapped per cell in the run report."""

from __future__ import annotations

import h3
import numpy as np
import orjson
import pandas as pd
import pytest
import reverse_geocode
from conftest import example_config, selected_model, write_project
from sqlalchemy import select

from rudikit.config import ProjectError, load_project, parse_project
from rudikit.features.encoding import TabularEncoder
from rudikit.features.location import (
    CELL,
    MISSING,
    OTHER,
    TOWN,
    LocationEncoder,
    cell_summary,
    coordinates,
    nearest_towns,
)
from rudikit.monitoring.reference import training_rows
from rudikit.reports.location_map import cell_map_figure, training_cells
from rudikit.reports.run_report import write_run_report_and_cards
from rudikit.service.observation_schema import ObservationSchema
from rudikit.service.observations import parse_observations
from rudikit.service.scoring import Scorer, explain_rows, sample_rows
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.queries import evaluations as evaluations_q

# Leeds, London, Manchester, Cardiff, Glasgow, and a point at sea
POINTS = [(53.7997, -1.5492), (51.5072, -0.1276), (53.4808, -2.2426), (51.4816, -3.1791),
          (55.8642, -4.2518), (54.0, -4.5)]


def points_frame(points: list[tuple[float, float]], repeat: list[int]) -> pd.DataFrame:
    rows = [p for p, k in zip(points, repeat, strict=True) for _ in range(k)]
    return pd.DataFrame(rows, columns=["latitude", "longitude"])


@pytest.mark.parametrize("resolution", [4, 6, 9])
def test_cells_are_h3s_own_and_missing_points_are_missing(resolution) -> None:
    frame = points_frame(POINTS, [1] * len(POINTS))
    frame.loc[len(frame)] = [np.nan, -1.5]  # no latitude
    frame.loc[len(frame)] = [95.0, -1.5]  # a point that cannot exist
    encoder = LocationEncoder(h3_resolution=resolution, town=False, min_count=1).fit(frame)
    cells = encoder.transform(frame)[CELL].tolist()
    assert cells[:len(POINTS)] == [h3.latlng_to_cell(lat, lon, resolution)
                                   for lat, lon in POINTS]
    assert cells[len(POINTS):] == [MISSING, MISSING]
    # one row as the service encodes it gives the same categories
    assert [encoder.record(lat, lon)[0] for lat, lon in POINTS] == cells[:len(POINTS)]
    assert encoder.record(None, -1.5) == [MISSING]


def test_towns_are_found_offline_by_name() -> None:
    frame = points_frame(POINTS[:4], [1] * 4)
    encoder = LocationEncoder(h3_resolution=None, town=True, min_count=1).fit(frame)
    towns = encoder.transform(frame)[TOWN].tolist()
    assert towns == [p["city"] for p in reverse_geocode.search(POINTS[:4], 10_000)]
    # GeoNames lists "Manchester City Centre" (pop. 10,000+) apart from Manchester
    assert towns == ["Leeds", "London", "Manchester City Centre", "Cardiff"]


@pytest.mark.parametrize("min_population", [10_000, 50_000])
def test_the_nearest_town_is_reverse_geocodes_everywhere(min_population) -> None:
    # 4,000 points over Great Britain (towns close together, near ties) and the world; the
    # compact lookup must name the place reverse_geocode names at each one
    rng = np.random.default_rng(0)
    latitude = np.r_[rng.uniform(49.8, 58.7, 3000), rng.uniform(-60, 70, 1000)]
    longitude = np.r_[rng.uniform(-6.5, 2.0, 3000), rng.uniform(-180, 180, 1000)]
    expected = [p["city"] for p in
                reverse_geocode.search(list(zip(latitude, longitude, strict=True)),
                                       min_population)]
    assert nearest_towns(latitude, longitude, min_population).tolist() == expected


def test_folding_is_learnt_on_the_training_rows_only() -> None:
    # training: Leeds 30 rows, London 5; test: London 100 rows, Glasgow 50 (never in training)
    train = points_frame(POINTS[:2], [30, 5])
    test = points_frame([POINTS[1], POINTS[4]], [100, 50])
    encoder = TabularEncoder(location=LocationEncoder(h3_resolution=6, min_count=10))
    encoder.fit(train)
    leeds = h3.latlng_to_cell(*POINTS[0], 6)
    expected = pd.Series([h3.latlng_to_cell(lat, lon, 6) for lat, lon in
                          train.itertuples(index=False)]).value_counts()
    assert encoder.location_.kept_[CELL] == {leeds: 30}
    assert encoder.location_.kept_[CELL] == {c: n for c, n in expected.items() if n >= 10}
    assert encoder.location_.kept_[TOWN] == {"Leeds": 30}
    places = encoder.location_.transform(test)
    assert set(places[CELL]) == {OTHER} and set(places[TOWN]) == {OTHER}
    # the codes: London and Glasgow are the one "other" code, never a category of their own
    codes = encoder.transform(test)
    assert set(codes[:, 0]) == {encoder.lookup_[CELL][OTHER]}
    # fitted with the test rows, London would have been kept: the rows decide, not the place
    both = LocationEncoder(h3_resolution=6, min_count=10).fit(pd.concat([train, test]))
    assert h3.latlng_to_cell(*POINTS[1], 6) in both.kept_[CELL]



def test_a_frame_is_encoded_as_each_of_its_rows_alone() -> None:
    """The frame's path (each distinct place and boolean looked up once) gives, row by row,
    what the service's path gives each row on its own (:meth:`TabularEncoder.encode_records`):
    kept, folded and missing places, and booleans as text, numbers, bools and missing."""
    train = pd.concat([points_frame(POINTS[:3], [30, 12, 5]),
                       points_frame([(np.nan, np.nan)], [10])], ignore_index=True)
    train["operation"] = [True, False, None] * 19
    encoder = TabularEncoder(boolean=["operation"],
                             location=LocationEncoder(h3_resolution=6, min_count=10)).fit(train)
    frame = points_frame(POINTS, [3, 2, 2, 1, 1, 1])
    frame.loc[len(frame)] = [np.nan, -1.5]  # no latitude: missing
    frame.loc[len(frame)] = [95.0, -1.5]  # impossible: missing
    frame["operation"] = pd.Series([True, "yes", " FALSE ", None, np.nan, 1, 0.0, "maybe", False,
                                    pd.NA, "true", True], dtype=object)
    matrix = encoder.transform(frame)
    records = encoder.encode_records(frame.astype(object).where(frame.notna(), None)
                                     .to_dict("records"))
    np.testing.assert_array_equal(matrix, records)
    assert np.isnan(matrix[:, 2]).sum() == 4  # None, NaN, NA and "maybe"
    cells = {encoder.lookup_[CELL][name] for name in (OTHER, MISSING)}
    assert cells <= set(matrix[:, 0]) and len(set(matrix[:, 0])) == 4  # Leeds, London too

def test_map_counts_each_cell_like_a_pandas_groupby() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    lat = rng.normal(53.5, 0.6, n)
    lon = rng.normal(-1.8, 0.6, n)
    lat[:40] = np.nan
    outcome = rng.integers(0, 2, n).astype(float)
    outcome[40:100] = np.nan  # not known yet: a search, but not in the rate
    summary = cell_summary(lat, lon, outcome, 5)
    fig = cell_map_figure(summary, "test")
    drawn = pd.DataFrame(fig.data[0].customdata, columns=["cell", "searches", "rate"])
    frame = pd.DataFrame({"cell": [h3.latlng_to_cell(a, b, 5) if np.isfinite(a) else None
                                   for a, b in zip(lat, lon, strict=True)],
                          "outcome": outcome}).dropna(subset=["cell"])
    expected = frame.groupby("cell")["outcome"].agg(["size", "mean"])
    drawn = drawn.set_index("cell").loc[expected.index]
    np.testing.assert_array_equal(drawn["searches"].astype(int), expected["size"])
    np.testing.assert_allclose(drawn["rate"].astype(float), expected["mean"], rtol=1e-12)
    assert int(drawn["searches"].sum()) == n - 40
    # each hexagon sits on its cell's centre (plain lon/lat axes, no tiles)
    centre = h3.cell_to_latlng(fig.data[0].customdata[0][0])
    assert (fig.data[0].y[0], fig.data[0].x[0]) == pytest.approx(centre)


@pytest.mark.parametrize(("location", "field"), [
    ({"h3_resolution": 16}, "features.location.h3_resolution"),
    ({"min_count": 0}, "features.location.min_count"),
    ({"h3_resolution": None, "town": False}, "features.location"),
    ({"latitude": "lat", "longitude": "lat"}, "features.location"),
    ({"resolution": 6}, "features.location.resolution"),
])
def test_bad_location_config_is_refused_naming_the_field(location, field) -> None:
    config = example_config()
    config["features"]["location"] = location
    with pytest.raises(ProjectError) as error:
        parse_project(config)
    assert any(p.startswith(field + ":") for p in error.value.problems), error.value.problems


def test_a_coordinate_column_not_in_the_data_is_named() -> None:
    config = example_config()
    config["features"]["location"] = {"latitude": "lat"}
    project = parse_project(config)
    _, problems = project.features.resolve(["latitude", "longitude", "type"])
    assert "features.location.latitude: no column 'lat' in the data" in problems


LOCATION = {"h3_resolution": 6, "town": True, "town_min_population": 10_000, "min_count": 50}


@pytest.fixture(scope="module")
def located_run(tmp_path_factory):
    """The small synthetic project with location on, run once (a few seconds)."""
    config = example_config()
    features = config["features"]
    features["location"] = LOCATION
    features["numeric"] = []  # the coordinates reach the model through location only
    folder = write_project(tmp_path_factory.mktemp("location"), features=features,
                           fairness={}, splits=config["splits"][:1])
    from rudikit.run.develop import run_project

    result = run_project(folder, write_report=write_run_report_and_cards)
    engine = open_store(None, folder)
    yield folder, result, engine
    engine.dispose()


def test_the_service_scores_raw_coordinates_as_the_run_did(located_run) -> None:
    folder, _, engine = located_run
    _, stored, pipeline = selected_model(engine, folder)
    encoder = pipeline.named_steps["encode"]
    assert encoder.categorical_outputs[-2:] == [CELL, TOWN]
    assert {"latitude", "longitude"} <= set(encoder.coordinate_columns)
    project = load_project(folder)
    from rudikit.data.sources import unify

    frame, _ = unify(project, folder)
    rows = frame.set_index(frame["record_id"].astype(str)).loc[stored["entity_id"]]
    rows = rows[encoder.input_columns].head(400)
    body = {"observations": [
        {"observation_id": f"o{i}", **{c: (None if pd.isna(v) else
                                           v.isoformat() if isinstance(v, pd.Timestamp) else v)
                                       for c, v in row.items()}}
        for i, row in enumerate(rows.to_dict("records"))]}
    parsed = parse_observations(ObservationSchema(encoder, max_batch=1000), orjson.dumps(body))
    values = [o.values for o in parsed.observations]
    scorer = Scorer(pipeline)
    assert scorer.path != "predict_proba"  # the checked fast path, location included
    np.testing.assert_allclose(scorer.score(values), stored["score"].head(400), rtol=0,
                               atol=1e-12)
    raw, validated = sample_rows(encoder, 200, seed=7)  # known cells, unseen, missing, at sea
    expected = pipeline.predict_proba(pd.DataFrame(raw, columns=encoder.input_columns))[:, 1]
    np.testing.assert_allclose(scorer.score(validated), expected, rtol=0, atol=1e-12)
    # an explanation names the town, as a person reads it
    reasons = [r for answer in explain_rows(pipeline, values[:200], reasons=20)
               for r in answer["reasons"]]
    towns = {r["value"] for r in reasons if r["feature"] == TOWN}
    assert towns and towns <= {*encoder.categories_[TOWN]}
    assert all(r["feature"] not in ("latitude", "longitude") for r in reasons)


def test_the_run_stores_and_draws_the_training_map(located_run) -> None:
    folder, result, engine = located_run
    with engine.connect() as conn:
        chosen = conn.execute(select(t.models).where(t.models.c.selected)).mappings().one()
        evals = evaluations_q.evaluations_of_models(conn, [chosen["id"]])
    cells = training_cells(evals, chosen["id"]).set_index("cell")
    train = training_rows(load_project(folder), _frame(folder), chosen["split"])
    lat, lon = coordinates(train, "latitude", "longitude")
    valid = np.isfinite(lat) & np.isfinite(lon)
    expected = pd.DataFrame({"cell": [h3.latlng_to_cell(a, b, 6) for a, b in
                                      zip(lat[valid], lon[valid], strict=True)],
                             "label": train["__label"].to_numpy()[valid]}
                            ).groupby("cell")["label"].agg(["size", "mean"])
    assert len(train) == chosen["train_rows"]
    cells = cells.loc[expected.index]
    np.testing.assert_array_equal(cells["searches"].astype(int), expected["size"])
    np.testing.assert_allclose(cells["success_rate"], expected["mean"], rtol=1e-9)
    html = next((folder / ".rudi" / "reports").glob("run-*.html")).read_text(encoding="utf-8")
    assert "Training searches by H3 cell" in html


def _frame(folder):
    from rudikit.data.sources import unify

    return unify(load_project(folder), folder)[0]


def test_the_monitor_map_counts_production_cells_like_a_groupby() -> None:
    """The production window's map: the monitor's stored figures (section ``location``) read
    back by the monitor report, against a groupby of the same rows."""
    from rudikit.config import Features
    from rudikit.monitoring.monitor import _cell_metrics
    from rudikit.reports.monitor_report import production_cells

    rng = np.random.default_rng(9)
    n = 2000
    chunk = pd.DataFrame({"latitude": rng.normal(51.8, 0.4, n),
                          "longitude": rng.normal(0.5, 0.4, n),
                          "outcome": pd.array(rng.integers(0, 2, n), dtype="Int8")})
    chunk.loc[:99, "outcome"] = pd.NA  # outcome not known yet
    chunk.loc[100:119, "latitude"] = np.nan
    features = Features(categorical=["type"], location={"h3_resolution": 5})
    # as the monitor reads them: the window's cases grouped by coordinates and outcome
    groups = [part.groupby(["latitude", "longitude", "outcome"], dropna=False).size()
              .rename("n").reset_index() for part in (chunk.iloc[:700], chunk.iloc[700:])]
    metrics = pd.DataFrame(_cell_metrics(features, groups))
    cells = production_cells(metrics).set_index("cell")
    known = chunk.dropna(subset=["latitude"]).assign(cell=lambda f: [
        h3.latlng_to_cell(a, b, 5) for a, b in zip(f["latitude"], f["longitude"], strict=True)])
    expected = known.groupby("cell").agg(searches=("outcome", "size"),
                                         rate=("outcome", lambda o: o.astype(float).mean()))
    cells = cells.loc[expected.index]
    np.testing.assert_array_equal(cells["searches"].astype(int), expected["searches"])
    np.testing.assert_allclose(cells["success_rate"].astype(float), expected["rate"],
                               rtol=1e-12)
    fig = cell_map_figure(production_cells(metrics), "Production searches by H3 cell")
    assert int(sum(fig.data[0].customdata[:, 1])) == n - 20
