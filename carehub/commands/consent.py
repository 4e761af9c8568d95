"""``carehub consent import|list|history``: FHIR Consent resources on a running hub."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from carehub.commands.hubclient import add_hub_options, call, refusal_text
from carehub.streams.consent.model import WRITTEN_BY


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "consent",
        help="import or list 42 CFR Part 2 consents (FHIR R4 Consent) on a running hub",
        description=(
            "Talk to a running hub's /fhir/Consent endpoint (see `carehub run --http-port`) with a consent "
            "administrator's token (system/Consent.write, system/Consent.read) from CAREHUB_TOKEN or --token-file."
        ),
    )
    actions = parser.add_subparsers(dest="consent_command", metavar="ACTION", required=True)
    load = actions.add_parser("import", help="POST each Consent (a JSON resource, or a Bundle of them) to the hub")
    load.add_argument("files", nargs="+", type=Path, metavar="FILE.json")
    add_hub_options(load)
    load.set_defaults(func=import_consents)
    show = actions.add_parser("list", help="list the consents on file for a patient")
    show.add_argument("--patient", required=True, help="system|value of the patient identifier, e.g. RGH|MRN100234")
    add_hub_options(show)
    show.set_defaults(func=list_consents)
    history = actions.add_parser("history", help="every version of one consent, newest first, with who wrote it")
    history.add_argument("consent_id", metavar="CONSENT_ID")
    add_hub_options(history)
    history.add_argument("--json", action="store_true", help="print the history Bundle")
    history.set_defaults(func=consent_history)


def _consents(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("resourceType") == "Bundle":
        return [e["resource"] for e in data.get("entry", []) if e.get("resource", {}).get("resourceType") == "Consent"]
    return [data]


def import_consents(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            consents = _consents(path)
        except (OSError, ValueError) as exc:
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            failed += 1
            continue
        for consent in consents:
            status, body = call(args, "/fhir/Consent", consent, method="POST", content_type="application/fhir+json")
            if status == 201:
                print(f"{path}: Consent/{body['id']} stored ({body.get('status')})")
            else:
                print(f"{path}: refused (HTTP {status}): {refusal_text(body)}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


def list_consents(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"patient": args.patient})
    status, bundle = call(args, f"/fhir/Consent?{query}")
    if status != 200:
        print(f"refused (HTTP {status}): {refusal_text(bundle)}", file=sys.stderr)
        return 1
    for entry in bundle.get("entry", []):
        c = entry["resource"]
        period = c.get("provision", {}).get("period", {})
        print(f"Consent/{c['id']}  {c['status']:<9} {period.get('start', '')} .. {period.get('end', '')}")
    return 0


def consent_history(args: argparse.Namespace) -> int:
    status, bundle = call(args, f"/fhir/Consent/{urllib.parse.quote(args.consent_id)}/_history")
    if status != 200:
        print(f"refused (HTTP {status}): {refusal_text(bundle)}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(bundle, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for entry in bundle.get("entry", []):
        c = entry["resource"]
        meta = c.get("meta", {})
        author = next((e.get("valueString", "") for e in meta.get("extension", []) if e.get("url") == WRITTEN_BY), "")
        print(f"Consent/{c['id']} version {meta.get('versionId', '?'):<3} {c['status']:<9} "
              f"{meta.get('lastUpdated', '')}  written by {author or '?'}")  # fmt: skip
    return 0
