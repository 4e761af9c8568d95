"""``carehub scorecard``: the care-coordination measures of a period, and today's worklists."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

from carehub.commands.orders import vendor_table
from carehub.core.clock import now
from carehub.core.errors import ConfigError
from carehub.core.settings import load_settings
from carehub.journal import open_journal
from carehub.scorecard.compute import Calculator, Period, compute_all, parse_period
from carehub.scorecard.definitions import check_measures, load_measures
from carehub.scorecard.kinds import recipient_kinds
from carehub.scorecard.render import csv_text, scorecard_dict, table
from carehub.scorecard.worklists import TITLES, worklists


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "scorecard",
        help="transitions-of-care measures (TRC, readmissions, follow-up, referral turnaround) from the journal",
        description="Compute the measures defined in CONFIG_DIR/measures/*.yaml (or the shipped ones) from the "
        "journal for a period: numerator, denominator and rate per measure, by facility, payer, recipient "
        "or service; --worklist lists today's open gaps instead. docs/scorecard.md defines each measure.",
    )
    parser.add_argument("--from", dest="start", help="first day of the period (default: 30 days before --to)")
    parser.add_argument("--to", dest="end", help="last day of the period, inclusive (default: today)")
    parser.add_argument("--measure", action="append", default=[], help="only this measure id (repeatable)")
    parser.add_argument("--by", choices=("facility", "payer", "recipient", "service"), default="",
                        help="show each measure per facility, payer, recipient or service")  # fmt: skip
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON document")
    out.add_argument("--csv", action="store_true", help="CSV, one row per measure and stratum")
    parser.add_argument("--subjects", action="store_true", help="with --json: every subject and why it counts")
    parser.add_argument("--worklist", action="store_true", help="today's open gaps per recipient instead")
    parser.add_argument("--accept-hours", type=float, default=24.0, help="worklist: Tasks not accepted after this")
    parser.add_argument("--validate", action="store_true", help="check the measure files and exit")
    parser.add_argument("--config-dir", type=Path, default=Path("config"), help="the config (measures, directory)")
    parser.add_argument("--database-url", help="the journal (default: the config's database_url)")
    parser.set_defaults(func=run)


def period_of(args: argparse.Namespace) -> Period:
    end = args.end or now().date().isoformat()
    start = args.start or (parse_period(end, end).end - timedelta(days=30)).isoformat()
    try:
        return parse_period(start, end)
    except ValueError as exc:
        raise ConfigError(str(exc), file="--from/--to") from None


def run(args: argparse.Namespace) -> int:
    config_dir = args.config_dir if args.config_dir.is_dir() else None
    if args.validate:
        measures, problems = check_measures(config_dir)
        for problem in problems:
            print(problem)
        print(f"{len(measures)} measure(s), {len(problems)} problem(s)")
        return 1 if problems else 0
    measures = load_measures(config_dir)
    if args.measure:
        unknown = sorted(set(args.measure) - {m.id for m in measures})
        if unknown:
            raise ConfigError(f"no measure {', '.join(unknown)}; known: {', '.join(m.id for m in measures)}",
                              file="--measure")  # fmt: skip
        measures = [m for m in measures if m.id in args.measure]
    url = args.database_url or load_settings(args.config_dir).database_url
    kinds = recipient_kinds(config_dir)
    journal = open_journal(url)
    try:
        if args.worklist:
            gaps = worklists(journal.db, kinds, accept_hours=args.accept_hours)
            if args.json:
                print(json.dumps([g.to_dict() for g in gaps], indent=2))
                return 0
            for name, title in TITLES.items():
                found = [g for g in gaps if g.list == name]
                print(f"{title}: {len(found)}")
                for g in found:
                    task = f" task {g.task_code} {g.task_status}" if g.task_id else ""
                    lace = f" LACE {g.lace}" if g.lace is not None else ""
                    print(f"  {g.recipient:<18} {g.patient_key:<22} {g.event_kind} {g.event_at[:16]}{task}{lace}")
                    print(f"      next: {g.next_step}")
            return 0
        results = compute_all(Calculator(journal.db, kinds), measures, period_of(args))
        vendors = journal.logistics.performance()  # discharge logistics: per vendor (docs/logistics.md)
    finally:
        journal.close()
    if args.json:
        print(json.dumps(scorecard_dict(results, subjects=args.subjects), indent=2))
    elif args.csv:
        print(csv_text(results, args.by), end="")
    else:
        print(table(results, args.by), end="")
        if vendors:
            print("\nlogistics vendors (all orders; carehub orders vendors):")
            print("\n".join(f"  {line}" for line in vendor_table(vendors)))
    return 0
