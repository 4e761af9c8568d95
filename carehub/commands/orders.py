"""``carehub orders``: place a discharge logistics order by hand and follow its offer cascade.

Through a running hub's HTTP API (adapters.logisticsapi), with a token in ``CAREHUB_TOKEN`` or
``--token-file``: ``carehub/ops.write`` and ``carehub/phi.read`` to place, ``carehub/ops.read`` and
``carehub/phi.read`` to list and show, ``carehub/ops.read`` for the vendor figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from carehub.commands.hubclient import HubRefused, add_hub_options, call, guarded, refusal_text
from carehub.streams.logistics.place import DEFAULTS


def register(sub: Any) -> None:
    parser = sub.add_parser("orders", help="discharge logistics orders: place, list, show, vendor figures")
    actions = parser.add_subparsers(dest="orders_command", required=True)
    place = actions.add_parser("place", help="place an order; the hub offers it to the vendors that fit")
    add_hub_options(place)
    place.add_argument("--patient", required=True, help="the patient key, e.g. RGH|MRN100234")
    place.add_argument("--service", required=True, choices=tuple(DEFAULTS))
    place.add_argument("--capability", required=True, help="wheelchair, oxygen, skilled-nursing, ...")
    place.add_argument("--start", required=True, help="window start, ISO 8601 with offset")
    place.add_argument("--end", required=True, help="window end, ISO 8601 with offset")
    place.add_argument("--zip", required=True, help="5-digit ZIP of the pickup or delivery address")
    place.add_argument("--county", default="", help="county FIPS code of the address")
    place.add_argument("--address", default="", help="the pickup or delivery address, one line")
    place.add_argument("--payer", default="", help="payer id (IN1-3): its network's vendors first")
    place.add_argument("--notify", action="append", default=[], metavar="RECIPIENT_ID",
                       help="told of each step (repeatable): the PCP, the care manager")  # fmt: skip
    place.add_argument("--offer-minutes", type=float, help="how long each vendor has to accept")
    place.set_defaults(func=lambda a: guarded(_place, a))
    listing = actions.add_parser("list", help="the orders, optionally by state")
    add_hub_options(listing)
    listing.add_argument("--state", help="open, offered, accepted, scheduled, completed, exhausted, cancelled")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=lambda a: guarded(_list, a))
    show = actions.add_parser("show", help="one order: its offers and every step")
    add_hub_options(show)
    show.add_argument("order_id")
    show.set_defaults(func=lambda a: guarded(_show, a))
    vendors = actions.add_parser("vendors", help="per vendor: on-time rate, turnaround, offers not taken")
    add_hub_options(vendors)
    vendors.add_argument("--service", choices=tuple(DEFAULTS))
    vendors.set_defaults(func=lambda a: guarded(_vendors, a))


def _call(args: argparse.Namespace, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    status, answer = call(args, path, body, method="POST" if body is not None else "GET")
    if status == 422:
        raise HubRefused("\n".join(["the hub refused the order:", *(f"  {p}" for p in answer.get("problems", []))]))
    if status not in (200, 201):
        raise HubRefused(f"hub answered HTTP {status}: {refusal_text(answer)}")
    return answer


def _place(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "patient_key": args.patient, "service": args.service, "capability": args.capability,
        "window": {"start": args.start, "end": args.end}, "zip": args.zip, "county": args.county,
        "address": args.address, "payer": args.payer, "notify": args.notify,
    }  # fmt: skip
    if args.offer_minutes:
        body["offer_minutes"] = args.offer_minutes
    order = _call(args, "/logistics/orders", body)
    what = f"{order['service']} {order['capability']} {order['state']}"
    print(f"order {order['id']}: {what} (placed by {order['placed_by']})")
    return 0


def _line(o: dict[str, Any]) -> str:
    vendor = o["vendor_id"] or "-"
    return f"{o['id']:34} {o['service']:12} {o['capability']:16} {o['state']:10} {vendor:18} {o['window_start']}"


def _list(args: argparse.Namespace) -> int:
    query = f"?state={args.state}" if args.state else ""
    orders = _call(args, f"/logistics/orders{query}")["orders"]
    if args.json:
        json.dump(orders, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{'order':34} {'service':12} {'capability':16} {'state':10} {'vendor':18} window start")
    for o in orders:
        print(_line(o))
    print(f"{len(orders)} order(s)")
    return 0


def _show(args: argparse.Namespace) -> int:
    order = _call(args, f"/logistics/orders/{args.order_id}")
    print(_line(order))
    for offer in order["offers"]:
        print(f"  offer {offer['seq']} to {offer['vendor_id']}: {offer['state']}"
              + (f" ({offer['reason']})" if offer["reason"] else ""))  # fmt: skip
    for step in order["steps"]:
        print(f"  {step['at']}  {step['step']:24} {step['vendor_id'] or '-':18} {step['detail']}")
    return 0


def vendor_table(found: dict[str, dict[str, Any]]) -> list[str]:
    """Per vendor: finished, on time, on-time rate, mean turnaround, offers not taken (a table)."""
    lines = [f"{'vendor':18} {'service':12} {'finished':>8} {'on time':>8} {'rate':>7} {'turnaround':>11}"
             f" {'not taken':>9}"]  # fmt: skip
    for vendor, v in sorted(found.items()):
        rate = f"{v['on_time_rate']:.0%}" if v["on_time_rate"] is not None else "-"
        turnaround = f"{v['mean_turnaround_s'] / 3600:.1f} h" if v["mean_turnaround_s"] is not None else "-"
        lines.append(f"{vendor:18} {v['service']:12} {v['finished']:>8} {v['on_time']:>8} {rate:>7}"
                     f" {turnaround:>11} {v['not_taken']:>9}")  # fmt: skip
    return lines


def _vendors(args: argparse.Namespace) -> int:
    query = f"?service={args.service}" if args.service else ""
    print("\n".join(vendor_table(_call(args, f"/logistics/vendors{query}")["vendors"])))
    return 0
