"""Benchmark: ``rudi run examples/eis`` with its model grid on 1 and 2 local worker processes
and on a 2-worker Dask LocalCluster, interleaved and repeated, with the speed-up ratios.

The documented subset: the EIS example as shipped (real CPDB data, its seven model groups,
bootstrap, fairness audit of every list, audition, report and cards), except that

* the test years start at ``--test-from`` (default 2015-01-01: two yearly splits, 14 fits,
  instead of four splits from 2013), and
* the steps after the grid that refit the chosen model (the stability-vs-trees curve, the
  resamples and the refits without each source) are switched off: they run in the driver, one
  after another, and are not what this bench measures. The seed lists (two refits) stay.

Each variant runs the ``rudi run`` command in a fresh Python process (so a local pool's start
and the workers' imports are counted) on the same project folder, whose feature cache a first
untimed run fills; only the ``execution`` section of its rudi.yaml changes between runs. The
figures stored by every run are compared with the first one's (precision in the top k per
model and list date). The machine may be shared: the load average is printed beside each run.

Run: ``.venv/bin/python bench/grid.py [--repeats 2] [--test-from 2015-01-01]``. Without the
CPDB files under ../shared/data it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
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


def run(folder: Path, config: dict[str, Any], execution: dict[str, Any]) -> float:
    """Wall seconds of one ``rudi run`` of ``folder`` with ``execution``."""
    (folder / "rudi.yaml").write_text(yaml.safe_dump({**config, "execution": execution},
                                                     sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rudikit.cli", "run", str(folder)], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"rudi run failed ({execution}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--test-from", default="2015-01-01")
    args = parser.parse_args()
    if not (SHARED_DATA / "eis" / "chicago_cpdb").is_dir():
        print(f"CPDB files not found under {SHARED_DATA / 'eis'}; nothing to measure")
        return
    from distributed import LocalCluster

    with tempfile.TemporaryDirectory() as tmp, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster:
        folder = Path(tmp)
        config = project(args.test_from)
        variants = {
            "local, 1 worker": {"backend": "local", "workers": 1},
            "local, 2 workers": {"backend": "local", "workers": 2},
            "dask, 2 workers": {"backend": "dask", "scheduler": cluster.scheduler_address},
        }
        print(f"cores: {os.cpu_count()}; test years from {args.test_from}; "
              f"{args.repeats} repeat(s), interleaved")
        started = time.perf_counter()
        run(folder, config, variants["local, 1 worker"])  # fills the feature cache
        print(f"warm-up run (features cached): {time.perf_counter() - started:.0f} s")
        times: dict[str, list[float]] = {name: [] for name in variants}
        order = []
        for repeat in range(args.repeats):
            names = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for name in names:
                load = os.getloadavg()[0]
                seconds = run(folder, config, variants[name])
                times[name].append(seconds)
                order.append(name)
                print(f"  {name:17s} {seconds:7.1f} s   (load average before: {load:.1f})",
                      flush=True)
        runs = stored_precision(folder)
        first = runs[0]
        differ = [name for name, stored in zip(["warm-up", *order], runs, strict=True)
                  if len(stored) != len(first) or any(
                      a[:2] != b[:2] or abs(a[2] - b[2]) > 1e-12
                      for a, b in zip(stored, first, strict=False))]
        print(f"stored precision@k of every model, {len(runs)} runs: "
              + (f"DIFFERS in {', '.join(differ)}" if differ else "identical to 1e-12"))
        base = min(times["local, 1 worker"])
        print("best of the repeats, and speed-up over 1 local worker:")
        for name, values in times.items():
            print(f"  {name:17s} {min(values):7.1f} s   x{base / min(values):.2f}")
        print(f"load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
