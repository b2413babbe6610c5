"""Browser sessions for the dashboard: a signed cookie in place of the bearer token.

A user pastes a token into the login form once. The cookie then holds ``token id . expiry .
nonce . signature``, where the signature is an HMAC (key: ``RUDI_SESSION_SECRET``) over those
fields and the token's stored SHA-256. The raw token is never kept, on the server or in the
cookie; every request re-reads the token row, so a revoked token ends its sessions at once, and
the cookie is HttpOnly and SameSite=Strict (Secure over HTTPS).

Forms carry a CSRF token, an HMAC of the session's nonce (or, on the login form, of a nonce in
a short-lived cookie), checked in constant time on every POST.

The key comes from ``RUDI_SESSION_SECRET`` (at least 32 characters); without it, one is
created in ``<project>/.rudi/session.key`` (mode 0600) so that all workers of ``rudi serve``
and restarts share it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from rudikit.service.auth import Principal
from rudikit.service.errors import ServiceError
from rudikit.store.queries import tokens as tokens_q

log = logging.getLogger("rudikit.service")

ENV_SESSION_SECRET = "RUDI_SESSION_SECRET"
SESSION_COOKIE = "rudi_session"
LOGIN_COOKIE = "rudi_login"
SESSION_SECONDS = 8 * 3600  # one shift
LOGIN_SECONDS = 1800  # time to fill in the login form
MIN_SECRET = 32


def session_secret(project_dir: Path) -> bytes:
    """The signing key: ``RUDI_SESSION_SECRET``, else the project's ``.rudi/session.key``."""
    value = os.environ.get(ENV_SESSION_SECRET)
    if value:
        if len(value) < MIN_SECRET:
            raise ServiceError(f"{ENV_SESSION_SECRET} must be at least {MIN_SECRET} characters "
                               "(e.g. the output of `python -c 'import secrets; "
                               "print(secrets.token_hex(32))'`)")
        return value.encode()
    path = Path(project_dir) / ".rudi" / "session.key"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ServiceError(f"cannot create the dashboard's session key {path} ({exc}); set "
                           f"{ENV_SESSION_SECRET} instead") from None
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        log.info("created the dashboard session key %s", path)
    for _ in range(50):  # another worker may be writing it this very moment
        key = path.read_text().strip()
        if len(key) >= MIN_SECRET:
            return key.encode()
        time.sleep(0.02)
    raise ServiceError(f"the dashboard's session key {path} is too short; delete it or set "
                       f"{ENV_SESSION_SECRET}")


@dataclass(frozen=True)
class Session:
    principal: Principal
    nonce: str  # binds the CSRF token to this session


class Sessions:
    """Issues and checks session cookies and CSRF tokens; a cookie expires ``SESSION_SECONDS``
    after it is issued, by ``clock`` (Unix seconds; injected so that tests need not wait)."""

    def __init__(self, engine: Engine, secret: bytes, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.secret = secret
        self.clock = clock

    def _sign(self, *parts: str) -> str:
        return hmac.new(self.secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()

    def issue(self, principal: Principal, token_hash: str) -> str:
        """A cookie value for a user who just logged in with the token hashing to
        ``token_hash``."""
        fields = [str(principal.token_id), str(int(self.clock()) + SESSION_SECONDS),
                  secrets.token_urlsafe(16)]
        return ".".join([*fields, self._sign("session", *fields, token_hash)])

    def check(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None if it is malformed, forged, expired, or its token
        is revoked."""
        parts = (cookie or "").split(".")
        if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        token_id, expires, nonce, signature = parts
        if int(expires) < self.clock():
            return None
        row = tokens_q.token(self.engine, int(token_id))
        if row is None or row["revoked_at"] is not None:
            return None
        expected = self._sign("session", token_id, expires, nonce, row["token_hash"])
        if not hmac.compare_digest(expected, signature):
            return None
        return Session(Principal(int(token_id), row["name"], row["role"]), nonce)

    def csrf(self, nonce: str) -> str:
        """The CSRF token of forms in the session (or login form) with ``nonce``."""
        return self._sign("csrf", nonce)

    def csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        return bool(nonce and token) and hmac.compare_digest(self.csrf(nonce or ""), token or "")
