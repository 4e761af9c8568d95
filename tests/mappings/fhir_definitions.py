"""Derive the FHIR R4 definitions carehub ships from the corpus's R4 JSON Schema.

The shipped file (``carehub/mappings/definitions/fhir-r4.schema.json.gz``) is the
corpus's ``fhir/schema/fhir.schema.json`` (HL7 FHIR R4 4.0.1, CC0) with every
string-valued ``description`` annotation removed (annotations do not change
what validates), minified and gzipped: 3.4 MB -> 55 kB. Nothing else is
pruned: every resource type and every ``$ref`` stays, so a contained resource
of any type validates exactly as before.

Regenerate with ``.venv/bin/python -m tests.mappings.fhir_definitions``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from carehub.mappings.validation import SHIPPED_SCHEMA
from tests.conftest import SHARED

CORPUS_SCHEMA = SHARED / "corpus" / "fhir" / "schema" / "fhir.schema.json"


def strip_annotations(node: Any) -> Any:
    """The schema without ``description`` strings (a property *named* description is a dict and stays)."""
    if isinstance(node, dict):
        return {k: strip_annotations(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [strip_annotations(v) for v in node]
    return node


def derive(source: Path = CORPUS_SCHEMA) -> dict[str, Any]:
    with source.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    stripped: dict[str, Any] = strip_annotations(schema)
    return stripped


def write(target: Path = SHIPPED_SCHEMA) -> None:
    text = json.dumps(derive(), separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    # mtime=0: the same schema always gives the same bytes.
    target.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))


if __name__ == "__main__":
    write()
    print(f"wrote {SHIPPED_SCHEMA} ({SHIPPED_SCHEMA.stat().st_size} bytes)")
