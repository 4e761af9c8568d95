"""``carehub audit disclosures``: the accounting of disclosures for one patient."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from carehub.consents import search_key
from carehub.core.settings import load_settings
from carehub.journal import open_journal


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "audit",
        help="list every disclosure and suppression decision for a patient (42 CFR Part 2 accounting)",
        description="Read the journal's audit trail: one FHIR AuditEvent per consent decision (when planned and "
        "again before each send of Part 2 data), with what became of the delivery.",
    )
    actions = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    show = actions.add_parser("disclosures", help="disclosures, redacted disclosures and suppressions for a patient")
    show.add_argument("--patient", required=True, help="patient key or identifier system|value, e.g. RRC|RRC-20931")
    show.add_argument("--since", default="", help="ISO date or time (inclusive)")
    show.add_argument("--until", default="9999", help="ISO date or time (inclusive)")
    show.add_argument("--config-dir", type=Path, default=Path("config"), help="where carehub.yaml names the journal")
    show.add_argument("--database-url", help="the journal (default: the config's database_url / CAREHUB_DATABASE_URL)")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.set_defaults(func=disclosures)


def disclosures(args: argparse.Namespace) -> int:
    url = args.database_url or load_settings(args.config_dir).database_url
    journal = open_journal(url)
    try:
        until = args.until if len(args.until) > 10 or args.until == "9999" else f"{args.until}T23:59:59.999Z"
        rows = journal.audit.disclosures(search_key(args.patient), args.since, until)
    finally:
        journal.close()
    if args.json:
        for row in rows:
            print(json.dumps(asdict(row)))
        return 0
    print(f"{'recorded':<25} {'recipient':<18} {'action':<7} {'when':<7} {'decision':<16} {'consent':<18} "
          f"{'delivery':<24} reason")  # fmt: skip
    for row in rows:
        print(f"{row.recorded:<25} {row.recipient_id:<18} {row.action:<7} {row.phase:<7} {row.outcome:<16} "
              f"{row.consent_id or '-':<18} {row.delivery:<24} {row.reason}")  # fmt: skip
    disclosed = sum(1 for r in rows if r.delivery == "delivered" and r.phase == "send")
    suppressed = sum(1 for r in rows if r.outcome == "deny")
    print(f"{len(rows)} decision(s): {disclosed} disclosed, {suppressed} suppressed")
    return 0
