"""The journal: delivery attempts and outcomes, dead letters, task status changes.

SQLite by default (``sqlite:///carehub.db``), PostgreSQL when the database URL
is ``postgresql://…``. One SQL interface for both (journal.store.Journal).
"""

from carehub.journal.store import Journal, open_journal

__all__ = ["Journal", "open_journal"]
