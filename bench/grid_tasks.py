"""Benchmark: the EIS grid's fit tasks alone, one after another in one process on one core
against the same tasks on 2 local worker processes (and a 2-worker Dask LocalCluster),
interleaved and repeated: the executor's own speed-up, without the driver's steps before and
after the grid that ``bench/grid.py`` times with it (loading, features, audition, list
stability, report).

The tasks are exactly ``rudi run``'s: the project folder is read as ``rudi run`` reads it, the
splits' rows and the grid come from :class:`rudikit.run.temporal.TemporalLists`, and each task
is :func:`rudikit.run.engine.score_task` through :func:`rudikit.run.execution.ordered_results`.
Nothing is stored. Each variant runs in a fresh process (a local pool's start and its workers'
imports are counted). CPU seconds of the tasks themselves and of every process are printed
beside the wall time: the workers' CPU outside the tasks is their start and imports.

Run: ``.venv/bin/python bench/grid_tasks.py FOLDER [--repeats 2]``, FOLDER a project folder of
``bench/grid.py`` (``--folder``), whose feature cache a run has filled. Without the CPDB files
under ../shared/data it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def timed_task(scoring: Any, entry: Any, rows: Any, *, threads: int | None = None
               ) -> tuple[float, int]:
    """One grid task; (its CPU seconds in the process that ran it, that process's id)."""
    from rudikit.run.engine import score_task

    started = time.process_time()
    score_task(scoring, entry, rows, threads=threads)
    return time.process_time() - started, os.getpid()


def child(folder: Path, variant: str, scheduler: str | None) -> None:
    """Run the grid's tasks as ``variant`` says; print wall, CPU and per-process figures."""
    if variant == "one":
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import psutil

    from rudikit.config import Execution
    from rudikit.config.project import load_project
    from rudikit.data.event_tables import load_event_tables
    from rudikit.run.execution import ordered_results
    from rudikit.run.temporal import TemporalLists

    project = load_project(folder)
    tables, _ = load_event_tables(project, folder)
    lists = TemporalLists(project.temporal, tables, folder / ".rudi" / "bench-models",
                          project.fairness, folder / ".rudi" / "cache")
    lists.prepare(lambda _: None)
    scoring = lists.scoring()
    calls, costs = [], []
    for rows in lists.split_rows():
        for entry in lists.grid():  # the same rows object: sent to a cluster once
            calls.append((scoring, entry, rows))
            costs.append(entry.point.expected_cost(len(rows.y_train)))
    execution = {"one": Execution(workers=1, threads_per_task=1),
                 "local": Execution(workers=2, threads_per_task=1),
                 "dask": Execution(backend="dask", scheduler=scheduler)}[variant]
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    done = list(ordered_results(execution, timed_task, calls, costs))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    workers = sum(c.cpu_times().user + c.cpu_times().system
                  for c in psutil.Process().children(recursive=True))
    print(json.dumps({
        "wall": wall, "tasks": len(done), "task_cpu": sum(cpu for cpu, _ in done),
        "driver_cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "workers_cpu": workers, "processes": len({pid for _, pid in done})}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.folder, args.child, args.scheduler)
        return
    if not (SHARED_DATA / "eis" / "chicago_cpdb").is_dir():
        print(f"CPDB files not found under {SHARED_DATA / 'eis'}; nothing to measure")
        return
    if not (args.folder / ".rudi" / "cache").is_dir():
        sys.exit(f"{args.folder}: no feature cache; run bench/grid.py --folder {args.folder} "
                 "first")
    from distributed import Client, LocalCluster

    names = {"one": "1 process, 1 core", "local": "local, 2 workers", "dask": "dask, 2 workers"}
    measured: dict[str, list[dict[str, float]]] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        print(f"{args.folder}: {args.repeats} repeat(s), interleaved; load before "
              f"{os.getloadavg()[0]:.1f}")
        print(f"  {'':20s} {'wall':>8s} {'task CPU':>9s} {'workers CPU':>12s} "
              f"{'driver CPU':>11s}  load")
        for repeat in range(args.repeats):
            order = list(names) if repeat % 2 == 0 else list(reversed(names))
            for variant in order:
                load = os.getloadavg()[0]
                client.restart()  # fresh Dask workers: their imports count, as on a pool
                done = subprocess.run(
                    [sys.executable, __file__, str(args.folder), "--child", variant,
                     "--scheduler", cluster.scheduler_address],
                    capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
                m = json.loads(done.stdout.strip().splitlines()[-1])
                measured.setdefault(variant, []).append(m)
                workers = m["workers_cpu"] if variant != "dask" else float("nan")
                print(f"  {names[variant]:20s} {m['wall']:7.1f} s {m['task_cpu']:8.1f} s "
                      f"{workers:11.1f} s {m['driver_cpu']:10.1f} s  {load:.1f}", flush=True)
    best = {v: min(m["wall"] for m in ms) for v, ms in measured.items()}
    print(f"best of {args.repeats}; speed-up of the grid's tasks over one core (load after "
          f"{os.getloadavg()[0]:.1f}):")
    for variant, wall in best.items():
        print(f"  {names[variant]:20s} {wall:7.1f} s   x{best['one'] / wall:.2f}")


if __name__ == "__main__":
    main()
