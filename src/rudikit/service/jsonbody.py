"""Request bodies as JSON, with the ``NaN``/``Infinity`` tokens Python clients write.

Python's ``json.dumps`` writes a missing float as ``NaN`` (and infinities as ``Infinity``,
``-Infinity``), which is not JSON: orjson refuses it. Such a body is read again by the standard
library with those tokens as null (missing), so valid bodies keep orjson's speed and only these
take the slow path. Numbers and strings are read as orjson reads them (a number too large for a
float is refused, an integer over 64 bits becomes a float, a lone surrogate is refused), so the
rest of the service sees the same values either way.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from rudikit.service.errors import ApiError

TOKENS = (b"NaN", b"Infinity")


def load_json(body: bytes, nan_as_missing: bool = True) -> Any:
    """The parsed body, or a 422 (``field: body``) saying why it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = f"not valid JSON: {exc}"
    has_tokens = any(token in body for token in TOKENS)
    if has_tokens and nan_as_missing:
        seen: list[str] = []

        def constant(token: str) -> None:
            seen.append(token)

        try:
            data = json.loads(body, parse_constant=constant, parse_float=_finite,
                              parse_int=_integer)
            orjson.dumps(data)  # what orjson would refuse to read stays refused
        except (ValueError, RecursionError, TypeError, orjson.JSONEncodeError):
            data = seen = None  # type: ignore[assignment]
        if seen:
            return data
    elif has_tokens:
        error += " (NaN and Infinity are not JSON: send null for a missing value)"
    raise ApiError(422, f"the body is {error}", [
        {"field": "body", "loc": ["body"], "msg": error, "type": "json_invalid"}])


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number is infinity when parsed as double: {text[:40]}")
    return value


def _integer(text: str) -> int | float:
    value = int(text)
    return value if -(2**63) <= value < 2**64 else _finite(text)
