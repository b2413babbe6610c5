"""Benchmark: ``rudi run examples/eis`` with its model grid on one core, in the ``rudi``
process with its default threads, on 2 local worker processes and on a 2-worker Dask
LocalCluster, interleaved and repeated, with the speed-up ratios.

The documented subset: the EIS example as shipped (real CPDB data, its seven model groups,
bootstrap, fairness audit of every list, audition, report and cards), except that

* the test years start at ``--test-from`` (default 2015-01-01: two yearly splits, 14 fits,
  instead of four splits from 2013), and
* the steps after the grid that refit the chosen model many times (the stability-vs-trees
  curve, in the driver; the resamples and the refits without each source, executor tasks) are
  switched off to keep a run short. The seed lists stay: the second seed's refit (the first
  seed's model is the grid's own fit) and the consecutive-date lists scored in blocks of
  dates, a task each, in one batch.

``--whole`` runs the example as shipped instead: test years from 2013 (four yearly splits, 28
fits) and every list-stability step (the seed lists, three bootstrap resamples and the four
refits without a source, and the stability-vs-trees curve: two seeds of a forest grown to 3,000
trees, each seed a task). It takes about five minutes on 2 workers and twice that on one core.

The two runs without workers (``workers: 1``, every fit in the ``rudi`` process):

* ``1 worker, 1 core``: ``threads_per_task: 1`` and the process pinned to one CPU (its
  affinity, set before anything is imported, so BLAS, OpenMP and joblib count one core). This
  is issue 18's baseline, "fits every model group on every split one after another on one
  core", and the 1.7x target is the 2-worker run's speed-up over it: the target asks what
  the executor gains over a run on one core.
* ``1 worker, threads``: the default threads (``threads_per_task: auto`` = the cores // the
  workers, so 2 threads here): the forest's trees and BLAS already use both cores for part
  of the work. The ratios over it are printed too; they are the smaller ones.

Each variant runs the ``rudi run`` command in a fresh Python process (so a local pool's start
and the workers' imports are counted) on the same project folder (the Dask variant on a
cluster started before its run and stopped after it, :func:`dask_cluster`), whose feature
cache a first
untimed run fills; only the ``execution`` section of its rudi.yaml changes between runs. The
figures stored by every run are compared with the first one's (precision in the top k per
model and list date). The machine may be shared: the load average is printed beside each run,
and so are the CPU seconds of the driver and of the workers, from which the serial fraction
(the driver's share of all CPU in the 2-worker run) and its Amdahl bound are computed: figures
that depend much less on the load than wall time.

Run: ``.venv/bin/python bench/grid.py [--repeats 2] [--test-from 2015-01-01 | --whole]
[--folder DIR] [--src DIR] [--variants one-core-and-local]`` (``--folder``: reuse a project
folder whose feature cache an earlier run filled; ``--src``: run another checkout's rudikit,
e.g. main's, for a before figure; ``--variants one-core-and-local``: only the one-core run
and 2 local workers, the target's ratio). Without the CPDB files under ../shared/data it says
so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def project(test_from: str | None) -> dict[str, Any]:
    """The EIS example, reading the shared CPDB copy, with the subset above; ``test_from``
    None: the example as shipped (``--whole``)."""
    config = read_yaml(EXAMPLE)
    config["data"]["sources"][0]["path"] = str(SHARED_DATA / "eis" / "chicago_cpdb")
    if test_from is not None:
        config["temporal"]["test_from"] = test_from
        config["temporal"]["stability"].update(n_estimators=[], resamples=0, drop_sources=[])
    return config


#: Runs ``rudi run`` in a child process (pinned to the CPUs its second argument lists, if any,
#: before numpy or joblib count them) and prints, last, the CPU seconds of that process (the
#: driver) and of its children (the local pool's workers, still alive, and any already gone)
#: as JSON.
RUN_AND_COUNT = """
import json, os, resource, sys
if len(sys.argv) > 2:
    os.sched_setaffinity(0, {int(c) for c in sys.argv[2].split(",")})
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


