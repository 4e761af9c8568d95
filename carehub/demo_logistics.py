"""The demo's discharge logistics: vendors that answer their offers, and the cascade in the summary.

The heart-failure discharge in the feed orders home oxygen and a wheelchair van to the follow-up
(config/routes.yaml, rule heart-failure-logistics). The demo vendors answer on the hub's Task
endpoint with tokens bound to their directory entries: the first transport vendor declines
(``DEMO_ANSWERS``), the second and the oxygen supplier accept and schedule, and complete once the
window has opened on the hub's clock (the oxygen at discharge; the ride is still scheduled). The summary
reads every order and its steps from the run's journal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carehub.demo_receivers import DEMO_ANSWERS, DemoVendor
from carehub.journal import open_journal


def demo_vendors(vendors: list[tuple[str, str | None]]) -> list[DemoVendor]:
    """One demo vendor per (directory id, signing secret); their answers as ``DEMO_ANSWERS`` says."""
    return [DemoVendor(rid, secret, decline=DEMO_ANSWERS.get(rid, "")) for rid, secret in vendors]


def connect(vendors: list[DemoVendor], hub_url: str, token_for: Callable[[str], str]) -> None:
    for vendor in vendors:
        vendor.hub_url = hub_url
        vendor.token = token_for(vendor.recipient_id)


def orders_summary(journal: Path) -> list[dict[str, Any]]:
    """Every order of the run with its steps, from the journal."""
    store = open_journal(f"sqlite:///{journal}")
    try:
        return [
            {
                "order": o.id,
                "service": o.service,
                "capability": o.capability,
                "window": f"{o.window_start} - {o.window_end}",
                "state": o.state,
                "vendor": o.vendor_id or "",
                "steps": [(s["step"], s["vendor_id"], s["detail"]) for s in store.logistics.steps(o.id)],
            }
            for o in store.logistics.orders()
        ]
    finally:
        store.close()


#: Where the demo's orders settle: done, or scheduled for a later day (the ride to the follow-up).
SETTLED = ("scheduled", "completed", "exhausted", "cancelled")


async def wait_orders(journal: Path, timeout_s: float) -> bool:
    """Until every order of the run is settled (scheduled for later, or finished); False at the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        orders = await asyncio.to_thread(orders_summary, journal)
        if all(o["state"] in SETTLED for o in orders):
            return True
        await asyncio.sleep(0.2)
    return False


def logistics_lines(orders: list[dict[str, Any]]) -> list[str]:
    if not orders:
        return []
    lines = ["", "discharge logistics (the offer cascade; docs/logistics.md):"]
    for o in orders:
        lines.append(f"  {o['service']} {o['capability']}, window {o['window']}: {o['state']}"
                     + (f" by {o['vendor']}" if o["vendor"] else ""))  # fmt: skip
        for step, vendor, detail in o["steps"]:
            if step == "placed":
                continue
            why = f" ({detail})" if step in ("declined", "expired", "dropped", "exhausted") and detail else ""
            lines.append(f"    {step:<24} {vendor}{why}")
    return lines
