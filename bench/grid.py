"""Benchmark: ``rudi run examples/eis`` with its model grid on 1 and 2 local worker processes
and on a 2-worker Dask LocalCluster, interleaved and repeated, with the speed-up ratios.

The documented subset: the EIS example as shipped (real CPDB data, its seven model groups,
bootstrap, fairness audit of every list, audition, report and cards), except that

* the test years start at ``--test-from`` (default 2015-01-01: two yearly splits, 14 fits,
  instead of four splits from 2013), and
* the steps after the grid that refit the chosen model many times (the stability-vs-trees
  curve, in the driver; the resamples and the refits without each source, executor tasks) are
  switched off to keep a run short. The seed lists stay: two refits, each a task, then the
  consecutive-date lists scored in blocks of dates, a task each.

Each variant runs the ``rudi run`` command in a fresh Python process (so a local pool's start
and the workers' imports are counted) on the same project folder, whose feature cache a first
untimed run fills; only the ``execution`` section of its rudi.yaml changes between runs. The
figures stored by every run are compared with the first one's (precision in the top k per
model and list date). The machine may be shared: the load average is printed beside each run,
and so are the CPU seconds of the driver and of the workers, from which the serial fraction
(the driver's share of all CPU in the 2-worker run) and its Amdahl bound are computed: figures
that depend much less on the load than wall time.

Run: ``.venv/bin/python bench/grid.py [--repeats 2] [--test-from 2015-01-01] [--folder DIR]``
(``--folder``: reuse a project folder whose feature cache an earlier run filled). Without the
CPDB files under ../shared/data it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from rudikit.config.base import read_yaml
from rudikit.store import tables as t
from rudikit.store.engine import open_store

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "eis" / "rudi.yaml"
SHARED_DATA = REPO.parent / "shared" / "data"


def project(test_from: str) -> dict[str, Any]:
    """The EIS example, reading the shared CPDB copy, with the subset above."""
    config = read_yaml(EXAMPLE)
    config["data"]["sources"][0]["path"] = str(SHARED_DATA / "eis" / "chicago_cpdb")
    config["temporal"]["test_from"] = test_from
    config["temporal"]["stability"].update(n_estimators=[], resamples=0, drop_sources=[])
    return config


#: Runs ``rudi run`` in a child process and prints, last, the CPU seconds of that process (the
#: driver) and of its children (the local pool's workers, still alive, and any already gone)
#: as JSON.
RUN_AND_COUNT = """
import json, resource, sys
import psutil
from rudikit.cli import app
try:
    app(["run", sys.argv[1]])
except SystemExit as exc:
    if exc.code:
        raise
alive = sum(c.cpu_times().user + c.cpu_times().system
            for c in psutil.Process().children(recursive=True))
cpu = lambda who: (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(who))
print(json.dumps({"driver": cpu(resource.RUSAGE_SELF),
                  "children": alive + cpu(resource.RUSAGE_CHILDREN)}))
"""


@dataclass
class Measured:
    """One run: wall seconds, CPU seconds of the driver and of the workers, load before."""

    wall: float
    driver: float
    workers: float
    load: float

    @property
    def cpu(self) -> float:
        return self.driver + self.workers


def dask_worker_cpu(client: Any) -> float:
    """CPU seconds used so far by the cluster's worker processes."""
    import psutil

    def used() -> float:
        times = psutil.Process().cpu_times()
        return times.user + times.system

    return sum(client.run(used).values())


def run(folder: Path, config: dict[str, Any], execution: dict[str, Any],
        client: Any = None) -> Measured:
    """One ``rudi run`` of ``folder`` with ``execution``; ``client``: the Dask cluster's, whose
    workers' CPU is counted."""
    (folder / "rudi.yaml").write_text(yaml.safe_dump({**config, "execution": execution},
                                                     sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    load = os.getloadavg()[0]
    before = dask_worker_cpu(client) if client is not None else 0.0
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN_AND_COUNT, str(folder)], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"rudi run failed ({execution}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    cpu = json.loads(done.stdout.strip().splitlines()[-1])
    workers = cpu["children"] + (dask_worker_cpu(client) - before if client is not None else 0)
    return Measured(seconds, cpu["driver"], workers, load)


def stored_precision(folder: Path) -> list[list[tuple[str, str, float]]]:
    """Per run, in run order: (split, parameter, value) of every model's precision in the top
    k, in the order the models were stored."""
    engine = open_store(None, folder)
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.models.c.run_id, t.models.c.split, t.evaluations.c.parameter,
                   t.evaluations.c.value)
            .join(t.evaluations, t.evaluations.c.model_id == t.models.c.id)
            .where(t.evaluations.c.metric == "precision_at_k")
            .order_by(t.models.c.run_id, t.models.c.id, t.evaluations.c.id)).all()
    engine.dispose()
    runs: dict[int, list[tuple[str, str, float]]] = {}
    for r in rows:
        runs.setdefault(r.run_id, []).append((r.split, r.parameter, r.value))
    return list(runs.values())


