"""``carehub demo``: the embedded broker, the hub and two demo recipients, one command.

Plays every ``*.hl7`` file of a feed directory over MLLP, waits until the
pipeline is idle, and reports what was acknowledged and what reached whom.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from carehub.adapters.hl7.charset import decode
from carehub.adapters.hl7.header import read_header
from carehub.adapters.hl7.tokenizer import parse_message
from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core import heap
from carehub.core.clock import set_clock, travel_to
from carehub.core.defaults import shipped
from carehub.core.errors import DeliveryError, UnreadableMessageError
from carehub.core.metrics import Metrics
from carehub.core.settings import HTTPSettings, Settings, load_settings
from carehub.demo_logistics import connect, demo_vendors, logistics_lines, orders_summary, wait_orders
from carehub.demo_receivers import DemoRecipient
from carehub.demo_signin import demo_signin
from carehub.hub import EXIT_NOT_DRAINED, Hub
from carehub.journal import open_journal
from carehub.mappings.batch import read_messages
from carehub.mappings.transforms.datetimes import to_datetime
from carehub.scorecard.demo import demo_scorecard
from carehub.streams.packet.document import packet_of
from carehub.streams.routing.load import RECIPIENTS_FILE, load_routing_map

DEFAULT_FEED = shipped("demo") / "feed"
DEFAULT_CONFIG = shipped("config")
DEFAULT_CONSENTS = shipped("demo") / "consents"
#: Relative to the working directory (``make demo``: the checkout), so an installed carehub writes where it runs.
DEMO_JOURNAL = Path("var") / "demo" / "journal.db"
#: The measures the demo's closing scorecard shows (carehub scorecard shows them all).
DEMO_MEASURES = (
    "trc-admission-notification", "trc-discharge-information", "trc-patient-engagement",
    "trc-medication-reconciliation", "pcr-readmission-30d", "follow-up-7d-after-discharge",
    "follow-up-7d-after-ed", "service-completion", "notification-latency",
)  # fmt: skip
BeforeSend = Callable[[bytes, "DemoReport"], Awaitable[None]]


@dataclass
class SentMessage:
    file: str
    control_id: str
    message_type: str
    ack: str


@dataclass
class DemoReport:
    sent: int = 0
    acked: dict[str, int] = field(default_factory=lambda: {"AA": 0, "AE": 0, "AR": 0})
    normalized: int = 0
    routed: int = 0
    delivered: int = 0
    failed: int = 0
    per_recipient: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    #: The closing scorecard of the run's own traffic: period and one line per measure.
    scorecard_period: str = ""
    scorecard: list[dict[str, Any]] = field(default_factory=list)
    #: Discharge logistics orders of the run, each with its offer cascade (carehub.demo_logistics).
    logistics: list[dict[str, Any]] = field(default_factory=list)
    messages: list[SentMessage] = field(default_factory=list)
    idle: bool = True
    map_version: str = ""
    consents: list[str] = field(default_factory=list)
    disclosed_with_consent: int = 0
    suppressed: list[dict[str, str]] = field(default_factory=list)
    journal: str = ""
    #: Deliveries whose X-Carehub-Signature the demo recipients verified (secrets generated for this run).
    signatures_verified: int = 0
    #: Cancels in the feed (A11, A12, A13), as files.
    cancels: list[str] = field(default_factory=list)
    #: Notifications of a cancel the recipients received, and Task updates ``status=cancelled`` they received.
    cancel_notices: int = 0
    tasks_cancelled: int = 0
    #: Transition-of-care packets received (docs/packet.md), per recipient; CarePlans revoked by a cancel.
    packets: dict[str, int] = field(default_factory=dict)
    careplans_revoked: int = 0
    #: The sections of the first packet the PCP received: title -> entries, or the reason it is empty.
    packet_sections: dict[str, str] = field(default_factory=dict)
    #: The operations console of this run and a token to sign in with (docs/console.md).
    console_url: str = ""
    console_token: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def endpoint_variable(recipient_id: str) -> str:
    """The environment variable the demo sets for a recipient's endpoint."""
    return "CAREHUB_ENDPOINT_" + re.sub(r"[^A-Z0-9]", "_", recipient_id.upper())


def secret_variable(recipient_id: str) -> str:
    """The environment variable holding a webhook recipient's signing secret (config/recipients.yaml)."""
    return "CAREHUB_SECRET_" + re.sub(r"[^A-Z0-9]", "_", recipient_id.upper())


