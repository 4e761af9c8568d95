"""/ready follows the PostgreSQL journal: false while it is unreachable, true again when it is back.

The journal talks to the machine's real PostgreSQL through a TCP relay the
test owns; closing the relay (and its open connections) is the outage,
listening again on the same port is the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import pytest

from carehub.broker import free_port
from carehub.hub import Hub
from tests.delivery.conftest import pg_url  # noqa: F401  (fixture)
from tests.integration.conftest import hub_settings

pytestmark = pytest.mark.integration


class Relay:
    """Forwards 127.0.0.1:port to the PostgreSQL server; ``cut()`` drops everything."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def _ready(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/ready") as response:
        return response.status


async def _eventually(port: int, status: int, timeout_s: float = 40.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (found := await _ready(port)) != status:
        assert asyncio.get_running_loop().time() < deadline, f"/ready stayed {found}, wanted {status}"
        await asyncio.sleep(0.2)


async def test_ready_is_false_while_the_journal_database_is_unreachable(
    broker: str,
    config_dir: Path,
    pg_url: str,  # noqa: F811
) -> None:
    target = urlparse(pg_url)
    relay = Relay(target.hostname or "127.0.0.1", target.port or 5432)
    await relay.open()
    relayed = pg_url.replace(f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{relay.port}", 1)
    settings = replace(hub_settings(config_dir, broker), database_url=relayed)
    hub = Hub(settings, roles=("streams",))
    await hub.start()
    try:
        assert await _ready(hub.http_port) == 200
        await relay.cut()
        await _eventually(hub.http_port, 503)
        await relay.open()
        await _eventually(hub.http_port, 200)
    finally:
        await hub.stop()
        await relay.cut()
