"""The naive end-to-end reference, each role in its own process like carehub's.

``python -m bench.e2e_reference ingest BOOTSTRAP TOPIC``: MLLP in, raw bytes to Kafka (acks=all),
a fixed AA (``bench.reference.ReferenceServer``); prints ``port N``.

``python -m bench.e2e_reference worker BOOTSTRAP TOPIC GROUP PLAN``: a plain aiokafka consumer group
member that, for each record, POSTs the raw message (as JSON, signed like carehub's webhooks) to
every recipient the PLAN names for its trigger (``{"A01": [[recipient, url, secret], ...], ...}``,
what carehub planned for the same messages in the warm-up), then commits once the batch's POSTs
answered. No parsing beyond MSH-9, no mapping, routing, consent or journal: the floor under what
carehub does between the same MLLP socket and the same recipients.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer

from bench.reference import ReferenceServer
from carehub import loop
from carehub.connectors.webhook import SIGNATURE_HEADER, signature

Plan = dict[str, list[list[str]]]


async def _until_signal() -> None:
    stop = asyncio.Event()
    running = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(sig, stop.set)
    await stop.wait()


async def ingest(bootstrap: str, topic: str) -> None:
    server = ReferenceServer(bootstrap, topic)
    await server.start()
    print(f"port {server.port}", flush=True)
    try:
        await _until_signal()
    finally:
        await server.stop()


def _trigger(raw: bytes) -> str:
    msh9 = raw.split(b"\r", 1)[0].split(b"|")[8]
    return msh9.split(b"^")[1].decode()


async def _post(session: aiohttp.ClientSession, url: str, secret: str, body: bytes, key: str) -> None:
    headers = {
        "Content-Type": "application/fhir+json",
        "Idempotency-Key": key,
        SIGNATURE_HEADER: signature(secret, int(time.time()), body),
    }
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()


async def worker(bootstrap: str, topic: str, group: str, plan: Plan) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", fetch_max_wait_ms=10, max_poll_records=500,
    )  # fmt: skip
    session = aiohttp.ClientSession()
    await consumer.start()
    print("ready", flush=True)

    async def consume() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            posts = []
            for records in batches.values():
                for record in records:
                    raw = record.value or b""
                    body = orjson.dumps({"resourceType": "Bundle", "type": "message", "raw": raw.decode()})
                    tag = f"{record.partition}-{record.offset}"
                    for i, (_recipient, url, secret) in enumerate(plan.get(_trigger(raw), [])):
                        posts.append(_post(session, url, secret, body, f"{tag}-{i}"))
            if posts:
                await asyncio.gather(*posts)
                await consumer.commit()

    task = asyncio.create_task(consume())
    stop = asyncio.create_task(_until_signal())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # a failed consumer ends the process with its error, not silently
    finally:
        task.cancel()
        stop.cancel()
        await consumer.stop()
        await session.close()


def main() -> None:
    role, bootstrap, topic, *rest = sys.argv[1:]
    if role == "ingest":
        loop.run(ingest(bootstrap, topic))
    else:
        group, plan = rest
        loop.run(worker(bootstrap, topic, group, json.loads(plan)))


if __name__ == "__main__":
    main()
