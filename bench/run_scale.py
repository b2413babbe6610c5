"""Benchmark: ``rudi run`` on the seeded synthetic stop-and-search generator at growing row
counts: wall time, peak memory and the ratio per 10x of rows.

The project is the stop-and-search example (its label, features, fairness audit and
requirements, mitigation, 500-replicate bootstrap, report) on ``kind: synthetic_stop_search``
with ``rows_per_month`` set so the three default months hold ``--rows`` rows, and a lean grid
(the per-object baseline, one logistic regression, one LightGBM) on the ``last_month`` split
only: the bench measures how the run grows with rows, not the grid's width.

Each size runs ``python -m rudikit.cli run`` in a fresh process. Peak memory is given three
ways: the largest resident set of any one process (``ru_maxrss`` from ``wait4``), and the peaks
of the whole process tree's (joblib workers included) summed resident sets and summed
proportional set sizes (``Pss`` of ``/proc/<pid>/smaps_rollup``, which shares a page between
the processes mapping it, so the libraries the workers share are not counted twice), sampled
every 0.2 s. The PSS sum is the honest figure for the tree. With ``--src`` another checkout's
``src`` is run (e.g. the commit before a change, from a temporary ``git worktree``), so
before/after figures come from one command.

Run: ``.venv/bin/python bench/run_scale.py [--rows 100000 1000000] [--src ../other/src]``.
Targets on 2 cores: 1M rows under 5 min and 2 GB, 5M under 25 min and 6 GB, each 10x step at
most 11x in time. The machine may be shared: the load average is printed beside each run.

Measured 2026-12-04 on branch h-scale2, after the bootstrap stopped sorting the scores
again for every block of resamples (which grew with the square of the test rows), under
``flock /work/bench.lock`` (``--rows 100000 1000000``, then ``--rows 5000000`` in a second
locked job; load average 8.9-10.4 from other helpers' niced work). bench/RESULTS-issue18-scale.md
has the profile, the stored-figure comparison and two later runs with the text also loaded
as categoricals (1M -> 5M x5.4 and x4.7, 5M largest process 3.15 GB). This one:

====== ========= ================ ========== ========== =============
rows   wall      largest process  tree RSS   tree PSS   time ratio
====== ========= ================ ========== ========== =============
100k   17.6 s    0.65 GB          1.52 GB    1.22 GB
1M     91.1 s    1.08 GB          2.48 GB    2.17 GB    x5.2 / x10
5M     444.7 s   4.04 GB          6.61 GB    6.23 GB    x4.9 / x5
====== ========= ================ ========== ========== =============

Before (branch h-mem, load 3.5-3.9): 100k 15.0 s, 1M 94.9 s, 5M 601.7 s (x6.3 for x5 rows,
about x14 per 10x). Time: met (1M under 5 min, 5M under 25 min, x5.2 for 10x and x4.9 for
5x, about x9.7 per 10x). Memory: met for the largest process (1.08 GB at 1M against 2 GB,
4.04 GB at 5M against 6 GB).

The process tree (branch h-mem, 2026-12-05, nice 19 as the brief runs it, under the lock;
other helpers' work on the cores, so the wall times are not comparable). The towns are looked
up without reverse_geocode's 97 MB of dicts per process, and the driver gives back its freed
memory before the fits (bench/RESULTS-issue18-scale.md, "The process tree's memory"):

====== ====== ========= ================ ========== ========== ==================
rows   code   wall      largest process  tree RSS   tree PSS   load before, after
====== ====== ========= ================ ========== ========== ==================
1M     main   479.4 s   1.52 GB          2.52 GB    2.23 GB    4.1, 7.3
1M     h-mem  273.7 s   1.50 GB          2.28 GB    1.97 GB    5.0, 5.1
5M     h-mem  758.7 s   4.89 GB          6.65 GB    6.31 GB    4.1, 1.7
====== ====== ========= ================ ========== ========== ==================

1M is under 2 GB (without the brief's 10-15% margin); 5M is not under 6 GB: its peak is
elsewhere (the largest process, 4.89 GB, not profiled yet).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from rudikit.config.base import read_yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "stop_search" / "rudi.yaml"
MONTHS = 3  # the generator's default months
PAGE = os.sysconf("SC_PAGE_SIZE")


def project(rows: int) -> dict[str, Any]:
    """The stop-and-search example on ``rows`` synthetic rows with the lean grid above."""
    config = read_yaml(EXAMPLE)
    config["data"]["sources"] = [{"name": "searches", "kind": "synthetic_stop_search",
                                  "seed": 0, "rows_per_month": -(-rows // MONTHS)}]
    config["splits"] = [s for s in config["splits"] if s["name"] == "last_month"]
    config["models"] = [
        config["models"][0],
        {"algorithm": "logistic_regression", "params": {"C": 1.0}},
        {"algorithm": "lightgbm", "params": {"n_estimators": 200, "learning_rate": 0.05,
                                             "num_leaves": 31, "min_child_samples": 50}},
    ]
    config.pop("monitoring", None)
    return config


def tree_memory(root: int) -> tuple[int, int]:
    """(summed resident bytes, summed proportional set size) of ``root`` and all its
    descendants, from ``/proc``. The PSS splits each shared page (libraries, joblib's memmapped
    arrays, pages a forked worker still shares) between the processes mapping it, so its sum
    is what the tree really holds; the RSS sum counts a shared page once per process."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    rss = pss = 0
    for pid in tree:
        try:
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            pss += next(int(line.split()[1]) * 1024 for line in
                        Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                        if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return rss, pss


def run(folder: Path, src: Path) -> tuple[float, int, int, int]:
    """(wall seconds, largest process's peak bytes, process tree's peak summed RSS, its peak
    summed PSS) of one run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(src), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "rudikit.cli", "run", str(folder)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, pss = tree_memory(child.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert child.stdout is not None
    output = child.stdout.read()  # drained as it comes, so the child never blocks on a pipe
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.exit(f"rudi run failed:\n{output[-4000:]}")
    return seconds, usage.ru_maxrss * 1024, peak[0], peak[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--src", type=Path, default=REPO / "src",
                        help="the rudikit source to run (default: this checkout's)")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; source: {args.src.resolve()}")
    results: list[tuple[int, float]] = []
    for rows in sorted(args.rows):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "rudi.yaml").write_text(yaml.safe_dump(project(rows), sort_keys=False))
            load = os.getloadavg()[0]
            seconds, largest, tree, pss = run(folder, args.src)
        step = ""
        if results:
            before_rows, before_seconds = results[-1]
            step = (f"   x{seconds / before_seconds:.1f} time for x{rows / before_rows:.0f} "
                    "rows")
        results.append((rows, seconds))
        print(f"{rows:>10,} rows  {seconds:7.1f} s  largest process {largest / 2**30:5.2f} GB  "
              f"process tree {tree / 2**30:5.2f} GB RSS, {pss / 2**30:5.2f} GB PSS  "
              f"(load before: {load:.1f}, after: {os.getloadavg()[0]:.1f}){step}", flush=True)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"this process's peak: {own:.2f} GB")


if __name__ == "__main__":
    main()
