"""Benchmark: one daily early-intervention list for the whole Chicago roster (issue 15).

``rudi score`` for one as-of date builds the as-of features of every active officer (about
12,500 on the real CPDB roster), scores them with the deployed model, explains the listed top
100 and stores the list (every officer's score and rank, reasons, rank changes) in one
transaction. Target: under 10 s per date.

Setup (not timed): the EIS example's LightGBM (400 trees, 7 leaves) developed on one yearly
split of the real files into a temporary store and deployed; a daily schedule.
Timed, interleaved and repeated on fresh dates:

* baseline: the bare computation, the as-of features of that date and the model's scores (no
  reasons, no cool-off, no store);
* ours: ``score_lists`` for that date (loading the deployed model, hash-checked, included).

Prints the median seconds of each, officers per second, the ratio and the process's peak
resident memory. Run: ``.venv/bin/python bench/score.py [--repeats 3]``; skipped (exit 0, with
the reason) without ../shared/data.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
CPDB = ROOT.parent / "shared" / "data" / "eis" / "chicago_cpdb"
MODEL = "lightgbm 400 trees, 7 leaves"


def project(folder: Path) -> Path:
    config = yaml.safe_load((ROOT / "examples" / "eis" / "rudi.yaml").read_text())
    config["data"]["sources"][0]["path"] = str(CPDB)
    temporal = config["temporal"]
    temporal["label"] = "any_complaint"
    temporal["models"] = [m for m in temporal["models"] if m.get("name") == MODEL]
    temporal["timechop"]["label_end_time"] = "2016-01-01"
    temporal["test_from"] = "2015-01-01"
    temporal["bootstrap"] = 10
    temporal["stability"] = {"seeds": [0, 1], "algorithm": "random_forest",
                             "n_estimators": [10], "consecutive": {"days": 1, "weeks": 1,
                                                                   "months": 1}}
    config.pop("fairness", None)
    config["production"] = {"frequency": "daily", "start": "2016-01-01"}
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not CPDB.exists():
        print(f"skipped: the CPDB files are not at {CPDB}")
        return
    from rudikit.config import load_project
    from rudikit.data.event_tables import load_event_tables
    from rudikit.features.asof.build import build_features
    from rudikit.features.asof.defaults import DEFAULT_STATES, event_specs
    from rudikit.monitoring.scheduled_lists import list_model, score_lists
    from rudikit.run.develop import run_project
    from rudikit.service.deploy import deploy
    from rudikit.store.engine import open_store

    with tempfile.TemporaryDirectory() as tmp:
        folder = project(Path(tmp))
        started = time.perf_counter()
        result = run_project(folder)
        engine = open_store(None, folder)
        deploy(engine, result.selected.model_group_id, model_id=result.selected.model_id,
               reason="bench", by="bench")
        config = load_project(folder)
        tables, loaded = load_event_tables(config, folder)
        model = list_model(engine, config)
        print(f"setup (development run, deploy, load): {time.perf_counter() - started:.0f} s")
        dates = iter(pd.date_range("2016-01-01", periods=2 * args.repeats, freq="D"))
        specs = event_specs(config.temporal.complete_from)
        times: dict[str, list[float]] = {"baseline": [], "ours": []}
        officers = 0
        for _ in range(args.repeats):
            when = next(dates)
            clock = time.perf_counter()
            rows = build_features(tables, [when], specs, DEFAULT_STATES).frame
            model.loaded.pipeline.predict_proba(rows[model.columns])
            times["baseline"].append(time.perf_counter() - clock)
            when = next(dates)
            clock = time.perf_counter()
            done = score_lists(config, folder, engine, by="bench", through=when, tables=tables,
                               loaded=loaded)
            times["ours"].append(time.perf_counter() - clock)
            officers = done.lists[-1].scored
        engine.dispose()
    base, ours = statistics.median(times["baseline"]), statistics.median(times["ours"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"one daily list, {officers:,} active officers (median of {args.repeats}):")
    print(f"  baseline (features + scores only)  {base:6.2f} s  {officers / base:8,.0f} "
          "officers/s")
    print(f"  rudi score (+ reasons, store)      {ours:6.2f} s  {officers / ours:8,.0f} "
          f"officers/s   ratio baseline/ours {base / ours:.2f}")
    print(f"  peak resident memory of the process: {peak:,.0f} MB")
    print(f"  target: under 10 s per list: {'met' if ours < 10 else 'NOT met'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
