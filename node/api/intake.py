"""The intake page: a public listener (``[intake]`` in node.toml, off by default) where a person
hashes images and videos in the browser and opens a case with the hashes only.

Pages (HTML, rendered on the server, each in English or Spanish, ``node/api/intake_text.py``):
``/`` chooses files and opens a case, ``/status`` shows a case, ``/withdraw`` withdraws one.
The browser computes PDQ (``static/intake/pdq.js``), MD5 and SHA-256 (vendored hash-wasm,
streamed in chunks) and posts JSON to:

* ``POST /api/cases``    ``{"items": [{"hashes": [...]}]}`` -> ``{"reference", "pin", "state"}``
* ``POST /api/status``   ``{"reference", "pin", "lang"}`` -> ``{"status": {...}, "words": [...]}``
* ``POST /api/withdraw`` the same, and withdraws the case.

They call the service's case verbs (``open_case(review=...)``, ``case_status``,
``withdraw_case``). Nothing but those JSON bodies is ever sent by the page.

Protection, the status page's pattern (``node/api/page.py``): a CSRF token set with each page
in a ``SameSite=Strict``, ``HttpOnly`` cookie (the only cookie) and sent back by the script in
``X-CSRF-Token`` (double submit); JSON bodies only; ``Content-Security-Policy: default-src
'self'`` with ``script-src 'self' 'wasm-unsafe-eval'`` (hash-wasm compiles its WebAssembly
from bytes it carries; no other origin, no inline script; ``media-src blob:`` only so a
video's thumbnail can be drawn from the chosen file, a URL that never leaves the browser).
Per address: ``requests_per_minute`` for every POST and ``cases_per_hour`` for opened cases
(``node/api/intake_input.py``); behind a proxy (``behind_proxy``), the address it forwards.
"""

from __future__ import annotations

import json
import logging
import secrets
from importlib import resources

import jinja2
from aiohttp import web

from hashmesh.node.api.intake_input import (
    RateLimit,
    parse_case_request,
    parse_reference_request,
)
from hashmesh.node.api.intake_text import LANGUAGES, TEXT, choose_language
from hashmesh.node.api.page import cookie_flags, same_secret
from hashmesh.node.cases import CaseAccessError, CaseLimitError, CaseLockedError
from hashmesh.node.runtime.web import ApiError, Handler, error_response, read_body
from hashmesh.node.service import NodeService
from hashmesh.protocol.records import Distribution

log = logging.getLogger("hashmesh.intake")

CSRF_COOKIE = "hm_intake_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_SECONDS = 4 * 3600
MAX_BODY_BYTES = 256 * 1024
ACTOR = "intake"
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
       "img-src 'self'; media-src blob:; connect-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# name -> (file under static/, content type); nothing else is served
STATIC = {
    "intake.css": ("intake/intake.css", "text/css"),
    "intake.js": ("intake/intake.js", "text/javascript"),
    "hashing.js": ("intake/hashing.js", "text/javascript"),
    "pdq.js": ("intake/pdq.js", "text/javascript"),
    "hash-wasm-md5.js": ("vendor/hash-wasm-md5.umd.min.js", "text/javascript"),
    "hash-wasm-sha256.js": ("vendor/hash-wasm-sha256.umd.min.js", "text/javascript"),
}
PAGES = {"/": ("intake_new.html", "title_new"), "/status": ("intake_case.html", "title_status"),
         "/withdraw": ("intake_case.html", "title_withdraw")}


