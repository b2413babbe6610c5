"""Benchmark: `rudi monitor` (drift + realised performance + stability) over millions of stored
production predictions, most of them outside the window.

Set-up (not timed, cached between runs under ``--workdir``): a small synthetic stop-and-search
project is trained and its LightGBM deployed; then ``--rows`` production predictions are written
straight into the SQLite store (one request per 1,000 predictions, 30% with an outcome), their
inputs drawn from the synthetic generator, their event times spread over ``--days`` days of
which the last 30 are the monitored window (``--inside`` of the rows fall in it).

Timed, each in a fresh subprocess so its peak RSS is its own:

* first: :func:`rudikit.monitoring.monitor.run_monitor` over the 30-day window (drift of every
  input and of the score, realised performance overall / per station / per object of search /
  precision@k per week, list stability, input checks), alerts and figures stored, on a store
  without the deployment's reference profile (fitted on the training rows and stored);
* again: the same pass with the reference profile stored by the first;
* old fetch: the row-fetch floor of the old design, which read every stored production
  prediction of the model and filtered the window in Python (the SELECT, fetched and dropped);
* window fetch: the same SELECT with the window as a predicate (what a pass now reads);
* naive: the usual notebook way, ``pd.read_sql`` + ``json.loads`` per row into a DataFrame +
  ``value_counts`` per feature, on the first ``--naive-rows`` rows (scaled to all rows).

Target (issue 18): under 20 s and 1 GB at 10,000,000 rows. Run:
``.venv/bin/python bench/monitor.py [--rows 10000000] [--inside 0.1] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson

REPO = Path(__file__).resolve().parents[1]
AS_OF = datetime(2020, 3, 1, tzinfo=UTC)


def _project(workdir: Path) -> Path:
    """Train and deploy the small synthetic project (once)."""
    folder = workdir / "project"
    db = folder / ".rudi" / "rudi.db"
    if db.exists():
        return folder
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import example_config, write_project

    from rudikit.run.develop import run_project
    from rudikit.service.deploy import deploy
    from rudikit.store.engine import open_store

    config = example_config()
    config["evaluation"]["bootstrap"] = 0
    config["fairness"].pop("mitigation")
    config["monitoring"].pop("webhook_url")
    write_project(folder, models=[{"algorithm": "lightgbm",
                                   "params": {"n_estimators": 60, "num_leaves": 15}}],
                  evaluation=config["evaluation"], fairness=config["fairness"],
                  monitoring=config["monitoring"])
    run = run_project(folder, write_report=False)
    engine = open_store(None, folder)
    deploy(engine, run.selected.model_group_id, model_id=run.selected.model_id,
           reason="benchmark", by="bench", threshold=0.3)
    engine.dispose()
    return folder


def _fill(folder: Path, rows: int, inside: float, days: int, seed: int = 0) -> None:
    """Write ``rows`` production predictions (and outcomes) unless already there: a share
    ``inside`` of them in the 30 days before ``AS_OF``, the others in the ``days - 30`` before."""
    db = folder / ".rudi" / "rudi.db"
    marker = folder / ".rudi" / "bench-fill.json"
    wanted = {"rows": rows, "inside": inside, "days": days, "seed": seed}
    conn = sqlite3.connect(db)
    have = conn.execute("SELECT count(*) FROM production_predictions").fetchone()[0]
    if have == rows and marker.exists() and json.loads(marker.read_text()) == wanted:
        conn.close()
        return
    from rudikit.data.synthetic import generate_frame

    conn.executescript("DELETE FROM outcomes; DELETE FROM production_predictions; "
                       "DELETE FROM requests;")
    dep_id, model_id = conn.execute("SELECT id, model_id FROM deployed_models WHERE live"
                                    ).fetchone()
    token_id = conn.execute("SELECT id FROM api_tokens LIMIT 1").fetchone()
    if token_id is None:
        conn.execute("INSERT INTO api_tokens (name, role, token_hash, created_by, created_at) "
                     "VALUES ('bench', 'admin', ?, 'bench', ?)",
                     (uuid.uuid4().hex * 2, AS_OF.isoformat()))
        token_id = conn.execute("SELECT id FROM api_tokens LIMIT 1").fetchone()
    raw = generate_frame(months=["2020-02"], rows_per_month=200_000, seed=seed)
    columns = {"Type": "type", "Gender": "gender", "Age range": "age_range",
               "Officer-defined ethnicity": "officer_defined_ethnicity",
               "Legislation": "legislation", "Object of search": "object_of_search"}
    rng = np.random.default_rng(seed)
    pool = []
    for rec in raw.to_dict("records"):
        features = {dst: (None if rec[src] is None or rec[src] != rec[src] else str(rec[src]))
                    for src, dst in columns.items()}
        features["force"] = rec["force"]
        features["part_of_a_policing_operation"] = bool(rng.random() < 0.05)
        lat = rec.get("Latitude")
        features["latitude"] = None if lat is None or lat != lat else float(lat)
        lon = rec.get("Longitude")
        features["longitude"] = None if lon is None or lon != lon else float(lon)
        pool.append(features)
    start = AS_OF - timedelta(days=days)
    n_in = int(round(rows * inside))
    offsets = np.sort(np.r_[rng.uniform(0, (days - 30) * 86400, rows - n_in),
                            rng.uniform((days - 30) * 86400 + 1, days * 86400, n_in)])
    scores = rng.beta(2, 6, rows)
    outcome_mask = rng.random(rows) < 0.3
    outcome_value = (rng.random(rows) < scores).astype(int)
    picks = rng.integers(0, len(pool), rows)
    created = AS_OF.isoformat(sep=" ")
    prediction_id = 0
    for begin in range(0, rows, 1000):
        end = min(rows, begin + 1000)
        request = uuid.uuid4().hex
        conn.execute("INSERT INTO requests VALUES (?, 'predict', ?, ?, ?, ?, ?, 1.0, ?)",
                     (request, token_id[0], dep_id, model_id, end - begin, end - begin,
                      created))
        batch, outs = [], []
        for i in range(begin, end):
            prediction_id += 1
            features = dict(pool[picks[i]])
            features["datetime"] = (start + timedelta(seconds=float(offsets[i]))).isoformat()
            text = orjson.dumps(features).decode()
            batch.append((prediction_id, f"obs-{i}", request, dep_id, model_id, text,
                          "0" * 64, None, float(scores[i]), 0.3, bool(scores[i] >= 0.3),
                          created))
            if outcome_mask[i]:
                outs.append((prediction_id, f"obs-{i}", int(outcome_value[i]), token_id[0],
                             created))
        conn.executemany("INSERT INTO production_predictions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                         batch)
        conn.executemany("INSERT INTO outcomes (prediction_id, observation_id, outcome, "
                         "token_id, recorded_at) VALUES (?,?,?,?,?)", outs)
        if begin % 1_000_000 == 0:
            conn.commit()
            print(f"  setup: {begin:,} of {rows:,} predictions written", flush=True)
    conn.commit()
    conn.close()
    marker.write_text(json.dumps(wanted))


TIMED = {
    "ours": """
