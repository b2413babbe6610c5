"""The intervention list of a date (``GET /lists/{date}``) and reviewers' feedback on it
(``POST /reviews``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import WithJsonSchema
from starlette.concurrency import run_in_threadpool

from rudikit.service import lists
from rudikit.service.auth import Principal
from rudikit.service.deps import EngineDep, get_service, require_role
from rudikit.service.routing import JSON, RawRoute, error_docs, json_response, parse_body, read_body
from rudikit.service.schemas import REVIEW_EXAMPLE, ListOut, ListQuery, ReviewIn, ReviewOut

router = APIRouter(tags=["lists"])


def _published(name: str) -> WithJsonSchema:
    """The OpenAPI schema of a `ListQuery` field for the parameter of that name: parameters are
    taken as raw strings (checked by `ListQuery` only after the token), yet published with
    their real type and bounds, so a schema-valid value is accepted and a refused one is
    documented."""
    schema = dict(ListQuery.model_json_schema()["properties"][name])
    # an optional parameter (k: int | None) is published as its type: absent means the default
    typed = [s for s in schema.pop("anyOf", []) if s.get("type") != "null"]
    schema = {**(typed[0] if typed else {}), **schema}
    schema.pop("default", None)
    return WithJsonSchema(schema)



ListReader = Annotated[Principal, Depends(require_role("review", "analyst"))]
Reviewer = Annotated[Principal, Depends(require_role("review"))]


@router.get("/lists/{date}", response_model=ListOut,
            summary="The ranked list of a date, without entities already reviewed",
            responses=error_docs(401, 403, 422))
async def get_list(request: Request, date: Annotated[str, _published("date")], _: ListReader,
                   engine: EngineDep,
                   k: Annotated[str | None, _published("k"), Query(description=(
                       "How many entities (an integer from 1 to 10000; default: the size of "
                       "the list `rudi score` made, else 100)."))] = None,
                   cool_off_days: Annotated[str | None, _published("cool_off_days"), Query(
                       description="Entities reviewed for a list within this many days before "
                                   "`date` are left off (an integer from 0 to 3650; default: "
                                   "as the list `rudi score` made was, else 365).")] = None
                   ) -> Response:
    """The top `k` entities scored for `date` (YYYY-MM-DD, a UTC day), highest score first,
    leaving out those already reviewed: the live deployment's scored cases that happened that
    day (by their time input) once it has answered `/predict`, the list `rudi score` made, else
    the deployed model group's stored predictions as of that date (`source` says which). Each
    entry carries its top reasons in words, recent history, previous rank and outcome when
    known; the list carries the project's review decisions and the alerts on its model
    group."""
    # every parameter given (k and cool_off_days, declared above for the OpenAPI document, among
    # them), so that a misspelt one is refused (422), not silently ignored
    query = parse_body(ListQuery, {**request.query_params, "date": date}, "list request",
                       "query")
    found = await run_in_threadpool(lists.ranked_list, engine, query.date, query.k,
                                    query.cool_off_days, get_service(request).lists)
    return json_response(found.as_dict())


async def record_review(request: Request, principal: Reviewer) -> Response:
    """A reviewer's agreement with a flag, the decision taken (a key of the project's
    decisions) and notes, for an entity on the list of `list_date`; the entity then stays off
    the lists of the cool-off period. `corrects` records a correction of an earlier review (the
    earlier one is kept). A decision the project does not offer: 422; not scored for that date
    or no such review to correct: 404; already reviewed for that list (without `corrects`), or
    that review already corrected: 409."""
    review = parse_body(ReviewIn, await read_body(request), "review")
    service = get_service(request)
    stored = await run_in_threadpool(lists.record, service.engine, review, principal.name,
                                     service.lists)
    return json_response(stored, 201)


router.add_api_route(
    "/reviews", record_review, methods=["POST"], route_class_override=RawRoute,
    summary="Record a reviewer's feedback on a listed entity", status_code=201,
    responses={201: {"model": ReviewOut, "description": "Review stored."},
               **error_docs(401, 403, 404, 409, 413, 422)},
    openapi_extra={"requestBody": {"required": True, "content": {JSON: {
        "schema": {"$ref": "#/components/schemas/ReviewIn"},
        "examples": {"review": {"value": REVIEW_EXAMPLE}}}}}})
