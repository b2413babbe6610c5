"""Benchmark: the speed claims that used to be wall-clock assertions in the tests.

A test must not fail because the machine is busy, so speed is measured here, each path against
a baseline timed in the same run, interleaved (baseline, ours, baseline, ours, ...) and
repeated, and reported as the median seconds and the ratio baseline/ours:

* scoring one row: the service's fast paths (``rudikit.service.scoring.Scorer``, logistic
  regression tables and numpy random forest) against the pipeline's ``predict_proba`` on a
  one-row DataFrame (claim: the fast paths take well under 1 ms a row, ``predict_proba``
  milliseconds);
* the synthetic archive: ``generate_archive(seed=3)`` against reading the files it wrote with
  ``police_uk.read_archive_file`` (claim: it generates in well under 2 s);
* the CPDB files: ``load_cpdb`` (read and link) against reading the same raw files with
  ``cpdb.read_raw`` (claim: under 60 s; skipped without ../shared/data).

Run: ``.venv/bin/python bench/hot_paths.py [--repeats 5] [--rows 100]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def interleaved(baseline: Callable[[], Any], ours: Callable[[], Any], repeats: int
                ) -> tuple[float, float]:
    """Median seconds of (baseline, ours), run alternately so both see the same machine."""
    times: dict[str, list[float]] = {"baseline": [], "ours": []}
    for _ in range(repeats):
        for name, call in (("baseline", baseline), ("ours", ours)):
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return statistics.median(times["baseline"]), statistics.median(times["ours"])


def report(what: str, baseline_name: str, baseline: float, ours: float, per: int = 1) -> None:
    print(f"{what:<34} ours {ours / per * 1e3:9.3f} ms   {baseline_name} "
          f"{baseline / per * 1e3:9.3f} ms   ratio baseline/ours {baseline / ours:7.1f}")


def fitted_pipelines(folder: Path) -> dict[str, Any]:
    """Logistic regression and random forest on the small synthetic project (as the service
    tests train them)."""
    from sqlalchemy import select

    from rudikit.models.artefacts import load_artefact
    from rudikit.run.develop import run_project
    from rudikit.store import tables as t
    from rudikit.store.engine import open_store

    example = ROOT / "examples" / "stop_search" / "rudi.yaml"
    config = yaml.safe_load(example.read_text(encoding="utf-8"))
    config["data"]["sources"] = [{"name": "searches", "kind": "synthetic_stop_search",
                                  "seed": 3, "rows_per_month": 1500}]
    config["models"] = [{"algorithm": "logistic_regression", "params": {"C": [1.0]}},
                        {"algorithm": "random_forest",
                         "params": {"n_estimators": 30, "min_samples_leaf": 3}}]
    config["evaluation"]["bootstrap"] = 0
    config["fairness"] = {}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    run_project(folder)
    engine = open_store(None, folder)
    with engine.connect() as conn:
        rows = conn.execute(select(t.models.c.artefact_path, t.models.c.artefact_hash,
                                   t.model_groups.c.algorithm).join(t.model_groups)).all()
    engine.dispose()
    return {name: load_artefact(path, digest, folder) for path, digest, name in rows}


def bench_scoring(work: Path, repeats: int, rows: int) -> None:
    from rudikit.service.scoring import Scorer, sample_rows

    for algorithm, pipeline in fitted_pipelines(work / "project").items():
        scorer = Scorer(pipeline)
        raw, validated = sample_rows(scorer.encoder, rows, seed=11)
        frames = [pd.DataFrame([r], columns=scorer.encoder.input_columns) for r in raw]
        baseline, ours = interleaved(
            lambda p=pipeline, f=frames: [p.predict_proba(x) for x in f],
            lambda s=scorer, v=validated: [s.score([row]) for row in v], repeats)
        report(f"score 1 row: {algorithm}", "predict_proba", baseline, ours, per=rows)


def bench_synthetic(work: Path, repeats: int) -> None:
    from rudikit.data import police_uk
    from rudikit.data import synthetic as syn

    paths = syn.generate_archive(work / "archive-0", seed=3)
    counter = iter(range(1, repeats + 1))
    baseline, ours = interleaved(
        lambda: [police_uk.read_archive_file(p) for p in paths],
        lambda: syn.generate_archive(work / f"archive-{next(counter)}", seed=3), repeats)
    report("synthetic archive (seed 3)", "read it", baseline, ours)


def bench_cpdb(repeats: int) -> None:
    from rudikit.data.cpdb.files import FILES, cpdb_folder, read_raw
    from rudikit.data.cpdb.tables import load_cpdb

    folder = cpdb_folder(SHARED_DATA)
    if not (folder / FILES["roster"]).exists():
        print(f"CPDB files not found under {SHARED_DATA}: skipped")
        return
    baseline, ours = interleaved(lambda: [read_raw(folder, name) for name in FILES],
                                 lambda: load_cpdb(SHARED_DATA), max(1, repeats // 2))
    report("CPDB load and link", "read raw", baseline, ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rudi-bench-hot-") as tmp:
        work = Path(tmp)
        bench_scoring(work, args.repeats, args.rows)
        bench_synthetic(work, args.repeats)
    bench_cpdb(args.repeats)


if __name__ == "__main__":
    main()
