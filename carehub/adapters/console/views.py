"""Console pages: sign-in, message search, message detail, dashboard, dead-letter replay.

Server-rendered with Jinja2 (autoescaped), plain HTML forms and no script:
every page works in any browser, nothing is fetched from a CDN. Reads go
through the journal; the one write (replay) goes through the same replay path
as ``POST /admin/dlq/replay`` (adapters.dlqapi), so the send-time consent gate
decides again. PHI views and actions are recorded as FHIR AuditEvents with
the principal (journal.security).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from carehub.adapters.console.sessions import SessionStore, set_cookie
from carehub.adapters.dlqapi import Republish, replay_dead_letters
from carehub.adapters.fhirhttp import UnauthenticatedError
from carehub.adapters.httpauth.tokens import TokenVerifier
from carehub.core.clock import iso
from carehub.core.errors import CarehubError
from carehub.core.principal import OPS_READ, PHI_READ, Principal
from carehub.journal import Journal
from carehub.journal.messages import STATUSES, MessageQuery, MessageRow
from carehub.mappings import convert_text
from carehub.streams.routing.decide import decide
from carehub.streams.routing.source import ReloadingRoutingMap

log = logging.getLogger(__name__)
ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("carehub.adapters.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
#: Dashboard windows a user can pick.
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
Audit = Callable[[dict[str, Any]], Awaitable[None]]
#: The health of every enabled FHIR subscription (rows as ``carehub subscriptions status --json``).
SubscriptionHealth = Callable[[], Awaitable[list[dict[str, object]]]]
#: Records behind per consumer group and topic, as the cluster sees it (rows: group, topic, partitions, behind).
ConsumerLag = Callable[[], Awaitable[list[dict[str, object]]]]


def page_query(q: MessageQuery, page: int) -> str:
    """The search's query string for another page."""
    fields = {"q": q.text, "type": q.message_type, "facility": q.sending_facility, "ack": q.ack_code,
              "status": q.status, "since": q.since, "until": q.until}  # fmt: skip
    return urlencode({**{k: v for k, v in fields.items() if v}, "page": str(page)})


ENV.globals["request_query"] = page_query


@dataclass(frozen=True, slots=True)
class ConsoleDeps:
    journal: Journal
    routing: ReloadingRoutingMap
    republish: Republish
    tokens: TokenVerifier
    sessions: SessionStore
    audit: Audit
    secure_cookies: bool
    subscriptions: SubscriptionHealth | None = None
    lag: ConsumerLag | None = None


def access_event(request: web.Request, who: Principal, code: str, what: str, patient_key: str = "") -> dict[str, Any]:
    """A FHIR AuditEvent for a console read of PHI (DCM 110110) or an action (DCM 110100), with the principal."""
    read = code == "phi-view"
    entity: list[dict[str, Any]] = [
        {
            "what": {"display": f"{request.method} {request.match_info.route.resource.canonical}"},  # type: ignore[union-attr]
            "detail": [
                {"type": "http-status", "valueString": "200"},
                {"type": "code", "valueString": code},
                {"type": "target", "valueString": what},
            ],
        }
    ]
    if patient_key:
        entity.append({"what": {"identifier": {"system": "urn:carehub:patient-key", "value": patient_key}}})
    return {
        "resourceType": "AuditEvent",
        "id": uuid.uuid4().hex,
        "type": {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110110" if read else "110100",
            "display": "Patient Record" if read else "Application Activity",
        },
        "action": "R" if read else "E",
        "recorded": iso(datetime.now(UTC)),
        "outcome": "0",
        "agent": [
            {
                "requestor": True,
                "who": {"identifier": {"system": who.issuer, "value": who.subject}},
                "type": {"text": who.kind},
                "network": {"address": request.remote or "", "type": "2"},
            }
        ],
        "source": {"observer": {"display": "carehub console"}},
        "entity": entity,
    }


