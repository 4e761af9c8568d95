"""``carehub subscribe --source NAME``: create or update a source's Subscriptions from config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carehub.core.configfile import line_of
from carehub.core.errors import CarehubError, ConfigError
from carehub.fhir_subscriptions import source_client
from carehub.streams.subscriptions.config import FILE, SourceConfig, SubscriptionsConfig, load_subscriptions
from carehub.streams.subscriptions.resource import subscription_resource


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "subscribe",
        help="create or update the FHIR Subscriptions of one source server (config/subscriptions.yaml)",
        description=(
            "For each subscription of the source: find the Subscription already pointing at its endpoint "
            "(search by url) and update it, else create one; the source then performs the handshake "
            "against carehub's rest-hook endpoint."
        ),
    )
    parser.add_argument("--source", required=True, help="the source name in subscriptions.yaml")
    parser.add_argument("--config-dir", type=Path, default=Path("config"), help="config directory (default ./config)")
    parser.set_defaults(func=run)


def _source(config: SubscriptionsConfig, name: str, config_dir: Path) -> SourceConfig:
    found = config.source(name)
    if found is None:
        known = ", ".join(s.name for s in config.sources) or "(none)"
        raise ConfigError(f"no source named {name!r}; configured: {known}", file=str(config_dir / FILE))
    disabled = [s for s in found.subscriptions if not s.enabled]
    if disabled:
        index = found.subscriptions.index(disabled[0])
        where: list[str | int] = ["sources", config.sources.index(found), "subscriptions", index, "secret"]
        raise ConfigError(
            f"subscription {disabled[0].name!r} has an empty secret (set it, e.g. through its environment variable)",
            file=str(config_dir / FILE),
            line=line_of(config_dir / FILE, where),
        )
    return found


def run(args: argparse.Namespace) -> int:
    try:
        config = load_subscriptions(args.config_dir)
        source = _source(config, args.source, args.config_dir)
        client = source_client(source)
        for sub in source.subscriptions:
            existing = client.find_subscription(sub.endpoint)
            stored = client.upsert_subscription(subscription_resource(source, sub), existing)
            verb = "updated" if existing else "created"
            print(
                f"{source.name}/{sub.name}: {verb} Subscription/{stored.get('id', existing or '?')} "
                f"status={stored.get('status', '?')} topic={sub.topic}"
            )
    except CarehubError as exc:
        print(f"carehub subscribe: {exc.message}", file=sys.stderr)
        return 2
    return 0
