"""Feature names in words, for people reading a list: ``cmp_all_1year_count`` with value 4 is
"complaints in the past year: 4", with "(top 2% of officers)" when the list stored where the
value stands among everyone scored that day.

The as-of features' names are generated from their :class:`~rudikit.features.asof.specs.EventSpec`
(``<block>_<group>_<window>_<count|rate>``, ``<block>_<group>_days_since``) and
:class:`~rudikit.features.asof.specs.StateSpec` (``<state>``, ``<state>_days``), so the words are
generated from the same specs, never parsed from the name. Any other name (a case column) is
its words; a project's ``review.labels`` overrides either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np

from rudikit.features.asof.defaults import DEFAULT_SPECS, DEFAULT_STATES
from rudikit.features.asof.specs import WINDOW_MONTHS, EventSpec, event_group_names

#: What one event of a table is called (singular, plural); other tables use their name.
NOUNS: dict[str, tuple[str, str]] = {
    "complaints": ("complaint", "complaints"),
    "use_of_force": ("use-of-force report", "use-of-force reports"),
    "unit_history": ("unit change", "unit changes"),
}
#: An ISO date-time as stored or explained ("2020-01-05T08:15:00+00:00").
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
#: The cohort's own columns (:func:`rudikit.features.asof.build.build_features`).
COHORT = {"tenure_years": "years of service", "age_years": "age"}


def _words(name: str) -> str:
    return name.replace("_", " ").strip()


def window_words(window: str) -> str:
    """"1year" -> "in the past year", "all" -> "ever"."""
    months = WINDOW_MONTHS[window]
    if months is None:
        return "ever"
    if months % 12 == 0:
        years = months // 12
        return "in the past year" if years == 1 else f"in the past {years} years"
    return "in the past month" if months == 1 else f"in the past {months} months"


def _group_words(spec: EventSpec, group: str) -> str:
    """"" for every event; "(allegation category: excessive force)"; "(any injury)"."""
    if group == "all" or group in ("is_change",):
        return ""
    for category in spec.categories:
        prefix = f"{category.prefix}_"
        if group.startswith(prefix) and group[len(prefix):] in category.groups:
            return f" ({_words(category.column)}: {_words(group[len(prefix):])})"
    return f" ({_words(group)})"


@cache
def _generated() -> dict[str, str]:
    """Every as-of feature name the default specs generate -> its words."""
    out: dict[str, str] = dict(COHORT)
    for spec in DEFAULT_SPECS:
        one, many = NOUNS.get(spec.table, (_words(spec.table), _words(spec.table)))
        for group in event_group_names(spec):
            kind = _group_words(spec, group)
            for window in spec.windows:
                name = f"{spec.name}_{group}_{window}"
                out[f"{name}_count"] = f"{many}{kind} {window_words(window)}"
                span = "over the whole record" if window == "all" else window_words(window)
                out[f"{name}_rate"] = f"{many}{kind} per year {span}"
            out[f"{spec.name}_{group}_days_since"] = f"days since the last {one}{kind}"
    for state in DEFAULT_STATES:
        out[state.name] = _words(state.name)
        out[f"{state.name}_days"] = f"days in the current {_words(state.name)}"
    return out


def feature_label(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The words for feature ``name``: the project's label, else generated from the specs,
    else the name's words."""
    if labels and name in labels:
        return labels[name]
    return _generated().get(name) or _words(name)


def value_text(value: Any) -> str:
    """A stored value as a person reads it: 4 not 4.000000, 0.8333 as 0.833, yes/no, a time
    to the minute with its zone."""
    if value is None:
        return "missing"
    if isinstance(value, (bool, np.bool_)) or value in ("True", "False"):
        return "yes" if value in (True, "True") else "no"
    if isinstance(value, str) and STAMP.match(value):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            return value
        zone = stamp.strftime(" %z") if stamp.utcoffset() else " UTC" if stamp.tzinfo else ""
        return f"{stamp:%Y-%m-%d %H:%M}{zone}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "missing"
    if number.is_integer():
        return f"{int(number):,}"
    return f"{number:.3g}"


def percentile(values: Any, value: Any) -> float | None:
    """Where ``value`` stands among ``values`` (0-100, ties counted half, as
    ``scipy.stats.percentileofscore(kind="mean")``), over the non-missing values; None for a
    value that is not a number or a population without one. Hand-written: scipy's version
    sorts the population once per value, and a list asks for k values of one population."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    population = np.asarray(values, dtype=float)
    population = population[~np.isnan(population)]
    if not len(population) or math.isnan(number):
        return None
    below = np.count_nonzero(population < number)
    equal = np.count_nonzero(population == number)
    return float(100.0 * (below + 0.5 * equal) / len(population))


def standing(percent: float | None, population: str) -> str:
    """"top 2% of officers" (or "bottom 10% of ..."), "" without a percentile."""
    if percent is None:
        return ""
    if percent >= 50:
        return f"top {max(1, math.ceil(100 - percent))}% of {population}"
    return f"bottom {max(1, math.ceil(percent))}% of {population}"


def reason_words(reason: Mapping[str, Any], labels: Mapping[str, str] | None = None,
                 population: str = "officers") -> dict[str, Any]:
    """A stored reason ({feature, contribution, value[, percentile]}) with ``label``,
    ``value_text``, ``standing`` and ``text``: "complaints in the past year: 4 (top 2% of
    officers)"."""
    label = feature_label(str(reason.get("feature", "")), labels)
    value = value_text(reason.get("value"))
    place = standing(reason.get("percentile"), population)
    contribution = reason.get("contribution")
    return {**reason, "label": label, "value_text": value, "standing": place,
            "direction": None if contribution is None else
            ("raises" if contribution > 0 else "lowers"),
            "text": f"{label}: {value}" + (f" ({place})" if place else "")}
