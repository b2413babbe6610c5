"""A production rehearsal of the early intervention system on the real Chicago files (``rudi
demo eis``): what a department would live through after deploying a model in January 2014.

1. the demo project: the EIS example with a grid small enough for a demo (the two baselines,
   logistic regression and the LightGBM the full run chooses), test years 2013-2014 so the
   last split's model is trained on lists up to 2013 and judged on January 2014, and a monthly
   schedule from 2014-01-01; the CPDB files are copied beside it so one can be rewritten;
2. development (``rudi run``), then the chosen group's last-split model is deployed;
3. month by month from 2014-01 to 2016-04 (the use-of-force files end in April 2016): the
   month's list (``rudi score``), reviews of its top 10 by simulated supervisors (fixed seed:
   they agree with most flags and offer support to some), a monitoring pass, and in January a
   retrain on the newest matured lists;
4. in the middle, one historical use-of-force record is rewritten in the copied file, as a
   department re-coding past reports would, so the next pass raises an integrity alert.

The steps are plain functions; the command line (``rudi demo eis``) strings them together with
progress, and passes in the monitoring and retraining passes.
"""

from __future__ import annotations

import gzip
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sqlalchemy.engine import Engine

from rudikit.config import PROJECT_FILE, TemporalProject, load_project
from rudikit.data.event_tables import load_event_tables
from rudikit.data.sources import LoadedSource
from rudikit.monitoring.scheduled_lists import ScoredList, score_lists
from rudikit.store.list_tables import record_review

#: The example's models a demo keeps (by name), in the example's order.
DEMO_MODELS = ("baseline: complaints past year", "baseline: uses of force past year",
               "logistic regression (C=0.1)", "lightgbm 400 trees, 7 leaves")
FIRST_LIST = pd.Timestamp("2014-01-01")
LAST_LIST = pd.Timestamp("2016-04-01")  # the use-of-force files end in April 2016
REWRITE_AFTER = pd.Timestamp("2015-06-01")  # a past record is re-coded in the month after
SUBJECTS_FILE = "TRR-subjects_2004-2016_2016-09.csv.gz"
#: Simulated supervisors: how often they agree with a flag, and what they then decide.
AGREE_SHARE = 0.7
SUPPORT = ("supervisor_meeting", "training", "counselling", "monitor")


def write_demo_project(example: Path, data: Path, workdir: Path) -> Path:
    """The demo's rudi.yaml in ``workdir`` (from the EIS example) and a copy of the CPDB files
    under ``workdir/data``; returns the project folder."""
    config = yaml.safe_load((example / PROJECT_FILE).read_text(encoding="utf-8"))
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / "data" / "chicago_cpdb"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(data, copy)
    for path in copy.iterdir():  # the shared originals are read-only; the copy must not be
        path.chmod(0o644)
    config["name"] = "eis-chicago-demo"
    config["data"]["sources"][0]["path"] = str(copy.resolve())
    temporal = config["temporal"]
    temporal["name"] = "eis-chicago-demo"
    temporal["label"] = "any_complaint"
    temporal["models"] = [m for m in temporal["models"] if m.get("name") in DEMO_MODELS]
    temporal["timechop"]["label_end_time"] = "2015-01-01"
    temporal["test_from"] = "2013-01-01"
    temporal["bootstrap"] = 100
    temporal["stability"] = {"seeds": [0, 1], "algorithm": "random_forest",
                             "n_estimators": [100],
                             "params": temporal["stability"].get("params", {}),
                             "consecutive": {"days": 2, "weeks": 2, "months": 2},
                             # the perturbation refits belong to `rudi run examples/eis`
                             "resamples": 0, "drop_sources": []}
    config["production"] = {"frequency": "monthly", "start": FIRST_LIST.date().isoformat(),
                            "reasons": 3}
    (workdir / PROJECT_FILE).write_text(yaml.safe_dump(config, sort_keys=False),
                                        encoding="utf-8")
    return workdir


