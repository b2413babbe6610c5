"""Figures written for people: the one place every report, card and page formats numbers,
counts, thresholds, dates and metric names, so the same figure reads the same everywhere.

- a rate or score: three decimals (``0.612``), an interval in brackets after it;
- a count: a whole number with thousands separators (``1,204``, never ``1204.0``);
- a threshold or list share from rudi.yaml: two to three significant digits (``0.25``);
- a time: to the minute in UTC (``2026-12-03 21:14``), or the day when it is midnight;
- a metric: the name rudi.yaml uses (``recall``, not ``tpr``).
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

MISSING = "n/a"

#: The fairness audit's metric codes -> the words rudi.yaml's requirements use for them
#: (``fairness.requirements[].metric``), so a report never calls recall "tpr".
METRIC_NAMES: dict[str, str] = {
    "tpr": "recall",
    "pprev": "selection rate",
    "ppr": "share of the list",
    "precision": "precision",
    "fpr": "false positive rate",
    "fnr": "false negative rate",
    "tnr": "specificity",
    "fdr": "false discovery rate",
    "for": "false omission rate",
    "npv": "negative predictive value",
    "prevalence": "prevalence",
    "accuracy": "accuracy",
    "roc_auc": "ROC AUC",
    "average_precision": "average precision",
    "precision_at_k": "precision",
    "recall_at_k": "recall",
    "selection_rate": "selection rate",
    "recall": "recall",
    "brier": "Brier score",
    "f1": "F1",
}


def missing(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def number(value: Any, digits: int = 3) -> str:
    """A rate, score or other real figure to ``digits`` decimals; a whole number as a count;
    a yes/no as words."""
    if missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return count(value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def count(value: Any) -> str:
    """``1,204``: a count is whole, even when it was stored as a float."""
    return MISSING if missing(value) else f"{round(float(value)):,}"


def threshold(value: Any) -> str:
    """A threshold, share or setting to three significant digits at most: ``0.25``,
    ``0.125``, ``10``."""
    return MISSING if missing(value) else f"{float(value):.3g}"


def interval(value: Any, lower: Any, upper: Any, digits: int = 3) -> str:
    """``0.612 [0.580, 0.641]``; the interval is left out when it was not computed."""
    text = number(value, digits)
    if missing(lower) or missing(upper):
        return text
    return f"{text} [{number(float(lower), digits)}, {number(float(upper), digits)}]"


def p_value(value: Any) -> str:
    """Three decimals, or two significant digits below 0.001."""
    if missing(value):
        return MISSING
    return f"{float(value):.2g}" if float(value) < 0.001 else f"{float(value):.3f}"


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp


def when(value: Any) -> str:
    """A time to the minute (UTC), or the day alone when it is midnight: never seconds'
    fractions."""
    if missing(value):
        return MISSING
    stamp = _utc(value)
    if stamp.hour == stamp.minute == stamp.second == 0:
        return f"{stamp:%Y-%m-%d}"
    return f"{stamp:%Y-%m-%d %H:%M}" + (" UTC" if stamp.tzinfo is not None else "")


def day(value: Any) -> str:
    """``2026-12-03``."""
    return MISSING if missing(value) else f"{_utc(value):%Y-%m-%d}"


def metric_name(metric: str) -> str:
    """The name rudi.yaml uses for ``metric`` (``tpr`` -> ``recall``)."""
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def plain(value: Any) -> Any:
    """``value`` as JSON (dicts, lists, str, int, float, bool, None), for storing what a page
    shows: times become :func:`when` text, NaN becomes None, numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, pd.Series):
        return plain(value.to_dict())
    if isinstance(value, pd.DataFrame):
        return plain(value.to_dict("records"))
    if hasattr(value, "_asdict"):  # a named tuple
        return plain(value._asdict())
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if hasattr(value, "model_dump"):  # a pydantic model (a section of rudi.yaml)
        return plain(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if missing(value):
        return None
    if isinstance(value, (datetime, date, pd.Timestamp, np.datetime64)):
        return when(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


def settings(params: dict[str, Any] | None) -> str:
    """Hyperparameters or settings as ``key=value, ...``, a real number to three significant
    digits (``fallback_threshold=0.223``, not ``0.22266169341231598``)."""
    def one(value: Any) -> str:
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            return threshold(value)
        return str(value)

    return ", ".join(f"{k}={one(v)}" for k, v in (params or {}).items())
