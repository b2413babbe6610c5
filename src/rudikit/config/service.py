"""The ``service`` section: what ``rudi serve`` accepts from the clients of this project beyond
the model's own field names."""

from __future__ import annotations

from pydantic import Field, field_validator

from rudikit.config.base import Strict

#: The longest field name a client may send (the service's default bound on field names).
MAX_ALIAS_LENGTH = 200


class ServiceOptions(Strict):
    """``field_aliases``: other names clients use for the model's fields, alias -> field (e.g.
    ``{station: force}`` for an app that names the force ``station``); the data.police.uk
    column names are always accepted. ``nan_as_missing``: read the ``NaN``/``Infinity`` tokens
    Python's ``json`` writes (not JSON) as missing values; ``false`` refuses them (422).
    ``rudi serve --nan-as-missing/--no-nan-as-missing`` overrides it."""

    field_aliases: dict[str, str] = Field(default_factory=dict)
    nan_as_missing: bool = True

    @field_validator("field_aliases")
    @classmethod
    def _names(cls, aliases: dict[str, str]) -> dict[str, str]:
        for alias, field in aliases.items():
            if not alias.strip() or not field.strip():
                raise ValueError("an alias and the field it names must not be empty")
            if alias == field:
                raise ValueError(f"{alias!r} is an alias of itself")
            if len(alias) > MAX_ALIAS_LENGTH:
                raise ValueError(f"alias {alias[:40]!r}... is longer than "
                                 f"{MAX_ALIAS_LENGTH} characters")
            if alias in aliases.values():
                raise ValueError(f"{alias!r} is both an alias and a field aliases point to")
        return aliases
