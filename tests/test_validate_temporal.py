"""`rudi validate` of a temporal (EIS) project refuses what `rudi run` would, before any feature
is built: misspelt hyperparameters of ``temporal.models``, reference groups the officers do not
have (the real spelling suggested), and event-table date columns with more unparseable values
than ``data.max_bad_share`` (naming the table, the column and the likely format). `rudi run`
refuses the same before it stores a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.data.event_tables import typed_dates
from tests.conftest import squeezed, stored_runs
from tests.test_eis import project_config
from tests.test_temporal import synthetic_tables

runner = CliRunner()


def _day_first(frame: pd.DataFrame, column: str, bad: int) -> tuple[pd.DataFrame, list[str]]:
    """``column`` as ISO 8601 text, its first ``bad`` dates written day-first."""
    text = frame[column].dt.strftime("%Y-%m-%d").astype(object)
    rows = np.flatnonzero(frame[column].notna().to_numpy())[:bad]
    text.iloc[rows] = frame[column].iloc[rows].dt.strftime("%d/%m/%Y")
    return frame.assign(**{column: text}), list(text.iloc[rows[:3]])


def test_typed_dates_reads_iso_text_and_reports_each_bad_value() -> None:
    complaints = synthetic_tables()["complaints"]
    text, _ = _day_first(complaints, "complaint_date", 4)
    typed, problems = typed_dates("complaints", text)
    expected = pd.to_datetime(text["complaint_date"], format="%Y-%m-%d", errors="coerce")
    pd.testing.assert_series_equal(typed["complaint_date"], expected.astype("datetime64[s]"),
                                   check_names=False)
    assert [(p.row, p.column, p.problem) for p in problems] == [
        (i + 1, "complaint_date", "unparseable date") for i in range(4)]
    assert typed["complaint_date"].isna().sum() == 4
    # a table already typed is left as it is
    assert typed_dates("complaints", complaints)[0] is complaints


def test_temporal_validate_and_run_refuse_before_anything_is_built(tmp_path: Path) -> None:
    data = tmp_path / "events"
    data.mkdir()
    tables = synthetic_tables()
    complaints, first = _day_first(tables["complaints"], "complaint_date", 40)
    tables["complaints"] = complaints
    for name, frame in tables.items():
        frame.to_parquet(data / f"{name}.parquet")
    config = project_config(data)
    config["temporal"]["models"][1]["params"]["num_leafs"] = 7
    config["fairness"]["attributes"] = ["race", "age_band"]
    config["fairness"]["reference_groups"] = {"race": "white", "age_band": "Under 30"}
    (tmp_path / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    n = len(complaints)
    expected = [
        "temporal.models[1].params.num_leafs: lightgbm has no parameter 'num_leafs'; did you "
        "mean 'num_leaves'?",
        "fairness.reference_groups.race: no group 'white' in the data; did you mean 'WHITE'?",
        "fairness.reference_groups.age_band: no group 'Under 30' in the data; did you mean "
        "'under 30'?",
        f"data.sources[0] table 'complaints': 40 of {n:,} values ({40 / n:.1%}) in column "
        "'complaint_date' are not ISO 8601 dates, more than data.max_bad_share (1.0%); they "
        f"look like '%d/%m/%Y' (e.g. {', '.join(map(repr, first))})"]
    checked = runner.invoke(app, ["validate", str(tmp_path)])
    assert checked.exit_code == 1, checked.output
    assert "Traceback" not in checked.output
    for problem in expected:
        assert squeezed(problem) in squeezed(checked.output), problem
    ran = runner.invoke(app, ["run", str(tmp_path)])
    assert ran.exit_code == 2, ran.output
    for problem in expected:
        assert squeezed(problem) in squeezed(ran.output), problem
    assert stored_runs(tmp_path / ".rudi" / "rudi.db") == 0
    # the spelling fixed and the threshold raised above the share: valid
    config["temporal"]["models"][1]["params"].pop("num_leafs")
    config["fairness"]["reference_groups"] = {"race": "WHITE", "age_band": "under 30"}
    config["data"]["max_bad_share"] = 0.5
    (tmp_path / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    valid = runner.invoke(app, ["validate", str(tmp_path)])
    assert valid.exit_code == 0, valid.output
    assert "events.complaints (synthetic)" in valid.output and "40 unparseable values" in \
        valid.output


def test_a_missing_event_table_folder_is_an_error_naming_the_path(tmp_path: Path) -> None:
    config = project_config(tmp_path / "no-such-folder")
    (tmp_path / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for command in ("validate", "run"):
        result = runner.invoke(app, [command, str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert squeezed(f"data.sources[0].path: {tmp_path / 'no-such-folder'} does not exist"
                        ) in squeezed(result.output)
        assert "Traceback" not in result.output
