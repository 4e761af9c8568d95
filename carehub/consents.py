"""The consent service behind ``/fhir/Consent``: validate, store on Kafka, take effect."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.consentapi import consent_routes
from adapters.fhirhttp import InvalidResourceError
from core.patient import PatientIdentifier, patient_key
from mappings.validation import validate_resource
from streams.consent.codes import AUTHORITY_PREFIX
from streams.consent.deps import ConsentDeps
from streams.consent.model import ConsentError, parse_consent
from streams.consent.policy import load_policy
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


class ConsentParts:
    """The consent table, writer, service and routes of one hub process."""

    def __init__(self, config_dir: Path, bootstrap: str, topic: str) -> None:
        self.policy = load_policy(config_dir)
        self.table = ConsentTable(bootstrap, topic)
        self.writer = ConsentWriter(bootstrap, topic)
        self.service = ConsentService(self.table, self.writer)

    async def start(self) -> None:
        await self.table.start()
        await self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()
        await self.table.stop()

    def deps(self) -> ConsentDeps:
        return ConsentDeps(policy=self.policy, consents=self.table)

    def routes(self) -> list[web.RouteDef]:
        return consent_routes(self.service)
