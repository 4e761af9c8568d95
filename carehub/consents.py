"""The consent service behind ``/fhir/Consent`` and ``/admin/part2/emergency``: validate, version, store."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from carehub.adapters.consentapi import consent_routes
from carehub.adapters.fhirhttp import IncompleteResourceError, InvalidResourceError, PreconditionFailedError
from carehub.adapters.part2api import part2_routes
from carehub.core.clock import now_iso
from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity
from carehub.core.patient import PatientIdentifier, patient_key
from carehub.mappings.validation import validate_resource
from carehub.streams.consent.audit import attestation_audit
from carehub.streams.consent.codes import AUTHORITY_PREFIX
from carehub.streams.consent.deps import ConsentDeps
from carehub.streams.consent.emergency import KEY_PREFIX, parse_attestation
from carehub.streams.consent.model import WRITTEN_BY, ConsentError, IncompleteConsentError, parse_consent
from carehub.streams.consent.policy import load_policy
from carehub.streams.consent.store import ConsentTable, ConsentWriter, history_key

log = logging.getLogger(__name__)


def search_key(patient: str) -> str:
    """``system|value`` (FHIR token search) or a patient key ``AUTHORITY|MRN`` -> patient key."""
    system, _, value = patient.rpartition("|")
    return patient_key(PatientIdentifier(value=value, authority=system.removeprefix(AUTHORITY_PREFIX)))


def _version(resource: dict[str, Any] | None) -> int:
    found = str((resource or {}).get("meta", {}).get("versionId", "0"))
    return int(found) if found.isdigit() else 0


class ConsentService:
    """Implements the Consent endpoint's ``ConsentSink`` seam and the §2.51 attestation seam."""

    def __init__(self, table: ConsentTable, writer: ConsentWriter, audit_topic: str = "") -> None:
        self._table = table
        self._writer = writer
        self._audit_topic = audit_topic
        self._lock = asyncio.Lock()

    async def accept(self, consent: dict[str, Any], author: str = "", if_match: str = "") -> dict[str, Any]:
        """Validate (FHIR R4, §2.31), then store as the next version with who wrote it."""
        issues = validate_resource(consent)
        if issues:
            raise InvalidResourceError("the Consent does not conform to FHIR R4: " + "; ".join(issues[:5]))
        try:
            directive = parse_consent(consent)
        except IncompleteConsentError as exc:
            raise IncompleteResourceError(exc.message, exc.missing) from exc
        except ConsentError as exc:
            raise InvalidResourceError(exc.message) from exc
        async with self._lock:  # versions of this process's writes never interleave
            current = _version(self._table.resource(directive.id))
            if if_match and if_match != str(current):
                raise PreconditionFailedError(f"Consent/{directive.id} is at version {current}, not {if_match}")
            meta = {k: v for k, v in consent.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
            written = [e for e in meta.get("extension", []) if e.get("url") != WRITTEN_BY]
            meta.update(versionId=str(current + 1), lastUpdated=now_iso(),
                        extension=[*written, {"url": WRITTEN_BY, "valueString": author or "unknown"}])  # fmt: skip
            stored = {**consent, "meta": meta}
            await self._writer.write(stored, key=history_key(directive.id, current + 1))
            print_ = await self._writer.write(stored)
        if not await self._table.wait_for(directive.id, print_):
            log.warning("consent %s stored but not yet applied locally", directive.id)
        return stored

    def read(self, consent_id: str) -> dict[str, Any] | None:
        return self._table.resource(consent_id)

    def history(self, consent_id: str) -> list[dict[str, Any]]:
        return self._table.history(consent_id)

    async def attest(self, body: dict[str, Any], author: str) -> dict[str, Any]:
        """Store a §2.51 attestation durably, audited (acks=all) before it can permit anything."""
        if isinstance(body, dict) and body.get("patient"):
            body = {**body, "patient": search_key(str(body["patient"]))}
        try:
            attestation = parse_attestation(body, recorded=now_iso(), recorded_by=author)
        except ConsentError as exc:
            raise InvalidResourceError(exc.message) from exc
        if self._audit_topic:
            audit = attestation_audit(attestation)
            await self._writer.write(audit, key=attestation.patient_key, topic=self._audit_topic)
        key = f"{KEY_PREFIX}{attestation.id}"
        print_ = await self._writer.write(attestation.to_dict(), key=key)
        if not await self._table.wait_for(key, print_):
            log.warning("attestation %s stored but not yet applied locally", attestation.id)
        log.info("part 2 emergency attestation %s stored", attestation.id)
        return attestation.to_dict()

    def search(self, patient: str) -> list[dict[str, Any]]:
        return self._table.resources_for(search_key(patient)) if patient else []


class ConsentParts:
    """The consent table, writer, service and routes of one hub process."""

    def __init__(
        self,
        config_dir: Path,
        bootstrap: str,
        topic: str,
        audit_topic: str = "",
        *,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.policy = load_policy(config_dir)
        self.table = ConsentTable(bootstrap, topic, security=security)
        self.writer = ConsentWriter(bootstrap, topic, security=security)
        self.service = ConsentService(self.table, self.writer, audit_topic)

    async def start(self) -> None:
        await self.table.start()
        await self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()
        await self.table.stop()

    def deps(self) -> ConsentDeps:
        return ConsentDeps(policy=self.policy, consents=self.table)

    def routes(self) -> list[web.RouteDef]:
        return [*consent_routes(self.service), *part2_routes(self.service)]
