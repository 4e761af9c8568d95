"""``carehub convert FILE.hl7...``: HL7v2 ADT to a FHIR R4 Bundle (or ``--event``: the CareEvent).

Prints one JSON document per message (a JSON array when there are several).
Validation (FHIR R4 schema, references, ids) is on; findings and unmapped
segments go to stderr by name and position only, never values (PHI). A file
that cannot be read or converted is reported on stderr, the others still
convert, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from carehub.commands.feedfiles import labelled_messages
from carehub.core.errors import MappingError
from carehub.mappings import convert_text


def register(sub: Any) -> None:
    parser = sub.add_parser("convert", help="convert HL7v2 ADT files to FHIR R4 Bundles (or CareEvents)")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.hl7")
    parser.add_argument("--event", action="store_true", help="print the CareEvent instead of the Bundle")
    parser.add_argument("--no-validate", action="store_true", help="skip FHIR schema validation (faster)")
    parser.add_argument("--received-at", default=None, help="receipt time to record (ISO 8601)")
    parser.set_defaults(func=run)


def _convert_file(path: Path, args: argparse.Namespace, out: list[Any]) -> bool:
    messages = labelled_messages(path)
    if messages is None:
        return False
    ok = True
    for where, message in messages:
        try:
            result = convert_text(message, received_at=args.received_at, validate=not args.no_validate)
        except MappingError as exc:
            print(f"{where}: error: {exc.message}", file=sys.stderr)
            ok = False
            continue
        for issue in result.issues:
            print(f"{where}: issue: {issue}", file=sys.stderr)
        if result.unmapped:
            print(f"{where}: unmapped (carried): {', '.join(result.unmapped)}", file=sys.stderr)
        out.append(result.event.to_dict() if args.event else result.bundle)
    return ok


def run(args: argparse.Namespace) -> int:
    out: list[Any] = []
    ok = True
    for path in args.files:
        ok = _convert_file(path, args, out) and ok
    if out:
        document = out[0] if len(out) == 1 else out
        json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0 if ok else 1
