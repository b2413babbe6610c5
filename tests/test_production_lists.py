"""`rudi score`: production lists of a temporal project made from the sources with the deployed
model group (issue 15 item 1-2), on a small synthetic event-table project."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.config import load_project
from rudikit.monitoring.scheduled_lists import ScoreError, score_lists
from rudikit.service.app import create_app
from rudikit.service.auth import create_token
from rudikit.service.deploy import deploy
from rudikit.service.state import ServiceSettings
from rudikit.store import list_tables as lt
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.list_tables import record_review
from tests.test_eis import project_config
from tests.test_temporal import synthetic_tables

D = pd.Timestamp
pytestmark = pytest.mark.xdist_group("production_lists")


@dataclass
class Deployed:
    folder: Path
    engine: Any
    model_id: int
    model_group_id: int

    def project(self) -> Any:
        return load_project(self.folder)

    def rows(self, query: Any) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all())


def _project(folder: Path, production: dict[str, Any]) -> None:
    data = folder / "events"
    data.mkdir(parents=True)
    for name, frame in synthetic_tables().items():
        frame.to_parquet(data / f"{name}.parquet")
    config = project_config(data)
    config["temporal"]["stability"].update({"n_estimators": [5], "resamples": 0,
                                            "drop_sources": []})  # not what is tested here
    config["production"] = production
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def developed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A developed project (one run), copied per test so each test has its own store."""
    from rudikit.run.develop import run_project

    folder = tmp_path_factory.mktemp("eis_prod")
    _project(folder, {"frequency": "monthly", "cool_off_days": 45})
    run_project(folder)
    return folder


@pytest.fixture
def deployed(developed: Path, tmp_path: Path) -> Iterator[Deployed]:
    import shutil

    folder = tmp_path / "project"
    shutil.copytree(developed, folder)
    engine = open_store(None, folder)
    with engine.connect() as conn:
        model = conn.execute(select(t.models.c.id, t.models.c.model_group_id)
                             .where(t.models.c.selected)).one()
    deploy(engine, model.model_group_id, reason="tests", by="pytest", model_id=model.id)
    yield Deployed(folder, engine, model.id, model.model_group_id)
    engine.dispose()


def _score(d: Deployed, **when: Any) -> Any:
    return score_lists(d.project(), d.folder, d.engine, by="pytest", **when)


def test_a_production_list_equals_the_development_prediction_of_that_date(deployed) -> None:
    result = _score(deployed, as_of=D("2012-01-01"))
    dev = deployed.rows(select(t.predictions.c.entity_id, t.predictions.c.score)
                        .where(t.predictions.c.model_id == deployed.model_id))
    prod = deployed.rows(select(lt.production_list_entries))
    assert len(prod) == result.lists[0].scored
    joined = dev.merge(prod, on="entity_id", suffixes=("_dev", "_prod"), validate="one_to_one")
    assert len(joined) == len(dev) > 100  # every officer the run scored is on it
    np.testing.assert_allclose(joined["score_prod"], joined["score_dev"], rtol=0, atol=1e-9)
    # ranks follow the scores (ties by entity id), the top k listed with their reasons
    ordered = prod.sort_values(["score", "entity_id"], ascending=[False, True])
    assert ordered["rank_all"].tolist() == list(range(1, len(prod) + 1))
    listed = prod[prod["rank"].notna() & (prod["rank"] <= 20)]
    assert len(listed) == 20
    assert all(isinstance(r, list) and r and {"feature", "contribution", "value"} <= set(r[0])
               for r in listed["reasons"])
    assert prod.loc[prod["rank"].isna() | (prod["rank"] > 20), "reasons"].isna().all()


def test_scoring_a_date_twice_stores_one_list(deployed) -> None:
    first = _score(deployed, as_of=D("2012-01-01"))
    again = _score(deployed, as_of=D("2012-01-01"))
    assert len(first.lists) == 1 and not again.lists and again.skipped == [D("2012-01-01")]
    with deployed.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(lt.production_lists)).scalar() == 1
        entries = conn.execute(select(func.count()).select_from(lt.production_list_entries)
                               ).scalar()
    assert entries == first.lists[0].scored


def test_through_fills_the_schedule_in_order_and_stores_rank_changes(deployed) -> None:
    _score(deployed, as_of=D("2012-01-01"))
    filled = _score(deployed, through=D("2012-04-15"))
    assert [s.as_of for s in filled.lists] == [D("2012-02-01"), D("2012-03-01"),
                                               D("2012-04-01")]
    assert not _score(deployed, through=D("2012-04-15")).lists  # nothing left to fill
    changes = deployed.rows(select(lt.rank_changes).where(lt.rank_changes.c.list_id.is_not(
        None)))
    april = changes[changes["as_of_date"].dt.strftime("%Y-%m-%d") == "2012-04-01"]
    by_horizon = april.groupby("horizon")["previous_date"].first()
    # the nearest earlier list at least a month / a quarter back; none a year back
    assert by_horizon["month"].strftime("%Y-%m-%d") == "2012-03-01"
    assert by_horizon["quarter"].strftime("%Y-%m-%d") == "2012-01-01"
    assert april.loc[april["horizon"] == "year", "previous_rank"].isna().all()
    entries = deployed.rows(select(lt.production_list_entries, lt.production_lists.c.as_of_date)
                            .join(lt.production_lists))
    ranks = entries.set_index(["as_of_date", "entity_id"])["rank_all"]
    row = april[april["horizon"] == "month"].iloc[0]
    before = ranks[(row["previous_date"], row["entity_id"])]
    assert row["previous_rank"] == before and row["change"] == before - row["rank"]


