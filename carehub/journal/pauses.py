"""Recipients paused by hand (the console's pause/resume): their deliveries wait, as behind an open circuit.

Durable in the journal so every stream worker honours it and a restart keeps
it; workers read it at most once a second (streams.delivery_flow).
"""

from __future__ import annotations

from carehub.core.clock import now_iso
from carehub.journal.db import Database

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS recipient_pauses (
        recipient_id TEXT PRIMARY KEY, paused_by TEXT NOT NULL, paused_at TEXT NOT NULL)""",
]


class PauseStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def pause(self, recipient_id: str, by: str) -> None:
        self.db.execute(
            "INSERT INTO recipient_pauses (recipient_id, paused_by, paused_at) VALUES (?, ?, ?)"
            " ON CONFLICT (recipient_id) DO NOTHING",
            (recipient_id, by, now_iso()),
        )

    def resume(self, recipient_id: str) -> bool:
        return self.db.execute("DELETE FROM recipient_pauses WHERE recipient_id = ?", (recipient_id,)) > 0

    def paused(self) -> dict[str, tuple[str, str]]:
        """Recipient id -> (who paused it, when)."""
        rows = self.db.query("SELECT recipient_id, paused_by, paused_at FROM recipient_pauses")
        return {str(r): (str(b), str(a)) for r, b, a in rows}
