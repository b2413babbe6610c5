"""Audit details (issue 16, item 6): --where, undefined ratios, intersection reference, the
summary measures' direction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rudikit.cli import app


def _where_csv(tmp_path: Path) -> Path:
    """12 rows; the filter keeps 7: |days| <= 30 and is_recid != -1."""
    frame = pd.DataFrame({
        "days": [0, -5, 30, -30, 31, -40, 2, 1, 0, 10, 3, 500],
        "is_recid": [0, 1, 1, 0, 1, 0, -1, 1, 0, -1, 1, 1],
        "race": ["A", "A", "A", "B", "B", "B", "A", "B", "B", "A", "A", "B"],
        "y": [0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 1],
        "pred": [1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0],
        "unused": list(range(12)),
    })
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    return path


def test_where_filters_rows_before_the_audit(tmp_path: Path) -> None:
    data = _where_csv(tmp_path)
    out = tmp_path / "out.json"
    res = CliRunner().invoke(app, [
        "audit", str(data), "-y", "y", "-s", "pred", "-a", "race", "--min-group-size", "1",
        "--where", "days.abs() <= 30 and is_recid != -1", "--json", str(out),
        "--html", str(tmp_path / "out.html"),
    ])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    # kept rows (index): 0,1,2,3 (|days|<=30), 7,8,10 (is_recid != -1) -> 7 rows
    assert doc["settings"]["rows"] == 7
    assert doc["settings"]["where"] == "days.abs() <= 30 and is_recid != -1"
    groups = {g["group"]: g for g in doc["groups"]}
    assert groups["A"]["n"] == 4 and groups["B"]["n"] == 3
    # hand count, race A kept rows 0,1,2,10: y 0,1,1,1, pred 1,1,0,1 -> tp 2, fp 1
    assert groups["A"]["tp"] == 2 and groups["A"]["fp"] == 1
    assert groups["A"]["precision"] == pytest.approx(2 / 3)
    # race B kept rows 3,7,8: y 0,1,0, pred 0,1,1 -> fpr = 1 / 2
    assert groups["B"]["fpr"] == pytest.approx(0.5)
    assert "where days.abs() <= 30" in " ".join(res.output.split())
    assert "7 rows where <code>days.abs() &lt;= 30" in (tmp_path / "out.html").read_text()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("days >", "--where 'days >': SyntaxError"),
        ("no_such_column > 1", "--where 'no_such_column > 1': UndefinedVariableError"),
        ("days > 1000", "--where 'days > 1000' keeps none of the 12 rows"),
        ("  ", "--where is empty"),
    ],
)
def test_bad_where_is_an_error_naming_it(tmp_path: Path, where: str, message: str) -> None:
    data = _where_csv(tmp_path)
    out = tmp_path / "out.json"
    res = CliRunner().invoke(app, [
        "audit", str(data), "-y", "y", "-s", "pred", "-a", "race", "--where", where,
        "--json", str(out),
    ])
    assert res.exit_code == 2
    output = " ".join((res.output + (res.stderr or "")).split())
    assert message in output
    assert "Traceback" not in output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert not out.exists()


def test_where_reads_its_columns_but_returns_only_the_audited_ones(tmp_path: Path) -> None:
    from rudikit.cli.audit import _read_table

    frame = _read_table(_where_csv(tmp_path), ["y", "pred", "race"], "`is_recid` != -1")
    assert list(frame.columns) == ["y", "pred", "race"]
    assert len(frame) == 10


def _zero_reference_frame() -> pd.DataFrame:
    """Reference A (1000 rows) has no false positives; B's FPR is 112 / 250 = 0.448, C's is 0."""
    def block(group: str, tp: int, fn: int, fp: int, tn: int) -> pd.DataFrame:
        y = [1] * (tp + fn) + [0] * (fp + tn)
        pred = [1] * tp + [0] * fn + [1] * fp + [0] * tn
        return pd.DataFrame({"race": group, "y": y, "pred": pred})

    return pd.concat([block("A", 400, 100, 0, 500), block("B", 250, 100, 112, 138),
                      block("C", 60, 40, 0, 100)], ignore_index=True)


def test_reference_at_zero_lets_the_difference_decide(tmp_path: Path) -> None:
    from rich.console import Console

    from rudikit.fairness.audit import audit

    result = audit(_zero_reference_frame(), "y", "pred", ["race"])
    fpr = result.disparities.query("metric == 'fpr'").set_index("group")
    assert fpr.loc["A", "value"] == 0 and fpr.loc["A", "status"] == "reference"
    b = fpr.loc["B"]
    assert b["value"] == pytest.approx(0.448) and pd.isna(b["disparity_ratio"])
    assert b["difference_pp"] == pytest.approx(44.8)
    assert b["p_value"] < 1e-50 and bool(b["significant"])
    assert pd.notna(b["fair"]) and not bool(b["fair"])
    assert b["status"] == "unfair" and b["p_adjusted"] < 1e-50
    # 0 against 0: no difference at all, so fair
    assert fpr.loc["C", "value"] == 0 and bool(fpr.loc["C", "fair"])
    # a defined ratio still follows the 0.8-1.25 rule: tpr 0.714 / 0.8 = 0.89
    tpr = result.disparities.query("metric == 'tpr'").set_index("group")
    assert tpr.loc["B", "disparity_ratio"] == pytest.approx((250 / 350) / 0.8)
    assert bool(tpr.loc["B", "fair"])
    console = Console(record=True, width=200, color_system="truecolor")
    result.render(console)
    text = console.export_text(styles=True, clear=False)
    plain_text = console.export_text()
    assert "0.448 +44.8pp*" in plain_text
    red_cell = [line for line in text.splitlines() if "+44.8pp*" in line]
    assert red_cell and "\x1b[31m0.448 +44.8pp*" in red_cell[0]
    page = result.to_html(tmp_path / "a.html").read_text()
    assert 'class="unfair" title="false positive rate: 0.448' in page
    assert "+44.8pp*" in page


def test_reference_at_zero_without_bounds_gives_no_verdict() -> None:
    from rudikit.fairness.audit import audit

    result = audit(_zero_reference_frame(), "y", "pred", ["race"], fairness_bounds=None)
    assert result.disparities["fair"].isna().all()


def _crossed_frame() -> pd.DataFrame:
    """race x sex cells: the largest is B:F (400); A:M has 150 rows, A:F 200."""
    sizes = {("A", "M"): 150, ("A", "F"): 200, ("B", "M"): 300, ("B", "F"): 400}
    parts = []
    for (race, sex), size in sizes.items():
        parts.append(pd.DataFrame({"race": race, "sex": sex, "y": [0, 1] * (size // 2),
                                   "pred": [0, 0, 1, 1] * (size // 4) + [0, 1] * (size % 4 // 2)}))
    return pd.concat(parts, ignore_index=True)


def _references(result: object) -> dict[str, str]:
    long = result.disparities  # type: ignore[attr-defined]
    refs = long[long["status"] == "reference"].drop_duplicates("attribute")
    return dict(zip(refs["attribute"], refs["group"], strict=True))


def test_intersection_reference_follows_the_named_groups() -> None:
    from rudikit.fairness.audit import audit

    frame = _crossed_frame()
    kwargs = {"intersections": [["race", "sex"]], "threshold": None}
    both = audit(frame, "y", "pred", ["race", "sex"], reference={"race": "A", "sex": "M"},
                 **kwargs)
    assert _references(both) == {"race": "A", "sex": "M", "race:sex": "A:M"}
    assert set(both.disparities.query("attribute == 'race:sex'")["reference_group"]) == {"A:M"}
    # only race named: the largest A:* cell; nothing named: the largest cell
    race_only = audit(frame, "y", "pred", ["race", "sex"], reference={"race": "A"}, **kwargs)
    assert _references(race_only) == {"race": "A", "sex": "F", "race:sex": "A:F"}
    majority = audit(frame, "y", "pred", ["race", "sex"], **kwargs)
    assert _references(majority)["race:sex"] == "B:F"
    # an explicit intersection reference still wins
    named = audit(frame, "y", "pred", ["race", "sex"],
                  reference={"race": "A", "sex": "M", "race:sex": "B:M"}, **kwargs)
    assert _references(named)["race:sex"] == "B:M"


def test_cli_intersection_reference_follows_reference_options(tmp_path: Path) -> None:
    data = tmp_path / "crossed.csv"
    _crossed_frame().to_csv(data, index=False)
    out = tmp_path / "out.json"
    res = CliRunner().invoke(app, [
        "audit", str(data), "-y", "y", "-s", "pred", "-a", "race", "-a", "sex",
        "--intersect", "race,sex", "--reference", "race=A", "--reference", "sex=M",
        "--json", str(out),
    ])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["disparities"]
    crossed = {r["reference_group"] for r in rows if r["attribute"] == "race:sex"}
    assert crossed == {"A:M"}
    assert "race:sex (reference: A:M)" in " ".join(res.output.split())


def test_summary_measures_say_their_direction_and_ideal(tmp_path: Path) -> None:
    import re

    from rich.console import Console

    from rudikit.fairness.audit import audit
    from rudikit.fairness.summary import SUMMARY_MEASURES, measure_reading

    assert measure_reading("disparate_impact").startswith("ratio, 1 is parity, lower means")
    assert measure_reading("demographic_parity").startswith("difference, 0 is parity, higher")
    assert "not the model" in measure_reading("class_imbalance")
    assert all(re.search(r"\b[01] is (parity|equal)", measure_reading(m))
               for m in SUMMARY_MEASURES)
    with pytest.raises(ValueError, match="unknown summary measure 'gap'"):
        measure_reading("gap")
    result = audit(_zero_reference_frame(), "y", "pred", ["race"])
    console = Console(record=True, width=80)
    result.render(console)
    text = " ".join(console.export_text().replace("│", " ").split())
    assert "disparate_impact 0.4972 ratio, 1 is parity, lower means selection rates" in text
    assert "demographic_parity 0.3033 difference, 0 is parity, higher means selection" in text
    page = result.to_html(tmp_path / "a.html").read_text()
    assert "<th class=\"l\">how to read it</th>" in page
    assert ("<td>0.4972</td><td class=\"l\">ratio, 1 is parity, lower means selection rates "
            "further apart</td>") in page


def test_prevalence_is_described_not_judged(tmp_path: Path) -> None:
    import re

    from rudikit.fairness.audit import audit

    result = audit(_zero_reference_frame(), "y", "pred", ["race"])
    prevalence = result.disparities.query("metric == 'prevalence'").set_index("group")
    # B's base rate is 350 / 600 against A's 500 / 1000: ratio 1.17, significant, no verdict
    assert prevalence.loc["B", "disparity_ratio"] == pytest.approx(350 / 600 / 0.5)
    assert bool(prevalence.loc["B", "significant"])
    assert prevalence["fair"].isna().all()
    page = result.to_html(tmp_path / "a.html").read_text()
    cells = re.findall(r'<td class="([^"]*)" title="prevalence \(label base rate\)', page)
    assert cells == ["ref", "", ""]
    assert "describes the data,\nnever judged fair or unfair" in page
    # other metrics keep their verdicts: B's selection rate x1.51 is coloured unfair
    assert re.search(r'<td class="unfair" title="selection rate: 0.603', page)


def _tied_frame() -> pd.DataFrame:
    """10 rows, top 4: two rows above the cut, five rows tied at 0.5 share the 2 places left
    (expected share 2/5 each)."""
    return pd.DataFrame({
        "s": [0.9, 0.8, 0.5, 0.5, 0.5, 0.5, 0.5, 0.3, 0.2, 0.1],
        "y": [1, 0, 1, 1, 0, 1, 0, 0, 1, 0],
        "g": ["a", "b", "a", "a", "b", "b", "b", "a", "b", "a"],
    })


def test_top_k_ties_count_by_expected_value_whatever_the_row_order() -> None:
    from rudikit.evaluation.metrics import precision_at_k
    from rudikit.fairness.audit import audit
    from rudikit.fairness.selection import TiedAtCutWarning

    frame = _tied_frame()
    # by hand: a = rows 0 (in, y=1), 2, 3 (tied, y=1), 7, 9 (out, y=0);
    #          b = row 1 (in, y=0), 4, 6 (tied, y=0), 5 (tied, y=1), 8 (out, y=1)
    share = 2 / 5
    expected = {
        "a": {"tp": 1 + 2 * share, "fp": 0.0, "fn": 2 * (1 - share), "tn": 2.0},
        "b": {"tp": share, "fp": 1 + 2 * share, "fn": 1 + (1 - share), "tn": 2 * (1 - share)},
    }
    results = []
    for seed in (None, 1, 2, 3):
        shuffled = frame if seed is None else frame.sample(frac=1, random_state=seed)
        with pytest.warns(TiedAtCutWarning, match=r"^5 rows tied at the k-th score straddle"):
            result = audit(shuffled, "y", "s", ["g"], top_k=4, min_group_size=1)
        assert result.settings["tie_warning"].startswith("5 rows tied")
        table = result.groups.set_index("group")
        for group, cells in expected.items():
            for cell, value in cells.items():
                assert table.loc[group, cell] == pytest.approx(value)
            assert table.loc[group, "n"] == 5
        results.append(table[["tp", "fp", "fn", "tn", "precision", "fpr"]].sort_index())
    for other in results[1:]:
        pd.testing.assert_frame_equal(results[0], other)
    # the same rule as precision@k over all rows: expected true positives / k
    tp_total = float(results[0]["tp"].sum())
    assert tp_total / 4 == pytest.approx(precision_at_k(frame["y"].to_numpy(),
                                                        frame["s"].to_numpy(), 4))


def test_no_tie_warning_when_the_cut_falls_between_scores() -> None:
    import warnings

    from rudikit.fairness.audit import audit

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = audit(_tied_frame(), "y", "s", ["g"], top_k=7, min_group_size=1)
    assert result.settings["tie_warning"] is None
    assert result.groups["pp"].sum() == 7


def test_cli_audit_warns_about_ties_and_accepts_stable(tmp_path: Path) -> None:
    data = tmp_path / "tied.csv"
    _tied_frame().to_csv(data, index=False)
    args = ["audit", str(data), "-y", "y", "-s", "s", "-a", "g", "--top-k", "4",
            "--min-group-size", "1"]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    assert "5 rows tied at the k-th score straddle the cut" in " ".join(res.output.split())
    res = CliRunner().invoke(app, [*args, "--tie-break", "stable", "--json",
                                   str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    groups = json.loads((tmp_path / "s.json").read_text())["groups"]
    assert sorted(g["tp"] for g in groups) == [0, 3]  # file order: rows 2, 3 (both group a)
    res = CliRunner().invoke(app, [*args, "--tie-break", "first"])
    assert res.exit_code != 0
    assert "--tie-break must be one of expected, stable, random" in res.output


@pytest.mark.parametrize("columns", ["80", "60", "200"])
def test_cli_audit_tables_drop_no_metric_at_any_width(tmp_path: Path, columns: str) -> None:
    from rudikit.fairness.audit_report import TERMINAL_METRICS

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"s": rng.random(400), "y": rng.integers(0, 2, 400),
                          "race": rng.choice(["African-American", "Caucasian", "Other"], 400)})
    data = tmp_path / "scores.csv"
    frame.to_csv(data, index=False)
    res = CliRunner().invoke(app, ["audit", str(data), "-y", "y", "-s", "s", "-a", "race",
                                   "--top-pct", "30", "--min-group-size", "10"],
                             env={"COLUMNS": columns})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= int(columns)
    headers = [line for line in lines if "group" in line and "┃" in line]  # header rows
    shown = {cell.strip() for line in headers for cell in line.split("┃")}
    assert set(TERMINAL_METRICS) <= shown, (set(TERMINAL_METRICS) - shown, res.output)
    assert res.output.count("African-American") >= 1 + (columns != "200")
