"""The status page: HTML on the local listener, for an operator with one of the node's tokens.

``GET /ui/`` shows peers, origins, counts, match rate and recent audit entries
(``node/api/page_state.py`` gathers them; ``templates/`` renders them with jinja2, on the
server, with no script at all). A browser cannot send a bearer token by itself, so a login
form exchanges a token for a session:

* the session id is 256 random bits, kept server-side with its expiry (``SESSION_SECONDS``)
  and the token's name; the cookie (``hm_session``) is ``HttpOnly``, ``SameSite=Strict``,
  ``Path=/ui``, and ``Secure`` when the node serves TLS. The token itself is never stored.
* every form carries a CSRF token: the login form a random one that must equal a
  ``SameSite=Strict`` cookie set with the form (double submit), the logout form the
  session's own. A form without it, or with another, is refused (403).
* a token must have the ``read`` scope; a wrong token answers the form again, with 401.
* every page answers ``Content-Security-Policy: default-src 'self'`` (and no inline style or
  script is used), ``X-Frame-Options: DENY``, ``Cache-Control: no-store``. The one
  stylesheet is served from ``/ui/static/page.css``; nothing comes from another origin.

Sessions live in memory: a restart logs everyone out, which is the safe direction.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from hashmesh.node.api.page_state import page_state
from hashmesh.node.service import NodeService

SESSION_COOKIE = "hm_session"
LOGIN_CSRF_COOKIE = "hm_login_csrf"
SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 1000
CSP = ("default-src 'self'; img-src 'self'; style-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Session:
    token_name: str
    csrf: str
    expires: float


class PageState:
    """Sessions and the template environment of one node's page."""

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.sessions: dict[str, Session] = {}
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("hashmesh.node.api", "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined)
        self.templates.filters["age"] = _age
        self.templates.filters["clock"] = _clock
        self.css = resources.files("hashmesh.node.api").joinpath("static/page.css").read_bytes()

    def new_session(self, token_name: str) -> tuple[str, Session]:
        now = time.time()
        if len(self.sessions) >= MAX_SESSIONS:
            self.sessions = {k: s for k, s in self.sessions.items() if s.expires > now}
            while len(self.sessions) >= MAX_SESSIONS:  # still full: drop the oldest
                self.sessions.pop(min(self.sessions, key=lambda k: self.sessions[k].expires))
        sid = secrets.token_urlsafe(32)
        session = Session(token_name, secrets.token_urlsafe(32), now + SESSION_SECONDS)
        self.sessions[sid] = session
        return sid, session

    def session_of(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(SESSION_COOKIE, "")
        session = self.sessions.get(sid)
        if session is None:
            return None
        if session.expires <= time.time():
            del self.sessions[sid]
            return None
        return session


PAGE_KEY = web.AppKey("status_page", PageState)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _clock(at: float | None) -> str:
    """A wall-clock time as the operator's logs show it (UTC)."""
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _html(page: PageState, template: str, http_status: int = 200, **context: Any
          ) -> web.Response:
    context.setdefault("name", page.service.config.name)
    body = page.templates.get_template(template).render(**context)
    return web.Response(text=body, status=http_status, content_type="text/html",
                        headers=SECURITY_HEADERS)


def cookie_flags(request: web.Request, max_age: int, path: str = "/ui") -> dict[str, Any]:
    """The flags of every page cookie: ``HttpOnly``, ``SameSite=Strict``, ``Secure`` on TLS.
    (The intake page reuses them for its CSRF cookie.)"""
    return {"httponly": True, "samesite": "Strict", "path": path, "max_age": max_age,
            "secure": request.secure}


def same_secret(a: str, b: str) -> bool:
    """Two non-empty secrets are equal (constant time): the double-submit CSRF check."""
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


async def login_form(request: web.Request, *, status: int = 200,
                     error: str | None = None) -> web.Response:
    page = request.app[PAGE_KEY]
    csrf = secrets.token_urlsafe(32)
    response = _html(page, "login.html", status, csrf=csrf, error=error)
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, **cookie_flags(request, 3600))
    return response


async def login(request: web.Request) -> web.StreamResponse:
    page = request.app[PAGE_KEY]
    form = await request.post()
    if not same_secret(str(form.get("csrf", "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")):
        return _html(page, "error.html", 403, message="The form expired or did not come from "
                     "this page (CSRF check failed). Reload the login page and try again.")
    token = page.service.config.find_token(str(form.get("token", "")).strip())
    if token is None or not token.allows("read"):
        why = "Unknown token." if token is None else f"Token {token.name!r} lacks the read scope."
        return await login_form(request, status=401, error=why)
    sid, _ = page.new_session(token.name)
    response = _redirect("/ui/")
    response.set_cookie(SESSION_COOKIE, sid, **cookie_flags(request, SESSION_SECONDS))
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/ui")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    page = request.app[PAGE_KEY]
    form = await request.post()
    session = page.session_of(request)
    if session is None or not same_secret(str(form.get("csrf", "")), session.csrf):
        return _html(page, "error.html", 403, message="CSRF check failed; nothing was done.")
    page.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
    response = _redirect("/ui/login")
    response.del_cookie(SESSION_COOKIE, path="/ui")
    return response


async def status_page(request: web.Request) -> web.StreamResponse:
    page = request.app[PAGE_KEY]
    session = page.session_of(request)
    if session is None:
        return _redirect("/ui/login")
    state = await page_state(page.service)
    return _html(page, "status.html", session=session, **state)


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=request.app[PAGE_KEY].css, content_type="text/css",
                        headers={**SECURITY_HEADERS, "Cache-Control": "max-age=300"})


async def to_page(request: web.Request) -> web.StreamResponse:
    return _redirect("/ui/")


def _redirect(location: str) -> web.Response:
    """A 303 as a plain response (the error middleware turns raised HTTP exceptions into
    the JSON error shape)."""
    return web.Response(status=303, headers={**SECURITY_HEADERS, "Location": location})


def add_page_routes(app: web.Application, service: NodeService) -> None:
    """Register the page; its routes are not in ``ROUTE_SCOPES``, so the bearer-token
    middleware lets them through and the session check here guards them."""
    page = PageState(service)
    app[PAGE_KEY] = page
    app.router.add_get("/ui", to_page, name="page_root")
    app.router.add_get("/ui/", status_page, name="page")
    app.router.add_get("/ui/login", login_form, name="page_login_form")
    app.router.add_post("/ui/login", login, name="page_login")
    app.router.add_post("/ui/logout", logout, name="page_logout")
    app.router.add_get("/ui/static/page.css", stylesheet, name="page_css")
