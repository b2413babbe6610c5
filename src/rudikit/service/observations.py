"""The observations of a ``POST /predict`` body: the body read and validated against the deployed
model's :class:`~rudikit.service.observation_schema.ObservationSchema`. The body is parsed here
(orjson, then one pydantic validator per observation) instead of through FastAPI's body
handling: the same semantics and the same published schema, at a fraction of the cost per
request.

Fields sent under an alias are renamed to the model's names first, and a stop as the
data.police.uk API returns it is read as its loader reads it (``location`` flattened by
:func:`rudikit.data.police_uk.flatten_api_record`, numbers sent as strings parsed). The values then
go through the loaders' value rules (:mod:`rudikit.data.validation`: text stripped, impossible
coordinates and date-times a table cannot hold set missing), so that a request is scored as
the same row was in training; what a rule set missing is listed in the answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import orjson
from pydantic import ValidationError

from rudikit.data.police_uk import API_NESTED, flatten_api_record
from rudikit.data.validation import (
    DATETIME_RANGE_TEXT,
    clean_text,
    impossible_coordinates,
    outside_datetime_range,
)
from rudikit.service.errors import ApiError, field_path, validation_error
from rudikit.service.jsonbody import load_json
from rudikit.service.observation_schema import ObservationSchema


@dataclass
class Observation:
    """A validated observation ready to score and store."""

    observation_id: str
    values: dict[str, Any]  # column -> validated value (datetime parsed)
    raw: dict[str, Any]  # column -> value as received (stored for retraining)
    payload_hash: str
    ignored: list[str]
    # field -> why the loaders' rules set its value missing (it was scored as missing)
    set_missing: dict[str, str] = field(default_factory=dict)


@dataclass
class ParsedPredict:
    single: bool
    observations: list[Observation]


def parse_observations(schema: ObservationSchema, body: bytes) -> ParsedPredict:
    """Body bytes to observations validated by ``schema``, or a 422 naming every bad field."""
    data = load_json(body, schema.nan_as_missing)
    if not isinstance(data, dict):
        raise ApiError(422, "the body must be a JSON object: one observation, or "
                            '{"observations": [...]}', [
            {"field": "body", "loc": ["body"], "msg": "expected an object",
             "type": "object_type"}])
    if "observations" in data:
        items = data["observations"]
        if not isinstance(items, list) or not items or len(items) > schema.max_batch:
            msg = (f"expected a list of 1 to {schema.max_batch} observations"
                   + (f", got {len(items)}" if isinstance(items, list) else ""))
            raise ApiError(422, f"invalid request: observations: {msg}", [
                {"field": "observations", "loc": ["body", "observations"], "msg": msg,
                 "type": "list_type"}])
        single = False
    else:
        items = [data]
        single = True
    prefix: tuple[Any, ...] = () if single else ("observations",)
    problems: list[dict[str, Any]] = []
    # field -> the name (path) the client sent it under
    sent_as: list[dict[str, tuple[str, ...]] | None] = [None] * len(items)
    if schema.alias_names or schema.nested_roots:
        items = list(items)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            at = (*prefix, i) if prefix else ()
            if not schema.nested_roots.isdisjoint(item):
                item, sent_as[i] = _flatten(item, at, problems)
            if not schema.alias_names.isdisjoint(item):
                item, sent_as[i] = _rename(schema, item, at, problems, sent_as[i])
            items[i] = item
    try:  # one call for the whole batch: the loop over items runs in pydantic-core
        validated = [schema.validate(items[0])] if single else schema.validate_many(items)
    except ValidationError as exc:
        errors = []
        for e in exc.errors(include_url=False, include_context=False, include_input=False):
            loc = _as_sent(e["loc"], sent_as, single)
            msg = e["msg"]
            if e["type"] == "missing" and loc[-1] in schema.names_of:
                msg += " (also accepted as " + ", ".join(
                    repr(a) for a in schema.names_of[loc[-1]]) + ")"
            loc = (*prefix, *loc)
            errors.append({"field": field_path(loc), "loc": ["body", *loc],
                           "msg": msg, "type": e["type"]})
        raise validation_error(problems + errors,
                               "observation" if single else "batch") from None
    observations: list[Observation] = []
    seen: dict[str, int] = {}
    columns = schema.columns
    known = schema.known
    dumps = orjson.dumps
    sha256 = hashlib.sha256
    for i, (item, values) in enumerate(zip(items, validated, strict=True)):
        ignored = item.keys() - known
        if ignored and max(map(len, ignored)) > schema.max_field_name_length:
            problems.extend(_long_names(schema, ignored, (*prefix, i) if prefix else ()))
            continue
        names = sent_as[i]
        if names:  # ignored fields named as sent (location.street.name)
            ignored = {".".join(names.get(n, (n,))) for n in ignored}
        oid = values["observation_id"]
        if oid in seen:
            loc = (*prefix, i, "observation_id")
            problems.append({"field": field_path(loc), "loc": ["body", *loc],
                             "msg": f"repeats observations[{seen[oid]}].observation_id",
                             "type": "duplicate"})
            continue
        seen[oid] = i
        for c, default in schema.defaults.items():
            if values.get(c) is None:
                values[c] = default
        digest = sha256(dumps([values[c] for c in columns])).hexdigest()
        raw = {c: item.get(c) for c in columns}
        for c in schema.numeric:  # a number sent as text is stored as the number it holds
            if isinstance(raw[c], str):
                raw[c] = values[c]
        for c in schema.defaults:  # stored as scored: what retraining and the monitor read
            if raw[c] is None:
                raw[c] = values[c]
        observations.append(Observation(oid, values, raw, digest, sorted(ignored)))
    if problems:
        raise validation_error(problems, "observation" if single else "batch")
    apply_loader_rules(schema, observations)
    return ParsedPredict(single, observations)


def _flatten(item: dict[str, Any], prefix: tuple[Any, ...], problems: list[dict[str, Any]]
             ) -> tuple[dict[str, Any], dict[str, tuple[str, ...]] | None]:
    """``item`` in the data.police.uk API's shape (``location`` nesting the coordinates)
    flattened as its loader flattens it, and field -> the path it was sent under."""
    try:
        flat = flatten_api_record(item)
    except ValueError as exc:
        root = str(exc).split(":", 1)[0].split(".", 1)[0]
        loc = (*prefix, root)
        problems.append({"field": field_path(loc), "loc": ["body", *loc], "msg": str(exc),
                         "type": "nested_field"})
        # the nested fields present (null), so that this is the one error about them
        return {**item, **{name: None for path, name in API_NESTED.items()
                           if path[0] in item and name not in item}}, None
    return flat, {name: path for path, name in API_NESTED.items() if path[0] in item}


def _rename(schema: ObservationSchema, item: dict[str, Any], prefix: tuple[Any, ...],
            problems: list[dict[str, Any]],
            sent_as: dict[str, tuple[str, ...]] | None = None
            ) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
    """``item`` with its aliases replaced by the fields they name, and field -> the name
    it was sent under; a field given under two names is a problem (which value is meant
    cannot be told)."""
    renamed = dict(item)
    sent_as = dict(sent_as or {})
    for alias in sorted(schema.alias_names.intersection(item)):
        target = schema.aliases[alias]
        if target in renamed:
            other = ".".join(sent_as.get(target, (target,)))
            loc = (*prefix, alias)
            problems.append({"field": field_path(loc), "loc": ["body", *loc],
                             "msg": f"names {target}, also given as {other!r}: send it once",
                             "type": "duplicate_field"})
            continue
        renamed[target] = renamed.pop(alias)
        sent_as[target] = (alias,)
    return renamed, sent_as


def _as_sent(loc: tuple[Any, ...], sent_as: list[dict[str, tuple[str, ...]] | None],
             single: bool) -> tuple[Any, ...]:
    """A validation error's location with the field named as the client sent it."""
    index, at = (0, 0) if single else (loc[0] if loc and isinstance(loc[0], int) else None, 1)
    names = sent_as[index] if isinstance(index, int) and index < len(sent_as) else None
    if names and len(loc) > at and loc[at] in names:
        return (*loc[:at], *names[loc[at]], *loc[at + 1:])
    return tuple(loc)


