"""What the subscription agent needs from outside: a reader per source server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from carehub.streams.subscriptions.config import SubscriptionsConfig


class SourceReader(Protocol):
    """A source FHIR server, read asynchronously (connectors.fhir_source.AsyncFhirSource)."""

    base_url: str

    async def read(self, reference: str) -> dict[str, Any]: ...

    async def search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]: ...

    async def status(self, subscription_id: str) -> dict[str, Any]: ...

    async def events(self, subscription_id: str, since: int, until: int | None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SubscriptionDeps:
    config: SubscriptionsConfig
    readers: Mapping[str, SourceReader]
