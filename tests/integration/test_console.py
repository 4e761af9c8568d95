"""The operations console over a real hub: sign-in cookie, search, detail, PHI view audited, replay re-sent.

Real parts only: the hub's HTTP listener, MLLP into the embedded broker, the
message journal fed from the inbound topic, webhook recipients that answer
HTTP (the PCP refuses the signature at first, so its delivery dead-letters).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from carehub.adapters.console import SESSION_COOKIE
from carehub.adapters.console.views import delivery_latencies
from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.principal import OPS_READ, OPS_WRITE, PHI_READ
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from carehub.journal.messages import MessageQuery
from carehub.journal.store import Journal
from tests.authkit import Issuer
from tests.conftest import FEED
from tests.integration.conftest import ON_EACH_JOURNAL, PCP_SECRET, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def signed_in(hub: Hub, token: str) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(f"http://127.0.0.1:{hub.http_port}/console/signin", data={"token": token},
                         allow_redirects=False) as r:  # fmt: skip
        assert r.status == 303, await r.text()
    return http


async def page(http: aiohttp.ClientSession, hub: Hub, path: str) -> tuple[int, str]:
    async with http.get(f"http://127.0.0.1:{hub.http_port}{path}", allow_redirects=False) as r:
        return r.status, await r.text()


async def dead_lettered_admit(hub: Hub, recipients: dict[str, DemoRecipient]) -> str:
    """RGH0002 sent over MLLP while the PCP refuses the signature: its delivery is dead-lettered."""
    recipients["pcp-riverside"].secret = "not-the-hub-secret"
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    ack = await client.send((FEED / "02-a01-admit-rivera.hl7").read_bytes())
    await client.close()
    assert ack_code(ack) == "AA"
    journal = hub._delivery.journal  # type: ignore[union-attr]
    assert journal is not None
    await eventually(lambda: journal.dead_letters("parked") and recipients["payer-acme"].received, timeout_s=60)
    await eventually(lambda: journal.messages.search(MessageQuery(text="RGH0002"))[0], timeout_s=30)
    recipients["pcp-riverside"].secret = PCP_SECRET
    return journal.messages.search(MessageQuery(text="RGH0002"))[0][0].ref


@pytest.fixture
async def anonymous() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def test_sign_in_gives_a_strict_httponly_session_that_only_the_console_accepts(
    hub: Hub, issuer: Issuer, anonymous: aiohttp.ClientSession
) -> None:
    base = f"http://127.0.0.1:{hub.http_port}"
    async with anonymous.get(f"{base}/console", allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (303, "/console/signin")
    async with anonymous.post(f"{base}/console/signin", data={"token": "not-a-jwt"}, allow_redirects=False) as r:
        assert r.status == 401 and "not accepted" in await r.text()
    async with anonymous.post(f"{base}/console/signin", data={"token": issuer.token("system/Task.read")}) as r:
        assert r.status == 403 and OPS_READ in await r.text()
    async with anonymous.post(f"{base}/console/signin", data={"token": issuer.token(OPS_READ)},
                              allow_redirects=False) as r:  # fmt: skip
        assert r.status == 303
        cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie, cookie
    sid = cookie.split(";")[0].split("=", 1)[1]
    async with anonymous.get(f"{base}/console", headers={"Cookie": f"{SESSION_COOKIE}={sid}"}) as r:
        assert r.status == 200 and "Dashboard" in await r.text()
    async with anonymous.get(f"{base}/admin/dlq", headers={"Cookie": f"{SESSION_COOKIE}={sid}"}) as r:
        assert r.status == 401, "the API takes tokens, never the console's cookie"


@ON_EACH_JOURNAL
async def test_trace_a_message_see_why_not_delivered_view_raw_audited_and_replay(
    hub: Hub, issuer: Issuer, recipients: dict[str, DemoRecipient]
) -> None:
    ref = await dead_lettered_admit(hub, recipients)
    journal = hub._delivery.journal  # type: ignore[union-attr]
    assert journal is not None
    ops = await signed_in(hub, issuer.token(OPS_READ, OPS_WRITE, sub="analyst-1"))
    try:
        status, html = await page(ops, hub, "/console/messages?q=RGH0002")
        assert status == 200 and "RGH0002" in html and "ADT^A01" in html and "dead-lettered" in html
        row = journal.messages.search(MessageQuery(text="RGH0002"))[0][0]
        assert (row.ack_code, row.sending_facility, row.topic) == ("AA", "RGH", hub.topics.hl7v2_inbound)

        status, html = await page(ops, hub, f"/console/messages/{ref}")
        assert status == 200
        assert "pcp-riverside" in html and "payer-acme" in html and "delivered" in html
        assert "dead-lettered delivery-rejected" in html, "why not delivered names the dead letter and its code"
        assert "HTTP 401" in html, "the recipient's answer is shown"
        assert 'id="raw-link"' not in html and "RIVERA" not in html, "no payload without the PHI role"
        status, _ = await page(ops, hub, f"/console/messages/{ref}/raw")
        assert status == 403

        status, html = await page(ops, hub, "/console")
        assert re.search(r'id="dlq-size">1<', html), "one dead letter before the replay"
        async with ops.post(f"http://127.0.0.1:{hub.http_port}/console/dlq/replay", data={"all": "1"},
                            allow_redirects=False) as r:  # fmt: skip
            assert r.status == 403, "a POST without the session's CSRF token is refused"
        csrf = CSRF.search(html)
        assert csrf is not None
        pcp_before = len(recipients["pcp-riverside"].received)
        assert 'id="replay-pcp-riverside"' in html and 'id="replay-payer-acme"' not in html
        async with ops.post(f"http://127.0.0.1:{hub.http_port}/console/dlq/replay",
                            data={"recipient": "payer-acme", "csrf": csrf.group(1)}) as r:  # fmt: skip
            assert r.status == 400 and "no dead letters of payer-acme" in await r.text()
        async with ops.post(f"http://127.0.0.1:{hub.http_port}/console/dlq/replay",
                            data={"recipient": "pcp-riverside", "csrf": csrf.group(1)},
                            allow_redirects=False) as r:  # fmt: skip
            assert r.status == 303 and "replayed=1" in r.headers["Location"]
        await eventually(lambda: len(recipients["pcp-riverside"].received) > pcp_before, timeout_s=60)
        status, html = await page(ops, hub, "/console")
        assert re.search(r'id="dlq-size">0<', html), "the dead letter left the queue"
    finally:
        await ops.close()

    phi = await signed_in(hub, issuer.token(OPS_READ, PHI_READ, sub="analyst-phi"))
    try:
        status, html = await page(phi, hub, f"/console/messages/{ref}")
        assert 'id="raw-link"' in html
        status, html = await page(phi, hub, f"/console/messages/{ref}/raw")
        assert status == 200 and "MSH|" in html and "RGH0002" in html
        assert 'id="care-event"' in html and "&#34;kind&#34;: &#34;admit&#34;" in html, "the CareEvent it became"
        assert 'id="bundle"' in html and "&#34;resourceType&#34;: &#34;Bundle&#34;" in html and "RIVERA" in html
    finally:
        await phi.close()
    events = journal.security.events()
    views = [e for e in events if e["type"]["code"] == "110110"]
    assert views and views[-1]["agent"][0]["who"]["identifier"]["value"] == "analyst-phi"
    assert any(e["entity"][-1]["what"].get("identifier", {}).get("value") == row.patient_key for e in views)
    replays = [e for e in events if e["type"]["code"] == "110100"]
    assert replays and replays[-1]["agent"][0]["who"]["identifier"]["value"] == "analyst-1"
    targets = [d["valueString"] for e in replays for d in e["entity"][0]["detail"] if d["type"] == "target"]
    assert "recipient pcp-riverside" in targets


async def test_dashboard_latency_and_a_routing_reload_from_the_page_keeps_a_good_map_over_a_bad_edit(
    hub: Hub, issuer: Issuer, recipients: dict[str, DemoRecipient], config_dir: Path
) -> None:
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    assert ack_code(await client.send((FEED / "02-a01-admit-rivera.hl7").read_bytes())) == "AA"
    await client.close()
    await eventually(lambda: recipients["payer-acme"].received, timeout_s=60)
    ops = await signed_in(hub, issuer.token(OPS_READ, OPS_WRITE, sub="analyst-2"))
    try:
        version = hub.routing.current().version

        def latency_shown() -> bool:
            return bool(re.search(r"<td>payer-acme</td>(<td>[^<]*</td>){5}<td>\d+\.\d{3}</td>", html))

        status, html = await page(ops, hub, "/console")
        assert status == 200 and f'id="map-version">{version}<' in html
        if not latency_shown():  # the outcome and the receipt are journaled just after the recipient answers
            await eventually(lambda: "payer-acme" in delivery_latencies(journal_of(hub), ""), timeout_s=30)
            status, html = await page(ops, hub, "/console")
        assert latency_shown(), "p50 seconds from receipt to delivery, per recipient"
        assert re.search(r'<svg[^>]*id="latency".*<polyline points="[\d.]+,[\d.]+" [^>]*id="p99"', html), "over time"
        assert 'id="throughput"' in html and "no FHIR subscriptions enabled" in html
        # consumer lag per group and topic, from the cluster's committed offsets (committed after each batch)
        inbound = re.compile(rf'id="lag-{re.escape(hub.journal_group)}-{re.escape(hub.topics.hl7v2_inbound)}">0<')
        deadline = asyncio.get_running_loop().time() + 30
        while not inbound.search(html) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(1.0)
            hub._lag_rows = None  # the page caches the offsets it read for 10 s
            status, html = await page(ops, hub, "/console")
        assert inbound.search(html), "the message journal's group has read the inbound topic to its end"
        assert re.search(rf'id="lag-{re.escape(hub.app_id)}-[^"]+">\d+<', html), "the stream workers' group"

        (config_dir / "routes.yaml").write_text("rules: [this is not a rule\n", encoding="utf-8")
        csrf = CSRF.search(html)
        assert csrf is not None
        async with ops.post(f"http://127.0.0.1:{hub.http_port}/console/routing/reload",
                            data={"csrf": csrf.group(1)}, allow_redirects=False) as r:  # fmt: skip
            assert (r.status, r.headers["Location"]) == (303, "/console?routing=rejected")
        status, html = await page(ops, hub, "/console")
        assert f'id="map-version">{version}<' in html and 'id="map-error"' in html
    finally:
        await ops.close()
    journal = hub._delivery.journal  # type: ignore[union-attr]
    assert journal is not None
    reloads = [e for e in journal.security.events() if e["type"]["code"] == "110100"]
    assert reloads and reloads[-1]["agent"][0]["who"]["identifier"]["value"] == "analyst-2"


def journal_of(hub: Hub) -> Journal:
    journal = hub._delivery.journal  # type: ignore[union-attr]
    assert journal is not None
    return journal


async def test_a_recipient_paused_from_the_console_gets_nothing_until_resumed_then_gets_it(
    hub: Hub, issuer: Issuer, recipients: dict[str, DemoRecipient]
) -> None:
    journal = hub._delivery.journal  # type: ignore[union-attr]
    assert journal is not None
    ops = await signed_in(hub, issuer.token(OPS_READ, OPS_WRITE, sub="analyst-3"))
    base = f"http://127.0.0.1:{hub.http_port}"
    try:
        _, html = await page(ops, hub, "/console")
        csrf = CSRF.search(html)
        assert csrf is not None and 'id="pause-payer-acme"' in html
        async with ops.post(f"{base}/console/recipients/payer-acme/pause", data={"csrf": csrf.group(1)},
                            allow_redirects=False) as r:  # fmt: skip
            assert r.status == 303
        _, html = await page(ops, hub, "/console")
        assert 'id="resume-payer-acme"' in html and "analyst-3" in html

        await asyncio.sleep(1.5)  # the workers' view of the pauses is at most a second old
        client = MLLPClient("127.0.0.1", hub.mllp_port)
        assert ack_code(await client.send((FEED / "02-a01-admit-rivera.hl7").read_bytes())) == "AA"
        await client.close()
        await eventually(lambda: recipients["pcp-riverside"].received, timeout_s=60)

        def held() -> bool:
            rows = journal.db.query(
                "SELECT COUNT(*) FROM delivery_attempts WHERE recipient_id = 'payer-acme' AND result = 'circuit-open'"
            )
            return int(rows[0][0]) > 0

        await eventually(held, timeout_s=30)
        assert not recipients["payer-acme"].received, "a paused recipient is not contacted"

        async with ops.post(f"{base}/console/recipients/payer-acme/resume", data={"csrf": csrf.group(1)},
                            allow_redirects=False) as r:  # fmt: skip
            assert r.status == 303
        await eventually(lambda: recipients["payer-acme"].received, timeout_s=90)
    finally:
        await ops.close()
    actions = [e["entity"][0]["detail"][1]["valueString"] for e in journal.security.events()
               if e["type"]["code"] == "110100"]  # fmt: skip
    assert actions[-2:] == ["recipient-pause", "recipient-resume"]


async def test_refused_messages_are_journaled_with_their_ack_code_and_reason_and_no_phi_in_logs(
    hub: Hub, issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    """AR for a type the hub does not take, AE for an ADT without PID-3: both searchable as refused."""
    admit = (FEED / "02-a01-admit-rivera.hl7").read_bytes()
    unsupported = admit.replace(b"RGH0002", b"REFUSE01").replace(b"ADT^A01^ADT_A01", b"ZZZ^Z01^ZZZ_Z01")
    no_pid = b"\r".join(s for s in admit.replace(b"RGH0002", b"REFUSE02").split(b"\r") if not s.startswith(b"PID|"))
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    codes = [ack_code(await client.send(m)) for m in (unsupported, no_pid)]
    await client.close()
    assert codes == ["AR", "AE"]
    journal = hub._delivery.journal  # type: ignore[union-attr]
    assert journal is not None
    await eventually(lambda: len(journal.messages.search(MessageQuery(status="refused"))[0]) == 2, timeout_s=30)
    rows = {r.control_id: r for r in journal.messages.search(MessageQuery(status="refused"))[0]}
    first, second = rows["REFUSE01"], rows["REFUSE02"]
    assert (first.ack_code, first.message_type, first.sending_facility, first.topic) == (
        "AR", "ZZZ^Z01", "RGH", hub.topics.inbound_refused,
    )  # fmt: skip
    assert "not accepted" in first.reason and first.error_code
    assert (second.ack_code, second.patient_key) == ("AE", "") and "PID-3" in second.reason
    assert journal.messages.search(MessageQuery(ack_code="AE"))[0] == [second]

    ops = await signed_in(hub, issuer.token(OPS_READ, sub="analyst-2"))
    try:
        status, html = await page(ops, hub, "/console/messages?status=refused")
        assert status == 200 and "REFUSE01" in html and "REFUSE02" in html
        status, html = await page(ops, hub, f"/console/messages/{first.ref}")
        assert status == 200 and 'id="refusal"' in html and "not accepted" in html
        assert "refused at receipt: answered AR" in html and "RIVERA" not in html
    finally:
        await ops.close()
    for phi in ("RIVERA", "MARIA", "MRN100234", "19580412", "ELM ST"):
        assert phi not in caplog.text, f"PHI {phi!r} in the logs"
