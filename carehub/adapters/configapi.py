"""``GET /admin/config``: the routing map in force and the last rejected reload (``carehub routes status``).

Names versions, counts, files and validation messages only: the config holds
no patient data, and secrets are never shown.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from carehub.streams.routing.model import RoutingMap
from carehub.streams.routing.source import RejectedReload


class MapSource(Protocol):
    """What the route reads: ``streams.routing.source.ReloadingRoutingMap``."""

    last_rejected: RejectedReload | None
    loaded_at: str

    def current(self) -> RoutingMap: ...


def config_status(source: MapSource) -> dict[str, Any]:
    routing_map = source.current()
    rejected = source.last_rejected
    return {
        "map_version": routing_map.version,
        "loaded_at": source.loaded_at,
        "rules": len(routing_map.rules),
        "recipients": len(routing_map.recipients),
        "rosters": len(routing_map.rosters),
        "last_rejected": None
        if rejected is None
        else {"at": rejected.at, "kept_version": rejected.kept_version, "errors": list(rejected.errors)},
    }


def config_routes(source: MapSource) -> list[web.RouteDef]:
    async def status(_: web.Request) -> web.Response:
        return web.json_response(config_status(source))

    return [web.get("/admin/config", status)]
