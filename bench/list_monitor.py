"""Benchmark: `rudi monitor` on a temporal project with years of daily production lists (issue
18, item 5: a pass costs what its window costs, not what the history costs).

Set-up (not timed, cached under ``--workdir``): the list monitor tests' synthetic EIS project
(``tests/test_list_monitor.py``: 240 officers, complaints 2004-2013) is run, its model group
deployed and its twelve monthly 2012 lists scored; then a list is added for every other day
from ``--first`` to ``--last`` (default 2010-01-01 to 2012-12-31: 1,096 daily lists), each
the stored monthly list of its month (January 2012's before 2012) with the scores jittered by
a seeded rng and re-ranked, so every list differs from the one before.

Timed, each in a fresh subprocess (its own peak RSS), interleaved ``--repeat`` times, on a
copy of the store:

* first: the first pass over the lists (as of ``--as-of``, window ``--window-days``): every
  list judged, as the old design did every pass;
* later: the next pass a day later, the event tables unchanged: the lists whose figures are
  final (matured, judged before, nothing they depend on changed) reuse their stored figures;
* late event: the same later pass after a complaint dated 2011-06-15 arrived (the complaints
  file rewritten): the lists whose label window holds it are judged again.

``--src`` times another checkout's rudikit on the same store (the commit before this design
judged every list every pass); ``--as-of 2012-12-30`` puts the pass where a year of lists is
still maturing (those are judged every pass: their figures are not final).

Run: ``flock /work/bench.lock .venv/bin/python bench/list_monitor.py`` (prints uptime before and
after).

Measured 2026-12-04 on 2 cores shared with other helpers' jobs (best of the repeats; peak RSS of
the pass's process, about 370 MB of which is the interpreter and its imports):

=====================================  ===========  ===========  ===========================
``--repeat``; load at start / end      first        later        late event
=====================================  ===========  ===========  ===========================
before (``--src`` at 8d804fd), 2       30.5 s       31.3 s       31.0 s (every list, always)
                                       437 MB       437 MB       437 MB
  load 7.4 / 4.9
this design, 3; load 8.9 / 8.2         32.3 s       **2.0 s**    10.4 s
                                       439 MB       372 MB       392 MB
                                       1,096 lists  45 judged    439 judged
``--as-of 2012-12-30``, 2;             31.1 s       9.3 s        17.7 s
load 5.2 / 4.7                         439 MB       386 MB       426 MB
                                       1,095 lists  396 judged   790 judged
=====================================  ===========  ===========  ===========================

A later pass over the default store judges the 45 lists dated or maturing in its window or
whose label month is not yet complete: 16x faster than the first. Where a year of lists is
still maturing (``--as-of 2012-12-30``, the steady state of a force scoring daily with a
one-year label) those 366 are judged every pass, 3.3x: the cost is bounded by the label window
plus the monitoring window, whatever the years of lists behind them. What is left of the later
pass is the interpreter, reading the last pass's figures (about 28 per list) and storing them
again in the pass's one transaction. The event tables are read whole once per pass for their
input checks: 1.0 s to load and 0.8 s to check the real Chicago CPDB tables (33k officers,
70k complaints, 286k other rows; linked cache warm, niced on the same busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def build(folder: Path, first: str, last: str) -> None:
    """The project and its store with a list on every day from ``first`` to ``last``."""
    sys.path.insert(0, str(REPO))
    from rudikit.store.list_tables import record_production_list
    from rudikit.store.queries import lists as lists_q
    from tests.test_list_monitor import develop

    folder.mkdir(parents=True)
    engine = develop(folder)
    headers = lists_q.production_list_headers(engine, "eis-test")
    entries = lists_q.production_list_entries(engine, headers["id"].tolist())
    months = {pd.Timestamp(d).tz_localize(None) if pd.Timestamp(d).tzinfo is None
              else pd.Timestamp(d).tz_convert(None): i
              for d, i in zip(headers["as_of_date"], headers["id"], strict=True)}
    taken = set(months)
    template = headers.iloc[0].to_dict()
    rng = np.random.default_rng(0)
    for day in pd.date_range(first, last, freq="D"):
        if day in taken:
            continue
        month = max([m for m in months if m <= day], default=min(months))
        base = entries[entries["list_id"] == months[month]].copy()
        base["score"] = base["score"].to_numpy() * rng.uniform(0.9, 1.1, len(base))
        base = base.sort_values("score", ascending=False).reset_index(drop=True)
        base["rank_all"] = np.arange(1, len(base) + 1)
        base["rank"] = base["rank_all"].astype(float)
        base["reviewed_on"] = None
        base["reasons"] = None
        header = {k: v for k, v in template.items() if k not in ("id", "created_at")}
        header["as_of_date"] = day.tz_localize("UTC").to_pydatetime()
        record_production_list(engine, header, base, pd.DataFrame())
    engine.dispose()


def one_pass(folder: Path, as_of: str, window_days: int, full: bool) -> dict[str, float]:
    """One list monitor pass in this process: wall seconds and how many lists were judged."""
    from datetime import UTC, datetime

    from rudikit.config import load_project
    from rudikit.monitoring.list_monitor import run_list_monitor
    from rudikit.store.engine import open_store

    project = load_project(folder)
    engine = open_store(None, folder)
    started = time.perf_counter()
    result = run_list_monitor(project, folder, engine,  # type: ignore[arg-type]
                              today=datetime.fromisoformat(as_of).replace(tzinfo=UTC),
                              window_days=window_days, **({"full": True} if full else {}))
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "lists": len(result.lists),
            "judged": len(getattr(result, "judged", result.lists))}


def timed(folder: Path, as_of: str, window_days: int, full: bool = False,
          src: Path = REPO / "src") -> dict[str, float]:
    """:func:`one_pass` in a fresh interpreter running the rudikit of ``src``, with its peak
    RSS (MB)."""
    here, call = str(Path(__file__).parent), (str(folder), as_of, window_days, full)
    code = (f"import json, sys; from pathlib import Path; sys.path.insert(0, {here!r}); "
            "import list_monitor as b; "
            f"print(json.dumps(b.one_pass(Path({call[0]!r}), *{call[1:]!r})))")
    wrapper = ("import resource, subprocess, sys; "
               f"p = subprocess.run([sys.executable, '-c', {code!r}], capture_output=True, "
               "text=True); sys.stderr.write(p.stderr); "
               "print(p.stdout.strip().splitlines()[-1]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                         env=env, check=True).stdout.strip().splitlines()
    found = json.loads(out[-2])
    found["peak_mb"] = int(out[-1]) / 1024
    return found


def late_event(folder: Path, day: str) -> None:
    """A complaint dated ``day`` of the first officer, appended to the complaints file."""
    path = folder / "events" / "complaints.parquet"
    frame = pd.read_parquet(path)
    row = frame.iloc[[0]].copy()
    row["cr_id"] = "late-1"
    row["complaint_date"] = pd.Timestamp(day).as_unit(str(np.datetime_data(
        frame["complaint_date"].dtype)[0]))
    pd.concat([frame, row], ignore_index=True).to_parquet(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rudi-bench-list-monitor"))
    parser.add_argument("--first", default="2010-01-01")
    parser.add_argument("--last", default="2012-12-31")
    parser.add_argument("--as-of", default="2013-12-15")
    parser.add_argument("--window-days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full", action="store_true",
                        help="every pass judges every list (the old design), for comparison")
    parser.add_argument("--src", type=Path, default=REPO / "src",
                        help="the rudikit sources to time (e.g. a checkout of the commit before)")
    args = parser.parse_args()
    base = args.workdir / f"store-{args.first}-{args.last}"
    if not (base / "rudi.yaml").exists():
        shutil.rmtree(base, ignore_errors=True)
        started = time.perf_counter()
        build(base, args.first, args.last)
        print(f"set-up: {time.perf_counter() - started:.0f} s")
    later = (pd.Timestamp(args.as_of) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    rows = []
    for i in range(args.repeat):
        copy = args.workdir / "pass"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(base, copy)
        config = (copy / "rudi.yaml").read_text()  # the copy reads its own event tables
        (copy / "rudi.yaml").write_text(config.replace(str(base / "events"), str(copy / "events")))
        first = timed(copy, args.as_of, args.window_days, args.full, args.src)
        again = timed(copy, later, args.window_days, args.full, args.src)
        late_event(copy, "2011-06-15")
        late = timed(copy, later, args.window_days, args.full, args.src)
        for name, found in (("first", first), ("later", again), ("late event", late)):
            rows.append({"repeat": i, "pass": name, **found})
            print(f"{i} {name:10s} {found['seconds']:7.2f} s {found['peak_mb']:6.0f} MB "
                  f"judged {found['judged']:.0f} of {found['lists']:.0f} lists", flush=True)
    frame = pd.DataFrame(rows)
    best = frame.groupby("pass", sort=False)[["seconds", "peak_mb"]].min()
    print(best.round(2).to_string())
    print(f"first / later: {best.loc['first', 'seconds'] / best.loc['later', 'seconds']:.1f}x "
          f"time, {best.loc['first', 'peak_mb'] / best.loc['later', 'peak_mb']:.2f}x memory")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
