"""What every ``rudi`` command shares on the terminal: the two consoles, the store options and
the one way a command stops on bad input (``error: ...`` on stderr, exit code 2, no traceback).
"""

from __future__ import annotations

import os
import warnings
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from rudikit.service.settings import ENV_SCHEMA

# Output that is not a terminal (CI logs, pipes) is 160 columns wide rather than rich's 80,
# unless COLUMNS says otherwise (`COLUMNS=80 rudi run ... > out.txt` shows the 80-column view).
console = Console(width=None if Console().is_terminal or os.environ.get("COLUMNS") else 160)
err = Console(stderr=True)


def show_warning(message: Warning | str, category: type[Warning], filename: str,
                 lineno: int, file: object = None, line: str | None = None) -> None:
    """A library warning (rows tied at a list's cut, say) as one ``warning:`` line on stderr,
    not Python's two lines naming a source file the user never opened."""
    err.print(f"[yellow]warning:[/] {message}", highlight=False)


warnings.showwarning = show_warning

DatabaseOpt = Annotated[str | None, typer.Option(
    "--database-url", envvar="RUDI_DATABASE_URL",
    help="Results store URL (default: SQLite at <project>/.rudi/rudi.db), e.g. "
         "postgresql://user@host:5432/db")]
SchemaOpt = Annotated[str | None, typer.Option(
    "--database-schema", envvar=ENV_SCHEMA, hidden=True,
    help="PostgreSQL schema holding the store (used by the tests to isolate stores).")]


def fail(message: str, problems: list[str] | None = None, code: int = 2) -> NoReturn:
    """Print ``error: message`` and one line per problem on stderr, and exit with ``code``."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    for problem in problems or []:
        err.print(f"  [red]-[/] {problem}", highlight=False)
    raise typer.Exit(code)
