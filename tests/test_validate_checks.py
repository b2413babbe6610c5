"""`rudi validate` refuses what `rudi run` would refuse before any fit, with the same key-path
message, and `rudi run` refuses it before anything is stored: misspelt hyperparameters, unknown
fairness reference groups, bad grid values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.config import Fairness
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
