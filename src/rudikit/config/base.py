"""What every section of ``rudi.yaml`` shares: strict models (an unknown key is an error, not a
silently ignored setting), the error that lists problems by key path, and the YAML reader
(``${VAR}`` expansion; a date-shaped value that is no date stays text for the schema to report).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

PROJECT_FILE = "rudi.yaml"


class ProjectError(Exception):
    """A problem with the project file; ``problems`` holds one "key.path: message" per problem."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` (a different case counts as the
    closest), or ``""``: the suggestion every "unknown name" message ends with."""
    choices = list(choices)
    same = [c for c in choices if c.casefold() == word.casefold()]
    close = same or difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
    return value


#: A model grid's hyperparameters: each name with a list of values (a single value is a list of
#: one); every combination is a model group.
GridParams = Annotated[dict[str, list[Any]], BeforeValidator(_listify)]


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("TemporalSplit", "RandomSplit", "ColumnSplit") or (
                i and isinstance(loc[i - 1], int)
                and str(item).startswith(("temporal", "random", "group", "column"))):
            continue  # discriminated-union tags (after a list index) say nothing to a user
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown kind {error.get('input')!r}; expected temporal, random, group or column"
    if kind == "literal_error":
        return f"{error['msg'].lower()}, got {error.get('input')!r}"
    msg = error["msg"]
    msg = msg.removeprefix("Value error, ")
    if error.get("input") is not None and kind.endswith(("_type", "_parsing")):
        msg += f", got {error['input']!r}"
    return msg


def format_validation_error(exc: ValidationError) -> list[str]:
    return [f"{_key_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``, except that a date-shaped value that is no date (``2016-02-30``,
    ``2000-13-01``) stays text, so the schema reports it with its key path instead of PyYAML
    raising a bare ValueError."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)  # type: ignore[arg-type]
    except ValueError:
        return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def expand_env(text: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` so paths and secrets can come from the
    environment instead of the file."""
    return _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), text)



def project_file(path: str | Path) -> Path:
    """``rudi.yaml`` itself, or the one inside a project folder."""
    path = Path(path)
    return path / PROJECT_FILE if path.is_dir() else path


def read_yaml(file: Path) -> Any:
    """The file's YAML, environment variables expanded; a syntax error is a ProjectError naming
    its line and column."""
    try:
        return yaml.load(expand_env(file.read_text(encoding="utf-8")), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ProjectError(str(file), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]
                           ) from None
