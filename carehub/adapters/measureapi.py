"""``GET /fhir/MeasureReport?measure=…&period=…&reportType=…``: the scorecard as DEQM-shaped MeasureReports.

* ``measure``: one or more measure ids (comma-separated or repeated; default every measure);
* ``period``: ``2026-11-01/2026-11-30`` or FHIR date search ``period=ge2026-11-01&period=le2026-11-30``
  (default: the 30 days to today);
* ``reportType``: ``summary`` (default) or ``subject-list`` (the patients in each population).

The answer is a searchset Bundle of MeasureReports (carehub.scorecard.measurereport). Callers need
``carehub/ops.read`` (adapters.httpauth.rules); a subject-list names patients, so it also needs
``carehub/phi.read`` (403 otherwise). Bad parameters get 400 with an OperationOutcome naming them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from carehub.adapters.fhirhttp import ForbiddenError, error_response, fhir_response, refused
from carehub.adapters.httpauth import principal_of, refusal
from carehub.core.clock import now
from carehub.core.errors import ConfigError
from carehub.core.principal import PHI_READ
from carehub.journal import Journal
from carehub.scorecard.compute import Calculator, Period, compute_all, parse_period
from carehub.scorecard.definitions import Measure, load_measures
from carehub.scorecard.measurereport import REPORT_TYPES, measure_report, searchset


def period_param(values: list[str]) -> Period:
    """The ``period`` parameter(s) as a Period; ValueError saying what is expected."""
    if not values:
        today = now().date()
        return Period(today - timedelta(days=30), today)
    if len(values) == 1 and "/" in values[0]:
        start, _, end = values[0].partition("/")
        return parse_period(start.strip(), end.strip())
    bounds = {v[:2]: v[2:] for v in values if v[:2] in ("ge", "le")}
    if len(bounds) != 2 or len(values) != 2:
        raise ValueError("period must be START/END (2026-11-01/2026-11-30) or period=geSTART&period=leEND")
    return parse_period(bounds["ge"], bounds["le"])


def chosen(measures: list[Measure], values: list[str]) -> list[Measure]:
    wanted = [v.strip() for value in values for v in value.split(",") if v.strip()]
    if not wanted:
        return measures
    known = {m.id: m for m in measures}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(f"no measure {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[w] for w in dict.fromkeys(wanted)]


def measure_routes(
    journal: Journal, kinds: Callable[[], dict[str, str]], config_dir: Path | None, base_url: str, reporter: str
) -> list[web.RouteDef]:
    async def search(request: web.Request) -> web.Response:
        report_type = request.query.get("reportType", "summary")
        if report_type not in REPORT_TYPES:
            return refused(400, "invalid", f"reportType must be one of {', '.join(REPORT_TYPES)}")
        who = principal_of(request)
        if report_type == "subject-list" and (who is None or not who.has(PHI_READ)):
            return refusal(ForbiddenError(f"a subject-list names patients: it needs {PHI_READ}"), scope=PHI_READ)
        try:
            period = period_param(request.query.getall("period", []))
            defined = load_measures(config_dir)
            measures = chosen(defined, request.query.getall("measure", []))
        except ValueError as exc:
            return refused(400, "invalid", str(exc))
        except ConfigError as exc:
            return error_response(exc)
        try:
            calculator = Calculator(journal.db, kinds())
            results = await journal.db.run(compute_all, calculator, measures, period)
        except Exception as exc:  # noqa: BLE001 - every failure answers as an OperationOutcome
            return error_response(exc)
        reports = [measure_report(r, base_url=base_url, reporter=reporter, report_type=report_type) for r in results]
        return fhir_response(searchset(reports, base_url))

    return [web.get("/fhir/MeasureReport", search)]