def throughput_svg(times: list[str], since: datetime, until: datetime, buckets: int = 24) -> str:
    """Messages received per time bucket as an inline SVG bar chart (no script, no external asset)."""
    span = max((until - since).total_seconds(), 1.0)
    counts = [0] * buckets
    for text in times:
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        index = int((at - since).total_seconds() / span * buckets)
        counts[min(max(index, 0), buckets - 1)] += 1
    width, height, top = 480, 120, max(counts) or 1
    bar = width / buckets
    bars = "".join(
        f'<rect x="{i * bar + 1:.1f}" y="{height - c / top * (height - 14):.1f}" width="{bar - 2:.1f}" '
        f'height="{c / top * (height - 14):.1f}" fill="#2b6cb0"><title>{c}</title></rect>'
        for i, c in enumerate(counts)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 16}" role="img" '
        f'aria-label="messages received over time" id="throughput">{bars}'
        f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#555"/>'
        f'<text x="0" y="{height + 14}" font-size="11">{iso(since)}</text>'
        f'<text x="{width}" y="{height + 14}" font-size="11" text-anchor="end">peak {top}/bucket</text></svg>'
    )


def latency_svg(points: list[tuple[str, float]], since: datetime, until: datetime, buckets: int = 24) -> str:
    """p50 and p99 seconds (receipt to the recipient's answer) per time bucket, as an inline SVG line chart."""
    span = max((until - since).total_seconds(), 1.0)
    per: list[list[float]] = [[] for _ in range(buckets)]
    for text, seconds in points:
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        per[min(max(int((at - since).total_seconds() / span * buckets), 0), buckets - 1)].append(seconds)
    width, height = 480, 120
    p50 = [float(percentile(v, 0.50)) if v else None for v in per]
    p99 = [float(percentile(v, 0.99)) if v else None for v in per]
    top = max([v for v in p99 if v is not None], default=0.0) or 1.0
    step = width / buckets

    def line(values: list[float | None], colour: str, name: str) -> str:
        xy = [f"{(i + 0.5) * step:.1f},{height - v / top * (height - 14):.1f}" for i, v in enumerate(values)
              if v is not None]  # fmt: skip
        dots = "".join(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2" fill="{colour}"/>' for p in xy)
        return f'<polyline points="{" ".join(xy)}" fill="none" stroke="{colour}" id="{name}"/>{dots}'

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 16}" role="img" '
        f'aria-label="delivery latency over time" id="latency">'
        f"{line(p50, '#2b6cb0', 'p50')}{line(p99, '#c53030', 'p99')}"
        f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#555"/>'
        f'<text x="0" y="{height + 14}" font-size="11">{iso(since)}; blue p50, red p99</text>'
        f'<text x="{width}" y="{height + 14}" font-size="11" text-anchor="end">top {top:.3f} s</text></svg>'
    )


def see_other(location: str) -> web.Response:
    """303 to ``location`` (after a form POST, and to the sign-in page)."""
    return web.Response(status=303, headers={"Location": location})