def demo_secrets(config_dir: Path) -> list[str]:
    """Give every webhook recipient of the directory a fresh random signing secret for this run
    (unless the environment already sets one); the committed config holds none."""
    data = yaml.safe_load((config_dir / RECIPIENTS_FILE).read_text(encoding="utf-8")) or {}
    generated = []
    for item in data.get("recipients", []):
        if isinstance(item, dict) and item.get("channel") == "webhook":
            name = secret_variable(str(item.get("id", "")))
            if not os.environ.get(name):
                os.environ[name] = secrets.token_hex(32)
                generated.append(name)
    return generated


def feed_messages(path: Path) -> list[bytes]:
    """The messages of a feed file, encoded as they were read; [] when it holds no HL7."""
    messages, codec = read_messages(path)
    return [(m + "\r").encode(codec) for m in messages if m.startswith("MSH")]


def _header_fields(payload: bytes) -> tuple[str, str]:
    """Control id and MSH-9 of a feed message, for the summary ("" when MSH is unreadable)."""
    try:
        header = read_header(parse_message(decode(payload)[0]))
    except UnreadableMessageError:
        return "", ""
    return header.control_id, "^".join(p for p in (header.message_type, header.trigger_event, header.structure) if p)


def message_time(payload: bytes) -> datetime | None:
    """MSH-7 of a feed message as an aware datetime (None when absent or unreadable)."""
    try:
        text = to_datetime(read_header(parse_message(decode(payload)[0])).timestamp or "")
    except UnreadableMessageError:
        return None
    if not text or len(text) < 16:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def play_feed(feed: Path, port: int, report: DemoReport, before: BeforeSend | None = None) -> None:
    """Send every message of the feed; ``before`` (if given) runs before each send (the demo's timeline)."""
    client = MLLPClient("127.0.0.1", port, timeout_s=30)
    try:
        for path in sorted(feed.glob("*.hl7")):
            try:
                messages = feed_messages(path)
            except OSError:
                messages = []
            if not messages:
                report.unreadable.append(path.name)
                continue
            for payload in messages:
                control, kind = _header_fields(payload)
                if before is not None:
                    await before(payload, report)
                try:
                    code = ack_code(await client.send(payload)) or "none"
                except DeliveryError:
                    code = "none"
                report.sent += 1
                report.acked[code] = report.acked.get(code, 0) + 1
                report.messages.append(SentMessage(path.name, control, kind, code))
    finally:
        await client.close()


def _progress(m: Metrics, accepted: int) -> tuple[bool, tuple[int, ...]]:
    normalized = m.total("normalized")
    handled = normalized + m.get("stage_failed", stage="normalize")
    routed_events = m.total("routed_events") + m.get("stage_failed", stage="route")
    planned = m.total("routed")
    done = sum(m.total(c) for c in ("delivered", "delivery_failed", "delivery_suppressed", "delivery_not_needed"))
    decided, audited = m.total("consent"), m.total("audited")
    settled = handled >= accepted and routed_events >= normalized and done >= planned and audited >= decided
    return settled, (handled, routed_events, planned, done, audited)


