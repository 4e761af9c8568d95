"""``carehub``: the single console entry point, with one subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from carehub.commands import COMMANDS
from carehub.core.errors import CarehubError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carehub",
        description=(
            "Kafka-native hub for care coordination: HL7v2 ADT over MLLP in, durable on Kafka, "
            "normalized to FHIR R4, routed and delivered as notifications."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o077)  # every file and directory carehub writes (journal, logs) is owner-only
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CarehubError as exc:
        print(f"carehub: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
