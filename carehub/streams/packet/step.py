"""The route stage's packet step: enrich within the budget, gate per recipient, plan with the tasks.

``split`` takes the packet actions out of a routing decision: the route stage
sends every other delivery of the event first (the notification never waits
for a source server), then runs this step for the packets. The step completes
the event from the facility's FHIR source (streams.packet.enrich) within
``budget_s``, then plans each packet through the consent gate
(streams.consent.enforce: whole, redacted or nothing, audited) from the
enriched event, listing the follow-up tasks of the same decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from carehub.core.configfile import did_you_mean, line_of, load_config_file
from carehub.core.errors import ConfigError
from carehub.core.records import CareEvent, Delivery, JSONObject
from carehub.streams.consent.enforce import Gatekeeper, Verdict
from carehub.streams.notify import Hub
from carehub.streams.packet.enrich import Reader, enrich, with_enrichment
from carehub.streams.plan import action_key, idempotency_key, plan_action
from carehub.streams.referrals import TaskRequest
from carehub.streams.routing.decide import PlannedAction, RoutingDecision
from carehub.streams.signals import Sent
from carehub.streams.subscriptions.config import SubscriptionsConfig

FILE = "packet.yaml"
DEFAULT_BUDGET_S = 2.0
DEFAULT_POLL_S = 60.0


@dataclass(frozen=True, slots=True)
class PacketSettings:
    budget_s: float = DEFAULT_BUDGET_S
    #: Source names (subscriptions.yaml) packets are completed from.
    sources: tuple[str, ...] = ()
    #: How often the open Tasks of fhir-rest recipients are read back from their servers (0: never).
    poll_s: float = DEFAULT_POLL_S


def load_packet_settings(config_dir: Path, subscriptions: SubscriptionsConfig | None = None) -> PacketSettings:
    """config/packet.yaml (defaults without it); a source it names must be in ``subscriptions`` (when given)."""
    path = config_dir / FILE
    if not path.exists():
        return PacketSettings()
    data = load_config_file(path, "packet.schema.json") or {}
    enrichment = data.get("enrichment") or {}
    settings = PacketSettings(
        float(enrichment.get("budget_s", DEFAULT_BUDGET_S)),
        tuple(enrichment.get("sources", ())),
        float((data.get("recipient_tasks") or {}).get("poll_s", DEFAULT_POLL_S)),
    )
    if subscriptions is None:  # the sources are checked where subscriptions.yaml is read
        return settings
    known = {s.name for s in subscriptions.sources}
    for index, name in enumerate(settings.sources):
        if name not in known:
            raise ConfigError(
                f"enrichment source {name!r} is not a source of subscriptions.yaml{did_you_mean(name, known)}",
                file=str(path),
                line=line_of(path, ["enrichment", "sources", index]),
            )
    return settings


@dataclass(frozen=True)
class PacketDeps:
    """The packet step's outside: the budget and a reader per facility (source name, reader)."""

    budget_s: float = DEFAULT_BUDGET_S
    readers: Mapping[str, tuple[str, Reader]] = field(default_factory=dict)


def is_packet(planned: PlannedAction) -> bool:
    return planned.action == "packet" and not planned.corrects


def split(decision: RoutingDecision) -> tuple[RoutingDecision, RoutingDecision]:
    """(the decision without its packets, the packets alone); a packet's revocation stays with the rest."""
    rest = tuple(p for p in decision.planned if not is_packet(p))
    packets = tuple(p for p in decision.planned if is_packet(p))
    return replace(decision, planned=rest), replace(decision, planned=packets)


def packets_sent(event: CareEvent, packets: RoutingDecision) -> list[Sent]:
    """The packets planned for the visit, as a later cancel of it follows them (streams.corrections)."""
    return [Sent(idempotency_key(event.event_id, p.recipient.id, action_key(p)), p.recipient.id, p.action)
            for p in packets.planned]  # fmt: skip


class PacketStep:
    def __init__(self, deps: PacketDeps | None, count: Callable[[str], None] = lambda _: None) -> None:
        """``count(outcome)``: one call per enrichment, ``complete`` or ``partial`` (something missing)."""
        self._deps = deps or PacketDeps()
        self._count = count

    async def enriched(self, event: CareEvent) -> CareEvent:
        """``event`` completed from its facility's source within the budget (unchanged without a source)."""
        found = self._deps.readers.get(event.facility) or self._deps.readers.get("")
        if found is None:
            return event
        name, reader = found
        enrichment = await enrich(reader, name, event, self._deps.budget_s)
        self._count("partial" if enrichment.note.missing else "complete")
        return with_enrichment(event, enrichment)

    async def verdicts(
        self,
        event: CareEvent,
        packets: RoutingDecision,
        tasks: Sequence[TaskRequest],
        gatekeeper: Gatekeeper,
        hub: Hub,
        now: str,
        orders: Sequence[JSONObject] = (),
    ) -> list[Verdict]:
        """One verdict per packet, each built from the enriched event as its recipient may see it.

        ``tasks`` and ``orders``: the follow-up Tasks and logistics orders of the same event its CarePlan lists.
        """
        if not packets.planned:
            return []
        complete = await self.enriched(event)

        def plan(allowed: CareEvent, planned: PlannedAction) -> Delivery:
            return plan_action(allowed, planned, packets.map_version, hub, now, tasks, orders)

        return gatekeeper.verdicts_with(complete, packets, plan, now)
