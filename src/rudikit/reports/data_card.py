"""The data card of one data snapshot: the RUDI data card template, answered.

Counts, checksums, dates, splits and the version history come from the store. Column-level
facts (missing values, types, label counts) need the data itself: the run's loaded sources when
the card is written by ``rudi run``, else the files are read again and used only if their
checksum still equals the snapshot's, so the card never describes other data than the model saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from rudikit.config import Project
from rudikit.data import MISSING_GROUP
from rudikit.data.profile import column_kind, profile_frame
from rudikit.data.sources import LoadedSource, SourceError, load_source
from rudikit.evaluation import display
from rudikit.features.labels import LabelError, make_label
from rudikit.reports.cards import (
    Bullets,
    Card,
    CardError,
    Field,
    NotProvided,
    Part,
    Section,
    Table,
    Text,
    answer,
    describe_conditions,
    read_run,
    run_project_config,
    valid_ids,
)
from rudikit.reports.profile_figures import distribution_figure, missing_figure
from rudikit.store import tables as t
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries import snapshots as snapshots_q

FORMATS = {
    "police_uk_archive": "CSV files in the data.police.uk monthly archive layout (one file per "
                         "force and month)",
    "police_uk_api": "JSON answers of the data.police.uk stops-force API, one file per month",
    "police_uk_api_csv": "CSV files exported from the data.police.uk API",
    "police_uk_api_json": "JSON files from the data.police.uk stops-force API",
    "csv": "CSV files",
    "parquet": "Parquet files",
    "compas": "ProPublica's COMPAS database (SQLite or CSV tables), joined by rudikit into one "
              "row per case",
    "synthetic_stop_search": "CSV files in the data.police.uk archive layout, written by "
                             "rudikit's seeded synthetic generator",
}

HANDLING = (
    "No row is dropped for a missing feature. rudikit's encoder turns a missing (or never seen) "
    "category into its own unknown code, which the tree models and baselines use as "
    "information; logistic regression one-hot encodes it and fills missing numbers with the "
    "training median plus a missing-indicator column. In the fairness audit a missing protected "
    f"attribute is its own group, \"{MISSING_GROUP}\", never dropped."
)

ASSESSED = ("Counted per column when the snapshot's files were loaded: a value is missing when "
            "the field is empty or null. The label's own columns are read literally (a missing "
            "value never meets an \"equals\" condition).")

MAX_FILES = 40
NOT_GIVEN = "not provided"


@dataclass
class Profile:
    """What the data itself says (absent when the files are no longer the snapshot's)."""

    files: list[str]
    data: pd.DataFrame

    def label_counts(self, project: Project) -> tuple[int, int, int] | str:
        """(positives, negatives, excluded), or why they cannot be counted."""
        try:
            y, keep = make_label(self.data, project.label)
        except LabelError as exc:
            return str(exc)
        positives = int(y[keep].sum())
        return positives, int(keep.sum()) - positives, int((~keep).sum())


def _profile(snapshot: dict[str, Any], project: Project, project_dir: Path | None,
             sources: Sequence[LoadedSource] | None) -> Profile | str:
    """The snapshot's data, or a sentence saying why it is not available."""
    loaded = next((s for s in sources or [] if s.name == snapshot["source"]), None)
    if loaded is None:
        specs = [(i, s) for i, s in enumerate(project.data.sources) if s.name == snapshot["source"]]
        if not specs or project_dir is None:
            return ("the data files were not available when this card was written, so "
                    "column-level facts are left out")
        (i, spec), = specs
        try:
            loaded = load_source(spec, project_dir, f"data.sources[{i}]")
        except (SourceError, OSError, ValueError) as exc:
            return f"the data could not be read again ({exc}), so column-level facts are left out"
    if loaded.checksum != snapshot["checksum"]:
        return (f"the data at {loaded.location} now have checksum {loaded.checksum[:16]}..., not "
                f"the snapshot's {snapshot['checksum'][:16]}...; they changed since the run, so "
                "column-level facts are left out")
    root = Path(loaded.location)
    names = [p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name
             for p in sorted(loaded.files)]
    return Profile(names, loaded.frame)


def _used_columns(project: Project, columns: list[str]) -> dict[str, str]:
    """Column -> its role in the project, in a readable order (patterns such as ``token_*``
    stay unexpanded when the data's columns are not known)."""
    features = project.features.resolve(columns)[0] if columns else project.features
    roles: dict[str, str] = {project.data.entity_id: "entity id",
                             project.data.knowledge_date: "knowledge date"}
    for kind in ("categorical", "boolean", "numeric"):
        for column in getattr(features, kind):
            roles[column] = f"{kind} feature"
    if features.datetime:
        roles[features.datetime.column] = ("datetime feature (" + ", ".join(
            features.datetime.parts) + ")")
    for spec in project.models:
        for column in spec.add_categorical:
            roles.setdefault(column, "categorical feature (experiment only)")
    for column in dict.fromkeys(list(project.features.protected) + project.fairness.columns):
        roles[column] = (roles[column] + ", audited" if column in roles
                         else "audited (not a model input)")
    for condition in project.label.positive_when + project.label.exclude_when:
        roles[condition.column] = roles.get(condition.column, "") + (
            ", " if condition.column in roles else "") + "label"
    return roles


def _metadata(project: Project, snap: dict[str, Any], profile: Profile | str,
              history: pd.DataFrame, n_columns: int, n_used: int) -> Section:
    gov = project.governance
    files: list[Part] = [Text(f"{snap['files']} file(s) under `{snap['location']}`.")]
    if snap["kind"] == "sql":
        files = [Text(f"Read from the database: `{snap['location']}` (no files).")]
    elif isinstance(profile, Profile):
        shown = profile.files[:MAX_FILES]
        more = len(profile.files) - len(shown)
        files.append(Bullets(shown + ([f"... and {more} more"] if more else [])))
    else:
        files.append(Text(f"File names not listed: {profile}."))
    purpose: list[Part] = answer(project.description, "description")
    purpose += ([Text("Keywords: " + ", ".join(gov.keywords) + ".")] if gov.keywords
                else [NotProvided("governance.keywords")])
    size = (f"{snap['rows']:,} rows ({snap['bad_rows']:,} rejected by validation, "
            f"{snap['warnings']:,} warnings), dated {display.day(snap['min_date'])} to "
            f"{display.day(snap['max_date'])}.")
    if n_columns:
        size += f" {n_columns} columns, {n_used} of them used by the project."
    rows = []
    previous = None
    for _, h in history.iterrows():
        change = ("first" if previous is None else
                  "unchanged" if h["checksum"] == previous else "changed")
        rows.append([str(h["run_id"]), str(h["id"]), display.day(h["created_at"]),
                     f"{h['rows']:,}", h["checksum"][:16], change])
        previous = h["checksum"]
    governance = answer(gov.data_governance_plan, "governance.data_governance_plan")
    if project.rationale.storing_and_sharing.strip():
        governance.append(Text("Storing and sharing: " + project.rationale.storing_and_sharing))
    return Section("Metadata", [
        Field("Senior responsible officer", answer(
            project.rationale.team.senior_responsible_officer,
            "rationale.team.senior_responsible_officer")),
        Field("Data owner", answer(gov.data_owner, "governance.data_owner")),
        Field("File names", files),
        Field("File format", [Text(FORMATS.get(snap["kind"], snap["kind"]))]),
        Field("Purpose and content of the dataset, with keywords", purpose),
        Field("Dataset size", [Text(size)]),
        Field("Version history (every snapshot of this source in this project)", [
            Table(["Run", "Snapshot", "Recorded", "Rows", "SHA-256 (start)",
                   "Files since previous"], rows)]),
        Field("Data governance plan", governance),
    ])


def _missing(project: Project, profile: Profile | str, roles: dict[str, str]) -> Section:
    if isinstance(profile, Profile):
        used = [c for c in roles if c in profile.data.columns]
        counts = profile.data[used].isna().sum()
        cells = len(profile.data) * len(used)
        share = counts.sum() / cells if cells else 0.0
        parts: list[Part] = [Text(f"{int(counts.sum()):,} of {cells:,} values ({share:.2%}) are "
                                  f"missing across the {len(used)} variables the project uses.")]
        rows = [[c, f"{int(n):,}", f"{n / len(profile.data):.2%}"]
                for c, n in counts.items() if n]
        parts.append(Table(["Variable", "Missing", "Share"], rows) if rows
                     else Text("No used variable has a missing value."))
    else:
        parts = [Text(f"Not computed: {profile}.")]
    return Section("Missing values", [
        Field("Share of missing values in the relevant variables", parts),
        Field("Nature and causes of the missing values", answer(
            project.governance.missing_data, "governance.missing_data")),
        Field("How missing values are handled", [Text(HANDLING)]),
        Field("How missingness was assessed", [Text(ASSESSED)]),
    ])


def _sources(project: Project, snap: dict[str, Any], origin: str) -> Section:
    reason = project.governance.source_reasons.get(snap["source"], "")
    return Section("Data sources", [
        Field("Source of this snapshot", [Table(
            ["Source", "Kind", "Origin", "Location", "SHA-256"],
            [[snap["source"], snap["kind"], origin, snap["location"], snap["checksum"]]])]),
        Field(f"Why source {snap['source']!r} was included", answer(
            reason, f"governance.source_reasons.{snap['source']}")),
    ])


def _variables(project: Project, profile: Profile | str, roles: dict[str, str]) -> Section:
    meanings = project.governance.variables
    rows = []
    for column, role in roles.items():
        if isinstance(profile, Profile) and column in profile.data.columns:
            series = profile.data[column]
            kind, distinct = column_kind(series), f"{series.nunique(dropna=True):,}"
        else:
            kind = distinct = "n/a"
        rows.append([column, role, kind, distinct, meanings.get(column, "") or NOT_GIVEN])
    parts: list[Part] = [Table(["Variable", "Role", "Type", "Distinct values", "Meaning"], rows)]
    undescribed = [r[0] for r in rows if r[4] == NOT_GIVEN]
    if undescribed:
        parts.append(NotProvided("governance.variables",
                                 f"no meaning for {len(undescribed)} of {len(rows)} variables: "
                                 + ", ".join(undescribed)))
    if isinstance(profile, Profile):
        unused = [c for c in profile.data.columns if c not in roles]
        if unused:
            parts.append(Text(f"{len(unused)} further column(s) are loaded but not used: "
                              + ", ".join(map(str, unused)) + "."))
    return Section("Variables", [Field("Variables and what they mean", parts)])


def _preparation(project: Project, snap: dict[str, Any], models: pd.DataFrame) -> Section:
    sampling: list[Part] = [Text(
        f"Each row is one record identified by `{project.data.entity_id}`; its features are "
        f"what was known at `{project.data.knowledge_date}`. Rows meeting the label's exclusion "
        "conditions are left out of training and test.")]
    sampling += answer(project.rationale.inclusion_exclusion, "rationale.inclusion_exclusion")
    first = models.drop_duplicates("split").set_index("split") if len(models) else models
    rows = []
    for spec in project.splits:
        if spec.kind == "temporal":
            rule = (f"train before {spec.test_start}"
                    + (f" from {spec.train_start}" if spec.train_start else "")
                    + f"; test from {spec.test_start}"
                    + (f" to {spec.test_end}" if spec.test_end else ""))
        elif spec.kind == "column":
            rule = (f"the data's `{spec.column}` column: train "
                    + ", ".join(spec.train) + "; test " + ", ".join(spec.test)
                    + ("; validation " + ", ".join(spec.validation) + " (models are chosen on "
                       "it)" if spec.validation else "")
                    + (f"; no `{spec.group_column}` on two sides" if spec.group_column else ""))
        else:
            rule = (f"{spec.test_size:.0%} held out at random for test"
                    + (f" and {spec.validation_size:.0%} for validation (models are chosen on "
                       "it)" if spec.validation_size else "")
                    + f", seed {spec.seed}"
                    + (f", whole `{spec.group_column}` groups" if spec.group_column else ""))
        m = first.loc[spec.name] if spec.name in first.index else None
        rows.append([spec.name, spec.kind, rule,
                     f"{m['train_rows']:,}" if m is not None else "n/a",
                     f"{m['test_rows']:,}" if m is not None else "n/a",
                     f"{display.day(m['train_start'])} to {display.day(m['train_end'])}"
                     if m is not None else "n/a",
                     f"{display.day(m['test_start'])} to {display.day(m['test_end'])}"
                     if m is not None else "n/a"])
    cleaning = answer(project.governance.data_cleaning, "governance.data_cleaning")
    cleaning.append(Text(f"On load, validation rejected {snap['bad_rows']:,} row(s) and raised "
                         f"{snap['warnings']:,} warning(s) (see `rudi validate`)."))
    return Section("Data preparation", [
        Field("How the data was sampled from the source", sampling),
        Field("How it was split into training and test sets", [Table(
            ["Split", "Kind", "Rule", "Train rows", "Test rows", "Train period", "Test period"],
            rows)]),
        Field("Data cleaning (cases removed, coding, changes)", cleaning),
    ])


def _labels(project: Project, profile: Profile | str) -> Section:
    label = project.label
    parts: list[Part] = [Text(f"Label `{label.name}`" + (f": {label.description}"
                                                        if label.description else "."))]
    items = [f"1 (positive) when {describe_conditions(label.positive_when)}",
             "0 (negative) otherwise"]
    if label.exclude_when:
        items.append(f"excluded when {describe_conditions(label.exclude_when)}")
    parts.append(Bullets(items))
    if isinstance(profile, Profile):
        counts = profile.label_counts(project)
        if isinstance(counts, str):
            parts.append(Text(f"Counts not computed: {counts}"))
        else:
            pos, neg, excluded = counts
            parts.append(Text(f"In this snapshot: {pos:,} positive, {neg:,} negative "
                              f"({pos / max(pos + neg, 1):.1%} positive), {excluded:,} excluded."))
    if not label.description:
        parts.append(NotProvided("label.description"))
    return Section("Labels", [Field("The labels and the criteria for each", parts)])


def _evaluation(project: Project) -> Section:
    parts = answer(project.governance.evaluation_data, "governance.evaluation_data")
    if project.rationale.evaluation_plan.strip():
        parts.append(Text("Evaluation plan: " + project.rationale.evaluation_plan))
    return Section("Evaluation data", [Field("What data trains and tests the model, and why",
                                             parts)])


def _stored_profiles(engine: Engine, snapshot_id: int, history: pd.DataFrame,
                     profile: Profile | str) -> pd.DataFrame:
    """The column profiles of this source's snapshots up to this one, as stored at snapshot
    time; this snapshot's are profiled from its data when it predates stored profiles and the
    data (with the snapshot's checksum) is at hand."""
    stored = snapshots_q.profiles(engine, [int(i) for i in history["id"]])
    if not (stored["snapshot_id"] == snapshot_id).any() and isinstance(profile, Profile):
        fresh = pd.DataFrame(profile_frame(profile.data)).assign(snapshot_id=snapshot_id)
        stored = pd.concat([stored, fresh], ignore_index=True) if len(stored) else fresh
    return stored


def build_data_card(engine: Engine, snapshot_id: int, *, project: Project | None = None,
                    project_dir: str | Path | None = None,
                    sources: Sequence[LoadedSource] | None = None) -> Card:
    """The data card of snapshot ``snapshot_id``. ``project`` supplies the current rationale and
    governance answers; ``sources`` (the run's loaded data) or ``project_dir`` (to read it
    again) supply the column-level facts."""
    snap = snapshots_q.snapshot(engine, snapshot_id)
    if snap is None:
        raise CardError(f"no data snapshot with id {snapshot_id}; "
                        f"{valid_ids(engine, t.data_snapshots)}")
    snap = dict(snap)
    run = read_run(engine, snap["run_id"])
    proj = run_project_config(run, project)
    if not isinstance(proj, Project):
        raise CardError(f"snapshot {snapshot_id} belongs to temporal run {run['id']}, whose event "
                        "tables have no data card yet (its model cards and run report describe "
                        "the data)")
    history = snapshots_q.source_history(engine, run["project"], snap["source"], snapshot_id)
    models = runs_q.models_of_run(engine, run["id"])
    profile = _profile(snap, proj, Path(project_dir) if project_dir else None, sources)
    columns = list(profile.data.columns) if isinstance(profile, Profile) else []
    roles = _used_columns(proj, columns)
    present = set(columns)  # one set, not a list scan per used column (2,000-column sources)
    used = [c for c in roles if c in present]
    origin = "synthetic" if snap["kind"] == "synthetic_stop_search" or (
        run["data_origin"] == "synthetic") else "real"
    stored = _stored_profiles(engine, snapshot_id, history, profile)
    profiled = set(stored["column_name"]) if len(stored) else set()
    plotted = [c for c in roles if c in profiled]
    missing = _missing(proj, profile, roles)
    variables = _variables(proj, profile, roles)
    if plotted:
        labels = {int(h["id"]): f"snapshot {h['id']} (run {h['run_id']}, "
                                f"{display.day(h['created_at'])})" for _, h in history.iterrows()}
        missing.figures += [f for f in [missing_figure(stored, plotted, labels)] if f]
        variables.figures += [f for f in [distribution_figure(
            stored[stored["snapshot_id"] == snapshot_id], plotted)] if f]
    sections = [
        _metadata(proj, snap, profile, history, len(columns), len(used)),
        missing,
        _sources(proj, snap, origin),
        variables,
        _preparation(proj, snap, models),
        _labels(proj, profile),
        _evaluation(proj),
    ]
    return Card(f"Data card: {snap['source']} (snapshot {snapshot_id})",
                f"Project {run['project']} · run {run['id']} · recorded "
                f"{display.day(snap['created_at'])} · SHA-256 {snap['checksum'][:16]}...",
                origin == "synthetic", sections, f"data-card-snapshot-{snapshot_id}")
