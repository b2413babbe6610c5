"""Bearer tokens with roles.

A token is 256 random bits shown once when it is created; the store keeps only its SHA-256, so
a copy of the database does not let anyone call the service (a slow password hash buys nothing
for a random 256-bit secret). Roles: ``predict`` (POST /predict), ``outcome`` (POST /outcomes),
``review`` (read intervention lists, record reviews), ``analyst`` (read predictions, metrics,
lists, the dashboard), ``admin`` (everything). The service caches lookups for a
couple of seconds, so a revocation takes effect within ``token_cache_seconds``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine

from rudikit.service import audit
from rudikit.service.errors import ApiError, ServiceError
from rudikit.store.production_tables import api_tokens
from rudikit.store.queries import tokens as tokens_q

ROLES = ("predict", "outcome", "review", "analyst", "admin")
TOKEN_PREFIX = "rudi_"


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    role: str

    def allowed(self, roles: tuple[str, ...]) -> bool:
        return self.role == "admin" or self.role in roles


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(engine: Engine, role: str, name: str, by: str) -> tuple[int, str]:
    """Store a new token's hash; return (token id, the token). The token is not kept."""
    if role not in ROLES:
        raise ServiceError(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    if not name.strip():
        raise ServiceError("a token needs a name saying who or what uses it (--name)")
    token = new_token()
    with engine.begin() as conn:
        token_id = conn.execute(insert(api_tokens).values(
            name=name, role=role, token_hash=hash_token(token), created_by=by,
            created_at=audit.now()).returning(api_tokens.c.id)).scalar_one()
        audit.record(conn, by, "token_create", f"token {token_id}",
                     {"token_id": token_id, "name": name, "role": role})
    return token_id, token


def revoke_token(engine: Engine, token_id: int, by: str) -> dict[str, Any]:
    """Mark a token revoked (its row stays, with who revoked it and when)."""
    with engine.begin() as conn:
        row = tokens_q.token(conn, token_id)
        if row is None:
            raise ServiceError(f"no token with id {token_id} (see `rudi token list`)")
        if row["revoked_at"] is not None:
            raise ServiceError(f"token {token_id} ({row['name']}) was already revoked on "
                               f"{row['revoked_at']:%Y-%m-%d %H:%M} by {row['revoked_by']}")
        conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(
            revoked_at=audit.now(), revoked_by=by))
        audit.record(conn, by, "token_revoke", f"token {token_id}",
                     {"token_id": token_id, "name": row["name"], "role": row["role"]})
    return dict(row)


def list_tokens(engine: Engine) -> list[dict[str, Any]]:
    return tokens_q.tokens(engine)


class TokenCache:
    """Token hash -> principal (or None for unknown/revoked), re-read after ``ttl`` seconds of
    ``clock`` (injected so that tests of expiry need not sleep)."""

    def __init__(self, engine: Engine, ttl: float = 2.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def cached(self, digest: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(digest)
        if entry is not None and entry[0] > self.clock():
            return True, entry[1]
        return False, None

    def load(self, digest: str) -> Principal | None:
        """Read one token from the store (blocking: run it in a worker thread)."""
        row = tokens_q.token_by_hash(self.engine, digest)
        principal = None
        if row is not None and row["revoked_at"] is None:
            principal = Principal(row["id"], row["name"], row["role"])
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # crude bound: unknown tokens must not grow memory
            self._entries[digest] = (self.clock() + self.ttl, principal)
        return principal


def no_bearer_token(header: str | None) -> ApiError:
    """The 401 for a request whose Authorization header holds no bearer token: the API's
    ``HTTPBearer`` (see :mod:`rudikit.service.deps`) and the dashboard refuse it alike."""
    if not header:
        return ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>' (create "
                             "one with `rudi token create`)",
                        headers={"WWW-Authenticate": "Bearer"})
    return ApiError(401, "the Authorization header must be 'Bearer <token>'",
                    headers={"WWW-Authenticate": "Bearer"})


def bearer_digest(header: str | None) -> str:
    """The SHA-256 of the bearer token in an Authorization header, or a 401 (the dashboard,
    which takes a token from a header or from its login form)."""
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise no_bearer_token(header)
    return hash_token(token)
