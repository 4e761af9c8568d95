"""``carehub demo``: everything in one command, on the embedded defaults."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from carehub import logs, loop
from carehub.demo import DEFAULT_CONFIG, DEFAULT_FEED, render, run_demo


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="run broker, hub and demo recipients; play a sample ADT feed; show what reached whom",
        description=(
            "Start the embedded broker, the hub and local HTTP recipients standing in for a PCP practice and "
            "a payer; send every .hl7 file of the feed directory over MLLP; wait until the pipeline is idle; "
            "print a summary (or one JSON object with --json)."
        ),
    )
    parser.add_argument(
        "--feed", type=Path, default=DEFAULT_FEED, help=f"directory of .hl7 files (default: {DEFAULT_FEED})"
    )
    parser.add_argument(
        "--config-dir", type=Path, default=DEFAULT_CONFIG, help="config directory (default: the shipped sample config)"
    )
    parser.add_argument("--json", action="store_true", help="print one machine-readable JSON object")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the pipeline to go idle")
    parser.add_argument(
        "--serve", action="store_true", help="keep the hub and its console up after the feed, until Ctrl-C"
    )
    parser.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    logs.configure("ERROR" if args.json else "WARNING")
    report = loop.run(run_demo(args.feed, args.config_dir, args.timeout, serve=args.serve))
    if args.json:
        data = report.to_dict()
        print(json.dumps(data, indent=2))
    else:
        print(render(report))
    return 0 if report.idle and report.failed == 0 else 1
