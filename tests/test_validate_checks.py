"""`rudi validate` refuses what `rudi run` would refuse before any fit, with the same key-path
message, and `rudi run` refuses it before anything is stored: misspelt hyperparameters, unknown
fairness reference groups, bad grid values."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.config import Fairness
from rudikit.data.synthetic import generate_archive
from rudikit.data.validation import bad_date_problems, likely_date_format
from rudikit.fairness.stage import check_reference_groups
from tests.conftest import example_config, squeezed, stored_runs, write_project

runner = CliRunner()

MODELS = [{"algorithm": "rate_by_category", "params": {"column": "object_of_search"}},
          {"algorithm": "logistic_regression", "params": {"C": [1.0]}},
          {"algorithm": "random_forest", "params": {"n_estimators": 5}},
          {"algorithm": "lightgbm", "params": {"n_estimators": 20, "num_leafs": [15, 31]}}]


def _refused_by_both(folder: Path, message: str) -> None:
    checked = runner.invoke(app, ["validate", str(folder)])
    assert checked.exit_code == 1, checked.output
    assert squeezed(message) in squeezed(checked.output)
    assert "Traceback" not in checked.output
    ran = runner.invoke(app, ["run", str(folder)])
    assert ran.exit_code == 2, ran.output
    assert squeezed(message) in squeezed(ran.output)
    assert stored_runs(folder / ".rudi" / "rudi.db") == 0  # refused before any run was stored


def test_a_misspelt_hyperparameter_is_named_with_its_key_path(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "p", models=MODELS)
    _refused_by_both(folder, "models[3].params.num_leafs: lightgbm has no parameter "
                             "'num_leafs'; did you mean 'num_leaves'?")


def test_misspelt_scikit_learn_parameters_get_the_real_name(tmp_path: Path) -> None:
    models = [{"algorithm": "logistic_regression", "params": {"c": [1.0]}},
              {"algorithm": "random_forest", "params": {"min_sample_leaf": 3}}]
    checked = runner.invoke(app, ["validate", str(write_project(tmp_path / "p", models=models))])
    assert checked.exit_code == 1, checked.output
    assert squeezed("models[0].params.c: logistic_regression has no parameter 'c'; did you mean "
                    "'C'?") in squeezed(checked.output)
    assert squeezed("models[1].params.min_sample_leaf: random_forest has no parameter "
                    "'min_sample_leaf'; did you mean 'min_samples_leaf'?"
                    ) in squeezed(checked.output)


def test_an_unknown_reference_group_is_found_before_training(tmp_path: Path) -> None:
    fairness = example_config()["fairness"]
    fairness["reference_groups"] = {"officer_defined_ethnicity": "white", "gender": "Male"}
    folder = write_project(tmp_path / "p", fairness=fairness, models=MODELS[:2])
    _refused_by_both(folder, "fairness.reference_groups.officer_defined_ethnicity: no group "
                             "'white' in the data; did you mean 'White'?")


def test_reference_groups_of_intersections_and_unaudited_attributes() -> None:
    frame = pd.DataFrame({"race": ["A", "B", None], "sex": ["F", "M", "F"]})
    fairness = Fairness(attributes=["race"], intersections=[["race", "sex"]],
                        reference_groups={"race:sex": "A:F", "race": "(missing)", "sexx": "F"})
    assert check_reference_groups(fairness, frame) == [
        "fairness.reference_groups.sexx: 'sexx' is not an audited attribute "
        "(fairness.attributes or intersections)"]
    wrong = Fairness(attributes=["race"], reference_groups={"race": "Zulu"})
    assert check_reference_groups(wrong, frame) == [
        "fairness.reference_groups.race: no group 'Zulu' in the data; groups: '(missing)', "
        "'A', 'B'"]


def test_validate_checks_the_grid_values_as_run_does(tmp_path: Path) -> None:
    models = [{"algorithm": "logistic_regression", "params": {"C": [-1.0]}}]
    checked = runner.invoke(app, ["validate", str(write_project(tmp_path / "p", models=models))])
    assert checked.exit_code == 1, checked.output
    assert squeezed("models: 'logistic_regression(C=-1.0)': The 'C' parameter of "
                    "LogisticRegression must be") in squeezed(checked.output)


def _archive_with_bad_dates(folder: Path, bad: int) -> tuple[Path, int, list[str]]:
    """A project on synthetic archive files whose first ``bad`` dates are written day-first
    (``31/12/2019 23:05:00``): (project folder, rows, the first three bad values)."""
    files = generate_archive(folder / "data", rows_per_month=300, seed=3, forces=["essex"])
    with files[0].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    date = rows[0].index("Date")
    for row in rows[1:bad + 1]:
        row[date] = pd.Timestamp(row[date]).strftime("%d/%m/%Y %H:%M:%S")
    with files[0].open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(rows)
    total = sum(len(p.read_text().splitlines()) - 1 for p in files)
    write_project(folder, data={"entity_id": "record_id", "knowledge_date": "datetime",
                                "sources": [{"name": "searches", "kind": "police_uk_archive",
                                             "path": "data"}]},
                  models=MODELS[:2])
    return folder, total, [row[date] for row in rows[1:4]]


def test_bad_dates_above_max_bad_share_are_refused_naming_the_column_and_format(
        tmp_path: Path) -> None:
    folder, rows, first = _archive_with_bad_dates(tmp_path / "p", 20)
    _refused_by_both(folder, f"data.knowledge_date: 20 of {rows:,} values "
                             f"({20 / rows:.1%}) in column 'datetime' are not ISO 8601 dates, "
                             "more than data.max_bad_share (1.0%); they look like "
                             f"'%d/%m/%Y %H:%M:%S' (e.g. {', '.join(map(repr, first))})")


def test_bad_dates_within_max_bad_share_pass(tmp_path: Path) -> None:
    folder, _, _ = _archive_with_bad_dates(tmp_path / "p", 20)
    config = yaml.safe_load((folder / "rudi.yaml").read_text())
    config["data"]["max_bad_share"] = 0.05
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    checked = runner.invoke(app, ["validate", str(folder)])
    assert checked.exit_code == 0, checked.output
    assert "20 bad rows" in checked.output and "valid" in checked.output


def test_a_text_date_column_gets_its_likely_format() -> None:
    frame = pd.DataFrame({"when": ["2020-01-02T10:00:00", "12/31/2019", "01/30/2020", None]})
    assert bad_date_problems({"when": "splits[0].date_column"}, frame, [], 0.01) == [
        "splits[0].date_column: 2 of 4 values (50.0%) in column 'when' are not ISO 8601 dates, "
        "more than data.max_bad_share (1.0%); they look like '%m/%d/%Y' (e.g. '12/31/2019', "
        "'01/30/2020')"]
    assert likely_date_format(pd.Series(["yesterday", "soon"])) is None
