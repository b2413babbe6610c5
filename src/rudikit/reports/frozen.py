"""A run's report is written once: what it shows is frozen in the store the first time it is
built, and every later rebuild renders that frozen content.

Reviews, outcomes, deployments and later runs change the store after a run, and a report
rebuilt from the live store would then show other lists and reasons than the board saw. So a
report builder collects its page (tables as JSON, figures as plotly JSON) into a payload,
:func:`frozen_context` stores it (:func:`rudikit.store.results.freeze_report`), and the page is
always rendered from the stored payload: the first build and every rebuild give the same page,
apart from the line saying when this copy was built.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from sqlalchemy.engine import Engine

from rudikit.evaluation.display import plain, when
from rudikit.reports.page import PlotlyPage, lean_template, single_precision
from rudikit.store import results
from rudikit.store.queries import runs as runs_q

#: Key of a figure's place in a frozen context.
FIGURE = "__figure__"


class FigureRecorder:
    """Stands in for :class:`PlotlyPage` while a report is built: keeps each figure as
    plotly JSON and returns a placeholder for it, in page order."""

    def __init__(self) -> None:
        self.figures: list[str] = []

    def add(self, fig: go.Figure) -> dict[str, int]:
        lean_template(fig)
        single_precision(fig)
        self.figures.append(fig.to_json())
        return {FIGURE: len(self.figures) - 1}


def _thaw(value: Any, figures: list[Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {FIGURE}:
            return figures[value[FIGURE]]
        return {k: _thaw(v, figures) for k, v in value.items()}
    if isinstance(value, list):
        return [_thaw(v, figures) for v in value]
    return value


def frozen_context(engine: Engine, run_id: int, kind: str,
                   build: Callable[[FigureRecorder], dict[str, Any]]) -> dict[str, Any]:
    """The template context of run ``run_id``'s ``kind`` report as first written: built with
    ``build`` (and stored) the first time, read back ever after. The context gains ``frozen_at``
    (when it was stored) and ``built_at`` (now: the one line that differs between builds). A
    run still running is not frozen: its page is built from the store as it is now."""
    stored = runs_q.report_payload(engine, run_id, kind)
    if stored is None:
        recorder = FigureRecorder()
        context = build(recorder)
        payload = {"context": plain(context), "figures": recorder.figures}
        run = runs_q.run(engine, run_id)
        if run is not None and run["status"] == "running":
            stored = {"payload": payload, "created_at": None}
        else:
            stored = results.freeze_report(engine, run_id, kind, payload)
    payload = stored["payload"]
    page = PlotlyPage()
    figures = [page.add(pio.from_json(f)) for f in payload["figures"]]
    return _thaw(payload["context"], figures) | {
        "frozen_at": when(stored["created_at"]) if stored["created_at"] else "not yet (the run "
                     "is still running)", "built_at": when(datetime.now(UTC))}
