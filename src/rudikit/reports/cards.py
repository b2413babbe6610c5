"""Data and model cards: the RUDI documentation templates, answered from the store and rudi.yaml.

A card is a list of sections of questions; each answer is made of parts (text, a list, a table,
or a visible "not provided" marker naming the rudi.yaml key to fill). Builders
(:mod:`rudikit.reports.data_card`, :mod:`rudikit.reports.model_card`) only assemble these
parts; one Markdown and one HTML template render any card, so the two formats cannot drift
apart and a question nobody answered can never silently disappear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape
from sqlalchemy.engine import Engine

from rudikit.config import Project, ProjectError, TemporalProject, parse_project
from rudikit.reports.page import TEMPLATES, PlotlyPage, environment
from rudikit.store import tables as t
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries import snapshots as snapshots_q

Format = Literal["md", "html", "both"]
AnyProject = Project | TemporalProject
NOT_PROVIDED = "Not provided"


class CardError(ValueError):
    """A card cannot be written (unknown id, a run without a project file); the message names
    the id and, where it helps, the valid ones."""


@dataclass
class Text:
    text: str
    kind: ClassVar[str] = "text"


@dataclass
class Bullets:
    items: list[str]
    kind: ClassVar[str] = "bullets"


@dataclass
class Table:
    headings: list[str]
    rows: list[list[str]]
    kind: ClassVar[str] = "table"


@dataclass
class NotProvided:
    """A template field nobody filled: shown loudly, with the rudi.yaml key that fills it."""

    key: str
    detail: str = ""
    kind: ClassVar[str] = "missing"

    @property
    def text(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{NOT_PROVIDED}{extra} — fill `{self.key}` in rudi.yaml"


Part = Text | Bullets | Table | NotProvided


@dataclass
class Field:
    question: str
    parts: list[Part]


@dataclass
class Section:
    title: str
    fields: list[Field]
    figures: list[Any] = field(default_factory=list)  # plotly figures, drawn in HTML only


@dataclass
class Card:
    title: str
    subtitle: str
    synthetic: bool
    sections: list[Section]
    stem: str  # file name without extension

    def missing_keys(self) -> list[str]:
        return [p.key for s in self.sections for f in s.fields for p in f.parts
                if isinstance(p, NotProvided)]


# --- Answer helpers -------------------------------------------------------------------------


def answer(value: Any, key: str) -> list[Part]:
    """The value as text or a list, or the "not provided" marker for ``key`` when empty."""
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value if str(v).strip()]
        return [Bullets(items)] if items else [NotProvided(key)]
    text = str(value or "").strip()
    return [Text(text)] if text else [NotProvided(key)]


def describe_conditions(conditions: Iterable[Any]) -> str:
    """Label conditions in words: ``outcome is not one of [...]``."""
    words = []
    for c in conditions:
        if c.equals is not None:
            words.append(f"`{c.column}` equals {c.equals!r}")
        elif c.not_equals is not None:
            words.append(f"`{c.column}` is not {c.not_equals!r}")
        elif c.isin is not None:
            words.append(f"`{c.column}` is one of {c.isin!r}")
        elif c.not_in is not None:
            words.append(f"`{c.column}` is none of {c.not_in!r}")
        else:
            words.append(f"`{c.column}` is {'missing' if c.is_missing else 'present'}")
    return " and ".join(words)


# --- Reading the store -----------------------------------------------------------------------


def read_run(engine: Engine, run_id: int) -> dict[str, Any]:
    run = runs_q.run(engine, run_id)
    if run is None:
        raise CardError(f"no run with id {run_id}; {valid_ids(engine, t.runs)}")
    return dict(run)


def run_project_config(run: dict[str, Any], current: AnyProject | None) -> AnyProject:
    """The project a run was made with. The documentation sections (``rationale``,
    ``governance``) come from the current rudi.yaml when one is given, so a card can be
    completed after the run without retraining; everything that shaped the results (data,
    label, splits, models, fairness) stays as the run recorded it."""
    config = dict(run["config"])
    if current is not None and current.name != run["project"]:
        raise CardError(f"rudi.yaml describes project {current.name!r} but run {run['id']} "
                        f"belongs to project {run['project']!r}; give the right --project")
    if current is not None:
        config["rationale"] = current.rationale.model_dump(mode="json")
        config["governance"] = current.governance.model_dump(mode="json")
    try:
        return parse_project(config, f"run {run['id']} configuration")
    except ProjectError:
        raise CardError(f"run {run['id']} was not made from a rudi.yaml project (its stored "
                        "configuration is not a project file), so it has no card") from None


def valid_ids(engine: Engine, table: Any, limit: int = 30) -> str:
    """The ids a user could have meant, for an error message."""
    ids = [str(i) for i in runs_q.ids(engine, table)]
    if not ids:
        return "the store holds none yet; run `rudi run` first"
    shown = ", ".join(ids[:limit]) + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")
    return f"valid ids: {shown}"


# --- Rendering -------------------------------------------------------------------------------


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_environment() -> Environment:
    """Markdown is not HTML: no autoescaping (the HTML template keeps it)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False,
                      keep_trailing_newline=True)
    env.filters["md_cell"] = _md_cell
    return env


def render_markdown(card: Card) -> str:
    return markdown_environment().get_template("card.md.j2").render(card=card)


def _code_spans(value: Any) -> Markup:
    """Escaped text with Markdown's `code` spans as <code> (the answers are written for both
    formats)."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(value))))


def render_html(card: Card) -> str:
    """Self-contained: plotly's JS is inlined once, before the first figure."""
    page = PlotlyPage()
    figures = [[page.add(fig) for fig in s.figures] for s in card.sections]
    env = environment()
    env.filters["code"] = _code_spans
    return env.get_template("card.html.j2").render(card=card, figures=figures)


def write_card(card: Card, directory: str | Path, formats: Format = "both") -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if formats in ("md", "both"):
        path = directory / f"{card.stem}.md"
        path.write_text(render_markdown(card), encoding="utf-8")
        written.append(path)
    if formats in ("html", "both"):
        path = directory / f"{card.stem}.html"
        path.write_text(render_html(card), encoding="utf-8")
        written.append(path)
    return written


def write_run_cards(engine: Engine, run_id: int, directory: str | Path,
                    sources: Sequence[Any] | None = None) -> list[Path]:
    """Cards for one run: a data card per snapshot, and model cards for the chosen model's
    group and its mitigated variant (the candidates for deployment). ``sources`` are the
    run's loaded sources, so the data is not read twice."""
    from rudikit.reports.data_card import build_data_card
    from rudikit.reports.model_card import build_model_card

    with engine.connect() as conn:
        snapshot_ids = snapshots_q.snapshot_ids(conn, run_id)
        chosen = runs_q.selected_group(conn, run_id)
        groups = runs_q.group_hyperparameters(conn, run_id)
    written: list[Path] = []
    # A temporal run's snapshots are event tables, which the data card (rows, label columns)
    # does not describe; its model cards are written.
    temporal = "temporal" in (read_run(engine, run_id)["config"] or {})
    for snapshot_id in [] if temporal else snapshot_ids:
        written += write_card(build_data_card(engine, snapshot_id, sources=sources), directory)
    if chosen is not None:
        mitigated = sorted({g for g, params in groups
                            if (params or {}).get("base_model_group") == chosen})
        for group_id in [chosen, *mitigated]:
            written += write_card(build_model_card(engine, group_id), directory)
    return written
