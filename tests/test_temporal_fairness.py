"""Fairness of a temporal project's lists: each model's top-k list on each test as-of date is
audited by officer attributes, with the project's requirements evaluated per list date, and the
stored figures equal a count made here from the stored predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from rudikit.config import Fairness, TemporalError
from rudikit.config.temporal import TemporalSelection
from rudikit.data.event_tables import officer_attributes
from rudikit.fairness.tradeoff import NO_GROUP_MEETS
from rudikit.run.temporal import TemporalLists, run_temporal
from rudikit.store import results
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.queries import fairness as fairness_q
from tests.test_temporal import experiment, synthetic_tables

K = 20


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """The synthetic officers, with a race that follows the latent risk for a quarter of them
    (so a list can fall unevenly on a group)."""
    out = synthetic_tables()
    officers = out["officers"].copy()
    rng = np.random.default_rng(7)
    counts = out["complaints"]["officer_uid"].value_counts()
    busy = officers["officer_uid"].map(counts).fillna(0).to_numpy() > np.quantile(
        officers["officer_uid"].map(counts).fillna(0), 0.75)
    officers["race"] = np.where(busy & (rng.random(len(officers)) < 0.7), "BLACK",
                                rng.choice(["WHITE", "HISPANIC"], len(officers)))
    out["officers"] = officers
    return out


def fairness(**changes: object) -> Fairness:
    settings: dict[str, object] = {
        "attributes": ["race", "age_band"], "reference_groups": {"race": "WHITE"},
        "min_group_size": 10, "at": {"top_k": K},
        "requirements": [{"name": "listed share between races", "metric": "selection_rate",
                          "compare": ["race"], "max_gap_pp": 1, "min_size": 10}]}
    settings.update(changes)
    return Fairness(**settings)


def test_every_list_is_audited_per_date_and_matches_a_count(tmp_path: Path, store,
                                                            tables) -> None:
    url, schema = store
    engine = open_store(url, schema=schema)
    config = experiment(top_k=K)
    run_id = results.start_run(engine, config.name, "h", {}, 0, "synthetic")
    result = run_temporal(config, tables, engine=engine, run_id=run_id,
                          artefacts_dir=tmp_path / "models", fairness=fairness())
    dates = sorted(result.metrics["as_of_date"].unique())
    with engine.connect() as conn:
        audits = pd.DataFrame(conn.execute(select(
            t.fairness_audits.c.model_id, t.fairness_audits.c.selection,
            t.fairness_audits.c.attribute, t.fairness_audits.c.group_value,
            t.fairness_audits.c.metric, t.fairness_audits.c.value,
            t.fairness_audits.c.numerator, t.fairness_audits.c.denominator)).mappings().all())
        requirements = pd.DataFrame(conn.execute(select(
            t.fairness_requirements.c.model_id, t.fairness_requirements.c.selection,
            t.fairness_requirements.c.name)).mappings().all())
    n_models = len(result.groups) * len(result.data.splits)
    # one audit and one requirement result per model and list date (one date per split here)
    assert audits.groupby(["model_id", "selection"]).ngroups == n_models
    assert len(requirements) == n_models
    assert set(requirements["selection"]) == {f"top_k={K}@{pd.Timestamp(d):%Y-%m-%d}"
                                              for d in dates}
    # the oracle: the stored list of one model, its top K counted per race by hand
    model = result.models[-1]
    when = pd.Timestamp(result.metrics.loc[result.metrics["model_id"] == model.model_id,
                                           "as_of_date"].iloc[0])
    preds = result.predictions[result.predictions["model_id"] == model.model_id]
    listed = preds.nlargest(K, "score")["entity_id"].astype(int)
    race = tables["officers"].set_index("officer_uid")["race"]
    everyone = race.loc[preds["entity_id"].astype(int)].value_counts()
    in_list = race.loc[listed].value_counts()
    rows = audits[(audits["model_id"] == model.model_id) & (audits["attribute"] == "race")
                  & (audits["metric"] == "pprev")
                  & (audits["selection"] == f"top_k={K}@{when:%Y-%m-%d}")]
    assert len(rows) == len(everyone)
    for row in rows.itertuples():
        expected = in_list.get(row.group_value, 0) / everyone[row.group_value]
        assert row.value == pytest.approx(expected, abs=1e-12)
        assert row.denominator == everyone[row.group_value]

    # temporal.selection.require_fairness reads the audition splits' stored verdicts, never
    # the last split's: the groups it lets through, recomputed here from the store
    last = result.data.splits[-1].name
    split_of = {m.model_id: (m.model_group_id, m.split) for m in result.models}
    with engine.connect() as conn:
        stored = fairness_q.requirements(conn, list(split_of))
    verdicts: dict[int, list[str]] = {}
    for row in stored:
        group, split = split_of[row["model_id"]]
        if split != last:
            verdicts.setdefault(group, []).append(fairness_q.requirement_status(row))
    passing = {g for g, v in verdicts.items() if set(v) == {fairness_q.MET}}
    gated = config.model_copy(update={"selection": TemporalSelection(require_fairness=True)})
    plain, _ = TemporalLists(config, tables, tmp_path, fairness(), data=result.data).select(
        result.models, result)
    chosen, reason = TemporalLists(gated, tables, tmp_path, fairness(),
                                   data=result.data).select(result.models, result)
    assert chosen.split == last
    if passing:
        assert chosen.model_group_id in passing
        assert f"among the {len(passing)} of {len(verdicts)} model groups" in reason
    else:
        assert reason.startswith(NO_GROUP_MEETS) and chosen.model_id == plain.model_id


def test_age_band_is_the_age_on_the_list_date() -> None:
    officers = pd.DataFrame({"officer_uid": [1, 2, 3, 4], "birth_year": [1990, 1981, 1975, None],
                             "race": ["A", "B", "A", "B"]})
    rows = pd.DataFrame({"officer_uid": [1, 2, 3, 4, 2],
                         "as_of_date": pd.to_datetime(["2015-01-01"] * 4 + ["2011-06-01"])})
    got = officer_attributes(officers, rows, ["age_band", "race"])
    # ages 25, 34, 40, unknown; officer 2 was 30 in 2011
    assert got["age_band"].tolist() == ["under 30", "30-39", "40-49", pd.NA, "30-39"]
    assert got["race"].tolist() == ["A", "B", "A", "B", "B"]


def test_an_unknown_attribute_is_refused_before_any_fit(tmp_path: Path, tables) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'rudi.db'}")
    config = experiment(top_k=K)
    run_id = results.start_run(engine, config.name, "h", {}, 0, "synthetic")
    with pytest.raises(TemporalError, match=r"fairness.attributes\[1\]: no column 'ethnicity'"):
        run_temporal(config, tables, engine=engine, run_id=run_id,
                     artefacts_dir=tmp_path / "models",
                     fairness=fairness(attributes=["race", "ethnicity"]))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.models)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(t.fairness_audits)
                            ).scalar_one() == 0
