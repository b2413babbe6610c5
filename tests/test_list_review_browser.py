"""An early-intervention list in Chromium as the `review` role (issue 19): the alerts on the
list's model, each officer's reasons in words, history, previous rank and outcome; a review
recorded, then corrected, with the corrected one kept. One `rudi serve` and one browser for the
module; screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_dashboard_browser import ARTIFACTS, browser, log_in  # noqa: F401 - browser: a fixture
from test_service_support import LiveServer

from rudikit.store import list_tables as lt
from tests.list_review_support import ALERTS, FIRST, EisLists, eis_lists

pytestmark = pytest.mark.xdist_group("list_review")  # with the API tests: one developed project


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EisLists, str]]:
    s = eis_lists(tmp_path_factory)
    server = LiveServer(s.folder, f"sqlite:///{s.folder / '.rudi' / 'rudi.db'}", None)
    try:
        server.wait_ready()
        yield s, server.base
    finally:
        server.stop()
        s.engine.dispose()


def reviews_of(s: EisLists, entity: str) -> list[dict[str, Any]]:
    from sqlalchemy import select

    with s.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(lt.entity_reviews).where(
            lt.entity_reviews.c.entity_id == entity).order_by(lt.entity_reviews.c.id)
        ).mappings()]


def test_a_reviewer_reads_the_list_records_and_corrects_a_review_in_chromium(
        browser, served) -> None:  # noqa: F811 - the imported fixture
    s, base = served
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, base, s.tokens["review"], f"/ui/lists?date={FIRST:%Y-%m-%d}")
    assert "/ui/lists" in page.url
    # the alerts on the list's model group, critical first, read-only
    alerts = page.locator("table#list-alerts tbody tr")
    assert alerts.count() == len(ALERTS)
    assert "critical" in alerts.nth(0).inner_text()
    for _, _, message in ALERTS:
        assert message in page.locator("table#list-alerts").inner_text()
    assert page.locator("table#list-alerts form, table#list-alerts button").count() == 0
    # each officer: reasons in words with their standing, history by year, outcome
    first = page.locator("table#list > tbody > tr").first
    entity = first.get_attribute("data-entity")
    assert entity
    reasons = first.locator("ul.reasons li")
    assert reasons.count() >= 3
    text = reasons.first.inner_text()
    assert "% of officers)" in text and "_" not in text.split(":")[0]
    history = first.locator("table.history")
    years = history.locator("thead th")  # a list of 1 January: the five years before it
    assert [years.nth(i).inner_text() for i in (1, 5)] == ["2007", "2011"]
    assert history.locator("tbody th").first.inner_text() == "complaints"
    assert "any complaint in the year after the list: " in first.locator(".outcome").inner_text()
    page.screenshot(path=str(ARTIFACTS / "list-eis.png"), full_page=True)
    # record a review of the first officer
    first.locator("select[name=agreement]").select_option("agree")
    first.locator("select[name=decision]").select_option(label="Supervisor meeting")
    first.locator("textarea[name=notes]").fill("Meeting booked for Monday")
    first.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert f"Review of {entity} stored" in page.locator(".flash.ok").inner_text()
    assert page.locator(f'table#list tr[data-entity="{entity}"]').count() == 0
    recorded = page.locator(f'table#reviews tr[data-entity="{entity}"]')
    assert recorded.count() == 1 and "Supervisor meeting" in recorded.inner_text()
    assert "in force" in recorded.inner_text()
    # then correct it: a new review supersedes it, the first is kept
    recorded.locator("details.correct summary").click()
    form = recorded.locator("details.correct form")
    form.locator("select[name=agreement]").select_option("disagree")
    form.locator("select[name=decision]").select_option(label="No action")
    form.locator("textarea[name=notes]").fill("The complaints were one incident")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert "Correction of the review" in page.locator(".flash.ok").inner_text()
    rows = page.locator(f'table#reviews tr[data-entity="{entity}"]')
    assert rows.count() == 2
    newest, kept = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert "No action" in newest and "in force" in newest and "corrects #" in newest
    assert "Supervisor meeting" in kept and "corrected by #" in kept
    page.screenshot(path=str(ARTIFACTS / "list-eis-corrected.png"), full_page=True)
    stored = reviews_of(s, entity)
    assert [(r["outcome"], r["agreement"], r["supersedes"]) for r in stored] == [
        ("supervisor_meeting", "agree", None), ("no_action", "disagree", stored[0]["id"])]
    assert stored[0]["notes"] == "Meeting booked for Monday"
    assert errors == []
    context.close()
