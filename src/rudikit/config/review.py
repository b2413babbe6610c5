"""The ``review`` section: what a reviewer of an intervention list can decide, and the words the
list uses for the model's inputs.

``decisions`` are stored as their key (``entity_reviews.outcome``) and shown as their label. A
list of keys takes labels from the keys ("supervisor_meeting" -> "Supervisor meeting"); a
mapping gives them. Without the setting, a project gets the decisions of its kind: an
early-intervention list of officers (a ``temporal`` project) or a list of cases such as
stop-and-searches. ``no_action`` must be one of them: the list monitor counts every other
decision as an intervention.

``labels`` names inputs on the list ("cmp_all_1year_count": "complaints, last 12 months"); an
input without one is named from its feature name (:mod:`rudikit.features.readable`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from rudikit.config.base import Strict

NO_ACTION = "no_action"
#: An early-intervention list of officers.
OFFICER_DECISIONS: dict[str, str] = {
    NO_ACTION: "No action", "monitor": "Monitor", "supervisor_meeting": "Supervisor meeting",
    "training": "Training", "counselling": "Counselling", "referral": "Referral to welfare",
}
#: A list of cases (a stop-and-search flagged for a supervisor's look).
CASE_DECISIONS: dict[str, str] = {
    NO_ACTION: "No action", "grounds_confirmed": "Grounds confirmed",
    "debrief_officer": "Debrief the officer", "refer_to_supervisor": "Refer to a supervisor",
    "refer_to_professional_standards": "Refer to professional standards",
}
KEY = re.compile(r"^[a-z][a-z0-9_]{0,49}$")


def decision_label(key: str) -> str:
    """"supervisor_meeting" -> "Supervisor meeting"."""
    words = key.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


class Review(Strict):
    """``decisions``: keys, or key -> label (default: by project kind, see the module);
    ``labels``: feature name -> the words the list shows for it."""

    decisions: list[str] | dict[str, str] | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("decisions")
    @classmethod
    def _keys(cls, value: list[str] | dict[str, str] | None
              ) -> list[str] | dict[str, str] | None:
        if value is None:
            return value
        keys = list(value)
        bad = [k for k in keys if not KEY.match(k)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a decision key (lower-case letters, digits and "
                             "_, at most 50 characters, starting with a letter)")
        if len(set(keys)) != len(keys):
            raise ValueError("a decision is listed twice")
        if NO_ACTION not in keys:
            raise ValueError(f"must include {NO_ACTION!r} (the list monitor counts every other "
                             "decision as an intervention)")
        return value

    def decision_labels(self, kind: Literal["temporal", "case"]) -> dict[str, str]:
        """key -> label of the decisions a reviewer may record, in order."""
        if self.decisions is None:
            return dict(OFFICER_DECISIONS if kind == "temporal" else CASE_DECISIONS)
        if isinstance(self.decisions, dict):
            return {k: v or decision_label(k) for k, v in self.decisions.items()}
        return {k: decision_label(k) for k in self.decisions}
