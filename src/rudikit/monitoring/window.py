"""The production window one monitor pass judges.

It ends on ``--as-of`` when given; else today, unless the newest production case is older (the
traffic was replayed from an archive, or arrives late): a window ending today would then count
nothing, so it ends at that case instead, and the pass says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from rudikit.store.queries.production import newest_case_time


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    note: str | None = None  # why the window does not end today, when it does not

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m-%d} to {self.end:%Y-%m-%d}"


def check_window_days(days: int, name: str = "--window-days") -> int:
    """``days`` if it is a number of days the window can span (one or more)."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"{name}: {days!r} is not a number of days (a whole number, 1 or more)")
    return days


def choose_window(engine: Engine, model_ids: list[int], time_field: str | None, days: int, *,
                  as_of: datetime | None, today: datetime) -> Window:
    """The ``days`` up to ``as_of``; without it, up to today or, when the newest production
    case of ``model_ids`` happened before today's date, up to that case."""
    days = check_window_days(days)
    end, note = (as_of or today).astimezone(UTC), None
    if as_of is None:
        newest = newest_case_time(engine, model_ids, time_field)
        if newest is not None and newest.date() < end.date():
            behind = (end.date() - newest.date()).days
            note = (f"the newest production case is {newest:%Y-%m-%d}, {behind} "
                    f"day{'s' if behind != 1 else ''} before today: the window ends there "
                    "(--as-of chooses another end)")
            end = newest
    return Window(end - timedelta(days=days), end, note)
