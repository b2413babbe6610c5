"""Fairness-aware selection (`selection.require_fairness`): the best group among those that
meet every requirement on the validation rows, never the test rows; the fallback when none
does; the performance / requirements-met frontier; deterministic ties.

The constructed project has three existing scores as models (``score_column``), on a
temporal split with a validation month: ``s_best`` ranks best but misses most positives of
group B (a recall gap of about 65 points), ``s_fair`` ranks a little worse with the same
recall in both groups, ``s_fair2`` ranks worst with the same recall in both groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import example_config, squeezed
from sklearn.metrics import recall_score, roc_auc_score
from typer.testing import CliRunner

from rudikit.cli import app as cli
from rudikit.config import ProjectError, load_project, parse_project
from rudikit.evaluation.metrics import MetricValue
from rudikit.fairness.requirements import Requirement, evaluate_requirements
from rudikit.fairness.tradeoff import NO_GROUP_MEETS, VALIDATION_REQUIREMENT, pareto_frontier
from rudikit.reports.run_report import write_run_report_and_cards
from rudikit.run.develop import run_project
from rudikit.run.engine import ModelSummary, RunResult
from rudikit.run.selection import fairness_gate, select_best
from rudikit.store.engine import open_store
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import runs as runs_q

SCORES = ("s_best", "s_fair", "s_fair2")
VALIDATION_START, TEST_START = "2021-01-31", "2021-03-02"
RECALL = {"name": "recall between groups within 10 points", "metric": "recall",
          "compare": ["grp"], "max_gap_pp": 10, "min_size": 30}
IMPOSSIBLE = {"name": "selection rate between groups within 0.01 points",
              "metric": "selection_rate", "compare": ["grp"], "max_gap_pp": 0.01, "min_size": 30}


def _rows(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    grp = np.where(rng.random(n) < 0.5, "A", "B")
    y = (rng.random(n) < 0.4).astype(int)
    z = rng.normal(size=(3, n))
    scores = {"s_best": 0.25 + 0.5 * y + 0.12 * z[0] - 0.3 * ((grp == "B") & (y == 1)),
              "s_fair": 0.3 + 0.4 * y + 0.24 * z[1],
              "s_fair2": 0.35 + 0.3 * y + 0.25 * z[2]}
    day = np.sort(rng.integers(0, 90, n))
    # clipped to [0, 1], which the training rows reach: score_column's rescaling is then none
    return pd.DataFrame({
        "case_id": [f"c{i}" for i in range(n)],
        "date": pd.Timestamp("2021-01-01", tz="UTC") + pd.to_timedelta(day, unit="D"),
        "grp": grp, "outcome": y, **{k: np.clip(v, 0, 1) for k, v in scores.items()}})


def _project(folder: Path, rows: pd.DataFrame, *, require: bool,
             requirements: list[dict[str, Any]] | None = None,
             split: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(folder / "rows.parquet")
    config = {
        "name": "selection-test", "rationale": example_config()["rationale"],
        "data": {"entity_id": "case_id", "knowledge_date": "date",
                 "sources": [{"name": "rows", "kind": "parquet", "path": "rows.parquet"}]},
        "label": {"name": "found", "positive_when": [{"column": "outcome", "equals": 1}]},
        "features": {"numeric": ["s_fair"]},
        "splits": [split or {"name": "by_date", "kind": "temporal", "date_column": "date",
                             "validation_start": VALIDATION_START, "test_start": TEST_START}],
        "models": [{"algorithm": "score_column", "params": {"column": c}} for c in SCORES],
        "evaluation": {"thresholds": [0.5], "top_k": [50], "top_pct": [10], "bootstrap": 0,
                       "selection": {"metric": "roc_auc", "require_fairness": require}},
        "fairness": {"attributes": ["grp"], "min_group_size": 30, "at": {"threshold": 0.5},
                     "requirements": requirements or [RECALL]},
    }
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder


def _column(result: RunResult) -> str:
    assert result.selected is not None
    return result.selected.params["column"]


def _poisoned(rows: pd.DataFrame) -> pd.DataFrame:
    """Test-row labels replaced by ``s_fair2 >= 0.5``: on the test rows s_fair2 becomes the
    best-ranking model and meets the recall requirement (recall 1 in both groups)."""
    out = rows.copy()
    test = out["date"] >= pd.Timestamp(TEST_START, tz="UTC")
    out.loc[test, "outcome"] = (out.loc[test, "s_fair2"] >= 0.5).astype(int)
    return out


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return _rows()


@pytest.fixture(scope="module")
def gated(rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_project(_project(tmp_path_factory.mktemp("gated"), rows, require=True),
                       write_report=write_run_report_and_cards)


def test_the_constructed_scores_are_what_the_test_needs(rows: pd.DataFrame) -> None:
    """sklearn's oracle on the validation rows: s_best has the highest ROC AUC and a recall
    gap far over 10 points; s_fair's gap is within it."""
    dates = rows["date"]
    val = rows[(dates >= pd.Timestamp(VALIDATION_START, tz="UTC"))
               & (dates < pd.Timestamp(TEST_START, tz="UTC"))]
    auc = {c: roc_auc_score(val["outcome"], val[c]) for c in SCORES}
    assert max(auc, key=auc.get) == "s_best"
    recall = {c: [recall_score(g["outcome"], g[c] >= 0.5) for _, g in val.groupby("grp")]
              for c in SCORES}
    assert abs(np.subtract(*recall["s_best"])) > 0.5
    assert abs(np.subtract(*recall["s_fair"])) < 0.05


