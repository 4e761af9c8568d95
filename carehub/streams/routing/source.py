"""The current routing map, reloaded when its files change (routes, directory, rosters).

With ``watch_files`` off (``routing.watch: false``) an edit is loaded only by an
explicit reload: ``carehub routes apply`` (which touches the apply stamp the
watcher polls instead) or ``reload_if_changed`` (the console's reload).

A reload that fails validation keeps the previous map in force and records
the error; in-flight events are never lost because a map swap is a single
reference assignment between events.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from carehub.core.clock import now_iso
from carehub.core.errors import ConfigError
from carehub.streams.routing.apply import APPLIED_STAMP
from carehub.streams.routing.load import check_config_dir, load_routing_map, watched_files
from carehub.streams.routing.model import RoutingMap


@dataclass(frozen=True, slots=True)
class RejectedReload:
    """The last reload that failed validation: when, the version kept, and every problem (file:line: message)."""

    at: str
    kept_version: str
    errors: tuple[str, ...]


log = logging.getLogger(__name__)


class ReloadingRoutingMap:
    def __init__(self, config_dir: Path, watch_files: bool = True) -> None:
        self._dir = config_dir
        self.watch_files = watch_files
        self._applied = self._applied_stamp()
        self._map = load_routing_map(config_dir)
        self._stamp = self._mtimes()
        self.last_error: ConfigError | None = None
        #: Kept after later successful reloads (``last_error`` is cleared by them): GET /admin/config shows it.
        self.last_rejected: RejectedReload | None = None
        self.loaded_at = now_iso()

    def _mtimes(self) -> tuple[tuple[str, int], ...]:
        """Name and mtime of every file the map is built from (rosters appear and vanish too)."""
        stamps = []
        for path in watched_files(self._dir):
            try:
                stamps.append((path.name, path.stat().st_mtime_ns))
            except OSError:
                stamps.append((path.name, 0))
        return tuple(stamps)

    def _applied_stamp(self) -> int:
        try:
            return (self._dir / APPLIED_STAMP).stat().st_mtime_ns
        except OSError:
            return 0

    def current(self) -> RoutingMap:
        return self._map

    def secret_for(self, recipient_id: str) -> str | None:
        recipient = self._map.recipients.get(recipient_id)
        return recipient.secret if recipient else None

    def reload_if_changed(self) -> bool:
        """Reload when the files changed; True when a new map took effect."""
        stamp = self._mtimes()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            fresh = load_routing_map(self._dir)
        except ConfigError as exc:
            self.last_error = exc
            errors = tuple(str(p) for p in check_config_dir(self._dir)) or (str(exc),)
            self.last_rejected = RejectedReload(now_iso(), self._map.version, errors)
            log.error("routing map reload rejected, keeping version %s: %s", self._map.version, exc)
            return False
        self.last_error = None
        self.loaded_at = now_iso()
        if fresh.version != self._map.version:
            log.info("routing map version %s replaces %s", fresh.version, self._map.version)
        self._map = fresh
        return True

    def applied_since(self) -> bool:
        """True once when ``carehub routes apply`` installed a map since the last look."""
        stamp = self._applied_stamp()
        if stamp == self._applied:
            return False
        self._applied = stamp
        return True

    async def watch(self, interval_s: float = 1.0) -> None:
        """Poll: every file when ``watch_files``, else only the apply stamp."""
        while True:
            await asyncio.sleep(interval_s)
            if self.applied_since() or self.watch_files:
                self.reload_if_changed()
