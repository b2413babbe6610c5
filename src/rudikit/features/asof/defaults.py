"""The rudikit EIS declarations: the feature blocks, states and labels over the Chicago CPDB
tables of :mod:`rudikit.data.cpdb`, and the same blocks with a project's completeness dates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from rudikit.config import Completeness
from rudikit.data.cpdb.files import ALLEGATION_CODES, FINDING_CODES, FORCE_CODES
from rudikit.features.asof.specs import (
    Category,
    EventSpec,
    FeatureError,
    LabelSpec,
    StateSpec,
    event_group_names,
)

COMPLAINTS = EventSpec(
    name="cmp", table="complaints", date_column="complaint_date", id_column="cr_id",
    categories=(
        Category("allegation_category", ALLEGATION_CODES, label="cat"),
        Category("final_finding", FINDING_CODES, label="finding", known_from="closed_date"),
    ),
    data_start="2000-01-01",
)
USE_OF_FORCE = EventSpec(
    name="uof", table="use_of_force", date_column="trr_date", id_column="trr_id",
    categories=(Category("highest_force", FORCE_CODES, label="top"),),
    flags=("any_injury", "subject_injured", "subject_alleged_injury", "officer_injured",
           "subject_armed", "force_taser", "force_firearm", "force_impact_weapon",
           "force_mechanical", "force_chemical"),
    data_start="2004-01-01",
)
UNIT_CHANGES = EventSpec(
    name="unit", table="unit_history", date_column="unit_start_date",
    flags=("is_change",), metrics=("count", "rate", "recency"),
    windows=("1year", "5year", "all"),
)
DEFAULT_SPECS: tuple[EventSpec, ...] = (COMPLAINTS, USE_OF_FORCE, UNIT_CHANGES)
DEFAULT_STATES: tuple[StateSpec, ...] = (
    StateSpec("unit", "unit_history", "unit", "unit_start_date", "unit_end_date"),
    StateSpec("rank", "rank_history", "rank", "rank_date"),
)

#: (a) Any complaint naming the officer (every case type, every finding).
ANY_COMPLAINT = LabelSpec(
    name="any_complaint", table="complaints", date_column="complaint_date",
    description="at least one complaint (any case type, any finding) with a complaint date in "
                "the window",
)
#: (b) A complaint that was eventually sustained. Rare (about 3% of allegations), and windows
#: near the data's end are undercounted because their investigations may still be open.
SUSTAINED_COMPLAINT = LabelSpec(
    name="sustained_complaint", table="complaints", date_column="complaint_date",
    where="final_finding = 'sustained'",
    description="at least one complaint dated in the window whose final finding (as of the "
                "data's end, 2023-08) is sustained",
)
#: (c) A use-of-force report with an injury: the officer reported injured, or a subject was
#: injured, or a subject alleged an injury (TRR-officers ``injured``, TRR-subjects ``injured``
#: and ``alleged_injury``).
INJURY_USE_OF_FORCE = LabelSpec(
    name="injury_use_of_force", table="use_of_force", date_column="trr_date",
    where="any_injury",
    description="at least one use-of-force report (TRR) in the window in which the officer was "
                "injured, a subject was injured, or a subject alleged an injury",
)
DEFAULT_LABELS: tuple[LabelSpec, ...] = (ANY_COMPLAINT, SUSTAINED_COMPLAINT, INJURY_USE_OF_FORCE)


def event_specs(complete_from: Mapping[str, Completeness]) -> tuple[EventSpec, ...]:
    """The default event feature blocks with a temporal section's completeness dates. Block and
    group names are checked here, where the specs are known (``rudi validate`` calls this before
    any fit): a FeatureError names the key path (``temporal.complete_from.cmp...``)."""
    specs = {spec.name: spec for spec in DEFAULT_SPECS}
    for name, completeness in complete_from.items():
        where = f"temporal.complete_from.{name}"
        if name not in specs:
            raise FeatureError(f"{where}: no event feature block of that name (known: "
                               f"{', '.join(specs)})")
        groups = event_group_names(specs[name])
        for i, group in enumerate(completeness.recorded_before):
            if group not in groups:
                raise FeatureError(f"{where}.recorded_before[{i}]: no group {group!r} (groups: "
                                   f"{', '.join(groups)})")
    out = []
    for spec in DEFAULT_SPECS:
        done = complete_from.get(spec.name)
        if done is not None:
            spec = replace(spec, complete_from=done.date.isoformat(),
                           complete_groups=tuple(done.recorded_before))
        out.append(spec)
    return tuple(out)
