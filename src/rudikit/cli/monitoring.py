"""``rudi monitor``, ``rudi retrain``, ``rudi rollback`` and ``rudi backtest``.

``rudi monitor`` exits 1 when a critical alert is open (the latest run raised one), so cron or CI
can page someone; 2 means it could not run (bad configuration, no store).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from rudikit.cli.service import (
    ByOpt,
    ProjectArg,
    acting_user,
    current_project,
    demo_deploy,
    open_engine,
    store_deploy_reference,
)
from rudikit.cli.terminal import DatabaseOpt, SchemaOpt, console, fail

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from rudikit.config import Project, TemporalProject
    from rudikit.monitoring.list_retrain import ListRetrainDecision
    from rudikit.monitoring.monitor import Deployed
    from rudikit.monitoring.retrain import RetrainDecision

AsOfOpt = Annotated[str | None, typer.Option(
    "--as-of", help="Judge the production window ending on this date (YYYY-MM-DD, UTC); "
                    "default: now.")]



def _caught() -> tuple[type[Exception], ...]:
    """The errors a monitoring command reports as ``error: ...`` (exit 2) instead of a trace."""
    from rudikit.config import ProjectError
    from rudikit.data.sources import SourceError
    from rudikit.features.labels import LabelError
    from rudikit.features.splits import SplitError
    from rudikit.models.artefacts import ArtefactError
    from rudikit.service.errors import ServiceError

    return (ProjectError, SourceError, LabelError, SplitError, ArtefactError, ServiceError,
            ValueError)


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        day = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--as-of: {value!r} is not a date (YYYY-MM-DD)")
    return (day if day.tzinfo else day.replace(tzinfo=UTC)).astimezone(UTC)


def _load(project_dir: Path) -> Project | TemporalProject:
    from rudikit.config import ProjectError, load_project

    try:
        return load_project(project_dir)
    except ProjectError as exc:
        fail(f"{exc.source} is not valid: " + "; ".join(exc.problems))


def _project(project_dir: Path, command: str) -> Project:
    from rudikit.config import Project

    project = _load(project_dir)
    if not isinstance(project, Project):
        fail(f"`rudi {command}` works on projects whose rows are scored cases (label, features, "
             f"splits); {project.name!r} is a temporal list project, whose list stability, "
             "regret and rank changes `rudi run` reports")
    return project


def _folder(project_dir: Path) -> Path:
    return project_dir if project_dir.is_dir() else project_dir.parent


def write_report(engine, project, folder: Path, monitor_run_id: int) -> Path:  # type: ignore[no-untyped-def]
    from rudikit.reports.monitor_report import write_monitor_report

    return write_monitor_report(engine, monitor_run_id, folder / ".rudi" / "reports",
                                segments=list(project.monitoring.segments))


def alerts_table(rows: list[dict]) -> Table:  # type: ignore[type-arg]
    table = Table(title="Open alerts")
    for heading in ("severity", "kind", "subject", "value", "bound", "window", "message"):
        table.add_column(heading, overflow="fold")
    for a in rows:
        style = "bold red" if a["severity"] == "critical" else "yellow"
        value, bound = a.get("value"), a.get("bound")
        table.add_row(a["severity"], a["kind"], a["subject"],
                      "" if value is None else f"{value:.4g}",
                      "" if bound is None else f"{bound:.4g}", a["window"], a["message"],
                      style=style)
    return table


def monitor(project_dir: ProjectArg = Path("."), as_of: AsOfOpt = None,
            window_days: Annotated[int | None, typer.Option(
                "--window-days", help="Days of production to judge, for this pass (default: "
                                      "monitoring.window_days of rudi.yaml).")] = None,
            database_url: DatabaseOpt = None, database_schema: SchemaOpt = None,
            show: Annotated[bool, typer.Option(
                "--show", help="Only show the open alerts of the latest run (no new "
                               "checks).")] = False) -> None:
    """Check inputs, drift, realised performance, fairness and list stability of the live
    model; store the figures and alerts; exit 1 if a critical alert is open. Without --as-of
    the window ends today, or at the newest production case when that is older. A temporal
    project's production lists (`rudi score`) are judged instead: realised precision@k once
    each label window matures, churn, fairness per list and reviewers' agreement."""
    from rudikit.config import TemporalProject
    from rudikit.monitoring.alerts import latest_alerts
    from rudikit.monitoring.monitor import run_monitor

    project = _load(project_dir)
    engine = open_engine(project_dir, database_url, database_schema)
    if isinstance(project, TemporalProject):
        if not show:
            _monitor_lists(project, project_dir, engine, _as_of(as_of), window_days)
    elif not show:
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                            TextColumn("{task.completed:,} predictions read"),
                            TimeElapsedColumn(), console=console, transient=True)
        with progress:
            task = progress.add_task("monitoring", total=None)
            try:
                result = run_monitor(project, _folder(project_dir), engine,
                                     as_of=_as_of(as_of), window_days=window_days,
                                     tick=lambda n: progress.advance(task, n))
            except _caught() as exc:
                fail(str(exc))
        start, end = result.window
        console.print(f"Monitor run {result.monitor_run_id}: {project.name}, window "
                      f"{start:%Y-%m-%d} to {end:%Y-%m-%d}: {result.n_predictions:,} "
                      f"predictions, {result.n_outcomes:,} with outcomes.", highlight=False)
        if result.realised is not None:
            r, e = result.realised, result.expected
            expected = f" (test: {e.precision:.1%})" if e is not None else ""
            console.print(f"Realised at threshold {result.deployment.threshold:g}: precision "
                          f"{r.precision:.1%}{expected}, recall {r.recall:.1%}, ROC AUC "
                          f"{r.roc_auc:.3f}.", highlight=False)
        for note in result.notes:
            console.print(f"[dim]note:[/] {note}", highlight=False)
    with engine.connect() as conn:
        run, rows = latest_alerts(conn, project.name)
    if run is None:
        fail("no monitor run yet: run `rudi monitor` without --show first")
    if not show:
        path = write_report(engine, project, _folder(project_dir), run["id"])
        console.print(f"[bold]Monitoring report:[/] {path}", highlight=False)
    if rows:
        console.print(alerts_table(rows))
    else:
        console.print(f"[green]No open alerts[/] (monitor run {run['id']}).")
    if any(r["severity"] == "critical" for r in rows):
        raise typer.Exit(1)


