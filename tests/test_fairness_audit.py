"""The stand-alone audit: COMPAS reproduction (aequitas demo figures), outputs and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from conftest import SharedData
from rich.console import Console
from typer.testing import CliRunner

from rudikit.cli.audit import audit_command
from rudikit.fairness.audit import AuditResult, audit
from rudikit.fairness.disparities import DISPARITY_COLUMNS


@pytest.fixture(scope="module")
def compas(shared_data: SharedData) -> pd.DataFrame:
    frame = pd.read_csv(shared_data / "compas/compas-scores-two-years.csv",
                        usecols=["race", "sex", "age_cat", "score_text", "two_year_recid"])
    frame["high_risk"] = frame["score_text"].isin(["Medium", "High"]).astype(int)
    return frame


def test_compas_reproduces_aequitas_demo(compas: pd.DataFrame) -> None:
    result = audit(compas, "two_year_recid", "high_risk", ["race", "sex", "age_cat"],
                   reference={"race": "Caucasian"})
    assert result.settings["rows"] == 7214
    g = result.groups.set_index(["attribute", "group"])
    aa, cauc = g.loc[("race", "African-American")], g.loc[("race", "Caucasian")]
    assert (aa.fp, aa.neg, cauc.fp, cauc.neg) == (805, 1795, 349, 1488)
    assert aa.fpr == pytest.approx(0.448468, abs=1e-6)
    assert cauc.fpr == pytest.approx(0.234543, abs=1e-6)
    wide = result.to_wide().set_index(["attribute", "group"]).loc[("race", "African-American")]
    expected = {"fpr": 1.912093, "fnr": 0.586416, "fdr": 0.906085, "ppr": 2.545667,
                "pprev": 1.690224}
    for metric, value in expected.items():
        assert wide[f"{metric}_disparity"] == pytest.approx(value, abs=1e-6), metric
    long = result.to_long()
    fpr = long[(long.attribute == "race") & (long.metric == "fpr")].set_index("group")
    assert fpr.loc["Asian", "status"] == "insufficient data"  # 32 people
    assert fpr.loc["Caucasian", "status"] == "reference"
    assert fpr.loc["African-American", "p_value"] < 1e-30
    # sex and age_cat fall back to their largest group
    assert set(long[long.attribute == "sex"].reference_group) == {"Male"}


def test_compas_top_k_and_intersections(compas: pd.DataFrame) -> None:
    frame = compas.assign(score=compas["score_text"].map({"Low": 1, "Medium": 2, "High": 3}))
    result = audit(frame, "two_year_recid", "score", ["race"], intersections=[["race", "sex"]],
                   top_k=1403, reference={"race:sex": "Caucasian:Male"})
    pp = result.groups.groupby("attribute")["pp"].sum()
    assert (pp == 1403).all()  # exactly the High-risk people (no ties at the cut)
    long = result.to_long()
    assert set(long[long.attribute == "race:sex"].reference_group) == {"Caucasian:Male"}


def _synthetic(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "race": rng.choice(["A", "B", "C"], n, p=[0.6, 0.35, 0.05]),
        "sex": rng.choice(["F", "M"], n),
        "station": rng.choice(["N", "S", None], n, p=[0.5, 0.45, 0.05]),
        "score": rng.random(n),
    })
    frame["y"] = (rng.random(n) < frame["score"]).astype(int)
    return frame


def test_long_table_is_tidy_and_complete() -> None:
    result = audit(_synthetic(), "y", "score", ["race", "station"],
                   intersections=[["race", "sex"]], threshold=0.5)
    long = result.to_long()
    assert list(long.columns) == list(DISPARITY_COLUMNS)
    assert not long.duplicated(["attribute", "group", "metric"]).any()
    assert "(missing)" in set(long[long.attribute == "station"].group)
    assert set(long.attribute) == {"race", "station", "race:sex"}
    assert (long[long.n < 50].status == "insufficient data").all()
    assert isinstance(result, AuditResult)


def test_outputs_csv_json_html_and_render(tmp_path: Path) -> None:
    result = audit(_synthetic(), "y", "score", ["race", "sex"], top_pct=10, min_group_size=200)
    csv = pd.read_csv(result.to_csv(tmp_path / "a.csv"))
    assert len(csv) == len(result.disparities)
    doc = json.loads(result.to_json(tmp_path / "a.json").read_text())
    assert set(doc) == {"settings", "summary", "groups", "disparities"}
    assert doc["settings"]["list_size"] == 300
    assert any(r["disparity_ratio"] is None for r in doc["disparities"])  # NaN -> null
    html = result.to_html(tmp_path / "a.html").read_text()
    assert "<html" in html and "Plotly.newPlot" in html and "<script src=" not in html
    assert "insufficient data" in html
    console = Console(record=True, width=160)
    result.render(console)
    text = console.export_text()
    assert "Summary measures" in text and "demographic_parity" in text and "race" in text


def test_binary_predictions_and_audit_errors() -> None:
    frame = _synthetic().assign(pred=lambda d: (d.score > 0.7).astype(int))
    result = audit(frame, "y", "pred", ["race"])
    assert result.settings["selection"] == "predictions"
    with pytest.raises(ValueError, match="score column 'score': must be binary.*threshold"):
        audit(frame, "y", "score", ["race"])
    with pytest.raises(ValueError, match="unknown attribute column 'ethnicity'"):
        audit(frame, "y", "pred", ["ethnicity"])
    with pytest.raises(ValueError, match="label: unknown column 'outcome'"):
        audit(frame, "outcome", "pred", ["race"])
    with pytest.raises(ValueError, match="at most one of threshold, top_k and top_pct"):
        audit(frame, "y", "score", ["race"], threshold=0.5, top_k=10)
    with pytest.raises(ValueError, match="reference group 'Z' not found in attribute 'race'"):
        audit(frame, "y", "pred", ["race"], reference={"race": "Z"})


# --- CLI -------------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("audit")(audit_command)

    @app.callback()
    def main() -> None:  # keeps "audit" a sub-command, as in the real CLI
        """rudi"""

    return app


def test_cli_writes_outputs(tmp_path: Path) -> None:
    data = tmp_path / "scores.csv"
    _synthetic().to_csv(data, index=False)
    out = tmp_path / "out"
    res = CliRunner().invoke(_app(), [
        "audit", str(data), "--label", "y", "--score", "score", "--attr", "race", "--attr", "sex",
        "--intersect", "race,sex", "--threshold", "0.5", "--reference", "race=A",
        "--min-group-size", "30", "--csv", f"{out}.csv", "--json", f"{out}.json",
        "--html", f"{out}.html",
    ])
    assert res.exit_code == 0, res.output
    assert Path(f"{out}.csv").exists() and Path(f"{out}.json").exists()
    assert Path(f"{out}.html").exists()
    settings = json.loads(Path(f"{out}.json").read_text())["settings"]
    assert settings["reference"] == {"race": "A"} and settings["min_group_size"] == 30
    assert settings["attributes"] == ["race", "sex", "race:sex"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "--label", "y", "--score", "score", "--attr", "race"],
         "does not exist"),
        (["{data}", "--label", "y", "--score", "score", "--attr", "ethnicity"],
         "column(s) ['ethnicity'] not found"),
        (["{data}", "--label", "y", "--score", "score", "--attr", "race"],
         "must be binary"),
        (["{data}", "--label", "y", "--score", "score", "--attr", "race", "--top-k", "5",
          "--threshold", "0.5"], "only one of"),
        (["{data}", "--label", "y", "--score", "score", "--attr", "race", "--threshold", "0.5",
          "--reference", "race"], "expected ATTRIBUTE=GROUP"),
        (["{data}", "--label", "y", "--score", "score", "--threshold", "0.5"],
         "at least one protected attribute"),
    ],
)
def test_cli_errors_exit_2_without_traceback(tmp_path: Path, args: list[str],
                                             message: str) -> None:
    data = tmp_path / "scores.csv"
    _synthetic(200).to_csv(data, index=False)
    args = [a.replace("{data}", str(data)) if a == "{data}" else a for a in args]
    if args[0] == "missing.csv":
        args[0] = str(tmp_path / "missing.csv")
    res = CliRunner().invoke(_app(), ["audit", *args])
    assert res.exit_code == 2
    output = " ".join((res.output + (res.stderr or "")).split())
    assert message in output
    assert "Traceback" not in output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_cli_help_lists_the_options() -> None:
    res = CliRunner().invoke(_app(), ["audit", "--help"])
    assert res.exit_code == 0
    for option in ("--label", "--score", "--attr", "--intersect", "--top-k", "--top-pct",
                   "--threshold", "--reference", "--min-group-size", "--csv", "--json", "--html"):
        assert option in res.output


def test_audit_options_bootstrap_min_metric_and_no_auc() -> None:
    frame = _synthetic()
    result = audit(frame, "y", "score", ["race"], intersections=[["race", "sex"]],
                   threshold=0.5, reference="min_metric", interval="bootstrap", n_bootstrap=200,
                   roc_auc=False, summary_aggregate="mean", fairness_bounds=None)
    long = result.to_long()
    assert "roc_auc" not in set(long.metric)
    assert result.groups.roc_auc.isna().all()
    assert long.fair.isna().all()
    ok = long[long.status == "ok"]
    assert (ok.disparity_ratio >= 1 - 1e-12).all()
    assert long[long.metric == "fpr"].lower.notna().all()
    assert set(result.summary.aggregation) >= {"mean"}
