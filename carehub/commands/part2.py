"""``carehub part2 emergency``: attest a §2.51 medical emergency on a running hub.

The only way the emergency exception applies (nothing in a message can make
one): who attests, why, for which patient, to which recipient, for how long.
The hub stores it, audits it, and every decision it permits cites it.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
from datetime import UTC, datetime, timedelta

from carehub.commands.hubclient import add_hub_options, call, refusal_text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "part2",
        help="42 CFR Part 2 operations on a running hub (emergency attestation)",
        description="Needs a token with carehub/part2.attest (CAREHUB_TOKEN or --token-file).",
    )
    actions = parser.add_subparsers(dest="part2_command", metavar="ACTION", required=True)
    attest = actions.add_parser(
        "emergency", help="attest a bona fide medical emergency (§2.51) for one patient and recipient"
    )
    attest.add_argument("--id", required=True, help="an id for this attestation")
    attest.add_argument("--patient", required=True, help="patient key or system|value, e.g. RRC|RRC-20931")
    attest.add_argument("--recipient", required=True, help="the directory id of the treating provider")
    attest.add_argument("--by", required=True, dest="attested_by", help="the clinician who attests, by name and role")
    attest.add_argument("--reason", required=True, help="the nature of the emergency")
    attest.add_argument("--start", help="ISO date-time with zone (default now)")
    attest.add_argument("--hours", type=float, default=24.0, help="how long it covers (default 24, at most 72)")
    add_hub_options(attest)
    attest.set_defaults(func=run_emergency)


def run_emergency(args: argparse.Namespace) -> int:
    start = datetime.fromisoformat(args.start.replace("Z", "+00:00")) if args.start else datetime.now(UTC)
    body = {
        "id": args.id, "patient": args.patient, "recipient": args.recipient, "attested_by": args.attested_by,
        "reason": args.reason, "start": start.isoformat(), "end": (start + timedelta(hours=args.hours)).isoformat(),
    }  # fmt: skip
    try:
        status, stored = call(args, "/admin/part2/emergency", body, method="POST")
    except (urllib.error.URLError, OSError) as exc:
        print(f"cannot reach the hub at {args.hub}: {exc}", file=sys.stderr)
        return 2
    if status != 201:
        issues = stored.get("issue", [])
        text = "; ".join(i["details"]["text"] for i in issues) if issues else refusal_text(stored)
        print(f"refused (HTTP {status}): {text}", file=sys.stderr)
        return 1
    print(f"emergency attestation {stored['id']} stored: {stored['recipient']} may receive Part 2 data of "
          f"{stored['patient']} from {stored['start']} to {stored['end']}")  # fmt: skip
    return 0
