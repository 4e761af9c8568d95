"""An order of a Part 2 patient keeps its labels: every offer and step notice goes to the gate as Part 2."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from carehub.connectors.logistics import LogisticsDesk
from carehub.core.clock import ManualClock
from carehub.core.records import Delivery
from carehub.journal import open_journal
from carehub.streams.consent.codes import ACT_CODE, PART2, coding
from carehub.streams.consent.gate import needs_consent
from carehub.streams.logistics.engine import LogisticsEngine
from carehub.streams.routing.load import load_recipients
from carehub.streams.routing.model import LOGISTICS_DESK
from tests.conftest import CONFIG
from tests.logistics.test_cascade_http import order


async def test_offers_and_notices_of_a_part2_order_carry_its_labels(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path / 'journal.db'}")
    label = coding(ACT_CODE, PART2)
    desk_delivery = Delivery(
        delivery_id="o-p2", idempotency_key="o-p2", event_id="e", patient_key="RRC|P2", recipient_id=LOGISTICS_DESK.id,
        action="order", channel="logistics", endpoint=LOGISTICS_DESK.endpoint, content_type="application/fhir+json",
        payload=order("o-p2").resource or {}, rule_id="r", map_version="v", labels=[label],
    )  # fmt: skip
    woken: list[bool] = []
    await LogisticsDesk(lambda: journal, lambda: woken.append(True)).send(desk_delivery)
    placed = journal.logistics.get("o-p2")
    assert placed is not None and woken == [True]
    assert (placed.resource or {})["meta"]["security"] == [label]
    sent: list[Delivery] = []

    async def publish(d: Delivery) -> None:
        sent.append(d)

    vendors = load_recipients(Path(CONFIG) / "recipients.yaml")
    engine = LogisticsEngine(journal, lambda: vendors, publish, hub_url="http://hub",
                             clock=ManualClock(datetime(2026, 12, 1, 14, tzinfo=UTC)))  # fmt: skip
    assert await engine.tick()
    assert {d.recipient_id for d in sent} == {"nemt-metro", "pcp-riverside"}, "the offer and the step notices"
    assert all(d.labels == [label] and needs_consent(d) for d in sent), "each is decided as Part 2 at send time"
    before = journal.logistics.get("o-p2")
    await LogisticsDesk(lambda: journal, lambda: None).send(replace(desk_delivery, labels=[]))
    assert journal.logistics.get("o-p2") == before, "a redelivered order places nothing new"
    journal.close()


async def test_a_vendor_removed_from_the_directory_before_its_offer_left_is_skipped(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path / 'journal.db'}")
    vendors = dict(load_recipients(Path(CONFIG) / "recipients.yaml"))
    sent: list[Delivery] = []

    async def publish(d: Delivery) -> None:
        sent.append(d)

    moment = datetime(2026, 12, 1, 14, tzinfo=UTC)
    engine = LogisticsEngine(journal, lambda: vendors, publish, hub_url="http://hub", clock=lambda: moment)
    journal.logistics.place(order("o-gone"), "2026-12-01T14:00:00Z")
    journal.logistics.take_lease(engine.holder, "2026-12-01T14:00:00Z", "2026-12-01T15:00:00Z")
    await journal.db.run(engine._advance_order, "o-gone", moment)  # Metro chosen, not yet published
    del vendors["nemt-metro"]  # a hot reload took it out of the directory
    await engine.tick()
    await engine.tick()
    offers = journal.logistics.offers("o-gone")
    assert [(o.vendor_id, o.state) for o in offers] == [("nemt-metro", "dropped"), ("nemt-prairie", "offered")]
    assert [d.recipient_id for d in sent if d.action == "task"] == ["nemt-prairie"], "nothing went to Metro"
    assert offers[0].reason == "the vendor is no longer in the directory"
    journal.close()
