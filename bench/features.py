"""Benchmark: as-of feature generation for the EIS example (Chicago CPDB), DuckDB vs pandas.

In the same run it times

* the load and link of the CPDB files (``rudikit.data.cpdb.tables.load_cpdb``);
* ours: ``rudikit.features.asof.build.build_features`` with the default specs (complaints by
  category and by finding, use of force by type and injury, unit changes, unit and rank as of
  the date, tenure, age) for every active officer on every monthly as-of date (default
  2010-01 .. 2016-12), no cache; then the same call again, reading the Parquet cache;
* the baseline: a plain pandas implementation of the complaint and use-of-force blocks (per
  as-of date: filter the past events, mask each group, ``groupby().nunique()`` per window,
  merge onto the cohort) on a few as-of dates, scaled to rows per second and compared with
  ours on the same rows (the numbers must agree);

and prints rows/s, peak memory (process peak RSS from ``resource.getrusage``, and the
tracemalloc peak of the baseline) and the speed ratio.

Run: ``.venv/bin/python bench/features.py [--start 2010-01-01] [--end 2016-12-01]
[--baseline-dates 4]``. Without the CPDB files under ../shared/data it says so and exits 0.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from rudikit.data.cpdb.tables import load_cpdb
from rudikit.features.asof.build import build_features
from rudikit.features.asof.cohort import cohort_frame, monthly_as_of_dates
from rudikit.features.asof.defaults import COMPLAINTS, DEFAULT_SPECS, DEFAULT_STATES, USE_OF_FORCE
from rudikit.features.asof.specs import WINDOW_MONTHS, EventSpec
from rudikit.features.asof.sql import MIN_EXPOSURE_DAYS

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def peak_rss_gb() -> float:
    """Process peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def baseline_block(spec: EventSpec, events: pd.DataFrame, cohort: pd.DataFrame,
                   as_of: pd.Timestamp) -> pd.DataFrame:
    """One spec's counts, rates and recency on one as-of date, the plain pandas way."""
    rows = cohort[cohort["as_of_date"] == as_of][["officer_uid", "start_date"]]
    officers = rows["officer_uid"].to_numpy()
    out: dict[str, object] = {"officer_uid": officers, "as_of_date": as_of}
    past = events[events[spec.date_column] < as_of]
    groups: list[tuple[str, pd.Series]] = [("all", pd.Series(True, index=past.index))]
    for cat in spec.categories:
        values = past[cat.column].astype("string")
        if cat.known_from:
            known = past[cat.known_from] < as_of
            values = values.where(known.fillna(False), cat.unknown_value)
        groups += [(f"{cat.prefix}_{v}", (values == v).fillna(False)) for v in cat.groups]
    groups += [(flag, past[flag].fillna(False).astype(bool)) for flag in spec.flags]
    data_start = pd.Timestamp(spec.data_start) if spec.data_start else pd.NaT
    start = pd.to_datetime(rows["start_date"]).to_numpy()
    for group, mask in groups:
        sel = past[mask.to_numpy()]
        for window in spec.windows:
            months = WINDOW_MONTHS[window]
            begin = as_of - pd.DateOffset(months=months) if months else None
            inside = sel if begin is None else sel[sel[spec.date_column] >= begin]
            counts = inside.groupby("officer_uid")[spec.id_column].nunique()
            n = counts.reindex(officers).fillna(0).to_numpy()
            out[f"{spec.name}_{group}_{window}_count"] = n.astype("int32")
            lower = np.maximum(start, np.datetime64(begin) if begin is not None else start)
            if not pd.isna(data_start):
                lower = np.maximum(lower, np.datetime64(data_start))
            days = (np.datetime64(as_of) - lower).astype("timedelta64[D]").astype(float)
            out[f"{spec.name}_{group}_{window}_rate"] = (
                n / (np.maximum(days, MIN_EXPOSURE_DAYS) / 365.25)).astype("float32")
        last = sel.groupby("officer_uid")[spec.date_column].max()
        last_seen = pd.Series(last.reindex(officers).to_numpy(), dtype="datetime64[s]")
        out[f"{spec.name}_{group}_days_since"] = (as_of - last_seen).dt.days.to_numpy(float)
    return pd.DataFrame(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2010-01-01")
    parser.add_argument("--end", default="2016-12-01")
    parser.add_argument("--baseline-dates", type=int, default=4)
    parser.add_argument("--data", default=str(SHARED_DATA))
    args = parser.parse_args()
    if not (Path(args.data) / "eis" / "chicago_cpdb" / "final-profiles.csv.gz").exists():
        print(f"CPDB files not found under {args.data}: nothing to benchmark")
        return 0

    started = time.perf_counter()
    cpdb = load_cpdb(args.data)
    load_s = time.perf_counter() - started
    tables = cpdb.tables()
    print(f"load + link: {load_s:.1f} s  (complaints {len(cpdb.complaints):,} rows, use of force "
          f"{len(cpdb.use_of_force):,}, unit history {len(cpdb.unit_history):,})")

    dates = monthly_as_of_dates(args.start, args.end)
    rss_before = peak_rss_gb()
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        features = build_features(tables, dates, DEFAULT_SPECS, DEFAULT_STATES, cache_dir=cache)
        ours_s = time.perf_counter() - started
        rows, cols = features.frame.shape
        started = time.perf_counter()
        again = build_features(tables, dates, DEFAULT_SPECS, DEFAULT_STATES, cache_dir=cache)
        cached_s = time.perf_counter() - started
        assert all(b.cached for b in again.blocks)
    print(f"\nours (DuckDB): {len(dates)} monthly as-of dates {dates[0]:%Y-%m} .. "
          f"{dates[-1]:%Y-%m}, {rows:,} officer-dates x {cols - 2} features")
    print(f"  {ours_s:.1f} s = {rows / ours_s:,.0f} rows/s ({rows * (cols - 2) / ours_s / 1e6:.1f}"
          f"M values/s); peak RSS {peak_rss_gb():.2f} GB (was {rss_before:.2f} GB before)")
    for block in features.blocks:
        print(f"    {block.name:>5}: {block.seconds:6.1f} s, {len(block.columns)} columns")
    print(f"  again from the Parquet cache: {cached_s:.1f} s")

    # The baseline: complaint and use-of-force blocks only, on a few as-of dates.
    cohort = cohort_frame(tables, dates)
    picks = [dates[int(i)] for i in np.linspace(0, len(dates) - 1, args.baseline_dates)]
    specs = (COMPLAINTS, USE_OF_FORCE)
    ours_cols = [c for c in features.frame.columns if c.startswith(("cmp_", "uof_"))]
    tracemalloc.start()
    started = time.perf_counter()
    parts = []
    for as_of in picks:
        blocks = [baseline_block(spec, tables[spec.table], cohort, as_of) for spec in specs]
        parts.append(blocks[0].merge(blocks[1], on=["officer_uid", "as_of_date"]))
    base_s = time.perf_counter() - started
    _, base_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    base = pd.concat(parts, ignore_index=True)
    base_rows = len(base)
    mine = features.frame[features.frame["as_of_date"].isin(picks)]
    mine = mine[["officer_uid", "as_of_date", *ours_cols]].reset_index(drop=True)
    base = base[["officer_uid", "as_of_date", *ours_cols]]
    pd.testing.assert_frame_equal(mine, base, check_dtype=False, check_exact=False, rtol=1e-5)

    # Our time for the same two blocks, per row, from the full run.
    ours_blocks_s = sum(b.seconds for b in features.blocks if b.name in ("cmp", "uof"))
    ours_rate = rows / ours_blocks_s
    base_rate = base_rows / base_s
    print(f"\nbaseline (pandas, complaint + use-of-force blocks, {len(picks)} as-of dates, "
          f"{base_rows:,} rows): {base_s:.1f} s = {base_rate:,.0f} rows/s; tracemalloc peak "
          f"{base_peak / 1e9:.2f} GB; scaled to all {rows:,} rows: {rows / base_rate:.0f} s")
    print(f"ours, same two blocks: {ours_blocks_s:.1f} s = {ours_rate:,.0f} rows/s")
    print(f"ratio (ours / baseline rows/s): {ours_rate / base_rate:.1f}x; "
          f"the {len(ours_cols)} shared columns agree on all {base_rows:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
