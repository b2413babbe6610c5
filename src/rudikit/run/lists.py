"""The steps after a temporal project's grid that judge its lists: how stable the chosen
group's list is (seeds, with the model's sources of randomness; a bootstrap of the training
officers and each data source left out; consecutive days/weeks/months/years; the
stability-vs-trees curve), the reasons behind the last list, and the command line's precision
table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table
from sqlalchemy.engine import Engine

from rudikit.config import ConsecutiveLists, Execution, TemporalExperiment
from rudikit.evaluation.stability import (
    against_reference,
    consecutive_stability,
    exclude_reviewed,
    pairwise_stability,
    rank_changes,
    trees_tasks,
)
from rudikit.models.estimators import limit_jobs, predict_scores
from rudikit.models.perturb import perturbed_tasks
from rudikit.models.randomness import randomness_sources
from rudikit.models.seeds import FittedSeed, seed_tasks
from rudikit.models.temporal import (
    ENTITY,
    Planned,
    PreparedData,
    StabilityRows,
    any_task,
    build_temporal_pipeline,
    consecutive_dates,
    stability_rows,
)
from rudikit.run.execution import ordered_results
from rudikit.run.temporal import TemporalResult
from rudikit.store import list_tables, results


@dataclass
class ListStability:
    """What :func:`list_stability` measured, for the command line: the seed pairs, the chosen
    model's sources of randomness and the perturbed lists against its list."""

    pairs: pd.DataFrame
    randomness: list[str]
    perturbations: pd.DataFrame
    alongside: list[Any] = field(default_factory=list)

    def summary(self, k: int) -> list[str]:
        """Lines for the command line: the seeds' Jaccard (and whether it could vary), then
        each perturbation's Jaccard with precision in the top ``k`` beside the chosen list's."""
        seeds = "; ".join(f"seeds {r.a}/{r.b} top-{k} Jaccard {r.jaccard:.3f}"
                          for r in self.pairs.itertuples())
        seeds += (" (no source of randomness: equal by construction)" if not self.randomness
                  else f" ({len(self.randomness)} source(s) of randomness)")
        measured = self.perturbations.dropna(subset=["jaccard"])
        if not len(measured):
            return [seeds]
        parts = []
        boot = measured[measured["kind"] == "bootstrap"]
        if len(boot):
            parts.append(f"officer bootstrap x{len(boot)} {boot['jaccard'].mean():.2f} "
                         f"(p {boot['precision_at_k'].mean():.3f})")
        parts += [f"without {r.parameter.removeprefix('source=')} {r.jaccard:.2f} "
                  f"(p {r.precision_at_k:.3f})"
                  for r in measured[measured["kind"] == "drop_source"].itertuples()]
        reference = measured["reference_precision_at_k"].iloc[0]
        return [seeds, f"perturbed lists, top-{k} Jaccard with the chosen list (precision@{k}; "
                       f"chosen {reference:.3f}): " + "; ".join(parts)]


def perturbation_stability(data: PreparedData, result: TemporalResult, chosen: int,
                           say: Callable[[str], None], rows: StabilityRows
                           ) -> Planned[pd.DataFrame]:
    """The chosen group refitted on the last split with the run's seed, on bootstrap
    resamples of the training officers and without each configured source table, each list
    compared with the chosen model's list on the split's first test date: one row per refit
    (kind, parameter, jaccard, spearman, precision_at_k, reference_precision_at_k, note,
    details). Planned: the refits are tasks of :func:`list_stability`'s batch."""
    config = result.experiment
    settings = config.stability
    planned = perturbed_tasks(data, result.grid_point(chosen), config.seed, rows,
                              resamples=settings.resamples, tables=settings.drop_sources,
                              progress=say)

    def compare(results: Iterator[Any]) -> pd.DataFrame:
        test, refits = planned.collect(results)
        if not refits:
            return pd.DataFrame(columns=["kind", "parameter", "jaccard", "spearman",
                                         "precision_at_k", "reference_precision_at_k", "note",
                                         "details"])
        entities = test[ENTITY].astype("string").to_numpy()
        labels = pd.Series(test[config.label].to_numpy(), index=entities)
        reference = result.scores(chosen, data.splits[-1].split_time)
        compared = against_reference(reference, {r.parameter: r.scores for r in refits},
                                     labels, config.top_k)
        return compared.drop(columns=["name", "k"]).assign(
            kind=[r.kind for r in refits], parameter=[r.parameter for r in refits],
            note=[r.note for r in refits],
            details=[{**r.details, "note": r.note, "features": len(r.columns)}
                     for r in refits])

    return Planned(planned.fn, planned.calls, planned.costs, compare)


