"""Data and model cards: every RUDI template field is there, the numbers are the store's, empty
fields say so, and `rudi card` fails clearly on a bad id."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn import metrics as skm
from sqlalchemy import select
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.config import load_project
from rudikit.data.sources import load_source
from rudikit.data.synthetic import generate_archive
from rudikit.reports.cards import render_html, render_markdown
from rudikit.reports.data_card import build_data_card
from rudikit.reports.model_card import build_model_card
from rudikit.reports.run_report import write_run_report_and_cards
from rudikit.run.develop import run_project
from rudikit.run.engine import RunResult
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from tests.conftest import write_project

runner = CliRunner()

#: The RUDI data card template's fields, as the card words them.
DATA_FIELDS = [
    "Senior responsible officer", "Data owner", "File names", "File format",
    "Purpose and content of the dataset, with keywords", "Dataset size", "Version history",
    "Data governance plan", "Share of missing values in the relevant variables",
    "Nature and causes of the missing values", "How missing values are handled",
    "How missingness was assessed", "Why source 'searches' was included",
    "Variables and what they mean", "How the data was sampled from the source",
    "How it was split into training and test sets", "Data cleaning",
    "The labels and the criteria for each", "What data trains and tests the model, and why",
]
#: The RUDI model card template's fields.
MODEL_FIELDS = [
    "Senior responsible officer", "File names", "Date and version", "Type of model", "Aim",
    "Who will use the output", "Appropriate cases", "Inappropriate cases",
    "Which groups are in the data, why these, and how they are defined",
    "Known groups missing from the data", "Unitary results (per group), with uncertainty",
    "Intersectional results (groups combined), with uncertainty",
    "Groups for which model performance may vary",
    "Have differences been reported for all relevant attributes",
    "What has been done to mitigate bias", "Performance measures, and why they were chosen",
    "Decision thresholds, and why", "How uncertainty and variability were calculated",
    "Risks in using the model", "Risk mitigation strategies used during development",
    "Known or expected changes in the population or in data collection",
    "What triggers an update, and at which thresholds",
    "Who updates the model, and how changes are communicated",
]


@pytest.fixture(scope="module")
def project_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResult]:
    """One run of the small stop-and-search project with the example's governance answers,
    reading archive files as real data would be read (written by the synthetic generator)."""
    root = tmp_path_factory.mktemp("cards")
    generate_archive(root / "data", months=("2019-12", "2020-01", "2020-02"), seed=3,
                     rows_per_month=1500)
    folder = _archive_project(root)
    return folder, run_project(folder, write_report=write_run_report_and_cards)


def _archive_project(root: Path) -> Path:
    return write_project(root / "proj", data={"sources": [
        {"name": "searches", "kind": "police_uk_archive", "path": str(root / "data")}]})


def _store(folder: Path) -> dict[str, pd.DataFrame]:
    engine = open_store(None, folder)
    with engine.connect() as conn:
        read = {name: pd.DataFrame(conn.execute(select(table)).mappings().all())
                for name, table in (("snapshots", t.data_snapshots), ("models", t.models),
                                    ("groups", t.model_groups), ("audits", t.fairness_audits),
                                    ("predictions", t.predictions))}
    return read


def _row(text: str, first_cells: list[str]) -> str:
    """The Markdown table row starting with these cells."""
    start = "| " + " | ".join(first_cells) + " |"
    return next(line for line in text.splitlines() if line.startswith(start))


def test_run_writes_every_card_with_every_template_field(project_run) -> None:
    folder, result = project_run
    cards = folder / ".rudi" / "cards"
    chosen = result.selected.model_group_id
    mitigated = result.mitigated.model_group_id
    expected = {"data-card-snapshot-1", f"model-card-group-{chosen}",
                f"model-card-group-{mitigated}"}
    assert {p.name for p in cards.iterdir()} == {f"{s}.{x}" for s in expected
                                                 for x in ("md", "html")}
    for stem, fields in (("data-card-snapshot-1", DATA_FIELDS),
                         (f"model-card-group-{chosen}", MODEL_FIELDS)):
        md = (cards / f"{stem}.md").read_text()
        html = (cards / f"{stem}.html").read_text()
        for question in fields:
            assert f"### {question}" in md, question
            assert question.replace("'", "&#39;") in html, question
        assert "Synthetic data" not in md and "Synthetic data" not in html  # archive files
    html = (cards / f"model-card-group-{chosen}.html").read_text()
    assert html.count("plotly.js v") == 1  # inlined once, works offline
    assert "Group metrics by gender" in html and "Disparity by force" in html
    # the mitigated group's card judges it on the fitting rows and the held-out rows
    md = (cards / f"model-card-group-{mitigated}.md").read_text()
    assert "Judged where it is used" in md and "Held-out rows" in md


def test_data_card_numbers_come_from_the_store_and_the_data(project_run) -> None:
    folder, _ = project_run
    store = _store(folder)
    snap = store["snapshots"].iloc[0]
    md = (folder / ".rudi" / "cards" / "data-card-snapshot-1.md").read_text()
    assert f"{snap['rows']:,} rows" in md and snap["checksum"] in md
    # the label and missing values, counted here straight from the source rows
    project = load_project(folder)
    frame = load_source(project.data.sources[0], folder, "data.sources[0]").frame
    linked = frame["outcome_linked_to_object_of_search"].fillna(False).astype(bool)
    # a missing outcome is not "no further action" (labels.py reads conditions literally)
    nfa = frame["outcome"].fillna("") == "A no further action disposal"
    positives = int((linked & ~nfa).sum())
    assert f"In this snapshot: {positives:,} positive, {len(frame) - positives:,} negative" in md
    missing = int(frame["latitude"].isna().sum())
    assert missing > 0
    assert _row(md, ["latitude", f"{missing:,}"])
    # split sizes as stored
    for split, rows in store["models"].groupby("split"):
        first = rows.iloc[0]
        assert f"| {first['train_rows']:,} | {first['test_rows']:,} |" in _row(md, [split])
    # the governance answers from rudi.yaml
    assert "The police force (station) that recorded the search." in md
    assert "Force data protection officer" in md


def test_model_card_numbers_come_from_the_store(project_run) -> None:
    folder, result = project_run
    store = _store(folder)
    model = store["models"][store["models"]["selected"]].iloc[0]
    md = (folder / ".rudi" / "cards" / f"model-card-group-{model['model_group_id']}.md"
          ).read_text()
    preds = store["predictions"][store["predictions"]["model_id"] == model["id"]]
    auc = skm.roc_auc_score(preds["label"], preds["score"])
    assert f"{auc:.3f} [" in _row(md, [model["split"], f"{model['test_rows']:,}"])
    assert Path(model["artefact_path"]).as_posix() in md
    # a group's precision at the audited threshold, from the stored scores and the data
    project = load_project(folder)
    frame = load_source(project.data.sources[0], folder, "data.sources[0]").frame
    gender = frame.set_index("record_id")["gender"].reindex(preds["entity_id"]).fillna("")
    male = (gender == "Male").to_numpy()
    flagged = preds["score"].to_numpy() >= 0.25
    precision = preds["label"].to_numpy()[male & flagged].mean()
    row = _row(md, ["gender", "Male", f"{int(male.sum()):,}", "reference"])  # unitary table
    assert f"| {precision:.3f} [" in row
    audit = store["audits"]
    ref = audit[(audit["model_id"] == model["id"]) & (audit["attribute"] == "gender")
                & (audit["group_value"] == "Male") & (audit["metric"] == "precision")].iloc[0]
    assert f"{ref['value']:.3f} [{ref['lower']:.3f}, {ref['upper']:.3f}]" in row
    assert result.selection_reason in md
    assert "Officers rely on the score instead of their own grounds" in md  # governance.risks


def test_empty_fields_show_a_visible_marker_naming_the_key(project_run, tmp_path: Path) -> None:
    folder, result = project_run
    config = yaml.safe_load((folder / "rudi.yaml").read_text())
    del config["rationale"]["aim"]
    del config["governance"]["data_owner"]
    config["governance"]["variables"].pop("force")
    config["governance"]["data_governance_plan"] = "<script>x()</script> see `gov.md`"
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        group = str(result.selected.model_group_id)
        out = runner.invoke(app, ["card", "model", group, "-p", str(folder), "--out",
                                  str(tmp_path), "--format", "md"])
        assert out.exit_code == 0, out.output
        md = (tmp_path / f"model-card-group-{group}.md").read_text()
        assert "**⚠ Not provided — fill `rationale.aim` in rudi.yaml**" in md
        assert "rationale.aim" in out.output  # the command lists what is missing
        out = runner.invoke(app, ["card", "data", "1", "-p", str(folder), "--out",
                                  str(tmp_path), "--format", "html"])
        assert out.exit_code == 0, out.output
        assert not (tmp_path / "data-card-snapshot-1.md").exists()
        html = (tmp_path / "data-card-snapshot-1.html").read_text()
        assert re.search(r"Not provided &mdash; fill <code>governance.data_owner</code>", html)
        assert "no meaning for 1 of 14 variables: force" in html
        # answers are text: escaped in HTML, only their `code` spans become markup
        assert "&lt;script&gt;x()&lt;/script&gt; see <code>gov.md</code>" in html
        assert "<script>x()" not in html
    finally:
        _archive_project(folder.parent)  # leave the shared project as the other tests expect


def test_bad_ids_and_options_exit_2_with_a_clear_message(project_run) -> None:
    folder, _ = project_run
    out = runner.invoke(app, ["card", "model", "999", "-p", str(folder)])
    assert out.exit_code == 2
    assert "no model group with id 999; valid ids: 1, 2, 3, 4" in out.output
    assert "Traceback" not in out.output
    out = runner.invoke(app, ["card", "data", "7", "-p", str(folder)])
    assert out.exit_code == 2 and "no data snapshot with id 7; valid ids: 1" in out.output
    out = runner.invoke(app, ["card", "data", "1", "-p", str(folder), "--format", "pdf"])
    assert out.exit_code == 2 and "--format: expected md, html or both" in out.output


def test_changed_files_are_not_described_as_the_snapshot(project_run) -> None:
    """`rudi card data` reads the files again; once one changed after the run, the card
    refuses to describe it as the snapshot."""
    folder, _ = project_run
    engine = open_store(None, folder)
    md = render_markdown(build_data_card(engine, 1, project_dir=folder))
    assert "| latitude | numeric feature | number |" in md
    assert "- 2020-02/2020-02-essex-stop-and-search.csv" in md
    victim = folder.parent / "data" / "2020-02" / "2020-02-essex-stop-and-search.csv"
    original = victim.read_bytes()
    victim.write_bytes(original + b"\n")
    try:
        md = render_markdown(build_data_card(engine, 1, project_dir=folder))
    finally:
        victim.write_bytes(original)
    assert "changed since the run, so column-level facts are left out" in md
    assert "Not computed:" in md
    assert "| latitude | numeric feature | n/a |" in md  # still listed, without its facts


@pytest.mark.postgres
def test_cards_render_from_a_postgres_store(store, tmp_path: Path) -> None:
    url, schema = store
    if schema is None:
        pytest.skip("SQLite is the store of the module's run above")
    folder = write_project(tmp_path / "proj")
    result = run_project(folder, url=url, schema=schema)
    engine = open_store(url, schema=schema)
    html = render_html(build_model_card(engine, result.selected.model_group_id,
                                        project=load_project(folder)))
    value = result.selected.metrics[("roc_auc", "")]
    assert f"{value.value:.3f} [{value.lower:.3f}, {value.upper:.3f}]" in html
    md = render_markdown(build_data_card(engine, 1, project_dir=folder))
    assert "4,500 rows" in md and "Synthetic data" in md