def _monitor_lists(project: TemporalProject, project_dir: Path, engine: Engine,
                   as_of: datetime | None, window_days: int | None) -> None:
    """One pass of the list monitor (a temporal project), and what it found per list."""
    from rudikit.monitoring.list_monitor import run_list_monitor

    with console.status("judging the production lists"):
        try:
            result = run_list_monitor(project, _folder(project_dir), engine, as_of=as_of,
                                      window_days=window_days)
        except _caught() as exc:
            fail(str(exc))
    start, end = result.window
    console.print(f"Monitor run {result.monitor_run_id}: {project.name}, lists up to "
                  f"{end:%Y-%m-%d} (alerts for {start:%Y-%m-%d} to {end:%Y-%m-%d}).",
                  highlight=False)
    if result.lists is not None and len(result.lists):
        console.print(list_table(result))
    for note in result.notes:
        console.print(f"[dim]note:[/] {note}", highlight=False)


def list_table(result) -> Table:  # type: ignore[no-untyped-def]
    """Per production list: how much of its label window has passed, the realised precision
    of the list as seen and of the model's top k, cool-off included (what the alert tests),
    the test promise, churn and reviewers' agreement."""
    pairs = {} if result.stability is None else dict(zip(
        result.stability["as_of_date"], result.stability["jaccard"], strict=True))
    table = Table(title="Production lists")
    for heading in ("list", "seen", "list prec.", "model", "promise", "Jaccard", "agree"):
        table.add_column(heading, justify="left" if heading == "list" else "right")
    for row in result.lists.itertuples(index=False):
        promised = result.promises.get(row.model_group_id)
        table.add_row(
            row.date, f"{row.matured_share:.0%}", _share(row.precision),
            _share(row.model_precision),
            "" if promised is None else f"{promised.mean:.0%} (≥{promised.low:.0%})",
            "" if row.as_of_date not in pairs else f"{pairs[row.as_of_date]:.2f}",
            _share(row.agreement_rate))
    return table


def _share(value: float | None) -> str:
    return "" if value is None or value != value else f"{value:.0%}"


