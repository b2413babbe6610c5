"""``rudi card model <model_group_id>`` and ``rudi card data <snapshot_id>``.

The documentation answers come from the project's current rudi.yaml (so a card can be
completed after a run); every number comes from the results store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from rudikit.cli.terminal import DatabaseOpt, SchemaOpt, console, fail

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from rudikit.config import Project
    from rudikit.reports.cards import Card, Format

card_app = typer.Typer(help="Write data and model cards (the RUDI documentation templates) "
                            "from the results store and rudi.yaml.", no_args_is_help=True)

ProjectOpt = Annotated[Path, typer.Option(
    "--project", "-p", help="Project folder (holding rudi.yaml) or the rudi.yaml file.")]
OutOpt = Annotated[Path | None, typer.Option(
    "--out", help="Folder to write into (default: <project>/.rudi/cards).")]
FormatOpt = Annotated[str, typer.Option(
    "--format", help="md, html or both.", case_sensitive=False)]


def _setup(project_dir: Path, database_url: str | None, schema: str | None, fmt: str
           ) -> tuple[Path, Project | None, Engine]:
    """(project folder, current project or None, store engine); bad input exits with 2."""
    from rudikit.config import ProjectError, load_project, project_file
    from rudikit.store.engine import open_store

    if fmt.lower() not in ("md", "html", "both"):
        fail(f"--format: expected md, html or both, got {fmt!r}")
    folder = project_dir if project_dir.is_dir() else project_dir.parent
    project = None
    if project_file(project_dir).exists():
        try:
            project = load_project(project_dir)
        except ProjectError as exc:
            fail(f"{exc.source} is not valid: " + "; ".join(exc.problems))
    elif not database_url:
        fail(f"no rudi.yaml in {folder.resolve()}: give the project with --project, or the "
             "store with --database-url / RUDI_DATABASE_URL")
    return folder, project, open_store(database_url, folder, schema=schema)


def _write(build: Callable[[], Card], out: Path | None, folder: Path, fmt: str) -> None:
    from rudikit.reports.cards import CardError, write_card

    try:
        card = build()
    except CardError as exc:
        fail(str(exc))
        return
    for path in write_card(card, out or folder / ".rudi" / "cards", cast("Format", fmt.lower())):
        console.print(f"wrote {path}")
    missing = card.missing_keys()
    if missing:
        console.print(f"[yellow]{len(missing)} field(s) not provided[/]: "
                      + ", ".join(dict.fromkeys(missing)))


@card_app.command("model")
def model_card(
    model_group_id: Annotated[int, typer.Argument(help="Model group id (see `rudi run`).")],
    project_dir: ProjectOpt = Path("."),
    run_id: Annotated[int | None, typer.Option(
        "--run", help="Report this run's fit of the group (default: its latest).")] = None,
    out: OutOpt = None,
    fmt: FormatOpt = "both",
    database_url: DatabaseOpt = None,
    database_schema: SchemaOpt = None,
) -> None:
    """Write the model card of one model group."""
    from rudikit.reports.model_card import build_model_card

    folder, project, engine = _setup(project_dir, database_url, database_schema, fmt)
    _write(lambda: build_model_card(engine, model_group_id, run_id=run_id, project=project),
           out, folder, fmt)


@card_app.command("data")
def data_card(
    snapshot_id: Annotated[int, typer.Argument(help="Data snapshot id (see the run report).")],
    project_dir: ProjectOpt = Path("."),
    out: OutOpt = None,
    fmt: FormatOpt = "both",
    database_url: DatabaseOpt = None,
    database_schema: SchemaOpt = None,
) -> None:
    """Write the data card of one data snapshot (column facts only from unchanged files)."""
    from rudikit.reports.data_card import build_data_card

    folder, project, engine = _setup(project_dir, database_url, database_schema, fmt)
    _write(lambda: build_data_card(engine, snapshot_id, project=project, project_dir=folder),
           out, folder, fmt)


def register(app: typer.Typer) -> None:
    app.add_typer(card_app, name="card")
