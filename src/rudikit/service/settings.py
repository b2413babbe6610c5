"""Service settings, from the command line or environment variables (the only place secrets and
connection strings come from; uvicorn's worker processes read them from the environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rudikit.service.errors import ServiceError

if TYPE_CHECKING:
    from rudikit.config import ServiceOptions

ENV_PROJECT = "RUDI_PROJECT_DIR"
ENV_DATABASE_URL = "RUDI_DATABASE_URL"
ENV_SCHEMA = "RUDI_DATABASE_SCHEMA"
ENV_MAX_BATCH = "RUDI_MAX_BATCH"
ENV_TOKEN_CACHE = "RUDI_TOKEN_CACHE_SECONDS"
ENV_SYNCHRONOUS = "RUDI_SQLITE_SYNCHRONOUS"
ENV_RELOAD = "RUDI_RELOAD_SECONDS"
ENV_MAX_VALUE_LENGTH = "RUDI_MAX_VALUE_LENGTH"
ENV_MAX_FIELD_NAME_LENGTH = "RUDI_MAX_FIELD_NAME_LENGTH"
ENV_NAN_AS_MISSING = "RUDI_NAN_AS_MISSING"


POSITIVE = (ENV_MAX_BATCH, ENV_MAX_VALUE_LENGTH, ENV_MAX_FIELD_NAME_LENGTH)


@dataclass(frozen=True)
class ServiceSettings:
    project_dir: Path = Path(".")
    database_url: str | None = None  # None: RUDI_DATABASE_URL or <project>/.rudi/rudi.db
    schema: str | None = None  # PostgreSQL schema holding the store (tests isolate stores so)
    max_batch: int = 1000  # observations per POST /predict
    # characters in a category (or group) value, and in the name of any field of an
    # observation: every value is stored, and no category or column is this long
    max_value_length: int = 1000
    max_field_name_length: int = 200
    # read the NaN/Infinity tokens Python's json writes (not JSON) as null, i.e. missing;
    # None: as the project's rudi.yaml says (service.nan_as_missing, default true)
    nan_as_missing: bool | None = None
    token_cache_seconds: float = 2.0  # a revoked token stops working within this time
    # SQLite (WAL): NORMAL, as the rest of the store, keeps every committed (so every answered)
    # request through a crash of the server process; FULL also fsyncs each group commit, so
    # they survive a power cut too, at a cost that depends on the disk (see bench/serve.py).
    sqlite_synchronous: str = "NORMAL"
    # how often the server looks for a new live deployment (`rudi deploy`) and switches to it;
    # 0: never (serve the deployment live at start until restarted)
    reload_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.sqlite_synchronous.upper() not in ("FULL", "NORMAL"):
            raise ServiceError(f"SQLite synchronous mode must be FULL or NORMAL, got "
                               f"{self.sqlite_synchronous!r}")
        for name in ("max_batch", "max_value_length", "max_field_name_length"):
            if getattr(self, name) < 1:
                raise ServiceError(f"{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def from_env(cls) -> ServiceSettings:
        def number(name: str, default: float, kind: type) -> float:
            value = os.environ.get(name)
            if value is None or value == "":
                return default
            try:
                parsed = kind(value)
            except ValueError:
                raise ServiceError(f"environment variable {name}={value!r} is not a "
                                   f"{kind.__name__}") from None
            if parsed < 0 or (name in POSITIVE and parsed < 1):
                raise ServiceError(f"environment variable {name}={value!r} is out of range")
            return parsed

        def flag(name: str, default: bool | None) -> bool | None:
            value = (os.environ.get(name) or "").strip().lower()
            if value == "":
                return default
            if value not in ("1", "true", "yes", "0", "false", "no"):
                raise ServiceError(f"environment variable {name}={value!r} is not 1/true/yes "
                                   "or 0/false/no")
            return value in ("1", "true", "yes")

        return cls(
            project_dir=Path(os.environ.get(ENV_PROJECT) or "."),
            database_url=os.environ.get(ENV_DATABASE_URL) or None,
            schema=os.environ.get(ENV_SCHEMA) or None,
            max_batch=int(number(ENV_MAX_BATCH, 1000, int)),
            max_value_length=int(number(ENV_MAX_VALUE_LENGTH, 1000, int)),
            max_field_name_length=int(number(ENV_MAX_FIELD_NAME_LENGTH, 200, int)),
            nan_as_missing=flag(ENV_NAN_AS_MISSING, None),
            token_cache_seconds=float(number(ENV_TOKEN_CACHE, 2.0, float)),
            sqlite_synchronous=os.environ.get(ENV_SYNCHRONOUS) or "NORMAL",
            reload_seconds=float(number(ENV_RELOAD, 2.0, float)),
        )

    def to_env(self) -> dict[str, str]:
        env = {ENV_PROJECT: str(Path(self.project_dir).resolve()),
               ENV_MAX_BATCH: str(self.max_batch),
               ENV_MAX_VALUE_LENGTH: str(self.max_value_length),
               ENV_MAX_FIELD_NAME_LENGTH: str(self.max_field_name_length),
               ENV_TOKEN_CACHE: str(self.token_cache_seconds),
               ENV_SYNCHRONOUS: self.sqlite_synchronous.upper(),
               ENV_RELOAD: str(self.reload_seconds)}
        if self.nan_as_missing is not None:
            env[ENV_NAN_AS_MISSING] = "1" if self.nan_as_missing else "0"
        if self.database_url:
            env[ENV_DATABASE_URL] = self.database_url
        if self.schema:
            env[ENV_SCHEMA] = self.schema
        return env


def project_options(project_dir: Path) -> ServiceOptions:
    """The ``service`` section of the project's rudi.yaml (defaults when the folder has none,
    e.g. a store served with --database-url alone); an invalid file stops the service, as a
    setting it cannot read would otherwise be silently dropped."""
    # imported here: `rudi --help` loads no project machinery (tests/test_cli.py)
    from rudikit.config import PROJECT_FILE, ProjectError, ServiceOptions, load_project

    if not (Path(project_dir) / PROJECT_FILE).exists():
        return ServiceOptions()
    try:
        return load_project(project_dir).service
    except ProjectError as exc:
        raise ServiceError(f"cannot read the service settings: {exc}") from None
