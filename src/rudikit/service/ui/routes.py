"""The dashboard under ``/ui``: server-rendered pages (Jinja2) with plotly charts.

Pages need the ``analyst`` role (``admin`` always); the intervention list also admits the
``review`` role, which alone may record reviews there. A browser logs in by pasting a token
(see :mod:`rudikit.service.ui.session`); a script may send ``Authorization: Bearer`` instead.
Only the login form and the stylesheet are open. plotly.js comes from the installed plotly
package, so the dashboard works without internet access, and the Content-Security-Policy
allows scripts from this server only.
"""

from __future__ import annotations

import gzip
import hashlib
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from plotly.offline import get_plotlyjs, get_plotlyjs_version
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from rudikit.service import lists
from rudikit.service.auth import bearer_digest
from rudikit.service.errors import ApiError, ServiceError
from rudikit.service.schemas import AGREEMENTS, ListQuery, ReviewIn
from rudikit.service.ui import queries
from rudikit.service.ui.session import (
    LOGIN_COOKIE,
    LOGIN_SECONDS,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Session,
    Sessions,
    session_secret,
)

HERE = Path(__file__).parent
PLOTLY_JS = f"plotly-{get_plotlyjs_version()}.min.js"
ANALYST = ("analyst",)
LIST_READERS = ("analyst", "review")
REVIEWERS = ("review",)
#: Roles that may log in (admin is always allowed).
DASHBOARD_ROLES = ("analyst", "review")
MAX_FORM_BYTES = 64 * 1024
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NAV = (("overview", "Model groups", ANALYST), ("fairness", "Fairness", ANALYST),
       ("monitoring", "Monitoring", ANALYST), ("lists", "Intervention list", LIST_READERS))


