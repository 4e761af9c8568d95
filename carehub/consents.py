"""The consent service behind ``/fhir/Consent``: validate, store on Kafka, take effect."""

from __future__ import annotations

import logging
from typing import Any

from adapters.fhirhttp import InvalidResourceError
from core.patient import PatientIdentifier, patient_key
from mappings.validation import validate_resource
from streams.consent.codes import AUTHORITY_PREFIX
from streams.consent.model import ConsentError, parse_consent
from streams.consent.store import ConsentTable, ConsentWriter

log = logging.getLogger(__name__)


def search_key(patient: str) -> str:
    """``system|value`` (FHIR token search) or a patient key ``AUTHORITY|MRN`` -> patient key."""
    system, _, value = patient.rpartition("|")
    return patient_key(PatientIdentifier(value=value, authority=system.removeprefix(AUTHORITY_PREFIX)))


class ConsentService:
    """Implements the Consent endpoint's ``ConsentSink`` seam."""

    def __init__(self, table: ConsentTable, writer: ConsentWriter) -> None:
        self._table = table
        self._writer = writer

    async def accept(self, consent: dict[str, Any]) -> dict[str, Any]:
        issues = validate_resource(consent)
        if issues:
            raise InvalidResourceError("the Consent does not conform to FHIR R4: " + "; ".join(issues[:5]))
        try:
            directive = parse_consent(consent)
        except ConsentError as exc:
            raise InvalidResourceError(exc.message) from exc
        print_ = await self._writer.write(consent)
        if not await self._table.wait_for(directive.id, print_):
            log.warning("consent %s stored but not yet applied locally", directive.id)
        return consent

    def read(self, consent_id: str) -> dict[str, Any] | None:
        return self._table.resource(consent_id)

    def search(self, patient: str) -> list[dict[str, Any]]:
        return self._table.resources_for(search_key(patient)) if patient else []
