"""The JSON value each kind of field of a ``POST /predict`` observation accepts: categorical
-> bounded string, boolean -> bool, numeric -> number (or a string holding one), a group size ->
a count of at least 1, datetime -> ISO 8601 string, a group attribute -> any JSON scalar; every
one nullable. Each is a pydantic type carrying the JSON schema it is published under, so that
what is checked and what the OpenAPI document says cannot drift apart.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict, WithJsonSchema

from rudikit.service.schemas import NO_NUL_PATTERN, NoNul, no_nul


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
