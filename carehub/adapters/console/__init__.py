"""The operations console: server-rendered pages over the journal (docs/console.md)."""

from carehub.adapters.console.sessions import SESSION_COOKIE, SessionStore
from carehub.adapters.console.views import ConsoleDeps, console_routes, signin_redirect

__all__ = ["SESSION_COOKIE", "ConsoleDeps", "SessionStore", "console_routes", "signin_redirect"]