def test_a_reviewed_officer_is_off_the_lists_until_the_cool_off_ends(deployed) -> None:
    first = _score(deployed, as_of=D("2012-01-01")).lists[0]
    top = str(first.top.iloc[0]["entity_id"])
    record_review(deployed.engine, top, D("2012-01-01"), reviewer="sergeant",
                  outcome="mentoring", agreement="agree")
    later = {s.as_of: s for s in _score(deployed, through=D("2012-03-01")).lists}
    # cool_off_days 45: off on 1 February (31 days), back on 1 March (60 days)
    feb, mar = later[D("2012-02-01")], later[D("2012-03-01")]
    assert top not in set(feb.top["entity_id"]) and feb.excluded == 1
    assert top in set(mar.top["entity_id"]) and mar.excluded == 0
    stored = deployed.rows(select(lt.production_list_entries).where(
        lt.production_list_entries.c.list_id == feb.list_id,
        lt.production_list_entries.c.entity_id == top))
    assert stored["rank"].isna().all()
    assert stored["reviewed_on"].dt.strftime("%Y-%m-%d").tolist() == ["2012-01-01"]
    assert feb.top["rank"].tolist() == list(range(1, feb.k + 1))  # the next one moved up


def test_officers_who_left_are_not_listed(deployed, tmp_path) -> None:
    project = deployed.project()
    from rudikit.data.event_tables import load_event_tables

    tables, loaded = load_event_tables(project, deployed.folder)
    first = _score(deployed, as_of=D("2012-01-01"), tables=tables, loaded=loaded).lists[0]
    leaver = int(first.top.iloc[0]["entity_id"])
    officers = tables["officers"].copy()
    officers.loc[officers["officer_uid"] == leaver, "resignation_date"] = D("2012-01-15")
    changed = {**tables, "officers": officers}
    feb = _score(deployed, as_of=D("2012-02-01"), tables=changed, loaded=loaded).lists[0]
    assert feb.scored == first.scored - 1
    entries = deployed.rows(select(lt.production_list_entries.c.entity_id).where(
        lt.production_list_entries.c.list_id == feb.list_id))
    assert str(leaver) not in set(entries["entity_id"])


@pytest.mark.parametrize(("when", "expected"), [
    ({"as_of": D("2011-01-01")}, "before 2012-01-01, the first date the deployed model"),
    ({"as_of": D("2003-06-01")}, "before the training data"),
    ({"as_of": D("2015-06-01")}, "after the newest source record"),
    ({"through": D("2015-06-01")}, "after the newest source record"),
])
def test_dates_outside_the_data_are_refused_naming_the_date(deployed, when, expected) -> None:
    with pytest.raises(ScoreError, match=expected):
        _score(deployed, **when)
    assert deployed.rows(select(lt.production_lists)).empty


def test_off_schedule_dates_and_gaps_are_refused(deployed) -> None:
    _score(deployed, as_of=D("2012-01-01"))
    with pytest.raises(ScoreError, match="2012-01-15 is not on the monthly schedule"):
        _score(deployed, as_of=D("2012-01-15"))
    with pytest.raises(ScoreError, match="schedule gap: no list for 2012-02-01"):
        _score(deployed, as_of=D("2012-03-01"))
    assert len(deployed.rows(select(lt.production_lists))) == 1


def test_rudi_score_and_the_list_api_and_reviews_on_production_lists(deployed) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["score", str(deployed.folder), "--as-of", "2012-01-01",
                               "--by", "pytest"])
    assert done.exit_code == 0, done.output
    assert "1 list stored" in done.output
    bad = runner.invoke(app, ["score", str(deployed.folder), "--as-of", "2012-13-01"])
    assert bad.exit_code == 2 and "--as-of: '2012-13-01' is not a date" in bad.output
    _, token = create_token(deployed.engine, "admin", "list tests", "pytest")
    settings = ServiceSettings(project_dir=deployed.folder, token_cache_seconds=0.0)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        got = client.get("/lists/2012-01-01", params={"k": 5, "cool_off_days": 45})
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["source"] == "production_lists" and len(body["entries"]) == 5
        assert body["entries"][0]["reasons"][0]["feature"]
        first = body["entries"][0]["entity_id"]
        posted = client.post("/reviews", json={"entity_id": first, "list_date": "2012-01-01",
                                               "agreement": "agree", "decision": "training"})
        assert posted.status_code == 201, posted.text
        after = client.get("/lists/2012-01-01", params={"k": 5, "cool_off_days": 45}).json()
        assert first not in {e["entity_id"] for e in after["entries"]}
        assert after["reviewed_excluded"] == 1
        page = client.get("/ui/lists", params={"date": "2012-01-01"})
        assert page.status_code == 200 and "Top reasons" in page.text
    # the review keeps the officer off the next list the schedule makes
    feb = _score(deployed, as_of=D("2012-02-01")).lists[0]
    assert first not in set(feb.top["entity_id"])
