"""Turn notification events into CareEvents: resolve the focus, read what routing needs, map.

Full-resource notifications carry the Encounter (and maybe more); id-only and
empty ones are read from the source (fhirclient, in a thread). The Patient,
its Coverage (and payors), general practitioners and the Encounter's
Locations are read too. What was last seen of each Encounter lives in a table
(streams.store, the ``fhir.encounters`` changelog) keyed ``source|Encounter/id``,
so transitions survive restarts and a recovered event that was already
processed produces nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from carehub.adapters.resthook.notification import Notification
from carehub.core.clock import now_iso
from carehub.core.errors import MappingError
from carehub.mappings.fhir import EncounterSnapshot, FhirSource, map_encounter
from carehub.mappings.fhir.event import local_ref
from carehub.mappings.validation import validate_resource
from carehub.streams.consent.labels import apply_labels
from carehub.streams.consent.model import WRITTEN_BY, ConsentError, parse_consent
from carehub.streams.consent.store import history_key
from carehub.streams.context import AgentContext
from carehub.streams.store import ChangelogStore
from carehub.streams.subscriptions.config import SourceConfig, SubscriptionConfig
from carehub.streams.subscriptions.deps import SourceReader

log = logging.getLogger(__name__)
Resource = dict[str, Any]


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [local_ref(value["reference"])] if isinstance(value.get("reference"), str) else []
        return own + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


class FhirEventEmitter:
    def __init__(self, ctx: AgentContext, snapshots: ChangelogStore, readers: Mapping[str, SourceReader]) -> None:
        self._ctx = ctx
        self._snapshots = snapshots
        self._readers = readers

    def reader(self, source: SourceConfig) -> SourceReader:
        return self._readers[source.name]

    async def _get(self, ref: str, carried: Mapping[str, Resource], reader: SourceReader) -> Resource:
        found = carried.get(ref)
        return found if found is not None else await reader.read(ref)

    async def related(
        self, encounter: Resource, carried: Mapping[str, Resource], reader: SourceReader
    ) -> dict[str, Resource]:
        """The Patient, its Coverage and payors, general practitioners, Locations and diagnoses, by ``Type/id``."""
        found: dict[str, Resource] = {}
        patient_ref = local_ref(str((encounter.get("subject") or {}).get("reference", "")))
        if not patient_ref.startswith("Patient/"):
            return found
        found[patient_ref] = patient = await self._get(patient_ref, carried, reader)
        coverages = await reader.search("Coverage", {"beneficiary": patient_ref})
        wanted = _refs(patient.get("generalPractitioner")) + _refs(encounter.get("location"))
        wanted += _refs(encounter.get("diagnosis"))  # Conditions: their codes are Part 2 signal
        for coverage in coverages:
            found[f"Coverage/{coverage['id']}"] = coverage
            wanted += _refs(coverage.get("payor"))
        for ref in dict.fromkeys(wanted):
            if ref.split("/")[0] in ("Practitioner", "Organization", "Location", "PractitionerRole", "Condition"):
                found[ref] = await self._get(ref, carried, reader)
        return found

    async def emit_encounter(
        self,
        encounter: Resource,
        carried: Mapping[str, Resource],
        source: SourceConfig,
        sub: SubscriptionConfig,
        number: int | None,
        timestamp: str,
        received_at: str,
    ) -> str:
        """Map one Encounter state; send the CareEvent if it is an admit/discharge/transfer. Returns the reason."""
        reader = self.reader(source)
        related = await self.related(encounter, carried, reader)
        snap_key = f"{source.name}|Encounter/{encounter.get('id', '')}"
        stored = self._snapshots.get(snap_key)
        previous = EncounterSnapshot.from_dict(stored) if stored else None
        origin = FhirSource(source.name, source.facility, source.base_url, sub.name, number, timestamp, received_at)
        mapping = map_encounter(encounter, related, previous, origin)
        if mapping.event is not None:
            consent = self._ctx.deps.consent
            event = apply_labels(mapping.event, consent.policy.registry) if consent is not None else mapping.event
            await self._ctx.send(self._ctx.deps.topics.care_events, event.patient_key, event)
            self._ctx.metrics.inc("normalized", kind=event.kind)
            log.info(
                "fhir event: source=%s subscription=%s number=%s kind=%s", source.name, sub.name, number, event.kind
            )
        self._snapshots.put(snap_key, mapping.snapshot.to_dict())
        return mapping.transition.reason

    async def emit_focus(
        self,
        focus: str,
        notification: Notification,
        source: SourceConfig,
        sub: SubscriptionConfig,
        number: int | None,
        timestamp: str,
        received_at: str,
    ) -> None:
        carried = {local_ref(k): v for k, v in notification.resources.items()}
        ref = local_ref(focus)
        if ref.startswith("Consent/"):
            await self.store_consent(await self._get(ref, carried, self.reader(source)), source)
            return
        if not ref.startswith("Encounter/"):
            log.info("fhir focus skipped: source=%s type=%s", source.name, ref.split("/")[0][:40])
            return
        encounter = await self._get(ref, carried, self.reader(source))
        await self.emit_encounter(encounter, carried, source, sub, number, timestamp, received_at)

    async def store_consent(self, consent: Resource, source: SourceConfig) -> None:
        """A Consent announced by a source joins the consent table (the compacted consents topic)."""
        issues = validate_resource(consent)
        try:
            directive = parse_consent(consent)
        except ConsentError as exc:
            issues.append(exc.message)
        if issues:
            raise MappingError("the Consent from the source is not usable: " + "; ".join(issues[:3]))
        # the source's version, recorded with who wrote it (the source), kept beside the current one
        meta = dict(consent.get("meta", {}))
        written = [e for e in meta.get("extension", []) if e.get("url") != WRITTEN_BY]
        meta["extension"] = [*written, {"url": WRITTEN_BY, "valueString": f"source:{source.name}"}]
        meta.setdefault("lastUpdated", now_iso())
        stored = {**consent, "meta": meta}
        version = str(meta.get("versionId") or meta["lastUpdated"])
        key = history_key(directive.id, f"{source.name}:{version}")  # never collides with the API's versions
        await self._ctx.send_json(self._ctx.deps.topics.consents, key, stored)
        await self._ctx.send_json(self._ctx.deps.topics.consents, directive.id, stored)
        self._ctx.metrics.inc("consents_from_subscriptions", source=source.name)
        log.info("consent %s from source %s (status %s)", directive.id, source.name, directive.status)

    async def emit_changed_since(self, since: str, source: SourceConfig, sub: SubscriptionConfig) -> int:
        """Search Encounters updated since ``since`` (empty payloads, and recovery without $events)."""
        params = {"_lastUpdated": f"ge{since}"} if since else {}
        encounters = await self.reader(source).search("Encounter", params)
        for encounter in encounters:
            await self.emit_encounter(encounter, {}, source, sub, None, "", now_iso())
        return len(encounters)
