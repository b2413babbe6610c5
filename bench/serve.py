"""Benchmark: the prediction service (`rudi serve`) against a bare FastAPI endpoint.

Trains a small LightGBM model on the synthetic stop-and-search data (or reuses ``--project``),
deploys it, and starts two uvicorn servers on the loopback interface, both scoring with the same
model and the same validation and fast scoring path:

* stored: ``rudi serve`` - bearer-token auth, idempotency, metrics, and every request and
  prediction committed to the results store before the answer is sent;
* bare: a plain FastAPI endpoint that validates and scores, and stores nothing.

wrk drives each with 16 connections (2 threads), unique observation ids and a Lua script for
the POST bodies: single observations, then batches of 100. Runs alternate between the two
servers (warm-up, then ``--duration`` seconds each), so both see the same machine. It prints
requests/s, observations/s, p50/p99 latency, the rows the store gained (cross-checked against
wrk's count of answers), and the ratio stored/bare.

Run: ``.venv/bin/python bench/serve.py [--duration 15] [--database-url URL] [--workers N]
[--sqlite-synchronous FULL|NORMAL] [--project DIR]``. With a PostgreSQL URL it works in a
fresh schema and drops it afterwards. Targets (2 cores, load generator included): >= 2,500
stored single predictions/s with p99 < 15 ms on SQLite, >= 2,000/s on PostgreSQL, ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI, Request, Response  # at module level: FastAPI resolves annotations

ROOT = Path(__file__).resolve().parents[1]


# --- the bare endpoint (run in a subprocess by --bare-server) --------------------------------


def bare_app(project: Path, database_url: str | None, schema: str | None) -> Any:
    """FastAPI endpoint with the deployed model: parse, validate, score, answer; no storage,
    no auth, no metrics."""
    import orjson

    from rudikit.service.deploy import load_deployed_model
    from rudikit.service.observation_schema import ObservationSchema
    from rudikit.service.observations import parse_observations
    from rudikit.store.engine import open_store

    engine = open_store(database_url, project, schema=schema)
    model = load_deployed_model(engine, project_dir=project)
    engine.dispose()
    validator = ObservationSchema(model.pipeline.named_steps["encode"], max_batch=1000)
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        parsed = parse_observations(validator, await request.body())
        scores = model.scorer.score([o.values for o in parsed.observations]).tolist()
        answers = [{"observation_id": o.observation_id, "score": s,
                    "decision": s >= model.threshold, "model_id": model.model_id}
                   for o, s in zip(parsed.observations, scores, strict=True)]
        body = answers[0] if parsed.single else {"predictions": answers}
        return Response(orjson.dumps(body), media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    import gc

    gc.collect()
    gc.freeze()  # as the service does
    return app


# --- setup -----------------------------------------------------------------------------------


def make_project(folder: Path) -> Path:
    """The stop-and-search example on the seeded synthetic generator, with one small LightGBM
    model (about 10 s to train)."""
    example = ROOT / "src" / "rudikit" / "examples" / "stop_search" / "rudi.yaml"
    config = yaml.safe_load(example.read_text(encoding="utf-8"))
    config["data"]["sources"] = [{"name": "searches", "kind": "synthetic_stop_search",
                                  "seed": 3, "rows_per_month": 3000}]
    config["models"] = [{"algorithm": "lightgbm",
                         "params": {"n_estimators": 100, "num_leaves": 15}}]
    config["evaluation"]["bootstrap"] = 0
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rudi.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not ready:\n{log.read_text()}")


OBSERVATION = ('{"observation_id":"%s","type":"Person search","gender":"Male",'
               '"age_range":"18-24","officer_defined_ethnicity":"White",'
               '"legislation":"Misuse of Drugs Act 1971 (section 23)",'
               '"object_of_search":"Controlled drugs","force":"metropolitan",'
               '"part_of_a_policing_operation":false,"latitude":51.5,"longitude":-0.12,'
               '"datetime":"2020-01-05T13:20:00+00:00"}')

LUA = """
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
  batch = tonumber(args[2])
