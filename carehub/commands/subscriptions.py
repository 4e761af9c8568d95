"""``carehub subscriptions status``: last event number, last heartbeat and health per subscription.

Read from where the state lives: the compacted ``subscriptions.state`` topic
(the stream workers' table changelog), so it shows what every worker knows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from carehub.core.errors import CarehubError
from carehub.core.kafka_security import KafkaSecurity
from carehub.core.settings import load_settings
from carehub.core.topics import Topics
from carehub.fhir_subscriptions import health_rows, read_states
from carehub.streams.subscriptions.config import load_subscriptions
from carehub.streams.subscriptions.state import SubscriptionState


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("subscriptions", help="FHIR subscription state (from Kafka)")
    actions = parser.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="last event number, last heartbeat and health per subscription")
    status.add_argument("--config-dir", type=Path, default=Path("config"), help="config directory (default ./config)")
    status.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config or CAREHUB_KAFKA_BOOTSTRAP)")
    status.add_argument("--json", action="store_true", help="one JSON object per subscription")
    status.set_defaults(func=run)


def rows(config_dir: Path, states: dict[str, SubscriptionState]) -> list[dict[str, object]]:
    return health_rows(load_subscriptions(config_dir), states)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config_dir)
        bootstrap = args.bootstrap or settings.kafka.bootstrap
        if not bootstrap:
            print(
                "carehub subscriptions status: no Kafka bootstrap configured; the embedded broker of "
                "`carehub run` is private to it: pass --bootstrap",
                file=sys.stderr,
            )
            return 2
        topic = Topics(settings.kafka.topic_prefix).subscription_state
        security = KafkaSecurity.from_settings(settings.kafka)
        states = asyncio.run(read_states(bootstrap, topic, security=security))
        table = rows(args.config_dir, states)
    except CarehubError as exc:
        print(f"carehub subscriptions status: {exc.message}", file=sys.stderr)
        return 2
    healthy = all(r["health"] == "healthy" for r in table)
    if args.json:
        for row in table:
            print(json.dumps(row))
        return 0 if healthy else 1
    print(f"{'subscription':36} {'health':10} {'last event':>10}  {'last heartbeat':24} reason")
    for row in table:
        name = f"{row['source']}/{row['subscription']}"
        print(
            f"{name:36} {row['health']!s:10} {row['last_event_number']!s:>10}  "
            f"{row['last_heartbeat_at'] or '-'!s:24} {row['reason']}"
        )
    return 0 if healthy else 1
