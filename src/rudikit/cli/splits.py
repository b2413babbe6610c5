"""``rudi splits``: the timechop splits of a temporal project, as a table and (``--plot``) an
HTML figure, so the training and test periods can be checked before anything is fitted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rudikit.cli.terminal import console, fail


def splits(
    project_dir: Annotated[Path, typer.Argument(
        help="Project folder (holding rudi.yaml) or the rudi.yaml file.")] = Path("."),
    plot: Annotated[bool, typer.Option(
        "--plot", help="Also draw the splits (HTML, plotly) and print the file's path.")] = False,
    out: Annotated[Path | None, typer.Option(
        help="Where to write the figure (default: <project>/.rudi/reports/splits.html).")]
    = None,
) -> None:
    """Show the temporal cross-validation splits (triage's timechop) of a temporal project:
    training as-of dates, label windows and test dates per split."""
    from rudikit.config import ProjectError, TemporalProject, load_project, project_file
    from rudikit.features.timechop import plot_splits, splits_table

    try:
        project = load_project(project_dir)
    except ProjectError as exc:
        fail(f"{exc.source} is not valid:", exc.problems)
        return
    if not isinstance(project, TemporalProject):
        fail(f"{project_file(project_dir)} has no 'temporal' section: timechop splits belong to "
             "temporal projects (see examples/eis)")
        return
    chosen = project.temporal.splits()
    table = Table(title=f"{project.name}: {len(chosen)} splits (label {project.temporal.label})")
    frame = splits_table(chosen)
    for column in frame.columns:
        table.add_column(column, justify="left" if column == "split" else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*[f"{v:%Y-%m-%d}" if hasattr(v, "strftime") else str(v) for v in row])
    console.print(table)
    if plot:
        folder = project_dir if project_dir.is_dir() else project_dir.parent
        path = out or folder / ".rudi" / "reports" / "splits.html"
        fig = plot_splits(chosen, project.temporal.timechop,
                          title=f"{project.name}: temporal cross-validation splits")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.write_html(path, include_plotlyjs=True)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
            fail(f"{'--out' if out else 'the figure'}: cannot write {path}: "
                 f"{exc.strerror or exc}{where}")
        console.print(f"[bold]Splits figure:[/] {path}")


def register(app: typer.Typer) -> None:
    app.command("splits")(splits)