def test_require_fairness_chooses_the_best_group_that_meets_every_requirement(
        rows: pd.DataFrame, gated: RunResult, tmp_path: Path) -> None:
    plain = run_project(_project(tmp_path / "plain", rows, require=False))
    assert _column(plain) == "s_best"
    assert _column(gated) == "s_fair"
    assert "that meet every fairness requirement on the validation rows (of 3)" in \
        gated.selection_reason
    by_column = {m.params["column"]: m for m in gated.models}
    assert by_column["s_best"].validation_statuses == {RECALL["name"]: "not met"}
    assert by_column["s_fair"].validation_statuses == {RECALL["name"]: "met"}
    # the verdicts selection read are stored (the report's trade-off reads them back)
    with open_store(None, gated.report_path.parents[2]).connect() as conn:
        evals = evaluations_q.evaluations_of_models(conn, [m.model_id for m in gated.models])
    stored = evals[evals["metric"] == VALIDATION_REQUIREMENT].set_index("model_id")["value"]
    assert stored[by_column["s_best"].model_id] == 0.0
    assert stored[by_column["s_fair"].model_id] == 1.0


def test_poisoned_test_labels_do_not_change_the_choice(rows: pd.DataFrame, gated: RunResult,
                                                       tmp_path: Path) -> None:
    poisoned = _poisoned(rows)
    test = poisoned[poisoned["date"] >= pd.Timestamp(TEST_START, tz="UTC")]
    auc = {c: roc_auc_score(test["outcome"], test[c]) for c in SCORES}
    assert max(auc, key=auc.get) == "s_fair2"  # a choice reading the test rows would move
    again = run_project(_project(tmp_path / "poisoned", poisoned, require=True))
    assert _column(again) == _column(gated) == "s_fair"
    # the reason's figures are validation figures up to the final (test) one
    assert again.selection_reason.split("; on the held-out test rows")[0] == \
        gated.selection_reason.split("; on the held-out test rows")[0]


def test_the_report_draws_the_trade_off_with_its_frontier(gated: RunResult) -> None:
    assert gated.report_path is not None
    html = gated.report_path.read_text(encoding="utf-8")
    assert "Performance against fairness requirements met" in html
    assert "Pareto frontier" in html