def prepare_stability(data: PreparedData, experiment: TemporalExperiment,
                      columns: Sequence[str]) -> StabilityRows:
    """What :func:`list_stability` reads whichever group the audition picks (the last
    split's matrices, the consecutive dates' rows with ``columns``, the trees matrix): a run
    builds it while the grid's fits run, rather than between the grid and list stability
    with every worker idle."""
    settings = experiment.stability
    return stability_rows(
        data, extra_dates=consecutive_dates(data.splits[-1].split_time, settings.consecutive),
        columns=columns, trees=bool(settings.n_estimators))


def list_stability(data: PreparedData, result: TemporalResult, chosen: int, engine: Engine,
                   run_id: int, say: Callable[[str], None], execution: Execution | None = None,
                   rows: StabilityRows | None = None, alongside: Sequence[Planned[Any]] = ()
                   ) -> ListStability:
    """Seed (with the model's sources of randomness), perturbation, consecutive-list and trees
    stability of the chosen group, stored in ``list_stability`` in one transaction; rank
    changes on the last consecutive date stored in ``rank_changes``. The seed and perturbation
    refits, the blocks of consecutive dates and each seed's forest of the stability-vs-trees
    curve are tasks of ONE batch run where ``execution`` says, as the grid's fits are, the
    longest first (three batches one after another each ended with a worker idle).
    ``rows``: :func:`prepare_stability`'s (else built here). ``alongside``: other steps whose
    tasks join the batch (the reasons behind the last list), collected after these tables
    are stored, in order, into :attr:`ListStability.alongside`."""

    def run_each(fn: Callable[..., Any], calls: Sequence[Sequence[Any]]) -> Iterator[Any]:
        return ordered_results(execution, fn, calls)

    config = result.experiment
    settings = config.stability
    point = result.grid_point(chosen)
    last_test = data.splits[-1].split_time
    features = data.features_for(point)
    rows = rows or prepare_stability(data, config, features.input_columns)
    extra = rows.dates
    randomness = randomness_sources(build_temporal_pipeline(point, features, config.seed)[0])
    seeds = seed_tasks(data, point, settings.seeds, rows, progress=say, run_each=run_each,
                       fitted=grid_fit(data, result, chosen))
    perturbations = perturbation_stability(data, result, chosen, say, rows)
    trees: list[Planned[pd.DataFrame]] = []
    if settings.n_estimators:
        assert rows.trees is not None
        X_train, y_train, X_test, test = rows.trees
        trees.append(trees_tasks(
            X_train, y_train, X_test, test[ENTITY].astype("string"),
            algorithm=settings.algorithm, n_estimators=settings.n_estimators,
            seeds=settings.seeds, k=config.top_k, params=settings.params,
            y_test=test[config.label].to_numpy(), progress=say))
    # the results come in this order: the reasons and the forests, sent first as the longest
    # (the reasons: short, but they must not run alone at the end), then the refits, then
    # the seeds' blocks of dates (each about a second), sent last to even out the workers'
    # ends; the seeds' figures (pairs, consecutive lists, rank changes: about a second of
    # this process's work) then follow the last block
    steps: list[Planned[Any]] = [*alongside, *trees, perturbations, seeds]
    results = iter(ordered_results(execution, any_task,
                                   [(p.fn, *call) for p in steps for call in p.calls],
                                   [cost for p in steps for cost in p.costs]))
    explained = [list(islice(results, len(step.calls))) for step in alongside]
    curves = [step.collect(islice(results, len(step.calls))) for step in trees]
    perturbed = perturbations.collect(islice(results, len(perturbations.calls)))
    by_seed, by_date = seeds.collect(islice(results, len(seeds.calls)))
    pairs = pairwise_stability(by_seed, config.top_k)
    common = {"model_group_id": chosen, "algorithm": point.algorithm, "k": config.top_k}
    yearly = {d: result.scores(chosen, d) for d in sorted(result.metrics["as_of_date"].unique())}
    lists = {**{d: s for d, s in yearly.items() if d < last_test}, **by_date}
    changes = rank_changes(lists, dates=[extra[-1]])
    stored = [{"kind": "seeds", **common, "parameter": f"{r.a}/{r.b}", "as_of_date": last_test,
               "metric": metric, "value": getattr(r, metric),
               "details": {"randomness": randomness}}
              for r in pairs.itertuples() for metric in ("jaccard", "spearman")]
    stored += [{"kind": r.kind, **common, "parameter": r.parameter, "as_of_date": last_test,
                "metric": metric, "value": getattr(r, metric),
                "details": {**r.details, "reference_precision_at_k": r.reference_precision_at_k}}
               for r in perturbed.itertuples() for metric in ("jaccard", "spearman",
                                                               "precision_at_k")]
    stored += consecutive_rows(yearly, by_date, last_test, extra, settings.consecutive,
                               config.top_k, common)
    stored += [{"kind": "trees", "algorithm": r.algorithm, "k": config.top_k,
                "parameter": f"n_estimators={r.n_estimators}", "as_of_date": last_test,
                "metric": metric, "value": getattr(r, metric),
                "details": {"seeds": [r.seed_a, r.seed_b], "params": settings.params,
                            "n_estimators": r.n_estimators, "fit_seconds": r.fit_seconds}}
               for curve in curves for r in curve.itertuples()
               for metric in ("jaccard", "spearman", "precision_at_k")]
    # stored once every task is in: a refit that fails leaves neither table written
    list_tables.record_list_stability(engine, run_id, stored)
    list_tables.record_rank_changes(engine, run_id, changes, chosen)
    return ListStability(pairs, randomness, perturbed,
                         [step.collect(iter(done))
                          for step, done in zip(alongside, explained, strict=True)])