def apply_loader_rules(schema: ObservationSchema, observations: Sequence[Observation]) -> None:
    """The loaders' value rules on each observation's values (what is scored), as
    :mod:`rudikit.data.validation` applies them to training data: text stripped (empty:
    missing), impossible coordinates and date-times outside the table's range missing.
    What a rule set missing is recorded in ``set_missing``."""
    for o in observations:
        values = o.values
        for column in schema.text:
            value = values[column]
            if isinstance(value, str):
                cleaned = values[column] = clean_text(value)
                if cleaned is None:
                    o.set_missing[column] = "empty text is a missing value"
        stamp = values.get(schema.datetime) if schema.datetime else None
        if stamp is not None:
            utc = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
            if outside_datetime_range(utc):
                values[schema.datetime] = None
                o.set_missing[schema.datetime] = (
                    f"outside {DATETIME_RANGE_TEXT}, the date-times training data holds")
    if not schema.coordinates:
        return
    lat, lon = schema.coordinates
    latitudes = [o.values[lat] if lat else None for o in observations]
    longitudes = [o.values[lon] if lon else None for o in observations]
    for o, impossible in zip(observations, impossible_coordinates(latitudes, longitudes),
                             strict=True):
        if impossible:
            for column in (lat, lon):
                if column and o.values[column] is not None:
                    o.values[column] = None
                    o.set_missing[column] = ("impossible coordinates (latitude beyond "
                                             "+-90 or longitude beyond +-180)")


def _long_names(schema: ObservationSchema, names: set[str], prefix: tuple[Any, ...]
                ) -> list[dict[str, Any]]:
    """One error per field name over the bound (ignored names are stored), the name cut
    short so that the answer does not echo megabytes back."""
    errors = []
    for name in sorted(n for n in names if len(n) > schema.max_field_name_length):
        short = name if len(name) <= 40 else name[:40] + "..."
        loc = (*prefix, short)
        errors.append({"field": field_path(loc), "loc": ["body", *loc],
                       "msg": f"a field name of {len(name)} characters; at most "
                              f"{schema.max_field_name_length}", "type": "name_too_long"})
    return errors