end
local before, after = %(before)s, %(after)s
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(token)s"}
function request()
  counter = counter + 1
  local body
  if batch == 1 then
    body = before .. prefix .. counter .. after
  else
    local parts = {}
    for j = 1, batch do
      parts[j] = before .. prefix .. counter .. "-" .. j .. after
    end
    body = '{"observations":[' .. table.concat(parts, ",") .. ']}'
  end
  return wrk.format("POST", "/predict", headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, '
    .. '"non2xx": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d}\\n', summary.requests,
    summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def lua_script(folder: Path, token: str) -> Path:
    before, after = OBSERVATION.split("%s")
    path = folder / "predict.lua"

    def quoted(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    path.write_text(LUA % {"before": quoted(before), "after": quoted(after), "token": token})
    return path


def run_wrk(base: str, script: Path, prefix: str, batch: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), base,
         "--", prefix, str(batch)], capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def stored_rows(engine: Any) -> int:
    from sqlalchemy import func, select

    from rudikit.store.production_tables import production_predictions

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(production_predictions))
                   .scalar_one())


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per run")
    parser.add_argument("--database-url", default=None,
                        help="store URL (default: SQLite in the project)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per server")
    parser.add_argument("--sqlite-synchronous", default="NORMAL", choices=["FULL", "NORMAL"])
    parser.add_argument("--project", type=Path, default=None,
                        help="reuse this trained project (its selected model group is deployed)")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--schema", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.bare_server:
        import uvicorn

        uvicorn.run(bare_app(args.project, args.database_url, args.schema), host="127.0.0.1",
                    port=args.port, log_level="warning", access_log=False)
        return

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (Debian/Ubuntu) and run "
                         "again. The benchmark needs it as its load generator.")

    from sqlalchemy import select, text

    from rudikit.run.develop import run_project
    from rudikit.service.auth import create_token
    from rudikit.service.deploy import deploy
    from rudikit.store import tables as t
    from rudikit.store.engine import create_store_engine, open_store

    work = Path(tempfile.mkdtemp(prefix="rudi-bench-serve-"))
    url = args.database_url
    schema = f"rudi_bench_{uuid.uuid4().hex[:8]}" if url and not url.startswith("sqlite") \
        else None
    servers: list[subprocess.Popen[bytes]] = []
    try:
        project = args.project or make_project(work / "project")
        started = time.perf_counter()
        engine = open_store(url, project, schema=schema)
        with engine.connect() as conn:
            group = conn.execute(select(t.models.c.model_group_id).where(
                t.models.c.selected.is_(True)).order_by(t.models.c.id.desc()).limit(1)
            ).scalar_one_or_none()
        if group is None:
            run_project(project, url=url, schema=schema, engine=engine)
            with engine.connect() as conn:
                group = conn.execute(select(t.models.c.model_group_id).where(
                    t.models.c.selected.is_(True)).order_by(t.models.c.id.desc()).limit(1)
                ).scalar_one()
            print(f"trained the model in {time.perf_counter() - started:.1f} s")
        deployment = deploy(engine, group, reason="benchmark", by="bench/serve.py",
                            project_dir=project)
        _, token = create_token(engine, "predict", "benchmark", "bench/serve.py")
        store_name = engine.url.render_as_string(hide_password=True) + (
            f" (schema {schema})" if schema else "")
        print(f"store: {store_name}")
        print(f"model: group {group} ({deployment.algorithm}), model {deployment.model_id}; "
              f"workers per server: {args.workers}"
              + ("" if url else f"; SQLite synchronous={args.sqlite_synchronous}"))

        env = {**os.environ, "RUDI_SQLITE_SYNCHRONOUS": args.sqlite_synchronous}
        if url:
            env["RUDI_DATABASE_URL"] = url
        if schema:
            env["RUDI_DATABASE_SCHEMA"] = schema
        bases = {}
        for kind in ("stored", "bare"):
            port = free_port()
            log = work / f"{kind}.log"
            if kind == "stored":
                command = [sys.executable, "-m", "rudikit.cli", "serve", str(project),
                           "--port", str(port), "--workers", str(args.workers),
                           "--log-level", "warning"]
            else:
                command = [sys.executable, __file__, "--bare-server", "--port", str(port),
                           "--project", str(project)] + (
                    ["--database-url", url] if url else []) + (
                    ["--schema", schema] if schema else [])
                if args.workers > 1:
                    print("note: the bare server runs one process")
            with log.open("wb") as handle:
                servers.append(subprocess.Popen(command, env=env, stdout=handle,
                                                stderr=subprocess.STDOUT, cwd=ROOT))
            bases[kind] = f"http://127.0.0.1:{port}"
            wait_ready(bases[kind], servers[-1], log)
        script = lua_script(work, token)

        results: dict[tuple[str, int], dict[str, Any]] = {}
        run = uuid.uuid4().hex[:6]
        load = os.getloadavg()[0]
        for batch in (1, 100):
            for kind in ("bare", "stored"):
                run_wrk(bases[kind], script, f"w{run}{kind}{batch}", batch, args.warmup)
                time.sleep(0.5)
                before = stored_rows(engine)
                result = run_wrk(bases[kind], script, f"m{run}{kind}{batch}", batch,
                                 args.duration)
                # the answers still in flight when wrk stopped are committed within ms
                time.sleep(0.5)
                result["stored"] = stored_rows(engine) - before
                results[(kind, batch)] = result
        print(f"load average before the runs: {load:.2f} (2 cores; wrk runs on the same "
              "machine)")
        print()
        print(f"{'':22}{'requests/s':>11}{'obs/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
              f"{'non-2xx':>9}{'stored rows':>13}")
        for batch in (1, 100):
            label = "single" if batch == 1 else f"batch of {batch}"
            for kind in ("stored", "bare"):
                r = results[(kind, batch)]
                stored = f"{r['stored']:>13,}" if kind == "stored" else f"{'-':>13}"
                print(f"{label + ', ' + kind:22}{r['rps']:>11,.0f}{r['rps'] * batch:>9,.0f}"
                      f"{r['p50_us'] / 1000:>8.1f}{r['p99_us'] / 1000:>8.1f}"
                      f"{r['non2xx'] + r['errors']:>9}{stored}")
            ratio = results[("stored", batch)]["rps"] / results[("bare", batch)]["rps"]
            print(f"{label + ', ratio':22}{ratio:>11.2f}  (stored / bare)")
        single = results[("stored", 1)]
        answered = single["requests"] - single["non2xx"] - single["errors"]
        print()
        per_second = single["stored"] / (single["duration_us"] / 1e6)
        print(f"stored single predictions/s: {per_second:,.0f} ({single['stored']:,} rows for "
              f"{answered:,} answers)")
        engine.dispose()
    finally:
        for process in servers:
            process.terminate()
        for process in servers:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        if schema and url:
            admin = create_store_engine(url)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
