"""The FHIR R4 definitions shipped as package data are the specification's schema, annotations aside."""

from __future__ import annotations

import gzip
import json

from carehub.mappings.validation import SHIPPED_SCHEMA, schema_path, validate_resource
from tests.mappings.fhir_definitions import CORPUS_SCHEMA, derive


def test_shipped_definitions_are_the_corpus_schema_without_descriptions() -> None:
    shipped = json.loads(gzip.decompress(SHIPPED_SCHEMA.read_bytes()))
    assert shipped == derive()
    corpus = json.loads(CORPUS_SCHEMA.read_text(encoding="utf-8"))
    assert shipped["definitions"].keys() == corpus["definitions"].keys()
    # A property named "description" is a definition, not an annotation: it stays.
    assert shipped["definitions"]["Task"]["properties"]["description"] == {"$ref": "#/definitions/string"}


def test_validation_reads_the_packaged_schema_by_default() -> None:
    assert schema_path() == SHIPPED_SCHEMA
    assert validate_resource({"resourceType": "Patient", "id": "p", "gender": "sometimes"}) == [
        "Patient/p: gender: is not one of the allowed codes"
    ]
