"""Deterministic resource ids from business identifiers.

Ids are UUIDv5 over ``resourceType`` and a business key, so the same patient,
visit, practitioner or diagnosis gets the same id in every message: the A01
and the A03 of one visit name the same Patient and Encounter (the failure
FHIR-Converter#207 describes), and a replay yields identical bundles.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

NAMESPACE = uuid.UUID("6f1c7d0e-2b8a-5c43-9e1f-0a7c3b5d9e21")


_NS_BYTES = NAMESPACE.bytes


def resource_id(resource_type: str, *key: str) -> str:
    """UUIDv5 of ``resourceType|k1|k2...`` (RFC 4122 §4.3, without uuid.UUID's overhead)."""
    name = (resource_type + "|" + "|".join(key)).encode("utf-8")
    digest = bytearray(hashlib.sha1(_NS_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
