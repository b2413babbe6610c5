"""What a reviewer sees beside each entity on an intervention list, and what the project says
about its lists.

* the project (``rudi.yaml`` in the served project folder, else the newest run's configuration
  in the store): its kind (a temporal list of officers, or cases such as stop-and-searches),
  the decisions a reviewer may record (``review.decisions``), the words for its inputs
  (``review.labels``) and, for cases, the input holding the case's own time
  (``data.knowledge_date``), which dates a list of cases;
* per entity: its top reasons in words (:func:`rudikit.features.readable.reason_words`), its
  recent history (an officer: events per year from the event tables; a case: its fields), its
  previous rank (an officer, from the rank changes stored with the list) and, once known, the
  outcome (an officer: the project's label over the label window; a case: the outcome reported
  to ``POST /outcomes``, or the stored label of a batch-scored case);
* the alerts of the newest monitor pass of the list's model group (what the reviewer should
  know about the list itself).

The event tables are read once per server process, the first time a list needs them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import (
    PROJECT_FILE,
    Project,
    ProjectError,
    Review,
    TemporalProject,
    label_months,
    load_project,
    parse_project,
)
from rudikit.features.asof.defaults import DEFAULT_SPECS
from rudikit.features.asof.labels import build_labels
from rudikit.features.readable import feature_label, reason_words, value_text
from rudikit.service.deploy import LoadedModel
from rudikit.store.queries import lists as lists_q
from rudikit.store.queries import monitoring as monitoring_q
from rudikit.store.queries import production as production_q
from rudikit.store.queries import runs as runs_q

log = logging.getLogger("rudikit.service")
#: Calendar years of an officer's history shown (the list's year and those before it).
HISTORY_YEARS = 5
#: Rank-change horizons, nearest first: the previous rank is the nearest earlier list's.
HORIZONS = ("day", "week", "month", "quarter", "year")


@dataclass
class ListProject:
    """What the project says about its lists (defaults when there is no project to read)."""

    kind: Literal["temporal", "case"]
    review: Review = field(default_factory=Review)
    project: Project | TemporalProject | None = None
    note: str = ""  # why the project could not be read

    @property
    def decisions(self) -> dict[str, str]:
        return self.review.decision_labels(self.kind)

    @property
    def population(self) -> str:
        return "officers" if self.kind == "temporal" else "cases"

    @property
    def time_field(self) -> str | None:
        """The input holding a case's own time (None for a temporal project)."""
        if isinstance(self.project, Project):
            return self.project.data.knowledge_date
        return None


def read_project(project_dir: Path, engine: Engine) -> ListProject:
    """The served project's ``rudi.yaml``, else the configuration of the newest run."""
    problem = ""
    if (Path(project_dir) / PROJECT_FILE).exists():
        try:
            project = load_project(project_dir)
            kind: Literal["temporal", "case"] = \
                "temporal" if isinstance(project, TemporalProject) else "case"
            return ListProject(kind, project.review, project)
        except ProjectError as exc:
            problem = str(exc)
            log.error("lists use default review settings: %s", exc)
    config = runs_q.newest_run_config(engine) or {}
    kind = "temporal" if "temporal" in config else "case"
    try:
        project = parse_project(config) if config else None
    except ProjectError as exc:
        problem = problem or str(exc)
        project = None
    if project is not None:
        return ListProject(kind, project.review, project, problem)
    return ListProject(kind, Review(), None, problem)


class ListContext:
    """The project and, for a temporal project, its event tables: read once per process.
    ``served``: the model the service serves now (explains a list of cases)."""

    def __init__(self, project_dir: Path, engine: Engine,
                 served: Callable[[], LoadedModel] | None = None):
        self.project_dir = Path(project_dir)
        self.engine = engine
        self.served = served
        self._lock = threading.Lock()
        self._project: ListProject | None = None
        self._tables: dict[str, pd.DataFrame] | None = None
        self._tables_error: str | None = None

    @property
    def project(self) -> ListProject:
        with self._lock:
            if self._project is None:
                self._project = read_project(self.project_dir, self.engine)
            return self._project

    def event_tables(self) -> dict[str, pd.DataFrame] | None:
        """The temporal project's event tables, or None (no such project, or unreadable)."""
        project = self.project.project
        if not isinstance(project, TemporalProject):
            return None
        with self._lock:
            if self._tables is None and self._tables_error is None:
                from rudikit.data.event_tables import load_event_tables

                try:
                    self._tables = load_event_tables(project, self.project_dir)[0]
                except Exception as exc:  # noqa: BLE001 - a list without history is still a list
                    self._tables_error = str(exc)
                    log.error("the list shows no history: %s", exc)
            return self._tables


