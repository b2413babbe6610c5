"""Figure: the EIS lists of a kept run (issue 20, section 3 of ``bench/RESULTS-issue20.md``):
precision in the top k of every model group on every test list, from the run's store.

For each run folder kept by ``bench/run_cost.py --keep DIR`` it prints, per model group (the
chosen one starred, baselines last), the mean over the yearly lists (the as-of dates on 1
January), the mean over every list (with quarterly lists: the quarterly-list mean), the 2016
lists (1 January and, with quarterly lists, their mean), then the chosen group's and the
baselines' precision on every list.

Run: ``.venv/bin/python bench/eis_lists.py DIR/eis-subset_quarterly-* ...``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from rudikit.reports.temporal_report import precision_over_time
from rudikit.store import tables
from rudikit.store.engine import open_store
from rudikit.store.queries import runs as runs_q


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub table, numbers to three decimals."""
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    head = [str(c) for c in frame.columns]
    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |"
                     for r in [head, ["---"] * len(head), *rows])


def lists(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per group: yearly mean, every-list mean, 2016; one row per list date: the
    chosen group and the baselines) of the last run stored in ``folder``."""
    engine = open_store(project_dir=folder)
    run_id = runs_q.ids(engine, tables.runs)[-1]
    precision = precision_over_time(engine, run_id)
    chosen = set(precision.loc[precision["selected"].astype(bool), "model_group_id"])
    table = precision.pivot_table(index=["model_group_id", "name", "baseline"],
                                  columns="as_of_date", values="value")
    dates = pd.DatetimeIndex(table.columns)
    january = dates[(dates.month == 1) & (dates.day == 1)]
    last_year = dates[dates.year == dates.max().year]
    summary = pd.DataFrame({
        "yearly mean": table[january].mean(axis=1),
        "all lists mean": table.mean(axis=1),
        f"{last_year[0]:%Y-%m-%d}": table[last_year[0]],
        f"{last_year[0]:%Y} lists mean": table[last_year].mean(axis=1)}).reset_index()
    summary["name"] = [("*" if g in chosen else "") + n
                       for g, n in zip(summary["model_group_id"], summary["name"], strict=True)]
    summary = summary.sort_values(["baseline", "all lists mean"], ascending=[True, False])
    keep = summary.loc[summary["name"].str.startswith("*") | summary["baseline"],
                       "model_group_id"]
    per_list = table.loc[table.index.get_level_values(0).isin(keep)].T
    per_list.columns = [("*" if g in chosen else "") + n for g, n, _ in per_list.columns]
    per_list.insert(0, "list", [f"{d:%Y-%m-%d}" for d in per_list.index])
    return summary.drop(columns="baseline"), per_list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    for folder in args.folders:
        summary, per_list = lists(folder)
        print(f"## {folder.name}\n")
        print(markdown(summary), "\n")
        print(markdown(per_list), "\n")


if __name__ == "__main__":
    main()
