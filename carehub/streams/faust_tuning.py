"""One Faust knob Faust does not expose: the consumer's fetch wait.

Faust creates its aiokafka consumer with ``fetch_max_wait_ms=1500`` hard-coded.
A broker may hold an empty fetch that long even after data arrives (measured
here with the embedded broker: 1500 ms wait gave 38-442 ms per hop for a
single record, 10 ms gave 2-6 ms), and each stage of the pipeline is a hop.
Apache Kafka answers a waiting fetch as soon as data arrives, so a short wait
only costs idle fetch requests there.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


def tune_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Make ``app``'s consumer wait at most ``fetch_max_wait_ms`` for data (call before start)."""

    class Thread(faust_aiokafka.AIOKafkaConsumerThread):  # type: ignore[misc]
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

    class Consumer(faust_aiokafka.Consumer):  # type: ignore[misc]
        def _new_consumer_thread(self) -> Any:
            return Thread(self, loop=self.loop, beacon=self.beacon)

    app.transport.Consumer = Consumer  # type: ignore[misc]  # per-app override of a class default