def retrain(project_dir: ProjectArg = Path("."), as_of: AsOfOpt = None,
            database_url: DatabaseOpt = None, database_schema: SchemaOpt = None,
            by: ByOpt = None) -> None:
    """Refit the deployed model group on the newest data, compare challenger and champion on
    the newest outcomes (a temporal project: the newest list whose label window has closed),
    promote only if not worse and fair (audit-logged)."""
    from rudikit.config import TemporalProject
    from rudikit.monitoring.list_retrain import retrain_lists
    from rudikit.monitoring.retrain import retrain as run_retrain

    loaded = _load(project_dir)
    project = loaded if isinstance(loaded, TemporalProject) else _project(project_dir, "retrain")
    engine = open_engine(project_dir, database_url, database_schema)
    with console.status("retraining the deployed model group") as status:
        try:
            if isinstance(project, TemporalProject):
                lists = retrain_lists(project, _folder(project_dir), engine, by=acting_user(by),
                                      as_of=_as_of(as_of), say=status.update)
            else:
                decision = run_retrain(project, _folder(project_dir), engine,
                                       by=acting_user(by), as_of=_as_of(as_of))
        except _caught() as exc:
            fail(str(exc))
    if isinstance(project, TemporalProject):
        _print_list_decision(lists)
    else:
        _print_case_decision(decision)
    from rudikit.monitoring.alerts import latest_alerts

    with engine.connect() as conn:
        run, _ = latest_alerts(conn, project.name)
    if run is not None:  # the latest monitoring report now shows this decision too
        path = write_report(engine, project, _folder(project_dir), run["id"])
        console.print(f"[bold]Monitoring report:[/] {path}", highlight=False)


def _print_case_decision(decision: RetrainDecision) -> None:
    """The case retrain's table: champion and challenger on the holdout, then the verdict."""
    table = Table(title=f"Retrain (run {decision.run_id}): holdout "
                        f"{decision.holdout[0]:%Y-%m-%d} to {decision.holdout[1]:%Y-%m-%d}, "
                        f"{decision.holdout_rows:,} outcomes")
    for heading in ("", "model", decision.metric, "precision", "recall", "fairness"):
        table.add_column(heading)
    for name, c in (("champion", decision.champion), ("challenger", decision.challenger)):
        fair = c.fairness_label()
        table.add_row(name, str(c.model_id), f"{c.metric:.3f}",
                      f"{c.metrics.get('precision', float('nan')):.3f}",
                      f"{c.metrics.get('recall', float('nan')):.3f}", fair)
    console.print(table)
    console.print(f"Trained on {decision.training_rows:,} rows "
                  f"({decision.production_training_rows:,} from production). Champion and "
                  f"challenger share {decision.jaccard:.0%} of their top {decision.top_k} on the "
                  f"holdout (Spearman {decision.spearman:.3f}).", highlight=False)
    verdict = (f"[bold green]promoted[/] (deployment {decision.deployment_id})"
               if decision.promoted else "[bold yellow]not promoted[/]")
    console.print(f"Challenger {verdict}: {decision.reason}.", highlight=False)


def _print_list_decision(d: ListRetrainDecision) -> None:
    """The temporal retrain's table: both lists of L side by side, then the verdict."""
    table = Table(title=f"Retrain (run {d.run_id}): list of {d.list_date:%Y-%m-%d} "
                        f"({d.list_source}), {d.officers:,} officers, {d.positives:,} "
                        "positive")
    for heading in ("", "model", d.metric, "interval", "ROC AUC", "fairness"):
        table.add_column(heading)
    for name, c in (("champion", d.champion), ("challenger", d.challenger)):
        fair = c.fairness_label()
        low, high = c.metrics.get("lower"), c.metrics.get("upper")
        table.add_row(name, str(c.model_id), f"{c.metric:.3f}",
                      "" if low is None else f"{low:.3f}-{high:.3f}",
                      f"{c.metrics['roc_auc']:.3f}", fair)
    console.print(table)
    console.print(f"Challenger trained on {d.training_rows:,} officer-dates (as-of dates "
                  f"{d.training_dates[0]:%Y-%m-%d} to {d.training_dates[-1]:%Y-%m-%d}, label "
                  f"windows closed by {d.list_date:%Y-%m-%d}). Champion and challenger share "
                  f"{d.jaccard:.0%} of their top {d.top_k} (Spearman {d.spearman:.3f}).",
                  highlight=False)
    if d.promoted and d.refit_dates:
        console.print(f"Challenger [bold green]promoted[/] (deployment {d.deployment_id}): "
                      f"{d.reason}. Live now: model {d.refit_model_id}, the same recipe "
                      f"refitted on as-of dates {d.refit_dates[0]:%Y-%m-%d} to "
                      f"{d.refit_dates[-1]:%Y-%m-%d} (label windows closed by "
                      f"{d.matured_by:%Y-%m-%d}).", highlight=False)
    else:
        console.print(f"Challenger [bold yellow]not promoted[/]: {d.reason}.", highlight=False)


