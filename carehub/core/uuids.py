"""Name-based UUIDs (version 5, RFC 4122 §4.3): the ids carehub derives from keys, stable across runs.

``Namespace(ns).id(name)`` is ``str(uuid.uuid5(ns, name))``, without ``uuid.UUID``'s objects: the SHA-1
is copied from one already seeded with the namespace (a new ``hashlib.sha1()`` looks the digest up in
OpenSSL 3 every time) and the hex laid out directly. A routed message makes a few dozen of them.
"""

from __future__ import annotations

import hashlib
import uuid

#: The RFC 4122 variant's top bits over the first hex digit of byte 8.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class Namespace:
    """The version-5 UUIDs of one namespace."""

    __slots__ = ("uuid", "_seeded")

    def __init__(self, namespace: uuid.UUID | str) -> None:
        self.uuid = namespace if isinstance(namespace, uuid.UUID) else uuid.UUID(namespace)
        self._seeded = hashlib.sha1(self.uuid.bytes, usedforsecurity=False)

    def id(self, name: str) -> str:
        """``str(uuid.uuid5(namespace, name))``."""
        digest = self._seeded.copy()
        digest.update(name.encode("utf-8"))
        h = digest.hexdigest()
        # Version 5 in the high nibble of byte 6, the RFC 4122 variant in the top bits of byte 8.
        return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"