# --- officers (a temporal project's production lists) -----------------------------------------


def officer_history(tables: dict[str, pd.DataFrame], entities: list[str], as_of: date
                    ) -> dict[str, dict[str, Any]]:
    """entity -> {years, rows: [{label, counts}]}: events per calendar year before ``as_of``
    (the list knew nothing later; the last year is the one ``as_of`` falls in, up to the day
    before it, or the year before for a list of 1 January), for :data:`HISTORY_YEARS` years,
    per event table the features read (distinct events: a complaint with three allegations
    counts once)."""
    from rudikit.data.event_tables import ENTITY

    last = as_of.year if (as_of.month, as_of.day) != (1, 1) else as_of.year - 1  # known days
    years = list(range(last - HISTORY_YEARS + 1, last + 1))
    cutoff, start = pd.Timestamp(as_of), pd.Timestamp(years[0], 1, 1)
    wanted = set(entities)
    counts: dict[str, list[dict[str, Any]]] = {e: [] for e in entities}
    for spec in DEFAULT_SPECS:
        if spec.table not in tables or spec.table == "unit_history":
            continue
        events = tables[spec.table]
        when = pd.to_datetime(events[spec.date_column], errors="coerce")
        if when.dt.tz is not None:
            when = when.dt.tz_convert(None)
        ids = events[ENTITY].astype("string")
        keep = ids.isin(wanted) & (when >= start) & (when < cutoff)
        part = pd.DataFrame({"entity": ids[keep], "year": when[keep].dt.year,
                             "event": events.loc[keep, spec.id_column]
                             if spec.id_column else events.index[keep]})
        per = part.groupby(["entity", "year"])["event"].nunique()
        label = feature_label(f"{spec.name}_all_all_count").removesuffix(" ever")
        for entity in entities:
            counts[entity].append({"label": label, "counts": [
                int(per.get((entity, y), 0)) for y in years]})
    return {e: {"years": years, "rows": rows} for e, rows in counts.items()}


def officer_outcomes(project: TemporalProject, tables: dict[str, pd.DataFrame],
                     entities: list[str], as_of: date) -> dict[str, dict[str, Any]]:
    """entity -> {known, value, text}: the project's label over the window after ``as_of``
    (the last split's test label timespan), from the event tables; unknown until the window
    has passed the newest record."""
    from rudikit.data.event_tables import ENTITY
    from rudikit.models.temporal import label_spec

    split = project.temporal.splits()[-1]
    months = label_months(split.test.label_timespan)
    spec = dataclasses.replace(label_spec(project.temporal), window_months=months)
    when = pd.Timestamp(as_of)
    ends = when + pd.DateOffset(months=months)
    span = ("year" if months == 12 else f"{months // 12} years" if months % 12 == 0
            else f"{months} months")
    what = f"{spec.name.replace('_', ' ')} in the {span} after the list"
    try:
        labels = build_labels(tables, [when], spec)
    except Exception as exc:  # noqa: BLE001 - an officer no longer on the roster, bad data...
        log.error("no outcomes for the list of %s: %s", as_of, exc)
        return {}
    found = dict(zip(labels[ENTITY].astype("string"), labels[spec.name], strict=True))
    out = {}
    for entity in entities:
        value = found.get(entity)
        if value is None or pd.isna(value):
            out[entity] = {"known": False, "value": None,
                           "text": f"{what}: not known before {ends:%Y-%m-%d}"}
        else:
            out[entity] = {"known": True, "value": int(value),
                           "text": f"{what}: {'yes' if value else 'no'}"}
    return out


