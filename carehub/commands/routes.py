"""``carehub routes validate DIR`` and ``carehub routes explain FILE``: routing config as code.

``validate`` checks every file ``carehub run`` loads (carehub.yaml,
routes.yaml, recipients.yaml, rosters/, part2.yaml, subscriptions.yaml:
schemas, unknown recipients and rosters, bad CSV rows, inverted code ranges,
endpoints that are not URLs of an allowed scheme) and prints every problem as
``file:line: message``; exit 1 when there is any. ``explain`` converts an
HL7v2 file (or reads a CareEvent JSON as printed by ``carehub convert
--event``) and prints, offline, which rules matched and which did not, which
recipients were resolved and how, which actions would be taken and which
would not, and why. Output names ids and codes, never patient names.
``status`` asks a running hub (GET /admin/config, an ops.read token) which map
version is in force and what its last rejected reload said.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
from dataclasses import replace
from pathlib import Path
from typing import Any

from carehub.adapters.hl7.charset import decode
from carehub.commands.hubclient import add_hub_options, call, refusal_text
from carehub.config_check import check_all
from carehub.core.defaults import shipped
from carehub.core.errors import CarehubError
from carehub.core.records import CareEvent
from carehub.mappings import convert_text
from carehub.mappings.batch import split_messages
from carehub.streams.plan import action_key
from carehub.streams.routing.apply import apply_config
from carehub.streams.routing.decide import RoutingDecision, decide
from carehub.streams.routing.load import load_routing_map
from carehub.streams.routing.model import FLAGS

DEFAULT_CONFIG = shipped("config")


def register(sub: Any) -> None:
    parser = sub.add_parser("routes", help="validate routing config, or explain where an event would go")
    commands = parser.add_subparsers(dest="routes_command", required=True, metavar="{validate,explain,status,apply}")
    check = commands.add_parser("validate", help="check every config file carehub run loads from DIR")
    check.add_argument(
        "config_dir", type=Path, metavar="DIR", nargs="?", default=DEFAULT_CONFIG, help="default: the shipped sample"
    )
    check.set_defaults(func=run_validate)
    explain = commands.add_parser("explain", help="which rules, recipients and actions apply to an event, and why")
    explain.add_argument("file", type=Path, metavar="FILE.hl7|EVENT.json")
    explain.add_argument("--config-dir", type=Path, default=DEFAULT_CONFIG, metavar="DIR")
    explain.add_argument(
        "--flag", action="append", choices=FLAGS, default=[], help="assume a care-coordination signal is set"
    )
    explain.add_argument("--json", action="store_true", help="print the decisions as JSON")
    explain.set_defaults(func=run_explain)
    status = commands.add_parser("status", help="the map version a running hub uses, and its last rejected reload")
    add_hub_options(status)
    status.add_argument("--json", action="store_true", help="print the hub's answer as JSON")
    status.set_defaults(func=run_status)
    apply = commands.add_parser("apply", help="validate a staged routing config, then install it into the live dir")
    apply.add_argument("source", type=Path, metavar="STAGING_DIR")
    apply.add_argument("--config-dir", type=Path, required=True, metavar="LIVE_DIR", help="the hub's config dir")
    apply.set_defaults(func=run_apply)


def run_apply(args: argparse.Namespace) -> int:
    problems, version = apply_config(args.source, args.config_dir)
    for problem in problems:
        print(problem.message, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {args.source}; nothing installed", file=sys.stderr)
        return 1
    print(f"routing map {version} installed into {args.config_dir} (the running hub loads it within a second)")
    return 0


def run_status(args: argparse.Namespace) -> int:
    try:
        code, answer = call(args, "/admin/config")
    except (urllib.error.URLError, OSError) as exc:
        print(f"cannot reach the hub at {args.hub}: {exc}", file=sys.stderr)
        return 2
    if code != 200:
        print(f"hub answered HTTP {code}: {refusal_text(answer)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(
        f"routing map {answer['map_version']} in force since {answer['loaded_at']}: {answer['rules']} rules, "
        f"{answer['recipients']} recipients, {answer['rosters']} rosters"
    )
    rejected = answer.get("last_rejected")
    if rejected:
        print(f"last rejected reload at {rejected['at']} (kept {rejected['kept_version']}):")
        for error in rejected["errors"]:
            print(f"  {error}")
    else:
        print("no rejected reload")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    problems = check_all(args.config_dir)
    for problem in problems:
        print(problem.message, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {args.config_dir}", file=sys.stderr)
        return 1
    routing_map = load_routing_map(args.config_dir)
    members = sum(len(r.members) for r in routing_map.rosters)
    print(
        f"{args.config_dir}: ok - routing map {routing_map.version}: {len(routing_map.rules)} rules, "
        f"{len(routing_map.recipients)} recipients, {len(routing_map.rosters)} rosters ({members} members)"
    )
    return 0


def load_events(path: Path) -> list[CareEvent]:
    """CareEvents from an HL7v2 file (converted, original text kept) or a CareEvent JSON file."""
    raw = path.read_bytes()
    if path.suffix == ".json":
        data = json.loads(raw)
        return [CareEvent.from_dict(item) for item in (data if isinstance(data, list) else [data])]
    text, _codec = decode(raw)
    events = []
    for message in split_messages(text):
        event = convert_text(message, validate=False).event
        events.append(replace(event, source_hl7=message))
    return events


def describe(event: CareEvent, decision: RoutingDecision) -> dict[str, Any]:
    """The decision as plain data: ids, codes and reasons (no patient names)."""
    return {
        "event": {
            "event_id": event.event_id,
            "kind": event.kind,
            "trigger": event.trigger,
            "facility": event.facility,
            "encounter_class": event.encounter_class,
        },
        "map_version": decision.map_version,
        "flags": list(decision.flags),
        "matched": [{"rule": m.rule_id, "reason": m.reason} for m in decision.matched],
        "not_matched": [{"rule": s.rule_id, "reason": s.reason} for s in decision.skipped],
        "planned": [
            {
                "rule": p.rule_id,
                "action": action_key(p),
                "recipient": p.recipient.id,
                "kind": p.recipient.kind,
                "channel": p.recipient.channel,
                "via": p.via,
            }
            for p in decision.planned
        ],
        "unresolved": [
            {"rule": u.rule_id, "action": u.action, "target": u.target, "reason": u.reason} for u in decision.unresolved
        ],
        "not_applied": [
            {"rule": n.rule_id, "action": n.action, "recipient": n.recipient_id, "reason": n.reason}
            for n in decision.not_applied
        ],
    }


def render(doc: dict[str, Any]) -> str:
    e = doc["event"]
    lines = [
        f"event {e['event_id']}: {e['kind']} ({e['trigger']}) facility {e['facility'] or '-'} "
        f"class {e['encounter_class'] or '-'}",
        f"routing map {doc['map_version']}; flags: {', '.join(doc['flags']) or 'none'}",
        "rules matched:",
        *(f"  {m['rule']}: {m['reason']}" for m in doc["matched"]),
        "rules not matched:",
        *(f"  {s['rule']}: {s['reason']}" for s in doc["not_matched"]),
        "actions:",
        *(
            f"  {p['action']} -> {p['recipient']} ({p['kind']}, {p['channel']}) via {p['via']} [rule {p['rule']}]"
            for p in doc["planned"]
        ),
        "not resolved:",
        *(f"  {u['action']} -> {u['target']}: {u['reason']} [rule {u['rule']}]" for u in doc["unresolved"]),
        "not applied:",
        *(f"  {n['action']} -> {n['recipient']}: {n['reason']} [rule {n['rule']}]" for n in doc["not_applied"]),
    ]
    return "\n".join(line for line in lines)


def run_explain(args: argparse.Namespace) -> int:
    try:
        routing_map = load_routing_map(args.config_dir)
        events = load_events(args.file)
    except CarehubError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    except (OSError, ValueError, TypeError) as exc:
        print(f"{args.file}: cannot read an event: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    docs = [describe(e, decide(e, routing_map, frozenset(args.flag))) for e in events]
    if args.json:
        json.dump(docs[0] if len(docs) == 1 else docs, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n\n".join(render(d) for d in docs))
    return 0
