"""The observations ``POST /predict`` accepts, validated against the deployed model's features
(categorical -> bounded string, boolean -> bool, numeric -> number, datetime -> ISO 8601
string; every one nullable, every key required). The body is parsed here (orjson, then one
pydantic validator per observation) instead of through FastAPI's body handling: the same
semantics and the same published schema, at a fraction of the cost per request.

A field may come under another name: the data.police.uk column names (``Object of search``,
``Date``, the API's ``operation``) and the project's ``service.field_aliases``. A stop as the
data.police.uk API returns it is read as its loader reads it (``location`` flattened by
:func:`rudikit.data.police_uk.flatten_api_record`, numbers sent as strings parsed). The values then
go through the loaders' value rules (:mod:`rudikit.data.validation`: text stripped, impossible
coordinates and date-times a table cannot hold set missing), so that a request is scored as
the same row was in training; what a rule set missing is listed in the answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, NotRequired

import orjson
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from typing_extensions import TypedDict

from rudikit.config import did_you_mean
from rudikit.data.police_uk import (
    API_NESTED,
    column_aliases,
    flatten_api_record,
)
from rudikit.data.validation import (
    DATETIME_RANGE_TEXT,
    clean_text,
    impossible_coordinates,
    outside_datetime_range,
)
from rudikit.features.encoding import TabularEncoder
from rudikit.service.errors import ApiError, ServiceError, field_path, validation_error
from rudikit.service.jsonbody import load_json
from rudikit.service.schemas import NO_NUL_PATTERN, NoNul, ObservationId, no_nul


def _iso_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO 8601 date-time, e.g. 2020-01-31T14:05:00+00:00") from None
    if stamp.tzinfo is not None:
        try:  # the scorer reads the time in UTC; 0001-01-01T00:00:00+14:00 has none
            stamp.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range: the date-time falls outside years 1 to 9999 in "
                             "UTC") from None
    return stamp


BooleanValue = Annotated[bool | None, Strict()]

#: A number sent as text, as the data.police.uk API sends coordinates ("52.6"). Published as
#: the string's ``pattern`` and matched with ``re.search`` as JSON Schema validators do (so a
#: trailing newline passes here as there); digits bounded so that the value stays finite.
NUMBER_TEXT = "^[+-]?([0-9]{1,100}(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]{1,2})?$"
_NUMBER_TEXT = re.compile(NUMBER_TEXT)


def _number_text(value: Any) -> Any:
    if isinstance(value, str):
        if not _NUMBER_TEXT.search(value):
            raise ValueError("not a number: expected a number, or a string holding one "
                             "(e.g. \"52.6\")")
        return float(value)
    return value


NumericValue = Annotated[float | None, Strict(), Field(allow_inf_nan=False),
                         BeforeValidator(_number_text), WithJsonSchema({"anyOf": [
                             {"type": "number"}, {"type": "string", "pattern": NUMBER_TEXT},
                             {"type": "null"}]})]


#: A count of rows (the group size): a number of at least 1, as in every training row.
CountValue = Annotated[Annotated[float, Field(ge=1)] | None, Strict(),
                       Field(allow_inf_nan=False), BeforeValidator(_number_text),
                       WithJsonSchema({"anyOf": [
                           {"type": "number", "minimum": 1},
                           {"type": "string", "pattern": NUMBER_TEXT}, {"type": "null"}]})]


def categorical_value(max_length: int) -> Any:
    """A category: text of at most ``max_length`` characters (it is stored), or null."""
    return Annotated[Annotated[str, Field(max_length=max_length)] | None, Strict(), NoNul()]


def group_value(max_length: int) -> Any:
    """A group attribute that is not a model input: any JSON scalar, text bounded as a
    category. One check (not a union of types) so that a bad value is one error naming the
    field, not one per type it is not."""

    def check(value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > max_length:
                raise ValueError(f"at most {max_length} characters")
            return no_nul(value)
        if value is not None and not isinstance(value, bool | int | float):
            raise ValueError("expected a string, number, boolean or null")
        return value

    return Annotated[Any, AfterValidator(check), WithJsonSchema({"anyOf": [
        {"type": "string", "maxLength": max_length, "pattern": NO_NUL_PATTERN},
        {"type": "boolean"}, {"type": "number"},
        {"type": "null"}]})]


DatetimeValue = Annotated[str | None, Strict(), AfterValidator(_iso_datetime), WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]})]


# --- observations ----------------------------------------------------------------------------


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


class ObservationSchema:
    """The deployed model's observation: validator, JSON schemas and examples."""

    def __init__(self, encoder: TabularEncoder, max_batch: int = 1000,
                 groups: Sequence[str] = (), max_value_length: int = 1000,
                 max_field_name_length: int = 200, nan_as_missing: bool = True,
                 field_aliases: Mapping[str, str] | None = None):
        self.max_batch = max_batch
        self.nan_as_missing = nan_as_missing
        self.kinds: dict[str, str] = {}
        for c in encoder.categorical:
            self.kinds[c] = "categorical"
        for c in encoder.boolean:
            self.kinds[c] = "boolean"
        for c in [*encoder.numeric, *encoder.coordinate_columns]:  # location reads raw lat/lon
            self.kinds[c] = "numeric"
        if encoder.datetime:
            self.kinds[encoder.datetime] = "datetime"
        for column in groups:  # a mitigated model's group attributes that are not features
            self.kinds.setdefault(column, "group")
        self.columns = list(self.kinds)
        self.known = frozenset(["observation_id", *self.columns])
        self.aliases = self._aliases(field_aliases or {})  # alias -> field
        self.alias_names = frozenset(self.aliases)
        self.names_of: dict[str, list[str]] = {}  # field -> its aliases
        for alias, target in self.aliases.items():
            self.names_of.setdefault(target, []).append(alias)
        # the API's nested objects, read when they hold one of the model's fields
        self.nested = {".".join(path): name for path, name in API_NESTED.items()
                       if name in self.known}
        self.nested_roots = frozenset(path.split(".")[0] for path in self.nested)
        for path, target in self.nested.items():
            self.names_of.setdefault(target, []).append(path)
        # the model's own field names and their aliases always fit (the schema publishes them)
        self.max_field_name_length = max(max_field_name_length,
                                         *map(len, self.known | self.alias_names))
        self.text = [c for c, kind in self.kinds.items() if kind in ("categorical", "group")]
        self.datetime = encoder.datetime
        self.numeric = [c for c, kind in self.kinds.items() if kind == "numeric"]
        self.coordinates = [c if self.kinds.get(c) == "numeric" else None
                            for c in ("latitude", "longitude")]
        if self.coordinates == [None, None]:
            self.coordinates = []
        types = {"categorical": categorical_value(max_value_length), "boolean": BooleanValue,
                 "numeric": NumericValue, "datetime": DatetimeValue,
                 "group": group_value(max_value_length)}
        # fields a request may leave out (a group size: 1), scored as that value when absent
        # or null; the training rows always held them
        self.defaults = {c: float(v) for c, v in (getattr(encoder, "defaults", None)
                                                   or {}).items() if c in self.kinds}
        fields: dict[str, Any] = {"observation_id": ObservationId}
        for column, kind in self.kinds.items():
            # a defaulted field is a count of rows (the group size): at least 1, as in training
            fields[column] = (NotRequired[CountValue] if column in self.defaults
                              else types[kind])
        typed = TypedDict("Observation", fields)  # type: ignore[misc]
        typed.__pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[attr-defined]
        self.adapter: TypeAdapter[Any] = TypeAdapter(typed)
        self.validate = self.adapter.validator.validate_python
        self.validate_many = TypeAdapter(list[typed]).validator.validate_python  # type: ignore[valid-type]
        self.example = self._example(encoder)

    def _aliases(self, declared: Mapping[str, str]) -> dict[str, str]:
        """alias -> field: the data.police.uk names of the model's fields, and the project's
        own (``service.field_aliases``, which win); a field's own name is never an alias."""
        own = self.known
        for alias, target in declared.items():
            if target not in self.kinds:
                raise ServiceError(
                    f"service.field_aliases.{alias}: the deployed model has no field {target!r}"
                    f"{did_you_mean(target, self.columns)} (its fields: "
                    f"{', '.join(self.columns)})")
            if alias in own:
                raise ServiceError(f"service.field_aliases.{alias}: {alias!r} is a field of the "
                                   "deployed model, so it cannot name another one")
        built_in = {alias: target for alias, target in column_aliases().items()
                    if target in self.kinds and alias not in own}
        return {**built_in, **declared}

    def _example(self, encoder: TabularEncoder) -> dict[str, Any]:
        example: dict[str, Any] = {"observation_id": "2020-01-stop-000123"}
        for column, kind in self.kinds.items():
            if kind == "categorical":
                known = encoder.categories_.get(column) or ["a value"]
                example[column] = known[0]
            elif kind == "boolean":
                example[column] = False
            elif kind in ("numeric", "group"):
                example[column] = self.defaults.get(column)
            else:
                example[column] = "2020-01-31T14:05:00+00:00"
        return example

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """Component schemas ``Observation`` and ``ObservationBatch`` for the OpenAPI doc."""
        observation = self.adapter.json_schema()
        observation["title"] = "Observation"
        observation["description"] = (
            "One observation: observation_id (your id, also the idempotency key) and every "
            "feature the deployed model uses. Each feature key must be present, once: under "
            "its own name or one of its aliases (the data.police.uk column names, e.g. "
            "'Object of search', and the project's service.field_aliases); null means "
            "missing."
            + (" A stop as the data.police.uk stops API returns it is accepted, with the "
               "fields the API does not carry (e.g. force) added: the fields it nests "
               "(x-nested: path -> field, e.g. location.latitude) are read from there, a "
               "null location meaning missing." if self.nested else "")
            + " A number may be sent as a string holding one (\"52.6\", as that API sends "
            "coordinates). Values go through the training data's rules: text is stripped, and an "
            "empty text, impossible coordinates (latitude beyond +-90, longitude beyond "
            "+-180) and date-times outside " + DATETIME_RANGE_TEXT + " are scored as "
            "missing and listed in the answer's set_missing. Categories never seen in "
            "training are accepted, scored as missing and "
            "listed in the answer's unseen. Other fields are ignored "
            "and listed back in ignored_fields; no field name may be longer than "
            f"{self.max_field_name_length} characters."
            + (" The NaN, Infinity and -Infinity tokens Python's json module writes are read "
               "as null." if self.nan_as_missing else ""))
        observation["additionalProperties"] = True
        observation["propertyNames"] = {"maxLength": self.max_field_name_length}
        observation["examples"] = [self.example]
        for column, kind in self.kinds.items():
            observation["properties"][column]["description"] = {
                "categorical": "Category (string); an unseen value is scored as missing.",
                "boolean": "true or false.",
                "numeric": "A finite number, or a string holding one (\"52.6\").",
                "datetime": "ISO 8601 date-time; without an offset it is read as UTC.",
                "group": "Group attribute of the deployed model's per-group thresholds (not a "
                         "model input); null when unknown.",
            }[kind]
        for column, default in self.defaults.items():
            observation["properties"][column]["default"] = default
            observation["properties"][column]["description"] += (
                f" Optional: left out or null, it is {default:g} (the count of rows recorded "
                "together, e.g. people searched together; features.group_size).")
        self._publish_aliases(observation)
        batch = {
            "title": "ObservationBatch",
            "type": "object",
            "description": f"Up to {self.max_batch} observations scored and stored together "
                           "(all or none), each with its own observation_id (a repeated one "
                           "is refused: 422).",
            "properties": {"observations": {
                "type": "array", "items": {"$ref": "#/components/schemas/Observation"},
                "minItems": 1, "maxItems": self.max_batch}},
            "required": ["observations"],
            "examples": [{"observations": [self.example]}],
        }
        return {"Observation": observation, "ObservationBatch": batch}

    def _publish_aliases(self, observation: dict[str, Any]) -> None:
        """Each field's aliases, in its description and in ``x-aliases`` (alias -> field),
        and the API's nested paths in ``x-nested`` (path -> field).
        Not as properties with "exactly one of the field and its aliases" (an ``allOf`` of
        ``oneOf``s, 11 for the stop-and-search model): exact, but schemathesis then took ~45 s
        instead of ~8 s to draw its first 50 invalid /predict bodies (measured twice, on a
        loaded machine), too much for the test budget. A client that reads the schema sends
        the model's names, which are required."""
        properties = observation["properties"]
        for target, aliases in self.names_of.items():
            properties[target]["description"] += " Also accepted as " + ", ".join(
                repr(a) for a in aliases) + "."
        if self.aliases:
            observation["x-aliases"] = dict(sorted(self.aliases.items()))
        if self.nested:
            observation["x-nested"] = dict(self.nested)

    def parse(self, body: bytes) -> ParsedPredict:
        """Body bytes to validated observations, or a 422 naming every bad field."""
        data = load_json(body, self.nan_as_missing)
        if not isinstance(data, dict):
            raise ApiError(422, "the body must be a JSON object: one observation, or "
                                '{"observations": [...]}', [
                {"field": "body", "loc": ["body"], "msg": "expected an object",
                 "type": "object_type"}])
        if "observations" in data:
            items = data["observations"]
            if not isinstance(items, list) or not items or len(items) > self.max_batch:
                msg = (f"expected a list of 1 to {self.max_batch} observations"
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
        if self.alias_names or self.nested_roots:
            items = list(items)
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    continue
                at = (*prefix, i) if prefix else ()
                if not self.nested_roots.isdisjoint(item):
                    item, sent_as[i] = self._flatten(item, at, problems)
                if not self.alias_names.isdisjoint(item):
                    item, sent_as[i] = self._rename(item, at, problems, sent_as[i])
                items[i] = item
        try:  # one call for the whole batch: the loop over items runs in pydantic-core
            validated = [self.validate(items[0])] if single else self.validate_many(items)
        except ValidationError as exc:
            errors = []
            for e in exc.errors(include_url=False, include_context=False, include_input=False):
                loc = self._as_sent(e["loc"], sent_as, single)
                msg = e["msg"]
                if e["type"] == "missing" and loc[-1] in self.names_of:
                    msg += " (also accepted as " + ", ".join(
                        repr(a) for a in self.names_of[loc[-1]]) + ")"
                loc = (*prefix, *loc)
                errors.append({"field": field_path(loc), "loc": ["body", *loc],
                               "msg": msg, "type": e["type"]})
            raise validation_error(problems + errors,
                                   "observation" if single else "batch") from None
        observations: list[Observation] = []
        seen: dict[str, int] = {}
        columns = self.columns
        known = self.known
        dumps = orjson.dumps
        sha256 = hashlib.sha256
        for i, (item, values) in enumerate(zip(items, validated, strict=True)):
            ignored = item.keys() - known
            if ignored and max(map(len, ignored)) > self.max_field_name_length:
                problems.extend(self._long_names(ignored, (*prefix, i) if prefix else ()))
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
            for c, default in self.defaults.items():
                if values.get(c) is None:
                    values[c] = default
            digest = sha256(dumps([values[c] for c in columns])).hexdigest()
            raw = {c: item.get(c) for c in columns}
            for c in self.numeric:  # a number sent as text is stored as the number it holds
                if isinstance(raw[c], str):
                    raw[c] = values[c]
            for c in self.defaults:  # stored as scored: what retraining and the monitor read
                if raw[c] is None:
                    raw[c] = values[c]
            observations.append(Observation(oid, values, raw, digest, sorted(ignored)))
        if problems:
            raise validation_error(problems, "observation" if single else "batch")
        self.apply_loader_rules(observations)
        return ParsedPredict(single, observations)

    @staticmethod
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

    def _rename(self, item: dict[str, Any], prefix: tuple[Any, ...],
                problems: list[dict[str, Any]],
                sent_as: dict[str, tuple[str, ...]] | None = None
                ) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
        """``item`` with its aliases replaced by the fields they name, and field -> the name
        it was sent under; a field given under two names is a problem (which value is meant
        cannot be told)."""
        renamed = dict(item)
        sent_as = dict(sent_as or {})
        for alias in sorted(self.alias_names.intersection(item)):
            target = self.aliases[alias]
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

    @staticmethod
    def _as_sent(loc: tuple[Any, ...], sent_as: list[dict[str, tuple[str, ...]] | None],
                 single: bool) -> tuple[Any, ...]:
        """A validation error's location with the field named as the client sent it."""
        index, at = (0, 0) if single else (loc[0] if loc and isinstance(loc[0], int) else None,
                                           1)
        names = sent_as[index] if isinstance(index, int) and index < len(sent_as) else None
        if names and len(loc) > at and loc[at] in names:
            return (*loc[:at], *names[loc[at]], *loc[at + 1:])
        return tuple(loc)

    def apply_loader_rules(self, observations: Sequence[Observation]) -> None:
        """The loaders' value rules on each observation's values (what is scored), as
        :mod:`rudikit.data.validation` applies them to training data: text stripped (empty:
        missing), impossible coordinates and date-times outside the table's range missing.
        What a rule set missing is recorded in ``set_missing``."""
        for o in observations:
            values = o.values
            for column in self.text:
                value = values[column]
                if isinstance(value, str):
                    cleaned = values[column] = clean_text(value)
                    if cleaned is None:
                        o.set_missing[column] = "empty text is a missing value"
            stamp = values.get(self.datetime) if self.datetime else None
            if stamp is not None:
                utc = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
                if outside_datetime_range(utc):
                    values[self.datetime] = None
                    o.set_missing[self.datetime] = (
                        f"outside {DATETIME_RANGE_TEXT}, the date-times training data holds")
        if not self.coordinates:
            return
        lat, lon = self.coordinates
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

    def _long_names(self, names: set[str], prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
        """One error per field name over the bound (ignored names are stored), the name cut
        short so that the answer does not echo megabytes back."""
        errors = []
        for name in sorted(n for n in names if len(n) > self.max_field_name_length):
            short = name if len(name) <= 40 else name[:40] + "..."
            loc = (*prefix, short)
            errors.append({"field": field_path(loc), "loc": ["body", *loc],
                           "msg": f"a field name of {len(name)} characters; at most "
                                  f"{self.max_field_name_length}", "type": "name_too_long"})
        return errors
