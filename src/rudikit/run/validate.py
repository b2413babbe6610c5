"""``rudi validate`` of a temporal project: the event tables load, the declared officer
attributes exist and every test list has officers whose label window has closed. The model
libraries are imported after the data is read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rudikit.config import TemporalProject, label_months, missing_rationale
from rudikit.data.event_tables import (
    attribute_columns,
    load_event_tables,
    monitored_table_problems,
)


def validate_temporal(project: TemporalProject, project_dir: Path
                      ) -> tuple[list[str], list[str]]:
    """(facts, problems) for ``rudi validate``: the event tables load, the fairness
    attributes exist, and every test as-of date of the timechop has officers whose label window
    is not censored."""
    problems = [f"{path}: required rationale field is empty"
                for path in missing_rationale(project.rationale)]
    tables, loaded = load_event_tables(project, project_dir)
    # the model libraries load once the data is read, so the command answers at once
    from rudikit.fairness.stage import check_fairness_columns
    from rudikit.features.asof import FeatureError, build_labels, event_specs
    from rudikit.models.temporal import label_spec

    try:  # prepare builds the specs too; reported here before anything is fitted
        event_specs(project.temporal.complete_from)
    except FeatureError as exc:
        problems.append(str(exc))
    facts = [f"data.sources[0]: {s.name} ({s.origin}) {len(s.frame):,} rows"
             + (f" - {s.note}" if s.note else "") for s in loaded]
    problems += check_fairness_columns(project.fairness, attribute_columns(tables["officers"]))
    problems += monitored_table_problems(project)
    config = project.temporal
    dates = sorted({d for split in config.splits() for test in split.tests
                    for d in test.as_of_dates})
    span = config.splits()[-1].test.label_timespan
    labels = build_labels(tables, dates, dataclasses.replace(
        label_spec(config), window_months=label_months(span)))
    for when, rows in labels.groupby("as_of_date"):
        known = rows[config.label].dropna()
        if known.empty:
            problems.append(f"temporal.timechop: every label window from the test as-of date "
                            f"{when:%Y-%m-%d} runs past the end of the {config.label} data "
                            "(lower label_end_time)")
        else:
            facts.append(f"temporal.label {config.label} on {when:%Y-%m-%d}: "
                         f"{int(known.sum()):,} positive of {len(known):,} officers")
    return facts, problems
