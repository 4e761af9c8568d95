"""Logging set-up. carehub logs control ids, types, offsets and codes — never message content."""

from __future__ import annotations

import logging

from carehub.core.lograte import ThrottleFilter

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT)
    # The Kafka clients are chatty at INFO; keep their warnings.
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # While a broker is away the Kafka clients log every reconnect attempt; the hub logs "lost"/"back" once.
    throttle = ThrottleFilter(("aiokafka", "kafka"), 30.0)
    for handler in logging.getLogger().handlers:
        handler.addFilter(throttle)