def rollback(project_dir: ProjectArg = Path("."),
             reason: Annotated[str, typer.Option(help="Why (goes to the audit log).")] = "",
             database_url: DatabaseOpt = None, database_schema: SchemaOpt = None,
             by: ByOpt = None) -> None:
    """Return to the model deployed before the live one (audit-logged)."""
    from rudikit.monitoring.retrain import rollback as run_rollback

    engine = open_engine(project_dir, database_url, database_schema)
    try:
        retired, new = run_rollback(engine, by=acting_user(by), reason=reason,
                                    project_dir=_folder(project_dir))
    except _caught() as exc:
        fail(str(exc))
    console.print(f"Rolled back: deployment {retired} retired; deployment {new} is live.")
    from rudikit.config import ProjectError

    folder = _folder(project_dir)
    try:
        project = current_project(folder, fail_on_error=False)
    except ProjectError as exc:  # the rollback stands; only the reference waits
        console.print(f"[yellow]The reference profile is left to the first monitor pass: "
                      f"{exc.source} is not valid[/]", highlight=False)
        return
    store_deploy_reference(project, folder, engine)


def backtest(project_dir: ProjectArg = Path("."),
             max_age: Annotated[int, typer.Option(min=1, help="Months after training to "
                                                              "score.")] = 6,
             first_train_months: Annotated[int, typer.Option(min=1, help="Months of data the "
                                                                         "first model gets.")]
             = 1,
             database_url: DatabaseOpt = None, database_schema: SchemaOpt = None) -> None:
    """How performance decays with model age (the live model group refitted at each month
    end and scored on the months after): the evidence for how often to retrain."""
    from rudikit.data.sources import unify
    from rudikit.monitoring.retrain import backtest_model_age, deployed_group

    project = _project(project_dir, "backtest")
    engine = open_engine(project_dir, database_url, database_schema)
    dep = _deployed_or_fail(engine)
    point, features, group = deployed_group(engine, dep.model_group_id)
    with console.status("refitting at each month end"):
        try:
            frame, _ = unify(project, _folder(project_dir))
            run_id, table = backtest_model_age(
                project, frame, point, features, engine=engine,
                model_group_id=dep.model_group_id,
                artefacts=_folder(project_dir) / ".rudi" / "models", max_age=max_age,
                first_train_months=first_train_months)
        except _caught() as exc:
            fail(str(exc))
    if table.empty:
        fail("not enough months of data for a backtest")
    summary = table.groupby("age_months").agg(models=("roc_auc", "size"),
                                              roc_auc=("roc_auc", "mean"),
                                              sd=("roc_auc", "std")).reset_index()
    out = Table(title=f"ROC AUC by model age ({group['algorithm']}, group {group['id']}; "
                      f"run {run_id} in the store)")
    for heading in ("age (months)", "models", "mean ROC AUC", "sd"):
        out.add_column(heading, justify="right")
    for row in summary.itertuples():
        out.add_row(str(row.age_months), str(row.models), f"{row.roc_auc:.3f}",
                    f"{row.sd:.3f}")
    console.print(out)
    path = _backtest_report(table, summary, group, _folder(project_dir))
    console.print(f"[bold]Backtest report:[/] {path}", highlight=False)


