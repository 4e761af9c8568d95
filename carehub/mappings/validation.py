"""Check a bundle: every resource against the FHIR R4 JSON Schema, references, ids.

The schema is the FHIR R4 (4.0.1) JSON Schema, draft-06, one definition per
resource, shipped as package data (``carehub/mappings/definitions/fhir-r4.schema.json.gz``:
the specification's schema, CC0, with its description annotations removed;
``tests/mappings/fhir_definitions.py`` derives it and a test checks it). It is
loaded once (``CAREHUB_FHIR_SCHEMA`` names another file, plain or gzipped); a validator per resource type is
compiled on first use and kept. Validating a whole Bundle against the schema
would check each entry against the union of ~150 resource definitions, so the
Bundle shell and each resource are checked separately instead, which finds the
same errors with a precise location.

Findings are strings ``<Type>/<id>: <path>: <message>``: they name fields,
never values, so they are safe to log.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_ENV = "CAREHUB_FHIR_SCHEMA"
SHIPPED_SCHEMA = Path(__file__).resolve().parent / "definitions" / "fhir-r4.schema.json.gz"


def schema_path() -> Path:
    return Path(os.environ.get(SCHEMA_ENV, str(SHIPPED_SCHEMA)))


@cache
def _definitions() -> dict[str, Any]:
    path = schema_path()
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    loaded: dict[str, Any] = json.loads(raw)["definitions"]
    return loaded


@cache
def validator(resource_type: str) -> Any:
    """A compiled draft-06 validator for ``#/definitions/<resource_type>``."""
    definitions = _definitions()
    if resource_type not in definitions:
        raise KeyError(resource_type)
    wrapper = {"$ref": f"#/definitions/{resource_type}", "definitions": definitions}
    return jsonschema.Draft6Validator(wrapper)


def _path(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(resource)"


_SAFE_MESSAGES = {
    "pattern": "does not match the required pattern",
    "type": "has the wrong JSON type",
    "enum": "is not one of the allowed codes",
    "const": "has the wrong fixed value",
}


def _message(error: Any) -> str:
    """The schema error without the offending value (which may be PHI)."""
    safe = _SAFE_MESSAGES.get(error.validator)
    if safe is not None:
        return safe
    if error.validator in ("required", "additionalProperties"):
        return str(error.message)  # names properties, not values
    return f"fails {error.validator}"


def validate_resource(resource: dict[str, Any]) -> list[str]:
    rtype = resource.get("resourceType", "?")
    label = f"{rtype}/{resource.get('id', '?')}"
    try:
        check = validator(rtype)
    except KeyError:
        return [f"{label}: unknown resource type"]
    return [f"{label}: {_path(e)}: {_message(e)}" for e in check.iter_errors(resource)]


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def check_structure(bundle: dict[str, Any]) -> list[str]:
    """Unique ids and fullUrls; every reference resolves to an entry."""
    issues: list[str] = []
    known: set[str] = set()
    full_urls: set[str] = set()
    entries = bundle.get("entry", [])
    for entry in entries:
        resource = entry.get("resource", {})
        key = f"{resource.get('resourceType')}/{resource.get('id')}"
        if key in known:
            issues.append(f"{key}: duplicate resource id")
        known.add(key)
        url = entry.get("fullUrl", "")
        if url in full_urls:
            issues.append(f"{key}: duplicate fullUrl")
        full_urls.add(url)
        if url != f"urn:uuid:{resource.get('id')}":
            issues.append(f"{key}: fullUrl does not match the id")
    for entry in entries:
        resource = entry.get("resource", {})
        for ref in _references(resource):
            if ref not in known and ref not in full_urls:
                issues.append(f"{resource.get('resourceType')}/{resource.get('id')}: reference {ref} does not resolve")
    return issues


def validate_bundle(bundle: dict[str, Any]) -> list[str]:
    """Every finding for a bundle; an empty list means valid."""
    shell = {**bundle, "entry": [{"fullUrl": e.get("fullUrl")} for e in bundle.get("entry", [])]}
    issues = validate_resource(shell)
    for entry in bundle.get("entry", []):
        issues.extend(validate_resource(entry.get("resource", {})))
    issues.extend(check_structure(bundle))
    return issues