async def wait_idle(m: Metrics, accepted: int, timeout_s: float, quiet_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    last: tuple[int, ...] = ()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        settled, counts = _progress(m, accepted)
        if counts != last:
            last, stable_since = counts, time.monotonic()
        elif settled and time.monotonic() - stable_since >= quiet_s:
            return True
        await asyncio.sleep(0.05)
    return False


def demo_settings(config_dir: Path, journal: Path = DEMO_JOURNAL) -> Settings:
    """The config's settings on free ports, with a fresh journal the audit command can read afterwards."""
    settings = load_settings(config_dir)
    mllp = replace(settings.mllp, host="127.0.0.1", port=0)
    journal.parent.mkdir(parents=True, exist_ok=True)
    for stale in journal.parent.glob(journal.name + "*"):
        stale.unlink()
    return replace(settings, mllp=mllp, http=HTTPSettings("127.0.0.1", 0), database_url=f"sqlite:///{journal}")


def console_lines(report: DemoReport, serving: bool) -> list[str]:
    until = "until Ctrl-C" if serving else "while the demo runs; `carehub demo --serve` keeps it up"
    return [
        f"operations console: {report.console_url} ({until})",
        f"  sign in with this token (1 h; ops and PHI scopes; trusted by this demo only): {report.console_token}",
    ]


async def load_consents(hub: Hub, folder: Path, report: DemoReport) -> None:
    """Post every Consent of the demo folder through the hub's consent service."""
    for path in sorted(folder.glob("*.json")):
        stored = await hub.consents.accept(json.loads(path.read_text(encoding="utf-8")), author="carehub demo")
        report.consents.append(str(stored["id"]))


def _audit_summary(report: DemoReport, journal: Path) -> None:
    store = open_journal(f"sqlite:///{journal}")
    try:
        report.suppressed = [
            {"recipient": r.recipient_id, "action": r.action, "patient": r.patient_key, "reason": r.reason}
            for r in store.audit.suppressions()
        ]
    finally:
        store.close()


async def _until_stopped() -> None:
    """Wait for SIGINT or SIGTERM (handled here, so the hub stops within its drain time, not on a
    KeyboardInterrupt raised wherever the loop happened to be)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_demo(
    feed: Path = DEFAULT_FEED,
    config_dir: Path = DEFAULT_CONFIG,
    timeout_s: float = 60.0,
    consents: Path = DEFAULT_CONSENTS,
    serve: bool = False,
) -> DemoReport:
    demo_secrets(config_dir)
    directory = [r for r in load_routing_map(config_dir).recipients.values() if r.channel == "webhook"]
    vendors = demo_vendors([(r.id, r.secret) for r in directory if r.vendor is not None])
    recipients = [DemoRecipient(r.id, r.secret) for r in directory if r.vendor is None] + vendors
    for recipient in recipients:
        await recipient.start()
        os.environ[endpoint_variable(recipient.recipient_id)] = recipient.url
    settings = demo_settings(config_dir)
    signin = demo_signin(DEMO_JOURNAL.parent)
    settings = replace(settings, auth=replace(settings.auth, issuers=(*settings.auth.issuers, signin.issuer)))
    hub = Hub(settings)
    report = DemoReport(console_token=signin.token)
    try:
        await hub.start()
        heap.settle()
        report.console_url = f"http://127.0.0.1:{hub.http_port}/console"
        connect(vendors, f"http://127.0.0.1:{hub.http_port}", signin.recipient_token)
        report.map_version = hub.routing.current().version
        await load_consents(hub, consents, report)

        async def on_its_timeline(payload: bytes, sent: DemoReport) -> None:
            """The feed is replayed on its own timeline: the previous message is finished, then the hub's
            clock reads this one's MSH-7 (so receipts fall where they would have, for the scorecard)."""
            await wait_idle(hub.metrics, sent.acked.get("AA", 0), timeout_s, quiet_s=0.2)
            if await wait_orders(DEMO_JOURNAL, timeout_s):  # a discharge's orders run their cascade on its day
                await wait_idle(hub.metrics, sent.acked.get("AA", 0), timeout_s, quiet_s=0.2)
            moment = message_time(payload)
            if moment is not None:
                travel_to(moment)

        await play_feed(feed, hub.mllp_port, report, before=on_its_timeline)
        report.idle = await wait_idle(hub.metrics, report.acked.get("AA", 0), timeout_s)
        if await wait_orders(DEMO_JOURNAL, timeout_s):  # the vendors answered: the last steps go out
            report.idle = await wait_idle(hub.metrics, report.acked.get("AA", 0), timeout_s, quiet_s=1.2)
        if serve:
            print("\n".join(console_lines(report, serving=True)), flush=True)
            await _until_stopped()  # Ctrl-C or SIGTERM
    finally:
        drained = await hub.stop_within(settings.drain_s)
        set_clock(None)
        for recipient in recipients:
            await recipient.stop()
        if not drained:
            logging.shutdown()
            os._exit(EXIT_NOT_DRAINED)  # the loop's own clean-up would wait for what did not stop
    m = hub.metrics
    report.normalized = m.total("normalized")
    report.routed = m.total("routed")
    report.delivered = m.total("delivered")
    failed_in = m.by_label("stage_failed", "stage")
    report.failed = m.total("delivery_failed") + failed_in.get("normalize", 0) + failed_in.get("route", 0)
    report.per_recipient = {r.recipient_id: len(r.received) for r in recipients}
    report.signatures_verified = sum(1 for r in recipients for got in r.received if got.signature_ok)
    report.cancels = [
        msg.file for msg in report.messages if msg.message_type.split("^")[1:2] in (["A11"], ["A12"], ["A13"])
    ]
    report.cancel_notices = sum(1 for r in recipients for got in r.received if got.event_code in ("A11", "A12", "A13"))
    report.tasks_cancelled = sum(1 for r in recipients for got in r.received if got.event_code == "task-cancelled")
    _packets(report, recipients)
    by_rule = m.by_label("consent", "rule")
    report.disclosed_with_consent = by_rule.get("named-recipient", 0) + by_rule.get("tpo-class", 0)
    report.journal = f"sqlite:///{DEMO_JOURNAL.resolve()}"
    _audit_summary(report, DEMO_JOURNAL)
    report.logistics = orders_summary(DEMO_JOURNAL)
    report.scorecard_period, report.scorecard = demo_scorecard(report.journal, config_dir, DEMO_MEASURES)
    return report


def _packets(report: DemoReport, recipients: list[DemoRecipient]) -> None:
    """What the recipients show of transition-of-care packets: how many, and the PCP's first one by section."""
    report.packets = {
        r.recipient_id: n for r in recipients if (n := sum(g.event_code == "toc-packet" for g in r.received))
    }
    report.careplans_revoked = sum(1 for r in recipients for got in r.received if got.event_code == "careplan-revoked")
    pcp = next((r for r in recipients if r.recipient_id == "pcp-riverside"), None)
    first = next((g for g in pcp.received if g.event_code == "toc-packet"), None) if pcp is not None else None
    document = packet_of(first.bundle) if first is not None else None
    for section in (document or {}).get("entry", [{}])[0].get("resource", {}).get("section", []):
        empty = section.get("emptyReason", {}).get("coding", [{}])[0].get("code", "")
        report.packet_sections[section["title"]] = str(len(section["entry"])) if "entry" in section else empty


def render(report: DemoReport) -> str:
    lines = ["carehub demo", "", f"{'file':<40} {'control id':<12} {'type':<16} ack"]
    for msg in report.messages:
        lines.append(f"{msg.file:<40} {msg.control_id:<12} {msg.message_type:<16} {msg.ack}")
    acks = ", ".join(f"{code} {n}" for code, n in report.acked.items())
    lines += [
        "",
        f"sent {report.sent} messages; ACKs: {acks}",
        f"normalized {report.normalized} care events; routed {report.routed} deliveries (notifications, tasks and "
        f"packets) (routing map {report.map_version}); delivered {report.delivered}; failed {report.failed}",
        "",
        "what reached whom:",
    ]
    lines += [f"  {rid:<24} {count} received" for rid, count in report.per_recipient.items()]
    webhooks = sum(report.per_recipient.values())  # the rest went to the hub's logistics desk (the orders)
    lines.append(f"  webhook signatures verified by the recipients: {report.signatures_verified} of {webhooks} "
                 "(signing secrets generated for this run)")  # fmt: skip
    if report.cancels:
        lines += ["", f"corrections: {', '.join(report.cancels)} cancelled what recipients were told; "
                  f"{report.cancel_notices} cancel notification(s) and {report.tasks_cancelled} Task(s) "
                  "status=cancelled reached the recipients (also cancelled in the journal)"]  # fmt: skip
    if report.packets:
        got = ", ".join(f"{rid} {n}" for rid, n in report.packets.items())
        lines += ["", f"transition-of-care packets (docs/packet.md): {sum(report.packets.values())} received ({got}); "
                  f"{report.careplans_revoked} CarePlan(s) revoked by a cancel"]  # fmt: skip
        if report.packet_sections:
            shown = "; ".join(f"{title} {what}" for title, what in report.packet_sections.items())
            lines.append(f"  the PCP's first packet, entries per section: {shown}")
    lines += ["", f"42 CFR Part 2: consents on file {', '.join(report.consents) or '(none)'}; "
              f"{report.disclosed_with_consent} disclosure(s) under a consent, with the redisclosure notice; "
              f"{len(report.suppressed)} suppressed:"]  # fmt: skip
    lines += [f"  {s['recipient']:<24} {s['action']:<7} {s['patient']:<18} {s['reason']}" for s in report.suppressed]
    if report.suppressed:
        patient = report.suppressed[0]["patient"]
        lines.append(f"  every decision is audited: carehub audit disclosures --patient '{patient}' "
                     f"--database-url {report.journal}")  # fmt: skip
    lines += logistics_lines(report.logistics)
    if report.scorecard:
        start, _, end = report.scorecard_period.partition("/")
        lines += ["", f"scorecard of this run's traffic ({report.scorecard_period}; the feed was replayed on its own "
                  "timeline; all measures: carehub scorecard --from "
                  f"{start} --to {end} --database-url {report.journal}):"]  # fmt: skip
        lines += [f"  {row['line']}" for row in report.scorecard]
    if report.unreadable:
        lines.append(f"unreadable feed files (skipped): {', '.join(report.unreadable)}")
    if not report.idle:
        lines.append("warning: the pipeline did not go idle before the timeout; counts may be partial")
    lines += ["", *console_lines(report, serving=False)]
    return "\n".join(lines)
