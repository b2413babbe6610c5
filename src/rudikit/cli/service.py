"""``rudi serve``, ``rudi deploy`` (through the deploy gate, :mod:`rudikit.service.gate`),
``rudi deployments`` and ``rudi token ...``.

Connection strings come from ``--database-url`` or ``RUDI_DATABASE_URL``; tokens are printed
once and never stored.
"""

from __future__ import annotations

import math
import os
import shlex
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rudikit.cli.terminal import DatabaseOpt, SchemaOpt, console, err, fail
from rudikit.service.errors import ServiceError
from rudikit.service.settings import (
    ENV_DATABASE_URL,
    ENV_MAX_FIELD_NAME_LENGTH,
    ENV_MAX_VALUE_LENGTH,
    ENV_NAN_AS_MISSING,
    ENV_RELOAD,
    ENV_SCHEMA,
    ENV_SYNCHRONOUS,
    ServiceSettings,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from rudikit.reports.cards import AnyProject
    from rudikit.service.deploy import Deployment
    from rudikit.service.gate import GateReport
    from rudikit.store.queries.fairness import RequirementStatus

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holding rudi.yaml); its store "
                                                 "is <project>/.rudi/rudi.db unless "
                                                 "--database-url is given.")]
ByOpt = Annotated[str | None, typer.Option(
    "--by", help="Who does this (for the audit log; default: $RUDI_USER or the OS user).")]


def _folder(project_dir: Path, database_url: str | None) -> Path:
    folder = project_dir if project_dir.is_dir() else project_dir.parent
    if not database_url and not (folder / "rudi.yaml").exists():
        fail(f"no rudi.yaml in {folder.resolve()}: give the project folder, or the store with "
             "--database-url / RUDI_DATABASE_URL")
    return folder


def open_engine(project_dir: Path, database_url: str | None, schema: str | None) -> Engine:
    """The project's results store (or the one --database-url names), upgraded as needed."""
    from rudikit.store.engine import open_store

    return open_store(database_url, _folder(project_dir, database_url), schema=schema)


def acting_user(by: str | None) -> str:
    """Who the audit log names: --by, else $RUDI_USER or the OS user."""
    from rudikit.service.audit import current_user

    return by if by else current_user()


def dashboard_banner(folder: Path, host: str, port: int, database_url: str | None,
                     schema: str | None) -> str:
    """Where the dashboard is and the command that makes a token to sign in with, printed at
    start-up: the store options are repeated unless the environment already gives them (a
    password in the URL is shown as ***, so the banner never puts it in a log)."""
    args = ["rudi", "token", "create", str(folder.resolve()), "--role", "analyst"]
    note = ""
    if database_url and database_url != os.environ.get(ENV_DATABASE_URL):
        from sqlalchemy.engine import make_url

        url = make_url(database_url)
        args += ["--database-url", url.render_as_string(hide_password=True)]
        note = " (with the store's password for ***)" if url.password else ""
    if schema and schema != os.environ.get(ENV_SCHEMA):
        args += ["--database-schema", schema]
    address = f"[{host}]" if ":" in host else host
    return (f"Dashboard: http://{address}:{port}/ui (sign in with an analyst or admin token; a "
            f"review token opens /ui/lists).\nCreate a token: {shlex.join(args)}{note}")


