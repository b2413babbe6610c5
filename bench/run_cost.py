"""Figure: what a hyperparameter search and an ensemble cost (issue 20, "Search and ensemble
cost"): wall time and peak memory of ``rudi run`` on a copy of an example, as shipped and with
the search/ensemble variant of ``bench/RESULTS-issue20.md``.

Each run is ``nice /usr/bin/time -v rudi run COPY`` on a fresh copy of the example's
``rudi.yaml`` in a temporary folder (a fresh SQLite store; the example is not changed), with
``RUDI_DATA_DIR`` pointing at ../shared/data. It prints the wall time, the peak resident memory
(``Maximum resident set size``: the largest single process, the driver or one loky worker; the
default ``execution: {workers: auto}`` runs two on this machine), the CPU seconds (user +
system of the run and the workers it waited for: steadier than the wall time on a loaded
machine), the 1-minute load average
before and after, and the chosen model line of the run's output.

Run: ``.venv/bin/python bench/run_cost.py stop_search shipped after`` (the example, then one or
more variants, measured one after another; ``--repeat 2`` interleaves them twice). Variants:

* ``shipped``: the example as it is;
* ``after``: the example with the search and ensemble of the results note (:data:`VARIANTS`);
* ``subset``, ``subset_after`` (``eis`` only): the same without the stability extras
  (:func:`_eis_subset`), the documented subset the note measures on a busy machine;
* ``subset_quarterly``, ``subset_quarterly_after`` (``eis`` only): those with four test lists a
  year (:func:`_eis_quarterly`), for the quarterly-list mean.

``--features-only DIR`` builds a variant's feature cache into ``DIR/.rudi/cache`` without
fitting (to pass as ``--cache`` to runs measured side by side); ``--keep DIR`` keeps each run's
folder (its SQLite store holds every list's precision: ``bench/eis_lists.py`` tabulates it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RUDI_DATA_DIR", ROOT.parent / "shared" / "data"))
#: ``rudi`` from this checkout's source (with PYTHONPATH=src, also in a git worktree).
RUDI = [sys.executable, "-m", "rudikit.cli"]

#: The stop-and-search search space (as bench/stop_search_search.py).
LIGHTGBM_SPACE = {"n_estimators": {"int": [100, 800], "log": True},
                  "learning_rate": {"float": [0.01, 0.1], "log": True},
                  "num_leaves": {"int": [7, 63], "log": True},
                  "min_child_samples": {"int": [10, 200], "log": True},
                  "subsample": 0.8, "subsample_freq": 1,
                  "colsample_bytree": {"float": [0.4, 1.0]},
                  "reg_lambda": {"float": [0.001, 10.0], "log": True}}
#: COMPAS: ~4,000 training people and ~850 positives, so shallower trees and more leaves' rows.
COMPAS_SPACE = {"n_estimators": {"int": [100, 1000], "log": True},
                "learning_rate": {"float": [0.005, 0.1], "log": True},
                "num_leaves": {"int": [3, 31], "log": True},
                "min_child_samples": {"int": [20, 300], "log": True},
                "subsample": 0.8, "subsample_freq": 1,
                "colsample_bytree": {"float": [0.2, 1.0]},
                "extra_trees": [True, False],
                "reg_lambda": {"float": [0.001, 10.0], "log": True}}
#: EIS: the shipped LightGBM groups' neighbourhood.
EIS_SPACE = {"n_estimators": {"int": [100, 800], "log": True},
             "learning_rate": {"float": [0.005, 0.1], "log": True},
             "num_leaves": {"int": [3, 31], "log": True},
             "min_child_samples": {"int": [50, 1000], "log": True},
             "colsample_bytree": {"float": [0.3, 1.0]}}


def _stop_search_after(config: dict[str, Any], trials: int = 30) -> None:
    split = next(s for s in config["splits"] if s["name"] == "last_month")
    split["validation_start"] = "2020-01-15"
    config["models"].append({"algorithm": "lightgbm", "params": LIGHTGBM_SPACE,
                             "search": {"method": "optuna", "trials": trials, "seed": 0}})
    config["models"].append({"algorithm": "ensemble",
                             "params": {"members": 3, "method": "probability_average"}})


def _compas_after(config: dict[str, Any], trials: int = 30) -> None:
    config["models"].insert(-1, {"algorithm": "lightgbm", "params": COMPAS_SPACE,
                                 "search": {"method": "optuna", "trials": trials, "seed": 0}})
    config["models"].append({"algorithm": "ensemble",
                             "params": {"members": 3, "method": "probability_average"}})


def _eis_after(config: dict[str, Any], trials: int = 10) -> None:
    config["temporal"]["models"].append({
        "algorithm": "lightgbm", "name": "lightgbm searched", "params": EIS_SPACE,
        "search": {"method": "optuna", "trials": trials, "seed": 0, "startup_trials": 5}})


def _eis_subset(config: dict[str, Any]) -> None:
    """The documented EIS subset: the grid, audition and fairness audit as shipped, without
    the stability extras (trees curve, resamples, dropped sources, consecutive lists), which
    read only the chosen model and do not change which group is chosen or its lists."""
    config["temporal"]["stability"] = {
        "seeds": [0, 1], "n_estimators": [], "resamples": 0, "drop_sources": [],
        "consecutive": {"days": 0, "weeks": 0, "months": 0}}


def _eis_subset_after(config: dict[str, Any]) -> None:
    _eis_subset(config)
    _eis_after(config)


def _eis_quarterly(config: dict[str, Any]) -> None:
    """Four test lists a year (the split time and 3, 6, 9 months after it: test dates are
    those strictly before ``split + test_duration``, so ``1year``, not ``9month``) with the
    same split times (2013-2016) and training dates: the last split time stays
    ``label_end_time - test_label_timespan - test_duration`` = 2016-01-01, so both ends move a
    year later (the complaints run to 2023, so no 2016 list is censored)."""
    chop = config["temporal"]["timechop"]
    chop.update({"test_as_of_date_frequencies": "3month", "test_durations": "1year",
                 "feature_end_time": "2017-01-01", "label_end_time": "2018-01-01"})


def _eis_subset_quarterly(config: dict[str, Any]) -> None:
    _eis_subset(config)
    _eis_quarterly(config)


def _eis_subset_quarterly_after(config: dict[str, Any]) -> None:
    _eis_subset_after(config)
    _eis_quarterly(config)


VARIANTS: dict[str, dict[str, Callable[[dict[str, Any]], None] | None]] = {
    "stop_search": {"shipped": None, "after": _stop_search_after},
    "compas": {"shipped": None, "after": _compas_after},
    "eis": {"shipped": None, "after": _eis_after, "subset": _eis_subset,
            "subset_after": _eis_subset_after, "subset_quarterly": _eis_subset_quarterly,
            "subset_quarterly_after": _eis_subset_quarterly_after},
}


def copy_example(example: str, variant: str, folder: Path, cache: Path | None = None) -> Path:
    """The example's project file (changed by ``variant``) alone in ``folder``, with a copy of
    an earlier run's feature cache (``.rudi/cache``, keyed by content) when ``cache``."""
    config = yaml.safe_load((ROOT / "examples" / example / "rudi.yaml").read_text("utf-8"))
    change = VARIANTS[example][variant]
    if change is not None:
        change(config)
    folder.mkdir(parents=True)
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    if cache is not None:
        shutil.copytree(cache, folder / ".rudi" / "cache")
    return folder