def consecutive_rows(yearly: dict[pd.Timestamp, pd.Series],
                     by_date: dict[pd.Timestamp, pd.Series], last_test: pd.Timestamp,
                     extra: Sequence[pd.Timestamp], c: ConsecutiveLists, k: int,
                     common: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`list_stability`'s rows of the consecutive lists a day, a week, a month (the
    first seed's lists after the last test date, ``by_date``) and a year apart (the grid's
    lists on its test dates, ``yearly``)."""
    end = extra[-1]
    spacing = {
        "day": [d for d in extra if end - d <= pd.Timedelta(days=c.days)],
        "week": [d for d in (last_test + pd.DateOffset(weeks=i) for i in range(c.weeks + 1))
                 if d <= end],
        "month": [last_test + pd.DateOffset(months=i) for i in range(c.months + 1)],
    }
    rows = []
    for name, dates in [*spacing.items(), ("year", list(yearly))]:
        lists = {d: yearly[d] if name == "year" else by_date[d] for d in dates}
        cons = consecutive_stability(lists, k)
        rows += [{"kind": "consecutive", **common,
                  "parameter": f"{r.previous_date:%Y-%m-%d}/{r.as_of_date:%Y-%m-%d}",
                  "as_of_date": r.as_of_date, "metric": metric, "value": getattr(r, metric),
                  "details": {"spacing": name}}
                 for r in cons.itertuples() for metric in ("jaccard", "spearman")]
    return rows


def grid_fit(data: PreparedData, result: TemporalResult, chosen: int) -> FittedSeed | None:
    """The grid's fit of group ``chosen`` on the last split as the first stability seed's
    model, when that seed is the run's (the grid fitted it with the same rows and seed, so a
    refit would give the same model): its list on the split's first test date and its saved
    bytes. None when the first seed is another."""
    seeds = result.experiment.stability.seeds
    last = data.splits[-1].name
    model = next((m for m in result.models
                  if m.model_group_id == chosen and m.split == last), None)
    if not seeds or seeds[0] != result.experiment.seed or model is None \
            or model.artefact is None:
        return None
    test = next(m["test"] for m in result.matrices if m["split"] == last)
    digest, path = model.artefact
    return FittedSeed(seeds[0], result.scores(chosen, test["as_of_date"].min()),
                      (digest, Path(path).read_bytes(), f"model file {path}"))


def last_list_plan(data: PreparedData, engine: Engine, model_id: int,
                   artefact: tuple[str, str], config: TemporalExperiment, reasons: int = 5
                   ) -> Planned[str]:
    """The top ``reasons`` behind each officer on a model's list of its last test as-of date
    (officers reviewed within the cool-off are left out, as a supervisor's list would leave
    them), planned: the scoring and the explanation are one task (:func:`last_list_reasons`,
    sent first: it is short, and it then never runs alone at the end), and ``collect`` stores
    the reasons in ``individual_importances`` and says what was done, in words."""
    when = max(data.splits[-1].test.as_of_dates)
    # a consolidated copy: memory-mapped to a local worker, not pickled column by column
    rows = data.features[data.features["as_of_date"] == when].reset_index(drop=True).copy()
    # the model's bytes, not its path: a worker on another machine cannot read this disk
    model = (artefact[0], Path(artefact[1]).read_bytes(), f"model file {artefact[1]}")
    call = (model, rows, list_tables.load_reviews(engine), when, config.cool_off_days,
            config.top_k, reasons)

    def collect(done: Iterator[Any]) -> str:
        found = next(done)
        if isinstance(found, str):
            return f"no reasons: {found}"
        method, entity, as_of, top, listed = found
        written = results.record_individual_importances(engine, model_id, method, entity,
                                                        as_of, top)
        return (f"{written} reasons ({method}) for the {listed} officers on the list "
                f"of {when:%Y-%m-%d}")

    return Planned(last_list_reasons, [call], [float("inf")], collect)


def last_list_reasons(model: tuple[str, bytes, str], rows: pd.DataFrame, reviews: pd.DataFrame,
                      when: Any, cool_off_days: int, k: int, reasons: int, *,
                      threads: int | None = None
                      ) -> str | tuple[str, np.ndarray, np.ndarray, pd.DataFrame, int]:
    """The task of :func:`last_list_plan`: the list on ``rows`` (one as-of date) of the
    ``model`` saved as (SHA-256, skops bytes, name for errors), without the officers reviewed
    within the cool-off, and the top ``reasons`` of each officer on it: (method, entity ids,
    as-of dates, reasons, officers listed), or why there are none."""
    from rudikit.explain import ExplainError, explain, top_reasons
    from rudikit.models.artefacts import artefact_from_bytes

    pipeline = artefact_from_bytes(model[1], model[0], model[2])
    limit_jobs(pipeline, threads)
    columns = pipeline.named_steps["encode"].input_columns
    scores = pd.Series(predict_scores(pipeline, rows[columns]),
                       index=rows[ENTITY].astype("string").to_numpy())
    kept = exclude_reviewed(scores, reviews, when, cool_off_days, k)
    position = pd.Series(np.arange(len(rows)), index=scores.index)
    top = rows.iloc[position.loc[kept["entity_id"]].to_numpy()].reset_index(drop=True)
    try:
        explanation = explain(pipeline, top[columns], background=None)
    except ExplainError as exc:
        return str(exc)
    return (explanation.method, top[ENTITY].astype("string").to_numpy(),
            top["as_of_date"].to_numpy(), top_reasons(explanation, reasons), len(top))


def summary_table(result: TemporalResult, chosen: int) -> Table:
    """Precision in the top k per test as-of date and its mean, per model group (baselines
    first), for the command line."""
    table = result.precision_table()
    dates = [c for c in table.columns if c[:2] in ("19", "20")]
    config = result.experiment
    out = Table(title=f"Run {result.run_id}: {config.name}, label {config.label}: precision in "
                      f"the top {config.top_k} per test as-of date", title_justify="left",
                box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    out.add_column("group", justify="right", no_wrap=True)
    out.add_column("model", overflow="fold")  # names wrap: 80 columns keep every date
    for heading in (*dates, "mean"):
        out.add_column(heading, justify="right", no_wrap=True)
    for group_id, row in table.iterrows():
        picked = group_id == chosen
        out.add_row(f"{'*' if picked else ''}{group_id}", str(row["name"]),
                    *[f"{row[d]:.3f}" for d in dates], f"{row['mean']:.3f}",
                    style="bold green" if picked else ("dim" if row["baseline"] else None))
    return out
