"""The ``rudi`` command line: one command per lifecycle step, one module per command group.

The command modules import only typer, rich and the standard library when they are loaded;
each command imports what it needs (pandas, scikit-learn, FastAPI, the store, ...) when it
runs, so ``rudi --help`` answers at once and a command pays only for its own libraries
(tests/test_architecture.py checks it, bench/cli_startup.py times it).
"""

from __future__ import annotations

import typer

from rudikit.cli import audit, cards, develop, lists, monitoring, service, splits, sql

app = typer.Typer(
    help="rudikit: build, audit, explain, serve and monitor policing risk models responsibly "
         "(Rationale, Unification, Development, Implementation).",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

develop.register(app)
audit.register(app)
service.register(app)
cards.register(app)
monitoring.register(app)
lists.register(app)
splits.register(app)
sql.register(app)
