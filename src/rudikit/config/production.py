"""The ``production`` section of a temporal project: when lists are made once a model group is
deployed. ``rudi score --through DATE`` fills every scheduled date up to DATE that has no list
yet, in order; ``rudi score --as-of DATE`` makes one."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from rudikit.config.base import Strict


class ListSchedule(Strict):
    """``frequency``: how often a list is made. ``start``: the first scheduled date (default:
    the first list already stored, else the deployed model's first test as-of date, the date
    it was judged on). ``top_k`` and ``cool_off_days`` default to the temporal section's.
    ``reasons``: how many top reasons are stored beside each listed officer."""

    frequency: Literal["daily", "weekly", "monthly"] = "monthly"
    start: date | None = None
    top_k: int | None = Field(None, ge=1)
    cool_off_days: int | None = Field(None, ge=0)
    reasons: int = Field(5, ge=0, le=50)
