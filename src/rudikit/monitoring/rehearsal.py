"""The production rehearsal of ``rudi demo``: on which day the replayed month is judged (the
model goes live through the deploy gate, :func:`rudikit.cli.service.demo_deploy`).

``rudi demo`` runs the rehearsal's steps (deploy, replay, monitor, retrain) as the commands of
those names, so a user sees exactly what the commands show; the decisions live here.
"""

from __future__ import annotations

import pandas as pd


def judging_day(month: str) -> str:
    """The first day after a replayed ``YYYY-MM`` month (``YYYY-MM-DD``): monitoring and
    retraining as of that day see the whole month and its outcomes."""
    return (pd.Timestamp(f"{month}-01") + pd.offsets.MonthBegin(1)).strftime("%Y-%m-%d")