def test_when_no_group_meets_every_requirement_the_run_says_so(rows: pd.DataFrame,
                                                               tmp_path: Path) -> None:
    folder = _project(tmp_path / "none", rows, require=True, requirements=[RECALL, IMPOSSIBLE])
    output = CliRunner().invoke(cli, ["run", str(folder)])
    assert output.exit_code == 0, output.output
    assert squeezed("fell back to the plain best") in squeezed(output.output)
    with open_store(None, folder).connect() as conn:
        models = runs_q.run_models(conn, 1)
    chosen = models[models["selected"]].iloc[0]
    assert chosen["hyperparameters"] == {"column": "s_best"}  # the plain best, as stated
    reason = chosen["selection_reason"]
    assert reason.startswith(f"{NO_GROUP_MEETS} on the validation rows of split 'by_date' (the "
                             "most any meets is 1 of 2")
    assert "so the plain best is chosen" in reason
    report = (folder / ".rudi" / "reports" / "run-1.html").read_text(encoding="utf-8")
    assert "No model group meets every fairness requirement</strong>" in report


def test_require_fairness_needs_validation_rows_and_requirements(rows: pd.DataFrame,
                                                                 tmp_path: Path) -> None:
    no_validation = {"name": "by_date", "kind": "temporal", "date_column": "date",
                     "test_start": TEST_START}
    with pytest.raises(ProjectError, match="evaluation.selection.require_fairness: split "
                       "'by_date' has no validation partition.*add validation_start"):
        load_project(_project(tmp_path / "a", rows, require=True, split=no_validation))
    config = yaml.safe_load((tmp_path / "a" / "rudi.yaml").read_text())
    config["splits"][0]["validation_start"] = VALIDATION_START
    config["fairness"]["requirements"] = []
    with pytest.raises(ProjectError, match="fairness.requirements is empty"):
        parse_project(config)


# --- the rules on hand-made inputs -----------------------------------------------------------


def test_pareto_frontier_on_hand_made_points() -> None:
    #            a     b     c     d     e     f (= b)
    values = [0.80, 0.75, 0.70, 0.74, 0.60, 0.75]
    met = [1, 3, 4, 2, 4, 3]
    # d is beaten by b (better on both), e by c (same met, better value); b and f tie on both
    assert pareto_frontier(values, met).tolist() == [True, True, True, False, False, True]
    # Brier: lower is better, so the order of the values flips
    assert pareto_frontier([0.10, 0.20, 0.15], [1, 2, 0],
                           lower_is_better=True).tolist() == [True, True, False]
    assert pareto_frontier([0.7, float("nan")], [0, 5]).tolist() == [True, False]


def _summary(group: int, auc: float, statuses: dict[str, str], split: str = "s",
             validation: bool = True) -> ModelSummary:
    metrics = {("roc_auc", ""): MetricValue("roc_auc", "", auc, None, None, 100)}
    m = ModelSummary(group, group, "logistic_regression", {}, split, metrics, 0.0,
                     requirement_statuses=dict(statuses))
    if validation:
        m.validation_metrics = metrics
        m.validation_statuses = dict(statuses)
        m.validation_fairness_passed = all(s == "met" for s in statuses.values())
    return m


def test_ties_are_broken_by_requirements_met_then_group_id() -> None:
    project = load_project(Path(__file__).parents[1] / "examples" / "compas")
    assert project.selection_split == "person_60_20_20"
    models = [_summary(7, 0.7, {"r1": "met", "r2": "not met"}, "person_60_20_20"),
              _summary(5, 0.7, {"r1": "not met", "r2": "not met"}, "person_60_20_20"),
              _summary(9, 0.7, {"r1": "met", "r2": "inconclusive"}, "person_60_20_20")]
    for order in (models, models[::-1]):
        chosen, reason = select_best(project, order)
        assert chosen is not None and chosen.model_group_id == 7  # 1 met; 7 < 9
        assert "tied on roc_auc" in reason
    models[2].validation_statuses = {"r1": "met", "r2": "met"}
    chosen, _ = select_best(project, models[::-1])
    assert chosen is not None and chosen.model_group_id == 9


