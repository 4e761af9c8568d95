"""HD (hierarchic designator) parts to identifier systems and names.

An assigning authority arrives as a namespace (``MRN``), a universal id
(``2.16.840.1``) with its type (``ISO``, ``UUID``, ``URI``, ``DNS``), or both.
FHIR wants one URI: OIDs become ``urn:oid:``, UUIDs ``urn:uuid:``, URIs stay.
A bare namespace is looked up in the ``assigning-authorities`` code table
(sites add their own there) and otherwise becomes a stable
``urn:carehub:authority:<namespace>`` so equal namespaces give equal systems.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote

from carehub.mappings.codes import table
from carehub.mappings.transforms import parts_transform, value_transform

_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
LOCAL_PREFIX = "urn:carehub:authority:"


def _part(parts: list[str], index: int) -> str:
    return parts[index].strip() if index < len(parts) else ""


@lru_cache(maxsize=4096)
def universal_uri(universal_id: str, id_type: str = "") -> str | None:
    """A URI for an HD universal id, judged by its form first, then its type (cached: a pure function)."""
    value = universal_id.strip()
    if not value:
        return None
    if _OID.match(value):
        return "urn:oid:" + value
    if _UUID.match(value):
        return "urn:uuid:" + value.lower()
    if value.startswith(("urn:", "http://", "https://")):
        return value
    if id_type.strip().upper() in ("URI", "URL"):
        return value if ":" in value else None
    return None


@value_transform("authority_system")
@lru_cache(maxsize=4096)
def namespace_system(namespace: str) -> str | None:
    """System URI for a bare namespace (configurable, else a stable local URN)."""
    key = namespace.strip()
    if not key:
        return None
    mapped = table("assigning-authorities").value(key)
    if mapped:
        return mapped
    found = universal_uri(key)
    return found or LOCAL_PREFIX + quote(key, safe="")


@parts_transform("hd_system")
def hd_system(parts: list[str]) -> str | None:
    """Identifier.system from HD parts (namespace, universal id, type)."""
    namespace = _part(parts, 0)
    if namespace:
        mapped = table("assigning-authorities").value(namespace)
        if mapped:
            return mapped
    found = universal_uri(_part(parts, 1), _part(parts, 2))
    return found or namespace_system(namespace)


@parts_transform("hd_name")
def hd_name(parts: list[str]) -> str | None:
    """Readable name of an HD: namespace, else universal id."""
    return _part(parts, 0) or _part(parts, 1) or None


@parts_transform("hd_universal_uri")
def hd_universal_uri(parts: list[str]) -> str | None:
    """The HD universal id (HD.2) as a URI value, for ``urn:ietf:rfc:3986`` identifiers."""
    return universal_uri(_part(parts, 1), _part(parts, 2))


@parts_transform("hd_endpoint")
def hd_endpoint(parts: list[str]) -> str | None:
    """An endpoint URI for an application HD (its universal id, else a local URN)."""
    found = universal_uri(_part(parts, 1), _part(parts, 2))
    if found:
        return found
    name = _part(parts, 0)
    return _application_urn(name) if name else None


@lru_cache(maxsize=1024)
def _application_urn(name: str) -> str:
    """``urn:carehub:application:<name>`` (cached: the names of a site's sending applications)."""
    return "urn:carehub:application:" + quote(name, safe="")