def _render(request: web.Request, deps: ConsoleDeps, template: str, **context: Any) -> web.Response:
    session = deps.sessions.of(request)
    who = session.principal if session is not None else None
    html = ENV.get_template(template).render(
        who=who, csrf=session.csrf if session is not None else "", phi=bool(who and who.has(PHI_READ)), **context
    )
    response = web.Response(text=html, content_type="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


def _principal(request: web.Request) -> Principal:
    from carehub.adapters.httpauth.middleware import principal_of

    who = principal_of(request)
    assert who is not None, "the access check runs first"
    return who


def message_query(params: Any) -> MessageQuery:
    page = str(params.get("page", "1"))
    return MessageQuery(
        text=str(params.get("q", "")).strip(),
        message_type=str(params.get("type", "")).strip(),
        sending_facility=str(params.get("facility", "")).strip(),
        ack_code=str(params.get("ack", "")).strip(),
        status=str(params.get("status", "")).strip(),
        since=str(params.get("since", "")).strip(),
        until=str(params.get("until", "")).strip(),
        page=int(page) if page.isdigit() else 1,
    )


def _routing(deps: ConsoleDeps, raw: str) -> dict[str, Any] | None:
    """``routes explain`` for this message under the current map (ids, codes and reasons, no PHI)."""
    from carehub.commands.routes import describe  # the CLI's one rendering of a decision (imported late: cycle)

    try:
        event = convert_text(raw, validate=False).event
    except Exception:  # a message that does not convert: normalize dead-lettered it with its reason
        return None
    return describe(event, decide(event, deps.routing.current(), frozenset()))


def became(raw: str) -> tuple[str, str, str]:
    """The CareEvent (without its bundle and copy of the HL7) and the FHIR bundle ``raw`` converts to now,
    as indented JSON, or why it does not convert (PHI: only for the raw view)."""
    try:
        conversion = convert_text(raw, validate=False)
    except CarehubError as exc:
        return "", "", exc.message
    except Exception as exc:  # the stream dead-lettered it; the console still shows the receipt
        return "", "", type(exc).__name__
    event = {k: v for k, v in conversion.event.to_dict().items() if k not in ("bundle", "source_hl7")}
    dump = functools.partial(json.dumps, indent=2, ensure_ascii=False)
    return dump(event), dump(conversion.bundle), ""


def _detail(journal: Journal, row: MessageRow) -> dict[str, Any]:
    """Deliveries, attempts, dead letters, consent decisions and tasks of one message (journal reads)."""
    db = journal.db
    outcomes = db.query(
        "SELECT delivery_id, recipient_id, action, status, attempts, reason, http_status, finished_at"
        " FROM delivery_outcomes WHERE event_id = ? ORDER BY finished_at",
        (row.event_id,),
    ) if row.event_id else []  # fmt: skip
    keys = ("delivery_id", "recipient_id", "action", "status", "attempts", "reason", "http_status", "finished_at")
    deliveries = []
    for values in outcomes:
        delivery = dict(zip(keys, values, strict=True))
        attempts = journal.attempts(delivery["delivery_id"])
        for before, after in zip(attempts, attempts[1:], strict=False):
            after["gap_s"] = _seconds(before["at"], after["at"])
        delivery["attempt_rows"] = attempts
        parked = db.query(
            "SELECT error_code, reason, state, parked_at FROM dead_letters WHERE delivery_id = ?",
            (delivery["delivery_id"],),
        )
        names = ("error_code", "reason", "state", "parked_at")
        delivery["dead_letter"] = dict(zip(names, parked[0], strict=True)) if parked else None
        deliveries.append(delivery)
    decisions = [
        {"recipient": a.recipient_id, "action": a.action, "outcome": a.outcome, "rule": a.rule, "reason": a.reason,
         "phase": a.phase, "consent": a.consent_id, "delivery": a.delivery, "recorded": a.recorded,
         "notice": _notice(journal, a.audit_id)}
        for a in (journal.audit.disclosures(row.patient_key) if row.patient_key else []) if a.event_id == row.event_id
    ]  # fmt: skip
    tasks = db.query(
        "SELECT id, recipient_id, status, last_modified FROM tasks WHERE resource LIKE ? ORDER BY last_modified",
        (f"%{row.event_id}%",),
    ) if row.event_id else []  # fmt: skip
    task_keys = ("id", "recipient", "status", "last_modified")
    return {
        "deliveries": deliveries,
        "decisions": decisions,
        "tasks": [dict(zip(task_keys, t, strict=True)) for t in tasks],
    }


def _notice(journal: Journal, audit_id: str) -> str:
    resource = journal.audit.resource(audit_id) or {}
    for entity in resource.get("entity", []):
        for detail in entity.get("detail", []):
            if detail.get("type") == "notice":
                return str(detail.get("valueString", ""))
    return ""


def _seconds(start: str, end: str) -> float:
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return round((b - a).total_seconds(), 3)


def why_not_delivered(routing: dict[str, Any] | None, detail: dict[str, Any]) -> list[str]:
    """One line per thing that did not reach a recipient, with its reason."""
    lines = []
    if routing is not None:
        lines += [f"{u['action']} -> {u['target']}: not resolved: {u['reason']} [rule {u['rule']}]"
                  for u in routing["unresolved"]]  # fmt: skip
        lines += [f"{n['action']} -> {n['recipient']}: not applied: {n['reason']} [rule {n['rule']}]"
                  for n in routing["not_applied"]]  # fmt: skip
    lines += [f"{d['action']} -> {d['recipient']}: consent denied ({d['phase']}): {d['reason']}"
              for d in detail["decisions"] if d["outcome"] == "deny"]  # fmt: skip
    for d in detail["deliveries"]:
        if d["dead_letter"] is not None and d["dead_letter"]["state"] == "parked":
            dl = d["dead_letter"]
            lines.append(f"{d['action']} -> {d['recipient_id']}: dead-lettered {dl['error_code']}: {dl['reason']}")
        elif d["status"] not in ("delivered",):
            lines.append(f"{d['action']} -> {d['recipient_id']}: {d['status']}: {d['reason']}")
    return lines


def percentile(values: list[float], share: float) -> str:
    """The nearest-rank percentile, in seconds as text ("-" without values)."""
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]:.3f}"