def previous_ranks(engine: Engine, list_id: int) -> dict[str, dict[str, Any]]:
    """entity -> {rank, date}: its rank on the nearest earlier production list."""
    changes = lists_q.production_rank_changes(engine, list_id)
    out: dict[str, dict[str, Any]] = {}
    if changes.empty:
        return out
    changes = changes[changes["previous_rank"].notna()]
    order = {h: i for i, h in enumerate(HORIZONS)}
    changes = changes.assign(o=changes["horizon"].map(order)).sort_values("o")
    for r in changes.drop_duplicates("entity_id").itertuples(index=False):
        out[str(r.entity_id)] = {"rank": int(r.previous_rank),
                                 "date": pd.Timestamp(r.previous_date).date().isoformat()}
    return out


# --- cases (stop-and-search) ------------------------------------------------------------------


def case_fields(features: dict[str, Any] | None, labels: dict[str, str]
                ) -> list[dict[str, str]]:
    """A case's stored inputs as (label, value) pairs, for a definition list."""
    return [{"label": feature_label(k, labels), "value": value_text(v)}
            for k, v in (features or {}).items()]


def case_reasons(model: LoadedModel | None, model_id: int | None,
                 features: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """observation_id -> its top reasons, from the served model when it is the one that scored
    the cases (the explanation ``POST /predict?explain=true`` answers with); none otherwise."""
    from rudikit.service.scoring import cannot_explain, explain_rows

    if model is None or model.model_id != model_id or not features \
            or cannot_explain(model.pipeline) is not None:
        return {}
    encoder = model.pipeline.named_steps["encode"]
    ids, rows = list(features), []
    for oid in ids:
        row = {c: features[oid].get(c) for c in encoder.input_columns}
        when = row.get(encoder.datetime) if encoder.datetime else None
        if isinstance(when, str):  # stored as received; the scorer reads it parsed
            try:
                row[encoder.datetime] = datetime.fromisoformat(when)
            except ValueError:
                row[encoder.datetime] = None
        rows.append(row)
    try:
        explained = explain_rows(model.pipeline, rows)
    except Exception as exc:  # noqa: BLE001 - the list is shown without reasons, and why logged
        log.error("no reasons for the listed cases: %s", exc)
        return {}
    return {oid: answer["reasons"] for oid, answer in zip(ids, explained, strict=True)}


def case_outcomes(engine: Engine, project: Project | None, observation_ids: list[str]
                  ) -> dict[str, dict[str, Any]]:
    """observation_id -> {known, value, text}: the outcome reported to ``POST /outcomes``."""
    what = (project.label.name if project is not None else "outcome").replace("_", " ")
    reported = production_q.reported_outcomes(engine, observation_ids)
    words = {1: "yes", 0: "no", None: "not reported yet"}
    return {o: {"known": o in reported, "value": reported.get(o),
                "text": f"{what}: {words[reported.get(o)]}"} for o in observation_ids}


# --- the whole entry --------------------------------------------------------------------------


def labelled_reasons(reasons: list[dict[str, Any]] | None, context: ListProject
                     ) -> list[dict[str, Any]] | None:
    if reasons is None:
        return None
    return [reason_words(r, context.review.labels, context.population) for r in reasons]


def list_alerts(engine: Engine, model_group_id: int) -> list[dict[str, Any]]:
    """The alerts of the newest finished monitor pass of this model group, critical first."""
    run = monitoring_q.last_finished_of_group(engine, model_group_id)
    if run is None:
        return []
    rank = {"critical": 0, "warning": 1}
    found = [{"monitor_run_id": int(run["id"]), "kind": a["kind"], "subject": a["subject"],
              "metric": a["metric"], "value": a["value"], "bound": a["bound"],
              "severity": a["severity"], "window": a["window"], "message": a["message"],
              "created_at": _utc(a["created_at"])}
             for a in monitoring_q.alerts_of(engine, int(run["id"]))]
    return sorted(found, key=lambda a: (rank.get(a["severity"], 2), a["kind"], a["subject"]))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
