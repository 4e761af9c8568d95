"""The one way carehub keeps state in Faust tables: text keys, JSON values, raw bytes on the changelog.

Every table's key is written to its changelog as the UTF-8 bytes of the key
(a patient key such as ``RGH|MRN100871``, a source name) and every value as
the JSON document, and both are read back the same way on recovery. A table
left to Faust's defaults writes a bytes key unencoded but parses it as JSON on
recovery, so a restarted worker could not read its own changelog and never
became ready; tests/integration/test_restart.py restarts a worker against a
broker holding each table's state.
"""

from __future__ import annotations

from typing import Any

import faust
import orjson

#: Raw bytes both ways: the encoding is done here, once, for every table.
_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


class JsonTable:
    """A Faust table of JSON documents by text key (to use inside an agent: writes go to the changelog)."""

    def __init__(self, app: faust.App, name: str, changelog: str | None = None) -> None:
        schema: Any = faust.Schema(**_RAW)
        partitions = app.conf.topic_partitions
        # acks=False as on the changelogs Faust names itself: a changelog is read back on recovery, never
        # streamed, so it must not count as a stream topic (Faust's stalled-stream check then logs an
        # ERROR block for each of its partitions every few seconds on an idle hub).
        topic = app.topic(changelog, schema=schema, partitions=partitions, acks=False) if changelog else None
        self.table: Any = app.Table(
            name,
            default=None,
            changelog_topic=topic,
            schema=schema,
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
        )

    def get(self, key: str) -> Any:
        """The document stored under ``key``, or None."""
        raw = self.table.get(key.encode())
        return orjson.loads(raw) if raw else None

    def put(self, key: str, document: Any) -> None:
        self.table[key.encode()] = orjson.dumps(document)
