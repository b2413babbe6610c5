"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `rudi serve`
on a loopback port. Logs in with a token, opens every page, checks plotly drew its charts,
records a review through the form and finds it in the store. Screenshots go to
test-artifacts/ (look at them when the pages change)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_dashboard_support import DashboardStore, add_monitor_run, dashboard_store
from test_service_support import HANG_GUARD, REPO, LiveServer

from rudikit.store.list_tables import entity_reviews

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"


REQUIRE_BROWSER = "RUDI_REQUIRE_BROWSER"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, which the tests use but never install (.ci/run installs it); missing,
    it skips the tests, or fails them when RUDI_REQUIRE_BROWSER=1 (as .ci/run sets)."""
    playwright_api = pytest.importorskip("playwright.sync_api",
                                         reason="pip install -e '.[dev]' installs playwright")
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does)"
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{message}; {REQUIRE_BROWSER}=1 makes this a failure", pytrace=False)
        pytest.skip(f"{message}; set {REQUIRE_BROWSER}=1 to make this a failure")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DashboardStore, str]]:
    folder = tmp_path_factory.mktemp("browser-project")
    s = dashboard_store(folder, f"sqlite:///{folder / 'rudi.db'}", None)
    add_monitor_run(s.engine, s.model_id, s.group_id)
    server = LiveServer(folder, s.url, None)
    try:
        server.wait_ready()
        yield s, server.base
    finally:
        server.stop()
        s.engine.dispose()


def log_in(page: Any, base: str, token: str, start: str) -> None:
    page.goto(base + start)
    assert "/ui/login" in page.url  # sent to the login form first
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def charts_drawn(page: Any) -> int:
    """How many charts plotly drew (each gets .js-plotly-plot and an SVG)."""
    expected = page.locator("script[data-chart]").count()
    if expected:  # (a locator, not an evaluated string: the page's CSP forbids eval)
        page.locator(".js-plotly-plot svg.main-svg").nth(expected - 1).wait_for(
            timeout=HANG_GUARD * 1000)  # a hang guard, not a speed claim
    return page.locator(".js-plotly-plot").count()


def test_every_page_renders_its_charts_in_chromium(browser, served) -> None:
    s, base = served
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    offsite: list[str] = []
    page.on("request", lambda r: offsite.append(r.url) if not r.url.startswith(base) else None)
    log_in(page, base, s.tokens["analyst"], "/ui/")
    assert page.url == base + "/ui/"
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["rudi_session"]["httpOnly"] and cookies["rudi_session"]["sameSite"] == "Strict"
    expected_charts = {"/ui/": 1, f"/ui/models/{s.model_id}": 3, "/ui/fairness": 3,
                       "/ui/monitoring": 2, "/ui/lists": 0}
    for path, at_least in expected_charts.items():
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        drawn = charts_drawn(page)
        assert drawn >= at_least, (path, drawn)
        name = path.removeprefix("/ui/").replace("/", "-") or "overview"
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
    # choosing another metric redraws the comparison
    page.goto(base + "/ui/")
    page.select_option("#metric", "precision_at_k|100_abs")
    page.wait_for_url("**metric=precision_at_k*")
    assert charts_drawn(page) == 1 and "precision_at_k @ 100_abs" in page.content()
    assert errors == []
    assert offsite == []  # everything, plotly.js included, came from the service
    context.close()


def test_a_reviewer_records_a_review_in_chromium(browser, served) -> None:
    s, base = served
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    log_in(page, base, s.tokens["review"], "/ui/lists")
    assert "/ui/lists" in page.url
    first = page.locator("table#list tbody tr").first
    entity = first.get_attribute("data-entity")
    assert entity
    first.locator("select[name=agreement]").select_option("disagree")
    first.locator("select[name=decision]").select_option("debrief_officer")
    first.locator("textarea[name=notes]").fill("Flag explained by a court posting")
    first.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert f"Review of {entity} stored" in page.content()
    assert page.locator(f'table#list tr[data-entity="{entity}"]').count() == 0
    page.screenshot(path=str(ARTIFACTS / "dashboard-lists-reviewed.png"), full_page=True)
    with s.engine.connect() as conn:
        rows = conn.execute(select(entity_reviews).where(entity_reviews.c.entity_id == entity)
                            ).mappings().all()
    assert [(r["agreement"], r["outcome"], r["notes"], r["reviewer"]) for r in rows] == [
        ("disagree", "debrief_officer", "Flag explained by a court posting", "review user")]
    # the reviewer's role does not open the analysts' pages
    response = page.goto(base + "/ui/fairness")
    assert response is not None and response.status == 403
    context.close()
