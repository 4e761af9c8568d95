"""``carehub run``: the hub as a long-running service."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from carehub import logs, loop
from carehub.core import heap
from carehub.core.settings import Settings, load_settings
from carehub.hub import EXIT_NOT_DRAINED, ROLES, Hub
from carehub.ops_http import check_listener

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run the hub as a service (MLLP listener, streams, HTTP)",
        description=(
            "Run the hub: the MLLP listener (ACK AA only after Kafka acks=all), the normalize/route/deliver "
            "streams and the HTTP endpoints (/health, /ready, /metrics). Without Kafka bootstrap servers "
            "(config or CAREHUB_KAFKA_BOOTSTRAP) an embedded broker is started and stopped on exit. "
            "Logs carry control ids, types and offsets, never message content."
        ),
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=Path("config"),
        help="directory with carehub.yaml, routes.yaml, recipients.yaml (default: ./config)",
    )
    parser.add_argument("--mllp-host", help="MLLP listen address (default from config: 127.0.0.1)")
    parser.add_argument("--mllp-port", type=int, help="MLLP listen port (default from config: 2575; 0 = any free port)")
    parser.add_argument("--http-host", help="HTTP listen address")
    parser.add_argument("--http-port", type=int, help="HTTP listen port (default from config: 8080)")
    parser.add_argument(
        "--role",
        choices=["all", "ingest", "streams"],
        default="all",
        help="ingest = MLLP listener only; streams = normalize/route/deliver only; all = both (default)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy on this host); "
        "without it carehub refuses to start unless http.tls_cert and http.tls_key are set",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(func=run)


def apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    mllp, http = settings.mllp, settings.http
    if args.mllp_host:
        mllp = replace(mllp, host=args.mllp_host)
    if args.mllp_port is not None:
        mllp = replace(mllp, port=args.mllp_port)
    if args.http_host:
        http = replace(http, host=args.http_host)
    if args.http_port is not None:
        http = replace(http, port=args.http_port)
    return replace(settings, mllp=mllp, http=http)


async def drain(hub: Hub, drain_s: float) -> bool:
    """Stop the hub within ``drain_s``; False when it did not finish in time (nothing acknowledged is lost:
    unfinished records stay on Kafka, uncommitted, and the next worker takes them)."""
    return await hub.stop_within(drain_s)


async def serve(settings: Settings, roles: tuple[str, ...] = ROLES, *, insecure_http: bool = False) -> None:
    hub = Hub(settings, roles=roles, insecure_http=insecure_http)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await hub.start()
    heap.settle()  # start-up's objects frozen, the collector less often (carehub.core.heap)
    print(
        f"carehub running: MLLP on {settings.mllp.host}:{hub.mllp_port}, "
        f"{'HTTPS' if settings.http.tls else 'HTTP'} on {settings.http.host}:{hub.http_port}, "
        f"Kafka {hub.bootstrap}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        drained = await drain(hub, settings.drain_s)
        # Exit now: the loop's own clean-up would wait for any client task that does not end on
        # cancellation (seen with the broker gone: a consumer's fetcher backing off), past drain_s.
        sys.stdout.flush()
        logging.shutdown()
        os._exit(0 if drained else EXIT_NOT_DRAINED)


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level)
    settings = apply_flags(load_settings(args.config_dir), args)
    check_listener(settings.http, insecure=args.insecure)  # before anything starts
    loop.run(serve(settings, ROLES if args.role == "all" else (args.role,), insecure_http=args.insecure))
    return 0
