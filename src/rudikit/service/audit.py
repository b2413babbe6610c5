"""The append-only audit log: who deployed what and why, who created or revoked which token.

Rows are written in the same transaction as the change they describe, so the log cannot miss a
change or record one that did not happen. The database refuses UPDATE and DELETE on the table.
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from rudikit.store.production_tables import audit_log


def now() -> datetime:
    return datetime.now(UTC)


def current_user() -> str:
    """The person running a command, for ``--by`` defaults: $RUDI_USER, else the OS user."""
    name = os.environ.get("RUDI_USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def record(conn: Connection, actor: str, action: str, target: str,
           details: dict[str, Any] | None = None) -> None:
    conn.execute(insert(audit_log).values(at=now(), actor=actor, action=action, target=target,
                                          details=details or {}))
