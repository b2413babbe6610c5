"""The dashboard under /ui and the list/review API (FastAPI TestClient), on a store filled by a
real small project run: auth and roles, sessions and CSRF, pages showing the store's numbers,
reviews stored, plotly served locally."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import own_postgres_schema
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.routing import Mount, Route
from test_dashboard_support import DRIFT, DashboardStore, add_monitor_run, dashboard_store
from test_service_support import auth, observation, service_store, trained

from rudikit.service.app import create_app
from rudikit.service.auth import create_token, revoke_token
from rudikit.service.settings import ServiceSettings
from rudikit.service.ui.routes import PLOTLY_JS
from rudikit.store import tables as t
from rudikit.store.list_tables import entity_reviews
from rudikit.store.queries.fairness import requirement_status

ANALYST_PAGES = ["/ui/", "/ui/models/{model}", "/ui/fairness", "/ui/monitoring"]
LIST_PAGE = "/ui/lists"
ASSETS = ["/ui/static/dashboard.js", f"/ui/static/{PLOTLY_JS}"]
OPEN = {("GET", "/login"), ("POST", "/login"), ("GET", "/static/dashboard.css")}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[DashboardStore]:
    """One project run per backend, shared by this module's tests."""
    folder = tmp_path_factory.mktemp("dashboard-project")
    if request.param == "sqlite":
        s = dashboard_store(folder, f"sqlite:///{folder / 'rudi.db'}", None)
        yield s
        s.engine.dispose()
        return
    with own_postgres_schema() as (url, schema):
        s = dashboard_store(folder, url, schema)
        yield s
        s.engine.dispose()


@pytest.fixture
def client(filled: DashboardStore) -> Iterator[TestClient]:
    app = create_app(ServiceSettings(project_dir=filled.folder, database_url=filled.url,
                                     schema=filled.schema, token_cache_seconds=0.0))
    with TestClient(app, follow_redirects=False) as c:
        yield c


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def login(client: TestClient, token: str, next_url: str = "/ui/") -> Any:
    form = client.get("/ui/login", params={"next": next_url})
    assert form.status_code == 200
    return client.post("/ui/login", data={"csrf": csrf_of(form.text), "token": token,
                                          "next": next_url})


def list_date(s: DashboardStore) -> date:
    """The as-of day with the most test predictions of the deployed model."""
    with s.engine.connect() as conn:
        stamps = conn.execute(select(t.predictions.c.as_of_date).where(
            t.predictions.c.model_id == s.model_id)).scalars().all()
    days = [stamp.date() for stamp in stamps]
    return max(set(days), key=days.count)