def simulate_reviews(engine: Engine, scored: ScoredList, rng: np.random.Generator,
                     n: int = 10) -> int:
    """Supervisors review the top ``n`` of a list: agree with ``AGREE_SHARE`` of flags and then
    offer one kind of support, else take no action. Returns how many were stored."""
    stored = 0
    for r in scored.top.head(n).itertuples(index=False):
        agree = bool(rng.random() < AGREE_SHARE)
        decision = str(rng.choice(SUPPORT)) if agree else "no_action"
        record_review(engine, str(r.entity_id), scored.as_of, reviewer="demo supervisor",
                      outcome=decision, agreement="agree" if agree else "disagree",
                      model_group_id=None)
        stored += 1
    return stored


def rewrite_past_record(project_dir: Path, use_of_force: pd.DataFrame, when: str = "2012-06"
                        ) -> tuple[str, str]:
    """Re-code one use-of-force report of month ``when`` in the project's copy of the CPDB
    files: the subject-injured flag of a report the loaded ``use_of_force`` table holds flips,
    as a department correcting past reports would. Returns (table, period): what the
    integrity check must name."""
    dated = use_of_force[pd.to_datetime(use_of_force["trr_date"]).dt.strftime("%Y-%m") == when]
    if dated.empty:
        raise ValueError(f"use_of_force: no linked report dated {when}")
    report = str(dated["trr_id"].iloc[0])
    path = project_dir / "data" / "chicago_cpdb" / SUBJECTS_FILE
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    rows = frame["trr_id"].str.replace(r"\.0$", "", regex=True) == report
    injured = frame.loc[rows, "injured"].str.upper().isin(["YES", "Y"]).any()
    frame.loc[rows, "injured"] = "No" if injured else "Yes"
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
    return "use_of_force", when


@dataclass
class Month:
    as_of: pd.Timestamp
    list_id: int | None
    reviews: int
    monitor: Any = None
    retrain: Any = None
    rewritten: tuple[str, str] | None = None


@dataclass
class Rehearsal:
    project: TemporalProject
    months: list[Month] = field(default_factory=list)


def rehearse(project_dir: Path, engine: Engine, *, by: str,
             monitor: Callable[[TemporalProject, pd.Timestamp, dict[str, pd.DataFrame],
                                list[LoadedSource]], Any],
             retrain: Callable[[TemporalProject, pd.Timestamp], Any],
             say: Callable[[str], None], seed: int = 0,
             first: pd.Timestamp = FIRST_LIST, last: pd.Timestamp = LAST_LIST) -> Rehearsal:
    """Replay ``first`` to ``last`` month by month (a model must be deployed): score and review
    every month, monitor each quarter and in the last month (a pass judges every list so far;
    monthly passes would add minutes and show the same), retrain each January after the
    first; rewrite a past record once, just before a monitoring pass."""
    project = load_project(project_dir)
    assert isinstance(project, TemporalProject)
    rng = np.random.default_rng(seed)
    done = Rehearsal(project)
    tables, loaded = load_event_tables(project, project_dir)
    rewritten = None
    for as_of in pd.date_range(first, last, freq="MS"):
        month = Month(as_of, None, 0)
        if as_of.month == 1 and as_of > first:
            month.retrain = retrain(project, as_of)
        result = score_lists(project, project_dir, engine, by=by, as_of=as_of, tables=tables,
                             loaded=loaded)
        for scored in result.lists:
            month.list_id = scored.list_id
            month.reviews = simulate_reviews(engine, scored, rng)
        if rewritten is None and as_of > REWRITE_AFTER:
            rewritten = month.rewritten = rewrite_past_record(project_dir,
                                                                  tables["use_of_force"])
            tables, loaded = load_event_tables(project, project_dir)
            say(f"{as_of:%Y-%m}: re-coded one {rewritten[0]} record of {rewritten[1]} in the "
                "copied source file")
        if as_of.month in (1, 4, 7, 10) or as_of == last:
            month.monitor = monitor(project, as_of, tables, loaded)
        done.months.append(month)
        say(f"{as_of:%Y-%m}: list {month.list_id}, {month.reviews} reviews")
    return done
