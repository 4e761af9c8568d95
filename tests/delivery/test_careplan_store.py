"""The journal's CarePlans (journal.careplans, streams.packet.sync) on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

from carehub.core.records import TaskEvent
from carehub.journal import Journal
from carehub.journal.careplans import Member
from carehub.streams.notify import Hub
from carehub.streams.packet.careplan import careplan_id
from carehub.streams.packet.sync import episode_changes, kept_plan, plan_updates, record_packets
from carehub.streams.plan import plan_deliveries, task_requests
from carehub.streams.routing.decide import decide
from carehub.streams.routing.load import load_routing_map
from carehub.streams.task_alerts import task_from_delivery
from tests.conftest import CONFIG
from tests.packet.events import discharge

HUB = Hub(base_url="https://hub.example.org/fhir")
NOW = "2026-11-05T19:30:00Z"


def test_one_plan_per_episode_its_tasks_progress_revocation_and_merge(journal: Journal) -> None:
    event = discharge()
    routing_map = load_routing_map(CONFIG)
    decision = decide(event, routing_map)
    deliveries = plan_deliveries(event, decision, HUB, NOW)
    tasks = task_requests(event, decision)
    packets = [d for d in deliveries if d.action == "packet"]
    for d in deliveries:  # the Tasks as delivered (what /fhir/Task serves)
        task = task_from_delivery(d)
        if task is not None:
            journal.tasks.put(task, d.recipient_id, "hub", d.patient_key)
    assert record_packets(journal, event, packets, tasks, HUB, NOW)
    assert not record_packets(journal, event, packets, tasks, HUB, NOW), "the same A03 again changes nothing"
    stored = journal.careplans.get(careplan_id(event))
    assert stored is not None and stored.version == 1 and stored.status == "active"
    assert stored.task_ids == tuple(sorted(t.key for t in tasks))
    assert {m.recipient_id for m in stored.members} == {"pcp-riverside", "payer-acme"}
    assert stored.resource["subject"] == {"identifier": {"system": "urn:carehub:patient", "value": "RGH|MRN100234"}}
    assert stored.resource == kept_plan(event, tasks, HUB, NOW)

    contact = tasks[0].key
    journal.tasks.update(contact, {"status": "completed"}, "pcp-riverside")
    change = TaskEvent(contact, "status-changed", "requested", "completed", NOW, "pcp-riverside")
    updates = plan_updates(journal, change, hub=HUB, directory=routing_map.recipients, map_version="v")
    assert {(u.recipient_id, u.corrects) for u in updates} == {(p.recipient_id, p.delivery_id) for p in packets}
    assert all(u.action == "packet" and u.rule_id == "careplan-update" for u in updates)
    again = plan_updates(journal, change, hub=HUB, directory=routing_map.recipients, map_version="v")
    assert [u.delivery_id for u in again] == [u.delivery_id for u in updates], "the same state, the same key"
    after = journal.careplans.for_task(contact)
    assert after is not None and after.version == 2
    progress = {a["reference"]["reference"]: a["progress"][0]["text"] for a in after.resource["activity"]}
    assert progress[f"Task/{contact}"] == "Task completed"
    created = TaskEvent(contact, "created", None, "requested", NOW, "hub")
    assert plan_updates(journal, created, hub=HUB, directory=routing_map.recipients, map_version="v") == []

    cancel = replace(event, kind="cancel-discharge", trigger="A13", event_id="a13")
    episode_changes(journal, cancel, [])
    revoked = journal.careplans.get(careplan_id(event))
    assert revoked is not None and revoked.status == "revoked"
    assert revoked.resource["note"] == [{"text": "the discharge was cancelled (A13)"}]
    journal.tasks.cancel(tasks[1].key, "the discharge was cancelled (A13)", "hub:correction:a13")
    gone = TaskEvent(tasks[1].key, "status-changed", "requested", "cancelled", NOW, "hub")
    assert plan_updates(journal, gone, hub=HUB, directory=routing_map.recipients, map_version="v") == []

    merge = replace(event, kind="merge", patient_key="RGH|MRN999999", event_id="a40")
    episode_changes(journal, merge, ["RGH|MRN100234"])
    assert journal.careplans.of_patient("RGH|MRN999999") == [careplan_id(event)]
    assert journal.careplans.of_patient("RGH|MRN100234") == []
    record_packets(journal, event, packets[:1], tasks, HUB, NOW)  # the discharge again after its cancel
    back = journal.careplans.get(careplan_id(event))
    assert back is not None and back.status == "active"
    assert Member(packets[0].recipient_id, packets[0].delivery_id, ()) in back.members
