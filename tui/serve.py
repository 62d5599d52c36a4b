"""`numacon serve`: textual-serve's Server, guarded. A browser session is a full console
with this process's privileges (it can save and load files), and any web page the
user visits can open a websocket to 127.0.0.1; so every request must carry this run's
random token, and a request that says where it comes from (the Origin header browsers
send with websockets and cross-site requests) must come from the server's own address.

The token is in the URL printed at start (`http://127.0.0.1:PORT/?token=...`, as
Jupyter does); the page that URL opens gets it as a cookie (HttpOnly, SameSite=Strict)
for the static files and the websocket it then loads."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL or Origin header; None if it is not one
    (an Origin of "null", say)."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return None
    if u.scheme not in ("http", "https") or not u.hostname:
        return None
    return u.scheme, u.hostname.lower(), port or (443 if u.scheme == "https" else 80)


class GuardedServer(Server):
    """A textual-serve Server that answers only requests with this run's token and, when
    they carry an Origin, only from its own scheme, host and port (403 otherwise)."""

    def __init__(self, command: str, host: str = "127.0.0.1", port: int = 8000,
                 title: str | None = None) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.token = secrets.token_urlsafe(32)
        self.cookie = f"numacon-token-{port}"  # cookies ignore ports: one name per server
        self.own = origin_of(self.public_url)

    @property
    def url(self) -> str:
        """What to open in a browser."""
        return f"{self.public_url}/?token={self.token}"

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    def refusal(self, request: web.Request) -> str | None:
        """Why a request is refused, or None."""
        origin = request.headers.get("Origin")
        if origin is not None and (self.own is None or origin_of(origin) != self.own):
            return f"requests from {origin[:100]} are refused (this server is {self.public_url})"
        given = request.query.get("token") or request.cookies.get(self.cookie) or ""
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return "missing or wrong token: open the URL that numacon serve printed"
        return None

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/" and self.own is not None and \
                origin_of(f"{self.own[0]}://{request.host}") != self.own:
            # the page must run on the server's own origin (the one its websocket URL and
            # the cookie are for): localhost:PORT goes to 127.0.0.1:PORT, token and all
            raise web.HTTPTemporaryRedirect(f"{self.public_url}{request.path_qs}")
        why = self.refusal(request)
        if why is not None:
            raise web.HTTPForbidden(text=f"numacon serve: {why}\n")
        response = await handler(request)
        if "token" in request.query and not response.prepared:
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict",
                                path="/")
        return response

    async def on_startup(self, app: web.Application) -> None:
        self.console.print(f"Serving {self.command!r}")
        # plain print: one unwrapped line a script (or a test) can read the token from
        print(f"numacon serve: open {self.url}", flush=True)
        self.console.print("[cyan]Press Ctrl+C to quit")
