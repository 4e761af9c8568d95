"""Deterministic resource ids from business identifiers.

Ids are UUIDv5 over ``resourceType`` and a business key, so the same patient,
visit, practitioner or diagnosis gets the same id in every message: the A01
and the A03 of one visit name the same Patient and Encounter (the failure
FHIR-Converter#207 describes), and a replay yields identical bundles.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

NAMESPACE = uuid.UUID("6f1c7d0e-2b8a-5c43-9e1f-0a7c3b5d9e21")


def resource_id(resource_type: str, *key: str) -> str:
    """UUIDv5 of ``resourceType|k1|k2...``."""
    return str(uuid.uuid5(NAMESPACE, resource_type + "|" + "|".join(key)))


def content_id(resource_type: str, body: dict[str, Any]) -> str:
    """Id of a resource known only by its content (a practitioner from an XCN).

    Identifiers win when present, so the same NPI gives the same Practitioner
    whatever name spelling accompanies it.
    """
    basis = body.get("identifier") or body
    return resource_id(resource_type, json.dumps(basis, sort_keys=True, separators=(",", ":")))


def event_id(sending_facility: str, control_id: str, kind: str) -> str:
    """CareEvent id: stable across redeliveries of one message."""
    return str(uuid.uuid5(NAMESPACE, f"event|{sending_facility}|{control_id}|{kind}"))


def quote(text: str) -> str:
    """URI-safe form of free text used inside a URN."""
    from urllib.parse import quote as _quote

    return _quote(text, safe="")