def delivered_latencies(journal: Journal, since: str) -> list[tuple[str, str, float]]:
    """(recipient, delivered at, seconds from receipt in the message journal) of deliveries since ``since``."""
    rows = journal.db.query(
        "SELECT o.recipient_id, m.received_at, o.finished_at FROM delivery_outcomes o"
        " JOIN messages m ON m.event_id = o.event_id WHERE o.status = 'delivered' AND o.finished_at >= ?",
        (since,),
    )
    return [(str(r), str(finished), _seconds(str(received), str(finished))) for r, received, finished in rows]


def delivery_latencies(journal: Journal, since: str) -> dict[str, list[float]]:
    """Seconds from receipt (the message journal) to delivery (the outcome), per recipient."""
    found: dict[str, list[float]] = {}
    for recipient, _, seconds in delivered_latencies(journal, since):
        found.setdefault(recipient, []).append(seconds)
    return found


def dashboard_data(journal: Journal, since: str) -> dict[str, Any]:
    db = journal.db
    per_recipient: dict[str, dict[str, Any]] = {}
    for recipient, status, count, worst in db.query(
        "SELECT recipient_id, status, COUNT(*), MAX(attempts) FROM delivery_outcomes WHERE finished_at >= ?"
        " GROUP BY recipient_id, status",
        (since,),
    ):
        entry = per_recipient.setdefault(str(recipient), {"counts": {}, "total": 0, "max_attempts": 0})
        entry["counts"][str(status)] = int(count)
        entry["total"] += int(count)
        entry["max_attempts"] = max(entry["max_attempts"], int(worst or 0))
    for recipient, latencies in delivery_latencies(journal, since).items():
        entry = per_recipient.setdefault(recipient, {"counts": {}, "total": 0, "max_attempts": 0})
        entry["p50_s"], entry["p99_s"] = percentile(latencies, 0.50), percentile(latencies, 0.99)
    for entry in per_recipient.values():
        bad = entry["counts"].get("failed", 0)
        entry["error_rate"] = f"{bad / entry['total']:.1%}" if entry["total"] else "-"
    per_source: dict[str, dict[str, int]] = {}
    for facility, ack, count in journal.messages.counts(since):
        per_source.setdefault(facility or "(none)", {})[ack] = count
    retrying = db.query(
        "SELECT COUNT(DISTINCT a.delivery_id) FROM delivery_attempts a WHERE NOT EXISTS"
        " (SELECT 1 FROM delivery_outcomes o WHERE o.delivery_id = a.delivery_id)"
    )[0][0]
    parked = db.query("SELECT recipient_id, COUNT(*) FROM dead_letters WHERE state = 'parked' GROUP BY recipient_id")
    return {
        "per_recipient": per_recipient,
        "per_source": per_source,
        "retry_backlog": int(retrying) + journal.queued_count(),
        "dlq_size": sum(int(c) for _, c in parked),
        "dlq_by_recipient": {str(r): int(c) for r, c in parked},
        "dead_letters": [row.summary() for row in journal.dead_letters("parked")],
    }


