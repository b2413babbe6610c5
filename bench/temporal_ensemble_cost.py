"""Benchmark: the cost of a temporal ensemble on the EIS example (real CPDB data).

The EIS example as shipped (its seven model groups, bootstrap, fairness audit of every list)
with ``test_from`` 2015-01-01 (two yearly splits; the 2016 split's ensemble chooses its members
on the 2015 split, the 2015 split has no earlier one), fitted once through the run engine. Then,
interleaved and repeated on the same prepared rows: the ensemble step (3 members: load them,
encode, score, evaluate, audit and store; with ``--stack`` also the stack, which refits each
member on five folds of the training rows, so about 5 x 3 grid fits) against one grid fit of
the same split measured beside it (the example's logistic regression group, fitted, scored,
evaluated and stored the same way). Printed: each one's median seconds and the ratio, and the
load average. The features are cached in ``--cache`` (outside the repository) between runs.

Run: ``.venv/bin/python bench/temporal_ensemble_cost.py [--repeats 2] [--stack]``. Without the
CPDB files under ../shared/data it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rudikit.config import TemporalProject, load_project
from rudikit.data.event_tables import load_event_tables
from rudikit.models.estimators import GridPoint
from rudikit.run.engine import fit_grid, fit_score_record
from rudikit.run.temporal import TemporalLists
from rudikit.store import results
from rudikit.store.engine import open_store

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "eis" / "chicago_cpdb"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--stack", action="store_true", help="measure the stack too")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "rudikit_ensemble_bench_cache")
    args = parser.parse_args()
    methods = ["probability_average", "rank_average"] + ["stack"] * args.stack
    if not SHARED_DATA.exists():
        print(f"no CPDB files at {SHARED_DATA}; nothing measured")
        return
    os.environ.setdefault("RUDI_DATA_DIR", str(SHARED_DATA.parents[1]))
    project = load_project(REPO / "examples" / "eis")
    assert isinstance(project, TemporalProject)
    config = project.temporal.model_copy(update={"test_from": "2015-01-01"})
    project = project.model_copy(update={"temporal": config})
    work = Path(tempfile.mkdtemp(prefix="ens_bench_"))
    tables, _ = load_event_tables(project, REPO / "examples" / "eis")
    engine = open_store(f"sqlite:///{work / 'rudi.db'}")
    run_id = results.start_run(engine, config.name, "bench", {}, config.seed, "real")
    lists = TemporalLists(config, tables, work / "models", project.fairness, args.cache)
    lists.prepare(say)
    lists.ensembles = [(GridPoint("ensemble", {"members": 3, "method": m}), m)
                       for m in methods]
    started = time.perf_counter()
    _, group_ids, fitted = fit_grid(lists, engine, run_id)
    grid_seconds = time.perf_counter() - started
    say(f"grid: {len(fitted)} fits in {grid_seconds:.1f} s (once)")
    scoring = lists.scoring()
    rows = lists.rows[-1]
    baseline = next((e, g) for e, g in zip(lists.entries, group_ids, strict=True)
                    if e.point.algorithm == "logistic_regression")
    held = list(lists.rows)
    times: dict[str, list[float]] = {"one grid fit (logistic regression)": [],
                                     **{f"ensemble {m}": [] for m in methods}}
    for _ in range(args.repeats):
        started = time.perf_counter()
        fit_score_record(engine, run_id, baseline[1], baseline[0], rows, build=scoring.build,
                         evaluate=scoring.evaluate, assess=scoring.assess,
                         artefacts_dir=lists.artefacts_dir)
        times["one grid fit (logistic regression)"].append(time.perf_counter() - started)
        everything = lists.ensembles
        for point in everything:
            lists.ensembles, lists.rows = [point], held
            started = time.perf_counter()
            made = lists.fit_ensembles(engine, run_id, fitted, say)
            times[f"ensemble {point[1]}"].append(time.perf_counter() - started)
            assert len(made) == 1, made  # the 2016 split only
        lists.ensembles = everything
    base = statistics.median(times["one grid fit (logistic regression)"])
    say(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"median of {args.repeats}, split {rows.name} ({len(rows.y_train):,} training rows, "
        f"{len(rows.y_test):,} test rows)")
    for name, values in times.items():
        median = statistics.median(values)
        say(f"{name:40s} {median:7.2f} s  x{median / base:5.2f} of one grid fit  "
            f"(each: {', '.join(f'{v:.1f}' for v in values)})")


def say(message: str) -> None:
    print(message, flush=True)  # progress shows as it happens when the output is a file


if __name__ == "__main__":
    main()
