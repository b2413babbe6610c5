"""Audit details (issue 16, item 6): --where, undefined ratios, intersection reference, the
summary measures' direction."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from rudikit.cli.audit import audit_command


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("audit")(audit_command)

    @app.callback()
    def main() -> None:  # keeps "audit" a sub-command, as in the real CLI
        """rudi"""

    return app


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
    res = CliRunner().invoke(_app(), [
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
    res = CliRunner().invoke(_app(), [
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
