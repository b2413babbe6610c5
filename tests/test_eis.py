"""A temporal project from rudi.yaml to the report: ``rudi run`` dispatches to the temporal
runner and stores everything, ``rudi splits --plot`` draws the splits, the report's figures
are the store's, and reviewers' agreement is counted as a supervisor would count it.

The run uses small synthetic event tables (written as an ``event_tables`` source), so it takes
seconds; the real CPDB run is ``rudi run examples/eis``."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import spearmanr
from sqlalchemy import select, text
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.config import (
    FEATURE_TABLES,
    ProjectError,
    TemporalProject,
    load_project,
    parse_project,
)
from rudikit.evaluation.display import plain
from rudikit.evaluation.metrics import precision_at_k
from rudikit.models.audition import Rule, audition
from rudikit.models.estimators import GridPoint
from rudikit.models.perturb import perturbed_tasks
from rudikit.models.temporal import prepare, stability_rows
from rudikit.reports.cards import render_markdown
from rudikit.reports.frozen import FigureRecorder
from rudikit.reports.model_card import build_model_card
from rudikit.reports.page import environment
from rudikit.reports.run_report import write_run_report, write_run_report_and_cards
from rudikit.reports.temporal_report import (
    experiment,
    last_list,
    precision_over_time,
    reviewer_agreement,
    run_models,
    temporal_context,
)
from rudikit.run.develop import run_project
from rudikit.run.engine import RunResult
from rudikit.store import list_tables
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.queries import runs as runs_q
from tests.test_temporal import synthetic_tables

REPO = Path(__file__).resolve().parents[1]
K = 20


def project_config(data_dir: Path) -> dict[str, Any]:
    example = yaml.safe_load((REPO / "examples" / "eis" / "rudi.yaml").read_text())
    return {
        "name": "eis-test", "rationale": example["rationale"],
        "governance": example["governance"],
        "fairness": {"attributes": ["age_band"], "min_group_size": 10, "at": {"top_k": K},
                     "requirements": [{"name": "listed share between age bands",
                                       "metric": "selection_rate", "compare": ["age_band"],
                                       "max_gap_pp": 50, "min_size": 10}]},
        "data": {"entity_id": "officer_uid", "knowledge_date": "as_of_date", "sources": [
            {"name": "events", "kind": "event_tables", "path": str(data_dir),
             "options": {"origin": "synthetic"}}]},
        "temporal": {
            "name": "eis-test", "label": "any_complaint",
            "timechop": {
                "feature_start_time": "2004-01-01", "feature_end_time": "2013-01-01",
                "label_start_time": "2007-01-01", "label_end_time": "2013-01-01",
                "model_update_frequency": "1year", "training_as_of_date_frequencies": "1year",
                "max_training_histories": "2year", "training_label_timespans": "1year",
                "test_as_of_date_frequencies": "1year", "test_durations": "0day",
                "test_label_timespans": "1year"},
            "test_from": "2009-01-01",
            "models": [
                {"algorithm": "rank_by_feature", "name": "baseline: complaints last year",
                 "params": {"column": "cmp_all_1year_count",
                            "tie_break": "cmp_all_5year_count"}},
                {"algorithm": "lightgbm", "name": "lightgbm small",
                 "params": {"n_estimators": 30, "num_leaves": 7, "min_child_samples": 10}},
                {"algorithm": "logistic_regression", "params": {"C": 0.1}},
            ],
            "top_k": K, "bootstrap": 20,
            "selection_rules": [{"name": "best_current_value"}, {"name": "best_average_value"},
                                {"name": "lowest_metric_variance"}],
            "stability": {"seeds": [0, 1], "algorithm": "random_forest",
                          "n_estimators": [5, 20], "params": {"min_samples_leaf": 5},
                          "consecutive": {"days": 3, "weeks": 2, "months": 2}},
        },
    }


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def eis_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[RunResult, Path, Any]]:
    """One run of the project, on SQLite and (with RUDI_TEST_POSTGRES) on PostgreSQL in a
    schema of its own."""
    url, schema = None, None
    if request.param == "postgres":
        url = os.environ.get("RUDI_TEST_POSTGRES")
        if not url:
            pytest.skip("RUDI_TEST_POSTGRES is not set")
        schema = f"rudi_test_{uuid.uuid4().hex[:12]}"
    folder = tmp_path_factory.mktemp("eis")
    data = folder / "events"
    data.mkdir()
    for name, frame in synthetic_tables().items():
        frame.to_parquet(data / f"{name}.parquet")
    (folder / "rudi.yaml").write_text(yaml.safe_dump(project_config(data), sort_keys=False))
    result = run_project(folder, url=url, schema=schema, write_report=write_run_report_and_cards)
    engine = open_store(url, folder, schema=schema)
    yield result, folder, engine
    engine.dispose()
    if schema is not None:
        from rudikit.store.engine import create_store_engine

        admin = create_store_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _frame(engine: Any, query: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())


def test_rudi_yaml_with_a_temporal_section_runs_the_temporal_experiment(eis_run) -> None:
    result, folder, engine = eis_run
    run = _frame(engine, select(t.runs).where(t.runs.c.id == result.run_id)).iloc[0]
    assert run["status"] == "finished" and run["data_origin"] == "synthetic"
    assert "temporal" in run["config"]  # the stored configuration is the project file's
    models = _frame(engine, select(t.models).where(t.models.c.run_id == result.run_id))
    assert len(models) == 3 * 4  # three model groups x four yearly splits (2009-2012)
    assert sorted(models["split"].unique()) == sorted(
        s.name for s in load_project(folder).temporal.splits())
    assert models["selected"].sum() == 1
    chosen = models[models["selected"]].iloc[0]
    assert chosen["split"] == models.sort_values("test_start")["split"].iloc[-1]
    assert chosen["selection_reason"].startswith("audition rule ")
    preds = _frame(engine, select(t.predictions.c.model_id, t.predictions.c.as_of_date)
                   .where(t.predictions.c.model_id.in_(models["id"].tolist())))
    assert (preds.groupby("model_id").size() == models.set_index("id")["test_rows"]).all()
    assert preds["as_of_date"].notna().all()
    snapshots = _frame(engine, select(t.data_snapshots).where(
        t.data_snapshots.c.run_id == result.run_id))
    assert set(snapshots["source"]) == {f"events.{n}" for n in (
        "officers", "complaints", "use_of_force", "unit_history", "rank_history")}
    stability = _frame(engine, select(list_tables.list_stability).where(
        list_tables.list_stability.c.run_id == result.run_id))
    assert set(stability["kind"]) == {"seeds", "consecutive", "trees", "bootstrap",
                                      "drop_source"}
    trees = stability[(stability["kind"] == "trees") & (stability["metric"] == "jaccard")]
    assert sorted(trees["parameter"]) == ["n_estimators=20", "n_estimators=5"]
    assert stability["value"].between(-1, 1).all()
    changes = _frame(engine, select(list_tables.rank_changes).where(
        list_tables.rank_changes.c.run_id == result.run_id))
    assert set(changes["horizon"]) == {"day", "week", "month", "quarter", "year"}
    assert (changes["model_group_id"] == chosen["model_group_id"]).all()
    assert result.report_path is not None and result.report_path.exists()
    assert "status finished" in result.report_path.read_text()
    assert result.summary is not None  # the precision table the command line prints


def test_perturbed_lists_are_stored_beside_precision_and_reported(eis_run) -> None:
    result, folder, engine = eis_run
    chosen = _frame(engine, select(t.models).where(
        (t.models.c.run_id == result.run_id) & t.models.c.selected)).iloc[0]
    stability = _frame(engine, select(list_tables.list_stability).where(
        list_tables.list_stability.c.run_id == result.run_id))
    # every group of this grid is deterministic: the seeds agree by construction, and the
    # report says the agreement measured nothing
    seeds = stability[stability["kind"] == "seeds"]
    assert all(d == {"randomness": []} for d in seeds["details"])
    assert seeds.loc[seeds["metric"] == "jaccard", "value"].tolist() == [1.0]
    html = result.report_path.read_text()
    assert "no source of randomness</strong>" in html[html.index('id="randomness"'):]
    perturbed = stability[stability["kind"].isin(["bootstrap", "drop_source"])]
    assert (perturbed["model_group_id"] == chosen["model_group_id"]).all()
    assert set(perturbed["parameter"]) == {"resample=1", "resample=2", "resample=3",
                                           *(f"source={s}" for s in FEATURE_TABLES)}
    assert set(perturbed["metric"]) == {"jaccard", "spearman", "precision_at_k"}
    assert len(perturbed) == (3 + len(FEATURE_TABLES)) * 3
    assert len(set(perturbed["created_at"])) == 1  # one transaction
    # the oracle: the reference is the chosen model's stored list on its last date; the
    # first resample and the refit without complaints recomputed and compared with numpy/scipy
    preds = _frame(engine, select(t.predictions).where(
        t.predictions.c.model_id == int(chosen["id"])))
    last = preds[preds["as_of_date"] == preds["as_of_date"].max()].set_index("entity_id")
    project = load_project(folder)
    data = prepare(project.temporal, synthetic_tables())
    group = _frame(engine, select(t.model_groups).where(
        t.model_groups.c.id == int(chosen["model_group_id"]))).iloc[0]
    _, refits = perturbed_tasks(data, GridPoint(group["algorithm"], group["hyperparameters"]),
                                project.temporal.seed, stability_rows(data), resamples=1,
                                tables=["complaints"]).run()
    stored = perturbed.set_index(["parameter", "metric"])["value"]
    entities, y = last.index.to_numpy(), last["label"].to_numpy()

    def top(scores: np.ndarray) -> set[str]:  # ties go to the smaller officer id
        return set(entities[np.lexsort((entities, -scores))[:K]])

    def precision(scores: np.ndarray) -> float:  # the officers tied at the cut share its seats
        cut = np.sort(scores)[::-1][K - 1]
        above, tied = scores > cut, scores == cut
        return (y[above].sum() + (K - above.sum()) * y[tied].mean()) / K

    theirs = last["score"].to_numpy()
    for refit in refits:
        ours = refit.scores.reindex(last.index).to_numpy()
        assert stored[(refit.parameter, "jaccard")] == pytest.approx(
            len(top(ours) & top(theirs)) / len(top(ours) | top(theirs)))
        assert stored[(refit.parameter, "spearman")] == pytest.approx(
            spearmanr(ours, theirs).statistic)
        assert stored[(refit.parameter, "precision_at_k")] == pytest.approx(precision(ours))
    reference = [d["reference_precision_at_k"] for d in perturbed["details"]]
    assert reference == pytest.approx([precision(theirs)] * len(perturbed))
    section = html[html.index('id="perturbation-table"'):]
    shown = re.findall(r'<td class="text">(resample \d|without \w+)</td><td>([\d.]+)</td>',
                       section[:section.index("</table>")])
    jaccard = stored.xs("jaccard", level="metric")
    assert {label: float(v) for label, v in shown} == pytest.approx({
        (f"resample {p[9:]}" if p.startswith("resample") else f"without {p[7:]}"): round(v, 3)
        for p, v in jaccard.items()}, abs=5e-4)
    assert "Perturbed lists: overlap with the chosen list" in html  # the figure


def test_report_shows_each_lists_stored_fairness_verdicts(eis_run) -> None:
    result, _, engine = eis_run
    stored = _frame(engine, select(t.fairness_requirements.c.model_id,
                                   t.fairness_requirements.c.selection,
                                   t.fairness_requirements.c.passed)
                    .join(t.models, t.models.c.id == t.fairness_requirements.c.model_id)
                    .where(t.models.c.run_id == result.run_id))
    assert len(stored) == 3 * 4  # every model's one list per split
    assert stored["selection"].str.fullmatch(rf"top_k={K}@\d{{4}}-01-01").all()
    html = result.report_path.read_text()
    section = html[html.index('id="fairness"'):html.index('id="reviews"')]
    table = section[section.index('id="fairness-requirements"'):section.index("</table>")]
    cells = re.findall(r'<td title=[^>]*>(?:<span class="verdict [^"]*">)?([^<]+)(?:</span>)?'
                       r"</td>", table)
    assert len(cells) == len(stored)
    assert cells.count("met") == int(stored["passed"].sum())
    assert "officers listed (%)" in section  # the figure


def test_report_shows_the_stored_precision_over_time(eis_run) -> None:
    result, _, engine = eis_run
    # independently: precision_at_k@20_abs per model, dated by the model's test date
    stored = _frame(engine, select(t.evaluations.c.value, t.models.c.model_group_id,
                                   t.models.c.test_start)
                    .join(t.models, t.evaluations.c.model_id == t.models.c.id)
                    .where((t.models.c.run_id == result.run_id)
                           & (t.evaluations.c.metric == "precision_at_k")
                           & (t.evaluations.c.parameter == f"{K}_abs")))
    stored["as_of_date"] = pd.to_datetime(stored["test_start"], utc=True).dt.tz_convert(None)
    shown = precision_over_time(engine, result.run_id)
    merged = stored.merge(shown, on=["model_group_id", "as_of_date"], suffixes=("", "_shown"))
    assert len(merged) == len(stored) == 12
    assert np.allclose(merged["value"], merged["value_shown"])
    # and those numbers are the predictions' precision in the top 20
    preds = _frame(engine, select(t.predictions.c.score, t.predictions.c.label,
                                  t.models.c.model_group_id, t.models.c.test_start)
                   .join(t.models, t.predictions.c.model_id == t.models.c.id)
                   .where(t.models.c.run_id == result.run_id))
    for (group, when), rows in preds.groupby(["model_group_id", "test_start"]):
        value = stored[(stored["model_group_id"] == group)
                       & (stored["test_start"] == when)]["value"].iloc[0]
        assert value == pytest.approx(precision_at_k(rows["label"].to_numpy(),
                                                     rows["score"].to_numpy(), K))
    html = result.report_path.read_text()
    table = html[html.index('id="precision-table"'):html.index("</table>",
                                                                html.index('id="precision-table"'))]
    for value in stored["value"]:
        assert f"<td>{value:.3f}</td>" in table
    for when in stored["as_of_date"].unique():
        assert f"<th>{pd.Timestamp(when):%Y-%m-%d}</th>" in table


def test_report_regret_table_is_the_audition_of_the_stored_values(eis_run) -> None:
    result, folder, engine = eis_run
    stored = _frame(engine, select(t.evaluations.c.value, t.models.c.model_group_id,
                                   t.models.c.test_start)
                    .join(t.models, t.evaluations.c.model_id == t.models.c.id)
                    .where((t.models.c.run_id == result.run_id)
                           & (t.evaluations.c.metric == "precision_at_k")
                           & (t.evaluations.c.parameter == f"{K}_abs")))
    rules = [Rule("best_current_value"), Rule("best_average_value"),
             Rule("lowest_metric_variance")]
    expected = audition(stored, rules, time_col="test_start").summary
    html = result.report_path.read_text()
    start = html.index('id="regret-table"')
    table = html[start:html.index("</table>", start)]
    for row in expected.itertuples():
        pattern = (rf"<td>{re.escape(row.rule)}</td><td>{row.periods_scored}</td>"
                   rf"<td>{row.mean_regret:.3f}</td><td>{row.max_regret:.3f}</td>")
        assert re.search(pattern, table), row.rule
    # the selected model group is the best rule's pick
    best = expected.iloc[0]
    chosen = _frame(engine, select(t.models.c.model_group_id).where(
        (t.models.c.run_id == result.run_id) & t.models.c.selected))
    assert int(chosen["model_group_id"].iloc[0]) == int(best["final_choice"])


def test_report_lists_the_last_date_without_reviewed_officers(eis_run, tmp_path) -> None:
    result, _, engine = eis_run
    chosen = _frame(engine, select(t.models.c.id, t.models.c.model_group_id).where(
        (t.models.c.run_id == result.run_id) & t.models.c.selected)).iloc[0]
    preds = _frame(engine, select(t.predictions.c.entity_id, t.predictions.c.score,
                                  t.predictions.c.as_of_date)
                   .where(t.predictions.c.model_id == int(chosen["id"])))
    preds["as_of_date"] = pd.to_datetime(preds["as_of_date"], utc=True).dt.tz_convert(None)
    last = preds[preds["as_of_date"] == preds["as_of_date"].max()]
    ranked = last.sort_values(["score", "entity_id"], ascending=[False, True])["entity_id"]
    html = result.report_path.read_text()
    start = html.index('id="last-list-table"')
    listed = re.findall(r"<tr><td>\d+</td><td>([^<]+)</td>",
                        html[start:html.index("</table>", start)])
    assert listed == list(ranked[:K])
    reasons = _frame(engine, select(t.individual_importances).where(
        t.individual_importances.c.model_id == int(chosen["id"])))
    assert set(reasons["entity_id"]) == set(ranked[:K])  # reasons for everyone on the list
    # an officer reviewed on the list's date is left off a list made after the review; the
    # next one moves up
    when = last["as_of_date"].iloc[0]
    list_tables.record_review(engine, ranked.iloc[0], when, reviewer="sgt", outcome="no_action",
                              agreement="agree", model_group_id=int(chosen["model_group_id"]))
    models = run_models(engine, result.run_id)
    cool_off = experiment(runs_q.run_config(engine, result.run_id)).cool_off_days
    fresh = last_list(engine, result.run_id, models, K, cool_off)
    assert [e["entity_id"] for e in fresh["entries"]] == list(ranked[1:K + 1])
    # but the run's report is what the run showed: rebuilt after the review, it is the same
    # page byte for byte, apart from the line saying when this copy was built
    rebuilt = write_run_report(engine, result.run_id, tmp_path).read_text()
    assert _unbuilt(rebuilt) == _unbuilt(html) and 'id="built"' in rebuilt


def _unbuilt(page: str) -> str:
    return re.sub(r'<p class="sub" id="built">.*?</p>', "", page)


def test_reviewers_agreement_rate_is_agree_over_agree_and_disagree(tmp_path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    from rudikit.store import results

    groups = [results.get_or_create_model_group(engine, "p", "lightgbm", {"n": i}, {}, "y")
              for i in range(3)]
    answers = {groups[0]: ["agree", "agree", "disagree", "unsure", None],
               groups[1]: ["disagree", "agree"],
               groups[2]: ["agree", "agree", "agree"]}  # another project's group: not counted
    for group, given in answers.items():
        for i, agreement in enumerate(given):
            list_tables.record_review(engine, f"o{group}-{i}", "2016-01-01", reviewer="sgt",
                                      outcome="training", agreement=agreement,
                                      model_group_id=group)
    found = reviewer_agreement(engine, groups[:2])
    # by hand: agree 3, disagree 2 (unsure and unanswered left out of the rate) -> 3 / 5
    assert found["rate"] == pytest.approx(3 / 5)
    assert found["reviews"] == 7
    assert found["counts"] == {"agree": 3, "disagree": 2, "unsure": 1, "not given": 1}
    rates = {g["model_group_id"]: g["rate"] for g in found["per_group"]}
    assert rates == {groups[0]: pytest.approx(2 / 3), groups[1]: pytest.approx(1 / 2)}
    assert reviewer_agreement(engine, [])["rate"] is None


def test_report_shows_the_agreement_rate(eis_run, tmp_path) -> None:
    result, _, engine = eis_run
    group = int(_frame(engine, select(t.models.c.model_group_id).where(
        (t.models.c.run_id == result.run_id) & t.models.c.selected)).iloc[0, 0])
    # its own reviews: under xdist the module's run may be rebuilt between tests, so the
    # review another test records is not always there
    for i, agreement in enumerate(["agree", "agree", "disagree"]):
        list_tables.record_review(engine, f"rate-check-{i}", "2016-01-01", reviewer="sgt",
                                  outcome="training", agreement=agreement,
                                  model_group_id=group)
    expected = reviewer_agreement(engine, [group])
    assert expected["rate"] is not None
    # a report written now shows the rate; the run's own report, frozen when the run wrote
    # it, does not change
    context = plain(temporal_context(engine, result.run_id, FigureRecorder()))
    assert context["agreement"]["rate"] == pytest.approx(expected["rate"])
    page = environment().get_template("temporal_report.html.j2").render(
        **context, frozen_at="now", built_at="now")
    assert f"<strong>{expected['rate']:.3f}</strong>" in page
    before = result.report_path.read_text()
    after = write_run_report(engine, result.run_id, tmp_path).read_text()
    assert _unbuilt(after) == _unbuilt(before)


def test_model_card_works_for_a_temporal_run(eis_run) -> None:
    result, folder, engine = eis_run
    group = int(_frame(engine, select(t.models.c.model_group_id).where(
        (t.models.c.run_id == result.run_id) & t.models.c.selected)).iloc[0, 0])
    card = build_model_card(engine, group, project=load_project(folder))
    text = render_markdown(card)
    assert f"precision_at_k@{K}_abs" in text
    assert "No score threshold" in text
    assert (folder / ".rudi" / "cards" / f"model-card-group-{group}.md").exists()


def test_rudi_splits_plot_writes_the_figure(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "splits.html"
    done = runner.invoke(app, ["splits", str(REPO / "examples" / "eis"), "--plot", "--out",
                               str(out)])
    assert done.exit_code == 0, done.output
    assert str(out) in done.output.replace("\n", "")
    html = out.read_text()
    assert "plotly" in html and "split_7_2016-01-01" in html
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = runner.invoke(app, ["splits", str(REPO / "examples" / "eis"), "--plot",
                                     "--out", str(blocker / "splits.html")])
    assert unwritable.exit_code == 2 and "Traceback" not in unwritable.output
    assert "--out: cannot write" in " ".join(unwritable.output.split())
    refused = runner.invoke(app, ["splits", str(REPO / "examples" / "stop_search")])
    assert refused.exit_code == 2
    assert "no 'temporal' section" in " ".join(refused.output.split())


def test_temporal_section_errors_name_the_key_path(tmp_path) -> None:
    config = project_config(tmp_path)
    assert isinstance(parse_project(config), TemporalProject)
    config["temporal"]["models"][1]["algorithm"] = "xgboost"
    config["temporal"]["timechop"]["model_update_frequency"] = "1m"
    config["label"] = {"positive_when": [{"column": "x", "equals": 1}]}
    with pytest.raises(ProjectError) as caught:
        parse_project(config)
    problems = caught.value.problems
    assert any(p.startswith("temporal.models[1].algorithm: unknown algorithm 'xgboost'")
               for p in problems)
    assert any(p.startswith("temporal.timechop.model_update_frequency:") for p in problems)
    assert "label: unknown key" in problems
    # a timechop that leaves no split is refused when the file is read, not mid-run
    config = project_config(tmp_path)
    config["temporal"]["test_from"] = "2030-01-01"
    with pytest.raises(ProjectError, match="no split left"):
        parse_project(config)
    # a temporal project reads an event-table source
    config = project_config(tmp_path)
    config["data"]["sources"][0]["kind"] = "csv"
    with pytest.raises(ProjectError, match="exactly one source of kind chicago_cpdb"):
        parse_project(config)
    (tmp_path / "rudi.yaml").write_text(yaml.safe_dump(project_config(tmp_path / "absent")))
    done = CliRunner().invoke(app, ["run", str(tmp_path)])
    assert done.exit_code == 2
    output = " ".join(done.output.split())
    assert "data.sources[0].path" in output and "does not exist" in output


def test_validate_checks_completeness_names_against_the_feature_specs(tmp_path) -> None:
    # complete_from block and group names are the feature layer's: the file reads, and
    # `rudi validate` reports the misspelt group with its key path before anything is fitted
    data = tmp_path / "events"
    data.mkdir()
    for name, frame in synthetic_tables().items():
        frame.to_parquet(data / f"{name}.parquet")
    config = project_config(data)
    config["temporal"]["complete_from"] = {
        "cmp": {"date": "2007-01-01", "recorded_before": ["cat_excesive_force"]}}
    (tmp_path / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert isinstance(load_project(tmp_path), TemporalProject)
    done = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert done.exit_code == 1
    assert ("temporal.complete_from.cmp.recorded_before[0]: no group 'cat_excesive_force'"
            in " ".join(done.output.split()))


def test_a_temporal_group_deploys_through_the_gate_on_its_list_dates(eis_run) -> None:
    """The chosen temporal group goes live through the same gate: it reads the requirement
    results of the deployed model's list dates (every one met here), the rationale answers
    and the event tables' snapshots, so no waiver is needed; one list date not met refuses."""
    from rudikit.service.gate import GateRefused, gated_deploy
    from rudikit.store.queries.fairness import MET, model_requirement_statuses

    result, folder, engine = eis_run
    chosen = _frame(engine, select(t.models).where(
        (t.models.c.run_id == result.run_id) & t.models.c.selected)).iloc[0]
    model_id = int(chosen["id"])
    rows = _frame(engine, select(t.fairness_requirements).where(
        t.fairness_requirements.c.model_id == model_id))
    assert len(rows) and rows["selection"].str.fullmatch(rf"top_k={K}@\d{{4}}-01-01").all()
    assert rows["passed"].all()
    done, report = gated_deploy(engine, int(chosen["model_group_id"]), reason="lists",
                                by="pytest", project=load_project(folder), project_dir=folder)
    assert report.passed and done.waiver is None and done.model_id == model_id
    assert [s.status for s in report.requirements] == [MET]
    assert done.threshold == 0.5 and report.operating_source.startswith("no threshold")
    # a later list date of the same model not met: the gate refuses, naming the requirement
    with engine.begin() as conn:
        conn.execute(t.fairness_requirements.insert().values(
            **{k: v for k, v in rows.iloc[0].to_dict().items() if k != "id"}
            | {"selection": f"top_k={K}@2099-01-01", "passed": False, "units_met": 0,
               "outcomes": [{"status": "not met"}]}))
    statuses = model_requirement_statuses(engine, model_id)
    assert statuses[0].status == "not met" and "not met on 1 of 2 list dates" in \
        statuses[0].summary
    with pytest.raises(GateRefused, match="listed share between age bands"):
        gated_deploy(engine, int(chosen["model_group_id"]), reason="lists", by="pytest",
                     project=load_project(folder))
