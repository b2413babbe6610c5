"""The deploy gate of `rudi deploy` on a real small project run: a group with a fairness
requirement not met, an unanswered rationale question or a source without a data card is
refused (exit 1, nothing stored) unless `--waive "reason"` is given; the waiver reaches the
audit log, the model card and the dashboard; the requirement verdicts are read by one rule."""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import example_config, write_project
from fastapi.testclient import TestClient
from sklearn.metrics import precision_score, recall_score
from sqlalchemy import func, insert, select
from test_service_support import auth
from typer.testing import CliRunner

from rudikit.cli import app as cli
from rudikit.cli.develop import requirement_verdicts
from rudikit.cli.terminal import console
from rudikit.config import load_project
from rudikit.reports.cards import render_markdown
from rudikit.reports.model_card import build_model_card
from rudikit.reports.run_report import write_run_report
from rudikit.run.develop import run_project
from rudikit.run.engine import RunResult
from rudikit.service.app import create_app
from rudikit.service.auth import create_token
from rudikit.service.gate import check
from rudikit.service.settings import ServiceSettings
from rudikit.store import production_tables as pt
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.queries.fairness import (
    INCONCLUSIVE,
    INSUFFICIENT,
    MET,
    NOT_MET,
    combined_status,
    model_requirement_statuses,
    requirement_status,
)

runner = CliRunner()
MODELS = [{"algorithm": "rate_by_category", "params": {"column": "object_of_search"}},
          {"algorithm": "logistic_regression", "params": {"C": [1.0]}}]
WAIVER = "six-month trial in one force, fairness reviewed monthly by the ethics board"


def _fairness() -> dict[str, Any]:
    """The example's fairness section plus one requirement the chosen model fails with
    statistical support: "not met" needs a gap over the bound that a corrected test supports,
    which the example's four need not show on this small synthetic sample."""
    fairness = example_config()["fairness"]
    fairness["requirements"].append({"name": "selection rate across forces within 0.5 points",
                                     "metric": "selection_rate", "unit": "force",
                                     "max_gap_pp": 0.5})
    return fairness


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResult]:
    """The small synthetic stop-and-search project, run once. Its fairness section is the
    example's (operating point threshold 0.25, four requirements, mitigation) with a fifth
    (:func:`_fairness`), and rationale.users_and_training is left empty."""
    folder = write_project(tmp_path_factory.mktemp("gate") / "proj", models=MODELS,
                           fairness=_fairness())
    result = run_project(folder)
    assert result.selected is not None
    return folder, result


@pytest.fixture(scope="module")
def trained(run: tuple[Path, RunResult]) -> tuple[Path, int, int]:
    """(folder, chosen group, its model)."""
    folder, result = run
    assert result.selected is not None
    return folder, result.selected.model_group_id, result.selected.model_id


@pytest.fixture
def project(trained: tuple[Path, int, int], tmp_path: Path) -> tuple[Path, int, int]:
    """A copy of the trained project, so each test starts with nothing deployed."""
    folder, group, model = trained
    copy = tmp_path / "proj"
    shutil.copytree(folder, copy)
    return copy, group, model


def _stored(folder: Path) -> tuple[int, int]:
    engine = open_store(None, folder)
    with engine.connect() as conn:
        counts = (conn.execute(select(func.count()).select_from(pt.deployed_models)).scalar_one(),
                  conn.execute(select(func.count()).select_from(pt.audit_log)).scalar_one())
    engine.dispose()
    return counts


def _requirement_rows(folder: Path, model_id: int) -> list[dict[str, Any]]:
    engine = open_store(None, folder)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(t.fairness_requirements).where(
            t.fairness_requirements.c.model_id == model_id)).mappings()]
    engine.dispose()
    return rows


# --- the one status rule ---------------------------------------------------------------------


def _row(*statuses: str, passed: bool = False, evaluated: int | None = None) -> dict[str, Any]:
    units = [{"status": s} for s in statuses]
    return {"passed": passed, "outcomes": units, "units_evaluated": evaluated if evaluated
            is not None else sum(s != INSUFFICIENT for s in statuses)}


