"""``GET /dashboard``: the statistics page, served as static files from ``unigate/static``.

There is no build step and nothing is fetched from elsewhere (no CDN, no web fonts): the page
is hand-written HTML, one stylesheet and one small script that reads the admin JSON endpoints
(``/v1/stats``, ``/v1/stats/timeseries``, ``/v1/stats/health``, ``/v1/stats/requests``) and
draws the charts as inline SVG.

**Who may see it.** An admin key, presented like on every other endpoint (``Authorization:
Bearer``, ``x-api-key``, ``x-goog-api-key``) or — because a browser cannot send a header when it
navigates — in the ``unigate_admin`` cookie. Without a valid key the answer is a login page
(401, no data) whose script stores the key in that cookie (``SameSite=Strict; Path=/``; not
HttpOnly: the dashboard's script reads it and sends it as a Bearer header to the JSON APIs,
which never accept the cookie themselves, so no cross-site request can use it). A valid key
that is not an admin's gets a 403 page. The HTML pages carry no data at all: everything shown
comes from the JSON APIs, each of which checks the key again.

Every page is sent with a Content-Security-Policy that allows only this origin's script and
stylesheet (no inline script, no inline event handlers), so even a string that slipped into the
DOM as markup could not run; the script additionally never parses API text as HTML.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from unigate.auth.keys import presented_key
from unigate.config.compile import ClientKey
from unigate.errors import Unauthorized
from unigate.http.state import Gateway

COOKIE = "unigate_admin"
STATIC_PREFIX = "/dashboard/static/"

# The only files served, with their media types: nothing else under unigate/static is reachable.
STATIC_TYPES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "login.js": "text/javascript; charset=utf-8",
}
PAGES = ("dashboard.html", "login.html", "forbidden.html")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    etag: str


@cache
def asset(name: str) -> Asset:
    """A file of ``unigate/static`` (read once, kept in memory)."""
    body = resources.files("unigate").joinpath("static", name).read_bytes()
    return Asset(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def dashboard_key(request: Request, gateway: Gateway) -> ClientKey:
    """The identity of the request's key: from the headers when one is presented there, else
    from the ``unigate_admin`` cookie. Raises ``Unauthorized`` when neither holds a valid key."""
    if presented_key(request.headers) is not None:
        return gateway.keys.authenticate(request.headers)
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        raise Unauthorized("No admin key.", code="invalid_api_key")
    # login.js stores encodeURIComponent(key); a key is never empty once decoded.
    return gateway.keys.authenticate({"authorization": "Bearer " + unquote(cookie)})


def _page(name: str, status: int, extra: dict[str, str] | None = None) -> Response:
    headers = {**SECURITY_HEADERS, "cache-control": "no-store", **(extra or {})}
    return Response(asset(name).body, status_code=status, media_type="text/html; charset=utf-8", headers=headers)


async def dashboard(request: Request) -> Response:
    """``GET /dashboard``: the page for admins, a login page (401) or a 403 page."""
    gateway: Gateway = request.app.state.gateway
    try:
        key = dashboard_key(request, gateway)
    except Unauthorized:
        return _page("login.html", 401, {"www-authenticate": 'Bearer realm="unigate"'})
    if not key.is_admin:
        return _page("forbidden.html", 403)
    return _page("dashboard.html", 200)


async def static(request: Request) -> Response:
    """``GET /dashboard/static/{name}``: the stylesheet and scripts. They hold no data, so they
    are public (the login page needs them before there is a key)."""
    name = request.path_params["name"]
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        return Response("Not found.\n", status_code=404, media_type="text/plain; charset=utf-8")
    found = asset(name)
    headers = {**SECURITY_HEADERS, "cache-control": "no-cache", "etag": found.etag}
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=media_type, headers=headers)


def routes() -> list[BaseRoute]:
    return [
        Route("/dashboard", dashboard, methods=["GET"]),
        Route(STATIC_PREFIX + "{name}", static, methods=["GET"]),
    ]
