"""What a reviewer sees on an intervention list and records (issue 19 items 1-4), through the
API and the dashboard's HTML: reasons in words with where the value stands among the officers
scored, history, previous rank and outcome; the project's review decisions; corrections kept as
history; the alerts on the list's model; a list of cases dated by the cases' own time."""

from __future__ import annotations

import html
import math
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from scipy.stats import percentileofscore
from sqlalchemy import select
from test_service_support import auth, observation, service_store, trained

from rudikit.config import ProjectError, load_project, parse_project
from rudikit.config.review import CASE_DECISIONS, OFFICER_DECISIONS
from rudikit.data.event_tables import load_event_tables
from rudikit.features.asof.build import build_features
from rudikit.features.asof.defaults import DEFAULT_STATES, event_specs
from rudikit.features.readable import (
    feature_label,
    percentile,
    reason_words,
    standing,
    value_text,
)
from rudikit.service import list_details
from rudikit.service.app import create_app
from rudikit.service.schemas import ListOut
from rudikit.service.settings import ServiceSettings
from rudikit.store import list_tables as lt
from tests.list_review_support import (
    ALERTS,
    COOL_OFF,
    FIRST,
    OTHER_GROUP_ALERT,
    SECOND,
    EisLists,
    K,
    eis_lists,
)

pytestmark = pytest.mark.xdist_group("list_review")
LIST = {"k": K, "cool_off_days": COOL_OFF}


@pytest.fixture(scope="module")
def eis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EisLists]:
    s = eis_lists(tmp_path_factory)
    yield s
    s.engine.dispose()


@pytest.fixture(scope="module")
def client(eis: EisLists) -> Iterator[TestClient]:
    app = create_app(ServiceSettings(project_dir=eis.folder, token_cache_seconds=0.0))
    with TestClient(app, follow_redirects=False) as c:
        yield c


@pytest.fixture(scope="module")
def tables(eis: EisLists) -> dict[str, pd.DataFrame]:
    return load_event_tables(load_project(eis.folder), eis.folder)[0]


def stored_rows(eis: EisLists, entity: str) -> list[dict]:
    with eis.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(lt.entity_reviews).where(
            lt.entity_reviews.c.entity_id == entity).order_by(lt.entity_reviews.c.id)
        ).mappings()]


# --- 1. reasons, history, previous rank, outcome -----------------------------------------------