def test_a_stored_result_reads_as_one_of_four_verdicts() -> None:
    assert requirement_status(_row(MET, MET, INSUFFICIENT, passed=True)) == MET
    assert requirement_status(_row(MET, NOT_MET, INCONCLUSIVE)) == NOT_MET
    # a gap over the bound without statistical support is not a breach
    assert requirement_status(_row(MET, INCONCLUSIVE, INSUFFICIENT)) == INCONCLUSIVE
    assert requirement_status(_row(INSUFFICIENT, INSUFFICIENT)) == INSUFFICIENT
    # a result stored without unit statuses: passed decides, no evaluated unit is no data
    assert requirement_status(_row(passed=True, evaluated=1)) == MET
    assert requirement_status(_row(passed=False, evaluated=2)) == NOT_MET
    assert requirement_status(_row(passed=False, evaluated=0)) == INSUFFICIENT
    assert combined_status([]) == INSUFFICIENT
    assert combined_status([INSUFFICIENT, MET, INCONCLUSIVE]) == INCONCLUSIVE


def test_the_runs_verdicts_agree_with_the_stored_pass_flags(trained) -> None:
    """The stored results read back as the verdict rules gave them: met exactly when the
    result passed, insufficient data exactly when no unit was evaluated, else not met or
    inconclusive as the units say, which the stored summary starts with."""
    folder, _, model = trained
    rows = _requirement_rows(folder, model)
    assert len(rows) == 5
    for r in rows:
        status = requirement_status(r)
        assert (status == MET) == bool(r["passed"]), r["name"]
        assert (status == INSUFFICIENT) == (not r["units_evaluated"]), r["name"]
        assert r["summary"].startswith(status), r["name"]
    engine = open_store(None, folder)
    statuses = model_requirement_statuses(engine, model)
    engine.dispose()
    assert [s.name for s in statuses] == [r["name"] for r in rows]
    # the stored summary, without the verdict it may start with (shown beside it)
    assert [s.summary for s in statuses] == [
        r["summary"].removeprefix(f"{requirement_status(r)}: ") for r in rows]


# --- rudi deploy -----------------------------------------------------------------------------


def test_a_failing_group_is_refused_naming_the_failed_items_and_nothing_is_stored(
        project) -> None:
    folder, group, model = project
    rows = _requirement_rows(folder, model)
    not_met = [r["name"] for r in rows if requirement_status(r) == "not met"]
    assert not_met, [r["summary"] for r in rows]
    r = runner.invoke(cli, ["deploy", str(group), str(folder), "--reason", "best ROC AUC"])
    assert r.exit_code == 1, r.output
    out = " ".join(r.output.split())  # error lines wrap at 80 columns
    assert "Traceback" not in out and "fails the deploy gate" in out
    for name in not_met:
        assert f"fairness requirement '{name}': not met" in out
    assert "model card 'rationale.users_and_training': not answered" in out
    assert "Nothing was deployed" in out and "--waive" in out
    assert _stored(folder) == (0, 0)
    # a waiver needs its reason
    r = runner.invoke(cli, ["deploy", str(group), str(folder), "--reason", "x", "--waive", " "])
    assert r.exit_code == 2 and "--waive needs a reason" in r.output
    # bad input is refused as such, before the gate
    r = runner.invoke(cli, ["deploy", str(group), str(folder), "--reason", "x", "--threshold",
                            "1.5", "--waive", WAIVER])
    assert r.exit_code == 2 and "--threshold must be between 0 and 1, got 1.5" in r.output
    r = runner.invoke(cli, ["deploy", "999", str(folder), "--reason", "x"])
    assert r.exit_code == 2 and "no model group 999" in r.output
    assert _stored(folder) == (0, 0)


