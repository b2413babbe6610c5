"""rudi.yaml: bad configuration gets errors that name the key path and the problem."""

from __future__ import annotations

import pytest

from rudikit.config import ProjectError, load_project, missing_rationale, parse_project
from tests.conftest import REPO, example_config


def errors_for(config: dict) -> list[str]:
    with pytest.raises(ProjectError) as info:
        parse_project(config)
    return info.value.problems


def test_example_parses_and_its_rationale_is_complete() -> None:
    project = parse_project(example_config())
    assert project.name == "stop-search-success"
    assert missing_rationale(project.rationale) == []
    assert project.selection_split == "last_month"
    assert len(project.config_hash()) == 16


@pytest.mark.parametrize("example", ["stop_search", "stop_search_sql", "compas"])
def test_a_shipped_case_example_chooses_on_validation_rows_never_its_test_rows(
        example: str) -> None:
    """The selection reads the test rows only when the selection split has no validation
    partition; a shipped example that did would report a chosen model's test figure that its
    own choice had seen (issue 20: stop_search chose on the test month 2020-02)."""
    project = load_project(REPO / "examples" / example)
    split = next(s for s in project.splits if s.name == project.selection_split)
    assert split.has_validation, f"{example}: split {split.name!r} has no validation partition"


def test_unknown_key_is_named_with_its_path() -> None:
    config = example_config()
    config["models"][1]["paramz"] = {"C": [1]}
    assert "models[1].paramz: unknown key" in errors_for(config)


def test_wrong_type_names_field_and_value() -> None:
    config = example_config()
    config["evaluation"]["bootstrap"] = "many"
    problems = errors_for(config)
    assert any(p.startswith("evaluation.bootstrap: ") and "'many'" in p for p in problems)


def test_every_problem_is_reported_not_just_the_first() -> None:
    config = example_config()
    config["models"][0]["algorithm"] = "deep_magic"
    config["splits"][0]["test_start"] = "next tuesday"
    del config["label"]
    problems = errors_for(config)
    assert "label: required key is missing" in problems
    assert any(p.startswith("models[0].algorithm: ") and "deep_magic" in p for p in problems)
    assert any(p.startswith("splits[0].test_start: ") for p in problems)


def test_unknown_split_kind_and_bad_months() -> None:
    config = example_config()
    config["splits"][1]["kind"] = "rolling"
    config["data"]["sources"][0]["months"] = ["2020-13"]
    problems = errors_for(config)
    assert any(p.startswith("splits[1]") and "rolling" in p for p in problems)
    assert any(p.startswith("data.sources[0].months") and "2020-13" in p for p in problems)


def test_selection_split_must_exist() -> None:
    config = example_config()
    config["evaluation"]["selection"]["split"] = "nope"
    assert any("evaluation.selection.split: no split named 'nope'" in p
               for p in errors_for(config))


def test_missing_rationale_fields_are_listed() -> None:
    config = example_config()
    config["rationale"]["problem"] = "  "
    config["rationale"]["team"]["senior_responsible_officer"] = ""
    project = parse_project(config)
    assert missing_rationale(project.rationale) == [
        "rationale.problem", "rationale.team.senior_responsible_officer"]


def test_yaml_syntax_error_names_the_line(tmp_path) -> None:
    (tmp_path / "rudi.yaml").write_text("name: x\nmodels: [unclosed\n")
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path)
    assert info.value.problems[0].startswith("line 3, column 1: not valid YAML")


def test_an_impossible_date_is_a_schema_error_with_its_key_path(tmp_path) -> None:
    import yaml

    config = example_config()
    config["splits"][0]["test_start"] = "DATE"
    text = yaml.safe_dump(config).replace("DATE", "2024-02-30")  # February has no 30th
    (tmp_path / "rudi.yaml").write_text(text)
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path)
    assert any(p.startswith("splits[0].test_start:") and "2024-02-30" in p
               for p in info.value.problems), info.value.problems


def test_env_variables_fill_paths(tmp_path, monkeypatch) -> None:
    import yaml

    config = example_config()
    config["data"]["sources"][0]["path"] = "${RUDI_TEST_DIR:-/default}/stop_and_search"
    (tmp_path / "rudi.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("RUDI_TEST_DIR", "/from/env")
    assert load_project(tmp_path).data.sources[0].path == "/from/env/stop_and_search"
    monkeypatch.delenv("RUDI_TEST_DIR")
    assert load_project(tmp_path).data.sources[0].path == "/default/stop_and_search"