def test_an_officer_shows_reasons_in_words_history_previous_rank_and_outcome(
        client, eis, tables) -> None:
    r = client.get(f"/lists/{SECOND:%Y-%m-%d}", params=LIST, headers=auth(eis.tokens["review"]))
    assert r.status_code == 200, r.text
    body = ListOut.model_validate(r.json())
    assert body.source == "production_lists" and len(body.entries) == K
    # the oracle: every active officer's features that day, built again, and scipy's percentile
    project = load_project(eis.folder)
    features = build_features(tables, [SECOND], event_specs(project.temporal.complete_from),
                              DEFAULT_STATES, cache_dir=eis.folder / ".rudi" / "cache").frame
    features = features[features["as_of_date"] == SECOND].set_index(
        features["officer_uid"].astype("string"))
    for column in features.columns.drop(["officer_uid", "as_of_date"]):
        assert "_" not in feature_label(column), column  # every as-of feature has words
    complaints = tables["complaints"]
    placed = 0
    for entry in body.entries:
        assert entry.reasons
        for reason in entry.reasons:
            assert reason.label == feature_label(reason.feature) != reason.feature
            assert "_" not in reason.label and ".000" not in reason.text
            assert reason.text.startswith(f"{reason.label}: {reason.value_text}")
            column = features[reason.feature]
            if reason.percentile is None:
                assert not pd.api.types.is_numeric_dtype(column)
                continue
            expected = percentileofscore(column.dropna().astype(float),
                                         float(column[entry.entity_id]), kind="mean")
            assert reason.percentile == pytest.approx(expected, abs=0.006)
            top = math.ceil(100 - reason.percentile)
            if reason.percentile >= 50:
                assert f"(top {max(1, top)}% of officers)" in reason.text
            placed += 1
        # history: distinct complaints per calendar year before the list date (a loop)
        mine = complaints[complaints["officer_uid"].astype("string") == entry.entity_id]
        seen: Counter[int] = Counter()
        for cr_id in set(mine["cr_id"]):
            when = pd.Timestamp(mine.loc[mine["cr_id"] == cr_id, "complaint_date"].min())
            if when < SECOND and when.year >= SECOND.year - 4:
                seen[when.year] += 1
        assert entry.history is not None
        assert entry.history.years == list(range(2008, 2013))
        rows = {row.label: row.counts for row in entry.history.rows}
        assert rows["complaints"] == [seen[y] for y in entry.history.years]
        assert set(rows) == {"complaints", "use-of-force reports"}
        # outcome: any complaint in the year after the list date (known: data run to 2013-12)
        after = mine["complaint_date"].between(SECOND, SECOND + pd.DateOffset(years=1),
                                               inclusive="left").any()
        assert entry.outcome is not None and entry.outcome.known
        assert entry.outcome.value == int(after)
        assert entry.outcome.text == ("any complaint in the year after the list: "
                                      + ("yes" if after else "no"))
    assert placed  # numeric reasons carry their standing
    # previous rank: among everyone scored on the January list, 1 + those scored higher (ties
    # share the best rank, as the stored rank changes count them)
    with eis.engine.connect() as conn:
        first = pd.DataFrame(conn.execute(select(
            lt.production_list_entries.c.entity_id, lt.production_list_entries.c.score)
            .join(lt.production_lists).where(lt.production_lists.c.as_of_date
                                             < SECOND.tz_localize(UTC))).all())
    earlier = dict(zip(first["entity_id"], first["score"], strict=True))
    for entry in body.entries:
        assert entry.previous_rank is not None
        expected_rank = 1 + int((first["score"] > earlier[entry.entity_id]).sum())
        assert (entry.previous_rank.rank, entry.previous_rank.date) == (
            expected_rank, FIRST.date())
    # the dashboard page lays them out (as a reviewer sees it)
    page = client.get("/ui/lists", params={"date": f"{SECOND:%Y-%m-%d}", **LIST},
                      headers=auth(eis.tokens["review"])).text
    shown = body.entries[0]
    assert shown.reasons[0].text in html.unescape(page)
    assert '<table class="history">' in page and "<th>complaints</th>" in page
    assert f"previous: {shown.previous_rank.rank} on {FIRST:%Y-%m-%d}" in page
    assert shown.outcome.text in page
    assert "cmp_all" not in page


def test_feature_names_values_and_standing_in_words() -> None:
    words = {"cmp_all_1year_count": "complaints in the past year",
             "cmp_cat_excessive_force_5year_rate":
                 "complaints (allegation category: excessive force) per year in the past 5 years",
             "cmp_finding_sustained_all_count": "complaints (final finding: sustained) ever",
             "uof_any_injury_6month_count": "use-of-force reports (any injury) in the past 6 "
                                            "months",
             "uof_all_days_since": "days since the last use-of-force report",
             "unit_days": "days in the current unit", "tenure_years": "years of service",
             "object_of_search": "object of search"}
    assert {name: feature_label(name) for name in words} == words
    assert feature_label("cmp_all_1year_count", {"cmp_all_1year_count": "recent complaints"}
                         ) == "recent complaints"
    assert [value_text(v) for v in ("4", 4.0, "0.83333", None, float("nan"), "Male", False,
                                    "True", "2020-01-06T00:30:00+01:00",
                                    "2020-01-05 08:15:00+00:00")] == [
        "4", "4", "0.833", "missing", "missing", "Male", "no", "yes",
        "2020-01-06 00:30 +0100", "2020-01-05 08:15 UTC"]
    rng = np.random.default_rng(0)
    population = rng.poisson(1.0, 500).astype(float)
    population[:20] = np.nan
    for value in (0, 1, 4, 9):
        assert percentile(population, value) == pytest.approx(
            percentileofscore(population[~np.isnan(population)], value, kind="mean"))
    assert percentile(population, "Male") is None
    assert reason_words({"feature": "cmp_all_1year_count", "value": "4", "contribution": 0.4,
                         "percentile": 98.2})["text"] == (
        "complaints in the past year: 4 (top 2% of officers)")
    assert standing(3.5, "cases") == "bottom 4% of cases" and standing(None, "cases") == ""


