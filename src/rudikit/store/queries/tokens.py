"""API tokens of the service (their hashes, roles and revocations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from rudikit.store.production_tables import api_tokens
from rudikit.store.queries.common import Bind, connected, mappings


def token(bind: Bind, token_id: int) -> RowMapping | None:
    """The row of token ``token_id`` (with its hash), or None."""
    with connected(bind) as conn:
        return conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)
                            ).mappings().one_or_none()


def token_by_hash(bind: Bind, digest: str) -> RowMapping | None:
    """id, name, role and revoked_at of the token whose SHA-256 is ``digest``, or None."""
    with connected(bind) as conn:
        return conn.execute(select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role,
                                   api_tokens.c.revoked_at)
                            .where(api_tokens.c.token_hash == digest)).mappings().one_or_none()


def tokens(bind: Bind) -> list[dict[str, Any]]:
    """Every token without its hash, in creation order."""
    columns = [c for c in api_tokens.c if c.name != "token_hash"]
    return [dict(r) for r in mappings(bind, select(*columns).order_by(api_tokens.c.id))]
