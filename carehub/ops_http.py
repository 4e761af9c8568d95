"""The hub's operational HTTP endpoints: health and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from core.metrics import Metrics


def ops_routes(metrics: Metrics, ready: Callable[[], bool]) -> list[web.RouteDef]:
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readiness(_: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def prometheus(_: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain", charset="utf-8")

    return [web.get("/health", health), web.get("/ready", readiness), web.get("/metrics", prometheus)]


class HTTPServer:
    """An aiohttp site on host:port (port 0 picks a free port)."""

    def __init__(self, routes: list[web.RouteDef], host: str, port: int) -> None:
        self._app = web.Application()
        self._app.add_routes(routes)
        self._runner = web.AppRunner(self._app, access_log=None)
        self._host = host
        self._port = port
        self.port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self._runner.cleanup()
