"""Normalize a stored inbound HL7v2 message into a CareEvent (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from carehub.core.errors import MappingError
from carehub.core.records import CareEvent, InboundMessage
from carehub.mappings import convert_text
from carehub.streams.consent.labels import Registry, apply_labels


def normalize(
    inbound: InboundMessage, registry: Registry | None = None, default_authorities: Mapping[str, str] | None = None
) -> CareEvent:
    """Convert with the declarative mappings; the event keeps the ingest patient key.

    The ingest key decided the partition; if the mapping derives a different
    key the stream would scatter one patient's events, so that is an error;
    both build it with ``core.patient.sender_patient_key`` and the same
    ``default_authorities`` setting.
    With a Part 2 registry the event and its resources carry DS4P labels, so
    care.events never holds Part 2 data unmarked.
    """
    text = inbound.text()
    event = convert_text(text, received_at=inbound.received_at, default_authorities=default_authorities).event
    if event.patient_key != inbound.patient_key:
        raise MappingError("the mapped patient key differs from the ingest patient key")
    source = {**event.source, "listener": inbound.listener, "received_at": inbound.received_at}
    labelled = replace(event, source=source, source_hl7=text)
    return apply_labels(labelled, registry) if registry is not None else labelled
