"""``rudi run`` for a project with a ``temporal`` section: an early intervention system.

:func:`rudikit.pipeline.run_project` hands such a project here. The steps follow DSaPP's EIS
work, and every result goes to the results store so the report and the cards can be rebuilt:

1. load the event tables (the Chicago CPDB files, linked per officer, or a folder of event
   tables) and record a data snapshot of each;
2. features on every as-of date of every timechop split (cached in ``.rudi/cache``), labels;
3. the model grid on every split (:func:`rudikit.models.temporal.run_temporal`): models,
   predictions, evaluations and importances;
4. audition: every selection rule's regret over the splits; the rule with the lowest mean
   regret picks the model group, whose last-split model is marked selected (with the reason);
5. list stability: the chosen group refitted with each seed (top-k Jaccard, Spearman), its
   lists on consecutive days, weeks, months and years, rank changes on the last consecutive
   date, and the stability-vs-trees curve of the configured forest (``list_stability``,
   ``rank_changes``);
6. the top reasons (TreeSHAP or coefficients, when the chosen model has them) behind the list
   of the last test as-of date, without officers reviewed within the cool-off;
7. the report and the model card of the chosen group.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.engine import Engine

from rudikit.data.sources import LoadedSource, SourceError, files_checksum
from rudikit.data.validation import ValidationReport
from rudikit.evaluation.stability import (
    consecutive_stability,
    exclude_reviewed,
    pairwise_stability,
    rank_changes,
    stability_vs_trees,
)
from rudikit.features.asof import table_fingerprint
from rudikit.models.audition import AuditionResult, audition
from rudikit.models.temporal import (
    ENTITY,
    PreparedData,
    TemporalExperiment,
    TemporalResult,
    consecutive_dates,
    grid_point,
    label_months,
    prepare,
    run_temporal,
    seed_lists,
    training_matrix,
)
from rudikit.project import Source, TemporalProject, missing_rationale
from rudikit.store import list_tables, results
from rudikit.store import tables as t

#: Tables an ``event_tables`` folder holds, one Parquet file each (``officers.parquet``, ...),
#: as :meth:`rudikit.data.cpdb.CPDB.tables` returns them.
EVENT_TABLES = ("officers", "complaints", "use_of_force", "unit_history", "rank_history")


def _source_path(source: Source, project_dir: Path) -> Path:
    path = Path(source.path or "").expanduser()
    return path if path.is_absolute() else (project_dir / path).resolve()


def load_event_tables(project: TemporalProject, project_dir: str | Path
                      ) -> tuple[dict[str, pd.DataFrame], list[LoadedSource]]:
    """The event tables :mod:`rudikit.features.asof` reads, and one :class:`LoadedSource` per
    table (for snapshots and the command line). A missing file is a :class:`SourceError`
    naming the key path."""
    source = project.data.sources[0]
    where = "data.sources[0]"
    path = _source_path(source, Path(project_dir))
    origin = str(source.options.get("origin", "real"))
    if source.kind == "chicago_cpdb":
        from rudikit.data.cpdb.files import FILES, CPDBError, cpdb_folder
        from rudikit.data.cpdb.tables import load_cpdb

        try:
            cpdb = load_cpdb(path)
        except (CPDBError, OSError) as exc:
            raise SourceError(f"{where}.path: cannot read the CPDB files under {path}: {exc}"
                              ) from None
        tables = cpdb.tables()
        root = cpdb_folder(path)
        files = {name: [root / file for file in FILES.values()] for name in tables}
        note = ", ".join(f"{name} linked {linked / max(rows, 1):.1%} of {rows:,} rows"
                         for name, (rows, linked) in cpdb.link_rows.items())
    else:
        missing = [name for name in EVENT_TABLES if not (path / f"{name}.parquet").exists()]
        if missing:
            raise SourceError(f"{where}.path: {path} lacks " + ", ".join(
                f"{name}.parquet" for name in missing))
        try:
            tables = {name: pd.read_parquet(path / f"{name}.parquet") for name in EVENT_TABLES}
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise SourceError(f"{where}.path: cannot read the event tables under {path}: {exc}"
                              ) from None
        root = path
        files = {name: [path / f"{name}.parquet"] for name in EVENT_TABLES}
        note = ""
    loaded = []
    for name, frame in tables.items():
        checksum = (files_checksum(files[name], root) if source.kind == "event_tables"
                    else table_fingerprint(frame))
        loaded.append(LoadedSource(f"{source.name}.{name}", source.kind, str(root), origin,
                                   files[name], frame, ValidationReport(source.name, len(frame)),
                                   checksum, note if name == "officers" else ""))
    return tables, loaded


def validate_temporal(project: TemporalProject, project_dir: Path
                      ) -> tuple[list[str], list[str]]:
    """(facts, problems) for ``rudi validate``: the event tables load, and every test as-of
    date of the timechop has officers whose label window is not censored."""
    from rudikit.features.asof import build_labels

    problems = [f"{path}: required rationale field is empty"
                for path in missing_rationale(project.rationale)]
    tables, loaded = load_event_tables(project, project_dir)
    facts = [f"data.sources[0]: {s.name} ({s.origin}) {len(s.frame):,} rows"
             + (f" - {s.note}" if s.note else "") for s in loaded]
    config = project.temporal
    dates = sorted({d for split in config.splits() for test in split.tests
                    for d in test.as_of_dates})
    span = config.splits()[-1].test.label_timespan
    labels = build_labels(tables, dates, dataclasses.replace(
        config.label_spec, window_months=label_months(span)))
    for when, rows in labels.groupby("as_of_date"):
        known = rows[config.label].dropna()
        if known.empty:
            problems.append(f"temporal.timechop: every label window from the test as-of date "
                            f"{when:%Y-%m-%d} runs past the end of the {config.label} data "
                            "(lower label_end_time)")
        else:
            facts.append(f"temporal.label {config.label} on {when:%Y-%m-%d}: "
                         f"{int(known.sum()):,} positive of {len(known):,} officers")
    return facts, problems


def _date_range(frame: pd.DataFrame) -> tuple[Any, Any]:
    dates = frame.select_dtypes("datetime").stack() if len(frame) else pd.Series(dtype=object)
    return (dates.min(), dates.max()) if len(dates) else (None, None)


# --- Steps after the grid --------------------------------------------------------------------


def choose_group(result: TemporalResult) -> tuple[AuditionResult, int, str]:
    """(audition, chosen model group, reason): the rule with the lowest mean regret over the
    splits picks the group; baselines compete too (a rule may rightly pick one)."""
    config = result.experiment
    aud = audition(result.split_metrics(), config.rules(), time_col="split_time")
    best = aud.summary.iloc[0]
    chosen = int(best["final_choice"])
    name = result.group(chosen)["name"]
    reason = (f"audition rule {best['rule']} (lowest mean regret {best['mean_regret']:.3f} over "
              f"{best['periods_scored']} later periods) picks {name}: mean precision in the top "
              f"{config.top_k} {best['final_choice_mean']:.3f} over {len(aud.table)} test periods")
    return aud, chosen, reason


def list_stability(data: PreparedData, result: TemporalResult, chosen: int, engine: Engine,
                   run_id: int, say: Callable[[str], None]) -> pd.DataFrame:
    """Seed, consecutive-list and trees stability of the chosen group, stored in
    ``list_stability``; rank changes on the last consecutive date stored in ``rank_changes``.
    Returns the seed pairs."""
    config = result.experiment
    settings = config.stability
    point = grid_point(result, chosen)
    last_test = data.splits[-1].split_time
    extra = consecutive_dates(last_test, settings.consecutive)
    by_seed, by_date = seed_lists(data, point, settings.seeds, extra_dates=extra, progress=say)
    pairs = pairwise_stability(by_seed, config.top_k)
    common = {"model_group_id": chosen, "algorithm": point.algorithm, "k": config.top_k}
    rows = [{"kind": "seeds", **common, "parameter": f"{r.a}/{r.b}", "as_of_date": last_test,
             "metric": metric, "value": getattr(r, metric)}
            for r in pairs.itertuples() for metric in ("jaccard", "spearman")]
    yearly = {d: result.scores(chosen, d) for d in sorted(result.metrics["as_of_date"].unique())}
    end = extra[-1]
    c = settings.consecutive
    spacing = {
        "day": [d for d in extra if end - d <= pd.Timedelta(days=c.days)],
        "week": [d for d in (last_test + pd.DateOffset(weeks=i) for i in range(c.weeks + 1))
                 if d <= end],
        "month": [last_test + pd.DateOffset(months=i) for i in range(c.months + 1)],
    }
    for name, dates in [*spacing.items(), ("year", list(yearly))]:
        lists = {d: yearly[d] if name == "year" else by_date[d] for d in dates}
        cons = consecutive_stability(lists, config.top_k)
        rows += [{"kind": "consecutive", **common,
                  "parameter": f"{r.previous_date:%Y-%m-%d}/{r.as_of_date:%Y-%m-%d}",
                  "as_of_date": r.as_of_date, "metric": metric, "value": getattr(r, metric),
                  "details": {"spacing": name}}
                 for r in cons.itertuples() for metric in ("jaccard", "spearman")]
    lists = {**{d: s for d, s in yearly.items() if d < last_test}, **by_date}
    changes = rank_changes(lists, dates=[end])
    list_tables.record_rank_changes(engine, run_id, changes, chosen)
    if settings.n_estimators:
        X_train, y_train, X_test, test = training_matrix(data)
        curve = stability_vs_trees(
            X_train, y_train, X_test, test[ENTITY].astype("string"),
            algorithm=settings.algorithm, n_estimators=settings.n_estimators,
            seeds=settings.seeds, k=config.top_k, params=settings.params,
            y_test=test[config.label].to_numpy(), progress=say)
        rows += [{"kind": "trees", "algorithm": r.algorithm, "k": config.top_k,
                  "parameter": f"n_estimators={r.n_estimators}", "as_of_date": last_test,
                  "metric": metric, "value": getattr(r, metric),
                  "details": {"seeds": [r.seed_a, r.seed_b], "params": settings.params,
                              "n_estimators": r.n_estimators, "fit_seconds": r.fit_seconds}}
                 for r in curve.itertuples() for metric in ("jaccard", "spearman",
                                                            "precision_at_k")]
    list_tables.record_list_stability(engine, run_id, rows)
    return pairs


def explain_last_list(data: PreparedData, engine: Engine, model_id: int, artefact: tuple[str, str],
                      config: TemporalExperiment, reasons: int = 5) -> str:
    """Store the top ``reasons`` behind each officer on the selected model's list of its last
    test as-of date (officers reviewed within the cool-off are left out, as a supervisor's
    list would leave them), in ``individual_importances``. Returns what was done, in words."""
    from rudikit.explain import ExplainError, explain, top_reasons
    from rudikit.models.artefacts import load_artefact

    pipeline = load_artefact(artefact[1], artefact[0])
    split = data.splits[-1]
    when = max(split.test.as_of_dates)
    rows = data.features[data.features["as_of_date"] == when].reset_index(drop=True)
    columns = pipeline.named_steps["encode"].input_columns
    scores = pd.Series(pipeline.predict_proba(rows[columns])[:, 1],
                       index=rows[ENTITY].astype("string").to_numpy())
    kept = exclude_reviewed(scores, list_tables.load_reviews(engine), when,
                            config.cool_off_days, config.top_k)
    position = pd.Series(np.arange(len(rows)), index=scores.index)
    top = rows.iloc[position.loc[kept["entity_id"]].to_numpy()].reset_index(drop=True)
    try:
        explanation = explain(pipeline, top[columns], background=None)
    except ExplainError as exc:
        return f"no reasons: {exc}"
    found = top_reasons(explanation, reasons)
    entity = top[ENTITY].astype("string").to_numpy()
    written = results.record_individual_importances(
        engine, model_id, explanation.method, entity, top["as_of_date"].to_numpy(), found)
    return (f"{written} reasons ({explanation.method}) for the {len(top)} officers on the list "
            f"of {when:%Y-%m-%d}")


def summary_table(result: TemporalResult, chosen: int) -> Table:
    """Precision in the top k per test as-of date and its mean, per model group (baselines
    first), for the command line."""
    table = result.precision_table()
    dates = [c for c in table.columns if c[:2] in ("19", "20")]
    config = result.experiment
    out = Table(title=f"Run {result.run_id}: {config.name}, label {config.label}: precision in "
                      f"the top {config.top_k} per test as-of date")
    for heading in ("", "group", "model", *dates, "mean"):
        out.add_column(heading, justify="left" if heading == "model" else "right")
    for group_id, row in table.iterrows():
        picked = group_id == chosen
        out.add_row("*" if picked else "", str(group_id), str(row["name"]),
                    *[f"{row[d]:.3f}" for d in dates], f"{row['mean']:.3f}",
                    style="bold green" if picked else ("dim" if row["baseline"] else None))
    return out


# --- The run ---------------------------------------------------------------------------------


def run_temporal_project(project: TemporalProject, project_dir: Path, engine: Engine,
                         progress: Progress | None, write_report: bool = True) -> Any:
    """Run a temporal project end to end; returns a :class:`rudikit.pipeline.RunResult`
    whose ``summary`` is the precision table."""
    from rudikit.pipeline import RunResult

    config = project.temporal
    started = time.perf_counter()

    def say(message: str) -> None:
        text = f"[{time.perf_counter() - started:5.0f} s] {message}"
        if progress is not None:
            progress.console.print(text, highlight=False)

    with progress if progress is not None else nullcontext():
        source = project.data.sources[0]
        say(f"loading {source.kind} from {_source_path(source, project_dir)}")
        tables, loaded = load_event_tables(project, project_dir)
        origin = "synthetic" if all(s.origin == "synthetic" for s in loaded) else "real"
        run_id = results.start_run(engine, project.name, project.config_hash(),
                                   project.model_dump(mode="json", by_alias=True), config.seed,
                                   origin)
        result = RunResult(run_id, project.name,
                           str(engine.url.render_as_string(hide_password=True)), loaded)
        try:
            for source in loaded:
                low, high = _date_range(source.frame)
                results.record_snapshot(engine, run_id, source=source.name, kind=source.kind,
                                        location=source.location, files=len(source.files),
                                        rows=len(source.frame), bad_rows=0, warnings=0,
                                        checksum=source.checksum, min_date=low, max_date=high)
            extra = consecutive_dates(config.splits()[-1].split_time,
                                      config.stability.consecutive)
            data = prepare(config, tables, cache_dir=project_dir / ".rudi" / "cache",
                           extra_dates=extra)
            say(f"{len(data.splits)} splits, {len(data.features):,} officer-dates, "
                f"{len(data.feature_config.input_columns)} features (features "
                f"{data.seconds['features']:.0f} s, labels {data.seconds['labels']:.0f} s)")
            fitted = run_temporal(config, tables, engine=engine, run_id=run_id,
                                  artefacts_dir=project_dir / ".rudi" / "models",
                                  progress=progress, data=data)
            _, chosen, reason = choose_group(fitted)
            last = fitted.metrics[(fitted.metrics["model_group_id"] == chosen)
                                  & (fitted.metrics["split_time"] == data.splits[-1].split_time)]
            model_id = int(last["model_id"].iloc[0])
            results.mark_selected(engine, model_id, reason)
            result.selection_reason = reason
            say(f"chosen: {reason}")
            pairs = list_stability(data, fitted, chosen, engine, run_id, say)
            say("seeds of the chosen model: " + "; ".join(
                f"{r.a}/{r.b} top-{config.top_k} Jaccard {r.jaccard:.3f}"
                for r in pairs.itertuples()))
            with engine.connect() as conn:
                artefact = conn.execute(select(t.models.c.artefact_hash, t.models.c.artefact_path)
                                        .where(t.models.c.id == model_id)).one()
            say(explain_last_list(data, engine, model_id, (artefact[0], artefact[1]), config))
            result.summary = summary_table(fitted, chosen)
            results.finish_run(engine, run_id, "finished")
            if write_report:
                from rudikit.reports.cards import write_run_cards
                from rudikit.reports.run_report import write_run_report

                result.report_path = write_run_report(engine, run_id,
                                                      project_dir / ".rudi" / "reports")
                write_run_cards(engine, run_id, project_dir / ".rudi" / "cards")
                results.set_report_path(engine, run_id, str(result.report_path))
        except BaseException as exc:
            results.finish_run(engine, run_id, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
    say("done")
    return result

