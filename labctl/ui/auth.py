"""Access to the console: the token printed with its URL.

The first request carries `?token=...`; it is answered with a redirect to the same URL
without it and an HttpOnly, SameSite=Strict cookie, so the token leaves the address bar
and later requests (the update streams too) carry the cookie. Anything without a valid
token gets 403. Forms that change something also carry a CSRF value derived from it.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "labctl_ui"


def csrf_value(token: str) -> str:
    return hmac.new(token.encode(), b"csrf", hashlib.sha256).hexdigest()[:32]


def valid_csrf(token: str, value: str | None) -> bool:
    return value is not None and hmac.compare_digest(csrf_value(token), value)


class TokenGate:
    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given, self.token):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            redirect = RedirectResponse(target, status_code=303)
            redirect.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            await redirect(scope, receive, send)
            return
        cookie = request.cookies.get(COOKIE)
        if cookie is None or not hmac.compare_digest(cookie, self.token):
            response = PlainTextResponse(
                "labctl ui: open the URL with the access token that `labctl ui` printed\n",
                status_code=403,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
