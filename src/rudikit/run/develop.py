"""``rudi run``: the development stage end to end, every result written to the store.

rationale gate -> load and validate sources (snapshots) -> the experiment of the project's kind
(case rows, or temporal lists) -> the grid through the run engine (fit, score, evaluate with
bootstrap intervals, audit fairness, store) -> selection -> the steps after it (explanations and
mitigation for a case project; list stability and the last list's reasons for a temporal one)
-> report and cards. A failure marks the run failed; everything stored before it stays as it
was.

The report and cards are written by a function the caller passes (``write_report``; `rudi run`
passes :func:`rudikit.reports.run_report.write_run_report_and_cards`): reports sit above run,
so run does not import them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
from rich.progress import Progress
from sqlalchemy.engine import Engine

from rudikit.config import (
    Execution,
    Project,
    TemporalProject,
    load_project,
    missing_rationale,
)
from rudikit.data.event_tables import load_event_tables
from rudikit.data.sources import LoadedSource, resolve_path
from rudikit.models.temporal import StabilityRows
from rudikit.run.case import CaseExperiment
from rudikit.run.engine import RunResult, data_origin, fit_grid, record_snapshots
from rudikit.run.execution import local_workers, release_local_workers, start_workers
from rudikit.run.lists import (
    last_list_plan,
    list_stability,
    prepare_stability,
    summary_table,
)
from rudikit.run.refit import refit_chosen
from rudikit.run.temporal import TemporalLists, fit_lists
from rudikit.run.validate import temporal_problems
from rudikit.store import results
from rudikit.store.engine import open_store

#: Writes a finished run's report and cards: (engine, run id, project folder, the loaded sources
#: for the data cards or None to read them from the store) -> the report's path.
ReportWriter = Callable[[Engine, int, Path, Sequence[LoadedSource] | None], Path]

#: What a worker imports before its first task, per kind of project: the fits' (and a
#: temporal project's refits' and reasons') code, and skops, with which a task saves a model.
TASK_MODULES = {"temporal": ("rudikit.run.engine", "rudikit.run.temporal", "rudikit.run.lists",
                             "skops.io"),
                "case": ("rudikit.run.engine", "rudikit.run.case", "skops.io")}


class Phase:
    """The work after the last fit (selection, explanations, mitigation, list stability, the
    report) on a progress line of its own: it can take as long as several fits, and the fitting
    line, full, would otherwise look stuck."""

    def __init__(self, progress: Progress | None, steps: int):
        self.progress = progress
        self.task = (progress.add_task("after the fits", total=steps)
                     if progress is not None else None)
        self.started = False

    def step(self, description: str) -> None:
        """Start the next step (the previous one is done)."""
        if self.progress is None or self.task is None:
            return
        self.progress.update(self.task, description=f"after the fits: {description}",
                             advance=1 if self.started else 0)
        self.started = True

    def done(self) -> None:
        if self.progress is not None and self.task is not None:
            task = self.progress.tasks[self.task]
            self.progress.update(self.task, description="after the fits: done",
                                 completed=task.total)


class RationaleIncomplete(Exception):
    def __init__(self, missing: list[str]):
        self.missing = missing
        super().__init__("required rationale fields are empty: " + ", ".join(missing))


def run_project(project_dir: str | Path, *, url: str | None = None, schema: str | None = None,
                progress: Progress | None = None, write_report: ReportWriter | None = None,
                engine: Engine | None = None, allow_synthetic: bool = False) -> RunResult:
    """Run the development stage for the project in ``project_dir``, of either kind.
    ``write_report`` writes the finished run's report and cards (None: neither is written).
    ``allow_synthetic``: a missing archive folder is replaced by the seeded generator (the
    caller asked for it; the run is then recorded as synthetic) instead of failing."""
    project_dir = Path(project_dir)
    project = load_project(project_dir)
    project_dir = project_dir if project_dir.is_dir() else project_dir.parent
    missing = missing_rationale(project.rationale)
    if missing:
        raise RationaleIncomplete(missing)
    unreachable = project.execution.problems()
    if unreachable:  # before the data is loaded, as `rudi validate` says it
        raise ValueError("; ".join(unreachable))
    engine = engine or open_store(url, project_dir, schema=schema)
    # the workers start and import what the tasks need while this process loads the data
    start_workers(project.execution,
                  TASK_MODULES["temporal" if isinstance(project, TemporalProject) else "case"])
    try:
        return _run(project, project_dir, engine, progress, write_report, allow_synthetic)
    finally:  # a failed run stops the workers too (a finished one already has)
        release_local_workers(project.execution)


def _run(project: Project | TemporalProject, project_dir: Path, engine: Engine,
         progress: Progress | None, write_report: ReportWriter | None,
         allow_synthetic: bool) -> RunResult:
    """:func:`run_project` once the store is open and the workers are starting."""
    started = time.perf_counter()

    def say(message: str) -> None:
        if progress is not None:
            progress.console.print(f"[{time.perf_counter() - started:5.0f} s] {message}",
                                   highlight=False)

    temporal = isinstance(project, TemporalProject)
    with progress if progress is not None else nullcontext():
        if isinstance(project, TemporalProject):
            source = project.data.sources[0]
            say(f"loading {source.kind} from {resolve_path(source, project_dir)}")
            tables, loaded = load_event_tables(project, project_dir)
            problems = temporal_problems(project, tables, loaded)
            if problems:  # refused before a run is stored, as `rudi validate` reports them
                raise ValueError("; ".join(problems))
            seed = project.temporal.seed
        else:
            experiment, loaded = CaseExperiment.load(project, project_dir,
                                                     allow_synthetic=allow_synthetic)
            seed = project.evaluation.seed
        with results.run(engine, project.name, project.config_hash(),
                         project.model_dump(mode="json", by_alias=True), seed,
                         data_origin(loaded)) as run:
            result = RunResult(run.id, project.name,
                               str(engine.url.render_as_string(hide_password=True)), loaded)
            # a temporal run's event tables have no data card, so no column profiles
            record_snapshots(engine, run.id, loaded,
                             profile=not isinstance(project, TemporalProject))
            if isinstance(project, TemporalProject):
                phase = _develop_lists(project, project_dir, engine, run.id, result, tables,
                                       progress, say, bool(write_report))
            else:
                phase = _develop_cases(experiment, engine, run.id, result, progress, say,
                                       bool(write_report), project.execution)
            run.finish()
            if write_report:
                phase.step("report and cards")
                result.report_path = write_report(engine, run.id, project_dir,
                                                  None if temporal else loaded)
                results.set_report_path(engine, run.id, str(result.report_path))
            phase.done()
    if temporal:
        say("done")
    return result


def _develop_cases(experiment: CaseExperiment, engine: Engine, run_id: int, result: RunResult,
                   progress: Progress | None, say: Callable[[str], None], report: bool,
                   execution: Execution) -> Phase:
    """The grid, the best model on the selection split, its explanations and mitigation.
    Returns the progress line of the steps after the fits (the report is its last)."""
    experiment.prepare(say)
    _, _, result.models = fit_grid(experiment, engine, run_id, progress, execution)
    result.models += experiment.fit_ensembles(engine, run_id, result.models, say)
    release_local_workers(execution)
    mitigation = bool(experiment.project.fairness.mitigation)
    refit = experiment.project.evaluation.selection.refit != "none"
    phase = Phase(progress, 2 + refit + mitigation + report)
    phase.step("selecting a model")
    result.selected, result.selection_reason = experiment.select(result.models)
    if result.selected and experiment.project.evaluation.selection.refit != "none":
        phase.step("refitting the chosen model on training and validation rows")
        result.selected, result.selection_reason = refit_chosen(
            experiment, engine, run_id, result.selected, result.models,
            result.selection_reason, say)
        result.models.append(result.selected)
    if result.selected:
        results.mark_selected(engine, result.selected.model_id, result.selection_reason)
        experiment.after_selection(engine, run_id, result.selected, result, phase.step)
    return phase


def _develop_lists(project: TemporalProject, project_dir: Path, engine: Engine, run_id: int,
                   result: RunResult, tables: Mapping[str, pd.DataFrame],
                   progress: Progress | None, say: Callable[[str], None], report: bool
                   ) -> Phase:
    """The development steps of a temporal project inside a recorded run: the grid, the
    audition, list stability and the reasons behind the last list. Returns the progress line
    of the steps after the fits (the report is its last)."""
    config = project.temporal
    lists = TemporalLists(config, tables, project_dir / ".rudi" / "models", project.fairness,
                          project_dir / ".rudi" / "cache")
    lists.prepare(say)
    assert lists.data is not None
    data = lists.data
    # list stability's rows are built while the workers fit (held meanwhile: 0.85 GB for
    # the EIS example); fitting here, they are built after the grid, as it frees its rows
    prepared: list[StabilityRows] = []
    execution = project.execution
    ahead = execution.backend == "dask" or local_workers(execution) > 1
    fitted = fit_lists(lists, engine, run_id, progress, execution, meanwhile=(
        lambda: prepared.append(prepare_stability(data, config, lists.input_columns()))
    ) if ahead else None)
    result.models = fitted.models
    phase = Phase(progress, 2 + report)
    phase.step("audition")
    chosen, reason = lists.select(fitted.models, fitted)
    results.mark_selected(engine, chosen.model_id, reason)
    result.selected, result.selection_reason = chosen, reason
    say(f"chosen: {reason}")
    assert chosen.artefact is not None
    # the reasons behind the last lists (the chosen model's; ensembles are never chosen, but
    # theirs are explained too) are tasks of list stability's batch: short ones, that would
    # otherwise run alone after it
    explained = [("", chosen)] + [
        (f"ensemble (model group {m.model_group_id}): ", m) for m in fitted.models
        if m.algorithm == "ensemble" and m.split == chosen.split and m.artefact is not None]
    reasons = [last_list_plan(data, engine, m.model_id,
                              (m.artefact[0], str(m.artefact[1])), config)  # type: ignore[index]
               for _, m in explained]
    phase.step("list stability and the reasons behind the last list")
    stability = list_stability(data, fitted, chosen.model_group_id, engine, run_id, say,
                               project.execution, rows=prepared.pop() if prepared else None,
                               alongside=reasons)
    for line in stability.summary(config.top_k):
        say(line)
    for (prefix, _), said in zip(explained, stability.alongside, strict=True):
        say(prefix + said)
    release_local_workers(project.execution)
    result.summary = summary_table(fitted, chosen.model_group_id)
    return phase
