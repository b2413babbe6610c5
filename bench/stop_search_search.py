"""Figure: the stop-and-search example's chosen model on split ``last_month`` (test month
2020-02), as shipped and with a hyperparameter search added (issue 20 item 1).

The search variant is the example's ``rudi.yaml`` with two changes, made in a copy under a
temporary folder (the example itself is not changed):

* ``validation_start: 2020-01-15`` on ``last_month``: the searched trials and the selection
  read 2020-01-15..31, so the test month is used for no choice (the shipped example has no
  validation partition and chooses on the test month);
* a ``lightgbm`` model with ``search: {method: optuna, trials: TRIALS, seed: 0}`` over
  n_estimators, learning_rate, num_leaves, min_child_samples, colsample_bytree, reg_lambda.

It prints, for each variant run, the chosen model, the rows the choice read and its test ROC
AUC with the 95% bootstrap interval, and the wall time of the run.

Run: ``.venv/bin/python bench/stop_search_search.py [--trials 30] [--shipped] [--grid]``
(``--shipped`` also runs the example as shipped, for the figure before; ``--grid`` the shipped
grid with the same validation partition and no search; ``--trials 0`` no search). Needs the
stop-and-search files under ../shared/data (or ``RUDI_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from rudikit.run.develop import run_project

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "stop_search"
SHARED = Path(os.environ.get("RUDI_DATA_DIR", ROOT.parent / "shared" / "data"))
SEARCHED = {"algorithm": "lightgbm",
            "params": {"n_estimators": {"int": [100, 800], "log": True},
                       "learning_rate": {"float": [0.01, 0.1], "log": True},
                       "num_leaves": {"int": [7, 63], "log": True},
                       "min_child_samples": {"int": [10, 200], "log": True},
                       "subsample": 0.8, "subsample_freq": 1,
                       "colsample_bytree": {"float": [0.4, 1.0]},
                       "reg_lambda": {"float": [0.001, 10.0], "log": True}}}


def variant(folder: Path, trials: int | None, validation: bool = True) -> Path:
    """A copy of the example in ``folder``: with the validation partition when
    ``validation``, and the search when ``trials``."""
    config = yaml.safe_load((EXAMPLE / "rudi.yaml").read_text(encoding="utf-8"))
    config["data"]["sources"][0]["path"] = str(SHARED / "stop_and_search")
    if validation:
        split = next(s for s in config["splits"] if s["name"] == "last_month")
        split["validation_start"] = "2020-01-15"
    if trials:
        config["models"].append({**SEARCHED, "search": {"method": "optuna", "trials": trials,
                                                        "seed": 0}})
    folder.mkdir(parents=True)
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder


def measure(label: str, folder: Path) -> None:
    started = time.perf_counter()
    result = run_project(folder)
    seconds = time.perf_counter() - started
    chosen = result.selected
    assert chosen is not None
    auc = chosen.metrics[("roc_auc", "")]
    rows = "validation" if chosen.validation_metrics is not None else "test"
    print(f"{label}: chosen {chosen.name or chosen.algorithm} (group {chosen.model_group_id}), "
          f"chosen on the {rows} rows; test ROC AUC {auc.value:.3f} "
          f"[{auc.lower:.3f}, {auc.upper:.3f}]; run {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--shipped", action="store_true")
    parser.add_argument("--grid", action="store_true",
                        help="also the shipped grid with the validation partition, no search")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rudi-search-"))
    try:
        if args.shipped:
            measure("shipped", variant(work / "shipped", None, validation=False))
        if args.grid:
            measure("grid, validation_start 2020-01-15", variant(work / "grid", None))
        if args.trials:
            measure(f"search ({args.trials} trials)", variant(work / "search", args.trials))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