@contextmanager
def dask_cluster(src: Path) -> Iterator[Any]:
    """A client of a 2-worker Dask cluster started for one Dask run and stopped after it, as
    the README's "Scaling out" starts one: ``dask scheduler`` and ``dask worker --nworkers 2
    --nthreads 1``, in processes that import rudikit from ``src`` (the run's own code: a
    LocalCluster's workers import the benchmark's, so a before run sent old tasks to new
    code). Not left running beside the other runs: idle, a 2-worker cluster uses about 5% of
    a core (5.5% measured over 20 s), which the 2-worker local runs lose on two busy cores
    and the one-core run, pinned beside it, does not. Its start is not timed: a cluster runs
    before a team points rudikit at it."""
    import socket

    from distributed import Client

    with socket.socket() as probe:  # a free port for the scheduler
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(src), os.environ.get("PYTHONPATH", "")])}
    started = [subprocess.Popen(
        [sys.executable, "-m", f"distributed.cli.{command}", *arguments, "--no-dashboard"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for command, arguments in [
            ("dask_scheduler", ["--host", "127.0.0.1", "--port", str(port)]),
            ("dask_worker", [address, "--nworkers", "2", "--nthreads", "1"])]]
    try:
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            yield client
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=60)


def run(folder: Path, config: dict[str, Any], execution: dict[str, Any],
        client: Any = None, cpus: str | None = None, src: Path = REPO / "src") -> Measured:
    """One ``rudi run`` of ``folder`` with ``execution`` and the rudikit in ``src``;
    ``client``: the Dask cluster's, whose workers' CPU is counted; ``cpus``: the CPUs the run
    is pinned to ("0"), default any."""
    (folder / "rudi.yaml").write_text(yaml.safe_dump({**config, "execution": execution},
                                                     sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(src), os.environ.get("PYTHONPATH", "")])}
    load = os.getloadavg()[0]
    before = dask_worker_cpu(client) if client is not None else 0.0
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN_AND_COUNT, str(folder),
                           *([cpus] if cpus else [])], env=env, capture_output=True, text=True)
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


#: The variants' names; the first is the issue's one-core baseline.
ONE_CORE = "1 worker, 1 core"
THREADED = "1 worker, threads"
LOCAL_2 = "local, 2 workers"
DASK_2 = "dask, 2 workers"


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
    print(f"  CPU of the one-core run {alone:.0f} s over the 2-worker run's driver + tasks/2 "
          f"{driver + tasks / 2:.0f} s: x{alone / (driver + tasks / 2):.2f} on 2 idle cores "
          f"(the 2 workers' extra CPU, {driver + tasks - alone:+.0f} s, included)")