def test_the_history_of_a_list_of_1_january_is_the_five_years_before(eis, tables) -> None:
    found = list_details.officer_history(tables, ["1"], FIRST.date())["1"]
    assert found["years"] == [2007, 2008, 2009, 2010, 2011]
    mine = tables["complaints"][tables["complaints"]["officer_uid"] == 1]
    years = pd.to_datetime(mine.drop_duplicates("cr_id")["complaint_date"]).dt.year
    assert found["rows"][0]["counts"] == [int((years == y).sum()) for y in found["years"]]


def test_an_outcome_is_unknown_until_the_window_has_passed_the_data(eis, tables) -> None:
    project = load_project(eis.folder)
    found = list_details.officer_outcomes(project, tables, ["1", "2"], date(2013, 6, 1))
    assert {e: o["known"] for e, o in found.items()} == {"1": False, "2": False}
    assert found["1"]["text"] == ("any complaint in the year after the list: not known before "
                                  "2014-06-01")


# --- 2. decisions from the project; corrections kept as history -------------------------------


def test_decisions_are_the_projects_and_shown_in_words(client, eis, tmp_path) -> None:
    reviewer = auth(eis.tokens["review"])
    body = client.get(f"/lists/{FIRST:%Y-%m-%d}", params=LIST, headers=reviewer).json()
    assert body["decisions"] == [{"key": k, "label": v} for k, v in OFFICER_DECISIONS.items()]
    entity = body["entries"][-1]["entity_id"]
    review = {"entity_id": entity, "list_date": f"{FIRST:%Y-%m-%d}", "agreement": "agree"}
    for bad in ("debrief_officer", "Supervisor meeting"):  # a case decision; not a key
        r = client.post("/reviews", json={**review, "decision": bad}, headers=reviewer)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "decision", r.text
    assert "one of no_action, monitor, supervisor_meeting" in client.post(
        "/reviews", json={**review, "decision": "debrief_officer"}, headers=reviewer
    ).json()["detail"]
    assert stored_rows(eis, entity) == []
    page = client.get("/ui/lists", params={"date": f"{FIRST:%Y-%m-%d}"}, headers=reviewer).text
    assert '<option value="supervisor_meeting">Supervisor meeting</option>' in page
    # a project's own decisions (another service on the same store reads this rudi.yaml)
    config = yaml.safe_load((eis.folder / "rudi.yaml").read_text())
    config["review"] = {"decisions": {"no_action": "Nothing further",
                                      "words_of_advice": "Words of advice"},
                        "labels": {"cmp_all_1year_count": "complaints, last 12 months"}}
    (tmp_path / "rudi.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / ".rudi").mkdir()  # stored model paths are relative to the project folder
    (tmp_path / ".rudi" / "models").symlink_to(eis.folder / ".rudi" / "models")
    settings = ServiceSettings(project_dir=tmp_path, token_cache_seconds=0.0,
                               database_url=f"sqlite:///{eis.folder / '.rudi' / 'rudi.db'}")
    with TestClient(create_app(settings)) as other:
        listed = other.get(f"/lists/{FIRST:%Y-%m-%d}", params=LIST, headers=reviewer).json()
        assert listed["decisions"] == [{"key": "no_action", "label": "Nothing further"},
                                       {"key": "words_of_advice", "label": "Words of advice"}]
        labels = {r["feature"]: r["label"] for e in listed["entries"] for r in e["reasons"]}
        assert labels.get("cmp_all_1year_count", "complaints, last 12 months") == \
            "complaints, last 12 months"
        schema = other.get("/openapi.json", headers=reviewer).json()
        assert schema["components"]["schemas"]["ReviewIn"]["properties"]["decision"][
            "enum"] == ["no_action", "words_of_advice"]
        r = other.post("/reviews", json={**review, "decision": "words_of_advice"},
                       headers=reviewer)
        assert r.status_code == 201, r.text
        assert r.json()["decision_label"] == "Words of advice"
    # rudi.yaml names what is wrong with a bad list of decisions
    with pytest.raises(ProjectError, match=r"review\.decisions.*no_action"):
        parse_project({**config, "review": {"decisions": ["monitor"]}})


def test_a_review_is_corrected_by_a_new_row_and_the_old_one_is_kept(client, eis) -> None:
    reviewer = auth(eis.tokens["review"])
    day = f"{FIRST:%Y-%m-%d}"
    entity = client.get(f"/lists/{day}", params=LIST, headers=reviewer).json()[
        "entries"][0]["entity_id"]
    review = {"entity_id": entity, "list_date": day, "agreement": "agree",
              "decision": "training", "notes": "first look"}
    first = client.post("/reviews", json=review, headers=reviewer)
    assert first.status_code == 201, first.text
    a = first.json()["id"]
    assert first.json()["decision_label"] == "Training" and first.json()["supersedes"] is None
    before = stored_rows(eis, entity)
    again = client.post("/reviews", json=review, headers=reviewer)
    assert again.status_code == 409 and f"corrects: {a}" in again.json()["detail"]
    fixed = client.post("/reviews", json={**review, "agreement": "disagree",
                                          "decision": "no_action", "corrects": a,
                                          "notes": "the complaints were one incident"},
                        headers=reviewer)
    assert fixed.status_code == 201, fixed.text
    b = fixed.json()["id"]
    assert fixed.json()["supersedes"] == a and fixed.json()["decision_label"] == "No action"
    rows = stored_rows(eis, entity)
    assert rows[0] == before[0]  # the corrected review is kept exactly as it was
    assert [(x["id"], x["outcome"], x["supersedes"]) for x in rows] == [
        (a, "training", None), (b, "no_action", a)]
    r = client.post("/reviews", json={**review, "corrects": a}, headers=reviewer)
    assert r.status_code == 409 and f"already corrected by review {b}" in r.json()["detail"]
    r = client.post("/reviews", json={**review, "entity_id": "999999", "corrects": b},
                    headers=reviewer)
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "entity_id"
    other = client.get(f"/lists/{day}", params=LIST, headers=reviewer).json()["entries"][0]
    r = client.post("/reviews", json={**review, "entity_id": other["entity_id"], "corrects": b},
                    headers=reviewer)
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "corrects"
    # only the review in force counts (the cool-off, the list monitor's interventions)
    in_force = lt.load_reviews(eis.engine)
    assert in_force.loc[in_force["entity_id"] == entity, "id"].tolist() == [b]
    page = client.get("/ui/lists", params={"date": day}, headers=reviewer).text
    row_a = re.search(rf'<tr data-review="{a}"[^>]*class="superseded">(.*?)</tr>', page, re.S)
    assert row_a and f"corrected by #{b}" in row_a.group(1) and "Training" in row_a.group(1)
    row_b = re.search(rf'<tr data-review="{b}"[^>]*class="in-force">(.*?)</tr>', page, re.S)
    assert row_b and f"corrects #{a}" in row_b.group(1) and "No action" in row_b.group(1)


# --- 3. the alerts on the list's model ---------------------------------------------------------


def test_a_reviewer_sees_the_alerts_on_the_lists_model_group_only(client, eis) -> None:
    reviewer = auth(eis.tokens["review"])
    body = client.get(f"/lists/{SECOND:%Y-%m-%d}", params=LIST, headers=reviewer).json()
    assert [(a["severity"], a["message"]) for a in body["alerts"]] == [
        (severity, message) for severity, _, message in sorted(ALERTS)]  # critical first
    page = html.unescape(client.get("/ui/lists", headers=reviewer).text)
    for _, _, message in ALERTS:
        assert message in page
    assert OTHER_GROUP_ALERT not in page and 'id="list-alerts"' in page
    assert client.get("/ui/monitoring", headers=reviewer).status_code == 403


# --- 4. a list of cases dated by the cases' own time ------------------------------------------


def test_a_stop_and_search_list_is_dated_by_the_searches_own_time(
        store: tuple[str, str | None], tmp_path_factory: pytest.TempPathFactory,
        tmp_path) -> None:
    url, schema = store
    project = trained(tmp_path_factory)
    shutil.copy(project.folder / "rudi.yaml", tmp_path / "rudi.yaml")
    s = service_store(url, schema, project)
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema,
                                     token_cache_seconds=0.0))
    times = {"a": "2020-01-05T13:20:00+00:00",
             "b": "2020-01-06T00:30:00+01:00",  # 2020-01-05 23:30 UTC
             "c": "2020-01-06T09:00:00+00:00", "d": None}  # d: no time, the day it is scored
    with TestClient(app, follow_redirects=False) as client:
        r = client.post("/predict", headers=auth(s.tokens["predict"]), json={"observations": [
            observation(f"obs-{o}", datetime=when, latitude=50 + i)
            for i, (o, when) in enumerate(times.items())]})
        assert r.status_code == 200, r.text
        scores = {p["observation_id"]: p["score"] for p in r.json()["predictions"]}
        assert client.post("/outcomes", headers=auth(s.tokens["outcome"]), json={
            "observation_id": "obs-a", "outcome": 1}).status_code in (200, 201)
        today = datetime.now(UTC).date()
        reviewer = auth(s.tokens["review"])
        expected = {"2020-01-05": ["obs-a", "obs-b"], "2020-01-06": ["obs-c"],
                    str(today): ["obs-d"]}
        for day, ids in expected.items():
            body = client.get(f"/lists/{day}", headers=reviewer).json()
            assert body["source"] == "production_predictions"
            assert [e["entity_id"] for e in body["entries"]] == sorted(
                ids, key=lambda o: -scores[o]), day
        body = client.get("/lists/2020-01-05", headers=reviewer).json()
        assert body["decisions"] == [{"key": k, "label": v} for k, v in CASE_DECISIONS.items()]
        entry = next(e for e in body["entries"] if e["entity_id"] == "obs-a")
        assert {"label": "object of search", "value": "Controlled drugs"} in entry["fields"]
        assert entry["outcome"] == {"known": True, "value": 1, "text": "search success: yes"}
        # its reasons: the explanation /predict?explain=true gives the same inputs, in words
        twin = client.post("/predict", params={"explain": "true"},
                           headers=auth(s.tokens["predict"]), json={"observations": [
                               observation("obs-a-twin", datetime=times["a"], latitude=50)]})
        assert twin.status_code == 200, twin.text
        explained = twin.json()["predictions"][0]["explanation"]["reasons"]
        assert [(r["feature"], r["value"]) for r in entry["reasons"]] == [
            (r["feature"], r["value"]) for r in explained]
        assert [r["contribution"] for r in entry["reasons"]] == pytest.approx(
            [r["contribution"] for r in explained])
        assert all(r["label"] == feature_label(r["feature"]) for r in entry["reasons"])
        other = next(e for e in body["entries"] if e["entity_id"] == "obs-b")
        assert other["outcome"]["text"] == "search success: not reported yet"
        page = client.get("/ui/lists", headers=reviewer).text  # the newest case day first
        days = re.findall(r'<option value="(\d{4}-\d{2}-\d{2})"', page)
        assert days[:3] == [str(today), "2020-01-06", "2020-01-05"]
        assert entry["reasons"][0]["text"] in html.unescape(client.get(
            "/ui/lists", params={"date": "2020-01-05"}, headers=reviewer).text)
        page = client.get("/ui/lists", params={"date": "2020-01-05"}, headers=reviewer).text
        assert "<dt>object of search</dt><dd>Controlled drugs</dd>" in page
        assert "object_of_search: " not in page and "; latitude" not in page
        r = client.post("/reviews", headers=reviewer, json={
            "entity_id": "obs-b", "list_date": "2020-01-05", "agreement": "agree",
            "decision": "debrief_officer"})
        assert r.status_code == 201 and r.json()["decision_label"] == "Debrief the officer"
        r = client.post("/reviews", headers=reviewer, json={
            "entity_id": "obs-c", "list_date": "2020-01-05", "agreement": "agree",
            "decision": "no_action"})
        assert r.status_code == 404  # obs-c happened on the 6th
    s.engine.dispose()
