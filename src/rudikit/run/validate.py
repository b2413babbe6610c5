"""``rudi validate`` of a temporal project: the event tables load, the declared officer
attributes and reference groups exist, the hyperparameter names are real, no date column has
more bad values than ``data.max_bad_share``, and every test list has officers whose label window
has closed. The model libraries are imported after the data is read."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from rudikit.config import BASELINE, TemporalProject, label_months, missing_rationale
from rudikit.data.event_tables import (
    ENTITY,
    attribute_columns,
    load_event_tables,
    monitored_table_problems,
    officer_attributes,
)
from rudikit.data.sources import LoadedSource


def _test_dates(project: TemporalProject) -> list[pd.Timestamp]:
    config = project.temporal
    return sorted({pd.Timestamp(d) for split in config.splits() for test in split.tests
                   for d in test.as_of_dates})


def temporal_problems(project: TemporalProject, tables: Mapping[str, pd.DataFrame],
                      loaded: Sequence[LoadedSource]) -> list[str]:
    """What ``rudi run`` would refuse of a temporal project, found from the project file and
    the event tables before any feature is built or model fitted (``rudi validate`` and
    ``rudi run`` both ask): misspelt hyperparameters, fairness columns and reference groups the
    officers lack, date columns with more unparseable values than ``data.max_bad_share``."""
    from rudikit.data.validation import bad_date_problems
    from rudikit.fairness.stage import check_fairness_columns, check_reference_groups
    from rudikit.models.ensemble import parameter_problems
    from rudikit.models.estimators import check_parameter_names
    from rudikit.models.temporal import experiment_grid

    models = project.temporal.models
    problems = check_parameter_names(models, "temporal.models")
    candidates = (sum(p.algorithm != BASELINE for p, _ in experiment_grid(project.temporal))
                  + sum(m.search.trials for m in models if m.search is not None))
    problems += [p for i, m in enumerate(models) if m.algorithm == "ensemble"
                 for p in parameter_problems(m.params, f"temporal.models[{i}]", candidates)]
    officers = tables["officers"]
    fairness = project.fairness
    missing = check_fairness_columns(fairness, attribute_columns(officers))
    problems += missing
    if fairness.reference_groups and not missing:
        # the groups as the audits see them: the roster's values, the age band on the first
        # and the last test list date
        dates = _test_dates(project)
        rows = pd.concat([pd.DataFrame({ENTITY: officers[ENTITY], "as_of_date": when})
                          for when in dates[:1] + dates[-1:]], ignore_index=True)
        problems += check_reference_groups(
            fairness, officer_attributes(officers, rows, fairness.columns))
    reports = {s.name.rsplit(".", 1)[-1]: s.report for s in loaded}
    for name, frame in tables.items():
        dates_of = {c: f"data.sources[0] table {name!r}" for c in frame.columns
                    if str(c).endswith("_date")}
        problems += bad_date_problems(dates_of, frame, [reports[name]] if name in reports
                                      else [], project.data.max_bad_share)
    return problems


def validate_temporal(project: TemporalProject, project_dir: Path
                      ) -> tuple[list[str], list[str]]:
    """(facts, problems) for ``rudi validate``: the event tables load, the checks of
    :func:`temporal_problems` pass, and every test as-of date of the timechop has officers
    whose label window is not censored."""
    problems = [f"{path}: required rationale field is empty"
                for path in missing_rationale(project.rationale)]
    tables, loaded = load_event_tables(project, project_dir)
    # the model libraries load once the data is read, so the command answers at once
    from rudikit.features.asof.defaults import event_specs
    from rudikit.features.asof.labels import build_labels
    from rudikit.features.asof.specs import FeatureError
    from rudikit.models.temporal import label_spec

    try:  # prepare builds the specs too; reported here before anything is fitted
        event_specs(project.temporal.complete_from)
    except FeatureError as exc:
        problems.append(str(exc))
    facts = [f"data.sources[0]: {s.name} ({s.origin}) {len(s.frame):,} rows"
             + (f", {len(s.report.errors):,} unparseable values" if s.report.errors else "")
             + (f" - {s.note}" if s.note else "") for s in loaded]
    problems += temporal_problems(project, tables, loaded)
    problems += monitored_table_problems(project)
    config = project.temporal
    span = config.splits()[-1].test.label_timespan
    labels = build_labels(tables, _test_dates(project), dataclasses.replace(
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