def console_routes(deps: ConsoleDeps) -> list[web.RouteDef]:
    journal = deps.journal

    async def signin_page(request: web.Request) -> web.Response:
        return _render(request, deps, "signin.html", error="")

    async def signin(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token = str(form.get("token", "")).strip()
        try:
            who = await deps.tokens.verify(token)
        except (UnauthenticatedError, CarehubError) as exc:
            log.warning("console sign-in refused: %s", type(exc).__name__)
            response = _render(request, deps, "signin.html", error="the token was not accepted")
            response.set_status(401)
            return response
        if not who.has(OPS_READ):
            response = _render(request, deps, "signin.html", error=f"the token lacks scope {OPS_READ}")
            response.set_status(403)
            return response
        sid, _ = deps.sessions.create(who)
        response = see_other("/console")
        set_cookie(response, sid, secure=deps.secure_cookies, max_age=deps.sessions.lifetime_s)
        log.info("console sign-in: %s/%s", who.issuer, who.subject)
        return response

    async def signout(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if deps.sessions.csrf_ok(request, str(form.get("csrf", ""))):
            deps.sessions.end(request)
        response = see_other("/console/signin")
        response.del_cookie("carehub_console", path="/console")
        return response

    async def dashboard(request: web.Request) -> web.Response:
        window = request.query.get("window", "24h")
        span = WINDOWS.get(window, WINDOWS["24h"])
        until = datetime.now(UTC)
        since = until - span
        data = await journal.db.run(dashboard_data, journal, iso(since))
        times = await journal.db.run(journal.messages.received_times, iso(since))
        chart = throughput_svg(times, since, until)
        latencies = await journal.db.run(delivered_latencies, journal, iso(since))
        latency_chart = latency_svg([(at, seconds) for _, at, seconds in latencies], since, until)
        subscriptions, subscriptions_error = [], ""
        if deps.subscriptions is not None:
            try:
                subscriptions = await deps.subscriptions()
            except CarehubError as exc:
                subscriptions_error = exc.message
        lag, lag_error = [], ""
        if deps.lag is not None:
            try:
                lag = await deps.lag()
            except CarehubError as exc:
                lag_error = exc.message
        error = deps.routing.last_error
        paused = await journal.db.run(journal.pauses.paused)
        directory = sorted(deps.routing.current().recipients)
        return _render(request, deps, "dashboard.html", window=window, windows=list(WINDOWS), chart=chart,
                       latency_chart=latency_chart, subscriptions=subscriptions,
                       subscriptions_error=subscriptions_error, lag=lag, lag_error=lag_error,
                       received=len(times), map_version=deps.routing.current().version, paused=paused,
                       directory=directory,
                       map_error=error.message if error is not None else "", **data)  # fmt: skip

    async def messages(request: web.Request) -> web.Response:
        q = message_query(request.query)
        rows, more = await journal.db.run(journal.messages.search, q)
        return _render(request, deps, "messages.html", q=q, rows=rows, more=more, statuses=STATUSES,
                       searched=bool(request.query))  # fmt: skip

    async def detail(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        row = await journal.db.run(journal.messages.get, ref)
        if row is None:
            response = _render(request, deps, "missing.html", ref=ref)
            response.set_status(404)
            return response
        raw = await journal.db.run(journal.messages.raw, ref) if row.source == "mllp" else ""
        routing = _routing(deps, raw) if raw and not row.error_code else None  # a refused message was never routed
        data = await journal.db.run(_detail, journal, row)
        why = ([f"refused at receipt: answered {row.ack_code} ({row.error_code}): {row.reason}"] if row.error_code
               else why_not_delivered(routing, data))  # fmt: skip
        return _render(request, deps, "detail.html", m=row, routing=routing, why=why, **data)

    async def raw_view(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        row = await journal.db.run(journal.messages.get, ref)
        if row is None:
            raise web.HTTPNotFound(text="no such message")
        who = _principal(request)
        await deps.audit(access_event(request, who, "phi-view", ref, row.patient_key))  # audited before it is shown
        raw = await journal.db.run(journal.messages.raw, ref)
        convertible = row.source == "mllp" and not row.error_code
        event, bundle, problem = await asyncio.to_thread(became, raw) if convertible else ("", "", "")
        return _render(request, deps, "raw.html", m=row, raw=raw.replace("\r", "\n"), event=event, bundle=bundle,
                       problem=problem)  # fmt: skip

    async def replay(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if not deps.sessions.csrf_ok(request, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="the form's CSRF token is missing or stale; reload the page")
        ids = [str(v) for v in form.getall("delivery_id", [])]
        who = _principal(request)
        recipient = str(form.get("recipient", ""))
        target = ",".join(ids) if ids else "all"
        if recipient:  # one recipient's dead letters, as they are parked now
            parked = await journal.db.run(journal.dead_letters, "parked")
            ids = [row.delivery_id for row in parked if row.recipient_id == recipient]
            target = f"recipient {recipient}"
        wanted = None if form.get("all") == "1" and not recipient else ids
        if wanted == []:
            raise web.HTTPBadRequest(text="choose a dead letter to replay" if not recipient else
                                     f"no dead letters of {recipient} are parked")  # fmt: skip
        await deps.audit(access_event(request, who, "dlq-replay", target))
        result = await replay_dead_letters(journal, deps.republish, wanted)
        log.info("console replay by %s/%s: %d replayed, %d failed", who.issuer, who.subject,
                 len(result["replayed"]), len(result["failed"]))  # fmt: skip
        return see_other(f"/console?replayed={len(result['replayed'])}&failed={len(result['failed'])}")

    async def reload_routing(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if not deps.sessions.csrf_ok(request, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="the form's CSRF token is missing or stale; reload the page")
        who = _principal(request)
        before = deps.routing.current().version
        changed = deps.routing.reload_if_changed()
        after = deps.routing.current().version
        await deps.audit(access_event(request, who, "routing-reload", f"{before} -> {after}"))
        log.info("console routing reload by %s/%s: %s -> %s", who.issuer, who.subject, before, after)
        state = "rejected" if deps.routing.last_error is not None else ("reloaded" if changed else "unchanged")
        return see_other(f"/console?routing={state}")

    async def pause_or_resume(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if not deps.sessions.csrf_ok(request, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="the form's CSRF token is missing or stale; reload the page")
        recipient, action = request.match_info["id"], request.match_info["action"]
        if recipient not in deps.routing.current().recipients or action not in ("pause", "resume"):
            raise web.HTTPNotFound(text="no such recipient or action")
        who = _principal(request)
        await deps.audit(access_event(request, who, f"recipient-{action}", recipient))
        if action == "pause":
            await journal.db.run(journal.pauses.pause, recipient, f"{who.issuer}/{who.subject}")
        else:
            await journal.db.run(journal.pauses.resume, recipient)
        log.info("console: recipient %s %sd by %s/%s", recipient, action, who.issuer, who.subject)
        return see_other(f"/console?{action}d={recipient}")

    return [
        web.post("/console/recipients/{id}/{action}", pause_or_resume),
        web.post("/console/routing/reload", reload_routing),
        web.get("/console/signin", signin_page),
        web.post("/console/signin", signin),
        web.post("/console/signout", signout),
        web.get("/console", dashboard),
        web.get("/console/messages", messages),
        web.get("/console/messages/{ref}", detail),
        web.get("/console/messages/{ref}/raw", raw_view),
        web.post("/console/dlq/replay", replay),
    ]


@web.middleware
async def signin_redirect(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A browser without a session asking for a console page is sent to the sign-in page, not a 401 body."""
    response = await handler(request)
    if response.status == 401 and request.method in ("GET", "HEAD") and request.path.startswith("/console"):
        return see_other("/console/signin")
    return response
