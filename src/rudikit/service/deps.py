"""What the routers are given (FastAPI dependencies): the app's :class:`Service` and its parts,
and the caller, identified by a bearer token (``fastapi.security.HTTPBearer``) whose role a
:class:`RoleCheck` admits.

``HTTPBearer`` runs with ``auto_error=False`` because its own refusal (a bare "Not
authenticated") is not the service's: every refusal here is a 401 naming what is wrong (no
token, not a bearer token, unknown or revoked) with ``WWW-Authenticate: Bearer``, and a valid
token whose role may not call the endpoint is a 403 naming the roles that may.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from rudikit.service.auth import Principal, hash_token, no_bearer_token
from rudikit.service.errors import ApiError
from rudikit.service.metrics import Metrics
from rudikit.service.state import Service
from rudikit.service.writer.group_commit import StoreWriter

#: the OpenAPI security scheme ``bearerAuth`` of every endpoint but /health
bearer = HTTPBearer(scheme_name="bearerAuth", auto_error=False,
                    description="A token from `rudi token create --role ROLE`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def get_service(request: Request) -> Service:
    """The app's service (made by :func:`rudikit.service.app.create_app`)."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def get_engine(service: ServiceDep) -> Engine:
    """The results store (SQLAlchemy; blocking, so callers run their queries in a thread)."""
    return service.engine


def get_writer(service: ServiceDep) -> StoreWriter:
    return service.writer


def get_metrics(service: ServiceDep) -> Metrics:
    return service.metrics


EngineDep = Annotated[Engine, Depends(get_engine)]
WriterDep = Annotated[StoreWriter, Depends(get_writer)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


class RoleCheck:
    """A dependency giving the caller's :class:`Principal` if their token exists, is not revoked
    and has one of ``roles`` (or admin; no roles: any valid token); 401 / 403 otherwise."""

    def __init__(self, *roles: str):
        self.roles = roles

    async def __call__(self, request: Request, credentials: Credentials,
                       service: ServiceDep) -> Principal:
        if credentials is None:
            raise no_bearer_token(request.headers.get("authorization"))
        digest = hash_token(credentials.credentials)
        hit, principal = service.tokens.cached(digest)
        if not hit:
            principal = await run_in_threadpool(service.tokens.load, digest)
        if principal is None:
            raise ApiError(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        if self.roles and not principal.allowed(self.roles):
            raise ApiError(403, f"token {principal.name!r} has role {principal.role!r}; this "
                                f"endpoint needs role {' or '.join([*self.roles, 'admin'])}")
        return principal

    async def authorize(self, request: Request) -> Principal:
        """The same check without FastAPI's dependency solving (for a
        :class:`~rudikit.service.routing.RawRoute`)."""
        return await self(request, await bearer(request), get_service(request))


def require_role(*roles: str) -> RoleCheck:
    """``Depends(require_role("review"))``: the caller, if their token's role is one of
    ``roles`` or admin."""
    return RoleCheck(*roles)


#: any valid token (the API documents)
AnyToken = Annotated[Principal, Depends(require_role())]
