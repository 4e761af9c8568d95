"""``python -m bench.route_passes N``: the route stage's computation per message, for instruction counts.

What ``route_one`` computes for an event, without its tables and journal: convert and label it (as
normalize does), label it again (as the route's Part 2 step does), decide on the shipped map, gate
every planned action and build and serialize its delivery and AuditEvent, then the packets (without
enrichment). 40 mixed bench messages (A01 -> 2 deliveries, A03 -> 7), one pass to warm up, the
collector as a started hub sets it, then N passes; prints the bytes serialized per pass.

    PYTHONHASHSEED=0 setarch x86_64 -R valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m bench.route_passes 3      # minus the same with 0, / (3 x 40)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import orjson

from bench.e2e import bench_config
from bench.messages import mixed
from carehub.core import heap
from carehub.core.records import CareEvent, Delivery
from carehub.demo import endpoint_variable, secret_variable
from carehub.mappings import convert_text
from carehub.streams.consent.deps import ConsentDeps
from carehub.streams.consent.emergency import Attestation
from carehub.streams.consent.enforce import Gatekeeper
from carehub.streams.consent.labels import apply_labels
from carehub.streams.consent.model import ConsentDirective
from carehub.streams.consent.policy import Policy, load_policy
from carehub.streams.notify import Hub
from carehub.streams.packet.step import split
from carehub.streams.plan import order_requests, plan_action, task_requests
from carehub.streams.routing.decide import PlannedAction, decide
from carehub.streams.routing.load import load_routing_map
from carehub.streams.routing.model import RoutingMap

NOW = "2026-11-05T15:00:00Z"
MESSAGES = 40


class NoConsents:
    """No consent on file for anyone (the bench patients have none)."""

    def for_patient(self, patient_key: str) -> list[ConsentDirective]:
        return []

    def emergencies_for(self, patient_key: str) -> list[Attestation]:
        return []


def _route(text: str, routing: RoutingMap, policy: Policy, gate: Gatekeeper, hub: Hub) -> int:
    event = apply_labels(convert_text(text, received_at=NOW).event, policy.registry)
    event = apply_labels(event, policy.registry)
    decision, packets = split(decide(event, routing))
    verdicts = gate.verdicts(event, decision, hub, NOW)
    planned = [v.delivery for v in verdicts if v.delivery is not None]
    out = sum(len(orjson.dumps(v.audit)) for v in verdicts) + sum(len(d.to_json()) for d in planned)
    if packets.planned:
        sent = {d.delivery_id for d in planned}
        tasks = [t for t in task_requests(event, decision) if t.key in sent]
        orders = order_requests(planned)

        def plan(allowed: CareEvent, p: PlannedAction) -> Delivery:
            return plan_action(allowed, p, packets.map_version, hub, NOW, tasks, orders)

        out += sum(len(v.delivery.to_json()) for v in gate.verdicts_with(event, packets, plan, NOW) if v.delivery)
    return out


def main() -> None:
    config, webhook_secrets = bench_config(Path(tempfile.mkdtemp()), [range(0, MESSAGES)])
    for recipient, secret in webhook_secrets.items():
        os.environ[endpoint_variable(recipient)] = f"http://127.0.0.1:9/r/{recipient}"
        os.environ[secret_variable(recipient)] = secret
    routing, policy = load_routing_map(config), load_policy(config)
    gate, hub = Gatekeeper(ConsentDeps(policy, NoConsents())), Hub(base_url="https://hub.example")
    texts = [mixed(n).decode() for n in range(MESSAGES)]
    size = sum(_route(t, routing, policy, gate, hub) for t in texts)
    heap.settle()
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
        for text in texts:
            _route(text, routing, policy, gate, hub)
    print(f"{size:,} bytes of deliveries and AuditEvents per pass")


if __name__ == "__main__":
    main()