def uptime() -> str:
    """``uptime``'s line: the load beside the figures."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cpu_by_role() -> str:
    """The busiest processes now (top's %CPU, nice, command): other helpers' work on a
    shared machine."""
    lines = subprocess.run(["top", "-b", "-n", "1", "-c", "-w", "200", "-o", "%CPU"],
                           capture_output=True, text=True).stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith("PID"))
    rows = [line.split(None, 11) for line in lines[head + 1:head + 6]]
    return "".join(f"\n    {r[8]:>5s}% nice {r[3]:>3s}  {r[11][:90]}" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--test-from", default="2015-01-01")
    parser.add_argument("--whole", action="store_true",
                        help="the example as shipped: its test years from 2013 and every "
                             "list-stability step (ignores --test-from)")
    parser.add_argument("--folder", type=Path, default=None,
                        help="project folder to reuse (its feature cache; no warm-up run when "
                             "it holds one); default: a temporary folder")
    parser.add_argument("--variants", choices=["all", "one-core-and-local", "dask"],
                        default="all",
                        help="one-core-and-local: only the one-core baseline and 2 local "
                             "workers (the target's ratio, in half the time); dask: the "
                             "one-core baseline and the Dask cluster")
    parser.add_argument("--src", type=Path, nargs="+", default=[REPO / "src"],
                        help="the rudikit source tree(s) the runs use, each variant run with "
                             "each in turn (another checkout's src first, to measure before "
                             "and after a change in the same session); default: this one's")
    args = parser.parse_args()
    if not (SHARED_DATA / "eis" / "chicago_cpdb").is_dir():
        print(f"CPDB files not found under {SHARED_DATA / 'eis'}; nothing to measure")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        config = project(None if args.whole else args.test_from)
        one_cpu = str(min(os.sched_getaffinity(0)))
        variants: dict[str, tuple[dict[str, Any], str | None]] = {
            ONE_CORE: ({"backend": "local", "workers": 1, "threads_per_task": 1}, one_cpu),
            THREADED: ({"backend": "local", "workers": 1}, None),
            LOCAL_2: ({"backend": "local", "workers": 2}, None),
            DASK_2: ({"backend": "dask"}, None),  # the scheduler: dask_cluster()'s
        }
        if args.variants != "all":
            variants = {name: variants[name] for name in (
                ONE_CORE, LOCAL_2 if args.variants == "one-core-and-local" else DASK_2)}
        trees = {f"src{i}": src for i, src in enumerate(args.src)} if len(args.src) > 1 \
            else {"": args.src[0]}
        print(f"rudikit from {', '.join(f'{k} {v}' for k, v in trees.items())}; cores: "
              f"{os.cpu_count()}; "
              + ("the whole example" if args.whole else f"test years from {args.test_from}")
              + f"; {args.repeats} repeat(s), "
              f"interleaved; {ONE_CORE!r} pinned to CPU {one_cpu}")
        print(f"before: {uptime()}\n  busiest processes: {cpu_by_role()}")
        if not (folder / ".rudi" / "cache").is_dir():
            warm = run(folder, config, {"backend": "local", "workers": 1}, src=args.src[-1])
            print(f"warm-up run (fills the feature cache): {warm.wall:.0f} s")
        earlier = len(stored_precision(folder)) if (folder / ".rudi").is_dir() else 0
        measured: dict[tuple[str, str], list[Measured]] = {}
        order = []
        print(f"  {'':24s} {'wall':>7s}   {'driver CPU':>10s} {'workers CPU':>11s}   load "
              "before")
        for repeat in range(args.repeats):
            names = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for name in names:
                execution, cpus = variants[name]
                for tree, src in trees.items():
                    if name == DASK_2:
                        with dask_cluster(src) as client:
                            m = run(folder, config,
                                    {**execution, "scheduler": client.scheduler.address},
                                    client, cpus, src)
                    else:
                        m = run(folder, config, execution, None, cpus, src)
                    measured.setdefault((tree, name), []).append(m)
                    order.append(f"{tree} {name}")
                    print(f"  {tree:6s}{name:18s} {m.wall:7.1f} s {m.driver:9.1f} s "
                          f"{m.workers:10.1f} s   {m.load:.1f}", flush=True)
        runs = stored_precision(folder)[earlier:]
        if not runs:  # --repeats 0: the warm-up alone (a folder for later runs)
            return
        first = runs[0]
        differ = [name for name, stored in zip(order, runs, strict=True)
                  if len(stored) != len(first) or any(
                      a[:2] != b[:2] or abs(a[2] - b[2]) > 1e-12
                      for a, b in zip(stored, first, strict=False))]
        print(f"stored precision@k of every model, {len(runs)} runs: "
              + (f"DIFFERS in {', '.join(differ)}" if differ else "identical to 1e-12"))
        print("best of the repeats; speed-up over the one-core run (the issue's baseline and "
              "target: >= 1.7x) and over the 1-worker run with its default threads:")
        for tree in trees:
            best = {name: min(m.wall for m in measured[tree, name]) for name in variants}
            for name, wall in best.items():
                over_threads = f"x{best[THREADED] / wall:.2f}" if THREADED in best else ""
                print(f"  {tree:6s}{name:18s} {wall:7.1f} s   x{best[ONE_CORE] / wall:.2f}   "
                      + over_threads)
            if LOCAL_2 in variants:
                print(f"  {tree} from CPU seconds:")
                amdahl(measured[tree, ONE_CORE], measured[tree, LOCAL_2])
        print(f"after: {uptime()}\n  busiest processes: {cpu_by_role()}")


if __name__ == "__main__":
    main()
