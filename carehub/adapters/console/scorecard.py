"""The console's scorecard page: every measure of a period with a bar chart, per stratum, and the worklists.

``GET /console/scorecard?from=2026-11-01&to=2026-11-30&by=facility``: the rates as inline SVG bars
(no script), durations as median and p90, the chosen stratifier's rows, then today's gaps per
recipient (carehub.scorecard.worklists) with the patient, event, Task, LACE index and next step.
Patient keys are shown to principals with ``carehub/phi.read``; others see the gap without them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from carehub.adapters.console.views import ConsoleDeps, _render
from carehub.adapters.httpauth import principal_of
from carehub.core.clock import now
from carehub.core.errors import ConfigError
from carehub.core.principal import PHI_READ
from carehub.scorecard.compute import Calculator, Period, Result, compute_all, parse_period
from carehub.scorecard.definitions import load_measures
from carehub.scorecard.render import result_dict
from carehub.scorecard.worklists import LISTS, TITLES, Gap, worklists

STRATIFIERS = ("facility", "payer", "recipient", "service")


def rates_svg(results: list[Result]) -> str:
    """One horizontal bar per proportion measure (0-100 %), labelled; inline SVG, no external asset."""
    rows = [r for r in results if r.measure.type == "proportion"]
    width, bar_h, label_w = 640, 18, 260
    height = len(rows) * (bar_h + 6) + 4
    parts = []
    for i, r in enumerate(rows):
        y = i * (bar_h + 6) + 2
        rate = r.summary.rate
        length = 0.0 if rate is None else rate * (width - label_w - 60)
        color = "#2b6cb0" if r.measure.improvement == "increase" else "#c05621"
        shown = "-" if rate is None else f"{100 * rate:.0f}% ({r.summary.numerator}/{r.summary.denominator})"
        parts.append(
            f'<text x="0" y="{y + 13}" font-size="12">{r.measure.id}</text>'
            f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar_h}" fill="{color}">'
            f"<title>{r.measure.title}: {shown}</title></rect>"
            f'<text x="{label_w + length + 4:.1f}" y="{y + 13}" font-size="12">{shown}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="measure rates" id="rates-chart">{"".join(parts)}</svg>'
    )


def _period(query: Any) -> Period:
    end = str(query.get("to", "")) or now().date().isoformat()
    start = str(query.get("from", "")) or (parse_period(end, end).end - timedelta(days=30)).isoformat()
    return parse_period(start, end)


def scorecard_routes(deps: ConsoleDeps, config_dir: Path | None) -> list[web.RouteDef]:
    journal = deps.journal

    def kinds() -> dict[str, str]:
        return {r.id: r.kind for r in deps.routing.current().recipients.values()}

    async def page(request: web.Request) -> web.Response:
        by = request.query.get("by", "")
        by = by if by in STRATIFIERS else ""
        try:
            period = _period(request.query)
            measures = load_measures(config_dir)
        except (ValueError, ConfigError) as exc:
            response = _render(request, deps, "scorecard.html", error=str(exc), period=None, results=[], rows=[],
                               chart="", by=by, stratifiers=STRATIFIERS, lists={}, titles=TITLES,
                               patients=False)  # fmt: skip
            response.set_status(400)
            return response
        results = await journal.db.run(compute_all, Calculator(journal.db, kinds()), measures, period)
        days = max(1, (now().date() - period.start).days + 1)  # the gaps of events since the period began
        gaps: list[Gap] = await journal.db.run(lambda: worklists(journal.db, kinds(), days=days))
        lists: dict[str, dict[str, list[Gap]]] = {name: {} for name in LISTS}
        for gap in gaps:
            lists[gap.list].setdefault(gap.recipient, []).append(gap)
        rows = [result_dict(r) for r in results]
        chart = rates_svg(results)
        who = principal_of(request)  # a session's principal or a token's
        patients = who is not None and who.has(PHI_READ)
        return _render(request, deps, "scorecard.html", error="", period=period, results=results, rows=rows,
                       chart=chart, by=by, stratifiers=STRATIFIERS, lists=lists, titles=TITLES,
                       patients=patients)  # fmt: skip

    return [web.get("/console/scorecard", page)]
