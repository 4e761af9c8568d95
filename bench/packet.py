"""``python -m bench --only packet``: what a transition-of-care packet costs the route stage.

Times, on the discharge of tests/packet/a03-discharge-full.hl7 (DG1, PR1, AL1, OBX) under the
shipped routing map: the packet's planning (document, CarePlan, message, for one recipient), its
size, the R4 schema check of every resource (done by tests and ``carehub packet``, not at run time),
and an enrichment against a local FHIR server over real HTTP (fhirclient in threads: the Patient
lookup, then six searches at once). Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from bench.procs import percentile
from carehub.connectors.fhir_source import AsyncFhirSource, FhirSource
from carehub.core.records import CareEvent
from carehub.demo import demo_secrets
from carehub.mappings import convert_text
from carehub.ops_http import HTTPServer
from carehub.streams.notify import Hub
from carehub.streams.packet.document import packet_problems
from carehub.streams.packet.enrich import enrich
from carehub.streams.plan import plan_action, task_requests
from carehub.streams.routing.decide import decide
from carehub.streams.routing.load import load_routing_map

REPO = Path(__file__).resolve().parent.parent
DISCHARGE = REPO / "tests" / "packet" / "a03-discharge-full.hl7"
HUB = Hub(base_url="https://hub.example.org/fhir")


def _ms(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"p50 {percentile(ms, 0.5):7.2f} ms   p99 {percentile(ms, 0.99):7.2f} ms"


async def _source() -> HTTPServer:
    """A FHIR server answering the enrichment's searches (one patient, one resource of each kind)."""
    patient = {"resourceType": "Patient", "id": "p1", "identifier": [{"value": "MRN100234"}]}

    async def search(request: web.Request) -> web.Response:
        kind = request.match_info["type"]
        found = patient if kind == "Patient" else {"resourceType": kind, "id": f"{kind}-1", "status": "active",
                                                   "subject": {"reference": "Patient/p1"}}  # fmt: skip
        body = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": found}]}
        return web.json_response(body, content_type="application/fhir+json")

    server = HTTPServer([web.get("/fhir/{type}", search)], "127.0.0.1", 0)
    await server.start()
    return server


async def bench_packet(quick: bool) -> list[str]:
    demo_secrets(REPO / "config")
    text = DISCHARGE.read_text()
    event: CareEvent = convert_text(text, validate=False).event
    routing_map = load_routing_map(REPO / "config")
    decision = decide(event, routing_map)
    packet = next(p for p in decision.planned if p.action == "packet")
    tasks = task_requests(event, decision)
    n = 50 if quick else 300
    planned: list[float] = []
    payload: dict[str, Any] = {}
    for _ in range(n):
        start = time.perf_counter()
        payload = plan_action(event, packet, decision.map_version, HUB, "2026-11-05T19:30:00Z", tasks).payload.value
        planned.append(time.perf_counter() - start)
    checked: list[float] = []
    for _ in range(max(5, n // 20)):
        start = time.perf_counter()
        assert packet_problems(payload) == []
        checked.append(time.perf_counter() - start)
    server = await _source()
    reader = AsyncFhirSource(FhirSource(f"http://127.0.0.1:{server.port}/fhir"))
    enriched: list[float] = []
    try:
        for _ in range(20 if quick else 100):
            start = time.perf_counter()
            result = await enrich(reader, "bench", event, 5.0)
            enriched.append(time.perf_counter() - start)
            assert not result.note.missing
    finally:
        await server.stop()
    size = len(orjson.dumps(payload))
    return [
        "transition-of-care packet (tests/packet/a03-discharge-full.hl7, shipped routing map):",
        f"  plan one packet (document, CarePlan, message)       {_ms(planned)}   ({n} runs; {size:,} bytes)",
        f"  R4 schema + references check of the packet          {_ms(checked)}   (tests and carehub packet only)",
        f"  enrichment from a local FHIR server (7 searches)    {_ms(enriched)}   (fhirclient in threads)",
    ]


if __name__ == "__main__":
    print("\n".join(asyncio.run(bench_packet(quick=False))))