class Intake:
    """The page's templates, static files and rate limits, for one node."""

    def __init__(self, service: NodeService) -> None:
        self.service = service
        self.config = service.config.intake
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("hashmesh.node.api", "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined)
        root = resources.files("hashmesh.node.api").joinpath("static")
        self.static = {name: (root.joinpath(path).read_bytes(), kind)
                       for name, (path, kind) in STATIC.items()}
        self.requests = RateLimit(self.config.requests_per_minute, 60)
        self.cases = RateLimit(self.config.cases_per_hour, 3600)


INTAKE_KEY = web.AppKey("intake", Intake)


def _client(request: web.Request) -> str:
    """The address limits count: the peer's, or behind a proxy the one the proxy added last
    to ``X-Forwarded-For`` (earlier entries are the client's word and not trusted)."""
    if request.app[INTAKE_KEY].config.behind_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded[:64]
    return request.remote or "unknown"


async def page(request: web.Request) -> web.Response:
    intake = request.app[INTAKE_KEY]
    template, title = PAGES[request.path]
    lang = choose_language(request.query.get("lang"), request.headers.get("Accept-Language"))
    text = TEXT[lang]
    csrf = secrets.token_urlsafe(32)
    body = intake.templates.get_template(template).render(
        t=text, lang=lang, languages=[(code, TEXT[code]["language_name"]) for code in LANGUAGES],
        path=request.path, title=text[title], csrf=csrf,
        mode=request.path.strip("/") or "new", review=intake.config.review,
        max_hashes=intake.config.max_hashes_per_case,
        strings=json.dumps(text, ensure_ascii=True).replace("<", "\\u003c"))
    response = web.Response(text=body, content_type="text/html", headers=HEADERS)
    response.set_cookie(CSRF_COOKIE, csrf, **cookie_flags(request, CSRF_SECONDS, path="/"))
    return response


async def static_file(request: web.Request) -> web.Response:
    found = request.app[INTAKE_KEY].static.get(request.match_info["name"])
    if found is None:
        raise ApiError(404, "NOT_FOUND", "no such file", "path")
    body, kind = found
    return web.Response(body=body, content_type=kind,
                        headers={**HEADERS, "Cache-Control": "max-age=300"})


async def _checked_body(request: web.Request) -> bytes:
    """The JSON body of a POST from this page: limited per address, CSRF-checked."""
    intake = request.app[INTAKE_KEY]
    wait = intake.requests.hit(_client(request))
    if wait:
        raise _Limited(wait)
    if not same_secret(request.headers.get(CSRF_HEADER, ""), request.cookies.get(CSRF_COOKIE, "")):
        raise ApiError(403, "CSRF", "the page expired or did not come from this site; reload "
                       "it and try again", CSRF_HEADER)
    if request.content_type != "application/json":
        raise ApiError(415, "BAD_CONTENT_TYPE", "send application/json", "Content-Type")
    return await read_body(request, MAX_BODY_BYTES)


class _Limited(ApiError):
    def __init__(self, retry_after: int, code: str = "RATE_LIMITED",
                 why: str = "too many requests") -> None:
        super().__init__(429, code, f"{why}; try again in {retry_after} s")
        self.retry_after = retry_after


async def open_case(request: web.Request) -> web.Response:
    intake = request.app[INTAKE_KEY]
    body = await _checked_body(request)
    config = intake.service.config
    items = parse_case_request(body, config.lists.default, intake.config.max_hashes_per_case)
    wait = intake.cases.hit(_client(request))
    if wait:
        raise _Limited(wait)
    try:
        opened = await intake.service.open_case(items, Distribution(), ACTOR,
                                                review=intake.config.review)
    except CaseLimitError as exc:
        raise ApiError(400, "TOO_MANY_HASHES", str(exc), "items") from None
    return web.json_response({"reference": opened.reference, "pin": opened.pin,
                              "state": opened.state}, headers=HEADERS)


async def case_status(request: web.Request) -> web.Response:
    return await _case_verb(request, withdraw=False)


async def withdraw_case(request: web.Request) -> web.Response:
    return await _case_verb(request, withdraw=True)


async def _case_verb(request: web.Request, *, withdraw: bool) -> web.Response:
    intake = request.app[INTAKE_KEY]
    reference, pin, lang = parse_reference_request(await _checked_body(request))
    verb = intake.service.withdraw_case if withdraw else intake.service.case_status
    try:
        status = await verb(reference, pin, _client(request))
    except CaseLockedError as exc:
        raise _Limited(int(exc.retry_after_seconds), "CASE_LOCKED",
                       "too many wrong PINs for this case") from None
    except CaseAccessError:
        raise ApiError(404, "NO_CASE", "that reference and PIN do not match a case",
                       "reference") from None
    lang = lang if lang in TEXT else "en"
    return web.json_response({"status": status.as_json(), "words": status.plain_words(lang)},
                             headers=HEADERS)


@web.middleware
async def intake_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as the node's JSON shape, with the page's headers; a 429 says when to retry.
    Nothing about the request (a reference, a PIN, a hash) is logged."""
    try:
        return await handler(request)
    except ApiError as exc:
        headers = dict(HEADERS)
        if isinstance(exc, _Limited):
            headers["Retry-After"] = str(exc.retry_after)
        return error_response(exc.status, exc.code, exc.message, exc.field, headers=headers)
    except web.HTTPException as exc:
        return error_response(exc.status, "HTTP_ERROR", exc.reason, headers=dict(HEADERS))
    except Exception:
        log.exception("intake request failed")
        return error_response(500, "INTERNAL", "something went wrong; nothing was saved",
                              headers=dict(HEADERS))


def create_intake_app(service: NodeService) -> web.Application:
    """The intake listener's app; the node's main app (``create_app``) owns the service."""
    app = web.Application(middlewares=[intake_errors], client_max_size=MAX_BODY_BYTES + 1)
    app[INTAKE_KEY] = Intake(service)
    for path in PAGES:
        app.router.add_get(path, page)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_post("/api/cases", open_case)
    app.router.add_post("/api/status", case_status)
    app.router.add_post("/api/withdraw", withdraw_case)
    return app