def test_a_waiver_deploys_and_is_shown_in_the_audit_log_card_and_dashboard(project) -> None:
    folder, group, model = project
    r = runner.invoke(cli, ["deploy", str(group), str(folder), "--reason", "best ROC AUC",
                            "--by", "inspector.khan", "--waive", WAIVER])
    assert r.exit_code == 0, r.output
    assert "threshold 0.25" in r.output  # the project's operating point (fairness.at)
    assert "Deployed with a waiver by inspector.khan" in r.output
    # the monitor's reference is fitted at deploy time, so its first pass reads one row
    assert "Stored the reference profile the monitor compares production with" in r.output
    engine = open_store(None, folder)
    report = check(engine, group, model, load_project(folder))
    failing = [str(i) for i in report.failing]
    with engine.connect() as conn:
        row = conn.execute(select(pt.deployed_models)).mappings().one()
        log = conn.execute(select(pt.audit_log)).mappings().one()
    assert row["model_id"] == model and row["threshold"] == 0.25 and row["live"]
    assert monitoring_q.has_reference_profile(engine, row["id"])
    assert row["waiver"] == {"reason": WAIVER, "by": "inspector.khan", "failing": failing}
    assert log["action"] == "deploy" and log["actor"] == "inspector.khan"
    assert log["details"]["waiver"] == row["waiver"]
    assert log["details"]["requirements"] == {s.name: s.status for s in report.requirements}
    card = render_markdown(build_model_card(engine, group, project=load_project(folder)))
    status = card[card.index("Status of this model group"):card.index("## Results")]
    assert f"WAIVER of the deploy gate by inspector.khan: {WAIVER}" in status
    assert all(item in status for item in failing)
    assert "not met" in status and "threshold 0.25" in status
    _, token = create_token(engine, "analyst", "board", "pytest")
    app = create_app(ServiceSettings(project_dir=folder, database_url=None))
    with TestClient(app) as client:
        page = html.unescape(client.get("/ui/", headers=auth(token)).text)
    assert 'id="waiver"' in page and WAIVER in page and "inspector.khan" in page
    assert all(item in page for item in failing)
    for s in report.requirements:
        assert s.name in page
    engine.dispose()
    r = runner.invoke(cli, ["deployments", str(folder)])
    assert r.exit_code == 0, r.output
    assert "WAIVED" in r.output and WAIVER in " ".join(r.output.split())


def test_another_threshold_is_shown_with_its_precision_and_recall(project) -> None:
    folder, group, model = project
    r = runner.invoke(cli, ["deploy", str(group), str(folder), "--reason", "r",
                            "--threshold", "0.5", "--waive", WAIVER])
    assert r.exit_code == 0, r.output
    engine = open_store(None, folder)
    with engine.connect() as conn:
        preds = conn.execute(select(t.predictions.c.score, t.predictions.c.label).where(
            t.predictions.c.model_id == model)).all()
    engine.dispose()
    score = np.array([p.score for p in preds])
    label = np.array([p.label for p in preds])
    out = " ".join(r.output.split())
    assert "Threshold 0.5 is not the project's operating point 0.25 (fairness.at)" in out
    for threshold in (0.5, 0.25):
        flagged = score >= threshold
        precision = precision_score(label, flagged, zero_division=np.nan)
        recall = recall_score(label, flagged)
        assert (f"at {threshold:g} precision {precision:.3f}, recall {recall:.3f} "
                f"({flagged.sum():,} flagged)") in out


def test_a_group_that_passes_deploys_without_a_waiver(tmp_path: Path) -> None:
    """Requirements loose enough to hold, every rationale question answered: no waiver is
    needed, and one offered is not recorded."""
    base = write_project(tmp_path / "base")
    config = load_project(base)
    rationale = config.rationale.model_dump(mode="json")
    rationale["users_and_training"] = "Custody sergeants, after a half-day course."
    fairness = config.fairness.model_dump(mode="json", exclude_none=True)
    fairness["mitigation"] = None
    for requirement in fairness["requirements"]:
        requirement["max_gap_pp"] = 100
    folder = write_project(tmp_path / "proj", models=MODELS[:1], rationale=rationale,
                           fairness={k: v for k, v in fairness.items() if v is not None})
    result = run_project(folder)
    group = result.selected.model_group_id
    r = runner.invoke(cli, ["deploy", str(group), str(folder), "--reason", "meets all",
                            "--waive", "just in case"])
    assert r.exit_code == 0, r.output
    assert "nothing needed waiving" in r.output and "not met" not in r.output
    engine = open_store(None, folder)
    with engine.connect() as conn:
        row = conn.execute(select(pt.deployed_models)).mappings().one()
        log = conn.execute(select(pt.audit_log)).mappings().one()
    engine.dispose()
    assert row["waiver"] is None and "waiver" not in log["details"]
    assert set(log["details"]["requirements"].values()) <= {MET, INSUFFICIENT}


