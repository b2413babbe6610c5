"""Errors the service and its commands raise on purpose: each carries a message a caller can act
on (naming the field, the id or the command to run), never a stack trace."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """The service cannot start or a command cannot proceed (no deployment, a tampered model
    file, an unknown model group ...). The CLI prints the message and exits non-zero."""


class ApiError(Exception):
    """An HTTP error answer: status, a one-line ``detail`` and, for validation, one entry per
    offending field (``{"field", "loc", "msg", "type"}``)."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("observations", 3, "gender")`` -> ``observations[3].gender``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def validation_error(errors: list[dict[str, Any]], what: str = "request") -> ApiError:
    """A 422 whose detail names every missing field and every field with a wrong value."""
    missing = [e["field"] for e in errors if e["type"] == "missing"]
    wrong = [f"{e['field']} ({e['msg']})" for e in errors if e["type"] != "missing"]
    parts = []
    if missing:
        parts.append(f"missing required field{'s' if len(missing) > 1 else ''}: "
                     + ", ".join(missing))
    if wrong:
        parts.append("invalid value" + ("s" if len(wrong) > 1 else "") + ": " + "; ".join(wrong))
    return ApiError(422, f"invalid {what}: " + "; ".join(parts), errors)