from datetime import datetime, UTC
from pathlib import Path
from sqlalchemy import text
from rudikit.config import load_project
from rudikit.store.engine import open_store
from rudikit.monitoring.monitor import run_monitor
folder = Path({folder!r})
project = load_project(folder)
engine = open_store(None, folder)
if {fresh!r}:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM reference_profiles"))
t = time.perf_counter()
r = run_monitor(project, folder, engine, as_of=datetime(2020, 3, 1, tzinfo=UTC))
seconds = time.perf_counter() - t
extra = dict(predictions=r.n_predictions, outcomes=r.n_outcomes, alerts=len(r.alerts),
             precision=r.realised.precision, auc=r.realised.roc_auc,
             max_psi=max(d.psi for d in r.drift))
""",
    "floor": """
import sqlite3
conn = sqlite3.connect({db!r})
t = time.perf_counter()
n = 0
cur = conn.execute("SELECT p.id, p.observation_id, p.score, p.decision, o.outcome, "
                   "p.created_at, p.features FROM production_predictions p LEFT JOIN outcomes o "
                   "ON o.prediction_id = p.id WHERE p.model_id = 1{where} ORDER BY p.id")
while True:
    rows = cur.fetchmany(500000)
    if not rows:
        break
    n += len(rows)
seconds = time.perf_counter() - t
extra = dict(rows=n)
""",
    "naive": """
