"""config/subscriptions.yaml -> typed source and subscription settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carehub.adapters.resthook.receiver import Channel
from carehub.connectors.fhir_source import Auth, BearerAuth, SmartBackendAuth
from carehub.core.configfile import line_of, load_config_file
from carehub.core.errors import ConfigError
from carehub.core.transport import insecure_url_reason

FILE = "subscriptions.yaml"
DEFAULT_HEADER = "X-Carehub-Subscription-Secret"


@dataclass(frozen=True, slots=True)
class SubscriptionConfig:
    name: str
    topic: str
    endpoint: str
    header: str
    secret: str
    filters: tuple[str, ...] = ()
    heartbeat_period_s: int = 300
    payload: str = "id-only"

    @property
    def enabled(self) -> bool:
        return bool(self.secret)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    base_url: str
    subscriptions: tuple[SubscriptionConfig, ...]
    fhir_version: str = "r4-backport"
    facility: str = ""
    supports_events: bool = True
    timeout_s: float = 10.0
    auth: Auth = None

    def subscription(self, name: str) -> SubscriptionConfig | None:
        return next((s for s in self.subscriptions if s.name == name), None)


@dataclass(frozen=True, slots=True)
class SubscriptionsConfig:
    sources: tuple[SourceConfig, ...] = ()
    heartbeat_grace: float = 2.0
    check_interval_s: float = 10.0
    file: str = ""

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    def channel(self, source: str, subscription: str) -> Channel | None:
        """The rest-hook receiver's ``Channels`` seam: the header an enabled subscription must carry."""
        found = self.source(source)
        sub = found.subscription(subscription) if found is not None else None
        return Channel(sub.header, sub.secret) if sub is not None and sub.enabled else None

    def enabled(self) -> list[tuple[SourceConfig, SubscriptionConfig]]:
        return [(src, sub) for src in self.sources for sub in src.subscriptions if sub.enabled]


def _auth(data: dict[str, Any] | None) -> Auth:
    if not data or data["type"] == "none":
        return None
    if data["type"] == "bearer":
        return BearerAuth(data["token"])
    return SmartBackendAuth(
        token_url=data["token_url"],
        client_id=data["client_id"],
        private_key_file=data["private_key_file"],
        key_id=data.get("key_id", ""),
        scope=data.get("scope", "system/*.read"),
        algorithm=data.get("algorithm", "RS384"),
    )


def _subscription(data: dict[str, Any]) -> SubscriptionConfig:
    return SubscriptionConfig(
        name=data["name"],
        topic=data["topic"],
        endpoint=data["endpoint"],
        header=data.get("header", DEFAULT_HEADER),
        secret=data.get("secret", ""),
        filters=tuple(data.get("filter", ())),
        heartbeat_period_s=int(data.get("heartbeat_period_s", 300)),
        payload=data.get("payload", "id-only"),
    )


def _source(data: dict[str, Any]) -> SourceConfig:
    return SourceConfig(
        name=data["name"],
        base_url=data["base_url"],
        subscriptions=tuple(_subscription(s) for s in data["subscriptions"]),
        fhir_version=data.get("fhir_version", "r4-backport"),
        facility=data.get("facility", ""),
        supports_events=bool(data.get("supports_events", True)),
        timeout_s=float(data.get("timeout_s", 10.0)),
        auth=_auth(data.get("auth")),
    )


def _check_transport(data: dict[str, Any], path: Path) -> None:
    """Credentials and secrets travel only over https:// (plain http:// to loopback only)."""
    for s_index, source in enumerate(data.get("sources") or []):
        urls: list[tuple[list[str | int], str]] = [(["sources", s_index, "base_url"], source["base_url"])]
        if (source.get("auth") or {}).get("token_url"):
            urls.append((["sources", s_index, "auth", "token_url"], source["auth"]["token_url"]))
        for index, sub in enumerate(source.get("subscriptions") or []):
            if sub.get("secret"):
                urls.append((["sources", s_index, "subscriptions", index, "endpoint"], sub["endpoint"]))
        for where, url in urls:
            reason = insecure_url_reason(url)
            if reason is not None:
                raise ConfigError(f"{where[-1]}: {reason}", file=str(path), line=line_of(path, where))


def load_subscriptions(config_dir: Path) -> SubscriptionsConfig:
    """The sources in ``config_dir/subscriptions.yaml`` (none when the file is absent)."""
    path = config_dir / FILE
    if not path.exists():
        return SubscriptionsConfig()
    data = load_config_file(path, "subscriptions.schema.json")
    _check_transport(data, path)
    return SubscriptionsConfig(
        sources=tuple(_source(s) for s in data.get("sources") or []),
        heartbeat_grace=float(data.get("heartbeat_grace", 2.0)),
        check_interval_s=float(data.get("check_interval_s", 10.0)),
        file=str(path),
    )
