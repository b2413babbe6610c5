"""Benchmark: a whole ``rudi run`` (and its data card) on a 2,000-column source, before and
after the wide rule (issue 20, item 5).

The project is ``tests/test_wide.py``'s: a parquet source of ``--columns`` 0/1 ``bow_*``
columns (default 2000) and ``--rows`` rows (default 3000), logistic regression and LightGBM,
a random split. ``before`` is the code of commit ``--before`` (default a726361, the commit
this work started from), unpacked with ``git archive`` into a temporary folder; ``after`` is
this checkout's ``src``. Each run is a fresh Python process on a fresh SQLite store, timed
from ``run_project`` to the built data card (wall seconds, and the child's CPU seconds);
the two are interleaved and repeated, and the median of each and their ratio are printed.

Run: ``.venv/bin/python bench/wide_run.py [--repeat 2] [--rows 3000] [--columns 2000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Runs in the child process, on the one project folder (the same parquet file for both).
CHILD = """
import json, sys, time
from rudikit.run.develop import run_project
from rudikit.reports.data_card import build_data_card
from rudikit.store.engine import open_store
folder, url = sys.argv[1], sys.argv[2]
try:  # the report and cards, as `rudi run` writes them
    from rudikit.reports.run_report import write_run_report_and_cards
    report = {"write_report": write_run_report_and_cards}
except ImportError:  # a commit from before run_project was given its report writer
    report = {}
started = time.perf_counter()
result = run_project(folder, url=url, **report)
engine = open_store(url)
build_data_card(engine, 1, project_dir=folder)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "chosen": result.selected.algorithm,
                  "roc_auc": result.selected.metrics[("roc_auc", "")].value}))
"""


def unpack(commit: str, into: Path) -> Path:
    """``src`` of ``commit``, through ``git archive`` (nothing in the checkout changes)."""
    archive = into / "src.tar"
    subprocess.run(["git", "archive", "-o", str(archive), commit, "src"], cwd=REPO,
                   check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_once(src: Path, project: Path, store: Path) -> dict[str, object]:
    """The child's answer, with ``cpu``: its user + system CPU seconds (on a machine loaded by
    others, a steadier figure than the wall time, which includes waiting for a core)."""
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-c", CHILD, str(project), f"sqlite:///{store}"],
                         env=env, check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"cpu": round(cpu, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--columns", type=int, default=2000)
    parser.add_argument("--before", default="a726361")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "src"))
    import tests.test_wide as wide

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sources = {"before": unpack(args.before, root), "after": REPO / "src"}
        project = wide.wide_project(root / "project", rows=args.rows, width=args.columns)
        found: dict[str, list[dict[str, object]]] = {"before": [], "after": []}
        for r in range(args.repeat):
            for path, src in sources.items():  # interleaved: both once per round
                found[path].append(run_once(src, project, root / f"{path}-{r}.db"))
                print(f"round {r + 1} {path}: {found[path][-1]}", flush=True)
    print(f"{args.rows} rows x {args.columns} bow columns, median of {args.repeat} interleaved "
          "rounds (run + data card)")
    medians = {}
    for path, runs in found.items():
        medians[path] = {k: statistics.median(float(x[k]) for x in runs)  # type: ignore[arg-type]
                         for k in ("seconds", "cpu")}
        print(f"{path:<8}{medians[path]['seconds']:>9.1f} s wall{medians[path]['cpu']:>9.1f} s CPU"
              f"  chosen {runs[0]['chosen']}, ROC AUC {runs[0]['roc_auc']:.3f}")
    print("after / before: " + ", ".join(
        f"{k} {medians['after'][k] / medians['before'][k]:.2f}" for k in ("seconds", "cpu")))


if __name__ == "__main__":
    main()