class NeedLogin(Exception):
    """No session: browsers are sent to the login form."""


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _when(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["num"] = _fmt
    env.filters["when"] = _when
    return env


class StaticAsset:
    """A file served from memory with a strong ETag and, when the browser takes it, gzip."""

    def __init__(self, body: bytes, media_type: str, immutable: bool = False):
        self.body = body
        self.zipped = gzip.compress(body, 6)
        self.media_type = media_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        self.cache = ("public, max-age=31536000, immutable" if immutable
                      else "private, max-age=3600")

    def response(self, request: Request) -> Response:
        headers = {"ETag": self.etag, "Cache-Control": self.cache, "Vary": "Accept-Encoding",
                   "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(self.zipped, media_type=self.media_type,
                            headers={**headers, "Content-Encoding": "gzip"})
        return Response(self.body, media_type=self.media_type, headers=headers)


def _safe_next(value: str | None, base: str) -> str:
    """Where to go after logging in: a dashboard path only (no open redirect)."""
    if value and value.startswith(base + "/") and not value.startswith("//") \
            and "\\" not in value:
        return value
    return base + "/"


def create_dashboard(service: Any) -> FastAPI:
    """The dashboard app, mounted at ``/ui`` by :func:`rudikit.service.app.create_app`."""
    engine = service.engine
    try:
        sessions = Sessions(engine, session_secret(service.settings.project_dir))
    except ServiceError:
        service.close()
        raise
    env = _environment()
    plotly_js = StaticAsset(get_plotlyjs().encode(), "text/javascript", immutable=True)
    assets = {name: StaticAsset((HERE / "static" / name).read_bytes(), media)
              for name, media in (("dashboard.js", "text/javascript"),
                                  ("dashboard.css", "text/css"))}
    ui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def base(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    def render(request: Request, template: str, status: int = 200,
               session: Session | None = None, **context: Any) -> HTMLResponse:
        role = session.principal.role if session else None
        nav = [(name, title) for name, title, roles in NAV
               if session is not None and session.principal.allowed(roles)]
        html = env.get_template(template).render(
            base=base(request), session=session, nav=nav, role=role,
            csrf=sessions.csrf(session.nonce) if session and session.nonce else "",
            plotly_js=PLOTLY_JS, **context)
        return HTMLResponse(html, status, headers={**HEADERS, "Cache-Control": "no-store"})

    def user(request: Request, roles: tuple[str, ...]) -> Session:
        """The caller (session cookie, or a bearer header from a script) if their role may see
        this; otherwise NeedLogin, or Refused (401 / 403)."""
        header = request.headers.get("authorization")
        if header:
            principal = service.tokens.load(bearer_digest(header))
            if principal is None:
                raise ApiError(401, "unknown or revoked token",
                               headers={"WWW-Authenticate": "Bearer"})
            session = Session(principal, "")
        else:
            found = sessions.check(request.cookies.get(SESSION_COOKIE))
            if found is None:
                raise NeedLogin()
            session = found
        if not session.principal.allowed(roles):
            raise Refused(403, f"Your token ({session.principal.name!r}, role "
                               f"{session.principal.role!r}) may not see this page; it needs "
                               f"role {' or '.join([*roles, 'admin'])}.")
        return session

    @ui.exception_handler(NeedLogin)
    async def _login_first(request: Request, _: NeedLogin) -> Response:
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{base(request)}/login?next={quote(target)}", 303)
        return render(request, "error.html", 401, title="Not logged in",
                      message="Your session has ended; log in again.")

    @ui.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        response = render(request, "error.html", exc.status, title="Not allowed",
                          message=exc.detail)
        response.headers.update(exc.headers)
        return response

    @ui.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return render(request, "error.html", exc.status, title="Not allowed",
                      message=exc.message)

    @ui.exception_handler(queries.NotFound)
    async def _not_found(request: Request, exc: queries.NotFound) -> Response:
        return render(request, "error.html", 404, title="Not found", message=str(exc))

    async def form(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "The form is too large.")
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"),
                                             keep_blank_values=True).items()}

    def cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
        response.set_cookie(name, value, max_age=age, path=base(request) or "/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")

    # --- logging in and out ------------------------------------------------------------------

    def login_page(request: Request, status: int = 200, error: str = "",
                   next_url: str | None = None) -> Response:
        nonce = secrets.token_urlsafe(16)
        response = render(request, "login.html", status, error=error,
                          login_csrf=sessions.csrf(nonce),
                          next=_safe_next(next_url, base(request)))
        cookie(response, request, LOGIN_COOKIE, nonce, LOGIN_SECONDS)
        return response

    @ui.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        return login_page(request, next_url=request.query_params.get("next"))

    @ui.post("/login")
    async def login(request: Request) -> Response:
        fields = await form(request)
        if not sessions.csrf_ok(request.cookies.get(LOGIN_COOKIE), fields.get("csrf")):
            return login_page(request, 403, "The form had expired; paste the token again.",
                              fields.get("next"))
        token = fields.get("token", "").strip()
        if not token:
            return login_page(request, 422, "token: paste your token.", fields.get("next"))
        digest = bearer_digest(f"Bearer {token}")
        principal = await run_in_threadpool(service.tokens.load, digest)
        if principal is None:
            return login_page(request, 401, "token: unknown or revoked.", fields.get("next"))
        if not principal.allowed(DASHBOARD_ROLES):
            return login_page(request, 403, f"token: role {principal.role!r} may not use the "
                                            "dashboard (it needs analyst, review or admin).",
                              fields.get("next"))
        target = _safe_next(fields.get("next"), base(request))
        if principal.role == "review" and not target.startswith(f"{base(request)}/lists"):
            target = f"{base(request)}/lists"
        response = RedirectResponse(target, 303)
        cookie(response, request, SESSION_COOKIE, sessions.issue(principal, digest),
               SESSION_SECONDS)
        response.delete_cookie(LOGIN_COOKIE, path=base(request) or "/")
        return response

    @ui.post("/logout")
    async def logout(request: Request) -> Response:
        session = await run_in_threadpool(user, request, DASHBOARD_ROLES)
        fields = await form(request)
        if not sessions.csrf_ok(session.nonce, fields.get("csrf")):
            raise Refused(403, "The form was not sent by this dashboard (CSRF check failed).")
        response = RedirectResponse(f"{base(request)}/login", 303)
        response.delete_cookie(SESSION_COOKIE, path=base(request) or "/")
        return response

    # --- static files --------------------------------------------------------------------------

    @ui.get("/static/dashboard.css")
    def stylesheet(request: Request) -> Response:
        return assets["dashboard.css"].response(request)  # open: the login page uses it

    @ui.get("/static/dashboard.js")
    def script(request: Request) -> Response:
        user(request, DASHBOARD_ROLES)
        return assets["dashboard.js"].response(request)

    @ui.get(f"/static/{PLOTLY_JS}")
    def plotly_script(request: Request) -> Response:
        user(request, DASHBOARD_ROLES)
        return plotly_js.response(request)

    # --- pages ---------------------------------------------------------------------------------

    @ui.get("/", response_class=HTMLResponse)
    def overview_page(request: Request) -> Response:
        session = user(request, ANALYST)
        chosen = request.query_params.get("metric")  # "metric|parameter"
        metric, _, parameter = chosen.partition("|") if chosen else (None, "", "")
        data = queries.overview(engine, metric, parameter)
        return render(request, "overview.html", session=session, page="overview", **data)

    @ui.get("/models/{model_id}", response_class=HTMLResponse)
    def model_page(request: Request, model_id: str) -> Response:
        session = user(request, ANALYST)
        if not model_id.isdigit():
            raise queries.NotFound(f"there is no model {model_id!r} (model ids are numbers)")
        data = queries.model_detail(engine, int(model_id))
        return render(request, "model.html", session=session, page="overview", **data)

    @ui.get("/fairness", response_class=HTMLResponse)
    def fairness_page(request: Request) -> Response:
        session = user(request, ANALYST)
        wanted = request.query_params.get("model") or None
        if wanted is not None and not wanted.isdigit():
            raise queries.NotFound(f"model: {wanted!r} is not a model id")
        data = queries.fairness(engine, int(wanted) if wanted else None)
        return render(request, "fairness.html", session=session, page="fairness", **data)

    @ui.get("/monitoring", response_class=HTMLResponse)
    def monitoring_page(request: Request) -> Response:
        session = user(request, ANALYST)
        return render(request, "monitoring.html", session=session, page="monitoring",
                      **queries.monitoring(engine))

    def list_page(request: Request, session: Session, day: str | None, k: str | None,
                  status: int = 200, error: str = "", done: str = "") -> Response:
        context = service.lists
        source, days = lists.list_dates(engine, context)
        given = {"date": day or (days[0] if days else datetime.now(UTC).date()),
                 **({"k": k} if k else {})}
        try:
            query = ListQuery.model_validate(given)
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(p) for p in problem["loc"])
            return render(request, "error.html", 422, session=session, title="Invalid request",
                          message=f"{field}: {problem['msg']}")
        found = lists.ranked_list(engine, query.date, query.k, query.cool_off_days, context)
        start = datetime.combine(query.date, datetime.min.time(), tzinfo=UTC)
        decisions = context.project.decisions
        return render(request, "lists.html", status, session=session, page="lists",
                      found=found, days=days, source=source,
                      reviews=queries.review_history(engine, start, start + timedelta(days=1),
                                                     decisions),
                      can_review=session.principal.allowed(REVIEWERS), error=error, done=done,
                      agreements=AGREEMENTS, decisions=decisions,
                      population=context.project.population)

    @ui.get("/lists", response_class=HTMLResponse)
    def lists_page(request: Request) -> Response:
        session = user(request, LIST_READERS)
        done = request.query_params.get("reviewed", "")
        if done:
            done = (f"Correction of the review of {done} stored; the earlier review is kept "
                    "below." if request.query_params.get("corrected") else
                    f"Review of {done} stored; it is off the list now.")
        return list_page(request, session, request.query_params.get("date"),
                         request.query_params.get("k"), done=done)

    @ui.post("/lists/reviews")
    async def review(request: Request) -> Response:
        session = await run_in_threadpool(user, request, REVIEWERS)
        fields = await form(request)
        if session.nonce and not sessions.csrf_ok(session.nonce, fields.get("csrf")):
            raise Refused(403, "The form was not sent by this dashboard (CSRF check failed); "
                               "reload the page and try again.")
        day, k = fields.get("list_date"), fields.get("k")
        try:
            entered = ReviewIn.model_validate({
                "entity_id": fields.get("entity_id"), "list_date": day,
                "agreement": fields.get("agreement") or None,
                "decision": fields.get("decision") or None,
                "notes": fields.get("notes") or None,
                "corrects": int(fields["corrects"]) if fields.get("corrects", "").isdigit()
                else fields.get("corrects") or None})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                 for e in exc.errors())
            return await run_in_threadpool(list_page, request, session, day if _is_date(day)
                                           else None, k, 422, f"Not stored: {problems}.")
        try:
            await run_in_threadpool(lists.record, engine, entered, session.principal.name,
                                    service.lists)
        except ApiError as exc:
            return await run_in_threadpool(list_page, request, session, day, k, exc.status,
                                           f"Not stored: {exc.detail}.")
        query = urlencode({"date": entered.list_date.isoformat(), **({"k": k} if k else {}),
                           "reviewed": entered.entity_id,
                           **({"corrected": "1"} if entered.corrects else {})})
        return RedirectResponse(f"{base(request)}/lists?{query}", 303)

    return ui


def _is_date(value: str | None) -> bool:
    try:
        date.fromisoformat(value or "")
    except ValueError:
        return False
    return True
