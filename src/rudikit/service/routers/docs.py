"""The pages for people: the API's own documentation (``/openapi.json``, Swagger UI at
``/docs``, ReDoc at ``/redoc``), for any valid token, and ``/``, an open redirect to the
dashboard; all left out of the document itself."""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path
from typing import Any

import fastapi_offline
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from rudikit.service.deps import AnyToken
from rudikit.service.routing import json_response

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request) -> Response:
    """A browser opening the server's address lands on the dashboard, which asks for a token
    itself (so the redirect needs none and reveals nothing)."""
    return RedirectResponse(request.scope.get("root_path", "").rstrip("/") + "/ui/")


@router.get("/openapi.json")
async def openapi_document(request: Request, _: AnyToken) -> Response:
    return json_response(request.app.openapi())


@router.get("/docs")
async def docs(request: Request, _: AnyToken) -> Response:
    return Response(docs_page("swagger", request.app.title, request.app.openapi()),
                    media_type="text/html")


@router.get("/redoc")
async def redoc(request: Request, _: AnyToken) -> Response:
    return Response(docs_page("redoc", request.app.title, request.app.openapi()),
                    media_type="text/html")


DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


@functools.cache
def _asset(name: str) -> str:
    """A Swagger UI / ReDoc file shipped by the fastapi-offline package (no CDN), ready to
    inline in a <script> or <style> element."""
    text = (DOCS_ASSETS / name).read_text(encoding="utf-8")
    return re.sub("</(script|style)", r"<\\/\1", text, flags=re.IGNORECASE)


def docs_page(kind: str, title: str, document: dict[str, Any]) -> str:
    """Swagger UI or ReDoc with the scripts, styles and the OpenAPI document inlined: the page
    itself needs a token, and a browser would not send one when fetching /openapi.json or the
    assets on its own (so they are behind the same token as the document)."""
    spec = orjson.dumps(document).decode().replace("</", "<\\/")
    head = f'<!doctype html><html><head><title>{html.escape(title)}</title><meta charset="utf-8">'
    if kind == "swagger":
        return (f"{head}<style>{_asset('swagger-ui.css')}</style></head><body>"
                f'<div id="swagger-ui"></div><script>{_asset("swagger-ui-bundle.js")}</script>'
                f'<script>SwaggerUIBundle({{spec: {spec}, dom_id: "#swagger-ui"}});</script>'
                "</body></html>")
    return (f'{head}</head><body><div id="redoc"></div><script>{_asset("redoc.standalone.js")}'
            f'</script><script>Redoc.init({spec}, {{}}, document.getElementById("redoc"));'
            "</script></body></html>")
