"""``carehub consent import|list``: load FHIR Consent resources into a running hub."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_HUB = "http://127.0.0.1:8080"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "consent",
        help="import or list 42 CFR Part 2 consents (FHIR R4 Consent) on a running hub",
        description="Talk to a running hub's /fhir/Consent endpoint (see `carehub run --http-port`).",
    )
    actions = parser.add_subparsers(dest="consent_command", metavar="ACTION", required=True)
    load = actions.add_parser("import", help="POST each Consent (a JSON resource, or a Bundle of them) to the hub")
    load.add_argument("files", nargs="+", type=Path, metavar="FILE.json")
    load.add_argument("--hub", default=DEFAULT_HUB, help=f"the hub's HTTP base URL (default {DEFAULT_HUB})")
    load.set_defaults(func=import_consents)
    show = actions.add_parser("list", help="list the consents on file for a patient")
    show.add_argument("--patient", required=True, help="system|value of the patient identifier, e.g. RGH|MRN100234")
    show.add_argument("--hub", default=DEFAULT_HUB)
    show.set_defaults(func=list_consents)


def _consents(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("resourceType") == "Bundle":
        return [e["resource"] for e in data.get("entry", []) if e.get("resource", {}).get("resourceType") == "Consent"]
    return [data]


def _post(hub: str, consent: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{hub}/fhir/Consent", data=json.dumps(consent).encode(), method="POST",
        headers={"Content-Type": "application/fhir+json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


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
            status, body = _post(args.hub.rstrip("/"), consent)
            if status == 201:
                print(f"{path}: Consent/{body['id']} stored ({body.get('status')})")
            else:
                issue = body.get("issue", [{}])[0].get("details", {}).get("text", "")
                print(f"{path}: refused (HTTP {status}): {issue}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


def list_consents(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"patient": args.patient})
    with urllib.request.urlopen(f"{args.hub.rstrip('/')}/fhir/Consent?{query}", timeout=30) as response:
        bundle = json.load(response)
    for entry in bundle.get("entry", []):
        c = entry["resource"]
        period = c.get("provision", {}).get("period", {})
        print(f"Consent/{c['id']}  {c['status']:<9} {period.get('start', '')} .. {period.get('end', '')}")
    return 0