def scored_on(s: DashboardStore, day: date) -> list[tuple[str, float]]:
    """The deployed model's stored scores of ``day``, highest first (an independent query)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with s.engine.connect() as conn:
        rows = conn.execute(select(t.predictions.c.entity_id, t.predictions.c.score).where(
            t.predictions.c.model_id == s.model_id, t.predictions.c.as_of_date >= start,
            t.predictions.c.as_of_date < start + timedelta(days=1))).all()
    return sorted(((r.entity_id, r.score) for r in rows), key=lambda r: (-r[1], r[0]))


def chart_specs(page: str) -> dict[str, Any]:
    """The plotly figures a page embeds, by chart id (each must be a figure with data)."""
    specs = {key: json.loads(body) for key, body in re.findall(
        r'<script type="application/json" data-chart="([^"]+)">(.*?)</script>', page, re.S)}
    for key, spec in specs.items():
        assert spec["data"], key
    return specs


def pages(s: DashboardStore) -> list[str]:
    return [p.replace("{model}", str(s.model_id)) for p in ANALYST_PAGES]


# --- auth ------------------------------------------------------------------------------------


def test_every_dashboard_route_needs_a_token_with_the_right_role(client, filled) -> None:
    ui = next(r for r in client.app.routes if isinstance(r, Mount) and r.path == "/ui")
    routes = {(m, r.path) for r in ui.routes if isinstance(r, Route)
              for m in (r.methods or []) if m != "HEAD"}
    guarded = routes - OPEN
    assert guarded == {("GET", "/"), ("GET", "/models/{model_id}"), ("GET", "/fairness"),
                       ("GET", "/monitoring"), ("GET", "/lists"), ("POST", "/lists/reviews"),
                       ("POST", "/logout"), ("GET", "/static/dashboard.js"),
                       ("GET", f"/static/{PLOTLY_JS}")}
    revoked_id, revoked = create_token(filled.engine, "admin", "old admin", "pytest")
    revoke_token(filled.engine, revoked_id, "pytest")
    for method, path in sorted(guarded):
        url = "/ui" + path.replace("{model_id}", str(filled.model_id))
        r = client.request(method, url)
        if method == "GET":  # a browser is sent to the login form, and back afterwards
            assert r.status_code == 303, url
            assert r.headers["location"] == f"/ui/login?next={url}"
        else:
            assert r.status_code == 401, url
        for bad in ("Bearer not-a-token", f"Bearer {revoked}", "Basic abc"):
            r = client.request(method, url, headers={"Authorization": bad})
            assert r.status_code == 401, (url, bad)
    for role, token in filled.tokens.items():
        for url in [*pages(filled), LIST_PAGE, *ASSETS]:
            r = client.get(url, headers=auth(token))
            allowed = role == "admin" or role == "analyst" or (
                role == "review" and url in (LIST_PAGE, *ASSETS))
            assert r.status_code == (200 if allowed else 403), (role, url)
            if not allowed:
                assert role in r.text and "admin" in r.text  # says what is needed
    for method, path in OPEN:
        assert client.request(method, "/ui" + path).status_code != 401


def test_login_gives_a_hardened_session_cookie_without_the_token(client, filled) -> None:
    token = filled.tokens["analyst"]
    r = login(client, token, "/ui/fairness")
    assert r.status_code == 303 and r.headers["location"] == "/ui/fairness"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("rudi_session="))
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/ui"} <= attributes
    value = client.cookies["rudi_session"]
    from rudikit.service.auth import hash_token

    assert token not in value and hash_token(token) not in value
    assert client.get("/ui/fairness").status_code == 200
    client.cookies.clear()

    def with_cookie(cookie_value: str) -> dict[str, str]:
        return {"Cookie": f"rudi_session={cookie_value}"}

    # a forged cookie (another token id, or a changed expiry) is no session
    token_id, expires, nonce, signature = value.split(".")
    for forged in (f"1.{expires}.{nonce}.{signature}",
                   f"{token_id}.{int(expires) + 99}.{nonce}.{signature}",
                   f"{token_id}.{expires}.{nonce}.{'0' * 64}", "garbage"):
        assert client.get("/ui/fairness", headers=with_cookie(forged)).status_code == 303
    page = client.get("/ui/monitoring", headers=with_cookie(value))
    assert page.status_code == 200
    # logging out needs the form's CSRF token, and clears the cookie
    assert client.post("/ui/logout", data={"csrf": "nope"},
                       headers=with_cookie(value)).status_code == 403
    r = client.post("/ui/logout", data={"csrf": csrf_of(page.text)},
                    headers=with_cookie(value))
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert 'rudi_session=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers[
        "set-cookie"]


def test_a_session_cookie_expires_after_session_seconds(filled) -> None:
    """By the injected clock: valid up to ``SESSION_SECONDS`` after issue, not a second more."""
    from rudikit.service.auth import Principal, hash_token
    from rudikit.service.ui.session import SESSION_SECONDS, Sessions
    from rudikit.store.production_tables import api_tokens

    digest = hash_token(filled.tokens["analyst"])
    with filled.engine.connect() as conn:
        row = conn.execute(select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role)
                           .where(api_tokens.c.token_hash == digest)).one()
    now = [1_700_000_000.0]
    sessions = Sessions(filled.engine, b"k" * 32, clock=lambda: now[0])
    cookie = sessions.issue(Principal(row.id, row.name, row.role), digest)
    now[0] += SESSION_SECONDS
    session = sessions.check(cookie)
    assert session is not None and session.principal.token_id == row.id
    now[0] += 1
    assert sessions.check(cookie) is None


def test_login_refuses_bad_tokens_roles_forms_and_redirects(client, filled) -> None:
    r = login(client, "rudi_not-a-real-token")
    assert r.status_code == 401 and "token: unknown or revoked" in r.text
    r = login(client, filled.tokens["predict"])
    assert r.status_code == 403
    assert "role 'predict' may not use the dashboard" in html.unescape(r.text)
    assert "rudi_session" not in client.cookies
    r = client.post("/ui/login", data={"csrf": "forged", "token": filled.tokens["analyst"]})
    assert r.status_code == 403 and "rudi_session" not in client.cookies
    r = login(client, filled.tokens["analyst"], "//evil.example/ui/")
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    # a reviewer lands on the list, the only page their role may see
    client.cookies.clear()
    r = login(client, filled.tokens["review"], "/ui/")
    assert r.status_code == 303 and r.headers["location"] == "/ui/lists"
    # revoking the token ends its sessions at once
    token_id, token = create_token(filled.engine, "analyst", "short-lived", "pytest")
    client.cookies.clear()
    assert login(client, token).status_code == 303
    assert client.get("/ui/").status_code == 200
    revoke_token(filled.engine, token_id, "pytest")
    assert client.get("/ui/").status_code == 303


# --- pages show what the store holds -------------------------------------------------------


def test_the_overview_shows_each_groups_evaluations_and_the_selection(client, filled) -> None:
    with filled.engine.connect() as conn:
        reason = conn.execute(select(t.models.c.selection_reason).where(
            t.models.c.id == filled.model_id)).scalar_one()
        evals = conn.execute(select(t.evaluations.c.model_id, t.evaluations.c.value,
                                    t.evaluations.c.lower, t.evaluations.c.upper)
                             .where(t.evaluations.c.metric == "roc_auc")).all()
    page = client.get("/ui/", headers=auth(filled.tokens["analyst"])).text
    assert reason and reason in html.unescape(page)
    for e in evals:  # every model's ROC AUC with its interval
        assert f"{e.value:.3f} <span class=\"ci\">[{e.lower:.3f}, {e.upper:.3f}]" in page
    with filled.engine.connect() as conn:
        groups = conn.execute(select(t.model_groups.c.id, t.model_groups.c.algorithm)).all()
    traces = {trace["name"] for trace in chart_specs(page)["chart-over-time"]["data"]}
    assert traces == {f"#{g.id} {g.algorithm}" for g in groups}
    r = client.get("/ui/", params={"metric": "precision_at_k|100_abs"},
                   headers=auth(filled.tokens["analyst"]))
    with filled.engine.connect() as conn:
        value = conn.execute(select(t.evaluations.c.value).where(
            t.evaluations.c.model_id == filled.model_id,
            t.evaluations.c.metric == "precision_at_k",
            t.evaluations.c.parameter == "100_abs")).scalar_one()
    assert "precision_at_k @ 100_abs" in r.text and f"{value:.3f}" in r.text


def test_the_model_page_shows_metrics_curves_and_importances(client, filled) -> None:
    with filled.engine.connect() as conn:
        evals = conn.execute(select(t.evaluations).where(
            t.evaluations.c.model_id == filled.model_id)).mappings().all()
        top = conn.execute(select(t.feature_importances).where(
            t.feature_importances.c.model_id == filled.model_id,
            t.feature_importances.c.rank == 1)).mappings().one()
    r = client.get(f"/ui/models/{filled.model_id}", headers=auth(filled.tokens["analyst"]))
    assert r.status_code == 200
    for e in evals:
        if e["value"] is not None and e["lower"] is not None:
            assert f"{e['value']:.3f} <span class=\"ci\">[{e['lower']:.3f}, " \
                   f"{e['upper']:.3f}]" in r.text, e["metric"]
    assert top["feature"] in r.text and f"{top['importance']:.4f}" in r.text
    assert {"chart-roc", "chart-pr", "chart-importance"} <= set(chart_specs(r.text))
    r = client.get("/ui/models/99999", headers=auth(filled.tokens["analyst"]))
    assert r.status_code == 404 and "no model 99999" in r.text
    r = client.get("/ui/models/abc", headers=auth(filled.tokens["analyst"]))
    assert r.status_code == 404 and "Traceback" not in r.text


def test_the_fairness_page_shows_group_metrics_and_requirements(client, filled) -> None:
    with filled.engine.connect() as conn:
        requirements = conn.execute(select(t.fairness_requirements).where(
            t.fairness_requirements.c.model_id == filled.model_id)).mappings().all()
        audit = conn.execute(select(t.fairness_audits).where(
            t.fairness_audits.c.model_id == filled.model_id,
            t.fairness_audits.c.metric == "precision",
            t.fairness_audits.c.attribute == "gender",
            t.fairness_audits.c.value.is_not(None))).mappings().first()
    assert requirements and audit
    page = client.get("/ui/fairness", headers=auth(filled.tokens["analyst"])).text
    for req in requirements:
        assert req["summary"] in html.unescape(page)
        assert f"{req['units_met']} / {req['units_evaluated']}" in page
    assert page.count('<span class="badge bad">not met</span>') == sum(
        requirement_status(r) == "not met" for r in requirements)
    assert page.count('<span class="badge ok">met</span>') == sum(
        requirement_status(r) == "met" for r in requirements)
    assert page.count('<span class="badge warn">inconclusive</span>') == sum(
        requirement_status(r) == "inconclusive" for r in requirements)
    assert f"{audit['value']:.3f}" in page and audit["group_value"] in page
    assert len([k for k in chart_specs(page) if k.startswith("chart-audit-")]) >= 3
    assert "(deployed)" in page  # the deployed model is the one shown
    r = client.get("/ui/fairness", params={"model": "x"}, headers=auth(filled.tokens["admin"]))
    assert r.status_code == 404 and "model: 'x' is not a model id" in html.unescape(r.text)


def test_the_monitoring_page_empty_then_with_alerts_drift_and_performance(client, filled
                                                                          ) -> None:
    analyst = auth(filled.tokens["analyst"])
    r = client.get("/ui/monitoring", headers=analyst)
    if 'id="no-monitor-run"' in r.text:  # the first time this module's store is used
        assert "No monitor run yet" in r.text
        add_monitor_run(filled.engine, filled.model_id, filled.group_id)
        r = client.get("/ui/monitoring", headers=analyst)
    page = r.text
    assert 'id="no-monitor-run"' not in page
    critical = page.index("object_of_search has drifted badly")
    warning = page.index("force has drifted (PSI 0.172")
    assert critical < warning  # critical first, though stored second
    for feature, psi in DRIFT:
        assert f"<td>{feature}</td><td class=\"num\">{psi:.3f}</td>" in page
    assert '<td class="num">0.287</td>' in page and "Age over 34" in page
    drift = chart_specs(page)["chart-drift"]["data"][0]
    assert list(drift["x"]) == [f for f, _ in sorted(DRIFT, key=lambda d: -d[1])]
    assert "chart-performance" in chart_specs(page)


# --- the intervention list: API and page -----------------------------------------------------


def test_the_list_api_ranks_the_day_and_leaves_out_reviewed_entities(client, filled) -> None:
    day = list_date(filled)
    expected = scored_on(filled, day)
    reviewer = auth(filled.tokens["review"])
    with filled.engine.connect() as conn:
        reviewed = set(conn.execute(select(entity_reviews.c.entity_id)).scalars())
    expected = [e for e in expected if e[0] not in reviewed]
    r = client.get(f"/lists/{day}", params={"k": 5}, headers=reviewer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "predictions" and body["model_id"] == filled.model_id
    assert [(e["entity_id"], e["score"]) for e in body["entries"]] == expected[:5]
    assert [e["rank"] for e in body["entries"]] == [1, 2, 3, 4, 5]
    first = body["entries"][0]["entity_id"]
    review = {"entity_id": first, "list_date": str(day), "agreement": "disagree",
              "decision": "no_action", "notes": "known to the team"}
    r = client.post("/reviews", json=review, headers=reviewer)
    assert r.status_code == 201, r.text
    assert r.json()["reviewer"] == "review user" and r.json()["decision"] == "no_action"
    with filled.engine.connect() as conn:
        stored = conn.execute(select(entity_reviews).where(
            entity_reviews.c.id == r.json()["id"])).mappings().one()
    assert (stored["entity_id"], stored["agreement"], stored["outcome"], stored["notes"],
            stored["model_group_id"]) == (first, "disagree", "no_action", "known to the team",
                                          filled.group_id)
    after = client.get(f"/lists/{day}", params={"k": 5}, headers=reviewer).json()
    assert first not in [e["entity_id"] for e in after["entries"]]
    assert after["entries"][0]["original_rank"] == 2
    assert after["reviewed_excluded"] == body["reviewed_excluded"] + 1
    assert client.post("/reviews", json=review, headers=reviewer).status_code == 409
    r = client.post("/reviews", json={**review, "entity_id": "nobody"}, headers=reviewer)
    assert r.status_code == 404 and "nobody" in r.json()["detail"]
    r = client.post("/reviews", json={**review, "agreement": "maybe", "decision": None},
                    headers=reviewer)
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"agreement", "decision"}
    for params, field in (({}, "date"), ({"k": "0"}, "k"), ({"cool_off_days": "x"},
                                                            "cool_off_days")):
        url = "/lists/31-01-2020" if field == "date" else f"/lists/{day}"
        r = client.get(url, params=params, headers=reviewer)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    assert client.post("/reviews", json=review,
                       headers=auth(filled.tokens["analyst"])).status_code == 403
    assert client.get(f"/lists/{day}", headers=auth(filled.tokens["predict"])
                      ).status_code == 403


def test_a_reviewer_records_a_review_on_the_list_page_with_csrf(client, filled) -> None:
    day = list_date(filled)
    assert login(client, filled.tokens["review"], "/ui/lists").status_code == 303
    page = client.get("/ui/lists", params={"date": str(day), "k": 10})
    assert page.status_code == 200
    listed = re.findall(r'<tr data-entity="([^"]+)">', page.text)
    assert listed
    entity = listed[0]
    form = {"csrf": csrf_of(page.text), "entity_id": entity, "list_date": str(day), "k": "10",
            "agreement": "agree", "decision": "debrief_officer", "notes": "spoke to <b>them</b>"}

    def stored() -> list[Any]:
        with filled.engine.connect() as conn:
            return conn.execute(select(entity_reviews).where(
                entity_reviews.c.entity_id == entity)).mappings().all()

    for bad in ({**form, "csrf": ""}, {**form, "csrf": "0" * 64},
                {k: v for k, v in form.items() if k != "csrf"}):
        assert client.post("/ui/lists/reviews", data=bad).status_code == 403
    assert stored() == []
    r = client.post("/ui/lists/reviews", data={**form, "agreement": "perhaps"})
    assert r.status_code == 422 and "agreement" in r.text and stored() == []
    r = client.post("/ui/lists/reviews", data=form)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/lists?" + urlencode(
        {"date": str(day), "k": "10", "reviewed": entity})
    rows = stored()
    assert [(x["agreement"], x["outcome"], x["notes"], x["reviewer"]) for x in rows] == [
        ("agree", "debrief_officer", "spoke to <b>them</b>", "review user")]
    after = client.get(r.headers["location"])
    assert f'<tr data-entity="{entity}">' not in after.text
    assert "spoke to &lt;b&gt;them&lt;/b&gt;" in after.text  # shown escaped
    # an analyst sees the list but may not record reviews
    client.cookies.clear()
    login(client, filled.tokens["analyst"], "/ui/lists")
    page = client.get("/ui/lists", params={"date": str(day)})
    assert page.status_code == 200 and 'action="/ui/lists/reviews"' not in page.text
    r = client.post("/ui/lists/reviews", data={**form, "csrf": csrf_of(page.text)})
    assert r.status_code == 403 and len(stored()) == 1


def test_a_request_scored_deployment_lists_the_days_requests(
        store: tuple[str, str | None], tmp_path_factory: pytest.TempPathFactory,
        tmp_path) -> None:
    """Stop-and-search: once /predict has been used, the list is that day's requests."""
    url, schema = store
    s = service_store(url, schema, trained(tmp_path_factory))
    app = create_app(ServiceSettings(project_dir=tmp_path, database_url=url, schema=schema))
    with TestClient(app, follow_redirects=False) as client:
        latitudes = [50.1, 51.9, 53.4, 52.2]
        r = client.post("/predict", headers=auth(s.tokens["predict"]), json={"observations": [
            observation(f"obs-{i}", latitude=lat, gender=["Male", "Female"][i % 2])
            for i, lat in enumerate(latitudes)]})
        assert r.status_code == 200
        scores = {p["observation_id"]: p["score"] for p in r.json()["predictions"]}
        today = datetime.now(UTC).date()
        reviewer = auth(s.tokens["review"])
        body = client.get(f"/lists/{today}", params={"k": 3}, headers=reviewer).json()
        assert body["source"] == "production_predictions"
        ranked = sorted(scores, key=lambda o: (-scores[o], o))
        assert [e["entity_id"] for e in body["entries"]] == ranked[:3]
        assert client.post("/reviews", headers=reviewer, json={
            "entity_id": ranked[0], "list_date": str(today), "agreement": "unsure",
            "decision": "grounds_confirmed"}).status_code == 201
        body = client.get(f"/lists/{today}", params={"k": 3}, headers=reviewer).json()
        assert [e["entity_id"] for e in body["entries"]] == ranked[1:4]
        page = client.get("/ui/lists", headers=reviewer)  # defaults to the newest day
        assert page.status_code == 200 and f"Intervention list for {today}" in page.text
        assert "<dt>latitude</dt><dd>53.4</dd>" in page.text  # the case fields, laid out
        monitoring = client.get("/ui/monitoring", headers=auth(s.tokens["analyst"])).text
        assert re.search(r"<b>1</b><span>requests</span>", monitoring)
        assert re.search(r"<b>4</b><span>predictions</span>", monitoring)
        assert "chart-traffic" in chart_specs(monitoring)
    s.engine.dispose()


# --- offline assets ------------------------------------------------------------------------


def test_plotly_is_served_locally_with_caching_and_no_page_uses_a_cdn(client, filled) -> None:
    analyst = auth(filled.tokens["analyst"])
    r = client.get(f"/ui/static/{PLOTLY_JS}", headers={**analyst, "Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "immutable" in r.headers["cache-control"]
    assert r.headers["content-encoding"] == "gzip"
    from plotly.offline import get_plotlyjs

    assert r.content == get_plotlyjs().encode()  # httpx undid the gzip
    again = client.get(f"/ui/static/{PLOTLY_JS}",
                       headers={**analyst, "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    login_page = client.get("/ui/login").text
    for url in [*pages(filled), LIST_PAGE, "/ui/login"]:
        r = client.get(url, headers=analyst) if url != "/ui/login" else client.get(url)
        page = r.text
        assert r.status_code == 200, url
        assert not re.search(r"https?://cdn", page, re.I), url
        assert not re.search(r"""(src|href)=["']https?://""", page), url
        for src in re.findall(r'<script src="([^"]+)"', page):
            assert src.startswith("/ui/static/"), (url, src)
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "<script>" not in page  # no inline script for the CSP to allow
    assert "plotly" not in login_page  # nothing loaded before logging in
