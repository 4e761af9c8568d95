"""Wiring for transition-of-care packets: the enrichment readers of config/packet.yaml (docs/packet.md)."""

from __future__ import annotations

from pathlib import Path

from carehub.connectors.fhir_source import AsyncFhirSource
from carehub.fhir_subscriptions import source_client
from carehub.streams.packet.enrich import Reader
from carehub.streams.packet.step import PacketDeps, load_packet_settings
from carehub.streams.subscriptions.config import SubscriptionsConfig


def packet_deps(config_dir: Path, subscriptions: SubscriptionsConfig) -> PacketDeps:
    """The budget and, per facility, the FHIR source (fhirclient, SMART backend auth) packets are completed from."""
    settings = load_packet_settings(config_dir, subscriptions)
    readers: dict[str, tuple[str, Reader]] = {}
    for name in settings.sources:
        source = subscriptions.source(name)
        assert source is not None  # load_packet_settings refuses names subscriptions.yaml does not define
        readers[source.facility] = (name, AsyncFhirSource(source_client(source)))
    return PacketDeps(settings.budget_s, readers)
