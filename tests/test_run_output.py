"""`rudi run` on an 80-column terminal: no line is wider, the progress keeps the count and the
elapsed time (the model description is what gets shortened), the steps after the last fit have
a progress line of their own, and the summary table keeps each interval on one line and says
"top 10%" rather than ``10_pct``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.cli.develop import top_share
from rudikit.cli.terminal import console
from tests.conftest import write_project

runner = CliRunner()


def test_an_80_column_run_fits_and_keeps_what_matters(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_project(tmp_path / "a-project-folder-with-a-long-name", models=[
        {"algorithm": "logistic_regression", "params": {"C": [1.0]}},
        {"algorithm": "lightgbm", "params": {"n_estimators": 20, "num_leaves": 7,
                                             "min_child_samples": 20, "learning_rate": 0.1,
                                             "colsample_bytree": 0.8}}])
    config = yaml.safe_load((folder / "rudi.yaml").read_text())
    config["data"]["sources"][0].update(rows_per_month=400, months=["2020-01", "2020-02"])
    config["splits"] = config["splits"][:1]  # last_month
    config["evaluation"]["bootstrap"] = 20
    config["fairness"].pop("mitigation")
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.setattr(console, "width", 80)
    result = runner.invoke(app, ["run", str(folder)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    fits = 2 * len(config["splits"])
    # the fitting line ends with the count and the time, whatever the description's length
    fitting = [line for line in lines if re.search(rf" {fits}/{fits} +\d+:\d\d:\d\d$", line)
               and not line.startswith("after the fits")]
    assert len(fitting) == 1 and fitting[0].startswith("last_month: group "), lines
    # the steps after the last fit (selection, explanations, mitigation, report) on their own
    # line, which also ends with its count and time
    assert sum(bool(re.fullmatch(r"after the fits: done.* (\d+)/\1 +\d+:\d\d:\d\d", line))
               for line in lines) == 1, lines
    # the summary: compact headers, the interval beside its estimate, the chosen model starred
    text = "\n".join(lines)
    assert "10_pct" not in text
    header = next(i for i, line in enumerate(lines) if "ROC AUC (95% CI)" in line)
    assert "top 10%" in " ".join(lines[header:header + 2])
    rows = [line for line in lines if re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", line)]
    assert len(rows) == fits
    assert sum(bool(re.match(r"\s*\*\d+ ", line)) for line in rows) == 1
    assert all(("logistic_regression" in line) != ("lightgbm" in line) for line in rows)
    for split in config["splits"]:
        assert any(line.strip() == f"split {split['name']}" for line in lines)


def test_top_share_names_list_sizes_in_words() -> None:
    assert top_share("10_pct") == "top 10%"
    assert top_share("100_abs") == "top 100"
