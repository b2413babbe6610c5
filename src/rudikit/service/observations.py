"""The observations ``POST /predict`` accepts, validated against the deployed model's features
(categorical -> bounded string, boolean -> bool, numeric -> number, datetime -> ISO 8601
string; every one nullable, every key required). The body is parsed here (orjson, then one
pydantic validator per observation) instead of through FastAPI's body handling: the same
semantics and the same published schema, at a fraction of the cost per request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from typing_extensions import TypedDict

from rudikit.features.encoding import TabularEncoder
from rudikit.service.errors import ApiError, field_path, validation_error
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
NumericValue = Annotated[float | None, Strict(), Field(allow_inf_nan=False)]


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


@dataclass
class ParsedPredict:
    single: bool
    observations: list[Observation]


class ObservationSchema:
    """The deployed model's observation: validator, JSON schemas and examples."""

    def __init__(self, encoder: TabularEncoder, max_batch: int = 1000,
                 groups: Sequence[str] = (), max_value_length: int = 1000,
                 max_field_name_length: int = 200, nan_as_missing: bool = True):
        self.max_batch = max_batch
        self.nan_as_missing = nan_as_missing
        self.kinds: dict[str, str] = {}
        for c in encoder.categorical:
            self.kinds[c] = "categorical"
        for c in encoder.boolean:
            self.kinds[c] = "boolean"
        for c in encoder.numeric:
            self.kinds[c] = "numeric"
        if encoder.datetime:
            self.kinds[encoder.datetime] = "datetime"
        for column in groups:  # a mitigated model's group attributes that are not features
            self.kinds.setdefault(column, "group")
        self.columns = list(self.kinds)
        self.known = frozenset(["observation_id", *self.columns])
        # the model's own field names always fit (the published schema requires them)
        self.max_field_name_length = max(max_field_name_length, *map(len, self.known))
        types = {"categorical": categorical_value(max_value_length), "boolean": BooleanValue,
                 "numeric": NumericValue, "datetime": DatetimeValue,
                 "group": group_value(max_value_length)}
        fields: dict[str, Any] = {"observation_id": ObservationId}
        for column, kind in self.kinds.items():
            fields[column] = types[kind]
        typed = TypedDict("Observation", fields)  # type: ignore[misc]
        typed.__pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[attr-defined]
        self.adapter: TypeAdapter[Any] = TypeAdapter(typed)
        self.validate = self.adapter.validator.validate_python
        self.validate_many = TypeAdapter(list[typed]).validator.validate_python  # type: ignore[valid-type]
        self.example = self._example(encoder)

    def _example(self, encoder: TabularEncoder) -> dict[str, Any]:
        example: dict[str, Any] = {"observation_id": "2020-01-stop-000123"}
        for column, kind in self.kinds.items():
            if kind == "categorical":
                known = encoder.categories_.get(column) or ["a value"]
                example[column] = known[0]
            elif kind == "boolean":
                example[column] = False
            elif kind in ("numeric", "group"):
                example[column] = None
            else:
                example[column] = "2020-01-31T14:05:00+00:00"
        return example

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """Component schemas ``Observation`` and ``ObservationBatch`` for the OpenAPI doc."""
        observation = self.adapter.json_schema()
        observation["title"] = "Observation"
        observation["description"] = (
            "One observation: observation_id (your id, also the idempotency key) and every "
            "feature the deployed model uses. Each feature key must be present; null means "
            "missing. Categories never seen in training are accepted, scored as missing and "
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
                "numeric": "A finite number.",
                "datetime": "ISO 8601 date-time; without an offset it is read as UTC.",
                "group": "Group attribute of the deployed model's per-group thresholds (not a "
                         "model input); null when unknown.",
            }[kind]
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
        try:  # one call for the whole batch: the loop over items runs in pydantic-core
            validated = [self.validate(data)] if single else self.validate_many(items)
        except ValidationError as exc:
            errors = []
            for e in exc.errors(include_url=False, include_context=False, include_input=False):
                loc = (*prefix, *e["loc"])
                errors.append({"field": field_path(loc), "loc": ["body", *loc],
                               "msg": e["msg"], "type": e["type"]})
            raise validation_error(errors, "observation" if single else "batch") from None
        observations: list[Observation] = []
        seen: dict[str, int] = {}
        problems: list[dict[str, Any]] = []
        columns = self.columns
        known = self.known
        dumps = orjson.dumps
        sha256 = hashlib.sha256
        for i, (item, values) in enumerate(zip(items, validated, strict=True)):
            ignored = item.keys() - known
            if ignored and max(map(len, ignored)) > self.max_field_name_length:
                problems.extend(self._long_names(ignored, (*prefix, i) if prefix else ()))
                continue
            oid = values["observation_id"]
            if oid in seen:
                loc = (*prefix, i, "observation_id")
                problems.append({"field": field_path(loc), "loc": ["body", *loc],
                                 "msg": f"repeats observations[{seen[oid]}].observation_id",
                                 "type": "duplicate"})
                continue
            seen[oid] = i
            observations.append(Observation(
                oid, values, {c: item[c] for c in columns},
                sha256(dumps([values[c] for c in columns])).hexdigest(),
                sorted(ignored)))
        if problems:
            raise validation_error(problems, "observation" if single else "batch")
        return ParsedPredict(single, observations)

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
