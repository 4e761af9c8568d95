"""The hub's operational HTTP endpoints (health, readiness, Prometheus metrics) and its HTTP listener."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from carehub.adapters.mllp.server import make_server_ssl_context
from carehub.core.errors import ConfigError
from carehub.core.metrics import CONTENT_TYPE, Metrics
from carehub.core.settings import HTTPSettings
from carehub.core.transport import is_loopback


def ops_routes(metrics: Metrics, ready: Callable[[], bool]) -> list[web.RouteDef]:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readiness(_: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def prometheus(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render().encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})

    return [web.get("/health", health), web.get("/ready", readiness), web.get("/metrics", prometheus)]


def check_listener(settings: HTTPSettings, *, insecure: bool = False) -> None:
    """Refuse plain HTTP on a non-loopback address unless ``insecure`` (``carehub run --insecure``)."""
    if settings.tls or insecure or is_loopback(settings.host):
        return
    raise ConfigError(
        f"refusing to serve plain HTTP on {settings.host}: set http.tls_cert and http.tls_key "
        "(docs/security.md), listen on 127.0.0.1, or pass --insecure if a TLS proxy on this host terminates TLS",
        file="settings",
    )


def server_ssl_context(settings: HTTPSettings) -> ssl.SSLContext | None:
    """TLS for the HTTP listener; with a client CA, presented client certificates are verified (mTLS)."""
    if not settings.tls:
        return None
    assert settings.tls_cert is not None and settings.tls_key is not None
    return make_server_ssl_context(
        settings.tls_cert, settings.tls_key, settings.tls_client_ca, client_cert_optional=True
    )


class HTTPServer:
    """An aiohttp site on host:port (port 0 picks a free port), optionally over TLS."""

    def __init__(
        self,
        routes: list[web.RouteDef],
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        middlewares: Sequence[Middleware] = (),
    ) -> None:
        self._app = web.Application(middlewares=list(middlewares))
        self._app.add_routes(routes)
        self._ssl = ssl_context
        self._runner = web.AppRunner(self._app, access_log=None)
        self._host = host
        self._port = port
        self.port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    @property
    def app(self) -> web.Application:
        return self._app

    async def stop(self) -> None:
        await self._runner.cleanup()