def test_the_gate_refuses_only_a_requirement_not_met(project) -> None:
    """Results stored per list date (as a temporal project stores them): one date not met
    makes the requirement not met; inconclusive dates are shown but not refused."""
    folder, group, model = project
    engine = open_store(None, folder)
    rows = [("listed share", "top_k=10@2014-01-01", [MET]),
            ("listed share", "top_k=10@2015-01-01", [NOT_MET, MET]),
            ("listed share", "top_k=10@2016-01-01", [INSUFFICIENT]),
            ("precision by race", "top_k=10@2014-01-01", [INCONCLUSIVE, MET]),
            ("precision by race", "top_k=10@2015-01-01", [MET])]
    with engine.begin() as conn:
        conn.execute(t.fairness_requirements.delete().where(
            t.fairness_requirements.c.model_id == model))
        for name, selection, units in rows:
            conn.execute(insert(t.fairness_requirements).values(
                model_id=model, selection=selection, name=name, metric="pprev", max_gap_pp=5,
                passed=units == [MET], units_met=units.count(MET),
                units_evaluated=sum(u != INSUFFICIENT for u in units), summary="s",
                outcomes=[{"status": u} for u in units], created_at=func.now()))
    statuses = {s.name: s for s in model_requirement_statuses(engine, model)}
    assert statuses["listed share"].status == NOT_MET
    assert statuses["listed share"].summary == ("not met on 1 of 3 list dates, met on 1 of 3 "
                                                "list dates, insufficient data on 1 of 3 list "
                                                "dates")
    assert statuses["precision by race"].status == INCONCLUSIVE
    report = check(engine, group, model, load_project(folder))
    engine.dispose()
    named = [i.name for i in report.failing if i.kind == "fairness requirement"]
    assert named == ["listed share"]


def test_the_run_summary_and_report_show_each_requirements_verdict(run, tmp_path) -> None:
    """`rudi run`'s summary lists the verdicts of the chosen model, its mitigated variant and
    the live deployment; the run report's chosen-model box lists the chosen model's."""
    folder, result = run
    copy = tmp_path / "proj"
    shutil.copytree(folder, copy)
    chosen, mitigated = result.selected, result.mitigated
    assert chosen is not None and mitigated is not None
    r = runner.invoke(cli, ["deploy", str(mitigated.model_group_id), str(copy), "--reason", "r",
                            "--waive", WAIVER])
    assert r.exit_code == 0, r.output
    with console.capture() as captured:
        requirement_verdicts(copy, None, result)
    out = " ".join(captured.get().split())
    engine = open_store(None, copy)
    for title, model_id in ((f"Chosen model {chosen.model_id}", chosen.model_id),
                            (f"Mitigated model {mitigated.model_id}", mitigated.model_id),
                            (f"Live deployment 1 (model {mitigated.model_id}", mitigated.model_id)):
        assert title in out
        for s in model_requirement_statuses(engine, model_id):
            assert f"{s.status}: {s.name} ({s.summary})" in out
    report = write_run_report(engine, result.run_id, tmp_path).read_text()
    engine.dispose()
    box = html.unescape(report[report.index('<div class="banner chosen">'):])
    box = box[:box.index("</div></div>")]
    statuses = [requirement_status(r) for r in _requirement_rows(copy, chosen.model_id)]
    assert box.count('<span class="verdict ') == len(statuses) == 5
    for status in statuses:
        assert f'<span class="verdict {status.replace(" ", "-")}">{status}</span>' in box