def amdahl(one: list[Measured], two: list[Measured]) -> None:
    """The serial fraction and the speed-up bounds it gives, from CPU seconds (less sensitive
    to the machine's load than wall time): what the driver spends outside the tasks cannot be
    shared between workers."""
    driver = min(m.driver for m in two)
    tasks = min(m.workers for m in two)
    serial = driver / (driver + tasks)
    print(f"  serial fraction (driver CPU / all CPU, 2 local workers): {driver:.0f} s / "
          f"{driver + tasks:.0f} s = {serial:.2f}; Amdahl bound on 2 cores "
          f"x{1 / (serial + (1 - serial) / 2):.2f}")
    alone = min(m.cpu for m in one)
    print(f"  CPU of the 1-worker run {alone:.0f} s over the 2-worker run's driver + tasks/2 "
          f"{driver + tasks / 2:.0f} s: x{alone / (driver + tasks / 2):.2f} on 2 idle cores "
          f"(the 2 workers' extra CPU, {driver + tasks - alone:+.0f} s, included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--test-from", default="2015-01-01")
    parser.add_argument("--folder", type=Path, default=None,
                        help="project folder to reuse (its feature cache; no warm-up run when "
                             "it holds one); default: a temporary folder")
    args = parser.parse_args()
    if not (SHARED_DATA / "eis" / "chicago_cpdb").is_dir():
        print(f"CPDB files not found under {SHARED_DATA / 'eis'}; nothing to measure")
        return
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as tmp, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        config = project(args.test_from)
        variants = {
            "local, 1 worker": {"backend": "local", "workers": 1},
            "local, 2 workers": {"backend": "local", "workers": 2},
            "dask, 2 workers": {"backend": "dask", "scheduler": cluster.scheduler_address},
        }
        print(f"cores: {os.cpu_count()}; test years from {args.test_from}; "
              f"{args.repeats} repeat(s), interleaved")
        if not (folder / ".rudi" / "cache").is_dir():
            warm = run(folder, config, variants["local, 1 worker"])
            print(f"warm-up run (fills the feature cache): {warm.wall:.0f} s")
        earlier = len(stored_precision(folder)) if (folder / ".rudi").is_dir() else 0
        measured: dict[str, list[Measured]] = {name: [] for name in variants}
        order = []
        print(f"  {'':17s} {'wall':>7s}   {'driver CPU':>10s} {'workers CPU':>11s}   load before")
        for repeat in range(args.repeats):
            names = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for name in names:
                m = run(folder, config, variants[name],
                        client if name.startswith("dask") else None)
                measured[name].append(m)
                order.append(name)
                print(f"  {name:17s} {m.wall:7.1f} s {m.driver:9.1f} s {m.workers:10.1f} s"
                      f"   {m.load:.1f}", flush=True)
        runs = stored_precision(folder)[earlier:]
        first = runs[0]
        differ = [name for name, stored in zip(order, runs, strict=True)
                  if len(stored) != len(first) or any(
                      a[:2] != b[:2] or abs(a[2] - b[2]) > 1e-12
                      for a, b in zip(stored, first, strict=False))]
        print(f"stored precision@k of every model, {len(runs)} runs: "
              + (f"DIFFERS in {', '.join(differ)}" if differ else "identical to 1e-12"))
        base = min(m.wall for m in measured["local, 1 worker"])
        print("best of the repeats, and wall-time speed-up over 1 local worker:")
        for name, values in measured.items():
            best = min(m.wall for m in values)
            print(f"  {name:17s} {best:7.1f} s   x{base / best:.2f}")
        print("from CPU seconds:")
        amdahl(measured["local, 1 worker"], measured["local, 2 workers"])
        print(f"load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
