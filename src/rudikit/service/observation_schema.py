"""The observation the deployed model takes in ``POST /predict``: its fields (one per feature the
encoder reads, of the kinds in :mod:`rudikit.service.observation_values`, and a mitigated
model's group attributes), the names each field may also come under, the pydantic validator
of one observation and of a batch, and the JSON schemas published in the OpenAPI document.

A field may come under another name: the data.police.uk column names (``Object of search``,
``Date``, the API's ``operation``), the paths the data.police.uk API nests it under
(``location.latitude``) and the project's ``service.field_aliases``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired

from pydantic import ConfigDict, TypeAdapter
from typing_extensions import TypedDict

from rudikit.config import did_you_mean
from rudikit.data.police_uk import API_NESTED, column_aliases
from rudikit.data.validation import DATETIME_RANGE_TEXT
from rudikit.features.encoding import TabularEncoder
from rudikit.service.errors import ServiceError
from rudikit.service.observation_values import (
    BooleanValue,
    CountValue,
    DatetimeValue,
    NumericValue,
    categorical_value,
    group_value,
)
from rudikit.service.schemas import ObservationId


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
