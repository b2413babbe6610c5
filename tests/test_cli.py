"""The `rudi` command line: useful help, clear errors without tracebacks."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import yaml
from typer.testing import CliRunner

from rudikit.cli import app
from tests.conftest import write_project

runner = CliRunner()


def test_help_describes_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "validate", "run", "demo", "report"):
        assert command in result.output
    run_help = runner.invoke(app, ["run", "--help"])
    assert "--database-url" in run_help.output and "bootstrap" in run_help.output


def test_init_copies_an_example_with_absolute_data_paths(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "new" / "rudi.yaml").read_text()
    assert "${RUDI_DATA_DIR:-/" in text  # the relative default became absolute
    again = runner.invoke(app, ["init", str(tmp_path / "new")])
    assert again.exit_code == 2 and "already exists" in again.output
    unknown = runner.invoke(app, ["init", str(tmp_path / "x"), "--example", "nope"])
    assert unknown.exit_code == 2 and "no example named 'nope'" in unknown.output


def test_validate_reports_config_problems_by_key_path(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "p")
    config = yaml.safe_load((folder / "rudi.yaml").read_text())
    config["features"]["categorical"].append("shoe_size")
    config["label"]["positive_when"][0]["column"] = "found_it"
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 1
    assert "features.categorical[7]: no column 'shoe_size' in the data" in result.output
    assert "label.positive_when[0].column: no column 'found_it'" in result.output
    assert "Traceback" not in result.output

    config["evaluation"]["top_pct"] = [150]
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2
    assert "evaluation.top_pct: top_pct 150.0 is outside (0, 100]" in result.output


def test_validate_passes_on_a_good_project(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(write_project(tmp_path / "p"))])
    assert result.exit_code == 0, result.output
    assert "synthetic" in result.output and "valid" in result.output


def test_run_refuses_without_rationale(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "p", rationale={"problem": "something"})
    result = runner.invoke(app, ["run", str(folder)])
    assert result.exit_code == 2
    assert "will not train a model until the rationale is complete" in result.output
    assert "rationale.aim" in result.output and "Traceback" not in result.output


def test_missing_project_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path)])
    assert result.exit_code == 2 and "no rudi.yaml here" in result.output


# what a command loads only when it runs (each costs from a tenth of a second to seconds)
HEAVY = ("pandas", "numpy", "scipy", "sklearn", "lightgbm", "skops", "fairlearn", "plotly",
         "fastapi", "uvicorn", "sqlalchemy", "duckdb")

LOADED_BY_HELP = """
import sys
from rudikit.cli import app
print(" ".join(sorted(sys.modules)), file=sys.stderr)
for args in (["--help"], ["validate", "--help"], ["card", "model", "--help"]):
    try:
        app(args, prog_name="rudi")
    except SystemExit:
        pass
print(" ".join(sorted(sys.modules)), file=sys.stderr)
"""


def test_the_command_line_loads_no_heavy_library_until_a_command_runs() -> None:
    """`import rudikit.cli` and `rudi --help` load none of the libraries the commands use, so
    help answers at once (the time itself is measured by bench/cli_startup.py)."""
    done = subprocess.run([sys.executable, "-c", LOADED_BY_HELP], capture_output=True,
                          text=True, check=True)
    on_import, after_help = (set(line.split()) for line in done.stderr.splitlines()[-2:])
    assert "rudikit.cli" in on_import and "rudikit.cli.develop" in on_import
    for loaded in (on_import, after_help):
        heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
        assert not heavy, f"loaded before any command ran: {heavy}"
    assert "Usage: rudi" in done.stdout


def readme_fetch_line() -> list[str]:
    """The `rudi fetch` line of the README's tour, split as a shell would (comment dropped)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("rudi fetch "))
    return shlex.split(line, comments=True)[1:]


def test_fetch_names_the_police_force_with_force_name(tmp_path: Path, monkeypatch) -> None:
    from rudikit.data import download

    def offline(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", offline)
    monkeypatch.setenv("RUDI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    args = readme_fetch_line()
    assert args[:2] == ["fetch", "--force-name"]
    # the README's line as written gets as far as the network, and says it is offline
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "appears to be offline" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "data").exists()
    # --force means overwrite (rudi init) and nothing else
    old = runner.invoke(app, ["fetch", "--force", "essex", "--month", "2020-02"])
    assert old.exit_code == 2 and "No such option: --force" in old.output
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(download, "fetch_archive",
                        lambda month, forces, dest, refresh: calls.append((month, forces)) or [])
    result = runner.invoke(app, ["fetch", "--force-name", "essex", "--force-name", "kent",
                                 "--month", "2020-02", "--archive"])
    assert result.exit_code == 0, result.output
    assert calls == [("2020-02", ["essex", "kent"])]
    folder = tmp_path / "p"
    assert runner.invoke(app, ["init", str(folder)]).exit_code == 0
    (folder / "rudi.yaml").write_text("edited")
    result = runner.invoke(app, ["init", str(folder), "--force"])
    assert result.exit_code == 0, result.output
    assert (folder / "rudi.yaml").read_text() != "edited"


def test_a_library_warning_is_one_line_naming_no_source_file() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import warnings, rudikit.cli\n"
         "from rudikit.fairness.selection import TiedAtCutWarning\n"
         "warnings.warn('9 rows tied at the cut', TiedAtCutWarning)"],
        capture_output=True, text=True, check=True)
    assert done.stderr == "warning: 9 rows tied at the cut\n"


def test_a_dask_backend_without_a_scheduler_is_said_before_the_data_is_read(
        tmp_path: Path, monkeypatch) -> None:
    """`rudi validate` lists it with the data's problems; `rudi run` refuses it before it loads
    the data or stores a run (it used to fail only when the first fit was sent)."""
    monkeypatch.delenv("RUDI_DASK_SCHEDULER", raising=False)
    folder = write_project(tmp_path / "p", execution={"backend": "dask"})
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 1, result.output
    assert "execution.scheduler: backend dask needs a scheduler address" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["run", str(folder)])
    assert result.exit_code == 2, result.output
    assert "execution.scheduler: backend dask needs a scheduler address" in result.output
    assert not (folder / ".rudi" / "rudi.db").exists()  # nothing loaded, no run stored
    monkeypatch.setenv("RUDI_DASK_SCHEDULER", "tcp://127.0.0.1:1")  # an address: valid config
    assert runner.invoke(app, ["validate", str(folder)]).exit_code == 0
