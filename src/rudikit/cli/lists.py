"""``rudi score``: the production lists of a temporal project (an early intervention system),
made from the sources as they are now with the deployed model group."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rudikit.cli.service import ByOpt, ProjectArg, acting_user, open_engine
from rudikit.cli.terminal import DatabaseOpt, SchemaOpt, console, fail

if TYPE_CHECKING:
    from rudikit.config import TemporalProject
    from rudikit.monitoring.scheduled_lists import ScoringResult


def temporal_project(project_dir: Path, command: str) -> TemporalProject:
    """The temporal project in ``project_dir``, or exit 2 saying why not."""
    from rudikit.config import ProjectError, TemporalProject, load_project

    try:
        project = load_project(project_dir)
    except ProjectError as exc:
        fail(f"{exc.source} is not valid: " + "; ".join(exc.problems))
    if not isinstance(project, TemporalProject):
        fail(f"`rudi {command}` makes the lists of a temporal project (a `temporal` section); "
             f"{project.name!r} scores cases: its production is `rudi serve` and `rudi replay`")
    return project


def _day(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is not a date (YYYY-MM-DD)")


def show_lists(result: ScoringResult, rows: int = 10) -> None:
    """The newest list's top ``rows`` with their first reason, and what was skipped."""
    for when in result.skipped:
        console.print(f"{when:%Y-%m-%d}: a list already exists; nothing stored.",
                      highlight=False)
    if not result.lists:
        return
    from rudikit.features.readable import reason_words

    newest = result.lists[-1]
    table = Table(title=f"List of {newest.as_of:%Y-%m-%d} (list {newest.list_id}): top "
                        f"{min(rows, len(newest.top))} of {newest.k}")
    for heading in ("rank", "officer", "score", "first reason"):
        table.add_column(heading, justify="right" if heading != "first reason" else "left",
                         overflow="fold")
    for r in newest.top.head(rows).itertuples(index=False):
        reason = r.reasons[0] if isinstance(r.reasons, list) and r.reasons else None
        text = "" if reason is None else reason_words(reason)["text"]
        table.add_row(str(r.rank), str(r.entity_id), f"{r.score:.3f}", text)
    console.print(table)
    if newest.note:
        console.print(f"[dim]note:[/] {newest.note}", highlight=False)


def score(project_dir: ProjectArg = Path("."),
          as_of: Annotated[str | None, typer.Option(
              "--as-of", help="Make the list of this date (YYYY-MM-DD).")] = None,
          through: Annotated[str | None, typer.Option(
              "--through", help="Make every scheduled list up to this date that does not "
                                "exist yet, oldest first (production.frequency).")] = None,
          by: ByOpt = None, database_url: DatabaseOpt = None,
          database_schema: SchemaOpt = None) -> None:
    """Score every active officer as of a date with the deployed model group and store the
    list (officers in their cool-off after a review left out), with reasons and rank changes.
    A date that already has a list is not scored again."""
    from rudikit.data.sources import SourceError
    from rudikit.monitoring.scheduled_lists import ScoreError, score_lists

    project = temporal_project(project_dir, "score")
    folder = project_dir if project_dir.is_dir() else project_dir.parent
    first, last = _day("--as-of", as_of), _day("--through", through)
    engine = open_engine(project_dir, database_url, database_schema)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True)
    try:
        with progress:
            task = progress.add_task("scoring lists", total=None)
            result = score_lists(project, folder, engine, by=acting_user(by), as_of=first,
                                 through=last, say=progress.console.print,
                                 tick=lambda done, total: progress.update(
                                     task, completed=done, total=total))
    except (ScoreError, SourceError) as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    show_lists(result)
    made = len(result.lists)
    console.print(f"{made} list{'s' if made != 1 else ''} stored"
                  + (f", {len(result.skipped)} date(s) already had one" if result.skipped
                     else "")
                  + f" ({result.seconds.get('total', 0):.1f} s).", highlight=False)


