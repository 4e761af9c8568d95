"""Topic names. Every name carries a configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass

#: Delivery retry topics, one per backoff tier (attempt n waits on tier min(n, RETRY_TIERS)).
RETRY_TIERS = 4


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = "carehub."

    @property
    def hl7v2_inbound(self) -> str:
        return f"{self.prefix}hl7v2.inbound"

    @property
    def inbound_refused(self) -> str:
        """Inbound messages the hub refused (InboundRefusal), for the message journal."""
        return f"{self.prefix}inbound.refused"

    @property
    def care_events(self) -> str:
        return f"{self.prefix}care.events"

    @property
    def deliveries(self) -> str:
        return f"{self.prefix}deliveries"

    @property
    def delivery_outcomes(self) -> str:
        return f"{self.prefix}delivery.outcomes"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}deadletter"

    @property
    def fhir_inbound(self) -> str:
        return f"{self.prefix}fhir.inbound"

    @property
    def subscription_state(self) -> str:
        """Compacted: the state of every FHIR subscription (the fhir-inbound stage's table changelog)."""
        return f"{self.prefix}subscriptions.state"

    @property
    def fhir_encounters(self) -> str:
        """Compacted: the last seen status/location/class of each source Encounter."""
        return f"{self.prefix}fhir.encounters"

    @property
    def visits_seen(self) -> str:
        """Compacted: which (visit, kind) pairs were routed, per patient key."""
        return f"{self.prefix}visits.seen"

    @property
    def part2_status(self) -> str:
        """Compacted: each patient's Part 2 history (program, program visits), read whole by every worker."""
        return f"{self.prefix}part2.status"

    @property
    def consents(self) -> str:
        """FHIR Consent resources keyed by Consent id (compacted; read whole by every worker)."""
        return f"{self.prefix}consents"

    @property
    def audit_events(self) -> str:
        """A FHIR AuditEvent for every consent decision (permit, deny, redact)."""
        return f"{self.prefix}audit.events"

    def compacted(self) -> list[str]:
        return [self.subscription_state, self.fhir_encounters, self.visits_seen, self.part2_status, self.consents]

    def delivery_retry(self, tier: int) -> str:
        return f"{self.prefix}deliveries.retry.{tier}"

    @property
    def delivery_dead_letters(self) -> str:
        return f"{self.prefix}deliveries.deadletter"

    @property
    def task_events(self) -> str:
        return f"{self.prefix}task.events"

    def all(self) -> list[str]:
        return [
            self.hl7v2_inbound,
            self.inbound_refused,
            self.care_events,
            self.deliveries,
            self.delivery_outcomes,
            self.dead_letters,
            self.fhir_inbound,
            *self.compacted(),
            *(self.delivery_retry(tier) for tier in range(1, RETRY_TIERS + 1)),
            self.delivery_dead_letters,
            self.task_events,
            self.audit_events,
        ]