import json, sqlite3
import pandas as pd
conn = sqlite3.connect({db!r})
t = time.perf_counter()
frame = pd.read_sql("SELECT p.score, o.outcome, p.features FROM production_predictions p "
                    "LEFT JOIN outcomes o ON o.prediction_id = p.id ORDER BY p.id LIMIT {naive}",
                    conn)
features = pd.DataFrame([json.loads(x) for x in frame.pop("features")])
counts = {{c: features[c].value_counts(dropna=False) for c in features.columns}}
seconds = time.perf_counter() - t
extra = dict(rows=len(frame))
""",
}


def timed(name: str, **fmt: object) -> dict[str, object]:
    # VmHWM (not ru_maxrss, which Linux carries over from the parent across exec)
    code = ("import time, json\n" + TIMED[name].format(**fmt)
            + "\nhwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]"
              "\nprint(json.dumps(dict(seconds=seconds, peak_mb=int(hwm.split()[1]) / 1024, "
              "**extra)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# the window as the monitor's query puts it (its margin of a day included)
WINDOW = (" AND coalesce(julianday(json_extract(p.features, '$.datetime')), "
          "julianday(p.created_at)) BETWEEN julianday('2020-01-30') AND julianday('2020-03-02')")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--inside", type=float, default=0.1,
                        help="share of the rows in the 30-day window (the rest are older)")
    parser.add_argument("--days", type=int, default=365, help="days the rows are spread over")
    parser.add_argument("--naive-rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of each")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rudi-bench-monitor"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    folder = _project(args.workdir)
    _fill(folder, args.rows, args.inside, args.days)
    db = str(folder / ".rudi" / "rudi.db")
    size = Path(db).stat().st_size / 1e9
    print(f"set-up: {time.perf_counter() - started:.0f} s; store {size:.2f} GB with "
          f"{args.rows:,} production predictions over {args.days} days, "
          f"{args.inside:.0%} in the 30-day window")
    runs: dict[str, list[dict[str, object]]] = {"first": [], "again": [], "old": [], "new": []}
    for _ in range(args.repeat):  # interleaved, so a busy spell hits every kind alike
        runs["first"].append(timed("ours", folder=str(folder), fresh=True))
        runs["again"].append(timed("ours", folder=str(folder), fresh=False))
        runs["old"].append(timed("floor", db=db, where=""))
        runs["new"].append(timed("floor", db=db, where=WINDOW))
    first, again, old, new = (min(r, key=lambda x: x["seconds"]) for r in runs.values())
    print(f"best of {args.repeat} interleaved runs each")
    naive = timed("naive", db=db, naive=args.naive_rows)
    naive_all = naive["seconds"] * args.rows / max(naive["rows"], 1)
    for name, ours in (("first", first), ("again", again)):
        print(f"{name:12}: {ours['seconds']:7.1f} s, peak RSS {ours['peak_mb']:6.0f} MB "
              f"({ours['predictions']:,} predictions, {ours['outcomes']:,} outcomes, "
              f"{ours['alerts']} alerts, realised precision {ours['precision']:.3f}, "
              f"AUC {ours['auc']:.3f}, max PSI {ours['max_psi']:.4f})")
    print(f"old fetch   : {old['seconds']:7.1f} s, peak RSS {old['peak_mb']:6.0f} MB (SELECT and "
          f"fetch every stored row, {old['rows']:,} rows: the old design's floor)")
    print(f"window fetch: {new['seconds']:7.1f} s, peak RSS {new['peak_mb']:6.0f} MB (the "
          f"window as a predicate, {new['rows']:,} rows)")
    print(f"naive       : {naive['seconds']:7.1f} s on {naive['rows']:,} rows, peak RSS "
          f"{naive['peak_mb']:6.0f} MB -> {naive_all:.0f} s scaled to {args.rows:,} rows "
          "(read_sql + json.loads + value_counts only: no metrics)")
    print(f"ratios: rows fetched old / new = {old['rows'] / max(new['rows'], 1):.1f}x; "
          f"old fetch / window fetch = {old['seconds'] / new['seconds']:.1f}x; "
          f"again / old fetch = {again['seconds'] / old['seconds']:.2f}")
    verdict = "met" if again["seconds"] < 20 and again["peak_mb"] < 1024 else "NOT met"
    print(f"target (under 20 s and 1 GB, a pass with the stored reference): {verdict}")


if __name__ == "__main__":
    main()