def _backtest_report(table, summary, group, folder: Path) -> Path:  # type: ignore[no-untyped-def]
    """One self-contained page: ROC AUC by model age, each training date a line."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=g["age_months"], y=g["roc_auc"], mode="lines+markers",
                                name=f"trained until {until}", opacity=0.5)
                     for until, g in table.groupby("trained_until")])
    fig.add_trace(go.Scatter(x=summary["age_months"], y=summary["roc_auc"], mode="lines+markers",
                             name="mean", line={"width": 4, "color": "black"}))
    fig.update_layout(title=f"ROC AUC by model age: {group['algorithm']} (model group "
                            f"{group['id']}) refitted at each month end",
                      xaxis_title="months since the end of training", yaxis_title="ROC AUC")
    out = folder / ".rudi" / "reports"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "backtest.html"
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path


def replay(project_dir: ProjectArg = Path("."),
           month: Annotated[str | None, typer.Option(
               help="YYYY-MM to replay (default: the last month in the data).")] = None,
           url: Annotated[str | None, typer.Option(
               help="A running service to replay against (default: start one locally on a "
                    "free loopback port).")] = None,
           token: Annotated[str | None, typer.Option(
               envvar="RUDI_TOKEN", help="Token for --url (needs the predict and outcome "
                                         "roles, or admin).")] = None,
           outcomes: Annotated[bool, typer.Option(help="Also post each true outcome.")] = True,
           database_url: DatabaseOpt = None, database_schema: SchemaOpt = None,
           by: ByOpt = None) -> str:
    """Send a month of real records through the prediction service as production (POST
    /predict in batches), then their true outcomes (POST /outcomes). Returns the month."""
    import httpx

    from rudikit.data.sources import unify
    from rudikit.monitoring.replay import ReplayError, local_service, month_rows
    from rudikit.monitoring.replay import replay as run_replay
    from rudikit.service.errors import ServiceError

    project = _project(project_dir, "replay")
    folder = _folder(project_dir)
    try:
        frame, _ = unify(project, folder)
        chosen, data, y = month_rows(project, frame, month)
    except (*_caught(), ReplayError) as exc:
        fail(str(exc))
    engine = open_engine(project_dir, database_url, database_schema)
    dep = _deployed_or_fail(engine)
    columns = [c for c in dep.features.input_columns if c in data.columns]
    total = len(data) * (2 if outcomes else 1)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    try:
        with progress:
            task = progress.add_task(f"replaying {chosen}", total=total)
            tick = lambda n: progress.advance(task, n)  # noqa: E731
            if url:
                if not token:
                    fail("--url needs --token (or RUDI_TOKEN)")
                with httpx.Client(base_url=url, timeout=60.0,
                                  headers={"Authorization": f"Bearer {token}"}) as client:
                    summary = run_replay(client, project, data, y, columns, chosen,
                                         outcomes=outcomes, tick=tick)
            else:
                with local_service(folder, database_url, database_schema, engine,
                                   acting_user(by)) as client:
                    summary = run_replay(client, project, data, y, columns, chosen,
                                         outcomes=outcomes, tick=tick)
    except (ReplayError, httpx.HTTPError, ServiceError) as exc:
        fail(str(exc))
    console.print(f"Replayed {summary.month}: {summary.observations:,} records "
                  f"({summary.scored:,} scored now, {summary.replayed:,} already stored), "
                  f"{summary.outcomes:,} outcomes posted to deployment {dep.deployment_id}.",
                  highlight=False)
    return summary.month


def _deployed_or_fail(engine: Engine) -> Deployed:
    from rudikit.monitoring.monitor import deployed

    dep = deployed(engine)
    if dep is None:
        fail("nothing is deployed: promote a model first (`rudi deploy <model_group_id> "
             "--reason ...`)")
    return dep


def rehearse(project_dir: Path, database_url: str | None, model_group_id: int,
             model_id: int) -> None:
    """The production loop on the project's own last month, as `rudi demo` shows it: deploy
    the chosen model, replay the month through the service with its outcomes, monitor, and
    retrain. Critical alerts are shown, not turned into a failing exit."""
    from rudikit.monitoring.rehearsal import judging_day

    project = _project(project_dir, "demo")
    engine = open_engine(project_dir, database_url, None)
    done = demo_deploy(engine, project_dir, project, model_group_id, model_id,
                       by=acting_user(None))
    console.print(f"\n[bold]Production rehearsal[/]: deployment {done.id} = model {model_id} "
                  f"(group {model_group_id}, {done.algorithm}), threshold {done.threshold:g}.",
                  highlight=False)
    month = replay(project_dir, month=None, url=None, token=None, outcomes=True,
                   database_url=database_url, database_schema=None, by=None)
    as_of = judging_day(month)
    try:
        monitor(project_dir, as_of=as_of, database_url=database_url, database_schema=None,
                show=False)
    except typer.Exit as exc:
        if exc.exit_code not in (0, 1):
            raise
    retrain(project_dir, as_of=as_of, database_url=database_url, database_schema=None,
            by=None)


def register(app: typer.Typer) -> None:
    """Add the monitoring commands to the ``rudi`` command line."""
    for command in (replay, monitor, retrain, rollback, backtest):
        app.command()(command)
