"""The demo's closing scorecard: the chosen measures over the days its feed covers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from carehub.journal import open_journal
from carehub.scorecard.compute import Calculator, compute_all, parse_period
from carehub.scorecard.definitions import load_measures
from carehub.scorecard.kinds import recipient_kinds
from carehub.scorecard.render import line_of, summary_dict


def demo_scorecard(url: str, config_dir: Path, wanted: Sequence[str]) -> tuple[str, list[dict[str, Any]]]:
    """(period, one row per measure: id, numerator, denominator, rate, line) of the journal's own events."""
    journal = open_journal(url)
    try:
        first, last = journal.db.query("SELECT MIN(occurred_at), MAX(occurred_at) FROM care_facts")[0]
        if not first:
            return "", []
        period = parse_period(str(first), str(last))
        measures = [m for m in load_measures(config_dir) if m.id in wanted]
        results = compute_all(Calculator(journal.db, recipient_kinds(config_dir)), measures, period)
    finally:
        journal.close()
    rows = [{"id": r.measure.id, **summary_dict(r, r.summary), "line": line_of(r.measure.id, r, r.summary)}
            for r in results]  # fmt: skip
    return period.text(), rows
