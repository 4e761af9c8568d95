"""``carehub db upgrade|status``: the journal's schema version, and migrating it in place.

Every process also upgrades its journal at start-up (``open_journal``); this
command does it ahead of a rolling upgrade, or shows where a journal stands.
The URL is never printed (it may hold a password).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from carehub.core.settings import load_settings
from carehub.delivery_wiring import journal_url
from carehub.hub import worker_app_id
from carehub.journal.db import Database
from carehub.journal.migrations import LATEST, MIGRATIONS, applied, upgrade


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("db", help="the journal's schema: upgrade it in place, or show its version")
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func, text in (
        ("upgrade", run_upgrade, "apply the journal migrations it has not had (also done at every start-up)"),
        ("status", run_status, "list the migrations the journal has had and the ones it lacks"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--config-dir", type=Path, default=Path("config"), help="where carehub.yaml names it")
        action.add_argument("--database-url", help="the journal (default: the config's database_url)")
        action.set_defaults(func=func)


def _database(args: argparse.Namespace) -> Database:
    if args.database_url:
        return Database(args.database_url)
    settings = load_settings(args.config_dir)
    return Database(journal_url(settings, worker_app_id(settings)))


def run_upgrade(args: argparse.Namespace) -> int:
    db = _database(args)
    try:
        done = upgrade(db)
        for step in done:
            print(f"applied {step.version}: {step.name}")
        print(
            f"journal ({db.dialect}) at version {max(applied(db), default=0)}" + ("" if done else ", nothing to apply")
        )
    finally:
        db.close()
    return 0


def run_status(args: argparse.Namespace) -> int:
    db = _database(args)
    try:
        have = applied(db)
    finally:
        db.close()
    for step in MIGRATIONS:
        print(f"{step.version:>3} {'applied' if step.version in have else 'pending':<8} {step.name}")
    unknown = sorted(set(have) - {m.version for m in MIGRATIONS})
    for version in unknown:
        print(f"{version:>3} {'applied':<8} {have[version]} (from a newer carehub)")
    pending = [m.version for m in MIGRATIONS if m.version not in have]
    print(
        f"journal ({db.dialect}): {len(pending)} pending of {LATEST}" + (" - run carehub db upgrade" if pending else "")
    )
    return 0
