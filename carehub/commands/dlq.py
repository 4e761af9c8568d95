"""``carehub dlq list`` and ``carehub dlq replay``: dead-lettered deliveries, through a running hub.

Both talk to the hub's admin HTTP routes (adapters.dlqapi), so they work the
same with the embedded broker and with a cluster; they need an ops token
(``carehub/ops.read``, and ``carehub/ops.write`` to replay) in ``CAREHUB_TOKEN``
or ``--token-file``. ``list`` prints ids, codes
and reasons, never payloads. ``replay`` sends the chosen dead letters again
with their original idempotency keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from carehub.commands.hubclient import HubRefused, add_hub_options, call, guarded, refusal_text


def register(sub: Any) -> None:
    parser = sub.add_parser("dlq", help="list and replay dead-lettered deliveries (through a running hub)")
    actions = parser.add_subparsers(dest="dlq_command", required=True)
    listing = actions.add_parser("list", help="list dead letters")
    add_hub_options(listing)
    listing.add_argument("--state", choices=("parked", "replayed"), default=None)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)
    replay = actions.add_parser("replay", help="deliver dead letters again (same idempotency keys)")
    add_hub_options(replay)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", dest="ids", metavar="DELIVERY_ID", help="a delivery id (repeatable)")
    which.add_argument("--all", action="store_true", help="every parked dead letter")
    replay.set_defaults(func=run_replay)


def _call(args: argparse.Namespace, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    status, answer = call(args, path, body, method="POST" if body is not None else "GET")
    if status != 200:
        raise HubRefused(f"hub answered HTTP {status}: {refusal_text(answer)}")
    return answer


def _list(args: argparse.Namespace) -> int:
    query = f"?state={args.state}" if args.state else ""
    letters = _call(args, f"/admin/dlq{query}")["dead_letters"]
    if args.json:
        json.dump(letters, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{'delivery id':34} {'recipient':22} {'state':9} {'code':20} reason")
    for row in letters:
        print(
            f"{row['delivery_id']:34} {row['recipient_id']:22} {row['state']:9} {row['error_code']:20} {row['reason']}"
        )
    print(f"{len(letters)} dead letter(s)")
    return 0


def _replay(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"all": True} if args.all else {"ids": args.ids}
    answer = _call(args, "/admin/dlq/replay", body)
    print(f"replayed {len(answer['replayed'])}; unknown {len(answer['unknown'])}; failed {len(answer['failed'])}")
    for delivery_id in answer["unknown"]:
        print(f"  not a parked dead letter: {delivery_id}", file=sys.stderr)
    return 0 if not answer["unknown"] and not answer["failed"] else 1


def run_list(args: argparse.Namespace) -> int:
    return guarded(_list, args)


def run_replay(args: argparse.Namespace) -> int:
    return guarded(_replay, args)
