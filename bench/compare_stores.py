"""Compare two SQLite results stores of the same project table by table: the check that a
speed change leaves every stored figure as it was (run the same ``rudi.yaml`` with the code
before and after into two folders, then compare their ``.rudi/rudi.db``).

Every table is read in id order and compared exactly (floats to the last bit), except what
differs between two runs of the same code: timestamps, artefact paths and hashes (a fitted
pipeline's bytes differ run to run), the code version, the source folder, each fit's
``train_seconds`` evaluation; the report payload is compared as parsed JSON without those.
A figure that is NaN compares unequal to itself, so a table holding one reads as differing.

Run: ``.venv/bin/python bench/compare_stores.py before/.rudi/rudi.db after/.rudi/rudi.db``;
exits 1 when a table differs.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any

VOLATILE = {"created_at", "started_at", "finished_at", "train_seconds", "artefact_path",
            "artefact_hash", "report_path", "code_version", "location"}
#: The same in the report payload: a fit's seconds, its artefact's hash, the source folder.
VOLATILE_KEYS = {"created_at", "started_at", "seconds", "artefact", "location"}


def steady(value: Any) -> Any:
    """A parsed payload without :data:`VOLATILE_KEYS`, at any depth."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    return [steady(v) for v in value] if isinstance(value, list) else value


def rows(conn: sqlite3.Connection, table: str) -> list[tuple]:
    """The table's rows in insertion order, volatile columns and fit times left out; a JSON
    payload parsed."""
    columns = [r[1] for r in conn.execute(f"pragma table_info({table})")
               if r[1] not in VOLATILE]
    where = " where metric != 'train_seconds'" if table == "evaluations" else ""
    found = conn.execute(f"select {', '.join(columns)} from {table}{where} order by rowid")
    if "payload" not in columns:
        return found.fetchall()
    at = columns.index("payload")
    return [(*r[:at], steady(json.loads(r[at])), *r[at + 1:]) for r in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    args = parser.parse_args()
    one, other = sqlite3.connect(args.before), sqlite3.connect(args.after)
    tables = [name for (name,) in one.execute(
        "select name from sqlite_master where type = 'table' order by name")]
    differ = 0
    for table in tables:
        a, b = rows(one, table), rows(other, table)
        if a == b:
            if a:
                print(f"{table}: identical, {len(a):,} rows")
            continue
        differ += 1
        first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                     min(len(a), len(b)))
        print(f"{table}: DIFFERS ({len(a):,} and {len(b):,} rows; first at row {first})")
    print("every table identical" if not differ else f"{differ} tables differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
