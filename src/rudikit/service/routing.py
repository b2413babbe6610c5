"""What the routers share: JSON answers, bodies read with a size limit and parsed into a model
(a 422 naming each field), the documented error answers, and :class:`RawRoute`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from rudikit.service.deps import RoleCheck
from rudikit.service.errors import ApiError, field_path, validation_error
from rudikit.service.schemas import ErrorOut

JSON = "application/json"
Body = TypeVar("Body", bound=BaseModel)
#: Bodies larger than this are refused with 413 before they are read in full.
MAX_BODY_BYTES = 16 * 1024 * 1024


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of these error statuses (every one an :class:`ErrorOut`)."""
    text = {401: "Missing, unknown or revoked token.", 403: "The token's role may not call this.",
            404: "Not found; the detail says what.",
            409: "Conflicts with what is stored; nothing was stored.",
            413: "The body is too large.",
            422: "Invalid input; every offending field is named.",
            503: "The results store is unavailable; nothing was stored."}
    return {s: {"model": ErrorOut, "description": text[s]} for s in statuses}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


async def read_body(request: Request) -> bytes:
    """The body, or a 413 once it exceeds ``MAX_BODY_BYTES`` (by its Content-Length, or
    while it streams in): the service never holds more than that for one request."""
    too_large = ApiError(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes; send "
                              "smaller batches")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(model: type[Body], body: bytes | dict[str, Any], what: str,
               where: str = "body") -> Body:
    """``body`` (JSON bytes, or query parameters) as ``model``, or a 422 naming each field."""
    try:
        if isinstance(body, bytes):
            return model.model_validate_json(body)
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [{"field": field_path(e["loc"]), "loc": [where, *e["loc"]],
                   "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors(include_url=False, include_context=False,
                                      include_input=False)]
        raise validation_error(errors, what) from None


class RawRoute(APIRoute):
    """A documented APIRoute whose endpoint takes the request and the caller and returns a
    Response itself: no dependency solving and no response-model serialisation, because
    FastAPI's per-request dependency solving cost more than scoring the model (measured ~0.1 ms
    of ~0.3 ms). The endpoint's one dependency, its :class:`RoleCheck` (declared in its
    signature, so the OpenAPI document shows the security scheme), is run directly."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        (check,) = self.dependant.dependencies  # nothing else that FastAPI would solve
        assert isinstance(check.call, RoleCheck), f"{self.path}: a RawRoute takes a RoleCheck"
        authorize, endpoint = check.call.authorize, self.endpoint

        async def handle(request: Request) -> Response:
            return await endpoint(request, await authorize(request))

        return handle
