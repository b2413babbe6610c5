"""``rudi init``, ``validate``, ``run``, ``demo``, ``fetch`` and ``report``: the development
stage on the command line, from an example project to a stored run and its HTML report."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from rudikit.cli.terminal import DatabaseOpt, console, fail

if TYPE_CHECKING:
    from rudikit.config import Project, TemporalProject
    from rudikit.run.engine import RunResult

EXAMPLES = Path(__file__).parents[1] / "examples"

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holding rudi.yaml) or the "
                                                 "rudi.yaml file itself.")]
AllowSyntheticOpt = Annotated[bool, typer.Option(
    "--allow-synthetic", help="When a police_uk_archive folder is missing, use the seeded "
                              "synthetic generator instead of failing (the output says "
                              "SYNTHETIC).")]


def examples() -> list[str]:
    from rudikit.config import PROJECT_FILE

    return sorted(p.name for p in EXAMPLES.iterdir() if (p / PROJECT_FILE).exists())


_RELATIVE_DEFAULT = re.compile(r"(\$\{[A-Za-z_][A-Za-z0-9_]*:-)(\.[^}]*)(\})")


def copy_example(name: str, dest: Path, force: bool = False) -> Path:
    """Copy an example project; relative data paths are made absolute so they still resolve."""
    from rudikit.config import PROJECT_FILE

    source = EXAMPLES / name
    if not (source / PROJECT_FILE).exists():
        fail(f"no example named {name!r}; choose one of: {', '.join(examples())}")
    if (dest / PROJECT_FILE).exists() and not force:
        fail(f"{dest / PROJECT_FILE} already exists; use --force to overwrite it")
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, dirs_exist_ok=True)
        else:
            shutil.copy2(item, dest / item.name)
    text = (source / PROJECT_FILE).read_text(encoding="utf-8")
    text = _RELATIVE_DEFAULT.sub(
        lambda m: m.group(1) + str((source.resolve() / m.group(2)).resolve()) + m.group(3), text)
    (dest / PROJECT_FILE).write_text(text, encoding="utf-8")
    return dest


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    example: Annotated[str, typer.Option(help="Example to start from.")] = "stop_search",
    force: Annotated[bool, typer.Option(help="Overwrite an existing rudi.yaml.")] = False,
) -> None:
    """Create a project folder from an example (a filled-in rudi.yaml to edit)."""
    from rudikit.config import PROJECT_FILE

    dest = copy_example(example, directory, force)
    console.print(f"[green]Created[/] {dest / PROJECT_FILE} from example [bold]{example}[/].")
    console.print(f"Next: edit the rationale and data sources, then `rudi validate {dest}` and "
                  f"`rudi run {dest}`.")


def _load(project_dir: Path) -> Project | TemporalProject:
    from rudikit.config import ProjectError, load_project

    try:
        return load_project(project_dir)
    except ProjectError as exc:
        fail(f"{exc.source} is not valid:", exc.problems)


def validate(project_dir: ProjectArg = Path("."), allow_synthetic: AllowSyntheticOpt = False
             ) -> None:
    """Check rudi.yaml and the data it points to; report every problem with its key path."""
    from rudikit.config import TemporalProject, missing_rationale
    from rudikit.data.sources import SourceError, unify

    project = _load(project_dir)
    folder = project_dir if project_dir.is_dir() else project_dir.parent
    if isinstance(project, TemporalProject):
        from rudikit.run.validate import validate_temporal

        try:
            facts, problems = validate_temporal(project, folder)
        except SourceError as exc:
            fail("cannot load the data:", [str(exc)])
        for fact in facts:
            console.print(fact)
        problems += project.execution.problems()
        if problems:
            fail(f"{len(problems)} problem(s) in {project_dir}:", problems, code=1)
        console.print("[green]valid[/]: rudi.yaml, its event tables and its label are usable.")
        return
    problems = [f"{path}: required rationale field is empty"
                for path in missing_rationale(project.rationale)]
    try:
        frame, loaded = unify(project, folder, allow_synthetic=allow_synthetic)
    except SourceError as exc:
        fail("cannot load the data:", problems + [str(exc)])
    for source in loaded:
        report = source.report
        origin = "[yellow]SYNTHETIC[/]" if source.origin == "synthetic" else "real"
        files = f"{len(source.files)} files" if source.files else source.location
        console.print(f"data.sources: [bold]{source.name}[/] ({origin}) {files}, "
                      f"{len(source.frame):,} rows, {report.bad_rows} bad rows, "
                      f"{len(report.warnings)} warnings" + (f" - {source.note}" if source.note
                                                            else ""))
        for problem in report.problems[:20]:
            console.print(f"  {problem}")
        if len(report.problems) > 20:
            console.print(f"  ... and {len(report.problems) - 20} more")
    # the model code is loaded only now that the data is read
    from rudikit.features.labels import LabelError, make_label
    from rudikit.run.case import CaseExperiment, check_columns

    problems += check_columns(project, frame, loaded)
    try:
        y, keep = make_label(frame, project.label)
        console.print(f"label [bold]{project.label.name}[/]: {int(y[keep].sum()):,} positive of "
                      f"{int(keep.sum()):,} rows ({y[keep].mean():.1%})")
    except LabelError as exc:
        problems.append(str(exc))
    if not problems:  # the splits and the grid's values, as `rudi run` checks them before fitting
        try:
            CaseExperiment(project, frame, folder / ".rudi" / "models").prepare(lambda _: None)
        except ValueError as exc:
            problems.append(str(exc))
    problems += project.execution.problems()
    if problems:
        fail(f"{len(problems)} problem(s) in {project_dir}:", problems, code=1)
    console.print("[green]valid[/]: rudi.yaml, its data and its label are usable.")


def top_share(parameter: str) -> str:
    """A list-size parameter as people say it: ``10_pct`` is "top 10%", ``100_abs`` "top 100"."""
    if parameter.endswith("_pct"):
        return f"top {parameter.removesuffix('_pct')}%"
    return f"top {parameter.removesuffix('_abs')}"


def summary_table(result: RunResult) -> Table:
    """Every fit, grouped by split with the best ROC AUC first, narrow enough for an 80-column
    terminal: the chosen model starred, the interval on the same line as its estimate,
    precision and recall in the top k% of the list named in words."""
    ordered = sorted(result.models, key=lambda m: (m.split, -m.metrics[("roc_auc", "")].value))
    shares = sorted({param for m in ordered for name, param in m.metrics
                     if name == "precision_at_k" and param.endswith("_pct")})
    share = shares[0] if shares else None
    table = Table(title=f"Run {result.run_id}: {result.project} "
                        f"({'SYNTHETIC' if result.data_origin == 'synthetic' else 'real'} data)",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                  title_justify="left")
    top = f"\n{top_share(share)}" if share else ""
    for heading, left in (("group", False), ("algorithm", True), ("ROC AUC (95% CI)", False),
                          ("avg\nprec", False), (f"prec{top}", False), (f"recall{top}", False),
                          ("fit s", False)):
        table.add_column(heading, justify="left" if left else "right", no_wrap=True)
    split = None
    for m in ordered:
        if m.split != split:
            split = m.split
            table.add_row("", Text(f"split {split}", style="bold"), end_section=False)
        auc = m.metrics[("roc_auc", "")]
        ci = f" [{auc.lower:.3f}, {auc.upper:.3f}]" if auc.lower is not None else ""
        at = [m.metrics.get((name, share)) if share else None
              for name in ("precision_at_k", "recall_at_k")]
        chosen = result.selected is not None and m.model_id == result.selected.model_id
        name = f"{m.algorithm} refit" if m.refit_of is not None else m.algorithm
        table.add_row(f"{'*' if chosen else ''}{m.model_group_id}", name,
                      f"{auc.value:.3f}{ci}",
                      f"{m.metrics[('average_precision', '')].value:.3f}",
                      *[f"{v.value:.3f}" if v is not None else "" for v in at],
                      f"{m.train_seconds:.1f}", style="bold green" if chosen else None)
    return table


def run_progress() -> Progress:
    """The progress lines of `rudi run`: the description is cut short with an ellipsis before
    the count and the elapsed time are, whatever the terminal's width."""
    return Progress(TextColumn("[progress.description]{task.description}",
                               table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                    BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, expand=True)


def run_and_report(project_dir: Path, database_url: str | None, allow_synthetic: bool = False
                   ) -> RunResult:
    from rudikit.data.sources import SourceError
    from rudikit.fairness.tradeoff import NO_GROUP_MEETS
    from rudikit.features.labels import LabelError
    from rudikit.features.splits import SplitError
    from rudikit.models.artefacts import ArtefactError
    from rudikit.reports.run_report import write_run_report_and_cards
    from rudikit.run.develop import RationaleIncomplete, run_project

    _load(project_dir)
    progress = run_progress()
    try:
        result = run_project(project_dir, url=database_url, progress=progress,
                             write_report=write_run_report_and_cards,
                             allow_synthetic=allow_synthetic)
    except RationaleIncomplete as exc:
        fail("rudi run will not train a model until the rationale is complete. Fill in:",
             exc.missing)
    except (SourceError, LabelError, SplitError, ArtefactError, ValueError) as exc:
        fail(str(exc))
    for source in result.sources:
        if source.origin == "synthetic":
            console.print(f"[yellow]Data: SYNTHETIC[/] for source {source.name!r}: {source.note}.")
        else:
            note = f" {source.note}." if source.note else ""
            files = f"{len(source.files)} files, " if source.files else ""
            console.print(f"Data: [bold]real[/] {source.kind} {source.name!r} from "
                          f"{source.location} ({files}{len(source.frame):,} rows, "
                          f"{source.report.bad_rows} bad rows).{note}")
    console.print(result.summary if result.summary is not None else summary_table(result))
    if result.selected:
        console.print(f"[bold]Chosen:[/] model group {result.selected.model_group_id} "
                      f"({result.selected.algorithm}) - {result.selection_reason}.")
        if result.selection_reason.startswith(NO_GROUP_MEETS):
            console.print("[yellow]No model group meets every fairness requirement, so "
                          "require_fairness fell back to the plain best[/]: see the trade-off "
                          "in the report; `rudi deploy` will ask for a waiver.")
    requirement_verdicts(project_dir, database_url, result)
    console.print(f"Results store: {result.store_url}")
    console.print(f"[bold]Report:[/] {result.report_path}")
    return result


def requirement_verdicts(project_dir: Path, database_url: str | None, result: RunResult
                         ) -> None:
    """Each fairness requirement's verdict for the chosen model, its mitigated variant and the
    live deployment (what `rudi deploy`'s gate will read)."""
    from rudikit.cli.service import print_requirements
    from rudikit.reports.mitigation_table import margin_note, mitigation_rows
    from rudikit.store.engine import open_store
    from rudikit.store.queries.evaluations import evaluations_of_models
    from rudikit.store.queries.fairness import model_requirement_statuses
    from rudikit.store.queries.production import live_deployment

    shown = [(f"Chosen model {m.model_id} (group {m.model_group_id})", m.model_id)
             for m in (result.selected,) if m is not None]
    if result.mitigated is not None:
        m = result.mitigated
        shown.append((f"Mitigated model {m.model_id} (group {m.model_group_id})", m.model_id))
    engine = open_store(database_url, project_dir)
    try:
        with engine.connect() as conn:
            live = live_deployment(conn)
            if live is not None:
                shown.append((f"Live deployment {live['id']} (model {live['model_id']}, group "
                               f"{live['model_group_id']})", int(live["model_id"])))
            verdicts = [(title, model_requirement_statuses(conn, model_id))
                        for title, model_id in shown]
        judged, margin = [], ""
        if result.mitigated is not None:
            evals = evaluations_of_models(engine, [result.mitigated.model_id])
            judged = mitigation_rows(engine, result.mitigated.model_id, evals)
            margin = margin_note(evals, result.mitigated.model_id)
    finally:
        engine.dispose()
    if not any(statuses for _, statuses in verdicts):
        return
    console.print("[bold]Fairness requirements[/] (met / not met / inconclusive / "
                  "insufficient data; `rudi deploy` refuses a model with one not met):")
    for title, statuses in verdicts:
        print_requirements(title, statuses)
    if judged:
        table = Table(title=f"Mitigation judged on held-out rows (thresholds fitted on "
                            f"{judged[0]['fitted_on']} rows)")
        for column in ("Requirement", "Bound", "Fitting rows", "Held-out rows [95% CI]"):
            table.add_column(column, overflow="fold")
        for m in judged:
            table.add_row(m["name"], m["bound"], f"{m['fitting_status']}: {m['fitting_gap']}",
                          f"{m['held_out_status']}: {m['held_out_gap']}")
        console.print(table)
        if margin:
            console.print(margin)


def run(project_dir: ProjectArg = Path("."), database_url: DatabaseOpt = None,
        allow_synthetic: AllowSyntheticOpt = False) -> None:
    """Run the development pipeline: load and validate data, label, split, fit the model grid,
    evaluate with bootstrap intervals, select a model and write the HTML report."""
    run_and_report(project_dir, database_url, allow_synthetic)


_ARCHIVE_SOURCE = re.compile(r"^(\s*)kind: police_uk_archive\n((?:\s*#.*\n)*)(\s*)(path: .*)$",
                             re.MULTILINE)


def synthetic_when_missing(project_dir: Path) -> Path | None:
    """The offline demo: when the example's archive folder is missing, the copied project's
    source becomes ``kind: synthetic_stop_search`` in its rudi.yaml, so the choice is written
    where every later command (run, monitor, retrain, card) reads it. The missing folder, or
    None when the real data are there."""
    from rudikit.config import PROJECT_FILE, load_project
    from rudikit.data.sources import resolve_path

    source = load_project(project_dir).data.sources[0]
    path = resolve_path(source, project_dir)
    if path is None or path.exists():
        return None
    file = project_dir / PROJECT_FILE
    text, done = _ARCHIVE_SOURCE.subn(
        lambda m: (f"{m.group(1)}kind: synthetic_stop_search  # rudi demo: the archive folder "
                   f"is missing\n{m.group(2)}{m.group(3)}# {m.group(4)}"),
        file.read_text(encoding="utf-8"), count=1)
    if not done:
        fail(f"{file}: no police_uk_archive source with a path to replace by synthetic data")
    file.write_text(text, encoding="utf-8")
    return path


def demo(
    example: Annotated[str, typer.Argument(
        help="stop_search (default): develop, deploy, replay a month, monitor, retrain; eis: "
             "the early intervention system's production rehearsal on the real Chicago "
             "files (monthly lists 2014-2016, reviews, monitoring, yearly retraining).")]
    = "stop_search",
    workdir: Annotated[Path | None, typer.Option(
        help="Where to put the demo project and its store (default: rudi-demo, or "
             "rudi-demo-eis for eis).")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Run an example end to end. stop_search: develop the model (real data.police.uk files
    when they are beside the repository, else the seeded synthetic generator, written into the
    demo project's rudi.yaml; the output says SYNTHETIC), then rehearse production: deploy the
    chosen model, replay the last month through the service with its outcomes, monitor it and
    retrain it. eis: see `rudi demo --help`."""
    from rudikit.cli.monitoring import rehearse
    from rudikit.config import PROJECT_FILE

    if example == "eis":
        from rudikit.cli.lists import demo_eis

        demo_eis(workdir or Path("rudi-demo-eis"), database_url)
        return
    if example != "stop_search":
        fail(f"no demo named {example!r}; choose stop_search or eis")
    workdir = workdir or Path("rudi-demo")
    copy_example("stop_search", workdir, force=True)
    console.print(f"Demo project: {workdir.resolve() / PROJECT_FILE}")
    missing = synthetic_when_missing(workdir)
    if missing is not None:
        console.print(f"[yellow]Data: SYNTHETIC[/]: {missing} not found, so the demo project "
                      "reads the seeded synthetic generator (data.sources[0].kind: "
                      "synthetic_stop_search in its rudi.yaml).")
    result = run_and_report(workdir, database_url)
    if result.selected is not None:
        rehearse(workdir, database_url, result.selected.model_group_id,
                 result.selected.model_id)


def fetch(
    forces: Annotated[list[str], typer.Option(
        "--force-name", help="Police force id, e.g. essex (repeat).")],
    month: Annotated[list[str], typer.Option("--month", help="YYYY-MM (repeat).")],
    dest: Annotated[Path, typer.Option(help="Folder to write the data into.")] = Path("data"),
    archive: Annotated[bool, typer.Option(
        "--archive/--api", help="The monthly archive zip (archive CSV layout) or the "
                                "stops-force API (JSON).")] = False,
    refresh: Annotated[bool, typer.Option(help="Download again even if cached.")] = False,
) -> None:
    """Download stop-and-search data from data.police.uk (cached; clear message when offline).

    --force-name, not --force: on `rudi init` --force means overwrite.
    --archive writes dest/YYYY-MM/YYYY-MM-<force>-stop-and-search.csv (source kind
    police_uk_archive); --api writes dest/<force>/<YYYY-MM>.json (kind police_uk_api_json).
    """
    from rudikit.data import download
    from rudikit.data.download_http import DownloadError

    written: list[Path] = []
    try:
        for m in month:
            if archive:
                written += download.fetch_archive(m, forces, dest, refresh=refresh)
                continue
            for f in forces:
                cached = download.fetch_stops_force(f, m, refresh=refresh)
                target = dest / f / f"{m}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cached, target)
                written.append(target)
    except (DownloadError, ValueError) as exc:
        fail(str(exc))
    for path in written:
        console.print(f"wrote {path}")


def report(
    run_id: Annotated[int, typer.Argument(help="Run id (see the summary of `rudi run`).")],
    project_dir: ProjectArg = Path("."),
    database_url: DatabaseOpt = None,
) -> None:
    """Rebuild the HTML report of a past run: the page it first wrote, frozen in the store."""
    from rudikit.reports.run_report import write_run_report
    from rudikit.store.engine import open_store

    folder = project_dir if project_dir.is_dir() else project_dir.parent
    engine = open_store(database_url, folder)
    try:
        path = write_run_report(engine, run_id, folder / ".rudi" / "reports")
    except ValueError as exc:
        fail(str(exc))
    console.print(f"[bold]Report:[/] {path}")


def register(app: typer.Typer) -> None:
    """Add the development commands to the ``rudi`` command line."""
    for command in (init, validate, run, demo, fetch, report):
        app.command()(command)
