"""Benchmark: what the loaders' value rules and the field aliases add to parsing a /predict body.

`parse_observations` on the stop-and-search features, for one observation and for a
batch of 100: as the service runs it (aliases resolved, then the rules of
rudikit.data.validation: text stripped, impossible coordinates and out-of-range date-times set
missing) against the same parse with the rules switched off (the baseline, what the service did
before). Bodies with the model's names and bodies with the data.police.uk names are both
timed. Rounds alternate between the variants, so both see the same machine; the median of the
rounds is printed with the ratio to the baseline.

Run: ``PYTHONPATH=src .venv/bin/python bench/observation_rules.py [--rounds 7]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import orjson
import pandas as pd

from rudikit.data.police_uk import ARCHIVE_COLUMNS
from rudikit.features.encoding import TabularEncoder
from rudikit.service import observations
from rudikit.service.observation_schema import ObservationSchema
from rudikit.service.observations import parse_observations

CATEGORICAL = ["type", "gender", "age_range", "officer_defined_ethnicity", "legislation",
               "object_of_search", "force"]
ROW: dict[str, Any] = {
    "type": "Person search", "gender": "Male", "age_range": "18-24",
    "officer_defined_ethnicity": "White", "legislation": "Misuse of Drugs Act 1971 (section 23)",
    "object_of_search": "Controlled drugs", "force": "metropolitan",
    "part_of_a_policing_operation": False, "latitude": 51.5, "longitude": -0.12,
    "datetime": "2020-01-05T13:20:00+00:00"}


def schema() -> ObservationSchema:
    frame = pd.DataFrame([ROW] * 3)
    encoder = TabularEncoder(CATEGORICAL, ["part_of_a_policing_operation"],
                             ["latitude", "longitude"], "datetime").fit(frame)
    return ObservationSchema(encoder, field_aliases={"station": "force"})


def bodies(n: int, police_names: bool) -> bytes:
    names = {v: k for k, v in ARCHIVE_COLUMNS.items()} | {"force": "station"}
    rows = []
    for i in range(n):
        row = {"observation_id": f"obs-{i}", **ROW}
        if police_names:
            row = {names.get(k, k): v for k, v in row.items()}
        rows.append(row)
    return orjson.dumps(rows[0] if n == 1 else {"observations": rows})


def timed(schema: ObservationSchema, body: bytes, repeat: int, rules: bool) -> float:
    """Microseconds per parse; without ``rules`` the loaders' value rules are switched off
    for the timed loop only (the module's function swapped, so the call costs nothing)."""
    apply_rules = observations.apply_loader_rules
    if not rules:
        observations.apply_loader_rules = lambda schema, parsed: None  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        for _ in range(repeat):
            parse_observations(schema, body)
        return (time.perf_counter() - start) / repeat * 1e6
    finally:
        observations.apply_loader_rules = apply_rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    parsing = schema()
    print(f"{'body':<34}{'rules (us)':>12}{'baseline (us)':>15}{'ratio':>8}")
    for n in (1, 100):
        for police_names in (False, True):
            body = bodies(n, police_names)
            repeat = 2000 if n == 1 else 40
            ruled, base = [], []
            for _ in range(args.rounds):  # interleaved
                ruled.append(timed(parsing, body, repeat, rules=True))
                base.append(timed(parsing, body, repeat, rules=False))
            r, b = statistics.median(ruled), statistics.median(base)
            label = f"{n} observation(s), {'police.uk' if police_names else 'model'} names"
            print(f"{label:<34}{r:>12.1f}{b:>15.1f}{r / b:>8.2f}")


if __name__ == "__main__":
    main()
