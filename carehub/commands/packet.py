"""``carehub packet FILE.hl7``: the transition-of-care packet a discharge would produce (dry run).

Converts the message, decides where it goes with the routing map of
``--config-dir`` (as ``carehub routes explain`` does) and prints, as JSON, the
document Bundle the first recipient of a ``packet:`` action would receive
(``--recipient`` picks another, ``--message`` prints the message that carries
it). Nothing is sent and no source server is asked: the packet holds what the
ADT gives and says what enrichment would have completed. No consent is applied
(a recipient without a permitting Part 2 consent would get the redacted form). Webhook
signing secrets the environment does not set are generated for the run, as ``carehub demo``
does: nothing is signed or sent.
A summary of the sections goes to stderr; exit 1 when no rule plans a packet
or the packet has a schema or reference problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from carehub.commands.routes import load_events
from carehub.core.clock import now_iso
from carehub.core.defaults import shipped
from carehub.core.errors import CarehubError
from carehub.core.settings import load_settings
from carehub.demo import demo_secrets
from carehub.streams.notify import Hub
from carehub.streams.packet.document import packet_of, packet_problems
from carehub.streams.plan import order_requests, plan_action, task_requests
from carehub.streams.routing.decide import decide
from carehub.streams.routing.load import load_routing_map
from carehub.streams.routing.model import FLAGS


def register(sub: Any) -> None:
    parser = sub.add_parser("packet", help="print the transition-of-care packet a discharge would produce (dry run)")
    parser.add_argument("file", type=Path, metavar="FILE.hl7|EVENT.json")
    parser.add_argument("--config-dir", type=Path, default=shipped("config"), metavar="DIR")
    parser.add_argument(
        "--recipient", default="", metavar="ID", help="the packet of this recipient (default: the first)"
    )
    parser.add_argument("--flag", action="append", default=[], choices=FLAGS, help="assume a care-coordination signal")
    parser.add_argument("--message", action="store_true", help="print the message Bundle that carries the document")
    parser.set_defaults(func=run)


def summary(document: dict[str, Any]) -> list[str]:
    """One line per section: its title and how many entries, or why it is empty."""
    composition = document["entry"][0]["resource"]
    lines = []
    for section in composition.get("section", []):
        empty = section.get("emptyReason")
        count = len(section.get("entry", []))
        lines.append(f"  {section['title']}: " + (f"{count} entr{'y' if count == 1 else 'ies'}" if count
                     else f"empty ({empty['coding'][0]['code']}): {empty.get('text', '')}"))  # fmt: skip
    return lines


def run(args: argparse.Namespace) -> int:
    demo_secrets(args.config_dir)  # nothing is signed or sent: missing webhook secrets get one for this run
    try:
        routing_map = load_routing_map(args.config_dir)
        hub = Hub(base_url=load_settings(args.config_dir).hub_base_url)
        events = load_events(args.file)
    except CarehubError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    except (OSError, ValueError, TypeError) as exc:
        print(f"{args.file}: cannot read an event: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    event = events[0]
    decision = decide(event, routing_map, frozenset(args.flag))
    packets = [p for p in decision.planned if p.action == "packet" and not p.corrects]
    chosen = [p for p in packets if not args.recipient or p.recipient.id == args.recipient]
    if not chosen:
        who = f" to {args.recipient}" if args.recipient else ""
        print(f"{args.file}: no rule of {routing_map.source} sends a packet{who} for this {event.kind} event"
              " (carehub routes explain says why)", file=sys.stderr)  # fmt: skip
        return 1
    planned = chosen[0]
    now = now_iso()
    ordered = [plan_action(event, p, decision.map_version, hub, now) for p in decision.planned if p.action == "order"]
    tasks, orders = task_requests(event, decision), order_requests(ordered)
    delivery = plan_action(event, planned, decision.map_version, hub, now, tasks, orders)
    document = packet_of(delivery.payload.value)
    assert document is not None
    problems = packet_problems(delivery.payload.value)
    print(f"packet for {planned.recipient.id} (rule {planned.rule_id}); recipients of a packet: "
          f"{', '.join(p.recipient.id for p in packets)}", file=sys.stderr)  # fmt: skip
    print("\n".join(summary(document)), file=sys.stderr)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    json.dump(delivery.payload.value if args.message else document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 1 if problems else 0