def serve(
    project_dir: ProjectArg = Path("."),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes. On 2 cores shared "
                                                     "with the clients one was fastest "
                                                     "(bench/serve.py).")] = 1,
    worker_timeout: Annotated[int, typer.Option(
        min=1, help="With --workers above 1: seconds a worker may take to answer the "
                    "supervisor's health check before it is restarted (uvicorn's default, 5, "
                    "kills workers still loading the model on a busy machine).")] = 30,
    database_url: DatabaseOpt = None,
    database_schema: SchemaOpt = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Most observations in one "
                                                       "request.")] = 1000,
    max_value_length: Annotated[int, typer.Option(
        min=1, envvar=ENV_MAX_VALUE_LENGTH,
        help="Most characters in a category value (longer: 422, nothing stored).")] = 1000,
    max_field_name_length: Annotated[int, typer.Option(
        min=1, envvar=ENV_MAX_FIELD_NAME_LENGTH,
        help="Most characters in a field name of an observation.")] = 200,
    nan_as_missing: Annotated[bool | None, typer.Option(
        "--nan-as-missing/--no-nan-as-missing", envvar=ENV_NAN_AS_MISSING,
        help="Read the NaN/Infinity tokens Python's json writes as missing values "
             "(--no-nan-as-missing: a 422, as they are not JSON). Default: rudi.yaml's "
             "service.nan_as_missing, else true.", show_default=False)] = None,
    sqlite_synchronous: Annotated[str, typer.Option(
        envvar=ENV_SYNCHRONOUS,
        help="SQLite store only. NORMAL: an answered request survives a crash of the "
             "server; FULL: every group commit is also fsynced, so it survives a power cut "
             "(slower; PostgreSQL is durable either way).")] = "NORMAL",
    reload_seconds: Annotated[float, typer.Option(
        min=0, envvar=ENV_RELOAD,
        help="Look for a new live deployment (`rudi deploy`) this often and switch to it "
             "without dropping requests; 0: keep serving the deployment live at start.")] = 2.0,
    access_log: Annotated[bool, typer.Option(help="Log every request to the console (they are "
                                                  "stored either way).")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the deployed model over HTTP (FastAPI under uvicorn). Refuses to start when no model
    is deployed or the model file does not match the hash in the store."""
    import uvicorn

    from rudikit.service.app import create_app
    from rudikit.service.state import Service

    folder = _folder(project_dir, database_url)
    try:
        settings = ServiceSettings(project_dir=folder.resolve(), database_url=database_url,
                                   schema=database_schema, max_batch=max_batch,
                                   max_value_length=max_value_length,
                                   max_field_name_length=max_field_name_length,
                                   nan_as_missing=nan_as_missing,
                                   sqlite_synchronous=sqlite_synchronous.upper(),
                                   reload_seconds=reload_seconds)
    except ServiceError as exc:
        fail(str(exc))
    options = {"host": host, "port": port, "log_level": log_level, "access_log": access_log,
               "timeout_graceful_shutdown": 30, "timeout_worker_healthcheck": worker_timeout}
    try:
        if workers == 1:
            app = create_app(settings)
            loaded = app.state.service.model
        else:
            probe = Service(settings)  # fail here, once, rather than in every worker
            loaded = probe.model
            probe.close()
    except ServiceError as exc:
        fail(str(exc))
    console.print(f"Serving deployment {loaded.deployment_id}: model {loaded.model_id} "
                  f"(group {loaded.model_group_id}, {loaded.algorithm}, threshold "
                  f"{loaded.threshold}) at http://{host}:{port} with {workers} worker(s); "
                  f"scoring path: {loaded.scorer.path}.", highlight=False)
    console.print(dashboard_banner(folder, host, port, database_url, database_schema),
                  highlight=False, markup=False, soft_wrap=True)
    if workers == 1:
        uvicorn.run(app, **options)  # type: ignore[arg-type]
        return
    os.environ.update(settings.to_env())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        uvicorn.run("rudikit.service.app:app_from_env", factory=True, workers=workers,
                    **options)  # type: ignore[arg-type]
        return
    # the workers' counters are added up in /metrics from files in this folder
    with tempfile.TemporaryDirectory(prefix="rudi-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        uvicorn.run("rudikit.service.app:app_from_env", factory=True, workers=workers,
                    **options)  # type: ignore[arg-type]


def current_project(folder: Path, *, fail_on_error: bool = True) -> AnyProject | None:
    """The folder's rudi.yaml (its rationale answers complete a model card), or None. An
    invalid one ends the command, or with ``fail_on_error=False`` raises ``ProjectError``
    (for a caller whose own work is already committed)."""
    from rudikit.config import ProjectError, load_project, project_file

    if not project_file(folder).exists():
        return None
    try:
        return load_project(folder)
    except ProjectError as exc:
        if not fail_on_error:
            raise
        fail(f"{exc.source} is not valid: " + "; ".join(exc.problems))


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"  # NaN: no denominator


def threshold_note(engine: Engine, report: GateReport, threshold: float) -> str:
    """Precision and recall on the test rows at ``threshold`` beside the operating point's,
    for a threshold other than the one the audit and the requirements judged."""
    from rudikit.service.gate import precision_recall

    at = report.operating_threshold
    mine, theirs = (precision_recall(engine, report.model_id, t) for t in (threshold, at))
    return (f"Threshold {threshold:g} is not the project's operating point {at:g} "
            f"({report.operating_source}), at which the fairness requirements were judged. On "
            f"the {mine[3]:,} test rows of model {report.model_id}: at {threshold:g} precision "
            f"{_fmt(mine[0])}, recall {_fmt(mine[1])} ({mine[2]:,} flagged); at {at:g} "
            f"precision {_fmt(theirs[0])}, recall {_fmt(theirs[1])} ({theirs[2]:,} flagged).")


def print_requirements(title: str, statuses: list[RequirementStatus]) -> None:
    """One line per requirement: its verdict (met / not met / inconclusive / insufficient
    data) and the stored summary."""
    from rudikit.store.queries.fairness import status_counts

    if not statuses:
        console.print(f"{title}: no fairness requirement is stored.", highlight=False)
        return
    console.print(f"{title}: {status_counts(statuses)}", highlight=False)
    for s in statuses:
        colour = STATUS_COLOURS.get(s.status, "")
        console.print(f"  [{colour}]{s.status}[/]: {escape(s.name)} ({escape(s.summary)})"
                      if colour else f"  {s.status}: {escape(s.name)} ({escape(s.summary)})",
                      highlight=False)


#: How a requirement verdict is coloured on the terminal (insufficient data is not a verdict).
STATUS_COLOURS = {"met": "green", "not met": "bold red", "inconclusive": "yellow"}


def deploy_command(
    model_group_id: Annotated[int, typer.Argument(help="The model group to put live (see the "
                                                       "summary of `rudi run`).")],
    project_dir: ProjectArg = Path("."),
    reason: Annotated[str, typer.Option(help="Why this model goes live (audit log).")] = "",
    by: ByOpt = None,
    threshold: Annotated[float | None, typer.Option(
        help="Decision threshold: decision = score >= threshold (default: the project's "
             "operating point, fairness.at, at which the requirements were judged).")] = None,
    model_id: Annotated[int | None, typer.Option(
        help="A specific fitted model of the group (default: the one a run selected, else its "
             "most recent).")] = None,
    waive: Annotated[str | None, typer.Option(
        help="Deploy although the gate fails (a fairness requirement not met, an incomplete "
             "model card, a source without a data card): why. Stored with --by in the audit "
             "log, the model card and the dashboard.")] = None,
    database_url: DatabaseOpt = None,
    database_schema: SchemaOpt = None,
) -> None:
    """Promote a model group to production through the deploy gate; the live deployment (if
    any) is retired, and both are kept in the store and the audit log. A running `rudi serve`
    switches to it within its --reload-seconds."""
    from rudikit.service.gate import GateRefused, gated_deploy

    folder = _folder(project_dir, database_url)
    project = current_project(folder)
    engine = open_engine(project_dir, database_url, database_schema)
    try:
        done, report = gated_deploy(engine, model_group_id, reason=reason, by=acting_user(by),
                                    threshold=threshold, model_id=model_id, waive=waive,
                                    project=project, project_dir=folder)
        note = (threshold_note(engine, report, done.threshold)
                if done.threshold != report.operating_threshold else None)
    except GateRefused as exc:
        print_requirements(f"Fairness requirements of model {exc.report.model_id}",
                           exc.report.requirements)
        fail(escape(str(exc)), code=1)
    except ServiceError as exc:
        fail(escape(str(exc)))
    finally:
        engine.dispose()
    console.print(f"[green]Deployed[/] model group {done.model_group_id} ({done.algorithm}): "
                  f"model {done.model_id}, threshold {done.threshold:g}, as deployment "
                  f"{done.id} by {escape(done.deployed_by)}.", highlight=False)
    if note:
        console.print(f"[yellow]{escape(note)}[/]", highlight=False)
    print_requirements(f"Fairness requirements of model {done.model_id}", report.requirements)
    if done.waiver is not None:
        console.print(f"[bold yellow]Deployed with a waiver[/] by {escape(done.deployed_by)}: "
                      f"{escape(done.waiver['reason'])}. Waived:", highlight=False)
        for item in done.waiver["failing"]:
            console.print(f"  - {escape(item)}", highlight=False)
    elif waive is not None:
        console.print("The gate passed: nothing needed waiving, so no waiver is recorded.")
    if done.previous_id is not None:
        console.print(f"Deployment {done.previous_id} is retired (kept in the history).")
    store_deploy_reference(project, folder, engine)
    engine.dispose()


def store_deploy_reference(project: AnyProject | None, folder: Path, engine: Engine) -> None:
    """The new deployment's reference profile (after `rudi deploy`, a rollback, the demo's
    deploy), fitted now on its development rows so that its first monitor pass need not read
    them; a failure leaves it to that pass, which says why."""
    from sqlalchemy.exc import SQLAlchemyError

    from rudikit.config import Project
    from rudikit.monitoring.monitor import store_reference

    try:
        if isinstance(project, Project) and store_reference(project, folder, engine):
            console.print("Stored the reference profile the monitor compares production with.")
    # the deployment is committed: nothing here may turn it into a failure (a source that
    # cannot be read, a split that no longer fits, a full disk, a store that went away)
    except (ValueError, OSError, MemoryError, SQLAlchemyError) as exc:
        console.print(f"[yellow]The reference profile is left to the first monitor pass: "
                      f"{escape(str(exc))}[/]", highlight=False)


DEMO_WAIVER = ("rudi demo: a production rehearsal on replayed data, so that monitoring and "
               "retraining can be shown; no decision is made with this model")


def demo_deploy(engine: Engine, folder: Path, project: AnyProject, model_group_id: int,
                model_id: int, by: str) -> Deployment:
    """`rudi deploy` as the demo runs it: through the gate at the operating point; when the
    gate refuses, the refusal is shown and the model is deployed with a recorded waiver, the
    two paths a team has."""
    from rudikit.service.gate import check, gated_deploy

    report = check(engine, model_group_id, model_id, project)
    reason = (f"rudi demo: the model the run chose, at threshold {report.operating_threshold:g} "
              f"(the fairness operating point, {report.operating_source})")
    command = shlex.join(["rudi", "deploy", str(model_group_id), str(folder), "--reason",
                          reason])
    if report.passed:
        console.print(f"\n[bold]Deploy gate[/]: model group {model_group_id} passes: no "
                      "fairness requirement is not met, the model card's rationale is "
                      "answered and every source has a data card.", highlight=False)
    else:
        console.print(f"\n[bold]Deploy gate[/]: `{escape(command)}` is refused "
                      "(exit 1, nothing stored):", highlight=False)
        for item in report.failing:
            console.print(f"  [red]-[/] {escape(str(item))}", highlight=False)
        console.print(f"The demo deploys it anyway with a waiver, recorded with its author in "
                      f"the audit log, the model card and the dashboard:\n  `{escape(command)} "
                      f"--waive {escape(shlex.quote(DEMO_WAIVER))}`", highlight=False)
    print_requirements(f"Fairness requirements of model {report.model_id}", report.requirements)
    done, _ = gated_deploy(engine, model_group_id, reason=reason, by=by, model_id=model_id,
                           project=project, waive=None if report.passed else DEMO_WAIVER,
                           project_dir=folder)
    store_deploy_reference(project, folder, engine)
    return done


def deployments(project_dir: ProjectArg = Path("."), database_url: DatabaseOpt = None,
                database_schema: SchemaOpt = None) -> None:
    """List every deployment, newest first: which model, by whom, why, when, whether live, its
    fairness requirement verdicts and any waiver of the deploy gate."""
    from rudikit.service.deploy import history
    from rudikit.store.queries.fairness import model_requirement_statuses, status_counts

    engine = open_engine(project_dir, database_url, database_schema)
    rows = history(engine)
    statuses = {r["model_id"]: model_requirement_statuses(engine, r["model_id"]) for r in rows}
    engine.dispose()
    if not rows:
        console.print("No deployment yet: `rudi deploy <model_group_id> --reason \"...\"`.")
        return
    table = Table(title="Deployments")
    for heading in ("id", "live", "group", "algorithm", "model", "threshold", "by", "when",
                    "reason", "requirements", "retired"):
        table.add_column(heading)
    for r in rows:
        table.add_row(str(r["id"]), "yes" if r["live"] else "", str(r["model_group_id"]),
                      r["algorithm"], str(r["model_id"]), f"{r['threshold']:g}",
                      r["deployed_by"], f"{r['deployed_at']:%Y-%m-%d %H:%M}", r["reason"],
                      (status_counts(statuses[r["model_id"]]) or "none")
                      + ("; WAIVED" if r["waiver"] else ""),
                      f"{r['retired_at']:%Y-%m-%d %H:%M} by {r['retired_by']}"
                      if r["retired_at"] else "")
    console.print(table)
    live = next((r for r in rows if r["live"]), None)
    if live is None:
        return
    print_requirements(f"Live deployment {live['id']} (model {live['model_id']})",
                       statuses[live["model_id"]])
    if live["waiver"]:
        waiver = live["waiver"]
        console.print(f"[bold yellow]Deployed with a waiver[/] by {escape(waiver['by'])}: "
                      f"{escape(waiver['reason'])}. Waived:", highlight=False)
        for item in waiver["failing"]:
            console.print(f"  - {escape(item)}", highlight=False)


token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    project_dir: ProjectArg = Path("."),
    role: Annotated[str, typer.Option(
        help="predict, outcome, review, analyst or admin.")] = "predict",
    name: Annotated[str | None, typer.Option(help="Who or what uses the token.")] = None,
    by: ByOpt = None,
    database_url: DatabaseOpt = None,
    database_schema: SchemaOpt = None,
) -> None:
    """Create a token and print it once (only its SHA-256 is stored)."""
    from rudikit.service.auth import create_token

    engine = open_engine(project_dir, database_url, database_schema)
    try:
        token_id, token = create_token(engine, role, name or f"{role} token", acting_user(by))
    except ServiceError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    err.print(f"Token {token_id} (role {role}) created. It is shown only now; store it as a "
              "secret (e.g. in an environment variable):", highlight=False)
    print(token)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `rudi token list`).")],
    project_dir: ProjectArg = Path("."),
    by: ByOpt = None,
    database_url: DatabaseOpt = None,
    database_schema: SchemaOpt = None,
) -> None:
    """Revoke a token: running servers refuse it within a few seconds."""
    from rudikit.service.auth import revoke_token

    engine = open_engine(project_dir, database_url, database_schema)
    try:
        row = revoke_token(engine, token_id, acting_user(by))
    except ServiceError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    console.print(f"Token {token_id} ({row['name']}, role {row['role']}) revoked.",
                  highlight=False)


@token_app.command("list")
def token_list(project_dir: ProjectArg = Path("."), database_url: DatabaseOpt = None,
               database_schema: SchemaOpt = None) -> None:
    """List tokens (never the tokens themselves)."""
    from rudikit.service.auth import list_tokens

    engine = open_engine(project_dir, database_url, database_schema)
    rows = list_tokens(engine)
    engine.dispose()
    table = Table(title="API tokens")
    for heading in ("id", "name", "role", "created", "by", "revoked"):
        table.add_column(heading)
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["role"], f"{r['created_at']:%Y-%m-%d %H:%M}",
                      r["created_by"], f"{r['revoked_at']:%Y-%m-%d %H:%M} by {r['revoked_by']}"
                      if r["revoked_at"] else "")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the service commands to the ``rudi`` command line."""
    app.command("serve")(serve)
    app.command("deploy")(deploy_command)
    app.command("deployments")(deployments)
    app.add_typer(token_app, name="token")