def build_cache(example: str, variant: str, folder: Path) -> str:
    """The variant's features on every as-of date its run reads (as ``rudi run`` builds
    them), cached in ``folder/.rudi/cache``; nothing is fitted or stored."""
    from rudikit.config import load_project
    from rudikit.data.event_tables import load_event_tables
    from rudikit.models.temporal import consecutive_dates, prepare

    os.environ.setdefault("RUDI_DATA_DIR", str(SHARED))
    copy_example(example, variant, folder)
    project = load_project(folder)
    config = project.temporal
    tables, _ = load_event_tables(project, folder)
    extra = consecutive_dates(config.splits()[-1].split_time, config.stability.consecutive)
    data = prepare(config, tables, cache_dir=folder / ".rudi" / "cache", extra_dates=extra)
    dates = sorted(data.features["as_of_date"].unique())
    return (f"{example} {variant}: features cached in {folder / '.rudi' / 'cache'}: "
            f"{len(data.features):,} officer-dates on {len(dates)} as-of dates, "
            f"{data.seconds['features']:.0f} s")


def measure(example: str, variant: str, work: Path, log: Path | None,
            cache: Path | None = None, keep: Path | None = None) -> str:
    folder = copy_example(example, variant, work / f"{example}-{variant}-{time.time_ns()}",
                          cache)
    load_before = os.getloadavg()[0]
    env = {**os.environ, "RUDI_DATA_DIR": str(SHARED)}
    done = subprocess.run(["nice", "/usr/bin/time", "-v", *RUDI, "run", str(folder)],
                          capture_output=True, text=True, env=env, check=False)
    if log is not None:
        log.write_text(done.stdout + done.stderr, "utf-8")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", done.stderr)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): (\S+)",
                                            done.stderr))
    chosen = [line.strip() for line in done.stdout.splitlines()
              if "chosen" in line.lower() or "selected" in line.lower()]
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.move(folder, keep / folder.name)
    shutil.rmtree(folder, ignore_errors=True)
    if done.returncode != 0 or wall is None or peak is None:
        return f"{example} {variant}: FAILED (exit {done.returncode}): {done.stderr[-500:]}"
    return (f"{example} {variant}: wall {wall.group(1)}, CPU {cpu:.0f} s, peak RSS "
            f"{int(peak.group(1)) / 1024:.0f} MB, load {load_before:.1f} -> "
            f"{os.getloadavg()[0]:.1f}; " + " | ".join(chosen[:2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("example", choices=sorted(VARIANTS))
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="keep each run's output here")
    parser.add_argument("--cache", type=Path, default=None,
                        help="an earlier run's .rudi/cache to start from (EIS features)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="move each run's folder (store, cache, report) here")
    parser.add_argument("--features-only", type=Path, default=None, metavar="DIR",
                        help="only build the (one) variant's feature cache in DIR")
    args = parser.parse_args()
    if args.features_only is not None:
        (variant,) = args.variants
        print(build_cache(args.example, variant, args.features_only), flush=True)
        return
    work = Path(tempfile.mkdtemp(prefix="rudi-cost-"))
    try:
        for r in range(args.repeat):
            for variant in args.variants:
                log = (args.log_dir / f"{args.example}-{variant}-{r}.log"
                       if args.log_dir else None)
                print(measure(args.example, variant, work, log, args.cache, args.keep),
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
