"""Browser sessions for the console: a verified bearer token exchanged for a short-lived cookie.

The sign-in page takes an access token from the same issuers the API trusts
(adapters.httpauth.tokens); the principal it proves is kept server-side under
a random session id sent as an HttpOnly, SameSite=Strict cookie scoped to
``/console``. Each session has its own CSRF token that every console POST
must echo. Sessions live in process memory: a restart signs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from carehub.core.principal import Principal

SESSION_COOKIE = "carehub_console"
#: A session ends this long after sign-in (sign in again with a fresh token).
SESSION_S = 3600.0


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str
    expires: float


class SessionStore:
    def __init__(self, lifetime_s: float = SESSION_S) -> None:
        self.lifetime_s = lifetime_s
        self._sessions: dict[str, Session] = {}

    def create(self, principal: Principal) -> tuple[str, Session]:
        self._expire()
        sid = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(24), time.monotonic() + self.lifetime_s)
        self._sessions[sid] = session
        return sid, session

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._sessions.items() if v.expires <= now]:
            del self._sessions[sid]

    def of(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(SESSION_COOKIE, "")
        session = self._sessions.get(sid) if sid else None
        if session is None or session.expires <= time.monotonic():
            return None
        return session

    def principal(self, request: web.Request) -> Principal | None:
        """The session's principal, for console paths only (the API takes tokens, never cookies)."""
        if not request.path.startswith("/console"):
            return None
        session = self.of(request)
        return session.principal if session is not None else None

    def end(self, request: web.Request) -> None:
        self._sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)

    def csrf_ok(self, request: web.Request, sent: str) -> bool:
        session = self.of(request)
        return session is not None and hmac.compare_digest(session.csrf.encode(), sent.encode())


def set_cookie(response: web.StreamResponse, sid: str, *, secure: bool, max_age: float) -> None:
    response.set_cookie(
        SESSION_COOKIE, sid, path="/console", httponly=True, samesite="Strict", secure=secure, max_age=int(max_age)
    )
