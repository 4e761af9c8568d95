"""``carehub validate FILE.hl7...``: check message structure against its HL7 version (hl7apy).

For onboarding a new feed. Slow (hl7apy, ~30 msgs/s) and off the hot path.
Also loads and compiles every mapping file, so a broken mapping edit is
reported with its file and line. Exit code 1 when any message has errors.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from carehub.commands.feedfiles import labelled_messages
from carehub.core.errors import MessageError
from carehub.mappings.conformance import check
from carehub.mappings.plan import default_plans


def register(sub: Any) -> None:
    parser = sub.add_parser("validate", help="check HL7v2 message structure against the HL7 version (hl7apy)")
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE.hl7")
    parser.add_argument("--warnings", action="store_true", help="also list warnings (table values, lengths)")
    parser.set_defaults(func=run)


def _check_file(path: Path, show_warnings: bool) -> bool:
    messages = labelled_messages(path)
    if messages is None:
        return False
    ok = True
    for where, message in messages:
        try:
            report = check(message)
        except MessageError as exc:
            print(f"{where}: unreadable: {exc.message}")
            ok = False
            continue
        status = "ok" if report.ok else f"{len(report.errors)} error(s)"
        print(f"{where}: {report.structure} v{report.version}: {status}, {len(report.warnings)} warning(s)")
        for note in report.notes:
            print(f"  note: {note}")
        for error in report.errors:
            print(f"  error: {error}")
        if show_warnings:
            for warning in report.warnings:
                print(f"  warning: {warning}")
        ok = ok and report.ok
    return ok


def run(args: argparse.Namespace) -> int:
    default_plans().compile_all()
    print("mapping files: ok")
    ok = True
    for path in args.files:
        ok = _check_file(path, args.warnings) and ok
    return 0 if ok else 1
