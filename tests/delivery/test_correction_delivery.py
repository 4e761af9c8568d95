"""A correction leaves only for a recipient that received the original (checked in the journal at send time)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.delivery.helpers import delivery, produce
from tests.delivery.recipients import HttpRecipient
from tests.delivery.test_faults import settings, start_hub
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


async def test_a_correction_of_an_original_never_received_is_not_sent(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipient = HttpRecipient(status=400)  # refuses the first original for good: it is dead-lettered
    await recipient.start()
    monkeypatch.setenv("CAREHUB_ENDPOINT_PCP_RIVERSIDE", recipient.url)  # endpoints are read at send time
    hub = await start_hub(settings(tmp_path, broker))
    try:
        refused = delivery(0, endpoint=recipient.url)
        await produce(broker, hub.topics.deliveries, [refused])
        await eventually(lambda: hub.metrics.total("delivery_dead_lettered") == 1)
        recipient.status = 200
        received = delivery(2, endpoint=recipient.url)
        corrections = [
            replace(delivery(1, endpoint=recipient.url), corrects=refused.delivery_id),
            received,
            replace(delivery(3, endpoint=recipient.url), corrects=received.delivery_id),
        ]
        await produce(broker, hub.topics.deliveries, corrections)
        await eventually(lambda: hub.metrics.total("delivery_not_needed") == 1 and hub.metrics.total("delivered") == 2)
        assert [seq for _, _, seq in recipient.seen] == [0, 2, 3], "the correction of the refused original stayed"
        journal = hub._delivery.journal if hub._delivery else None
        assert journal is not None
        assert journal.outcome_status(corrections[0].delivery_id) == "not-needed"
        assert journal.outcome_status(corrections[2].delivery_id) == "delivered"
    finally:
        await hub.stop()
        await recipient.stop()