def test_the_temporal_gate_reads_the_audition_splits_never_the_last() -> None:
    audition = [_summary(1, 0.6, {"r": "met"}, "2014"), _summary(2, 0.7, {"r": "not met"}, "2014"),
                _summary(1, 0.6, {"r": "met"}, "2015"), _summary(2, 0.7, {"r": "met"}, "2015")]
    last = [_summary(1, 0.6, {"r": "not met"}, "2016"), _summary(2, 0.7, {"r": "met"}, "2016")]
    passing, words = fairness_gate(audition + last, "2016")
    assert passing == {1} and "among the 1 of 2 model groups" in words
    flipped = [_summary(m.model_group_id, 0.6, {"r": "met"}, "2016") for m in last]
    assert fairness_gate(audition + flipped, "2016")[0] == passing
    none, words = fairness_gate([audition[1], last[0]], "2016")
    assert none == set() and words.startswith(NO_GROUP_MEETS)


def test_top_k_ties_at_the_cut_do_not_depend_on_row_order() -> None:
    """Rows tied at the k-th score count by their expected membership (places left / tied
    rows), so reversing the file changes no figure; by hand: group A has 10 rows above the
    cut (6 positives) and 20 tied at it, group B the other 20 tied; 10 places are left for the
    40 tied rows, so each tied row counts 0.25."""
    score = np.r_[np.full(10, 0.9), np.full(40, 0.5), np.full(50, 0.1)]
    grp = np.r_[["A"] * 30, ["B"] * 20, ["A"] * 25, ["B"] * 25]
    y = np.r_[np.ones(6), np.zeros(4), np.tile([1, 0], 20), np.zeros(50)].astype(int)
    frame = pd.DataFrame({"y": y, "s": score, "grp": grp})
    req = Requirement("precision", 5, compare="grp", min_n=1)
    results = [evaluate_requirements(f, "y", "s", [req], top_k=20)[0]
               for f in (frame, frame.iloc[::-1].reset_index(drop=True))]
    values = [{o.highest_group: o.highest_value, o.lowest_group: o.lowest_value}
              for r in results for o in r.outcomes]
    # A: (6 + 0.25 * 10) / (10 + 0.25 * 20) = 8.5 / 15; B: 0.25 * 10 / (0.25 * 20) = 0.5
    expected = {"A": 8.5 / 15, "B": 0.5}
    for got in values:
        assert got == pytest.approx(expected)


def test_a_temporal_split_holds_its_validation_stretch_out_of_training(rows: pd.DataFrame
                                                                       ) -> None:
    from rudikit.config import TemporalSplit
    from rudikit.features.splits import SplitError, make_split

    spec = TemporalSplit(name="t", kind="temporal", date_column="date",
                         validation_start=VALIDATION_START, test_start=TEST_START)
    split = make_split(rows, spec, "splits[0]")
    dates = rows["date"]
    v, t = pd.Timestamp(VALIDATION_START, tz="UTC"), pd.Timestamp(TEST_START, tz="UTC")
    assert split.validation is not None
    assert np.array_equal(split.train, np.flatnonzero(dates < v))
    assert np.array_equal(split.validation, np.flatnonzero((dates >= v) & (dates < t)))
    assert np.array_equal(split.test, np.flatnonzero(dates >= t))
    with pytest.raises(ValueError, match="validation_start must be before test_start"):
        TemporalSplit(name="t", kind="temporal", validation_start=TEST_START,
                      test_start=VALIDATION_START)
    early = spec.model_copy(update={"validation_start": pd.Timestamp("2020-06-01").date()})
    with pytest.raises(SplitError, match=r"splits\[0\].validation_start: no training rows"):
        make_split(rows, early, "splits[0]")


def test_a_column_split_without_validation_rows_is_refused_before_any_fit(
        rows: pd.DataFrame, tmp_path: Path) -> None:
    parted = rows.assign(part=np.where(rows["date"] >= pd.Timestamp(TEST_START, tz="UTC"),
                                       "test", "train"))
    split = {"name": "by_column", "kind": "column", "column": "part"}
    folder = _project(tmp_path / "column", parted, require=True, split=split)
    with pytest.raises(ValueError, match="evaluation.selection.require_fairness: split "
                       "'by_column' has no validation rows in the data"):
        run_project(folder)