def demo_eis(workdir: Path, database_url: str | None) -> None:
    """``rudi demo eis``: the early intervention system's production rehearsal on the real
    Chicago files (:mod:`rudikit.monitoring.list_rehearsal`)."""
    import pandas as pd

    from rudikit.cli.develop import EXAMPLES, run_and_report
    from rudikit.cli.monitoring import alerts_table, list_table, write_report
    from rudikit.cli.service import demo_deploy
    from rudikit.config import load_project
    from rudikit.data.sources import resolve_path
    from rudikit.monitoring.list_monitor import ListMonitorResult, run_list_monitor
    from rudikit.monitoring.list_rehearsal import rehearse, write_demo_project
    from rudikit.monitoring.list_retrain import ListRetrainDecision, retrain_lists
    from rudikit.monitoring.retrain import RetrainError

    example = EXAMPLES / "eis"
    data = resolve_path(load_project(example).data.sources[0], example)
    if data is None or not data.exists():
        fail(f"the Chicago CPDB files are not at {data}: the EIS demo runs on the real files "
             "only (set RUDI_DATA_DIR to the folder holding eis/chicago_cpdb)")
    folder = write_demo_project(example, data, workdir)
    console.print(f"Demo project: {(folder / 'rudi.yaml').resolve()} (a copy of the CPDB files "
                  f"in {folder / 'data'})", highlight=False)
    result = run_and_report(folder, database_url)
    if result.selected is None:
        fail("the development run chose no model group")
    engine = open_engine(folder, database_url, None)
    by = acting_user(None)
    done = demo_deploy(engine, folder, load_project(folder), result.selected.model_group_id,
                       result.selected.model_id, by)
    console.print(f"\n[bold]Production rehearsal[/]: deployment {done.id} = model "
                  f"{done.model_id} (group {done.model_group_id}, {done.algorithm}); monthly "
                  "lists from 2014-01 to 2016-04.", highlight=False)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True)
    months = len(pd.date_range("2014-01-01", "2016-04-01", freq="MS"))
    with progress:
        task = progress.add_task("replaying months", total=months)

        def say(message: str) -> None:
            progress.console.print(message, highlight=False)
            if ": list " in message:
                progress.advance(task)

        def retrain(project: TemporalProject, as_of: pd.Timestamp) -> ListRetrainDecision | None:
            try:
                decision = retrain_lists(project, folder, engine, by=by, as_of=as_of)
            except RetrainError as exc:
                say(f"{as_of:%Y-%m}: no retraining: {exc}")
                return None
            verdict = (f"promoted (model {decision.refit_model_id} live)" if decision.promoted
                       else f"not promoted: {decision.reason}")
            say(f"{as_of:%Y-%m}: retrain judged on the {decision.list_date:%Y-%m-%d} list: "
                f"{decision.metric} challenger {decision.challenger.metric:.3f}, champion "
                f"{decision.champion.metric:.3f}; {verdict}")
            return decision

        def monitor(project: TemporalProject, as_of: pd.Timestamp, tables: Any, loaded: Any
                    ) -> ListMonitorResult:
            when = as_of.to_pydatetime().replace(tzinfo=UTC)
            result = run_list_monitor(project, folder, engine, as_of=when, today=when,
                                      tables=tables, loaded=loaded)
            kinds = Counter(a.kind for a in result.alerts)
            say(f"{as_of:%Y-%m}: monitor run {result.monitor_run_id}: "
                + (", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) + " alerts"
                   if kinds else "no alert"))
            return result

        done_months = rehearse(folder, engine, by=by, say=say, monitor=monitor,
                               retrain=retrain)
    last = next(m.monitor for m in reversed(done_months.months) if m.monitor is not None)
    console.print(list_table(last))
    if last.alerts:
        console.print(alerts_table([a.as_json() for a in last.alerts]))
    project = load_project(folder)
    path = write_report(engine, project, folder, last.monitor_run_id)
    console.print(f"[bold]Monitoring report:[/] {path}", highlight=False)
    engine.dispose()


def register(app: typer.Typer) -> None:
    """Add the list commands to the ``rudi`` command line."""
    app.command()(score)
